//! Acked outputs (`[outputs] release = "acked"`, issue 16): VMware FT's output rule. The
//! primary holds each frame's outputs until every in-sync backup has acknowledged the
//! commit of that frame, so that a sink that cannot deduplicate never gets an output
//! twice across a takeover by an in-sync backup.
//!
//! The flow, in a pair or a group (docs/SYNC-PROTOCOL.md, "Acked outputs"):
//! - The primary runs frame N and queues its outputs in `held` instead of emitting them;
//!   the commit of N goes out with their bits clear in `sent_mask` ("not sent yet"), so
//!   every backup keeps them in its unsent set: the commit carries what is to be sent.
//! - A backup in sync that ran frames sends `CommitAck { frame }` (its last run frame,
//!   also in every header it sends). The primary keeps, per peer, the highest such frame
//!   heard in its own epoch from a backup that says it is in sync.
//! - The primary emits, oldest first, the held outputs of frames at or below the lowest
//!   ack of its in-sync backups, then tells them with `Released { frame }`: each backup
//!   drops the outputs of frames up to it from its unsent set.
//! - A backup that takes over sends its unsent set: the outputs of the frames no
//!   `Released` covered. The old primary released none of them unless it read this
//!   backup's ack of their frame and its `Released` then never arrived (it answers every
//!   `CommitAck` with one, so a loss is repaired a cycle later, unless it crashed in that
//!   cycle). Those it may have released — frames acknowledged above the last `Released`
//!   heard — are reported (`Notice::OutputsUncertain`): sent again rather than lost (see
//!   docs/DECISIONS.md, 2026-11-26 — acked outputs).
//!
//! Who holds outputs back: backups the primary hears in sync (`slot_in_sync`). A lagging
//! or joining backup does not (it would hold the plant's outputs back by its lag); with no
//! backup in sync, outputs leave at once, reported sent in the commit as in immediate
//! mode, and counted (`unguarded`): a takeover then may repeat one, as in immediate mode.
//! So does an output a group's primary releases on its in-sync backups' acks while another
//! backup it does not wait for (lagging, joining, or silent past its window) was heard:
//! that one may still be chosen to take over with the commits it holds.
//!
//! Bounds: `held` holds [`HELD_OUTPUTS_MAX`] outputs, allocated at start. A primary whose
//! queue lacks room for one more frame's outputs runs no frame (its outputs go late, none
//! is dropped; frames wait in the ring) and raises `Alarm::OutputsHeldFull` once until the
//! queue drains. An output held for the primary's backup window (`peer_window`, the time
//! after which a silent backup counts as lost) leaves without the ack, counted unguarded:
//! no backup that acknowledges nothing holds the plant's outputs back longer than a
//! silent one would. Each wake-up emits at most what the action queue has room for (the
//! rest at the next); one `CommitAck` and one `Released` per wake-up at most. Frames a
//! peer names are at most `FRAME_MAX` (`peer_frames_in_range`) and clamped to this node's
//! own before use.

use super::{Action, Alarm, Node, Notice, Output, Role, SyncState, UNSENT_MAX};
use crate::app::App;
use crate::config::{OutputsRelease, GROUP_PEERS_MAX};
use crate::digest::fnv64;
use crate::time::Instant;
use crate::wire::{Body, Fingerprint, Header, WireRole, WireSync};
use std::collections::VecDeque;

/// Outputs a primary holds for acks at most: 64 frames of a full outbox
/// (`OUTPUTS_PER_FRAME_MAX`, 16), about 80 KiB.
pub const HELD_OUTPUTS_MAX: usize = 64 * crate::app::OUTPUTS_PER_FRAME_MAX;

/// The acked-release state of a node (empty and unused in immediate mode).
#[derive(Debug, Default)]
pub(super) struct ReleaseState {
    /// Primary: outputs waiting for their frame's acks, oldest first, with when they were
    /// held.
    held: VecDeque<(Output, Instant)>,
    /// Primary: per peer slot, the highest frame it said it ran as an in-sync backup in
    /// this node's epoch.
    acked: [u64; GROUP_PEERS_MAX],
    /// Primary: the frame of the last `Released` sent.
    told: u64,
    /// Primary: a `CommitAck` arrived since the last `Released`: answer it (a lost
    /// `Released` is so repeated by the backup's next ack).
    reply_due: bool,
    /// Primary: bits of the outputs of the frame being run that were held (cleared bits
    /// of its commit's `sent_mask`).
    held_mask: u32,
    /// Primary: `Alarm::OutputsHeldFull` raised and the queue not drained since.
    full_raised: bool,
    /// Outputs released without every in-sync backup's ack: none in sync, or held for a
    /// backup window.
    unguarded: u64,
    /// Backup: the highest frame the primary said released.
    released_known: u64,
    /// Backup: the highest frame this node said it ran while in sync (in any header).
    acked_sent: u64,
    /// Backup: the frame of the last `CommitAck` sent, and when another may repeat it.
    ack_frame: u64,
    ack_again_at: Instant,
    /// New primary: outputs it sent at its takeover that the old primary may have
    /// released (`Notice::OutputsUncertain`).
    uncertain: u64,
    /// The time of the last timeout: what time alone releases (a backup's silence, an
    /// output's backup window) is judged against it, so only a timer releases on time,
    /// never a datagram that merely wakes the node (an attacker's, after a freeze).
    clock: Instant,
}

impl ReleaseState {
    /// The state for `release`: the queue is allocated at start in acked mode only.
    pub(super) fn new(release: OutputsRelease) -> Self {
        let held = match release {
            OutputsRelease::Immediate => VecDeque::new(),
            OutputsRelease::Acked => VecDeque::with_capacity(HELD_OUTPUTS_MAX),
        };
        ReleaseState {
            held,
            ..ReleaseState::default()
        }
    }
}

/// `fingerprint` with the release mode folded into its settings digest in acked mode: a
/// backup that takes over in another mode than its primary's would send again what the
/// primary held, or withhold what it never released. Immediate mode leaves it unchanged,
/// so a pair in the default mode announces every byte as before.
pub(super) fn with_release(mut fingerprint: Fingerprint, release: OutputsRelease) -> Fingerprint {
    if release == OutputsRelease::Acked {
        let mut bytes = [0u8; 13];
        bytes[..8].copy_from_slice(&fingerprint.settings.to_le_bytes());
        bytes[8..].copy_from_slice(b"acked");
        fingerprint.settings = fnv64(&bytes);
    }
    fingerprint
}

/// What `twinctl status` shows of the release (docs/CONSOLE.md, `outputs_release`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReleaseStatus {
    /// The mode.
    pub mode: OutputsRelease,
    /// Primary: outputs held for acks now.
    pub held: u64,
    /// Primary: the frame of the oldest held output (0: none).
    pub held_oldest_frame: u64,
    /// Outputs released without every in-sync backup's ack (none in sync, or held for a
    /// backup window).
    pub unguarded: u64,
    /// Outputs sent at a takeover that the old primary may have released
    /// (`Notice::OutputsUncertain`).
    pub uncertain: u64,
    /// Backup: the highest frame the primary said released.
    pub released_known: u64,
}

impl<A: App> Node<A> {
    fn release_acked_mode(&self) -> bool {
        self.config.outputs_release == OutputsRelease::Acked
    }

    /// Primary: the highest frame every in-sync backup acknowledged; `None` when no
    /// backup is in sync (nothing holds outputs back). A backup's silence counts from the
    /// last timeout (`ReleaseState::clock`).
    fn release_watermark(&self) -> Option<u64> {
        (0..usize::from(self.peer_count))
            .filter(|&slot| self.release_holds_for(slot))
            .map(|slot| self.release.acked[slot])
            .min()
    }

    /// The peer of `slot` holds outputs back: it last said it is an in-sync backup, and
    /// was heard within its window as of the last timeout.
    fn release_holds_for(&self, slot: usize) -> bool {
        let clock = self.release.clock;
        self.slot_expiry(slot).is_some_and(|t| clock < t)
            && self.peers[slot]
                .status
                .is_some_and(|p| p.role == WireRole::Backup && p.sync == WireSync::InSync)
    }

    /// Some backup that could take over does not hold outputs back: what is released now
    /// is not guarded against its takeover. Any backup it last heard, in sync, lagging or
    /// joining, heard or silent: a backup silent past its window (frozen, cut off) keeps
    /// its state and commits, reads its socket's backlog when it runs again and may be
    /// elected with them (DST `--nodes 3 --acked --seed 816`: a backup frozen while its
    /// primary released frames 332 and 333 on the other backup's ack took over and sent
    /// them again); a joining one takes the commits that follow its transfer's frame and
    /// may lead with them once installed (`--seed 1971`: frames 395..399 released on the
    /// other backup's ack while it was installing). Both were counted guarded. A witness
    /// holds no state; a member heard starting (restarted) counts no more.
    fn release_partial(&self) -> bool {
        (0..usize::from(self.peer_count)).any(|slot| {
            !self.release_holds_for(slot)
                && !self.slot_is_witness(slot)
                && self.peers[slot].status.is_some_and(|p| p.role == WireRole::Backup)
        })
    }

    /// A timeout: time may release what it holds (see `ReleaseState::clock`).
    pub(super) fn release_clock(&mut self) {
        self.release.clock = self.now;
    }

    /// Primary: emits `output` now, or holds it for acks in acked mode while a backup is
    /// in sync (or older outputs are held: the order stays).
    pub(super) fn release_or_hold(&mut self, output: Output) {
        if !self.release_acked_mode() {
            self.push(Action::Emit(output));
            return;
        }
        if self.release.held.is_empty() && self.release_watermark().is_none() {
            // No backup in sync: unguarded (a lagging one may take over and repeat it).
            self.release.unguarded = self.release.unguarded.saturating_add(1);
            self.push(Action::Emit(output));
            return;
        }
        if output.index < 32 {
            self.release.held_mask |= 1 << output.index;
        }
        // Room is checked before each frame (`release_room_for_frame`); a takeover's
        // unsent set is at most `UNSENT_MAX`, below the bound.
        if self.release.held.len() >= HELD_OUTPUTS_MAX {
            if let Some((oldest, _)) = self.release.held.pop_front() {
                self.release.unguarded = self.release.unguarded.saturating_add(1);
                self.push(Action::Emit(oldest));
            }
        }
        self.release.held.push_back((output, self.now));
    }

    /// Primary: the bits of the frame just run whose outputs were held (clear in its
    /// commit's `sent_mask`). 0 in immediate mode.
    pub(super) fn release_held_mask_take(&mut self) -> u32 {
        core::mem::take(&mut self.release.held_mask)
    }

    /// Primary, before running a frame: whether the queue has room for its outputs.
    /// When not, raises `OutputsHeldFull` once: the frame waits, its outputs go late.
    pub(super) fn release_room_for_frame(&mut self) -> bool {
        if !self.release_acked_mode() {
            return true;
        }
        if self.release.held.len() + crate::app::OUTPUTS_PER_FRAME_MAX <= HELD_OUTPUTS_MAX {
            return true;
        }
        if !self.release.full_raised {
            self.release.full_raised = true;
            let frame = self.release.held.front().map_or(0, |(o, _)| o.frame);
            self.alarm(Alarm::OutputsHeldFull { frame });
        }
        false
    }

    /// Primary: a message from a peer; a backup's header says, in sync and in this node's
    /// epoch, the last frame it ran: its ack.
    pub(super) fn release_note_ack(&mut self, link: u8, header: &Header, body: &Body) {
        if !self.release_acked_mode() || self.role != Role::Primary {
            return;
        }
        if header.role != WireRole::Backup || header.sync != WireSync::InSync || header.epoch != self.epochs.current().0
        {
            return;
        }
        let slot = self.link_peer(link);
        // The peer's number: never above what this node ran.
        let frame = header.frame.min(self.frame_last_run);
        self.release.acked[slot] = self.release.acked[slot].max(frame);
        if matches!(body, Body::CommitAck { .. }) {
            self.release.reply_due = true;
        }
    }

    /// Primary, at every wake-up: emits the held outputs their acks (or a backup window)
    /// release, oldest first, as far as the action queue has room; then tells the peers
    /// how far every output went.
    pub(super) fn release_progress(&mut self) {
        if !self.release_acked_mode() || self.role != Role::Primary {
            return;
        }
        let watermark = self.release_watermark();
        let partial = self.release_partial();
        let window = self.peer_window();
        while let Some((front, held_at)) = self.release.held.front() {
            let acked = watermark.is_none_or(|w| front.frame <= w);
            let overdue = self.release.clock.saturating_since(*held_at) >= window;
            if !(acked || overdue) || !self.room_for(1) {
                break;
            }
            // Released with no backup in sync, or for the backup window: a takeover may
            // repeat it (as in immediate mode).
            if watermark.is_none() || !acked || partial {
                self.release.unguarded = self.release.unguarded.saturating_add(1);
            }
            if let Some((mut output, _)) = self.release.held.pop_front() {
                // Held in an epoch this node may have led on above since (`EpochRaised`):
                // it leaves under the one it leads now, as the takeover's held levels do.
                output.epoch = self.epochs.current().0;
                self.push(Action::Emit(output));
            }
        }
        if self.release.held.is_empty() {
            self.release.full_raised = false;
        }
        let released_to = match self.release.held.front() {
            Some((oldest, _)) => oldest.frame.saturating_sub(1),
            None => self.frame_last_run,
        };
        let due = released_to > self.release.told || self.release.reply_due;
        if due && self.any_peer_alive() && self.room_for(usize::from(self.links_total())) {
            self.release.told = self.release.told.max(released_to);
            self.release.reply_due = false;
            self.send_all(Body::Released { frame: released_to });
        }
    }

    /// When the release must be looked at again without a message: a primary's oldest
    /// held output reaching its backup window, or an in-sync backup's silence ending
    /// (it then holds nothing back); a backup in sync repeating its ack.
    pub(super) fn release_deadline(&self) -> Option<Instant> {
        if !self.release_acked_mode() {
            return None;
        }
        match self.role {
            Role::Primary => {
                let (_, held_at) = self.release.held.front()?;
                let window = *held_at + self.peer_window();
                (0..usize::from(self.peer_count))
                    .filter(|&slot| self.release_holds_for(slot))
                    .filter_map(|slot| self.slot_expiry(slot))
                    .chain(core::iter::once(window))
                    .min()
            }
            Role::Backup if self.sync == SyncState::InSync && self.release.released_known < self.frame_last_run => {
                Some(self.release.ack_again_at)
            }
            _ => None,
        }
    }

    /// Leaving the primary role (fenced, handed over): what it held is its successor's
    /// to send (its unsent set has it); the acks were for this epoch.
    pub(super) fn release_forget(&mut self) {
        let r = &mut self.release;
        r.held.clear();
        r.acked = [0; GROUP_PEERS_MAX];
        r.told = 0;
        r.reply_due = false;
        r.held_mask = 0;
        r.full_raised = false;
    }

    /// Every message this node sends: a backup in sync says in its header the last frame
    /// it ran, which its primary takes as its ack.
    pub(super) fn release_note_sent(&mut self) {
        if self.role == Role::Backup && self.sync == SyncState::InSync {
            self.release.acked_sent = self.release.acked_sent.max(self.frame_last_run);
        }
    }

    /// Backup in sync, after running frames: acknowledges them (one `CommitAck` per
    /// wake-up), and repeats its last ack every `retry_ms` while the primary has not said
    /// them released (a lost ack or `Released`; a switchover waits for it).
    pub(super) fn release_ack(&mut self) {
        if !self.release_acked_mode() || self.role != Role::Backup || self.sync != SyncState::InSync {
            return;
        }
        let frame = self.frame_last_run;
        let again = self.release.released_known < frame && self.now >= self.release.ack_again_at;
        if frame > self.release.ack_frame || again {
            self.release.ack_frame = frame;
            self.release.ack_again_at = self.now + self.config.retry();
            self.send_all(Body::CommitAck { frame });
        }
    }

    /// Backup: the primary released every output up to `frame`: they leave the unsent
    /// set (one pass over at most `UNSENT_MAX` entries).
    pub(super) fn on_released(&mut self, header: &Header, frame: u64) {
        if self.role != Role::Backup || header.role != WireRole::Primary || header.epoch != self.epochs.current().0 {
            return;
        }
        // The peer's number: never above what this node holds a commit of.
        let frame = frame.min(self.commit_highest);
        self.release.released_known = self.release.released_known.max(frame);
        let known = self.release.released_known;
        for _ in 0..self.unsent.len().min(UNSENT_MAX) {
            if let Some(output) = self.unsent.pop_front() {
                if output.frame > known {
                    // Cannot fail: one was taken out just before.
                    let _ = self.unsent.push_back(output);
                }
            }
        }
    }

    /// Backup: the frame up to which its primary said every output released (0 until a
    /// `Released` came, and outside acked release).
    pub(super) fn release_known(&self) -> u64 {
        self.release.released_known
    }

    /// A state transfer begins: another history, whose frame numbers may be lower (a
    /// cold start's); what this node knew of the old one's releases and acks is void.
    pub(super) fn release_history_reset(&mut self) {
        let r = &mut self.release;
        r.released_known = 0;
        r.acked_sent = 0;
        r.ack_frame = 0;
    }

    /// Backup in a switchover's `Taking`, at the released `frame`: in acked mode it leads
    /// only once the old primary said every output up to `frame` released, so that
    /// neither sends one the other sends (the old primary keeps releasing as acks come
    /// until then; the switchover's deadline bounds the wait).
    pub(super) fn release_handover_ready(&self, frame: u64) -> bool {
        !self.release_acked_mode() || self.release.released_known >= frame
    }

    /// New primary, before sending its unsent set (all of it: nothing the old primary
    /// said released is left in it): in acked mode, says which of its outputs the old
    /// primary may have released without this node hearing so, those of frames it
    /// acknowledged above the last `Released` heard. Almost always their ack reached a
    /// primary that was dying, or none; a copy at the sink means the old primary's
    /// `Released` was lost in its last cycle. One pass over at most `UNSENT_MAX` entries.
    pub(super) fn release_note_uncertain(&mut self) {
        if !self.release_acked_mode() {
            return;
        }
        let (known, acked) = (self.release.released_known, self.release.acked_sent);
        let mut range: Option<(u64, u64)> = None;
        let mut count = 0u64;
        for output in self.unsent.iter().filter(|o| o.frame > known && o.frame <= acked) {
            count += 1;
            range = Some(match range {
                Some((first, last)) => (first.min(output.frame), last.max(output.frame)),
                None => (output.frame, output.frame),
            });
        }
        if let Some((first, last)) = range {
            self.release.uncertain = self.release.uncertain.saturating_add(count);
            self.notice(Notice::OutputsUncertain { first, last, count });
        }
    }

    /// The release's part of the status, without the rest of it (cheap: for a harness
    /// that reads it after every event).
    pub fn outputs_release_status(&self) -> ReleaseStatus {
        self.release_status()
    }

    /// The release's part of the status.
    pub(super) fn release_status(&self) -> ReleaseStatus {
        ReleaseStatus {
            mode: self.config.outputs_release,
            held: self.release.held.len() as u64,
            held_oldest_frame: self.release.held.front().map_or(0, |(o, _)| o.frame),
            unguarded: self.release.unguarded,
            uncertain: self.release.uncertain,
            released_known: self.release.released_known,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::node::{Command, CommandReply, Mismatch};
    use crate::testing::Pair;
    use crate::wire::Envelope;
    use core::time::Duration;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn acked() -> Config {
        Config {
            outputs_release: OutputsRelease::Acked,
            ..Config::default()
        }
    }

    fn await_state(p: &mut Pair, i: usize, role: Role, sync: SyncState, limit: Duration) -> bool {
        let until = p.now + limit;
        p.run_until(until, |p| {
            p.nodes[i]
                .as_ref()
                .is_some_and(|n| n.role() == role && n.status().sync == sync)
        })
    }

    /// Node 0 primary, node 1 an in-sync backup, both with `config`.
    fn running(config: Config) -> Pair {
        let mut p = Pair::new(11, config, 0);
        p.start(0);
        assert!(await_state(&mut p, 0, Role::Primary, SyncState::Alone, ms(2000)));
        p.start(1);
        assert!(await_state(&mut p, 1, Role::Backup, SyncState::InSync, ms(2000)));
        assert!(await_state(&mut p, 0, Role::Primary, SyncState::Paired, ms(2000)));
        p.run_for(ms(50));
        p
    }

    /// Everything the backup (node 1) sends is lost: no ack reaches the primary.
    fn drop_backup_messages(from: usize, _: &Envelope) -> bool {
        from == 1
    }

    fn drop_released(_: usize, envelope: &Envelope) -> bool {
        matches!(envelope.body, Body::Released { .. })
    }

    /// Frames whose first output the sink accepted, in `first..=last`, that it lacks.
    fn missing(p: &Pair, first: u64, last: u64) -> std::vec::Vec<u64> {
        (first..=last)
            .filter(|f| !p.sink.accepted.contains_key(&(*f, 0)))
            .collect()
    }

    /// Acked mode, paired: a frame's outputs stay in the primary until the backup's ack
    /// of the frame arrives, and its commit says them not sent. Immediate mode (before
    /// 2026-11-26 the only one) emits them as it runs the frame.
    #[test]
    fn primary_paired_outputs_held_until_backup_acks() {
        let mut p = running(acked());
        p.drop_if = Some(drop_backup_messages);
        let cut_at = p.node(0).frame();
        p.emit_log = Some(std::vec::Vec::new());
        p.run_for(ms(20));
        let ran = p.node(0).frame();
        assert!(ran >= cut_at + 15, "the primary runs on: {cut_at} → {ran}");
        let emitted_after_cut = p
            .emit_log
            .as_ref()
            .unwrap()
            .iter()
            .filter(|&&(_, node, frame, _)| node == 0 && frame > cut_at)
            .count();
        assert_eq!(emitted_after_cut, 0, "no output of an unacknowledged frame leaves");
        let status = p.node(0).status().release;
        assert_eq!(status.mode, OutputsRelease::Acked);
        assert!(status.held >= ran - cut_at, "held {status:?}");
        assert_eq!(status.held_oldest_frame, cut_at + 1);
        // The backup keeps them unsent: the commits said them not sent.
        assert!(p.node(1).status().unsent_outputs >= ran - cut_at - 1);
    }

    /// Mutant `release.rs:227:36` (`+` → `*` in `release_room_for_frame`, run of
    /// 37f1692): the queue has room for a frame while what it holds plus a frame's most
    /// outputs fit. With the product instead, frames waited (`OutputsHeldFull`) once 64
    /// outputs were held, a sixteenth of the queue: outputs late while the acks lag.
    #[test]
    fn primary_holding_more_than_a_sixteenth_of_the_queue_runs_on() {
        let mut p = running(acked());
        p.drop_if = Some(drop_backup_messages);
        let cut_at = p.node(0).frame();
        p.run_for(ms(120));
        let held = p.node(0).status().release.held;
        assert!(held > 100, "held {held}");
        assert!(held + crate::app::OUTPUTS_PER_FRAME_MAX as u64 <= HELD_OUTPUTS_MAX as u64);
        assert!(
            p.node(0).frame() >= cut_at + 110,
            "frames waited: {}",
            p.node(0).frame() - cut_at
        );
        let full = p
            .alarms
            .iter()
            .any(|(n, a)| *n == 0 && matches!(a, Alarm::OutputsHeldFull { .. }));
        assert!(!full, "{:?}", p.alarms);
    }

    /// Mutant `release.rs:230:12` (`!` deleted in `release_room_for_frame`, run of
    /// 37f1692): a full queue raises `OutputsHeldFull` once, frames wait (none is lost),
    /// and once the acks come back and the queue drains, a second fill raises it again.
    #[test]
    fn primary_queue_full_alarms_once_frames_wait_then_drain() {
        let config = Config {
            detection_window_ms: 5_000,
            switchover_timeout_ms: 20_000,
            ..acked()
        };
        let mut p = running(config);
        let fulls = |p: &Pair| {
            p.alarms
                .iter()
                .filter(|(n, a)| *n == 0 && matches!(a, Alarm::OutputsHeldFull { .. }))
                .count()
        };
        p.drop_if = Some(drop_backup_messages);
        let until = p.now + ms(3_000);
        assert!(
            p.run_until(until, |p| fulls(p) == 1),
            "never full: {:?}",
            p.node(0).status().release
        );
        let waiting_at = p.node(0).frame();
        p.run_for(ms(100));
        assert_eq!(p.node(0).frame(), waiting_at, "a frame ran past a full queue");
        assert_eq!(fulls(&p), 1, "raised again while full");
        p.drop_if = None;
        let until = p.now + ms(2_000);
        assert!(
            p.run_until(until, |p| p.node(0).status().release.held < 64),
            "never drained"
        );
        assert!(p.node(0).frame() > waiting_at + 50, "frames ran again");
        p.drop_if = Some(drop_backup_messages);
        let until = p.now + ms(3_000);
        assert!(p.run_until(until, |p| fulls(p) == 2), "a second fill raised nothing");
    }

    fn drop_commits_from_0(from: usize, envelope: &Envelope) -> bool {
        from == 0 && matches!(envelope.body, Body::Commit(_))
    }

    /// What the primary counts unguarded (`ReleaseStatus::unguarded`): nothing it releases
    /// on its in-sync backup's acks; each output it releases unacknowledged at the end of
    /// the backup window, its backup heard in sync all along but running no frame (its
    /// commits lost). (Mutants `release.rs:275:39`, `!` deleted: the acknowledged outputs
    /// counted, the overdue ones not; `release.rs:275:36`, `||` → `&&`: the overdue ones
    /// not counted. Schemata run of 64df4f8, 2026-11-27.)
    #[test]
    fn primary_paired_acked_releases_guarded_overdue_ones_counted_unguarded() {
        let mut p = running(Config {
            detection_window_ms: 100,
            heartbeat_interval_ms: 20,
            ..acked()
        });
        let before = p.node(0).status().release.unguarded;
        let raw = p.sink.raw;
        p.run_for(ms(50));
        assert!(p.sink.raw >= raw + 40, "released on the acks");
        assert_eq!(p.node(0).status().release.unguarded, before, "released on the acks");
        p.drop_if = Some(drop_commits_from_0);
        p.run_for(ms(150));
        assert_eq!(p.node(1).status().sync, SyncState::InSync);
        let unguarded = p.node(0).status().release.unguarded - before;
        assert!(unguarded >= 40, "{unguarded} released unacknowledged and counted");
    }

    /// Outputs held for an in-sync backup that never acknowledges them (its commits
    /// lost) leave at the end of the backup window, on the primary's own timer, even
    /// when nothing else wakes it then: the source paused, the backup's heartbeats no
    /// release (only a timer releases on time). (Mutant `release.rs:308:13`, the
    /// primary's arm of `release_deadline` deleted: no timer for the window, the outputs
    /// left at the primary's next heartbeat, up to a heartbeat gap late. Schemata run of
    /// 64df4f8, 2026-11-27.)
    #[test]
    fn primary_paired_acked_unacknowledged_outputs_leave_at_the_end_of_the_backup_window() {
        let mut p = running(Config {
            detection_window_ms: 100,
            heartbeat_interval_ms: 30,
            ..acked()
        });
        p.drop_if = Some(drop_commits_from_0);
        let from = p.now;
        p.run_for(ms(1));
        p.source_on = false;
        assert!(p.node(0).status().release.held > 0, "held for the backup's ack");
        let window = p.configs[0].backup_silence();
        let until = from + ms(1) + window + ms(1);
        let released = p.run_until(until, |p| p.node(0).status().release.held == 0);
        assert!(
            released,
            "still held at the end of the window: {:?}",
            p.node(0).status().release
        );
        assert_eq!(p.node(1).status().sync, SyncState::InSync);
    }

    /// The backup's acks come back: every held output leaves, in order, once; the queue
    /// is back to the frames in flight.
    #[test]
    fn primary_holding_backup_acks_releases_outputs() {
        let mut p = running(acked());
        p.drop_if = Some(drop_backup_messages);
        let cut_at = p.node(0).frame();
        p.run_for(ms(20));
        let held_to = p.node(0).frame();
        p.drop_if = None;
        p.emit_log = Some(std::vec::Vec::new());
        p.run_for(ms(10));
        assert_eq!(missing(&p, cut_at + 1, held_to), std::vec::Vec::<u64>::new());
        let log = p.emit_log.as_ref().unwrap();
        let frames: std::vec::Vec<u64> = log.iter().map(|&(_, _, frame, _)| frame).collect();
        assert!(frames.windows(2).all(|w| w[0] <= w[1]), "in frame order: {frames:?}");
        assert_eq!((p.sink.duplicates, p.sink.raw), (0, p.sink.accepted.len() as u64));
        let status = p.node(0).status().release;
        assert!(status.held <= 2 * 2, "back to a frame or two in flight: {status:?}");
        // The backup heard them released: its unsent set is the frames in flight.
        assert!(p.node(1).status().unsent_outputs <= 4);
        assert!(p.node(1).status().release.released_known >= held_to);
    }

    /// The primary crashes holding outputs its backup never got to acknowledge: the new
    /// primary sends each of them once (none reached the sink from the old one), and
    /// says they may have been released (it had sent acks of them, lost on the way).
    #[test]
    fn backup_takeover_sends_held_outputs_exactly_once() {
        let mut p = running(acked());
        p.drop_if = Some(drop_backup_messages);
        let cut_at = p.node(0).frame();
        p.run_for(ms(15));
        let held_to = p.node(0).frame();
        let raw_before = p.sink.raw;
        p.crash(0);
        p.drop_if = None;
        assert!(await_state(&mut p, 1, Role::Primary, SyncState::Alone, ms(3000)));
        p.run_for(ms(10));
        assert_eq!(missing(&p, cut_at + 1, held_to), std::vec::Vec::<u64>::new());
        assert_eq!(p.sink.duplicates, 0, "no output reached the sink twice");
        assert_eq!(p.sink.raw, p.sink.accepted.len() as u64, "no copy offered at all");
        assert!(p.sink.raw > raw_before);
        let uncertain: std::vec::Vec<_> = p
            .notices
            .iter()
            .filter_map(|&(n, notice)| match notice {
                Notice::OutputsUncertain { first, last, count } if n == 1 => Some((first, last, count)),
                _ => None,
            })
            .collect();
        assert_eq!(uncertain.len(), 1, "{uncertain:?}");
        assert!(uncertain[0].0 > cut_at.saturating_sub(2) && uncertain[0].1 <= held_to);
    }

    /// The old primary released outputs on the backup's acks and its `Released` words
    /// were lost: each later `Released` covers the earlier frames, so the new primary
    /// sends none of them again.
    #[test]
    fn backup_takeover_after_released_lost_then_repaired_sends_nothing_twice() {
        let mut p = running(acked());
        p.drop_if = Some(drop_released);
        p.run_for(ms(20));
        let unsent = p.node(1).status().unsent_outputs;
        assert!(unsent >= 20, "without Released the backup keeps them: {unsent}");
        p.drop_if = None;
        p.run_for(ms(5));
        assert!(p.node(1).status().unsent_outputs <= 4);
        p.crash(0);
        assert!(await_state(&mut p, 1, Role::Primary, SyncState::Alone, ms(3000)));
        p.run_for(ms(10));
        assert_eq!((p.sink.duplicates, p.sink.raw), (0, p.sink.accepted.len() as u64));
    }

    /// The `Released` words are lost while the source pauses, so no frame runs after them.
    /// The backup acks again every `retry_ms`, and the primary answers each ack with
    /// `Released`, though it released nothing new: the backup's unsent set empties, and a
    /// takeover sends nothing twice. (Mutant `release.rs:292:51` `||` → `&&` in
    /// `release_progress`: only an ack with new frames released was answered. The backup
    /// kept the outputs as unsent for as long as no frame ran, and the new primary sent
    /// them again. Schemata run of 64df4f8, 2026-11-27.)
    #[test]
    fn backup_released_lost_source_paused_acks_answered_takeover_sends_nothing_twice() {
        let mut p = running(acked());
        p.drop_if = Some(drop_released);
        p.run_for(ms(20));
        p.source_on = false;
        p.run_for(ms(20));
        assert!(p.node(1).status().unsent_outputs > 0, "the Released words lost");
        p.drop_if = None;
        let retry = ms(p.configs[1].retry_ms);
        p.run_for(retry * 3);
        let status = p.node(1).status();
        assert_eq!(status.unsent_outputs, 0, "{:?}", status.release);
        assert_eq!(status.release.released_known, p.node(0).frame());
        p.crash(0);
        assert!(await_state(&mut p, 1, Role::Primary, SyncState::Alone, ms(3000)));
        p.run_for(ms(10));
        assert_eq!((p.sink.duplicates, p.sink.raw), (0, p.sink.accepted.len() as u64));
    }

    /// No backup in sync (alone): outputs leave as their frame runs, counted unguarded.
    #[test]
    fn primary_alone_acked_releases_at_once() {
        let mut p = Pair::new(11, acked(), 0);
        p.start(0);
        assert!(await_state(&mut p, 0, Role::Primary, SyncState::Alone, ms(2000)));
        p.run_for(ms(20));
        let frame = p.node(0).frame();
        assert!(frame > 10);
        let first = frame - 10;
        assert_eq!(missing(&p, first, frame), std::vec::Vec::<u64>::new());
        let status = p.node(0).status().release;
        assert_eq!(status.held, 0);
        assert!(status.unguarded >= 10);
    }

    /// A planned switchover in acked mode: the backup leads once the old primary said
    /// every output up to the released frame sent; no frame's output is lost or sent
    /// twice, round after round.
    #[test]
    fn backup_switchover_acked_no_output_lost_or_twice() {
        let mut p = running(acked());
        let first = p.node(0).frame() + 1;
        for round in 0..6u64 {
            let primary = p.primary().expect("one primary");
            let backup = 1 - primary;
            p.run_for(ms(3) + Duration::from_micros(round * 97 % 1000));
            assert_eq!(p.command(primary, Command::Switchover), CommandReply::Started);
            let done = p.run_until(p.now + ms(200), |p| {
                p.nodes[backup].as_ref().is_some_and(|n| n.role() == Role::Primary)
            });
            assert!(done, "round {round}: switchover did not complete");
            assert!(await_state(&mut p, primary, Role::Backup, SyncState::InSync, ms(200)));
            assert!(await_state(&mut p, backup, Role::Primary, SyncState::Paired, ms(200)));
        }
        p.run_for(ms(10));
        let last = p.node(p.primary().unwrap()).frame() - 3;
        assert_eq!(missing(&p, first, last), std::vec::Vec::<u64>::new());
        assert_eq!((p.sink.duplicates, p.sink.raw), (0, p.sink.accepted.len() as u64));
    }

    /// Nodes in different release modes do not pair: a successor in the other mode would
    /// repeat what its primary held, or hold what it never released.
    #[test]
    fn pairing_release_mode_differs_refused() {
        let mut p = Pair::new(7, Config::default(), 0);
        p.configs[1].outputs_release = OutputsRelease::Acked;
        p.start(0);
        p.run_for(ms(2000));
        p.start(1);
        p.run_for(ms(3000));
        let refused = Alarm::PairingRefused {
            mismatch: Mismatch::Settings,
        };
        assert!(p.alarms.iter().any(|&(n, a)| n == 1 && a == refused), "{:?}", p.alarms);
        assert_ne!(p.node(1).status().sync, SyncState::InSync);
    }

    /// Immediate mode (the default) announces the fingerprint it did before acked mode.
    #[test]
    fn fingerprint_immediate_unchanged_acked_folds_the_mode() {
        let f = Fingerprint {
            program: 1,
            version: 2,
            settings: 3,
            keyed: false,
        };
        assert_eq!(with_release(f, OutputsRelease::Immediate), f);
        assert_ne!(with_release(f, OutputsRelease::Acked).settings, 3);
    }

    /// A group's primary in acked mode: a backup it does not wait for (silent past its
    /// window, or joining) may still take over with the commits it holds, so releasing
    /// without it is not guarded (`release_partial`); a witness, or a member heard
    /// starting, is not such a backup. (The old code counted only backups heard within
    /// their window and in sync or lagging: DST `--nodes 3 --acked` seeds 816 and 1971
    /// sent outputs twice across a takeover, both copies counted guarded.)
    #[test]
    fn primary_group_backup_silent_or_joining_release_partial() {
        use crate::config::GroupPeer;
        use crate::node::{peers, PeerStatus};
        use crate::time::Instant;
        let mut p = running(acked());
        let node = p.nodes[0].as_mut().unwrap();
        let heard = node.peers[0].status.expect("its backup heard");
        node.config.peers = std::vec![
            GroupPeer {
                id: heard.node_id,
                weight: 1,
                witness: false,
                links: 1
            },
            GroupPeer {
                id: 3,
                weight: 1,
                witness: false,
                links: 1
            },
            GroupPeer {
                id: 4,
                weight: 0,
                witness: true,
                links: 1
            },
        ];
        let (slots, link_peer, count) = peers::slots_for(&node.config);
        (node.peers, node.link_peer, node.peer_count) = (slots, link_peer, count);
        node.peers[0].status = Some(heard);
        node.release.clock = node.now;
        assert!(!node.release_partial(), "only the backup it waits for");
        let silent = PeerStatus {
            node_id: 3,
            last_heard: Instant::from_millis(0),
            ..heard
        };
        node.peers[1].status = Some(silent);
        assert!(node.release_partial(), "a backup silent past its window may come back");
        let joining = PeerStatus {
            node_id: 3,
            sync: WireSync::Joining,
            ..heard
        };
        node.peers[1].status = Some(joining);
        assert!(
            node.release_partial(),
            "a joining backup takes the commits after its transfer"
        );
        let starting = PeerStatus {
            node_id: 3,
            role: WireRole::Starting,
            sync: WireSync::NotApplicable,
            ..heard
        };
        node.peers[1].status = Some(starting);
        node.peers[2].status = Some(PeerStatus { node_id: 4, ..heard });
        assert!(!node.release_partial(), "a starting member, a witness");
    }

    /// A backup in sync whose every run frame its primary said released sends no
    /// `CommitAck` while no frame runs: it repeats its last ack only while the release of
    /// that frame is not known. (Mutant `release.rs:352:49` `<` → `<=` in `release_ack`:
    /// the last ack was repeated every `retry_ms` for as long as the source was paused,
    /// on every link, and the primary answered each with `Released`. Traffic only.
    /// Schemata run of 64df4f8, 2026-11-27.)
    #[test]
    fn backup_everything_released_source_paused_acks_no_more() {
        let mut p = running(acked());
        p.source_on = false;
        p.run_for(ms(50));
        let status = p.node(1).status();
        assert_eq!(status.release.released_known, p.node(1).frame(), "{:?}", status.release);
        p.capture = true;
        p.run_for(ms(500));
        let acks = p
            .captured
            .iter()
            .filter(|(from, _, bytes)| {
                *from == 1
                    && matches!(
                        crate::wire::decode(bytes, None).map(|e| e.body),
                        Ok(Body::CommitAck { .. })
                    )
            })
            .count();
        assert_eq!(acks, 0);
    }

    /// Mutant `release.rs:317:29` (the guard → `false` in `release_deadline`, run of
    /// 68549c5): a backup in sync whose ack was lost acks again `retry_ms` later, woken by
    /// its own timer. With the mutant it waited for its next heartbeat (here a tenth of a
    /// second and more), and the primary's outputs with it.
    #[test]
    fn backup_in_sync_whose_ack_was_lost_acks_again_after_retry() {
        let config = Config {
            heartbeat_interval_ms: 200,
            detection_window_ms: 2_000,
            retry_ms: 10,
            ..acked()
        };
        let mut p = running(config);
        p.drop_if = Some(drop_backup_messages);
        p.run_for(ms(5));
        // No new frame then: no new ack but the repeated one.
        p.source_on = false;
        p.run_for(ms(15));
        let held = p.node(0).status().release.held;
        assert!(held > 0, "the backup's ack of the last frames was lost");
        assert_eq!(p.node(1).status().sync, SyncState::InSync);
        p.drop_if = None;
        let until = p.now + ms(30);
        let released = p.run_until(until, |p| p.node(0).status().release.held == 0);
        assert!(
            released,
            "still held 30 ms after the loss ended: {:?}",
            p.node(0).status().release
        );
        assert_eq!(p.node(0).frame(), p.node(1).frame(), "no new frame ran");
    }

    /// What a new primary says uncertain: the outputs of its unsent set of frames above
    /// the last `Released` it heard and at or below the last frame it acknowledged, each
    /// counted. Its set may hold others: of frames at or below `released_known` (a
    /// `Released` can name frames it held the commits of but had not run yet — released
    /// unacknowledged at the end of the backup window — which it ran after), and of
    /// frames above its last ack (run while lagging, when no message acknowledges): the
    /// old primary released the first and cannot have released the second on its acks.
    /// The state is set as those paths leave it, then the takeover's call made.
    /// (Mutants `release.rs:401:69` `&&` → `||`, `401:61` `>` → `>=`, `402:19` `+=` →
    /// `*=` in `release_note_uncertain`: every unsent output counted; the one of the
    /// frame released last counted; the count 0. The notice and the `uncertain` counter
    /// only. Schemata run of 64df4f8, 2026-11-27.)
    #[test]
    fn backup_taking_over_says_uncertain_only_the_outputs_it_acked_above_the_last_released() {
        use crate::app::{OutputKind, OutputPayload};
        let mut p = running(acked());
        let node = p.nodes[1].as_mut().unwrap();
        let known = node.frame();
        node.release.released_known = known;
        node.release.acked_sent = known + 3;
        node.unsent.clear();
        for frame in known - 2..=known + 5 {
            let _ = node.unsent.push_back(Output {
                epoch: 0,
                frame,
                index: 0,
                kind: OutputKind::Event,
                payload: OutputPayload::from_slice(b"x").unwrap(),
            });
        }
        let before = node.release.uncertain;
        node.release_note_uncertain();
        assert_eq!(node.release.uncertain - before, 3);
        p.notices.clear();
        p.drain(1);
        let said: std::vec::Vec<Notice> = p
            .notices
            .iter()
            .filter(|(n, notice)| *n == 1 && matches!(notice, Notice::OutputsUncertain { .. }))
            .map(|&(_, notice)| notice)
            .collect();
        assert_eq!(
            said,
            [Notice::OutputsUncertain {
                first: known + 1,
                last: known + 3,
                count: 3
            }]
        );
    }
    /// The backup's input of a few frames is lost with its fetches: it lags, the primary
    /// releases the frames unacknowledged at the end of the backup window and says them
    /// released, and the backup takes the `Released` up to the commits it holds — past
    /// the frames it ran. Catching up, it runs them and keeps none of their outputs unsent
    /// (their commits said them held, the `Released` since said them sent: until
    /// 2026-11-28 it kept them all and sent them again at a takeover, duplicates at the
    /// sink). It takes over before the next `Released`: it says none of them uncertain and
    /// sends none again. (Written for mutant `release.rs:401:69`, `&&` → `||` in
    /// `release_note_uncertain`, every one counted uncertain, when this path kept them;
    /// schemata run of 64df4f8, 2026-11-27; the mutant is killed by
    /// `backup_taking_over_says_uncertain_only_the_outputs_it_acked_above_the_last_released`.)
    #[test]
    fn backup_heard_released_past_the_frames_it_ran_takes_over_says_none_of_them_uncertain() {
        let mut p = running(Config {
            detection_window_ms: 100,
            heartbeat_interval_ms: 20,
            ..acked()
        });
        let first = p.frame_next + 3;
        for frame in first..first + 5 {
            p.frame_loss[1].insert(frame, ());
        }
        p.drop_if = Some(|_, envelope| matches!(envelope.body, Body::FrameData { .. }));
        p.run_for(ms(150));
        let known = p.node(1).status().release.released_known;
        assert!(known > p.node(1).frame() + 100, "released past its frames: {known}");
        // Its later `Released` lost, so the takeover finds the outputs still unsent.
        p.drop_if = Some(drop_released);
        let until = p.now + ms(500);
        assert!(p.run_until(until, |p| p.node(1).frame() > known));
        let unsent: std::vec::Vec<u64> = p.node(1).unsent.iter().map(|o| o.frame).collect();
        assert!(unsent.iter().all(|&f| f > known), "{unsent:?}");
        p.crash(0);
        p.drop_if = None;
        assert!(await_state(&mut p, 1, Role::Primary, SyncState::Alone, ms(3000)));
        p.run_for(ms(20));
        let uncertain: std::vec::Vec<_> = p
            .notices
            .iter()
            .filter(|(n, notice)| *n == 1 && matches!(notice, Notice::OutputsUncertain { .. }))
            .collect();
        assert!(uncertain.is_empty(), "{uncertain:?}");
        assert_eq!(p.node(1).status().release.uncertain, 0);
        assert_eq!(p.sink.conflicts, 0);
        assert_eq!(p.sink.duplicates, 0, "released outputs sent again");
    }
}
