//! Acknowledged events (issue 22): with `outputs.acks` on (`Config::ack_sinks` > 0) the
//! primary keeps every event it sent in a queue until each sink acknowledged it, and
//! re-sends the others; the backup keeps the same queue from the frames it runs, less
//! the ids the primary passed on as acknowledged with its commits (`Body::Acks`), so that
//! a new primary re-sends exactly the events no ack was heard of — sent or not.
//!
//! - **Acks in** ([`Node::handle_ack_datagram`], [`Node::handle_ack`]): the shell hands
//!   over the datagrams of a configured sink address; they are decoded, checked against
//!   the ack key when one is set and against a per-sink replay window. An id every sink
//!   acknowledged leaves the queue and waits (at most [`ACKS_WAITING_MAX`], the oldest
//!   dropped) to go to the backup with the next commits, [`ACKS_PER_COMMIT`] a commit.
//! - **Re-sends** (timer `Acks`): an entry is due `event_retry_ms` after it went out, then
//!   twice as long each time up to `event_retry_max_ms`; a wake-up re-sends at most
//!   [`RESENDS_PER_WAKE`] due entries, oldest first, under the current epoch, to every
//!   sink (a sink that has it drops the copy as a duplicate and acks it again).
//! - **Bounds**: the queue holds [`EVENTS_UNACKED_MAX`] events; full, the oldest is
//!   dropped, counted, and `EventsDropped` raised once until the queue has room again
//!   (since 2026-11-27; before, until any sink acked again: with a second sink acking,
//!   raised at every drop).
//! - **Silence**: a sink that acknowledged nothing for `ack_silence_ms` while an event
//!   waits for it (counted from the later of its last ack and the first sending of the
//!   oldest event it owes, dropped ones included) raises `SinkSilent` once, until it acks
//!   again. (Before 2026-11-27 a dropped event stopped counting: a queue that filled in
//!   less than `ack_silence_ms` — 256 events, under 200 ms at 1 kHz — never let a
//!   silent sink be alarmed.) Nothing else changes: events
//!   stay queued to the bound and are re-sent at the longest backoff; the alarm makes the
//!   pair's health degraded (docs/CONSOLE.md), and the plant side's safe state is the
//!   gateway's epoch lease, as without acks.
//! - **Takeover**: every queued entry is due at once under the new epoch; inherited
//!   frames' events the old primary reported sent are queued due at once too.
//!
//! Acks name no epoch: an id is the same output whichever primary sent it.

use super::{Action, Alarm, Node, Output, Role, SyncState};
use crate::app::{App, OutputKind, OutputPayload, OUTPUT_PAYLOAD_MAX};
use crate::io_protocol::{decode_ack, AckKey, AckWindow};
use crate::time::Instant;
use crate::wire::{Body, Header, WireRole};
use core::time::Duration;

pub use crate::wire::ACKS_PER_COMMIT;

/// Events waiting for their acks: 16 frames of 16 events.
pub const EVENTS_UNACKED_MAX: usize = 256;
/// Re-sends of one wake-up.
pub const RESENDS_PER_WAKE: usize = 16;
/// Acknowledged ids waiting to go to the backup.
pub const ACKS_WAITING_MAX: usize = 256;
/// A backup's acknowledged ids of frames it has not run yet: 128 frames of 16 events, so
/// that a backup thawing from a freeze, its buffered `Acks` read before the frames it
/// then catches up on, keeps them (256 lost the oldest: `dst --acks` seed 515, a 126 ms
/// freeze at 1 ms a frame). Allocated once at start (32 KiB).
pub const ACKS_AHEAD_MAX: usize = 2048;
/// The most sinks that acknowledge (one bit each).
const SINKS_MAX: usize = crate::config::ACK_SINKS_MAX as usize;

/// The last four bytes of a transfer's snapshot of content version 3 (u32 LE; with
/// `outputs.acks` on only, since 2026-11-26, branch g7): after the levels (version 2,
/// `refresh::TRANSFER_CONTENT_V2`), the events the primary still waits acks for, so that
/// a backup that joined by a transfer re-sends them when it leads, as one that ran their
/// frames would. Without them, an event lost on the way (or whose acks were) before the
/// snapshot was lost for good once the primary failed (`chaos --acks --output-loss 50`,
/// seed 1: 5 events of 1,104).
pub(super) const TRANSFER_CONTENT_V3: u32 = 0xFFFF_0003;

/// Bytes of one event in a transfer: two bytes 0, frame u64, index u8, length u8, then the
/// payload padded with zeros to [`OUTPUT_PAYLOAD_MAX`], little-endian (a level's layout,
/// its key 0).
const TRANSFER_EVENT_BYTES: usize = 2 + 8 + 1 + 1 + OUTPUT_PAYLOAD_MAX;

/// The most bytes the events add to a transfer's snapshot: the queue, its count (u16) and
/// the version mark.
pub(super) const TRANSFER_EVENTS_BYTES_MAX: usize = EVENTS_UNACKED_MAX * TRANSFER_EVENT_BYTES + 2 + 4;

/// Writes the events of `pending` into `out` as a transfer carries them (entries, their
/// count u16 LE, the mark u32 LE); the bytes written. `out` is at least
/// [`TRANSFER_EVENTS_BYTES_MAX`] long; at most [`EVENTS_UNACKED_MAX`] entries go.
fn encode_events<'a>(pending: impl Iterator<Item = &'a Output>, out: &mut [u8]) -> usize {
    let mut at = 0;
    let mut count: u16 = 0;
    for output in pending.take(EVENTS_UNACKED_MAX) {
        let Some(slot) = out.get_mut(at..at + TRANSFER_EVENT_BYTES) else {
            break;
        };
        let payload = output.payload.as_slice();
        slot.fill(0);
        slot[2..10].copy_from_slice(&output.frame.to_le_bytes());
        slot[10] = output.index;
        slot[11] = payload.len() as u8;
        slot[12..12 + payload.len()].copy_from_slice(payload);
        at += TRANSFER_EVENT_BYTES;
        count += 1;
    }
    if let Some(slot) = out.get_mut(at..at + 6) {
        slot[0..2].copy_from_slice(&count.to_le_bytes());
        slot[2..6].copy_from_slice(&TRANSFER_CONTENT_V3.to_le_bytes());
        at += 6;
    }
    at
}

/// Splits a received snapshot into what comes before the events (its length) and the
/// events' entries. Without the version 3 mark at its end there are none: all of it
/// comes before. `None` when they do not fit (a count above [`EVENTS_UNACKED_MAX`], more
/// bytes than there are, a length above [`OUTPUT_PAYLOAD_MAX`]). Never panics.
pub(super) fn split_events(snapshot: &[u8]) -> Option<(usize, &[u8])> {
    let Some(mark_at) = snapshot.len().checked_sub(4) else {
        return Some((snapshot.len(), &[]));
    };
    if u32::from_le_bytes(snapshot[mark_at..].try_into().ok()?) != TRANSFER_CONTENT_V3 {
        return Some((snapshot.len(), &[]));
    }
    let count_at = mark_at.checked_sub(2)?;
    let count = usize::from(u16::from_le_bytes([snapshot[count_at], snapshot[count_at + 1]]));
    if count > EVENTS_UNACKED_MAX {
        return None;
    }
    let start = count_at.checked_sub(count * TRANSFER_EVENT_BYTES)?;
    let events = &snapshot[start..count_at];
    if events
        .chunks_exact(TRANSFER_EVENT_BYTES)
        .any(|entry| usize::from(entry[11]) > OUTPUT_PAYLOAD_MAX)
    {
        return None;
    }
    Some((start, events))
}

/// The event of one entry as [`split_events`] cut it (its length checked there).
fn transfer_event(entry: &[u8]) -> Output {
    let len = usize::from(entry[11]).min(OUTPUT_PAYLOAD_MAX);
    Output {
        // Re-sent under the epoch the node then leads.
        epoch: 0,
        frame: u64::from_le_bytes(entry[2..10].try_into().unwrap_or([0; 8])),
        index: entry[10],
        kind: OutputKind::Event,
        payload: OutputPayload::from_slice(&entry[12..12 + len]).unwrap_or_default(),
    }
}

/// One event waiting for its acks.
#[derive(Debug, Clone)]
struct Pending {
    output: Output,
    /// Bit `s`: sink `s` acknowledged it.
    acked: u8,
    /// Re-sends so far (the backoff's exponent, capped).
    tries: u8,
    /// When it is re-sent next (`None`: held by a backup, not sent by this node).
    due: Option<Instant>,
    /// When it first went out from this node (the silence counts from it).
    sent_at: Instant,
}

/// How the acks stand, for the console and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AckStatus {
    /// Events waiting for an ack (primary: sent; backup: run and not acknowledged).
    pub events_unacked: u64,
    /// Events dropped unacknowledged from a full queue.
    pub events_dropped: u64,
    /// Re-sends made.
    pub events_resent: u64,
    /// Ack datagrams taken.
    pub acks_taken: u64,
    /// Ack datagrams refused: malformed, unauthenticated, replayed, or from no sink.
    pub acks_refused: u64,
    /// Bit `s`: sink `s` is silent (`SinkSilent` raised).
    pub sinks_silent: u8,
    /// When the oldest waiting event first went out from this node (`None`: none waits).
    pub oldest_sent_at: Option<Instant>,
}

/// The acks' state.
#[derive(Debug)]
pub(super) struct EventAcks {
    /// Allocated once at start (256 entries of about 112 bytes).
    pending: Box<heapless::Vec<Pending, EVENTS_UNACKED_MAX>>,
    /// Primary: ids every sink acknowledged, for the backup.
    to_backup: heapless::Deque<(u64, u8), ACKS_WAITING_MAX>,
    /// Backup: acknowledged ids of frames not run yet.
    ahead: Box<heapless::Deque<(u64, u8), ACKS_AHEAD_MAX>>,
    windows: [AckWindow; SINKS_MAX],
    heard_at: [Instant; SINKS_MAX],
    key: Option<AckKey>,
    /// `EventsDropped` is to be raised (the frame of the first dropped), or was raised.
    drop_alarm: Option<(u64, bool)>,
    /// By sink: the first sending of the oldest event dropped from the full queue that
    /// it had not acknowledged, since its last ack (its silence counts from there).
    owed_since: [Option<Instant>; SINKS_MAX],
    status: AckStatus,
}

impl Default for EventAcks {
    fn default() -> Self {
        EventAcks {
            pending: Box::default(),
            to_backup: heapless::Deque::new(),
            ahead: Box::default(),
            windows: [AckWindow::default(); SINKS_MAX],
            heard_at: [Instant::ZERO; SINKS_MAX],
            key: None,
            drop_alarm: None,
            owed_since: [None; SINKS_MAX],
            status: AckStatus::default(),
        }
    }
}

impl<A: App> Node<A> {
    fn acks_on(&self) -> bool {
        self.config.ack_sinks != 0
    }

    /// Every sink's bit.
    fn acks_all(&self) -> u8 {
        ((1u16 << self.config.ack_sinks) - 1) as u8
    }

    /// Authenticates acks with `key`: only acks tagged with it are taken.
    pub fn with_ack_key(mut self, key: AckKey) -> Self {
        self.acks.key = Some(key);
        self
    }

    /// How the acks stand.
    pub fn ack_status(&self) -> AckStatus {
        AckStatus {
            events_unacked: self.acks.pending.len() as u64,
            // At most 256 entries, on request only.
            oldest_sent_at: self.acks.pending.iter().map(|p| p.sent_at).min(),
            ..self.acks.status
        }
    }

    /// An ack datagram that arrived at `now` on the outputs socket from configured sink
    /// `sink` (its position in `outputs.sinks`). Decoded, authenticated with the ack key
    /// when one is set, checked against the sink's replay window, then
    /// [`Node::handle_ack`]. Anything else is counted (`acks_refused`) and changes
    /// nothing. Constant work but for the ids (at most 32).
    pub fn handle_ack_datagram(&mut self, now: Instant, sink: u8, bytes: &[u8]) {
        self.wake(now);
        if !self.acks_on() || sink >= self.config.ack_sinks {
            self.acks.status.acks_refused += 1;
            return;
        }
        let Ok(ack) = decode_ack(bytes, self.acks.key.as_ref()) else {
            self.acks.status.acks_refused += 1;
            return;
        };
        if !self.acks.windows[usize::from(sink)].accept(ack.session, ack.seq) {
            self.acks.status.acks_refused += 1;
            return;
        }
        self.ack_ids(sink, &ack.ids);
    }

    /// Sink `sink` acknowledged the events `ids` at `now` (already authenticated: use
    /// [`Node::handle_ack_datagram`] for bytes from the network). An id every sink
    /// acknowledged leaves the queue; ids not queued are ignored. At most
    /// `ids × EVENTS_UNACKED_MAX` comparisons and one pass over the queue.
    pub fn handle_ack(&mut self, now: Instant, sink: u8, ids: &[(u64, u8)]) {
        self.wake(now);
        if !self.acks_on() || sink >= self.config.ack_sinks {
            self.acks.status.acks_refused += 1;
            return;
        }
        self.ack_ids(sink, ids);
    }

    fn ack_ids(&mut self, sink: u8, ids: &[(u64, u8)]) {
        self.acks.status.acks_taken += 1;
        let bit = 1u8 << sink;
        self.acks.heard_at[usize::from(sink)] = self.now;
        self.acks.owed_since[usize::from(sink)] = None;
        self.acks.status.sinks_silent &= !bit;
        for &(frame, index) in ids.iter().take(crate::io_protocol::ACK_IDS_MAX) {
            if let Some(p) = self
                .acks
                .pending
                .iter_mut()
                .find(|p| p.output.frame == frame && p.output.index == index)
            {
                p.acked |= bit;
            }
        }
        self.acks_retire();
    }

    /// Takes the fully acknowledged entries off the queue; a primary keeps their ids for
    /// the backup. One pass.
    fn acks_retire(&mut self) {
        let all = self.acks_all();
        let primary = self.role == Role::Primary;
        let acks = &mut self.acks;
        let to_backup = &mut acks.to_backup;
        acks.pending.retain(|p| {
            if p.acked & all != all {
                return true;
            }
            if primary {
                if to_backup.is_full() {
                    // The backup will re-send it after a takeover: a duplicate the sink drops.
                    to_backup.pop_front();
                }
                let _ = to_backup.push_back((p.output.frame, p.output.index));
            }
            false
        });
        // Room again: the next overflow is a new one, alarmed again.
        if !acks.pending.is_full() && matches!(acks.drop_alarm, Some((_, true))) {
            acks.drop_alarm = None;
        }
    }

    /// Queues `entry`; full, the oldest goes (counted, alarmed at the next tick).
    fn acks_enqueue(&mut self, entry: Pending) {
        if self.acks.pending.is_full() {
            let oldest = self.acks.pending.remove(0);
            self.acks.status.events_dropped += 1;
            for sink in 0..usize::from(self.config.ack_sinks).min(SINKS_MAX) {
                if oldest.acked & (1 << sink) == 0 {
                    let owed = &mut self.acks.owed_since[sink];
                    *owed = Some(owed.map_or(oldest.sent_at, |at| at.min(oldest.sent_at)));
                }
            }
            if self.acks.drop_alarm.is_none() {
                self.acks.drop_alarm = Some((oldest.output.frame, false));
            }
        }
        // Cannot fail: a slot was freed above.
        let _ = self.acks.pending.push(entry);
    }

    fn acks_backoff(&self, tries: u8) -> Duration {
        // tries <= 31 and retry_ms <= 60000: no overflow; capped by the maximum.
        let ms = self
            .config
            .event_retry_ms
            .checked_shl(u32::from(tries))
            .unwrap_or(u64::MAX)
            .min(self.config.event_retry_max_ms);
        Duration::from_millis(ms)
    }

    /// Primary, from `push`: an event going out for the first time is queued, due
    /// `event_retry_ms` from now; a re-send (already queued) changes nothing here.
    pub(super) fn acks_note(&mut self, output: &Output) {
        if !self.acks_on() || output.kind != OutputKind::Event || self.role != Role::Primary {
            return;
        }
        let id = (output.frame, output.index);
        // Events go out in id order but after a takeover: look further only then.
        let newest = self.acks.pending.last().map(|p| (p.output.frame, p.output.index));
        if newest.is_some_and(|newest| newest >= id)
            && self.acks.pending.iter().any(|p| (p.output.frame, p.output.index) == id)
        {
            return;
        }
        let due = self.now + self.acks_backoff(0);
        self.acks_enqueue(Pending {
            output: output.clone(),
            acked: 0,
            tries: 0,
            due: Some(due),
            sent_at: self.now,
        });
    }

    /// Backup running a committed frame: holds the event (sent by the primary or not)
    /// until its ack comes with the commits. True when held (the caller then keeps it
    /// out of the unsent set: this queue replaces it for events).
    pub(super) fn acks_hold(&mut self, output: &Output) -> bool {
        if !self.acks_on() || output.kind != OutputKind::Event {
            return false;
        }
        if self.acks_take_ahead(output) {
            return true;
        }
        self.acks_enqueue(Pending {
            output: output.clone(),
            acked: 0,
            tries: 0,
            due: None,
            sent_at: self.now,
        });
        true
    }

    /// Whether an ack of `output` came before its frame was run (and forgets it).
    fn acks_take_ahead(&mut self, output: &Output) -> bool {
        let id = (output.frame, output.index);
        // Frames run in order: ids of earlier frames left at the front will never be
        // taken (their events were not this history's); they go, so the scan stays short.
        while self.acks.ahead.front().is_some_and(|a| a.0 < id.0) {
            self.acks.ahead.pop_front();
        }
        let Some(at) = self.acks.ahead.iter().position(|&a| a == id) else {
            return false;
        };
        for _ in 0..self.acks.ahead.len() {
            if let Some(a) = self.acks.ahead.pop_front() {
                if a != id {
                    let _ = self.acks.ahead.push_back(a);
                }
            }
        }
        let _ = at;
        true
    }

    /// New primary, for an inherited frame's event the old primary reported sent: queued
    /// due now, unless an ack of it came with the commits.
    pub(super) fn acks_inherit(&mut self, output: &Output) {
        if !self.acks_on() || output.kind != OutputKind::Event {
            return;
        }
        if self.acks_take_ahead(output) {
            return;
        }
        self.acks_enqueue(Pending {
            output: output.clone(),
            acked: 0,
            tries: 0,
            due: Some(self.now),
            sent_at: self.now,
        });
    }

    /// New primary (takeover or switchover): every event no ack was heard of is due now.
    pub(super) fn acks_take_over(&mut self) {
        let now = self.now;
        for p in self.acks.pending.iter_mut() {
            p.due = Some(now);
            p.tries = 0;
            p.acked = 0;
            p.sent_at = now;
        }
        self.acks.heard_at = [now; SINKS_MAX];
        self.acks.to_backup.clear();
    }

    /// No longer primary: the queue is forgotten. The node's successor holds its own
    /// queue of the events not acked (it ran the same committed frames), and this node,
    /// should it follow without a state transfer, builds its queue again from the frames
    /// it runs: an event of its own tenure is never re-sent into a later epoch, where its
    /// history may have parted from the successor's (the DST found that, 2026-11-26).
    /// Except at a switchover's hand-over (`handed_over`): the successor continues this
    /// very history, so the queue is kept as a backup's, for the next switchover back
    /// (before 2026-11-28 it was forgotten too, and two switchovers during an output
    /// outage lost the events of the first tenure: the one node that still held them
    /// handed back to this one, which no longer did — `dst --acks` seed 49, found by
    /// invariant 3 once the path's losses no longer excused events).
    pub(super) fn acks_follow(&mut self, handed_over: bool) {
        // Called at every transition to another role than primary: a backup's own
        // transitions (lagging, caught up) keep its queue.
        if self.role != Role::Primary {
            return;
        }
        if handed_over {
            for p in self.acks.pending.iter_mut() {
                p.due = None;
            }
            self.acks.to_backup.clear();
            self.acks.owed_since = [None; SINKS_MAX];
            return;
        }
        self.acks.pending.clear();
        self.acks.ahead.clear();
        self.acks.to_backup.clear();
        self.acks.owed_since = [None; SINKS_MAX];
    }

    /// New primary running a frame in hand whose commit it lacks: an event whose ack
    /// came with the commits (the old primary sent it) is not sent again.
    pub(super) fn acks_heard_of(&mut self, output: &Output) -> bool {
        self.acks_on() && output.kind == OutputKind::Event && self.acks_take_ahead(output)
    }

    /// Primary, snapshotting for a transfer at `at` in the snapshot buffer: the events it
    /// waits acks for (content version 3); the bytes written. With acks off, none (the
    /// snapshot stays of version 2).
    pub(super) fn acks_encode(&mut self, at: usize) -> usize {
        if !self.acks_on() {
            return 0;
        }
        encode_events(
            self.acks.pending.iter().map(|p| &p.output),
            &mut self.snapshot_buf[at..],
        )
    }

    /// Backup, installing a transfer: the primary's unacknowledged events (`len` bytes of
    /// entries at `start` in the snapshot buffer, as [`split_events`] cut them) are held,
    /// as the events of the frames it runs are, until their acks come with the commits or
    /// it leads and re-sends them. Its queue was cleared when it began to join.
    pub(super) fn acks_install(&mut self, start: usize, len: usize) {
        if !self.acks_on() {
            return;
        }
        for i in 0..len / TRANSFER_EVENT_BYTES {
            let at = start + i * TRANSFER_EVENT_BYTES;
            let output = transfer_event(&self.snapshot_buf[at..at + TRANSFER_EVENT_BYTES]);
            if self.acks_take_ahead(&output) {
                continue;
            }
            self.acks_enqueue(Pending {
                output,
                acked: 0,
                tries: 0,
                due: None,
                sent_at: self.now,
            });
        }
    }

    /// A state transfer: another history begins, nothing queued belongs to it.
    pub(super) fn acks_clear(&mut self) {
        self.acks.pending.clear();
        self.acks.ahead.clear();
        self.acks.to_backup.clear();
        self.acks.owed_since = [None; SINKS_MAX];
    }

    /// Primary, after a commit went out: the acknowledged ids waiting, at most
    /// [`ACKS_PER_COMMIT`], to every peer; the rest with the next commits. Only with
    /// room for them in the action queue (else they wait too).
    pub(super) fn acks_send_with_commit(&mut self) {
        if self.acks.to_backup.is_empty() || !self.room_for(usize::from(self.links_total())) {
            return;
        }
        let mut ids = heapless::Vec::new();
        while !ids.is_full() {
            let Some(id) = self.acks.to_backup.pop_front() else {
                break;
            };
            let _ = ids.push(id);
        }
        self.send_all(Body::Acks { ids });
    }

    /// Backup: the primary of its epoch passes on acknowledged ids. An id of a frame run
    /// leaves the queue; one of a frame not run yet waits for it (bounded, oldest
    /// dropped: its event is then re-sent after a takeover, a duplicate the sink drops).
    pub(super) fn on_acks(&mut self, header: &Header, ids: &[(u64, u8)]) {
        if !self.acks_on()
            || self.role != Role::Backup
            || header.role != WireRole::Primary
            || header.epoch != self.epochs.current().0
        {
            return;
        }
        let all = self.acks_all();
        // Joining, its last run frame is its old history's, maybe past the snapshot to
        // come: every id waits for the frames it runs after the snapshot (DST seed 29 of
        // `dst --acks`: those ids were taken as of frames run, and lost).
        let joining = self.sync == SyncState::Joining;
        for &id in ids.iter().take(ACKS_PER_COMMIT) {
            if id.0 <= self.frame_last_run && !joining {
                if let Some(p) = self
                    .acks
                    .pending
                    .iter_mut()
                    .find(|p| (p.output.frame, p.output.index) == id)
                {
                    p.acked = all;
                }
            } else if !self.acks.ahead.iter().any(|&a| a == id) {
                // The primary sends its `Acks` on every link: the copies of the other
                // links name the same ids, and kept each they filled the bound as many
                // times faster — a join of 2.5 s on four links dropped ids it had
                // (`dst --acks` seed 1106, 2026-11-27). One pass over at most
                // `ACKS_AHEAD_MAX` ids; the queue is that long only while a backup joins
                // or lags.
                if self.acks.ahead.is_full() {
                    self.acks.ahead.pop_front();
                }
                let _ = self.acks.ahead.push_back(id);
            }
        }
        self.acks_retire();
    }

    /// Whether this node re-sends: a primary that may emit, outside a switchover.
    fn acks_lead(&self) -> bool {
        self.acks_on()
            && self.role == Role::Primary
            && self.epochs.current_is_led()
            && self.epochs.current_durable()
            && self.switchover == super::Switchover::Idle
    }

    /// The earliest of: an entry's re-send, a sink's silence, a dropped-events alarm.
    pub(super) fn acks_deadline(&self) -> Option<Instant> {
        if !self.acks_lead() {
            return None;
        }
        if matches!(self.acks.drop_alarm, Some((_, false))) {
            return Some(self.now);
        }
        let mut next = self.acks.pending.iter().filter_map(|p| p.due).min();
        let silence = Duration::from_millis(self.config.ack_silence_ms);
        for sink in 0..self.config.ack_sinks {
            if let Some(since) = self.acks_silent_since(sink) {
                let at = since + silence;
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        }
        next
    }

    /// Since when sink `sink` owes an ack: the later of its last ack and the first
    /// sending of the oldest entry it has not acknowledged. `None`: it owes none, or its
    /// silence was alarmed already.
    fn acks_silent_since(&self, sink: u8) -> Option<Instant> {
        let bit = 1u8 << sink;
        if self.acks.status.sinks_silent & bit != 0 {
            return None;
        }
        let queued = self.acks.pending.iter().find(|p| p.acked & bit == 0).map(|p| p.sent_at);
        let dropped = self.acks.owed_since[usize::from(sink)];
        let owed = match (queued, dropped) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b)?,
        };
        Some(owed.max(self.acks.heard_at[usize::from(sink)]))
    }

    /// Timer `Acks`: raises the alarms due, then re-sends at most [`RESENDS_PER_WAKE`]
    /// due entries, oldest first, while the action queue has room.
    pub(super) fn acks_timeout(&mut self) {
        if !self.acks_lead() {
            return;
        }
        let now = self.now;
        if let Some((frame, false)) = self.acks.drop_alarm {
            self.acks.drop_alarm = Some((frame, true));
            self.alarm(Alarm::EventsDropped { frame });
        }
        let silence = Duration::from_millis(self.config.ack_silence_ms);
        for sink in 0..self.config.ack_sinks {
            if self.acks_silent_since(sink).is_some_and(|since| now >= since + silence) {
                self.acks.status.sinks_silent |= 1 << sink;
                self.alarm(Alarm::SinkSilent { sink });
            }
        }
        let mut sent = 0;
        for at in 0..self.acks.pending.len() {
            if sent == RESENDS_PER_WAKE || !self.room_for(1) {
                break;
            }
            let p = &self.acks.pending[at];
            if p.due.is_none_or(|due| due > now) {
                continue;
            }
            let tries = p.tries.saturating_add(1).min(31);
            let mut output = p.output.clone();
            output.epoch = self.epochs.current().0;
            let due = now + self.acks_backoff(tries);
            let p = &mut self.acks.pending[at];
            p.tries = tries;
            p.due = Some(due);
            sent += 1;
            self.acks.status.events_resent += 1;
            self.push(Action::Emit(output));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{EVENTS_UNACKED_MAX, RESENDS_PER_WAKE};
    use crate::io_protocol::{encode_ack, AckKey, ACK_DATAGRAM_MAX};
    use crate::node::{Alarm, Role, SyncState};
    use crate::testing::Pair;
    use crate::time::Instant;
    use crate::Config;
    use core::time::Duration;
    use std::collections::BTreeMap;
    use std::vec::Vec;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn await_role(p: &mut Pair, i: usize, role: Role, sync: SyncState) -> bool {
        let until = p.now + ms(3000);
        p.run_until(until, |p| {
            p.nodes[i]
                .as_ref()
                .is_some_and(|n| n.role() == role && n.status().sync == sync)
        })
    }

    /// A pair (node 0 primary, node 1 in sync when `paired`) with acks on or off, the
    /// sink acking when they are on; every copy emitted is logged from here.
    fn running(acks: bool, paired: bool) -> Pair {
        running_with(acks, paired, |_| {})
    }

    /// As [`running`], the configuration changed by `change` first.
    fn running_with(acks: bool, paired: bool, change: impl FnOnce(&mut Config)) -> Pair {
        let mut config = Config {
            ack_sinks: u8::from(acks),
            event_retry_ms: 20,
            event_retry_max_ms: 160,
            ack_silence_ms: 500,
            ..Config::default()
        };
        change(&mut config);
        let mut p = Pair::new(11, config, 0);
        p.sink_acks = acks;
        p.start(0);
        assert!(await_role(&mut p, 0, Role::Primary, SyncState::Alone));
        if paired {
            p.start(1);
            assert!(await_role(&mut p, 1, Role::Backup, SyncState::InSync));
        }
        p.emit_log = Some(Vec::new());
        p
    }

    /// When each copy of `id` went out, by which node.
    fn copies(p: &Pair, id: (u64, u8)) -> Vec<(Instant, usize)> {
        let log = p.emit_log.as_ref().expect("logging");
        log.iter()
            .filter(|&&(_, _, frame, index)| (frame, index) == id)
            .map(|&(at, node, _, _)| (at, node))
            .collect()
    }

    /// Issue 22: an event lost on the way is re-sent `event_retry_ms` later, applied,
    /// acked, and not sent again. With acks off (the old code's only behaviour) it stays
    /// lost.
    #[test]
    fn primary_event_lost_on_the_way_resent_until_acked() {
        for acks in [true, false] {
            let mut p = running(acks, true);
            let id = (p.frame_next + 5, 0);
            p.outputs_lost.insert(id, 1);
            let until = p.now + ms(1000);
            assert!(p.run_until(until, |p| !copies(p, id).is_empty()));
            let (sent_at, _) = copies(&p, id)[0];
            p.run_for(ms(500));
            let all = copies(&p, id);
            if acks {
                assert_eq!(all, [(sent_at, 0), (sent_at + ms(20), 0)], "one re-send, then acked");
                assert!(p.sink.accepted.contains_key(&id));
                assert_eq!(p.sink.duplicates, 0, "every other event was acked at its first copy");
                assert!(
                    p.node(0).ack_status().events_unacked <= 2,
                    "{:?}",
                    p.node(0).ack_status()
                );
            } else {
                assert_eq!(all.len(), 1);
                assert!(!p.sink.accepted.contains_key(&id), "acks off: lost");
            }
        }
    }

    /// Issue 22, found by the process harness (`chaos --acks --output-loss 50 --seed 1`, 5
    /// events lost): an event lost on the way while the primary runs alone, a backup joins
    /// by a state transfer after its frame, and the primary crashes. The new primary holds
    /// the event from the transfer (content version 3) and re-sends it. Before, the
    /// transfer did not carry the queue: the backup never ran that frame, and the event
    /// stayed lost.
    #[test]
    fn backup_joined_by_transfer_after_an_event_was_lost_resends_it_when_it_leads() {
        let mut p = running(true, false);
        let id = (p.frame_next + 5, 0);
        p.outputs_lost.insert(id, u32::MAX);
        let until = p.now + ms(1000);
        assert!(
            p.run_until(until, |p| copies(p, id).len() >= 2),
            "sent and re-sent, all lost"
        );
        p.start(1);
        assert!(await_role(&mut p, 1, Role::Backup, SyncState::InSync));
        assert!(
            p.node(1).ack_status().events_unacked >= 1,
            "the transfer carried the event: {:?}",
            p.node(1).ack_status()
        );
        p.crash(0);
        p.outputs_lost.remove(&id);
        assert!(await_role(&mut p, 1, Role::Primary, SyncState::Alone));
        let took_over = p.now;
        assert!(p.run_until(took_over + ms(200), |p| p.sink.accepted.contains_key(&id)));
        assert!(copies(&p, id).iter().any(|&(_, node)| node == 1));
        assert_eq!(p.sink.conflicts, 0);
    }

    /// Two switchovers while the output path loses an event (found by `dst --acks` seed
    /// 49, 2026-11-28, once invariant 3 stopped excusing events the path lost): node 0
    /// sends it, hands over to node 1, which re-sends it into the same loss, and hands
    /// back. Node 0 kept its queue at the hand-over (the successor continues its history)
    /// and re-sends the event once it leads again. Before, it forgot its queue when it
    /// stopped leading and rebuilt it from the frames it ran after: the event was lost.
    #[test]
    fn primary_switched_over_and_back_during_an_output_loss_resends_its_event() {
        use crate::node::{Command, CommandReply};
        let mut p = running(true, true);
        let id = (p.frame_next + 5, 0);
        p.outputs_lost.insert(id, u32::MAX);
        let until = p.now + ms(1000);
        assert!(p.run_until(until, |p| !copies(p, id).is_empty()), "sent, lost");
        assert!(await_role(&mut p, 0, Role::Primary, SyncState::Paired));
        assert_eq!(p.command(0, Command::Switchover), CommandReply::Started);
        assert!(await_role(&mut p, 1, Role::Primary, SyncState::Paired));
        assert!(await_role(&mut p, 0, Role::Backup, SyncState::InSync));
        let until = p.now + ms(1000);
        assert!(
            p.run_until(until, |p| copies(p, id).iter().any(|&(_, node)| node == 1)),
            "the new primary re-sends it: {:?}",
            copies(&p, id)
        );
        assert_eq!(p.command(1, Command::Switchover), CommandReply::Started);
        assert!(await_role(&mut p, 0, Role::Primary, SyncState::Paired));
        let back = p.now;
        p.outputs_lost.remove(&id);
        assert!(
            p.run_until(back + ms(500), |p| p.sink.accepted.contains_key(&id)),
            "node 0, primary again, never re-sent it: {:?}, {:?}",
            copies(&p, id),
            p.node(0).ack_status()
        );
        assert!(copies(&p, id).iter().any(|&(at, node)| node == 0 && at >= back));
        assert_eq!(p.sink.conflicts, 0);
    }

    /// The events of a transfer round trip after what comes before them; a snapshot
    /// without the version 3 mark has none; a damaged count or length is refused.
    #[test]
    fn transfer_events_round_trip_and_version_2_has_none() {
        use super::{encode_events, split_events, transfer_event, TRANSFER_EVENTS_BYTES_MAX, TRANSFER_EVENT_BYTES};
        use crate::app::{OutputKind, OutputPayload, OUTPUT_PAYLOAD_MAX};
        use crate::node::Output;
        let event = |frame: u64, index: u8, payload: &[u8]| Output {
            epoch: 0,
            frame,
            index,
            kind: OutputKind::Event,
            payload: OutputPayload::from_slice(payload).unwrap(),
        };
        let events = [
            event(100, 0, b"cmd"),
            event(100, 3, &[0xEE; OUTPUT_PAYLOAD_MAX]),
            event(101, 1, b""),
        ];
        let mut buf = std::vec![0x11u8; 10 + TRANSFER_EVENTS_BYTES_MAX];
        let n = encode_events(events.iter(), &mut buf[10..]);
        assert_eq!(n, 3 * TRANSFER_EVENT_BYTES + 6);
        let (before, bytes) = split_events(&buf[..10 + n]).unwrap();
        assert_eq!(before, 10);
        let back: Vec<Output> = bytes.chunks_exact(TRANSFER_EVENT_BYTES).map(transfer_event).collect();
        assert_eq!(back, events);
        // Version 2 (the levels' mark) or less: no events, all of it before.
        let v2 = [1u8, 2, 0, 0, 0x02, 0x00, 0xFF, 0xFF];
        assert_eq!(split_events(&v2), Some((8, &[][..])));
        assert_eq!(split_events(&[]), Some((0, &[][..])));
        let mut bad = buf[..10 + n].to_vec();
        let count_at = bad.len() - 6;
        bad[count_at..count_at + 2].copy_from_slice(&u16::MAX.to_le_bytes());
        assert_eq!(split_events(&bad), None);
        let mut bad = buf[..10 + n].to_vec();
        bad[10 + 11] = OUTPUT_PAYLOAD_MAX as u8 + 1;
        assert_eq!(split_events(&bad), None);
    }

    /// Mutant `acks.rs:68:95` (`+ 4` → `- 4` in [`TRANSFER_EVENTS_BYTES_MAX`], run of
    /// 68549c5): the room the snapshot buffer keeps for events is the bound, exactly: a
    /// full queue, [`EVENTS_UNACKED_MAX`] events of the longest payload, fills it to the
    /// byte with its count and mark, and every event comes back. A bound a few bytes short
    /// lost the mark when the rest of the snapshot was at its own bounds: the backup then
    /// took no event, and re-sent none of them had it led.
    #[test]
    fn transfer_events_full_queue_fills_the_bound_exactly() {
        use super::{encode_events, split_events, EVENTS_UNACKED_MAX, TRANSFER_EVENTS_BYTES_MAX};
        use crate::app::{OutputKind, OutputPayload, OUTPUT_PAYLOAD_MAX};
        use crate::node::Output;
        let events: Vec<Output> = (0..EVENTS_UNACKED_MAX as u64)
            .map(|k| Output {
                epoch: 0,
                frame: 1000 + k,
                index: 0,
                kind: OutputKind::Event,
                payload: OutputPayload::from_slice(&[k as u8; OUTPUT_PAYLOAD_MAX]).unwrap(),
            })
            .collect();
        let mut buf = std::vec![0u8; TRANSFER_EVENTS_BYTES_MAX];
        let n = encode_events(events.iter(), &mut buf);
        assert_eq!(n, TRANSFER_EVENTS_BYTES_MAX, "a full queue fills the bound to the byte");
        let (before, bytes) = split_events(&buf[..n]).unwrap();
        assert_eq!(
            (before, bytes.len() / super::TRANSFER_EVENT_BYTES),
            (0, EVENTS_UNACKED_MAX)
        );
    }

    /// Mutant `acks.rs:110:14` (`>` → `==`, run of 37f1692): a count above the queue's
    /// bound, with the bytes for it, is refused; one at the bound is taken. A transfer
    /// carries at most [`EVENTS_UNACKED_MAX`] events (`encode_events`): more is damage.
    #[test]
    fn transfer_events_count_above_the_queue_bound_refused() {
        use super::{split_events, EVENTS_UNACKED_MAX, TRANSFER_CONTENT_V3, TRANSFER_EVENT_BYTES};
        let snapshot = |count: usize| {
            let mut bytes = std::vec![0u8; 5 + count * TRANSFER_EVENT_BYTES];
            bytes.extend_from_slice(&(count as u16).to_le_bytes());
            bytes.extend_from_slice(&TRANSFER_CONTENT_V3.to_le_bytes());
            bytes
        };
        let at_bound = snapshot(EVENTS_UNACKED_MAX);
        let (before, events) = split_events(&at_bound).unwrap();
        assert_eq!((before, events.len()), (5, EVENTS_UNACKED_MAX * TRANSFER_EVENT_BYTES));
        assert_eq!(split_events(&snapshot(EVENTS_UNACKED_MAX + 1)), None);
    }

    proptest::proptest! {
        /// Arbitrary bytes never panic the split, and what it returns is well cut.
        #[test]
        fn transfer_events_split_arbitrary_bytes_never_panics(
            mut bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
            marked in proptest::prelude::any::<bool>(),
        ) {
            use super::{split_events, transfer_event, TRANSFER_CONTENT_V3, TRANSFER_EVENT_BYTES};
            if marked && bytes.len() >= 4 {
                let at = bytes.len() - 4;
                bytes[at..].copy_from_slice(&TRANSFER_CONTENT_V3.to_le_bytes());
            }
            if let Some((before, events)) = split_events(&bytes) {
                proptest::prop_assert!(before + events.len() <= bytes.len());
                proptest::prop_assert_eq!(events.len() % TRANSFER_EVENT_BYTES, 0);
                for entry in events.chunks_exact(TRANSFER_EVENT_BYTES) {
                    proptest::prop_assert!(transfer_event(entry).payload.len() <= crate::app::OUTPUT_PAYLOAD_MAX);
                }
            }
        }
    }

    /// The ack of an applied event is lost: the event is re-sent, the sink drops the copy
    /// as a duplicate and acks it again, and that ack ends the re-sends.
    #[test]
    fn primary_ack_lost_event_resent_as_duplicate_and_acked_again() {
        let mut p = running(true, false);
        let id = (p.frame_next + 5, 0);
        p.acks_lost.insert(id, 1);
        let until = p.now + ms(1000);
        assert!(p.run_until(until, |p| !copies(p, id).is_empty()));
        p.run_for(ms(500));
        assert_eq!(copies(&p, id).len(), 2);
        assert_eq!(p.sink.duplicates, 1);
    }

    /// A silent sink: each event is re-sent after 20, 40, 80, 160, 160... ms (doubling to
    /// `event_retry_max_ms`), `SinkSilent` is raised once after `ack_silence_ms`, the
    /// queue fills to its bound and then drops the oldest (`EventsDropped` once, counted),
    /// and no wake-up re-sends more than `RESENDS_PER_WAKE`. Acks heard again end the
    /// silence.
    #[test]
    fn primary_sink_silent_backoff_alarm_and_bounded_queue() {
        let mut p = running(true, false);
        // 10 ms a frame: the queue fills in about two seconds.
        p.cycle = ms(10);
        p.sink_acks = false;
        let id = (p.frame_next + 2, 0);
        let until = p.now + ms(1000);
        assert!(p.run_until(until, |p| !copies(p, id).is_empty()));
        p.run_for(ms(700));
        let at: Vec<Instant> = copies(&p, id).iter().map(|&(at, _)| at).collect();
        let gaps: Vec<u64> = at.windows(2).map(|w| (w[1] - w[0]).as_millis() as u64).collect();
        assert_eq!(&gaps[..5], &[20, 40, 80, 160, 160], "{gaps:?}");
        let silent = |p: &Pair| {
            p.alarms
                .iter()
                .filter(|(_, a)| matches!(a, Alarm::SinkSilent { sink: 0 }))
                .count()
        };
        assert_eq!(silent(&p), 1);
        assert_eq!(p.node(0).ack_status().sinks_silent, 1);
        // The oldest unacknowledged event was sent no later than this one's first copy
        // (mutant of 64df4f8 deleting `oldest_sent_at` from `ack_status`: never shown).
        let oldest = p.node(0).ack_status().oldest_sent_at;
        assert!(
            oldest.is_some_and(|t| t <= at[0]),
            "{oldest:?}, first copy at {:?}",
            at[0]
        );
        // Run until the queue overflows: more than 256 events at 4 every 3 frames.
        p.run_for(ms(4000));
        let status = p.node(0).ack_status();
        assert_eq!(status.events_unacked, EVENTS_UNACKED_MAX as u64);
        assert!(status.events_dropped > 0);
        let dropped = p
            .alarms
            .iter()
            .filter(|(_, a)| matches!(a, Alarm::EventsDropped { .. }))
            .count();
        assert_eq!((dropped, silent(&p)), (1, 1), "each raised once");
        let mut per_wakeup: BTreeMap<Instant, usize> = BTreeMap::new();
        for &(at, _, _, _) in p.emit_log.as_ref().unwrap() {
            *per_wakeup.entry(at).or_default() += 1;
        }
        // A frame's own events (at most 16) and the re-sends of one wake-up.
        assert!(
            per_wakeup.values().all(|&n| n <= RESENDS_PER_WAKE + 16),
            "{per_wakeup:?}"
        );
        // The sink answers again: the silence ends, the queue drains.
        p.sink_acks = true;
        p.run_for(ms(1000));
        let status = p.node(0).ack_status();
        assert_eq!(status.sinks_silent, 0);
        assert!(status.events_unacked <= 2, "{status:?}");
    }

    /// A silent sink beside one that acks, at 1 kHz (the queue fills in under 200 ms,
    /// less than `ack_silence_ms`): `SinkSilent` of the silent one is raised once (before
    /// 2026-11-27 never: a dropped event stopped counting toward its silence), and
    /// `EventsDropped` once for the overflow (before, again at every drop: the other
    /// sink's acks re-armed it). Then its silence asks for no wake-up (mutant
    /// `acks.rs:578:23`, `1u8 << sink` → `>>` in `acks_silent_since`, kept it due in the
    /// past: a node woken at once, again and again). The sink answering again ends it.
    #[test]
    fn primary_second_sink_silent_alarmed_once_then_no_wakeup_for_it() {
        let mut p = running_with(true, false, |c| c.ack_sinks = 2);
        let count = |p: &Pair, f: &dyn Fn(&Alarm) -> bool| p.alarms.iter().filter(|(_, a)| f(a)).count();
        let silent_1 = |p: &Pair| count(p, &|a| matches!(a, Alarm::SinkSilent { sink: 1 }));
        let until = p.now + ms(2000);
        let found = p.run_until(until, |p| silent_1(p) > 0);
        assert!(found, "sink 1 alarmed silent: {:?}", p.node(0).ack_status());
        p.run_for(ms(500));
        assert_eq!(silent_1(&p), 1, "raised once");
        let dropped = count(&p, &|a| matches!(a, Alarm::EventsDropped { .. }));
        assert_eq!(dropped, 1, "one overflow, one alarm");
        let node = p.node(0);
        assert_eq!(node.ack_status().sinks_silent, 0b10, "sink 0 acks, sink 1 is silent");
        let next = node.acks_deadline();
        assert!(
            next.is_some_and(|t| t > p.now),
            "the next wake-up for the acks is a re-send to come, not now: {next:?} at {:?}",
            p.now
        );
    }

    /// An ack handed over already authenticated (`handle_ack`) from a sink that is not
    /// configured, or to a node with acks off, changes nothing and is counted, each one.
    /// (Mutants `acks.rs:266:43` `+=` → `*=` and `+=` → `-=` in `handle_ack`: never
    /// counted, or counted down from 0, which wraps in a release build and stops a debug
    /// one. Schemata run of 64df4f8, 2026-11-27.)
    #[test]
    fn primary_ack_of_a_sink_not_configured_or_acks_off_refused_counted_each() {
        for acks in [true, false] {
            let mut p = running(acks, false);
            let id = (p.node(0).frame(), 0);
            let now = p.now;
            let node = p.nodes[0].as_mut().unwrap();
            let before = node.ack_status();
            // Sink 1: beyond `ack_sinks` (1 with acks on, 0 off).
            node.handle_ack(now, 1, &[id]);
            node.handle_ack(now, 1, &[id]);
            let status = node.ack_status();
            assert_eq!(
                (
                    status.acks_taken - before.acks_taken,
                    status.acks_refused - before.acks_refused
                ),
                (0, 2),
                "acks on: {acks}"
            );
        }
    }

    /// With an ack key, an ack without its tag or with another key's, and a replay of a
    /// genuine ack, change nothing: the event they name is still re-sent until a genuine
    /// ack comes.
    #[test]
    fn primary_forged_or_replayed_acks_do_not_drop_an_event() {
        let mut p = running(true, false);
        let key = AckKey::derive(b"sink key");
        let node = p.nodes[0].take().unwrap();
        p.nodes[0] = Some(node.with_ack_key(key.clone()));
        p.sink_acks = false;
        let id = (p.frame_next + 2, 0);
        let until = p.now + ms(1000);
        assert!(p.run_until(until, |p| !copies(p, id).is_empty()));
        let mut buf = [0u8; ACK_DATAGRAM_MAX];
        let now = p.now;
        let node = p.nodes[0].as_mut().unwrap();
        let before = node.ack_status();
        // Untagged, and tagged with another key.
        let n = encode_ack(1, 1, &[id], None, &mut buf).unwrap();
        node.handle_ack_datagram(now, 0, &buf[..n]);
        let n = encode_ack(1, 2, &[id], Some(&AckKey::derive(b"guess")), &mut buf).unwrap();
        node.handle_ack_datagram(now, 0, &buf[..n]);
        // A genuine ack of another id, then its replay carrying... the same bytes.
        let other = (id.0 - 1, 0);
        let n = encode_ack(1, 3, &[other], Some(&key), &mut buf).unwrap();
        let genuine = buf[..n].to_vec();
        node.handle_ack_datagram(now, 0, &genuine);
        node.handle_ack_datagram(now, 0, &genuine);
        // From a sink that is not configured.
        let n = encode_ack(1, 4, &[id], Some(&key), &mut buf).unwrap();
        node.handle_ack_datagram(now, 1, &buf[..n]);
        let status = node.ack_status();
        assert_eq!(
            (
                status.acks_taken - before.acks_taken,
                status.acks_refused - before.acks_refused
            ),
            (1, 4),
            "{status:?}"
        );
        p.drain(0);
        p.run_for(ms(100));
        assert!(copies(&p, id).len() >= 3, "still re-sent: {:?}", copies(&p, id));
        assert!(
            !copies(&p, other).iter().any(|&(at, _)| at > now),
            "the genuine ack took"
        );
        // A genuine ack ends it.
        let now = p.now;
        let n = encode_ack(2, 1, &[id], Some(&key), &mut buf).unwrap();
        p.nodes[0].as_mut().unwrap().handle_ack_datagram(now, 0, &buf[..n]);
        p.drain(0);
        p.run_for(ms(400));
        assert!(!copies(&p, id).iter().any(|&(at, _)| at > now));
    }

    /// Issue 22: the primary crashes with some events unacknowledged (lost on the way,
    /// however often re-sent). The new primary re-sends them — the old primary reported
    /// them sent, so before acks nobody re-sent them — and of the acknowledged ones only
    /// those of the last frames, whose acks had not reached the backup yet (the gateway
    /// drops those copies as duplicates).
    #[test]
    fn backup_takeover_after_acks_resends_exactly_the_unacked_events() {
        let mut p = running(true, true);
        let first = p.frame_next + 5;
        let lost = [(first, 0), (first + 3, 0), (first + 3, 1), (first + 7, 0)];
        for id in lost {
            p.outputs_lost.insert(id, u32::MAX);
        }
        let until = p.now + ms(2000);
        assert!(p.run_until(until, |p| p.frame_next > first + 30));
        let backup = p.node(1).ack_status();
        assert!(
            (4..=8).contains(&backup.events_unacked),
            "the backup holds the 4 lost and the last frame's: {backup:?}"
        );
        let last_run = p.node(0).frame();
        p.crash(0);
        p.outputs_lost.clear();
        let crashed_at = p.now;
        assert!(await_role(&mut p, 1, Role::Primary, SyncState::Alone));
        p.run_for(ms(200));
        let log = p.emit_log.as_ref().unwrap();
        let resent: std::collections::BTreeSet<(u64, u8)> = log
            .iter()
            .filter(|&&(at, node, frame, _)| node == 1 && at > crashed_at && frame <= last_run)
            .map(|&(_, _, frame, index)| (frame, index))
            .collect();
        for id in lost {
            assert!(resent.contains(&id), "{id:?} re-sent: {resent:?}");
            assert!(p.sink.accepted.contains_key(&id), "{id:?} applied");
        }
        let extra: Vec<_> = resent.iter().filter(|id| !lost.contains(id)).collect();
        assert!(
            extra.iter().all(|&&(frame, _)| frame + 2 >= last_run),
            "only the last frames' acked events, whose acks were on the way: {extra:?} (last run {last_run})"
        );
        assert_eq!(p.sink.conflicts, 0);
    }

    /// Two sinks: sink 0 acks nothing, so the queue fills and drops its oldest events;
    /// sink 1 acks every event until some instant, then nothing more. An event it
    /// acknowledged and that the queue dropped is owed by sink 0 only: sink 1's silence
    /// is counted from the first event it has not acknowledged, sent 100 ms after its
    /// last ack, and `SinkSilent` for it is raised `ack_silence_ms` after that, not
    /// before. (Mutant `acks.rs:323:38` `<<` → `>>` in `acks_enqueue`: every sink above
    /// 0 was marked as owing each dropped event, so sink 1's silence counted from its
    /// last ack and was alarmed 100 ms early. An alarm's timing only. Schemata run of
    /// 64df4f8, 2026-11-27.)
    #[test]
    fn primary_second_sink_acked_the_dropped_events_its_silence_counts_from_its_first_unacked() {
        let mut p = running_with(true, false, |c| c.ack_sinks = 2);
        // The pair's sink acks as sink 0: silent, it lets the queue fill.
        p.sink_acks = false;
        let ack_all_as_sink_1 = |p: &mut Pair| {
            let now = p.now;
            let node = p.nodes[0].as_mut().unwrap();
            let ids: Vec<(u64, u8)> = node
                .acks
                .pending
                .iter()
                .map(|e| (e.output.frame, e.output.index))
                .collect();
            for chunk in ids.chunks(crate::io_protocol::ACK_IDS_MAX) {
                node.handle_ack(now, 1, chunk);
            }
            p.drain(0);
        };
        let until = p.now + ms(3000);
        while p.node(0).ack_status().events_dropped == 0 && p.now < until {
            p.run_for(ms(1));
            ack_all_as_sink_1(&mut p);
        }
        assert!(p.node(0).ack_status().events_dropped > 0, "the queue never overflowed");
        let last_ack = p.now;
        p.source_on = false;
        p.run_for(ms(100));
        p.source_on = true;
        let silence = ms(p.configs[0].ack_silence_ms);
        let silent_1 = |p: &Pair| p.alarms.iter().any(|(_, a)| matches!(a, Alarm::SinkSilent { sink: 1 }));
        assert!(p.run_until(last_ack + ms(100) + silence + ms(200), silent_1));
        let at = p.now;
        assert!(
            at >= last_ack + ms(100) + silence,
            "alarmed {} ms after its last ack",
            (at - last_ack).as_millis()
        );
    }

    /// The backup lacks one frame's input (lost, its fetch lost too) and holds the
    /// commits and input of the frames after it, not yet run, when the primary crashes.
    /// Leading, it runs them with the old primary's commits; an event of one of them
    /// that the old primary reported sent, though every copy was lost on the way, is
    /// queued and re-sent until acked. (Mutant `acks.rs:416:9`, `acks_inherit` → `()`:
    /// such events were never queued, and an event the sink never got stayed lost.
    /// Schemata run of 64df4f8, 2026-11-27.)
    #[test]
    fn backup_takes_over_running_frames_it_held_resends_an_event_reported_sent_but_lost() {
        let mut p = running(true, true);
        let first = p.frame_next + 5;
        let id = (first + 3, 0);
        p.frame_loss[1].insert(first, ());
        p.drop_if = Some(|_, envelope| matches!(envelope.body, crate::wire::Body::FrameData { .. }));
        p.outputs_lost.insert(id, u32::MAX);
        let until = p.now + ms(1000);
        assert!(p.run_until(until, |p| p.frame_next > first + 10));
        assert!(p.node(1).frame() < first, "the backup ran past the lost input");
        assert!(!copies(&p, id).is_empty(), "the old primary sent it");
        p.crash(0);
        // No new frame meanwhile: the takeover's burst of events stays within the queue.
        p.source_on = false;
        p.outputs_lost.clear();
        p.drop_if = None;
        let crashed_at = p.now;
        assert!(await_role(&mut p, 1, Role::Primary, SyncState::Alone));
        p.run_for(ms(200));
        assert!(
            copies(&p, id).iter().any(|&(at, node)| node == 1 && at > crashed_at),
            "{:?}",
            copies(&p, id)
        );
        assert!(p.sink.accepted.contains_key(&id));
    }

    /// A primary that hands over (a switchover) keeps its queue of unacknowledged events
    /// as a backup's (since 2026-11-28: its successor continues the same history, and
    /// the one node that held an event lost on the way may hand back to it,
    /// `primary_switched_over_and_back_during_an_output_loss_resends_its_event`); its
    /// successor's `Acks` then retire them as they come. (Until 2026-11-28 the queue was
    /// forgotten at every step-down, and this test said so, written for mutant
    /// `acks.rs:452:9`, `acks_follow` → `()`, of the schemata run of 64df4f8.)
    #[test]
    fn primary_hands_over_with_events_unacked_keeps_them_until_its_successor_passes_acks_on() {
        let mut p = running(true, true);
        assert!(await_role(&mut p, 0, Role::Primary, SyncState::Paired));
        // The sink stops acking: the primary's queue holds the events since.
        p.sink_acks = false;
        p.run_for(ms(20));
        p.source_on = false;
        p.run_for(ms(5));
        let held = p.node(0).ack_status().events_unacked;
        assert!(held > 0);
        assert_eq!(
            p.command(0, crate::node::Command::Switchover),
            crate::node::CommandReply::Started
        );
        assert!(await_role(&mut p, 0, Role::Backup, SyncState::InSync));
        assert_eq!(p.node(1).role(), Role::Primary);
        assert_eq!(p.node(0).ack_status().events_unacked, held, "no frame ran since");
        // The sink acks again: the successor's re-sends are acked and passed on.
        p.sink_acks = true;
        p.source_on = true;
        let until = p.now + ms(1000);
        assert!(
            p.run_until(until, |p| p.node(0).ack_status().events_unacked <= 2),
            "{:?}",
            p.node(0).ack_status()
        );
    }

    /// A silent sink is alarmed by the primary alone: its backup, holding the same
    /// events until their acks come with the commits, re-sends nothing and raises no
    /// alarm. (Mutants `acks.rs:576:13` and `577:13`, `&&` → `||` in `acks_lead`: every
    /// node outside a switchover ran the acks' timers, and the backup raised `SinkSilent`
    /// too, one more alarm for one fault. Schemata run of 64df4f8, 2026-11-27.)
    #[test]
    fn backup_sink_silent_alarmed_by_the_primary_only() {
        let mut p = running(true, true);
        p.sink_acks = false;
        p.run_for(ms(p.configs[0].ack_silence_ms + 300));
        let silent = |i: usize| {
            p.alarms
                .iter()
                .filter(|&&(n, a)| n == i && matches!(a, Alarm::SinkSilent { .. }))
                .count()
        };
        assert_eq!((silent(0), silent(1)), (1, 0));
        assert_eq!(p.node(1).role(), Role::Backup);
    }

    /// DST seed 29 of `dst --acks`: a node that led alone in a partition, fenced when it
    /// heals, joins by transfer while its last run frame (its parted history's) is past
    /// the snapshot's. The acks the primary passes on meanwhile name frames it will run
    /// after the snapshot: they wait for them. Before, those of frames at or below its
    /// stale last run frame were looked up in its (cleared) queue and lost, so it held
    /// their events as unacked for good, and re-sent them, acked, at its next takeover.
    #[test]
    fn backup_joining_after_leading_alone_keeps_acks_of_frames_past_the_snapshot() {
        // A transfer of several frames (64 chunks at 1 a ms): the window it opens.
        let config = Config {
            ack_sinks: 1,
            event_retry_ms: 20,
            event_retry_max_ms: 160,
            ack_silence_ms: 500,
            transfer_chunk_bytes: 256,
            transfer_chunks_per_ms: 1,
            ..Config::default()
        };
        let mut p = Pair::new(11, config, 16 * 1024);
        p.sink_acks = true;
        p.start(0);
        assert!(await_role(&mut p, 0, Role::Primary, SyncState::Alone));
        p.start(1);
        assert!(await_role(&mut p, 1, Role::Backup, SyncState::InSync));
        p.emit_log = Some(Vec::new());
        p.cut = [true; crate::config::LINKS_MAX];
        assert!(await_role(&mut p, 1, Role::Primary, SyncState::Alone));
        p.run_for(ms(300));
        p.cut = [false; crate::config::LINKS_MAX];
        assert!(await_role(&mut p, 0, Role::Backup, SyncState::Joining));
        // Its parted history ran past the snapshot to come (in the seed, by one frame
        // when its input came earlier; here both inputs come at once, so it is set).
        p.nodes[0].as_mut().unwrap().frame_last_run += 50;
        assert!(await_role(&mut p, 0, Role::Backup, SyncState::InSync));
        p.run_for(ms(300));
        let status = p.node(0).ack_status();
        assert!(
            status.events_unacked <= 4,
            "only the last frames' events wait for their acks: {status:?}"
        );
        let duplicates = p.sink.duplicates;
        p.crash(1);
        assert!(await_role(&mut p, 0, Role::Primary, SyncState::Alone));
        p.run_for(ms(200));
        assert!(
            p.sink.duplicates - duplicates <= 4,
            "the new primary re-sends only the last frames' events: {} duplicates",
            p.sink.duplicates - duplicates
        );
    }

    /// DST seed 1106 of `dst --acks` (2026-11-27): the primary sends its `Acks` on every
    /// link, and a backup kept every copy among the ids of frames it had not run: on four
    /// links a freeze (or a join) filled the bound four times faster, and the oldest ids
    /// it held were dropped — their events re-sent at its next takeover, acked long ago.
    /// Here more copies than the bound arrive, fewer ids: every id is kept once.
    #[test]
    fn backup_thawing_on_four_links_keeps_each_id_once() {
        // A backup that may lag 900 frames and still catch up by running them.
        let mut p = running_with(true, true, |c| {
            c.links = crate::config::LINKS_MAX as u8;
            c.max_lag_frames = 900;
        });
        // 700 frames in a freeze shorter than the detection window: some 930 ids, in
        // 3,700 copies; the bound is 2,048.
        p.cycle = Duration::from_micros(300);
        let frames = 700;
        for frame in p.frame_next..p.frame_next + frames {
            p.frame_loss[1].insert(frame, ());
        }
        p.freeze(1, ms(210));
        p.run_for(ms(210));
        assert!(await_role(&mut p, 1, Role::Backup, SyncState::InSync));
        p.run_for(ms(100));
        let last = p.node(1).status().last_transition.map(|t| t.reason);
        assert_ne!(
            last,
            Some(crate::node::Reason::InSync),
            "caught up by running the frames, no transfer"
        );
        let status = p.node(1).ack_status();
        assert!(
            status.events_unacked <= 4,
            "only the last frames' events wait for their acks: {status:?}"
        );
    }

    /// DST seed 515 of `dst --acks`: a backup frozen for 240 frames reads, when it thaws,
    /// the `Acks` of all those frames before it runs them (catching up). It keeps them
    /// until it runs each frame; 256 kept only the newest, so it held the oldest events
    /// as unacked, and re-sent them, acked long ago, at its next takeover.
    #[test]
    fn backup_thawing_keeps_the_acks_of_every_frame_it_catches_up_on() {
        let mut p = running(true, true);
        // Its input of those frames lost too (a socket buffer overflowed in the seed):
        // it fetches them from the primary after reading every buffered message.
        for frame in p.frame_next..p.frame_next + 240 {
            p.frame_loss[1].insert(frame, ());
        }
        p.freeze(1, ms(240));
        p.run_for(ms(240));
        assert!(await_role(&mut p, 1, Role::Backup, SyncState::InSync));
        p.run_for(ms(100));
        let status = p.node(1).ack_status();
        assert!(
            status.events_unacked <= 4,
            "only the last frames' events wait for their acks: {status:?}"
        );
    }

    /// An event lost once on the way: re-sent once, the re-send counted
    /// (`events_resent`), and the sink, which acks the copy at once, is not alarmed
    /// silent. (Mutants `acks.rs:629:78`, `+` → `-` in `acks_timeout`: `SinkSilent` was
    /// raised at the first re-send, whatever the silence, one false alarm for each lost
    /// copy; `acks.rs:651:44`, `+=` → `*=`: `events_resent` stayed 0 on the console and
    /// in the metrics. Schemata run of 64df4f8, 2026-11-27.)
    #[test]
    fn primary_event_lost_once_resent_counted_sink_not_alarmed_silent() {
        let mut p = running(true, false);
        let before = p.node(0).ack_status().events_resent;
        let id = (p.frame_next + 5, 0);
        p.outputs_lost.insert(id, 1);
        let until = p.now + ms(1000);
        assert!(p.run_until(until, |p| p.sink.accepted.contains_key(&id)));
        p.run_for(ms(100));
        assert_eq!(copies(&p, id).len(), 2, "sent, lost, re-sent");
        assert_eq!(p.node(0).ack_status().events_resent - before, 1);
        let silent: Vec<_> = p
            .alarms
            .iter()
            .filter(|(_, a)| matches!(a, Alarm::SinkSilent { .. }))
            .collect();
        assert!(silent.is_empty(), "{silent:?}");
    }

    /// Every queued event due at once, as at a takeover (`acks_take_over`): one wake-up
    /// re-sends [`RESENDS_PER_WAKE`] of them, oldest first, and the others at the next
    /// wake-ups, each once. (Mutants `acks.rs:636:41`, `||` → `&&`, and `acks.rs:650:18`,
    /// `+=` → `*=`, in `acks_timeout`: one wake-up re-sent every due entry, up to the
    /// queue's 256 — the bound on a wake-up's work gone. Schemata run of 64df4f8,
    /// 2026-11-27.)
    #[test]
    fn primary_many_events_due_at_once_resends_a_bounded_batch_a_wakeup() {
        let mut p = running(true, false);
        p.sink_acks = false;
        p.run_for(ms(60));
        p.source_on = false;
        p.run_for(ms(5));
        let queued: Vec<(u64, u8)> = p.nodes[0]
            .as_ref()
            .unwrap()
            .acks
            .pending
            .iter()
            .map(|e| (e.output.frame, e.output.index))
            .collect();
        assert!(queued.len() > 2 * RESENDS_PER_WAKE, "{} queued", queued.len());
        let now = p.now;
        let node = p.nodes[0].as_mut().unwrap();
        let before = node.ack_status().events_resent;
        node.acks_take_over();
        node.handle_timeout(now);
        let mut resent = Vec::new();
        while let Some(action) = node.poll_action() {
            if let crate::node::Action::Emit(output) = action {
                resent.push((output.frame, output.index));
            }
        }
        assert_eq!(resent, queued[..RESENDS_PER_WAKE], "one batch, oldest first");
        assert_eq!(node.ack_status().events_resent - before, RESENDS_PER_WAKE as u64);
        // The rest at the next wake-ups (the node asks for one at once), each once.
        p.emit_log = Some(Vec::new());
        p.run_for(ms(10));
        for &id in &queued[RESENDS_PER_WAKE..] {
            assert_eq!(copies(&p, id).len(), 1, "{id:?}");
        }
    }

    /// The backup's commits of the last frames are lost, the `Acks` the primary sends
    /// after them are not, and the primary crashes. Leading, the backup decides those
    /// frames from the input it holds, and sends none of their events the sink had
    /// acknowledged (the old primary sent them): only those of the last frames, whose
    /// acks had not reached it. (Mutants `acks.rs:464:9`, `acks_heard_of` → `false`, and
    /// `acks.rs:464:39`, `==` → `!=`: every such event went out again, a duplicate the
    /// sink drops. Schemata run of 64df4f8, 2026-11-27.)
    #[test]
    fn backup_takes_over_deciding_frames_whose_commits_were_lost_sends_no_event_acked_already() {
        let mut p = running(true, true);
        let commits_lost_from = p.node(0).frame();
        p.drop_if = Some(|from, envelope| from == 0 && matches!(envelope.body, crate::wire::Body::Commit(_)));
        p.run_for(ms(30));
        let last_run = p.node(0).frame();
        assert!(
            p.node(1).frame() <= commits_lost_from + 1,
            "the backup ran no frame without its commit: {} of {last_run}",
            p.node(1).frame()
        );
        p.crash(0);
        p.drop_if = None;
        let crashed_at = p.now;
        let accepted: Vec<(u64, u8)> = p
            .sink
            .accepted
            .keys()
            .copied()
            .filter(|&(frame, _)| frame > commits_lost_from + 1 && frame + 3 <= last_run)
            .collect();
        assert!(accepted.len() >= 10, "{accepted:?}");
        assert!(await_role(&mut p, 1, Role::Primary, SyncState::Alone));
        p.run_for(ms(200));
        let again: Vec<(u64, u8)> = accepted
            .iter()
            .copied()
            .filter(|&id| copies(&p, id).iter().any(|&(at, node)| node == 1 && at > crashed_at))
            .collect();
        assert!(again.is_empty(), "acked events sent again: {again:?}");
        assert!(p.node(1).frame() >= last_run, "it decided them");
        assert_eq!(p.sink.conflicts, 0);
    }

    /// A node that keeps its state for the operator (`ColderPrimary`) follows the other
    /// history's epoch and hears that history's primary pass on acknowledged ids: it takes
    /// none of them (only a backup of the primary does). They name that history's
    /// events, at frames its own history has events at too; made primary by the operator
    /// (`ForcePrimary`), it runs those frames and sends its events of them. (Mutants
    /// `acks.rs:534:13` and `535:13`, both forms, and `536:13` in its schemata form
    /// `(… || header.role != Primary) && header.epoch != current`, `||` → `&&` in
    /// `on_acks`: a node that is not a backup took the `Acks` of the primary of its epoch,
    /// kept them in `ahead`, and once forced to lead took its own events of those ids as
    /// acknowledged: never sent. Schemata run of 64df4f8, 2026-11-27.)
    #[test]
    fn starting_keeping_state_takes_no_acks_of_the_other_history_sends_its_events_when_forced() {
        let config = Config {
            ack_sinks: 1,
            state_bytes_max: 8 << 20,
            ..Config::fast()
        };
        let mut p = Pair::new(47, config, 4 << 20);
        p.sink_acks = true;
        p.configs[1].allow_cold_start = true;
        p.start(0);
        assert!(await_role(&mut p, 0, Role::Primary, SyncState::Alone));
        p.run_for(ms(200));
        p.start(1);
        assert!(await_role(&mut p, 1, Role::Backup, SyncState::Joining));
        p.run_for(ms(50));
        // Node 1, joining without a state, leads a cold start while node 0 is frozen.
        p.freeze(0, ms(3000));
        p.run_for(ms(3500));
        assert_eq!(p.node(0).role(), Role::Starting);
        assert_eq!(
            p.node(0).status().last_transition.map(|t| t.reason),
            Some(crate::node::Reason::KeepingState)
        );
        assert_eq!(
            p.node(0).epoch(),
            p.node(1).epoch(),
            "it follows the other history's epoch"
        );
        // The other history's acks, as its primary passes them on.
        let acked = (p.node(1).frame() - 10, 0);
        assert!(p.sink.accepted.contains_key(&acked));
        let ahead: Vec<(u64, u8)> = p.node(0).acks.ahead.iter().copied().collect();
        assert!(ahead.is_empty(), "{} ids taken, up to {:?}", ahead.len(), ahead.last());
        p.emit_log = Some(Vec::new());
        assert_eq!(
            p.command(0, crate::node::Command::ForcePrimary),
            crate::node::CommandReply::Started
        );
        p.run_for(ms(300));
        assert_eq!(p.node(0).role(), Role::Primary);
        assert!(
            copies(&p, acked).iter().any(|&(_, node)| node == 0),
            "its own event {acked:?} never sent"
        );
    }

    /// A primary that released the plant to its backup in a switchover re-sends nothing
    /// while it waits to see the backup lead (here it never hears it): the backup, once
    /// it leads, re-sends every event no ack was heard of from its own queue, under its
    /// epoch. (Mutant `acks.rs:575:13` in its textual form `(on && primary) || (led &&
    /// durable && idle)`, `&&` → `||` in `acks_lead`: a primary ran its acks' timers in a
    /// switchover too, and re-sent beside its successor — duplicates and stale copies
    /// the sink drops. Schemata run of 64df4f8, 2026-11-27; the run judged the form
    /// `((on && primary) || led) && durable && idle`, which this passes.)
    #[test]
    fn primary_released_in_a_switchover_resends_nothing() {
        let mut p = running(true, true);
        assert!(await_role(&mut p, 0, Role::Primary, SyncState::Paired));
        p.sink_acks = false;
        p.run_for(ms(50));
        assert!(p.node(0).ack_status().events_unacked > 10);
        assert_eq!(
            p.command(0, crate::node::Command::Switchover),
            crate::node::CommandReply::Started
        );
        let until = p.now + ms(500);
        assert!(p.run_until(until, |p| matches!(
            p.node(0).switchover,
            crate::node::Switchover::Released { .. }
        )));
        p.drop_if = Some(|from, _| from == 1);
        let released_at = p.now;
        p.run_for(ms(300));
        assert!(matches!(p.node(0).switchover, crate::node::Switchover::Released { .. }));
        assert_eq!(p.node(0).role(), Role::Primary);
        let log = p.emit_log.as_ref().unwrap();
        let resent: Vec<_> = log
            .iter()
            .filter(|&&(at, node, _, _)| node == 0 && at > released_at)
            .collect();
        assert!(resent.is_empty(), "{resent:?}");
    }
}
