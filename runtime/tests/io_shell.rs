//! The I/O shell in-process, alone (no peer): frames in over UDP, outputs out to a sink
//! socket, the epoch persisted before the first output, and every console command with
//! its errors. Binds 127.0.0.1 only; every wait is a bounded poll of a condition.
#![cfg(feature = "io")]
// Real sockets on a real clock: waits are bounded with wall time.
#![allow(clippy::disallowed_methods)]

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use twinloop::app::{App, Frame, Outbox, SnapshotError};
use twinloop::io::client::Client;
use twinloop::io::config::{ConsoleConfig, FramesConfig, LinkConfig, OutputsConfig, ShellConfig};
use twinloop::io::schema::{
    CommandReply, ConfigReply, ErrorReply, EventsPage, Hello, ReasonName, Reply, Role, StatusReply, Sync,
};
use twinloop::io::{Exit, Shell};
use twinloop::io_protocol;
use twinloop::testing::TestApp;
use twinloop::Config;

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_for(limit: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for: {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

struct Console {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Console {
    fn connect(addr: SocketAddr) -> Console {
        let stream = TcpStream::connect(addr).expect("connect to the console");
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        Console {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        }
    }

    fn ask(&mut self, line: &str) -> Value {
        self.writer.write_all(line.as_bytes()).unwrap();
        self.writer.write_all(b"\n").unwrap();
        let mut reply = String::new();
        self.reader.read_line(&mut reply).expect("a response line");
        assert!(reply.ends_with('\n'), "every response is one line: {reply:?}");
        serde_json::from_str(&reply).expect("the response is JSON")
    }
}

struct Alone {
    dir: PathBuf,
    sink: UdpSocket,
    frames: SocketAddr,
    console: SocketAddr,
    /// The HMI server's address, when one was asked for.
    hmi: Option<SocketAddr>,
    stop: twinloop::io::StopHandle,
    thread: std::thread::JoinHandle<Result<Exit, twinloop::io::ShellError>>,
}

fn start_alone(name: &str, key: Option<&str>) -> Alone {
    let port = free_udp_port();
    let frames = FramesConfig {
        bind: SocketAddr::from(([127, 0, 0, 1], port)),
        ..FramesConfig::default()
    };
    start_alone_with(name, key, frames, SocketAddr::from(([127, 0, 0, 1], port)))
}

/// A node alone, receiving frames as `frames` says; the test sends them to `send_to`.
fn start_alone_with(name: &str, key: Option<&str>, frames: FramesConfig, send_to: SocketAddr) -> Alone {
    start_alone_hmi(name, key, frames, send_to, None)
}

/// [`start_alone_with`], with the HMI server on `hmi` (port 0: any).
fn start_alone_hmi(
    name: &str,
    key: Option<&str>,
    frames: FramesConfig,
    send_to: SocketAddr,
    hmi: Option<SocketAddr>,
) -> Alone {
    start_alone_app(name, key, frames, send_to, hmi, TestApp::new(0))
}

/// [`start_alone_hmi`], running the program `app`.
fn start_alone_app<A: App + Send + 'static>(
    name: &str,
    key: Option<&str>,
    frames: FramesConfig,
    send_to: SocketAddr,
    hmi: Option<SocketAddr>,
    app: A,
) -> Alone {
    let dir = std::env::temp_dir().join(format!("twinloop-io-shell-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let key_file = key.map(|k| {
        let path = dir.join("console.key");
        std::fs::write(&path, format!("{k}\n")).unwrap();
        // Key files must not be readable by others (the shell refuses them).
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        path
    });
    let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
    sink.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let shell_config = ShellConfig {
        name: name.into(),
        state_file: dir.join("state").join("node.epoch"),
        seed: 7,
        frames,
        links: vec![LinkConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], free_udp_port())),
            bulk_bind: Some(SocketAddr::from(([127, 0, 0, 1], free_udp_port()))),
            // Nobody listens there: the node stays alone.
            peer: SocketAddr::from(([127, 0, 0, 1], free_udp_port())),
            bulk_peer: Some(SocketAddr::from(([127, 0, 0, 1], free_udp_port()))),
            ..LinkConfig::default()
        }],
        outputs: OutputsConfig {
            bind: "127.0.0.1:0".parse().unwrap(),
            sinks: vec![sink.local_addr().unwrap()],
            ..OutputsConfig::default()
        },
        console: ConsoleConfig {
            bind: "127.0.0.1:0".parse().unwrap(),
            key_file,
            ..ConsoleConfig::default()
        },
        hmi: twinloop::io::config::HmiConfig { listen: hmi },
        ..ShellConfig::default()
    };
    let runtime = Config {
        node_id: 3,
        links: 1,
        heartbeat_interval_ms: 5,
        detection_window_ms: 50,
        startup_wait_ms: 20,
        ..Config::default()
    };
    let shell = Shell::new(shell_config, runtime, app).expect("the shell starts");
    let console = shell.console_addr().expect("the console listens");
    let hmi = shell.hmi_addr();
    let stop = shell.stop_handle();
    let thread = std::thread::spawn(move || shell.run());
    Alone {
        dir,
        sink,
        frames: send_to,
        console,
        hmi,
        stop,
        thread,
    }
}

impl Alone {
    fn finish(self) -> Exit {
        self.stop.stop();
        let exit = self
            .thread
            .join()
            .expect("the shell thread")
            .expect("the shell stops cleanly");
        let _ = std::fs::remove_dir_all(&self.dir);
        exit
    }
}

#[test]
fn shell_alone_runs_frames_persists_epoch_and_emits() {
    let alone = start_alone("emit", None);
    let mut console = Client::new(alone.console, Duration::from_secs(5));
    wait_for(Duration::from_secs(10), "the node to lead", || {
        console.status().unwrap().role == Role::Primary
    });
    let epoch = console.status().unwrap().epoch;
    assert_eq!(epoch & 0xFF, 3, "the epoch names node 3");
    // Persisted before any output can carry it.
    let persisted = std::fs::read_to_string(alone.dir.join("state").join("node.epoch")).unwrap();
    assert_eq!(persisted, format!("epoch {epoch}\n"));

    let source = UdpSocket::bind("127.0.0.1:0").unwrap();
    for frame in 1..=3u64 {
        let datagram = io_protocol::frame_to_vec(frame, &TestApp::payload_for(frame)).unwrap();
        source.send_to(&datagram, alone.frames).unwrap();
    }
    // A corrupt frame is counted, not run.
    let mut corrupt = io_protocol::frame_to_vec(4, b"x").unwrap();
    corrupt[10] ^= 1;
    source.send_to(&corrupt, alone.frames).unwrap();

    // TestApp: one output per frame, two on frames divisible by 3.
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while got.len() < 4 {
        let (len, _) = alone.sink.recv_from(&mut buf).expect("outputs arrive at the sink");
        let output = io_protocol::decode_output(&buf[..len]).expect("a valid output datagram");
        assert_eq!((output.node_id, output.epoch), (3, epoch));
        got.push((output.frame, output.index));
    }
    assert_eq!(got, [(1, 0), (2, 0), (3, 0), (3, 1)]);
    wait_for(Duration::from_secs(5), "the corrupt frame to be counted", || {
        console.status().unwrap().io.frames_rejected_by.get("bad_checksum") == Some(&1)
    });
    let status = console.status().unwrap();
    assert_eq!(status.frame, 3);
    assert_eq!(status.io.outputs_sent, 4);
    assert_eq!(status.sync, Sync::Alone);
    assert_eq!(status.last_transition.map(|t| t.reason), Some(ReasonName::StartedFirst));
    assert_eq!(alone.finish(), Exit::Stopped);
}

#[test]
fn shell_console_commands_and_errors() {
    let alone = start_alone("console", Some("s3cret"));
    let mut console = Console::connect(alone.console);

    let hello = console.ask(r#"{"cmd":"hello","id":"h"}"#);
    assert_eq!(hello["ok"], true);
    assert_eq!(hello["id"], "h");
    assert_eq!(hello["protocol"], 1);
    assert_eq!(hello["node_id"], 3);
    assert_eq!(hello["name"], "console");

    wait_for(Duration::from_secs(10), "the node to lead", || {
        console.ask(r#"{"cmd":"status"}"#)["status"]["role"] == "primary"
    });
    let events = console.ask(r#"{"cmd":"events","since":0}"#);
    let names: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names[..2], ["started", "started_first"]);
    let first = &events["events"][0];
    assert_eq!(first["seq"], 1);
    assert!(
        first["unix_ms"].as_u64().unwrap() > 1_600_000_000_000,
        "a wall-clock timestamp"
    );
    let next = events["next_since"].as_u64().unwrap();
    let again = console.ask(&format!(r#"{{"cmd":"events","since":{next}}}"#));
    assert_eq!(again["events"], Value::Array(vec![]), "nothing new since");

    // State changes need the key.
    let refused = console.ask(r#"{"cmd":"switchover"}"#);
    assert_eq!(refused["error"]["code"], "bad_key");
    let refused = console.ask(r#"{"cmd":"switchover","key":"wrong"}"#);
    assert_eq!(refused["error"]["code"], "bad_key");
    let alone_reply = console.ask(r#"{"cmd":"switchover","key":"s3cret"}"#);
    assert_eq!(alone_reply["ok"], true);
    assert_eq!(alone_reply["result"], "refused");
    assert_eq!(alone_reply["reason"], "no_healthy_backup");
    let status = console.ask(r#"{"cmd":"status"}"#)["status"].clone();
    assert_eq!(status["io"]["console_bad_key"], 2);

    // Or a MAC over this connection's challenge, with an increasing sequence number.
    let challenge_hex = hello["challenge"]
        .as_str()
        .expect("hello carries a challenge")
        .to_string();
    let challenge: [u8; 16] = twinloop::io_protocol::parse_hex(&challenge_hex)
        .expect("hex challenge")
        .try_into()
        .expect("16 bytes");
    let mac = |seq: u64| {
        twinloop::io::console::hex(&twinloop::io::console::request_mac(
            b"s3cret",
            &challenge,
            seq,
            "switchover",
        ))
    };
    let signed = console.ask(&format!(
        r#"{{"cmd":"switchover","auth":{{"seq":1,"mac":"{}"}}}}"#,
        mac(1)
    ));
    assert_eq!(signed["ok"], true, "{signed}");
    assert_eq!(signed["result"], "refused");
    let replayed = console.ask(&format!(
        r#"{{"cmd":"switchover","auth":{{"seq":1,"mac":"{}"}}}}"#,
        mac(1)
    ));
    assert_eq!(replayed["error"]["code"], "bad_key", "a replayed request was accepted");
    let forged = console.ask(&format!(
        r#"{{"cmd":"switchover","auth":{{"seq":2,"mac":"{}"}}}}"#,
        mac(3)
    ));
    assert_eq!(forged["error"]["code"], "bad_key");
    assert_eq!(
        console.ask(&format!(
            r#"{{"cmd":"switchover","auth":{{"seq":2,"mac":"{}"}}}}"#,
            mac(2)
        ))["ok"],
        true
    );
    let status = console.ask(r#"{"cmd":"status"}"#)["status"].clone();
    assert_eq!(status["io"]["console_bad_key"], 4);

    let config = console.ask(r#"{"cmd":"config"}"#);
    assert_eq!(config["runtime"]["node_id"], 3);
    assert_eq!(config["runtime"]["heartbeat_interval_ms"], 5);

    // What the node writes is exactly the schema: every response read into its type
    // and written back is the line the node sent (no field the schema lacks, none it
    // adds), so the schema's types are the wire.
    let round_trip = |value: &Value, typed: Value| assert_eq!(&typed, value, "the schema differs from the wire");
    let hello = console.ask(r#"{"cmd":"hello","id":7}"#);
    round_trip(
        &hello,
        serde_json::to_value(serde_json::from_value::<Reply<Hello>>(hello.clone()).unwrap()).unwrap(),
    );
    let status = console.ask(r#"{"cmd":"status"}"#);
    round_trip(
        &status,
        serde_json::to_value(serde_json::from_value::<Reply<StatusReply>>(status.clone()).unwrap()).unwrap(),
    );
    let events = console.ask(r#"{"cmd":"events","since":0}"#);
    round_trip(
        &events,
        serde_json::to_value(serde_json::from_value::<Reply<EventsPage>>(events.clone()).unwrap()).unwrap(),
    );
    // Every field the node sends is a typed field of `Event`: none is left to the map of
    // fields this version does not know.
    let page: Reply<EventsPage> = serde_json::from_value(events.clone()).unwrap();
    for event in &page.body.events {
        assert!(
            event.fields.is_empty(),
            "untyped fields in {:?}: {:?}",
            event.name,
            event.fields
        );
    }
    round_trip(
        &config,
        serde_json::to_value(serde_json::from_value::<Reply<ConfigReply>>(config.clone()).unwrap()).unwrap(),
    );
    let refused = console.ask(r#"{"cmd":"switchover","key":"s3cret","id":"r"}"#);
    round_trip(
        &refused,
        serde_json::to_value(serde_json::from_value::<Reply<CommandReply>>(refused.clone()).unwrap()).unwrap(),
    );
    let error = console.ask(r#"{"cmd":"status","id":[1]}"#.replace("status", "nope").as_str());
    round_trip(
        &error,
        serde_json::to_value(serde_json::from_value::<ErrorReply>(error.clone()).unwrap()).unwrap(),
    );

    assert_eq!(console.ask("not json")["error"]["code"], "bad_json");
    assert_eq!(console.ask(r#"{"id":5}"#)["error"]["code"], "bad_request");
    assert_eq!(console.ask(r#"{"id":5}"#)["id"], 5);
    assert_eq!(console.ask(r#"{"cmd":"reboot"}"#)["error"]["code"], "unknown_cmd");
    assert_eq!(
        console.ask(r#"{"cmd":"events","limit":0}"#)["error"]["code"],
        "bad_request"
    );

    // A line too long is answered, then the connection closes.
    let long = format!(r#"{{"cmd":"status","pad":"{}"}}"#, "x".repeat(5000));
    assert_eq!(console.ask(&long)["error"]["code"], "line_too_long");
    let mut rest = Vec::new();
    let _ = console.reader.read_to_end(&mut rest);
    assert!(rest.is_empty(), "the connection is closed after line_too_long");

    assert_eq!(alone.finish(), Exit::Stopped);
}

#[test]
fn shell_without_key_file_refuses_state_changes() {
    let alone = start_alone("nokey", None);
    let mut console = Console::connect(alone.console);
    let reply = console.ask(r#"{"cmd":"switchover","key":"anything"}"#);
    assert_eq!(reply["ok"], false);
    assert_eq!(reply["error"]["code"], "no_key_configured");
    assert_eq!(alone.finish(), Exit::Stopped);
}

#[test]
fn shell_multicast_frames_reach_two_nodes_on_one_port() {
    let group = std::net::Ipv4Addr::new(239, 255, 77, 1);
    let port = free_udp_port();
    let frames = FramesConfig {
        bind: SocketAddr::from(([0, 0, 0, 0], port)),
        multicast_group: Some(group),
        // Loopback: no multicast route needed, nothing leaves the host.
        multicast_interface: std::net::Ipv4Addr::LOCALHOST,
        ..FramesConfig::default()
    };
    let target = SocketAddr::from((group, port));
    let one = start_alone_with("mc1", None, frames.clone(), target);
    let two = start_alone_with("mc2", None, frames, target);
    let mut consoles = [Console::connect(one.console), Console::connect(two.console)];
    for console in &mut consoles {
        wait_for(Duration::from_secs(10), "the node to lead", || {
            console.ask(r#"{"cmd":"status"}"#)["status"]["role"] == "primary"
        });
    }
    let source = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    source.set_multicast_if_v4(&std::net::Ipv4Addr::LOCALHOST).unwrap();
    source.set_multicast_loop_v4(true).unwrap();
    for frame in 1..=3u64 {
        let datagram = io_protocol::frame_to_vec(frame, &TestApp::payload_for(frame)).unwrap();
        source.send_to(&datagram, &target.into()).unwrap();
    }
    for console in &mut consoles {
        wait_for(Duration::from_secs(10), "both nodes to run frame 3", || {
            console.ask(r#"{"cmd":"status"}"#)["status"]["frame"] == 3
        });
    }
    assert_eq!(one.finish(), Exit::Stopped);
    assert_eq!(two.finish(), Exit::Stopped);
}

/// One Modbus/TCP request to `stream`, its answer.
fn modbus(stream: &mut TcpStream, tid: u16, pdu: &[u8]) -> Vec<u8> {
    let mut adu = tid.to_be_bytes().to_vec();
    adu.extend_from_slice(&[0, 0]);
    adu.extend_from_slice(&(pdu.len() as u16 + 1).to_be_bytes());
    adu.push(1);
    adu.extend_from_slice(pdu);
    stream.write_all(&adu).unwrap();
    let mut head = [0u8; 6];
    stream.read_exact(&mut head).unwrap();
    let mut rest = vec![0u8; usize::from(u16::from_be_bytes([head[4], head[5]]))];
    stream.read_exact(&mut rest).unwrap();
    [head.to_vec(), rest].concat()
}

#[test]
fn shell_hmi_counters_in_status() {
    let port = free_udp_port();
    let frames = FramesConfig {
        bind: SocketAddr::from(([127, 0, 0, 1], port)),
        ..FramesConfig::default()
    };
    let alone = start_alone_hmi(
        "hmi-counters",
        None,
        frames,
        SocketAddr::from(([127, 0, 0, 1], port)),
        Some("127.0.0.1:0".parse().unwrap()),
    );
    let mut hmi = TcpStream::connect(alone.hmi.expect("the HMI server listens")).unwrap();
    hmi.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // A read of the status block, a client id set, a write of a tag the program does
    // not have (exception 02: a write refused), a read past the map (exception 02).
    let read = modbus(&mut hmi, 1, &[3, 0, 0, 0, 16]);
    assert_eq!(&read[7..9], &[3, 32], "{read:?}");
    assert_eq!(modbus(&mut hmi, 2, &[6, 0, 15, 0, 7])[7], 6);
    assert_eq!(modbus(&mut hmi, 3, &[6, 0, 64, 0, 1])[7..], [0x86, 2]);
    assert_eq!(modbus(&mut hmi, 4, &[3, 0, 64, 0, 1])[7..], [0x83, 2]);
    let mut console = Client::new(alone.console, Duration::from_secs(5));
    let io = console.status().unwrap().io;
    assert_eq!(
        (io.hmi_connections, io.hmi_accepted, io.hmi_refused),
        (1, 1, 0),
        "{io:?}"
    );
    assert_eq!(
        (
            io.hmi_requests,
            io.hmi_exceptions,
            io.hmi_writes_acked,
            io.hmi_writes_refused
        ),
        (4, 2, 0, 1),
        "{io:?}"
    );
    // A client that closes is not counted as refused; one that sends bytes that are not
    // Modbus/TCP (protocol id 1) is closed and counted.
    drop(hmi);
    wait_for(Duration::from_secs(5), "the HMI connection closed", || {
        console.status().unwrap().io.hmi_connections == 0
    });
    assert_eq!(console.status().unwrap().io.hmi_refused, 0);
    let mut bad = TcpStream::connect(alone.hmi.unwrap()).unwrap();
    bad.write_all(&[0, 1, 0, 1, 0, 6, 1, 3, 0, 0, 0, 1]).unwrap();
    wait_for(Duration::from_secs(5), "the bad connection closed", || {
        let io = console.status().unwrap().io;
        io.hmi_connections == 0 && io.hmi_accepted == 2
    });
    assert_eq!(console.status().unwrap().io.hmi_refused, 1);
    alone.finish();
}

/// The core's time begins at the shell clock's start, and the clock starts once the
/// node is built (issue 20): `Node::new` writes its whole state buffer, 65 MiB for a
/// 64 MiB state, and the start-up wait was counted from before that. A node joining a
/// running primary on a loaded host had spent its wait by the time its loop first
/// listened, decided it heard nobody and started cold beside the primary. Before the
/// fix the boot instant was read from the running clock, after `Clock::start`, so it
/// was later than `Clock::START` by however long that took (nanoseconds at least).
#[test]
fn shell_new_starts_the_core_at_the_clock_start() {
    let dir = std::env::temp_dir().join(format!("twinloop-io-boot-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let shell_config = ShellConfig {
        name: "boot".into(),
        state_file: dir.join("node.epoch"),
        seed: 7,
        frames: FramesConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], free_udp_port())),
            ..FramesConfig::default()
        },
        links: vec![LinkConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], free_udp_port())),
            bulk_bind: Some(SocketAddr::from(([127, 0, 0, 1], free_udp_port()))),
            peer: SocketAddr::from(([127, 0, 0, 1], free_udp_port())),
            bulk_peer: Some(SocketAddr::from(([127, 0, 0, 1], free_udp_port()))),
            ..LinkConfig::default()
        }],
        outputs: OutputsConfig {
            bind: "127.0.0.1:0".parse().unwrap(),
            sinks: vec![SocketAddr::from(([127, 0, 0, 1], free_udp_port()))],
            ..OutputsConfig::default()
        },
        ..ShellConfig::default()
    };
    let runtime = Config {
        node_id: 3,
        links: 1,
        heartbeat_interval_ms: 5,
        detection_window_ms: 50,
        startup_wait_ms: 20,
        ..Config::default()
    };
    let shell = Shell::new(shell_config, runtime, TestApp::new(0)).expect("the shell starts");
    // A starting node's first deadline is an instant fixed from its boot; with the boot
    // at the clock's start, it is one of these exactly.
    let first = shell.node().poll_timeout().expect("a starting node has deadlines");
    let start = twinloop::io::clock::Clock::START;
    let fixed = [Duration::ZERO, Duration::from_millis(5), Duration::from_millis(20)];
    assert!(
        fixed.iter().any(|&after| first == start + after),
        "first deadline {first:?} is not the clock's start {start:?} plus 0, 5 or 20 ms"
    );
    drop(shell);
    let _ = std::fs::remove_dir_all(&dir);
}

/// [`TestApp`] that also burns a fixed amount of work at each step: a program whose cycle
/// costs more CPU than the plain one's on the same frames.
struct Burner(TestApp);

/// Rounds of the burner's busy loop a step (a few hundred µs of CPU).
const BURN_ROUNDS: u64 = 200_000;

impl App for Burner {
    fn step(&mut self, frame: Frame<'_>, outbox: &mut Outbox) {
        let mut x = frame.number;
        for i in 0..BURN_ROUNDS {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(i));
        }
        std::hint::black_box(x);
        self.0.step(frame, outbox);
    }

    fn snapshot(&self, buf: &mut [u8]) -> Result<usize, SnapshotError> {
        self.0.snapshot(buf)
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<(), SnapshotError> {
        self.0.restore(bytes)
    }

    fn digest(&self) -> u64 {
        self.0.digest()
    }
}

/// Status register 16: the loop's CPU share, ‰.
fn cpu_share_permille(hmi: &mut TcpStream, tid: u16) -> u16 {
    let read = modbus(hmi, tid, &[3, 0, 16, 0, 1]);
    assert_eq!(&read[7..9], &[3, 2], "{read:?}");
    u16::from_be_bytes([read[9], read[10]])
}

#[test]
fn shell_hmi_cpu_share_moves_with_the_work() {
    let start = |name: &str, burn: bool| {
        let port = free_udp_port();
        let frames = FramesConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], port)),
            ..FramesConfig::default()
        };
        let (to, hmi) = (
            SocketAddr::from(([127, 0, 0, 1], port)),
            Some("127.0.0.1:0".parse().unwrap()),
        );
        if burn {
            start_alone_app(name, None, frames, to, hmi, Burner(TestApp::new(0)))
        } else {
            start_alone_hmi(name, None, frames, to, hmi)
        }
    };
    let (idle, busy) = (start("cpu-idle", false), start("cpu-busy", true));
    let connect = |alone: &Alone| {
        let hmi = TcpStream::connect(alone.hmi.expect("the HMI server listens")).unwrap();
        hmi.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        hmi
    };
    let (mut idle_hmi, mut busy_hmi) = (connect(&idle), connect(&busy));
    for hmi in [&mut idle_hmi, &mut busy_hmi] {
        wait_for(Duration::from_secs(10), "the node to lead", || {
            modbus(hmi, 1, &[3, 0, 2, 0, 1])[9..11] == [0, 1]
        });
    }
    // The same frames to both, every 2 ms: until the busy node's figure moved off 0 (a
    // window with frames ended), then two windows more, so that both figures are of
    // windows full of frames. The plain program's cycle costs the same but the burn.
    let source = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut frame = 0u64;
    let mut tid = 2u16;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut next_read = Instant::now() + Duration::from_millis(100);
    let mut until = None;
    while until.is_none_or(|until| Instant::now() < until) {
        assert!(Instant::now() < deadline, "the busy node's CPU share stayed 0 for 30 s");
        frame += 1;
        let datagram = io_protocol::frame_to_vec(frame, &TestApp::payload_for(frame)).unwrap();
        source.send_to(&datagram, idle.frames).unwrap();
        source.send_to(&datagram, busy.frames).unwrap();
        // The source's pace, not a wait for a condition.
        std::thread::sleep(Duration::from_millis(2));
        if until.is_none() && Instant::now() >= next_read {
            tid = tid.wrapping_add(1);
            if cpu_share_permille(&mut busy_hmi, tid) > 0 {
                until = Some(Instant::now() + 2 * Duration::from_millis(1100));
            }
            next_read += Duration::from_millis(100);
        }
    }
    let busy_permille = cpu_share_permille(&mut busy_hmi, tid.wrapping_add(1));
    let idle_permille = cpu_share_permille(&mut idle_hmi, tid.wrapping_add(2));
    assert!(busy_permille <= 1000 && idle_permille <= 1000);
    assert!(
        busy_permille > idle_permille,
        "the burner's loop is busier: {busy_permille} ‰ against {idle_permille} ‰ after {frame} frames"
    );
    eprintln!("CPU share after {frame} frames: busy {busy_permille} ‰, idle {idle_permille} ‰");
    idle.finish();
    busy.finish();
}
