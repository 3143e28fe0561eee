//! Text for people: styled lines, the side-by-side pair table that `status` prints and
//! `watch` redraws, and times.
//!
//! A line is a list of styled spans; it becomes plain text (pipes, `NO_COLOR`) or text
//! with ANSI SGR codes (terminals). Widths are counted in characters: the console's
//! names and messages are ASCII.

use crate::health::{Assessment, Health, NodeView};
use crate::model::epoch_text;
use std::fmt::Write as _;
use twinloop::io::schema::{Role, Sync};

/// How a span looks on a terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Default.
    Plain,
    /// Headings and labels that matter.
    Bold,
    /// Secondary detail.
    Dim,
    /// Healthy: the primary, links up.
    Good,
    /// Needs attention: a lagging backup, a switchover under way.
    Warn,
    /// Wrong: unreachable, link down, no primary.
    Bad,
    /// A change the operator should notice now (a role change): reverse video.
    Highlight,
}

impl Style {
    fn sgr(self) -> &'static str {
        match self {
            Style::Plain => "",
            Style::Bold => "\x1b[1m",
            Style::Dim => "\x1b[2m",
            Style::Good => "\x1b[1;32m",
            Style::Warn => "\x1b[1;33m",
            Style::Bad => "\x1b[1;31m",
            Style::Highlight => "\x1b[1;7;33m",
        }
    }
}

/// A run of text in one style.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    /// The text (no newline).
    pub text: String,
    /// Its style.
    pub style: Style,
}

/// A span.
pub fn span(text: impl Into<String>, style: Style) -> Span {
    Span {
        text: text.into(),
        style,
    }
}

/// One line of styled spans.
pub type Line = Vec<Span>;

/// The line as text, cut to `width` characters when given, with ANSI styles when
/// `color`.
pub fn line_text(line: &Line, color: bool, width: Option<usize>) -> String {
    let mut out = String::new();
    let mut room = width.unwrap_or(usize::MAX);
    for s in line {
        if room == 0 {
            break;
        }
        let text: String = s.text.chars().take(room).collect();
        room -= text.chars().count();
        if color && s.style != Style::Plain {
            let _ = write!(out, "{}{text}\x1b[0m", s.style.sgr());
        } else {
            out.push_str(&text);
        }
    }
    out
}

/// Pads or cuts `text` to exactly `width` characters (a cut ends in `…`).
fn fit(text: &str, width: usize) -> String {
    let count = text.chars().count();
    if count <= width {
        let mut s = text.to_string();
        s.extend(std::iter::repeat_n(' ', width - count));
        s
    } else if width == 0 {
        String::new()
    } else {
        let mut s: String = text.chars().take(width - 1).collect();
        s.push('…');
        s
    }
}

/// A table row: a label and one cell per node.
struct Row {
    label: String,
    cells: Vec<Span>,
}

/// The style of a role cell.
fn role_style(role: Role) -> Style {
    match role {
        Role::Primary => Style::Good,
        Role::Backup => Style::Plain,
        Role::Starting | Role::Unknown => Style::Warn,
    }
}

fn sync_style(role: Role, sync: Sync) -> Style {
    match (role, sync) {
        (Role::Primary, Sync::Paired) | (Role::Backup, Sync::InSync) => Style::Good,
        (_, Sync::Alone | Sync::Joining | Sync::Lagging) => Style::Warn,
        _ => Style::Plain,
    }
}

/// `1.23 ms` / `456 µs` for a round trip in ns (0 = not measured).
pub fn rtt_text(rtt_ns: u64) -> String {
    match rtt_ns {
        0 => "rtt -".into(),
        ns if ns < 1_000_000 => format!("rtt {} µs", ns / 1000),
        ns => format!("rtt {}.{:02} ms", ns / 1_000_000, ns % 1_000_000 / 10_000),
    }
}

/// `42 ms`, `9 s`, `3 min`, `2 h` ago.
pub fn ago_text(ms: u64) -> String {
    match ms {
        ms if ms < 1000 => format!("{ms} ms ago"),
        ms if ms < 120_000 => format!("{} s ago", ms / 1000),
        ms if ms < 7_200_000 => format!("{} min ago", ms / 60_000),
        ms => format!("{} h ago", ms / 3_600_000),
    }
}

/// `2026-11-22 02:31:07.512` (UTC) for a wall-clock time in ms since 1970.
pub fn utc_text(unix_ms: u64) -> String {
    let (year, month, day) = twinloop::io::clock::civil_from_days((unix_ms / 86_400_000) as i64);
    format!("{year:04}-{month:02}-{day:02} {}", utc_time_text(unix_ms))
}

/// `02:31:07.512` (UTC).
pub fn utc_time_text(unix_ms: u64) -> String {
    let ms_of_day = unix_ms % 86_400_000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms_of_day / 3_600_000,
        ms_of_day / 60_000 % 60,
        ms_of_day / 1000 % 60,
        ms_of_day % 1000
    )
}

/// The pair side by side: one column per node. `highlight[i]` marks node `i`'s role
/// cell (a role that just changed). With a `width` (a terminal's), wide columns are
/// narrowed so that every node's column shows.
pub fn pair_table(nodes: &[NodeView], highlight: &[bool], width: Option<usize>) -> Vec<Line> {
    let mut rows: Vec<Row> = Vec::new();
    let mut row = |label: &str, cells: Vec<Span>| {
        rows.push(Row {
            label: label.into(),
            cells,
        })
    };
    let each = |f: &dyn Fn(&crate::model::Status) -> Span| -> Vec<Span> {
        nodes
            .iter()
            .map(|n| match &n.status {
                Some(s) => f(s),
                None => span("-", Style::Dim),
            })
            .collect()
    };
    row(
        "address",
        nodes.iter().map(|n| span(n.addr.to_string(), Style::Dim)).collect(),
    );
    row(
        "role",
        nodes
            .iter()
            .enumerate()
            .map(|(i, n)| match &n.status {
                Some(s) => {
                    let text = if s.is_primary() {
                        "PRIMARY".to_string()
                    } else {
                        s.role.to_string()
                    };
                    if highlight.get(i).copied().unwrap_or(false) {
                        span(format!("{text} (changed)"), Style::Highlight)
                    } else {
                        span(text, role_style(s.role))
                    }
                }
                None => span("UNREACHABLE", Style::Bad),
            })
            .collect(),
    );
    row("sync", each(&|s| span(s.sync.to_string(), sync_style(s.role, s.sync))));
    row("epoch", each(&|s| span(epoch_text(s.epoch), Style::Plain)));
    row("frame", each(&|s| span(s.frame.to_string(), Style::Plain)));
    row(
        "lag",
        each(&|s| {
            let style = if s.lag_frames > 10 { Style::Warn } else { Style::Plain };
            span(format!("{} frames", s.lag_frames), style)
        }),
    );
    if nodes
        .iter()
        .any(|n| n.status.as_ref().is_some_and(|s| s.transfer.is_some()))
    {
        row(
            "state transfer",
            each(&|s| match &s.transfer {
                Some(t) => span(t.text(), Style::Warn),
                None => span("-", Style::Dim),
            }),
        );
    }
    row(
        "input",
        each(&|s| match &s.input {
            Some(i) => {
                let age = i
                    .last_frame_age_ms
                    .map_or("no frame yet".into(), |ms| format!("last frame {ms} ms ago"));
                let mut text = format!("{age}, {} stale/s, {} rejected/s", i.stale_per_s, i.rejected_per_s);
                if i.silent {
                    text.insert_str(0, "SILENT, ");
                }
                let dropped = i.stale_per_s + i.rejected_per_s >= crate::health::FRAMES_DROPPED_DEGRADED_PER_S;
                let style = if i.silent {
                    Style::Bad
                } else if dropped {
                    Style::Warn
                } else {
                    Style::Plain
                };
                span(text, style)
            }
            None => span("-", Style::Dim),
        }),
    );
    row(
        "switchover",
        each(&|s| match &s.switchover {
            Some(text) => span(text.clone(), Style::Warn),
            None if s.stopping => span("stopping", Style::Warn),
            None => span("-", Style::Dim),
        }),
    );
    row(
        "false deaths",
        each(&|s| span(s.false_deaths.to_string(), Style::Plain)),
    );
    row(
        "takeovers/switchovers",
        each(&|s| span(format!("{} / {}", s.takeovers, s.switchovers), Style::Plain)),
    );
    let alarms: Vec<Span> = nodes
        .iter()
        .map(|n| match (&n.status, &n.recent_alarm) {
            (None, _) => span("-", Style::Dim),
            (Some(_), Some(recent)) => span(recent.clone(), Style::Bad),
            (Some(s), None) if s.alarms == 0 => span("0", Style::Plain),
            (Some(s), None) => span(
                format!(
                    "{} (last {}, not recent)",
                    s.alarms,
                    s.last_alarm.as_ref().map_or("?", |a| a.name.name())
                ),
                Style::Plain,
            ),
        })
        .collect();
    row("alarms", alarms);
    row(
        "last transition",
        each(&|s| match &s.last_transition {
            Some(t) => span(
                match &t.cause {
                    Some(cause) => format!("{}:{cause} -> {} ({})", t.reason, t.role, t.sync),
                    None => format!("{} -> {} ({})", t.reason, t.role, t.sync),
                },
                Style::Bold,
            ),
            None => span("-", Style::Dim),
        }),
    );
    row(
        "  when",
        each(&|s| match &s.last_transition {
            Some(t) => span(
                format!("{} UTC, {}", utc_time_text(t.unix_ms), ago_text(t.ago_ms)),
                Style::Plain,
            ),
            None => span("", Style::Plain),
        }),
    );
    row(
        "  why",
        each(&|s| match &s.last_transition {
            Some(t) => span(format!("{} (frame {})", t.message, t.frame), Style::Dim),
            None => span("", Style::Plain),
        }),
    );
    let links_max = nodes
        .iter()
        .filter_map(|n| n.status.as_ref().map(|s| s.links.len()))
        .max()
        .unwrap_or(0);
    for i in 0..links_max {
        let name = nodes
            .iter()
            .filter_map(|n| n.status.as_ref()?.links.get(i))
            .map(|l| l.name.clone())
            .next()
            .unwrap_or_default();
        let cells = nodes
            .iter()
            .map(|n| match n.status.as_ref().and_then(|s| s.links.get(i)) {
                Some(l) if l.up => {
                    let heard = l.last_heard_ms_ago.map_or("never".into(), |ms| format!("{ms} ms"));
                    span(format!("up, {}, heard {heard}", rtt_text(l.rtt_ns)), Style::Good)
                }
                Some(l) => {
                    let heard = l.last_heard_ms_ago.map_or("never".into(), ago_text);
                    span(format!("DOWN, heard {heard}"), Style::Bad)
                }
                None => span("-", Style::Dim),
            })
            .collect();
        row(&format!("link {i} {name}"), cells);
    }
    row(
        "peer seen as",
        each(&|s| match &s.peer {
            Some(p) => span(
                format!("{} ({}), heard {} ms ago", p.role, p.sync, p.last_heard_ms_ago),
                Style::Dim,
            ),
            None => span("never heard", Style::Warn),
        }),
    );
    for (i, n) in nodes.iter().enumerate() {
        if let Some(error) = &n.error {
            let mut cells = vec![span("", Style::Plain); nodes.len()];
            cells[i] = span(error.clone(), Style::Bad);
            row("error", cells);
        }
    }

    let label_width = rows.iter().map(|r| r.label.chars().count()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..nodes.len())
        .map(|i| {
            rows.iter()
                .map(|r| r.cells[i].text.chars().count())
                .chain([nodes[i].name.chars().count()])
                .max()
                .unwrap_or(0)
                .clamp(12, 60)
        })
        .collect();
    let widths = match width {
        Some(total) => shrink_to_fit(&widths, total.saturating_sub(label_width + 2 * nodes.len())),
        None => widths,
    };
    let mut lines = Vec::new();
    let mut header = vec![span(fit("", label_width), Style::Plain)];
    for (i, n) in nodes.iter().enumerate() {
        header.push(span("  ", Style::Plain));
        header.push(span(fit(&n.name, widths[i]), Style::Bold));
    }
    if let Some(last) = header.last_mut() {
        last.text = last.text.trim_end().to_string();
    }
    lines.push(header);
    for r in rows {
        let mut line = vec![span(fit(&r.label, label_width), Style::Dim)];
        for (i, cell) in r.cells.into_iter().enumerate() {
            line.push(span("  ", Style::Plain));
            line.push(span(fit(&cell.text, widths[i]), cell.style));
        }
        // Trailing padding makes copied text ragged; the last cell need not be padded.
        if let Some(last) = line.last_mut() {
            last.text = last.text.trim_end().to_string();
        }
        lines.push(line);
    }
    lines
}

/// The group, one row per node (issue 16): every node twinctl asked, by what it says of
/// itself, and every member one of them reports that did not answer twinctl (not asked, or
/// unreachable), by the report heard most recently. Empty for a pair — no node reports
/// more than one peer or a witness — whose table above says it all.
pub fn group_table(nodes: &[NodeView]) -> Vec<Line> {
    let answered: Vec<(&NodeView, &crate::model::Status)> =
        nodes.iter().filter_map(|n| n.status.as_ref().map(|s| (n, s))).collect();
    let is_group = answered
        .iter()
        .any(|(_, s)| s.group.len() > 1 || s.group.iter().any(|m| m.witness));
    if !is_group {
        return Vec::new();
    }
    let witness = |id: u64| {
        answered
            .iter()
            .any(|(_, s)| s.group.iter().any(|m| m.node_id == Some(id) && m.witness))
    };
    // (id, cells, style of the `seen` cell)
    let mut rows: Vec<(u64, [String; 6], Style)> = Vec::new();
    for (n, s) in &answered {
        let role = if s.is_primary() {
            "PRIMARY".to_string()
        } else {
            s.role.to_string()
        };
        let weight = if witness(s.node_id) {
            "witness".to_string()
        } else {
            s.weight.to_string()
        };
        rows.push((
            s.node_id,
            [
                format!("{} ({})", n.name, s.node_id),
                role,
                s.sync.to_string(),
                weight,
                format!("{} / {}", s.frame, epoch_text(s.epoch)),
                "answers twinctl".into(),
            ],
            Style::Good,
        ));
    }
    // Members not among the answers: the freshest report of each.
    let mut reported: Vec<(u64, &str, &crate::model::GroupPeer)> = Vec::new();
    for (n, s) in &answered {
        for m in &s.group {
            let Some(id) = m.node_id else { continue };
            if answered.iter().any(|(_, a)| a.node_id == id) {
                continue;
            }
            let age = |m: &crate::model::GroupPeer| m.last_heard_ms_ago.unwrap_or(u64::MAX);
            match reported.iter_mut().find(|(other, _, _)| *other == id) {
                Some(entry) if age(m) < age(entry.2) => *entry = (id, n.name.as_str(), m),
                Some(_) => {}
                None => reported.push((id, n.name.as_str(), m)),
            }
        }
    }
    for (id, by, m) in reported {
        let (seen, style) = match (m.last_heard_ms_ago, m.alive) {
            (Some(ms), true) => (format!("seen by {by}, heard {}", ago_text(ms)), Style::Dim),
            (Some(ms), false) => (format!("SILENT: {by} heard it {}", ago_text(ms)), Style::Bad),
            (None, _) => (format!("never heard by {by}"), Style::Bad),
        };
        let text = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        rows.push((
            id,
            [
                format!("node {id}"),
                text(m.role.map(|r| {
                    if r == Role::Primary {
                        "PRIMARY".into()
                    } else {
                        r.to_string()
                    }
                })),
                text(m.sync.map(|s| s.to_string())),
                if m.witness {
                    "witness".into()
                } else {
                    m.weight.to_string()
                },
                match m.last_heard_ms_ago {
                    Some(_) => format!("{} / {}", m.frame, epoch_text(m.epoch)),
                    None => "-".into(),
                },
                seen,
            ],
            style,
        ));
    }
    rows.sort_by_key(|(id, _, _)| *id);
    let header = ["group", "role", "sync", "weight", "frame / epoch", "seen"].map(String::from);
    let mut widths = header.clone().map(|h| h.chars().count());
    for (_, cells, _) in &rows {
        for (w, c) in widths.iter_mut().zip(cells) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[String; 6], styles: [Style; 6]| -> Line {
        let mut line = Vec::new();
        for (i, (cell, style)) in cells.iter().zip(styles).enumerate() {
            if i > 0 {
                line.push(span("  ", Style::Plain));
            }
            line.push(span(fit(cell, widths[i]), style));
        }
        if let Some(last) = line.last_mut() {
            last.text = last.text.trim_end().to_string();
        }
        line
    };
    let mut lines = vec![line(&header, [Style::Bold; 6])];
    for (_, cells, seen) in &rows {
        let role_style = if cells[1] == "PRIMARY" {
            Style::Good
        } else {
            Style::Plain
        };
        lines.push(line(
            cells,
            [Style::Bold, role_style, Style::Plain, Style::Plain, Style::Plain, *seen],
        ));
    }
    lines
}

/// Narrows the widest columns until all fit in `room` characters (none below 12).
fn shrink_to_fit(widths: &[usize], room: usize) -> Vec<usize> {
    let mut widths = widths.to_vec();
    while widths.iter().sum::<usize>() > room {
        let Some(widest) = (0..widths.len()).max_by_key(|&i| widths[i]) else {
            break;
        };
        if widths[widest] <= 12 {
            break;
        }
        widths[widest] -= 1;
    }
    widths
}

/// The verdict line and the problems, one per line.
pub fn verdict_lines(verdict: &Assessment) -> Vec<Line> {
    let style = match verdict.health {
        Health::Healthy => Style::Good,
        Health::Degraded => Style::Warn,
        Health::Down => Style::Bad,
    };
    let mut lines = vec![vec![
        span(verdict.summary.clone(), style),
        span(format!("  (exit {})", verdict.health.exit_code()), Style::Dim),
    ]];
    for p in &verdict.problems {
        lines.push(vec![span("  - ", Style::Plain), span(p.clone(), style)]);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_text_known_instants() {
        assert_eq!(utc_text(0), "1970-01-01 00:00:00.000");
        // 2024-02-29 12:34:56.789 UTC: a leap day.
        assert_eq!(utc_text(1_709_210_096_789), "2024-02-29 12:34:56.789");
        assert_eq!(utc_text(1_795_313_418_872), "2026-11-22 02:10:18.872");
    }

    #[test]
    fn line_text_cuts_and_styles() {
        let line = vec![span("abc", Style::Plain), span("def", Style::Bad)];
        assert_eq!(line_text(&line, false, Some(4)), "abcd");
        assert_eq!(line_text(&line, true, None), "abc\x1b[1;31mdef\x1b[0m");
        assert_eq!(fit("abcdef", 4), "abc…");
        assert_eq!(fit("ab", 4), "ab  ");
    }

    #[test]
    fn shrink_to_fit_narrows_the_widest_first() {
        assert_eq!(shrink_to_fit(&[40, 20], 80), [40, 20]);
        assert_eq!(shrink_to_fit(&[40, 20], 50), [30, 20]);
        assert_eq!(shrink_to_fit(&[40, 20], 10), [12, 12]);
    }

    fn view(status: serde_json::Value) -> NodeView {
        let parsed: crate::model::Status = serde_json::from_value(status.clone()).unwrap();
        NodeView::answered("127.0.0.1:7401".parse().unwrap(), parsed, status)
    }

    /// A pair (one peer, no witness) gets no group table: its output stays as it was.
    #[test]
    fn group_table_pair_prints_nothing() {
        let a = view(serde_json::json!({
            "node_id": 1, "name": "node-a", "role": "primary", "sync": "paired", "epoch": 257, "frame": 9,
            "group": [{"node_id": 2, "role": "backup", "sync": "in_sync", "alive": true, "last_heard_ms_ago": 3}],
        }));
        assert!(group_table(&[a]).is_empty());
    }

    /// A group of three asked at two nodes: one row per node, the witness that was not
    /// asked by the freshest report of it, sorted by id.
    #[test]
    fn group_table_three_nodes_one_row_each() {
        let member = |id: u64, witness: bool, ago: u64, alive: bool| {
            serde_json::json!({"node_id": id, "role": "backup", "sync": if witness { "none" } else { "in_sync" },
                "weight": if witness { 0 } else { 5 }, "witness": witness, "alive": alive,
                "epoch": 257, "frame": 8, "last_heard_ms_ago": ago})
        };
        let a = view(serde_json::json!({
            "node_id": 1, "name": "node-a", "role": "primary", "sync": "paired", "epoch": 257, "frame": 9,
            "weight": 3, "group": [member(2, false, 3, true), member(3, true, 900, false)],
        }));
        let b = view(serde_json::json!({
            "node_id": 2, "name": "node-b", "role": "backup", "sync": "in_sync", "epoch": 257, "frame": 8,
            "weight": 5, "group": [member(1, false, 2, true), member(3, true, 40, true)],
        }));
        let text: Vec<String> = group_table(&[b, a]).iter().map(|l| line_text(l, false, None)).collect();
        assert_eq!(text.len(), 4, "{text:#?}");
        assert!(text[0].starts_with("group"), "{text:#?}");
        assert!(
            text[1].starts_with("node-a (1)") && text[1].contains("PRIMARY"),
            "{text:#?}"
        );
        assert!(
            text[1].contains(" 3 ") && text[1].contains("answers twinctl"),
            "{text:#?}"
        );
        assert!(
            text[2].starts_with("node-b (2)") && text[2].contains("in_sync"),
            "{text:#?}"
        );
        assert!(
            text[3].starts_with("node 3") && text[3].contains("witness"),
            "{text:#?}"
        );
        assert!(text[3].contains("seen by node-b, heard 40 ms ago"), "{text:#?}");
    }

    #[test]
    fn rtt_and_ago_units() {
        assert_eq!(rtt_text(0), "rtt -");
        assert_eq!(rtt_text(259_856), "rtt 259 µs");
        assert_eq!(rtt_text(1_234_567), "rtt 1.23 ms");
        assert_eq!(ago_text(61), "61 ms ago");
        assert_eq!(ago_text(9_500), "9 s ago");
    }
}
