//! The output path (issue 22): the plant network between the nodes and the sink may lose,
//! duplicate, reorder and delay outputs, and be cut for a while. With such a path the
//! node's side of an output is judged when it is emitted ([`Checker::on_emit_sent`]) and
//! the sink's when a copy arrives ([`Checker::on_sink_offer`]).
//!
//! - **Levels heal** (invariant 14, with the refresh on): once the pair converged after the
//!   faults healed (the path healed with them), the sink holds, per key, a value at least
//!   as new as each level the primary emitted, within the refresh's bound
//!   (`runner::level_heal_bound_ns`) from when that level went out or from convergence,
//!   whichever is later, while that primary leads and the sink follows its epoch.
//! - **Lost by the network** ([`Exceptions::lost_network`]): a committed output never
//!   accepted, no copy of which passed the sink's fence, of which the path lost a copy (loss,
//!   an outage) or brought one after a higher epoch had passed the fence although none had
//!   when the copy went out (the path reordered it across a takeover); other copies, if
//!   any, were a deposed primary's, stale by design. Without acknowledgements nothing repairs an
//!   event lost so; it is counted, not a violation. Anything else the sink did is judged
//!   as on a perfect path.

use super::{Checker, Invariant};
use crate::dst::clock::Nanos;
use crate::dst::sink::Verdict;
use twinloop::Output;

/// What became of the copies of one output identity on the path.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct PathCopies {
    /// Datagrams sent.
    sent: u32,
    /// A copy reached the sink and passed its fence.
    passed: bool,
    /// Copies the path lost, or brought after a higher epoch passed the fence although
    /// none had when the copy went out.
    hit: u32,
    /// The sink's fence when the last copy went out.
    fence_at_send: u64,
}

/// A level a primary emitted that the sink does not hold yet.
#[derive(Debug, Clone, Copy)]
pub(super) struct LevelWait {
    node: usize,
    epoch: u64,
    id: (u64, u8),
    since: Nanos,
}

impl Checker {
    /// The run's output path: `faulty` when it is not perfect; `level_bound_ns` is the
    /// refresh's healing bound (`None`: the refresh is off).
    pub fn on_output_path(&mut self, faulty: bool, level_bound_ns: Option<Nanos>) {
        self.path_faulty = faulty;
        self.level_refresh = level_bound_ns.is_some();
        self.level_bound_ns = level_bound_ns.filter(|_| faulty);
    }

    /// The pair converged after the faults (the output path's included) healed: levels
    /// are judged from now on.
    pub fn on_output_path_healed(&mut self, at: Nanos) {
        self.path_healed_at.get_or_insert(at);
    }

    /// Node `node` emitted `output` onto the output path: the node's side of
    /// [`Checker::on_emit`].
    pub fn on_emit_sent(&mut self, at: Nanos, node: usize, output: &Output) {
        self.check_emit_leader(at, node, output);
        self.record_emission(at, output.epoch);
        let hash = self.check_emit_produced(at, node, output);
        self.check_emit_copies(at, node, output, hash);
        self.check_resend(at, node, output);
        self.end_pending_failovers(at, node, output.epoch);
        // Invariant 16 counts from the emit: an event every copy of which the path lost
        // never reaches `on_emit`, and was not judged before 2026-11-27.
        self.record_event_emitted(at, node, output);
        let id = (output.frame, output.index);
        let copies = self.path_copies.entry(id).or_default();
        // With acks an event goes out again until acked: its copies went out under
        // rising fences, and a later re-send must not make the first copy's stale
        // arrival, overtaken by a takeover on the path, look like the sink's choice
        // (`dst --acks` seed 320: a re-send under the new fence, 40 ms before the first
        // copy arrived). The fence at the first copy is the lowest (fences only rise).
        let resent = self.acks && output.kind == twinloop::OutputKind::Event && copies.sent > 0;
        copies.sent = copies.sent.saturating_add(1);
        if !resent {
            copies.fence_at_send = self.sink_fence;
        }
        if self.level_bound_ns.is_none() || self.primary_now[node] != Some(output.epoch) {
            return;
        }
        let Some(key) = output.kind.level_key() else {
            return;
        };
        if self.sink_levels.get(&key).is_some_and(|&held| held >= id) {
            return;
        }
        let wait = LevelWait {
            node,
            epoch: output.epoch,
            id,
            since: at,
        };
        match self.level_waits.get(&key) {
            // A copy of the level waited for (a refresh): it waits since the first.
            Some(w) if w.id >= id && w.epoch == output.epoch => {}
            _ => {
                self.level_waits.insert(key, wait);
            }
        }
    }

    /// A copy of `output` was lost on the path (random loss, an outage).
    pub fn on_path_dropped(&mut self, output: &Output) {
        self.path_lost += 1;
        if let Some(copies) = self.path_copies.get_mut(&(output.frame, output.index)) {
            copies.hit = copies.hit.saturating_add(1);
        }
    }

    /// A copy of `output`, emitted by `node`, reached the sink, which answered `verdict`:
    /// the sink's side of [`Checker::on_emit`].
    pub fn on_sink_offer(&mut self, at: Nanos, node: usize, output: &Output, verdict: Verdict) {
        let id = (output.frame, output.index);
        if self.acked && verdict == Verdict::Stale {
            // Released after the sink followed a higher epoch (`acked.rs`, invariant 3).
            self.acked_stale.insert(id);
        }
        let fence_at_send = self.path_copies.get(&id).map_or(0, |c| c.fence_at_send);
        let overtaken = verdict == Verdict::Stale && output.epoch >= fence_at_send;
        if let Some(copies) = self.path_copies.get_mut(&id) {
            copies.passed |= !matches!(verdict, Verdict::Stale | Verdict::Invalid);
            copies.hit = copies.hit.saturating_add(u32::from(overtaken));
        }
        // Below the fence now, not when it went out: the path reordered it behind a higher
        // epoch's output (invariant 3 counts the identity lost by the network).
        self.path_overtaken += u64::from(overtaken);
        self.check_sink_fence(at, output, verdict);
        self.check_sink_once(at, node, output, verdict);
        self.check_sink_duplicate(at, output, verdict);
        self.check_sink_levels(at, node, output, verdict);
        if let (Some(key), Verdict::Accepted | Verdict::Duplicate) = (output.kind.level_key(), verdict) {
            if let Some(w) = self.level_waits.get(&key).copied().filter(|w| w.id <= id) {
                if let Some(healed_at) = self.path_healed_at {
                    let waited = at.saturating_sub(w.since.max(healed_at));
                    self.level_heal_ns_max = self.level_heal_ns_max.max(waited);
                }
                self.level_waits.remove(&key);
            }
        }
    }

    /// After every event: once the path healed and the pair converged, every level waited
    /// for is at the sink within the refresh's bound, while its primary leads and the sink
    /// follows its epoch.
    pub fn check_level_staleness(&mut self, now: Nanos) {
        let (Some(bound_ns), Some(healed_at)) = (self.level_bound_ns, self.path_healed_at) else {
            return;
        };
        if self.level_waits.is_empty() {
            return;
        }
        let fence = self.sink_fence;
        let primary_now = self.primary_now;
        self.level_waits
            .retain(|_, w| primary_now[w.node] == Some(w.epoch) && w.epoch >= fence);
        let late: Vec<(u16, LevelWait)> = self
            .level_waits
            .iter()
            .filter(|(_, w)| now > w.since.max(healed_at) + bound_ns)
            .map(|(&k, &w)| (k, w))
            .collect();
        for (key, w) in late {
            self.level_waits.remove(&key);
            let held = self.sink_levels.get(&key).copied();
            self.violation(
                Invariant::Levels,
                now,
                format!(
                    "level key {key}: node {} (primary of epoch {}) emitted {:?} at {:.3} ms; {:.3} ms after the output path healed the sink still holds {held:?} (bound {:.3} ms)",
                    w.node,
                    twinloop::EpochText(w.epoch),
                    w.id,
                    w.since as f64 / 1e6,
                    (now - healed_at) as f64 / 1e6,
                    bound_ns as f64 / 1e6
                ),
            );
        }
    }

    /// Invariant 3's excuse on a faulty path: no copy of `id` passed the sink's fence, and
    /// the path lost or overtook at least one (the others, if any, came from a deposed
    /// primary and were stale by design).
    pub(super) fn lost_by_network(&self, id: (u64, u8)) -> bool {
        self.path_faulty && self.path_copies.get(&id).is_some_and(|c| !c.passed && c.hit > 0)
    }
}
