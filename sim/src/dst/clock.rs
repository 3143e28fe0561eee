//! Virtual time: one true timeline for the simulator, and one drifting local clock per node.
//!
//! The simulator orders every event on the true timeline (nanoseconds since the start of
//! the run). A node never sees true time: it sees its machine's clock, which starts at an
//! offset and runs fast or slow by `drift_ppm` parts per million, as a quartz oscillator
//! does. The node's deadlines (from `poll_timeout`) are local instants; the simulator
//! converts them back to true time to schedule them. All arithmetic is integer, so a run
//! is bit-for-bit reproducible on any machine.

use twinloop::Instant;

/// Nanoseconds on the simulator's true timeline.
pub type Nanos = u64;

/// Nanoseconds per millisecond.
pub const NANOS_PER_MS: u64 = 1_000_000;
/// Nanoseconds per microsecond.
pub const NANOS_PER_US: u64 = 1_000;

const PPM: i128 = 1_000_000;

/// The largest drift the simulator draws, in parts per million. Conversions assume it.
pub const DRIFT_PPM_MAX: i32 = 5_000;

/// One machine's clock: `local = offset + true * (1 + drift_ppm / 10^6)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    /// The local reading at true time zero.
    pub offset_ns: u64,
    /// How fast the clock runs, in parts per million (positive: fast).
    pub drift_ppm: i32,
}

impl Clock {
    /// A clock with the given offset and drift; `drift_ppm` within `±DRIFT_PPM_MAX`.
    pub fn new(offset_ns: u64, drift_ppm: i32) -> Self {
        assert!(drift_ppm.abs() <= DRIFT_PPM_MAX, "drift {drift_ppm} ppm out of range");
        Clock { offset_ns, drift_ppm }
    }

    /// The local reading at true time `t`.
    pub fn local(&self, t: Nanos) -> Instant {
        let scaled = i128::from(t) * (PPM + i128::from(self.drift_ppm)) / PPM;
        let local = i128::from(self.offset_ns) + scaled;
        Instant::from_nanos(u64::try_from(local.max(0)).unwrap_or(u64::MAX))
    }

    /// The earliest true time at which the local clock reads at least `local`: when a
    /// node's deadline falls due. Never earlier than the deadline, at most one tick later.
    pub fn true_at(&self, local: Instant) -> Nanos {
        let since_offset = i128::from(local.as_nanos()) - i128::from(self.offset_ns);
        if since_offset <= 0 {
            return 0;
        }
        let rate = PPM + i128::from(self.drift_ppm);
        // Ceiling division; the integer truncation in `local` may still lag by one tick,
        // so step forward until the reading is reached (at most two steps: rate > 0.99).
        let mut t = (since_offset * PPM + rate - 1) / rate;
        for _ in 0..4 {
            if self.local(u64::try_from(t).unwrap_or(u64::MAX)) >= local {
                break;
            }
            t += 1;
        }
        u64::try_from(t).unwrap_or(u64::MAX)
    }

    /// A true duration measured as `local_ns` on this clock, rounded up.
    pub fn true_duration(&self, local_ns: u64) -> Nanos {
        let rate = PPM + i128::from(self.drift_ppm);
        u64::try_from((i128::from(local_ns) * PPM + rate - 1) / rate).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_without_drift_is_offset() {
        let c = Clock::new(5_000, 0);
        assert_eq!(c.local(0).as_nanos(), 5_000);
        assert_eq!(c.local(1_000).as_nanos(), 6_000);
        assert_eq!(c.true_at(Instant::from_nanos(6_000)), 1_000);
        assert_eq!(c.true_at(Instant::from_nanos(10)), 0);
    }

    #[test]
    fn clock_fast_reaches_deadline_early_slow_late() {
        let fast = Clock::new(0, 1_000);
        let slow = Clock::new(0, -1_000);
        let deadline = Instant::from_millis(1_000);
        // A fast clock reads one second after 999.000999 ms of true time.
        assert!(fast.true_at(deadline) < 1_000 * NANOS_PER_MS);
        assert!(slow.true_at(deadline) > 1_000 * NANOS_PER_MS);
        // 10^9 / 1.001 = 999_000_999.000999…, rounded up.
        assert_eq!(fast.true_duration(1_000 * NANOS_PER_MS), 999_001_000);
    }

    #[test]
    fn clock_true_at_is_the_first_instant_reading_the_deadline() {
        for drift in [-DRIFT_PPM_MAX, -333, -1, 0, 1, 77, DRIFT_PPM_MAX] {
            let c = Clock::new(123_457, drift);
            for local in [123_457u64, 123_458, 1_000_000, 987_654_321, 5_000_000_000_017] {
                let t = c.true_at(Instant::from_nanos(local));
                assert!(c.local(t).as_nanos() >= local, "drift {drift} local {local}");
                assert!(
                    t == 0 || c.local(t - 1).as_nanos() < local,
                    "drift {drift} local {local}"
                );
            }
        }
    }
}
