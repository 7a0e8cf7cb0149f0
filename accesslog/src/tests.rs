//! The parser against the dirty lines real nginx logs contain (issue 2,
//! item 5), one test per case, and a property test that no input panics and
//! every line is either parsed or malformed.

use super::*;
use proptest::prelude::*;

const GOOD: &[u8] = br#"192.0.2.7 - - [20/Nov/2026:10:00:00 +0100] "GET /assets/app.js?v=3 HTTP/1.1" 200 5120 "https://okome.lan/" "Mozilla/5.0 (X11; Linux)" cache=HIT rt=0.001 urt="-" rid=4f2a9c canary=control warm=-"#;

fn okome_line(ip: &str, request: &str, ua: &str, cache: &str, urt: &str) -> Vec<u8> {
    format!(
        r#"{ip} - - [20/Nov/2026:10:00:00 +0100] "{request}" 200 512 "-" "{ua}" cache={cache} rt=0.120 urt="{urt}" rid=abc canary=canary warm=-"#
    )
    .into_bytes()
}

#[test]
fn okome_constant_is_the_format_in_docs_design_md() {
    let design = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/design.md"))
        .expect("docs/design.md");
    let directive = design
        .lines()
        .find(|line| line.starts_with("log_format okome "))
        .expect("a log_format okome line in docs/design.md");
    assert_eq!(
        LogFormat::from_nginx(directive).unwrap().source(),
        OKOME_LOG_FORMAT
    );
}

#[test]
fn the_braced_spelling_is_the_same_format_to_the_walk_but_not_the_fast_path() {
    assert_eq!(
        spelt_braced("$remote_addr - ${remote_user} x$a_b\"$ ok"),
        "${remote_addr} - ${remote_user} x${a_b}\"$ ok"
    );
    let braced = LogFormat::from_nginx(&spelt_braced(OKOME_LOG_FORMAT)).unwrap();
    assert!(!braced.is_okome());
    let line = okome_line("10.0.0.1", "GET / HTTP/1.1", "curl", "HIT", "0.002");
    let (plain, braced) = (LogFormat::okome(), braced);
    let (a, b) = (plain.check(&line).unwrap(), braced.check(&line).unwrap());
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
}

#[test]
fn a_clean_okome_line_yields_every_field() {
    let format = LogFormat::okome();
    let entry = format.parse(GOOD).expect("parses");
    assert_eq!(entry.field("remote_addr"), Some(&b"192.0.2.7"[..]));
    assert_eq!(entry.field("$remote_user"), None);
    assert_eq!(entry.method(), Some(&b"GET"[..]));
    assert_eq!(entry.target(), Some(&b"/assets/app.js?v=3"[..]));
    assert_eq!(entry.path(), Some(&b"/assets/app.js"[..]));
    assert_eq!(entry.status(), Some(200));
    assert_eq!(entry.body_bytes(), Some(5120));
    assert_eq!(entry.user_agent(), Some(&b"Mozilla/5.0 (X11; Linux)"[..]));
    assert_eq!(entry.cache_status(), Some(&b"HIT"[..]));
    assert_eq!(entry.request_time(), Some(0.001));
    assert_eq!(entry.request_time_ms(), Some(1));
    assert_eq!(entry.upstream_time(), None);
    assert_eq!(entry.time_local(), Some(1_795_165_200));
    assert_eq!(entry.field("request_id"), Some(&b"4f2a9c"[..]));
    assert_eq!(entry.canary(), Some(&b"control"[..]));
    assert!(!entry.warm());
    assert_eq!(entry.field("no_such_variable"), None);
}

#[test]
fn escaped_quotes_and_spaces_inside_the_user_agent() {
    let line = okome_line(
        "192.0.2.1",
        "GET / HTTP/1.1",
        r#"Evil \x22agent\x22 cache=HIT rt=9 with spaces"#,
        "MISS",
        "0.100",
    );
    let format = LogFormat::okome();
    let entry = format.parse(&line).expect("parses");
    assert_eq!(
        entry.user_agent(),
        Some(&br#"Evil \x22agent\x22 cache=HIT rt=9 with spaces"#[..])
    );
    assert_eq!(entry.cache_status(), Some(&b"MISS"[..]));
    assert_eq!(entry.request_time_ms(), Some(120));
}

#[test]
fn cache_hit_inside_the_url_does_not_count() {
    let line = okome_line(
        "192.0.2.1",
        "GET /search?q=cache=HIT%20rt=1 HTTP/1.1",
        "curl/8",
        "BYPASS",
        "0.050",
    );
    let format = LogFormat::okome();
    let entry = format.parse(&line).unwrap();
    assert_eq!(entry.target(), Some(&b"/search?q=cache=HIT%20rt=1"[..]));
    assert_eq!(entry.cache_status(), Some(&b"BYPASS"[..]));
}

#[test]
fn a_dash_in_any_field_means_absent() {
    let line = br#"- - - [20/Nov/2026:10:00:00 +0100] "-" 400 0 "-" "-" cache=- rt=0.000 urt="-" rid=- canary=- warm=-"#;
    let format = LogFormat::okome();
    let entry = format.parse(line).expect("parses");
    assert_eq!(entry.field("remote_addr"), None);
    assert_eq!(entry.method(), None);
    assert_eq!(entry.target(), None);
    assert_eq!(entry.user_agent(), None);
    assert_eq!(entry.cache_status(), None);
    assert_eq!(entry.upstream_time_ms(), None);
    assert_eq!(entry.canary(), None);
    assert_eq!(entry.status(), Some(400));
    assert!(!entry.warm());
}

#[test]
fn an_empty_request_of_a_garbage_connection() {
    let line = br#"192.0.2.9 - - [20/Nov/2026:10:00:00 +0100] "" 400 157 "-" "-" cache=- rt=0.000 urt="-" rid=1 canary=- warm=-"#;
    let format = LogFormat::okome();
    let entry = format.parse(line).expect("parses");
    assert_eq!(entry.target(), None);
    assert_eq!(entry.status(), Some(400));
}

#[test]
fn ipv6_clients() {
    let line = okome_line("2001:db8::1:ff", "GET / HTTP/2.0", "ua", "HIT", "-");
    let format = LogFormat::okome();
    let entry = format.parse(&line).unwrap();
    assert_eq!(entry.field("remote_addr"), Some(&b"2001:db8::1:ff"[..]));
    assert_eq!(entry.cache_status(), Some(&b"HIT"[..]));
}

#[test]
fn upstream_retries_are_summed() {
    let line = okome_line(
        "192.0.2.1",
        "GET /api/x HTTP/1.1",
        "ua",
        "MISS",
        "0.002, 0.010 : 0.004",
    );
    let format = LogFormat::okome();
    let entry = format.parse(&line).unwrap();
    assert_eq!(entry.upstream_time_ms(), Some(16));
    assert_eq!(entry.upstream_time(), Some(0.016));
}

#[test]
fn nul_runs_from_a_power_cut_are_skipped_before_a_line() {
    let mut line = vec![0u8; 4096];
    line.extend_from_slice(GOOD);
    let format = LogFormat::okome();
    assert_eq!(
        format.parse(&line).unwrap().cache_status(),
        Some(&b"HIT"[..])
    );
    assert_eq!(format.check(&[0u8; 100]).unwrap_err(), Malformed::Empty);
    // NULs in the middle of a line are not something nginx writes.
    let mut broken = GOOD[..40].to_vec();
    broken.extend(vec![0u8; 64]);
    assert!(format.parse(&broken).is_none());
}

#[test]
fn lines_cut_short_are_malformed_at_every_length() {
    let format = LogFormat::okome();
    for len in 0..GOOD.len() {
        let cut = &GOOD[..len];
        assert!(
            format.parse(cut).is_none(),
            "cut at {len}: {}",
            String::from_utf8_lossy(cut)
        );
    }
    assert!(format.parse(GOOD).is_some());
}

#[test]
fn lines_from_an_older_format_are_malformed() {
    let format = LogFormat::okome();
    let combined = br#"192.0.2.7 - - [20/Nov/2026:10:00:00 +0100] "GET / HTTP/1.1" 200 5120 "-" "Mozilla/5.0""#;
    assert_eq!(
        format.check(combined).unwrap_err(),
        Malformed::Missing("http_user_agent")
    );
    // An earlier okome format without rid/canary/warm.
    let older = br#"192.0.2.7 - - [20/Nov/2026:10:00:00 +0100] "GET / HTTP/1.1" 200 5120 "-" "ua" cache=HIT rt=0.001 urt=-"#;
    assert!(format.parse(older).is_none());
    // The combined format reads combined lines, and refuses okome ones.
    assert!(LogFormat::combined().parse(combined).is_some());
    assert_eq!(
        LogFormat::combined().check(GOOD).unwrap_err(),
        Malformed::Trailing
    );
    // A common-log-format line: the status position holds text.
    let clf = br#"192.0.2.7 - - [20/Nov/2026:10:00:00 +0100] "GET / HTTP/1.1" OK 5120"#;
    assert!(LogFormat::combined().parse(clf).is_none());
}

#[test]
fn invalid_utf8_is_just_bytes() {
    let mut line = okome_line("192.0.2.1", "GET /caf\u{e9} HTTP/1.1", "ua", "HIT", "-");
    let at = line.windows(3).position(|w| w == b"caf").unwrap() + 3;
    line[at] = 0xff; // was the first byte of é
    line[at + 1] = 0xfe;
    let format = LogFormat::okome();
    let entry = format.parse(&line).unwrap();
    assert_eq!(entry.path(), Some(&b"/caf\xff\xfe"[..]));
    assert_eq!(entry.cache_status(), Some(&b"HIT"[..]));
}

#[test]
fn crlf_line_endings_are_stripped_by_the_reader() {
    let mut input = GOOD.to_vec();
    input.extend_from_slice(b"\r\n");
    input.extend_from_slice(GOOD);
    input.extend_from_slice(b"\r\n");
    let mut reader = LineReader::new(&input[..]);
    let format = LogFormat::okome();
    let mut parsed = 0;
    while let Some(line) = reader.next_line().unwrap() {
        assert_eq!(format.parse(line.bytes).unwrap().field("okome_warm"), None);
        parsed += 1;
    }
    assert_eq!(parsed, 2);
}

#[test]
fn a_100_kb_user_agent_parses() {
    let ua = "A".repeat(100 * 1024);
    let line = okome_line("192.0.2.1", "GET / HTTP/1.1", &ua, "STALE", "-");
    let mut input = line.clone();
    input.push(b'\n');
    let mut reader = LineReader::new(&input[..]);
    let read = reader.next_line().unwrap().unwrap();
    assert!(!read.truncated);
    let format = LogFormat::okome();
    let entry = format.parse(read.bytes).unwrap();
    assert_eq!(entry.user_agent().unwrap().len(), 100 * 1024);
    assert_eq!(entry.cache_status(), Some(&b"STALE"[..]));
}

/// Apache's `%b`, and proxies that copy it, log `-` for "no body" (every
/// 304): it reads as 0 on the fast path and the generic walk alike, in the
/// okome and combined formats, so a real log keeps its 304s.
#[test]
fn a_dash_byte_count_is_zero_bytes_on_every_path() {
    let okome = br#"192.0.2.7 - - [20/Nov/2026:10:00:00 +0100] "GET /assets/app.js HTTP/1.1" 304 - "-" "ua" cache=REVALIDATED rt=0.001 urt="0.001" rid=1 canary=control warm=-"#;
    let format = LogFormat::okome();
    // The fast path leaves it to the generic walk (nginx never writes `-`
    // there; see okome.rs); the hot loop's entry point still parses it.
    assert!(format.check_okome(okome).is_none());
    for unrolled in [true, false] {
        let entry = format.check_with(okome, unrolled).expect("parses");
        assert_eq!((entry.status(), entry.body_bytes()), (Some(304), Some(0)));
    }
    same_split(&format, okome).unwrap();
    let combined =
        br#"192.0.2.7 - - [20/Nov/2026:10:00:00 +0100] "GET / HTTP/1.1" 304 - "-" "Mozilla/5.0""#;
    let combined_format = LogFormat::combined();
    let entry = combined_format
        .parse(combined)
        .expect("a combined 304 parses");
    assert_eq!((entry.status(), entry.body_bytes()), (Some(304), Some(0)));
    // Only a lone dash: anything else that is not digits stays malformed.
    for bad in ["--", "-1", "1-", " -"] {
        let line = String::from_utf8_lossy(combined).replace(" 304 - ", &format!(" 304 {bad} "));
        assert!(
            LogFormat::combined().parse(line.as_bytes()).is_none(),
            "{bad:?}"
        );
    }
}

#[test]
fn prewarm_requests_are_marked() {
    let line = br#"127.0.0.1 - - [20/Nov/2026:10:00:00 +0100] "GET /ui-schema/x HTTP/1.1" 200 10 "-" "okome-prewarm/0.1.0" cache=MISS rt=0.300 urt="0.299" rid=9 canary=- warm=1"#;
    let format = LogFormat::okome();
    assert!(format.parse(line).unwrap().warm());
}

#[test]
fn from_nginx_takes_what_an_operator_pastes() {
    let directive = r#"log_format main '$remote_addr - $remote_user [$time_local] "$request" '
                    '$status $body_bytes_sent "$http_referer" '
                    '"$http_user_agent" "$http_x_forwarded_for" $upstream_cache_status';"#;
    let format = LogFormat::from_nginx(directive).unwrap();
    assert!(
        format
            .source()
            .ends_with(r#""$http_x_forwarded_for" $upstream_cache_status"#)
    );
    let line = br#"192.0.2.7 - bob [20/Nov/2026:10:00:00 +0100] "GET /x HTTP/1.1" 304 0 "-" "ua" "198.51.100.2, 10.0.0.1" REVALIDATED"#;
    let entry = format.parse(line).unwrap();
    assert_eq!(entry.field("remote_user"), Some(&b"bob"[..]));
    assert_eq!(
        entry.field("http_x_forwarded_for"),
        Some(&b"198.51.100.2, 10.0.0.1"[..])
    );
    assert_eq!(entry.cache_status(), Some(&b"REVALIDATED"[..]));
    assert_eq!(entry.status(), Some(304));

    // The same format as one quoted string, and bare.
    let quoted = LogFormat::from_nginx(&format!("'{}'", format.source())).unwrap();
    assert_eq!(quoted.source(), format.source());
    let bare = LogFormat::from_nginx(format.source()).unwrap();
    assert!(bare.parse(line).is_some());
    // ${var} spelling and $msec times.
    let braces = LogFormat::from_nginx("'${msec} ${status}x $request_time'").unwrap();
    let entry = braces.parse(b"1795165200.500 200x 0.25").unwrap();
    assert_eq!(entry.time_local(), Some(1_795_165_200));
    assert_eq!(entry.request_time_ms(), Some(250));
}

#[test]
fn escape_json_formats_skip_backslash_quotes() {
    let format = LogFormat::from_nginx(
        r#"log_format j escape=json '{"ua":"$http_user_agent","cache":"$upstream_cache_status","s":$status}';"#,
    )
    .unwrap();
    let line = br#"{"ua":"say \"cache\":\"HIT\" \\","cache":"MISS","s":200}"#;
    let entry = format.parse(line).unwrap();
    assert_eq!(entry.cache_status(), Some(&b"MISS"[..]));
    assert_eq!(entry.status(), Some(200));
}

#[test]
fn bad_formats_are_refused_with_a_reason() {
    assert_eq!(LogFormat::from_nginx("").unwrap_err(), FormatError::Empty);
    assert_eq!(
        LogFormat::from_nginx("'no variables'").unwrap_err(),
        FormatError::NoVariables
    );
    assert_eq!(
        LogFormat::from_nginx("'$remote_addr$status'").unwrap_err(),
        FormatError::AdjacentVariables("remote_addr".into(), "status".into())
    );
    assert_eq!(
        LogFormat::from_nginx("'$ x'").unwrap_err(),
        FormatError::BadVariable(0)
    );
    assert_eq!(
        LogFormat::from_nginx("'$status").unwrap_err(),
        FormatError::UnclosedQuote
    );
    assert!(matches!(
        LogFormat::from_nginx("log_format x escape=xml '$status';"),
        Err(FormatError::BadEscape(_))
    ));
    let many = (0..=MAX_VARIABLES)
        .map(|i| format!("$v{i}"))
        .collect::<Vec<_>>()
        .join(" ");
    assert_eq!(
        LogFormat::from_nginx(&many).unwrap_err(),
        FormatError::TooManyVariables(MAX_VARIABLES + 1)
    );
}

#[test]
fn a_last_variable_with_nothing_after_it_must_not_be_empty() {
    let format = LogFormat::okome();
    let cut = &GOOD[..GOOD.len() - 1]; // "… warm="
    assert_eq!(
        format.check(cut).unwrap_err(),
        Malformed::Truncated("okome_warm")
    );
}

/// A known field that is the format's first variable (after a leading
/// literal) is read from where the literal ends; the fields a format does
/// not log are absent, whatever the line holds.
#[test]
fn the_first_field_and_absent_fields_through_the_accessors() {
    let format =
        LogFormat::from_nginx(r#"'<"$request" $status ($upstream_cache_status)'"#).unwrap();
    let entry = format
        .parse(br#"<"GET /a?b HTTP/1.1" 404 (MISS)"#)
        .expect("parses");
    assert_eq!(entry.raw(Field::Request), Some(&b"GET /a?b HTTP/1.1"[..]));
    assert_eq!(entry.target(), Some(&b"/a?b"[..]));
    assert_eq!(entry.status(), Some(404));
    assert_eq!(entry.cache_status(), Some(&b"MISS"[..]));
    for absent in [
        Field::TimeLocal,
        Field::BodyBytesSent,
        Field::Canary,
        Field::Warm,
    ] {
        assert_eq!(entry.raw(absent), None, "{absent:?}");
        assert_eq!(entry.short_word(absent), None, "{absent:?}");
    }
    assert_eq!(entry.body_bytes(), None);
    assert!(!entry.warm());
}

/// Lines that are mostly realistic with random damage, and plain noise.
fn dirty_input() -> impl Strategy<Value = Vec<u8>> {
    let pieces = prop_oneof![
        Just(GOOD.to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(vec![0u8; 17]),
        Just(br#"" cache=HIT rt="#.to_vec()),
        Just(br#"\" \\" ] [ ""#.to_vec()),
        Just(b" ".repeat(70)),
        proptest::collection::vec(any::<u8>(), 0..64),
    ];
    proptest::collection::vec(pieces, 0..40).prop_map(|pieces| pieces.concat())
}

/// The okome line with a few bytes replaced, inserted or removed, drawn
/// mostly from the delimiters and shapes the splitter looks for.
fn damaged_line() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        proptest::sample::select(b" \"[]-=:/.09aHIT\\".to_vec()),
        any::<u8>(),
    ];
    let edit = (any::<proptest::sample::Index>(), 0u8..3, byte);
    proptest::collection::vec(edit, 0..6).prop_map(|edits| {
        let mut line = GOOD.to_vec();
        for (at, kind, byte) in edits {
            let i = at.index(line.len() + 1);
            match kind {
                0 => line.insert(i, byte),
                1 if i < line.len() => {
                    line.remove(i);
                }
                _ if i < line.len() => line[i] = byte,
                _ => line.push(byte),
            }
        }
        line
    })
}

#[test]
fn clean_okome_lines_take_the_unrolled_path() {
    // Lines the unrolled splitter refuses still parse (the generic walk
    // takes them), only slower: hold the fast path to the usual lines.
    for line in [
        GOOD.to_vec(),
        okome_line("::1", "GET / HTTP/2.0", "-", "MISS", "0.002, 0.010 : 0.004"),
    ] {
        assert!(
            LogFormat::okome().check_okome(&line).is_some(),
            "{}",
            String::from_utf8_lossy(&line)
        );
    }
}

const ALL_FIELDS: [Field; 15] = [
    Field::TimeLocal,
    Field::TimeIso8601,
    Field::Msec,
    Field::Request,
    Field::RequestMethod,
    Field::RequestUri,
    Field::Status,
    Field::BodyBytesSent,
    Field::BytesSent,
    Field::UserAgent,
    Field::CacheStatus,
    Field::RequestTime,
    Field::UpstreamResponseTime,
    Field::Canary,
    Field::Warm,
];

#[test]
fn the_fast_paths_constants_are_the_okome_formats_literals() {
    let format = LogFormat::okome();
    assert_eq!(format.literal_lengths(), okome::AFTER);
}

/// An okome line whose fields are each the usual value, that value with
/// one byte changed, empty, `-`, or a run of delimiter bytes: every field shape and closing literal is hit.
fn assembled_line() -> impl Strategy<Value = Vec<u8>> {
    const USUAL: [&str; 14] = [
        "192.0.2.7",
        "-",
        "20/Nov/2026:10:00:00 +0100",
        "GET /assets/app.js?v=3 HTTP/1.1",
        "200",
        "5120",
        "https://okome.lan/",
        "Mozilla/5.0 (X11; Linux)",
        "HIT",
        "0.001",
        "0.002, 0.010 : 0.004",
        "4f2a9c",
        "control",
        "1",
    ];
    let fields: Vec<_> = USUAL
        .iter()
        .map(|usual| {
            prop_oneof![
                4 => Just(usual.as_bytes().to_vec()),
                2 => (any::<proptest::sample::Index>(), any::<u8>()).prop_map(|(at, byte)| {
                    let mut field = usual.as_bytes().to_vec();
                    field[at.index(usual.len())] = byte;
                    field
                }),
                1 => Just(Vec::new()),
                1 => Just(b"-".to_vec()),
                // Longer than an index word: past what one window holds.
                1 => Just(usual.repeat(70 / usual.len() + 1).into_bytes()),
                2 => proptest::collection::vec(
                    proptest::sample::select(b" \"[]-=:/.09aHIT\\".to_vec()),
                    0..30,
                ),
            ]
        })
        .collect();
    fields.prop_map(|fields| {
        // The format's literals, with each `$name` replaced by its field.
        let mut line = Vec::new();
        let mut fields = fields.into_iter();
        let mut rest = OKOME_LOG_FORMAT.as_bytes();
        while let Some((&byte, tail)) = rest.split_first() {
            if byte == b'$' {
                let name = tail
                    .iter()
                    .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_');
                rest = &tail[name.count()..];
                line.extend(fields.next().expect("14 fields"));
            } else {
                line.push(byte);
                rest = tail;
            }
        }
        line
    })
}

/// The unrolled okome splitter and the generic walk give the same fields,
/// or the same reason.
fn same_split(format: &LogFormat, line: &[u8]) -> Result<(), TestCaseError> {
    // The hot loop's entry: the same bytes for every field the accessors
    // read, for every line it takes.
    if let Some(fast) = format.check_okome(line) {
        let generic = format.check_with(line, false);
        prop_assert!(
            generic.is_ok(),
            "fast path took a line the generic walk refuses: {:?}",
            generic
        );
        let generic = generic.unwrap();
        for field in ALL_FIELDS {
            prop_assert_eq!(fast.raw(field), generic.raw(field), "{:?}", field);
            prop_assert_eq!(
                fast.short_word(field),
                generic.short_word(field),
                "{:?}",
                field
            );
        }
        prop_assert_eq!(fast.status(), generic.status());
        prop_assert_eq!(fast.body_bytes(), generic.body_bytes());
        prop_assert_eq!(fast.target(), generic.target());
        prop_assert_eq!(fast.path(), generic.path());
        prop_assert_eq!(fast.request_time_ms(), generic.request_time_ms());
        prop_assert_eq!(fast.upstream_time_ms(), generic.upstream_time_ms());
        prop_assert_eq!(fast.time_local(), generic.time_local());
        prop_assert_eq!(fast.warm(), generic.warm());
    }
    match (
        format.check_with(line, true),
        format.check_with(line, false),
    ) {
        (Ok(unrolled), Ok(generic)) => {
            prop_assert_eq!(unrolled.line(), generic.line());
            prop_assert_eq!(format!("{unrolled:?}"), format!("{generic:?}"));
            for name in format.source().split('$').skip(1) {
                let name: String = name
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                prop_assert_eq!(unrolled.field(&name), generic.field(&name), "${}", name);
            }
        }
        (Err(unrolled), Err(generic)) => prop_assert_eq!(unrolled, generic),
        (unrolled, generic) => {
            prop_assert!(false, "unrolled {:?}, generic {:?}", unrolled, generic)
        }
    }
    Ok(())
}

fn expected_lines(input: &[u8]) -> u64 {
    let newlines = input.iter().filter(|&&b| b == b'\n').count() as u64;
    newlines + u64::from(!input.is_empty() && !input.ends_with(b"\n"))
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_and_every_line_is_counted(
        input in prop_oneof![dirty_input(), proptest::collection::vec(any::<u8>(), 0..2048)],
        buffer in 1usize..300,
        max_line in 1usize..600,
    ) {
        let formats = [LogFormat::okome(), LogFormat::combined()];
        let mut reader = LineReader::with_capacity(&input[..], buffer, max_line);
        let (mut parsed, mut malformed, mut lines) = (0u64, 0u64, 0u64);
        while let Some(line) = reader.next_line().unwrap() {
            lines += 1;
            prop_assert!(line.bytes.len() <= max_line);
            let quotes: Vec<u32> = line
                .bytes
                .iter()
                .enumerate()
                .filter(|&(_, &b)| b == b'"')
                .map(|(at, _)| at as u32)
                .collect();
            // Without an index the reader hands out no quotes.
            let quotes = if reader::INDEXED { quotes } else { Vec::new() };
            prop_assert_eq!(line.quotes.iter().map(|at| at as u32).collect::<Vec<_>>(), quotes);
            // The reader's quotes give the fast path the same answer.
            let with_reader = formats[0].check_okome_line(&line).map(|e| format!("{e:?}"));
            let alone = formats[0].check_okome(line.bytes).map(|e| format!("{e:?}"));
            prop_assert_eq!(with_reader, alone);
            for format in &formats {
                match format.parse(line.bytes) {
                    Some(entry) => {
                        // Every accessor must cope with whatever was split out.
                        let _ = (entry.method(), entry.target(), entry.path(), entry.status());
                        let _ = (entry.body_bytes(), entry.request_time(), entry.upstream_time());
                        let _ = (entry.time_local(), entry.canary(), entry.warm(), entry.cache_status());
                        parsed += 1;
                    }
                    None => malformed += 1,
                }
            }
        }
        prop_assert_eq!(lines, expected_lines(&input));
        prop_assert_eq!(reader.lines(), lines);
        prop_assert_eq!(parsed + malformed, lines * formats.len() as u64);
    }

    #[test]
    fn the_reader_driven_loop_hands_out_what_next_line_does(
        input in prop_oneof![dirty_input(), proptest::collection::vec(any::<u8>(), 0..2048)],
        buffer in 1usize..300,
        max_line in 1usize..600,
    ) {
        let format = LogFormat::okome();
        // Each line with its quotes, spaces and fast-path split.
        let describe = |line: Line<'_>| {
            (
                line.bytes.to_vec(),
                line.truncated,
                line.quotes.iter().collect::<Vec<_>>(),
                line.spaces.iter().collect::<Vec<_>>(),
                format.check_okome_line(&line).map(|entry| format!("{entry:?}")),
            )
        };
        let mut pulled = Vec::new();
        let mut reader = LineReader::with_capacity(&input[..], buffer, max_line);
        while let Some(line) = reader.next_line().unwrap() {
            pulled.push(describe(line));
        }
        let mut driven = Vec::new();
        let mut reader = LineReader::with_capacity(&input[..], buffer, max_line);
        reader.each_line(|line| driven.push(describe(line))).unwrap();
        prop_assert_eq!(reader.lines(), driven.len() as u64);
        prop_assert_eq!(driven, pulled);
    }

    #[test]
    fn arbitrary_format_strings_never_panic(spec in ".{0,80}", line in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(format) = LogFormat::from_nginx(&spec)
            && let Some(entry) = format.parse(&line)
        {
            let _ = (entry.target(), entry.time_local(), entry.upstream_time_ms());
        }
    }
}

proptest! {
    // More cases than the default: a too-lenient unrolled check shows only
    // on the few lines that break that one field's shape.
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn the_unrolled_okome_splitter_agrees_with_the_generic_one(
        assembled in assembled_line(),
        damaged in damaged_line(),
        dirty in dirty_input(),
    ) {
        let format = LogFormat::okome();
        same_split(&format, &assembled)?;
        same_split(&format, &damaged)?;
        for line in dirty.split(|&b| b == b'\n') {
            same_split(&format, line)?;
        }
    }
}

proptest! {
    #[test]
    fn the_fast_path_reads_the_readers_index_as_it_searches_a_line(
        padding in 0usize..130,
        assembled in assembled_line(),
        damaged in damaged_line(),
    ) {
        // Preceded by a line of `padding` bytes, so that the line's quotes
        // and spaces fall anywhere in the index words.
        let mut input = vec![b' '; padding];
        for line in [&assembled, &damaged] {
            input.push(b'\n');
            input.extend_from_slice(line);
        }
        let format = LogFormat::okome();
        let mut reader = LineReader::new(&input[..]);
        while let Some(line) = reader.next_line().unwrap() {
            let with_reader = format.check_okome_line(&line).map(|e| format!("{e:?}"));
            let alone = format.check_okome(line.bytes).map(|e| format!("{e:?}"));
            prop_assert_eq!(with_reader, alone);
        }
    }
}

#[test]
fn the_fast_path_finds_the_spaces_after_the_request_id_wherever_they_are() {
    // The spaces after $request_id and $okome_canary, near and far apart
    // (one index word, two, or more), anywhere in the index words.
    let format = LogFormat::okome();
    let (head, _) = GOOD.split_at(GOOD.len() - "4f2a9c canary=control warm=-".len());
    for rid in 1..=80 {
        for canary in ["-", "control", "debug", &"c".repeat(70)] {
            let mut line = head.to_vec();
            line.extend(b"0".repeat(rid));
            line.extend(format!(" canary={canary} warm=1").bytes());
            let mut input = Vec::new();
            for padding in 0..64 {
                input.extend(b" ".repeat(padding));
                input.push(b'\n');
                input.extend(&line);
                input.push(b'\n');
            }
            let mut reader = LineReader::new(&input[..]);
            while let Some(line) = reader.next_line().unwrap() {
                let with_reader = format.check_okome_line(&line);
                let alone = format.check_okome(line.bytes);
                assert_eq!(format!("{with_reader:?}"), format!("{alone:?}"));
                if line.bytes.len() > 64 {
                    let entry = with_reader.expect("taken by the fast path");
                    assert_eq!(
                        entry.canary(),
                        Some(canary.as_bytes()).filter(|c| c != b"-")
                    );
                    assert!(entry.warm());
                }
            }
        }
    }
}

#[test]
fn quotes_past_a_lines_end_are_never_taken_for_its_own() {
    // A line cut short at every length, the index words it ends in holding
    // the next line's quotes: the fast path must judge the cut line as a
    // search of its bytes does (and not read past it).
    let format = LogFormat::okome();
    for cut in 0..=GOOD.len() {
        for newline in [&b"\n"[..], b"\r\n"] {
            let input = [&GOOD[..cut], newline, GOOD, b"\n"].concat();
            let mut reader = LineReader::new(&input[..]);
            while let Some(line) = reader.next_line().unwrap() {
                let with_reader = format.check_okome_line(&line).map(|e| format!("{e:?}"));
                let alone = format.check_okome(line.bytes).map(|e| format!("{e:?}"));
                assert_eq!(with_reader, alone, "cut at {cut}");
            }
        }
    }
}

/// The okome format spelt with `${name}`: the same `log_format` to nginx,
/// but not the text the `okome` fast path recognises, so its lines go
/// through the generic walk (what a site's own pasted format gets).
fn braced_okome() -> LogFormat {
    let mut braced = String::new();
    let mut rest = OKOME_LOG_FORMAT;
    while let Some(dollar) = rest.find('$') {
        braced.push_str(&rest[..=dollar]);
        rest = &rest[dollar + 1..];
        let name = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        braced.push_str(&format!("{{{}}}", &rest[..name]));
        rest = &rest[name..];
    }
    braced.push_str(rest);
    LogFormat::from_nginx(&format!("'{braced}'")).expect("compiles")
}

#[test]
fn the_braced_okome_format_is_the_okome_format_walked_generically() {
    let braced = braced_okome();
    assert!(!braced.is_okome());
    assert_eq!(
        braced.literal_lengths(),
        LogFormat::okome().literal_lengths()
    );
    assert!(braced.check_okome(GOOD).is_none());
    let (generic, okome) = (braced.parse(GOOD).unwrap(), LogFormat::okome());
    assert_eq!(
        format!("{generic:?}"),
        format!("{:?}", okome.parse(GOOD).unwrap())
    );
}

/// Formats whose lines go through the generic walk: the okome format
/// spelt generically, nginx's combined, a format whose fields are
/// closed by other bytes than quotes and spaces, and `escape=json`.
fn walked_formats() -> Vec<LogFormat> {
    vec![
        braced_okome(),
        LogFormat::combined(),
        LogFormat::from_nginx(
            r#"'$remote_addr|$time_local|$status|$body_bytes_sent|$request_time|$upstream_cache_status>>$request<<$okome_warm'"#,
        )
        .unwrap(),
        LogFormat::from_nginx(&format!("log_format j escape=json '{OKOME_LOG_FORMAT}';")).unwrap(),
    ]
}

/// The walk (off a reader's index, and searching a line on its own)
/// against the plain rule: the same fields, or the same reason; and the
/// accessors an entry overrides against the defaults they shortcut.
fn same_walk(format: &LogFormat, line: &Line<'_>) -> Result<(), TestCaseError> {
    let plainly = format.check_plainly(line.bytes);
    for walked in [
        format.check_line(line),
        format.check_with(line.bytes, false),
    ] {
        match (&walked, &plainly) {
            (Ok(walked), Ok(plainly)) => {
                prop_assert_eq!(format!("{walked:?}"), format!("{plainly:?}"));
                prop_assert_eq!(walked.line(), plainly.line());
                for field in ALL_FIELDS {
                    prop_assert_eq!(walked.raw(field), plainly.raw(field), "{:?}", field);
                    prop_assert_eq!(
                        walked.short_word(field),
                        walked.raw(field).map(ShortWord::of),
                        "{:?}",
                        field
                    );
                }
                let count = walked
                    .raw(Field::BodyBytesSent)
                    .or_else(|| walked.raw(Field::BytesSent));
                let by_bytes = count.and_then(|raw| match raw {
                    b"-" => Some(0),
                    raw => fields::parse_count(raw),
                });
                prop_assert_eq!(walked.body_bytes(), by_bytes);
                let status = walked
                    .known(Field::Status)
                    .and_then(|raw| fields::three_digits(raw.try_into().ok()?));
                prop_assert_eq!(walked.status(), status);
            }
            (Err(walked), Err(plainly)) => prop_assert_eq!(walked, plainly),
            (walked, plainly) => {
                prop_assert!(false, "walked {:?}, plainly {:?}", walked, plainly)
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn the_walk_finds_what_the_plain_rule_finds(
        padding in 0usize..130,
        assembled in assembled_line(),
        damaged in damaged_line(),
        dirty in dirty_input(),
    ) {
        // After a line of `padding` bytes, so that every line's quotes and
        // spaces fall anywhere in the reader's index words.
        let mut input = vec![b' '; padding];
        for line in [&assembled, &damaged, &dirty] {
            input.push(b'\n');
            input.extend_from_slice(line);
        }
        let formats = walked_formats();
        let mut reader = LineReader::new(&input[..]);
        while let Some(line) = reader.next_line().unwrap() {
            for format in &formats {
                same_walk(format, &line)?;
            }
        }
    }
}

#[test]
fn the_walk_reads_the_other_formats_fields() {
    let formats = walked_formats();
    let line = br#"192.0.2.7|20/Nov/2026:10:00:00 +0100|404|-|0.002|MISS>>GET /a|b HTTP/1.1<<1"#;
    let entry = formats[2].parse(line).expect("parses");
    assert_eq!(entry.status(), Some(404));
    assert_eq!(entry.body_bytes(), Some(0));
    assert_eq!(entry.cache_status(), Some(&b"MISS"[..]));
    assert_eq!(entry.target(), Some(&b"/a|b"[..]));
    assert!(entry.warm());
    // `\"` inside a value is not the quote that closes it with escape=json.
    let json = br#"192.0.2.7 - - [20/Nov/2026:10:00:00 +0100] "GET / HTTP/1.1" 200 5 "-" "a \" cache=HIT b" cache=MISS rt=0.001 urt="-" rid=1 canary=- warm=-"#;
    let entry = formats[3].parse(json).expect("parses");
    assert_eq!(entry.user_agent(), Some(&br#"a \" cache=HIT b"#[..]));
    assert_eq!(entry.cache_status(), Some(&b"MISS"[..]));
}

/// nginx's sample `main` format (nginx.conf as shipped): `combined` and the
/// forwarded-for header.
const MAIN_LOG_FORMAT: &str = concat!(
    r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "#,
    r#""$http_referer" "$http_user_agent" "$http_x_forwarded_for""#
);

fn compiled(format: &str) -> LogFormat {
    LogFormat::from_nginx(&format!("'{format}'")).expect("compiles")
}

#[test]
fn the_combined_heads_literals_are_combineds() {
    let combined = LogFormat::combined();
    assert_eq!(
        combined.variables_and_literals()[..okome::HEAD],
        format::HEAD_VARIABLES
            .iter()
            .zip(okome::HEAD_LITERALS)
            .map(|(name, after)| (*name, after.as_bytes()))
            .collect::<Vec<_>>()
    );
}

#[test]
fn formats_that_start_like_combined_take_its_head() {
    let head = COMBINED_LOG_FORMAT
        .rsplit_once(r#" "$http_user_agent""#)
        .unwrap()
        .0;
    for (format, takes) in [
        (LogFormat::combined(), true),
        (LogFormat::okome(), true),
        (braced_okome(), true),
        (compiled(MAIN_LOG_FORMAT), true),
        (compiled(&format!(r#"{head} "$request_time""#)), true),
        // The seven fields and nothing after them, or not followed by a
        // quoted field (the head places the referer by its `" "`).
        (compiled(head), false),
        (compiled(&format!("{head} $request_time")), false),
        // A literal before the first field.
        (compiled(&format!("> {COMBINED_LOG_FORMAT}")), false),
        // Another variable, or another literal, in the first seven.
        (
            compiled(&COMBINED_LOG_FORMAT.replace("$remote_user", "$http_x_user")),
            false,
        ),
        (
            compiled(&COMBINED_LOG_FORMAT.replace("] \"", "]\t\"")),
            false,
        ),
        // `escape=json`: `\"` inside a value is not a closing quote.
        (
            LogFormat::from_nginx(&format!(
                "log_format j escape=json '{COMBINED_LOG_FORMAT}';"
            ))
            .unwrap(),
            false,
        ),
        (
            LogFormat::from_nginx(&format!(
                "log_format n escape=none '{COMBINED_LOG_FORMAT}';"
            ))
            .unwrap(),
            true,
        ),
    ] {
        assert_eq!(format.takes_combined_head(), takes, "{}", format.source());
    }
}

/// Lines that the combined head must place as the plain rule does, or
/// leave to the walk: every way its seven fields can be odd.
fn combined_lines() -> Vec<Vec<u8>> {
    let line = |addr: &str,
                user: &str,
                time: &str,
                request: &str,
                status: &str,
                bytes: &str,
                rest: &str| {
        format!(
            r#"{addr} - {user} [{time}] "{request}" {status} {bytes} "https://okome.lan/" "{rest}"#
        )
        .into_bytes()
    };
    let time = "20/Nov/2026:10:00:00 +0100";
    let request = "GET /assets/app.js?v=3 HTTP/1.1";
    let ua = r#"Mozilla \x22q\x22 cache=HIT" "10.0.0.9, 10.0.0.1""#;
    let mut lines = vec![
        line("192.0.2.7", "-", time, request, "200", "5120", ua),
        line("2001:db8::1", "-", time, request, "304", "0", ua),
        // A user with spaces, and one with ` [` inside.
        line("192.0.2.7", "a b", time, request, "200", "1", ua),
        line("192.0.2.7", "a [b", time, request, "200", "1", ua),
        line("192.0.2.7", "", time, request, "200", "1", ua),
        // An address holding ` - `.
        line("192.0.2.7 - x", "-", time, request, "200", "1", ua),
        // A time of another length or shape.
        line(
            "192.0.2.7",
            "-",
            "20/Nov/2026:10:00:00",
            request,
            "200",
            "1",
            ua,
        ),
        line(
            "192.0.2.7",
            "-",
            "20-Nov-2026 10:00:00 +0100",
            request,
            "200",
            "1",
            ua,
        ),
        line(
            "192.0.2.7",
            "-",
            "20/Nov/2026:10:00:00 +0100] [x",
            request,
            "200",
            "1",
            ua,
        ),
        // Requests: empty, garbage, with a raw quote (escape=none).
        line("192.0.2.7", "-", time, "", "400", "0", ua),
        line("192.0.2.7", "-", time, "\\x16\\x03\\x01", "400", "157", ua),
        line(
            "192.0.2.7",
            "-",
            time,
            r#"GET /a"b HTTP/1.1"#,
            "200",
            "1",
            ua,
        ),
        line(
            "192.0.2.7",
            "-",
            time,
            r#"GET /a" 200 1 "b HTTP/1.1"#,
            "200",
            "1",
            ua,
        ),
        // Status and byte counts of every shape.
        line("192.0.2.7", "-", time, request, "20x", "1", ua),
        line("192.0.2.7", "-", time, request, "2000", "1", ua),
        line("192.0.2.7", "-", time, request, "200", "-", ua),
        line("192.0.2.7", "-", time, request, "200", "123456789012", ua),
        line("192.0.2.7", "-", time, request, "200", "", ua),
        line("192.0.2.7", "-", time, request, "200", "12a", ua),
        line("192.0.2.7", "-", time, request, "200", "1 2", ua),
        // What follows the referer: missing, empty, cut, more of it.
        line("192.0.2.7", "-", time, request, "200", "1", ""),
        line("192.0.2.7", "-", time, request, "200", "1", r#"curl""#),
        line("192.0.2.7", "-", time, request, "200", "1", r#"curl" "-""#),
        line(
            "192.0.2.7",
            "-",
            time,
            request,
            "200",
            "1",
            r#"curl" "-" extra"#,
        ),
        line(
            "192.0.2.7",
            "-",
            time,
            request,
            "200",
            "1",
            r#"curl" "-" 0.002 HIT"#,
        ),
        line(
            "192.0.2.7",
            "-",
            time,
            request,
            "200",
            "1",
            r#"curl" "-" "x""#,
        ),
        br#"192.0.2.7 - - [20/Nov/2026:10:00:00 +0100] "GET / HTTP/1.1" 200 1 "-"""#.to_vec(),
        br#"192.0.2.7 - - [20/Nov/2026:10:00:00 +0100] "GET / HTTP/1.1" 200 1 "-" "#.to_vec(),
        br#"192.0.2.7 - - [20/Nov/2026:10:00:00 +0100] "GET / HTTP/1.1" 200 1 "-""x""#.to_vec(),
        br#"192.0.2.7 - - [20/Nov/2026:10:00:00 +0100] "GET / HTTP/1.1" 200 1 ""#.to_vec(),
    ];
    // Every line nginx might have cut short.
    let whole = line("192.0.2.7", "-", time, request, "200", "5120", ua);
    lines.extend((0..whole.len()).map(|cut| whole[..cut].to_vec()));
    lines
}

#[test]
fn the_combined_head_places_what_the_plain_rule_places() {
    let head = COMBINED_LOG_FORMAT
        .rsplit_once(r#" "$http_user_agent""#)
        .unwrap()
        .0;
    let formats = [
        compiled(MAIN_LOG_FORMAT),
        LogFormat::combined(),
        compiled(&format!(
            r#"{head} "$http_user_agent" $request_time $upstream_cache_status"#
        )),
        compiled(&format!(
            r#"{head} "$http_user_agent" "$http_x_forwarded_for"|$status"#
        )),
        braced_okome(),
        LogFormat::from_nginx(&format!("log_format n escape=none '{MAIN_LOG_FORMAT}';")).unwrap(),
    ];
    let lines = combined_lines();
    let mut parsed = 0;
    for ending in [&b"\n"[..], b"\r\n"] {
        for padding in [0, 1, 7, 63] {
            // After `padding` bytes, so that the lines' quotes and spaces
            // fall anywhere in the reader's index words.
            let mut input = vec![b' '; padding];
            for line in &lines {
                input.extend_from_slice(ending);
                input.extend_from_slice(line);
            }
            let mut reader = LineReader::new(&input[..]);
            while let Some(line) = reader.next_line().unwrap() {
                for format in &formats {
                    same_walk(format, &line).unwrap();
                    parsed += usize::from(format.check_line(&line).is_ok());
                }
            }
        }
    }
    // The lines are not all refused: the head's answers are compared too.
    assert!(parsed > 100, "{parsed}");
}

#[test]
fn the_main_format_reads_its_fields_after_the_head() {
    let format = compiled(MAIN_LOG_FORMAT);
    let line = br#"192.0.2.7 - - [20/Nov/2026:10:00:00 +0100] "GET /a?b HTTP/2.0" 206 10 "-" "curl \x22x\x22" "10.0.0.9""#;
    let entry = format.parse(line).expect("parses");
    assert_eq!(entry.target(), Some(&b"/a?b"[..]));
    assert_eq!(entry.status(), Some(206));
    assert_eq!(entry.body_bytes(), Some(10));
    assert_eq!(entry.user_agent(), Some(&br#"curl \x22x\x22"#[..]));
    assert_eq!(entry.field("http_x_forwarded_for"), Some(&b"10.0.0.9"[..]));
    assert_eq!(entry.time_local(), Some(1_795_165_200));
    // A `-` byte count is the walk's, and reads as 0.
    let dash =
        br#"192.0.2.7 - - [20/Nov/2026:10:00:00 +0100] "GET / HTTP/1.1" 200 - "-" "curl" "-""#;
    assert_eq!(format.parse(dash).expect("parses").body_bytes(), Some(0));
}
