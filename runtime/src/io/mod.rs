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
//!   the epoch leaves; [`Action::PersistEpochLater`] is written in the background;
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
//!
//! One job per file: `setup.rs` opens everything ([`Shell::new`]), `run.rs` is the loop,
//! `actions.rs` carries out the core's actions, `events.rs` tells transitions, alarms and
//! notices to the log, the journal and the hook, `stop.rs` is the stop policy and the
//! last hook, `counters.rs` the shell's counters; `console_dispatch.rs` answers console
//! requests and `status.rs` builds the `status` and `config` answers from
//! [`schema`]'s types. This file holds the shell's types.

pub mod client;
pub mod clock;
pub mod config;
pub mod console;
mod console_dispatch;
pub mod epoch_file;
pub mod hmi_server;
pub mod hook;
pub mod journal;
pub mod log;
pub mod metrics;
pub mod names;
pub mod net;
pub mod preflight;
pub mod schema;
#[cfg(target_os = "linux")]
pub mod signals;
pub mod systemd;
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
mod acks;
mod actions;
mod batch;
mod counters;
mod events;
mod run;
mod setup;
mod status;
mod stop;
mod timer;

use counters::{thread_cpu_ns, FrameRates, IoCounters};

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
/// The outputs socket, read for the sinks' acks (`[outputs] acks`).
const TOKEN_OUTPUTS: Token = Token(4);
/// Link `i`'s control socket is `TOKEN_LINKS + 2i`, its bulk socket `TOKEN_LINKS + 2i + 1`.
const TOKEN_LINKS: usize = 10;
const TOKEN_CONSOLE: usize = 100;
/// Datagrams read from one socket before the loop looks at the others.
/// A deadline handled later than this after it fell due means the loop was held up (the
/// precise timer wakes it within tens of microseconds).
const LATE_WAKE: Duration = Duration::from_micros(500);

const READS_PER_TURN: usize = 64;

/// Datagrams read from one frames or control socket, at most, after a late wake-up and
/// before the core's due deadline is handled ([`Shell::read_backlog`]): the backlog of a
/// host stall, read in order, so that the core judges by what its peers said meanwhile
/// and not by the part one turn reads. 4,096 small datagrams exceed what a socket's
/// receive buffer (`recv_buffer_bytes`, 1 MiB by default) holds; a flood costs a late
/// wake-up at most this many datagrams a socket (a few milliseconds).
const BACKLOG_READS: usize = 4096;

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
    /// The journal's file across restarts (`None`: `console.journal_bytes_max` = 0).
    journal_file: Option<journal::JournalFile>,
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
    /// READY, WATCHDOG, STATUS and STOPPING to systemd (`systemd.rs`).
    notifier: systemd::Notifier,
    /// The HMI's Modbus/TCP server (`hmi_server.rs`); `None`: `hmi.listen` unset.
    hmi: Option<hmi_server::HmiServer>,
    /// The Prometheus endpoint (`metrics.rs`); `None`: `metrics.bind` unset.
    metrics: Option<metrics::MetricsServer>,
    /// How late each deadline of the core was handled.
    lateness: metrics::Histogram,
    /// From a frame read to the last action it caused carried out.
    frame_handling: metrics::Histogram,
    counters: IoCounters,
    /// Stale and rejected frames per second, over the last whole second.
    frame_rates: FrameRates,
    /// The console's time budget ([`console::TIME_SHARE_PERCENT`]), in ns, as of
    /// `console_budget_at`.
    console_budget_ns: u64,
    console_budget_at: Instant,
    /// The datagrams of the last read ([`batch`]).
    buf: batch::RecvBatch,
    /// Datagrams for one link socket, sent together (`actions.rs`).
    sends: batch::SendBatch,
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
