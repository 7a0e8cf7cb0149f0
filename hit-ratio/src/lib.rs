//! okome-hit-ratio: is the edge cache doing its job?
//!
//! Reads nginx access logs in the `okome` format (or `combined`, or any
//! pasted `log_format`) and reports the request, HIT and byte hit ratios,
//! origin load, and per path group / canary variant / time figures. The
//! library is the whole tool so tests drive it directly; `main.rs` only maps
//! [`run`] to an exit status.
//!
//! The shape follows the speed and memory targets of issue 2: one pass,
//! no per-line allocation ([`tally`]), bounded top-N ([`topn`]) and
//! histograms ([`histogram`]), and parallel chunked reading ([`scan`]).
//! The JSON schema is [`report::Report`], documented in `README.md` here.

pub mod cli;
pub mod groups;
pub mod histogram;
pub mod metrics;
pub mod report;
pub mod scan;
pub mod tally;
pub mod timespec;
pub mod topn;

use std::fmt;
use std::io::Write;

use okome_common::exit::{self, ExitStatus};

pub use cli::{Cli, Config, Output, command};

/// The tool's name, for messages.
pub const TOOL: &str = "okome-hit-ratio";

/// How the shared start-up (`okome_common::tool`) runs this tool.
pub const SPEC: okome_common::tool::Spec = okome_common::tool::Spec {
    name: TOOL,
    env_prefix: "OKOME_HIT_RATIO_",
    env_aliases: &[],
    lenient_defaults_flag: None,
};

/// Why a run failed before or after the report.
#[derive(Debug)]
pub enum Error {
    /// Bad flags or configuration: nothing was read or written.
    Usage(String),
    /// The output could not be written.
    Output(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(message) | Error::Output(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for Error {}

impl ExitStatus for Error {
    fn exit_status(&self) -> u8 {
        match self {
            Error::Usage(_) => exit::USAGE,
            Error::Output(_) => exit::INTERNAL,
        }
    }
}

/// Read the inputs and compute the report.
pub fn analyse(config: &Config) -> report::Report {
    let scan = scan::scan(
        &config.files,
        &config.format,
        &config.options,
        config.threads,
    );
    report::Report::new(
        scan,
        &report::Shape {
            format: config.format_name.clone(),
            groups: config
                .options
                .groups
                .iter()
                .map(|g| String::from_utf8_lossy(g).into_owned())
                .collect(),
            by: config.by.map(str::to_string),
            top: config.top,
            since: config.options.since,
            until: config.options.until,
        },
    )
}

/// Run the whole tool: analyse, write the output, and return the exit
/// status (0, 1 when `--fail-below` trips, 3 when an input was unreadable).
/// Input errors and the `--fail-below` verdict go to stderr here.
/// The warning for a log none of whose lines fits the format: how many,
/// the first line (escaped, cut) and which flag would read it.
pub fn wrong_format(config: &Config, report: &report::Report) -> String {
    let format = if config.format_name.len() > 40 {
        "--log-format".to_string()
    } else {
        config.format_name.clone()
    };
    let mut message = format!(
        "none of the {} lines read fits the {format} log format: nothing to report",
        report.lines.total
    );
    let Some((input, line, text)) = &report.first_malformed else {
        return message;
    };
    message.push_str(&format!(
        "; first line ({input}:{line}): \"{}\"",
        okome_common::text::escape(text, 160)
    ));
    match okome_accesslog::builtin_format_of(text) {
        Some(name) if name != config.format_name => {
            message.push_str(&format!("; it is nginx's {name} format: use --format {name}"))
        }
        _ => message.push_str(
            "; for nginx's default format use --format combined, for any other paste its log_format string: --log-format '…'",
        ),
    }
    message
}

pub fn run(config: &Config) -> Result<u8, Error> {
    let report = analyse(config);
    let others_counted = report.inputs.len() > 1;
    for input in &report.inputs {
        if let Some(error) = &input.error {
            if others_counted {
                log::error!("{error} (the other inputs are still counted)");
            } else {
                log::error!("{error}");
            }
        }
    }
    // Nothing could be read at all: a report of zeros would be a lie, and
    // with `--output` it would overwrite the dashboard's last good figures.
    if report
        .inputs
        .iter()
        .all(|i| i.error.is_some() && i.lines == 0)
    {
        return Ok(exit::INTERNAL);
    }
    // Lines, and not one fits the format: the log is in another format, and
    // an empty report (exit 0) would read as "no traffic". An empty log is
    // not this: nothing to judge.
    if report.lines.total > 0 && report.lines.parsed == 0 {
        log::warn!("{}", wrong_format(config, &report));
        return Ok(exit::PROBLEM);
    }
    if config.verbose && config.output != Output::Human {
        for sample in &report.malformed_samples {
            log::info!(
                "{}:{}: malformed: {}",
                sample.input,
                sample.line,
                sample.reason
            );
        }
    }
    let text = match config.output {
        Output::Human => report.human(config.verbose),
        Output::Json => {
            let mut json = serde_json::to_string_pretty(&report).expect("the report serialises");
            json.push('\n');
            json
        }
        Output::Prometheus => metrics::render(&report).render().to_string(),
    };
    match &config.output_file {
        Some(path) => okome_common::fsutil::write_if_changed(path, text.as_bytes(), 0o644)
            .map(|_| ())
            .map_err(|e| Error::Output(e.to_string()))?,
        None => {
            let mut stdout = std::io::stdout().lock();
            match stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush())
            {
                Ok(()) => {}
                // `okome-hit-ratio | head` is not a failure.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                Err(e) => return Err(Error::Output(format!("stdout: {e}"))),
            }
        }
    }
    if report.inputs.iter().any(|i| i.error.is_some()) {
        return Ok(exit::INTERNAL);
    }
    if let Some(threshold) = config.fail_below {
        match report.ratios.request_hit_ratio {
            Some(ratio) if ratio >= threshold => {}
            Some(ratio) => {
                eprintln!(
                    "{TOOL}: request hit ratio {:.1} % is below {:.1} %",
                    ratio * 100.0,
                    threshold * 100.0
                );
                return Ok(exit::PROBLEM);
            }
            None => {
                eprintln!("{TOOL}: no request with a cache status: no hit ratio to check");
                return Ok(exit::PROBLEM);
            }
        }
    }
    Ok(exit::OK)
}
