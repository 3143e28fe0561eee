//! The router against an independent Modbus/TCP client: pymodbus (tests/hmi_client.py)
//! as the HMI, through two `twinloop-router`s side by side, to two pairs of
//! `twinloop-counter` nodes (real processes on loopback, an I/O source sending frames).
//! The test kills the primary of each pair in turn (SIGKILL), restarts it and waits for
//! the pair to be healthy again, while the HMI reads both pairs and writes 1 to each
//! pair's counting tag, one write at a time. Then: no read failed (a read caught by the
//! kill went to the other node), no write failed, and each pair's count — read on both
//! of its nodes — is exactly the number of writes the HMI saw acknowledged: every
//! acknowledged write applied once, none twice (a retry through the new primary is
//! recognised by the HMI's client id and transaction id). Then a write through one
//! router, and the same write again through the other, restarted: applied once. The
//! figures go to stderr, and then the read latency straight to a node and through a
//! router (docs/BENCHMARKS.md).
//!
//! Needs python3 with pymodbus 3.x (`.ci/run` installs it). Without them the test says so
//! and passes, except in CI (`CI=true`), where it fails.
// Real processes on a real clock: every wait is bounded with wall time.
#![allow(clippy::disallowed_methods)]

use serde_json::Value as Json;
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use twinloop::io::client::Client;
use twinloop::io::config::{ConsoleConfig, FramesConfig, HmiConfig, LinkConfig, OutputsConfig};
use twinloop::io::schema::CommandResult;
use twinloop::io_protocol;
use twinloop::node_main::config::{NodeFile, NodeTable};
use twinloop::node_main::AnyAppSettings;
use twinloop::testing::{NodePorts, PortPool};

const COUNTER: &str = env!("CARGO_BIN_EXE_twinloop-counter");
const ROUTER: &str = env!("CARGO_BIN_EXE_twinloop-router");
/// Primary kills, alternating between the pairs.
const KILLS: usize = 4;
/// The nodes' console key (for the switchovers).
const CONSOLE_KEY: &str = "router-test-key";

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

/// True when python3 can import pymodbus 3.x; in CI its absence is a failure.
fn pymodbus_present() -> bool {
    let ok = Command::new("python3")
        .args([
            "-c",
            "import pymodbus, sys; sys.exit(0 if pymodbus.__version__.startswith('3.') else 1)",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        let message = "python3 with pymodbus 3.x not found: `pip install pymodbus` (.ci/run installs it)";
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{message}");
        let _ = writeln!(std::io::stderr(), "SKIPPED pymodbus_router: {message}");
    }
    ok
}

/// Polls `condition` every 20 ms until it holds; panics with `what` and `context()`
/// after `limit`.
fn wait_for(limit: Duration, what: &str, context: &dyn Fn() -> String, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for: {what}\n{}",
            context()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Node `i` of a pair: the counter program, fast timings, its HMI server on `hmi`.
fn node_toml(name: &str, i: usize, ports: &[NodePorts; 2], hmi: u16, dir: &Path) -> String {
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
            name: format!("{name}-{n}"),
            state_file: dir.join(format!("{name}-{n}.epoch")),
            ..NodeTable::default()
        },
        runtime: twinloop::Config {
            node_id: n,
            priority: if i == 0 { 1 } else { 0 },
            heartbeat_interval_ms: 5,
            detection_window_ms: 100,
            probe_timeout_ms: 50,
            startup_wait_ms: 100,
            retry_ms: 10,
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
        hmi: HmiConfig {
            listen: Some(local(hmi)),
        },
        app: AnyAppSettings(toml::Table::new()),
        ..NodeFile::default()
    };
    file.to_toml().expect("a node file serializes")
}

/// Reads `count` holding registers from `address` of the node at `port`, directly.
fn read_registers(port: u16, address: u16, count: u16) -> Option<Vec<u16>> {
    read_unit(port, 1, address, count)
}

/// Reads `count` holding registers from `address` of unit `unit` at `port` (a node, or
/// a router: the unit picks the pair).
fn read_unit(port: u16, unit: u8, address: u16, count: u16) -> Option<Vec<u16>> {
    let mut stream = TcpStream::connect_timeout(&local(port), Duration::from_millis(500)).ok()?;
    stream.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
    let [ah, al] = address.to_be_bytes();
    let [ch, cl] = count.to_be_bytes();
    stream.write_all(&[0, 1, 0, 0, 0, 6, unit, 3, ah, al, ch, cl]).ok()?;
    let mut answer = vec![0u8; 9 + usize::from(count) * 2];
    stream.read_exact(&mut answer).ok()?;
    (answer[7] == 3).then(|| {
        answer[9..]
            .chunks_exact(2)
            .map(|w| u16::from_be_bytes([w[0], w[1]]))
            .collect()
    })
}

/// A node's (role, sync) from its status block.
fn role_sync(port: u16) -> Option<(u16, u16)> {
    read_registers(port, 2, 2).map(|r| (r[0], r[1]))
}

/// The counter's `total` tag (registers 64..65).
fn total(port: u16) -> Option<u32> {
    read_registers(port, 64, 2).map(|r| u32::from(r[0]) << 16 | u32::from(r[1]))
}

/// The requests the routers' logs say they retried (one line each).
fn waits_in(logs: &str) -> usize {
    logs.lines()
        .filter(|l| l.contains(" write ") && l.contains("retrying"))
        .count()
}

/// One pair of counter nodes.
struct Pair {
    name: String,
    configs: [PathBuf; 2],
    hmi: [u16; 2],
    frames: [u16; 2],
    consoles: [u16; 2],
    nodes: [Option<Process>; 2],
    dir: PathBuf,
}

impl Pair {
    fn spawn(&mut self, i: usize) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("{}-{}.log", self.name, i + 1)))
            .unwrap();
        let child = Command::new(COUNTER)
            .arg("--config")
            .arg(&self.configs[i])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start twinloop-counter");
        self.nodes[i] = Some(Process(child));
    }

    fn logs(&self) -> String {
        let mut text = String::new();
        for n in 1..=2 {
            let log = fs::read_to_string(self.dir.join(format!("{}-{n}.log", self.name))).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            let from = lines.len().saturating_sub(15);
            text += &format!("--- {}-{n} ---\n{}\n", self.name, lines[from..].join("\n"));
        }
        text
    }

    /// A primary with an in-sync backup; the primary's index.
    fn healthy(&self) -> Option<usize> {
        let states = [role_sync(self.hmi[0]), role_sync(self.hmi[1])];
        match states {
            [Some((1, 1)), Some((2, 3))] => Some(0),
            [Some((2, 3)), Some((1, 1))] => Some(1),
            _ => None,
        }
    }

    fn await_healthy(&self) -> usize {
        let mut primary = None;
        wait_for(
            Duration::from_secs(60),
            &format!("{}: a primary with an in-sync backup", self.name),
            &|| self.logs(),
            || {
                primary = self.healthy();
                primary.is_some()
            },
        );
        primary.unwrap()
    }
}

/// Sends a frame to every node every 2 ms until stopped (the counter ignores its payload).
fn frame_source(targets: Vec<SocketAddr>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut number = 0u64;
        let mut next_at = Instant::now();
        while !stop.load(Ordering::SeqCst) {
            // The source's pace, not a wait for a condition.
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

/// Starts router `i` on its file in `dir`, its log appended to.
fn spawn_router(dir: &Path, i: usize) -> Process {
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("router-{i}.log")))
        .unwrap();
    Process(
        Command::new(ROUTER)
            .arg("--config")
            .arg(dir.join(format!("router-{i}.toml")))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start twinloop-router"),
    )
}

/// Sends `adu` on `stream`, returns the answer (`None` on an error or a timeout).
fn exchange(stream: &mut TcpStream, adu: &[u8]) -> Option<Vec<u8>> {
    stream.write_all(adu).ok()?;
    let mut head = [0u8; 6];
    stream.read_exact(&mut head).ok()?;
    let mut rest = vec![0u8; usize::from(u16::from_be_bytes([head[4], head[5]]))];
    stream.read_exact(&mut rest).ok()?;
    Some([head.to_vec(), rest].concat())
}

/// Through the router at `port`: sets client id "RSTR" on unit 1, then writes 1 to its
/// tag `add` (register 68) with transaction id 0x7777; the write's answer.
fn write_once(port: u16) -> Option<Vec<u8>> {
    let mut stream = TcpStream::connect_timeout(&local(port), Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    exchange(
        &mut stream,
        &[0, 1, 0, 0, 0, 11, 1, 16, 0, 14, 0, 2, 4, b'R', b'S', b'T', b'R'],
    )?;
    exchange(&mut stream, &[0x77, 0x77, 0, 0, 0, 6, 1, 6, 0, 68, 0, 1])
}

fn router_toml(listen: u16, pairs: &[Pair]) -> String {
    let mut text = format!(
        "[router]\nlisten = \"{}\"\npoll_ms = 50\nrequest_timeout_ms = 1000\nrequest_deadline_ms = 20000\n",
        local(listen)
    );
    for (i, pair) in pairs.iter().enumerate() {
        text += &format!(
            "[[pair]]\nunit = {}\nname = \"{}\"\nnodes = [\"{}\", \"{}\"]\n",
            i + 1,
            pair.name,
            local(pair.hmi[0]),
            local(pair.hmi[1])
        );
    }
    text
}

#[test]
fn router_pymodbus_reads_and_writes_through_primary_kills() {
    if !pymodbus_present() {
        return;
    }
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("router-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let key = dir.join("console.key");
    fs::write(&key, format!("{CONSOLE_KEY}\n")).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
    }
    let mut pool = PortPool::new();
    let mut pairs: Vec<Pair> = ["line-a", "line-b"]
        .iter()
        .map(|name| {
            let ports = [pool.node(), pool.node()];
            let hmi = [pool.take(), pool.take()];
            let configs = [0, 1].map(|i| {
                let path = dir.join(format!("{name}-{}.toml", i + 1));
                fs::write(&path, node_toml(name, i, &ports, hmi[i], &dir)).unwrap();
                path
            });
            Pair {
                name: name.to_string(),
                configs,
                hmi,
                frames: [ports[0].frames, ports[1].frames],
                consoles: [ports[0].console, ports[1].console],
                nodes: [None, None],
                dir: dir.clone(),
            }
        })
        .collect();
    let router_ports = [pool.take(), pool.take()];
    pool.release();

    let stop = Arc::new(AtomicBool::new(false));
    let targets = pairs.iter().flat_map(|p| p.frames.map(local)).collect::<Vec<_>>();
    let source = frame_source(targets, stop.clone());
    for pair in &mut pairs {
        pair.spawn(0);
    }
    for pair in &pairs {
        wait_for(Duration::from_secs(30), "node 1 to lead", &|| pair.logs(), || {
            role_sync(pair.hmi[0]).is_some_and(|(role, _)| role == 1)
        });
    }
    for pair in &mut pairs {
        pair.spawn(1);
    }
    for pair in &pairs {
        pair.await_healthy();
    }

    let mut routers: Vec<Process> = router_ports
        .iter()
        .enumerate()
        .map(|(i, &port)| {
            fs::write(dir.join(format!("router-{i}.toml")), router_toml(port, &pairs)).unwrap();
            spawn_router(&dir, i)
        })
        .collect();
    let router_logs = || {
        (0..2)
            .map(|i| fs::read_to_string(dir.join(format!("router-{i}.log"))).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("---\n")
    };
    for &port in &router_ports {
        wait_for(Duration::from_secs(10), "the routers to listen", &router_logs, || {
            TcpStream::connect(local(port)).is_ok()
        });
    }

    let stop_file = dir.join("stop-hmi");
    let hmi_out = dir.join("hmi.json");
    let hmi_err = dir.join("hmi.err");
    let mut hmi = Process(
        Command::new("python3")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/hmi_client.py"))
            .arg(&stop_file)
            .arg("1,2")
            .args(router_ports.map(|p| p.to_string()))
            .stdin(Stdio::null())
            .stdout(fs::File::create(&hmi_out).unwrap())
            .stderr(fs::File::create(&hmi_err).unwrap())
            .spawn()
            .expect("start python3"),
    );
    let hmi_context = || {
        format!(
            "hmi stderr:\n{}\nrouters:\n{}",
            fs::read_to_string(&hmi_err).unwrap_or_default(),
            router_logs()
        )
    };
    // The HMI is at work once both counts moved.
    wait_for(Duration::from_secs(30), "the HMI's first writes", &hmi_context, || {
        pairs.iter().all(|p| total(p.hmi[0]).is_some_and(|t| t >= 2))
    });

    let mut kill_at_total = Vec::new();
    for k in 0..KILLS {
        let pair = &mut pairs[k % 2];
        let primary = pair.await_healthy();
        let before = total(pair.hmi[primary]).unwrap_or(0);
        // Counted before the kill: the write in flight at the kill may be the one held.
        let held = waits_in(&router_logs());
        // SIGKILL: no goodbye on the links, the HMI connections reset.
        drop(pair.nodes[primary].take());
        let survivor = pair.hmi[1 - primary];
        wait_for(
            Duration::from_secs(30),
            "the backup to take over",
            &|| pair.logs(),
            || role_sync(survivor).is_some_and(|(role, _)| role == 1),
        );
        // Alone, the new primary refuses writes (0A, docs/HMI.md): the router holds the
        // HMI's next write (or the one the kill caught) and retries it; restart the
        // killed node once one is held.
        wait_for(
            Duration::from_secs(30),
            "a write held by the router",
            &router_logs,
            || waits_in(&router_logs()) > held,
        );
        pair.spawn(primary);
        pair.await_healthy();
        // Writes went on through the new primary (and its restarted backup).
        let moved = before + 3;
        wait_for(
            Duration::from_secs(30),
            "writes after the takeover",
            &hmi_context,
            || total(pair.hmi[0]).is_some_and(|t| t >= moved),
        );
        kill_at_total.push((pair.name.clone(), before));
    }

    // Then a switchover of each pair (an operator's, on the primary's console), the HMI
    // still at work: as invisible to it as a kill, and no write lost or doubled.
    for pair in &pairs {
        let primary = pair.await_healthy();
        let before = total(pair.hmi[primary]).unwrap_or(0);
        let mut console = Client::new(local(pair.consoles[primary]), Duration::from_secs(5));
        let reply = console.switchover(CONSOLE_KEY).expect("the switchover's reply");
        assert_eq!(reply.result, CommandResult::Started, "{reply:?}\n{}", pair.logs());
        wait_for(Duration::from_secs(30), "the switchover", &|| pair.logs(), || {
            pair.healthy() == Some(1 - primary)
        });
        wait_for(
            Duration::from_secs(30),
            "writes after the switchover",
            &hmi_context,
            || total(pair.hmi[0]).is_some_and(|t| t >= before + 3),
        );
    }

    fs::write(&stop_file, "").unwrap();
    wait_for(Duration::from_secs(60), "the HMI to finish", &hmi_context, || {
        matches!(hmi.0.try_wait(), Ok(Some(_)))
    });
    let status = hmi.0.wait().unwrap();
    assert!(status.success(), "the HMI failed ({status}):\n{}", hmi_context());
    let figures: Json = serde_json::from_str(fs::read_to_string(&hmi_out).unwrap().trim())
        .unwrap_or_else(|e| panic!("the HMI's figures ({e}):\n{}", hmi_context()));
    let _ = writeln!(
        std::io::stderr(),
        "router figures: kills {KILLS} (pair, total before) {kill_at_total:?}, then a switchover of each pair; reads {} failed {} \
         longest outage {} ms slowest read {} ms; writes acknowledged {} failed {:?} \
         slowest {} ms, retried by the routers {}; CPU share read through the routers (‰, \
         least and most per unit) {}",
        figures["reads"],
        figures["read_failures"],
        figures["longest_read_outage_ms"],
        figures["slowest_read_ms"],
        figures["writes"],
        figures["write_failures"],
        figures["slowest_write_ms"],
        waits_in(&router_logs()),
        figures["cpu_permille"],
    );

    assert_eq!(figures["read_failures"], 0, "a read failed:\n{figures}");
    assert_eq!(
        figures["write_failures"].as_array().map(Vec::len),
        Some(0),
        "a write failed:\n{figures}"
    );
    for (i, pair) in pairs.iter().enumerate() {
        // The nodes' CPU share (status register 16) comes through a router: a figure of
        // a node at work (frames every 2 ms), at most 1000 ‰, once a node has run a
        // whole second (the kills and restarts above take about that: awaited).
        let unit = i as u8 + 1;
        let mut cpu = None;
        wait_for(
            Duration::from_secs(10),
            "a CPU share through a router",
            &router_logs,
            || {
                cpu = read_unit(router_ports[0], unit, 16, 1).map(|r| r[0]);
                cpu.is_some_and(|c| (1..=1000).contains(&c))
            },
        );
        let _ = writeln!(std::io::stderr(), "{}: CPU share through a router {cpu:?} ‰", pair.name);
        let acked = figures["writes"][(i + 1).to_string()].as_u64().unwrap();
        assert!(acked > 0, "{}: no writes", pair.name);
        // Both nodes hold the same count (the backup has run the last write's frame:
        // it was acknowledged), and it is the number of acknowledged writes.
        for port in pair.hmi {
            let mut seen = None;
            wait_for(Duration::from_secs(10), "a node's count", &|| pair.logs(), || {
                seen = total(port);
                seen.is_some()
            });
            assert_eq!(
                seen.map(u64::from),
                Some(acked),
                "{}: the count on node :{port} is not the acknowledged writes\n{figures}",
                pair.name
            );
        }
    }

    // No state a restart loses: one write through router 1, then router 0 restarted and
    // the same write (the HMI's client id and transaction id) sent again through it, as
    // an HMI retries after a timeout. Answered both times, applied once.
    let pair = &pairs[0];
    let primary = pair.await_healthy();
    let before = total(pair.hmi[primary]).unwrap();
    let echo = [0x77, 0x77, 0, 0, 0, 6, 1, 6, 0, 68, 0, 1];
    assert_eq!(
        write_once(router_ports[1]).as_deref(),
        Some(&echo[..]),
        "{}",
        router_logs()
    );
    drop(routers.remove(0));
    routers.insert(0, spawn_router(&dir, 0));
    wait_for(
        Duration::from_secs(10),
        "router 0 to listen again",
        &router_logs,
        || TcpStream::connect(local(router_ports[0])).is_ok(),
    );
    let mut again = None;
    wait_for(
        Duration::from_secs(30),
        "the retry through the restarted router",
        &router_logs,
        || {
            // Until its first polls, the restarted router knows no primary: it holds the
            // write (request_deadline_ms); a refused connection is tried again.
            again = write_once(router_ports[0]);
            again.is_some()
        },
    );
    assert_eq!(again.as_deref(), Some(&echo[..]), "{}", router_logs());
    for port in pair.hmi {
        let mut seen = None;
        wait_for(Duration::from_secs(10), "a node's count", &|| pair.logs(), || {
            seen = total(port);
            seen.is_some()
        });
        assert_eq!(
            seen,
            Some(before + 1),
            "{}: the write retried through a restarted router applied twice, or not at all",
            pair.name
        );
    }
    let _ = writeln!(
        std::io::stderr(),
        "router restart: a write through router 1, its retry through router 0 restarted: \
         answered twice, applied once ({} → {})",
        before,
        before + 1
    );

    // Read latency, direct and through a router, for docs/BENCHMARKS.md: printed, not
    // judged (the machine's load decides it).
    let primary = pairs[0].await_healthy();
    let bench = Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/read_latency.py"))
        .args(["2000", "1"])
        .arg(pairs[0].hmi[primary].to_string())
        .arg(router_ports[0].to_string())
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .expect("start python3");
    assert!(bench.status.success(), "read_latency.py failed");
    let _ = writeln!(
        std::io::stderr(),
        "read latency (pymodbus, one at a time; the node is the pair's primary): {}",
        String::from_utf8_lossy(&bench.stdout).trim()
    );
    stop.store(true, Ordering::SeqCst);
    drop(routers);
    drop(pairs);
    let _ = source.join();
}
