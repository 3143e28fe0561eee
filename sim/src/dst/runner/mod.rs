//! The seed runner: a single-threaded discrete-event simulation of one run, and the
//! driver that runs many seeds (on a few worker threads, one seed per thread at a time)
//! and combines their results in seed order.
//!
//! One run: both nodes start (together, staggered or one late); the I/O source sends a
//! frame every cycle; the fault plan fires during the **safety phase**; then everything
//! heals (links whole and clean, frozen nodes thawed, crashed nodes restarted, no I/O
//! loss) and the **liveness phase** requires the pair to converge — exactly one primary,
//! `Paired`, and an in-sync backup — within a bound, and to stay so with outputs flowing
//! for a settling time. Every invariant is checked by the [`Checker`] as events happen
//! and at the end.
//!
//! Every event sits in one queue ordered by `(true time, sequence)`; the sequence number
//! makes ties deterministic. Every random draw comes from one generator per concern,
//! forked from the seed. Time is only virtual.
//!
//! One job per file: `world.rs` (the event queue and the loop), `host.rs` (starting nodes
//! and applying their actions), `disk.rs` (epoch writes, when they are durable, what a
//! crash loses), `inject.rs` (the fault plan firing), `operator.rs` (the simulated
//! operator's commands), `liveness.rs` (healing, convergence and the time bounds),
//! `trace.rs` (the trace hash and the human trace), `attack.rs` (the attacker's
//! datagrams delivered and judged), `report.rs` (one run's verdict and
//! statistics) and `driver.rs` (seeds run and combined).

mod attack;
mod disk;
mod driver;
mod handover;
mod hmi;
mod host;
mod inject;
mod liveness;
mod operator;
mod report;
mod source;
#[cfg(test)]
mod tests;
mod trace;
mod world;

pub use driver::{run_seed, run_seed_with, run_seeds, Summary};
pub use liveness::{failover_bound_ns, join_bound_ns, liveness_bound_ns, transfer_ns};
pub use report::{FailureKind, FaultCounts, RunStats, SeedReport};

/// The DST sink's dedup window, in frames: longer than any run of a seed.
const SINK_WINDOW_FRAMES: u64 = 1 << 16;
/// Events one run may process before it is declared stuck.
pub const EVENTS_MAX: u64 = 40_000_000;
/// Events at one instant before the run is declared livelocked.
pub const EVENTS_PER_INSTANT_MAX: u64 = 200_000;
/// Timer events of one node in a row at one true instant before it is declared spinning
/// (a liveness violation, the run stopped): a node whose deadline has come and that asks
/// for it again at once. Far above the two or three local instants a fast clock maps to
/// one true nanosecond, and far below [`EVENTS_PER_INSTANT_MAX`], so the node is named.
pub const TIMER_FIRES_PER_INSTANT_MAX: u64 = 1_000;
/// Actions one node event may produce before the node is declared runaway.
pub const ACTIONS_PER_EVENT_MAX: usize = 1_000_000;
/// Datagrams and frames a frozen node's sockets buffer; later ones are dropped.
pub const FROZEN_BUFFER_MAX: usize = 16_384;

/// A bug planted on purpose, to show that the checkers catch it end to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mutation {
    /// None: the real thing.
    #[default]
    None,
    /// Outputs of every 97th frame never reach the sink.
    DropEmit,
    /// Outputs of every 89th frame reach the sink with a flipped bit.
    CorruptEmit,
    /// The sink never fences (it accepts any epoch).
    NoFencing,
    /// Persisted epochs are lost.
    LoseEpoch,
    /// Node 1 reports a wrong state digest after every 101st frame.
    CorruptDigest,
    /// Both nodes run with `allow_cold_start`: the behaviour before 2026-11-26, when a
    /// node without state led from a cold start whenever it heard no primary.
    ColdStart,
    /// The checker is not told of divergence alarms: as if the core's detection were
    /// broken (the core still resyncs).
    HideDivergence,
    /// After healing, every transfer chunk is lost: joins never end.
    StallJoins,
    /// Every commit reaches a backup with an empty `sent_mask` (the checker records what
    /// was sent): the new primary re-sends what the old one reported sent, as a core that
    /// ignored the sent log would (invariant 9).
    IgnoreSentMask,
    /// `Alarm::InputLost` goes unseen: a new primary that skips an inherited frame whose
    /// input it lacks looks like a core that skips it silently (invariant 10).
    SilentInputLost,
    /// `Alarm::CommitLost` goes unseen: a new primary that decides an inherited frame
    /// whose commit it lost looks like a core that parts from the committed history
    /// silently, as before 2026-11-26 (invariant 10).
    SilentCommitLost,
    /// A replay window that takes repeats: the attacker's replays reach the node with a
    /// sequence number it has not seen (keyed runs with an attacker).
    AcceptReplay,
    /// A decoder that takes untagged messages on a keyed link: the attacker's untagged
    /// messages reach the node tagged with the pair's key.
    AcceptUntagged,
    /// A core that does not persist the epochs it hears or follows: every write of an
    /// epoch another node leads (`PersistEpoch` when heard, `PersistEpochLater` when
    /// followed) is dropped, so a restarted node boots below them (invariant 3: its
    /// outputs rejected under a fence it knew of are unexplained orphaned losses).
    ForgetHeardEpoch,
    /// A core that leads before its epoch is durable: every blocking write of the node's
    /// own epoch (`PersistEpoch` of an epoch it leads, `ReserveEpoch`) is made in the
    /// background instead (invariant 1: an output under an epoch not yet durable).
    LeadBeforeDurable,
    /// A sink without the level rule (as before 2026-11-26, issue 17): every output is
    /// offered to it as an event, so a level older than its key's newest is accepted
    /// (invariant 14; the checker is told the output's real kind).
    SinkIgnoresLevels,
    /// A level refresh that never fires (issue 22): the nodes run with
    /// `level_refresh_ms = 0` while the checker holds them to the seed's period, so a
    /// level lost on the output path stays lost (invariant 14's healing bound).
    RefreshNeverFires,
    /// A node that asks to be woken at an instant that has come, again and again: from
    /// its first deadline [`SPIN_FROM_NS`] or later on, node 0's timer is set to the
    /// instant it fired at (the timer bound, [`TIMER_FIRES_PER_INSTANT_MAX`]).
    SpinTimer,
}

/// `Mutation::SpinTimer`: when node 0 begins to spin (true time, 100 ms).
pub const SPIN_FROM_NS: u64 = 100_000_000;

/// How to run seeds (not drawn from the seed).
#[derive(Debug, Clone, Copy, Default)]
pub struct RunConfig {
    /// A planted bug (tests only).
    pub mutation: Mutation,
    /// Print faults, transitions, alarms and notable sink verdicts as they happen.
    pub trace: bool,
    /// Also print every sync-link message sent (much more output).
    pub trace_wire: bool,
    /// Acknowledged events (issue 22): the nodes run with `outputs.acks` on and the sink
    /// acks what it applied; invariant 16 checks that every event is applied.
    pub acks: bool,
    /// Acked outputs (issue 16): the nodes run with `outputs.release = "acked"` (and the
    /// level refresh off); invariant 17 checks that no output id leaves two primaries.
    pub acked: bool,
    /// The sink's dedup window, in frames, in place of [`SINK_WINDOW_FRAMES`] (at least the
    /// seed's `frames_buffered`): to see what a window shorter than the run does to a
    /// refreshed level (issue 22).
    pub sink_window_frames: Option<u64>,
    /// [`run_seeds`]: take no new seed once one has failed (the seeds already running
    /// finish and are reported). For a yes/no verdict, as the mutation run's
    /// (`tools/mutants.sh`); the summary then counts the seeds run.
    pub fail_fast: bool,
}
