//! What a node says about itself, as typed values (the console protocol's `status`,
//! `hello` and `events` responses, docs/CONSOLE.md).
//!
//! Only the fields twinctl reads are typed. The protocol may add fields within version 1,
//! so unknown fields are ignored; the fields that say what the node *is* (name, role,
//! sync, epoch, frame) are required, so that a response without them is a clear error
//! rather than a blank screen.

use serde::Deserialize;
use serde_json::Value;

/// The `hello` response.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Hello {
    /// The console protocol version the node speaks.
    pub protocol: u64,
    /// The node's software, e.g. `twinloop 0.1.0`.
    #[serde(default)]
    pub software: String,
    /// `runtime.node_id`.
    pub node_id: u64,
    /// `node.name`.
    pub name: String,
    /// Changes at every restart of the node process.
    #[serde(default)]
    pub boot_id: u64,
    /// 32 hex digits unique to the connection, which a request's `auth.mac` covers
    /// (absent from nodes that predate it: they take the key in clear).
    #[serde(default)]
    pub challenge: Option<String>,
}

/// The `status` object.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Status {
    /// `runtime.node_id`.
    pub node_id: u64,
    /// `node.name`.
    pub name: String,
    /// `starting`, `primary` or `backup`.
    pub role: String,
    /// `alone`, `paired`, `joining`, `in_sync` or `lagging`.
    pub sync: String,
    /// The epoch this node leads or follows (0 = none yet).
    pub epoch: u64,
    /// The last frame run.
    pub frame: u64,
    /// Backup: frames committed by the primary and not yet run here.
    #[serde(default)]
    pub lag_frames: u64,
    /// What the peer last said about itself; `None` until it is heard.
    #[serde(default)]
    pub peer: Option<Peer>,
    /// One entry per sync link, in configuration order.
    #[serde(default)]
    pub links: Vec<Link>,
    /// Probes answered by a live primary.
    #[serde(default)]
    pub false_deaths: u64,
    /// Unplanned takeovers by this node.
    #[serde(default)]
    pub takeovers: u64,
    /// Planned switchovers this node took part in.
    #[serde(default)]
    pub switchovers: u64,
    /// Alarms raised since the node started.
    #[serde(default)]
    pub alarms: u64,
    /// The newest alarm.
    #[serde(default)]
    pub last_alarm: Option<LastAlarm>,
    /// The last role or sync change.
    #[serde(default)]
    pub last_transition: Option<LastTransition>,
    /// A planned switchover is under way on this node.
    #[serde(default)]
    pub switchover_in_progress: bool,
    /// What the switchover waits for, in words.
    #[serde(default)]
    pub switchover: Option<String>,
    /// A stop was requested and the node is handing over.
    #[serde(default)]
    pub stopping: bool,
    /// Since the node's shell started.
    #[serde(default)]
    pub uptime_ms: u64,
    /// The node's wall clock now.
    #[serde(default)]
    pub unix_ms: u64,
    /// A state transfer under way on this node.
    #[serde(default)]
    pub transfer: Option<Transfer>,
    /// Changes at every restart.
    #[serde(default)]
    pub boot_id: u64,
    /// The newest journal event's sequence number.
    #[serde(default)]
    pub events_last_seq: u64,
    /// The node's input path (frames from the I/O source); absent from nodes that
    /// predate it.
    #[serde(default)]
    pub input: Option<Input>,
}

/// `status.input`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
pub struct Input {
    /// The highest frame accepted from the I/O source (0 = none).
    #[serde(default)]
    pub frame: u64,
    /// Since the last frame arrived; `None` = never.
    #[serde(default)]
    pub last_frame_age_ms: Option<u64>,
    /// No frame within `silence_ms`.
    #[serde(default)]
    pub silent: bool,
    /// `runtime.input_silence_ms`.
    #[serde(default)]
    pub silence_ms: u64,
    /// Frames dropped as older than the last one run, per second (the last whole second).
    #[serde(default)]
    pub stale_per_s: u64,
    /// Frames that did not decode or came from a source not allowed, per second.
    #[serde(default)]
    pub rejected_per_s: u64,
    /// Input handovers this node started.
    #[serde(default)]
    pub handovers: u64,
}

impl Status {
    /// True for the node that drives the actuators.
    pub fn is_primary(&self) -> bool {
        self.role == "primary"
    }

    /// True for a backup that follows with the primary's state, caught up.
    pub fn is_in_sync_backup(&self) -> bool {
        self.role == "backup" && self.sync == "in_sync"
    }
}

/// `status.transfer`: a state transfer under way.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Transfer {
    /// `sending` (the primary) or `receiving` (the backup).
    pub direction: String,
    /// Bytes acknowledged (sending) or received in order (receiving).
    pub bytes_done: u64,
    /// The snapshot's size; 0 until the primary has begun.
    pub bytes_total: u64,
    /// Since the transfer was asked for (receiving) or the snapshot taken (sending).
    #[serde(default)]
    pub elapsed_ms: u64,
    /// `bytes_done` over `elapsed_ms`.
    #[serde(default)]
    pub rate_bytes_per_s: u64,
}

impl Transfer {
    /// `receiving 512.0 / 1024.0 KiB (50 %) at 6.3 MiB/s`.
    pub fn text(&self) -> String {
        let kib = |b: u64| b as f64 / 1024.0;
        if self.bytes_total == 0 {
            return format!(
                "{}: waiting for the primary to begin ({} ms)",
                self.direction, self.elapsed_ms
            );
        }
        format!(
            "{} {:.1} / {:.1} KiB ({} %) at {:.1} MiB/s",
            self.direction,
            kib(self.bytes_done),
            kib(self.bytes_total),
            self.bytes_done.saturating_mul(100) / self.bytes_total,
            self.rate_bytes_per_s as f64 / (1024.0 * 1024.0)
        )
    }
}

/// `status.peer`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Peer {
    /// The peer's id.
    pub node_id: u64,
    /// The peer's role as it announces it.
    pub role: String,
    /// `joining`, `in_sync`, `lagging` or `none`.
    pub sync: String,
    /// The peer's epoch.
    #[serde(default)]
    pub epoch: u64,
    /// The last frame the peer has run.
    #[serde(default)]
    pub frame: u64,
    /// Since a valid message from the peer arrived.
    #[serde(default)]
    pub last_heard_ms_ago: u64,
}

/// `status.links[i]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Link {
    /// 0-based.
    pub index: u64,
    /// `links[i].name`.
    #[serde(default)]
    pub name: String,
    /// A valid message arrived within the detection window.
    pub up: bool,
    /// The last heartbeat round trip (0 = not measured yet).
    #[serde(default)]
    pub rtt_ns: u64,
    /// Since the last valid message; `None` = never.
    #[serde(default)]
    pub last_heard_ms_ago: Option<u64>,
    /// Datagrams that could not be sent.
    #[serde(default)]
    pub send_errors: u64,
}

/// `status.last_alarm`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LastAlarm {
    /// The alarm's name (docs/CONSOLE.md, "Alarms").
    pub name: String,
    /// The frame it names, if any.
    #[serde(default)]
    pub frame: Option<u64>,
    /// In words.
    #[serde(default)]
    pub message: String,
}

/// `status.last_transition`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LastTransition {
    /// The role after the change.
    pub role: String,
    /// The sync state after the change.
    pub sync: String,
    /// The epoch at the change.
    #[serde(default)]
    pub epoch: u64,
    /// The frame at the change.
    #[serde(default)]
    pub frame: u64,
    /// Why (docs/CONSOLE.md, "Reasons").
    pub reason: String,
    /// For `resync_started`: the cause.
    #[serde(default)]
    pub cause: Option<String>,
    /// The reason in words.
    #[serde(default)]
    pub message: String,
    /// When, on the node's wall clock.
    #[serde(default)]
    pub unix_ms: u64,
    /// How long ago.
    #[serde(default)]
    pub ago_ms: u64,
}

/// One journal event: the fields every event has, the ones twinctl reads by kind, and
/// the event exactly as the node sent it (for `--json`).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// 1, 2, 3, … per run of the node.
    pub seq: u64,
    /// When it was recorded, on the node's wall clock.
    pub unix_ms: u64,
    /// `transition`, `alarm`, `notice` or `shell`.
    pub kind: String,
    /// What happened.
    pub name: String,
    /// One sentence for people.
    pub message: String,
    /// Transitions and some alarms: the frame.
    pub frame: Option<u64>,
    /// Transitions: the epoch.
    pub epoch: Option<u64>,
    /// Transitions: the role after the change.
    pub role: Option<String>,
    /// Transitions: the role before the change.
    pub previous_role: Option<String>,
    /// `switchover_delayed`: `joining` or `lagging`.
    pub delay_reason: Option<String>,
    /// `switchover_delayed`: how far behind the backup was.
    pub lag_frames: Option<u64>,
    /// The event as sent.
    pub raw: Value,
}

#[derive(Deserialize)]
struct EventFields {
    seq: u64,
    unix_ms: u64,
    kind: String,
    name: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    frame: Option<u64>,
    #[serde(default)]
    epoch: Option<u64>,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    previous_role: Option<String>,
    #[serde(default)]
    delay_reason: Option<String>,
    #[serde(default)]
    lag_frames: Option<u64>,
}

impl Event {
    /// Reads one event of an `events` response.
    pub fn from_value(raw: Value) -> Result<Event, String> {
        let f: EventFields = serde_json::from_value(raw.clone()).map_err(|e| format!("malformed event: {e}"))?;
        Ok(Event {
            seq: f.seq,
            unix_ms: f.unix_ms,
            kind: f.kind,
            name: f.name,
            message: f.message,
            frame: f.frame,
            epoch: f.epoch,
            role: f.role,
            previous_role: f.previous_role,
            delay_reason: f.delay_reason,
            lag_frames: f.lag_frames,
            raw,
        })
    }
}

/// One page of the journal (`events` response).
#[derive(Debug, Clone, PartialEq)]
pub struct EventsPage {
    /// Oldest first.
    pub events: Vec<Event>,
    /// The `since` of the next request.
    pub next_since: u64,
    /// Events after `since` were already dropped from the ring.
    pub truncated: bool,
    /// More events follow this page.
    pub more: bool,
    /// Changes when the node restarted (its `seq` began again at 1).
    pub boot_id: u64,
}

/// The reply to a `switchover` that passed the key check.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SwitchoverReply {
    /// `started`, `forwarded` or `refused`.
    pub result: String,
    /// When refused: why (docs/CONSOLE.md, "Refusals").
    #[serde(default)]
    pub reason: Option<String>,
    /// The outcome in words.
    #[serde(default)]
    pub message: String,
}

/// The epoch as `term/node` (the term counter, and the node that started the term).
pub fn epoch_text(epoch: u64) -> String {
    twinloop::EpochText(epoch).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn status_with_unknown_fields_parses() {
        let status: Status = serde_json::from_value(json!({
            "node_id": 1, "name": "node-a", "role": "primary", "sync": "paired",
            "epoch": 257, "frame": 9, "links": [{"index": 0, "up": true, "future": 1}],
            "something_new": {"a": 1}
        }))
        .unwrap();
        assert!(status.is_primary());
        assert_eq!(status.links.len(), 1);
        assert_eq!(status.peer, None);
    }

    #[test]
    fn status_without_role_is_an_error() {
        let error = serde_json::from_value::<Status>(json!({
            "node_id": 1, "name": "node-a", "sync": "paired", "epoch": 257, "frame": 9
        }))
        .unwrap_err();
        assert!(error.to_string().contains("role"), "{error}");
    }

    #[test]
    fn event_keeps_raw_and_reads_transition_fields() {
        let raw = json!({"seq": 4, "unix_ms": 10, "kind": "transition", "name": "switchover_completed",
            "message": "m", "role": "primary", "epoch": 514, "frame": 77, "reason": "switchover_completed"});
        let event = Event::from_value(raw.clone()).unwrap();
        assert_eq!(
            (event.kind.as_str(), event.name.as_str()),
            ("transition", "switchover_completed")
        );
        assert_eq!((event.epoch, event.frame), (Some(514), Some(77)));
        assert_eq!(event.raw, raw);
        assert!(Event::from_value(json!({"seq": "x"})).is_err());
    }

    #[test]
    fn epoch_text_splits_term_and_node() {
        assert_eq!(epoch_text(514), "514 (2.2)");
        let t = Transfer {
            direction: "receiving".into(),
            bytes_done: 512 * 1024,
            bytes_total: 1024 * 1024,
            elapsed_ms: 40,
            rate_bytes_per_s: 13_107_200,
        };
        assert_eq!(t.text(), "receiving 512.0 / 1024.0 KiB (50 %) at 12.5 MiB/s");
        assert_eq!(epoch_text(0), "0 (none)");
    }
}
