//! The HMI writer (issue 18): an operator's writes, submitted to either node at random
//! every few frames, retried with the same id when refused, timed out or unanswered, and
//! checked (invariant 15):
//!
//! - a write acknowledged twice is acknowledged at one frame;
//! - no history applies a write twice (the recorder's `hmi_twice`);
//! - at the end, every live node whose current history spans an acknowledged write's
//!   frame applied it there, exactly once; and no history holds an acknowledged write at
//!   another frame.
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
use twinloop::Rng;

/// Frames between two new writes, at most (drawn 1..=this each time).
const WRITE_EVERY_FRAMES_MAX: u64 = 64;
/// Writes not yet acknowledged the writer keeps at once; no new one beyond.
const OPEN_MAX: usize = 8;
/// Submissions of one write before the writer gives it up (left unacknowledged).
const ATTEMPTS_MAX: u32 = 40;

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
    frames_to_next: u64,
    value_next: i64,
    open: Vec<Open>,
    /// Acknowledged writes: value to the frame acknowledged.
    acked: BTreeMap<i64, u64>,
    pub(super) submitted: u64,
    pub(super) refused: u64,
    pub(super) timed_out: u64,
}

impl HmiWriter {
    pub(super) fn new(rng: Rng) -> Self {
        HmiWriter {
            rng,
            frames_to_next: 1,
            value_next: 1,
            open: Vec::with_capacity(OPEN_MAX),
            acked: BTreeMap::new(),
            submitted: 0,
            refused: 0,
            timed_out: 0,
        }
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
        let wait_ns = 5 * self.options.config.detection_window_ms * NANOS_PER_MS + retry_ns;
        let w = &mut self.hmi;
        w.frames_to_next -= 1;
        if w.frames_to_next == 0 {
            w.frames_to_next = 1 + w.rng.next_u64() % WRITE_EVERY_FRAMES_MAX;
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
            if n.handle_hmi_write(local, write).is_err() {
                self.hmi.refused += 1;
                if let Some(open) = self.hmi.open.iter_mut().find(|o| o.write == write) {
                    open.retry_at = now + retry_ns;
                }
            }
            self.drain(node, epoch_before);
        }
    }

    /// Node `i` answered a write it accepted.
    pub(super) fn hmi_answered(&mut self, i: usize, write: HmiWrite, outcome: HmiOutcome) {
        self.say(format_args!("node {i}: HMI write {} {outcome:?}", write.value));
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
        let w = &self.hmi;
        let (submitted, refused, timed_out, acked) = (w.submitted, w.refused, w.timed_out, w.acknowledged());
        self.say(format_args!(
            "HMI writer: {submitted} submissions, {refused} refused, {timed_out} timed out, {acked} writes acknowledged"
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
