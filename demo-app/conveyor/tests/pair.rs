//! The conveyor as a real pair: two `twinloop-conveyor` processes on loopback, an I/O
//! source sending one-byte frames to both, a sink reading outputs, and `twinctl status
//! --json` (the real binary, reading the nodes' configuration files) asked about them.
// Real processes on a real clock: the source is paced and every wait bounded with wall time.
#![allow(clippy::disallowed_methods)]

use serde_json::Value;
use std::fs;
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use twinloop::io::config::{ConsoleConfig, FramesConfig, LinkConfig, OutputsConfig};
use twinloop::io_protocol;
use twinloop::node_main::config::{NodeFile, NodeTable};
use twinloop::testing::{NodePorts, PortPool};
use twinloop_conveyor::ConveyorSettings;

/// The `twinctl` binary of this build profile, built by cargo when absent or older than
/// this test (cargo builds only this package's binaries for its tests).
fn twinctl() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap(); // target/<profile>/deps/..
    let path = profile_dir.join("twinctl");
    let age = |p: &Path| fs::metadata(p).and_then(|m| m.modified()).ok();
    if path.is_file() && age(&path) >= age(&exe) {
        return path;
    }
    let mut build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    build.args(["build", "--quiet", "-p", "twinctl", "--target-dir"]);
    build.arg(profile_dir.parent().unwrap());
    if profile_dir.ends_with("release") {
        build.arg("--release");
    }
    assert!(build.status().expect("run cargo").success(), "building twinctl failed");
    path
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Node `i`'s configuration, written from its type: configs/conveyor-a.toml's keys on
/// the test's ports.
fn config(i: usize, ports: &[NodePorts; 2], sink: u16, dir: &Path) -> String {
    let (me, peer) = (&ports[i], &ports[1 - i]);
    let n = i as u8 + 1;
    let link = |l: usize| LinkConfig {
        bind: local(me.links[l][0]),
        bulk_bind: Some(local(me.links[l][1])),
        peer: local(peer.links[l][0]),
        bulk_peer: Some(local(peer.links[l][1])),
        ..LinkConfig::default()
    };
    let file = NodeFile::<ConveyorSettings> {
        node: NodeTable {
            name: format!("conveyor-{n}"),
            state_file: dir.join(format!("conveyor-{n}.epoch")),
            ..NodeTable::default()
        },
        runtime: twinloop::Config {
            node_id: n,
            priority: if i == 0 { 1 } else { 0 },
            heartbeat_interval_ms: 5,
            detection_window_ms: 100,
            probe_timeout_ms: 50,
            startup_wait_ms: 100,
            ..twinloop::Config::default()
        },
        frames: FramesConfig {
            bind: local(me.frames),
            ..FramesConfig::default()
        },
        links: vec![link(0), link(1)],
        outputs: OutputsConfig {
            sinks: vec![local(sink)],
            ..OutputsConfig::default()
        },
        console: ConsoleConfig {
            bind: local(me.console),
            key_file: Some(PathBuf::from("console.key")),
            ..ConsoleConfig::default()
        },
        app: ConveyorSettings { batch_parts: 3 },
        ..NodeFile::default()
    };
    file.to_toml().expect("a node file serializes")
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn conveyor_pair_twinctl_status_healthy_and_outputs_flow() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("conveyor-pair-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("console.key"), "conveyor-test-key\n").unwrap();
    fs::set_permissions(dir.join("console.key"), fs::Permissions::from_mode(0o600)).unwrap();
    let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
    sink.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let mut pool = PortPool::new();
    let ports = [pool.node(), pool.node()];
    let configs: Vec<PathBuf> = (0..2).map(|i| dir.join(format!("conveyor-{}.toml", i + 1))).collect();
    for (i, path) in configs.iter().enumerate() {
        fs::write(path, config(i, &ports, sink.local_addr().unwrap().port(), &dir)).unwrap();
    }
    let spawn = |i: usize| {
        let log = fs::File::create(dir.join(format!("conveyor-{}.log", i + 1))).unwrap();
        Killed(
            Command::new(env!("CARGO_BIN_EXE_twinloop-conveyor"))
                .arg("--config")
                .arg(&configs[i])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start twinloop-conveyor"),
        )
    };
    pool.release();
    let mut nodes = [spawn(0), spawn(1)];

    // The I/O source: guard closed, start pressed at first, a part every 4th frame.
    let stop = Arc::new(AtomicBool::new(false));
    let source = {
        let (stop, targets) = (stop.clone(), [ports[0].frames, ports[1].frames]);
        std::thread::spawn(move || {
            let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
            let mut number = 0u64;
            while !stop.load(Ordering::SeqCst) {
                number += 1;
                let bits = 4 | u8::from(number % 50 < 3) | if number % 4 == 0 { 8 } else { 0 };
                let datagram = io_protocol::frame_to_vec(number, &[bits]).unwrap();
                for port in targets {
                    let _ = socket.send_to(&datagram, ("127.0.0.1", port));
                }
                // The plant's cycle: pacing, not waiting for a condition.
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };

    let twinctl = twinctl();
    let status = || {
        let out = Command::new(&twinctl)
            .arg("--config")
            .arg(&configs[0])
            .arg("--config")
            .arg(&configs[1])
            .args(["status", "--json"])
            .output()
            .expect("run twinctl");
        let json: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        (out.status.code(), json)
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let (code, json) = loop {
        let (code, json) = status();
        // A node that exited (a port taken meanwhile, a bad configuration) ends the wait.
        let exited = nodes.iter_mut().any(|n| n.0.try_wait().ok().flatten().is_some());
        if code == Some(0) || exited || Instant::now() >= deadline {
            break (code, json);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let logs = || {
        (1..=2)
            .map(|n| fs::read_to_string(dir.join(format!("conveyor-{n}.log"))).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n---\n")
    };
    assert_eq!(code, Some(0), "twinctl status: healthy within 30 s: {json}\n{}", logs());
    assert_eq!(json["health"], "healthy");
    // Node 1's priority makes it the usual primary; on a loaded host both may lead cold
    // at start-up and the higher epoch, node 2's, keep leading (`fenced_at_startup`).
    let primary = usize::from(json["primary"] == "conveyor-2");
    let names = ["conveyor-1", "conveyor-2"];
    assert_eq!(
        (&json["primary"], &json["backup"]),
        (&names[primary].into(), &names[1 - primary].into())
    );
    let nodes = json["nodes"].as_array().unwrap();
    assert_eq!(nodes[primary]["status"]["role"], "primary");
    assert_eq!(nodes[1 - primary]["status"]["role"], "backup");
    assert_eq!(nodes[1 - primary]["status"]["sync"], "in_sync");

    // What the sink holds from before the pair was healthy (the other node's, if it led a
    // moment at start-up) is read first: from now on only the primary emits.
    let mut buf = [0u8; 2048];
    sink.set_nonblocking(true).unwrap();
    for _ in 0..1_000_000 {
        if sink.recv_from(&mut buf).is_err() {
            break;
        }
    }
    sink.set_nonblocking(false).unwrap();

    // The sink hears the primary's motor commands, and a batch completes (3 parts).
    let (mut motor_on, mut batch) = (false, false);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(motor_on && batch) && Instant::now() < deadline {
        let Ok((len, _)) = sink.recv_from(&mut buf) else {
            continue;
        };
        let output = io_protocol::decode_output(&buf[..len]).expect("an output datagram");
        assert_eq!(usize::from(output.node_id), primary + 1, "only the primary emits");
        motor_on |= output.payload == [1, 1];
        batch |= output.payload.first() == Some(&2);
    }
    stop.store(true, Ordering::SeqCst);
    source.join().unwrap();
    assert!(
        motor_on && batch,
        "motor on {motor_on}, batch complete {batch}\n{}",
        logs()
    );
}
