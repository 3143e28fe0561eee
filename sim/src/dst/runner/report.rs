//! What one run reports: its verdict, the faults injected and what happened, gathered
//! from the checker, the sink and the network when the run ends.

use super::world::{Event, Sim};
use crate::dst::app::Workload;
use crate::dst::checker::{Exceptions, Violation};
use crate::dst::clock::Nanos;
use crate::dst::network::NetworkStats;
use twinloop::node::Role;

/// How a seed failed. Each kind has its own exit code (see `docs/DST.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FailureKind {
    /// An invariant 1–4 broke.
    Safety,
    /// Invariant 5 or 6 broke (convergence, failover time, false death), or the run got
    /// stuck.
    Liveness,
    /// The simulator or a node panicked.
    Panic,
}

impl FailureKind {
    /// The process exit code for this kind.
    pub fn exit_code(self) -> i32 {
        match self {
            FailureKind::Safety => 10,
            FailureKind::Liveness => 11,
            FailureKind::Panic => 12,
        }
    }

    /// A name for reports.
    pub fn name(self) -> &'static str {
        match self {
            FailureKind::Safety => "safety",
            FailureKind::Liveness => "liveness",
            FailureKind::Panic => "panic",
        }
    }
}

/// Faults actually injected (a planned fault whose target is not running is skipped).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// Nodes killed.
    pub crash: u64,
    /// Crashed nodes restarted during the safety phase (late joins).
    pub restart: u64,
    /// Crashed nodes restarted when the liveness phase healed everything.
    pub restart_heal: u64,
    /// Freezes of every kind.
    pub pause: u64,
    /// Freezes shorter than the window.
    pub pause_short: u64,
    /// Freezes between window and window + probe.
    pub pause_false_death: u64,
    /// Freezes longer than window + probe.
    pub pause_long: u64,
    /// Partitions, symmetric or not.
    pub partition: u64,
    /// Of which asymmetric.
    pub partition_asym: u64,
    /// One link cut while others live.
    pub link_cut: u64,
    /// Loss bursts on links.
    pub loss: u64,
    /// Loss bursts on a node's I/O input.
    pub io_loss: u64,
    /// Gaps of two frames or more at the backup's input as its primary crashed.
    pub io_gap: u64,
    /// Stalls of the backup's input before its primary crashed (`Fault::IoStall`).
    pub io_stall: u64,
    /// Commits lost for longer than a ring before the primary's crash (`Fault::CommitHole`).
    pub commit_hole: u64,
    /// Restarts whose datagrams were all lost for a while (`Fault::RestartCut`).
    pub restart_cut: u64,
    /// Operator switchover commands issued.
    pub switchover: u64,
    /// Of which issued while another fault was active.
    pub switchover_during_fault: u64,
    /// Planned faults skipped because their target was not running.
    pub skipped: u64,
    /// Divergences armed (one node's outputs, state or frame copy; invariant 12).
    pub diverge: u64,
    /// Outages of the output path (issue 22).
    pub output_outage: u64,
    /// Spells during which every `SwitchRelease` was lost on every link, drawn at an
    /// operator's switchover (issue 21).
    pub release_loss: u64,
    /// Both inputs killed within a young primary's input hand-over hold, past its end
    /// (issue 21; the planned ones that found no such primary are `skipped`).
    pub inputs_dead_in_hold: u64,
    /// Restarts of the I/O source: a silence, then a new source session (issue 21).
    pub source_restart: u64,
}

impl FaultCounts {
    pub(super) fn add(&mut self, o: &FaultCounts) {
        self.crash += o.crash;
        self.restart += o.restart;
        self.restart_heal += o.restart_heal;
        self.pause += o.pause;
        self.pause_short += o.pause_short;
        self.pause_false_death += o.pause_false_death;
        self.pause_long += o.pause_long;
        self.partition += o.partition;
        self.partition_asym += o.partition_asym;
        self.link_cut += o.link_cut;
        self.loss += o.loss;
        self.io_loss += o.io_loss;
        self.io_gap += o.io_gap;
        self.io_stall += o.io_stall;
        self.commit_hole += o.commit_hole;
        self.restart_cut += o.restart_cut;
        self.switchover += o.switchover;
        self.switchover_during_fault += o.switchover_during_fault;
        self.skipped += o.skipped;
        self.diverge += o.diverge;
        self.output_outage += o.output_outage;
        self.release_loss += o.release_loss;
        self.inputs_dead_in_hold += o.inputs_dead_in_hold;
        self.source_restart += o.source_restart;
    }
}

/// What happened in one run, besides the verdict.
#[derive(Debug, Clone, Default)]
pub struct RunStats {
    /// Faults injected.
    pub faults: FaultCounts,
    /// Takeovers (unplanned: after a probe, or with no primary left).
    pub takeovers: u64,
    /// Planned switchovers completed.
    pub switchovers: u64,
    /// Switchover commands refused.
    pub switchovers_refused: u64,
    /// Input handovers started (a primary with a silent input, its backup's alive).
    pub input_handovers: u64,
    /// Dead inputs of a calm pair's primary watched for a handover (invariant 24).
    pub handovers_watched: u64,
    /// Every failover time (primary crash → first output of the new primary), ns.
    pub failover_ns: Vec<Nanos>,
    /// Failovers checked against the bound.
    pub failovers_checked: u64,
    /// False deaths (probes answered by a live primary).
    pub false_deaths: u64,
    /// False-death freezes watched for a takeover.
    pub false_deaths_watched: u64,
    /// Restarts next to a healthy primary watched for a node that leads.
    pub restarts_watched: u64,
    /// Switchovers asked for in a calm state, watched to complete cleanly.
    pub switchovers_watched: u64,
    /// Time from healing to convergence, ns.
    pub liveness_ns: Option<Nanos>,
    /// Allowed differences and losses.
    pub exceptions: Exceptions,
    /// `InputLost` alarms.
    pub alarms_input_lost: u64,
    /// Output or state divergence alarms.
    pub alarms_divergence: u64,
    /// `CommitLost` alarms.
    pub alarms_commit_lost: u64,
    /// Injected divergences watched (invariant 12): fired, alarmed, absorbed (the pair
    /// never diverged), in sync again after the alarm.
    pub divergences: [u64; 4],
    /// Joins judged after healing (invariant 11), and the longest, ns.
    pub joins_watched: u64,
    /// The longest join judged, ns.
    pub join_ns_max: Nanos,
    /// The largest share of its bound a judged join took, in thousandths.
    pub join_bound_share_max: u64,
    /// `CannotTakeOver` alarms.
    pub alarms_cannot_take_over: u64,
    /// State transfers completed (receiver side).
    pub transfers: u64,
    /// Frames the source sent.
    pub frames: u64,
    /// Outputs the sink accepted.
    pub accepted: u64,
    /// Duplicates the sink dropped.
    pub duplicates: u64,
    /// Stale outputs the sink rejected.
    pub stale: u64,
    /// Outputs the sink rejected as older than its dedup window (the nodes' ring).
    pub too_old: u64,
    /// Levels the sink refused as older than their key's newest (invariant 14).
    pub superseded: u64,
    /// Times the sink's epoch lease lapsed.
    pub lapses: u64,
    /// Events processed.
    pub events: u64,
    /// The network's counters.
    pub network: NetworkStats,
    /// Frames between the first and the last output the sink accepted for which it
    /// accepted none (skipped, stalled or fenced-off frames).
    pub frames_without_output: u64,
    /// The longest run of such frames.
    pub output_gap_frames_max: u64,
    /// Frames and datagrams a frozen node's full buffer dropped.
    pub frozen_dropped: u64,
    /// Background epoch writes (`PersistEpochLater`) asked for.
    pub epoch_writes_later: u64,
    /// Of which lost: the node crashed before they were durable.
    pub epoch_writes_lost: u64,
    /// Datagrams the attacker injected that reached a running node.
    pub attack_delivered: u64,
    /// Of which judged as ones the core must reject (invariant 13).
    pub attack_judged: u64,
    /// Reflections of a node's previous incarnation, not sent (a known limit).
    pub attack_withheld: u64,
    /// Transfer chunks the attacker tampered with on their way (`Kind::Tamper`).
    pub attack_tampered: u64,
    /// `TransferRejected` alarms raised (a state or a beginning refused).
    pub alarms_transfer_rejected: u64,
    /// The output path to the sink was not perfect (issue 22).
    pub output_path_faulty: bool,
    /// The level refresh was on.
    pub level_refresh: bool,
    /// Output copies the path lost.
    pub output_path_lost: u64,
    /// Output copies the path brought after a higher epoch passed the fence.
    pub output_path_overtaken: u64,
    /// The longest a level waited for the sink after healing, ns.
    pub level_heal_ns_max: Nanos,
}

/// The result of one seed.
#[derive(Debug, Clone)]
pub struct SeedReport {
    /// The seed.
    pub seed: u64,
    /// The options, one line.
    pub summary: String,
    /// `None`: every invariant held.
    pub failure: Option<FailureKind>,
    /// The violations kept.
    pub violations: Vec<Violation>,
    /// Every violation, kept or not.
    pub violation_count: u64,
    /// The panic message, when it panicked.
    pub panic: Option<String>,
    /// Hash of everything that happened: the same seed gives the same hash.
    pub trace_hash: u64,
    /// What happened.
    pub stats: RunStats,
    /// The configuration profile.
    pub profile: &'static str,
}

impl<'a, W: Workload> Sim<'a, W> {
    pub(super) fn finish(&mut self) {
        if self.stuck {
            // A run that stopped where it got stuck never reached its end: what the sink
            // holds then, the joins and resyncs under way, the HMI writes unapplied are
            // not verdicts (they would bury the one that stopped it). Only the content
            // differences seen so far are settled.
            self.checker.finish_stuck();
        } else {
            self.finish_run();
        }
        self.gather_stats();
    }

    /// The verdicts of a run that reached its end.
    fn finish_run(&mut self) {
        // HMI answers are judged at the run's end, before the output path's stragglers
        // move the clock on: the nodes run no more, so a deadline passing after the end
        // is not theirs to meet (`dst --acks` seed 7183 of 2000..9999, 2026-11-28: an
        // output 34 ms late on the path made a write due after the end look unanswered).
        self.hmi_check_end();
        // What is still on the output path arrives (it is healed: nothing more is lost),
        // in order, before the sink's final state is judged.
        let in_flight: Vec<(Nanos, u64)> = self
            .queue
            .iter()
            .filter(|(_, e)| matches!(e, Event::OutputArrive { .. }))
            .map(|(&k, _)| k)
            .collect();
        for key in in_flight {
            if let Some(Event::OutputArrive { node, output }) = self.queue.remove(&key) {
                self.now = self.now.max(key.0);
                self.output_arrive(node, output);
            }
        }
        self.checker.check_failover_deadlines(self.now);
        self.checker.check_switchovers(self.now);
        if self.run.acked {
            for i in 0..2 {
                let held = self.nodes[i]
                    .node
                    .as_ref()
                    .filter(|node| node.role() == Role::Primary)
                    .map(|node| node.outputs_release_status())
                    .filter(|r| r.held > 0);
                if let Some(r) = held {
                    self.checker.on_acked_held_at_end(i, r.held_oldest_frame);
                }
            }
        }
        self.checker.finish(self.now, &self.sink.accepted);
    }

    /// The run's statistics, from the checker, the sink and the network.
    fn gather_stats(&mut self) {
        let s = &mut self.stats;
        s.exceptions = self.checker.exceptions;
        s.failover_ns = self.checker.failover_ns.clone();
        s.failovers_checked = self.checker.failovers_checked;
        s.false_deaths_watched = self.checker.false_deaths_watched;
        s.restarts_watched = self.checker.restarts_watched;
        s.switchovers_watched = self.checker.switchovers_watched;
        let c = &self.checker;
        s.divergences = [
            c.divergences_injected,
            c.divergences_caught,
            c.divergences_absorbed,
            c.divergences_recovered,
        ];
        s.joins_watched = c.joins_watched;
        s.join_ns_max = c.join_ns_max;
        s.join_bound_share_max = c.join_bound_share_max;
        s.accepted = self.sink.accepted.len() as u64;
        s.duplicates = self.sink.duplicates;
        s.stale = self.sink.stale;
        s.too_old = self.sink.too_old;
        s.superseded = self.sink.superseded;
        s.lapses = self.sink.lapses;
        s.network = self.network.stats;
        s.output_path_faulty = !self.output_path.is_perfect();
        s.level_refresh = self.options.config.level_refresh_ms != 0;
        s.output_path_lost = self.checker.path_lost;
        s.output_path_overtaken = self.checker.path_overtaken;
        s.level_heal_ns_max = self.checker.level_heal_ns_max;
        let mut previous: Option<u64> = None;
        for &(frame, index) in self.sink.accepted.keys() {
            if index != 0 {
                continue;
            }
            if let Some(p) = previous {
                let gap = frame.saturating_sub(p + 1);
                s.frames_without_output += gap;
                s.output_gap_frames_max = s.output_gap_frames_max.max(gap);
            }
            previous = Some(frame);
        }
        let accepted = s.accepted;
        self.trace_u64(accepted);
        self.trace_u64(self.checker.violation_count());
    }

    pub(super) fn into_report(self, summary: String) -> SeedReport {
        let violations = self.checker.violations().to_vec();
        let violation_count = self.checker.violation_count();
        let failure = if violation_count == 0 {
            None
        } else if violations.iter().any(|v| v.invariant.is_safety()) {
            Some(FailureKind::Safety)
        } else {
            Some(FailureKind::Liveness)
        };
        SeedReport {
            seed: self.options.seed,
            summary,
            failure,
            violations,
            violation_count,
            panic: None,
            trace_hash: self.trace.finish(),
            stats: self.stats,
            profile: self.options.profile.name(),
        }
    }
}
