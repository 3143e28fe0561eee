//! Invariant 8, application-state continuity: no cold start replaces the pair's state
//! while a node that holds it is alive.

use super::*;

impl Checker {
    /// Invariant 8, at every transition of `node`.
    pub(super) fn check_continuity(&mut self, at: Nanos, node: usize, t: &Transition) {
        match (t.role, t.reason) {
            (Role::Backup, reason) => {
                self.knew_state[node] = true;
                if reason == Reason::InSync && self.holds_state[node].is_none() {
                    self.holds_state[node] = Some(at);
                }
            }
            (Role::Primary, Reason::StartedFirst | Reason::WonTiebreak) => {
                let other = 1 - node;
                // Steps of the same event are recorded before its transitions: a state
                // held since this instant is the cold start's own.
                if self.holds_state[node].is_none_or(|since| since >= at)
                    && self.knew_state[node]
                    && self.running[other]
                    && self.holds_state[other].is_some()
                {
                    self.violation(
                        Invariant::StateContinuity,
                        at,
                        format!(
                            "node {node} led epoch {} from a cold start ({:?}) while node {other}, running, held the pair's state",
                            twinloop::EpochText(t.epoch), t.reason
                        ),
                    );
                }
            }
            _ => {}
        }
    }
}
