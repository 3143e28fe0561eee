//! The actuator sink: the plant-side I/O gateway that receives every output either node
//! emits. It dedups by the output's identity `(frame, index)` and rejects any output whose
//! epoch is lower than the highest epoch it has accepted (a deposed primary), as
//! `docs/DECISIONS.md` specifies. With an epoch lease (`docs/PROTOCOL.md`, "The epoch
//! lease"), the highest epoch lapses when nothing was accepted for the lease, so that a
//! pair restarted below it is not rejected forever. The path from a node to the sink is modelled as
//! immediate and reliable: the design has no acknowledgement from the sink, so a lost
//! actuator datagram is outside what the runtime can repair.

use super::clock::Nanos;
use std::collections::BTreeMap;
use twinloop::digest::fnv64;
use twinloop::Output;

/// What the sink did with one output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// New identity, epoch not below the fence: passed to the actuator.
    Accepted,
    /// The identity was accepted before: dropped.
    Duplicate,
    /// Epoch below the highest accepted: a deposed primary, dropped.
    Stale,
}

/// An output the actuator received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    /// The epoch it carried.
    pub epoch: u64,
    /// FNV-1a of its payload.
    pub payload_hash: u64,
    /// The node that emitted it.
    pub node: usize,
    /// When it arrived.
    pub at: Nanos,
}

/// The actuator sink.
#[derive(Debug, Default, Clone)]
pub struct Sink {
    /// Accepted outputs by identity `(frame, index)`.
    pub accepted: BTreeMap<(u64, u8), Accepted>,
    /// The highest epoch accepted: outputs below it are rejected.
    pub epoch_fence: u64,
    /// Outputs offered, before dedup.
    pub raw: u64,
    /// Dropped as duplicates of an accepted identity.
    pub duplicates: u64,
    /// Duplicates whose content differed from the accepted copy.
    pub conflicts: u64,
    /// Rejected for a lower epoch.
    pub stale: u64,
    /// The epoch lease: after this long without accepting anything, the fence lapses.
    pub lease_ns: Option<Nanos>,
    /// When the sink last accepted an output.
    pub last_accepted_at: Option<Nanos>,
    /// Times the fence lapsed.
    pub lapses: u64,
}

impl Sink {
    /// A sink with an epoch lease, or without (`None`: strict fencing forever).
    pub fn with_lease(lease_ns: Option<Nanos>) -> Self {
        Sink {
            lease_ns,
            ..Sink::default()
        }
    }

    /// Lets the fence lapse when nothing was accepted for the lease; returns whether it
    /// did. Called before every offer.
    pub fn lapse_if_idle(&mut self, at: Nanos) -> bool {
        let (Some(lease_ns), Some(last)) = (self.lease_ns, self.last_accepted_at) else {
            return false;
        };
        if self.epoch_fence == 0 || at.saturating_sub(last) <= lease_ns {
            return false;
        }
        self.epoch_fence = 0;
        self.lapses += 1;
        true
    }

    /// Offers one output, emitted by `node` at `at`.
    pub fn offer(&mut self, at: Nanos, node: usize, output: &Output) -> Verdict {
        self.raw += 1;
        if output.epoch < self.epoch_fence {
            self.stale += 1;
            return Verdict::Stale;
        }
        let payload_hash = fnv64(&output.payload);
        let key = (output.frame, output.index);
        if let Some(first) = self.accepted.get(&key) {
            self.duplicates += 1;
            if first.payload_hash != payload_hash {
                self.conflicts += 1;
            }
            return Verdict::Duplicate;
        }
        self.epoch_fence = output.epoch;
        self.last_accepted_at = Some(at);
        self.accepted.insert(
            key,
            Accepted {
                epoch: output.epoch,
                payload_hash,
                node,
                at,
            },
        );
        Verdict::Accepted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(epoch: u64, frame: u64, index: u8, byte: u8) -> Output {
        Output {
            epoch,
            frame,
            index,
            payload: twinloop::OutputPayload::from_slice(&[byte]).unwrap_or_default(),
        }
    }

    #[test]
    fn sink_dedups_by_frame_and_index_across_epochs() {
        let mut s = Sink::default();
        assert_eq!(s.offer(0, 0, &output(0x101, 5, 0, 1)), Verdict::Accepted);
        assert_eq!(s.offer(1, 1, &output(0x202, 5, 0, 1)), Verdict::Duplicate);
        assert_eq!(s.offer(1, 1, &output(0x202, 5, 1, 1)), Verdict::Accepted);
        assert_eq!(s.duplicates, 1);
        assert_eq!(s.conflicts, 0);
        assert_eq!(s.accepted.len(), 2);
    }

    #[test]
    fn sink_rejects_epoch_below_highest_accepted() {
        let mut s = Sink::default();
        s.offer(0, 1, &output(0x202, 5, 0, 1));
        assert_eq!(s.offer(1, 0, &output(0x101, 6, 0, 1)), Verdict::Stale);
        assert_eq!(s.stale, 1);
        assert!(!s.accepted.contains_key(&(6, 0)));
    }

    #[test]
    fn sink_fence_lapses_after_the_lease_only() {
        let mut s = Sink::with_lease(Some(100));
        s.offer(0, 1, &output(0x202, 5, 0, 1));
        assert!(!s.lapse_if_idle(100));
        assert_eq!(s.offer(100, 0, &output(0x101, 6, 0, 1)), Verdict::Stale);
        assert!(s.lapse_if_idle(101));
        assert_eq!(s.offer(101, 0, &output(0x101, 6, 0, 1)), Verdict::Accepted);
        assert_eq!((s.lapses, s.epoch_fence), (1, 0x101));
        let mut strict = Sink::default();
        strict.offer(0, 1, &output(0x202, 5, 0, 1));
        assert!(!strict.lapse_if_idle(1_000_000));
    }

    #[test]
    fn sink_counts_conflicting_duplicates() {
        let mut s = Sink::default();
        s.offer(0, 0, &output(0x101, 5, 0, 1));
        s.offer(0, 1, &output(0x202, 5, 0, 2));
        assert_eq!(s.conflicts, 1);
        assert_eq!(s.accepted[&(5, 0)].payload_hash, fnv64(&[1]));
    }
}
