//! The gateway's event loop: one mio poll over one TCP connection per device and the UDP
//! socket the nodes' outputs arrive on. Each cycle: poll every device (pipelined), wait
//! for the answers until each device's timeout, send the input image as the numbered
//! frame to every node; between cycles, offer every output to the reference gateway
//! (`twinloop::gateway::Gateway`) and write the accepted tag writes to the devices.
//!
//! Bounded work per wake-up: at most [`READ_BYTES_PER_WAKE`] bytes per connection and
//! [`OUTPUTS_PER_WAKE`] output datagrams; what is left is read at the next wake-up,
//! which then comes at once. docs/GATEWAY.md describes each failure, its log line, its
//! counter and its effect.

use crate::config::Checked;
use crate::modbus::{self, Answer, InFlight, Purpose, ADU_BYTES_MAX, RX_BYTES_MAX, TX_BYTES_MAX};
use mio::net::{TcpStream, UdpSocket};
use mio::{Events, Interest, Poll, Token};
use serde_json::json;
use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use twinloop::gateway::{Decision, Gateway};
use twinloop::image::{Direction, PolledValues, Quality, Table, TagMap, TagOutput, TagOutputKind, Value};
use twinloop::io::clock::Clock;
use twinloop::io::log;
use twinloop::io_protocol;

/// Node addresses the gateway acks to (a group has at most 4 nodes).
const ACK_SOURCES_MAX: usize = 8;

/// Bytes read from one device connection per wake-up.
pub const READ_BYTES_PER_WAKE: usize = 8 * ADU_BYTES_MAX;
/// Output datagrams read per wake-up.
pub const OUTPUTS_PER_WAKE: usize = 256;
/// How often the status line is printed.
pub const STATUS_INTERVAL_MS: u64 = 1000;
/// Accepted writes of event tags waiting for their device, per device; beyond, a write
/// is dropped (counted in `event_writes_dropped`, logged once until one fits again).
pub const EVENT_WRITES_QUEUED_MAX: usize = 256;

const OUTPUTS: Token = Token(0);
const DEVICE_TOKEN_BASE: usize = 1;

/// One device's counters (docs/GATEWAY.md, "Status").
#[derive(Debug, Default, Clone, Copy)]
pub struct DeviceCounters {
    /// Cycles all of whose polls were answered.
    pub cycles_ok: u64,
    /// Cycles with a poll not answered in time (quality timeout).
    pub timeouts: u64,
    /// Cycles with an exception answer (quality exception).
    pub exceptions: u64,
    /// The last exception code.
    pub last_exception: u8,
    /// Cycles the device was not connected (quality disconnected).
    pub cycles_disconnected: u64,
    /// Connections lost.
    pub disconnects: u64,
    /// Connections made.
    pub connects: u64,
    /// Connection attempts that failed.
    pub connect_failures: u64,
    /// Answers to polls of a cycle already decided (a device slower than its timeout).
    pub late_answers: u64,
    /// Answers that did not match their request, or a broken stream (the connection is
    /// dropped).
    pub protocol_errors: u64,
    /// Tag writes the device confirmed.
    pub writes_ok: u64,
    /// Tag writes the device refused with an exception (not retried).
    pub writes_failed: u64,
}

enum Link {
    /// Not connected; the next attempt at `retry_ms`.
    Down { retry_ms: u64 },
    /// A connect in progress since `since_ms`.
    Connecting { stream: TcpStream, since_ms: u64 },
    /// Connected.
    Up { stream: TcpStream },
}

struct Device {
    link: Link,
    rx: Vec<u8>,
    tx: Vec<u8>,
    /// Requests not sent yet (the pipeline is full), with their cycle.
    waiting: VecDeque<(Purpose, u64)>,
    in_flight: Vec<InFlight>,
    next_transaction: u16,
    backoff_ms: u64,
    /// Per polled block (in the map's block order): the answer's data bytes.
    data: Vec<Vec<u8>>,
    quality: Quality,
    polls_waiting: usize,
    deadline_ms: u64,
    decided: bool,
    /// The quality last logged: a line is written when it changes (once per episode).
    reported: Quality,
    /// The current failure to connect was logged.
    down_logged: bool,
    more: bool,
    counters: DeviceCounters,
}

/// Everything the status line shows besides devices.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counters {
    /// Frames sent (to every node).
    pub frames: u64,
    /// Cycles that started later than one cycle after the one before.
    pub overruns: u64,
    /// Frame sends that failed (per node).
    pub frame_send_errors: u64,
    /// Output datagrams that do not decode (docs/PROTOCOL.md).
    pub outputs_malformed: u64,
    /// Accepted outputs whose payload is not a tag write or heartbeat of this map.
    pub output_payload_errors: u64,
    /// Accepted tag writes.
    pub tag_writes: u64,
    /// Accepted heartbeats.
    pub heartbeats: u64,
    /// Times the nodes fell silent (the lost-control alarm).
    pub silences: u64,
    /// Safe values set on out tags by the alarm.
    pub safe_writes: u64,
    /// Accepted writes of event tags dropped: their device's queue was full.
    pub event_writes_dropped: u64,
}

/// The gateway: its state between wake-ups.
pub struct Runner {
    map: TagMap,
    settings: crate::config::GatewaySettings,
    devices: Vec<Device>,
    gateway: Gateway,
    poll: Poll,
    outputs: UdpSocket,
    frames_socket: std::net::UdpSocket,
    clock: Clock,
    session: u16,
    frame: u64,
    cycle: u64,
    next_cycle_ms: u64,
    frame_sent: bool,
    /// Per tag: the value the nodes asked for, and the value the device confirmed.
    desired: Vec<Option<Value>>,
    written: Vec<Option<Value>>,
    /// Per device: its out tags.
    out_tags: Vec<Vec<usize>>,
    /// Per device: accepted writes of its event tags, in order, the first one written
    /// (or about to be) and removed once the device answered it. An event tag's every
    /// write matters: none collapses into a newer one (docs/GATEWAY.md).
    events: Vec<VecDeque<(usize, Value)>>,
    /// The queue of an event tag's device was full (logged once until a write fits).
    event_drop_logged: bool,
    last_output_ms: u64,
    silent: bool,
    outputs_more: bool,
    /// With `acks`: the addresses outputs came from (at most `ACK_SOURCES_MAX`), by the
    /// number the gateway's ack queue knows them by.
    ack_sources: Vec<std::net::SocketAddr>,
    /// With `ack_key_file`: the key acks are tagged with.
    ack_key: Option<io_protocol::AckKey>,
    payload_error_logged: bool,
    malformed_logged: bool,
    send_error_logged: bool,
    counters: Counters,
    /// READY, WATCHDOG, STATUS and STOPPING to systemd (`twinloop::io::systemd`): READY
    /// at the first frame sent, pings from this loop.
    notifier: twinloop::io::systemd::Notifier,
    json: bool,
    next_status_ms: u64,
    scratch: Vec<u8>,
}

/// The ack key in the file at `path`, read as the nodes read theirs
/// (`outputs.ack_key_file`, `twinloop::io::preflight::read_key_file`): a regular file
/// private to its owner, whitespace around the secret trimmed. Read raw, as it was before
/// 2026-11-26 (branch a3), the newline `echo secret > file` or an editor leaves made the
/// gateway's key differ from its nodes', and the nodes refused every ack.
pub fn read_ack_key(path: &std::path::Path) -> Result<io_protocol::AckKey, String> {
    let secret = twinloop::io::preflight::read_key_file("gateway.ack_key_file", path).map_err(|e| e.to_string())?;
    Ok(io_protocol::AckKey::derive(&secret))
}

impl Runner {
    /// Binds the outputs socket and sets everything up; connects nothing yet.
    pub fn new(checked: Checked, json: bool) -> Result<Runner, String> {
        let Checked { settings, map, .. } = checked;
        let poll = Poll::new().map_err(|e| format!("cannot create the event loop: {e}"))?;
        let mut outputs = UdpSocket::bind(settings.outputs_bind)
            .map_err(|e| format!("cannot bind gateway.outputs_bind {}: {e}", settings.outputs_bind))?;
        poll.registry()
            .register(&mut outputs, OUTPUTS, Interest::READABLE)
            .map_err(|e| format!("cannot register the outputs socket: {e}"))?;
        let unspecified = if settings.nodes.iter().all(|a| a.is_ipv6()) {
            "[::]:0"
        } else {
            "0.0.0.0:0"
        };
        let frames_socket =
            std::net::UdpSocket::bind(unspecified).map_err(|e| format!("cannot bind the frames socket: {e}"))?;
        frames_socket
            .set_nonblocking(true)
            .map_err(|e| format!("cannot set the frames socket non-blocking: {e}"))?;
        let lease = (settings.lease_ms > 0).then(|| Duration::from_millis(settings.lease_ms));
        let mut gateway = Gateway::new(settings.window_frames, lease).map_err(|e| e.to_string())?;
        // Higher at every start: the nodes refuse acks of an older session.
        let ack_session = twinloop::io::clock::unix_ns();
        gateway.set_ack_session(ack_session);
        let ack_key = match &settings.ack_key_file {
            Some(path) => Some(read_ack_key(path)?),
            None => None,
        };
        let clock = Clock::start();
        let devices = map
            .devices()
            .iter()
            .map(|d| Device {
                link: Link::Down { retry_ms: 0 },
                rx: Vec::with_capacity(RX_BYTES_MAX),
                tx: Vec::with_capacity(4 * ADU_BYTES_MAX),
                waiting: VecDeque::new(),
                in_flight: Vec::new(),
                next_transaction: 1,
                backoff_ms: settings.reconnect_min_ms,
                data: d
                    .blocks
                    .iter()
                    .map(|(table, b)| {
                        let count = usize::from(b.count);
                        vec![0; if table.is_bits() { count.div_ceil(8) } else { count * 2 }]
                    })
                    .collect(),
                quality: Quality::Disconnected,
                polls_waiting: 0,
                deadline_ms: 0,
                decided: true,
                reported: Quality::Ok,
                down_logged: false,
                more: false,
                counters: DeviceCounters::default(),
            })
            .collect();
        let mut out_tags = vec![Vec::new(); map.devices().len()];
        for (i, t) in map.tags().iter().enumerate() {
            if t.direction == Direction::Out {
                out_tags[t.device].push(i);
            }
        }
        // A new session at every start, so the nodes tell a restart from stale frames.
        let nanos = twinloop::io::clock::unix_ns() ^ u64::from(std::process::id()).rotate_left(32);
        let session = (twinloop::digest::fnv64(&nanos.to_le_bytes()) as u16).max(1);
        let tags = map.tags().len();
        let notifier = twinloop::io::systemd::Notifier::from_env(clock.now());
        Ok(Runner {
            map,
            devices,
            gateway,
            poll,
            outputs,
            frames_socket,
            clock,
            notifier,
            session,
            frame: 0,
            cycle: 0,
            next_cycle_ms: 0,
            frame_sent: true,
            desired: vec![None; tags],
            written: vec![None; tags],
            events: vec![VecDeque::new(); out_tags.len()],
            event_drop_logged: false,
            out_tags,
            last_output_ms: 0,
            silent: false,
            outputs_more: false,
            ack_sources: Vec::new(),
            ack_key,
            payload_error_logged: false,
            malformed_logged: false,
            send_error_logged: false,
            counters: Counters::default(),
            json,
            next_status_ms: STATUS_INTERVAL_MS,
            scratch: Vec::with_capacity(ADU_BYTES_MAX),
            settings,
        })
    }

    fn now_ms(&self) -> u64 {
        self.clock.now().as_nanos() / 1_000_000
    }

    /// Runs until `stop` is set.
    pub fn run(&mut self, stop: &Arc<AtomicBool>) -> Result<(), String> {
        log::info(format_args!(
            "gateway: {} devices, {} tags, image {} bytes (layout {:#010x}), cycle {} ms, frames to {:?} (session {}), outputs on {}",
            self.map.devices().len(),
            self.map.tags().len(),
            self.map.image_len(),
            self.map.layout_id(),
            self.settings.cycle_ms,
            self.settings.nodes,
            self.session,
            self.settings.outputs_bind
        ));
        let mut events = Events::with_capacity(64);
        self.last_output_ms = self.now_ms();
        while !stop.load(Ordering::SeqCst) {
            let timeout = self.timeout();
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != ErrorKind::Interrupted {
                    return Err(format!("the event loop failed: {e}"));
                }
            }
            for event in events.iter() {
                match event.token() {
                    OUTPUTS => self.outputs_more = true,
                    Token(t) => {
                        if let Some(d) = t.checked_sub(DEVICE_TOKEN_BASE) {
                            if d < self.devices.len() {
                                self.devices[d].more = true;
                            }
                        }
                    }
                }
            }
            self.step();
        }
        self.notifier.stopping("stop requested");
        Ok(())
    }

    /// One wake-up: connections, answers, outputs, deadlines, the cycle, the status.
    fn step(&mut self) {
        let now = self.now_ms();
        for d in 0..self.devices.len() {
            self.service_device(d, now);
        }
        if self.outputs_more {
            self.read_outputs();
        }
        let now = self.now_ms();
        self.check_silence(now);
        for d in 0..self.devices.len() {
            let dev = &mut self.devices[d];
            if !dev.decided && now >= dev.deadline_ms {
                dev.quality = Quality::Timeout;
                dev.decided = true;
            }
        }
        if !self.frame_sent && self.devices.iter().all(|d| d.decided) {
            self.send_frame();
        }
        if now >= self.next_cycle_ms {
            if !self.frame_sent {
                // Every deadline is within the cycle; a late wake-up decides them here.
                for dev in &mut self.devices {
                    if !dev.decided {
                        dev.quality = Quality::Timeout;
                        dev.decided = true;
                    }
                }
                self.send_frame();
            }
            self.start_cycle(now);
        }
        if now >= self.next_status_ms {
            self.print_status(now);
            self.next_status_ms = now.saturating_add(STATUS_INTERVAL_MS);
        }
        if self.notifier.enabled() {
            self.notify();
        }
    }

    /// systemd: READY once frames flow, STATUS when the devices' standing or the nodes'
    /// silence changes, WATCHDOG from this loop.
    fn notify(&mut self) {
        let ok = self.devices.iter().filter(|d| d.reported == Quality::Ok).count();
        let key = (ok as u64) << 1 | u64::from(self.silent);
        let (devices, frames, silent, cycle_ms) = (
            self.devices.len(),
            self.counters.frames,
            self.silent,
            self.settings.cycle_ms,
        );
        self.notifier.turn_with(self.clock.now(), frames > 0, key, || {
            format!(
                "cycle {cycle_ms} ms, {ok} of {devices} devices answering, {frames} frames sent, {}",
                if silent {
                    "nodes silent: control lost"
                } else {
                    "nodes sending"
                }
            )
        });
    }

    /// The time to the next thing to do.
    fn timeout(&self) -> Duration {
        let now = self.now_ms();
        if self.outputs_more || self.devices.iter().any(|d| d.more) {
            return Duration::ZERO;
        }
        let mut next = self.next_cycle_ms.min(self.next_status_ms);
        if let Some(ping) = self.notifier.next_due() {
            next = next.min(ping.as_nanos() / 1_000_000);
        }
        if !self.silent {
            next = next.min(
                self.last_output_ms
                    .saturating_add(self.settings.outputs_silence_ms)
                    .saturating_add(1),
            );
        }
        let stall = self.settings.device_stall_ms;
        for d in &self.devices {
            if !d.decided {
                next = next.min(d.deadline_ms);
            }
            match &d.link {
                Link::Down { retry_ms } => next = next.min(*retry_ms),
                Link::Connecting { since_ms, .. } => next = next.min(since_ms.saturating_add(stall)),
                Link::Up { .. } => {
                    if let Some(oldest) = d.in_flight.iter().map(|f| f.sent_ms).min() {
                        next = next.min(oldest.saturating_add(stall));
                    }
                }
            }
        }
        Duration::from_millis(next.saturating_sub(now))
    }

    fn start_cycle(&mut self, now: u64) {
        self.cycle += 1;
        self.frame_sent = false;
        let cycle_ms = self.settings.cycle_ms;
        self.next_cycle_ms = if self.cycle == 1 {
            now.saturating_add(cycle_ms)
        } else {
            self.next_cycle_ms.saturating_add(cycle_ms)
        };
        if self.next_cycle_ms <= now {
            // The loop fell a whole cycle behind: start afresh from now, counted.
            self.counters.overruns += 1;
            self.next_cycle_ms = now.saturating_add(cycle_ms);
        }
        for d in 0..self.devices.len() {
            self.poll_device(d, now);
        }
    }

    /// Sends this cycle's polls, or decides the device's quality when it cannot be polled.
    fn poll_device(&mut self, d: usize, now: u64) {
        let spec = &self.map.devices()[d];
        let dev = &mut self.devices[d];
        dev.decided = false;
        dev.quality = Quality::Ok;
        dev.polls_waiting = 0;
        dev.deadline_ms = now.saturating_add(spec.timeout_ms);
        if !matches!(dev.link, Link::Up { .. }) {
            dev.quality = Quality::Disconnected;
            dev.decided = true;
            return;
        }
        if dev.in_flight.iter().any(|f| matches!(f.purpose, Purpose::Poll { .. })) {
            // Still answering an earlier cycle: no new polls pile up behind them.
            dev.quality = Quality::Timeout;
            dev.decided = true;
            return;
        }
        // Polls of an earlier cycle never sent are stale: this cycle's replace them.
        dev.waiting.retain(|(p, _)| !matches!(p, Purpose::Poll { .. }));
        for block in 0..spec.blocks.len() {
            dev.waiting.push_back((Purpose::Poll { block }, self.cycle));
            dev.polls_waiting += 1;
        }
        dev.decided = dev.polls_waiting == 0;
        self.send_waiting(d, now);
    }

    /// Sends waiting requests while the device's pipeline has room.
    fn send_waiting(&mut self, d: usize, now: u64) {
        let spec = &self.map.devices()[d];
        let dev = &mut self.devices[d];
        if !matches!(dev.link, Link::Up { .. }) {
            return;
        }
        let mut sent = false;
        while dev.in_flight.len() < usize::from(spec.pipeline_depth) {
            let Some((purpose, cycle)) = dev.waiting.pop_front() else {
                break;
            };
            let transaction = dev.next_transaction;
            dev.next_transaction = dev.next_transaction.wrapping_add(1);
            let request = match purpose {
                Purpose::Poll { block } => spec.blocks.get(block).and_then(|&(table, b)| {
                    modbus::poll_request(spec.unit_id, transaction, table, b.start, b.count, &mut self.scratch)
                }),
                Purpose::Write { tag, value } => self.map.tags().get(tag).and_then(|t| {
                    modbus::write_request(
                        spec.unit_id,
                        transaction,
                        t.table,
                        t.address,
                        value,
                        t.word_order,
                        &mut self.scratch,
                    )
                }),
            };
            let Some(request) = request else { continue };
            dev.tx.extend_from_slice(&self.scratch);
            dev.in_flight.push(InFlight {
                request,
                purpose,
                cycle,
                sent_ms: now,
            });
            sent = true;
        }
        if sent {
            self.flush(d, now);
        }
    }

    /// Connects, flushes, reads and times out one device.
    fn service_device(&mut self, d: usize, now: u64) {
        let stall = self.settings.device_stall_ms;
        let addr = self.map.devices()[d].address;
        let more = std::mem::take(&mut self.devices[d].more);
        match &mut self.devices[d].link {
            Link::Down { retry_ms } => {
                if now < *retry_ms {
                    return;
                }
                match TcpStream::connect(addr) {
                    Ok(mut stream) => {
                        let token = Token(DEVICE_TOKEN_BASE + d);
                        let interest = Interest::READABLE | Interest::WRITABLE;
                        if let Err(e) = self.poll.registry().register(&mut stream, token, interest) {
                            self.connect_failed(d, now, &e.to_string());
                            return;
                        }
                        self.devices[d].link = Link::Connecting { stream, since_ms: now };
                    }
                    Err(e) => self.connect_failed(d, now, &e.to_string()),
                }
            }
            Link::Connecting { stream, since_ms } => {
                let since = *since_ms;
                let state = match stream.take_error() {
                    Ok(Some(e)) | Err(e) => Err(e.to_string()),
                    Ok(None) => match stream.peer_addr() {
                        Ok(_) => Ok(true),
                        Err(e) if e.kind() == ErrorKind::NotConnected => Ok(false),
                        Err(e) => Err(e.to_string()),
                    },
                };
                match state {
                    Err(reason) => self.connect_failed(d, now, &reason),
                    Ok(true) => {
                        let Link::Connecting { stream, .. } =
                            std::mem::replace(&mut self.devices[d].link, Link::Down { retry_ms: 0 })
                        else {
                            return;
                        };
                        let _ = stream.set_nodelay(true);
                        self.connected(d, stream);
                        self.read_device(d, now);
                        self.flush(d, now);
                    }
                    Ok(false) => {
                        if now.saturating_sub(since) >= stall {
                            self.connect_failed(d, now, &format!("no connection within {stall} ms"));
                        }
                    }
                }
            }
            Link::Up { .. } => {
                if more {
                    self.read_device(d, now);
                    self.send_waiting(d, now);
                    self.flush(d, now);
                }
                let dev = &self.devices[d];
                if matches!(dev.link, Link::Up { .. })
                    && dev.in_flight.iter().any(|f| now.saturating_sub(f.sent_ms) >= stall)
                {
                    self.drop_link(
                        d,
                        now,
                        &format!("an answer outstanding for {stall} ms (gateway.device_stall_ms)"),
                    );
                }
            }
        }
    }

    fn connected(&mut self, d: usize, stream: TcpStream) {
        let spec = &self.map.devices()[d];
        let dev = &mut self.devices[d];
        dev.link = Link::Up { stream };
        dev.counters.connects += 1;
        // The back-off and the episode end with the first valid answer, not here: a
        // device that accepts and then talks nonsense is retried at the back-off's pace
        // and logged once.
        let level = if dev.down_logged {
            log::Level::Debug
        } else {
            log::Level::Info
        };
        log::write(
            level,
            format_args!("device {}: connected to {}", spec.name, spec.address),
        );
        self.pump_writes(d);
    }

    fn connect_failed(&mut self, d: usize, now: u64, reason: &str) {
        let spec = &self.map.devices()[d];
        let dev = &mut self.devices[d];
        if let Link::Connecting { stream, .. } = &mut dev.link {
            let _ = self.poll.registry().deregister(stream);
        }
        dev.counters.connect_failures += 1;
        if !dev.down_logged {
            dev.down_logged = true;
            log::warn(format_args!(
                "device {}: cannot connect to {}: {reason}; its tags are bad (disconnected), retrying with back-off up to {} ms",
                spec.name, spec.address, self.settings.reconnect_max_ms
            ));
        }
        dev.link = Link::Down {
            retry_ms: now.saturating_add(dev.backoff_ms),
        };
        dev.backoff_ms = dev.backoff_ms.saturating_mul(2).min(self.settings.reconnect_max_ms);
    }

    /// Ends a connection: the device's tags are bad until it is back, and writes in
    /// flight are sent again after the reconnect (the device may not have applied them).
    fn drop_link(&mut self, d: usize, now: u64, reason: &str) {
        let spec = &self.map.devices()[d];
        let dev = &mut self.devices[d];
        if let Link::Up { stream } | Link::Connecting { stream, .. } = &mut dev.link {
            let _ = self.poll.registry().deregister(stream);
        }
        dev.link = Link::Down {
            retry_ms: now.saturating_add(dev.backoff_ms),
        };
        dev.counters.disconnects += 1;
        dev.in_flight.clear();
        dev.waiting.clear();
        dev.rx.clear();
        dev.tx.clear();
        dev.more = false;
        if !dev.decided {
            dev.quality = Quality::Disconnected;
            dev.decided = true;
        }
        if !dev.down_logged {
            dev.down_logged = true;
            log::warn(format_args!(
                "device {}: connection lost: {reason}; its tags are bad (disconnected), reconnecting with back-off up to {} ms",
                spec.name, self.settings.reconnect_max_ms
            ));
        }
        dev.backoff_ms = dev.backoff_ms.saturating_mul(2).min(self.settings.reconnect_max_ms);
    }

    fn flush(&mut self, d: usize, now: u64) {
        let dev = &mut self.devices[d];
        let Link::Up { stream } = &mut dev.link else { return };
        let mut sent = 0;
        let mut failure = None;
        while sent < dev.tx.len() {
            match stream.write(&dev.tx[sent..]) {
                Ok(0) => {
                    failure = Some("the connection closed".to_string());
                    break;
                }
                Ok(n) => sent += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    failure = Some(e.to_string());
                    break;
                }
            }
        }
        dev.tx.drain(..sent);
        if failure.is_none() && dev.tx.len() > TX_BYTES_MAX {
            failure = Some(format!(
                "{} bytes of requests unsent (the device does not read)",
                dev.tx.len()
            ));
        }
        if let Some(reason) = failure {
            self.drop_link(d, now, &reason);
        }
    }

    fn read_device(&mut self, d: usize, now: u64) {
        let mut budget = READ_BYTES_PER_WAKE;
        let mut buf = [0u8; RX_BYTES_MAX];
        loop {
            let dev = &mut self.devices[d];
            let Link::Up { stream } = &mut dev.link else { return };
            // take_answers leaves less than one ADU in rx, so there is always room.
            let room = RX_BYTES_MAX.saturating_sub(dev.rx.len()).min(budget);
            if room == 0 {
                // The budget is spent: read the rest at the next wake-up, at once.
                dev.more = true;
                return;
            }
            match stream.read(&mut buf[..room]) {
                Ok(0) => {
                    self.drop_link(d, now, "the device closed the connection");
                    return;
                }
                Ok(n) => {
                    budget -= n;
                    dev.rx.extend_from_slice(&buf[..n]);
                    if !self.take_answers(d, now) {
                        return;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    self.drop_link(d, now, &e.to_string());
                    return;
                }
            }
        }
    }

    /// Handles every complete answer in the receive buffer; `false` when the connection
    /// was dropped.
    fn take_answers(&mut self, d: usize, now: u64) -> bool {
        loop {
            let dev = &mut self.devices[d];
            let len = match modbus::next_adu(&dev.rx) {
                Ok(Some(len)) => len,
                Ok(None) => return true,
                Err(_) => {
                    dev.counters.protocol_errors += 1;
                    self.drop_link(d, now, "a stream that is not Modbus/TCP");
                    return false;
                }
            };
            let transaction = modbus::transaction_id(&dev.rx[..len]);
            let Some(at) = dev.in_flight.iter().position(|f| Some(f.request.tr_id) == transaction) else {
                dev.counters.protocol_errors += 1;
                self.drop_link(d, now, "an answer to no request");
                return false;
            };
            let flight = dev.in_flight.swap_remove(at);
            let current = flight.cycle == self.cycle && !dev.decided;
            let outcome = match modbus::answer(&flight.request, &dev.rx[..len]) {
                Err(_) => None,
                Ok(Answer::Data(data)) => {
                    if let (Purpose::Poll { block }, true) = (flight.purpose, current) {
                        if let Some(slot) = dev.data.get_mut(block).filter(|s| s.len() == data.len()) {
                            slot.copy_from_slice(data);
                        }
                    }
                    Some(Ok(()))
                }
                Ok(Answer::Written) => Some(Ok(())),
                Ok(Answer::Exception(code)) => Some(Err(code)),
            };
            let Some(outcome) = outcome else {
                dev.counters.protocol_errors += 1;
                self.drop_link(d, now, "an answer that does not match its request");
                return false;
            };
            dev.rx.drain(..len);
            self.on_answer(d, &flight, outcome);
        }
    }

    /// Accounts one answer (its data, if any, is already in place).
    fn on_answer(&mut self, d: usize, flight: &InFlight, answer: Result<(), u8>) {
        let cycle = self.cycle;
        let dev = &mut self.devices[d];
        // A valid answer: the connection works, the next loss is a new episode.
        dev.backoff_ms = self.settings.reconnect_min_ms;
        dev.down_logged = false;
        match flight.purpose {
            Purpose::Poll { .. } => {
                if flight.cycle != cycle || dev.decided {
                    dev.counters.late_answers += 1;
                    return;
                }
                if let Err(code) = answer {
                    if dev.quality.is_ok() {
                        // Codes outside 1..=0x7F do not fit the quality byte: 0x7F.
                        let code = if (1..=0x7F).contains(&code) { code } else { 0x7F };
                        dev.quality = Quality::Exception(code);
                        dev.counters.last_exception = code;
                    }
                }
                dev.polls_waiting = dev.polls_waiting.saturating_sub(1);
                if dev.polls_waiting == 0 {
                    dev.decided = true;
                }
            }
            Purpose::Write { tag, value } => {
                match answer {
                    Ok(_) => dev.counters.writes_ok += 1,
                    Err(code) => {
                        dev.counters.writes_failed += 1;
                        log::warn(format_args!(
                            "device {}: write of tag {} refused with exception {code}; not retried until the tag changes",
                            self.map.devices()[d].name,
                            self.map.tags()[tag].name
                        ));
                    }
                }
                // Done either way: a refused write is not retried until the tag changes.
                if self.is_event(tag) {
                    if self.events[d].front() == Some(&(tag, value)) {
                        self.events[d].pop_front();
                    }
                } else {
                    self.written[tag] = Some(value);
                }
                self.pump_writes(d);
            }
        }
    }

    /// Queues a write for each out tag of the device whose wanted value the device has
    /// not confirmed and that has no write queued or in flight.
    fn pump_writes(&mut self, d: usize) {
        let dev = &mut self.devices[d];
        if !matches!(dev.link, Link::Up { .. }) {
            return;
        }
        let is_write_of = |p: &Purpose, tag: usize| matches!(p, Purpose::Write { tag: t, .. } if *t == tag);
        // The device's event writes go one at a time, in order: the next once the device
        // answered the one before (after a reconnect the first is written again).
        let map = &self.map;
        let event_write = |p: &Purpose| matches!(p, Purpose::Write { tag, .. } if map.tags()[*tag].output_kind == TagOutputKind::Event);
        if let Some(&(tag, value)) = self.events[d].front() {
            if !dev.in_flight.iter().any(|f| event_write(&f.purpose))
                && !dev.waiting.iter().any(|(p, _)| event_write(p))
            {
                dev.waiting.push_back((Purpose::Write { tag, value }, self.cycle));
            }
        }
        for &tag in &self.out_tags[d] {
            if map.tags()[tag].output_kind == TagOutputKind::Event {
                continue;
            }
            let Some(value) = self.desired[tag] else { continue };
            if self.written[tag] == Some(value)
                || dev.in_flight.iter().any(|f| is_write_of(&f.purpose, tag))
                || dev.waiting.iter().any(|(p, _)| is_write_of(p, tag))
            {
                continue;
            }
            dev.waiting.push_back((Purpose::Write { tag, value }, self.cycle));
        }
        let now = self.now_ms();
        self.send_waiting(d, now);
    }

    fn read_outputs(&mut self) {
        let mut buf = [0u8; io_protocol::DATAGRAM_MAX];
        for _ in 0..OUTPUTS_PER_WAKE {
            let (len, from) = match self.outputs.recv_from(&mut buf) {
                Ok(got) => got,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    self.outputs_more = false;
                    self.send_ack();
                    return;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                // ICMP errors and the like: nothing to read now.
                Err(_) => continue,
            };
            let output = match io_protocol::decode_output(&buf[..len]) {
                Ok(datagram) => datagram.to_output(),
                Err(e) => {
                    self.counters.outputs_malformed += 1;
                    if !self.malformed_logged {
                        self.malformed_logged = true;
                        log::warn(format_args!(
                            "an output datagram does not decode ({e}); counted as outputs.malformed, logged once"
                        ));
                    }
                    continue;
                }
            };
            let now = self.clock.now();
            let decision = match self.ack_source(from) {
                Some(source) => self.gateway.offer_from(
                    now,
                    source,
                    output.epoch,
                    output.frame,
                    output.index,
                    output.kind,
                    &output.payload,
                ),
                None => self.gateway.offer_output(now, &output),
            };
            // A superseded level, like a copy, is a live node's word.
            if matches!(
                decision,
                Decision::Accepted | Decision::Duplicate | Decision::Superseded
            ) {
                self.last_output_ms = now.as_nanos() / 1_000_000;
                if self.silent {
                    self.silent = false;
                    log::info(format_args!("outputs resumed: the nodes are in control again"));
                }
            }
            if decision != Decision::Accepted {
                continue;
            }
            match self.map.decode_output(&output.payload) {
                Ok(TagOutput::Write(handle, value)) => {
                    self.counters.tag_writes += 1;
                    self.payload_error_logged = false;
                    let tag = handle.index();
                    let device = self.map.tags()[tag].device;
                    if self.is_event(tag) {
                        self.queue_event(device, tag, value);
                    } else {
                        self.desired[tag] = Some(value);
                    }
                    self.pump_writes(device);
                }
                Ok(TagOutput::Heartbeat) => {
                    self.counters.heartbeats += 1;
                    self.payload_error_logged = false;
                }
                Err(e) => {
                    self.counters.output_payload_errors += 1;
                    if !self.payload_error_logged {
                        self.payload_error_logged = true;
                        log::warn(format_args!(
                            "an accepted output of frame {} is not a tag write of this map: {e}; dropped (outputs.payload_errors)",
                            output.frame
                        ));
                    }
                }
            }
        }
        // The budget is spent: more may be waiting; the next wake-up comes at once.
        self.outputs_more = true;
        self.send_ack();
    }

    /// With acks on: the number of the address an output came from, for its ack. A new
    /// address takes the slot of the oldest when `ACK_SOURCES_MAX` are known (the nodes
    /// of a pair or group: at most 4).
    fn ack_source(&mut self, from: std::net::SocketAddr) -> Option<u8> {
        if !self.settings.acks {
            return None;
        }
        if let Some(at) = self.ack_sources.iter().position(|&s| s == from) {
            return u8::try_from(at).ok();
        }
        if self.ack_sources.len() == ACK_SOURCES_MAX {
            self.ack_sources.remove(0);
        }
        self.ack_sources.push(from);
        u8::try_from(self.ack_sources.len() - 1).ok()
    }

    /// One ack datagram a wake-up (at most 32 ids), to the node the ids came from.
    fn send_ack(&mut self) {
        if !self.settings.acks {
            return;
        }
        let mut buf = [0u8; io_protocol::ACK_DATAGRAM_MAX];
        let Some((to, len)) = self.gateway.encode_ack(self.ack_key.as_ref(), &mut buf) else {
            return;
        };
        if let Some(&addr) = self.ack_sources.get(usize::from(to)) {
            // A lost ack costs a re-send from the node: nothing to do on an error.
            let _ = self.outputs.send_to(&buf[..len], addr);
        }
    }

    fn check_silence(&mut self, now: u64) {
        let silence = self.settings.outputs_silence_ms;
        if self.silent || now.saturating_sub(self.last_output_ms) <= silence {
            return;
        }
        self.silent = true;
        self.counters.silences += 1;
        let mut safe = 0;
        for i in 0..self.map.tags().len() {
            let tag = &self.map.tags()[i];
            if let Some(value) = tag.safe {
                if tag.output_kind == TagOutputKind::Event {
                    let device = tag.device;
                    self.queue_event(device, i, value);
                } else {
                    self.desired[i] = Some(value);
                }
                safe += 1;
            }
        }
        self.counters.safe_writes += safe;
        log::warn(format_args!(
            "no output from the nodes for {silence} ms (gateway.outputs_silence_ms): control lost; writing the safe value of {safe} out tags, holding the others"
        ));
        for d in 0..self.devices.len() {
            self.pump_writes(d);
        }
    }

    /// Whether out tag `tag` is an event tag.
    fn is_event(&self, tag: usize) -> bool {
        self.map.tags()[tag].output_kind == TagOutputKind::Event
    }

    /// Queues an accepted write of an event tag for its device, or drops and counts it
    /// when the queue is full.
    fn queue_event(&mut self, device: usize, tag: usize, value: Value) {
        let queue = &mut self.events[device];
        if queue.len() >= EVENT_WRITES_QUEUED_MAX {
            self.counters.event_writes_dropped += 1;
            if !self.event_drop_logged {
                self.event_drop_logged = true;
                log::warn(format_args!(
                    "device {}: {EVENT_WRITES_QUEUED_MAX} event writes wait for it; a write of tag {} dropped (outputs.event_writes_dropped, logged once)",
                    self.map.devices()[device].name,
                    self.map.tags()[tag].name
                ));
            }
            return;
        }
        self.event_drop_logged = false;
        queue.push_back((tag, value));
    }

    fn send_frame(&mut self) {
        self.frame_sent = true;
        // Log each device's quality when it changes: once per episode.
        for (d, dev) in self.devices.iter_mut().enumerate() {
            let counters = &mut dev.counters;
            match dev.quality {
                Quality::Ok => counters.cycles_ok += 1,
                Quality::Timeout => counters.timeouts += 1,
                Quality::Exception(_) => counters.exceptions += 1,
                Quality::Disconnected | Quality::Unknown(_) => counters.cycles_disconnected += 1,
            }
            if dev.quality.name() != dev.reported.name() {
                let spec = &self.map.devices()[d];
                match dev.quality {
                    Quality::Ok => log::info(format_args!("device {}: answering again: its tags are good", spec.name)),
                    Quality::Timeout => log::warn(format_args!(
                        "device {}: no answer within timeout_ms {} ms: its tags are bad (timeout) until it answers",
                        spec.name, spec.timeout_ms
                    )),
                    Quality::Exception(code) => log::warn(format_args!(
                        "device {}: exception {code} to a poll: its tags are bad (exception) until it answers",
                        spec.name
                    )),
                    // Logged when the connection was lost or could not be made.
                    Quality::Disconnected | Quality::Unknown(_) => {}
                }
                dev.reported = dev.quality;
            }
        }
        let mut qualities = [Quality::Disconnected; twinloop::image::DEVICES_MAX];
        for (q, dev) in qualities.iter_mut().zip(&self.devices) {
            *q = dev.quality;
        }
        let mut image = [0u8; twinloop::app::FRAME_PAYLOAD_MAX];
        let values = Polled {
            map: &self.map,
            devices: &self.devices,
        };
        let Some(len) = self.map.encode_image(&qualities, &values, &mut image) else {
            return;
        };
        self.frame += 1;
        let mut datagram = [0u8; io_protocol::FRAME_DATAGRAM_MAX];
        let Ok(n) = io_protocol::encode_session_frame(self.session, self.frame, &image[..len], &mut datagram) else {
            return;
        };
        self.counters.frames += 1;
        let mut failed = false;
        for node in &self.settings.nodes {
            if let Err(e) = self.frames_socket.send_to(&datagram[..n], node) {
                failed = true;
                self.counters.frame_send_errors += 1;
                if !self.send_error_logged {
                    self.send_error_logged = true;
                    log::warn(format_args!(
                        "cannot send frames to node {node}: {e}; logged once until sends succeed"
                    ));
                }
            }
        }
        if !failed {
            self.send_error_logged = false;
        }
    }

    fn print_status(&self, now: u64) {
        let c = self.gateway.counters();
        if self.json {
            let devices: Vec<_> = self
                .devices
                .iter()
                .zip(self.map.devices())
                .map(|(dev, spec)| {
                    let k = dev.counters;
                    json!({
                        "name": spec.name,
                        "quality": dev.reported.name(),
                        "connected": matches!(dev.link, Link::Up { .. }),
                        "cycles_ok": k.cycles_ok,
                        "timeouts": k.timeouts,
                        "exceptions": k.exceptions,
                        "last_exception": k.last_exception,
                        "cycles_disconnected": k.cycles_disconnected,
                        "disconnects": k.disconnects,
                        "connects": k.connects,
                        "connect_failures": k.connect_failures,
                        "late_answers": k.late_answers,
                        "protocol_errors": k.protocol_errors,
                        "writes_ok": k.writes_ok,
                        "writes_failed": k.writes_failed,
                    })
                })
                .collect();
            let k = self.counters;
            let line = json!({
                "uptime_ms": now,
                "session": self.session,
                "frame": self.frame,
                "frames": k.frames,
                "overruns": k.overruns,
                "frame_send_errors": k.frame_send_errors,
                "devices": devices,
                "outputs": {
                    "offered": c.offered,
                    "accepted": c.accepted,
                    "duplicates": c.duplicates,
                    "conflicts": c.conflicts,
                    "stale": c.stale,
                    "too_old": c.too_old,
                    "superseded": c.superseded,
                    "invalid": c.invalid,
                    "lapses": c.lapses,
                    "malformed": k.outputs_malformed,
                    "payload_errors": k.output_payload_errors,
                    "tag_writes": k.tag_writes,
                    "heartbeats": k.heartbeats,
                    "event_writes_dropped": k.event_writes_dropped,
                },
                "control": if self.silent { "lost" } else { "ok" },
                "silences": k.silences,
                "safe_writes": k.safe_writes,
            });
            println!("{line}");
        } else {
            let mut text = format!("frame {} overruns {}", self.frame, self.counters.overruns);
            for (dev, spec) in self.devices.iter().zip(self.map.devices()) {
                let k = dev.counters;
                text.push_str(&format!(
                    " | {} {} timeouts {} exceptions {} disconnects {} writes {}/{}",
                    spec.name,
                    dev.reported.name(),
                    k.timeouts,
                    k.exceptions,
                    k.disconnects,
                    k.writes_ok,
                    k.writes_ok + k.writes_failed
                ));
            }
            text.push_str(&format!(
                " | outputs accepted {} duplicate {} stale {} too_old {} superseded {} conflict {} invalid {} malformed {} | control {}",
                c.accepted,
                c.duplicates,
                c.stale,
                c.too_old,
                c.superseded,
                c.conflicts,
                c.invalid,
                self.counters.outputs_malformed + self.counters.output_payload_errors,
                if self.silent { "LOST" } else { "ok" }
            ));
            println!("{text}");
        }
    }
}

/// The devices' polled data, as the image encoder asks for it.
struct Polled<'a> {
    map: &'a TagMap,
    devices: &'a [Device],
}

impl Polled<'_> {
    fn find(&self, device: usize, table: Table, address: u16) -> Option<(&[u8], usize)> {
        let spec = self.map.devices().get(device)?;
        let dev = self.devices.get(device)?;
        spec.blocks.iter().enumerate().find_map(|(i, &(t, b))| {
            let offset = address.checked_sub(b.start)?;
            (t == table && offset < b.count).then(|| (dev.data[i].as_slice(), usize::from(offset)))
        })
    }
}

impl PolledValues for Polled<'_> {
    fn bit(&self, device: usize, table: Table, address: u16) -> bool {
        self.find(device, table, address)
            .is_some_and(|(data, i)| modbus::bit_at(data, i))
    }

    fn register(&self, device: usize, table: Table, address: u16) -> u16 {
        self.find(device, table, address)
            .map_or(0, |(data, i)| modbus::register_at(data, i))
    }
}
