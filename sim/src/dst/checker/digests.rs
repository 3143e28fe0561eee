//! Invariant 4, digests agree: after the same frame in the same epoch every node has the
//! same application state digest and produced the same outputs.

use super::*;

impl Checker {
    /// Steps node `node` ran in one event, with the epoch each ran under.
    pub fn on_steps(&mut self, at: Nanos, node: usize, steps: &[(u64, Step)]) {
        if !steps.is_empty() && self.holds_state[node].is_none() {
            self.holds_state[node] = Some(at);
        }
        let incarnation = self.incarnation[node];
        for &(epoch, step) in steps {
            // What the application produced, for the emits to come (a step run again,
            // after a resync, replaces the older one).
            for (index, &hash) in step.output_hashes().iter().enumerate() {
                self.produced.insert((step.frame, node, index as u8), hash);
            }
            if self.produced.len() > PRODUCED_MAX {
                for _ in 0..PRODUCED_MAX / 2 {
                    self.produced.pop_first();
                }
            }
            let outputs_hash = step
                .output_hashes()
                .iter()
                .fold(fnv64(&[step.outputs]), |h, &o| h.rotate_left(5) ^ o);
            let range = self
                .ran_range
                .entry((node, incarnation))
                .or_insert((step.frame, step.frame));
            range.0 = range.0.min(step.frame);
            range.1 = range.1.max(step.frame);
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
}
