//! The main job over Modbus/TCP (`twinloop-sim run --io modbus`) and the gateway's
//! benchmarks (`twinloop-sim bench gateway-latency`, `bench gateway-failover`).
//!
//! ```text
//!  PlantServer (rmodbus, a thread)  ◀──Modbus/TCP──▶  twinloop-gateway (process)
//!    the tank model behind                               │ frames (the input image)
//!    registers and coils                                 ▼
//!                                         twinloop-demo (io = "tags") node 1, node 2
//!  Listener: a third frame address and a second           │ outputs (tag writes)
//!  sink with its own reference gateway  ◀─────────────────┘──▶ the gateway ──▶ writes
//! ```
//!
//! The device is a Modbus/TCP server written with `rmodbus`'s server side (its storage
//! and frame handling) on a std TCP listener; the plant model sits behind its registers:
//! for `run`, the tank of `twinloop_demo::plant` at the addresses of the demo's tag map
//! (`twinloop_demo::tags::plant_map`: the switches as discrete inputs, the level, flow,
//! panel setpoint and demand as input registers, the pump's run and the horn as coils,
//! its speed and the alarm words as holding registers), run by the demo's tank controller
//! on tags; for the latency benchmark, a ramp whose level is new at every poll (so that
//! each echoed value names the poll it came from), run by the small tag tank
//! (`twinloop-tag-tank`: a valve between two levels, an echo of the level). The device
//! records every write it applies, with its time: what the report counts as reaching the
//! device.
//!
//! The report of `run` is the default run's: the listener records every frame's image
//! and every output a reference gateway accepts (the default run's sink ledger); after the
//! run, the same program in-process steps through the recorded images, and its outputs are
//! compared with the accepted ones output by output (`report::analyse`). Beside it, per
//! out tag, the changes accepted against the writes the device applied. The faults are
//! kills of the primary (SIGKILL, then a restart that rejoins), the only fault kind
//! without the sync-link proxy.
#![allow(clippy::disallowed_methods)]

use super::plant_loop::FrameLog;
use super::plot::{self, Mark, MarkKind, Sample};
use super::procs::{write_private, Console, NodeEvent, NodeProc, Watcher};
use super::report::{self as run_report, Analysis, EXIT_HARNESS, EXIT_INTERRUPTED, EXIT_LIVENESS, EXIT_SAFETY};
use super::rig::Timing;
use super::sink::{lock, SinkLog};
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
use twinloop::app::{App, Frame, Outbox};
use twinloop::gateway::{Decision, Gateway};
use twinloop::image::{Direction, Table, TagHandle, TagMap, TagMapSpec, TagOutput, TagType, Value, WordOrder};
use twinloop::io::config::{ConsoleConfig, FramesConfig, LinkConfig, LogConfig, OutputsConfig};
use twinloop::io::schema::{Role, Sync};
use twinloop::io_protocol;
use twinloop::node_main::config::{NodeFile, NodeTable};
use twinloop::node_main::AnyAppSettings;
use twinloop::testing::{NodePorts, PortPool};
use twinloop_demo::layout::{flag, ActuatorCommand};
use twinloop_demo::plant::{Plant, PlantParams};
use twinloop_demo::tags::{plant_map, INPUT_BITS};
use twinloop_demo::tank::IoMode;
use twinloop_demo::{TankApp, TankParams};

/// The device's Modbus unit id.
const UNIT: u8 = 1;
/// Device writes kept (beyond, counted only): a 10 ms run of an hour writes about
/// 200 000 echoes.
const WRITES_MAX: usize = 1 << 20;
/// Accepted outputs kept by the listener (beyond, counted only).
const ACCEPTED_MAX: usize = 1 << 20;
/// Frame images kept by the listener for the reference run (an hour at 10 ms is 360 000):
/// the reference stops at the first frame it does not have.
const FRAMES_MAX: usize = 1 << 20;
/// The listener's receive buffers: a new primary's catch-up burst must not overflow them.
const LISTENER_RCVBUF_BYTES: usize = 4 << 20;
/// The operator panel presses the acknowledge button for this long every
/// [`ACK_PERIOD_MS`] (the default run's rhythm), so that latched alarms clear.
const ACK_HELD_MS: u64 = 30;
/// See [`ACK_HELD_MS`].
const ACK_PERIOD_MS: u64 = 3000;
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

/// What sits behind the device's registers, and the program the nodes run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    /// The demo's tank at the addresses of `twinloop_demo::tags::plant_map`, run by the
    /// demo's controller on tags (`twinloop-demo`, `[app] io = "tags"`).
    Tank,
    /// A level that is new at every poll of input register 0 (its mm count is the poll's
    /// number modulo 60 000), for measuring poll → write; run by the small tag tank
    /// (`twinloop-tag-tank`), which echoes the level it read.
    Ramp,
}

enum Model {
    Tank {
        plant: Plant,
        last_ms: u64,
        /// The operator panel's setpoint steps: from `.0` ms on the run's clock, `.1` µm.
        setpoints: Vec<(u64, u32)>,
    },
    Ramp {
        polls: u64,
        read_at_ns: Vec<u64>,
    },
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
    fn new(kind: ModelKind, plant: &PlantParams, setpoints: &[(u64, u32)]) -> Self {
        let model = match kind {
            ModelKind::Tank => Model::Tank {
                plant: Plant::new(plant.clone()),
                last_ms: 0,
                setpoints: setpoints.to_vec(),
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
        let Model::Tank {
            plant,
            last_ms,
            setpoints,
        } = &mut self.model
        else {
            return;
        };
        let now_ms = now_ns / 1_000_000;
        // At most a second per request: a stalled harness does not empty the tank at once.
        plant.advance(now_ms.saturating_sub(*last_ms).min(1000));
        *last_ms = now_ms;
        let setpoint_um = setpoints
            .iter()
            .take_while(|(from, _)| *from <= now_ms)
            .last()
            .map_or(0, |(_, sp)| *sp);
        plant.set_setpoint(setpoint_um);
        plant.set_ack(now_ms % ACK_PERIOD_MS < ACK_HELD_MS);
        let inputs = plant.inputs();
        // The demo's tag map (twinloop_demo::tags::plant_map): the switches as discrete
        // inputs 0..=5, the numbers as u32 input registers 0, 2, 4, 6, high word first.
        for (i, (_, mask)) in INPUT_BITS.iter().enumerate() {
            self.storage.discretes[i] = inputs.has(*mask);
        }
        let numbers = [
            inputs.level_um,
            inputs.pump_flow_ml_per_s,
            inputs.setpoint_um,
            inputs.demand_flow_ml_per_s,
        ];
        for (i, value) in numbers.into_iter().enumerate() {
            self.storage.inputs[2 * i] = (value >> 16) as u16;
            self.storage.inputs[2 * i + 1] = value as u16;
        }
        if now_ms >= self.next_sample_ms {
            self.next_sample_ms = now_ms + 50;
            let sp = if setpoint_um == 0 {
                TankParams::default().setpoint_um
            } else {
                setpoint_um
            };
            self.samples.push(Sample {
                t_ms: now_ms as f64,
                pv: f64::from(inputs.level_um) / 1e6,
                sp: f64::from(sp) / 1e6,
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
            // The pump follows its run coil (0) and its drive's speed register (holding 0).
            Model::Tank { plant, .. } => plant.apply(&ActuatorCommand {
                flags: if self.storage.coils[0] { flag::PUMP_RUN } else { 0 },
                pump_speed_permille: self.storage.holdings[0],
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
    pub fn start(
        kind: ModelKind,
        plant: &PlantParams,
        setpoints: &[(u64, u32)],
        clock: RunClock,
    ) -> Result<PlantServer, HarnessError> {
        let listener =
            TcpListener::bind("127.0.0.1:0").map_err(|e| HarnessError::io("bind the Modbus/TCP device", e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| HarnessError::io("the device's address", e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| HarnessError::io("the device's listener", e))?;
        let state = Arc::new(Mutex::new(DeviceState::new(kind, plant, setpoints)));
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
#[derive(Debug)]
pub struct Seen {
    /// Each frame's image as the gateway sent it to the nodes, by number, with its arrival
    /// time (ns): what the reference run steps through. At most [`FRAMES_MAX`].
    pub images: std::collections::BTreeMap<u64, (u64, Vec<u8>)>,
    /// Every output the reference gateway accepted, by `(frame, index)`: the default
    /// run's sink ledger, around the listener's gateway (with the lease).
    pub sink: SinkLog,
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

impl Seen {
    /// Nothing seen yet; outputs offered to `gateway`.
    pub fn around(gateway: Gateway) -> Seen {
        Seen {
            images: std::collections::BTreeMap::new(),
            sink: SinkLog::around(gateway),
            frames: 0,
            frames_bad: 0,
            last_frame: 0,
            accepted: Vec::new(),
            heartbeats: 0,
            offered: 0,
            refused: 0,
            malformed: 0,
            last_epoch: 0,
            epoch_first_ns: std::collections::BTreeMap::new(),
        }
    }
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
        for socket in [&frames, &outputs] {
            // Best effort: the kernel caps it at net.core.rmem_max.
            let _ = nix::sys::socket::setsockopt(socket, nix::sys::socket::sockopt::RcvBuf, &LISTENER_RCVBUF_BYTES);
        }
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
        let gateway = Gateway::new(1024, Some(lease)).map_err(|e| HarnessError::Setup(e.to_string()))?;
        let seen = Arc::new(Mutex::new(Seen::around(gateway)));
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
                        if seen.sink.offer(now, &output) != Decision::Accepted {
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
                            if seen.images.len() < FRAMES_MAX {
                                let at = clock.now_ns();
                                seen.images.entry(frame.number).or_insert((at, frame.payload.to_vec()));
                            }
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
    /// The operator panel's setpoint steps (tank): from `.0` ms on the run's clock, the
    /// panel asks for `.1` µm ([`run`] puts them at 30 % and 65 % of the run, as the
    /// default run does).
    pub setpoints: Vec<(u64, u32)>,
    /// The nodes' and the gateway's log level.
    pub log_level: String,
    /// Progress lines on stderr.
    pub progress: bool,
}

impl ModbusConfig {
    /// Defaults: the tank (the demo on tags), a 10 ms cycle, the harness timing, 4
    /// registers (the ramp's).
    pub fn new(dir: PathBuf) -> Self {
        ModbusConfig {
            dir,
            cycle_ms: 10,
            timing: Timing::HARNESS,
            seed: 1,
            registers: 4,
            model: ModelKind::Tank,
            plant: PlantParams {
                // The default run's plant: below the low-level alarm at start, so the run
                // begins with an alarm the panel acknowledges and the filling clears; a
                // pump that reaches the setpoint in about ten seconds.
                level_initial_um: 190_000,
                pump_flow_max_ml_per_s: 10_000,
                ..PlantParams::default()
            },
            setpoints: Vec::new(),
            log_level: "info".into(),
            progress: true,
        }
    }

    /// The gateway's device timeout: within the cycle, at most 8 ms.
    fn timeout_ms(&self) -> u64 {
        u64::from(self.cycle_ms.clamp(1, 8))
    }

    /// The tag map of the device at `device`: the demo plant's (`plant_map`) for the tank;
    /// for the ramp, the tag tank's level, valve and echo, and for more than 4 registers
    /// one `u16` in tag for each register past the level.
    pub fn map_spec(&self, device: SocketAddr) -> Result<TagMapSpec, HarnessError> {
        if self.model == ModelKind::Tank {
            return Ok(plant_map(&device.to_string(), self.timeout_ms()));
        }
        let mut text = format!(
            "[[device]]\nname = \"tank\"\naddress = \"{device}\"\nunit_id = {UNIT}\ntimeout_ms = {}\ninput_registers = [{{ start = 0, count = {} }}]\n",
            self.timeout_ms(),
            self.registers.max(2),
        );
        text.push_str(
            "\n[[tag]]\nname = \"level_um\"\ndevice = \"tank\"\ntable = \"input_register\"\naddress = 0\ntype = \"u32\"\ndirection = \"in\"\n\n[[tag]]\nname = \"inflow\"\ndevice = \"tank\"\ntable = \"coil\"\naddress = 0\ntype = \"bool\"\ndirection = \"out\"\nsafe = 0\n\n[[tag]]\nname = \"level_echo_mm\"\ndevice = \"tank\"\ntable = \"holding_register\"\naddress = 1\ntype = \"u16\"\ndirection = \"out\"\n",
        );
        for r in 2..self.registers {
            text.push_str(&format!(
                "\n[[tag]]\nname = \"r{r}\"\ndevice = \"tank\"\ntable = \"input_register\"\naddress = {r}\ntype = \"u16\"\ndirection = \"in\"\n"
            ));
        }
        toml::from_str(&text).map_err(|e| HarnessError::Setup(format!("the tag map: {e}")))
    }

    /// The demo's `[app]` table (tank only): the default parameters at this cycle, on the
    /// tags of `spec`. The reference run uses the same.
    pub fn tank_params(&self, spec: &TagMapSpec) -> TankParams {
        TankParams {
            cycle_ms: Some(self.cycle_ms),
            io: IoMode::Tags,
            heartbeat_frames: 10,
            device: spec.device.clone(),
            tag: spec.tag.clone(),
            ..TankParams::default()
        }
    }

    /// The gateway's file (docs/GATEWAY.md): its table and the map.
    fn gateway_toml(
        &self,
        nodes: &[SocketAddr],
        outputs: SocketAddr,
        spec: &TagMapSpec,
    ) -> Result<String, HarnessError> {
        let lease_ms = (self.timing.window_ms * 10).max(5000);
        let nodes: Vec<String> = nodes.iter().map(|a| format!("\"{a}\"")).collect();
        let mut text = format!(
            "[gateway]\ncycle_ms = {}\nnodes = [{}]\noutputs_bind = \"{outputs}\"\nwindow_frames = 1024\nlease_ms = {lease_ms}\noutputs_silence_ms = 5000\nreconnect_min_ms = 100\nreconnect_max_ms = 1000\ndevice_stall_ms = 2000\nlog_level = \"{}\"\n\n",
            self.cycle_ms,
            nodes.join(", "),
            self.log_level,
        );
        text.push_str(&toml::to_string(spec).map_err(|e| HarnessError::Setup(format!("the tag map: {e}")))?);
        Ok(text)
    }
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Node `i`'s file: the demo on tags (or the tag tank) with the gateway's map in its
/// `[app]`.
fn node_toml(
    config: &ModbusConfig,
    i: usize,
    ports: &[NodePorts; 2],
    sinks: &[SocketAddr],
    spec: &TagMapSpec,
) -> Result<String, HarnessError> {
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
    let setup = |e: toml::ser::Error| HarnessError::Setup(format!("the [app] table: {e}"));
    let app: toml::Table = match config.model {
        ModelKind::Tank => toml::Table::try_from(config.tank_params(spec)).map_err(setup)?,
        ModelKind::Ramp => {
            let mut app = toml::Table::try_from(spec).map_err(setup)?;
            app.insert("heartbeat_frames".into(), 10.into());
            app.insert("low_um".into(), i64::from(LOW_UM).into());
            app.insert("high_um".into(), i64::from(HIGH_UM).into());
            app
        }
    };
    let file = NodeFile::<AnyAppSettings> {
        node: NodeTable {
            name: match config.model {
                ModelKind::Tank => format!("demo-tags-{id}"),
                ModelKind::Ramp => format!("tag-tank-{id}"),
            },
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
    let text = file
        .to_toml()
        .map_err(|e| HarnessError::Setup(format!("node {id}'s file: {e}")))?;
    Ok(format!(
        "# Generated by twinloop-sim (run --io modbus) for node {id}.\n{text}"
    ))
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
    /// Its out tags, in map order: what the device's writes are accounted by.
    pub out_tags: Vec<TagHandle>,
    /// The demo's parameters (tank): the reference run's.
    pub params: Option<TankParams>,
    /// The nodes' journals (tank): skipped frames and frames decided without their commit
    /// explain a reference mismatch, as in the default run.
    watchers: Option<[Watcher; 2]>,
}

impl ModbusRig {
    /// Writes the files and starts the device and the listener (no node, no gateway).
    pub fn prepare(config: ModbusConfig) -> Result<ModbusRig, HarnessError> {
        std::fs::create_dir_all(&config.dir)
            .map_err(|e| HarnessError::io(format!("create {}", config.dir.display()), e))?;
        let program = match config.model {
            ModelKind::Tank => twinloop_demo::binary::locate().map_err(|e| HarnessError::Setup(e.to_string()))?,
            ModelKind::Ramp => locate_gateway_binary("twinloop-tag-tank")?,
        };
        let gateway_binary = locate_gateway_binary("twinloop-gateway")?;
        let clock = RunClock::start();
        let key = format!("twinloop-sim-console-{:016x}", config.seed ^ 0x5EED);
        write_private(&config.dir.join("console.key"), &format!("{key}\n"))?;
        for id in 1..=2 {
            let _ = std::fs::remove_file(config.dir.join(format!("node-{id}.epoch")));
            let _ = std::fs::remove_file(config.dir.join(format!("node-{id}.log")));
        }
        let server = PlantServer::start(config.model, &config.plant, &config.setpoints, clock)?;
        let spec = config.map_spec(server.addr)?;
        let map = TagMap::new(&spec).map_err(|e| HarnessError::Setup(format!("the tag map: {e}")))?;
        let out_tags: Vec<TagHandle> = (0..map.tags().len())
            .filter(|&i| map.tags()[i].direction == Direction::Out)
            .map(|i| TagHandle(i as u16))
            .collect();
        let params = (config.model == ModelKind::Tank).then(|| config.tank_params(&spec));
        if let Some(p) = &params {
            p.validate()
                .map_err(|e| HarnessError::Setup(format!("the demo's parameters: {e}")))?;
        }

        let lease = Duration::from_millis((config.timing.window_ms * 10).max(5000));
        let listener = Listener::start(map.clone(), lease, clock)?;
        let mut pool = PortPool::new();
        let ports = [pool.node(), pool.node()];
        let gateway_outputs = local(pool.take());
        let gateway_text = config.gateway_toml(
            &[local(ports[0].frames), local(ports[1].frames), listener.frames_addr],
            gateway_outputs,
            &spec,
        )?;
        let gateway_config = config.dir.join("gateway.toml");
        std::fs::write(&gateway_config, gateway_text)
            .map_err(|e| HarnessError::io(format!("write {}", gateway_config.display()), e))?;
        let sinks = [gateway_outputs, listener.outputs_addr];
        let mut nodes = Vec::new();
        for i in 0..2 {
            let path = config.dir.join(format!("node-{}.toml", i + 1));
            std::fs::write(&path, node_toml(&config, i, &ports, &sinks, &spec)?)
                .map_err(|e| HarnessError::io(format!("write {}", path.display()), e))?;
            nodes.push(NodeProc::new(
                i as u8 + 1,
                program.clone(),
                path,
                config.dir.join(format!("node-{}.log", i + 1)),
            ));
        }
        let console_timeout = Duration::from_millis(500);
        let consoles = [
            Console::new(local(ports[0].console), &key, console_timeout),
            Console::new(local(ports[1].console), &key, console_timeout),
        ];
        let watchers = match config.model {
            ModelKind::Tank => {
                let interval = Duration::from_millis(100);
                Some([
                    Watcher::start(1, consoles[0].clone(), clock, interval)?,
                    Watcher::start(2, consoles[1].clone(), clock, interval)?,
                ])
            }
            ModelKind::Ramp => None,
        };
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
            out_tags,
            params,
            watchers,
        })
    }

    /// The nodes' journals so far, both nodes, in time order (tank; none for the ramp).
    pub fn events(&self) -> Vec<NodeEvent> {
        let mut events: Vec<NodeEvent> = self
            .watchers
            .iter()
            .flatten()
            .flat_map(|w| w.with(|v| v.events.clone()))
            .collect();
        events.sort_by_key(|e| e.at_ns);
        events
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
        let _ = self.wait(limit, "the last writes at the device", |rig| {
            rig.out_tags.iter().all(|&handle| {
                let Some(tag) = rig.map.tag(handle) else {
                    return true;
                };
                let last = rig.listener.with(|s| {
                    s.accepted
                        .iter()
                        .rev()
                        .find(|o| o.tag == handle.index())
                        .map(|o| o.value)
                });
                let now = rig.server.with(|s| device_value(tag, &s.storage));
                last.is_none_or(|v| v == now)
            })
        });
    }
}

/// A 32-bit value from its two registers in `order`.
fn join(order: WordOrder, first: u16, second: u16) -> u32 {
    match order {
        WordOrder::HighFirst => u32::from(first) << 16 | u32::from(second),
        WordOrder::LowFirst => u32::from(second) << 16 | u32::from(first),
    }
}

/// The raw value a device write carried for `tag`, if it is a write of that tag: write
/// single coil (5) for a bool, write single register (6) for a 16-bit tag, write multiple
/// registers (16) of both registers for a 32-bit one (docs/GATEWAY.md, "Outputs").
fn written_value(tag: &twinloop::image::Tag, w: &DeviceWrite) -> Option<u32> {
    if w.address != tag.address {
        return None;
    }
    match (tag.table, tag.kind.span(), w.fc, w.values.as_slice()) {
        (Table::Coil, _, 5, [v]) | (Table::HoldingRegister, 1, 6, [v]) => Some(u32::from(*v)),
        (Table::HoldingRegister, 2, 16, [first, second]) => Some(join(tag.word_order, *first, *second)),
        _ => None,
    }
}

/// The device's raw value of the out tag `tag` now.
fn device_value(tag: &twinloop::image::Tag, storage: &ModbusStorageSmall) -> u32 {
    let at = usize::from(tag.address);
    let register = |i: usize| storage.holdings.get(i).copied().unwrap_or(0);
    match (tag.table, tag.kind) {
        (Table::Coil, _) => storage.coils.get(at).map_or(0, |&b| u32::from(b)),
        (_, TagType::U32 | TagType::I32 | TagType::F32) => join(tag.word_order, register(at), register(at + 1)),
        _ => u32::from(register(at)),
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

/// The reference run of a Modbus run: the demo in-process on the recorded images.
#[derive(Debug, Clone)]
pub struct Reference {
    /// Frames compared (`1..=frames`): up to the last frame with an accepted output, or
    /// to the frame before the first image the listener did not record.
    pub frames: u64,
    /// Images the listener did not record among the frames up to the last accepted
    /// output: the reference stops before the first (it cannot run a frame it has not
    /// seen).
    pub frames_missing: u64,
    /// The comparison, output by output, as the default run's (`report::analyse`): lost,
    /// skipped, duplicated, unexpected, content mismatches, the journals' skips.
    pub analysis: Analysis,
}

/// What a Modbus run found.
#[derive(Debug, Clone)]
pub struct ModbusReport {
    /// The program the nodes ran.
    pub program: &'static str,
    /// The cycle, ms.
    pub cycle_ms: u32,
    /// The nodes' timing.
    pub timing: Timing,
    /// The seed.
    pub seed: u64,
    /// Wall time, s.
    pub duration_s: f64,
    /// Frames the listener saw.
    pub frames: u64,
    /// Frames with a bad quality.
    pub frames_bad: u64,
    /// Outputs offered to the listener's reference gateway, refused by it, accepted
    /// heartbeats, malformed.
    pub outputs: Json,
    /// Per out tag, in map order: its name and the changes accepted against the device's
    /// writes.
    pub device: Vec<(String, TagAccount)>,
    /// The reference run (the demo; none for the tag tank of the benchmarks).
    pub reference: Option<Reference>,
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
    /// The account of the out tag `name`.
    pub fn tag(&self, name: &str) -> Option<&TagAccount> {
        self.device.iter().find(|(n, _)| n == name).map(|(_, a)| a)
    }

    /// The reference's verdict as the default run gives it (`report::Report`): lost,
    /// duplicated, deposed or conflicting outputs, and mismatches no skipped frame
    /// explains.
    fn reference_violations(&self) -> Vec<String> {
        let Some(r) = &self.reference else {
            return Vec::new();
        };
        let report = run_report::Report {
            command: "run".into(),
            seed: self.seed,
            cycle_ms: self.cycle_ms,
            timing: self.timing,
            duration_s: self.duration_s,
            faults: Vec::new(),
            analysis: r.analysis.clone(),
            aborted: None,
            liveness_failures: Vec::new(),
            extra: Json::Null,
        };
        report
            .safety_violations()
            .into_iter()
            .map(|v| format!("reference run: {v}"))
            .collect()
    }

    /// Safety: the reference's verdict; at the device, a write duplicated or out of order,
    /// a wrong final value.
    pub fn safety_violations(&self) -> Vec<String> {
        let mut v = self.reference_violations();
        for (name, a) in &self.device {
            if a.duplicated + a.out_of_order > 0 {
                v.push(format!(
                    "{name}: {} writes duplicated, {} out of order at the device",
                    a.duplicated, a.out_of_order
                ));
            }
            if !a.final_ok {
                v.push(format!("{name}: the device's final value is not the last accepted one"));
            }
        }
        v
    }

    /// Liveness: a kill without a new primary or a rejoin, a run cut short, no frames, no
    /// tag write, a reference run that compared nothing.
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
        let writes: u64 = self.device.iter().map(|(_, a)| a.accepted).sum();
        if self.frames == 0 || writes == 0 {
            v.push(format!("no control: {} frames, {writes} tag writes", self.frames));
        }
        if self.reference.as_ref().is_some_and(|r| r.frames == 0) {
            v.push("the reference run compared no frame".into());
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

    /// The JSON report: the default run's output figures (from the reference run) and,
    /// per out tag, the device's account.
    pub fn to_json(&self) -> Json {
        let sum = |f: fn(&TagAccount) -> u64| self.device.iter().map(|(_, a)| f(a)).sum::<u64>();
        let mut j = json!({
            "command": "run",
            "io": "modbus",
            "program": self.program,
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
            "outputs_accepted": sum(|a| a.accepted),
            "outputs_lost": sum(|a| a.lost),
            "outputs_duplicated": sum(|a| a.duplicated),
            "outputs": self.outputs,
            "device": self.device.iter().map(|(n, a)| (n.clone(), a.to_json())).collect::<serde_json::Map<_, _>>(),
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
        });
        if let Some(r) = &self.reference {
            // The default run's keys, with the same meaning (docs/BENCHMARKS.md).
            let a = &r.analysis;
            for (key, value) in [
                ("reference_frames", json!(r.frames)),
                ("reference_frames_missing", json!(r.frames_missing)),
                ("outputs_expected", json!(a.outputs_expected)),
                ("outputs_delivered", json!(a.outputs_delivered)),
                ("outputs_lost", json!(a.outputs_lost)),
                ("outputs_skipped", json!(a.outputs_skipped)),
                ("outputs_duplicated", json!(a.outputs_duplicated)),
                ("duplicates_raw", json!(a.duplicates_raw)),
                ("outputs_unexpected", json!(a.outputs_unexpected)),
                ("content_mismatches", json!(a.content_mismatches)),
                ("mismatch_first_frame", json!(a.mismatch_first_frame)),
                ("conflicts", json!(a.conflicts)),
                ("dual_primary_accepted", json!(a.dual_primary_accepted)),
                ("input_lost_frames", json!(a.input_lost_frames.len())),
                ("commit_lost_frames", json!(a.commit_lost_frames())),
            ] {
                j[key] = value;
            }
        }
        j
    }

    /// The human summary.
    pub fn summary(&self) -> String {
        let f = self.failover(false);
        let d = self.failover(true);
        let mut s = format!(
            "twinloop-sim run --io modbus ({}): seed {}, cycle {} ms, timing {}, {:.1} s\n\
             frames {} ({} with a bad device quality)\n\
             kills of the primary {}: failover to the new primary's first output p50 {:.1} ms, max {:.1} ms; to its first write at the device (the next change of an out tag) p50 {:.1} ms, max {:.1} ms\n",
            self.program, self.seed, self.cycle_ms, self.timing.name, self.duration_s,
            self.frames, self.frames_bad,
            self.kills.len(), f.p50, f.max, d.p50, d.max,
        );
        if let Some(r) = &self.reference {
            let a = &r.analysis;
            s.push_str(&format!(
                "reference run (the program in-process on the {} recorded images{}): outputs expected {}, delivered {}, lost {}, skipped {}, duplicated {}, unexpected {}, content mismatches {}, conflicts {}; frames skipped by the pair {}, decided without their commit {}\n",
                r.frames,
                if r.frames_missing > 0 { format!(", {} missing: compared up to the first", r.frames_missing) } else { String::new() },
                a.outputs_expected, a.outputs_delivered, a.outputs_lost, a.outputs_skipped, a.outputs_duplicated,
                a.outputs_unexpected, a.content_mismatches, a.conflicts, a.input_lost_frames.len(), a.commit_lost_frames(),
            ));
        }
        for (name, a) in &self.device {
            s.push_str(&format!(
                "{name} at the device: {} changes accepted, {} written ({} superseded while a write was in flight, {} after the last write), duplicated {}, out of order {}, final value {}\n",
                a.accepted, a.written, a.collapsed, a.lost, a.duplicated, a.out_of_order,
                if a.final_ok { "right" } else { "WRONG" },
            ));
        }
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
            "twinloop-sim run --io modbus: the tank behind a Modbus/TCP device, {}, seed {}, cycle {} ms",
            self.program, self.seed, self.cycle_ms
        );
        std::fs::write(dir.join("plot.svg"), plot::render(&title, "level m", samples, &marks))
    }
}

/// The reference run: the demo with the nodes' parameters steps in-process through the
/// images the listener recorded, frame after frame from 1, and its outputs are compared
/// with the ones the listener's sink accepted, output by output (`report::analyse`, the
/// default run's comparison), up to the last frame with an accepted output.
fn reference_run(params: &TankParams, seen: &Seen, events: &[NodeEvent], cycle_ms: u32) -> Reference {
    let last = seen.sink.delivered.keys().next_back().map_or(0, |&(frame, _)| frame);
    let frames_missing = (1..=last).filter(|n| !seen.images.contains_key(n)).count() as u64;
    let mut app = TankApp::new(params.clone());
    let mut log = FrameLog::default();
    let mut outbox = Outbox::new();
    for number in 1..=last {
        let Some((at_ns, payload)) = seen.images.get(&number) else {
            break;
        };
        outbox.clear();
        app.step(Frame { number, payload }, &mut outbox);
        log.push(number, *at_ns, &outbox);
    }
    let frames = log.frames();
    let analysis = run_report::analyse(&log, &seen.sink, events, &mut [], frames, cycle_ms);
    Reference {
        frames,
        frames_missing,
        analysis,
    }
}

/// Accounts the run: the reference run (tank), the device's writes against the accepted
/// changes, and each kill's first write of the new epoch.
pub fn analyse(rig: &ModbusRig, kills: &mut [Kill], duration_s: f64, aborted: Option<String>) -> ModbusReport {
    // The device's writes first: each was accepted by then (on a settled device, see
    // ModbusRig::stop_and_drain, nothing is written in between anyway).
    let writes = rig.server.writes();
    let accepted = rig.listener.with(|s| s.accepted.clone());
    let mut device = Vec::new();
    // Each device write with the epoch of the change it carried, in time order.
    let mut dated: Vec<(u64, u64)> = Vec::new();
    for &handle in &rig.out_tags {
        let Some(tag) = rig.map.tag(handle) else { continue };
        let acc: Vec<&Accepted> = accepted.iter().filter(|o| o.tag == handle.index()).collect();
        let written: Vec<(u64, u32)> = writes
            .iter()
            .filter_map(|w| written_value(tag, w).map(|v| (w.at_ns, v)))
            .collect();
        let now = rig.server.with(|s| device_value(tag, &s.storage));
        let pairs: Vec<(u64, u32)> = acc.iter().map(|o| (o.at_ns, o.value)).collect();
        let values: Vec<u32> = written.iter().map(|w| w.1).collect();
        let (tag_account, carried) = account(&pairs, &values, now);
        for (w, c) in written.iter().zip(&carried) {
            if let Some(j) = c {
                dated.push((w.0, acc[*j].epoch));
            }
        }
        device.push((tag.name.clone(), tag_account));
    }
    dated.sort_unstable();
    for kill in kills.iter_mut() {
        kill.first_write_ns = dated
            .iter()
            .find(|(at, epoch)| *at >= kill.kill_ns && *epoch > kill.epoch_before)
            .map(|(at, _)| *at);
    }
    let events = rig.events();
    let (frames, frames_bad, outputs, reference) = rig.listener.with(|s| {
        (
            s.frames,
            s.frames_bad,
            json!({"offered": s.offered, "refused": s.refused, "heartbeats": s.heartbeats, "malformed": s.malformed}),
            rig.params
                .as_ref()
                .map(|p| reference_run(p, s, &events, rig.config.cycle_ms)),
        )
    });
    ModbusReport {
        program: match rig.config.model {
            ModelKind::Tank => "twinloop-demo, io = tags",
            ModelKind::Ramp => "twinloop-tag-tank",
        },
        cycle_ms: rig.config.cycle_ms,
        timing: rig.config.timing,
        seed: rig.config.seed,
        duration_s,
        frames,
        frames_bad,
        outputs,
        device,
        reference,
        kills: kills.to_vec(),
        gateway: rig.gateway_status(),
        node_starts: [rig.nodes[0].starts, rig.nodes[1].starts],
        aborted,
    }
}

/// Runs the main job over Modbus: a healthy pair, `kills` kills of the primary spread
/// over `duration`, a drain; returns the report and the plant's samples.
pub fn run(
    mut config: ModbusConfig,
    duration: Duration,
    kills: usize,
) -> Result<(ModbusReport, Vec<Sample>), HarnessError> {
    if config.setpoints.is_empty() {
        // The default run's operator: setpoint steps at 30 % (1.3 m) and 65 % (0.8 m).
        let duration_ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        config.setpoints = vec![(duration_ms / 10 * 3, 1_300_000), (duration_ms / 100 * 65, 800_000)];
    }
    let mut rig = ModbusRig::prepare(config)?;
    // From here: finding (or building) the binaries is not part of the run, and a build
    // that takes the warm-up would put the first kill at the pair's start.
    let started = Instant::now();
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
    // Two of the watchers' polls: the journals' last events (a skipped frame) are read
    // before the nodes stop.
    pause(Duration::from_millis(250))?;
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
        "echo_at_device": report.tag("level_echo_mm").map(TagAccount::to_json),
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
        let mut device = DeviceState::new(ModelKind::Tank, &PlantParams::default(), &[]);
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
            let mut device = DeviceState::new(ModelKind::Tank, &PlantParams::default(), &[]);
            let _ = device.handle(1, &bytes);
            let mut ramp = DeviceState::new(ModelKind::Ramp, &PlantParams::default(), &[]);
            let _ = ramp.handle(1, &bytes);
        }
    }

    /// A pair's outputs for `frames` frames of the demo on tags, as the listener records
    /// them, with the images; `tamper` may drop or change an output before it is offered.
    fn seen_of_a_pair(frames: u64, mut tamper: impl FnMut(u64, usize, &mut Vec<u8>) -> bool) -> (TankParams, Seen) {
        let config = ModbusConfig::new(PathBuf::from("/nonexistent"));
        let params = config.tank_params(&plant_map("127.0.0.1:1", 8));
        let mut node = TankApp::new(params.clone());
        let io = node.tag_io().expect("on tags").clone();
        let mut plant = Plant::new(config.plant.clone());
        let mut seen = Seen::around(Gateway::new(1024, None).unwrap());
        let mut outbox = Outbox::new();
        for number in 1..=frames {
            plant.set_ack(number % 300 < 3);
            let image = io.image_of(&plant.inputs(), twinloop::image::Quality::Ok);
            outbox.clear();
            node.step(
                Frame {
                    number,
                    payload: &image,
                },
                &mut outbox,
            );
            for (index, payload) in outbox.as_slice().iter().enumerate() {
                let mut payload = payload.to_vec();
                if !tamper(number, index, &mut payload) {
                    continue;
                }
                let output = io_protocol::OutputDatagram {
                    node_id: 1,
                    epoch: 1,
                    frame: number,
                    index: index as u8,
                    kind: outbox.kind(index),
                    payload: &payload,
                };
                seen.sink.offer(number * 10_000_000, &output);
            }
            seen.images.insert(number, (number * 10_000_000, image));
            let pump = (plant.inputs().level_um < 1_000_000) as u8;
            plant.apply(&ActuatorCommand {
                flags: pump * flag::PUMP_RUN,
                pump_speed_permille: 800,
                ..ActuatorCommand::default()
            });
            plant.advance(10);
        }
        (params, seen)
    }

    #[test]
    fn reference_run_matches_a_pairs_outputs_and_finds_a_lost_and_a_changed_one() {
        let (params, seen) = seen_of_a_pair(1000, |_, _, _| true);
        let r = reference_run(&params, &seen, &[], 10);
        let a = &r.analysis;
        assert_eq!((r.frames, r.frames_missing), (a.frames, 0));
        assert!(a.outputs_expected >= 100, "{a:?}");
        assert_eq!(a.outputs_delivered, a.outputs_expected);
        assert_eq!((a.outputs_lost, a.content_mismatches, a.outputs_unexpected), (0, 0, 0));
        // One output never delivered, one delivered with another value.
        // The first output from frame 200 on never delivered, the first from 300 on
        // delivered with another value.
        let (mut dropped, mut changed) = (None, None);
        let (params, seen) = seen_of_a_pair(1000, |frame, index, payload| {
            if frame >= 200 && dropped.is_none() {
                dropped = Some((frame, index as u8));
                return false;
            }
            if frame >= 300 && changed.is_none() {
                changed = Some((frame, index as u8));
                *payload.last_mut().unwrap() ^= 1;
            }
            true
        });
        let a = reference_run(&params, &seen, &[], 10).analysis;
        assert_eq!((a.outputs_lost, a.content_mismatches), (1, 1), "{a:?}");
        assert_eq!(
            (Some(a.lost_examples[0]), Some(a.mismatch_examples[0])),
            (dropped, changed)
        );
    }

    #[test]
    fn reference_run_stops_before_an_image_it_did_not_record() {
        let (params, mut seen) = seen_of_a_pair(500, |_, _, _| true);
        seen.images.remove(&250);
        let r = reference_run(&params, &seen, &[], 10);
        assert_eq!((r.frames, r.frames_missing), (249, 1));
        assert_eq!(r.analysis.outputs_lost, 0, "outputs past the gap are not compared");
    }

    #[test]
    fn device_ramp_times_poll_to_echo() {
        let mut device = DeviceState::new(ModelKind::Ramp, &PlantParams::default(), &[]);
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
