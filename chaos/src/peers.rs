//! One run at a time across the cluster: before injecting, every peer named
//! in the shared cluster file (`/etc/okome/cluster.conf`, the file
//! `okome-validate --cluster` reads) is asked `sudo -n okome-chaos status`
//! (the peer's login is the admin: okome-node's sshd takes no root login, and
//! the shipped /etc/sudoers.d/okome-chaos allows exactly that command) over
//! the same transport validate uses (OpenSSH, `BatchMode=yes`, a connect
//! timeout, under a hard `timeout`). Exit 0 there means no run in progress
//! and none unreverted; anything else refuses this run: 1 is a run on the
//! peer, and a peer that cannot be asked is a peer whose state is unknown.
//!
//! Why this is sound with the local lock: a runner takes its own lock
//! *before* asking its peers, and `status` reports a held lock as a run in
//! progress. Two runners starting together on A and B each hold their lock
//! when they ask the other, so at least one of them sees the other (both may
//! refuse; neither can miss the other).
//!
//! The file's parsing and the judgement of the answers are pure; the
//! commands go through [`Host`].

use std::path::Path;

use serde_json::{Value, json};

use crate::host::{Host, Ran};

/// The shared cluster file's default path.
pub const CLUSTER_FILE: &str = "/etc/okome/cluster.conf";

/// How long one peer may take to answer, connection included (seconds).
pub const PEER_DEADLINE_SECS: u64 = 15;

/// A peer as the cluster file names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Its node name.
    pub name: String,
    /// Where ssh connects (`ssh=DEST`, default its address).
    pub dest: String,
}

/// The nodes of a cluster file but `me`: lines `node NAME ROLE ADDRESS
/// [ssh=DEST] [header=…]`; every other directive is validate's business.
pub fn parse(text: &str, me: &str) -> Result<Vec<Peer>, String> {
    let mut peers = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("");
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.first() != Some(&"node") {
            continue;
        }
        let [_, name, _role, address, options @ ..] = words.as_slice() else {
            return Err(format!(
                "line {}: `node NAME ROLE ADDRESS [ssh=DEST]` expected",
                number + 1
            ));
        };
        let dest = options
            .iter()
            .find_map(|o| o.strip_prefix("ssh="))
            .unwrap_or(address);
        if dest.starts_with('-') || dest.is_empty() {
            return Err(format!("line {}: bad ssh destination {dest:?}", number + 1));
        }
        if *name != me {
            peers.push(Peer {
                name: name.to_string(),
                dest: dest.to_string(),
            });
        }
    }
    Ok(peers)
}

/// How the peers are reached: the ssh program, and the site's own `-o`
/// options (an identity file, a port, a jump host: what okome-validate's
/// `--ssh-option` carries), read after ours, so they cannot take
/// `BatchMode` away (ssh keeps the first value it reads).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ssh {
    pub program: String,
    pub options: Vec<String>,
}

/// The command that asks `peer` for its chaos state.
pub fn status_argv(ssh: &Ssh, peer: &Peer) -> Vec<String> {
    let mut argv: Vec<String> = [
        "timeout",
        "--kill-after=2",
        &PEER_DEADLINE_SECS.to_string(),
        &ssh.program,
        "-o",
        "BatchMode=yes",
        "-o",
        "ConnectTimeout=3",
        "-o",
        "ControlMaster=no",
        "-o",
        "ControlPath=none",
    ]
    .map(String::from)
    .to_vec();
    for option in &ssh.options {
        argv.extend(["-o".to_string(), option.clone()]);
    }
    argv.extend([
        peer.dest.clone(),
        // The peer's login is the admin (okome-node's sshd allows no root
        // login); the shipped sudoers rule lets it run exactly this.
        "sudo -n okome-chaos status".to_string(),
    ]);
    argv
}

/// What a peer's answer means for this run: `Ok` when it is idle.
pub fn judge(peer: &Peer, ran: &Ran) -> Result<(), String> {
    match ran.code {
        Some(0) => Ok(()),
        Some(1) => {
            let busy: Vec<&str> = ran
                .stdout
                .lines()
                .filter(|l| l.contains("NOT REVERTED") || l.contains("IN PROGRESS"))
                .collect();
            Err(format!(
                "peer {} has a chaos run in progress or unreverted ({}): one run at a time across the cluster",
                peer.name,
                if busy.is_empty() {
                    "okome-chaos status exit 1".to_string()
                } else {
                    busy.join("; ")
                }
            ))
        }
        code => Err(format!(
            "cannot tell peer {}'s chaos state ({} {}: {}): a peer that cannot be asked may be running one",
            peer.name,
            peer.dest,
            match code {
                Some(124) => "timed out".to_string(),
                Some(code) => format!("exit {code}"),
                None => "killed".to_string(),
            },
            ran.stderr.lines().last().unwrap_or("")
        )),
    }
}

/// Ask every peer of `file`; the snapshot for the journal, or why this run
/// must not go on. No cluster file: no peers known (the default preflight,
/// `okome-validate --cluster`, refuses without one).
pub fn check(
    host: &mut dyn Host,
    file: &Path,
    me: &str,
    ssh: &Ssh,
) -> Result<Value, (Value, String)> {
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok(json!({"file": file.display().to_string(), "peers": [],
                             "note": "no cluster file: no peers to ask"}));
        }
        Err(error) => {
            return Err((
                json!({"file": file.display().to_string()}),
                format!("{}: {error}", file.display()),
            ));
        }
    };
    let peers = parse(&text, me).map_err(|why| {
        (
            json!({"file": file.display().to_string()}),
            format!("{}: {why}", file.display()),
        )
    })?;
    let mut answers = Vec::new();
    let mut refusal = None;
    for peer in &peers {
        let argv = status_argv(ssh, peer);
        let ran = host.run(&argv);
        let verdict = judge(peer, &ran);
        answers.push(
            json!({"peer": peer.name, "dest": peer.dest, "code": ran.code,
                            "stdout": ran.stdout, "stderr": ran.stderr, "idle": verdict.is_ok()}),
        );
        if let Err(why) = verdict {
            refusal.get_or_insert(why);
        }
    }
    let snapshot = json!({"file": file.display().to_string(), "peers": answers});
    match refusal {
        None => Ok(snapshot),
        Some(why) => Err((snapshot, why)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "vip 10.213.86.18\norchestrator http://10.213.86.25:8000/health\n\
        node frontend-a frontend 10.213.86.20 ssh=root@10.213.86.20\n\
        node frontend-b frontend 10.213.86.21   # the standby\n\
        node backend backend 10.213.86.19 header=X-OKOME-Node\n\
        waive node.disk * 2999-12-31 lab\n";

    fn ran(code: Option<i32>, stdout: &str) -> Ran {
        Ran {
            code,
            stdout: stdout.into(),
            stderr: "ssh: connect to host 10.213.86.19 port 22: No route to host".into(),
        }
    }

    #[test]
    fn the_peers_are_every_node_but_this_one() {
        let peers = parse(FILE, "frontend-a").unwrap();
        assert_eq!(
            peers,
            [
                Peer {
                    name: "frontend-b".into(),
                    dest: "10.213.86.21".into()
                },
                Peer {
                    name: "backend".into(),
                    dest: "10.213.86.19".into()
                },
            ]
        );
        assert_eq!(
            parse(FILE, "frontend-b").unwrap()[0].dest,
            "root@10.213.86.20"
        );
        assert!(parse("node a frontend\n", "x").is_err());
        assert!(parse("node a frontend 1.2.3.4 ssh=-oProxyCommand=x\n", "x").is_err());
    }

    #[test]
    fn only_an_idle_peer_lets_the_run_go_on() {
        let peer = &parse(FILE, "frontend-a").unwrap()[0];
        let ssh = Ssh {
            program: "ssh".into(),
            options: vec!["Port=2222".into(), "BatchMode=no".into()],
        };
        let argv = status_argv(&ssh, peer);
        assert_eq!(argv[..4], ["timeout", "--kill-after=2", "15", "ssh"]);
        // The site's options come after ours: ssh keeps the first value, so
        // BatchMode stays on.
        let batch = argv.iter().position(|a| a == "BatchMode=yes").unwrap();
        let port = argv.iter().position(|a| a == "Port=2222").unwrap();
        let theirs = argv.iter().position(|a| a == "BatchMode=no").unwrap();
        assert!(
            batch < port && port < theirs && argv[port - 1] == "-o",
            "{argv:?}"
        );
        assert_eq!(
            argv[argv.len() - 2..],
            ["10.213.86.21", "sudo -n okome-chaos status"]
        );
        assert_eq!(
            judge(peer, &ran(Some(0), "guard: disarmed\nno runs\n")),
            Ok(())
        );
        let busy = judge(
            peer,
            &ran(
                Some(1),
                "guard: ARMED …\n20261207T110000Z-origin-loss  origin-loss  frontend-b  NOT REVERTED  -\n",
            ),
        )
        .unwrap_err();
        assert!(busy.contains("peer frontend-b has a chaos run"), "{busy}");
        assert!(busy.contains("20261207T110000Z-origin-loss"), "{busy}");
        for (code, word) in [
            (Some(255), "exit 255"),
            (Some(124), "timed out"),
            (Some(127), "exit 127"),
            (None, "killed"),
        ] {
            let why = judge(peer, &ran(code, "")).unwrap_err();
            assert!(
                why.contains("cannot tell peer frontend-b") && why.contains(word),
                "{why}"
            );
        }
    }
}
