//! Invariant 25, a commit reports sent only what was sent (issue 21, added 2026-11-27):
//! a bit set in a `Ran` commit's `sent_mask` tells every backup that the output left, so a
//! takeover drops it (invariant 9 holds the new primary to exactly that). A primary that
//! reports an output sent while it still holds it — acked release marking only some of a
//! frame's held outputs (mutant `release.rs:202:41`, `<<` → `>>`: only output 0 held in the
//! mask) — passes invariants 3 and 9 whenever it lives long enough to release them, and
//! loses them when it dies before: the nothing-lost check excuses outputs a dead primary
//! held (`acked_never_released`), as it must for a history that parted. So the report is
//! judged where it is made: at every commit a node puts on the wire (or keeps as a lone
//! primary, `Action::CommitHeld`), each *event* whose bit is set must have been emitted by
//! some node before (this node in this event or earlier, or the old primary whose commit
//! reported it sent). Levels are left out: a takeover's burst holds them, reported sent,
//! until the burst's newest goes out (`outputs.rs`, `level_hold`), and invariant 14 judges
//! their values at the sink.

use super::*;

/// Emitted identities remembered for invariant 25; beyond it the oldest half is dropped
/// and commits of frames below what was dropped are not judged.
pub const EMITTED_MAX: usize = 1 << 20;

impl Checker {
    /// Some node emitted `output` (before the output path: what the node sent).
    pub fn on_emitted(&mut self, output: &Output) {
        self.emitted.insert((output.frame, output.index));
        if self.emitted.len() > EMITTED_MAX {
            for _ in 0..EMITTED_MAX / 2 {
                if let Some((frame, _)) = self.emitted.pop_first() {
                    self.emitted_floor = self.emitted_floor.max(frame + 1);
                }
            }
        }
    }

    /// Node `node` committed `commit` in `epoch`: every event its `sent_mask` reports sent
    /// left some node before.
    pub(super) fn check_sent_reported(&mut self, at: Nanos, node: usize, epoch: u64, commit: &Commit) {
        let CommitKind::Ran { outputs, sent_mask, .. } = commit.kind else {
            return;
        };
        if commit.frame < self.emitted_floor {
            return;
        }
        for index in 0..outputs.min(32) {
            let id = (commit.frame, index);
            if sent_mask & (1 << index) == 0
                || self.level_key(id).is_some()
                // Its kind is known from the node's own step of the frame (dropped when old).
                || !self.produced.contains_key(&(commit.frame, node, index))
                || self.emitted.contains(&id)
            {
                continue;
            }
            self.violation(
                Invariant::SentReported,
                at,
                format!(
                    "node {node} committed frame {} in epoch {} reporting event {index} sent, and no node had emitted it",
                    commit.frame,
                    twinloop::EpochText(epoch)
                ),
            );
        }
    }
}
