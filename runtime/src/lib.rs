//! # twinloop — a deterministic lockstep hot-standby runtime for industrial control
//!
//! Two industrial PCs run the same control program ([`App`]) on identical, numbered input
//! frames. The primary drives the actuators; the backup computes the same thing one cycle
//! behind, suppresses its outputs, and takes over without losing or duplicating an
//! actuator message when the primary dies or an operator asks for a switchover.
//!
//! ## The core's contract
//!
//! [`Node`] is a sans-IO state machine. It does no I/O, reads no clock (time is passed in
//! as [`Instant`]), starts no thread, draws randomness only from the seeded [`Rng`] it is
//! given, and does not allocate per cycle: every buffer is allocated in [`Node::new`].
//! The same seed and the same events give the same actions, which is what lets the
//! simulator replay a run exactly.
//!
//! The I/O shell (sockets, clock, signals) lives in [`io`] when the `io` feature is on;
//! it only moves bytes between the sockets and the core; [`node_main`] (same feature) is a
//! whole node binary for any program, [`run_node`].
// Denied, not forbidden: the one exception is `node_main::rt` (three libc calls for the
// real-time settings, which no safe wrapper offers), never the core.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod app;
pub mod config;
pub mod digest;
pub mod gateway;
pub mod hmi;
pub mod image;
pub mod io_protocol;
pub mod node;
pub mod rng;
pub mod time;
pub mod wire;

#[cfg(any(test, feature = "testing"))]
pub mod testing;

#[cfg(feature = "io")]
pub mod io;

#[cfg(feature = "io")]
pub mod node_main;

pub use app::{App, AppIdentity, Frame, Outbox, OutputKind, OutputPayload, SnapshotError};
pub use config::{Config, ConfigError};
pub use gateway::{Decision, Gateway};
pub use node::{
    Action, Alarm, Boot, Command, CommandReply, EpochText, GroupMember, InputStatus, Node, Notice, Output, Reason,
    RefuseReason, ResyncCause, Role, Status, SyncState, TrafficClass, TransferProgress, Transition, EPOCH_MAX,
};
pub use rng::Rng;
pub use time::Instant;

#[cfg(feature = "io")]
pub use node_main::{run_node, AppSettings, NodeProgram};
