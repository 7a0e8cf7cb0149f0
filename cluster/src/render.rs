//! The one address table and the per-node rendering of the shipped configs.
//!
//! The shipped files name the site LAN (192.168.86.x: VIP .18, backend .19,
//! frontend Pi A .20, Pi B .21, orchestrator .25). The lab keeps the last
//! octet and moves the network to 10.213.86.0/24, so a lab file differs
//! from the shipped one only in its addresses, and reading one next to the
//! other needs no legend. Nothing else is edited, except what a site sets
//! per Pi anyway: the probe's heartbeat name, and — with more than two
//! frontends — keepalived's priority and unicast peers (see [`keepalived`]).
//! `X-OKOME-Node` is not among them: the shipped nginx sends `$hostname`,
//! and each node's /etc/hostname carries its name, as on a Pi.

use std::fmt;

/// The shipped site network (the /24 every shipped address lives in).
pub const SITE_NET: &str = "192.168.86.";
/// The lab's network: the tests' range, one /24 of it.
pub const LAB_NET: &str = "10.213.86.";
/// The VIP's last octet (shipped 192.168.86.18).
pub const VIP_OCTET: u8 = 18;
/// Most frontends a lab renders (.20 … .24; .25 is the orchestrator).
pub const MAX_FRONTENDS: usize = 5;
/// The password of every okome Redis ACL user in the lab (the backend's
/// tree sets their hashes; the frontends' prewarm uses `edge`).
pub const REDIS_PASSWORD: &str = "okome-lab-redis-pw";

/// What a node runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// okome-frontend (nginx, keepalived), the tools, okome-node.
    Frontend,
    /// okome-backend (redis-server), okome-node.
    Backend,
    /// The stub orchestrator, a unit on a bare node.
    Orchestrator,
    /// curl, nothing of okome's: the browser.
    Client,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Frontend => "frontend",
            Role::Backend => "backend",
            Role::Orchestrator => "orchestrator",
            Role::Client => "client",
        })
    }
}

/// One node of the plan: its name (= host name), role and address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub role: Role,
    pub octet: u8,
}

impl Member {
    pub fn address(&self) -> String {
        format!("{LAB_NET}{}", self.octet)
    }
    /// The shipped (site) address this node stands for.
    pub fn site_address(&self) -> String {
        format!("{SITE_NET}{}", self.octet)
    }
}

/// The lab's nodes for `frontends` frontends: frontend-a (.20),
/// frontend-b (.21), … , backend (.19), orchestrator (.25), client (.30).
pub fn plan(frontends: usize) -> crate::Result<Vec<Member>> {
    if !(2..=MAX_FRONTENDS).contains(&frontends) {
        return Err(format!("--frontends {frontends}: 2 to {MAX_FRONTENDS}").into());
    }
    let mut members = Vec::new();
    for i in 0..frontends {
        let letter = char::from(b'a' + u8::try_from(i)?);
        members.push(Member {
            name: format!("frontend-{letter}"),
            role: Role::Frontend,
            octet: 20 + u8::try_from(i)?,
        });
    }
    for (name, role, octet) in [
        ("backend", Role::Backend, 19),
        ("orchestrator", Role::Orchestrator, 25),
        ("client", Role::Client, 30),
    ] {
        members.push(Member {
            name: name.into(),
            role,
            octet,
        });
    }
    Ok(members)
}

pub fn vip() -> String {
    format!("{LAB_NET}{VIP_OCTET}")
}

/// The address table: every site address the shipped files name → its lab
/// address (the network, the VIP and each planned node).
pub fn table(members: &[Member]) -> Vec<(String, String)> {
    let mut table = vec![
        (format!("{SITE_NET}0"), format!("{LAB_NET}0")),
        (format!("{SITE_NET}{VIP_OCTET}"), vip()),
    ];
    table.extend(members.iter().map(|m| (m.site_address(), m.address())));
    table
}

/// `text` with each table address replaced where it stands as a whole
/// address (not followed by another digit: .18 never eats into .180).
pub fn substitute(text: &str, table: &[(String, String)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    'scan: while !rest.is_empty() {
        for (from, to) in table {
            if let Some(after) = rest.strip_prefix(from.as_str())
                && !after.starts_with(|c: char| c.is_ascii_digit())
            {
                out.push_str(to);
                rest = after;
                continue 'scan;
            }
        }
        let c = rest.chars().next().unwrap_or_default();
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// keepalived.conf for frontend `index` of `frontends`, from the shipped
/// pair: frontend-a from keepalived-master.conf, every other from
/// keepalived-backup.conf, addresses through the table. With two frontends
/// that is all (a test holds it). With more, what a site edits for a third
/// Pi: its `router_id`, its own `unicast_src_ip`, every other frontend as a
/// unicast peer, and a priority below the one before it (B 100, C 90, …)
/// so the VIP moves down the chain on successive failures. Every node keeps
/// the shipped `state BACKUP` + `nopreempt` (both shipped files carry them):
/// a returning B must not take the VIP back from C.
pub fn keepalived(
    master: &str,
    backup: &str,
    index: usize,
    frontends: &[Member],
    table: &[(String, String)],
) -> String {
    let me = &frontends[index];
    let shipped = substitute(if index == 0 { master } else { backup }, table);
    let mut out = Vec::new();
    let mut in_peers = false;
    for line in shipped.lines() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        if in_peers {
            if trimmed.starts_with('}') {
                in_peers = false;
                out.push(line.to_string());
            }
            continue;
        }
        if trimmed.starts_with("router_id ") {
            let letter = me.name.trim_start_matches("frontend-");
            out.push(format!("{indent}router_id okome-frontend-{letter}"));
        } else if trimmed.starts_with("priority ") && index > 0 {
            out.push(format!("{indent}priority {}", 110 - 10 * index));
        } else if trimmed.starts_with("unicast_src_ip ") {
            out.push(format!("{indent}unicast_src_ip {}", me.address()));
        } else if trimmed.starts_with("unicast_peer {") {
            out.push(line.to_string());
            for (i, peer) in frontends.iter().enumerate() {
                if i != index {
                    out.push(format!("{indent}    {}", peer.address()));
                }
            }
            in_peers = true;
        } else {
            out.push(line.to_string());
        }
    }
    let mut text = out.join("\n");
    text.push('\n');
    text
}

/// Uncomment `#KEY=…` in an /etc/default file (the shipped default, through
/// the table) or, when `value` is given, set it; appended when absent.
pub fn set_default(
    text: &str,
    key: &str,
    value: Option<&str>,
    table: &[(String, String)],
) -> String {
    let mut found = false;
    let mut out: Vec<String> = Vec::new();
    for line in text.lines() {
        let commented = line.strip_prefix('#').unwrap_or(line);
        if !found && commented.starts_with(&format!("{key}=")) {
            found = true;
            out.push(match value {
                Some(v) => format!("{key}={v}"),
                None => substitute(commented, table),
            });
        } else {
            out.push(line.to_string());
        }
    }
    if !found {
        out.push(format!("{key}={}", value.unwrap_or_default()));
    }
    let mut text = out.join("\n");
    text.push('\n');
    text
}

/// upstream.conf: the table, plus a `map $host` line for each frontend
/// beyond the shipped two (a third Pi is a name this edge answers to).
pub fn upstream(shipped: &str, frontends: &[Member], table: &[(String, String)]) -> String {
    let text = substitute(shipped, table);
    let Some(b) = frontends.get(1) else {
        return text;
    };
    let mut out = Vec::new();
    for line in text.lines() {
        out.push(line.to_string());
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.first() == Some(&b.address().as_str()) && words.get(1) == Some(&"1;") {
            for extra in frontends.iter().skip(2) {
                out.push(format!(
                    "    {}    1;   # {} (lab)",
                    extra.address(),
                    extra.name
                ));
            }
        }
    }
    let mut text = out.join("\n");
    text.push('\n');
    text
}

/// The admin login a site creates on every Pi (Raspberry Pi OS's `pi`): in
/// group sudo, the operator's public key in its authorized_keys. okome-node
/// arms its sshd hardening (keys only, no root login) only for such a login.
pub const OPERATOR: &str = "pi";
/// Where the operator's private key lives on every okome node, for
/// `sudo okome-validate --cluster` (ssh runs as root there): the
/// `IdentityFile=` the shipped /etc/default/okome-validate suggests.
pub const OPERATOR_KEY: &str = "/root/.ssh/okome";

/// The okome nodes (what `okome-validate --cluster` asks): the frontends
/// and the backend.
pub fn okome_nodes(members: &[Member]) -> impl Iterator<Item = &Member> {
    members
        .iter()
        .filter(|m| matches!(m.role, Role::Frontend | Role::Backend))
}

/// /etc/okome/cluster.conf for the lab, the same on every okome node: the
/// README's site file through the address table — every node reached as
/// the operator's login (`ssh=pi@ADDRESS`), nothing else per node. Two lab
/// facts are waived, with their reasons: containers have no SD card, and
/// their / is the build host's disk (node.disk and node.sd-wear are proven
/// on fixture trees instead).
pub fn validate_conf(members: &[Member]) -> String {
    let orchestrator = members
        .iter()
        .find(|m| m.role == Role::Orchestrator)
        .map_or_else(String::new, Member::address);
    let mut text = format!(
        "# /etc/okome/cluster.conf — rendered by the cluster lab (render::validate_conf)\n\
         vip          {}\n\
         orchestrator http://{orchestrator}:8000/health\n",
        vip()
    );
    for m in okome_nodes(members) {
        text.push_str(&format!(
            "node {} {} {} ssh={OPERATOR}@{}\n",
            m.name,
            m.role,
            m.address(),
            m.address()
        ));
    }
    text.push_str(
        "waive node.sd-wear * 2999-12-31 lab containers have no SD card\n\
         waive node.disk * 2999-12-31 lab containers share the build host's disk\n",
    );
    text
}

/// /etc/default/okome-validate of one okome node: the shipped file with
/// the Redis URLs (the tools' `edge` user and the `operator` user, on the
/// backend's address — loopback on the backend itself) and the operator's
/// key for `--cluster`.
pub fn validate_defaults(shipped: &str, me: &Member, members: &[Member]) -> String {
    let host = if me.role == Role::Backend {
        "127.0.0.1".to_string()
    } else {
        members
            .iter()
            .find(|m| m.role == Role::Backend)
            .map_or_else(String::new, Member::address)
    };
    let table = table(members);
    let text = set_default(
        shipped,
        "OKOME_VALIDATE_REDIS_URL",
        Some(&format!("redis://edge:{REDIS_PASSWORD}@{host}:6379/0")),
        &table,
    );
    let text = set_default(
        &text,
        "OKOME_VALIDATE_REDIS_ADMIN_URL",
        Some(&format!("redis://operator:{REDIS_PASSWORD}@{host}:6379/0")),
        &table,
    );
    set_default(
        &text,
        "OKOME_VALIDATE_SSH_OPTIONS",
        Some(&format!("IdentityFile={OPERATOR_KEY} IdentitiesOnly=yes")),
        &table,
    )
}

/// The operator's known_hosts: each okome node's address with its own host
/// key (`TYPE BASE64` from its `ssh_host_*_key.pub`), pinned — ssh then
/// needs no `StrictHostKeyChecking=no`.
pub fn known_hosts(keys: &[(String, String)]) -> String {
    keys.iter()
        .map(|(address, public)| {
            let key: Vec<&str> = public.split_whitespace().take(2).collect();
            format!("{address} {}\n", key.join(" "))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MASTER: &str = include_str!("../../configs/keepalived/keepalived-master.conf");
    const BACKUP: &str = include_str!("../../configs/keepalived/keepalived-backup.conf");
    const UPSTREAM: &str = include_str!("../../configs/nginx-frontend/upstream.conf");

    /// The frontends of a lab of `n`, and its address table.
    fn frontends_of(n: usize) -> (Vec<Member>, Vec<(String, String)>) {
        let members = plan(n).unwrap();
        let t = table(&members);
        let frontends = members
            .into_iter()
            .filter(|m| m.role == Role::Frontend)
            .collect();
        (frontends, t)
    }

    /// The addresses in a keepalived config's `unicast_peer` block.
    fn unicast_peers(text: &str) -> Vec<&str> {
        let block = text.split("unicast_peer {").nth(1).unwrap();
        block
            .split('}')
            .next()
            .unwrap()
            .split_whitespace()
            .collect()
    }

    #[test]
    fn the_table_maps_every_shipped_address_and_keeps_the_last_octet() {
        let members = plan(2).unwrap();
        let t = table(&members);
        assert!(t.contains(&("192.168.86.18".into(), "10.213.86.18".into())));
        assert!(t.contains(&("192.168.86.20".into(), "10.213.86.20".into())));
        assert!(t.contains(&("192.168.86.19".into(), "10.213.86.19".into())));
        assert!(t.contains(&("192.168.86.25".into(), "10.213.86.25".into())));
        assert_eq!(
            substitute("bind 127.0.0.1 192.168.86.19 192.168.86.190", &t),
            "bind 127.0.0.1 10.213.86.19 192.168.86.190"
        );
    }

    #[test]
    fn no_site_address_is_left_in_any_rendered_file() {
        let (frontends, t) = frontends_of(2);
        for text in [
            keepalived(MASTER, BACKUP, 0, &frontends, &t),
            keepalived(MASTER, BACKUP, 1, &frontends, &t),
            upstream(UPSTREAM, &frontends, &t),
        ] {
            assert!(!text.contains("192.168."), "{text}");
        }
    }

    #[test]
    fn two_frontends_are_the_shipped_pair_with_only_addresses_changed() {
        let (frontends, t) = frontends_of(2);
        assert_eq!(
            keepalived(MASTER, BACKUP, 0, &frontends, &t),
            substitute(MASTER, &t)
        );
        assert_eq!(
            keepalived(MASTER, BACKUP, 1, &frontends, &t),
            substitute(BACKUP, &t)
        );
        assert_eq!(upstream(UPSTREAM, &frontends, &t), substitute(UPSTREAM, &t));
    }

    #[test]
    fn a_third_frontend_gets_its_own_address_every_peer_and_a_lower_priority() {
        let (frontends, t) = frontends_of(3);
        let c = keepalived(MASTER, BACKUP, 2, &frontends, &t);
        assert!(c.contains("router_id okome-frontend-c\n"), "{c}");
        assert!(c.contains("priority 90\n"), "{c}");
        assert!(c.contains("unicast_src_ip 10.213.86.22\n"), "{c}");
        assert_eq!(unicast_peers(&c), ["10.213.86.20", "10.213.86.21"]);
        let a = keepalived(MASTER, BACKUP, 0, &frontends, &t);
        assert_eq!(unicast_peers(&a), ["10.213.86.21", "10.213.86.22"]);
        assert!(a.contains("priority 150\n") && a.contains("nopreempt"));
        let up = upstream(UPSTREAM, &frontends, &t);
        assert!(up.contains("10.213.86.22    1;"), "{up}");
    }

    /// keepalived honours nopreempt only with `state BACKUP`. With the
    /// shipped B lacking nopreempt, a returning B (100) took the VIP back
    /// from C (90): this failed on frontend-b and every later node.
    #[test]
    fn every_rendered_frontend_starts_backup_and_never_preempts() {
        for n in 2..=MAX_FRONTENDS {
            let (frontends, t) = frontends_of(n);
            for (i, me) in frontends.iter().enumerate() {
                let text = keepalived(MASTER, BACKUP, i, &frontends, &t);
                let lines: Vec<&str> = text.lines().map(str::trim).collect();
                assert!(lines.contains(&"state BACKUP"), "{}: {text}", me.name);
                assert!(lines.contains(&"nopreempt"), "{} of {n}: {text}", me.name);
            }
        }
    }

    #[test]
    fn defaults_are_uncommented_through_the_table_or_set() {
        let t = table(&plan(2).unwrap());
        let text = "# c\n#OKOME_HEALTH_URL=http://192.168.86.25:8000/health\n#OKOME_LOG=info\n";
        let out = set_default(text, "OKOME_HEALTH_URL", None, &t);
        assert!(
            out.contains("\nOKOME_HEALTH_URL=http://10.213.86.25:8000/health\n"),
            "{out}"
        );
        let out = set_default(&out, "OKOME_HEALTH_NODE", Some("frontend-a"), &t);
        assert!(out.ends_with("OKOME_HEALTH_NODE=frontend-a\n"), "{out}");
    }
    #[test]
    fn the_validate_file_names_every_okome_node_as_the_operator_login() {
        let members = plan(2).unwrap();
        let conf = validate_conf(&members);
        assert!(conf.contains("vip          10.213.86.18\n"), "{conf}");
        assert!(
            conf.contains("orchestrator http://10.213.86.25:8000/health\n"),
            "{conf}"
        );
        for line in [
            "node frontend-a frontend 10.213.86.20 ssh=pi@10.213.86.20",
            "node frontend-b frontend 10.213.86.21 ssh=pi@10.213.86.21",
            "node backend backend 10.213.86.19 ssh=pi@10.213.86.19",
        ] {
            assert!(conf.lines().any(|l| l == line), "{line}: {conf}");
        }
        assert!(
            !conf.contains("client") && !conf.contains("192.168."),
            "{conf}"
        );
        let shipped = include_str!("../../configs/default/okome-validate");
        let a = validate_defaults(shipped, &members[0], &members);
        assert!(
            a.contains(
                "\nOKOME_VALIDATE_REDIS_URL=redis://edge:okome-lab-redis-pw@10.213.86.19:6379/0\n"
            ),
            "{a}"
        );
        assert!(
            a.contains(
                "\nOKOME_VALIDATE_SSH_OPTIONS=IdentityFile=/root/.ssh/okome IdentitiesOnly=yes\n"
            ),
            "{a}"
        );
        let backend = members.iter().find(|m| m.name == "backend").unwrap();
        let b = validate_defaults(shipped, backend, &members);
        assert!(
            b.contains("\nOKOME_VALIDATE_REDIS_ADMIN_URL=redis://operator:okome-lab-redis-pw@127.0.0.1:6379/0\n"),
            "{b}"
        );
        assert_eq!(
            known_hosts(&[(
                "10.213.86.20".into(),
                "ssh-ed25519 AAAAC3 root@frontend-a\n".into()
            )]),
            "10.213.86.20 ssh-ed25519 AAAAC3\n"
        );
    }
}
