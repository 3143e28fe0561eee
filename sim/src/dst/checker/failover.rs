//! Invariant 6, failover time and false deaths: a clean primary crash is followed by
//! the new primary's first output within its bound; no takeover during a freeze the
//! probe covers; a node restarted next to a healthy primary joins it.

use super::*;

impl Checker {
    /// The first output of a new primary ends a pending failover, checked against its
    /// bound when the crash was clean.
    pub(super) fn end_pending_failovers(&mut self, at: Nanos, node: usize, epoch: u64) {
        let mut done = Vec::new();
        for (k, p) in self.pending.iter().enumerate() {
            if node != p.crashed_node && epoch > p.epoch {
                done.push(k);
            }
        }
        for k in done.into_iter().rev() {
            let p = self.pending.remove(k);
            let took_ns = at - p.at;
            self.failover_ns.push(took_ns);
            if let Some(bound_ns) = p.bound_ns {
                self.failovers_checked += 1;
                if took_ns > bound_ns {
                    self.violation(
                        Invariant::FailoverTime,
                        at,
                        format!(
                            "failover took {:.3} ms, bound {:.3} ms (primary node {} crashed at {:.3} ms)",
                            took_ns as f64 / 1e6,
                            bound_ns as f64 / 1e6,
                            p.crashed_node,
                            p.at as f64 / 1e6
                        ),
                    );
                }
            }
        }
    }

    /// A new primary `node` (`t`): no takeover within a watched freeze, no lead by a node
    /// restarted next to a healthy primary.
    pub(super) fn check_no_takeover(&mut self, at: Nanos, node: usize, t: &Transition) {
        let takeover = matches!(t.reason, Reason::TakeoverAfterProbe | Reason::TakeoverNoPrimary);
        let watch = self.no_takeover.iter().find(|w| {
            // A switchover the primary asked for is no usurpation.
            let led = w.restarted && t.reason != Reason::SwitchoverCompleted;
            w.backup == node && at >= w.from && at <= w.until && (takeover || led)
        });
        match watch {
            Some(w) if w.restarted => self.violation(
                Invariant::FalseDeath,
                at,
                format!(
                    "node {node} restarted next to a healthy primary it could hear, and led ({:?}) instead of joining it",
                    t.reason
                ),
            ),
            Some(_) => self.violation(
                Invariant::FalseDeath,
                at,
                format!(
                    "node {node} took over ({:?}) during a primary freeze shorter than window + probe",
                    t.reason
                ),
            ),
            None => {}
        }
    }

    /// The primary `node` of `epoch` crashed at `at`; `bound_ns` is set when the crash
    /// was clean (its failover time is checked); `measured` when its backup was in sync
    /// (the failover's time goes into the statistics).
    pub fn on_primary_crash(&mut self, at: Nanos, node: usize, epoch: u64, bound_ns: Option<Nanos>) {
        self.pending.retain(|p| p.crashed_node != node);
        self.pending.push(PendingFailover {
            crashed_node: node,
            epoch,
            at,
            bound_ns,
        });
    }

    /// A clean failover that has not produced an output by `now` is late.
    pub fn check_failover_deadlines(&mut self, now: Nanos) {
        let mut late = Vec::new();
        self.pending.retain(|p| match p.bound_ns {
            Some(bound_ns) if now > p.at + bound_ns => {
                late.push(*p);
                false
            }
            _ => true,
        });
        for p in late {
            self.violation(
                Invariant::FailoverTime,
                now,
                format!(
                    "primary node {} crashed at {:.3} ms: no output from a new primary within {:.3} ms",
                    p.crashed_node,
                    p.at as f64 / 1e6,
                    p.bound_ns.unwrap_or(0) as f64 / 1e6
                ),
            );
        }
    }

    /// Forgets pending failovers (a new phase begins: what is not done will not be).
    pub fn drop_pending_failovers(&mut self) {
        self.pending.retain(|p| p.bound_ns.is_some());
    }

    /// No takeover by `backup` may happen within `[from, until]`.
    pub fn expect_no_takeover(&mut self, backup: usize, from: Nanos, until: Nanos) {
        self.false_deaths_watched += 1;
        self.no_takeover.push(NoTakeover {
            backup,
            from,
            until,
            restarted: false,
        });
    }

    /// `node` restarts next to a healthy primary: it may not lead within `[from, until]`.
    pub fn expect_no_lead(&mut self, node: usize, from: Nanos, until: Nanos) {
        self.restarts_watched += 1;
        self.no_takeover.push(NoTakeover {
            backup: node,
            from,
            until,
            restarted: true,
        });
    }
}
