//! The HMI writer (issue 18): an operator's writes, submitted to either node at random
//! every few frames, retried with the same id when refused, timed out or unanswered, and
//! checked (invariant 15):
//!
//! - a write acknowledged twice is acknowledged at one frame;
//! - no history applies a write twice (the recorder's `hmi_twice`);
//! - at the end, every live node whose current history spans an acknowledged write's
//!   frame applied it there, exactly once; and no history holds an acknowledged write at
//!   another frame;
//! - every submission a node accepted (`Ok`) is answered (`Action::HmiWriteDone`, applied
//!   or timed out) by that node within its deadline, `HMI_TIMEOUT_WINDOWS` detection
//!   windows (since 2026-11-27: a node that took a write as a retry of another one still
//!   under way — mutant `hmi.rs:204:52` — never answered it, and the operator's write was
//!   late by a whole client timeout, unseen). A crash forgets the node's entries; a
//!   frozen node answers when it thaws.
//! - a submission accepted while the pair is calm and stays so until its deadline (the
//!   node the primary or its backup in sync, nothing frozen or lossy, no divergence or switchover under way, no fault for a
//!   window and a probe before nor planned until the deadline) is applied, not timed out
//!   (since 2026-11-27: a primary that dropped every write its backup forwarded —
//!   mutant `hmi.rs:257:55` — passed every seed, the client's retry hiding it).
//!
//! The client's timeout, after which it submits an unanswered write again (to either
//! node), is drawn per seed: 1–12 half windows, plus 20 ms. Below the node's own
//! deadline (4 windows) a retry reaches a node while the write still waits there, and
//! the node must take it as the same write (since 2026-11-27; before, 5 windows + 20 ms:
//! no retry ever found its write waiting).
//!
//! The writer draws from a generator forked after every other concern's, so the other
//! draws stay what they were (the writes themselves change the commits: the trace hash
//! changed with it, 2026-11-26).

use super::world::Sim;
use crate::dst::app::Workload;
use crate::dst::checker::Invariant;
use crate::dst::clock::{Nanos, NANOS_PER_MS};
use std::collections::BTreeMap;
use twinloop::hmi::{HmiWrite, WriteId};
use twinloop::node::HmiOutcome;
use twinloop::{Rng, Role, SyncState};

/// Frames between two new writes, at most (drawn 1..=this each time).
const WRITE_EVERY_FRAMES_MAX: u64 = 64;
/// The same for a busy writer (one seed in eight, since 2026-11-27): the 256 writes a
/// node remembers (`APPLIED_MAX`) are applied within the first second or so at a 1 ms
/// cycle, so that its memory is full when a backup joins and every transfer carries a
/// full table. With the writer of every seed, no run filled it: a node that refused every
/// transfer of a full memory (mutant `hmi.rs:148:14`, `>` → `>=`) never had a standby,
/// and the DST did not see it.
const WRITE_EVERY_FRAMES_BUSY: u64 = 3;
/// Writes not yet acknowledged the writer keeps at once; no new one beyond.
const OPEN_MAX: usize = 8;
/// Submissions of one write before the writer gives it up (left unacknowledged).
const ATTEMPTS_MAX: u32 = 40;
/// A node answers a write it accepted within this many detection windows (the core's
/// `TIMEOUT_WINDOWS`, docs/HMI.md).
const HMI_TIMEOUT_WINDOWS: u64 = 4;

/// A submission a node accepted and has not answered yet.
#[derive(Debug, Clone, Copy)]
struct Pending {
    node: usize,
    write: HmiWrite,
    /// True time by which the answer is due (the deadline with the clocks' drift and a
    /// wake-up's lateness allowed).
    due: Nanos,
    /// Submitted while the pair was calm and stays so until the deadline: the write must
    /// be applied, not time out.
    calm: bool,
}

/// A write the writer waits on.
#[derive(Debug, Clone, Copy)]
struct Open {
    write: HmiWrite,
    attempts: u32,
    /// When to submit it again, if no acknowledgement came by then.
    retry_at: Nanos,
}

/// The writer's state.
pub(super) struct HmiWriter {
    rng: Rng,
    /// Frames between two new writes, at most.
    every_frames_max: u64,
    frames_to_next: u64,
    value_next: i64,
    open: Vec<Open>,
    /// Acknowledged writes: value to the frame acknowledged.
    acked: BTreeMap<i64, u64>,
    pub(super) submitted: u64,
    pub(super) refused: u64,
    pub(super) timed_out: u64,
    /// The client's timeout, in half detection windows (drawn 1..=12).
    timeout_half_windows: u64,
    /// Accepted submissions not answered yet.
    pending: Vec<Pending>,
    /// Submissions accepted while calm (each must be applied).
    pub(super) watched_calm: u64,
}

impl HmiWriter {
    pub(super) fn new(mut rng: Rng) -> Self {
        let timeout_half_windows = 1 + rng.next_u64() % 12;
        HmiWriter {
            rng,
            timeout_half_windows,
            every_frames_max: WRITE_EVERY_FRAMES_MAX,
            pending: Vec::new(),
            watched_calm: 0,
            frames_to_next: 1,
            value_next: 1,
            open: Vec::with_capacity(OPEN_MAX),
            acked: BTreeMap::new(),
            submitted: 0,
            refused: 0,
            timed_out: 0,
        }
    }

    /// One seed in eight (drawn from `rng`, a generator of its own): a busy writer.
    pub(super) fn busy(mut self, mut rng: Rng) -> Self {
        if rng.chance(1, 8) {
            self.every_frames_max = WRITE_EVERY_FRAMES_BUSY;
        }
        self
    }

    /// Writes acknowledged.
    pub(super) fn acknowledged(&self) -> usize {
        self.acked.len()
    }
}

impl<'a, W: Workload> Sim<'a, W> {
    /// At every frame of the source: a new write now and then, and the retries due.
    pub(super) fn hmi_tick(&mut self) {
        let retry_ns = 20 * NANOS_PER_MS;
        let window_ns = self.options.config.detection_window_ms * NANOS_PER_MS;
        let wait_ns = self.hmi.timeout_half_windows * window_ns / 2 + retry_ns;
        self.hmi_check_answers();
        let w = &mut self.hmi;
        w.frames_to_next -= 1;
        if w.frames_to_next == 0 {
            w.frames_to_next = 1 + w.rng.next_u64() % w.every_frames_max;
            if w.open.len() < OPEN_MAX {
                let value = w.value_next;
                w.value_next += 1;
                w.open.push(Open {
                    write: HmiWrite {
                        id: WriteId {
                            client: 1,
                            transaction: value as u16,
                        },
                        tag: 0,
                        value,
                    },
                    attempts: 0,
                    retry_at: self.now,
                });
            }
        }
        let now = self.now;
        // By write, not by index: an answer during a submission removes its write.
        let due: Vec<HmiWrite> = self
            .hmi
            .open
            .iter()
            .filter(|o| o.retry_at <= now && o.attempts < ATTEMPTS_MAX)
            .map(|o| o.write)
            .collect();
        for write in due {
            let node = (self.hmi.rng.next_u64() % 2) as usize;
            let Some(open) = self.hmi.open.iter_mut().find(|o| o.write == write) else {
                continue;
            };
            open.attempts += 1;
            open.retry_at = now + wait_ns;
            let reachable = self.nodes[node].frozen_until.is_none() && self.nodes[node].node.is_some();
            if !reachable {
                // A frozen or crashed node's server does not answer: the client times out.
                open.retry_at = now + retry_ns;
                continue;
            }
            let Some(n) = self.nodes[node].node.as_mut() else {
                continue;
            };
            let local = self.nodes[node].clock.local(now);
            let epoch_before = n.epoch();
            self.hmi.submitted += 1;
            let result = n.handle_hmi_write(local, write);
            self.say(format_args!(
                "node {node}: HMI write {} submitted: {result:?}",
                write.value
            ));
            if result.is_err() {
                self.hmi.refused += 1;
                if let Some(open) = self.hmi.open.iter_mut().find(|o| o.write == write) {
                    open.retry_at = now + retry_ns;
                }
            } else if !self.hmi.pending.iter().any(|p| p.node == node && p.write == write) {
                // A retry of a write the node still holds is answered with it: the
                // first submission's deadline stands.
                let deadline_ns = HMI_TIMEOUT_WINDOWS * window_ns;
                // Clocks drift by at most 0.5 %; a wake-up may come a cycle or two late.
                let slack_ns = deadline_ns / 50 + 2 * self.options.cycle_ms * NANOS_PER_MS + NANOS_PER_MS;
                let calm =
                    self.hmi_calm(node, now + deadline_ns + slack_ns) && deadline_ns >= self.hmi_time_needed_ns();
                self.hmi.watched_calm += u64::from(calm);
                self.hmi.pending.push(Pending {
                    node,
                    write,
                    due: now + deadline_ns + slack_ns,
                    calm,
                });
            }
            self.drain(node, epoch_before);
        }
    }

    /// A write submitted now to node `i` must be applied, not time out, when the pair is
    /// calm and stays so until `until`: `i` the primary or its backup in sync, nothing
    /// frozen, links all up and lossless, the I/O source and inputs clean, no fault for a
    /// window and a probe before, and none planned (switchovers included) until `until`.
    /// A backup forwards the write to its primary (mutant `hmi.rs:257:55`, run of
    /// 68549c5: a primary that dropped every forwarded write passed every seed, the
    /// backup's timeout and the client's retry to the primary hiding it).
    fn hmi_calm(&self, i: usize, until: Nanos) -> bool {
        let c = &self.options.config;
        let ms = NANOS_PER_MS;
        let Some(p) = (0..2).find(|&j| self.role(j) == Some(Role::Primary)) else {
            return false;
        };
        let in_sync = self.follows_with_state(1 - p, p)
            && self.nodes[1 - p]
                .node
                .as_ref()
                .is_some_and(|n| n.status().sync == SyncState::InSync);
        let no_switchover = (0..2).all(|j| {
            self.nodes[j]
                .node
                .as_ref()
                .is_none_or(|n| n.status().switchover.is_none())
        });
        in_sync
            && no_switchover
            && (i == p || i == 1 - p)
            && self.frozen_count == 0
            && self.faults_active == 0
            && self.diverge_armed.is_none()
            && !self.checker.diverge_active()
            && self.network.all_up()
            && self.network.is_lossless()
            && self.source_silent.is_none()
            && self.now >= self.source_active_until
            && self.io_loss_ppm == [0, 0]
            && self.io_bursts.is_empty()
            && self.io_gap == [0, 0]
            && !self.io_stalled()
            && self.now >= self.last_trouble_at + (c.detection_window_ms + c.probe_timeout_ms) * ms
            && !self.plan.any_within(self.now, until, None)
            && until < self.options.safety_ms * ms
    }

    /// The longest a calm pair takes to answer a write `Applied`: the primary applies it
    /// at its next frame (a cycle, and the I/O's delay), its backup runs that frame a
    /// cycle later, and the primary hears so in the backup's next message — a heartbeat,
    /// which a quiet backup sends every `backup_heartbeat_factor` intervals — a link's
    /// delay each way (the write forwarded, the word back). The core's deadline is four
    /// detection windows whatever the cycle: where that is shorter (a window under the
    /// cycle, in the scaled profile; a quiet backup's heartbeat period of four windows),
    /// a write times out by design though applied, and the client's retry is answered
    /// `Applied` at once (seeds 8086, 11440, 13029, 13478 of 2000..19999): not judged.
    fn hmi_time_needed_ns(&self) -> Nanos {
        let o = self.options;
        let c = &o.config;
        let cycle_ns = o.cycle_ms * NANOS_PER_MS;
        let factor = c.backup_heartbeat_factor.max(1);
        3 * cycle_ns
            + o.io_delay_ns_max()
            + 2 * o.link_delay_ns_max()
            + factor * c.heartbeat_gap_max().as_nanos() as Nanos
    }

    /// The accepted submissions whose answer is overdue: one violation each (then
    /// forgotten). A frozen node's are judged once it runs again.
    pub(super) fn hmi_check_answers(&mut self) {
        let now = self.now;
        let mut late = Vec::new();
        let nodes = &self.nodes;
        self.hmi.pending.retain(|p| {
            let overdue = p.due < now && nodes[p.node].frozen_until.is_none();
            if overdue {
                late.push(*p);
            }
            !overdue
        });
        for p in late {
            self.checker.violation(
                Invariant::HmiWrites,
                now,
                format!(
                    "node {} accepted write {} and did not answer it by its deadline ({:.3} ms ago)",
                    p.node,
                    p.write.value,
                    (now - p.due) as f64 / 1e6
                ),
            );
        }
    }

    /// Node `i` crashed: it answers nothing it accepted (the client times out).
    pub(super) fn hmi_forget_node(&mut self, i: usize) {
        self.hmi.pending.retain(|p| p.node != i);
    }

    /// Node `i` runs again after a freeze: its overdue deadlines fire now.
    pub(super) fn hmi_thawed(&mut self, i: usize) {
        let now = self.now;
        for p in self.hmi.pending.iter_mut().filter(|p| p.node == i) {
            p.due = p.due.max(now + NANOS_PER_MS);
        }
    }

    /// Node `i` answered a write it accepted.
    pub(super) fn hmi_answered(&mut self, i: usize, write: HmiWrite, outcome: HmiOutcome) {
        self.say(format_args!("node {i}: HMI write {} {outcome:?}", write.value));
        let calm = self
            .hmi
            .pending
            .iter()
            .any(|p| p.node == i && p.write == write && p.calm);
        self.hmi.pending.retain(|p| !(p.node == i && p.write == write));
        if calm && outcome == HmiOutcome::TimedOut {
            self.checker.violation(
                Invariant::HmiWrites,
                self.now,
                format!(
                    "node {i} accepted write {} while the pair was calm and it timed out",
                    write.value
                ),
            );
        }
        match outcome {
            HmiOutcome::Applied { frame } => {
                let previous = *self.hmi.acked.entry(write.value).or_insert(frame);
                if previous != frame {
                    self.checker.violation(
                        Invariant::HmiWrites,
                        self.now,
                        format!(
                            "write {} acknowledged at frame {previous}, then by node {i} at frame {frame}",
                            write.value
                        ),
                    );
                }
                self.hmi.open.retain(|o| o.write != write);
            }
            HmiOutcome::TimedOut => {
                self.hmi.timed_out += 1;
                if let Some(o) = self.hmi.open.iter_mut().find(|o| o.write == write) {
                    o.retry_at = self.now;
                }
            }
        }
    }

    /// Invariant 15 at the end of the run (see the module doc).
    pub(super) fn hmi_check_end(&mut self) {
        self.hmi_check_answers();
        let w = &self.hmi;
        let (submitted, refused, timed_out, acked) = (w.submitted, w.refused, w.timed_out, w.acknowledged());
        let calm = w.watched_calm;
        self.say(format_args!(
            "HMI writer: {submitted} submissions ({calm} while calm), {refused} refused, {timed_out} timed out, {acked} writes acknowledged"
        ));
        for i in 0..2 {
            let Some(n) = self.nodes[i].node.as_ref() else { continue };
            let r = n.app();
            let mut found = Vec::new();
            if let Some((value, first, second)) = r.hmi_twice {
                found.push(format!(
                    "node {i} applied write {value} twice in one history, at frames {first} and {second}"
                ));
            }
            let from = r.hmi_history_from.unwrap_or(u64::MAX);
            for (&value, &frame) in &self.hmi.acked {
                let frames = r.hmi_history.get(&value).map(Vec::as_slice).unwrap_or(&[]);
                if frames.iter().any(|&f| f != frame) {
                    found.push(format!(
                        "node {i} holds write {value}, acknowledged at frame {frame}, at frames {frames:?}"
                    ));
                } else if from <= frame && frame <= r.hmi_frame_last && frames.len() != 1 {
                    found.push(format!(
                        "node {i}'s history ({from}..={}) does not hold write {value} acknowledged at frame {frame}",
                        r.hmi_frame_last
                    ));
                }
            }
            for detail in found {
                self.checker.violation(Invariant::HmiWrites, self.now, detail);
            }
        }
    }
}
