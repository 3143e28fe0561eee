//! Invariant 24, a dead input is handed over (issue 21, added 2026-11-27). A primary
//! whose I/O input has been silent for `input_handover_ms` while its in-sync backup's
//! input is alive hands over to it in a planned switchover (`Reason::InputHandover`),
//! once it has been primary for `input_handover_hold_ms`: else the plant runs without
//! inputs, its outputs frozen at their last values. The DST drew dead inputs and counted
//! handovers, but no invariant asked for one: a core that never handed over (mutant
//! `switchover.rs:534:9`, `slot_input_ahead` → `false`) passed every seed.
//!
//! Watched only where the design promises it: the input of the primary of a calm pair
//! (converged, nothing frozen, no fault active, links up) dies — every frame lost, not a
//! burst of loss — for longer than the bound, and no other fault of the plan comes
//! before the bound; the backup's input is then alive. The bound: the later of the
//! fault's start plus `input_handover_ms` and the primary's start plus its hold, then a
//! switchover's own bound (`switchover_timeout_ms`) and four cycles. Any other fault of
//! the pair ends the watch unjudged. Liveness (exit code 11).

use super::world::Sim;
use crate::dst::app::Workload;
use crate::dst::checker::Invariant;
use crate::dst::clock::{Nanos, NANOS_PER_MS};
use twinloop::{Reason, Role, Transition};

impl<'a, W: Workload> Sim<'a, W> {
    /// An `IoLoss` of `loss_ppm` for `duration_ns` begins on node `node`'s input (fault
    /// `index` of the plan): watched when it is the dead input of a calm pair's primary.
    pub(super) fn watch_handover(&mut self, node: usize, loss_ppm: u32, duration_ns: Nanos, index: usize) {
        if loss_ppm < 1_000_000 || self.role(node) != Some(Role::Primary) {
            return;
        }
        let Some(deadline) = self
            .handover_deadline(node, index)
            .filter(|&d| self.now + duration_ns > d + self.options.cycle_ms * NANOS_PER_MS)
        else {
            return;
        };
        self.stats.handovers_watched += 1;
        self.say(format_args!(
            "node {node}: input dead, watched for a handover by {:.3} ms",
            deadline as f64 / 1e6
        ));
        self.handover_watch = Some((node, deadline));
    }

    /// The bound of node `p`'s handover were its input to die now, when the pair is calm
    /// and no other fault of the plan (but `index`) comes before it.
    fn handover_deadline(&self, p: usize, index: usize) -> Option<Nanos> {
        let c = &self.options.config;
        let since = self.primary_true_since[p]?;
        let ms = NANOS_PER_MS;
        let starts = (self.now + c.input_handover_ms * ms).max(since + c.input_handover_hold_ms * ms);
        let deadline = starts + c.switchover_timeout_ms * ms + 4 * self.options.cycle_ms * ms;
        let calm = c.input_handover_ms != 0
            && self.converged()
            && self.frozen_count == 0
            && self.faults_active == 0
            && self.network.all_up()
            && !self.plan.any_within(self.now, deadline, Some(index))
            && deadline + 20 * self.options.cycle_ms * ms < self.options.safety_ms * ms;
        calm.then_some(deadline)
    }

    /// A transition of node `i`: its start as primary noted; a handover ends the watch.
    pub(super) fn note_handover_transition(&mut self, now: Nanos, i: usize, t: &Transition) {
        if t.role != Role::Primary {
            self.primary_true_since[i] = None;
        } else if self.primary_true_since[i].is_none() {
            self.primary_true_since[i] = Some(now);
        }
        if t.reason == Reason::InputHandover && t.role == Role::Primary {
            self.handover_watch = None;
        }
    }

    /// After every event: a watch past its bound is a violation.
    pub(super) fn check_handover_watch(&mut self) {
        let Some((node, deadline)) = self.handover_watch else {
            return;
        };
        if self.now <= deadline {
            return;
        }
        self.handover_watch = None;
        self.checker.violation(
            Invariant::InputHandover,
            self.now,
            format!(
                "node {node}, primary of a calm pair, lost its input and did not hand over to its backup, whose input lives, by {:.3} ms",
                deadline as f64 / 1e6
            ),
        );
    }
}
