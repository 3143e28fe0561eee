//! The sans-IO state machine that makes two nodes behave as one controller.
//!
//! A [`Node`] is fed events with the current time passed in — [`Node::handle_frame`],
//! [`Node::handle_message`], [`Node::handle_command`], [`Node::handle_timeout`] — and is
//! drained for [`Action`]s with [`Node::poll_action`] and for its next deadline with
//! [`Node::poll_timeout`]. After every `handle_*` call the caller drains `poll_action`
//! until it returns `None`, then sleeps until `poll_timeout` or the next event.
//!
//! The behaviour is split by concern, one file each: `election` (start-up role),
//! `detector` (heartbeats, probe, link health), `lockstep` (running frames and commits),
//! `outputs` (emission and the backup's two sets), `takeover`, `transfer` (join and
//! resync), `switchover` (the planned handover) and `fencing` (epochs). `epochs` owns the
//! epoch bookkeeping and lists every durable decision with the action that carries it;
//! `timers` names every deadline [`Node::poll_timeout`] merges. `peers` holds what the node
//! knows of each peer, one slot per peer (a pair: one), and maps links to slots.

mod acks;
mod detector;
mod election;
mod epochs;
mod fencing;
mod group_status;
mod hmi;
mod lockstep;
mod outputs;
mod pairing;
mod peers;
mod refresh;
mod release;
mod replay;
mod ring;
mod source;
mod succession;
mod switchover;
mod takeover;
mod timers;
mod transfer;

#[cfg(test)]
mod tests;

use crate::app::{App, Outbox, OutputKind, OutputPayload};
use crate::config::{Config, ConfigError, GROUP_PEERS_MAX, LINKS_MAX, LINKS_TOTAL_MAX};
use crate::rng::Rng;
use crate::time::Instant;
use crate::wire::{self, AuthKey, Body, DecodeError, Envelope, Header, WireBuf, WireRole, WireSync};
use epochs::Epochs;
use peers::PeerSlot;
use std::collections::VecDeque;
use std::vec::Vec;

pub use acks::{AckStatus, EVENTS_UNACKED_MAX, RESENDS_PER_WAKE};
pub use fencing::{Epoch, EpochText, EPOCH_MAX};
pub use hmi::{HmiOutcome, HmiRefusal};
pub use pairing::Mismatch;
pub use release::{ReleaseStatus, HELD_OUTPUTS_MAX};
use replay::ReplayWindow;
use ring::Ring;
pub use source::SourceMap;
use switchover::Switchover;
pub use transfer::TransferProgress;
use transfer::{RxTransfer, TxTransfer};

/// Actions one `handle_*` call may queue at most; work that would need more waits until
/// the caller has drained the queue (see [`Node::poll_action`]).
const ACTIONS_MAX: usize = 512;
/// Room one frame needs in the action queue: its outputs, a commit on every link, a
/// transition and an alarm.
/// A frame's outputs, its commit and a `SwitchTaken` on every link, and a few more.
/// And a `SourceMap` on every link.
/// This is the room of a pair's frame (one peer, up to `LINKS_MAX` links); a node with more
/// peers reserves it once per peer (`Node::actions_per_frame`).
const ACTIONS_PER_FRAME_MAX: usize = crate::app::OUTPUTS_PER_FRAME_MAX + 3 * LINKS_MAX + 4;
/// The room a frame needs on a node with `GROUP_PEERS_MAX` peers: the bound of
/// `Node::actions_per_frame`, by which the queue is sized.
const ACTIONS_PER_GROUP_FRAME_MAX: usize = ACTIONS_PER_FRAME_MAX + (GROUP_PEERS_MAX - 1) * 3 * LINKS_MAX;
/// Frames after a switchover's release whose commits carry a `SwitchTaken`.
const SWITCH_TAKEN_FRAMES: u64 = 8;
/// Outputs the backup may hold that the primary did not report sent.
const UNSENT_MAX: usize = 4 * crate::app::OUTPUTS_PER_FRAME_MAX;
/// Missing frames a backup asks for at once.
const FETCH_BATCH_MAX: u64 = 8;
/// The highest frame number a node accepts, from the I/O source or in a peer's commit:
/// far below `u64::MAX`, so that `frame + 1`, `frame + frames_buffered` and
/// `frame + frame_jump_max` never overflow.
pub const FRAME_MAX: u64 = 1 << 62;
/// Frames dropped as stale in a row, none accepted, that make a stale-frame storm
/// (`Alarm::FramesStale`): a source that restarted its numbering without a new session.
const STALE_STORM_FRAMES: u64 = 64;
/// Frames accepted without a refusal after which `Alarm::FrameRefused` may be raised again.
const FRAME_ALARM_REARM_FRAMES: u64 = 1024;

/// A node's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Listening for a primary before deciding (for `startup_wait`).
    Starting,
    /// Drives the actuators.
    Primary,
    /// Runs one cycle behind and suppresses its outputs.
    Backup,
}

/// How a node stands with its peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncState {
    /// Primary or starting, and no backup is following.
    Alone,
    /// Primary with a backup that follows in sync.
    Paired,
    /// Backup without state: waiting for or receiving a state transfer.
    Joining,
    /// Backup with the primary's state, running every committed frame.
    InSync,
    /// Backup with state, but behind by more than a few frames.
    Lagging,
}

/// Why a role or sync state changed. Carried by every [`Transition`].
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Heard nobody during `startup_wait`: became primary.
    StartedFirst,
    /// Started together with the peer and won on priority or nonce.
    WonTiebreak,
    /// Heard a primary at start-up: became backup.
    PrimaryFound,
    /// The primary was silent and did not answer the probe.
    TakeoverAfterProbe,
    /// The probe was answered by a peer that is not primary: nobody leads, so this node does.
    TakeoverNoPrimary,
    /// An operator asked for a switchover; the primary is handing over.
    SwitchoverRequested,
    /// This node took over in a planned switchover.
    SwitchoverCompleted,
    /// This node handed over in a planned switchover and now follows.
    SwitchoverHandedOver,
    /// A planned switchover did not complete in time; the primary carries on.
    SwitchoverAborted,
    /// Saw a peer with a higher epoch: demoted at once.
    FencedByEpoch,
    /// A backup asks for a fresh state transfer (see [`ResyncCause`]).
    ResyncStarted(ResyncCause),
    /// A backup installed the state and follows the primary.
    InSync,
    /// A backup fell more than a few frames behind.
    Lagging,
    /// A backup caught up again.
    CaughtUp,
    /// A joining backup lost its primary before it had state: it starts over (a cold
    /// start if nobody else is up).
    PrimaryLostWhileJoining,
    /// The primary has not heard its backup for `detection_window`.
    BackupLost,
    /// The primary hears an in-sync backup.
    BackupInSync,
    /// The primary's input has been silent for `input_handover_ms` while its backup's is
    /// alive: it hands over in a planned switchover.
    InputHandover,
    /// The peer differs in something a pair must share (see [`Alarm::PairingRefused`]):
    /// this node stops following it, or leading next to it, and waits.
    PairingRefused,
    /// An operator's `force-primary`: this node leads, from its state or a cold start.
    ForcedByOperator,
    /// Fenced by a primary of another cold start: waiting for the operator with this
    /// node's state (see [`Alarm::ColderPrimary`]).
    KeepingState,
    /// A pair's two nodes led cold at one start-up, neither hearing the other lead (one
    /// stalled between its decision and its first heartbeat for longer than the other
    /// waits): the lower epoch follows the higher with a transfer, as any fenced primary,
    /// its few cycles of state given up — not kept for the operator, as a state that
    /// goes back to an earlier start is (see `fencing::Node::startup_collision`).
    FencedAtStartup,
    /// The primary heard a starting peer announce a higher epoch (one it may have led,
    /// its record of leading it lost in a crash): it leads on, above it, so that a sink
    /// that accepted that epoch takes its outputs and the peer follows it.
    EpochRaised,
}

/// Why a backup asked for a fresh transfer.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResyncCause {
    /// Lag above `max_lag_frames`, or commits the primary no longer holds.
    Lag,
    /// Outputs or state differed from the primary's.
    Divergence,
    /// Demoted after being primary: its state may differ from the new primary's.
    Fenced,
    /// The state transfer failed (bad snapshot) and is retried.
    TransferFailed,
}

/// A change of role or sync state, with its reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// When it happened.
    pub at: Instant,
    /// The role after the change.
    pub role: Role,
    /// The sync state after the change.
    pub sync: SyncState,
    /// The epoch after the change.
    pub epoch: u64,
    /// The last frame run at the time.
    pub frame: u64,
    /// Why.
    pub reason: Reason,
}

/// Something an operator must look at.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alarm {
    /// The backup's outputs for `frame` differ from the primary's.
    OutputDivergence {
        /// The frame.
        frame: u64,
    },
    /// The backup's state digest after `frame` differs from the primary's.
    StateDivergence {
        /// The frame.
        frame: u64,
    },
    /// At takeover, the payload of a frame the old primary ran was nowhere to be had;
    /// the frame was skipped here, so the state may differ from the old primary's.
    InputLost {
        /// The frame.
        frame: u64,
    },
    /// The primary is silent but this backup has no state to take over with.
    CannotTakeOver,
    /// The snapshot received did not install or its digest did not match.
    TransferRejected,
    /// The primary has had no frame from the I/O source for `input_handover_ms`
    /// (`input_silence_ms` with handovers off) and does not hand over: the backup's input
    /// is silent too, there is no backup, or the last handover is too recent. Raised
    /// once per silence.
    InputSilent,
    /// A peer claimed an epoch above `EPOCH_MAX`: its messages are dropped (counted in
    /// `epoch_out_of_range`). Raised once.
    EpochRefused {
        /// The first such epoch.
        epoch: u64,
    },
    /// A frame from the I/O source numbered more than `frame_jump_max` ahead of the frames
    /// in hand (or above `FRAME_MAX`), or a commit naming one, was refused (counted in
    /// `frame_out_of_range`). Raised once, again after 1024 frames without a refusal.
    FrameRefused {
        /// The frame refused.
        frame: u64,
    },
    /// 64 frames in a row from the I/O source were older than the last run and none was
    /// accepted: the source restarted its numbering without a new session, or another
    /// source sends. Raised once until a frame is accepted. A backup does not count its
    /// late copies of frames it ran (at most `max_lag_frames` older than its last run).
    FramesStale {
        /// The last frame run (the stale frames are older).
        frame: u64,
    },
    /// Every epoch above the highest seen is above `EPOCH_MAX`: this node will not lead.
    /// Raised once.
    EpochExhausted {
        /// The highest epoch seen.
        epoch: u64,
    },
    /// The peer differs in something a pair must share: this node does not pair with it
    /// (raised once per mismatch; see `docs/SECURITY.md`, "Misconfiguration").
    PairingRefused {
        /// What differs.
        mismatch: Mismatch,
    },
    /// Datagrams on `link` are sync messages that fail authentication: the peer has no
    /// key while this node has one (`peer_keyed` false), or another key. Raised at the
    /// first one, then at most once a minute per reason.
    SyncKeyMismatch {
        /// The link.
        link: u8,
        /// The datagram carried a MAC tag (another key) or not (no key on the peer).
        peer_keyed: bool,
        /// The node id the unauthenticated header claims (not trusted, for the message).
        peer_node_id: u8,
    },
    /// Link `link` delivers this node's own messages: its peer address points back here.
    PeerIsSelf {
        /// The link.
        link: u8,
    },
    /// This node has no application state, it heard a peer that holds the pair's state,
    /// and that peer is silent: it does not lead from a cold start (the holder may only be
    /// frozen) until the holder is back or an operator says `force-primary`.
    ColdStartHeld,
    /// Fenced by a primary whose state goes back to another cold start than this node's
    /// (`origin`): this node keeps its state and does not follow; the operator chooses
    /// (`force-primary` to lead with this node's state, `rejoin` to take the primary's).
    ColderPrimary {
        /// The cold start the primary's state goes back to.
        origin: u64,
        /// The cold start this node's state goes back to.
        own_origin: u64,
    },
    /// At takeover, frames `frame..=last` had no commit here although a later commit of
    /// the old primary was (its commits of them were lost on the way, or their ring slots
    /// went to newer frames): the old primary decided them, this node decided them
    /// itself (ran its own input, or skipped them), so its state may differ from the old
    /// primary's from `frame` on. One alarm for frames in a row (a skipped range, or run
    /// frames), raised by a node that took over from the backup role only.
    CommitLost {
        /// The first frame.
        frame: u64,
        /// The last frame (`frame` when one frame was run).
        last: u64,
    },
    /// The queue of events waiting for acks was full: the oldest were dropped, from
    /// `frame` on (`outputs.acks`; counted in the ack status). Raised once until an ack
    /// is heard again.
    EventsDropped {
        /// The frame of the first event dropped.
        frame: u64,
    },
    /// Sink `sink` (its position in `outputs.sinks`) acknowledged nothing for
    /// `outputs.ack_silence_ms` while an event waited for it: events stay queued and are
    /// re-sent at the longest backoff. Raised once until it acks again.
    SinkSilent {
        /// The sink.
        sink: u8,
    },
    /// Acked outputs (`outputs.release = "acked"`): the queue of outputs waiting for the
    /// backups' acks has no room for another frame's, held from `frame` on; the primary
    /// runs no frame until acks (or a backup window) release them: outputs go late, none
    /// is dropped. Raised once until the queue drains.
    OutputsHeldFull {
        /// The frame of the oldest held output.
        frame: u64,
    },
}

/// A notable event for logs and the console; nothing per cycle.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// The primary was silent: a probe was sent on every link.
    ProbeSent,
    /// The probe was answered by a live primary: a false death, no takeover.
    FalseDeath,
    /// Link `0` carries messages again.
    LinkUp(u8),
    /// Link `0` has been silent for `detection_window`.
    LinkDown(u8),
    /// Start-up nonces tied: a new one was drawn.
    NonceRedrawn,
    /// A state transfer of this many bytes began (as sender or receiver).
    TransferStarted {
        /// Snapshot size.
        bytes: u64,
        /// The frame the snapshot was taken after.
        frame: u64,
    },
    /// A state transfer finished.
    TransferCompleted {
        /// Snapshot size.
        bytes: u64,
    },
    /// The backup delays a switchover.
    SwitchoverDelayed {
        /// Why.
        reason: wire::DelayReason,
        /// Frames behind.
        lag_frames: u64,
    },
    /// The primary refused a switchover that the backup forwarded.
    SwitchoverRefused,
    /// This backup had agreed to a switchover (or was taking over at the release) and then
    /// ran nothing for about a detection window (frozen, stopped, starved): its primary
    /// may have given the switchover up meanwhile and run on, so a release read now may
    /// be stale; the agreement is dropped. The primary aborts the switchover at its
    /// deadline if it had not already.
    SwitchoverAbandoned,
    /// The I/O source started a new session (it numbers from the beginning again): its
    /// frame `source_first` is the pair's frame `pair_first` (decided here as primary, or
    /// heard from the primary).
    SourceRestarted {
        /// The new session.
        session: u16,
        /// Its first frame number mapped.
        source_first: u64,
        /// The pair's frame for it.
        pair_first: u64,
    },
    /// Acked outputs: at its takeover this new primary sent `count` outputs of frames
    /// `first..=last` that the old primary may have released: it had acknowledged their
    /// frames and heard no `Released` of them. The old primary released one only if its
    /// `Released` was lost in its last cycle; a sink that cannot deduplicate then gets it
    /// twice.
    OutputsUncertain {
        /// The first frame.
        first: u64,
        /// The last frame.
        last: u64,
        /// Outputs sent.
        count: u64,
    },
}

/// Which traffic a datagram is: the I/O shell must never let bulk delay control.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrafficClass {
    /// Heartbeats, probes, commits, fetches, switchover: small and urgent.
    Control,
    /// State-transfer chunks: large, paced, and second to control traffic.
    Bulk,
}

/// One actuator message, as the primary emits it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// The epoch of the primary that emitted it (the fencing tag).
    pub epoch: u64,
    /// The frame that produced it.
    pub frame: u64,
    /// Its position among the frame's outputs. `(frame, index)` identifies it.
    pub index: u8,
    /// An event or a level (with its key), as the program declared it.
    pub kind: OutputKind,
    /// The content, deterministic in `(frame, index)`.
    pub payload: OutputPayload,
}

/// What the caller must do next. Drained with [`Node::poll_action`].
// Datagrams travel inline (no Box): the queue is allocated once and never per cycle.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send `bytes` to the peer on sync link `link`.
    Transmit {
        /// Link index, `0..links` (a global index over every peer's links: see
        /// `node/peers.rs`; a pair's are `0..links`).
        link: u8,
        /// Control or bulk.
        class: TrafficClass,
        /// The datagram.
        bytes: WireBuf,
    },
    /// Send an output to the actuators.
    Emit(Output),
    /// Store this epoch durably before emitting any output that carries it: a node that
    /// restarts must start above it, or the sink would reject it as a deposed primary.
    PersistEpoch(u64),
    /// An operator's write this node accepted ([`Node::handle_hmi_write`]) is answered:
    /// applied where no takeover loses it, or timed out (docs/HMI.md).
    HmiWriteDone {
        /// The write, as accepted.
        write: crate::hmi::HmiWrite,
        /// How it ended.
        outcome: HmiOutcome,
    },
    /// Store durably that this node may lead this epoch, before the next action: a
    /// backup with state reserves the epoch a takeover would start (again when a higher
    /// epoch makes the reservation stale), so that neither a failover nor a switchover
    /// waits for the disk. After a restart the node starts above it; it is not an epoch
    /// seen.
    ReserveEpoch(u64),
    /// Store this epoch durably, without holding up the next actions: no output waits for
    /// it (a reserved epoch, once led, is recorded as led).
    PersistEpochLater(u64),
    /// The role or sync state changed.
    Transition(Transition),
    /// Something is wrong and an operator should know.
    Alarm(Alarm),
    /// Something worth a log line.
    Notice(Notice),
    /// A commit this node made and did not transmit: no peer was heard within its window
    /// (issue 20). Nothing to do; for observers that tap commits off the wire (the
    /// simulator's checker), which would otherwise miss a lone primary's decisions. It
    /// takes the place of the commit's transmits, so the queue's bound holds.
    CommitHeld {
        /// The epoch the commit's header would have carried.
        epoch: u64,
        /// The commit.
        commit: wire::Commit,
    },
}

/// An operator command.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// A planned, bumpless switchover of the roles.
    Switchover,
    /// A planned switchover to the node with this id (`switchover --to`, issue 16): it
    /// must be a peer following in sync; in a pair, the backup. 0 means any, as
    /// [`Command::Switchover`].
    SwitchoverTo(u8),
    /// A node that waits (`cold_start_held`, `colder_primary`, a refused peer) leads now,
    /// with its state or from a cold start: the operator's word that nothing better is
    /// coming.
    ForcePrimary,
    /// A node that keeps its state after `colder_primary` gives it up and joins the
    /// primary.
    Rejoin,
}

/// Why a command was refused.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefuseReason {
    /// There is no backup, or it has been silent.
    NoHealthyBackup,
    /// The backup is still receiving its state.
    BackupJoining,
    /// A switchover is already under way.
    InProgress,
    /// This node is still starting.
    NotReady,
    /// This node is a backup and hears no primary to forward the request to.
    NoPrimary,
    /// `force-primary` or `rejoin` to a node that is not waiting for an operator.
    NotWaiting,
    /// `switchover --to` names no node of the pair or group.
    UnknownTarget,
    /// `switchover --to` names the primary: it cannot take over from itself.
    TargetIsPrimary,
    /// `switchover --to` names the witness, which never leads.
    TargetIsWitness,
    /// `switchover --to` names a backup that is not following in sync now (joining,
    /// lagging, or silent for the detection window).
    TargetNotInSync,
}

/// The answer to a command.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandReply {
    /// The switchover has begun; its outcome is a [`Transition`].
    Started,
    /// This node is the backup: the request went to the primary.
    Forwarded,
    /// Refused, with the reason.
    Refused(RefuseReason),
}

/// Health of one sync link as this node sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LinkStatus {
    /// A valid message arrived within `detection_window`.
    pub up: bool,
    /// When the last valid message arrived.
    pub last_heard: Option<Instant>,
    /// Last heartbeat round trip, in nanoseconds (0 = not measured yet).
    pub rtt_ns: u64,
    /// Valid messages received.
    pub received: u64,
}

/// Datagrams dropped, by reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rejections {
    /// Shorter than the framing.
    pub too_short: u64,
    /// Longer than the largest datagram.
    pub too_long: u64,
    /// Unknown wire version.
    pub unknown_version: u64,
    /// Checksum mismatch.
    pub bad_checksum: u64,
    /// Body did not decode.
    pub malformed: u64,
    /// Carried this node's own id, or arrived on a link that does not exist.
    pub misaddressed: u64,
    /// From a primary of an epoch lower than one already seen.
    pub stale_epoch: u64,
    /// Input frames older than the last one run, or too long.
    pub stale_frame: u64,
    /// A key is configured and the tag was missing or wrong.
    pub unauthenticated: u64,
    /// Authenticated, but not new: a sequence number already seen or older than the
    /// window, or a session this node has not verified fresh (the restart handshake).
    pub replayed: u64,
    /// From a peer claiming an epoch above `EPOCH_MAX`.
    pub epoch_out_of_range: u64,
    /// Input frames more than `frame_jump_max` ahead (or above `FRAME_MAX`), and commits
    /// naming frames beyond `frame_jump_max + frames_buffered` ahead of the last run.
    pub frame_out_of_range: u64,
    /// Backup: input frames of a source session other than the primary's mapping it
    /// holds (fetched from the primary instead).
    pub frame_other_session: u64,
    /// Backup: input frames a whole ring (`frames_buffered`) above the last frame it ran:
    /// kept out so that they do not evict the commits it has not run yet (fetched from
    /// the primary later).
    pub frame_beyond_ring: u64,
    /// Of `unauthenticated`: valid sync messages without a tag (the peer has no key).
    pub untagged: u64,
    /// Of `unauthenticated`: valid sync messages with another key's tag.
    pub wrong_key: u64,
    /// From a peer this node refuses to pair with (see [`Alarm::PairingRefused`]).
    pub refused_peer: u64,
}

/// What the peer last said about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerStatus {
    /// Its node id.
    pub node_id: u8,
    /// Its role.
    pub role: WireRole,
    /// Its epoch.
    pub epoch: u64,
    /// Its sync state.
    pub sync: WireSync,
    /// The last frame it has run.
    pub frame: u64,
    /// The cold start its state goes back to (0 = it holds none).
    pub origin: u64,
    /// When it was last heard.
    pub last_heard: Instant,
}

/// A snapshot of the node for the console and logs. Cheap to take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// This node's id.
    pub node_id: u8,
    /// Its role.
    pub role: Role,
    /// Its sync state.
    pub sync: SyncState,
    /// Its epoch.
    pub epoch: u64,
    /// The last frame it has run.
    pub frame: u64,
    /// Backup: committed frames not yet run.
    pub lag_frames: u64,
    /// The peer, when it has been heard.
    pub peer: Option<PeerStatus>,
    /// Each sync link's health, by global index (a group's: every peer's, in the order
    /// of `[[peers]]`; [`GroupMember::link_count`] says how many are each peer's).
    pub links: [LinkStatus; LINKS_TOTAL_MAX],
    /// Number of configured links, every peer's (a pair's: its peer's).
    pub link_count: u8,
    /// Probes answered by a live primary.
    pub false_deaths: u64,
    /// Takeovers by this node.
    pub takeovers: u64,
    /// Planned switchovers this node took part in.
    pub switchovers: u64,
    /// Alarms raised.
    pub alarms: u64,
    /// The last alarm.
    pub last_alarm: Option<Alarm>,
    /// The last transition.
    pub last_transition: Option<Transition>,
    /// A planned switchover under way, and what it waits for.
    pub switchover: Option<&'static str>,
    /// Datagrams dropped, by reason.
    pub rejections: Rejections,
    /// Backup: outputs produced here that the primary did not report sent.
    pub unsent_outputs: u64,
    /// This node's input path: see [`InputStatus`].
    pub input: InputStatus,
    /// How the I/O source's current session maps to the pair's frames (`None`: no frame
    /// yet).
    pub source: Option<SourceMap>,
    /// Source restarts (a new source session) followed.
    pub source_restarts: u64,
    /// Frames this node decided as a new primary without the commit it knew the old
    /// primary had made ([`Alarm::CommitLost`]).
    pub commits_lost: u64,
    /// Every peer this node is configured with, in slot order (a pair: one; a group,
    /// issue 16: up to `GROUP_PEERS_MAX`), as this node sees it.
    pub group: heapless::Vec<GroupMember, GROUP_PEERS_MAX>,
    /// The output release mode and its queue (`[outputs] release`, issue 16).
    pub release: ReleaseStatus,
}

/// One peer of [`Status::group`]: what the configuration says of it and what it last
/// said of itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupMember {
    /// Its id: `[[peers]] id` in a group; a pair's peer has no configured id, so its
    /// heard id (`None` until heard).
    pub node_id: Option<u8>,
    /// Its weight in the succession (`[[peers]] weight`; 0 for a witness and for a
    /// pair's peer, which has none configured).
    pub weight: u8,
    /// It only votes (`[[peers]] witness`).
    pub witness: bool,
    /// What it last said of itself (`None`: not heard, or refused).
    pub heard: Option<PeerStatus>,
    /// It was heard within its window.
    pub alive: bool,
    /// Its highest frame from the I/O source, as its last heartbeat told.
    pub input_frame: u64,
    /// Its links: how many of [`Status::links`]' global indexes are its own.
    pub link_count: u8,
}

/// How a node's input path (frames from the I/O source) stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputStatus {
    /// The highest frame accepted from the I/O source (0 = none).
    pub frame: u64,
    /// When the last frame was accepted (`None`: none yet).
    pub heard_at: Option<Instant>,
    /// Silent: no frame within `input_silence_ms`.
    pub silent: bool,
    /// The peer's input as its last heartbeat told: its highest frame.
    pub peer_frame: u64,
    /// When (on this node's clock) the peer's last frame arrived; `None`: unknown or none.
    pub peer_heard_at: Option<Instant>,
    /// Input handovers this node started.
    pub handovers: u64,
}

/// The two-node lockstep state machine. See the module documentation.
pub struct Node<A: App> {
    config: Config,
    app: A,
    rng: Rng,
    now: Instant,

    role: Role,
    sync: SyncState,
    /// The epoch led or followed, the highest seen, the reservation, and what was
    /// persisted (see `epochs.rs`).
    epochs: Epochs,
    /// Took over at a switchover's release: `(id, released frame)`, announced with each
    /// commit up to `released frame + SWITCH_TAKEN_FRAMES`.
    switch_taken: Option<(u32, u64)>,

    /// Frames from the I/O source and commits from the primary, by frame number.
    ring: Ring,
    /// The last frame run (0 = none yet).
    frame_last_run: u64,
    /// The highest frame received from the I/O source.
    frame_highest_received: u64,
    /// The highest frame a commit has been received for (backup).
    commit_highest: u64,
    /// The highest frame a peer said in a header that it ran, within this node's reach
    /// (`frame_jump_max`): a restart of the I/O source maps above it (`source_restarted`).
    peer_frame_highest: u64,
    /// Primary: the last frame whose commit goes out with no peer heard within its window,
    /// `max_lag_frames` + 16 past the highest committed while one was (0: none heard yet,
    /// no commit goes out; `lockstep.rs`, `Node::commit`).
    commit_tail_last: u64,
    outbox: Outbox,
    /// Backup: outputs produced here that the primary did not report sent.
    unsent: heapless::Deque<Output, UNSENT_MAX>,
    /// New primary: the last frame of its takeover's burst (0: none under way), whose
    /// levels are held back and collapsed to the newest per key (`outputs.rs`).
    collapse_to: u64,
    /// The levels held back during the takeover's burst, oldest first, one per key.
    levels_held: heapless::Vec<Output, { outputs::LEVELS_HELD_MAX }>,
    /// The newest level per key (primary: emitted; backup: run), re-sent by a primary
    /// every `level_refresh_ms` (`refresh.rs`).
    refresh: refresh::LevelRefresh,
    /// Events waiting for the sinks' acks (`acks.rs`).
    acks: acks::EventAcks,

    // Start-up.
    nonce: u64,
    startup_deadline: Option<Instant>,

    // Peers and links (see `peers`): per-peer state in a slot, per-link state indexed by
    // the global link index.
    /// What this node knows of each peer; slots `0..peer_count` are in use (a pair: 1).
    peers: [PeerSlot; GROUP_PEERS_MAX],
    peer_count: u8,
    /// Per global link index: the slot of the peer at its other end.
    link_peer: [u8; LINKS_TOTAL_MAX],
    /// The last sign of life from a primary (backup's detector). The node's, not a slot's:
    /// whichever peer leads, the backup waits on one primary.
    primary_heard_at: Instant,
    links: [LinkStatus; LINKS_TOTAL_MAX],
    /// Per link: the peer's last heartbeat stamp and when it arrived, to echo.
    echo: [(u64, Instant); LINKS_TOTAL_MAX],
    /// Per link: when a heartbeat is due if nothing else goes on the link before.
    heartbeat_due: [Instant; LINKS_TOTAL_MAX],
    /// Per link: when the last heartbeat went.
    heartbeat_last: [Instant; LINKS_TOTAL_MAX],
    /// A heartbeat is owed on the link at once (a challenge to echo, a starting peer to
    /// tell): other traffic does not postpone it (`link_busy`).
    heartbeat_owed: [bool; LINKS_TOTAL_MAX],
    probe: Option<(u32, Instant)>,
    probe_id_next: u32,
    /// The slot a transfer goes to (the peer whose join request began it); a pair's is 0.
    transfer_slot: usize,
    /// A group's vote round, in place of the probe (`succession.rs`).
    vote: Option<succession::VoteRound>,
    /// The highest epoch this node granted (or asked for itself); at start-up the highest
    /// epoch it stored, which covers every vote it gave before (`Epochs::vote`).
    vote_granted: Epoch,
    /// The highest frame a primary said it ran (its header's `frame`), heard since this
    /// node started: how far the group's outputs may have gone, which a voter's grant
    /// requires of a candidate (`succession.rs`, log completeness). Only compared.
    primary_frame_heard: u64,
    /// The epoch whose history this node's state follows: its epoch when it last ran (or
    /// skipped) a frame. A group's starting node with state of an epoch below one it has
    /// seen does not lead from it (`succession.rs`).
    state_epoch: Epoch,
    /// A group's primary that stalled for a detection window holds its frames until then
    /// (`succession.rs`, `primary_quorum_heard`).
    quorum_hold_until: Option<Instant>,
    /// The backup lost its primary while it had no state: alarm raised, no probe.
    cannot_take_over_raised: bool,

    // Backup fetches of missing frames.
    fetch_next: Option<Instant>,
    /// The highest frame fetched so far: a backup short of a frame above it asks at once,
    /// without waiting for `fetch_next` (a run of frames it cannot place, as after a source
    /// restart whose mapping it has not heard, is fetched at the pace of the commits).
    fetch_asked_to: u64,

    // Transfers.
    tx: Option<TxTransfer>,
    rx: Option<RxTransfer>,
    /// The transfer whose snapshot `snapshot_buf` holds, kept after the primary gave it up:
    /// a join request of its id streams that snapshot again, never another one
    /// (`transfer.rs`, `on_join_request`).
    tx_last: Option<TxTransfer>,
    /// The ids of the last `TX_IDS_KEPT` snapshots this node streamed (`transfer.rs`): a
    /// join request of one of them but `tx_last` is not served with another snapshot.
    tx_ids: [u32; transfer::TX_IDS_KEPT],
    /// The next slot of `tx_ids` to overwrite.
    tx_ids_next: usize,
    transfer_id_next: u32,
    /// A join request that waits for the primary's first frame.
    join_pending: Option<u32>,
    snapshot_buf: Vec<u8>,

    switchover: Switchover,
    /// Operators' writes: queued, waiting for their answer, and remembered (`hmi.rs`).
    hmi: hmi::HmiState,

    actions: VecDeque<Action>,

    // Authentication and replay protection (only with a key).
    auth: Option<AuthKey>,
    session: u64,
    seq_next: [u64; LINKS_TOTAL_MAX],
    replay: [ReplayWindow; LINKS_TOTAL_MAX],
    /// Per link: this node's challenge in the restart handshake (see `replay`; 0 unkeyed).
    challenge: [u64; LINKS_TOTAL_MAX],
    /// Per link: the peer's last challenge heard, echoed in every heartbeat.
    peer_challenge: [u64; LINKS_TOTAL_MAX],

    false_deaths: u64,
    takeovers: u64,
    switchovers: u64,
    alarms: u64,
    last_alarm: Option<Alarm>,
    last_transition: Option<Transition>,
    rejections: Rejections,

    // Input liveness (see `switchover::input_check`).
    /// When the last frame from the I/O source was accepted (`None`: none yet).
    input_heard_at: Option<Instant>,
    /// The last frames from the I/O source were of a session this node cannot place (a
    /// backup, before the primary announces the source's restart): the heartbeat reports
    /// its input above every frame in hand, where a restart maps.
    input_unplaced: bool,
    /// When this node was created: a node without any frame counts its silence from it.
    booted_at: Instant,
    /// When this node last became primary (the input handover's hold counts from it).
    primary_since: Instant,
    /// The current input silence was acted on (`InputSilent` raised, or not raised for a
    /// source that never sent): only the hold's end and the backup's heartbeats look again.
    input_alarm_raised: bool,
    /// Input handovers this node started.
    input_handovers: u64,
    /// `Alarm::EpochRefused` was raised (once per run).
    epoch_refused_raised: bool,
    /// `Alarm::EpochExhausted` was raised (once per run).
    epoch_exhausted_raised: bool,
    /// Frames accepted since the last `Alarm::FrameRefused` (`None`: armed).
    frame_refused_quiet: Option<u64>,
    /// Stale frames in a row, none accepted.
    frames_stale_run: u64,
    /// The I/O source's current session and its mapping to the pair's frames.
    source: Option<SourceMap>,
    /// The session before the current one: its late frames are stale.
    source_previous: Option<u16>,
    /// When a frame of the current source session was last accepted: while that session
    /// is live (within `input_silence_ms`) a frame of another session is not a restart.
    source_heard_at: Option<Instant>,
    source_restarts: u64,
    /// Primary: commits up to this frame go with the mapping (after a restart).
    source_announce_until: u64,
    // Pairing safety (see `pairing`).
    /// What this node's heartbeats say about its program, settings and key.
    fingerprint: wire::Fingerprint,
    /// By reason (no key, other key): when `SyncKeyMismatch` was last raised.
    key_alarm_at: [Option<Instant>; 2],
    /// `PeerIsSelf` raised (once per run).
    self_alarm_raised: bool,
    /// The cold start this node's application state goes back to (0 = none: cold).
    origin: Epoch,
    /// This node, in this run, held the pair's state or heard a peer that did.
    pair_had_state: bool,
    /// May lead from a cold start although the pair had state (`allow_cold_start`, or an
    /// operator's `force-primary`).
    cold_start_allowed: bool,
    /// `ColdStartHeld` raised for the current wait.
    cold_start_held_raised: bool,
    /// Fenced by a primary of another cold start: keeps its state for the operator.
    keep_state: bool,
    /// This node's cold start from the start-up role, led while the pair's peer was last
    /// heard without state: that incarnation of the peer — its node id, session (keyed
    /// links) and start-up nonce (drawn at each start). Cleared when a backup follows this
    /// node's state (`primary_track_backup`) and at every other lead.
    cold_rival: Option<(u8, u64, u64)>,
    /// The highest frame a commit held decided when this node last became primary (its
    /// `commit_highest` then): a frame up to it without a commit of its own is one whose
    /// commit was lost ([`Alarm::CommitLost`]).
    inherited_to: u64,
    /// Frames decided without the commit they had ([`Status::commits_lost`]).
    commits_lost: u64,
    /// Acked outputs: held outputs, acks heard and sent (`release.rs`).
    release: release::ReleaseState,
}

/// What to give a node at start-up besides its configuration and application.
#[derive(Debug, Clone, Copy)]
pub struct Boot {
    /// The current time.
    pub now: Instant,
    /// Seed of the node's random generator (start-up nonces, ids).
    pub seed: u64,
    /// The highest epoch this node persisted before (0 on a first start).
    pub epoch_persisted: u64,
    /// The highest epoch this node reserved before (0: none); see [`Action::ReserveEpoch`].
    pub epoch_reserved: u64,
}

impl<A: App> Node<A> {
    /// A node in the `Starting` role. Allocates every buffer it will ever use.
    pub fn new(config: Config, app: A, boot: Boot) -> Result<Self, ConfigError> {
        config.validate()?;
        let mut rng = Rng::new(boot.seed);
        let nonce = rng.next_u64();
        let transfer_id_next = (rng.next_u64() as u32) | 1;
        let probe_id_next = rng.next_u64() as u32;
        let ring = Ring::new(config.frames_buffered);
        // Filled with a non-zero byte so that every page is touched now: a zeroed vector is
        // mapped lazily, and a first snapshot faulting in megabytes of fresh pages would
        // cost the primary milliseconds in the middle of a cycle.
        // The program's state, then the memory of applied HMI writes (`hmi.rs`).
        let snapshot_buf = std::vec![
            0xA5u8;
            config.state_bytes_max as usize
                + hmi::MEMORY_BYTES_MAX
                + refresh::TRANSFER_LEVELS_BYTES_MAX
                + acks::TRANSFER_EVENTS_BYTES_MAX
        ];
        let startup_deadline = Some(boot.now + config.startup_wait());
        let (peers, link_peer, peer_count) = peers::slots_for(&config);
        Ok(Node {
            role: Role::Starting,
            sync: SyncState::Alone,
            // A witness's reservations are the votes it gave, never an epoch it led.
            epochs: Epochs::new(boot.epoch_persisted, boot.epoch_reserved).votes_only(config.witness),
            switch_taken: None,
            ring,
            frame_last_run: 0,
            frame_highest_received: 0,
            commit_highest: 0,
            peer_frame_highest: 0,
            commit_tail_last: 0,
            outbox: Outbox::new(),
            unsent: heapless::Deque::new(),
            collapse_to: 0,
            levels_held: heapless::Vec::new(),
            refresh: refresh::LevelRefresh::default(),
            acks: acks::EventAcks::default(),
            nonce,
            startup_deadline,
            peers,
            peer_count,
            link_peer,
            primary_heard_at: boot.now,
            links: [LinkStatus::default(); LINKS_TOTAL_MAX],
            echo: [(0, Instant::ZERO); LINKS_TOTAL_MAX],
            heartbeat_due: [boot.now; LINKS_TOTAL_MAX],
            heartbeat_last: [boot.now; LINKS_TOTAL_MAX],
            heartbeat_owed: [false; LINKS_TOTAL_MAX],
            probe: None,
            probe_id_next,
            transfer_slot: peers::THE_PEER,
            vote: None,
            vote_granted: Epoch(boot.epoch_persisted.max(boot.epoch_reserved)),
            primary_frame_heard: 0,
            state_epoch: Epoch(0),
            quorum_hold_until: None,
            cannot_take_over_raised: false,
            join_pending: None,
            fetch_next: None,
            fetch_asked_to: 0,
            tx: None,
            rx: None,
            tx_last: None,
            tx_ids: [0; transfer::TX_IDS_KEPT],
            tx_ids_next: 0,
            transfer_id_next,
            snapshot_buf,
            switchover: Switchover::Idle,
            hmi: hmi::HmiState::default(),
            actions: VecDeque::with_capacity(ACTIONS_MAX + ACTIONS_PER_GROUP_FRAME_MAX),
            auth: None,
            session: 0,
            seq_next: [0; LINKS_TOTAL_MAX],
            replay: [ReplayWindow::default(); LINKS_TOTAL_MAX],
            challenge: [0; LINKS_TOTAL_MAX],
            peer_challenge: [0; LINKS_TOTAL_MAX],
            false_deaths: 0,
            takeovers: 0,
            switchovers: 0,
            alarms: 0,
            last_alarm: None,
            last_transition: None,
            rejections: Rejections::default(),
            input_heard_at: None,
            input_unplaced: false,
            booted_at: boot.now,
            primary_since: boot.now,
            input_alarm_raised: false,
            input_handovers: 0,
            epoch_refused_raised: false,
            epoch_exhausted_raised: false,
            frame_refused_quiet: None,
            frames_stale_run: 0,
            source: None,
            source_previous: None,
            source_heard_at: None,
            source_restarts: 0,
            source_announce_until: 0,
            fingerprint: release::with_release(
                pairing::with_outputs(
                    pairing::fingerprint(&app.identity(), false, config.group_digest()),
                    config.level_refresh_ms,
                ),
                config.outputs_release,
            ),
            key_alarm_at: [None; 2],
            self_alarm_raised: false,
            origin: Epoch(0),
            pair_had_state: false,
            cold_start_allowed: config.allow_cold_start,
            cold_start_held_raised: false,
            keep_state: false,
            cold_rival: None,
            inherited_to: 0,
            commits_lost: 0,
            release: release::ReleaseState::new(config.outputs_release),
            now: boot.now,
            config,
            app,
            rng,
        })
    }

    /// Authenticates every sync-link message with `key` and rejects replays. `session`
    /// must differ from one start of this node to the next (the I/O shell uses the wall
    /// clock at start-up): the peer takes a session only after the restart handshake
    /// (`node/replay.rs`), and a repeated one would continue the old one's window.
    pub fn with_auth(mut self, key: AuthKey, session: u64) -> Self {
        self.auth = Some(key);
        self.session = session;
        self.fingerprint.keyed = true;
        for link in 0..usize::from(self.links_total()) {
            self.challenge[link] = self.challenge_draw();
        }
        self
    }

    /// A frame from the I/O source. Frames may arrive in any order; a frame older than the
    /// last one run is dropped and counted. The frame of a source that does not declare
    /// sessions: [`Node::handle_source_frame`] with session 0.
    pub fn handle_frame(&mut self, now: Instant, number: u64, payload: &[u8]) {
        self.handle_source_frame(now, 0, number, payload);
    }

    /// Frame `number` of source session `session` from the I/O source. A new session is a
    /// source that started numbering again: the primary maps it to frames after those in
    /// hand, and the backup follows (see `node/source.rs`).
    pub fn handle_source_frame(&mut self, now: Instant, session: u16, number: u64, payload: &[u8]) {
        self.wake(now);
        if number == 0 || payload.len() > crate::app::FRAME_PAYLOAD_MAX {
            self.rejections.stale_frame += 1;
            return;
        }
        let Some(number) = self.source_frame(session, number) else {
            return;
        };
        if number == 0 || number <= self.frame_last_run {
            self.rejections.stale_frame += 1;
            if self.role == Role::Backup && self.frame_last_run - number <= self.config.max_lag_frames {
                // The backup's own late copy of a frame it already ran with the primary's
                // copy (it fetches what it lacks): its input lagging the commits on a busy
                // host, within the lag it tolerates, is no sign of a restarted source
                // (the primary, ahead of it, sees a restart first).
                return;
            }
            self.frames_stale_run += 1;
            if self.frames_stale_run == STALE_STORM_FRAMES {
                // The last run, not the stale frame: a frame of the session left has
                // no pair frame (0), and "older than frame 0" helps nobody.
                self.alarm(Alarm::FramesStale {
                    frame: self.frame_last_run,
                });
            }
            return;
        }
        if !self.frame_in_reach(number, self.config.frame_jump_max) {
            self.refuse_frame(number);
            return;
        }
        // A backup keeps the frames it has not run yet, commits and inputs: a frame a
        // whole ring above its last run would take the slot of one of them. Waiting for
        // a lost commit (a partition, a loss burst) while its own source runs on, it lost
        // the commits that came after the missing one, and a takeover then skipped or
        // re-decided frames its predecessor had emitted (DST seed 18879, ring of 64).
        // Refused and counted; fetched from the primary (or, after a takeover, skipped
        // as never in hand) once it has run up to them. Not in `frame_highest_received`
        // either: a takeover's bulk skip (`primary_run_frames`) holds every frame a ring
        // below it as gone, and these never took a slot. `frame_last_run` is at most
        // `FRAME_MAX` and the capacity at most 2^20: no overflow.
        // Only while commits wait to be run (`commit_highest` above the last run): a
        // backup that simply heard no commit (a partition) keeps the newest frames, so
        // that a takeover re-sends no copy more than a ring below the newest frame
        // (the sink's dedup window, docs/PROTOCOL.md; `runtime/tests/replay_window.rs`).
        if self.role == Role::Backup
            && self.has_state()
            && self.commit_highest > self.frame_last_run
            && number > self.frame_last_run + self.ring.capacity()
        {
            self.rejections.frame_beyond_ring += 1;
            self.input_heard_at = Some(now);
            self.source_heard_at = Some(now);
            return;
        }
        self.frames_stale_run = 0;
        if let Some(quiet) = &mut self.frame_refused_quiet {
            *quiet += 1;
            if *quiet >= FRAME_ALARM_REARM_FRAMES {
                self.frame_refused_quiet = None;
            }
        }
        self.ring.put_payload(number, payload);
        self.frame_highest_received = self.frame_highest_received.max(number);
        self.input_heard_at = Some(now);
        self.source_heard_at = Some(now);
        self.input_unplaced = false;
        self.input_alarm_raised = false;
        self.advance();
    }

    /// A datagram from sync link `link`. Invalid datagrams are dropped and counted.
    pub fn handle_message(&mut self, now: Instant, link: u8, bytes: &[u8]) {
        self.wake(now);
        let envelope = match wire::decode(bytes, self.auth.as_ref()) {
            Ok(envelope) => envelope,
            Err(error) => {
                self.count_rejection(error);
                if error == DecodeError::Unauthenticated {
                    self.pairing_unauthenticated(link, bytes);
                }
                return;
            }
        };
        if link >= self.links_total() || envelope.header.node_id == self.config.node_id {
            self.rejections.misaddressed += 1;
            if link < self.links_total() {
                self.pairing_own_id(link, &envelope);
            }
            return;
        }
        // Unkeyed, every message counts as the peer's newest (nothing tells otherwise).
        let mut fresh = true;
        if self.auth.is_some() {
            match self.replay_check(link, &envelope) {
                Some(newest) => fresh = newest,
                None => {
                    self.rejections.replayed += 1;
                    self.refused_epoch(&envelope);
                    return;
                }
            }
        }
        if !self.peer_frames_in_range(&envelope.body) {
            return;
        }
        if !self.pairing_check(link, &envelope) {
            return;
        }
        if !self.fence(link, &envelope) {
            return;
        }
        self.note_primary_frame(&envelope.header);
        self.note_alive(link, &envelope, fresh);
        self.release_note_ack(link, &envelope.header, &envelope.body);
        if !fresh && matches!(envelope.body, Body::JoinRequest { .. }) {
            // A join request older than what the peer has said since on this link (held
            // back and delivered late): the peer no longer asks, or asks again every
            // `retry_ms`. Acted on, it started a transfer no backup wanted, kept for good
            // (docs/DST.md, seed 13120).
            return;
        }
        self.dispatch(link, envelope);
        self.advance();
    }

    /// An operator command.
    pub fn handle_command(&mut self, now: Instant, command: Command) -> CommandReply {
        self.wake(now);
        let reply = match command {
            Command::Switchover => self.switchover_command(),
            Command::SwitchoverTo(to) => self.switchover_command_to(to),
            Command::ForcePrimary => self.force_primary_command(),
            Command::Rejoin => self.rejoin_command(),
        };
        self.advance();
        reply
    }

    /// Time has reached (or passed) the deadline from [`Node::poll_timeout`].
    pub fn handle_timeout(&mut self, now: Instant) {
        self.wake(now);
        self.election_timeout();
        self.detector_timeout();
        self.retry_timeout();
        self.switchover_timeout();
        self.input_check();
        self.refresh_timeout();
        self.acks_timeout();
        self.release_clock();
        self.advance();
    }

    /// The next action for the caller, or `None` when there is nothing to do.
    pub fn poll_action(&mut self) -> Option<Action> {
        if self.actions.is_empty() {
            // Work that did not fit the queue (a long replay) continues as it drains.
            self.advance();
        }
        self.actions.pop_front()
    }

    /// When the caller must call [`Node::handle_timeout`] next: the earliest deadline of
    /// the timer table (`node/timers.rs`).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timer_next().map(|(at, _)| at)
    }

    /// The node's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// A group's election, as this node sees it (issue 16; read by the DST's liveness
    /// check): the last frame it could decide as its primary did (what it would ask
    /// votes with), and the highest frame it knows the group ran (a candidate below it
    /// gets no vote from it). `(0, 0)` for a node that knows nothing.
    pub fn election_frames(&self) -> (u64, u64) {
        (self.frames_held_to(), self.frames_known())
    }

    /// The node's epoch.
    pub fn epoch(&self) -> u64 {
        self.epochs.current().0
    }

    /// The last frame run.
    pub fn frame(&self) -> u64 {
        self.frame_last_run
    }

    /// The application, for reading its state.
    pub fn app(&self) -> &A {
        &self.app
    }

    /// The application, mutably: for tests that inject faults into it. Changing the state
    /// of a running node breaks lockstep (which divergence detection then reports).
    pub fn app_mut(&mut self) -> &mut A {
        &mut self.app
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// A snapshot for the console.
    pub fn status(&self) -> Status {
        // Every link this node has, every peer's: a group's status showed the first
        // peer's only (`twinctl status`, 4 of a group of four's 12 link ends).
        let links = self.links;
        Status {
            node_id: self.config.node_id,
            role: self.role,
            sync: self.sync,
            epoch: self.epochs.current().0,
            frame: self.frame_last_run,
            lag_frames: self.lag_frames(),
            peer: self.the_peer().status,
            links,
            link_count: self.links_total(),
            false_deaths: self.false_deaths,
            takeovers: self.takeovers,
            switchovers: self.switchovers,
            alarms: self.alarms,
            last_alarm: self.last_alarm,
            last_transition: self.last_transition,
            switchover: self.switchover.describe(),
            rejections: self.rejections,
            unsent_outputs: self.unsent.len() as u64,
            input: InputStatus {
                frame: self.frame_highest_received,
                heard_at: self.input_heard_at,
                silent: self.input_silent_for() >= self.config.input_silence(),
                peer_frame: self.the_peer().input_frame,
                peer_heard_at: self.the_peer().input_heard_at,
                handovers: self.input_handovers,
            },
            source: self.source,
            source_restarts: self.source_restarts,
            commits_lost: self.commits_lost,
            group: self.group_status(),
            release: self.release_status(),
        }
    }

    // ---- shared plumbing -------------------------------------------------------------

    fn header(&self, link: u8) -> Header {
        Header {
            session: self.session,
            seq: self.seq_next[usize::from(link)],
            node_id: self.config.node_id,
            role: match self.role {
                Role::Starting => WireRole::Starting,
                Role::Primary => WireRole::Primary,
                Role::Backup => WireRole::Backup,
            },
            // A starting node tells the highest epoch it knows (its persisted one
            // included): the winner of a start-up draw leads above it, so that neither
            // the loser nor a sink that accepted it drops the winner as stale. Its
            // reservation too: it may have led it, and the background write that records
            // a led epoch may have been lost in the crash (DST seeds 314, 412).
            epoch: match self.role {
                // A witness's floor is the epochs it voted for, never led: announced, it
                // made a candidate's own grant moot and its voters reject their live
                // primary as stale (`succession.rs`).
                Role::Starting if self.config.witness => self.epochs.current().max(self.epochs.max_seen()).0,
                // A group's member announces only the epochs it may have led: its votes
                // and this run's reservations, announced, were taken by its peers as
                // epochs seen (`Epochs::may_have_led`).
                Role::Starting if self.group_votes() => self.epochs.may_have_led().0,
                Role::Starting => self.epochs.announced().0,
                Role::Primary | Role::Backup => self.epochs.current().0,
            },
            sync: match self.sync {
                SyncState::Joining => WireSync::Joining,
                SyncState::InSync => WireSync::InSync,
                SyncState::Lagging => WireSync::Lagging,
                SyncState::Alone | SyncState::Paired => WireSync::NotApplicable,
            },
            frame: self.frame_last_run,
            origin: self.origin.0,
        }
    }

    /// Sets the clock at the start of an event. A gap since the previous event that long
    /// means this node ran nothing meanwhile (frozen, stopped, starved: while paired its
    /// timers wake it at least every heartbeat interval), so it sent nothing either, and
    /// its peer may have judged it dead: a switchover it agreed to is given up
    /// (`switchover_after_stall`).
    fn wake(&mut self, now: Instant) {
        let gap = now.saturating_since(self.now);
        self.now = now;
        if gap >= self.stall_limit() {
            self.switchover_after_stall();
        }
        self.quorum_after_stall(gap);
    }

    /// The gap between two events of this node after which its peer may have found it
    /// silent for a detection window: the window, less the longest a link goes without a
    /// message while the node runs (its last message may predate its last event by that).
    fn stall_limit(&self) -> core::time::Duration {
        self.config
            .detection_window()
            .saturating_sub(self.config.heartbeat_gap_max())
            .max(self.config.heartbeat_interval())
    }

    fn push(&mut self, action: Action) {
        // Callers reserve room before bursts; this bound is a programmer error if hit.
        assert!(
            self.actions.len() < ACTIONS_MAX + ACTIONS_PER_GROUP_FRAME_MAX,
            "action queue overflow: the caller must drain poll_action after every event"
        );
        if let Action::Transmit {
            link,
            class: TrafficClass::Control,
            ..
        } = action
        {
            self.link_busy(link);
        }
        if let Action::Emit(output) = &action {
            self.refresh_note(output);
            self.acks_note(output);
        }
        self.actions.push_back(action);
    }

    fn room_for_frame(&self) -> bool {
        self.actions.len() + self.actions_per_frame() <= ACTIONS_MAX
    }

    /// The room one frame needs in the action queue: a pair's, and for each peer more its
    /// links' commits, source mappings and `SwitchTaken`s (at most
    /// `ACTIONS_PER_GROUP_FRAME_MAX`).
    fn actions_per_frame(&self) -> usize {
        ACTIONS_PER_FRAME_MAX + (usize::from(self.peer_count) - 1) * 3 * LINKS_MAX
    }

    /// Room for `n` more actions and then a frame's.
    fn room_for(&self, n: usize) -> bool {
        self.actions.len() + n + self.actions_per_frame() <= ACTIONS_MAX
    }

    /// Encodes `body` for one link, with that link's next sequence number.
    fn encode_for(&mut self, link: u8, body: Body) -> WireBuf {
        let envelope = Envelope {
            header: self.header(link),
            body,
        };
        self.seq_next[usize::from(link)] += 1;
        self.release_note_sent();
        match wire::encode(&envelope, self.auth.as_ref()) {
            Ok(bytes) => bytes,
            // Every message is bounded well below the datagram size.
            Err(_) => unreachable!("wire message exceeds WIRE_BYTES_MAX"),
        }
    }

    /// Encodes and queues `body` on one link.
    fn send(&mut self, link: u8, class: TrafficClass, body: Body) {
        let bytes = self.encode_for(link, body);
        self.push(Action::Transmit { link, class, bytes });
    }

    /// Queues `body` on every link, to every peer.
    fn send_all(&mut self, body: Body) {
        for link in 0..self.links_total() {
            let bytes = self.encode_for(link, body.clone());
            self.push(Action::Transmit {
                link,
                class: TrafficClass::Control,
                bytes,
            });
        }
    }

    fn transition(&mut self, role: Role, sync: SyncState, reason: Reason) {
        if role == Role::Primary && self.role != Role::Primary {
            self.primary_since = self.now;
        }
        if role != Role::Primary {
            self.levels_forget();
            self.release_forget();
            self.acks_follow(reason == Reason::SwitchoverHandedOver);
            self.hmi_forget_queue();
        }
        self.role = role;
        self.sync = sync;
        let transition = Transition {
            at: self.now,
            role,
            sync,
            epoch: self.epochs.current().0,
            frame: self.frame_last_run,
            reason,
        };
        self.last_transition = Some(transition);
        self.push(Action::Transition(transition));
    }

    fn alarm(&mut self, alarm: Alarm) {
        self.alarms += 1;
        self.last_alarm = Some(alarm);
        self.push(Action::Alarm(alarm));
    }

    fn notice(&mut self, notice: Notice) {
        self.push(Action::Notice(notice));
    }

    fn count_rejection(&mut self, error: DecodeError) {
        let r = &mut self.rejections;
        match error {
            DecodeError::TooShort => r.too_short += 1,
            DecodeError::TooLong => r.too_long += 1,
            DecodeError::UnknownVersion(_) => r.unknown_version += 1,
            DecodeError::BadChecksum => r.bad_checksum += 1,
            DecodeError::Malformed => r.malformed += 1,
            DecodeError::Unauthenticated => r.unauthenticated += 1,
        }
    }

    /// Whether `frame` is at most `jump` ahead of the frames in hand (the last run, or
    /// the highest received), and not above [`FRAME_MAX`]. A node with no frame yet takes
    /// any first frame up to `FRAME_MAX`.
    fn frame_in_reach(&self, frame: u64, jump: u64) -> bool {
        let base = self.frame_last_run.max(self.frame_highest_received);
        frame <= FRAME_MAX && (base == 0 || frame <= base.saturating_add(jump))
    }

    /// Counts a frame (or a commit naming one) beyond reach; alarms once, not per datagram.
    fn refuse_frame(&mut self, frame: u64) {
        self.rejections.frame_out_of_range += 1;
        match &mut self.frame_refused_quiet {
            Some(quiet) => *quiet = 0,
            None => {
                self.frame_refused_quiet = Some(0);
                self.alarm(Alarm::FrameRefused { frame });
            }
        }
    }

    fn lag_frames(&self) -> u64 {
        match self.role {
            Role::Backup => self.commit_highest.saturating_sub(self.frame_last_run),
            _ => 0,
        }
    }

    /// How long the peer (and a link) may be silent before it counts as gone: a primary
    /// judges its backup over `backup_heartbeat_factor` windows, since a following backup
    /// heartbeats that much less often; everyone else over one window, and so does a
    /// primary that released the plant to its backup in a switchover (nobody drives the
    /// outputs until one of them leads).
    fn peer_window(&self) -> core::time::Duration {
        if self.role == Role::Primary && !matches!(self.switchover, Switchover::Released { .. }) {
            self.config.backup_silence()
        } else {
            self.config.detection_window()
        }
    }

    fn dispatch(&mut self, link: u8, envelope: Envelope) {
        let header = envelope.header;
        match envelope.body {
            Body::Heartbeat {
                nonce,
                priority,
                sent_ns,
                echo_ns,
                echo_hold_ns,
                input_frame,
                input_age_ms,
                fingerprint: _,
                challenge: _,
                challenge_echo: _,
            } => {
                self.on_heartbeat(link, &header, sent_ns, echo_ns, echo_hold_ns);
                self.on_peer_input(link, input_frame, input_age_ms);
                self.election_on_peer(link, &header, nonce, priority);
            }
            Body::Probe { id } => self.send(link, TrafficClass::Control, Body::ProbeAck { id }),
            Body::ProbeAck { id } => self.on_probe_ack(id, &header),
            Body::Commit(commit) => self.on_commit(&header, commit),
            Body::Fetch { frame } => self.on_fetch(link, frame),
            Body::FrameData { commit, payload } => self.on_frame_data(&header, commit, &payload),
            Body::JoinRequest { id } => self.on_join_request(link, id),
            Body::TransferBegin {
                id,
                frame,
                total_bytes,
                chunk_bytes,
                state_digest,
            } => self.on_transfer_begin(id, frame, total_bytes, chunk_bytes, state_digest, header.origin),
            Body::Chunk { id, index, bytes } => self.on_chunk(link, id, index, &bytes),
            Body::ChunkAck { id, next } => self.on_chunk_ack(id, next),
            Body::SwitchAsk { id, to } => self.on_switch_ask(link, id, to),
            Body::SwitchRequest { id, to } => self.on_switch_request(id, to),
            Body::SwitchAgree { id } => self.on_switch_agree(link, id),
            Body::SwitchDelay { id, reason, lag_frames } => self.on_switch_delay(id, reason, lag_frames),
            Body::SwitchRefuse { id: _ } => self.notice(Notice::SwitchoverRefused),
            // Read in `fence` by a released primary; nothing to do for anyone else.
            Body::SwitchTaken { .. } => {}
            Body::HmiWrite(write) => self.on_hmi_write(&header, write),
            Body::SwitchRelease { id, frame } => self.on_switch_release(id, frame),
            Body::VoteRequest { epoch, commit_highest } => self.on_vote_request(link, &header, epoch, commit_highest),
            Body::Vote {
                epoch,
                granted,
                commit_highest,
                bar,
            } => self.on_vote(link, &header, epoch, granted, commit_highest, bar),
            Body::SourceMap {
                session,
                source_first,
                pair_first,
            } => self.on_source_map(
                &header,
                SourceMap {
                    session,
                    source_first,
                    pair_first,
                },
            ),
            Body::Acks { ids } => self.on_acks(&header, &ids),
            // Its ack is its header's frame (`release_note_ack`).
            Body::CommitAck { .. } => {}
            Body::Released { frame } => self.on_released(&header, frame),
        }
    }

    /// Makes whatever progress the state allows: runs frames, sends transfer chunks,
    /// completes a pending switchover. Stops when the action queue is full.
    fn advance(&mut self) {
        match self.role {
            Role::Primary => {
                self.primary_run_frames();
                self.release_progress();
                self.transfer_send_chunks();
            }
            Role::Backup => {
                self.backup_run_frames();
                self.release_ack();
                self.switchover_backup_progress();
                if self.role == Role::Backup && self.has_state() {
                    // Able to take over: have the epoch on disk already, so that neither a
                    // failover nor a switchover waits for the disk (a no-op while the
                    // reservation holds).
                    self.reserve_epoch();
                }
            }
            Role::Starting => {}
        }
        self.hmi_progress();
        // The reservation made the outputs safe to send; this records that the epoch was
        // led (see `Epochs::led_durably`).
        if let Some(action) = self.epochs.led_durably(self.role == Role::Primary) {
            self.push(action);
        }
    }

    fn retry_timeout(&mut self) {
        if self.fetch_next.is_some_and(|t| self.now >= t) {
            self.fetch_next = None;
            self.backup_fetch_missing();
        }
        self.transfer_timeout();
    }
}
