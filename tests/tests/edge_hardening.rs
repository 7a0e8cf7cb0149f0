//! What a LAN client cannot do to the edge (issue 12, part 2), on real
//! nginx running the shipped configs: name another host (cache poisoning
//! through Host), make nginx and the orchestrator read a path differently
//! (web-cache deception), use the localhost-only prewarm marker, break a
//! log line with a forged Basic-auth user, get an old request id replayed,
//! or read stub_status.
//!
//! "Never reached the orchestrator" is read from the stub's record of every
//! request it received; "never created or changed a cache entry" from the
//! cache files on disk and from the cache status of a follow-up request.
//! Other client addresses are real: the socket is bound to 127.0.0.5
//! before it connects (the lab's nginx treats only 127.0.0.1/::1 as itself).

use std::fs;
use std::net::IpAddr;
use std::time::Duration;

use okome_accesslog::{LogFormat, Record};
use okome_lab::render::{LAB_PI_A_NAME, LAB_PI_B_NAME, LAB_PUBLIC_NAME, LAB_VIP_NAME};
use okome_lab::{Lab, Request, configs_dir};

/// A client on the LAN, not the node itself.
fn lan() -> IpAddr {
    "127.0.0.5".parse().unwrap()
}

/// Every cache file's key and bytes, sorted: what "unchanged" compares.
fn cache_snapshot(lab: &Lab) -> Vec<(String, Vec<u8>)> {
    let mut entries: Vec<(String, Vec<u8>)> = lab
        .cache_entries()
        .into_iter()
        .map(|e| (e.key, fs::read(&e.path).unwrap()))
        .collect();
    entries.sort();
    entries
}

/// Requests that name another host: in the Host header (with or without a
/// port, any case), or in an absolute-form request line (whose host nginx
/// takes over the Host header). Some also ask for the localhost-only
/// refresh, which would otherwise re-fetch and replace the stored copy.
fn foreign_host_requests(path: &str) -> Vec<Request> {
    vec![
        Request::get(path).header("Host", "evil.example"),
        Request::get(path).header("Host", "EVIL.example:80"),
        Request::get(path)
            .header("Host", "evil.example")
            .header("X-OKOME-Refresh", "1"),
        Request::get(&format!("http://evil.example{path}")),
        Request::get(&format!("http://evil.example{path}")).header("X-OKOME-Refresh", "1"),
        Request::head(path).header("Host", "evil.example"),
        Request::get(path)
            .header("Host", "evil.example")
            .from(lan()),
    ]
}

#[test]
fn a_foreign_host_never_reaches_the_orchestrator_nor_the_cache() {
    let lab = Lab::start();
    let stored = lab.get("/static/known.css");
    assert_eq!(stored.cache_status(), "MISS");
    let before = cache_snapshot(&lab);
    assert_eq!(before.len(), 1);
    for path in [
        "/static/known.css",
        "/static/new.css",
        "/ui-schema/form.json",
    ] {
        for request in foreign_host_requests(path) {
            let what = format!(
                "{} {} {:?}",
                request.method, request.target, request.headers
            );
            let r = lab.send(request);
            assert_eq!(r.status, 421, "{what}: {}", r.text());
            // X-Upstream is empty (so not sent): nothing was proxied.
            assert_eq!(r.header("x-upstream"), None, "{what}");
        }
    }
    assert_eq!(
        lab.stub.total(),
        1,
        "only the first request reached the orchestrator: {:#?}",
        lab.stub.requests()
    );
    assert_eq!(
        cache_snapshot(&lab),
        before,
        "no cache entry created or changed"
    );
    // Follow-ups under the site's own name: the stored copy is the one the
    // first request stored; the other paths were never cached.
    let again = lab.get("/static/known.css");
    assert_eq!(again.cache_status(), "HIT");
    assert_eq!(again.body, stored.body);
    assert_eq!(lab.get("/static/new.css").cache_status(), "MISS");
    assert_eq!(lab.get("/ui-schema/form.json").cache_status(), "MISS");
}

#[test]
fn the_sites_own_names_are_answered_and_the_orchestrator_always_sees_the_public_name() {
    let lab = Lab::start();
    let names = [
        None, // the lab's default Host: 127.0.0.1:<port>
        Some(LAB_VIP_NAME),
        Some(LAB_PI_A_NAME),
        Some(LAB_PI_B_NAME),
        Some("localhost"),
        Some("LOCALHOST."),
    ];
    for (i, name) in names.iter().enumerate() {
        let mut request = Request::get(&format!("/page{i}"))
            // Headers frameworks also build links from: never the client's.
            .header("X-Forwarded-Host", "evil.example")
            .header("Forwarded", "host=evil.example;proto=https");
        if let Some(name) = name {
            request = request.header("Host", name);
        }
        let r = lab.send(request);
        assert_eq!(r.status, 200, "Host {name:?}");
        let seen = lab.stub.requests_to(&format!("/page{i}"));
        assert_eq!(seen.len(), 1, "Host {name:?}");
        assert_eq!(
            seen[0].header("host"),
            Some(LAB_PUBLIC_NAME),
            "Host {name:?}"
        );
        assert_eq!(
            seen[0].header("x-forwarded-host"),
            Some(LAB_PUBLIC_NAME),
            "Host {name:?}"
        );
        assert_eq!(seen[0].header("forwarded"), None, "Host {name:?}");
    }
    // The node's own loopback check (keepalived's track script) still works.
    let status = lab.send(Request::get("/nginx_status").header("Host", "127.0.0.1"));
    assert_eq!(status.status, 200);
}

#[test]
fn the_accepted_names_are_set_once_in_upstream_conf() {
    // The public name and the names answered live only in upstream.conf
    // (next to the orchestrator's address); okome-frontend.conf uses them.
    let dir = configs_dir().join("nginx-frontend");
    let upstream = fs::read_to_string(dir.join("upstream.conf")).unwrap();
    let frontend = fs::read_to_string(dir.join("okome-frontend.conf")).unwrap();
    let code = |text: &str| -> Vec<String> {
        text.lines()
            .map(|l| l.split('#').next().unwrap_or("").trim().to_owned())
            .filter(|l| !l.is_empty())
            .collect()
    };
    assert!(
        code(&upstream)
            .iter()
            .any(|l| l.starts_with("map \"\" $okome_public_host"))
    );
    assert!(
        code(&upstream)
            .iter()
            .any(|l| l.starts_with("map $host $okome_site_host"))
    );
    let frontend = code(&frontend);
    assert!(
        frontend.contains(&"proxy_set_header Host              $okome_public_host;".to_owned())
    );
    assert!(frontend.contains(&"if ($okome_site_host = 0) {".to_owned()));
    // `$host` / `$http_host` as whole variable names: `$hostname` (the
    // machine's own name, in X-OKOME-Node) is not the client's choice.
    let names_variable = |line: &str, var: &str| {
        line.match_indices(var).any(|(at, _)| {
            !line[at + var.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        })
    };
    assert!(!names_variable(
        "add_header X-OKOME-Node $hostname always;",
        "$host"
    ));
    assert!(names_variable("proxy_set_header Host $host;", "$host"));
    assert!(
        !frontend
            .iter()
            .any(|l| names_variable(l, "$host") || names_variable(l, "$http_host")),
        "okome-frontend.conf passes a client-chosen host on: {frontend:#?}"
    );
}

#[test]
fn encoded_dots_slashes_and_dot_segments_get_400_before_routing() {
    let lab = Lab::start();
    for target in [
        // Would land in the cached /static/ while the orchestrator sees /api/.
        "/api/%2e%2e/static/x.css",
        "/api/%2E%2E/static/x.css",
        "/api/.%2e/static/x.css",
        "/api%2f..%2fstatic/x.css",
        "/api/%2F../static/x.css",
        "/api/../static/x.css",
        // The other way round: the API location, the orchestrator sees /static/.
        "/static/..%2fapi/x",
        "/static/..%2Fapi/x",
        "/static/%2e%2e/api/x",
        "/static/../api/x",
        // Encoded slashes and backslashes alone, and single-dot segments.
        "/static%2Fx.css",
        "/static/a%2fb.css",
        "/static/a%5c..%5capi",
        "/static/./x.css",
        "/./api/x",
        "/static/..",
        "/static/.?v=1",
    ] {
        let r = lab.get(target);
        assert_eq!(r.status, 400, "{target}: {}", r.text());
        assert_eq!(r.cache_status(), "", "{target}");
    }
    assert_eq!(lab.stub.total(), 0, "{:#?}", lab.stub.requests());
    assert!(lab.cache_entries().is_empty());
    // Encoded characters in the query string, other percent-encodings in
    // the path and dots inside names are not confusing: they pass.
    for target in [
        "/api/search?q=a%2Fb%2e%2e",
        "/static/x.css?v=%2e%2e%2f",
        "/static/my%20file.css",
        "/static/..hidden/a.b.css",
        "/static/x...css",
    ] {
        let r = lab.get(target);
        assert_eq!(r.status, 200, "{target}");
    }
    assert_eq!(lab.stub.total(), 5);
}

#[test]
fn the_warm_marker_is_honoured_only_from_the_node_itself() {
    let lab = Lab::start();
    let warm = |path: &str| Request::get(path).header("X-OKOME-Warm", "1");
    lab.send(warm("/static/lan.css").from(lan()));
    lab.send(warm("/static/local.css").from("127.0.0.1".parse().unwrap()));
    let lines = lab.wait_for_log_lines(2, Duration::from_secs(5));
    assert!(lines[0].starts_with("127.0.0.5 "), "{}", lines[0]);
    assert!(
        lines[0].ends_with(" warm=-"),
        "a LAN client is not prewarm: {}",
        lines[0]
    );
    assert!(lines[1].ends_with(" warm=1"), "{}", lines[1]);
    let lan_seen = lab.stub.requests_to("/static/lan.css");
    assert_eq!(lan_seen[0].header("x-okome-warm"), None, "not passed on");
    assert!(lab.stub.requests_to("/static/local.css")[0].is_warm());
}

/// `Authorization: Basic` for `user:password` (RFC 4648 base64).
fn basic(user_and_password: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = user_and_password.as_bytes();
    let mut out = String::from("Basic ");
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn a_forged_basic_auth_user_does_not_break_log_lines() {
    assert_eq!(
        basic("Aladdin:open sesame"),
        "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
    );
    let lab = Lab::start();
    let forged = [
        // A user that carries a fake time and request: the fields after it
        // would be read from the attacker's text.
        "x [01/Jan/2026:00:00:00 +0000] \"GET /fake HTTP/1.1\" 200 1 \"-\" \"-\" cache=HIT y:pw",
        "a [b:pw",
        "has spaces:pw",
        "quote\"d [:pw",
    ];
    for user in forged {
        let r = lab.send(
            Request::get("/static/forged.css")
                .header("Authorization", &basic(user))
                .from(lan()),
        );
        assert_eq!(r.status, 200, "{user}");
    }
    lab.send(Request::get("/static/plain.css").header("Authorization", &basic("bob:pw")));
    let lines = lab.wait_for_log_lines(5, Duration::from_secs(5));
    assert_eq!(lines.len(), 5, "{lines:#?}");
    let format = LogFormat::okome();
    for line in &lines[..4] {
        let entry = format
            .parse(line.as_bytes())
            .unwrap_or_else(|| panic!("the parser cannot read {line:?}"));
        assert_eq!(entry.target(), Some(&b"/static/forged.css"[..]), "{line}");
        assert_eq!(entry.status(), Some(200), "{line}");
        assert!(line.starts_with("127.0.0.5 - - ["), "{line}");
    }
    let plain = format.parse(lines[4].as_bytes()).expect("plain line");
    assert_eq!(plain.target(), Some(&b"/static/plain.css"[..]));
    assert!(lines[4].starts_with("127.0.0.1 - bob ["), "{}", lines[4]);
    // okome-hit-ratio reads every line (and counts none as malformed).
    let out = lab.tool("okome-hit-ratio").arg("--json").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["lines"]["total"], 5, "{report:#}");
    assert_eq!(report["lines"]["malformed"], 0, "{lines:#?}");
    assert_eq!(report["lines"]["counted"], 5, "{report:#}");
}

#[test]
fn okome_nouser_is_the_okome_format_with_no_user() {
    let text =
        fs::read_to_string(configs_dir().join("nginx-frontend/okome-logformat.conf")).unwrap();
    let quoted = |marker: &str| -> String {
        let rest = &text[text.find(marker).unwrap_or_else(|| panic!("{marker}")) + marker.len()..];
        let open = rest.find('\'').unwrap() + 1;
        rest[open..open + rest[open..].find('\'').unwrap()].to_owned()
    };
    let okome = quoted("\nlog_format okome ");
    let nouser = quoted("\nlog_format okome_nouser ");
    assert_eq!(nouser, okome.replacen("$remote_user", "-", 1));
    assert!(!nouser.contains("$remote_user"));
}

#[test]
fn a_cached_request_id_is_never_replayed() {
    let lab = Lab::start();
    let ids = |r: &okome_lab::Response| -> Vec<String> {
        r.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("x-request-id"))
            .map(|(_, v)| v.clone())
            .collect()
    };
    let first = lab.get("/static/rid.css");
    assert_eq!(first.cache_status(), "MISS");
    let seen = lab.stub.requests_to("/static/rid.css");
    let sent = seen[0].header("x-request-id").unwrap().to_owned();
    assert_eq!(ids(&first), vec![sent.clone()], "one id, this request's");
    for _ in 0..2 {
        let hit = lab.get("/static/rid.css");
        assert_eq!(hit.cache_status(), "HIT");
        let hit_ids = ids(&hit);
        assert_eq!(hit_ids.len(), 1, "{hit_ids:?}");
        assert_ne!(hit_ids[0], sent, "the stored id was replayed");
        assert_eq!(hit_ids[0].len(), 32);
    }
}

#[test]
fn stub_status_is_restricted_with_plain_allow_and_deny() {
    let text =
        fs::read_to_string(configs_dir().join("nginx-frontend/okome-frontend.conf")).unwrap();
    let start = text
        .find("location = /nginx_status {")
        .expect("the stub_status location");
    let block = &text[start..start + text[start..].find('}').unwrap()];
    let lines: Vec<&str> = block
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .collect();
    for needed in [
        "allow 127.0.0.1;",
        "allow ::1;",
        "deny  all;",
        "stub_status;",
    ] {
        assert!(lines.contains(&needed), "{needed} missing in {block}");
    }
    assert!(
        lines.iter().position(|l| l.starts_with("deny"))
            > lines.iter().position(|l| *l == "allow ::1;")
    );
    assert!(!block.contains("if ("), "{block}");
    let lab = Lab::start();
    for (source, expected) in [("127.0.0.1", 200), ("127.0.0.5", 403)] {
        let r = lab.send(Request::get("/nginx_status").from(source.parse().unwrap()));
        assert_eq!(r.status, expected, "from {source}");
    }
}

/// Users asked for `path` three times, as far as nginx's log knows.
fn demand(lab: &Lab, path: &str) {
    use std::io::Write;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let line = format!(
        "198.51.100.9 - - [{}] \"GET {path} HTTP/1.1\" 200 1234 \"-\" \"Mozilla/5.0\" cache=HIT rt=0.001 urt=\"-\" rid=0123456789abcdef0123456789abcdef canary=control warm=-\n",
        okome_common::time::format_time_local(now)
    );
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(lab.access_log_path())
        .unwrap()
        .write_all(line.repeat(3).as_bytes())
        .unwrap();
}

/// The Host header okome-prewarm sent for `path`, read at the stub.
fn warm_host_at_stub(lab: &Lab, path: &str) -> String {
    let seen = lab.stub.requests_to(path);
    assert_eq!(seen.len(), 1, "{path}: {seen:#?}");
    assert!(seen[0].is_warm(), "{path}");
    seen[0].header("host").unwrap_or("").to_owned()
}

#[test]
fn prewarm_fills_the_cache_with_the_public_name() {
    let lab = Lab::start();
    let stub = lab.stub.url();
    let run = |target: &str, command: &mut std::process::Command| {
        let out = command
            .args(["--target", target, "--json", "--no-metrics"])
            .output()
            .unwrap();
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
        out
    };

    // Through nginx: the entry prewarm filled was generated for the public
    // name, and users then hit it.
    demand(&lab, "/static/warm.css");
    let out = run(&lab.url(""), &mut lab.tool("okome-prewarm"));
    assert!(out.status.success());
    assert_eq!(warm_host_at_stub(&lab, "/static/warm.css"), LAB_PUBLIC_NAME);
    assert_eq!(lab.get("/static/warm.css").cache_status(), "HIT");

    // What prewarm itself sends, seen at the stub with no nginx between.
    let port = lab.stub.addr().port();
    // OKOME_WARM_HOST (here the lab's public name).
    demand(&lab, "/static/direct1.css");
    run(&stub, &mut lab.tool("okome-prewarm"));
    assert_eq!(
        warm_host_at_stub(&lab, "/static/direct1.css"),
        format!("{LAB_PUBLIC_NAME}:{port}")
    );
    // The built-in default: the shipped public name (upstream.conf's VIP).
    demand(&lab, "/static/direct2.css");
    run(
        &stub,
        lab.tool("okome-prewarm").env_remove("OKOME_WARM_HOST"),
    );
    assert_eq!(
        warm_host_at_stub(&lab, "/static/direct2.css"),
        format!("192.168.86.18:{port}")
    );
    // The site's /etc/default/okome-prewarm.
    let defaults = lab.root.path("/etc/default/okome-prewarm");
    fs::create_dir_all(defaults.parent().unwrap()).unwrap();
    fs::write(&defaults, "OKOME_WARM_HOST=okome.home.arpa\n").unwrap();
    demand(&lab, "/static/direct3.css");
    run(
        &stub,
        lab.tool("okome-prewarm").env_remove("OKOME_WARM_HOST"),
    );
    assert_eq!(
        warm_host_at_stub(&lab, "/static/direct3.css"),
        format!("okome.home.arpa:{port}")
    );
    // Empty: the target's own authority (the old behaviour, on request).
    demand(&lab, "/static/direct4.css");
    run(&stub, lab.tool("okome-prewarm").args(["--host", ""]));
    assert_eq!(
        warm_host_at_stub(&lab, "/static/direct4.css"),
        format!("127.0.0.1:{port}")
    );
}

#[test]
fn prewarm_refuses_a_host_that_is_not_a_name() {
    let lab = Lab::start();
    for bad in [
        "evil.example\r\nX-Injected: 1",
        "a b",
        "host/path",
        "user@host",
    ] {
        let out = lab
            .tool("okome-prewarm")
            .args(["--dry-run", "--host", bad])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        let said = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            said.contains("is not a host name or IP address"),
            "{bad:?}: {said}"
        );
    }
    for good in ["okome.home.arpa", "192.168.86.18", "fd00::18", ""] {
        let out = lab
            .tool("okome-prewarm")
            .args(["--dry-run", "--host", good])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{good:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
