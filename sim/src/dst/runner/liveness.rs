//! The liveness phase and the time bounds: at the end of the safety phase everything
//! heals; the pair must converge within [`liveness_bound_ns`] and stay together, with
//! outputs flowing, for a settling time. Also the bound on a clean failover.

use super::world::{Event, Phase, Sim};
use crate::dst::app::Workload;
use crate::dst::checker::{pair_converged, pair_following, Invariant};
use crate::dst::clock::{Clock, Nanos, NANOS_PER_MS};
use crate::dst::options::Options;
use twinloop::Status;

/// The bound on a clean failover, in true nanoseconds: the primary's last message may
/// still be in flight when it dies (one link delay); the backup then waits the detection
/// window and the probe timeout on its own clock (scaled by its drift, rounded up); the
/// first output needs a frame in hand, which the source sends within a cycle and which
/// arrives within the I/O delay — two cycles, as DESIGN.md allows, cover one such wait
/// and a frame that arrived out of order; plus 1 µs of rounding.
pub fn failover_bound_ns(options: &Options, backup_clock: &Clock) -> Nanos {
    let c = &options.config;
    let detect_ns = backup_clock.true_duration((c.detection_window_ms + c.probe_timeout_ms) * NANOS_PER_MS);
    options.link_delay_ns_max() + detect_ns + 2 * options.cycle_ms * NANOS_PER_MS + options.io_delay_ns_max() + 1_000
}

/// The bound on convergence after healing, in true nanoseconds: two start-up waits (a
/// restarted node may wait twice: once for a tie, once for a backup with state to take
/// over), two detections with probe (a deposed or silent primary), a switchover timeout
/// (one under way when the faults healed), two state transfers (one may start before
/// the other is superseded), some retries and 50 cycles of catching up; doubled for drift.
pub fn liveness_bound_ns(options: &Options) -> Nanos {
    let c = &options.config;
    let transfer_ns = transfer_ns(options);
    let ms = NANOS_PER_MS;
    2 * (2 * c.startup_wait_ms * ms
        + 2 * (c.detection_window_ms + c.probe_timeout_ms) * ms
        + c.switchover_timeout_ms * ms
        + 2 * transfer_ns
        + 10 * c.retry_ms * ms
        + 50 * options.cycle_ms * ms)
}

/// One state transfer of the largest state the seed's application reaches, on whole
/// links, in true nanoseconds: its chunks (`ceil(bytes / transfer_chunk_bytes)`) go in
/// rounds of `transfer_window_chunks`, one more round for the beginning and the last
/// acknowledgement, each a round trip (two link delays and a heartbeat, for an
/// acknowledgement that waits on the link); the pacing (`transfer_chunks_per_ms`) adds
/// its time per chunk; four retry timeouts (`retry_ms`) cover chunks that a reordering
/// link made the primary go back for.
pub fn transfer_ns(options: &Options) -> Nanos {
    let c = &options.config;
    let rtt_ns = 2 * options.link_delay_ns_max() + c.heartbeat_interval_ms * NANOS_PER_MS;
    let state_bytes = options.state.bytes_max() as u64;
    let chunks = state_bytes.div_ceil(c.transfer_chunk_bytes).max(1);
    let rounds = chunks.div_ceil(c.transfer_window_chunks) + 1;
    let paced_ns = (chunks * NANOS_PER_MS)
        .checked_div(c.transfer_chunks_per_ms)
        .unwrap_or(0);
    rounds * rtt_ns + paced_ns + 4 * c.retry_ms * NANOS_PER_MS
}

/// The bound on one join after healing (invariant 11; and on the resync after a
/// divergence alarm, invariant 12), in true nanoseconds. A join begun before healing may
/// be one the primary gave up while the backup was cut off: the backup asks again after
/// its stall limit (two detection windows and four retries). Then at most two transfers
/// (a first one superseded when the backup, installed, finds itself lagging above
/// `max_lag_frames`), each after a frame in hand on the primary (a cycle and the I/O
/// delay: a primary that ran no frame snapshots after its first); doubled for clock
/// drift (up to 5,000 ppm) and the timers' rounding to whole milliseconds.
pub fn join_bound_ns(options: &Options) -> Nanos {
    let c = &options.config;
    let ms = NANOS_PER_MS;
    let stall_ns = (2 * c.detection_window_ms + 4 * c.retry_ms) * ms;
    let frame_in_hand_ns = options.cycle_ms * ms + options.io_delay_ns_max();
    2 * (stall_ns + 2 * (transfer_ns(options) + frame_in_hand_ns) + options.link_delay_ns_max())
}

/// How long the converged pair must stay converged, with outputs flowing: with a faulty
/// output path and the level refresh on, at least twice the levels' healing bound, so that
/// a level lost before the end is judged.
pub(super) fn settle_ns(options: &Options) -> Nanos {
    let c = &options.config;
    let settle_ns =
        (2 * (c.detection_window_ms + c.probe_timeout_ms) + 2 * c.heartbeat_interval_ms + 20 * options.cycle_ms)
            * NANOS_PER_MS;
    match level_heal_bound_ns(options) {
        Some(bound_ns) if !options.output_path.is_perfect() => settle_ns.max(2 * bound_ns),
        _ => settle_ns,
    }
}

/// The bound on a lost level's healing by the refresh (issue 22), in true nanoseconds,
/// from when it went out (or from when the output path healed and the pair converged, if
/// later): `None` with the refresh off. Its last copy went out at `t`; the entry is due at
/// `t + P` (P = `level_refresh_ms` on the primary's clock); a tick re-sends at most 16
/// due entries (`REFRESH_PER_TICK`) and comes again `P / 16` later while more wait, so with
/// more than 16 keys due together the last goes out by `t + P + 15 P / 16`, under `2 P`
/// (with at most 16, `t + P`). The copy then crosses the path (its longest delay). Here:
/// `2 P` scaled by the largest clock drift (5,000 ppm, rounded up to 1 %), the path's
/// delay, and 1 ms for the timers' rounding to whole milliseconds.
pub fn level_heal_bound_ns(options: &Options) -> Option<Nanos> {
    let period_ns = options.config.level_refresh_ms * NANOS_PER_MS;
    if period_ns == 0 {
        return None;
    }
    Some(2 * period_ns + 2 * period_ns / 100 + options.output_path.delay_ns_max() + NANOS_PER_MS)
}

impl<'a, W: Workload> Sim<'a, W> {
    pub(super) fn statuses(&self) -> [Option<Status>; 2] {
        [0, 1].map(|i| self.nodes[i].node.as_ref().map(|n| n.status()))
    }

    pub(super) fn converged(&self) -> bool {
        self.nodes.iter().all(|n| n.frozen_until.is_none()) && pair_converged(&self.statuses())
    }

    pub(super) fn heal(&mut self) {
        self.say(format_args!("HEAL: liveness phase"));
        self.phase = Phase::Liveness { heal_at: self.now };
        self.network.heal();
        self.output_path.heal();
        self.ack_path.heal();
        self.io_loss_ppm = [0, 0];
        self.io_bursts.clear();
        self.io_gap = [0, 0];
        self.io_stall_until = [0, 0];
        self.commit_hole = None;
        self.restart_cut = [None; 2];
        self.release_loss = 0;
        // A restart of the source under way ends its silence now.
        if let Some((until, _)) = &mut self.source_silent {
            *until = (*until).min(self.now);
        }
        self.faults_active = 0;
        for i in 0..2 {
            self.thaw(i);
        }
        for i in 0..2 {
            if self.nodes[i].node.is_none() {
                self.stats.faults.restart_heal += 1;
                self.start(i, true);
            }
        }
        self.checker.drop_pending_failovers();
        self.checker.on_heal(self.now, join_bound_ns(self.options));
        let deadline = self.now + liveness_bound_ns(self.options);
        self.schedule(deadline, Event::LivenessDeadline);
    }

    /// In the liveness phase, after every event: once the pair has converged, it must
    /// stay so for the settling time.
    pub(super) fn check_converged(&mut self) {
        if let Phase::Liveness { heal_at } = self.phase {
            if self.converged() {
                let took_ns = self.now - heal_at;
                self.stats.liveness_ns = Some(took_ns);
                self.say(format_args!("converged {:.3} ms after healing", took_ns as f64 / 1e6));
                self.checker.on_output_path_healed(self.now);
                self.phase = Phase::Settling {
                    accepted_at_convergence: self.sink.accepted.len(),
                };
                let end = self.now + settle_ns(self.options);
                self.schedule(end, Event::End);
            }
        }
    }

    /// The liveness bound passed without convergence.
    pub(super) fn liveness_deadline(&mut self) {
        if let Phase::Liveness { heal_at } = self.phase {
            let detail = format!(
                "no single primary with an in-sync backup {:.3} ms after healing; {}",
                (self.now - heal_at) as f64 / 1e6,
                self.describe_nodes()
            );
            self.checker.violation(Invariant::Liveness, self.now, detail);
            self.check_events_applied();
            self.phase = Phase::Done;
        }
    }

    /// The end of the settling time: the converged pair must still be together, with
    /// new outputs accepted, and the primary sending no state transfer: its backup
    /// follows with state (a transfer it asked for twice, on two links, is dropped once
    /// the primary hears it in sync; the settling time holds many retry timers).
    pub(super) fn settle_end(&mut self) {
        if let Phase::Settling {
            accepted_at_convergence,
        } = self.phase
        {
            // Still one primary with a following backup (a burst of catching up
            // may make it lag for a moment), and outputs flowing.
            let following = self.nodes.iter().all(|n| n.frozen_until.is_none()) && pair_following(&self.statuses());
            if !following {
                let detail = format!("the pair did not stay together; {}", self.describe_nodes());
                self.checker.violation(Invariant::Liveness, self.now, detail);
            } else if let Some((i, progress)) = (0..2).find_map(|i| {
                let n = self.nodes[i].node.as_ref()?;
                (n.role() == twinloop::Role::Primary).then_some((i, n.transfer_progress()?))
            }) {
                let detail = format!(
                    "the primary (node {i}) still sends a state transfer to its following backup ({} of {} bytes); {}",
                    progress.bytes_done,
                    progress.bytes_total,
                    self.describe_nodes()
                );
                self.checker.violation(Invariant::Liveness, self.now, detail);
            } else if self.sink.accepted.len() <= accepted_at_convergence {
                self.checker.violation(
                    Invariant::Liveness,
                    self.now,
                    "converged, but no new output reached the sink while settling".to_string(),
                );
            }
            // Invariant 16 at the end of every run that converged, not only of one that
            // did not (before 2026-11-27 only `liveness_deadline` called it: a run that
            // settled was never judged, and a node that never re-sent a lost event passed).
            self.check_events_applied();
            self.phase = Phase::Done;
        }
    }

    /// Invariant 16 (`--acks`): the primary at the end has applied every event it emitted
    /// in its epoch, up to a margin for the last re-sends (10 of the longest backoff).
    fn check_events_applied(&mut self) {
        let Some((i, epoch, retry_max_ms)) = (0..2).find_map(|i| {
            let n = self.nodes[i].node.as_ref()?;
            (n.role() == twinloop::Role::Primary).then(|| (i, n.epoch(), n.config().event_retry_max_ms))
        }) else {
            return;
        };
        let margin = 10 * retry_max_ms * NANOS_PER_MS;
        let sink = &self.sink;
        let accepted = |id: (u64, u8)| sink.accepted.contains_key(&id);
        self.checker.check_events_applied(self.now, i, epoch, margin, &accepted);
    }
}
