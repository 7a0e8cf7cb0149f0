//! okome-chaos's only firewall object: the nft table `inet okome_chaos`.
//!
//! Network faults live in a table of our own with its own base chain, so
//! injecting is creating that table and reverting is deleting it — nothing
//! else is flushed, replaced or renumbered (fail2ban's `f2b-table`, Debian's
//! `inet filter`, a site's own tables stay as they are). The revert script
//! first adds the (empty) table, then deletes it, in one nft transaction:
//! deleting an absent table would fail, so this is what makes the revert
//! idempotent on nftables 1.0.6 (Debian 12), which has no `destroy`.
//!
//! [`compare`] is how the revert proves the promise "nothing of ours left,
//! nothing foreign deleted": the listings before and after, our table cut
//! out, become sets of objects (every table, chain, set and rule by where it
//! sits, every set element on its own, counter values aside). Our table
//! left, or a foreign object gone or changed, fails the revert. What others
//! add while a run lasts — a fail2ban ban is an element added to its set —
//! and set elements their owner removed (an unban) are reported in the
//! run's journal, not called our residue: a byte comparison of the whole
//! listing would turn every ban during a run into a false "revert failed".

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

/// One foreign object of a listing: where it sits (the headers of the
/// blocks around it, e.g. `table inet f2b-table > set addr-set-sshd`) and
/// its text (a statement, a nested block's header, or one set element).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Object {
    /// The enclosing block headers, outermost first, joined by ` > `.
    pub path: String,
    /// The statement (counter values cut), block header or `element X`.
    pub text: String,
}

impl Object {
    /// Whether it is a set or map element: the owner's live data.
    pub fn is_element(&self) -> bool {
        self.text.starts_with("element ")
    }
}

impl std::fmt::Display for Object {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.text)
        } else {
            write!(f, "{} > {}", self.path, self.text)
        }
    }
}

/// `counter packets 12 bytes 3456` → `counter`: a foreign rule's counters
/// move with traffic and are not a change to it.
fn without_counter_values(line: &str) -> String {
    let words: Vec<&str> = line.split_whitespace().collect();
    let mut out: Vec<&str> = Vec::with_capacity(words.len());
    let mut i = 0;
    while i < words.len() {
        if words[i] == "counter"
            && words.get(i + 1) == Some(&"packets")
            && words.get(i + 3) == Some(&"bytes")
        {
            out.push("counter");
            i += 5;
            continue;
        }
        out.push(words[i]);
        i += 1;
    }
    out.join(" ")
}

/// The elements of an `elements = { a, b, … }` statement (its text from
/// `{` to `}`, lines joined), each without its ` expires …` countdown.
fn elements(body: &str) -> Vec<String> {
    let inner = body
        .trim()
        .trim_start_matches('{')
        .trim_end_matches('}')
        .trim();
    inner
        .split(',')
        .map(|e| {
            let words: Vec<&str> = e.split_whitespace().collect();
            let mut kept = Vec::new();
            let mut i = 0;
            while i < words.len() {
                if words[i] == "expires" {
                    i += 2;
                    continue;
                }
                kept.push(words[i]);
                i += 1;
            }
            kept.join(" ")
        })
        .filter(|e| !e.is_empty())
        .collect()
}

/// Every object of an `nft list ruleset` listing but our table's, sorted.
pub fn objects(ruleset: &str) -> Vec<Object> {
    let listing = without_our_table(ruleset);
    let mut out = Vec::new();
    let mut path: Vec<String> = Vec::new();
    let mut lines = listing.lines();
    while let Some(line) = lines.next() {
        let bare = line.trim();
        if bare.is_empty() {
            continue;
        }
        if bare == "}" {
            path.pop();
            continue;
        }
        if let Some(rest) = bare.strip_prefix("elements = ") {
            // May span lines until its closing brace.
            let mut body = rest.to_string();
            while !body.trim_end().ends_with('}') {
                match lines.next() {
                    Some(more) => {
                        body.push(' ');
                        body.push_str(more.trim());
                    }
                    None => break,
                }
            }
            for element in elements(&body) {
                out.push(Object {
                    path: path.join(" > "),
                    text: format!("element {element}"),
                });
            }
            continue;
        }
        let text = without_counter_values(bare);
        if let Some(header) = text.strip_suffix(" {") {
            out.push(Object {
                path: path.join(" > "),
                text: text.clone(),
            });
            path.push(header.to_string());
            continue;
        }
        out.push(Object {
            path: path.join(" > "),
            text,
        });
    }
    out.sort();
    out
}

/// How the ruleset after a run compares with the one before, our table
/// set aside.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Comparison {
    /// Our table is still there: our residue.
    pub ours_left: bool,
    /// Foreign tables, chains, sets and rules present before and gone or
    /// changed now. We never touch them: if one is missing, something
    /// deleted it, and the state is unknown.
    pub removed: Vec<Object>,
    /// Set elements present before and gone now (fail2ban unbans on its own
    /// clock): reported, not ours.
    pub elements_removed: Vec<Object>,
    /// Foreign objects added during the run (a fail2ban ban, a site's
    /// rule): reported, not ours.
    pub added: Vec<Object>,
}

impl Comparison {
    /// Whether the promise holds: nothing of ours left, no foreign
    /// structure deleted or changed.
    pub fn restored(&self) -> bool {
        !self.ours_left && self.removed.is_empty()
    }

    /// Whether someone else changed the ruleset during the run.
    pub fn foreign_changes(&self) -> bool {
        !self.added.is_empty() || !self.elements_removed.is_empty()
    }
}

/// Compare the listing before a run (ours cut out) with the one now.
pub fn compare(before: &str, now: &str) -> Comparison {
    let before = objects(before);
    let after = objects(now);
    let mut comparison = Comparison {
        ours_left: has_our_table(now),
        ..Comparison::default()
    };
    // Both sorted: a merge walk gives the multiset differences.
    let (mut i, mut j) = (0, 0);
    while i < before.len() || j < after.len() {
        match (before.get(i), after.get(j)) {
            (Some(b), Some(a)) if b == a => {
                i += 1;
                j += 1;
            }
            (Some(b), Some(a)) if b < a => {
                push_removed(&mut comparison, b);
                i += 1;
            }
            (Some(b), None) => {
                push_removed(&mut comparison, b);
                i += 1;
            }
            (_, Some(a)) => {
                comparison.added.push(a.clone());
                j += 1;
            }
            (None, None) => break,
        }
    }
    comparison
}

fn push_removed(comparison: &mut Comparison, object: &Object) {
    if object.is_element() {
        comparison.elements_removed.push(object.clone());
    } else {
        comparison.removed.push(object.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const F2B: &str = "table inet f2b-table {\n\tset addr-set-sshd {\n\t\ttype ipv4_addr\n\t\telements = { 10.213.99.2 }\n\t}\n\tchain f2b-chain {\n\t\ttype filter hook input priority filter - 1; policy accept;\n\t\ttcp dport 22 ip saddr @addr-set-sshd reject\n\t}\n}\n";

    fn f2b(elements: &str) -> String {
        format!(
            "table inet f2b-table {{\n\tset addr-set-sshd {{\n\t\ttype ipv4_addr\n{elements}\t}}\n\tchain f2b-chain {{\n\t\ttype filter hook input priority filter - 1; policy accept;\n\t\ttcp dport 22 ip saddr @addr-set-sshd reject\n\t}}\n}}\n"
        )
    }

    #[test]
    fn a_ban_added_during_the_run_is_reported_not_our_residue() {
        let before = f2b("\t\telements = { 10.213.99.2 }\n");
        // fail2ban banned two more during the run; nft wraps long sets.
        let after = f2b("\t\telements = { 10.213.99.2, 10.213.99.3,\n\t\t\t     10.213.99.4 }\n");
        let c = compare(&before, &after);
        assert!(c.restored(), "{c:?}");
        assert!(c.foreign_changes());
        let added: Vec<String> = c.added.iter().map(|o| o.to_string()).collect();
        assert_eq!(
            added,
            [
                "table inet f2b-table > set addr-set-sshd > element 10.213.99.3",
                "table inet f2b-table > set addr-set-sshd > element 10.213.99.4",
            ]
        );
        // The byte comparison the old check made calls this a failure.
        assert_ne!(without_our_table(&after), before);
        // A first ban creates the elements line; a whole new table too.
        let first = compare(
            &f2b(""),
            &format!(
                "{}table ip site {{\n}}\n",
                f2b("\t\telements = { 10.0.0.9 }\n")
            ),
        );
        assert!(first.restored(), "{first:?}");
        assert_eq!(first.added.len(), 2, "{first:?}");
    }

    #[test]
    fn anything_foreign_deleted_or_changed_or_ours_left_fails() {
        let before = format!(
            "{}table ip site {{\n\tchain x {{\n\t\tip saddr 10.0.0.1 drop\n\t}}\n}}\n",
            f2b("\t\telements = { 10.213.99.2 }\n")
        );
        // iptables -F style: a foreign rule gone.
        let flushed = before.replace("\t\tip saddr 10.0.0.1 drop\n", "");
        let c = compare(&before, &flushed);
        assert!(!c.restored());
        assert_eq!(
            c.removed[0].to_string(),
            "table ip site > chain x > ip saddr 10.0.0.1 drop"
        );
        // A rule changed: gone in its old form.
        assert!(!compare(&before, &before.replace("drop", "accept")).restored());
        // A whole foreign table gone.
        assert!(!compare(&before, &f2b("\t\telements = { 10.213.99.2 }\n")).restored());
        // Our table left behind.
        let ours = "table inet okome_chaos {\n\tchain output {\n\t}\n}\n";
        let c = compare(&before, &format!("{before}{ours}"));
        assert!(c.ours_left && !c.restored() && c.removed.is_empty() && !c.foreign_changes());
        // Identical: restored, nothing to report.
        let same = compare(&before, &before);
        assert!(same.restored() && !same.foreign_changes());
    }

    #[test]
    fn an_unban_and_moving_counters_are_not_changes_to_structure() {
        let before = f2b("\t\telements = { 10.213.99.2, 10.213.99.3 }\n")
            .replace("reject\n", "counter packets 3 bytes 180 reject\n");
        let after = f2b("\t\telements = { 10.213.99.3 expires 9m58s }\n")
            .replace("reject\n", "counter packets 9 bytes 540 reject\n");
        let c = compare(&before, &after);
        assert!(c.restored(), "{c:?}");
        assert!(c.added.is_empty(), "{c:?}");
        assert_eq!(
            c.elements_removed[0].to_string(),
            "table inet f2b-table > set addr-set-sshd > element 10.213.99.2"
        );
    }

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
