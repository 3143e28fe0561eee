//! Invariant 10, replay faithfulness: a new primary runs the frames it inherited a commit
//! for exactly as the commit says. Judged at each of its own commits (the complete record
//! of its decisions, tapped from the wire) against the commits it held when it took
//! over, and against what its application did in the same event (the recorder's step).

use super::*;

impl Checker {
    /// The new primary `node` committed `commit`: every inherited frame up to it is
    /// decided as its commit said.
    pub(super) fn check_replay(&mut self, at: Nanos, node: usize, commit: &Commit) {
        let Some(tk) = &self.takeovers[node] else {
            return;
        };
        if tk.decided_to >= tk.inherited_to {
            return;
        }
        let (first, last) = (commit.frame, commit_last(commit));
        let from = tk.decided_to;
        // The inherited commits that end above what the replay decided so far and begin
        // at or below this commit's end; one at or below `from` is looked at too (a
        // skipped range reaches over its key).
        let mut overlapping: Vec<(u64, Commit)> = Vec::new();
        for (&key, &(epoch, c)) in tk.held.range(..=last).rev() {
            if commit_last(&c) > from {
                overlapping.push((epoch, c));
            }
            if key <= from {
                break;
            }
        }
        let epoch_now = tk.epoch;
        let (followed, inherited_to) = (tk.followed, tk.inherited_to);
        let mut parted_from = tk.parted_from;
        // Frames of this commit below the last inherited one that no commit held covers:
        // the node decides them itself. Otherwise than the old primary, the histories part.
        let covered = |f: u64| overlapping.iter().any(|(_, c)| c.frame <= f && f <= commit_last(c));
        let gap_to = last.min(inherited_to.saturating_sub(1));
        let mut gaps = 0;
        let mut gap_frames = core::mem::take(&mut self.events[node].gaps);
        for f in first.max(from + 1)..=gap_to {
            if covered(f) {
                continue;
            }
            let mine = match commit.kind {
                CommitKind::Ran { input_digest, .. } => Decision::Ran(input_digest),
                CommitKind::Skipped { .. } => Decision::Skipped(0),
            };
            if self.decision(followed, f) != Some(mine) {
                gaps += 1;
                gap_frames.push(f);
                parted_from = Some(parted_from.map_or(f, |p| p.min(f)));
            }
        }
        self.events[node].gaps = gap_frames;
        self.exceptions.replay_gap += gaps;
        let mut found = Vec::new();
        for (held_epoch, held) in overlapping.into_iter().rev() {
            let held_last = commit_last(&held);
            let what = |detail: &str| {
                format!(
                    "node {node}, primary of epoch {} after a takeover: frame {} ({} in epoch {}'s commit it held): {detail}",
                    twinloop::EpochText(epoch_now),
                    held.frame,
                    describe(&held),
                    twinloop::EpochText(held_epoch)
                )
            };
            if held_last < first {
                found.push(what(&format!(
                    "passed without a commit of its own (its next commit is for frame {first})"
                )));
                continue;
            }
            match (commit.kind, held.kind) {
                (CommitKind::Ran { .. }, CommitKind::Ran { outputs, sent_mask, .. }) => {
                    let parted = parted_from.is_some_and(|p| p < held.frame);
                    if let Some(detail) = self.replay_content(node, commit, &held, parted) {
                        found.push(what(&detail));
                    }
                    self.owe_unsent(node, held.frame, outputs, sent_mask);
                }
                (CommitKind::Ran { .. }, CommitKind::Skipped { .. }) => {
                    found.push(what(&format!("ran frame {first}, which the commit skipped")));
                }
                (CommitKind::Skipped { .. }, CommitKind::Ran { .. }) => {
                    // Faithful only with `Alarm::InputLost` for it (the input is nowhere
                    // to be had): settled at the end of the event.
                    self.events[node].skipped_ran.push(held.frame);
                    parted_from = Some(parted_from.map_or(held.frame, |p| p.min(held.frame)));
                }
                (CommitKind::Skipped { .. }, CommitKind::Skipped { .. }) => {}
            }
        }
        for detail in found {
            self.violation(Invariant::ReplayFaithful, at, detail);
        }
        if let Some(tk) = &mut self.takeovers[node] {
            tk.decided_to = tk.decided_to.max(last);
            tk.parted_from = parted_from;
        }
    }

    /// What differs between the run of an inherited frame (the application's step in this
    /// event, or else the node's own commit) and the commit it inherited. Once the replay
    /// `parted` from the committed history (it skipped a frame whose input was lost), the
    /// state, and with it the outputs, may differ: only the input is compared.
    fn replay_content(&self, node: usize, own: &Commit, held: &Commit, parted: bool) -> Option<String> {
        let CommitKind::Ran {
            input_digest,
            outputs,
            output_digest,
            ..
        } = held.kind
        else {
            return None;
        };
        let step = self.events[node].steps.iter().rev().find(|s| s.frame == held.frame);
        let (ran_input, ran_outputs, ran_output_digest, ran_state) = match (step, own.kind) {
            (Some(s), _) => (s.input_digest, s.outputs, s.output_digest, Some(s.digest)),
            (
                None,
                CommitKind::Ran {
                    input_digest,
                    outputs,
                    output_digest,
                    ..
                },
            ) => (input_digest, outputs, output_digest, own.state_digest),
            (None, CommitKind::Skipped { .. }) => return None,
        };
        if ran_input != input_digest {
            return Some(format!(
                "ran on input {ran_input:#018x}, the commit's is {input_digest:#018x}"
            ));
        }
        if parted {
            return None;
        }
        if ran_outputs != outputs {
            return Some(format!("produced {ran_outputs} outputs, the commit says {outputs}"));
        }
        if ran_output_digest != output_digest {
            return Some(format!(
                "output digest {ran_output_digest:#018x}, the commit's is {output_digest:#018x}"
            ));
        }
        match (held.state_digest, ran_state) {
            (Some(want), Some(got)) if want != got => {
                Some(format!("state digest {got:#018x}, the commit's is {want:#018x}"))
            }
            _ => None,
        }
    }

    /// Node `node` raised `Alarm::CommitLost` for frames `first..=last` in the current
    /// event: it decided them without the commit it knew of.
    pub fn on_commit_lost(&mut self, node: usize, first: u64, last: u64) {
        self.events[node].commit_lost.push((first, last));
    }

    /// The end of one event of node `node`, whose `InputLost` alarms named `input_lost`:
    /// an inherited frame the commit ran and the node skipped had its input lost; a frame
    /// decided without its commit, otherwise than the old primary, was alarmed
    /// (`CommitLost`); the outputs owed went out; no skip covered a frame held without
    /// `InputLost` (invariant 18).
    pub fn on_event_end(&mut self, at: Nanos, node: usize, input_lost: &[u64]) {
        self.settle_gaps(at, node, input_lost);
        let skipped = core::mem::take(&mut self.events[node].skipped_ran);
        for &frame in &skipped {
            if !input_lost.contains(&frame) {
                let epoch = self.takeovers[node].as_ref().map_or(0, |tk| tk.epoch);
                self.violation(
                    Invariant::ReplayFaithful,
                    at,
                    format!(
                        "node {node}, primary of epoch {} after a takeover, skipped inherited frame {frame}, which the commit it held ran, without InputLost",
                        twinloop::EpochText(epoch)
                    ),
                );
            }
        }
        self.events[node].skipped_ran = skipped;
        self.events[node].skipped_ran.clear();
        self.settle_owed(at, node);
        self.settle_skips(at, node, input_lost);
        self.events[node].emitted.clear();
        self.events[node].steps.clear();
    }

    /// Every replay gap of this event was alarmed: a core that parts from the committed
    /// history without a word breaks invariant 10. `CommitLost` for the frame, or
    /// `InputLost`: the node held a commit that the checker's model counts as gone (a
    /// whole ring below a newer frame that was lost, seed 9221 of 2000..19999), and its
    /// input was missing.
    fn settle_gaps(&mut self, at: Nanos, node: usize, input_lost: &[u64]) {
        let gaps = core::mem::take(&mut self.events[node].gaps);
        let alarmed = core::mem::take(&mut self.events[node].commit_lost);
        for &frame in &gaps {
            let commit_lost = alarmed.iter().any(|&(first, last)| first <= frame && frame <= last);
            if !commit_lost && !input_lost.contains(&frame) {
                let epoch = self.takeovers[node].as_ref().map_or(0, |tk| tk.epoch);
                self.violation(
                    Invariant::ReplayFaithful,
                    at,
                    format!(
                        "node {node}, primary of epoch {} after a takeover, decided inherited frame {frame} without its commit, otherwise than the old primary, without CommitLost",
                        twinloop::EpochText(epoch)
                    ),
                );
            }
        }
        // The buffers go back, emptied, to be reused.
        self.events[node].gaps = gaps;
        self.events[node].gaps.clear();
        self.events[node].commit_lost = alarmed;
        self.events[node].commit_lost.clear();
    }

    /// Keeps one event's steps while they may be an inherited frame's run: a backup (it
    /// may take over in this event) or a primary still replaying.
    pub(super) fn keep_event_steps(&mut self, node: usize, steps: &[(u64, Step)]) {
        let replaying = self.takeovers[node]
            .as_ref()
            .is_some_and(|tk| tk.decided_to < tk.inherited_to);
        if replaying || !self.held[node].is_empty() {
            self.events[node].steps.extend(steps.iter().map(|&(_, s)| s));
        }
    }
}

fn describe(commit: &Commit) -> String {
    match commit.kind {
        CommitKind::Ran { outputs, sent_mask, .. } => format!("ran, {outputs} outputs, sent mask {sent_mask:#x}"),
        CommitKind::Skipped { last } => format!("skipped to {last}"),
    }
}
