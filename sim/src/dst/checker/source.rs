//! Invariants 22 and 23, the I/O source's restarts (issue 21, added 2026-11-27). A
//! source that restarts numbers from 1 again in a new source session; the pair maps each
//! session's numbers to its own frames (`runtime/src/node/source.rs`, docs/PROTOCOL.md
//! "Source sessions"). A plant feels a mistake there at once: a rebooted gateway whose
//! stale inputs run as new frames, whose new outputs reuse ids the sink drops as
//! duplicates, or whose frames the pair skips or stalls on. The DST's source numbered
//! 1, 2, 3 … under session 0 for the whole run before `Fault::SourceRestart`, so every
//! mutant of the mapping passed every seed.
//!
//! 22. **The source's restart is followed.**
//!     - *Inputs in the source's order*: the frames a node incarnation runs, from its
//!       start or the state it last installed, run inputs the source sent in that order,
//!       each once: a later pair frame never runs an input sent before (or as) an earlier
//!       one's. A late frame of the session left run as a new frame, or one input run
//!       at two pair frames, breaks it. Judged on the application's steps (each step's
//!       input digest names the source's frame: the world keys payloads by its count of
//!       frames sent, a fact of the plant, not by the source's number); a payload the
//!       world did not send (a divergence fault's flipped copy) is not judged. No
//!       exception since 2026-11-27 (commit 7c7af88): until then a split brain over the
//!       restart (two primaries' maps of one session) and a backup holding frames of the
//!       session left above its primary's map were counted apart, open findings of the
//!       core (docs/DST.md, "Source restarts").
//!     - *A restart maps after the frames in hand*: a primary's restart (its
//!       `SourceRestarted` notice) maps the new session's first frame above every frame
//!       the node had run or taken from the source before the event (its status), so the
//!       pair's frame numbers, and the outputs' ids, never go back.
//!     - *The backup follows the primary's map*: a backup that takes a `SourceMap` from
//!       the primary of its epoch (or a starting node, from any primary), delivered
//!       genuine and read without a rejection, its role and epoch unchanged by the event,
//!       holds that map after the event.
//!     - *Each restart followed is told*: in every event where a node's source session
//!       changes, it raises one `SourceRestarted` notice naming its new map and counts
//!       one restart more (`source_restarts`); in no other event does it do either.
//! 23. **The map is announced as documented.** A node sends its map (`SourceMap`) once
//!     at each restart it decides and with each state transfer it begins (since
//!     2026-11-27), and with each commit of frame `F` while it has a map, when `F` is at
//!     most 8 frames past that restart's first pair frame or that transfer's state's
//!     frame, or a multiple of 256; and at no other time. A backup that lost the restart's announcement learns
//!     the map from the next one; fewer announcements make it fetch every frame, more
//!     only load the link. Not safety: exit code 11, as liveness.

use super::*;
use twinloop::node::SourceMap;

/// Frames after a restart whose commits carry the map (docs/PROTOCOL.md, "Source
/// sessions"; `SOURCE_MAP_FRAMES` in the core).
pub const SOURCE_MAP_FRAMES: u64 = 8;
/// The map goes with every commit of a multiple of this frame (`SOURCE_MAP_EVERY_FRAMES`).
pub const SOURCE_MAP_EVERY_FRAMES: u64 = 256;

/// What invariants 22 and 23 remember.
#[derive(Debug, Default)]
pub(super) struct SourceWatch {
    /// Each payload the source sent, by digest: its place in the source's sending order
    /// and its source session.
    sent: BTreeMap<u64, (u64, u16)>,
    /// By node: since its incarnation began or it last installed a state, the last frame
    /// it ran on a payload the source sent, and that payload's place.
    last_input: [Option<(u64, u64)>; 2],
    /// By node: the last frame whose commit carries the map after the last restart its
    /// incarnation decided (0: none).
    announce_until: [u64; 2],
}

/// One event of a node, as the world saw it, for invariants 22 and 23.
#[derive(Debug, Clone, Default)]
pub struct SourceEvent {
    /// The node.
    pub node: usize,
    /// It was primary when the event began.
    pub primary_before: bool,
    /// It is primary when the event ends.
    pub primary_after: bool,
    /// Its source map and restarts followed before the event (its status).
    pub source_before: Option<SourceMap>,
    /// As above.
    pub restarts_before: u64,
    /// Its frames in hand before the event: the highest it ran or took from the source.
    pub in_hand_before: u64,
    /// Its source map and restarts followed after the event.
    pub source_after: Option<SourceMap>,
    /// As above.
    pub restarts_after: u64,
    /// The maps of the `SourceRestarted` notices it raised in the event.
    pub notices: Vec<SourceMap>,
    /// The frames it committed in the event, in order (sent or held).
    pub committed: Vec<u64>,
    /// The `SourceMap` messages it sent in the event (one per announcement: link 0's).
    pub announced: u64,
    /// The state transfers it began (or began again) in the event: the count of
    /// `committed` before each, and the frame of its state (link 0's `TransferBegin`s).
    pub transfers: Vec<(usize, u64)>,
    /// A map delivered to it in the event that it must hold after (see the module docs).
    pub map_taken: Option<SourceMap>,
}

impl Checker {
    /// The source sent its `sent`-th frame of the run, of source session `session`, whose
    /// payload has `digest`.
    pub fn on_source_sent(&mut self, sent: u64, session: u16, digest: u64) {
        // A workload whose payloads repeat (the conveyor's, a plant at rest) names no
        // place by a digest sent twice: such inputs are not judged.
        let place = if self.source.sent.contains_key(&digest) {
            (u64::MAX, session)
        } else {
            (sent, session)
        };
        self.source.sent.insert(digest, place);
    }

    /// Node `node` starts (a new incarnation): it has run nothing and decided no restart.
    pub fn on_source_start(&mut self, node: usize) {
        self.source.last_input[node] = None;
        self.source.announce_until[node] = 0;
    }

    /// Node `node` installed a state: the frames it runs next follow that state's.
    pub fn on_source_installed(&mut self, node: usize) {
        self.source.last_input[node] = None;
    }

    /// Invariant 22, inputs in the source's order: node `node`'s steps in one event.
    pub(super) fn check_source_order(&mut self, at: Nanos, node: usize, steps: &[(u64, Step)]) {
        for (_, step) in steps {
            let Some(&(sent, _)) = self.source.sent.get(&step.input_digest).filter(|p| p.0 != u64::MAX) else {
                continue;
            };
            if let Some((frame_before, sent_before)) = self.source.last_input[node] {
                if sent <= sent_before {
                    self.violation(
                        Invariant::SourceFollowed,
                        at,
                        format!(
                            "node {node} ran frame {} on the source's frame #{sent} (in sending order), after frame {frame_before} on #{sent_before}: an input run out of the source's order or twice (a late frame of the session left run as new?)",
                            step.frame
                        ),
                    );
                }
            }
            self.source.last_input[node] = Some((step.frame, sent));
        }
    }

    /// Invariants 22 and 23 on one event of a node.
    pub fn on_source_event(&mut self, at: Nanos, e: &SourceEvent) {
        let node = e.node;
        // A node whose map changed no longer holds the source's frames it placed by the
        // old one at or above where the new one differs (`node/source.rs`): invariant
        // 18's model of its ring forgets them (a takeover skips them as never in hand).
        if let (Some(before), Some(after)) = (e.source_before, e.source_after) {
            if let Some(from) = replaced_from(before, after) {
                self.rings[node].forget_from(from);
            }
        }
        // 22: a restart decided maps after the frames in hand (decided: the node was
        // primary before and after the event; one that stepped down in it took the map).
        let decided = e.primary_before && e.primary_after;
        if decided {
            for map in &e.notices {
                if map.pair_first <= e.in_hand_before {
                    self.violation(
                        Invariant::SourceFollowed,
                        at,
                        format!(
                            "node {node} (primary) mapped source session {} from frame {} to pair frame {}, not above the frames in hand (up to {}): the pair's frames went back",
                            map.session, map.source_first, map.pair_first, e.in_hand_before
                        ),
                    );
                }
                self.source.announce_until[node] = map.pair_first.saturating_add(SOURCE_MAP_FRAMES);
            }
        }
        // 22: the backup follows its primary's map.
        if let Some(map) = e.map_taken {
            if e.source_after != Some(map) {
                self.violation(
                    Invariant::SourceFollowed,
                    at,
                    format!(
                        "node {node} took its primary's source map {map:?} but holds {:?} after: it does not follow the primary's mapping",
                        e.source_after
                    ),
                );
            }
        }
        // 22: each restart followed is told, once.
        let changed = match (e.source_before, e.source_after) {
            (Some(before), Some(after)) => before.session != after.session,
            _ => false,
        };
        let told =
            e.notices.len() == usize::from(changed) && (!changed || e.notices.first() == e.source_after.as_ref());
        let counted = e.restarts_after == e.restarts_before + u64::from(changed);
        if !told || !counted {
            self.violation(
                Invariant::SourceFollowed,
                at,
                format!(
                    "node {node}'s source map went from {:?} to {:?} with notices {:?} and restarts counted {} → {}: each restart followed is told and counted once",
                    e.source_before, e.source_after, e.notices, e.restarts_before, e.restarts_after
                ),
            );
        }
        // 23: the announcements: at each restart decided, at each transfer begun (and
        // with the commits of the 8 frames after the transfer's state), with the commits
        // up to 8 frames past the last of these, and with every 256th.
        let decided = if decided { e.notices.len() as u64 } else { 0 };
        let mut until = self.source.announce_until[node];
        let mut with_commits = 0;
        let mut transfers = 0;
        if e.source_after.is_some() {
            let mut begun = e.transfers.iter().peekable();
            for (i, &frame) in e.committed.iter().chain(core::iter::once(&0)).enumerate() {
                while let Some(&(_, state_frame)) = begun.next_if(|(before, _)| *before == i) {
                    until = until.max(state_frame.saturating_add(SOURCE_MAP_FRAMES));
                    transfers += 1;
                }
                if i < e.committed.len() && (frame <= until || frame % SOURCE_MAP_EVERY_FRAMES == 0) {
                    with_commits += 1;
                }
            }
        }
        self.source.announce_until[node] = until;
        if e.announced != decided + transfers + with_commits {
            self.violation(
                Invariant::SourceAnnounced,
                at,
                format!(
                    "node {node} sent its source map {} times in an event where it decided {decided} restarts, began {transfers} state transfers and committed frames {:?} (the map goes with those up to {until} and every {SOURCE_MAP_EVERY_FRAMES}th): {} expected",
                    e.announced,
                    e.committed,
                    decided + transfers + with_commits
                ),
            );
        }
    }
}

/// The first pair frame whose source frame the map `before` places elsewhere than (or
/// where not) `after` does; `None` when both place every frame alike (docs/PROTOCOL.md,
/// "Source sessions": a node that takes a map drops the payloads it placed by another
/// from there on). A new session differs from its first pair frame; the same session
/// mapped with another offset from the lower of the two first pair frames.
fn replaced_from(before: SourceMap, after: SourceMap) -> Option<u64> {
    if before.session != after.session {
        return Some(after.pair_first);
    }
    let offset = |m: SourceMap| m.pair_first.wrapping_sub(m.source_first);
    (offset(before) != offset(after)).then(|| before.pair_first.min(after.pair_first))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(frame: u64, input_digest: u64) -> (u64, Step) {
        let mut step = Step::new(frame, 0, &[]);
        step.input_digest = input_digest;
        (257, step)
    }

    fn map(session: u16, source_first: u64, pair_first: u64) -> SourceMap {
        SourceMap {
            session,
            source_first,
            pair_first,
        }
    }

    /// A node's event that changes nothing and sends nothing.
    fn quiet(node: usize, source: Option<SourceMap>, restarts: u64) -> SourceEvent {
        SourceEvent {
            node,
            source_before: source,
            restarts_before: restarts,
            source_after: source,
            restarts_after: restarts,
            ..SourceEvent::default()
        }
    }

    fn invariants(checker: &Checker) -> Vec<Invariant> {
        checker.violations().iter().map(|v| v.invariant).collect()
    }

    #[test]
    fn source_inputs_run_out_of_sending_order_or_twice_are_violations() {
        let mut checker = Checker::default();
        for sent in 1..=5 {
            checker.on_source_sent(sent, 0, 1000 + sent);
        }
        // Frames 10..12 on the source's 1st, 2nd and 4th: in order, a gap allowed.
        checker.on_steps(1, 0, &[step(10, 1001), step(11, 1002), step(12, 1004)]);
        // A payload the world never sent (a flipped copy) is not judged.
        checker.on_steps(2, 0, &[step(13, 77)]);
        assert!(checker.violations().is_empty());
        // The 3rd after the 4th: a late frame of the session left, run as new.
        checker.on_steps(3, 0, &[step(14, 1003)]);
        // The 3rd again on the next frame: one input run twice.
        checker.on_steps(4, 0, &[step(15, 1003)]);
        assert_eq!(invariants(&checker), [Invariant::SourceFollowed; 2]);
        assert!(checker.violations()[0]
            .detail
            .contains("frame 14 on the source's frame #3"));
        // Another node, and a node that installed a state, start their order again.
        checker.on_steps(5, 1, &[step(14, 1001)]);
        checker.on_source_installed(0);
        checker.on_steps(6, 0, &[step(20, 1001)]);
        assert_eq!(checker.violations().len(), 2);
    }

    /// Until 2026-11-27 (commit 7c7af88) inputs out of order were counted apart where two
    /// primaries mapped one session with different offsets (a split brain over the
    /// restart): the core now gives a backup its primary's map, and they are violations.
    #[test]
    fn source_inputs_out_of_order_of_a_session_mapped_twice_are_violations() {
        let mut checker = Checker::default();
        for sent in 1..=3 {
            checker.on_source_sent(sent, 1, 1000 + sent);
        }
        // Node 0 and then node 1, each primary, map session 1 with other offsets.
        for (node, decided) in [(0, map(1, 2, 57)), (1, map(1, 3, 57))] {
            let mut e = quiet(node, Some(map(0, 1, 1)), 0);
            e.primary_before = true;
            e.primary_after = true;
            e.in_hand_before = 56;
            e.source_after = Some(decided);
            e.restarts_after = 1;
            e.notices = vec![decided];
            e.announced = 1;
            checker.on_source_event(1, &e);
        }
        assert!(checker.violations().is_empty(), "{:?}", checker.violations());
        checker.on_steps(2, 1, &[step(57, 1002), step(58, 1002)]);
        assert_eq!(invariants(&checker), [Invariant::SourceFollowed]);
    }

    #[test]
    fn source_map_announced_with_a_transfer_and_the_commits_after_its_state() {
        let mut checker = Checker::default();
        let held = Some(map(1, 1, 101));
        let mut e = quiet(0, held, 1);
        e.primary_before = true;
        e.primary_after = true;
        // Commits 300 and 301, a transfer of the state after frame 301, commits up to 310:
        // the map goes with the transfer and the commits of 302..=309.
        e.committed = (300..=310).collect();
        e.transfers = vec![(2, 301)];
        e.announced = 1 + 8;
        checker.on_source_event(1, &e);
        assert!(checker.violations().is_empty(), "{:?}", checker.violations());
        // A node without a map sends none.
        let mut e = quiet(1, None, 0);
        e.primary_before = true;
        e.primary_after = true;
        e.transfers = vec![(0, 5)];
        e.committed = vec![6];
        checker.on_source_event(2, &e);
        assert!(checker.violations().is_empty(), "{:?}", checker.violations());
        // One announcement short.
        let mut e = quiet(0, held, 1);
        e.primary_before = true;
        e.primary_after = true;
        e.transfers = vec![(0, 400)];
        e.committed = vec![401];
        e.announced = 1;
        checker.on_source_event(3, &e);
        assert_eq!(invariants(&checker), [Invariant::SourceAnnounced]);
    }

    #[test]
    fn source_restart_mapped_onto_frames_in_hand_is_a_violation() {
        let mut checker = Checker::default();
        let before = Some(map(0, 1, 1));
        let mut e = quiet(0, before, 0);
        e.primary_before = true;
        e.primary_after = true;
        e.in_hand_before = 40;
        e.source_after = Some(map(1, 1, 41));
        e.restarts_after = 1;
        e.notices = vec![map(1, 1, 41)];
        e.announced = 1;
        checker.on_source_event(1, &e);
        assert!(checker.violations().is_empty(), "{:?}", checker.violations());
        e.source_after = Some(map(1, 1, 40));
        e.notices = vec![map(1, 1, 40)];
        checker.on_source_event(2, &e);
        assert_eq!(invariants(&checker), [Invariant::SourceFollowed]);
        assert!(checker.violations()[0]
            .detail
            .contains("not above the frames in hand (up to 40)"));
    }

    #[test]
    fn source_map_taken_but_not_held_is_a_violation() {
        let mut checker = Checker::default();
        let old = Some(map(0, 1, 1));
        let mut e = quiet(1, old, 0);
        e.map_taken = Some(map(1, 1, 41));
        e.source_after = Some(map(1, 1, 41));
        e.restarts_after = 1;
        e.notices = vec![map(1, 1, 41)];
        checker.on_source_event(1, &e);
        assert!(checker.violations().is_empty(), "{:?}", checker.violations());
        // The backup ignored it.
        let mut e = quiet(1, old, 0);
        e.map_taken = Some(map(1, 1, 41));
        checker.on_source_event(2, &e);
        assert_eq!(invariants(&checker), [Invariant::SourceFollowed]);
        assert!(checker.violations()[0]
            .detail
            .contains("does not follow the primary's mapping"));
    }

    #[test]
    fn source_restart_untold_or_miscounted_is_a_violation() {
        let mut checker = Checker::default();
        // A new session without its notice.
        let mut e = quiet(1, Some(map(0, 1, 1)), 0);
        e.source_after = Some(map(1, 1, 41));
        e.restarts_after = 1;
        checker.on_source_event(1, &e);
        // With its notice, not counted.
        e.notices = vec![map(1, 1, 41)];
        e.restarts_after = 0;
        checker.on_source_event(2, &e);
        // A notice for the same session (a repeated announcement).
        let mut e = quiet(1, Some(map(1, 1, 41)), 1);
        e.notices = vec![map(1, 1, 41)];
        e.restarts_after = 2;
        checker.on_source_event(3, &e);
        assert_eq!(invariants(&checker), [Invariant::SourceFollowed; 3]);
        // A first map (no session before) is no restart.
        let mut e = quiet(0, None, 0);
        e.source_after = Some(map(0, 1, 1));
        checker.on_source_event(4, &e);
        assert_eq!(checker.violations().len(), 3);
    }

    #[test]
    fn source_map_announced_otherwise_than_documented_is_a_violation() {
        let mut checker = Checker::default();
        let mut e = quiet(0, Some(map(0, 1, 1)), 0);
        e.primary_before = true;
        e.primary_after = true;
        e.in_hand_before = 100;
        e.source_after = Some(map(1, 1, 101));
        e.restarts_after = 1;
        e.notices = vec![map(1, 1, 101)];
        e.committed = vec![101, 102];
        // At the restart and with the two commits after it.
        e.announced = 3;
        checker.on_source_event(1, &e);
        assert!(checker.violations().is_empty(), "{:?}", checker.violations());
        // Up to 8 frames past the restart's first, and every 256th.
        let mut e = quiet(0, Some(map(1, 1, 101)), 1);
        e.primary_before = true;
        e.primary_after = true;
        e.committed = vec![109, 110, 256];
        e.announced = 2;
        checker.on_source_event(2, &e);
        assert!(checker.violations().is_empty(), "{:?}", checker.violations());
        // Once too few (none with frame 109), once too many (with frame 111).
        e.committed = vec![109];
        e.announced = 0;
        checker.on_source_event(3, &e);
        e.committed = vec![111];
        e.announced = 1;
        checker.on_source_event(4, &e);
        assert_eq!(invariants(&checker), [Invariant::SourceAnnounced; 2]);
        assert!(!Invariant::SourceAnnounced.is_safety());
        assert!(Invariant::SourceFollowed.is_safety());
    }
}
