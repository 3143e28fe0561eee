//! `twinctl status`: both nodes side by side, the pair's health, and that health as the
//! exit code.

use crate::health::{assess, Assessment, NodeView};
use crate::pair::Pair;
use crate::render::{group_table, line_text, pair_table, verdict_lines};
use serde_json::{json, Value};
use std::io::IsTerminal;

/// The version of twinctl's own `--json` schemas (docs/CONSOLE.md, "twinctl --json").
pub const JSON_SCHEMA: u64 = 1;

/// Prints the pair's status; returns the exit code (0 healthy, 1 degraded, 2 down).
pub fn run(pair: &mut Pair, json: bool, alarm_window_ms: u64) -> u8 {
    let nodes = pair.observe(Some(alarm_window_ms));
    let verdict = assess(&nodes);
    if json {
        outln!("{}", status_json(&nodes, &verdict));
    } else {
        let terminal = std::io::stdout().is_terminal();
        let color = terminal && std::env::var_os("NO_COLOR").is_none();
        let mut lines = verdict_lines(&verdict);
        lines.push(Vec::new());
        // On a terminal, fit its width; into a pipe, keep every cell whole.
        let width = if terminal {
            crossterm::terminal::size().ok().map(|(w, _)| usize::from(w))
        } else {
            None
        };
        lines.extend(pair_table(&nodes, &[], width));
        // A group's members, one row each (issue 16); nothing for a pair.
        let group = group_table(&nodes);
        if !group.is_empty() {
            lines.push(Vec::new());
            lines.extend(group);
        }
        for line in &lines {
            outln!("{}", line_text(line, color, None));
        }
    }
    verdict.health.exit_code()
}

/// One node of the `--json` outputs.
pub fn node_json(node: &NodeView) -> Value {
    json!({
        "address": node.addr.to_string(),
        "name": node.name,
        "reachable": node.status.is_some(),
        "error": node.error,
        "recent_alarm": node.recent_alarm,
        "status": node.raw.clone().unwrap_or(Value::Null),
    })
}

/// `status --json`.
pub fn status_json(nodes: &[NodeView], verdict: &Assessment) -> Value {
    let name = |i: Option<usize>| i.map(|i| nodes[i].name.clone());
    json!({
        "twinctl": JSON_SCHEMA,
        "command": "status",
        "health": verdict.health.name(),
        "exit_code": verdict.health.exit_code(),
        "summary": verdict.summary,
        "problems": verdict.problems,
        "primary": name(verdict.primary),
        "backup": name(verdict.backup),
        "nodes": nodes.iter().map(node_json).collect::<Vec<_>>(),
    })
}
