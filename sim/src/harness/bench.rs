//! The figures of DESIGN.md "Numbers to reach", measured on real processes.
//!
//! - **failover**: primary SIGKILLed → first output of the new primary delivered at the
//!   sink; the killed node is restarted and rejoins before the next kill.
//! - **switchover**: planned switchovers over the console; missed cycles (frames whose
//!   command was not delivered within one cycle of being sent) between the command and
//!   recovery, and duplicates at the sink (copies of a delivered id).
//! - **overhead**: the primary's CPU time per cycle and its median frame → command
//!   latency, paired vs alone (no peer), in alternating rounds.
//! - **join**: a backup started late against a primary running with a large application
//!   state: spawn → the backup's `in_sync` transition (its journal's stamp), and the
//!   primary's missed deadlines meanwhile.
//!
//! Each returns one JSON object (the fields scripts rely on first) and prints its
//! progress and a summary to stderr.
#![allow(clippy::disallowed_methods)]

use super::report::{analyse, Analysis};
use super::rig::{Rig, RigConfig};
use super::schedule::{inject, repair, Fault, FaultKind, FaultRecord};
use super::{ms, round3, HarnessError, Percentiles};
use serde_json::{json, Value};
use std::time::Duration;
use twinloop::io::schema::EventKind;

/// The settings every benchmark shares.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// The rig (dir, binary, cycle, timing, proxy, ballast…).
    pub rig: RigConfig,
    /// Repetitions: kills, switchovers, rounds or joins.
    pub count: usize,
    /// How long the pair runs in sync before each repetition, ms.
    pub settle_ms: u64,
    /// For `overhead`: seconds measured per round and configuration.
    pub seconds: u64,
}

/// The outcome of a benchmark: its JSON line and whether its invariants held.
#[derive(Debug, Clone)]
pub struct BenchResult {
    /// The JSON object.
    pub json: Value,
    /// Problems seen (outputs lost, duplicated after dedup, false takeovers…).
    pub problems: Vec<String>,
}

fn collect_events(rig: &Rig) -> Vec<super::procs::NodeEvent> {
    let mut events: Vec<_> = rig.watchers.iter().flat_map(|w| w.with(|v| v.events.clone())).collect();
    events.sort_by_key(|e| e.at_ns);
    events
}

/// Drains, waits for the journals and analyses the run against the reference.
fn finish(rig: &Rig, records: &mut [FaultRecord]) -> Result<Analysis, HarnessError> {
    let last = rig.drain()?;
    rig.sleep(rig.config.watch_interval * 3)?;
    let sink = rig.sink_log();
    let events = collect_events(rig);
    Ok(rig
        .plant
        .with_frames(|frames| analyse(frames, &sink, &events, records, last, rig.config.cycle_ms)))
}

fn problems_of(a: &Analysis, failures: &[String]) -> Vec<String> {
    let mut p: Vec<String> = failures.to_vec();
    if a.outputs_lost > 0 {
        p.push(format!("{} output(s) lost, e.g. {:?}", a.outputs_lost, a.lost_examples));
    }
    if a.outputs_duplicated > 0 {
        p.push(format!("{} output(s) delivered twice", a.outputs_duplicated));
    }
    if a.dual_primary_accepted > 0 {
        p.push(format!(
            "{} deposed-primary output(s) accepted",
            a.dual_primary_accepted
        ));
    }
    if a.false_takeovers() > 0 {
        p.push(format!("{} false takeover(s)", a.false_takeovers()));
    }
    if a.content_mismatches + a.outputs_unexpected > 0 && a.first_undecided_frame().is_none() {
        p.push(format!(
            "{} output(s) differ from the reference",
            a.content_mismatches + a.outputs_unexpected
        ));
    }
    p
}

/// Runs `count` faults of `kind` back to back with `settle_ms` in between; returns the
/// records and the liveness failures.
fn repeat(
    rig: &mut Rig,
    kinds: impl Fn(usize) -> FaultKind,
    count: usize,
    settle_ms: u64,
) -> Result<(Vec<FaultRecord>, Vec<String>), HarnessError> {
    let mut records = Vec::with_capacity(count);
    let mut failures = Vec::new();
    for k in 0..count {
        let kind = kinds(k);
        rig.sleep(Duration::from_millis(settle_ms))?;
        let fault = Fault { kind, hold_ms: 0 };
        match inject(rig, k, fault) {
            Ok(record) => {
                if let Some(e) = &record.error {
                    failures.push(format!("#{k}: {}", e.lines().next().unwrap_or("")));
                    if record.recovered_ns.is_none() {
                        repair(rig)?;
                    }
                }
                records.push(record);
            }
            Err(HarnessError::Interrupted) => return Err(HarnessError::Interrupted),
            Err(e) => {
                failures.push(format!("#{k}: {}", e.to_string().lines().next().unwrap_or("")));
                repair(rig)?;
            }
        }
    }
    Ok((records, failures))
}

/// `bench failover`: `count` kills of the primary.
pub fn failover(config: &BenchConfig) -> Result<BenchResult, HarnessError> {
    let mut rig = Rig::prepare(config.rig.clone())?;
    rig.start_pair()?;
    let (mut records, failures) = repeat(&mut rig, |_| FaultKind::KillPrimary, config.count, config.settle_ms)?;
    let a = finish(&rig, &mut records)?;
    let times: Vec<f64> = records.iter().filter_map(|r| r.failover_ms).collect();
    let p = Percentiles::of(&times);
    let bound_ms = config.rig.timing.takeover_ms() as f64 + 2.0 * f64::from(config.rig.cycle_ms);
    let over_bound = times.iter().filter(|&&t| t > bound_ms).count();
    let json = json!({
        "kills": times.len(),
        "cycle_ms": config.rig.cycle_ms,
        "failover_ms": p.to_json(),
        "timing": config.rig.timing.to_json(),
        "design_bound_ms": bound_ms,
        "over_design_bound": over_bound,
        "missed_cycles_max": a.missed_cycles_max,
        "outputs_expected": a.outputs_expected,
        "outputs_lost": a.outputs_lost,
        "outputs_duplicated": a.outputs_duplicated,
        "duplicates_raw": a.duplicates_raw,
        "false_takeovers": a.false_takeovers(),
        "failures": failures.len(),
    });
    eprintln!(
        "bench failover: {} kills at a {} ms cycle ({} timing): failover ms p50 {:.3} p99 {:.3} max {:.3}; {} above window + probe + 2 cycles ({bound_ms} ms)",
        times.len(),
        config.rig.cycle_ms,
        config.rig.timing.name,
        p.p50,
        p.p99,
        p.max,
        over_bound
    );
    Ok(BenchResult {
        json,
        problems: problems_of(&a, &failures),
    })
}

/// `bench switchover`: `count` planned switchovers, alternately asked of the primary
/// and of the backup.
pub fn switchover(config: &BenchConfig) -> Result<BenchResult, HarnessError> {
    let mut rig = Rig::prepare(config.rig.clone())?;
    rig.start_pair()?;
    let kinds = |k: usize| {
        if k % 2 == 0 {
            FaultKind::Switchover
        } else {
            FaultKind::SwitchoverViaBackup
        }
    };
    let (mut records, failures) = repeat(&mut rig, kinds, config.count, config.settle_ms)?;
    let a = finish(&rig, &mut records)?;
    // Frames sent inside the switchovers' windows and outside: the miss rates tell the
    // mechanism's misses from the host's jitter.
    let (frames_inside, frames_total) = rig.plant.with_frames(|frames| {
        let inside = (1..=frames.frames())
            .filter(|&f| {
                let sent = frames.sent_ns(f).unwrap_or(0);
                records.iter().any(|r| (r.start_ns..=r.window_end_ns()).contains(&sent))
            })
            .count() as u64;
        (inside, frames.frames())
    });
    let missed_inside: u64 = records.iter().map(|r| r.missed_cycles).sum();
    let rate = |missed: u64, frames: u64| round3(missed as f64 / frames.max(1) as f64 * 100.0);
    let completed = records.iter().filter(|r| r.switchover_ms.is_some()).count();
    let times: Vec<f64> = records.iter().filter_map(|r| r.switchover_ms).collect();
    let json = json!({
        "switchovers": completed,
        "missed_cycles_max": a.missed_cycles_max,
        "duplicates": a.duplicates_raw,
        "cycle_ms": config.rig.cycle_ms,
        "timing": config.rig.timing.to_json(),
        "missed_cycles_total": records.iter().map(|r| r.missed_cycles).sum::<u64>(),
        "missed_cycles_outside_switchovers": a.missed_cycles_outside_faults,
        "frames_inside_switchovers": frames_inside,
        "frames_outside_switchovers": frames_total - frames_inside,
        "missed_percent_inside": rate(missed_inside, frames_inside),
        "missed_percent_outside": rate(a.missed_cycles_outside_faults, frames_total - frames_inside),
        "switchover_ms": Percentiles::of(&times).to_json(),
        "outputs_expected": a.outputs_expected,
        "outputs_lost": a.outputs_lost,
        "outputs_duplicated": a.outputs_duplicated,
        "takeovers": a.takeovers.len(),
        "failures": failures.len(),
        "missed_examples": a.missed_examples,
    });
    eprintln!(
        "bench switchover: {completed} of {} completed at a {} ms cycle: missed cycles max {} (total {missed_inside} = {:.2} % of {frames_inside} frames inside; {} = {:.2} % outside), duplicates {}",
        config.count,
        config.rig.cycle_ms,
        a.missed_cycles_max,
        rate(missed_inside, frames_inside),
        a.missed_cycles_outside_faults,
        rate(a.missed_cycles_outside_faults, frames_total - frames_inside),
        a.duplicates_raw
    );
    let mut problems = problems_of(&a, &failures);
    if !a.takeovers.is_empty() {
        problems.push(format!("{} takeover(s) during planned switchovers", a.takeovers.len()));
    }
    Ok(BenchResult { json, problems })
}

/// One measured window: CPU ns of a process and the frame → command latencies.
#[derive(Debug, Clone, Copy, Default)]
struct Window {
    cpu_ns: u64,
    frames: u64,
    latency_p50_ms: f64,
    latency_p99_ms: f64,
    missed: u64,
    /// Datagrams on the output path (issue 22): node → sink (first copies, re-sends,
    /// refreshes), sink → node (acks).
    path: PathDatagrams,
}

/// Datagrams on the output path, counted where they are sent: at the output-path proxy
/// when there is one (before its faults), else at the sink (on loopback nothing is lost).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct PathDatagrams {
    outputs: u64,
    acks: u64,
}

impl PathDatagrams {
    fn now(rig: &Rig) -> PathDatagrams {
        match &rig.output_proxy {
            Some(p) => PathDatagrams {
                outputs: p.counters(false).received,
                acks: p.counters(true).received,
            },
            None => rig.sink.with(|l| PathDatagrams {
                outputs: l.raw + l.malformed,
                acks: l.gateway.counters().acks_sent,
            }),
        }
    }

    fn since(self, before: PathDatagrams) -> PathDatagrams {
        PathDatagrams {
            outputs: self.outputs.saturating_sub(before.outputs),
            acks: self.acks.saturating_sub(before.acks),
        }
    }
}

/// Measures node `i` of a running rig over `seconds` (console polling paused).
fn measure(rig: &Rig, i: usize, seconds: u64) -> Result<Window, HarnessError> {
    for w in &rig.watchers {
        w.set_paused(true);
    }
    // Let the pause take effect and the pair settle.
    rig.sleep(Duration::from_millis(500))?;
    let pid = rig.nodes[i]
        .pid()
        .ok_or_else(|| HarnessError::Stuck("the measured node is not running".into()))?;
    let cpu_before = super::procs::cpu_ns(pid).unwrap_or(0);
    let path_before = PathDatagrams::now(rig);
    let first = rig.plant.frames_sent() + 1;
    rig.sleep(Duration::from_secs(seconds))?;
    let cpu_after = super::procs::cpu_ns(pid).unwrap_or(0);
    let path = PathDatagrams::now(rig).since(path_before);
    let last = rig.plant.frames_sent();
    for w in &rig.watchers {
        w.set_paused(false);
    }
    // The last frames' commands may still be in flight.
    rig.sleep(Duration::from_millis(50))?;
    let cycle_ns = u64::from(rig.config.cycle_ms.max(1)) * 1_000_000;
    let sink = rig.sink_log();
    let (latencies, missed) = rig.plant.with_frames(|frames| {
        let mut latencies = Vec::new();
        let mut missed = 0;
        for frame in first..=last {
            let sent = frames.sent_ns(frame).unwrap_or(0);
            match sink.delivered.get(&(frame, 0)) {
                Some(d) => {
                    let latency = d.at_ns.saturating_sub(sent);
                    latencies.push(ms(latency));
                    missed += u64::from(latency > cycle_ns);
                }
                None => missed += 1,
            }
        }
        (latencies, missed)
    });
    let p = Percentiles::of(&latencies);
    Ok(Window {
        cpu_ns: cpu_after.saturating_sub(cpu_before),
        frames: last.saturating_sub(first) + 1,
        latency_p50_ms: p.p50,
        latency_p99_ms: p.p99,
        missed,
        path,
    })
}

/// `bench overhead`: `count` rounds of (solo, pair), `seconds` each.
pub fn overhead(config: &BenchConfig) -> Result<BenchResult, HarnessError> {
    let mut rounds = Vec::new();
    for round in 0..config.count.max(1) {
        let mut solo_config = config.rig.clone();
        solo_config.dir = config.rig.dir.join(format!("round{round}-solo"));
        let solo = {
            let mut rig = Rig::prepare(solo_config)?;
            rig.say(&format!("round {round}: one node alone"));
            rig.silence_peer_of(0)?;
            rig.start_node_as_primary(0)?;
            rig.plant.set_sending(true)?;
            measure(&rig, 0, config.seconds)?
        };
        let mut pair_config = config.rig.clone();
        pair_config.dir = config.rig.dir.join(format!("round{round}-pair"));
        let (pair, backup_cpu_ns) = {
            let mut rig = Rig::prepare(pair_config)?;
            rig.say(&format!("round {round}: a pair"));
            let health = rig.start_pair()?;
            let backup_pid = rig.nodes[health.backup()].pid();
            let backup_before = backup_pid.and_then(super::procs::cpu_ns).unwrap_or(0);
            let w = measure(&rig, health.primary, config.seconds)?;
            let backup_after = backup_pid.and_then(super::procs::cpu_ns).unwrap_or(0);
            (w, backup_after.saturating_sub(backup_before))
        };
        eprintln!(
            "bench overhead round {round}: solo {:.2} µs CPU/cycle, latency p50 {:.3} ms; pair primary {:.2} µs/cycle (backup {:.2}), p50 {:.3} ms",
            solo.cpu_ns as f64 / solo.frames.max(1) as f64 / 1e3,
            solo.latency_p50_ms,
            pair.cpu_ns as f64 / pair.frames.max(1) as f64 / 1e3,
            backup_cpu_ns as f64 / pair.frames.max(1) as f64 / 1e3,
            pair.latency_p50_ms
        );
        rounds.push((solo, pair, backup_cpu_ns));
    }
    let per_cycle = |w: &Window| w.cpu_ns as f64 / w.frames.max(1) as f64;
    let cpu_ratios: Vec<f64> = rounds
        .iter()
        .map(|(s, p, _)| per_cycle(p) / per_cycle(s).max(1.0))
        .collect();
    let latency_ratios: Vec<f64> = rounds
        .iter()
        .map(|(s, p, _)| p.latency_p50_ms / s.latency_p50_ms.max(1e-9))
        .collect();
    let median = |v: &[f64]| Percentiles::of(v).p50;
    let cycle_ms = config.rig.cycle_ms.max(1);
    let cycle_ns = f64::from(cycle_ms) * 1e6;
    let mut json = json!({
        "cycle_hz": 1000 / cycle_ms,
        // `--release-mode` (issue 16): in acked mode the pair's outputs wait for the
        // backup's ack; one node alone releases at once.
        "release_mode": match config.rig.outputs_release {
            twinloop::config::OutputsRelease::Immediate => "immediate",
            twinloop::config::OutputsRelease::Acked => "acked",
        },
        "cpu_ratio_pair_vs_solo": round3(median(&cpu_ratios)),
        "latency_ratio_p50": round3(median(&latency_ratios)),
        "rounds": rounds.len(),
        "seconds_per_round": config.seconds,
        "cpu_ratios": cpu_ratios.iter().map(|&r| round3(r)).collect::<Vec<_>>(),
        "latency_ratios": latency_ratios.iter().map(|&r| round3(r)).collect::<Vec<_>>(),
        "solo_cpu_us_per_cycle": round3(median(&rounds.iter().map(|(s, _, _)| per_cycle(s) / 1e3).collect::<Vec<_>>())),
        "pair_primary_cpu_us_per_cycle": round3(median(&rounds.iter().map(|(_, p, _)| per_cycle(p) / 1e3).collect::<Vec<_>>())),
        "pair_backup_cpu_us_per_cycle": round3(median(&rounds.iter().map(|(_, p, b)| *b as f64 / p.frames.max(1) as f64 / 1e3).collect::<Vec<_>>())),
        "pair_primary_cpu_percent_of_cycle": round3(median(&rounds.iter().map(|(_, p, _)| per_cycle(p) / cycle_ns * 100.0).collect::<Vec<_>>())),
        // What pairing adds to the primary's CPU, as a share of the cycle: the other
        // reading of DESIGN.md's "≤ 5 % CPU per cycle".
        "replication_cpu_us_per_cycle": round3(median(&rounds.iter().map(|(s, p, _)| (per_cycle(p) - per_cycle(s)) / 1e3).collect::<Vec<_>>())),
        "replication_cpu_percent_of_cycle": round3(median(&rounds.iter().map(|(s, p, _)| (per_cycle(p) - per_cycle(s)) / cycle_ns * 100.0).collect::<Vec<_>>())),
        "solo_latency_p50_ms": round3(median(&rounds.iter().map(|(s, _, _)| s.latency_p50_ms).collect::<Vec<_>>())),
        "pair_latency_p50_ms": round3(median(&rounds.iter().map(|(_, p, _)| p.latency_p50_ms).collect::<Vec<_>>())),
        "solo_latency_p99_ms": round3(median(&rounds.iter().map(|(s, _, _)| s.latency_p99_ms).collect::<Vec<_>>())),
        "pair_latency_p99_ms": round3(median(&rounds.iter().map(|(_, p, _)| p.latency_p99_ms).collect::<Vec<_>>())),
        "solo_missed_cycles": rounds.iter().map(|(s, _, _)| s.missed).sum::<u64>(),
        "pair_missed_cycles": rounds.iter().map(|(_, p, _)| p.missed).sum::<u64>(),
    });
    // The output path's datagrams a cycle (issue 22), summed over the rounds: counts, not
    // timings, so one round says as much as three.
    let per_cycle_of = |pick: &dyn Fn(&Window) -> u64, of_pair: bool| {
        let (count, frames) = rounds.iter().fold((0u64, 0u64), |(c, f), (s, p, _)| {
            let w = if of_pair { p } else { s };
            (c + pick(w), f + w.frames)
        });
        round3(count as f64 / frames.max(1) as f64)
    };
    json["output_path"] = json!({
        "counted_at": if config.rig.output_path.is_some() { "proxy" } else { "sink" },
        "acks": config.rig.acks,
        "level_refresh_ms": config.rig.level_refresh_ms,
        "loss_ppm": config.rig.output_path.map_or(0, |(o, _)| o.loss_ppm),
        "solo_outputs_per_cycle": per_cycle_of(&|w| w.path.outputs, false),
        "solo_acks_per_cycle": per_cycle_of(&|w| w.path.acks, false),
        "pair_outputs_per_cycle": per_cycle_of(&|w| w.path.outputs, true),
        "pair_acks_per_cycle": per_cycle_of(&|w| w.path.acks, true),
        "pair_outputs": rounds.iter().map(|(_, p, _)| p.path.outputs).sum::<u64>(),
        "pair_acks": rounds.iter().map(|(_, p, _)| p.path.acks).sum::<u64>(),
        "pair_frames": rounds.iter().map(|(_, p, _)| p.frames).sum::<u64>(),
    });
    eprintln!(
        "bench overhead: output path datagrams a cycle (counted at the {}): solo {} out + {} acks, pair {} out + {} acks",
        json["output_path"]["counted_at"].as_str().unwrap_or(""),
        json["output_path"]["solo_outputs_per_cycle"],
        json["output_path"]["solo_acks_per_cycle"],
        json["output_path"]["pair_outputs_per_cycle"],
        json["output_path"]["pair_acks_per_cycle"],
    );
    eprintln!(
        "bench overhead: {} Hz, CPU ratio pair/solo {:.3} (median of {}), latency p50 ratio {:.3}",
        1000 / cycle_ms,
        median(&cpu_ratios),
        rounds.len(),
        median(&latency_ratios)
    );
    Ok(BenchResult {
        json,
        problems: Vec::new(),
    })
}

/// `bench join`: `count` late joins of node 2 against node 1 running alone.
pub fn join(config: &BenchConfig) -> Result<BenchResult, HarnessError> {
    let mut rig = Rig::prepare(config.rig.clone())?;
    rig.start_node_as_primary(0)?;
    rig.plant.set_sending(true)?;
    rig.sleep(Duration::from_millis(config.settle_ms.max(500)))?;
    let mut joins_ms = Vec::new();
    let mut records = Vec::new();
    let mut state_bytes = 0u64;
    let mut failures = Vec::new();
    for k in 0..config.count.max(1) {
        let spawned_ns = rig.clock.now_ns();
        rig.say(&format!("join #{k}: start node 2"));
        rig.nodes[1].spawn()?;
        let mut in_sync_ns = None;
        let waited = rig.wait_starting(1, Duration::from_secs(30), "node 2 in sync", |rig| {
            in_sync_ns = rig.watchers[1].with(|v| {
                v.events
                    .iter()
                    .find(|e| {
                        e.at_ns + 1_000_000 >= spawned_ns && e.kind == EventKind::Transition && e.name == "in_sync"
                    })
                    .map(|e| e.at_ns)
            });
            in_sync_ns.is_some()
        });
        match (waited, in_sync_ns) {
            (Ok(()), Some(at)) => {
                let join_ms = ms(at.saturating_sub(spawned_ns));
                joins_ms.push(join_ms);
                rig.say(&format!("join #{k}: in sync after {join_ms:.1} ms"));
            }
            (Err(HarnessError::Interrupted), _) => return Err(HarnessError::Interrupted),
            (result, _) => failures.push(format!("join #{k}: {result:?}")),
        }
        if let Some(bytes) = rig.watchers[0].with(|v| {
            v.events
                .iter()
                .rev()
                .find(|e| e.name == "transfer_started" && e.at_ns + 1_000_000 >= spawned_ns)
                .and_then(|e| e.bytes)
        }) {
            state_bytes = bytes;
        }
        // Stay paired a while, then take the backup away for the next join.
        rig.sleep(Duration::from_millis(config.settle_ms))?;
        // The join's window: spawn → in sync + 100 ms (the pair's ordinary running after
        // that is not the join's doing, and counts as outside).
        let now_ns = rig.clock.now_ns();
        let end_ns = in_sync_ns.map_or(now_ns, |at| (at + 100_000_000).min(now_ns));
        records.push(FaultRecord {
            index: k,
            fault: Fault {
                kind: FaultKind::KillBackup,
                hold_ms: 0,
            },
            expect: super::schedule::Expect::NoTakeover,
            target: 2,
            primary_before: 1,
            epoch_before: 0,
            start_ns: spawned_ns,
            end_ns,
            recovered_ns: in_sync_ns.map(|_| end_ns),
            primary_after: Some(1),
            new_epoch: None,
            failover_ms: None,
            switchover_ms: None,
            missed_cycles: 0,
            error: None,
            minority: None,
        });
        rig.nodes[1].kill();
        rig.watchers[1].forget_status();
        rig.sleep(Duration::from_millis(300))?;
    }
    let a = finish(&rig, &mut records)?;
    let missed: u64 = records.iter().map(|r| r.missed_cycles).sum();
    let p = Percentiles::of(&joins_ms);
    let cycle_ms = config.rig.cycle_ms.max(1);
    let json = json!({
        "state_bytes": state_bytes,
        "cycle_hz": 1000 / cycle_ms,
        "join_ms": round3(p.max),
        "missed_deadlines": missed,
        "joins": joins_ms.len(),
        "join_ms_p50": round3(p.p50),
        "join_ms_all": joins_ms.iter().map(|&j| round3(j)).collect::<Vec<_>>(),
        "missed_deadlines_outside_joins": a.missed_cycles_outside_faults,
        "ballast_bytes": config.rig.ballast_bytes,
        "timing": config.rig.timing.to_json(),
        "outputs_lost": a.outputs_lost,
        "outputs_duplicated": a.outputs_duplicated,
        "takeovers": a.takeovers.len(),
        "missed_examples": a.missed_examples,
    });
    eprintln!(
        "bench join: {} joins of a {state_bytes}-byte state at {} Hz: in sync after {:.1} ms (median {:.1}); {missed} missed deadlines during joins, {} outside",
        joins_ms.len(),
        1000 / cycle_ms,
        p.max,
        p.p50,
        a.missed_cycles_outside_faults
    );
    let mut problems = problems_of(&a, &failures);
    if !a.takeovers.is_empty() {
        problems.push(format!("{} takeover(s) during joins", a.takeovers.len()));
    }
    Ok(BenchResult { json, problems })
}

/// `bench idle`: a pair started and left alone for `seconds` (`--minutes`): no fault, no
/// switchover, so every takeover is false. Prints the rate per hour (issue 20: the
/// aggressive profile's cost, a 2 ms window on a shared host).
pub fn idle(config: &BenchConfig) -> Result<BenchResult, HarnessError> {
    let mut rig = Rig::prepare(config.rig.clone())?;
    rig.start_pair()?;
    let start_ns = rig.clock.now_ns();
    let seconds = config.seconds;
    // In slices of a second: Ctrl-C ends the wait at once, and progress shows.
    for s in 0..seconds {
        if s % 60 == 0 {
            rig.say(&format!("idle: {} of {seconds} s", s));
        }
        rig.sleep(Duration::from_secs(1))?;
    }
    let elapsed_s = ms(rig.clock.now_ns().saturating_sub(start_ns)) / 1000.0;
    let a = finish(&rig, &mut [])?;
    let takeovers = a.takeovers.len();
    let per_hour = if elapsed_s > 0.0 {
        takeovers as f64 * 3600.0 / elapsed_s
    } else {
        0.0
    };
    let json = json!({
        "seconds": round3(elapsed_s),
        "cycle_ms": config.rig.cycle_ms,
        "takeovers": takeovers,
        "false_takeovers": a.false_takeovers(),
        "false_takeovers_per_hour": round3(per_hour),
        "false_deaths": a.false_deaths,
        "missed_cycles_outside_faults": a.missed_cycles_outside_faults,
        "outputs_expected": a.outputs_expected,
        "outputs_lost": a.outputs_lost,
        "outputs_duplicated": a.outputs_duplicated,
        "timing": config.rig.timing.to_json(),
    });
    eprintln!(
        "bench idle: {:.0} s of a pair at a {} ms cycle ({} timing): {takeovers} takeover(s), {:.1} false takeovers an hour; {} probes answered (false deaths), {} missed deadlines",
        elapsed_s,
        config.rig.cycle_ms,
        config.rig.timing.name,
        per_hour,
        a.false_deaths,
        a.missed_cycles_outside_faults,
    );
    // Every takeover is false here: `problems_of` names them (exit 11).
    Ok(BenchResult {
        json,
        problems: problems_of(&a, &[]),
    })
}
