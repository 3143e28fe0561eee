//! Invariant 1, one primary per epoch and fencing at the sink: who leads an epoch, the
//! epochs each node persisted and reserved, outputs only under an epoch led and made
//! durable, and the sink's fence.

use super::*;

impl Checker {
    /// Node `node` persisted `epoch` (it survives crashes). Persisted epochs strictly
    /// increase: a node that persisted an epoch again (or a lower one) could lead it twice.
    pub fn on_persist(&mut self, at: Nanos, node: usize, epoch: u64) {
        if epoch <= self.persisted[node] {
            self.violation(
                Invariant::OnePrimaryPerEpoch,
                at,
                format!(
                    "node {node} persisted epoch {epoch}, not above {} persisted before",
                    twinloop::EpochText(self.persisted[node]),
                    epoch = twinloop::EpochText(epoch)
                ),
            );
        }
        self.persisted[node] = self.persisted[node].max(epoch);
    }

    /// Node `node` reserved `epoch` (it survives crashes; the node may lead it without
    /// persisting it again). Reservations strictly increase, like persisted epochs.
    pub fn on_reserve(&mut self, at: Nanos, node: usize, epoch: u64) {
        if epoch <= self.reserved[node] {
            self.violation(
                Invariant::OnePrimaryPerEpoch,
                at,
                format!(
                    "node {node} reserved epoch {epoch}, not above {} reserved before",
                    twinloop::EpochText(self.reserved[node]),
                    epoch = twinloop::EpochText(epoch)
                ),
            );
        }
        self.reserved[node] = self.reserved[node].max(epoch);
    }

    /// A new tenure of `node` as primary of `t.epoch`: its id is the epoch's low byte, its
    /// epochs strictly increase, and no other node incarnation led that epoch.
    pub(super) fn check_new_leader(&mut self, at: Nanos, node: usize, t: &Transition) {
        let incarnation = self.incarnation[node];
        let id = node as u8 + 1;
        if Epoch(t.epoch).node_id() != id {
            self.violation(
                Invariant::OnePrimaryPerEpoch,
                at,
                format!(
                    "node {node} leads epoch {} whose low byte is not its id {id}",
                    twinloop::EpochText(t.epoch)
                ),
            );
        }
        if t.epoch <= self.epoch_led_max[node] {
            self.violation(
                Invariant::OnePrimaryPerEpoch,
                at,
                format!(
                    "node {node} leads epoch {}, not above {} which it led before",
                    twinloop::EpochText(t.epoch),
                    twinloop::EpochText(self.epoch_led_max[node])
                ),
            );
        }
        self.epoch_led_max[node] = self.epoch_led_max[node].max(t.epoch);
        match self.leaders.get(&t.epoch) {
            Some(&(n, i)) if (n, i) != (node, incarnation) => self.violation(
                Invariant::OnePrimaryPerEpoch,
                at,
                format!(
                    "epoch {} led by node {node} (incarnation {incarnation}) and node {n} (incarnation {i})",
                    twinloop::EpochText(t.epoch)
                ),
            ),
            _ => {
                self.leaders.insert(t.epoch, (node, incarnation));
            }
        }
    }

    /// Only the leader of an epoch emits under it, and only once it is persisted.
    pub(super) fn check_emit_leader(&mut self, at: Nanos, node: usize, output: &Output) {
        let incarnation = self.incarnation[node];
        let epoch = output.epoch;
        let id = (output.frame, output.index);
        if self.leaders.get(&epoch) != Some(&(node, incarnation)) || self.primary_now[node] != Some(epoch) {
            self.violation(
                Invariant::OnePrimaryPerEpoch,
                at,
                format!(
                    "node {node} emitted {id:?} under epoch {epoch}, which it does not lead",
                    epoch = twinloop::EpochText(epoch)
                ),
            );
        }
        let durable = self.persisted[node].max(self.reserved[node]);
        if durable < epoch {
            self.violation(
                Invariant::OnePrimaryPerEpoch,
                at,
                format!(
                    "node {node} emitted under epoch {epoch} before persisting it (persisted {durable})",
                    epoch = twinloop::EpochText(epoch),
                    durable = twinloop::EpochText(durable)
                ),
            );
        }
    }

    /// The sink lets no epoch below its fence through and rejects as stale only those;
    /// any output that passed raises the fence, a copy included.
    pub(super) fn check_sink_fence(&mut self, at: Nanos, output: &Output, verdict: Verdict) {
        let epoch = output.epoch;
        let id = (output.frame, output.index);
        if verdict != Verdict::Stale && epoch < self.sink_fence {
            self.violation(
                Invariant::OnePrimaryPerEpoch,
                at,
                format!(
                    "sink let {id:?} under epoch {epoch} through its fence {} ({verdict:?})",
                    twinloop::EpochText(self.sink_fence),
                    epoch = twinloop::EpochText(epoch)
                ),
            );
        }
        if verdict == Verdict::Stale && epoch >= self.sink_fence {
            self.violation(
                Invariant::NothingLost,
                at,
                format!(
                    "sink rejected {id:?} under epoch {epoch} as stale; its fence was {}",
                    twinloop::EpochText(self.sink_fence),
                    epoch = twinloop::EpochText(epoch)
                ),
            );
        }
        if !matches!(verdict, Verdict::Stale | Verdict::Invalid) {
            // Any output that passed the fence raises it, a copy included.
            self.sink_fence = self.sink_fence.max(epoch);
        }
    }
}
