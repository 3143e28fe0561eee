//! The actuator sink: the plant-side I/O gateway that receives every output either node
//! emits. The decision is the library's reference gateway's ([`twinloop::Gateway`],
//! docs/PROTOCOL.md "What a sink must do": dedup by `(frame, index)` over a window of the
//! nodes' `frames_buffered` frames, an epoch fence raised by every output that passes it,
//! a copy included, and optionally the epoch lease); this records what it decided for the
//! checkers and the report. The path from a node to the sink is modelled as immediate and
//! reliable. With acks on (`--acks`, issue 22) the sink acknowledges every event it
//! accepted or dropped as a duplicate, as `twinloop::Gateway` does: one ack datagram
//! (io kind 4) after each output, back to the node that sent it through the simulated
//! network (`Event::Ack`).

use super::clock::Nanos;
use core::time::Duration;
use std::collections::BTreeMap;
use twinloop::digest::fnv64;
use twinloop::gateway::{Gateway, GatewayError};
use twinloop::{Instant, Output};

/// What the sink did with one output: the gateway's decision.
pub use twinloop::gateway::Decision as Verdict;

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

/// The actuator sink: a gateway and the record of what it decided.
#[derive(Debug, Clone)]
pub struct Sink {
    /// The gateway that decides.
    pub gateway: Gateway,
    /// Accepted outputs by identity `(frame, index)`.
    pub accepted: BTreeMap<(u64, u8), Accepted>,
    /// Outputs offered, before dedup.
    pub raw: u64,
    /// Dropped as copies of an accepted identity, conflicting ones included.
    pub duplicates: u64,
    /// Copies whose content differed from the accepted one.
    pub conflicts: u64,
    /// Rejected for an epoch below the fence.
    pub stale: u64,
    /// Rejected as older than the dedup window (rare: after a takeover by a node whose
    /// input lagged, or a cold start; PROTOCOL.md, "The dedup window").
    pub too_old: u64,
    /// Times the fence lapsed (its epoch lease ran out).
    pub lapses: u64,
    /// Levels refused as older than their key's newest accepted one.
    pub superseded: u64,
    /// Acknowledges events (`--acks`).
    pub acks: bool,
}

impl Default for Sink {
    /// A strict sink (no lease) with the default window of 1024 frames.
    fn default() -> Self {
        Sink::new(1024, None).expect("a window in range")
    }
}

impl Sink {
    /// A sink keeping the ids of `window_frames` frames, with an epoch lease or without
    /// (`None`: strict fencing forever).
    pub fn new(window_frames: u64, lease_ns: Option<Nanos>) -> Result<Self, GatewayError> {
        Ok(Sink {
            gateway: Gateway::new(window_frames, lease_ns.map(Duration::from_nanos))?,
            accepted: BTreeMap::new(),
            raw: 0,
            duplicates: 0,
            conflicts: 0,
            stale: 0,
            too_old: 0,
            lapses: 0,
            superseded: 0,
            acks: false,
        })
    }

    /// Offers one output, emitted by `node` at `at`; returns the gateway's decision and
    /// whether its fence lapsed on the way (the lease ran out).
    pub fn offer(&mut self, at: Nanos, node: usize, output: &Output) -> (Verdict, bool) {
        self.raw += 1;
        let lapses = self.gateway.counters().lapses;
        let verdict = if self.acks {
            // The node's index is the ack's destination (`Sink::next_ack`).
            self.gateway.offer_from(
                Instant::from_nanos(at),
                node as u8,
                output.epoch,
                output.frame,
                output.index,
                output.kind,
                &output.payload,
            )
        } else {
            self.gateway.offer_output(Instant::from_nanos(at), output)
        };
        let lapsed = self.gateway.counters().lapses > lapses;
        self.lapses += u64::from(lapsed);
        match verdict {
            Verdict::Accepted => {
                self.accepted.insert(
                    (output.frame, output.index),
                    Accepted {
                        epoch: output.epoch,
                        payload_hash: fnv64(&output.payload),
                        node,
                        at,
                    },
                );
            }
            Verdict::Duplicate | Verdict::Conflict => {
                self.duplicates += 1;
                self.conflicts += u64::from(verdict == Verdict::Conflict);
            }
            Verdict::Stale => self.stale += 1,
            Verdict::TooOld => self.too_old += 1,
            Verdict::Invalid => {}
            Verdict::Superseded => self.superseded += 1,
        }
        (verdict, lapsed)
    }

    /// The next ack datagram, and the node it goes to: the gateway's, once per output
    /// offered (`None`: acks off, or nothing to ack).
    pub fn next_ack(&mut self) -> Option<(usize, Vec<u8>)> {
        if !self.acks {
            return None;
        }
        let mut buf = [0u8; twinloop::io_protocol::ACK_DATAGRAM_MAX];
        let (to, len) = self.gateway.encode_ack(None, &mut buf)?;
        Some((usize::from(to), buf[..len].to_vec()))
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
            kind: twinloop::OutputKind::Event,
            payload: twinloop::OutputPayload::from_slice(&[byte]).unwrap_or_default(),
        }
    }

    fn verdict(s: &mut Sink, at: Nanos, node: usize, o: Output) -> Verdict {
        s.offer(at, node, &o).0
    }

    #[test]
    fn sink_dedups_by_frame_and_index_across_epochs() {
        let mut s = Sink::default();
        assert_eq!(verdict(&mut s, 0, 0, output(0x101, 5, 0, 1)), Verdict::Accepted);
        assert_eq!(verdict(&mut s, 1, 1, output(0x202, 5, 0, 1)), Verdict::Duplicate);
        assert_eq!(verdict(&mut s, 1, 1, output(0x202, 5, 1, 1)), Verdict::Accepted);
        assert_eq!(s.duplicates, 1);
        assert_eq!(s.conflicts, 0);
        assert_eq!(s.accepted.len(), 2);
    }

    #[test]
    fn sink_rejects_epoch_below_highest_accepted() {
        let mut s = Sink::default();
        s.offer(0, 1, &output(0x202, 5, 0, 1));
        assert_eq!(verdict(&mut s, 1, 0, output(0x101, 6, 0, 1)), Verdict::Stale);
        assert_eq!(s.stale, 1);
        assert!(!s.accepted.contains_key(&(6, 0)));
    }

    #[test]
    fn sink_duplicate_of_a_higher_epoch_fences_the_old_primary() {
        // Before 2026-11-26 this sink raised its fence on acceptance only: the old
        // primary's next output was accepted after the new primary's copy.
        let mut s = Sink::default();
        s.offer(0, 0, &output(0x101, 10, 0, 1));
        assert_eq!(verdict(&mut s, 1, 1, output(0x202, 10, 0, 1)), Verdict::Duplicate);
        assert_eq!(verdict(&mut s, 2, 0, output(0x101, 11, 0, 2)), Verdict::Stale);
        assert!(!s.accepted.contains_key(&(11, 0)));
    }

    #[test]
    fn sink_fence_lapses_after_the_lease_only() {
        let mut s = Sink::new(1024, Some(100)).unwrap();
        s.offer(0, 1, &output(0x202, 5, 0, 1));
        assert_eq!(s.offer(100, 0, &output(0x101, 6, 0, 1)), (Verdict::Stale, false));
        assert_eq!(s.offer(101, 0, &output(0x101, 6, 0, 1)), (Verdict::Accepted, true));
        assert_eq!((s.lapses, s.gateway.fence()), (1, 0x101));
        let mut strict = Sink::default();
        strict.offer(0, 1, &output(0x202, 5, 0, 1));
        assert_eq!(
            strict.offer(1_000_000_000_000, 0, &output(0x101, 6, 0, 1)).0,
            Verdict::Stale
        );
    }

    #[test]
    fn sink_counts_conflicting_duplicates() {
        let mut s = Sink::default();
        s.offer(0, 0, &output(0x101, 5, 0, 1));
        assert_eq!(verdict(&mut s, 0, 1, output(0x202, 5, 0, 2)), Verdict::Conflict);
        assert_eq!((s.duplicates, s.conflicts), (1, 1));
        assert_eq!(s.accepted[&(5, 0)].payload_hash, fnv64(&[1]));
    }

    #[test]
    fn sink_window_of_the_ring_rejects_older_copies_as_too_old() {
        let mut s = Sink::new(64, None).unwrap();
        s.offer(0, 0, &output(0x101, 100, 0, 1));
        assert_eq!(verdict(&mut s, 1, 1, output(0x202, 36, 0, 1)), Verdict::TooOld);
        assert_eq!(verdict(&mut s, 1, 1, output(0x202, 37, 0, 1)), Verdict::Accepted);
        assert_eq!(s.too_old, 1);
    }
}
