//! What the plant saw, against the reference, and the verdict.
//!
//! Definitions (also in `docs/BENCHMARKS.md`):
//!
//! - **expected**: every output the reference run (the same program, in-process, on the
//!   same frames) produced for frames `1..=last`, by id `(frame, index)`;
//! - **lost**: an expected id the actuators never received; outputs of frames a node
//!   reported skipping (`input_lost`), or deciding as a new primary without the commit the
//!   old primary had made (`commit_lost`), are counted apart as *skipped*;
//! - **unexpected**: an id received that the reference did not produce; **content
//!   mismatch**: an id received with different content. Both follow a skipped frame when
//!   the pair legitimately skipped one (its state then differs from the reference's);
//!   they are reported, and are violations only when no skip explains them;
//! - **duplicated** (after dedup): an id the actuators received more than once;
//!   **duplicates_raw**: copies of an already-delivered id that reached the gateway;
//! - **dual_primary_accepted**: outputs delivered although a higher epoch had already
//!   reached the sink (a deposed primary's output accepted). The outputs of an old
//!   primary delivered after a new one took over (by its journal) but before the new
//!   epoch reached the sink are counted apart (`deposed_window_accepted`): no sink can
//!   know of an epoch it has not seen;
//! - **missed cycle**: a frame whose command (output 0) was not delivered within one
//!   cycle of the frame being sent; per fault, the frames sent between injection and
//!   recovery that missed;
//! - **failover**: primary killed → first delivered output of the new primary;
//! - **false takeover**: a takeover (journal) not during a fault that must or may cause
//!   one: e.g. during a freeze shorter than the detection window or with one link cut.
#![allow(clippy::disallowed_methods)]

use super::plant_loop::FrameLog;
use super::plot::{self, Mark, MarkKind, Sample};
use super::procs::NodeEvent;
use super::rig::Timing;
use super::schedule::{Expect, FaultRecord};
use super::sink::SinkLog;
use super::{ms, round3, Percentiles};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;
use twinloop::io::schema::EventKind;

/// Examples of each kind of mismatch kept for the report.
const EXAMPLES_MAX: usize = 10;
/// Slack between a new primary's journal stamp and the sink's clock (ms stamps, thread
/// scheduling) before an old primary's delivery counts as in the deposed window.
const DEPOSED_SLACK_NS: u64 = 2_000_000;

/// A takeover seen in a node's journal, and whether a fault explains it.
#[derive(Debug, Clone, PartialEq)]
pub struct Takeover {
    /// The node that took over.
    pub node: u8,
    /// When, ns since the run began.
    pub at_ns: u64,
    /// The epoch it started.
    pub epoch: u64,
    /// The journal's reason.
    pub reason: String,
    /// The fault during which it happened (index), if any.
    pub during_fault: Option<usize>,
    /// True when no fault that must or may cause a takeover was under way.
    pub false_takeover: bool,
}

/// The analysis of one run.
#[derive(Debug, Clone, Default)]
pub struct Analysis {
    /// Frames evaluated (`1..=frames`).
    pub frames: u64,
    /// Outputs the reference produced.
    pub outputs_expected: u64,
    /// Outputs delivered to the actuators (ids, within the frames evaluated).
    pub outputs_delivered: u64,
    /// Expected ids never delivered (not counting skipped frames).
    pub outputs_lost: u64,
    /// Expected ids of frames a node reported skipping.
    pub outputs_skipped: u64,
    /// Delivered ids the reference did not produce.
    pub outputs_unexpected: u64,
    /// Delivered ids with content other than the reference's.
    pub content_mismatches: u64,
    /// The first frame with a mismatch or an unexpected id.
    pub mismatch_first_frame: Option<u64>,
    /// Ids delivered more than once.
    pub outputs_duplicated: u64,
    /// Copies of delivered ids dropped by the gateway.
    pub duplicates_raw: u64,
    /// Copies with the same id and different content.
    pub conflicts: u64,
    /// Rejected for a lower epoch.
    pub stale_epoch_rejected: u64,
    /// Deliveries of an epoch below one the sink had seen.
    pub dual_primary_accepted: u64,
    /// Deliveries of an old epoch after a new primary took over (journal), before the
    /// new epoch reached the sink.
    pub deposed_window_accepted: u64,
    /// Frames reported skipped by a node (`input_lost` alarms).
    pub input_lost_frames: Vec<u64>,
    /// Ranges of frames a new primary decided without the commit the old primary had
    /// made (`commit_lost` alarms: `frame..=frame_last`): it ran its own input for them
    /// or skipped them, so their outputs may differ from the reference's, as after a skip.
    pub commit_lost: Vec<(u64, u64)>,
    /// Examples of lost ids.
    pub lost_examples: Vec<(u64, u8)>,
    /// Examples of unexpected or mismatching ids.
    pub mismatch_examples: Vec<(u64, u8)>,
    /// Frame sent → its command delivered, ms.
    pub latency_ms: Percentiles,
    /// Frames whose command missed its deadline (or never came).
    pub missed_cycles_total: u64,
    /// Examples of missed frames inside faults' windows: frame, fault index, latency ms
    /// (None: never delivered).
    pub missed_examples: Vec<(u64, usize, Option<f64>)>,
    /// Of which outside every fault's window (jitter of the host, not a fault's doing).
    pub missed_cycles_outside_faults: u64,
    /// The most missed cycles of one fault.
    pub missed_cycles_max: u64,
    /// By fault kind: the most missed cycles of one fault of that kind.
    pub missed_cycles_max_by_kind: BTreeMap<String, u64>,
    /// Takeovers from the journals.
    pub takeovers: Vec<Takeover>,
    /// Planned switchovers completed (journal).
    pub switchovers: u64,
    /// Demotions by a higher epoch (journal).
    pub fenced: u64,
    /// Probes answered by a live primary (journal).
    pub false_deaths: u64,
    /// Divergence alarms (journal).
    pub divergence_alarms: u64,
    /// State transfers completed (journal).
    pub transfers: u64,
    /// Level outputs the reference produced (`app.level_outputs`; not in
    /// `outputs_expected`: a level superseded before it left, or collapsed by a takeover,
    /// is never sent, by design).
    pub levels_expected: u64,
    /// Of which the actuators received (not in `outputs_delivered`).
    pub levels_delivered: u64,
    /// Level keys whose newest value at the end is not held by the sink (an id at least
    /// as new as the reference's last of that key).
    pub levels_final_behind: u64,
    /// The level outputs after the output path healed ([`level_staleness`]), when the run
    /// had an output path and level outputs.
    pub level_staleness: Option<LevelStaleness>,
}

/// How long each level key stayed stale after the output path healed (issue 22).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LevelStaleness {
    /// When the path healed, ns since the run began.
    pub healed_ns: u64,
    /// The nodes' `outputs.level_refresh_ms`.
    pub refresh_ms: u64,
    /// Per key that had a value when the path healed: the time from the heal until the
    /// sink held a value at least as new as that one, ms (0: it held it already); `None`:
    /// not by the end of the run.
    pub keys: Vec<(u16, Option<f64>)>,
}

impl LevelStaleness {
    /// p50, p99 and max over the keys the sink caught up on.
    pub fn percentiles(&self) -> Percentiles {
        let values: Vec<f64> = self.keys.iter().filter_map(|&(_, ms)| ms).collect();
        Percentiles::of(&values)
    }

    /// Keys the sink never caught up on.
    pub fn unhealed(&self) -> usize {
        self.keys.iter().filter(|(_, ms)| ms.is_none()).count()
    }

    /// As JSON (`output_path.level_staleness` in report.json).
    pub fn to_json(&self) -> Value {
        let p = self.percentiles();
        json!({
            "keys": self.keys.len(),
            "p50_ms": round3(p.p50),
            "p99_ms": round3(p.p99),
            "max_ms": round3(p.max),
            "unhealed": self.unhealed(),
            "refresh_ms": self.refresh_ms,
            "healed_at_ms": round3(ms(self.healed_ns)),
            "by_key": self.keys.iter().map(|&(k, v)| json!({"key": k, "ms": v.map(round3)})).collect::<Vec<_>>(),
        })
    }
}

/// The staleness of each level key after the output path healed at `healed_ns`: for each
/// key, the newest level of it the reference produced for a frame sent before the heal
/// (what the actuator should hold then); the time from the heal until the sink accepted
/// that level or a newer one of the key (0 when it held one already). Only the refresh
/// (`outputs.level_refresh_ms`) brings a level again that the path lost before the heal
/// and that no newer value replaced, so with it on the bound is about one refresh period.
pub fn level_staleness(
    frames: &FrameLog,
    sink: &SinkLog,
    healed_ns: u64,
    refresh_ms: u64,
    last: u64,
) -> LevelStaleness {
    let mut by_key: BTreeMap<u16, Vec<(u64, u8)>> = BTreeMap::new();
    for &(frame, index, key) in frames.levels.iter().filter(|&&(f, ..)| f <= last) {
        by_key.entry(key).or_default().push((frame, index));
    }
    let keys = by_key
        .into_iter()
        .filter_map(|(key, ids)| {
            // In frame order: the ones sent before the heal come first.
            let due = ids.partition_point(|&(f, _)| frames.sent_ns(f).is_some_and(|at| at < healed_ns));
            let wanted = due.checked_sub(1)?;
            let held_at = ids[wanted..]
                .iter()
                .filter_map(|id| sink.delivered.get(id).map(|d| d.at_ns))
                .min();
            Some((key, held_at.map(|at| ms(at.saturating_sub(healed_ns)))))
        })
        .collect();
    LevelStaleness {
        healed_ns,
        refresh_ms,
        keys,
    }
}

impl Analysis {
    /// Takeovers no fault explains.
    pub fn false_takeovers(&self) -> u64 {
        self.takeovers.iter().filter(|t| t.false_takeover).count() as u64
    }

    /// Frames decided without their commit (`commit_lost` ranges, overlaps counted once).
    pub fn commit_lost_frames(&self) -> u64 {
        let mut total = 0u64;
        let mut covered_to = 0u64;
        for &(first, last) in &self.commit_lost {
            let from = first.max(covered_to.saturating_add(1));
            if last >= from {
                total = total.saturating_add(last - from + 1);
                covered_to = last;
            }
        }
        total
    }

    /// The first frame after which outputs may legitimately differ from the reference: a
    /// frame skipped, or decided without its commit.
    pub fn first_undecided_frame(&self) -> Option<u64> {
        let skipped = self.input_lost_frames.first().copied();
        let commit_lost = self.commit_lost.first().map(|&(first, _)| first);
        skipped.into_iter().chain(commit_lost).min()
    }
}

/// Compares what the sink delivered with the reference for frames `1..=last`, and
/// attributes journal events and missed cycles to faults. Fills each record's
/// `missed_cycles`.
pub fn analyse(
    frames: &FrameLog,
    sink: &SinkLog,
    events: &[NodeEvent],
    faults: &mut [FaultRecord],
    last: u64,
    cycle_ms: u32,
) -> Analysis {
    let mut a = Analysis {
        frames: last,
        ..Analysis::default()
    };
    for e in events {
        match (e.kind, e.name.as_str()) {
            (EventKind::Alarm, "input_lost") => a.input_lost_frames.extend(e.frame),
            (EventKind::Alarm, "commit_lost") => {
                if let Some(first) = e.frame {
                    a.commit_lost.push((first, e.frame_last.unwrap_or(first).max(first)));
                }
            }
            (EventKind::Alarm, "output_divergence" | "state_divergence") => a.divergence_alarms += 1,
            (EventKind::Transition, "switchover_completed") => a.switchovers += 1,
            (EventKind::Transition, "fenced_by_epoch") => a.fenced += 1,
            (EventKind::Notice, "false_death") => a.false_deaths += 1,
            (EventKind::Notice, "transfer_completed") => a.transfers += 1,
            _ => {}
        }
    }
    a.input_lost_frames.sort_unstable();
    a.input_lost_frames.dedup();
    a.commit_lost.sort_unstable();
    a.commit_lost.dedup();
    let input_lost: BTreeSet<u64> = a.input_lost_frames.iter().copied().collect();
    let commit_lost = a.commit_lost.clone();
    let skipped =
        |frame: u64| input_lost.contains(&frame) || commit_lost.iter().any(|&(f, l)| (f..=l).contains(&frame));

    // Expected against delivered.
    let cycle_ns = u64::from(cycle_ms.max(1)) * 1_000_000;
    let mut latencies = Vec::with_capacity(last as usize);
    let mut missed = BTreeSet::new();
    for frame in 1..=last {
        let expected = frames.expected(frame);
        for (index, &hash) in expected.iter().enumerate() {
            let id = (frame, index as u8);
            let level = frames.is_level(frame, index as u8);
            if level {
                a.levels_expected += 1;
            } else {
                a.outputs_expected += 1;
            }
            match sink.delivered.get(&id) {
                // A level the pair never sent (superseded, collapsed by a takeover) is no
                // loss: what counts is the newest per key (`levels_final_behind`).
                None if level => {}
                None if skipped(frame) => a.outputs_skipped += 1,
                None => {
                    a.outputs_lost += 1;
                    if a.lost_examples.len() < EXAMPLES_MAX {
                        a.lost_examples.push(id);
                    }
                }
                Some(d) if d.payload_hash != hash => {
                    a.content_mismatches += 1;
                    a.mismatch_first_frame = Some(a.mismatch_first_frame.map_or(frame, |f| f.min(frame)));
                    if a.mismatch_examples.len() < EXAMPLES_MAX {
                        a.mismatch_examples.push(id);
                    }
                }
                Some(_) => {}
            }
        }
        let sent = frames.sent_ns(frame).unwrap_or(0);
        match sink.delivered.get(&(frame, 0)) {
            Some(d) => {
                let latency = d.at_ns.saturating_sub(sent);
                latencies.push(ms(latency));
                if latency > cycle_ns {
                    missed.insert(frame);
                }
            }
            None => {
                missed.insert(frame);
            }
        }
    }
    for (&(frame, index), d) in sink.delivered.range(..(last.saturating_add(1), 0)) {
        if frames.is_level(frame, index) {
            a.levels_delivered += 1;
        } else {
            a.outputs_delivered += 1;
        }
        if d.count > 1 {
            a.outputs_duplicated += 1;
        }
        if frames.expected(frame).get(usize::from(index)).is_none() {
            a.outputs_unexpected += 1;
            a.mismatch_first_frame = Some(a.mismatch_first_frame.map_or(frame, |f| f.min(frame)));
            if a.mismatch_examples.len() < EXAMPLES_MAX {
                a.mismatch_examples.push((frame, index));
            }
        }
    }
    // Each level key's final value: the sink holds it or a newer one.
    let mut last_of_key: BTreeMap<u16, (u64, u8)> = BTreeMap::new();
    for &(frame, index, key) in frames.levels.iter().filter(|&&(f, ..)| f <= last) {
        last_of_key.insert(key, (frame, index));
    }
    for (&key, &id) in &last_of_key {
        let held = frames
            .levels
            .iter()
            .filter(|&&(f, i, k)| k == key && (f, i) >= id)
            .any(|&(f, i, _)| sink.delivered.contains_key(&(f, i)));
        a.levels_final_behind += u64::from(!held);
    }
    a.duplicates_raw = sink.duplicates_raw;
    a.conflicts = sink.conflicts;
    a.stale_epoch_rejected = sink.stale_rejected;
    a.dual_primary_accepted = sink.deposed_accepted;
    a.latency_ms = Percentiles::of(&latencies);

    // Deliveries of an old epoch after a higher one began, by the journals.
    let epoch_starts: Vec<(u64, u64)> = events
        .iter()
        .filter(|e| e.starts_epoch())
        .filter_map(|e| e.epoch.map(|epoch| (epoch, e.at_ns)))
        .collect();
    a.deposed_window_accepted = sink
        .delivered
        .values()
        .filter(|d| {
            epoch_starts
                .iter()
                .any(|&(epoch, at)| epoch > d.epoch && d.at_ns > at + DEPOSED_SLACK_NS)
        })
        .count() as u64;

    // Missed cycles by fault.
    let sent_ns = |frame: u64| frames.sent_ns(frame).unwrap_or(0);
    let mut in_fault = BTreeSet::new();
    for record in faults.iter_mut() {
        let (start, end) = (record.start_ns, record.window_end_ns());
        let count = missed
            .iter()
            .filter(|&&f| (start..=end).contains(&sent_ns(f)))
            .inspect(|&&f| {
                in_fault.insert(f);
                if a.missed_examples.len() < 4 * EXAMPLES_MAX {
                    let latency = sink
                        .delivered
                        .get(&(f, 0))
                        .map(|d| ms(d.at_ns.saturating_sub(sent_ns(f))));
                    a.missed_examples.push((f, record.index, latency.map(round3)));
                }
            })
            .count() as u64;
        record.missed_cycles = count;
        a.missed_cycles_max = a.missed_cycles_max.max(count);
        let by_kind = a.missed_cycles_max_by_kind.entry(record.fault.kind.name()).or_insert(0);
        *by_kind = (*by_kind).max(count);
    }
    a.missed_cycles_total = missed.len() as u64;
    a.missed_cycles_outside_faults = missed.difference(&in_fault).count() as u64;

    // Takeovers, explained or not.
    for e in events.iter().filter(|e| e.is_takeover()) {
        // The latest fault that had begun, if its window (plus a second of grace for the
        // journal to catch up) still covers the takeover.
        let during = faults
            .iter()
            .filter(|r| r.start_ns <= e.at_ns)
            .max_by_key(|r| r.start_ns)
            .filter(|r| e.at_ns <= r.window_end_ns() + 1_000_000_000);
        let false_takeover = match during {
            None => true,
            Some(r) => r.expect == Expect::NoTakeover,
        };
        a.takeovers.push(Takeover {
            node: e.node,
            at_ns: e.at_ns,
            epoch: e.epoch.unwrap_or(0),
            reason: e.name.clone(),
            during_fault: during.map(|r| r.index),
            false_takeover,
        });
    }
    a
}

/// One run's report: what was run, what happened, the analysis and the verdict.
#[derive(Debug, Clone)]
pub struct Report {
    /// `run` or `chaos`.
    pub command: String,
    /// The seed.
    pub seed: u64,
    /// The cycle, ms.
    pub cycle_ms: u32,
    /// The timing.
    pub timing: Timing,
    /// Wall time of the run, s.
    pub duration_s: f64,
    /// The faults injected.
    pub faults: Vec<FaultRecord>,
    /// The analysis.
    pub analysis: Analysis,
    /// Runs that could not be carried out to the end, and why.
    pub aborted: Option<String>,
    /// Faults after which the pair did not recover.
    pub liveness_failures: Vec<String>,
    /// The sink's gateway counters and the proxy's, for the record.
    pub extra: Value,
}

/// Exit code of a run whose safety invariants held and whose liveness failed.
pub const EXIT_LIVENESS: u8 = 11;
/// Exit code of a run with a broken safety invariant.
pub const EXIT_SAFETY: u8 = 10;
/// Exit code of a run that could not be carried out (set-up, stuck before any fault).
pub const EXIT_HARNESS: u8 = 3;
/// Exit code after Ctrl-C.
pub const EXIT_INTERRUPTED: u8 = 130;

impl Report {
    /// Broken safety invariants, in words (empty: none).
    pub fn safety_violations(&self) -> Vec<String> {
        let a = &self.analysis;
        let mut v = Vec::new();
        if a.outputs_lost > 0 {
            v.push(format!("{} output(s) lost, e.g. {:?}", a.outputs_lost, a.lost_examples));
        }
        if a.outputs_duplicated > 0 {
            v.push(format!(
                "{} output(s) delivered twice after dedup",
                a.outputs_duplicated
            ));
        }
        if a.dual_primary_accepted > 0 {
            v.push(format!(
                "{} output(s) of a deposed primary accepted after a higher epoch reached the sink",
                a.dual_primary_accepted
            ));
        }
        if a.conflicts > 0 {
            v.push(format!("{} copies of one id with different content", a.conflicts));
        }
        let minority_led = self.minority_led();
        if minority_led > 0 {
            let which: Vec<String> = self
                .faults
                .iter()
                .filter(|r| r.minority.is_some_and(|w| w.led() == Some(true)))
                .map(|r| format!("#{} node {}", r.index, r.target))
                .collect();
            v.push(format!(
                "{minority_led} cut-off backup(s) led while a majority had a primary (partition_backup): {}",
                which.join(", ")
            ));
        }
        let explained = a
            .first_undecided_frame()
            .is_some_and(|skip| a.mismatch_first_frame.is_some_and(|first| first >= skip));
        if (a.content_mismatches > 0 || a.outputs_unexpected > 0) && !explained {
            v.push(format!(
                "{} output(s) differ from the reference and {} were not produced by it, from frame {:?} (e.g. {:?}), with no skipped frame before",
                a.content_mismatches, a.outputs_unexpected, a.mismatch_first_frame, a.mismatch_examples
            ));
        }
        v
    }

    /// Broken liveness properties, in words (empty: none).
    pub fn liveness_violations(&self) -> Vec<String> {
        let mut v: Vec<String> = self.liveness_failures.clone();
        let false_takeovers = self.analysis.false_takeovers();
        if false_takeovers > 0 {
            let detail: Vec<String> = self
                .analysis
                .takeovers
                .iter()
                .filter(|t| t.false_takeover)
                .map(|t| {
                    let fault = t.during_fault.and_then(|i| self.faults.iter().find(|r| r.index == i));
                    format!(
                        "node {} at {:.3} s during {}",
                        t.node,
                        ms(t.at_ns) / 1000.0,
                        fault.map_or("no fault".into(), |r| format!("#{} {}", r.index, r.fault.label()))
                    )
                })
                .collect();
            v.push(format!("{false_takeovers} false takeover(s): {}", detail.join("; ")));
        }
        let unjudged = self.minority_unjudged();
        if unjudged > 0 {
            v.push(format!(
                "{unjudged} partition_backup fault(s) not judged: the cut-off backup's console did not answer"
            ));
        }
        if let Some(reason) = &self.aborted {
            v.push(format!("run aborted: {reason}"));
        }
        v
    }

    /// 0, [`EXIT_SAFETY`] or [`EXIT_LIVENESS`].
    pub fn exit_code(&self) -> u8 {
        if !self.safety_violations().is_empty() {
            EXIT_SAFETY
        } else if !self.liveness_violations().is_empty() {
            EXIT_LIVENESS
        } else {
            0
        }
    }

    /// `partition_backup` faults whose isolated backup led (a minority leading: split
    /// brain), by its own statuses.
    pub fn minority_led(&self) -> u64 {
        let led = |r: &&FaultRecord| r.minority.is_some_and(|w| w.led() == Some(true));
        self.faults.iter().filter(led).count() as u64
    }

    /// (`minority_led`, `minority_unjudged`).
    #[cfg(test)]
    fn expect_minority(&self) -> (u64, u64) {
        (self.minority_led(), self.minority_unjudged())
    }

    /// `partition_backup` faults whose isolated backup could not be judged (its console
    /// did not answer).
    pub fn minority_unjudged(&self) -> u64 {
        let unjudged = |r: &&FaultRecord| r.minority.is_some_and(|w| w.led().is_none());
        self.faults.iter().filter(unjudged).count() as u64
    }

    /// Failover times (kills of the primary), ms.
    pub fn failover_ms(&self) -> Percentiles {
        let values: Vec<f64> = self.faults.iter().filter_map(|r| r.failover_ms).collect();
        Percentiles::of(&values)
    }

    /// The report as JSON: the fields scripts rely on (see docs/BENCHMARKS.md), and with
    /// `detail` the per-fault list and the examples.
    pub fn to_json(&self, detail: bool) -> Value {
        let a = &self.analysis;
        let mut by_kind: BTreeMap<String, u64> = BTreeMap::new();
        for r in &self.faults {
            *by_kind.entry(r.fault.kind.name()).or_insert(0) += 1;
        }
        let switchover_ms: Vec<f64> = self.faults.iter().filter_map(|r| r.switchover_ms).collect();
        let mut violations = self.safety_violations();
        violations.extend(self.liveness_violations());
        let mut j = json!({
            "command": self.command,
            "ok": self.exit_code() == 0,
            "exit_code": self.exit_code(),
            "seed": self.seed,
            "cycle_ms": self.cycle_ms,
            "timing": self.timing.to_json(),
            "duration_s": round3(self.duration_s),
            "frames": a.frames,
            "faults_injected": self.faults.len(),
            "faults_by_kind": by_kind,
            "failovers": a.takeovers.len(),
            "switchovers": a.switchovers,
            "failover_ms": self.failover_ms().to_json(),
            "switchover_ms": Percentiles::of(&switchover_ms).to_json(),
            "missed_cycles_max": a.missed_cycles_max,
            "missed_cycles_max_by_kind": a.missed_cycles_max_by_kind,
            "missed_cycles_total": a.missed_cycles_total,
            "missed_cycles_outside_faults": a.missed_cycles_outside_faults,
            "latency_ms": a.latency_ms.to_json(),
            "outputs_expected": a.outputs_expected,
            "outputs_delivered": a.outputs_delivered,
            "outputs_lost": a.outputs_lost,
            "outputs_skipped": a.outputs_skipped,
            "outputs_duplicated": a.outputs_duplicated,
            "duplicates_raw": a.duplicates_raw,
            "outputs_unexpected": a.outputs_unexpected,
            "content_mismatches": a.content_mismatches,
            "conflicts": a.conflicts,
            "stale_epoch_rejected": a.stale_epoch_rejected,
            "dual_primary_accepted": a.dual_primary_accepted,
            "deposed_window_accepted": a.deposed_window_accepted,
            "false_takeovers": a.false_takeovers(),
            "false_deaths": a.false_deaths,
            "fenced": a.fenced,
            "transfers": a.transfers,
            "divergence_alarms": a.divergence_alarms,
            "input_lost_frames": a.input_lost_frames.len(),
            "commit_lost_frames": a.commit_lost_frames(),
            "liveness_failures": self.liveness_failures.len(),
            "violations": violations,
        });
        j["minority_led"] = json!(self.minority_led());
        j["minority_unjudged"] = json!(self.minority_unjudged());
        j["levels_expected"] = json!(a.levels_expected);
        j["levels_delivered"] = json!(a.levels_delivered);
        j["levels_final_behind"] = json!(a.levels_final_behind);
        j["level_staleness"] = json!(a.level_staleness.as_ref().map(LevelStaleness::to_json));
        if detail {
            let faults: Vec<Value> = self
                .faults
                .iter()
                .map(|r| {
                    json!({
                        "index": r.index,
                        "kind": r.fault.kind.name(),
                        "label": r.fault.label(),
                        "hold_ms": r.fault.hold_ms,
                        "expect": r.expect.name(),
                        "target": r.target,
                        "primary_before": r.primary_before,
                        "epoch_before": r.epoch_before,
                        "primary_after": r.primary_after,
                        "new_epoch": r.new_epoch.map(|(e, _)| e),
                        "start_s": round3(ms(r.start_ns) / 1000.0),
                        "end_s": round3(ms(r.end_ns) / 1000.0),
                        "recovered_s": r.recovered_ns.map(|n| round3(ms(n) / 1000.0)),
                        "failover_ms": r.failover_ms.map(round3),
                        "switchover_ms": r.switchover_ms.map(round3),
                        "missed_cycles": r.missed_cycles,
                        "error": r.error,
                        "minority": r.minority.map(|w| json!({
                            "node": w.node,
                            "led": w.led(),
                            "polls": w.polls,
                            "answered": w.answered,
                            "primary_seen": w.primary_seen,
                            "takeovers_before": w.takeovers_before,
                            "takeovers_after": w.takeovers_after,
                            "epoch_before": w.epoch_before,
                            "epoch_max": w.epoch_max,
                        })),
                    })
                })
                .collect();
            let takeovers: Vec<Value> = a
                .takeovers
                .iter()
                .map(|t| {
                    json!({"node": t.node, "at_s": round3(ms(t.at_ns) / 1000.0), "epoch": t.epoch,
                        "reason": t.reason, "during_fault": t.during_fault, "false_takeover": t.false_takeover})
                })
                .collect();
            j["faults"] = Value::Array(faults);
            j["takeovers"] = Value::Array(takeovers);
            j["lost_examples"] = json!(a.lost_examples);
            j["mismatch_examples"] = json!(a.mismatch_examples);
            j["mismatch_first_frame"] = json!(a.mismatch_first_frame);
            j["missed_examples"] = json!(a.missed_examples);
            j["input_lost"] = json!(a.input_lost_frames);
            j["commit_lost"] = json!(a.commit_lost);
            j["aborted"] = json!(self.aborted);
            j["extra"] = self.extra.clone();
        }
        j
    }

    /// A summary for people.
    pub fn summary(&self) -> String {
        let a = &self.analysis;
        let f = self.failover_ms();
        let mut s = String::new();
        let _ = writeln!(
            s,
            "twinloop-sim {}: {:.1} s, seed {}, cycle {} ms, timing {} (heartbeat {} ms, window {} ms, probe {} ms)",
            self.command,
            self.duration_s,
            self.seed,
            self.cycle_ms,
            self.timing.name,
            self.timing.heartbeat_ms,
            self.timing.window_ms,
            self.timing.probe_ms
        );
        let _ = writeln!(
            s,
            "  frames {}, faults {}, takeovers {}, switchovers {}, fenced {}, state transfers {}",
            a.frames,
            self.faults.len(),
            a.takeovers.len(),
            a.switchovers,
            a.fenced,
            a.transfers
        );
        for r in &self.faults {
            let _ = writeln!(
                s,
                "  #{:<3} {:<32} on {:<6} at {:>7.3} s  {}{}{} missed cycles {:>3}{}",
                r.index,
                r.fault.label(),
                if r.target == 0 {
                    "links".to_string()
                } else {
                    format!("node {}", r.target)
                },
                ms(r.start_ns) / 1000.0,
                r.failover_ms.map_or(String::new(), |v| format!("failover {v:.2} ms, ")),
                r.switchover_ms
                    .map_or(String::new(), |v| format!("switchover {v:.2} ms, ")),
                r.recovered_ns.map_or("NOT RECOVERED,".into(), |n| format!(
                    "recovered +{:.2} s,",
                    ms(n - r.start_ns) / 1000.0
                )),
                r.missed_cycles,
                r.error
                    .as_ref()
                    .map_or(String::new(), |e| format!("  [{}]", first_line(e)))
            );
        }
        let _ = writeln!(
            s,
            "  failover ms (kills): n {} p50 {:.2} p99 {:.2} max {:.2}",
            f.count, f.p50, f.p99, f.max
        );
        let _ = writeln!(
            s,
            "  outputs: expected {}, delivered {}, lost {}, skipped {}, duplicated after dedup {}, duplicates dropped {}, unexpected {}, content mismatches {}",
            a.outputs_expected,
            a.outputs_delivered,
            a.outputs_lost,
            a.outputs_skipped,
            a.outputs_duplicated,
            a.duplicates_raw,
            a.outputs_unexpected,
            a.content_mismatches
        );
        if a.levels_expected > 0 {
            let _ = writeln!(
                s,
                "  levels: produced {}, delivered {}, keys whose last value the sink lacks {}",
                a.levels_expected, a.levels_delivered, a.levels_final_behind
            );
        }
        if let Some(l) = &a.level_staleness {
            let p = l.percentiles();
            let _ = writeln!(
                s,
                "  level staleness after the output path healed (refresh {} ms): keys {}, ms p50 {:.2} p99 {:.2} max {:.2}, not caught up {}",
                l.refresh_ms,
                l.keys.len(),
                p.p50,
                p.p99,
                p.max,
                l.unhealed()
            );
        }
        let _ = writeln!(
            s,
            "  fencing: stale epochs rejected {}, deposed primary accepted {}, accepted in the deposed window {}",
            a.stale_epoch_rejected, a.dual_primary_accepted, a.deposed_window_accepted
        );
        let _ = writeln!(
            s,
            "  cycles: latency ms p50 {:.3} p99 {:.3} max {:.3}; missed {} ({} outside faults), most in one fault {}",
            a.latency_ms.p50,
            a.latency_ms.p99,
            a.latency_ms.max,
            a.missed_cycles_total,
            a.missed_cycles_outside_faults,
            a.missed_cycles_max
        );
        let _ = writeln!(
            s,
            "  false takeovers {}, false deaths (probe answered) {}, divergence alarms {}, skipped frames {}, frames decided without their commit {}",
            a.false_takeovers(),
            a.false_deaths,
            a.divergence_alarms,
            a.input_lost_frames.len(),
            a.commit_lost_frames()
        );
        let cut_off = self.faults.iter().filter(|r| r.minority.is_some()).count();
        if cut_off > 0 {
            let _ = writeln!(
                s,
                "  backups cut off from the group (partition_backup) {cut_off}: minority_led {}, not judged {}",
                self.minority_led(),
                self.minority_unjudged()
            );
        }
        let safety = self.safety_violations();
        let liveness = self.liveness_violations();
        if safety.is_empty() && liveness.is_empty() {
            let _ = writeln!(s, "  verdict: OK — every invariant held");
        } else {
            for v in safety {
                let _ = writeln!(s, "  SAFETY VIOLATION: {v}");
            }
            for v in liveness {
                let _ = writeln!(s, "  LIVENESS VIOLATION: {}", first_line(&v));
            }
        }
        s
    }

    /// Writes `report.json` and `plot.svg` into `dir`.
    pub fn write(&self, dir: &Path, samples: &[Sample], events: &[NodeEvent]) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let json = serde_json::to_string_pretty(&self.to_json(true)).unwrap_or_default();
        std::fs::write(dir.join("report.json"), json + "\n")?;
        let marks = marks(&self.faults, events);
        let title = format!(
            "twinloop-sim {}: tank level and setpoint, seed {}, cycle {} ms, {} faults",
            self.command,
            self.seed,
            self.cycle_ms,
            self.faults.len()
        );
        std::fs::write(dir.join("plot.svg"), plot::render(&title, "level mm", samples, &marks))
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

/// Plot marks: every fault, takeover and completed switchover.
pub fn marks(faults: &[FaultRecord], events: &[NodeEvent]) -> Vec<Mark> {
    let mut marks: Vec<Mark> = faults
        .iter()
        .map(|r| Mark {
            t_ms: ms(r.start_ns),
            kind: MarkKind::Fault,
            label: format!(
                "#{} {}{}",
                r.index,
                r.fault.kind.name(),
                if r.target == 0 {
                    String::new()
                } else {
                    format!(" n{}", r.target)
                }
            ),
        })
        .collect();
    for e in events {
        let kind = if e.is_takeover() {
            MarkKind::Takeover
        } else if e.kind == EventKind::Transition && e.name == "switchover_completed" {
            MarkKind::Switchover
        } else {
            continue;
        };
        marks.push(Mark {
            t_ms: ms(e.at_ns),
            kind,
            label: format!(
                "n{} {}",
                e.node,
                if kind == MarkKind::Takeover {
                    "takeover"
                } else {
                    "switchover"
                }
            ),
        });
    }
    marks.sort_by(|a, b| a.t_ms.total_cmp(&b.t_ms));
    marks
}

#[cfg(test)]
mod tests {
    use super::super::plant_loop::FrameLog;
    use super::super::schedule::{Fault, FaultKind};
    use super::*;
    use twinloop::app::Outbox;
    use twinloop::io_protocol::{decode_output, encode_output};

    /// Frames 1..=n, each with one output `[frame]`, and a second output on frame 3.
    fn frames(n: u64) -> FrameLog {
        let mut log = FrameLog::default();
        for frame in 1..=n {
            let mut outbox = Outbox::new();
            outbox.push(&[frame as u8]).unwrap();
            if frame == 3 {
                outbox.push(b"alarm").unwrap();
            }
            log.push(frame, frame * 10_000_000, &outbox);
        }
        log
    }

    fn deliver(sink: &mut SinkLog, at_ns: u64, epoch: u64, frame: u64, index: u8, payload: &[u8]) {
        let mut buf = [0u8; 128];
        let len = encode_output((epoch & 0xFF) as u8, epoch, frame, index, payload, &mut buf).unwrap();
        sink.offer(at_ns, &decode_output(&buf[..len]).unwrap());
    }

    fn deliver_level(sink: &mut SinkLog, at_ns: u64, frame: u64, index: u8, key: u16, payload: &[u8]) {
        let mut buf = [0u8; 128];
        let kind = twinloop::app::OutputKind::Level { key };
        let len = twinloop::io_protocol::encode_output_kind(1, 0x101, frame, index, kind, payload, &mut buf).unwrap();
        sink.offer(at_ns, &decode_output(&buf[..len]).unwrap());
    }

    /// Six frames 10 ms apart, a command each; levels: key 0 in frames 1 and 4, key 1 in
    /// frames 1 and 6.
    fn frames_with_levels() -> FrameLog {
        let mut log = FrameLog {
            levels_apart: true,
            ..FrameLog::default()
        };
        for frame in 1..=6u64 {
            let mut outbox = Outbox::new();
            outbox.push(&[frame as u8]).unwrap();
            match frame {
                1 => {
                    outbox.push_level(0, b"a").unwrap();
                    outbox.push_level(1, b"x").unwrap();
                }
                4 => outbox.push_level(0, b"b").unwrap(),
                6 => outbox.push_level(1, b"y").unwrap(),
                _ => {}
            }
            log.push(frame, frame * 10_000_000, &outbox);
        }
        log
    }

    /// Levels are not counted lost when the pair never sent one (only the newest of a key
    /// counts); after the heal, each key's staleness runs until the sink holds the value
    /// it should have had at the heal, or a newer one.
    #[test]
    fn levels_apart_from_losses_and_stale_from_the_heal_until_held() {
        let frames = frames_with_levels();
        assert!(frames.is_level(1, 2) && frames.is_level(4, 1) && !frames.is_level(4, 0));
        let mut sink = SinkLog::new(1000);
        for frame in 1..=6u64 {
            deliver(
                &mut sink,
                frame * 10_000_000 + 1_000_000,
                0x101,
                frame,
                0,
                &[frame as u8],
            );
        }
        deliver_level(&mut sink, 11_000_000, 1, 1, 0, b"a");
        // (1, 2) "x" and (4, 1) "b" lost on the path; "b" refreshed at 60 ms.
        deliver_level(&mut sink, 60_000_000, 4, 1, 0, b"b");
        let a = analyse(&frames, &sink, &[], &mut [], 6, 10);
        assert_eq!((a.outputs_expected, a.outputs_lost, a.outputs_delivered), (6, 0, 6));
        assert_eq!(
            (a.levels_expected, a.levels_delivered, a.levels_final_behind),
            (4, 2, 1)
        );
        let healed_ns = 45_000_000;
        let l = level_staleness(&frames, &sink, healed_ns, 20, 6);
        assert_eq!(l.keys, vec![(0, Some(15.0)), (1, None)], "key 1 never caught up");
        assert_eq!(l.unhealed(), 1);
        // Key 1's newer value arrives: the sink holds one at least as new as "x".
        deliver_level(&mut sink, 61_000_000, 6, 1, 1, b"y");
        let l = level_staleness(&frames, &sink, healed_ns, 20, 6);
        assert_eq!(l.keys, vec![(0, Some(15.0)), (1, Some(16.0))]);
        assert_eq!((l.percentiles().max, l.unhealed()), (16.0, 0));
        assert_eq!(analyse(&frames, &sink, &[], &mut [], 6, 10).levels_final_behind, 0);
        // A value held before the heal is not stale at all.
        assert_eq!(
            level_staleness(&frames, &sink, 70_000_000, 20, 6).keys,
            vec![(0, Some(0.0)), (1, Some(0.0))]
        );
    }

    fn record(index: usize, kind: FaultKind, start_ns: u64, end_ns: u64) -> FaultRecord {
        FaultRecord {
            index,
            fault: Fault { kind, hold_ms: 10 },
            expect: kind.expect(&Timing::HARNESS, 10),
            target: 1,
            primary_before: 1,
            epoch_before: 0x101,
            start_ns,
            end_ns,
            recovered_ns: Some(end_ns),
            primary_after: Some(1),
            new_epoch: None,
            failover_ms: None,
            switchover_ms: None,
            missed_cycles: 0,
            error: None,
            minority: None,
        }
    }

    fn report(analysis: Analysis, faults: Vec<FaultRecord>) -> Report {
        Report {
            command: "chaos".into(),
            seed: 1,
            cycle_ms: 10,
            timing: Timing::HARNESS,
            duration_s: 1.0,
            faults,
            analysis,
            aborted: None,
            liveness_failures: Vec::new(),
            extra: Value::Null,
        }
    }

    #[test]
    fn reference_comparison_finds_lost_mismatched_and_late() {
        let log = frames(5);
        let mut sink = SinkLog::new(100);
        // Frame 1 on time, 2 late (a missed cycle), 3's alarm lost, 4 with other content.
        deliver(&mut sink, 10_000_000 + 100_000, 0x101, 1, 0, &[1]);
        deliver(&mut sink, 20_000_000 + 15_000_000, 0x101, 2, 0, &[2]);
        deliver(&mut sink, 30_000_000 + 100_000, 0x101, 3, 0, &[3]);
        deliver(&mut sink, 40_000_000 + 100_000, 0x101, 4, 0, &[99]);
        deliver(&mut sink, 50_000_000 + 100_000, 0x101, 5, 0, &[5]);
        deliver(&mut sink, 50_000_000 + 200_000, 0x101, 5, 1, b"extra");
        let mut faults = vec![record(0, FaultKind::KillPrimary, 15_000_000, 25_000_000)];
        let a = analyse(&log, &sink, &[], &mut faults, 5, 10);
        assert_eq!(a.outputs_expected, 6);
        assert_eq!(a.outputs_lost, 1);
        assert_eq!(a.lost_examples, vec![(3, 1)]);
        assert_eq!(a.content_mismatches, 1);
        assert_eq!(a.outputs_unexpected, 1);
        assert_eq!(a.mismatch_first_frame, Some(4));
        assert_eq!(a.missed_cycles_total, 1);
        assert_eq!(faults[0].missed_cycles, 1, "frame 2 was sent during the fault");
        assert_eq!(a.missed_cycles_outside_faults, 0);
        let r = report(a, faults);
        assert_eq!(r.exit_code(), EXIT_SAFETY);
        assert_eq!(r.safety_violations().len(), 2, "lost, and unexplained mismatches");
    }

    #[test]
    fn skipped_frames_are_reported_apart_and_explain_later_mismatches() {
        let log = frames(4);
        let mut sink = SinkLog::new(100);
        deliver(&mut sink, 10_100_000, 0x101, 1, 0, &[1]);
        // Frame 2 skipped by the pair; frame 3 onward differs from the reference.
        deliver(&mut sink, 30_100_000, 0x202, 3, 0, &[77]);
        deliver(&mut sink, 30_200_000, 0x202, 3, 1, b"alarm");
        deliver(&mut sink, 40_100_000, 0x202, 4, 0, &[78]);
        let events = vec![NodeEvent {
            node: 2,
            boot_id: 1,
            seq: 1,
            at_ns: 25_000_000,
            kind: EventKind::Alarm,
            name: "input_lost".into(),
            epoch: None,
            frame: Some(2),
            frame_last: None,
            role: None,
            bytes: None,
            message: String::new(),
        }];
        let a = analyse(&log, &sink, &events, &mut [], 4, 10);
        assert_eq!((a.outputs_lost, a.outputs_skipped, a.content_mismatches), (0, 1, 2));
        assert_eq!(a.input_lost_frames, vec![2]);
        let r = report(a, Vec::new());
        assert!(r.safety_violations().is_empty(), "{:?}", r.safety_violations());
        assert_eq!(r.exit_code(), 0);
    }

    #[test]
    fn commit_lost_frames_are_reported_apart_and_explain_later_mismatches() {
        let log = frames(5);
        let mut sink = SinkLog::new(100);
        deliver(&mut sink, 10_100_000, 0x101, 1, 0, &[1]);
        // Frames 2..=3 decided by the new primary without the old primary's commits: frame
        // 2 skipped (nothing delivered), frame 3 run on its own input (one output where the
        // reference made two), frame 4 onward differs from the reference.
        deliver(&mut sink, 30_100_000, 0x202, 3, 0, &[77]);
        deliver(&mut sink, 40_100_000, 0x202, 4, 0, &[78]);
        deliver(&mut sink, 50_100_000, 0x202, 5, 0, &[79]);
        let alarm = NodeEvent {
            node: 2,
            boot_id: 1,
            seq: 1,
            at_ns: 25_000_000,
            kind: EventKind::Alarm,
            name: "commit_lost".into(),
            epoch: None,
            frame: Some(2),
            frame_last: Some(3),
            role: None,
            bytes: None,
            message: String::new(),
        };
        let a = analyse(&log, &sink, std::slice::from_ref(&alarm), &mut [], 5, 10);
        assert_eq!((a.outputs_lost, a.outputs_skipped, a.content_mismatches), (0, 2, 3));
        assert_eq!((a.commit_lost.clone(), a.commit_lost_frames()), (vec![(2, 3)], 2));
        let r = report(a, Vec::new());
        assert!(r.safety_violations().is_empty(), "{:?}", r.safety_violations());
        // Without the alarm the same deliveries are a loss and unexplained mismatches.
        let a = analyse(&log, &sink, &[], &mut [], 5, 10);
        assert_eq!((a.outputs_lost, a.outputs_skipped), (2, 0));
        assert_eq!(report(a, Vec::new()).safety_violations().len(), 2);
    }

    #[test]
    fn commit_lost_frames_overlapping_ranges_counted_once() {
        let a = Analysis {
            commit_lost: vec![(2, 5), (4, 8), (10, 10)],
            ..Analysis::default()
        };
        assert_eq!(a.commit_lost_frames(), 8);
        assert_eq!(a.first_undecided_frame(), Some(2));
    }

    #[test]
    fn takeover_during_a_short_freeze_is_false() {
        let log = frames(2);
        let mut sink = SinkLog::new(100);
        deliver(&mut sink, 10_100_000, 0x101, 1, 0, &[1]);
        deliver(&mut sink, 20_100_000, 0x101, 2, 0, &[2]);
        let takeover = |at_ns| NodeEvent {
            node: 2,
            boot_id: 1,
            seq: 5,
            at_ns,
            kind: EventKind::Transition,
            name: "takeover_after_probe".into(),
            epoch: Some(0x202),
            frame: Some(1),
            frame_last: None,
            role: Some(twinloop::io::schema::Role::Primary),
            bytes: None,
            message: String::new(),
        };
        let mut faults = vec![
            record(0, FaultKind::FreezePrimaryShort, 1_000_000_000, 1_100_000_000),
            record(1, FaultKind::KillPrimary, 5_000_000_000, 6_000_000_000),
        ];
        let events = vec![takeover(1_050_000_000), takeover(5_200_000_000)];
        let a = analyse(&log, &sink, &events, &mut faults, 2, 10);
        assert_eq!(a.takeovers.len(), 2);
        assert_eq!(a.false_takeovers(), 1);
        assert_eq!(a.takeovers[0].during_fault, Some(0));
        let r = report(a, faults);
        assert_eq!(r.exit_code(), EXIT_LIVENESS);
    }

    #[test]
    fn report_json_has_the_fields_scripts_depend_on() {
        let log = frames(1);
        let mut sink = SinkLog::new(100);
        deliver(&mut sink, 10_100_000, 0x101, 1, 0, &[1]);
        let mut faults = vec![record(0, FaultKind::KillPrimary, 0, 1)];
        faults[0].failover_ms = Some(7.5);
        let a = analyse(&log, &sink, &[], &mut faults, 1, 10);
        let r = report(a, faults);
        let j = r.to_json(false);
        for key in [
            "faults_injected",
            "failovers",
            "switchovers",
            "missed_cycles_max",
            "outputs_expected",
            "outputs_lost",
            "outputs_duplicated",
            "duplicates_raw",
            "stale_epoch_rejected",
            "dual_primary_accepted",
            "false_takeovers",
            "minority_led",
        ] {
            assert!(j[key].is_u64(), "{key} is a count: {j}");
        }
        for key in ["p50", "p99", "max"] {
            assert!(j["failover_ms"][key].is_number(), "failover_ms.{key}");
        }
        assert_eq!(j["failover_ms"]["max"], 7.5);
        assert_eq!(j["ok"], true);
        let line = j.to_string();
        assert!(!line.contains('\n'), "one line");
        let detail = r.to_json(true);
        assert_eq!(detail["faults"][0]["kind"], "kill_primary");
        assert!(r.summary().contains("verdict: OK"));
    }

    #[test]
    fn report_writes_json_and_plot() {
        let dir = std::env::temp_dir().join(format!("twinloop-sim-report-{}", std::process::id()));
        let r = report(Analysis::default(), vec![record(0, FaultKind::Partition, 0, 1)]);
        let samples = [Sample {
            t_ms: 0.0,
            pv: 1.0,
            sp: 2.0,
        }];
        r.write(&dir, &samples, &[]).unwrap();
        let json: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
        assert_eq!(json["faults_injected"], 1);
        let svg = std::fs::read_to_string(dir.join("plot.svg")).unwrap();
        assert!(svg.contains("#0 partition"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// `minority_led` counts the `partition_backup` faults whose cut-off backup led, in
    /// report.json and the text; a non-zero count is a safety violation (exit 10), one
    /// that could not be judged a liveness one (exit 11).
    #[test]
    fn partition_backup_minority_led_is_counted_and_fails_the_run() {
        use super::super::schedule::MinorityWatch;
        let watch = MinorityWatch {
            node: 3,
            takeovers_before: Some(0),
            takeovers_after: Some(0),
            epoch_before: Some(0x101),
            epoch_max: 0x101,
            polls: 40,
            answered: 40,
            primary_seen: 0,
            own_term_seen: false,
        };
        let cut = |index, watch: MinorityWatch| {
            let mut r = record(
                index,
                FaultKind::PartitionBackup,
                index as u64 * 10,
                index as u64 * 10 + 5,
            );
            r.target = watch.node;
            r.minority = Some(watch);
            r
        };
        // Followed throughout: 0, the run is OK.
        let r = report(Analysis::default(), vec![cut(0, watch)]);
        assert_eq!(r.expect_minority(), (0, 0));
        assert_eq!(r.to_json(false)["minority_led"], 0);
        assert_eq!(r.to_json(true)["faults"][0]["minority"]["led"], false);
        assert!(
            r.summary().contains("(partition_backup) 1: minority_led 0"),
            "{}",
            r.summary()
        );
        assert_eq!(r.exit_code(), 0);
        // Seen primary during the hold: counted, a safety violation.
        let led = MinorityWatch {
            primary_seen: 3,
            ..watch
        };
        let r = report(Analysis::default(), vec![cut(0, watch), cut(1, led)]);
        assert_eq!(r.expect_minority(), (1, 0));
        assert_eq!(r.to_json(false)["minority_led"], 1);
        assert!(r.summary().contains("minority_led 1"));
        assert!(
            r.safety_violations().iter().any(|v| v.contains("#1 node 3")),
            "{:?}",
            r.safety_violations()
        );
        assert_eq!(r.exit_code(), EXIT_SAFETY);
        // Its console never answered: not judged, a liveness failure.
        let mute = MinorityWatch {
            node: 3,
            polls: 40,
            ..MinorityWatch::default()
        };
        let r = report(Analysis::default(), vec![cut(0, mute)]);
        assert_eq!(r.expect_minority(), (0, 1));
        assert_eq!(r.exit_code(), EXIT_LIVENESS);
    }
}
