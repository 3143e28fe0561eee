//! Invariants 9 and 10 on hand-made takeovers: node 0 leads epoch E1 and commits, node 1
//! follows and holds some of those commits, takes over in E2 and replays them — as the
//! commits say, or with one planted mistake that the check must name.

use super::*;
use crate::dst::sink::Sink;
use twinloop::{Instant, OutputPayload};

const E1: u64 = 0x101;
const E2: u64 = 0x202;

fn ran(frame: u64, input: u64, outputs: u8, sent_mask: u32, output_digest: u64, state: Option<u64>) -> Commit {
    Commit {
        frame,
        kind: CommitKind::Ran {
            input_digest: input,
            outputs,
            sent_mask,
            output_digest,
        },
        state_digest: state,
        writes: Default::default(),
    }
}

pub(super) fn skipped(frame: u64, last: u64) -> Commit {
    Commit {
        frame,
        kind: CommitKind::Skipped { last },
        state_digest: None,
        writes: Default::default(),
    }
}

/// A step that ran `frame` on `input`, with `outputs` outputs, digests as given.
fn step(frame: u64, input: u64, outputs: u8, output_digest: u64, state: u64) -> Step {
    let hashes: Vec<u64> = (0..u64::from(outputs))
        .map(|i| fnv64(&[frame as u8, i as u8]))
        .collect();
    let mut s = Step::new(frame, state, &hashes);
    s.input_digest = input;
    s.output_digest = output_digest;
    s
}

/// Output `index` of `frame` under `epoch`, as the test's application produces it.
fn output(epoch: u64, frame: u64, index: u8) -> Output {
    Output {
        epoch,
        frame,
        index,
        kind: twinloop::OutputKind::Event,
        payload: OutputPayload::from_slice(&[frame as u8, index]).unwrap_or_default(),
    }
}

fn transition(role: Role, sync: SyncState, epoch: u64, frame: u64, reason: Reason) -> Transition {
    Transition {
        at: Instant::ZERO,
        role,
        sync,
        epoch,
        frame,
        reason,
    }
}

struct Takeover2 {
    checker: Checker,
    sink: Sink,
    now: Nanos,
}

impl Takeover2 {
    /// Node 0 leads E1 and commits `commits` (on the wire); node 1 follows in sync and
    /// holds `held`; node 0 crashes and node 1 takes over in E2 at `start`.
    fn new(commits: &[Commit], held: &[Commit], start: u64) -> Self {
        let mut checker = Checker::new();
        checker.on_start(0, 1);
        checker.on_start(1, 1);
        checker.on_persist(1, 0, E1);
        checker.on_transition(
            1,
            0,
            &transition(Role::Primary, SyncState::Alone, E1, 0, Reason::StartedFirst),
        );
        checker.on_transition(
            2,
            1,
            &transition(Role::Backup, SyncState::InSync, E1, 0, Reason::InSync),
        );
        for c in commits {
            // Node 0 emitted what its commit reports sent (invariant 25).
            if let CommitKind::Ran { outputs, sent_mask, .. } = c.kind {
                for index in (0..outputs).filter(|&i| sent_mask & (1 << i) != 0) {
                    checker.copies.insert(
                        (c.frame, index),
                        Copies {
                            first: (E1, 0),
                            more: Vec::new(),
                        },
                    );
                }
            }
            checker.on_commit(3, 0, E1, c);
        }
        for c in held {
            checker.on_commit_held(1, E1, c);
        }
        checker.on_crash(4, 0);
        checker.on_ring(1, 1024, start, start);
        checker.on_persist(5, 1, E2);
        checker.on_transition(
            5,
            1,
            &transition(Role::Primary, SyncState::Alone, E2, start, Reason::TakeoverAfterProbe),
        );
        Takeover2 {
            checker,
            sink: Sink::default(),
            now: 5,
        }
    }

    /// Node 1 runs `step` (its application produced the outputs named in `emit`, which it
    /// emits) and commits `own`.
    fn run(&mut self, s: Step, emit: &[u8], own: Commit) {
        self.checker.on_steps(self.now, 1, &[(E2, s)]);
        for &index in emit {
            let o = output(E2, s.frame, index);
            let (verdict, _) = self.sink.offer(self.now, 1, &o);
            self.checker.on_emit(self.now, 1, &o, verdict);
        }
        self.checker.on_commit(self.now, 1, E2, &own);
    }

    /// Node 1 commits a skip of `first..=last`.
    fn skip(&mut self, first: u64, last: u64) {
        self.checker.on_commit(self.now, 1, E2, &skipped(first, last));
    }

    /// The event ends, with `InputLost` for `lost`.
    fn end(mut self, lost: &[u64]) -> Checker {
        self.checker.on_event_end(self.now, 1, lost);
        self.checker
    }
}

fn broken(checker: &Checker) -> Vec<Invariant> {
    checker.violations().iter().map(|v| v.invariant).collect()
}

/// Frames 2 (sent), 3..=4 (skipped), 5 (one output sent, one not).
fn history() -> Vec<Commit> {
    vec![
        ran(2, 20, 1, 0b1, 200, Some(2000)),
        skipped(3, 4),
        ran(5, 50, 2, 0b01, 500, None),
    ]
}

#[test]
fn checker_takeover_replays_as_committed_passes() {
    let h = history();
    let mut t = Takeover2::new(&h, &h, 1);
    t.run(step(2, 20, 1, 200, 2000), &[], ran(2, 20, 1, 0b1, 200, Some(2000)));
    t.skip(3, 4);
    t.run(step(5, 50, 2, 500, 7), &[1], ran(5, 50, 2, 0b11, 500, None));
    let c = t.end(&[]);
    assert_eq!(broken(&c), vec![]);
    assert_eq!(c.exceptions.replay_gap, 0);
}

#[test]
fn checker_takeover_resends_an_output_reported_sent_breaks_9() {
    let h = history();
    let mut t = Takeover2::new(&h, &h, 1);
    // Frame 2's output went out before: the sink drops the copy, invariant 2 sees nothing.
    t.run(step(2, 20, 1, 200, 2000), &[0], ran(2, 20, 1, 0b1, 200, Some(2000)));
    assert_eq!(broken(&t.end(&[])), vec![Invariant::ResendOnlyUnsent]);
}

#[test]
fn checker_takeover_resends_an_output_of_a_frame_run_as_backup_breaks_9() {
    let h = history();
    // Node 1 ran frames up to 2 as a backup: frame 2's output, reported sent, is not its
    // to send again (an `unsent` set that ignored the mask would).
    let mut t = Takeover2::new(&h, &h, 2);
    t.run(step(2, 20, 1, 200, 2000), &[0], ran(2, 20, 1, 0b1, 200, None));
    assert!(broken(&t.end(&[])).contains(&Invariant::ResendOnlyUnsent));
}

#[test]
fn checker_takeover_drops_an_output_never_reported_sent_breaks_9() {
    let h = history();
    let mut t = Takeover2::new(&h, &h, 1);
    t.run(step(2, 20, 1, 200, 2000), &[], ran(2, 20, 1, 0b1, 200, Some(2000)));
    t.skip(3, 4);
    // Output 1 of frame 5 was never reported sent: dropping it loses it (and the new
    // primary's commit then reports it sent, which no node did: invariant 25).
    t.run(step(5, 50, 2, 500, 7), &[], ran(5, 50, 2, 0b11, 500, None));
    assert_eq!(
        broken(&t.end(&[])),
        vec![Invariant::SentReported, Invariant::ResendOnlyUnsent]
    );
}

#[test]
fn checker_replay_runs_a_skipped_frame_breaks_10() {
    let h = history();
    let mut t = Takeover2::new(&h, &h, 1);
    t.run(step(2, 20, 1, 200, 2000), &[], ran(2, 20, 1, 0b1, 200, Some(2000)));
    t.run(step(3, 30, 0, 300, 1), &[], ran(3, 30, 0, 0, 300, None));
    assert_eq!(broken(&t.end(&[])), vec![Invariant::ReplayFaithful]);
}

#[test]
fn checker_replay_skips_a_ran_frame_without_input_lost_breaks_10() {
    let h = history();
    let mut t = Takeover2::new(&h, &h, 1);
    t.skip(2, 2);
    assert_eq!(broken(&t.end(&[])), vec![Invariant::ReplayFaithful]);
}

#[test]
fn checker_replay_skips_a_ran_frame_with_input_lost_passes() {
    let h = history();
    let mut t = Takeover2::new(&h, &h, 1);
    t.skip(2, 2);
    t.skip(3, 4);
    // Its state parted at frame 2: frame 5's outputs and state may differ, not its input.
    t.run(step(5, 50, 2, 999, 7), &[1], ran(5, 50, 2, 0b11, 999, None));
    assert_eq!(broken(&t.end(&[2])), vec![]);
}

#[test]
fn checker_replay_other_input_output_or_state_breaks_10() {
    let cases = [
        step(2, 21, 1, 200, 2000),
        step(2, 20, 2, 200, 2000),
        step(2, 20, 1, 201, 2000),
        step(2, 20, 1, 200, 2001),
    ];
    for s in cases {
        let h = history();
        let mut t = Takeover2::new(&h, &h, 1);
        t.run(
            s,
            &[],
            ran(2, s.input_digest, s.outputs, 0b1, s.output_digest, Some(s.digest)),
        );
        assert_eq!(broken(&t.end(&[])), vec![Invariant::ReplayFaithful], "{s:?}");
    }
}

#[test]
fn checker_replay_passes_inherited_frames_without_a_commit_breaks_10() {
    let h = history();
    let mut t = Takeover2::new(&h, &h, 1);
    // Straight to frame 6: frames 2..=5, inherited, decided nowhere.
    t.run(step(6, 60, 0, 600, 1), &[], ran(6, 60, 0, 0, 600, None));
    let c = t.end(&[]);
    assert_eq!(broken(&c), vec![Invariant::ReplayFaithful; 3]);
}

#[test]
fn checker_replay_gap_decided_otherwise_counts_and_parts() {
    let h = history();
    // Frame 2's commit never reached node 1; it lacks the input and skips frame 2 (a gap
    // below an inherited commit, decided otherwise than the old primary): counted, and
    // frame 5 may then differ in outputs.
    let held = [skipped(3, 4), ran(5, 50, 2, 0b01, 500, None)];
    let mut t = Takeover2::new(&h, &held, 1);
    t.checker.on_commit_lost(1, 2, 2);
    t.skip(2, 2);
    t.skip(3, 4);
    t.run(step(5, 50, 2, 999, 7), &[1], ran(5, 50, 2, 0b11, 999, None));
    let c = t.end(&[]);
    assert_eq!(broken(&c), vec![]);
    assert_eq!(c.exceptions.replay_gap, 1);
}

/// The same gap without `Alarm::CommitLost` (the core before 2026-11-26): its history
/// parts silently.
#[test]
fn checker_replay_gap_without_commit_lost_breaks_10() {
    let h = history();
    let held = [skipped(3, 4), ran(5, 50, 2, 0b01, 500, None)];
    let mut t = Takeover2::new(&h, &held, 1);
    t.skip(2, 2);
    t.skip(3, 4);
    t.run(step(5, 50, 2, 999, 7), &[1], ran(5, 50, 2, 0b11, 999, None));
    let c = t.end(&[]);
    assert_eq!(broken(&c), vec![Invariant::ReplayFaithful]);
    assert_eq!(c.exceptions.replay_gap, 1);
}

/// The gap skipped with `InputLost` for it: the node held the commit the checker's model
/// counts as gone (a whole ring below a newer frame), and said its input was lost.
#[test]
fn checker_replay_gap_with_input_lost_for_it_passes() {
    let h = history();
    let held = [skipped(3, 4), ran(5, 50, 2, 0b01, 500, None)];
    let mut t = Takeover2::new(&h, &held, 1);
    t.skip(2, 2);
    t.skip(3, 4);
    t.run(step(5, 50, 2, 999, 7), &[1], ran(5, 50, 2, 0b11, 999, None));
    let c = t.end(&[2]);
    assert_eq!(broken(&c), vec![]);
}

/// A `CommitLost` for other frames, or in an earlier event, does not explain the gap.
#[test]
fn checker_replay_gap_with_commit_lost_for_other_frames_breaks_10() {
    let h = history();
    let held = [skipped(3, 4), ran(5, 50, 2, 0b01, 500, None)];
    let mut t = Takeover2::new(&h, &held, 1);
    t.checker.on_commit_lost(1, 3, 4);
    t.checker.on_event_end(t.now, 1, &[]);
    t.checker.on_commit_lost(1, 5, 6);
    t.skip(2, 2);
    t.skip(3, 4);
    t.run(step(5, 50, 2, 999, 7), &[1], ran(5, 50, 2, 0b11, 999, None));
    let c = t.end(&[]);
    assert_eq!(broken(&c), vec![Invariant::ReplayFaithful]);
}

/// A skipped range alarmed once covers every frame of it.
#[test]
fn checker_replay_gap_range_alarmed_once_passes() {
    // Node 1 holds only frame 5's commit; the old primary ran frame 2 and skipped 3..=4:
    // node 1 skips 2..=4 in one commit (gap at 2) and alarms the range.
    let h = history();
    let held = [ran(5, 50, 2, 0b01, 500, None)];
    let mut t = Takeover2::new(&h, &held, 1);
    t.checker.on_commit_lost(1, 2, 4);
    t.skip(2, 4);
    t.run(step(5, 50, 2, 999, 7), &[1], ran(5, 50, 2, 0b11, 999, None));
    let c = t.end(&[]);
    assert_eq!(broken(&c), vec![]);
    assert_eq!(c.exceptions.replay_gap, 1);
}

#[test]
fn checker_takeover_commit_a_ring_below_is_not_held() {
    let held_after = |last_run: u64| {
        let h = history();
        let mut checker = Takeover2::new(&h, &[], 1).checker;
        checker.on_transition(
            6,
            1,
            &transition(Role::Backup, SyncState::InSync, E2, 1, Reason::InSync),
        );
        for c in &h {
            checker.on_commit_held(1, E2, c);
        }
        checker.on_ring(1, 2, 6, last_run);
        checker.held[1].keys().copied().collect::<Vec<_>>()
    };
    // With a ring of 2 frames and frame 6 received, frames 2..=4 are gone from the node:
    // it skips to frame 5 without them.
    assert_eq!(held_after(4), vec![5]);
    // Not those it had not run: it keeps them, and refuses the frames beyond its ring.
    assert_eq!(held_after(1), vec![2, 3, 5]);
}
