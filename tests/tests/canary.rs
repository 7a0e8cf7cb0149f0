//! Seed 000 part A on the lab: X-OKOME-Canary header or okome_canary cookie
//! → control / canary / debug (unknown → control); /ui-schema/ TTL 24 h /
//! 5 m / bypass, /assets/ key v1 / v2 / bypass; response header
//! X-OKOME-Canary: control | canary-ttl-5m | debug-bypass.

use std::time::{SystemTime, UNIX_EPOCH};

use okome_lab::{Lab, Request};

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn the_three_modes_by_header_and_cookie_and_unknown_values() {
    let lab = Lab::start();
    let cases = [
        (None, None, "control", "control"),
        (Some("control"), None, "control", "control"),
        (Some("canary"), None, "canary-ttl-5m", "canary"),
        (Some("debug"), None, "debug-bypass", "debug"),
        (None, Some("canary"), "canary-ttl-5m", "canary"),
        (None, Some("debug"), "debug-bypass", "debug"),
        (Some("bogus"), None, "control", "control"),
        (None, Some("bogus"), "control", "control"),
        // A valid header wins over the cookie.
        (Some("debug"), Some("canary"), "debug-bypass", "debug"),
    ];
    for (i, (header, cookie, label, logged)) in cases.iter().enumerate() {
        let mut request = Request::get(&format!("/ui-schema/foo?case={i}"));
        if let Some(h) = header {
            request = request.header("X-OKOME-Canary", h);
        }
        if let Some(c) = cookie {
            request = request.header("Cookie", &format!("okome_canary={c}"));
        }
        let r = lab.send(request);
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("x-okome-canary"),
            Some(*label),
            "case {i}: {header:?} {cookie:?}"
        );
        let lines = lab.wait_for_log_lines(i + 1, std::time::Duration::from_secs(5));
        assert!(
            lines[i].contains(&format!(" canary={logged} ")),
            "case {i}: {}",
            lines[i]
        );
    }
}

#[test]
fn ui_schema_ttl_is_24h_for_control_and_5m_for_canary_in_their_own_entries() {
    let lab = Lab::start();
    // The origin's own Cache-Control (max-age=60) is ignored for /ui-schema/.
    let before = now();
    assert_eq!(lab.get("/ui-schema/a").cache_status(), "MISS");
    assert_eq!(
        lab.send(Request::get("/ui-schema/a").header("X-OKOME-Canary", "canary"))
            .cache_status(),
        "MISS"
    );
    assert_eq!(lab.get("/ui-schema/a").cache_status(), "HIT");
    assert_eq!(
        lab.send(Request::get("/ui-schema/a").header("X-OKOME-Canary", "canary"))
            .cache_status(),
        "HIT"
    );
    let after = now();
    let entries = lab.cache_entries();
    let control = entries
        .iter()
        .find(|e| e.key == "okome/ui-schema/a")
        .expect("control entry");
    let canary = entries
        .iter()
        .find(|e| e.key == "okome/ui-schema/a|ui-schema-canary")
        .expect("canary entry");
    let in_window = |valid: i64, ttl: i64| valid >= before + ttl && valid <= after + ttl;
    assert!(
        in_window(control.valid_until, 24 * 3600),
        "control valid until {} (now {after})",
        control.valid_until
    );
    assert!(
        in_window(canary.valid_until, 300),
        "canary valid until {} (now {after})",
        canary.valid_until
    );
}

#[test]
fn assets_key_v1_for_control_v2_for_canary() {
    let lab = Lab::start();
    let control = lab.get("/assets/app.js");
    let canary = lab.send(Request::get("/assets/app.js").header("X-OKOME-Canary", "canary"));
    assert_eq!(control.cache_status(), "MISS");
    assert_eq!(canary.cache_status(), "MISS", "canary has its own key");
    assert_ne!(control.body, canary.body);
    assert_eq!(lab.get("/assets/app.js").body, control.body);
    let keys: Vec<String> = lab.cache_entries().into_iter().map(|e| e.key).collect();
    assert!(
        keys.contains(&"okome/assets/app.js|assets-v1".to_owned()),
        "{keys:?}"
    );
    assert!(
        keys.contains(&"okome/assets/app.js|assets-v2".to_owned()),
        "{keys:?}"
    );
}

#[test]
fn debug_bypasses_the_cache_and_stores_nothing() {
    let lab = Lab::start();
    assert_eq!(lab.get("/assets/d.js").cache_status(), "MISS");
    for _ in 0..2 {
        let r = lab.send(Request::get("/assets/d.js").header("X-OKOME-Canary", "debug"));
        assert_eq!(r.cache_status(), "BYPASS");
    }
    assert_eq!(
        lab.stub.count("/assets/d.js"),
        3,
        "every debug request reached the origin"
    );
    let debug_first = lab.send(Request::get("/ui-schema/d").header("X-OKOME-Canary", "debug"));
    assert_eq!(debug_first.cache_status(), "BYPASS");
    assert_eq!(
        lab.get("/ui-schema/d").cache_status(),
        "MISS",
        "debug stored nothing"
    );
    assert_eq!(
        lab.get("/assets/d.js").cache_status(),
        "HIT",
        "control's copy untouched"
    );
}
