//! okome-chaos's only firewall object: the nft table `inet okome_chaos`.
//!
//! Network faults live in a table of our own with its own base chain, so
//! injecting is creating that table and reverting is deleting it — nothing
//! else is flushed, replaced or renumbered (fail2ban's `f2b-table`, Debian's
//! `inet filter`, a site's own tables stay as they are). The revert script
//! first adds the (empty) table, then deletes it, in one nft transaction:
//! deleting an absent table would fail, so this is what makes the revert
//! idempotent on nftables 1.0.6 (Debian 12), which has no `destroy`.
//! [`without_our_table`] is how "the ruleset minus our table is byte-identical
//! before and after" is checked.

use std::net::SocketAddrV4;

/// Family and name of our table.
pub const TABLE: &str = "inet okome_chaos";

/// The nft script that creates our table dropping TCP to `origin`, all of it
/// (`loss_percent` 100) or a random fraction (`numgen random`, since
/// `tc netem` is missing on this kernel).
pub fn inject_script(origin: SocketAddrV4, loss_percent: u8) -> String {
    let matcher = if loss_percent >= 100 {
        String::new()
    } else {
        format!(" numgen random mod 100 < {loss_percent}")
    };
    format!(
        "table {TABLE} {{\n\tchain output {{\n\t\ttype filter hook output priority filter; policy accept;\n\t\tip daddr {} tcp dport {}{matcher} counter drop comment \"okome-chaos\"\n\t}}\n}}\n",
        origin.ip(),
        origin.port()
    )
}

/// The nft script that removes our table whether or not it exists.
pub fn revert_script() -> String {
    format!("add table {TABLE}\ndelete table {TABLE}\n")
}

/// `nft list ruleset` output with our table's block removed, byte for byte
/// otherwise. A table block starts at a line `table inet okome_chaos {` in
/// column 0 and ends at the next line that is exactly `}`.
pub fn without_our_table(ruleset: &str) -> String {
    let header = format!("table {TABLE} {{");
    let mut out = String::with_capacity(ruleset.len());
    let mut skipping = false;
    for line in ruleset.split_inclusive('\n') {
        let bare = line.trim_end_matches('\n');
        if skipping {
            if bare == "}" {
                skipping = false;
            }
            continue;
        }
        if bare == header {
            skipping = true;
            continue;
        }
        out.push_str(line);
    }
    out
}

/// Whether the listing holds our table.
pub fn has_our_table(ruleset: &str) -> bool {
    let header = format!("table {TABLE} {{");
    ruleset.lines().any(|line| line == header)
}

#[cfg(test)]
mod tests {
    use super::*;

    const F2B: &str = "table inet f2b-table {\n\tset addr-set-sshd {\n\t\ttype ipv4_addr\n\t\telements = { 10.213.99.2 }\n\t}\n\tchain f2b-chain {\n\t\ttype filter hook input priority filter - 1; policy accept;\n\t\ttcp dport 22 ip saddr @addr-set-sshd reject\n\t}\n}\n";

    #[test]
    fn our_table_is_cut_out_and_nothing_else_moves() {
        let ours = "table inet okome_chaos {\n\tchain output {\n\t\ttype filter hook output priority filter; policy accept;\n\t}\n}\n";
        let foreign = "table ip site {\n\tchain x {\n\t}\n}\n";
        let with = format!("{F2B}{ours}{foreign}");
        assert_eq!(without_our_table(&with), format!("{F2B}{foreign}"));
        assert!(has_our_table(&with));
        assert!(!has_our_table(&without_our_table(&with)));
        assert_eq!(without_our_table(F2B), F2B);
    }

    #[test]
    fn a_table_with_a_similar_name_is_not_ours() {
        let other = "table inet okome_chaos_site {\n}\ntable ip okome_chaos {\n}\n";
        assert_eq!(without_our_table(other), other);
        assert!(!has_our_table(other));
    }

    #[test]
    fn scripts_name_only_our_table() {
        let origin: SocketAddrV4 = "10.213.0.5:8000".parse().unwrap();
        let all = inject_script(origin, 100);
        assert!(all.starts_with("table inet okome_chaos {"));
        assert!(all.contains("ip daddr 10.213.0.5 tcp dport 8000 counter drop"));
        assert!(!all.contains("numgen"));
        assert!(inject_script(origin, 30).contains("numgen random mod 100 < 30 counter drop"));
        assert_eq!(
            revert_script(),
            "add table inet okome_chaos\ndelete table inet okome_chaos\n"
        );
    }
}
