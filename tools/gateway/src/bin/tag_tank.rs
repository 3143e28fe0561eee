//! `twinloop-tag-tank`: a small program on tags, run as a node of a pair (the runtime's
//! flags and configuration, `--help`). It reads the tank's level from the input image and
//! drives the inflow valve between two levels; it echoes the level it read (in mm) to an
//! out tag, so that a test can see the device's values reach the program; a bad level
//! (its device's quality not ok) closes the valve and echoes nothing.
//!
//! Its `[app]` table holds `low_um`, `high_um`, `heartbeat_frames` and the tag map (the
//! same `[[app.device]]` and `[[app.tag]]` tables as the gateway's `[[device]]` and
//! `[[tag]]`), which must have the tags `level_um` (in, u32), `inflow` (out, bool) and
//! `level_echo_mm` (out, u16), and may have `fills` (out, u16, `kind = "event"`): the
//! valve's openings, counted, each count an event (issue 17) — so that a test can check
//! that every event reaches the device exactly once.
use serde::{Deserialize, Serialize};
use twinloop::app::{App, Frame, Outbox, SnapshotError};
use twinloop::image::{DeviceSpec, OutputImage, TagHandle, TagMap, TagMapSpec, TagOutputKind, TagSpec, TagType, Value};
use twinloop::node_main::{AppSettings, NodeProgram, SettingsError};

/// The `[app]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Settings {
    /// Below this level the valve opens.
    low_um: u32,
    /// Above this level the valve closes.
    high_um: u32,
    /// A heartbeat output after this many frames without a change (1..=100000).
    heartbeat_frames: u32,
    device: Vec<DeviceSpec>,
    tag: Vec<TagSpec>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            low_um: 950_000,
            high_um: 1_050_000,
            heartbeat_frames: 10,
            device: Vec::new(),
            tag: Vec::new(),
        }
    }
}

impl Settings {
    fn map(&self) -> Result<(TagMap, [TagHandle; 3]), SettingsError> {
        let spec = TagMapSpec {
            device: self.device.clone(),
            tag: self.tag.clone(),
        };
        let map = TagMap::new(&spec).map_err(|e| SettingsError::new("tag", e.to_string()))?;
        let mut handles = [TagHandle(0); 3];
        for (slot, (name, kind)) in handles.iter_mut().zip([
            ("level_um", TagType::U32),
            ("inflow", TagType::Bool),
            ("level_echo_mm", TagType::U16),
        ]) {
            let handle = map
                .handle(name)
                .map_err(|e| SettingsError::new("tag", format!("{e}: the tag tank needs it")))?;
            if map.tag(handle).map(|t| t.kind) != Some(kind) {
                return Err(SettingsError::new(
                    "tag",
                    format!("tag {name} must be of type {kind:?}"),
                ));
            }
            *slot = handle;
        }
        if let Ok(handle) = map.handle("fills") {
            let tag = map.tag(handle);
            if tag.map(|t| (t.kind, t.output_kind)) != Some((TagType::U16, TagOutputKind::Event)) {
                return Err(SettingsError::new(
                    "tag",
                    "the tag fills, when the map has it, must be an out tag of type u16 and kind event",
                ));
            }
        }
        Ok((map, handles))
    }
}

impl AppSettings for Settings {
    fn validate(&self, _runtime: &twinloop::Config) -> Result<(), SettingsError> {
        if self.low_um >= self.high_um {
            return Err(SettingsError::new("low_um", "must be below high_um"));
        }
        if !(1..=100_000).contains(&self.heartbeat_frames) {
            return Err(SettingsError::new("heartbeat_frames", "must be 1..=100000"));
        }
        self.map().map(|_| ())
    }
}

/// What survives a takeover: the output image, the valve and its openings counted.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
struct State {
    out: OutputImage,
    open: bool,
    fills: u16,
}

struct TagTank {
    map: TagMap,
    level: TagHandle,
    inflow: TagHandle,
    echo: TagHandle,
    /// The optional event tag of the valve's openings.
    fills: Option<TagHandle>,
    low_um: u32,
    high_um: u32,
    state: State,
}

impl App for TagTank {
    fn step(&mut self, frame: Frame<'_>, outbox: &mut Outbox) {
        let image = self.map.image(frame.payload);
        let state = &mut self.state;
        match image.tag(self.level).map(|r| r.raw) {
            Ok(Value::U32(level)) => {
                if level < self.low_um {
                    if !state.open {
                        state.fills = state.fills.wrapping_add(1);
                    }
                    state.open = true;
                } else if level > self.high_um {
                    state.open = false;
                }
                let mm = u16::try_from(level / 1000).unwrap_or(u16::MAX);
                state.out.set(&self.map, self.echo, Value::U16(mm));
            }
            // Bad quality: no level to act on, so the valve closes (its safe side).
            _ => state.open = false,
        }
        state.out.set(&self.map, self.inflow, Value::Bool(state.open));
        if let Some(fills) = self.fills {
            state.out.set(&self.map, fills, Value::U16(state.fills));
        }
        state.out.flush(&self.map, outbox);
    }

    fn snapshot(&self, buf: &mut [u8]) -> Result<usize, SnapshotError> {
        twinloop::app::snapshot_postcard(&self.state, buf)
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<(), SnapshotError> {
        self.state = twinloop::app::restore_postcard(bytes)?;
        Ok(())
    }

    fn digest(&self) -> u64 {
        let mut buf = [0u8; 4096];
        let len = self.snapshot(&mut buf).unwrap_or(0);
        twinloop::digest::fnv64(&buf[..len])
    }
}

impl NodeProgram for TagTank {
    type Settings = Settings;
    const NAME: &'static str = "twinloop-tag-tank";
    const ABOUT: &'static str = "One node of a twinloop pair running a tank on the tags of a Modbus gateway.";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn from_settings(settings: &Settings) -> Self {
        // validate() built this map already; a map it refused never gets here.
        let (map, [level, inflow, echo]) = settings.map().expect("validated settings");
        let out = OutputImage::new(&map, settings.heartbeat_frames);
        // validate() checked its type and kind when the map has it.
        let fills = map.handle("fills").ok();
        TagTank {
            map,
            level,
            inflow,
            echo,
            fills,
            low_um: settings.low_um,
            high_um: settings.high_um,
            state: State {
                out,
                open: false,
                fills: 0,
            },
        }
    }
}

fn main() -> std::process::ExitCode {
    twinloop::run_node::<TagTank>(std::env::args_os())
}
