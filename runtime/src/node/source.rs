//! Source sessions: how the I/O source's numbering maps to the pair's frames.
//!
//! A source that starts numbering again (a restart, back to 1) says so with a new source
//! session in its frames. The pair's frame numbers must keep increasing whatever the
//! source does (outputs are identified by their frame, and a sink drops an id it has
//! seen), so each session's numbers are mapped: `pair = pair_first + (n − source_first)`.
//! The primary decides the mapping — a frame of a session other than the current one, once
//! the current one has been silent for `input_silence_ms`, is a restart, mapped to the
//! frame after every frame in hand — and announces it to the
//! backup (`Body::SourceMap`) at once, with its commits for a few frames after, and every
//! `SOURCE_MAP_EVERY_FRAMES` frames; and with every state transfer it begins (a node that
//! starts following it holds its mapping before it can lead). Late frames of the session
//! just left are stale. The backup places frames by the mapping it last heard; a frame it
//! cannot place yet is fetched from the primary like any frame it missed, and the commits
//! (frame number and input digest) keep both nodes on the same frames whatever the
//! mapping a backup holds. A node that takes a mapping drops the payloads it placed by
//! another where the two differ: it would run them once it led. A node that has heard of
//! no session yet maps the first one it sees as is (`pair = n`).

use super::{Node, Role, FRAME_MAX};
use crate::app::App;
use crate::wire::{Body, Header, WireRole};

/// Frames after a restart whose commits go with the new mapping.
const SOURCE_MAP_FRAMES: u64 = 8;
/// The primary repeats its mapping every this many frames: for a backup that joined
/// later, or lost the announcement and every repetition.
pub(super) const SOURCE_MAP_EVERY_FRAMES: u64 = 256;

/// The mapping of one source session's numbers to the pair's frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceMap {
    /// The source session.
    pub session: u16,
    /// The first source frame number of the session the pair has a frame for.
    pub source_first: u64,
    /// The pair's frame for `source_first`.
    pub pair_first: u64,
}

impl SourceMap {
    /// The pair's frame for source frame `number`; `None` below the session's first
    /// frame (stale). Saturates at `u64::MAX`, which is beyond `FRAME_MAX` and refused.
    pub fn pair_frame(&self, number: u64) -> Option<u64> {
        Some(self.pair_first.saturating_add(number.checked_sub(self.source_first)?))
    }
}

impl<A: App> Node<A> {
    /// The pair's frame for source frame `number` of `session`, or `None` when this node
    /// cannot place it (counted): a backup does not know the primary's mapping yet.
    pub(super) fn source_frame(&mut self, session: u16, number: u64) -> Option<u64> {
        let map = match self.source {
            Some(map) if map.session == session => map,
            None => {
                let map = SourceMap {
                    session,
                    source_first: 1,
                    pair_first: 1,
                };
                self.source = Some(map);
                map
            }
            // The session the source left: its late frames are stale, not a restart back
            // (that would run an old input as a new frame).
            Some(_) if self.source_previous == Some(session) => return Some(0),
            // Another session while the current one is live is not the source restarting
            // (a restarted source's old session falls silent first): one forged or stray
            // frame of any session must not re-map the pair's frames and leave every real
            // frame stale. Counted; followed once the current session is silent.
            Some(_) if self.role == Role::Primary && self.source_live() => {
                self.rejections.frame_other_session += 1;
                return None;
            }
            Some(_) if self.role == Role::Primary => {
                self.source_heard_at = Some(self.now);
                self.source_restarted(session, number)
            }
            Some(_) => {
                self.rejections.frame_other_session += 1;
                // Frames come: the input path is alive. Without this a restarted source
                // that reached only the backup was never handed over to (both inputs
                // looked silent).
                self.input_heard_at = Some(self.now);
                self.input_unplaced = true;
                return None;
            }
        };
        // Below the session's first frame: stale, as any frame older than the last run.
        Some(map.pair_frame(number).unwrap_or(0))
    }

    /// A frame of the current source session was accepted (placed, not stale) within
    /// `input_silence_ms`.
    fn source_live(&self) -> bool {
        let silence = core::time::Duration::from_millis(self.config.input_silence_ms);
        self.source_heard_at
            .is_some_and(|at| self.now.saturating_since(at) < silence)
    }

    /// Primary: a frame of a new session. Its numbers go on after every frame in hand.
    fn source_restarted(&mut self, session: u16, number: u64) -> SourceMap {
        // After every frame in hand and every frame a predecessor committed (a new
        // primary that heard commits up to there, some lost, not all run yet): mapped
        // onto them, the new session's inputs ran at frames the predecessor had run with
        // others, and their outputs met the predecessor's at the sink as conflicts (DST
        // seed 9714: 14 frames). Those frames are decided as lost (`CommitLost`) instead.
        // Each at most FRAME_MAX (checked on the way in): no overflow.
        // And after every frame a peer said it ran (in reach): the other side of a split
        // brain, fenced since, ran frames this node never heard of, and the sink has
        // their outputs (DST seed 15513: mapped at 304 beside a peer that had run 472,
        // the new outputs were duplicates at the sink for 168 frames).
        let pair_first = self
            .frame_last_run
            .max(self.frame_highest_received)
            .max(self.commit_highest)
            .max(self.peer_frame_highest)
            + 1;
        let map = SourceMap {
            session,
            source_first: number,
            pair_first,
        };
        self.source_previous = self.source.map(|m| m.session);
        self.source = Some(map);
        self.source_restarts += 1;
        self.source_announce_until = pair_first + SOURCE_MAP_FRAMES;
        self.source_announce(map);
        self.source_notice(map);
        map
    }

    fn source_notice(&mut self, map: SourceMap) {
        self.notice(super::Notice::SourceRestarted {
            session: map.session,
            source_first: map.source_first,
            pair_first: map.pair_first,
        });
    }

    fn source_announce(&mut self, map: SourceMap) {
        self.send_all(Body::SourceMap {
            session: map.session,
            source_first: map.source_first,
            pair_first: map.pair_first,
        });
    }

    /// Primary, with each commit: the mapping for a few frames after a restart, and every
    /// `SOURCE_MAP_EVERY_FRAMES` frames.
    pub(super) fn source_announce_with_commit(&mut self, frame: u64) {
        let Some(map) = self.source else {
            return;
        };
        if frame <= self.source_announce_until || frame % SOURCE_MAP_EVERY_FRAMES == 0 {
            self.source_announce(map);
        }
    }

    /// Primary, with the beginning of a state transfer of the state after `frame`: the
    /// mapping, and again with the commits of the next few frames. A backup that starts
    /// following this primary may hold another map of the session (its own, decided as
    /// primary on its side of a split brain) or none of it, and would otherwise learn
    /// this one only at the next multiple of `SOURCE_MAP_EVERY_FRAMES`: leading before
    /// that, it placed the source's frames by its own map (docs/DST.md, "Source
    /// restarts").
    pub(super) fn source_announce_with_transfer(&mut self, frame: u64) {
        let Some(map) = self.source else {
            return;
        };
        // At most FRAME_MAX + 8: no overflow.
        self.source_announce_until = self.source_announce_until.max(frame + SOURCE_MAP_FRAMES);
        self.source_announce(map);
    }

    /// Backup (or starting node): the primary's mapping.
    pub(super) fn on_source_map(&mut self, header: &Header, map: SourceMap) {
        if self.role == Role::Primary || header.role != WireRole::Primary {
            return;
        }
        if self.role == Role::Backup && header.epoch != self.epochs.current().0 {
            return;
        }
        if map.source_first == 0 || map.pair_first == 0 || map.pair_first > FRAME_MAX {
            self.rejections.malformed += 1;
            return;
        }
        if let Some(from) = replaced_from(self.source, map) {
            self.source_forget_from(from);
        }
        if let Some(old) = self.source.filter(|m| m.session != map.session) {
            self.source_restarts += 1;
            // The session left is stale from now on, but where the primary maps the one
            // this node left before: a primary whose input did not see the restart this
            // node followed (its input dead over it, a split brain) goes back to the
            // session this node holds as left. The session this node held then is the
            // source's newest, not one it left: marked stale, this node dropped its every
            // frame for good, and led on no input once the primary followed it (DST seed
            // 3635: both nodes, each in turn, the pair's output stalled).
            self.source_previous = (self.source_previous != Some(map.session)).then_some(old.session);
            self.source_notice(map);
        }
        self.source = Some(map);
    }

    /// Drops the payloads this node holds from frame `from` on: it placed them by a map
    /// it no longer holds (a frame of the session left, at a pair frame the new session
    /// now maps to; or a frame of the same session that the primary maps elsewhere).
    /// Kept, they ran once this node led: an input of the session left as a new frame,
    /// or an input out of the source's order. Those of frames it ran go too: a node that
    /// led on its side of a split brain takes its primary's map with the state transfer
    /// that sends it back below them (DST seed 538). Commits stay (they are the
    /// primary's): the frames they name are fetched, or taken again from the source
    /// under the new map. The frames in hand go back with them, so that a takeover does
    /// not skip the new session's frames as a gap below the dropped ones. One pass over
    /// the ring, only when the map changes.
    fn source_forget_from(&mut self, from: u64) {
        self.ring.forget_payloads_from(from);
        // `from` is a map's first pair frame, at least 1 (`on_source_map`).
        self.frame_highest_received = self.frame_highest_received.min(from.saturating_sub(1));
    }
}

/// The first pair frame whose payload, placed by the map `held`, is no longer placed by
/// `map`; `None` when `map` places every frame as `held` did. A new session maps from
/// its first pair frame on; the same session with another offset (two primaries mapped
/// it, each on its side of a split brain) from the lower of the two first pair frames.
fn replaced_from(held: Option<SourceMap>, map: SourceMap) -> Option<u64> {
    let held = held?;
    if held.session != map.session {
        return Some(map.pair_first);
    }
    let offset = |m: SourceMap| m.pair_first.wrapping_sub(m.source_first);
    (offset(held) != offset(map)).then(|| held.pair_first.min(map.pair_first))
}
