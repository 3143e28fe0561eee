//! The shared record the checks read: each epoch's tenure (who led it, from which
//! frame, following which epoch, when it emitted), pairs of epochs primary at once, the
//! decisions primaries committed, the `InputLost` alarms, and steps attributed to epochs.

use super::*;

impl Checker {
    /// A new tenure of `node` as primary of `t.epoch`; an overlap with the other node's
    /// tenure is a split brain.
    pub(super) fn record_tenure(&mut self, node: usize, t: &Transition) {
        let incarnation = self.incarnation[node];
        // Both primary at once: a split brain, unless this is a planned handover (the old
        // primary released and stopped; it follows as soon as it hears the new epoch). One
        // that gave the switchover up runs frames again: a successor that completes
        // anyway (it took a release it had buffered while frozen: seed 9849 of
        // 2000..9999) is a second primary.
        let other = 1 - node;
        let handover = t.reason == Reason::SwitchoverCompleted && self.released[other];
        let overlap = self.primary_now[other].filter(|&e| e != t.epoch && !handover);
        self.observed += 1;
        self.tenures.insert(
            t.epoch,
            Tenure {
                node,
                incarnation,
                start_frame: t.frame,
                parent: if matches!(t.reason, Reason::StartedFirst | Reason::WonTiebreak) {
                    None
                } else {
                    self.following[node]
                },
                emitting: None,
                began: self.observed,
            },
        );
        if let Some(e) = overlap {
            self.split(e, t.epoch, t.frame);
        }
    }

    /// An output of `epoch` at `at`: its tenure's emission interval grows.
    pub(super) fn record_emission(&mut self, at: Nanos, epoch: u64) {
        if let Some(tenure) = self.tenures.get_mut(&epoch) {
            tenure.emitting = Some(match tenure.emitting {
                None => (at, at),
                Some((first, _)) => (first, at),
            });
        }
        self.note_overlaps(epoch);
    }

    /// Marks epochs whose emission intervals overlap `epoch`'s.
    fn note_overlaps(&mut self, epoch: u64) {
        let Some(mine) = self.tenures.get(&epoch).copied() else {
            return;
        };
        let Some((first, last)) = mine.emitting else {
            return;
        };
        let mut splits = Vec::new();
        for (&e, t) in &self.tenures {
            if e == epoch {
                continue;
            }
            if let Some((f, l)) = t.emitting {
                if f <= last && first <= l {
                    // The later-starting of the two is where histories may part.
                    let from = if e > epoch { t.start_frame } else { mine.start_frame };
                    splits.push((e, from));
                }
            }
        }
        for (e, from) in splits {
            self.split(e, epoch, from);
        }
    }

    /// Epochs `a` and `b` were primary at once: from frame `from` on, their histories
    /// (and outputs) may differ.
    fn split(&mut self, a: u64, b: u64, from: u64) {
        let key = (a.min(b), a.max(b));
        let entry = self.split_pairs.entry(key).or_insert(from);
        *entry = (*entry).min(from);
    }

    /// A genuine datagram carrying the commit of `frame` by the primary of `epoch` was
    /// delivered to node `node` at `at` (its current incarnation).
    pub fn on_commit_delivered(&mut self, at: Nanos, node: usize, epoch: u64, frame: u64) {
        self.observed += 1;
        if self.delivered_commits.len() < DELIVERED_COMMITS_MAX {
            self.delivered_commits
                .entry((node, self.incarnation[node], epoch, frame))
                .or_insert((at, self.observed));
        }
    }

    /// An alarm of node `node`, whose epoch is `epoch`.
    pub fn on_input_lost(&mut self, epoch: u64, frame: u64) {
        self.input_lost.push((epoch, frame));
    }

    /// The decision a commit of the primary of `epoch` carries for its frame.
    pub(super) fn record_decision(&mut self, at: Nanos, epoch: u64, commit: &Commit) {
        self.observed += 1;
        self.decided_at
            .entry((epoch, commit.frame))
            .or_insert((at, self.observed));
        let decision = match commit.kind {
            CommitKind::Ran { input_digest, .. } => Decision::Ran(input_digest),
            CommitKind::Skipped { last } => Decision::Skipped(last.max(commit.frame)),
        };
        self.decisions.insert((epoch, commit.frame), decision);
    }

    /// Steps node `node` ran in one event: it holds a state from now on; what its
    /// application produced, for the emits to come (a step run again, after a resync,
    /// replaces the older one); the frames this incarnation ran, for invariant 3.
    pub(super) fn record_steps(&mut self, at: Nanos, node: usize, steps: &[(u64, Step)]) {
        if !steps.is_empty() && self.holds_state[node].is_none() {
            self.holds_state[node] = Some(at);
        }
        let incarnation = self.incarnation[node];
        for &(_, step) in steps {
            self.record_kinds(&step);
            for (index, &hash) in step.output_hashes().iter().enumerate() {
                self.produced.insert((step.frame, node, index as u8), hash);
            }
            if self.produced.len() > PRODUCED_MAX {
                for _ in 0..PRODUCED_MAX / 2 {
                    self.produced.pop_first();
                }
            }
            let range = self
                .ran_range
                .entry((node, incarnation))
                .or_insert((step.frame, step.frame));
            range.0 = range.0.min(step.frame);
            range.1 = range.1.max(step.frame);
        }
    }
}

/// Splits one event's steps by epoch: a step belongs to the epoch of the last transition
/// of the same event whose frame is below the step's frame, or to `epoch_before`.
pub fn attribute_steps(epoch_before: u64, transitions: &[Transition], steps: &[Step], out: &mut Vec<(u64, Step)>) {
    for &step in steps {
        let epoch = transitions
            .iter()
            .rev()
            .find(|t| t.frame < step.frame)
            .map_or(epoch_before, |t| t.epoch);
        out.push((epoch, step));
    }
}
