//! The process harness: two real `twinloop-demo` node processes on loopback, a simulated
//! plant closing the loop, injected faults, and a report of what the plant saw.
//!
//! ```text
//!  plant_loop: plant model + I/O source ──frames (UDP)──▶ node 1, node 2 (procs)
//!        ▲ accepted commands                               │  ▲ sync links through
//!        │                                                 │  │ the fault proxy (proxy)
//!  sink: dedup by (frame, index), epoch fencing ◀──outputs─┘  └── console (procs::Console)
//!  reference: the same TankApp in-process on the same frames ─▶ expected outputs
//! ```
//!
//! - [`plant_loop`]: the tank model and the I/O source (one frame per cycle to both
//!   nodes), and the in-process reference run of the control program on every frame sent;
//! - [`sink`]: the actuator gateway (dedup and epoch fencing) and the ledger of what the
//!   actuators received;
//! - [`proxy`]: a UDP relay per sync link, direction and traffic class, with drop, delay
//!   and cut faults;
//! - [`procs`]: node processes (spawn, SIGKILL, SIGSTOP/SIGCONT, SIGTERM, restart; always
//!   killed on drop) and the console client with a watcher thread per node;
//! - [`rig`]: all of the above wired together for one run;
//! - [`schedule`]: fault schedules (the `run` scenario, seeded random `chaos`) and their
//!   injection with recovery in between;
//! - [`report`]: the analysis against the reference (lost, duplicated, missed cycles,
//!   deposed primaries, false takeovers), the human summary, `report.json` and the plot;
//! - [`bench`]: the figures of DESIGN.md "Numbers to reach";
//! - [`counts`]: `bench counts`, system calls and instructions per cycle;
//! - [`rate`]: `bench rate`, the highest cycle rate a pair runs with 0 missed deadlines
//!   and 0 takeovers;
//! - [`modbus`]: `run --io modbus` (the plant behind a Modbus/TCP device, the
//!   `twinloop-gateway` process, a pair of demo nodes on tags, the reference run) and the
//!   gateway's benchmarks;
//! - [`cli`]: the `run`, `chaos` and `bench` subcommands.
//!
//! The harness runs on a real clock: it is the one part of the project where wall time is
//! what is measured.
#![allow(clippy::disallowed_methods)]

pub mod bench;
pub mod cli;
pub mod counts;
pub mod group;
pub mod modbus;
pub mod plant_loop;
pub mod plot;
pub mod procs;
pub mod proxy;
pub mod rate;
pub mod report;
pub mod rig;
pub mod schedule;
pub mod sink;
pub mod vip;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Why a harness run could not be carried out (as opposed to an invariant it found
/// broken, which is a result, not an error).
#[derive(Debug)]
pub enum HarnessError {
    /// Setting up failed: a socket, a file, the node binary.
    Setup(String),
    /// A condition the run needs did not come about in time (e.g. no primary after start).
    Stuck(String),
    /// Ctrl-C, SIGTERM or SIGHUP.
    Interrupted,
}

impl core::fmt::Display for HarnessError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            HarnessError::Setup(m) => write!(f, "set-up failed: {m}"),
            HarnessError::Stuck(m) => write!(f, "stuck: {m}"),
            HarnessError::Interrupted => write!(f, "interrupted"),
        }
    }
}

impl std::error::Error for HarnessError {}

impl HarnessError {
    /// A set-up error from an I/O error, naming what was being done.
    pub fn io(what: impl core::fmt::Display, error: std::io::Error) -> Self {
        HarnessError::Setup(format!("{what}: {error}"))
    }
}

/// Set by the signal handler; every wait of the harness checks it, so that the run
/// unwinds and the drop guards kill the node processes.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// True once Ctrl-C (or SIGTERM/SIGHUP) arrived.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Routes SIGINT, SIGTERM and SIGHUP to [`interrupted`]; a second signal exits at once
/// (the node processes still die with us: they are started with a parent-death signal
/// where `setpriv` exists). Call once, from the binary.
pub fn install_interrupt_handler() -> Result<(), HarnessError> {
    ctrlc::set_handler(|| {
        if INTERRUPTED.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
    })
    .map_err(|e| HarnessError::Setup(format!("cannot install the signal handler: {e}")))
}

/// The run's clock: monotonic nanoseconds since the run began, and the wall-clock
/// origin to place the nodes' journal timestamps (Unix ms) on the same axis.
#[derive(Debug, Clone, Copy)]
pub struct RunClock {
    origin: Instant,
    origin_unix_ns: u64,
}

impl Default for RunClock {
    fn default() -> Self {
        Self::start()
    }
}

impl RunClock {
    /// A clock whose origin is now.
    pub fn start() -> Self {
        let origin_unix_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        RunClock {
            origin: Instant::now(),
            origin_unix_ns,
        }
    }

    /// Nanoseconds since the origin.
    pub fn now_ns(&self) -> u64 {
        self.ns_of(Instant::now())
    }

    /// Nanoseconds since the origin of an instant (0 if before it).
    pub fn ns_of(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.origin).as_nanos()).unwrap_or(u64::MAX)
    }

    /// The run time (ns since the origin) of a wall-clock time in Unix milliseconds, as
    /// the nodes stamp their journal events; 0 if before the origin.
    pub fn ns_of_unix_ms(&self, unix_ms: u64) -> u64 {
        unix_ms.saturating_mul(1_000_000).saturating_sub(self.origin_unix_ns)
    }

    /// The instant `ns` after the origin.
    pub fn instant_at(&self, ns: u64) -> Instant {
        self.origin + Duration::from_nanos(ns)
    }
}

/// Milliseconds, as a float, of nanoseconds: for reports.
pub fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

/// Polls `condition` every `poll` until it holds. Fails with [`HarnessError::Stuck`]
/// naming `what` after `limit`, or with [`HarnessError::Interrupted`].
pub fn wait_until(
    limit: Duration,
    poll: Duration,
    what: &str,
    mut condition: impl FnMut() -> bool,
) -> Result<(), HarnessError> {
    let deadline = Instant::now() + limit;
    loop {
        if condition() {
            return Ok(());
        }
        if interrupted() {
            return Err(HarnessError::Interrupted);
        }
        if Instant::now() >= deadline {
            return Err(HarnessError::Stuck(format!("{what} (waited {limit:?})")));
        }
        std::thread::sleep(poll);
    }
}

/// Sleeps for `duration`, waking early (with an error) on an interrupt.
pub fn pause(duration: Duration) -> Result<(), HarnessError> {
    let deadline = Instant::now() + duration;
    loop {
        if interrupted() {
            return Err(HarnessError::Interrupted);
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(());
        }
        std::thread::sleep((deadline - now).min(Duration::from_millis(20)));
    }
}

/// Percentiles of a sample, nearest-rank, in the sample's unit.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Percentiles {
    /// How many values.
    pub count: usize,
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

impl Percentiles {
    /// Of `values` (any order). All zero for an empty sample.
    pub fn of(values: &[f64]) -> Percentiles {
        if values.is_empty() {
            return Percentiles::default();
        }
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let rank = |p: f64| {
            let index = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
            sorted[index]
        };
        Percentiles {
            count: sorted.len(),
            p50: rank(0.50),
            p99: rank(0.99),
            max: sorted[sorted.len() - 1],
        }
    }

    /// `{"p50":…,"p99":…,"max":…,"count":…}`, rounded to µs.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "p50": round3(self.p50),
            "p99": round3(self.p99),
            "max": round3(self.max),
            "count": self.count,
        })
    }
}

/// The host's 1-minute load average (`/proc/loadavg`), for the record next to figures
/// measured on a shared machine; None where unreadable.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Rounds to three decimals (µs when the unit is ms).
pub fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        let p = Percentiles::of(&values);
        assert_eq!((p.count, p.p50, p.p99, p.max), (100, 50.0, 99.0, 100.0));
        assert_eq!(Percentiles::of(&[]), Percentiles::default());
        assert_eq!(Percentiles::of(&[7.0]).p99, 7.0);
    }

    #[test]
    fn wait_until_times_out_with_what() {
        let error = wait_until(Duration::from_millis(5), Duration::from_millis(1), "never", || false).unwrap_err();
        assert!(matches!(error, HarnessError::Stuck(m) if m.starts_with("never")));
        assert!(wait_until(Duration::from_secs(1), Duration::from_millis(1), "now", || true).is_ok());
    }

    #[test]
    fn run_clock_places_unix_ms_after_origin() {
        let clock = RunClock::start();
        let unix_ms = clock.origin_unix_ns / 1_000_000 + 1500;
        let ns = clock.ns_of_unix_ms(unix_ms);
        assert!((1_499_000_000..=1_500_000_000).contains(&ns), "{ns}");
        assert_eq!(clock.ns_of_unix_ms(0), 0);
    }
}
