//! The tank program on tags (`[app] io = "tags"`): its inputs read from the input
//! process image of a Modbus gateway (`twinloop::image`, docs/GATEWAY.md), its actuator
//! command and alarm words written as out tags through an [`OutputImage`].
//!
//! This is an adapter, not a second program: [`TagIo::read`] turns an image into the same
//! [`TankInputs`] the binary layout decodes to, and [`TagIo::write`] turns the same
//! [`ActuatorCommand`] the binary layout encodes into out-tag values; the controller
//! between them is one code path (`tank.rs`).
//!
//! The tags the program needs are named below ([`INPUT_TAGS`], [`OUTPUT_TAGS`]); each is
//! resolved to a handle once, at start, and a missing or mistyped one is one
//! [`TagIoError`] naming it. Numeric tags are read and written raw, in the unit their
//! name says (µm, ml/s, permille): the program's arithmetic is integer, so a tag with a
//! scale or an offset is refused rather than rounded.
//!
//! A sensor tag of bad quality (its device timed out, answered an exception or is
//! disconnected) or an image refused whole is read as no inputs at all: the program
//! treats it exactly as a malformed binary payload — a sensor fault, the last good
//! inputs held, the pump off, the alarm latched. Both nodes get the same image bytes, so
//! both decide it alike.

use crate::layout::{di, flag, ActuatorCommand, TankInputs};
use std::fmt;
use twinloop::app::Outbox;
use twinloop::image::{
    Bad, BlockSpec, DeviceSpec, Direction, OutputImage, PolledValues, Quality, Table, TagHandle, TagMap, TagMapError,
    TagMapSpec, TagSpec, TagType, Value, WordOrder,
};

/// The digital inputs and their tags (all `bool`, `in`).
pub const INPUT_BITS: [(&str, u16); 6] = [
    ("pump_running", di::PUMP_RUNNING),
    ("suction_low", di::SUCTION_LOW),
    ("level_high_high", di::LEVEL_HIGH_HIGH),
    ("ack", di::ACK),
    ("auto", di::AUTO),
    ("estop_ok", di::ESTOP_OK),
];

/// Every tag the program reads: name, type, and whether the map must have it. Without
/// `setpoint_um` the operator panel never asks for a setpoint; without
/// `demand_flow_ml_per_s` (informational) the demand reads 0.
pub const INPUT_TAGS: [(&str, TagType, bool); 10] = [
    ("pump_running", TagType::Bool, true),
    ("suction_low", TagType::Bool, true),
    ("level_high_high", TagType::Bool, true),
    ("ack", TagType::Bool, true),
    ("auto", TagType::Bool, true),
    ("estop_ok", TagType::Bool, true),
    ("level_um", TagType::U32, true),
    ("pump_flow_ml_per_s", TagType::U32, true),
    ("setpoint_um", TagType::U32, false),
    ("demand_flow_ml_per_s", TagType::U32, false),
];

/// Every tag the program writes (all required): the actuator command (run, speed, horn)
/// and the alarm words (one bit per [`crate::tank::Alarm`]).
pub const OUTPUT_TAGS: [(&str, TagType); 5] = [
    ("pump_run", TagType::Bool),
    ("pump_speed_permille", TagType::U16),
    ("horn", TagType::Bool),
    ("alarms_latched", TagType::U16),
    ("alarms_unacked", TagType::U16),
];

/// The largest `heartbeat_frames`.
pub const HEARTBEAT_FRAMES_MAX: u32 = 100_000;

fn type_name(kind: TagType) -> &'static str {
    match kind {
        TagType::Bool => "bool",
        TagType::U16 => "u16",
        TagType::I16 => "i16",
        TagType::U32 => "u32",
        TagType::I32 => "i32",
        TagType::F32 => "f32",
    }
}

fn direction_name(direction: Direction) -> &'static str {
    match direction {
        Direction::In => "in",
        Direction::Out => "out",
    }
}

/// Why the tag map does not fit the program; the message names the tag and the fix.
#[derive(Debug, Clone, PartialEq)]
pub enum TagIoError {
    /// The map itself is wrong (`twinloop::image::TagMap::new`).
    Map(TagMapError),
    /// A tag the program needs is not in the map.
    Missing {
        /// Its name.
        tag: &'static str,
        /// The type it must have.
        kind: TagType,
        /// The direction it must have.
        direction: Direction,
    },
    /// A tag of another type than the program reads or writes.
    Mistyped {
        /// Its name.
        tag: &'static str,
        /// The type it must have.
        want: TagType,
        /// The type it has.
        got: TagType,
    },
    /// An input tag declared `out`, or an output tag declared `in`.
    Direction {
        /// Its name.
        tag: &'static str,
        /// The direction it must have.
        want: Direction,
    },
    /// A tag with a scale or an offset.
    Scaled {
        /// Its name.
        tag: &'static str,
    },
}

impl fmt::Display for TagIoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TagIoError::Map(e) => write!(f, "{e}"),
            TagIoError::Missing { tag, kind, direction } => write!(
                f,
                "the tank program needs the tag `{tag}` (type = \"{}\", direction = \"{}\"): add it to [[app.tag]]",
                type_name(*kind),
                direction_name(*direction)
            ),
            TagIoError::Mistyped { tag, want, got } => write!(
                f,
                "tag `{tag}` is of type {}, the tank program uses it as {}: set its type = \"{}\"",
                type_name(*got),
                type_name(*want),
                type_name(*want)
            ),
            TagIoError::Direction { tag, want } => write!(
                f,
                "tag `{tag}` must have direction = \"{}\" (the tank program {} it)",
                direction_name(*want),
                if *want == Direction::In { "reads" } else { "writes" }
            ),
            TagIoError::Scaled { tag } => write!(
                f,
                "tag `{tag}` has a scale or an offset; the tank program reads and writes raw integers in the unit its name says: remove scale and offset"
            ),
        }
    }
}

impl std::error::Error for TagIoError {}

/// The program's tag map with every tag it uses resolved to a handle, once.
#[derive(Debug, Clone)]
pub struct TagIo {
    map: TagMap,
    bits: [TagHandle; 6],
    level: TagHandle,
    pump_flow: TagHandle,
    setpoint: Option<TagHandle>,
    demand: Option<TagHandle>,
    pump_run: TagHandle,
    pump_speed: TagHandle,
    horn: TagHandle,
    alarms_latched: TagHandle,
    alarms_unacked: TagHandle,
}

impl TagIo {
    /// Checks the map and resolves the program's tags; the first problem is the error.
    pub fn new(spec: &TagMapSpec) -> Result<TagIo, TagIoError> {
        let map = TagMap::new(spec).map_err(TagIoError::Map)?;
        let resolve =
            |tag: &'static str, want: TagType, direction: Direction| -> Result<Option<TagHandle>, TagIoError> {
                let Ok(handle) = map.handle(tag) else {
                    return Ok(None);
                };
                let t = map.tag(handle).ok_or(TagIoError::Missing {
                    tag,
                    kind: want,
                    direction,
                })?;
                if t.direction != direction {
                    return Err(TagIoError::Direction { tag, want: direction });
                }
                if t.kind != want {
                    return Err(TagIoError::Mistyped { tag, want, got: t.kind });
                }
                if t.scale != 1.0 || t.offset != 0.0 {
                    return Err(TagIoError::Scaled { tag });
                }
                Ok(Some(handle))
            };
        let required = |tag: &'static str, want: TagType, direction: Direction| {
            resolve(tag, want, direction)?.ok_or(TagIoError::Missing {
                tag,
                kind: want,
                direction,
            })
        };
        for (name, kind, needed) in INPUT_TAGS {
            if needed {
                required(name, kind, Direction::In)?;
            }
        }
        for (name, kind) in OUTPUT_TAGS {
            required(name, kind, Direction::Out)?;
        }
        let mut bits = [TagHandle(0); 6];
        for (slot, (name, _)) in bits.iter_mut().zip(INPUT_BITS) {
            *slot = required(name, TagType::Bool, Direction::In)?;
        }
        Ok(TagIo {
            bits,
            level: required("level_um", TagType::U32, Direction::In)?,
            pump_flow: required("pump_flow_ml_per_s", TagType::U32, Direction::In)?,
            setpoint: resolve("setpoint_um", TagType::U32, Direction::In)?,
            demand: resolve("demand_flow_ml_per_s", TagType::U32, Direction::In)?,
            pump_run: required("pump_run", TagType::Bool, Direction::Out)?,
            pump_speed: required("pump_speed_permille", TagType::U16, Direction::Out)?,
            horn: required("horn", TagType::Bool, Direction::Out)?,
            alarms_latched: required("alarms_latched", TagType::U16, Direction::Out)?,
            alarms_unacked: required("alarms_unacked", TagType::U16, Direction::Out)?,
            map,
        })
    }

    /// The checked map.
    pub fn map(&self) -> &TagMap {
        &self.map
    }

    /// The program's inputs from an input image, or why there are none: a tag the program
    /// reads has a bad quality, or the image was refused whole. No allocation, no lookup by
    /// name.
    pub fn read(&self, payload: &[u8]) -> Result<TankInputs, Bad> {
        let image = self.map.image(payload);
        let bit = |handle: TagHandle| match image.tag(handle)?.raw {
            Value::Bool(b) => Ok(b),
            _ => Err(Bad::Value),
        };
        let number = |handle: TagHandle| match image.tag(handle)?.raw {
            Value::U32(v) => Ok(v),
            _ => Err(Bad::Value),
        };
        let mut digital = 0;
        for (&handle, (_, mask)) in self.bits.iter().zip(INPUT_BITS) {
            if bit(handle)? {
                digital |= mask;
            }
        }
        Ok(TankInputs {
            digital,
            level_um: number(self.level)?,
            pump_flow_ml_per_s: number(self.pump_flow)?,
            setpoint_um: self.setpoint.map_or(Ok(0), number)?,
            demand_flow_ml_per_s: self.demand.map_or(Ok(0), number)?,
        })
    }

    /// The input image a gateway sends for `inputs` read from a device of `quality` (for
    /// tests and simulations: the bytes the program then reads).
    pub fn image_of(&self, inputs: &TankInputs, quality: Quality) -> Vec<u8> {
        /// The device's table values: the tags of `self` at their addresses.
        struct Polled<'a>(&'a TagIo, &'a TankInputs);
        impl PolledValues for Polled<'_> {
            fn bit(&self, device: usize, table: Table, address: u16) -> bool {
                let (io, inputs) = (self.0, self.1);
                io.bits.iter().zip(INPUT_BITS).any(|(&h, (_, mask))| {
                    io.map
                        .tag(h)
                        .is_some_and(|t| t.device == device && t.table == table && t.address == address)
                        && inputs.has(mask)
                })
            }

            fn register(&self, device: usize, table: Table, address: u16) -> u16 {
                let (io, i) = (self.0, self.1);
                let numbers = [
                    (Some(io.level), i.level_um),
                    (Some(io.pump_flow), i.pump_flow_ml_per_s),
                    (io.setpoint, i.setpoint_um),
                    (io.demand, i.demand_flow_ml_per_s),
                ];
                for (handle, value) in numbers {
                    let Some(t) = handle.and_then(|h| io.map.tag(h)) else {
                        continue;
                    };
                    if t.device != device || t.table != table {
                        continue;
                    }
                    let (high, low) = ((value >> 16) as u16, value as u16);
                    let (first, second) = match t.word_order {
                        WordOrder::HighFirst => (high, low),
                        WordOrder::LowFirst => (low, high),
                    };
                    if address == t.address {
                        return first;
                    }
                    if address == t.address.wrapping_add(1) {
                        return second;
                    }
                }
                0
            }
        }
        let qualities = vec![quality; self.map.devices().len()];
        let mut buf = vec![0u8; self.map.image_len()];
        let len = self
            .map
            .encode_image(&qualities, &Polled(self, inputs), &mut buf)
            .unwrap_or(0);
        buf.truncate(len);
        buf
    }

    /// A fresh output image for the map (allocates: call at start).
    pub fn output_image(&self, heartbeat_frames: u32) -> OutputImage {
        OutputImage::new(&self.map, heartbeat_frames)
    }

    /// Sets the out tags to `command` and flushes the image into `outbox`: one output per
    /// tag that changed, in map order, or a heartbeat after `heartbeat_frames` quiet ones.
    pub fn write(&self, out: &mut OutputImage, command: &ActuatorCommand, outbox: &mut Outbox) {
        // Every tag written here is a level: the command's (only the latest value matters)
        // and the alarm words too — a word is the alarms' whole state, so after a takeover
        // its newest value is what the device must show, not each word on the way there.
        // An alarm *history* (each raise, acknowledgement, clearing) would be event tags.
        let map = &self.map;
        out.set(map, self.pump_run, Value::Bool(command.has(flag::PUMP_RUN)));
        out.set(map, self.pump_speed, Value::U16(command.pump_speed_permille));
        out.set(map, self.horn, Value::Bool(command.has(flag::HORN)));
        out.set(map, self.alarms_latched, Value::U16(command.alarms_latched));
        out.set(map, self.alarms_unacked, Value::U16(command.alarms_unacked));
        out.flush(map, outbox);
    }
}

/// The tag map of the demo's plant as the harness's Modbus device (`twinloop-sim run --io
/// modbus`) and configs/demo-tags.toml lay it out: one device `tank` at `address`, unit 1;
/// the six switches as discrete inputs 0..=5, the level, pump flow, panel setpoint and
/// demand as u32 input registers 0, 2, 4, 6 (high word first); the pump's run and the
/// horn as coils 0 and 1, its speed and the alarm words as holding registers 0, 1, 2.
/// The pump's run and speed go to 0 when the nodes fall silent.
pub fn plant_map(address: &str, timeout_ms: u64) -> TagMapSpec {
    let device = DeviceSpec {
        name: "tank".into(),
        address: address.into(),
        unit_id: 1,
        timeout_ms,
        pipeline_depth: 1,
        coils: Vec::new(),
        discrete_inputs: vec![BlockSpec { start: 0, count: 6 }],
        input_registers: vec![BlockSpec { start: 0, count: 8 }],
        holding_registers: Vec::new(),
    };
    let tag =
        |name: &str, table: Table, address: u16, kind: TagType, direction: Direction, safe: Option<f64>| TagSpec {
            name: name.into(),
            device: "tank".into(),
            table,
            address,
            kind,
            word_order: WordOrder::HighFirst,
            scale: 1.0,
            offset: 0.0,
            direction,
            safe,
            // Every out tag of the demo is a level (see `TagIo::write`).
            output_kind: Default::default(),
        };
    let mut tags = Vec::new();
    for (i, (name, _)) in INPUT_BITS.iter().enumerate() {
        tags.push(tag(
            name,
            Table::DiscreteInput,
            i as u16,
            TagType::Bool,
            Direction::In,
            None,
        ));
    }
    for (i, name) in ["level_um", "pump_flow_ml_per_s", "setpoint_um", "demand_flow_ml_per_s"]
        .iter()
        .enumerate()
    {
        tags.push(tag(
            name,
            Table::InputRegister,
            2 * i as u16,
            TagType::U32,
            Direction::In,
            None,
        ));
    }
    tags.push(tag(
        "pump_run",
        Table::Coil,
        0,
        TagType::Bool,
        Direction::Out,
        Some(0.0),
    ));
    tags.push(tag("horn", Table::Coil, 1, TagType::Bool, Direction::Out, None));
    tags.push(tag(
        "pump_speed_permille",
        Table::HoldingRegister,
        0,
        TagType::U16,
        Direction::Out,
        Some(0.0),
    ));
    tags.push(tag(
        "alarms_latched",
        Table::HoldingRegister,
        1,
        TagType::U16,
        Direction::Out,
        None,
    ));
    tags.push(tag(
        "alarms_unacked",
        Table::HoldingRegister,
        2,
        TagType::U16,
        Direction::Out,
        None,
    ));
    TagMapSpec {
        device: vec![device],
        tag: tags,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn spec() -> TagMapSpec {
        plant_map("127.0.0.1:5020", 8)
    }

    fn image(io: &TagIo, inputs: TankInputs, quality: Quality) -> Vec<u8> {
        io.image_of(&inputs, quality)
    }

    fn without(spec: &mut TagMapSpec, name: &str) {
        spec.tag.retain(|t| t.name != name);
    }

    fn edit(spec: &mut TagMapSpec, name: &str, f: impl FnOnce(&mut TagSpec)) {
        f(spec.tag.iter_mut().find(|t| t.name == name).unwrap());
    }

    #[test]
    fn tags_plant_map_resolves_every_tag() {
        let io = TagIo::new(&spec()).unwrap();
        assert_eq!(io.map().image_len(), 6 + 1 + 6 + 16);
        assert!(io.setpoint.is_some() && io.demand.is_some());
    }

    #[test]
    fn tags_missing_tag_is_one_error_naming_it() {
        let mut s = spec();
        without(&mut s, "level_um");
        let e = TagIo::new(&s).unwrap_err();
        assert_eq!(
            e,
            TagIoError::Missing {
                tag: "level_um",
                kind: TagType::U32,
                direction: Direction::In
            }
        );
        let text = e.to_string();
        assert!(text.contains("`level_um`") && text.contains("[[app.tag]]"), "{text}");
        let mut s = spec();
        without(&mut s, "alarms_unacked");
        assert!(TagIo::new(&s).unwrap_err().to_string().contains("`alarms_unacked`"));
        // The panel's setpoint and the demand are optional: read as 0.
        let mut s = spec();
        without(&mut s, "setpoint_um");
        without(&mut s, "demand_flow_ml_per_s");
        let io = TagIo::new(&s).unwrap();
        let inputs = TankInputs {
            digital: di::AUTO,
            level_um: 5,
            pump_flow_ml_per_s: 6,
            setpoint_um: 0,
            demand_flow_ml_per_s: 0,
        };
        assert_eq!(io.read(&image(&io, inputs, Quality::Ok)), Ok(inputs));
    }

    #[test]
    fn tags_mistyped_tag_is_one_error_naming_it() {
        let mut s = spec();
        edit(&mut s, "pump_speed_permille", |t| t.kind = TagType::I16);
        let e = TagIo::new(&s).unwrap_err();
        assert_eq!(
            e,
            TagIoError::Mistyped {
                tag: "pump_speed_permille",
                want: TagType::U16,
                got: TagType::I16
            }
        );
        assert!(e.to_string().contains("type = \"u16\""), "{e}");
        let mut s = spec();
        edit(&mut s, "ack", |t| t.direction = Direction::Out);
        edit(&mut s, "ack", |t| t.table = Table::Coil);
        // An optional tag, present, is checked as well.
        let mut s2 = spec();
        edit(&mut s2, "setpoint_um", |t| t.kind = TagType::F32);
        assert_eq!(
            TagIo::new(&s).unwrap_err(),
            TagIoError::Direction {
                tag: "ack",
                want: Direction::In
            }
        );
        assert!(matches!(
            TagIo::new(&s2).unwrap_err(),
            TagIoError::Mistyped { tag: "setpoint_um", .. }
        ));
        let mut s = spec();
        edit(&mut s, "level_um", |t| t.scale = 1000.0);
        assert_eq!(TagIo::new(&s).unwrap_err(), TagIoError::Scaled { tag: "level_um" });
        // The map's own mistakes come through whole.
        let mut s = spec();
        edit(&mut s, "horn", |t| t.device = "pump".into());
        assert!(matches!(TagIo::new(&s).unwrap_err(), TagIoError::Map(_)));
    }

    #[test]
    fn tags_read_gives_the_binary_layouts_inputs() {
        let io = TagIo::new(&spec()).unwrap();
        let inputs = TankInputs {
            digital: di::ALL,
            level_um: 1_234_567,
            pump_flow_ml_per_s: 70_000,
            setpoint_um: 900_000,
            demand_flow_ml_per_s: 1_500,
        };
        assert_eq!(io.read(&image(&io, inputs, Quality::Ok)), Ok(inputs));
        assert_eq!(
            io.read(&image(&io, inputs, Quality::Timeout)),
            Err(Bad::Quality(Quality::Timeout))
        );
        assert!(matches!(io.read(b"garbage"), Err(Bad::Image(_))));
    }

    proptest! {
        /// Whatever a frame carries, reading it never panics.
        #[test]
        fn tags_read_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let io = TagIo::new(&spec()).unwrap();
            let _ = io.read(&bytes);
            // Bytes with the map's header: a quality and values of any kind.
            let mut image = image(&io, TankInputs::default(), Quality::Ok);
            for (slot, b) in image.iter_mut().skip(5).zip(&bytes) {
                *slot = *b;
            }
            let _ = io.read(&image);
        }
    }
}
