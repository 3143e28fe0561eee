//! The I/O shell: the only module with sockets, the clock, threads and signals.
//!
//! [`Shell`] runs one [`Node`] in a mio event loop. It does nothing but move bytes between
//! the sockets and the core, read the clock, and carry out the core's actions in order:
//!
//! - **frames**: UDP datagrams of the I/O protocol ([`crate::io_protocol`]), unicast or a
//!   multicast group, go to [`Node::handle_frame`];
//! - **sync links**: each link is *two* UDP sockets, one per [`TrafficClass`]: control
//!   (heartbeats, probes, commits, fetches, switchover; marked with a DSCP) and bulk
//!   (state-transfer chunks). Separate sockets mean separate kernel queues at both ends,
//!   so a burst of chunks never sits in front of a heartbeat, and the loop reads every
//!   control socket before any bulk socket;
//! - **outputs**: [`Action::Emit`] becomes an output datagram to every configured sink;
//! - **the epoch**: [`Action::PersistEpoch`] and [`Action::ReserveEpoch`] are written
//!   durably (see [`epoch_file`]) before the next action — so before any output carrying
//!   the epoch leaves;
//! - **timers**: the loop sleeps until [`Node::poll_timeout`], woken on time by a
//!   `timerfd` (mio alone sleeps in whole milliseconds);
//! - **the console**: newline-delimited JSON on TCP ([`console`], `docs/CONSOLE.md`);
//! - **the hook**: a command on every transition ([`hook`]), never blocking the loop;
//! - **stop**: a [`StopHandle`], or SIGINT/SIGTERM read from a signalfd on the loop
//!   ([`stop_on_signals`], [`signals`]); a primary with a following backup first hands
//!   over with a planned switchover.
//!
//! The loop is single-threaded; only the state file is written
//! by a thread of its own ([`epoch_file::StateWriter`]), which the loop waits for when an
//! output depends on the write.

pub mod client;
pub mod clock;
pub mod config;
pub mod console;
mod console_dispatch;
pub mod epoch_file;
pub mod hook;
pub mod journal;
pub mod log;
pub mod names;
pub mod net;
pub mod preflight;
pub mod schema;
#[cfg(target_os = "linux")]
pub mod signals;
/// Signals on other systems: SIGINT, SIGTERM and SIGHUP are left to their defaults.
#[cfg(not(target_os = "linux"))]
pub mod signals {
    use std::io;
    /// Does nothing here.
    pub fn block_hangup() -> io::Result<()> {
        Ok(())
    }
    /// Does nothing here.
    pub fn block_stop_signals() -> io::Result<()> {
        Ok(())
    }
    /// Never blocked here.
    pub fn stop_signals_blocked() -> bool {
        false
    }
    /// Never read here.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Caught {}
    impl Caught {
        /// Never called.
        pub fn name(self) -> &'static str {
            match self {}
        }
        /// Never called.
        pub fn stops(self) -> bool {
            match self {}
        }
    }
    /// Never constructed here.
    pub struct Signals;
    impl Signals {
        /// Unsupported here.
        pub fn new(_: &mio::Registry, _: mio::Token) -> io::Result<Self> {
            Err(io::ErrorKind::Unsupported.into())
        }
        /// Nothing is pending.
        pub fn read(&mut self) -> Option<Caught> {
            None
        }
    }
}
mod status;
mod timer;

use crate::app::App;
use crate::config::{Config, ConfigError};
use crate::io_protocol;
use crate::node::{
    Action, Alarm, Boot, Command, CommandReply, Node, Notice, Reason, RefuseReason, Role, SyncState, TrafficClass,
    Transition,
};
use crate::time::Instant;
use clock::Clock;
use config::{ShellConfig, ShellConfigError};
use console::Console;
use epoch_file::{EpochFile, StateWriter, Stored};
use hook::{HookJob, HookOutcome, HookRunner};
use journal::{EventKind, Journal};
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};
#[cfg(test)]
use preflight::read_key_file;
use serde_json::{Map, Value};
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

const TOKEN_WAKER: Token = Token(0);
const TOKEN_FRAMES: Token = Token(1);
const TOKEN_TIMER: Token = Token(2);
const TOKEN_SIGNALS: Token = Token(3);
/// Link `i`'s control socket is `TOKEN_LINKS + 2i`, its bulk socket `TOKEN_LINKS + 2i + 1`.
const TOKEN_LINKS: usize = 10;
const TOKEN_CONSOLE: usize = 100;
/// Datagrams read from one socket before the loop looks at the others.
/// A deadline handled later than this after it fell due means the loop was held up (the
/// precise timer wakes it within tens of microseconds).
const LATE_WAKE: Duration = Duration::from_micros(500);

const READS_PER_TURN: usize = 64;

/// Why the shell could not start or had to stop.
#[non_exhaustive]
#[derive(Debug)]
pub enum ShellError {
    /// A shell configuration key is invalid.
    Config(ShellConfigError),
    /// A core configuration key is invalid.
    Core(ConfigError),
    /// A socket could not be opened.
    Socket(net::SocketError),
    /// The state file could not be read or written at start.
    StateFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        problem: String,
    },
    /// A key file could not be used.
    KeyFile {
        /// The configuration key naming the file.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// What went wrong.
        problem: String,
    },
    /// The epoch could not be persisted: the node stops rather than emit under an epoch
    /// it could forget.
    Persist {
        /// The file.
        path: PathBuf,
        /// The error.
        error: io::Error,
    },
    /// The event loop failed.
    Poll(io::Error),
    /// The signal handler could not be installed.
    Signal(String),
}

impl ShellError {
    /// True for configuration problems (the binary exits with code 2 for those).
    pub fn is_config(&self) -> bool {
        matches!(
            self,
            ShellError::Config(_) | ShellError::Core(_) | ShellError::KeyFile { .. }
        )
    }
}

impl core::fmt::Display for ShellError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ShellError::Config(e) => write!(f, "{e}"),
            ShellError::Core(e) => write!(f, "invalid configuration key `runtime.{}`: {}", e.key, e.problem),
            ShellError::Socket(e) => write!(f, "{e}"),
            ShellError::StateFile { path, problem } => write!(f, "state file {}: {problem}", path.display()),
            ShellError::KeyFile { key, path, problem } => {
                write!(f, "invalid configuration key `{key}`: {}: {problem}", path.display())
            }
            ShellError::Persist { path, error } => {
                write!(f, "cannot persist the epoch to {}: {error}", path.display())
            }
            ShellError::Poll(e) => write!(f, "event loop failed: {e}"),
            ShellError::Signal(e) => write!(f, "cannot install the signal handler: {e}"),
        }
    }
}

impl std::error::Error for ShellError {}

impl From<net::SocketError> for ShellError {
    fn from(e: net::SocketError) -> Self {
        ShellError::Socket(e)
    }
}

/// How the shell ended after a stop request.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Stopped: not a primary, or no backup following to hand over to, or handover off.
    Stopped,
    /// Handed over to the backup in a planned switchover, then stopped.
    HandedOver,
    /// The switchover was refused (the reason is logged); stopped without handover.
    SwitchoverRefused(RefuseReason),
    /// The switchover was abandoned by the core (`switchover_timeout_ms`); stopped.
    SwitchoverAborted,
    /// The handover did not complete within `shutdown.switchover_wait_ms`; stopped.
    SwitchoverTimedOut,
    /// A second stop request arrived: stopped at once.
    Forced,
}

/// Asks a running shell to stop, from any thread. The first request stops gracefully
/// (handing over when primary); a second one stops at once.
#[derive(Clone, Debug)]
pub struct StopHandle {
    requests: Arc<AtomicU32>,
    waker: Arc<Waker>,
}

impl StopHandle {
    /// Requests a stop.
    pub fn stop(&self) {
        self.requests.fetch_add(1, Ordering::SeqCst);
        // A failed wake only delays the stop to the next timer (at most a heartbeat).
        let _ = self.waker.wake();
    }
}

/// Makes SIGINT and SIGTERM stop a shell created afterwards in the calling thread (as a
/// [`StopHandle::stop`] does; the loop logs which signal came). SIGHUP is not a stop: the
/// shell logs it and goes on. Call before any thread starts ([`signals`]).
pub fn stop_on_signals() -> Result<(), ShellError> {
    signals::block_stop_signals().map_err(|e| ShellError::Signal(e.to_string()))
}

/// The two sockets of one sync link and where the peer listens.
struct Link {
    name: String,
    control: UdpSocket,
    bulk: UdpSocket,
    peer_control: SocketAddr,
    peer_bulk: SocketAddr,
    ready: [bool; 2],
    counters: LinkCounters,
}

/// Per-link counters the core does not keep.
#[derive(Debug, Default, Clone, Copy)]
struct LinkCounters {
    sent_control: u64,
    sent_bulk: u64,
    received_control: u64,
    received_bulk: u64,
    /// Sends that failed or would have blocked (UDP: the core's retries cover them).
    send_errors: u64,
    /// Datagrams from an address other than the peer's, dropped unread.
    foreign_source: u64,
}

/// Counters of the frames and outputs paths.
#[derive(Debug, Default, Clone)]
struct IoCounters {
    frames_received: u64,
    /// Frames from a source not in `frames.sources`.
    frames_foreign_source: u64,
    frames_rejected: u64,
    frames_rejected_by: std::collections::BTreeMap<&'static str, u64>,
    outputs_sent: u64,
    output_send_errors: u64,
    console_requests: u64,
    console_bad_key: u64,
    epochs_persisted: u64,
    /// The most a deadline of the core was handled after it fell due, in ns.
    lateness_max_ns: u64,
    /// Deadlines handled more than [`LATE_WAKE`] after they fell due.
    late_wakes: u64,
    /// The most lateness per whole second of uptime, for the last two seconds seen:
    /// `(second, ns)`.
    lateness_recent: [(u64, u64); 2],
    /// The longest the console's share of one loop turn took, in ns.
    console_turn_max_ns: u64,
    /// The most CPU time the loop's thread spent answering requests in one turn, in ns
    /// (what the console itself costs, without the host descheduling the node).
    console_turn_cpu_max_ns: u64,
}

/// CPU time of the calling thread, in ns; 0 where it cannot be read. Read only on turns
/// that answer a request, so that it adds no system call to a cycle without console work.
fn thread_cpu_ns() -> u64 {
    #[cfg(target_os = "linux")]
    {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
        u64::try_from(t.tv_sec)
            .unwrap_or(0)
            .saturating_mul(1_000_000_000)
            .saturating_add(u64::try_from(t.tv_nsec).unwrap_or(0))
    }
    #[cfg(not(target_os = "linux"))]
    {
        0
    }
}

impl IoCounters {
    fn note_lateness(&mut self, now: Instant, late: Duration) {
        let ns = u64::try_from(late.as_nanos()).unwrap_or(u64::MAX);
        self.lateness_max_ns = self.lateness_max_ns.max(ns);
        let second = now.as_nanos() / 1_000_000_000;
        if self.lateness_recent[1].0 != second {
            self.lateness_recent = [self.lateness_recent[1], (second, 0)];
        }
        self.lateness_recent[1].1 = self.lateness_recent[1].1.max(ns);
    }

    /// The most lateness within the current and the previous whole second.
    fn lateness_recent_max_ns(&self, now: Instant) -> u64 {
        let second = now.as_nanos() / 1_000_000_000;
        self.lateness_recent
            .iter()
            .filter(|(s, _)| second.saturating_sub(*s) <= 1)
            .map(|(_, ns)| *ns)
            .max()
            .unwrap_or(0)
    }
}

/// Where a stop request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stopping {
    Running,
    /// A planned switchover was started; exit when it completes, aborts or this passes.
    HandingOver {
        deadline: Instant,
    },
}

/// One node with its sockets: see the module documentation.
pub struct Shell<A: App> {
    node: Node<A>,
    name: String,
    config: ShellConfig,
    poll: Poll,
    clock: Clock,
    boot_id: u64,
    frames: UdpSocket,
    frames_ready: bool,
    /// `frames.sources`, parsed; empty: any source.
    frame_sources: Vec<config::FrameSource>,
    links: Vec<Link>,
    outputs: UdpSocket,
    console: Option<Console>,
    console_key: Option<Vec<u8>>,
    journal: Journal,
    state_file: StateWriter,
    /// What the state file holds.
    stored: Stored,
    hooks: HookRunner,
    hook_outcomes: Vec<HookOutcome>,
    stop_requests: Arc<AtomicU32>,
    stop_seen: u32,
    waker: Arc<Waker>,
    /// Wakes the loop at the core's deadlines to the microsecond; `None`: mio's
    /// millisecond timeout only.
    timer: Option<timer::PreciseTimer>,
    /// SIGHUP, read on the loop; `None`: left to the default.
    signals: Option<signals::Signals>,
    stopping: Stopping,
    exit: Option<Exit>,
    previous_role: Role,
    counters: IoCounters,
    /// Stale and rejected frames per second, over the last whole second.
    frame_rates: FrameRates,
    /// The console's time budget ([`console::TIME_SHARE_PERCENT`]), in ns, as of
    /// `console_budget_at`.
    console_budget_ns: u64,
    console_budget_at: Instant,
    buf: Vec<u8>,
}

/// A seed from the OS's hash randomization, the pid and the time: only the start-up
/// nonce and ids depend on it, so it needs to differ between nodes, not be secret.
fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(clock::unix_ns());
    hasher.write_u32(std::process::id());
    hasher.finish() | 1
}

impl<A: App> Shell<A> {
    /// Opens every socket and file and creates the node. Nothing runs until [`Shell::run`].
    pub fn new(config: ShellConfig, runtime: Config, app: A) -> Result<Self, ShellError> {
        runtime.validate().map_err(ShellError::Core)?;
        config.validate(runtime.links).map_err(ShellError::Config)?;
        let name = if config.name.is_empty() {
            format!("node-{}", runtime.node_id)
        } else {
            config.name.clone()
        };
        // Before any thread starts (the state-file writer below): every thread inherits
        // the mask, so SIGHUP waits for the loop's signalfd instead of stopping the node.
        if let Err(e) = signals::block_hangup() {
            log::warn(format_args!("cannot block SIGHUP ({e}): it will stop the node"));
        }

        // The same checks as `--check` (node_main), in one function.
        let files = preflight::check_files(&config)?;
        for warning in &files.warnings {
            log::warn(format_args!("{warning}"));
        }
        let stored = files.stored;
        let epoch_file = EpochFile::new(&config.state_file);
        let state_error = |problem: String| ShellError::StateFile {
            path: config.state_file.clone(),
            problem,
        };
        // Write it back now: a state file that cannot be written must stop the node at
        // start, not at its first takeover.
        epoch_file
            .store(stored)
            .map_err(|e| state_error(format!("cannot write: {e}")))?;
        let state_file =
            StateWriter::start(epoch_file).map_err(|e| state_error(format!("cannot start its writer: {e}")))?;

        let console_key = files.console_key;
        let sync_key = files.sync_key.as_deref().map(crate::wire::AuthKey::derive);

        let poll = Poll::new().map_err(ShellError::Poll)?;
        let waker = Arc::new(Waker::new(poll.registry(), TOKEN_WAKER).map_err(ShellError::Poll)?);
        let timer = match timer::PreciseTimer::new(poll.registry(), TOKEN_TIMER) {
            Ok(timer) => Some(timer),
            Err(e) => {
                log::warn(format_args!("no precise timer ({e}): deadlines fire up to 1 ms late"));
                None
            }
        };
        let signals = match signals::Signals::new(poll.registry(), TOKEN_SIGNALS) {
            Ok(signals) => Some(signals),
            // SIGINT and SIGTERM blocked for the loop and not read: nothing would stop the node.
            Err(e) if signals::stop_signals_blocked() => {
                return Err(ShellError::Signal(format!(
                    "cannot read SIGINT and SIGTERM on the loop: {e}"
                )));
            }
            Err(e) => {
                log::warn(format_args!("cannot read SIGHUP on the loop ({e})"));
                None
            }
        };
        let mut frames = net::frames_socket(&config.frames)?;
        poll.registry()
            .register(&mut frames, TOKEN_FRAMES, Interest::READABLE)
            .map_err(ShellError::Poll)?;
        let mut links = Vec::with_capacity(config.links.len());
        for (i, link_config) in config.links.iter().enumerate() {
            let (mut control, mut bulk) = net::link_sockets(i, link_config)?;
            let registry = poll.registry();
            registry
                .register(&mut control, Token(TOKEN_LINKS + 2 * i), Interest::READABLE)
                .map_err(ShellError::Poll)?;
            registry
                .register(&mut bulk, Token(TOKEN_LINKS + 2 * i + 1), Interest::READABLE)
                .map_err(ShellError::Poll)?;
            links.push(Link {
                name: if link_config.name.is_empty() {
                    format!("link{i}")
                } else {
                    link_config.name.clone()
                },
                control,
                bulk,
                peer_control: link_config.peer,
                peer_bulk: link_config.bulk_peer_addr().unwrap_or(link_config.peer),
                ready: [false; 2],
                counters: LinkCounters::default(),
            });
        }
        let outputs = net::outputs_socket(&config.outputs)?;
        let console = if config.console.enabled {
            let listener = net::console_listener(config.console.bind)?;
            Some(
                Console::new(
                    listener,
                    poll.registry(),
                    TOKEN_CONSOLE,
                    console::Limits {
                        connections_max: config.console.connections_max as usize,
                        requests_per_s: config.console.requests_per_s,
                        idle_timeout: Duration::from_millis(config.console.idle_timeout_ms),
                        slow_reader_timeout: Duration::from_millis(config.console.slow_reader_timeout_ms),
                    },
                )
                .map_err(ShellError::Poll)?,
            )
        } else {
            None
        };

        let clock = Clock::start();
        let boot_id = clock::unix_ns();
        let seed = if config.seed == 0 { random_seed() } else { config.seed };
        let boot = Boot {
            now: clock.now(),
            seed,
            epoch_persisted: stored.epoch,
            epoch_reserved: stored.reserved,
        };
        let node_id = runtime.node_id;
        let mut node = Node::new(runtime, app, boot).map_err(ShellError::Core)?;
        if let Some(key) = sync_key {
            // The session must grow from one start to the next: the wall clock does.
            node = node.with_auth(key, boot_id);
        }
        let hooks = HookRunner::new(
            config.hook.command.clone(),
            Duration::from_millis(config.hook.timeout_ms),
            config.hook.queue_max as usize,
        );
        let mut shell = Shell {
            node,
            name,
            poll,
            clock,
            boot_id,
            frames,
            frames_ready: false,
            frame_sources: config.frames.parsed_sources(),
            links,
            outputs,
            console,
            console_key,
            journal: Journal::new(config.console.events_max as usize),
            state_file,
            stored,
            hooks,
            hook_outcomes: Vec::new(),
            stop_requests: Arc::new(AtomicU32::new(0)),
            stop_seen: 0,
            waker,
            timer,
            signals,
            stopping: Stopping::Running,
            exit: None,
            previous_role: Role::Starting,
            counters: IoCounters::default(),
            frame_rates: FrameRates::default(),
            console_budget_ns: 0,
            console_budget_at: Instant::ZERO,
            buf: vec![0u8; 2048],
            config,
        };
        let console_text = match shell.console_addr() {
            Some(addr) => format!("console {addr}"),
            None => "console off".into(),
        };
        let message = format!(
            "started: node {node_id}, persisted epoch {} (reserved {}), frames {}, {} link(s), {} sink(s), {console_text}{}",
            crate::EpochText(stored.epoch),
            crate::EpochText(stored.reserved),
            shell.config.frames.bind,
            shell.links.len(),
            shell.config.outputs.sinks.len(),
            if shell.node_has_auth() { ", sync MAC on" } else { "" },
        );
        log::info(format_args!("{message}"));
        let mut fields = Map::new();
        fields.insert("epoch_persisted".into(), stored.epoch.into());
        fields.insert("epoch_reserved".into(), stored.reserved.into());
        shell.journal_push(EventKind::Shell, "started", &message, fields);
        Ok(shell)
    }

    fn node_has_auth(&self) -> bool {
        self.config.sync_key_file.is_some()
    }

    /// A handle to stop the shell from another thread or a signal handler.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle {
            requests: self.stop_requests.clone(),
            waker: self.waker.clone(),
        }
    }

    /// The console's address (useful when configured with port 0).
    pub fn console_addr(&self) -> Option<SocketAddr> {
        self.console.as_ref().and_then(|c| c.local_addr().ok())
    }

    /// The node, for reading its state.
    pub fn node(&self) -> &Node<A> {
        &self.node
    }

    /// Runs until a stop request has been carried out, or a fatal error. Every way out
    /// runs the hook a last time with `TWINLOOP_ROLE=stopped` (see [`Shell::finish`]).
    pub fn run(mut self) -> Result<Exit, ShellError> {
        let result = self.run_loop();
        self.finish(&result);
        result
    }

    fn run_loop(&mut self) -> Result<Exit, ShellError> {
        let mut events = Events::with_capacity(256);
        loop {
            let now = self.clock.now();
            if let Some(due) = self.node.poll_timeout().filter(|&t| t <= now) {
                let late = now.saturating_since(due);
                self.counters.note_lateness(now, late);
                if late > LATE_WAKE {
                    self.counters.late_wakes += 1;
                    // The loop was held up (the host descheduled it): datagrams that
                    // arrived meanwhile may be waiting, a primary's answer to our probe
                    // among them. Read them before the core judges a silence by the clock.
                    self.read_everything()?;
                }
                self.node.handle_timeout(self.clock.now());
                self.drain()?;
            }
            self.poll_hooks();
            let now = self.clock.now();
            if self.frame_rates.due(now) {
                // Once a second: the counters are read only then, not at every wake-up.
                self.frame_rates.tick(now, self.frames_stale(), self.frames_rejected());
            }
            if let Some(exit) = self.check_stop()? {
                return Ok(exit);
            }

            let timeout = self.next_wake();
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(ShellError::Poll(e));
            }
            for event in events.iter() {
                let token = event.token();
                match token {
                    TOKEN_WAKER => {}
                    TOKEN_TIMER => {
                        if let Some(timer) = &mut self.timer {
                            timer.fired();
                        }
                    }
                    TOKEN_FRAMES => self.frames_ready = true,
                    Token(t) if (TOKEN_LINKS..TOKEN_LINKS + 2 * self.links.len()).contains(&t) => {
                        let i = (t - TOKEN_LINKS) / 2;
                        self.links[i].ready[(t - TOKEN_LINKS) % 2] = true;
                    }
                    TOKEN_SIGNALS => self.read_signals(),
                    _ => {
                        if let Some(console) = &mut self.console {
                            if console.owns(token) {
                                console.ready(token, self.clock.now(), self.poll.registry());
                            }
                        }
                    }
                }
            }
            self.read_sockets()?;
            self.console_turn()?;
        }
    }

    /// The console's share of one loop turn: bounded housekeeping, then requests while
    /// the turn's budget lasts ([`console::REQUESTS_PER_TURN`], [`console::TURN_BUDGET`])
    /// and no deadline of the core is due; what is left waits for the next turn.
    fn console_turn(&mut self) -> Result<(), ShellError> {
        let start = self.clock.now();
        let Some(console) = &mut self.console else {
            return Ok(());
        };
        console.service(start, self.poll.registry());
        let budget = self.console_budget(start);
        self.console_budget_at = start;
        // A turn starts only with a full turn's worth of budget: the share holds however
        // often the loop wakes (a wake-up per frame would otherwise each spend a little).
        let full_turn = u64::try_from(console::TURN_BUDGET.as_nanos()).unwrap_or(u64::MAX);
        let mut cpu_start = None;
        let mut answered_until = None;
        for _ in 0..console::REQUESTS_PER_TURN {
            let now = self.clock.now();
            if now.saturating_since(start) >= console::TURN_BUDGET
                || now.saturating_since(start).as_nanos() >= u128::from(budget)
                || budget < full_turn
                || self.node.poll_timeout().is_some_and(|t| t <= now)
            {
                break;
            }
            let Some(console) = &mut self.console else {
                break;
            };
            if !console.has_work(now) {
                break;
            }
            // From before the next line is taken (reading it is part of the cost), and
            // only on turns with work: no system call is added to a quiet cycle.
            cpu_start.get_or_insert_with(thread_cpu_ns);
            let Some(line) = console.next_line(now, self.poll.registry()) else {
                break;
            };
            self.console_request(line)?;
            answered_until = Some(self.clock.now());
        }
        let charged = answered_until.map_or(0, |t| {
            u64::try_from(t.saturating_since(start).as_nanos()).unwrap_or(u64::MAX)
        });
        self.console_budget_ns = budget.saturating_sub(charged);
        if let Some(cpu) = cpu_start {
            let spent = thread_cpu_ns().saturating_sub(cpu);
            self.counters.console_turn_cpu_max_ns = self.counters.console_turn_cpu_max_ns.max(spent);
        }
        let spent = u64::try_from(self.clock.now().saturating_since(start).as_nanos()).unwrap_or(u64::MAX);
        self.counters.console_turn_max_ns = self.counters.console_turn_max_ns.max(spent);
        Ok(())
    }

    /// The console's time budget at `now`: what was left, plus its share of the time
    /// since, up to [`console::SHARE_BURST`].
    fn console_budget(&self, now: Instant) -> u64 {
        let earned = u64::try_from(now.saturating_since(self.console_budget_at).as_nanos()).unwrap_or(u64::MAX) / 100
            * console::TIME_SHARE_PERCENT;
        let cap = u64::try_from(console::SHARE_BURST.as_nanos()).unwrap_or(u64::MAX);
        self.console_budget_ns.saturating_add(earned).min(cap)
    }

    /// When the console, having work, may next take a request: now, or once its time
    /// budget holds a fair turn's worth again.
    fn console_ready_at(&self, now: Instant) -> Option<Instant> {
        let console = self.console.as_ref()?;
        if !console.has_work(now) {
            return None;
        }
        let want = u64::try_from(console::TURN_BUDGET.as_nanos()).unwrap_or(u64::MAX);
        let have = self.console_budget(now);
        if have >= want {
            return Some(now);
        }
        let missing_ns = (want - have).saturating_mul(100) / console::TIME_SHARE_PERCENT;
        Some(now + Duration::from_nanos(missing_ns))
    }

    /// Reads the signals the shell handles itself (SIGINT, SIGTERM: a stop request;
    /// SIGHUP: logged and ignored; see [`signals`]).
    fn read_signals(&mut self) {
        // Bounded: the pending set holds each signal once.
        for _ in 0..8 {
            match self.signals.as_mut().and_then(signals::Signals::read) {
                Some(caught) if caught.stops() => {
                    let message = format!(
                        "{} received: stopping (a second SIGINT or SIGTERM stops at once)",
                        caught.name()
                    );
                    self.shell_event(false, "signal_stop", &message);
                    // As a StopHandle does; `check_stop` carries it out.
                    self.stop_requests.fetch_add(1, Ordering::SeqCst);
                }
                Some(caught) => {
                    let message = format!(
                        "{} received: ignored (the node reloads nothing; restart it to apply a new configuration, SIGTERM or SIGINT to stop)",
                        caught.name()
                    );
                    self.shell_event(false, "signal_ignored", &message);
                }
                None => break,
            }
        }
    }

    /// Reads what the readiness events announced.
    fn read_sockets(&mut self) -> Result<(), ShellError> {
        // Frames first: a commit read before the frame it commits (both already
        // queued) would make the backup fetch a payload it has. Then control, which
        // must not wait behind chunks; a frame is one small datagram per cycle.
        self.read_frames()?;
        for i in 0..self.links.len() {
            self.read_link(i, TrafficClass::Control)?;
        }
        for i in 0..self.links.len() {
            self.read_link(i, TrafficClass::Bulk)?;
        }
        Ok(())
    }

    /// Reads every socket whether or not an event announced it (each read stops at the
    /// first `WouldBlock`, or after a turn's worth).
    fn read_everything(&mut self) -> Result<(), ShellError> {
        self.frames_ready = true;
        for link in &mut self.links {
            link.ready = [true; 2];
        }
        self.read_sockets()
    }

    /// How long the loop may sleep. The core's next deadline is also set on the precise
    /// timer, which wakes the loop on time; mio's timeout (whole milliseconds, rounded
    /// up) then only backs it up.
    fn next_wake(&mut self) -> Duration {
        let now = self.clock.now();
        let pending = self.frames_ready || self.links.iter().any(|l| l.ready.iter().any(|&r| r));
        let console_at = self.console_ready_at(now);
        if pending || console_at == Some(now) {
            return Duration::ZERO;
        }
        let deadline = self.node.poll_timeout();
        let mut wake = deadline.map_or(Duration::from_millis(100), |t| t.saturating_since(now));
        if let Some(console) = self.console.as_ref().and_then(|c| c.next_deadline(now)) {
            wake = wake.min(console.saturating_since(now));
        }
        if let Some(at) = console_at {
            wake = wake.min(at.saturating_since(now));
        }
        if let (Some(timer), Some(deadline)) = (&mut self.timer, deadline) {
            if !wake.is_zero() {
                match timer.arm(now, deadline) {
                    Ok(()) => wake += Duration::from_millis(1),
                    Err(e) => {
                        log::warn(format_args!(
                            "precise timer failed ({e}): deadlines fire up to 1 ms late"
                        ));
                        self.timer = None;
                    }
                }
            }
        }
        if let Some(interval) = self.hooks.poll_interval() {
            wake = wake.min(interval);
        }
        if let Stopping::HandingOver { deadline } = self.stopping {
            wake = wake.min(deadline.saturating_since(now));
        }
        wake
    }

    fn read_link(&mut self, i: usize, class: TrafficClass) -> Result<(), ShellError> {
        let slot = match class {
            TrafficClass::Control => 0,
            TrafficClass::Bulk => 1,
        };
        for _ in 0..READS_PER_TURN {
            if !self.links[i].ready[slot] {
                return Ok(());
            }
            let link = &mut self.links[i];
            let (socket, peer) = match class {
                TrafficClass::Control => (&link.control, link.peer_control),
                TrafficClass::Bulk => (&link.bulk, link.peer_bulk),
            };
            match socket.recv_from(&mut self.buf) {
                Ok((len, from)) => {
                    // Only the peer's host may speak on a link (the MAC, when configured,
                    // is what authenticates; this drops stray traffic early).
                    if from.ip() != peer.ip() {
                        link.counters.foreign_source += 1;
                        continue;
                    }
                    match class {
                        TrafficClass::Control => link.counters.received_control += 1,
                        TrafficClass::Bulk => link.counters.received_bulk += 1,
                    }
                    let now = self.clock.now();
                    self.node.handle_message(now, i as u8, &self.buf[..len]);
                    self.drain()?;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => link.ready[slot] = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // Errors queued by ICMP (peer port unreachable) surface here: not fatal.
                    log::debug(format_args!("{}: receive error: {e}", link.name));
                }
            }
        }
        Ok(())
    }

    fn read_frames(&mut self) -> Result<(), ShellError> {
        for _ in 0..READS_PER_TURN {
            if !self.frames_ready {
                return Ok(());
            }
            match self.frames.recv_from(&mut self.buf) {
                Ok((len, from)) => {
                    if !self.frame_sources.is_empty() && !self.frame_sources.iter().any(|s| s.allows(from)) {
                        self.counters.frames_foreign_source += 1;
                        continue;
                    }
                    self.counters.frames_received += 1;
                    let now = self.clock.now();
                    match io_protocol::decode_frame(&self.buf[..len]) {
                        Ok(frame) => {
                            self.node
                                .handle_source_frame(now, frame.session, frame.number, frame.payload);
                            self.drain()?;
                        }
                        Err(error) => {
                            self.counters.frames_rejected += 1;
                            *self
                                .counters
                                .frames_rejected_by
                                .entry(decode_error_name(error))
                                .or_insert(0) += 1;
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.frames_ready = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => log::debug(format_args!("frames: receive error: {e}")),
            }
        }
        Ok(())
    }

    /// Carries out every queued action, in order.
    fn drain(&mut self) -> Result<(), ShellError> {
        while let Some(action) = self.node.poll_action() {
            match action {
                Action::Transmit { link, class, bytes } => self.transmit(link, class, &bytes),
                Action::Emit(output) => {
                    let node_id = self.node.config().node_id;
                    let mut datagram = [0u8; io_protocol::OUTPUT_DATAGRAM_MAX];
                    let Ok(len) = io_protocol::encode_core_output(node_id, &output, &mut datagram) else {
                        // Outputs are bounded by the core; an unencodable one is a bug, not data.
                        log::error(format_args!("output {}:{} does not encode", output.frame, output.index));
                        continue;
                    };
                    for sink in &self.config.outputs.sinks {
                        match self.outputs.send_to(&datagram[..len], *sink) {
                            Ok(_) => self.counters.outputs_sent += 1,
                            Err(_) => self.counters.output_send_errors += 1,
                        }
                    }
                }
                Action::PersistEpoch(epoch) => {
                    self.store(Stored { epoch, ..self.stored })?;
                    log::debug(format_args!("epoch {epoch} persisted"));
                }
                Action::ReserveEpoch(reserved) => {
                    self.store(Stored {
                        reserved,
                        ..self.stored
                    })?;
                    log::debug(format_args!("epoch {reserved} reserved"));
                }
                Action::PersistEpochLater(epoch) => {
                    self.store_later(Stored { epoch, ..self.stored });
                    log::debug(format_args!("epoch {epoch} to be persisted"));
                }
                Action::Transition(t) => self.on_transition(t),
                Action::Alarm(alarm) => self.on_alarm(alarm),
                Action::Notice(notice) => self.on_notice(notice),
            }
        }
        Ok(())
    }

    /// Stores the state file; a failure is fatal (the core counts on it being durable).
    fn store(&mut self, stored: Stored) -> Result<(), ShellError> {
        self.state_file.store(stored).map_err(|error| ShellError::Persist {
            path: self.state_file.path().to_owned(),
            error,
        })?;
        self.counters.epochs_persisted += 1;
        // As the writer does: the file never goes backwards.
        self.stored = self.stored.merge(stored);
        Ok(())
    }

    /// Stores the state file without waiting; a failure is logged by the writer.
    fn store_later(&mut self, stored: Stored) {
        self.state_file.store_later(stored);
        self.counters.epochs_persisted += 1;
        self.stored = self.stored.merge(stored);
    }

    fn transmit(&mut self, link: u8, class: TrafficClass, bytes: &[u8]) {
        let Some(l) = self.links.get_mut(usize::from(link)) else {
            return;
        };
        let (socket, peer) = match class {
            TrafficClass::Control => (&l.control, l.peer_control),
            TrafficClass::Bulk => (&l.bulk, l.peer_bulk),
        };
        // A datagram that would block is dropped: heartbeats repeat, and the core
        // retries commits (fetch), chunks (go-back-N) and switchover messages.
        match socket.send_to(bytes, peer) {
            Ok(_) => match class {
                TrafficClass::Control => l.counters.sent_control += 1,
                TrafficClass::Bulk => l.counters.sent_bulk += 1,
            },
            Err(_) => l.counters.send_errors += 1,
        }
    }

    fn on_transition(&mut self, t: Transition) {
        let (reason, cause) = names::reason(t.reason);
        let message = format!(
            "{} {} ({}) epoch {} frame {}: {}",
            if t.role != self.previous_role { "role" } else { "state" },
            names::role(t.role),
            names::sync(t.sync),
            crate::EpochText(t.epoch),
            t.frame,
            names::reason_text(t.reason)
        );
        match t.reason {
            Reason::SwitchoverAborted | Reason::BackupLost | Reason::PrimaryLostWhileJoining => {
                log::warn(format_args!("{message}"))
            }
            _ => log::info(format_args!("{message}")),
        }
        let mut fields = transition_fields(&t);
        fields.insert("previous_role".into(), names::role(self.previous_role).into());
        self.journal_push(EventKind::Transition, reason, &message, fields);

        let stopping = self.stopping != Stopping::Running;
        let job = HookJob {
            env: vec![
                ("TWINLOOP_NODE_ID", self.node.config().node_id.to_string()),
                ("TWINLOOP_NODE_NAME", self.name.clone()),
                ("TWINLOOP_ROLE", names::role(t.role).into()),
                ("TWINLOOP_SYNC", names::sync(t.sync).into()),
                ("TWINLOOP_EPOCH", t.epoch.to_string()),
                ("TWINLOOP_FRAME", t.frame.to_string()),
                (
                    "TWINLOOP_REASON",
                    cause.map_or(reason.to_string(), |c| format!("{reason}:{c}")),
                ),
                ("TWINLOOP_PREVIOUS_ROLE", names::role(self.previous_role).into()),
                ("TWINLOOP_STOPPING", if stopping { "1" } else { "0" }.into()),
            ],
            summary: format!("role {}, reason {reason}", names::role(t.role)),
        };
        let now = self.clock.to_std(self.clock.now());
        self.hooks.enqueue(job, now, &mut self.hook_outcomes);
        self.previous_role = t.role;

        if let Stopping::HandingOver { .. } = self.stopping {
            match t.reason {
                Reason::SwitchoverHandedOver => self.exit = Some(Exit::HandedOver),
                Reason::SwitchoverAborted => self.exit = Some(Exit::SwitchoverAborted),
                // Deposed meanwhile: nothing left to hand over.
                Reason::FencedByEpoch => self.exit = Some(Exit::Stopped),
                _ => {}
            }
        }
    }

    fn on_alarm(&mut self, alarm: Alarm) {
        let (name, frame) = names::alarm(alarm);
        let mut message = format!("alarm {name}: {}", names::alarm_text(alarm));
        if let Alarm::SyncKeyMismatch { link, .. } | Alarm::PeerIsSelf { link } = alarm {
            // The core knows the link; the shell knows whom it talks to on it.
            if let Some(l) = self.links.get(usize::from(link)) {
                message.push_str(&format!(" (link {}, peer {})", l.name, l.peer_control));
            }
        }
        log::error(format_args!("{message}"));
        let mut fields = Map::new();
        if let Some(frame) = frame {
            fields.insert("frame".into(), frame.into());
        }
        self.journal_push(EventKind::Alarm, name, &message, fields);
    }

    fn on_notice(&mut self, notice: Notice) {
        let name = names::notice(notice);
        let mut fields = Map::new();
        let link_name = |i: u8| self.links.get(usize::from(i)).map_or("?".into(), |l| l.name.clone());
        let (warn, message) = match notice {
            Notice::ProbeSent => (true, "the primary is silent: probe sent on every link".to_string()),
            Notice::FalseDeath => (
                false,
                "the probe was answered: the primary is alive (false death)".into(),
            ),
            Notice::LinkUp(i) => {
                fields.insert("link".into(), i.into());
                (false, format!("link {i} ({}) up", link_name(i)))
            }
            Notice::LinkDown(i) => {
                fields.insert("link".into(), i.into());
                (true, format!("link {i} ({}) down", link_name(i)))
            }
            Notice::NonceRedrawn => (false, "start-up nonces tied: redrawn".into()),
            Notice::TransferStarted { bytes, frame } => {
                fields.insert("bytes".into(), bytes.into());
                fields.insert("frame".into(), frame.into());
                (
                    false,
                    format!("state transfer started: {bytes} bytes after frame {frame}"),
                )
            }
            Notice::TransferCompleted { bytes } => {
                fields.insert("bytes".into(), bytes.into());
                (false, format!("state transfer completed: {bytes} bytes"))
            }
            Notice::SwitchoverDelayed { reason, lag_frames } => {
                fields.insert("delay_reason".into(), names::delay_reason(reason).into());
                fields.insert("lag_frames".into(), lag_frames.into());
                (
                    false,
                    format!(
                        "switchover delayed: the backup is {} ({lag_frames} frames behind)",
                        names::delay_reason(reason)
                    ),
                )
            }
            Notice::SwitchoverRefused => (true, "the primary refused the forwarded switchover".into()),
            Notice::SourceRestarted {
                session,
                source_first,
                pair_first,
            } => {
                fields.insert("session".into(), session.into());
                fields.insert("source_first".into(), source_first.into());
                fields.insert("pair_first".into(), pair_first.into());
                (
                    true,
                    format!(
                        "the I/O source restarted (session {session}): its frame {source_first} is the pair's frame {pair_first}"
                    ),
                )
            }
        };
        if warn {
            log::warn(format_args!("{message}"));
        } else {
            log::info(format_args!("{message}"));
        }
        self.journal_push(EventKind::Notice, name, &message, fields);
    }

    fn journal_push(&mut self, kind: EventKind, name: &str, message: &str, fields: Map<String, Value>) {
        let unix_ms = self.clock.unix_ms_now();
        self.journal.push(unix_ms, kind, name, message, fields);
    }

    fn poll_hooks(&mut self) {
        if self.hooks.busy() {
            let now = self.clock.to_std(self.clock.now());
            self.hooks.poll(now, &mut self.hook_outcomes);
        }
        let outcomes: Vec<HookOutcome> = self.hook_outcomes.drain(..).collect();
        for outcome in outcomes {
            let (name, message, warn) = match outcome {
                HookOutcome::Succeeded(s) => ("hook_succeeded", format!("hook done ({s})"), false),
                HookOutcome::Failed(s) => ("hook_failed", format!("hook failed ({s})"), true),
                HookOutcome::SpawnFailed(s) => ("hook_failed", format!("hook not started ({s})"), true),
                HookOutcome::TimedOut(s) => (
                    "hook_timed_out",
                    format!("hook killed after hook.timeout_ms ({s})"),
                    true,
                ),
                HookOutcome::Dropped(s) => ("hook_dropped", format!("hook queue full: dropped ({s})"), true),
            };
            if warn {
                log::warn(format_args!("{message}"));
            } else {
                log::info(format_args!("{message}"));
            }
            self.journal_push(EventKind::Shell, name, &message, Map::new());
        }
    }

    /// Acts on stop requests; returns how to exit once it is time.
    fn check_stop(&mut self) -> Result<Option<Exit>, ShellError> {
        if let Some(exit) = self.exit {
            return Ok(Some(exit));
        }
        let requests = self.stop_requests.load(Ordering::SeqCst);
        if requests == self.stop_seen {
            if let Stopping::HandingOver { deadline } = self.stopping {
                if self.clock.now() >= deadline {
                    self.shell_event(
                        true,
                        "stop_handover_timed_out",
                        "the handover did not complete within shutdown.switchover_wait_ms: stopping anyway",
                    );
                    return Ok(Some(Exit::SwitchoverTimedOut));
                }
            }
            return Ok(None);
        }
        self.stop_seen = requests;
        if self.stopping != Stopping::Running || requests >= 2 {
            self.shell_event(true, "stop_forced", "second stop request: stopping now");
            return Ok(Some(Exit::Forced));
        }
        let status = self.node.status();
        if status.role != Role::Primary {
            let message = format!("stop requested: stopping ({})", names::role(status.role));
            self.shell_event(false, "stop_requested", &message);
            return Ok(Some(Exit::Stopped));
        }
        if !self.config.shutdown.switchover || status.sync != SyncState::Paired {
            let why = if self.config.shutdown.switchover {
                "no backup follows"
            } else {
                "shutdown.switchover is off"
            };
            let message = format!("stop requested: stopping the primary without handover ({why})");
            self.shell_event(false, "stop_requested", &message);
            return Ok(Some(Exit::Stopped));
        }
        let now = self.clock.now();
        // Stopping before the command: the transitions it queues tell the hook so.
        self.stopping = Stopping::HandingOver {
            deadline: now + Duration::from_millis(self.config.shutdown.switchover_wait_ms),
        };
        self.shell_event(
            false,
            "stop_requested",
            "stop requested: handing over to the backup first",
        );
        let reply = self.node.handle_command(now, Command::Switchover);
        self.drain()?;
        match reply {
            CommandReply::Started => Ok(self.exit),
            CommandReply::Refused(reason) => {
                let message = format!(
                    "switchover refused ({}: {}): stopping without handover",
                    names::refuse(reason),
                    names::refuse_text(reason)
                );
                self.shell_event(true, "stop_handover_refused", &message);
                Ok(Some(Exit::SwitchoverRefused(reason)))
            }
            CommandReply::Forwarded => Ok(Some(Exit::Stopped)),
        }
    }

    /// A shell event: one log line and one journal entry.
    fn shell_event(&mut self, warn: bool, name: &str, message: &str) {
        if warn {
            log::warn(format_args!("{message}"));
        } else {
            log::info(format_args!("{message}"));
        }
        self.journal_push(EventKind::Shell, name, message, Map::new());
    }

    /// Runs the hook a last time with `TWINLOOP_ROLE=stopped`, whatever the way out (a
    /// stop, a second stop, a fatal error), so that a VIP hook releases the address: a
    /// node that exits drives nothing. Bounded: the hooks of the last transitions get
    /// `hook.timeout_ms` to finish (whatever is left is killed or dropped: the stopped
    /// run supersedes them), then the stopped run gets `hook.timeout_ms` — an exit waits
    /// at most 2 × `hook.timeout_ms` for hooks.
    fn finish(&mut self, result: &Result<Exit, ShellError>) {
        let timeout = Duration::from_millis(self.config.hook.timeout_ms);
        let deadline = self.clock.now() + timeout;
        while self.hooks.busy() && self.clock.now() < deadline {
            self.poll_hooks();
            std::thread::sleep(Duration::from_millis(5));
        }
        let now = self.clock.to_std(self.clock.now());
        self.hooks.abandon(now, &mut self.hook_outcomes);
        let why = match result {
            Ok(exit) => exit_name(*exit),
            Err(_) => "fatal_error",
        };
        let job = HookJob {
            env: vec![
                ("TWINLOOP_NODE_ID", self.node.config().node_id.to_string()),
                ("TWINLOOP_NODE_NAME", self.name.clone()),
                ("TWINLOOP_ROLE", "stopped".into()),
                ("TWINLOOP_SYNC", "none".into()),
                ("TWINLOOP_EPOCH", self.node.epoch().to_string()),
                ("TWINLOOP_FRAME", self.node.frame().to_string()),
                ("TWINLOOP_REASON", format!("stopped:{why}")),
                ("TWINLOOP_PREVIOUS_ROLE", names::role(self.previous_role).into()),
                ("TWINLOOP_STOPPING", "1".into()),
            ],
            summary: format!("role stopped, reason stopped:{why}"),
        };
        self.hooks.enqueue(job, now, &mut self.hook_outcomes);
        let deadline = self.clock.now() + timeout;
        while self.hooks.busy() && self.clock.now() < deadline {
            self.poll_hooks();
            std::thread::sleep(Duration::from_millis(5));
        }
        let now = self.clock.to_std(self.clock.now());
        self.hooks.abandon(now, &mut self.hook_outcomes);
        self.poll_hooks();
        match result {
            Ok(exit) => log::info(format_args!("stopped ({exit:?})")),
            Err(e) => log::error(format_args!("stopped (fatal error: {e})")),
        }
    }

    /// Frames dropped as older than the last one run (or too long), by the core. Takes
    /// the node's status: once a second, and for the console.
    fn frames_stale(&self) -> u64 {
        self.node.status().rejections.stale_frame
    }

    /// Frames that did not decode, or came from a source not in `frames.sources`.
    fn frames_rejected(&self) -> u64 {
        self.counters.frames_rejected + self.counters.frames_foreign_source
    }
}

/// The `TWINLOOP_REASON` suffix of the last hook run: how the node exits.
fn exit_name(exit: Exit) -> &'static str {
    match exit {
        Exit::Stopped => "stopped",
        Exit::HandedOver => "handed_over",
        Exit::SwitchoverRefused(_) => "switchover_refused",
        Exit::SwitchoverAborted => "switchover_aborted",
        Exit::SwitchoverTimedOut => "switchover_timed_out",
        Exit::Forced => "forced",
    }
}

/// Stale and rejected frames per second, measured over whole seconds of the shell's
/// clock: the last second's figures are shown until the next second ends.
#[derive(Debug, Default, Clone, Copy)]
struct FrameRates {
    window_start: Option<Instant>,
    stale_at_start: u64,
    rejected_at_start: u64,
    stale_per_s: u64,
    rejected_per_s: u64,
}

impl FrameRates {
    /// A second has passed since the window began (or none began yet).
    fn due(&self, now: Instant) -> bool {
        self.window_start
            .is_none_or(|start| now.saturating_since(start) >= Duration::from_secs(1))
    }

    fn tick(&mut self, now: Instant, stale: u64, rejected: u64) {
        let Some(start) = self.window_start else {
            *self = FrameRates {
                window_start: Some(now),
                stale_at_start: stale,
                rejected_at_start: rejected,
                ..*self
            };
            return;
        };
        let elapsed = now.saturating_since(start);
        if elapsed < Duration::from_secs(1) {
            return;
        }
        // Per whole second elapsed: a loop held up for longer does not inflate the rate.
        let seconds = elapsed.as_secs().max(1);
        self.stale_per_s = stale.saturating_sub(self.stale_at_start) / seconds;
        self.rejected_per_s = rejected.saturating_sub(self.rejected_at_start) / seconds;
        self.window_start = Some(now);
        self.stale_at_start = stale;
        self.rejected_at_start = rejected;
    }
}

fn transition_fields(t: &Transition) -> Map<String, Value> {
    let (reason, cause) = names::reason(t.reason);
    let mut m = Map::new();
    m.insert("role".into(), names::role(t.role).into());
    m.insert("sync".into(), names::sync(t.sync).into());
    m.insert("epoch".into(), t.epoch.into());
    m.insert("frame".into(), t.frame.into());
    m.insert("reason".into(), reason.into());
    m.insert("cause".into(), cause.into());
    m
}

/// The snake_case name of an I/O protocol decode error, for counters.
fn decode_error_name(error: io_protocol::DecodeError) -> &'static str {
    use io_protocol::DecodeError as E;
    match error {
        E::TooShort => "too_short",
        E::TooLong => "too_long",
        E::BadMagic => "bad_magic",
        E::UnknownVersion(_) => "unknown_version",
        E::UnknownKind(_) => "unknown_kind",
        E::WrongKind(_) => "wrong_kind",
        E::PayloadTooLong(_) => "payload_too_long",
        E::LengthMismatch => "length_mismatch",
        E::BadChecksum => "bad_checksum",
        E::ReservedNotZero => "reserved_not_zero",
        E::FrameZero => "frame_zero",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn frame_rates_count_per_whole_second() {
        let mut rates = FrameRates::default();
        let t = |ms: u64| Instant::from_millis(ms);
        assert!(rates.due(t(0)));
        rates.tick(t(0), 5, 1);
        assert!(!rates.due(t(999)));
        assert!(rates.due(t(1000)));
        rates.tick(t(1000), 25, 1);
        assert_eq!((rates.stale_per_s, rates.rejected_per_s), (20, 0));
        // A loop held up for three seconds: averaged over them, not counted as one.
        rates.tick(t(4000), 25, 31);
        assert_eq!((rates.stale_per_s, rates.rejected_per_s), (0, 10));
    }

    #[test]
    fn key_file_readable_by_others_is_refused_naming_the_fix() {
        let dir = std::env::temp_dir().join(format!("twinloop-keyfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("sync.key");
        std::fs::write(&path, "secret\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let error = read_key_file("node.sync_key_file", &path).unwrap_err().to_string();
        assert!(error.contains("chmod 600"), "{error}");
        assert!(error.contains("node.sync_key_file"), "{error}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_key_file("node.sync_key_file", &path).unwrap(), b"secret");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
