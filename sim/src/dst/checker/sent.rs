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
//! reported it sent): the copies invariant 2 records at every emit say which. Levels are left out: a takeover's burst holds them, reported sent,
//! until the burst's newest goes out (`outputs.rs`, `level_hold`), and invariant 14 judges
//! their values at the sink.

use super::*;

impl Checker {
    /// Node `node` committed `commit` in `epoch`: every event its `sent_mask` reports sent
    /// left some node before.
    pub(super) fn check_sent_reported(&mut self, at: Nanos, node: usize, epoch: u64, commit: &Commit) {
        let CommitKind::Ran { outputs, sent_mask, .. } = commit.kind else {
            return;
        };
        for index in 0..outputs.min(32) {
            let id = (commit.frame, index);
            if sent_mask & (1 << index) == 0
                || self.level_key(id).is_some()
                // Its kind is known from the node's own step of the frame (dropped when old).
                || !self.produced.contains_key(&(commit.frame, node, index))
                // Emitted by some node: every emit records its copies (invariant 2).
                || self.copies.contains_key(&id)
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
