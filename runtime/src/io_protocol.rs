//! The I/O protocol between the plant side (I/O source, actuator sink or gateway) and the
//! nodes: frame datagrams in, output datagrams out.
//!
//! Both are fixed-layout, little-endian, versioned and checksummed, so that an I/O gateway
//! written in any language can speak them from `docs/PROTOCOL.md` alone:
//!
//! ```text
//! frame  (source -> node), 20 + n bytes, n <= 512:
//!   0  magic "TL" | 2 version = 1 | 3 kind = 1 | 4 payload_len u16 | 6 reserved u16 = 0
//!   8  frame u64 | 16 payload[n] | 16+n crc32c u32
//! output (node -> sink), an event, 28 + n bytes, n <= 64:
//!   0  magic "TL" | 2 version = 1 | 3 kind = 2 | 4 payload_len u16 | 6 node_id u8 | 7 index u8
//!   8  epoch u64 | 16 frame u64 | 24 payload[n] | 24+n crc32c u32
//! level output (node -> sink), 30 + n bytes, n <= 64:
//!   0  magic "TL" | 2 version = 1 | 3 kind = 3 | 4 payload_len u16 | 6 node_id u8 | 7 index u8
//!   8  epoch u64 | 16 frame u64 | 24 key u16 | 26 payload[n] | 26+n crc32c u32
//! ack (sink -> node), 24 + 9 n (+ 16 with a tag) + 4 bytes, n <= 32:
//!   0  magic "TL" | 2 version = 1 | 3 kind = 4 | 4 count u16 | 6 flags u8 | 7 reserved u8 = 0
//!   8  session u64 | 16 seq u64 | 24 ids[n] (frame u64, index u8) | [tag 16] | crc32c u32
//! ```
//!
//! Kind 4 (acknowledged events, issue 22) was added on 2026-11-26 within version 1: it
//! travels the other way, from a sink back to the node that sent an event, on the
//! outputs socket, which a node that predates it never reads. It has its own decoder
//! ([`decode_ack`]) since its body is ids, not a payload; [`decode`] answers
//! `UnknownKind(4)` for it, as before.
//!
//! Kind 3 was added on 2026-11-26 (issue 17, level and event outputs) within version 1:
//! an event is the kind 2 datagram it always was, byte for byte, and a sink that does not
//! know levels rejects kind 3 as an unknown kind rather than misread it.
//!
//! The CRC-32C ([`crate::digest::crc32c`]) covers every byte before it. Decoding returns a
//! borrowed view ([`FrameDatagram`], [`OutputDatagram`]) or a typed [`DecodeError`], and
//! never panics on arbitrary bytes (a property test says so). This module is always
//! compiled: the simulator harness and test sources and sinks use it without the `io`
//! feature.

use crate::app::{OutputKind, FRAME_PAYLOAD_MAX, OUTPUT_PAYLOAD_MAX};
use crate::digest::crc32c;
use crate::node::Output;

/// The two magic bytes that start every datagram: ASCII `TL`.
pub const MAGIC: [u8; 2] = *b"TL";
/// The protocol version this build speaks.
pub const VERSION: u8 = 1;
/// Datagram kind: an input frame.
pub const KIND_FRAME: u8 = 1;
/// Datagram kind: an output (actuator message) that is an event.
pub const KIND_OUTPUT: u8 = 2;
/// Datagram kind: an output that is a level, with its key.
pub const KIND_LEVEL: u8 = 3;
/// Bytes of a frame datagram before its payload.
pub const FRAME_HEADER_BYTES: usize = 16;
/// Bytes of an output datagram (an event) before its payload.
pub const OUTPUT_HEADER_BYTES: usize = 24;
/// Bytes of a level output datagram before its payload (the event's and the key).
pub const LEVEL_HEADER_BYTES: usize = 26;
/// Bytes of the trailing checksum.
pub const CRC_BYTES: usize = 4;
/// The largest frame datagram.
pub const FRAME_DATAGRAM_MAX: usize = FRAME_HEADER_BYTES + FRAME_PAYLOAD_MAX + CRC_BYTES;
/// The largest output datagram of either kind (a level's).
pub const OUTPUT_DATAGRAM_MAX: usize = LEVEL_HEADER_BYTES + OUTPUT_PAYLOAD_MAX + CRC_BYTES;
/// The largest datagram of either kind: a receive buffer of this size never truncates a
/// valid datagram.
pub const DATAGRAM_MAX: usize = FRAME_DATAGRAM_MAX;

/// One input frame, borrowed from the datagram bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameDatagram<'a> {
    /// The source session (bytes 6..8): a source picks a new one each time it starts
    /// numbering from the beginning, so that the pair can tell a restart from stale frames.
    /// 0: a source that does not say (a restart of its numbering then looks stale).
    pub session: u16,
    /// The frame number (1 or more, strictly increasing at the source within a session).
    pub number: u64,
    /// The input payload, at most [`FRAME_PAYLOAD_MAX`] bytes.
    pub payload: &'a [u8],
}

/// One actuator message, borrowed from the datagram bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputDatagram<'a> {
    /// The node that sent it (diagnostics only: the sink dedups by `(frame, index)`).
    pub node_id: u8,
    /// The epoch of the primary that emitted it: the sink rejects epochs lower than the
    /// highest it has accepted.
    pub epoch: u64,
    /// The frame that produced it.
    pub frame: u64,
    /// Its position among the frame's outputs; `(frame, index)` identifies it.
    pub index: u8,
    /// An event (kind 2) or a level with its key (kind 3).
    pub kind: OutputKind,
    /// The content, at most [`OUTPUT_PAYLOAD_MAX`] bytes.
    pub payload: &'a [u8],
}

impl OutputDatagram<'_> {
    /// The output as the core represents it (dropping the node id).
    pub fn to_output(&self) -> Output {
        Output {
            epoch: self.epoch,
            frame: self.frame,
            index: self.index,
            kind: self.kind,
            // Decoding bounded the payload to OUTPUT_PAYLOAD_MAX, so this cannot fail.
            payload: crate::app::OutputPayload::from_slice(self.payload).unwrap_or_default(),
        }
    }
}

/// A decoded datagram of either kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Datagram<'a> {
    /// An input frame.
    Frame(FrameDatagram<'a>),
    /// An actuator message.
    Output(OutputDatagram<'a>),
}

/// Why a datagram was rejected. Each variant names the first check that failed, in the
/// order the decoder applies them.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// Shorter than the smallest datagram of its kind (or than the common header).
    TooShort,
    /// Longer than the largest datagram of its kind.
    TooLong,
    /// The first two bytes are not `TL`.
    BadMagic,
    /// A version this build does not speak.
    UnknownVersion(u8),
    /// A kind this build does not know.
    UnknownKind(u8),
    /// A datagram of the other kind than the caller expected.
    WrongKind(u8),
    /// `payload_len` exceeds the kind's maximum.
    PayloadTooLong(u16),
    /// The datagram's length is not header + `payload_len` + CRC.
    LengthMismatch,
    /// The checksum does not match.
    BadChecksum,
    /// A reserved field is not zero. No field is reserved in version 1 since bytes 6..8
    /// of a frame became its source session; kept for the counters and later versions.
    ReservedNotZero,
    /// Frame number 0, which is never a valid frame.
    FrameZero,
    /// An ack without a tag, or with a wrong one, where a key is configured (or a tag
    /// where none is).
    Unauthenticated,
}

impl core::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            DecodeError::TooShort => write!(f, "datagram too short"),
            DecodeError::TooLong => write!(f, "datagram too long"),
            DecodeError::BadMagic => write!(f, "bad magic (expected \"TL\")"),
            DecodeError::UnknownVersion(v) => write!(f, "unknown I/O protocol version {v}"),
            DecodeError::UnknownKind(k) => write!(f, "unknown datagram kind {k}"),
            DecodeError::WrongKind(k) => write!(f, "unexpected datagram kind {k}"),
            DecodeError::PayloadTooLong(n) => write!(f, "payload length {n} above the maximum"),
            DecodeError::LengthMismatch => write!(f, "datagram length does not match payload_len"),
            DecodeError::BadChecksum => write!(f, "checksum mismatch"),
            DecodeError::ReservedNotZero => write!(f, "reserved field not zero"),
            DecodeError::FrameZero => write!(f, "frame number 0"),
            DecodeError::Unauthenticated => {
                write!(f, "ack with a missing or wrong tag (check the ack key on both sides)")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

/// Why a datagram could not be encoded.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncodeError {
    /// The payload exceeds the kind's maximum.
    PayloadTooLong,
    /// The destination buffer is smaller than the datagram.
    BufferTooSmall,
    /// Frame number 0, which is never a valid frame.
    FrameZero,
}

impl core::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            EncodeError::PayloadTooLong => write!(f, "payload above the maximum"),
            EncodeError::BufferTooSmall => write!(f, "buffer too small for the datagram"),
            EncodeError::FrameZero => write!(f, "frame number 0"),
        }
    }
}

impl std::error::Error for EncodeError {}

/// Datagram kind: an ack, from a sink back to the node, of the events it applied.
pub const KIND_ACK: u8 = 4;
/// Bytes of an ack before its ids.
pub const ACK_HEADER_BYTES: usize = 24;
/// Bytes of one acknowledged id: frame u64, index u8.
pub const ACK_ID_BYTES: usize = 9;
/// The most ids one ack carries: a sink with more to ack sends them in its next ones.
/// 32 keeps the largest ack (332 bytes) below [`DATAGRAM_MAX`].
pub const ACK_IDS_MAX: usize = 32;
/// Bytes of an ack's MAC tag (flags bit 0).
pub const ACK_TAG_BYTES: usize = 16;
/// The largest ack datagram.
pub const ACK_DATAGRAM_MAX: usize = ACK_HEADER_BYTES + ACK_IDS_MAX * ACK_ID_BYTES + ACK_TAG_BYTES + CRC_BYTES;
/// Ack flags bit 0: a MAC tag follows the ids.
const ACK_FLAG_TAGGED: u8 = 1;

/// The key that authenticates acks: a keyed BLAKE3 MAC truncated to 16 bytes over every
/// byte before the tag, compared in constant time — the construction of the sync links
/// (`wire.rs`), under a key of its own, so that a gateway never holds the pair's sync key.
#[derive(Clone, PartialEq, Eq)]
pub struct AckKey([u8; 32]);

impl AckKey {
    /// A key from 32 secret bytes.
    pub fn new(bytes: [u8; 32]) -> Self {
        AckKey(bytes)
    }

    /// Derives a key from a secret of any length (the contents of a key file).
    pub fn derive(secret: &[u8]) -> Self {
        AckKey(blake3::derive_key("twinloop ack key v1", secret))
    }

    fn tag(&self, covered: &[u8]) -> [u8; ACK_TAG_BYTES] {
        let full = blake3::keyed_hash(&self.0, covered);
        let mut tag = [0u8; ACK_TAG_BYTES];
        tag.copy_from_slice(&full.as_bytes()[..ACK_TAG_BYTES]);
        tag
    }
}

impl core::fmt::Debug for AckKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Never print the secret.
        f.write_str("AckKey(..)")
    }
}

/// One decoded ack: the ids `(frame, index)` of events a sink applied or dropped as
/// duplicates, under the sink's session and sequence number (replay protection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckDatagram {
    /// The sink's session: new (higher) at each start of the sink.
    pub session: u64,
    /// Increasing within the session, one per ack sent.
    pub seq: u64,
    /// The ids, at most [`ACK_IDS_MAX`].
    pub ids: heapless::Vec<(u64, u8), ACK_IDS_MAX>,
}

/// Encodes an ack of `ids` (at most [`ACK_IDS_MAX`]) into `buf`, tagged with `key` when
/// given; returns its length.
pub fn encode_ack(
    session: u64,
    seq: u64,
    ids: &[(u64, u8)],
    key: Option<&AckKey>,
    buf: &mut [u8],
) -> Result<usize, EncodeError> {
    if ids.len() > ACK_IDS_MAX {
        return Err(EncodeError::PayloadTooLong);
    }
    if ids.iter().any(|&(frame, _)| frame == 0) {
        return Err(EncodeError::FrameZero);
    }
    let body = ACK_HEADER_BYTES + ids.len() * ACK_ID_BYTES;
    let len = body + if key.is_some() { ACK_TAG_BYTES } else { 0 } + CRC_BYTES;
    let Some(buf) = buf.get_mut(..len) else {
        return Err(EncodeError::BufferTooSmall);
    };
    buf[0..2].copy_from_slice(&MAGIC);
    buf[2] = VERSION;
    buf[3] = KIND_ACK;
    buf[4..6].copy_from_slice(&(ids.len() as u16).to_le_bytes());
    buf[6] = if key.is_some() { ACK_FLAG_TAGGED } else { 0 };
    buf[7] = 0;
    buf[8..16].copy_from_slice(&session.to_le_bytes());
    buf[16..24].copy_from_slice(&seq.to_le_bytes());
    for (i, &(frame, index)) in ids.iter().enumerate() {
        let at = ACK_HEADER_BYTES + i * ACK_ID_BYTES;
        buf[at..at + 8].copy_from_slice(&frame.to_le_bytes());
        buf[at + 8] = index;
    }
    if let Some(key) = key {
        let tag = key.tag(&buf[..body]);
        buf[body..body + ACK_TAG_BYTES].copy_from_slice(&tag);
    }
    seal(buf);
    Ok(len)
}

/// Decodes an ack; with a `key`, only a correctly tagged one, and without one, only an
/// untagged one ([`DecodeError::Unauthenticated`] otherwise: a node and its sinks agree on
/// a key or on none). Checks, in order: length, magic, version, kind, count, flags and
/// reserved byte, length against the count, checksum, tag, frame numbers. Never panics.
pub fn decode_ack(bytes: &[u8], key: Option<&AckKey>) -> Result<AckDatagram, DecodeError> {
    if bytes.len() < ACK_HEADER_BYTES + CRC_BYTES {
        return Err(DecodeError::TooShort);
    }
    if bytes.len() > ACK_DATAGRAM_MAX {
        return Err(DecodeError::TooLong);
    }
    if bytes[0..2] != MAGIC {
        return Err(DecodeError::BadMagic);
    }
    if bytes[2] != VERSION {
        return Err(DecodeError::UnknownVersion(bytes[2]));
    }
    if bytes[3] != KIND_ACK {
        return Err(match bytes[3] {
            KIND_FRAME | KIND_OUTPUT | KIND_LEVEL => DecodeError::WrongKind(bytes[3]),
            other => DecodeError::UnknownKind(other),
        });
    }
    let count = u16_at(bytes, 4);
    if usize::from(count) > ACK_IDS_MAX {
        return Err(DecodeError::PayloadTooLong(count));
    }
    if bytes[6] & !ACK_FLAG_TAGGED != 0 || bytes[7] != 0 {
        return Err(DecodeError::ReservedNotZero);
    }
    let tagged = bytes[6] & ACK_FLAG_TAGGED != 0;
    let body = ACK_HEADER_BYTES + usize::from(count) * ACK_ID_BYTES;
    let tag_bytes = if tagged { ACK_TAG_BYTES } else { 0 };
    if bytes.len() != body + tag_bytes + CRC_BYTES {
        return Err(DecodeError::LengthMismatch);
    }
    let (covered, crc) = bytes.split_at(bytes.len() - CRC_BYTES);
    if crc32c(covered).to_le_bytes() != crc {
        return Err(DecodeError::BadChecksum);
    }
    match key {
        Some(key) if !tagged || !constant_time_eq(&key.tag(&covered[..body]), &covered[body..]) => {
            return Err(DecodeError::Unauthenticated);
        }
        Some(_) => {}
        None if tagged => return Err(DecodeError::Unauthenticated),
        None => {}
    }
    let mut ids = heapless::Vec::new();
    for i in 0..usize::from(count) {
        let at = ACK_HEADER_BYTES + i * ACK_ID_BYTES;
        let frame = u64_at(bytes, at);
        if frame == 0 {
            return Err(DecodeError::FrameZero);
        }
        // Cannot fail: count <= ACK_IDS_MAX.
        let _ = ids.push((frame, bytes[at + 8]));
    }
    Ok(AckDatagram {
        session: u64_at(bytes, 8),
        seq: u64_at(bytes, 16),
        ids,
    })
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Replay protection for one sink's acks, kept by the node: the sink's newest session
/// and a window of the 64 sequence numbers below its highest. An ack of an older
/// session, a repeat, or one older than the window is refused. A higher session (the
/// sink restarted) starts the window again. There is no handshake as on the sync links:
/// a replayed ack can at worst acknowledge ids that sink did apply once, so the window
/// only has to stop repeats, not prove freshness (docs/DECISIONS.md, 2026-11-26).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AckWindow {
    session: u64,
    highest: u64,
    /// Bit `i`: `highest - i` was taken. 0: nothing taken yet in this session.
    seen: u64,
}

impl AckWindow {
    /// Takes `(session, seq)` when it is new; false for a replay. Constant work.
    pub fn accept(&mut self, session: u64, seq: u64) -> bool {
        if session < self.session {
            return false;
        }
        if session > self.session || self.seen == 0 {
            *self = AckWindow {
                session,
                highest: seq,
                seen: 1,
            };
            return true;
        }
        if seq > self.highest {
            let shift = seq - self.highest;
            self.seen = if shift >= 64 { 0 } else { self.seen << shift };
            self.seen |= 1;
            self.highest = seq;
            return true;
        }
        let age = self.highest - seq;
        if age >= 64 || self.seen & (1 << age) != 0 {
            return false;
        }
        self.seen |= 1 << age;
        true
    }
}

/// Encodes a frame datagram of source session 0 (a source that does not declare
/// sessions) into `buf`; returns its length (`20 + payload.len()`).
pub fn encode_frame(number: u64, payload: &[u8], buf: &mut [u8]) -> Result<usize, EncodeError> {
    encode_session_frame(0, number, payload, buf)
}

/// Encodes a frame datagram of source session `session` into `buf`; returns its length
/// (`20 + payload.len()`). A source draws a new non-zero session each time it starts
/// numbering again (docs/PROTOCOL.md, "Source sessions").
pub fn encode_session_frame(session: u16, number: u64, payload: &[u8], buf: &mut [u8]) -> Result<usize, EncodeError> {
    if number == 0 {
        return Err(EncodeError::FrameZero);
    }
    if payload.len() > FRAME_PAYLOAD_MAX {
        return Err(EncodeError::PayloadTooLong);
    }
    let len = FRAME_HEADER_BYTES + payload.len() + CRC_BYTES;
    let Some(buf) = buf.get_mut(..len) else {
        return Err(EncodeError::BufferTooSmall);
    };
    buf[0..2].copy_from_slice(&MAGIC);
    buf[2] = VERSION;
    buf[3] = KIND_FRAME;
    buf[4..6].copy_from_slice(&(payload.len() as u16).to_le_bytes());
    buf[6..8].copy_from_slice(&session.to_le_bytes());
    buf[8..16].copy_from_slice(&number.to_le_bytes());
    buf[16..16 + payload.len()].copy_from_slice(payload);
    seal(buf);
    Ok(len)
}

/// Encodes an output datagram of an event into `buf`; returns its length
/// (`28 + payload.len()`).
pub fn encode_output(
    node_id: u8,
    epoch: u64,
    frame: u64,
    index: u8,
    payload: &[u8],
    buf: &mut [u8],
) -> Result<usize, EncodeError> {
    encode_output_kind(node_id, epoch, frame, index, OutputKind::Event, payload, buf)
}

/// Encodes an output datagram of either kind into `buf`; returns its length
/// (`28 + payload.len()` for an event, `30 + payload.len()` for a level).
pub fn encode_output_kind(
    node_id: u8,
    epoch: u64,
    frame: u64,
    index: u8,
    kind: OutputKind,
    payload: &[u8],
    buf: &mut [u8],
) -> Result<usize, EncodeError> {
    if frame == 0 {
        return Err(EncodeError::FrameZero);
    }
    if payload.len() > OUTPUT_PAYLOAD_MAX {
        return Err(EncodeError::PayloadTooLong);
    }
    let header = match kind {
        OutputKind::Event => OUTPUT_HEADER_BYTES,
        OutputKind::Level { .. } => LEVEL_HEADER_BYTES,
    };
    let len = header + payload.len() + CRC_BYTES;
    let Some(buf) = buf.get_mut(..len) else {
        return Err(EncodeError::BufferTooSmall);
    };
    buf[0..2].copy_from_slice(&MAGIC);
    buf[2] = VERSION;
    buf[3] = match kind {
        OutputKind::Event => KIND_OUTPUT,
        OutputKind::Level { .. } => KIND_LEVEL,
    };
    buf[4..6].copy_from_slice(&(payload.len() as u16).to_le_bytes());
    buf[6] = node_id;
    buf[7] = index;
    buf[8..16].copy_from_slice(&epoch.to_le_bytes());
    buf[16..24].copy_from_slice(&frame.to_le_bytes());
    if let OutputKind::Level { key } = kind {
        buf[24..26].copy_from_slice(&key.to_le_bytes());
    }
    buf[header..header + payload.len()].copy_from_slice(payload);
    seal(buf);
    Ok(len)
}

/// Encodes one of the core's outputs, as sent by node `node_id`.
pub fn encode_core_output(node_id: u8, output: &Output, buf: &mut [u8]) -> Result<usize, EncodeError> {
    encode_output_kind(
        node_id,
        output.epoch,
        output.frame,
        output.index,
        output.kind,
        &output.payload,
        buf,
    )
}

/// A frame datagram (source session 0) as an owned byte vector (for tests and tools).
pub fn frame_to_vec(number: u64, payload: &[u8]) -> Result<std::vec::Vec<u8>, EncodeError> {
    session_frame_to_vec(0, number, payload)
}

/// A frame datagram of source session `session` as an owned byte vector.
pub fn session_frame_to_vec(session: u16, number: u64, payload: &[u8]) -> Result<std::vec::Vec<u8>, EncodeError> {
    let mut buf = [0u8; FRAME_DATAGRAM_MAX];
    let len = encode_session_frame(session, number, payload, &mut buf)?;
    Ok(buf[..len].to_vec())
}

/// Writes the CRC-32C of everything but the last four bytes into the last four bytes.
fn seal(datagram: &mut [u8]) {
    let (covered, crc) = datagram.split_at_mut(datagram.len() - CRC_BYTES);
    crc.copy_from_slice(&crc32c(covered).to_le_bytes());
}

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut raw = [0u8; 8];
    raw.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(raw)
}

/// Checks the common header, the length and the checksum; returns the kind and the
/// payload length. Every index below is within `bytes`, checked before use.
fn check(bytes: &[u8]) -> Result<(u8, usize), DecodeError> {
    if bytes.len() < 8 {
        return Err(DecodeError::TooShort);
    }
    if bytes.len() > DATAGRAM_MAX {
        return Err(DecodeError::TooLong);
    }
    if bytes[0..2] != MAGIC {
        return Err(DecodeError::BadMagic);
    }
    if bytes[2] != VERSION {
        return Err(DecodeError::UnknownVersion(bytes[2]));
    }
    let kind = bytes[3];
    let (header, max) = match kind {
        KIND_FRAME => (FRAME_HEADER_BYTES, FRAME_PAYLOAD_MAX),
        KIND_OUTPUT => (OUTPUT_HEADER_BYTES, OUTPUT_PAYLOAD_MAX),
        KIND_LEVEL => (LEVEL_HEADER_BYTES, OUTPUT_PAYLOAD_MAX),
        other => return Err(DecodeError::UnknownKind(other)),
    };
    if bytes.len() < header + CRC_BYTES {
        return Err(DecodeError::TooShort);
    }
    if bytes.len() > header + max + CRC_BYTES {
        return Err(DecodeError::TooLong);
    }
    let payload_len = u16_at(bytes, 4);
    if usize::from(payload_len) > max {
        return Err(DecodeError::PayloadTooLong(payload_len));
    }
    if bytes.len() != header + usize::from(payload_len) + CRC_BYTES {
        return Err(DecodeError::LengthMismatch);
    }
    let (covered, crc) = bytes.split_at(bytes.len() - CRC_BYTES);
    if crc32c(covered).to_le_bytes() != crc {
        return Err(DecodeError::BadChecksum);
    }
    Ok((kind, usize::from(payload_len)))
}

/// Decodes a datagram of either kind. Never panics.
pub fn decode(bytes: &[u8]) -> Result<Datagram<'_>, DecodeError> {
    let (kind, payload_len) = check(bytes)?;
    if kind == KIND_FRAME {
        // Bytes 6..8 were reserved (zero) before source sessions: a source that never set
        // them is session 0.
        let session = u16_at(bytes, 6);
        let number = u64_at(bytes, 8);
        if number == 0 {
            return Err(DecodeError::FrameZero);
        }
        let payload = &bytes[FRAME_HEADER_BYTES..FRAME_HEADER_BYTES + payload_len];
        Ok(Datagram::Frame(FrameDatagram {
            session,
            number,
            payload,
        }))
    } else {
        let frame = u64_at(bytes, 16);
        if frame == 0 {
            return Err(DecodeError::FrameZero);
        }
        // `check` made sure the level's header (key included) is there.
        let (kind, header) = if kind == KIND_LEVEL {
            (OutputKind::Level { key: u16_at(bytes, 24) }, LEVEL_HEADER_BYTES)
        } else {
            (OutputKind::Event, OUTPUT_HEADER_BYTES)
        };
        Ok(Datagram::Output(OutputDatagram {
            node_id: bytes[6],
            index: bytes[7],
            epoch: u64_at(bytes, 8),
            frame,
            kind,
            payload: &bytes[header..header + payload_len],
        }))
    }
}

/// Decodes a frame datagram; an output datagram is [`DecodeError::WrongKind`].
pub fn decode_frame(bytes: &[u8]) -> Result<FrameDatagram<'_>, DecodeError> {
    match decode(bytes)? {
        Datagram::Frame(frame) => Ok(frame),
        Datagram::Output(output) => Err(DecodeError::WrongKind(match output.kind {
            OutputKind::Event => KIND_OUTPUT,
            OutputKind::Level { .. } => KIND_LEVEL,
        })),
    }
}

/// Decodes an output datagram; a frame datagram is [`DecodeError::WrongKind`].
pub fn decode_output(bytes: &[u8]) -> Result<OutputDatagram<'_>, DecodeError> {
    match decode(bytes)? {
        Datagram::Output(output) => Ok(output),
        Datagram::Frame(_) => Err(DecodeError::WrongKind(KIND_FRAME)),
    }
}

/// Parses the hex dump of a datagram as written in `docs/PROTOCOL.md`: hex digit pairs,
/// whitespace ignored, `#` starts a comment to the end of the line. For tests and tools.
pub fn parse_hex(text: &str) -> Option<std::vec::Vec<u8>> {
    let mut digits = std::vec::Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        for c in line.chars().filter(|c| !c.is_whitespace()) {
            digits.push(c.to_digit(16)? as u8);
        }
    }
    if digits.len() % 2 != 0 {
        return None;
    }
    Some(digits.chunks(2).map(|pair| (pair[0] << 4) | pair[1]).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The text of the fenced block in docs/PROTOCOL.md whose info string is
    /// `hex example=<name>`: the test reads the document so that the two cannot drift.
    fn doc_example(name: &str) -> std::vec::Vec<u8> {
        let doc = include_str!("../../docs/PROTOCOL.md");
        let fence = std::format!("```hex example={name}");
        let start = doc
            .find(&fence)
            .unwrap_or_else(|| panic!("no example `{name}` in PROTOCOL.md"));
        let body = &doc[start + fence.len()..];
        let end = body.find("```").expect("example block is closed");
        parse_hex(&body[..end]).expect("example is valid hex")
    }

    #[test]
    fn io_protocol_doc_frame_example_decodes() {
        let bytes = doc_example("frame");
        let frame = decode_frame(&bytes).expect("the documented frame example decodes");
        assert_eq!(frame.number, 42);
        assert_eq!(
            frame.payload,
            [
                0x01, 0x00, 0x31, 0x00, 0xE0, 0x93, 0x04, 0x00, 0x2C, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x96,
                0x00, 0x00, 0x00
            ]
        );
        // The example is exactly what this encoder writes.
        assert_eq!(frame_to_vec(42, frame.payload).unwrap(), bytes);
    }

    #[test]
    fn io_protocol_doc_output_example_decodes() {
        let bytes = doc_example("output");
        let output = decode_output(&bytes).expect("the documented output example decodes");
        assert_eq!(output.node_id, 1);
        assert_eq!(output.epoch, 0x101);
        assert_eq!(output.frame, 42);
        assert_eq!(output.index, 0);
        assert_eq!(output.payload.len(), 24);
        let mut buf = [0u8; OUTPUT_DATAGRAM_MAX];
        let len = encode_output(1, 0x101, 42, 0, output.payload, &mut buf).unwrap();
        assert_eq!(&buf[..len], &bytes[..]);
    }

    #[test]
    fn io_protocol_doc_level_example_decodes() {
        let bytes = doc_example("level");
        let output = decode_output(&bytes).expect("the documented level example decodes");
        assert_eq!(
            (output.node_id, output.epoch, output.frame, output.index),
            (2, 0x202, 43, 1)
        );
        assert_eq!(output.kind, OutputKind::Level { key: 7 });
        let mut buf = [0u8; OUTPUT_DATAGRAM_MAX];
        let len = encode_output_kind(2, 0x202, 43, 1, output.kind, output.payload, &mut buf).unwrap();
        assert_eq!(&buf[..len], &bytes[..]);
    }

    #[test]
    fn io_protocol_level_shorter_than_its_header_is_rejected() {
        let mut buf = [0u8; OUTPUT_DATAGRAM_MAX];
        let len = encode_output_kind(1, 1, 1, 0, OutputKind::Level { key: 9 }, b"", &mut buf).unwrap();
        assert_eq!(len, LEVEL_HEADER_BYTES + CRC_BYTES);
        // A kind 2 datagram relabelled kind 3 lacks the key's two bytes.
        let event = {
            let n = encode_output(1, 1, 1, 0, b"", &mut buf).unwrap();
            let mut d = buf[..n].to_vec();
            d[3] = KIND_LEVEL;
            seal(&mut d);
            d
        };
        assert_eq!(decode(&event), Err(DecodeError::TooShort));
    }

    #[test]
    fn io_protocol_frame_round_trips() {
        let bytes = frame_to_vec(7, b"abc").unwrap();
        assert_eq!(bytes.len(), 20 + 3);
        assert_eq!(
            decode(&bytes),
            Ok(Datagram::Frame(FrameDatagram {
                session: 0,
                number: 7,
                payload: b"abc"
            }))
        );
    }

    #[test]
    fn io_protocol_empty_and_largest_payloads_round_trip() {
        let big = [0x5Au8; FRAME_PAYLOAD_MAX];
        for payload in [&[][..], &big[..]] {
            let bytes = frame_to_vec(u64::MAX, payload).unwrap();
            assert_eq!(decode_frame(&bytes).unwrap().payload, payload);
        }
        let mut buf = [0u8; OUTPUT_DATAGRAM_MAX];
        let len = encode_output(2, 3, 4, 5, &[9u8; OUTPUT_PAYLOAD_MAX], &mut buf).unwrap();
        assert_eq!(len, OUTPUT_DATAGRAM_MAX - 2, "an event has no key");
        assert_eq!(
            decode_output(&buf[..len]).unwrap().payload,
            &[9u8; OUTPUT_PAYLOAD_MAX][..]
        );
    }

    #[test]
    fn io_protocol_encode_rejects_bad_input() {
        let mut buf = [0u8; FRAME_DATAGRAM_MAX];
        assert_eq!(encode_frame(0, b"", &mut buf), Err(EncodeError::FrameZero));
        assert_eq!(
            encode_frame(1, &[0; FRAME_PAYLOAD_MAX + 1], &mut [0u8; 1024]),
            Err(EncodeError::PayloadTooLong)
        );
        assert_eq!(
            encode_frame(1, b"abc", &mut buf[..22]),
            Err(EncodeError::BufferTooSmall)
        );
        assert_eq!(
            encode_output(1, 1, 1, 0, &[0; OUTPUT_PAYLOAD_MAX + 1], &mut buf),
            Err(EncodeError::PayloadTooLong)
        );
    }

    #[test]
    fn io_protocol_every_flipped_bit_is_rejected() {
        let bytes = frame_to_vec(42, b"payload").unwrap();
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut copy = bytes.clone();
                copy[i] ^= 1 << bit;
                assert!(decode(&copy).is_err(), "flip of bit {bit} in byte {i} went unnoticed");
            }
        }
    }

    #[test]
    fn io_protocol_errors_are_typed() {
        let good = frame_to_vec(42, b"xy").unwrap();
        assert_eq!(decode(&good[..5]), Err(DecodeError::TooShort));
        let mut bad = good.clone();
        bad[0] = b'X';
        assert_eq!(decode(&bad), Err(DecodeError::BadMagic));
        let mut bad = good.clone();
        bad[2] = 9;
        assert_eq!(decode(&bad), Err(DecodeError::UnknownVersion(9)));
        let mut bad = good.clone();
        bad[3] = 7;
        assert_eq!(decode(&bad), Err(DecodeError::UnknownKind(7)));
        assert_eq!(decode(&good[..good.len() - 1]), Err(DecodeError::LengthMismatch));
        let mut bad = good.clone();
        bad[4] = 0xFF;
        bad[5] = 0xFF;
        assert_eq!(decode(&bad), Err(DecodeError::PayloadTooLong(0xFFFF)));
        let mut bad = good.clone();
        let n = bad.len();
        bad[n - 1] ^= 1;
        assert_eq!(decode(&bad), Err(DecodeError::BadChecksum));
        // Bytes 6..8 of a frame are its source session, no longer reserved.
        let mut with_session = good.clone();
        with_session[6] = 1;
        seal(&mut with_session);
        assert_eq!(decode_frame(&with_session).unwrap().session, 1);
        let mut bad = good.clone();
        bad[8..16].copy_from_slice(&0u64.to_le_bytes());
        seal(&mut bad);
        assert_eq!(decode(&bad), Err(DecodeError::FrameZero));
        assert_eq!(decode_output(&good), Err(DecodeError::WrongKind(KIND_FRAME)));
        assert_eq!(decode(&[0u8; DATAGRAM_MAX + 1]), Err(DecodeError::TooLong));
    }

    #[test]
    fn io_protocol_doc_session_frame_example_decodes() {
        let bytes = doc_example("session-frame");
        let frame = decode_frame(&bytes).expect("the documented session example decodes");
        assert_eq!((frame.session, frame.number), (0x5EED, 1));
        assert_eq!(session_frame_to_vec(0x5EED, 1, frame.payload).unwrap(), bytes);
    }

    #[test]
    fn io_protocol_parse_hex_ignores_comments_and_spaces() {
        assert_eq!(parse_hex("54 4c # magic\n01"), Some(std::vec![0x54, 0x4C, 0x01]));
        assert_eq!(parse_hex("5"), None);
        assert_eq!(parse_hex("zz"), None);
    }

    #[test]
    fn io_protocol_doc_ack_example_decodes() {
        let bytes = doc_example("ack");
        let ack = decode_ack(&bytes, None).expect("the documented ack example decodes");
        assert_eq!((ack.session, ack.seq), (0x5EED, 7));
        assert_eq!(&ack.ids[..], &[(42, 0), (43, 1)]);
        let mut buf = [0u8; ACK_DATAGRAM_MAX];
        let len = encode_ack(0x5EED, 7, &ack.ids, None, &mut buf).unwrap();
        assert_eq!(&buf[..len], &bytes[..]);
    }

    #[test]
    fn io_protocol_ack_round_trips_tagged_and_forged_is_refused() {
        let key = AckKey::derive(b"gateway secret");
        let mut buf = [0u8; ACK_DATAGRAM_MAX];
        let ids = [(5u64, 0u8), (5, 1), (9, 15)];
        let len = encode_ack(3, 4, &ids, Some(&key), &mut buf).unwrap();
        assert_eq!(len, ACK_HEADER_BYTES + 3 * ACK_ID_BYTES + ACK_TAG_BYTES + CRC_BYTES);
        let ack = decode_ack(&buf[..len], Some(&key)).unwrap();
        assert_eq!((ack.session, ack.seq, &ack.ids[..]), (3, 4, &ids[..]));
        // Another key, no key on the node, an untagged ack to a keyed node: refused.
        let other = AckKey::derive(b"another");
        assert_eq!(decode_ack(&buf[..len], Some(&other)), Err(DecodeError::Unauthenticated));
        assert_eq!(decode_ack(&buf[..len], None), Err(DecodeError::Unauthenticated));
        let n = encode_ack(3, 4, &ids, None, &mut buf).unwrap();
        assert_eq!(decode_ack(&buf[..n], Some(&key)), Err(DecodeError::Unauthenticated));
        // A forger who changes an id and fixes the CRC still lacks the tag.
        let len = encode_ack(3, 5, &ids, Some(&key), &mut buf).unwrap();
        let mut forged = buf[..len].to_vec();
        forged[ACK_HEADER_BYTES] ^= 1;
        seal(&mut forged);
        assert_eq!(decode_ack(&forged, Some(&key)), Err(DecodeError::Unauthenticated));
    }

    #[test]
    fn io_protocol_ack_errors_are_typed() {
        let mut buf = [0u8; ACK_DATAGRAM_MAX];
        let len = encode_ack(1, 1, &[(1, 0)], None, &mut buf).unwrap();
        let good = buf[..len].to_vec();
        assert_eq!(decode_ack(&good[..10], None), Err(DecodeError::TooShort));
        assert_eq!(
            decode_ack(&[0u8; ACK_DATAGRAM_MAX + 1], None),
            Err(DecodeError::TooLong)
        );
        let mut bad = good.clone();
        bad[3] = KIND_OUTPUT;
        assert_eq!(decode_ack(&bad, None), Err(DecodeError::WrongKind(KIND_OUTPUT)));
        let mut bad = good.clone();
        bad[4] = 33;
        assert_eq!(decode_ack(&bad, None), Err(DecodeError::PayloadTooLong(33)));
        let mut bad = good.clone();
        bad[7] = 1;
        assert_eq!(decode_ack(&bad, None), Err(DecodeError::ReservedNotZero));
        let mut bad = good.clone();
        bad[4] = 2;
        assert_eq!(decode_ack(&bad, None), Err(DecodeError::LengthMismatch));
        let mut bad = good.clone();
        bad[30] ^= 1;
        assert_eq!(decode_ack(&bad, None), Err(DecodeError::BadChecksum));
        let mut bad = good.clone();
        bad[24..32].copy_from_slice(&0u64.to_le_bytes());
        seal(&mut bad);
        assert_eq!(decode_ack(&bad, None), Err(DecodeError::FrameZero));
        assert_eq!(
            decode(&good),
            Err(DecodeError::UnknownKind(KIND_ACK)),
            "decode leaves acks alone"
        );
        assert_eq!(
            encode_ack(1, 1, &[(1, 0); ACK_IDS_MAX + 1], None, &mut buf),
            Err(EncodeError::PayloadTooLong)
        );
        assert_eq!(encode_ack(1, 1, &[(0, 0)], None, &mut buf), Err(EncodeError::FrameZero));
        const { assert!(ACK_DATAGRAM_MAX <= DATAGRAM_MAX) };
    }

    #[test]
    fn io_protocol_ack_window_refuses_repeats_and_older_sessions() {
        let mut w = AckWindow::default();
        assert!(w.accept(10, 5));
        assert!(!w.accept(10, 5), "a repeat");
        assert!(w.accept(10, 3), "late but new");
        assert!(!w.accept(10, 3));
        assert!(w.accept(10, 100));
        assert!(!w.accept(10, 36), "older than the window");
        assert!(!w.accept(9, 1000), "an older session");
        assert!(w.accept(11, 0), "the sink restarted");
        assert!(!w.accept(10, 101));
        assert!(w.accept(u64::MAX, u64::MAX));
        assert!(!w.accept(u64::MAX, u64::MAX));
    }

    proptest! {
        #[test]
        fn io_protocol_decode_ack_arbitrary_bytes_never_panics(
            bytes in proptest::collection::vec(any::<u8>(), 0..400),
            sealed in any::<bool>(),
            keyed in any::<bool>(),
        ) {
            let key = AckKey::new([7; 32]);
            let key = keyed.then_some(&key);
            let mut bytes = bytes;
            if sealed && bytes.len() >= 8 {
                // A valid magic, version, kind and checksum reach the field checks.
                bytes[0..4].copy_from_slice(&[b'T', b'L', VERSION, KIND_ACK]);
                seal(&mut bytes);
            }
            // What decodes re-encodes to the same bytes.
            if let Ok(ack) = decode_ack(&bytes, key) {
                let mut buf = [0u8; ACK_DATAGRAM_MAX];
                let n = encode_ack(ack.session, ack.seq, &ack.ids, key, &mut buf).unwrap();
                prop_assert_eq!(&buf[..n], &bytes[..]);
            }
        }

        #[test]
        fn io_protocol_ack_round_trips_any(
            session in any::<u64>(),
            seq in any::<u64>(),
            ids in proptest::collection::vec((1u64.., any::<u8>()), 0..=ACK_IDS_MAX),
            keyed in any::<bool>(),
        ) {
            let key = AckKey::new([9; 32]);
            let key = keyed.then_some(&key);
            let mut buf = [0u8; ACK_DATAGRAM_MAX];
            let n = encode_ack(session, seq, &ids, key, &mut buf).unwrap();
            let ack = decode_ack(&buf[..n], key).unwrap();
            prop_assert_eq!((ack.session, ack.seq, &ack.ids[..]), (session, seq, &ids[..]));
        }

        #[test]
        fn io_protocol_decode_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..700)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn io_protocol_decode_sealed_arbitrary_bytes_never_panics(
            kind in 0u8..5,
            len in any::<u16>(),
            body in proptest::collection::vec(any::<u8>(), 0..600),
        ) {
            // A valid magic, version and checksum around random bytes reaches the field
            // checks: they too must return an error, not panic.
            let mut bytes = std::vec![b'T', b'L', VERSION, kind];
            bytes.extend_from_slice(&len.to_le_bytes());
            bytes.extend_from_slice(&body);
            bytes.extend_from_slice(&[0; 4]);
            if bytes.len() >= 8 {
                seal(&mut bytes);
            }
            // What decodes re-encodes to the same bytes, a level's key included.
            if let Ok(Datagram::Output(o)) = decode(&bytes) {
                let mut buf = [0u8; OUTPUT_DATAGRAM_MAX];
                let n = encode_output_kind(o.node_id, o.epoch, o.frame, o.index, o.kind, o.payload, &mut buf).unwrap();
                prop_assert_eq!(&buf[..n], &bytes[..]);
            }
        }

        #[test]
        fn io_protocol_output_round_trips(
            node_id in any::<u8>(),
            epoch in any::<u64>(),
            frame in 1u64..,
            index in any::<u8>(),
            key in proptest::option::of(any::<u16>()),
            payload in proptest::collection::vec(any::<u8>(), 0..=OUTPUT_PAYLOAD_MAX),
        ) {
            let kind = key.map_or(OutputKind::Event, |key| OutputKind::Level { key });
            let mut buf = [0u8; OUTPUT_DATAGRAM_MAX];
            let len = encode_output_kind(node_id, epoch, frame, index, kind, &payload, &mut buf).unwrap();
            let decoded = decode_output(&buf[..len]).unwrap();
            prop_assert_eq!(decoded, OutputDatagram { node_id, epoch, frame, index, kind, payload: &payload });
        }

        #[test]
        fn io_protocol_frame_round_trips_any(
            session in any::<u16>(),
            number in 1u64..,
            payload in proptest::collection::vec(any::<u8>(), 0..=FRAME_PAYLOAD_MAX),
        ) {
            let bytes = session_frame_to_vec(session, number, &payload).unwrap();
            prop_assert_eq!(decode_frame(&bytes).unwrap(), FrameDatagram { session, number, payload: &payload });
        }
    }
}
