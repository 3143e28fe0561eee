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

/// A timer already set for an instant before the core's deadline is left as it is while
/// that instant is further than this from now. A deadline the core pushes back at every
/// frame (a heartbeat or silence timer 20–100 ms out) was a `timerfd_settime` in every
/// cycle (issue 20); left alone, the timer is moved once it comes this close, on a wake-up
/// for a frame, or fires early at worst, and the loop, finding nothing due, sets it
/// again. It never fires late: a deadline earlier than the timer's is always set. At a
/// 1 ms cycle the loop wakes every millisecond, so 2 ms leaves it a wake-up to move the
/// timer in; a deadline nearer than this (the fast profile's 1 ms heartbeats) is set at
/// every change, as before.
pub(super) const REARM_WITHIN: std::time::Duration = std::time::Duration::from_millis(2);

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
    /// already set for it, or set earlier and not due within [`REARM_WITHIN`] (see there).
    pub(super) fn arm(&mut self, now: Instant, deadline: Instant) -> std::io::Result<()> {
        use rustix::time::{timerfd_settime, Itimerspec, TimerfdTimerFlags, Timespec};
        if self.armed == Some(deadline) {
            return Ok(());
        }
        if self
            .armed
            .is_some_and(|armed| armed < deadline && armed.saturating_since(now) > REARM_WITHIN)
        {
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

    /// The poll loop saw the timer's event. The expiration count is left unread (issue
    /// 20: reading it was a system call at every timer wake-up, 0.04 a cycle of a lone
    /// node): mio registers the timer edge-triggered, and the kernel raises a new edge at
    /// every expiration whether or not the count was read, while the next
    /// `timerfd_settime` sets the count back to 0. Nothing reads the count.
    pub(super) fn fired(&mut self) {
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

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn timer() -> PreciseTimer {
        let poll = mio::Poll::new().unwrap();
        let timer = PreciseTimer::new(poll.registry(), Token(2)).unwrap();
        drop(poll);
        timer
    }

    #[test]
    fn timer_pushed_back_far_ahead_is_not_set_again() {
        let ms = Instant::from_millis;
        let mut t = timer();
        t.arm(ms(1), ms(31)).unwrap();
        assert_eq!(t.armed, Some(ms(31)));
        // The deadline moves a cycle later at every frame: the timer stays, earlier.
        for now in 2..29 {
            t.arm(ms(now), ms(now + 30)).unwrap();
            assert_eq!(t.armed, Some(ms(31)), "at {now} ms");
        }
        // Within REARM_WITHIN of firing: moved to the deadline.
        t.arm(ms(29), ms(59)).unwrap();
        assert_eq!(t.armed, Some(ms(59)));
    }

    #[test]
    fn timer_fired_leaves_the_expiration_unread_and_fires_again() {
        let ms = Instant::from_millis;
        let mut poll = mio::Poll::new().unwrap();
        let mut t = PreciseTimer::new(poll.registry(), Token(2)).unwrap();
        let mut events = mio::Events::with_capacity(4);
        let bound = std::time::Duration::from_secs(5);
        let mut fire = |t: &mut PreciseTimer, now| {
            t.arm(ms(now), ms(now + 1)).unwrap();
            events.clear();
            // Bounded: a timer 1 ms out that has not fired in 5 s never will.
            poll.poll(&mut events, Some(bound)).unwrap();
            let fired = events.iter().any(|e| e.token() == Token(2));
            t.fired();
            fired
        };
        assert!(fire(&mut t, 0), "first expiration");
        // The first expiration was left unread: setting the timer again still raises an
        // edge (a registration edge-triggered, a wake-up at every expiration).
        assert!(fire(&mut t, 10), "second expiration, the first unread");
        // `fired` made no read: the expiration is still there (with a read in `fired`
        // this one failed with EAGAIN).
        let mut count = [0u8; 8];
        assert_eq!(rustix::io::read(&t.fd, &mut count).ok(), Some(8), "expiration consumed");
    }

    #[test]
    fn timer_deadline_brought_forward_is_set_at_once() {
        let ms = Instant::from_millis;
        let mut t = timer();
        t.arm(ms(1), ms(31)).unwrap();
        t.arm(ms(2), ms(10)).unwrap();
        assert_eq!(t.armed, Some(ms(10)));
        // Near deadlines (the fast profile's) follow every change.
        t.arm(ms(9), ms(10) + std::time::Duration::from_micros(1300)).unwrap();
        assert_eq!(t.armed, Some(ms(10) + std::time::Duration::from_micros(1300)));
        // Fired: set again whatever the deadline.
        t.fired();
        t.arm(ms(12), ms(40)).unwrap();
        assert_eq!(t.armed, Some(ms(40)));
    }
}
