//! Invariant 11, join time: once the faults healed, a joining backup is in sync within
//! the runner's join bound (`runner::join_bound_ns`: derived from the state size, the
//! pacing and the retry timers; `docs/DST.md`).

use super::*;

impl Checker {
    /// The faults healed at `at`: from now on, every join (and one under way, counted
    /// from `at`) must end in sync within `bound_ns`.
    pub fn on_heal(&mut self, at: Nanos, bound_ns: Nanos) {
        self.heal_at = Some(at);
        self.join_bound_ns = bound_ns;
    }

    /// A transition of node `node`: a join begins (`Joining`; a second attempt following
    /// the same epoch keeps the first's start), ends in sync (`InSync`, `Lagging`: judged
    /// after healing), or is abandoned (another role, another epoch).
    pub(super) fn watch_joins(&mut self, at: Nanos, node: usize, t: &Transition) {
        if t.role != Role::Backup {
            self.joining[node] = None;
            return;
        }
        match t.sync {
            SyncState::Joining => match self.joining[node] {
                Some((_, epoch)) if epoch == t.epoch => {}
                _ => self.joining[node] = Some((at, t.epoch)),
            },
            SyncState::InSync | SyncState::Lagging => {
                if let Some((since, _)) = self.joining[node].take() {
                    self.judge_join(at, node, since, true);
                }
            }
            _ => self.joining[node] = None,
        }
    }

    /// Judges a join of node `node` begun at `since`, at `at`: `done` when it ended in
    /// sync, otherwise only a join already over its bound is a violation.
    fn judge_join(&mut self, at: Nanos, node: usize, since: Nanos, done: bool) {
        let Some(heal_at) = self.heal_at else { return };
        let took_ns = at.saturating_sub(since.max(heal_at));
        if done {
            self.joins_watched += 1;
            self.join_ns_max = self.join_ns_max.max(took_ns);
            let share = (took_ns as u128 * 1000 / u128::from(self.join_bound_ns.max(1))) as u64;
            self.join_bound_share_max = self.join_bound_share_max.max(share);
        }
        if took_ns > self.join_bound_ns {
            self.violation(
                Invariant::JoinTime,
                at,
                format!(
                    "node {node} joined for {:.3} ms after healing{}, above the bound of {:.3} ms",
                    took_ns as f64 / 1e6,
                    if done { "" } else { " and is not in sync yet" },
                    self.join_bound_ns as f64 / 1e6
                ),
            );
        }
    }

    /// The end of the run: a join still under way must not be over its bound already.
    pub(super) fn finish_joins(&mut self, at: Nanos) {
        for node in 0..2 {
            if let Some((since, _)) = self.joining[node].take() {
                self.judge_join(at, node, since, false);
            }
        }
    }
}
