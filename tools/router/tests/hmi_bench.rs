//! HMI benchmarks of issue 18 (docs/BENCHMARKS.md, "HMI reads a backup absorbs" and
//! "HMI write latency"): figures printed, never judged — the machine's load decides them.
//!
//! One pair of `twinloop-counter` nodes (real processes on loopback, default runtime
//! timings, a frame every 2 ms from an I/O source, each node's Prometheus endpoint on).
//!
//! 1. **Reads a backup absorbs.** The primary's cycle — from its `/metrics`: frames
//!    handled and how long each took (`twinloop_frame_handling_seconds`), how late its
//!    deadlines were handled (`twinloop_deadline_lateness_seconds`, the jitter), late
//!    wake-ups — and its CPU (/proc/PID/stat, and status register 16 as the node says
//!    it), over a window idle, then with `CLIENTS`
//!    Modbus clients reading the status block and the tags (registers 0..67) from the
//!    **backup** at increasing rates, then the same load on the **primary** for contrast.
//! 2. **Write latency.** One write at a time of 1 to the tag `add` (register 68), to the
//!    primary, to the backup (which forwards it) and through a `twinloop-router` (which
//!    sends it to the primary): from the request to its acknowledgement, and to the new
//!    count visible on each node (a watcher thread reads both nodes' `total` back to
//!    back throughout).
//!
//! `cargo test --release -p twinloop-router --test hmi_bench -- --ignored --nocapture`
// Real processes on a real clock: every wait is bounded with wall time; the load's pace
// is a sleep to the next request's time, not a wait for a condition.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use twinloop::io::config::{ConsoleConfig, FramesConfig, HmiConfig, LinkConfig, MetricsConfig, OutputsConfig};
use twinloop::io_protocol;
use twinloop::node_main::config::{NodeFile, NodeTable};
use twinloop::node_main::AnyAppSettings;
use twinloop::testing::{NodePorts, PortPool};

const COUNTER: &str = env!("CARGO_BIN_EXE_twinloop-counter");
const ROUTER: &str = env!("CARGO_BIN_EXE_twinloop-router");
/// Reading clients at once (a node serves 8 HMI connections; the watcher and the
/// health checks use others).
const CLIENTS: usize = 4;
/// Each load step's measuring window.
const WINDOW: Duration = Duration::from_secs(4);
/// Writes per path in the write-latency bench.
const WRITES: usize = 200;
/// Registers of one read: the status block, the reserved ones and the counter's tags.
const READ_COUNT: u16 = 68;
const TOTAL: u16 = 64;
const ADD: u16 = 68;

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A child process, killed and reaped when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for(limit: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for: {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Node `i`: the counter program with the runtime's default timings, its HMI server on
/// `hmi`, its metrics on `metrics`.
fn node_toml(i: usize, ports: &[NodePorts; 2], hmi: u16, metrics: u16, dir: &Path) -> String {
    let (me, peer) = (&ports[i], &ports[1 - i]);
    let n = i as u8 + 1;
    let link = |l: usize| LinkConfig {
        bind: local(me.links[l][0]),
        bulk_bind: Some(local(me.links[l][1])),
        peer: local(peer.links[l][0]),
        bulk_peer: Some(local(peer.links[l][1])),
        ..LinkConfig::default()
    };
    let file = NodeFile::<AnyAppSettings> {
        node: NodeTable {
            name: format!("bench-{n}"),
            state_file: dir.join(format!("bench-{n}.epoch")),
            ..NodeTable::default()
        },
        runtime: twinloop::Config {
            node_id: n,
            priority: if i == 0 { 1 } else { 0 },
            ..twinloop::Config::default()
        },
        frames: FramesConfig {
            bind: local(me.frames),
            ..FramesConfig::default()
        },
        links: vec![link(0), link(1)],
        outputs: OutputsConfig {
            bind: local(0),
            sinks: vec![local(9)],
            ..OutputsConfig::default()
        },
        console: ConsoleConfig {
            bind: local(me.console),
            key_file: Some(PathBuf::from("console.key")),
            ..ConsoleConfig::default()
        },
        metrics: MetricsConfig {
            bind: Some(local(metrics)),
        },
        hmi: HmiConfig {
            listen: Some(local(hmi)),
        },
        app: AnyAppSettings(toml::Table::new()),
        ..NodeFile::default()
    };
    file.to_toml().expect("a node file serializes")
}

/// One Modbus/TCP exchange on `stream`: the request's PDU under transaction `tid`, unit
/// 1; the answer's PDU, or None on an error of the connection.
fn exchange(stream: &mut TcpStream, tid: u16, pdu: &[u8]) -> Option<Vec<u8>> {
    let length = u16::try_from(pdu.len() + 1).ok()?;
    let mut request = Vec::with_capacity(7 + pdu.len());
    request.extend_from_slice(&tid.to_be_bytes());
    request.extend_from_slice(&[0, 0]);
    request.extend_from_slice(&length.to_be_bytes());
    request.push(1);
    request.extend_from_slice(pdu);
    stream.write_all(&request).ok()?;
    let mut head = [0u8; 7];
    stream.read_exact(&mut head).ok()?;
    let length = usize::from(u16::from_be_bytes([head[4], head[5]]));
    if u16::from_be_bytes([head[0], head[1]]) != tid || !(2..=254).contains(&length) {
        return None;
    }
    let mut answer = vec![0u8; length - 1];
    stream.read_exact(&mut answer).ok()?;
    Some(answer)
}

fn connect(port: u16) -> TcpStream {
    let stream =
        TcpStream::connect_timeout(&local(port), Duration::from_secs(2)).expect("connect to a node's HMI server");
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

/// `count` holding registers from `address`, or None on an exception or an error.
fn read(stream: &mut TcpStream, tid: u16, address: u16, count: u16) -> Option<Vec<u16>> {
    let [ah, al] = address.to_be_bytes();
    let [ch, cl] = count.to_be_bytes();
    let answer = exchange(stream, tid, &[3, ah, al, ch, cl])?;
    (answer.first() == Some(&3) && answer.len() == 2 + usize::from(count) * 2).then(|| {
        answer[2..]
            .chunks_exact(2)
            .map(|w| u16::from_be_bytes([w[0], w[1]]))
            .collect()
    })
}

/// A node's CPU share as its status block says (register 16, ‰ over the last whole
/// second), on a connection of its own.
fn cpu_share(port: u16) -> Option<u16> {
    let mut stream = TcpStream::connect_timeout(&local(port), Duration::from_millis(500)).ok()?;
    stream.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
    read(&mut stream, 1, 16, 1).map(|r| r[0])
}

/// A node's (role, sync), on a connection of its own.
fn role_sync(port: u16) -> Option<(u16, u16)> {
    let mut stream = TcpStream::connect_timeout(&local(port), Duration::from_millis(500)).ok()?;
    stream.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
    read(&mut stream, 1, 2, 2).map(|r| (r[0], r[1]))
}

/// The node's `/metrics` text.
fn scrape(port: u16) -> String {
    let mut stream = TcpStream::connect_timeout(&local(port), Duration::from_secs(2)).expect("connect to /metrics");
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("read /metrics");
    text
}

/// A Prometheus histogram's cumulative buckets (bound in µs, count), sum (µs) and count.
#[derive(Debug, Clone, Default)]
struct Histogram {
    buckets: Vec<(f64, u64)>,
    sum_us: f64,
    count: u64,
}

impl Histogram {
    fn parse(text: &str, name: &str) -> Histogram {
        let mut h = Histogram::default();
        for line in text.lines() {
            let Some((key, value)) = line.rsplit_once(' ') else {
                continue;
            };
            if let Some(le) = key
                .strip_prefix(&format!("{name}_bucket{{le=\""))
                .and_then(|r| r.strip_suffix("\"}"))
            {
                let bound = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse::<f64>().unwrap() * 1e6
                };
                h.buckets.push((bound, value.parse().unwrap()));
            } else if key == format!("{name}_sum") {
                h.sum_us = value.parse::<f64>().unwrap() * 1e6;
            } else if key == format!("{name}_count") {
                h.count = value.parse().unwrap();
            }
        }
        assert!(!h.buckets.is_empty(), "no histogram {name} in the metrics");
        h
    }

    /// The observations between two scrapes.
    fn since(&self, before: &Histogram) -> Histogram {
        Histogram {
            buckets: self
                .buckets
                .iter()
                .zip(&before.buckets)
                .map(|(&(b, n), &(_, m))| (b, n - m))
                .collect(),
            sum_us: self.sum_us - before.sum_us,
            count: self.count - before.count,
        }
    }

    fn mean_us(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum_us / self.count as f64
        }
    }

    /// The bound of the bucket holding the `q` quantile: "at most this", µs.
    fn quantile_bound_us(&self, q: f64) -> f64 {
        let want = (self.count as f64 * q).ceil() as u64;
        self.buckets
            .iter()
            .find(|&&(_, n)| n >= want.max(1))
            .map_or(f64::INFINITY, |&(b, _)| b)
    }

    /// The bound of the highest bucket with an observation in it.
    fn max_bound_us(&self) -> f64 {
        self.quantile_bound_us(1.0)
    }
}

fn counter(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in the metrics"))
}

/// The process's CPU time so far (user + system), in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/PID/stat");
    // Fields after the command's closing parenthesis: state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn ticks_per_s() -> f64 {
    let out = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .expect("getconf CLK_TCK");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(100.0)
}

fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split(' ')
        .next()
        .unwrap_or("?")
        .to_string()
}

/// Sends a frame to both nodes every 2 ms until stopped (the counter ignores its payload).
fn frame_source(targets: Vec<SocketAddr>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut number = 0u64;
        let mut next_at = Instant::now();
        while !stop.load(Ordering::SeqCst) {
            let now = Instant::now();
            if now < next_at {
                std::thread::sleep(next_at - now);
            }
            next_at += Duration::from_millis(2);
            number += 1;
            let datagram = io_protocol::frame_to_vec(number, &[]).unwrap();
            for t in &targets {
                let _ = socket.send_to(&datagram, t);
            }
        }
    })
}

/// `CLIENTS` threads reading registers 0..67 from `port`, together `rate_per_s` reads a
/// second (0: as fast as answered, one request in flight per client), until `stop`.
/// Counts the good answers in `served`, the rest in `failed`.
fn start_load(
    port: u16,
    rate_per_s: u64,
    stop: &Arc<AtomicBool>,
    served: &Arc<AtomicU64>,
    failed: &Arc<AtomicU64>,
) -> Vec<std::thread::JoinHandle<()>> {
    (0..CLIENTS)
        .map(|_| {
            let (stop, served, failed) = (stop.clone(), served.clone(), failed.clone());
            std::thread::spawn(move || {
                let mut stream = connect(port);
                let interval = (rate_per_s > 0).then(|| Duration::from_secs(CLIENTS as u64) / rate_per_s as u32);
                let mut next_at = Instant::now();
                let mut tid = 0u16;
                while !stop.load(Ordering::Relaxed) {
                    if let Some(interval) = interval {
                        let now = Instant::now();
                        if now < next_at {
                            std::thread::sleep(next_at - now);
                        } else if now - next_at > interval * 10 {
                            // Fell behind (the node or the machine was slow): no burst to catch up.
                            next_at = now;
                        }
                        next_at += interval;
                    }
                    tid = tid.wrapping_add(1);
                    match read(&mut stream, tid, 0, READ_COUNT) {
                        Some(r) if r[0] == 0x544C => served.fetch_add(1, Ordering::Relaxed),
                        _ => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            stream = connect(port);
                            0
                        }
                    };
                }
            })
        })
        .collect()
}

struct Node {
    process: Process,
    hmi: u16,
    metrics: u16,
}

/// One load step: where the reads go and at what rate (0: unpaced).
struct Step {
    name: &'static str,
    target: Option<usize>,
    rate_per_s: u64,
}

fn load_bench(nodes: &[Node; 2], primary: usize) {
    let backup = 1 - primary;
    let tps = ticks_per_s();
    let steps = [
        Step {
            name: "idle",
            target: None,
            rate_per_s: 0,
        },
        Step {
            name: "backup",
            target: Some(backup),
            rate_per_s: 1000,
        },
        Step {
            name: "backup",
            target: Some(backup),
            rate_per_s: 4000,
        },
        Step {
            name: "backup",
            target: Some(backup),
            rate_per_s: 16000,
        },
        Step {
            name: "backup",
            target: Some(backup),
            rate_per_s: 0,
        },
        Step {
            name: "primary",
            target: Some(primary),
            rate_per_s: 4000,
        },
        Step {
            name: "primary",
            target: Some(primary),
            rate_per_s: 0,
        },
        Step {
            name: "idle",
            target: None,
            rate_per_s: 0,
        },
    ];
    eprintln!(
        "reads a backup absorbs ({CLIENTS} clients, registers 0..{}; the primary's cycle over {WINDOW:?} each):",
        READ_COUNT - 1
    );
    eprintln!(
        "  {:<8} {:>7} {:>9} {:>6} | primary: {:>6} {:>9} {:>9} {:>9} {:>11} {:>11} {:>5} {:>5} {:>5} | backup {:>5} {:>5} | load",
        "reads to",
        "rate",
        "reads/s",
        "failed",
        "frames",
        "cycle avg",
        "cycle p99",
        "cycle max",
        "lateness p99",
        "lateness max",
        "late",
        "cpu%",
        "reg16",
        "cpu%",
        "reg16"
    );
    for step in &steps {
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let threads = step
            .target
            .map(|t| start_load(nodes[t].hmi, step.rate_per_s, &stop, &served, &failed))
            .unwrap_or_default();
        // Let the clients connect and reach their pace before measuring.
        std::thread::sleep(Duration::from_millis(500));
        let text0 = scrape(nodes[primary].metrics);
        let cpu0 = [
            cpu_ticks(nodes[primary].process.0.id()),
            cpu_ticks(nodes[backup].process.0.id()),
        ];
        let served0 = served.load(Ordering::Relaxed);
        let failed0 = failed.load(Ordering::Relaxed);
        let t0 = Instant::now();
        std::thread::sleep(WINDOW);
        let elapsed = t0.elapsed().as_secs_f64();
        let served1 = served.load(Ordering::Relaxed);
        let failed1 = failed.load(Ordering::Relaxed);
        // What the nodes say of their last whole second, under the step's load.
        let said = [nodes[primary].hmi, nodes[backup].hmi].map(|port| {
            cpu_share(port).map_or("-".to_string(), |permille| format!("{:.1}", f64::from(permille) / 10.0))
        });
        let cpu1 = [
            cpu_ticks(nodes[primary].process.0.id()),
            cpu_ticks(nodes[backup].process.0.id()),
        ];
        let text1 = scrape(nodes[primary].metrics);
        stop.store(true, Ordering::Relaxed);
        for t in threads {
            t.join().unwrap();
        }
        let cycle = Histogram::parse(&text1, "twinloop_frame_handling_seconds")
            .since(&Histogram::parse(&text0, "twinloop_frame_handling_seconds"));
        let lateness = Histogram::parse(&text1, "twinloop_deadline_lateness_seconds")
            .since(&Histogram::parse(&text0, "twinloop_deadline_lateness_seconds"));
        let late = counter(&text1, "twinloop_late_wakeups_total") - counter(&text0, "twinloop_late_wakeups_total");
        let cpu = |i: usize| (cpu1[i] - cpu0[i]) as f64 / tps / elapsed * 100.0;
        let bound = |us: f64| {
            if us.is_infinite() {
                "above".to_string()
            } else {
                format!("<={us:.0}")
            }
        };
        eprintln!(
            "  {:<8} {:>7} {:>9.0} {:>6} | primary: {:>6} {:>9.1} {:>9} {:>9} {:>11} {:>11} {:>5} {:>5.1} {:>5} | backup {:>5.1} {:>5} | {}",
            step.name,
            match (step.target, step.rate_per_s) {
                (None, _) => "-".to_string(),
                (_, 0) => "max".to_string(),
                (_, r) => r.to_string(),
            },
            (served1 - served0) as f64 / elapsed,
            failed1 - failed0,
            cycle.count,
            cycle.mean_us(),
            bound(cycle.quantile_bound_us(0.99)),
            bound(cycle.max_bound_us()),
            bound(lateness.quantile_bound_us(0.99)),
            bound(lateness.max_bound_us()),
            late,
            cpu(0),
            said[0],
            cpu(1),
            said[1],
            load_average(),
        );
    }
    eprintln!("  (cycle and lateness in µs: the mean, and the histogram bucket bound holding p99 and the max;");
    eprintln!("  cpu% the process's over the window from /proc, reg16 the node's status register 16 at its end, in %:");
    eprintln!("  its loop thread's share over its last whole second)");
}

/// Per node, the first instant each value of `total` was read there.
type Seen = Arc<Mutex<[BTreeMap<u32, Instant>; 2]>>;

/// Reads both nodes' `total` back to back until `stop`, noting when each value first
/// showed on each node.
fn watcher(ports: [u16; 2], seen: Seen, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut streams = ports.map(connect);
        let mut tid = 0u16;
        while !stop.load(Ordering::Relaxed) {
            for (i, stream) in streams.iter_mut().enumerate() {
                tid = tid.wrapping_add(1);
                let total = read(stream, tid, TOTAL, 2).expect("the watcher's read");
                let now = Instant::now();
                let value = u32::from(total[0]) << 16 | u32::from(total[1]);
                seen.lock().unwrap()[i].entry(value).or_insert(now);
            }
        }
    })
}

fn percentiles(mut us: Vec<u64>) -> String {
    us.sort_unstable();
    format!(
        "p50 {} p99 {} max {}",
        us[us.len() / 2],
        us[(us.len() * 99 / 100).min(us.len() - 1)],
        us[us.len() - 1]
    )
}

/// `router`: the port of a router in front of the pair (unit 1), for a third path.
fn write_bench(nodes: &[Node; 2], primary: usize, router: u16) {
    let ports = [nodes[0].hmi, nodes[1].hmi];
    let seen: Seen = Arc::new(Mutex::new([BTreeMap::new(), BTreeMap::new()]));
    let stop = Arc::new(AtomicBool::new(false));
    let watch = watcher(ports, seen.clone(), stop.clone());
    let mut probe = connect(ports[primary]);
    let mut tid = 1000u16;
    eprintln!("write latency ({WRITES} writes of 1 to `add` per path, one at a time; µs from the request):");
    for (name, port) in [
        ("to the primary", ports[primary]),
        ("to the backup", ports[1 - primary]),
        ("via the router", router),
    ] {
        let mut stream = connect(port);
        let (mut acks, mut on_primary, mut on_backup, mut on_both) = (vec![], vec![], vec![], vec![]);
        for _ in 0..WRITES {
            tid = tid.wrapping_add(1);
            let before = read(&mut probe, tid, TOTAL, 2).expect("read the count");
            let expected = (u32::from(before[0]) << 16 | u32::from(before[1])) + 1;
            tid = tid.wrapping_add(1);
            let t0 = Instant::now();
            let [ah, al] = ADD.to_be_bytes();
            let answer = exchange(&mut stream, tid, &[6, ah, al, 0, 1]).expect("the write's answer");
            let acked = t0.elapsed();
            assert_eq!(answer, [6, ah, al, 0, 1], "the write was refused");
            let mut at = [None, None];
            wait_for(Duration::from_secs(10), "the write visible on both nodes", || {
                let seen = seen.lock().unwrap();
                at = [0, 1].map(|i| seen[i].get(&expected).copied());
                at.iter().all(Option::is_some)
            });
            let us = |i: usize| u64::try_from(at[i].unwrap().saturating_duration_since(t0).as_micros()).unwrap();
            acks.push(u64::try_from(acked.as_micros()).unwrap());
            on_primary.push(us(primary));
            on_backup.push(us(1 - primary));
            on_both.push(us(primary).max(us(1 - primary)));
        }
        eprintln!("  {name:<15} acknowledged: {}", percentiles(acks));
        eprintln!("  {name:<15} on the primary: {}", percentiles(on_primary));
        eprintln!("  {name:<15} on the backup: {}", percentiles(on_backup));
        eprintln!("  {name:<15} on both: {}", percentiles(on_both));
    }
    stop.store(true, Ordering::Relaxed);
    watch.join().unwrap();
}

#[test]
#[ignore = "a benchmark: prints figures for docs/BENCHMARKS.md (run with --ignored --nocapture)"]
fn hmi_bench_backup_reads_and_write_latency() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("hmi-bench-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let key = dir.join("console.key");
    fs::write(&key, "hmi-bench-key\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
    }
    let mut pool = PortPool::new();
    let ports = [pool.node(), pool.node()];
    let hmi = [pool.take(), pool.take()];
    let metrics = [pool.take(), pool.take()];
    let router_port = pool.take();
    pool.release();
    let spawn = |i: usize| {
        let path = dir.join(format!("bench-{}.toml", i + 1));
        fs::write(&path, node_toml(i, &ports, hmi[i], metrics[i], &dir)).unwrap();
        let log = fs::File::create(dir.join(format!("bench-{}.log", i + 1))).unwrap();
        let child = Command::new(COUNTER)
            .arg("--config")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start twinloop-counter");
        Node {
            process: Process(child),
            hmi: hmi[i],
            metrics: metrics[i],
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    let source = frame_source(vec![local(ports[0].frames), local(ports[1].frames)], stop.clone());
    let first = spawn(0);
    wait_for(Duration::from_secs(30), "node 1 to lead", || {
        role_sync(hmi[0]).is_some_and(|(role, _)| role == 1)
    });
    let nodes = [first, spawn(1)];
    wait_for(Duration::from_secs(60), "a primary with an in-sync backup", || {
        role_sync(hmi[0]) == Some((1, 1)) && role_sync(hmi[1]) == Some((2, 3))
    });
    let primary = 0;

    // A router in front of the pair (unit 1), for the write latency through it.
    let router_path = dir.join("router.toml");
    fs::write(
        &router_path,
        format!(
            "[router]\nlisten = \"{}\"\n[[pair]]\nunit = 1\nnodes = [\"{}\", \"{}\"]\n",
            local(router_port),
            local(hmi[0]),
            local(hmi[1])
        ),
    )
    .unwrap();
    let _router = Process(
        Command::new(ROUTER)
            .arg("--config")
            .arg(&router_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(dir.join("router.log")).unwrap())
            .spawn()
            .expect("start twinloop-router"),
    );
    wait_for(Duration::from_secs(10), "the router to listen", || {
        TcpStream::connect(local(router_port)).is_ok()
    });

    load_bench(&nodes, primary);
    write_bench(&nodes, primary, router_port);
    assert_eq!(role_sync(hmi[0]), Some((1, 1)), "the pair changed during the bench");

    stop.store(true, Ordering::SeqCst);
    drop(nodes);
    let _ = source.join();
}
