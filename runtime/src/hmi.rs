//! HMI tags: what a program shows to operators and what it lets them set (issue 18).
//!
//! A program declares its tags with [`crate::App::hmi_tags`]: readable ones (process
//! values, alarms, modes) and writable ones (setpoints, mode requests, acknowledgements),
//! each with a type, a unit and, for a writable one, limits. The declaration alone decides
//! the Modbus register map ([`register_of`]): the status block at registers
//! `0..STATUS_REGISTERS`, then every tag in declaration order from [`TAGS_BASE`], one
//! register for a 16-bit type, two (high word first) for a 32-bit one. Two nodes running
//! the same program have the same map; docs/HMI.md gives it.
//!
//! A write is an [`HmiWrite`]: it enters the lockstep at the primary, rides in the commit
//! of the frame it is applied at ([`HmiWrites`], at most [`WRITES_PER_FRAME_MAX`]) and is
//! applied by every node at that frame before the program's step
//! ([`crate::App::hmi_write`]).

use heapless::Vec;
use serde::{Deserialize, Serialize};

/// The most tags a program may declare (the register map then ends below register 1024).
pub const TAGS_MAX: usize = 256;
/// The first register of the tags; registers below are the status block.
pub const TAGS_BASE: u16 = 64;
/// Registers of the status block (see docs/HMI.md, "Status block"): 0..=15, and 16 (the
/// loop's CPU share) added on 2026-11-26 in a register reserved before and read as 0, so
/// that a reader of 16 registers reads these nodes as before.
pub const STATUS_REGISTERS: u16 = 17;
/// The most writes one frame applies (and its commit carries).
pub const WRITES_PER_FRAME_MAX: usize = 4;
/// The longest tag name and unit, in bytes.
pub const NAME_BYTES_MAX: usize = 32;

/// What a tag is to the operator; the first three are read-only, the others writable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HmiClass {
    /// A process value (a level, a flow, a count).
    Value,
    /// An alarm (active, latched or a word of alarm bits).
    Alarm,
    /// The mode the program runs in.
    Mode,
    /// A setpoint the operator sets, within the tag's limits.
    Setpoint,
    /// A request to change mode; the program decides whether to follow it.
    ModeRequest,
    /// An acknowledgement (e.g. of alarms): a write of 1 acknowledges.
    Acknowledge,
}

impl HmiClass {
    /// Whether an operator may write a tag of this class.
    pub fn writable(self) -> bool {
        matches!(self, HmiClass::Setpoint | HmiClass::ModeRequest | HmiClass::Acknowledge)
    }
}

/// A tag's type on the wire: how many registers it takes and how they read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HmiType {
    /// 0 or 1, one register.
    Bool,
    /// Unsigned 16 bits, one register.
    U16,
    /// Signed 16 bits (two's complement), one register.
    I16,
    /// Unsigned 32 bits, two registers, high word first.
    U32,
    /// Signed 32 bits (two's complement), two registers, high word first.
    I32,
}

impl HmiType {
    /// Registers a value of this type takes.
    pub fn registers(self) -> u16 {
        match self {
            HmiType::Bool | HmiType::U16 | HmiType::I16 => 1,
            HmiType::U32 | HmiType::I32 => 2,
        }
    }

    /// The lowest and highest value of the type.
    pub fn range(self) -> (i64, i64) {
        match self {
            HmiType::Bool => (0, 1),
            HmiType::U16 => (0, i64::from(u16::MAX)),
            HmiType::I16 => (i64::from(i16::MIN), i64::from(i16::MAX)),
            HmiType::U32 => (0, i64::from(u32::MAX)),
            HmiType::I32 => (i64::from(i32::MIN), i64::from(i32::MAX)),
        }
    }

    /// The registers of `value`, high word first (only the first [`HmiType::registers`]
    /// count). A value outside the type's range is clamped to it: the program's to fix,
    /// never a wrapped number on the operator's screen.
    pub fn encode(self, value: i64) -> [u16; 2] {
        let (low, high) = self.range();
        let v = value.clamp(low, high);
        match self {
            HmiType::Bool | HmiType::U16 => [v as u16, 0],
            HmiType::I16 => [(v as i16) as u16, 0],
            HmiType::U32 | HmiType::I32 => {
                let bits = v as u32;
                [(bits >> 16) as u16, bits as u16]
            }
        }
    }

    /// The value of `words` (as many as [`HmiType::registers`]); `None` for a count that
    /// does not fit the type or a boolean other than 0 and 1.
    pub fn decode(self, words: &[u16]) -> Option<i64> {
        match (self, words) {
            (HmiType::Bool, [w]) if *w <= 1 => Some(i64::from(*w)),
            (HmiType::U16, [w]) => Some(i64::from(*w)),
            (HmiType::I16, [w]) => Some(i64::from(*w as i16)),
            (HmiType::U32, [hi, lo]) => Some(i64::from(u32::from(*hi) << 16 | u32::from(*lo))),
            (HmiType::I32, [hi, lo]) => Some(i64::from((u32::from(*hi) << 16 | u32::from(*lo)) as i32)),
            _ => None,
        }
    }
}

/// One tag as the program declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HmiTag {
    /// Its name (ASCII, 1..=32 bytes, unique in the program).
    pub name: &'static str,
    /// What it is; decides whether it is writable.
    pub class: HmiClass,
    /// Its type on the wire.
    pub ty: HmiType,
    /// Its unit, as shown (e.g. "um", "0.1 degC", ""); at most 32 bytes.
    pub unit: &'static str,
    /// The lowest value a write may set (writable tags; the type's lowest otherwise).
    pub min: i64,
    /// The highest value a write may set (writable tags; the type's highest otherwise).
    pub max: i64,
}

impl HmiTag {
    /// A read-only tag (a value, an alarm or a mode).
    pub const fn read(name: &'static str, class: HmiClass, ty: HmiType, unit: &'static str) -> Self {
        HmiTag {
            name,
            class,
            ty,
            unit,
            min: i64::MIN,
            max: i64::MAX,
        }
    }

    /// A writable tag (a setpoint, a mode request, an acknowledgement) with its limits.
    pub const fn write(
        name: &'static str,
        class: HmiClass,
        ty: HmiType,
        unit: &'static str,
        min: i64,
        max: i64,
    ) -> Self {
        HmiTag {
            name,
            class,
            ty,
            unit,
            min,
            max,
        }
    }

    /// Whether `value` is a value a write may set: writable, within the tag's limits and
    /// its type's range.
    pub fn accepts(&self, value: i64) -> bool {
        let (low, high) = self.ty.range();
        self.class.writable() && value >= low.max(self.min) && value <= high.min(self.max)
    }
}

/// Why a program's declaration cannot make a register map; the node does not start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HmiTagError {
    /// More than [`TAGS_MAX`] tags.
    TooMany(usize),
    /// A name or unit that is empty (names only), longer than 32 bytes or not printable ASCII.
    BadName(&'static str),
    /// Two tags of the same name.
    Duplicate(&'static str),
    /// A writable tag whose limits are empty or outside its type's range.
    BadLimits(&'static str),
}

impl core::fmt::Display for HmiTagError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            HmiTagError::TooMany(n) => write!(f, "the program declares {n} HMI tags; at most {TAGS_MAX}"),
            HmiTagError::BadName(name) => write!(
                f,
                "HMI tag {name:?}: names (1..=32 bytes) and units (0..=32) must be printable ASCII"
            ),
            HmiTagError::Duplicate(name) => write!(f, "HMI tag {name:?} is declared twice: names must be unique"),
            HmiTagError::BadLimits(name) => write!(
                f,
                "HMI tag {name:?}: a writable tag needs min <= max, both within its type's range"
            ),
        }
    }
}

fn printable(text: &str) -> bool {
    text.len() <= NAME_BYTES_MAX && text.bytes().all(|b| (0x20..0x7f).contains(&b))
}

/// Checks a declaration: at most [`TAGS_MAX`] tags, names unique, limits within types.
/// Quadratic in the tags (at most 256), at start-up only.
pub fn validate(tags: &[HmiTag]) -> Result<(), HmiTagError> {
    if tags.len() > TAGS_MAX {
        return Err(HmiTagError::TooMany(tags.len()));
    }
    for (i, tag) in tags.iter().enumerate() {
        if tag.name.is_empty() || !printable(tag.name) || !printable(tag.unit) {
            return Err(HmiTagError::BadName(tag.name));
        }
        if tags[..i].iter().any(|t| t.name == tag.name) {
            return Err(HmiTagError::Duplicate(tag.name));
        }
        let (low, high) = tag.ty.range();
        if tag.class.writable() && (tag.min > tag.max || tag.min < low || tag.max > high) {
            return Err(HmiTagError::BadLimits(tag.name));
        }
    }
    Ok(())
}

/// The first register of tag `index`, `None` past the last tag. Linear in the tags
/// (at most 256 of at most 2 registers: every register is below `TAGS_BASE + 512`).
pub fn register_of(tags: &[HmiTag], index: usize) -> Option<u16> {
    let mut register = TAGS_BASE;
    for (i, tag) in tags.iter().enumerate().take(TAGS_MAX) {
        if i == index {
            return Some(register);
        }
        register += tag.ty.registers();
    }
    None
}

/// The tag whose registers hold `register`: its index and the register's offset in it.
/// Linear in the tags (at most 256).
pub fn tag_at(tags: &[HmiTag], register: u16) -> Option<(usize, u16)> {
    let mut first = TAGS_BASE;
    for (i, tag) in tags.iter().enumerate().take(TAGS_MAX) {
        let width = tag.ty.registers();
        if register >= first && register < first + width {
            return Some((i, register - first));
        }
        first += width;
    }
    None
}

/// Who asked for a write and which of its requests it is: a client retrying a request
/// (after a timeout, a reconnect or a takeover) sends the same id, and a write whose id,
/// tag and value were applied already is not applied again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteId {
    /// The client: what it set in the status block's client-id registers, or its IPv4
    /// address when it set none.
    pub client: u32,
    /// The Modbus/TCP transaction id of the request.
    pub transaction: u16,
}

/// One operator write: tag `tag` (its index in the declaration) is to become `value`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HmiWrite {
    /// The request's id.
    pub id: WriteId,
    /// The tag's index in the program's declaration.
    pub tag: u16,
    /// The value, within the tag's limits (checked by every node that accepts it).
    pub value: i64,
}

/// The writes applied at one frame, in order: at most [`WRITES_PER_FRAME_MAX`]. A fixed
/// array so that a commit stays `Copy` and allocates nothing; on the wire a postcard
/// sequence (a length, then the writes), so a commit without writes costs one byte.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HmiWrites {
    len: u8,
    items: [HmiWrite; WRITES_PER_FRAME_MAX],
}

impl HmiWrites {
    /// No writes.
    pub const EMPTY: HmiWrites = HmiWrites {
        len: 0,
        items: [HmiWrite {
            id: WriteId {
                client: 0,
                transaction: 0,
            },
            tag: 0,
            value: 0,
        }; WRITES_PER_FRAME_MAX],
    };

    /// Adds a write; `false` (and nothing added) when full.
    pub fn push(&mut self, write: HmiWrite) -> bool {
        let len = usize::from(self.len);
        if len >= WRITES_PER_FRAME_MAX {
            return false;
        }
        self.items[len] = write;
        self.len += 1;
        true
    }

    /// The writes, in the order they are applied.
    pub fn as_slice(&self) -> &[HmiWrite] {
        &self.items[..usize::from(self.len)]
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether it is full.
    pub fn is_full(&self) -> bool {
        usize::from(self.len) >= WRITES_PER_FRAME_MAX
    }
}

impl Serialize for HmiWrites {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.as_slice())
    }
}

impl<'de> Deserialize<'de> for HmiWrites {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // heapless refuses a sequence longer than its capacity: no more than 4 are read.
        let items = Vec::<HmiWrite, WRITES_PER_FRAME_MAX>::deserialize(deserializer)?;
        let mut writes = HmiWrites::EMPTY;
        for write in items {
            writes.push(write);
        }
        Ok(writes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TAGS: [HmiTag; 3] = [
        HmiTag::read("level", HmiClass::Value, HmiType::U32, "um"),
        HmiTag::write("setpoint", HmiClass::Setpoint, HmiType::I16, "0.1 degC", -100, 900),
        HmiTag::write("ack", HmiClass::Acknowledge, HmiType::Bool, "", 0, 1),
    ];

    #[test]
    fn declaration_register_map_in_order() {
        assert_eq!(register_of(&TAGS, 0), Some(TAGS_BASE));
        assert_eq!(register_of(&TAGS, 1), Some(TAGS_BASE + 2));
        assert_eq!(register_of(&TAGS, 2), Some(TAGS_BASE + 3));
        assert_eq!(register_of(&TAGS, 3), None);
        assert_eq!(tag_at(&TAGS, TAGS_BASE + 1), Some((0, 1)));
        assert_eq!(tag_at(&TAGS, TAGS_BASE + 3), Some((2, 0)));
        assert_eq!(tag_at(&TAGS, TAGS_BASE + 4), None);
        assert_eq!(tag_at(&TAGS, 0), None);
    }

    #[test]
    fn declaration_limits_checked() {
        assert!(validate(&TAGS).is_ok());
        assert!(TAGS[1].accepts(900) && TAGS[1].accepts(-100));
        assert!(!TAGS[1].accepts(901) && !TAGS[1].accepts(-101));
        assert!(!TAGS[0].accepts(1), "a value is read-only");
        let bad = [HmiTag::write("sp", HmiClass::Setpoint, HmiType::U16, "", 0, 70_000)];
        assert_eq!(validate(&bad), Err(HmiTagError::BadLimits("sp")));
        let twice = [TAGS[0], TAGS[0]];
        assert_eq!(validate(&twice), Err(HmiTagError::Duplicate("level")));
        let unnamed = [HmiTag::read("", HmiClass::Value, HmiType::U16, "")];
        assert_eq!(validate(&unnamed), Err(HmiTagError::BadName("")));
    }

    #[test]
    fn type_round_trip_words() {
        for (ty, v) in [
            (HmiType::I16, -5),
            (HmiType::I32, -70_000),
            (HmiType::U32, 4_000_000_000),
            (HmiType::Bool, 1),
        ] {
            let words = ty.encode(v);
            assert_eq!(ty.decode(&words[..usize::from(ty.registers())]), Some(v));
        }
        assert_eq!(HmiType::Bool.decode(&[2]), None);
        assert_eq!(HmiType::U16.encode(-1), [0, 0], "clamped, not wrapped");
    }

    #[test]
    fn writes_full_refuses_fifth() {
        let mut writes = HmiWrites::EMPTY;
        for tag in 0..WRITES_PER_FRAME_MAX as u16 {
            assert!(writes.push(HmiWrite {
                tag,
                ..HmiWrite::default()
            }));
        }
        assert!(!writes.push(HmiWrite::default()));
        assert_eq!(writes.as_slice().len(), WRITES_PER_FRAME_MAX);
    }

    proptest! {
        #[test]
        fn writes_decode_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            if let Ok(writes) = postcard::from_bytes::<HmiWrites>(&bytes) {
                prop_assert!(writes.as_slice().len() <= WRITES_PER_FRAME_MAX);
            }
        }

        #[test]
        fn writes_round_trip(values in proptest::collection::vec(any::<(u32, u16, u16, i64)>(), 0..=WRITES_PER_FRAME_MAX)) {
            let mut writes = HmiWrites::EMPTY;
            for (client, transaction, tag, value) in values {
                writes.push(HmiWrite { id: WriteId { client, transaction }, tag, value });
            }
            let mut buf = [0u8; 128];
            let bytes = postcard::to_slice(&writes, &mut buf).unwrap();
            prop_assert_eq!(postcard::from_bytes::<HmiWrites>(bytes).unwrap(), writes);
        }

        #[test]
        fn type_decode_arbitrary_words_never_panics(words in proptest::collection::vec(any::<u16>(), 0..3)) {
            for ty in [HmiType::Bool, HmiType::U16, HmiType::I16, HmiType::U32, HmiType::I32] {
                if let Some(v) = ty.decode(&words) {
                    let (low, high) = ty.range();
                    prop_assert!(v >= low && v <= high);
                }
            }
        }
    }
}
