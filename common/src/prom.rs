//! Prometheus text exposition for node_exporter's textfile collector.
//!
//! Tools build a [`Metrics`] value, then either print it (`--prometheus`) or
//! write it atomically into the textfile directory (default
//! `/run/okome/metrics`, on tmpfs so a 5-second timer never touches the SD
//! card). Every metric name a tool emits must be listed in `docs/metrics.md`.

use std::fmt::Write as _;
use std::path::Path;

/// Default textfile-collector directory (under `OKOME_ROOT`).
pub const TEXTFILE_DIR: &str = crate::paths::METRICS_DIR;

/// Metric type, as written on the `# TYPE` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A value that goes up and down.
    Gauge,
    /// A monotonically increasing total.
    Counter,
}

/// A set of metric families rendered in insertion order.
#[derive(Debug, Default, Clone)]
pub struct Metrics {
    text: String,
    declared: Vec<String>,
}

impl Metrics {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add one sample; the `# HELP`/`# TYPE` header is written on the first
    /// sample of each family. Label values are escaped as the format demands.
    pub fn sample(
        &mut self,
        name: &str,
        kind: Kind,
        help: &str,
        labels: &[(&str, &str)],
        value: f64,
    ) {
        if !self.declared.iter().any(|declared| declared == name) {
            let kind = match kind {
                Kind::Gauge => "gauge",
                Kind::Counter => "counter",
            };
            let _ = writeln!(self.text, "# HELP {name} {}", escape_help(help));
            let _ = writeln!(self.text, "# TYPE {name} {kind}");
            self.declared.push(name.to_string());
        }
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (index, (key, value)) in labels.iter().enumerate() {
                if index > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{key}=\"{}\"", escape_label(value));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {}", format_value(value));
    }

    /// Shorthand for an unlabelled gauge.
    pub fn gauge(&mut self, name: &str, help: &str, value: f64) {
        self.sample(name, Kind::Gauge, help, &[], value);
    }

    /// Shorthand for an unlabelled counter.
    pub fn counter(&mut self, name: &str, help: &str, value: f64) {
        self.sample(name, Kind::Counter, help, &[], value);
    }

    /// The exposition text.
    pub fn render(&self) -> &str {
        &self.text
    }

    /// Write atomically to `path`, only when the content changed.
    /// Returns whether a write happened.
    pub fn write_textfile(&self, path: &Path) -> std::io::Result<bool> {
        crate::fsutil::write_if_changed(path, self.text.as_bytes(), 0o644)
    }
}

fn format_value(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value.is_infinite() {
        if value > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

fn escape_label(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_get_one_header_and_escaped_labels() {
        let mut metrics = Metrics::new();
        metrics.sample(
            "okome_x_total",
            Kind::Counter,
            "X.",
            &[("path", "/a\"b")],
            3.0,
        );
        metrics.sample("okome_x_total", Kind::Counter, "X.", &[("path", "/c")], 0.5);
        assert_eq!(
            metrics.render(),
            "# HELP okome_x_total X.\n# TYPE okome_x_total counter\nokome_x_total{path=\"/a\\\"b\"} 3\nokome_x_total{path=\"/c\"} 0.5\n"
        );
    }

    #[test]
    fn special_values_use_prometheus_spelling() {
        assert_eq!(format_value(f64::NAN), "NaN");
        assert_eq!(format_value(f64::INFINITY), "+Inf");
        assert_eq!(format_value(1.25), "1.25");
    }
}
