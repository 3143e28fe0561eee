//! Invariant 9, a takeover re-sends only what no commit it held reported sent: the
//! commits a node accepted from the primary it followed (recorded from what was delivered
//! to it, [`Checker::on_commit_held`]) are kept until it leads; then every output it emits
//! is checked against them at the emit — not at the sink, whose dedup hides a repeat
//! from the checks of invariant 2 but a sink with a short window would pass it on — and
//! every output of an inherited frame whose bit the commit left clear must go out with the
//! frame's run.

use super::*;

impl Checker {
    /// Node `node`, a backup, accepted `commit` from the primary of `epoch` (the runner
    /// mirrors the node's own filters: a backup, the primary's message of its own epoch,
    /// not refused, not for a frame it already ran). Kept for a takeover.
    pub fn on_commit_held(&mut self, node: usize, epoch: u64, commit: &Commit) {
        let held = &mut self.held[node];
        held.insert(commit.frame, (epoch, *commit));
        while held.len() > HELD_FRAMES_MAX {
            held.pop_first();
        }
    }

    /// Node `node`, a backup, took `Released { frame }` from the primary it follows
    /// (acked release: every output up to `frame` went out); `node_frame` is its last run
    /// frame. The node takes it only up to the commits it holds.
    pub fn on_released_heard(&mut self, node: usize, frame: u64, node_frame: u64) {
        let held_to = self.held[node].last_key_value().map_or(0, |(&f, _)| f).max(node_frame);
        let r = &mut self.released_heard[node];
        r.0 = r.0.max(frame.min(held_to));
        r.1 = r.1.max(frame);
    }

    /// Node `node`'s ring holds `capacity` frames and it has received frames up to
    /// `highest` from the I/O source: a commit a whole ring below is gone from it (the
    /// slot went to a newer frame — or may have: a conservative bound, so that nothing the
    /// node no longer holds is expected of it). Called before a transition to primary,
    /// whose last run frame is `last_run`. Not the commits above it: a backup keeps the
    /// commits it has not run, and refuses a frame whose slot one of them holds (a ring
    /// above its last run; `handle_source_frame`) — since 2026-11-27: before, a backup
    /// that took such frames, losing the commits it waited to run (mutant
    /// `node/mod.rs:1131:22`, DST seed 18879's bug planted back), was excused here.
    pub fn on_ring(&mut self, node: usize, capacity: u64, highest: u64, last_run: u64) {
        self.ring_highest[node] = highest;
        let held = &mut self.held[node];
        let newest = held.last_key_value().map_or(0, |(&f, _)| f).max(highest);
        let gone_to = newest.saturating_sub(capacity).min(last_run);
        while held.first_key_value().is_some_and(|(&f, _)| f <= gone_to) {
            held.pop_first();
        }
    }

    /// Node `node`, primary after a takeover, has received frames up to `highest`: as in
    /// [`Checker::on_ring`], a commit it inherited and has not decided yet that is a
    /// whole ring below is gone from its ring (the frame's slot went to a newer one), so
    /// it decides that frame itself — a replay gap, not a commit it held.
    pub fn on_primary_ring(&mut self, node: usize, capacity: u64, highest: u64) {
        if let Some(t) = &mut self.takeovers[node] {
            let gone_to = highest.saturating_sub(capacity);
            let decided_to = t.decided_to;
            t.held.retain(|&f, _| f > gone_to || f <= decided_to);
        }
    }

    /// At every transition of `node`: a node that leads takes what it held into its
    /// tenure; one that starts over (joins, starts, stops) forgets it, as its ring does.
    pub(super) fn track_takeover(&mut self, node: usize, t: &Transition) {
        match t.role {
            Role::Primary => {
                if self.held[node].is_empty() {
                    // Primary already, or a cold start: nothing inherited.
                    return;
                }
                let held = core::mem::take(&mut self.held[node]);
                let released_to = core::mem::take(&mut self.released_heard[node]);
                let followed = held.last_key_value().map_or(0, |(_, &(e, _))| e);
                let inherited_to = held
                    .values()
                    .map(|(_, c)| commit_last(c))
                    .filter(|&last| last > t.frame)
                    .max()
                    .unwrap_or(0);
                self.takeovers[node] = Some(Takeover {
                    epoch: t.epoch,
                    followed,
                    start_frame: t.frame,
                    held,
                    decided_to: t.frame,
                    inherited_to,
                    parted_from: None,
                    released_to,
                });
            }
            Role::Backup if matches!(t.sync, SyncState::InSync | SyncState::Lagging) => {
                // A backup with state keeps its ring's commits (a released primary
                // following its successor holds none yet).
                self.takeovers[node] = None;
            }
            _ => {
                // Joining (its ring's commits are cleared), starting, stopped.
                self.takeovers[node] = None;
                self.held[node].clear();
                self.acks_held[node].clear();
                self.released_heard[node] = (0, 0);
            }
        }
    }

    /// Invariant 9 at the emit: no output whose bit a commit the node held set goes out.
    pub(super) fn check_resend(&mut self, at: Nanos, node: usize, output: &Output) {
        let Some(tk) = &self.takeovers[node] else {
            return;
        };
        let (frame, index) = (output.frame, output.index);
        if frame <= tk.inherited_to {
            self.events[node].emitted.push((frame, index));
        }
        let Some(&(
            held_epoch,
            Commit {
                kind: CommitKind::Ran { sent_mask, .. },
                ..
            },
        )) = tk.held.get(&frame)
        else {
            return;
        };
        if self.acks && output.kind == twinloop::OutputKind::Event {
            // With acks, an event reported sent is re-sent unless its ack was held.
            self.check_resend_acked(at, node, output);
            return;
        }
        // With the level refresh on, a new primary re-sends the levels the old one sent, by
        // design (`refresh.rs`: the sink may have lost them in the crash); events never.
        let refreshed = self.level_refresh && output.kind.level_key().is_some();
        if index < 32 && sent_mask & (1 << index) != 0 && !refreshed {
            let detail = format!(
                "node {node} re-sent ({frame}, {index}) under epoch {} after taking over at frame {}: the commit of epoch {} it held reports it sent",
                twinloop::EpochText(output.epoch),
                tk.start_frame,
                twinloop::EpochText(held_epoch)
            );
            self.violation(Invariant::ResendOnlyUnsent, at, detail);
        } else if frame <= tk.released_to.0 && !refreshed {
            // Acked release (since 2026-11-28): a `Released` it heard said it went out.
            let detail = format!(
                "node {node} re-sent ({frame}, {index}) under epoch {} after taking over at frame {}: the old primary's \
                 Released it heard as a backup covered frames up to {}",
                twinloop::EpochText(output.epoch),
                tk.start_frame,
                tk.released_to.0
            );
            self.violation(Invariant::ResendOnlyUnsent, at, detail);
        }
    }

    /// The outputs of an inherited frame the node ran that its commit did not report
    /// sent: each must be emitted in the same event (checked in [`Checker::on_event_end`]).
    pub(super) fn owe_unsent(&mut self, node: usize, frame: u64, outputs: u8, sent_mask: u32) {
        for index in 0..outputs.min(OUTPUTS_PER_FRAME_MAX as u8) {
            // A level may wait for the end of the takeover's burst, or be superseded
            // there: invariant 14 judges it.
            if self.level_key((frame, index)).is_some() {
                continue;
            }
            // With acks, events go out on the re-send timer, not with the frame's run.
            if self.acks {
                continue;
            }
            let released = self.takeovers[node]
                .as_ref()
                .is_some_and(|tk| frame <= tk.released_to.1);
            if (index >= 32 || sent_mask & (1 << index) == 0) && !released {
                self.events[node].owed.push((frame, index));
            }
        }
    }

    /// Every output owed in this event went out.
    pub(super) fn settle_owed(&mut self, at: Nanos, node: usize) {
        let owed = core::mem::take(&mut self.events[node].owed);
        for &(frame, index) in &owed {
            if !self.events[node].emitted.contains(&(frame, index)) {
                let epoch = self.takeovers[node].as_ref().map_or(0, |tk| tk.epoch);
                self.violation(
                    Invariant::ResendOnlyUnsent,
                    at,
                    format!(
                        "node {node}, primary of epoch {}, ran inherited frame {frame} and did not send output {index}, which no commit it held reported sent",
                        twinloop::EpochText(epoch)
                    ),
                );
            }
        }
        self.events[node].owed = owed;
        self.events[node].owed.clear();
    }
}

/// The last frame a commit decides (a skipped range's end).
pub(super) fn commit_last(commit: &Commit) -> u64 {
    match commit.kind {
        CommitKind::Ran { .. } => commit.frame,
        CommitKind::Skipped { last } => last.max(commit.frame),
    }
}
