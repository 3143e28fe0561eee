//! The driver: one seed run with a panic caught, many seeds on a few worker threads,
//! and their results combined in seed order.

use super::world::Sim;
use super::*;
use crate::dst::app::WorkloadFactory;
use crate::dst::checker::Exceptions;
use crate::dst::clock::Nanos;
use crate::dst::options::Options;
use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use twinloop::digest::Fnv64;

/// Runs one seed with the runtime's test application. Never panics: a panic is caught
/// and reported as a [`FailureKind::Panic`].
pub fn run_seed(seed: u64, run: RunConfig) -> SeedReport {
    run_seed_with(seed, run, &crate::dst::app::TestWorkloadFactory)
}

/// Runs one seed with the workload `factory` makes for it.
pub fn run_seed_with<F: WorkloadFactory>(seed: u64, run: RunConfig, factory: &F) -> SeedReport {
    let mut options = Options::draw(seed);
    if run.acked {
        // Acked outputs (issue 16): the level refresh repeats a level's id by design, the
        // opposite of what a sink that cannot deduplicate needs: off in these runs.
        options.config.outputs_release = twinloop::config::OutputsRelease::Acked;
        options.config.level_refresh_ms = 0;
    }
    let summary = options.summary();
    let profile = options.profile.name();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let workload = factory.make(&options);
        let mut sim = Sim::new(&options, &workload, run);
        sim.run();
        sim.into_report(summary.clone())
    }));
    match outcome {
        Ok(report) => report,
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic payload".to_string());
            SeedReport {
                seed,
                summary,
                failure: Some(FailureKind::Panic),
                violations: Vec::new(),
                violation_count: 1,
                panic: Some(message),
                trace_hash: 0,
                stats: RunStats::default(),
                profile,
            }
        }
    }
}

/// Every seed's results combined, in seed order.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// The first seed.
    pub seed_first: u64,
    /// Seeds run.
    pub seeds: u64,
    /// Seeds that failed, with their kind (kept in order; all of them).
    pub failed: Vec<(u64, FailureKind)>,
    /// Violations over all seeds.
    pub violations: u64,
    /// Takeovers.
    pub failovers: u64,
    /// Completed planned switchovers.
    pub switchovers: u64,
    /// Faults injected.
    pub faults: FaultCounts,
    /// Every failover time, ns.
    pub failover_ns: Vec<Nanos>,
    /// Failover times per profile, ns.
    pub failover_ns_by_profile: BTreeMap<&'static str, Vec<Nanos>>,
    /// Failovers checked against their bound.
    pub failovers_checked: u64,
    /// Convergence times after healing, ns.
    pub liveness_ns: Vec<Nanos>,
    /// Allowed differences and losses.
    pub exceptions: Exceptions,
    /// False deaths (probes answered).
    pub false_deaths: u64,
    /// False-death freezes watched.
    pub false_deaths_watched: u64,
    /// Restarts next to a healthy primary watched.
    pub restarts_watched: u64,
    /// Calm switchovers watched.
    pub switchovers_watched: u64,
    /// Alarms.
    pub alarms_input_lost: u64,
    /// Divergence alarms.
    pub alarms_divergence: u64,
    /// `CommitLost` alarms.
    pub alarms_commit_lost: u64,
    /// Injected divergences: fired, alarmed, absorbed, in sync again.
    pub divergences: [u64; 4],
    /// Joins judged after healing.
    pub joins_watched: u64,
    /// The longest of them, ns.
    pub join_ns_max: Nanos,
    /// The largest share of its bound one of them took, in thousandths.
    pub join_bound_share_max: u64,
    /// Frames sent by the sources.
    pub frames: u64,
    /// Outputs accepted by the sinks.
    pub accepted: u64,
    /// Duplicates dropped by the sinks.
    pub duplicates: u64,
    /// Stale outputs rejected by the sinks.
    pub stale: u64,
    /// Outputs rejected by the sinks as older than their dedup window.
    pub too_old: u64,
    /// Levels the sinks refused as older than their key's newest.
    pub superseded: u64,
    /// Epoch leases lapsed.
    pub lapses: u64,
    /// Events processed.
    pub events: u64,
    /// State transfers completed.
    pub transfers: u64,
    /// Frames without an accepted output, between each run's first and last.
    pub frames_without_output: u64,
    /// The longest run of frames without an accepted output in any run.
    pub output_gap_frames_max: u64,
    /// Switchover commands refused.
    pub switchovers_refused: u64,
    /// Input handovers started.
    pub input_handovers: u64,
    /// Dead inputs of a calm pair's primary watched for a handover (invariant 24).
    pub handovers_watched: u64,
    /// Background epoch writes asked for.
    pub epoch_writes_later: u64,
    /// Background epoch writes lost in a crash.
    pub epoch_writes_lost: u64,
    /// Seeds with an attacker on the links.
    pub attacked_seeds: u64,
    /// The attacker's datagrams delivered to a running node.
    pub attack_delivered: u64,
    /// Of which judged as ones the core must reject (invariant 13).
    pub attack_judged: u64,
    /// Of which tampered transfer chunks (unkeyed seeds).
    pub attack_tampered: u64,
    /// `TransferRejected` alarms raised.
    pub alarms_transfer_rejected: u64,
    /// Seeds whose output path to the sink was not perfect (issue 22).
    pub output_path_seeds: u64,
    /// Of which with the level refresh on.
    pub output_path_refresh_seeds: u64,
    /// Output copies the output paths lost (loss or an outage).
    pub output_path_lost: u64,
    /// Output copies the output paths brought after a higher epoch passed the fence.
    pub output_path_overtaken: u64,
    /// The longest a level waited for the sink after healing, in any run, ns.
    pub level_heal_ns_max: Nanos,
    /// Combined trace hash, folded in seed order.
    pub trace_hash: u64,
    hasher: Fnv64,
}

impl Summary {
    /// An empty summary starting at `seed_first`.
    pub fn new(seed_first: u64) -> Self {
        Summary {
            seed_first,
            hasher: Fnv64::new(),
            ..Summary::default()
        }
    }

    /// Adds the next seed's report; reports must come in seed order.
    pub fn add(&mut self, r: &SeedReport) {
        assert_eq!(
            r.seed,
            self.seed_first.wrapping_add(self.seeds),
            "reports out of seed order"
        );
        self.seeds += 1;
        if let Some(kind) = r.failure {
            self.failed.push((r.seed, kind));
        }
        self.violations += r.violation_count;
        let s = &r.stats;
        self.failovers += s.takeovers;
        self.switchovers += s.switchovers;
        self.faults.add(&s.faults);
        self.failover_ns.extend_from_slice(&s.failover_ns);
        self.failover_ns_by_profile
            .entry(r.profile)
            .or_default()
            .extend_from_slice(&s.failover_ns);
        self.failovers_checked += s.failovers_checked;
        self.liveness_ns.extend(s.liveness_ns);
        let e = &mut self.exceptions;
        e.input_lost += s.exceptions.input_lost;
        e.split_brain += s.exceptions.split_brain;
        e.cold_start += s.exceptions.cold_start;
        e.crash_window += s.exceptions.crash_window;
        e.lost_deposed += s.exceptions.lost_deposed;
        e.lost_orphaned_never_heard += s.exceptions.lost_orphaned_never_heard;
        e.lost_orphaned_write_lost += s.exceptions.lost_orphaned_write_lost;
        e.lost_unverified += s.exceptions.lost_unverified;
        e.lost_crashed += s.exceptions.lost_crashed;
        e.replay_gap += s.exceptions.replay_gap;
        e.level_superseded += s.exceptions.level_superseded;
        e.lost_network += s.exceptions.lost_network;
        e.level_lost_network += s.exceptions.level_lost_network;
        e.acked_unguarded += s.exceptions.acked_unguarded;
        e.acked_uncertain += s.exceptions.acked_uncertain;
        e.acked_held_at_end += s.exceptions.acked_held_at_end;
        e.acked_never_released += s.exceptions.acked_never_released;
        e.acked_released_fenced += s.exceptions.acked_released_fenced;
        e.level_before_cold_start += s.exceptions.level_before_cold_start;
        e.level_parted += s.exceptions.level_parted;
        self.output_path_seeds += u64::from(s.output_path_faulty);
        self.output_path_refresh_seeds += u64::from(s.output_path_faulty && s.level_refresh);
        self.output_path_lost += s.output_path_lost;
        self.output_path_overtaken += s.output_path_overtaken;
        self.level_heal_ns_max = self.level_heal_ns_max.max(s.level_heal_ns_max);
        self.false_deaths += s.false_deaths;
        self.false_deaths_watched += s.false_deaths_watched;
        self.restarts_watched += s.restarts_watched;
        self.switchovers_watched += s.switchovers_watched;
        self.alarms_input_lost += s.alarms_input_lost;
        self.alarms_divergence += s.alarms_divergence;
        self.alarms_commit_lost += s.alarms_commit_lost;
        for (total, one) in self.divergences.iter_mut().zip(s.divergences) {
            *total += one;
        }
        self.joins_watched += s.joins_watched;
        self.join_ns_max = self.join_ns_max.max(s.join_ns_max);
        self.join_bound_share_max = self.join_bound_share_max.max(s.join_bound_share_max);
        self.frames += s.frames;
        self.accepted += s.accepted;
        self.duplicates += s.duplicates;
        self.stale += s.stale;
        self.too_old += s.too_old;
        self.superseded += s.superseded;
        self.lapses += s.lapses;
        self.events += s.events;
        self.transfers += s.transfers;
        self.frames_without_output += s.frames_without_output;
        self.output_gap_frames_max = self.output_gap_frames_max.max(s.output_gap_frames_max);
        self.switchovers_refused += s.switchovers_refused;
        self.input_handovers += s.input_handovers;
        self.handovers_watched += s.handovers_watched;
        self.epoch_writes_later += s.epoch_writes_later;
        self.epoch_writes_lost += s.epoch_writes_lost;
        self.attacked_seeds += u64::from(r.summary.contains(" attacker="));
        self.attack_delivered += s.attack_delivered;
        self.attack_judged += s.attack_judged;
        self.attack_tampered += s.attack_tampered;
        self.alarms_transfer_rejected += s.alarms_transfer_rejected;
        self.hasher.write_u64(r.seed);
        self.hasher.write_u64(r.trace_hash);
        self.trace_hash = self.hasher.finish();
    }

    /// The exit code: 0 when every seed passed, else the code of the first failing seed.
    pub fn exit_code(&self) -> i32 {
        self.failed.first().map_or(0, |(_, kind)| kind.exit_code())
    }

    /// The summary as one JSON object (the last line of `--json` output).
    pub fn to_json(&self) -> serde_json::Value {
        let ms = |ns: Nanos| (ns as f64 / 1e3).round() / 1e3;
        let quantiles = |values: &[Nanos]| {
            let mut sorted = values.to_vec();
            sorted.sort_unstable();
            let at = |q: f64| -> f64 {
                if sorted.is_empty() {
                    return 0.0;
                }
                let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
                ms(sorted[rank - 1])
            };
            serde_json::json!({
                "count": sorted.len(),
                "p50": at(0.50),
                "p99": at(0.99),
                "max": sorted.last().map_or(0.0, |&v| ms(v)),
            })
        };
        let by_profile: serde_json::Map<String, serde_json::Value> = self
            .failover_ns_by_profile
            .iter()
            .map(|(name, values)| ((*name).to_string(), quantiles(values)))
            .collect();
        let f = &self.faults;
        let e = &self.exceptions;
        serde_json::json!({
            "seeds": self.seeds,
            "seed_first": self.seed_first,
            "violations": self.violations,
            "failed_seeds": self.failed.iter().take(20).map(|(seed, kind)| serde_json::json!({"seed": seed, "kind": kind.name()})).collect::<Vec<_>>(),
            "failovers": self.failovers,
            "switchovers": self.switchovers,
            "faults": {
                "crash": f.crash,
                "restart": f.restart,
                "restart_heal": f.restart_heal,
                "pause": f.pause,
                "pause_short": f.pause_short,
                "pause_false_death": f.pause_false_death,
                "pause_long": f.pause_long,
                "partition": f.partition,
                "partition_asym": f.partition_asym,
                "loss": f.loss,
                "io_loss": f.io_loss,
                "io_gap": f.io_gap,
                "io_stall": f.io_stall,
                "commit_hole": f.commit_hole,
                "restart_cut": f.restart_cut,
                "link_cut": f.link_cut,
                "switchover": f.switchover,
                "switchover_during_fault": f.switchover_during_fault,
                "skipped": f.skipped,
                "diverge": f.diverge,
                "release_loss": f.release_loss,
                "inputs_dead_in_hold": f.inputs_dead_in_hold,
                "source_restart": f.source_restart,
            },
            "failover_ms": quantiles(&self.failover_ns),
            "failover_ms_by_profile": by_profile,
            "failovers_checked": self.failovers_checked,
            "liveness_ms": quantiles(&self.liveness_ns),
            "exceptions": {
                "input_lost": e.input_lost,
                "split_brain": e.split_brain,
                "cold_start": e.cold_start,
                "crash_window": e.crash_window,
                "lost_deposed": e.lost_deposed,
                "lost_orphaned_never_heard": e.lost_orphaned_never_heard,
                "lost_orphaned_write_lost": e.lost_orphaned_write_lost,
                "lost_unverified": e.lost_unverified,
                "lost_crashed": e.lost_crashed,
                "replay_gap": e.replay_gap,
                "level_superseded": e.level_superseded,
                "lost_network": e.lost_network,
                "level_lost_network": e.level_lost_network,
                "level_before_cold_start": e.level_before_cold_start,
                "level_parted": e.level_parted,
                "acked_unguarded": e.acked_unguarded,
                "acked_uncertain": e.acked_uncertain,
                "acked_held_at_end": e.acked_held_at_end,
                "acked_never_released": e.acked_never_released,
                "acked_released_fenced": e.acked_released_fenced,
            },
            "output_path": {
                "seeds": self.output_path_seeds,
                "refresh_seeds": self.output_path_refresh_seeds,
                "lost": self.output_path_lost,
                "overtaken": self.output_path_overtaken,
                "outages": f.output_outage,
                "level_heal_ms_max": self.level_heal_ns_max as f64 / 1e6,
            },
            "false_deaths": self.false_deaths,
            "false_deaths_watched": self.false_deaths_watched,
            "restarts_watched": self.restarts_watched,
            "switchovers_watched": self.switchovers_watched,
            "alarms": {"input_lost": self.alarms_input_lost, "divergence": self.alarms_divergence, "commit_lost": self.alarms_commit_lost, "transfer_rejected": self.alarms_transfer_rejected},
            "divergences": {
                "injected": self.divergences[0],
                "caught": self.divergences[1],
                "absorbed": self.divergences[2],
                "recovered": self.divergences[3],
            },
            "joins_watched": self.joins_watched,
            "join_ms_max": self.join_ns_max as f64 / 1e6,
            "join_bound_share_max": self.join_bound_share_max as f64 / 1e3,
            "switchovers_refused": self.switchovers_refused,
            "input_handovers": self.input_handovers,
            "handovers_watched": self.handovers_watched,
            "epoch_writes": {"later": self.epoch_writes_later, "lost": self.epoch_writes_lost},
            "transfers": self.transfers,
            "attacker": {"seeds": self.attacked_seeds, "delivered": self.attack_delivered, "judged": self.attack_judged, "tampered": self.attack_tampered},
            "frames": self.frames,
            "sink": {
                "accepted": self.accepted,
                "duplicates": self.duplicates,
                "stale": self.stale,
                "too_old": self.too_old,
                "superseded": self.superseded,
                "lease_lapses": self.lapses,
                "frames_without_output": self.frames_without_output,
                "output_gap_frames_max": self.output_gap_frames_max,
            },
            "events": self.events,
            "trace_hash": format!("{:016x}", self.trace_hash),
        })
    }
}

/// Runs seeds `first..first + count` on `threads` worker threads (each seed on one
/// thread, deterministic on its own) and hands every report to `on_report` in seed order.
pub fn run_seeds<F, R>(first: u64, count: u64, threads: usize, run: RunConfig, factory: &F, mut on_report: R) -> Summary
where
    F: WorkloadFactory + Sync,
    R: FnMut(&SeedReport),
{
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::mpsc;
    let mut summary = Summary::new(first);
    let next = AtomicU64::new(0);
    // Set once a failed seed is handed on under `run.fail_fast`: no worker takes another.
    let stop = AtomicBool::new(false);
    let threads = threads.clamp(1, 64);
    std::thread::scope(|scope| {
        // Bounded: a worker waits when the main thread falls this far behind.
        let (tx, rx) = mpsc::sync_channel::<SeedReport>(4 * threads);
        for _ in 0..threads {
            let tx = tx.clone();
            let (next, stop) = (&next, &stop);
            scope.spawn(move || loop {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= count {
                    break;
                }
                let report = run_seed_with(first.wrapping_add(k), run, factory);
                if tx.send(report).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        // Reports arrive out of order; hand them on in seed order.
        let mut pending: BTreeMap<u64, SeedReport> = BTreeMap::new();
        let mut expected = 0u64;
        for report in rx {
            pending.insert(report.seed.wrapping_sub(first), report);
            while let Some(report) = pending.remove(&expected) {
                on_report(&report);
                summary.add(&report);
                expected += 1;
                if run.fail_fast && report.failure.is_some() {
                    stop.store(true, Ordering::Relaxed);
                }
            }
        }
    });
    summary
}
