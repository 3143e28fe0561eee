//! Process images: the PLC model of a frame. A **tag map** names the values of the field
//! devices (a device, a Modbus table, an address, a type, a scaling, a direction); the
//! I/O gateway (`twinloop-gateway`) polls the devices and lays the input tags out as the
//! frame payload, the **input process image**; the program reads tags by handle and
//! writes output tags through an [`OutputImage`], whose every change is one output.
//!
//! # The input image, byte by byte (docs/GATEWAY.md, "The image")
//!
//! ```text
//! 0  version u8 = 1
//! 1  layout u32 LE            the tag map's fingerprint (TagMap::layout_id)
//! 5  devices u8               the number of devices of the map
//! 6  quality[devices] u8      per device, in map order: 0 ok, 1 timeout, 2 disconnected,
//!                             0x80 | code: a Modbus exception (code 1..=0x7F)
//! 6+devices  values           the `in` tags in map order, little-endian, each as wide
//!                             as its type: bool 1 (0 or 1), u16/i16 2, u32/i32/f32 4
//! ```
//!
//! A device of bad quality has its tags' bytes zero, and the reader reports them bad
//! ([`Bad::Quality`]): a program never reads a stale value as if it were fresh. An image
//! of another length, version, layout or device count is refused whole
//! ([`Bad::Image`]): both nodes see the same bytes, so both refuse it alike.
//!
//! # Outputs
//!
//! An output payload is a tag write or a heartbeat:
//!
//! ```text
//! write     0 kind u8 = 1 | 1 layout u32 LE | 5 tag u16 LE (its position in the map)
//!           | 7 value LE, as wide as the tag's type          (8 to 11 bytes)
//! heartbeat 0 kind u8 = 2 | 1 layout u32 LE                   (5 bytes)
//! ```
//!
//! A write of an out tag is a *level* output keyed by the tag's position (only its newest
//! value matters: a takeover collapses unsent ones, a sink refuses an older one), unless
//! the map declares the tag an *event* (`kind = "event"`: a pulse counter, a command
//! whose every write matters); a heartbeat is an event (docs/GATEWAY.md, "Level and event
//! outputs").
//!
//! # Bounds
//!
//! At most [`DEVICES_MAX`] devices, [`TAGS_MAX`] tags, [`BLOCKS_PER_DEVICE_MAX`] polled
//! blocks per device, an image of at most [`FRAME_PAYLOAD_MAX`] bytes. Handles are
//! resolved by name once ([`TagMap::handle`]); reading a tag is a bounds-checked slice
//! read, writing one a store into a vector allocated at start: nothing allocates per
//! cycle, and no decoder panics on arbitrary bytes (property tests say so).

use crate::app::{Outbox, FRAME_PAYLOAD_MAX};
use crate::digest::crc32c;
use core::fmt;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::string::String;
use std::vec::Vec;

/// The image format this build writes and reads.
pub const IMAGE_VERSION: u8 = 1;
/// Bytes of the image before the quality bytes.
pub const IMAGE_HEADER_BYTES: usize = 6;
/// The most devices in a tag map.
pub const DEVICES_MAX: usize = 32;
/// The most tags in a tag map.
pub const TAGS_MAX: usize = 512;
/// The most polled blocks of one device (all four tables together): each is one request
/// per cycle.
pub const BLOCKS_PER_DEVICE_MAX: usize = 16;
/// The most registers one block polls: a Modbus read of holding or input registers
/// carries at most 125.
pub const REGISTER_BLOCK_MAX: u16 = 125;
/// The most coils or discrete inputs one block polls (Modbus: 2000).
pub const BIT_BLOCK_MAX: u16 = 2000;
/// The longest tag or device name, in bytes.
pub const NAME_BYTES_MAX: usize = 64;
/// The longest device timeout.
pub const TIMEOUT_MS_MAX: u64 = 60_000;
/// The most requests a gateway keeps in flight on one device connection.
pub const PIPELINE_DEPTH_MAX: u16 = 16;
/// Output payload kind: a tag write.
pub const OUTPUT_KIND_WRITE: u8 = 1;
/// Output payload kind: a heartbeat (the program is alive and nothing changed).
pub const OUTPUT_KIND_HEARTBEAT: u8 = 2;
/// The longest output payload this module writes.
pub const OUTPUT_WRITE_BYTES_MAX: usize = 11;
const _: () = assert!(OUTPUT_WRITE_BYTES_MAX <= crate::app::OUTPUT_PAYLOAD_MAX);

/// A Modbus table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Table {
    /// Read-write bits (function codes 1, 5, 15).
    Coil,
    /// Read-only bits (function code 2).
    DiscreteInput,
    /// Read-only registers (function code 4).
    InputRegister,
    /// Read-write registers (function codes 3, 6, 16).
    HoldingRegister,
}

impl Table {
    /// The name used in the tag map.
    pub fn name(self) -> &'static str {
        match self {
            Table::Coil => "coil",
            Table::DiscreteInput => "discrete_input",
            Table::InputRegister => "input_register",
            Table::HoldingRegister => "holding_register",
        }
    }

    /// True for the bit tables.
    pub fn is_bits(self) -> bool {
        matches!(self, Table::Coil | Table::DiscreteInput)
    }

    /// True for the tables a client may write.
    pub fn is_writable(self) -> bool {
        matches!(self, Table::Coil | Table::HoldingRegister)
    }

    /// The four tables, in the order their blocks are polled.
    pub const ALL: [Table; 4] = [
        Table::Coil,
        Table::DiscreteInput,
        Table::InputRegister,
        Table::HoldingRegister,
    ];
}

/// A tag's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TagType {
    /// One coil or discrete input.
    Bool,
    /// One register.
    U16,
    /// One register, two's complement.
    I16,
    /// Two registers.
    U32,
    /// Two registers, two's complement.
    I32,
    /// Two registers, IEEE 754 single.
    F32,
}

impl TagType {
    /// Bytes of the value in the image and in an output.
    pub fn width_bytes(self) -> usize {
        match self {
            TagType::Bool => 1,
            TagType::U16 | TagType::I16 => 2,
            TagType::U32 | TagType::I32 | TagType::F32 => 4,
        }
    }

    /// Coils or registers the tag spans.
    pub fn span(self) -> u16 {
        match self {
            TagType::Bool | TagType::U16 | TagType::I16 => 1,
            TagType::U32 | TagType::I32 | TagType::F32 => 2,
        }
    }

    fn name(self) -> &'static str {
        match self {
            TagType::Bool => "bool",
            TagType::U16 => "u16",
            TagType::I16 => "i16",
            TagType::U32 => "u32",
            TagType::I32 => "i32",
            TagType::F32 => "f32",
        }
    }
}

/// How a 32-bit tag's two registers are ordered (the bytes within a register are always
/// big-endian, as Modbus says).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WordOrder {
    /// The register at `address` holds the high 16 bits (the Modbus convention).
    #[default]
    HighFirst,
    /// The register at `address` holds the low 16 bits.
    LowFirst,
}

/// Whether the program reads a tag (in the input image) or writes it (outputs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Polled by the gateway, in the input image.
    In,
    /// Written by the program, written to the device by the gateway.
    Out,
}

/// What the writes of an out tag are as outputs (docs/GATEWAY.md, "Level and event
/// outputs").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TagOutputKind {
    /// Only the newest value matters (a coil, a setpoint): a level keyed by the tag's
    /// position in the map.
    #[default]
    Level,
    /// Every write matters, in order (a pulse counter, a command): an event.
    Event,
}

/// One polled block: `count` coils or registers from `start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockSpec {
    /// The first address (0-based, as on the wire).
    pub start: u16,
    /// How many (1..=125 registers, 1..=2000 bits).
    pub count: u16,
}

fn default_unit_id() -> u8 {
    1
}

fn default_timeout_ms() -> u64 {
    100
}

fn default_pipeline_depth() -> u16 {
    1
}

fn default_scale() -> f64 {
    1.0
}

/// A `[[device]]` of the tag map, as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceSpec {
    /// Unique, 1..=64 bytes.
    pub name: String,
    /// `ip:port` (not a host name: the gateway resolves nothing at run time).
    pub address: String,
    /// The Modbus unit id (default 1).
    #[serde(default = "default_unit_id")]
    pub unit_id: u8,
    /// How long the gateway waits for the answers of one cycle's polls (1..=60000,
    /// default 100; at most the gateway's `cycle_ms`).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// How many requests the gateway keeps in flight on the connection, 1..=16 (default
    /// 1: many devices, and pymodbus, read one request at a time; a device that queues
    /// transactions answers a cycle's polls sooner with more).
    #[serde(default = "default_pipeline_depth")]
    pub pipeline_depth: u16,
    /// Coil blocks polled each cycle.
    #[serde(default)]
    pub coils: Vec<BlockSpec>,
    /// Discrete-input blocks polled each cycle.
    #[serde(default)]
    pub discrete_inputs: Vec<BlockSpec>,
    /// Input-register blocks polled each cycle.
    #[serde(default)]
    pub input_registers: Vec<BlockSpec>,
    /// Holding-register blocks polled each cycle.
    #[serde(default)]
    pub holding_registers: Vec<BlockSpec>,
}

impl DeviceSpec {
    /// The blocks of `table`.
    pub fn blocks(&self, table: Table) -> &[BlockSpec] {
        match table {
            Table::Coil => &self.coils,
            Table::DiscreteInput => &self.discrete_inputs,
            Table::InputRegister => &self.input_registers,
            Table::HoldingRegister => &self.holding_registers,
        }
    }
}

/// A `[[tag]]` of the tag map, as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagSpec {
    /// Unique, 1..=64 bytes: the program resolves it once.
    pub name: String,
    /// The device's name.
    pub device: String,
    /// The table.
    pub table: Table,
    /// The (first) address.
    pub address: u16,
    /// The type.
    #[serde(rename = "type")]
    pub kind: TagType,
    /// 32-bit types only: which register holds the high word (default `high_first`).
    #[serde(default)]
    pub word_order: WordOrder,
    /// Numeric tags: engineering value = raw × scale + offset (default 1; finite, not 0).
    #[serde(default = "default_scale")]
    pub scale: f64,
    /// Numeric tags: see `scale` (default 0; finite).
    #[serde(default)]
    pub offset: f64,
    /// `in` or `out`.
    pub direction: Direction,
    /// Out tags only: the engineering value the gateway writes when the nodes fall
    /// silent (docs/GATEWAY.md, "Failure behaviour"). None: the tag is held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safe: Option<f64>,
    /// Out tags only (`kind` in the file): `level` (the default) or `event`.
    #[serde(rename = "kind", default, skip_serializing_if = "is_level")]
    pub output_kind: TagOutputKind,
}

fn is_level(kind: &TagOutputKind) -> bool {
    *kind == TagOutputKind::Level
}

/// A tag map as written: the `[[device]]` and `[[tag]]` tables.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagMapSpec {
    /// The devices, in image order.
    #[serde(default)]
    pub device: Vec<DeviceSpec>,
    /// The tags, in image order.
    #[serde(default)]
    pub tag: Vec<TagSpec>,
}

/// One mistake in a tag map; the message names the fix.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq)]
pub enum TagMapError {
    /// No `[[device]]`.
    NoDevices,
    /// More devices than [`DEVICES_MAX`].
    TooManyDevices(usize),
    /// More tags than [`TAGS_MAX`].
    TooManyTags(usize),
    /// A name empty or longer than [`NAME_BYTES_MAX`].
    BadName(String),
    /// Two devices of one name.
    DuplicateDevice(String),
    /// Two tags of one name.
    DuplicateTag(String),
    /// A device address that is not `ip:port`.
    DeviceAddress {
        /// The device.
        device: String,
        /// What was written.
        address: String,
    },
    /// A device timeout out of 1..=[`TIMEOUT_MS_MAX`].
    DeviceTimeout {
        /// The device.
        device: String,
        /// What was written.
        timeout_ms: u64,
    },
    /// A pipeline depth out of 1..=[`PIPELINE_DEPTH_MAX`].
    PipelineDepth {
        /// The device.
        device: String,
        /// What was written.
        depth: u16,
    },
    /// More blocks on a device than [`BLOCKS_PER_DEVICE_MAX`].
    TooManyBlocks {
        /// The device.
        device: String,
        /// How many.
        blocks: usize,
    },
    /// A block of 0 or too many addresses for one request.
    BlockCount {
        /// The device.
        device: String,
        /// The table.
        table: Table,
        /// Its start.
        start: u16,
        /// Its count.
        count: u16,
    },
    /// A block past address 65535.
    BlockOutOfRange {
        /// The device.
        device: String,
        /// The table.
        table: Table,
        /// Its start.
        start: u16,
        /// Its count.
        count: u16,
    },
    /// Two blocks of one table of one device share an address.
    BlocksOverlap {
        /// The device.
        device: String,
        /// The table.
        table: Table,
        /// The first block's start.
        first: u16,
        /// The second block's start.
        second: u16,
    },
    /// A tag names a device the map does not have.
    UnknownDevice {
        /// The tag.
        tag: String,
        /// The device it names.
        device: String,
    },
    /// A bool on a register table or a number on a bit table.
    TypeTable {
        /// The tag.
        tag: String,
        /// Its type.
        kind: TagType,
        /// Its table.
        table: Table,
    },
    /// An out tag on a read-only table.
    OutReadOnly {
        /// The tag.
        tag: String,
        /// Its table.
        table: Table,
    },
    /// A tag whose registers run past address 65535.
    TagOutOfRange {
        /// The tag.
        tag: String,
    },
    /// Two tags of one device and table share an address.
    TagsOverlap {
        /// The first tag.
        first: String,
        /// The second tag.
        second: String,
    },
    /// An in tag outside every polled block of its table.
    NotPolled {
        /// The tag.
        tag: String,
    },
    /// A scale of 0 or not finite, an offset not finite, or a scaling on a bool.
    Scaling {
        /// The tag.
        tag: String,
    },
    /// A `safe` value on an in tag, or one the tag's type cannot hold.
    Safe {
        /// The tag.
        tag: String,
    },
    /// `kind = "event"` on an in tag.
    EventIn {
        /// The tag.
        tag: String,
    },
    /// The input image is larger than a frame payload.
    ImageTooLarge {
        /// Its size.
        bytes: usize,
    },
    /// [`TagMap::handle`]: no tag of that name.
    UnknownTag(String),
}

impl fmt::Display for TagMapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use TagMapError as E;
        match self {
            E::NoDevices => write!(f, "the tag map has no [[device]]: add at least one"),
            E::TooManyDevices(n) => write!(f, "the tag map has {n} devices: at most {DEVICES_MAX}, run a second gateway for the rest"),
            E::TooManyTags(n) => write!(f, "the tag map has {n} tags: at most {TAGS_MAX}"),
            E::BadName(name) => write!(f, "name {name:?}: use 1..={NAME_BYTES_MAX} bytes"),
            E::DuplicateDevice(name) => write!(f, "device {name:?} is defined twice: rename one"),
            E::DuplicateTag(name) => write!(f, "tag {name:?} is defined twice: rename one"),
            E::DeviceAddress { device, address } => write!(f, "device {device:?}: address {address:?} is not ip:port (e.g. \"192.168.0.10:502\"; host names are not resolved)"),
            E::DeviceTimeout { device, timeout_ms } => write!(f, "device {device:?}: timeout_ms {timeout_ms} out of range: use 1..={TIMEOUT_MS_MAX}"),
            E::PipelineDepth { device, depth } => write!(
                f,
                "device {device:?}: pipeline_depth {depth} out of range: use 1..={PIPELINE_DEPTH_MAX} (1 when unsure)"
            ),
            E::TooManyBlocks { device, blocks } => write!(f, "device {device:?} polls {blocks} blocks: at most {BLOCKS_PER_DEVICE_MAX}, merge neighbouring blocks"),
            E::BlockCount { device, table, start, count } => {
                let max = if table.is_bits() { BIT_BLOCK_MAX } else { REGISTER_BLOCK_MAX };
                write!(f, "device {device:?}: {} block at {start} has count {count}: use 1..={max} (one Modbus request), split it", table.name())
            }
            E::BlockOutOfRange { device, table, start, count } => write!(f, "device {device:?}: {} block at {start} with count {count} runs past address 65535: lower start or count", table.name()),
            E::BlocksOverlap { device, table, first, second } => write!(f, "device {device:?}: {} blocks at {first} and {second} overlap: merge them or move one", table.name()),
            E::UnknownDevice { tag, device } => write!(f, "tag {tag:?} names device {device:?}, which the map does not define: add a [[device]] of that name or fix the tag"),
            E::TypeTable { tag, kind, table } => write!(f, "tag {tag:?}: type {} cannot live in table {}: bool goes in coil or discrete_input, numbers in input_register or holding_register", kind.name(), table.name()),
            E::OutReadOnly { tag, table } => write!(f, "tag {tag:?} is an out tag in the read-only table {}: use coil or holding_register", table.name()),
            E::TagOutOfRange { tag } => write!(f, "tag {tag:?} runs past address 65535: lower its address"),
            E::TagsOverlap { first, second } => write!(f, "tags {first:?} and {second:?} share an address of the same device and table: move one"),
            E::NotPolled { tag } => write!(f, "in tag {tag:?} lies outside every polled block of its device and table: add or widen a block"),
            E::Scaling { tag } => write!(f, "tag {tag:?}: scale must be finite and not 0, offset finite, and a bool takes neither"),
            E::Safe { tag } => write!(f, "tag {tag:?}: safe is for out tags only, and must be a value its type can hold"),
            E::EventIn { tag } => write!(f, "in tag {tag:?}: kind is for out tags only (level or event); remove it"),
            E::ImageTooLarge { bytes } => write!(f, "the input image would be {bytes} bytes: at most {FRAME_PAYLOAD_MAX} (a frame payload); poll fewer in tags or run a second gateway"),
            E::UnknownTag(name) => write!(f, "no tag named {name:?} in the tag map"),
        }
    }
}

impl std::error::Error for TagMapError {}

/// A tag's value as the device holds it (the raw, unscaled value).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Value {
    /// A coil or discrete input.
    Bool(bool),
    /// One register.
    U16(u16),
    /// One register, two's complement.
    I16(i16),
    /// Two registers.
    U32(u32),
    /// Two registers, two's complement.
    I32(i32),
    /// Two registers, IEEE 754.
    F32(f32),
}

impl Value {
    /// The type of this value.
    pub fn kind(self) -> TagType {
        match self {
            Value::Bool(_) => TagType::Bool,
            Value::U16(_) => TagType::U16,
            Value::I16(_) => TagType::I16,
            Value::U32(_) => TagType::U32,
            Value::I32(_) => TagType::I32,
            Value::F32(_) => TagType::F32,
        }
    }

    /// The value as a number (a bool is 0 or 1).
    pub fn as_f64(self) -> f64 {
        match self {
            Value::Bool(b) => f64::from(u8::from(b)),
            Value::U16(v) => f64::from(v),
            Value::I16(v) => f64::from(v),
            Value::U32(v) => f64::from(v),
            Value::I32(v) => f64::from(v),
            Value::F32(v) => f64::from(v),
        }
    }

    /// Little-endian bytes, as in the image and outputs; returns the width.
    pub fn write_le(self, out: &mut [u8; 4]) -> usize {
        match self {
            Value::Bool(b) => {
                out[0] = u8::from(b);
                1
            }
            Value::U16(v) => {
                out[..2].copy_from_slice(&v.to_le_bytes());
                2
            }
            Value::I16(v) => {
                out[..2].copy_from_slice(&v.to_le_bytes());
                2
            }
            Value::U32(v) => {
                out.copy_from_slice(&v.to_le_bytes());
                4
            }
            Value::I32(v) => {
                out.copy_from_slice(&v.to_le_bytes());
                4
            }
            Value::F32(v) => {
                out.copy_from_slice(&v.to_bits().to_le_bytes());
                4
            }
        }
    }

    /// Reads a value of `kind` from little-endian `bytes` of exactly its width; a bool
    /// byte other than 0 or 1 is not a value.
    pub fn read_le(kind: TagType, bytes: &[u8]) -> Option<Value> {
        Some(match kind {
            TagType::Bool => match bytes {
                [0] => Value::Bool(false),
                [1] => Value::Bool(true),
                _ => return None,
            },
            TagType::U16 => Value::U16(u16::from_le_bytes(bytes.try_into().ok()?)),
            TagType::I16 => Value::I16(i16::from_le_bytes(bytes.try_into().ok()?)),
            TagType::U32 => Value::U32(u32::from_le_bytes(bytes.try_into().ok()?)),
            TagType::I32 => Value::I32(i32::from_le_bytes(bytes.try_into().ok()?)),
            TagType::F32 => Value::F32(f32::from_bits(u32::from_le_bytes(bytes.try_into().ok()?))),
        })
    }

    /// The registers a numeric value occupies on the device, in address order (`[v, 0]`
    /// with a span of 1 for 16-bit types); `None` for a bool.
    pub fn to_registers(self, order: WordOrder) -> Option<([u16; 2], usize)> {
        let split = |bits: u32| {
            let (high, low) = ((bits >> 16) as u16, bits as u16);
            match order {
                WordOrder::HighFirst => [high, low],
                WordOrder::LowFirst => [low, high],
            }
        };
        Some(match self {
            Value::Bool(_) => return None,
            Value::U16(v) => ([v, 0], 1),
            Value::I16(v) => ([v as u16, 0], 1),
            Value::U32(v) => (split(v), 2),
            Value::I32(v) => (split(v as u32), 2),
            Value::F32(v) => (split(v.to_bits()), 2),
        })
    }

    /// The numeric value of `kind` held in `registers` (address order).
    pub fn from_registers(kind: TagType, order: WordOrder, registers: [u16; 2]) -> Value {
        let joined = || {
            let (high, low) = match order {
                WordOrder::HighFirst => (registers[0], registers[1]),
                WordOrder::LowFirst => (registers[1], registers[0]),
            };
            (u32::from(high) << 16) | u32::from(low)
        };
        match kind {
            TagType::Bool => Value::Bool(registers[0] != 0),
            TagType::U16 => Value::U16(registers[0]),
            TagType::I16 => Value::I16(registers[0] as i16),
            TagType::U32 => Value::U32(joined()),
            TagType::I32 => Value::I32(joined() as i32),
            TagType::F32 => Value::F32(f32::from_bits(joined())),
        }
    }
}

/// A device's input quality in one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Quality {
    /// Every poll of the cycle answered.
    Ok,
    /// A poll was not answered within the device's `timeout_ms`.
    Timeout,
    /// The device answered a poll with a Modbus exception (its code, 1..=0x7F).
    Exception(u8),
    /// No connection to the device (never made, lost, or reconnecting).
    Disconnected,
    /// A quality byte this build does not know: bad.
    Unknown(u8),
}

impl Quality {
    /// The byte in the image.
    pub fn to_byte(self) -> u8 {
        match self {
            Quality::Ok => 0,
            Quality::Timeout => 1,
            Quality::Disconnected => 2,
            Quality::Exception(code) => 0x80 | (code & 0x7F),
            Quality::Unknown(byte) => byte,
        }
    }

    /// The quality a byte of the image says.
    pub fn from_byte(byte: u8) -> Quality {
        match byte {
            0 => Quality::Ok,
            1 => Quality::Timeout,
            2 => Quality::Disconnected,
            0x81..=0xFF => Quality::Exception(byte & 0x7F),
            other => Quality::Unknown(other),
        }
    }

    /// True for [`Quality::Ok`].
    pub fn is_ok(self) -> bool {
        self == Quality::Ok
    }

    /// The name in logs and `--json`.
    pub fn name(self) -> &'static str {
        match self {
            Quality::Ok => "ok",
            Quality::Timeout => "timeout",
            Quality::Exception(_) => "exception",
            Quality::Disconnected => "disconnected",
            Quality::Unknown(_) => "unknown",
        }
    }
}

/// Why a whole image was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageError {
    /// Not the map's image length.
    Length {
        /// The payload's length.
        bytes: usize,
    },
    /// An image version this build does not read.
    Version(u8),
    /// Laid out by another tag map (the gateway's and the program's differ).
    Layout(u32),
    /// Another device count than the map's.
    Devices(u8),
}

impl fmt::Display for ImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageError::Length { bytes } => write!(f, "an image of {bytes} bytes is not this tag map's length"),
            ImageError::Version(v) => write!(f, "image version {v} unknown"),
            ImageError::Layout(id) => write!(
                f,
                "image laid out by another tag map ({id:#010x}): give the gateway and the program the same map"
            ),
            ImageError::Devices(n) => write!(f, "image of {n} devices, not this tag map's count"),
        }
    }
}

/// Why a tag has no value this frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bad {
    /// Its device's quality is not ok.
    Quality(Quality),
    /// The whole image was refused.
    Image(ImageError),
    /// Not an in tag (out tags are not in the image).
    NotInput,
    /// The value's bytes are not a value of its type (a bool byte other than 0 and 1).
    Value,
}

/// A tag read from an image: the raw value and the engineering value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    /// As the device holds it.
    pub raw: Value,
    /// raw × scale + offset (a bool: 0 or 1).
    pub value: f64,
}

/// A handle to a tag, resolved by name once ([`TagMap::handle`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TagHandle(pub u16);

impl TagHandle {
    /// The tag's position in the map.
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

/// One checked tag.
#[derive(Debug, Clone, PartialEq)]
pub struct Tag {
    /// Its name.
    pub name: String,
    /// Its device's position in the map.
    pub device: usize,
    /// Its table.
    pub table: Table,
    /// Its (first) address.
    pub address: u16,
    /// Its type.
    pub kind: TagType,
    /// 32-bit types: the register order.
    pub word_order: WordOrder,
    /// The scaling factor.
    pub scale: f64,
    /// The scaling offset.
    pub offset: f64,
    /// In or out.
    pub direction: Direction,
    /// Out tags: the raw value to write when the nodes fall silent.
    pub safe: Option<Value>,
    /// Out tags: a level (the default) or an event.
    pub output_kind: TagOutputKind,
    /// In tags: the value's offset in the image.
    pub image_at: Option<usize>,
}

/// One checked device.
#[derive(Debug, Clone, PartialEq)]
pub struct Device {
    /// Its name.
    pub name: String,
    /// Its address.
    pub address: SocketAddr,
    /// Its unit id.
    pub unit_id: u8,
    /// Its timeout.
    pub timeout_ms: u64,
    /// The requests in flight at most.
    pub pipeline_depth: u16,
    /// Its polled blocks, by table (in [`Table::ALL`] order).
    pub blocks: Vec<(Table, BlockSpec)>,
}

/// Where the gateway finds a device's polled values while it assembles an image.
pub trait PolledValues {
    /// The bit at `address` of `table` of device `device`, from this cycle's answers.
    fn bit(&self, device: usize, table: Table, address: u16) -> bool;
    /// The register at `address` of `table` of device `device`.
    fn register(&self, device: usize, table: Table, address: u16) -> u16;
}

/// A checked tag map.
#[derive(Debug, Clone, PartialEq)]
pub struct TagMap {
    devices: Vec<Device>,
    tags: Vec<Tag>,
    layout_id: u32,
    image_len: usize,
}

fn check_name(name: &str) -> Result<(), TagMapError> {
    if name.is_empty() || name.len() > NAME_BYTES_MAX {
        return Err(TagMapError::BadName(name.into()));
    }
    Ok(())
}

/// The end (exclusive) of `count` addresses from `start`, if within the 65536 addresses.
fn end_of(start: u16, count: u16) -> Option<u32> {
    let end = u32::from(start) + u32::from(count);
    (end <= 0x1_0000).then_some(end)
}

impl TagMap {
    /// Checks a tag map; the first mistake is the error.
    pub fn new(spec: &TagMapSpec) -> Result<TagMap, TagMapError> {
        if spec.device.is_empty() {
            return Err(TagMapError::NoDevices);
        }
        if spec.device.len() > DEVICES_MAX {
            return Err(TagMapError::TooManyDevices(spec.device.len()));
        }
        if spec.tag.len() > TAGS_MAX {
            return Err(TagMapError::TooManyTags(spec.tag.len()));
        }
        let mut devices: Vec<Device> = Vec::with_capacity(spec.device.len());
        for d in &spec.device {
            check_name(&d.name)?;
            if devices.iter().any(|other| other.name == d.name) {
                return Err(TagMapError::DuplicateDevice(d.name.clone()));
            }
            let address: SocketAddr = d.address.parse().map_err(|_| TagMapError::DeviceAddress {
                device: d.name.clone(),
                address: d.address.clone(),
            })?;
            if d.timeout_ms == 0 || d.timeout_ms > TIMEOUT_MS_MAX {
                return Err(TagMapError::DeviceTimeout {
                    device: d.name.clone(),
                    timeout_ms: d.timeout_ms,
                });
            }
            if d.pipeline_depth == 0 || d.pipeline_depth > PIPELINE_DEPTH_MAX {
                return Err(TagMapError::PipelineDepth {
                    device: d.name.clone(),
                    depth: d.pipeline_depth,
                });
            }
            let count: usize = Table::ALL.iter().map(|&t| d.blocks(t).len()).sum();
            if count > BLOCKS_PER_DEVICE_MAX {
                return Err(TagMapError::TooManyBlocks {
                    device: d.name.clone(),
                    blocks: count,
                });
            }
            let mut blocks = Vec::with_capacity(count);
            for table in Table::ALL {
                let max = if table.is_bits() {
                    BIT_BLOCK_MAX
                } else {
                    REGISTER_BLOCK_MAX
                };
                let list = d.blocks(table);
                for (i, b) in list.iter().enumerate() {
                    let err_block = || (d.name.clone(), table, b.start, b.count);
                    if b.count == 0 || b.count > max {
                        let (device, table, start, count) = err_block();
                        return Err(TagMapError::BlockCount {
                            device,
                            table,
                            start,
                            count,
                        });
                    }
                    let Some(end) = end_of(b.start, b.count) else {
                        let (device, table, start, count) = err_block();
                        return Err(TagMapError::BlockOutOfRange {
                            device,
                            table,
                            start,
                            count,
                        });
                    };
                    for earlier in &list[..i] {
                        let earlier_end = u32::from(earlier.start) + u32::from(earlier.count);
                        if u32::from(b.start) < earlier_end && u32::from(earlier.start) < end {
                            return Err(TagMapError::BlocksOverlap {
                                device: d.name.clone(),
                                table,
                                first: earlier.start,
                                second: b.start,
                            });
                        }
                    }
                    blocks.push((table, *b));
                }
            }
            devices.push(Device {
                name: d.name.clone(),
                address,
                unit_id: d.unit_id,
                timeout_ms: d.timeout_ms,
                pipeline_depth: d.pipeline_depth,
                blocks,
            });
        }
        let mut image_len = IMAGE_HEADER_BYTES + devices.len();
        let mut tags: Vec<Tag> = Vec::with_capacity(spec.tag.len());
        for t in &spec.tag {
            check_name(&t.name)?;
            if tags.iter().any(|other| other.name == t.name) {
                return Err(TagMapError::DuplicateTag(t.name.clone()));
            }
            let Some(device) = devices.iter().position(|d| d.name == t.device) else {
                return Err(TagMapError::UnknownDevice {
                    tag: t.name.clone(),
                    device: t.device.clone(),
                });
            };
            if t.table.is_bits() != (t.kind == TagType::Bool) {
                return Err(TagMapError::TypeTable {
                    tag: t.name.clone(),
                    kind: t.kind,
                    table: t.table,
                });
            }
            if t.direction == Direction::Out && !t.table.is_writable() {
                return Err(TagMapError::OutReadOnly {
                    tag: t.name.clone(),
                    table: t.table,
                });
            }
            let Some(end) = end_of(t.address, t.kind.span()) else {
                return Err(TagMapError::TagOutOfRange { tag: t.name.clone() });
            };
            for other in &tags {
                let other_end = u32::from(other.address) + u32::from(other.kind.span());
                if other.device == device
                    && other.table == t.table
                    && u32::from(t.address) < other_end
                    && u32::from(other.address) < end
                {
                    return Err(TagMapError::TagsOverlap {
                        first: other.name.clone(),
                        second: t.name.clone(),
                    });
                }
            }
            let scaled = t.scale != 1.0 || t.offset != 0.0;
            if !t.scale.is_finite() || t.scale == 0.0 || !t.offset.is_finite() || (t.kind == TagType::Bool && scaled) {
                return Err(TagMapError::Scaling { tag: t.name.clone() });
            }
            let polled = devices[device].blocks.iter().any(|&(table, b)| {
                table == t.table && b.start <= t.address && end <= u32::from(b.start) + u32::from(b.count)
            });
            let image_at = match t.direction {
                Direction::In => {
                    if !polled {
                        return Err(TagMapError::NotPolled { tag: t.name.clone() });
                    }
                    let at = image_len;
                    image_len += t.kind.width_bytes();
                    Some(at)
                }
                Direction::Out => None,
            };
            let mut tag = Tag {
                name: t.name.clone(),
                device,
                table: t.table,
                address: t.address,
                kind: t.kind,
                word_order: t.word_order,
                scale: t.scale,
                offset: t.offset,
                direction: t.direction,
                safe: None,
                output_kind: t.output_kind,
                image_at,
            };
            if t.direction == Direction::In && t.output_kind != TagOutputKind::Level {
                return Err(TagMapError::EventIn { tag: t.name.clone() });
            }
            if let Some(safe) = t.safe {
                let value = (t.direction == Direction::Out)
                    .then(|| tag.raw_from_value(safe))
                    .flatten()
                    .ok_or_else(|| TagMapError::Safe { tag: t.name.clone() })?;
                tag.safe = Some(value);
            }
            tags.push(tag);
        }
        if image_len > FRAME_PAYLOAD_MAX {
            return Err(TagMapError::ImageTooLarge { bytes: image_len });
        }
        let layout_id = fingerprint(&devices, &tags);
        Ok(TagMap {
            devices,
            tags,
            layout_id,
            image_len,
        })
    }

    /// The handle of the tag `name` (resolve once at start, not per cycle).
    pub fn handle(&self, name: &str) -> Result<TagHandle, TagMapError> {
        self.tags
            .iter()
            .position(|t| t.name == name)
            .and_then(|i| u16::try_from(i).ok())
            .map(TagHandle)
            .ok_or_else(|| TagMapError::UnknownTag(name.into()))
    }

    /// The devices, in image order.
    pub fn devices(&self) -> &[Device] {
        &self.devices
    }

    /// The tags, in map order.
    pub fn tags(&self) -> &[Tag] {
        &self.tags
    }

    /// The tag of `handle`, if the map has it.
    pub fn tag(&self, handle: TagHandle) -> Option<&Tag> {
        self.tags.get(handle.index())
    }

    /// The map's fingerprint (CRC-32C of its layout: every device's name and unit, every
    /// tag's name, device, table, address, type, word order, scaling and direction), in
    /// every image and output so that a gateway and a program of different maps never
    /// read each other's bytes.
    pub fn layout_id(&self) -> u32 {
        self.layout_id
    }

    /// The input image's length in bytes.
    pub fn image_len(&self) -> usize {
        self.image_len
    }

    /// A view of `payload` as this map's input image (no copy, no allocation).
    pub fn image<'a>(&'a self, payload: &'a [u8]) -> Image<'a> {
        let check = || {
            if payload.len() != self.image_len {
                return Err(ImageError::Length { bytes: payload.len() });
            }
            if payload[0] != IMAGE_VERSION {
                return Err(ImageError::Version(payload[0]));
            }
            let layout = u32::from_le_bytes([payload[1], payload[2], payload[3], payload[4]]);
            if layout != self.layout_id {
                return Err(ImageError::Layout(layout));
            }
            if usize::from(payload[5]) != self.devices.len() {
                return Err(ImageError::Devices(payload[5]));
            }
            Ok(())
        };
        Image {
            map: self,
            payload,
            state: check(),
        }
    }

    /// Assembles the input image into `buf` (at least [`TagMap::image_len`] bytes) from
    /// each device's quality (`qualities[d]`, map order) and polled values; the tags of a
    /// device of bad quality are zero. Returns the length, or `None` when `buf` or
    /// `qualities` is too short.
    pub fn encode_image(&self, qualities: &[Quality], values: &impl PolledValues, buf: &mut [u8]) -> Option<usize> {
        let buf = buf.get_mut(..self.image_len)?;
        let qualities = qualities.get(..self.devices.len())?;
        buf.fill(0);
        buf[0] = IMAGE_VERSION;
        buf[1..5].copy_from_slice(&self.layout_id.to_le_bytes());
        buf[5] = u8::try_from(self.devices.len()).ok()?;
        for (i, q) in qualities.iter().enumerate() {
            buf[IMAGE_HEADER_BYTES + i] = q.to_byte();
        }
        for tag in &self.tags {
            let Some(at) = tag.image_at else { continue };
            if !qualities[tag.device].is_ok() {
                continue;
            }
            let value = if tag.kind == TagType::Bool {
                Value::Bool(values.bit(tag.device, tag.table, tag.address))
            } else {
                let first = values.register(tag.device, tag.table, tag.address);
                let second = if tag.kind.span() == 2 {
                    values.register(tag.device, tag.table, tag.address.wrapping_add(1))
                } else {
                    0
                };
                Value::from_registers(tag.kind, tag.word_order, [first, second])
            };
            let mut bytes = [0u8; 4];
            let width = value.write_le(&mut bytes);
            buf.get_mut(at..at + width)?.copy_from_slice(&bytes[..width]);
        }
        Some(self.image_len)
    }

    /// The raw value an out tag takes for the engineering value `value` (see
    /// [`Tag::raw_from_value`]); `None` for an unknown handle.
    pub fn raw_from_value(&self, handle: TagHandle, value: f64) -> Option<Value> {
        self.tag(handle)?.raw_from_value(value)
    }

    /// Encodes a write of `value` to the out tag `handle` as an output payload into `buf`;
    /// returns its length (8..=11), or `None` when the handle is not an out tag of this
    /// map or the value not of its type.
    pub fn encode_write(&self, handle: TagHandle, value: Value, buf: &mut [u8]) -> Option<usize> {
        let tag = self.tag(handle)?;
        if tag.direction != Direction::Out || value.kind() != tag.kind {
            return None;
        }
        let mut bytes = [0u8; 4];
        let width = value.write_le(&mut bytes);
        let buf = buf.get_mut(..7 + width)?;
        buf[0] = OUTPUT_KIND_WRITE;
        buf[1..5].copy_from_slice(&self.layout_id.to_le_bytes());
        buf[5..7].copy_from_slice(&handle.0.to_le_bytes());
        buf[7..].copy_from_slice(&bytes[..width]);
        Some(7 + width)
    }

    /// The heartbeat output payload of this map.
    pub fn heartbeat(&self) -> [u8; 5] {
        let id = self.layout_id.to_le_bytes();
        [OUTPUT_KIND_HEARTBEAT, id[0], id[1], id[2], id[3]]
    }

    /// Decodes an output payload against this map. Never panics.
    pub fn decode_output(&self, payload: &[u8]) -> Result<TagOutput, OutputError> {
        let (&kind, rest) = payload.split_first().ok_or(OutputError::Empty)?;
        let layout = rest.get(..4).ok_or(OutputError::Length)?;
        let layout = u32::from_le_bytes([layout[0], layout[1], layout[2], layout[3]]);
        match kind {
            OUTPUT_KIND_HEARTBEAT => {
                if payload.len() != 5 {
                    return Err(OutputError::Length);
                }
                if layout != self.layout_id {
                    return Err(OutputError::Layout(layout));
                }
                Ok(TagOutput::Heartbeat)
            }
            OUTPUT_KIND_WRITE => {
                if layout != self.layout_id {
                    return Err(OutputError::Layout(layout));
                }
                let index = payload.get(5..7).ok_or(OutputError::Length)?;
                let handle = TagHandle(u16::from_le_bytes([index[0], index[1]]));
                let tag = self.tag(handle).ok_or(OutputError::UnknownTag(handle.0))?;
                if tag.direction != Direction::Out {
                    return Err(OutputError::NotOutput(handle.0));
                }
                if payload.len() != 7 + tag.kind.width_bytes() {
                    return Err(OutputError::Length);
                }
                let value = Value::read_le(tag.kind, &payload[7..]).ok_or(OutputError::Value)?;
                Ok(TagOutput::Write(handle, value))
            }
            other => Err(OutputError::Kind(other)),
        }
    }
}

impl Tag {
    /// The engineering value of a raw value: raw × scale + offset.
    pub fn value_of(&self, raw: Value) -> f64 {
        raw.as_f64() * self.scale + self.offset
    }

    /// The raw value for the engineering value `value`: (value − offset) / scale,
    /// rounded half away from zero for integer types; `None` when it is not finite or
    /// outside the type's range (never a silent clamp: the caller decides).
    pub fn raw_from_value(&self, value: f64) -> Option<Value> {
        let raw = (value - self.offset) / self.scale;
        if !raw.is_finite() {
            return None;
        }
        let int = raw.round();
        let within = |low: f64, high: f64| (low..=high).contains(&int).then_some(int);
        Some(match self.kind {
            TagType::Bool => Value::Bool(raw != 0.0),
            TagType::U16 => Value::U16(within(0.0, f64::from(u16::MAX))? as u16),
            TagType::I16 => Value::I16(within(f64::from(i16::MIN), f64::from(i16::MAX))? as i16),
            TagType::U32 => Value::U32(within(0.0, f64::from(u32::MAX))? as u32),
            TagType::I32 => Value::I32(within(f64::from(i32::MIN), f64::from(i32::MAX))? as i32),
            TagType::F32 => {
                let single = raw as f32;
                if !single.is_finite() {
                    return None;
                }
                Value::F32(single)
            }
        })
    }
}

/// The layout's fingerprint: CRC-32C over a canonical text of what decides the bytes.
fn fingerprint(devices: &[Device], tags: &[Tag]) -> u32 {
    use std::fmt::Write;
    let mut text = String::new();
    for d in devices {
        let _ = writeln!(text, "device {} {}", d.name, d.unit_id);
    }
    for t in tags {
        let _ = writeln!(
            text,
            "tag {} {} {} {} {} {:?} {:016x} {:016x} {:?}",
            t.name,
            t.device,
            t.table.name(),
            t.address,
            t.kind.name(),
            t.word_order,
            t.scale.to_bits(),
            t.offset.to_bits(),
            t.direction
        );
        // Only an event tag adds to the text: the layout ids of maps written before
        // tags had kinds (all levels) stay what they were.
        if t.output_kind == TagOutputKind::Event {
            let _ = writeln!(text, "event {}", t.name);
        }
    }
    crc32c(text.as_bytes())
}

/// An input image: a payload seen through its tag map.
#[derive(Debug, Clone, Copy)]
pub struct Image<'a> {
    map: &'a TagMap,
    payload: &'a [u8],
    state: Result<(), ImageError>,
}

impl Image<'_> {
    /// Whether the whole image was accepted.
    pub fn check(&self) -> Result<(), ImageError> {
        self.state
    }

    /// The quality of device `device` (map order), or the image's error when the whole
    /// image was refused ([`Image::check`]).
    pub fn quality(&self, device: usize) -> Result<Quality, Bad> {
        self.state.map_err(Bad::Image)?;
        let byte = self.payload.get(IMAGE_HEADER_BYTES + device).ok_or(Bad::NotInput)?;
        Ok(Quality::from_byte(*byte))
    }

    /// The tag `handle`'s reading this frame, or why there is none.
    pub fn tag(&self, handle: TagHandle) -> Result<Reading, Bad> {
        self.state.map_err(Bad::Image)?;
        let tag = self.map.tag(handle).ok_or(Bad::NotInput)?;
        let at = tag.image_at.ok_or(Bad::NotInput)?;
        let quality = self.quality(tag.device)?;
        if !quality.is_ok() {
            return Err(Bad::Quality(quality));
        }
        let bytes = self.payload.get(at..at + tag.kind.width_bytes()).ok_or(Bad::Value)?;
        let raw = Value::read_le(tag.kind, bytes).ok_or(Bad::Value)?;
        Ok(Reading {
            raw,
            value: tag.value_of(raw),
        })
    }
}

/// A decoded output payload.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TagOutput {
    /// Write this raw value to this out tag.
    Write(TagHandle, Value),
    /// The program is alive; nothing to write.
    Heartbeat,
}

/// Why an output payload was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputError {
    /// No bytes.
    Empty,
    /// A kind this build does not know.
    Kind(u8),
    /// Not the length of its kind (and tag type).
    Length,
    /// Written against another tag map.
    Layout(u32),
    /// No tag at that position.
    UnknownTag(u16),
    /// The tag is an in tag.
    NotOutput(u16),
    /// A bool byte other than 0 or 1.
    Value,
}

impl fmt::Display for OutputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OutputError::Empty => write!(f, "empty output"),
            OutputError::Kind(k) => write!(f, "output kind {k} unknown"),
            OutputError::Length => write!(f, "output length does not match its kind and tag"),
            OutputError::Layout(id) => write!(
                f,
                "output written against another tag map ({id:#010x}): give the gateway and the program the same map"
            ),
            OutputError::UnknownTag(i) => write!(f, "output names tag {i}, which the map does not have"),
            OutputError::NotOutput(i) => write!(f, "output names tag {i}, an in tag"),
            OutputError::Value => write!(f, "output value is not a value of its tag's type"),
        }
    }
}

impl std::error::Error for OutputError {}

/// The output image of a program: the value last sent and the value wanted for each out
/// tag. Part of the program's state (snapshots carry it), so that a new primary sends
/// only changes, as the old one would have.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct OutputImage {
    sent: Vec<Option<Value>>,
    wanted: Vec<Option<Value>>,
    quiet_frames: u32,
    heartbeat_frames: u32,
}

impl OutputImage {
    /// An output image for `map`, sending a heartbeat after `heartbeat_frames` frames
    /// (at least 1) without a change. Allocates here, never after.
    pub fn new(map: &TagMap, heartbeat_frames: u32) -> OutputImage {
        OutputImage {
            sent: vec![None; map.tags.len()],
            wanted: vec![None; map.tags.len()],
            quiet_frames: 0,
            heartbeat_frames: heartbeat_frames.max(1),
        }
    }

    /// Sets the out tag `handle` to the raw `value` (sent by the next [`OutputImage::flush`]
    /// if it differs from the value last sent). `false`: not an out tag of `map`, or a
    /// value of another type; nothing changes.
    pub fn set(&mut self, map: &TagMap, handle: TagHandle, value: Value) -> bool {
        let fits = map
            .tag(handle)
            .is_some_and(|t| t.direction == Direction::Out && t.kind == value.kind());
        match self.wanted.get_mut(handle.index()) {
            Some(slot) if fits => {
                *slot = Some(value);
                true
            }
            _ => false,
        }
    }

    /// Sets the out tag `handle` to the engineering value `value` (see
    /// [`Tag::raw_from_value`]); `false` when it does not convert or is not an out tag.
    pub fn set_value(&mut self, map: &TagMap, handle: TagHandle, value: f64) -> bool {
        match map.raw_from_value(handle, value) {
            Some(raw) => self.set(map, handle, raw),
            None => false,
        }
    }

    /// Pushes one output per out tag whose wanted value differs from the one last sent,
    /// in map order, as many as `outbox` takes (the rest go next frame), or a heartbeat
    /// when nothing was sent for `heartbeat_frames` frames. Call once per frame.
    pub fn flush(&mut self, map: &TagMap, outbox: &mut Outbox) {
        let mut pushed = false;
        for (i, (sent, wanted)) in self.sent.iter_mut().zip(&self.wanted).enumerate() {
            let Some(value) = *wanted else { continue };
            if *sent == Some(value) {
                continue;
            }
            let mut buf = [0u8; OUTPUT_WRITE_BYTES_MAX];
            let handle = TagHandle(u16::try_from(i).unwrap_or(u16::MAX));
            let Some(len) = map.encode_write(handle, value, &mut buf) else {
                continue;
            };
            let pushed_one = match map.tags[i].output_kind {
                TagOutputKind::Level => outbox.push_level(handle.0, &buf[..len]),
                TagOutputKind::Event => outbox.push(&buf[..len]),
            };
            if pushed_one.is_err() {
                break;
            }
            *sent = Some(value);
            pushed = true;
        }
        if pushed {
            self.quiet_frames = 0;
            return;
        }
        self.quiet_frames = self.quiet_frames.saturating_add(1);
        if self.quiet_frames >= self.heartbeat_frames && outbox.push(&map.heartbeat()).is_ok() {
            self.quiet_frames = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn block(start: u16, count: u16) -> BlockSpec {
        BlockSpec { start, count }
    }

    fn device(name: &str) -> DeviceSpec {
        DeviceSpec {
            name: name.into(),
            address: "127.0.0.1:502".into(),
            unit_id: 1,
            timeout_ms: 100,
            pipeline_depth: 1,
            coils: vec![block(0, 8)],
            discrete_inputs: vec![],
            input_registers: vec![block(0, 10)],
            holding_registers: vec![block(100, 4)],
        }
    }

    fn tag(name: &str, table: Table, address: u16, kind: TagType, direction: Direction) -> TagSpec {
        TagSpec {
            name: name.into(),
            device: "tank".into(),
            table,
            address,
            kind,
            word_order: WordOrder::HighFirst,
            scale: 1.0,
            offset: 0.0,
            direction,
            safe: None,
            output_kind: TagOutputKind::Level,
        }
    }

    /// A tank: a level (u16, scaled to metres), a flow (f32 in two registers), a pump
    /// coil read back, a pump command (out, safe off) and a valve position (out).
    fn tank() -> TagMapSpec {
        TagMapSpec {
            device: vec![device("tank"), device("meter")],
            tag: vec![
                TagSpec {
                    scale: 0.001,
                    ..tag("level", Table::InputRegister, 0, TagType::U16, Direction::In)
                },
                tag("flow", Table::InputRegister, 2, TagType::F32, Direction::In),
                tag("running", Table::Coil, 1, TagType::Bool, Direction::In),
                TagSpec {
                    safe: Some(0.0),
                    ..tag("pump", Table::Coil, 0, TagType::Bool, Direction::Out)
                },
                TagSpec {
                    scale: 0.1,
                    ..tag("valve", Table::HoldingRegister, 100, TagType::I16, Direction::Out)
                },
                TagSpec {
                    device: "meter".into(),
                    word_order: WordOrder::LowFirst,
                    ..tag("total", Table::InputRegister, 4, TagType::U32, Direction::In)
                },
            ],
        }
    }

    /// Registers and bits of two devices, as a gateway holds them after polling.
    struct Polled {
        bits: [[bool; 8]; 2],
        registers: [[u16; 10]; 2],
    }

    impl PolledValues for Polled {
        fn bit(&self, device: usize, _: Table, address: u16) -> bool {
            self.bits[device][usize::from(address)]
        }
        fn register(&self, device: usize, _: Table, address: u16) -> u16 {
            self.registers[device][usize::from(address)]
        }
    }

    fn polled() -> Polled {
        let flow = 2.5f32.to_bits();
        Polled {
            bits: [[false, true, false, false, false, false, false, false], [false; 8]],
            registers: [
                [1500, 0, (flow >> 16) as u16, flow as u16, 0, 0, 0, 0, 0, 0],
                [0, 0, 0, 0, 0x5678, 0x1234, 0, 0, 0, 0],
            ],
        }
    }

    fn err(spec: &TagMapSpec) -> String {
        TagMap::new(spec).unwrap_err().to_string()
    }

    #[test]
    fn tag_map_new_lays_in_tags_out_in_map_order() {
        let map = TagMap::new(&tank()).unwrap();
        // header 6, two quality bytes, level 2, flow 4, running 1, total 4.
        assert_eq!(map.image_len(), 6 + 2 + 2 + 4 + 1 + 4);
        let at: Vec<_> = map.tags().iter().map(|t| t.image_at).collect();
        assert_eq!(at, [Some(8), Some(10), Some(14), None, None, Some(15)]);
        assert_eq!(map.tags()[3].safe, Some(Value::Bool(false)));
    }

    #[test]
    fn image_encoded_then_read_gives_each_tag() {
        let map = TagMap::new(&tank()).unwrap();
        let mut buf = [0u8; FRAME_PAYLOAD_MAX];
        let len = map
            .encode_image(&[Quality::Ok, Quality::Ok], &polled(), &mut buf)
            .unwrap();
        let image = map.image(&buf[..len]);
        assert_eq!(image.check(), Ok(()));
        let read = |name| image.tag(map.handle(name).unwrap());
        let level = read("level").unwrap();
        assert_eq!(level.raw, Value::U16(1500));
        assert!((level.value - 1.5).abs() < 1e-9);
        assert_eq!(read("flow").unwrap().raw, Value::F32(2.5));
        assert_eq!(read("running").unwrap().raw, Value::Bool(true));
        assert_eq!(read("total").unwrap().raw, Value::U32(0x1234_5678), "low word first");
        assert_eq!(read("pump"), Err(Bad::NotInput));
        // The bytes, as docs/GATEWAY.md lays them out.
        assert_eq!(buf[0], IMAGE_VERSION);
        assert_eq!(&buf[1..5], &map.layout_id().to_le_bytes());
        assert_eq!(&buf[5..8], &[2, 0, 0]);
        assert_eq!(&buf[8..10], &1500u16.to_le_bytes());
        assert_eq!(&buf[15..19], &0x1234_5678u32.to_le_bytes());
    }

    #[test]
    fn image_bad_device_reports_its_tags_bad_not_stale() {
        let map = TagMap::new(&tank()).unwrap();
        let mut buf = [0u8; FRAME_PAYLOAD_MAX];
        let len = map
            .encode_image(&[Quality::Exception(2), Quality::Ok], &polled(), &mut buf)
            .unwrap();
        let image = map.image(&buf[..len]);
        let level = map.handle("level").unwrap();
        assert_eq!(image.tag(level), Err(Bad::Quality(Quality::Exception(2))));
        assert_eq!(
            &buf[8..10],
            &[0, 0],
            "a bad device's values are zero, not the polled ones"
        );
        assert_eq!(
            image.tag(map.handle("total").unwrap()).unwrap().raw,
            Value::U32(0x1234_5678)
        );
        for q in [Quality::Timeout, Quality::Disconnected] {
            map.encode_image(&[q, Quality::Ok], &polled(), &mut buf).unwrap();
            assert_eq!(map.image(&buf[..len]).tag(level), Err(Bad::Quality(q)));
        }
    }

    #[test]
    fn image_of_another_map_is_refused_whole() {
        let map = TagMap::new(&tank()).unwrap();
        let mut other = tank();
        other.tag[0].address = 1;
        let other = TagMap::new(&other).unwrap();
        assert_ne!(map.layout_id(), other.layout_id());
        let mut buf = [0u8; FRAME_PAYLOAD_MAX];
        let len = other.encode_image(&[Quality::Ok; 2], &polled(), &mut buf).unwrap();
        let image = map.image(&buf[..len]);
        assert_eq!(image.check(), Err(ImageError::Layout(other.layout_id())));
        assert!(matches!(image.tag(map.handle("level").unwrap()), Err(Bad::Image(_))));
        assert_eq!(
            map.image(&buf[..len - 1]).check(),
            Err(ImageError::Length { bytes: len - 1 })
        );
    }

    #[test]
    fn tag_map_new_names_each_mistake() {
        let mut s = tank();
        s.tag[0].device = "pump-7".into();
        assert!(err(&s).contains("names device \"pump-7\""), "{}", err(&s));
        let mut s = tank();
        s.tag[1].address = 1; // flow 1..3 overlaps level at 0? no: level is 0, flow 1-2.
        s.tag[0].kind = TagType::U32; // level 0..2 now overlaps flow 1..3
        assert!(err(&s).contains("share an address"), "{}", err(&s));
        let mut s = tank();
        s.tag[0].address = 9;
        s.tag[0].kind = TagType::U32; // 9..11 runs out of the block 0..10
        assert!(err(&s).contains("outside every polled block"), "{}", err(&s));
        let mut s = tank();
        s.device[0].holding_registers = vec![block(65535, 2)];
        assert!(err(&s).contains("past address 65535"), "{}", err(&s));
        let mut s = tank();
        s.device[0].input_registers = vec![block(0, 10), block(9, 2)];
        assert!(err(&s).contains("overlap"), "{}", err(&s));
        let mut s = tank();
        s.device[0].input_registers = vec![block(0, 126)];
        assert!(err(&s).contains("1..=125"), "{}", err(&s));
        let mut s = tank();
        s.device[0].address = "tank.local:502".into();
        assert!(err(&s).contains("not ip:port"), "{}", err(&s));
        let mut s = tank();
        s.tag[2].kind = TagType::U16;
        assert!(err(&s).contains("cannot live in table coil"), "{}", err(&s));
        let mut s = tank();
        s.tag[0].direction = Direction::Out;
        assert!(err(&s).contains("read-only"), "{}", err(&s));
        let mut s = tank();
        s.tag[4].safe = Some(1e9);
        assert!(err(&s).contains("safe"), "{}", err(&s));
        let mut s = tank();
        s.tag[0].scale = 0.0;
        assert!(err(&s).contains("scale"), "{}", err(&s));
        let mut s = tank();
        s.device[1].name = "tank".into();
        assert!(err(&s).contains("defined twice"), "{}", err(&s));
        let mut s = tank();
        s.device[0].timeout_ms = 0;
        assert!(err(&s).contains("timeout_ms 0"), "{}", err(&s));
        let mut s = tank();
        s.device[0].pipeline_depth = 17;
        assert!(err(&s).contains("pipeline_depth 17"), "{}", err(&s));
    }

    #[test]
    fn tag_map_new_refuses_an_image_larger_than_a_frame() {
        let mut s = tank();
        s.tag.clear();
        s.device[0].input_registers = vec![block(0, 124), block(124, 124), block(248, 124)];
        for i in 0..130u16 {
            s.tag.push(tag(
                &format!("r{i}"),
                Table::InputRegister,
                i * 2,
                TagType::U32,
                Direction::In,
            ));
        }
        let e = err(&s);
        assert!(e.contains("at most 512"), "{e}");
    }

    #[test]
    fn output_image_sends_changes_only_then_heartbeats() {
        let map = TagMap::new(&tank()).unwrap();
        let (pump, valve) = (map.handle("pump").unwrap(), map.handle("valve").unwrap());
        let mut out = OutputImage::new(&map, 3);
        let frame = |out: &mut OutputImage| {
            let mut outbox = Outbox::new();
            out.flush(&map, &mut outbox);
            outbox
                .as_slice()
                .iter()
                .map(|p| map.decode_output(p).unwrap())
                .collect::<std::vec::Vec<_>>()
        };
        assert!(out.set(&map, pump, Value::Bool(true)));
        assert!(out.set_value(&map, valve, 12.34));
        assert_eq!(
            frame(&mut out),
            [
                TagOutput::Write(pump, Value::Bool(true)),
                TagOutput::Write(valve, Value::I16(123))
            ]
        );
        assert!(out.set(&map, pump, Value::Bool(true)), "the same value again");
        assert_eq!(frame(&mut out), []);
        assert_eq!(frame(&mut out), []);
        assert_eq!(frame(&mut out), [TagOutput::Heartbeat], "3 quiet frames");
        assert!(!out.set(&map, map.handle("level").unwrap(), Value::U16(1)), "an in tag");
        assert!(!out.set(&map, pump, Value::U16(1)), "another type");
        assert!(!out.set_value(&map, valve, 1e9), "out of range");
    }

    /// Issue 17: an out tag's writes are levels keyed by its position, or events when
    /// the map says `kind = "event"`; the heartbeat is an event.
    #[test]
    fn output_image_writes_levels_keyed_by_tag_and_event_tags_as_events() {
        let mut spec = tank();
        let plain = TagMap::new(&spec).unwrap().layout_id();
        let at = spec.tag.iter().position(|t| t.name == "pump").unwrap();
        spec.tag[at].output_kind = TagOutputKind::Event;
        let map = TagMap::new(&spec).unwrap();
        assert_ne!(map.layout_id(), plain, "the kind is part of the layout");
        let (pump, valve) = (map.handle("pump").unwrap(), map.handle("valve").unwrap());
        let mut out = OutputImage::new(&map, 1);
        assert!(out.set(&map, pump, Value::Bool(true)));
        assert!(out.set_value(&map, valve, 1.0));
        let mut outbox = Outbox::new();
        out.flush(&map, &mut outbox);
        assert_eq!(
            outbox.kinds(),
            [
                crate::app::OutputKind::Event,
                crate::app::OutputKind::Level { key: valve.0 }
            ]
        );
        outbox.clear();
        out.flush(&map, &mut outbox);
        assert_eq!(outbox.kinds(), [crate::app::OutputKind::Event], "the heartbeat");
        // An in tag cannot be an event.
        let mut spec = tank();
        spec.tag[0].output_kind = TagOutputKind::Event;
        let e = TagMap::new(&spec).unwrap_err();
        assert!(matches!(e, TagMapError::EventIn { .. }), "{e}");
        assert!(e.to_string().contains("remove it"), "{e}");
    }

    #[test]
    fn output_decode_refuses_other_maps_and_in_tags() {
        let map = TagMap::new(&tank()).unwrap();
        let mut buf = [0u8; OUTPUT_WRITE_BYTES_MAX];
        let valve = map.handle("valve").unwrap();
        let len = map.encode_write(valve, Value::I16(-5), &mut buf).unwrap();
        assert_eq!(len, 9);
        assert_eq!(
            map.decode_output(&buf[..len]),
            Ok(TagOutput::Write(valve, Value::I16(-5)))
        );
        assert_eq!(map.decode_output(&buf[..len - 1]), Err(OutputError::Length));
        buf[5] = 0; // tag 0: level, an in tag
        assert_eq!(map.decode_output(&buf[..len]), Err(OutputError::NotOutput(0)));
        buf[1] ^= 1;
        assert!(matches!(map.decode_output(&buf[..len]), Err(OutputError::Layout(_))));
        assert_eq!(map.decode_output(&[]), Err(OutputError::Empty));
        assert_eq!(map.decode_output(&map.heartbeat()), Ok(TagOutput::Heartbeat));
    }

    #[test]
    fn value_registers_round_trip_in_both_word_orders() {
        for order in [WordOrder::HighFirst, WordOrder::LowFirst] {
            for v in [
                Value::U32(0xDEAD_BEEF),
                Value::I32(-2),
                Value::F32(-1.25),
                Value::U16(7),
                Value::I16(-7),
            ] {
                let (regs, span) = v.to_registers(order).unwrap();
                assert_eq!(span, usize::from(v.kind().span()));
                assert_eq!(Value::from_registers(v.kind(), order, regs), v);
            }
        }
        assert_eq!(
            Value::U32(0x1234_5678).to_registers(WordOrder::HighFirst).unwrap().0,
            [0x1234, 0x5678]
        );
    }

    proptest! {
        /// Arbitrary bytes as an image: no panic, and a tag either reads or says why not.
        #[test]
        fn image_arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600), fix_header in any::<bool>()) {
            let map = TagMap::new(&tank()).unwrap();
            let mut bytes = bytes;
            if fix_header && bytes.len() >= 6 {
                bytes[0] = IMAGE_VERSION;
                bytes[1..5].copy_from_slice(&map.layout_id().to_le_bytes());
                bytes[5] = 2;
                bytes.resize(map.image_len(), 0);
            }
            let image = map.image(&bytes);
            for i in 0..map.tags().len() + 2 {
                let _ = image.tag(TagHandle(i as u16));
                let _ = image.quality(i);
            }
            if image.check().is_ok() {
                prop_assert_eq!(bytes.len(), map.image_len());
            }
        }

        /// Arbitrary bytes as an output payload: no panic; what decodes re-encodes the same.
        #[test]
        fn output_arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..16), fix_layout in any::<bool>()) {
            let map = TagMap::new(&tank()).unwrap();
            let mut bytes = bytes;
            if fix_layout && bytes.len() >= 5 {
                bytes[0] = 1 + bytes[0] % 2;
                bytes[1..5].copy_from_slice(&map.layout_id().to_le_bytes());
            }
            if let Ok(TagOutput::Write(handle, value)) = map.decode_output(&bytes) {
                let mut buf = [0u8; OUTPUT_WRITE_BYTES_MAX];
                let len = map.encode_write(handle, value, &mut buf).unwrap();
                // f32 NaN payloads compare unequal as values; compare the bytes.
                prop_assert_eq!(&buf[..len], &bytes[..]);
            }
        }

        /// Arbitrary qualities and values: what is encoded reads back, bad devices read bad.
        #[test]
        fn image_round_trip(q in proptest::collection::vec(0u8..=255, 2), regs in any::<[u16; 10]>(), bits in any::<[bool; 8]>()) {
            let map = TagMap::new(&tank()).unwrap();
            let qualities = [Quality::from_byte(q[0]), Quality::from_byte(q[1])];
            let values = Polled { bits: [bits, bits], registers: [regs, regs] };
            let mut buf = [0u8; FRAME_PAYLOAD_MAX];
            let len = map.encode_image(&qualities, &values, &mut buf).unwrap();
            let image = map.image(&buf[..len]);
            let level = image.tag(map.handle("level").unwrap());
            if qualities[0].is_ok() {
                prop_assert_eq!(level.unwrap().raw, Value::U16(regs[0]));
            } else {
                prop_assert_eq!(level, Err(Bad::Quality(Quality::from_byte(qualities[0].to_byte()))));
            }
        }
    }
}
