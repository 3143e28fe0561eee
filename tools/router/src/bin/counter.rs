//! `twinloop-counter`: a program of one counting tag, run as a node of a pair (the
//! runtime's flags and configuration, `--help`), for the router's test: each accepted
//! write of the tag `add` (U16, 1..=1000) adds its value to `total` (U32), so `total`
//! says exactly how many writes of 1 the pair applied. `frames` counts the frames run.
//! Its `[app]` table is empty.
use serde::{Deserialize, Serialize};
use twinloop::app::{App, Frame, Outbox, SnapshotError};
use twinloop::hmi::{HmiClass, HmiTag, HmiType};
use twinloop::node_main::{AppSettings, NodeProgram};

/// The `[app]` table: nothing to set.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {}

impl AppSettings for Settings {}

/// What survives a takeover.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
struct State {
    total: u32,
    frames: u32,
}

const TAGS: [HmiTag; 3] = [
    HmiTag::read("total", HmiClass::Value, HmiType::U32, ""),
    HmiTag::read("frames", HmiClass::Value, HmiType::U32, ""),
    HmiTag::write("add", HmiClass::Setpoint, HmiType::U16, "", 1, 1000),
];

struct Counter {
    state: State,
}

impl App for Counter {
    fn step(&mut self, _frame: Frame<'_>, _outbox: &mut Outbox) {
        self.state.frames = self.state.frames.wrapping_add(1);
    }

    fn snapshot(&self, buf: &mut [u8]) -> Result<usize, SnapshotError> {
        twinloop::app::snapshot_postcard(&self.state, buf)
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<(), SnapshotError> {
        self.state = twinloop::app::restore_postcard(bytes)?;
        Ok(())
    }

    fn digest(&self) -> u64 {
        let mut buf = [0u8; 64];
        let len = self.snapshot(&mut buf).unwrap_or(0);
        twinloop::digest::fnv64(&buf[..len])
    }

    fn hmi_tags(&self) -> &[HmiTag] {
        &TAGS
    }

    fn hmi_read(&self, tag: u16) -> Option<i64> {
        match tag {
            0 => Some(i64::from(self.state.total)),
            1 => Some(i64::from(self.state.frames)),
            _ => None,
        }
    }

    fn hmi_write(&mut self, tag: u16, value: i64) {
        if tag == 2 {
            // Within 1..=1000: the runtime refused the others.
            let add = u32::try_from(value).unwrap_or(0);
            self.state.total = self.state.total.wrapping_add(add);
        }
    }
}

impl NodeProgram for Counter {
    type Settings = Settings;
    const NAME: &'static str = "twinloop-counter";
    const ABOUT: &'static str =
        "One node of a twinloop pair running a counter of HMI writes (the router's test program).";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn from_settings(_settings: &Settings) -> Self {
        Counter {
            state: State::default(),
        }
    }
}

fn main() -> std::process::ExitCode {
    twinloop::run_node::<Counter>(std::env::args_os())
}
