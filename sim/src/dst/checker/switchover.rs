//! Invariant 7 (this project's): a planned switchover asked for in a calm state
//! completes cleanly; a primary hands over for its input only after the hold.

use super::*;

impl Checker {
    /// A switchover asked for now, in a calm state: it must complete (a new primary by
    /// `SwitchoverCompleted`) by `until`, with no abort, fencing or takeover meanwhile.
    pub fn expect_clean_switchover(&mut self, from: Nanos, until: Nanos) {
        self.switchovers_watched += 1;
        self.calm_switchovers.push(CalmSwitchover {
            from,
            until,
            completed: false,
            cut_short: false,
        });
    }

    pub(super) fn watch_switchovers(&mut self, at: Nanos, node: usize, t: &Transition) {
        let spoils = matches!(
            t.reason,
            Reason::SwitchoverAborted
                | Reason::FencedByEpoch
                | Reason::FencedAtStartup
                | Reason::TakeoverAfterProbe
                | Reason::TakeoverNoPrimary
        );
        let mut spoiled = false;
        for w in self
            .calm_switchovers
            .iter_mut()
            .filter(|w| at >= w.from && at <= w.until)
        {
            w.completed |= t.reason == Reason::SwitchoverCompleted;
            spoiled |= spoils;
        }
        if spoiled {
            self.violation(
                Invariant::Switchover,
                at,
                format!(
                    "node {node}: {:?} during a planned switchover asked for in a calm state",
                    t.reason
                ),
            );
        }
    }

    /// Another fault begins: what a watched switchover does from now on is not its own.
    pub fn end_switchover_watches(&mut self, now: Nanos) {
        for w in &mut self.calm_switchovers {
            w.cut_short |= !w.completed;
            w.until = w.until.min(now);
        }
    }

    /// Every calm switchover watched until before `now` must have completed.
    pub fn check_switchovers(&mut self, now: Nanos) {
        let (due, pending): (Vec<_>, Vec<_>) = self.calm_switchovers.iter().partition(|w| w.until < now);
        self.calm_switchovers = pending;
        for w in due.into_iter().filter(|w| !w.completed && !w.cut_short) {
            self.violation(
                Invariant::Switchover,
                w.until,
                format!(
                    "a planned switchover asked for at {:.3} ms in a calm state did not complete",
                    w.from as f64 / 1e6
                ),
            );
        }
    }

    /// Node `node` handed over for its input (`InputHandover`) having led for `led` on
    /// its own clock: a primary does so only once it has led for the hold
    /// (`input_handover_hold_ms`), so that two flapping inputs do not bounce the plant
    /// between the nodes. Found missing by mutation testing (2026-11-26): a primary that
    /// ignored the hold passed the DST.
    pub fn on_input_handover(&mut self, at: Nanos, node: usize, led: core::time::Duration, hold: core::time::Duration) {
        if led < hold {
            self.violation(
                Invariant::Switchover,
                at,
                format!(
                    "node {node} handed over for its input {:.3} ms after it became primary, within the hold of {} ms",
                    led.as_secs_f64() * 1e3,
                    hold.as_millis()
                ),
            );
        }
    }
}
