//! "Every metric a tool emits is documented": `docs/metrics.md` is the one
//! list of Prometheus names (a row `| \`name\` | type | tool | meaning |`
//! each), which the Grafana dashboard may only query. Each tool's tests pass
//! what the tool really wrote (a textfile, a rendered exposition) to
//! [`assert_documented`].

use std::collections::BTreeSet;

use crate::workspace_root;

/// Metric names listed in docs/metrics.md (first cell of each table row).
pub fn documented() -> BTreeSet<String> {
    let path = workspace_root().join("docs/metrics.md");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_string)
        .collect()
}

/// The metric names of a Prometheus text exposition: every sample's name
/// (and every `# TYPE` family).
pub fn emitted(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter_map(|line| {
            if let Some(family) = line.strip_prefix("# TYPE ") {
                family.split_whitespace().next()
            } else if line.starts_with('#') || line.trim().is_empty() {
                None
            } else {
                line.split(['{', ' ']).next()
            }
        })
        .map(str::to_string)
        .collect()
}

/// The names of `exposition` missing from docs/metrics.md.
pub fn undocumented(exposition: &str) -> BTreeSet<String> {
    let listed = documented();
    emitted(exposition)
        .into_iter()
        .filter(|name| !listed.contains(name))
        .collect()
}

/// Panics unless `exposition` names at least one metric and every one is a
/// row of docs/metrics.md; returns the names it holds.
pub fn assert_documented(exposition: &str) -> BTreeSet<String> {
    let names = emitted(exposition);
    assert!(!names.is_empty(), "no metric in:\n{exposition}");
    let missing = undocumented(exposition);
    assert!(
        missing.is_empty(),
        "emitted but not a row of docs/metrics.md: {missing:?}"
    );
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_samples_and_types_and_an_unlisted_one_is_caught() {
        let text = "# HELP okome_gate_closed x\n# TYPE okome_gate_closed gauge\nokome_gate_closed 1\n\
                    okome_upstream_up{node=\"a\"} 0\n";
        assert_eq!(
            assert_documented(text),
            BTreeSet::from([
                "okome_gate_closed".to_string(),
                "okome_upstream_up".to_string()
            ])
        );
        let typo = format!("{text}okome_gate_closd 1\n");
        assert_eq!(
            undocumented(&typo),
            BTreeSet::from(["okome_gate_closd".to_string()])
        );
        let caught = std::panic::catch_unwind(|| assert_documented(&typo));
        assert!(caught.is_err());
        assert!(std::panic::catch_unwind(|| assert_documented("# nothing\n")).is_err());
    }
}
