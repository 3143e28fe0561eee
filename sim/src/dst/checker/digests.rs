//! Invariant 4, digests agree: after the same frame in the same epoch every node has the
//! same application state digest and produced the same outputs. And (since 2026-11-26)
//! a node runs a frame on a state it installed only if that state is, byte for byte, a
//! snapshot some node took: the application's digest need not cover every byte (the test
//! application's leaves its ballast out), so a transfer that installs a wrong byte would
//! otherwise go unseen until the byte changed an output.

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

    /// A node's application gave a snapshot whose bytes hash to `hash` (a transfer's).
    pub fn on_snapshot(&mut self, hash: u64) {
        self.snapshots.insert(hash);
    }

    /// Node `node`'s application restored bytes hashing to `hash`; judged at its next step
    /// (the core may still refuse the state: it then runs none on it).
    pub fn on_restored(&mut self, node: usize, hash: u64) {
        self.restored[node] = Some(hash);
    }

    /// Node `node` started (again): nothing restored.
    pub fn forget_restored(&mut self, node: usize) {
        self.restored[node] = None;
    }

    /// Node `node` runs a frame: if on a state it restored, that state was a snapshot.
    pub(super) fn check_installed(&mut self, at: Nanos, node: usize, steps: &[(u64, Step)]) {
        let Some(&(epoch, step)) = steps.first() else { return };
        let Some(hash) = self.restored[node].take() else { return };
        if !self.snapshots.contains(&hash) {
            self.violation(
                Invariant::DigestAgreement,
                at,
                format!(
                    "node {node} ran frame {} (epoch {}) on an installed state that no node snapshotted (bytes {hash:#018x})",
                    step.frame,
                    twinloop::EpochText(epoch)
                ),
            );
        }
    }
}
