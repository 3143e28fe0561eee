//! Invariant 19, a primary steps down only below a successor (issue 21): a node that
//! leaves the primary role — a transition from `Primary` to any other role; a crash is
//! not one — must have been told of a higher epoch: a message a node sent, carrying an
//! epoch above the one it led, reached its current incarnation before. Otherwise the
//! plant has no primary until the other node's detection window ends (or for good, when
//! the other node cannot lead), for nothing: mutant `switchover.rs:394:62`, a released
//! primary whose release was lost while its backup lived, stepped down at the
//! switchover's deadline to its own epoch instead of aborting and running on, and passed
//! every seed.
//!
//! Every reason a primary leaves with is such a case by design: `FencedByEpoch` (a
//! header above its epoch, or a successor's epoch held back in `fence` until the
//! switchover's deadline), `SwitchoverHandedOver` (the successor's `SwitchTaken`, in its
//! higher epoch), `KeepingState` and `FencedAtStartup` (fenced by a higher epoch's
//! primary), `PairingRefused` (a refused primary of a higher epoch; of the same epoch only
//! for two nodes of one id, which the DST never runs). `ResyncStarted` and
//! `PrimaryLostWhileJoining` come from a backup only. So no reason is exempt.
//!
//! What the node was told is the world's record, not the core's word: the highest epoch
//! in the header of any datagram a node sent that was delivered to the incarnation and
//! decodes under the pair's key — refused as not fresh or not (whether the core reads an
//! epoch before it refuses a message is its business), through the links or as the
//! attacker's replay (a replayed datagram is a node's, arriving late; one the core must
//! reject is invariant 13's). The attacker's forgeries do not decode under the key and
//! do not count.

use super::*;

impl Checker {
    /// A datagram a node sent, carrying `epoch` in its header and readable under the
    /// pair's key, was delivered to node `node` (through the links, or replayed by the
    /// attacker), whatever the node did with it.
    pub fn on_epoch_delivered(&mut self, node: usize, epoch: u64) {
        self.stepdown_heard[node] = self.stepdown_heard[node].max(epoch);
    }

    /// At each transition of node `node`, before the tenure is ended: a primary that
    /// leaves the role must have been told of an epoch above the one it led.
    pub(super) fn check_step_down(&mut self, at: Nanos, node: usize, t: &Transition) {
        let Some(led) = self.primary_now[node] else {
            return;
        };
        let heard = self.stepdown_heard[node];
        if t.role == Role::Primary || heard > led {
            return;
        }
        self.violation(
            Invariant::StepDown,
            at,
            format!(
                "node {node}, primary of epoch {}, stepped down to {:?}/{:?} of epoch {} ({:?}) at frame {} \
                 though no message of a higher epoch reached it (the highest: {}): no successor leads, the \
                 plant has no primary",
                twinloop::EpochText(led),
                t.role,
                t.sync,
                twinloop::EpochText(t.epoch),
                t.reason,
                t.frame,
                twinloop::EpochText(heard)
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use twinloop::Instant;

    const E1: u64 = 0x101;
    const E2: u64 = 0x202;

    fn transition(role: Role, sync: SyncState, epoch: u64, reason: Reason) -> Transition {
        Transition {
            at: Instant::ZERO,
            role,
            sync,
            epoch,
            frame: 40,
            reason,
        }
    }

    /// Node 0 leads E1, node 1 follows it.
    fn pair_led_by_node_0() -> Checker {
        let mut c = Checker::new();
        c.on_start(0, 1);
        c.on_start(1, 1);
        c.on_persist(1, 0, E1);
        c.on_transition(
            1,
            0,
            &transition(Role::Primary, SyncState::Alone, E1, Reason::StartedFirst),
        );
        c.on_transition(2, 1, &transition(Role::Backup, SyncState::InSync, E1, Reason::InSync));
        c
    }

    fn step_down_violations(c: &Checker) -> Vec<&Violation> {
        c.violations()
            .iter()
            .filter(|v| v.invariant == Invariant::StepDown)
            .collect()
    }

    /// The mutant's history: the released primary demotes itself at the deadline to its
    /// own epoch, no higher one heard (its backup's heartbeats carry E1).
    #[test]
    fn stepdown_primary_demoted_to_its_own_epoch_nothing_higher_heard_violates_19() {
        let mut c = pair_led_by_node_0();
        c.on_epoch_delivered(0, E1);
        c.on_transition(
            10,
            0,
            &transition(Role::Primary, SyncState::Paired, E1, Reason::SwitchoverRequested),
        );
        c.on_transition(
            20,
            0,
            &transition(Role::Backup, SyncState::Joining, E1, Reason::FencedByEpoch),
        );
        let found = step_down_violations(&c);
        assert_eq!(found.len(), 1, "{:?}", c.violations());
        assert!(found[0].detail.contains("node 0") && found[0].detail.contains("FencedByEpoch"));
        assert_eq!(Invariant::StepDown.number(), 19);
        assert!(!Invariant::StepDown.is_safety(), "no primary is a liveness finding");
    }

    /// Every way out of the primary role the design has, each below a higher epoch that
    /// reached the node first: none is a violation.
    #[test]
    fn stepdown_below_a_higher_epoch_heard_allowed_for_every_reason() {
        for (role, sync, reason) in [
            (Role::Backup, SyncState::Joining, Reason::FencedByEpoch),
            (Role::Backup, SyncState::InSync, Reason::SwitchoverHandedOver),
            (Role::Starting, SyncState::Alone, Reason::KeepingState),
            (Role::Backup, SyncState::Joining, Reason::FencedAtStartup),
            (Role::Starting, SyncState::Alone, Reason::PairingRefused),
        ] {
            let mut c = pair_led_by_node_0();
            c.on_epoch_delivered(0, E2);
            c.on_transition(20, 0, &transition(role, sync, E2, reason));
            assert!(c.violations().is_empty(), "{reason:?}: {:?}", c.violations());
        }
    }

    /// A higher epoch heard by the other node, or by an earlier incarnation of this one,
    /// is no excuse; neither is the epoch the node led itself.
    #[test]
    fn stepdown_higher_epoch_heard_elsewhere_or_before_a_restart_violates_19() {
        let mut c = pair_led_by_node_0();
        c.on_epoch_delivered(1, E2);
        c.on_transition(
            20,
            0,
            &transition(Role::Starting, SyncState::Alone, E1, Reason::PairingRefused),
        );
        assert_eq!(step_down_violations(&c).len(), 1, "{:?}", c.violations());

        let mut c = Checker::new();
        c.on_start(0, 1);
        c.on_epoch_delivered(0, E2);
        c.on_crash(5, 0);
        c.on_start(0, 2);
        c.on_persist(6, 0, 0x301);
        c.on_transition(
            6,
            0,
            &transition(Role::Primary, SyncState::Alone, 0x301, Reason::StartedFirst),
        );
        c.on_epoch_delivered(0, 0x301);
        c.on_transition(
            9,
            0,
            &transition(Role::Backup, SyncState::Joining, 0x301, Reason::FencedByEpoch),
        );
        assert_eq!(step_down_violations(&c).len(), 1, "{:?}", c.violations());
    }

    /// Not judged: a crash (no transition), transitions that stay primary (a switchover
    /// aborted, a backup lost, an epoch raised), and a backup's own transitions.
    #[test]
    fn stepdown_crash_staying_primary_or_a_backup_not_judged() {
        let mut c = pair_led_by_node_0();
        for reason in [Reason::SwitchoverAborted, Reason::BackupLost, Reason::EpochRaised] {
            c.on_transition(10, 0, &transition(Role::Primary, SyncState::Alone, E1, reason));
        }
        c.on_transition(
            11,
            1,
            &transition(
                Role::Backup,
                SyncState::Joining,
                E1,
                Reason::ResyncStarted(twinloop::ResyncCause::Lag),
            ),
        );
        c.on_crash(12, 0);
        c.on_start(0, 2);
        c.on_transition(
            13,
            0,
            &transition(Role::Backup, SyncState::Joining, E1, Reason::PrimaryFound),
        );
        assert!(c.violations().is_empty(), "{:?}", c.violations());
    }
}
