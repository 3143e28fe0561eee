//! Outputs: the primary emits, the backup holds. The backup keeps the seed's two sets:
//! outputs the primary reported sent that it has not produced yet (the commits above its
//! last run frame, in the ring) and outputs it produced that the primary did not report
//! sent (`unsent`). Matching entries cancel as the backup runs each committed frame.

use super::{Action, Node, Output};
use crate::app::App;

impl<A: App> Node<A> {
    /// Emits the outbox of `frame`, except the outputs whose bit is set in `already_sent`.
    pub(super) fn emit_outbox(&mut self, frame: u64, already_sent: u32) {
        self.assert_may_emit();
        for index in 0..self.outbox.len() {
            if index < 32 && already_sent & (1 << index) != 0 {
                continue;
            }
            let output = Output {
                epoch: self.epochs.current().0,
                frame,
                index: index as u8,
                payload: self.outbox.as_slice()[index].clone(),
            };
            self.push(Action::Emit(output));
        }
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
    /// to a frame far in the past, which the plant no longer needs).
    pub(super) fn backup_hold_outputs(&mut self, frame: u64, sent_mask: u32) {
        for index in 0..self.outbox.len() {
            if index < 32 && sent_mask & (1 << index) != 0 {
                continue;
            }
            if self.unsent.is_full() {
                self.unsent.pop_front();
            }
            let output = Output {
                epoch: self.epochs.current().0,
                frame,
                index: index as u8,
                payload: self.outbox.as_slice()[index].clone(),
            };
            // Cannot fail: a slot was freed above.
            let _ = self.unsent.push_back(output);
        }
    }

    /// New primary: emits what the old primary never reported sent, under the new epoch.
    pub(super) fn emit_unsent(&mut self) {
        self.assert_may_emit();
        while let Some(mut output) = self.unsent.pop_front() {
            output.epoch = self.epochs.current().0;
            self.push(Action::Emit(output));
        }
    }
}
