//! Invariant 21, a primary's frames wait only for a full queue (`--acked`, issue 21,
//! added 2026-11-27). With acked outputs a primary holds each output until every in-sync
//! backup acknowledged its frame; before it runs a frame it asks whether the queue of
//! held outputs has room for that frame's (`OUTPUTS_PER_FRAME_MAX`) below its bound,
//! `HELD_OUTPUTS_MAX`, and when not, the frame waits and `Alarm::OutputsHeldFull` is
//! raised: the plant's outputs go late. That is the design's price for a backup that
//! lags, paid only at the bound. A primary that let frames wait earlier (mutant
//! `release.rs:227:36`, `+` → `*`: frames waited once a sixteenth of the queue was used)
//! passed every seed: the sink's verdicts judge what arrives, not when.
//!
//! Judged at the alarm, from the node's own status after the event that raised it: the
//! outputs it held then, with a frame's worth more, must be above the bound.

use super::*;
use twinloop::app::OUTPUTS_PER_FRAME_MAX;
use twinloop::node::HELD_OUTPUTS_MAX;

impl Checker {
    /// Node `node` raised `Alarm::OutputsHeldFull` holding `held` outputs after the
    /// event.
    pub fn on_held_full(&mut self, at: Nanos, node: usize, held: u64) {
        let room = held.saturating_add(OUTPUTS_PER_FRAME_MAX as u64) <= HELD_OUTPUTS_MAX as u64;
        if room {
            self.violation(
                Invariant::HeldFull,
                at,
                format!(
                    "node {node} let a frame wait (OutputsHeldFull) holding {held} outputs: a frame's {OUTPUTS_PER_FRAME_MAX} more fit below the bound of {HELD_OUTPUTS_MAX}"
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_full_alarm_below_the_bound_is_a_violation_at_it_none() {
        let mut checker = Checker::default();
        let bound = (HELD_OUTPUTS_MAX - OUTPUTS_PER_FRAME_MAX) as u64;
        checker.on_held_full(5, 0, bound + 1);
        assert_eq!(checker.violations().len(), 0);
        checker.on_held_full(7, 1, bound);
        assert_eq!(checker.violations().len(), 1);
        let v = &checker.violations()[0];
        assert_eq!((v.invariant, v.at), (Invariant::HeldFull, 7));
        assert!(v.detail.starts_with("node 1 let a frame wait"), "{}", v.detail);
    }
}
