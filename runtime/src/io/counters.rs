//! The shell's own counters (frames, outputs, console, loop lateness) and the per-second
//! frame rates the status shows.

use super::*;

/// Counters of the frames and outputs paths.
#[derive(Debug, Default, Clone)]
pub(super) struct IoCounters {
    pub(super) frames_received: u64,
    /// Frames from a source not in `frames.sources`.
    pub(super) frames_foreign_source: u64,
    pub(super) frames_rejected: u64,
    pub(super) frames_rejected_by: std::collections::BTreeMap<&'static str, u64>,
    pub(super) outputs_sent: u64,
    pub(super) output_send_errors: u64,
    pub(super) console_requests: u64,
    pub(super) console_bad_key: u64,
    pub(super) epochs_persisted: u64,
    /// The most a deadline of the core was handled after it fell due, in ns.
    pub(super) lateness_max_ns: u64,
    /// Deadlines handled more than [`LATE_WAKE`] after they fell due.
    pub(super) late_wakes: u64,
    /// The most lateness per whole second of uptime, for the last two seconds seen:
    /// `(second, ns)`.
    pub(super) lateness_recent: [(u64, u64); 2],
    /// The longest the console's share of one loop turn took, in ns.
    pub(super) console_turn_max_ns: u64,
    /// The most CPU time the loop's thread spent answering requests in one turn, in ns
    /// (what the console itself costs, without the host descheduling the node).
    pub(super) console_turn_cpu_max_ns: u64,
    /// Bytes sent and received on the bulk sockets (state transfers).
    pub(super) bulk_bytes_sent: u64,
    pub(super) bulk_bytes_received: u64,
    /// Hook runs by outcome: succeeded, failed, spawn failed, timed out, dropped.
    pub(super) hook_runs: [u64; 5],
}

/// CPU time of the calling thread, in ns; 0 where it cannot be read. Read only on turns
/// that answer a request, so that it adds no system call to a cycle without console work.
pub(super) fn thread_cpu_ns() -> u64 {
    #[cfg(target_os = "linux")]
    {
        // Through the C library, not rustix's own vDSO lookup: that one faults under
        // valgrind (no vDSO mapped where the auxiliary vector says), and `bench counts`
        // runs whole nodes under callgrind.
        let Ok(t) = nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID) else {
            return 0;
        };
        u64::try_from(t.tv_sec())
            .unwrap_or(0)
            .saturating_mul(1_000_000_000)
            .saturating_add(u64::try_from(t.tv_nsec()).unwrap_or(0))
    }
    #[cfg(not(target_os = "linux"))]
    {
        0
    }
}

impl IoCounters {
    pub(super) fn note_lateness(&mut self, now: Instant, late: Duration) {
        let ns = u64::try_from(late.as_nanos()).unwrap_or(u64::MAX);
        self.lateness_max_ns = self.lateness_max_ns.max(ns);
        let second = now.as_nanos() / 1_000_000_000;
        if self.lateness_recent[1].0 != second {
            self.lateness_recent = [self.lateness_recent[1], (second, 0)];
        }
        self.lateness_recent[1].1 = self.lateness_recent[1].1.max(ns);
    }

    /// The most lateness within the current and the previous whole second.
    pub(super) fn lateness_recent_max_ns(&self, now: Instant) -> u64 {
        let second = now.as_nanos() / 1_000_000_000;
        self.lateness_recent
            .iter()
            .filter(|(s, _)| second.saturating_sub(*s) <= 1)
            .map(|(_, ns)| *ns)
            .max()
            .unwrap_or(0)
    }
}

/// Stale and rejected frames per second, measured over whole seconds of the shell's
/// clock: the last second's figures are shown until the next second ends.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct FrameRates {
    pub(super) window_start: Option<Instant>,
    pub(super) stale_at_start: u64,
    pub(super) rejected_at_start: u64,
    pub(super) stale_per_s: u64,
    pub(super) rejected_per_s: u64,
}

impl FrameRates {
    /// A second has passed since the window began (or none began yet).
    pub(super) fn due(&self, now: Instant) -> bool {
        self.window_start
            .is_none_or(|start| now.saturating_since(start) >= Duration::from_secs(1))
    }

    pub(super) fn tick(&mut self, now: Instant, stale: u64, rejected: u64) {
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
