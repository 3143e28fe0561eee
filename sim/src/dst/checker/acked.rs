//! Invariant 17, acked outputs (`--acked`, issue 16): with `[outputs] release = "acked"`
//! no output id leaves two primaries — nothing reaches the sink twice across a takeover,
//! before any dedup (the output path's own duplicated datagrams aside: they are the
//! plant network's, not a node's). Judged at each emit, against every earlier emit of the
//! id under another epoch. Two copies are allowed, and counted, only where the design
//! says a sink may get one twice (docs/SYNC-PROTOCOL.md, "Acked outputs"):
//! - the earlier or the later copy left *unguarded* (the emitting primary had no backup
//!   in sync, or held it for its backup window: its status counter rose in that event),
//!   as in immediate mode;
//! - the later copy is one its new primary reported at its takeover as possibly released
//!   by the old one (`Notice::OutputsUncertain` covering its frame, in its epoch).
//!
//! With `--acks` on too, events are re-sent until acknowledged by design: only levels
//! are judged then.

use super::*;

impl Checker {
    /// At the end of the run: node `node`, a primary, still holds outputs for its
    /// backups' acks, from frame `from` on (they leave within a round trip; the run ends
    /// first).
    pub fn on_acked_held_at_end(&mut self, node: usize, from: u64) {
        self.acked_held_end.push((node, from));
    }

    /// Node `node` stopped leading `epoch` (demoted, crashed) holding the outputs of
    /// frames `first..=last` for its backups' acks: it never releases them; a successor
    /// that had their commits sends them, and a history that parted before them (a
    /// partition, the backup short of their commits) decides those frames itself.
    pub fn on_acked_never_released(&mut self, node: usize, epoch: u64, first: u64, last: u64) {
        self.acked_never_released.push((node, epoch, first, last));
    }

    /// The output of `frame` committed by `node` in `epoch` was held there and never
    /// released (see `on_acked_never_released`).
    pub(super) fn acked_held_by(&self, node: usize, epoch: u64, frame: u64) -> bool {
        self.acked
            && self
                .acked_never_released
                .iter()
                .any(|&(n, e, first, last)| n == node && e == epoch && (first..=last).contains(&frame))
    }

    /// Frame `frame`'s outputs were still held by a primary at the end of the run.
    pub(super) fn acked_held_at_end(&self, frame: u64) -> bool {
        self.acked && self.acked_held_end.iter().any(|&(_, from)| frame >= from)
    }

    /// Node `node` said at its takeover, leading `epoch`, that the old primary may have
    /// released the outputs of frames `first..=last` it sends.
    pub fn on_outputs_uncertain(&mut self, node: usize, epoch: u64, first: u64, last: u64) {
        self.acked_uncertain.push((node, epoch, first, last));
    }

    /// Node `node` emitted `output`; `unguarded`: its primary released some output in
    /// that event without every in-sync backup's ack.
    pub fn check_acked_once(&mut self, at: Nanos, node: usize, output: &Output, unguarded: bool) {
        if !self.acked || (self.acks && output.kind == twinloop::OutputKind::Event) {
            return;
        }
        let id = (output.frame, output.index);
        let Some(&(epoch, node_first, unguarded_first)) = self.acked_emitted.get(&id) else {
            self.acked_emitted.insert(id, (output.epoch, node, unguarded));
            return;
        };
        if epoch == output.epoch {
            // Its own copy (invariant 2 judges a second one in an epoch).
            return;
        }
        if unguarded || unguarded_first {
            self.exceptions.acked_unguarded += 1;
            return;
        }
        let uncertain = self
            .acked_uncertain
            .iter()
            .any(|&(n, e, first, last)| n == node && e == output.epoch && (first..=last).contains(&output.frame));
        if uncertain {
            self.exceptions.acked_uncertain += 1;
            return;
        }
        self.violation(
            Invariant::AckedOnce,
            at,
            format!(
                "acked mode: output {id:?} emitted by node {node} under epoch {:#x} after node {node_first} emitted it under {epoch:#x}, both guarded by their backups' acks and not reported uncertain",
                output.epoch
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(epoch: u64, frame: u64) -> Output {
        Output {
            epoch,
            frame,
            index: 0,
            kind: twinloop::OutputKind::Event,
            payload: twinloop::OutputPayload::from_slice(&[1]).unwrap_or_default(),
        }
    }

    fn acked() -> Checker {
        Checker {
            acked: true,
            ..Checker::default()
        }
    }

    /// Two primaries emit one id, both guarded: invariant 17.
    #[test]
    fn acked_emit_under_two_epochs_guarded_violates_17() {
        let mut c = acked();
        c.check_acked_once(1, 0, &output(0x101, 5), false);
        c.check_acked_once(2, 1, &output(0x202, 5), false);
        assert_eq!(c.violations().len(), 1);
        assert_eq!(c.violations()[0].invariant, Invariant::AckedOnce);
    }

    /// Allowed and counted: a copy left unguarded, or the new primary said it uncertain;
    /// a second copy in one epoch is invariant 2's to judge; off without `--acked`.
    #[test]
    fn acked_emit_twice_unguarded_or_uncertain_counted_not_violations() {
        let mut c = acked();
        c.check_acked_once(1, 0, &output(0x101, 5), true);
        c.check_acked_once(2, 1, &output(0x202, 5), false);
        c.on_outputs_uncertain(1, 0x202, 6, 7);
        c.check_acked_once(3, 0, &output(0x101, 7), false);
        c.check_acked_once(4, 1, &output(0x202, 7), false);
        c.check_acked_once(5, 1, &output(0x202, 7), false);
        assert!(c.violations().is_empty(), "{:?}", c.violations());
        // Each copy counted (the third is judged against the first emission too).
        assert_eq!((c.exceptions.acked_unguarded, c.exceptions.acked_uncertain), (1, 2));
        let mut off = Checker::default();
        off.check_acked_once(1, 0, &output(0x101, 5), false);
        off.check_acked_once(2, 1, &output(0x202, 5), false);
        assert!(off.violations().is_empty());
    }
}
