//! Stable names (snake_case, as the console and the hook's environment show them) and
//! sentences (as the log shows them) for the core's enums. The names are part of the
//! console protocol (`docs/CONSOLE.md`): they change only with its version.

use crate::node::{Alarm, Notice, Reason, RefuseReason, ResyncCause, Role, SyncState};
use crate::wire::{DelayReason, WireRole, WireSync};

/// `starting`, `primary` or `backup`.
pub fn role(role: Role) -> &'static str {
    match role {
        Role::Starting => "starting",
        Role::Primary => "primary",
        Role::Backup => "backup",
    }
}

/// `alone`, `paired`, `joining`, `in_sync` or `lagging`.
pub fn sync(sync: SyncState) -> &'static str {
    match sync {
        SyncState::Alone => "alone",
        SyncState::Paired => "paired",
        SyncState::Joining => "joining",
        SyncState::InSync => "in_sync",
        SyncState::Lagging => "lagging",
    }
}

/// The peer's role as it announces it.
pub fn wire_role(role: WireRole) -> &'static str {
    match role {
        WireRole::Starting => "starting",
        WireRole::Primary => "primary",
        WireRole::Backup => "backup",
    }
}

/// The peer's sync state as it announces it (`none` for a primary or starting node).
pub fn wire_sync(sync: WireSync) -> &'static str {
    match sync {
        WireSync::Joining => "joining",
        WireSync::InSync => "in_sync",
        WireSync::Lagging => "lagging",
        WireSync::NotApplicable => "none",
    }
}

/// The reason's name, and the resync cause for `resync_started`.
pub fn reason(reason: Reason) -> (&'static str, Option<&'static str>) {
    match reason {
        Reason::StartedFirst => ("started_first", None),
        Reason::WonTiebreak => ("won_tiebreak", None),
        Reason::PrimaryFound => ("primary_found", None),
        Reason::TakeoverAfterProbe => ("takeover_after_probe", None),
        Reason::TakeoverNoPrimary => ("takeover_no_primary", None),
        Reason::SwitchoverRequested => ("switchover_requested", None),
        Reason::SwitchoverCompleted => ("switchover_completed", None),
        Reason::SwitchoverHandedOver => ("switchover_handed_over", None),
        Reason::SwitchoverAborted => ("switchover_aborted", None),
        Reason::FencedByEpoch => ("fenced_by_epoch", None),
        Reason::ResyncStarted(cause) => ("resync_started", Some(resync_cause(cause))),
        Reason::InSync => ("in_sync", None),
        Reason::Lagging => ("lagging", None),
        Reason::CaughtUp => ("caught_up", None),
        Reason::PrimaryLostWhileJoining => ("primary_lost_while_joining", None),
        Reason::BackupLost => ("backup_lost", None),
        Reason::BackupInSync => ("backup_in_sync", None),
        Reason::InputHandover => ("input_handover", None),
        Reason::PairingRefused => ("pairing_refused", None),
        Reason::ForcedByOperator => ("forced_by_operator", None),
        Reason::KeepingState => ("keeping_state", None),
    }
}

/// `lag`, `divergence`, `fenced` or `transfer_failed`.
pub fn resync_cause(cause: ResyncCause) -> &'static str {
    match cause {
        ResyncCause::Lag => "lag",
        ResyncCause::Divergence => "divergence",
        ResyncCause::Fenced => "fenced",
        ResyncCause::TransferFailed => "transfer_failed",
    }
}

/// A sentence for the log.
pub fn reason_text(reason: Reason) -> &'static str {
    match reason {
        Reason::StartedFirst => "heard nobody at start-up",
        Reason::WonTiebreak => "won the start-up tiebreak",
        Reason::PrimaryFound => "found a primary at start-up",
        Reason::TakeoverAfterProbe => "the primary was silent and did not answer the probe",
        Reason::TakeoverNoPrimary => "the peer answered the probe but does not lead",
        Reason::SwitchoverRequested => "planned switchover requested",
        Reason::SwitchoverCompleted => "took over in a planned switchover",
        Reason::SwitchoverHandedOver => "handed over in a planned switchover",
        Reason::SwitchoverAborted => "planned switchover did not complete in time",
        Reason::FencedByEpoch => "saw a higher epoch",
        Reason::ResyncStarted(ResyncCause::Lag) => "resync: lagging too far behind",
        Reason::ResyncStarted(ResyncCause::Divergence) => "resync: outputs or state diverged",
        Reason::ResyncStarted(ResyncCause::Fenced) => "resync: following a new primary",
        Reason::ResyncStarted(ResyncCause::TransferFailed) => "resync: the state transfer failed",
        Reason::InSync => "state installed, following the primary",
        Reason::Lagging => "fell behind the primary",
        Reason::CaughtUp => "caught up with the primary",
        Reason::PrimaryLostWhileJoining => "lost the primary before having its state",
        Reason::BackupLost => "the backup went silent",
        Reason::BackupInSync => "the backup follows in sync",
        Reason::InputHandover => "no frames here while the backup gets them: handing over",
        Reason::PairingRefused => "the peer differs in what a pair must share: waiting, not pairing",
        Reason::ForcedByOperator => "an operator said force-primary",
        Reason::KeepingState => "fenced by a primary of another cold start: keeping this node's state for the operator",
    }
}

/// The alarm's name and the frame it names, if any.
pub fn alarm(alarm: Alarm) -> (&'static str, Option<u64>) {
    match alarm {
        Alarm::OutputDivergence { frame } => ("output_divergence", Some(frame)),
        Alarm::StateDivergence { frame } => ("state_divergence", Some(frame)),
        Alarm::InputLost { frame } => ("input_lost", Some(frame)),
        Alarm::CannotTakeOver => ("cannot_take_over", None),
        Alarm::TransferRejected => ("transfer_rejected", None),
        Alarm::InputSilent => ("input_silent", None),
        Alarm::EpochRefused { .. } => ("epoch_refused", None),
        Alarm::FrameRefused { frame } => ("frame_refused", Some(frame)),
        Alarm::FramesStale { frame } => ("frames_stale", Some(frame)),
        Alarm::EpochExhausted { .. } => ("epoch_exhausted", None),
        Alarm::PairingRefused { .. } => ("pairing_refused", None),
        Alarm::SyncKeyMismatch { .. } => ("sync_key_mismatch", None),
        Alarm::PeerIsSelf { .. } => ("sync_peer_is_self", None),
        Alarm::ColdStartHeld => ("cold_start_held", None),
        Alarm::ColderPrimary { .. } => ("colder_primary", None),
    }
}

/// A sentence for the log.
pub fn alarm_text(alarm: Alarm) -> String {
    match alarm {
        Alarm::OutputDivergence { frame } => format!("outputs of frame {frame} differ from the primary's"),
        Alarm::StateDivergence { frame } => format!("state after frame {frame} differs from the primary's"),
        Alarm::InputLost { frame } => format!("input of frame {frame} was nowhere to be had: skipped"),
        Alarm::CannotTakeOver => "the primary is silent but this backup has no state to take over with".into(),
        Alarm::TransferRejected => "the state transfer did not install".into(),
        Alarm::InputSilent => {
            "no frame from the I/O source for runtime.input_handover_ms, and no handover: check the input path".into()
        }
        Alarm::EpochRefused { epoch } => format!(
            "a peer claimed epoch {epoch}, above the bound {}: its messages are dropped (forged, or a corrupt state file on the peer)",
            crate::EPOCH_MAX
        ),
        Alarm::FrameRefused { frame } => format!(
            "frame {frame} is beyond frame_jump_max of the frames in hand: refused (a forged or corrupt frame, or a source that jumped: give it a new source session)"
        ),
        Alarm::FramesStale { frame } => format!(
            "frames from the I/O source are older than the last run (frame {frame}): a source that restarted its numbering must start a new source session"
        ),
        Alarm::EpochExhausted { epoch } => format!(
            "no epoch is left above {epoch} (bound {}): this node will not lead; stop both nodes and reset their state files",
            crate::EPOCH_MAX
        ),
        Alarm::PairingRefused { mismatch } => format!("not pairing: {}", mismatch.message()),
        Alarm::SyncKeyMismatch {
            peer_keyed: false,
            peer_node_id,
            ..
        } => format!(
            "sync key mismatch: the peer (node {peer_node_id}) sends without a MAC and this node has a sync key: configure the same sync key file on both nodes"
        ),
        Alarm::SyncKeyMismatch {
            peer_keyed: true,
            peer_node_id,
            ..
        } => format!(
            "sync key mismatch: the peer (node {peer_node_id}) authenticates with another key: configure the same sync key file on both nodes"
        ),
        Alarm::PeerIsSelf { .. } => {
            "this node receives its own sync messages: the link's peer address points at this node; set it to the peer's".into()
        }
        Alarm::ColdStartHeld => {
            "no application state, and the peer that holds the pair's state is silent (it may be frozen): not leading from a cold start; twinctl force-primary if it is gone for good".into()
        }
        Alarm::ColderPrimary { origin, own_origin } => format!(
            "fenced by a primary whose state goes back to another cold start (epoch {origin:#x}, this node's {own_origin:#x}): keeping this node's state; twinctl force-primary to lead with it, twinctl rejoin to take the primary's"
        ),
    }
}

/// The notice's name.
pub fn notice(notice: Notice) -> &'static str {
    match notice {
        Notice::ProbeSent => "probe_sent",
        Notice::FalseDeath => "false_death",
        Notice::LinkUp(_) => "link_up",
        Notice::LinkDown(_) => "link_down",
        Notice::NonceRedrawn => "nonce_redrawn",
        Notice::TransferStarted { .. } => "transfer_started",
        Notice::TransferCompleted { .. } => "transfer_completed",
        Notice::SwitchoverDelayed { .. } => "switchover_delayed",
        Notice::SwitchoverRefused => "switchover_refused",
        Notice::SourceRestarted { .. } => "source_restarted",
    }
}

/// `joining` or `lagging`.
pub fn delay_reason(reason: DelayReason) -> &'static str {
    match reason {
        DelayReason::Joining => "joining",
        DelayReason::Lagging => "lagging",
    }
}

/// The refusal's name.
pub fn refuse(reason: RefuseReason) -> &'static str {
    match reason {
        RefuseReason::NoHealthyBackup => "no_healthy_backup",
        RefuseReason::BackupJoining => "backup_joining",
        RefuseReason::InProgress => "in_progress",
        RefuseReason::NotReady => "not_ready",
        RefuseReason::NoPrimary => "no_primary",
        RefuseReason::NotWaiting => "not_waiting",
    }
}

/// A sentence for the log and the console.
pub fn refuse_text(reason: RefuseReason) -> &'static str {
    match reason {
        RefuseReason::NoHealthyBackup => "there is no backup, or it has been silent",
        RefuseReason::BackupJoining => "the backup is still receiving its state",
        RefuseReason::InProgress => "a switchover is already under way",
        RefuseReason::NotReady => "this node is still starting",
        RefuseReason::NoPrimary => "this node is a backup and hears no primary",
        RefuseReason::NotWaiting => {
            "this node is not waiting for an operator (force-primary: starting; rejoin: keeping its state)"
        }
    }
}
