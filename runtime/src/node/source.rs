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
//! `SOURCE_MAP_EVERY_FRAMES` frames. Late frames of the session just left are stale. The backup places frames by the mapping it last
//! heard; a frame it cannot place yet is fetched from the primary like any frame it
//! missed, and the commits (frame number and input digest) keep both nodes on the same
//! frames whatever the mapping a backup holds. A node that has heard of no session yet
//! maps the first one it sees as is (`pair = n`).

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
        // Both at most FRAME_MAX (checked on the way in): no overflow.
        let pair_first = self.frame_last_run.max(self.frame_highest_received) + 1;
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
        if let Some(old) = self.source.filter(|m| m.session != map.session) {
            self.source_restarts += 1;
            self.source_previous = Some(old.session);
            self.source_notice(map);
        }
        self.source = Some(map);
    }
}
