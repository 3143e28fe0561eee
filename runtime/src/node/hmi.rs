//! Operators' writes through the lockstep (issue 18; docs/HMI.md, "Writes").
//!
//! A write accepted by any node goes to the primary (a backup forwards it,
//! `Body::HmiWrite`, again every `retry_ms` until a commit carries it). The primary applies
//! at most [`WRITES_PER_FRAME_MAX`] queued writes before the step of its next frame and
//! carries them in that frame's commit; every node applies a commit's writes before the
//! step of that frame, so the nodes never diverge.
//!
//! The node that accepted a write answers it ([`Action::HmiWriteDone`]) once no takeover
//! can lose it: a primary when an in-sync backup of its epoch reports a run frame at or
//! above the write's (it holds the commit); a backup when it runs the frame itself (it
//! holds the commit, and it is the one that would take over). A primary without an
//! in-sync backup refuses writes: its history is the only copy, and a backup that took
//! over behind a partition would not have them.
//!
//! Never applied twice: every node keeps the last [`APPLIED_MAX`] writes it applied (from
//! the commits it ran, so the same on every node of a history); a write whose id, tag and
//! value are there or queued is not queued again, and a client's retry is answered from
//! the frame it was applied at.
//!
//! Bounds: [`QUEUED_MAX`] queued writes, [`WAITING_MAX`] unanswered ones, [`APPLIED_MAX`]
//! remembered ones; every pass over them is per wake-up and linear in these.

use super::{Action, Node, Role, SyncState};
use crate::app::App;
use crate::hmi::{HmiWrite, HmiWrites, WRITES_PER_FRAME_MAX};
use crate::time::Instant;
use crate::wire::{Body, Header, WireRole, WireSync};

/// Writes a primary holds for its next frames.
pub(super) const QUEUED_MAX: usize = 32;
/// Writes accepted here and not yet answered.
pub(super) const WAITING_MAX: usize = 32;
/// Writes remembered as applied, for the dedup of retries.
pub(super) const APPLIED_MAX: usize = 256;
/// Detection windows after which an unanswered write is answered `TimedOut`.
const TIMEOUT_WINDOWS: u32 = 4;

/// Why a node refused a write at once (nothing was applied or forwarded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HmiRefusal {
    /// No such tag, or it is read-only.
    NotWritable,
    /// The value is outside the tag's limits or its type's range.
    OutOfLimits,
    /// This node knows no primary to send it to (starting, joining, or its primary is
    /// silent), or it is a primary without an in-sync backup (see the module doc).
    NoPrimary,
    /// Too many writes wait already (`QUEUED_MAX`, `WAITING_MAX`): try again later.
    Busy,
}

/// How a write accepted by this node ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HmiOutcome {
    /// Applied at `frame` on every node of the history, and held where no takeover loses
    /// it.
    Applied {
        /// The frame before whose step it was applied.
        frame: u64,
    },
    /// Not answered within four detection windows: it may or may not be applied; a retry
    /// with the same id, tag and value is applied at most once.
    TimedOut,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// In this primary's queue.
    Queued,
    /// Forwarded by this backup; sent again at `resend_at`.
    Forwarded { resend_at: Instant },
    /// Applied at this frame; answered when held safely.
    Applied(u64),
    /// Queued or applied in a history this node no longer leads or holds: answered
    /// `TimedOut` at the next progress, before anything could judge it by a frame number
    /// of the new history.
    Stale,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Waiting {
    write: HmiWrite,
    stage: Stage,
    deadline: Instant,
}

/// The node's HMI write state.
#[derive(Debug, Default)]
pub(super) struct HmiState {
    queued: heapless::Deque<HmiWrite, QUEUED_MAX>,
    waiting: heapless::Vec<Waiting, WAITING_MAX>,
    applied: heapless::Deque<(HmiWrite, u64), APPLIED_MAX>,
    /// Writes applied, counted (status).
    pub(super) applied_count: u64,
}

impl HmiState {
    fn applied_at(&self, write: &HmiWrite) -> Option<u64> {
        self.applied.iter().find(|(w, _)| w == write).map(|&(_, frame)| frame)
    }

    /// The memory may have dropped a write applied after `frame`: it is full and its
    /// oldest entry is of a later frame.
    fn forgot_since(&self, frame: u64) -> bool {
        self.applied.is_full() && self.applied.front().is_some_and(|&(_, oldest)| oldest > frame)
    }

    fn remember(&mut self, write: HmiWrite, frame: u64) {
        if self.applied.is_full() {
            self.applied.pop_front();
        }
        let _ = self.applied.push_back((write, frame));
        self.applied_count += 1;
    }
}

/// Bytes of one remembered write in a transfer: client u32, transaction u16, tag u16,
/// value i64, frame u64, little-endian.
const MEMORY_ENTRY_BYTES: usize = 24;
/// The most bytes the memory adds to a transfer's snapshot: every entry and a count.
pub(super) const MEMORY_BYTES_MAX: usize = APPLIED_MAX * MEMORY_ENTRY_BYTES + 4;

/// Writes the memory of applied writes into `out` (entries oldest first, then their count,
/// u32 LE); the bytes written. `out` is at least `MEMORY_BYTES_MAX` long: the snapshot
/// buffer is allocated with that room beyond `state_bytes_max`.
pub(super) fn encode_memory(hmi: &HmiState, out: &mut [u8]) -> usize {
    let mut at = 0;
    for (write, frame) in hmi.applied.iter() {
        let Some(slot) = out.get_mut(at..at + MEMORY_ENTRY_BYTES) else {
            break;
        };
        slot[0..4].copy_from_slice(&write.id.client.to_le_bytes());
        slot[4..6].copy_from_slice(&write.id.transaction.to_le_bytes());
        slot[6..8].copy_from_slice(&write.tag.to_le_bytes());
        slot[8..16].copy_from_slice(&write.value.to_le_bytes());
        slot[16..24].copy_from_slice(&frame.to_le_bytes());
        at += MEMORY_ENTRY_BYTES;
    }
    let count = (at / MEMORY_ENTRY_BYTES) as u32;
    if let Some(slot) = out.get_mut(at..at + 4) {
        slot.copy_from_slice(&count.to_le_bytes());
        at += 4;
    }
    at
}

/// Splits a received snapshot into the program's bytes (their length) and the memory's
/// entries; `None` when the trailer does not fit (a count above `APPLIED_MAX`, or more
/// bytes than there are). Never panics.
pub(super) fn split_memory(snapshot: &[u8]) -> Option<(usize, &[u8])> {
    let count_at = snapshot.len().checked_sub(4)?;
    let count = u32::from_le_bytes(snapshot[count_at..].try_into().ok()?) as usize;
    if count > APPLIED_MAX {
        return None;
    }
    let state_len = count_at.checked_sub(count * MEMORY_ENTRY_BYTES)?;
    Some((state_len, &snapshot[state_len..count_at]))
}

fn memory_entry(bytes: &[u8]) -> (HmiWrite, u64) {
    let u64_at = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().unwrap_or([0; 8]));
    let write = HmiWrite {
        id: crate::hmi::WriteId {
            client: u32::from_le_bytes(bytes[0..4].try_into().unwrap_or([0; 4])),
            transaction: u16::from_le_bytes([bytes[4], bytes[5]]),
        },
        tag: u16::from_le_bytes([bytes[6], bytes[7]]),
        value: u64_at(8) as i64,
    };
    (write, u64_at(16))
}

impl<A: App> Node<A> {
    /// A transfer installed: the primary's memory of applied writes becomes this node's
    /// (`memory` as [`split_memory`] cut it; the snapshot buffer holds it).
    pub(super) fn hmi_install_memory(&mut self, state_len: usize, memory: usize) {
        for i in 0..memory / MEMORY_ENTRY_BYTES {
            let at = state_len + i * MEMORY_ENTRY_BYTES;
            let entry = memory_entry(&self.snapshot_buf[at..at + MEMORY_ENTRY_BYTES]);
            if self.hmi.applied.is_full() {
                self.hmi.applied.pop_front();
            }
            let _ = self.hmi.applied.push_back(entry);
        }
    }

    /// An operator's write, accepted by this node's HMI server: `Ok` when it goes on (an
    /// [`Action::HmiWriteDone`] answers it later), the reason when refused at once.
    pub fn handle_hmi_write(&mut self, now: Instant, write: HmiWrite) -> Result<(), HmiRefusal> {
        self.wake(now);
        let result = self.hmi_accept(write);
        self.advance();
        result
    }

    /// Writes applied by this node (from its own queue or a commit).
    pub fn hmi_writes_applied(&self) -> u64 {
        self.hmi.applied_count
    }

    fn hmi_accept(&mut self, write: HmiWrite) -> Result<(), HmiRefusal> {
        let tag = self.app.hmi_tags().get(usize::from(write.tag)).copied();
        match tag {
            None => return Err(HmiRefusal::NotWritable),
            Some(tag) if !tag.class.writable() => return Err(HmiRefusal::NotWritable),
            Some(tag) if !tag.accepts(write.value) => return Err(HmiRefusal::OutOfLimits),
            Some(_) => {}
        }
        if self.hmi.waiting.iter().any(|w| w.write == write) {
            // A retry of a write still under way: its answer answers both.
            return Ok(());
        }
        let deadline = self.now + self.config.detection_window() * TIMEOUT_WINDOWS;
        // What this node remembers is of the history it holds only while it leads or
        // follows in sync (a fenced node's memory is of a history it may give up).
        let consistent = self.role == Role::Primary
            || (self.role == Role::Backup && matches!(self.sync, SyncState::InSync | SyncState::Lagging));
        let stage = if let Some(frame) = self.hmi.applied_at(&write).filter(|_| consistent) {
            Stage::Applied(frame)
        } else {
            match self.role {
                Role::Primary if self.hmi_backup_in_sync(0) => {
                    if self.hmi.queued.iter().all(|w| *w != write) && self.hmi.queued.is_full() {
                        return Err(HmiRefusal::Busy);
                    }
                    Stage::Queued
                }
                Role::Backup if self.sync == SyncState::InSync => Stage::Forwarded { resend_at: self.now },
                _ => return Err(HmiRefusal::NoPrimary),
            }
        };
        if self.hmi.waiting.is_full() {
            return Err(HmiRefusal::Busy);
        }
        if stage == Stage::Queued && self.hmi.queued.iter().all(|w| *w != write) {
            // Room checked above.
            let _ = self.hmi.queued.push_back(write);
        }
        let _ = self.hmi.waiting.push(Waiting { write, stage, deadline });
        Ok(())
    }

    /// Some in-sync backup of this primary's epoch reports a run frame at or above
    /// `frame` (0: any in-sync backup).
    fn hmi_backup_in_sync(&self, frame: u64) -> bool {
        let epoch = self.epochs.current().0;
        (0..usize::from(self.peer_count)).any(|slot| {
            self.slot_alive(slot)
                && self.peers[slot].status.is_some_and(|p| {
                    p.role == WireRole::Backup
                        && matches!(p.sync, WireSync::InSync | WireSync::Lagging)
                        && p.epoch == epoch
                        && p.frame >= frame
                })
        })
    }

    /// Primary: a write a backup forwarded. Dropped when not for this primary's epoch, not
    /// a write the program accepts, already applied or queued, or the queue is full (the
    /// backup sends it again).
    pub(super) fn on_hmi_write(&mut self, header: &Header, write: HmiWrite) {
        if self.role != Role::Primary || header.epoch != self.epochs.current().0 {
            return;
        }
        let accepted = self
            .app
            .hmi_tags()
            .get(usize::from(write.tag))
            .is_some_and(|tag| tag.accepts(write.value));
        if !accepted || self.hmi.applied_at(&write).is_some() || self.hmi.queued.iter().any(|w| *w == write) {
            return;
        }
        // The backup sent it at its frame `header.frame`; a write applied since was applied
        // at a later frame. Unless the memory still reaches back that far, a late copy (a
        // cut link's, delayed, or a first copy an attacker held back) may be of a write
        // applied and forgotten since: applying it again would hand the plant an old
        // value long after. Dropped; a write still waiting is re-sent with a newer frame
        // (DST seed 4791, 2026-11-27).
        if self.hmi.forgot_since(header.frame) {
            return;
        }
        let _ = self.hmi.queued.push_back(write);
    }

    /// Primary: the writes its next frame applies, from the front of the queue.
    pub(super) fn hmi_next_writes(&self) -> HmiWrites {
        let mut writes = HmiWrites::EMPTY;
        for write in self.hmi.queued.iter().take(WRITES_PER_FRAME_MAX) {
            writes.push(*write);
        }
        writes
    }

    /// Anyone: applies `writes` at `frame`, before its step. A primary's writes leave its
    /// queue (they came from its front).
    ///
    /// A write this history applied already is skipped and left out of `writes` (which
    /// then says what was applied, for the commit): a new primary may run an inherited
    /// commit of a primary whose history parted from its own, carrying a write it
    /// applied at another frame (DST seed 128, 2026-11-26).
    pub(super) fn hmi_apply(&mut self, frame: u64, writes: &mut HmiWrites) {
        let given = *writes;
        *writes = HmiWrites::EMPTY;
        for write in given.as_slice() {
            if self.hmi.applied_at(write).is_some() {
                if self.hmi.queued.front() == Some(write) {
                    self.hmi.queued.pop_front();
                }
                continue;
            }
            writes.push(*write);
            self.app.hmi_write(write.tag, write.value);
            self.hmi.remember(*write, frame);
            if self.hmi.queued.front() == Some(write) {
                self.hmi.queued.pop_front();
            }
            if let Some(w) = self.hmi.waiting.iter_mut().find(|w| w.write == *write) {
                w.stage = Stage::Applied(frame);
            }
        }
    }

    /// No longer primary: the queued writes are this node's to apply no more, and what
    /// it applied as primary may not stay the pair's (a fenced primary's history is
    /// replaced). Their waiting writes time out at once; a retry is answered from the
    /// history this node follows next (`applied`, cleared by a new history).
    pub(super) fn hmi_forget_queue(&mut self) {
        self.hmi.queued.clear();
        self.hmi_time_out_applied();
    }

    /// A state transfer installed: a new history. Nothing this node applied or
    /// remembered before is known to be in it (the snapshot holds what the primary
    /// applied, but not which writes).
    pub(super) fn hmi_new_history(&mut self) {
        self.hmi.queued.clear();
        self.hmi.applied.clear();
        self.hmi_time_out_applied();
    }

    /// Every waiting write that is queued or applied here times out at the next
    /// progress; forwarded ones wait for a commit of the history this node follows.
    fn hmi_time_out_applied(&mut self) {
        let now = self.now;
        for w in self.hmi.waiting.iter_mut() {
            if matches!(w.stage, Stage::Queued | Stage::Applied(_)) {
                w.stage = Stage::Stale;
                w.deadline = w.deadline.min(now);
            }
        }
    }

    /// Answers the writes held safely or overdue, forwards and re-forwards a backup's,
    /// and queues a new primary's forwarded ones itself. Linear in `WAITING_MAX`.
    pub(super) fn hmi_progress(&mut self) {
        let mut i = 0;
        while i < self.hmi.waiting.len() {
            let w = self.hmi.waiting[i];
            let done = match w.stage {
                Stage::Applied(frame) => match self.role {
                    Role::Primary => self.hmi_backup_in_sync(frame),
                    // It ran the frame here, following its primary: this backup is who
                    // takes over. (A fenced node joins anew: not in sync.)
                    Role::Backup => {
                        matches!(self.sync, SyncState::InSync | SyncState::Lagging) && self.frame_last_run >= frame
                    }
                    Role::Starting => false,
                },
                _ => false,
            };
            if (done || self.now >= w.deadline) && self.room_for(1) {
                let outcome = match (done, w.stage) {
                    (true, Stage::Applied(frame)) => HmiOutcome::Applied { frame },
                    _ => HmiOutcome::TimedOut,
                };
                self.hmi.waiting.swap_remove(i);
                self.push(Action::HmiWriteDone {
                    write: w.write,
                    outcome,
                });
                continue;
            }
            match w.stage {
                Stage::Forwarded { .. } if self.role == Role::Primary => {
                    // Took over with it forwarded: queued here unless this history applied
                    // it (from the old primary's commit) or the queue is full (next time).
                    if let Some(frame) = self.hmi.applied_at(&w.write) {
                        self.hmi.waiting[i].stage = Stage::Applied(frame);
                    } else if self.hmi.queued.iter().any(|q| *q == w.write)
                        || self.hmi.queued.push_back(w.write).is_ok()
                    {
                        self.hmi.waiting[i].stage = Stage::Queued;
                    }
                }
                Stage::Forwarded { resend_at }
                    if self.role == Role::Backup
                        && self.now >= resend_at
                        && self.room_for(usize::from(self.links_total())) =>
                {
                    self.send_all(Body::HmiWrite(w.write));
                    self.hmi.waiting[i].stage = Stage::Forwarded {
                        resend_at: self.now + self.config.retry(),
                    };
                }
                _ => {}
            }
            i += 1;
        }
    }

    /// When the HMI writes need the node next: the earliest resend or deadline.
    pub(super) fn hmi_deadline(&self) -> Option<Instant> {
        self.hmi
            .waiting
            .iter()
            .map(|w| match w.stage {
                // Only a backup resends: in any other role a resend time in the past
                // would wake the node at once, again and again (DST seed 148).
                Stage::Forwarded { resend_at } if self.role == Role::Backup => resend_at.min(w.deadline),
                _ => w.deadline,
            })
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::{Frame, Outbox, SnapshotError};
    use crate::config::Config;
    use crate::hmi::{HmiClass, HmiTag, HmiType, WriteId};
    use crate::node::SyncState;
    use crate::testing::Pair;
    use core::time::Duration;

    const TAGS: [HmiTag; 2] = [
        HmiTag::read("count", HmiClass::Value, HmiType::U32, ""),
        HmiTag::write("setpoint", HmiClass::Setpoint, HmiType::I16, "mm", -10, 100),
    ];

    /// A program with one setpoint: every write it is given is logged with the frame it
    /// precedes (the log is in the state, so a transfer carries it).
    #[derive(Debug, Default)]
    struct SetpointApp {
        setpoint: i64,
        frames: u64,
        pending: std::vec::Vec<(u16, i64)>,
        log: std::vec::Vec<(u64, u16, i64)>,
    }

    impl App for SetpointApp {
        fn step(&mut self, frame: Frame<'_>, outbox: &mut Outbox) {
            self.frames += 1;
            for (tag, value) in self.pending.drain(..) {
                self.log.push((frame.number, tag, value));
            }
            let _ = outbox.push(&self.setpoint.to_le_bytes());
        }
        fn snapshot(&self, buf: &mut [u8]) -> Result<usize, SnapshotError> {
            let state = (self.setpoint, self.frames, &self.log);
            crate::app::snapshot_postcard(&state, buf)
        }
        fn restore(&mut self, bytes: &[u8]) -> Result<(), SnapshotError> {
            let (setpoint, frames, log): (i64, u64, std::vec::Vec<(u64, u16, i64)>) =
                crate::app::restore_postcard(bytes)?;
            (self.setpoint, self.frames, self.log) = (setpoint, frames, log);
            Ok(())
        }
        fn digest(&self) -> u64 {
            self.frames ^ (self.setpoint as u64) << 32
        }
        fn hmi_tags(&self) -> &[HmiTag] {
            &TAGS
        }
        fn hmi_read(&self, tag: u16) -> Option<i64> {
            match tag {
                0 => Some(self.frames as i64),
                1 => Some(self.setpoint),
                _ => None,
            }
        }
        fn hmi_write(&mut self, tag: u16, value: i64) {
            self.setpoint = value;
            self.pending.push((tag, value));
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn await_state(p: &mut Pair<SetpointApp>, i: usize, role: Role, sync: SyncState) -> bool {
        let until = p.now + ms(2000);
        p.run_until(until, |p| {
            p.nodes[i]
                .as_ref()
                .is_some_and(|n| n.role() == role && n.status().sync == sync)
        })
    }

    fn running_pair() -> Pair<SetpointApp> {
        let mut p = Pair::of(
            31,
            Config::default(),
            |_| SetpointApp::default(),
            |n| n.to_le_bytes().to_vec(),
        );
        p.start(0);
        assert!(await_state(&mut p, 0, Role::Primary, SyncState::Alone));
        p.start(1);
        assert!(await_state(&mut p, 1, Role::Backup, SyncState::InSync));
        assert!(await_state(&mut p, 0, Role::Primary, SyncState::Paired));
        p
    }

    fn write(transaction: u16, value: i64) -> HmiWrite {
        HmiWrite {
            id: WriteId { client: 7, transaction },
            tag: 1,
            value,
        }
    }

    fn submit(p: &mut Pair<SetpointApp>, i: usize, w: HmiWrite) -> Result<(), HmiRefusal> {
        let now = p.now;
        let result = p.nodes[i].as_mut().expect("node up").handle_hmi_write(now, w);
        p.drain(i);
        result
    }

    /// Runs until node `i` answered `w`, within two seconds; its outcome.
    fn await_answer(p: &mut Pair<SetpointApp>, i: usize, w: HmiWrite) -> Option<HmiOutcome> {
        let until = p.now + ms(2000);
        p.run_until(until, |p| p.hmi_done.iter().any(|&(n, d, _)| n == i && d == w));
        p.hmi_done
            .iter()
            .find(|&&(n, d, _)| n == i && d == w)
            .map(|&(_, _, o)| o)
    }

    fn log_of(p: &Pair<SetpointApp>, i: usize) -> std::vec::Vec<(u64, u16, i64)> {
        p.node(i).app().log.clone()
    }

    #[test]
    fn paired_primary_write_applied_at_same_frame_on_both_then_acknowledged() {
        let mut p = running_pair();
        let w = write(1, 42);
        assert_eq!(submit(&mut p, 0, w), Ok(()));
        let Some(HmiOutcome::Applied { frame }) = await_answer(&mut p, 0, w) else {
            panic!("no acknowledgement: {:?}", p.hmi_done);
        };
        // Acknowledged only once the backup ran the frame: it has applied it already.
        assert_eq!(log_of(&p, 1), [(frame, 1, 42)]);
        assert_eq!(log_of(&p, 0), [(frame, 1, 42)]);
        p.run_for(ms(50));
        assert_eq!(p.node(0).app().setpoint, 42);
        assert_eq!(p.node(1).app().setpoint, 42);
        assert_eq!(p.hmi_done.len(), 1);
    }

    #[test]
    fn paired_backup_write_forwarded_applied_on_both_acknowledged_by_backup() {
        let mut p = running_pair();
        let w = write(2, -10);
        assert_eq!(submit(&mut p, 1, w), Ok(()));
        let Some(HmiOutcome::Applied { frame }) = await_answer(&mut p, 1, w) else {
            panic!("no acknowledgement: {:?}", p.hmi_done);
        };
        p.run_for(ms(20));
        assert_eq!(log_of(&p, 0), [(frame, 1, -10)]);
        assert_eq!(log_of(&p, 1), [(frame, 1, -10)]);
        assert!(
            p.hmi_done.iter().all(|&(n, _, _)| n == 1),
            "only the accepting node answers"
        );
    }

    #[test]
    fn paired_write_out_of_limits_or_read_only_refused() {
        let mut p = running_pair();
        assert_eq!(submit(&mut p, 0, write(3, 101)), Err(HmiRefusal::OutOfLimits));
        assert_eq!(submit(&mut p, 1, write(3, -11)), Err(HmiRefusal::OutOfLimits));
        let read_only = HmiWrite { tag: 0, ..write(3, 1) };
        assert_eq!(submit(&mut p, 0, read_only), Err(HmiRefusal::NotWritable));
        let unknown = HmiWrite { tag: 9, ..write(3, 1) };
        assert_eq!(submit(&mut p, 0, unknown), Err(HmiRefusal::NotWritable));
        p.run_for(ms(50));
        assert!(log_of(&p, 0).is_empty() && log_of(&p, 1).is_empty());
    }

    #[test]
    fn alone_write_refused_no_primary() {
        let mut p = Pair::of(
            31,
            Config::default(),
            |_| SetpointApp::default(),
            |n| n.to_le_bytes().to_vec(),
        );
        p.start(0);
        assert!(await_state(&mut p, 0, Role::Primary, SyncState::Alone));
        assert_eq!(submit(&mut p, 0, write(4, 5)), Err(HmiRefusal::NoPrimary));
        p.run_for(ms(20));
        assert!(log_of(&p, 0).is_empty());
    }

    #[test]
    fn paired_write_retried_after_acknowledgement_not_applied_twice() {
        let mut p = running_pair();
        let w = write(5, 7);
        submit(&mut p, 1, w).unwrap();
        let first = await_answer(&mut p, 1, w).expect("answered");
        p.hmi_done.clear();
        // The client's retry (its answer was lost): to the other node this time.
        submit(&mut p, 0, w).unwrap();
        assert_eq!(await_answer(&mut p, 0, w), Some(first));
        p.run_for(ms(50));
        assert_eq!(log_of(&p, 0).len(), 1);
        assert_eq!(log_of(&p, 1).len(), 1);
    }

    /// Each node counts the writes it applied, from its own queue or from a commit, once
    /// each: a retry answered from the memory of applied writes is not applied, nor
    /// counted, again. (Mutant `hmi.rs:108:28` `+=` → `*=`: the count stayed at 0.
    /// Schemata run of 64df4f8, 2026-11-27.)
    #[test]
    fn paired_writes_applied_counted_once_each_on_both_nodes() {
        let mut p = running_pair();
        let (first, second) = (write(10, 3), write(11, 4));
        submit(&mut p, 0, first).unwrap();
        submit(&mut p, 1, second).unwrap();
        assert!(await_answer(&mut p, 0, first).is_some());
        assert!(await_answer(&mut p, 1, second).is_some());
        submit(&mut p, 0, second).unwrap();
        assert!(await_answer(&mut p, 0, second).is_some());
        p.run_for(ms(50));
        assert_eq!(log_of(&p, 0).len(), 2);
        for i in 0..2 {
            assert_eq!(p.node(i).hmi_writes_applied(), 2, "writes node {i} counted");
        }
    }

    /// A late copy of a backup's forward — one sent on a link that was cut and delivered
    /// seconds later, or a first copy an attacker held back and replays under the key,
    /// which the replay window rightly takes — reaches the primary after its memory of
    /// applied writes has forgotten the write (256 newer ones since): it was applied
    /// again, and the plant got an old setpoint back long after its operator moved on
    /// (DST seed 4791 of 2000..19999, the busy HMI writer and the attacker, 2026-11-27).
    /// A primary takes a forward only while its memory holds every write applied since
    /// the backup sent it (the frame in its header); the backup re-sends a write that
    /// still waits, with a newer frame.
    #[test]
    fn primary_late_forward_of_a_write_its_memory_forgot_not_applied_again() {
        let mut p = running_pair();
        p.capture = true;
        let old = write(1, 77);
        submit(&mut p, 1, old).unwrap();
        assert!(matches!(await_answer(&mut p, 1, old), Some(HmiOutcome::Applied { .. })));
        let forwards: std::vec::Vec<(u8, crate::wire::WireBuf)> = p
            .captured
            .iter()
            .filter(|(from, _, bytes)| {
                *from == 1
                    && matches!(crate::wire::decode(bytes, None).map(|e| e.body), Ok(Body::HmiWrite(w)) if w == old)
            })
            .map(|(_, link, bytes)| (*link, bytes.clone()))
            .collect();
        assert!(!forwards.is_empty(), "the backup forwarded it");
        p.capture = false;
        p.captured.clear();
        // 260 newer writes, four at a time.
        for batch in 0..65u16 {
            let ws: std::vec::Vec<HmiWrite> = (0..4).map(|k| write(100 + batch * 4 + k, i64::from(k) - 5)).collect();
            for &w in &ws {
                submit(&mut p, 0, w).unwrap();
            }
            for &w in &ws {
                assert!(matches!(await_answer(&mut p, 0, w), Some(HmiOutcome::Applied { .. })));
            }
        }
        let (link, bytes) = &forwards[0];
        p.inject(0, *link, bytes);
        p.run_for(ms(50));
        for i in 0..2 {
            let applied = log_of(&p, i).iter().filter(|&&(_, _, v)| v == 77).count();
            assert_eq!(applied, 1, "node {i} applied the old write again");
        }
        // A fresh forward is taken, the memory full or not.
        let new = write(2, 55);
        submit(&mut p, 1, new).unwrap();
        assert!(matches!(await_answer(&mut p, 1, new), Some(HmiOutcome::Applied { .. })));
    }

    /// A primary whose only backup is joining (it heard the primary, its transfer has not
    /// begun) has no in-sync copy of its history: it refuses a write (0A), as with no
    /// backup at all. (Mutants `hmi.rs:246:25` and `247:25` of 64df4f8, `&&` → `||` in
    /// `hmi_backup_in_sync`: a joining backup, or any peer of the epoch, counted as in
    /// sync, and a write was taken that a takeover could not keep. Schemata run of
    /// 64df4f8, 2026-11-27.)
    #[test]
    fn primary_with_only_a_joining_backup_refuses_a_write() {
        let mut p = running_pair();
        p.crash(1);
        // The backup restarts and stays joining: no beginning of a transfer reaches it.
        p.drop_if = Some(|from, envelope| from == 0 && matches!(envelope.body, Body::TransferBegin { .. }));
        p.start(1);
        assert!(await_state(&mut p, 1, Role::Backup, SyncState::Joining));
        p.run_for(ms(20));
        assert_eq!(p.node(1).status().sync, SyncState::Joining);
        assert_eq!(p.node(0).role(), Role::Primary);
        assert_eq!(submit(&mut p, 0, write(3, 5)), Err(HmiRefusal::NoPrimary));
        assert!(log_of(&p, 0).is_empty());
    }

    #[test]
    fn backup_primary_dies_after_commit_retry_on_new_primary_not_applied_twice() {
        let mut p = running_pair();
        let w = write(6, 99);
        submit(&mut p, 0, w).unwrap();
        // The primary dies once the backup ran the write's frame, before anyone answered.
        let until = p.now + ms(1000);
        assert!(p.run_until(until, |p| !p.node(1).app().log.is_empty()));
        p.crash(0);
        p.hmi_done.clear();
        assert!(await_state(&mut p, 1, Role::Primary, SyncState::Alone));
        let frame = log_of(&p, 1)[0].0;
        // The client retries on the new primary: applied already, answered once the
        // restarted node holds it (it joins with the state after the write).
        submit(&mut p, 1, w).unwrap();
        p.start(0);
        assert!(await_state(&mut p, 0, Role::Backup, SyncState::InSync));
        assert_eq!(await_answer(&mut p, 1, w), Some(HmiOutcome::Applied { frame }));
        p.run_for(ms(50));
        assert_eq!(log_of(&p, 1), [(frame, 1, 99)]);
        assert_eq!(
            log_of(&p, 0),
            [(frame, 1, 99)],
            "the transfer carried it, not a second write"
        );
    }

    #[test]
    fn backup_primary_dies_with_write_forwarded_new_primary_applies_it_once() {
        let mut p = running_pair();
        // The primary takes nothing from the backup: the forward is lost with it.
        p.drop_if = Some(|from, envelope| from == 1 && matches!(envelope.body, Body::HmiWrite(_)));
        let w = write(8, 3);
        submit(&mut p, 1, w).unwrap();
        p.run_for(ms(10));
        p.crash(0);
        p.drop_if = None;
        assert!(await_state(&mut p, 1, Role::Primary, SyncState::Alone));
        p.start(0);
        assert!(await_state(&mut p, 0, Role::Backup, SyncState::InSync));
        let Some(HmiOutcome::Applied { frame }) = await_answer(&mut p, 1, w) else {
            panic!("not applied by the new primary: {:?}", p.hmi_done);
        };
        p.run_for(ms(50));
        assert_eq!(log_of(&p, 1), [(frame, 1, 3)]);
    }

    /// A backup that resyncs (a divergence; the same after a fence) remembers writes of
    /// the history it gives up: a client's retry of one is refused (`NoPrimary`: asked
    /// again elsewhere), not answered applied from that memory, until the node follows in
    /// sync again. (Mutant `hmi.rs:212:43` `&&` → `||` in `hmi_accept`: every backup's
    /// memory counted, so a resyncing or fenced node answered "applied" for a write its
    /// primary's history may never have run. Schemata run of 64df4f8, 2026-11-27.)
    #[test]
    fn backup_resyncing_write_retried_refused_not_answered_from_its_memory() {
        let mut p = running_pair();
        let w = write(12, 21);
        submit(&mut p, 0, w).unwrap();
        assert!(await_answer(&mut p, 0, w).is_some());
        p.run_for(ms(20));
        assert_eq!(log_of(&p, 1).len(), 1, "the backup applied it");
        p.hmi_done.clear();
        let node = p.nodes[1].as_mut().unwrap();
        node.start_join(Some(crate::node::ResyncCause::Divergence));
        assert!(node.hmi.applied_at(&w).is_some(), "remembered");
        p.drain(1);
        assert_eq!(p.node(1).status().sync, SyncState::Joining);
        assert_eq!(submit(&mut p, 1, w), Err(HmiRefusal::NoPrimary));
        p.run_for(ms(20));
        assert!(!p.hmi_done.iter().any(|&(n, _, _)| n == 1), "{:?}", p.hmi_done);
    }

    /// The DST (seeds 35, 86, 95 of 0..99 at the first run) found the memory of applied
    /// writes lost by a state transfer: a backup that joined after a write, then took
    /// over, applied the client's retry again.
    #[test]
    fn backup_joined_after_write_takes_over_retry_not_applied_again() {
        let mut p = running_pair();
        let w = write(9, 11);
        submit(&mut p, 0, w).unwrap();
        let Some(HmiOutcome::Applied { frame }) = await_answer(&mut p, 0, w) else {
            panic!("no acknowledgement: {:?}", p.hmi_done);
        };
        // The backup restarts and joins with a snapshot taken after the write.
        p.crash(1);
        p.start(1);
        assert!(await_state(&mut p, 1, Role::Backup, SyncState::InSync));
        // Then it takes over, and the old primary joins it.
        p.crash(0);
        assert!(await_state(&mut p, 1, Role::Primary, SyncState::Alone));
        p.start(0);
        assert!(await_state(&mut p, 0, Role::Backup, SyncState::InSync));
        p.hmi_done.clear();
        submit(&mut p, 1, w).unwrap();
        assert_eq!(await_answer(&mut p, 1, w), Some(HmiOutcome::Applied { frame }));
        p.run_for(ms(50));
        assert_eq!(
            log_of(&p, 1),
            [(frame, 1, 11)],
            "applied once, carried by the transfers"
        );
        assert_eq!(log_of(&p, 0), [(frame, 1, 11)]);
    }

    /// The primary's last message to the backup, its body replaced by `body`: what the
    /// backup hears on that link with that header.
    fn from_primary(p: &Pair<SetpointApp>, body: Body) -> (u8, crate::wire::WireBuf) {
        let (link, bytes) = p
            .captured
            .iter()
            .rev()
            .find(|(from, _, _)| *from == 0)
            .map(|(_, link, bytes)| (*link, bytes))
            .expect("the primary sent something");
        let mut envelope = crate::wire::decode(bytes, None).unwrap();
        envelope.body = body;
        (link, crate::wire::encode(&envelope, None).unwrap())
    }

    /// A backup takes no forwarded write into a queue of its own, whoever sent it (in a
    /// group every backup hears the others' forwards, at its own epoch): such a write
    /// is not its to apply, and once it leads it applies only writes it holds itself
    /// or is forwarded then. (Mutant `hmi.rs:257:39` `||` → `&&` in `on_hmi_write`: a
    /// non-primary queued every forward of its epoch, here a write nobody waits for,
    /// applied once it took over. In a group a write a backup queued so stays behind,
    /// once applied out of the queue's order, and is applied again when it leads after
    /// the memory forgot it: an old setpoint long after. Schemata run of 64df4f8,
    /// 2026-11-27.)
    #[test]
    fn backup_forward_heard_not_queued_not_applied_when_it_leads() {
        let mut p = running_pair();
        p.capture = true;
        p.run_for(ms(5));
        let w = write(30, 66);
        let (link, bytes) = from_primary(&p, Body::HmiWrite(w));
        p.inject(1, link, &bytes);
        assert!(p.node(1).hmi.queued.is_empty(), "queued by the backup");
        p.crash(0);
        assert!(await_state(&mut p, 1, Role::Primary, SyncState::Alone));
        p.run_for(ms(50));
        assert!(log_of(&p, 1).is_empty(), "applied: {:?}", log_of(&p, 1));
    }

    /// A backup in sync queues nothing of what it is asked: a new write is forwarded, a
    /// client's retry of one applied already is answered from its memory. (Mutant
    /// `hmi.rs:230:35` `&&` → `||` in `hmi_accept`: every write not yet queued was
    /// pushed onto this node's queue whatever its stage. A retry answered from memory
    /// stayed in the backup's queue for good, nothing applying it again to pop it;
    /// once the node led after its memory had forgotten the write (256 newer ones), it
    /// applied it again: an old setpoint long after. Schemata run of 64df4f8,
    /// 2026-11-27.)
    #[test]
    fn backup_write_forwarded_or_retry_answered_from_memory_nothing_queued() {
        let mut p = running_pair();
        let (old, new) = (write(90, 12), write(91, 13));
        submit(&mut p, 0, old).unwrap();
        assert!(matches!(await_answer(&mut p, 0, old), Some(HmiOutcome::Applied { .. })));
        p.run_for(ms(20));
        submit(&mut p, 1, old).unwrap();
        submit(&mut p, 1, new).unwrap();
        assert!(p.node(1).hmi.queued.is_empty(), "{:?}", p.node(1).hmi.queued);
        assert!(matches!(await_answer(&mut p, 1, old), Some(HmiOutcome::Applied { .. })));
        assert!(matches!(await_answer(&mut p, 1, new), Some(HmiOutcome::Applied { .. })));
        assert!(p.node(1).hmi.queued.is_empty(), "{:?}", p.node(1).hmi.queued);
    }

    /// The backup's forward of a write (captured), and the primary's link it came on;
    /// the primary never got it.
    fn forward_held_back(p: &mut Pair<SetpointApp>, w: HmiWrite) -> (u8, crate::wire::WireBuf) {
        p.capture = true;
        p.drop_if = Some(|from, envelope| from == 1 && matches!(envelope.body, Body::HmiWrite(_)));
        submit(p, 1, w).unwrap();
        p.run_for(ms(1));
        p.drop_if = None;
        p.captured
            .iter()
            .find(|(from, _, bytes)| {
                *from == 1
                    && matches!(crate::wire::decode(bytes, None).map(|e| e.body), Ok(Body::HmiWrite(f)) if f == w)
            })
            .map(|(_, link, bytes)| (*link, bytes.clone()))
            .expect("forwarded")
    }

    /// A forward heard twice before the primary's next frame (the backup's copies on
    /// two links, or its re-send) is queued once: with three writes of the primary's
    /// own, all four are applied in the next frame. (Mutants `hmi.rs:265:63` `||` →
    /// `&&` and `265:100` `==` → `!=` in `on_hmi_write`: a write queued but not yet
    /// applied was queued again, and the copy took a frame's place, so the last write
    /// waited a frame; `!=` also dropped a forward whenever another write was queued,
    /// until the backup's re-send. Schemata run of 64df4f8, 2026-11-27.)
    #[test]
    fn primary_forward_heard_twice_queued_once_applied_with_its_own_writes() {
        let mut p = running_pair();
        let w = write(40, 1);
        let (link, bytes) = forward_held_back(&mut p, w);
        p.source_on = false;
        p.run_for(ms(5));
        p.inject(0, link, &bytes);
        p.inject(0, link, &bytes);
        for t in 41..44 {
            submit(&mut p, 0, write(t, i64::from(t) - 40)).unwrap();
        }
        assert_eq!(p.node(0).hmi.queued.len(), 4);
        p.source_on = true;
        p.run_for(ms(50));
        let frames: std::collections::BTreeSet<u64> = log_of(&p, 0).iter().map(|&(f, _, _)| f).collect();
        assert_eq!((log_of(&p, 0).len(), frames.len()), (4, 1), "{:?}", log_of(&p, 0));
    }

    /// A forward of a value the program does not accept (out of the tag's limits; a
    /// backup checks before it forwards, so only a damaged or forged one) is dropped,
    /// never applied. (Mutant `hmi.rs:265:22` `||` → `&&` in `on_hmi_write`: queued and
    /// handed to the program, the plant's setpoint out of its limits. Schemata run of
    /// 64df4f8, 2026-11-27.)
    #[test]
    fn primary_forward_out_of_limits_not_applied() {
        let mut p = running_pair();
        let (link, bytes) = forward_held_back(&mut p, write(50, 9));
        let mut envelope = crate::wire::decode(&bytes, None).unwrap();
        envelope.body = Body::HmiWrite(write(51, 101));
        let bytes = crate::wire::encode(&envelope, None).unwrap();
        p.inject(0, link, &bytes);
        p.run_for(ms(50));
        assert!(log_of(&p, 0).iter().all(|&(_, _, v)| v != 101), "{:?}", log_of(&p, 0));
        assert!(p.node(0).app().setpoint <= 100);
    }

    /// A commit this primary runs (an inherited one, after a takeover) applies writes
    /// that are not at the front of its queue — one this history applied already, one
    /// new — and the writes queued here stay queued. (Mutants `hmi.rs:292:44` and
    /// `300:40`, `==` → `!=` in `hmi_apply`: the front of the queue was popped for each,
    /// a write accepted here lost, its client answered `TimedOut` only; `300:40` also
    /// left each write the primary applied in its queue for a frame, taking a place of
    /// the next. Schemata run of 64df4f8, 2026-11-27.)
    #[test]
    fn primary_commit_applies_writes_not_queued_here_its_queue_kept() {
        let mut p = running_pair();
        p.source_on = false;
        p.run_for(ms(5));
        let (queued, applied, new) = (write(60, 1), write(61, 2), write(62, 3));
        submit(&mut p, 0, queued).unwrap();
        let node = p.nodes[0].as_mut().unwrap();
        let frame = node.frame_last_run + 1;
        node.hmi.remember(applied, frame - 1);
        let mut writes = HmiWrites::EMPTY;
        writes.push(applied);
        writes.push(new);
        node.hmi_apply(frame, &mut writes);
        assert_eq!(writes.as_slice(), [new], "what the commit applied");
        assert_eq!(node.hmi.queued.iter().copied().collect::<std::vec::Vec<_>>(), [queued]);
    }

    /// Writes queued at once, eight of them, are applied four a frame: in two frames.
    /// (Mutant `hmi.rs:300:40` `==` → `!=` in `hmi_apply`: each frame's last write stayed
    /// queued and took a place in the next frame, three frames. Schemata run of 64df4f8,
    /// 2026-11-27.)
    #[test]
    fn primary_eight_writes_queued_at_once_applied_in_two_frames() {
        let mut p = running_pair();
        p.source_on = false;
        p.run_for(ms(5));
        for t in 0..8u16 {
            submit(&mut p, 0, write(70 + t, i64::from(t))).unwrap();
        }
        p.source_on = true;
        p.run_for(ms(50));
        let log = log_of(&p, 0);
        let frames: std::collections::BTreeSet<u64> = log.iter().map(|&(f, _, _)| f).collect();
        assert_eq!((log.len(), frames.len()), (8, 2), "{log:?}");
    }

    /// A primary that hands over (a switchover) with a write still queued, its frame not
    /// run, answers it `TimedOut` at once and drops it from its queue: leading again
    /// later, long after, it does not apply it. (Mutant `hmi.rs:314:9`,
    /// `hmi_forget_queue` → `()`: the write stayed queued and waiting; answered
    /// `TimedOut` only at its deadline, it was applied when the node led again — an
    /// old setpoint reaching the plant after its client was told it timed out.
    /// Schemata run of 64df4f8, 2026-11-27.)
    #[test]
    fn primary_hands_over_with_a_write_queued_times_it_out_never_applies_it() {
        let mut p = running_pair();
        p.source_on = false;
        p.run_for(ms(5));
        let w = write(80, 44);
        submit(&mut p, 0, w).unwrap();
        assert_eq!(
            p.command(0, crate::node::Command::Switchover),
            crate::node::CommandReply::Started
        );
        assert!(await_state(&mut p, 1, Role::Primary, SyncState::Paired));
        assert!(await_state(&mut p, 0, Role::Backup, SyncState::InSync));
        assert_eq!(
            p.hmi_done
                .iter()
                .find(|&&(n, d, _)| n == 0 && d == w)
                .map(|&(_, _, o)| o),
            Some(HmiOutcome::TimedOut)
        );
        let window = p.configs[0].detection_window();
        p.run_for(window * (TIMEOUT_WINDOWS + 1));
        assert_eq!(
            p.command(1, crate::node::Command::Switchover),
            crate::node::CommandReply::Started
        );
        assert!(await_state(&mut p, 0, Role::Primary, SyncState::Paired));
        p.source_on = true;
        p.run_for(ms(50));
        assert!(log_of(&p, 0).iter().all(|&(_, _, v)| v != 44), "{:?}", log_of(&p, 0));
    }

    proptest::proptest! {
        #[test]
        fn memory_split_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            if let Some((state_len, memory)) = split_memory(&bytes) {
                proptest::prop_assert_eq!(state_len + memory.len() + 4, bytes.len());
                proptest::prop_assert_eq!(memory.len() % MEMORY_ENTRY_BYTES, 0);
            }
        }
    }

    #[test]
    fn memory_round_trip() {
        let mut state = HmiState::default();
        state.remember(write(1, -3), 17);
        state.remember(write(2, 4), 18);
        let mut buf = [0u8; 10 + MEMORY_BYTES_MAX];
        let n = encode_memory(&state, &mut buf[10..]);
        let (state_len, memory) = split_memory(&buf[..10 + n]).unwrap();
        assert_eq!(state_len, 10);
        assert_eq!(memory_entry(&memory[..24]), (write(1, -3), 17));
        assert_eq!(memory_entry(&memory[24..]), (write(2, 4), 18));
    }

    /// A transfer carries the whole memory of applied writes: a full one (`APPLIED_MAX`
    /// writes, after as many HMI writes) is taken whole, a count above it refused.
    /// (Mutants `hmi.rs:148:14` `>` → `==` and `>` → `>=`: a full memory was refused,
    /// `TransferRejected`, so every transfer of a primary that had applied that many
    /// writes failed and a backup never joined; `==` took a count above the bound.
    /// Schemata run of 64df4f8, 2026-11-27.)
    #[test]
    fn memory_full_taken_one_more_refused() {
        let mut state = HmiState::default();
        for transaction in 0..=APPLIED_MAX as u16 {
            state.remember(write(transaction, 1), u64::from(transaction));
        }
        let mut buf = std::vec![0u8; 10 + MEMORY_BYTES_MAX];
        let n = encode_memory(&state, &mut buf[10..]);
        assert_eq!(n, MEMORY_BYTES_MAX);
        let (state_len, memory) = split_memory(&buf[..10 + n]).expect("a full memory taken");
        assert_eq!((state_len, memory.len()), (10, APPLIED_MAX * MEMORY_ENTRY_BYTES));
        // One more entry than the bound, every byte of it there.
        let mut over = std::vec![0u8; 10 + MEMORY_ENTRY_BYTES];
        over.extend_from_slice(&buf[10..10 + n]);
        let count_at = over.len() - 4;
        over[count_at..].copy_from_slice(&(APPLIED_MAX as u32 + 1).to_le_bytes());
        assert_eq!(split_memory(&over), None);
    }

    #[test]
    fn writes_fill_frames_at_most_four_each() {
        let mut p = running_pair();
        for t in 0..10u16 {
            submit(&mut p, 0, write(100 + t, i64::from(t))).unwrap();
        }
        p.run_for(ms(200));
        let log = log_of(&p, 1);
        assert_eq!(log.len(), 10);
        assert_eq!(log_of(&p, 0), log);
        let mut per_frame = std::collections::BTreeMap::new();
        for (frame, _, _) in &log {
            *per_frame.entry(*frame).or_insert(0) += 1;
        }
        assert!(per_frame.values().all(|&n| n <= WRITES_PER_FRAME_MAX));
        assert_eq!(p.hmi_done.len(), 10);
    }

    /// A backup kept busy forwarding writes to a primary whose input died still reports
    /// its own input, and the primary hands over within `input_handover_ms` and a quarter
    /// (found by the DST's quiet tail, seed 783, 2026-11-27: the forwarded writes kept the
    /// backup's link from ever being idle long enough for a heartbeat, the only message
    /// that carries its input, and the handover waited for the heartbeat refresh, 16
    /// intervals).
    #[test]
    fn backup_busy_forwarding_writes_still_reports_its_input_primary_hands_over() {
        let config = Config {
            heartbeat_interval_ms: 200,
            detection_window_ms: 1_000,
            input_handover_hold_ms: 100,
            ..Config::default()
        };
        let mut p = Pair::of(31, config, |_| SetpointApp::default(), |n| n.to_le_bytes().to_vec());
        p.start(0);
        assert!(await_state(&mut p, 0, Role::Primary, SyncState::Alone));
        p.start(1);
        assert!(await_state(&mut p, 1, Role::Backup, SyncState::InSync));
        assert!(await_state(&mut p, 0, Role::Primary, SyncState::Paired));
        let c = p.configs[0].clone();
        p.run_for(ms(c.input_handover_hold_ms));
        // Node 0's input dies; an operator writes to the backup every 20 ms.
        let from = p.frame_next;
        for f in from..from + 10_000 {
            p.frame_loss[0].insert(f, ());
        }
        let died = p.now;
        let bound = died
            + ms(c.input_handover_ms + c.input_handover_ms / 4 + 2 * c.heartbeat_gap_max().as_millis() as u64 + 100);
        let mut transaction = 0u16;
        while p.now < bound && p.node(1).role() != Role::Primary {
            transaction += 1;
            let _ = submit(&mut p, 1, write(transaction, i64::from(transaction)));
            p.run_for(ms(20));
        }
        assert_eq!(
            p.node(1).role(),
            Role::Primary,
            "no handover {} ms after the input died",
            (p.now - died).as_millis()
        );
        assert!(transaction > 50, "the backup was kept busy: {transaction} writes");
    }

    /// The primary dies with two writes forwarded by its backup and lost on the way: the
    /// new primary queues both and applies each once. (Mutant `hmi.rs:375:65`, `==` →
    /// `!=` in `hmi_progress`: a forwarded write was taken as queued whenever the queue
    /// held another one, and never queued: the second write was lost, answered
    /// `TimedOut`. Schemata run of 64df4f8, 2026-11-27.)
    #[test]
    fn backup_primary_dies_with_two_writes_forwarded_new_primary_applies_both_once() {
        let mut p = running_pair();
        p.drop_if = Some(|from, envelope| from == 1 && matches!(envelope.body, Body::HmiWrite(_)));
        let (first, second) = (write(81, 3), write(82, 4));
        submit(&mut p, 1, first).unwrap();
        submit(&mut p, 1, second).unwrap();
        p.run_for(ms(10));
        p.crash(0);
        p.drop_if = None;
        assert!(await_state(&mut p, 1, Role::Primary, SyncState::Alone));
        p.start(0);
        assert!(await_state(&mut p, 0, Role::Backup, SyncState::InSync));
        let mut applied = std::vec::Vec::new();
        for w in [first, second] {
            let Some(HmiOutcome::Applied { frame }) = await_answer(&mut p, 1, w) else {
                panic!("{w:?} not applied by the new primary: {:?}", p.hmi_done);
            };
            applied.push((frame, 1, w.value));
        }
        p.run_for(ms(50));
        assert_eq!(log_of(&p, 1), applied);
    }

    /// A backup's forward is lost while the source pauses, so no frame wakes the backup:
    /// it forwards the write again `retry_ms` after, on its own timer, and the primary
    /// applies it at its next frame. (Mutant `hmi.rs:405:51`, the guard `self.role ==
    /// Role::Backup` → `false` in `hmi_deadline`: the backup asked to be woken only at
    /// the write's deadline, and forwarded it again at whatever woke it first — here the
    /// peer's next heartbeat, later. Schemata run of 64df4f8, 2026-11-27.)
    #[test]
    fn backup_forward_lost_source_paused_forwarded_again_after_retry_ms() {
        let mut p = running_pair();
        p.source_on = false;
        p.run_for(ms(10));
        let forwards = |p: &Pair<SetpointApp>| {
            p.captured
                .iter()
                .filter(|(from, link, bytes)| {
                    *from == 1
                        && *link == 0
                        && matches!(crate::wire::decode(bytes, None).map(|e| e.body), Ok(Body::HmiWrite(_)))
                })
                .count()
        };
        p.capture = true;
        p.drop_if = Some(|from, envelope| from == 1 && matches!(envelope.body, Body::HmiWrite(_)));
        let w = write(90, 5);
        let sent_at = p.now;
        submit(&mut p, 1, w).unwrap();
        assert_eq!(forwards(&p), 1, "forwarded at once");
        p.drop_if = None;
        let until = sent_at + ms(1000);
        assert!(p.run_until(until, |p| forwards(p) == 2));
        assert_eq!(p.now - sent_at, p.configs[1].retry(), "forwarded again after retry_ms");
        p.source_on = true;
        assert!(matches!(await_answer(&mut p, 1, w), Some(HmiOutcome::Applied { .. })));
    }
}
