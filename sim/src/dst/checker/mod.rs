//! The invariant checkers. They live outside the nodes and see only what an outside
//! observer could: the actions each node returns (outputs, transitions, alarms, persisted
//! epochs), the commits a primary puts on the wire, the sink's verdicts and the
//! application's state digest after every step (through [`super::app::Recorder`]).
//!
//! One checker per run. The runner feeds it every observation as it happens; some
//! verdicts need the whole history (content differences are classified once every
//! epoch's story is known), so they are settled in [`Checker::finish`].
//!
//! # The invariants (DESIGN.md), as checked here
//!
//! 1. **One primary per epoch; fencing at the sink.** Every epoch is led by one node
//!    incarnation only; its low byte is the leader's id; a node's epochs strictly increase
//!    across restarts; a node emits only under the epoch it leads, and only after it
//!    persisted that epoch. The sink lets no output through whose epoch is below its
//!    fence — the highest epoch on an output it did not reject, accepted or a copy (a copy
//!    of a higher epoch fences too, docs/PROTOCOL.md) — and rejects as stale only those;
//!    since its fence last lapsed, when it runs with an epoch lease.
//! 2. **Exactly once.** The sink accepts each identity `(frame, index)` once. No node
//!    emits the same identity twice in one epoch. Every copy of an identity, whichever
//!    node emitted it and whatever the sink did with it, has the same content, except in
//!    the documented cases, counted apart as [`Exceptions`]. The two copies' histories
//!    are compared through their *lineages*: an epoch's lineage is itself, the epoch its
//!    leader followed as a backup when it became primary, that one's, and so on back to a
//!    cold start. Both histories agree up to their nearest common ancestor epoch; what
//!    happened after it, on either side, may part them:
//!    - *input lost*: an epoch after the common ancestor, on either side, raised
//!      `Alarm::InputLost { frame: f }` with `f < frame`: it skipped an input the other
//!      history ran;
//!    - *split brain*: an epoch of one lineage and an epoch of the other were primary at
//!      the same time (the later began while the earlier had not stepped down: a
//!      partition, or a frozen primary — a planned handover does not count while the old
//!      primary stays released; after it gave the switchover up, it does), or emitted
//!      in overlapping intervals (a switchover abandoned after the backup took over), for
//!      frames above the one the later of the two started at;
//!    - *cold start*: the two lineages have no common ancestor (they began from different
//!      cold starts, `StartedFirst`/`WonTiebreak` with a fresh application — which happens
//!      while the other is running only when the two could not hear each other);
//!    - *crash window* (not in DESIGN.md; found by this simulator): the two histories
//!      committed, for a frame up to this one and above where they parted, different
//!      things — one ran a frame the other skipped, or ran it on another input. The old
//!      primary's commit for that frame never reached the new one (it crashed or was cut
//!      off right after), and its I/O arrived otherwise (loss, reordering): the new primary
//!      cannot know. The checker verifies the differing decisions from the commits both
//!      primaries put on the wire; a difference without one is a violation. Since
//!      2026-11-26 it also verifies "cannot know" from the commits the network delivered:
//!      for every frame decided differently, the earlier commit (by epoch) never reached
//!      the leader incarnation of the later one before it began to lead and committed (a
//!      genuine datagram carrying it, readable under the pair's key; once it leads, a lower
//!      primary's commit is stale to it); one delivered before is a violation.
//! 3. **Nothing lost.** Every output listed in a commit (`CommitKind::Ran { outputs }`)
//!    that a primary put on the wire is accepted by the sink by the end of the run,
//!    unless (counted apart):
//!    - *fenced*: when that primary committed the frame, a higher epoch `E` had already
//!      passed the sink's fence — the sink no longer follows this primary, whose copies it
//!      rejects as stale by design — and the committing node incarnation could not have
//!      known `E`: no genuine message (a node's, not the attacker's; one that decodes under
//!      the pair's key) carrying `E` or above in its header was delivered to it before the
//!      commit (a message of `E` delivered first is a violation, whatever else runs).
//!      Counted as *deposed* when the other node was running as primary of a higher epoch
//!      (a split brain). When it was not (*orphaned*: the sink follows an epoch whose
//!      primary crashed or stepped down; the plant gets nothing until a higher epoch leads;
//!      the design has no way back from the sink to the nodes), the disk must explain too,
//!      from the simulated world's record, never the core's word: counted as *never heard*
//!      when the disk held less than `E` at the incarnation's boot and no earlier
//!      incarnation of the node heard or led `E` or above, as *write lost* when one did and
//!      a crash of the node lost a background write of `E` or above; a disk holding `E` at
//!      boot, or an epoch an earlier incarnation knew with no lost write to explain its
//!      absence (the core never wrote it), is a violation. An identity also committed by a
//!      primary the sink follows is required;
//!    - *crashed*: every node incarnation that ran the frame crashed (an over-approximation
//!      of "had it": any incarnation whose run frames span the frame counts as having it).
//! 4. **Digests agree.** After the same frame within the same epoch, every node has the
//!    same application state digest. A step's epoch is the node's epoch when it ran; a
//!    step in the same event as a transition belongs to the transition's epoch when it
//!    ran a frame above the transition's frame. A node runs a frame on a state it
//!    installed (a transfer's) only when those bytes are a snapshot some node took (since
//!    2026-11-26: the application's digest may leave bytes out).
//! 5. **Liveness.** After the faults heal, exactly one primary (`Paired`) and one in-sync
//!    backup in the same epoch within a bound, and it stays so while outputs flow, the
//!    primary sending no state transfer at the end (checked by the runner with
//!    [`pair_converged`]).
//! 6. **Failover time.** A primary crash while its backup is in sync, the links whole and
//!    no other fault near ("clean") is followed by the new primary's first output within
//!    the bound the runner computes (see `runner::failover_bound_ns`). Every failover's
//!    time (crash → first output of the new primary) is recorded for the statistics. A
//!    freeze of the primary shorter than window + probe (minus a margin) on lossless links
//!    must not cause a takeover (false death); a node restarted next to a healthy
//!    primary it can hear, from a calm state, joins it and does not lead.
//! 7. **Planned switchover** (this project's, beyond DESIGN.md). A switchover asked for
//!    in a calm state (one primary, its backup in sync, links all up, clean I/O, and no
//!    planned fault before the watch would end) completes — a new primary by
//!    `SwitchoverCompleted` within switchover timeout + window + probe — with no abort,
//!    fencing or takeover meanwhile. Another fault beginning ends the watch. A primary
//!    hands over for its input (`InputHandover`) only once it has led for
//!    `input_handover_hold_ms` on its own clock.
//! 8. **Application-state continuity** (DESIGN.md, wave 2). The program's state is never
//!    replaced by a cold start while a node that holds it is alive: a node incarnation
//!    that has run no frame and installed no state, that knew the pair had state (it
//!    followed a primary in this incarnation), does not lead from the start-up role
//!    (`StartedFirst`, `WonTiebreak`) while the other node is running (frozen counts:
//!    a frozen primary comes back) and holds state (ran a frame or installed one in its
//!    incarnation). An operator's `force-primary` is the exception, and the simulator
//!    never says it. A node keeps its state for the operator (`ColderPrimary`) only when
//!    it holds one and the primary that fenced it goes back to a later cold start. Two
//!    cold starts of one term are a start-up collision, not a violation: the other
//!    node's state is its own cold start, whose epoch this node never heard.
//! 9. **A takeover re-sends only what no commit it held reported sent** (DESIGN.md,
//!    "Takeover"; added 2026-11-26, issue 21). The commits a node accepted as a backup
//!    from the primary it followed (recorded from what was delivered to it, filtered as
//!    the node filters: its epoch, a primary's, not refused, not for a frame it had run)
//!    are what it holds when it leads. As primary it emits no output `(frame, i)` whose
//!    bit `i` is set in the `sent_mask` of a commit it held for `frame` — judged at the
//!    emit, not at the sink (whose dedup would hide the repeat) — and when it runs an
//!    inherited frame it emits, in the same event, every output whose bit is clear.
//! 10. **Replay faithfulness** (added 2026-11-26, issue 21). A new primary decides every
//!     frame above its last run frame for which it held a commit exactly as that commit
//!     says, in its own commits (tapped from the wire): a `Ran` frame is run — on the
//!     same input (digest), giving the same number of outputs, the same output digest
//!     and, where the commit carries a state digest, the same state digest (all from the
//!     application's step in the same event) — or skipped with `Alarm::InputLost` for
//!     it; a `Skipped` range is skipped, none of it run; no inherited frame is passed
//!     without a commit of its own. A commit a whole ring below the newest frame the node
//!     received is not held (its slot went to a newer frame), at the takeover or at any
//!     event after it before the node decided that frame. Where the node decided a
//!     frame itself — its commit never arrived — below one it held, otherwise than the
//!     old primary (from the commits on the wire; counted as a *replay gap*,
//!     [`Exceptions::replay_gap`], and faithful only with `Alarm::CommitLost` — or
//!     `InputLost`, for a commit held that the model counts as gone — for that frame in
//!     the same event), or skipped one for a lost input, its history parts
//!     there: from then on only inputs are compared.
//! 11. **Join time** (added 2026-11-26). Once the faults healed, a backup that joins
//!     (`Joining`, counted from the healing when it began before) is in sync (`InSync` or
//!     `Lagging`) within the join bound the runner derives from the state size, the pacing
//!     and the retry timers (`runner::join_bound_ns`), or it follows another epoch.
//! 12. **Divergence detected** (added 2026-11-26). After the plan made one node's
//!     application diverge for a frame (outputs or state) or corrupted its local copy of a
//!     frame's payload, in a calm pair, either the pair never diverged or the backup raises
//!     `OutputDivergence`/`StateDivergence` before it runs a second frame after the
//!     injected one, and is in sync again by a transfer within the join bound. Until the
//!     alarm, the backup's steps from the injected frame are exempt from invariant 4.
//!
//! 13. **An attacker changes nothing** (issue 21; 9–12 are other checks'). Every datagram
//!     the attacker injects (`dst/attacker.rs`) that the core must reject — judged by the
//!     runner from the bytes and from what the target accepted before, see
//!     `runner/attack.rs` — is rejected: one of the node's `rejections` counters rises,
//!     and handling it yields no transition, no output, no epoch change and no alarm
//!     other than the documented `sync_key_mismatch` and `peer_is_self`.
//! 14. **Levels** (issue 17, added 2026-11-26; `levels.rs`). Per level key, the sink
//!     never accepts a value older than one it accepted, refuses one as superseded only
//!     below a newer accepted one, and ends on the newest level the pair committed (a
//!     primary it follows) in the history it ends on (not one of a primary whose history
//!     the final one replaced and which skipped that frame, [`Exceptions::level_parted`]),
//!     unless every node that ran that frame crashed; a node emits
//!     each output as the kind its application produced; and when a primary the sink
//!     follows commits a frame past its takeover's burst, the sink holds, per key, a value
//!     at least as new as every level that primary committed for an earlier frame. Levels older than an accepted
//!     value of their key are excused from invariant 3 ([`Exceptions::level_superseded`]);
//!     events are not, and invariant 9's "every unsent output of an inherited frame goes
//!     out in the same event" is for events only (levels are held to the end of the
//!     takeover's burst and collapsed).
//! 18. **A primary skips no frame it holds** (issue 21, added 2026-11-27; `skips.rs`; 15
//!     is the HMI writer's, `runner/hmi.rs`, 16 and 17 `acks.rs` and `acked.rs`). No
//!     `Skipped` commit of a primary covers a frame whose input the node incarnation took
//!     from the I/O source and still holds (not a whole ring below the highest frame
//!     that may have taken a slot: a frame taken, a commit delivered), but a skip equal to
//!     a `Skipped` commit delivered to it (inherited) and a frame it alarmed `InputLost`
//!     in the same event.
//! 19. **A primary steps down only below a successor** (issue 21, added 2026-11-27;
//!     `stepdown.rs`; liveness). A node that leaves the primary role (a transition to
//!     another role; a crash is none) was told of a higher epoch first: a datagram a node
//!     sent, carrying an epoch above the one it led and readable under the pair's key,
//!     reached its current incarnation (through the links, or replayed by the attacker).
//!
//! 20. **A probe's answer is acted on** (issue 21, added 2026-11-27; `probe.rs`; 19 is
//!     the step-down rule's). A backup answered, since its probe went out, by a peer that
//!     does not lead (a `ProbeAck` of the probe's id, taken) takes over then, not at the
//!     probe's deadline — unless a primary's message reached it after, or it changed
//!     role or sync state; and a backup takes over as `TakeoverNoPrimary` only in the
//!     event that delivered such an answer to its last probe.
//!
//! # Where each check lives
//!
//! One file per invariant: `fencing.rs` (1), `exactly_once.rs` (2, and `lineage.rs` for the
//! classification of content differences), `nothing_lost.rs` (3), `digests.rs` (4),
//! `convergence.rs` (5), `failover.rs` (6), `switchover.rs` (7), `continuity.rs` (8),
//! `resends.rs` (9, and what each node held when it took over), `replay.rs` (10),
//! `joins.rs` (11), `divergence.rs` (12), `attack.rs` (13), `levels.rs` (14),
//! `skips.rs` (18), `stepdown.rs` (19), `probe.rs` (20). The shared record they read — tenures, split brains, committed
//! decisions, alarms, what each application produced, the frames each incarnation ran,
//! steps by epoch — is kept by `record.rs`. [`Checker::on_emit`], [`Checker::on_transition`],
//! [`Checker::on_steps`], [`Checker::on_commit`], [`Checker::on_event_end`] and
//! [`Checker::finish`] call each invariant's check in turn.

mod acked;
mod acks;
mod attack;
mod continuity;
mod convergence;
mod digests;
mod divergence;
mod exactly_once;
mod failover;
mod fencing;
mod held;
mod joins;
mod levels;
mod lineage;
mod nothing_lost;
mod output_path;
mod probe;
mod record;
mod replay;
#[cfg(test)]
mod replay_tests;
mod resends;
mod sent;
mod skips;
mod source;
mod stepdown;
mod switchover;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_edges;

pub use attack::InjectedOutcome;
pub use convergence::{pair_converged, pair_following};
pub use divergence::{Perturbed, DIVERGENCE_FRAMES_MAX};
use lineage::{Decision, Explanation};
pub use record::attribute_steps;
use resends::commit_last;
pub use source::SourceEvent;

use super::app::Step;
use super::clock::Nanos;
use super::sink::Verdict;
use std::collections::{BTreeMap, BTreeSet};
use twinloop::app::OUTPUTS_PER_FRAME_MAX;
use twinloop::digest::fnv64;
use twinloop::node::Epoch;
use twinloop::wire::{Commit, CommitKind};
use twinloop::{Output, Reason, Role, Status, SyncState, Transition};

/// Violations kept with their detail; the rest are only counted.
pub const VIOLATIONS_KEPT: usize = 32;
/// Content mismatches kept for classification at the end; beyond, each is a violation.
pub const MISMATCHES_MAX: usize = 100_000;
/// Outputs produced kept for comparison with what is emitted (the oldest half is dropped
/// beyond; far more than a ring's worth of frames).
pub const PRODUCED_MAX: usize = 1 << 20;
/// Commits delivered kept for the crash window's explanation (invariant 2): far above a
/// run's frames times the links.
pub const DELIVERED_COMMITS_MAX: usize = 1 << 21;
/// Frames back from a mismatch over which two histories' decisions are compared.
pub const DECISIONS_COMPARED_MAX: u64 = 4096;
/// Commits kept per node for its takeover (invariants 9 and 10; the oldest dropped
/// beyond): as many frames as the DST sink's window, longer than any seed's run, and above
/// any node's ring (`frames_buffered`), beyond which the node holds none either.
pub const HELD_FRAMES_MAX: usize = 1 << 16;

/// Which invariant a violation breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Invariant {
    /// 1: two primaries in one epoch, an output under a foreign or unpersisted epoch, or
    /// the sink accepting a lower epoch.
    OnePrimaryPerEpoch,
    /// 2: an identity accepted twice, emitted twice in an epoch, or two contents.
    ExactlyOnce,
    /// 3: a committed output never reached the sink.
    NothingLost,
    /// 4: two digests for the same epoch and frame.
    DigestAgreement,
    /// 5: no single primary with an in-sync backup after healing.
    Liveness,
    /// 6: a clean failover slower than its bound.
    FailoverTime,
    /// 6: a takeover during a freeze the probe should have covered.
    FalseDeath,
    /// 7 (this project's, beyond DESIGN.md): a planned switchover asked for in a calm
    /// state did not complete cleanly (aborted, fenced, a takeover, or not at all).
    Switchover,
    /// 8: a node that knew the pair had state led from a cold start while the holder
    /// was alive.
    StateContinuity,
    /// 9: a new primary re-sent an output a commit it held reported sent, or did not
    /// send one of an inherited frame that no commit reported sent.
    ResendOnlyUnsent,
    /// 10: a new primary ran an inherited frame otherwise than its commit says.
    ReplayFaithful,
    /// 11 (added 2026-11-26): after healing, a join took longer than its bound.
    JoinTime,
    /// 12 (added 2026-11-26): an injected divergence was not alarmed within its bound,
    /// or the pair did not resync after it.
    DivergenceDetected,
    /// 13 (issue 21): a datagram the attacker injected that the core must reject was
    /// taken, or changed a role, an epoch or an output.
    Injected,
    /// 14 (issue 17): a level older than its key's newest at the sink, a final value not
    /// the newest committed, or an output emitted as another kind than produced.
    Levels,
    /// 15 (issue 18): an acknowledged HMI write not applied exactly once, at the frame it
    /// was acknowledged at, by every history that spans that frame.
    HmiWrites,
    /// 16 (`--acks`, issue 22): every event the primary at the end emitted in its epoch,
    /// longer ago than the re-sends need, reached the sink; and no node re-sends after a
    /// takeover an event whose ack it held.
    EventsApplied,
    /// 17 (`--acked`, issue 16): with acked outputs, an output id emitted by two
    /// primaries, neither copy unguarded nor reported uncertain (`acked.rs`).
    AckedOnce,
    /// 18 (issue 21, `skips.rs`): a primary committed as skipped a frame whose input it
    /// held, neither inherited the skip nor alarmed the input lost.
    SkipHeld,
    /// 20 (issue 21, `probe.rs`): a backup took over at its probe's deadline though a
    /// peer that does not lead had answered the probe, or took over as no primary led
    /// without such an answer.
    ProbeAnswered,
    /// 19 (issue 21, `stepdown.rs`): a primary left the role though no message of a
    /// higher epoch had reached it: no successor leads.
    StepDown,
    /// 21 (`--acked`, issue 21, `held.rs`): a primary let a frame wait for room in its
    /// queue of held outputs below the queue's bound.
    HeldFull,
    /// 22 (issue 21, `source.rs`): a node ran the source's inputs out of their order or
    /// twice, a restart of the source was mapped onto frames in hand, a backup did not
    /// hold the map its primary announced, or a restart followed was not told once.
    SourceFollowed,
    /// 23 (issue 21, `source.rs`): a node announced its source map otherwise than at
    /// each restart it decided and with the commits the protocol names.
    SourceAnnounced,
    /// 24 (issue 21, `runner/handover.rs`): a calm pair's primary whose input died did
    /// not hand over to its backup, whose input lives, within the bound.
    InputHandover,
    /// 25 (issue 21, `sent.rs`): a commit reported sent an event no node had emitted.
    SentReported,
    /// 26 (`--acked`, issue 21, `acked.rs`): a primary released an output of a frame it
    /// had just run before its peer, heard as an in-sync backup, acknowledged the frame.
    AckedHeld,
}

impl Invariant {
    /// The invariant's number in DESIGN.md.
    pub fn number(self) -> u8 {
        match self {
            Invariant::OnePrimaryPerEpoch => 1,
            Invariant::ExactlyOnce => 2,
            Invariant::NothingLost => 3,
            Invariant::DigestAgreement => 4,
            Invariant::Liveness => 5,
            Invariant::FailoverTime | Invariant::FalseDeath => 6,
            Invariant::Switchover => 7,
            Invariant::StateContinuity => 8,
            Invariant::ResendOnlyUnsent => 9,
            Invariant::ReplayFaithful => 10,
            Invariant::JoinTime => 11,
            Invariant::DivergenceDetected => 12,
            Invariant::Injected => 13,
            Invariant::Levels => 14,
            Invariant::HmiWrites => 15,
            Invariant::EventsApplied => 16,
            Invariant::AckedOnce => 17,
            Invariant::SkipHeld => 18,
            Invariant::ProbeAnswered => 20,
            Invariant::StepDown => 19,
            Invariant::HeldFull => 21,
            Invariant::SourceFollowed => 22,
            Invariant::SourceAnnounced => 23,
            Invariant::InputHandover => 24,
            Invariant::SentReported => 25,
            Invariant::AckedHeld => 26,
        }
    }

    /// Safety (nothing bad happens) or liveness (something good happens in time).
    pub fn is_safety(self) -> bool {
        self.number() <= 4
            || matches!(
                self,
                Invariant::StateContinuity
                    | Invariant::ResendOnlyUnsent
                    | Invariant::ReplayFaithful
                    | Invariant::DivergenceDetected
                    | Invariant::Injected
                    | Invariant::Levels
                    | Invariant::HmiWrites
                    | Invariant::AckedOnce
                    | Invariant::SkipHeld
                    | Invariant::SourceFollowed
                    | Invariant::SentReported
                    | Invariant::AckedHeld
            )
    }
}

/// One broken invariant, with what the checker saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Which.
    pub invariant: Invariant,
    /// When it was seen (true time; the end of the run for verdicts settled at the end).
    pub at: Nanos,
    /// What happened, for a human.
    pub detail: String,
}

/// Differences and losses the design allows, counted apart (see the module docs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Exceptions {
    /// Identities whose copies differ after an `InputLost` alarm.
    pub input_lost: u64,
    /// Identities whose copies differ across a split brain.
    pub split_brain: u64,
    /// Identities whose copies differ across a cold start.
    pub cold_start: u64,
    /// Identities whose copies differ because the new primary decided a frame of the
    /// crash window (run, skipped, on which input) otherwise than the old one had in a
    /// commit that never reached it.
    pub crash_window: u64,
    /// Committed outputs rejected because their primary was already deposed at the sink
    /// by a running primary of a higher epoch (split brain).
    pub lost_deposed: u64,
    /// Committed outputs rejected because the sink followed a higher epoch whose primary
    /// was no longer running, and the committing node incarnation never heard of that
    /// epoch: no genuine message carrying it (or a higher one) was delivered to it before
    /// the commit, and its disk held less when it booted, with no earlier incarnation
    /// having known it (see the module docs, invariant 3).
    pub lost_orphaned_never_heard: u64,
    /// As above, but an earlier incarnation of the node knew the epoch (heard or led it)
    /// and a crash lost a background write carrying it (the disk model's record).
    pub lost_orphaned_write_lost: u64,
    /// Committed outputs rejected under a fence (deposed or orphaned) whose epoch the
    /// committing incarnation received only in genuine messages it refused as not fresh:
    /// a session its restart handshake had not verified (an asymmetric partition keeps
    /// the handshake from completing), or a late copy. The core ignores such a message
    /// whole, its epoch included (open finding, docs/DST.md "Orphaned losses").
    pub lost_unverified: u64,
    /// Committed outputs lost because every node that ran the frame crashed.
    pub lost_crashed: u64,
    /// Frames a new primary decided in its replay without the commit (it never arrived),
    /// below commits it held, otherwise than the old primary had: its history parts there
    /// (invariant 10 compares only inputs after it). Each with `Alarm::CommitLost` for it
    /// (since 2026-11-26; one without is a violation of invariant 10).
    pub replay_gap: u64,
    /// Committed level outputs that never reached the sink because a newer value of
    /// their key did (collapsed at a takeover, or refused as superseded): invariant 14's.
    pub level_superseded: u64,
    /// Committed outputs (events, and levels with no newer value at the sink) that never
    /// reached the sink because the output path lost every copy or reordered it behind a
    /// higher epoch's (issue 22; no acknowledgements yet: `output_path.rs`).
    pub lost_network: u64,
    /// Of which levels: a key's final value at the sink older than the newest committed,
    /// its copies lost on the path with the level refresh off.
    pub level_lost_network: u64,
    /// Levels: a key's final value older than the newest committed, its copies lost on the
    /// path with the refresh on, and the history the pair ends on began from a cold start
    /// after that level's frame (it never had the level; a transfer carries the refresh
    /// table since 2026-11-26, so a transferred state is no excuse: `level_lost_transfer`
    /// before).
    pub level_before_cold_start: u64,
    /// Levels not required as their key's final value: committed by a primary outside the
    /// history the pair ends on, which skipped that frame (it led from an older state of
    /// its own, a split brain or a start beside a frozen primary; `levels.rs`).
    pub level_parted: u64,
    /// `--acked`: output ids emitted by two primaries where one copy left unguarded (no
    /// backup in sync, or held for the backup window; invariant 17).
    pub acked_unguarded: u64,
    /// `--acked`: output ids a new primary emitted again that it had reported uncertain
    /// (the old primary's `Released` lost in its last cycle; invariant 17).
    pub acked_uncertain: u64,
    /// `--acked`: committed outputs a primary still held for its backups' acks when the
    /// run ended (the last round trip's; invariant 3).
    pub acked_held_at_end: u64,
    /// `--acked`: committed outputs their primary held for acks when it stopped leading
    /// (crashed, deposed) and no successor sent: never released (invariant 3).
    pub acked_never_released: u64,
    /// `--acked`: committed outputs whose primary held them for acks its backup never
    /// sent (the backup had become the other side of a split brain) and released them
    /// for its backup window only after the sink followed a higher epoch: rejected as
    /// stale (invariant 3).
    pub acked_released_fenced: u64,
}

/// What an epoch's leader did, for the classification of content differences.
#[derive(Debug, Clone, Copy)]
struct Tenure {
    node: usize,
    incarnation: u32,
    /// The leader's last run frame when it became primary.
    start_frame: u64,
    /// The epoch whose history the leader's state carried when it became primary: the one
    /// it followed as a backup, or the one it led before (a primary that leads on above a
    /// heard epoch, `EpochRaised`). `None` for a cold start (a fresh application).
    parent: Option<u64>,
    /// First and last output emitted, if any.
    emitting: Option<(Nanos, Nanos)>,
    /// When it began, in the order of observations (`Checker::observed`).
    began: u64,
}

/// A takeover's burst, as the checker follows it (invariant 14, `levels.rs`).
#[derive(Debug, Clone)]
struct Collapse {
    /// The epoch the node leads.
    epoch: u64,
    /// The burst's last frame.
    end: u64,
    /// Per key, the level emitted for a frame of the burst.
    keys: BTreeMap<u16, (u64, u8)>,
}

/// The copies of one identity seen so far: distinct `(epoch, content hash)`.
#[derive(Debug, Clone)]
struct Copies {
    first: (u64, u64),
    more: Vec<(u64, u64)>,
}

#[derive(Debug, Clone, Copy)]
struct Mismatch {
    frame: u64,
    index: u8,
    epochs: (u64, u64),
    at: Nanos,
}

#[derive(Debug, Clone, Copy)]
struct Required {
    epoch: u64,
    node: usize,
    fenced: Option<Fenced>,
}

/// Why a committing primary's outputs were not for the sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fenced {
    /// A primary of a higher epoch was running on the other node, and this incarnation
    /// had not heard the fence's epoch.
    Deposed,
    /// No primary of a higher epoch was running: the sink follows one that is gone. The
    /// fence's epoch, the committing incarnation, and why that incarnation did not know
    /// the epoch (judged at the commit, from what the world delivered and the disk held).
    Orphaned { fence: u64, incarnation: u32, why: Orphan },
    /// Deposed or orphaned, and the fence's epoch reached this incarnation only in
    /// genuine messages it refused as not fresh (`lost_unverified`).
    Unverified,
    /// Unexplained, deposed or orphaned: a genuine message carrying `epoch >=` the fence's
    /// was delivered to this incarnation at `at`, before the commit; it should have
    /// followed that epoch or led above it.
    Heard {
        fence: u64,
        incarnation: u32,
        epoch: u64,
        at: Nanos,
        deposed: bool,
    },
}

/// Why a node incarnation that had not heard the sink's fence `E` committed below it with
/// no primary of a higher epoch running (invariant 3): explained or not, from what the
/// simulated world knows — its disk, what earlier incarnations heard and led, the writes
/// crashes lost — never from what the core says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Orphan {
    /// Explained: its disk held less than `E` at its boot, and no earlier incarnation of
    /// the node heard or led `E` or above.
    NeverHeard,
    /// Explained: an earlier incarnation heard or led `E` or above, and a crash of the
    /// node lost a background write of `E` or above (not durable yet).
    WriteLost,
    /// Unexplained: the disk held `disk >= E` when this incarnation booted.
    OnDisk { disk: u64 },
    /// Unexplained: an earlier incarnation heard or led `known >= E`, the disk held
    /// `disk < E` at this incarnation's boot, and no crash lost a write of `E` or above:
    /// the write was never asked for, or never made.
    Forgotten { known: u64, disk: u64 },
}

/// A primary crash waiting for its successor's first output.
#[derive(Debug, Clone, Copy)]
struct PendingFailover {
    crashed_node: usize,
    epoch: u64,
    at: Nanos,
    /// `Some(bound)` when the crash was clean and the time is checked.
    bound_ns: Option<Nanos>,
}

/// A planned switchover asked for in a calm state, watched until `until`.
#[derive(Debug, Clone, Copy)]
struct CalmSwitchover {
    from: Nanos,
    until: Nanos,
    completed: bool,
    /// Another fault began before it completed: not judged.
    cut_short: bool,
}

/// A freeze of the primary during which no takeover may happen.
#[derive(Debug, Clone, Copy)]
struct NoTakeover {
    backup: usize,
    from: Nanos,
    until: Nanos,
    /// A restarted node next to a healthy primary: leading in any way (a start-up
    /// election too) deposes that primary.
    restarted: bool,
}

/// What a node held when it became primary, for the rest of its tenure (invariants 9, 10).
#[derive(Debug, Default)]
struct Takeover {
    epoch: u64,
    /// The epoch of the primary it followed (of its newest commit held).
    followed: u64,
    /// Its last run frame when it took over: the replay begins above.
    start_frame: u64,
    /// The commits it held, by frame, with the epoch of the primary that sent each.
    held: BTreeMap<u64, (u64, Commit)>,
    /// The last frame its own commits decided.
    decided_to: u64,
    /// The last frame a commit it inherited decides (above `start_frame`; 0: none).
    inherited_to: u64,
    /// The first inherited frame it skipped although the commit ran it (its input lost):
    /// from there its state may differ from the committed history's.
    parted_from: Option<u64>,
    /// Acked release: the highest `Released` it heard as a backup, clamped to the commits
    /// it held (as the node clamps it), and unclamped.
    released_to: (u64, u64),
}

/// What one event of a node did that invariants 9 and 10 settle at its end (cleared then:
/// bounded by the actions of one event).
#[derive(Debug, Default)]
struct EventRecord {
    /// Steps, while the node may be running inherited frames.
    steps: Vec<Step>,
    /// Outputs emitted of frames up to the last inherited one.
    emitted: Vec<(u64, u8)>,
    /// Outputs of inherited frames run that no commit reported sent.
    owed: Vec<(u64, u8)>,
    /// Inherited frames the commit ran and the node skipped.
    skipped_ran: Vec<u64>,
    /// Replay gaps: frames the node decided without their commit, otherwise than the old
    /// primary (invariant 10 requires `Alarm::CommitLost` for each).
    gaps: Vec<u64>,
    /// The ranges of the `Alarm::CommitLost` the node raised.
    commit_lost: Vec<(u64, u64)>,
}

/// The checkers of one run.
#[derive(Debug, Default)]
pub struct Checker {
    /// Acks on (`--acks`): events are re-sent until acked, so one node sends an event
    /// more than once in its epoch, and a new primary re-sends what was sent but not
    /// acked (invariant 16, `acks.rs`, instead of 2's "once per epoch" and 9 for events).
    pub acks: bool,
    /// By node: ids the primary it followed passed on as acked (`Body::Acks`).
    pub(super) acks_held: [BTreeSet<(u64, u8)>; 2],
    /// By node, a backup: the highest `Released` of the primary it follows delivered to
    /// it, clamped to the commits it held then, and unclamped (invariant 9, acked release).
    pub(super) released_heard: [(u64, u64); 2],
    /// By node: the sink's acks delivered to it, each id at its latest delivery.
    pub(super) acks_delivered: [BTreeMap<(u64, u8), Nanos>; 2],
    /// By node: the replay window its acks pass, kept by the world.
    pub(super) acks_window: [twinloop::io_protocol::AckWindow; 2],
    /// `(node, epoch)` whose primary dropped events when the world had kept the acks of
    /// a full queue from it (invariant 16's excuse, judged from the world since
    /// 2026-11-28: before, the node's own `events_dropped` excused it).
    pub(super) events_drop_excused: BTreeSet<(usize, u64)>,
    /// By node: since when it leads without a break (epoch raises included), and the
    /// events it emitted since, each at its first sending.
    pub(super) events_tenure: [Option<acks::Tenure>; 2],
    /// Acked outputs on (`--acked`, invariant 17, `acked.rs`).
    pub acked: bool,
    /// `--acked`: each output id's first emission: epoch, node, unguarded.
    pub(super) acked_emitted: BTreeMap<(u64, u8), (u64, usize, bool)>,
    /// `--acked`: `(node, epoch, first, last)`: frames whose outputs a primary held when it
    /// stopped leading.
    pub(super) acked_never_released: Vec<(usize, u64, u64, u64)>,
    /// `--acked`: ids a primary released only after the sink's fence passed its epoch.
    pub(super) acked_stale: BTreeSet<(u64, u8)>,
    /// `--acked`: `(node, first frame held)` of the primaries holding outputs at the end.
    pub(super) acked_held_end: Vec<(usize, u64)>,
    /// `--acked`: `(node, epoch, first, last)` of every `Notice::OutputsUncertain`.
    pub(super) acked_uncertain: Vec<(usize, u64, u64, u64)>,
    /// `--acked`: by node, what the world knows of it as a primary (invariant 26).
    acked_views: [acked::AckedView; 2],
    /// By (node, epoch): the events it emitted as primary, when first.
    pub(super) events_emitted: BTreeMap<(usize, u64), BTreeMap<(u64, u8), Nanos>>,
    /// Invariants 22 and 23: the source's frames sent, each node's last input and map
    /// announcements (`source.rs`).
    source: source::SourceWatch,
    violations: Vec<Violation>,
    violation_count: u64,
    /// Differences and losses the design allows.
    pub exceptions: Exceptions,

    // Invariant 1.
    leaders: BTreeMap<u64, (usize, u32)>,
    tenures: BTreeMap<u64, Tenure>,
    /// Pairs of epochs that were primary at once, and the frame their histories may
    /// part from.
    split_pairs: BTreeMap<(u64, u64), u64>,
    primary_now: [Option<u64>; 2],
    /// The epoch each node follows as a backup (from its last transition).
    following: [Option<u64>; 2],
    /// By node: a primary that released its frames to a successor (it sent
    /// `SwitchRelease`) and has not transitioned since — not after it gave the switchover
    /// up (`SwitchoverAborted`): a successor completing then is a second primary.
    released: [bool; 2],
    epoch_led_max: [u64; 2],
    persisted: [u64; 2],
    reserved: [u64; 2],
    incarnation: [u32; 2],
    /// The sink's fence as the rule defines it: the highest epoch on an output it did not
    /// reject as stale (accepted, or a copy) since the fence last lapsed.
    sink_fence: u64,

    // Invariant 2.
    copies: BTreeMap<(u64, u8), Copies>,
    accepted: BTreeMap<(u64, u8), u64>,
    mismatches: Vec<Mismatch>,
    input_lost: Vec<(u64, u64)>,

    /// Every commit's decision, by `(epoch, frame)`.
    decisions: BTreeMap<(u64, u64), Decision>,
    /// When each commit was first put on the wire, by `(epoch, frame)`: the time and the
    /// observation's order (`observed`).
    decided_at: BTreeMap<(u64, u64), (Nanos, u64)>,
    /// Commits delivered to each node incarnation (a genuine datagram carrying it, read
    /// under the pair's key), by `(node, incarnation, epoch, frame)`: when first, and the
    /// observation's order; at most [`DELIVERED_COMMITS_MAX`] (beyond, later ones are not
    /// recorded and count as never delivered).
    delivered_commits: BTreeMap<(usize, u32, u64, u64), (Nanos, u64)>,
    /// Commits put on the wire, commits delivered and tenures begun so far: orders them
    /// within an instant (a delivery handled in a later event of the same instant comes
    /// after a commit).
    observed: u64,

    // Invariant 3.
    required: BTreeMap<(u64, u8), Required>,
    ran_range: BTreeMap<(usize, u32), (u64, u64)>,
    crashed: Vec<(usize, u32)>,
    /// By node: the highest epoch carried by a genuine message (a node's, not the
    /// attacker's) delivered to its current incarnation, and when (0: none).
    heard: [(u64, Nanos); 2],
    /// By node: the highest epoch carried by a genuine message delivered to its current
    /// incarnation that it refused as not fresh (counted `replayed`).
    heard_unverified: [u64; 2],
    /// By node: the highest epoch any earlier incarnation heard (as above) or led.
    known_before: [u64; 2],
    /// By node: what its disk held (persisted or reserved, the higher) when its current
    /// incarnation booted.
    boot_disk: [u64; 2],
    /// By node: the highest epoch of a background write a crash of the node lost.
    write_lost_max: [u64; 2],

    // Invariant 4.
    /// `(epoch, frame)` → (state digest, outputs hash, first node to record it).
    digests: BTreeMap<(u64, u64), (u64, u64, usize)>,
    /// `(frame, node, index)` → hash of the output the node's application produced.
    produced: BTreeMap<(u64, usize, u8), u64>,
    /// FNV-1a of every snapshot an application gave (one per state transfer sent).
    snapshots: BTreeSet<u64>,
    /// By node: the hash of the state it restored last, until its next step.
    restored: [Option<u64>; 2],

    // Invariant 14.
    /// `(frame, index)` → key, of every level an application produced (at most
    /// [`PRODUCED_MAX`]).
    level_keys: BTreeMap<(u64, u8), u16>,
    /// By key: the newest level the sink accepted.
    sink_levels: BTreeMap<u16, (u64, u8)>,
    /// By node: the highest frame it had received when it last became primary.
    ring_highest: [u64; 2],
    /// By node, primary after a takeover: the last frame of its takeover's burst (its
    /// levels may wait until the burst is run; 0: none).
    burst_end: [u64; 2],
    /// By node, a new primary within its takeover's burst: the level of each key it
    /// emitted for the burst's frames (one each, the newest).
    collapse: [Option<Collapse>; 2],
    /// By node, a primary: per key, the newest level it committed that the sink has not
    /// been seen to hold yet (checked at its next commit after the burst).
    levels_pending: [BTreeMap<u16, (u64, u8)>; 2],
    /// By node: since its last commit the sink did not follow it for an output (stale,
    /// too old, a conflict: another history's).
    levels_unfollowed: [bool; 2],
    /// By node: the sink did not follow it for an output of the frames whose levels are
    /// pending: they are not judged.
    levels_pending_unjudged: [bool; 2],

    // Invariant 6.
    pending: Vec<PendingFailover>,
    no_takeover: Vec<NoTakeover>,
    /// Every failover measured: crash → first output of the new primary, in nanoseconds.
    pub failover_ns: Vec<Nanos>,
    /// Failovers whose time was checked against the bound.
    pub failovers_checked: u64,
    /// False-death freezes watched for a takeover.
    pub false_deaths_watched: u64,
    /// Restarts next to a healthy primary watched for a node that leads.
    pub restarts_watched: u64,
    calm_switchovers: Vec<CalmSwitchover>,
    /// Switchovers asked for in a calm state, watched to complete cleanly.
    pub switchovers_watched: u64,

    // Invariant 8.
    /// By node: the current incarnation is running (not crashed; frozen counts).
    running: [bool; 2],
    /// By node: since when the current incarnation holds a state (ran a frame or
    /// installed one).
    holds_state: [Option<Nanos>; 2],
    /// By node: the current incarnation followed a primary, or took a message of its
    /// peer's saying it held state, so it knew the pair's state.
    knew_state: [bool; 2],
    /// By node: the epoch of the cold start its state comes from, when it led one from
    /// the start-up role without a state and installed none since (`None`: another).
    cold_start_of: [Option<u64>; 2],
    /// Invariant 8: by node, the origin its headers last named other than 0 (the cold
    /// start its state goes back to), this incarnation.
    origin_held: [Option<u64>; 2],
    /// Invariant 8: by node, the origin its last header named (0 included).
    origin_sent: [u64; 2],
    /// Invariant 8: by node, a header naming `origin_held` named a frame above 0.
    origin_ran: [bool; 2],
    /// Invariant 8: the origin each epoch was first led with (its leader's headers).
    epoch_origin: BTreeMap<u64, u64>,
    /// Invariant 8: by node, the operator said `rejoin` to this incarnation.
    rejoin_told: [bool; 2],

    // Invariants 9 and 10.
    /// By node: the commits it accepted as a backup, by frame, with their epoch, since it
    /// last started over (a start, a join); at most [`HELD_FRAMES_MAX`].
    held: [BTreeMap<u64, (u64, Commit)>; 2],
    /// By node: what it held when it last became primary, while it stays primary.
    takeovers: [Option<Takeover>; 2],
    /// By node: the current event's record.
    events: [EventRecord; 2],

    // Invariant 18.
    /// By node: what its ring holds of the I/O source's frames, and the skips it was sent.
    rings: [skips::RingModel; 2],
    // Invariant 20.
    /// By node: its incarnation's last probe and the answers to it.
    probes: [probe::ProbeModel; 2],
    // Invariant 19.
    /// By node: the highest epoch in the header of a datagram a node sent that reached
    /// its current incarnation, readable under the pair's key (refused or not, through the
    /// links or replayed by the attacker; 0: none).
    stepdown_heard: [u64; 2],
    // Invariant 11.
    /// When the faults healed: joins are judged from then on.
    heal_at: Option<Nanos>,
    join_bound_ns: Nanos,
    /// By node: since when it joins, and the epoch it joins.
    joining: [Option<(Nanos, u64)>; 2],
    /// Joins judged (ended in sync after healing).
    pub joins_watched: u64,
    /// The longest of them, from healing or its start.
    pub join_ns_max: Nanos,
    /// The largest share of its bound a judged join took, in thousandths.
    pub join_bound_share_max: u64,

    // Invariant 12.
    diverge: Option<divergence::DivergeWatch>,
    /// `(backup, epoch, from, to)`: steps invariant 4 does not compare (an injected
    /// divergence until its alarm).
    diverge_exempt: Vec<(usize, u64, u64, u64)>,
    /// Injections that fired in a calm pair and were watched.
    pub divergences_injected: u64,
    /// Of which the backup alarmed.
    pub divergences_caught: u64,
    /// Of which never made the pair diverge (a corrupted input copy refused).
    pub divergences_absorbed: u64,
    /// Alarmed ones after which the backup was in sync again.
    pub divergences_recovered: u64,

    // The output path (issue 22; `output_path.rs`).
    /// The path to the sink is not perfect: the sink's side is judged on arrival.
    path_faulty: bool,
    /// The nodes refresh levels: a level's copy in its own epoch is not a second emission.
    level_refresh: bool,
    /// The level refresh's healing bound (`None`: refresh off, or a perfect path).
    level_bound_ns: Option<Nanos>,
    /// When the pair converged after the path healed.
    path_healed_at: Option<Nanos>,
    /// By identity: what became of its copies on the path.
    path_copies: BTreeMap<(u64, u8), output_path::PathCopies>,
    /// By level key: the newest level a primary emitted that the sink does not hold yet.
    level_waits: BTreeMap<u16, output_path::LevelWait>,
    /// Copies the path lost.
    pub path_lost: u64,
    /// Copies the path brought after a higher epoch passed the fence.
    pub path_overtaken: u64,
    /// The longest a judged level waited for the sink after healing, ns.
    pub level_heal_ns_max: Nanos,
}

impl Checker {
    /// A checker with nothing seen.
    pub fn new() -> Self {
        Checker::default()
    }

    /// Records a violation.
    pub fn violation(&mut self, invariant: Invariant, at: Nanos, detail: String) {
        self.violation_count += 1;
        if self.violations.len() < VIOLATIONS_KEPT {
            self.violations.push(Violation { invariant, at, detail });
        }
    }

    /// The violations kept (the first [`VIOLATIONS_KEPT`]).
    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }

    /// Every violation seen, kept or not.
    pub fn violation_count(&self) -> u64 {
        self.violation_count
    }

    /// Node `node` (re)started as incarnation `incarnation`.
    pub fn on_start(&mut self, node: usize, incarnation: u32) {
        self.incarnation[node] = incarnation;
        self.forget_probe(node);
        // What the incarnation before knew (heard or led): a restart must start above it,
        // from its disk (invariant 3's orphaned losses).
        self.known_before[node] = self.known_before[node]
            .max(self.heard[node].0)
            .max(self.epoch_led_max[node]);
        self.heard[node] = (0, 0);
        self.heard_unverified[node] = 0;
        self.stepdown_heard[node] = 0;
        self.released_heard[node] = (0, 0);
        self.following[node] = None;
        self.running[node] = true;
        self.holds_state[node] = None;
        self.knew_state[node] = false;
        self.cold_start_of[node] = None;
        self.origin_held[node] = None;
        self.origin_sent[node] = 0;
        self.origin_ran[node] = false;
        self.rejoin_told[node] = false;
        self.held[node].clear();
        self.takeovers[node] = None;
        self.joining[node] = None;
        self.forget_ring(node);
        // A fresh application: what the last incarnation produced is gone.
        self.produced.retain(|&(_, n, _), _| n != node);
    }

    /// Node `node` crashed at `at`.
    pub fn on_crash(&mut self, _at: Nanos, node: usize) {
        self.running[node] = false;
        self.forget_probe(node);
        self.released[node] = false;
        self.joining[node] = None;
        self.end_diverge_watch();
        self.end_tenure(node);
        self.following[node] = None;
        self.crashed.push((node, self.incarnation[node]));
        self.held[node].clear();
        self.takeovers[node] = None;
        self.forget_ring(node);
    }

    fn end_tenure(&mut self, node: usize) {
        self.primary_now[node] = None;
    }

    /// Node `node`, a primary, sent `SwitchRelease`: it stopped for a successor.
    pub fn on_release(&mut self, node: usize) {
        self.released[node] = true;
    }

    /// The sink's fence lapsed (its epoch lease ran out): from now on it may accept any
    /// epoch again, and the fencing checks start over.
    pub fn on_sink_lapse(&mut self) {
        self.sink_fence = 0;
    }

    /// A transition of node `node`.
    pub fn on_transition(&mut self, at: Nanos, node: usize, t: &Transition) {
        self.check_step_down(at, node, t);
        self.released[node] = false;
        self.check_probe(at, node, t);
        self.watch_switchovers(at, node, t);
        self.check_continuity(at, node, t);
        self.track_takeover(node, t);
        self.watch_joins(at, node, t);
        self.watch_divergence(at, node, t);
        self.track_levels_burst(node, t);
        self.track_events_tenure(at, node, t.role == Role::Primary);
        if t.role != Role::Primary {
            self.end_tenure(node);
            if t.role == Role::Backup {
                self.following[node] = Some(t.epoch);
            }
            return;
        }
        if self.primary_now[node] == Some(t.epoch) {
            return;
        }
        // A new tenure.
        self.primary_now[node] = Some(t.epoch);
        self.check_new_leader(at, node, t);
        self.record_tenure(node, t);
        // A primary carries the history of the epoch it leads: when it leads on in a
        // higher one (`EpochRaised`), or leads again after a spell without a peer to
        // follow, its state descends from this epoch, not from the one it last followed
        // as a backup.
        self.following[node] = Some(t.epoch);
        self.check_no_takeover(at, node, t);
    }

    /// Node `node` emitted `output` at `at`; the sink answered `verdict`. Each invariant's
    /// check in turn, in the order they were always made (the first violations kept).
    pub fn on_emit(&mut self, at: Nanos, node: usize, output: &Output, verdict: Verdict) {
        if self.acked && verdict == Verdict::Stale {
            // Released after the sink followed a higher epoch (`acked.rs`, invariant 3).
            self.acked_stale.insert((output.frame, output.index));
        }
        self.check_emit_leader(at, node, output);
        self.check_sink_fence(at, output, verdict);
        self.check_sink_once(at, node, output, verdict);
        self.check_sink_duplicate(at, output, verdict);
        self.check_sink_levels(at, node, output, verdict);
        self.check_burst_collapsed(at, node, output);
        self.record_emission(at, output.epoch);
        let hash = self.check_emit_produced(at, node, output);
        self.check_emit_copies(at, node, output, hash);
        self.record_event_emitted(at, node, output);
        self.check_resend(at, node, output);
        self.end_pending_failovers(at, node, output.epoch);
    }

    /// Steps node `node` ran in one event, with the epoch each ran under.
    pub fn on_steps(&mut self, at: Nanos, node: usize, steps: &[(u64, Step)]) {
        self.record_steps(at, node, steps);
        self.keep_event_steps(node, steps);
        self.check_installed(at, node, steps);
        self.check_source_order(at, node, steps);
        for &(epoch, step) in steps {
            self.check_digest(at, node, epoch, &step);
        }
    }

    /// A commit node `node` put on the wire as primary of `epoch`.
    pub fn on_commit(&mut self, at: Nanos, node: usize, epoch: u64, commit: &Commit) {
        self.check_levels_delivered(at, node, epoch, commit);
        self.record_decision(at, epoch, commit);
        self.require_outputs(node, epoch, commit);
        self.check_replay(at, node, commit);
        self.check_skip(node, epoch, commit);
        self.check_sent_reported(at, node, epoch, commit);
    }

    /// Settles what needs the whole history: content differences and lost outputs.
    /// `accepted` is the sink's final set of identities.
    pub fn finish(&mut self, at: Nanos, accepted: &BTreeMap<(u64, u8), crate::dst::sink::Accepted>) {
        self.classify_mismatches();
        self.settle_required(at, accepted);
        self.finish_joins(at);
        self.finish_divergence(at);
    }

    /// Settles what a run that stopped before its end (stuck) can still be judged on:
    /// the content differences seen so far. Lost outputs, levels' final values, joins and
    /// resyncs under way need the run's end.
    pub fn finish_stuck(&mut self) {
        self.classify_mismatches();
    }
}
