//! A conveyor with a guard interlock and a batch counter: the worked example of
//! docs/PROGRAM.md. Input (one byte per frame): bit 0 start button, bit 1 stop button,
//! bit 2 guard closed, bit 3 part sensor. Outputs: the motor command `[1, on]` every frame
//! (as a PLC writes its output image every cycle), then `[2, batches]` when a batch is
//! complete (the motor then stops).
use serde::{Deserialize, Serialize};
use twinloop::app::{restore_postcard, snapshot_postcard, App, Frame, Outbox, SnapshotError};
use twinloop::hmi::{HmiClass, HmiTag, HmiType};
use twinloop::node_main::{AppSettings, NodeProgram, SettingsError};

/// The `[app]` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConveyorSettings {
    /// Parts per batch, 1..=1000000: the belt stops after this many.
    pub batch_parts: u32,
}

impl Default for ConveyorSettings {
    fn default() -> Self {
        ConveyorSettings { batch_parts: 10 }
    }
}

impl AppSettings for ConveyorSettings {
    fn validate(&self, _runtime: &twinloop::Config) -> Result<(), SettingsError> {
        match self.batch_parts {
            1..=1_000_000 => Ok(()),
            _ => Err(SettingsError::new("batch_parts", "must be 1..=1000000")),
        }
    }
}

/// The conveyor's HMI tags, in register order (docs/HMI.md): the motor, the counts, and
/// the batch size and a stop request the operator may write.
pub const CONVEYOR_HMI: [HmiTag; 5] = [
    HmiTag::read("running", HmiClass::Mode, HmiType::Bool, ""),
    HmiTag::read("parts", HmiClass::Value, HmiType::U32, "parts"),
    HmiTag::read("batches", HmiClass::Value, HmiType::U32, "batches"),
    HmiTag::write("batch_parts", HmiClass::Setpoint, HmiType::U32, "parts", 1, 1_000_000),
    HmiTag::write("stop", HmiClass::ModeRequest, HmiType::Bool, "", 1, 1),
];

/// Everything that must survive a takeover: snapshots carry it whole.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conveyor {
    batch_parts: u32,
    running: bool,
    sensor_was: bool,
    parts: u32,
    batches: u32,
}

impl App for Conveyor {
    fn step(&mut self, frame: Frame<'_>, outbox: &mut Outbox) {
        let bits = frame.payload.first().copied().unwrap_or(0);
        let (start, stop, guard_closed, sensor) = (bits & 1 != 0, bits & 2 != 0, bits & 4 != 0, bits & 8 != 0);
        // The interlock: an open guard or the stop button wins over the start button.
        self.running = guard_closed && !stop && (self.running || start);
        let mut batch_done = false;
        if self.running && sensor && !self.sensor_was {
            self.parts += 1;
            if self.parts >= self.batch_parts {
                (self.parts, self.running, batch_done) = (0, false, true);
                self.batches = self.batches.wrapping_add(1);
            }
        }
        self.sensor_was = sensor;
        // Two outputs at most: the outbox holds 16, so neither push can fail.
        let _ = outbox.push(&[1, u8::from(self.running)]);
        if batch_done {
            let _ = outbox.push(&[2, self.batches.min(255) as u8]);
        }
    }

    fn snapshot(&self, buf: &mut [u8]) -> Result<usize, SnapshotError> {
        snapshot_postcard(self, buf)
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<(), SnapshotError> {
        *self = restore_postcard(bytes)?;
        Ok(())
    }

    fn digest(&self) -> u64 {
        let mut buf = [0u8; 32]; // postcard: at most 22 bytes
        let len = self.snapshot(&mut buf).unwrap_or(0);
        twinloop::digest::fnv64(&buf[..len])
    }

    fn hmi_tags(&self) -> &[HmiTag] {
        &CONVEYOR_HMI
    }

    fn hmi_read(&self, tag: u16) -> Option<i64> {
        match tag {
            0 => Some(i64::from(self.running)),
            1 => Some(i64::from(self.parts)),
            2 => Some(i64::from(self.batches)),
            3 => Some(i64::from(self.batch_parts)),
            4 => Some(0),
            _ => None,
        }
    }

    fn hmi_write(&mut self, tag: u16, value: i64) {
        match tag {
            // Within 1..=1000000 (the declared limits; the runtime refused the others).
            3 => self.batch_parts = u32::try_from(value).unwrap_or(self.batch_parts),
            // A stop from the HMI: as the stop button, for one cycle.
            4 => self.running = false,
            _ => {}
        }
    }
}

impl NodeProgram for Conveyor {
    type Settings = ConveyorSettings;
    const NAME: &'static str = "twinloop-conveyor";
    const ABOUT: &'static str = "One node of a twinloop pair running the conveyor example.";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn from_settings(settings: &ConveyorSettings) -> Self {
        Conveyor {
            batch_parts: settings.batch_parts,
            ..Conveyor::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conveyor_hmi_tags_valid_and_writes_set_batch_and_stop() {
        assert_eq!(twinloop::hmi::validate(&CONVEYOR_HMI), Ok(()));
        let mut app = Conveyor::from_settings(&ConveyorSettings::default());
        let mut outbox = Outbox::new();
        // Start with the guard closed (payload bits: 1 start, 4 guard closed).
        app.step(
            Frame {
                number: 1,
                payload: &[1 | 4],
            },
            &mut outbox,
        );
        assert_eq!(app.hmi_read(0), Some(1), "running");
        app.hmi_write(3, 7);
        assert_eq!(app.hmi_read(3), Some(7), "batch_parts as written");
        app.hmi_write(4, 1);
        assert_eq!(app.hmi_read(0), Some(0), "the HMI's stop stops the belt");
    }
}
