//! Level refresh (issue 22): the primary re-sends the newest level it emitted of each key
//! every `outputs.level_refresh_ms`, with the same id `(frame, index)`. A sink that has
//! it drops the copy as a duplicate; one that lost it on the way applies it. So a lost
//! level heals within one period without acknowledgements.
//!
//! The table holds the newest emitted level per key, sorted by key, at most
//! [`LEVEL_KEYS_MAX`]; a key beyond them is not refreshed (its outputs still go out
//! once). Each entry is due one period after its last copy went out, the program's own
//! emission included: a key whose value changes every period is never re-sent. A tick
//! scans the table once and re-sends at most [`REFRESH_PER_TICK`] due entries; when more
//! are due, the next tick comes `period / REFRESH_SLICES` later, so even a full table
//! falling due at once is re-sent within one more period. A lost level therefore heals
//! one period after it went out, at worst two (more than `REFRESH_PER_TICK` keys due
//! together). Nothing is allocated: the table is a `heapless::Vec`, an entry is copied
//! in place.
//!
//! Only a primary refreshes, but a backup keeps the same table from the committed frames
//! it runs (every level, sent or not): a new primary refreshes at once what the old one
//! sent and the sink may have lost in the crash, the entries due a period after the
//! backup ran their frame. Not during the takeover's burst (its levels are held and
//! collapsed, `outputs.rs`): the table would send the burst's older values first.
//!
//! A state transfer carries the table (since 2026-11-26, transfer content version 2,
//! docs/SYNC-PROTOCOL.md "TransferBegin"): the primary appends its entries, and the
//! levels its takeover's burst still holds, to the snapshot; the joining backup replaces
//! its own table with them (a new history) and goes on from the frames after the
//! snapshot, so a node that joined and later leads re-sends every level the pair emitted.
//! A node that leads from a cold start has no older history to carry: the levels of a
//! history it replaced are not its own and are not re-sent (docs/DECISIONS.md).

use super::{Action, Node, Output};
use crate::app::{App, OutputKind, OutputPayload, OUTPUT_PAYLOAD_MAX};
use crate::time::Instant;

/// Level keys whose newest value is refreshed. With more keys, the first
/// `LEVEL_KEYS_MAX` a primary emitted are refreshed, the others not (their values still go
/// out once, as without refresh): a table that never evicts does not churn.
pub const LEVEL_KEYS_MAX: usize = 256;

/// Ticks a full table's backlog is spread over: the spacing of ticks while more keys are
/// due than one tick re-sends is `period / REFRESH_SLICES`.
pub(super) const REFRESH_SLICES: u32 = 16;

/// The most re-sends one tick (one wake-up) makes: a full table over a period.
pub(super) const REFRESH_PER_TICK: usize = LEVEL_KEYS_MAX.div_ceil(REFRESH_SLICES as usize);

/// Bytes of one level in a transfer: key u16, frame u64, index u8, length u8, then the
/// payload padded with zeros to [`OUTPUT_PAYLOAD_MAX`], little-endian.
const TRANSFER_LEVEL_BYTES: usize = 2 + 8 + 1 + 1 + OUTPUT_PAYLOAD_MAX;

/// The most levels a transfer carries: the table and the levels a takeover's burst holds
/// (`outputs::LEVELS_HELD_MAX`; a key may be in both, the newest wins at the install).
const TRANSFER_LEVELS_MAX: usize = LEVEL_KEYS_MAX + super::outputs::LEVELS_HELD_MAX;

/// The last four bytes of a transfer's snapshot since content version 2 (u32 LE): above
/// every count version 1 ended with (the HMI memory's, at most 256), so a node that reads
/// only version 1 rejects the transfer (`transfer_rejected`) rather than misread it; the
/// low half is the version.
pub(super) const TRANSFER_CONTENT_V2: u32 = 0xFFFF_0002;

/// The most bytes the levels add to a transfer's snapshot: every entry, their count (u16)
/// and the version mark.
pub(super) const TRANSFER_LEVELS_BYTES_MAX: usize = TRANSFER_LEVELS_MAX * TRANSFER_LEVEL_BYTES + 2 + 4;

/// Writes `levels` into `out` as a transfer carries them (entries, their count u16 LE, the
/// version mark u32 LE); the bytes written. At most [`TRANSFER_LEVELS_MAX`] entries go:
/// the caller passes no more. `out` is at least [`TRANSFER_LEVELS_BYTES_MAX`] long.
fn encode_levels<'a>(levels: impl Iterator<Item = &'a Output>, out: &mut [u8]) -> usize {
    let mut at = 0;
    let mut count: u16 = 0;
    for output in levels.take(TRANSFER_LEVELS_MAX) {
        let Some(slot) = out.get_mut(at..at + TRANSFER_LEVEL_BYTES) else {
            break;
        };
        let payload = output.payload.as_slice();
        slot.fill(0);
        slot[0..2].copy_from_slice(&output.kind.level_key().unwrap_or(0).to_le_bytes());
        slot[2..10].copy_from_slice(&output.frame.to_le_bytes());
        slot[10] = output.index;
        slot[11] = payload.len() as u8;
        slot[12..12 + payload.len()].copy_from_slice(payload);
        at += TRANSFER_LEVEL_BYTES;
        count += 1;
    }
    if let Some(slot) = out.get_mut(at..at + 6) {
        slot[0..2].copy_from_slice(&count.to_le_bytes());
        slot[2..6].copy_from_slice(&TRANSFER_CONTENT_V2.to_le_bytes());
        at += 6;
    }
    at
}

/// Splits a received snapshot into what comes before the levels (the program's bytes and
/// the HMI memory: their length) and the levels' entries. A snapshot of content version 1
/// (no mark at its end) has no levels: all of it comes before. `None` when the levels do
/// not fit (a count above [`TRANSFER_LEVELS_MAX`], more bytes than there are, a length
/// above [`OUTPUT_PAYLOAD_MAX`]). Never panics.
pub(super) fn split_levels(snapshot: &[u8]) -> Option<(usize, &[u8])> {
    let Some(mark_at) = snapshot.len().checked_sub(4) else {
        return Some((snapshot.len(), &[]));
    };
    if u32::from_le_bytes(snapshot[mark_at..].try_into().ok()?) != TRANSFER_CONTENT_V2 {
        return Some((snapshot.len(), &[]));
    }
    let count_at = mark_at.checked_sub(2)?;
    let count = usize::from(u16::from_le_bytes([snapshot[count_at], snapshot[count_at + 1]]));
    if count > TRANSFER_LEVELS_MAX {
        return None;
    }
    let start = count_at.checked_sub(count * TRANSFER_LEVEL_BYTES)?;
    let levels = &snapshot[start..count_at];
    if levels
        .chunks_exact(TRANSFER_LEVEL_BYTES)
        .any(|entry| usize::from(entry[11]) > OUTPUT_PAYLOAD_MAX)
    {
        return None;
    }
    Some((start, levels))
}

/// The level of one entry as [`split_levels`] cut it (its length checked there).
fn transfer_level(entry: &[u8]) -> Output {
    let len = usize::from(entry[11]).min(OUTPUT_PAYLOAD_MAX);
    Output {
        // A refresh sends it under the epoch the node then leads.
        epoch: 0,
        frame: u64::from_le_bytes(entry[2..10].try_into().unwrap_or([0; 8])),
        index: entry[10],
        kind: OutputKind::Level {
            key: u16::from_le_bytes([entry[0], entry[1]]),
        },
        payload: OutputPayload::from_slice(&entry[12..12 + len]).unwrap_or_default(),
    }
}

/// The refresh's state on a primary.
#[derive(Debug, Default)]
pub(super) struct LevelRefresh {
    /// The newest emitted level of each key, sorted by key, and when it is due again.
    table: heapless::Vec<(Output, Instant), LEVEL_KEYS_MAX>,
    /// The next tick (`None`: empty table).
    next: Option<Instant>,
}

impl LevelRefresh {
    /// Forgets every entry: the node no longer leads.
    pub(super) fn clear(&mut self) {
        self.table.clear();
        self.next = None;
    }

    /// Keys in the table.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.table.len()
    }
}

impl<A: App> Node<A> {
    /// Primary, taking a snapshot: appends the levels to carry to `snapshot_buf` at `at`
    /// (the table's, then those the takeover's burst holds); the bytes written.
    pub(super) fn refresh_encode(&mut self, at: usize) -> usize {
        let table = self.refresh.table.iter().map(|(output, _)| output);
        encode_levels(table.chain(self.levels_held.iter()), &mut self.snapshot_buf[at..])
    }

    /// Backup, installing a transfer: its table becomes the primary's, each level due a
    /// period from now (`levels` as [`split_levels`] cut them, at `start` in the snapshot
    /// buffer). At most [`TRANSFER_LEVELS_MAX`] notes.
    pub(super) fn refresh_install(&mut self, start: usize, levels: usize) {
        self.refresh.clear();
        for i in 0..levels / TRANSFER_LEVEL_BYTES {
            let at = start + i * TRANSFER_LEVEL_BYTES;
            let output = transfer_level(&self.snapshot_buf[at..at + TRANSFER_LEVEL_BYTES]);
            self.refresh_note(&output);
        }
    }

    fn refresh_period(&self) -> Option<core::time::Duration> {
        (self.config.level_refresh_ms != 0).then(|| core::time::Duration::from_millis(self.config.level_refresh_ms))
    }

    /// Records an output about to be emitted: a level replaces its key's entry unless
    /// that one is newer (an older value never goes out after a newer one), and is due a
    /// period from now. At most `log2(LEVEL_KEYS_MAX)` comparisons, plus a shift of the
    /// table for a new key.
    pub(super) fn refresh_note(&mut self, output: &Output) {
        let Some(key) = output.kind.level_key() else {
            return;
        };
        let Some(period) = self.refresh_period() else {
            return;
        };
        let due = self.now + period;
        let r = &mut self.refresh;
        match r
            .table
            .binary_search_by_key(&key, |(o, _)| o.kind.level_key().unwrap_or(0))
        {
            Ok(at) => {
                let (held, held_due) = &mut r.table[at];
                if (output.frame, output.index) >= (held.frame, held.index) {
                    held.clone_from(output);
                    *held_due = due;
                }
            }
            Err(at) => {
                // Full: the key is not refreshed (see `LEVEL_KEYS_MAX`).
                let _ = r.table.insert(at, (output.clone(), due));
            }
        }
        r.next = Some(r.next.map_or(due, |next| next.min(due)));
    }

    /// When the next refresh tick is due (`None`: off, not primary, or nothing held).
    pub(super) fn refresh_deadline(&self) -> Option<Instant> {
        self.refresh_period()?;
        // Only a primary that may emit, outside a takeover's burst and a switchover (a
        // released primary no longer leads).
        let leads = self.role == super::Role::Primary
            && self.epochs.current_is_led()
            && self.epochs.current_durable()
            && self.switchover == super::Switchover::Idle;
        if !leads || self.collapse_to != 0 {
            return None;
        }
        self.refresh.next
    }

    /// Re-sends the due entries once the tick's deadline has come: at most
    /// [`REFRESH_PER_TICK`], fewer when the action queue lacks room; one scan of the
    /// table. The next tick is the earliest due entry, or a slice of the period from now
    /// when some due entries had to wait.
    pub(super) fn refresh_timeout(&mut self) {
        let Some(deadline) = self.refresh_deadline() else {
            return;
        };
        let Some(period) = self.refresh_period() else {
            return;
        };
        if self.now < deadline {
            return;
        }
        let now = self.now;
        let mut sent = 0;
        let mut waiting = false;
        let mut next: Option<Instant> = None;
        for at in 0..self.refresh.table.len() {
            let due = self.refresh.table[at].1;
            if due <= now {
                if sent < REFRESH_PER_TICK && self.room_for(1) {
                    let mut output = self.refresh.table[at].0.clone();
                    output.epoch = self.epochs.current().0;
                    sent += 1;
                    // `push` notes the copy: the entry is due a period from now.
                    self.push(Action::Emit(output));
                } else {
                    waiting = true;
                }
            }
            let due = self.refresh.table[at].1;
            next = Some(next.map_or(due, |next: Instant| next.min(due)));
        }
        if waiting {
            next = Some(now + period / REFRESH_SLICES);
        }
        self.refresh.next = next;
    }
}

#[cfg(test)]
mod tests {
    use super::{
        encode_levels, split_levels, transfer_level, LEVEL_KEYS_MAX, REFRESH_PER_TICK, TRANSFER_CONTENT_V2,
        TRANSFER_LEVELS_BYTES_MAX, TRANSFER_LEVELS_MAX, TRANSFER_LEVEL_BYTES,
    };
    use crate::app::{App, Frame, Outbox, OutputKind, OutputPayload, SnapshotError, OUTPUT_PAYLOAD_MAX};
    use crate::node::Output;
    use crate::node::{Role, SyncState};
    use crate::testing::Pair;
    use crate::time::Instant;
    use crate::Config;
    use core::time::Duration;
    use std::collections::BTreeMap;
    use std::vec::Vec;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A program that emits levels rarely, as a tag that seldom changes: in every frame
    /// `n` with `n % EVERY` in `0..burst`, the levels of keys `(n % EVERY) * 16 + j` for
    /// `j` in `0..per_frame`, the payload the key and the frame.
    #[derive(Debug, Clone)]
    struct RareLevels {
        per_frame: u16,
        burst: u64,
    }

    impl RareLevels {
        const EVERY: u64 = 2000;
    }

    impl App for RareLevels {
        fn step(&mut self, frame: Frame<'_>, outbox: &mut Outbox) {
            let phase = frame.number % Self::EVERY;
            if phase < self.burst {
                for j in 0..self.per_frame {
                    let key = phase as u16 * 16 + j;
                    let mut payload = [0u8; 10];
                    payload[..2].copy_from_slice(&key.to_le_bytes());
                    payload[2..].copy_from_slice(&frame.number.to_le_bytes());
                    let _ = outbox.push_level(key, &payload);
                }
            }
        }

        fn snapshot(&self, _buf: &mut [u8]) -> Result<usize, SnapshotError> {
            Ok(0)
        }

        fn restore(&mut self, _bytes: &[u8]) -> Result<(), SnapshotError> {
            Ok(())
        }

        fn digest(&self) -> u64 {
            0
        }
    }

    fn await_role(p: &mut Pair<RareLevels>, i: usize, role: Role, sync: SyncState) -> bool {
        let until = p.now + ms(3000);
        p.run_until(until, |p| {
            p.nodes[i]
                .as_ref()
                .is_some_and(|n| n.role() == role && n.status().sync == sync)
        })
    }

    /// A pair (node 0 primary, node 1 in sync) with `level_refresh_ms = refresh_ms`, run
    /// up to just before a frame whose phase is 0: the returned frame, the first with
    /// levels from now on. Every copy emitted is logged.
    fn running(refresh_ms: u64, per_frame: u16, burst: u64, paired: bool) -> (Pair<RareLevels>, u64) {
        let config = Config {
            level_refresh_ms: refresh_ms,
            ..Config::default()
        };
        let mut p = Pair::of(
            3,
            config,
            move |_| RareLevels { per_frame, burst },
            |n| n.to_le_bytes().to_vec(),
        );
        p.start(0);
        assert!(await_role(&mut p, 0, Role::Primary, SyncState::Alone));
        if paired {
            p.start(1);
            assert!(await_role(&mut p, 1, Role::Backup, SyncState::InSync));
        }
        let first = (p.frame_next / RareLevels::EVERY + 1) * RareLevels::EVERY;
        let until = p.now + ms(3000);
        assert!(p.run_until(until, |p| p.frame_next + 5 >= first));
        p.emit_log = Some(Vec::new());
        (p, first)
    }

    /// When each copy of `id` went out, by which node.
    fn copies(p: &Pair<RareLevels>, id: (u64, u8)) -> Vec<(Instant, usize)> {
        let log = p.emit_log.as_ref().expect("logging");
        log.iter()
            .filter(|&&(_, _, frame, index)| (frame, index) == id)
            .map(|&(at, node, _, _)| (at, node))
            .collect()
    }

    /// Issue 22: the one value of a key that will not change for 2000 frames is lost on
    /// the way to the sink. The primary re-sends it, same id, one period later (not
    /// before: its due is a period after its last copy), the sink applies that copy and
    /// drops the next ones as duplicates. Before the refresh, the sink never got it.
    #[test]
    fn primary_level_lost_on_the_way_resent_within_one_period() {
        let (mut p, first) = running(100, 1, 1, true);
        let id = (first, 0);
        p.outputs_lost.insert(id, 1);
        let until = p.now + ms(1000);
        assert!(p.run_until(until, |p| !copies(p, id).is_empty()));
        let (sent_at, _) = copies(&p, id)[0];
        assert!(!p.sink.accepted.contains_key(&id), "the first copy is lost");
        assert!(p.run_until(sent_at + ms(100), |p| p.sink.accepted.contains_key(&id)));
        assert_eq!(
            copies(&p, id).len(),
            2,
            "one re-send, a period after the first: {:?}",
            copies(&p, id)
        );
        assert_eq!(copies(&p, id)[1], (sent_at + ms(100), 0));
        p.run_for(ms(350));
        let all = copies(&p, id);
        assert_eq!(all.len(), 5, "one a period: {all:?}");
        assert!(
            all.iter().all(|&(_, node)| node == 0),
            "only the primary sends: {all:?}"
        );
        assert_eq!(p.sink.duplicates, 3, "the copies after the first received are dropped");
        assert_eq!((p.sink.conflicts, p.sink.superseded), (0, 0));
    }

    /// With the option off (the default), a lost level stays lost: one copy, no other.
    #[test]
    fn primary_refresh_off_level_lost_not_resent() {
        let (mut p, first) = running(0, 1, 1, true);
        let id = (first, 0);
        p.outputs_lost.insert(id, 1);
        p.run_for(ms(1000));
        assert_eq!(copies(&p, id).len(), 1);
        assert!(!p.sink.accepted.contains_key(&id));
        assert_eq!(p.sink.duplicates, 0);
    }

    /// Issue 22: the primary crashes just after its level was lost on the way; the new
    /// primary, whose backup table followed the committed frames, re-sends it (the old
    /// primary reported it sent, so no takeover burst carries it).
    #[test]
    fn backup_primary_dies_after_a_level_was_lost_new_primary_resends_it() {
        let (mut p, first) = running(100, 1, 1, true);
        let id = (first, 0);
        p.outputs_lost.insert(id, 1);
        let until = p.now + ms(1000);
        assert!(p.run_until(until, |p| !copies(p, id).is_empty()));
        // Its commit reaches the backup before the crash.
        p.run_for(ms(5));
        p.crash(0);
        assert!(await_role(&mut p, 1, Role::Primary, SyncState::Alone));
        let took_over = p.now;
        assert!(p.run_until(took_over + ms(100), |p| p.sink.accepted.contains_key(&id)));
        assert!(copies(&p, id).iter().any(|&(_, node)| node == 1));
        assert_eq!((p.sink.conflicts, p.sink.superseded), (0, 0));
    }

    /// Issue 22, `level_lost_transfer`: the level is lost on the way while the primary
    /// runs alone; a backup joins by a state transfer after its frame, and the primary
    /// crashes. The new primary knows the level from the transfer and re-sends it. Before
    /// the transfer carried the table, the install cleared it and the level stayed lost.
    #[test]
    fn backup_joined_by_transfer_after_a_level_was_lost_resends_it_when_it_leads() {
        let (mut p, first) = running(100, 1, 1, false);
        let id = (first, 0);
        p.outputs_lost.insert(id, 1);
        let until = p.now + ms(1000);
        assert!(p.run_until(until, |p| !copies(p, id).is_empty()));
        // The refresh's copy would heal it before the crash: lose those too.
        p.outputs_lost.insert(id, u32::MAX);
        p.start(1);
        assert!(await_role(&mut p, 1, Role::Backup, SyncState::InSync));
        assert_eq!(p.node(1).refresh.len(), 1, "the transfer carried the table");
        p.crash(0);
        p.outputs_lost.remove(&id);
        assert!(await_role(&mut p, 1, Role::Primary, SyncState::Alone));
        let took_over = p.now;
        assert!(p.run_until(took_over + ms(100), |p| p.sink.accepted.contains_key(&id)));
        assert!(copies(&p, id).iter().any(|&(_, node)| node == 1));
        assert_eq!((p.sink.conflicts, p.sink.superseded), (0, 0));
    }

    /// Each level a transfer carries is installed from its own entry: two levels lost on
    /// the way while the primary runs alone, a backup joins by a transfer after their
    /// frame, the primary crashes, and the new primary re-sends both, each with its own
    /// value. (Mutant `refresh.rs:173:32` `*` → `/` in `refresh_install`: every entry was
    /// read at the first one's place, the table held the first key only, and the second
    /// level stayed lost. Schemata run of 64df4f8, 2026-11-27.)
    #[test]
    fn backup_joined_by_transfer_after_two_levels_were_lost_resends_both_when_it_leads() {
        let (mut p, first) = running(100, 2, 1, false);
        let ids = [(first, 0), (first, 1)];
        for id in ids {
            p.outputs_lost.insert(id, 1);
        }
        let until = p.now + ms(1000);
        assert!(p.run_until(until, |p| ids.iter().all(|&id| !copies(p, id).is_empty())));
        // The refresh's copies would heal them before the crash: lose those too.
        for id in ids {
            p.outputs_lost.insert(id, u32::MAX);
        }
        p.start(1);
        assert!(await_role(&mut p, 1, Role::Backup, SyncState::InSync));
        assert_eq!(p.node(1).refresh.len(), 2, "the transfer carried both levels");
        p.crash(0);
        for id in ids {
            p.outputs_lost.remove(&id);
        }
        assert!(await_role(&mut p, 1, Role::Primary, SyncState::Alone));
        let took_over = p.now;
        assert!(p.run_until(took_over + ms(100), |p| ids
            .iter()
            .all(|id| p.sink.accepted.contains_key(id))));
        for (j, id) in ids.iter().enumerate() {
            let mut payload = std::vec![0u8; 10];
            payload[..2].copy_from_slice(&(j as u16).to_le_bytes());
            payload[2..].copy_from_slice(&first.to_le_bytes());
            assert_eq!(p.sink.accepted[id].1, payload, "the value of key {j}");
        }
        assert_eq!((p.sink.conflicts, p.sink.superseded), (0, 0));
    }

    /// A backup that joins again by a transfer takes the primary's table for its own: a
    /// level it held of the history it gives up (a key the primary's table does not have)
    /// is forgotten, not refreshed to the plant once this node leads. (Mutant
    /// `refresh.rs:148:9` `LevelRefresh::clear` → `()`: the old table's entries stayed
    /// beside the primary's, a value of a discarded history to be re-sent every period.
    /// Schemata run of 64df4f8, 2026-11-27.)
    #[test]
    fn backup_rejoining_by_transfer_forgets_the_levels_of_its_old_history() {
        let (mut p, _) = running(100, 1, 1, true);
        let keys = p.node(1).refresh.len();
        let stale = Output {
            epoch: 1,
            frame: 1,
            index: 0,
            kind: OutputKind::Level { key: 999 },
            payload: OutputPayload::from_slice(b"old").unwrap(),
        };
        let node = p.nodes[1].as_mut().unwrap();
        node.refresh_note(&stale);
        assert_eq!(node.refresh.len(), keys + 1);
        node.start_join(Some(crate::node::ResyncCause::Divergence));
        p.drain(1);
        assert!(await_role(&mut p, 1, Role::Backup, SyncState::InSync));
        assert_eq!(p.node(1).refresh.len(), keys, "a level of the old history kept");
    }

    /// The levels of a transfer round trip, after the program's bytes and the HMI memory;
    /// a snapshot of content version 1 (no mark) has none; a damaged count is refused.
    #[test]
    fn transfer_levels_round_trip_and_version_1_has_none() {
        let level = |key: u16, frame: u64, payload: &[u8]| Output {
            epoch: 7,
            frame,
            index: 2,
            kind: OutputKind::Level { key },
            payload: OutputPayload::from_slice(payload).unwrap(),
        };
        let levels = [
            level(3, 100, b"abc"),
            level(9, 120, &[0xEE; OUTPUT_PAYLOAD_MAX]),
            level(4, 5, b""),
        ];
        let mut buf = std::vec![0x11u8; 10 + TRANSFER_LEVELS_BYTES_MAX];
        let n = encode_levels(levels.iter(), &mut buf[10..]);
        assert_eq!(n, 3 * TRANSFER_LEVEL_BYTES + 6);
        let (before, bytes) = split_levels(&buf[..10 + n]).unwrap();
        assert_eq!(before, 10);
        let back: Vec<Output> = bytes.chunks_exact(TRANSFER_LEVEL_BYTES).map(transfer_level).collect();
        let expected: Vec<Output> = levels.iter().map(|o| Output { epoch: 0, ..o.clone() }).collect();
        assert_eq!(back, expected);
        // Version 1: the HMI memory's count (0) ends it.
        let v1 = [1u8, 2, 3, 0, 0, 0, 0];
        assert_eq!(split_levels(&v1), Some((7, &[][..])));
        assert_eq!(split_levels(&[]), Some((0, &[][..])));
        // A count above the bound, or a payload length above 64, is refused.
        let mut bad = buf[..10 + n].to_vec();
        let count_at = bad.len() - 6;
        bad[count_at..count_at + 2].copy_from_slice(&u16::MAX.to_le_bytes());
        assert_eq!(split_levels(&bad), None);
        let mut bad = buf[..10 + n].to_vec();
        bad[10 + 11] = OUTPUT_PAYLOAD_MAX as u8 + 1;
        assert_eq!(split_levels(&bad), None);
    }

    /// A transfer carries at most `TRANSFER_LEVELS_MAX` levels: a full table (every
    /// refreshed key and every level a takeover's burst holds) is taken whole, one more is
    /// refused. (Mutants `refresh.rs:107:14` `>` → `>=` and `>` → `==`: a full table was
    /// refused, the transfer failed and was asked again with the same levels, a backup
    /// that could not join while they were held; `==` also took a count above the
    /// bound. Schemata run of 64df4f8, 2026-11-27.)
    #[test]
    fn transfer_levels_full_table_taken_one_more_refused() {
        let level = |key: u16| Output {
            epoch: 7,
            frame: u64::from(key),
            index: 0,
            kind: OutputKind::Level { key },
            payload: OutputPayload::from_slice(b"v").unwrap(),
        };
        let levels: Vec<Output> = (0..=TRANSFER_LEVELS_MAX as u16).map(level).collect();
        let mut buf = std::vec![0u8; 10 + TRANSFER_LEVELS_BYTES_MAX];
        let n = encode_levels(levels.iter(), &mut buf[10..]);
        assert_eq!(n, TRANSFER_LEVELS_BYTES_MAX, "no more than the bound written");
        let (before, bytes) = split_levels(&buf[..10 + n]).expect("a full table taken");
        assert_eq!((before, bytes.len()), (10, TRANSFER_LEVELS_MAX * TRANSFER_LEVEL_BYTES));
        // One more entry than the bound, every byte of it there.
        let mut over = std::vec![0u8; 10 + TRANSFER_LEVEL_BYTES];
        over.extend_from_slice(&buf[10..10 + n]);
        let count_at = over.len() - 6;
        let count = (TRANSFER_LEVELS_MAX as u16 + 1).to_le_bytes();
        over[count_at..count_at + 2].copy_from_slice(&count);
        assert_eq!(split_levels(&over), None);
    }

    proptest::proptest! {
        /// Arbitrary bytes never panic the split, and what it returns is well cut.
        #[test]
        fn transfer_levels_split_arbitrary_bytes_never_panics(
            mut bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400),
            marked in proptest::prelude::any::<bool>(),
        ) {
            if marked && bytes.len() >= 4 {
                let at = bytes.len() - 4;
                bytes[at..].copy_from_slice(&TRANSFER_CONTENT_V2.to_le_bytes());
            }
            if let Some((before, levels)) = split_levels(&bytes) {
                proptest::prop_assert!(before + levels.len() <= bytes.len());
                proptest::prop_assert_eq!(levels.len() % TRANSFER_LEVEL_BYTES, 0);
                for entry in levels.chunks_exact(TRANSFER_LEVEL_BYTES) {
                    proptest::prop_assert!(transfer_level(entry).payload.len() <= OUTPUT_PAYLOAD_MAX);
                }
            }
        }
    }

    /// The bounds: 320 keys emitted (16 a frame for 20 frames), the table keeps the first
    /// 256 and only those are refreshed; a primary frozen past their due re-sends at most
    /// `REFRESH_PER_TICK` a wake-up, and all of them within one period of waking.
    #[test]
    fn primary_more_keys_than_the_table_refreshes_the_first_256_at_most_16_a_wakeup() {
        let period = ms(160);
        let (mut p, first) = running(160, 16, 20, false);
        let until = p.now + ms(1000);
        assert!(p.run_until(until, |p| p.frame_next > first + 20));
        p.run_for(ms(2));
        assert_eq!(p.node(0).refresh.len(), LEVEL_KEYS_MAX);
        p.source_on = false;
        p.emit_log = Some(Vec::new());
        p.freeze(0, ms(400));
        let woke = p.now + ms(400);
        // Up to just before the first re-sends come due again.
        p.run_until(woke + period - ms(1), |_| false);
        let log = p.emit_log.as_ref().expect("logging");
        let mut per_wakeup: BTreeMap<Instant, usize> = BTreeMap::new();
        let mut per_key: BTreeMap<(u64, u8), usize> = BTreeMap::new();
        for &(at, _, frame, index) in log {
            *per_wakeup.entry(at).or_default() += 1;
            *per_key.entry((frame, index)).or_default() += 1;
        }
        assert!(per_wakeup.values().all(|&n| n <= REFRESH_PER_TICK), "{per_wakeup:?}");
        assert_eq!(per_wakeup.len(), LEVEL_KEYS_MAX / REFRESH_PER_TICK, "{per_wakeup:?}");
        assert!(per_wakeup.keys().all(|&at| at >= woke && at < woke + period));
        // The first 256 keys are those of the first 16 frames; the last 4 frames' none.
        let expected: Vec<(u64, u8)> = (first..first + 16).flat_map(|f| (0..16).map(move |i| (f, i))).collect();
        assert_eq!(per_key.keys().copied().collect::<Vec<_>>(), expected);
        assert!(
            per_key.values().all(|&n| n == 1),
            "each once in the period: {per_key:?}"
        );
    }
}
