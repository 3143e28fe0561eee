//! The console protocol's messages as types: every request and every response of
//! `docs/CONSOLE.md`, with the names it shows (snake_case) given by serde renames.
//!
//! This module is the one schema of the console. The node fills these types to answer
//! (`super::status`, `super::console_dispatch`), parses requests into [`Request`], and
//! every client — twinctl, the sim harness, the tests — reads responses into them
//! through [`super::client::Client`]. CONSOLE.md describes the same fields for people
//! and other languages; a test below checks that every field it documents round-trips.
//!
//! Rules that keep the wire as documented:
//! - Responses are written through a `serde_json::Value` (see [`line()`]), whose objects
//!   keep their keys sorted: keys go out in lexicographic order at every level whatever
//!   the order of the fields here.
//! - An `Option` field is written as `null` unless it says otherwise
//!   (`skip_serializing_if`): absent and `null` are different things on the wire.
//! - Fields a client may miss from older nodes carry `#[serde(default)]`; the fields
//!   that say what a node *is* (name, role, sync, epoch, frame) are required, so that a
//!   response without them is a clear error rather than a blank screen. Unknown fields
//!   are ignored (new ones may be added within version 1).

use crate::config::Config;
use crate::io::config::{FramesConfig, HookConfig, LinkConfig, OutputsConfig, ShutdownConfig};
use crate::node;
use crate::wire::{DelayReason as WireDelayReason, WireRole, WireSync};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The snake_case name serde gives a unit variant of one of this module's enums (e.g.
/// `in_sync` for [`Sync::InSync`]), for logs, journal events and the hook's environment.
/// Anything but a unit variant names itself `?` (a programming error, not data).
pub fn name<T: Serialize>(value: &T) -> &'static str {
    value.serialize(VariantName).unwrap_or("?")
}

/// Defines a name enum of the protocol and its conversion from the core's enum: the
/// conversion is a plain variant-to-variant match (exhaustive, so a variant added to the
/// core must be named here), and the name comes from serde.
macro_rules! name_enum {
    (
        $(#[$meta:meta])*
        $name:ident from $core:ty {
            $( $(#[$vmeta:meta])* $variant:ident <= $pattern:pat ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )*
            /// A name this version does not know (a newer node's, within protocol
            /// version 1): read as this rather than failing the whole response. The
            /// node never sends it.
            #[serde(other)]
            Unknown,
        }

        impl $name {
            /// The name as the console shows it.
            pub fn name(self) -> &'static str {
                name(&self)
            }
        }

        impl From<$core> for $name {
            fn from(value: $core) -> Self {
                #[allow(unused_variables)]
                match value {
                    $( $pattern => $name::$variant, )*
                }
            }
        }

        impl core::fmt::Display for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

name_enum! {
    /// A node's role (`status.role`, a transition's `role` and `previous_role`).
    Role from node::Role {
        /// Listening for a primary before deciding.
        Starting <= node::Role::Starting,
        /// Drives the actuators.
        Primary <= node::Role::Primary,
        /// Follows the primary one cycle behind.
        Backup <= node::Role::Backup,
    }
}

impl From<WireRole> for Role {
    fn from(role: WireRole) -> Self {
        match role {
            WireRole::Starting => Role::Starting,
            WireRole::Primary => Role::Primary,
            WireRole::Backup => Role::Backup,
        }
    }
}

name_enum! {
    /// How a node stands with its peer (`status.sync`).
    Sync from node::SyncState {
        /// Primary or starting, and no backup follows.
        Alone <= node::SyncState::Alone,
        /// Primary with a backup that follows in sync.
        Paired <= node::SyncState::Paired,
        /// Backup without state, waiting for or receiving a transfer.
        Joining <= node::SyncState::Joining,
        /// Backup with the primary's state, running every committed frame.
        InSync <= node::SyncState::InSync,
        /// Backup with state, behind by more than a few frames.
        Lagging <= node::SyncState::Lagging,
    }
}

name_enum! {
    /// The peer's sync state as it announces it (`status.peer.sync`).
    PeerSync from WireSync {
        /// Receiving its state.
        Joining <= WireSync::Joining,
        /// Following in sync.
        InSync <= WireSync::InSync,
        /// Behind.
        Lagging <= WireSync::Lagging,
        /// The peer is not a backup.
        None <= WireSync::NotApplicable,
    }
}

name_enum! {
    /// Why a role or sync state changed (a transition's `reason`, docs/CONSOLE.md "Reasons").
    ReasonName from node::Reason {
        /// Heard nobody at start-up.
        StartedFirst <= node::Reason::StartedFirst,
        /// Won the start-up tiebreak.
        WonTiebreak <= node::Reason::WonTiebreak,
        /// Found a primary at start-up.
        PrimaryFound <= node::Reason::PrimaryFound,
        /// The primary was silent and did not answer the probe.
        TakeoverAfterProbe <= node::Reason::TakeoverAfterProbe,
        /// The peer answered the probe but does not lead.
        TakeoverNoPrimary <= node::Reason::TakeoverNoPrimary,
        /// A planned switchover was requested.
        SwitchoverRequested <= node::Reason::SwitchoverRequested,
        /// Took over in a planned switchover.
        SwitchoverCompleted <= node::Reason::SwitchoverCompleted,
        /// Handed over in a planned switchover.
        SwitchoverHandedOver <= node::Reason::SwitchoverHandedOver,
        /// The planned switchover did not complete in time.
        SwitchoverAborted <= node::Reason::SwitchoverAborted,
        /// Saw a higher epoch.
        FencedByEpoch <= node::Reason::FencedByEpoch,
        /// A resync began (the cause is [`ResyncCause`]).
        ResyncStarted <= node::Reason::ResyncStarted(_),
        /// State installed, following the primary.
        InSync <= node::Reason::InSync,
        /// Fell behind the primary.
        Lagging <= node::Reason::Lagging,
        /// Caught up with the primary.
        CaughtUp <= node::Reason::CaughtUp,
        /// Lost the primary before having its state.
        PrimaryLostWhileJoining <= node::Reason::PrimaryLostWhileJoining,
        /// The backup went silent.
        BackupLost <= node::Reason::BackupLost,
        /// The backup follows in sync.
        BackupInSync <= node::Reason::BackupInSync,
        /// No frames here while the backup gets them: handing over.
        InputHandover <= node::Reason::InputHandover,
        /// The peer differs in what a pair must share.
        PairingRefused <= node::Reason::PairingRefused,
        /// An operator said force-primary.
        ForcedByOperator <= node::Reason::ForcedByOperator,
        /// Led on above a higher epoch a starting peer announced.
        EpochRaised <= node::Reason::EpochRaised,
        /// Fenced by a primary of another cold start: keeping this node's state.
        KeepingState <= node::Reason::KeepingState,
        /// Fenced by a primary that led cold at the same start-up: following it.
        FencedAtStartup <= node::Reason::FencedAtStartup,
    }
}

name_enum! {
    /// Why a resync started (`cause` of `resync_started`).
    ResyncCause from node::ResyncCause {
        /// Lagging too far behind.
        Lag <= node::ResyncCause::Lag,
        /// Outputs or state diverged.
        Divergence <= node::ResyncCause::Divergence,
        /// Following a new primary.
        Fenced <= node::ResyncCause::Fenced,
        /// The state transfer failed.
        TransferFailed <= node::ResyncCause::TransferFailed,
    }
}

/// The reason's name, and the resync cause for `resync_started`.
pub fn reason(reason: node::Reason) -> (ReasonName, Option<ResyncCause>) {
    let cause = match reason {
        node::Reason::ResyncStarted(cause) => Some(cause.into()),
        _ => None,
    };
    (reason.into(), cause)
}

name_enum! {
    /// An alarm's name (docs/CONSOLE.md, "Alarms").
    AlarmName from node::Alarm {
        /// The backup's outputs of a frame differ from the primary's.
        OutputDivergence <= node::Alarm::OutputDivergence { .. },
        /// The backup's state after a frame differs from the primary's.
        StateDivergence <= node::Alarm::StateDivergence { .. },
        /// A frame's input was nowhere to be had.
        InputLost <= node::Alarm::InputLost { .. },
        /// The primary is silent and this backup has no state.
        CannotTakeOver <= node::Alarm::CannotTakeOver,
        /// The state transfer did not install.
        TransferRejected <= node::Alarm::TransferRejected,
        /// No frame from the I/O source, and no handover.
        InputSilent <= node::Alarm::InputSilent,
        /// A peer claimed an epoch above the bound.
        EpochRefused <= node::Alarm::EpochRefused { .. },
        /// A frame beyond `frame_jump_max`.
        FrameRefused <= node::Alarm::FrameRefused { .. },
        /// Frames older than the last run.
        FramesStale <= node::Alarm::FramesStale { .. },
        /// No epoch is left.
        EpochExhausted <= node::Alarm::EpochExhausted { .. },
        /// The peer differs in what a pair must share.
        PairingRefused <= node::Alarm::PairingRefused { .. },
        /// The peer's sync key differs.
        SyncKeyMismatch <= node::Alarm::SyncKeyMismatch { .. },
        /// This node hears its own sync messages.
        SyncPeerIsSelf <= node::Alarm::PeerIsSelf { .. },
        /// No state, and the peer that holds it is silent.
        ColdStartHeld <= node::Alarm::ColdStartHeld,
        /// Fenced by a primary of another cold start.
        ColderPrimary <= node::Alarm::ColderPrimary { .. },
        /// A new primary decided frames whose commits it had lost.
        CommitLost <= node::Alarm::CommitLost { .. },
        /// The queue of events waiting for acks overflowed.
        EventsDropped <= node::Alarm::EventsDropped { .. },
        /// A sink acknowledged nothing for `outputs.ack_silence_ms`.
        SinkSilent <= node::Alarm::SinkSilent { .. },
        /// Acked outputs: the queue of outputs waiting for the backups' acks is full.
        OutputsHeldFull <= node::Alarm::OutputsHeldFull { .. },
    }
}

/// The frame an alarm names, if any.
pub fn alarm_frame(alarm: node::Alarm) -> Option<u64> {
    match alarm {
        node::Alarm::OutputDivergence { frame }
        | node::Alarm::StateDivergence { frame }
        | node::Alarm::InputLost { frame }
        | node::Alarm::FrameRefused { frame }
        | node::Alarm::FramesStale { frame }
        | node::Alarm::CommitLost { frame, .. }
        | node::Alarm::EventsDropped { frame }
        | node::Alarm::OutputsHeldFull { frame } => Some(frame),
        _ => None,
    }
}

name_enum! {
    /// A notice's name (journal events of kind `notice`).
    NoticeName from node::Notice {
        /// The primary is silent: probe sent.
        ProbeSent <= node::Notice::ProbeSent,
        /// The probe was answered.
        FalseDeath <= node::Notice::FalseDeath,
        /// A link came up.
        LinkUp <= node::Notice::LinkUp(_),
        /// A link went down.
        LinkDown <= node::Notice::LinkDown(_),
        /// Start-up nonces tied.
        NonceRedrawn <= node::Notice::NonceRedrawn,
        /// A state transfer started.
        TransferStarted <= node::Notice::TransferStarted { .. },
        /// A state transfer completed.
        TransferCompleted <= node::Notice::TransferCompleted { .. },
        /// The backup delays its agreement to a switchover.
        SwitchoverDelayed <= node::Notice::SwitchoverDelayed { .. },
        /// The primary refused a forwarded switchover.
        SwitchoverRefused <= node::Notice::SwitchoverRefused,
        /// The backup gave up a switchover it had agreed to after a stall.
        SwitchoverAbandoned <= node::Notice::SwitchoverAbandoned,
        /// The I/O source started a new session.
        SourceRestarted <= node::Notice::SourceRestarted { .. },
        /// Acked outputs: a new primary sent outputs the old one may have released.
        OutputsUncertain <= node::Notice::OutputsUncertain { .. },
    }
}

name_enum! {
    /// Why a backup delays a switchover (`delay_reason` of `switchover_delayed`).
    DelayReason from WireDelayReason {
        /// It is receiving its state.
        Joining <= WireDelayReason::Joining,
        /// It is behind.
        Lagging <= WireDelayReason::Lagging,
    }
}

name_enum! {
    /// Why the core refused an operator's command (docs/CONSOLE.md, "Refusals").
    Refusal from node::RefuseReason {
        /// No backup, or it has been silent.
        NoHealthyBackup <= node::RefuseReason::NoHealthyBackup,
        /// The backup is still receiving its state.
        BackupJoining <= node::RefuseReason::BackupJoining,
        /// A switchover is already under way.
        InProgress <= node::RefuseReason::InProgress,
        /// This node is still starting.
        NotReady <= node::RefuseReason::NotReady,
        /// This node is a backup and hears no primary.
        NoPrimary <= node::RefuseReason::NoPrimary,
        /// This node is not waiting for an operator.
        NotWaiting <= node::RefuseReason::NotWaiting,
        /// `switchover --to` names no node of the pair or group.
        UnknownTarget <= node::RefuseReason::UnknownTarget,
        /// `switchover --to` names the primary.
        TargetIsPrimary <= node::RefuseReason::TargetIsPrimary,
        /// `switchover --to` names the witness.
        TargetIsWitness <= node::RefuseReason::TargetIsWitness,
        /// `switchover --to` names a backup not following in sync.
        TargetNotInSync <= node::RefuseReason::TargetNotInSync,
    }
}

name_enum! {
    /// What a journal event is about (`kind`).
    EventKind from super::journal::EventKind {
        /// A role or sync change.
        Transition <= super::journal::EventKind::Transition,
        /// An alarm.
        Alarm <= super::journal::EventKind::Alarm,
        /// A notice.
        Notice <= super::journal::EventKind::Notice,
        /// Something the shell did (start, stop, hooks, console commands).
        Shell <= super::journal::EventKind::Shell,
    }
}

/// An error response's code (docs/CONSOLE.md, "Responses").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The line is not a JSON object.
    BadJson,
    /// A field is missing or has the wrong type.
    BadRequest,
    /// `cmd` names no command.
    UnknownCmd,
    /// The key is missing or wrong.
    BadKey,
    /// No key file is configured: commands that change state are disabled.
    NoKeyConfigured,
    /// The request line is longer than `LINE_BYTES_MAX`; the connection is closed.
    LineTooLong,
    /// Too many connections; this one is closed.
    TooManyConnections,
    /// The connection holds the slot kept for an authenticated operator: `auth` first.
    AuthRequired,
    /// A code this version does not know (a newer node's); never sent.
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The code as the response carries it.
    pub fn name(self) -> &'static str {
        name(&self)
    }
}

// ---------------------------------------------------------------- requests

/// `auth` of a state-changing request: a MAC over the connection's challenge
/// (`super::console::request_mac`), with a sequence number that increases on the
/// connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthProof {
    /// Higher than every `seq` accepted before on this connection.
    pub seq: u64,
    /// 32 hex digits.
    pub mac: String,
}

/// How a state-changing request proves the console key.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Proof {
    /// The key in clear (loopback consoles only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// A MAC over the connection's challenge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthProof>,
    /// `switchover` only: the id of the node to take over (`twinctl switchover --to`),
    /// 1..=255; absent: the backup. With `auth`, the MAC covers it
    /// (`super::console::mac_subject`). Other commands ignore it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<u64>,
}

/// A console request (docs/CONSOLE.md, "Requests"), tagged by `cmd`. The request's `id`
/// travels beside it ([`RequestLine`]); unknown fields are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case")]
pub enum Request {
    /// Who is this node, which protocol does it speak.
    Hello,
    /// The node's status.
    Status,
    /// The node's effective configuration.
    Config,
    /// Journal events after `since`, at most `limit`.
    Events {
        /// The last sequence number the client has (absent or `null`: 0).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<u64>,
        /// The most events to return, 1..=`EVENTS_LIMIT_MAX` (absent or `null`: the most).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u64>,
    },
    /// A planned switchover.
    Switchover(Proof),
    /// The operator's word to a starting node: lead now.
    ForcePrimary(Proof),
    /// The operator's word to a node keeping its state: join the primary.
    Rejoin(Proof),
    /// Proves the console key for the connection.
    Auth {
        /// The MAC, over the command name `auth`.
        auth: AuthProof,
    },
}

impl Request {
    /// The request's `cmd`.
    pub fn cmd(&self) -> &'static str {
        match self {
            Request::Hello => "hello",
            Request::Status => "status",
            Request::Config => "config",
            Request::Events { .. } => "events",
            Request::Switchover(_) => "switchover",
            Request::ForcePrimary(_) => "force-primary",
            Request::Rejoin(_) => "rejoin",
            Request::Auth { .. } => "auth",
        }
    }

    /// Every `cmd` of this version, for the `unknown_cmd` message.
    pub const CMDS: [&'static str; 8] = [
        "hello",
        "status",
        "events",
        "switchover",
        "force-primary",
        "rejoin",
        "config",
        "auth",
    ];
}

/// A request line as a client sends it: the request and its `id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestLine {
    /// Echoed in the response.
    #[serde(default)]
    pub id: Value,
    /// The request.
    #[serde(flatten)]
    pub request: Request,
}

// ---------------------------------------------------------------- responses

/// A success response: `ok` (true), `id`, `cmd` and the command's fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply<T> {
    /// `true`.
    pub ok: bool,
    /// The request's `id` (`null` when it had none).
    #[serde(default)]
    pub id: Value,
    /// The request's `cmd`.
    pub cmd: String,
    /// The command's fields.
    #[serde(flatten)]
    pub body: T,
}

/// An error response: `{"error":{"code","message"},"id","ok":false}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorReply {
    /// `false`.
    pub ok: bool,
    /// The request's `id`, `null` when it had none or could not be read.
    #[serde(default)]
    pub id: Value,
    /// What went wrong.
    pub error: ErrorBody,
}

/// `error` of an error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Stable.
    pub code: ErrorCode,
    /// For people; may change.
    pub message: String,
}

/// A response line: the value with sorted keys (through `serde_json::Value`, whose
/// objects are ordered maps), then a newline. serde_json escapes control characters, so
/// the text holds no raw newline.
pub fn line<T: Serialize>(value: &T) -> String {
    let mut text = serde_json::to_value(value)
        .unwrap_or_else(|e| serde_json::json!({"ok": false, "id": null, "error": {"code": "bad_request", "message": e.to_string()}}))
        .to_string();
    text.push('\n');
    text
}

/// The line of a success response.
pub fn ok_line<T: Serialize>(id: &Value, cmd: &str, body: T) -> String {
    line(&Reply {
        ok: true,
        id: id.clone(),
        cmd: cmd.to_string(),
        body,
    })
}

/// The line of an error response.
pub fn error_line(id: &Value, code: ErrorCode, message: &str) -> String {
    line(&ErrorReply {
        ok: false,
        id: id.clone(),
        error: ErrorBody {
            code,
            message: message.to_string(),
        },
    })
}

/// The `hello` response's fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The console protocol version the node speaks.
    pub protocol: u64,
    /// The node's software, e.g. `twinloop 0.1.0`.
    #[serde(default)]
    pub software: String,
    /// `runtime.node_id`.
    pub node_id: u64,
    /// `node.name`.
    pub name: String,
    /// Changes at every restart of the node process.
    #[serde(default)]
    pub boot_id: u64,
    /// 32 hex digits unique to the connection, which a request's `auth.mac` covers
    /// (absent from nodes that predate it: they take the key in clear).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenge: Option<String>,
}

/// The `status` response's fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReply {
    /// The node's status.
    pub status: Status,
}

/// The `status` object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// `runtime.node_id`.
    pub node_id: u64,
    /// `node.name`.
    pub name: String,
    /// The node's role.
    pub role: Role,
    /// How it stands with its peer.
    pub sync: Sync,
    /// The epoch this node leads or follows (0 = none yet).
    pub epoch: u64,
    /// `epoch >> 8`: the term counter.
    #[serde(default)]
    pub epoch_term: u64,
    /// `epoch & 0xFF`: the node that started the term.
    #[serde(default)]
    pub epoch_node: u64,
    /// The last frame run.
    pub frame: u64,
    /// Backup: frames committed by the primary and not yet run here.
    #[serde(default)]
    pub lag_frames: u64,
    /// What the peer last said about itself; `None` until it is heard.
    #[serde(default)]
    pub peer: Option<Peer>,
    /// One entry per sync link, in configuration order.
    #[serde(default)]
    pub links: Vec<Link>,
    /// Probes answered by a live primary.
    #[serde(default)]
    pub false_deaths: u64,
    /// Unplanned takeovers by this node.
    #[serde(default)]
    pub takeovers: u64,
    /// Planned switchovers this node took part in.
    #[serde(default)]
    pub switchovers: u64,
    /// Alarms raised since the node started.
    #[serde(default)]
    pub alarms: u64,
    /// The newest alarm.
    #[serde(default)]
    pub last_alarm: Option<LastAlarm>,
    /// The last role or sync change.
    #[serde(default)]
    pub last_transition: Option<LastTransition>,
    /// A planned switchover is under way on this node.
    #[serde(default)]
    pub switchover_in_progress: bool,
    /// What the switchover waits for, in words.
    #[serde(default)]
    pub switchover: Option<String>,
    /// Datagrams (and stale frames) the core dropped, by reason.
    #[serde(default)]
    pub rejections: Rejections,
    /// Backup: outputs produced here that the primary has not reported sent.
    #[serde(default)]
    pub unsent_outputs: u64,
    /// A state transfer under way on this node.
    #[serde(default)]
    pub transfer: Option<Transfer>,
    /// Frames this node decided as a new primary without the old primary's commit of
    /// them (`commit_lost` alarms).
    #[serde(default)]
    pub commits_lost: u64,
    /// The I/O source's session and its mapping to the pair's frames.
    #[serde(default)]
    pub source: Option<Source>,
    /// The node's input path (absent from nodes that predate it).
    #[serde(default)]
    pub input: Option<Input>,
    /// The shell's counters.
    #[serde(default)]
    pub io: IoCounters,
    /// A stop was requested and the node is handing over.
    #[serde(default)]
    pub stopping: bool,
    /// Since the node's shell started.
    #[serde(default)]
    pub uptime_ms: u64,
    /// The node's wall clock now.
    #[serde(default)]
    pub unix_ms: u64,
    /// Changes at every restart.
    #[serde(default)]
    pub boot_id: u64,
    /// The newest journal event's sequence number.
    #[serde(default)]
    pub events_last_seq: u64,
    /// `runtime.weight`: this node's weight in a group's succession (issue 16).
    #[serde(default)]
    pub weight: u64,
    /// Every peer this node is configured with, as it sees it: one entry in a pair, one
    /// per other member in a group (absent from nodes that predate groups).
    #[serde(default)]
    pub group: Vec<GroupPeer>,
    /// Acknowledged events (`[outputs] acks`, issue 22; `None`: acks off, or a node
    /// that predates them).
    #[serde(default)]
    pub acks: Option<Acks>,
    /// The output release mode and its queue (`[outputs] release`, issue 16; `None`: a
    /// node that predates it).
    #[serde(default)]
    pub outputs_release: Option<OutputsRelease>,
}

/// `status.outputs_release`: when the primary's outputs leave, and what waits (issue 16).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputsRelease {
    /// `immediate` or `acked` (`[outputs] release`).
    pub mode: String,
    /// Primary, acked mode: outputs held for the backups' acks now.
    pub held: u64,
    /// The frame of the oldest held output (0: none).
    pub held_oldest_frame: u64,
    /// Outputs released in acked mode without every in-sync backup's ack (none in sync,
    /// or held for the backup window), since start.
    pub unguarded: u64,
    /// Outputs sent at takeovers that the old primary may have released, since start.
    pub uncertain: u64,
    /// Backup: the frame up to which the primary said every output released.
    pub released_known: u64,
}

/// `status.acks`: the queue of events waiting for their sinks' acks (issue 22).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acks {
    /// Events waiting (primary: sent, not acked by every sink; backup: run, no ack
    /// passed on yet).
    pub pending: u64,
    /// How long ago the oldest waiting event first went out from this node (`None`: none
    /// waits).
    pub oldest_age_ms: Option<u64>,
    /// Re-sends made since start.
    pub resent: u64,
    /// Events dropped unacknowledged from the full queue since start.
    pub dropped: u64,
    /// Ack datagrams taken since start.
    pub acks_taken: u64,
    /// Ack datagrams refused since start (malformed, unauthenticated, replayed).
    pub acks_refused: u64,
    /// The indices (in `[outputs] sinks`) of the sinks silent for `ack_silence_ms`.
    pub sink_silent: Vec<u64>,
}

impl Status {
    /// True for the node that drives the actuators.
    pub fn is_primary(&self) -> bool {
        self.role == Role::Primary
    }

    /// True for a backup that follows with the primary's state, caught up.
    pub fn is_in_sync_backup(&self) -> bool {
        self.role == Role::Backup && self.sync == Sync::InSync
    }
}

/// `status.peer`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer {
    /// The peer's id.
    pub node_id: u64,
    /// The peer's role as it announces it.
    pub role: Role,
    /// The peer's sync state as it announces it.
    pub sync: PeerSync,
    /// The peer's epoch.
    #[serde(default)]
    pub epoch: u64,
    /// The last frame the peer has run.
    #[serde(default)]
    pub frame: u64,
    /// Since a valid message from the peer arrived.
    #[serde(default)]
    pub last_heard_ms_ago: u64,
}

/// `status.group[i]`: one other member of the pair or group, as this node sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupPeer {
    /// Its id (`[[peers]] id`; a pair's peer: its heard id, `None` until heard).
    #[serde(default)]
    pub node_id: Option<u64>,
    /// Its role as it last announced it (`None`: not heard).
    #[serde(default)]
    pub role: Option<Role>,
    /// Its sync state as it last announced it (`None`: not heard).
    #[serde(default)]
    pub sync: Option<PeerSync>,
    /// Its weight in the succession (0: a witness, or a pair's peer).
    #[serde(default)]
    pub weight: u64,
    /// It only votes: it runs no program and never leads.
    #[serde(default)]
    pub witness: bool,
    /// It was heard within the detection window.
    #[serde(default)]
    pub alive: bool,
    /// Its epoch, as last heard (0: not heard).
    #[serde(default)]
    pub epoch: u64,
    /// The last frame it has run, as last heard.
    #[serde(default)]
    pub frame: u64,
    /// Since a valid message from it arrived (`None`: never).
    #[serde(default)]
    pub last_heard_ms_ago: Option<u64>,
    /// Its highest accepted input frame, as its last heartbeat said.
    #[serde(default)]
    pub input_frame: u64,
    /// Its sync links.
    #[serde(default)]
    pub links: u64,
}

/// `status.links[i]`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Link {
    /// 0-based.
    pub index: u64,
    /// `links[i].name`.
    #[serde(default)]
    pub name: String,
    /// A valid message arrived within the detection window.
    pub up: bool,
    /// The last heartbeat round trip (0 = not measured yet).
    #[serde(default)]
    pub rtt_ns: u64,
    /// Valid messages received (counted by the core).
    #[serde(default)]
    pub received: u64,
    /// Since the last valid message; `None` = never.
    #[serde(default)]
    pub last_heard_ms_ago: Option<u64>,
    /// Datagrams sent on the control socket.
    #[serde(default)]
    pub sent_control: u64,
    /// Datagrams sent on the bulk socket.
    #[serde(default)]
    pub sent_bulk: u64,
    /// Datagrams received on the control socket (before validation).
    #[serde(default)]
    pub received_control: u64,
    /// Datagrams received on the bulk socket (before validation).
    #[serde(default)]
    pub received_bulk: u64,
    /// Datagrams that could not be sent.
    #[serde(default)]
    pub send_errors: u64,
    /// Datagrams from an IP other than the peer's, dropped.
    #[serde(default)]
    pub foreign_source: u64,
}

/// `status.last_alarm`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastAlarm {
    /// The alarm's name.
    pub name: AlarmName,
    /// The frame it names, if any.
    #[serde(default)]
    pub frame: Option<u64>,
    /// In words.
    #[serde(default)]
    pub message: String,
}

/// `status.last_transition`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastTransition {
    /// The role after the change.
    pub role: Role,
    /// The sync state after the change.
    pub sync: Sync,
    /// The epoch at the change.
    #[serde(default)]
    pub epoch: u64,
    /// The frame at the change.
    #[serde(default)]
    pub frame: u64,
    /// Why.
    pub reason: ReasonName,
    /// For `resync_started`: the cause.
    #[serde(default)]
    pub cause: Option<ResyncCause>,
    /// The reason in words.
    #[serde(default)]
    pub message: String,
    /// When, on the node's wall clock.
    #[serde(default)]
    pub unix_ms: u64,
    /// How long ago.
    #[serde(default)]
    pub ago_ms: u64,
}

/// `status.rejections`: sync-link datagrams (and stale frames) the core dropped, by
/// reason (the core's `Rejections`, docs/CONSOLE.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
#[allow(missing_docs)]
pub struct Rejections {
    pub too_short: u64,
    pub too_long: u64,
    pub unknown_version: u64,
    pub bad_checksum: u64,
    pub malformed: u64,
    pub misaddressed: u64,
    pub stale_epoch: u64,
    pub stale_frame: u64,
    pub unauthenticated: u64,
    pub replayed: u64,
    pub epoch_out_of_range: u64,
    pub frame_out_of_range: u64,
    pub frame_other_session: u64,
    pub frame_beyond_ring: u64,
    pub untagged: u64,
    pub wrong_key: u64,
    pub refused_peer: u64,
}

impl From<node::Rejections> for Rejections {
    fn from(r: node::Rejections) -> Self {
        // Destructured without `..`: a counter added to the core must be added here too.
        let node::Rejections {
            too_short,
            too_long,
            unknown_version,
            bad_checksum,
            malformed,
            misaddressed,
            stale_epoch,
            stale_frame,
            unauthenticated,
            replayed,
            epoch_out_of_range,
            frame_out_of_range,
            frame_other_session,
            frame_beyond_ring,
            untagged,
            wrong_key,
            refused_peer,
        } = r;
        Rejections {
            too_short,
            too_long,
            unknown_version,
            bad_checksum,
            malformed,
            misaddressed,
            stale_epoch,
            stale_frame,
            unauthenticated,
            replayed,
            epoch_out_of_range,
            frame_out_of_range,
            frame_other_session,
            frame_beyond_ring,
            untagged,
            wrong_key,
            refused_peer,
        }
    }
}

/// `status.transfer`'s direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferDirection {
    /// The primary sends its snapshot.
    Sending,
    /// The backup receives it.
    Receiving,
    /// A direction this version does not know; never sent.
    #[serde(other)]
    Unknown,
}

/// `status.transfer`: a state transfer under way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    /// Which side this node is.
    pub direction: TransferDirection,
    /// Bytes acknowledged (sending) or received in order (receiving).
    pub bytes_done: u64,
    /// The snapshot's size; 0 until the primary has begun.
    pub bytes_total: u64,
    /// Since the transfer was asked for (receiving) or the snapshot taken (sending).
    #[serde(default)]
    pub elapsed_ms: u64,
    /// `bytes_done` over `elapsed_ms`.
    #[serde(default)]
    pub rate_bytes_per_s: u64,
}

impl Transfer {
    /// `receiving 512.0 / 1024.0 KiB (50 %) at 6.3 MiB/s`.
    pub fn text(&self) -> String {
        let kib = |b: u64| b as f64 / 1024.0;
        let direction = name(&self.direction);
        if self.bytes_total == 0 {
            return format!("{direction}: waiting for the primary to begin ({} ms)", self.elapsed_ms);
        }
        format!(
            "{direction} {:.1} / {:.1} KiB ({} %) at {:.1} MiB/s",
            kib(self.bytes_done),
            kib(self.bytes_total),
            self.bytes_done.saturating_mul(100) / self.bytes_total,
            self.rate_bytes_per_s as f64 / (1024.0 * 1024.0)
        )
    }
}

/// `status.source`: the I/O source's session and its mapping to the pair's frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Source {
    /// The source's session (0: it declares none).
    pub session: u64,
    /// The source's frame that maps to `pair_first`.
    pub source_first: u64,
    /// The pair's frame of `source_first`.
    pub pair_first: u64,
    /// Source restarts followed since start.
    pub restarts: u64,
}

/// `status.input`: the input path.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Input {
    /// The highest frame accepted from the I/O source (0 = none).
    pub frame: u64,
    /// Since the last frame arrived; `None` = never.
    pub last_frame_age_ms: Option<u64>,
    /// No frame within `silence_ms`.
    pub silent: bool,
    /// `runtime.input_silence_ms`.
    pub silence_ms: u64,
    /// `runtime.input_handover_ms`.
    pub handover_ms: u64,
    /// Input handovers this node started.
    pub handovers: u64,
    /// Frames the core dropped as not newer than the last one run.
    pub stale_frames: u64,
    /// Frames that did not decode or came from a source not allowed.
    pub rejected_frames: u64,
    /// `stale_frames` per second over the last whole second.
    pub stale_per_s: u64,
    /// `rejected_frames` per second over the last whole second.
    pub rejected_per_s: u64,
    /// The peer's highest accepted frame.
    pub peer_frame: u64,
    /// Since the peer's last frame arrived; `None`: none, or not heard.
    pub peer_last_frame_age_ms: Option<u64>,
}

/// `status.io`: the shell's counters.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct IoCounters {
    /// Datagrams on the frames socket from an allowed source.
    pub frames_received: u64,
    /// Datagrams from a source not in `frames.sources`.
    pub frames_foreign_source: u64,
    /// Of which did not decode.
    pub frames_rejected: u64,
    /// By decode error (only reasons seen are present).
    pub frames_rejected_by: BTreeMap<String, u64>,
    /// Output datagrams sent.
    pub outputs_sent: u64,
    /// Output datagrams that could not be sent.
    pub output_send_errors: u64,
    /// Writes of the state file since start.
    pub epochs_persisted: u64,
    /// Console requests handled.
    pub console_requests: u64,
    /// State-changing requests (and `auth`) refused for their key.
    pub console_bad_key: u64,
    /// Console connections open now.
    pub console_connections: u64,
    /// Connections refused because every slot was in use.
    pub console_refused: u64,
    /// Connections closed for a timeout.
    pub console_timed_out: u64,
    /// Connections closed for not reading their responses.
    pub console_slow_readers: u64,
    /// Since start, the most a deadline was handled late, µs.
    pub loop_lateness_max_us: u64,
    /// The same within the current and the previous whole second.
    pub loop_lateness_recent_max_us: u64,
    /// Deadlines handled more than 500 µs late (measured when the loop wakes for them).
    pub loop_late_wakes: u64,
    /// The longest console share of one wake-up, µs (wall time).
    pub console_turn_max_us: u64,
    /// The most CPU time spent answering in one wake-up, µs.
    pub console_turn_cpu_max_us: u64,
    /// HMI server (`[hmi] listen`, docs/HMI.md): connections open now.
    pub hmi_connections: u64,
    /// HMI connections accepted since start.
    pub hmi_accepted: u64,
    /// HMI connections refused (every slot busy) or closed for bad bytes or idleness.
    pub hmi_refused: u64,
    /// HMI requests answered (reads, client ids, writes once answered).
    pub hmi_requests: u64,
    /// HMI requests answered with a Modbus exception.
    pub hmi_exceptions: u64,
    /// HMI writes acknowledged as applied.
    pub hmi_writes_acked: u64,
    /// HMI writes answered with an exception.
    pub hmi_writes_refused: u64,
}

/// The `config` response's fields: the node's effective configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigReply {
    /// `[runtime]` (the core's configuration).
    pub runtime: Config,
    /// The shell's sections.
    pub shell: ShellConfigView,
}

/// `config.shell`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShellConfigView {
    /// `node.name`.
    pub name: String,
    /// `node.state_file`.
    pub state_file: String,
    /// A sync key file is configured.
    pub sync_mac: bool,
    /// `[frames]`.
    pub frames: FramesConfig,
    /// `[[links]]`, with the bulk addresses resolved.
    pub links: Vec<LinkConfig>,
    /// `[outputs]`.
    pub outputs: OutputsConfig,
    /// `[hook]`.
    pub hook: HookConfig,
    /// `[shutdown]`.
    pub shutdown: ShutdownConfig,
}

/// The `events` response's fields: one page of the journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventsPage {
    /// Oldest first.
    pub events: Vec<Event>,
    /// The `since` of the next request.
    pub next_since: u64,
    /// The oldest `seq` still held (0 = the journal is empty).
    #[serde(default)]
    pub first_seq: u64,
    /// Events after `since` were already dropped from the ring.
    #[serde(default)]
    pub truncated: bool,
    /// More events follow this page.
    #[serde(default)]
    pub more: bool,
    /// Changes when the node restarted (its `seq` began again at 1).
    #[serde(default)]
    pub boot_id: u64,
}

/// One journal event: the fields every event has, those some kinds have (absent when
/// an event does not carry them), and the rest as sent (`fields`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// 1, 2, 3, …, numbered on across restarts while the journal file is kept
    /// (`console.journal_file`); from 1 again with a journal in memory only.
    pub seq: u64,
    /// When it was recorded, on the node's wall clock.
    pub unix_ms: u64,
    /// What it is about.
    pub kind: EventKind,
    /// What happened (a reason, an alarm, a notice or a shell event's name).
    pub name: String,
    /// One sentence for people.
    #[serde(default)]
    pub message: String,
    /// Transitions and some alarms and notices: the frame.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame: Option<u64>,
    /// Transitions: the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u64>,
    /// Transitions: the role after the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// Transitions: the role before the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_role: Option<Role>,
    /// `transfer_started`, `transfer_completed`: the snapshot's size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// `switchover_delayed`: why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_reason: Option<DelayReason>,
    /// `switchover_delayed`: how far behind the backup was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_frames: Option<u64>,
    /// Transitions: the sync state after the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync: Option<Sync>,
    /// Transitions: the reason (= `name`); `switchover_command` and the other operator
    /// commands: the refusal's name, or `null`.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "present_or_null")]
    pub reason: Option<Option<String>>,
    /// Transitions: the resync cause, or `null`.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "present_or_null")]
    pub cause: Option<Option<String>>,
    /// `link_up`, `link_down`: the link's index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<u8>,
    /// `source_restarted`: the source's new session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<u64>,
    /// `source_restarted`: the first frame of the new session, as the source numbers it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_first: Option<u64>,
    /// `source_restarted`: the pair's frame for `source_first`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pair_first: Option<u64>,
    /// `started`: the state file's persisted epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch_persisted: Option<u64>,
    /// `started`: the state file's reserved epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch_reserved: Option<u64>,
    /// `switchover_command` and the other operator commands: what it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<CommandResult>,
    /// `commit_lost`: the last frame of the range (`frame` is the first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame_last: Option<u64>,
    /// `switchover_command`, the other operator commands, `console_bad_key`: the
    /// client's `ip:port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// A transition in a group (more than one peer): each peer's role as this node last
    /// heard it at the change (issue 16).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peers: Option<Vec<EventPeer>>,
    /// Fields this version does not know (a newer node's), as sent; the shell never
    /// fills it.
    #[serde(flatten)]
    pub fields: Map<String, Value>,
}

/// `events[i].peers[j]`: one peer's role as a node saw it at a transition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventPeer {
    /// Its id (`[[peers]] id`).
    pub node_id: u64,
    /// Its role as last heard; `None`: never heard.
    #[serde(default)]
    pub role: Option<Role>,
    /// It was heard within the detection window.
    #[serde(default)]
    pub alive: bool,
    /// It is the group's witness.
    #[serde(default, skip_serializing_if = "core::ops::Not::not")]
    pub witness: bool,
}

/// A field that is absent (`None`), `null` (`Some(None)`) or a value: `cause` and
/// `reason` are always sent where they apply, `null` when there is none.
mod present_or_null {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer, T: Serialize>(value: &Option<Option<T>>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(inner) => inner.serialize(s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }
}

impl Event {
    /// An event of `kind` named `name`, without the kind-specific fields (the
    /// journal numbers and dates it).
    pub fn new(kind: EventKind, name: &str, message: &str) -> Event {
        Event {
            seq: 0,
            unix_ms: 0,
            kind,
            name: name.to_string(),
            message: message.to_string(),
            frame: None,
            epoch: None,
            role: None,
            previous_role: None,
            bytes: None,
            delay_reason: None,
            lag_frames: None,
            sync: None,
            reason: None,
            cause: None,
            link: None,
            session: None,
            source_first: None,
            pair_first: None,
            epoch_persisted: None,
            epoch_reserved: None,
            result: None,
            frame_last: None,
            client: None,
            peers: None,
            fields: Map::new(),
        }
    }

    /// `name at frame N` when the event names a frame, else the name.
    pub fn name_with_frame(&self) -> String {
        match self.frame {
            Some(frame) => format!("{} at frame {frame}", self.name),
            None => self.name.clone(),
        }
    }

    /// The event exactly as the node sent it.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// The `auth` response's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthReply {
    /// `true`.
    pub authenticated: bool,
}

/// What an operator's command did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandResult {
    /// This node started it.
    Started,
    /// This node (a backup) passed a switchover to the primary.
    Forwarded,
    /// The core declined (`reason` says why).
    Refused,
    /// A result this version does not know; never sent.
    #[serde(other)]
    Unknown,
}

/// The response to `switchover`, `force-primary` or `rejoin` that passed the key check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandReply {
    /// What happened.
    pub result: CommandResult,
    /// When refused: why.
    #[serde(default)]
    pub reason: Option<Refusal>,
    /// The outcome in words.
    #[serde(default)]
    pub message: String,
}

// ---------------------------------------------------------------- names from serde

/// Serializes a unit variant into its serde name; anything else is an error.
struct VariantName;

/// Not a unit variant.
#[derive(Debug)]
struct NotAName;

impl core::fmt::Display for NotAName {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("not a unit variant")
    }
}

impl std::error::Error for NotAName {}

impl serde::ser::Error for NotAName {
    fn custom<T: core::fmt::Display>(_: T) -> Self {
        NotAName
    }
}

macro_rules! not_a_name {
    ($($method:ident($($ty:ty),*)),* $(,)?) => {
        $(fn $method(self, $(_: $ty),*) -> Result<&'static str, NotAName> { Err(NotAName) })*
    };
}

impl serde::Serializer for VariantName {
    type Ok = &'static str;
    type Error = NotAName;
    type SerializeSeq = serde::ser::Impossible<&'static str, NotAName>;
    type SerializeTuple = serde::ser::Impossible<&'static str, NotAName>;
    type SerializeTupleStruct = serde::ser::Impossible<&'static str, NotAName>;
    type SerializeTupleVariant = serde::ser::Impossible<&'static str, NotAName>;
    type SerializeMap = serde::ser::Impossible<&'static str, NotAName>;
    type SerializeStruct = serde::ser::Impossible<&'static str, NotAName>;
    type SerializeStructVariant = serde::ser::Impossible<&'static str, NotAName>;

    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> Result<&'static str, NotAName> {
        Ok(variant)
    }

    not_a_name!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_f32(f32),
        serialize_f64(f64),
        serialize_char(char),
        serialize_str(&str),
        serialize_bytes(&[u8]),
        serialize_none(),
        serialize_unit(),
        serialize_unit_struct(&'static str),
    );

    fn serialize_some<T: ?Sized + Serialize>(self, _: &T) -> Result<&'static str, NotAName> {
        Err(NotAName)
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(self, _: &'static str, _: &T) -> Result<&'static str, NotAName> {
        Err(NotAName)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<&'static str, NotAName> {
        Err(NotAName)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, NotAName> {
        Err(NotAName)
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, NotAName> {
        Err(NotAName)
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeTupleStruct, NotAName> {
        Err(NotAName)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, NotAName> {
        Err(NotAName)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, NotAName> {
        Err(NotAName)
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, NotAName> {
        Err(NotAName)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, NotAName> {
        Err(NotAName)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CONSOLE_MD: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/CONSOLE.md"));

    /// A status with every field set to something other than its default.
    fn full_status() -> Status {
        Status {
            node_id: 1,
            name: "node-a".into(),
            role: Role::Primary,
            sync: Sync::Paired,
            epoch: 514,
            epoch_term: 2,
            epoch_node: 2,
            frame: 99,
            lag_frames: 3,
            peer: Some(Peer {
                node_id: 2,
                role: Role::Backup,
                sync: PeerSync::InSync,
                epoch: 514,
                frame: 98,
                last_heard_ms_ago: 4,
            }),
            links: vec![Link {
                index: 0,
                name: "sync".into(),
                up: true,
                rtt_ns: 5,
                received: 6,
                last_heard_ms_ago: Some(7),
                sent_control: 8,
                sent_bulk: 9,
                received_control: 10,
                received_bulk: 11,
                send_errors: 12,
                foreign_source: 13,
            }],
            false_deaths: 1,
            takeovers: 2,
            switchovers: 3,
            alarms: 4,
            last_alarm: Some(LastAlarm {
                name: AlarmName::SyncPeerIsSelf,
                frame: Some(5),
                message: "m".into(),
            }),
            last_transition: Some(LastTransition {
                role: Role::Backup,
                sync: Sync::Joining,
                epoch: 257,
                frame: 6,
                reason: ReasonName::ResyncStarted,
                cause: Some(ResyncCause::TransferFailed),
                message: "resync".into(),
                unix_ms: 7,
                ago_ms: 8,
            }),
            switchover_in_progress: true,
            switchover: Some("requesting".into()),
            rejections: Rejections {
                refused_peer: 1,
                ..Rejections::default()
            },
            unsent_outputs: 9,
            commits_lost: 10,
            transfer: Some(Transfer {
                direction: TransferDirection::Receiving,
                bytes_done: 1,
                bytes_total: 2,
                elapsed_ms: 3,
                rate_bytes_per_s: 4,
            }),
            source: Some(Source {
                session: 1,
                source_first: 2,
                pair_first: 3,
                restarts: 4,
            }),
            input: Some(Input {
                frame: 1,
                last_frame_age_ms: Some(2),
                silent: true,
                silence_ms: 3,
                handover_ms: 4,
                handovers: 5,
                stale_frames: 6,
                rejected_frames: 7,
                stale_per_s: 8,
                rejected_per_s: 9,
                peer_frame: 10,
                peer_last_frame_age_ms: None,
            }),
            io: IoCounters {
                frames_rejected_by: [("bad_magic".to_string(), 1)].into_iter().collect(),
                console_turn_cpu_max_us: 1,
                ..IoCounters::default()
            },
            stopping: true,
            uptime_ms: 10,
            unix_ms: 11,
            boot_id: 12,
            events_last_seq: 13,
            weight: 14,
            group: vec![GroupPeer {
                node_id: Some(2),
                role: Some(Role::Backup),
                sync: Some(PeerSync::InSync),
                weight: 5,
                witness: true,
                alive: true,
                epoch: 514,
                frame: 98,
                last_heard_ms_ago: Some(4),
                input_frame: 99,
                links: 1,
            }],
            acks: Some(Acks {
                pending: 15,
                oldest_age_ms: Some(16),
                resent: 17,
                dropped: 18,
                acks_taken: 19,
                acks_refused: 20,
                sink_silent: vec![0],
            }),
            outputs_release: Some(OutputsRelease {
                mode: "acked".into(),
                held: 21,
                held_oldest_frame: 22,
                unguarded: 23,
                uncertain: 24,
                released_known: 25,
            }),
        }
    }

    /// The fields CONSOLE.md's tables document for the status object and each of its
    /// sub-objects: `(path of the object, field)`.
    fn documented_status_fields() -> Vec<(Vec<&'static str>, &'static str)> {
        let section = CONSOLE_MD
            .split("\n## `status`\n")
            .nth(1)
            .and_then(|s| s.split("\n## `events`\n").next())
            .expect("CONSOLE.md has a `status` section");
        let mut path: Vec<&str> = vec![];
        let mut fields = vec![];
        for line in section.lines() {
            // A sub-table is introduced by its object's name: "`peer`:", "`links[i]`:",
            // "`input` (the input path…):".
            if line.starts_with('`') && line.trim_end().ends_with(':') {
                let object = line[1..].split('`').next().unwrap_or_default();
                path = vec![object.trim_end_matches("[i]")];
                continue;
            }
            let Some(cells) = line.strip_prefix("| `") else {
                continue;
            };
            let first = cells.split(" |").next().unwrap_or_default();
            for name in first.split(", ") {
                let name = name.trim_matches('`');
                if name != "field" {
                    fields.push((path.clone(), name));
                }
            }
        }
        fields
    }

    #[test]
    fn schema_every_documented_status_field_round_trips() {
        let status = full_status();
        let value = serde_json::to_value(&status).unwrap();
        let fields = documented_status_fields();
        assert!(fields.len() > 80, "read {} fields from CONSOLE.md", fields.len());
        for (path, field) in &fields {
            let mut object = &value;
            for step in path {
                object = &object[*step];
                if let Value::Array(items) = object {
                    object = &items[0];
                }
            }
            assert!(
                object.get(*field).is_some(),
                "CONSOLE.md documents status {path:?}.{field}, the schema does not write it"
            );
        }
        // Every field the schema writes is documented too.
        let documented: std::collections::BTreeSet<(String, &str)> =
            fields.iter().map(|(p, f)| (p.join("."), *f)).collect();
        for (key, _) in value.as_object().unwrap() {
            assert!(
                documented.contains(&(String::new(), key.as_str())),
                "status.{key} is not in CONSOLE.md"
            );
        }
        for object in [
            "peer",
            "links",
            "last_transition",
            "io",
            "input",
            "group",
            "outputs_release",
        ] {
            let mut sub = &value[object];
            if let Value::Array(items) = sub {
                sub = &items[0];
            }
            for (key, _) in sub.as_object().unwrap() {
                assert!(
                    documented.contains(&(object.to_string(), key.as_str())),
                    "status.{object}.{key} is not in CONSOLE.md"
                );
            }
        }
        let back: Status = serde_json::from_value(value).unwrap();
        assert_eq!(back, status);
    }

    /// Every complete example response in CONSOLE.md reads into its type and is written
    /// back as it was (the status example, older than some fields, as a part of it).
    #[test]
    fn schema_console_md_examples_round_trip() {
        let mut seen = 0;
        for line in CONSOLE_MD.lines() {
            let Some(text) = line.strip_prefix("← ") else {
                continue;
            };
            let Ok(original) = serde_json::from_str::<Value>(text) else {
                continue; // an abridged example (`…`)
            };
            seen += 1;
            let written = if original["ok"] == false {
                serde_json::to_value(serde_json::from_value::<ErrorReply>(original.clone()).unwrap()).unwrap()
            } else {
                match original["cmd"].as_str().unwrap() {
                    "hello" => serde_json::to_value(serde_json::from_value::<Reply<Hello>>(original.clone()).unwrap()),
                    "status" => {
                        serde_json::to_value(serde_json::from_value::<Reply<StatusReply>>(original.clone()).unwrap())
                    }
                    "events" => {
                        serde_json::to_value(serde_json::from_value::<Reply<EventsPage>>(original.clone()).unwrap())
                    }
                    _ => serde_json::to_value(serde_json::from_value::<Reply<CommandReply>>(original.clone()).unwrap()),
                }
                .unwrap()
            };
            if original["cmd"] == "status" {
                assert_part_of(&original, &written, "");
            } else {
                assert_eq!(written, original);
            }
        }
        assert!(seen >= 6, "{seen} examples");
    }

    fn assert_part_of(part: &Value, whole: &Value, path: &str) {
        match (part, whole) {
            (Value::Object(p), Value::Object(w)) => {
                for (key, value) in p {
                    assert_part_of(value, w.get(key).unwrap_or(&Value::Null), &format!("{path}.{key}"));
                }
            }
            (Value::Array(p), Value::Array(w)) => {
                assert_eq!(p.len(), w.len(), "{path}");
                for (i, (a, b)) in p.iter().zip(w).enumerate() {
                    assert_part_of(a, b, &format!("{path}[{i}]"));
                }
            }
            _ => assert_eq!(part, whole, "{path}"),
        }
    }

    #[test]
    fn schema_event_reads_as_sent_null_kept_unknown_fields_kept() {
        let transition = json!({"seq": 3, "unix_ms": 4, "kind": "transition", "name": "in_sync", "message": "m",
            "role": "backup", "previous_role": "backup", "sync": "in_sync", "epoch": 257, "frame": 9,
            "reason": "in_sync", "cause": null});
        let event: Event = serde_json::from_value(transition.clone()).unwrap();
        assert_eq!(event.cause, Some(None));
        assert_eq!(event.sync, Some(Sync::InSync));
        assert_eq!(event.to_value(), transition);
        let newer = json!({"seq": 5, "unix_ms": 6, "kind": "alarm", "name": "input_lost", "message": "m", "frame": 9, "new_field": 1});
        let event: Event = serde_json::from_value(newer.clone()).unwrap();
        assert_eq!(event.frame, Some(9));
        assert_eq!(event.fields.get("new_field"), Some(&json!(1)));
        assert_eq!(event.to_value(), newer);
    }

    #[test]
    fn schema_lines_have_sorted_keys_and_no_challenge_when_none() {
        let hello = Hello {
            protocol: 1,
            software: "twinloop 0.1.0".into(),
            node_id: 1,
            name: "a".into(),
            boot_id: 2,
            challenge: None,
        };
        assert_eq!(
            ok_line(&json!(1), "hello", hello),
            "{\"boot_id\":2,\"cmd\":\"hello\",\"id\":1,\"name\":\"a\",\"node_id\":1,\"ok\":true,\"protocol\":1,\"software\":\"twinloop 0.1.0\"}\n"
        );
    }

    #[test]
    fn schema_unknown_names_are_read_not_refused() {
        // Names may be added within version 1: a client reads a newer node's status.
        let status: Status = serde_json::from_value(json!({
            "node_id": 1, "name": "a", "role": "observer", "sync": "paired", "epoch": 1, "frame": 2,
            "last_alarm": {"name": "a_new_alarm", "frame": null, "message": "m"},
        }))
        .unwrap();
        assert_eq!(status.role, Role::Unknown);
        assert_eq!(status.last_alarm.map(|a| a.name), Some(AlarmName::Unknown));
        assert_eq!(Role::Unknown.name(), "unknown");
        let error: ErrorReply =
            serde_json::from_value(json!({"ok": false, "id": null, "error": {"code": "new_code", "message": "m"}}))
                .unwrap();
        assert_eq!(error.error.code, ErrorCode::Unknown);
    }

    #[test]
    fn schema_names_come_from_serde() {
        assert_eq!(Sync::InSync.name(), "in_sync");
        assert_eq!(PeerSync::None.name(), "none");
        assert_eq!(AlarmName::SyncPeerIsSelf.name(), "sync_peer_is_self");
        assert_eq!(ErrorCode::TooManyConnections.name(), "too_many_connections");
        assert_eq!(name(&CommandResult::Forwarded), "forwarded");
        assert_eq!(name(&1u8), "?");
        let (reason, cause) = reason(node::Reason::ResyncStarted(node::ResyncCause::Fenced));
        assert_eq!(
            (reason.name(), cause.map(ResyncCause::name)),
            ("resync_started", Some("fenced"))
        );
        assert_eq!(
            serde_json::to_string(&Request::ForcePrimary(Proof::default())).unwrap(),
            r#"{"cmd":"force-primary"}"#
        );
    }
}
