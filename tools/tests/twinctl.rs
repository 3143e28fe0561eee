//! `twinctl` against a real pair of `twinloop-demo` processes on loopback (ephemeral
//! ports, configurations and keys generated in a temporary directory, an I/O source
//! sending frames so that the nodes cycle):
//!
//! - `status` shows one primary and an in-sync backup, exit 0 (and `--json` says so);
//! - `switchover` with a wrong key is refused (exit 1, a clear message), without a
//!   terminal and without `--yes` it refuses to ask (exit 3); `switchover --yes` swaps
//!   the roles and reports the frame boundary;
//! - `events` shows the transitions and their reasons; `events --follow` sees a new one;
//! - `watch`, in tmux as a person would use it: shows the pair, highlights the role
//!   change, quits on `q` with the terminal restored (skipped when tmux is absent);
//! - `watch` ends promptly when its terminal goes away (tmux killed: the pty hangs up),
//!   on SIGTERM, and on SIGTERM while its terminal takes no output (a stopped tmux);
//! - bad input: an unreachable node, a peer that does not speak JSON.
//!
//! Every wait is a bounded poll of a condition; the bounds are generous for a loaded
//! 2-core machine.
// Real processes on a real clock: the test measures and bounds with wall time.
#![allow(clippy::disallowed_methods)]

use serde_json::Value;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use twinloop::io::config::{ConsoleConfig, FramesConfig, LinkConfig, OutputsConfig};
use twinloop::io_protocol;
use twinloop::testing::{NodePorts, PortPool};
use twinloop_demo::node_config::{NodeFile, NodeTable};
use twinloop_demo::plant::{Plant, PlantParams};
use twinloop_demo::TankParams;

const TWINCTL: &str = env!("CARGO_BIN_EXE_twinctl");
const KEY: &str = "test-console-key";
/// The I/O source's cycle.
const CYCLE_MS: u64 = 2;

/// The pair scenarios start two nodes each: one at a time on 2 cores.
static SERIAL: Mutex<()> = Mutex::new(());

/// Polls `condition` every 20 ms until it holds; panics with `what` and `context()`
/// after `limit`.
fn wait_for(limit: Duration, what: &str, context: &dyn Fn() -> String, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    loop {
        if condition() {
            return;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {limit:?} waiting for: {what}\n{}", context());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn scratch_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("twinctl-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// A key file as the node demands it: readable by its owner only.
fn write_key(path: &Path, key: &str) {
    use std::os::unix::fs::PermissionsExt;
    fs::write(path, format!("{key}\n")).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
}

/// What a finished `twinctl` run left.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not one JSON value ({e}): {self:?}"))
    }
}

/// Runs twinctl with `args` and no standard input; it is killed if it runs for more than
/// a minute (twinctl bounds its own waits: this only guards against a hang).
fn twinctl(dir: &Path, args: &[&str]) -> Run {
    static COUNTER: Mutex<u32> = Mutex::new(0);
    let n = {
        let mut c = COUNTER.lock().unwrap_or_else(|e| e.into_inner());
        *c += 1;
        *c
    };
    let (out_path, err_path) = (
        dir.join(format!("twinctl-{n}.out")),
        dir.join(format!("twinctl-{n}.err")),
    );
    let mut child = Command::new(TWINCTL)
        .args(args)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out_path).unwrap())
        .stderr(fs::File::create(&err_path).unwrap())
        .spawn()
        .expect("start twinctl");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("twinctl {args:?} still ran after 60 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Run {
        code: status.code().unwrap_or(-1),
        stdout: fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: fs::read_to_string(&err_path).unwrap_or_default(),
    }
}

/// A spawned process, killed (by its own handle) when dropped.
struct Process(Child);

impl Process {
    /// Panics when the process has exited (a node that stopped at start-up).
    fn assert_running(&mut self, context: &dyn Fn() -> String) {
        if let Ok(Some(status)) = self.0.try_wait() {
            panic!("a node exited ({status}):\n{}", context());
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Node `id`'s configuration, written from its type: fast timings on loopback ports, two
/// links, the console key `console.key` beside the file.
fn node_toml(id: u8, me: &NodePorts, peer: &NodePorts, sink: u16, dir: &Path) -> String {
    let link = |i: usize, name: &str| LinkConfig {
        name: name.into(),
        bind: local(me.links[i][0]),
        bulk_bind: Some(local(me.links[i][1])),
        peer: local(peer.links[i][0]),
        bulk_peer: Some(local(peer.links[i][1])),
        ..LinkConfig::default()
    };
    let file = NodeFile {
        node: NodeTable {
            name: format!("node-{id}"),
            state_file: dir.join(format!("node-{id}.epoch")),
            seed: 2000 + u64::from(id),
            ..NodeTable::default()
        },
        runtime: twinloop::Config {
            node_id: id,
            links: 2,
            heartbeat_interval_ms: 5,
            detection_window_ms: 100,
            probe_timeout_ms: 50,
            startup_wait_ms: 100,
            retry_ms: 10,
            switchover_timeout_ms: 1000,
            ..twinloop::Config::default()
        },
        frames: FramesConfig {
            bind: local(me.frames),
            ..FramesConfig::default()
        },
        links: vec![link(0, "sync"), link(1, "plant")],
        outputs: OutputsConfig {
            bind: local(0),
            sinks: vec![local(sink)],
            ..OutputsConfig::default()
        },
        console: ConsoleConfig {
            bind: local(me.console),
            key_file: Some(PathBuf::from("console.key")),
            ..ConsoleConfig::default()
        },
        app: TankParams {
            cycle_ms: Some(CYCLE_MS as u32),
            ..TankParams::default()
        },
        ..NodeFile::default()
    };
    file.to_toml().expect("a node file serializes")
}

/// The I/O source (frames from the plant model, every `CYCLE_MS`) and a sink that
/// drains the outputs. Stopped and joined when dropped.
struct Plantside {
    stop: Arc<AtomicBool>,
    /// Cleared: the source sends no frames (it keeps its pace and numbering).
    sending: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Plantside {
    fn start(sink: UdpSocket, targets: Vec<SocketAddr>) -> Plantside {
        let stop = Arc::new(AtomicBool::new(false));
        let sending = Arc::new(AtomicBool::new(true));
        let source = {
            let (stop, sending) = (stop.clone(), sending.clone());
            std::thread::spawn(move || {
                let socket = UdpSocket::bind("127.0.0.1:0").expect("bind the source socket");
                let mut plant = Plant::new(PlantParams::default());
                let cycle = Duration::from_millis(CYCLE_MS);
                let mut next_at = Instant::now();
                let mut number = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    // Pacing the source is the plant's cycle, not a wait for a condition.
                    let now = Instant::now();
                    if now < next_at {
                        std::thread::sleep(next_at - now);
                    }
                    next_at += cycle;
                    if !sending.load(Ordering::SeqCst) {
                        continue;
                    }
                    number += 1;
                    plant.advance(CYCLE_MS);
                    let datagram = io_protocol::frame_to_vec(number, &plant.inputs().encode()).unwrap();
                    for target in &targets {
                        let _ = socket.send_to(&datagram, target);
                    }
                }
            })
        };
        let drain = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                sink.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::SeqCst) {
                    let _ = sink.recv_from(&mut buf);
                }
            })
        };
        Plantside {
            stop,
            sending,
            threads: vec![source, drain],
        }
    }
}

impl Drop for Plantside {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// Two node processes and the plant side.
struct Rig {
    dir: PathBuf,
    configs: [PathBuf; 2],
    // Dropped in field order: the nodes first, then the source.
    nodes: Vec<Process>,
    _plant: Plantside,
}

impl Rig {
    /// `--config a --config b`.
    fn config_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        for c in &self.configs {
            args.push("--config".to_string());
            args.push(c.display().to_string());
        }
        args
    }

    /// twinctl with both nodes' configurations, then `args`.
    fn twinctl(&self, args: &[&str]) -> Run {
        let mut all = self.config_args();
        all.extend(args.iter().map(|a| a.to_string()));
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        twinctl(&self.dir, &all)
    }

    fn logs(&self) -> String {
        node_logs(&self.dir)
    }

    /// `status --json`, for conditions.
    fn status(&self) -> Option<Value> {
        let run = self.twinctl(&["status", "--json"]);
        serde_json::from_str(&run.stdout).ok()
    }

    /// Waits until twinctl calls the pair healthy with `primary` leading.
    fn await_healthy(&self, primary: &str) {
        wait_for(
            Duration::from_secs(30),
            &format!("a healthy pair led by {primary}"),
            &|| format!("{:?}\n{}", self.status(), self.logs()),
            || {
                self.status()
                    .is_some_and(|s| s["health"] == "healthy" && s["primary"] == primary)
            },
        );
    }

    /// Node 1 first (it leads), then node 2 (it follows), then the frames.
    fn start(name: &str) -> Rig {
        let dir = scratch_dir(name);
        write_key(&dir.join("console.key"), KEY);
        let mut pool = PortPool::new();
        let ports = [pool.node(), pool.node()];
        let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
        let sink_port = sink.local_addr().unwrap().port();
        let configs = [dir.join("node-1.toml"), dir.join("node-2.toml")];
        for (i, id) in [1u8, 2].into_iter().enumerate() {
            fs::write(&configs[i], node_toml(id, &ports[i], &ports[1 - i], sink_port, &dir)).unwrap();
        }
        let targets = ports
            .iter()
            .map(|p| SocketAddr::from(([127, 0, 0, 1], p.frames)))
            .collect();
        pool.release();
        let binary = twinloop_demo::binary::locate().expect("the twinloop-demo binary");
        let spawn = |id: u8| {
            let log = fs::File::create(dir.join(format!("node-{id}.log"))).unwrap();
            Process(
                Command::new(&binary)
                    .arg("--config")
                    .arg(dir.join(format!("node-{id}.toml")))
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(log)
                    .spawn()
                    .expect("start twinloop-demo"),
            )
        };
        let mut rig = Rig {
            dir: dir.clone(),
            configs,
            nodes: vec![spawn(1)],
            _plant: Plantside::start(sink, targets),
        };
        let one = ["--config", rig.configs[0].to_str().unwrap(), "status", "--json"];
        wait_for(Duration::from_secs(20), "node-1 to lead", &|| node_logs(&dir), || {
            rig.nodes[0].assert_running(&|| node_logs(&dir));
            let run = twinctl(&dir, &one);
            serde_json::from_str::<Value>(&run.stdout).is_ok_and(|s| s["primary"] == "node-1")
        });
        rig.nodes.push(spawn(2));
        rig.await_healthy("node-1");
        rig
    }
}

/// The last lines of both nodes' logs in `dir`.
fn node_logs(dir: &Path) -> String {
    let mut text = String::new();
    for id in 1..=2 {
        let log = fs::read_to_string(dir.join(format!("node-{id}.log"))).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let from = lines.len().saturating_sub(25);
        text.push_str(&format!(
            "--- node-{id} log (last lines) ---\n{}\n",
            lines[from..].join("\n")
        ));
    }
    text
}

/// The line of a `status` table that starts with `label`.
fn row<'a>(text: &'a str, label: &str) -> &'a str {
    text.lines()
        .find(|l| l.starts_with(label))
        .unwrap_or_else(|| panic!("no {label:?} row in:\n{text}"))
}

#[test]
fn twinctl_status_switchover_events_on_a_real_pair() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rig = Rig::start("pair");

    // status: one primary, an in-sync backup, side by side; exit 0.
    let status = rig.twinctl(&["status"]);
    assert_eq!(status.code, 0, "healthy is exit 0: {status:?}");
    eprintln!("--- twinctl status ---\n{}", status.stdout);
    assert!(status
        .stdout
        .starts_with("HEALTHY: node-1 is primary, node-2 an in-sync backup"));
    let header = status.stdout.lines().nth(2).unwrap();
    assert!(
        header.find("node-1") < header.find("node-2"),
        "node-1's column first: {header}"
    );
    let role = row(&status.stdout, "role");
    assert!(role.find("PRIMARY") < role.find("backup"), "{role}");
    let sync = row(&status.stdout, "sync");
    assert!(sync.contains("paired") && sync.contains("in_sync"), "{sync}");
    assert!(row(&status.stdout, "link 0 sync").matches("up, rtt").count() == 2);
    assert!(row(&status.stdout, "link 1 plant").matches("up, rtt").count() == 2);

    let json = rig.twinctl(&["status", "--json"]);
    assert_eq!(json.code, 0);
    let json = json.json();
    assert_eq!(json["twinctl"], 1);
    assert_eq!(json["health"], "healthy");
    assert_eq!(json["exit_code"], 0);
    assert_eq!(
        (json["primary"].as_str(), json["backup"].as_str()),
        (Some("node-1"), Some("node-2"))
    );
    assert_eq!(json["nodes"][0]["status"]["role"], "primary");
    assert_eq!(json["nodes"][1]["status"]["role"], "backup");
    assert_eq!(json["nodes"][1]["status"]["sync"], "in_sync");
    assert_eq!(json["problems"], Value::Array(Vec::new()));

    // A wrong key: refused by the node, exit 1, a clear message; nothing changes.
    write_key(&rig.dir.join("wrong.key"), "not-the-key");
    let wrong_key = rig.dir.join("wrong.key").display().to_string();
    let refused = rig.twinctl(&["switchover", "--yes", "--key-file", &wrong_key]);
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(
        refused
            .stderr
            .contains("switchover refused by node-1: wrong or missing key (bad_key)"),
        "{refused:?}"
    );
    let refused = rig.twinctl(&["switchover", "--yes", "--json", "--key-file", &wrong_key]);
    assert_eq!(refused.code, 1, "{refused:?}");
    let refused_json = refused.json();
    assert_eq!(refused_json["outcome"], "refused");
    assert_eq!(refused_json["reason"], "bad_key");

    // force-primary and rejoin act on one node that waits for an operator: an in-sync
    // backup does not (exit 1, the core's refusal); both nodes at once is a usage error.
    let backup_config = rig.configs[1].display().to_string();
    let force = twinctl(&rig.dir, &["--config", &backup_config, "force-primary"]);
    assert_eq!(force.code, 1, "{force:?}");
    assert!(
        force.stdout.contains("force-primary refused: this node is not waiting"),
        "{force:?}"
    );
    let rejoin = twinctl(&rig.dir, &["--config", &backup_config, "rejoin"]);
    assert_eq!(rejoin.code, 1, "{rejoin:?}");
    let both = rig.twinctl(&["force-primary"]);
    assert_eq!(both.code, 3, "{both:?}");
    assert!(both.stderr.contains("exactly one"), "{both:?}");
    assert_eq!(refused_json["sent_to"], "node-1");
    assert!(
        refused.stderr.starts_with("twinctl: switchover refused by node-1"),
        "{refused:?}"
    );
    // No terminal and no --yes: refuse to ask rather than hang.
    let unconfirmed = rig.twinctl(&["switchover"]);
    assert_eq!(unconfirmed.code, 3, "{unconfirmed:?}");
    assert!(
        unconfirmed
            .stderr
            .contains("standard input is not a terminal; pass --yes"),
        "{unconfirmed:?}"
    );
    assert_eq!(
        rig.status().unwrap()["primary"],
        "node-1",
        "still node-1 after two refusals"
    );

    // switchover --to naming the primary, or a node not in the pair: refused by the core
    // with its reason (exit 1); a bad id is a usage error (exit 3).
    let to_primary = rig.twinctl(&["switchover", "--yes", "--json", "--to", "node-1"]);
    assert_eq!(to_primary.code, 1, "{to_primary:?}");
    assert_eq!(to_primary.json()["reason"], "target_is_primary", "{to_primary:?}");
    let to_unknown = rig.twinctl(&["switchover", "--yes", "--to", "99"]);
    assert_eq!(to_unknown.code, 1, "{to_unknown:?}");
    assert!(
        to_unknown.stderr.contains("refused by node-1: unknown_target"),
        "{to_unknown:?}"
    );
    let to_zero = rig.twinctl(&["switchover", "--yes", "--to", "0"]);
    assert_eq!(to_zero.code, 3, "{to_zero:?}");
    assert_eq!(
        rig.status().unwrap()["primary"],
        "node-1",
        "still node-1 after --to refusals"
    );

    // switchover --yes: node-2 leads, at the frame node-1 released.
    let switched = rig.twinctl(&["switchover", "--yes"]);
    eprintln!(
        "--- twinctl switchover --yes ---\n{}{}",
        switched.stdout, switched.stderr
    );
    assert_eq!(switched.code, 0, "{switched:?}\n{}", rig.logs());
    assert!(
        switched.stdout.contains("switchover completed: node-2 is primary now"),
        "{switched:?}"
    );
    assert!(switched.stdout.contains("node-1 released after frame"), "{switched:?}");
    assert!(
        switched.stdout.contains("frames skipped at the handover: 0"),
        "{switched:?}"
    );
    rig.await_healthy("node-2");
    let after = rig.status().unwrap();
    assert_eq!(after["backup"], "node-1");
    assert_eq!(after["nodes"][0]["status"]["switchovers"], 1);
    assert_eq!(after["nodes"][1]["status"]["takeovers"], 0, "planned, not a takeover");
    let epoch = after["nodes"][1]["status"]["epoch"].as_u64().unwrap();
    assert_eq!(epoch & 0xFF, 2, "node-2 started the new term");

    // events: the transitions with their reasons.
    let events = rig.twinctl(&["events", "--kind", "transition"]);
    assert_eq!(events.code, 0, "{events:?}");
    eprintln!("--- twinctl events --kind transition ---\n{}", events.stdout);
    let completed = events
        .stdout
        .lines()
        .find(|l| l.contains("switchover_completed"))
        .unwrap_or_else(|| panic!("no switchover_completed in:\n{}", events.stdout));
    assert!(completed.contains("node-2") && completed.contains("took over in a planned switchover"));
    assert!(events.stdout.contains("switchover_handed_over"));
    assert!(
        events.stdout.lines().all(|l| l.contains(" transition ")),
        "--kind filters"
    );
    let json_events = rig.twinctl(&["events", "--json", "--last", "0"]);
    assert_eq!(json_events.code, 0);
    let records: Vec<Value> = json_events
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    let handed = records
        .iter()
        .find(|r| r["event"]["name"] == "switchover_handed_over")
        .expect("the old primary's transition");
    assert_eq!(handed["node"], "node-1");
    assert_eq!(handed["type"], "event");
    assert_eq!(handed["event"]["reason"], "switchover_handed_over");
    assert_eq!(handed["event"]["role"], "backup");
    let times: Vec<u64> = records.iter().filter_map(|r| r["event"]["unix_ms"].as_u64()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "merged oldest first");

    // events --follow sees the next switchover (back to node-1), reported as JSON.
    let follow_out = rig.dir.join("follow.out");
    let mut follow_args = rig.config_args();
    follow_args.extend(["events", "--follow", "--json", "--kind", "transition"].map(String::from));
    let follow = Process(
        Command::new(TWINCTL)
            .args(&follow_args)
            .stdin(Stdio::null())
            .stdout(fs::File::create(&follow_out).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Back to node-1, named (`--to`, by name; the MAC covers the target).
    let back = rig.twinctl(&["switchover", "--yes", "--json", "--to", "node-1"]);
    assert_eq!(back.code, 0, "{back:?}");
    let back = back.json();
    assert_eq!(back["to"], 1);
    eprintln!("--- twinctl switchover --yes --json ---\n{back}");
    assert_eq!(back["outcome"], "completed");
    assert_eq!(back["sent_to"], "node-2");
    assert_eq!(back["result"], "started");
    assert_eq!(back["new_primary"]["node"], "node-1");
    assert_eq!(back["old_primary"]["node"], "node-2");
    assert_eq!(
        back["released_frame"], back["taken_frame"],
        "the new primary runs from the next frame"
    );
    assert_eq!(back["frames_skipped"], 0);
    assert!(back["new_primary"]["epoch"].as_u64().unwrap() > epoch);
    wait_for(
        Duration::from_secs(10),
        "events --follow to print node-1's switchover_completed",
        &|| fs::read_to_string(&follow_out).unwrap_or_default(),
        || {
            fs::read_to_string(&follow_out).unwrap_or_default().lines().any(|l| {
                serde_json::from_str::<Value>(l)
                    .is_ok_and(|r| r["node"] == "node-1" && r["event"]["name"] == "switchover_completed")
            })
        },
    );
    drop(follow);
    rig.await_healthy("node-1");
    let _ = fs::remove_dir_all(&rig.dir);
}

/// tmux on its own server socket (a file of ours, `-S`), with no user configuration; the
/// server is ended and its socket removed when dropped.
struct Tmux {
    socket: PathBuf,
}

impl Tmux {
    /// `None` (and a message) when tmux is not installed.
    fn start(name: &str) -> Option<Tmux> {
        if Command::new("tmux").arg("-V").output().is_err() {
            eprintln!("SKIPPED: tmux is not installed (apt-get install -y tmux): the live view was not tested");
            return None;
        }
        // Short, in the system's temporary directory: a socket path has at most 107 bytes.
        Some(Tmux {
            socket: std::env::temp_dir().join(format!("twinctl-test-{name}-{}.tmux", std::process::id())),
        })
    }

    fn tmux(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(["-f", "/dev/null"])
            .args(args)
            .output()
            .expect("run tmux")
    }

    /// A 160×45 session running `script` in sh; the pane stays open afterwards (`cat`
    /// waits on the terminal) so that what remains on screen can be read.
    fn session(&self, session: &str, script: &str) {
        let out = self.tmux(&[
            "new-session",
            "-d",
            "-s",
            session,
            "-x",
            "160",
            "-y",
            "45",
            &format!("{script}; exec cat"),
        ]);
        assert!(out.status.success(), "tmux new-session: {out:?}");
    }

    fn capture(&self, session: &str) -> String {
        String::from_utf8_lossy(&self.tmux(&["capture-pane", "-p", "-J", "-t", session]).stdout).into_owned()
    }

    fn keys(&self, session: &str, keys: &str) {
        assert!(self.tmux(&["send-keys", "-t", session, keys]).status.success());
    }

    /// Waits until the screen of `session` satisfies `condition`; returns it.
    fn await_screen(&self, session: &str, what: &str, condition: impl Fn(&str) -> bool) -> String {
        let mut screen = String::new();
        wait_for(
            Duration::from_secs(20),
            what,
            &|| format!("screen:\n{}", self.capture(session)),
            || {
                screen = self.capture(session);
                condition(&screen)
            },
        );
        screen
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
        let _ = fs::remove_file(&self.socket);
    }
}

fn sh_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[test]
fn twinctl_watch_in_tmux_shows_the_pair_and_the_role_change() {
    let Some(tmux) = Tmux::start("watch") else { return };
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rig = Rig::start("watch");
    let args: Vec<String> = rig.config_args().iter().map(|a| sh_quote(a)).collect();
    tmux.session(
        "w",
        &format!(
            "{} {} watch; echo \"twinctl exited $?\"; stty -a; echo end-of-test",
            sh_quote(TWINCTL),
            args.join(" ")
        ),
    );
    let before = tmux.await_screen("w", "the view to show a healthy pair led by node-1", |s| {
        s.contains("HEALTHY: node-1 is primary, node-2 an in-sync backup") && s.contains("events (newest last)")
    });
    eprintln!("--- watch, before the switchover ---\n{before}");
    let role = row(&before, "role");
    assert!(role.find("PRIMARY") < role.find("backup"), "{role}");
    assert!(before.contains("link 1 plant"), "{before}");

    let switched = rig.twinctl(&["switchover", "--yes"]);
    assert_eq!(switched.code, 0, "{switched:?}");
    let after = tmux.await_screen("w", "the view to show node-2 leading and the role change", |s| {
        s.contains("ROLE CHANGE") && s.contains("HEALTHY: node-2 is primary, node-1 an in-sync backup")
    });
    eprintln!("--- watch, after the switchover ---\n{after}");
    let role = row(&after, "role");
    assert!(
        role.contains("backup (changed)") && role.contains("PRIMARY (changed)"),
        "{role}"
    );
    assert!(
        role.find("backup") < role.find("PRIMARY"),
        "node-1 backup, node-2 primary: {role}"
    );
    assert!(
        after.contains("node-2 backup -> PRIMARY (switchover_completed)"),
        "{after}"
    );
    assert!(
        after.contains("switchover_completed"),
        "the event list shows it: {after}"
    );

    tmux.keys("w", "q");
    let quit = tmux.await_screen("w", "twinctl to exit on q", |s| s.contains("end-of-test"));
    eprintln!("--- after q ---\n{quit}");
    assert!(quit.contains("twinctl exited 0"), "{quit}");
    assert!(
        !quit.contains("events (newest last)"),
        "the alternate screen is gone: {quit}"
    );
    assert!(
        quit.contains(" icanon") && quit.contains(" echo"),
        "cooked mode again: {quit}"
    );
    let _ = fs::remove_dir_all(&rig.dir);
}

#[test]
fn twinctl_watch_restores_the_terminal_on_ctrl_c_and_panic() {
    let Some(tmux) = Tmux::start("restore") else { return };
    // Nothing listens there: the view shows the node unreachable, and must still work.
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let watch = format!("{} --node {addr} watch", sh_quote(TWINCTL));
    tmux.session(
        "c",
        &format!("{watch}; echo \"twinctl exited $?\"; stty -a; echo end-of-test"),
    );
    let screen = tmux.await_screen("c", "the view of an unreachable node", |s| s.contains("UNREACHABLE"));
    assert!(screen.contains("DOWN: no reachable node is primary"), "{screen}");
    tmux.keys("c", "C-c");
    let screen = tmux.await_screen("c", "twinctl to exit on Ctrl-C", |s| s.contains("end-of-test"));
    assert!(screen.contains("twinctl exited 0"), "{screen}");
    assert!(
        screen.contains(" icanon") && !screen.contains("UNREACHABLE"),
        "{screen}"
    );

    tmux.session(
        "p",
        &format!("TWINCTL_TEST_PANIC_AFTER_DRAW=1 {watch}; echo \"twinctl exited $?\"; stty -a; echo end-of-test"),
    );
    let screen = tmux.await_screen("p", "twinctl to exit on its panic", |s| s.contains("end-of-test"));
    eprintln!("--- after a panic ---\n{screen}");
    assert!(screen.contains("twinctl exited 101"), "{screen}");
    assert!(
        screen.contains("panicked") && screen.contains("TWINCTL_TEST_PANIC_AFTER_DRAW"),
        "{screen}"
    );
    assert!(
        screen.contains(" icanon") && screen.contains(" echo"),
        "cooked mode again: {screen}"
    );
}

/// Sends the signal `name` (`TERM`, `STOP`, …) to `pid`, with the shell's `kill`.
fn signal(pid: u32, name: &str) {
    let status = Command::new("sh")
        .args(["-c", &format!("kill -s {name} {pid}")])
        .status()
        .expect("run sh");
    assert!(status.success(), "kill -s {name} {pid}: {status}");
}

/// A `twinctl watch` in a tmux session whose pid and exit code land in files, so that both
/// can be read when the pane, or the whole tmux server, is gone. Killed (SIGKILL) when
/// dropped if it has not ended: a failed test leaves no process spinning.
struct Watch {
    pid: u32,
    rc_file: PathBuf,
}

impl Watch {
    /// Starts `twinctl <args> watch <watch_args>` in a new session `session`; standard
    /// error goes to `stderr` if given, else stays on the terminal. Returns once twinctl
    /// runs.
    fn start(tmux: &Tmux, dir: &Path, session: &str, args: &str, stderr: Option<&Path>) -> Watch {
        let pid_file = dir.join(format!("{session}.pid"));
        let rc_file = dir.join(format!("{session}.rc"));
        let redirect = stderr.map_or(String::new(), |path| {
            format!(" 2>{}", sh_quote(&path.to_string_lossy()))
        });
        // The inner sh writes its pid and becomes twinctl. The pane's shell outlives a
        // hang-up (it runs the trap once twinctl has ended) to write twinctl's exit code.
        tmux.session(
            session,
            &format!(
                "trap : HUP; sh -c 'echo $$ > \"$1\"; shift; exec \"$@\"' sh {pid} {twinctl} {args}{redirect}; \
                 rc=$?; echo $rc > {rc}.new && mv {rc}.new {rc}; echo \"twinctl exited $rc\"; stty -a; echo end-of-test",
                pid = sh_quote(&pid_file.to_string_lossy()),
                twinctl = sh_quote(TWINCTL),
                rc = sh_quote(&rc_file.to_string_lossy()),
            ),
        );
        let mut pid = None;
        wait_for(
            Duration::from_secs(20),
            "twinctl to start",
            &|| format!("screen:\n{}", tmux.capture(session)),
            || {
                pid = fs::read_to_string(&pid_file).ok().and_then(|p| p.trim().parse().ok());
                pid.is_some()
            },
        );
        Watch {
            pid: pid.unwrap(),
            rc_file,
        }
    }

    /// twinctl's exit code, once it has ended.
    fn exit_code(&self) -> Option<i32> {
        fs::read_to_string(&self.rc_file).ok()?.trim().parse().ok()
    }

    /// Waits at most `limit` for twinctl to end; its exit code. `what`: why it should.
    fn await_exit(&self, limit: Duration, what: &str) -> i32 {
        let start = Instant::now();
        wait_for(
            limit,
            what,
            &|| {
                // Still running: its state and CPU time (utime, stime) tell a busy loop.
                let stat = fs::read_to_string(format!("/proc/{}/stat", self.pid)).unwrap_or_default();
                let wchan = fs::read_to_string(format!("/proc/{}/wchan", self.pid)).unwrap_or_default();
                format!("twinctl (pid {}) still runs: /proc stat {stat} wchan {wchan}", self.pid)
            },
            || self.exit_code().is_some(),
        );
        eprintln!("twinctl (pid {}) ended {:?} after: {what}", self.pid, start.elapsed());
        self.exit_code().unwrap()
    }

    /// What the main thread waits in, from /proc (e.g. `wait_woken`: a write to the
    /// terminal that waits for room); `None` where the kernel does not say.
    fn wchan(&self) -> Option<String> {
        let wchan = fs::read_to_string(format!("/proc/{}/wchan", self.pid)).ok()?;
        (!wchan.is_empty() && wchan != "0").then_some(wchan)
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if self.exit_code().is_none() {
            let _ = Command::new("sh")
                .args(["-c", &format!("kill -s KILL {} 2>/dev/null", self.pid)])
                .status();
        }
    }
}

/// A stopped tmux server, continued when dropped (before the `Tmux` that ends it: a
/// stopped server would never answer `kill-server`).
struct Stopped(u32);

impl Stopped {
    fn stop(pid: u32) -> Stopped {
        signal(pid, "STOP");
        Stopped(pid)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        signal(self.0, "CONT");
    }
}

/// A node address where nothing listens: the view shows it unreachable (no pair needed).
fn unreachable_addr() -> String {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string()
}

/// The terminal goes away under a running view (the tmux server is killed: the pty hangs
/// up, as when an ssh connection drops): twinctl must end at once, exit 3, with its
/// message on stderr when stderr still works. It used to stay, spinning on the hung-up
/// terminal and deaf to SIGTERM.
#[test]
fn twinctl_watch_exits_when_its_terminal_goes_away() {
    let Some(tmux) = Tmux::start("hangup") else { return };
    let dir = scratch_dir("hangup");
    let args = format!("--node {} watch", unreachable_addr());
    let err_file = dir.join("a.err");
    // Standard error to a file (the message can be read), and on the lost terminal.
    let with_file = Watch::start(&tmux, &dir, "a", &args, Some(&err_file));
    let on_terminal = Watch::start(&tmux, &dir, "b", &args, None);
    for session in ["a", "b"] {
        tmux.await_screen(session, "the view of an unreachable node", |s| {
            s.contains("UNREACHABLE")
        });
    }

    let out = tmux.tmux(&["kill-server"]);
    assert!(out.status.success(), "tmux kill-server: {out:?}");
    let code = with_file.await_exit(Duration::from_secs(5), "its terminal went away");
    let stderr = fs::read_to_string(&err_file).unwrap_or_default();
    assert_eq!(code, 3, "stderr: {stderr}");
    assert!(
        stderr.starts_with("twinctl: the terminal went away ("),
        "one clear line: {stderr}"
    );
    let code = on_terminal.await_exit(Duration::from_secs(5), "its terminal went away (stderr on it)");
    assert_eq!(code, 3, "exit 3, not a panic on the lost stderr");
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn twinctl_watch_ends_on_sigterm_with_the_terminal_restored() {
    let Some(tmux) = Tmux::start("sigterm") else { return };
    let dir = scratch_dir("sigterm");
    let watch = Watch::start(&tmux, &dir, "t", &format!("--node {} watch", unreachable_addr()), None);
    tmux.await_screen("t", "the view of an unreachable node", |s| s.contains("UNREACHABLE"));
    signal(watch.pid, "TERM");
    let code = watch.await_exit(Duration::from_secs(5), "SIGTERM");
    assert_eq!(code, 0, "SIGTERM is a quit");
    let screen = tmux.await_screen("t", "the shell to go on", |s| s.contains("end-of-test"));
    assert!(screen.contains("twinctl exited 0"), "{screen}");
    assert!(
        !screen.contains("UNREACHABLE"),
        "the alternate screen is gone: {screen}"
    );
    assert!(
        screen.contains(" icanon") && screen.contains(" echo"),
        "cooked mode again: {screen}"
    );
    let _ = fs::remove_dir_all(&dir);
}

/// The terminal stops taking output (its tmux server is stopped, as a stalled ssh
/// connection): the view blocks in a write. SIGTERM must still end it, within a bound
/// (exit 3: the terminal could not be restored), instead of waiting for the terminal.
#[test]
fn twinctl_watch_ends_on_sigterm_even_when_the_terminal_stalls() {
    let Some(tmux) = Tmux::start("stall") else { return };
    let dir = scratch_dir("stall");
    // Frames 20 times a second fill the pty's buffer soon.
    let watch = Watch::start(
        &tmux,
        &dir,
        "s",
        &format!("--node {} watch --interval-ms 50", unreachable_addr()),
        None,
    );
    tmux.await_screen("s", "the view of an unreachable node", |s| s.contains("UNREACHABLE"));
    if watch.wchan().is_none() {
        eprintln!("SKIPPED: /proc/PID/wchan says nothing here: a blocked write cannot be seen");
        return;
    }
    let server: u32 = String::from_utf8_lossy(&tmux.tmux(&["display-message", "-p", "#{pid}"]).stdout)
        .trim()
        .parse()
        .expect("the tmux server's pid");
    let stopped = Stopped::stop(server);
    wait_for(
        Duration::from_secs(20),
        "twinctl to block writing to the stopped terminal",
        &|| format!("wchan {:?}", watch.wchan()),
        || watch.wchan().as_deref() == Some("wait_woken"),
    );
    signal(watch.pid, "TERM");
    let code = watch.await_exit(Duration::from_secs(5), "SIGTERM, its terminal stalled");
    assert_eq!(code, 3, "the terminal could not be restored");
    drop(stopped);
    let screen = tmux.await_screen("s", "the shell to go on", |s| s.contains("end-of-test"));
    assert!(screen.contains(" icanon"), "raw mode is off: {screen}");
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn twinctl_bad_input_is_one_clear_line() {
    let dir = scratch_dir("errors");
    // Nothing listens on a port just released.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let down = twinctl(&dir, &["--node", &closed, "status"]);
    assert_eq!(down.code, 2, "no primary reachable is exit 2: {down:?}");
    assert!(
        down.stdout.starts_with("DOWN: no reachable node is primary"),
        "{down:?}"
    );
    assert!(
        down.stdout.contains("unreachable: cannot connect to 127.0.0.1:"),
        "{down:?}"
    );
    let down_json = twinctl(&dir, &["--node", &closed, "status", "--json"]);
    assert_eq!(down_json.code, 2);
    let down_json = down_json.json();
    assert_eq!(down_json["health"], "down");
    assert_eq!(down_json["nodes"][0]["reachable"], false);

    let events = twinctl(&dir, &["--node", &closed, "events"]);
    assert_eq!(events.code, 2, "{events:?}");
    assert!(
        events.stderr.starts_with("twinctl: no node could be read"),
        "{events:?}"
    );
    let switchover = twinctl(&dir, &["--node", &closed, "switchover", "--yes"]);
    assert_eq!(switchover.code, 2, "{switchover:?}");
    assert!(
        switchover.stderr.starts_with("twinctl: no primary reachable"),
        "{switchover:?}"
    );

    // A peer that does not speak the protocol.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let garbage = listener.local_addr().unwrap().to_string();
    let server = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut line = String::new();
        let _ = BufReader::new(stream.try_clone().unwrap()).read_line(&mut line);
        let _ = (&stream).write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
    });
    let bad = twinctl(&dir, &["--node", &garbage, "status"]);
    server.join().unwrap();
    assert_eq!(bad.code, 2);
    assert!(
        bad.stdout.contains("sent a response that is not a JSON object"),
        "{bad:?}"
    );

    // Usage: no node, a bad address, a missing configuration file, an unknown flag.
    for (args, expected) in [
        (vec!["status"], "twinctl: no node given"),
        (vec!["--node", "7401", "status"], "expected ip:port"),
        (
            vec!["--config", "/nonexistent/node.toml", "status"],
            "cannot read /nonexistent/node.toml",
        ),
        (vec!["status", "--frobnicate"], "--frobnicate"),
    ] {
        let run = twinctl(&dir, &args);
        assert_eq!(run.code, 3, "usage errors are exit 3: {args:?} {run:?}");
        assert!(run.stderr.contains(expected), "{args:?}: {run:?}");
    }
    let watch = twinctl(&dir, &["--node", &closed, "watch"]);
    assert_eq!(watch.code, 3);
    assert!(watch.stderr.contains("watch needs a terminal"), "{watch:?}");
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn twinctl_status_frames_paused_is_down_with_the_frame_age() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rig = Rig::start("paused");
    let healthy = rig.twinctl(&["status"]);
    assert_eq!(healthy.code, 0, "{healthy:?}");
    assert!(
        row(&healthy.stdout, "input").matches("last frame").count() == 2,
        "{}",
        healthy.stdout
    );

    // The I/O source stops sending to both nodes: the primary runs nothing.
    rig._plant.sending.store(false, Ordering::SeqCst);
    wait_for(
        Duration::from_secs(20),
        "twinctl to call the pair down",
        &|| format!("{:?}\n{}", rig.status(), rig.logs()),
        || rig.status().is_some_and(|s| s["health"] == "down"),
    );
    let status = rig.twinctl(&["status"]);
    eprintln!("--- twinctl status, frames paused ---\n{}", status.stdout);
    assert_eq!(status.code, 2, "a primary without frames is DOWN, exit 2: {status:?}");
    assert!(
        status.stdout.starts_with("DOWN: node-1 is primary but gets no frames"),
        "{}",
        status.stdout
    );
    assert!(
        status.stdout.contains("node-1 (primary): no frame for "),
        "the problem names the frame age:\n{}",
        status.stdout
    );
    assert_eq!(row(&status.stdout, "input").matches("SILENT, last frame").count(), 2);
    let json = rig.twinctl(&["status", "--json"]).json();
    assert_eq!(json["exit_code"], 2);
    let input = &json["nodes"][0]["status"]["input"];
    assert_eq!(input["silent"], true, "{input}");
    assert!(
        input["last_frame_age_ms"].as_u64().unwrap() >= input["silence_ms"].as_u64().unwrap(),
        "{input}"
    );
    // Both inputs silent: no handover, the primary stays.
    assert_eq!(json["primary"], "node-1");
    assert_eq!(input["handovers"], 0);
}
