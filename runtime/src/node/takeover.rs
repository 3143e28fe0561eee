//! Takeover: the backup becomes primary in a new epoch, runs every frame the old primary
//! committed (dropping the outputs it reported sent), emits what it never reported sent,
//! and carries on with the frames in hand. The levels of that burst are collapsed to the
//! newest per key (`outputs.rs`).

use super::{Node, Reason};
use crate::app::App;

impl<A: App> Node<A> {
    pub(super) fn take_over(&mut self, reason: Reason) {
        debug_assert!(self.has_state(), "take_over without state");
        self.takeovers += 1;
        self.switchover = super::Switchover::Idle;
        self.become_primary(reason);
        if self.role != super::Role::Primary {
            // No epoch left to lead (alarmed in `become_primary`).
            return;
        }
        // The takeover's burst: the unsent set, the inherited frames and the frames in
        // hand. Its levels are held and collapsed to the newest per key (`outputs.rs`).
        self.levels_forget();
        self.collapse_to = self
            .frame_highest_received
            .max(self.commit_highest)
            .max(self.frame_last_run);
        self.emit_unsent();
        // The committed frames not yet run, then the frames in hand: `advance` runs them
        // (see `primary_run_frames`), as far as the action queue allows at a time.
    }
}
