//! Invariant 18, a primary skips no frame it holds (issue 21): a `Skipped` commit says
//! the frames of its range were never in hand, and their outputs are never emitted by
//! anyone. A primary that skips a frame whose input it received and still holds drops
//! what the plant should have got — invisible to the other invariants, which judge only
//! what was committed (mutant `lockstep.rs:109:66`, a new primary's scan of a gap of two
//! that runs on past the frames in hand).
//!
//! What the node holds is modelled from the world's side, never asked of the core: the
//! frames of the I/O source it took into its ring in this incarnation (the runner sees
//! each delivery and whether the node refused it), less those whose slot a newer frame
//! may have taken. The ring keeps frame `f` in slot `f mod capacity`; a frame or a
//! commit of frame `g >= f + capacity` may take it. The model counts every frame the
//! node took and the frame of every commit delivered to it (genuine or injected, taken
//! or refused) as a claim, and `f` gone once the highest claim reaches `f + capacity`:
//! it may think a frame gone that the node still holds, never the reverse. The same rule
//! is the core's own for a takeover's bulk skip ("a whole ring below the highest received
//! cannot be in hand", `primary_run_frames`).
//!
//! Allowed: a skip equal to a `Skipped` commit delivered to the node in this incarnation
//! (inherited from the primary it followed, which decided those frames), and a frame the
//! node alarmed `InputLost` for in the same event (an inherited `Ran` commit whose input
//! it lacks or holds with another digest).

use super::*;

/// Skipped ranges of delivered commits kept per node (the oldest dropped beyond): far
/// more than a ring's worth of commits.
const SKIPS_DELIVERED_MAX: usize = 1 << 12;

/// What one node incarnation's ring holds of the I/O source's frames, as the world saw it.
#[derive(Debug, Default)]
pub(super) struct RingModel {
    /// The ring's capacity (`frames_buffered`); 0 until the node took a frame.
    capacity: u64,
    /// Frames the node took from the I/O source and may still hold (pruned as `claimed`
    /// grows; at most `capacity` of them).
    frames: BTreeSet<u64>,
    /// The highest frame that may have taken a slot in this incarnation: a frame taken
    /// from the source, or the frame of a commit delivered to the node.
    claimed: u64,
    /// `(first, last)` of every `Skipped` commit delivered to the node in this
    /// incarnation whose range may still cover a frame it holds.
    skips_delivered: BTreeSet<(u64, u64)>,
    /// This event's skips that covered frames held: `(epoch, first, last, frame)`.
    skipped_held: Vec<(u64, u64, u64, u64)>,
}

impl RingModel {
    /// Frames up to this one may be gone from the ring (0: none).
    fn gone_to(&self) -> u64 {
        if self.capacity == 0 {
            return 0;
        }
        self.claimed.saturating_sub(self.capacity)
    }

    /// The node dropped its frames from `from` on (placed by a source map it no longer
    /// holds, `checker/source.rs`).
    pub(super) fn forget_from(&mut self, from: u64) {
        self.frames.retain(|&f| f < from);
    }

    fn claim(&mut self, frame: u64) {
        if frame <= self.claimed {
            return;
        }
        self.claimed = frame;
        let gone_to = self.gone_to();
        while self.frames.first().is_some_and(|&f| f <= gone_to) {
            self.frames.pop_first();
        }
        self.skips_delivered.retain(|&(_, last)| last > gone_to);
    }
}

impl Checker {
    /// Node `node`, whose ring holds `capacity` frames, took frame `frame` from the I/O
    /// source into it (the runner saw no rejection counted).
    pub fn on_frame_held(&mut self, node: usize, capacity: u64, frame: u64) {
        let ring = &mut self.rings[node];
        ring.capacity = capacity;
        ring.claim(frame);
        if frame > ring.gone_to() {
            ring.frames.insert(frame);
        }
    }

    /// A datagram carrying `commit` was delivered to node `node` (a node's or the
    /// attacker's, whether the node took it or not): its frame may take a slot of the
    /// ring, and a skipped range is one a later primary may inherit.
    pub fn on_commit_seen(&mut self, node: usize, commit: &Commit) {
        let (first, last) = (commit.frame, commit_last(commit));
        // Beyond `FRAME_MAX` the core refuses the message before any handler sees it.
        if last > twinloop::node::FRAME_MAX {
            return;
        }
        let ring = &mut self.rings[node];
        ring.claim(first);
        if matches!(commit.kind, CommitKind::Skipped { .. }) && last > ring.gone_to() {
            ring.skips_delivered.insert((first, last));
            while ring.skips_delivered.len() > SKIPS_DELIVERED_MAX {
                ring.skips_delivered.pop_first();
            }
        }
    }

    /// A new incarnation of `node` (a new ring), or a crash (nothing held).
    pub(super) fn forget_ring(&mut self, node: usize) {
        self.rings[node] = RingModel::default();
    }

    /// Invariant 18 at a commit of node `node`, primary of `epoch`: the frames held that a
    /// skip covers, settled at the end of the event (an `InputLost` alarm for a frame
    /// comes in the same event).
    pub(super) fn check_skip(&mut self, node: usize, epoch: u64, commit: &Commit) {
        let CommitKind::Skipped { .. } = commit.kind else {
            return;
        };
        let (first, last) = (commit.frame, commit_last(commit));
        let ring = &mut self.rings[node];
        if ring.skips_delivered.contains(&(first, last)) {
            return;
        }
        let from = first.max(ring.gone_to().saturating_add(1));
        if from > last {
            return;
        }
        let RingModel {
            frames, skipped_held, ..
        } = ring;
        for &frame in frames.range(from..=last) {
            skipped_held.push((epoch, first, last, frame));
        }
    }

    /// The end of one event of node `node`, whose `InputLost` alarms named `input_lost`:
    /// every frame held that one of its skips covered was alarmed.
    pub(super) fn settle_skips(&mut self, at: Nanos, node: usize, input_lost: &[u64]) {
        let mut skipped = core::mem::take(&mut self.rings[node].skipped_held);
        skipped.retain(|&(_, _, _, frame)| !input_lost.contains(&frame));
        // One violation per commit, naming the frames held it skipped.
        let mut k = 0;
        while k < skipped.len() {
            let (epoch, first, last, _) = skipped[k];
            let held: Vec<u64> = skipped[k..]
                .iter()
                .take_while(|&&(e, f, l, _)| (e, f, l) == (epoch, first, last))
                .map(|&(_, _, _, frame)| frame)
                .collect();
            k += held.len();
            self.violation(
                Invariant::SkipHeld,
                at,
                format!(
                    "node {node}, primary of epoch {}, committed frames {first}..={last} as skipped while it held the input of {} of them ({held:?}), taken from the I/O source, no InputLost alarm: their outputs are never emitted",
                    twinloop::EpochText(epoch),
                    held.len()
                ),
            );
        }
        skipped.clear();
        self.rings[node].skipped_held = skipped;
    }
}

#[cfg(test)]
mod tests {
    use super::super::replay_tests::skipped;
    use super::*;

    const E1: u64 = 0x101;
    const E2: u64 = 0x202;
    const RING: u64 = 16;

    /// Node 1 took frames 1..=10 and 13..=20 from the source (11 and 12 lost), ring of 16.
    fn gap_of_two_then_frames_in_hand() -> Checker {
        let mut c = Checker::new();
        c.on_start(0, 1);
        c.on_start(1, 1);
        for frame in (1..=10).chain(13..=20) {
            c.on_frame_held(1, RING, frame);
        }
        c
    }

    /// Node 1, primary of E2, commits `commit` in one event that alarms `input_lost`.
    fn skip_in_one_event(c: &mut Checker, commit: Commit, input_lost: &[u64]) {
        c.on_commit(100, 1, E2, &commit);
        c.on_event_end(100, 1, input_lost);
    }

    fn skip_held_violations(c: &Checker) -> Vec<&Violation> {
        c.violations()
            .iter()
            .filter(|v| v.invariant == Invariant::SkipHeld)
            .collect()
    }

    /// The mutant's decision: the gap 11..=12 skipped on past 13 and 14, which the node
    /// holds. One violation for the commit, naming both frames.
    #[test]
    fn skip_over_frames_held_after_a_gap_violates_18() {
        let mut c = gap_of_two_then_frames_in_hand();
        skip_in_one_event(&mut c, skipped(11, 14), &[]);
        let found = skip_held_violations(&c);
        assert_eq!(found.len(), 1, "{:?}", c.violations());
        assert!(found[0].detail.contains("11..=14") && found[0].detail.contains("[13, 14]"));
        assert_eq!(Invariant::SkipHeld.number(), 18);
        assert!(Invariant::SkipHeld.is_safety());
    }

    /// The right decision: the gap alone skipped (the frames after it are run).
    #[test]
    fn skip_of_the_gap_alone_no_violation() {
        let mut c = gap_of_two_then_frames_in_hand();
        skip_in_one_event(&mut c, skipped(11, 12), &[]);
        assert!(c.violations().is_empty(), "{:?}", c.violations());
    }

    /// Allowed: a skip the node inherited (a `Skipped` commit of the same range was
    /// delivered to it), and a frame alarmed `InputLost` in the same event; the alarm of
    /// another frame, or in another event, is no excuse.
    #[test]
    fn skip_inherited_or_input_lost_allowed_otherwise_violates_18() {
        let mut c = gap_of_two_then_frames_in_hand();
        c.on_commit_seen(1, &skipped(11, 14));
        skip_in_one_event(&mut c, skipped(11, 14), &[]);
        skip_in_one_event(&mut c, skipped(15, 15), &[15]);
        assert!(c.violations().is_empty(), "{:?}", c.violations());
        skip_in_one_event(&mut c, skipped(16, 16), &[17]);
        c.on_commit(200, 1, E2, &skipped(17, 17));
        c.on_event_end(200, 1, &[]);
        c.on_event_end(201, 1, &[17]);
        assert_eq!(skip_held_violations(&c).len(), 2, "{:?}", c.violations());
    }

    /// A frame a whole ring below the highest frame that may have taken a slot — a frame
    /// taken, or any commit delivered — may be gone: its skip is not judged (the core's
    /// bulk skip of a takeover). A new incarnation holds nothing.
    #[test]
    fn skip_of_frames_a_ring_below_or_of_another_incarnation_not_judged() {
        let mut c = gap_of_two_then_frames_in_hand();
        c.on_frame_held(1, RING, 29);
        // 13 is gone (29 - 16), 14 may not be.
        skip_in_one_event(&mut c, skipped(13, 13), &[]);
        assert!(c.violations().is_empty(), "{:?}", c.violations());
        skip_in_one_event(&mut c, skipped(14, 14), &[]);
        assert_eq!(skip_held_violations(&c).len(), 1, "{:?}", c.violations());
        // A commit of frame 40 delivered, taken or not: everything up to 24 may be gone.
        c.on_commit_seen(1, &skipped(40, 40));
        skip_in_one_event(&mut c, skipped(15, 20), &[]);
        assert_eq!(skip_held_violations(&c).len(), 1, "{:?}", c.violations());
        c.on_start(1, 2);
        c.on_commit(300, 1, E1, &skipped(29, 29));
        c.on_event_end(300, 1, &[]);
        assert_eq!(skip_held_violations(&c).len(), 1, "{:?}", c.violations());
    }
}
