//! Outputs: the primary emits, the backup holds. The backup keeps the seed's two sets:
//! outputs the primary reported sent that it has not produced yet (the commits above its
//! last run frame, in the ring) and outputs it produced that the primary did not report
//! sent (`unsent`). Matching entries cancel as the backup runs each committed frame.
//!
//! Levels and events (docs/GATEWAY.md, "Level and event outputs"): an event is kept and
//! replayed in order; of the levels of one key only the newest matters. So `unsent`
//! keeps at most one level per key, the newest, and none when a later output of that key
//! was reported sent; and a new primary holds back the levels of its takeover's burst —
//! the unsent set, the inherited frames it re-runs and the frames in hand when it took
//! over — and emits, once the burst is run, only the newest of each key that no later
//! output of the key (sent by the old primary or not) superseded. The plant is not driven
//! through a burst of values computed from inputs a detection window old, and never gets
//! an older value of a key after a newer one.
//!
//! Bounds: `unsent` holds `UNSENT_MAX` (64) outputs and the held levels
//! [`LEVELS_HELD_MAX`]; each output a frame produces scans one of them once, so a frame
//! costs at most `OUTPUTS_PER_FRAME_MAX × 64` comparisons, and nothing is allocated.

use super::{Action, Node, Output};
use crate::app::{App, OutputKind};

/// Levels a new primary holds back during its takeover's burst, one per key. With more
/// keys than this, the oldest held level is emitted early to make room (still before
/// any newer value of its key: the order holds, only the collapse is partial).
pub(super) const LEVELS_HELD_MAX: usize = 64;

impl<A: App> Node<A> {
    /// Emits the outbox of `frame`, except the outputs whose bit is set in `already_sent`.
    /// Within a takeover's burst (`frame <= collapse_to`) a level supersedes the held
    /// level of its key, sent or not, and is held itself when not sent.
    pub(super) fn emit_outbox(&mut self, frame: u64, already_sent: u32) {
        self.assert_may_emit();
        let collapsing = frame <= self.collapse_to;
        for index in 0..self.outbox.len() {
            let kind = self.outbox.kind(index);
            if collapsing {
                if let Some(key) = kind.level_key() {
                    self.levels_held.retain(|held| held.kind.level_key() != Some(key));
                }
            }
            let output = self.outbox_output(frame, index);
            if index < 32 && already_sent & (1 << index) != 0 {
                // Sent by the old primary: the refresh table still takes it (`refresh.rs`),
                // and with acks on it is re-sent unless an ack of it was heard (`acks.rs`).
                self.refresh_note(&output);
                self.acks_inherit(&output);
                continue;
            }
            if collapsing && kind.level_key().is_some() {
                self.level_hold(output);
            } else if self.acks_heard_of(&output) {
                // Acked already: the old primary sent it (`acks.rs`).
            } else {
                // Acked outputs: held until the backups acknowledged the frame (`release.rs`).
                self.release_or_hold(output);
            }
        }
    }

    /// Holds a level of the takeover's burst (its key's older one already dropped). When
    /// the table is full the oldest held level goes out now: nothing newer of its key
    /// has been emitted, so the order stays.
    fn level_hold(&mut self, output: Output) {
        if self.levels_held.is_full() {
            let mut oldest = self.levels_held.remove(0);
            oldest.epoch = self.epochs.current().0;
            self.push(Action::Emit(oldest));
        }
        // Cannot fail: a slot was freed above.
        let _ = self.levels_held.push(output);
    }

    /// New primary, before deciding frame `next` (or, with `next` = `None`, after its
    /// run of frames): once the takeover's burst is run, emits the levels held, oldest
    /// first. False when they are due but the action queue lacks room for them: `next`
    /// must then wait (a newer value of a held key must not go out first).
    pub(super) fn levels_flush(&mut self, next: Option<u64>) -> bool {
        if self.collapse_to == 0 {
            return true;
        }
        let done = match next {
            Some(next) => next > self.collapse_to,
            None => self.frame_last_run >= self.collapse_to,
        };
        if !done {
            return true;
        }
        if !self.room_for(self.levels_held.len()) {
            return false;
        }
        self.collapse_to = 0;
        let held = core::mem::take(&mut self.levels_held);
        for mut output in held {
            output.epoch = self.epochs.current().0;
            self.push(Action::Emit(output));
        }
        true
    }

    /// Only a primary emits, only in the epoch it led, and only with that epoch on disk
    /// (persisted, or reserved and about to be recorded as led): a sink takes its
    /// outputs, so a restart must start above it.
    fn assert_may_emit(&self) {
        assert!(
            self.role == super::Role::Primary && self.epochs.current_is_led() && self.epochs.current_durable(),
            "emitting as {:?} in epoch {:?}, not on disk",
            self.role,
            self.epochs.current()
        );
    }

    /// Backup: outputs the primary reported sent cancel; the others wait in `unsent` for
    /// a takeover. The set is bounded: when full, the oldest entry is dropped (it belongs
    /// to a frame far in the past, which the plant no longer needs). A level, sent or
    /// not, supersedes the unsent level of its key.
    pub(super) fn backup_hold_outputs(&mut self, frame: u64, sent_mask: u32) {
        for index in 0..self.outbox.len() {
            let kind = self.outbox.kind(index);
            if let Some(key) = kind.level_key() {
                self.unsent_drop_level(key);
            }
            if kind.level_key().is_some() && self.config.level_refresh_ms != 0 {
                // The refresh table follows the primary's, ready for a takeover.
                let output = self.outbox_output(frame, index);
                self.refresh_note(&output);
            }
            if kind == OutputKind::Event && self.config.ack_sinks != 0 {
                // With acks on, an event waits for its ack, sent or not (`acks.rs`).
                let output = self.outbox_output(frame, index);
                self.acks_hold(&output);
                continue;
            }
            if index < 32 && sent_mask & (1 << index) != 0 {
                continue;
            }
            // Acked release: the primary said every output up to `released_known` went out
            // (`Released` reached this node while it lagged behind those frames): its
            // commit's held bit is older news. 0 outside acked release.
            if frame <= self.release_known() {
                continue;
            }
            if self.unsent.is_full() {
                self.unsent.pop_front();
            }
            let output = self.outbox_output(frame, index);
            // Cannot fail: a slot was freed above.
            let _ = self.unsent.push_back(output);
        }
    }

    /// Drops the unsent level of `key` (at most one is held), keeping the order of the
    /// rest. One pass over at most `UNSENT_MAX` entries.
    fn unsent_drop_level(&mut self, key: u16) {
        for _ in 0..self.unsent.len() {
            if let Some(output) = self.unsent.pop_front() {
                if output.kind != (OutputKind::Level { key }) {
                    // Cannot fail: one was taken out just before.
                    let _ = self.unsent.push_back(output);
                }
            }
        }
    }

    /// New primary: emits what the old primary never reported sent, under the new epoch;
    /// within a takeover's burst the levels are held (see [`Node::emit_outbox`]).
    pub(super) fn emit_unsent(&mut self) {
        self.assert_may_emit();
        // Every event no ack was heard of is re-sent, the first ones at the next wake-up.
        self.acks_take_over();
        // Acked outputs: said, those the old primary may have released (`release.rs`).
        self.release_note_uncertain();
        while let Some(mut output) = self.unsent.pop_front() {
            output.epoch = self.epochs.current().0;
            if self.collapse_to != 0 && output.kind.level_key().is_some() {
                self.level_hold(output);
            } else {
                self.release_or_hold(output);
            }
        }
    }

    /// Forgets a takeover's burst: the node no longer leads (what it held goes with the
    /// rest of the primary's unsent work), or a new one begins.
    pub(super) fn levels_forget(&mut self) {
        self.collapse_to = 0;
        self.levels_held.clear();
    }

    /// Output `index` of the outbox of `frame`, under the current epoch.
    fn outbox_output(&self, frame: u64, index: usize) -> Output {
        Output {
            epoch: self.epochs.current().0,
            frame,
            index: index as u8,
            kind: self.outbox.kind(index),
            payload: self.outbox.as_slice()[index].clone(),
        }
    }
}
