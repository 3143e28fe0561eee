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

impl Checker {
    /// Node `node`, a backup, took `ids` as acked from the primary it follows.
    pub fn on_acks_held(&mut self, node: usize, ids: &[(u64, u8)]) {
        let held = &mut self.acks_held[node];
        held.extend(ids.iter().copied());
        while held.len() > ACKS_HELD_MAX {
            held.pop_first();
        }
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
    /// queue (`dropped`), which it alarmed.
    pub fn check_events_applied(
        &mut self,
        now: Nanos,
        node: usize,
        epoch: u64,
        margin: Nanos,
        dropped: u64,
        accepted: &dyn Fn((u64, u8)) -> bool,
    ) {
        if !self.acks || dropped != 0 {
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
