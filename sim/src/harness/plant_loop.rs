//! The plant side: the tank model, the I/O source and the reference run.
//!
//! One thread paces the cycle. Each cycle it lets the plant model advance by one cycle,
//! reads its sensors into the tank program's input payload, sends frame `n` to every
//! node (one copy each, `docs/PROTOCOL.md`), and runs the **reference**: the same control
//! program (`TankApp`, same parameters) in-process on the same frame, whose outputs are
//! what the actuators should receive — so that lost and duplicated outputs are measured
//! against what the program really produces, not assumed. The loop closes through the
//! sink: each actuator command the gateway delivers is applied to the plant model, which
//! changes the sensor values of the next frames.
//!
//! The operator panel is scripted by frame number ([`Operator`]): setpoint steps and
//! presses of the alarm-acknowledge button, so the run has transients and alarm events.
#![allow(clippy::disallowed_methods)]

use super::plot::Sample;
use super::sink::{lock, CommandHook};
use super::{HarnessError, RunClock};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use twinloop::app::{App, Frame, Outbox};
use twinloop::digest::fnv64;
use twinloop::io_protocol;
use twinloop_demo::layout::{ActuatorCommand, OutputMessage};
use twinloop_demo::plant::{Plant, PlantParams};
use twinloop_demo::{TankApp, TankParams};

/// Frames the source may fall behind its schedule before it gives up catching up (a
/// stalled host): it then resumes the cycle from now rather than send a burst.
const BEHIND_CYCLES_MAX: u32 = 5;
/// Plot samples kept; beyond, every other one is dropped and the stride doubles.
pub const SAMPLES_MAX: usize = 20_000;

/// The scripted operator panel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Operator {
    /// From frame `.0` on, the panel asks for setpoint `.1` (µm), in frame order.
    pub setpoints: Vec<(u64, u32)>,
    /// The acknowledge button is pressed every this many frames (0: never)…
    pub ack_every_frames: u64,
    /// …for this many frames.
    pub ack_frames: u64,
}

impl Operator {
    /// Setpoint steps at 30 % (1.3 m) and 65 % (0.8 m) of `frames`, and the acknowledge
    /// button pressed for 30 ms every 3 s.
    pub fn scripted(cycle_ms: u32, frames: u64) -> Operator {
        let per_s = 1000 / u64::from(cycle_ms.max(1));
        Operator {
            setpoints: vec![(frames * 3 / 10, 1_300_000), (frames * 65 / 100, 800_000)],
            ack_every_frames: (3 * per_s).max(10),
            ack_frames: (30 / u64::from(cycle_ms.max(1))).max(1),
        }
    }

    /// No setpoint from the panel; the acknowledge button pressed for 30 ms every 3 s
    /// (alarm events: frames with several outputs).
    pub fn acks_only(cycle_ms: u32) -> Operator {
        Operator {
            setpoints: Vec::new(),
            ..Operator::scripted(cycle_ms, 0)
        }
    }

    /// The panel's setpoint at `frame` (0: none asked yet).
    pub fn setpoint_at(&self, frame: u64) -> u32 {
        self.setpoints
            .iter()
            .take_while(|(from, _)| *from <= frame)
            .last()
            .map_or(0, |(_, sp)| *sp)
    }

    /// Whether the acknowledge button is pressed at `frame`.
    pub fn ack_at(&self, frame: u64) -> bool {
        self.ack_every_frames > 0 && frame % self.ack_every_frames < self.ack_frames
    }
}

/// The plant loop's settings.
#[derive(Debug, Clone)]
pub struct PlantConfig {
    /// The control program's parameters (both nodes and the reference); the source's
    /// cycle is theirs (`cycle_ms` or `cycle_us`, [`TankParams::cycle_us`]).
    pub params: TankParams,
    /// The tank model.
    pub plant: PlantParams,
    /// Every node's `frames.bind`.
    pub targets: Vec<SocketAddr>,
    /// The operator panel.
    pub operator: Operator,
}

/// Every frame sent, and the reference's outputs for it. Frame `n` is at index `n - 1`.
#[derive(Debug, Clone, Default)]
pub struct FrameLog {
    /// When frame `n` was sent, ns since the run began.
    pub sent_ns: Vec<u64>,
    /// Index in `hashes` of frame `n`'s first reference output.
    pub outputs_start: Vec<u32>,
    /// The reference outputs' payload hashes (FNV-1a), frame after frame, index order.
    pub hashes: Vec<u64>,
    /// The reference's level outputs (`app.level_outputs`), in frame order:
    /// `(frame, index, key)`, when `levels_apart`. Every other output is an event.
    pub levels: Vec<(u64, u8, u16)>,
    /// Judge levels apart from events (`report::analyse`: a level never sent is no loss,
    /// the newest of each key counts). Off, every output is judged as an event: the
    /// Modbus run's reference, whose tag writes (levels) must each reach the device.
    pub levels_apart: bool,
}

impl FrameLog {
    /// Frames sent.
    pub fn frames(&self) -> u64 {
        self.sent_ns.len() as u64
    }

    /// When `frame` was sent.
    pub fn sent_ns(&self, frame: u64) -> Option<u64> {
        let i = usize::try_from(frame.checked_sub(1)?).ok()?;
        self.sent_ns.get(i).copied()
    }

    /// The reference's output hashes of `frame`, in index order (empty if not sent).
    pub fn expected(&self, frame: u64) -> &[u64] {
        let Some(i) = frame.checked_sub(1).and_then(|i| usize::try_from(i).ok()) else {
            return &[];
        };
        let Some(&start) = self.outputs_start.get(i) else {
            return &[];
        };
        let end = self.outputs_start.get(i + 1).map_or(self.hashes.len(), |&e| e as usize);
        &self.hashes[start as usize..end]
    }

    /// Records frame `number` (the next one) with its reference outputs.
    pub fn push(&mut self, number: u64, sent_ns: u64, outputs: &Outbox) {
        debug_assert_eq!(number, self.frames() + 1, "frames are recorded in order");
        self.sent_ns.push(sent_ns);
        self.outputs_start.push(self.hashes.len() as u32);
        self.hashes.extend(outputs.as_slice().iter().map(|o| fnv64(o)));
        for (index, kind) in outputs.kinds().iter().enumerate().filter(|_| self.levels_apart) {
            if let Some(key) = kind.level_key() {
                // At most 16 outputs a frame: the index fits.
                self.levels.push((number, index as u8, key));
            }
        }
    }

    /// True when output `(frame, index)` of the reference is a level.
    pub fn is_level(&self, frame: u64, index: u8) -> bool {
        let at = self.levels.partition_point(|&(f, i, _)| (f, i) < (frame, index));
        self.levels.get(at).is_some_and(|&(f, i, _)| (f, i) == (frame, index))
    }
}

/// Plot samples, thinned to at most [`SAMPLES_MAX`].
#[derive(Debug, Clone, Default)]
pub struct Samples {
    /// The samples kept.
    pub points: Vec<Sample>,
    stride: u64,
    seen: u64,
}

impl Samples {
    /// Offers one sample; keeps every `stride`-th.
    pub fn push(&mut self, sample: Sample) {
        self.stride = self.stride.max(1);
        if self.seen % self.stride == 0 {
            self.points.push(sample);
            if self.points.len() >= SAMPLES_MAX {
                let kept: Vec<Sample> = self.points.iter().step_by(2).copied().collect();
                self.points = kept;
                self.stride *= 2;
            }
        }
        self.seen += 1;
    }
}

/// State shared between the source thread, the sink's command hook and the harness.
struct Shared {
    plant: Mutex<Plant>,
    frames: Mutex<FrameLog>,
    samples: Mutex<Samples>,
    sending: AtomicBool,
    /// Set by the source once it has seen `sending` off: nothing more will be sent.
    idle: AtomicBool,
    stop: AtomicBool,
    frames_sent: AtomicU64,
    /// The setpoint in force, from the last delivered command (µm).
    setpoint_um: AtomicU32,
    level_um: AtomicU32,
    commands_applied: AtomicU64,
}

/// The running plant loop. Dropping it stops the source.
pub struct PlantLoop {
    shared: Arc<Shared>,
    cycle_us: u32,
    thread: Option<JoinHandle<()>>,
}

impl PlantLoop {
    /// Starts the source thread (not sending until [`PlantLoop::set_sending`]).
    pub fn start(config: PlantConfig, clock: RunClock) -> Result<PlantLoop, HarnessError> {
        config
            .params
            .validate()
            .map_err(|e| HarnessError::Setup(format!("tank parameters: {e}")))?;
        let plant = Plant::new(config.plant.clone());
        let shared = Arc::new(Shared {
            level_um: AtomicU32::new(plant.level_um()),
            plant: Mutex::new(plant),
            frames: Mutex::new(FrameLog {
                levels_apart: true,
                ..FrameLog::default()
            }),
            samples: Mutex::new(Samples::default()),
            sending: AtomicBool::new(false),
            idle: AtomicBool::new(true),
            stop: AtomicBool::new(false),
            frames_sent: AtomicU64::new(0),
            setpoint_um: AtomicU32::new(config.params.setpoint_um),
            commands_applied: AtomicU64::new(0),
        });
        let socket = UdpSocket::bind("127.0.0.1:0").map_err(|e| HarnessError::io("bind the I/O source", e))?;
        let cycle_us = config.params.cycle_us().max(1);
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("io-source".into())
                .spawn(move || source_loop(&config, &shared, &socket, clock))
                .map_err(|e| HarnessError::io("start the I/O source", e))?
        };
        Ok(PlantLoop {
            shared,
            cycle_us,
            thread: Some(thread),
        })
    }

    /// The hook that applies delivered commands to the plant (give it to the sink).
    pub fn command_hook(&self) -> CommandHook {
        let shared = self.shared.clone();
        Box::new(move |payload: &[u8]| {
            if let Ok(OutputMessage::Command(command)) = OutputMessage::decode(payload) {
                apply(&shared, &command);
            }
        })
    }

    /// Starts or stops the frames. Stopping waits (bounded) until the source has seen
    /// it, so that the number returned by [`PlantLoop::frames_sent`] is final.
    pub fn set_sending(&self, on: bool) -> Result<(), HarnessError> {
        self.shared.sending.store(on, Ordering::SeqCst);
        if on {
            return Ok(());
        }
        let limit = Duration::from_micros(u64::from(self.cycle_us) * 4) + Duration::from_secs(1);
        super::wait_until(limit, Duration::from_millis(1), "the I/O source to stop", || {
            self.shared.idle.load(Ordering::SeqCst)
        })
    }

    /// Frames sent so far (the number of the last one).
    pub fn frames_sent(&self) -> u64 {
        self.shared.frames_sent.load(Ordering::SeqCst)
    }

    /// The tank level now, µm.
    pub fn level_um(&self) -> u32 {
        self.shared.level_um.load(Ordering::Relaxed)
    }

    /// The setpoint of the last delivered command, µm.
    pub fn setpoint_um(&self) -> u32 {
        self.shared.setpoint_um.load(Ordering::Relaxed)
    }

    /// Commands applied to the plant.
    pub fn commands_applied(&self) -> u64 {
        self.shared.commands_applied.load(Ordering::Relaxed)
    }

    /// Runs `f` on the frame log under its lock.
    pub fn with_frames<T>(&self, f: impl FnOnce(&FrameLog) -> T) -> T {
        f(&lock(&self.shared.frames))
    }

    /// A copy of the plot samples.
    pub fn samples(&self) -> Vec<Sample> {
        lock(&self.shared.samples).points.clone()
    }

    /// When `frame` was sent, ns since the run began.
    pub fn sent_ns(&self, frame: u64) -> Option<u64> {
        lock(&self.shared.frames).sent_ns(frame)
    }
}

impl Drop for PlantLoop {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn apply(shared: &Shared, command: &ActuatorCommand) {
    lock(&shared.plant).apply(command);
    shared.setpoint_um.store(command.setpoint_um, Ordering::Relaxed);
    shared.commands_applied.fetch_add(1, Ordering::Relaxed);
}

fn source_loop(config: &PlantConfig, shared: &Shared, socket: &UdpSocket, clock: RunClock) {
    let cycle_us = config.params.cycle_us().max(1);
    let cycle = Duration::from_micros(u64::from(cycle_us));
    // A sleep ends up to the thread's timer slack (50 µs by default) late: a tenth of a
    // 10 kHz cycle each time. One microsecond keeps the pace of short cycles (the
    // catch-up below sends the frames of an oversleep, late but at the right count).
    #[cfg(target_os = "linux")]
    if cycle_us < 1000 {
        let _ = nix::sys::prctl::set_timerslack(1);
    }
    let mut reference = TankApp::new(config.params.clone());
    let mut outbox = Outbox::new();
    let mut datagram = [0u8; io_protocol::FRAME_DATAGRAM_MAX];
    let mut next_at = Instant::now();
    let mut number = 0u64;
    while !shared.stop.load(Ordering::SeqCst) {
        // Pacing the source is the one place a sleep belongs: it is the plant's cycle.
        let now = Instant::now();
        if now < next_at {
            std::thread::sleep(next_at - now);
        } else if now > next_at + cycle * BEHIND_CYCLES_MAX {
            next_at = now;
        }
        next_at += cycle;
        if !shared.sending.load(Ordering::SeqCst) {
            shared.idle.store(true, Ordering::SeqCst);
            continue;
        }
        shared.idle.store(false, Ordering::SeqCst);
        number += 1;
        let (payload, level_um) = {
            let mut plant = lock(&shared.plant);
            plant.advance_us(u64::from(cycle_us));
            plant.set_setpoint(config.operator.setpoint_at(number));
            plant.set_ack(config.operator.ack_at(number));
            (plant.inputs().encode(), plant.level_um())
        };
        let Ok(len) = io_protocol::encode_frame(number, &payload, &mut datagram) else {
            // The payload is the program's fixed 20 bytes: this cannot fail.
            continue;
        };
        let sent_ns = clock.now_ns();
        for target in &config.targets {
            // A node that is down refuses the datagram (ICMP): that is its problem.
            let _ = socket.send_to(&datagram[..len], target);
        }
        outbox.clear();
        reference.step(
            Frame {
                number,
                payload: &payload,
            },
            &mut outbox,
        );
        lock(&shared.frames).push(number, sent_ns, &outbox);
        shared.frames_sent.store(number, Ordering::SeqCst);
        shared.level_um.store(level_um, Ordering::Relaxed);
        lock(&shared.samples).push(Sample {
            t_ms: sent_ns as f64 / 1e6,
            pv: f64::from(level_um) / 1000.0,
            sp: f64::from(shared.setpoint_um.load(Ordering::Relaxed)) / 1000.0,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_script_steps_setpoint_and_presses_ack() {
        let op = Operator::scripted(10, 1000);
        assert_eq!(op.setpoint_at(1), 0);
        assert_eq!(op.setpoint_at(300), 1_300_000);
        assert_eq!(op.setpoint_at(700), 800_000);
        assert!(op.ack_at(300) && op.ack_at(302) && !op.ack_at(303));
    }

    #[test]
    fn frame_log_expected_outputs_by_frame() {
        let mut log = FrameLog::default();
        let mut outbox = Outbox::new();
        outbox.push(b"a").unwrap();
        log.push(1, 10, &outbox);
        outbox.push(b"b").unwrap();
        log.push(2, 20, &outbox);
        assert_eq!(log.expected(1), &[fnv64(b"a")]);
        assert_eq!(log.expected(2), &[fnv64(b"a"), fnv64(b"b")]);
        assert!(log.expected(0).is_empty() && log.expected(3).is_empty());
        assert_eq!((log.sent_ns(2), log.sent_ns(3), log.frames()), (Some(20), None, 2));
    }

    #[test]
    fn samples_are_thinned_not_unbounded() {
        let mut s = Samples::default();
        for i in 0..(SAMPLES_MAX as u64 * 5) {
            s.push(Sample {
                t_ms: i as f64,
                pv: 0.0,
                sp: 0.0,
            });
        }
        assert!(s.points.len() < SAMPLES_MAX);
        assert!(s.points.len() > SAMPLES_MAX / 4);
    }

    #[test]
    fn plant_loop_sends_numbered_frames_and_runs_the_reference() {
        let node = UdpSocket::bind("127.0.0.1:0").unwrap();
        node.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let config = PlantConfig {
            params: TankParams {
                cycle_ms: Some(1),
                ..TankParams::default()
            },
            plant: PlantParams::default(),
            targets: vec![node.local_addr().unwrap()],
            operator: Operator::default(),
        };
        let plant = PlantLoop::start(config, RunClock::start()).unwrap();
        plant.set_sending(true).unwrap();
        let mut buf = [0u8; 600];
        for expected in 1..=5u64 {
            let (len, _) = node.recv_from(&mut buf).unwrap();
            let frame = io_protocol::decode_frame(&buf[..len]).unwrap();
            assert_eq!(frame.number, expected);
        }
        plant.set_sending(false).unwrap();
        let sent = plant.frames_sent();
        assert!(sent >= 5);
        plant.with_frames(|log| {
            assert_eq!(log.frames(), sent);
            assert!(!log.expected(1).is_empty(), "every frame has a command");
        });
    }
}
