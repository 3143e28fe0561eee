//! The rig shared by the two-process tests: two real `twinloop-demo` processes on
//! loopback with a test I/O source (closing the loop through the plant model), a
//! deduplicating actuator sink, and a reference run of the same program.
// Real processes on a real clock: the tests measure and bound with wall time.
#![allow(clippy::disallowed_methods)]
// Each test file uses part of the rig.
#![allow(dead_code)]

use serde_json::Value;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use twinloop::app::{App, Frame, Outbox};
use twinloop::io::client::Client;
use twinloop::io::config::{ConsoleConfig, FramesConfig, HookConfig, LinkConfig, OutputsConfig, ShutdownConfig};
pub use twinloop::io::schema::{EventsPage, Role, Status, Sync};
use twinloop::io_protocol;
use twinloop::testing::Sink;
use twinloop_demo::layout::OutputMessage;
pub use twinloop_demo::node_config::{NodeFile, NodeTable};
use twinloop_demo::plant::{Plant, PlantParams};
use twinloop_demo::{TankApp, TankParams};

/// The I/O source's cycle.
pub const CYCLE_MS: u64 = 2;
pub const KEY: &str = "test-console-key";

/// The two scenarios start four processes and two threads each: run them one at a time.
pub static SERIAL: Mutex<()> = Mutex::new(());

pub fn params() -> TankParams {
    TankParams {
        cycle_ms: Some(CYCLE_MS as u32),
        ..TankParams::default()
    }
}

/// Polls `condition` every 10 ms until it holds; panics with `what` after `limit`.
pub fn wait_for(limit: Duration, what: &str, context: &dyn Fn() -> String, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    loop {
        if condition() {
            return;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {limit:?} waiting for: {what}\n{}", context());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The ports of the rig's nodes: one pool for every test ([`twinloop::testing::PortPool`]).
pub use twinloop::testing::{NodePorts, PortPool};

/// What a rig sets beyond the defaults.
#[derive(Debug, Clone, Copy, Default)]
pub struct RigOptions {
    /// Authenticate the sync links with a pre-shared key (`sync.key`).
    pub sync_key: bool,
    /// Accept frames only from the test source's address (`frames.sources`).
    pub restrict_frame_source: bool,
    /// Changes node 2's configuration (a misconfiguration): the rig then does not wait
    /// for the pair to form, only for frames to flow.
    pub edit_b: Option<fn(&mut NodeFile)>,
}

/// The sync-link key the rig writes when `sync_key` is set.
pub const SYNC_KEY: &str = "test-sync-key";

/// A node's configuration file, as TOML: [`node_file`] written from its type.
pub fn node_config(
    id: u8,
    me: &NodePorts,
    peer: &NodePorts,
    sink: u16,
    dir: &Path,
    options: &RigOptions,
    source: SocketAddr,
) -> String {
    node_file(id, me, peer, sink, dir, options, source)
        .to_toml()
        .expect("a node file serializes")
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Node `id`'s configuration: fast timings on loopback ports, two links, the console key
/// `console.key` (and `sync.key` with `options.sync_key`) beside the file, a hook that
/// appends each transition to `node-<id>.hooks`.
pub fn node_file(
    id: u8,
    me: &NodePorts,
    peer: &NodePorts,
    sink: u16,
    dir: &Path,
    options: &RigOptions,
    source: SocketAddr,
) -> NodeFile {
    let link = |i: usize, name: &str| LinkConfig {
        name: name.into(),
        bind: local(me.links[i][0]),
        bulk_bind: Some(local(me.links[i][1])),
        peer: local(peer.links[i][0]),
        bulk_peer: Some(local(peer.links[i][1])),
        ..LinkConfig::default()
    };
    let hooklog = dir.join(format!("node-{id}.hooks")).display().to_string();
    NodeFile {
        node: NodeTable {
            name: format!("node-{id}"),
            state_file: dir.join(format!("node-{id}.epoch")),
            seed: 1000 + u64::from(id),
            sync_key_file: options.sync_key.then(|| PathBuf::from("sync.key")),
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
            sources: if options.restrict_frame_source {
                vec![source.to_string()]
            } else {
                Vec::new()
            },
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
        shutdown: ShutdownConfig {
            switchover_wait_ms: 5000,
            ..ShutdownConfig::default()
        },
        hook: HookConfig {
            command: vec![
                "sh".into(),
                "-c".into(),
                format!("echo \"$TWINLOOP_ROLE $TWINLOOP_REASON $TWINLOOP_EPOCH\" >> {hooklog}"),
            ],
            ..HookConfig::default()
        },
        app: params(),
        ..NodeFile::default()
    }
}

/// A running node process; killed when dropped.
pub struct Node {
    pub id: u8,
    pub child: RefCell<Child>,
    pub console: SocketAddr,
    pub log: PathBuf,
    pub exit: RefCell<Option<ExitStatus>>,
}

impl Node {
    pub fn spawn(id: u8, config: &Path, log: PathBuf, console: u16) -> Node {
        Node::spawn_env(id, config, log, console, &[])
    }

    /// As [`Node::spawn`], with these environment variables set for the process.
    pub fn spawn_env(id: u8, config: &Path, log: PathBuf, console: u16, env: &[(&str, &str)]) -> Node {
        let stderr = fs::File::create(&log).expect("create the node's log file");
        let child = Command::new(env!("CARGO_BIN_EXE_twinloop-demo"))
            .arg("--config")
            .arg(config)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start twinloop-demo");
        Node {
            id,
            child: RefCell::new(child),
            console: SocketAddr::from(([127, 0, 0, 1], console)),
            log,
            exit: RefCell::new(None),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.borrow().id()
    }

    /// A console client for this node (the library's), each request bounded by 2 s.
    pub fn client(&self) -> Client {
        Client::new(self.console, Duration::from_secs(2))
    }

    /// One console request line as text, and the response as JSON: for tests of the
    /// wire format itself. `None` when the node does not answer (yet).
    pub fn request(&self, request: &str) -> Option<Value> {
        let mut stream = TcpStream::connect_timeout(&self.console, Duration::from_millis(500)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        stream.write_all(request.as_bytes()).ok()?;
        stream.write_all(b"\n").ok()?;
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).ok()?;
        serde_json::from_str(&line).ok()
    }

    /// `status`; `None` when the node does not answer (yet).
    pub fn status(&self) -> Option<Status> {
        self.client().status().ok()
    }

    /// The node answers with this role.
    pub fn role_is(&self, role: Role) -> bool {
        self.status().is_some_and(|s| s.role == role)
    }

    /// The node answers with this sync state.
    pub fn sync_is(&self, sync: Sync) -> bool {
        self.status().is_some_and(|s| s.sync == sync)
    }

    pub fn frame(&self) -> u64 {
        self.status().map_or(0, |s| s.frame)
    }

    /// The journal's first page after `since`; `None` when the node does not answer.
    pub fn events(&self, since: u64) -> Option<EventsPage> {
        self.client().events(since, 1000).ok()
    }

    /// True once the process has exited (and records how).
    pub fn exited(&self) -> bool {
        if self.exit.borrow().is_some() {
            return true;
        }
        if let Ok(Some(status)) = self.child.borrow_mut().try_wait() {
            *self.exit.borrow_mut() = Some(status);
            return true;
        }
        false
    }

    /// How it exited; panics if it runs.
    pub fn exit_status(&self) -> ExitStatus {
        self.exit.borrow().expect("the process has exited")
    }

    pub fn sigkill(&self) {
        let mut child = self.child.borrow_mut();
        let _ = child.kill();
        *self.exit.borrow_mut() = child.wait().ok();
    }

    pub fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM {} failed", self.pid());
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn log_tail(&self) -> String {
        let text = self.log_text();
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(40);
        format!(
            "--- node {} log (last lines) ---\n{}",
            self.id,
            lines[from..].join("\n")
        )
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if !self.exited() {
            let mut child = self.child.borrow_mut();
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Every frame the source sent: number and payload.
pub type FrameLog = Arc<Mutex<Vec<(u64, Vec<u8>)>>>;

/// What the sink saw.
#[derive(Default)]
pub struct SinkState {
    pub sink: Sink,
    /// Arrival time, sender and id of every output datagram.
    pub arrivals: Vec<(Instant, u8, u64, u8)>,
    /// Datagrams that did not decode.
    pub malformed: u64,
}

/// The test I/O source, the plant and the sink.
pub struct Plantside {
    pub stop: Arc<AtomicBool>,
    pub sending: Arc<AtomicBool>,
    /// Set by the source once it has seen `sending` off (nothing more will be sent).
    pub paused: Arc<AtomicBool>,
    pub frames_sent: Arc<AtomicU64>,
    /// Bit `i` set: frames go to target `i` (node `i + 1`); all set at start. A cleared
    /// bit is a dead input path to that node only.
    pub targets_on: Arc<AtomicU32>,
    pub frames: FrameLog,
    pub sink: Arc<Mutex<SinkState>>,
    pub threads: Vec<JoinHandle<()>>,
}

impl Plantside {
    pub fn start(source_socket: UdpSocket, sink_socket: UdpSocket, targets: Vec<SocketAddr>) -> Plantside {
        let stop = Arc::new(AtomicBool::new(false));
        let sending = Arc::new(AtomicBool::new(false));
        let paused = Arc::new(AtomicBool::new(true));
        let frames_sent = Arc::new(AtomicU64::new(0));
        let targets_on = Arc::new(AtomicU32::new(u32::MAX));
        let frames = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::new(Mutex::new(SinkState::default()));
        // Starting just below the low-level alarm makes the program raise, acknowledge
        // and clear an alarm early on: frames with more than one output.
        let plant = Arc::new(Mutex::new(Plant::new(PlantParams {
            level_initial_um: 190_000,
            ..PlantParams::default()
        })));

        let source = {
            let (stop, sending, paused, frames_sent, frames, plant, targets_on) = (
                stop.clone(),
                sending.clone(),
                paused.clone(),
                frames_sent.clone(),
                frames.clone(),
                plant.clone(),
                targets_on.clone(),
            );
            std::thread::spawn(move || {
                let socket = source_socket;
                let cycle = Duration::from_millis(CYCLE_MS);
                let mut next_at = Instant::now();
                let mut number = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    // Pacing the source is the one place a sleep belongs: it is the plant's
                    // cycle, not a wait for a condition.
                    let now = Instant::now();
                    if now < next_at {
                        std::thread::sleep(next_at - now);
                    }
                    next_at += cycle;
                    if !sending.load(Ordering::SeqCst) {
                        paused.store(true, Ordering::SeqCst);
                        next_at = Instant::now() + cycle;
                        continue;
                    }
                    paused.store(false, Ordering::SeqCst);
                    number += 1;
                    let payload = {
                        let mut plant = plant.lock().unwrap();
                        plant.advance(CYCLE_MS);
                        // Press the acknowledge button now and then, so alarm events occur.
                        plant.set_ack(number % 300 >= 50 && number % 300 < 53);
                        plant.inputs().encode()
                    };
                    let datagram = io_protocol::frame_to_vec(number, &payload).unwrap();
                    frames.lock().unwrap().push((number, payload.to_vec()));
                    let on = targets_on.load(Ordering::SeqCst);
                    for (i, target) in targets.iter().enumerate() {
                        if on & (1 << i) != 0 {
                            let _ = socket.send_to(&datagram, target);
                        }
                    }
                    frames_sent.store(number, Ordering::SeqCst);
                }
            })
        };

        let receiver = {
            let (stop, sink, plant) = (stop.clone(), sink.clone(), plant.clone());
            std::thread::spawn(move || {
                sink_socket.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
                let started = Instant::now();
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::SeqCst) {
                    let Ok((len, _)) = sink_socket.recv_from(&mut buf) else {
                        continue;
                    };
                    let mut state = sink.lock().unwrap();
                    let Ok(output) = io_protocol::decode_output(&buf[..len]) else {
                        state.malformed += 1;
                        continue;
                    };
                    state
                        .arrivals
                        .push((Instant::now(), output.node_id, output.frame, output.index));
                    // The test sink is strict (no lease): the time is only recorded.
                    let now =
                        twinloop::Instant::from_nanos(u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX));
                    let decision = state.sink.offer(now, &output.to_output());
                    if decision == twinloop::Decision::Accepted && output.index == 0 {
                        if let Ok(OutputMessage::Command(command)) = OutputMessage::decode(output.payload) {
                            plant.lock().unwrap().apply(&command);
                        }
                    }
                }
            })
        };
        Plantside {
            stop,
            sending,
            paused,
            frames_sent,
            targets_on,
            frames,
            sink,
            threads: vec![source, receiver],
        }
    }

    pub fn frames_sent(&self) -> u64 {
        self.frames_sent.load(Ordering::SeqCst)
    }

    /// The number of frames whose command (output 0) the sink accepted.
    pub fn has_command_of(&self, frame: u64) -> bool {
        self.sink.lock().unwrap().sink.accepted.contains_key(&(frame, 0))
    }

    /// Stops the frames; returns the number of the last one sent.
    pub fn stop_sending(&self) -> u64 {
        self.sending.store(false, Ordering::SeqCst);
        // The source may be sending a frame right now: wait until it has seen the flag.
        wait_for(Duration::from_secs(5), "the source to stop", &String::new, || {
            self.paused.load(Ordering::SeqCst)
        });
        self.frames_sent()
    }

    pub fn shutdown(mut self) -> (Vec<(u64, Vec<u8>)>, SinkState) {
        self.stop.store(true, Ordering::SeqCst);
        for thread in self.threads.drain(..) {
            thread.join().expect("plant-side thread");
        }
        let frames = std::mem::take(&mut *self.frames.lock().unwrap());
        let sink = std::mem::take(&mut *self.sink.lock().unwrap());
        (frames, sink)
    }
}

/// A pair of node processes with the plant side, ready to run.
pub struct Rig {
    pub dir: PathBuf,
    pub a: Node,
    /// Started once `a` leads.
    pub b_started: Option<Node>,
    pub plant: Plantside,
    /// Every port of both nodes (for tests that talk to them directly).
    pub ports: [NodePorts; 2],
}

impl Rig {
    pub fn b(&self) -> &Node {
        self.b_started.as_ref().expect("node 2 started")
    }

    pub fn context(&self) -> String {
        let sink = self.plant.sink.lock().unwrap();
        format!(
            "frames sent {}, sink accepted {}, duplicates {}\nA status: {:?}\nB status: {:?}\n{}\n{}",
            self.plant.frames_sent(),
            sink.sink.accepted.len(),
            sink.sink.duplicates,
            self.a.status().map(|s| (s.role, s.sync, s.frame)),
            self.b_started
                .as_ref()
                .and_then(Node::status)
                .map(|s| (s.role, s.sync, s.frame)),
            self.a.log_tail(),
            self.b_started.as_ref().map_or(String::new(), Node::log_tail)
        )
    }

    /// Starts A, waits for it to lead; starts B, waits for it to follow; starts the
    /// frames; waits until B is in sync and A paired.
    pub fn start(name: &str) -> Rig {
        Rig::start_with(name, RigOptions::default())
    }

    /// [`Rig::start`] with options.
    pub fn start_with(name: &str, options: RigOptions) -> Rig {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("pair-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("console.key"), format!("{KEY}\n")).unwrap();
        // Key files must not be readable by others (the node refuses them).
        fs::set_permissions(
            dir.join("console.key"),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();

        if options.sync_key {
            fs::write(dir.join("sync.key"), format!("{SYNC_KEY}\n")).unwrap();
            fs::set_permissions(
                dir.join("sync.key"),
                std::os::unix::fs::PermissionsExt::from_mode(0o600),
            )
            .unwrap();
        }
        let source_socket = UdpSocket::bind("127.0.0.1:0").expect("bind the source socket");
        let source = source_socket.local_addr().unwrap();
        let mut pool = PortPool::new();
        let ports = [pool.node(), pool.node()];
        // The sink keeps its socket: the nodes send to it.
        let sink_socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        // A new primary runs the frames it holds at once (an input handover after 1 s of a
        // dead input path: ~500 frames at a 2 ms cycle), and their outputs arrive as one
        // burst: more than the default 208 KiB buffer holds while the sink thread waits
        // for the CPU (seen: outputs of frames 5298.. lost at the sink, not by the pair).
        socket2::SockRef::from(&sink_socket)
            .set_recv_buffer_size(4 << 20)
            .expect("the sink's receive buffer");
        let sink_port = sink_socket.local_addr().unwrap().port();
        for (i, id) in [1u8, 2].into_iter().enumerate() {
            let mut file = node_file(id, &ports[i], &ports[1 - i], sink_port, &dir, &options, source);
            if let (2, Some(edit)) = (id, options.edit_b) {
                edit(&mut file);
            }
            let text = file.to_toml().expect("a node file serializes");
            fs::write(dir.join(format!("node-{id}.toml")), text).unwrap();
        }
        let targets = ports
            .iter()
            .map(|p| SocketAddr::from(([127, 0, 0, 1], p.frames)))
            .collect();
        pool.release();

        let plant = Plantside::start(source_socket, sink_socket, targets);
        let a = Node::spawn(1, &dir.join("node-1.toml"), dir.join("node-1.log"), ports[0].console);
        let b_console = ports[1].console;
        // B starts only once A leads, so that the roles are known.
        let mut rig = Rig {
            a,
            b_started: None,
            dir,
            plant,
            ports,
        };
        wait_for(
            Duration::from_secs(15),
            "node 1 to become primary",
            &|| rig.context(),
            || rig.a.role_is(Role::Primary),
        );
        rig.b_started = Some(Node::spawn(
            2,
            &rig.dir.join("node-2.toml"),
            rig.dir.join("node-2.log"),
            b_console,
        ));
        if options.edit_b.is_some() {
            // Misconfigured: no pair forms. Frames flow once node 2 runs.
            wait_for(
                Duration::from_secs(15),
                "node 2 to answer on its console",
                &|| rig.context(),
                || rig.b().status().is_some(),
            );
            rig.plant.paused.store(false, Ordering::SeqCst);
            rig.plant.sending.store(true, Ordering::SeqCst);
            return rig;
        }
        wait_for(
            Duration::from_secs(15),
            "node 2 to become backup",
            &|| rig.context(),
            || rig.b().role_is(Role::Backup),
        );
        rig.plant.paused.store(false, Ordering::SeqCst);
        rig.plant.sending.store(true, Ordering::SeqCst);
        wait_for(
            Duration::from_secs(20),
            "node 2 in sync and node 1 paired",
            &|| rig.context(),
            || rig.b().sync_is(Sync::InSync) && rig.a.sync_is(Sync::Paired),
        );
        rig
    }

    /// Waits until the sink has the command of frame `frame`.
    pub fn await_sink_frame(&self, frame: u64, limit: Duration) {
        wait_for(
            limit,
            &format!("the sink to receive frame {frame}"),
            &|| self.context(),
            || self.plant.has_command_of(frame),
        );
    }
}

/// The outputs a reference run of the tank program produces on `frames` (in order).
pub fn reference_outputs(frames: &[(u64, Vec<u8>)], last: u64) -> BTreeMap<(u64, u8), Vec<u8>> {
    let mut app = TankApp::new(params());
    let mut outbox = Outbox::new();
    let mut expected = BTreeMap::new();
    for (number, payload) in frames.iter().filter(|(n, _)| *n <= last) {
        outbox.clear();
        app.step(
            Frame {
                number: *number,
                payload,
            },
            &mut outbox,
        );
        for (index, output) in outbox.as_slice().iter().enumerate() {
            expected.insert((*number, index as u8), output.to_vec());
        }
    }
    expected
}

/// Compares the sink's accepted outputs with the reference: every id once, same content.
pub fn assert_exactly_the_reference(sink: &Sink, frames: &[(u64, Vec<u8>)], last: u64) {
    let first = sink.accepted.keys().next().map(|&(f, _)| f);
    assert_eq!(
        first,
        Some(1),
        "the first primary runs from frame 1 (frames start after it leads)"
    );
    let expected = reference_outputs(frames, last);
    let accepted: BTreeMap<(u64, u8), Vec<u8>> = sink
        .accepted
        .iter()
        .filter(|((frame, _), _)| *frame <= last)
        .map(|(&id, (_, payload))| (id, payload.clone()))
        .collect();
    let missing: Vec<_> = expected
        .keys()
        .filter(|id| !accepted.contains_key(id))
        .take(10)
        .collect();
    let extra: Vec<_> = accepted
        .keys()
        .filter(|id| !expected.contains_key(id))
        .take(10)
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "output ids lost {missing:?} or unexpected {extra:?} (of {} expected)",
        expected.len()
    );
    let different: Vec<_> = expected
        .iter()
        .filter(|(id, payload)| accepted.get(*id) != Some(*payload))
        .map(|(id, _)| id)
        .take(10)
        .collect();
    assert!(
        different.is_empty(),
        "outputs differ from the reference run: {different:?}"
    );
    assert_eq!(sink.conflicts, 0, "two copies of one id with different content");
    assert!(
        expected.len() as u64 > last && accepted.keys().any(|&(_, index)| index > 0),
        "every frame has its command, and some have alarm events ({} outputs for {last} frames)",
        expected.len()
    );
}

/// One node of a pair whose peer never starts (it leads alone; frames come from
/// nowhere), before it is spawned: its directory under the test's temporary folder
/// (`<test>-<pid>`, emptied, with the console key), its configuration file's contents
/// (to edit before [`Alone::write`]), its ports and its sink.
pub struct Alone {
    pub dir: PathBuf,
    pub file: NodeFile,
    pub ports: NodePorts,
    pub sink: UdpSocket,
    pub pool: Option<PortPool>,
}

impl Alone {
    pub fn new(test: &str) -> Alone {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{test}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("console.key"), format!("{KEY}\n")).unwrap();
        fs::set_permissions(
            dir.join("console.key"),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
        let mut pool = PortPool::new();
        let ports = [pool.node(), pool.node()];
        let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
        let source = SocketAddr::from(([127, 0, 0, 1], 9));
        let file = node_file(
            1,
            &ports[0],
            &ports[1],
            sink.local_addr().unwrap().port(),
            &dir,
            &RigOptions::default(),
            source,
        );
        Alone {
            dir,
            file,
            ports: ports[0],
            sink,
            pool: Some(pool),
        }
    }

    /// A free port from the same pool (before [`Alone::write`] releases it).
    pub fn port(&mut self) -> u16 {
        self.pool.as_mut().expect("before write").take()
    }

    /// Writes `node-1.toml` and frees the ports for the node to bind.
    pub fn write(&mut self) -> PathBuf {
        let path = self.dir.join("node-1.toml");
        fs::write(&path, self.file.to_toml().expect("a node file serializes")).unwrap();
        self.pool.take();
        path
    }

    /// Writes the file and starts the node with `env`; waits until it leads.
    pub fn start(&mut self, env: &[(&str, &str)]) -> Node {
        let config = self.write();
        let node = Node::spawn_env(1, &config, self.dir.join("node-1.log"), self.ports.console, env);
        if env.is_empty() {
            wait_for(
                Duration::from_secs(15),
                "the node to lead alone",
                &|| node.log_tail(),
                || node.role_is(Role::Primary),
            );
        }
        node
    }
}
