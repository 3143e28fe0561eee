//! Invariant 5, liveness: the conditions the runner checks after healing (the runner
//! owns the bound and the settling time).

use super::*;

/// The liveness condition: exactly one primary, `Paired`, and the other node a backup
/// `InSync` in the same epoch. `None` stands for a node that is not running.
pub fn pair_converged(statuses: &[Option<Status>; 2]) -> bool {
    let [Some(a), Some(b)] = statuses else {
        return false;
    };
    let (primary, backup) = match (a.role, b.role) {
        (Role::Primary, Role::Backup) => (a, b),
        (Role::Backup, Role::Primary) => (b, a),
        _ => return false,
    };
    primary.sync == SyncState::Paired
        && backup.sync == SyncState::InSync
        && primary.epoch == backup.epoch
        && primary.switchover.is_none()
        && backup.switchover.is_none()
}

/// After convergence: still exactly one primary and a backup that follows it with state
/// (in sync, or lagging while it catches up on a burst) in the same epoch.
pub fn pair_following(statuses: &[Option<Status>; 2]) -> bool {
    let [Some(a), Some(b)] = statuses else {
        return false;
    };
    let (primary, backup) = match (a.role, b.role) {
        (Role::Primary, Role::Backup) => (a, b),
        (Role::Backup, Role::Primary) => (b, a),
        _ => return false,
    };
    matches!(backup.sync, SyncState::InSync | SyncState::Lagging) && primary.epoch == backup.epoch
}
