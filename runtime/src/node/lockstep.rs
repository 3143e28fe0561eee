//! Lockstep: the primary runs each frame as soon as it has it and commits it; the backup
//! runs frame N only after the commit for N, with its own copy of the input when the
//! digest matches and the primary's copy otherwise.

use super::{
    Action, Alarm, Node, Reason, ResyncCause, Role, SyncState, TrafficClass, FETCH_BATCH_MAX, SWITCH_TAKEN_FRAMES,
};
use crate::app::{App, Frame};
use crate::digest::fnv64;
use crate::hmi::HmiWrites;
use crate::wire::{Body, Commit, CommitKind, Header, WireRole};

/// Commits a primary still sends past `max_lag_frames` after its last peer went silent
/// (see `Node::commit`): a tail of commits beyond a silent backup's lag bound, more than
/// one so that a loss or two on the way does not leave it unaware. At most
/// `max_lag_frames` + 16 commits to nobody each time the last peer goes silent.
const COMMIT_TAIL_FRAMES: u64 = 16;

/// What a run of one frame produced, for the caller to act on.
pub(super) struct Ran {
    pub input_digest: u64,
    pub output_digest: u64,
    pub outputs: u8,
}

impl<A: App> Node<A> {
    /// Steps the application on `frame` with the payload in the ring whose digest is
    /// `input_digest` (or any payload, when `None`). Leaves the outputs in `self.outbox`.
    /// The operators' `writes` are applied first (`hmi.rs`).
    pub(super) fn step_frame(&mut self, frame: u64, input_digest: Option<u64>, writes: &mut HmiWrites) -> Option<Ran> {
        let (digest, _) = self.ring.payload(frame)?;
        if input_digest.is_some_and(|d| d != digest) {
            return None;
        }
        self.hmi_apply(frame, writes);
        let (_, payload) = self.ring.payload(frame)?;
        self.outbox.clear();
        self.app.step(Frame { number: frame, payload }, &mut self.outbox);
        self.ran_to(frame);
        Some(Ran {
            input_digest: digest,
            output_digest: self.outbox.digest(frame),
            outputs: self.outbox.len() as u8,
        })
    }

    /// The last frame run is now `frame` (run, or skipped). Within a history it never goes
    /// back: a frame run twice would run the application on an input it has consumed
    /// (only a state transfer, a new history, sets it anew).
    pub(super) fn ran_to(&mut self, frame: u64) {
        assert!(
            frame >= self.frame_last_run,
            "frame_last_run going back from {} to {frame}",
            self.frame_last_run
        );
        self.frame_last_run = frame;
        self.state_epoch = self.epochs.current();
    }

    /// Primary: runs every frame in hand, in order; commits each (run or skipped).
    pub(super) fn primary_run_frames(&mut self) {
        if !self.switchover.primary_may_run() || !self.primary_quorum_heard() {
            return;
        }
        if self.frame_last_run == 0 {
            // A fresh primary starts at the newest frame in hand: older ones are stale.
            if self.frame_highest_received == 0 {
                return;
            }
            self.ran_to(self.frame_highest_received - 1);
        }
        // Frames decided here without the commits the old primary made of them, in a row:
        // one `CommitLost` for the run, not one per frame.
        let mut lost_run = None;
        while self.room_for_frame() && self.release_room_for_frame() {
            let next = self.frame_last_run + 1;
            // The takeover's held levels go out before any frame after its burst.
            if !self.levels_flush(Some(next)) {
                break;
            }
            // A commit above the last run frame came from the primary this node took over from.
            match self.ring.commit(next).map(|c| c.kind) {
                Some(CommitKind::Skipped { last }) => {
                    self.primary_skip(next, last.max(next));
                    continue;
                }
                Some(CommitKind::Ran {
                    input_digest,
                    sent_mask,
                    ..
                }) => {
                    if self.ring.payload_matching(next, input_digest).is_some() {
                        // Acked release: a `Released` heard as a backup covering the frame
                        // says every output of it went out, whatever its commit (older
                        // news) said held (since 2026-11-28: before, they went out again).
                        let sent_mask = if next <= self.release_known() {
                            u32::MAX
                        } else {
                            sent_mask
                        };
                        self.primary_run(next, Some(input_digest), sent_mask);
                    } else {
                        self.alarm(Alarm::InputLost { frame: next });
                        self.primary_skip(next, next);
                    }
                    continue;
                }
                None => {}
            }
            // No commit for `next`, below one held: the old primary decided it and its
            // commit never arrived (or a newer frame took its slot). Decided here, it may
            // part this history from the committed one: said, not silent.
            let lost = next <= self.inherited_to;
            if self.ring.payload(next).is_some() {
                if lost {
                    self.commit_lost(&mut lost_run, next, next);
                }
                self.primary_run(next, None, 0);
            } else if next < self.frame_highest_received {
                // Frames after `next` are in hand: `next` never arrived, skip the gap.
                let capacity = self.ring.capacity();
                // Frames a whole ring below the highest received cannot be in hand: the
                // bulk of a gap of any size goes in one commit, not a ring at a time.
                let far = self.frame_highest_received - capacity.min(self.frame_highest_received);
                if far > next && far > self.commit_highest {
                    if lost {
                        self.commit_lost(&mut lost_run, next, self.inherited_to);
                    }
                    self.primary_skip(next, far);
                    continue;
                }
                let mut last = next;
                let bound = (next + capacity).min(self.frame_highest_received);
                while last + 1 < bound && self.ring.payload(last + 1).is_none() && self.ring.commit(last + 1).is_none()
                {
                    last += 1;
                }
                if lost {
                    self.commit_lost(&mut lost_run, next, last.min(self.inherited_to));
                }
                self.primary_skip(next, last);
            } else {
                break;
            }
            if let Some(id) = self.join_pending.take() {
                self.transfer_start(id);
            }
        }
        if let Some((frame, last)) = lost_run {
            self.alarm(Alarm::CommitLost { frame, last });
        }
        self.levels_flush(None);
    }

    /// Primary: runs one frame, emits its outputs (but those in `sent_mask`, which the
    /// previous primary already sent) and commits it.
    fn primary_run(&mut self, frame: u64, input_digest: Option<u64>, sent_mask: u32) {
        // A frame committed by the old primary applies the writes it carried; a new one
        // the front of the queue.
        let mut writes = match input_digest.and_then(|_| self.ring.commit(frame)) {
            Some(commit) => commit.writes,
            None => self.hmi_next_writes(),
        };
        let Some(ran) = self.step_frame(frame, input_digest, &mut writes) else {
            return;
        };
        self.emit_outbox(frame, sent_mask);
        let all_sent = if ran.outputs >= 32 {
            u32::MAX
        } else {
            (1u32 << ran.outputs) - 1
        };
        // Acked outputs: those held for the backups' acks are not sent yet (`release.rs`).
        let all_sent = all_sent & !self.release_held_mask_take();
        let kind = CommitKind::Ran {
            input_digest: ran.input_digest,
            outputs: ran.outputs,
            sent_mask: all_sent,
            output_digest: ran.output_digest,
        };
        self.commit(frame, kind, writes);
    }

    /// New primary: frames `first..=last` are decided here without the commits the old
    /// primary made of them. Added to `run` when it goes on from it; otherwise the run
    /// before is alarmed (`Alarm::CommitLost`) and this one begins.
    fn commit_lost(&mut self, run: &mut Option<(u64, u64)>, first: u64, last: u64) {
        debug_assert!(first <= last, "commit lost for {first}..={last}");
        self.commits_lost = self.commits_lost.saturating_add(last.saturating_sub(first) + 1);
        match run {
            Some((_, run_last)) if *run_last + 1 == first => *run_last = last,
            _ => {
                if let Some((frame, last)) = run.replace((first, last)) {
                    self.alarm(Alarm::CommitLost { frame, last });
                }
            }
        }
    }

    fn primary_skip(&mut self, first: u64, last: u64) {
        self.ran_to(last);
        self.commit(first, CommitKind::Skipped { last }, HmiWrites::EMPTY);
    }

    fn commit(&mut self, frame: u64, kind: CommitKind, writes: HmiWrites) {
        let k = self.config.state_digest_interval_frames;
        let state_digest =
            (k != 0 && frame % k == 0 && matches!(kind, CommitKind::Ran { .. })).then(|| self.app.digest());
        let commit = Commit {
            frame,
            kind,
            state_digest,
            writes,
        };
        self.ring.put_commit(commit);
        self.commit_highest = self.commit_highest.max(self.frame_last_run);
        // A commit goes out while some peer was heard within its window, and for a tail
        // of `max_lag_frames` + `COMMIT_TAIL_FRAMES` frames past the highest committed
        // then: a lone primary's commits reach nobody and cost a system call per link per
        // cycle (issue 20). The tail is what a backup gone silent (frozen, or its sends
        // lost) needs: its last run frame is at most the primary's, so a commit of the
        // tail's end tells it, when it reads it, that it is past its lag bound, and it
        // resyncs rather than take over later from a history the primary left long ago
        // (DST seed 12850: without the tail, a frozen backup with one commit lost thawed
        // to a crashed lone primary a few frames behind by its count, took over, skipped
        // the gap and re-ran frames the old primary had emitted from another state).
        // Past the tail, each commit stays in the ring: a backup that reappears with
        // state fetches the gap (`backup_fetch_missing`, on the first commit past it) or
        // resyncs by lag, and one without state joins by transfer, whose snapshot is
        // taken after this node has heard it. See docs/DECISIONS.md, 2026-11-26.
        if self.any_peer_alive() {
            // Bounded: `commit_highest` is at most `FRAME_MAX`, `max_lag_frames` below
            // `frames_buffered` (at most 2^20, docs/CONFIG.md).
            self.commit_tail_last = self
                .commit_highest
                .saturating_add(self.config.max_lag_frames)
                .saturating_add(COMMIT_TAIL_FRAMES);
        }
        if frame <= self.commit_tail_last {
            self.send_all(Body::Commit(commit));
            // Acks ride only with commits that go out: held ones wait in their bounded
            // queue (a dropped id costs a duplicate after a takeover, nothing more).
            self.acks_send_with_commit();
        } else if self.role == Role::Primary {
            let epoch = self.header(0).epoch;
            self.push(Action::CommitHeld { epoch, commit });
        }
        self.source_announce_with_commit(frame);
        // After a switchover, a few frames' worth of word to the old primary of how this
        // node took over: its first commit alone may be lost.
        if let Some((id, released)) = self.switch_taken {
            if frame <= released + SWITCH_TAKEN_FRAMES {
                self.send_all(Body::SwitchTaken { id, frame: released });
            } else {
                self.switch_taken = None;
            }
        }
    }

    /// Backup: runs every committed frame it can, in order.
    pub(super) fn backup_run_frames(&mut self) {
        if !self.has_state() {
            return;
        }
        while self.room_for_frame() {
            let next = self.frame_last_run + 1;
            let Some(commit) = self.ring.commit(next) else {
                // A later commit is here, this one is not: lost on the way, or sent while
                // this node was joining and took none. Asked for now, not when the next
                // commit arrives: the primary may be gone by then, and a takeover would
                // decide the frame without it (`Alarm::CommitLost`).
                if self.commit_highest > next && (self.fetch_next.is_none() || next > self.fetch_asked_to) {
                    self.backup_fetch_missing();
                }
                break;
            };
            match commit.kind {
                CommitKind::Skipped { last } => {
                    self.ran_to(last.max(next));
                }
                CommitKind::Ran {
                    input_digest,
                    sent_mask,
                    output_digest,
                    ..
                } => {
                    let mut writes = commit.writes;
                    let Some(ran) = self.step_frame(next, Some(input_digest), &mut writes) else {
                        // Our copy is missing or differs: ask the primary for its own.
                        if self.fetch_next.is_none() || next > self.fetch_asked_to {
                            self.backup_fetch_missing();
                        }
                        break;
                    };
                    self.backup_hold_outputs(next, sent_mask);
                    if ran.output_digest != output_digest {
                        self.alarm(Alarm::OutputDivergence { frame: next });
                        self.start_join(Some(ResyncCause::Divergence));
                        return;
                    }
                    if commit.state_digest.is_some_and(|d| d != self.app.digest()) {
                        self.alarm(Alarm::StateDivergence { frame: next });
                        self.start_join(Some(ResyncCause::Divergence));
                        return;
                    }
                }
            }
        }
        self.backup_track_lag();
    }

    /// Backup: InSync/Lagging by lag, and a resync when the lag exceeds `max_lag_frames`.
    fn backup_track_lag(&mut self) {
        // A backup runs only committed frames (its lag is never negative).
        assert!(
            self.commit_highest >= self.frame_last_run,
            "backup ran frame {} above the highest commit {}",
            self.frame_last_run,
            self.commit_highest
        );
        let lag = self.lag_frames();
        if lag > self.config.max_lag_frames {
            self.start_join(Some(ResyncCause::Lag));
            return;
        }
        let lagging_from = (self.config.max_lag_frames / 8).max(4);
        match (self.sync, lag >= lagging_from) {
            (SyncState::InSync, true) => self.transition(Role::Backup, SyncState::Lagging, Reason::Lagging),
            (SyncState::Lagging, false) => self.transition(Role::Backup, SyncState::InSync, Reason::CaughtUp),
            _ => {}
        }
    }

    pub(super) fn on_commit(&mut self, header: &Header, commit: Commit) {
        self.vote_check_commit(header, &commit);
        if self.config.witness {
            return;
        }
        if self.role != Role::Backup || header.role != WireRole::Primary || header.epoch != self.epochs.current().0 {
            return;
        }
        self.store_commit(commit);
        let next = self.frame_last_run + 1;
        let missing = self.ring.commit(next).is_none()
            || matches!(commit.kind, CommitKind::Ran { input_digest, .. } if self.ring.payload_matching(commit.frame, input_digest).is_none());
        if missing && self.has_state() && (self.fetch_next.is_none() || next > self.fetch_asked_to) {
            self.backup_fetch_missing();
        }
    }

    fn store_commit(&mut self, commit: Commit) {
        if commit.frame <= self.frame_last_run && self.has_state() {
            return;
        }
        let last = match commit.kind {
            CommitKind::Skipped { last } => last.max(commit.frame),
            CommitKind::Ran { .. } => commit.frame,
        };
        // What a primary may claim: its frames are within `frame_jump_max` of its own, and
        // this backup is at most `frames_buffered` behind it. Beyond is forged or corrupt
        // (a huge skip, or a `last` near u64::MAX that `last + 1` would overflow).
        let reach = self.config.frame_jump_max + self.config.frames_buffered;
        if !self.frame_in_reach(last, reach) {
            self.refuse_frame(last);
            return;
        }
        self.ring.put_commit(commit);
        self.commit_highest = self.commit_highest.max(last);
    }

    /// Whether every frame number `body` names is at most [`super::FRAME_MAX`]; counts
    /// and alarms it when not. Checked before any handler sees the message, so that no
    /// `frame + 1` on a peer's number can overflow (commits are further bounded by
    /// `store_commit`).
    pub(super) fn peer_frames_in_range(&mut self, body: &Body) -> bool {
        let frame = match body {
            Body::Commit(commit) | Body::FrameData { commit, .. } => match commit.kind {
                CommitKind::Skipped { last } => commit.frame.max(last),
                CommitKind::Ran { .. } => commit.frame,
            },
            Body::Fetch { frame }
            | Body::TransferBegin { frame, .. }
            | Body::SwitchRelease { frame, .. }
            | Body::SwitchTaken { frame, .. }
            | Body::CommitAck { frame }
            | Body::Released { frame } => *frame,
            Body::SourceMap { pair_first, .. } => *pair_first,
            _ => 0,
        };
        if frame <= super::FRAME_MAX {
            return true;
        }
        self.refuse_frame(frame);
        false
    }

    /// Anyone: answers a fetch with the commit and payload of a frame it still holds.
    pub(super) fn on_fetch(&mut self, link: u8, frame: u64) {
        if self.role != Role::Primary {
            return;
        }
        let Some(commit) = self.ring.commit(frame) else {
            return;
        };
        let payload = match commit.kind {
            CommitKind::Ran { input_digest, .. } => match self.ring.payload_matching(frame, input_digest) {
                Some(bytes) => heapless::Vec::from_slice(bytes).unwrap_or_default(),
                None => return,
            },
            CommitKind::Skipped { .. } => heapless::Vec::new(),
        };
        self.send(link, TrafficClass::Control, Body::FrameData { commit, payload });
    }

    pub(super) fn on_frame_data(&mut self, header: &Header, commit: Commit, payload: &[u8]) {
        if self.role != Role::Backup || header.role != WireRole::Primary || header.epoch != self.epochs.current().0 {
            return;
        }
        if let CommitKind::Ran { input_digest, .. } = commit.kind {
            if fnv64(payload) != input_digest {
                return;
            }
            self.ring.replace_payload(commit.frame, payload);
        }
        self.store_commit(commit);
    }

    /// Backup: asks for the commits or payloads it lacks, a few frames at a time.
    pub(super) fn backup_fetch_missing(&mut self) {
        if self.role != Role::Backup || !self.has_state() {
            return;
        }
        let first = self.frame_last_run + 1;
        let last = self.commit_highest.min(first + FETCH_BATCH_MAX - 1);
        let mut asked = false;
        let mut frame = first;
        while frame <= last {
            let wanted = match self.ring.commit(frame) {
                None => true,
                Some(Commit {
                    kind: CommitKind::Ran { input_digest, .. },
                    ..
                }) => self.ring.payload_matching(frame, input_digest).is_none(),
                Some(Commit {
                    kind: CommitKind::Skipped { last },
                    ..
                }) => {
                    frame = last.max(frame) + 1;
                    continue;
                }
            };
            if wanted {
                self.send_all(Body::Fetch { frame });
                self.fetch_asked_to = self.fetch_asked_to.max(frame);
                asked = true;
            }
            frame += 1;
        }
        if asked {
            self.fetch_next = Some(self.now + self.config.retry());
        }
    }
}
