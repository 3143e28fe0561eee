//! State transfer: a joining or resyncing backup asks; the primary snapshots the app at a
//! frame boundary and streams it in chunks (go-back-N with a window) while it keeps
//! running frames; the backup installs it and replays the commits it buffered meanwhile.
//! The backup keeps chunks that arrive out of order within the window, and asks again
//! when a begun transfer stalls (the primary gives a transfer up when the backup falls
//! silent).

use super::hmi;
use super::{Alarm, Node, Notice, Reason, ResyncCause, Role, SyncState, TrafficClass, ACTIONS_MAX};
use crate::app::App;
use crate::time::Instant;
use crate::wire::{Body, WireRole, WireSync};

/// The primary's side of a transfer.
#[derive(Clone, Copy)]
pub(super) struct TxTransfer {
    id: u32,
    /// The frame of the snapshot.
    pub(super) frame: u64,
    total: u64,
    chunk: u64,
    chunks: u32,
    /// Every chunk below this was acknowledged.
    acked: u32,
    /// The next chunk to send.
    next: u32,
    state_digest: u64,
    progress_at: Instant,
    /// When the snapshot was taken, for the rate in status.
    started_at: Instant,
    /// Pacing (`transfer_chunks_per_ms`): the next chunk may go at this instant.
    paced_at: Instant,
}

/// How much sending the pacing lets accumulate while a transfer waits.
const PACE_BURST: core::time::Duration = core::time::Duration::from_millis(1);

/// Chunks the backup keeps ahead of the one it waits for: the largest window.
const RX_WINDOW_CHUNKS: usize = 1024;
/// Transfer ids a primary remembers having streamed a snapshot under (`Node::tx_ids`).
pub(super) const TX_IDS_KEPT: usize = 8;

/// The backup's side of a transfer.
pub(super) struct RxTransfer {
    id: u32,
    /// `(frame, total bytes, chunk bytes, digest)` once the primary began.
    begun: Option<(u64, u64, u64, u64)>,
    /// The cold start the primary's state goes back to (its header's `origin`).
    origin: u64,
    /// The next chunk expected.
    next: u32,
    /// Chunks above `next` already received, bit `index % RX_WINDOW_CHUNKS`: a link that
    /// reorders must not make the primary go back for chunks that did arrive.
    received: [u64; RX_WINDOW_CHUNKS / 64],
    retry_at: Instant,
    /// When the transfer began or last moved `next`.
    progress_at: Instant,
    /// When this node asked for the state, for the rate in status.
    started_at: Instant,
}

impl RxTransfer {
    fn has(&self, index: u32) -> bool {
        let slot = index as usize % RX_WINDOW_CHUNKS;
        self.received[slot / 64] & (1 << (slot % 64)) != 0
    }

    fn mark(&mut self, index: u32, on: bool) {
        let slot = index as usize % RX_WINDOW_CHUNKS;
        if on {
            self.received[slot / 64] |= 1 << (slot % 64);
        } else {
            self.received[slot / 64] &= !(1 << (slot % 64));
        }
    }
}

/// How far a state transfer under way has come (status, `twinctl status` and `watch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransferProgress {
    /// True on the primary (sending the snapshot), false on the backup (receiving it).
    pub sending: bool,
    /// Bytes acknowledged (primary) or received in order (backup).
    pub bytes_done: u64,
    /// The snapshot's size; 0 on a backup whose primary has not begun yet.
    pub bytes_total: u64,
    /// When the transfer was asked for (backup) or the snapshot taken (primary).
    pub started_at: Instant,
}

impl<A: App> Node<A> {
    /// The state transfer under way, if any: the one this primary sends, or the one this
    /// backup receives.
    pub fn transfer_progress(&self) -> Option<TransferProgress> {
        if let Some(tx) = &self.tx {
            return Some(TransferProgress {
                sending: true,
                bytes_done: (u64::from(tx.acked) * tx.chunk).min(tx.total),
                bytes_total: tx.total,
                started_at: tx.started_at,
            });
        }
        let rx = self.rx.as_ref()?;
        let (done, total) = match rx.begun {
            Some((_, total, chunk, _)) => ((u64::from(rx.next).saturating_mul(chunk)).min(total), total),
            None => (0, 0),
        };
        Some(TransferProgress {
            sending: false,
            bytes_done: done,
            bytes_total: total,
            started_at: rx.started_at,
        })
    }

    /// The backup has the primary's state (it may run committed frames and take over).
    pub(super) fn has_state(&self) -> bool {
        matches!(self.sync, SyncState::InSync | SyncState::Lagging)
    }

    /// Backup: asks for a fresh state; `cause` is `None` for a first join.
    pub(super) fn start_join(&mut self, cause: Option<ResyncCause>) {
        let id = self.transfer_id_next;
        self.transfer_id_next = self.transfer_id_next.wrapping_add(2);
        self.rx = Some(RxTransfer {
            id,
            begun: None,
            origin: 0,
            next: 0,
            received: [0; RX_WINDOW_CHUNKS / 64],
            retry_at: self.now + self.config.retry(),
            progress_at: self.now,
            started_at: self.now,
        });
        // The chunks to come overwrite the snapshot this node may have streamed as primary.
        self.tx_last = None;
        // Commits of another history must never be replayed on the state to come.
        self.ring.clear_commits();
        self.commit_highest = 0;
        self.unsent.clear();
        self.acks_clear();
        self.release_history_reset();
        self.fetch_next = None;
        self.probe = None;
        if let Some(cause) = cause {
            self.transition(Role::Backup, SyncState::Joining, Reason::ResyncStarted(cause));
        } else {
            self.sync = SyncState::Joining;
        }
        self.send_all(Body::JoinRequest { id });
    }

    pub(super) fn on_join_request(&mut self, link: u8, id: u32) {
        if self.role != Role::Primary {
            return;
        }
        let slot = self.link_peer(link);
        if slot != self.transfer_slot
            && (self.tx.is_some() || self.join_pending.is_some())
            && self.slot_alive(self.transfer_slot)
        {
            // A group's second joiner waits for the first (it asks every `retry_ms`).
            return;
        }
        self.transfer_slot = slot;
        // groups: one transfer at a time, to the peer that asked (the slot of the request's
        // link): a second joiner waits, and `tx` names its slot for `bulk_link` and
        // `transfer_timeout`.
        if let Some(tx) = &self.tx {
            if tx.id == id {
                // The backup did not hear the beginning: say it again.
                let (body, frame) = (tx.begin(), tx.frame);
                self.source_announce_with_transfer(frame);
                self.send_all(body);
                return;
            }
        }
        if let Some(last) = self.tx_last.filter(|last| last.id == id) {
            // This id's transfer began and was given up (the backup fell silent, or a late
            // copy of its status said it follows in sync): the backup may hold chunks of
            // it. Chunks carry no frame, so it would take the rest from any snapshot sent
            // under the same id and install a state no node had (docs/DST.md, seeds 8732,
            // 10758, 11201, 11571, 12735, 19214): the same snapshot again, still in
            // `snapshot_buf`.
            let tx = last.again(self.now);
            self.notice(Notice::TransferStarted {
                bytes: tx.total,
                frame: tx.frame,
            });
            let body = tx.begin();
            self.tx = Some(tx);
            self.source_announce_with_transfer(tx.frame);
            self.send_all(body);
            return;
        }
        if id != 0 && self.tx_ids.contains(&id) {
            // A snapshot went out under this id and `snapshot_buf` holds another one now
            // (a late or replayed request of an older id started a transfer in between):
            // never a second snapshot under one id — chunks carry no frame, and those of
            // the first, late on the way or replayed, would complete the second with bytes
            // of the first (DST seed 8659, keyed: the replay window's 1,024 numbers take
            // them). Not served: the joiner asks under a new id after its stall limit
            // (`transfer_timeout`). At most `TX_IDS_KEPT` ids, checked in constant time.
            return;
        }
        if self.frame_last_run == 0 {
            // Nothing run yet: snapshot after the first frame.
            self.join_pending = Some(id);
        } else {
            self.transfer_start(id);
        }
    }

    /// Primary: snapshots the app now (a frame boundary) and begins streaming it.
    pub(super) fn transfer_start(&mut self, id: u32) {
        let state_max = self.config.state_bytes_max as usize;
        let total = match self.app.snapshot(&mut self.snapshot_buf[..state_max]) {
            // The memory of applied HMI writes follows the program's bytes: a backup that
            // takes over must not apply a client's retry of one of them again.
            // And the levels to refresh (content version 2): a backup that joined re-sends
            // them when it leads, as one that ran every frame would.
            // And the events waiting for their acks (content version 3, acks on): a backup
            // that joined re-sends them when it leads.
            Ok(n) => {
                let n = n + hmi::encode_memory(&self.hmi, &mut self.snapshot_buf[n..]);
                let n = n + self.refresh_encode(n);
                (n + self.acks_encode(n)) as u64
            }
            Err(_) => {
                self.alarm(Alarm::TransferRejected);
                return;
            }
        };
        let chunk = self.config.transfer_chunk_bytes;
        let chunks = total.div_ceil(chunk).max(1) as u32;
        let tx = TxTransfer {
            id,
            frame: self.frame_last_run,
            total,
            chunk,
            chunks,
            acked: 0,
            next: 0,
            state_digest: self.app.digest(),
            progress_at: self.now,
            started_at: self.now,
            // A millisecond's worth of chunks may go at once, with the beginning.
            paced_at: self.now - PACE_BURST,
        };
        let body = tx.begin();
        self.notice(Notice::TransferStarted {
            bytes: total,
            frame: tx.frame,
        });
        self.tx = Some(tx);
        self.tx_last = Some(tx);
        self.tx_ids[self.tx_ids_next] = id;
        self.tx_ids_next = (self.tx_ids_next + 1) % TX_IDS_KEPT;
        self.source_announce_with_transfer(tx.frame);
        self.send_all(body);
    }

    /// Primary: sends chunks within the window, leaving room for a frame's actions.
    pub(super) fn transfer_send_chunks(&mut self) {
        let window = self.config.transfer_window_chunks as u32;
        let link = self.bulk_link();
        let (now, pace) = (self.now, self.chunk_pace());
        let room = 2 * self.actions_per_frame();
        loop {
            let Some(tx) = &mut self.tx else { return };
            if !tx.can_send(window)
                || pace.is_some_and(|_| tx.paced_at > now)
                || self.actions.len() + room > ACTIONS_MAX
            {
                return;
            }
            if let Some(cost) = pace {
                // A token bucket one millisecond deep: after a pause, up to a
                // millisecond's worth goes at once, then one chunk per `cost`.
                let earliest = now - PACE_BURST;
                tx.paced_at = tx.paced_at.max(earliest) + cost;
            }
            let start = u64::from(tx.next) * tx.chunk;
            let end = (start + tx.chunk).min(tx.total);
            let index = tx.next;
            tx.next += 1;
            let id = tx.id;
            let bytes = heapless::Vec::from_slice(&self.snapshot_buf[start as usize..end as usize]).unwrap_or_default();
            self.send(link, TrafficClass::Bulk, Body::Chunk { id, index, bytes });
        }
    }

    /// The time one chunk costs under `transfer_chunks_per_ms`; `None`: not paced.
    fn chunk_pace(&self) -> Option<core::time::Duration> {
        match self.config.transfer_chunks_per_ms {
            0 => None,
            rate => Some(core::time::Duration::from_nanos(1_000_000 / rate)),
        }
    }

    /// The lowest link that is up: bulk goes on one path, control on all.
    fn bulk_link(&self) -> u8 {
        let mut links = self.peers[self.transfer_slot].links();
        let first = links.start;
        links.find(|&l| self.links[usize::from(l)].up).unwrap_or(first)
    }

    pub(super) fn on_chunk_ack(&mut self, id: u32, next: u32) {
        let now = self.now;
        let Some(tx) = &mut self.tx else { return };
        if tx.id != id {
            return;
        }
        if next > tx.acked {
            tx.acked = next.min(tx.chunks);
            tx.progress_at = now;
        }
        if tx.acked >= tx.chunks {
            let bytes = tx.total;
            self.tx = None;
            self.notice(Notice::TransferCompleted { bytes });
        }
    }

    pub(super) fn on_transfer_begin(&mut self, id: u32, frame: u64, total: u64, chunk: u32, digest: u64, origin: u64) {
        let now = self.now;
        let retry = self.config.retry();
        let stall_limit = self.transfer_stall_limit();
        let Some(rx) = &mut self.rx else { return };
        if rx.id != id {
            return;
        }
        if let Some(begun) = rx.begun {
            if begun != (frame, total, u64::from(chunk), digest) {
                // Another snapshot under the id this node holds chunks of (a primary that
                // no longer has the first, as another node that took over): the two
                // mixed would be a state no node had. Ask again, under a new id.
                self.start_join(Some(ResyncCause::TransferFailed));
            }
            return;
        }
        if total > self.snapshot_buf.len() as u64
            || chunk == 0
            || u64::from(chunk) > crate::config::CHUNK_BYTES_MAX as u64
        {
            // Alarmed, and the join stays open: the beginning may be a corrupt or forged
            // copy, and the primary says its own again while no chunk is acknowledged;
            // this node asks again itself after the stall limit (one request per limit),
            // as the primary may change (a takeover, a release with a smaller state).
            // Dropped (`rx = None`, before 2026-11-26), the node stayed joining with
            // nothing that asked again, for good.
            rx.retry_at = now + stall_limit;
            self.alarm(Alarm::TransferRejected);
            return;
        }
        rx.begun = Some((frame, total, u64::from(chunk), digest));
        rx.origin = origin;
        rx.retry_at = now + retry;
        rx.progress_at = now;
        self.notice(Notice::TransferStarted { bytes: total, frame });
        if total == 0 {
            self.transfer_install();
        }
    }

    pub(super) fn on_chunk(&mut self, link: u8, id: u32, index: u32, bytes: &[u8]) {
        let now = self.now;
        let retry = self.config.retry();
        let Some(rx) = &mut self.rx else { return };
        let Some((_, total, chunk, _)) = rx.begun else { return };
        if rx.id != id {
            return;
        }
        // Any chunk within the window is kept, in whatever order it comes.
        let window = (self.config.transfer_window_chunks as u32).min(RX_WINDOW_CHUNKS as u32);
        if index >= rx.next && index - rx.next < window && !rx.has(index) {
            let start = u64::from(index) * chunk;
            let end = start + bytes.len() as u64;
            let expected_end = (start + chunk).min(total);
            if end != expected_end {
                return;
            }
            self.snapshot_buf[start as usize..end as usize].copy_from_slice(bytes);
            rx.mark(index, true);
            // Bounded by the window: at most `window` bits are set.
            while rx.has(rx.next) {
                rx.mark(rx.next, false);
                rx.next += 1;
                rx.retry_at = now + retry;
                rx.progress_at = now;
            }
        }
        let next = rx.next;
        let done = u64::from(next) * chunk >= total;
        self.send(link, TrafficClass::Control, Body::ChunkAck { id, next });
        if done {
            self.transfer_install();
        }
    }

    /// Backup: restores the snapshot and starts following from the frame after it.
    fn transfer_install(&mut self) {
        let Some(RxTransfer {
            begun: Some((frame, total, _, digest)),
            origin,
            ..
        }) = self.rx.take()
        else {
            return;
        };
        let events = super::acks::split_events(&self.snapshot_buf[..total as usize])
            .map(|(before, events)| (before, events.len()));
        let Some((events_start, events)) = events else {
            self.alarm(Alarm::TransferRejected);
            self.start_join(Some(ResyncCause::TransferFailed));
            return;
        };
        let levels = super::refresh::split_levels(&self.snapshot_buf[..events_start])
            .map(|(before, levels)| (before, levels.len()));
        let split = levels.and_then(|(before, levels)| {
            hmi::split_memory(&self.snapshot_buf[..before]).map(|(state, memory)| (state, memory.len(), before, levels))
        });
        let Some((state_len, memory, levels_start, levels)) = split else {
            self.alarm(Alarm::TransferRejected);
            self.start_join(Some(ResyncCause::TransferFailed));
            return;
        };
        let restored = self.app.restore(&self.snapshot_buf[..state_len]);
        if restored.is_err() || self.app.digest() != digest {
            // The application's state is no longer the one this node held: restored, the
            // refused bytes replaced it (and a failed restore may have changed it). It
            // holds none of the pair's until a transfer installs one, and must not lead
            // with it (`lead_from_start`; found by the DST's tampered chunk, 2026-11-27).
            self.origin = super::Epoch(0);
            self.alarm(Alarm::TransferRejected);
            self.start_join(Some(ResyncCause::TransferFailed));
            return;
        }
        // A new history: the frame of the state received, whatever this node ran before.
        self.frame_last_run = frame;
        // Levels of the old history would be refreshed under the new one's ids: the
        // primary's table replaces them.
        self.refresh_install(levels_start, levels);
        // The events the primary waits acks for, held as if this node had run their frames.
        self.acks_install(events_start, events);
        // What this node applied and remembered was of the old history; the primary's
        // memory came with the state.
        self.hmi_new_history();
        self.hmi_install_memory(state_len, memory);
        // The primary's state, and so its cold start: a primary always has one.
        self.origin = super::Epoch(origin.max(1));
        self.pair_had_state = true;
        self.keep_state = false;
        self.commit_highest = self.commit_highest.max(frame);
        self.primary_heard_at = self.now;
        self.notice(Notice::TransferCompleted { bytes: total });
        self.transition(Role::Backup, SyncState::InSync, Reason::InSync);
    }

    /// How long a begun transfer may make no progress before the backup asks again: two
    /// detection windows (the primary drops a transfer when the backup was silent for
    /// one) plus four retries (the primary goes back for lost chunks after one retry, and
    /// a loaded host may take a few). Every restart makes the primary snapshot and stream
    /// the whole state again, so erring long is cheaper than erring short.
    fn transfer_stall_limit(&self) -> core::time::Duration {
        2 * self.config.detection_window() + 4 * self.config.retry()
    }

    pub(super) fn transfer_deadline(&self) -> Option<Instant> {
        let window = self.config.transfer_window_chunks as u32;
        let tx = self.tx.as_ref().map(|tx| {
            let retry = tx.progress_at + self.config.retry();
            // Chunks held back by the pacing go when it allows.
            match self.chunk_pace() {
                Some(_) if tx.can_send(window) => retry.min(tx.paced_at),
                _ => retry,
            }
        });
        let rx = self.rx.as_ref().map(|rx| rx.retry_at);
        match (tx, rx) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub(super) fn transfer_timeout(&mut self) {
        let now = self.now;
        let retry = self.config.retry();
        if let Some(tx) = &mut self.tx {
            if now >= tx.progress_at + retry {
                // Go back to the first unacknowledged chunk.
                tx.next = tx.acked;
                tx.progress_at = now;
                if tx.acked == 0 {
                    let (body, frame) = (tx.begin(), tx.frame);
                    self.source_announce_with_transfer(frame);
                    self.send_all(body);
                }
            }
            let frame = self.tx.as_ref().map_or(0, |t| t.frame);
            if !self.slot_alive(self.transfer_slot) || self.peer_follows_with_state(frame) {
                self.tx = None;
            }
        }
        let stall_limit = self.transfer_stall_limit();
        let primary_yet_to_run = self.primary_yet_to_run();
        if let Some(rx) = &mut self.rx {
            if rx.begun.is_none() && primary_yet_to_run {
                // The primary snapshots after its first frame (`on_join_request`): no
                // beginning yet is no stall while the I/O source has not started.
                rx.progress_at = now;
            }
            if now.saturating_since(rx.progress_at) >= stall_limit {
                // No chunk for that long: the primary gave the transfer up (it does when
                // this node falls silent) or lost it. Acknowledging it forever would never
                // bring it back; ask again. Or no beginning for that long (since
                // 2026-11-26): a primary does not serve an id it streamed another snapshot
                // under (`on_join_request`), nor one whose beginning this node refused;
                // asked again under a new id.
                self.start_join(Some(ResyncCause::TransferFailed));
                return;
            }
            if now >= rx.retry_at {
                rx.retry_at = now + retry;
                let (id, next, begun) = (rx.id, rx.next, rx.begun.is_some());
                if begun {
                    self.send_all(Body::ChunkAck { id, next });
                } else {
                    self.send_all(Body::JoinRequest { id });
                }
            }
        }
    }
}

impl<A: App> Node<A> {
    /// A live primary of this node's epoch said last that it has run no frame yet.
    fn primary_yet_to_run(&self) -> bool {
        let epoch = self.epochs.current().0;
        (0..usize::from(self.peer_count)).any(|slot| {
            self.slot_alive(slot)
                && self.peers[slot]
                    .status
                    .is_some_and(|p| p.role == WireRole::Primary && p.epoch == epoch && p.frame == 0)
        })
    }

    /// Primary: the backup says it follows this epoch with state (in sync or lagging), so
    /// nobody waits for a transfer. The backup sends its join request on every link, and
    /// a small state can be sent and installed before the copy from the other link
    /// arrives: that copy started a second transfer of the same id, which the backup
    /// (no longer joining) ignores, and the primary resent its chunks for as long as the
    /// pair ran. A backup that asks again says `joining` first (`start_join`).
    /// The transfer's peer says it follows with state: at this epoch, in sync or lagging,
    /// at the snapshot's `frame` or after it. A status from before the join (a heartbeat
    /// sent in sync just before the join request, arriving after it on a slower link)
    /// says an older frame: it does not end the transfer. It did, and the backup waited
    /// for its stall limit and asked again (DST seed 12886, 2026-11-27: 29 ms at the fast
    /// profile, past the liveness phase's settling).
    fn peer_follows_with_state(&self, frame: u64) -> bool {
        self.peers[self.transfer_slot].status.is_some_and(|peer| {
            peer.role == WireRole::Backup
                && peer.epoch == self.epochs.current().0
                && matches!(peer.sync, WireSync::InSync | WireSync::Lagging)
                && peer.frame >= frame
        })
    }
}

impl TxTransfer {
    /// The same snapshot streamed again from its first chunk (the backup acknowledges
    /// what it holds), from `now`.
    fn again(&self, now: Instant) -> TxTransfer {
        TxTransfer {
            acked: 0,
            next: 0,
            progress_at: now,
            started_at: now,
            paced_at: now - PACE_BURST,
            ..*self
        }
    }

    /// A chunk is waiting and the window has room for it.
    fn can_send(&self, window: u32) -> bool {
        self.next < self.chunks && self.next < self.acked.saturating_add(window)
    }

    fn begin(&self) -> Body {
        Body::TransferBegin {
            id: self.id,
            frame: self.frame,
            total_bytes: self.total,
            chunk_bytes: self.chunk as u32,
            state_digest: self.state_digest,
        }
    }
}
