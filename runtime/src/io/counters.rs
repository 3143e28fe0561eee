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
    /// The loop thread's CPU share (the HMI status block's register 16).
    pub(super) cpu_share: CpuShare,
}

/// The share of wall time the loop's thread spent on a CPU, over the last whole window of
/// at least a second, in per mille (0..=1000): the node's load as an HMI or a router reads
/// it (docs/HMI.md, status register 16). The thread's CPU clock is read once a window, not
/// per cycle; being CPU time, a node the host deschedules does not look busier for it
/// (its lateness, register 12, shows that).
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct CpuShare {
    /// The window's start: the shell's clock and the thread's CPU time then, ns.
    start: Option<(Instant, u64)>,
    /// The last whole window's share, ‰; 0 until one window has passed.
    permille: u16,
}

impl CpuShare {
    /// The shortest window: shorter ones are not taken (a tick before it is a no-op).
    pub(super) const WINDOW: Duration = Duration::from_secs(1);

    /// Takes the thread's CPU time `cpu_ns` at `now`: ends the window (its share becomes
    /// the figure) once it spans [`Self::WINDOW`], and starts the next. A CPU clock that
    /// went back or cannot be read (0) gives 0 for that window, never a wrapped figure;
    /// more CPU than wall time (clock granularity) is 1000.
    pub(super) fn tick(&mut self, now: Instant, cpu_ns: u64) {
        let Some((at, cpu_at)) = self.start else {
            self.start = Some((now, cpu_ns));
            return;
        };
        let wall = now.saturating_since(at);
        if wall < Self::WINDOW {
            return;
        }
        let wall_ns = u64::try_from(wall.as_nanos()).unwrap_or(u64::MAX);
        let spent_ns = cpu_ns.saturating_sub(cpu_at);
        // wall_ns ≥ 1 s: no division by zero; the product saturates rather than wraps.
        let permille = (spent_ns.saturating_mul(1000) / wall_ns).min(1000);
        self.permille = u16::try_from(permille).unwrap_or(1000);
        self.start = Some((now, cpu_ns));
    }

    /// The last whole window's share, ‰ (0..=1000).
    pub(super) fn permille(&self) -> u16 {
        self.permille
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_share_tick_per_mille_of_each_whole_window() {
        let mut share = CpuShare::default();
        let t = |ms: u64| Instant::from_millis(ms);
        let ms = |n: u64| n * 1_000_000;
        share.tick(t(0), ms(7));
        assert_eq!(share.permille(), 0, "no whole window yet");
        // Shorter than a window: not taken, the window goes on.
        share.tick(t(500), ms(300));
        assert_eq!(share.permille(), 0);
        // 26 ms of CPU in one second: 2.6 %, 26 ‰.
        share.tick(t(1000), ms(33));
        assert_eq!(share.permille(), 26);
        // A window held up to four seconds: averaged over it (400 ms in 4 s: 100 ‰).
        share.tick(t(5000), ms(433));
        assert_eq!(share.permille(), 100);
    }

    #[test]
    fn cpu_share_tick_clock_back_or_overrun_bounded() {
        let mut share = CpuShare::default();
        let t = |ms: u64| Instant::from_millis(ms);
        share.tick(t(0), u64::MAX - 5);
        share.tick(t(1000), u64::MAX);
        assert_eq!(share.permille(), 0, "5 ns in a second");
        share.tick(t(2000), 0);
        assert_eq!(
            share.permille(),
            0,
            "a CPU clock gone back (or unreadable): 0, not wrapped"
        );
        share.tick(t(3000), 2_000_000_000);
        assert_eq!(share.permille(), 1000, "2 s of CPU in 1 s: capped");
        share.tick(t(4000), u64::MAX);
        assert_eq!(share.permille(), 1000, "a saturated product: capped, no overflow");
    }
}
