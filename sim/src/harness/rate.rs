//! `bench rate` (issue 20): the highest cycle rate at which a pair runs a whole window
//! (60 s by default) with 0 missed deadlines and 0 takeovers.
//!
//! For each rate of `--rates` (Hz, rising) a fresh rig starts a real pair at a cycle of
//! `1 000 000 / rate` µs (the nodes' `app.cycle_us`, the source's pace), waits until it is
//! healthy, settles a second, then runs `--seconds` with the watchers paused (no console
//! load on the nodes) and reads each node's own counters before and after through its
//! console (`status`):
//!
//! - **missed deadlines**: `io.loop_late_wakes`, the deadlines of the core the node's loop
//!   handled more than 500 µs after they fell due (docs/CONSOLE.md), summed over both
//!   nodes. A node counts them itself: they are not inferred from the outside;
//! - **takeovers**: `takeovers`, the unplanned takeovers by each node, summed (and an
//!   epoch that changed counts as one when no node counted it);
//! - beside, not in the verdict: the loop's worst lateness since start
//!   (`io.loop_lateness_max_us`), the frames the primary ran against those the source
//!   sent, the primary's CPU per cycle, and **late commands**: frames whose command
//!   reached the harness's sink more than one cycle after the frame left its source (the
//!   strict per-cycle figure, which counts the harness's own threads' delays too).
//!
//! Real time: with `--rt-priority N` (default 40 here; `--plain` for the normal
//! scheduler) the nodes run `[rt] sched_fifo_priority = N` with `mlockall`, best effort;
//! each row says whether each node's threads really ran `SCHED_FIFO` (read from
//! `/proc/<pid>/task/*/stat`, not assumed), and the JSON whether the harness itself did
//! (`chrt -f 30 twinloop-sim bench rate …`, docs/BENCHMARKS.md).
#![allow(clippy::disallowed_methods)]

use super::bench::{BenchConfig, BenchResult};
use super::plant_loop::Operator;
use super::rig::{Rig, RigConfig};
use super::{round3, HarnessError};
use serde_json::{json, Value};
use std::time::Duration;
use twinloop::io::schema::{Role, Status};

/// The rate issue 20 asks for.
pub const TARGET_HZ: u32 = 10_000;
/// The rates `bench rate` tries by default.
pub const RATES_DEFAULT_HZ: [u32; 4] = [1_000, 2_000, 5_000, 10_000];
/// The highest rate: the shortest `app.cycle_us` (50 µs).
pub const RATE_MAX_HZ: u32 = 20_000;
/// What the nodes count as a missed deadline (the shell's `LATE_WAKE`), µs.
pub const LATE_WAKE_US: u64 = 500;

/// One node's counters, as its console gave them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeCounts {
    /// `io.loop_late_wakes`.
    pub late_wakes: u64,
    /// `takeovers`.
    pub takeovers: u64,
    /// `frame`: the last frame it ran.
    pub frame: u64,
    /// `epoch`.
    pub epoch: u64,
    /// `io.loop_lateness_max_us`, since the node started.
    pub lateness_max_us: u64,
    /// Whether it is the primary.
    pub primary: bool,
}

impl NodeCounts {
    /// The figures of a `status` reply.
    pub fn of(status: &Status) -> NodeCounts {
        NodeCounts {
            late_wakes: status.io.loop_late_wakes,
            takeovers: status.takeovers,
            frame: status.frame,
            epoch: status.epoch,
            lateness_max_us: status.io.loop_lateness_max_us,
            primary: status.role == Role::Primary,
        }
    }
}

/// The figures of one rate.
#[derive(Debug, Clone, Default)]
pub struct RateRow {
    /// The rate asked, Hz.
    pub rate_hz: u32,
    /// The cycle the nodes ran, µs (`1 000 000 / rate_hz`, truncated).
    pub cycle_us: u32,
    /// Seconds measured.
    pub seconds: f64,
    /// The pair became healthy; when not, `error` says why and nothing was measured.
    pub started: bool,
    /// Pairs started for this rate: 2 when the first did not become healthy (a start-up
    /// on a loaded host, not the rate, is then the likelier cause: it is retried once).
    pub start_attempts: u32,
    /// Why the rate could not be measured.
    pub error: Option<String>,
    /// Each node's counters before and after the window.
    pub nodes: Vec<(NodeCounts, NodeCounts)>,
    /// Each node's threads ran `SCHED_FIFO`.
    pub realtime: Vec<bool>,
    /// Frames the source sent in the window.
    pub frames_sent: u64,
    /// Primary CPU time in the window, ns.
    pub primary_cpu_ns: u64,
    /// Frames whose command reached the sink later than one cycle, or never.
    pub late_commands: u64,
}

impl RateRow {
    /// Missed deadlines in the window: the nodes' own late wake-ups, summed.
    pub fn missed_deadlines(&self) -> u64 {
        self.nodes
            .iter()
            .map(|(b, a)| a.late_wakes.saturating_sub(b.late_wakes))
            .sum()
    }

    /// Takeovers in the window: the nodes' own counts, summed; an epoch that moved
    /// without one counts as one.
    pub fn takeovers(&self) -> u64 {
        let counted: u64 = self
            .nodes
            .iter()
            .map(|(b, a)| a.takeovers.saturating_sub(b.takeovers))
            .sum();
        let epoch_moved = self.nodes.iter().any(|(b, a)| a.epoch != b.epoch);
        if counted == 0 && epoch_moved {
            1
        } else {
            counted
        }
    }

    /// Frames the primary (of the window's start) ran in the window.
    pub fn frames_run(&self) -> u64 {
        self.nodes
            .iter()
            .find(|(b, _)| b.primary)
            .map_or(0, |(b, a)| a.frame.saturating_sub(b.frame))
    }

    /// The rate the source really sent at, Hz (a source that falls more than five
    /// cycles behind resumes from now: on a loaded host it sends fewer frames).
    pub fn source_hz(&self) -> f64 {
        if self.seconds > 0.0 {
            self.frames_sent as f64 / self.seconds
        } else {
            0.0
        }
    }

    /// The source sent at least 99 % of the frames of the rate: the pair was given
    /// the rate, not a slower one.
    pub fn source_kept_pace(&self) -> bool {
        self.source_hz() >= f64::from(self.rate_hz) * 0.99
    }

    /// 0 missed deadlines and 0 takeovers over the whole window, at the rate.
    pub fn passed(&self) -> bool {
        self.started
            && self.error.is_none()
            && self.missed_deadlines() == 0
            && self.takeovers() == 0
            && self.source_kept_pace()
    }

    /// As JSON.
    pub fn to_json(&self) -> Value {
        let frames_run = self.frames_run();
        json!({
            "rate_hz": self.rate_hz,
            "cycle_us": self.cycle_us,
            "seconds": round3(self.seconds),
            "passed": self.passed(),
            "missed_deadlines": self.missed_deadlines(),
            "takeovers": self.takeovers(),
            "late_commands": self.late_commands,
            "frames_sent": self.frames_sent,
            "source_hz": round3(self.source_hz()),
            "source_kept_pace": self.source_kept_pace(),
            "frames_run_primary": frames_run,
            "primary_cpu_us_per_cycle": round3(self.primary_cpu_ns as f64 / frames_run.max(1) as f64 / 1e3),
            "realtime": self.realtime,
            "started": self.started,
            "start_attempts": self.start_attempts,
            "error": self.error,
            "nodes": self.nodes.iter().enumerate().map(|(i, (b, a))| json!({
                "node": i + 1,
                "primary": b.primary,
                "late_wakes_before": b.late_wakes,
                "late_wakes_after": a.late_wakes,
                "takeovers_before": b.takeovers,
                "takeovers_after": a.takeovers,
                "frame_before": b.frame,
                "frame_after": a.frame,
                "epoch_before": b.epoch,
                "epoch_after": a.epoch,
                "lateness_max_us": a.lateness_max_us,
            })).collect::<Vec<_>>(),
        })
    }
}

/// Whether any thread of process `pid` runs `SCHED_FIFO` (policy 1, field 41 of
/// `/proc/<pid>/task/<tid>/stat`). `None` when it cannot be read.
pub fn runs_fifo(pid: u32) -> Option<bool> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut any = false;
    for task in tasks.flatten() {
        let stat = std::fs::read_to_string(task.path().join("stat")).ok()?;
        any |= policy_of_stat(&stat) == Some(1);
    }
    Some(any)
}

/// Whether the calling thread runs `SCHED_FIFO` (the harness under `chrt -f`).
pub fn this_thread_fifo() -> bool {
    std::fs::read_to_string("/proc/thread-self/stat").is_ok_and(|s| policy_of_stat(&s) == Some(1))
}

/// The scheduling policy of a `stat` line: field 41, counted after the command name's
/// closing parenthesis (the name may hold spaces and parentheses).
fn policy_of_stat(stat: &str) -> Option<u32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // Fields from 3 on; the policy is the 41st, the 39th after the name.
    rest.split_whitespace().nth(38)?.parse().ok()
}

fn statuses(rig: &Rig) -> Result<Vec<NodeCounts>, HarnessError> {
    rig.consoles
        .iter()
        .enumerate()
        .map(|(i, c)| {
            c.status()
                .map(|s| NodeCounts::of(&s))
                .map_err(|e| HarnessError::Stuck(format!("node {}'s status: {e}", i + 1)))
        })
        .collect()
}

/// The rig of one rate: the bench's, at `cycle_us`, in its own directory (one per
/// attempt, so that a failed start's logs stay).
fn rig_at(config: &BenchConfig, rate_hz: u32, cycle_us: u32, attempt: u32) -> RigConfig {
    let mut rig = config.rig.clone();
    rig.dir = config.rig.dir.join(format!("rate-{rate_hz}-{attempt}"));
    rig.cycle_us = Some(cycle_us);
    rig.cycle_ms = cycle_us.div_ceil(1000).max(1);
    // The acknowledge button for 30 ms every 3 s, in frames of this cycle (alarm events:
    // frames with several outputs), as `Operator::acks_only` at whole milliseconds.
    rig.operator = Operator {
        setpoints: Vec::new(),
        ack_every_frames: u64::from(rate_hz) * 3,
        ack_frames: (30_000 / u64::from(cycle_us.max(1))).max(1),
    };
    rig
}

/// Measures one rate; `during` runs once, a third into the window (tests inject there).
fn one_rate(
    config: &BenchConfig,
    rate_hz: u32,
    during: &mut dyn FnMut(&mut Rig) -> Result<(), HarnessError>,
) -> Result<RateRow, HarnessError> {
    let cycle_us = 1_000_000 / rate_hz.clamp(1, RATE_MAX_HZ);
    let mut row = RateRow {
        rate_hz,
        cycle_us,
        ..RateRow::default()
    };
    let mut started = None;
    for attempt in 1..=2 {
        let mut rig = Rig::prepare(rig_at(config, rate_hz, cycle_us, attempt))?;
        rig.say(&format!("rate {rate_hz} Hz: a pair at a {cycle_us} µs cycle"));
        row.start_attempts = attempt;
        match rig.start_pair() {
            Ok(_) => {
                started = Some(rig);
                break;
            }
            Err(HarnessError::Interrupted) => return Err(HarnessError::Interrupted),
            Err(e) => {
                let e = e.to_string();
                eprintln!(
                    "bench rate {rate_hz} Hz: start #{attempt} failed: {}",
                    e.lines().next().unwrap_or("")
                );
                row.error = Some(e.lines().next().unwrap_or("").to_string());
            }
        }
    }
    let Some(mut rig) = started else {
        return Ok(row);
    };
    row.started = true;
    row.error = None;
    rig.sleep(Duration::from_secs(1))?;
    for w in &rig.watchers {
        w.set_paused(true);
    }
    // A poll under way when the pause came ends within its timeout.
    rig.sleep(Duration::from_millis(200))?;
    let before = statuses(&rig)?;
    let primary = before.iter().position(|n| n.primary);
    let primary_pid = primary.and_then(|i| rig.nodes[i].pid());
    let cpu_before = primary_pid.and_then(super::procs::cpu_ns).unwrap_or(0);
    let first = rig.plant.frames_sent() + 1;
    let start_ns = rig.clock.now_ns();
    let window = Duration::from_secs(config.seconds.max(1));
    rig.sleep(window / 3)?;
    during(&mut rig)?;
    let left = window.saturating_sub(Duration::from_nanos(rig.clock.now_ns().saturating_sub(start_ns)));
    rig.sleep(left)?;
    let after = statuses(&rig)?;
    let cpu_after = primary_pid.and_then(super::procs::cpu_ns).unwrap_or(0);
    let last = rig.plant.frames_sent();
    row.seconds = (rig.clock.now_ns().saturating_sub(start_ns)) as f64 / 1e9;
    row.realtime = rig
        .nodes
        .iter()
        .map(|n| n.pid().and_then(runs_fifo).unwrap_or(false))
        .collect();
    row.nodes = before.into_iter().zip(after).collect();
    row.frames_sent = last.saturating_sub(first) + 1;
    row.primary_cpu_ns = cpu_after.saturating_sub(cpu_before);
    // The last frames' commands may still be on their way.
    rig.sleep(Duration::from_millis(50))?;
    let cycle_ns = u64::from(cycle_us) * 1000;
    row.late_commands = rig.plant.with_frames(|frames| {
        rig.sink.with(|sink| {
            (first..=last)
                .filter(|&frame| {
                    let sent = frames.sent_ns(frame).unwrap_or(0);
                    sink.delivered
                        .get(&(frame, 0))
                        .is_none_or(|d| d.at_ns.saturating_sub(sent) > cycle_ns)
                })
                .count() as u64
        })
    });
    for w in &rig.watchers {
        w.set_paused(false);
    }
    Ok(row)
}

/// `bench rate` over `rates_hz` with `during` run inside each window (the CLI passes a
/// no-op; the harness test freezes a node there to show the counts are the nodes').
pub fn rate_with(
    config: &BenchConfig,
    rates_hz: &[u32],
    mut during: impl FnMut(&mut Rig) -> Result<(), HarnessError>,
) -> Result<BenchResult, HarnessError> {
    let mut rows = Vec::with_capacity(rates_hz.len());
    for &hz in rates_hz {
        let row = one_rate(config, hz, &mut during)?;
        eprintln!(
            "bench rate {} Hz: missed deadlines {}, takeovers {}, late commands {} of {} frames{}",
            row.rate_hz,
            row.missed_deadlines(),
            row.takeovers(),
            row.late_commands,
            row.frames_sent,
            row.error.as_ref().map(|e| format!(" ({e})")).unwrap_or_default()
        );
        rows.push(row);
    }
    let highest = rows.iter().filter(|r| r.passed()).map(|r| r.rate_hz).max();
    let highest_strict = rows
        .iter()
        .filter(|r| r.passed() && r.late_commands == 0)
        .map(|r| r.rate_hz)
        .max();
    let realtime = !rows.is_empty() && rows.iter().filter(|r| r.started).all(|r| r.realtime.iter().all(|&f| f));
    let table = table(&rows);
    eprint!("{table}");
    eprintln!(
        "bench rate: highest rate with 0 missed deadlines and 0 takeovers over {} s: {} (target {TARGET_HZ} Hz); nodes {}real-time",
        config.seconds,
        highest.map_or("none".to_string(), |h| format!("{h} Hz")),
        if realtime { "" } else { "NOT " }
    );
    let json = json!({
        "highest_rate_hz": highest,
        "highest_rate_hz_no_late_command": highest_strict,
        "target_hz": TARGET_HZ,
        "seconds_per_rate": config.seconds,
        "realtime": realtime,
        "rt_priority": config.rig.rt_priority,
        "harness_realtime": this_thread_fifo(),
        "missed_deadline": format!("a deadline of a node's core handled more than {LATE_WAKE_US} µs after it fell due (status io.loop_late_wakes), both nodes"),
        "timing": config.rig.timing.to_json(),
        "rates": rows.iter().map(RateRow::to_json).collect::<Vec<_>>(),
    });
    // A pair that never started is a failure of the run (exit 11, files kept), not a
    // figure; missed deadlines and takeovers are the figures.
    let problems = rows
        .iter()
        .filter(|r| !r.started)
        .map(|r| {
            format!(
                "{} Hz: the pair did not start, twice: {}",
                r.rate_hz,
                r.error.as_deref().unwrap_or("")
            )
        })
        .collect();
    Ok(BenchResult { json, problems })
}

/// `bench rate` over `rates_hz`.
pub fn rate(config: &BenchConfig, rates_hz: &[u32]) -> Result<BenchResult, HarnessError> {
    rate_with(config, rates_hz, |_| Ok(()))
}

/// The table `bench rate` prints (markdown, as docs/BENCHMARKS.md keeps it).
pub fn table(rows: &[RateRow]) -> String {
    let mut out = String::from(
        "| rate | cycle | s | source sent | missed deadlines | takeovers | late commands | primary ran | CPU µs/cycle | worst lateness µs (node 1, 2) | SCHED_FIFO | verdict |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for r in rows {
        let lateness: Vec<String> = r.nodes.iter().map(|(_, a)| a.lateness_max_us.to_string()).collect();
        let fifo: Vec<&str> = r.realtime.iter().map(|&f| if f { "yes" } else { "no" }).collect();
        out.push_str(&format!(
            "| {} Hz | {} µs | {:.1} | {} ({:.0} Hz) | {} | {} | {} | {} | {:.1} | {} | {} | {} |\n",
            r.rate_hz,
            r.cycle_us,
            r.seconds,
            r.frames_sent,
            r.source_hz(),
            r.missed_deadlines(),
            r.takeovers(),
            r.late_commands,
            r.frames_run(),
            r.primary_cpu_ns as f64 / r.frames_run().max(1) as f64 / 1e3,
            lateness.join(", "),
            fifo.join(", "),
            match (&r.error, r.passed()) {
                (Some(e), _) => format!("not started: {e}"),
                (None, true) => "pass".to_string(),
                (None, false) if r.missed_deadlines() == 0 && r.takeovers() == 0 =>
                    "fail: the source fell behind".to_string(),
                (None, false) => "fail".to_string(),
            }
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(late_wakes: u64, takeovers: u64, frame: u64, epoch: u64, primary: bool) -> NodeCounts {
        NodeCounts {
            late_wakes,
            takeovers,
            frame,
            epoch,
            lateness_max_us: 0,
            primary,
        }
    }

    #[test]
    fn row_counts_are_the_nodes_deltas() {
        let row = RateRow {
            rate_hz: 1000,
            cycle_us: 1000,
            started: true,
            nodes: vec![
                (counts(3, 1, 100, 7, true), counts(5, 1, 2100, 7, true)),
                (counts(9, 0, 99, 7, false), counts(9, 0, 2099, 7, false)),
            ],
            ..RateRow::default()
        };
        assert_eq!(row.missed_deadlines(), 2, "only the window's late wakes");
        assert_eq!(row.takeovers(), 0);
        assert_eq!(row.frames_run(), 2000);
        assert!(!row.passed());
        let json = row.to_json();
        assert_eq!(json["missed_deadlines"], 2);
        assert_eq!(json["nodes"][0]["late_wakes_after"], 5);
    }

    #[test]
    fn row_epoch_moved_without_a_count_is_one_takeover() {
        let row = RateRow {
            started: true,
            nodes: vec![
                (counts(0, 0, 1, 7, true), counts(0, 0, 9, 8, false)),
                (counts(0, 0, 1, 7, false), counts(0, 0, 9, 8, true)),
            ],
            ..RateRow::default()
        };
        assert_eq!(row.takeovers(), 1);
        assert!(!row.passed());
        let clean = RateRow {
            rate_hz: 1000,
            seconds: 2.0,
            frames_sent: 1990,
            started: true,
            nodes: vec![(counts(0, 0, 1, 7, true), counts(0, 0, 9, 7, true))],
            ..RateRow::default()
        };
        assert!(clean.passed());
        let slow_source = RateRow {
            frames_sent: 1900,
            ..clean.clone()
        };
        assert!(!slow_source.passed(), "95 % of the frames: not the rate");
        assert!(!RateRow::default().passed(), "a pair that never started does not pass");
    }

    #[test]
    fn stat_policy_after_a_name_with_spaces_and_parentheses() {
        // pid (comm) state, then fields 4..=52; field 41 (policy) set to 1.
        let mut fields: Vec<String> = (4..=52).map(|n| n.to_string()).collect();
        fields[41 - 4] = "1".into();
        let line = format!("123 (a (b) c) S {}", fields.join(" "));
        assert_eq!(policy_of_stat(&line), Some(1));
        assert_eq!(policy_of_stat("garbage"), None);
        assert_eq!(policy_of_stat("1 (x) S 2 3"), None);
    }

    #[test]
    fn this_process_reads_its_own_policy() {
        // The test's own process: readable, whatever its policy.
        assert!(runs_fifo(std::process::id()).is_some());
    }
}
