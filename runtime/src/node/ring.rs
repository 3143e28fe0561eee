//! The ring of recent frames: each slot holds one frame's input payload (from the I/O
//! source) and its commit (the primary's own, or the one received from the primary).
//! Allocated once at start-up; indexed by frame number modulo its capacity.

use crate::app::FRAME_PAYLOAD_MAX;
use crate::digest::fnv64;
use crate::wire::Commit;
use heapless::Vec;

pub(super) struct Slot {
    /// The frame this slot holds (0 = empty).
    pub frame: u64,
    pub payload: Option<(u64, Vec<u8, FRAME_PAYLOAD_MAX>)>,
    pub commit: Option<Commit>,
}

pub(super) struct Ring {
    slots: std::vec::Vec<Slot>,
}

impl Ring {
    pub fn new(capacity: u64) -> Self {
        let slots = (0..capacity)
            .map(|_| Slot {
                frame: 0,
                payload: None,
                commit: None,
            })
            .collect();
        Ring { slots }
    }

    pub fn capacity(&self) -> u64 {
        self.slots.len() as u64
    }

    fn index(&self, frame: u64) -> usize {
        (frame % self.capacity()) as usize
    }

    /// The slot for `frame`, emptied first if it held an older frame.
    fn claim(&mut self, frame: u64) -> Option<&mut Slot> {
        // Callers refuse frames above FRAME_MAX (`frame_in_reach`, `peer_frames_in_range`),
        // so that no `frame + 1` on a stored number overflows.
        assert!(frame <= super::FRAME_MAX, "ring: frame {frame} above FRAME_MAX");
        let index = self.index(frame);
        let slot = &mut self.slots[index];
        if slot.frame > frame {
            // A newer frame already owns this slot: `frame` is too old to keep.
            return None;
        }
        if slot.frame != frame {
            slot.frame = frame;
            slot.payload = None;
            slot.commit = None;
        }
        Some(slot)
    }

    /// Stores an input payload with its digest. The payload is at most `FRAME_PAYLOAD_MAX`.
    pub fn put_payload(&mut self, frame: u64, payload: &[u8]) {
        if let Some(slot) = self.claim(frame) {
            if slot.payload.is_none() {
                if let Ok(bytes) = Vec::from_slice(payload) {
                    slot.payload = Some((fnv64(payload), bytes));
                }
            }
        }
    }

    pub fn put_commit(&mut self, commit: Commit) {
        if let Some(slot) = self.claim(commit.frame) {
            slot.commit = Some(commit);
        }
    }

    pub fn get(&self, frame: u64) -> Option<&Slot> {
        let slot = &self.slots[self.index(frame)];
        (slot.frame == frame && frame != 0).then_some(slot)
    }

    pub fn commit(&self, frame: u64) -> Option<Commit> {
        self.get(frame).and_then(|slot| slot.commit)
    }

    /// The payload of `frame` when its digest is `digest`.
    pub fn payload_matching(&self, frame: u64, digest: u64) -> Option<&[u8]> {
        match self.get(frame).and_then(|slot| slot.payload.as_ref()) {
            Some((d, bytes)) if *d == digest => Some(bytes),
            _ => None,
        }
    }

    pub fn payload(&self, frame: u64) -> Option<(u64, &[u8])> {
        self.get(frame)
            .and_then(|slot| slot.payload.as_ref())
            .map(|(d, bytes)| (*d, bytes.as_slice()))
    }

    /// Replaces a payload whose digest did not match with the primary's copy.
    pub fn replace_payload(&mut self, frame: u64, payload: &[u8]) {
        if let Some(slot) = self.claim(frame) {
            if let Ok(bytes) = Vec::from_slice(payload) {
                slot.payload = Some((fnv64(payload), bytes));
            }
        }
    }
}

impl Ring {
    /// Forgets the payload of every frame from `from` on (commits stay): they were
    /// placed by a source map no longer held (`node/source.rs`).
    pub fn forget_payloads_from(&mut self, from: u64) {
        for slot in &mut self.slots {
            if slot.frame >= from {
                slot.payload = None;
            }
        }
    }

    /// Forgets every commit (payloads stay: the inputs are the same whoever leads).
    pub fn clear_commits(&mut self) {
        for slot in &mut self.slots {
            slot.commit = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_frame_at_frame_max_stored() {
        let mut ring = Ring::new(8);
        ring.put_payload(super::super::FRAME_MAX, b"x");
        assert_eq!(ring.payload(super::super::FRAME_MAX).map(|(_, b)| b), Some(&b"x"[..]));
    }

    /// Callers refuse such frames; one that reached the ring is a bug, not data.
    #[test]
    #[should_panic(expected = "above FRAME_MAX")]
    fn ring_frame_above_frame_max_panics() {
        let mut ring = Ring::new(8);
        ring.put_payload(super::super::FRAME_MAX + 1, b"x");
    }
}
