//! The fault proxy on the sync links.
//!
//! The I/O shell gives every sync link two UDP sockets, one per traffic class (control:
//! heartbeats, probes, commits, fetches, switchover; bulk: state-transfer chunks), and
//! sends each class to the peer's address of that class (`links[i].peer`,
//! `links[i].bulk_peer`). It checks only the source *IP* of what it receives. So the proxy
//! is one relay socket per link, direction and class: node A is configured with the relay
//! towards B as its peer, and the relay forwards to B's real socket (and the other way
//! round). Each relay has its own thread, blocking in `recv` (no busy polling), and obeys
//! the fault of its link and direction:
//!
//! - **cut**: drop everything (a cut cable; both directions cut = that link is down);
//! - **drop**: drop each datagram with a probability (seeded generator per relay);
//! - **delay**: hold each datagram for a time, in a bounded queue (overflow drops).
//!
//! A partition is every link cut in both directions; "one link cut while the other
//! lives" is one link cut in both directions.
#![allow(clippy::disallowed_methods)]

use super::HarnessError;
use std::collections::VecDeque;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use twinloop::Rng;

/// Datagrams a relay holds for a delay fault; beyond, new ones are dropped and counted
/// (a link's queue is finite, as a switch's is).
pub const DELAY_QUEUE_MAX: usize = 8192;
/// How long a relay blocks in `recv` when nothing is queued: bounds how late it notices
/// the stop flag.
const IDLE_WAIT: Duration = Duration::from_millis(50);
/// The largest datagram relayed (sync messages and transfer chunks are far smaller).
const DATAGRAM_MAX: usize = 65_536;

/// The two traffic classes, as the shell separates them.
pub const CLASSES: [&str; 2] = ["control", "bulk"];

/// A fault on one link in one direction. The default is a healthy link.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkFault {
    /// Drop everything.
    pub cut: bool,
    /// Drop each datagram with this probability, in parts per million.
    pub drop_ppm: u32,
    /// Hold each datagram this long before forwarding, in microseconds.
    pub delay_us: u32,
}

impl LinkFault {
    /// A healthy link.
    pub const HEALTHY: LinkFault = LinkFault {
        cut: false,
        drop_ppm: 0,
        delay_us: 0,
    };
    /// A cut link.
    pub const CUT: LinkFault = LinkFault {
        cut: true,
        drop_ppm: 0,
        delay_us: 0,
    };
}

/// What happens to one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Dropped because the link is cut.
    Cut,
    /// Dropped at random (the drop probability).
    Dropped,
    /// Forwarded after `delay_us` microseconds (0: at once).
    Forward {
        /// The delay.
        delay_us: u32,
    },
}

/// Decides the fate of one datagram under `fault`, drawing from `rng` only for a drop
/// probability strictly between 0 and 1 (so that a healthy link consumes no randomness).
pub fn fate(fault: LinkFault, rng: &mut Rng) -> Fate {
    if fault.cut {
        return Fate::Cut;
    }
    if fault.drop_ppm >= 1_000_000 || (fault.drop_ppm > 0 && rng.chance(u64::from(fault.drop_ppm), 1_000_000)) {
        return Fate::Dropped;
    }
    Fate::Forward {
        delay_us: fault.delay_us,
    }
}

/// The fault of one link direction, shared with its relays (lock-free: the relays read
/// it for every datagram).
#[derive(Debug, Default)]
struct SharedFault {
    cut: AtomicBool,
    drop_ppm: AtomicU32,
    delay_us: AtomicU32,
}

impl SharedFault {
    fn load(&self) -> LinkFault {
        LinkFault {
            cut: self.cut.load(Ordering::Relaxed),
            drop_ppm: self.drop_ppm.load(Ordering::Relaxed),
            delay_us: self.delay_us.load(Ordering::Relaxed),
        }
    }

    fn store(&self, fault: LinkFault) {
        self.cut.store(fault.cut, Ordering::Relaxed);
        self.drop_ppm.store(fault.drop_ppm, Ordering::Relaxed);
        self.delay_us.store(fault.delay_us, Ordering::Relaxed);
    }
}

/// Counters of one relay.
#[derive(Debug, Default)]
struct RelayCounters {
    forwarded: AtomicU64,
    cut: AtomicU64,
    dropped: AtomicU64,
    delayed: AtomicU64,
    overflow: AtomicU64,
    send_errors: AtomicU64,
}

/// A snapshot of the proxy's counters, summed over relays.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProxyCounters {
    /// Datagrams forwarded (at once or after a delay).
    pub forwarded: u64,
    /// Dropped by a cut.
    pub cut: u64,
    /// Dropped at random.
    pub dropped: u64,
    /// Forwarded after a delay.
    pub delayed: u64,
    /// Dropped because the delay queue was full.
    pub overflow: u64,
    /// Forwarding failed (the target's socket was gone: a killed node).
    pub send_errors: u64,
}

/// Where the two nodes of one link really listen: `targets[node][class]`.
#[derive(Debug, Clone)]
pub struct LinkEnds {
    /// The link's name, for reports.
    pub name: String,
    /// Node `n`'s control (class 0) and bulk (class 1) sockets.
    pub targets: [[SocketAddr; 2]; 2],
}

/// One relay: receives what one node sends on one link and class, forwards to the other.
struct Relay {
    link: usize,
    to_node: usize,
    class: usize,
    listen: SocketAddr,
    counters: Arc<RelayCounters>,
}

/// The running proxy. Dropping it stops its threads.
pub struct Proxy {
    links: Vec<LinkEnds>,
    /// `faults[link][to_node]`.
    faults: Vec<[Arc<SharedFault>; 2]>,
    relays: Vec<Relay>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Proxy {
    /// Binds one relay per link, direction and class on 127.0.0.1 and starts them.
    /// `seed` seeds the relays' drop decisions.
    pub fn start(links: Vec<LinkEnds>, seed: u64) -> Result<Proxy, HarnessError> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut rng = Rng::new(seed);
        let mut proxy = Proxy {
            faults: (0..links.len())
                .map(|_| [Arc::new(SharedFault::default()), Arc::new(SharedFault::default())])
                .collect(),
            relays: Vec::new(),
            stop: stop.clone(),
            threads: Vec::new(),
            links,
        };
        for link in 0..proxy.links.len() {
            for to_node in 0..2 {
                for (class, class_name) in CLASSES.iter().enumerate() {
                    let socket = UdpSocket::bind("127.0.0.1:0")
                        .map_err(|e| HarnessError::io(format!("bind a relay for link {link}"), e))?;
                    socket
                        .set_read_timeout(Some(IDLE_WAIT))
                        .map_err(|e| HarnessError::io("set a relay's timeout", e))?;
                    let listen = socket
                        .local_addr()
                        .map_err(|e| HarnessError::io("read a relay's address", e))?;
                    let counters = Arc::new(RelayCounters::default());
                    let target = proxy.links[link].targets[to_node][class];
                    let fault = proxy.faults[link][to_node].clone();
                    let (stop, counters_thread, relay_rng) = (stop.clone(), counters.clone(), rng.fork());
                    let thread = std::thread::Builder::new()
                        .name(format!("relay-l{link}-n{to_node}-{class_name}"))
                        .spawn(move || relay_loop(&socket, target, &fault, &counters_thread, relay_rng, &stop))
                        .map_err(|e| HarnessError::io("start a relay thread", e))?;
                    proxy.threads.push(thread);
                    proxy.relays.push(Relay {
                        link,
                        to_node,
                        class,
                        listen,
                        counters,
                    });
                }
            }
        }
        Ok(proxy)
    }

    /// The address node `from_node` must send to on `link` for `class` (0 control, 1
    /// bulk): the relay towards the other node.
    pub fn address_for(&self, link: usize, from_node: usize, class: usize) -> Option<SocketAddr> {
        let to_node = 1 - from_node.min(1);
        self.relays
            .iter()
            .find(|r| r.link == link && r.to_node == to_node && r.class == class)
            .map(|r| r.listen)
    }

    /// Number of links.
    pub fn links(&self) -> usize {
        self.links.len()
    }

    /// Sets the fault of `link` towards `to_node`.
    pub fn set(&self, link: usize, to_node: usize, fault: LinkFault) {
        if let Some(f) = self.faults.get(link).and_then(|f| f.get(to_node)) {
            f.store(fault);
        }
    }

    /// Sets the fault of `link` in both directions.
    pub fn set_link(&self, link: usize, fault: LinkFault) {
        self.set(link, 0, fault);
        self.set(link, 1, fault);
    }

    /// Sets the fault of every link in both directions.
    pub fn set_all(&self, fault: LinkFault) {
        for link in 0..self.links.len() {
            self.set_link(link, fault);
        }
    }

    /// Heals every link.
    pub fn heal(&self) {
        self.set_all(LinkFault::HEALTHY);
    }

    /// The fault of `link` towards `to_node` now.
    pub fn fault(&self, link: usize, to_node: usize) -> LinkFault {
        self.faults
            .get(link)
            .and_then(|f| f.get(to_node))
            .map_or(LinkFault::HEALTHY, |f| f.load())
    }

    /// Counters summed over every relay.
    pub fn counters(&self) -> ProxyCounters {
        let mut sum = ProxyCounters::default();
        for relay in &self.relays {
            let c = &relay.counters;
            sum.forwarded += c.forwarded.load(Ordering::Relaxed);
            sum.cut += c.cut.load(Ordering::Relaxed);
            sum.dropped += c.dropped.load(Ordering::Relaxed);
            sum.delayed += c.delayed.load(Ordering::Relaxed);
            sum.overflow += c.overflow.load(Ordering::Relaxed);
            sum.send_errors += c.send_errors.load(Ordering::Relaxed);
        }
        sum
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

fn relay_loop(
    socket: &UdpSocket,
    target: SocketAddr,
    fault: &SharedFault,
    counters: &RelayCounters,
    mut rng: Rng,
    stop: &AtomicBool,
) {
    let mut buf = vec![0u8; DATAGRAM_MAX];
    let mut queue: VecDeque<(Instant, Vec<u8>)> = VecDeque::new();
    let mut wait = IDLE_WAIT;
    let send = |bytes: &[u8]| match socket.send_to(bytes, target) {
        Ok(_) => {
            counters.forwarded.fetch_add(1, Ordering::Relaxed);
        }
        Err(_) => {
            counters.send_errors.fetch_add(1, Ordering::Relaxed);
        }
    };
    while !stop.load(Ordering::Relaxed) {
        // Wake for the next delayed datagram, or after IDLE_WAIT to see the stop flag.
        let next_wait = queue.front().map_or(IDLE_WAIT, |(due, _)| {
            due.saturating_duration_since(Instant::now())
                .clamp(Duration::from_micros(50), IDLE_WAIT)
        });
        if next_wait != wait {
            wait = next_wait;
            let _ = socket.set_read_timeout(Some(wait));
        }
        match socket.recv_from(&mut buf) {
            Ok((len, _from)) => match fate(fault.load(), &mut rng) {
                Fate::Cut => {
                    counters.cut.fetch_add(1, Ordering::Relaxed);
                }
                Fate::Dropped => {
                    counters.dropped.fetch_add(1, Ordering::Relaxed);
                }
                Fate::Forward { delay_us: 0 } if queue.is_empty() => send(&buf[..len]),
                Fate::Forward { delay_us } => {
                    // Behind queued datagrams even without a delay of its own: a link
                    // whose delay was just lifted still delivers in order.
                    if queue.len() >= DELAY_QUEUE_MAX {
                        counters.overflow.fetch_add(1, Ordering::Relaxed);
                    } else {
                        counters.delayed.fetch_add(1, Ordering::Relaxed);
                        let due = Instant::now() + Duration::from_micros(u64::from(delay_us));
                        queue.push_back((due, buf[..len].to_vec()));
                    }
                }
            },
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            // ICMP errors of earlier sends (a killed node's port) surface here: harmless.
            Err(_) => {}
        }
        let now = Instant::now();
        while queue.front().is_some_and(|(due, _)| *due <= now) {
            if let Some((_, bytes)) = queue.pop_front() {
                send(&bytes);
            }
        }
        // A cut while datagrams wait drops them too: they are on the cut cable.
        if fault.load().cut && !queue.is_empty() {
            counters.cut.fetch_add(queue.len() as u64, Ordering::Relaxed);
            queue.clear();
        }
    }
}

/// A fault on the plant network between a node and the sink (issue 22), one direction:
/// outputs (node → sink) or what the sink sends back (acknowledgements). The default is a
/// healthy path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PathFault {
    /// Drop everything (an outage: a switch reboot).
    pub cut: bool,
    /// Drop each datagram with this probability, in parts per million.
    pub loss_ppm: u32,
    /// Deliver each datagram twice with this probability, in parts per million.
    pub dup_ppm: u32,
    /// Hold each datagram at least this long, in microseconds.
    pub delay_us: u32,
    /// Plus a uniform `0..=jitter_us`, drawn per datagram: reorders them.
    pub jitter_us: u32,
}

/// [`PathFault`] shared with a relay thread (lock-free).
#[derive(Debug, Default)]
struct SharedPathFault {
    cut: AtomicBool,
    loss_ppm: AtomicU32,
    dup_ppm: AtomicU32,
    delay_us: AtomicU32,
    jitter_us: AtomicU32,
}

impl SharedPathFault {
    fn load(&self) -> PathFault {
        PathFault {
            cut: self.cut.load(Ordering::Relaxed),
            loss_ppm: self.loss_ppm.load(Ordering::Relaxed),
            dup_ppm: self.dup_ppm.load(Ordering::Relaxed),
            delay_us: self.delay_us.load(Ordering::Relaxed),
            jitter_us: self.jitter_us.load(Ordering::Relaxed),
        }
    }

    fn store(&self, f: PathFault) {
        self.cut.store(f.cut, Ordering::Relaxed);
        self.loss_ppm.store(f.loss_ppm, Ordering::Relaxed);
        self.dup_ppm.store(f.dup_ppm, Ordering::Relaxed);
        self.delay_us.store(f.delay_us, Ordering::Relaxed);
        self.jitter_us.store(f.jitter_us, Ordering::Relaxed);
    }
}

/// Counters of the output path, by direction (`[0]` node → sink, `[1]` sink → node).
#[derive(Debug, Default)]
struct PathCounters {
    received: [AtomicU64; 2],
    forwarded: [AtomicU64; 2],
    lost: [AtomicU64; 2],
    cut: [AtomicU64; 2],
    duplicated: [AtomicU64; 2],
    overflow: [AtomicU64; 2],
}

/// A snapshot of one direction's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PathCountersSnapshot {
    /// Datagrams the relays received from that side (what the nodes sent: first copies,
    /// re-sends and refreshes; or what the sink sent back), before any fault.
    pub received: u64,
    /// Datagrams forwarded (copies included).
    pub forwarded: u64,
    /// Dropped at random.
    pub lost: u64,
    /// Dropped by an outage (when sent, or while held).
    pub cut: u64,
    /// Sent twice.
    pub duplicated: u64,
    /// Dropped because the queue was full.
    pub overflow: u64,
}

/// The output path's proxy: one relay a node, between the node and the sink. A node is
/// configured with its relay as its sink; the relay forwards what the node sends to the
/// sink under the outputs' fault, and what the sink sends back (to the relay, the source
/// it saw) to the node's last source address under the acknowledgements' fault.
pub struct OutputPathProxy {
    relays: Vec<SocketAddr>,
    /// `[0]` node → sink, `[1]` sink → node.
    faults: [Arc<SharedPathFault>; 2],
    counters: Arc<PathCounters>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl OutputPathProxy {
    /// One relay for each of `nodes` nodes, towards `sink`, on 127.0.0.1. `seed` seeds the
    /// relays' draws.
    pub fn start(nodes: usize, sink: SocketAddr, seed: u64) -> Result<OutputPathProxy, HarnessError> {
        let stop = Arc::new(AtomicBool::new(false));
        let faults = [
            Arc::new(SharedPathFault::default()),
            Arc::new(SharedPathFault::default()),
        ];
        let counters = Arc::new(PathCounters::default());
        let mut rng = Rng::new(seed);
        let mut proxy = OutputPathProxy {
            relays: Vec::new(),
            faults: faults.clone(),
            counters: counters.clone(),
            stop: stop.clone(),
            threads: Vec::new(),
        };
        for node in 0..nodes {
            let socket =
                UdpSocket::bind("127.0.0.1:0").map_err(|e| HarnessError::io("bind an output-path relay", e))?;
            socket
                .set_read_timeout(Some(IDLE_WAIT))
                .map_err(|e| HarnessError::io("set a relay's timeout", e))?;
            proxy.relays.push(
                socket
                    .local_addr()
                    .map_err(|e| HarnessError::io("read a relay's address", e))?,
            );
            let (faults, counters, stop, relay_rng) = (faults.clone(), counters.clone(), stop.clone(), rng.fork());
            let thread = std::thread::Builder::new()
                .name(format!("output-path-n{node}"))
                .spawn(move || path_loop(&socket, sink, &faults, &counters, relay_rng, &stop))
                .map_err(|e| HarnessError::io("start an output-path relay", e))?;
            proxy.threads.push(thread);
        }
        Ok(proxy)
    }

    /// The sink address node `node` must be given.
    pub fn address_for(&self, node: usize) -> Option<SocketAddr> {
        self.relays.get(node).copied()
    }

    /// Sets the fault of the outputs' direction (`acks`: false) or the sink's way back.
    pub fn set(&self, acks: bool, fault: PathFault) {
        self.faults[usize::from(acks)].store(fault);
    }

    /// The fault of a direction now.
    pub fn fault(&self, acks: bool) -> PathFault {
        self.faults[usize::from(acks)].load()
    }

    /// One direction's counters.
    pub fn counters(&self, acks: bool) -> PathCountersSnapshot {
        let d = usize::from(acks);
        let c = &self.counters;
        PathCountersSnapshot {
            received: c.received[d].load(Ordering::Relaxed),
            forwarded: c.forwarded[d].load(Ordering::Relaxed),
            lost: c.lost[d].load(Ordering::Relaxed),
            cut: c.cut[d].load(Ordering::Relaxed),
            duplicated: c.duplicated[d].load(Ordering::Relaxed),
            overflow: c.overflow[d].load(Ordering::Relaxed),
        }
    }
}

impl Drop for OutputPathProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// One datagram held by an output-path relay: when it is due, an order for equal times,
/// the direction, and the bytes.
type Held = (Instant, u64, usize, Vec<u8>);

fn path_loop(
    socket: &UdpSocket,
    sink: SocketAddr,
    faults: &[Arc<SharedPathFault>; 2],
    counters: &PathCounters,
    mut rng: Rng,
    stop: &AtomicBool,
) {
    let mut buf = vec![0u8; DATAGRAM_MAX];
    // Sorted by due time: a jitter reorders.
    let mut held: VecDeque<Held> = VecDeque::new();
    let mut node: Option<SocketAddr> = None;
    let mut seq = 0u64;
    let mut wait = IDLE_WAIT;
    while !stop.load(Ordering::Relaxed) {
        let next_wait = held.front().map_or(IDLE_WAIT, |(due, ..)| {
            due.saturating_duration_since(Instant::now())
                .clamp(Duration::from_micros(50), IDLE_WAIT)
        });
        if next_wait != wait {
            wait = next_wait;
            let _ = socket.set_read_timeout(Some(wait));
        }
        if let Ok((len, from)) = socket.recv_from(&mut buf) {
            let dir = usize::from(from == sink);
            if dir == 0 {
                node = Some(from);
            }
            counters.received[dir].fetch_add(1, Ordering::Relaxed);
            let f = faults[dir].load();
            if f.cut {
                counters.cut[dir].fetch_add(1, Ordering::Relaxed);
            } else if f.loss_ppm >= 1_000_000 || (f.loss_ppm > 0 && rng.chance(u64::from(f.loss_ppm), 1_000_000)) {
                counters.lost[dir].fetch_add(1, Ordering::Relaxed);
            } else {
                let copies = if f.dup_ppm > 0 && rng.chance(u64::from(f.dup_ppm), 1_000_000) {
                    counters.duplicated[dir].fetch_add(1, Ordering::Relaxed);
                    2
                } else {
                    1
                };
                for _ in 0..copies {
                    if held.len() >= DELAY_QUEUE_MAX {
                        counters.overflow[dir].fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    let delay_us = u64::from(f.delay_us) + rng.below(u64::from(f.jitter_us) + 1);
                    let due = Instant::now() + Duration::from_micros(delay_us);
                    seq += 1;
                    let at = held.partition_point(|(d, s, ..)| (*d, *s) <= (due, seq));
                    held.insert(at, (due, seq, dir, buf[..len].to_vec()));
                }
            }
        }
        let now = Instant::now();
        while held.front().is_some_and(|(due, ..)| *due <= now) {
            let Some((_, _, dir, bytes)) = held.pop_front() else {
                break;
            };
            let to = if dir == 0 { Some(sink) } else { node };
            if let Some(to) = to {
                if socket.send_to(&bytes, to).is_ok() {
                    counters.forwarded[dir].fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        // An outage drops what is on the way too.
        for (dir, fault) in faults.iter().enumerate() {
            if fault.load().cut && held.iter().any(|h| h.2 == dir) {
                let before = held.len();
                held.retain(|h| h.2 != dir);
                counters.cut[dir].fetch_add((before - held.len()) as u64, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::wait_until;

    /// Two fake nodes (one socket per class each) and a one-link proxy between them.
    struct Bench {
        nodes: [[UdpSocket; 2]; 2],
        proxy: Proxy,
    }

    fn bench() -> Bench {
        let socket = || {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            s
        };
        let nodes = [[socket(), socket()], [socket(), socket()]];
        let addr = |n: usize, c: usize| nodes[n][c].local_addr().unwrap();
        let proxy = Proxy::start(
            vec![LinkEnds {
                name: "sync".into(),
                targets: [[addr(0, 0), addr(0, 1)], [addr(1, 0), addr(1, 1)]],
            }],
            7,
        )
        .unwrap();
        Bench { nodes, proxy }
    }

    impl Bench {
        fn send(&self, from: usize, class: usize, bytes: &[u8]) {
            let to = self.proxy.address_for(0, from, class).unwrap();
            self.nodes[from][class].send_to(bytes, to).unwrap();
        }

        fn recv(&self, node: usize, class: usize) -> Vec<u8> {
            let mut buf = [0u8; 64];
            let (len, from) = self.nodes[node][class].recv_from(&mut buf).expect("a datagram arrives");
            assert_eq!(
                from.ip(),
                std::net::Ipv4Addr::LOCALHOST,
                "the node's source-IP check passes"
            );
            buf[..len].to_vec()
        }

        fn await_counters(&self, done: impl Fn(&ProxyCounters) -> bool) {
            wait_until(
                Duration::from_secs(5),
                Duration::from_millis(1),
                "proxy counters",
                || done(&self.proxy.counters()),
            )
            .unwrap();
        }

        fn nothing_waiting(&self, node: usize, class: usize) -> bool {
            let socket = &self.nodes[node][class];
            socket.set_nonblocking(true).unwrap();
            let mut buf = [0u8; 64];
            let empty = socket.recv_from(&mut buf).is_err();
            socket.set_nonblocking(false).unwrap();
            empty
        }
    }

    #[test]
    fn proxy_healthy_forwards_each_class_to_the_other_node() {
        let b = bench();
        b.send(0, 0, b"hb");
        assert_eq!(b.recv(1, 0), b"hb");
        b.send(1, 1, b"chunk");
        assert_eq!(b.recv(0, 1), b"chunk");
        b.await_counters(|c| c.forwarded == 2);
    }

    #[test]
    fn proxy_cut_drops_both_classes_of_that_direction_only() {
        let b = bench();
        b.proxy.set(0, 1, LinkFault::CUT);
        b.send(0, 0, b"lost");
        b.send(0, 1, b"lost");
        b.await_counters(|c| c.cut == 2);
        assert!(b.nothing_waiting(1, 0) && b.nothing_waiting(1, 1));
        // The other direction lives.
        b.send(1, 0, b"back");
        assert_eq!(b.recv(0, 0), b"back");
        b.proxy.heal();
        b.send(0, 0, b"again");
        assert_eq!(b.recv(1, 0), b"again");
    }

    #[test]
    fn proxy_partition_cuts_both_directions() {
        let b = bench();
        b.proxy.set_all(LinkFault::CUT);
        b.send(0, 0, b"x");
        b.send(1, 0, b"y");
        b.await_counters(|c| c.cut == 2);
        assert!(b.nothing_waiting(0, 0) && b.nothing_waiting(1, 0));
        assert_eq!(b.proxy.fault(0, 0), LinkFault::CUT);
    }

    #[test]
    fn proxy_drop_all_drops_and_counts() {
        let b = bench();
        b.proxy.set_link(
            0,
            LinkFault {
                drop_ppm: 1_000_000,
                ..LinkFault::HEALTHY
            },
        );
        for _ in 0..10 {
            b.send(0, 0, b"z");
        }
        b.await_counters(|c| c.dropped == 10);
        assert!(b.nothing_waiting(1, 0));
    }

    #[test]
    fn proxy_delay_holds_datagrams_at_least_that_long_in_order() {
        let b = bench();
        b.proxy.set_link(
            0,
            LinkFault {
                delay_us: 30_000,
                ..LinkFault::HEALTHY
            },
        );
        let sent = Instant::now();
        b.send(0, 0, b"1");
        b.send(0, 0, b"2");
        assert_eq!(b.recv(1, 0), b"1");
        assert!(sent.elapsed() >= Duration::from_millis(30), "held for the delay");
        assert_eq!(b.recv(1, 0), b"2");
        b.await_counters(|c| c.delayed == 2 && c.forwarded == 2);
    }

    #[test]
    fn output_path_forwards_both_ways_loses_duplicates_and_cuts() {
        let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
        sink.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let node = UdpSocket::bind("127.0.0.1:0").unwrap();
        node.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let proxy = OutputPathProxy::start(1, sink.local_addr().unwrap(), 5).unwrap();
        let relay = proxy.address_for(0).unwrap();
        let mut buf = [0u8; 64];
        node.send_to(b"out", relay).unwrap();
        let (len, from) = sink.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..len], from), (&b"out"[..], relay));
        // The sink answers the relay; the node gets it.
        sink.send_to(b"ack", relay).unwrap();
        let (len, _) = node.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"ack");
        proxy.set(
            false,
            PathFault {
                dup_ppm: 1_000_000,
                ..PathFault::default()
            },
        );
        node.send_to(b"twice", relay).unwrap();
        for _ in 0..2 {
            let (len, _) = sink.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..len], b"twice");
        }
        proxy.set(
            false,
            PathFault {
                loss_ppm: 1_000_000,
                ..PathFault::default()
            },
        );
        proxy.set(
            true,
            PathFault {
                cut: true,
                ..PathFault::default()
            },
        );
        node.send_to(b"lost", relay).unwrap();
        sink.send_to(b"cut", relay).unwrap();
        wait_until(
            Duration::from_secs(5),
            Duration::from_millis(1),
            "path counters",
            || proxy.counters(false).lost == 1 && proxy.counters(true).cut == 1,
        )
        .unwrap();
        assert_eq!(proxy.counters(false).duplicated, 1);
        assert_eq!(proxy.counters(true).forwarded, 1);
        // What each side sent, before the faults: 3 outputs, 2 datagrams back.
        assert_eq!((proxy.counters(false).received, proxy.counters(true).received), (3, 2));
    }

    #[test]
    fn fate_drop_probability_is_seeded_and_near_its_rate() {
        let fault = LinkFault {
            drop_ppm: 250_000,
            ..LinkFault::HEALTHY
        };
        let run = |seed| {
            let mut rng = Rng::new(seed);
            (0..10_000).filter(|_| fate(fault, &mut rng) == Fate::Dropped).count()
        };
        assert_eq!(run(3), run(3), "same seed, same drops");
        let dropped = run(3);
        assert!((2_200..2_800).contains(&dropped), "{dropped} of 10000 at 25 %");
        let mut rng = Rng::new(1);
        assert_eq!(fate(LinkFault::HEALTHY, &mut rng), Fate::Forward { delay_us: 0 });
        assert_eq!(fate(LinkFault::CUT, &mut rng), Fate::Cut);
    }
}
