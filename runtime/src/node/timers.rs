//! The timer table: every deadline the node wakes for, named in one place.
//! [`Node::poll_timeout`] is the earliest entry; [`Node::handle_timeout`] runs every
//! check, each against the same deadline its entry computes, so a timer that fires
//! early finds nothing due and one that fires late finds it overdue, never missed.
//! A new deadline is a new [`Timer`] here, or it is never woken for.

use super::Node;
use crate::app::App;
use crate::time::Instant;

/// A source of deadlines; see [`Node::timer`] for where each is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Timer {
    /// A heartbeat due on some link (after its silence, or the refresh of a busy link),
    /// or the end of a quiet backup's quiet: the peer's sign of life and round trips.
    Heartbeat,
    /// The start-up wait: a starting node leads, or waits again (election).
    Startup,
    /// The backup's silence window (it probes), a link's silence (down), or a primary's
    /// backup silent (no longer paired): the detector.
    Detection,
    /// The probe's answer: none by then, the backup takes over.
    Probe,
    /// A group's vote round: no majority by then, it is given up (`succession.rs`).
    Vote,
    /// A backup's fetch of missing frames, asked again.
    Fetch,
    /// A state transfer: the sender's go-back-N retry or paced chunks, the receiver's
    /// retry of its join.
    Transfer,
    /// A switchover step: its retry or its deadline (abort, or fenced).
    Switchover,
    /// The primary's input path: silent for the limit, or the end of the handover hold.
    Input,
    /// The primary's level refresh: the earliest key due, or the next slice of a backlog
    /// (`refresh.rs`).
    Refresh,
    /// An operator's write: a backup's resend to the primary, or its answer's deadline
    /// (`hmi.rs`).
    Hmi,
    /// Acknowledged events: the earliest re-send, a sink's silence, or an alarm to raise
    /// (`acks.rs`).
    Acks,
    /// Acked outputs: the oldest held output's backup window, or an in-sync backup's
    /// silence that releases it; a backup's repeated ack (`release.rs`).
    Release,
}

impl Timer {
    /// The whole table.
    pub(super) const ALL: [Timer; 13] = [
        Timer::Heartbeat,
        Timer::Startup,
        Timer::Detection,
        Timer::Probe,
        Timer::Fetch,
        Timer::Transfer,
        Timer::Switchover,
        Timer::Input,
        Timer::Refresh,
        Timer::Hmi,
        Timer::Vote,
        Timer::Acks,
        Timer::Release,
    ];
}

impl<A: App> Node<A> {
    /// When `timer` is due next (`None`: not armed).
    pub(super) fn timer(&self, timer: Timer) -> Option<Instant> {
        match timer {
            Timer::Heartbeat => self.heartbeat_deadline(),
            Timer::Startup => self.startup_deadline,
            Timer::Detection => self.detection_deadline(),
            Timer::Probe => self.probe.map(|(_, deadline)| deadline),
            Timer::Fetch => self.fetch_next,
            Timer::Transfer => self.transfer_deadline(),
            Timer::Switchover => self.switchover.deadline(),
            Timer::Input => self.input_deadline(),
            Timer::Refresh => self.refresh_deadline(),
            Timer::Hmi => self.hmi_deadline(),
            Timer::Vote => self.vote.map(|round| round.deadline),
            Timer::Acks => self.acks_deadline(),
            Timer::Release => self.release_deadline(),
        }
    }

    /// The earliest deadline in the table, and which timer it is.
    pub(super) fn timer_next(&self) -> Option<(Instant, Timer)> {
        Timer::ALL
            .iter()
            .filter_map(|&t| self.timer(t).map(|at| (at, t)))
            .min_by_key(|&(at, _)| at)
    }
}
