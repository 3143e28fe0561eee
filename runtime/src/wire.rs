//! The sync-link wire format: every message between the two nodes.
//!
//! A datagram is
//! `version (1) | flags (1) | postcard(Envelope) | [tag (16) when flags bit 0] | crc32c (4, LE)`.
//! The CRC covers every byte before it; the tag is a keyed BLAKE3 MAC over version, flags
//! and body, present when a pre-shared key is configured. Decoding checks length, version,
//! checksum and tag before postcard sees a byte, and never panics on arbitrary input (a
//! property test says so). Byte-level details are in `docs/PROTOCOL.md`.

use crate::app::FRAME_PAYLOAD_MAX;
use crate::config::CHUNK_BYTES_MAX;
use crate::digest::crc32c;
use crate::hmi::{HmiWrite, HmiWrites};
use heapless::Vec;
use serde::{Deserialize, Serialize};

/// The wire format version this build speaks (3 since 2026-11-26: the heartbeat's restart
/// handshake, `challenge` and `challenge_echo`; 4 since 2026-11-26: `SwitchAsk` and
/// `SwitchRequest` name their target, `to`; HMI writes, the commit's `writes` and
/// `Body::HmiWrite`; a group's votes, `VoteRequest` and `Vote`; acknowledged events,
/// `Body::Acks`; 5 since 2026-11-27: a `Vote` tells its voter's bar, `bar`).
pub const WIRE_VERSION: u8 = 5;
/// The most event ids one `Body::Acks` carries (issue 22): the rest wait for the next
/// commit.
pub const ACKS_PER_COMMIT: usize = 32;
/// The largest sync-link datagram, in bytes.
pub const WIRE_BYTES_MAX: usize = 1200;
/// Bytes of framing around the postcard body: version, flags, CRC.
const FRAMING_BYTES: usize = 2 + 4;
/// Bytes of the MAC tag.
pub const TAG_BYTES: usize = 16;
/// Flags bit 0: a MAC tag follows the body.
const FLAG_TAGGED: u8 = 1;

/// A pre-shared key for the keyed MAC on every sync-link message.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthKey([u8; 32]);

impl AuthKey {
    /// A key from 32 secret bytes.
    pub fn new(bytes: [u8; 32]) -> Self {
        AuthKey(bytes)
    }

    /// Derives a key from a secret of any length (e.g. the contents of a key file).
    pub fn derive(secret: &[u8]) -> Self {
        AuthKey(blake3::derive_key("twinloop sync link key v1", secret))
    }

    fn tag(&self, covered: &[u8]) -> [u8; TAG_BYTES] {
        let full = blake3::keyed_hash(&self.0, covered);
        let mut tag = [0u8; TAG_BYTES];
        tag.copy_from_slice(&full.as_bytes()[..TAG_BYTES]);
        tag
    }
}

impl core::fmt::Debug for AuthKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Never print the secret.
        f.write_str("AuthKey(..)")
    }
}

/// One encoded datagram, ready to send.
pub type WireBuf = Vec<u8, WIRE_BYTES_MAX>;

/// The role a node announces in every message header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireRole {
    /// Still deciding its role at start-up.
    Starting,
    /// Drives the actuators.
    Primary,
    /// Follows the primary one cycle behind.
    Backup,
}

/// How far a backup is with the primary, as it announces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireSync {
    /// No state yet: waiting for or receiving a state transfer.
    Joining,
    /// Has the primary's state and follows its commits.
    InSync,
    /// Follows, but behind by more than a few frames.
    Lagging,
    /// Not a backup (starting or primary).
    NotApplicable,
}

/// Fields every message carries: who sent it and in what role and epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// The sender's node id.
    pub node_id: u8,
    /// The sender's role.
    pub role: WireRole,
    /// The sender's epoch: the term it leads (primary) or follows (backup).
    pub epoch: u64,
    /// The sender's sync state.
    pub sync: WireSync,
    /// The last frame the sender has run (0 = none yet).
    pub frame: u64,
    /// The sender's session: chosen at each start, increasing from one start to the next.
    pub session: u64,
    /// Per-link sequence number within the session, for replay protection.
    pub seq: u64,
    /// Where the sender's application state began: the epoch of the cold start (a node
    /// leading without the pair's state) its history goes back to; 0 = it holds no state.
    /// A node that knows the pair had state does not lead from a cold start while the
    /// holder may be alive, and a fenced node does not give its state up for a newer
    /// cold start's.
    pub origin: u64,
}

/// What two nodes compare before they pair: the same program, version and settings, and
/// a sync key on both sides or on neither (node ids are in every header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// FNV-1a of the program's name (`AppIdentity::name`).
    pub program: u64,
    /// The program's version (`AppIdentity::version`).
    pub version: u32,
    /// The digest of the program's settings (`AppIdentity::settings_digest`).
    pub settings: u64,
    /// The sender authenticates the sync link with a key.
    pub keyed: bool,
}

/// What the primary did with one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommitKind {
    /// The frame was run.
    Ran {
        /// FNV-1a of the input payload.
        input_digest: u64,
        /// Outputs the frame produced.
        outputs: u8,
        /// Bit `i` set: output `i` was actually emitted (the sent log).
        sent_mask: u32,
        /// Digest of all the frame's outputs (see `Outbox::digest`).
        output_digest: u64,
    },
    /// The primary never received frames `frame..=last` and skipped them; the backup
    /// skips them too.
    Skipped {
        /// The last skipped frame of the range.
        last: u64,
    },
}

/// The primary's record of one frame, shipped to the backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commit {
    /// The frame number.
    pub frame: u64,
    /// Run or skipped, with the sent log.
    pub kind: CommitKind,
    /// The application's state digest after this frame, every K frames.
    pub state_digest: Option<u64>,
    /// The operators' writes applied at this frame, before its step (empty for a skipped
    /// frame): every node applies them at this frame (docs/HMI.md).
    pub writes: HmiWrites,
}

/// Why a backup delays its agreement to a switchover.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DelayReason {
    /// It has no state yet (joining).
    Joining,
    /// It lags the primary by some frames.
    Lagging,
}

/// Every sync-link message.
// Chunks and payloads are inline (no Box) so that decoding never allocates.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    /// Sign of life, sent on every link every heartbeat interval; at start-up the nonce
    /// and priority decide who becomes primary.
    Heartbeat {
        /// The start-up tiebreak nonce.
        nonce: u64,
        /// The configured start-up priority.
        priority: u8,
        /// The sender's clock when it sent this (for the peer to echo).
        sent_ns: u64,
        /// The `sent_ns` of the last heartbeat the sender received on this link (0 = none).
        echo_ns: u64,
        /// How long the sender held that echo before this heartbeat left.
        echo_hold_ns: u64,
        /// The highest frame the sender accepted from the I/O source (0 = none).
        input_frame: u64,
        /// How long ago, in ms, the sender's last frame from the I/O source arrived
        /// (`u64::MAX` = none yet): a primary whose own input is silent hands over only to
        /// a backup whose input is not (`runtime.input_handover_ms`).
        input_age_ms: u64,
        /// What the peer compares before pairing (checked on every heartbeat).
        fingerprint: Fingerprint,
        /// With a key: the sender's challenge on this link, which the receiver echoes (0
        /// without a key). See `node/replay.rs`.
        challenge: u64,
        /// With a key: the challenge of the last heartbeat the sender heard from the
        /// receiver on this link (0 = none): a session the receiver has not verified is
        /// taken from a heartbeat that echoes its current challenge.
        challenge_echo: u64,
    },
    /// The backup asks whether the silent primary is alive.
    Probe {
        /// Echoed in the answer.
        id: u32,
    },
    /// The answer to a probe.
    ProbeAck {
        /// The probe's id.
        id: u32,
    },
    /// The primary's record of one frame.
    Commit(Commit),
    /// The backup asks for a frame's commit and payload.
    Fetch {
        /// The frame wanted.
        frame: u64,
    },
    /// The answer to a fetch: the commit and the input payload.
    FrameData {
        /// The commit.
        commit: Commit,
        /// The input payload (empty for a skipped frame).
        payload: Vec<u8, FRAME_PAYLOAD_MAX>,
    },
    /// The backup asks for the application state.
    JoinRequest {
        /// Identifies the transfer.
        id: u32,
    },
    /// The start of a state transfer: a snapshot taken after `frame`.
    TransferBegin {
        /// The join request's id.
        id: u32,
        /// The snapshot is the state after this frame.
        frame: u64,
        /// Size of the snapshot.
        total_bytes: u64,
        /// Bytes in every chunk but the last.
        chunk_bytes: u32,
        /// The application's digest of the state.
        state_digest: u64,
    },
    /// One chunk of the snapshot.
    Chunk {
        /// The transfer's id.
        id: u32,
        /// Chunk number, from 0.
        index: u32,
        /// The bytes.
        bytes: Vec<u8, CHUNK_BYTES_MAX>,
    },
    /// The backup has every chunk below `next`.
    ChunkAck {
        /// The transfer's id.
        id: u32,
        /// The first chunk not yet received.
        next: u32,
    },
    /// The backup asks the primary to start a planned switchover (forwarded operator command).
    SwitchAsk {
        /// Identifies the switchover.
        id: u32,
        /// The node the operator named to take over (`switchover --to`); 0: any (wire
        /// version 4).
        to: u8,
    },
    /// The primary asks the backup to take over.
    SwitchRequest {
        /// Identifies the switchover.
        id: u32,
        /// The backup named to take over; 0: any. Another backup ignores the request
        /// (wire version 4).
        to: u8,
    },
    /// The backup is ready to take over.
    SwitchAgree {
        /// The switchover's id.
        id: u32,
    },
    /// The backup is not ready yet, and says why.
    SwitchDelay {
        /// The switchover's id.
        id: u32,
        /// Why.
        reason: DelayReason,
        /// Frames behind.
        lag_frames: u64,
    },
    /// The primary refuses a forwarded switchover.
    SwitchRefuse {
        /// The switchover's id.
        id: u32,
    },
    /// The primary has stopped after `frame`: the backup takes over at `frame + 1`.
    SwitchRelease {
        /// The switchover's id.
        id: u32,
        /// The last frame the primary ran and emitted.
        frame: u64,
    },
    /// The new primary took over at the release of switchover `id` after `frame` (sent
    /// with its first commits): the old primary follows without a transfer even when the
    /// first commit, of `frame + 1`, was lost on the way.
    SwitchTaken {
        /// The switchover's id.
        id: u32,
        /// The released frame.
        frame: u64,
    },
    /// The primary's mapping of the I/O source's current session to the pair's frames:
    /// source frame `n` is the pair's frame `pair_first + (n - source_first)`. Sent when
    /// the source restarts (a new session), with the commits of the next 8 frames, and
    /// every 256 frames.
    SourceMap {
        /// The source session.
        session: u16,
        /// The session's first frame number the mapping covers.
        source_first: u64,
        /// The pair's frame for `source_first`.
        pair_first: u64,
    },
    /// An operator's write accepted by a backup, forwarded to the primary, which applies
    /// it at a frame and carries it in that frame's commit (docs/HMI.md). Resent every
    /// `retry_ms` until a commit carries it; the primary applies an id once.
    HmiWrite(HmiWrite),
    /// A group's backup that finds its primary silent for its window, and itself the
    /// successor by weight, asks every voter for its vote (issue 16; never in a pair).
    VoteRequest {
        /// The epoch it would lead: its reservation (its node id in the low byte).
        epoch: u64,
        /// The highest frame it holds a commit of.
        commit_highest: u64,
    },
    /// A voter's answer to a `VoteRequest`. A grant leaves only after it is durable.
    Vote {
        /// The epoch asked for.
        epoch: u64,
        /// Whether the voter grants it.
        granted: bool,
        /// The highest frame the voter holds a commit of.
        commit_highest: u64,
        /// The voter's bar: the highest epoch it has seen, granted or asked for itself
        /// (since wire version 5). It grants no epoch below it; a candidate refused at or
        /// below it asks above it next (Raft's term in a vote reply).
        bar: u64,
    },
    /// The events every sink acknowledged since the last `Acks` (issue 22), as
    /// `(frame, index)`: sent by the primary with its commits, at most
    /// [`ACKS_PER_COMMIT`] each, so that a new primary re-sends only the events no sink
    /// acknowledged. Variant tag 21 (the last: tags are the declaration order).
    Acks {
        /// The ids.
        ids: Vec<(u64, u8), ACKS_PER_COMMIT>,
    },
    /// With `[outputs] release = "acked"` (issue 16): an in-sync backup has run every
    /// commit up to `frame` (its header's `frame`), sent after the frames it ran at one
    /// wake-up; the primary releases a frame's outputs once every in-sync backup said so.
    /// Variant tag 22.
    CommitAck {
        /// The backup's last run frame.
        frame: u64,
    },
    /// With `[outputs] release = "acked"` (issue 16): the primary has released every
    /// output of the frames up to `frame`; a backup forgets them, and a successor sends
    /// only those of later frames. Sent at most once per wake-up, when it advances.
    /// Variant tag 23.
    Released {
        /// The highest frame whose outputs all went out.
        frame: u64,
    },
}

/// One decoded sync-link message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Who sent it.
    pub header: Header,
    /// What it says.
    pub body: Body,
}

/// Why a datagram was rejected.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// Shorter than the framing.
    TooShort,
    /// Longer than [`WIRE_BYTES_MAX`].
    TooLong,
    /// A version this build does not speak.
    UnknownVersion(u8),
    /// The checksum does not match.
    BadChecksum,
    /// The body does not decode, or bytes are left over.
    Malformed,
    /// A key is configured and the tag is missing or wrong.
    Unauthenticated,
}

impl core::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            DecodeError::TooShort => write!(f, "datagram shorter than its framing"),
            DecodeError::TooLong => write!(f, "datagram longer than {WIRE_BYTES_MAX} bytes"),
            DecodeError::UnknownVersion(v) => write!(f, "unknown wire version {v}"),
            DecodeError::BadChecksum => write!(f, "checksum mismatch"),
            DecodeError::Malformed => write!(f, "malformed message body"),
            DecodeError::Unauthenticated => write!(f, "missing or wrong authentication tag"),
        }
    }
}

/// Why a message could not be encoded (a programmer error in practice: sizes are bounded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodeError;

/// Encodes a message into a datagram, with a MAC tag when `key` is given.
pub fn encode(envelope: &Envelope, key: Option<&AuthKey>) -> Result<WireBuf, EncodeError> {
    let mut buf = [0u8; WIRE_BYTES_MAX];
    buf[0] = WIRE_VERSION;
    buf[1] = if key.is_some() { FLAG_TAGGED } else { 0 };
    let body_len = postcard::to_slice(envelope, &mut buf[2..WIRE_BYTES_MAX - 4 - TAG_BYTES])
        .map_err(|_| EncodeError)?
        .len();
    let mut end = 2 + body_len;
    if let Some(key) = key {
        let tag = key.tag(&buf[..end]);
        buf[end..end + TAG_BYTES].copy_from_slice(&tag);
        end += TAG_BYTES;
    }
    let crc = crc32c(&buf[..end]);
    buf[end..end + 4].copy_from_slice(&crc.to_le_bytes());
    WireBuf::from_slice(&buf[..end + 4]).map_err(|_| EncodeError)
}

/// Decodes a datagram; with a `key`, only a correctly tagged one. Never panics.
pub fn decode(bytes: &[u8], key: Option<&AuthKey>) -> Result<Envelope, DecodeError> {
    if bytes.len() < FRAMING_BYTES {
        return Err(DecodeError::TooShort);
    }
    if bytes.len() > WIRE_BYTES_MAX {
        return Err(DecodeError::TooLong);
    }
    if bytes[0] != WIRE_VERSION {
        return Err(DecodeError::UnknownVersion(bytes[0]));
    }
    let (covered, crc_bytes) = bytes.split_at(bytes.len() - 4);
    let crc = u32::from_le_bytes([crc_bytes[0], crc_bytes[1], crc_bytes[2], crc_bytes[3]]);
    if crc32c(covered) != crc {
        return Err(DecodeError::BadChecksum);
    }
    let tagged = covered[1] & FLAG_TAGGED != 0;
    if covered[1] & !FLAG_TAGGED != 0 {
        return Err(DecodeError::Malformed);
    }
    let body = match (key, tagged) {
        (Some(_), false) => return Err(DecodeError::Unauthenticated),
        (_, true) if covered.len() < 2 + TAG_BYTES => return Err(DecodeError::TooShort),
        (Some(key), true) => {
            let (signed, tag) = covered.split_at(covered.len() - TAG_BYTES);
            // Constant-time comparison: a timing side channel must not leak the tag.
            let expected = key.tag(signed);
            if !constant_time_eq(&expected, tag) {
                return Err(DecodeError::Unauthenticated);
            }
            &signed[2..]
        }
        (None, true) => &covered[2..covered.len() - TAG_BYTES],
        (None, false) => &covered[2..],
    };
    let (envelope, rest) = postcard::take_from_bytes::<Envelope>(body).map_err(|_| DecodeError::Malformed)?;
    if !rest.is_empty() {
        return Err(DecodeError::Malformed);
    }
    Ok(envelope)
}

/// The datagram carries a MAC tag (flags bit 0), whatever else is wrong with it: tells a
/// peer without a key from a peer with another key when authentication fails.
pub fn is_tagged(bytes: &[u8]) -> bool {
    bytes.get(1).is_some_and(|flags| flags & FLAG_TAGGED != 0)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn header() -> Header {
        Header {
            node_id: 1,
            role: WireRole::Primary,
            epoch: 0x101,
            sync: WireSync::NotApplicable,
            frame: 42,
            session: 5,
            seq: 6,
            origin: 0x101,
        }
    }

    fn sample_bodies() -> std::vec::Vec<Body> {
        let commit = Commit {
            frame: 9,
            kind: CommitKind::Ran {
                input_digest: 1,
                outputs: 2,
                sent_mask: 3,
                output_digest: 4,
            },
            state_digest: Some(5),
            writes: Default::default(),
        };
        std::vec![
            Body::Heartbeat {
                nonce: 7,
                priority: 1,
                sent_ns: 1,
                echo_ns: 2,
                echo_hold_ns: 3,
                input_frame: 4,
                input_age_ms: u64::MAX,
                fingerprint: Fingerprint {
                    program: 0xABCD,
                    version: 3,
                    settings: u64::MAX,
                    keyed: true,
                },
                challenge: u64::MAX,
                challenge_echo: 1,
            },
            Body::Probe { id: 1 },
            Body::ProbeAck { id: 1 },
            Body::Commit(commit),
            Body::Fetch { frame: 3 },
            Body::FrameData {
                commit,
                payload: Vec::from_slice(&[1u8; FRAME_PAYLOAD_MAX]).unwrap(),
            },
            Body::JoinRequest { id: 2 },
            Body::TransferBegin {
                id: 2,
                frame: 10,
                total_bytes: 1 << 20,
                chunk_bytes: 1024,
                state_digest: 3,
            },
            Body::Chunk {
                id: 2,
                index: 5,
                bytes: Vec::from_slice(&[0xAB; CHUNK_BYTES_MAX]).unwrap(),
            },
            Body::ChunkAck { id: 2, next: 6 },
            Body::SwitchAsk { id: 1, to: 2 },
            Body::SwitchRequest { id: 1, to: 0 },
            Body::SwitchAgree { id: 1 },
            Body::SwitchDelay {
                id: 1,
                reason: DelayReason::Lagging,
                lag_frames: 3,
            },
            Body::SwitchRefuse { id: 1 },
            Body::SwitchRelease { id: 1, frame: 99 },
            Body::SwitchTaken { id: 1, frame: 99 },
            Body::SourceMap {
                session: 0x5EED,
                source_first: 1,
                pair_first: 1 << 40,
            },
            Body::VoteRequest {
                epoch: 0x301,
                commit_highest: u64::MAX,
            },
            Body::Vote {
                epoch: 0x301,
                granted: true,
                commit_highest: 7,
                bar: 0x402,
            },
            Body::Acks {
                ids: Vec::from_slice(&[(u64::MAX, 255); ACKS_PER_COMMIT]).unwrap(),
            },
            Body::CommitAck { frame: u64::MAX },
            Body::Released { frame: u64::MAX },
        ]
    }

    #[test]
    fn wire_every_body_round_trips() {
        for body in sample_bodies() {
            let envelope = Envelope { header: header(), body };
            let bytes = encode(&envelope, None).expect("largest message fits");
            assert_eq!(decode(&bytes, None), Ok(envelope));
        }
    }

    #[test]
    fn wire_flipped_bit_is_rejected() {
        let bytes = encode(
            &Envelope {
                header: header(),
                body: Body::Probe { id: 9 },
            },
            None,
        )
        .unwrap();
        for i in 0..bytes.len() {
            let mut copy = bytes.clone();
            copy[i] ^= 0x10;
            assert!(decode(&copy, None).is_err(), "flip at byte {i} went unnoticed");
        }
    }

    #[test]
    fn wire_unknown_version_is_named() {
        let mut bytes = encode(
            &Envelope {
                header: header(),
                body: Body::Probe { id: 9 },
            },
            None,
        )
        .unwrap();
        bytes[0] = 9;
        assert_eq!(decode(&bytes, None), Err(DecodeError::UnknownVersion(9)));
    }

    fn key(byte: u8) -> AuthKey {
        AuthKey::new([byte; 32])
    }

    #[test]
    fn wire_keyed_round_trips_and_rejects_wrong_or_missing_key() {
        for body in sample_bodies() {
            let envelope = Envelope { header: header(), body };
            let bytes = encode(&envelope, Some(&key(1))).expect("largest message fits with a tag");
            assert_eq!(decode(&bytes, Some(&key(1))), Ok(envelope.clone()));
            assert_eq!(decode(&bytes, Some(&key(2))), Err(DecodeError::Unauthenticated));
            let plain = encode(&envelope, None).unwrap();
            assert_eq!(decode(&plain, Some(&key(1))), Err(DecodeError::Unauthenticated));
        }
    }

    #[test]
    fn wire_keyed_forged_body_with_fixed_crc_is_rejected() {
        let envelope = Envelope {
            header: header(),
            body: Body::SwitchRequest { id: 3, to: 0 },
        };
        let mut bytes = encode(&envelope, Some(&key(1))).unwrap().to_vec();
        // An attacker who flips a body bit and recomputes the CRC still lacks the key.
        bytes[4] ^= 1;
        let n = bytes.len();
        let crc = crc32c(&bytes[..n - 4]);
        bytes[n - 4..].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(decode(&bytes, Some(&key(1))), Err(DecodeError::Unauthenticated));
    }

    #[test]
    fn wire_unauthenticated_sync_message_is_told_apart_by_its_tag() {
        let envelope = Envelope {
            header: header(),
            body: Body::Probe { id: 4 },
        };
        let other_key = encode(&envelope, Some(&key(2))).unwrap();
        let no_key = encode(&envelope, None).unwrap();
        for (bytes, tagged) in [(&other_key, true), (&no_key, false)] {
            assert_eq!(decode(bytes, Some(&key(1))), Err(DecodeError::Unauthenticated));
            // Read without a key, it is still a sync message: a misconfigured peer, not noise.
            assert_eq!(decode(bytes, None), Ok(envelope.clone()));
            assert_eq!(is_tagged(bytes), tagged);
        }
    }

    proptest! {
        #[test]
        fn wire_is_tagged_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..8)) {
            let _ = is_tagged(&bytes);
        }

        #[test]
        fn wire_keyed_decode_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..1400)) {
            let _ = decode(&bytes, Some(&key(9)));
        }

        #[test]
        fn wire_vote_bodies_arbitrary_bytes_never_panic(tag in 19u8..=20, rest in proptest::collection::vec(any::<u8>(), 0..40)) {
            // The votes' variant tags (19 and 20: `HmiWrite`, 18, is the last before them) followed by
            // arbitrary bytes: the votes' decoder sees every field cut or garbled.
            let mut bytes = std::vec![WIRE_VERSION, 0];
            let mut buf = [0u8; 64];
            bytes.extend_from_slice(postcard::to_slice(&header(), &mut buf).unwrap());
            bytes.push(tag);
            bytes.extend_from_slice(&rest);
            let crc = crc32c(&bytes);
            bytes.extend_from_slice(&crc.to_le_bytes());
            if let Ok(envelope) = decode(&bytes, None) {
                let vote = matches!(envelope.body, Body::VoteRequest { .. } | Body::Vote { .. });
                prop_assert!(vote, "decoded as another body");
            }
        }

        #[test]
        fn wire_vote_round_trips(epoch in any::<u64>(), commit_highest in any::<u64>(), granted in any::<bool>(), bar in any::<u64>()) {
            for body in [Body::VoteRequest { epoch, commit_highest }, Body::Vote { epoch, granted, commit_highest, bar }] {
                let envelope = Envelope { header: header(), body };
                let bytes = encode(&envelope, None).unwrap();
                prop_assert_eq!(decode(&bytes, None), Ok(envelope));
            }
        }

        #[test]
        fn wire_decode_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..1400)) {
            let _ = decode(&bytes, None);
        }

        #[test]
        fn wire_decode_arbitrary_body_with_valid_crc_never_panics(body in proptest::collection::vec(any::<u8>(), 0..1100)) {
            // A valid frame around random bytes reaches postcard: it must still not panic.
            let mut bytes = std::vec![WIRE_VERSION, 0];
            bytes.extend_from_slice(&body);
            let crc = crc32c(&bytes);
            bytes.extend_from_slice(&crc.to_le_bytes());
            let _ = decode(&bytes, None);
        }

        #[test]
        fn wire_commit_round_trips(frame in any::<u64>(), digest in any::<u64>(), mask in any::<u32>(), outputs in any::<u8>(), epoch in any::<u64>()) {
            let envelope = Envelope {
                header: Header { epoch, ..header() },
                body: Body::Commit(Commit {
                    frame,
                    kind: CommitKind::Ran { input_digest: digest, outputs, sent_mask: mask, output_digest: !digest },
                    state_digest: None,
                    writes: Default::default(),
                }),
            };
            prop_assert_eq!(decode(&encode(&envelope, None).unwrap(), None), Ok(envelope));
        }
    }

    /// A datagram of `version, flags`, then `body`, then its CRC: a valid frame.
    fn framed(flags: u8, body: &[u8]) -> std::vec::Vec<u8> {
        let mut bytes = std::vec![WIRE_VERSION, flags];
        bytes.extend_from_slice(body);
        let crc = crc32c(&bytes);
        bytes.extend_from_slice(&crc.to_le_bytes());
        bytes
    }

    /// Mutants at a851fc6 of `decode` (shards 12, 13 and 15: `wire.rs:394:22`, the guard
    /// `covered.len() < 2 + TAG_BYTES` → `false`; `394:36`, `<` → `==` and `<` → `<=`): a
    /// tagged datagram too short for its tag panicked (`covered.len() - TAG_BYTES`
    /// underflows), keyed or not, and one with room for exactly the tag was called too
    /// short. The arbitrary-bytes properties never reach it: random bytes fail the CRC.
    /// And `wire.rs:21:32` (`2 + 4` → `2 * 4` in `FRAMING_BYTES`, shard 12): a datagram
    /// of 6 or 7 bytes has its whole framing; what is wrong with it is its checksum or its
    /// body, not its length.
    /// Mutant `wire.rs:53:9` at a851fc6 (`AuthKey`'s `Debug` → `Ok(Default::default())`,
    /// shard 16): a key printed as nothing. A key in a logged configuration or status
    /// shows that it is there, never its bytes.
    #[test]
    fn wire_auth_key_debug_names_it_without_its_bytes() {
        let printed = std::format!("{:?}", AuthKey::new([0xAB; 32]));
        assert_eq!(printed, "AuthKey(..)");
        assert!(!printed.to_lowercase().contains("ab"), "{printed}");
    }

    #[test]
    fn wire_tagged_datagram_shorter_than_its_tag_too_short_never_panics() {
        let key = AuthKey::new([7; 32]);
        for len in 0..TAG_BYTES {
            let bytes = framed(FLAG_TAGGED, &std::vec![0xA5; len]);
            assert_eq!(decode(&bytes, None), Err(DecodeError::TooShort), "{len} bytes");
            assert_eq!(decode(&bytes, Some(&key)), Err(DecodeError::TooShort), "{len} bytes");
        }
        // Room for the tag and an empty body: authenticated (or not) first, then malformed.
        let bytes = framed(FLAG_TAGGED, &[0xA5; TAG_BYTES]);
        assert_eq!(decode(&bytes, None), Err(DecodeError::Malformed));
        assert_eq!(decode(&bytes, Some(&key)), Err(DecodeError::Unauthenticated));
        // The framing alone, and a byte more: not too short.
        assert_eq!(decode(&framed(0, &[]), None), Err(DecodeError::Malformed));
        assert_eq!(decode(&framed(0, &[0]), None), Err(DecodeError::Malformed));
        let mut bad = framed(0, &[0]);
        bad[2] ^= 1;
        assert_eq!(decode(&bad, None), Err(DecodeError::BadChecksum));
    }

    proptest! {
        #[test]
        fn wire_decode_arbitrary_tagged_body_with_valid_crc_never_panics(body in proptest::collection::vec(any::<u8>(), 0..64)) {
            let bytes = framed(FLAG_TAGGED, &body);
            let _ = decode(&bytes, None);
            let _ = decode(&bytes, Some(&AuthKey::new([7; 32])));
        }
    }

    /// Mutants `wire.rs:377:20 → 450:20` at a851fc6 (`>` → `==`, shard 17; `>` → `>=`,
    /// shard 19, in `decode`): the length bound refused only a datagram of exactly
    /// `WIRE_BYTES_MAX` bytes (every longer one went on to the checks after it), or
    /// refused that one too. A datagram of the largest size is read (here it is no
    /// message: its checksum fails); one byte more is too long. Status only: the
    /// rejection a peer's datagram is counted under.
    #[test]
    fn wire_datagram_of_the_largest_size_read_one_byte_more_too_long() {
        let mut bytes = std::vec![0u8; WIRE_BYTES_MAX + 1];
        bytes[0] = WIRE_VERSION;
        assert_eq!(
            decode(&bytes[..WIRE_BYTES_MAX], None).err(),
            Some(DecodeError::BadChecksum)
        );
        assert_eq!(decode(&bytes, None).err(), Some(DecodeError::TooLong));
    }

    /// Mutant `wire.rs:338:9 → 410:9` at a851fc6 (`Display for DecodeError` →
    /// `Ok(Default::default())`, shard 17): every decode error printed as nothing. Each
    /// says what is wrong with the datagram.
    #[test]
    fn wire_decode_error_display_says_what_is_wrong() {
        for (error, text) in [
            (DecodeError::TooShort, "datagram shorter than its framing".into()),
            (
                DecodeError::TooLong,
                std::format!("datagram longer than {WIRE_BYTES_MAX} bytes"),
            ),
            (DecodeError::UnknownVersion(9), "unknown wire version 9".into()),
            (DecodeError::BadChecksum, "checksum mismatch".into()),
            (DecodeError::Malformed, "malformed message body".into()),
            (
                DecodeError::Unauthenticated,
                "missing or wrong authentication tag".into(),
            ),
        ] {
            let text: std::string::String = text;
            assert_eq!(std::format!("{error}"), text);
        }
    }
}
