//! Invariant 16, acknowledged events (`--acks`, issue 22): every event the primary at
//! the end of the run emitted in its epoch reached the sink, once the re-sends had time
//! (checked at the end, [`Checker::check_events_applied`]); and a node that took over
//! re-sends no event whose ack the old primary passed on to it (at the emit,
//! [`Checker::check_resend_acked`]). With acks a node sends an event more than once in
//! an epoch, so invariant 2's "once per epoch" and invariant 9 for events give way to
//! this; the sink's "accepted once" (invariant 2) stands.

use super::*;

/// Ids of acks held by a node that are kept: beyond, the oldest are forgotten (a
/// re-send of one of those is then not judged).
const ACKS_HELD_MAX: usize = 1 << 16;

/// The time an event lost on the output path has to be sent again before the run's
/// end: ten of the DST's longest backoff (`event_retry_max_ms` = 100).
pub const EVENT_RESENDS_MARGIN: Nanos = 1000 * super::super::clock::NANOS_PER_MS;

/// A primary's tenure for invariant 16: since when, and the events it emitted since,
/// each at its first sending.
pub type Tenure = (Nanos, BTreeMap<(u64, u8), Nanos>);

/// The start of a tenure whose drops invariant 16 does not judge (a takeover re-sends
/// its inherited queue, 16 a wake-up, within a few frames).
pub const DROP_JUDGED_AFTER: Nanos = 50 * super::super::clock::NANOS_PER_MS;

impl Checker {
    /// Node `node`, a backup, took `ids` as acked from the primary it follows.
    pub fn on_acks_held(&mut self, node: usize, ids: &[(u64, u8)]) {
        let held = &mut self.acks_held[node];
        held.extend(ids.iter().copied());
        while held.len() > ACKS_HELD_MAX {
            held.pop_first();
        }
    }

    /// A node (re)starts: its queue is empty, no ack has reached it.
    pub fn on_acks_start(&mut self, node: usize) {
        self.acks_delivered[node].clear();
        self.acks_window[node] = twinloop::io_protocol::AckWindow::default();
        self.events_tenure[node] = None;
    }

    /// A transition of node `node` at `at`: a primary's queue lives on through its epoch
    /// raises and is cleared when it stops leading.
    pub(super) fn track_events_tenure(&mut self, at: Nanos, node: usize, primary: bool) {
        if !primary {
            self.events_tenure[node] = None;
        } else if self.events_tenure[node].is_none() {
            self.events_tenure[node] = Some((at, BTreeMap::new()));
        }
    }

    /// The sink's ack `(session, seq)` of `ids` reached node `node` at `at` (it was not
    /// frozen). A copy the node's replay window must refuse — a repeat, or one that the
    /// ack path's reordering left more than 64 behind the newest (after an outage the
    /// sink acks every re-send, so a burst of acks crosses a 2 ms spread of delays) —
    /// acknowledges nothing: the world's own window, of the documented rule
    /// (`io_protocol::AckWindow`, an instance of its own), decides.
    pub fn on_ack_delivered(&mut self, at: Nanos, node: usize, session: u64, seq: u64, ids: &[(u64, u8)]) {
        if !self.acks || !self.acks_window[node].accept(session, seq) {
            return;
        }
        let delivered = &mut self.acks_delivered[node];
        for &id in ids {
            delivered.insert(id, at);
        }
        while delivered.len() > ACKS_HELD_MAX {
            delivered.pop_first();
        }
    }

    /// Node `node` dropped events from its full queue at `at`, as primary of `epoch`
    /// (`None`: not primary). The world must have kept their acks from it: at least
    /// [`twinloop::node::EVENTS_UNACKED_MAX`] of the events it emitted since it leads had
    /// no ack delivered to it since their first sending — its output path or its ack path
    /// cut for that long, or a freeze whose backlog of frames it ran before the acks that
    /// waited. Then the end's check lets the epoch's lost events go (they were alarmed).
    /// Not judged: a backup's drops (its queue fills from the frames it runs and empties
    /// by its primary's `Acks`, which the world does not model), and the first
    /// [`DROP_JUDGED_AFTER`] of a tenure, while a takeover's inherited queue, never
    /// emitted yet, may hold the places.
    pub fn on_events_dropped(&mut self, at: Nanos, node: usize, epoch: Option<u64>, count: u64) {
        let Some(epoch) = epoch.filter(|_| self.acks) else {
            return;
        };
        let Some((led_at, ids)) = &self.events_tenure[node] else {
            self.events_drop_excused.insert((node, epoch));
            return;
        };
        if at < led_at.saturating_add(DROP_JUDGED_AFTER) {
            self.events_drop_excused.insert((node, epoch));
            return;
        }
        let delivered = &self.acks_delivered[node];
        let outstanding = ids
            .iter()
            .filter(|&(id, &first)| delivered.get(id).is_none_or(|&t| t < first))
            .count();
        if outstanding >= twinloop::node::EVENTS_UNACKED_MAX {
            self.events_drop_excused.insert((node, epoch));
            return;
        }
        self.violation(
            Invariant::EventsApplied,
            at,
            format!(
                "node {node}, primary of epoch {}, dropped {count} event(s) from a full queue, but only {outstanding} \
                 of the events it emitted since it leads had no ack delivered to it (the queue holds {})",
                twinloop::EpochText(epoch),
                twinloop::node::EVENTS_UNACKED_MAX
            ),
        );
    }

    /// An event the output path lost may stay lost at the end `at` when a primary dropped
    /// events from a queue the world had filled, or when its last sending came within
    /// [`EVENT_RESENDS_MARGIN`] of the end.
    pub(super) fn event_loss_excused(&self, at: Nanos, id: (u64, u8)) -> bool {
        if !self.events_drop_excused.is_empty() {
            return true;
        }
        let last = self.events_emitted.values().filter_map(|ids| ids.get(&id)).max();
        last.is_none_or(|&first| first.saturating_add(EVENT_RESENDS_MARGIN) >= at)
    }

    /// Records an event a primary emitted, for the end's check.
    pub(super) fn record_event_emitted(&mut self, at: Nanos, node: usize, output: &Output) {
        if !self.acks || output.kind != twinloop::OutputKind::Event {
            return;
        }
        self.events_emitted
            .entry((node, output.epoch))
            .or_default()
            .entry((output.frame, output.index))
            .or_insert(at);
        if let Some((_, ids)) = &mut self.events_tenure[node] {
            ids.entry((output.frame, output.index)).or_insert(at);
        }
    }

    /// A new primary re-sends an event only when no ack of it came with the commits.
    pub(super) fn check_resend_acked(&mut self, at: Nanos, node: usize, output: &Output) {
        let id = (output.frame, output.index);
        // Its own re-sends of events it emitted in this epoch are not a takeover's.
        let own = self
            .events_emitted
            .get(&(node, output.epoch))
            .and_then(|ids| ids.get(&id))
            .is_some_and(|&first| first < at);
        if !own && self.acks_held[node].contains(&id) {
            self.violation(
                Invariant::EventsApplied,
                at,
                format!(
                    "node {node} re-sent event {id:?} under epoch {} after taking over: the old primary had passed its ack on",
                    twinloop::EpochText(output.epoch)
                ),
            );
        }
    }

    /// At the end: node `node`, primary of `epoch`, emitted events the sink never
    /// accepted, longer than `margin` before `now` — unless it dropped some from a full
    /// queue the world had filled ([`Checker::on_events_dropped`]), which it alarmed.
    pub fn check_events_applied(
        &mut self,
        now: Nanos,
        node: usize,
        epoch: u64,
        margin: Nanos,
        accepted: &dyn Fn((u64, u8)) -> bool,
    ) {
        if !self.acks || self.events_drop_excused.contains(&(node, epoch)) {
            return;
        }
        let Some(ids) = self.events_emitted.get(&(node, epoch)) else {
            return;
        };
        let missing: Vec<(u64, u8)> = ids
            .iter()
            .filter(|&(&id, &first)| first.saturating_add(margin) < now && !accepted(id))
            .map(|(&id, _)| id)
            .collect();
        if let Some(first) = missing.first() {
            let detail = format!(
                "node {node}, primary of epoch {} at the end, emitted {} event(s) the sink never applied, first {first:?}",
                twinloop::EpochText(epoch),
                missing.len()
            );
            self.violation(Invariant::EventsApplied, now, detail);
        }
    }
}
