//! Deadlines to the microsecond.
//!
//! mio sleeps in whole milliseconds, rounded up, so every deadline of the core would fire
//! up to 1 ms late: the failure detector's two timers in a row (the silence window, then
//! the probe) would add up to 2 ms to a failover, a third of the fast profile's budget.
//! On Linux a `timerfd` in the poll set wakes the loop at the deadline itself; mio's
//! timeout stays behind it as a backstop. Elsewhere (or if the kernel refuses a timerfd)
//! the loop has mio's timeout only.

use crate::time::Instant;
use mio::{Registry, Token};

/// A one-shot timer that wakes the poll loop.
pub(super) struct PreciseTimer {
    #[cfg(target_os = "linux")]
    fd: std::os::fd::OwnedFd,
    /// The deadline the timer is set for; `None` when disarmed or fired.
    armed: Option<Instant>,
}

#[cfg(target_os = "linux")]
impl PreciseTimer {
    /// A disarmed timer registered with `registry` under `token`.
    pub(super) fn new(registry: &Registry, token: Token) -> std::io::Result<Self> {
        use rustix::time::{timerfd_create, TimerfdClockId, TimerfdFlags};
        use std::os::fd::AsRawFd;
        let fd = timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
        )?;
        registry.register(
            &mut mio::unix::SourceFd(&fd.as_raw_fd()),
            token,
            mio::Interest::READABLE,
        )?;
        Ok(PreciseTimer { fd, armed: None })
    }

    /// Sets the timer to fire at `deadline` (`now` is the shell's clock), unless it is
    /// already set for it.
    pub(super) fn arm(&mut self, now: Instant, deadline: Instant) -> std::io::Result<()> {
        use rustix::time::{timerfd_settime, Itimerspec, TimerfdTimerFlags, Timespec};
        if self.armed == Some(deadline) {
            return Ok(());
        }
        // A zero value would disarm the timer: a deadline due now fires in a nanosecond.
        let after = deadline.saturating_since(now).as_nanos().max(1);
        let value = Itimerspec {
            it_interval: Timespec { tv_sec: 0, tv_nsec: 0 },
            it_value: Timespec {
                tv_sec: (after / 1_000_000_000) as _,
                tv_nsec: (after % 1_000_000_000) as _,
            },
        };
        timerfd_settime(&self.fd, TimerfdTimerFlags::empty(), &value)?;
        self.armed = Some(deadline);
        Ok(())
    }

    /// The poll loop saw the timer's event: consume the expiration.
    pub(super) fn fired(&mut self) {
        let mut expirations = [0u8; 8];
        // Nothing to read (already consumed, re-armed meanwhile) is fine.
        let _ = rustix::io::read(&self.fd, &mut expirations);
        self.armed = None;
    }
}

#[cfg(not(target_os = "linux"))]
impl PreciseTimer {
    pub(super) fn new(_registry: &Registry, _token: Token) -> std::io::Result<Self> {
        Err(std::io::Error::new(std::io::ErrorKind::Unsupported, "no timerfd"))
    }

    pub(super) fn arm(&mut self, _now: Instant, _deadline: Instant) -> std::io::Result<()> {
        Ok(())
    }

    pub(super) fn fired(&mut self) {
        self.armed = None;
    }
}
