//! `bench counts`: figures per steady-state cycle that do not move with the machine's
//! load (issue 20): system calls by name, and user-space instructions.
//!
//! - **System calls** of a real node process (solo: one node alone, its peer's link
//!   ports held silent as `bench overhead` does; pair: the primary and the backup), over
//!   windows of 1 s, 2 s, … with `strace -f -o FILE -p PID` attached to every thread.
//!   The cycles of a window are the node's own: the input frames its loop read from the
//!   frames socket (the file descriptor bound to its `[frames] bind` port, found in
//!   `/proc/PID/fd`). Counted are the calls from the first frame read of the window up
//!   to, not including, the last one: whole cycles only, strace's attach and detach
//!   outside. Nothing is subtracted by hand.
//! - **Instructions** of the core (`Node` with the node binary's tank program, the
//!   `fast` timing, two links and a sync key, as the rig's nodes), in-process on a
//!   virtual 1 ms clock as the DST drives it, under `valgrind --tool=callgrind` with
//!   collection switched on only inside the calls made to one node
//!   (`--toggle-collect`): solo, pair primary, pair backup, each for two cycle counts
//!   `N1 < N2`; the figure is `(I(N2) − I(N1)) / (N2 − N1)`, so the warm-up (election,
//!   join, transfer) and valgrind's own start are outside. In-process because valgrind
//!   slows a process some 50×: a real node at 1 kHz under it misses its deadlines and the
//!   pair falls apart; the core on a virtual clock runs the very same cycles, however
//!   slowly. What it leaves out is the shell (sockets, decoding, the loop): the system
//!   calls above count that part.
//!
//! A count does not depend on the load: a system call is made or not whatever the
//! host's speed, and the core's instructions on a virtual clock are a function of its
//! inputs. The JSON holds every window and both cycle counts, to show it.
#![allow(clippy::disallowed_methods)]

use super::bench::{BenchConfig, BenchResult};
use super::rig::{Rig, Timing};
use super::{round3, HarnessError};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use twinloop::wire::{AuthKey, WireBuf};
use twinloop::{Action, Boot, Config, Instant, Node, Role, SyncState};
use twinloop_demo::layout::TankInputs;
use twinloop_demo::plant::Plant;
use twinloop_demo::tank::TankApp;

/// The cycle counts of the two in-process runs under callgrind.
pub const CORE_CYCLES: [u64; 2] = [200, 400];

/// System calls counted over one window of a node's run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SyscallWindow {
    /// Whole cycles counted in the window (frames the node's loop read after waiting).
    pub cycles: u64,
    /// Cycles left out: frames read without a wait before them (the node was behind).
    pub cycles_behind: u64,
    /// Calls by name, every thread.
    pub calls: BTreeMap<String, u64>,
    /// Of those, calls that returned an error, by name and error (`recvfrom EAGAIN`).
    pub errors: BTreeMap<String, u64>,
}

impl SyscallWindow {
    /// Every call in the window.
    pub fn total(&self) -> u64 {
        self.calls.values().sum()
    }

    /// Calls per cycle, by name, and the total.
    pub fn to_json(&self) -> Value {
        let per = |n: u64| round3(n as f64 / self.cycles.max(1) as f64);
        let by_name: serde_json::Map<String, Value> = self
            .calls
            .iter()
            .map(|(name, &n)| (name.clone(), json!(per(n))))
            .collect();
        let errors: serde_json::Map<String, Value> = self
            .errors
            .iter()
            .map(|(name, &n)| (name.clone(), json!(per(n))))
            .collect();
        json!({
            "cycles": self.cycles,
            "cycles_behind": self.cycles_behind,
            "per_cycle": per(self.total()),
            "by_name_per_cycle": by_name,
            "errors_per_cycle": errors,
        })
    }

    /// `epoll_wait 1.00, recvfrom 2.00 (EAGAIN 1.00), …`.
    pub fn summary(&self) -> String {
        let per = |n: u64| n as f64 / self.cycles.max(1) as f64;
        let mut parts = Vec::new();
        for (name, &n) in &self.calls {
            let failed: Vec<String> = self
                .errors
                .iter()
                .filter(|(key, _)| key.split(' ').next() == Some(name))
                .map(|(key, &e)| format!("{} {:.2}", key.split(' ').nth(1).unwrap_or("?"), per(e)))
                .collect();
            if failed.is_empty() {
                parts.push(format!("{name} {:.2}", per(n)));
            } else {
                parts.push(format!("{name} {:.2} ({})", per(n), failed.join(", ")));
            }
        }
        format!(
            "{:.2} a cycle: {} ({} cycles behind left out)",
            per(self.total()),
            parts.join(", "),
            self.cycles_behind
        )
    }
}

/// One parsed line of `strace -f -o` output: the call's name, its first argument when
/// it is a file descriptor, and what it returned (`Err` with the error's name).
#[derive(Debug, Clone, PartialEq, Eq)]
struct TraceCall {
    pid: u32,
    name: String,
    fd: Option<i32>,
    /// `None` while unfinished.
    result: Option<Result<i64, String>>,
}

/// Parses one line; `None` for signals, exits and resumptions (counted at their start).
fn parse_trace_line(line: &str) -> Option<TraceCall> {
    let (pid, rest) = line.split_once(' ')?;
    let pid: u32 = pid.trim().parse().ok()?;
    let rest = rest.trim_start();
    if rest.starts_with("<...") || rest.starts_with("---") || rest.starts_with("+++") {
        return None;
    }
    let open = rest.find('(')?;
    let name = &rest[..open];
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return None;
    }
    let args = &rest[open + 1..];
    let fd = args.split([',', ')']).next().and_then(|a| a.trim().parse::<i32>().ok());
    let result = if rest.ends_with("<unfinished ...>") {
        None
    } else {
        Some(parse_result(rest))
    };
    Some(TraceCall {
        pid,
        name: name.to_owned(),
        fd,
        result,
    })
}

/// The return value of a finished line: `= 40`, `= -1 EAGAIN (…)`, `= ?`.
fn parse_result(line: &str) -> Result<i64, String> {
    let Some(at) = line.rfind(" = ") else {
        return Err("?".into());
    };
    let mut words = line[at + 3..].split_whitespace();
    match words.next().map(str::parse::<i64>) {
        Some(Ok(v)) if v < 0 => Err(words.next().unwrap_or("error").to_owned()),
        Some(Ok(v)) => Ok(v),
        _ => Err("?".into()),
    }
}

/// The resumption of an unfinished call: `PID <... recvfrom resumed>…) = 40`.
fn parse_resumed(line: &str) -> Option<(u32, String, Result<i64, String>)> {
    let (pid, rest) = line.split_once(' ')?;
    let pid: u32 = pid.trim().parse().ok()?;
    let rest = rest.trim_start().strip_prefix("<... ")?;
    let name = rest.split_whitespace().next()?;
    Some((pid, name.to_owned(), parse_result(rest)))
}

/// Datagrams a successful read of the frames socket returned.
fn frames_read(name: &str, result: &Result<i64, String>) -> u64 {
    match (name, result) {
        ("recvmmsg", Ok(n)) if *n > 0 => *n as u64,
        ("recvfrom" | "recvmsg" | "recv" | "read", Ok(n)) if *n > 0 => 1,
        _ => 0,
    }
}

/// Counts a trace: the calls from the first frame read on `frames_fd` up to, not
/// including, the last one, and the frames read in that span (its whole cycles).
fn count_trace(text: &str, frames_fd: i32) -> SyscallWindow {
    // (name, error or None, frames read by this call), in order of starting.
    let mut calls: Vec<(String, Option<String>, u64)> = Vec::new();
    // Unfinished calls by thread: index into `calls`, and whether it reads frames.
    let mut pending: BTreeMap<u32, (usize, bool)> = BTreeMap::new();
    for line in text.lines() {
        if let Some(call) = parse_trace_line(line) {
            let reads_frames = call.fd == Some(frames_fd);
            let (error, frames) = match &call.result {
                Some(result) => (
                    result.as_ref().err().cloned(),
                    if reads_frames {
                        frames_read(&call.name, result)
                    } else {
                        0
                    },
                ),
                None => {
                    pending.insert(call.pid, (calls.len(), reads_frames));
                    (None, 0)
                }
            };
            calls.push((call.name, error, frames));
        } else if let Some((pid, name, result)) = parse_resumed(line) {
            if let Some((index, reads_frames)) = pending.remove(&pid) {
                if calls[index].0 == name {
                    calls[index].1 = result.as_ref().err().cloned();
                    if reads_frames {
                        calls[index].2 = frames_read(&name, &result);
                    }
                }
            }
        }
    }
    let first = calls.iter().position(|c| c.2 > 0);
    let last = calls.iter().rposition(|c| c.2 > 0);
    let mut window = SyscallWindow::default();
    let (Some(first), Some(last)) = (first, last) else {
        return window;
    };
    // One segment per frame read: from it up to the next. A segment in which the loop
    // never waited (no epoll_wait), or whose read returned several frames at once,
    // handled frames that were already queued: the traced node had fallen behind (the
    // host descheduled it), and such cycles skip the wait and the empty read that a
    // cycle on time makes. Those are left out, and counted.
    let mut segment: Vec<&(String, Option<String>, u64)> = Vec::new();
    let close = |segment: &mut Vec<&(String, Option<String>, u64)>, window: &mut SyscallWindow| {
        let frames = segment.first().map_or(0, |c| c.2);
        if frames == 1 && segment.iter().any(|c| c.0.starts_with("epoll_")) {
            window.cycles = window.cycles.saturating_add(frames);
            for (name, error, _) in segment.iter().copied() {
                *window.calls.entry(name.clone()).or_insert(0) += 1;
                if let Some(error) = error {
                    *window.errors.entry(format!("{name} {error}")).or_insert(0) += 1;
                }
            }
        } else {
            window.cycles_behind = window.cycles_behind.saturating_add(frames);
        }
        segment.clear();
    };
    for call in &calls[first..last] {
        if call.2 > 0 {
            close(&mut segment, &mut window);
        }
        segment.push(call);
    }
    close(&mut segment, &mut window);
    window
}

/// The file descriptor of process `pid` bound to UDP port `port` (its frames socket).
fn udp_fd(pid: u32, port: u16) -> Result<i32, HarnessError> {
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/udp"))
        .map_err(|e| HarnessError::io(format!("read /proc/{pid}/net/udp"), e))?;
    let wanted = format!(":{port:04X}");
    // Columns: sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode.
    let inode = table
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|cols| cols.get(1).is_some_and(|local| local.ends_with(&wanted)))
        .and_then(|cols| cols.get(9).map(|s| (*s).to_owned()))
        .ok_or_else(|| HarnessError::Stuck(format!("no UDP socket on port {port} in /proc/{pid}/net/udp")))?;
    let link = format!("socket:[{inode}]");
    let dir = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map_err(|e| HarnessError::io(format!("read /proc/{pid}/fd"), e))?;
    for entry in dir.flatten() {
        if std::fs::read_link(entry.path()).is_ok_and(|target| target.as_os_str() == link.as_str()) {
            if let Some(fd) = entry.file_name().to_str().and_then(|s| s.parse().ok()) {
                return Ok(fd);
            }
        }
    }
    Err(HarnessError::Stuck(format!(
        "process {pid} holds no descriptor for the socket on port {port}"
    )))
}

fn tool(name: &str) -> Result<PathBuf, HarnessError> {
    ["/usr/bin", "/bin", "/usr/local/bin"]
        .iter()
        .map(|dir| Path::new(dir).join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| HarnessError::Setup(format!("bench counts needs `{name}` (apt-get install {name})")))
}

/// Traces processes `pids` at once for `window`; returns each one's trace file.
fn trace(rig: &Rig, pids: &[u32], window: Duration, tag: &str) -> Result<Vec<PathBuf>, HarnessError> {
    let strace = tool("strace")?;
    let mut children = Vec::new();
    let mut files = Vec::new();
    for &pid in pids {
        let file = rig.config.dir.join(format!("strace-{tag}-{pid}.txt"));
        let _ = std::fs::remove_file(&file);
        let child = Command::new(&strace)
            .args(["-f", "-qq", "-o"])
            .arg(&file)
            .args(["-p", &pid.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| HarnessError::io("start strace", e))?;
        children.push(child);
        files.push(file);
    }
    let slept = rig.sleep(window);
    for child in &mut children {
        // SIGINT: strace detaches and flushes its file.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        );
    }
    for child in &mut children {
        let _ = child.wait();
    }
    slept?;
    Ok(files)
}

fn count_file(file: &Path, frames_fd: i32) -> Result<SyscallWindow, HarnessError> {
    let text = std::fs::read_to_string(file).map_err(|e| HarnessError::io(format!("read {}", file.display()), e))?;
    let window = count_trace(&text, frames_fd);
    if window.cycles == 0 {
        return Err(HarnessError::Stuck(format!(
            "no frame read on descriptor {frames_fd} in {}",
            file.display()
        )));
    }
    Ok(window)
}

/// The windows' lengths: 1 s, 2 s, … `count` of them.
fn windows(count: usize) -> impl Iterator<Item = Duration> {
    (1..=count.max(1) as u64).map(Duration::from_secs)
}

fn pause_watchers(rig: &Rig, paused: bool) {
    for w in &rig.watchers {
        w.set_paused(paused);
    }
}

/// `bench counts`: see the module documentation.
pub fn counts(config: &BenchConfig) -> Result<BenchResult, HarnessError> {
    let mut problems = Vec::new();
    let mut solo_windows = Vec::new();
    {
        let mut solo_config = config.rig.clone();
        solo_config.dir = config.rig.dir.join("solo");
        let mut rig = Rig::prepare(solo_config)?;
        rig.say("one node alone");
        rig.silence_peer_of(0)?;
        rig.start_node_as_primary(0)?;
        rig.plant.set_sending(true)?;
        // The console's requests are system calls too: none while counting.
        pause_watchers(&rig, true);
        rig.sleep(Duration::from_millis(500))?;
        let pid = rig.nodes[0]
            .pid()
            .ok_or_else(|| HarnessError::Stuck("node 1 is not running".into()))?;
        let fd = udp_fd(pid, rig.frames_port(0))?;
        for (k, window) in windows(config.count).enumerate() {
            let files = trace(&rig, &[pid], window, &format!("solo{k}"))?;
            let counted = count_file(&files[0], fd)?;
            eprintln!("bench counts: solo, {} cycles: {}", counted.cycles, counted.summary());
            solo_windows.push(counted);
        }
    }
    let mut pair_windows = Vec::new();
    {
        let mut pair_config = config.rig.clone();
        pair_config.dir = config.rig.dir.join("pair");
        let mut rig = Rig::prepare(pair_config)?;
        rig.say("a pair");
        let health = rig.start_pair()?;
        pause_watchers(&rig, true);
        rig.sleep(Duration::from_millis(500))?;
        let (p, b) = (health.primary, health.backup());
        let pids = [rig.nodes[p].pid(), rig.nodes[b].pid()];
        let [Some(primary_pid), Some(backup_pid)] = pids else {
            return Err(HarnessError::Stuck("a node of the pair is not running".into()));
        };
        let fds = [
            udp_fd(primary_pid, rig.frames_port(p))?,
            udp_fd(backup_pid, rig.frames_port(b))?,
        ];
        for (k, window) in windows(config.count).enumerate() {
            let files = trace(&rig, &[primary_pid, backup_pid], window, &format!("pair{k}"))?;
            // Tracing slows a node down: a takeover meanwhile would make the window
            // another configuration's. Checked on statuses read after the window.
            pause_watchers(&rig, false);
            let after = rig.await_healthy(Duration::from_secs(10));
            pause_watchers(&rig, true);
            if !after.is_ok_and(|h| h.primary == p && h.epoch == health.epoch) {
                problems.push(format!("the primary changed while it was traced: window {k} left out"));
                break;
            }
            rig.sleep(Duration::from_millis(500))?;
            let primary = count_file(&files[0], fds[0])?;
            let backup = count_file(&files[1], fds[1])?;
            eprintln!(
                "bench counts: pair primary, {} cycles: {}",
                primary.cycles,
                primary.summary()
            );
            eprintln!(
                "bench counts: pair backup, {} cycles: {}",
                backup.cycles,
                backup.summary()
            );
            pair_windows.push((primary, backup));
        }
    }
    let core = core_instructions(config.rig.timing.name, config.rig.cycle_ms)?;
    // The core again at the whole node's cycle: what the shell adds is the difference.
    // Both with the harness timing, whatever the bench's: a window of a few ms is shorter
    // than the 10 ms cycle, and a pair on it (on a virtual clock that moves a cycle at a
    // time, or slowed by valgrind) never stays together.
    let core_at_node_cycle = core_instructions(Timing::HARNESS.name, NODE_CYCLE_MS)?;
    let node = node_instructions(config)?;
    // Over every window: calls / cycles, each window weighing its cycles.
    let per_cycle = |windows: &mut dyn Iterator<Item = &SyscallWindow>| {
        let (calls, cycles) = windows.fold((0, 0), |(c, n), w| (c + w.total(), n + w.cycles));
        calls as f64 / cycles.max(1) as f64
    };
    let solo = per_cycle(&mut solo_windows.iter());
    let primary = per_cycle(&mut pair_windows.iter().map(|(p, _)| p));
    let backup = per_cycle(&mut pair_windows.iter().map(|(_, b)| b));
    let json = json!({
        "cycle_ms": config.rig.cycle_ms,
        "syscalls_per_cycle_solo": round3(solo),
        "syscalls_per_cycle_pair_primary": round3(primary),
        "syscalls_per_cycle_pair_backup": round3(backup),
        "syscalls_added_by_pairing": round3(primary - solo),
        "core_instructions_per_cycle": core.to_json(),
        "core_instructions_per_cycle_at_node_cycle": core_at_node_cycle.to_json(),
        "node_instructions_per_cycle": node_instructions_json(&node),
        "targets": {"syscalls_per_cycle_solo": 3, "syscalls_added_by_pairing": 2},
        "solo_windows": solo_windows.iter().map(SyscallWindow::to_json).collect::<Vec<_>>(),
        "pair_primary_windows": pair_windows.iter().map(|(p, _)| p.to_json()).collect::<Vec<_>>(),
        "pair_backup_windows": pair_windows.iter().map(|(_, b)| b.to_json()).collect::<Vec<_>>(),
        "timing": config.rig.timing.to_json(),
    });
    eprintln!(
        "bench counts: system calls a cycle: solo {solo:.2} (target 3), pair primary {primary:.2} (pairing adds {:.2}, target 2), pair backup {backup:.2}; core instructions a cycle: {}; at a {NODE_CYCLE_MS} ms cycle the core {}, the whole node {}",
        primary - solo,
        core.summary(),
        core_at_node_cycle.summary(),
        node.iter()
            .map(|(role, w)| format!("{} {:.0}", role.name(), w.per_cycle()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(BenchResult { json, problems })
}

/// The core's instructions per cycle, from callgrind.
#[derive(Debug, Clone, Default)]
pub struct CoreInstructions {
    /// `(role, [instructions at N1, at N2])`.
    pub runs: Vec<(CoreRole, [u64; 2])>,
}

impl CoreInstructions {
    fn per_cycle(counts: [u64; 2]) -> f64 {
        counts[1].saturating_sub(counts[0]) as f64 / (CORE_CYCLES[1] - CORE_CYCLES[0]) as f64
    }

    fn to_json(&self) -> Value {
        let mut map = serde_json::Map::new();
        for (role, counts) in &self.runs {
            map.insert(
                role.name().to_owned(),
                json!({
                    "per_cycle": round3(Self::per_cycle(*counts)),
                    "cycles": CORE_CYCLES,
                    "instructions": counts,
                }),
            );
        }
        Value::Object(map)
    }

    fn summary(&self) -> String {
        self.runs
            .iter()
            .map(|(role, counts)| format!("{} {:.0}", role.name(), Self::per_cycle(*counts)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Whose calls an in-process run counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CoreRole {
    /// One node alone (its peer never started).
    Solo,
    /// The primary of a pair in sync.
    Primary,
    /// The backup of a pair in sync.
    Backup,
}

impl CoreRole {
    fn name(self) -> &'static str {
        match self {
            CoreRole::Solo => "solo",
            CoreRole::Primary => "pair_primary",
            CoreRole::Backup => "pair_backup",
        }
    }
}

/// Runs `twinloop-sim bench-core` under callgrind for every role and both cycle counts,
/// with the core timing of the profile named `profile`.
fn core_instructions(profile: &str, cycle_ms: u32) -> Result<CoreInstructions, HarnessError> {
    let valgrind = tool("valgrind")?;
    let exe = std::env::current_exe().map_err(|e| HarnessError::io("find twinloop-sim itself", e))?;
    let dir = std::env::temp_dir().join(format!("twinloop-counts-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| HarnessError::io(format!("create {}", dir.display()), e))?;
    let mut result = CoreInstructions::default();
    for role in [CoreRole::Solo, CoreRole::Primary, CoreRole::Backup] {
        let mut counts = [0u64; 2];
        for (k, cycles) in CORE_CYCLES.iter().enumerate() {
            let out = dir.join(format!("callgrind-{}-{cycle_ms}ms-{cycles}.out", role.name()));
            let status = Command::new(&valgrind)
                .args([
                    "--tool=callgrind",
                    "--collect-atstart=no",
                    "--toggle-collect=*counted_node*",
                ])
                .arg(format!("--callgrind-out-file={}", out.display()))
                .arg(&exe)
                .args(["bench-core", "--role", role.name().trim_start_matches("pair_")])
                .args(["--cycles", &cycles.to_string(), "--profile", profile])
                .args(["--cycle-ms", &cycle_ms.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map_err(|e| HarnessError::io("start valgrind", e))?;
            if !status.success() {
                return Err(HarnessError::Stuck(format!(
                    "valgrind … twinloop-sim bench-core --role {} --cycles {cycles} failed: {status}",
                    role.name()
                )));
            }
            let text =
                std::fs::read_to_string(&out).map_err(|e| HarnessError::io(format!("read {}", out.display()), e))?;
            counts[k] =
                callgrind_total(&text).ok_or_else(|| HarnessError::Stuck(format!("no totals in {}", out.display())))?;
        }
        eprintln!(
            "bench counts: core {} at {cycle_ms} ms: {} instructions in {} cycles, {} in {}",
            role.name(),
            counts[0],
            CORE_CYCLES[0],
            counts[1],
            CORE_CYCLES[1]
        );
        result.runs.push((role, counts));
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(result)
}

/// The cycle of the whole-node runs under callgrind: at 1 ms a node slowed by valgrind
/// misses its deadlines.
pub const NODE_CYCLE_MS: u32 = 10;

/// How long the whole-node runs are counted.
const NODE_WINDOW: Duration = Duration::from_secs(3);

/// Instructions of a whole node process over a window, and its cycles in it.
#[derive(Debug, Clone, Copy, Default)]
pub struct NodeWindow {
    /// Every thread's instructions (Ir) while instrumented.
    pub instructions: u64,
    /// Frames handled meanwhile: calls to `Node::handle_source_frame`.
    pub cycles: u64,
}

impl NodeWindow {
    fn per_cycle(&self) -> f64 {
        self.instructions as f64 / self.cycles.max(1) as f64
    }
}

fn node_instructions_json(windows: &[(CoreRole, NodeWindow)]) -> Value {
    let mut map = serde_json::Map::new();
    map.insert("cycle_ms".into(), json!(NODE_CYCLE_MS));
    map.insert("timing".into(), json!(Timing::HARNESS.name));
    for (role, w) in windows {
        map.insert(
            role.name().to_owned(),
            json!({"per_cycle": round3(w.per_cycle()), "instructions": w.instructions, "cycles": w.cycles}),
        );
    }
    Value::Object(map)
}

/// The whole node's instructions per cycle: real node processes started under
/// `valgrind --tool=callgrind --instr-atstart=no` at a [`NODE_CYCLE_MS`] cycle and the
/// harness timing,
/// instrumented (`callgrind_control -i on`) for [`NODE_WINDOW`] once running, dumped
/// (`-d`); the cycles are the dump's calls to `Node::handle_source_frame`. A window's
/// edges cut at most a cycle at each end.
fn node_instructions(config: &BenchConfig) -> Result<Vec<(CoreRole, NodeWindow)>, HarnessError> {
    let valgrind = tool("valgrind")?;
    let control = tool("callgrind_control")?;
    let mut out = Vec::new();
    for pair in [false, true] {
        let mut c = config.rig.clone();
        c.cycle_ms = NODE_CYCLE_MS;
        c.timing = Timing::HARNESS;
        c.dir = config
            .rig
            .dir
            .join(if pair { "valgrind-pair" } else { "valgrind-solo" });
        std::fs::create_dir_all(&c.dir).map_err(|e| HarnessError::io(format!("create {}", c.dir.display()), e))?;
        let script = c.dir.join("valgrind-node.sh");
        let text = format!(
            "#!/bin/sh\nexec {} --tool=callgrind --instr-atstart=no --callgrind-out-file={}/callgrind-%p.out {} \"$@\"\n",
            valgrind.display(),
            c.dir.display(),
            c.binary.display()
        );
        std::fs::write(&script, text).map_err(|e| HarnessError::io(format!("write {}", script.display()), e))?;
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .map_err(|e| HarnessError::io(format!("chmod {}", script.display()), e))?;
        c.binary = script;
        let mut rig = Rig::prepare(c)?;
        let roles = if pair {
            rig.say("a pair under callgrind");
            let health = rig.start_pair()?;
            vec![(CoreRole::Primary, health.primary), (CoreRole::Backup, health.backup())]
        } else {
            rig.say("one node alone under callgrind");
            rig.silence_peer_of(0)?;
            rig.start_node_as_primary(0)?;
            rig.plant.set_sending(true)?;
            vec![(CoreRole::Solo, 0)]
        };
        pause_watchers(&rig, true);
        rig.sleep(Duration::from_secs(1))?;
        let mut pids = Vec::new();
        for &(_, i) in &roles {
            pids.push(
                rig.nodes[i]
                    .pid()
                    .ok_or_else(|| HarnessError::Stuck(format!("node {} is not running", i + 1)))?,
            );
        }
        let run = |what: &str, pid: u32| -> Result<(), HarnessError> {
            let status = Command::new(&control)
                .args([what, &pid.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map_err(|e| HarnessError::io("start callgrind_control", e))?;
            if status.success() {
                Ok(())
            } else {
                Err(HarnessError::Stuck(format!(
                    "callgrind_control {what} {pid} failed: {status}"
                )))
            }
        };
        for &pid in &pids {
            run("--instr=on", pid)?;
        }
        rig.sleep(NODE_WINDOW)?;
        for &pid in &pids {
            run("--dump", pid)?;
        }
        for (&(role, _), &pid) in roles.iter().zip(&pids) {
            let file = rig.config.dir.join(format!("callgrind-{pid}.out.1"));
            let text =
                std::fs::read_to_string(&file).map_err(|e| HarnessError::io(format!("read {}", file.display()), e))?;
            let w = NodeWindow {
                instructions: callgrind_total(&text)
                    .ok_or_else(|| HarnessError::Stuck(format!("no totals in {}", file.display())))?,
                cycles: callgrind_calls(&text, "handle_source_frame"),
            };
            eprintln!(
                "bench counts: whole node, {}: {} instructions in {} cycles at {NODE_CYCLE_MS} ms: {:.0} a cycle",
                role.name(),
                w.instructions,
                w.cycles,
                w.per_cycle()
            );
            out.push((role, w));
        }
    }
    Ok(out)
}

/// Calls to functions whose name contains `function`, from a callgrind output file's
/// `cfn=` / `calls=` lines (names are given once, then their `(id)` alone).
fn callgrind_calls(text: &str, function: &str) -> u64 {
    let mut names: BTreeMap<&str, &str> = BTreeMap::new();
    let mut callee: Option<&str> = None;
    let mut total = 0u64;
    for line in text.lines() {
        let (is_call, rest) = match (line.strip_prefix("cfn="), line.strip_prefix("fn=")) {
            (Some(rest), _) => (true, rest),
            (None, Some(rest)) => (false, rest),
            (None, None) => {
                if let Some(rest) = line.strip_prefix("calls=") {
                    if let Some(id) = callee.take() {
                        if names.get(id).is_some_and(|n| n.contains(function)) {
                            let n = rest.split_whitespace().next().and_then(|n| n.parse::<u64>().ok());
                            total = total.saturating_add(n.unwrap_or(0));
                        }
                    }
                }
                continue;
            }
        };
        let (id, name) = match rest.split_once(' ') {
            Some((id, name)) => (id, Some(name)),
            None => (rest, None),
        };
        if let Some(name) = name {
            names.insert(id, name);
        }
        if is_call {
            callee = Some(id);
        }
    }
    total
}

/// The `totals:` (or `summary:`) line of a callgrind output file: instructions (Ir).
fn callgrind_total(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("totals:").or_else(|| l.strip_prefix("summary:")))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// A pair (or a lone node) of cores on a virtual clock, frames from the tank plant.
struct CoreDriver {
    nodes: Vec<Node<TankApp>>,
    plant: Plant,
    now: Instant,
    cycle_ms: u64,
    /// Messages in flight: (to, link, bytes).
    wire: Vec<(usize, u8, WireBuf)>,
    /// The node whose calls are counted; `None` during the warm-up.
    counted: Option<usize>,
    emitted: u64,
}

/// Every call into the counted node goes through here: callgrind collects only inside
/// (`--toggle-collect=*counted_node*`), so the driver's own work is not counted.
#[inline(never)]
fn counted_node<T>(f: impl FnOnce() -> T) -> T {
    f()
}

impl CoreDriver {
    fn new(
        nodes: usize,
        cycle_ms: u32,
        timing: Timing,
        params: twinloop_demo::tank::TankParams,
        plant: twinloop_demo::plant::PlantParams,
    ) -> Self {
        let mk = |id: u8| {
            // As the rig's node files have it (`rig::node_toml`).
            let base = if timing.base == "fast" {
                Config::fast()
            } else {
                Config::default()
            };
            let config = Config {
                node_id: id,
                links: 2,
                priority: u8::from(id == 1),
                heartbeat_interval_ms: timing.heartbeat_ms,
                detection_window_ms: timing.window_ms,
                probe_timeout_ms: timing.probe_ms,
                startup_wait_ms: timing.startup_ms,
                retry_ms: timing.retry_ms,
                switchover_timeout_ms: timing.switchover_timeout_ms,
                ..base
            };
            let boot = Boot {
                now: Instant::from_millis(1),
                seed: u64::from(id) * 7919,
                epoch_persisted: 0,
                epoch_reserved: 0,
            };
            Node::new(config, TankApp::new(params.clone()), boot)
                .expect("the fast profile is a valid configuration")
                .with_auth(AuthKey::new([0x5A; 32]), 1000 + u64::from(id))
        };
        CoreDriver {
            nodes: (1..=nodes as u8).map(mk).collect(),
            plant: Plant::new(plant),
            now: Instant::from_millis(1),
            cycle_ms: u64::from(cycle_ms.max(1)),
            wire: Vec::with_capacity(4096),
            counted: None,
            emitted: 0,
        }
    }

    fn call<T>(&mut self, i: usize, f: impl FnOnce(&mut Node<TankApp>) -> T) -> T {
        let node = &mut self.nodes[i];
        if self.counted == Some(i) {
            counted_node(|| f(node))
        } else {
            f(node)
        }
    }

    fn drain(&mut self, i: usize) {
        while let Some(action) = self.call(i, Node::poll_action) {
            match action {
                Action::Transmit { link, bytes, .. } if self.nodes.len() > 1 => self.wire.push((1 - i, link, bytes)),
                Action::Emit(_) => self.emitted += 1,
                _ => {}
            }
        }
    }

    fn deliver(&mut self) {
        while !self.wire.is_empty() {
            let (to, link, bytes) = self.wire.remove(0);
            let now = self.now;
            self.call(to, |n| n.handle_message(now, link, &bytes));
            self.drain(to);
        }
    }

    fn timeouts(&mut self) {
        for i in 0..self.nodes.len() {
            let now = self.now;
            if self.call(i, |n| n.poll_timeout().is_some_and(|t| t <= now)) {
                self.call(i, |n| n.handle_timeout(now));
                self.drain(i);
            }
        }
    }

    /// One cycle: a frame to every node, the sync traffic, the timers.
    fn cycle(&mut self, frame: u64) {
        self.now = Instant::from_nanos(self.now.as_nanos() + self.cycle_ms * 1_000_000);
        self.plant.advance(self.cycle_ms);
        let payload: [u8; twinloop_demo::layout::INPUT_BYTES] = TankInputs::encode(&self.plant.inputs());
        for i in 0..self.nodes.len() {
            let now = self.now;
            self.call(i, |n| n.handle_source_frame(now, 0, frame, &payload));
            self.drain(i);
        }
        self.deliver();
        self.timeouts();
        self.deliver();
    }
}

/// `twinloop-sim bench-core`: warms a lone node or a pair up on a virtual clock, then
/// runs `cycles` more with the calls into the node of `role` inside [`counted_node`].
/// Prints what ran; exits non-zero when the set-up did not reach its steady state.
pub fn bench_core(role: CoreRole, cycles: u64, profile: &str, cycle_ms: u32) -> Result<String, String> {
    let timing = Timing::named(profile).ok_or_else(|| format!("unknown profile `{profile}` (harness, seed, fast)"))?;
    let rig = super::rig::RigConfig::new(PathBuf::new(), PathBuf::new());
    let params = twinloop_demo::tank::TankParams {
        cycle_ms: Some(cycle_ms),
        ..rig.params()
    };
    let nodes = if role == CoreRole::Solo { 1 } else { 2 };
    let mut d = CoreDriver::new(nodes, cycle_ms, timing, params, rig.plant.clone());
    let mut frame = 1;
    let steady = |d: &CoreDriver| match role {
        CoreRole::Solo => d.nodes[0].role() == Role::Primary,
        _ => d
            .nodes
            .iter()
            .any(|n| n.role() == Role::Backup && n.status().sync == SyncState::InSync),
    };
    // Past the election, the join and the transfer, then as many cycles again.
    while frame < 5000 && !steady(&d) {
        d.cycle(frame);
        frame += 1;
    }
    if !steady(&d) {
        return Err(format!("no steady state after {frame} cycles"));
    }
    for _ in 0..500 {
        d.cycle(frame);
        frame += 1;
    }
    let wanted = match role {
        CoreRole::Backup => Role::Backup,
        _ => Role::Primary,
    };
    let i = d
        .nodes
        .iter()
        .position(|n| n.role() == wanted)
        .ok_or_else(|| format!("no {wanted:?} after the warm-up"))?;
    d.counted = Some(i);
    let emitted = d.emitted;
    for _ in 0..cycles {
        d.cycle(frame);
        frame += 1;
    }
    d.counted = None;
    if d.nodes[i].role() != wanted {
        return Err(format!("node {} is no longer {wanted:?}", i + 1));
    }
    Ok(format!(
        "{} cycles counted on node {} ({wanted:?}), frames {}..{}, {} outputs",
        cycles,
        i + 1,
        frame - cycles,
        frame - 1,
        d.emitted - emitted
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &str = "\
100 epoll_wait(4, [{events=EPOLLIN, data={u32=1, u64=1}}], 256, 3) = 1
100 recvfrom(8, \"TL\\1\\1\"..., 2048, 0, {sa_family=AF_INET}, [128 => 16]) = 40
100 sendto(14, \"TL\\1\\2\"..., 52, MSG_NOSIGNAL, {sa_family=AF_INET}, 16) = 52
100 recvfrom(8, 0x564f88554db0, 2048, 0, 0x7ffd84d9cbc0, [128]) = -1 EAGAIN (Resource temporarily unavailable)
101 futex(0x7f, FUTEX_WAIT_PRIVATE, 0, NULL <unfinished ...>
100 epoll_wait(4,  <unfinished ...>
101 <... futex resumed>) = 0
100 <... epoll_wait resumed>[{events=EPOLLIN, data={u32=1, u64=1}}], 256, 3) = 1
100 recvfrom(8, \"TL\\1\\1\"..., 2048, 0, {sa_family=AF_INET}, [128 => 16]) = 40
100 sendto(14, \"TL\\1\\2\"..., 52, MSG_NOSIGNAL, {sa_family=AF_INET}, 16) = 52
100 recvfrom(8, 0x564f88554db0, 2048, 0, 0x7ffd84d9cbc0, [128]) = -1 EAGAIN (Resource temporarily unavailable)
100 epoll_wait(4, [{events=EPOLLIN, data={u32=1, u64=1}}], 256, 3) = 1
100 recvmmsg(8, [{msg_hdr={}, msg_len=40}, {msg_hdr={}, msg_len=40}], 64, MSG_DONTWAIT, NULL) = 2
100 epoll_wait(4, [{events=EPOLLIN, data={u32=1, u64=1}}], 256, 3) = 1
100 recvfrom(8, \"TL\\1\\1\"..., 2048, 0, {sa_family=AF_INET}, [128 => 16]) = 40
--- SIGINT {si_signo=SIGINT} ---
";

    #[test]
    fn trace_counts_whole_cycles_between_frame_reads() {
        let w = count_trace(TRACE, 8);
        // Frames read before the last frame read: 1 + 1, and 2 at once (behind).
        assert_eq!((w.cycles, w.cycles_behind), (2, 2));
        assert_eq!(w.calls["recvfrom"], 4);
        assert!(!w.calls.contains_key("recvmmsg"));
        assert_eq!(w.calls["sendto"], 2);
        // The first epoll_wait is before the first frame read: not counted; the
        // unfinished one is, once.
        assert_eq!(w.calls["epoll_wait"], 2);
        assert_eq!(w.calls["futex"], 1);
        assert_eq!(w.errors["recvfrom EAGAIN"], 2);
        assert_eq!(w.total(), 9);
    }

    #[test]
    fn trace_cycle_without_a_wait_is_left_out_as_behind() {
        let trace = "\
7 recvfrom(8, \"TL\"..., 2048, 0, {}, [16]) = 40
7 sendto(14, \"TL\"..., 52, 0, {}, 16) = 52
7 recvfrom(8, \"TL\"..., 2048, 0, {}, [16]) = 40
7 sendto(14, \"TL\"..., 52, 0, {}, 16) = 52
7 recvfrom(8, 0x5, 2048, 0, 0x7, [128]) = -1 EAGAIN (Resource temporarily unavailable)
7 epoll_wait(4, [], 256, 3) = 1
7 recvfrom(8, \"TL\"..., 2048, 0, {}, [16]) = 40
";
        let w = count_trace(trace, 8);
        assert_eq!((w.cycles, w.cycles_behind), (1, 1));
        assert_eq!(w.total(), 4);
    }

    #[test]
    fn trace_without_frames_counts_nothing() {
        let w = count_trace(TRACE, 9);
        assert_eq!(w, SyscallWindow::default());
    }

    #[test]
    fn trace_line_garbage_is_skipped() {
        for line in [
            "",
            "x",
            "100",
            "100 ",
            "100 (",
            "abc recvfrom(8) = 1",
            "100 = 5",
            "100 <... x",
        ] {
            assert_eq!(parse_trace_line(line), None, "{line:?}");
        }
    }

    #[test]
    fn callgrind_calls_follow_compressed_names() {
        let text = "fn=(1) main\ncfn=(2) twinloop::node::Node<A>::handle_source_frame\ncalls=3 10\n5 100\n\
                    fn=(3) loop\ncfn=(2)\ncalls=4 10\n5 100\ncfn=(4) other\ncalls=9 1\n1 1\n";
        assert_eq!(callgrind_calls(text, "handle_source_frame"), 7);
        assert_eq!(callgrind_calls(text, "other"), 9);
        assert_eq!(callgrind_calls("calls=5 1\n", "other"), 0);
    }

    proptest::proptest! {
        /// Whatever strace or callgrind wrote (a truncated file, another version's
        /// format), the parsers count what they recognise and never panic.
        #[test]
        fn tool_output_arbitrary_text_never_panics(
            text in "[0-9a-z_ =(),<>.\"\\[\\]{}:+-]{0,400}(\n[0-9a-z_ =(),<>.\"\\[\\]{}:+-]{0,80}){0,20}",
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400),
        ) {
            let lossy = String::from_utf8_lossy(&bytes);
            for text in [text.as_str(), lossy.as_ref()] {
                let _ = count_trace(text, 8);
                let _ = callgrind_calls(text, "handle_source_frame");
                let _ = callgrind_total(text);
            }
        }
    }

    #[test]
    fn callgrind_totals_line_is_read() {
        assert_eq!(callgrind_total("events: Ir\nsummary: 123\ntotals: 123\n"), Some(123));
        assert_eq!(callgrind_total("events: Ir\n"), None);
    }

    #[test]
    fn core_pair_reaches_steady_state_and_counts() {
        let line = bench_core(CoreRole::Backup, 20, "harness", 10).expect("steady state");
        assert!(line.contains("Backup"), "{line}");
        let line = bench_core(CoreRole::Solo, 20, "fast", 1).expect("steady state");
        assert!(line.contains("Primary") && !line.ends_with(" 0 outputs"), "{line}");
    }
}
