//! The router at work: a poller thread per node reads its status block every `poll_ms`;
//! a thread per HMI connection reads its requests one at a time and sends each to a node
//! of the request's pair over a small pool of connections per node. The pair is the
//! request's unit id's, or — pairs sharing a unit id — the one whose register window
//! (from its `base`) holds the request's registers; the node sees the address less
//! the base.
//!
//! - **Reads** go to the least-loaded in-sync node (`read_rank`: a loop that keeps its
//!   deadlines before one 1 ms or more late, status register 12, then the
//!   least CPU share, register 16), else to a
//!   primary, else to a lagging backup, else to a node whose status is unknown (never
//!   to a starting or joining node: it has no state to show). A node that fails
//!   (connection refused or reset, no answer within `request_timeout_ms`) is marked down
//!   until its next good poll, and the read goes to the next.
//! - **Writes** go to the primary (the highest epoch, should two say so). Its answer is
//!   passed on, except 0A (no in-sync backup: not applied), 0B (the node lost its role:
//!   outcome unknown) and a failure: those are retried on whichever node is primary
//!   then, until `request_deadline_ms`. Every attempt carries the HMI's client id (set on
//!   the node's connection, registers 14..15, before the write) and the HMI's own
//!   transaction id, so a node that already applied the write answers it without
//!   applying it again (docs/HMI.md, "Never applied twice"). After the deadline the HMI
//!   gets 0B if any attempt's outcome was unknown, else the last refusal.
//!
//! The router keeps no state a restart loses: the client id is the HMI's (what it wrote
//! in registers 14..15 on its connection, else its IPv4 address, as a node would take
//! it), so a retry through another router, or straight to a node, is the same write.
//!
//! Bounds: `clients_max` HMI connections (one thread each; more are closed at accept),
//! one request at a time per HMI connection (at most [`ADU_BYTES_MAX`] bytes),
//! `connections_per_node` request connections per node plus one for the poll, every
//! exchange within `request_timeout_ms` (a write's answer within `write_timeout_ms`) and
//! every request within `request_deadline_ms`.

// The router is all I/O: threads blocked on sockets until a deadline, with no core whose
// time could be passed in (its decisions, read_rank and the wire, are pure and tested
// apart). The clock is read here only.
#![allow(clippy::disallowed_methods)]

use crate::config::RouterFile;
use crate::wire::{self, Ask, Request, Status, ADU_BYTES_MAX};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// What the router last knew of a node.
#[derive(Debug, Clone, Copy, Default)]
struct View {
    /// The last good poll's status and when it was read; `None`: unknown or down.
    status: Option<(Status, Instant)>,
}

/// One request connection to a node.
#[derive(Debug)]
struct Backend {
    stream: TcpStream,
    /// The client id this connection carries on the node (set by the router).
    client_id: Option<u32>,
    /// The next transaction id of the router's own requests (the client-id write).
    tid: u16,
    /// When it was last given back.
    idle_since: Instant,
}

/// A request connection idle longer than this is closed rather than used: a node closes
/// a connection idle for 60 s (runtime/src/io/hmi_server.rs `IDLE_TIMEOUT`), and a
/// request on a connection the node just closed fails for nothing.
const BACKEND_IDLE_MAX: Duration = Duration::from_secs(30);

#[derive(Debug, Default)]
struct Pool {
    idle: Vec<Backend>,
    /// Connections open, idle or in use.
    open: usize,
}

/// One node of a pair.
#[derive(Debug)]
struct Node {
    addr: SocketAddr,
    view: Mutex<View>,
    pool: Mutex<Pool>,
    freed: Condvar,
}

/// Counters, for the log at exit and the tests.
#[derive(Debug, Default)]
pub struct Counters {
    /// HMI connections accepted.
    pub connections: AtomicU64,
    /// HMI connections closed at accept (`clients_max` reached).
    pub refused: AtomicU64,
    /// Requests answered.
    pub requests: AtomicU64,
    /// Requests that went to a second node or a second time (a failure or a refusal).
    pub retries: AtomicU64,
    /// Requests answered with an exception the router made (0A, 0B).
    pub exceptions: AtomicU64,
}

/// The router's shared state.
#[derive(Debug)]
pub struct Router {
    file: RouterFile,
    /// Per pair, its nodes.
    pairs: Vec<Vec<Node>>,
    /// Per unit id, its pairs' windows: (base, pair index), by base.
    units: Vec<Vec<(u16, usize)>>,
    clients: AtomicUsize,
    stop: AtomicBool,
    /// What the router did.
    pub counters: Counters,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A thread that panicked while holding it left plain data: go on with it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Reads one whole ADU from `stream` (its read timeout set by the caller), at most
/// [`ADU_BYTES_MAX`] bytes; an error on a bad header or a closed stream.
fn read_adu(stream: &mut TcpStream, deadline: Option<Instant>) -> io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(ADU_BYTES_MAX);
    loop {
        let want = match wire::adu_len(&buf) {
            Err(wire::NotModbus) => return Err(io::Error::new(io::ErrorKind::InvalidData, "not Modbus/TCP")),
            Ok(Some(_)) => return Ok(buf),
            Ok(None) if buf.len() < 6 => 6 - buf.len(),
            Ok(None) => 6 + usize::from(u16::from_be_bytes([buf[4], buf[5]])) - buf.len(),
        };
        if let Some(deadline) = deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "no answer in time"));
            }
            stream.set_read_timeout(Some(left))?;
        }
        let mut chunk = [0u8; ADU_BYTES_MAX];
        match stream.read(&mut chunk[..want]) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed")),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Sends `request` and reads the answer with the same transaction id, by `deadline`.
fn exchange(stream: &mut TcpStream, request: &[u8], deadline: Instant) -> io::Result<Vec<u8>> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(io::Error::new(io::ErrorKind::TimedOut, "no time left"));
    }
    stream.set_write_timeout(Some(left))?;
    stream.write_all(request)?;
    let response = read_adu(stream, Some(deadline))?;
    if wire::transaction_of(&response) != wire::transaction_of(request) || !wire::answers(&response, request[7]) {
        // One request at a time on a connection: anything else is a node out of step.
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "an answer to another request",
        ));
    }
    Ok(response)
}

fn connect(addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// A node whose loop was recently this late (status register 12, µs) is falling behind
/// (its host holds it up: a missed cycle at 1 kHz): it takes reads only when its peers do
/// too, whatever its CPU share — a descheduled node's CPU share looks low.
const BEHIND_US: u16 = 1000;

/// How a node's status ranks it for a read: lower is better; `None`: not for reads.
/// First the class: in sync, a primary (alone), a lagging backup, unknown. Then the
/// load (docs/DECISIONS.md, 2026-11-26): keeping its deadlines before falling
/// [`BEHIND_US`] behind, then the least CPU share (‰, the reads it serves included),
/// then the least lateness.
fn read_rank(status: Option<Status>) -> Option<(u8, bool, u16, u16)> {
    let Some(s) = status else {
        return Some((3, false, 0, 0));
    };
    let class = match s {
        s if s.in_sync() => 0,
        s if s.primary() => 1,
        s if s.role == 2 && s.sync == 4 => 2,
        _ => return None,
    };
    Some((class, s.load_us >= BEHIND_US, s.cpu_permille, s.load_us))
}

/// Why one attempt did not give the HMI its answer.
enum Failed {
    /// The node refused a write and did not apply it (0A, 06).
    Refused(u8),
    /// The outcome is unknown (0B, a failure after the write was sent).
    Unknown(String),
    /// Nothing was sent (no connection): the write was not applied by this attempt.
    NotSent(String),
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failed::Refused(code) => write!(f, "refused, exception {code:#04x}, not applied"),
            Failed::Unknown(why) => write!(f, "{why}, outcome unknown"),
            Failed::NotSent(why) => write!(f, "{why}, not sent"),
        }
    }
}

impl Router {
    /// The router for a checked file.
    pub fn new(file: RouterFile) -> Arc<Router> {
        let mut units = vec![Vec::new(); 256];
        let pairs = file
            .pair
            .iter()
            .enumerate()
            .map(|(i, pair)| {
                units[usize::from(pair.unit)].push((pair.base, i));
                pair.nodes
                    .iter()
                    .map(|&addr| Node {
                        addr,
                        view: Mutex::new(View::default()),
                        pool: Mutex::new(Pool::default()),
                        freed: Condvar::new(),
                    })
                    .collect()
            })
            .collect();
        for windows in &mut units {
            windows.sort_unstable();
        }
        Arc::new(Router {
            file,
            pairs,
            units,
            clients: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            counters: Counters::default(),
        })
    }

    /// Asks every thread to end (at its next wake-up: within a poll or a timeout).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Starts the pollers, then serves `listener` until [`Router::stop`].
    pub fn serve(self: &Arc<Router>, listener: TcpListener) -> io::Result<()> {
        for p in 0..self.pairs.len() {
            for n in 0..self.pairs[p].len() {
                let router = self.clone();
                std::thread::Builder::new()
                    .name(format!("poll-{p}-{n}"))
                    .spawn(move || router.poll_node(p, n))?;
            }
        }
        listener.set_nonblocking(false)?;
        for stream in listener.incoming() {
            if self.stopped() {
                break;
            }
            let stream = match stream {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("twinloop-router: accept: {e}");
                    // An accept error (out of descriptors) repeats at once: pace it.
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
            };
            if self.clients.fetch_add(1, Ordering::SeqCst) >= self.file.router.clients_max {
                self.clients.fetch_sub(1, Ordering::SeqCst);
                self.counters.refused.fetch_add(1, Ordering::Relaxed);
                drop(stream);
                continue;
            }
            self.counters.connections.fetch_add(1, Ordering::Relaxed);
            let router = self.clone();
            let spawned = std::thread::Builder::new().name("hmi".into()).spawn(move || {
                router.serve_client(stream);
                router.clients.fetch_sub(1, Ordering::SeqCst);
            });
            if let Err(e) = spawned {
                self.clients.fetch_sub(1, Ordering::SeqCst);
                eprintln!("twinloop-router: cannot start a connection's thread: {e}");
            }
        }
        Ok(())
    }

    /// Polls node `n` of pair `p` every `poll_ms` until the router stops.
    fn poll_node(&self, p: usize, n: usize) {
        let node = &self.pairs[p][n];
        let name = &self.file.pair[p].name;
        let unit = self.file.pair[p].unit;
        let mut stream: Option<TcpStream> = None;
        let mut tid = 0u16;
        let mut said = String::new();
        let mut next_at = Instant::now();
        while !self.stopped() {
            tid = tid.wrapping_add(1);
            let result = (|| -> Result<Status, String> {
                if stream.is_none() {
                    stream = Some(connect(node.addr, self.file.request_timeout()).map_err(|e| e.to_string())?);
                }
                let s = stream.as_mut().ok_or("no connection")?;
                let deadline = Instant::now() + self.file.request_timeout();
                let response = exchange(s, &wire::status_request(tid), deadline).map_err(|e| e.to_string())?;
                wire::parse_status(&response, tid).map_err(|e| format!("{e:?}"))
            })();
            let now = Instant::now();
            let text = match &result {
                Ok(s) => format!("role {} sync {} epoch {:#x}", s.role, s.sync, s.epoch),
                Err(e) => format!("down ({e})"),
            };
            match result {
                Ok(status) => lock(&node.view).status = Some((status, now)),
                Err(_) => {
                    lock(&node.view).status = None;
                    stream = None;
                }
            }
            if text != said {
                eprintln!("twinloop-router: unit {unit} {name} {}: {text}", node.addr);
                said = text;
            }
            // The poll's period: a pace, not a wait for a condition.
            next_at += self.file.poll();
            let now = Instant::now();
            if next_at > now {
                std::thread::sleep(next_at - now);
            } else {
                next_at = now;
            }
        }
    }

    /// The fresh status of a node, if any.
    fn status(&self, node: &Node) -> Option<Status> {
        let view = *lock(&node.view);
        view.status
            .filter(|(_, at)| at.elapsed() <= self.file.stale())
            .map(|(s, _)| s)
    }

    fn mark_down(&self, node: &Node) {
        lock(&node.view).status = None;
    }

    /// Takes a request connection to `node` (an idle one, a new one, or the first freed
    /// before `deadline`).
    fn acquire(&self, node: &Node, deadline: Instant) -> io::Result<Backend> {
        let mut pool = lock(&node.pool);
        loop {
            if let Some(backend) = pool.idle.pop() {
                if backend.idle_since.elapsed() < BACKEND_IDLE_MAX {
                    return Ok(backend);
                }
                // Closed (dropped) rather than risked; its place is open again.
                pool.open = pool.open.saturating_sub(1);
                continue;
            }
            if pool.open < self.file.router.connections_per_node {
                pool.open += 1;
                drop(pool);
                let timeout = deadline
                    .saturating_duration_since(Instant::now())
                    .min(self.file.request_timeout())
                    .max(Duration::from_millis(1));
                return match connect(node.addr, timeout) {
                    Ok(stream) => Ok(Backend {
                        stream,
                        client_id: None,
                        tid: 0,
                        idle_since: Instant::now(),
                    }),
                    Err(e) => {
                        self.release(node, None);
                        Err(e)
                    }
                };
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "every connection to the node is busy",
                ));
            }
            pool = node.freed.wait_timeout(pool, left).unwrap_or_else(|e| e.into_inner()).0;
        }
    }

    /// Gives a connection back (`None`: it broke and is closed).
    fn release(&self, node: &Node, backend: Option<Backend>) {
        let mut pool = lock(&node.pool);
        match backend {
            Some(mut b) => {
                b.idle_since = Instant::now();
                pool.idle.push(b);
            }
            None => pool.open = pool.open.saturating_sub(1),
        }
        node.freed.notify_one();
    }

    /// One HMI connection: its requests, one at a time, until it closes or idles.
    fn serve_client(&self, mut stream: TcpStream) {
        let _ = stream.set_nodelay(true);
        let idle = Duration::from_millis(self.file.router.idle_timeout_ms);
        // As a node takes it: the HMI's IPv4 address (an IPv6 one folded to 32 bits).
        let mut client_id = match stream.peer_addr().map(|a| a.ip()) {
            Ok(std::net::IpAddr::V4(ip)) => u32::from(ip),
            Ok(std::net::IpAddr::V6(ip)) => ip
                .octets()
                .chunks_exact(4)
                .fold(0u32, |acc, c| acc ^ u32::from_be_bytes([c[0], c[1], c[2], c[3]])),
            Err(_) => return,
        };
        while !self.stopped() {
            if stream.set_read_timeout(Some(idle)).is_err() {
                return;
            }
            let Ok(adu) = read_adu(&mut stream, None) else {
                return; // closed, idle, or not Modbus/TCP
            };
            let Some(request) = wire::classify(&adu, client_id) else {
                return;
            };
            let span = wire::span(&adu);
            let answer = match self.window(request.unit, span) {
                Err(code) => {
                    self.counters.exceptions.fetch_add(1, Ordering::Relaxed);
                    wire::exception(&request, code)
                }
                Ok((p, base)) => {
                    // The pair's registers as its nodes number them: the request's
                    // address less the window's base (window() picked a base at or
                    // below it: never saturates), and back in a write's echo.
                    let mut adu = adu;
                    let address = span.map(|(address, _)| address);
                    if let Some(address) = address {
                        wire::set_address(&mut adu, address.saturating_sub(base));
                    }
                    let Some(request) = wire::classify(&adu, client_id) else {
                        return;
                    };
                    let mut answer = match request.ask {
                        Ask::ClientId(id) => {
                            client_id = id;
                            wire::client_id_echo(&adu)
                        }
                        _ => self.route(p, &request, &adu, client_id),
                    };
                    if let Some(address) = address {
                        wire::set_echo_address(&mut answer, request.function, address);
                    }
                    answer
                }
            };
            self.counters.requests.fetch_add(1, Ordering::Relaxed);
            if stream.set_write_timeout(Some(self.file.request_timeout())).is_err()
                || stream.write_all(&answer).is_err()
            {
                return;
            }
        }
    }

    /// The pair a request on `unit` addressing `span` (first register, count; `None`: a
    /// function without an address) goes to, and its window's base: the window with the
    /// highest base at or below the first register, which must hold the whole span; a
    /// request without an address goes to the unit's lowest window. An exception code
    /// else: 0A for a unit id no pair has (a gateway's "no path"), 02 for registers
    /// outside one window.
    fn window(&self, unit: u8, span: Option<(u16, u16)>) -> Result<(usize, u16), u8> {
        let windows = &self.units[usize::from(unit)];
        let &(lowest, first) = windows.first().ok_or(wire::PATH_UNAVAILABLE)?;
        let Some((address, count)) = span else {
            return Ok((first, lowest));
        };
        let i = windows.partition_point(|&(base, _)| base <= address);
        let &(base, p) = i
            .checked_sub(1)
            .and_then(|i| windows.get(i))
            .ok_or(wire::ILLEGAL_ADDRESS)?;
        let end = windows.get(i).map_or(0x1_0000, |&(next, _)| u32::from(next));
        if u32::from(address) + u32::from(count.max(1)) > end {
            return Err(wire::ILLEGAL_ADDRESS);
        }
        Ok((p, base))
    }

    /// The answer to `request` (whole: `adu`, addressed as pair `p`'s nodes number their
    /// registers) from `client_id`.
    fn route(&self, p: usize, request: &Request, adu: &[u8], client_id: u32) -> Vec<u8> {
        let nodes = &self.pairs[p];
        let deadline = Instant::now() + self.file.request_deadline();
        let write = request.ask == Ask::Write;
        let mut unknown = false;
        let mut refused = wire::PATH_UNAVAILABLE;
        let mut attempts = 0u32;
        // The nodes a read failed on since the last pause: each is tried once a round.
        let mut failed_reads = [false; crate::config::NODES_PER_PAIR_MAX];
        while Instant::now() < deadline && !self.stopped() {
            let target = if write {
                self.pick_primary(nodes)
            } else {
                self.pick_reader(nodes, &failed_reads)
            };
            let Some(node) = target else {
                // No node to try now: the next poll may show one.
                std::thread::sleep(self.file.poll().min(deadline.saturating_duration_since(Instant::now())));
                failed_reads = Default::default();
                continue;
            };
            if attempts > 0 {
                self.counters.retries.fetch_add(1, Ordering::Relaxed);
            }
            attempts += 1;
            let what = |node: &Node| {
                format!(
                    "unit {} {} (client {client_id:#010x}, transaction {}) on {}",
                    request.unit,
                    if write { "write" } else { "read" },
                    request.transaction,
                    node.addr
                )
            };
            let failed = match self.attempt(node, request, adu, client_id, deadline) {
                Ok(mut answer) => {
                    if let Ask::Read { address, count } = request.ask {
                        wire::patch_client_id(&mut answer, address, count, client_id);
                    }
                    if attempts > 1 {
                        eprintln!("twinloop-router: {}: answered at attempt {attempts}", what(node));
                    }
                    return answer;
                }
                Err(failed) => failed,
            };
            if attempts == 1 {
                // Once a request (the outcome is logged too): a failover's retries every
                // poll_ms do not flood the log.
                eprintln!(
                    "twinloop-router: {}: {failed}; retrying for up to {} ms",
                    what(node),
                    self.file.router.request_deadline_ms
                );
            }
            match failed {
                Failed::Unknown(_) => unknown = true,
                Failed::Refused(code) => refused = code,
                Failed::NotSent(_) => {}
            }
            if let Some(i) = nodes.iter().position(|n| std::ptr::eq(n, node)) {
                failed_reads[i] = true;
            }
            if write {
                // A refusal or a lost primary: the next poll shows who is primary now.
                std::thread::sleep(self.file.poll().min(deadline.saturating_duration_since(Instant::now())));
            }
        }
        self.counters.exceptions.fetch_add(1, Ordering::Relaxed);
        let code = if unknown {
            wire::TARGET_FAILED
        } else if write {
            refused
        } else {
            wire::TARGET_FAILED
        };
        wire::exception(request, code)
    }

    /// The node to read from: the best ranked by [`read_rank`], the least loaded among
    /// equals, the first listed among equal loads; not one that `failed` marks.
    fn pick_reader<'a>(&self, nodes: &'a [Node], failed: &[bool]) -> Option<&'a Node> {
        nodes
            .iter()
            .zip(failed)
            .filter(|(_, &failed)| !failed)
            .filter_map(|(n, _)| read_rank(self.status(n)).map(|rank| (rank, n)))
            .min_by_key(|(rank, _)| *rank)
            .map(|(_, n)| n)
    }

    /// The node to write to: a primary, the highest epoch's should two say so.
    fn pick_primary<'a>(&self, nodes: &'a [Node]) -> Option<&'a Node> {
        nodes
            .iter()
            .filter_map(|n| self.status(n).filter(Status::primary).map(|s| (s.epoch, n)))
            .max_by_key(|(epoch, _)| *epoch)
            .map(|(_, n)| n)
    }

    /// One try of `request` on `node`.
    fn attempt(
        &self,
        node: &Node,
        request: &Request,
        adu: &[u8],
        client_id: u32,
        deadline: Instant,
    ) -> Result<Vec<u8>, Failed> {
        let exchange_by = deadline.min(Instant::now() + self.file.request_timeout());
        let write = request.ask == Ask::Write;
        // A node holds a write's answer until its backup ran the frame, or 0B.
        let answer_by = if write {
            deadline.min(Instant::now() + self.file.write_timeout())
        } else {
            exchange_by
        };
        let mut backend = match self.acquire(node, exchange_by) {
            Ok(b) => b,
            Err(e) => {
                self.mark_down(node);
                return Err(Failed::NotSent(e.to_string()));
            }
        };
        if write && backend.client_id != Some(client_id) {
            backend.tid = backend.tid.wrapping_add(1);
            let set = wire::client_id_request(backend.tid, client_id);
            match exchange(&mut backend.stream, &set, exchange_by) {
                Ok(answer) if wire::client_id_written(&answer, backend.tid) => backend.client_id = Some(client_id),
                other => {
                    self.release(node, None);
                    self.mark_down(node);
                    let why = other.map_or_else(|e| e.to_string(), |_| "the client id was not set".into());
                    return Err(Failed::NotSent(why));
                }
            }
        }
        match exchange(&mut backend.stream, adu, answer_by) {
            Ok(answer) => {
                self.release(node, Some(backend));
                match wire::exception_code(&answer) {
                    Some(code @ (wire::PATH_UNAVAILABLE | wire::DEVICE_BUSY)) if write => {
                        // Not applied: another primary (or this one, paired again) may take it.
                        Err(Failed::Refused(code))
                    }
                    Some(wire::TARGET_FAILED) if write => Err(Failed::Unknown("exception 0x0b".into())),
                    _ => Ok(answer),
                }
            }
            Err(e) => {
                self.release(node, None);
                self.mark_down(node);
                Err(if write {
                    Failed::Unknown(e.to_string())
                } else {
                    Failed::NotSent(e.to_string())
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(role: u16, sync: u16, load_us: u16) -> Option<Status> {
        loaded(role, sync, load_us, 0)
    }

    /// A status with a CPU share too.
    fn loaded(role: u16, sync: u16, load_us: u16, cpu_permille: u16) -> Option<Status> {
        Some(Status {
            role,
            sync,
            frame: 1,
            epoch: 1,
            load_us,
            cpu_permille,
        })
    }

    #[test]
    fn read_rank_in_sync_keeping_deadlines_then_least_cpu_then_least_late() {
        // Both in sync: the one with the lower CPU share, whatever its jitter below 1 ms.
        assert!(read_rank(loaded(2, 3, 900, 12)) < read_rank(loaded(1, 1, 40, 15)));
        // Equal CPU share: the less late.
        assert!(read_rank(loaded(1, 1, 40, 15)) < read_rank(loaded(2, 3, 900, 15)));
        // A loop 1 ms or more behind (a host holding it up; its CPU share looks low)
        // after one that keeps its deadlines, however busy that one is.
        assert!(read_rank(loaded(2, 3, 999, 900)) < read_rank(loaded(1, 1, 1000, 5)));
        // Both behind: the CPU share again.
        assert!(read_rank(loaded(2, 3, 5000, 10)) < read_rank(loaded(1, 1, 1000, 20)));
        // Load never lifts a node out of its class.
        assert!(read_rank(loaded(1, 0, 0, 0)) > read_rank(loaded(2, 3, 65535, 1000)));
    }

    #[test]
    fn read_rank_prefers_in_sync_then_primary_never_joining() {
        assert!(read_rank(status(2, 3, 900)) < read_rank(status(1, 0, 10)));
        assert!(read_rank(status(1, 1, 10)) < read_rank(status(2, 3, 20)));
        assert!(read_rank(status(1, 0, 10)) < read_rank(status(2, 4, 0)));
        assert!(read_rank(status(2, 4, 900)) < read_rank(None));
        assert_eq!(read_rank(status(2, 2, 0)), None);
        assert_eq!(read_rank(status(0, 0, 0)), None);
    }

    #[test]
    fn pick_reader_least_loaded_in_sync_and_pick_primary_highest_epoch() {
        let text = "[router]\n[[pair]]\nunit = 1\nnodes = [\"127.0.0.1:1\", \"127.0.0.1:2\", \"127.0.0.1:3\"]\n";
        let router = Router::new(RouterFile::parse(text).unwrap());
        let nodes = &router.pairs[0];
        let set = |i: usize, s: Option<Status>| lock(&nodes[i].view).status = s.map(|s| (s, Instant::now()));
        // A paired primary loaded 900 µs, an in-sync backup loaded 40, a joining node.
        set(0, status(1, 1, 900));
        set(1, status(2, 3, 40));
        set(2, status(2, 2, 0));
        let none = [false; 4];
        assert!(std::ptr::eq(router.pick_reader(nodes, &none).unwrap(), &nodes[1]));
        // The backup failed this round: the primary.
        let failed = [false, true, false, false];
        assert!(std::ptr::eq(router.pick_reader(nodes, &failed).unwrap(), &nodes[0]));
        // Only the joining node left: nothing to read from now.
        assert!(router.pick_reader(nodes, &[true, true, false, false]).is_none());
        assert!(std::ptr::eq(router.pick_primary(nodes).unwrap(), &nodes[0]));
        // Two say primary (a stale view of the old one): the higher epoch.
        let mut newer = status(1, 0, 0).unwrap();
        newer.epoch = 2;
        set(2, Some(newer));
        assert!(std::ptr::eq(router.pick_primary(nodes).unwrap(), &nodes[2]));
        // A status older than the stale limit is not used.
        lock(&nodes[2].view).status = Some((newer, Instant::now() - router.file.stale() - Duration::from_millis(1)));
        assert!(std::ptr::eq(router.pick_primary(nodes).unwrap(), &nodes[0]));
    }

    /// A port nothing listens on (bound, then closed).
    fn closed_port() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    }

    #[test]
    fn route_read_with_every_node_down_paces_its_retries_and_answers_0b() {
        let text = format!(
            "[router]\npoll_ms = 100\nrequest_timeout_ms = 100\nwrite_timeout_ms = 100\nrequest_deadline_ms = 500\n\
             [[pair]]\nunit = 3\nnodes = [\"{}\", \"{}\"]\n",
            closed_port(),
            closed_port()
        );
        let router = Router::new(RouterFile::parse(&text).unwrap());
        let read = [0, 9, 0, 0, 0, 6, 3, 3, 0, 0, 0, 16];
        let request = wire::classify(&read, 0).unwrap();
        let answer = router.route(0, &request, &read, 0);
        assert_eq!(answer, wire::exception(&request, wire::TARGET_FAILED));
        // Each node once a round, a round every poll_ms: about 2 × 5 in 500 ms. A read
        // that tried again at once after a refused connect made thousands.
        let retries = router.counters.retries.load(Ordering::Relaxed);
        assert!(retries <= 14, "{retries} retries in 500 ms");
        // No pair for unit 4: 0A at once.
        assert_eq!(router.window(4, Some((0, 16))), Err(wire::PATH_UNAVAILABLE));
    }

    /// The (function, first register) of each request a fake node got.
    type Requests = Arc<Mutex<Vec<(u8, u16)>>>;

    /// The CPU share a fake node's status block says, ‰.
    const FAKE_CPU_PERMILLE: u16 = 321;

    /// A node that answers the status read as a paired primary, any other read of
    /// holding registers with each register's own address as its value, and a write by
    /// its echo; it records the (function, address) of every request but the status read.
    fn fake_node() -> (SocketAddr, Requests) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let log = log.clone();
                std::thread::spawn(move || {
                    while let Ok(adu) = read_adu(&mut stream, None) {
                        let (function, address, count) = (
                            adu[7],
                            u16::from_be_bytes([adu[8], adu[9]]),
                            u16::from_be_bytes([adu[10], adu[11]]),
                        );
                        let mut answer = adu[..8].to_vec();
                        if function == 3 && address == 0 && count == wire::STATUS_REGISTERS {
                            let mut block: wire::StatusBlock = Default::default();
                            block[..4].copy_from_slice(&[wire::STATUS_MAGIC, wire::STATUS_LAYOUT, 1, 1]);
                            block[11] = 0x101;
                            block[usize::from(wire::CPU_SHARE_REGISTER)] = FAKE_CPU_PERMILLE;
                            answer.push(2 * wire::STATUS_REGISTERS as u8);
                            answer.extend(block.iter().flat_map(|w| w.to_be_bytes()));
                        } else {
                            lock(&log).push((function, address));
                            if function == 3 {
                                answer.push((count * 2) as u8);
                                answer.extend((address..address + count).flat_map(u16::to_be_bytes));
                            } else {
                                answer.extend_from_slice(&adu[8..12]);
                            }
                        }
                        let length = (answer.len() - 6) as u16;
                        answer[4..6].copy_from_slice(&length.to_be_bytes());
                        if stream.write_all(&answer).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (addr, seen)
    }

    #[test]
    fn serve_pairs_on_one_unit_by_base_translates_addresses() {
        let (low, low_seen) = fake_node();
        let (high, high_seen) = fake_node();
        let text = format!(
            "[router]\npoll_ms = 10\n\
             [[pair]]\nunit = 1\nnodes = [\"{low}\"]\n\
             [[pair]]\nunit = 1\nbase = 1000\nnodes = [\"{high}\"]\n"
        );
        let router = Router::new(RouterFile::parse(&text).unwrap());
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let at = listener.local_addr().unwrap();
        let serving = router.clone();
        std::thread::spawn(move || serving.serve(listener));
        let mut hmi = TcpStream::connect(at).unwrap();
        hmi.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut ask = |request: &[u8]| {
            hmi.write_all(request).unwrap();
            read_adu(&mut hmi, None).unwrap()
        };
        // Until the first polls, the router knows no primary: a write waits for one,
        // within request_deadline_ms; reads go to a node of unknown status anyway.
        // Registers 1064..1065 of unit 1: the second pair's 64..65.
        assert_eq!(
            ask(&[0, 1, 0, 0, 0, 6, 1, 3, 0x04, 0x28, 0, 2]),
            [0, 1, 0, 0, 0, 7, 1, 3, 4, 0, 64, 0, 65]
        );
        // Registers 64..65: the first pair's.
        assert_eq!(
            ask(&[0, 2, 0, 0, 0, 6, 1, 3, 0, 64, 0, 2]),
            [0, 2, 0, 0, 0, 7, 1, 3, 4, 0, 64, 0, 65]
        );
        // A write of 1068: the second pair's 68, echoed as 1068.
        assert_eq!(
            ask(&[0, 3, 0, 0, 0, 6, 1, 6, 0x04, 0x2C, 0, 1]),
            [0, 3, 0, 0, 0, 6, 1, 6, 0x04, 0x2C, 0, 1]
        );
        // Across the windows' boundary: 02 from the router, no node asked.
        assert_eq!(
            ask(&[0, 4, 0, 0, 0, 6, 1, 3, 0x03, 0xE7, 0, 2]),
            [0, 4, 0, 0, 0, 3, 1, 0x83, 2]
        );
        // The client id at the second window's base + 14: the router's, carried before
        // the next write (to 14 on the node).
        assert_eq!(
            ask(&[0, 5, 0, 0, 0, 11, 1, 16, 0x03, 0xF6, 0, 2, 4, 0x12, 0x34, 0x56, 0x78]),
            [0, 5, 0, 0, 0, 6, 1, 16, 0x03, 0xF6, 0, 2]
        );
        assert_eq!(
            ask(&[0, 6, 0, 0, 0, 6, 1, 6, 0x04, 0x2C, 0, 1]),
            [0, 6, 0, 0, 0, 6, 1, 6, 0x04, 0x2C, 0, 1]
        );
        // The status block through the router, both windows: the node's, CPU share
        // (register 16) included, but the client id (14..15): the HMI's.
        for (tid, base) in [(7u8, 0u16), (8, 1000)] {
            let [high, low] = base.to_be_bytes();
            let answer = ask(&[0, tid, 0, 0, 0, 6, 1, 3, high, low, 0, 17]);
            assert_eq!(&answer[7..9], &[3, 34], "{answer:?}");
            let word = |r: usize| u16::from_be_bytes([answer[9 + 2 * r], answer[10 + 2 * r]]);
            assert_eq!((word(0), word(1)), (wire::STATUS_MAGIC, wire::STATUS_LAYOUT));
            assert_eq!((word(14), word(15)), (0x1234, 0x5678));
            assert_eq!(word(16), FAKE_CPU_PERMILLE);
        }
        router.stop();
        assert_eq!(*lock(&low_seen), [(3, 64)]);
        // The first write carried the HMI's address as its client id, the second 0x12345678.
        assert_eq!(*lock(&high_seen), [(3, 64), (16, 14), (6, 68), (16, 14), (6, 68)]);
    }

    #[test]
    fn window_by_unit_and_base_whole_span_or_02() {
        let text = "[router]\n\
             [[pair]]\nunit = 1\nbase = 1000\nnodes = [\"127.0.0.1:1\"]\n\
             [[pair]]\nunit = 1\nnodes = [\"127.0.0.1:2\"]\n\
             [[pair]]\nunit = 2\nbase = 100\nnodes = [\"127.0.0.1:3\"]\n";
        let router = Router::new(RouterFile::parse(text).unwrap());
        // Unit 1: pair 1 at 0..1000, pair 0 at 1000..65536 (listed in any order).
        assert_eq!(router.window(1, Some((0, 68))), Ok((1, 0)));
        assert_eq!(router.window(1, Some((932, 68))), Ok((1, 0)));
        assert_eq!(router.window(1, Some((1000, 68))), Ok((0, 1000)));
        assert_eq!(router.window(1, Some((65535, 1))), Ok((0, 1000)));
        // Across the boundary, or past the last register: 02.
        assert_eq!(router.window(1, Some((999, 2))), Err(wire::ILLEGAL_ADDRESS));
        assert_eq!(router.window(1, Some((65535, 2))), Err(wire::ILLEGAL_ADDRESS));
        // Below unit 2's only base: 02; a function without an address: its lowest window.
        assert_eq!(router.window(2, Some((50, 1))), Err(wire::ILLEGAL_ADDRESS));
        assert_eq!(router.window(2, Some((164, 2))), Ok((2, 100)));
        assert_eq!(router.window(1, None), Ok((1, 0)));
        assert_eq!(router.window(3, None), Err(wire::PATH_UNAVAILABLE));
    }
}
