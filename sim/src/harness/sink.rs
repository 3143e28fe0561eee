//! The actuator side: the I/O gateway that dedups and fences (what `docs/PROTOCOL.md`
//! asks of a sink), and the ledger of what the actuators were actually given.
//!
//! The two are kept apart on purpose. The gateway is the thing under test: the library's
//! reference [`Gateway`] (`twinloop::gateway`, a bounded ring of recent ids, the epoch
//! fence raised by every output that passes it, a copy included, and the epoch lease),
//! the one a plant-side gateway built on the library runs. The [`SinkLog`] is the
//! observer: it records every datagram that arrived and every delivery to the actuators,
//! so that "duplicated after dedup" (an id delivered twice) and "accepted from a deposed
//! primary" (an output delivered although a higher epoch had already reached the sink)
//! are measured from the record, not assumed from the gateway's code.
#![allow(clippy::disallowed_methods)]

use super::HarnessError;
use std::collections::BTreeMap;
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use twinloop::digest::fnv64;
use twinloop::gateway::WINDOW_FRAMES_MAX;
pub use twinloop::gateway::{Decision, Gateway};
use twinloop::io_protocol;

/// One output as the actuators received it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// The epoch it carried.
    pub epoch: u64,
    /// FNV-1a of its payload.
    pub payload_hash: u64,
    /// The node that sent it.
    pub node_id: u8,
    /// When it arrived, ns since the run began.
    pub at_ns: u64,
    /// How many times the actuators received this id (1 unless dedup failed).
    pub count: u32,
}

/// The first delivery of an epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochStart {
    /// When the first output of the epoch was delivered, ns since the run began.
    pub first_accept_ns: u64,
    /// Its frame.
    pub frame: u64,
    /// The node that sent it.
    pub node_id: u8,
}

/// Everything the sink saw: the gateway's verdicts and the actuators' record.
#[derive(Debug, Clone)]
pub struct SinkLog {
    /// The gateway.
    pub gateway: Gateway,
    /// Every id the actuators received, by `(frame, index)`.
    pub delivered: BTreeMap<(u64, u8), Delivery>,
    /// The first delivery of each epoch.
    pub epochs: BTreeMap<u64, EpochStart>,
    /// When each epoch was first seen on any valid datagram (accepted or not), ns.
    pub epoch_first_seen_ns: BTreeMap<u64, u64>,
    /// Valid output datagrams received.
    pub raw: u64,
    /// Datagrams that did not decode as outputs.
    pub malformed: u64,
    /// Copies of already-delivered ids, dropped (before dedup, these are duplicates).
    pub duplicates_raw: u64,
    /// Of which with different content.
    pub conflicts: u64,
    /// Rejected for an epoch below the fence.
    pub stale_rejected: u64,
    /// Rejected as older than the dedup window.
    pub too_old: u64,
    /// Rejected as an id no node sends (index above 15).
    pub invalid: u64,
    /// Levels refused as older than their key's newest (the demo's outputs are events:
    /// 0 there).
    pub superseded: u64,
    /// Ids delivered more than once (after dedup): must stay 0.
    pub delivered_twice: u64,
    /// Deliveries of an epoch lower than one that had already reached the sink on a
    /// valid datagram (a deposed primary's output accepted): must stay 0.
    pub deposed_accepted: u64,
    /// The highest epoch on any valid datagram so far.
    pub epoch_seen_max: u64,
    /// The epoch of the last delivery.
    pub last_epoch: u64,
    /// When the last delivery happened, ns.
    pub last_accept_ns: u64,
    /// Delivered ids kept, at most; beyond, the run is too long for this record.
    pub delivered_max: usize,
    /// Deliveries not recorded because `delivered_max` was reached.
    pub unrecorded: u64,
    /// Acks the sink could not send (no address for their source, or the send failed).
    pub ack_send_errors: u64,
}

/// Ids the ledger keeps by default: over half an hour of a 1 kHz cycle.
pub const DELIVERED_MAX: usize = 1 << 21;

impl SinkLog {
    /// An empty record around a strict gateway (no lease) with a `window_frames` dedup
    /// window (brought into 1..=[`WINDOW_FRAMES_MAX`]).
    pub fn new(window_frames: u64) -> Self {
        let window_frames = window_frames.clamp(1, WINDOW_FRAMES_MAX);
        Self::around(Gateway::new(window_frames, None).expect("a window in range"))
    }

    /// An empty record around `gateway`.
    pub fn around(gateway: Gateway) -> Self {
        SinkLog {
            gateway,
            delivered: BTreeMap::new(),
            epochs: BTreeMap::new(),
            epoch_first_seen_ns: BTreeMap::new(),
            raw: 0,
            malformed: 0,
            duplicates_raw: 0,
            conflicts: 0,
            stale_rejected: 0,
            too_old: 0,
            invalid: 0,
            superseded: 0,
            delivered_twice: 0,
            deposed_accepted: 0,
            epoch_seen_max: 0,
            last_epoch: 0,
            last_accept_ns: 0,
            delivered_max: DELIVERED_MAX,
            unrecorded: 0,
            ack_send_errors: 0,
        }
    }

    /// Offers one decoded output that arrived at `at_ns`; returns the gateway's decision.
    pub fn offer(&mut self, at_ns: u64, output: &io_protocol::OutputDatagram<'_>) -> Decision {
        self.offer_from(at_ns, None, output)
    }

    /// [`SinkLog::offer`] for a sink that acknowledges (issue 22): an event the gateway
    /// accepted, or dropped as a copy, is queued for an ack to `source` (the caller's number
    /// for the address it came from; `None`: no ack).
    pub fn offer_from(&mut self, at_ns: u64, source: Option<u8>, output: &io_protocol::OutputDatagram<'_>) -> Decision {
        self.raw += 1;
        let payload_hash = fnv64(output.payload);
        let seen_before = self.epoch_seen_max;
        self.epoch_first_seen_ns.entry(output.epoch).or_insert(at_ns);
        self.epoch_seen_max = self.epoch_seen_max.max(output.epoch);
        let lapses_before = self.gateway.counters().lapses;
        let now = twinloop::Instant::from_nanos(at_ns);
        let decision = match source {
            Some(source) => self.gateway.offer_from(
                now,
                source,
                output.epoch,
                output.frame,
                output.index,
                output.kind,
                output.payload,
            ),
            None => self.gateway.offer_kind(
                now,
                output.epoch,
                output.frame,
                output.index,
                output.kind,
                output.payload,
            ),
        };
        if self.gateway.counters().lapses > lapses_before {
            // A lapsed fence is the documented recovery of a pair restarted below the
            // last epoch, not a deposed primary slipping through: the ledger starts over.
            self.epoch_seen_max = output.epoch;
        }
        match decision {
            Decision::Stale => self.stale_rejected += 1,
            Decision::TooOld => self.too_old += 1,
            Decision::Invalid => self.invalid += 1,
            Decision::Superseded => self.superseded += 1,
            Decision::Duplicate | Decision::Conflict => {
                self.duplicates_raw += 1;
                if decision == Decision::Conflict {
                    self.conflicts += 1;
                }
            }
            Decision::Accepted => {
                if output.epoch < seen_before {
                    self.deposed_accepted += 1;
                }
                self.last_epoch = output.epoch;
                self.last_accept_ns = at_ns;
                self.epochs.entry(output.epoch).or_insert(EpochStart {
                    first_accept_ns: at_ns,
                    frame: output.frame,
                    node_id: output.node_id,
                });
                let key = (output.frame, output.index);
                if let Some(d) = self.delivered.get_mut(&key) {
                    d.count += 1;
                    self.delivered_twice += 1;
                } else if self.delivered.len() < self.delivered_max {
                    self.delivered.insert(
                        key,
                        Delivery {
                            epoch: output.epoch,
                            payload_hash,
                            node_id: output.node_id,
                            at_ns,
                            count: 1,
                        },
                    );
                } else {
                    self.unrecorded += 1;
                }
            }
        }
        decision
    }

    /// The first epoch above `epoch` that the actuators received, with its first delivery.
    pub fn first_epoch_above(&self, epoch: u64) -> Option<(u64, EpochStart)> {
        self.epochs
            .range(epoch.saturating_add(1)..)
            .next()
            .map(|(&e, &start)| (e, start))
    }

    /// True when the command (output 0) of `frame` was delivered.
    pub fn has_command(&self, frame: u64) -> bool {
        self.delivered.contains_key(&(frame, 0))
    }
}

/// Receives one datagram and the time it reached the socket (the kernel's SO_TIMESTAMPNS),
/// on `clock`: a late measurement must be the node's, not this thread's, which shares the
/// host's CPUs with the nodes. Without the kernel's time, the time of reading.
pub(super) fn recv_stamped(
    socket: &UdpSocket,
    buf: &mut [u8],
    control: &mut [u8],
    clock: &super::RunClock,
) -> Option<(usize, u64)> {
    recv_stamped_from(socket, buf, control, clock, false).map(|(len, at_ns, _)| (len, at_ns))
}

/// [`recv_stamped`] with the sender's address (where an ack goes back to); `waiting_only`:
/// do not block, take only what is already queued.
pub(super) fn recv_stamped_from(
    socket: &UdpSocket,
    buf: &mut [u8],
    control: &mut [u8],
    clock: &super::RunClock,
    waiting_only: bool,
) -> Option<(usize, u64, Option<std::net::SocketAddr>)> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, SockaddrStorage};
    use std::os::fd::AsRawFd;
    let mut iov = [std::io::IoSliceMut::new(buf)];
    let flags = if waiting_only {
        MsgFlags::MSG_DONTWAIT
    } else {
        MsgFlags::empty()
    };
    let message = recvmsg::<SockaddrStorage>(socket.as_raw_fd(), &mut iov, Some(control), flags).ok()?;
    let now_ns = clock.now_ns();
    let from = message.address.and_then(|a| {
        a.as_sockaddr_in()
            .map(|v4| std::net::SocketAddr::V4((*v4).into()))
            .or_else(|| a.as_sockaddr_in6().map(|v6| std::net::SocketAddr::V6((*v6).into())))
    });
    let stamp = message.cmsgs().ok()?.find_map(|c| match c {
        ControlMessageOwned::ScmTimestampns(ts) => Some(ts),
        _ => None,
    });
    let at_ns = match stamp {
        Some(ts) => {
            // The kernel's stamp is wall-clock time: measure its age on the wall clock,
            // then subtract that from the run's monotonic time (no offset to drift).
            let stamp_unix =
                u64::try_from(ts.tv_sec()).unwrap_or(0) * 1_000_000_000 + u64::try_from(ts.tv_nsec()).unwrap_or(0);
            let now_unix = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
            now_ns.saturating_sub(now_unix.saturating_sub(stamp_unix))
        }
        None => now_ns,
    };
    Some((message.bytes, at_ns, from))
}

/// Addresses a sink acknowledges (the nodes of a pair or group, or their relays; a
/// restarted node's new port takes the oldest's slot), as the reference gateway
/// (`twinloop-gateway`) keeps them.
pub const ACK_SOURCES_MAX: usize = 8;

/// Datagrams the sink takes at one wake-up before it sends its ack: what is queued
/// already, as the gateway reads its socket dry (bounded, so that a flood cannot hold the
/// acks back).
const WAKE_READS_MAX: usize = 64;

/// A sink that acknowledges the events it applied (issue 22, the nodes' `[outputs]
/// acks`), through the reference gateway's ack queue and encoder.
#[derive(Debug, Clone)]
pub struct SinkAcks {
    /// The key acks are tagged with (the nodes' `outputs.ack_key_file`); `None`: untagged.
    pub key: Option<twinloop::io_protocol::AckKey>,
    /// The session acks carry: higher at every start of a sink (the wall clock's ns).
    pub session: u64,
}

/// The numbers a sink gives the addresses outputs come from, for their acks.
#[derive(Debug, Default, Clone)]
pub struct AckSources {
    addrs: Vec<std::net::SocketAddr>,
    /// The slot the next new address takes once all are used (the oldest first).
    next: usize,
}

impl AckSources {
    /// The number of `from`; once [`ACK_SOURCES_MAX`] are known, a new address takes the
    /// oldest one's number in place, so the other numbers (queued in acks) stay right.
    pub fn number(&mut self, from: std::net::SocketAddr) -> u8 {
        if let Some(at) = self.addrs.iter().position(|&a| a == from) {
            return at as u8;
        }
        if self.addrs.len() < ACK_SOURCES_MAX {
            self.addrs.push(from);
            return (self.addrs.len() - 1) as u8;
        }
        let slot = self.next;
        self.addrs[slot] = from;
        self.next = (slot + 1) % ACK_SOURCES_MAX;
        slot as u8
    }

    /// The address of number `n`.
    pub fn addr(&self, n: u8) -> Option<std::net::SocketAddr> {
        self.addrs.get(usize::from(n)).copied()
    }
}

/// Called with each delivered actuator command's payload (output index 0), on the sink's
/// thread: closes the loop to the plant.
pub type CommandHook = Box<dyn FnMut(&[u8]) + Send>;

/// The sink's receiving thread. Dropping it stops the thread.
pub struct SinkThread {
    /// The record, shared with the harness.
    pub log: Arc<Mutex<SinkLog>>,
    addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl SinkThread {
    /// Binds 127.0.0.1:0 and starts receiving into a record around `gateway`. `clock`
    /// stamps arrivals; `on_command` gets every delivered command.
    pub fn start(
        clock: super::RunClock,
        gateway: Gateway,
        on_command: CommandHook,
    ) -> Result<SinkThread, HarnessError> {
        Self::start_acking(clock, gateway, None, on_command)
    }

    /// [`SinkThread::start`], acknowledging the events applied when `acks` is given: at
    /// each wake-up it takes what is queued on its socket, then sends the gateway's next
    /// ack ([`Gateway::encode_ack`]) to the address its ids came from — the output-path
    /// proxy's relay when there is one, which brings it to the node under the acks' fault.
    pub fn start_acking(
        clock: super::RunClock,
        mut gateway: Gateway,
        acks: Option<SinkAcks>,
        mut on_command: CommandHook,
    ) -> Result<SinkThread, HarnessError> {
        let socket = UdpSocket::bind("127.0.0.1:0").map_err(|e| HarnessError::io("bind the sink", e))?;
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .map_err(|e| HarnessError::io("set the sink's timeout", e))?;
        let addr = socket
            .local_addr()
            .map_err(|e| HarnessError::io("read the sink's address", e))?;
        nix::sys::socket::setsockopt(&socket, nix::sys::socket::sockopt::ReceiveTimestampns, &true)
            .map_err(|e| HarnessError::io("ask for the sink's arrival times", e.into()))?;
        if let Some(acks) = &acks {
            gateway.set_ack_session(acks.session);
        }
        let log = Arc::new(Mutex::new(SinkLog::around(gateway)));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (log, stop) = (log.clone(), stop.clone());
            std::thread::Builder::new()
                .name("sink".into())
                .spawn(move || {
                    let mut buf = [0u8; io_protocol::DATAGRAM_MAX + 64];
                    let mut control = nix::cmsg_space!(nix::sys::time::TimeSpec);
                    let mut sources = AckSources::default();
                    while !stop.load(Ordering::Relaxed) {
                        for read in 0..=WAKE_READS_MAX {
                            let Some((len, at_ns, from)) =
                                recv_stamped_from(&socket, &mut buf, &mut control, &clock, read > 0)
                            else {
                                break;
                            };
                            let Ok(output) = io_protocol::decode_output(&buf[..len]) else {
                                lock(&log).malformed += 1;
                                continue;
                            };
                            let source = match (&acks, from) {
                                (Some(_), Some(from)) => Some(sources.number(from)),
                                _ => None,
                            };
                            let decision = lock(&log).offer_from(at_ns, source, &output);
                            if decision == Decision::Accepted && output.index == 0 {
                                on_command(output.payload);
                            }
                        }
                        if let Some(acks) = &acks {
                            let mut ack = [0u8; io_protocol::ACK_DATAGRAM_MAX];
                            let next = lock(&log).gateway.encode_ack(acks.key.as_ref(), &mut ack);
                            if let Some((to, len)) = next {
                                let sent = sources
                                    .addr(to)
                                    .is_some_and(|to| socket.send_to(&ack[..len], to).is_ok());
                                if !sent {
                                    // A lost ack costs a re-send from the node, nothing more.
                                    lock(&log).ack_send_errors += 1;
                                }
                            }
                        }
                    }
                })
                .map_err(|e| HarnessError::io("start the sink thread", e))?
        };
        Ok(SinkThread {
            log,
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// Where the nodes send outputs.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// Runs `f` on the record under its lock.
    pub fn with<T>(&self, f: impl FnOnce(&SinkLog) -> T) -> T {
        f(&lock(&self.log))
    }
}

impl Drop for SinkThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Locks a mutex, taking the data even if a thread panicked holding it (the record is
/// still what it was; the panic is reported on its own).
pub fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use twinloop::io_protocol::{decode_output, encode_output};

    fn datagram(epoch: u64, frame: u64, index: u8, payload: &[u8]) -> Vec<u8> {
        let mut buf = [0u8; io_protocol::OUTPUT_DATAGRAM_MAX];
        let len = encode_output((epoch & 0xFF) as u8, epoch, frame, index, payload, &mut buf).unwrap();
        buf[..len].to_vec()
    }

    fn offer(log: &mut SinkLog, at_ns: u64, epoch: u64, frame: u64, index: u8, payload: &[u8]) -> Decision {
        let bytes = datagram(epoch, frame, index, payload);
        log.offer(at_ns, &decode_output(&bytes).unwrap())
    }

    #[test]
    fn sink_log_counts_raw_duplicates_stale_and_epoch_starts() {
        let mut log = SinkLog::new(1000);
        assert_eq!(offer(&mut log, 10, 0x101, 1, 0, b"a"), Decision::Accepted);
        assert_eq!(offer(&mut log, 11, 0x101, 2, 0, b"b"), Decision::Accepted);
        assert_eq!(offer(&mut log, 20, 0x202, 2, 0, b"b"), Decision::Duplicate);
        assert_eq!(offer(&mut log, 21, 0x101, 3, 0, b"c"), Decision::Stale);
        assert_eq!(offer(&mut log, 22, 0x202, 3, 0, b"c"), Decision::Accepted);
        assert_eq!((log.raw, log.duplicates_raw, log.stale_rejected), (5, 1, 1));
        assert_eq!((log.delivered_twice, log.deposed_accepted, log.conflicts), (0, 0, 0));
        assert_eq!(log.delivered.len(), 3);
        let (epoch, start) = log.first_epoch_above(0x101).unwrap();
        assert_eq!((epoch, start.first_accept_ns, start.frame), (0x202, 22, 3));
        assert_eq!(log.epoch_first_seen_ns[&0x202], 20, "seen on the duplicate first");
        assert!(log.has_command(3) && !log.has_command(4));
    }

    #[test]
    fn sink_log_catches_a_gateway_that_fails_to_dedup() {
        // A gateway whose window forgot an id: the ledger sees the second delivery.
        let mut log = SinkLog::new(1);
        offer(&mut log, 1, 1, 5, 0, b"x");
        log.gateway = Gateway::new(1, None).unwrap(); // a gateway restart loses its memory
        offer(&mut log, 2, 1, 5, 0, b"x");
        assert_eq!(log.delivered_twice, 1);
        assert_eq!(log.delivered[&(5, 0)].count, 2);
    }

    #[test]
    fn sink_log_catches_a_deposed_primary_accepted() {
        // A gateway that lost its fence (restarted) accepts a lower epoch: the ledger,
        // which saw the higher epoch, counts it.
        let mut log = SinkLog::new(100);
        offer(&mut log, 1, 0x202, 5, 0, b"x");
        log.gateway = Gateway::new(100, None).unwrap();
        assert_eq!(offer(&mut log, 2, 0x101, 6, 0, b"y"), Decision::Accepted);
        assert_eq!(log.deposed_accepted, 1);
    }

    #[test]
    fn sink_thread_receives_and_closes_the_loop() {
        let commands = Arc::new(Mutex::new(Vec::new()));
        let hook = {
            let commands = commands.clone();
            Box::new(move |payload: &[u8]| lock(&commands).push(payload.to_vec()))
        };
        let sink = SinkThread::start(super::super::RunClock::start(), Gateway::new(100, None).unwrap(), hook).unwrap();
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        sender.send_to(b"junk", sink.addr()).unwrap();
        sender.send_to(&datagram(0x101, 1, 0, b"cmd"), sink.addr()).unwrap();
        sender.send_to(&datagram(0x101, 1, 1, b"alarm"), sink.addr()).unwrap();
        super::super::wait_until(Duration::from_secs(5), Duration::from_millis(1), "sink", || {
            sink.with(|l| l.raw == 2 && l.malformed == 1)
        })
        .unwrap();
        assert_eq!(*lock(&commands), vec![b"cmd".to_vec()], "only commands go to the plant");
    }

    /// With acks on, the sink acknowledges through the gateway's queue and encoder, to
    /// the address each event came from, tagged with the key: an event accepted and its
    /// copy both acked, a level never (issue 22).
    #[test]
    fn sink_thread_acks_events_to_their_sender_with_the_key() {
        use twinloop::io_protocol::{decode_ack, encode_output_kind, AckKey, ACK_DATAGRAM_MAX};
        let key = AckKey::derive(b"harness ack key");
        let acks = SinkAcks {
            key: Some(key.clone()),
            session: 9,
        };
        let sink = SinkThread::start_acking(
            super::super::RunClock::start(),
            Gateway::new(100, None).unwrap(),
            Some(acks),
            Box::new(|_: &[u8]| {}),
        )
        .unwrap();
        let node = UdpSocket::bind("127.0.0.1:0").unwrap();
        node.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut out = [0u8; io_protocol::OUTPUT_DATAGRAM_MAX];
        let level = twinloop::app::OutputKind::Level { key: 4 };
        let n = encode_output_kind(1, 0x101, 7, 1, level, b"lvl", &mut out).unwrap();
        node.send_to(&out[..n], sink.addr()).unwrap();
        node.send_to(&datagram(0x101, 7, 0, b"cmd"), sink.addr()).unwrap();
        let mut ids = Vec::new();
        let mut buf = [0u8; ACK_DATAGRAM_MAX];
        while ids.is_empty() {
            let (len, from) = node.recv_from(&mut buf).expect("an ack comes");
            assert_eq!(from, sink.addr());
            let ack = decode_ack(&buf[..len], Some(&key)).expect("tagged with the key");
            assert_eq!(ack.session, 9);
            ids.extend(ack.ids.iter().copied());
        }
        assert_eq!(ids, vec![(7, 0)], "the event only, not the level");
        // A copy (a re-send whose ack was lost) is acked again.
        node.send_to(&datagram(0x101, 7, 0, b"cmd"), sink.addr()).unwrap();
        let (len, _) = node.recv_from(&mut buf).expect("the copy is acked");
        assert_eq!(decode_ack(&buf[..len], Some(&key)).unwrap().ids[..], [(7, 0)]);
        assert!(decode_ack(&buf[..len], None).is_err(), "not untagged");
        sink.with(|l| {
            assert_eq!(
                (l.duplicates_raw, l.gateway.counters().acks_sent, l.ack_send_errors),
                (1, 2, 0)
            );
        });
    }

    #[test]
    fn ack_sources_number_addresses_and_reuse_the_oldest_slot() {
        let addr = |port: u16| std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let mut sources = AckSources::default();
        assert_eq!(
            (
                sources.number(addr(1)),
                sources.number(addr(2)),
                sources.number(addr(1))
            ),
            (0, 1, 0)
        );
        for port in 3..=(ACK_SOURCES_MAX as u16) {
            sources.number(addr(port));
        }
        // Full: a restarted node's new port takes the oldest slot; the others keep theirs.
        assert_eq!(sources.number(addr(100)), 0);
        assert_eq!((sources.addr(0), sources.addr(1)), (Some(addr(100)), Some(addr(2))));
        assert_eq!(sources.number(addr(101)), 1);
    }
}
