//! Invariant 4, digests agree: after the same frame in the same epoch every node has the
//! same application state digest and produced the same outputs.

use super::*;

impl Checker {
    /// Node `node` ran `step` under `epoch`: its digest and outputs agree with every other
    /// node's for the same epoch and frame.
    pub(super) fn check_digest(&mut self, at: Nanos, node: usize, epoch: u64, step: &Step) {
        let outputs_hash = step
            .output_hashes()
            .iter()
            .fold(fnv64(&[step.outputs]), |h, &o| h.rotate_left(5) ^ o);
        if self.diverge_explains(at, node, epoch, step, outputs_hash) {
            return;
        }
        match self.digests.get(&(epoch, step.frame)) {
            Some(&(digest, _, other)) if digest != step.digest => self.violation(
                Invariant::DigestAgreement,
                at,
                format!(
                    "epoch {epoch:#x} frame {}: node {other} digest {digest:#018x}, node {node} digest {:#018x}",
                    step.frame, step.digest
                ),
            ),
            Some(&(_, outputs, other)) if outputs != outputs_hash => self.violation(
                Invariant::DigestAgreement,
                at,
                format!(
                    "epoch {epoch} frame {}: nodes {other} and {node} produced different outputs",
                    step.frame,
                    epoch = twinloop::EpochText(epoch)
                ),
            ),
            Some(_) => {}
            None => {
                self.digests
                    .insert((epoch, step.frame), (step.digest, outputs_hash, node));
            }
        }
    }
}
