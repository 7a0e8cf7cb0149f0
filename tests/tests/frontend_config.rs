//! The shipped nginx-frontend files pass `nginx -t` once remapped to a temp
//! prefix by the lab's substitution table — and that table is all the lab
//! changes: the rendered files are the shipped ones with only the table's
//! addresses, ports and paths replaced.

use std::fs;

use okome_lab::render::{FRONTEND_FILES, LabPorts, Target, render_frontend, substitute, table};
use okome_lab::{LabRoot, configs_dir, nginx};

fn ports() -> LabPorts {
    LabPorts {
        http: okome_lab::free_port(),
        ipv6: okome_lab::net::have_ipv6_loopback(),
        orchestrator: "127.0.0.1:9".parse().unwrap(),
        gate: okome_lab::free_port(),
        redis: 0,
    }
}

#[test]
fn shipped_frontend_passes_nginx_t_in_a_temp_prefix() {
    let root = LabRoot::new();
    let main = render_frontend(&root, &ports()).unwrap_or_else(|e| panic!("{e}"));
    let out = nginx::nginx_test(root.dir(), &main).unwrap_or_else(|e| panic!("{e}"));
    assert!(out.contains("test is successful"), "{out}");
}

#[test]
fn a_broken_shipped_file_fails_nginx_t() {
    // The check above can fail: the same render with one directive broken
    // is rejected by nginx -t.
    let root = LabRoot::new();
    let main = render_frontend(&root, &ports()).unwrap_or_else(|e| panic!("{e}"));
    let gate = root.path("/etc/nginx/okome/health_state.conf");
    let text = fs::read_to_string(&gate).unwrap();
    fs::write(
        &gate,
        text.replace("set $okome_upstream okome_gate;", "set $okome_upstream;"),
    )
    .unwrap();
    let err =
        nginx::nginx_test(root.dir(), &main).expect_err("a broken include must fail nginx -t");
    assert!(err.contains("health_state.conf"), "{err}");
}

#[test]
fn rendering_changes_only_what_the_table_lists() {
    let root = LabRoot::new();
    let ports = ports();
    render_frontend(&root, &ports).unwrap_or_else(|e| panic!("{e}"));
    let rows = table(root.dir(), &ports);
    let frontend: Vec<_> = rows
        .iter()
        .filter(|s| s.target == Target::Frontend)
        .collect();
    for (shipped, node_path) in FRONTEND_FILES {
        let original =
            fs::read_to_string(configs_dir().join("nginx-frontend").join(shipped)).unwrap();
        let rendered = fs::read_to_string(root.path(node_path)).unwrap();
        let mut used = vec![false; frontend.len()];
        assert_eq!(
            rendered,
            substitute(&original, &frontend, &mut used),
            "{shipped}"
        );
        // Undo the table (values back to shipped text): the shipped file again.
        let reverse: Vec<_> = frontend
            .iter()
            .filter(|s| !s.to.starts_with('#'))
            .map(|s| okome_lab::render::Substitution {
                target: s.target,
                from: s.to.clone(),
                to: s.from.clone(),
            })
            .collect();
        let reverse_refs: Vec<_> = reverse.iter().collect();
        let mut used = vec![false; reverse.len()];
        let back = substitute(&rendered, &reverse_refs, &mut used);
        if ports.ipv6 {
            assert_eq!(
                back, original,
                "{shipped}: the lab changed more than the table"
            );
        }
        for line in rendered
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
        {
            assert!(
                !line.contains("192.168."),
                "{shipped}: site address left in {line:?}"
            );
        }
    }
}

#[test]
fn the_orchestrator_address_lives_in_one_file() {
    let dir = configs_dir().join("nginx-frontend");
    let mut holders = Vec::new();
    for entry in fs::read_dir(&dir).unwrap().flatten() {
        let text = fs::read_to_string(entry.path()).unwrap();
        let code: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n");
        if code.contains("192.168.") {
            holders.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    assert_eq!(
        holders,
        vec!["upstream.conf".to_owned()],
        "site addresses must live only in upstream.conf"
    );
}

#[test]
fn shipped_site_passes_nginx_t_inside_debians_own_nginx_conf() {
    // On a node the site is included by Debian's nginx.conf, whose http{}
    // already sets things (access_log, gzip, ssl_*): the site must coexist
    // with it. Only its pid/log/include paths are moved into the lab root.
    let debian = fs::read_to_string("/etc/nginx/nginx.conf")
        .expect("/etc/nginx/nginx.conf (Debian's nginx package) is needed");
    let root = LabRoot::new();
    render_frontend(&root, &ports()).unwrap_or_else(|e| panic!("{e}"));
    let r = root.dir().display().to_string();
    let mut relocated = debian.clone();
    for (from, to) in [
        ("/run/nginx.pid", format!("{r}/run/nginx.pid")),
        ("/var/log/nginx/", format!("{r}/var/log/nginx/")),
        (
            "/etc/nginx/sites-enabled/",
            format!("{r}/etc/nginx/sites-enabled/"),
        ),
    ] {
        assert!(
            relocated.contains(from),
            "Debian's nginx.conf no longer contains {from:?}"
        );
        relocated = relocated.replace(from, &to);
    }
    let main = root.path("/etc/nginx/debian-nginx.conf");
    fs::write(&main, relocated).unwrap();
    let out = nginx::nginx_test(root.dir(), &main).unwrap_or_else(|e| panic!("{e}"));
    assert!(out.contains("test is successful"), "{out}");
}
