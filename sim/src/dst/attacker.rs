//! An attacker on the sync links (issue 21): it sees every datagram either node puts on a
//! link and injects its own — exact replays of earlier datagrams (this session's and older
//! sessions'), forgeries (valid-looking headers with other epochs, roles and frames under a
//! wrong MAC), reflections (a node's own datagrams sent back to it), untagged messages on a
//! keyed pair, and bytes that are not a message at all (truncated, random, changed under a
//! recomputed checksum); and on an unkeyed pair, a state transfer's first chunk with a
//! byte of the state changed under a recomputed checksum. It does not know the key.
//!
//! What it may and may not achieve is invariant 13 (`checker/attack.rs`): the runner
//! delivers each injection, judges whether the core must reject it, and the checker sees
//! that it was rejected and changed nothing. The attacker draws from a generator of its
//! own, so that every other draw of a run is what it would be without it.

use super::clock::{Nanos, NANOS_PER_US};
use super::options::AttackerParams;
use std::collections::VecDeque;
use twinloop::wire::{self, AuthKey, Body, WireRole, WIRE_BYTES_MAX};
use twinloop::Rng;

/// Recent datagrams kept per link direction, to replay and reflect.
pub const RECENT_MAX: usize = 64;
/// Older datagrams kept per link direction (a sample of everything seen, so that older
/// sessions stay available after a restart).
pub const OLD_MAX: usize = 32;

/// The kinds of injected datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// An exact copy of a datagram the peer sent earlier.
    Replay,
    /// A changed header under a wrong MAC.
    Forgery,
    /// The receiver's own datagram, sent back to it.
    Reflection,
    /// A message without a tag, on a keyed pair.
    Untagged,
    /// Bytes that are not a message: truncated, random, or changed under a recomputed
    /// checksum.
    Garbage,
    /// On an unkeyed pair, a message whose body names a frame above `FRAME_MAX` (a
    /// forgery, or a corruption the checksum missed): no handler may see it.
    FrameBeyond,
    /// On an unkeyed pair, a transfer's first chunk with the state's first byte changed
    /// under a recomputed checksum, in place of the genuine chunk: the joiner takes it (it
    /// cannot tell), and must then refuse the state, whose digest is not the one the
    /// transfer's beginning announced (`Alarm::TransferRejected`, a new join). Not an
    /// injection: [`Attacker::tamper`] changes the datagram on its way.
    Tamper,
}

impl Kind {
    /// The name printed in traces and statistics.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Replay => "replay",
            Kind::Forgery => "forgery",
            Kind::Reflection => "reflection",
            Kind::Untagged => "untagged",
            Kind::Garbage => "garbage",
            Kind::FrameBeyond => "frame_beyond",
            Kind::Tamper => "tamper",
        }
    }
}

/// One datagram the attacker puts on a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Injection {
    /// When it reaches its target (true time).
    pub at: Nanos,
    /// The node it is sent to.
    pub to: usize,
    /// The link it arrives on.
    pub link: u8,
    /// What it is.
    pub kind: Kind,
    /// The bytes.
    pub bytes: Vec<u8>,
    /// When the datagram it copies or changes was sent (true time): a replay sent before
    /// its target started is one the target must reject.
    pub sent_at: Nanos,
}

/// Datagrams seen on one direction of one link, with the time each was sent.
#[derive(Debug, Default)]
struct Seen {
    recent: VecDeque<(Nanos, Vec<u8>)>,
    old: Vec<(Nanos, Vec<u8>)>,
    count: u64,
}

/// The attacker of one run.
#[derive(Debug)]
pub struct Attacker {
    params: AttackerParams,
    keyed: bool,
    rng: Rng,
    /// By link, by sender.
    seen: Vec<[Seen; 2]>,
    /// Its own key: a forgery carries a tag, just not the pair's.
    key: AuthKey,
    /// Injections made, by kind (in [`Kind`] order).
    pub injected: [u64; 7],
    /// The tampering's own generator (`Kind::Tamper`), when the seed drew it: forked after
    /// every other generator of the run, so that the attacker's other draws stay.
    tamper: Option<Rng>,
}

impl Attacker {
    /// An attacker on `links` links; `keyed` when the pair authenticates.
    pub fn new(params: AttackerParams, keyed: bool, links: usize, mut rng: Rng) -> Self {
        let mut key = [0u8; 32];
        for chunk in key.chunks_mut(8) {
            chunk.copy_from_slice(&rng.next_u64().to_le_bytes());
        }
        Attacker {
            params,
            keyed,
            rng,
            seen: (0..links).map(|_| [Seen::default(), Seen::default()]).collect(),
            key: AuthKey::new(key),
            injected: [0; 7],
            tamper: None,
        }
    }

    /// Tampers with transfer chunks (`Kind::Tamper`; unkeyed pairs only, where the params
    /// draw it), drawing from `rng`.
    pub fn with_tamper(mut self, rng: Rng) -> Self {
        if self.params.tamper && !self.keyed {
            self.tamper = Some(rng);
        }
        self
    }

    fn kinds(&self) -> Vec<Kind> {
        let p = &self.params;
        let mut kinds = Vec::with_capacity(5);
        // Replays, forgeries and untagged messages only where the core must reject them:
        // an unkeyed pair takes any well-formed message by design.
        if p.replay && self.keyed {
            kinds.push(Kind::Replay);
        }
        if p.forge && self.keyed {
            kinds.push(Kind::Forgery);
        }
        if p.reflect && self.keyed {
            kinds.push(Kind::Reflection);
        }
        if p.untagged && self.keyed {
            kinds.push(Kind::Untagged);
        }
        // An unkeyed pair takes a forged message, but never one naming a frame beyond
        // `FRAME_MAX` (added 2026-11-26: a core that let `Fetch`, `TransferBegin`,
        // `SwitchRelease` and `SwitchTaken` through unchecked passed the DST).
        if p.forge && !self.keyed {
            kinds.push(Kind::FrameBeyond);
        }
        if p.garbage || kinds.is_empty() {
            kinds.push(Kind::Garbage);
        }
        kinds
    }

    /// Node `from` sent `bytes` on `link` at `now`: the attacker keeps a copy and, at its
    /// rate, pushes one injection to `out`. Work per call: bounded by one datagram's size.
    pub fn observe(&mut self, now: Nanos, from: usize, link: u8, bytes: &[u8], out: &mut Vec<Injection>) {
        let Some(pair) = self.seen.get_mut(usize::from(link)) else {
            return;
        };
        let seen = &mut pair[from];
        seen.count += 1;
        if seen.recent.len() == RECENT_MAX {
            let evicted = seen.recent.pop_front().expect("full");
            // Reservoir sampling over everything evicted: old sessions stay represented.
            if seen.old.len() < OLD_MAX {
                seen.old.push(evicted);
            } else {
                let slot = self.rng.below(seen.count) as usize;
                if slot < OLD_MAX {
                    seen.old[slot] = evicted;
                }
            }
        }
        seen.recent.push_back((now, bytes.to_vec()));
        if !self.rng.chance(u64::from(self.params.inject_ppm), 1_000_000) {
            return;
        }
        let kinds = self.kinds();
        let kind = kinds[self.rng.below(kinds.len() as u64) as usize];
        let at = now + self.rng.below(self.params.hold_us_max + 1) * NANOS_PER_US;
        let (to, (sent_at, bytes)) = match kind {
            // The peer's earlier datagram, to the peer's peer: recent or old.
            Kind::Replay => (1 - from, self.pick_seen(link, from)),
            // Its own datagram back to the sender, held back like any injection: by then
            // it may have another role, epoch or tiebreak nonce.
            Kind::Reflection => (from, (now, bytes.to_vec())),
            Kind::Forgery => (1 - from, (now, self.forge(bytes, true))),
            Kind::Untagged => (1 - from, (now, self.forge(bytes, false))),
            Kind::Garbage => (1 - from, (now, self.garbage(bytes))),
            Kind::FrameBeyond => (1 - from, (now, self.frame_beyond(bytes))),
            // Not among `kinds()`: drawn apart, from its own generator (`tamper`).
            Kind::Tamper => return,
        };
        self.injected[kind as usize] += 1;
        out.push(Injection {
            at,
            to,
            link,
            kind,
            bytes,
            sent_at,
        });
    }

    /// A man in the middle of an unkeyed link (`Kind::Tamper`): half the time a
    /// transfer's first chunk passes, it puts in its place the chunk with the snapshot's
    /// first byte changed and the checksum recomputed — `None` when it leaves the datagram
    /// alone. In place, not ahead: the joiner keeps the first copy of a chunk that comes
    /// after the transfer's beginning, and a copy sent at once would overtake the
    /// beginning itself and be ignored; the network carries the replacement as it would
    /// have carried the genuine chunk (same size, same draws).
    ///
    /// Why the first byte: the simulated program's snapshot begins with its frame count
    /// (postcard, a varint), a field its digest covers, so the state restored from the
    /// tampered bytes has another digest than the one the transfer's beginning announced,
    /// and the joiner must refuse it. A byte its digest leaves out (its ballast, the
    /// padding) would restore a state the program calls the same, which no core can tell;
    /// the change keeps the varint's continuation bit, so the field stays one field.
    pub fn tamper(&mut self, bytes: &[u8]) -> Option<Vec<u8>> {
        let rng = self.tamper.as_mut()?;
        let mut envelope = wire::decode(bytes, None).ok()?;
        let Body::Chunk {
            index: 0, bytes: chunk, ..
        } = &mut envelope.body
        else {
            return None;
        };
        let first = chunk.first_mut()?;
        if !rng.chance(1, 2) {
            return None;
        }
        *first ^= 1 + rng.below(0x7F) as u8;
        let tampered = wire::encode(&envelope, None).ok()?;
        self.injected[Kind::Tamper as usize] += 1;
        Some(tampered.to_vec())
    }

    fn pick_seen(&mut self, link: u8, from: usize) -> (Nanos, Vec<u8>) {
        let seen = &self.seen[usize::from(link)][from];
        let total = seen.recent.len() + seen.old.len();
        let k = self.rng.below(total as u64) as usize;
        match seen.recent.get(k) {
            Some(seen) => seen.clone(),
            None => seen.old[k - seen.recent.len()].clone(),
        }
    }

    /// `bytes` with a changed header — another epoch, role, frame or a fresh sequence
    /// number — re-encoded under the attacker's own key (`tagged`) or without a tag.
    fn forge(&mut self, bytes: &[u8], tagged: bool) -> Vec<u8> {
        // The attacker reads the message without the key (a tag authenticates, it does
        // not encrypt).
        let Ok(mut envelope) = wire::decode(bytes, None) else {
            return self.garbage(bytes);
        };
        let h = &mut envelope.header;
        // Always a sequence number never sent: were the tag ignored, the replay window
        // would not stop it either.
        h.seq = h.seq.wrapping_add(1 + (1 << 20) + self.rng.below(1 << 20));
        match self.rng.below(4) {
            0 => h.epoch = h.epoch.wrapping_add(256 * (1 + self.rng.below(4))),
            1 => {
                h.role = [WireRole::Primary, WireRole::Backup, WireRole::Starting][self.rng.below(3) as usize];
            }
            2 => h.frame = h.frame.wrapping_add(1 + self.rng.below(1000)),
            _ => {
                h.role = WireRole::Primary;
                h.epoch = h.epoch.wrapping_add(256);
            }
        }
        let key = tagged.then_some(&self.key);
        match wire::encode(&envelope, key) {
            Ok(buf) => buf.to_vec(),
            Err(_) => self.garbage(bytes),
        }
    }

    /// `bytes` (unkeyed) with the frame its body names moved above `FRAME_MAX`; nothing
    /// when its body names none.
    fn frame_beyond(&mut self, bytes: &[u8]) -> Vec<u8> {
        let Ok(mut envelope) = wire::decode(bytes, None) else {
            return Vec::new();
        };
        let beyond = twinloop::node::FRAME_MAX + 1 + self.rng.below(u64::MAX - twinloop::node::FRAME_MAX);
        match &mut envelope.body {
            Body::Fetch { frame }
            | Body::TransferBegin { frame, .. }
            | Body::SwitchRelease { frame, .. }
            | Body::SwitchTaken { frame, .. } => *frame = beyond,
            Body::Commit(commit) | Body::FrameData { commit, .. } => commit.frame = beyond,
            Body::SourceMap { pair_first, .. } => *pair_first = beyond,
            _ => return Vec::new(),
        }
        match wire::encode(&envelope, None) {
            Ok(buf) => buf.to_vec(),
            Err(_) => Vec::new(),
        }
    }

    /// Bytes that are not a message: `bytes` cut short, random bytes of any length up to
    /// a little over the largest datagram, or `bytes` with one byte changed and the
    /// checksum recomputed (the change then meets the MAC or the body's decoder).
    fn garbage(&mut self, bytes: &[u8]) -> Vec<u8> {
        let garbage = self.garbage_any(bytes);
        // On an unkeyed pair a changed message that still decodes is a forgery the pair
        // takes by design (the odds for random bytes are 2^-32, for a changed byte under
        // a recomputed checksum much higher): send nothing it could take.
        if !self.keyed && wire::decode(&garbage, None).is_ok() {
            return Vec::new();
        }
        garbage
    }

    fn garbage_any(&mut self, bytes: &[u8]) -> Vec<u8> {
        match self.rng.below(3) {
            0 if !bytes.is_empty() => bytes[..self.rng.below(bytes.len() as u64) as usize].to_vec(),
            1 if bytes.len() > 6 => {
                let mut copy = bytes.to_vec();
                let at = 2 + self.rng.below(copy.len() as u64 - 6) as usize;
                copy[at] ^= 1 + self.rng.below(255) as u8;
                let crc_at = copy.len() - 4;
                let crc = twinloop::digest::crc32c(&copy[..crc_at]);
                copy[crc_at..].copy_from_slice(&crc.to_le_bytes());
                copy
            }
            _ => {
                let len = self.rng.below(WIRE_BYTES_MAX as u64 + 16) as usize;
                (0..len).map(|_| self.rng.below(256) as u8).collect()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use twinloop::wire::{Envelope, Header, WireSync};

    fn params() -> AttackerParams {
        AttackerParams {
            inject_ppm: 1_000_000,
            hold_us_max: 100,
            replay: true,
            forge: true,
            reflect: true,
            untagged: true,
            garbage: true,
            tamper: true,
        }
    }

    fn datagram(seq: u64, key: &AuthKey) -> Vec<u8> {
        let envelope = Envelope {
            header: Header {
                node_id: 1,
                role: WireRole::Primary,
                epoch: 0x101,
                sync: WireSync::NotApplicable,
                frame: 40 + seq,
                session: 9,
                seq,
                origin: 0x101,
            },
            body: Body::Probe { id: seq as u32 },
        };
        wire::encode(&envelope, Some(key)).expect("fits").to_vec()
    }

    #[test]
    fn attacker_keyed_injections_never_carry_the_pairs_tag_on_new_content() {
        let key = AuthKey::new([7; 32]);
        let mut attacker = Attacker::new(params(), true, 2, Rng::new(3));
        let mut out = Vec::new();
        let mut sent = Vec::new();
        for seq in 1..=2_000u64 {
            let bytes = datagram(seq, &key);
            sent.push(bytes.clone());
            attacker.observe(seq * 1000, 0, (seq % 2) as u8, &bytes, &mut out);
        }
        assert_eq!(out.len(), 2_000, "at a million per million, one injection per datagram");
        for injection in &out {
            assert!(injection.at >= 1000 && injection.link < 2);
            let decoded = wire::decode(&injection.bytes, Some(&key));
            match injection.kind {
                // Exact copies: they authenticate (the replay window must stop them).
                Kind::Replay | Kind::Reflection => {
                    assert!(sent.contains(&injection.bytes));
                    // The send time kept with the copy is the original's.
                    let seq = wire::decode(&injection.bytes, Some(&key)).expect("a copy").header.seq;
                    assert_eq!(injection.sent_at, seq * 1000);
                    assert!(decoded.is_ok());
                    let to = if injection.kind == Kind::Replay { 1 } else { 0 };
                    assert_eq!(injection.to, to);
                }
                Kind::Forgery | Kind::Untagged | Kind::Garbage | Kind::FrameBeyond => {
                    assert!(decoded.is_err(), "{:?}", injection.kind)
                }
                // Never an injection (`Attacker::tamper`).
                Kind::Tamper => panic!("a tampered chunk injected"),
            }
        }
        assert!(
            attacker.injected[..Kind::FrameBeyond as usize].iter().all(|&n| n > 100),
            "{:?}",
            attacker.injected
        );
        assert_eq!(
            attacker.injected[Kind::FrameBeyond as usize],
            0,
            "a keyed pair's MAC comes first"
        );
    }

    fn chunk(index: u32, first: u8) -> Vec<u8> {
        let mut body = Body::Chunk {
            id: 3,
            index,
            bytes: Default::default(),
        };
        if let Body::Chunk { bytes, .. } = &mut body {
            bytes.extend_from_slice(&[first, 7, 8, 9]).expect("fits");
        }
        let envelope = Envelope {
            header: Header {
                node_id: 1,
                role: WireRole::Primary,
                epoch: 0x101,
                sync: WireSync::NotApplicable,
                frame: 40,
                session: 0,
                seq: 0,
                origin: 0x101,
            },
            body,
        };
        wire::encode(&envelope, None).expect("fits").to_vec()
    }

    #[test]
    fn attacker_unkeyed_tamper_changes_the_first_chunks_first_byte_only() {
        let mut attacker = Attacker::new(params(), false, 1, Rng::new(5)).with_tamper(Rng::new(6));
        let mut tampered = 0;
        for round in 0..200u32 {
            // The frame count's varint: one byte below 128, or a first byte with the
            // continuation bit.
            let first = if round % 2 == 0 { 5 } else { 0x85 };
            let genuine = chunk(0, first);
            let Some(bytes) = attacker.tamper(&genuine) else {
                continue;
            };
            tampered += 1;
            let envelope = wire::decode(&bytes, None).expect("a well-formed chunk, checksum recomputed");
            let Body::Chunk { id, index, bytes } = envelope.body else {
                panic!("not a chunk")
            };
            assert_eq!((id, index), (3, 0));
            assert_ne!(bytes[0], first);
            assert_eq!(bytes[0] & 0x80, first & 0x80, "the continuation bit is kept");
            assert_eq!(&bytes[1..], &[7, 8, 9]);
            // Any other chunk, or anything else, passes untouched.
            assert_eq!(attacker.tamper(&chunk(1, first)), None);
            assert_eq!(attacker.tamper(&datagram(1, &AuthKey::new([1; 32]))), None);
        }
        assert!((60..=140).contains(&tampered), "about half: {tampered}");
        assert_eq!(attacker.injected[Kind::Tamper as usize], tampered);
        // Keyed, or not drawn: never.
        let mut keyed = Attacker::new(params(), true, 1, Rng::new(5)).with_tamper(Rng::new(6));
        let mut off = Attacker::new(
            AttackerParams {
                tamper: false,
                ..params()
            },
            false,
            1,
            Rng::new(5),
        )
        .with_tamper(Rng::new(6));
        for _ in 0..50 {
            assert_eq!(keyed.tamper(&chunk(0, 5)), None);
            assert_eq!(off.tamper(&chunk(0, 5)), None);
        }
    }

    #[test]
    fn attacker_unkeyed_sends_only_what_an_unkeyed_pair_must_reject() {
        let key = AuthKey::new([7; 32]);
        let mut attacker = Attacker::new(params(), false, 1, Rng::new(4));
        let mut out = Vec::new();
        for seq in 1..=500u64 {
            attacker.observe(seq, 1, 0, &datagram(seq, &key), &mut out);
        }
        assert!(out.iter().all(|i| matches!(i.kind, Kind::Garbage | Kind::FrameBeyond)));
        for injection in out.iter().filter(|i| i.kind == Kind::Garbage) {
            assert!(wire::decode(&injection.bytes, None).is_err());
        }
        assert!(attacker.injected[Kind::Garbage as usize] > 100);
    }
}
