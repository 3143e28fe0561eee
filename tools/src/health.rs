//! The pair's health, from what each node says: healthy, degraded or down, with the
//! problems in words. The rules are documented in docs/CONSOLE.md ("twinctl status").

use crate::client::{Client, ClientError};
use crate::model::Status;
use serde_json::Value;
use std::net::SocketAddr;
use twinloop::io::schema::{EventKind, PeerSync, Role, Sync};

/// The pair's health; also `twinctl status`'s exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// One primary with an in-sync backup, every node reachable, every link up, no
    /// recent alarm.
    Healthy,
    /// A primary drives the plant, but something is wrong (the problems say what).
    Degraded,
    /// No reachable node is primary, or the primary's input is silent: nothing is known
    /// to drive the actuators.
    Down,
}

impl Health {
    /// `healthy`, `degraded` or `down`.
    pub fn name(self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::Degraded => "degraded",
            Health::Down => "down",
        }
    }

    /// 0, 1 or 2.
    pub fn exit_code(self) -> u8 {
        match self {
            Health::Healthy => 0,
            Health::Degraded => 1,
            Health::Down => 2,
        }
    }
}

/// One node as twinctl sees it now.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeView {
    /// The console address.
    pub addr: SocketAddr,
    /// The node's name: from its status, else its configuration file, else the address.
    pub name: String,
    /// The status, when the node answered.
    pub status: Option<Status>,
    /// The status object exactly as the node sent it.
    pub raw: Option<Value>,
    /// Why the node did not answer.
    pub error: Option<String>,
    /// An alarm raised within the alarm window, in words.
    pub recent_alarm: Option<String>,
}

impl NodeView {
    /// A node that answered.
    pub fn answered(addr: SocketAddr, status: Status, raw: Value) -> NodeView {
        NodeView {
            addr,
            name: status.name.clone(),
            status: Some(status),
            raw: Some(raw),
            error: None,
            recent_alarm: None,
        }
    }

    /// A node that did not answer.
    pub fn failed(addr: SocketAddr, name: String, error: String) -> NodeView {
        NodeView {
            addr,
            name,
            status: None,
            raw: None,
            error: Some(error),
            recent_alarm: None,
        }
    }
}

/// The verdict on the pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assessment {
    /// Healthy, degraded or down.
    pub health: Health,
    /// What keeps the pair from healthy, one sentence each (empty when healthy).
    pub problems: Vec<String>,
    /// The index of the primary (the highest epoch when two claim it).
    pub primary: Option<usize>,
    /// The index of the in-sync backup following that primary.
    pub backup: Option<usize>,
    /// One line for people.
    pub summary: String,
}

/// Judges the pair from the nodes' views (see [`Health`]).
pub fn assess(nodes: &[NodeView]) -> Assessment {
    let mut problems = Vec::new();
    for node in nodes {
        if let Some(error) = &node.error {
            problems.push(format!("{}: unreachable: {error}", node.name));
        }
    }
    let primaries: Vec<usize> = (0..nodes.len())
        .filter(|&i| nodes[i].status.as_ref().is_some_and(Status::is_primary))
        .collect();
    let primary = primaries
        .iter()
        .copied()
        .max_by_key(|&i| nodes[i].status.as_ref().map_or(0, |s| s.epoch));
    let Some(p) = primary else {
        let mut roles: Vec<String> = nodes
            .iter()
            .filter_map(|n| {
                n.status
                    .as_ref()
                    .map(|s| format!("{} is {} ({})", n.name, s.role, s.sync))
            })
            .collect();
        if roles.is_empty() {
            roles.push("no node answered".into());
        }
        problems.push(format!("no primary: {}", roles.join(", ")));
        return Assessment {
            health: Health::Down,
            summary: "DOWN: no reachable node is primary".into(),
            problems,
            primary: None,
            backup: None,
        };
    };
    let lead = nodes[p].status.as_ref().expect("a primary answered");
    if primaries.len() > 1 {
        let list: Vec<String> = primaries
            .iter()
            .map(|&i| {
                format!(
                    "{} epoch {}",
                    nodes[i].name,
                    crate::model::epoch_text(nodes[i].status.as_ref().map_or(0, |s| s.epoch))
                )
            })
            .collect();
        problems.push(format!(
            "two primaries ({}): the sinks accept only the higher epoch, {}'s",
            list.join(", "),
            nodes[p].name
        ));
    }

    // The backup: another node that answered as an in-sync backup of this epoch; with
    // a single node given, the primary's own view of its peer.
    let backup = (0..nodes.len()).find(|&i| {
        i != p
            && nodes[i]
                .status
                .as_ref()
                .is_some_and(|s| s.is_in_sync_backup() && s.epoch == lead.epoch)
    });
    let peer_in_sync = lead
        .peer
        .as_ref()
        .is_some_and(|q| q.role == Role::Backup && q.sync == PeerSync::InSync && q.epoch == lead.epoch);
    let backup_ok = backup.is_some() || (nodes.len() == 1 && peer_in_sync);
    if !backup_ok {
        let others: Vec<String> = (0..nodes.len())
            .filter(|&i| i != p)
            .filter_map(|i| {
                let s = nodes[i].status.as_ref()?;
                let mut text = format!("{} is {} ({}", nodes[i].name, s.role, s.sync);
                if s.role == Role::Backup && s.lag_frames > 0 {
                    text.push_str(&format!(", {} frames behind", s.lag_frames));
                }
                if s.role == Role::Backup && s.epoch != lead.epoch {
                    text.push_str(&format!(", follows epoch {}", crate::model::epoch_text(s.epoch)));
                }
                text.push(')');
                Some(text)
            })
            .collect();
        let detail = if others.is_empty() {
            match &lead.peer {
                Some(q) => format!(
                    "{} last heard its peer {} ms ago, as {} ({})",
                    nodes[p].name, q.last_heard_ms_ago, q.role, q.sync
                ),
                None => format!("{} hears no peer", nodes[p].name),
            }
        } else {
            others.join(", ")
        };
        problems.push(format!("no in-sync backup: {detail}"));
    } else if lead.sync != Sync::Paired {
        problems.push(format!(
            "{} (primary) does not count a following backup (sync {})",
            nodes[p].name, lead.sync
        ));
    }
    for node in nodes {
        let Some(s) = &node.status else { continue };
        for link in s.links.iter().filter(|l| !l.up) {
            problems.push(format!("{}: link {} ({}) down", node.name, link.index, link.name));
        }
        if let Some(alarm) = &node.recent_alarm {
            problems.push(format!("{}: alarm {alarm}", node.name));
        }
        if s.stopping {
            problems.push(format!("{} is stopping", node.name));
        }
        if let Some(input) = &s.input {
            if input.silent && !s.is_primary() {
                problems.push(format!(
                    "{}: {} (a takeover would run nothing)",
                    node.name,
                    silence_text(input)
                ));
            }
            // A backup's stale frames are mostly its own late copies of frames it already
            // ran with the primary's copy (it fetches what it lacks): on a busy host tens
            // a second, and no sign of trouble. The primary's stale frames and anyone's
            // rejected frames are.
            let stale = if s.is_primary() { input.stale_per_s } else { 0 };
            let bad = stale + input.rejected_per_s;
            if bad >= FRAMES_DROPPED_DEGRADED_PER_S {
                problems.push(format!(
                    "{}: frames dropped at {bad}/s ({stale} stale, {} rejected)",
                    node.name, input.rejected_per_s
                ));
            }
        }
    }
    // The primary runs nothing without frames: the plant is not driven.
    let starved = lead.input.as_ref().filter(|i| i.silent);
    if let Some(input) = starved {
        problems.insert(
            0,
            format!("{} (primary): {}: nothing runs", nodes[p].name, silence_text(input)),
        );
    }
    let health = if starved.is_some() {
        Health::Down
    } else if problems.is_empty() {
        Health::Healthy
    } else {
        Health::Degraded
    };
    let summary = match (health, backup) {
        (Health::Healthy, Some(b)) => format!(
            "HEALTHY: {} is primary, {} an in-sync backup, all links up",
            nodes[p].name, nodes[b].name
        ),
        (Health::Healthy, None) => format!(
            "HEALTHY: {} is primary with an in-sync backup, all links up",
            nodes[p].name
        ),
        (Health::Down, _) => format!(
            "DOWN: {} is primary but gets no frames; {} problem{}",
            nodes[p].name,
            problems.len(),
            if problems.len() == 1 { "" } else { "s" }
        ),
        _ => format!(
            "DEGRADED: {} is primary; {} problem{}",
            nodes[p].name,
            problems.len(),
            if problems.len() == 1 { "" } else { "s" }
        ),
    };
    Assessment {
        health,
        problems,
        primary: Some(p),
        backup,
        summary,
    }
}

/// Stale and rejected frames per second (together, on one node) from which the pair is
/// degraded: a few are normal (a backup's own copy of a frame it already fetched arrives
/// late), a steady stream is a source, a network or an attacker to look at.
pub const FRAMES_DROPPED_DEGRADED_PER_S: u64 = 10;

/// `no frame for 1234 ms (silent after 500 ms)`, or `no frame yet`.
fn silence_text(input: &crate::model::Input) -> String {
    match input.last_frame_age_ms {
        Some(ms) => format!("no frame for {ms} ms (silent after {} ms)", input.silence_ms),
        None => "no frame yet".into(),
    }
}

/// The journal page that [`recent_alarm`] reads: the newest events.
const ALARM_LOOKBACK_EVENTS: u64 = 1000;

/// An alarm the node raised within `window_ms` of its clock now, in words; `window_ms`
/// 0 counts any alarm since the node started. When the journal's newest events do not
/// reach back to the window's start and hold no alarm, an older alarm may still be in
/// the window: it counts (the safe side).
pub fn recent_alarm(client: &mut Client, status: &Status, window_ms: u64) -> Result<Option<String>, ClientError> {
    if status.alarms == 0 {
        return Ok(None);
    }
    let last = match &status.last_alarm {
        Some(a) => match a.frame {
            Some(frame) => format!("{} at frame {frame}", a.name),
            None => a.name.to_string(),
        },
        None => "(unnamed)".into(),
    };
    if window_ms == 0 {
        return Ok(Some(format!("{last} ({} since start)", status.alarms)));
    }
    let since = status.events_last_seq.saturating_sub(ALARM_LOOKBACK_EVENTS);
    let page = client.events(since, ALARM_LOOKBACK_EVENTS)?;
    let window_start = status.unix_ms.saturating_sub(window_ms);
    if let Some(event) = page.events.iter().rev().find(|e| e.kind == EventKind::Alarm) {
        let ago_s = status.unix_ms.saturating_sub(event.unix_ms) / 1000;
        return Ok((event.unix_ms >= window_start).then(|| format!("{} ({ago_s} s ago)", event.name_with_frame())));
    }
    let reaches_back = page.events.first().is_some_and(|e| e.unix_ms < window_start);
    Ok((!reaches_back).then(|| format!("{last} (older than the journal's last {ALARM_LOOKBACK_EVENTS} events)")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Link, Peer};

    fn status(name: &str, role: &str, sync: &str, epoch: u64) -> Status {
        let link = |index: u64, name: &str| Link {
            index,
            name: name.into(),
            up: true,
            rtt_ns: 1000,
            last_heard_ms_ago: Some(1),
            ..Link::default()
        };
        Status {
            links: vec![link(0, "sync"), link(1, "plant")],
            uptime_ms: 1,
            unix_ms: 1,
            boot_id: 1,
            events_last_seq: 1,
            input: Some(crate::model::Input {
                frame: 100,
                last_frame_age_ms: Some(1),
                silence_ms: 500,
                ..Default::default()
            }),
            ..serde_json::from_value(serde_json::json!({
                "node_id": 1, "name": name, "role": role, "sync": sync, "epoch": epoch, "frame": 100,
            }))
            .unwrap()
        }
    }

    fn view(port: u16, s: Status) -> NodeView {
        NodeView::answered(SocketAddr::from(([127, 0, 0, 1], port)), s, Value::Null)
    }

    pub(super) fn pair() -> Vec<NodeView> {
        vec![
            view(1, status("a", "primary", "paired", 257)),
            view(2, status("b", "backup", "in_sync", 257)),
        ]
    }

    #[test]
    fn pair_primary_and_in_sync_backup_is_healthy() {
        let verdict = assess(&pair());
        assert_eq!(verdict.health, Health::Healthy, "{:?}", verdict.problems);
        assert_eq!((verdict.primary, verdict.backup), (Some(0), Some(1)));
        assert_eq!(verdict.health.exit_code(), 0);
    }

    #[test]
    fn pair_backup_lagging_is_degraded() {
        let mut nodes = pair();
        let b = nodes[1].status.as_mut().unwrap();
        b.sync = Sync::Lagging;
        b.lag_frames = 300;
        let verdict = assess(&nodes);
        assert_eq!(verdict.health, Health::Degraded);
        assert_eq!(
            verdict.problems,
            ["no in-sync backup: b is backup (lagging, 300 frames behind)"]
        );
    }

    #[test]
    fn pair_link_down_or_alarm_is_degraded() {
        let mut nodes = pair();
        nodes[1].status.as_mut().unwrap().links[1].up = false;
        nodes[0].recent_alarm = Some("state_divergence at frame 9 (3 s ago)".into());
        let verdict = assess(&nodes);
        assert_eq!(verdict.health, Health::Degraded);
        assert_eq!(
            verdict.problems,
            [
                "a: alarm state_divergence at frame 9 (3 s ago)",
                "b: link 1 (plant) down"
            ]
        );
    }

    #[test]
    fn pair_backup_unreachable_is_degraded() {
        let mut nodes = pair();
        nodes[1] = NodeView::failed(nodes[1].addr, "b".into(), "cannot connect".into());
        let verdict = assess(&nodes);
        assert_eq!(verdict.health, Health::Degraded);
        assert_eq!(verdict.problems[0], "b: unreachable: cannot connect");
    }

    #[test]
    fn pair_no_primary_is_down() {
        let mut nodes = pair();
        nodes[0] = NodeView::failed(nodes[0].addr, "a".into(), "cannot connect".into());
        let verdict = assess(&nodes);
        assert_eq!(verdict.health, Health::Down);
        assert_eq!(verdict.health.exit_code(), 2);
        assert_eq!(verdict.primary, None);
        let none: Vec<NodeView> = vec![NodeView::failed(nodes[0].addr, "a".into(), "x".into())];
        assert_eq!(assess(&none).health, Health::Down);
    }

    #[test]
    fn pair_two_primaries_picks_higher_epoch_and_is_degraded() {
        let mut nodes = pair();
        *nodes[1].status.as_mut().unwrap() = status("b", "primary", "alone", 514);
        let verdict = assess(&nodes);
        assert_eq!(verdict.health, Health::Degraded);
        assert_eq!(verdict.primary, Some(1));
        assert!(
            verdict.problems[0].starts_with("two primaries"),
            "{:?}",
            verdict.problems
        );
    }

    #[test]
    fn single_node_judged_by_its_peer_view() {
        let mut a = status("a", "primary", "paired", 257);
        a.peer = Some(Peer {
            node_id: 2,
            role: Role::Backup,
            sync: PeerSync::InSync,
            epoch: 257,
            frame: 99,
            last_heard_ms_ago: 3,
        });
        assert_eq!(assess(&[view(1, a.clone())]).health, Health::Healthy);
        a.peer = None;
        a.sync = Sync::Alone;
        let verdict = assess(&[view(1, a)]);
        assert_eq!(verdict.problems, ["no in-sync backup: a hears no peer"]);
    }
}

#[cfg(test)]
mod input_tests {
    use super::tests::pair as pair_of_nodes;
    use super::*;

    #[test]
    fn pair_primary_input_silent_is_down_with_the_frame_age() {
        let mut nodes = pair_of_nodes();
        let input = nodes[0].status.as_mut().unwrap().input.as_mut().unwrap();
        input.silent = true;
        input.last_frame_age_ms = Some(1234);
        let verdict = assess(&nodes);
        assert_eq!(verdict.health, Health::Down);
        assert_eq!(verdict.health.exit_code(), 2);
        assert_eq!(verdict.primary, Some(0));
        assert_eq!(
            verdict.problems[0],
            "a (primary): no frame for 1234 ms (silent after 500 ms): nothing runs"
        );
        assert!(verdict.summary.starts_with("DOWN: a is primary but gets no frames"));
    }

    #[test]
    fn pair_backup_input_silent_is_degraded() {
        let mut nodes = pair_of_nodes();
        let input = nodes[1].status.as_mut().unwrap().input.as_mut().unwrap();
        input.silent = true;
        input.last_frame_age_ms = None;
        let verdict = assess(&nodes);
        assert_eq!(verdict.health, Health::Degraded);
        assert_eq!(verdict.problems, ["b: no frame yet (a takeover would run nothing)"]);
    }

    #[test]
    fn pair_frames_dropped_at_threshold_is_degraded() {
        let mut nodes = pair_of_nodes();
        let input = nodes[0].status.as_mut().unwrap().input.as_mut().unwrap();
        input.stale_per_s = FRAMES_DROPPED_DEGRADED_PER_S - 1;
        assert_eq!(assess(&nodes).health, Health::Healthy);
        let input = nodes[0].status.as_mut().unwrap().input.as_mut().unwrap();
        input.rejected_per_s = 1;
        let verdict = assess(&nodes);
        assert_eq!(verdict.health, Health::Degraded);
        assert_eq!(verdict.problems, ["a: frames dropped at 10/s (9 stale, 1 rejected)"]);
    }

    #[test]
    fn pair_backup_late_copies_stale_is_healthy_rejected_is_not() {
        let mut nodes = pair_of_nodes();
        assert!(!nodes[1].status.as_ref().unwrap().is_primary());
        let input = nodes[1].status.as_mut().unwrap().input.as_mut().unwrap();
        input.stale_per_s = 44;
        assert_eq!(assess(&nodes).health, Health::Healthy, "a backup's own late copies");
        let input = nodes[1].status.as_mut().unwrap().input.as_mut().unwrap();
        input.rejected_per_s = FRAMES_DROPPED_DEGRADED_PER_S;
        let verdict = assess(&nodes);
        assert_eq!(verdict.health, Health::Degraded);
        assert_eq!(verdict.problems, ["b: frames dropped at 10/s (0 stale, 10 rejected)"]);
    }
}
