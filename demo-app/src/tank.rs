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
//! Every number is a fixed-width integer and every step is integer arithmetic, so the
//! program gives bit-identical results on every machine: no floating point, no clock,
//! no hash maps. A gap in frame numbers (frames nobody received) counts as elapsed time,
//! bounded by `gap_cycles_max`.

use crate::layout::{di, flag, ActuatorCommand, AlarmEvent, AlarmEventKind, TankInputs};
use serde::{Deserialize, Serialize};
use twinloop::app::{
    restore_postcard, settings_digest, snapshot_postcard, App, AppIdentity, Frame, Outbox, SnapshotError,
};
use twinloop::digest::Fnv64;

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

/// The program's parameters: the `[app]` table of the node's configuration. Both nodes
/// must have the same (a difference shows as an output divergence alarm).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TankParams {
    /// The cycle of the I/O source, in milliseconds: the time one frame stands for.
    pub cycle_ms: u32,
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
}

impl Default for TankParams {
    fn default() -> Self {
        TankParams {
            cycle_ms: 10,
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
        }
    }
}

/// The largest `state_ballast_bytes`.
pub const STATE_BALLAST_BYTES_MAX: u32 = 64 << 20;

/// A parameter out of range, with the key's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamError {
    /// The key in the `[app]` table.
    pub key: &'static str,
    /// What is wrong.
    pub problem: &'static str,
}

impl core::fmt::Display for ParamError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "invalid configuration key `app.{}`: {}", self.key, self.problem)
    }
}

impl std::error::Error for ParamError {}

impl TankParams {
    /// Checks every parameter; the first problem found is returned.
    pub fn validate(&self) -> Result<(), ParamError> {
        let err = |key, problem| Err(ParamError { key, problem });
        if self.cycle_ms == 0 || self.cycle_ms > 60_000 {
            return err("cycle_ms", "must be 1..=60000");
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
        Ok(())
    }
}

/// The controller's integral term is kept in millionths of a permille, so that small
/// errors still accumulate; it is clamped to the output range (anti-windup).
const INTEGRAL_SCALE: i64 = 1_000_000;
const SPEED_MAX_PERMILLE: i64 = 1000;

/// Everything the program remembers from one cycle to the next: what a state transfer
/// carries and what the digest covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
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
pub const TANK_PROGRAM_VERSION: u32 = 1;

/// The tank control program. See the module documentation.
#[derive(Debug, Clone)]
pub struct TankApp {
    params: TankParams,
    state: TankState,
}

impl TankApp {
    /// A program in its initial state. The parameters must be valid
    /// ([`TankParams::validate`]).
    pub fn new(params: TankParams) -> Self {
        // Written, not zeroed: a zeroed vector is mapped lazily, and the first snapshot of
        // untouched megabytes would fault them in in the middle of a primary's cycle (a
        // real history buffer is written as the program runs).
        let ballast: Vec<u8> = (0..params.state_ballast_bytes).map(|i| (i % 251) as u8).collect();
        let state = TankState {
            setpoint_um: params.setpoint_um,
            ballast_sum: ballast.iter().map(|&b| u64::from(b)).sum(),
            ballast,
            ..TankState::default()
        };
        TankApp { params, state }
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
    fn update_alarms(&mut self, active: u16, ack_edge: bool, level_um: u32, events: &mut EventList) {
        let s = &mut self.state;
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
    fn control(&mut self, level_um: u32, dt_ms: u64) -> u16 {
        let p = &self.params;
        let s = &mut self.state;
        let error_um = i64::from(s.setpoint_um) - i64::from(level_um);
        // i128 intermediates: the products of a full-range error and gain do not fit i64.
        let proportional = (i128::from(error_um) * i128::from(p.kp_milli) / 1_000_000) as i64;
        let integral_limit = SPEED_MAX_PERMILLE * INTEGRAL_SCALE;
        let unclamped = proportional.saturating_add(s.integral_e6 / INTEGRAL_SCALE);
        // Anti-windup: do not integrate further into a saturated output.
        let saturated_high = unclamped >= SPEED_MAX_PERMILLE && error_um > 0;
        let saturated_low = unclamped <= 0 && error_um < 0;
        if !saturated_high && !saturated_low {
            let step = i128::from(error_um) * i128::from(p.ki_milli) * i128::from(dt_ms) / 1000;
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

impl App for TankApp {
    fn step(&mut self, frame: Frame<'_>, outbox: &mut Outbox) {
        let params = self.params.clone();
        // Elapsed time: a gap in frame numbers is time that passed, within a bound.
        let cycles = if self.state.last_frame == 0 || frame.number <= self.state.last_frame {
            1
        } else {
            let gap = frame.number - self.state.last_frame;
            self.state.frames_missed += gap - 1;
            gap.min(u64::from(params.gap_cycles_max))
        };
        let dt_ms = cycles * u64::from(params.cycle_ms);
        self.state.last_frame = frame.number;
        self.state.frames_run += 1;

        let decoded = TankInputs::decode(frame.payload);
        let payload_ok = decoded.is_ok();
        let inputs = match decoded {
            Ok(inputs) => {
                self.state.inputs_held = inputs;
                inputs
            }
            Err(_) => {
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
        let ack_edge = ack && !s.ack_previous;
        s.ack_previous = ack;

        let mut events = EventList {
            events: heapless::Vec::new(),
        };
        self.update_alarms(active, ack_edge, level_um, &mut events);

        // Interlocks, then the controller.
        let auto = inputs.has(di::AUTO);
        let interlocked = self.state.alarms_latched & TRIPPING != 0;
        let (run, speed) = if interlocked || !auto {
            // Held off: restart from a clean controller (bumpless restart).
            self.state.integral_e6 = 0;
            (false, 0)
        } else {
            let speed = self.control(level_um, dt_ms);
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
            .saturating_add(u64::from(inputs.pump_flow_ml_per_s).saturating_mul(dt_ms));

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
        // The outbox holds 16 outputs: one command and at most 12 events always fit.
        let _ = outbox.push(&command.encode());
        for event in &events.events {
            let _ = outbox.push(&event.encode());
        }
    }

    fn snapshot(&self, buf: &mut [u8]) -> Result<usize, SnapshotError> {
        snapshot_postcard(&self.state, buf)
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<(), SnapshotError> {
        self.state = restore_postcard(bytes)?;
        Ok(())
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
            }
        }
        (command.expect("every frame has a command"), events)
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
