//! The tank program's payload layouts: what is inside a frame's input payload and an
//! output's payload. Fixed layout, little-endian, documented byte by byte in
//! `docs/PROTOCOL.md` (application section). Decoding never panics.

/// The layout version in byte 0 of every input payload.
pub const INPUT_LAYOUT: u8 = 1;
/// Bytes of an input payload.
pub const INPUT_BYTES: usize = 20;
/// Output kind byte: the actuator command, output index 0 of every frame.
pub const KIND_COMMAND: u8 = 1;
/// Output kind byte: an alarm event, output indexes 1 and up when alarms change.
pub const KIND_ALARM_EVENT: u8 = 2;
/// Bytes of an actuator command payload.
pub const COMMAND_BYTES: usize = 24;
/// Bytes of an alarm event payload.
pub const ALARM_EVENT_BYTES: usize = 8;
/// Output kind byte: a level value (`app.level_outputs`), after the frame's events, sent
/// as an io level (kind 3) whose key is the value's key.
pub const KIND_LEVEL: u8 = 3;
/// Bytes of a level value payload.
pub const LEVEL_BYTES: usize = 8;
/// Level keys (`app.level_outputs`): the tank level in whole millimetres.
pub const LEVEL_KEY_TANK_MM: u8 = 0;
/// Level key: the setpoint in use, µm.
pub const LEVEL_KEY_SETPOINT_UM: u8 = 1;
/// Level key: the alarm words, latched in bits 0..16 and unacknowledged in bits 16..32.
pub const LEVEL_KEY_ALARMS: u8 = 2;
/// Level keys the program sends (0..this).
pub const LEVEL_KEYS: u8 = 3;

/// Digital input bits (byte 2..4 of the input payload).
pub mod di {
    /// The pump motor runs (contactor feedback).
    pub const PUMP_RUNNING: u16 = 1 << 0;
    /// The supply is nearly empty (suction low-level switch): running would run dry.
    pub const SUCTION_LOW: u16 = 1 << 1;
    /// The independent high-high level switch of the tank.
    pub const LEVEL_HIGH_HIGH: u16 = 1 << 2;
    /// The alarm acknowledge push button (acts on its rising edge).
    pub const ACK: u16 = 1 << 3;
    /// The mode selector is in AUTO (otherwise the pump is held off).
    pub const AUTO: u16 = 1 << 4;
    /// The emergency stop circuit is healthy.
    pub const ESTOP_OK: u16 = 1 << 5;
    /// Every defined bit; the others are reserved and ignored.
    pub const ALL: u16 = 0x3F;
}

/// Flag bits in byte 1 of the actuator command.
pub mod flag {
    /// Run the pump.
    pub const PUMP_RUN: u8 = 1 << 0;
    /// Sound the horn: an alarm is not yet acknowledged.
    pub const HORN: u8 = 1 << 1;
    /// An interlock holds the pump off.
    pub const INTERLOCK: u8 = 1 << 2;
    /// The program runs in AUTO.
    pub const AUTO: u8 = 1 << 3;
}

/// One frame's sensor values and switches, as the I/O gateway encodes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct TankInputs {
    /// Digital inputs, see [`di`].
    pub digital: u16,
    /// Tank level from the level transmitter, in micrometres above the tank floor.
    pub level_um: u32,
    /// Pump discharge flow from the flow meter, in millilitres per second.
    pub pump_flow_ml_per_s: u32,
    /// Level setpoint from the operator panel; 0 keeps the current setpoint.
    pub setpoint_um: u32,
    /// Outflow to the consumers (informational), in millilitres per second.
    pub demand_flow_ml_per_s: u32,
}

/// Why a payload did not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayoutError {
    /// Shorter than the layout.
    TooShort,
    /// Longer than the layout.
    TooLong,
    /// Byte 0 is not a layout this program knows.
    UnknownLayout(u8),
    /// Byte 0 of an output is not a known kind.
    UnknownKind(u8),
    /// A reserved byte is not zero, or a field is out of its range.
    Invalid,
}

impl core::fmt::Display for LayoutError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            LayoutError::TooShort => write!(f, "payload too short"),
            LayoutError::TooLong => write!(f, "payload too long"),
            LayoutError::UnknownLayout(v) => write!(f, "unknown input layout {v}"),
            LayoutError::UnknownKind(k) => write!(f, "unknown output kind {k}"),
            LayoutError::Invalid => write!(f, "reserved byte not zero or field out of range"),
        }
    }
}

impl std::error::Error for LayoutError {}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut raw = [0u8; 8];
    raw.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(raw)
}

fn exact(bytes: &[u8], len: usize) -> Result<(), LayoutError> {
    match bytes.len() {
        n if n < len => Err(LayoutError::TooShort),
        n if n > len => Err(LayoutError::TooLong),
        _ => Ok(()),
    }
}

impl TankInputs {
    /// The input payload.
    pub fn encode(&self) -> [u8; INPUT_BYTES] {
        let mut b = [0u8; INPUT_BYTES];
        b[0] = INPUT_LAYOUT;
        b[1] = 0;
        b[2..4].copy_from_slice(&self.digital.to_le_bytes());
        b[4..8].copy_from_slice(&self.level_um.to_le_bytes());
        b[8..12].copy_from_slice(&self.pump_flow_ml_per_s.to_le_bytes());
        b[12..16].copy_from_slice(&self.setpoint_um.to_le_bytes());
        b[16..20].copy_from_slice(&self.demand_flow_ml_per_s.to_le_bytes());
        b
    }

    /// Decodes an input payload. Never panics.
    pub fn decode(bytes: &[u8]) -> Result<TankInputs, LayoutError> {
        if bytes.is_empty() {
            return Err(LayoutError::TooShort);
        }
        if bytes[0] != INPUT_LAYOUT {
            return Err(LayoutError::UnknownLayout(bytes[0]));
        }
        exact(bytes, INPUT_BYTES)?;
        if bytes[1] != 0 {
            return Err(LayoutError::Invalid);
        }
        Ok(TankInputs {
            digital: u16_at(bytes, 2),
            level_um: u32_at(bytes, 4),
            pump_flow_ml_per_s: u32_at(bytes, 8),
            setpoint_um: u32_at(bytes, 12),
            demand_flow_ml_per_s: u32_at(bytes, 16),
        })
    }

    /// True when digital input `bit` (see [`di`]) is set.
    pub fn has(&self, bit: u16) -> bool {
        self.digital & bit != 0
    }
}

/// The actuator command: output index 0 of every frame the program runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ActuatorCommand {
    /// Flags, see [`flag`].
    pub flags: u8,
    /// Pump speed setpoint for the drive, in permille of full speed (0..=1000).
    pub pump_speed_permille: u16,
    /// Alarms latched (active or not yet cleared), one bit per [`crate::tank::Alarm`].
    pub alarms_latched: u16,
    /// Alarms not yet acknowledged.
    pub alarms_unacked: u16,
    /// The level setpoint in force.
    pub setpoint_um: u32,
    /// The level the command was computed from (traceability).
    pub level_um: u32,
    /// The totalizer: volume pumped since the program started, in millilitres.
    pub totalizer_ml: u64,
}

impl ActuatorCommand {
    /// The output payload.
    pub fn encode(&self) -> [u8; COMMAND_BYTES] {
        let mut b = [0u8; COMMAND_BYTES];
        b[0] = KIND_COMMAND;
        b[1] = self.flags;
        b[2..4].copy_from_slice(&self.pump_speed_permille.to_le_bytes());
        b[4..6].copy_from_slice(&self.alarms_latched.to_le_bytes());
        b[6..8].copy_from_slice(&self.alarms_unacked.to_le_bytes());
        b[8..12].copy_from_slice(&self.setpoint_um.to_le_bytes());
        b[12..16].copy_from_slice(&self.level_um.to_le_bytes());
        b[16..24].copy_from_slice(&self.totalizer_ml.to_le_bytes());
        b
    }

    /// True when flag `bit` (see [`flag`]) is set.
    pub fn has(&self, bit: u8) -> bool {
        self.flags & bit != 0
    }
}

/// What happened to an alarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlarmEventKind {
    /// The condition appeared.
    Raised = 1,
    /// The operator acknowledged it.
    Acknowledged = 2,
    /// It is acknowledged and its condition is gone: unlatched.
    Cleared = 3,
}

/// An alarm event: output indexes 1 and up, only in frames where an alarm changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlarmEvent {
    /// The alarm's bit number (see [`crate::tank::Alarm`]).
    pub alarm: u8,
    /// What happened.
    pub kind: AlarmEventKind,
    /// The level at the event.
    pub level_um: u32,
}

impl AlarmEvent {
    /// The output payload.
    pub fn encode(&self) -> [u8; ALARM_EVENT_BYTES] {
        let mut b = [0u8; ALARM_EVENT_BYTES];
        b[0] = KIND_ALARM_EVENT;
        b[1] = self.alarm;
        b[2] = self.kind as u8;
        b[3] = 0;
        b[4..8].copy_from_slice(&self.level_um.to_le_bytes());
        b
    }
}

/// A level value (`app.level_outputs`): the newest of its key is what counts; sent only
/// when it changed (and on the program's first frame), refreshed by the runtime
/// (`outputs.level_refresh_ms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LevelValue {
    /// What the value is of: [`LEVEL_KEY_TANK_MM`], [`LEVEL_KEY_SETPOINT_UM`] or
    /// [`LEVEL_KEY_ALARMS`] (also the output's io level key).
    pub key: u8,
    /// The value.
    pub value: u32,
}

impl LevelValue {
    /// The output payload.
    pub fn encode(&self) -> [u8; LEVEL_BYTES] {
        let mut b = [0u8; LEVEL_BYTES];
        b[0] = KIND_LEVEL;
        b[1] = self.key;
        b[4..8].copy_from_slice(&self.value.to_le_bytes());
        b
    }
}

/// A decoded output payload of any kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputMessage {
    /// The actuator command (index 0).
    Command(ActuatorCommand),
    /// An alarm event (indexes 1 and up).
    AlarmEvent(AlarmEvent),
    /// A level value (after the events, with `app.level_outputs`).
    Level(LevelValue),
}

impl OutputMessage {
    /// Decodes an output payload. Never panics.
    pub fn decode(bytes: &[u8]) -> Result<OutputMessage, LayoutError> {
        let Some(&kind) = bytes.first() else {
            return Err(LayoutError::TooShort);
        };
        match kind {
            KIND_COMMAND => {
                exact(bytes, COMMAND_BYTES)?;
                let speed = u16_at(bytes, 2);
                if speed > 1000 {
                    return Err(LayoutError::Invalid);
                }
                Ok(OutputMessage::Command(ActuatorCommand {
                    flags: bytes[1],
                    pump_speed_permille: speed,
                    alarms_latched: u16_at(bytes, 4),
                    alarms_unacked: u16_at(bytes, 6),
                    setpoint_um: u32_at(bytes, 8),
                    level_um: u32_at(bytes, 12),
                    totalizer_ml: u64_at(bytes, 16),
                }))
            }
            KIND_ALARM_EVENT => {
                exact(bytes, ALARM_EVENT_BYTES)?;
                let kind = match bytes[2] {
                    1 => AlarmEventKind::Raised,
                    2 => AlarmEventKind::Acknowledged,
                    3 => AlarmEventKind::Cleared,
                    _ => return Err(LayoutError::Invalid),
                };
                if bytes[3] != 0 {
                    return Err(LayoutError::Invalid);
                }
                Ok(OutputMessage::AlarmEvent(AlarmEvent {
                    alarm: bytes[1],
                    kind,
                    level_um: u32_at(bytes, 4),
                }))
            }
            KIND_LEVEL => {
                exact(bytes, LEVEL_BYTES)?;
                if bytes[1] >= LEVEL_KEYS || bytes[2] != 0 || bytes[3] != 0 {
                    return Err(LayoutError::Invalid);
                }
                Ok(OutputMessage::Level(LevelValue {
                    key: bytes[1],
                    value: u32_at(bytes, 4),
                }))
            }
            other => Err(LayoutError::UnknownKind(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The fenced block `hex example=<name>` in docs/PROTOCOL.md.
    fn doc_example(name: &str) -> Vec<u8> {
        let doc = include_str!("../../docs/PROTOCOL.md");
        let fence = format!("```hex example={name}");
        let start = doc
            .find(&fence)
            .unwrap_or_else(|| panic!("no example `{name}` in PROTOCOL.md"));
        let body = &doc[start + fence.len()..];
        let end = body.find("```").expect("example block is closed");
        twinloop::io_protocol::parse_hex(&body[..end]).expect("valid hex")
    }

    #[test]
    fn layout_doc_input_example_decodes() {
        let inputs = TankInputs::decode(&doc_example("tank-input")).unwrap();
        assert_eq!(
            inputs,
            TankInputs {
                digital: di::PUMP_RUNNING | di::AUTO | di::ESTOP_OK,
                level_um: 300_000,
                pump_flow_ml_per_s: 300,
                setpoint_um: 0,
                demand_flow_ml_per_s: 150,
            }
        );
        // The frame example in the I/O section carries this very payload.
        let frame = doc_example("frame");
        let frame = twinloop::io_protocol::decode_frame(&frame).unwrap();
        assert_eq!(frame.payload, &inputs.encode()[..]);
    }

    #[test]
    fn layout_doc_command_example_decodes() {
        let message = OutputMessage::decode(&doc_example("tank-command")).unwrap();
        let expected = ActuatorCommand {
            flags: flag::PUMP_RUN | flag::AUTO,
            pump_speed_permille: 620,
            alarms_latched: 0,
            alarms_unacked: 0,
            setpoint_um: 1_000_000,
            level_um: 300_000,
            totalizer_ml: 12_345,
        };
        assert_eq!(message, OutputMessage::Command(expected));
        let output = doc_example("output");
        let output = twinloop::io_protocol::decode_output(&output).unwrap();
        assert_eq!(output.payload, &expected.encode()[..]);
    }

    #[test]
    fn layout_doc_alarm_example_decodes() {
        let message = OutputMessage::decode(&doc_example("tank-alarm")).unwrap();
        assert_eq!(
            message,
            OutputMessage::AlarmEvent(AlarmEvent {
                alarm: 1,
                kind: AlarmEventKind::Raised,
                level_um: 1_800_000,
            })
        );
    }

    #[test]
    fn layout_inputs_errors_are_typed() {
        let good = TankInputs::default().encode();
        assert_eq!(TankInputs::decode(&[]), Err(LayoutError::TooShort));
        assert_eq!(TankInputs::decode(&good[..19]), Err(LayoutError::TooShort));
        let mut long = good.to_vec();
        long.push(0);
        assert_eq!(TankInputs::decode(&long), Err(LayoutError::TooLong));
        let mut bad = good;
        bad[0] = 2;
        assert_eq!(TankInputs::decode(&bad), Err(LayoutError::UnknownLayout(2)));
        let mut bad = good;
        bad[1] = 1;
        assert_eq!(TankInputs::decode(&bad), Err(LayoutError::Invalid));
    }

    proptest! {
        #[test]
        fn layout_decode_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = TankInputs::decode(&bytes);
            let _ = OutputMessage::decode(&bytes);
        }

        #[test]
        fn layout_inputs_round_trip(digital in any::<u16>(), level in any::<u32>(), flow in any::<u32>(), sp in any::<u32>(), demand in any::<u32>()) {
            let inputs = TankInputs { digital, level_um: level, pump_flow_ml_per_s: flow, setpoint_um: sp, demand_flow_ml_per_s: demand };
            prop_assert_eq!(TankInputs::decode(&inputs.encode()), Ok(inputs));
        }

        #[test]
        fn layout_command_round_trips(flags in any::<u8>(), speed in 0u16..=1000, latched in any::<u16>(), unacked in any::<u16>(), sp in any::<u32>(), level in any::<u32>(), total in any::<u64>()) {
            let c = ActuatorCommand { flags, pump_speed_permille: speed, alarms_latched: latched, alarms_unacked: unacked, setpoint_um: sp, level_um: level, totalizer_ml: total };
            prop_assert_eq!(OutputMessage::decode(&c.encode()), Ok(OutputMessage::Command(c)));
        }

        #[test]
        fn layout_level_round_trips(key in 0..LEVEL_KEYS, value in any::<u32>()) {
            let l = LevelValue { key, value };
            prop_assert_eq!(OutputMessage::decode(&l.encode()), Ok(OutputMessage::Level(l)));
        }
    }

    #[test]
    fn layout_level_refuses_an_unknown_key_and_padding() {
        let good = LevelValue { key: 2, value: 7 }.encode();
        assert_eq!(OutputMessage::decode(&good[..7]), Err(LayoutError::TooShort));
        let mut bad = good;
        bad[1] = LEVEL_KEYS;
        assert_eq!(OutputMessage::decode(&bad), Err(LayoutError::Invalid));
        let mut bad = good;
        bad[3] = 1;
        assert_eq!(OutputMessage::decode(&bad), Err(LayoutError::Invalid));
    }
}
