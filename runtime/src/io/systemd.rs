//! systemd's notify protocol (sd_notify(3)) for a node run as a `Type=notify` service
//! (configs/systemd/, docs/OPERATIONS.md), through the `sd-notify` crate:
//!
//! - `READY=1` once the node has a role (primary or backup): a node still listening for
//!   a primary, or held waiting for an operator, is not ready, so units ordered after it
//!   wait (the unit sets `TimeoutStartSec=infinity`: a held node must not be killed);
//! - `WATCHDOG=1` from the control loop itself, every half of `WATCHDOG_USEC`: a loop
//!   that stops turning stops the pings, systemd kills the node (`WatchdogSec=`), and the
//!   backup, hearing nothing, takes over;
//! - `STATUS=` with role, sync state, epoch and frame, at each role or epoch change and
//!   with each watchdog ping;
//! - `STOPPING=1` when a stop request is taken.
//!
//! Without `NOTIFY_SOCKET` (not run by systemd) nothing is sent and nothing costs. With
//! it, a notification is one datagram on a fresh socket (the crate's way: about five
//! system calls and a small allocation), at most once per role change plus once per half
//! watchdog period — never per cycle. A failed send is logged once and the node goes on:
//! systemd's side being gone must not stop the plant.

use super::names;
use crate::node::{Role, SyncState};
use crate::time::Instant;
use core::time::Duration;
use sd_notify::NotifyState;

/// The shortest ping period taken from `WATCHDOG_USEC` (a smaller value is raised to
/// it): pings every cycle would cost the loop more than they protect.
pub const PING_PERIOD_MIN: Duration = Duration::from_millis(10);

/// The node's notifications to systemd.
#[derive(Debug)]
pub struct Notifier {
    /// `NOTIFY_SOCKET` was set at start.
    on: bool,
    /// Half the watchdog period systemd asked for; `None`: no watchdog.
    ping_period: Option<Duration>,
    next_ping: Option<Instant>,
    ready_sent: bool,
    stopping_sent: bool,
    /// Role, sync state and epoch of the last STATUS sent.
    told: Option<(Role, SyncState, u64)>,
    /// [`Notifier::turn_with`]: the key of the last STATUS sent.
    told_key: Option<u64>,
    /// A send failed (logged once).
    failed: bool,
    /// Notifications sent (each one datagram).
    pub sent: u64,
}

impl Notifier {
    /// From the environment systemd sets: `NOTIFY_SOCKET`, and `WATCHDOG_USEC` (with
    /// `WATCHDOG_PID`, which must be this process when set).
    pub fn from_env(now: Instant) -> Notifier {
        let on = std::env::var_os("NOTIFY_SOCKET").is_some_and(|s| !s.is_empty());
        let ping_period = if on {
            sd_notify::watchdog_enabled().map(|period| (period / 2).max(PING_PERIOD_MIN))
        } else {
            None
        };
        Notifier {
            on,
            ping_period,
            next_ping: ping_period.map(|_| now),
            ready_sent: false,
            stopping_sent: false,
            told: None,
            told_key: None,
            failed: false,
            sent: 0,
        }
    }

    /// Whether systemd asked for notifications.
    pub fn enabled(&self) -> bool {
        self.on
    }

    /// The watchdog ping period (half of `WatchdogSec=`), if systemd set one.
    pub fn ping_period(&self) -> Option<Duration> {
        self.ping_period
    }

    /// When the loop must wake for the next watchdog ping.
    pub fn next_due(&self) -> Option<Instant> {
        self.next_ping
    }

    /// One loop turn: READY once there is a role, STATUS on a change, WATCHDOG when due.
    /// Constant work when nothing is due.
    pub fn turn(&mut self, now: Instant, role: Role, sync: SyncState, epoch: u64, frame: u64) {
        if !self.on || self.stopping_sent {
            return;
        }
        let changed = self.told != Some((role, sync, epoch));
        let ready = !self.ready_sent && role != Role::Starting;
        let ping = self.next_ping.is_some_and(|at| now >= at);
        if !(changed || ready || ping) {
            return;
        }
        let status = format!(
            "{} {} epoch {epoch} frame {frame}",
            names::role(role),
            names::sync(sync)
        );
        let mut states = Vec::with_capacity(3);
        if ready {
            states.push(NotifyState::Ready);
        }
        if ping {
            states.push(NotifyState::Watchdog);
        }
        states.push(NotifyState::Status(&status));
        self.send(&states);
        self.ready_sent |= ready;
        self.told = Some((role, sync, epoch));
        if ping {
            if let Some(period) = self.ping_period {
                self.next_ping = Some(now + period);
            }
        }
    }

    /// One loop turn of another program on the runtime (the I/O gateway): READY once
    /// `ready` holds, STATUS when `key` changes (or with a ping), WATCHDOG when due;
    /// `status` is called only when a notification goes.
    pub fn turn_with(&mut self, now: Instant, ready: bool, key: u64, status: impl FnOnce() -> String) {
        if !self.on || self.stopping_sent {
            return;
        }
        let changed = self.told_key != Some(key);
        let ready = !self.ready_sent && ready;
        let ping = self.next_ping.is_some_and(|at| now >= at);
        if !((changed && self.ready_sent) || ready || ping) {
            return;
        }
        let status = status();
        let mut states = Vec::with_capacity(3);
        if ready {
            states.push(NotifyState::Ready);
        }
        if ping {
            states.push(NotifyState::Watchdog);
        }
        states.push(NotifyState::Status(&status));
        self.send(&states);
        self.ready_sent |= ready;
        self.told_key = Some(key);
        if ping {
            if let Some(period) = self.ping_period {
                self.next_ping = Some(now + period);
            }
        }
    }

    /// A stop request was taken: `STOPPING=1` (once); no more pings.
    pub fn stopping(&mut self, why: &str) {
        if !self.on || self.stopping_sent {
            return;
        }
        let status = format!("stopping: {why}");
        self.send(&[NotifyState::Stopping, NotifyState::Status(&status)]);
        self.stopping_sent = true;
        self.next_ping = None;
    }

    fn send(&mut self, states: &[NotifyState<'_>]) {
        match sd_notify::notify(states) {
            Ok(()) => self.sent += 1,
            Err(e) if !self.failed => {
                self.failed = true;
                super::log::warn(format_args!(
                    "systemd notification failed ({e}): NOTIFY_SOCKET is set but nothing listens; \
                     the node goes on (later failures are not logged)"
                ));
            }
            Err(_) => {}
        }
    }
}
