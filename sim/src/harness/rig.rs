//! One run's set-up: the sink, the plant loop, the fault proxy and two node processes with
//! generated configurations (ephemeral loopback ports, keys, epoch files), and the waits
//! the scenarios need ("a healthy pair", "the new primary's first output").
//!
//! Progress goes to stderr while the harness waits: every node journal event worth
//! knowing (transitions, alarms, probes, transfers) as it is seen, and one status line a
//! second. No terminal is needed.
#![allow(clippy::disallowed_methods)]

use super::group::{self, GroupPorts, GroupShape, NODES_MAX};
use super::plant_loop::{Operator, PlantConfig, PlantLoop};
use super::procs::{write_private, Console, NodeProc, Watcher};
use super::proxy::{LinkEnds, OutputPathProxy, PathFault, Proxy};
use super::sink::{lock, Gateway, SinkAcks, SinkLog, SinkThread};
use super::{ms, HarnessError, RunClock};
use serde_json::Value;
use std::cell::RefCell;
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use twinloop::io::config::{ConsoleConfig, FramesConfig, LinkConfig, LogConfig, OutputsConfig, ShutdownConfig};
use twinloop::io::schema::{EventKind, Role, Status, Sync};
use twinloop::testing::{NodePorts, PortPool};
use twinloop_demo::node_config::{NodeFile, NodeTable, Profile, RtConfig};
use twinloop_demo::plant::PlantParams;
use twinloop_demo::TankParams;

/// Sync links per node, as in the example configurations (a dedicated cable and the
/// plant network).
pub const LINKS: usize = 2;
const LINK_NAMES: [&str; LINKS] = ["sync", "plant"];
/// The acks' key file in the run's folder (the nodes' `outputs.ack_key_file`).
pub const ACK_KEY_FILE: &str = "ack.key";

/// The core's timing, written into both nodes' `[runtime]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// The name shown in reports.
    pub name: &'static str,
    /// `node.profile` (`default` or `fast`): the base the keys below override.
    pub base: &'static str,
    /// `runtime.heartbeat_interval_ms`.
    pub heartbeat_ms: u64,
    /// `runtime.detection_window_ms`.
    pub window_ms: u64,
    /// `runtime.probe_timeout_ms`.
    pub probe_ms: u64,
    /// `runtime.startup_wait_ms`.
    pub startup_ms: u64,
    /// `runtime.retry_ms`.
    pub retry_ms: u64,
    /// `runtime.switchover_timeout_ms`.
    pub switchover_timeout_ms: u64,
}

impl Timing {
    /// The harness's default for `run` and `chaos`: 20 ms heartbeats, a 100 ms window and
    /// a 50 ms probe — fast enough for many faults a minute, slow enough that a busy
    /// 2-core host does not fake deaths.
    pub const HARNESS: Timing = Timing {
        name: "harness",
        base: "default",
        heartbeat_ms: 20,
        window_ms: 100,
        probe_ms: 50,
        startup_ms: 100,
        retry_ms: 10,
        switchover_timeout_ms: 500,
    };
    /// The seed's timing (`Config::default()`): 100 ms heartbeats, 500 ms window.
    pub const SEED: Timing = Timing {
        name: "seed",
        base: "default",
        heartbeat_ms: 100,
        window_ms: 500,
        probe_ms: 200,
        startup_ms: 500,
        retry_ms: 50,
        switchover_timeout_ms: 1000,
    };
    /// The documented fast profile (`Config::fast()`): 1 ms heartbeats, 4 ms window.
    pub const FAST: Timing = Timing {
        name: "fast",
        base: "fast",
        heartbeat_ms: 1,
        window_ms: 4,
        probe_ms: 2,
        startup_ms: 20,
        retry_ms: 5,
        switchover_timeout_ms: 200,
    };

    /// Failover in three cycles at 1 kHz (issue 20; configs/profiles/aggressive.toml):
    /// the fast profile with a 2 ms window and a 1 ms probe, so a takeover comes 3 ms of
    /// silence after the last commit. The start-up wait is ten times the fast profile's:
    /// it costs nothing on a failover, and a node restarting beside a peer the host holds
    /// up for 20 ms started cold beside it (a `colder_primary` for the operator) in the
    /// first runs with 20 ms.
    pub const AGGRESSIVE: Timing = Timing {
        name: "aggressive",
        base: "fast",
        heartbeat_ms: 1,
        window_ms: 2,
        probe_ms: 1,
        startup_ms: 200,
        retry_ms: 5,
        switchover_timeout_ms: 200,
    };

    /// By name: `harness`, `seed` (or `default`), `fast` or `aggressive`.
    pub fn named(name: &str) -> Option<Timing> {
        match name {
            "harness" => Some(Timing::HARNESS),
            "seed" | "default" => Some(Timing::SEED),
            "fast" => Some(Timing::FAST),
            "aggressive" => Some(Timing::AGGRESSIVE),
            _ => None,
        }
    }

    /// Silence after which a backup takes over: window plus probe.
    pub fn takeover_ms(&self) -> u64 {
        self.window_ms + self.probe_ms
    }

    /// As JSON, for reports.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "name": self.name,
            "heartbeat_ms": self.heartbeat_ms,
            "detection_window_ms": self.window_ms,
            "probe_timeout_ms": self.probe_ms,
            "startup_wait_ms": self.startup_ms,
            "retry_ms": self.retry_ms,
            "switchover_timeout_ms": self.switchover_timeout_ms,
        })
    }
}

/// Everything a rig needs to know.
#[derive(Debug, Clone)]
pub struct RigConfig {
    /// Configurations, logs and epoch files go here.
    pub dir: PathBuf,
    /// The `twinloop-demo` binary.
    pub binary: PathBuf,
    /// The cycle, ms (the nodes' `app.cycle_ms`), unless `cycle_us` is set.
    pub cycle_ms: u32,
    /// The cycle in µs (the nodes' `app.cycle_us`; `--cycle-us`, `bench rate`): when set
    /// it is the cycle, and `cycle_ms` only what the millisecond waits of `run`, `chaos`
    /// and the report count in (the cycle rounded up to whole milliseconds).
    pub cycle_us: Option<u32>,
    /// The core's timing.
    pub timing: Timing,
    /// Relay the sync links through the fault proxy (needed for link faults; off, the
    /// nodes talk directly, as the benchmarks measure them).
    pub proxy: bool,
    /// Seeds the nodes' generators and the proxy's drops.
    pub seed: u64,
    /// `app.state_ballast_bytes`.
    pub ballast_bytes: u32,
    /// The operator panel.
    pub operator: Operator,
    /// The tank model.
    pub plant: PlantParams,
    /// How often the watchers poll the consoles.
    pub watch_interval: Duration,
    /// The nodes' `log.level`.
    pub log_level: String,
    /// The gateway's dedup window, frames.
    pub sink_window_frames: u64,
    /// Print progress to stderr.
    pub progress: bool,
    /// When not 0: the nodes' `[rt]` table gets `sched_fifo_priority` = this,
    /// `mlockall = true` and `best_effort = true` (what a real-time deployment sets).
    pub rt_priority: u8,
    /// Node 1 on CPU 0; node 2 and the harness on CPU 1.
    pub pin_cpus: bool,
    /// When set, the nodes reach the sink through the output-path proxy with these faults
    /// (outputs, then the sink's way back; issue 22).
    pub output_path: Option<(PathFault, PathFault)>,
    /// The nodes' `[outputs] level_refresh_ms` (0: off).
    pub level_refresh_ms: u64,
    /// The nodes' `[outputs] acks` with `ack_key_file` (issue 22): the sink acknowledges
    /// the events it applied through the reference gateway, tagged with the run's ack key,
    /// back through the output-path proxy when there is one.
    pub acks: bool,
    /// The tank program's `app.level_outputs`: levels (kind 3) beside its events, whose
    /// staleness after the output path heals the report measures.
    pub level_outputs: bool,
    /// The nodes' `[outputs] release` (issue 16).
    pub outputs_release: twinloop::config::OutputsRelease,
    /// A pair (the default) or a group (`--nodes 3|4`, `--witness`; issue 16).
    pub shape: GroupShape,
    /// The nodes' `runtime.transfer_chunks_per_ms` (`None`: the profile's).
    pub transfer_chunks_per_ms: Option<u64>,
    /// The nodes' `runtime.backup_heartbeat_factor` (`None`: the profile's).
    pub backup_heartbeat_factor: Option<u64>,
}

impl RigConfig {
    /// Defaults for `dir` and `binary`: harness timing, a 10 ms cycle, the proxy on.
    pub fn new(dir: PathBuf, binary: PathBuf) -> Self {
        RigConfig {
            dir,
            binary,
            cycle_ms: 10,
            cycle_us: None,
            timing: Timing::HARNESS,
            proxy: true,
            seed: 1,
            ballast_bytes: 0,
            operator: Operator::default(),
            plant: PlantParams {
                // Just below the low-level alarm: the program raises an alarm at once and
                // acknowledges and clears it later, so some frames have several outputs.
                level_initial_um: 190_000,
                // A pump twice the model's default fills to the setpoint in about ten
                // seconds, so a run of a minute shows the loop settle and follow steps.
                pump_flow_max_ml_per_s: 10_000,
                ..PlantParams::default()
            },
            watch_interval: Duration::from_millis(50),
            log_level: "info".into(),
            sink_window_frames: 1 << 16,
            progress: true,
            rt_priority: 0,
            pin_cpus: false,
            output_path: None,
            level_refresh_ms: 0,
            acks: false,
            level_outputs: false,
            outputs_release: twinloop::config::OutputsRelease::Immediate,
            shape: GroupShape {
                nodes: 2,
                witness: false,
            },
            transfer_chunks_per_ms: None,
            backup_heartbeat_factor: None,
        }
    }

    /// The control program's parameters (nodes and reference alike).
    pub fn params(&self) -> TankParams {
        let (cycle_ms, cycle_us) = match self.cycle_us {
            Some(us) => (None, Some(us)),
            None => (Some(self.cycle_ms), None),
        };
        TankParams {
            cycle_ms,
            cycle_us,
            state_ballast_bytes: self.ballast_bytes,
            level_outputs: self.level_outputs,
            ..TankParams::default()
        }
    }
}

// The pool's ports are for two links a node.
const _: () = assert!(LINKS == 2);

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A healthy pair or group: one primary with every other program node a following
/// backup in sync, in one epoch (a group's witness answering as a backup), and the sink
/// following that epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Health {
    /// Index (0-based) of the primary.
    pub primary: usize,
    /// The epoch.
    pub epoch: u64,
    /// The primary's last frame.
    pub frame: u64,
    /// Index of the backup: a pair's other node; a group's expected successor (the
    /// heaviest program backup: the lowest index other than the primary's).
    pub successor: usize,
}

impl Health {
    /// Index of the backup (a group's expected successor).
    pub fn backup(&self) -> usize {
        self.successor
    }
}

#[derive(Debug, Default)]
struct ProgressState {
    /// Events printed so far, per node.
    printed: [usize; NODES_MAX],
    next_line: Option<Instant>,
    /// A word on what the harness is doing, shown in the status line.
    doing: String,
}

/// The running set-up. Dropping it kills the nodes and stops every thread.
pub struct Rig {
    /// The configuration.
    pub config: RigConfig,
    /// The run's clock.
    pub clock: RunClock,
    /// The nodes (index 0 is node id 1): two, or a group's 3 or 4.
    pub nodes: Vec<NodeProc>,
    /// Their consoles.
    pub consoles: Vec<Console>,
    /// Their watchers.
    pub watchers: Vec<Watcher>,
    /// The sink.
    pub sink: SinkThread,
    /// The plant loop.
    pub plant: PlantLoop,
    /// The fault proxy, when configured.
    pub proxy: Option<Proxy>,
    /// The output path's proxy, when configured.
    pub output_proxy: Option<OutputPathProxy>,
    /// The console key.
    pub key: String,
    /// Each node's own ports (a group's link ports are in its `GroupPorts`).
    ports: Vec<NodePorts>,
    /// Sockets bound on a node's link ports and never read (see [`Rig::silence_peer_of`]).
    held: Vec<UdpSocket>,
    progress: RefCell<ProgressState>,
}

impl Rig {
    /// Sets everything up (configurations written, threads running, frames not yet
    /// sent, no node started).
    pub fn prepare(config: RigConfig) -> Result<Rig, HarnessError> {
        if config.pin_cpus {
            // Before any thread starts: they inherit the calling thread's CPUs.
            let mut cpus = nix::sched::CpuSet::new();
            cpus.set(1)
                .and_then(|()| nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &cpus))
                .map_err(|e| HarnessError::Setup(format!("--pin-cpus: cannot pin the harness to CPU 1: {e}")))?;
        }
        std::fs::create_dir_all(&config.dir)
            .map_err(|e| HarnessError::io(format!("create {}", config.dir.display()), e))?;
        let clock = RunClock::start();
        let key = format!("twinloop-sim-console-{:016x}", config.seed ^ 0x5EED);
        write_private(&config.dir.join("console.key"), &format!("{key}\n"))?;
        write_private(
            &config.dir.join("sync.key"),
            &format!("twinloop-sim-sync-{:016x}\n", config.seed.rotate_left(17) ^ 0xC0FFEE),
        )?;
        // The acks' own key (a gateway never holds the pair's sync key), derived as the
        // nodes and the reference gateway derive it from the file.
        let ack_key_path = config.dir.join(ACK_KEY_FILE);
        write_private(
            &ack_key_path,
            &format!("twinloop-sim-ack-{:016x}\n", config.seed.rotate_left(29) ^ 0xAC_4B),
        )?;
        let sink_acks = if config.acks {
            let secret = twinloop::io::preflight::read_key_file("outputs.ack_key_file", &ack_key_path)
                .map_err(|e| HarnessError::Setup(e.to_string()))?;
            Some(SinkAcks {
                key: Some(twinloop::io_protocol::AckKey::derive(&secret)),
                session: twinloop::io::clock::unix_ns(),
            })
        } else {
            None
        };
        let shape = config.shape;
        for id in 1..=shape.nodes {
            // A fresh pair: no epoch from an earlier run in this directory.
            let _ = std::fs::remove_file(config.dir.join(format!("node-{id}.epoch")));
            let _ = std::fs::remove_file(config.dir.join(format!("node-{id}.log")));
        }

        let mut pool = PortPool::new();
        let group_ports = (!shape.is_pair()).then(|| GroupPorts::take(shape, &mut pool));
        let ports: Vec<NodePorts> = match &group_ports {
            Some(g) => g.nodes.clone(),
            None => vec![pool.node(), pool.node()],
        };
        let plant = PlantLoop::start(
            PlantConfig {
                params: config.params(),
                plant: config.plant.clone(),
                targets: ports.iter().map(|p| local(p.frames)).collect(),
                operator: config.operator.clone(),
            },
            clock,
        )?;
        // The epoch lease (PROTOCOL.md): longer than any takeover and any freeze the
        // schedules inject, so it lapses only when no node emits at all.
        let lease_ns = (config.timing.window_ms * 10).max(5000) * 1_000_000;
        let gateway = Gateway::new(config.sink_window_frames, Some(Duration::from_nanos(lease_ns)))
            .map_err(|e| HarnessError::Setup(e.to_string()))?;
        let sink = SinkThread::start_acking(clock, gateway, sink_acks, plant.command_hook())?;
        let proxy = if let (true, Some(g)) = (config.proxy, &group_ports) {
            // A group's full mesh: one two-ended proxy link per pair of nodes and link.
            Some(Proxy::start(group::link_ends(shape, g), config.seed ^ 0x9E37_79B9)?)
        } else if config.proxy {
            let links = (0..LINKS)
                .map(|l| LinkEnds {
                    name: LINK_NAMES[l].into(),
                    targets: [
                        [local(ports[0].links[l][0]), local(ports[0].links[l][1])],
                        [local(ports[1].links[l][0]), local(ports[1].links[l][1])],
                    ],
                })
                .collect();
            Some(Proxy::start(links, config.seed ^ 0x9E37_79B9)?)
        } else {
            None
        };
        let output_proxy = match config.output_path {
            Some((outputs, acks)) => {
                let p = OutputPathProxy::start(shape.nodes, sink.addr(), config.seed ^ 0x0A7B_17C5)?;
                p.set(false, outputs);
                p.set(true, acks);
                Some(p)
            }
            None => None,
        };
        let mut paths = Vec::new();
        for i in 0..shape.nodes {
            let sink_for = output_proxy
                .as_ref()
                .and_then(|p| p.address_for(i))
                .unwrap_or(sink.addr());
            let text = match &group_ports {
                Some(g) => group::node_toml(&config, shape, i, g, proxy.as_ref(), sink_for),
                None => node_toml(&config, i, &[ports[0], ports[1]], proxy.as_ref(), sink_for),
            };
            let path = config.dir.join(format!("node-{}.toml", i + 1));
            std::fs::write(&path, text).map_err(|e| HarnessError::io(format!("write {}", path.display()), e))?;
            paths.push(path);
        }
        let console_timeout = Duration::from_millis(500);
        let consoles: Vec<Console> = ports
            .iter()
            .map(|p| Console::new(local(p.console), &key, console_timeout))
            .collect();
        let watchers = consoles
            .iter()
            .enumerate()
            .map(|(i, c)| Watcher::start((i + 1) as u8, c.clone(), clock, config.watch_interval))
            .collect::<Result<Vec<_>, _>>()?;
        // A group's witness runs the shipped `twinloop-witness` (beside the program's
        // binary; built there if absent), its file without `[app]`.
        let witness_binary = if shape.witness {
            Some(
                twinloop_demo::binary::locate_witness(&config.binary)
                    .map_err(|e| HarnessError::Setup(e.to_string()))?,
            )
        } else {
            None
        };
        let nodes = (0..shape.nodes)
            .map(|i| {
                NodeProc::new(
                    (i + 1) as u8,
                    match &witness_binary {
                        Some(witness) if shape.is_witness(i) => witness.clone(),
                        _ => config.binary.clone(),
                    },
                    paths[i].clone(),
                    config.dir.join(format!("node-{}.log", i + 1)),
                )
            })
            .collect();
        // The nodes bind these ports themselves now.
        drop(pool);
        Ok(Rig {
            config,
            clock,
            nodes,
            consoles,
            watchers,
            sink,
            plant,
            proxy,
            output_proxy,
            key,
            ports,
            held: Vec::new(),
            progress: RefCell::new(ProgressState::default()),
        })
    }

    /// For a node run alone: binds the *other* node's link ports and never reads them, so
    /// that what the lone node sends its peer vanishes as on a pulled cable (closed ports
    /// would answer with ICMP errors, which cost the lone node receive calls a real
    /// absent peer does not). Call before starting the lone node; the other node cannot
    /// start afterwards.
    pub fn silence_peer_of(&mut self, i: usize) -> Result<(), HarnessError> {
        let other = &self.ports[1 - i.min(1)];
        debug_assert!(self.config.shape.is_pair(), "a lone node is a pair's");
        for port in other.links.iter().flatten() {
            let socket = UdpSocket::bind(local(*port)).map_err(|e| HarnessError::io(format!("hold port {port}"), e))?;
            self.held.push(socket);
        }
        Ok(())
    }

    /// Node `i`'s `[frames] bind` port.
    pub fn frames_port(&self, i: usize) -> u16 {
        self.ports[i.min(self.ports.len() - 1)].frames
    }

    /// The usual start of a pair: node 1 first, until it leads; node 2, until it follows;
    /// then the frames, until node 2 is in sync.
    ///
    /// A group starts every node at once (a group's node leads from the start only while
    /// it hears a majority); node 1's start-up priority makes it the one that leads.
    pub fn start_pair(&mut self) -> Result<Health, HarnessError> {
        if !self.config.shape.is_pair() {
            for node in &mut self.nodes {
                node.spawn()?;
            }
            let n = self.nodes.len();
            self.wait_starting(
                0,
                Duration::from_secs(30),
                "node 1 to lead and the others to follow",
                |rig| {
                    rig.status(0).is_some_and(|s| s.role == Role::Primary)
                        && (1..n).all(|i| rig.status(i).is_some_and(|s| s.role == Role::Backup))
                },
            )?;
            self.plant.set_sending(true)?;
            return self.await_healthy(Duration::from_secs(30));
        }
        self.start_node_as_primary(0)?;
        self.nodes[1].spawn()?;
        self.wait_starting(1, Duration::from_secs(20), "node 2 to become backup", |rig| {
            rig.status(1).is_some_and(|s| s.role == Role::Backup)
        })?;
        self.plant.set_sending(true)?;
        self.await_healthy(Duration::from_secs(30))
    }

    /// Starts node `i` alone and waits until it leads, then starts the frames if
    /// `frames` (for a solo run).
    pub fn start_node_as_primary(&mut self, i: usize) -> Result<(), HarnessError> {
        self.nodes[i].spawn()?;
        let what = format!("node {} to become primary", i + 1);
        self.wait_starting(i, Duration::from_secs(20), &what, |rig| {
            rig.status(i).is_some_and(|s| s.role == Role::Primary)
        })
    }

    /// [`Rig::wait`] for a node that was just started: a node process that exits meanwhile
    /// (a bad configuration, a port in use) ends the wait at once with the node's own last
    /// log line, instead of a wait to `limit` and "stuck".
    pub fn wait_starting(
        &mut self,
        i: usize,
        limit: Duration,
        what: &str,
        mut condition: impl FnMut(&Rig) -> bool,
    ) -> Result<(), HarnessError> {
        let deadline = Instant::now() + limit;
        loop {
            if condition(self) {
                return Ok(());
            }
            if !self.nodes[i].running() {
                return Err(self.exited_during_start(i));
            }
            self.progress();
            if super::interrupted() {
                return Err(HarnessError::Interrupted);
            }
            if Instant::now() >= deadline {
                return Err(HarnessError::Stuck(format!(
                    "waited {limit:?} for {what}\n{}",
                    self.context()
                )));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// The error for node `i` having exited while the harness waited for it to start.
    fn exited_during_start(&self, i: usize) -> HarnessError {
        let node = &self.nodes[i];
        let status = node
            .last_exit
            .map_or_else(|| "exit status unknown".to_string(), |s| s.to_string());
        let log = node.log_tail(40);
        // The lines this start wrote (the log is appended to across restarts).
        let this_start = log.rsplit("---- twinloop-sim: start #").next().unwrap_or("");
        let last_line = this_start
            .lines()
            .skip(1)
            .filter(|l| !l.trim().is_empty())
            .last()
            .unwrap_or("(it wrote nothing)");
        HarnessError::Setup(format!(
            "node {} exited during start-up ({status}): {last_line}\n(its log: {})",
            i + 1,
            node.log_path().display()
        ))
    }

    /// The last status of node `i` (None while it does not answer or is down).
    pub fn status(&self, i: usize) -> Option<Status> {
        self.watchers[i].status_since(0)
    }

    /// The pair's health, judged from statuses read at or after `since_ns`.
    pub fn health(&self, since_ns: u64) -> Option<Health> {
        if !self.config.shape.is_pair() {
            return self.group_health(since_ns);
        }
        let a = self.watchers[0].status_since(since_ns)?;
        let b = self.watchers[1].status_since(since_ns)?;
        let (primary, p, q) = if a.role == Role::Primary {
            (0, &a, &b)
        } else {
            (1, &b, &a)
        };
        // The frames of 50 ms: a backup further behind is not following.
        let lag_max = (50_000 / u64::from(self.config.params().cycle_us().max(1))).max(5);
        let healthy = p.role == Role::Primary
            && p.sync == Sync::Paired
            && q.is_in_sync_backup()
            && p.epoch == q.epoch
            && q.lag_frames <= lag_max
            && !self.nodes[0].frozen()
            && !self.nodes[1].frozen();
        let epoch = p.epoch;
        let sink_follows = self.sink.with(|s| s.last_epoch == epoch);
        (healthy && sink_follows).then_some(Health {
            primary,
            epoch,
            frame: p.frame,
            successor: 1 - primary,
        })
    }

    /// A group's health: one primary, paired; every other program node an in-sync backup
    /// of its epoch within the lag bound; the witness answering as a backup; none frozen.
    fn group_health(&self, since_ns: u64) -> Option<Health> {
        let shape = self.config.shape;
        let statuses = (0..shape.nodes)
            .map(|i| self.watchers[i].status_since(since_ns))
            .collect::<Option<Vec<Status>>>()?;
        let primary = statuses.iter().position(|s| s.role == Role::Primary)?;
        let p = &statuses[primary];
        // The frames of 50 ms: a backup further behind is not following.
        let lag_max = (50_000 / u64::from(self.config.params().cycle_us().max(1))).max(5);
        let others_follow = statuses
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != primary)
            .all(|(i, q)| {
                if shape.is_witness(i) {
                    q.role == Role::Backup
                } else {
                    q.is_in_sync_backup() && q.epoch == p.epoch && q.lag_frames <= lag_max
                }
            });
        let healthy = p.sync == Sync::Paired && others_follow && self.nodes.iter().all(|n| !n.frozen());
        let successor = (0..shape.nodes).find(|&i| i != primary && !shape.is_witness(i))?;
        let epoch = p.epoch;
        let sink_follows = self.sink.with(|s| s.last_epoch == epoch);
        (healthy && sink_follows).then_some(Health {
            primary,
            epoch,
            frame: p.frame,
            successor,
        })
    }

    /// Waits until the pair is healthy on statuses read after now.
    pub fn await_healthy(&self, limit: Duration) -> Result<Health, HarnessError> {
        let since = self.clock.now_ns();
        let mut found = None;
        self.wait(limit, "a primary with an in-sync backup", |rig| {
            found = rig.health(since);
            found.is_some()
        })?;
        found.ok_or_else(|| HarnessError::Stuck("health vanished".into()))
    }

    /// Waits until the sink has delivered an output of an epoch above `epoch`; returns
    /// that epoch and when its first output was delivered (ns).
    pub fn await_epoch_above(&self, epoch: u64, limit: Duration) -> Result<(u64, u64), HarnessError> {
        let mut found = None;
        let what = format!("an output of an epoch above {} at the sink", twinloop::EpochText(epoch));
        self.wait(limit, &what, |rig| {
            found = rig.sink.with(|s| s.first_epoch_above(epoch));
            found.is_some()
        })?;
        found
            .map(|(e, start)| (e, start.first_accept_ns))
            .ok_or_else(|| HarnessError::Stuck("epoch vanished".into()))
    }

    /// Stops the frames and waits (bounded) until the last one's command is delivered.
    /// Returns the last frame sent.
    pub fn drain(&self) -> Result<u64, HarnessError> {
        self.plant.set_sending(false)?;
        let last = self.plant.frames_sent();
        let limit = Duration::from_millis(self.config.timing.takeover_ms() * 4 + 3000);
        let what = format!("the command of the last frame ({last}) at the sink");
        self.wait(limit, &what, |rig| last == 0 || rig.sink.with(|s| s.has_command(last)))?;
        Ok(last)
    }

    /// Polls `condition` every 2 ms until it holds, printing progress; fails after
    /// `limit` (naming `what`) or on an interrupt.
    pub fn wait(
        &self,
        limit: Duration,
        what: &str,
        mut condition: impl FnMut(&Rig) -> bool,
    ) -> Result<(), HarnessError> {
        let deadline = Instant::now() + limit;
        loop {
            if condition(self) {
                return Ok(());
            }
            self.progress();
            if super::interrupted() {
                return Err(HarnessError::Interrupted);
            }
            if Instant::now() >= deadline {
                return Err(HarnessError::Stuck(format!(
                    "waited {limit:?} for {what}\n{}",
                    self.context()
                )));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Sleeps `duration`, printing progress.
    pub fn sleep(&self, duration: Duration) -> Result<(), HarnessError> {
        let deadline = Instant::now() + duration;
        loop {
            self.progress();
            if super::interrupted() {
                return Err(HarnessError::Interrupted);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(());
            }
            std::thread::sleep((deadline - now).min(Duration::from_millis(10)));
        }
    }

    /// Sets the word shown in the status line.
    pub fn doing(&self, what: &str) {
        self.progress.borrow_mut().doing = what.to_string();
    }

    /// Prints one line to stderr with the run time in front (when progress is on).
    pub fn say(&self, line: &str) {
        if self.config.progress {
            eprintln!("[{:>8.3}s] {line}", ms(self.clock.now_ns()) / 1000.0);
        }
    }

    /// Prints new journal events and, once a second, a status line.
    pub fn progress(&self) {
        if !self.config.progress {
            return;
        }
        let mut state = self.progress.borrow_mut();
        // Both nodes' new events, merged in time order (the watchers read the two journals
        // separately; printed node by node, a takeover could show before the kill).
        let mut new: Vec<(u64, String)> = Vec::new();
        for i in 0..self.watchers.len() {
            self.watchers[i].with(|v| {
                let from = state.printed[i].min(v.events.len());
                new.extend(
                    v.events[from..]
                        .iter()
                        .filter(|e| {
                            e.kind == EventKind::Transition
                                || e.kind == EventKind::Alarm
                                || matches!(
                                    e.name.as_str(),
                                    "probe_sent"
                                        | "false_death"
                                        | "transfer_started"
                                        | "transfer_completed"
                                        | "link_down"
                                )
                        })
                        .map(|e| {
                            let line = format!("[{:>8.3}s] node {}: {}", ms(e.at_ns) / 1000.0, e.node, e.message);
                            (e.at_ns, line)
                        }),
                );
                state.printed[i] = v.events.len();
            });
        }
        new.sort_by_key(|(at_ns, _)| *at_ns);
        for (_, line) in new {
            eprintln!("{line}");
        }
        let now = Instant::now();
        if state.next_line.is_some_and(|t| now < t) {
            return;
        }
        state.next_line = Some(now + Duration::from_secs(1));
        let node = |i: usize| match self.status(i) {
            _ if self.nodes[i].pid().is_none() => "down".to_string(),
            _ if self.nodes[i].frozen() => "frozen".to_string(),
            Some(s) => format!("{}/{} e{}", s.role, s.sync, twinloop::EpochText(s.epoch)),
            None => "?".to_string(),
        };
        let (accepted, dup, stale) = self
            .sink
            .with(|s| (s.delivered.len(), s.duplicates_raw, s.stale_rejected));
        let nodes: Vec<String> = (0..self.nodes.len())
            .map(|i| format!("n{} {}", i + 1, node(i)))
            .collect();
        eprintln!(
            "[{:>8.3}s] frame {:>7} level {:>6.1} mm sp {:>6.1} mm | {} | sink {} delivered, {} dup, {} stale | {}",
            ms(self.clock.now_ns()) / 1000.0,
            self.plant.frames_sent(),
            f64::from(self.plant.level_um()) / 1000.0,
            f64::from(self.plant.setpoint_um()) / 1000.0,
            nodes.join(" | "),
            accepted,
            dup,
            stale,
            state.doing
        );
    }

    /// What the harness knows now, for an error message: statuses and log tails.
    pub fn context(&self) -> String {
        let mut text = format!("frames sent {}\n", self.plant.frames_sent());
        for i in 0..self.nodes.len() {
            let status = self.status(i).map(|s| {
                format!(
                    "role {} sync {} epoch {} frame {} lag {}",
                    s.role,
                    s.sync,
                    twinloop::EpochText(s.epoch),
                    s.frame,
                    s.lag_frames
                )
            });
            text.push_str(&format!(
                "node {}: pid {:?} frozen {} status {}\n--- log tail ---\n{}\n",
                i + 1,
                self.nodes[i].pid(),
                self.nodes[i].frozen(),
                status.unwrap_or_else(|| "none".into()),
                self.nodes[i].log_tail(15)
            ));
        }
        text
    }

    /// A snapshot of the sink's record.
    pub fn sink_log(&self) -> SinkLog {
        lock(&self.sink.log).clone()
    }
}

/// The TOML configuration of node `i` (0 or 1), written from its type: every port on
/// loopback, the sync links through the proxy when there is one.
fn node_toml(config: &RigConfig, i: usize, ports: &[NodePorts; 2], proxy: Option<&Proxy>, sink: SocketAddr) -> String {
    let id = i + 1;
    let me = &ports[i];
    let other = &ports[1 - i];
    let t = &config.timing;
    let links = LINK_NAMES
        .iter()
        .enumerate()
        .map(|(l, name)| {
            let peer = |class: usize| {
                proxy
                    .and_then(|p| p.address_for(l, i, class))
                    .unwrap_or_else(|| local(other.links[l][class]))
            };
            LinkConfig {
                name: (*name).into(),
                bind: local(me.links[l][0]),
                bulk_bind: Some(local(me.links[l][1])),
                peer: peer(0),
                bulk_peer: Some(peer(1)),
                ..LinkConfig::default()
            }
        })
        .collect();
    let (profile, base) = if t.base == "fast" {
        (Profile::Fast, twinloop::Config::fast())
    } else {
        (Profile::Default, twinloop::Config::default())
    };
    let lag = lag_for_transfer(
        base.max_lag_frames,
        base.frames_buffered,
        u64::from(config.ballast_bytes) + (1 << 20),
        config.transfer_chunks_per_ms.unwrap_or(base.transfer_chunks_per_ms),
        base.transfer_chunk_bytes,
        config.params().cycle_us(),
    );
    // A new primary replays the frames since the last commit it heard: the ring holds
    // twice the frames of a takeover's silence (docs/CONFIG.md, `frames_buffered`), which
    // the default's 1 024 do not at 10 kHz with a 100 ms window.
    let replay_frames = (t.window_ms.saturating_add(t.probe_ms))
        .saturating_mul(2000)
        .checked_div(u64::from(config.params().cycle_us()))
        .unwrap_or(0);
    let lag = (lag.0, lag.1.max(replay_frames).min(1 << 20));
    let dir = &config.dir;
    let file = NodeFile {
        node: NodeTable {
            name: format!("node-{id}"),
            state_file: dir.join(format!("node-{id}.epoch")),
            // Distinct and non-zero for the two nodes, reproducible from the run's seed.
            seed: (config.seed.wrapping_mul(2).wrapping_add(id as u64) & 0x3FFF_FFFF_FFFF_FFFF).max(1),
            sync_key_file: Some(dir.join("sync.key")),
            profile,
        },
        runtime: twinloop::Config {
            node_id: id as u8,
            links: LINKS as u8,
            priority: if i == 0 { 1 } else { 0 },
            heartbeat_interval_ms: t.heartbeat_ms,
            detection_window_ms: t.window_ms,
            probe_timeout_ms: t.probe_ms,
            startup_wait_ms: t.startup_ms,
            retry_ms: t.retry_ms,
            switchover_timeout_ms: t.switchover_timeout_ms,
            // Room for the ballast (`bench join --state-mib`), whose node refuses a
            // ballast within 4096 bytes of the limit; the default otherwise.
            state_bytes_max: base.state_bytes_max.max(u64::from(config.ballast_bytes) + (1 << 20)),
            transfer_chunks_per_ms: config.transfer_chunks_per_ms.unwrap_or(base.transfer_chunks_per_ms),
            frames_buffered: lag.1,
            max_lag_frames: lag.0,
            backup_heartbeat_factor: config.backup_heartbeat_factor.unwrap_or(base.backup_heartbeat_factor),
            ..base
        },
        frames: FramesConfig {
            bind: local(me.frames),
            ..FramesConfig::default()
        },
        links,
        outputs: OutputsConfig {
            bind: local(0),
            sinks: vec![sink],
            level_refresh_ms: config.level_refresh_ms,
            release: config.outputs_release,
            acks: config.acks,
            ack_key_file: config.acks.then(|| dir.join(ACK_KEY_FILE)),
            ..OutputsConfig::default()
        },
        console: ConsoleConfig {
            bind: local(me.console),
            key_file: Some(dir.join("console.key")),
            ..ConsoleConfig::default()
        },
        shutdown: ShutdownConfig {
            switchover: true,
            switchover_wait_ms: (t.switchover_timeout_ms * 3).max(3000),
        },
        log: LogConfig {
            level: config.log_level.clone(),
        },
        rt: RtConfig {
            cpu_affinity: if config.pin_cpus { vec![i] } else { Vec::new() },
            sched_fifo_priority: config.rt_priority.min(99),
            mlockall: config.rt_priority > 0,
            best_effort: config.rt_priority > 0,
        },
        app: config.params(),
        ..NodeFile::default()
    };
    // Every value above is representable: a failure is a bug of this function.
    let text = file.to_toml().expect("a node file serializes");
    format!("# Generated by twinloop-sim for node {id}; every key is in docs/CONFIG.md.\n{text}")
}

/// `(max_lag_frames, frames_buffered)` for a state of `state_bytes` sent at
/// `chunks_per_ms` chunks of `chunk_bytes` (issue 20, the 64 MiB join): the frames run
/// while the transfer lasts, twice over, or the base's when larger. A backup installs
/// the state of the frame the primary snapshot at; a transfer of T ms leaves it T / cycle
/// frames behind, and with more than `max_lag_frames` it resyncs at once ("lagging too
/// far behind") and the next transfer ends as far behind: a 64 MiB state at 32 chunks a
/// millisecond (2.1 s, 2 110 frames at 1 kHz) never joined with the default 256 and the
/// ring of 1 024. The ring holds the lag and a default ring's worth above it.
pub fn lag_for_transfer(
    base_lag: u64,
    base_buffered: u64,
    state_bytes: u64,
    chunks_per_ms: u64,
    chunk_bytes: u64,
    cycle_us: u32,
) -> (u64, u64) {
    // Unpaced (0): as fast as the links go; count it as the fast profile's pace.
    let per_ms = chunks_per_ms.max(1).saturating_mul(chunk_bytes.max(1));
    let transfer_ms = state_bytes.div_ceil(per_ms);
    let lag = (transfer_ms.saturating_mul(1000) / u64::from(cycle_us.max(1))).saturating_mul(2);
    if lag <= base_lag {
        return (base_lag, base_buffered);
    }
    let buffered = lag.saturating_add(base_buffered).min(1 << 20);
    (lag.min(buffered - 1), buffered)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_toml_is_a_valid_node_configuration_through_the_proxy() {
        let dir = std::env::temp_dir().join(format!("twinloop-sim-rig-{}", std::process::id()));
        let config = RigConfig {
            ballast_bytes: 1 << 20,
            ..RigConfig::new(dir.clone(), PathBuf::from("twinloop-demo"))
        };
        let mut pool = PortPool::new();
        let ports = [pool.node(), pool.node()];
        let proxy = Proxy::start(
            (0..LINKS)
                .map(|l| LinkEnds {
                    name: LINK_NAMES[l].into(),
                    targets: [
                        [local(ports[0].links[l][0]), local(ports[0].links[l][1])],
                        [local(ports[1].links[l][0]), local(ports[1].links[l][1])],
                    ],
                })
                .collect(),
            1,
        )
        .unwrap();
        let text = node_toml(&config, 1, &ports, Some(&proxy), local(9));
        let file = NodeFile::parse(&text, &dir, &[]).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(file.runtime.node_id, 2);
        assert_eq!(file.runtime.detection_window_ms, Timing::HARNESS.window_ms);
        assert_eq!(file.app.state_ballast_bytes, 1 << 20);
        assert_eq!(file.links.len(), LINKS);
        // Node 2 sends to the relays towards node 1, which forward to node 1's sockets.
        assert_eq!(Some(file.links[0].peer), proxy.address_for(0, 1, 0));
        assert_eq!(file.links[0].bind, local(ports[1].links[0][0]));
        let direct = node_toml(
            &RigConfig {
                rt_priority: 40,
                ..config.clone()
            },
            0,
            &ports,
            None,
            local(9),
        );
        let file = NodeFile::parse(&direct, &dir, &[]).unwrap();
        assert_eq!((file.rt.sched_fifo_priority, file.rt.mlockall), (40, true));
        assert_eq!(
            file.links[1].peer,
            local(ports[1].links[1][0]),
            "without proxy, straight to the peer"
        );
        assert_eq!(file.runtime.priority, 1);
        // A 10 kHz cycle (issue 20, `bench rate`): the nodes get `app.cycle_us` alone, and
        // a ring that holds the frames of a harness takeover's silence (150 ms) twice.
        let fast = node_toml(
            &RigConfig {
                cycle_us: Some(100),
                cycle_ms: 1,
                ..config.clone()
            },
            0,
            &ports,
            None,
            local(9),
        );
        let file = NodeFile::parse(&fast, &dir, &[]).unwrap_or_else(|e| panic!("{e}\n{fast}"));
        assert_eq!((file.app.cycle_us, file.app.cycle_ms), (Some(100), None));
        assert_eq!(file.runtime.frames_buffered, 2 * 150 * 10);
        assert!(file.runtime.max_lag_frames < file.runtime.frames_buffered);
        let file = NodeFile::parse(&direct, &dir, &[]).unwrap();
        assert_eq!((file.app.cycle_ms, file.app.cycle_us), (Some(config.cycle_ms), None));
        assert_eq!(file.runtime.frames_buffered, 1024, "10 ms: the default ring");
    }

    #[test]
    fn timing_profiles_by_name() {
        assert_eq!(Timing::named("fast"), Some(Timing::FAST));
        assert_eq!(Timing::named("default"), Some(Timing::SEED));
        assert_eq!(Timing::named("nope"), None);
        assert_eq!(Timing::HARNESS.takeover_ms(), 150);
        assert!(twinloop::Config::fast().detection_window_ms == Timing::FAST.window_ms);
    }

    /// A 64 MiB state at the harness profile's 32 chunks of 1 KiB a millisecond takes
    /// 2 049 ms: at 1 kHz the backup installs it 2 049 frames behind, past the default
    /// `max_lag_frames` (256) and ring (1 024) — the join that never held. The nodes'
    /// bounds now cover twice that; small states keep the defaults.
    #[test]
    fn lag_for_transfer_covers_a_64_mib_transfer() {
        let (lag, buffered) = lag_for_transfer(256, 1024, (64 << 20) + (1 << 20), 32, 1024, 1000);
        assert!(lag >= 2 * 2049, "lag {lag}");
        assert!(buffered > lag && buffered >= lag + 1024, "ring {buffered}");
        // At 10 ms a frame, a tenth of the frames.
        let (lag10, _) = lag_for_transfer(256, 1024, (64 << 20) + (1 << 20), 32, 1024, 10_000);
        assert!((410..=420).contains(&lag10), "lag {lag10}");
        // 1 MiB (the default join): the defaults.
        assert_eq!(lag_for_transfer(256, 1024, 2 << 20, 32, 1024, 1000), (256, 1024));
        // Whatever the inputs, within the configuration's bounds.
        let (lag, buffered) = lag_for_transfer(256, 1024, u64::MAX, 1, 1, 1000);
        assert!(lag < buffered && buffered <= 1 << 20);
    }
}
