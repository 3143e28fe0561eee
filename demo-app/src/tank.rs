//! The tank program: a PLC-style control program with accumulated state.
//!
//! A pump fills a tank from a supply; consumers draw from the tank. Each cycle the program
//!
//! 1. decodes the sensors (a malformed payload is a sensor fault: the last good inputs
//!    are held and the pump is stopped),
//! 2. evaluates the alarm conditions and latches them (dry run, high-level trip, low
//!    level, pump failure, sensor fault, emergency stop); the acknowledge button's rising
//!    edge acknowledges them, and an acknowledged alarm whose condition is gone clears,
//! 3. applies the interlocks: any latched tripping alarm, MANUAL mode or an open
//!    emergency stop circuit holds the pump off and resets the controller,
//! 4. runs a PI level controller (integral clamped, no integration while the output
//!    saturates in the direction of the error: anti-windup),
//! 5. integrates the pump flow into a totalizer, and
//! 6. emits the actuator command (output 0) and one event per alarm change (outputs 1..).
//!
//! With `[app] io = "tags"` the inputs come from the input process image of a Modbus
//! gateway instead of the binary layout, and the command and the alarm words leave as out
//! tags (one output per change); a sensor tag of bad quality is a sensor fault like a
//! malformed payload. The controller is the same: only the adapter at each end differs
//! ([`crate::tags`]).
//!
//! Every number is a fixed-width integer and every step is integer arithmetic, so the
//! program gives bit-identical results on every machine: no floating point, no clock,
//! no hash maps. A gap in frame numbers (frames nobody received) counts as elapsed time,
//! bounded by `gap_cycles_max`.

use crate::layout::{di, flag, ActuatorCommand, AlarmEvent, AlarmEventKind, LevelValue, TankInputs};
use crate::tags::{TagIo, HEARTBEAT_FRAMES_MAX};
use serde::{Deserialize, Serialize};
use twinloop::app::{
    restore_postcard, settings_digest, snapshot_postcard, App, AppIdentity, Frame, Outbox, SnapshotError,
};
use twinloop::digest::Fnv64;
use twinloop::hmi::HmiTag;
use twinloop::image::{DeviceSpec, OutputImage, TagMapSpec, TagSpec};

/// The program's alarms; the discriminant is the alarm's bit number in the command's
/// alarm words and the code in alarm events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alarm {
    /// The supply is empty (suction low switch): the pump would run dry. Trips the pump.
    DryRun = 0,
    /// The level reached the high trip (or the high-high switch closed). Trips the pump.
    HighLevel = 1,
    /// The level is below the low alarm limit. Warning only.
    LowLevel = 2,
    /// The pump was commanded to run but reported no running feedback for
    /// `pump_fail_cycles`. Trips the pump.
    PumpFail = 3,
    /// The input payload did not decode or the level is out of the transmitter's range.
    /// Trips the pump.
    SensorFault = 4,
    /// The emergency stop circuit is open. Trips the pump.
    EmergencyStop = 5,
}

impl Alarm {
    /// Every alarm, in bit order.
    pub const ALL: [Alarm; 6] = [
        Alarm::DryRun,
        Alarm::HighLevel,
        Alarm::LowLevel,
        Alarm::PumpFail,
        Alarm::SensorFault,
        Alarm::EmergencyStop,
    ];

    /// The alarm's bit in the alarm words.
    pub const fn bit(self) -> u16 {
        1 << (self as u16)
    }

    /// The alarm's name, for logs and reports.
    pub const fn name(self) -> &'static str {
        match self {
            Alarm::DryRun => "dry_run",
            Alarm::HighLevel => "high_level",
            Alarm::LowLevel => "low_level",
            Alarm::PumpFail => "pump_fail",
            Alarm::SensorFault => "sensor_fault",
            Alarm::EmergencyStop => "emergency_stop",
        }
    }
}

/// Alarms that hold the pump off while latched.
const TRIPPING: u16 = Alarm::DryRun.bit()
    | Alarm::HighLevel.bit()
    | Alarm::PumpFail.bit()
    | Alarm::SensorFault.bit()
    | Alarm::EmergencyStop.bit();

/// How the program's inputs arrive and its outputs leave: the `[app]` key `io`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IoMode {
    /// The fixed binary layouts of `crate::layout` (docs/PROTOCOL.md): the I/O source
    /// sends `TankInputs`, the program sends a command every frame and alarm events.
    #[default]
    Binary,
    /// The input process image of a tag map (`[[app.device]]`, `[[app.tag]]`), and out
    /// tags: what a Modbus gateway (`twinloop-gateway`) sends and writes.
    Tags,
}

/// The program's parameters: the `[app]` table of the node's configuration. Both nodes
/// must have the same (a difference shows as an output divergence alarm, and the settings
/// digest in the identity refuses the pairing).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TankParams {
    /// The cycle of the I/O source in whole milliseconds, 1..=60000: the time one frame
    /// stands for. Not with `cycle_us`; neither given: 10 ms.
    pub cycle_ms: Option<u32>,
    /// The cycle in microseconds, [`CYCLE_US_MIN`]..=[`CYCLE_US_MAX`], for cycles shorter
    /// than a millisecond or not a whole number of them (issue 20: 10 kHz is 100). Not
    /// with `cycle_ms`.
    pub cycle_us: Option<u32>,
    /// The level setpoint at start, until the operator panel sends another.
    pub setpoint_um: u32,
    /// Proportional gain: permille of pump speed per millimetre of level error, times 1000.
    pub kp_milli: u32,
    /// Integral gain: permille of pump speed per millimetre-second of error, times 1000.
    pub ki_milli: u32,
    /// Below this speed the pump is stopped rather than run slowly (permille).
    pub speed_min_permille: u16,
    /// Level at which the high-level alarm trips the pump.
    pub level_high_trip_um: u32,
    /// Level below which the high-level condition resets (hysteresis).
    pub level_high_reset_um: u32,
    /// Level below which the low-level warning is raised.
    pub level_low_alarm_um: u32,
    /// The level transmitter's range: a reading above it is a sensor fault.
    pub level_range_max_um: u32,
    /// Cycles of missing running feedback before the pump-fail alarm.
    pub pump_fail_cycles: u32,
    /// At most this many cycles count as elapsed across a gap in frame numbers.
    pub gap_cycles_max: u32,
    /// Bytes of extra application state ("ballast"), 0..=64 MiB: a history buffer the
    /// program updates one byte per cycle, so that a state transfer carries a realistic
    /// amount of data (benchmarks of late joins). Must stay below the runtime's
    /// `state_bytes_max`. 0: none.
    pub state_ballast_bytes: u32,
    /// Where the inputs come from and the outputs go: `binary` (default) or `tags`.
    pub io: IoMode,
    /// `io = "tags"`: a heartbeat output after this many frames without a change of an
    /// out tag (1..=100000), so that the gateway's lost-control alarm stays quiet.
    pub heartbeat_frames: u32,
    /// `io = "tags"`: the devices of the tag map (`[[app.device]]`, as the gateway's
    /// `[[device]]`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub device: Vec<DeviceSpec>,
    /// `io = "tags"`: the tags (`[[app.tag]]`, as the gateway's `[[tag]]`); the names the
    /// program needs are in `crate::tags`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tag: Vec<TagSpec>,
    /// `io = "binary"`: also send three level outputs (io kind 3, keys 0..=2: the tank
    /// level in mm, the setpoint, the alarm words) after the frame's events, each when it
    /// changed and on the program's first frame, so that a sink's view of them can be
    /// refreshed (`outputs.level_refresh_ms`) and its staleness measured (issue 22).
    /// Off by default (left out of the settings digest when off, so files without it
    /// pair as before).
    #[serde(skip_serializing_if = "core::ops::Not::not")]
    pub level_outputs: bool,
}

impl Default for TankParams {
    fn default() -> Self {
        TankParams {
            cycle_ms: None,
            cycle_us: None,
            setpoint_um: 1_000_000,
            kp_milli: 10_000,
            ki_milli: 1_000,
            speed_min_permille: 50,
            level_high_trip_um: 1_800_000,
            level_high_reset_um: 1_700_000,
            level_low_alarm_um: 200_000,
            level_range_max_um: 2_000_000,
            pump_fail_cycles: 100,
            gap_cycles_max: 10,
            state_ballast_bytes: 0,
            io: IoMode::Binary,
            heartbeat_frames: 10,
            device: Vec::new(),
            tag: Vec::new(),
            level_outputs: false,
        }
    }
}

/// The shortest `cycle_us`: 20 kHz. Below, a frame's datagram, the program and the
/// commit to the backup do not fit a cycle on any host this runs on.
pub const CYCLE_US_MIN: u32 = 50;
/// The longest `cycle_us`: a minute, as `cycle_ms`'s 60000.
pub const CYCLE_US_MAX: u32 = 60_000_000;
/// The cycle when neither `cycle_ms` nor `cycle_us` is given.
pub const CYCLE_US_DEFAULT: u32 = 10_000;

/// The largest `state_ballast_bytes`.
pub const STATE_BALLAST_BYTES_MAX: u32 = 64 << 20;

/// A parameter out of range, with the key's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamError {
    /// The key in the `[app]` table.
    pub key: &'static str,
    /// What is wrong.
    pub problem: String,
}

impl core::fmt::Display for ParamError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "invalid configuration key `app.{}`: {}", self.key, self.problem)
    }
}

impl std::error::Error for ParamError {}

impl TankParams {
    /// The cycle in microseconds: `cycle_us`, else `cycle_ms` × 1000, else 10 ms. At most
    /// [`CYCLE_US_MAX`] once [`TankParams::validate`] passed (unchecked values saturate).
    pub fn cycle_us(&self) -> u32 {
        match (self.cycle_us, self.cycle_ms) {
            (Some(us), _) => us,
            (None, Some(ms)) => ms.saturating_mul(1000),
            (None, None) => CYCLE_US_DEFAULT,
        }
    }

    /// Checks every parameter; the first problem found is returned.
    pub fn validate(&self) -> Result<(), ParamError> {
        let err = |key, problem: &str| {
            Err(ParamError {
                key,
                problem: problem.into(),
            })
        };
        match (self.cycle_ms, self.cycle_us) {
            (Some(_), Some(_)) => {
                return err(
                    "cycle_us",
                    "cycle_ms is set too: give the cycle once, as cycle_ms (whole milliseconds) or cycle_us (microseconds), and remove the other",
                );
            }
            (Some(ms), None) if ms == 0 || ms > 60_000 => return err("cycle_ms", "must be 1..=60000"),
            (None, Some(us)) if !(CYCLE_US_MIN..=CYCLE_US_MAX).contains(&us) => {
                return err("cycle_us", "must be 50..=60000000");
            }
            _ => {}
        }
        if self.level_range_max_um == 0 {
            return err("level_range_max_um", "must be above 0");
        }
        if self.level_high_trip_um > self.level_range_max_um {
            return err("level_high_trip_um", "must be at most level_range_max_um");
        }
        if self.level_high_reset_um >= self.level_high_trip_um {
            return err("level_high_reset_um", "must be below level_high_trip_um");
        }
        if self.level_low_alarm_um >= self.level_high_reset_um {
            return err("level_low_alarm_um", "must be below level_high_reset_um");
        }
        if self.setpoint_um <= self.level_low_alarm_um || self.setpoint_um >= self.level_high_reset_um {
            return err(
                "setpoint_um",
                "must lie between level_low_alarm_um and level_high_reset_um",
            );
        }
        if self.speed_min_permille > 1000 {
            return err("speed_min_permille", "must be 0..=1000");
        }
        if self.kp_milli > 1_000_000 {
            return err("kp_milli", "must be 0..=1000000");
        }
        if self.ki_milli > 1_000_000 {
            return err("ki_milli", "must be 0..=1000000");
        }
        if self.pump_fail_cycles == 0 {
            return err("pump_fail_cycles", "must be at least 1");
        }
        if self.gap_cycles_max == 0 || self.gap_cycles_max > 1_000_000 {
            return err("gap_cycles_max", "must be 1..=1000000");
        }
        if self.state_ballast_bytes > STATE_BALLAST_BYTES_MAX {
            return err("state_ballast_bytes", "must be 0..=67108864 (64 MiB)");
        }
        if self.heartbeat_frames == 0 || self.heartbeat_frames > HEARTBEAT_FRAMES_MAX {
            return err("heartbeat_frames", "must be 1..=100000");
        }
        if self.level_outputs && self.io != IoMode::Binary {
            return err(
                "level_outputs",
                "is for io = \"binary\": with io = \"tags\" the out tags are the outputs; remove level_outputs",
            );
        }
        self.tag_io().map(|_| ())
    }

    /// The tag map as written.
    pub fn tag_map(&self) -> TagMapSpec {
        TagMapSpec {
            device: self.device.clone(),
            tag: self.tag.clone(),
        }
    }

    /// With `io = "tags"`, the checked tag map with the program's tags resolved; with
    /// `binary`, none (and a tag map given anyway is an error: it would be ignored).
    pub fn tag_io(&self) -> Result<Option<TagIo>, ParamError> {
        match self.io {
            IoMode::Binary if self.device.is_empty() && self.tag.is_empty() => Ok(None),
            IoMode::Binary => Err(ParamError {
                key: if self.tag.is_empty() { "device" } else { "tag" },
                problem: "a tag map is read only with io = \"tags\": set io = \"tags\" or remove [[app.device]] and [[app.tag]]".into(),
            }),
            IoMode::Tags => TagIo::new(&self.tag_map()).map(Some).map_err(|e| ParamError {
                key: "tag",
                problem: e.to_string(),
            }),
        }
    }
}

/// The controller's integral term is kept in millionths of a permille, so that small
/// errors still accumulate; it is clamped to the output range (anti-windup).
const INTEGRAL_SCALE: i64 = 1_000_000;
const SPEED_MAX_PERMILLE: i64 = 1000;

/// Everything the program remembers from one cycle to the next: what a state transfer
/// carries and what the digest covers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct TankState {
    /// Frames run.
    pub frames_run: u64,
    /// The last frame run (0 = none yet).
    pub last_frame: u64,
    /// Frames missing between runs (gaps in frame numbers).
    pub frames_missed: u64,
    /// Cycles whose payload did not decode.
    pub bad_payloads: u64,
    /// The level setpoint in force.
    pub setpoint_um: u32,
    /// The PI controller's integral term, in millionths of a permille.
    pub integral_e6: i64,
    /// The pump command of the last cycle.
    pub pump_run: bool,
    /// The speed command of the last cycle.
    pub pump_speed_permille: u16,
    /// Alarms latched.
    pub alarms_latched: u16,
    /// Alarms not yet acknowledged.
    pub alarms_unacked: u16,
    /// The high-level condition, with hysteresis.
    pub high_level: bool,
    /// The acknowledge button in the last cycle (for edge detection).
    pub ack_previous: bool,
    /// Consecutive cycles commanded to run without running feedback.
    pub no_feedback_cycles: u32,
    /// Volume pumped, in microlitres (millilitres per second times milliseconds).
    pub totalizer_ul: u64,
    /// The last inputs that decoded, held through a sensor fault.
    pub inputs_held: TankInputs,
    /// Extra state of `state_ballast_bytes` bytes (see [`TankParams::state_ballast_bytes`]).
    /// Serialized as one byte string: a copy, where a sequence would cost a call per byte
    /// on the primary's cycle when it snapshots for a joining backup.
    #[serde(with = "byte_string")]
    pub ballast: Vec<u8>,
    /// Wrapping sum of the ballast's bytes, kept up to date so that the digest covers the
    /// ballast without reading all of it every cycle.
    pub ballast_sum: u64,
    /// `io = "tags"`: the tag map's layout id (0 with `binary`): a snapshot of another
    /// mode or map is refused rather than run.
    pub layout_id: u32,
    /// `io = "tags"`: the out tags' values wanted and last sent, so that a new primary
    /// sends only what changed, as the old one would have.
    pub out: Option<OutputImage>,
}

/// `Vec<u8>` as a serde byte string (what the `serde_bytes` crate does, for one field).
mod byte_string {
    use serde::de::{Deserializer, Error, SeqAccess, Visitor};
    use serde::Serializer;

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(bytes)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        struct Bytes;
        impl<'de> Visitor<'de> for Bytes {
            type Value = Vec<u8>;

            fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str("a byte string")
            }

            fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }

            fn visit_byte_buf<E: Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
                // Formats without byte strings write a sequence; bounded by what they hold.
                let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
                while let Some(b) = seq.next_element()? {
                    v.push(b);
                }
                Ok(v)
            }
        }
        deserializer.deserialize_byte_buf(Bytes)
    }
}

/// The program's name in its [`AppIdentity`].
pub const TANK_PROGRAM_NAME: &str = "twinloop-demo tank";
/// The program's version in its [`AppIdentity`]: raised whenever `step` or the state
/// layout changes, so that two nodes running different versions refuse to pair.
pub const TANK_PROGRAM_VERSION: u32 = 2;

/// The tank control program. See the module documentation.
#[derive(Debug, Clone)]
pub struct TankApp {
    params: TankParams,
    state: TankState,
    /// `io = "tags"`: the map and the program's handles, resolved once.
    tags: Option<TagIo>,
    /// The HMI tags (docs/HMI.md), the setpoint's limits from the parameters.
    hmi: [HmiTag; HMI_TAGS],
    /// An operator acknowledged the alarms over the HMI since the last step: this step
    /// acknowledges as the button's edge does. Not in the state: set by a write just before
    /// the step that consumes it, so it is false whenever a snapshot is taken.
    hmi_ack: bool,
}

/// The tank's HMI tags, in register order.
const HMI_TAGS: usize = 9;
/// Index of the writable setpoint, the alarm acknowledgement.
const HMI_SETPOINT: u16 = 7;
const HMI_ACK: u16 = 8;

fn hmi_tags(params: &TankParams) -> [HmiTag; HMI_TAGS] {
    use twinloop::hmi::{HmiClass::*, HmiType::*};
    [
        HmiTag::read("level", Value, U32, "um"),
        HmiTag::read("setpoint", Value, U32, "um"),
        HmiTag::read("pump_run", Value, Bool, ""),
        HmiTag::read("pump_speed", Value, U16, "permille"),
        HmiTag::read("alarms_latched", Alarm, U16, "bits"),
        HmiTag::read("alarms_unacked", Alarm, U16, "bits"),
        HmiTag::read("auto", Mode, Bool, ""),
        // The range the operator panel's setpoint is clamped to.
        HmiTag::write(
            "setpoint_request",
            Setpoint,
            U32,
            "um",
            params.level_low_alarm_um as i64 + 1,
            params.level_high_reset_um as i64 - 1,
        ),
        HmiTag::write("alarm_ack", Acknowledge, Bool, "", 1, 1),
    ]
}

impl TankApp {
    /// A program in its initial state. The parameters must be valid
    /// ([`TankParams::validate`]); with an invalid tag map this panics, naming the key
    /// (the node checks the file before it builds the program).
    pub fn new(params: TankParams) -> Self {
        let tags = match params.tag_io() {
            Ok(tags) => tags,
            Err(e) => panic!("TankApp::new with unchecked parameters: {e}"),
        };
        // Written, not zeroed: a zeroed vector is mapped lazily, and the first snapshot of
        // untouched megabytes would fault them in in the middle of a primary's cycle (a
        // real history buffer is written as the program runs).
        let ballast: Vec<u8> = (0..params.state_ballast_bytes).map(|i| (i % 251) as u8).collect();
        let state = TankState {
            setpoint_um: params.setpoint_um,
            ballast_sum: ballast.iter().map(|&b| u64::from(b)).sum(),
            ballast,
            layout_id: tags.as_ref().map_or(0, |t| t.map().layout_id()),
            out: tags.as_ref().map(|t| t.output_image(params.heartbeat_frames)),
            ..TankState::default()
        };
        let hmi = hmi_tags(&params);
        TankApp {
            params,
            state,
            tags,
            hmi,
            hmi_ack: false,
        }
    }

    /// `io = "tags"`: the tag map and the program's handles.
    pub fn tag_io(&self) -> Option<&TagIo> {
        self.tags.as_ref()
    }

    /// The state, for tests and reports.
    pub fn state(&self) -> &TankState {
        &self.state
    }

    /// The parameters.
    pub fn params(&self) -> &TankParams {
        &self.params
    }

    /// Volume pumped so far, in millilitres.
    pub fn totalizer_ml(&self) -> u64 {
        self.state.totalizer_ul / 1000
    }

    /// Latches newly active conditions and queues their events; clears acknowledged
    /// alarms whose condition has gone.
    fn update_alarms(s: &mut TankState, active: u16, ack_edge: bool, level_um: u32, events: &mut EventList) {
        for alarm in Alarm::ALL {
            let bit = alarm.bit();
            if active & bit != 0 && s.alarms_latched & bit == 0 {
                s.alarms_latched |= bit;
                s.alarms_unacked |= bit;
                events.push(alarm, AlarmEventKind::Raised, level_um);
            }
        }
        if ack_edge {
            for alarm in Alarm::ALL {
                if s.alarms_unacked & alarm.bit() != 0 {
                    events.push(alarm, AlarmEventKind::Acknowledged, level_um);
                }
            }
            s.alarms_unacked = 0;
        }
        for alarm in Alarm::ALL {
            let bit = alarm.bit();
            if s.alarms_latched & bit != 0 && s.alarms_unacked & bit == 0 && active & bit == 0 {
                s.alarms_latched &= !bit;
                events.push(alarm, AlarmEventKind::Cleared, level_um);
            }
        }
    }

    /// The PI controller: the speed command for this cycle, in permille.
    fn control(p: &TankParams, s: &mut TankState, level_um: u32, dt_us: u64) -> u16 {
        let error_um = i64::from(s.setpoint_um) - i64::from(level_um);
        // i128 intermediates: the products of a full-range error and gain do not fit i64.
        let proportional = (i128::from(error_um) * i128::from(p.kp_milli) / 1_000_000) as i64;
        let integral_limit = SPEED_MAX_PERMILLE * INTEGRAL_SCALE;
        let unclamped = proportional.saturating_add(s.integral_e6 / INTEGRAL_SCALE);
        // Anti-windup: do not integrate further into a saturated output.
        let saturated_high = unclamped >= SPEED_MAX_PERMILLE && error_um > 0;
        let saturated_low = unclamped <= 0 && error_um < 0;
        if !saturated_high && !saturated_low {
            // Per µs: the same integer as per ms when the cycle is whole milliseconds.
            let step = i128::from(error_um) * i128::from(p.ki_milli) * i128::from(dt_us) / 1_000_000;
            let step = step.clamp(-i128::from(integral_limit), i128::from(integral_limit)) as i64;
            s.integral_e6 = s.integral_e6.saturating_add(step).clamp(0, integral_limit);
        }
        let output = proportional.saturating_add(s.integral_e6 / INTEGRAL_SCALE);
        output.clamp(0, SPEED_MAX_PERMILLE) as u16
    }
}

/// Alarm events of one cycle (at most two per alarm: acknowledged and cleared, or
/// raised): fixed capacity, no allocation.
struct EventList {
    events: heapless::Vec<AlarmEvent, 12>,
}

impl EventList {
    fn push(&mut self, alarm: Alarm, kind: AlarmEventKind, level_um: u32) {
        // Capacity is two per alarm and each alarm yields at most two events a cycle.
        let _ = self.events.push(AlarmEvent {
            alarm: alarm as u8,
            kind,
            level_um,
        });
    }
}

/// The alarm words as one level value: latched in bits 0..16, unacknowledged above.
fn alarm_words(s: &TankState) -> u32 {
    u32::from(s.alarms_latched) | (u32::from(s.alarms_unacked) << 16)
}

impl App for TankApp {
    fn step(&mut self, frame: Frame<'_>, outbox: &mut Outbox) {
        // Borrowed, not cloned: the tag map in the parameters would allocate each cycle.
        let params = &self.params;
        // Elapsed time: a gap in frame numbers is time that passed, within a bound.
        let cycles = if self.state.last_frame == 0 || frame.number <= self.state.last_frame {
            1
        } else {
            let gap = frame.number - self.state.last_frame;
            self.state.frames_missed += gap - 1;
            gap.min(u64::from(params.gap_cycles_max))
        };
        // cycles ≤ gap_cycles_max (a u32) and the cycle ≤ 6·10⁷ µs: the product stays
        // below 2⁵⁸; saturating all the same.
        let dt_us = cycles.saturating_mul(u64::from(params.cycle_us()));
        // What the level outputs last said (`level_outputs`): each is sent when it changes.
        let first_frame = self.state.frames_run == 0;
        let levels_before = [
            self.state.inputs_held.level_um / 1000,
            self.state.setpoint_um,
            alarm_words(&self.state),
        ];
        self.state.last_frame = frame.number;
        self.state.frames_run += 1;

        // The one place the two modes differ on the way in: a payload that does not decode
        // and an image whose sensor tags are bad are the same sensor fault.
        let decoded = match &self.tags {
            None => TankInputs::decode(frame.payload).ok(),
            Some(tags) => tags.read(frame.payload).ok(),
        };
        let payload_ok = decoded.is_some();
        let inputs = match decoded {
            Some(inputs) => {
                self.state.inputs_held = inputs;
                inputs
            }
            None => {
                self.state.bad_payloads += 1;
                self.state.inputs_held
            }
        };
        if inputs.setpoint_um != 0 {
            // The operator panel may only ask for a level inside the alarm limits.
            let low = params.level_low_alarm_um.saturating_add(1);
            let high = params.level_high_reset_um.saturating_sub(1);
            self.state.setpoint_um = inputs.setpoint_um.clamp(low, high);
        }
        let level_um = inputs.level_um;

        // Conditions.
        let s = &mut self.state;
        if level_um >= params.level_high_trip_um || inputs.has(di::LEVEL_HIGH_HIGH) {
            s.high_level = true;
        } else if level_um < params.level_high_reset_um {
            s.high_level = false;
        }
        if s.pump_run && !inputs.has(di::PUMP_RUNNING) {
            s.no_feedback_cycles = s.no_feedback_cycles.saturating_add(cycles as u32);
        } else {
            s.no_feedback_cycles = 0;
        }
        let mut active = 0u16;
        let mut set = |alarm: Alarm, on: bool| {
            if on {
                active |= alarm.bit();
            }
        };
        set(Alarm::DryRun, inputs.has(di::SUCTION_LOW));
        set(Alarm::HighLevel, s.high_level);
        set(Alarm::LowLevel, level_um < params.level_low_alarm_um);
        set(Alarm::PumpFail, s.no_feedback_cycles >= params.pump_fail_cycles);
        set(Alarm::SensorFault, !payload_ok || level_um > params.level_range_max_um);
        set(Alarm::EmergencyStop, !inputs.has(di::ESTOP_OK));
        let ack = inputs.has(di::ACK);
        let ack_edge = (ack && !s.ack_previous) || core::mem::take(&mut self.hmi_ack);
        s.ack_previous = ack;

        let mut events = EventList {
            events: heapless::Vec::new(),
        };
        Self::update_alarms(&mut self.state, active, ack_edge, level_um, &mut events);

        // Interlocks, then the controller.
        let auto = inputs.has(di::AUTO);
        let interlocked = self.state.alarms_latched & TRIPPING != 0;
        let (run, speed) = if interlocked || !auto {
            // Held off: restart from a clean controller (bumpless restart).
            self.state.integral_e6 = 0;
            (false, 0)
        } else {
            let speed = Self::control(params, &mut self.state, level_um, dt_us);
            if speed >= params.speed_min_permille && speed > 0 {
                (true, speed)
            } else {
                (false, 0)
            }
        };
        let s = &mut self.state;
        s.pump_run = run;
        s.pump_speed_permille = speed;
        if !s.ballast.is_empty() {
            // One byte of the history a cycle: the ballast changes as the plant does, so a
            // stale or partial transfer shows in the digest.
            let i = (frame.number % s.ballast.len() as u64) as usize;
            let old = s.ballast[i];
            let new = old.wrapping_add(level_um as u8).wrapping_add(1);
            s.ballast[i] = new;
            s.ballast_sum = s.ballast_sum.wrapping_sub(u64::from(old)).wrapping_add(u64::from(new));
        }
        s.totalizer_ul = s
            .totalizer_ul
            .saturating_add(u64::from(inputs.pump_flow_ml_per_s).saturating_mul(dt_us) / 1000);

        let mut flags = 0;
        if run {
            flags |= flag::PUMP_RUN;
        }
        if s.alarms_unacked != 0 {
            flags |= flag::HORN;
        }
        if interlocked {
            flags |= flag::INTERLOCK;
        }
        if auto {
            flags |= flag::AUTO;
        }
        let command = ActuatorCommand {
            flags,
            pump_speed_permille: speed,
            alarms_latched: s.alarms_latched,
            alarms_unacked: s.alarms_unacked,
            setpoint_um: s.setpoint_um,
            level_um,
            totalizer_ml: s.totalizer_ul / 1000,
        };
        // And the one place they differ on the way out.
        match (&self.tags, &mut s.out) {
            (None, _) => {
                // The outbox holds 16 outputs: one command and at most 12 events always fit.
                let _ = outbox.push(&command.encode());
                for event in &events.events {
                    let _ = outbox.push(&event.encode());
                }
                if params.level_outputs {
                    // After the events: with 3 keys, the command and at most 12 events,
                    // the 16 outputs of the outbox always suffice.
                    let now = [level_um / 1000, s.setpoint_um, alarm_words(s)];
                    for (key, (&value, &before)) in now.iter().zip(&levels_before).enumerate() {
                        if first_frame || value != before {
                            let level = LevelValue { key: key as u8, value };
                            let _ = outbox.push_level(key as u16, &level.encode());
                        }
                    }
                }
            }
            // The alarm words carry every raise, acknowledgement and clearing: the events
            // are not sent apart.
            (Some(tags), Some(out)) => tags.write(out, &command, outbox),
            // A state without its output image is refused by restore and never built by
            // new: nothing to write with.
            (Some(_), None) => {}
        }
    }

    fn snapshot(&self, buf: &mut [u8]) -> Result<usize, SnapshotError> {
        snapshot_postcard(&self.state, buf)
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<(), SnapshotError> {
        let state: TankState = restore_postcard(bytes)?;
        // A snapshot of the other mode or of another tag map is not this program's state.
        if state.layout_id != self.state.layout_id || state.out.is_some() != self.tags.is_some() {
            return Err(SnapshotError::Malformed);
        }
        self.state = state;
        Ok(())
    }

    fn hmi_tags(&self) -> &[HmiTag] {
        &self.hmi
    }

    fn hmi_read(&self, tag: u16) -> Option<i64> {
        let s = &self.state;
        let value = match tag {
            0 => i64::from(s.inputs_held.level_um),
            1 | HMI_SETPOINT => i64::from(s.setpoint_um),
            2 => i64::from(s.pump_run),
            3 => i64::from(s.pump_speed_permille),
            4 => i64::from(s.alarms_latched),
            5 => i64::from(s.alarms_unacked),
            6 => i64::from(s.inputs_held.has(di::AUTO)),
            HMI_ACK => 0,
            _ => return None,
        };
        Some(value)
    }

    fn hmi_write(&mut self, tag: u16, value: i64) {
        match tag {
            // Within the declared limits (the runtime refused the others), so within u32.
            HMI_SETPOINT => self.state.setpoint_um = u32::try_from(value).unwrap_or(self.state.setpoint_um),
            HMI_ACK => self.hmi_ack = true,
            _ => {}
        }
    }

    fn identity(&self) -> AppIdentity {
        AppIdentity {
            name: TANK_PROGRAM_NAME,
            version: TANK_PROGRAM_VERSION,
            // Every `[app]` key: two nodes with different settings run different programs.
            settings_digest: settings_digest(&self.params),
        }
    }

    fn digest(&self) -> u64 {
        let s = &self.state;
        let i = &s.inputs_held;
        let mut h = Fnv64::new();
        for value in [
            s.frames_run,
            s.last_frame,
            s.frames_missed,
            s.bad_payloads,
            u64::from(s.setpoint_um),
            s.integral_e6 as u64,
            u64::from(s.pump_run),
            u64::from(s.pump_speed_permille),
            u64::from(s.alarms_latched),
            u64::from(s.alarms_unacked),
            u64::from(s.high_level),
            u64::from(s.ack_previous),
            u64::from(s.no_feedback_cycles),
            s.totalizer_ul,
            u64::from(i.digital),
            u64::from(i.level_um),
            u64::from(i.pump_flow_ml_per_s),
            u64::from(i.setpoint_um),
            u64::from(i.demand_flow_ml_per_s),
            s.ballast.len() as u64,
            s.ballast_sum,
            u64::from(s.layout_id),
            // The output image's postcard bytes, hashed as they are produced (no buffer).
            s.out.as_ref().map_or(0, settings_digest),
        ] {
            h.write_u64(value);
        }
        h.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::OutputMessage;
    use twinloop::image::{Quality, Value};

    const HEALTHY: u16 = di::AUTO | di::ESTOP_OK | di::PUMP_RUNNING;

    fn inputs(level_um: u32, digital: u16) -> TankInputs {
        TankInputs {
            digital,
            level_um,
            pump_flow_ml_per_s: 500,
            setpoint_um: 0,
            demand_flow_ml_per_s: 300,
        }
    }

    /// Runs one frame and returns the decoded outputs.
    fn run(app: &mut TankApp, number: u64, i: TankInputs) -> (ActuatorCommand, Vec<AlarmEvent>) {
        let mut outbox = Outbox::new();
        app.step(
            Frame {
                number,
                payload: &i.encode(),
            },
            &mut outbox,
        );
        decode(&outbox)
    }

    fn decode(outbox: &Outbox) -> (ActuatorCommand, Vec<AlarmEvent>) {
        let mut command = None;
        let mut events = Vec::new();
        for (index, payload) in outbox.as_slice().iter().enumerate() {
            match OutputMessage::decode(payload).unwrap() {
                OutputMessage::Command(c) => {
                    assert_eq!(index, 0, "the command is output 0");
                    command = Some(c);
                }
                OutputMessage::AlarmEvent(e) => events.push(e),
                OutputMessage::Level(_) => {}
            }
        }
        (command.expect("every frame has a command"), events)
    }

    /// One frame's level outputs: (io key, decoded value), in order.
    fn levels_of(app: &mut TankApp, number: u64, i: TankInputs) -> Vec<(u16, crate::layout::LevelValue)> {
        let mut outbox = Outbox::new();
        app.step(
            Frame {
                number,
                payload: &i.encode(),
            },
            &mut outbox,
        );
        outbox
            .as_slice()
            .iter()
            .zip(outbox.kinds())
            .filter_map(
                |(payload, kind)| match (OutputMessage::decode(payload).unwrap(), kind.level_key()) {
                    (OutputMessage::Level(l), Some(key)) => Some((key, l)),
                    (OutputMessage::Level(_), None) => panic!("a level value sent as an event"),
                    (_, Some(_)) => panic!("an event sent as a level"),
                    _ => None,
                },
            )
            .collect()
    }

    #[test]
    fn tank_level_outputs_first_frame_then_changes_only() {
        let mut app = TankApp::new(TankParams {
            level_outputs: true,
            ..TankParams::default()
        });
        let first = levels_of(&mut app, 1, inputs(300_400, HEALTHY));
        let keys: Vec<(u16, u8, u32)> = first.iter().map(|(k, l)| (*k, l.key, l.value)).collect();
        assert_eq!(
            keys,
            vec![(0, 0, 300), (1, 1, 1_000_000), (2, 2, 0)],
            "all three on the first frame"
        );
        assert!(
            levels_of(&mut app, 2, inputs(300_900, HEALTHY)).is_empty(),
            "still 300 mm: nothing"
        );
        let moved = levels_of(&mut app, 3, inputs(301_000, HEALTHY));
        assert_eq!(
            moved.iter().map(|(k, l)| (*k, l.value)).collect::<Vec<_>>(),
            vec![(0, 301)]
        );
        // The low-level alarm raised: its event, then the alarm words as a level.
        let (_, events) = run(&mut app, 4, inputs(100_000, HEALTHY));
        assert_eq!(events.len(), 1);
        let mut app_levels = TankApp::new(TankParams {
            level_outputs: true,
            ..TankParams::default()
        });
        levels_of(&mut app_levels, 1, inputs(300_000, HEALTHY));
        let alarm = levels_of(&mut app_levels, 2, inputs(100_000, HEALTHY));
        let bit = u32::from(Alarm::LowLevel.bit());
        assert_eq!(
            alarm.iter().map(|(k, l)| (*k, l.value)).collect::<Vec<_>>(),
            vec![(0, 100), (2, bit | (bit << 16))]
        );
    }

    #[test]
    fn tank_level_outputs_off_by_default_and_refused_with_tags() {
        let mut app = app();
        assert!(levels_of(&mut app, 1, inputs(300_000, HEALTHY)).is_empty());
        let digest_off = settings_digest(&TankParams::default());
        let on = TankParams {
            level_outputs: true,
            ..TankParams::default()
        };
        assert_ne!(settings_digest(&on), digest_off, "nodes that differ do not pair");
        let tags = TankParams { io: IoMode::Tags, ..on };
        assert_eq!(tags.validate().unwrap_err().key, "level_outputs");
    }

    fn app() -> TankApp {
        TankApp::new(TankParams::default())
    }

    #[test]
    fn tank_default_params_are_valid() {
        assert_eq!(TankParams::default().validate(), Ok(()));
        let bad = TankParams {
            level_high_reset_um: 1_900_000,
            ..TankParams::default()
        };
        assert_eq!(bad.validate().unwrap_err().key, "level_high_reset_um");
    }

    /// The same cycle given as `cycle_ms` or as `cycle_us` runs the same program: the
    /// controller and the totalizer count in µs and give the integers they gave in ms.
    #[test]
    fn tank_cycle_us_runs_as_the_same_cycle_ms() {
        let mut by_ms = TankApp::new(TankParams {
            cycle_ms: Some(10),
            ..TankParams::default()
        });
        let mut by_us = TankApp::new(TankParams {
            cycle_us: Some(10_000),
            ..TankParams::default()
        });
        for n in 1..=300u64 {
            let level = 300_000 + 2_000 * (n as u32 % 200);
            let inputs = TankInputs {
                pump_flow_ml_per_s: 1234,
                ..inputs(level, HEALTHY)
            };
            assert_eq!(run(&mut by_ms, n, inputs), run(&mut by_us, n, inputs), "frame {n}");
        }
        assert_eq!(by_ms.state.integral_e6, by_us.state.integral_e6);
        assert_eq!(by_ms.state.totalizer_ul, by_us.state.totalizer_ul);
        assert!(by_ms.state.totalizer_ul > 0);
    }

    /// A 100 µs cycle (10 kHz) integrates a tenth of a millisecond's error a frame: ten
    /// frames move the integral as one 1 ms frame does (the old `dt_ms` had no unit
    /// below a millisecond).
    #[test]
    fn tank_sub_ms_cycle_integrates_per_microsecond() {
        let p = TankParams {
            cycle_us: Some(100),
            ..TankParams::default()
        };
        assert_eq!(p.validate(), Ok(()));
        let start = TankState {
            setpoint_um: p.setpoint_um,
            ..TankState::default()
        };
        let (mut tenths, mut whole) = (start.clone(), start);
        for _ in 0..10 {
            TankApp::control(&p, &mut tenths, 999_000, 100);
        }
        TankApp::control(&p, &mut whole, 999_000, 1000);
        assert!(whole.integral_e6 > 0);
        assert_eq!(tenths.integral_e6, whole.integral_e6);
    }

    #[test]
    fn tank_cycle_keys_bounds_and_exclusion() {
        let with = |cycle_ms, cycle_us| TankParams {
            cycle_ms,
            cycle_us,
            ..TankParams::default()
        };
        assert_eq!(with(None, None).cycle_us(), CYCLE_US_DEFAULT);
        assert_eq!(with(Some(2), None).cycle_us(), 2000);
        assert_eq!(with(None, Some(250)).cycle_us(), 250);
        assert_eq!(with(Some(1), Some(1000)).validate().unwrap_err().key, "cycle_us");
        assert_eq!(
            with(None, Some(CYCLE_US_MIN - 1)).validate().unwrap_err().key,
            "cycle_us"
        );
        assert_eq!(
            with(None, Some(CYCLE_US_MAX + 1)).validate().unwrap_err().key,
            "cycle_us"
        );
        assert_eq!(with(Some(0), None).validate().unwrap_err().key, "cycle_ms");
        assert_eq!(with(None, Some(CYCLE_US_MIN)).validate(), Ok(()));
        assert_eq!(with(None, Some(CYCLE_US_MAX)).validate(), Ok(()));
    }

    #[test]
    fn tank_low_level_runs_pump_fast() {
        let mut app = app();
        let (c, events) = run(&mut app, 1, inputs(300_000, HEALTHY));
        assert!(c.has(flag::PUMP_RUN));
        assert_eq!(c.pump_speed_permille, 1000, "700 mm below setpoint saturates the pump");
        // Low level warning is not below 200 mm: no event.
        assert!(events.is_empty());
    }

    #[test]
    fn tank_at_setpoint_integral_holds_speed() {
        let mut app = app();
        // Below setpoint for a while: the integral grows.
        for n in 1..=2000 {
            run(&mut app, n, inputs(990_000, HEALTHY));
        }
        let integral = app.state().integral_e6;
        // 10 mm for 20 s at ki 1 permille per mm-second: 200 permille.
        assert_eq!(integral, 200 * INTEGRAL_SCALE);
        // At the setpoint, the proportional term is 0 and the integral holds the speed.
        let (c, _) = run(&mut app, 2001, inputs(1_000_000, HEALTHY));
        assert_eq!(i64::from(c.pump_speed_permille), integral / INTEGRAL_SCALE);
    }

    #[test]
    fn tank_saturated_output_does_not_wind_up() {
        let mut app = app();
        for n in 1..=10_000 {
            run(&mut app, n, inputs(100_000, HEALTHY));
        }
        // Far below setpoint, the P term alone saturates: the integral must not grow.
        assert_eq!(app.state().integral_e6, 0);
    }

    #[test]
    fn tank_dry_run_trips_latches_and_clears_after_ack() {
        let mut app = app();
        run(&mut app, 1, inputs(500_000, HEALTHY));
        let (c, events) = run(&mut app, 2, inputs(500_000, HEALTHY | di::SUCTION_LOW));
        assert!(!c.has(flag::PUMP_RUN));
        assert!(c.has(flag::INTERLOCK) && c.has(flag::HORN));
        assert_eq!(
            events,
            [AlarmEvent {
                alarm: Alarm::DryRun as u8,
                kind: AlarmEventKind::Raised,
                level_um: 500_000
            }]
        );
        // Condition gone, not acknowledged: still latched, still tripped.
        let (c, events) = run(&mut app, 3, inputs(500_000, HEALTHY));
        assert!(!c.has(flag::PUMP_RUN) && c.alarms_latched == Alarm::DryRun.bit());
        assert!(events.is_empty());
        // Acknowledge: cleared, and the pump may run again.
        let (c, events) = run(&mut app, 4, inputs(500_000, HEALTHY | di::ACK));
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].kind, AlarmEventKind::Acknowledged);
        assert_eq!(events[1].kind, AlarmEventKind::Cleared);
        assert!(c.has(flag::PUMP_RUN) && c.alarms_latched == 0 && !c.has(flag::HORN));
        // Holding the button is not a new acknowledgement.
        let (_, events) = run(&mut app, 5, inputs(500_000, HEALTHY | di::ACK));
        assert!(events.is_empty());
    }

    #[test]
    fn tank_hmi_ack_acknowledges_as_the_button_and_setpoint_within_limits() {
        use twinloop::hmi::validate;
        let mut app = app();
        assert_eq!(validate(app.hmi_tags()), Ok(()));
        run(&mut app, 1, inputs(500_000, HEALTHY));
        run(&mut app, 2, inputs(500_000, HEALTHY | di::SUCTION_LOW));
        assert_eq!(app.hmi_read(4), Some(i64::from(Alarm::DryRun.bit())));
        // The operator's acknowledgement over the HMI, applied before frame 3's step.
        app.hmi_write(HMI_ACK, 1);
        let (c, events) = run(&mut app, 3, inputs(500_000, HEALTHY));
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].kind, AlarmEventKind::Acknowledged);
        assert_eq!(events[1].kind, AlarmEventKind::Cleared);
        assert!(c.alarms_latched == 0 && c.has(flag::PUMP_RUN));
        // Once: the next step acknowledges nothing more.
        run(&mut app, 4, inputs(500_000, HEALTHY | di::SUCTION_LOW));
        let (_, events) = run(&mut app, 5, inputs(500_000, HEALTHY));
        assert!(events.is_empty(), "{events:?}");
        // The setpoint's limits are the panel's: inside the alarm limits.
        let setpoint = app.hmi_tags()[usize::from(HMI_SETPOINT)];
        assert!(setpoint.accepts(1_000_000) && !setpoint.accepts(200_000) && !setpoint.accepts(1_700_000));
        app.hmi_write(HMI_SETPOINT, 1_000_000);
        assert_eq!(app.hmi_read(1), Some(1_000_000));
    }

    #[test]
    fn tank_high_level_acknowledged_while_active_clears_when_level_falls() {
        let mut app = app();
        let (c, events) = run(&mut app, 1, inputs(1_850_000, HEALTHY));
        assert!(!c.has(flag::PUMP_RUN));
        assert_eq!(events[0].alarm, Alarm::HighLevel as u8);
        let (_, events) = run(&mut app, 2, inputs(1_850_000, HEALTHY | di::ACK));
        assert_eq!(events.len(), 1, "acknowledged, not cleared while active");
        // Inside the hysteresis band: still active.
        let (c, events) = run(&mut app, 3, inputs(1_750_000, HEALTHY));
        assert!(events.is_empty() && c.alarms_latched == Alarm::HighLevel.bit());
        let (c, events) = run(&mut app, 4, inputs(1_600_000, HEALTHY));
        assert_eq!(events[0].kind, AlarmEventKind::Cleared);
        assert_eq!(c.alarms_latched, 0);
    }

    #[test]
    fn tank_pump_without_feedback_fails_after_bound() {
        let mut app = app();
        let no_feedback = di::AUTO | di::ESTOP_OK;
        let mut tripped_at = None;
        for n in 1..=200 {
            let (c, events) = run(&mut app, n, inputs(500_000, no_feedback));
            if events.iter().any(|e| e.alarm == Alarm::PumpFail as u8) {
                tripped_at = Some(n);
                assert!(!c.has(flag::PUMP_RUN));
                break;
            }
        }
        // Commanded at frame 1; missing feedback counted from frame 2.
        assert_eq!(tripped_at, Some(101));
    }

    #[test]
    fn tank_bad_payload_is_a_sensor_fault_holding_last_inputs() {
        let mut app = app();
        run(&mut app, 1, inputs(500_000, HEALTHY));
        let mut outbox = Outbox::new();
        app.step(
            Frame {
                number: 2,
                payload: b"garbage",
            },
            &mut outbox,
        );
        let (c, events) = decode(&outbox);
        assert_eq!(c.level_um, 500_000, "the last good level is held");
        assert!(!c.has(flag::PUMP_RUN));
        assert_eq!(events[0].alarm, Alarm::SensorFault as u8);
        assert_eq!(app.state().bad_payloads, 1);
    }

    #[test]
    fn tank_manual_mode_stops_and_resets_controller() {
        let mut app = app();
        for n in 1..=50 {
            run(&mut app, n, inputs(950_000, HEALTHY));
        }
        let (c, _) = run(&mut app, 51, inputs(950_000, di::ESTOP_OK));
        assert!(!c.has(flag::PUMP_RUN) && !c.has(flag::AUTO));
        assert_eq!(app.state().integral_e6, 0);
    }

    #[test]
    fn tank_totalizer_counts_gaps_within_bound() {
        let mut app = app();
        run(&mut app, 1, inputs(500_000, HEALTHY));
        // 500 ml/s for 10 ms = 5 ml.
        assert_eq!(app.totalizer_ml(), 5);
        run(&mut app, 4, inputs(500_000, HEALTHY));
        assert_eq!(app.totalizer_ml(), 5 + 15);
        assert_eq!(app.state().frames_missed, 2);
        run(&mut app, 1_000, inputs(500_000, HEALTHY));
        assert_eq!(
            app.totalizer_ml(),
            5 + 15 + 50,
            "a long gap counts as gap_cycles_max cycles"
        );
    }

    #[test]
    fn tank_ballast_is_state_carried_by_snapshots() {
        let params = TankParams {
            state_ballast_bytes: 4096,
            ..TankParams::default()
        };
        let mut a = TankApp::new(params.clone());
        let sum_initial = a.state().ballast_sum;
        assert_eq!(
            sum_initial,
            a.state().ballast.iter().map(|&b| u64::from(b)).sum::<u64>()
        );
        for n in 1..=100 {
            run(&mut a, n, inputs(400_000 + 1000 * n as u32, HEALTHY));
        }
        assert_ne!(a.state().ballast_sum, sum_initial, "every cycle changes the ballast");
        assert_eq!(
            a.state().ballast_sum,
            a.state().ballast.iter().map(|&b| u64::from(b)).sum::<u64>()
        );
        let mut buf = vec![0u8; 8192];
        let len = a.snapshot(&mut buf).unwrap();
        assert!(len > 4096, "the snapshot carries the ballast ({len} bytes)");
        let mut b = TankApp::new(params.clone());
        assert_ne!(a.digest(), b.digest());
        b.restore(&buf[..len]).unwrap();
        assert_eq!(a.digest(), b.digest());
        let too_big = TankParams {
            state_ballast_bytes: STATE_BALLAST_BYTES_MAX + 1,
            ..params
        };
        assert_eq!(too_big.validate().unwrap_err().key, "state_ballast_bytes");
    }

    #[test]
    fn tank_setpoint_from_panel_is_clamped() {
        let mut app = app();
        let mut i = inputs(500_000, HEALTHY);
        i.setpoint_um = 5_000_000;
        let (c, _) = run(&mut app, 1, i);
        assert_eq!(c.setpoint_um, 1_699_999);
    }

    /// The tank on the demo plant's tag map.
    fn tag_params() -> TankParams {
        let map = crate::tags::plant_map("127.0.0.1:5020", 8);
        TankParams {
            io: IoMode::Tags,
            device: map.device,
            tag: map.tag,
            ..TankParams::default()
        }
    }

    /// The out tags' values as a device holds them after the writes of every frame so far.
    #[derive(Debug, Default, PartialEq, Eq)]
    struct OutTags {
        pump_run: bool,
        speed: u16,
        horn: bool,
        latched: u16,
        unacked: u16,
    }

    impl OutTags {
        fn of(c: &ActuatorCommand) -> OutTags {
            OutTags {
                pump_run: c.has(flag::PUMP_RUN),
                speed: c.pump_speed_permille,
                horn: c.has(flag::HORN),
                latched: c.alarms_latched,
                unacked: c.alarms_unacked,
            }
        }

        /// Applies one frame's outputs; returns how many tag writes it had.
        fn apply(&mut self, app: &TankApp, outbox: &Outbox) -> usize {
            let map = app.tag_io().unwrap().map();
            let mut writes = 0;
            for payload in outbox.as_slice() {
                let twinloop::image::TagOutput::Write(handle, value) = map.decode_output(payload).unwrap() else {
                    continue;
                };
                writes += 1;
                match (map.tag(handle).unwrap().name.as_str(), value) {
                    ("pump_run", Value::Bool(b)) => self.pump_run = b,
                    ("pump_speed_permille", Value::U16(v)) => self.speed = v,
                    ("horn", Value::Bool(b)) => self.horn = b,
                    ("alarms_latched", Value::U16(v)) => self.latched = v,
                    ("alarms_unacked", Value::U16(v)) => self.unacked = v,
                    other => panic!("not an out tag of the program: {other:?}"),
                }
            }
            writes
        }
    }

    fn step_tags(app: &mut TankApp, number: u64, payload: &[u8], device: &mut OutTags) -> usize {
        let mut outbox = Outbox::new();
        app.step(Frame { number, payload }, &mut outbox);
        device.apply(app, &outbox)
    }

    /// The state apart from what only one mode has.
    fn core(app: &TankApp) -> TankState {
        TankState {
            layout_id: 0,
            out: None,
            ..app.state().clone()
        }
    }

    #[test]
    fn tags_same_inputs_give_the_same_commands_as_binary() {
        use crate::plant::{Plant, PlantParams};
        let mut binary = app();
        let mut tagged = TankApp::new(tag_params());
        let io = tagged.tag_io().unwrap().clone();
        let mut plant = Plant::new(PlantParams {
            level_initial_um: 190_000,
            supply_refill_ml_per_s: 0,
            supply_ml: 60_000,
            ..PlantParams::default()
        });
        let mut device = OutTags::default();
        let (mut writes, mut events) = (0, 0);
        // 20 s of a closed loop: the low-level alarm, acknowledgements, a setpoint from the
        // panel, the supply running dry (a trip), and a gap in frame numbers.
        for n in (1..=2000u64).filter(|n| !(700..705).contains(n)) {
            plant.set_ack(n % 300 < 3);
            plant.set_setpoint(if n > 1000 { 1_300_000 } else { 0 });
            let inputs = plant.inputs();
            let (command, alarm_events) = run(&mut binary, n, inputs);
            events += alarm_events.len();
            writes += step_tags(&mut tagged, n, &io.image_of(&inputs, Quality::Ok), &mut device);
            assert_eq!(device, OutTags::of(&command), "frame {n}");
            assert_eq!(core(&tagged), core(&binary), "frame {n}");
            plant.apply(&command);
            plant.advance(10);
        }
        assert!(events >= 4, "the run raised, acknowledged and cleared alarms: {events}");
        assert_ne!(
            binary.state().alarms_latched & Alarm::DryRun.bit(),
            0,
            "the supply ran dry"
        );
        assert!(writes < 2000 * 5, "only changes are sent: {writes} writes");
    }

    #[test]
    fn tags_bad_quality_is_a_sensor_fault_holding_last_inputs() {
        let mut app = TankApp::new(tag_params());
        let io = app.tag_io().unwrap().clone();
        let mut device = OutTags::default();
        step_tags(
            &mut app,
            1,
            &io.image_of(&inputs(500_000, HEALTHY), Quality::Ok),
            &mut device,
        );
        assert!(device.pump_run && device.speed > 0, "{device:?}");
        for (n, quality) in [
            (2, Quality::Disconnected),
            (3, Quality::Timeout),
            (4, Quality::Exception(4)),
        ] {
            step_tags(
                &mut app,
                n,
                &io.image_of(&inputs(500_000, HEALTHY), quality),
                &mut device,
            );
            assert!(!device.pump_run && device.speed == 0, "{quality:?}: the pump stops");
            assert_eq!(
                device.latched,
                Alarm::SensorFault.bit(),
                "{quality:?}: the alarm latches"
            );
            assert!(device.horn);
        }
        assert_eq!(app.state().bad_payloads, 3);
        assert_eq!(
            app.state().inputs_held.level_um,
            500_000,
            "the last good inputs are held"
        );
        // The same as a payload that does not decode in the binary mode.
        let mut binary = self::app();
        run(&mut binary, 1, inputs(500_000, HEALTHY));
        let mut outbox = Outbox::new();
        for n in 2..=4 {
            outbox.clear();
            binary.step(
                Frame {
                    number: n,
                    payload: b"garbage",
                },
                &mut outbox,
            );
        }
        assert_eq!(OutTags::of(&decode(&outbox).0), device);
        assert_eq!(core(&app), core(&binary));
        // An image of another map is refused whole: the same fault.
        let mut other = tag_params();
        other.tag[0].address = 7;
        other.device[0].discrete_inputs[0].count = 8;
        let other = TankApp::new(other);
        let foreign = other.tag_io().unwrap().image_of(&inputs(500_000, HEALTHY), Quality::Ok);
        step_tags(&mut app, 5, &foreign, &mut device);
        assert_eq!(app.state().bad_payloads, 4);
    }

    #[test]
    fn tags_snapshot_and_identity_cover_the_mode_and_the_map() {
        let mut a = TankApp::new(tag_params());
        let io = a.tag_io().unwrap().clone();
        let mut device = OutTags::default();
        for n in 1..=100 {
            step_tags(
                &mut a,
                n,
                &io.image_of(&inputs(400_000 + 1000 * n as u32, HEALTHY), Quality::Ok),
                &mut device,
            );
        }
        let mut buf = [0u8; 2048];
        let len = a.snapshot(&mut buf).unwrap();
        // A new primary restored from it sends only what changes, as the old one would.
        let mut b = TankApp::new(tag_params());
        b.restore(&buf[..len]).unwrap();
        assert_eq!(a.digest(), b.digest());
        for n in 101..=150 {
            let image = io.image_of(&inputs(400_000 + 1000 * n as u32, HEALTHY), Quality::Ok);
            let (mut da, mut db) = (Outbox::new(), Outbox::new());
            a.step(
                Frame {
                    number: n,
                    payload: &image,
                },
                &mut da,
            );
            b.step(
                Frame {
                    number: n,
                    payload: &image,
                },
                &mut db,
            );
            assert_eq!(da.as_slice(), db.as_slice(), "frame {n}");
        }
        assert_eq!(a.digest(), b.digest());
        // Not a state of the binary mode, nor of another map; and the other way round.
        assert_eq!(app().restore(&buf[..len]), Err(SnapshotError::Malformed));
        let mut other = tag_params();
        other.tag[6].address = 8;
        other.device[0].input_registers[0].count = 10;
        assert_eq!(
            TankApp::new(other.clone()).restore(&buf[..len]),
            Err(SnapshotError::Malformed)
        );
        let len = app().snapshot(&mut buf).unwrap();
        assert_eq!(
            TankApp::new(tag_params()).restore(&buf[..len]),
            Err(SnapshotError::Malformed)
        );
        // The identity: the mode and every byte of the map are settings.
        let id = |p: TankParams| TankApp::new(p).identity().settings_digest;
        assert_ne!(id(tag_params()), id(TankParams::default()));
        assert_ne!(id(tag_params()), id(other));
        let mut heartbeat = tag_params();
        heartbeat.heartbeat_frames = 11;
        assert_ne!(id(tag_params()), id(heartbeat));
    }

    #[test]
    fn tags_map_in_binary_mode_or_a_bad_map_is_one_error() {
        let mut p = tag_params();
        p.io = IoMode::Binary;
        let e = p.validate().unwrap_err();
        assert_eq!(e.key, "tag");
        assert!(e.to_string().contains("io = \"tags\""), "{e}");
        let mut p = tag_params();
        p.tag.retain(|t| t.name != "estop_ok");
        let e = p.validate().unwrap_err();
        assert_eq!(e.key, "tag");
        assert!(
            e.to_string()
                .starts_with("invalid configuration key `app.tag`: the tank program needs the tag `estop_ok`"),
            "{e}"
        );
        assert!(!e.to_string().contains('\n'));
        let p = TankParams {
            io: IoMode::Tags,
            ..TankParams::default()
        };
        assert_eq!(p.validate().unwrap_err().key, "tag", "tags without a map");
        let p = TankParams {
            heartbeat_frames: 0,
            ..tag_params()
        };
        assert_eq!(p.validate().unwrap_err().key, "heartbeat_frames");
    }

    #[test]
    fn tank_snapshot_restore_continues_identically() {
        let mut a = app();
        for n in 1..=100 {
            run(&mut a, n, inputs(400_000 + 1000 * n as u32, HEALTHY));
        }
        let mut buf = [0u8; 1024];
        let len = a.snapshot(&mut buf).unwrap();
        let mut b = app();
        b.restore(&buf[..len]).unwrap();
        assert_eq!(a.digest(), b.digest());
        for n in 101..=200 {
            let i = inputs(400_000 + 1000 * n as u32, HEALTHY | if n == 150 { di::ACK } else { 0 });
            assert_eq!(run(&mut a, n, i), run(&mut b, n, i));
        }
        assert_eq!(a.digest(), b.digest());
        assert!(b.restore(b"\xFF\xFF").is_err());
    }
}
