//! The reference gateway: the one rule a plant-side actuator sink applies to the outputs
//! of a pair (docs/PROTOCOL.md, "What a sink must do"), with no I/O and time passed in.
//!
//! The simulator's sink, the harness's gateway, the runtime's test sink and the plant
//! example all take their accept-or-reject decision from [`Gateway::offer`], so the rule
//! the deterministic simulator checks is the one a production gateway written on this
//! library applies.
//!
//! # The rule
//!
//! For each output, with its epoch, frame, index and payload, at `now`:
//!
//! 0. an index above 15 or frame 0 is not an output a twinloop node sends:
//!    [`Decision::Invalid`], and nothing else changes;
//! 1. `epoch < fence`: [`Decision::Stale`] (a deposed primary is still talking), unless
//!    the gateway has an epoch lease and the fence is older than it (no output passed the
//!    fence for longer than the lease): then the fence **lapses** (counted) and the output
//!    goes on as if there were none, so that a pair restarted from nothing below the last
//!    epoch is followed rather than rejected forever;
//! 2. the output passed the fence: `fence = epoch` and the fence's age starts over — any
//!    valid output of a higher epoch proves that epoch exists, a copy included, so a new
//!    primary whose first outputs are re-sends fences the old one from its first datagram;
//! 3. `frame + window_frames ≤ frame_max` (the highest frame accepted): for an event,
//!    [`Decision::TooOld`] — the gateway no longer knows whether that id was delivered
//!    (with a window of at least the nodes' `frames_buffered`, only after a takeover by a
//!    node whose input lagged, or a cold start: PROTOCOL.md, "The dedup window"). A level
//!    is judged by its key instead, which the gateway never forgets: below the key's newest
//!    accepted id [`Decision::Superseded`], equal to it [`Decision::Duplicate`] (or
//!    [`Decision::Conflict`] for another payload), above it accepted (steps 5 and 6) without
//!    entering the window — so a level refreshed long after it last changed (issue 22,
//!    `outputs.level_refresh_ms`) still heals one the network lost;
//! 4. `(frame, index)` already accepted: [`Decision::Duplicate`] when the payload is the
//!    same, [`Decision::Conflict`] when it differs (two histories; never with a healthy
//!    pair); dropped either way, the first content stays;
//! 5. a level whose `(frame, index)` is below the newest accepted level of its key:
//!    [`Decision::Superseded`] — the actuator holds a newer value already, and an older
//!    one must never follow it (a takeover collapses unsent levels, but a datagram
//!    delayed on the network, or a sink fed by two nodes, can still bring one late);
//! 6. otherwise [`Decision::Accepted`]: drive the actuator; `frame_max = max(frame_max,
//!    frame)`, and the ids of frames below `frame_max − window_frames + 1` are forgotten;
//!    for a level, it is now its key's newest.
//!
//! Events are steps 0–4 and 6 only: every one matters, in whatever order it comes.
//!
//! # Acks
//!
//! An event [`Decision::Accepted`], [`Decision::Duplicate`] or [`Decision::Conflict`]
//! (issue 22) has its id queued for an ack to the source it came from (a caller's small number naming the address,
//! [`Gateway::offer_from`]); a duplicate is acked again, since its first ack may have been
//! lost, and so is a conflict: the id holds its first content, a re-send can never change
//! that, so the node must stop re-sending it (the DST found a new primary of a parted
//! history re-sending its conflicting copy for ever, into later epochs). The caller sends one ack datagram per wake-up ([`Gateway::encode_ack`]): the ids
//! of the source at the head of the queue, at most [`ACK_IDS_MAX`]. The queue holds
//! [`ACKS_QUEUED_MAX`] ids; beyond, the oldest is dropped and counted (`acks_dropped`):
//! its node re-sends the event, and it is acked then. Levels are never acked.
//!
//! # Bounds
//!
//! Memory is fixed at construction: a ring of `window_frames` slots (one per frame:
//! its number, a 16-bit mask of the indexes accepted and the FNV-1a hash of each accepted
//! payload, 144 bytes), at most [`WINDOW_FRAMES_MAX`] slots, and the newest level id and
//! its payload's hash of every one of the 65 536 keys (17 bytes a key, 1.06 MiB). Each offer does constant work
//! and allocates nothing. Every number comes from the wire, so all arithmetic saturates.

use crate::app::{OutputKind, OUTPUTS_PER_FRAME_MAX};
use crate::digest::fnv64;
use crate::io_protocol::{encode_ack, AckKey, ACK_IDS_MAX};
use crate::node::Output;
use crate::time::Instant;
use core::fmt;
use core::time::Duration;

/// The largest dedup window, in frames: the largest `runtime.frames_buffered` a node
/// accepts (docs/CONFIG.md), so a gateway can always match the nodes' ring.
pub const WINDOW_FRAMES_MAX: u64 = 1 << 20;

/// Ids a gateway holds for acks not yet sent: 8 full acks. At one ack a wake-up and
/// 16 events a frame, the queue drains as fast as one source's events come.
pub const ACKS_QUEUED_MAX: usize = 8 * ACK_IDS_MAX;

/// What the gateway did with one offered output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    /// New id, epoch not below the fence: drive the actuator with it.
    Accepted,
    /// The id was accepted before with the same payload: a copy, dropped.
    Duplicate,
    /// The id was accepted before with another payload: dropped (the first stays). A pair
    /// never sends this unless its two histories parted; worth an alarm.
    Conflict,
    /// Epoch below the fence, within the lease: a deposed primary, rejected.
    Stale,
    /// The frame is below the dedup window: rejected, whether delivered or not is unknown.
    TooOld,
    /// Index above 15 or frame 0: not an output a node sends; rejected without effect.
    Invalid,
    /// A level older (by `(frame, index)`) than the newest accepted level of its key:
    /// the actuator holds a newer value; dropped, counted, not an error.
    Superseded,
}

impl Decision {
    /// The counter name, as in docs/PROTOCOL.md.
    pub fn name(self) -> &'static str {
        match self {
            Decision::Accepted => "accepted",
            Decision::Duplicate => "duplicate",
            Decision::Conflict => "conflict",
            Decision::Stale => "stale",
            Decision::TooOld => "too_old",
            Decision::Invalid => "invalid",
            Decision::Superseded => "superseded",
        }
    }
}

/// How many offers ended in each decision, and how often the fence lapsed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GatewayCounters {
    /// Every offer.
    pub offered: u64,
    /// [`Decision::Accepted`].
    pub accepted: u64,
    /// [`Decision::Duplicate`] (identical copies; conflicts are counted apart).
    pub duplicates: u64,
    /// [`Decision::Conflict`].
    pub conflicts: u64,
    /// [`Decision::Stale`].
    pub stale: u64,
    /// [`Decision::TooOld`].
    pub too_old: u64,
    /// [`Decision::Invalid`].
    pub invalid: u64,
    /// [`Decision::Superseded`].
    pub superseded: u64,
    /// Times the fence lapsed for being older than the lease.
    pub lapses: u64,
    /// Ack datagrams built ([`Gateway::encode_ack`]).
    pub acks_sent: u64,
    /// Ids dropped unacked from a full ack queue (their node re-sends them).
    pub acks_dropped: u64,
}

/// A gateway's settings were out of range.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatewayError {
    /// `window_frames` is 0 or above [`WINDOW_FRAMES_MAX`].
    WindowFrames(u64),
}

impl fmt::Display for GatewayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GatewayError::WindowFrames(n) => write!(
                f,
                "a gateway's window_frames of {n} is out of range: use 1..={WINDOW_FRAMES_MAX}, at least the nodes' runtime.frames_buffered"
            ),
        }
    }
}

impl std::error::Error for GatewayError {}

/// The ids of one frame the gateway accepted.
#[derive(Debug, Clone, Copy)]
struct Slot {
    /// The frame they belong to (0: the slot has held none).
    frame: u64,
    /// Bit `i`: index `i` was accepted.
    accepted: u16,
    /// FNV-1a of each accepted payload, by index.
    hashes: [u64; OUTPUTS_PER_FRAME_MAX],
}

impl Slot {
    const EMPTY: Slot = Slot {
        frame: 0,
        accepted: 0,
        hashes: [0; OUTPUTS_PER_FRAME_MAX],
    };
}

/// The reference gateway (see the module documentation for its rule).
#[derive(Debug, Clone)]
pub struct Gateway {
    window_frames: u64,
    lease: Option<Duration>,
    fence: u64,
    /// When an output last passed the fence (raised or confirmed it).
    fence_at: Instant,
    frame_max: u64,
    last_accepted_at: Option<Instant>,
    slots: Box<[Slot]>,
    /// By level key: the frame of the newest level accepted (0: none yet).
    level_frames: Box<[u64]>,
    /// By level key: the index of the newest level accepted.
    level_indexes: Box<[u8]>,
    /// By level key: the FNV-1a hash of the newest level's payload (a copy below the
    /// window is told from a conflict by it).
    level_hashes: Box<[u64]>,
    counters: GatewayCounters,
    /// Event ids to ack, oldest first, with the caller's number for their source.
    acks: heapless::Deque<(u8, u64, u8), ACKS_QUEUED_MAX>,
    /// The session acks carry (the caller's; 0 until set).
    ack_session: u64,
    /// The sequence number of the next ack.
    ack_seq: u64,
}

/// Level keys a gateway follows: every `u16`.
const LEVEL_KEYS: usize = 1 << 16;

impl Gateway {
    /// A gateway remembering the ids of the last `window_frames` frames (1..=
    /// [`WINDOW_FRAMES_MAX`]; at least the nodes' `runtime.frames_buffered`), with an epoch
    /// `lease` (`None`: the fence never lapses; PROTOCOL.md recommends
    /// max(10 × `detection_window_ms`, 5 s)). Allocates its whole ring here.
    pub fn new(window_frames: u64, lease: Option<Duration>) -> Result<Gateway, GatewayError> {
        if window_frames == 0 || window_frames > WINDOW_FRAMES_MAX {
            return Err(GatewayError::WindowFrames(window_frames));
        }
        let slots = usize::try_from(window_frames).map_err(|_| GatewayError::WindowFrames(window_frames))?;
        Ok(Gateway {
            window_frames,
            lease,
            fence: 0,
            fence_at: Instant::ZERO,
            frame_max: 0,
            last_accepted_at: None,
            slots: vec![Slot::EMPTY; slots].into_boxed_slice(),
            level_frames: vec![0; LEVEL_KEYS].into_boxed_slice(),
            level_indexes: vec![0; LEVEL_KEYS].into_boxed_slice(),
            level_hashes: vec![0; LEVEL_KEYS].into_boxed_slice(),
            counters: GatewayCounters::default(),
            acks: heapless::Deque::new(),
            ack_session: 0,
            ack_seq: 0,
        })
    }

    /// Offers one output that arrived at `now` (monotonic; an earlier `now` than before
    /// counts as no time elapsed). Returns the decision; only [`Decision::Accepted`] drives
    /// the actuator.
    /// The output is an event; [`Gateway::offer_kind`] for a level.
    pub fn offer(&mut self, now: Instant, epoch: u64, frame: u64, index: u8, payload: &[u8]) -> Decision {
        self.offer_kind(now, epoch, frame, index, OutputKind::Event, payload)
    }

    /// [`Gateway::offer`] for an output of either kind (as decoded from the datagram).
    pub fn offer_kind(
        &mut self,
        now: Instant,
        epoch: u64,
        frame: u64,
        index: u8,
        kind: OutputKind,
        payload: &[u8],
    ) -> Decision {
        self.counters.offered += 1;
        let decision = self.decide(now, epoch, frame, index, kind, payload);
        let counter = match decision {
            Decision::Accepted => &mut self.counters.accepted,
            Decision::Duplicate => &mut self.counters.duplicates,
            Decision::Conflict => &mut self.counters.conflicts,
            Decision::Stale => &mut self.counters.stale,
            Decision::TooOld => &mut self.counters.too_old,
            Decision::Invalid => &mut self.counters.invalid,
            Decision::Superseded => &mut self.counters.superseded,
        };
        *counter += 1;
        decision
    }

    /// [`Gateway::offer_kind`] for an output that came from source `source` (the
    /// caller's number for the address it came from): an event accepted, or dropped as a
    /// duplicate or a conflict, is queued for an ack to that source.
    #[allow(clippy::too_many_arguments)]
    pub fn offer_from(
        &mut self,
        now: Instant,
        source: u8,
        epoch: u64,
        frame: u64,
        index: u8,
        kind: OutputKind,
        payload: &[u8],
    ) -> Decision {
        let decision = self.offer_kind(now, epoch, frame, index, kind, payload);
        if kind == OutputKind::Event
            && matches!(decision, Decision::Accepted | Decision::Duplicate | Decision::Conflict)
        {
            if self.acks.is_full() {
                self.acks.pop_front();
                self.counters.acks_dropped += 1;
            }
            // Cannot fail: a slot was freed above.
            let _ = self.acks.push_back((source, frame, index));
        }
        decision
    }

    /// Sets the session acks carry: higher at every start of the gateway (a node refuses
    /// acks of a lower session than the newest it took). The sequence starts again at 1.
    pub fn set_ack_session(&mut self, session: u64) {
        self.ack_session = session;
        self.ack_seq = 0;
    }

    /// Ids waiting for an ack.
    pub fn acks_queued(&self) -> usize {
        self.acks.len()
    }

    /// Builds the next ack datagram into `buf` (at least
    /// [`crate::io_protocol::ACK_DATAGRAM_MAX`] bytes): the ids queued for the source at the
    /// head of the queue, at most [`ACK_IDS_MAX`], taken off the queue, tagged with `key`
    /// when given. Returns the source to send it to and its length; `None` when nothing
    /// waits. Call once a wake-up. One pass over the queue.
    pub fn encode_ack(&mut self, key: Option<&AckKey>, buf: &mut [u8]) -> Option<(u8, usize)> {
        let &(source, _, _) = self.acks.front()?;
        let mut ids: heapless::Vec<(u64, u8), ACK_IDS_MAX> = heapless::Vec::new();
        for _ in 0..self.acks.len() {
            let Some((from, frame, index)) = self.acks.pop_front() else {
                break;
            };
            if from == source && !ids.is_full() {
                // Cannot fail: not full.
                let _ = ids.push((frame, index));
            } else {
                // Cannot fail: one was taken out just before.
                let _ = self.acks.push_back((from, frame, index));
            }
        }
        self.ack_seq = self.ack_seq.saturating_add(1);
        match encode_ack(self.ack_session, self.ack_seq, &ids, key, buf) {
            Ok(len) => {
                self.counters.acks_sent += 1;
                Some((source, len))
            }
            // A buffer too small: the caller's error; the ids are lost (re-sent).
            Err(_) => None,
        }
    }

    /// [`Gateway::offer`] for an output as a node emits it.
    pub fn offer_output(&mut self, now: Instant, output: &Output) -> Decision {
        self.offer_kind(
            now,
            output.epoch,
            output.frame,
            output.index,
            output.kind,
            &output.payload,
        )
    }

    fn decide(
        &mut self,
        now: Instant,
        epoch: u64,
        frame: u64,
        index: u8,
        kind: OutputKind,
        payload: &[u8],
    ) -> Decision {
        let id = (frame, index);
        let index = usize::from(index);
        if index >= OUTPUTS_PER_FRAME_MAX || frame == 0 {
            return Decision::Invalid;
        }
        if epoch < self.fence {
            let lapsed = self
                .lease
                .is_some_and(|lease| now.saturating_since(self.fence_at) > lease);
            if !lapsed {
                return Decision::Stale;
            }
            self.counters.lapses += 1;
        }
        self.fence = epoch;
        self.fence_at = now;
        let hash = fnv64(payload);
        if frame.saturating_add(self.window_frames) <= self.frame_max {
            let Some(key) = kind.level_key() else {
                return Decision::TooOld;
            };
            // Below the window, a level is judged by its key alone: the key's newest id
            // only grows, so an id above it was never accepted (step 3).
            let key = usize::from(key);
            let newest = (self.level_frames[key], self.level_indexes[key]);
            return match id.cmp(&newest) {
                core::cmp::Ordering::Less => Decision::Superseded,
                core::cmp::Ordering::Equal if self.level_hashes[key] == hash => Decision::Duplicate,
                core::cmp::Ordering::Equal => Decision::Conflict,
                core::cmp::Ordering::Greater => {
                    self.level_frames[key] = frame;
                    self.level_indexes[key] = id.1;
                    self.level_hashes[key] = hash;
                    self.last_accepted_at = Some(now);
                    Decision::Accepted
                }
            };
        }
        // In range: the window is at most 2^20 slots.
        let at = usize::try_from(frame % self.window_frames).unwrap_or(0);
        let Some(&held) = self.slots.get(at) else {
            return Decision::TooOld;
        };
        let bit = 1u16 << index;
        if held.frame == frame && held.accepted & bit != 0 {
            return if held.hashes[index] == hash {
                Decision::Duplicate
            } else {
                Decision::Conflict
            };
        }
        if let Some(key) = kind.level_key() {
            let key = usize::from(key);
            if id < (self.level_frames[key], self.level_indexes[key]) {
                return Decision::Superseded;
            }
            self.level_frames[key] = frame;
            self.level_indexes[key] = id.1;
            self.level_hashes[key] = hash;
        }
        let slot = &mut self.slots[at];
        if slot.frame != frame {
            // The slot held a frame at least `window_frames` below this one: below the
            // window once this frame is in, or already (it cannot be above `frame_max`).
            *slot = Slot::EMPTY;
            slot.frame = frame;
        }
        slot.accepted |= bit;
        slot.hashes[index] = hash;
        self.frame_max = self.frame_max.max(frame);
        self.last_accepted_at = Some(now);
        Decision::Accepted
    }

    /// Forgets the fence (and lets any epoch in), as a gateway restarted without its
    /// state would; the dedup window is kept. For an operator's explicit reset and for
    /// tests that show what fencing prevents.
    pub fn clear_fence(&mut self) {
        self.fence = 0;
    }

    /// The fence: the highest epoch on an output that passed it since it last lapsed.
    pub fn fence(&self) -> u64 {
        self.fence
    }

    /// When an output last passed the fence (the start of the fence's age).
    pub fn fence_at(&self) -> Instant {
        self.fence_at
    }

    /// The highest frame accepted (0: none).
    pub fn frame_max(&self) -> u64 {
        self.frame_max
    }

    /// When an output was last accepted.
    pub fn last_accepted_at(&self) -> Option<Instant> {
        self.last_accepted_at
    }

    /// The dedup window, in frames.
    pub fn window_frames(&self) -> u64 {
        self.window_frames
    }

    /// The epoch lease.
    pub fn lease(&self) -> Option<Duration> {
        self.lease
    }

    /// The counters.
    pub fn counters(&self) -> GatewayCounters {
        self.counters
    }

    /// The id `(frame, index)` of the newest level accepted for `key`, if any.
    pub fn level_newest(&self, key: u16) -> Option<(u64, u8)> {
        let key = usize::from(key);
        (self.level_frames[key] != 0).then(|| (self.level_frames[key], self.level_indexes[key]))
    }

    /// Ids held for dedup: those of the frames inside the window.
    pub fn ids_held(&self) -> usize {
        let low = self.frame_max.saturating_sub(self.window_frames - 1).max(1);
        self.slots
            .iter()
            .filter(|s| s.frame >= low)
            .map(|s| s.accepted.count_ones() as usize)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};

    const E1: u64 = 0x101;
    const E2: u64 = 0x202;

    fn at(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    fn gateway(window_frames: u64) -> Gateway {
        Gateway::new(window_frames, None).unwrap()
    }

    #[test]
    fn gateway_new_refuses_a_window_out_of_range() {
        assert_eq!(Gateway::new(0, None).unwrap_err(), GatewayError::WindowFrames(0));
        let too_big = Gateway::new(WINDOW_FRAMES_MAX + 1, None).unwrap_err();
        assert!(too_big.to_string().contains("frames_buffered"), "{too_big}");
        assert!(Gateway::new(1, None).is_ok());
    }

    #[test]
    fn gateway_copy_is_a_duplicate_across_epochs() {
        let mut g = gateway(100);
        assert_eq!(g.offer(at(0), E1, 5, 0, b"a"), Decision::Accepted);
        assert_eq!(g.offer(at(1), E2, 5, 0, b"a"), Decision::Duplicate);
        assert_eq!(g.offer(at(1), E2, 5, 1, b"a"), Decision::Accepted);
        let c = g.counters();
        assert_eq!((c.offered, c.accepted, c.duplicates), (3, 2, 1));
    }

    #[test]
    fn gateway_copy_with_other_payload_is_a_conflict_and_the_first_stays() {
        let mut g = gateway(100);
        assert_eq!(g.offer(at(0), E1, 5, 0, b"a"), Decision::Accepted);
        assert_eq!(g.offer(at(1), E2, 5, 0, b"b"), Decision::Conflict);
        assert_eq!(
            g.offer(at(2), E2, 5, 0, b"a"),
            Decision::Duplicate,
            "the first content stays"
        );
        assert_eq!((g.counters().conflicts, g.counters().duplicates), (1, 1));
    }

    #[test]
    fn gateway_epoch_below_the_fence_is_stale() {
        let mut g = gateway(100);
        assert_eq!(g.offer(at(0), E2, 5, 0, b"a"), Decision::Accepted);
        assert_eq!(g.offer(at(1), E1, 6, 0, b"a"), Decision::Stale);
        assert_eq!(
            g.offer(at(2), E2, 6, 0, b"a"),
            Decision::Accepted,
            "the id was not taken"
        );
        assert_eq!(g.counters().stale, 1);
    }

    #[test]
    fn gateway_duplicate_of_a_higher_epoch_raises_the_fence() {
        // The new primary's first output re-sends one the old primary delivered: the old
        // primary's next, new output must be rejected all the same.
        let mut g = gateway(100);
        assert_eq!(g.offer(at(0), E1, 10, 0, b"a"), Decision::Accepted);
        assert_eq!(g.offer(at(1), E2, 10, 0, b"a"), Decision::Duplicate);
        assert_eq!(g.fence(), E2);
        assert_eq!(g.offer(at(2), E1, 11, 0, b"b"), Decision::Stale);
    }

    #[test]
    fn gateway_too_old_copy_raises_the_fence() {
        let mut g = gateway(10);
        assert_eq!(g.offer(at(0), E1, 100, 0, b"a"), Decision::Accepted);
        assert_eq!(g.offer(at(1), E2, 90, 0, b"a"), Decision::TooOld);
        assert_eq!(g.offer(at(2), E1, 101, 0, b"b"), Decision::Stale);
    }

    #[test]
    fn gateway_stale_output_does_not_raise_or_refresh_the_fence() {
        let lease = Duration::from_millis(100);
        let mut g = Gateway::new(100, Some(lease)).unwrap();
        assert_eq!(g.offer(at(0), E2, 5, 0, b"a"), Decision::Accepted);
        for ms in [50, 90, 100] {
            assert_eq!(g.offer(at(ms), E1, 6, 0, b"a"), Decision::Stale, "at {ms} ms");
        }
        assert_eq!((g.fence(), g.fence_at()), (E2, at(0)));
        assert_eq!(
            g.offer(at(101), E1, 6, 0, b"a"),
            Decision::Accepted,
            "100 ms old: lapsed"
        );
        assert_eq!((g.fence(), g.counters().lapses), (E1, 1));
    }

    #[test]
    fn gateway_fence_lapses_after_the_lease_only() {
        let lease = Duration::from_millis(1000);
        let mut g = Gateway::new(100, Some(lease)).unwrap();
        assert_eq!(g.offer(at(10), E2, 5, 0, b"a"), Decision::Accepted);
        assert_eq!(g.offer(at(900), E1, 6, 0, b"a"), Decision::Stale, "within the lease");
        // A copy under the fence's epoch confirms it: the lease counts from there.
        assert_eq!(g.offer(at(1000), E2, 5, 0, b"a"), Decision::Duplicate);
        assert_eq!(g.offer(at(1500), E1, 6, 0, b"a"), Decision::Stale, "confirmed at 1000");
        assert_eq!(
            g.offer(at(2001), E1, 6, 0, b"a"),
            Decision::Accepted,
            "silence beyond the lease"
        );
        assert_eq!((g.counters().lapses, g.fence()), (1, E1));
        // Frame numbers go on: the window was kept.
        assert_eq!(g.offer(at(2002), E1, 5, 0, b"a"), Decision::Duplicate);
        // Without a lease the fence never lapses.
        let mut strict = gateway(100);
        strict.offer(at(0), E2, 5, 0, b"a");
        assert_eq!(
            strict.offer(Instant::from_nanos(u64::MAX), E1, 6, 0, b"a"),
            Decision::Stale
        );
    }

    #[test]
    fn gateway_window_is_bounded_and_older_frames_are_too_old() {
        let mut g = gateway(10);
        for frame in 1..=1000u64 {
            assert_eq!(
                g.offer(at(frame), 1, frame, 0, &frame.to_le_bytes()),
                Decision::Accepted
            );
        }
        assert_eq!(g.ids_held(), 10);
        assert_eq!(g.offer(at(1001), 1, 990, 0, &990u64.to_le_bytes()), Decision::TooOld);
        assert_eq!(g.offer(at(1001), 1, 991, 0, &991u64.to_le_bytes()), Decision::Duplicate);
        // A frame inside the window never seen (skipped) is still accepted, late.
        let mut g = gateway(10);
        g.offer(at(0), 1, 20, 0, b"a");
        assert_eq!(g.offer(at(1), 1, 11, 0, b"b"), Decision::Accepted);
        assert_eq!(g.offer(at(1), 1, 10, 0, b"b"), Decision::TooOld);
    }

    #[test]
    fn gateway_ring_slot_reused_by_a_later_frame_forgets_the_older_one() {
        // Frames 3 and 13 share a slot of a 10-frame ring: 13's ids are its own.
        let mut g = gateway(10);
        assert_eq!(g.offer(at(0), 1, 3, 0, b"a"), Decision::Accepted);
        assert_eq!(g.offer(at(1), 1, 13, 1, b"b"), Decision::Accepted);
        assert_eq!(
            g.offer(at(2), 1, 13, 0, b"c"),
            Decision::Accepted,
            "index 0 of 3 is not 13's"
        );
        assert_eq!(g.offer(at(3), 1, 3, 0, b"a"), Decision::TooOld);
    }

    #[test]
    fn gateway_invalid_ids_change_nothing() {
        let mut g = gateway(10);
        assert_eq!(g.offer(at(0), E2, 0, 0, b"a"), Decision::Invalid);
        assert_eq!(g.offer(at(0), E2, 5, 16, b"a"), Decision::Invalid);
        assert_eq!(g.offer(at(0), E2, 5, 255, b"a"), Decision::Invalid);
        assert_eq!((g.fence(), g.frame_max(), g.counters().invalid), (0, 0, 3));
        assert_eq!(g.offer(at(0), E1, 5, 15, b"a"), Decision::Accepted);
    }

    #[test]
    fn gateway_extreme_numbers_do_not_overflow() {
        let mut g = Gateway::new(WINDOW_FRAMES_MAX, Some(Duration::MAX)).unwrap();
        assert_eq!(g.offer(at(0), u64::MAX, u64::MAX, 15, &[0xFF; 64]), Decision::Accepted);
        assert_eq!(
            g.offer(at(0), u64::MAX, u64::MAX - WINDOW_FRAMES_MAX, 0, b""),
            Decision::TooOld
        );
        assert_eq!(g.offer(Instant::from_nanos(u64::MAX), 0, 1, 0, b""), Decision::Stale);
        assert_eq!(g.ids_held(), 1);
    }

    #[test]
    fn gateway_clear_fence_lets_a_lower_epoch_in_and_keeps_the_window() {
        let mut g = gateway(10);
        g.offer(at(0), E2, 5, 0, b"a");
        g.clear_fence();
        assert_eq!(g.offer(at(1), E1, 5, 0, b"a"), Decision::Duplicate);
        assert_eq!(g.offer(at(1), E1, 6, 0, b"a"), Decision::Accepted);
    }

    fn level(key: u16) -> OutputKind {
        OutputKind::Level { key }
    }

    #[test]
    fn gateway_level_below_the_window_is_judged_by_its_key() {
        // Issue 22: a level set at frame 10 and never changed, lost on the way; its
        // refreshed copy comes when the window (10 frames) is far past it.
        let mut g = gateway(10);
        for frame in 11..=100u64 {
            assert_eq!(g.offer(at(frame), E1, frame, 0, b"e"), Decision::Accepted);
        }
        assert_eq!(
            g.offer_kind(at(101), E1, 10, 1, level(3), b"on"),
            Decision::Accepted,
            "the refresh heals the lost level"
        );
        assert_eq!(g.level_newest(3), Some((10, 1)));
        assert_eq!(g.offer_kind(at(102), E1, 10, 1, level(3), b"on"), Decision::Duplicate);
        assert_eq!(g.offer_kind(at(102), E1, 10, 1, level(3), b"off"), Decision::Conflict);
        assert_eq!(g.offer_kind(at(103), E1, 9, 0, level(3), b"x"), Decision::Superseded);
        // An event that old is still too old: its delivery is unknown.
        assert_eq!(g.offer(at(104), E1, 10, 2, b"e"), Decision::TooOld);
        // Nothing entered the window, and the frame counter stays.
        assert_eq!((g.frame_max(), g.ids_held()), (100, 10));
        // The fence still rules: a stale level is stale.
        assert_eq!(g.offer(at(105), E2, 101, 0, b"e"), Decision::Accepted);
        assert_eq!(g.offer_kind(at(106), E1, 10, 2, level(4), b"on"), Decision::Stale);
    }

    #[test]
    fn gateway_level_older_than_its_keys_newest_is_superseded() {
        let mut g = gateway(100);
        assert_eq!(g.offer_kind(at(0), E1, 10, 1, level(7), b"new"), Decision::Accepted);
        assert_eq!(g.level_newest(7), Some((10, 1)));
        // Older by frame, and by index within the frame: refused, counted.
        assert_eq!(g.offer_kind(at(1), E1, 9, 3, level(7), b"old"), Decision::Superseded);
        assert_eq!(g.offer_kind(at(1), E1, 10, 0, level(7), b"old"), Decision::Superseded);
        // Another key, and an event of an older id, are not held to key 7's newest.
        assert_eq!(g.offer_kind(at(2), E1, 9, 3, level(8), b"x"), Decision::Accepted);
        assert_eq!(g.offer(at(2), E1, 9, 4, b"event"), Decision::Accepted);
        // A copy of the newest is a duplicate; a newer value is taken.
        assert_eq!(g.offer_kind(at(3), E2, 10, 1, level(7), b"new"), Decision::Duplicate);
        assert_eq!(g.offer_kind(at(3), E2, 11, 0, level(7), b"newer"), Decision::Accepted);
        assert_eq!(g.level_newest(7), Some((11, 0)));
        let c = g.counters();
        assert_eq!((c.superseded, c.accepted, c.duplicates), (2, 4, 1));
        // A superseded level still proves its epoch: it raises the fence like a copy.
        assert_eq!(
            g.offer_kind(at(4), 0x303, 10, 2, level(7), b"old"),
            Decision::Superseded
        );
        assert_eq!(g.fence(), 0x303);
    }

    #[test]
    fn gateway_events_accepted_duplicate_or_conflict_are_acked_to_their_source() {
        use crate::io_protocol::{decode_ack, ACK_DATAGRAM_MAX};
        let mut g = gateway(100);
        g.set_ack_session(77);
        let mut buf = [0u8; ACK_DATAGRAM_MAX];
        assert_eq!(g.encode_ack(None, &mut buf), None, "nothing to ack");
        assert_eq!(
            g.offer_from(at(0), 1, E1, 5, 0, OutputKind::Event, b"a"),
            Decision::Accepted
        );
        assert_eq!(
            g.offer_from(at(0), 2, E2, 5, 0, OutputKind::Event, b"a"),
            Decision::Duplicate
        );
        assert_eq!(
            g.offer_from(at(0), 1, E1, 6, 0, OutputKind::Event, b"b"),
            Decision::Stale
        );
        // A conflict is acked too: no re-send can replace the first content.
        assert_eq!(
            g.offer_from(at(0), 2, E2, 5, 0, OutputKind::Event, b"x"),
            Decision::Conflict
        );
        assert_eq!(g.offer_from(at(0), 2, E2, 6, 1, level(3), b"l"), Decision::Accepted);
        assert_eq!(
            g.offer_from(at(0), 1, E2, 7, 2, OutputKind::Event, b"c"),
            Decision::Accepted
        );
        assert_eq!(g.acks_queued(), 4, "no ack for a stale event, nor for a level");
        // Source 1 first (the head), both of its ids in one ack; then source 2.
        let (to, n) = g.encode_ack(None, &mut buf).unwrap();
        let ack = decode_ack(&buf[..n], None).unwrap();
        assert_eq!(
            (to, ack.session, ack.seq, &ack.ids[..]),
            (1, 77, 1, &[(5, 0), (7, 2)][..])
        );
        let (to, n) = g.encode_ack(None, &mut buf).unwrap();
        let ack = decode_ack(&buf[..n], None).unwrap();
        assert_eq!((to, ack.seq, &ack.ids[..]), (2, 2, &[(5, 0), (5, 0)][..]));
        assert_eq!(g.encode_ack(None, &mut buf), None);
        assert_eq!(g.counters().acks_sent, 2);
    }

    #[test]
    fn gateway_ack_queue_is_bounded_and_acks_batch() {
        use crate::io_protocol::{decode_ack, ACK_DATAGRAM_MAX};
        let mut g = gateway(1000);
        for frame in 1..=(ACKS_QUEUED_MAX as u64 + 10) {
            g.offer_from(at(0), 0, E1, frame, 0, OutputKind::Event, b"e");
        }
        assert_eq!(g.acks_queued(), ACKS_QUEUED_MAX);
        assert_eq!(g.counters().acks_dropped, 10, "the oldest ten");
        let key = AckKey::derive(b"k");
        let mut buf = [0u8; ACK_DATAGRAM_MAX];
        let (_, n) = g.encode_ack(Some(&key), &mut buf).unwrap();
        let ack = decode_ack(&buf[..n], Some(&key)).unwrap();
        assert_eq!(ack.ids.len(), ACK_IDS_MAX);
        assert_eq!(ack.ids[0], (11, 0));
        assert_eq!(g.acks_queued(), ACKS_QUEUED_MAX - ACK_IDS_MAX);
    }

    /// The rule of docs/PROTOCOL.md written the plain way (a map of every id in the
    /// window), to check the ring against.
    struct Model {
        window: u64,
        lease: Option<Duration>,
        fence: u64,
        fence_at: Instant,
        frame_max: u64,
        ids: BTreeMap<(u64, u8), u64>,
        levels: BTreeMap<u16, (u64, u8)>,
        level_hashes: BTreeMap<u16, u64>,
    }

    impl Model {
        fn offer(
            &mut self,
            now: Instant,
            epoch: u64,
            frame: u64,
            index: u8,
            kind: OutputKind,
            payload: &[u8],
        ) -> Decision {
            if index >= 16 || frame == 0 {
                return Decision::Invalid;
            }
            let lapsed = self.lease.is_some_and(|l| now.saturating_since(self.fence_at) > l);
            if epoch < self.fence && !lapsed {
                return Decision::Stale;
            }
            self.fence = epoch;
            self.fence_at = now;
            let hash = fnv64(payload);
            if frame.saturating_add(self.window) <= self.frame_max {
                let Some(key) = kind.level_key() else {
                    return Decision::TooOld;
                };
                let newest = self.levels.get(&key).copied().unwrap_or((0, 0));
                if (frame, index) < newest {
                    return Decision::Superseded;
                }
                if (frame, index) == newest {
                    return if self.level_hashes.get(&key) == Some(&hash) {
                        Decision::Duplicate
                    } else {
                        Decision::Conflict
                    };
                }
                self.levels.insert(key, (frame, index));
                self.level_hashes.insert(key, hash);
                return Decision::Accepted;
            }
            if let Some(&h) = self.ids.get(&(frame, index)) {
                return if h == hash {
                    Decision::Duplicate
                } else {
                    Decision::Conflict
                };
            }
            if let Some(key) = kind.level_key() {
                if self.levels.get(&key).is_some_and(|&newest| (frame, index) < newest) {
                    return Decision::Superseded;
                }
                self.levels.insert(key, (frame, index));
                self.level_hashes.insert(key, hash);
            }
            self.ids.insert((frame, index), hash);
            self.frame_max = self.frame_max.max(frame);
            let low = self.frame_max.saturating_sub(self.window - 1);
            self.ids.retain(|&(f, _), _| f >= low);
            Decision::Accepted
        }
    }

    proptest::proptest! {
        /// Arbitrary offers: no panic, the ring decides as the plain rule does, no id is
        /// accepted twice, no epoch below the fence is accepted within the lease, the
        /// counters add up and the ids held stay within the window.
        #[test]
        fn gateway_arbitrary_offers_keep_the_rule(
            window in 1u64..40,
            lease_ms in proptest::option::of(0u64..50),
            offers in proptest::collection::vec(
                (0u64..20, 0u64..4, 0u64..120, 0u8..18, 0u8..3, proptest::option::of(0u16..3)), 0..400),
            far in proptest::bool::ANY,
        ) {
            let lease = lease_ms.map(Duration::from_millis);
            let mut g = Gateway::new(window, lease).unwrap();
            let mut model = Model { window, lease, fence: 0, fence_at: Instant::ZERO, frame_max: 0, ids: BTreeMap::new(), levels: BTreeMap::new(), level_hashes: BTreeMap::new() };
            let mut now = Instant::ZERO;
            let mut accepted = BTreeSet::new();
            // The highest epoch that passed the fence, and when: what "within the lease" means.
            let (mut fence, mut fence_at) = (0u64, Instant::ZERO);
            // Per level key, the newest id accepted: never an older one after it.
            let mut newest: BTreeMap<u16, (u64, u8)> = BTreeMap::new();
            for (i, &(dt_ms, epoch, frame, index, byte, _)) in offers.iter().enumerate() {
                now = now + Duration::from_millis(dt_ms);
                // Now and then numbers near the top of the range.
                let frame = if far && i % 7 == 3 { u64::MAX - frame } else { frame };
                // An id names one output: its kind (and key) is a function of the id, as a
                // pair sends it (below the window, a level is judged by its key alone).
                let key = ((frame ^ u64::from(index)) % 2 == 0).then_some((frame / 2 % 3) as u16);
                let kind = key.map_or(OutputKind::Event, |key| OutputKind::Level { key });
                let epoch = if far && i % 11 == 5 { u64::MAX - epoch } else { epoch };
                let payload = [byte; 3];
                let d = g.offer_kind(now, epoch, frame, index, kind, &payload);
                proptest::prop_assert_eq!(d, model.offer(now, epoch, frame, index, kind, &payload));
                if d == Decision::Accepted {
                    if let Some(key) = key {
                        let before = newest.insert(key, (frame, index));
                        proptest::prop_assert!(before.is_none_or(|b| b < (frame, index)), "level {} went back", key);
                    }
                    proptest::prop_assert!(accepted.insert((frame, index)), "({}, {}) accepted twice", frame, index);
                    let within = lease.is_none_or(|l| now.saturating_since(fence_at) <= l);
                    proptest::prop_assert!(!(epoch < fence && within), "epoch {} accepted under fence {}", epoch, fence);
                }
                if !matches!(d, Decision::Stale | Decision::Invalid) {
                    fence = epoch;
                    fence_at = now;
                }
                proptest::prop_assert!(g.ids_held() as u64 <= window * 16);
            }
            let c = g.counters();
            proptest::prop_assert_eq!(c.offered, offers.len() as u64);
            proptest::prop_assert_eq!(
                c.accepted + c.duplicates + c.conflicts + c.stale + c.too_old + c.invalid + c.superseded,
                c.offered
            );
            proptest::prop_assert_eq!(g.ids_held(), model.ids.len());
        }
    }
}
