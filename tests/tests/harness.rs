//! The harness's own promises: a ProcessGuard kills the whole process group
//! on drop (and even when its owner vanishes without dropping it), the lab
//! root is removed, the stub's modes behave as documented.

use std::process::Command;
use std::time::{Duration, Instant};

use okome_lab::{Lab, LabRoot, Mode, ProcessGuard, Request, StubOrchestrator};

fn gone(pid: u32, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Gone, or a zombie waiting for its parent to reap it.
        if stat.is_empty() || stat.split_whitespace().nth(2) == Some("Z") {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

fn grandchild_pid(root: &LabRoot) -> u32 {
    let pidfile = root.path("/run/grandchild.pid");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(text) = std::fs::read_to_string(&pidfile)
            && let Ok(pid) = text.trim().parse()
        {
            return pid;
        }
        assert!(
            Instant::now() < deadline,
            "the shell never wrote its grandchild's pid"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn spawn_family(root: &LabRoot) -> ProcessGuard {
    let pidfile = root.path("/run/grandchild.pid");
    let script = format!("sleep 300 & echo $! > {}; wait", pidfile.display());
    ProcessGuard::spawn("sh", Command::new("sh").arg("-c").arg(script), None).expect("sh")
}

#[test]
fn process_guard_kills_the_whole_group_on_drop() {
    let root = LabRoot::new();
    let guard = spawn_family(&root);
    let leader = guard.pid();
    let grandchild = grandchild_pid(&root);
    drop(guard);
    assert!(
        gone(leader, Duration::from_secs(5)),
        "leader {leader} survived"
    );
    assert!(
        gone(grandchild, Duration::from_secs(5)),
        "grandchild {grandchild} survived"
    );
}

#[test]
fn a_child_dies_when_the_thread_that_started_it_ends_without_dropping_it() {
    let leader = std::thread::spawn(|| {
        let guard =
            ProcessGuard::spawn("sleep", Command::new("sleep").arg("300"), None).expect("sleep");
        let pid = guard.pid();
        // As if the owner vanished without running Drop (a killed test).
        std::mem::forget(guard);
        pid
    })
    .join()
    .unwrap();
    assert!(
        gone(leader, Duration::from_secs(5)),
        "orphaned child {leader} survived its thread"
    );
}

#[test]
fn the_lab_leaves_nothing_behind() {
    let lab = Lab::start();
    let root = lab.root.dir().to_path_buf();
    let nginx = lab.nginx.master_pid();
    let stub = lab.stub.addr();
    lab.get("/");
    drop(lab);
    assert!(!root.exists(), "{} left behind", root.display());
    assert!(
        gone(nginx, Duration::from_secs(5)),
        "nginx {nginx} survived"
    );
    assert!(
        std::net::TcpStream::connect(stub).is_err(),
        "stub still listening on {stub}"
    );
}

#[test]
fn stub_modes_answer_as_documented_and_requests_are_recorded() {
    let stub = StubOrchestrator::start();
    let addr = stub.addr();
    let r = Request::get("/health")
        .header("X-OKOME-Warm", "1")
        .send(addr)
        .unwrap();
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "{\"status\":\"ok\"}\n")
    );
    stub.set_health(Mode::Down);
    assert_eq!(Request::get("/health").send(addr).unwrap().status, 503);
    assert_eq!(
        Request::get("/").send(addr).unwrap().status,
        200,
        "only /health is down"
    );
    stub.set_health(Mode::Hung);
    let hung = Request::get("/health")
        .timeout(Duration::from_millis(300))
        .send(addr);
    assert!(hung.is_err(), "a hung /health must not answer: {hung:?}");
    stub.set_health(Mode::Up);
    stub.set_mode(Mode::Down);
    assert_eq!(Request::get("/").send(addr).unwrap().status, 503);
    stub.set_mode(Mode::Refused);
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "refused means the port is closed"
    );
    stub.set_mode(Mode::Up);
    assert_eq!(Request::get("/").send(addr).unwrap().status, 200);
    let seen = stub.requests_to("/health");
    assert!(seen[0].is_warm());
    assert_eq!(seen[0].user_agent(), Some("okome-lab"));
    assert_eq!(stub.per_second().values().sum::<usize>(), stub.total());
}

#[test]
fn nginx_on_a_taken_port_is_reported_not_mistaken_for_ready() {
    // Someone else holds the port: a connect would succeed, but this is not
    // our nginx. try_start must say so (the lab then picks another port).
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = squatter.local_addr().unwrap().port();
    let root = LabRoot::new();
    let ports = okome_lab::render::LabPorts {
        http: port,
        ipv6: false,
        orchestrator: "127.0.0.1:9".parse().unwrap(),
        gate: okome_lab::free_port(),
        redis: 0,
    };
    let main = okome_lab::render::render_frontend(&root, &ports).unwrap();
    let err = okome_lab::nginx::Nginx::try_start(&root, &main, port, false)
        .expect_err("nginx cannot own a port that is taken");
    assert!(err.contains("in use"), "{err}");
}
