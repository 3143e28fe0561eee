use super::*;
use crate::dst::sink::Sink;
use twinloop::{Instant, OutputPayload};

const E1: u64 = 0x101;
const E2: u64 = 0x202;

fn step(frame: u64) -> Step {
    Step::new(frame, 1, &[])
}
const E3: u64 = 0x302;

fn transition(role: Role, epoch: u64, frame: u64, reason: Reason) -> Transition {
    Transition {
        at: Instant::ZERO,
        role,
        sync: SyncState::Alone,
        epoch,
        frame,
        reason,
    }
}

fn output(epoch: u64, frame: u64, index: u8, content: u8) -> Output {
    Output {
        epoch,
        frame,
        index,
        kind: twinloop::OutputKind::Event,
        payload: OutputPayload::from_slice(&[content]).unwrap_or_default(),
    }
}

fn commit(frame: u64, outputs: u8) -> Commit {
    Commit {
        frame,
        kind: CommitKind::Ran {
            input_digest: 0,
            outputs,
            sent_mask: u32::MAX,
            output_digest: 0,
        },
        state_digest: None,
        writes: Default::default(),
    }
}

/// A history builder: a checker and a sink driven as the runner drives them.
struct History {
    checker: Checker,
    sink: Sink,
    now: Nanos,
}

impl History {
    fn new() -> Self {
        let mut checker = Checker::new();
        checker.on_start(0, 0);
        checker.on_start(1, 0);
        History {
            checker,
            sink: Sink::default(),
            now: 0,
        }
    }

    fn lead(&mut self, node: usize, epoch: u64, frame: u64, reason: Reason) {
        self.now += 1;
        self.checker.on_persist(self.now, node, epoch);
        self.checker
            .on_transition(self.now, node, &transition(Role::Primary, epoch, frame, reason));
    }

    fn follow(&mut self, node: usize, epoch: u64) {
        self.now += 1;
        // The epoch it follows reached it first (a primary steps down only below a
        // successor, invariant 19).
        self.checker.on_epoch_delivered(node, epoch);
        self.checker.on_transition(
            self.now,
            node,
            &transition(Role::Backup, epoch, 0, Reason::FencedByEpoch),
        );
    }

    fn emit(&mut self, node: usize, o: Output) {
        self.now += 1;
        // As if the node's application had produced it.
        self.checker
            .produced
            .insert((o.frame, node, o.index), fnv64(&o.payload));
        let (verdict, _) = self.sink.offer(self.now, node, &o);
        self.checker.on_emit(self.now, node, &o, verdict);
    }

    /// Runs and commits `frame` as the primary `node` of `epoch`: one output.
    fn run(&mut self, node: usize, epoch: u64, frame: u64, content: u8) {
        self.emit(node, output(epoch, frame, 0, content));
        self.checker.on_commit(self.now, node, epoch, &commit(frame, 1));
    }

    /// Commits `first..=last` as skipped by the primary `node` of `epoch`.
    fn skip(&mut self, node: usize, epoch: u64, first: u64, last: u64) {
        let c = Commit {
            frame: first,
            kind: CommitKind::Skipped { last },
            state_digest: None,
            writes: Default::default(),
        };
        self.checker.on_commit(self.now, node, epoch, &c);
    }

    fn finish(mut self) -> Checker {
        self.now += 1;
        self.checker.finish(self.now, &self.sink.accepted);
        self.checker
    }
}

fn broken(checker: &Checker) -> Vec<Invariant> {
    checker.violations().iter().map(|v| v.invariant).collect()
}

#[test]
fn checker_clean_takeover_history_passes() {
    let mut h = History::new();
    h.lead(0, E1, 0, Reason::StartedFirst);
    for f in 1..=5 {
        h.run(0, E1, f, f as u8);
    }
    h.now += 10;
    h.checker.on_crash(h.now, 0);
    h.follow(1, E1);
    h.lead(1, E2, 4, Reason::TakeoverAfterProbe);
    // Frame 5's commit never arrived: re-sent, same content; then new frames.
    h.run(1, E2, 5, 5);
    h.run(1, E2, 6, 6);
    let c = h.finish();
    assert_eq!(broken(&c), vec![]);
    assert_eq!(c.exceptions, Exceptions::default());
}

#[test]
fn checker_cold_start_beside_a_running_holder_is_reported() {
    let mut h = History::new();
    h.lead(0, E1, 0, Reason::StartedFirst);
    h.checker.on_steps(h.now, 0, &[(E1, step(1))]);
    // Node 1 follows (joining), the primary freezes, node 1 starts cold: the frozen
    // primary still holds the state.
    h.follow(1, E1);
    h.lead(1, E2, 0, Reason::StartedFirst);
    assert_eq!(broken(&h.checker), vec![Invariant::StateContinuity]);
}

#[test]
fn checker_cold_start_after_hearing_a_holder_only_stale_is_reported() {
    // Mutants `fencing.rs:67:26`/`67:61`: node 1 restarted above the primary's epoch
    // (its reservation) hears the primary only as stale — it never follows it — and
    // leads cold beside it. Having taken a message that said the peer held state, it
    // knew the pair had state.
    let mut h = History::new();
    h.lead(0, E1, 0, Reason::StartedFirst);
    h.checker.on_steps(h.now, 0, &[(E1, step(1))]);
    h.checker.on_crash(h.now, 1);
    h.checker.on_start(1, 1);
    h.checker.on_heard_state(1);
    h.lead(1, E3, 0, Reason::StartedFirst);
    assert_eq!(broken(&h.checker), vec![Invariant::StateContinuity]);
}

#[test]
fn checker_cold_start_heard_state_only_in_an_earlier_incarnation_or_holder_gone_passes() {
    // What an earlier incarnation heard is forgotten at a restart.
    let mut h = History::new();
    h.lead(0, E1, 0, Reason::StartedFirst);
    h.checker.on_steps(h.now, 0, &[(E1, step(1))]);
    h.checker.on_heard_state(1);
    h.checker.on_crash(h.now, 1);
    h.checker.on_start(1, 1);
    h.lead(1, E3, 0, Reason::StartedFirst);
    assert_eq!(broken(&h.checker), vec![]);
    // Heard, then the holder crashed: its state is gone.
    let mut h = History::new();
    h.lead(0, E1, 0, Reason::StartedFirst);
    h.checker.on_steps(h.now, 0, &[(E1, step(1))]);
    h.checker.on_heard_state(1);
    h.checker.on_crash(h.now, 0);
    h.lead(1, E2, 0, Reason::StartedFirst);
    assert_eq!(broken(&h.checker), vec![]);
    // Heard by a node that is down: nothing known.
    let mut h = History::new();
    h.lead(0, E1, 0, Reason::StartedFirst);
    h.checker.on_steps(h.now, 0, &[(E1, step(1))]);
    h.checker.on_crash(h.now, 1);
    h.checker.on_heard_state(1);
    h.checker.on_start(1, 1);
    h.lead(1, E3, 0, Reason::StartedFirst);
    assert_eq!(broken(&h.checker), vec![]);
}

#[test]
fn checker_cold_start_after_the_holder_crashed_or_with_state_passes() {
    // The holder crashed: its state is gone, a cold start is the only way on.
    let mut h = History::new();
    h.lead(0, E1, 0, Reason::StartedFirst);
    h.checker.on_steps(h.now, 0, &[(E1, step(1))]);
    h.follow(1, E1);
    h.checker.on_crash(h.now, 0);
    h.lead(1, E2, 0, Reason::StartedFirst);
    assert_eq!(broken(&h.checker), vec![]);
    // A node with the state may lead from the start-up role.
    let mut h = History::new();
    h.lead(0, E1, 0, Reason::StartedFirst);
    h.checker.on_steps(h.now, 0, &[(E1, step(1))]);
    h.follow(1, E1);
    h.checker
        .on_transition(h.now, 1, &transition(Role::Backup, E1, 1, Reason::InSync));
    h.lead(1, E2, 1, Reason::StartedFirst);
    assert_eq!(broken(&h.checker), vec![]);
}

#[test]
fn checker_cold_starts_of_one_term_colliding_pass_of_a_later_term_reported() {
    // Seed 4991 of 2000..9999: node 1 followed node 0's stateless primary (E1), which
    // crashed; node 0 restarted and led cold (E3: term 3) while node 1 was frozen, and
    // ran a few frames; node 1, thawed, led cold in the same term (0x302), never having
    // heard E3. A start-up collision, resolved by `FencedAtStartup`: not a violation.
    let mut h = History::new();
    h.lead(0, E1, 0, Reason::StartedFirst);
    h.follow(1, E1);
    h.checker.on_crash(h.now, 0);
    h.checker.on_start(0, 1);
    h.lead(0, 0x301, 0, Reason::StartedFirst);
    h.checker.on_steps(h.now, 0, &[(0x301, step(1))]);
    h.lead(1, 0x302, 0, Reason::WonTiebreak);
    assert_eq!(broken(&h.checker), vec![]);
    // Node 1 led cold in a later term than node 0's cold start: it heard that epoch,
    // knew the pair had that state, and replaced it.
    let mut h = History::new();
    h.lead(0, E1, 0, Reason::StartedFirst);
    h.checker.on_steps(h.now, 0, &[(E1, step(1))]);
    h.follow(1, E1);
    h.lead(1, E2, 0, Reason::WonTiebreak);
    assert_eq!(broken(&h.checker), vec![Invariant::StateContinuity]);
}

#[test]
fn checker_two_primaries_in_one_epoch_is_reported() {
    let mut h = History::new();
    h.lead(0, E1, 0, Reason::StartedFirst);
    h.checker.on_crash(h.now, 0);
    h.checker.on_start(0, 1);
    // The restarted node reuses the epoch it persisted.
    h.lead(0, E1, 0, Reason::StartedFirst);
    let c = h.finish();
    assert!(broken(&c).contains(&Invariant::OnePrimaryPerEpoch));
}

#[test]
fn checker_epoch_of_another_node_is_reported() {
    let mut h = History::new();
    h.lead(1, E1, 0, Reason::StartedFirst);
    let c = h.finish();
    assert_eq!(broken(&c), vec![Invariant::OnePrimaryPerEpoch]);
}

#[test]
fn checker_emit_before_persist_is_reported() {
    let mut h = History::new();
    h.checker
        .on_transition(1, 0, &transition(Role::Primary, E1, 0, Reason::StartedFirst));
    h.emit(0, output(E1, 1, 0, 1));
    let c = h.finish();
    assert_eq!(broken(&c), vec![Invariant::OnePrimaryPerEpoch]);
}

#[test]
fn checker_emit_by_backup_is_reported() {
    let mut h = History::new();
    h.lead(0, E1, 0, Reason::StartedFirst);
    h.follow(0, E2);
    h.emit(0, output(E1, 1, 0, 1));
    let c = h.finish();
    assert!(broken(&c).contains(&Invariant::OnePrimaryPerEpoch));
}

#[test]
fn checker_sink_accepting_lower_epoch_is_reported() {
    let mut h = History::new();
    h.lead(0, E1, 0, Reason::StartedFirst);
    h.follow(1, E1);
    h.lead(1, E2, 0, Reason::TakeoverAfterProbe);
    h.emit(1, output(E2, 1, 0, 1));
    // A broken sink that accepts the lower epoch anyway.
    h.checker.on_emit(100, 0, &output(E1, 2, 0, 1), Verdict::Accepted);
    let c = h.finish();
    assert!(broken(&c).contains(&Invariant::OnePrimaryPerEpoch));
}

#[test]
fn checker_copy_of_a_higher_epoch_fences_the_old_primary() {
    // The new primary's first output is a copy of one the old primary delivered; the
    // old primary, still running, then commits frame 2: the sink rejects it as stale
    // (the copy raised its fence), which is right, and the output is excused as
    // deposed, not lost.
    let mut h = History::new();
    h.lead(0, E1, 0, Reason::StartedFirst);
    h.follow(1, E1);
    h.run(0, E1, 1, 1);
    h.lead(1, E2, 0, Reason::TakeoverAfterProbe);
    h.emit(1, output(E2, 1, 0, 1));
    assert_eq!(h.sink.duplicates, 1);
    h.run(0, E1, 2, 2);
    assert_eq!(h.sink.stale, 1);
    h.run(1, E2, 3, 3);
    let c = h.finish();
    assert_eq!(broken(&c), vec![]);
    assert_eq!(c.exceptions.lost_deposed, 1);
}

#[test]
fn checker_sink_letting_a_lower_epoch_through_after_a_copy_is_reported() {
    let mut h = History::new();
    h.lead(0, E1, 0, Reason::StartedFirst);
    h.follow(1, E1);
    h.run(0, E1, 1, 1);
    h.lead(1, E2, 0, Reason::TakeoverAfterProbe);
    h.emit(1, output(E2, 1, 0, 1));
    // A sink that raised its fence on acceptance only would take this one.
    h.checker.on_emit(h.now + 1, 0, &output(E1, 2, 0, 2), Verdict::Accepted);
    let c = h.finish();
    assert!(broken(&c).contains(&Invariant::OnePrimaryPerEpoch));
}

#[test]
fn checker_sink_accepting_twice_is_reported() {
    let mut h = History::new();
    h.lead(0, E1, 0, Reason::StartedFirst);
    h.checker.on_emit(1, 0, &output(E1, 1, 0, 1), Verdict::Accepted);
    h.follow(1, E1);
    h.lead(1, E2, 0, Reason::TakeoverAfterProbe);
    h.checker.on_emit(2, 1, &output(E2, 1, 0, 1), Verdict::Accepted);
    let c = h.finish();
    assert!(broken(&c).contains(&Invariant::ExactlyOnce));
}

#[test]
fn checker_same_epoch_duplicate_is_reported() {
    let mut h = History::new();
    h.lead(0, E1, 0, Reason::StartedFirst);
    h.run(0, E1, 1, 1);
    h.emit(0, output(E1, 1, 0, 1));
    let c = h.finish();
    assert_eq!(broken(&c), vec![Invariant::ExactlyOnce]);
}

#[test]
fn checker_different_content_without_excuse_is_reported() {
    let mut h = History::new();
    h.lead(0, E1, 0, Reason::StartedFirst);
    h.run(0, E1, 1, 1);
    h.run(0, E1, 2, 2);
    h.checker.on_crash(h.now, 0);
    h.follow(1, E1);
    h.lead(1, E2, 1, Reason::TakeoverAfterProbe);
    h.run(1, E2, 2, 99);
    let c = h.finish();
    assert_eq!(broken(&c), vec![Invariant::ExactlyOnce]);
}

#[test]
fn checker_different_content_after_input_lost_is_an_exception() {
    let mut h = History::new();
    h.lead(0, E1, 0, Reason::StartedFirst);
    h.run(0, E1, 1, 1);
    h.run(0, E1, 2, 2);
    h.run(0, E1, 3, 3);
    h.checker.on_crash(h.now, 0);
    h.follow(1, E1);
    h.lead(1, E2, 0, Reason::TakeoverAfterProbe);
    h.checker.on_input_lost(E2, 1);
    h.run(1, E2, 2, 20);
    h.run(1, E2, 3, 30);
    let c = h.finish();
    assert_eq!(broken(&c), vec![]);
    assert_eq!(c.exceptions.input_lost, 2);
}

#[test]
fn checker_input_lost_after_the_frame_does_not_excuse_it() {
    let mut h = History::new();
    h.lead(0, E1, 0, Reason::StartedFirst);
    h.run(0, E1, 2, 2);
    h.checker.on_crash(h.now, 0);
    h.follow(1, E1);
    h.lead(1, E2, 0, Reason::TakeoverAfterProbe);
    h.checker.on_input_lost(E2, 5);
    h.run(1, E2, 2, 20);
    let c = h.finish();
    assert_eq!(broken(&c), vec![Invariant::ExactlyOnce]);
}

#[test]
fn checker_different_content_in_split_brain_is_an_exception() {
    let mut h = History::new();
    h.lead(0, E1, 0, Reason::StartedFirst);
    h.run(0, E1, 1, 1);
    // Partition: node 1 takes over at frame 1 while node 0 still emits.
    h.follow(1, E1);
    h.lead(1, E2, 1, Reason::TakeoverAfterProbe);
    h.run(0, E1, 2, 2);
    h.run(1, E2, 2, 22);
    h.run(1, E2, 3, 33);
    h.run(0, E1, 3, 3);
    // Node 1 skipped frame 4: node 0's copy is rejected (deposed), not a loss.
    h.run(0, E1, 4, 4);
    h.follow(0, E2);
    let c = h.finish();
    assert_eq!(broken(&c), vec![]);
    assert_eq!(c.exceptions.split_brain, 2);
    assert_eq!(c.exceptions.lost_deposed, 1);
}

#[test]
fn checker_switchover_completed_after_the_primary_gave_it_up_is_a_split_brain() {
    // Node 0 releases at frame 2, gives the switchover up (its backup silent) and runs
    // frames 3 and 4; node 1, back, takes the release and leads from frame 2, skips 3:
    // two histories of frame 4 (before 2026-11-26 a crash window).
    let mut h = History::new();
    h.lead(0, E1, 0, Reason::StartedFirst);
    h.run(0, E1, 1, 1);
    h.run(0, E1, 2, 2);
    h.follow(1, E1);
    h.checker.on_release(0);
    h.now += 1;
    h.checker
        .on_transition(h.now, 0, &transition(Role::Primary, E1, 2, Reason::SwitchoverAborted));
    h.run(0, E1, 3, 3);
    h.run(0, E1, 4, 4);
    h.lead(1, E2, 2, Reason::SwitchoverCompleted);
    h.skip(1, E2, 3, 3);
    h.run(1, E2, 4, 44);
    h.follow(0, E2);
    let c = h.finish();
    assert_eq!(broken(&c), vec![]);
    assert_eq!(c.exceptions.split_brain, 1);
    assert_eq!(c.exceptions.crash_window, 0);
}

#[test]
fn checker_switchover_is_not_a_split_brain() {
    let mut h = History::new();
    h.lead(0, E1, 0, Reason::StartedFirst);
    h.run(0, E1, 1, 1);
    h.run(0, E1, 2, 2);
    // Handover at frame 2: node 1 leads while node 0, released, has not transitioned yet.
    h.follow(1, E1);
    h.checker.on_release(0);
    h.lead(1, E2, 2, Reason::SwitchoverCompleted);
    h.run(1, E2, 3, 3);
    h.follow(0, E2);
    // A wrong re-send of frame 2 with other content is not excused.
    h.emit(1, output(E2, 2, 0, 77));
    let c = h.finish();
    assert_eq!(broken(&c), vec![Invariant::ExactlyOnce]);
}

#[test]
fn checker_crash_window_decided_otherwise_is_an_exception() {
    let mut h = History::new();
    h.lead(0, E1, 0, Reason::StartedFirst);
    h.run(0, E1, 1, 1);
    h.run(0, E1, 2, 2);
    h.run(0, E1, 3, 3);
    h.checker.on_crash(h.now, 0);
    // The commits of 2 and 3 never arrived; frame 2's input arrived late at node 1,
    // which skipped it: its frame 3 differs, and its commits say why.
    h.follow(1, E1);
    h.lead(1, E2, 1, Reason::TakeoverAfterProbe);
    h.skip(1, E2, 2, 2);
    h.run(1, E2, 3, 33);
    let c = h.finish();
    assert_eq!(broken(&c), vec![]);
    assert_eq!(c.exceptions.crash_window, 1);
}

#[test]
fn checker_crash_window_with_the_commit_delivered_is_reported() {
    // As above, but frame 2's commit reached node 1 before it took over: its other
    // decision for frame 2 is no crash window (invariant 10 territory), and the
    // difference of frame 3 is unexplained (before 2026-11-26 counted as crash window).
    let mut h = History::new();
    h.lead(0, E1, 0, Reason::StartedFirst);
    h.run(0, E1, 1, 1);
    h.run(0, E1, 2, 2);
    h.follow(1, E1);
    h.checker.on_commit_delivered(h.now, 1, E1, 2);
    h.run(0, E1, 3, 3);
    h.checker.on_crash(h.now, 0);
    h.lead(1, E2, 1, Reason::TakeoverAfterProbe);
    h.skip(1, E2, 2, 2);
    h.run(1, E2, 3, 33);
    let c = h.finish();
    assert_eq!(broken(&c), vec![Invariant::ExactlyOnce]);
    assert!(
        c.violations()[0].detail.contains("not a crash window"),
        "{:?}",
        c.violations()
    );
    assert_eq!(c.exceptions.crash_window, 0);
    // Delivered only after node 1 committed its own decision: a crash window still.
    let mut h = History::new();
    h.lead(0, E1, 0, Reason::StartedFirst);
    h.run(0, E1, 1, 1);
    h.run(0, E1, 2, 2);
    h.run(0, E1, 3, 3);
    h.checker.on_crash(h.now, 0);
    h.follow(1, E1);
    h.lead(1, E2, 1, Reason::TakeoverAfterProbe);
    h.skip(1, E2, 2, 2);
    h.now += 1;
    h.checker.on_commit_delivered(h.now, 1, E1, 2);
    h.run(1, E2, 3, 33);
    let c = h.finish();
    assert_eq!(broken(&c), vec![]);
    assert_eq!(c.exceptions.crash_window, 1);
}

#[test]
fn checker_crash_window_needs_a_decision_before_the_frame() {
    let mut h = History::new();
    h.lead(0, E1, 0, Reason::StartedFirst);
    h.run(0, E1, 2, 2);
    h.run(0, E1, 3, 3);
    h.skip(0, E1, 4, 4);
    h.checker.on_crash(h.now, 0);
    h.follow(1, E1);
    h.lead(1, E2, 1, Reason::TakeoverAfterProbe);
    h.run(1, E2, 2, 2);
    h.run(1, E2, 3, 33);
    // A different decision after the frame explains nothing.
    h.run(1, E2, 4, 4);
    let c = h.finish();
    assert_eq!(broken(&c), vec![Invariant::ExactlyOnce]);
}

#[test]
fn checker_descendant_of_another_cold_start_is_an_exception() {
    let mut h = History::new();
    // Two cold starts that could not hear each other, then node 0 follows node 1's
    // history and later takes over from it: its copies differ from its own old ones.
    h.lead(1, E2, 0, Reason::StartedFirst);
    h.lead(0, E1, 0, Reason::StartedFirst);
    h.run(0, E1, 1, 1);
    h.follow(0, E2);
    h.checker.on_crash(h.now, 1);
    h.lead(0, 0x301, 0, Reason::TakeoverAfterProbe);
    h.run(0, 0x301, 1, 11);
    let c = h.finish();
    assert_eq!(broken(&c), vec![]);
    assert_eq!(c.exceptions.cold_start, 1);
}

#[test]
fn checker_descendant_of_a_split_brain_side_is_an_exception() {
    let mut h = History::new();
    h.lead(0, E1, 0, Reason::StartedFirst);
    h.run(0, E1, 1, 1);
    h.follow(1, E1);
    // Partition: node 1 takes over at frame 1 while node 0 still leads.
    h.lead(1, E2, 1, Reason::TakeoverAfterProbe);
    h.run(0, E1, 2, 2);
    h.follow(0, E2);
    // Later node 0 takes over from node 1's history and re-sends frame 2.
    h.checker.on_crash(h.now, 1);
    h.lead(0, 0x301, 1, Reason::TakeoverAfterProbe);
    h.run(0, 0x301, 2, 22);
    let c = h.finish();
    assert_eq!(broken(&c), vec![]);
    assert_eq!(c.exceptions.split_brain, 1);
}

#[test]
fn checker_cold_start_content_is_an_exception() {
    let mut h = History::new();
    h.lead(0, E1, 0, Reason::StartedFirst);
    h.run(0, E1, 7, 7);
    h.checker.on_crash(h.now, 0);
    h.lead(1, E2, 0, Reason::StartedFirst);
    h.run(1, E2, 7, 70);
    let c = h.finish();
    assert_eq!(broken(&c), vec![]);
    assert_eq!(c.exceptions.cold_start, 1);
}

#[test]
fn checker_emit_other_than_produced_is_reported() {
    let mut h = History::new();
    h.lead(0, E1, 0, Reason::StartedFirst);
    h.checker.on_steps(1, 0, &[(E1, Step::new(1, 9, &[fnv64(&[1])]))]);
    let o = output(E1, 1, 0, 2);
    let (v, _) = h.sink.offer(2, 0, &o);
    h.checker.on_emit(2, 0, &o, v);
    // And one its application never produced at all.
    let o = output(E1, 5, 0, 5);
    let (v, _) = h.sink.offer(3, 0, &o);
    h.checker.on_emit(3, 0, &o, v);
    let c = h.finish();
    assert_eq!(broken(&c), vec![Invariant::ExactlyOnce, Invariant::ExactlyOnce]);
}

#[test]
fn checker_outputs_differing_in_one_epoch_are_reported() {
    let mut h = History::new();
    h.checker.on_steps(1, 0, &[(E1, Step::new(1, 10, &[1, 2]))]);
    h.checker.on_steps(2, 1, &[(E1, Step::new(1, 10, &[1, 3]))]);
    assert_eq!(broken(&h.checker), vec![Invariant::DigestAgreement]);
}

#[test]
fn checker_committed_output_never_emitted_is_lost() {
    let mut h = History::new();
    h.lead(0, E1, 0, Reason::StartedFirst);
    h.run(0, E1, 1, 1);
    // Commit says two outputs, only one was emitted.
    h.emit(0, output(E1, 2, 0, 2));
    h.checker.on_commit(h.now, 0, E1, &commit(2, 2));
    let c = h.finish();
    assert_eq!(broken(&c), vec![Invariant::NothingLost]);
}

#[test]
fn checker_output_dropped_on_a_wrong_sent_mask_is_lost() {
    let mut h = History::new();
    h.lead(0, E1, 0, Reason::StartedFirst);
    h.run(0, E1, 1, 1);
    // Node 0 commits frame 2 and crashes before emitting (not possible in the core:
    // the emits come first; a broken core might do it).
    h.checker.on_commit(h.now, 0, E1, &commit(2, 1));
    h.checker.on_crash(h.now, 0);
    h.follow(1, E1);
    h.lead(1, E2, 1, Reason::TakeoverAfterProbe);
    // The new primary replays frame 2 and trusts the mask: emits nothing.
    h.checker.on_commit(h.now, 1, E2, &commit(2, 1));
    h.checker.on_steps(h.now, 1, &[(E2, Step::new(2, 1, &[0]))]);
    let c = h.finish();
    assert_eq!(broken(&c), vec![Invariant::NothingLost]);
}

#[test]
fn checker_lost_when_every_holder_crashed_is_an_exception() {
    let mut h = History::new();
    h.lead(0, E1, 0, Reason::StartedFirst);
    h.checker.on_commit(h.now, 0, E1, &commit(2, 1));
    h.checker.on_steps(h.now, 0, &[(E1, Step::new(2, 1, &[0]))]);
    h.checker.on_crash(h.now, 0);
    let c = h.finish();
    assert_eq!(broken(&c), vec![]);
    assert_eq!(c.exceptions.lost_crashed, 1);
}

#[test]
fn checker_digest_mismatch_in_one_epoch_is_reported() {
    let mut h = History::new();
    let s = |frame, digest| Step::new(frame, digest, &[7]);
    h.checker.on_steps(1, 0, &[(E1, s(1, 10)), (E1, s(2, 20))]);
    h.checker.on_steps(2, 1, &[(E1, s(1, 10))]);
    // Another epoch may differ (a different history), the same epoch may not.
    h.checker.on_steps(3, 1, &[(E2, s(2, 21))]);
    assert_eq!(broken(&h.checker), vec![]);
    h.checker.on_steps(4, 1, &[(E1, s(2, 21))]);
    assert_eq!(broken(&h.checker), vec![Invariant::DigestAgreement]);
}

#[test]
fn checker_slow_clean_failover_is_reported() {
    let mut h = History::new();
    h.lead(0, E1, 0, Reason::StartedFirst);
    h.run(0, E1, 1, 1);
    h.checker.on_crash(1_000, 0);
    h.checker.on_primary_crash(1_000, 0, E1, Some(500));
    h.now = 2_000;
    h.follow(1, E1);
    h.lead(1, E2, 1, Reason::TakeoverAfterProbe);
    h.run(1, E2, 2, 2);
    let c = h.finish();
    assert_eq!(broken(&c), vec![Invariant::FailoverTime]);
    assert_eq!(c.failover_ns.len(), 1);
    assert!(c.failover_ns[0] > 1_000);
}

#[test]
fn checker_clean_failover_without_output_is_late() {
    let mut c = Checker::new();
    c.on_primary_crash(1_000, 0, E1, Some(500));
    c.check_failover_deadlines(1_400);
    assert!(broken(&c).is_empty());
    c.check_failover_deadlines(1_600);
    assert_eq!(broken(&c), vec![Invariant::FailoverTime]);
}

#[test]
fn checker_takeover_during_false_death_freeze_is_reported() {
    let mut h = History::new();
    h.lead(0, E1, 0, Reason::StartedFirst);
    h.checker.expect_no_takeover(1, h.now, h.now + 100);
    h.follow(1, E1);
    h.lead(1, E2, 0, Reason::TakeoverAfterProbe);
    let c = h.finish();
    assert_eq!(broken(&c), vec![Invariant::FalseDeath]);
}

#[test]
fn checker_restarted_node_leading_next_to_a_healthy_primary_is_reported() {
    let mut h = History::new();
    h.lead(0, E1, 0, Reason::StartedFirst);
    h.checker.on_start(1, 2);
    h.checker.expect_no_lead(1, h.now, h.now + 100);
    h.lead(1, E2, 0, Reason::StartedFirst);
    let c = h.finish();
    assert!(broken(&c).contains(&Invariant::FalseDeath));
    // A switchover the primary asked for is no usurpation.
    let mut h = History::new();
    h.lead(0, E1, 0, Reason::StartedFirst);
    h.checker.on_start(1, 2);
    h.checker.expect_no_lead(1, h.now, h.now + 100);
    h.follow(1, E1);
    h.lead(1, E2, 0, Reason::SwitchoverCompleted);
    let c = h.finish();
    assert!(!broken(&c).contains(&Invariant::FalseDeath));
}

#[test]
fn checker_calm_switchover_must_complete_cleanly() {
    let switchover = |spoil: Option<Reason>, complete: bool, fault: bool| {
        let mut c = Checker::new();
        c.on_transition(1, 0, &transition(Role::Primary, E1, 0, Reason::StartedFirst));
        c.expect_clean_switchover(2, 100);
        if fault {
            c.end_switchover_watches(3);
        }
        if complete {
            c.on_transition(4, 1, &transition(Role::Primary, E2, 5, Reason::SwitchoverCompleted));
        }
        if let Some(reason) = spoil {
            c.on_transition(5, 0, &transition(Role::Backup, E2, 5, reason));
        }
        c.check_switchovers(200);
        broken(&c).contains(&Invariant::Switchover)
    };
    assert!(!switchover(Some(Reason::SwitchoverHandedOver), true, false));
    assert!(switchover(Some(Reason::FencedByEpoch), true, false), "fenced");
    assert!(switchover(None, false, false), "never completed");
    assert!(!switchover(None, false, true), "cut short by a fault: not judged");
}

#[test]
fn checker_pair_converged_needs_paired_primary_and_in_sync_backup() {
    let status = |role, sync, epoch| {
        let mut s = twinloop::testing::Pair::new(1, twinloop::Config::default(), 0);
        s.start(0);
        let mut st = s.node(0).status();
        st.role = role;
        st.sync = sync;
        st.epoch = epoch;
        st
    };
    let p = status(Role::Primary, SyncState::Paired, E1);
    let b = status(Role::Backup, SyncState::InSync, E1);
    assert!(pair_converged(&[Some(p.clone()), Some(b.clone())]));
    assert!(pair_converged(&[Some(b.clone()), Some(p.clone())]));
    let lagging = status(Role::Backup, SyncState::Lagging, E1);
    assert!(!pair_converged(&[Some(p.clone()), Some(lagging)]));
    let other_epoch = status(Role::Backup, SyncState::InSync, E3);
    assert!(!pair_converged(&[Some(p.clone()), Some(other_epoch)]));
    assert!(!pair_converged(&[Some(p), None]));
}

#[test]
fn checker_steps_split_by_transition_frame() {
    let t = [transition(Role::Primary, E2, 10, Reason::SwitchoverCompleted)];
    let s = |frame| Step::new(frame, 0, &[]);
    let mut out = Vec::new();
    attribute_steps(E1, &t, &[s(9), s(10), s(11)], &mut out);
    let epochs: Vec<u64> = out.iter().map(|(e, _)| *e).collect();
    assert_eq!(epochs, vec![E1, E1, E2]);
}

/// Invariant 3's orphaned losses: node 0 leads E1 and commits frame 1; cut off from it,
/// node 1 takes over with E2 and emits frame 2 (the sink's fence rises to E2), then
/// crashes. Node 0 then commits frame 3 under E1: rejected as stale, no higher primary
/// running.
fn orphaned_history(heard_by_node0: Option<u64>) -> History {
    let mut h = History::new();
    h.lead(0, E1, 0, Reason::StartedFirst);
    h.run(0, E1, 1, 1);
    h.follow(1, E1);
    h.lead(1, E2, 1, Reason::TakeoverAfterProbe);
    h.run(1, E2, 2, 2);
    h.now += 1;
    h.checker.on_crash(h.now, 1);
    if let Some(epoch) = heard_by_node0 {
        h.now += 1;
        h.checker.on_delivered(h.now, 0, epoch);
    }
    h.run(0, E1, 3, 3);
    assert_eq!(h.sink.stale, 1);
    h
}

#[test]
fn checker_orphaned_loss_never_heard_is_an_exception() {
    // Node 0 never had a message of E2 (or above) delivered: it could not know.
    let c = orphaned_history(None).finish();
    assert_eq!(broken(&c), vec![]);
    assert_eq!(c.exceptions.lost_orphaned_never_heard, 1);
    // A message of a lower epoch does not tell it either.
    let c = orphaned_history(Some(E1)).finish();
    assert_eq!(broken(&c), vec![]);
    assert_eq!(c.exceptions.lost_orphaned_never_heard, 1);
}

#[test]
fn checker_orphaned_loss_after_hearing_the_fence_is_reported() {
    // A message of E2 reached node 0 before it committed: it should have followed E2 or
    // led above it (before 2026-11-26 counted as `lost_orphaned`).
    let c = orphaned_history(Some(E2)).finish();
    assert_eq!(broken(&c), vec![Invariant::NothingLost]);
    assert!(c.violations()[0].detail.contains("orphaned"), "{:?}", c.violations());
    let c = orphaned_history(Some(E3)).finish();
    assert_eq!(broken(&c), vec![Invariant::NothingLost]);
    assert_eq!(c.exceptions.lost_orphaned_never_heard, 0);
}

#[test]
fn checker_deposed_loss_after_hearing_the_fence_is_reported() {
    // Node 1 runs as primary of E2; node 0 hears it and still commits under E1.
    let mut h = History::new();
    h.lead(0, E1, 0, Reason::StartedFirst);
    h.follow(1, E1);
    h.lead(1, E2, 0, Reason::TakeoverAfterProbe);
    h.run(1, E2, 1, 1);
    h.now += 1;
    h.checker.on_delivered(h.now, 0, E2);
    h.run(0, E1, 2, 2);
    let c = h.finish();
    assert_eq!(broken(&c), vec![Invariant::NothingLost]);
    assert!(c.violations()[0].detail.contains("deposed"), "{:?}", c.violations());
    assert_eq!(c.exceptions.lost_deposed, 0);
}

/// Node 0 heard E2 in its first incarnation; both crash; node 0 restarts from a disk
/// holding E1 and leads 0x201 (above E1, below E2): its commit is rejected under E2.
fn restarted_below_a_heard_epoch(write_lost: bool) -> Checker {
    let mut h = History::new();
    h.lead(0, E1, 0, Reason::StartedFirst);
    h.follow(1, E1);
    h.lead(1, E2, 0, Reason::TakeoverAfterProbe);
    h.run(1, E2, 1, 1);
    h.now += 1;
    h.checker.on_delivered(h.now, 0, E2);
    h.follow(0, E2);
    if write_lost {
        h.checker.on_write_lost(0, E2);
    }
    h.checker.on_crash(h.now, 0);
    h.checker.on_crash(h.now, 1);
    h.checker.on_start(0, 1);
    h.checker.on_boot(0, E1);
    h.lead(0, 0x201, 1, Reason::StartedFirst);
    h.run(0, 0x201, 2, 2);
    assert_eq!(h.sink.stale, 1);
    h.finish()
}

#[test]
fn checker_orphaned_loss_of_a_forgotten_epoch_is_reported() {
    // No crash lost a write of E2: the node never wrote the epoch it heard.
    let c = restarted_below_a_heard_epoch(false);
    assert_eq!(broken(&c), vec![Invariant::NothingLost]);
    assert!(
        c.violations()[0].detail.contains("never written"),
        "{:?}",
        c.violations()
    );
}

#[test]
fn checker_orphaned_loss_of_an_epoch_whose_write_was_lost_is_an_exception() {
    let c = restarted_below_a_heard_epoch(true);
    assert_eq!(broken(&c), vec![]);
    assert_eq!(c.exceptions.lost_orphaned_write_lost, 1);
}

#[test]
fn checker_orphaned_loss_booted_with_the_fence_on_disk_is_reported() {
    let mut h = History::new();
    h.lead(0, E1, 0, Reason::StartedFirst);
    h.follow(1, E1);
    h.lead(1, E2, 0, Reason::TakeoverAfterProbe);
    h.run(1, E2, 1, 1);
    h.checker.on_crash(h.now, 0);
    h.checker.on_crash(h.now, 1);
    h.checker.on_start(0, 1);
    h.checker.on_boot(0, E2);
    h.lead(0, 0x201, 1, Reason::StartedFirst);
    h.run(0, 0x201, 2, 2);
    let c = h.finish();
    assert_eq!(broken(&c), vec![Invariant::NothingLost]);
    assert!(c.violations()[0].detail.contains("disk held"), "{:?}", c.violations());
}

/// Invariant 14's histories: outputs of one frame that are levels of `key`.
fn level(epoch: u64, frame: u64, key: u16, content: u8) -> Output {
    Output {
        kind: twinloop::OutputKind::Level { key },
        ..output(epoch, frame, 0, content)
    }
}

impl History {
    /// The primary `node` of `epoch` runs `frame`, whose one output is a level of `key`,
    /// commits it and, when `emit`, sends it (a collapsed level is committed, not sent).
    fn run_level(&mut self, node: usize, epoch: u64, frame: u64, key: u16, emit: bool) {
        let o = level(epoch, frame, key, frame as u8);
        let mut step = Step::new(frame, 1, &[fnv64(&o.payload)]);
        step.output_kinds[0] = o.kind;
        self.checker.on_steps(self.now, node, &[(epoch, step)]);
        if emit {
            self.now += 1;
            let (verdict, _) = self.sink.offer(self.now, node, &o);
            self.checker.on_emit(self.now, node, &o, verdict);
        }
        self.checker.on_commit(self.now, node, epoch, &commit(frame, 1));
    }
}

/// A sink without the level rule (or a gateway that lost it) takes an older value of a
/// key after a newer one: the plant is driven back. Before invariant 14 nothing saw it
/// (each identity was accepted once, none lost).
#[test]
fn checker_level_older_after_newer_at_the_sink_is_a_violation() {
    let mut h = History::new();
    h.lead(0, E1, 0, Reason::StartedFirst);
    h.run_level(0, E1, 1, 7, false);
    h.run_level(0, E1, 2, 7, true);
    // Frame 1's value arrives late and this sink takes it.
    h.now += 1;
    let late = level(E1, 1, 7, 1);
    h.checker.on_emit(h.now, 0, &late, Verdict::Accepted);
    let c = h.finish();
    assert_eq!(broken(&c), vec![Invariant::Levels]);
    assert!(
        c.violations()[0].detail.contains("older value after a newer one"),
        "{:?}",
        c.violations()
    );
}

/// A level committed but superseded (a takeover's collapse) is excused from invariant 3
/// when a newer value of its key reached the sink; the newest committed must arrive.
#[test]
fn checker_level_superseded_is_excused_and_the_newest_must_arrive() {
    let mut h = History::new();
    h.lead(0, E1, 0, Reason::StartedFirst);
    h.run_level(0, E1, 1, 7, false);
    h.run_level(0, E1, 2, 7, true);
    let c = h.finish();
    assert_eq!(broken(&c), vec![]);
    assert_eq!(c.exceptions.level_superseded, 1);

    let mut h = History::new();
    h.lead(0, E1, 0, Reason::StartedFirst);
    h.run_level(0, E1, 1, 7, true);
    h.run_level(0, E1, 2, 7, false);
    let c = h.finish();
    assert_eq!(
        broken(&c),
        vec![Invariant::NothingLost, Invariant::Levels],
        "{:?}",
        c.violations()
    );
}

/// The sink refuses a level as superseded only below a newer accepted one of its key,
/// and a node emits an output as the kind its application produced.
#[test]
fn checker_level_refused_without_a_newer_or_emitted_as_an_event_is_a_violation() {
    let mut h = History::new();
    h.lead(0, E1, 0, Reason::StartedFirst);
    h.run_level(0, E1, 1, 7, true);
    h.now += 1;
    let o = level(E1, 2, 7, 2);
    let mut step = Step::new(2, 1, &[fnv64(&o.payload)]);
    step.output_kinds[0] = o.kind;
    h.checker.on_steps(h.now, 0, &[(E1, step)]);
    h.checker.on_emit(h.now, 0, &o, Verdict::Superseded);
    let mut step = Step::new(3, 1, &[fnv64(&[3])]);
    step.output_kinds[0] = twinloop::OutputKind::Level { key: 7 };
    h.checker.on_steps(h.now, 0, &[(E1, step)]);
    h.emit(0, output(E1, 3, 0, 3));
    let c = h.finish();
    assert_eq!(broken(&c), vec![Invariant::Levels, Invariant::Levels]);
}

/// A primary that commits a level and never sends it, while later frames' outputs go out:
/// the plant misses that value until the key's next one (a takeover that collapsed its
/// burst's levels and never emitted the newest). Before the delivery rule of invariant 14
/// the next value of the key excused it as superseded and nothing was seen.
#[test]
fn checker_level_committed_and_not_sent_by_the_next_commit_is_a_violation() {
    let mut h = History::new();
    h.lead(0, E1, 0, Reason::StartedFirst);
    h.run_level(0, E1, 1, 7, false);
    h.run_level(0, E1, 2, 8, true);
    h.run_level(0, E1, 3, 7, true);
    let c = h.finish();
    assert_eq!(broken(&c), vec![Invariant::Levels], "{:?}", c.violations());
    assert!(
        c.violations()[0].detail.contains("committed frame 2"),
        "{:?}",
        c.violations()
    );
}

/// Seeds 5944, 9640 and 19813 of 2000..19999 (2026-11-26): a primary that leads on above
/// a heard epoch (`EpochRaised`) carries the history of the epoch it led, and its level
/// refresh re-sends that history's newest level under the new epoch. Node 1 leads E2,
/// node 0 takes over in a partition (E3, a split brain from frame 1) and decides frame 2
/// otherwise; node 1 hears E3, leads on in E4 and re-sends its frame 2. The checker took
/// E4 for a descendant of E1, the epoch node 1 had last followed as a backup, so the E3
/// and E4 copies had no split brain between them: an invariant 2 violation.
#[test]
fn checker_epoch_raised_carries_the_led_history() {
    // Each epoch's low byte is its leader's id (node + 1).
    const E3: u64 = 0x301;
    const E4: u64 = 0x402;
    let mut h = History::new();
    h.lead(0, E1, 0, Reason::StartedFirst);
    h.run(0, E1, 1, 1);
    h.follow(1, E1);
    h.checker.on_release(0);
    h.lead(1, E2, 1, Reason::SwitchoverCompleted);
    h.follow(0, E2);
    h.run(1, E2, 2, 2);
    h.lead(0, E3, 1, Reason::TakeoverAfterProbe);
    h.run(0, E3, 2, 22);
    h.lead(1, E4, 2, Reason::EpochRaised);
    h.follow(0, E4);
    // The refresh of frame 2's output (a level in the DST), as node 1's history has it.
    h.emit(1, output(E4, 2, 0, 2));
    let c = h.finish();
    assert_eq!(broken(&c), vec![], "{:?}", c.violations());
    assert_eq!(c.exceptions.split_brain, 1);
}

/// Seeds 4275 and 15384 of 2000..19999 (2026-11-26): node 0 commits a level whose every
/// copy the output path loses; node 1, beside it but unable to hear it, leads from its
/// older state (frame 1) and skips frames 2 and 3, whose inputs are gone; node 0 follows
/// it. The level is not in the history the pair ends on, so the sink rightly ends on the
/// frame 1 value. The checker required the frame 2 value as the key's final one.
#[test]
fn checker_level_of_a_history_that_skipped_its_frame_is_not_the_final_value() {
    let mut h = History::new();
    h.checker.on_output_path(true, Some(100_000_000));
    h.lead(0, E1, 0, Reason::StartedFirst);
    h.run_level(0, E1, 1, 7, true);
    h.follow(1, E1);
    let mut step = Step::new(1, 1, &[fnv64(&level(E1, 1, 7, 1).payload)]);
    step.output_kinds[0] = twinloop::OutputKind::Level { key: 7 };
    h.checker.on_steps(h.now, 1, &[(E1, step)]);
    // Frame 2's level: committed, every copy lost on the path.
    h.run_level(0, E1, 2, 7, false);
    let lost = level(E1, 2, 7, 2);
    h.checker.on_emit_sent(h.now, 0, &lost);
    h.checker.on_path_dropped(&lost);
    h.lead(1, E2, 1, Reason::StartedFirst);
    h.skip(1, E2, 2, 3);
    h.follow(0, E2);
    let c = h.finish();
    assert_eq!(broken(&c), vec![], "{:?}", c.violations());
    assert_eq!(c.exceptions.level_parted, 1);
    assert_eq!(c.exceptions.lost_network, 1);
}

/// Node 0 leads `E1` with the refresh on and runs key 7's level at frames 1 and 2; the
/// output path loses frame 2's.
fn level_of_frame_2_lost() -> History {
    let mut h = History::new();
    h.checker.on_output_path(true, Some(100_000_000));
    h.lead(0, E1, 0, Reason::StartedFirst);
    h.run_level(0, E1, 1, 7, true);
    h.run_level(0, E1, 2, 7, false);
    let lost = level(E1, 2, 7, 2);
    h.checker.on_emit_sent(h.now, 0, &lost);
    h.checker.on_path_dropped(&lost);
    h
}

/// Issue 22 (branch a3): a level the path lost, then a backup that installed a state
/// transferred after its frame leads. The transfer carries the refresh table, so the new
/// leader owes the level: its absence at the end is a violation. Before, it was counted
/// apart as `level_lost_transfer` (an open limit) and the run passed.
#[test]
fn checker_level_lost_before_a_transfer_is_owed_by_the_node_that_installed_it() {
    let mut h = level_of_frame_2_lost();
    // Node 1 installs the state of frame 2, then leads; node 0, cut off, follows it.
    h.now += 1;
    h.checker
        .on_transition(h.now, 1, &transition(Role::Backup, E1, 2, Reason::InSync));
    h.lead(1, E2, 2, Reason::TakeoverNoPrimary);
    h.follow(0, E2);
    let c = h.finish();
    assert!(broken(&c).contains(&Invariant::Levels), "{:?}", c.violations());
    assert!(
        c.violations().iter().any(|v| v.detail.contains("level key 7")),
        "{:?}",
        c.violations()
    );
    assert_eq!(c.exceptions.level_before_cold_start, 0);
}

/// The same lost level, but the history the pair ends on began from a cold start after
/// its frame (node 1, never paired, led a fresh application from frame 5; node 0 followed
/// it): that history never had the level, and the sink is not held to it (counted
/// `level_before_cold_start`, docs/DECISIONS.md 2026-11-26, "Levels across a state
/// transfer").
#[test]
fn checker_level_lost_before_the_final_history_cold_start_is_counted_apart() {
    let mut h = level_of_frame_2_lost();
    h.lead(1, E2, 4, Reason::StartedFirst);
    h.run(1, E2, 5, 5);
    h.follow(0, E2);
    let c = h.finish();
    assert!(
        !c.violations().iter().any(|v| v.detail.contains("level key 7")),
        "{:?}",
        c.violations()
    );
    assert_eq!(c.exceptions.level_before_cold_start, 1);
}

/// Issue 22, `--acks` (branch g7): a backup that installed a state transferred after an
/// event's frame holds the primary's unacknowledged events (the transfer's content version
/// 3) and re-sends them when it leads; what its sender's application produced up to the
/// snapshot is its own. Acks off, the transfer carries no events: such an emit is one its
/// application never produced (invariant 2), as before.
#[test]
fn checker_event_resent_by_the_node_that_installed_a_transfer_with_acks() {
    for acks in [true, false] {
        let mut h = History::new();
        h.checker.acks = acks;
        h.lead(0, E1, 0, Reason::StartedFirst);
        h.run(0, E1, 1, 7);
        // Node 1 installs the state of frame 1, then leads and re-sends (1, 0).
        h.now += 1;
        h.checker
            .on_transition(h.now, 1, &transition(Role::Backup, E1, 1, Reason::InSync));
        h.lead(1, E2, 1, Reason::TakeoverNoPrimary);
        h.now += 1;
        let resent = output(E2, 1, 0, 7);
        let (verdict, _) = h.sink.offer(h.now, 1, &resent);
        h.checker.on_emit(h.now, 1, &resent, verdict);
        h.follow(0, E2);
        let c = h.finish();
        let never_produced = c
            .violations()
            .iter()
            .any(|v| v.invariant == Invariant::ExactlyOnce && v.detail.contains("never produced"));
        assert_eq!(never_produced, !acks, "acks {acks}: {:?}", c.violations());
    }
}

/// Invariant 25: a commit reports sent only outputs some node emitted. A primary that
/// holds output 1 of frame 2 (acked release) and reports it sent, as mutant
/// `release.rs:202:41` did, is reported at the commit; the same commit with the held bit
/// clear, a bit set for an output the old primary emitted, and a level held for a burst
/// pass.
#[test]
fn checker_commit_reporting_an_unemitted_event_sent_is_reported() {
    let with_mask = |frame: u64, sent_mask: u32| Commit {
        kind: CommitKind::Ran {
            input_digest: 0,
            outputs: 2,
            sent_mask,
            output_digest: 0,
        },
        ..commit(frame, 2)
    };
    let produce = |h: &mut History, node: usize, frame: u64| {
        for index in 0..2 {
            h.checker.produced.insert((frame, node, index), 0);
        }
    };
    let mut h = History::new();
    h.lead(0, E1, 0, Reason::StartedFirst);
    h.run(0, E1, 1, 1);
    // Frame 2: output 0 emitted, output 1 held for the backup's ack.
    produce(&mut h, 0, 2);
    h.emit(0, output(E1, 2, 0, 2));
    h.checker.on_commit(h.now, 0, E1, &with_mask(2, 0b01));
    assert_eq!(broken(&h.checker), vec![], "the held output reported unsent");
    h.checker.on_commit(h.now, 0, E1, &with_mask(2, 0b11));
    assert_eq!(broken(&h.checker), vec![Invariant::SentReported]);
    assert!(
        h.checker.violations()[0].detail.contains("frame 2"),
        "{:?}",
        h.checker.violations()
    );

    // The successor's commit of frame 3 reports sent what the old primary emitted; a
    // level it holds for its burst is reported sent before it goes out.
    let mut h = History::new();
    h.lead(0, E1, 0, Reason::StartedFirst);
    produce(&mut h, 0, 3);
    h.emit(0, output(E1, 3, 0, 3));
    h.emit(0, output(E1, 3, 1, 4));
    h.checker.on_crash(h.now, 0);
    h.follow(1, E1);
    h.lead(1, E2, 2, Reason::TakeoverAfterProbe);
    produce(&mut h, 1, 3);
    h.checker.on_commit(h.now, 1, E2, &with_mask(3, 0b11));
    produce(&mut h, 1, 4);
    h.checker.level_keys.insert((4, 1), 7);
    h.emit(1, output(E2, 4, 0, 5));
    h.checker.on_commit(h.now, 1, E2, &with_mask(4, 0b11));
    assert_eq!(broken(&h.checker), vec![]);
}

/// Invariant 14, the collapse: a new primary emits one value per level key for the frames
/// of its takeover's burst (here 3..=5, the frames in hand at the takeover), the newest.
/// One that emits frame 3's value and then frame 5's drove the plant through an
/// intermediate value, which the sink's order allows; the collapsed burst passes, and
/// frame 6, after the burst, goes out as usual.
#[test]
fn checker_level_two_values_of_a_key_within_a_takeovers_burst_is_a_violation() {
    let takeover = |emit_3: bool| {
        let mut h = History::new();
        h.lead(0, E1, 0, Reason::StartedFirst);
        h.run_level(0, E1, 1, 7, true);
        h.run_level(0, E1, 2, 7, true);
        h.checker.on_crash(h.now, 0);
        h.follow(1, E1);
        h.checker.on_ring(1, 1024, 5, 2);
        h.lead(1, E2, 2, Reason::TakeoverAfterProbe);
        h.run_level(1, E2, 3, 7, emit_3);
        h.run_level(1, E2, 4, 7, false);
        h.run_level(1, E2, 5, 7, true);
        h.run_level(1, E2, 6, 7, true);
        h.finish()
    };
    let c = takeover(false);
    assert_eq!(broken(&c), vec![], "{:?}", c.violations());
    let c = takeover(true);
    assert_eq!(broken(&c), vec![Invariant::Levels], "{:?}", c.violations());
    assert!(
        c.violations()[0]
            .detail
            .contains("two values of level key 7 within its burst (frames up to 5): (3, 0), then (5, 0)"),
        "{:?}",
        c.violations()
    );
}

/// Invariant 16's excuse, judged from the world (2026-11-28; before, the node's own
/// `events_dropped` excused every lost event): a primary may drop events from its full
/// queue only when at least `EVENTS_UNACKED_MAX` of those it emitted since it leads had no
/// ack delivered to it. An ack the replay window refuses (a repeat, or older than the
/// window) acknowledges nothing. 266 events emitted; then no acks (excused), 20 acks of
/// distinct sequence numbers (246 unacked: reported), the same 20 ids as repeats of one
/// ack (one taken: excused), or 20 acks far behind the newest (refused: excused).
#[test]
fn checker_events_dropped_only_when_the_world_kept_the_acks() {
    let unacked = twinloop::node::EVENTS_UNACKED_MAX as u64;
    // (case, the sequence number of the ack of frame f (none: no acks), reported)
    type Case = (&'static str, Option<fn(u64) -> u64>, bool);
    let cases: [Case; 4] = [
        ("no acks", None, false),
        ("20 acks", Some(|f| f), true),
        ("20 repeats", Some(|_| 1), false),
        ("20 too old", Some(|f| f), false),
    ];
    for (case, seq, reported) in cases {
        let mut h = History::new();
        h.checker.acks = true;
        h.lead(0, E1, 0, Reason::StartedFirst);
        for frame in 1..=unacked + 10 {
            h.emit(0, output(E1, frame, 0, 1));
        }
        if case == "20 too old" {
            // The newest ack came first: 1..=20 are more than 64 behind it.
            h.checker.on_ack_delivered(h.now, 0, 1, 200, &[]);
        }
        for frame in 1..=20 {
            if let Some(seq) = seq {
                h.checker.on_ack_delivered(h.now, 0, 1, seq(frame), &[(frame, 0)]);
            }
        }
        h.now += acks::DROP_JUDGED_AFTER;
        h.checker.on_events_dropped(h.now, 0, Some(E1), 1);
        let c = h.finish();
        let dropped = c
            .violations()
            .iter()
            .any(|v| v.invariant == Invariant::EventsApplied && v.detail.contains("full queue"));
        assert_eq!(dropped, reported, "{case}: {:?}", c.violations());
        assert_eq!(c.events_drop_excused.contains(&(0, E1)), !reported, "{case}");
    }
}
