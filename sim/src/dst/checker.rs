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
//!      partition, or a frozen primary — a planned handover does not count), or emitted
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
//!      primaries put on the wire; a difference without one is a violation.
//! 3. **Nothing lost.** Every output listed in a commit (`CommitKind::Ran { outputs }`)
//!    that a primary put on the wire is accepted by the sink by the end of the run,
//!    unless (counted apart):
//!    - *fenced*: when that primary committed the frame, a higher epoch had already
//!      passed the sink's fence — the sink no longer follows this primary, whose copies it rejects
//!      as stale by design. Counted as *deposed* when the other node was running as
//!      primary of a higher epoch (a split brain), and as *orphaned* when it was not (the
//!      sink follows an epoch whose primary crashed or stepped down, and the running
//!      primary never heard of it: the plant gets nothing until a higher epoch leads; the
//!      design has no way back from the sink to the nodes). An identity also committed by
//!      a primary the sink follows is required;
//!    - *crashed*: every node incarnation that ran the frame crashed (an over-approximation
//!      of "had it": any incarnation whose run frames span the frame counts as having it).
//! 4. **Digests agree.** After the same frame within the same epoch, every node has the
//!    same application state digest. A step's epoch is the node's epoch when it ran; a
//!    step in the same event as a transition belongs to the transition's epoch when it
//!    ran a frame above the transition's frame.
//! 5. **Liveness.** After the faults heal, exactly one primary (`Paired`) and one in-sync
//!    backup in the same epoch within a bound, and it stays so while outputs flow (checked
//!    by the runner with [`pair_converged`]).
//! 6. **Failover time.** A primary crash while its backup is in sync, the links whole and
//!    no other fault near ("clean") is followed by the new primary's first output within
//!    the bound the runner computes (see `runner::failover_bound_ns`). Every failover's
//!    time (crash → first output of the new primary) is recorded for the statistics. A
//!    freeze of the primary shorter than window + probe (minus a margin) on lossless links
//!    must not cause a takeover (false death).
//! 8. **Application-state continuity** (DESIGN.md, wave 2). The program's state is never
//!    replaced by a cold start while a node that holds it is alive: a node incarnation
//!    that has run no frame and installed no state, that knew the pair had state (it
//!    followed a primary in this incarnation), does not lead from the start-up role
//!    (`StartedFirst`, `WonTiebreak`) while the other node is running (frozen counts:
//!    a frozen primary comes back) and holds state (ran a frame or installed one in its
//!    incarnation). An operator's `force-primary` is the exception, and the simulator
//!    never says it.

use super::app::Step;
use super::clock::Nanos;
use super::sink::Verdict;
use std::collections::BTreeMap;
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
/// Frames back from a mismatch over which two histories' decisions are compared.
pub const DECISIONS_COMPARED_MAX: u64 = 4096;

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
        }
    }

    /// Safety (nothing bad happens) or liveness (something good happens in time).
    pub fn is_safety(self) -> bool {
        self.number() <= 4 || self == Invariant::StateContinuity
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
    /// was no longer running (see the module docs: not required by the rule, but the
    /// plant got nothing from a running primary; counted to be seen).
    pub lost_orphaned: u64,
    /// Committed outputs lost because every node that ran the frame crashed.
    pub lost_crashed: u64,
}

/// What an epoch's leader did, for the classification of content differences.
#[derive(Debug, Clone, Copy)]
struct Tenure {
    node: usize,
    incarnation: u32,
    /// The leader's last run frame when it became primary.
    start_frame: u64,
    /// The epoch the leader followed when it became primary: its state came from that
    /// epoch's history. `None` for a cold start (a fresh application).
    parent: Option<u64>,
    /// First and last output emitted, if any.
    emitting: Option<(Nanos, Nanos)>,
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
    /// A primary of a higher epoch was running on the other node.
    Deposed,
    /// No primary of a higher epoch was running: the sink follows one that is gone.
    Orphaned,
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

/// The checkers of one run.
#[derive(Debug, Default)]
pub struct Checker {
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

    // Invariant 3.
    required: BTreeMap<(u64, u8), Required>,
    ran_range: BTreeMap<(usize, u32), (u64, u64)>,
    crashed: Vec<(usize, u32)>,

    // Invariant 4.
    /// `(epoch, frame)` → (state digest, outputs hash, first node to record it).
    digests: BTreeMap<(u64, u64), (u64, u64, usize)>,
    /// `(frame, node, index)` → hash of the output the node's application produced.
    produced: BTreeMap<(u64, usize, u8), u64>,

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
    /// By node: the current incarnation followed a primary, so it knew the pair's state.
    knew_state: [bool; 2],
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
        self.following[node] = None;
        self.running[node] = true;
        self.holds_state[node] = None;
        self.knew_state[node] = false;
        // A fresh application: what the last incarnation produced is gone.
        self.produced.retain(|&(_, n, _), _| n != node);
    }

    /// Node `node` persisted `epoch` (it survives crashes). Persisted epochs strictly
    /// increase: a node that persisted an epoch again (or a lower one) could lead it twice.
    pub fn on_persist(&mut self, at: Nanos, node: usize, epoch: u64) {
        if epoch <= self.persisted[node] {
            self.violation(
                Invariant::OnePrimaryPerEpoch,
                at,
                format!(
                    "node {node} persisted epoch {epoch}, not above {} persisted before",
                    twinloop::EpochText(self.persisted[node]),
                    epoch = twinloop::EpochText(epoch)
                ),
            );
        }
        self.persisted[node] = self.persisted[node].max(epoch);
    }

    /// Node `node` reserved `epoch` (it survives crashes; the node may lead it without
    /// persisting it again). Reservations strictly increase, like persisted epochs.
    pub fn on_reserve(&mut self, at: Nanos, node: usize, epoch: u64) {
        if epoch <= self.reserved[node] {
            self.violation(
                Invariant::OnePrimaryPerEpoch,
                at,
                format!(
                    "node {node} reserved epoch {epoch}, not above {} reserved before",
                    twinloop::EpochText(self.reserved[node]),
                    epoch = twinloop::EpochText(epoch)
                ),
            );
        }
        self.reserved[node] = self.reserved[node].max(epoch);
    }

    /// The sink's fence lapsed (its epoch lease ran out): from now on it may accept any
    /// epoch again, and the fencing checks start over.
    pub fn on_sink_lapse(&mut self) {
        self.sink_fence = 0;
    }

    /// Node `node` crashed at `at`.
    pub fn on_crash(&mut self, _at: Nanos, node: usize) {
        self.running[node] = false;
        self.end_tenure(node);
        self.following[node] = None;
        self.crashed.push((node, self.incarnation[node]));
    }

    fn end_tenure(&mut self, node: usize) {
        self.primary_now[node] = None;
    }

    /// A transition of node `node`.
    pub fn on_transition(&mut self, at: Nanos, node: usize, t: &Transition) {
        self.watch_switchovers(at, node, t);
        self.check_continuity(at, node, t);
        let incarnation = self.incarnation[node];
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
        let id = node as u8 + 1;
        if Epoch(t.epoch).node_id() != id {
            self.violation(
                Invariant::OnePrimaryPerEpoch,
                at,
                format!(
                    "node {node} leads epoch {} whose low byte is not its id {id}",
                    twinloop::EpochText(t.epoch)
                ),
            );
        }
        if t.epoch <= self.epoch_led_max[node] {
            self.violation(
                Invariant::OnePrimaryPerEpoch,
                at,
                format!(
                    "node {node} leads epoch {}, not above {} which it led before",
                    twinloop::EpochText(t.epoch),
                    twinloop::EpochText(self.epoch_led_max[node])
                ),
            );
        }
        self.epoch_led_max[node] = self.epoch_led_max[node].max(t.epoch);
        match self.leaders.get(&t.epoch) {
            Some(&(n, i)) if (n, i) != (node, incarnation) => self.violation(
                Invariant::OnePrimaryPerEpoch,
                at,
                format!(
                    "epoch {} led by node {node} (incarnation {incarnation}) and node {n} (incarnation {i})",
                    twinloop::EpochText(t.epoch)
                ),
            ),
            _ => {
                self.leaders.insert(t.epoch, (node, incarnation));
            }
        }
        // Both primary at once: a split brain, unless this is a planned handover (the old
        // primary released and stopped; it follows as soon as it hears the new epoch).
        let other = 1 - node;
        let overlap = self.primary_now[other].filter(|&e| e != t.epoch && t.reason != Reason::SwitchoverCompleted);
        self.tenures.insert(
            t.epoch,
            Tenure {
                node,
                incarnation,
                start_frame: t.frame,
                parent: if matches!(t.reason, Reason::StartedFirst | Reason::WonTiebreak) {
                    None
                } else {
                    self.following[node]
                },
                emitting: None,
            },
        );
        if let Some(e) = overlap {
            self.split(e, t.epoch, t.frame);
        }
        let takeover = matches!(t.reason, Reason::TakeoverAfterProbe | Reason::TakeoverNoPrimary);
        let watch = self.no_takeover.iter().find(|w| {
            // A switchover the primary asked for is no usurpation.
            let led = w.restarted && t.reason != Reason::SwitchoverCompleted;
            w.backup == node && at >= w.from && at <= w.until && (takeover || led)
        });
        match watch {
            Some(w) if w.restarted => self.violation(
                Invariant::FalseDeath,
                at,
                format!(
                    "node {node} restarted next to a healthy primary it could hear, and led ({:?}) instead of joining it",
                    t.reason
                ),
            ),
            Some(_) => self.violation(
                Invariant::FalseDeath,
                at,
                format!(
                    "node {node} took over ({:?}) during a primary freeze shorter than window + probe",
                    t.reason
                ),
            ),
            None => {}
        }
    }

    /// An alarm of node `node`, whose epoch is `epoch`.
    pub fn on_input_lost(&mut self, epoch: u64, frame: u64) {
        self.input_lost.push((epoch, frame));
    }

    /// Node `node` emitted `output` at `at`; the sink answered `verdict`.
    pub fn on_emit(&mut self, at: Nanos, node: usize, output: &Output, verdict: Verdict) {
        let incarnation = self.incarnation[node];
        let epoch = output.epoch;
        let id = (output.frame, output.index);

        // 1: only the leader of an epoch emits under it, and only once it is persisted.
        if self.leaders.get(&epoch) != Some(&(node, incarnation)) || self.primary_now[node] != Some(epoch) {
            self.violation(
                Invariant::OnePrimaryPerEpoch,
                at,
                format!(
                    "node {node} emitted {id:?} under epoch {epoch}, which it does not lead",
                    epoch = twinloop::EpochText(epoch)
                ),
            );
        }
        let durable = self.persisted[node].max(self.reserved[node]);
        if durable < epoch {
            self.violation(
                Invariant::OnePrimaryPerEpoch,
                at,
                format!(
                    "node {node} emitted under epoch {epoch} before persisting it (persisted {durable})",
                    epoch = twinloop::EpochText(epoch),
                    durable = twinloop::EpochText(durable)
                ),
            );
        }

        // 1 and 2: the sink's verdict is the right one.
        let accepted_before = self.accepted.get(&id).copied();
        if verdict != Verdict::Stale && epoch < self.sink_fence {
            self.violation(
                Invariant::OnePrimaryPerEpoch,
                at,
                format!(
                    "sink let {id:?} under epoch {epoch} through its fence {} ({verdict:?})",
                    twinloop::EpochText(self.sink_fence),
                    epoch = twinloop::EpochText(epoch)
                ),
            );
        }
        match verdict {
            Verdict::Accepted => {
                if let Some(first) = accepted_before {
                    self.violation(
                        Invariant::ExactlyOnce,
                        at,
                        format!(
                            "sink accepted {id:?} twice (epochs {first} and {epoch})",
                            first = twinloop::EpochText(first),
                            epoch = twinloop::EpochText(epoch)
                        ),
                    );
                }
                self.accepted.insert(id, epoch);
            }
            Verdict::Duplicate | Verdict::Conflict => {
                if accepted_before.is_none() {
                    self.violation(
                        Invariant::NothingLost,
                        at,
                        format!("sink dropped {id:?} as a duplicate but never accepted it"),
                    );
                }
            }
            Verdict::Stale => {
                if epoch >= self.sink_fence {
                    self.violation(
                        Invariant::NothingLost,
                        at,
                        format!(
                            "sink rejected {id:?} under epoch {epoch} as stale; its fence was {}",
                            twinloop::EpochText(self.sink_fence),
                            epoch = twinloop::EpochText(epoch)
                        ),
                    );
                }
            }
            // A copy below the window, or (never accepted) a loss that invariant 3 weighs.
            Verdict::TooOld => {}
            Verdict::Invalid => self.violation(
                Invariant::ExactlyOnce,
                at,
                format!("node {node} emitted {id:?}, an id no node sends"),
            ),
        }
        if !matches!(verdict, Verdict::Stale | Verdict::Invalid) {
            // Any output that passed the fence raises it, a copy included.
            self.sink_fence = self.sink_fence.max(epoch);
        }

        // Emission intervals, for split brains.
        if let Some(tenure) = self.tenures.get_mut(&epoch) {
            tenure.emitting = Some(match tenure.emitting {
                None => (at, at),
                Some((first, _)) => (first, at),
            });
        }
        self.note_overlaps(epoch);

        // 2: a node emits what its application produced, unchanged.
        let hash = fnv64(&output.payload);
        match self.produced.get(&(id.0, node, id.1)) {
            Some(&produced) if produced == hash => {}
            Some(_) => self.violation(
                Invariant::ExactlyOnce,
                at,
                format!("node {node} emitted {id:?} with content its application did not produce"),
            ),
            None => self.violation(
                Invariant::ExactlyOnce,
                at,
                format!("node {node} emitted {id:?}, which its application never produced"),
            ),
        }

        // 2: one copy per epoch, one content per identity (differences settled later).
        let mut mismatch_with = Vec::new();
        let mut twice = false;
        match self.copies.get_mut(&id) {
            None => {
                self.copies.insert(
                    id,
                    Copies {
                        first: (epoch, hash),
                        more: Vec::new(),
                    },
                );
            }
            Some(copies) => {
                for &(e, h) in core::iter::once(&copies.first).chain(copies.more.iter()) {
                    if e == epoch {
                        twice = true;
                    }
                    if h != hash {
                        mismatch_with.push(e);
                    }
                }
                if !twice {
                    copies.more.push((epoch, hash));
                }
            }
        }
        if twice {
            self.violation(
                Invariant::ExactlyOnce,
                at,
                format!(
                    "node {node} emitted {id:?} twice under epoch {epoch}",
                    epoch = twinloop::EpochText(epoch)
                ),
            );
        }
        for other in mismatch_with {
            let epochs = (other.min(epoch), other.max(epoch));
            if self.mismatches.len() < MISMATCHES_MAX {
                self.mismatches.push(Mismatch {
                    frame: id.0,
                    index: id.1,
                    epochs,
                    at,
                });
            } else {
                self.violation(
                    Invariant::ExactlyOnce,
                    at,
                    format!(
                        "{id:?} has two contents (epochs {}, {}); too many to classify",
                        twinloop::EpochText(epochs.0),
                        twinloop::EpochText(epochs.1)
                    ),
                );
            }
        }

        // 6: the first output of a new primary ends a pending failover.
        let mut done = Vec::new();
        for (k, p) in self.pending.iter().enumerate() {
            if node != p.crashed_node && epoch > p.epoch {
                done.push(k);
            }
        }
        for k in done.into_iter().rev() {
            let p = self.pending.remove(k);
            let took_ns = at - p.at;
            self.failover_ns.push(took_ns);
            if let Some(bound_ns) = p.bound_ns {
                self.failovers_checked += 1;
                if took_ns > bound_ns {
                    self.violation(
                        Invariant::FailoverTime,
                        at,
                        format!(
                            "failover took {:.3} ms, bound {:.3} ms (primary node {} crashed at {:.3} ms)",
                            took_ns as f64 / 1e6,
                            bound_ns as f64 / 1e6,
                            p.crashed_node,
                            p.at as f64 / 1e6
                        ),
                    );
                }
            }
        }
    }

    /// Marks epochs whose emission intervals overlap `epoch`'s.
    fn note_overlaps(&mut self, epoch: u64) {
        let Some(mine) = self.tenures.get(&epoch).copied() else {
            return;
        };
        let Some((first, last)) = mine.emitting else {
            return;
        };
        let mut splits = Vec::new();
        for (&e, t) in &self.tenures {
            if e == epoch {
                continue;
            }
            if let Some((f, l)) = t.emitting {
                if f <= last && first <= l {
                    // The later-starting of the two is where histories may part.
                    let from = if e > epoch { t.start_frame } else { mine.start_frame };
                    splits.push((e, from));
                }
            }
        }
        for (e, from) in splits {
            self.split(e, epoch, from);
        }
    }

    /// Epochs `a` and `b` were primary at once: from frame `from` on, their histories
    /// (and outputs) may differ.
    fn split(&mut self, a: u64, b: u64, from: u64) {
        let key = (a.min(b), a.max(b));
        let entry = self.split_pairs.entry(key).or_insert(from);
        *entry = (*entry).min(from);
    }

    /// A commit node `node` put on the wire as primary of `epoch`.
    pub fn on_commit(&mut self, node: usize, epoch: u64, commit: &Commit) {
        let decision = match commit.kind {
            CommitKind::Ran { input_digest, .. } => Decision::Ran(input_digest),
            CommitKind::Skipped { last } => Decision::Skipped(last.max(commit.frame)),
        };
        self.decisions.insert((epoch, commit.frame), decision);
        let CommitKind::Ran { outputs, .. } = commit.kind else {
            return;
        };
        // The sink follows a higher epoch than this primary's: its copies are rejected by
        // design. Deposed when a primary of a higher epoch runs on the other node (a split
        // brain); orphaned when none does (the sink follows a primary that is gone).
        let newer_primary_running = self
            .primary_now
            .iter()
            .enumerate()
            .any(|(n, e)| n != node && e.is_some_and(|e| e > epoch));
        let fenced = (epoch < self.sink_fence).then_some(if newer_primary_running {
            Fenced::Deposed
        } else {
            Fenced::Orphaned
        });
        for index in 0..outputs {
            let required = Required { epoch, node, fenced };
            match self.required.get_mut(&(commit.frame, index)) {
                Some(r) if r.fenced.is_some() && fenced.is_none() => *r = required,
                Some(_) => {}
                None => {
                    self.required.insert((commit.frame, index), required);
                }
            }
        }
    }

    /// Invariant 8, at every transition of `node`.
    fn check_continuity(&mut self, at: Nanos, node: usize, t: &Transition) {
        match (t.role, t.reason) {
            (Role::Backup, reason) => {
                self.knew_state[node] = true;
                if reason == Reason::InSync && self.holds_state[node].is_none() {
                    self.holds_state[node] = Some(at);
                }
            }
            (Role::Primary, Reason::StartedFirst | Reason::WonTiebreak) => {
                let other = 1 - node;
                // Steps of the same event are recorded before its transitions: a state
                // held since this instant is the cold start's own.
                if self.holds_state[node].is_none_or(|since| since >= at)
                    && self.knew_state[node]
                    && self.running[other]
                    && self.holds_state[other].is_some()
                {
                    self.violation(
                        Invariant::StateContinuity,
                        at,
                        format!(
                            "node {node} led epoch {} from a cold start ({:?}) while node {other}, running, held the pair's state",
                            twinloop::EpochText(t.epoch), t.reason
                        ),
                    );
                }
            }
            _ => {}
        }
    }

    /// Steps node `node` ran in one event, with the epoch each ran under.
    pub fn on_steps(&mut self, at: Nanos, node: usize, steps: &[(u64, Step)]) {
        if !steps.is_empty() && self.holds_state[node].is_none() {
            self.holds_state[node] = Some(at);
        }
        let incarnation = self.incarnation[node];
        for &(epoch, step) in steps {
            // What the application produced, for the emits to come (a step run again,
            // after a resync, replaces the older one).
            for (index, &hash) in step.output_hashes().iter().enumerate() {
                self.produced.insert((step.frame, node, index as u8), hash);
            }
            if self.produced.len() > PRODUCED_MAX {
                for _ in 0..PRODUCED_MAX / 2 {
                    self.produced.pop_first();
                }
            }
            let outputs_hash = step
                .output_hashes()
                .iter()
                .fold(fnv64(&[step.outputs]), |h, &o| h.rotate_left(5) ^ o);
            let range = self
                .ran_range
                .entry((node, incarnation))
                .or_insert((step.frame, step.frame));
            range.0 = range.0.min(step.frame);
            range.1 = range.1.max(step.frame);
            match self.digests.get(&(epoch, step.frame)) {
                Some(&(digest, _, other)) if digest != step.digest => self.violation(
                    Invariant::DigestAgreement,
                    at,
                    format!(
                        "epoch {epoch:#x} frame {}: node {other} digest {digest:#018x}, node {node} digest {:#018x}",
                        step.frame, step.digest
                    ),
                ),
                Some(&(_, outputs, other)) if outputs != outputs_hash => self.violation(
                    Invariant::DigestAgreement,
                    at,
                    format!(
                        "epoch {epoch} frame {}: nodes {other} and {node} produced different outputs",
                        step.frame,
                        epoch = twinloop::EpochText(epoch)
                    ),
                ),
                Some(_) => {}
                None => {
                    self.digests
                        .insert((epoch, step.frame), (step.digest, outputs_hash, node));
                }
            }
        }
    }

    /// The primary `node` of `epoch` crashed at `at`; `bound_ns` is set when the crash
    /// was clean (its failover time is checked); `measured` when its backup was in sync
    /// (the failover's time goes into the statistics).
    pub fn on_primary_crash(&mut self, at: Nanos, node: usize, epoch: u64, bound_ns: Option<Nanos>) {
        self.pending.retain(|p| p.crashed_node != node);
        self.pending.push(PendingFailover {
            crashed_node: node,
            epoch,
            at,
            bound_ns,
        });
    }

    /// A clean failover that has not produced an output by `now` is late.
    pub fn check_failover_deadlines(&mut self, now: Nanos) {
        let mut late = Vec::new();
        self.pending.retain(|p| match p.bound_ns {
            Some(bound_ns) if now > p.at + bound_ns => {
                late.push(*p);
                false
            }
            _ => true,
        });
        for p in late {
            self.violation(
                Invariant::FailoverTime,
                now,
                format!(
                    "primary node {} crashed at {:.3} ms: no output from a new primary within {:.3} ms",
                    p.crashed_node,
                    p.at as f64 / 1e6,
                    p.bound_ns.unwrap_or(0) as f64 / 1e6
                ),
            );
        }
    }

    /// Forgets pending failovers (a new phase begins: what is not done will not be).
    pub fn drop_pending_failovers(&mut self) {
        self.pending.retain(|p| p.bound_ns.is_some());
    }

    /// No takeover by `backup` may happen within `[from, until]`.
    pub fn expect_no_takeover(&mut self, backup: usize, from: Nanos, until: Nanos) {
        self.false_deaths_watched += 1;
        self.no_takeover.push(NoTakeover {
            backup,
            from,
            until,
            restarted: false,
        });
    }

    /// A switchover asked for now, in a calm state: it must complete (a new primary by
    /// `SwitchoverCompleted`) by `until`, with no abort, fencing or takeover meanwhile.
    pub fn expect_clean_switchover(&mut self, from: Nanos, until: Nanos) {
        self.switchovers_watched += 1;
        self.calm_switchovers.push(CalmSwitchover {
            from,
            until,
            completed: false,
            cut_short: false,
        });
    }

    fn watch_switchovers(&mut self, at: Nanos, node: usize, t: &Transition) {
        let spoils = matches!(
            t.reason,
            Reason::SwitchoverAborted | Reason::FencedByEpoch | Reason::TakeoverAfterProbe | Reason::TakeoverNoPrimary
        );
        let mut spoiled = false;
        for w in self
            .calm_switchovers
            .iter_mut()
            .filter(|w| at >= w.from && at <= w.until)
        {
            w.completed |= t.reason == Reason::SwitchoverCompleted;
            spoiled |= spoils;
        }
        if spoiled {
            self.violation(
                Invariant::Switchover,
                at,
                format!(
                    "node {node}: {:?} during a planned switchover asked for in a calm state",
                    t.reason
                ),
            );
        }
    }

    /// Another fault begins: what a watched switchover does from now on is not its own.
    pub fn end_switchover_watches(&mut self, now: Nanos) {
        for w in &mut self.calm_switchovers {
            w.cut_short |= !w.completed;
            w.until = w.until.min(now);
        }
    }

    /// Every calm switchover watched until before `now` must have completed.
    pub fn check_switchovers(&mut self, now: Nanos) {
        let (due, pending): (Vec<_>, Vec<_>) = self.calm_switchovers.iter().partition(|w| w.until < now);
        self.calm_switchovers = pending;
        for w in due.into_iter().filter(|w| !w.completed && !w.cut_short) {
            self.violation(
                Invariant::Switchover,
                w.until,
                format!(
                    "a planned switchover asked for at {:.3} ms in a calm state did not complete",
                    w.from as f64 / 1e6
                ),
            );
        }
    }

    /// `node` restarts next to a healthy primary: it may not lead within `[from, until]`.
    pub fn expect_no_lead(&mut self, node: usize, from: Nanos, until: Nanos) {
        self.restarts_watched += 1;
        self.no_takeover.push(NoTakeover {
            backup: node,
            from,
            until,
            restarted: true,
        });
    }

    /// Settles what needs the whole history: content differences and lost outputs.
    /// `accepted` is the sink's final set of identities.
    pub fn finish(&mut self, at: Nanos, accepted: &BTreeMap<(u64, u8), super::sink::Accepted>) {
        // 2: classify every content difference.
        let mismatches = core::mem::take(&mut self.mismatches);
        let mut counted: BTreeMap<(u64, u8), ()> = BTreeMap::new();
        for m in mismatches {
            let explained = self.explain(m.epochs, m.frame);
            match explained {
                Some(kind) => {
                    if counted.insert((m.frame, m.index), ()).is_none() {
                        match kind {
                            Explanation::InputLost => self.exceptions.input_lost += 1,
                            Explanation::SplitBrain => self.exceptions.split_brain += 1,
                            Explanation::ColdStart => self.exceptions.cold_start += 1,
                            Explanation::CrashWindow => self.exceptions.crash_window += 1,
                        }
                    }
                }
                None => self.violation(
                    Invariant::ExactlyOnce,
                    m.at,
                    format!(
                        "output ({}, {}) has two contents: epochs {} and {}, no input lost, split brain or cold start between",
                        m.frame, m.index, twinloop::EpochText(m.epochs.0), twinloop::EpochText(m.epochs.1)
                    ),
                ),
            }
        }

        // 3: every required output reached the sink, or is excused.
        let required = core::mem::take(&mut self.required);
        for (&(frame, index), r) in &required {
            if accepted.contains_key(&(frame, index)) {
                continue;
            }
            match r.fenced {
                Some(Fenced::Deposed) => {
                    self.exceptions.lost_deposed += 1;
                    continue;
                }
                Some(Fenced::Orphaned) => {
                    self.exceptions.lost_orphaned += 1;
                    continue;
                }
                None => {}
            }
            let had: Vec<(usize, u32)> = self
                .ran_range
                .iter()
                .filter(|(_, &(low, high))| low <= frame && frame <= high)
                .map(|(&who, _)| who)
                .collect();
            if !had.is_empty() && had.iter().all(|who| self.crashed.contains(who)) {
                self.exceptions.lost_crashed += 1;
                continue;
            }
            self.violation(
                Invariant::NothingLost,
                at,
                format!(
                    "output ({frame}, {index}) committed by node {} in epoch {} never reached the sink",
                    r.node,
                    twinloop::EpochText(r.epoch)
                ),
            );
        }
        self.required = required;
    }

    /// The epochs whose history `epoch` carries: itself, the epoch its leader followed
    /// when it became primary, that one's, and so on back to a cold start.
    fn lineage(&self, epoch: u64) -> Vec<u64> {
        let mut out = vec![epoch];
        let mut at = epoch;
        // Bounded: each step goes to an epoch that began earlier.
        while out.len() <= self.tenures.len() {
            match self.tenures.get(&at).and_then(|t| t.parent) {
                Some(parent) if !out.contains(&parent) => {
                    out.push(parent);
                    at = parent;
                }
                _ => break,
            }
        }
        out
    }

    /// Why copies of frame `frame`'s output from epochs `a` and `b` may differ. The two
    /// histories share everything up to their nearest common ancestor epoch; what happened
    /// after it, on either side, may part them.
    fn explain(&self, (a, b): (u64, u64), frame: u64) -> Option<Explanation> {
        let (la, lb) = (self.lineage(a), self.lineage(b));
        let Some(common) = la.iter().position(|e| lb.contains(e)) else {
            // No common ancestor: they began from different cold starts.
            return Some(Explanation::ColdStart);
        };
        let common_epoch = la[common];
        let side_a = &la[..common];
        let side_b = &lb[..lb.iter().position(|&e| e == common_epoch).unwrap_or(lb.len())];
        let after_common = |e: &u64| side_a.contains(e) || side_b.contains(e);
        if self.input_lost.iter().any(|(e, f)| after_common(e) && *f < frame) {
            return Some(Explanation::InputLost);
        }
        let split = self.split_pairs.iter().any(|(&(x, y), &from)| {
            from < frame && ((la.contains(&x) && lb.contains(&y)) || (la.contains(&y) && lb.contains(&x)))
        });
        if split {
            return Some(Explanation::SplitBrain);
        }
        if self.decided_differently(&la[..=common], &lb, side_a, side_b, frame) {
            return Some(Explanation::CrashWindow);
        }
        None
    }

    /// What the primary of `epoch` committed for `frame`, if it committed anything.
    fn decision(&self, epoch: u64, frame: u64) -> Option<Decision> {
        if let Some(&d) = self.decisions.get(&(epoch, frame)) {
            return Some(match d {
                Decision::Skipped(_) => Decision::Skipped(0),
                ran => ran,
            });
        }
        // A skipped range committed at its first frame covers the frames after it.
        match self.decisions.range((epoch, 0)..(epoch, frame)).next_back() {
            Some((_, Decision::Skipped(last))) if *last >= frame => Some(Decision::Skipped(0)),
            _ => None,
        }
    }

    /// What a history (a lineage, newest epoch first) decided for `frame`: the newest
    /// decision along it.
    fn decision_along(&self, lineage: &[u64], frame: u64) -> Option<Decision> {
        lineage.iter().find_map(|&e| self.decision(e, frame))
    }

    /// True when the two histories committed, for some frame up to `frame` above the one
    /// the first epoch after their common ancestor started from, different things: one
    /// ran a frame the other skipped, or ran it on another input.
    fn decided_differently(&self, la: &[u64], lb: &[u64], side_a: &[u64], side_b: &[u64], frame: u64) -> bool {
        let starts = side_a
            .iter()
            .chain(side_b)
            .filter_map(|e| self.tenures.get(e).map(|t| t.start_frame));
        let Some(from) = starts.min() else {
            return false;
        };
        let first = (from + 1).max(frame.saturating_sub(DECISIONS_COMPARED_MAX));
        (first..=frame).any(|f| match (self.decision_along(la, f), self.decision_along(lb, f)) {
            (Some(x), Some(y)) => x != y,
            _ => false,
        })
    }

    /// The node incarnation that leads `epoch`, if any.
    pub fn leader(&self, epoch: u64) -> Option<(usize, u32)> {
        self.tenures.get(&epoch).map(|t| (t.node, t.incarnation))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Explanation {
    InputLost,
    SplitBrain,
    ColdStart,
    CrashWindow,
}

/// What a primary committed for a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    /// Ran it on the input with this digest.
    Ran(u64),
    /// Skipped it (stored with the range's last frame; compared without it).
    Skipped(u64),
}

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

/// Splits one event's steps by epoch: a step belongs to the epoch of the last transition
/// of the same event whose frame is below the step's frame, or to `epoch_before`.
pub fn attribute_steps(epoch_before: u64, transitions: &[Transition], steps: &[Step], out: &mut Vec<(u64, Step)>) {
    for &step in steps {
        let epoch = transitions
            .iter()
            .rev()
            .find(|t| t.frame < step.frame)
            .map_or(epoch_before, |t| t.epoch);
        out.push((epoch, step));
    }
}

#[cfg(test)]
mod tests {
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
            self.checker.on_commit(node, epoch, &commit(frame, 1));
        }

        /// Commits `first..=last` as skipped by the primary `node` of `epoch`.
        fn skip(&mut self, node: usize, epoch: u64, first: u64, last: u64) {
            let c = Commit {
                frame: first,
                kind: CommitKind::Skipped { last },
                state_digest: None,
            };
            self.checker.on_commit(node, epoch, &c);
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
    fn checker_switchover_is_not_a_split_brain() {
        let mut h = History::new();
        h.lead(0, E1, 0, Reason::StartedFirst);
        h.run(0, E1, 1, 1);
        h.run(0, E1, 2, 2);
        // Handover at frame 2: node 1 leads while node 0 has not transitioned yet.
        h.follow(1, E1);
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
        h.checker.on_commit(0, E1, &commit(2, 2));
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
        h.checker.on_commit(0, E1, &commit(2, 1));
        h.checker.on_crash(h.now, 0);
        h.follow(1, E1);
        h.lead(1, E2, 1, Reason::TakeoverAfterProbe);
        // The new primary replays frame 2 and trusts the mask: emits nothing.
        h.checker.on_commit(1, E2, &commit(2, 1));
        h.checker.on_steps(h.now, 1, &[(E2, Step::new(2, 1, &[0]))]);
        let c = h.finish();
        assert_eq!(broken(&c), vec![Invariant::NothingLost]);
    }

    #[test]
    fn checker_lost_when_every_holder_crashed_is_an_exception() {
        let mut h = History::new();
        h.lead(0, E1, 0, Reason::StartedFirst);
        h.checker.on_commit(0, E1, &commit(2, 1));
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
}
