//! Sentences for the core's enums, as the log, the journal and the console show them:
//! what serde cannot derive. The enums' snake_case *names* are the console schema's
//! (`super::schema`, from its serde renames); the functions here that return a name
//! only convert to the schema's type and ask it, and stay so that the shell's event
//! code reads as before.

use super::schema;
use crate::node::{Alarm, Notice, Reason, RefuseReason, ResyncCause, Role, SyncState};
use crate::wire::DelayReason;

/// `starting`, `primary` or `backup` ([`schema::Role`]).
pub fn role(role: Role) -> &'static str {
    schema::Role::from(role).name()
}

/// `alone`, `paired`, `joining`, `in_sync` or `lagging` ([`schema::Sync`]).
pub fn sync(sync: SyncState) -> &'static str {
    schema::Sync::from(sync).name()
}

/// The reason's name, and the resync cause for `resync_started` ([`schema::reason`]).
pub fn reason(reason: Reason) -> (&'static str, Option<&'static str>) {
    let (name, cause) = schema::reason(reason);
    (name.name(), cause.map(schema::ResyncCause::name))
}

/// The alarm's name and the frame it names, if any ([`schema::AlarmName`]).
pub fn alarm(alarm: Alarm) -> (&'static str, Option<u64>) {
    (schema::AlarmName::from(alarm).name(), schema::alarm_frame(alarm))
}

/// The notice's name ([`schema::NoticeName`]).
pub fn notice(notice: Notice) -> &'static str {
    schema::NoticeName::from(notice).name()
}

/// `joining` or `lagging` ([`schema::DelayReason`]).
pub fn delay_reason(reason: DelayReason) -> &'static str {
    schema::DelayReason::from(reason).name()
}

/// The refusal's name ([`schema::Refusal`]).
pub fn refuse(reason: RefuseReason) -> &'static str {
    schema::Refusal::from(reason).name()
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
        Reason::FencedAtStartup => {
            "fenced by a primary that led cold at the same start-up (neither heard the other lead): following it, this node's state since its start given up"
        }
        Reason::EpochRaised => "a starting peer announced a higher epoch: leading on above it",
        Reason::KeepingState => "fenced by a primary of another cold start: keeping this node's state for the operator",
    }
}

/// A sentence for the log.
pub fn alarm_text(alarm: Alarm) -> String {
    match alarm {
        Alarm::OutputDivergence { frame } => format!("outputs of frame {frame} differ from the primary's"),
        Alarm::StateDivergence { frame } => format!("state after frame {frame} differs from the primary's"),
        Alarm::InputLost { frame } => format!("input of frame {frame} was nowhere to be had: skipped"),
        Alarm::CommitLost { frame, last } => format!(
            "the old primary's commit of frame{} was lost: decided here without it, the state may differ from the old primary's from frame {frame}",
            if last > frame { format!("s {frame} to {last}") } else { format!(" {frame}") }
        ),
        Alarm::EventsDropped { frame } => format!(
            "the queue of events waiting for acks was full: the oldest were dropped unacknowledged, from frame {frame} on (a sink silent, or more events than outputs.acks can follow)"
        ),
        Alarm::SinkSilent { sink } => format!(
            "sink {sink} of outputs.sinks acknowledged nothing for outputs.ack_silence_ms while events wait: check the sink and the path back (its ack key, its address)"
        ),
        Alarm::OutputsHeldFull { frame } => format!(
            "outputs.release = \"acked\": the queue of outputs waiting for the backups' acks is full (oldest from frame {frame}): frames wait and their outputs go late until the backups acknowledge; check the backups and the sync links"
        ),
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
        RefuseReason::UnknownTarget => {
            "--to names no node of the pair or group (a pair's peer must have been heard): give the id of a backup (twinctl status lists them)"
        }
        RefuseReason::TargetIsPrimary => "--to names the primary: name the backup that is to take over",
        RefuseReason::TargetIsWitness => "--to names the witness, which never leads: name a backup",
        RefuseReason::TargetNotInSync => {
            "the backup named by --to is not following in sync (joining, lagging or silent): wait until twinctl status shows it in_sync, or name another"
        }
    }
}
