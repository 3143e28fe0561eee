//! The clock: the only place in twinloop that reads the time.
//!
//! The core takes `now` as an argument ([`crate::Instant`], nanoseconds since an origin
//! the caller picks). The shell's origin is its start, so instants stay small and a
//! restart begins again from zero; the core never compares instants across restarts.
//! Wall-clock time is read only to stamp journal events and log lines for people.

use crate::time::Instant;
use std::time::{SystemTime, UNIX_EPOCH};

/// The monotonic clock of one shell, and the wall clock for people.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    origin: std::time::Instant,
}

impl Clock {
    /// What [`Clock::now`] reads at the clock's start.
    pub const START: Instant = Instant::from_nanos(1_000_000);

    /// A clock whose origin is now.
    #[allow(clippy::disallowed_methods)] // The shell is where time is read.
    pub fn start() -> Self {
        Clock {
            origin: std::time::Instant::now(),
        }
    }

    /// Now, as the core counts time. Starts at 1 ms rather than zero, because the core
    /// uses 0 for "never" in a few places (heartbeat echoes).
    #[allow(clippy::disallowed_methods)] // The shell is where time is read.
    pub fn now(&self) -> Instant {
        let nanos = std::time::Instant::now()
            .saturating_duration_since(self.origin)
            .as_nanos();
        Instant::from_nanos(
            u64::try_from(nanos)
                .unwrap_or(u64::MAX)
                .saturating_add(Self::START.as_nanos()),
        )
    }

    /// The standard-library instant of a core instant (for deadlines the shell keeps).
    pub fn to_std(&self, at: Instant) -> std::time::Instant {
        self.origin + std::time::Duration::from_nanos(at.as_nanos().saturating_sub(1_000_000))
    }

    /// Wall-clock time now, in milliseconds since the Unix epoch.
    pub fn unix_ms_now(&self) -> u64 {
        unix_ms()
    }

    /// Wall-clock time of a core instant in the past (or now), in ms since the Unix epoch.
    pub fn unix_ms_at(&self, at: Instant) -> u64 {
        let ago_ms = self.now().saturating_since(at).as_millis() as u64;
        unix_ms().saturating_sub(ago_ms)
    }
}

/// Wall-clock time, in milliseconds since the Unix epoch (0 if the clock is before 1970).
#[allow(clippy::disallowed_methods)] // Timestamps for people, never for decisions.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Wall-clock time, in nanoseconds since the Unix epoch: the sync-link session number,
/// which must grow from one start of a node to the next.
#[allow(clippy::disallowed_methods)] // A session id, never a timing decision.
pub fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// `unix_ms` as an RFC 3339 UTC timestamp with milliseconds: `2025-03-01T12:00:00.250Z`.
pub fn rfc3339_ms(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        unix_ms % 1000
    )
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 to (year, month, day).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_rfc3339_known_dates() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        // 2000-02-29 (a leap day in a century leap year) 12:34:56.789.
        assert_eq!(rfc3339_ms(951_827_696_789), "2000-02-29T12:34:56.789Z");
        assert_eq!(rfc3339_ms(1_735_689_600_000), "2025-01-01T00:00:00.000Z");
    }

    #[test]
    fn clock_is_monotonic_and_starts_after_zero() {
        let clock = Clock::start();
        let a = clock.now();
        let b = clock.now();
        assert!(a.as_nanos() >= 1_000_000);
        assert!(b >= a);
    }
}
