//! Invariant 20, a probe's answer is acted on (issue 21, added 2026-11-27). A backup
//! whose primary fell silent for the detection window sends a probe; a live peer that
//! does not lead (a primary restarted, starting again) answers it, and the backup takes
//! over at once (`TakeoverNoPrimary`), not at the probe's deadline: nobody leads, and the
//! plant waits for every millisecond of it. Invariant 6's failover bound allows the
//! probe's whole time, so a backup that ignored the answer (mutant `detector.rs:129:50`,
//! the answer's id tested the wrong way round) passed every seed; and one that took an
//! answer to another probe for one (the same mutant's other half) took over beside a
//! primary that had answered its own.
//!
//! Judged from the wire, never from the core: the runner taps each `Body::Probe` a node
//! puts on the wire and each datagram delivered to it that decodes under the pair's key
//! with no rejection counted while it was handled:
//! - a node that took over at its probe's deadline (`TakeoverAfterProbe`) must not have
//!   been delivered, since that probe went out, an answer to it (`ProbeAck` of its id)
//!   from a peer that does not lead — unless a primary's message reached it after (which
//!   ends the probe: the primary lives) or it changed role or sync state since (the
//!   model forgets the answer: lenient);
//! - a node that took over as `TakeoverNoPrimary` must do so in the event that delivered
//!   such an answer to the probe it last put on the wire.

use super::*;

/// A node incarnation's last probe, as the world saw it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct ProbeModel {
    /// The id of the probe the node last put on the wire (none since its start: `None`).
    pub(super) id: Option<u32>,
    /// When a peer that does not lead answered it; cleared when a primary's message
    /// reaches the node or the node transitions.
    pub(super) answered_at: Option<Nanos>,
    /// The answer (its id) the event being handled delivered, if any.
    pub(super) answer_now: Option<u32>,
}

impl Checker {
    /// Node `node` put `Body::Probe { id }` on the wire.
    pub fn on_probe_sent(&mut self, node: usize, id: u32) {
        let probe = &mut self.probes[node];
        if probe.id != Some(id) {
            *probe = ProbeModel {
                id: Some(id),
                ..ProbeModel::default()
            };
        }
    }

    /// Node `node` handled a datagram from its peer, taken (no rejection counted):
    /// `primary` when its header says the sender leads, `answer` the id of a `ProbeAck`
    /// from a peer that does not lead. Called before the event's actions reach the
    /// checker; [`Checker::on_probe_event_end`] after.
    pub fn on_probe_traffic(&mut self, at: Nanos, node: usize, primary: bool, answer: Option<u32>) {
        let probe = &mut self.probes[node];
        if primary {
            probe.answered_at = None;
            return;
        }
        probe.answer_now = answer;
        if answer.is_some() && answer == probe.id && probe.answered_at.is_none() {
            probe.answered_at = Some(at);
        }
    }

    /// The event that delivered a datagram to node `node` is over.
    pub fn on_probe_event_end(&mut self, node: usize) {
        self.probes[node].answer_now = None;
    }

    /// Node `node` (re)started or crashed: its probes are gone with its incarnation.
    pub(super) fn forget_probe(&mut self, node: usize) {
        self.probes[node] = ProbeModel::default();
    }

    /// A transition of node `node`: the two rules, then the answer is forgotten.
    pub(super) fn check_probe(&mut self, at: Nanos, node: usize, t: &Transition) {
        let probe = self.probes[node];
        match t.reason {
            Reason::TakeoverAfterProbe => {
                if let (Some(id), Some(answered)) = (probe.id, probe.answered_at) {
                    self.violation(
                        Invariant::ProbeAnswered,
                        at,
                        format!(
                            "node {node} took over at its probe's deadline (epoch {}) though a peer that \
                             does not lead answered probe {id} at {answered} ns: it should have taken \
                             over then",
                            twinloop::EpochText(t.epoch)
                        ),
                    );
                }
            }
            Reason::TakeoverNoPrimary if probe.answer_now.is_none() || probe.answer_now != probe.id => {
                self.violation(
                    Invariant::ProbeAnswered,
                    at,
                    format!(
                        "node {node} took over as no primary led (epoch {}) without an answer to its \
                         probe: its last probe {:?}, the answer this event delivered {:?}",
                        twinloop::EpochText(t.epoch),
                        probe.id,
                        probe.answer_now
                    ),
                );
            }
            _ => {}
        }
        self.probes[node].answered_at = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use twinloop::Instant;

    const E1: u64 = 0x101;
    const E2: u64 = 0x202;

    /// Node 1's takeover (epoch `E2`, its id in the low byte); `E1` is node 0's.
    fn takeover(reason: Reason) -> Transition {
        Transition {
            at: Instant::ZERO,
            role: Role::Primary,
            sync: SyncState::Alone,
            epoch: E2,
            frame: 10,
            reason,
        }
    }

    fn node_0(t: Transition) -> Transition {
        Transition { epoch: E1, ..t }
    }

    fn numbers(checker: &Checker) -> Vec<u8> {
        checker.violations().iter().map(|v| v.invariant.number()).collect()
    }

    fn started() -> Checker {
        let mut checker = Checker::new();
        checker.on_start(0, 0);
        checker.on_start(1, 0);
        checker
    }

    /// The answer taken in the event that delivered it: no violation; the same takeover
    /// without it, or on an answer to another probe, is one.
    #[test]
    fn takeover_no_primary_needs_the_answer_to_the_last_probe_in_its_event() {
        let mut c = started();
        c.on_probe_sent(1, 7);
        c.on_probe_traffic(1_000, 1, false, Some(7));
        c.on_transition(1_000, 1, &takeover(Reason::TakeoverNoPrimary));
        c.on_probe_event_end(1);
        assert!(c.violations().is_empty(), "{:?}", c.violations());

        let mut c = started();
        c.on_probe_sent(1, 7);
        c.on_transition(1_000, 1, &takeover(Reason::TakeoverNoPrimary));
        assert_eq!(numbers(&c), [20]);

        let mut c = started();
        c.on_probe_sent(1, 7);
        c.on_probe_sent(1, 8);
        c.on_probe_traffic(1_000, 1, false, Some(7));
        c.on_transition(1_000, 1, &takeover(Reason::TakeoverNoPrimary));
        assert_eq!(numbers(&c), [20]);
    }

    /// Answered by a peer that does not lead, then a takeover at the deadline: a
    /// violation — unless a primary's message came after the answer, or the answer was
    /// to an older probe, or the node crashed since.
    #[test]
    fn takeover_at_the_deadline_after_an_answer_is_a_violation() {
        let mut c = started();
        c.on_probe_sent(0, 3);
        c.on_probe_traffic(1_000, 0, false, Some(3));
        c.on_probe_event_end(0);
        c.on_transition(5_000, 0, &node_0(takeover(Reason::TakeoverAfterProbe)));
        assert_eq!(numbers(&c), [20]);

        let mut c = started();
        c.on_probe_sent(0, 3);
        c.on_probe_traffic(1_000, 0, false, Some(3));
        c.on_probe_event_end(0);
        c.on_probe_traffic(2_000, 0, true, None);
        c.on_probe_event_end(0);
        c.on_transition(5_000, 0, &node_0(takeover(Reason::TakeoverAfterProbe)));
        assert!(c.violations().is_empty(), "{:?}", c.violations());

        let mut c = started();
        c.on_probe_sent(0, 3);
        c.on_probe_traffic(1_000, 0, false, Some(2));
        c.on_probe_event_end(0);
        c.on_transition(5_000, 0, &node_0(takeover(Reason::TakeoverAfterProbe)));
        assert!(c.violations().is_empty(), "{:?}", c.violations());

        let mut c = started();
        c.on_probe_sent(0, 3);
        c.on_probe_traffic(1_000, 0, false, Some(3));
        c.on_probe_event_end(0);
        c.on_crash(2_000, 0);
        c.on_start(0, 1);
        c.on_transition(5_000, 0, &node_0(takeover(Reason::TakeoverAfterProbe)));
        assert!(c.violations().is_empty(), "{:?}", c.violations());
    }
}
