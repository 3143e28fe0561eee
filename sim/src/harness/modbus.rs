//! The main job over Modbus/TCP (`twinloop-sim run --io modbus`) and the gateway's
//! benchmarks (`twinloop-sim bench gateway-latency`, `bench gateway-failover`).
//!
//! ```text
//!  PlantServer (rmodbus, a thread)  ◀──Modbus/TCP──▶  twinloop-gateway (process)
//!    the tank model behind                               │ frames (the input image)
//!    registers and coils                                 ▼
//!                                         twinloop-tag-tank node 1, node 2 (processes)
//!  Listener: a third frame address and a second           │ outputs (tag writes)
//!  sink with its own reference gateway  ◀─────────────────┘──▶ the gateway ──▶ writes
//! ```
//!
//! The device is a Modbus/TCP server written with `rmodbus`'s server side (its storage
//! and frame handling) on a std TCP listener; the plant model sits behind its registers:
//! the tank of `twinloop_demo::plant` (coil 0 runs the pump, input registers 0-1 hold the
//! level in µm) for `run`, or a ramp whose level is new at every poll for the latency
//! benchmark (so that each echoed value names the poll it came from). The device records
//! every write it applies, with its time: what the report counts as reaching the device.
//!
//! What differs from the default `run`: the program is the tag tank (a valve between two
//! levels, an echo of the level), not the demo's tank controller, so there is no in-process
//! reference run; the report counts instead, per out tag, the changes the nodes' outputs
//! carried (as a reference gateway accepts them) against the writes the device applied.
//! The faults are kills of the primary (SIGKILL, then a restart that rejoins), the only
//! fault kind without the sync-link proxy.
#![allow(clippy::disallowed_methods)]

use super::plot::{self, Mark, MarkKind, Sample};
use super::procs::{write_private, Console, NodeProc};
use super::report::{EXIT_HARNESS, EXIT_INTERRUPTED, EXIT_LIVENESS, EXIT_SAFETY};
use super::rig::Timing;
use super::sink::lock;
use super::{ms, pause, round3, HarnessError, Percentiles, RunClock};
use rmodbus::consts::ModbusFunction;
use rmodbus::server::storage::ModbusStorageSmall;
use rmodbus::server::ModbusFrame;
use rmodbus::ModbusProto;
use serde_json::{json, Value as Json};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use twinloop::gateway::{Decision, Gateway};
use twinloop::image::{TagHandle, TagMap, TagMapSpec, TagOutput, Value};
use twinloop::io::config::{ConsoleConfig, FramesConfig, LinkConfig, LogConfig, OutputsConfig};
use twinloop::io::schema::{Role, Sync};
use twinloop::io_protocol;
use twinloop::node_main::config::{NodeFile, NodeTable};
use twinloop::node_main::AnyAppSettings;
use twinloop::testing::{NodePorts, PortPool};
use twinloop_demo::layout::{flag, ActuatorCommand};
use twinloop_demo::plant::{Plant, PlantParams};

/// The device's Modbus unit id.
const UNIT: u8 = 1;
/// Device writes kept (beyond, counted only): a 10 ms run of an hour writes about
/// 200 000 echoes.
const WRITES_MAX: usize = 1 << 20;
/// Accepted outputs kept by the listener (beyond, counted only).
const ACCEPTED_MAX: usize = 1 << 20;
/// Latency samples kept by the ramp device.
const LATENCIES_MAX: usize = 1 << 20;
/// A connection's unread request bytes beyond which the device drops it.
const REQUEST_BUFFER_MAX: usize = 4096;
/// How far past the last matched change a device write is looked for among the accepted
/// changes: the gateway collapses only the values that came while one write was in
/// flight, a handful; the bound keeps the account linear on a run of an hour.
const MATCH_WINDOW: usize = 4096;
/// Connections the device serves at once (the gateway needs one); more are closed.
const CONNECTIONS_MAX: usize = 8;
/// The ramp's level repeats after this many polls (its echo in mm fits a u16).
const RAMP_PERIOD_POLLS: u64 = 60_000;
/// The tag tank's band: it opens the valve below the low level, closes it above the high.
const LOW_UM: u32 = 950_000;
const HIGH_UM: u32 = 1_050_000;

/// What sits behind the device's registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    /// The demo's tank: coil 0 runs the pump at full speed; the level falls with the demand.
    Tank,
    /// A level that is new at every poll of input register 0 (its mm count is the poll's
    /// number modulo 60 000), for measuring poll → write.
    Ramp,
}

enum Model {
    Tank { plant: Plant, last_ms: u64 },
    Ramp { polls: u64, read_at_ns: Vec<u64> },
}

/// One write the device applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceWrite {
    /// When (ns on the run's clock).
    pub at_ns: u64,
    /// The function code (5, 6, 15 or 16).
    pub fc: u8,
    /// The first address.
    pub address: u16,
    /// The values written (a coil as 0 or 1).
    pub values: Vec<u16>,
}

struct DeviceState {
    storage: Box<ModbusStorageSmall>,
    model: Model,
    writes: Vec<DeviceWrite>,
    writes_total: u64,
    requests: u64,
    malformed: u64,
    connections: u64,
    samples: Vec<Sample>,
    next_sample_ms: u64,
    /// Ramp: poll answered → the echo of that poll's value written, ns.
    latencies_ns: Vec<u64>,
}

impl DeviceState {
    fn new(kind: ModelKind, plant: &PlantParams) -> Self {
        let model = match kind {
            ModelKind::Tank => Model::Tank {
                plant: Plant::new(plant.clone()),
                last_ms: 0,
            },
            ModelKind::Ramp => Model::Ramp {
                polls: 0,
                read_at_ns: vec![0; RAMP_PERIOD_POLLS as usize],
            },
        };
        DeviceState {
            storage: Box::default(),
            model,
            writes: Vec::new(),
            writes_total: 0,
            requests: 0,
            malformed: 0,
            connections: 0,
            samples: Vec::new(),
            next_sample_ms: 0,
            latencies_ns: Vec::new(),
        }
    }

    /// Lets the plant's time pass up to `now_ns` and shows its values in the registers.
    fn advance(&mut self, now_ns: u64) {
        let Model::Tank { plant, last_ms } = &mut self.model else {
            return;
        };
        let now_ms = now_ns / 1_000_000;
        // At most a second per request: a stalled harness does not empty the tank at once.
        plant.advance(now_ms.saturating_sub(*last_ms).min(1000));
        *last_ms = now_ms;
        let level = plant.level_um();
        let inputs = plant.inputs();
        self.storage.inputs[0] = (level >> 16) as u16;
        self.storage.inputs[1] = level as u16;
        self.storage.discretes[0] = inputs.digital & twinloop_demo::layout::di::LEVEL_HIGH_HIGH != 0;
        if now_ms >= self.next_sample_ms {
            self.next_sample_ms = now_ms + 50;
            self.samples.push(Sample {
                t_ms: now_ms as f64,
                pv: f64::from(level) / 1e6,
                sp: f64::from(LOW_UM / 2 + HIGH_UM / 2) / 1e6,
            });
        }
    }

    /// A poll of input register 0 on the ramp: the next level, and when it was read.
    fn poll(&mut self, now_ns: u64) {
        let Model::Ramp { polls, read_at_ns } = &mut self.model else {
            return;
        };
        *polls += 1;
        let mm = *polls % RAMP_PERIOD_POLLS;
        let level = (mm * 1000 + 500) as u32;
        self.storage.inputs[0] = (level >> 16) as u16;
        self.storage.inputs[1] = level as u16;
        // The other registers change too, as a real device's would.
        for r in 2..128 {
            self.storage.inputs[r] = (*polls as u16).wrapping_add(r as u16);
        }
        read_at_ns[mm as usize] = now_ns;
    }

    /// After a write was applied to the storage: records it, and lets the plant follow.
    fn written(&mut self, now_ns: u64, func: ModbusFunction, reg: u16, count: u16) {
        let (fc, coils) = match func {
            ModbusFunction::SetCoil => (5, true),
            ModbusFunction::SetCoilsBulk => (15, true),
            ModbusFunction::SetHolding => (6, false),
            ModbusFunction::SetHoldingsBulk => (16, false),
            _ => return,
        };
        let range = usize::from(reg)..usize::from(reg).saturating_add(usize::from(count));
        let values: Vec<u16> = if coils {
            self.storage
                .coils
                .get(range)
                .unwrap_or(&[])
                .iter()
                .map(|&b| u16::from(b))
                .collect()
        } else {
            self.storage.holdings.get(range).unwrap_or(&[]).to_vec()
        };
        match &mut self.model {
            Model::Tank { plant, .. } if coils => plant.apply(&ActuatorCommand {
                flags: if self.storage.coils[0] { flag::PUMP_RUN } else { 0 },
                pump_speed_permille: 1000,
                ..ActuatorCommand::default()
            }),
            Model::Ramp { read_at_ns, .. } if !coils && reg <= 1 && usize::from(reg) + usize::from(count) > 1 => {
                let echo = usize::from(self.storage.holdings[1]);
                if let Some(&read) = read_at_ns.get(echo) {
                    if read != 0 && self.latencies_ns.len() < LATENCIES_MAX {
                        self.latencies_ns.push(now_ns.saturating_sub(read));
                    }
                }
            }
            _ => {}
        }
        self.writes_total += 1;
        if self.writes.len() < WRITES_MAX {
            self.writes.push(DeviceWrite {
                at_ns: now_ns,
                fc,
                address: reg,
                values,
            });
        }
    }

    /// Handles one Modbus/TCP request (a whole ADU); the answer, or None to close.
    fn handle(&mut self, now_ns: u64, request: &[u8]) -> Option<Vec<u8>> {
        self.requests += 1;
        self.advance(now_ns);
        let mut response = Vec::new();
        let mut frame = ModbusFrame::new(UNIT, request, ModbusProto::TcpUdp, &mut response);
        if frame.parse().is_err() {
            self.malformed += 1;
            return None;
        }
        if frame.processing_required {
            let (func, reg, count) = (frame.func, frame.reg, frame.count);
            let result = if frame.readonly {
                if func == ModbusFunction::GetInputs && reg == 0 {
                    self.poll(now_ns);
                }
                frame.process_read(&*self.storage)
            } else {
                frame.process_write(&mut *self.storage)
            };
            if result.is_err() {
                self.malformed += 1;
                return None;
            }
            if !frame.readonly && frame.error.is_none() {
                self.written(now_ns, func, reg, count);
            }
        }
        if !frame.response_required {
            return Some(Vec::new());
        }
        frame.finalize_response().ok()?;
        Some(response)
    }
}

/// The device: a Modbus/TCP server on a loopback port, a thread per connection.
pub struct PlantServer {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<Mutex<DeviceState>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl PlantServer {
    /// Binds an ephemeral loopback port and serves it until dropped.
    pub fn start(kind: ModelKind, plant: &PlantParams, clock: RunClock) -> Result<PlantServer, HarnessError> {
        let listener =
            TcpListener::bind("127.0.0.1:0").map_err(|e| HarnessError::io("bind the Modbus/TCP device", e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| HarnessError::io("the device's address", e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| HarnessError::io("the device's listener", e))?;
        let state = Arc::new(Mutex::new(DeviceState::new(kind, plant)));
        let stop = Arc::new(AtomicBool::new(false));
        let (state2, stop2) = (state.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("modbus-device".into())
            .spawn(move || {
                let mut connections: Vec<JoinHandle<()>> = Vec::new();
                while !stop2.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            lock(&state2).connections += 1;
                            let (state, stop) = (state2.clone(), stop2.clone());
                            connections.retain(|c| !c.is_finished());
                            if connections.len() >= CONNECTIONS_MAX {
                                continue;
                            }
                            if let Ok(c) = std::thread::Builder::new()
                                .name("modbus-connection".into())
                                .spawn(move || serve(stream, &state, &stop, clock))
                            {
                                connections.push(c);
                            }
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
                for c in connections {
                    let _ = c.join();
                }
            })
            .map_err(|e| HarnessError::io("start the device thread", e))?;
        Ok(PlantServer {
            addr,
            state,
            stop,
            thread: Some(thread),
        })
    }

    /// Runs `f` on the device's state.
    fn with<T>(&self, f: impl FnOnce(&DeviceState) -> T) -> T {
        f(&lock(&self.state))
    }

    /// The writes applied so far.
    pub fn writes(&self) -> Vec<DeviceWrite> {
        self.with(|s| s.writes.clone())
    }
}

impl Drop for PlantServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Serves one connection: frames the stream by the MBAP length, answers each request.
fn serve(mut stream: TcpStream, state: &Mutex<DeviceState>, stop: &AtomicBool, clock: RunClock) {
    let _ = stream.set_nodelay(true);
    if stream.set_read_timeout(Some(Duration::from_millis(50))).is_err() {
        return;
    }
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = [0u8; 1024];
    while !stop.load(Ordering::SeqCst) {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => pending.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(_) => return,
        }
        if pending.len() > REQUEST_BUFFER_MAX {
            return;
        }
        while pending.len() >= 7 {
            let length = usize::from(u16::from_be_bytes([pending[4], pending[5]]));
            if !(2..=254).contains(&length) {
                lock(state).malformed += 1;
                return;
            }
            if pending.len() < 6 + length {
                break;
            }
            let request: Vec<u8> = pending.drain(..6 + length).collect();
            let answer = lock(state).handle(clock.now_ns(), &request);
            match answer {
                Some(a) if a.is_empty() => {}
                Some(a) => {
                    if stream.write_all(&a).is_err() {
                        return;
                    }
                }
                None => return,
            }
        }
    }
}

/// One output the listener's reference gateway accepted, decoded as a tag write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    /// When it arrived (ns on the run's clock).
    pub at_ns: u64,
    /// The epoch of the primary that sent it.
    pub epoch: u64,
    /// The node that sent it.
    pub node: u8,
    /// Its frame.
    pub frame: u64,
    /// The tag's position in the map.
    pub tag: usize,
    /// The raw value (a bool as 0 or 1).
    pub value: u32,
}

/// What the listener saw.
#[derive(Debug, Default)]
pub struct Seen {
    /// Frames received (as a third node).
    pub frames: u64,
    /// Frames whose device quality was not ok.
    pub frames_bad: u64,
    /// The last frame number.
    pub last_frame: u64,
    /// The accepted tag writes, in order.
    pub accepted: Vec<Accepted>,
    /// Accepted heartbeats.
    pub heartbeats: u64,
    /// Output datagrams offered, and refused by the reference gateway.
    pub offered: u64,
    /// Refused by the reference gateway (duplicates of the other node's, stale epochs …).
    pub refused: u64,
    /// Datagrams that did not decode, or accepted outputs that are not writes of the map.
    pub malformed: u64,
    /// The epoch of the last accepted output.
    pub last_epoch: u64,
    /// Per epoch, when its first output was accepted (ns): a few epochs a run.
    pub epoch_first_ns: std::collections::BTreeMap<u64, u64>,
}

/// The listener: a third frame address and a second sink, on a thread.
pub struct Listener {
    /// Its frame address (the gateway's third node).
    pub frames_addr: SocketAddr,
    /// Its output address (the nodes' second sink).
    pub outputs_addr: SocketAddr,
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Listener {
    fn start(map: TagMap, lease: Duration, clock: RunClock) -> Result<Listener, HarnessError> {
        let bind = |what| {
            let s =
                UdpSocket::bind("127.0.0.1:0").map_err(|e| HarnessError::io(format!("bind the {what} listener"), e))?;
            s.set_read_timeout(Some(Duration::from_millis(1)))
                .map_err(|e| HarnessError::io("listener timeout", e))?;
            Ok::<_, HarnessError>(s)
        };
        let (frames, outputs) = (bind("frame")?, bind("output")?);
        // Outputs are stamped with the kernel's arrival time, as the default run's sink
        // does: a failover figure must be the nodes', not this thread's wake-up.
        nix::sys::socket::setsockopt(&outputs, nix::sys::socket::sockopt::ReceiveTimestampns, &true)
            .map_err(|e| HarnessError::io("ask for the listener's arrival times", e.into()))?;
        let frames_addr = frames
            .local_addr()
            .map_err(|e| HarnessError::io("listener address", e))?;
        let outputs_addr = outputs
            .local_addr()
            .map_err(|e| HarnessError::io("listener address", e))?;
        let mut gateway = Gateway::new(1024, Some(lease)).map_err(|e| HarnessError::Setup(e.to_string()))?;
        let seen = Arc::new(Mutex::new(Seen::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen2, stop2) = (seen.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("modbus-listener".into())
            .spawn(move || {
                let mut buf = [0u8; io_protocol::DATAGRAM_MAX];
                let mut control = nix::cmsg_space!(nix::sys::time::TimeSpec);
                while !stop2.load(Ordering::SeqCst) {
                    // Outputs first: their arrival time is what the failover figures use.
                    for _ in 0..256 {
                        let Some((len, now)) = super::sink::recv_stamped(&outputs, &mut buf, &mut control, &clock)
                        else {
                            break;
                        };
                        let mut seen = lock(&seen2);
                        seen.offered += 1;
                        let Ok(output) = io_protocol::decode_output(&buf[..len]) else {
                            seen.malformed += 1;
                            continue;
                        };
                        if gateway.offer_output(twinloop::Instant::from_nanos(now), &output.to_output())
                            != Decision::Accepted
                        {
                            seen.refused += 1;
                            continue;
                        }
                        seen.last_epoch = output.epoch;
                        seen.epoch_first_ns.entry(output.epoch).or_insert(now);
                        match map.decode_output(output.payload) {
                            Ok(TagOutput::Heartbeat) => seen.heartbeats += 1,
                            Ok(TagOutput::Write(tag, value)) => {
                                if seen.accepted.len() < ACCEPTED_MAX {
                                    seen.accepted.push(Accepted {
                                        at_ns: now,
                                        epoch: output.epoch,
                                        node: output.node_id,
                                        frame: output.frame,
                                        tag: tag.index(),
                                        value: raw(value),
                                    });
                                }
                            }
                            Err(_) => seen.malformed += 1,
                        }
                    }
                    for _ in 0..256 {
                        let Ok(len) = frames.recv(&mut buf) else { break };
                        let mut seen = lock(&seen2);
                        if let Ok(frame) = io_protocol::decode_frame(&buf[..len]) {
                            seen.frames += 1;
                            seen.last_frame = frame.number;
                            let image = map.image(frame.payload);
                            if image.quality(0).ok() != Some(twinloop::image::Quality::Ok) {
                                seen.frames_bad += 1;
                            }
                        }
                    }
                }
            })
            .map_err(|e| HarnessError::io("start the listener", e))?;
        Ok(Listener {
            frames_addr,
            outputs_addr,
            seen,
            stop,
            thread: Some(thread),
        })
    }

    /// Runs `f` on what was seen so far.
    pub fn with<T>(&self, f: impl FnOnce(&Seen) -> T) -> T {
        f(&lock(&self.seen))
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn raw(value: Value) -> u32 {
    match value {
        Value::Bool(b) => u32::from(b),
        Value::U16(v) => u32::from(v),
        Value::I16(v) => u32::from(v as u16),
        Value::U32(v) => v,
        Value::I32(v) => v as u32,
        Value::F32(v) => v.to_bits(),
    }
}

/// A child process killed (and reaped) on drop: the gateway.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The path of a `twinloop-gateway` crate binary of the same build profile, building the
/// crate's binaries if absent or older than the running executable (under cargo).
pub fn locate_gateway_binary(name: &str) -> Result<PathBuf, HarnessError> {
    let exe = std::env::current_exe().map_err(|e| HarnessError::io("find the running executable", e))?;
    let dir = exe.parent().unwrap_or(Path::new("."));
    let profile_dir = if dir.ends_with("deps") {
        dir.parent().unwrap_or(dir)
    } else {
        dir
    };
    let candidate = profile_dir.join(name);
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let stale = match (modified(&candidate), modified(&exe)) {
        (Some(bin), Some(exe)) => bin < exe,
        _ => true,
    };
    let Ok(cargo) = std::env::var("CARGO") else {
        return if candidate.is_file() {
            Ok(candidate)
        } else {
            Err(HarnessError::Setup(format!(
                "{} not found; build it with `cargo build --release -p twinloop-gateway`",
                candidate.display()
            )))
        };
    };
    if candidate.is_file() && !stale {
        return Ok(candidate);
    }
    let mut build = Command::new(cargo);
    build.args(["build", "--quiet", "-p", "twinloop-gateway", "--bins"]);
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        build.arg("--release");
    }
    if let Some(target) = profile_dir.parent() {
        build.arg("--target-dir").arg(target);
    }
    let status = build
        .status()
        .map_err(|e| HarnessError::io("run cargo to build twinloop-gateway", e))?;
    if !status.success() || !candidate.is_file() {
        return Err(HarnessError::Setup(format!("building {name} failed ({status})")));
    }
    Ok(candidate)
}

/// One Modbus run's settings.
#[derive(Debug, Clone)]
pub struct ModbusConfig {
    /// Configurations and logs go here.
    pub dir: PathBuf,
    /// The gateway's cycle, ms.
    pub cycle_ms: u32,
    /// The nodes' timing.
    pub timing: Timing,
    /// Seeds the nodes' generators.
    pub seed: u64,
    /// Input registers polled each cycle (one block from 0; at least 2, the level).
    pub registers: u16,
    /// The device's model.
    pub model: ModelKind,
    /// The tank model's parameters.
    pub plant: PlantParams,
    /// The nodes' and the gateway's log level.
    pub log_level: String,
    /// Progress lines on stderr.
    pub progress: bool,
}

impl ModbusConfig {
    /// Defaults: the tank, a 10 ms cycle, the harness timing, 4 registers.
    pub fn new(dir: PathBuf) -> Self {
        ModbusConfig {
            dir,
            cycle_ms: 10,
            timing: Timing::HARNESS,
            seed: 1,
            registers: 4,
            model: ModelKind::Tank,
            plant: PlantParams {
                // A pump and a demand that cross the tag tank's 0.1 m band in about two
                // seconds each way, so a run of a minute has many valve changes.
                level_initial_um: 900_000,
                pump_flow_max_ml_per_s: 10_000,
                demand_ml_per_s: 5_000,
                ..PlantParams::default()
            },
            log_level: "info".into(),
            progress: true,
        }
    }

    /// The gateway's file (docs/GATEWAY.md): the tank's tags, and for more than 4
    /// registers one `u16` in tag for each register past the level.
    fn gateway_toml(&self, nodes: &[SocketAddr], outputs: SocketAddr, device: SocketAddr) -> String {
        let timeout_ms = self.cycle_ms.clamp(1, 8);
        let lease_ms = (self.timing.window_ms * 10).max(5000);
        let nodes: Vec<String> = nodes.iter().map(|a| format!("\"{a}\"")).collect();
        let mut text = format!(
            "[gateway]\ncycle_ms = {}\nnodes = [{}]\noutputs_bind = \"{outputs}\"\nwindow_frames = 1024\nlease_ms = {lease_ms}\noutputs_silence_ms = 5000\nreconnect_min_ms = 100\nreconnect_max_ms = 1000\ndevice_stall_ms = 2000\nlog_level = \"{}\"\n\n[[device]]\nname = \"tank\"\naddress = \"{device}\"\nunit_id = {UNIT}\ntimeout_ms = {timeout_ms}\ninput_registers = [{{ start = 0, count = {} }}]\n",
            self.cycle_ms,
            nodes.join(", "),
            self.log_level,
            self.registers.max(2),
        );
        text.push_str(&self.tags_toml());
        text
    }

    fn tags_toml(&self) -> String {
        let mut text = String::from(
            "\n[[tag]]\nname = \"level_um\"\ndevice = \"tank\"\ntable = \"input_register\"\naddress = 0\ntype = \"u32\"\ndirection = \"in\"\n\n[[tag]]\nname = \"inflow\"\ndevice = \"tank\"\ntable = \"coil\"\naddress = 0\ntype = \"bool\"\ndirection = \"out\"\nsafe = 0\n\n[[tag]]\nname = \"level_echo_mm\"\ndevice = \"tank\"\ntable = \"holding_register\"\naddress = 1\ntype = \"u16\"\ndirection = \"out\"\n",
        );
        for r in 2..self.registers {
            text.push_str(&format!(
                "\n[[tag]]\nname = \"r{r}\"\ndevice = \"tank\"\ntable = \"input_register\"\naddress = {r}\ntype = \"u16\"\ndirection = \"in\"\n"
            ));
        }
        text
    }
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Node `i`'s file: the tag tank with the gateway's map in its `[app]`.
fn node_toml(
    config: &ModbusConfig,
    i: usize,
    ports: &[NodePorts; 2],
    sinks: &[SocketAddr],
    tags: &toml::Table,
) -> String {
    let (me, peer) = (&ports[i], &ports[1 - i]);
    let id = i + 1;
    let t = &config.timing;
    let link = |l: usize| LinkConfig {
        name: ["sync", "plant"][l].into(),
        bind: local(me.links[l][0]),
        bulk_bind: Some(local(me.links[l][1])),
        peer: local(peer.links[l][0]),
        bulk_peer: Some(local(peer.links[l][1])),
        ..LinkConfig::default()
    };
    let base = if t.base == "fast" {
        twinloop::Config::fast()
    } else {
        twinloop::Config::default()
    };
    let mut app = tags.clone();
    app.insert("heartbeat_frames".into(), 10.into());
    app.insert("low_um".into(), i64::from(LOW_UM).into());
    app.insert("high_um".into(), i64::from(HIGH_UM).into());
    let file = NodeFile::<AnyAppSettings> {
        node: NodeTable {
            name: format!("tag-tank-{id}"),
            state_file: config.dir.join(format!("node-{id}.epoch")),
            seed: (config.seed.wrapping_mul(2).wrapping_add(id as u64) & 0x3FFF_FFFF_FFFF_FFFF).max(1),
            ..NodeTable::default()
        },
        runtime: twinloop::Config {
            node_id: id as u8,
            links: 2,
            priority: if i == 0 { 1 } else { 0 },
            heartbeat_interval_ms: t.heartbeat_ms,
            detection_window_ms: t.window_ms,
            probe_timeout_ms: t.probe_ms,
            startup_wait_ms: t.startup_ms,
            retry_ms: t.retry_ms,
            switchover_timeout_ms: t.switchover_timeout_ms,
            ..base
        },
        frames: FramesConfig {
            bind: local(me.frames),
            ..FramesConfig::default()
        },
        links: vec![link(0), link(1)],
        outputs: OutputsConfig {
            bind: local(0),
            sinks: sinks.to_vec(),
            ..OutputsConfig::default()
        },
        console: ConsoleConfig {
            bind: local(me.console),
            key_file: Some(config.dir.join("console.key")),
            ..ConsoleConfig::default()
        },
        log: LogConfig {
            level: config.log_level.clone(),
        },
        app: AnyAppSettings(app),
        ..NodeFile::default()
    };
    let text = file.to_toml().expect("a node file serializes");
    format!("# Generated by twinloop-sim (run --io modbus) for node {id}.\n{text}")
}

/// A primary with an in-sync backup, and the listener following its epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Healthy {
    /// Index (0 or 1) of the primary.
    pub primary: usize,
    /// Its epoch.
    pub epoch: u64,
}

/// One kill of the primary and what followed.
#[derive(Debug, Clone, Default)]
pub struct Kill {
    /// The killed node (1 or 2).
    pub node: u8,
    /// Its epoch.
    pub epoch_before: u64,
    /// When it was killed (ns).
    pub kill_ns: u64,
    /// The new primary's epoch, when one emitted.
    pub epoch_after: Option<u64>,
    /// The first accepted output of the new epoch at the listener (ns).
    pub first_output_ns: Option<u64>,
    /// The first device write carrying a value of the new epoch (ns; from the analysis).
    pub first_write_ns: Option<u64>,
    /// When the restarted node was back in sync (ns).
    pub recovered_ns: Option<u64>,
    /// What went wrong.
    pub error: Option<String>,
}

/// The running set-up: device, gateway, two tag-tank nodes, listener.
pub struct ModbusRig {
    /// The settings.
    pub config: ModbusConfig,
    /// The run's clock.
    pub clock: RunClock,
    /// The device.
    pub server: PlantServer,
    /// The listener.
    pub listener: Listener,
    /// The nodes (index 0 is node 1).
    pub nodes: [NodeProc; 2],
    consoles: [Console; 2],
    gateway_binary: PathBuf,
    gateway_config: PathBuf,
    gateway: Option<Killed>,
    /// The tag map.
    pub map: TagMap,
    /// `inflow` and `level_echo_mm`.
    pub handles: [TagHandle; 2],
}

impl ModbusRig {
    /// Writes the files and starts the device and the listener (no node, no gateway).
    pub fn prepare(config: ModbusConfig) -> Result<ModbusRig, HarnessError> {
        std::fs::create_dir_all(&config.dir)
            .map_err(|e| HarnessError::io(format!("create {}", config.dir.display()), e))?;
        let tank = locate_gateway_binary("twinloop-tag-tank")?;
        let gateway_binary = locate_gateway_binary("twinloop-gateway")?;
        let clock = RunClock::start();
        let key = format!("twinloop-sim-console-{:016x}", config.seed ^ 0x5EED);
        write_private(&config.dir.join("console.key"), &format!("{key}\n"))?;
        for id in 1..=2 {
            let _ = std::fs::remove_file(config.dir.join(format!("node-{id}.epoch")));
            let _ = std::fs::remove_file(config.dir.join(format!("node-{id}.log")));
        }
        let tags: toml::Table =
            toml::from_str(&config.tags_toml()).map_err(|e| HarnessError::Setup(format!("the tag map: {e}")))?;
        let mut map_tables = toml::Table::new();
        map_tables.insert(
            "device".into(),
            toml::Value::Array(vec![toml::Value::Table(
                toml::from_str(&format!("name = \"tank\"\naddress = \"127.0.0.1:1\"\nunit_id = {UNIT}\ninput_registers = [{{ start = 0, count = {} }}]", config.registers.max(2)))
                    .map_err(|e| HarnessError::Setup(format!("the device table: {e}")))?,
            )]),
        );
        map_tables.insert("tag".into(), tags["tag"].clone());
        let spec: TagMapSpec = map_tables
            .clone()
            .try_into()
            .map_err(|e| HarnessError::Setup(format!("the tag map: {e}")))?;
        let map = TagMap::new(&spec).map_err(|e| HarnessError::Setup(format!("the tag map: {e}")))?;
        let handle = |name| map.handle(name).map_err(|e| HarnessError::Setup(e.to_string()));
        let handles = [handle("inflow")?, handle("level_echo_mm")?];

        let server = PlantServer::start(config.model, &config.plant, clock)?;
        let lease = Duration::from_millis((config.timing.window_ms * 10).max(5000));
        let listener = Listener::start(map.clone(), lease, clock)?;
        let mut pool = PortPool::new();
        let ports = [pool.node(), pool.node()];
        let gateway_outputs = local(pool.take());
        let gateway_text = config.gateway_toml(
            &[local(ports[0].frames), local(ports[1].frames), listener.frames_addr],
            gateway_outputs,
            server.addr,
        );
        let gateway_config = config.dir.join("gateway.toml");
        std::fs::write(&gateway_config, gateway_text)
            .map_err(|e| HarnessError::io(format!("write {}", gateway_config.display()), e))?;
        let sinks = [gateway_outputs, listener.outputs_addr];
        let mut nodes = Vec::new();
        for i in 0..2 {
            let path = config.dir.join(format!("node-{}.toml", i + 1));
            std::fs::write(&path, node_toml(&config, i, &ports, &sinks, &map_tables))
                .map_err(|e| HarnessError::io(format!("write {}", path.display()), e))?;
            nodes.push(NodeProc::new(
                i as u8 + 1,
                tank.clone(),
                path,
                config.dir.join(format!("node-{}.log", i + 1)),
            ));
        }
        let console_timeout = Duration::from_millis(500);
        let consoles = [
            Console::new(local(ports[0].console), &key, console_timeout),
            Console::new(local(ports[1].console), &key, console_timeout),
        ];
        drop(pool);
        let [n1, n2]: [NodeProc; 2] = nodes.try_into().map_err(|_| HarnessError::Setup("two nodes".into()))?;
        Ok(ModbusRig {
            config,
            clock,
            server,
            listener,
            nodes: [n1, n2],
            consoles,
            gateway_binary,
            gateway_config,
            gateway: None,
            map,
            handles,
        })
    }

    fn say(&self, line: &str) {
        if self.config.progress {
            eprintln!("[{:8.3} s] {line}", self.clock.now_ns() as f64 / 1e9);
        }
    }

    fn wait(
        &mut self,
        limit: Duration,
        what: &str,
        mut done: impl FnMut(&mut Self) -> bool,
    ) -> Result<(), HarnessError> {
        let deadline = Instant::now() + limit;
        loop {
            if done(self) {
                return Ok(());
            }
            if super::interrupted() {
                return Err(HarnessError::Interrupted);
            }
            if Instant::now() >= deadline {
                let tails: Vec<String> = self.nodes.iter().map(|n| n.log_tail(8)).collect();
                return Err(HarnessError::Stuck(format!(
                    "{what} (waited {limit:?})\nnode 1:\n{}\nnode 2:\n{}",
                    tails[0], tails[1]
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The pair's health now: a primary paired with an in-sync backup in its epoch, whose
    /// outputs the listener accepts.
    pub fn health(&self) -> Option<Healthy> {
        let a = self.consoles[0].status().ok()?;
        let b = self.consoles[1].status().ok()?;
        let (primary, p, q) = if a.role == Role::Primary {
            (0, &a, &b)
        } else {
            (1, &b, &a)
        };
        let listener_follows = self.listener.with(|s| s.last_epoch) == p.epoch;
        (p.role == Role::Primary
            && p.sync == Sync::Paired
            && q.is_in_sync_backup()
            && p.epoch == q.epoch
            && listener_follows)
            .then_some(Healthy {
                primary,
                epoch: p.epoch,
            })
    }

    /// Starts node 1 until it leads, node 2 until it follows, then the gateway (the frames),
    /// until the pair is healthy.
    pub fn start(&mut self) -> Result<Healthy, HarnessError> {
        self.nodes[0].spawn()?;
        self.wait(Duration::from_secs(20), "node 1 to become primary", |rig| {
            rig.consoles[0].status().is_ok_and(|s| s.role == Role::Primary)
        })?;
        self.nodes[1].spawn()?;
        self.wait(Duration::from_secs(20), "node 2 to become backup", |rig| {
            rig.consoles[1].status().is_ok_and(|s| s.role == Role::Backup)
        })?;
        let log = std::fs::File::create(self.config.dir.join("gateway.log"))
            .map_err(|e| HarnessError::io("create gateway.log", e))?;
        let status = std::fs::File::create(self.config.dir.join("gateway.jsonl"))
            .map_err(|e| HarnessError::io("create gateway.jsonl", e))?;
        let child = Command::new(&self.gateway_binary)
            .arg("--config")
            .arg(&self.gateway_config)
            .arg("--json")
            .stdin(Stdio::null())
            .stdout(status)
            .stderr(log)
            .spawn()
            .map_err(|e| HarnessError::io(format!("start {}", self.gateway_binary.display()), e))?;
        self.gateway = Some(Killed(child));
        self.say("gateway started");
        self.await_healthy(Duration::from_secs(30))
    }

    /// Waits until [`ModbusRig::health`] holds.
    pub fn await_healthy(&mut self, limit: Duration) -> Result<Healthy, HarnessError> {
        let mut found = None;
        self.wait(limit, "a primary with an in-sync backup", |rig| {
            found = rig.health();
            found.is_some()
        })?;
        found.ok_or_else(|| HarnessError::Stuck("health vanished".into()))
    }

    /// SIGKILLs the primary, waits for the new primary's first output, restarts the killed
    /// node and waits until it is back in sync.
    pub fn kill_primary(&mut self) -> Result<Kill, HarnessError> {
        let healthy = self.await_healthy(Duration::from_secs(30))?;
        let mut kill = Kill {
            node: healthy.primary as u8 + 1,
            epoch_before: healthy.epoch,
            kill_ns: self.clock.now_ns(),
            ..Kill::default()
        };
        self.nodes[healthy.primary].kill();
        self.say(&format!("killed node {} (the primary)", kill.node));
        let mut first = None;
        let waited = self.wait(Duration::from_secs(10), "an output of a new epoch", |rig| {
            first = rig.listener.with(|s| {
                s.epoch_first_ns
                    .range(kill.epoch_before + 1..)
                    .next()
                    .map(|(&epoch, &at)| (epoch, at))
            });
            first.is_some()
        });
        if let Err(e) = waited {
            if matches!(e, HarnessError::Interrupted) {
                return Err(e);
            }
            kill.error = Some(e.to_string());
        }
        if let Some((epoch, at)) = first {
            kill.epoch_after = Some(epoch);
            kill.first_output_ns = Some(at);
        }
        self.nodes[healthy.primary].spawn()?;
        match self.await_healthy(Duration::from_secs(30)) {
            Ok(_) => kill.recovered_ns = Some(self.clock.now_ns()),
            Err(HarnessError::Interrupted) => return Err(HarnessError::Interrupted),
            Err(e) => kill.error = Some(e.to_string()),
        }
        self.say(&format!(
            "node {} rejoined; the new primary's first output {} ms after the kill",
            kill.node,
            kill.first_output_ns
                .map_or("-".into(), |n| format!("{:.1}", ms(n.saturating_sub(kill.kill_ns))))
        ));
        Ok(kill)
    }

    /// The gateway's last `--json` status line.
    pub fn gateway_status(&self) -> Json {
        std::fs::read_to_string(self.config.dir.join("gateway.jsonl"))
            .unwrap_or_default()
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str(l).ok())
            .unwrap_or(Json::Null)
    }

    /// Ends the run's control: stops both nodes (SIGKILL), so that nothing changes any
    /// more, and waits until the device applied the last change the listener accepted
    /// (or `limit`). The gateway writes nothing more until its lost-control alarm
    /// (`outputs_silence_ms`, 5 s here): the account that follows is of a settled device.
    pub fn stop_and_drain(&mut self, limit: Duration) {
        for node in &mut self.nodes {
            node.kill();
        }
        let _ = pause(Duration::from_millis(300));
        let [inflow, echo] = self.handles;
        let _ = self.wait(limit, "the last writes at the device", |rig| {
            let last = |tag: TagHandle| {
                rig.listener
                    .with(|s| s.accepted.iter().rev().find(|o| o.tag == tag.index()).map(|o| o.value))
            };
            let (coil, holding) = rig
                .server
                .with(|s| (u32::from(s.storage.coils[0]), u32::from(s.storage.holdings[1])));
            last(inflow).is_none_or(|v| v == coil) && last(echo).is_none_or(|v| v == holding)
        });
    }
}

/// One out tag's account: the changes accepted against the device's writes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagAccount {
    /// Changes the reference gateway accepted.
    pub accepted: u64,
    /// Writes the device applied.
    pub written: u64,
    /// Accepted changes the device never saw (counted for the valve: every change matters).
    pub lost: u64,
    /// Device writes beyond one per accepted change.
    pub duplicated: u64,
    /// Accepted values the gateway skipped because a newer one came while a write was in
    /// flight (the echo: only its latest value matters).
    pub collapsed: u64,
    /// Device writes of a value older than one written before.
    pub out_of_order: u64,
    /// The device's final value is the last accepted one.
    pub final_ok: bool,
}

impl TagAccount {
    fn to_json(&self) -> Json {
        json!({
            "accepted": self.accepted, "written": self.written, "lost": self.lost,
            "duplicated": self.duplicated, "collapsed": self.collapsed,
            "out_of_order": self.out_of_order, "final_ok": self.final_ok,
        })
    }
}

/// Matches the device's writes of one tag to the accepted changes, in order: each write
/// is the next accepted change with its value (skipped changes in between are `collapsed`)
/// or, if none follows, a repeat of an earlier one (`duplicated` when it repeats the last
/// matched change, `out_of_order` otherwise). Returns the account and, per write, the
/// index of the accepted change it carried.
pub fn account(accepted: &[(u64, u32)], written: &[u32], device_final: u32) -> (TagAccount, Vec<Option<usize>>) {
    let mut a = TagAccount {
        accepted: accepted.len() as u64,
        written: written.len() as u64,
        ..TagAccount::default()
    };
    let mut next = 0;
    let mut carried = Vec::with_capacity(written.len());
    for &value in written {
        if let Some(j) = accepted[next..].iter().take(MATCH_WINDOW).position(|o| o.1 == value) {
            a.collapsed += j as u64;
            carried.push(Some(next + j));
            next += j + 1;
        } else {
            if next > 0 && accepted[next - 1].1 == value {
                a.duplicated += 1;
            } else {
                a.out_of_order += 1;
            }
            carried.push(None);
        }
    }
    // What was accepted after the last write the device saw, and never written.
    a.lost = (accepted.len() - next) as u64;
    a.final_ok = accepted.last().is_none_or(|o| o.1 == device_final);
    (a, carried)
}

/// What a Modbus run found.
#[derive(Debug, Clone)]
pub struct ModbusReport {
    /// The cycle, ms.
    pub cycle_ms: u32,
    /// The nodes' timing.
    pub timing: Timing,
    /// The seed.
    pub seed: u64,
    /// Wall time, s.
    pub duration_s: f64,
    /// Frames the listener saw, and of those with a bad device quality.
    pub frames: u64,
    /// Frames with a bad quality.
    pub frames_bad: u64,
    /// Outputs offered to the listener's reference gateway, refused by it, accepted
    /// heartbeats, malformed.
    pub outputs: Json,
    /// The valve (every change matters).
    pub inflow: TagAccount,
    /// The echo (only the latest matters).
    pub echo: TagAccount,
    /// The kills.
    pub kills: Vec<Kill>,
    /// The gateway's last status.
    pub gateway: Json,
    /// Node starts.
    pub node_starts: [u32; 2],
    /// Why the run stopped early.
    pub aborted: Option<String>,
}

impl ModbusReport {
    /// Safety: a valve change lost or duplicated, a value out of order, a wrong final value.
    pub fn safety_violations(&self) -> Vec<String> {
        let mut v = Vec::new();
        let (i, e) = (&self.inflow, &self.echo);
        if i.lost + i.duplicated + i.out_of_order > 0 {
            v.push(format!(
                "valve: {} changes lost, {} duplicated, {} out of order at the device",
                i.lost, i.duplicated, i.out_of_order
            ));
        }
        if e.duplicated + e.out_of_order > 0 {
            v.push(format!(
                "echo: {} writes duplicated, {} out of order at the device",
                e.duplicated, e.out_of_order
            ));
        }
        if !i.final_ok || !e.final_ok {
            v.push(format!(
                "final values: valve {}, echo {}",
                if i.final_ok { "right" } else { "WRONG" },
                if e.final_ok { "right" } else { "WRONG" }
            ));
        }
        v
    }

    /// Liveness: a kill without a new primary or a rejoin, a run cut short, no frames.
    pub fn liveness_violations(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .kills
            .iter()
            .enumerate()
            .filter_map(|(k, kill)| kill.error.as_ref().map(|e| format!("kill #{k}: {e}")))
            .collect();
        if let Some(a) = &self.aborted {
            v.push(a.clone());
        }
        if self.frames == 0 || self.inflow.accepted == 0 {
            v.push(format!(
                "no control: {} frames, {} valve changes",
                self.frames, self.inflow.accepted
            ));
        }
        v
    }

    /// The exit code, as `run`'s.
    pub fn exit_code(&self) -> u8 {
        if !self.safety_violations().is_empty() {
            EXIT_SAFETY
        } else if !self.liveness_violations().is_empty() {
            EXIT_LIVENESS
        } else {
            0
        }
    }

    fn failover(&self, device: bool) -> Percentiles {
        let values: Vec<f64> = self
            .kills
            .iter()
            .filter_map(|k| {
                let at = if device { k.first_write_ns } else { k.first_output_ns }?;
                Some(ms(at.saturating_sub(k.kill_ns)))
            })
            .collect();
        Percentiles::of(&values)
    }

    /// The JSON report.
    pub fn to_json(&self) -> Json {
        json!({
            "command": "run",
            "io": "modbus",
            "ok": self.exit_code() == 0,
            "exit_code": self.exit_code(),
            "seed": self.seed,
            "cycle_ms": self.cycle_ms,
            "timing": self.timing.to_json(),
            "duration_s": round3(self.duration_s),
            "frames": self.frames,
            "frames_bad_quality": self.frames_bad,
            "faults_injected": self.kills.len(),
            "faults_by_kind": {"kill-primary": self.kills.len()},
            "failovers": self.kills.iter().filter(|k| k.first_output_ns.is_some()).count(),
            "failover_ms": self.failover(false).to_json(),
            "failover_device_ms": self.failover(true).to_json(),
            "outputs_accepted": self.inflow.accepted + self.echo.accepted,
            "outputs_lost": self.inflow.lost,
            "outputs_duplicated": self.inflow.duplicated + self.echo.duplicated,
            "outputs": self.outputs,
            "device": {"inflow": self.inflow.to_json(), "level_echo_mm": self.echo.to_json()},
            "node_starts": self.node_starts,
            "aborted": self.aborted,
            "violations": self.safety_violations().into_iter().chain(self.liveness_violations()).collect::<Vec<_>>(),
            "faults": self.kills.iter().map(|k| json!({
                "kind": "kill-primary", "target": k.node, "epoch_before": k.epoch_before,
                "new_epoch": k.epoch_after, "start_s": round3(ms(k.kill_ns) / 1000.0),
                "failover_ms": k.first_output_ns.map(|n| round3(ms(n.saturating_sub(k.kill_ns)))),
                "failover_device_ms": k.first_write_ns.map(|n| round3(ms(n.saturating_sub(k.kill_ns)))),
                "recovered_s": k.recovered_ns.map(|n| round3(ms(n) / 1000.0)),
                "error": k.error,
            })).collect::<Vec<_>>(),
            "gateway": self.gateway,
        })
    }

    /// The human summary.
    pub fn summary(&self) -> String {
        let f = self.failover(false);
        let d = self.failover(true);
        let mut s = format!(
            "twinloop-sim run --io modbus: seed {}, cycle {} ms, timing {}, {:.1} s\n\
             frames {} ({} with a bad device quality)\n\
             kills of the primary {}: failover to the new primary's first output p50 {:.1} ms, max {:.1} ms; to its first write at the device p50 {:.1} ms, max {:.1} ms\n\
             valve at the device: {} changes accepted, {} written ({} superseded while a write was in flight), lost {}, duplicated {}, out of order {}, final value {}\n\
             echo at the device: {} values accepted, {} written ({} collapsed), duplicated {}, out of order {}, final value {}\n",
            self.seed, self.cycle_ms, self.timing.name, self.duration_s,
            self.frames, self.frames_bad,
            self.kills.len(), f.p50, f.max, d.p50, d.max,
            self.inflow.accepted, self.inflow.written, self.inflow.collapsed, self.inflow.lost, self.inflow.duplicated,
            self.inflow.out_of_order, if self.inflow.final_ok { "right" } else { "WRONG" },
            self.echo.accepted, self.echo.written, self.echo.collapsed, self.echo.duplicated,
            self.echo.out_of_order, if self.echo.final_ok { "right" } else { "WRONG" },
        );
        for v in self.safety_violations().iter().chain(&self.liveness_violations()) {
            s.push_str(&format!("VIOLATION: {v}\n"));
        }
        s.push_str(if self.exit_code() == 0 { "PASS\n" } else { "FAIL\n" });
        s
    }

    /// Writes `report.json` and `plot.svg` into `dir`.
    pub fn write(&self, dir: &Path, samples: &[Sample]) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let text = serde_json::to_string_pretty(&self.to_json()).unwrap_or_default();
        std::fs::write(dir.join("report.json"), text + "\n")?;
        let mut marks = Vec::new();
        for (k, kill) in self.kills.iter().enumerate() {
            marks.push(Mark {
                t_ms: ms(kill.kill_ns),
                kind: MarkKind::Fault,
                label: format!("#{k} kill node {}", kill.node),
            });
            if let Some(at) = kill.first_output_ns {
                marks.push(Mark {
                    t_ms: ms(at),
                    kind: MarkKind::Takeover,
                    label: "takeover".into(),
                });
            }
        }
        let title = format!(
            "twinloop-sim run --io modbus: the tank behind a Modbus/TCP device, seed {}, cycle {} ms (the red line: the middle of the valve's band)",
            self.seed, self.cycle_ms
        );
        std::fs::write(dir.join("plot.svg"), plot::render(&title, "level m", samples, &marks))
    }
}

/// Accounts the run: matches the device's writes to the accepted changes and dates each
/// kill's first write of the new epoch.
pub fn analyse(rig: &ModbusRig, kills: &mut [Kill], duration_s: f64, aborted: Option<String>) -> ModbusReport {
    let [inflow, echo] = rig.handles;
    // The device's writes first: each was accepted by then (on a settled device, see
    // ModbusRig::stop_and_drain, nothing is written in between anyway).
    let writes = rig.server.writes();
    let accepted = rig.listener.with(|s| s.accepted.clone());
    let (coil_final, holding_final) = rig
        .server
        .with(|s| (u32::from(s.storage.coils[0]), u32::from(s.storage.holdings[1])));
    let of = |tag: TagHandle| -> Vec<&Accepted> { accepted.iter().filter(|o| o.tag == tag.index()).collect() };
    let (acc_inflow, acc_echo) = (of(inflow), of(echo));
    let w_inflow: Vec<&DeviceWrite> = writes.iter().filter(|w| w.fc == 5 && w.address == 0).collect();
    let w_echo: Vec<&DeviceWrite> = writes.iter().filter(|w| w.fc == 6 && w.address == 1).collect();
    let pairs = |acc: &[&Accepted]| acc.iter().map(|o| (o.at_ns, o.value)).collect::<Vec<_>>();
    let values = |w: &[&DeviceWrite]| w.iter().map(|w| u32::from(w.values[0])).collect::<Vec<_>>();
    let (inflow_account, inflow_carried) = account(&pairs(&acc_inflow), &values(&w_inflow), coil_final);
    let (echo_account, echo_carried) = account(&pairs(&acc_echo), &values(&w_echo), holding_final);
    // Each device write with the epoch of the change it carried, in time order.
    let mut dated: Vec<(u64, u64)> = Vec::new();
    for (w, c) in w_inflow.iter().zip(&inflow_carried) {
        if let Some(j) = c {
            dated.push((w.at_ns, acc_inflow[*j].epoch));
        }
    }
    for (w, c) in w_echo.iter().zip(&echo_carried) {
        if let Some(j) = c {
            dated.push((w.at_ns, acc_echo[*j].epoch));
        }
    }
    dated.sort_unstable();
    for kill in kills.iter_mut() {
        kill.first_write_ns = dated
            .iter()
            .find(|(at, epoch)| *at >= kill.kill_ns && *epoch > kill.epoch_before)
            .map(|(at, _)| *at);
    }
    let seen = rig.listener.with(|s| {
        (
            s.frames,
            s.frames_bad,
            json!({"offered": s.offered, "refused": s.refused, "heartbeats": s.heartbeats, "malformed": s.malformed}),
        )
    });
    ModbusReport {
        cycle_ms: rig.config.cycle_ms,
        timing: rig.config.timing,
        seed: rig.config.seed,
        duration_s,
        frames: seen.0,
        frames_bad: seen.1,
        outputs: seen.2,
        inflow: inflow_account,
        echo: echo_account,
        kills: kills.to_vec(),
        gateway: rig.gateway_status(),
        node_starts: [rig.nodes[0].starts, rig.nodes[1].starts],
        aborted,
    }
}

/// Runs the main job over Modbus: a healthy pair, `kills` kills of the primary spread
/// over `duration`, a drain; returns the report and the plant's samples.
pub fn run(
    config: ModbusConfig,
    duration: Duration,
    kills: usize,
) -> Result<(ModbusReport, Vec<Sample>), HarnessError> {
    let started = Instant::now();
    let mut rig = ModbusRig::prepare(config)?;
    rig.start()?;
    rig.say("pair healthy behind the gateway");
    let mut records = Vec::new();
    let mut aborted = None;
    let warmup = Duration::from_secs(3).min(duration / 4);
    let span = duration.saturating_sub(warmup + Duration::from_secs(3));
    for k in 0..kills {
        let at = started + warmup + span / kills.max(1) as u32 * k as u32;
        pause(at.saturating_duration_since(Instant::now()))?;
        match rig.kill_primary() {
            Ok(kill) => records.push(kill),
            Err(HarnessError::Interrupted) => return Err(HarnessError::Interrupted),
            Err(e) => {
                aborted = Some(format!("kill #{k}: {e}"));
                break;
            }
        }
    }
    pause(duration.saturating_sub(started.elapsed()))?;
    rig.stop_and_drain(Duration::from_secs(5));
    let report = analyse(&rig, &mut records, started.elapsed().as_secs_f64(), aborted);
    let samples = rig.server.with(|s| s.samples.clone());
    Ok((report, samples))
}

/// `twinloop-sim run --io modbus`: prints the summary (and JSON), writes the report;
/// returns the exit code.
pub fn run_main(config: ModbusConfig, duration: Duration, kills: usize, report_dir: Option<&Path>, json: bool) -> u8 {
    eprintln!(
        "twinloop-sim run --io modbus: seed {}, cycle {} ms, timing {} (heartbeat {} ms, window {} ms, probe {} ms), {kills} kills of the primary, files in {}",
        config.seed,
        config.cycle_ms,
        config.timing.name,
        config.timing.heartbeat_ms,
        config.timing.window_ms,
        config.timing.probe_ms,
        config.dir.display()
    );
    match run(config, duration, kills) {
        Ok((report, samples)) => {
            if let Some(dir) = report_dir {
                match report.write(dir, &samples) {
                    Ok(()) => eprintln!(
                        "report: {} and {}",
                        dir.join("report.json").display(),
                        dir.join("plot.svg").display()
                    ),
                    Err(e) => eprintln!("twinloop-sim run: cannot write the report to {}: {e}", dir.display()),
                }
            }
            print!("{}", report.summary());
            if json {
                println!("{}", report.to_json());
            }
            report.exit_code()
        }
        Err(HarnessError::Interrupted) => {
            eprintln!("twinloop-sim run: interrupted; the nodes were killed");
            EXIT_INTERRUPTED
        }
        Err(e) => {
            eprintln!("twinloop-sim run --io modbus: {e}");
            if json {
                println!(
                    "{}",
                    json!({"command": "run", "io": "modbus", "ok": false, "error": e.to_string()})
                );
            }
            EXIT_HARNESS
        }
    }
}

/// One latency measurement: the gateway at `cycle_ms` polling `registers` registers of
/// the ramp device for `seconds`.
pub fn bench_latency(mut config: ModbusConfig, seconds: u64) -> Result<Json, HarnessError> {
    config.model = ModelKind::Ramp;
    let (cycle_ms, registers) = (config.cycle_ms, config.registers);
    let mut rig = ModbusRig::prepare(config)?;
    rig.start()?;
    // Measured from here: the start's writes are not part of the figure.
    let skip = rig.server.with(|s| s.latencies_ns.len());
    rig.say(&format!(
        "measuring {seconds} s at {cycle_ms} ms with {registers} registers"
    ));
    let frames_before = rig.listener.with(|s| s.frames);
    pause(Duration::from_secs(seconds))?;
    let (samples, requests) = rig.server.with(|s| {
        (
            s.latencies_ns[skip.min(s.latencies_ns.len())..]
                .iter()
                .map(|&n| ms(n))
                .collect::<Vec<_>>(),
            s.requests,
        )
    });
    let frames = rig.listener.with(|s| s.frames) - frames_before;
    let status = rig.gateway_status();
    Ok(json!({
        "cycle_ms": cycle_ms,
        "registers": registers,
        "seconds": seconds,
        "frames": frames,
        "device_requests": requests,
        "writes_measured": samples.len(),
        "latency_ms": Percentiles::of(&samples).to_json(),
        "gateway_overruns": status["overruns"],
        "gateway_timeouts": status["devices"][0]["timeouts"],
    }))
}

/// Failover as the device sees it: `count` kills of the primary on the ramp device; per
/// kill, the first device write carrying a value of the new epoch.
pub fn bench_failover(mut config: ModbusConfig, count: usize, settle: Duration) -> Result<Json, HarnessError> {
    config.model = ModelKind::Ramp;
    let mut rig = ModbusRig::prepare(config)?;
    rig.start()?;
    let mut kills = Vec::new();
    for _ in 0..count {
        pause(settle)?;
        kills.push(rig.kill_primary()?);
    }
    rig.stop_and_drain(Duration::from_secs(5));
    let report = analyse(&rig, &mut kills, 0.0, None);
    Ok(json!({
        "cycle_ms": report.cycle_ms,
        "timing": report.timing.to_json(),
        "registers": rig.config.registers,
        "kills": kills.len(),
        // The outputs' arrival at the listener (the kernel's time): what a sink beside the
        // gateway sees, before the gateway's write.
        "failover_listener_ms": report.failover(false).to_json(),
        "failover_device_ms": report.failover(true).to_json(),
        "kills_without_a_new_primary": kills.iter().filter(|k| k.first_output_ns.is_none()).count(),
        "kills_without_a_device_write": kills.iter().filter(|k| k.first_write_ns.is_none()).count(),
        "echo_at_device": report.echo.to_json(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acc(values: &[u32]) -> Vec<(u64, u32)> {
        values.iter().enumerate().map(|(i, &v)| (i as u64, v)).collect()
    }

    #[test]
    fn account_in_order_writes_have_nothing_lost_or_duplicated() {
        let (a, carried) = account(&acc(&[1, 0, 1, 0]), &[1, 0, 1, 0], 0);
        assert_eq!(
            (a.lost, a.duplicated, a.collapsed, a.out_of_order, a.final_ok),
            (0, 0, 0, 0, true)
        );
        assert_eq!(carried, vec![Some(0), Some(1), Some(2), Some(3)]);
    }

    #[test]
    fn account_counts_lost_duplicated_and_out_of_order() {
        // 1 written twice; 7 skipped (collapsed); 3 older than 5 written after it; 9 lost.
        let (a, _) = account(&acc(&[1, 7, 5, 3, 9]), &[1, 1, 5, 3, 1], 3);
        assert_eq!(a.duplicated, 1);
        assert_eq!(a.collapsed, 1);
        assert_eq!(a.out_of_order, 1);
        assert_eq!(a.lost, 1);
        assert!(!a.final_ok);
    }

    #[test]
    fn device_answers_reads_and_records_writes() {
        let clock = RunClock::start();
        let mut device = DeviceState::new(ModelKind::Tank, &PlantParams::default());
        // Read input registers 0..2 (unit 1, transaction 7).
        let read = [0, 7, 0, 0, 0, 6, UNIT, 4, 0, 0, 0, 2];
        let answer = device.handle(clock.now_ns(), &read).expect("an answer");
        assert_eq!(&answer[..2], &[0, 7], "the transaction id is echoed");
        assert_eq!(answer[7], 4);
        let level = u32::from_be_bytes([answer[9], answer[10], answer[11], answer[12]]);
        assert_eq!(level, PlantParams::default().level_initial_um);
        // Write coil 0 on: the pump runs, the write is recorded.
        let write = [0, 8, 0, 0, 0, 6, UNIT, 5, 0, 0, 0xFF, 0];
        assert!(device.handle(clock.now_ns(), &write).is_some());
        assert_eq!(device.writes.len(), 1);
        assert_eq!(
            (
                device.writes[0].fc,
                device.writes[0].address,
                device.writes[0].values.clone()
            ),
            (5, 0, vec![1])
        );
        assert!(device.storage.coils[0]);
        // Not Modbus/TCP: no answer, the connection is closed.
        assert!(device.handle(clock.now_ns(), &[0, 1, 9, 9, 0, 2, 1, 4]).is_none());
    }

    proptest::proptest! {
        /// Whatever a client sends, the device answers, refuses or closes: it never panics.
        #[test]
        fn device_arbitrary_request_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let mut device = DeviceState::new(ModelKind::Tank, &PlantParams::default());
            let _ = device.handle(1, &bytes);
            let mut ramp = DeviceState::new(ModelKind::Ramp, &PlantParams::default());
            let _ = ramp.handle(1, &bytes);
        }
    }

    #[test]
    fn device_ramp_times_poll_to_echo() {
        let mut device = DeviceState::new(ModelKind::Ramp, &PlantParams::default());
        let read = [0, 1, 0, 0, 0, 6, UNIT, 4, 0, 0, 0, 2];
        device.handle(1_000, &read).expect("an answer");
        let level = u32::from(device.storage.inputs[0]) << 16 | u32::from(device.storage.inputs[1]);
        assert_eq!(level / 1000, 1, "the first poll's level is 1 mm (and 500 µm)");
        // The echo of 1 mm arrives 250 µs later.
        let write = [0, 2, 0, 0, 0, 6, UNIT, 6, 0, 1, 0, 1];
        device.handle(251_000, &write).expect("an answer");
        assert_eq!(device.latencies_ns, vec![250_000]);
    }
}
