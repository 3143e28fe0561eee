//! Fault plans: what goes wrong, when, for how long.
//!
//! A plan is drawn from the seed before the run starts, from the fault kinds the seed
//! enabled (see [`super::options::FaultMix`]). Targets are roles, not node indices ("crash
//! the primary"), resolved when the fault fires, so a plan stays meaningful whatever the
//! election decided. Knowing the whole plan in advance also lets the failover checker ask
//! whether a crash was "clean" (no other fault during the failover).

use super::clock::{Nanos, NANOS_PER_MS};
use super::options::Options;
use twinloop::Rng;

/// Faults one plan holds at most (the safety phase is bounded, so is this).
pub const FAULTS_MAX: usize = 64;

/// Which node a fault hits, resolved when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The node that is primary now (or any running node when none is).
    Primary,
    /// The node that is not the primary.
    Backup,
    /// A fixed node.
    Node(usize),
}

/// How long a freeze lasts relative to the failure detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreezeKind {
    /// Shorter than the detection window: nobody should even probe.
    Short,
    /// Longer than the window, shorter than window + probe by a margin for the last
    /// message's age, link delay and drift: the probe is answered, no takeover (when
    /// the links lose nothing meanwhile).
    FalseDeath,
    /// Longer than window + probe: a backup with state takes over.
    Long,
    /// A few cycles at a peer's restart, well inside its start-up wait: a shell busy
    /// with a batch of datagrams. The restarted node must still hear the primary and
    /// join it (the restart watch does not count it as a fault).
    Stall,
    /// Long, and armed rather than fired: the primary freezes the moment a node joins it
    /// (heard it, has no state yet). Its joiner must not lead from a cold start while it
    /// is only frozen (invariant 8).
    DuringJoin,
}

/// What a divergence fault perturbs on its node (invariant 12).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DivergeKind {
    /// The application's outputs of the next frame it runs (non-determinism).
    Output,
    /// The application's state after the next frame it runs (non-determinism).
    State,
    /// The node's local copy of the next frame's payload (one byte flipped after the
    /// I/O datagram's checksum passed: memory, not the wire).
    FrameCopy,
}

/// One fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Kill a node; restart it after `restart_after_ns` when set (a late join).
    Crash {
        /// Who.
        target: Target,
        /// Down time before the restart, if the seed restarts nodes.
        restart_after_ns: Option<Nanos>,
    },
    /// Stop a node (SIGSTOP): it processes nothing; its socket buffers what arrives.
    Freeze {
        /// Who.
        target: Target,
        /// Short, false death or long.
        kind: FreezeKind,
        /// For how long.
        duration_ns: Nanos,
    },
    /// Cut every link: in both directions (`from: None`) or only from node `from`.
    Partition {
        /// `None`: symmetric; `Some(i)`: only datagrams from node `i` are lost.
        from: Option<usize>,
        /// For how long.
        duration_ns: Nanos,
    },
    /// Cut one link in both directions while the others live.
    LinkCut {
        /// Which link.
        link: usize,
        /// For how long.
        duration_ns: Nanos,
    },
    /// Heavy loss on some links.
    LossBurst {
        /// Bit per link.
        link_mask: u32,
        /// Loss per million.
        loss_ppm: u32,
        /// For how long.
        duration_ns: Nanos,
    },
    /// A node's I/O input loses frames.
    IoLoss {
        /// Whose input.
        node: usize,
        /// Loss per million.
        loss_ppm: u32,
        /// For how long.
        duration_ns: Nanos,
    },
    /// An operator asks this node for a planned switchover.
    Switchover {
        /// The primary, or the backup (which forwards it).
        target: Target,
    },
    /// One node diverges for one frame; fired only from a calm pair (see
    /// `runner/inject.rs`), skipped otherwise.
    Diverge {
        /// The primary or the backup.
        target: Target,
        /// What diverges.
        kind: DivergeKind,
    },
    /// A node's I/O input loses its next `frames` frames, two or more in a row (issue 21).
    /// Drawn with a crash of the primary, at the same instant: the backup takes over with
    /// a gap no commit decided and the frames after it in hand.
    IoGap {
        /// Whose input (the backup: resolved after the crash, the node left).
        target: Target,
        /// How many frames in a row.
        frames: u64,
    },
    /// One commit lost, then the primary's crash (issue 21): from the primary's next
    /// commit on, every datagram carrying that frame's commit (the commit, its re-sends,
    /// the answers to the backup's fetches) is lost on every link for `duration_ns`, all
    /// else delivered, and the primary crashes as it ends. The backup holds the commits
    /// after the hole and cannot run them; until it takes over, its own input runs on,
    /// a ring and more ahead where the ring is shorter than the window and the probe: it
    /// must refuse the frames that would take the slots of the commits it holds (skipped
    /// after its takeover), not let them evict those commits (DST seed 18879's shape,
    /// 2026-11-26, drawn on purpose since 2026-11-27).
    CommitHole {
        /// For how long.
        duration_ns: Nanos,
    },
    /// A node's input stalls (a switch port that buffers, issue 21): every frame the
    /// source sends it within `duration_ns` arrives at the stall's end, after its usual
    /// delay. Drawn a few cycles before a crash of the primary, with a loss burst on every
    /// link over those cycles: the backup takes over holding commits of frames its input
    /// has not brought yet, some of the commits before them lost, and its takeover's burst
    /// pauses until the stalled frames come.
    IoStall {
        /// Whose input (the backup of the moment).
        target: Target,
        /// For how long.
        duration_ns: Nanos,
    },
    /// Armed at a crash with a restart, at its instant: when the crashed node restarts,
    /// every datagram it sends is lost for `duration_ns`, while its peer's reach it (an
    /// asymmetric partition from the restarted node; issue 21). A restarted node whose
    /// reservation is above its primary's epoch then hears that primary only as stale,
    /// and the primary never hears the epoch it must lead above.
    RestartCut {
        /// How long the cut lasts from the restart.
        duration_ns: Nanos,
    },
    /// Every datagram carrying `SwitchRelease` is lost on every link for `duration_ns`,
    /// every other datagram delivered as usual (issue 21). Drawn at an operator's
    /// switchover, for longer than its timeout: the primary releases its frames, its
    /// backup agrees and stays alive but never hears the release, and at the deadline the
    /// primary must give the switchover up and run on (`SwitchoverAborted`), not step
    /// down below nobody (invariant 19).
    ReleaseLoss {
        /// For how long.
        duration_ns: Nanos,
    },
    /// Both nodes' inputs die (every frame lost) within the input hand-over hold of the
    /// primary of the moment, and stay dead until `extra_ns` after the hold's end
    /// (issue 21). The primary raises its input alarm within the hold and cannot hand over
    /// at its end (the backup's input is dead too): it must not ask to be woken at that
    /// instant again and again (the runner's timer bound). Its length is settled when it
    /// fires, from the primary's tenure; skipped when there is no primary, when the hold
    /// is too far gone for the alarm to come within it, or when it would end after the
    /// safety phase.
    InputsDeadInHold {
        /// How long after the hold's end (true time) the inputs stay dead.
        extra_ns: Nanos,
    },
    /// The I/O source restarts (issue 21): it sends nothing for `silence_ns`, then
    /// numbers from `first_number` again in a new source session (a rebooted gateway). The
    /// pair must map the new session to frames after every frame in hand, the backup
    /// follow the primary's map, and no late frame of the session left run as a new one
    /// (invariants 22 and 23). A pair fault: active until `active_ns` after it fires.
    SourceRestart {
        /// How long the source sends nothing.
        silence_ns: Nanos,
        /// The number of the new session's first frame.
        first_number: u64,
        /// How long the fault counts as active (no failover, switchover or restart watch
        /// judges through it): the silence, the pair's `input_silence_ms` (the primary
        /// follows a new session only once the old one has been silent that long), the
        /// I/O delay and a few cycles.
        active_ns: Nanos,
    },
    /// The primary of the moment loses every frame of its input until the end of the
    /// safety phase (the quiet tail's one fault, issue 21): an `IoLoss` of 1,000,000 ppm
    /// on it, which invariant 24 watches for a handover when the pair is calm.
    PrimaryInputDies {
        /// For how long.
        duration_ns: Nanos,
    },
    /// The output path to the sink is cut (a switch reboot, a cable swapped), and with
    /// `acks` the sink's path back too; it heals after `duration_ns` (issue 22).
    OutputOutage {
        /// The path back (acknowledgements) is cut as well.
        acks: bool,
        /// For how long.
        duration_ns: Nanos,
    },
}

impl Fault {
    /// How long the fault lasts (0 for instantaneous ones).
    pub fn duration_ns(&self) -> Nanos {
        match *self {
            Fault::Freeze { duration_ns, .. }
            | Fault::Partition { duration_ns, .. }
            | Fault::LinkCut { duration_ns, .. }
            | Fault::LossBurst { duration_ns, .. }
            | Fault::IoLoss { duration_ns, .. }
            | Fault::IoStall { duration_ns, .. }
            | Fault::CommitHole { duration_ns }
            | Fault::PrimaryInputDies { duration_ns }
            | Fault::ReleaseLoss { duration_ns }
            | Fault::OutputOutage { duration_ns, .. }
            | Fault::SourceRestart {
                active_ns: duration_ns, ..
            } => duration_ns,
            // A restart's cut begins at the restart, not when it is armed; the inputs'
            // death in a hold is settled when it fires (from the primary's tenure).
            Fault::Crash { .. }
            | Fault::Switchover { .. }
            | Fault::Diverge { .. }
            | Fault::IoGap { .. }
            | Fault::RestartCut { .. }
            | Fault::InputsDeadInHold { .. } => 0,
        }
    }
}

/// A fault and when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlannedFault {
    /// True time it fires.
    pub at: Nanos,
    /// What.
    pub fault: Fault,
}

/// The faults of one run's safety phase, in time order.
#[derive(Debug, Clone, Default)]
pub struct FaultPlan {
    /// The faults, sorted by `at`.
    pub faults: Vec<PlannedFault>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Crash,
    FreezeShort,
    FreezeFalseDeath,
    FreezeLong,
    Partition,
    PartitionAsym,
    LinkCut,
    LossBurst,
    IoLoss,
    Switchover,
    Diverge,
    OutputOutage,
}

fn between(rng: &mut Rng, low: u64, high: u64) -> u64 {
    if high <= low {
        return low;
    }
    low + rng.below(high - low + 1)
}

impl FaultPlan {
    /// Draws the plan for `options` from `rng`.
    pub fn draw(options: &Options, rng: &mut Rng) -> FaultPlan {
        let mix = options.faults;
        let kinds: Vec<Kind> = [
            (mix.crash, Kind::Crash),
            (mix.freeze_short, Kind::FreezeShort),
            (mix.freeze_false_death, Kind::FreezeFalseDeath),
            (mix.freeze_long, Kind::FreezeLong),
            (mix.partition, Kind::Partition),
            (mix.partition_asym, Kind::PartitionAsym),
            (mix.link_cut, Kind::LinkCut),
            (mix.loss_burst, Kind::LossBurst),
            (mix.io_loss_burst, Kind::IoLoss),
            (mix.switchover, Kind::Switchover),
            (mix.diverge, Kind::Diverge),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, kind)| *kind)
        .collect();
        let mut plan = FaultPlan::default();
        if kinds.is_empty() {
            return plan;
        }
        let ms = NANOS_PER_MS;
        let recovery_ns = options.recovery_ms() * ms;
        // Faults are drawn up to here; a quiet tail may follow (below).
        let safety_ns = options.faults_until_ms * ms;
        let (gap_min_ns, gap_max_ns) = (options.fault_gap_ms.0 * ms, options.fault_gap_ms.1 * ms);
        let mut at = between(rng, 0, recovery_ns);
        while at < safety_ns && plan.faults.len() + 2 <= FAULTS_MAX {
            let kind = kinds[rng.below(kinds.len() as u64) as usize];
            let fault = Self::draw_fault(options, kind, rng);
            plan.faults.push(PlannedFault { at, fault });
            // A primary frozen while the restarted node joins it (before it has state):
            // the joiner must not lead from a cold start while the holder is only
            // frozen (invariant 8). Drawn after the fault, so other plans keep their draws.
            if let Fault::Crash {
                restart_after_ns: Some(after_ns),
                ..
            } = fault
            {
                if mix.freeze_long && rng.chance(1, 3) {
                    let c = &options.config;
                    let window_ns = c.detection_window_ms * NANOS_PER_MS;
                    let startup_ns = c.startup_wait_ms * NANOS_PER_MS;
                    plan.faults.push(PlannedFault {
                        at: at + after_ns,
                        fault: Fault::Freeze {
                            target: Target::Primary,
                            kind: FreezeKind::DuringJoin,
                            duration_ns: between(rng, 2 * window_ns + startup_ns, 3 * (window_ns + startup_ns)),
                        },
                    });
                }
            }
            // Switchover during faults: sometimes an operator acts in the middle of one.
            let duration_ns = fault.duration_ns();
            if mix.switchover && duration_ns > 0 && rng.chance(1, 3) {
                let target = if rng.chance(1, 2) {
                    Target::Primary
                } else {
                    Target::Backup
                };
                plan.faults.push(PlannedFault {
                    at: at + between(rng, 0, duration_ns),
                    fault: Fault::Switchover { target },
                });
            }
            at += between(rng, gap_min_ns, gap_max_ns);
        }
        // Output-path outages (issue 22) from a generator of their own, drawn after the
        // rest: a seed keeps every other fault it drew before they existed.
        if mix.output_outage {
            let r = &mut rng.fork();
            let mut at = between(r, 0, recovery_ns);
            while at < safety_ns && plan.faults.len() < FAULTS_MAX {
                let fault = Self::draw_fault(options, Kind::OutputOutage, r);
                plan.faults.push(PlannedFault { at, fault });
                at += fault.duration_ns() + between(r, gap_min_ns, 2 * gap_max_ns);
            }
        }
        // A busy peer at a restart (issue 21): the node that restarts next to a primary
        // finds it stalled for a few cycles — a shell that reads a batch of datagrams at
        // one wake-up, its timers after. The restarted node's first heartbeat then waits in
        // the primary's socket ahead of frames, whose commits go out before the primary's
        // timers run (chaos seed 1, 2026-11-26: the echo of the restart handshake went
        // 16 heartbeat intervals late, and the restarted node led a cold start beside the
        // primary). From a generator of its own, after the rest: other draws stay.
        if options.faults.restart && mix.freeze_short {
            let r = &mut rng.fork();
            let window_ns = options.config.detection_window_ms * ms;
            let cycle_ns = options.cycle_ms * ms;
            let restarts: Vec<Nanos> = plan
                .faults
                .iter()
                .filter_map(|f| match f.fault {
                    Fault::Crash {
                        restart_after_ns: Some(after_ns),
                        ..
                    } => Some(f.at + after_ns),
                    _ => None,
                })
                .collect();
            let stall = |r: &mut Rng, at: Nanos| {
                // Under a quarter of the start-up wait and of the window: heard in time.
                let startup_ns = options.config.startup_wait_ms * ms;
                let high = (5 * cycle_ns).min(window_ns / 4).min(startup_ns / 4).max(1);
                PlannedFault {
                    // Just after the restart: the restart watch sees a running primary.
                    at: at + 1,
                    fault: Fault::Freeze {
                        target: Target::Primary,
                        kind: FreezeKind::Stall,
                        duration_ns: between(r, (cycle_ns * 3 / 2).min(high), high),
                    },
                }
            };
            for at in restarts {
                if plan.faults.len() < FAULTS_MAX && r.chance(1, 2) {
                    plan.faults.push(stall(r, at));
                }
            }
            // And quick restarts, within the primary's commit tail (`max_lag_frames`
            // cycles and more: it still sends a commit every cycle, which postpones its
            // heartbeats), some after the operator's switchover (a primary stopped with
            // SIGTERM hands over, then stops; systemd restarts it).
            let tail_ns = options.config.max_lag_frames * cycle_ns;
            let mut at = between(r, recovery_ns, 2 * recovery_ns);
            while at < safety_ns && plan.faults.len() + 3 <= FAULTS_MAX {
                let after_ns = between(r, 2 * cycle_ns, tail_ns.min(recovery_ns).max(2 * cycle_ns));
                let handover = mix.switchover && r.chance(1, 2);
                let crash_at = if handover {
                    plan.faults.push(PlannedFault {
                        at,
                        fault: Fault::Switchover {
                            target: Target::Primary,
                        },
                    });
                    at + between(r, window_ns / 2, 2 * window_ns)
                } else {
                    at
                };
                plan.faults.push(PlannedFault {
                    at: crash_at,
                    fault: Fault::Crash {
                        target: Target::Backup,
                        restart_after_ns: Some(after_ns),
                    },
                });
                plan.faults.push(stall(r, crash_at + after_ns));
                at = crash_at + after_ns + between(r, 4 * recovery_ns, 16 * recovery_ns);
            }
        }
        // A gap at the backup's input as its primary dies (issue 21): the frames the
        // source sends from the crash on, two to four of them, never reach the backup, and
        // no commit decides them (the primary is gone). The backup takes over with the
        // gap, then the frames after it in hand: it must skip the gap and run those. A
        // new primary that skipped them too broke no invariant before invariant 18
        // (mutant `lockstep.rs:109:66`), and only I/O loss bursts that happened to meet a
        // takeover reached the case. One crash of the primary in three: a crash with a gap
        // is not a clean failover, whose time is checked, and one in two left too few
        // clean ones. Pushed after the crash, at its instant, so that it fires after it
        // (the sort is stable) and finds the survivor as the backup. From a generator of
        // its own, after the rest: other draws stay.
        if mix.crash {
            let r = &mut rng.fork();
            let crashes = plan.instants(|f| {
                matches!(
                    f,
                    Fault::Crash {
                        target: Target::Primary,
                        ..
                    }
                )
            });
            for at in crashes {
                if plan.faults.len() < FAULTS_MAX && r.chance(1, 3) {
                    plan.faults.push(PlannedFault {
                        at,
                        fault: Fault::IoGap {
                            target: Target::Backup,
                            frames: between(r, 2, 4),
                        },
                    });
                }
            }
        }
        // A restart that hears its primary only as stale (issue 21): a backup restarted
        // announces the epoch it reserved, above its primary's; the primary leads above it
        // once it hears it (`Reason::EpochRaised`). With every datagram of the restarted
        // node lost meanwhile, the primary never hears it, and the restarted node hears
        // only messages it refuses as stale: it must still count the pair as holding state
        // and not lead a cold start beside the primary (mutants `fencing.rs:67:26` and
        // `67:61`, invariant 8), then join once the cut heals. The cut outlasts the
        // start-up wait, the window and the probe by a quarter at least, up to twice
        // them. Half the crashes of the backup that restart; pushed after the crash, at
        // its instant, so that it finds the node that went down. From a generator of its
        // own, after the rest: other draws stay.
        if mix.crash && options.faults.restart {
            let r = &mut rng.fork();
            let c = &options.config;
            let hold_ns = (c.startup_wait_ms + c.detection_window_ms + c.probe_timeout_ms) * ms;
            let restarts = plan.instants(|f| {
                matches!(
                    f,
                    Fault::Crash {
                        target: Target::Backup,
                        restart_after_ns: Some(_),
                    }
                )
            });
            for at in restarts {
                if plan.faults.len() < FAULTS_MAX && r.chance(1, 2) {
                    plan.faults.push(PlannedFault {
                        at,
                        fault: Fault::RestartCut {
                            duration_ns: between(r, hold_ns + hold_ns / 4, 2 * hold_ns),
                        },
                    });
                }
            }
        }
        // A release lost on every link while the backup lives (issue 21): with one
        // operator's switchover in eight (one in four halved the switchovers that
        // complete: a lost release aborts the switchovers asked for during it), every `SwitchRelease` is lost from the command on
        // until after the switchover's deadline (the primary's timeout on its drifting
        // clock, after a forwarded request's link delay), every other datagram delivered.
        // The backup agrees and stays alive; the released primary must abort at its
        // deadline and run on. A primary that stepped down there instead (mutant
        // `switchover.rs:394:62`) passed every seed: no fault lost the release and its
        // retries while heartbeats flowed (a partition long enough to cover the timeout,
        // at least twice the window, also silences the backup: the primary aborts early,
        // or the backup takes over). Pushed after the switchover, at its instant: the
        // command goes first (its watch, invariant 7, then ends unjudged, as at any fault
        // that begins). From a generator of its own, after the rest: other draws stay.
        if mix.switchover {
            let r = &mut rng.fork();
            let c = &options.config;
            let timeout_ns = c.switchover_timeout_ms * ms;
            let switchovers = plan.instants(|f| matches!(f, Fault::Switchover { .. }));
            // 2 % over the timeout covers any clock drift (5,000 ppm at most); the
            // forwarded request and a heartbeat's wait come on top.
            let low = timeout_ns + timeout_ns / 50 + 2 * options.link_delay_ns_max() + c.heartbeat_interval_ms * ms;
            for at in switchovers {
                if plan.faults.len() < FAULTS_MAX && r.chance(1, 8) {
                    plan.faults.push(PlannedFault {
                        at,
                        fault: Fault::ReleaseLoss {
                            duration_ns: between(r, low, low + timeout_ns),
                        },
                    });
                }
            }
        }
        // Both inputs dead within a new primary's hold (issue 21): with I/O loss faults
        // on, after one start-up or crash in two, both nodes' inputs die while the
        // primary of the moment is young enough for its input alarm to come within its
        // `input_handover_hold_ms` (judged when the fault fires), until after the hold's
        // end. A primary that asked at the hold's end to be woken at that very instant
        // again and again (mutant `switchover.rs:481:31`) passed every seed: no fault
        // killed both inputs within a hold and past its end. Anchored where a tenure
        // begins: two start-up waits after the first node starts, two detections with
        // probe after a crash; then up to a quarter of the hold later. From a generator of
        // its own, after the rest: other draws stay.
        if mix.io_loss_burst {
            let r = &mut rng.fork();
            let c = &options.config;
            let hold_ns = c.input_handover_hold_ms * ms;
            let first_start_ns = options.start_ms[0].min(options.start_ms[1]) * ms;
            let detect_ns = 2 * (c.detection_window_ms + c.probe_timeout_ms) * ms;
            let anchors: Vec<Nanos> = core::iter::once(first_start_ns + 2 * c.startup_wait_ms * ms)
                .chain(plan.faults.iter().filter_map(|f| match f.fault {
                    Fault::Crash { .. } => Some(f.at + detect_ns),
                    _ => None,
                }))
                .collect();
            for anchor in anchors {
                let at = anchor + between(r, 0, hold_ns / 4);
                let extra_ns = between(r, hold_ns / 50 + options.cycle_ms * ms, hold_ns / 4);
                if plan.faults.len() < FAULTS_MAX && r.chance(1, 2) && at < safety_ns {
                    plan.faults.push(PlannedFault {
                        at,
                        fault: Fault::InputsDeadInHold { extra_ns },
                    });
                }
            }
        }
        // Restarts of the I/O source (issue 21): in one seed in three, one or two, each a
        // silence below, around or above the pair's `input_silence_ms` and a new source
        // session numbered from 1 again (or from a small number: the gateway's first
        // frames lost on its own side). The DST's source numbered 1, 2, 3 … under session
        // 0 for the whole run before, so no mutant of the source sessions
        // (`node/source.rs`) failed a seed: a backup that ignored its primary's map, a
        // restart mapped onto frames in hand, the map's announcements. Each in its own
        // share of the safety phase (from a recovery time after both nodes started on),
        // ending within it. Only on seeds whose plan crashes no node, two in three of
        // them: a node that starts cold after a restart (its peer crashed or frozen, or
        // both crashed) maps the source's new numbers as they are, onto pair frames —
        // output ids — the pair ran before: the sink drops the new outputs as duplicates
        // until the numbers pass the old ones, and a node that held the old frames runs
        // their stale payloads (an open finding, docs/DST.md "Source restarts"). From a
        // generator of its own, after the rest: other draws stay.
        let crashes = plan.faults.iter().any(|f| matches!(f.fault, Fault::Crash { .. }));
        if !crashes {
            let r = &mut rng.fork();
            let c = &options.config;
            let cycle_ns = options.cycle_ms * ms;
            let quiet_ns = c.input_silence_ms * ms;
            if r.chance(2, 3) {
                let restarts = between(r, 1, 2);
                let started_ns = options.start_ms[0].max(options.start_ms[1]) * ms + c.startup_wait_ms * ms;
                let begin_ns = started_ns + recovery_ns;
                let share_ns = safety_ns.saturating_sub(begin_ns) / restarts;
                for k in 0..restarts {
                    let silence_ns = match r.below(3) {
                        0 => between(r, quiet_ns / 5, quiet_ns * 4 / 5),
                        1 => between(r, quiet_ns * 9 / 10, quiet_ns * 11 / 10),
                        _ => between(r, quiet_ns * 6 / 5, 3 * quiet_ns),
                    }
                    .max(1);
                    let first_number = if r.chance(1, 2) { 1 } else { between(r, 2, 5) };
                    let active_ns = silence_ns + quiet_ns + options.io_delay_ns_max() + 4 * cycle_ns;
                    let from = begin_ns + k * share_ns;
                    let at = between(r, from, (from + share_ns).saturating_sub(active_ns));
                    if plan.faults.len() < FAULTS_MAX && at + active_ns < from + share_ns {
                        plan.faults.push(PlannedFault {
                            at,
                            fault: Fault::SourceRestart {
                                silence_ns,
                                first_number,
                                active_ns,
                            },
                        });
                    }
                }
            }
        }
        // The quiet tail (`Options::faults_until_ms`, a seed in eight): once every fault
        // drawn above is over and four recoveries on, the primary's input dies for the
        // rest of the safety phase (invariant 24 then asks for a handover). No draw.
        let tail_ns = options.safety_ms * ms;
        if tail_ns > safety_ns && plan.faults.len() < FAULTS_MAX {
            let settled_ns = plan
                .faults
                .iter()
                .map(|f| {
                    let after_ns = match f.fault {
                        Fault::Crash {
                            restart_after_ns: Some(after_ns),
                            ..
                        } => after_ns,
                        // Settled when it fires: a hold at most, and its extra.
                        Fault::InputsDeadInHold { extra_ns } => options.config.input_handover_hold_ms * ms + extra_ns,
                        _ => 0,
                    };
                    f.at + f.fault.duration_ns() + after_ns
                })
                .max()
                .unwrap_or(0)
                .max(safety_ns);
            let at = settled_ns + 4 * recovery_ns;
            if at < tail_ns {
                plan.faults.push(PlannedFault {
                    at,
                    fault: Fault::PrimaryInputDies {
                        duration_ns: tail_ns - at,
                    },
                });
            }
        }
        // A burst that pauses (issue 21, 2026-11-27): a few cycles before a crash of the
        // primary, the backup's input stalls until after its takeover, and a loss burst
        // on every link drops some of the commits of those cycles. The new primary then
        // holds commits of frames it has no input for, below a commit lost: its burst
        // (levels held, collapsed to the newest per key) waits for the stalled frames and
        // goes on when they come. A burst taken for ended at the pause drove the plant
        // through the burst's intermediate levels, unseen (mutant `outputs.rs:84:41`:
        // the DST drew no such pause). One crash of the primary in four; from a generator
        // of its own, after the rest: other draws stay.
        if mix.crash {
            let r = &mut rng.fork();
            let c = &options.config;
            let cycle_ns = options.cycle_ms * ms;
            let takeover_ns = (c.detection_window_ms + c.probe_timeout_ms) * ms;
            let crashes = plan.instants(|f| {
                matches!(
                    f,
                    Fault::Crash {
                        target: Target::Primary,
                        ..
                    }
                )
            });
            let all_links = (1u32 << options.links.len()) - 1;
            for at in crashes {
                if plan.faults.len() + 2 <= FAULTS_MAX && r.chance(1, 4) {
                    let ahead_ns = between(r, 2, 8) * cycle_ns;
                    let Some(from) = at.checked_sub(ahead_ns) else {
                        continue;
                    };
                    // Past the takeover on the slowest clock (0.5 % drift), by 1 to 10 cycles.
                    let stall_ns = ahead_ns + takeover_ns + takeover_ns / 100 + between(r, 1, 10) * cycle_ns;
                    plan.faults.push(PlannedFault {
                        at: from,
                        fault: Fault::IoStall {
                            target: Target::Backup,
                            duration_ns: stall_ns,
                        },
                    });
                    plan.faults.push(PlannedFault {
                        at: from,
                        fault: Fault::LossBurst {
                            link_mask: all_links,
                            loss_ppm: between(r, 500_000, 900_000) as u32,
                            duration_ns: ahead_ns,
                        },
                    });
                }
            }
        }
        // One commit lost, then the primary's crash 2–6 cycles later (`Fault::CommitHole`):
        // one seed in six whose crashes are on, anywhere in the safety phase (other faults
        // may meet it). From a generator of its own, after the rest: other draws stay.
        if mix.crash {
            let r = &mut rng.fork();
            let cycle_ns = options.cycle_ms * ms;
            let hole_ns = between(r, 2, 6) * cycle_ns;
            let latest_ns = safety_ns.saturating_sub(hole_ns + recovery_ns);
            let at = between(r, 2 * recovery_ns, latest_ns);
            if r.chance(1, 6) && at < latest_ns && plan.faults.len() + 2 <= FAULTS_MAX {
                plan.faults.push(PlannedFault {
                    at,
                    fault: Fault::CommitHole { duration_ns: hole_ns },
                });
                plan.faults.push(PlannedFault {
                    at: at + hole_ns,
                    fault: Fault::Crash {
                        target: Target::Primary,
                        restart_after_ns: None,
                    },
                });
                // One hole in two: the backup freezes as its primary dies, for a ring of
                // frames and 2–10 cycles more. Its socket keeps what arrives: at the thaw
                // its input is more than a ring above the frame it waits to run, whatever
                // the ring against the window and the probe (seed 18879's shape came only
                // where the ring was the shorter: 2 seeds of 2,000).
                let ring_ns = options.config.frames_buffered.saturating_mul(cycle_ns);
                let freeze_ns = ring_ns + between(r, 2, 10) * cycle_ns;
                if r.chance(1, 2) && at + hole_ns + freeze_ns < safety_ns && plan.faults.len() < FAULTS_MAX {
                    plan.faults.push(PlannedFault {
                        at: at + hole_ns,
                        fault: Fault::Freeze {
                            target: Target::Backup,
                            kind: FreezeKind::Long,
                            duration_ns: freeze_ns,
                        },
                    });
                }
            }
        }
        plan.faults.sort_by_key(|f| f.at);
        plan
    }

    fn draw_fault(options: &Options, kind: Kind, rng: &mut Rng) -> Fault {
        let ms = NANOS_PER_MS;
        let c = &options.config;
        let window_ns = c.detection_window_ms * ms;
        let probe_ns = c.probe_timeout_ms * ms;
        let recovery_ns = options.recovery_ms() * ms;
        let role = |rng: &mut Rng| match rng.below(3) {
            0 | 1 => Target::Primary,
            _ => Target::Backup,
        };
        match kind {
            Kind::Crash => Fault::Crash {
                target: if rng.chance(1, 5) {
                    Target::Node(rng.below(2) as usize)
                } else {
                    role(rng)
                },
                restart_after_ns: options
                    .faults
                    .restart
                    .then(|| between(rng, recovery_ns / 10, 3 * recovery_ns)),
            },
            Kind::FreezeShort => Fault::Freeze {
                target: role(rng),
                kind: FreezeKind::Short,
                duration_ns: between(rng, window_ns / 10, window_ns * 9 / 10),
            },
            Kind::FreezeFalseDeath => {
                let margin_ns = false_death_margin_ns(options);
                let high = (window_ns + probe_ns).saturating_sub(margin_ns);
                if high <= window_ns + 1 {
                    // The probe is too short for a freeze to outlast the window and still
                    // be answered in time: freeze shorter than the window instead.
                    return Fault::Freeze {
                        target: role(rng),
                        kind: FreezeKind::Short,
                        duration_ns: between(rng, window_ns / 10, window_ns * 9 / 10),
                    };
                }
                Fault::Freeze {
                    target: role(rng),
                    kind: FreezeKind::FalseDeath,
                    duration_ns: between(rng, window_ns + 1, high),
                }
            }
            Kind::FreezeLong => {
                let low = window_ns + probe_ns + false_death_margin_ns(options);
                Fault::Freeze {
                    target: role(rng),
                    kind: FreezeKind::Long,
                    duration_ns: between(rng, low, 3 * low),
                }
            }
            Kind::Partition => Fault::Partition {
                from: None,
                duration_ns: between(rng, recovery_ns / 10, 2 * recovery_ns),
            },
            Kind::PartitionAsym => Fault::Partition {
                from: Some(rng.below(2) as usize),
                duration_ns: between(rng, recovery_ns / 10, 2 * recovery_ns),
            },
            Kind::LinkCut => Fault::LinkCut {
                link: rng.below(u64::from(c.links)) as usize,
                duration_ns: between(rng, recovery_ns / 10, 3 * recovery_ns),
            },
            Kind::LossBurst => Fault::LossBurst {
                link_mask: if rng.chance(1, 2) {
                    u32::MAX
                } else {
                    1 << rng.below(u64::from(c.links))
                },
                loss_ppm: [300_000, 700_000, 1_000_000][rng.below(3) as usize],
                duration_ns: between(rng, recovery_ns / 10, 2 * recovery_ns),
            },
            Kind::IoLoss => {
                let node = rng.below(2) as usize;
                let loss_ppm = [100_000, 500_000, 1_000_000][rng.below(3) as usize];
                // A dead input path (every frame lost) may last past the input handover's
                // delay, so that a primary's dead input with a live backup input hands over.
                let high = if loss_ppm == 1_000_000 {
                    recovery_ns.max(3 * c.input_handover_ms * ms)
                } else {
                    recovery_ns
                };
                Fault::IoLoss {
                    node,
                    loss_ppm,
                    duration_ns: between(rng, recovery_ns / 10, high),
                }
            }
            Kind::Switchover => Fault::Switchover { target: role(rng) },
            Kind::Diverge => Fault::Diverge {
                target: if rng.chance(1, 2) {
                    Target::Primary
                } else {
                    Target::Backup
                },
                kind: [DivergeKind::Output, DivergeKind::State, DivergeKind::FrameCopy][rng.below(3) as usize],
            },
            // From a few cycles to a few recoveries: short ones heal between two refreshes,
            // long ones outlast several.
            Kind::OutputOutage => Fault::OutputOutage {
                acks: rng.chance(1, 2),
                duration_ns: between(rng, 3 * options.cycle_ms * ms, 3 * recovery_ns),
            },
        }
    }

    /// When each planned fault that `pick` takes fires, in plan order.
    fn instants(&self, pick: impl Fn(&Fault) -> bool) -> Vec<Nanos> {
        self.faults.iter().filter(|f| pick(&f.fault)).map(|f| f.at).collect()
    }

    /// Faults of the pair other than `except` firing within `[from, to]` (an output-path
    /// outage is the plant network's: it leaves the pair calm).
    pub fn any_within(&self, from: Nanos, to: Nanos, except: Option<usize>) -> bool {
        self.faults.iter().enumerate().any(|(i, f)| {
            Some(i) != except && f.at >= from && f.at <= to && !matches!(f.fault, Fault::OutputOutage { .. })
        })
    }

    /// As [`FaultPlan::any_within`], stalls ([`FreezeKind::Stall`]) not counted.
    pub fn any_but_stalls_within(&self, from: Nanos, to: Nanos) -> bool {
        self.faults.iter().any(|f| {
            f.at >= from
                && f.at <= to
                && !matches!(
                    f.fault,
                    Fault::OutputOutage { .. }
                        | Fault::Freeze {
                            kind: FreezeKind::Stall,
                            ..
                        }
                )
        })
    }
}

/// How much shorter than window + probe a freeze must be for the probe to be answered in
/// time: the primary's last message may be up to one heartbeat old when it freezes (its
/// commits come every cycle, but not while its input is lost), the probe and its answer
/// each cross a link, and clocks drift.
pub fn false_death_margin_ns(options: &Options) -> Nanos {
    let c = &options.config;
    let ms = NANOS_PER_MS;
    // The age of the last message when the freeze begins: a link carrying commits may
    // go an interval and a half without a heartbeat.
    let age_ns = c.heartbeat_gap_max().as_nanos() as u64;
    let drift_ns = (c.detection_window_ms + c.probe_timeout_ms) * ms / 100;
    age_ns + 3 * options.link_delay_ns_max() + drift_ns + 10_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_plan_is_sorted_bounded_and_within_safety_phase() {
        for seed in 0..300 {
            let options = Options::draw(seed);
            let plan = FaultPlan::draw(&options, &mut Rng::new(seed));
            assert!(plan.faults.len() <= FAULTS_MAX);
            assert!(!plan.faults.is_empty(), "seed {seed} drew no fault");
            assert!(plan.faults.windows(2).all(|w| w[0].at <= w[1].at));
            let safety_ns = options.safety_ms * NANOS_PER_MS;
            let recovery_ns = options.recovery_ms() * NANOS_PER_MS;
            for f in &plan.faults {
                assert!(f.at < safety_ns + 3 * recovery_ns, "seed {seed}");
            }
        }
    }

    #[test]
    fn fault_plan_false_death_freeze_fits_the_probe() {
        let mut seen = 0;
        for seed in 0..500 {
            let options = Options::draw(seed);
            let plan = FaultPlan::draw(&options, &mut Rng::new(seed));
            let window_ns = options.config.detection_window_ms * NANOS_PER_MS;
            let probe_ns = options.config.probe_timeout_ms * NANOS_PER_MS;
            for f in &plan.faults {
                if let Fault::Freeze {
                    kind: FreezeKind::FalseDeath,
                    duration_ns,
                    ..
                } = f.fault
                {
                    seen += 1;
                    assert!(duration_ns > window_ns);
                    assert!(duration_ns + false_death_margin_ns(&options) <= window_ns + probe_ns);
                }
            }
        }
        assert!(seen > 0, "no false-death freeze drawn in 500 seeds");
    }
}
