//! The `run`, `chaos` and `bench` subcommands of `twinloop-sim`.
//!
//! Exit codes: 0 every invariant held; 10 a safety invariant broke (an output lost,
//! duplicated after dedup, a deposed primary's output accepted, content not the
//! reference's); 11 a liveness property broke (a false takeover, no recovery); 3 the run
//! could not be carried out (set-up, the node binary, a pair that never started); 130
//! interrupted. `--json` prints one JSON object as the last line of standard output.
#![allow(clippy::disallowed_methods)]

use super::bench::{self, BenchConfig, BenchResult};
use super::group::GroupShape;
use super::modbus::{self, ModbusConfig};
use super::plant_loop::Operator;
use super::procs::NodeEvent;
use super::report::{analyse, Report, EXIT_HARNESS, EXIT_INTERRUPTED, EXIT_LIVENESS};
use super::rig::{Rig, RigConfig, Timing};
use super::schedule::{chaos_schedule, inject, repair, run_schedule, Fault, FaultRecord};
use super::HarnessError;
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Options shared by `run`, `chaos` and `bench`.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// Seeds the fault schedule, the proxy's drops and the nodes' generators.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The I/O cycle in ms (the nodes' `app.cycle_ms`).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub cycle_ms: Option<u32>,
    /// The core's timing: `harness` (20 ms heartbeats, 100 ms window, 50 ms probe),
    /// `seed` (100/500/200 ms, `Config::default()`) or `fast` (1/4/2 ms, `Config::fast()`).
    #[arg(long)]
    pub profile: Option<String>,
    /// Overrides the profile's `heartbeat_interval_ms`.
    #[arg(long)]
    pub heartbeat_ms: Option<u64>,
    /// Overrides the profile's `detection_window_ms`.
    #[arg(long)]
    pub window_ms: Option<u64>,
    /// Overrides the profile's `probe_timeout_ms`.
    #[arg(long)]
    pub probe_ms: Option<u64>,
    /// Overrides the profile's `backup_heartbeat_factor` (1..=64; 1 with `harness` and
    /// `seed`, 8 with `fast` and `aggressive`): a backup that hears its primary
    /// heartbeats this many times less often.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub backup_heartbeat_factor: Option<u64>,
    /// Write `report.json` and `plot.svg` here (and keep the nodes' configurations and
    /// logs in `DIR/nodes`).
    #[arg(long, value_name = "DIR")]
    pub report: Option<PathBuf>,
    /// Print a JSON object as the last line of standard output.
    #[arg(long)]
    pub json: bool,
    /// No progress lines on stderr.
    #[arg(long)]
    pub quiet: bool,
    /// The nodes' `log.level`.
    #[arg(long, default_value = "info")]
    pub log_level: String,
    /// Run the nodes with `[rt] sched_fifo_priority = N` and `mlockall = true`
    /// (best effort: logged when not permitted). 0: the normal scheduler.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=99))]
    pub rt_priority: u8,
    /// Give node 1 a CPU of its own: node 1 on CPU 0, node 2 and the harness (plant,
    /// sink) on CPU 1 — on one host, the nearest thing to a primary on its own IPC.
    /// Needs two CPUs.
    #[arg(long)]
    pub pin_cpus: bool,
    /// The plant network between the nodes and the sink (issue 22): lose this percentage
    /// of the outputs (0–100) until the faults end, then heal. Any `--output-*` or
    /// `--ack-*` option relays the outputs through the output-path proxy.
    #[arg(long, value_name = "PERCENT", value_parser = clap::value_parser!(u8).range(0..=100))]
    pub output_loss: Option<u8>,
    /// Duplicate this percentage of the outputs on that path.
    #[arg(long, value_name = "PERCENT", value_parser = clap::value_parser!(u8).range(0..=100))]
    pub output_dup: Option<u8>,
    /// Delay every output by this many ms on that path.
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=10_000))]
    pub output_delay_ms: Option<u32>,
    /// Plus up to this many ms more, drawn per output: reorders them.
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=10_000))]
    pub output_jitter_ms: Option<u32>,
    /// Lose this percentage of what the sink sends back (acknowledgements); default: the
    /// `--output-loss` percentage (one network both ways).
    #[arg(long, value_name = "PERCENT", value_parser = clap::value_parser!(u8).range(0..=100))]
    pub ack_loss: Option<u8>,
    /// The nodes' `[outputs] level_refresh_ms` (0: off, the default; else 16..=3600000).
    /// Not 0: the tank program also sends three level outputs (`app.level_outputs`), and
    /// the report measures their staleness after the output path heals.
    #[arg(long, default_value_t = 0)]
    pub level_refresh_ms: u64,
    /// The nodes' `[outputs] acks` (issue 22): the sink acknowledges the events it applied
    /// through the reference gateway (`twinloop::Gateway`), tagged with the run's
    /// `ack.key`, back through the output-path proxy when there is one (so `--output-*`
    /// and `--ack-loss` act on the acks too); the primary re-sends what is not acked.
    #[arg(long)]
    pub acks: bool,
    /// The nodes' `[outputs] release`: `immediate` (the default) or `acked`, outputs held
    /// until every in-sync backup acknowledged their frame (issue 16; `bench overhead`
    /// measures the output latency it costs).
    #[arg(long, value_enum, default_value_t = ReleaseMode::Immediate)]
    pub release_mode: ReleaseMode,
    /// Nodes: 2, a pair (the default), or a group of 3 or 4 with a full mesh of sync links
    /// through the proxy (issue 16; `run`, `chaos` and `bench failover`).
    #[arg(long, default_value_t = 2)]
    pub nodes: usize,
    /// The last node of a group is its witness (`runtime.witness`): it votes, never leads.
    #[arg(long)]
    pub witness: bool,
}

/// `--release-mode`: the nodes' `[outputs] release`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReleaseMode {
    /// Outputs leave as their frame runs.
    Immediate,
    /// Outputs leave once every in-sync backup acknowledged their frame.
    Acked,
}

impl CommonArgs {
    /// The output path's faults (outputs, acknowledgements), when any `--output-*` or
    /// `--ack-*` option is given.
    pub fn output_path(&self) -> Option<(super::proxy::PathFault, super::proxy::PathFault)> {
        let any = self.output_loss.is_some()
            || self.output_dup.is_some()
            || self.output_delay_ms.is_some()
            || self.output_jitter_ms.is_some()
            || self.ack_loss.is_some();
        let ppm = |percent: Option<u8>| u32::from(percent.unwrap_or(0)) * 10_000;
        let delay_us = self.output_delay_ms.unwrap_or(0).saturating_mul(1000);
        let jitter_us = self.output_jitter_ms.unwrap_or(0).saturating_mul(1000);
        any.then(|| {
            let outputs = super::proxy::PathFault {
                cut: false,
                loss_ppm: ppm(self.output_loss),
                dup_ppm: ppm(self.output_dup),
                delay_us,
                jitter_us,
            };
            let acks = super::proxy::PathFault {
                // One plant network both ways: the acks are lost as the outputs are unless
                // `--ack-loss` says otherwise.
                loss_ppm: ppm(self.ack_loss.or(self.output_loss)),
                dup_ppm: ppm(self.output_dup),
                ..outputs
            };
            (outputs, acks)
        })
    }
}

/// The group `--nodes` and `--witness` ask for, when `command` may run one (`run`,
/// `chaos`, `bench failover`), or the one line naming the fix. A pair always passes.
fn group_check(common: &CommonArgs, command: &str, runs_groups: bool) -> Result<GroupShape, String> {
    let shape = GroupShape::new(common.nodes, common.witness)?;
    if shape.is_pair() {
        return Ok(shape);
    }
    if !runs_groups {
        return Err(format!(
            "--nodes {}: `{command}` runs a pair only; groups run in `run`, `chaos` and `bench failover`",
            common.nodes
        ));
    }
    Ok(shape)
}

/// `twinloop-sim run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Seconds the run lasts, at least 10: faults spread over it. The pair's start, a
    /// recovery that runs past the end and the last frames come on top when they do not
    /// fit; the run then says by how much and why.
    #[arg(long, default_value_t = 75)]
    pub duration: u64,
    /// Sync links straight between the nodes: no link faults (only process faults).
    #[arg(long)]
    pub no_proxy: bool,
    /// The plant's I/O: `sim` (the harness sends frames and takes outputs itself) or
    /// `modbus` (the plant behind a Modbus/TCP device, the `twinloop-gateway` process and
    /// a pair of demo nodes on tags; docs/GATEWAY.md).
    #[arg(long, value_enum, default_value_t = Io::Sim)]
    pub io: Io,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: CommonArgs,
}

/// The plant's I/O in `run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Io {
    /// The harness's own I/O source and sink.
    Sim,
    /// A Modbus/TCP device, the gateway and the demo on tags.
    Modbus,
}

/// `twinloop-sim chaos`.
#[derive(Debug, Clone, Args)]
pub struct ChaosArgs {
    /// How many random faults (drawn from `--seed`).
    #[arg(long, default_value_t = 50)]
    pub faults: usize,
    /// Pause between recovery and the next fault, ms.
    #[arg(long, default_value_t = 300)]
    pub gap_ms: u64,
    /// Sync links straight between the nodes: no link faults.
    #[arg(long)]
    pub no_proxy: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: CommonArgs,
}

/// Which benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchKind {
    /// Primary SIGKILLed → first output of the new primary at the sink.
    Failover,
    /// Planned switchovers: missed cycles and duplicates.
    Switchover,
    /// CPU per cycle and median latency, pair vs one node alone.
    Overhead,
    /// A late backup against a primary with a large state: time to in-sync.
    Join,
    /// System calls by name and the core's instructions per steady-state cycle: solo,
    /// pair primary, pair backup (strace and valgrind; `--count` windows of 1 s, 2 s, …).
    Counts,
    /// The Modbus gateway's cycle latency (device poll → frame → output → write at the
    /// device) at 10 ms and 1 ms cycles with 10 and 100 registers (`--cycle-ms` for one).
    GatewayLatency,
    /// Primary SIGKILLed → first write of the new primary at the Modbus device.
    GatewayFailover,
    /// The service address on network namespaces: machine killed → the address answers
    /// from the other, twinloop with `twinloop-vip` beside keepalived VRRPv3 (root).
    Vip,
    /// A pair left alone for `--minutes`: its false takeovers per hour (no fault is
    /// injected, so every takeover is false).
    Idle,
    /// The highest cycle rate of `--rates` at which a pair runs `--seconds` (default 60)
    /// with 0 missed deadlines and 0 takeovers, counted by the nodes (issue 20; SCHED_FIFO
    /// priority 40 unless `--rt-priority` or `--plain` says otherwise).
    Rate,
}

/// `twinloop-sim bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// The benchmark.
    #[arg(value_enum)]
    pub kind: BenchKind,
    /// Repetitions: kills (failover, default 200), switchovers (100), rounds of solo and
    /// pair (overhead, 3), joins (join, 5), strace windows of 1 s, 2 s, … (counts, 2).
    #[arg(long)]
    pub count: Option<usize>,
    /// Overhead: seconds measured per round and configuration (default 10); rate: per
    /// rate (default 60, issue 20's window).
    #[arg(long)]
    pub seconds: Option<u64>,
    /// Rate: the cycle rates to try, Hz, comma-separated (1..=20000: a cycle of at
    /// least 50 µs).
    #[arg(long, value_delimiter = ',', default_values_t = super::rate::RATES_DEFAULT_HZ, value_parser = clap::value_parser!(u32).range(1..=20_000))]
    pub rates: Vec<u32>,
    /// Rate: the nodes on the normal scheduler (no `[rt]` settings), to compare.
    #[arg(long)]
    pub plain: bool,
    /// Join: `app.state_ballast_bytes` (the application state to transfer).
    #[arg(long, default_value_t = 1 << 20)]
    pub ballast_bytes: u32,
    /// Join: the application state in MiB, in place of `--ballast-bytes` (1..=1023).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1023))]
    pub state_mib: Option<u32>,
    /// Join: the nodes' `runtime.transfer_chunks_per_ms` (chunks of 1 KiB a
    /// millisecond; default: the profile's, 32 with `harness`, 16 with `fast`).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub chunks_per_ms: Option<u64>,
    /// Idle: minutes the pair runs untouched (1..=1440).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=1440))]
    pub minutes: u64,
    /// How long the pair runs in sync before each repetition, ms.
    #[arg(long)]
    pub settle_ms: Option<u64>,
    /// Relay the sync links through the fault proxy (off: direct, as deployed).
    #[arg(long)]
    pub proxy: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: CommonArgs,
}

/// Where a run keeps its files, and whether to delete them after.
struct WorkDir {
    path: PathBuf,
    temporary: bool,
}

impl WorkDir {
    fn new(report: Option<&PathBuf>, what: &str) -> WorkDir {
        match report {
            // Absolute, so that the node configurations written there name their files
            // absolutely: a relative `--report report` is relative to the caller's working
            // directory, and would otherwise be joined again to the configuration's folder
            // (`report/nodes/report/nodes/console.key`).
            Some(dir) => WorkDir {
                path: std::path::absolute(dir.join("nodes")).unwrap_or_else(|_| dir.join("nodes")),
                temporary: false,
            },
            None => {
                let stamp = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis());
                WorkDir {
                    path: std::env::temp_dir().join(format!("twinloop-sim-{what}-{}-{stamp}", std::process::id())),
                    temporary: true,
                }
            }
        }
    }

    /// Removes a temporary directory when the run passed; keeps it (and says where) when
    /// it did not, for the node logs.
    fn finish(&self, ok: bool) {
        if !self.temporary {
            return;
        }
        if ok {
            let _ = std::fs::remove_dir_all(&self.path);
        } else {
            eprintln!("node configurations and logs kept in {}", self.path.display());
        }
    }
}

fn timing(common: &CommonArgs, default: Timing) -> Result<Timing, String> {
    let mut t = match &common.profile {
        None => default,
        Some(name) => {
            Timing::named(name).ok_or_else(|| format!("unknown profile `{name}` (harness, seed, fast, aggressive)"))?
        }
    };
    if let Some(v) = common.heartbeat_ms {
        t.heartbeat_ms = v;
        t.name = "custom";
    }
    if let Some(v) = common.window_ms {
        t.window_ms = v;
        t.name = "custom";
    }
    if let Some(v) = common.probe_ms {
        t.probe_ms = v;
        t.name = "custom";
    }
    if t.heartbeat_ms == 0 || t.window_ms < 2 * t.heartbeat_ms || t.probe_ms == 0 {
        return Err("timing: heartbeat ≥ 1 ms, window ≥ 2 × heartbeat, probe ≥ 1 ms".into());
    }
    t.startup_ms = t.startup_ms.max(2 * t.heartbeat_ms);
    Ok(t)
}

fn rig_config(common: &CommonArgs, dir: &WorkDir, timing: Timing, cycle_ms: u32) -> Result<RigConfig, HarnessError> {
    let binary = twinloop_demo::binary::locate().map_err(|e| HarnessError::Setup(e.to_string()))?;
    Ok(RigConfig {
        cycle_ms,
        timing,
        seed: common.seed,
        log_level: common.log_level.clone(),
        progress: !common.quiet,
        rt_priority: common.rt_priority,
        backup_heartbeat_factor: common.backup_heartbeat_factor,
        pin_cpus: common.pin_cpus,
        outputs_release: match common.release_mode {
            ReleaseMode::Immediate => twinloop::config::OutputsRelease::Immediate,
            ReleaseMode::Acked => twinloop::config::OutputsRelease::Acked,
        },
        output_path: common.output_path(),
        level_refresh_ms: common.level_refresh_ms,
        level_outputs: common.level_refresh_ms > 0,
        acks: common.acks,
        ..RigConfig::new(dir.path.clone(), binary)
    })
}

fn install_handler() {
    // Only the first call in a process succeeds; tests may call the mains more than once.
    let _ = super::install_interrupt_handler();
}

/// Every node's journal events, in time order, each once: a restarted node serves the
/// journal of its earlier runs again (restored from its file), which its watcher reads
/// from the start under the new run; those copies (same node, time, name and content)
/// are dropped, so that a node's takeovers are not counted once per restart.
fn events_of(rig: &Rig) -> Vec<NodeEvent> {
    let mut events: Vec<NodeEvent> = rig.watchers.iter().flat_map(|w| w.with(|v| v.events.clone())).collect();
    events.sort_by(|a, b| {
        (a.at_ns, a.node, &a.name, &a.message, a.epoch, a.frame)
            .cmp(&(b.at_ns, b.node, &b.name, &b.message, b.epoch, b.frame))
    });
    events.dedup_by(|a, b| {
        (a.at_ns, a.node, &a.name, &a.message, a.epoch, a.frame)
            == (b.at_ns, b.node, &b.name, &b.message, b.epoch, b.frame)
    });
    events
}

/// The report's counts per node (`extra.per_node`, one entry per node in id order):
/// process starts, times it became primary (takeovers among them), state transfers
/// started, alarms.
fn per_node(rig: &Rig, events: &[NodeEvent]) -> Vec<serde_json::Value> {
    (0..rig.nodes.len())
        .map(|i| {
            let id = (i + 1) as u8;
            let mine = || events.iter().filter(move |e| e.node == id);
            // Transitions into the primary role (not a primary's sync changes).
            let mut led = 0;
            let mut was_primary = false;
            for e in mine().filter(|e| e.kind == twinloop::io::schema::EventKind::Transition) {
                let primary = e.role == Some(twinloop::io::schema::Role::Primary);
                led += usize::from(primary && !was_primary);
                was_primary = primary;
            }
            let takeovers = mine()
                .filter(|e| {
                    e.kind == twinloop::io::schema::EventKind::Transition
                        && e.role == Some(twinloop::io::schema::Role::Primary)
                        && e.name.starts_with("takeover")
                })
                .count();
            serde_json::json!({
                "node": id,
                "witness": rig.config.shape.is_witness(i),
                "starts": rig.nodes[i].starts,
                "became_primary": led,
                "takeovers": takeovers,
                "transfers_started": mine().filter(|e| e.name == "transfer_started").count(),
                "alarms": mine().filter(|e| e.kind == twinloop::io::schema::EventKind::Alarm).count(),
            })
        })
        .collect()
}

/// How faults are spaced.
#[derive(Debug, Clone, Copy)]
enum Pacing {
    /// Fault `k` of `n` starts at `warmup + k × span / n` (or at once if late).
    Spread { warmup: Duration, span: Duration },
    /// Back to back, this gap after each recovery.
    Gap(Duration),
}

/// What executing a schedule gave.
struct Executed {
    records: Vec<FaultRecord>,
    liveness_failures: Vec<String>,
    aborted: Option<String>,
}

fn execute(rig: &mut Rig, faults: &[Fault], pacing: Pacing, started: Instant) -> Result<Executed, HarnessError> {
    let mut out = Executed {
        records: Vec::new(),
        liveness_failures: Vec::new(),
        aborted: None,
    };
    let n = faults.len().max(1) as u32;
    for (k, &fault) in faults.iter().enumerate() {
        match pacing {
            Pacing::Spread { warmup, span } => {
                let at = started + warmup + span / n * k as u32;
                rig.sleep(
                    at.saturating_duration_since(Instant::now())
                        .max(Duration::from_millis(300)),
                )?;
            }
            Pacing::Gap(gap) => rig.sleep(gap)?,
        }
        match inject(rig, k, fault) {
            Ok(record) => {
                let recovered = record.recovered_ns.is_some();
                if !recovered {
                    out.liveness_failures.push(format!(
                        "fault #{k} ({}): {}",
                        fault.label(),
                        record.error.clone().unwrap_or_default()
                    ));
                }
                out.records.push(record);
                if !recovered {
                    if let Err(e) = repair(rig) {
                        if matches!(e, HarnessError::Interrupted) {
                            return Err(e);
                        }
                        out.aborted = Some(format!("the pair could not be repaired after fault #{k}: {e}"));
                        break;
                    }
                }
            }
            Err(HarnessError::Interrupted) => return Err(HarnessError::Interrupted),
            Err(e) => {
                out.liveness_failures
                    .push(format!("fault #{k} ({}): {e}", fault.label()));
                if let Err(e) = repair(rig) {
                    if matches!(e, HarnessError::Interrupted) {
                        return Err(e);
                    }
                    out.aborted = Some(format!("the pair could not be repaired after fault #{k}: {e}"));
                    break;
                }
            }
        }
    }
    Ok(out)
}

/// Runs a schedule on a fresh pair and reports; returns the exit code.
fn scenario(
    command: &str,
    common: &CommonArgs,
    no_proxy: bool,
    faults: impl FnOnce(&Timing) -> Vec<Fault>,
    pacing: Pacing,
    frames_hint: u64,
    min_duration: Duration,
) -> u8 {
    install_handler();
    let shape = match group_check(common, command, true) {
        Ok(shape) => shape,
        Err(e) => {
            eprintln!("twinloop-sim {command}: {e}");
            return 2;
        }
    };
    let timing = match timing(common, Timing::HARNESS) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("twinloop-sim {command}: {e}");
            return 2;
        }
    };
    let cycle_ms = common.cycle_ms.unwrap_or(10);
    let dir = WorkDir::new(common.report.as_ref(), command);
    let load_before = super::load_average();
    let result = (|| -> Result<Report, HarnessError> {
        let mut config = rig_config(common, &dir, timing, cycle_ms)?;
        config.proxy = !no_proxy;
        config.operator = Operator::scripted(cycle_ms, frames_hint);
        config.output_path = common.output_path();
        config.level_refresh_ms = common.level_refresh_ms;
        config.shape = shape;
        let faults: Vec<Fault> = faults(&timing)
            .into_iter()
            .filter(|f| config.proxy || !f.kind.needs_proxy())
            .collect();
        eprintln!(
            "twinloop-sim {command}: seed {}, cycle {cycle_ms} ms, timing {} (heartbeat {} ms, window {} ms, probe {} ms), {} faults, proxy {}, files in {}",
            common.seed,
            timing.name,
            timing.heartbeat_ms,
            timing.window_ms,
            timing.probe_ms,
            faults.len(),
            if config.proxy { "on" } else { "off" },
            dir.path.display()
        );
        let started = Instant::now();
        let mut rig = Rig::prepare(config)?;
        rig.start_pair()?;
        if shape.is_pair() {
            rig.say("pair healthy: node 1 primary, node 2 backup in sync");
        } else {
            rig.say(&format!(
                "group of {} healthy: node 1 primary, the others following{}",
                shape.nodes,
                if shape.witness { " (the last a witness)" } else { "" }
            ));
        }
        let started_pair = started.elapsed();
        let executed = execute(&mut rig, &faults, pacing, started)?;
        let faults_done = started.elapsed();
        // The plant network heals with the faults: what the sink lacks from here on, only a
        // re-send (a level's refresh) can bring.
        let output_healed_ns = rig.output_proxy.as_ref().map(|p| {
            let (outputs, acks) = (p.fault(false), p.fault(true));
            p.set(false, super::proxy::PathFault::default());
            p.set(true, super::proxy::PathFault::default());
            rig.say(&format!("output path healed (was {outputs:?}, acks {acks:?})"));
            rig.clock.now_ns()
        });
        // Run out the planned duration, then let the last frames through.
        rig.doing("running out");
        rig.sleep(min_duration.saturating_sub(started.elapsed()))?;
        let drain_from = started.elapsed();
        let (last, aborted) = match rig.drain() {
            Ok(last) => (last, executed.aborted),
            Err(HarnessError::Interrupted) => return Err(HarnessError::Interrupted),
            Err(e) => (
                rig.plant.frames_sent(),
                Some(
                    executed
                        .aborted
                        .unwrap_or_else(|| format!("the last frames did not reach the sink: {e}")),
                ),
            ),
        };
        if common.acks && aborted.is_none() {
            // An event lost on the path (or whose ack was) shortly before the heal comes
            // again at its next re-send, up to `outputs.retry_max_ms` later: await every
            // event the reference expects up to the last frame at the sink, bounded by
            // twice that, before judging (not a failure when it runs out: the analysis
            // then counts what is missing).
            let wanted: Vec<(u64, u8)> = rig.plant.with_frames(|frames| {
                (1..=last)
                    .flat_map(|frame| (0..frames.expected(frame).len()).map(move |i| (frame, i as u8)))
                    .filter(|&(frame, i)| !frames.is_level(frame, i))
                    .collect()
            });
            let bound = Duration::from_millis(2 * twinloop::io::config::OutputsConfig::default().retry_max_ms + 500);
            let waited = rig.wait(bound, "every event re-sent after the heal at the sink", |rig| {
                rig.sink.with(|s| wanted.iter().all(|id| s.delivered.contains_key(id)))
            });
            if let Err(HarnessError::Interrupted) = waited {
                return Err(HarnessError::Interrupted);
            }
        }
        // Let the watchers read the journals to the end.
        rig.sleep(rig.config.watch_interval * 4)?;
        overshoot_note(
            command,
            min_duration,
            started.elapsed(),
            started_pair,
            faults_done,
            drain_from,
        );
        let sink = rig.sink_log();
        let events = events_of(&rig);
        let mut records = executed.records;
        let mut analysis = rig
            .plant
            .with_frames(|frames| analyse(frames, &sink, &events, &mut records, last, cycle_ms));
        if let (Some(healed_ns), true) = (output_healed_ns, analysis.levels_expected > 0) {
            analysis.level_staleness = Some(rig.plant.with_frames(|frames| {
                super::report::level_staleness(frames, &sink, healed_ns, common.level_refresh_ms, last)
            }));
        }
        let proxy = rig.proxy.as_ref().map(|p| p.counters());
        let extra = serde_json::json!({
            "sink": {
                "raw": sink.raw,
                "malformed": sink.malformed,
                "too_old": sink.too_old,
                "lease_lapses": sink.gateway.counters().lapses,
                "invalid": sink.invalid,
                "epochs": sink.epochs.keys().collect::<Vec<_>>(),
                "unrecorded": sink.unrecorded,
            },
            "proxy": proxy.map(|c| serde_json::json!({
                "forwarded": c.forwarded, "cut": c.cut, "dropped": c.dropped, "delayed": c.delayed,
                "overflow": c.overflow, "send_errors": c.send_errors,
            })),
            "output_path": rig.output_proxy.as_ref().map(|p| {
                let one = |c: super::proxy::PathCountersSnapshot| serde_json::json!({
                    "received": c.received, "forwarded": c.forwarded, "lost": c.lost, "cut": c.cut,
                    "duplicated": c.duplicated, "overflow": c.overflow,
                });
                serde_json::json!({
                    "outputs": one(p.counters(false)),
                    "acks": one(p.counters(true)),
                    "healed_at_ms": output_healed_ns.map(|ns| ns as f64 / 1e6),
                    "level_refresh_ms": common.level_refresh_ms,
                    "acks_on": common.acks,
                    "acks_sent": sink.gateway.counters().acks_sent,
                    "acks_dropped": sink.gateway.counters().acks_dropped,
                    "ack_send_errors": sink.ack_send_errors,
                    // With `--level-refresh-ms` the tank program sends levels
                    // (`app.level_outputs`): their staleness after the heal.
                    "level_staleness": analysis.level_staleness.as_ref().map(super::report::LevelStaleness::to_json),
                })
            }),
            "nodes": shape.nodes,
            "witness": shape.witness,
            "node_starts": rig.nodes.iter().map(|n| n.starts).collect::<Vec<_>>(),
            "per_node": per_node(&rig, &events),
            "rt_priority": common.rt_priority,
            "load_average_1m": [load_before, super::load_average()],
            "events_missed": rig.watchers.iter().map(|w| w.with(|v| v.events_missed)).sum::<u64>(),
        });
        let report = Report {
            command: command.into(),
            seed: common.seed,
            cycle_ms,
            timing,
            duration_s: started.elapsed().as_secs_f64(),
            faults: records,
            analysis,
            aborted,
            liveness_failures: executed.liveness_failures,
            extra,
        };
        if let Some(report_dir) = &common.report {
            if let Err(e) = report.write(report_dir, &rig.plant.samples(), &events) {
                eprintln!(
                    "twinloop-sim {command}: cannot write the report to {}: {e}",
                    report_dir.display()
                );
            } else {
                eprintln!(
                    "report: {} and {}",
                    report_dir.join("report.json").display(),
                    report_dir.join("plot.svg").display()
                );
            }
        }
        Ok(report)
    })();
    match result {
        Ok(report) => {
            print!("{}", report.summary());
            if common.json {
                println!("{}", report.to_json(false));
            }
            let code = report.exit_code();
            dir.finish(code == 0);
            code
        }
        Err(HarnessError::Interrupted) => {
            eprintln!("twinloop-sim {command}: interrupted; the nodes were killed");
            dir.finish(false);
            EXIT_INTERRUPTED
        }
        Err(e) => {
            eprintln!("twinloop-sim {command}: {e}");
            dir.finish(false);
            if common.json {
                println!(
                    "{}",
                    serde_json::json!({"command": command, "ok": false, "error": e.to_string()})
                );
            }
            EXIT_HARNESS
        }
    }
}

/// Says why a run took more than two seconds longer than its planned duration (a
/// `--duration` is a plan: the pair's start, a fault whose recovery runs past the end and
/// the last frames' way to the sink come on top when they do not fit in it).
fn overshoot_note(
    command: &str,
    planned: Duration,
    took: Duration,
    started_pair: Duration,
    faults_done: Duration,
    drain_from: Duration,
) {
    if planned.is_zero() || took <= planned + Duration::from_secs(2) {
        return;
    }
    let mut why = Vec::new();
    if faults_done > planned {
        why.push(format!(
            "the faults and their recoveries ended at {:.1} s (the pair's start took {:.1} s)",
            faults_done.as_secs_f64(),
            started_pair.as_secs_f64()
        ));
    }
    let tail = took.saturating_sub(drain_from);
    if tail > Duration::from_secs(1) {
        why.push(format!(
            "the last frames' outputs and journals took {:.1} s to arrive",
            tail.as_secs_f64()
        ));
    }
    if why.is_empty() {
        why.push("the host was slow (see load_average_1m in the JSON)".into());
    }
    eprintln!(
        "twinloop-sim {command}: planned {} s, took {:.1} s: {}",
        planned.as_secs(),
        took.as_secs_f64(),
        why.join("; ")
    );
}

/// The shortest `run --duration`: a warm-up, one fault and its recovery, a quiet tail.
pub const RUN_DURATION_MIN_S: u64 = 10;

/// `twinloop-sim run`: the scenario of [`run_schedule`] over `--duration` seconds.
pub fn run_main(args: &RunArgs) -> u8 {
    if args.duration < RUN_DURATION_MIN_S {
        eprintln!(
            "twinloop-sim run: --duration {} is too short: the shortest run is {RUN_DURATION_MIN_S} s (a warm-up, one fault and its recovery, a quiet tail)",
            args.duration
        );
        return 2;
    }
    let duration = Duration::from_secs(args.duration);
    if args.io == Io::Modbus {
        if args.common.nodes != 2 {
            eprintln!(
                "twinloop-sim run: --io modbus runs a pair only (--nodes {}): give --io sim for a group",
                args.common.nodes
            );
            return 2;
        }
        return run_modbus(args, duration);
    }
    let cycle_ms = u64::from(args.common.cycle_ms.unwrap_or(10));
    let frames_hint = duration.as_millis() as u64 / cycle_ms;
    // Faults spread between a warm-up and a quiet tail, so the plot shows each.
    let warmup = Duration::from_secs(3);
    let span = duration.saturating_sub(Duration::from_secs(8));
    scenario(
        "run",
        &args.common,
        args.no_proxy,
        run_schedule,
        Pacing::Spread { warmup, span },
        frames_hint,
        duration,
    )
}

/// The kills of a `run --io modbus`: one per 15 s, at least one.
pub fn modbus_kills(duration: Duration) -> usize {
    (duration.as_secs() / 15).max(1) as usize
}

/// `twinloop-sim run --io modbus`.
fn run_modbus(args: &RunArgs, duration: Duration) -> u8 {
    install_handler();
    let timing = match timing(&args.common, Timing::HARNESS) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("twinloop-sim run: {e}");
            return 2;
        }
    };
    let dir = WorkDir::new(args.common.report.as_ref(), "run-modbus");
    let config = ModbusConfig {
        cycle_ms: args.common.cycle_ms.unwrap_or(10),
        timing,
        seed: args.common.seed,
        log_level: args.common.log_level.clone(),
        progress: !args.common.quiet,
        ..ModbusConfig::new(dir.path.clone())
    };
    let code = modbus::run_main(
        config,
        duration,
        modbus_kills(duration),
        args.common.report.as_deref(),
        args.common.json,
    );
    dir.finish(code == 0);
    code
}

/// `twinloop-sim bench gateway-latency` and `gateway-failover`.
fn bench_gateway(args: &BenchArgs) -> u8 {
    let name = args
        .kind
        .to_possible_value()
        .map_or_else(|| "gateway".to_string(), |v| v.get_name().to_string());
    let timing = match timing(&args.common, Timing::HARNESS) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("twinloop-sim bench: {e}");
            return 2;
        }
    };
    let dir = WorkDir::new(args.common.report.as_ref(), &format!("bench-{name}"));
    let load_before = super::load_average();
    let base = ModbusConfig {
        timing,
        seed: args.common.seed,
        log_level: args.common.log_level.clone(),
        progress: !args.common.quiet,
        registers: 10,
        ..ModbusConfig::new(dir.path.clone())
    };
    let result = (|| -> Result<serde_json::Value, HarnessError> {
        if args.kind == BenchKind::GatewayFailover {
            let config = ModbusConfig {
                cycle_ms: args.common.cycle_ms.unwrap_or(10),
                ..base.clone()
            };
            let count = args.count.unwrap_or(10);
            eprintln!(
                "twinloop-sim bench gateway-failover: {count} kills, cycle {} ms, timing {} (heartbeat {} ms, window {} ms, probe {} ms), files in {}",
                config.cycle_ms, timing.name, timing.heartbeat_ms, timing.window_ms, timing.probe_ms, dir.path.display()
            );
            let settle = Duration::from_millis(args.settle_ms.unwrap_or(500));
            return modbus::bench_failover(config, count, settle);
        }
        let cycles: Vec<u32> = args.common.cycle_ms.map_or(vec![10, 1], |c| vec![c]);
        let mut runs = Vec::new();
        for &cycle_ms in &cycles {
            for registers in [10, 100] {
                let config = ModbusConfig {
                    cycle_ms,
                    registers,
                    dir: dir.path.join(format!("{cycle_ms}ms-{registers}")),
                    ..base.clone()
                };
                runs.push(modbus::bench_latency(config, args.seconds.unwrap_or(10).max(1))?);
            }
        }
        Ok(serde_json::json!({ "runs": runs }))
    })();
    match result {
        Ok(mut json) => {
            json["bench"] = serde_json::json!(name);
            json["load_average_1m"] = serde_json::json!([load_before, super::load_average()]);
            if let Some(report_dir) = &args.common.report {
                let path = report_dir.join(format!("bench-{name}.json"));
                let text = serde_json::to_string_pretty(&json).unwrap_or_default();
                if let Err(e) = std::fs::write(&path, text + "\n") {
                    eprintln!("cannot write {}: {e}", path.display());
                }
            }
            println!("{json}");
            dir.finish(true);
            0
        }
        Err(HarnessError::Interrupted) => {
            eprintln!("twinloop-sim bench: interrupted; the nodes were killed");
            dir.finish(false);
            EXIT_INTERRUPTED
        }
        Err(e) => {
            eprintln!("twinloop-sim bench {name}: {e}");
            dir.finish(false);
            EXIT_HARNESS
        }
    }
}

/// `twinloop-sim chaos`: `--faults` random faults back to back.
pub fn chaos_main(args: &ChaosArgs) -> u8 {
    let (n, seed, proxy) = (args.faults, args.common.seed, !args.no_proxy);
    // `partition_backup` is a group's fault (a bad shape is refused in `scenario`).
    let group = args.common.nodes > 2;
    let cycle_ms = u64::from(args.common.cycle_ms.unwrap_or(10));
    // About 3 s a fault: enough for the operator script to move the setpoint.
    let frames_hint = (n as u64 * 3000).max(10_000) / cycle_ms;
    scenario(
        "chaos",
        &args.common,
        args.no_proxy,
        |t| chaos_schedule(n, seed, t, proxy, group),
        Pacing::Gap(Duration::from_millis(args.gap_ms)),
        frames_hint,
        Duration::ZERO,
    )
}

/// `twinloop-sim bench …`.
pub fn bench_main(args: &BenchArgs) -> u8 {
    install_handler();
    let shape = match group_check(&args.common, "bench", args.kind == BenchKind::Failover) {
        Ok(shape) => shape,
        Err(e) => {
            eprintln!("twinloop-sim bench: {e}");
            return 2;
        }
    };
    if matches!(args.kind, BenchKind::GatewayLatency | BenchKind::GatewayFailover) {
        return bench_gateway(args);
    }
    if args.kind == BenchKind::Vip {
        return super::vip::bench_main(args);
    }
    let name = format!("{:?}", args.kind).to_lowercase();
    // Counting traces the nodes, which slows them: with the fast profile's 4 ms window a
    // traced primary on a loaded host is taken over.
    let default_timing = if args.kind == BenchKind::Counts {
        Timing::HARNESS
    } else {
        Timing::FAST
    };
    let timing = match timing(&args.common, default_timing) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("twinloop-sim bench: {e}");
            return 2;
        }
    };
    let dir = WorkDir::new(args.common.report.as_ref(), &format!("bench-{name}"));
    let cycle_ms = args.common.cycle_ms.unwrap_or(1);
    let load_before = super::load_average();
    let result = (|| -> Result<BenchResult, HarnessError> {
        let mut rig = rig_config(&args.common, &dir, timing, cycle_ms)?;
        rig.proxy = args.proxy;
        rig.shape = shape;
        rig.operator = Operator::acks_only(cycle_ms);
        // Faster console polling: the waits between repetitions are shorter.
        rig.watch_interval = Duration::from_millis(10);
        if args.kind == BenchKind::Join {
            // At most 1023 MiB (the parser's range): no overflow.
            rig.ballast_bytes = args.state_mib.map_or(args.ballast_bytes, |mib| mib << 20);
            rig.watch_interval = Duration::from_millis(5);
            rig.transfer_chunks_per_ms = args.chunks_per_ms;
        }
        if args.kind == BenchKind::Idle {
            // Nothing to wait for between repetitions: the console is polled for the
            // journals only.
            rig.watch_interval = Duration::from_millis(50);
        }
        let (count, settle_ms) = match args.kind {
            BenchKind::Failover => (200, 100),
            BenchKind::Switchover => (100, 100),
            BenchKind::Overhead => (3, 0),
            BenchKind::Join => (5, 1000),
            BenchKind::Counts => (2, 0),
            BenchKind::GatewayLatency | BenchKind::GatewayFailover => (0, 0),
            BenchKind::Vip => (10, 500),
            BenchKind::Idle => (1, 0),
            BenchKind::Rate => (1, 0),
        };
        if args.kind == BenchKind::Rate {
            // Real time unless told otherwise: the figure is under the documented
            // real-time setup (docs/BENCHMARKS.md); best effort, and each row says.
            rig.rt_priority = match (args.plain, args.common.rt_priority) {
                (true, _) => 0,
                (false, 0) => 40,
                (false, n) => n,
            };
            // The watchers are paused while a rate is measured; between, the start-up
            // waits poll at this pace.
            rig.watch_interval = Duration::from_millis(20);
        }
        let config = BenchConfig {
            rig,
            count: args.count.unwrap_or(count),
            settle_ms: args.settle_ms.unwrap_or(settle_ms),
            // Idle: its minutes, as seconds (at most 1440 minutes: no overflow).
            seconds: if args.kind == BenchKind::Idle {
                args.minutes * 60
            } else if args.kind == BenchKind::Rate {
                args.seconds.unwrap_or(60).max(1)
            } else {
                args.seconds.unwrap_or(10).max(1)
            },
        };
        // `bench rate` runs its own cycles.
        let cycles = if args.kind == BenchKind::Rate {
            format!("rates {:?} Hz, {} s each", args.rates, config.seconds)
        } else {
            format!("{} repetitions, cycle {cycle_ms} ms", config.count)
        };
        eprintln!(
            "twinloop-sim bench {name}: {cycles}, timing {} (heartbeat {} ms, window {} ms, probe {} ms), proxy {}, files in {}",
            timing.name,
            timing.heartbeat_ms,
            timing.window_ms,
            timing.probe_ms,
            if args.proxy { "on" } else { "off" },
            dir.path.display()
        );
        match args.kind {
            BenchKind::Failover => bench::failover(&config),
            BenchKind::Switchover => bench::switchover(&config),
            BenchKind::Overhead => bench::overhead(&config),
            BenchKind::Join => bench::join(&config),
            BenchKind::Counts => super::counts::counts(&config),
            BenchKind::Idle => bench::idle(&config),
            BenchKind::Rate => super::rate::rate(&config, &args.rates),
            BenchKind::GatewayLatency | BenchKind::GatewayFailover => {
                Err(HarnessError::Setup("the gateway benchmarks run apart".into()))
            }
            // Returned above: the namespaces' bench has no rig.
            BenchKind::Vip => Err(HarnessError::Setup("bench vip runs on namespaces, not the rig".into())),
        }
    })();
    match result {
        Ok(result) => {
            let mut json = result.json;
            json["problems"] = serde_json::json!(result.problems);
            if json.get("rt_priority").is_none() {
                // `bench rate` says the priority it gave the nodes (40 by default).
                json["rt_priority"] = serde_json::json!(args.common.rt_priority);
            }
            json["pin_cpus"] = serde_json::json!(args.common.pin_cpus);
            json["backup_heartbeat_factor"] = serde_json::json!(args.common.backup_heartbeat_factor);
            json["load_average_1m"] = serde_json::json!([load_before, super::load_average()]);
            if let Some(report_dir) = &args.common.report {
                let path = report_dir.join(format!("bench-{name}.json"));
                let text = serde_json::to_string_pretty(&json).unwrap_or_default();
                if let Err(e) = std::fs::write(&path, text + "\n") {
                    eprintln!("cannot write {}: {e}", path.display());
                }
            }
            for p in &result.problems {
                eprintln!("PROBLEM: {p}");
            }
            println!("{json}");
            let ok = result.problems.is_empty();
            dir.finish(ok);
            if ok {
                0
            } else {
                EXIT_LIVENESS
            }
        }
        Err(HarnessError::Interrupted) => {
            eprintln!("twinloop-sim bench: interrupted; the nodes were killed");
            dir.finish(false);
            EXIT_INTERRUPTED
        }
        Err(e) => {
            eprintln!("twinloop-sim bench {name}: {e}");
            dir.finish(false);
            EXIT_HARNESS
        }
    }
}

#[cfg(test)]
mod group_tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Args {
        #[command(flatten)]
        common: CommonArgs,
    }

    fn check(args: &[&str], command: &str, runs_groups: bool) -> Result<GroupShape, String> {
        let parsed = Args::try_parse_from(std::iter::once("t").chain(args.iter().copied())).unwrap();
        group_check(&parsed.common, command, runs_groups)
    }

    /// A pair is the default and passes everywhere; a group is taken by `run`, `chaos`
    /// and `bench failover` only; a bad shape names its flag.
    #[test]
    fn cli_nodes_default_pair_group_only_where_wired() {
        assert!(check(&[], "run", false).unwrap().is_pair());
        assert!(check(&["--nodes", "2"], "bench", false).unwrap().is_pair());
        assert!(check(&["--nodes", "3"], "bench", false)
            .unwrap_err()
            .contains("runs a pair only"));
        let group = check(&["--nodes", "3", "--witness"], "chaos", true).unwrap();
        assert_eq!((group.nodes, group.witness), (3, true));
        assert!(check(&["--nodes", "5"], "chaos", true).unwrap_err().contains("2..=4"));
        assert!(check(&["--witness"], "chaos", true)
            .unwrap_err()
            .contains("a pair has no witness"));
    }
}
