//! Node processes and their consoles.
//!
//! - [`NodeProc`]: one `twinloop-demo` process: spawn, SIGKILL, SIGSTOP/SIGCONT, SIGTERM,
//!   restart. It is a drop guard: a node still running when its `NodeProc` is dropped
//!   (the run ended, failed, panicked or was interrupted) is killed and reaped. Where
//!   `setpriv` exists, nodes are also started with a parent-death signal, so that even a
//!   SIGKILLed harness leaves no node behind. Nodes get their own process group, so a
//!   Ctrl-C at the terminal reaches only the harness, which then kills them itself.
//! - [`Console`]: the console client (newline-delimited JSON over TCP, docs/CONSOLE.md).
//! - [`Watcher`]: a thread per node that polls `status` and follows the `events` journal,
//!   so the harness sees transitions (takeovers, switchovers, fencing) with the node's
//!   own timestamps.
#![allow(clippy::disallowed_methods)]

use super::sink::lock;
use super::{HarnessError, RunClock};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use twinloop::io::client::Client;
use twinloop::io::schema::{CommandReply, Event, EventKind, EventsPage, Role, Status};

/// Events kept per node; beyond, the oldest half is dropped (bounded memory).
pub const EVENTS_MAX: usize = 100_000;

/// One node process. Killed when dropped.
pub struct NodeProc {
    /// The node's id (1 or 2).
    pub id: u8,
    binary: PathBuf,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    frozen: bool,
    /// Processes started so far.
    pub starts: u32,
    /// The exit status of the last process, once reaped.
    pub last_exit: Option<ExitStatus>,
}

/// `setpriv` supports `--pdeathsig`; looked up once.
pub(super) fn setpriv() -> Option<&'static Path> {
    static FOUND: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    FOUND.get_or_init(|| find_tool("setpriv")).as_deref()
}

/// `chrt`, to start nodes on the normal scheduler; looked up once.
fn chrt() -> Option<&'static Path> {
    static FOUND: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    FOUND.get_or_init(|| find_tool("chrt")).as_deref()
}

fn find_tool(name: &str) -> Option<PathBuf> {
    ["/usr/bin", "/bin", "/usr/sbin"]
        .iter()
        .map(|dir| Path::new(dir).join(name))
        .find(|p| p.is_file())
}

impl NodeProc {
    /// A node not yet started: `binary --config config`, stderr appended to `log`.
    pub fn new(id: u8, binary: PathBuf, config: PathBuf, log: PathBuf) -> Self {
        NodeProc {
            id,
            binary,
            config,
            log,
            child: None,
            frozen: false,
            starts: 0,
            last_exit: None,
        }
    }

    /// Starts the process. Fails if it runs already.
    pub fn spawn(&mut self) -> Result<(), HarnessError> {
        if self.running() {
            return Err(HarnessError::Setup(format!("node {} is already running", self.id)));
        }
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| HarnessError::io(format!("open {}", self.log.display()), e))?;
        self.starts += 1;
        let _ = writeln!(
            log,
            "---- twinloop-sim: start #{} of node {} ----",
            self.starts, self.id
        );
        // The node dies with the harness even if the harness is SIGKILLed (`setpriv`), and
        // starts on the normal scheduler (`chrt --other`) even when the harness runs
        // real-time (`chrt -f 50 twinloop-sim bench …`): a node starting up at the
        // harness's priority would preempt the real-time primary. A node configured with
        // `[rt]` raises itself once it runs.
        let mut argv: Vec<&std::ffi::OsStr> = Vec::new();
        if let Some(setpriv) = setpriv() {
            argv.extend([setpriv.as_os_str(), "--pdeathsig".as_ref(), "KILL".as_ref()]);
        }
        if let Some(chrt) = chrt() {
            argv.extend([chrt.as_os_str(), "--other".as_ref(), "0".as_ref()]);
        }
        argv.push(self.binary.as_os_str());
        let mut command = Command::new(argv[0]);
        command.args(&argv[1..]);
        command
            .arg("--config")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .process_group(0);
        let child = command
            .spawn()
            .map_err(|e| HarnessError::io(format!("start {}", self.binary.display()), e))?;
        self.child = Some(child);
        self.frozen = false;
        self.last_exit = None;
        Ok(())
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// True while the process exists (stopped or not); reaps it when it has exited.
    pub fn running(&mut self) -> bool {
        let Some(child) = &mut self.child else {
            return false;
        };
        match child.try_wait() {
            Ok(None) => true,
            Ok(Some(status)) => {
                self.last_exit = Some(status);
                self.child = None;
                false
            }
            Err(_) => false,
        }
    }

    /// True while SIGSTOPped by [`NodeProc::freeze`].
    pub fn frozen(&self) -> bool {
        self.frozen && self.child.is_some()
    }

    fn signal(&self, signal: Signal) -> Result<(), HarnessError> {
        let pid = self
            .pid()
            .ok_or_else(|| HarnessError::Setup(format!("node {} is not running", self.id)))?;
        let pid = i32::try_from(pid).map_err(|_| HarnessError::Setup(format!("pid {pid} out of range")))?;
        kill(Pid::from_raw(pid), signal)
            .map_err(|e| HarnessError::Setup(format!("{signal} to node {} (pid {pid}): {e}", self.id)))
    }

    /// SIGKILL, and reaps the process.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            self.last_exit = child.wait().ok();
        }
        self.frozen = false;
    }

    /// SIGSTOP: the process freezes (its sockets keep queueing).
    pub fn freeze(&mut self) -> Result<(), HarnessError> {
        self.signal(Signal::SIGSTOP)?;
        self.frozen = true;
        Ok(())
    }

    /// SIGCONT: a frozen process resumes.
    pub fn thaw(&mut self) -> Result<(), HarnessError> {
        self.signal(Signal::SIGCONT)?;
        self.frozen = false;
        Ok(())
    }

    /// SIGTERM: a clean stop (a primary with a following backup hands over first).
    pub fn terminate(&mut self) -> Result<(), HarnessError> {
        if self.frozen {
            self.thaw()?;
        }
        self.signal(Signal::SIGTERM)
    }

    /// The last `lines` lines of the node's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// The log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The console of one node, through the library's client
/// ([`twinloop::io::client::Client`]): each request on a fresh connection, so that the
/// handle can be cloned onto the watcher's thread and a frozen node costs each request
/// at most the timeout.
#[derive(Debug, Clone)]
pub struct Console {
    /// The node's console address.
    pub addr: SocketAddr,
    key: String,
    timeout: Duration,
}

impl Console {
    /// A client for `addr` with the console key `key`; each request waits at most
    /// `timeout` (a frozen node does not answer).
    pub fn new(addr: SocketAddr, key: &str, timeout: Duration) -> Self {
        Console {
            addr,
            key: key.to_string(),
            timeout,
        }
    }

    fn client(&self) -> Client {
        Client::new(self.addr, self.timeout)
    }

    /// `status`.
    pub fn status(&self) -> Result<Status, String> {
        self.client().status().map_err(|e| e.to_string())
    }

    /// `events` since `since`: one page.
    pub fn events(&self, since: u64) -> Result<EventsPage, String> {
        self.client().events(since, 1000).map_err(|e| e.to_string())
    }

    /// `switchover`, proving the key: the reply (`result` is `started`, `forwarded` or
    /// `refused`).
    pub fn switchover(&self) -> Result<CommandReply, String> {
        self.client().switchover(&self.key).map_err(|e| e.to_string())
    }
}

/// One journal event of a node, as the harness keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeEvent {
    /// The node (1 or 2).
    pub node: u8,
    /// The process run (`boot_id`) it came from.
    pub boot_id: u64,
    /// Its sequence number in that run.
    pub seq: u64,
    /// When, ns since the run began (from the node's wall-clock stamp, ms resolution).
    pub at_ns: u64,
    /// What it is about.
    pub kind: EventKind,
    /// The event's name (a reason for transitions).
    pub name: String,
    /// `epoch`, for transitions.
    pub epoch: Option<u64>,
    /// `frame`, for transitions and some alarms and notices.
    pub frame: Option<u64>,
    /// `frame_last`, for alarms about a range of frames (`commit_lost`).
    pub frame_last: Option<u64>,
    /// `role`, for transitions.
    pub role: Option<Role>,
    /// `bytes`, for transfer notices.
    pub bytes: Option<u64>,
    /// The message, for people.
    pub message: String,
}

impl NodeEvent {
    fn from_event(node: u8, boot_id: u64, clock: &RunClock, e: &Event) -> NodeEvent {
        NodeEvent {
            node,
            boot_id,
            seq: e.seq,
            at_ns: clock.ns_of_unix_ms(e.unix_ms),
            kind: e.kind,
            name: e.name.clone(),
            epoch: e.epoch,
            frame: e.frame,
            frame_last: e.frame_last,
            role: e.role,
            bytes: e.bytes,
            message: e.message.clone(),
        }
    }

    /// A transition that started an unplanned takeover.
    pub fn is_takeover(&self) -> bool {
        self.kind == EventKind::Transition
            && matches!(self.name.as_str(), "takeover_after_probe" | "takeover_no_primary")
    }

    /// A transition that made this node primary of a new epoch (takeover, completed
    /// switchover, or a cold start).
    pub fn starts_epoch(&self) -> bool {
        self.kind == EventKind::Transition
            && matches!(
                self.name.as_str(),
                "takeover_after_probe"
                    | "takeover_no_primary"
                    | "switchover_completed"
                    | "started_first"
                    | "won_tiebreak"
            )
    }
}

/// What the watcher knows about one node.
#[derive(Debug, Clone, Default)]
pub struct NodeView {
    /// The last status, with when it was read (ns since the run began).
    pub status: Option<(u64, Status)>,
    /// The journal, oldest first, across restarts.
    pub events: Vec<NodeEvent>,
    /// Events dropped to bound memory.
    pub events_dropped: u64,
    /// Events the node's ring had dropped before the watcher read them.
    pub events_missed: u64,
    boot_id: u64,
    next_since: u64,
}

/// Polls one node's console on a thread. Dropping it stops the thread.
pub struct Watcher {
    view: Arc<Mutex<NodeView>>,
    stop: Arc<AtomicBool>,
    paused: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Watcher {
    /// Starts polling `console` of node `node` every `interval`.
    pub fn start(node: u8, console: Console, clock: RunClock, interval: Duration) -> Result<Watcher, HarnessError> {
        let view = Arc::new(Mutex::new(NodeView::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let paused = Arc::new(AtomicBool::new(false));
        let interval = interval.max(Duration::from_millis(1));
        let thread = {
            let (view, stop, paused) = (view.clone(), stop.clone(), paused.clone());
            std::thread::Builder::new()
                .name(format!("watch-node-{node}"))
                .spawn(move || {
                    // One connection kept between polls (the client opens it again after
                    // a failure, and retries a read once on a new one after a restart).
                    let mut client = console.client();
                    let mut next = Instant::now();
                    while !stop.load(Ordering::Relaxed) {
                        let now = Instant::now();
                        if now < next {
                            std::thread::sleep((next - now).min(Duration::from_millis(20)));
                            continue;
                        }
                        next = now + interval;
                        if !paused.load(Ordering::Relaxed) {
                            poll_once(node, &mut client, &clock, &view);
                        }
                    }
                })
                .map_err(|e| HarnessError::io("start a watcher", e))?
        };
        Ok(Watcher {
            view,
            stop,
            paused,
            thread: Some(thread),
        })
    }

    /// Runs `f` on the view under its lock.
    pub fn with<T>(&self, f: impl FnOnce(&NodeView) -> T) -> T {
        f(&lock(&self.view))
    }

    /// The last status if it was read at or after `since_ns`.
    pub fn status_since(&self, since_ns: u64) -> Option<Status> {
        self.with(|v| {
            v.status
                .as_ref()
                .filter(|(at, _)| *at >= since_ns)
                .map(|(_, s)| s.clone())
        })
    }

    /// Forgets the last status (after a kill: it no longer holds).
    pub fn forget_status(&self) {
        lock(&self.view).status = None;
    }

    /// Stops polling (to measure the node without console load) or resumes.
    pub fn set_paused(&self, paused: bool) {
        self.paused.store(paused, Ordering::SeqCst);
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn poll_once(node: u8, client: &mut Client, clock: &RunClock, view: &Mutex<NodeView>) {
    let asked_at = clock.now_ns();
    let Ok(status) = client.status() else {
        return;
    };
    let since = lock(view).next_since;
    let boot_id = status.boot_id;
    let mut since = if boot_id == lock(view).boot_id { since } else { 0 };
    // Follow the journal page by page (bounded: the ring holds at most events_max).
    for _ in 0..64 {
        let Ok(page) = client.events(since, 1000) else {
            break;
        };
        let page_boot = page.boot_id;
        let mut v = lock(view);
        if page_boot != v.boot_id {
            // A new process: its journal starts again at 1.
            v.boot_id = page_boot;
            if since != 0 {
                since = 0;
                v.next_since = 0;
                continue;
            }
        }
        if page.truncated {
            v.events_missed += 1;
        }
        for e in &page.events {
            let event = NodeEvent::from_event(node, page_boot, clock, e);
            v.events.push(event);
        }
        if v.events.len() > EVENTS_MAX {
            let drop = v.events.len() / 2;
            v.events.drain(..drop);
            v.events_dropped += drop as u64;
        }
        since = page.next_since;
        v.next_since = since;
        if !page.more {
            break;
        }
    }
    lock(view).status = Some((asked_at, status));
}

/// Writes `text` to `path` readable by the owner only (the node refuses key files that
/// others can read).
pub fn write_private(path: &Path, text: &str) -> Result<(), HarnessError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file: File = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| HarnessError::io(format!("write {}", path.display()), e))?;
    file.write_all(text.as_bytes())
        .map_err(|e| HarnessError::io(format!("write {}", path.display()), e))
}

/// CPU time a process has used, in nanoseconds (`/proc/<pid>/schedstat`, first field:
/// time on a CPU; ns resolution, unlike `stat`'s clock ticks).
pub fn cpu_ns(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/schedstat")).ok()?;
    text.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::io::{BufRead, BufReader};
    use std::net::TcpListener;
    use twinloop::io::schema::CommandResult;

    #[test]
    fn console_switchover_round_trip_and_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut stream = stream;
            // `hello` (no challenge: the key goes in clear), then the switchover.
            for _ in 0..2 {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let request: Value = serde_json::from_str(&line).unwrap();
                let reply = if request["cmd"] == "hello" {
                    serde_json::json!({"ok": true, "id": request["id"], "cmd": "hello", "protocol": 1, "node_id": 1, "name": "fake"})
                } else {
                    assert_eq!(request["cmd"], "switchover");
                    assert_eq!(request["key"], "k");
                    serde_json::json!({"ok": true, "id": request["id"], "cmd": "switchover", "result": "started", "reason": null, "message": "m"})
                };
                stream.write_all(format!("{reply}\n").as_bytes()).unwrap();
            }
            // A second connection that never answers: the client times out.
            let (_silent, _) = listener.accept().unwrap();
            std::thread::sleep(Duration::from_millis(300));
        });
        let console = Console::new(addr, "k", Duration::from_millis(100));
        assert_eq!(console.switchover().unwrap().result, CommandResult::Started);
        assert!(console.status().is_err(), "a silent node times out");
        server.join().unwrap();
    }

    #[test]
    fn node_event_classifies_transitions() {
        let clock = RunClock::start();
        let e = serde_json::json!({"seq": 3, "unix_ms": 0, "kind": "transition", "name": "takeover_after_probe",
            "epoch": 0x202, "frame": 77, "role": "primary", "message": "m"});
        let event = NodeEvent::from_event(2, 9, &clock, &serde_json::from_value(e).unwrap());
        assert!(event.is_takeover() && event.starts_epoch());
        assert_eq!((event.epoch, event.frame, event.node), (Some(0x202), Some(77), 2));
        let switch = NodeEvent {
            name: "switchover_completed".into(),
            ..event.clone()
        };
        assert!(!switch.is_takeover() && switch.starts_epoch());
    }

    /// A stand-in for the node binary: a script that ignores `--config FILE` and sleeps.
    fn fake_node(dir: &Path) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(dir).unwrap();
        let script = dir.join("fake-node");
        std::fs::write(&script, "#!/bin/sh\nexec sleep 30\n").unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        script
    }

    #[test]
    fn node_proc_spawn_then_drop_kills_and_reaps() {
        let dir = std::env::temp_dir().join(format!("twinloop-sim-procs-{}", std::process::id()));
        let mut node = NodeProc::new(1, fake_node(&dir), dir.join("cfg"), dir.join("log"));
        node.spawn().unwrap();
        assert!(node.spawn().is_err(), "one process per node");
        let pid = node.pid().unwrap();
        assert!(Path::new(&format!("/proc/{pid}")).exists());
        drop(node);
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "killed and reaped on drop"
        );
        let log = std::fs::read_to_string(dir.join("log")).unwrap();
        assert!(log.contains("start #1 of node 1"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn node_proc_freeze_thaw_and_cpu_time() {
        let dir = std::env::temp_dir().join(format!("twinloop-sim-freeze-{}", std::process::id()));
        let mut guard = NodeProc::new(2, fake_node(&dir), dir.join("cfg"), dir.join("log"));
        guard.spawn().unwrap();
        let pid = guard.pid().unwrap();
        guard.freeze().unwrap();
        assert!(guard.frozen());
        let state = || {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| s.rsplit(')').next().map(|r| r.trim().chars().next().unwrap_or('?')))
        };
        super::super::wait_until(Duration::from_secs(5), Duration::from_millis(1), "stopped", || {
            state() == Some('T')
        })
        .unwrap();
        guard.thaw().unwrap();
        super::super::wait_until(Duration::from_secs(5), Duration::from_millis(1), "running", || {
            state() == Some('S')
        })
        .unwrap();
        assert!(cpu_ns(pid).is_some());
        assert!(guard.running());
        guard.kill();
        assert!(!guard.running());
        assert!(guard.last_exit.is_some());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
