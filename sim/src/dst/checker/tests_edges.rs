//! Invariants 11 (join time) and 12 (divergence detected) on hand-made histories.

use super::*;
use twinloop::Instant;

const E1: u64 = 0x101;

fn transition(role: Role, sync: SyncState, reason: Reason) -> Transition {
    Transition {
        at: Instant::ZERO,
        role,
        sync,
        epoch: E1,
        frame: 0,
        reason,
    }
}

fn joining() -> Transition {
    transition(Role::Backup, SyncState::Joining, Reason::PrimaryFound)
}

fn in_sync() -> Transition {
    transition(Role::Backup, SyncState::InSync, Reason::InSync)
}

fn broken(checker: &Checker) -> Vec<Invariant> {
    checker.violations().iter().map(|v| v.invariant).collect()
}

fn finish(checker: &mut Checker, at: Nanos) {
    checker.finish(at, &BTreeMap::new());
}

/// Healed at 1,000 ns with a join bound of 500 ns.
fn healed() -> Checker {
    let mut c = Checker::new();
    c.on_start(0, 0);
    c.on_start(1, 0);
    c.on_heal(1_000, 500);
    c
}

#[test]
fn checker_join_after_healing_within_its_bound_passes() {
    let mut c = healed();
    c.on_transition(1_200, 1, &joining());
    c.on_transition(1_700, 1, &in_sync());
    finish(&mut c, 5_000);
    assert_eq!(broken(&c), vec![]);
    assert_eq!((c.joins_watched, c.join_ns_max), (1, 500));
}

#[test]
fn checker_join_after_healing_slower_than_its_bound_is_reported() {
    let mut c = healed();
    c.on_transition(1_200, 1, &joining());
    c.on_transition(1_701, 1, &in_sync());
    assert_eq!(broken(&c), vec![Invariant::JoinTime]);
}

#[test]
fn checker_join_begun_before_healing_counts_from_healing() {
    let mut c = Checker::new();
    c.on_transition(100, 1, &joining());
    c.on_heal(1_000, 500);
    c.on_transition(1_500, 1, &in_sync());
    assert_eq!(broken(&c), vec![]);
    c.on_transition(1_600, 1, &joining());
    c.on_transition(2_200, 1, &in_sync());
    assert_eq!(broken(&c), vec![Invariant::JoinTime]);
}

#[test]
fn checker_join_before_healing_is_not_judged() {
    let mut c = Checker::new();
    c.on_transition(100, 1, &joining());
    c.on_transition(900_000, 1, &in_sync());
    assert_eq!(broken(&c), vec![]);
    assert_eq!(c.joins_watched, 0);
}

#[test]
fn checker_join_asked_again_keeps_its_start() {
    let mut c = healed();
    c.on_transition(1_100, 1, &joining());
    c.on_transition(1_300, 1, &joining());
    c.on_transition(1_650, 1, &in_sync());
    assert_eq!(broken(&c), vec![Invariant::JoinTime], "550 ns from the first attempt");
}

#[test]
fn checker_join_never_in_sync_is_reported_at_the_end() {
    let mut c = healed();
    c.on_transition(1_100, 1, &joining());
    finish(&mut c, 1_601);
    assert_eq!(broken(&c), vec![Invariant::JoinTime]);
}

/// Node 0 primary, node 1 its backup in epoch `E1`; node 0's state perturbed at frame 10
/// (its digest 2 from there, the backup's 1), the resync bound 1,000 ns.
fn diverged(kind: Perturbed) -> Checker {
    let mut c = Checker::new();
    c.on_start(0, 0);
    c.on_start(1, 0);
    c.on_transition(1, 1, &in_sync());
    c.on_steps(2, 0, &[(E1, Step::new(9, 1, &[9])), (E1, Step::new(10, 2, &[10]))]);
    c.on_diverge_fired(0, 1, E1, 10, kind, 1_000);
    c.on_steps(3, 0, &[(E1, Step::new(11, 2, &[11])), (E1, Step::new(12, 2, &[12]))]);
    c.on_steps(4, 1, &[(E1, Step::new(9, 1, &[9])), (E1, Step::new(10, 1, &[10]))]);
    c
}

#[test]
fn checker_divergence_alarmed_and_resynced_passes() {
    let mut c = diverged(Perturbed::State);
    c.on_steps(5, 1, &[(E1, Step::new(11, 1, &[11]))]);
    c.on_divergence_alarm(5, 1, 11);
    c.on_transition(5, 1, &joining());
    c.on_transition(900, 1, &in_sync());
    // Installed at frame 12: from there on it agrees, and invariant 4 judges again.
    c.on_steps(901, 1, &[(E1, Step::new(13, 2, &[13]))]);
    finish(&mut c, 5_000);
    assert_eq!(broken(&c), vec![]);
    assert_eq!((c.divergences_caught, c.divergences_recovered), (1, 1));
}

#[test]
fn checker_divergence_without_alarm_is_reported() {
    let mut c = diverged(Perturbed::State);
    c.on_steps(5, 1, &[(E1, Step::new(11, 1, &[11]))]);
    assert_eq!(broken(&c), vec![], "the alarm may still come with frame 11");
    c.on_steps(6, 1, &[(E1, Step::new(12, 1, &[12]))]);
    assert_eq!(broken(&c), vec![Invariant::DivergenceDetected]);
}

#[test]
fn checker_divergence_never_alarmed_is_reported_at_the_end() {
    let mut c = diverged(Perturbed::Output);
    finish(&mut c, 5_000);
    assert_eq!(broken(&c), vec![Invariant::DivergenceDetected]);
}

#[test]
fn checker_divergence_resynced_late_is_reported() {
    let mut c = diverged(Perturbed::State);
    c.on_divergence_alarm(5, 1, 10);
    c.on_transition(5, 1, &joining());
    c.on_transition(1_006, 1, &in_sync());
    assert_eq!(broken(&c), vec![Invariant::DivergenceDetected]);
}

#[test]
fn checker_divergence_alarmed_never_resynced_is_reported_at_the_end() {
    let mut c = diverged(Perturbed::State);
    c.on_divergence_alarm(5, 1, 10);
    finish(&mut c, 1_006);
    assert_eq!(broken(&c), vec![Invariant::DivergenceDetected]);
}

#[test]
fn checker_corrupted_frame_copy_refused_is_absorbed() {
    let mut c = Checker::new();
    c.on_start(0, 0);
    c.on_start(1, 0);
    c.on_steps(2, 0, &[(E1, Step::new(10, 1, &[10])), (E1, Step::new(11, 1, &[11]))]);
    c.on_steps(2, 0, &[(E1, Step::new(12, 1, &[12]))]);
    c.on_diverge_fired(1, 1, E1, 10, Perturbed::FrameCopy, 1_000);
    c.on_steps(4, 1, &[(E1, Step::new(10, 1, &[10])), (E1, Step::new(11, 1, &[11]))]);
    c.on_steps(5, 1, &[(E1, Step::new(12, 1, &[12]))]);
    finish(&mut c, 5_000);
    assert_eq!(broken(&c), vec![]);
    assert_eq!(c.divergences_absorbed, 1);
}

#[test]
fn checker_divergence_watch_cut_short_by_a_fault_is_not_judged() {
    let mut c = diverged(Perturbed::Output);
    c.end_diverge_watch();
    c.on_steps(5, 1, &[(E1, Step::new(11, 1, &[11])), (E1, Step::new(12, 1, &[12]))]);
    finish(&mut c, 5_000);
    assert_eq!(broken(&c), vec![]);
}

#[test]
fn checker_digest_difference_without_injection_is_still_reported() {
    let mut c = diverged(Perturbed::State);
    // Another epoch: the injection does not explain it.
    c.on_steps(5, 0, &[(0x202, Step::new(20, 3, &[20]))]);
    c.on_steps(6, 1, &[(0x202, Step::new(20, 4, &[20]))]);
    assert_eq!(broken(&c), vec![Invariant::DigestAgreement]);
}

/// Mutation testing (2026-11-26): a node that kept its state for the operator against a
/// primary of its own cold start passed the DST (the simulated operator rejoins at once).
#[test]
fn checker_colder_primary_only_against_a_later_cold_start() {
    let mut checker = Checker::new();
    checker.on_colder_primary(1, 0, 0x202, 0x101);
    assert!(broken(&checker).is_empty(), "a later cold start: kept rightly");
    for (origin, own_origin) in [(0x101, 0x101), (0x101, 0x202), (0x202, 0)] {
        let mut checker = Checker::new();
        checker.on_colder_primary(1, 0, origin, own_origin);
        assert_eq!(
            broken(&checker),
            [Invariant::StateContinuity],
            "{origin:#x} against {own_origin:#x}"
        );
    }
}

/// Mutation testing (2026-11-26): a primary that handed over for its input within the
/// hold passed the DST.
#[test]
fn checker_input_handover_within_the_hold_is_reported() {
    let ms = core::time::Duration::from_millis;
    let mut checker = Checker::new();
    checker.on_input_handover(1, 0, ms(1000), ms(1000));
    assert!(broken(&checker).is_empty(), "at the hold's end");
    checker.on_input_handover(2, 1, ms(999), ms(1000));
    assert_eq!(broken(&checker), [Invariant::Switchover]);
}
