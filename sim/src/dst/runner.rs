//! The seed runner: a single-threaded discrete-event simulation of one run, and the
//! driver that runs many seeds (on a few worker threads, one seed per thread at a time)
//! and combines their results in seed order.
//!
//! One run: both nodes start (together, staggered or one late); the I/O source sends a
//! frame every cycle; the fault plan fires during the **safety phase**; then everything
//! heals (links whole and clean, frozen nodes thawed, crashed nodes restarted, no I/O
//! loss) and the **liveness phase** requires the pair to converge — exactly one primary,
//! `Paired`, and an in-sync backup — within a bound, and to stay so with outputs flowing
//! for a settling time. Every invariant is checked by the [`Checker`] as events happen
//! and at the end.
//!
//! Every event sits in one queue ordered by `(true time, sequence)`; the sequence number
//! makes ties deterministic. Every random draw comes from one generator per concern,
//! forked from the seed. Time is only virtual.

use super::app::{Recorder, Step, Workload, WorkloadFactory};
use super::checker::{attribute_steps, pair_converged, pair_following, Checker, Exceptions, Invariant, Violation};
use super::clock::{Clock, Nanos, NANOS_PER_MS, NANOS_PER_US};
use super::faults::{Fault, FaultPlan, FreezeKind, Target};
use super::network::{Delivery, Network, NetworkStats};
use super::options::Options;
use super::sink::{Sink, Verdict};
use std::collections::{BTreeMap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use twinloop::digest::Fnv64;
use twinloop::wire::{self, AuthKey, Body, WireRole};
use twinloop::{
    Action, Alarm, Boot, Command, CommandReply, Node, Notice, Reason, Rng, Role, Status, SyncState, Transition,
};

/// The DST sink's dedup window, in frames: longer than any run of a seed.
const SINK_WINDOW_FRAMES: u64 = 1 << 16;
/// Events one run may process before it is declared stuck.
pub const EVENTS_MAX: u64 = 40_000_000;
/// Events at one instant before the run is declared livelocked.
pub const EVENTS_PER_INSTANT_MAX: u64 = 200_000;
/// Actions one node event may produce before the node is declared runaway.
pub const ACTIONS_PER_EVENT_MAX: usize = 1_000_000;
/// Datagrams and frames a frozen node's sockets buffer; later ones are dropped.
pub const FROZEN_BUFFER_MAX: usize = 16_384;

/// How a seed failed. Each kind has its own exit code (see `docs/DST.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FailureKind {
    /// An invariant 1–4 broke.
    Safety,
    /// Invariant 5 or 6 broke (convergence, failover time, false death), or the run got
    /// stuck.
    Liveness,
    /// The simulator or a node panicked.
    Panic,
}

impl FailureKind {
    /// The process exit code for this kind.
    pub fn exit_code(self) -> i32 {
        match self {
            FailureKind::Safety => 10,
            FailureKind::Liveness => 11,
            FailureKind::Panic => 12,
        }
    }

    /// A name for reports.
    pub fn name(self) -> &'static str {
        match self {
            FailureKind::Safety => "safety",
            FailureKind::Liveness => "liveness",
            FailureKind::Panic => "panic",
        }
    }
}

/// Faults actually injected (a planned fault whose target is not running is skipped).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// Nodes killed.
    pub crash: u64,
    /// Crashed nodes restarted during the safety phase (late joins).
    pub restart: u64,
    /// Crashed nodes restarted when the liveness phase healed everything.
    pub restart_heal: u64,
    /// Freezes of every kind.
    pub pause: u64,
    /// Freezes shorter than the window.
    pub pause_short: u64,
    /// Freezes between window and window + probe.
    pub pause_false_death: u64,
    /// Freezes longer than window + probe.
    pub pause_long: u64,
    /// Partitions, symmetric or not.
    pub partition: u64,
    /// Of which asymmetric.
    pub partition_asym: u64,
    /// One link cut while others live.
    pub link_cut: u64,
    /// Loss bursts on links.
    pub loss: u64,
    /// Loss bursts on a node's I/O input.
    pub io_loss: u64,
    /// Operator switchover commands issued.
    pub switchover: u64,
    /// Of which issued while another fault was active.
    pub switchover_during_fault: u64,
    /// Planned faults skipped because their target was not running.
    pub skipped: u64,
}

impl FaultCounts {
    fn add(&mut self, o: &FaultCounts) {
        self.crash += o.crash;
        self.restart += o.restart;
        self.restart_heal += o.restart_heal;
        self.pause += o.pause;
        self.pause_short += o.pause_short;
        self.pause_false_death += o.pause_false_death;
        self.pause_long += o.pause_long;
        self.partition += o.partition;
        self.partition_asym += o.partition_asym;
        self.link_cut += o.link_cut;
        self.loss += o.loss;
        self.io_loss += o.io_loss;
        self.switchover += o.switchover;
        self.switchover_during_fault += o.switchover_during_fault;
        self.skipped += o.skipped;
    }
}

/// What happened in one run, besides the verdict.
#[derive(Debug, Clone, Default)]
pub struct RunStats {
    /// Faults injected.
    pub faults: FaultCounts,
    /// Takeovers (unplanned: after a probe, or with no primary left).
    pub takeovers: u64,
    /// Planned switchovers completed.
    pub switchovers: u64,
    /// Switchover commands refused.
    pub switchovers_refused: u64,
    /// Input handovers started (a primary with a silent input, its backup's alive).
    pub input_handovers: u64,
    /// Every failover time (primary crash → first output of the new primary), ns.
    pub failover_ns: Vec<Nanos>,
    /// Failovers checked against the bound.
    pub failovers_checked: u64,
    /// False deaths (probes answered by a live primary).
    pub false_deaths: u64,
    /// False-death freezes watched for a takeover.
    pub false_deaths_watched: u64,
    /// Restarts next to a healthy primary watched for a node that leads.
    pub restarts_watched: u64,
    /// Switchovers asked for in a calm state, watched to complete cleanly.
    pub switchovers_watched: u64,
    /// Time from healing to convergence, ns.
    pub liveness_ns: Option<Nanos>,
    /// Allowed differences and losses.
    pub exceptions: Exceptions,
    /// `InputLost` alarms.
    pub alarms_input_lost: u64,
    /// Output or state divergence alarms.
    pub alarms_divergence: u64,
    /// `CannotTakeOver` alarms.
    pub alarms_cannot_take_over: u64,
    /// State transfers completed (receiver side).
    pub transfers: u64,
    /// Frames the source sent.
    pub frames: u64,
    /// Outputs the sink accepted.
    pub accepted: u64,
    /// Duplicates the sink dropped.
    pub duplicates: u64,
    /// Stale outputs the sink rejected.
    pub stale: u64,
    /// Outputs the sink rejected as older than its dedup window (the nodes' ring).
    pub too_old: u64,
    /// Times the sink's epoch lease lapsed.
    pub lapses: u64,
    /// Events processed.
    pub events: u64,
    /// The network's counters.
    pub network: NetworkStats,
    /// Frames between the first and the last output the sink accepted for which it
    /// accepted none (skipped, stalled or fenced-off frames).
    pub frames_without_output: u64,
    /// The longest run of such frames.
    pub output_gap_frames_max: u64,
    /// Frames and datagrams a frozen node's full buffer dropped.
    pub frozen_dropped: u64,
}

/// The result of one seed.
#[derive(Debug, Clone)]
pub struct SeedReport {
    /// The seed.
    pub seed: u64,
    /// The options, one line.
    pub summary: String,
    /// `None`: every invariant held.
    pub failure: Option<FailureKind>,
    /// The violations kept.
    pub violations: Vec<Violation>,
    /// Every violation, kept or not.
    pub violation_count: u64,
    /// The panic message, when it panicked.
    pub panic: Option<String>,
    /// Hash of everything that happened: the same seed gives the same hash.
    pub trace_hash: u64,
    /// What happened.
    pub stats: RunStats,
    /// The configuration profile.
    pub profile: &'static str,
}

/// A bug planted on purpose, to show that the checkers catch it end to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mutation {
    /// None: the real thing.
    #[default]
    None,
    /// Outputs of every 97th frame never reach the sink.
    DropEmit,
    /// Outputs of every 89th frame reach the sink with a flipped bit.
    CorruptEmit,
    /// The sink never fences (it accepts any epoch).
    NoFencing,
    /// Persisted epochs are lost.
    LoseEpoch,
    /// Node 1 reports a wrong state digest after every 101st frame.
    CorruptDigest,
    /// Both nodes run with `allow_cold_start`: the behaviour before 2026-11-26, when a
    /// node without state led from a cold start whenever it heard no primary.
    ColdStart,
}

/// How to run seeds (not drawn from the seed).
#[derive(Debug, Clone, Copy, Default)]
pub struct RunConfig {
    /// A planted bug (tests only).
    pub mutation: Mutation,
    /// Print faults, transitions, alarms and notable sink verdicts as they happen.
    pub trace: bool,
    /// Also print every sync-link message sent (much more output).
    pub trace_wire: bool,
}

#[derive(Debug)]
enum Event {
    /// The I/O source sends the next frame.
    SourceTick,
    /// A frame reaches a node.
    Frame { node: usize, frame: u64 },
    /// A datagram reaches a node.
    Packet { to: usize, link: u8, bytes: Vec<u8> },
    /// A node's deadline.
    Timer { node: usize },
    /// A node starts or restarts.
    Start { node: usize, restart: bool },
    /// A planned fault fires.
    Fault { index: usize },
    /// A timed fault ends.
    FaultEnd(FaultEnd),
    /// A frozen node resumes.
    Thaw { node: usize },
    /// The safety phase ends: heal everything.
    Heal,
    /// A clean failover's deadline.
    FailoverDeadline,
    /// The liveness bound.
    LivenessDeadline,
    /// The end of the run.
    End,
}

#[derive(Debug, Clone, Copy)]
enum FaultEnd {
    Partition { from: Option<usize> },
    LinkCut { link: usize },
    LossBurst { id: u64 },
    IoLoss { id: u64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Safety,
    Liveness { heal_at: Nanos },
    Settling { accepted_at_convergence: usize },
    Done,
}

struct SimNode<A: twinloop::App> {
    node: Option<Node<Recorder<A>>>,
    incarnation: u32,
    clock: Clock,
    frozen_until: Option<Nanos>,
    buffered: VecDeque<Event>,
    timer: Option<(Nanos, u64)>,
    /// The epoch on "disk": survives crashes.
    disk_epoch: u64,
    /// The epoch reserved on "disk".
    disk_reserved: u64,
    seeds: Rng,
}

struct Sim<'a, W: Workload> {
    options: &'a Options,
    workload: &'a W,
    run: RunConfig,
    now: Nanos,
    queue: BTreeMap<(Nanos, u64), Event>,
    seq: u64,
    nodes: [SimNode<W::App>; 2],
    network: Network,
    io_rng: Rng,
    io_loss_ppm: [u32; 2],
    io_bursts: BTreeMap<u64, (usize, u32)>,
    burst_id_next: u64,
    frame_next: u64,
    sink: Sink,
    checker: Checker,
    plan: FaultPlan,
    phase: Phase,
    trace: Fnv64,
    stats: RunStats,
    /// Timed faults active now (for "switchover during faults").
    faults_active: u32,
    /// The last time a fault began or ended (switchovers aside).
    last_trouble_at: Nanos,
    frozen_count: u32,
    events_at_instant: u64,
    instant: Nanos,
    // Scratch buffers, kept to avoid allocating per event.
    deliveries: Vec<Delivery>,
    steps: Vec<Step>,
    attributed: Vec<(u64, Step)>,
    transitions: Vec<Transition>,
    input_lost: Vec<u64>,
    payload: Vec<u8>,
    actions: Vec<Action>,
    /// By node: raised `ColderPrimary`; the simulated operator says `rejoin`.
    rejoin_pending: [bool; 2],
    /// An armed `FreezeKind::DuringJoin`: its duration.
    freeze_on_join: Option<Nanos>,
    /// The node to freeze now that its peer joins it.
    freeze_now: Option<usize>,
}

/// Runs one seed with the runtime's test application. Never panics: a panic is caught
/// and reported as a [`FailureKind::Panic`].
pub fn run_seed(seed: u64, run: RunConfig) -> SeedReport {
    run_seed_with(seed, run, &super::app::TestWorkloadFactory)
}

/// Runs one seed with the workload `factory` makes for it.
pub fn run_seed_with<F: WorkloadFactory>(seed: u64, run: RunConfig, factory: &F) -> SeedReport {
    let options = Options::draw(seed);
    let summary = options.summary();
    let profile = options.profile.name();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let workload = factory.make(&options);
        let mut sim = Sim::new(&options, &workload, run);
        sim.run();
        sim.into_report(summary.clone())
    }));
    match outcome {
        Ok(report) => report,
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic payload".to_string());
            SeedReport {
                seed,
                summary,
                failure: Some(FailureKind::Panic),
                violations: Vec::new(),
                violation_count: 1,
                panic: Some(message),
                trace_hash: 0,
                stats: RunStats::default(),
                profile,
            }
        }
    }
}

/// The bound on a clean failover, in true nanoseconds: the primary's last message may
/// still be in flight when it dies (one link delay); the backup then waits the detection
/// window and the probe timeout on its own clock (scaled by its drift, rounded up); the
/// first output needs a frame in hand, which the source sends within a cycle and which
/// arrives within the I/O delay — two cycles, as DESIGN.md allows, cover one such wait
/// and a frame that arrived out of order; plus 1 µs of rounding.
pub fn failover_bound_ns(options: &Options, backup_clock: &Clock) -> Nanos {
    let c = &options.config;
    let detect_ns = backup_clock.true_duration((c.detection_window_ms + c.probe_timeout_ms) * NANOS_PER_MS);
    options.link_delay_ns_max() + detect_ns + 2 * options.cycle_ms * NANOS_PER_MS + options.io_delay_ns_max() + 1_000
}

/// The bound on convergence after healing, in true nanoseconds: two start-up waits (a
/// restarted node may wait twice: once for a tie, once for a backup with state to take
/// over), two detections with probe (a deposed or silent primary), a switchover timeout
/// (one under way when the faults healed), two state transfers (one may start before
/// the other is superseded), some retries and 50 cycles of catching up; doubled for drift.
pub fn liveness_bound_ns(options: &Options) -> Nanos {
    let c = &options.config;
    let rtt_ns = 2 * options.link_delay_ns_max() + c.heartbeat_interval_ms * NANOS_PER_MS;
    let state_bytes = options.ballast_bytes as u64 + 64;
    let chunks = state_bytes.div_ceil(c.transfer_chunk_bytes);
    let rounds = chunks.div_ceil(c.transfer_window_chunks) + 1;
    let paced_ns = (chunks * NANOS_PER_MS)
        .checked_div(c.transfer_chunks_per_ms)
        .unwrap_or(0);
    let transfer_ns = rounds * rtt_ns + paced_ns + 4 * c.retry_ms * NANOS_PER_MS;
    let ms = NANOS_PER_MS;
    2 * (2 * c.startup_wait_ms * ms
        + 2 * (c.detection_window_ms + c.probe_timeout_ms) * ms
        + c.switchover_timeout_ms * ms
        + 2 * transfer_ns
        + 10 * c.retry_ms * ms
        + 50 * options.cycle_ms * ms)
}

/// How long the converged pair must stay converged, with outputs flowing.
fn settle_ns(options: &Options) -> Nanos {
    let c = &options.config;
    (2 * (c.detection_window_ms + c.probe_timeout_ms) + 2 * c.heartbeat_interval_ms + 20 * options.cycle_ms)
        * NANOS_PER_MS
}

impl<'a, W: Workload> Sim<'a, W> {
    fn new(options: &'a Options, workload: &'a W, run: RunConfig) -> Self {
        let mut rng = Rng::new(options.run_seed);
        let r_plan = &mut rng.fork();
        let plan = FaultPlan::draw(options, r_plan);
        let network = Network::new(options.links.clone(), rng.fork());
        let io_rng = rng.fork();
        let make = |i: usize, rng: &mut Rng| SimNode {
            node: None,
            incarnation: 0,
            clock: Clock::new(options.clock_offset_ns[i], options.drift_ppm[i]),
            frozen_until: None,
            buffered: VecDeque::new(),
            timer: None,
            disk_epoch: 0,
            disk_reserved: 0,
            seeds: rng.fork(),
        };
        let nodes = [make(0, &mut rng), make(1, &mut rng)];
        let mut sim = Sim {
            options,
            workload,
            run,
            now: 0,
            queue: BTreeMap::new(),
            seq: 0,
            nodes,
            network,
            io_rng,
            io_loss_ppm: options.io.loss_ppm,
            io_bursts: BTreeMap::new(),
            burst_id_next: 1,
            frame_next: 1,
            // A window longer than any run (as the harness's gateway keeps): with exactly
            // the nodes' ring (`frames_buffered`), seeds 8972 and 11693 of 2000..11999
            // rejected committed outputs as too old after a takeover by a node whose input
            // had fallen behind — lost at the sink, not by the nodes. PROTOCOL.md, "The
            // dedup window", says so; the checker judges the nodes here.
            sink: Sink::new(
                SINK_WINDOW_FRAMES.max(options.config.frames_buffered),
                options.sink_lease_ms.map(|ms| ms * NANOS_PER_MS),
            )
            .expect("frames_buffered is within a gateway's window"),
            checker: Checker::new(),
            plan,
            phase: Phase::Safety,
            trace: Fnv64::new(),
            stats: RunStats::default(),
            faults_active: 0,
            last_trouble_at: 0,
            frozen_count: 0,
            events_at_instant: 0,
            instant: 0,
            deliveries: Vec::with_capacity(4),
            steps: Vec::with_capacity(1024),
            attributed: Vec::with_capacity(1024),
            transitions: Vec::with_capacity(8),
            input_lost: Vec::new(),
            payload: Vec::with_capacity(64),
            actions: Vec::with_capacity(256),
            rejoin_pending: [false; 2],
            freeze_on_join: None,
            freeze_now: None,
        };
        sim.schedule(0, Event::SourceTick);
        for i in 0..2 {
            sim.schedule(
                options.start_ms[i] * NANOS_PER_MS,
                Event::Start {
                    node: i,
                    restart: false,
                },
            );
        }
        for index in 0..sim.plan.faults.len() {
            let at = sim.plan.faults[index].at;
            sim.schedule(at, Event::Fault { index });
        }
        sim.schedule(options.safety_ms * NANOS_PER_MS, Event::Heal);
        sim
    }

    fn schedule(&mut self, at: Nanos, event: Event) -> (Nanos, u64) {
        self.seq += 1;
        let key = (at.max(self.now), self.seq);
        self.queue.insert(key, event);
        key
    }

    fn trace_u64(&mut self, value: u64) {
        self.trace.write_u64(value);
    }

    fn say(&self, what: core::fmt::Arguments<'_>) {
        if self.run.trace {
            println!("[{:>12.3} ms] {what}", self.now as f64 / 1e6);
        }
    }

    fn run(&mut self) {
        while self.phase != Phase::Done {
            let Some(((at, _), event)) = self.queue.pop_first() else {
                self.checker
                    .violation(Invariant::Liveness, self.now, "the event queue ran dry".to_string());
                break;
            };
            debug_assert!(at >= self.now, "time went backwards");
            self.now = at;
            self.stats.events += 1;
            if self.stats.events > EVENTS_MAX {
                self.checker.violation(
                    Invariant::Liveness,
                    self.now,
                    format!("more than {EVENTS_MAX} events: the run does not end"),
                );
                break;
            }
            if at == self.instant {
                self.events_at_instant += 1;
                if self.events_at_instant > EVENTS_PER_INSTANT_MAX {
                    self.checker.violation(
                        Invariant::Liveness,
                        self.now,
                        format!("more than {EVENTS_PER_INSTANT_MAX} events at one instant: a livelock"),
                    );
                    break;
                }
            } else {
                self.instant = at;
                self.events_at_instant = 0;
            }
            self.trace_u64(at);
            self.handle(event);
            if let Phase::Liveness { heal_at } = self.phase {
                if self.converged() {
                    let took_ns = self.now - heal_at;
                    self.stats.liveness_ns = Some(took_ns);
                    self.say(format_args!("converged {:.3} ms after healing", took_ns as f64 / 1e6));
                    self.phase = Phase::Settling {
                        accepted_at_convergence: self.sink.accepted.len(),
                    };
                    let end = self.now + settle_ns(self.options);
                    self.schedule(end, Event::End);
                }
            }
        }
        self.finish();
    }

    fn statuses(&self) -> [Option<Status>; 2] {
        [0, 1].map(|i| self.nodes[i].node.as_ref().map(|n| n.status()))
    }

    fn converged(&self) -> bool {
        self.nodes.iter().all(|n| n.frozen_until.is_none()) && pair_converged(&self.statuses())
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::SourceTick => self.source_tick(),
            Event::Frame { node, frame } => {
                self.trace_u64(1 + node as u64);
                if self.defer_if_frozen(node, Event::Frame { node, frame }) {
                    return;
                }
                let sn = &mut self.nodes[node];
                let Some(n) = sn.node.as_mut() else { return };
                let local = sn.clock.local(self.now);
                let epoch_before = n.epoch();
                self.workload.payload(frame, &mut self.payload);
                n.handle_frame(local, frame, &self.payload);
                self.drain(node, epoch_before);
            }
            Event::Packet { to, link, bytes } => {
                self.trace_u64(3 + to as u64);
                if !self.network.arrive(usize::from(link), 1 - to) {
                    return;
                }
                if self.nodes[to].node.is_none() {
                    return;
                }
                if self.nodes[to].frozen_until.is_some() {
                    self.defer_if_frozen(to, Event::Packet { to, link, bytes });
                    return;
                }
                let sn = &mut self.nodes[to];
                let Some(n) = sn.node.as_mut() else { return };
                let local = sn.clock.local(self.now);
                let epoch_before = n.epoch();
                n.handle_message(local, link, &bytes);
                self.drain(to, epoch_before);
            }
            Event::Timer { node } => {
                self.trace_u64(5 + node as u64);
                let sn = &mut self.nodes[node];
                sn.timer = None;
                if sn.frozen_until.is_some() {
                    return;
                }
                let Some(n) = sn.node.as_mut() else { return };
                let local = sn.clock.local(self.now);
                let epoch_before = n.epoch();
                n.handle_timeout(local);
                self.drain(node, epoch_before);
            }
            Event::Start { node, restart } => {
                if restart && self.phase == Phase::Safety && self.nodes[node].node.is_none() {
                    self.stats.faults.restart += 1;
                    self.watch_restart(node);
                }
                self.start(node, restart);
            }
            Event::Fault { index } => {
                if self.phase == Phase::Safety {
                    self.apply_fault(index);
                }
            }
            Event::FaultEnd(end) => {
                if self.phase == Phase::Safety {
                    self.end_fault(end);
                }
            }
            Event::Thaw { node } => {
                if self.nodes[node].frozen_until.is_some_and(|t| t <= self.now) {
                    self.thaw(node);
                }
            }
            Event::Heal => self.heal(),
            Event::FailoverDeadline => self.checker.check_failover_deadlines(self.now),
            Event::LivenessDeadline => {
                if let Phase::Liveness { heal_at } = self.phase {
                    let detail = format!(
                        "no single primary with an in-sync backup {:.3} ms after healing; {}",
                        (self.now - heal_at) as f64 / 1e6,
                        self.describe_nodes()
                    );
                    self.checker.violation(Invariant::Liveness, self.now, detail);
                    self.phase = Phase::Done;
                }
            }
            Event::End => {
                if let Phase::Settling {
                    accepted_at_convergence,
                } = self.phase
                {
                    // Still one primary with a following backup (a burst of catching up
                    // may make it lag for a moment), and outputs flowing.
                    let following =
                        self.nodes.iter().all(|n| n.frozen_until.is_none()) && pair_following(&self.statuses());
                    if !following {
                        let detail = format!("the pair did not stay together; {}", self.describe_nodes());
                        self.checker.violation(Invariant::Liveness, self.now, detail);
                    } else if self.sink.accepted.len() <= accepted_at_convergence {
                        self.checker.violation(
                            Invariant::Liveness,
                            self.now,
                            "converged, but no new output reached the sink while settling".to_string(),
                        );
                    }
                    self.phase = Phase::Done;
                }
            }
        }
    }

    fn describe_nodes(&self) -> String {
        let mut out = String::new();
        for (i, sn) in self.nodes.iter().enumerate() {
            match &sn.node {
                None => out.push_str(&format!("node {i}: down; ")),
                Some(n) => {
                    let s = n.status();
                    out.push_str(&format!(
                        "node {i}: {:?}/{:?} epoch {} frame {} lag {} switchover {:?} frozen {}; ",
                        s.role,
                        s.sync,
                        twinloop::EpochText(s.epoch),
                        s.frame,
                        s.lag_frames,
                        s.switchover,
                        sn.frozen_until.is_some()
                    ));
                }
            }
        }
        out
    }

    /// A frozen node's sockets buffer what arrives; returns whether it was buffered.
    fn defer_if_frozen(&mut self, node: usize, event: Event) -> bool {
        let sn = &mut self.nodes[node];
        if sn.frozen_until.is_none() {
            return false;
        }
        if sn.buffered.len() < FROZEN_BUFFER_MAX {
            sn.buffered.push_back(event);
        } else {
            self.stats.frozen_dropped += 1;
        }
        true
    }

    fn source_tick(&mut self) {
        let frame = self.frame_next;
        self.frame_next += 1;
        self.stats.frames += 1;
        let io = self.options.io;
        for node in 0..2 {
            let burst = self
                .io_bursts
                .values()
                .filter(|(n, _)| *n == node)
                .map(|(_, ppm)| *ppm)
                .max()
                .unwrap_or(0);
            let loss_ppm = self.io_loss_ppm[node].max(burst);
            if loss_ppm > 0 && self.io_rng.chance(u64::from(loss_ppm), 1_000_000) {
                continue;
            }
            let copies = if io.dup_ppm > 0 && self.io_rng.chance(u64::from(io.dup_ppm), 1_000_000) {
                2
            } else {
                1
            };
            for _ in 0..copies {
                let delay_us = io.delay_us_min + self.io_rng.below(io.delay_us_jitter + 1);
                self.schedule(self.now + delay_us * NANOS_PER_US, Event::Frame { node, frame });
            }
        }
        let next = self.now + self.options.cycle_ms * NANOS_PER_MS;
        self.schedule(next, Event::SourceTick);
    }

    fn start(&mut self, i: usize, restart: bool) {
        if self.nodes[i].node.is_some() {
            return;
        }
        let mut config = self.options.node_config(i);
        if self.run.mutation == Mutation::ColdStart {
            config.allow_cold_start = true;
        }
        if restart {
            self.last_trouble_at = self.now;
        }
        let sn = &mut self.nodes[i];
        sn.incarnation += 1;
        let boot = Boot {
            now: sn.clock.local(self.now),
            seed: sn.seeds.next_u64(),
            epoch_persisted: sn.disk_epoch,
            epoch_reserved: sn.disk_reserved,
        };
        let app = Recorder::new(self.workload.new_app());
        let mut node = match Node::new(config, app, boot) {
            Ok(node) => node,
            Err(error) => panic!("the drawn configuration is invalid: {error}"),
        };
        if let Some(key) = self.options.auth_key {
            // The session must grow from one start to the next: true time does.
            node = node.with_auth(AuthKey::new(key), self.now + 1);
        }
        let epoch_before = node.epoch();
        sn.node = Some(node);
        let incarnation = sn.incarnation;
        self.checker.on_start(i, incarnation);
        if restart {
            self.say(format_args!(
                "node {i}: restart (incarnation {incarnation}, persisted epoch {})",
                twinloop::EpochText(self.nodes[i].disk_epoch)
            ));
        }
        self.trace_u64(100 + i as u64);
        self.drain(i, epoch_before);
    }

    /// Drains node `i`'s actions into the network, the sink and the checkers, then its
    /// recorded steps, then reschedules its timer.
    fn drain(&mut self, i: usize, epoch_before: u64) {
        let now = self.now;
        self.transitions.clear();
        self.input_lost.clear();
        // Every action first, then the steps they came with: an output is checked against
        // what the application produced, which must be known when the output is.
        let mut actions = core::mem::take(&mut self.actions);
        actions.clear();
        while let Some(node) = self.nodes[i].node.as_mut() {
            let Some(action) = node.poll_action() else { break };
            assert!(
                actions.len() < ACTIONS_PER_EVENT_MAX,
                "node {i} produced more than {ACTIONS_PER_EVENT_MAX} actions in one event"
            );
            if let Action::Transition(t) = &action {
                self.transitions.push(*t);
            }
            actions.push(action);
        }
        let epoch_after = match self.nodes[i].node.as_mut() {
            Some(node) => {
                node.app_mut().take_steps(&mut self.steps);
                node.epoch()
            }
            None => epoch_before,
        };
        if !self.steps.is_empty() {
            if self.run.mutation == Mutation::CorruptDigest && i == 1 {
                for step in self.steps.iter_mut().filter(|s| s.frame % 101 == 0) {
                    step.digest ^= 1;
                }
            }
            self.attributed.clear();
            attribute_steps(epoch_before, &self.transitions, &self.steps, &mut self.attributed);
            self.checker.on_steps(now, i, &self.attributed);
            if let Some(last) = self.steps.last() {
                self.trace_u64(last.digest);
            }
            self.steps.clear();
        }
        for action in actions.drain(..) {
            match action {
                Action::Transmit { link, bytes, .. } => {
                    let crc_at = bytes.len().saturating_sub(4);
                    let mut crc = [0u8; 4];
                    crc.copy_from_slice(&bytes[crc_at..]);
                    self.trace_u64(u64::from(u32::from_le_bytes(crc)) << 8 | u64::from(link));
                    // Tap the commits a primary puts on the wire (sent on every link,
                    // link 0 included: look at one copy).
                    if self.run.trace_wire {
                        if let Ok(envelope) = wire::decode(&bytes, None) {
                            self.say(format_args!(
                                "node {i} -> link {link}: {}",
                                describe_body(&envelope.body)
                            ));
                        }
                    }
                    if link == 0 {
                        if let Ok(envelope) = wire::decode(&bytes, None) {
                            if let (Body::Commit(commit), WireRole::Primary) = (envelope.body, envelope.header.role) {
                                self.checker.on_commit(i, envelope.header.epoch, &commit);
                            }
                        }
                    }
                    let mut deliveries = core::mem::take(&mut self.deliveries);
                    self.network.send(now, i, usize::from(link), &bytes, &mut deliveries);
                    for d in deliveries.drain(..) {
                        self.schedule(
                            d.at,
                            Event::Packet {
                                to: 1 - i,
                                link,
                                bytes: d.bytes,
                            },
                        );
                    }
                    self.deliveries = deliveries;
                }
                Action::Emit(mut output) => {
                    match self.run.mutation {
                        Mutation::DropEmit if output.frame % 97 == 0 => continue,
                        Mutation::CorruptEmit if output.frame % 89 == 0 => {
                            if let Some(byte) = output.payload.first_mut() {
                                *byte ^= 0x40;
                            }
                        }
                        _ => {}
                    }
                    if self.run.mutation == Mutation::NoFencing {
                        // A sink that forgets its fence before every output.
                        self.sink.gateway.clear_fence();
                    }
                    let (verdict, lapsed) = self.sink.offer(now, i, &output);
                    if lapsed {
                        self.say(format_args!("sink: epoch lease lapsed"));
                        self.checker.on_sink_lapse();
                    }
                    self.trace_u64(output.frame << 8 | u64::from(output.index));
                    self.trace_u64(output.epoch);
                    if verdict != Verdict::Accepted {
                        self.say(format_args!(
                            "node {i}: emit ({}, {}) epoch {} -> {verdict:?}",
                            output.frame,
                            output.index,
                            twinloop::EpochText(output.epoch)
                        ));
                    }
                    self.checker.on_emit(now, i, &output, verdict);
                }
                Action::PersistEpoch(epoch) | Action::PersistEpochLater(epoch) => {
                    if self.run.mutation == Mutation::LoseEpoch {
                        // A disk that loses what was written: the restarted node starts low.
                        continue;
                    }
                    self.nodes[i].disk_epoch = epoch;
                    self.checker.on_persist(now, i, epoch);
                }
                Action::ReserveEpoch(epoch) => {
                    if self.run.mutation == Mutation::LoseEpoch {
                        continue;
                    }
                    self.nodes[i].disk_reserved = epoch;
                    self.checker.on_reserve(now, i, epoch);
                }
                Action::Transition(t) => {
                    self.trace_u64(t.epoch ^ t.frame.rotate_left(17) ^ (t.role as u64) << 60);
                    self.say(format_args!(
                        "node {i}: {:?}/{:?} epoch {} frame {} ({:?})",
                        t.role,
                        t.sync,
                        twinloop::EpochText(t.epoch),
                        t.frame,
                        t.reason
                    ));
                    if t.reason == Reason::PrimaryFound && self.role(1 - i) == Some(Role::Primary) {
                        self.freeze_now = Some(1 - i);
                    }
                    match t.reason {
                        Reason::TakeoverAfterProbe | Reason::TakeoverNoPrimary => self.stats.takeovers += 1,
                        Reason::SwitchoverCompleted => self.stats.switchovers += 1,
                        Reason::InSync => self.stats.transfers += 1,
                        Reason::InputHandover => self.stats.input_handovers += 1,
                        _ => {}
                    }
                    self.checker.on_transition(now, i, &t);
                }
                Action::Alarm(alarm) => {
                    self.say(format_args!("node {i}: alarm {alarm:?}"));
                    match alarm {
                        Alarm::InputLost { frame } => {
                            self.stats.alarms_input_lost += 1;
                            self.input_lost.push(frame);
                        }
                        Alarm::OutputDivergence { .. } | Alarm::StateDivergence { .. } => {
                            self.stats.alarms_divergence += 1
                        }
                        Alarm::CannotTakeOver => self.stats.alarms_cannot_take_over += 1,
                        // The simulated operator chooses the state the sink follows: the
                        // node that kept its own takes the primary's (liveness after a
                        // cold start by a node that could not know; see invariant 8).
                        Alarm::ColderPrimary { .. } => self.rejoin_pending[i] = true,
                        Alarm::TransferRejected
                        | Alarm::ColdStartHeld
                        | Alarm::PairingRefused { .. }
                        | Alarm::SyncKeyMismatch { .. }
                        | Alarm::PeerIsSelf { .. }
                        | Alarm::InputSilent
                        | Alarm::EpochRefused { .. }
                        | Alarm::EpochExhausted { .. }
                        | Alarm::FrameRefused { .. }
                        | Alarm::FramesStale { .. } => {}
                        // Alarm is #[non_exhaustive]: an alarm added later is printed
                        // above and counted nowhere until it is named here.
                        _ => {}
                    }
                }
                Action::Notice(notice) => {
                    if notice == Notice::FalseDeath {
                        self.stats.false_deaths += 1;
                    }
                    if !matches!(notice, Notice::LinkUp(_) | Notice::LinkDown(_)) {
                        self.say(format_args!("node {i}: {notice:?}"));
                    }
                }
            }
        }
        self.actions = actions;
        for k in 0..self.input_lost.len() {
            let frame = self.input_lost[k];
            self.checker.on_input_lost(epoch_after, frame);
        }
        if let (Some(p), Some(duration_ns)) = (self.freeze_now.take(), self.freeze_on_join) {
            if self.nodes[p].frozen_until.is_none() && self.phase == Phase::Safety {
                self.freeze_on_join = None;
                self.freeze_during_join(p, duration_ns);
            }
        }
        if core::mem::take(&mut self.rejoin_pending[i]) {
            let sn = &mut self.nodes[i];
            if let Some(n) = sn.node.as_mut() {
                let local = sn.clock.local(self.now);
                let epoch_before = n.epoch();
                let reply = n.handle_command(local, Command::Rejoin);
                self.say(format_args!("OPERATOR rejoin to node {i}: {reply:?}"));
                self.drain(i, epoch_before);
            }
        }
        self.reschedule_timer(i);
    }

    fn reschedule_timer(&mut self, i: usize) {
        let now = self.now;
        let sn = &mut self.nodes[i];
        let want = match (&sn.node, sn.frozen_until) {
            (Some(node), None) => node.poll_timeout().map(|d| sn.clock.true_at(d).max(now)),
            _ => None,
        };
        if let Some(key) = sn.timer {
            if Some(key.0) == want {
                return;
            }
            self.queue.remove(&key);
            sn.timer = None;
        }
        if let Some(at) = want {
            let key = self.schedule(at, Event::Timer { node: i });
            self.nodes[i].timer = Some(key);
        }
    }

    fn role(&self, i: usize) -> Option<Role> {
        self.nodes[i].node.as_ref().map(|n| n.role())
    }

    fn resolve(&self, target: Target) -> Option<usize> {
        let running = |i: usize| self.nodes[i].node.is_some();
        let primary = (0..2).find(|&i| self.role(i) == Some(Role::Primary));
        match target {
            Target::Node(i) => running(i).then_some(i),
            Target::Primary => primary.or_else(|| (0..2).find(|&i| running(i))),
            Target::Backup => match primary {
                Some(p) => running(1 - p).then_some(1 - p),
                None => (0..2).rev().find(|&i| running(i)),
            },
        }
    }

    /// True when node `i` is a backup with state following the primary `p`'s epoch.
    fn follows_with_state(&self, i: usize, p: usize) -> bool {
        let (Some(backup), Some(primary)) = (&self.nodes[i].node, &self.nodes[p].node) else {
            return false;
        };
        let s = backup.status();
        s.role == Role::Backup
            && matches!(s.sync, SyncState::InSync | SyncState::Lagging)
            && s.epoch == primary.epoch()
            && self.nodes[i].frozen_until.is_none()
    }

    /// The armed `FreezeKind::DuringJoin` fires: the primary `p` freezes as its peer
    /// joins it.
    fn freeze_during_join(&mut self, p: usize, duration_ns: Nanos) {
        self.last_trouble_at = self.now;
        self.checker.end_switchover_watches(self.now);
        self.stats.faults.pause += 1;
        self.stats.faults.pause_long += 1;
        self.say(format_args!(
            "FAULT freeze node {p} ({:?}) for {:.3} ms (DuringJoin)",
            self.role(p),
            duration_ns as f64 / 1e6
        ));
        let until = self.now + duration_ns;
        let sn = &mut self.nodes[p];
        sn.frozen_until = Some(until);
        self.frozen_count += 1;
        if let Some(key) = sn.timer.take() {
            self.queue.remove(&key);
        }
        self.schedule(until, Event::Thaw { node: p });
    }

    fn apply_fault(&mut self, index: usize) {
        let planned = self.plan.faults[index];
        let ms = NANOS_PER_MS;
        self.trace_u64(0xFA17 + index as u64);
        let trouble_before = self.last_trouble_at;
        if !matches!(planned.fault, Fault::Switchover { .. }) {
            self.last_trouble_at = self.now;
            self.checker.end_switchover_watches(self.now);
        }
        match planned.fault {
            Fault::Crash {
                target,
                restart_after_ns,
            } => {
                let Some(i) = self.resolve(target) else {
                    self.stats.faults.skipped += 1;
                    return;
                };
                self.stats.faults.crash += 1;
                let was_primary = self.role(i) == Some(Role::Primary);
                let epoch = self.nodes[i].node.as_ref().map_or(0, |n| n.epoch());
                let q = 1 - i;
                let measured = was_primary && self.follows_with_state(q, i);
                if measured {
                    let bound_ns = failover_bound_ns(self.options, &self.nodes[q].clock);
                    let (status_p, status_q) = (
                        self.nodes[i].node.as_ref().map(|n| n.status()),
                        self.nodes[q].node.as_ref().map(|n| n.status()),
                    );
                    let quiet_switchover = status_p.as_ref().is_some_and(|s| s.switchover.is_none())
                        && status_q.as_ref().is_some_and(|s| s.switchover.is_none());
                    let links_healthy = self.network.all_up() && self.frozen_count == 0 && self.faults_active == 0;
                    let io_clean = self.io_loss_ppm[q] == 0 && self.io_bursts.is_empty();
                    let quiet_plan = !self.plan.any_within(self.now, self.now + bound_ns, Some(index))
                        && self.now + bound_ns < self.options.safety_ms * ms;
                    let clean = quiet_switchover
                        && status_q.is_some_and(|s| s.sync == SyncState::InSync)
                        && links_healthy
                        && io_clean
                        && quiet_plan;
                    self.checker
                        .on_primary_crash(self.now, i, epoch, clean.then_some(bound_ns));
                    if clean {
                        self.schedule(self.now + bound_ns + 1, Event::FailoverDeadline);
                    }
                }
                self.say(format_args!(
                    "FAULT crash node {i} (was {:?}, failover {})",
                    self.role(i),
                    if measured { "measured" } else { "not measured" }
                ));
                self.crash(i);
                if let Some(after_ns) = restart_after_ns {
                    self.schedule(self.now + after_ns, Event::Start { node: i, restart: true });
                }
            }
            Fault::Freeze {
                kind: FreezeKind::DuringJoin,
                duration_ns,
                ..
            } => {
                self.say(format_args!("FAULT armed: freeze the primary when a node joins it"));
                self.freeze_on_join = Some(duration_ns);
            }
            Fault::Freeze {
                target,
                kind,
                duration_ns,
            } => {
                let Some(i) = self.resolve(target) else {
                    self.stats.faults.skipped += 1;
                    return;
                };
                let f = &mut self.stats.faults;
                f.pause += 1;
                match kind {
                    FreezeKind::Short => f.pause_short += 1,
                    FreezeKind::FalseDeath => f.pause_false_death += 1,
                    FreezeKind::Long | FreezeKind::DuringJoin => f.pause_long += 1,
                }
                let c = &self.options.config;
                // Watched only from a calm state: links lossless, nothing frozen, and no
                // fault for a window + probe before (the backup may still be probing).
                let calm_ns = (c.detection_window_ms + c.probe_timeout_ms) * ms;
                if kind == FreezeKind::FalseDeath
                    && self.role(i) == Some(Role::Primary)
                    && self.follows_with_state(1 - i, i)
                    && self.network.is_lossless()
                    && self.frozen_count == 0
                    && self.faults_active == 0
                    && self.now >= trouble_before + calm_ns
                {
                    let watch_ns = duration_ns + (c.detection_window_ms + c.probe_timeout_ms) * ms;
                    let quiet = !self.plan.any_within(self.now, self.now + watch_ns, Some(index))
                        && self.now + watch_ns < self.options.safety_ms * ms;
                    if quiet {
                        self.checker.expect_no_takeover(1 - i, self.now, self.now + watch_ns);
                    }
                }
                self.say(format_args!(
                    "FAULT freeze node {i} ({:?}) for {:.3} ms ({kind:?})",
                    self.role(i),
                    duration_ns as f64 / 1e6
                ));
                let until = self.now + duration_ns;
                let sn = &mut self.nodes[i];
                match sn.frozen_until {
                    Some(t) => sn.frozen_until = Some(t.max(until)),
                    None => {
                        sn.frozen_until = Some(until);
                        self.frozen_count += 1;
                    }
                }
                if let Some(key) = sn.timer.take() {
                    self.queue.remove(&key);
                }
                self.schedule(until, Event::Thaw { node: i });
            }
            Fault::Partition { from, duration_ns } => {
                self.stats.faults.partition += 1;
                if from.is_some() {
                    self.stats.faults.partition_asym += 1;
                }
                self.say(format_args!(
                    "FAULT partition {} for {:.3} ms",
                    match from {
                        None => "both directions".to_string(),
                        Some(i) => format!("from node {i}"),
                    },
                    duration_ns as f64 / 1e6
                ));
                self.set_partition(from, true);
                self.faults_active += 1;
                self.schedule(self.now + duration_ns, Event::FaultEnd(FaultEnd::Partition { from }));
            }
            Fault::LinkCut { link, duration_ns } => {
                self.stats.faults.link_cut += 1;
                self.say(format_args!(
                    "FAULT cut link {link} for {:.3} ms",
                    duration_ns as f64 / 1e6
                ));
                for from in 0..2 {
                    self.network.set_cut(link, from, true);
                }
                self.faults_active += 1;
                self.schedule(self.now + duration_ns, Event::FaultEnd(FaultEnd::LinkCut { link }));
            }
            Fault::LossBurst {
                link_mask,
                loss_ppm,
                duration_ns,
            } => {
                self.stats.faults.loss += 1;
                let id = self.burst_id_next;
                self.burst_id_next += 1;
                self.say(format_args!(
                    "FAULT loss {loss_ppm} ppm on links {link_mask:#b} for {:.3} ms",
                    duration_ns as f64 / 1e6
                ));
                self.network.burst_begin(id, link_mask, loss_ppm);
                self.faults_active += 1;
                self.schedule(self.now + duration_ns, Event::FaultEnd(FaultEnd::LossBurst { id }));
            }
            Fault::IoLoss {
                node,
                loss_ppm,
                duration_ns,
            } => {
                self.stats.faults.io_loss += 1;
                let id = self.burst_id_next;
                self.burst_id_next += 1;
                self.say(format_args!(
                    "FAULT I/O loss {loss_ppm} ppm to node {node} for {:.3} ms",
                    duration_ns as f64 / 1e6
                ));
                self.io_bursts.insert(id, (node, loss_ppm));
                self.faults_active += 1;
                self.schedule(self.now + duration_ns, Event::FaultEnd(FaultEnd::IoLoss { id }));
            }
            Fault::Switchover { target } => {
                let Some(i) = self.resolve(target) else {
                    self.stats.faults.skipped += 1;
                    return;
                };
                if self.nodes[i].frozen_until.is_some() {
                    // A frozen node's console does not answer either.
                    self.stats.faults.skipped += 1;
                    return;
                }
                self.stats.faults.switchover += 1;
                let during =
                    self.faults_active > 0 || self.frozen_count > 0 || self.nodes.iter().any(|n| n.node.is_none());
                if during {
                    self.stats.faults.switchover_during_fault += 1;
                }
                let sn = &mut self.nodes[i];
                let Some(n) = sn.node.as_mut() else { return };
                let local = sn.clock.local(self.now);
                let epoch_before = n.epoch();
                let role = n.role();
                let reply = n.handle_command(local, Command::Switchover);
                if let CommandReply::Refused(_) = reply {
                    self.stats.switchovers_refused += 1;
                }
                if reply == CommandReply::Started && !during {
                    self.watch_switchover();
                }
                self.say(format_args!(
                    "FAULT switchover command to node {i} ({role:?}): {reply:?}"
                ));
                self.drain(i, epoch_before);
            }
        }
    }

    fn set_partition(&mut self, from: Option<usize>, cut: bool) {
        for link in 0..self.network.links() {
            for direction in 0..2 {
                if from.is_none_or(|f| f == direction) {
                    self.network.set_cut(link, direction, cut);
                }
            }
        }
    }

    fn end_fault(&mut self, end: FaultEnd) {
        self.faults_active = self.faults_active.saturating_sub(1);
        self.last_trouble_at = self.now;
        match end {
            FaultEnd::Partition { from } => self.set_partition(from, false),
            FaultEnd::LinkCut { link } => {
                for from in 0..2 {
                    self.network.set_cut(link, from, false);
                }
            }
            FaultEnd::LossBurst { id } => self.network.burst_end(id),
            FaultEnd::IoLoss { id } => {
                self.io_bursts.remove(&id);
            }
        }
        self.say(format_args!("fault ends: {end:?}"));
    }

    fn crash(&mut self, i: usize) {
        let sn = &mut self.nodes[i];
        if sn.node.take().is_none() {
            return;
        }
        if sn.frozen_until.take().is_some() {
            self.frozen_count -= 1;
        }
        sn.buffered.clear();
        if let Some(key) = sn.timer.take() {
            self.queue.remove(&key);
        }
        self.checker.on_crash(self.now, i);
        self.trace_u64(200 + i as u64);
    }

    fn thaw(&mut self, i: usize) {
        let sn = &mut self.nodes[i];
        if sn.frozen_until.take().is_none() {
            return;
        }
        self.frozen_count -= 1;
        self.last_trouble_at = self.now;
        self.say(format_args!("node {i}: thaws"));
        // What the sockets buffered arrives first, in order; then the overdue timer.
        let buffered = core::mem::take(&mut self.nodes[i].buffered);
        for event in buffered {
            self.schedule(self.now, event);
        }
        self.reschedule_timer(i);
    }

    /// A switchover just asked for: from a calm state (one primary, a backup in sync with
    /// it, links all up, clean I/O), it must complete cleanly — unless another
    /// fault comes first (the watch ends there).
    fn watch_switchover(&mut self) {
        let ms = NANOS_PER_MS;
        let c = &self.options.config;
        let watch_ns = (c.switchover_timeout_ms + c.detection_window_ms + c.probe_timeout_ms) * ms;
        let Some(p) = (0..2).find(|&i| self.role(i) == Some(Role::Primary)) else {
            return;
        };
        let in_sync = self.follows_with_state(1 - p, p)
            && self.nodes[1 - p]
                .node
                .as_ref()
                .is_some_and(|n| n.status().sync == SyncState::InSync);
        let calm = in_sync && self.network.all_up() && self.io_loss_ppm == [0, 0] && self.io_bursts.is_empty();
        if calm && self.now + watch_ns < self.options.safety_ms * ms {
            self.checker.expect_clean_switchover(self.now, self.now + watch_ns);
        }
    }

    /// Node `i` restarts next to a healthy primary it can hear, from a calm state: it must
    /// join that primary, not lead. Unless it has seen a higher epoch than that
    /// primary's: the sink fences that primary off, and leading is what gets outputs out.
    fn watch_restart(&mut self, i: usize) {
        let ms = NANOS_PER_MS;
        let c = &self.options.config;
        let watch_ns = (c.startup_wait_ms + c.detection_window_ms + c.probe_timeout_ms) * ms;
        let Some(primary_epoch) = self.nodes[1 - i]
            .node
            .as_ref()
            .filter(|n| n.role() == Role::Primary)
            .map(|n| n.epoch())
        else {
            return;
        };
        let calm = self.network.is_lossless() && self.frozen_count == 0 && self.faults_active == 0;
        let quiet = !self.plan.any_within(self.now, self.now + watch_ns, None)
            && self.now + watch_ns < self.options.safety_ms * ms;
        if calm && quiet && self.nodes[i].disk_epoch <= primary_epoch {
            self.checker.expect_no_lead(i, self.now, self.now + watch_ns);
        }
    }

    fn heal(&mut self) {
        self.say(format_args!("HEAL: liveness phase"));
        self.phase = Phase::Liveness { heal_at: self.now };
        self.network.heal();
        self.io_loss_ppm = [0, 0];
        self.io_bursts.clear();
        self.faults_active = 0;
        for i in 0..2 {
            self.thaw(i);
        }
        for i in 0..2 {
            if self.nodes[i].node.is_none() {
                self.stats.faults.restart_heal += 1;
                self.start(i, true);
            }
        }
        self.checker.drop_pending_failovers();
        let deadline = self.now + liveness_bound_ns(self.options);
        self.schedule(deadline, Event::LivenessDeadline);
    }

    fn finish(&mut self) {
        self.checker.check_failover_deadlines(self.now);
        self.checker.check_switchovers(self.now);
        self.checker.finish(self.now, &self.sink.accepted);
        let s = &mut self.stats;
        s.exceptions = self.checker.exceptions;
        s.failover_ns = self.checker.failover_ns.clone();
        s.failovers_checked = self.checker.failovers_checked;
        s.false_deaths_watched = self.checker.false_deaths_watched;
        s.restarts_watched = self.checker.restarts_watched;
        s.switchovers_watched = self.checker.switchovers_watched;
        s.accepted = self.sink.accepted.len() as u64;
        s.duplicates = self.sink.duplicates;
        s.stale = self.sink.stale;
        s.too_old = self.sink.too_old;
        s.lapses = self.sink.lapses;
        s.network = self.network.stats;
        let mut previous: Option<u64> = None;
        for &(frame, index) in self.sink.accepted.keys() {
            if index != 0 {
                continue;
            }
            if let Some(p) = previous {
                let gap = frame.saturating_sub(p + 1);
                s.frames_without_output += gap;
                s.output_gap_frames_max = s.output_gap_frames_max.max(gap);
            }
            previous = Some(frame);
        }
        let accepted = s.accepted;
        self.trace_u64(accepted);
        self.trace_u64(self.checker.violation_count());
    }

    fn into_report(self, summary: String) -> SeedReport {
        let violations = self.checker.violations().to_vec();
        let violation_count = self.checker.violation_count();
        let failure = if violation_count == 0 {
            None
        } else if violations.iter().any(|v| v.invariant.is_safety()) {
            Some(FailureKind::Safety)
        } else {
            Some(FailureKind::Liveness)
        };
        SeedReport {
            seed: self.options.seed,
            summary,
            failure,
            violations,
            violation_count,
            panic: None,
            trace_hash: self.trace.finish(),
            stats: self.stats,
            profile: self.options.profile.name(),
        }
    }
}

/// A short description of a sync-link message, for `--trace-wire`.
fn describe_body(body: &Body) -> String {
    match body {
        Body::Heartbeat { .. } => "Heartbeat".to_string(),
        Body::Chunk { id, index, bytes } => format!("Chunk {{ id: {id}, index: {index}, bytes: {} }}", bytes.len()),
        Body::FrameData { commit, payload } => {
            format!("FrameData {{ commit: {commit:?}, payload: {} }}", payload.len())
        }
        other => format!("{other:?}"),
    }
}

/// Every seed's results combined, in seed order.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// The first seed.
    pub seed_first: u64,
    /// Seeds run.
    pub seeds: u64,
    /// Seeds that failed, with their kind (kept in order; all of them).
    pub failed: Vec<(u64, FailureKind)>,
    /// Violations over all seeds.
    pub violations: u64,
    /// Takeovers.
    pub failovers: u64,
    /// Completed planned switchovers.
    pub switchovers: u64,
    /// Faults injected.
    pub faults: FaultCounts,
    /// Every failover time, ns.
    pub failover_ns: Vec<Nanos>,
    /// Failover times per profile, ns.
    pub failover_ns_by_profile: BTreeMap<&'static str, Vec<Nanos>>,
    /// Failovers checked against their bound.
    pub failovers_checked: u64,
    /// Convergence times after healing, ns.
    pub liveness_ns: Vec<Nanos>,
    /// Allowed differences and losses.
    pub exceptions: Exceptions,
    /// False deaths (probes answered).
    pub false_deaths: u64,
    /// False-death freezes watched.
    pub false_deaths_watched: u64,
    /// Restarts next to a healthy primary watched.
    pub restarts_watched: u64,
    /// Calm switchovers watched.
    pub switchovers_watched: u64,
    /// Alarms.
    pub alarms_input_lost: u64,
    /// Divergence alarms.
    pub alarms_divergence: u64,
    /// Frames sent by the sources.
    pub frames: u64,
    /// Outputs accepted by the sinks.
    pub accepted: u64,
    /// Duplicates dropped by the sinks.
    pub duplicates: u64,
    /// Stale outputs rejected by the sinks.
    pub stale: u64,
    /// Outputs rejected by the sinks as older than their dedup window.
    pub too_old: u64,
    /// Epoch leases lapsed.
    pub lapses: u64,
    /// Events processed.
    pub events: u64,
    /// State transfers completed.
    pub transfers: u64,
    /// Frames without an accepted output, between each run's first and last.
    pub frames_without_output: u64,
    /// The longest run of frames without an accepted output in any run.
    pub output_gap_frames_max: u64,
    /// Switchover commands refused.
    pub switchovers_refused: u64,
    /// Input handovers started.
    pub input_handovers: u64,
    /// Combined trace hash, folded in seed order.
    pub trace_hash: u64,
    hasher: Fnv64,
}

impl Summary {
    /// An empty summary starting at `seed_first`.
    pub fn new(seed_first: u64) -> Self {
        Summary {
            seed_first,
            hasher: Fnv64::new(),
            ..Summary::default()
        }
    }

    /// Adds the next seed's report; reports must come in seed order.
    pub fn add(&mut self, r: &SeedReport) {
        assert_eq!(
            r.seed,
            self.seed_first.wrapping_add(self.seeds),
            "reports out of seed order"
        );
        self.seeds += 1;
        if let Some(kind) = r.failure {
            self.failed.push((r.seed, kind));
        }
        self.violations += r.violation_count;
        let s = &r.stats;
        self.failovers += s.takeovers;
        self.switchovers += s.switchovers;
        self.faults.add(&s.faults);
        self.failover_ns.extend_from_slice(&s.failover_ns);
        self.failover_ns_by_profile
            .entry(r.profile)
            .or_default()
            .extend_from_slice(&s.failover_ns);
        self.failovers_checked += s.failovers_checked;
        self.liveness_ns.extend(s.liveness_ns);
        let e = &mut self.exceptions;
        e.input_lost += s.exceptions.input_lost;
        e.split_brain += s.exceptions.split_brain;
        e.cold_start += s.exceptions.cold_start;
        e.crash_window += s.exceptions.crash_window;
        e.lost_deposed += s.exceptions.lost_deposed;
        e.lost_orphaned += s.exceptions.lost_orphaned;
        e.lost_crashed += s.exceptions.lost_crashed;
        self.false_deaths += s.false_deaths;
        self.false_deaths_watched += s.false_deaths_watched;
        self.restarts_watched += s.restarts_watched;
        self.switchovers_watched += s.switchovers_watched;
        self.alarms_input_lost += s.alarms_input_lost;
        self.alarms_divergence += s.alarms_divergence;
        self.frames += s.frames;
        self.accepted += s.accepted;
        self.duplicates += s.duplicates;
        self.stale += s.stale;
        self.too_old += s.too_old;
        self.lapses += s.lapses;
        self.events += s.events;
        self.transfers += s.transfers;
        self.frames_without_output += s.frames_without_output;
        self.output_gap_frames_max = self.output_gap_frames_max.max(s.output_gap_frames_max);
        self.switchovers_refused += s.switchovers_refused;
        self.input_handovers += s.input_handovers;
        self.hasher.write_u64(r.seed);
        self.hasher.write_u64(r.trace_hash);
        self.trace_hash = self.hasher.finish();
    }

    /// The exit code: 0 when every seed passed, else the code of the first failing seed.
    pub fn exit_code(&self) -> i32 {
        self.failed.first().map_or(0, |(_, kind)| kind.exit_code())
    }

    /// The summary as one JSON object (the last line of `--json` output).
    pub fn to_json(&self) -> serde_json::Value {
        let ms = |ns: Nanos| (ns as f64 / 1e3).round() / 1e3;
        let quantiles = |values: &[Nanos]| {
            let mut sorted = values.to_vec();
            sorted.sort_unstable();
            let at = |q: f64| -> f64 {
                if sorted.is_empty() {
                    return 0.0;
                }
                let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
                ms(sorted[rank - 1])
            };
            serde_json::json!({
                "count": sorted.len(),
                "p50": at(0.50),
                "p99": at(0.99),
                "max": sorted.last().map_or(0.0, |&v| ms(v)),
            })
        };
        let by_profile: serde_json::Map<String, serde_json::Value> = self
            .failover_ns_by_profile
            .iter()
            .map(|(name, values)| ((*name).to_string(), quantiles(values)))
            .collect();
        let f = &self.faults;
        let e = &self.exceptions;
        serde_json::json!({
            "seeds": self.seeds,
            "seed_first": self.seed_first,
            "violations": self.violations,
            "failed_seeds": self.failed.iter().take(20).map(|(seed, kind)| serde_json::json!({"seed": seed, "kind": kind.name()})).collect::<Vec<_>>(),
            "failovers": self.failovers,
            "switchovers": self.switchovers,
            "faults": {
                "crash": f.crash,
                "restart": f.restart,
                "restart_heal": f.restart_heal,
                "pause": f.pause,
                "pause_short": f.pause_short,
                "pause_false_death": f.pause_false_death,
                "pause_long": f.pause_long,
                "partition": f.partition,
                "partition_asym": f.partition_asym,
                "loss": f.loss,
                "io_loss": f.io_loss,
                "link_cut": f.link_cut,
                "switchover": f.switchover,
                "switchover_during_fault": f.switchover_during_fault,
                "skipped": f.skipped,
            },
            "failover_ms": quantiles(&self.failover_ns),
            "failover_ms_by_profile": by_profile,
            "failovers_checked": self.failovers_checked,
            "liveness_ms": quantiles(&self.liveness_ns),
            "exceptions": {
                "input_lost": e.input_lost,
                "split_brain": e.split_brain,
                "cold_start": e.cold_start,
                "crash_window": e.crash_window,
                "lost_deposed": e.lost_deposed,
                "lost_orphaned": e.lost_orphaned,
                "lost_crashed": e.lost_crashed,
            },
            "false_deaths": self.false_deaths,
            "false_deaths_watched": self.false_deaths_watched,
            "restarts_watched": self.restarts_watched,
            "switchovers_watched": self.switchovers_watched,
            "alarms": {"input_lost": self.alarms_input_lost, "divergence": self.alarms_divergence},
            "switchovers_refused": self.switchovers_refused,
            "input_handovers": self.input_handovers,
            "transfers": self.transfers,
            "frames": self.frames,
            "sink": {
                "accepted": self.accepted,
                "duplicates": self.duplicates,
                "stale": self.stale,
                "too_old": self.too_old,
                "lease_lapses": self.lapses,
                "frames_without_output": self.frames_without_output,
                "output_gap_frames_max": self.output_gap_frames_max,
            },
            "events": self.events,
            "trace_hash": format!("{:016x}", self.trace_hash),
        })
    }
}

/// Runs seeds `first..first + count` on `threads` worker threads (each seed on one
/// thread, deterministic on its own) and hands every report to `on_report` in seed order.
pub fn run_seeds<F, R>(first: u64, count: u64, threads: usize, run: RunConfig, factory: &F, mut on_report: R) -> Summary
where
    F: WorkloadFactory + Sync,
    R: FnMut(&SeedReport),
{
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::mpsc;
    let mut summary = Summary::new(first);
    let next = AtomicU64::new(0);
    let threads = threads.clamp(1, 64);
    std::thread::scope(|scope| {
        // Bounded: a worker waits when the main thread falls this far behind.
        let (tx, rx) = mpsc::sync_channel::<SeedReport>(4 * threads);
        for _ in 0..threads {
            let tx = tx.clone();
            let next = &next;
            scope.spawn(move || loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= count {
                    break;
                }
                let report = run_seed_with(first.wrapping_add(k), run, factory);
                if tx.send(report).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        // Reports arrive out of order; hand them on in seed order.
        let mut pending: BTreeMap<u64, SeedReport> = BTreeMap::new();
        let mut expected = 0u64;
        for report in rx {
            pending.insert(report.seed.wrapping_sub(first), report);
            while let Some(report) = pending.remove(&expected) {
                on_report(&report);
                summary.add(&report);
                expected += 1;
            }
        }
    });
    summary
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runner_same_seed_same_trace_hash() {
        for seed in [0, 1, 7] {
            let a = run_seed(seed, RunConfig::default());
            let b = run_seed(seed, RunConfig::default());
            assert_eq!(a.trace_hash, b.trace_hash, "seed {seed}");
            assert_eq!(a.stats.events, b.stats.events);
            assert_ne!(a.trace_hash, 0);
        }
        assert_ne!(
            run_seed(0, RunConfig::default()).trace_hash,
            run_seed(1, RunConfig::default()).trace_hash
        );
    }

    /// The invariants broken over `seeds` with `mutation` planted.
    fn broken_with(mutation: Mutation, seeds: core::ops::Range<u64>) -> Vec<Invariant> {
        let run = RunConfig {
            mutation,
            ..RunConfig::default()
        };
        let mut broken: Vec<Invariant> = seeds
            .flat_map(|seed| run_seed(seed, run).violations.into_iter().map(|v| v.invariant))
            .collect();
        broken.sort();
        broken.dedup();
        broken
    }

    #[test]
    fn runner_first_200_seeds_pass() {
        let factory = super::super::app::TestWorkloadFactory;
        let mut failed = Vec::new();
        let summary = run_seeds(0, 200, 2, RunConfig::default(), &factory, |r| {
            if r.failure.is_some() {
                failed.push((r.seed, r.violations.first().map(|v| v.detail.clone()), r.panic.clone()));
            }
        });
        assert_eq!(
            failed,
            vec![],
            "replay with: cargo run --release -p twinloop-sim -- dst --seed <seed>"
        );
        assert_eq!(summary.violations, 0);
        assert!(summary.failovers > 0 && summary.switchovers > 0);
    }

    #[test]
    fn runner_planted_lost_output_is_caught() {
        assert!(broken_with(Mutation::DropEmit, 0..4).contains(&Invariant::NothingLost));
    }

    #[test]
    fn runner_planted_corrupt_output_is_caught() {
        assert!(broken_with(Mutation::CorruptEmit, 0..4).contains(&Invariant::ExactlyOnce));
    }

    #[test]
    fn runner_planted_sink_without_fence_is_caught() {
        assert!(broken_with(Mutation::NoFencing, 0..12).contains(&Invariant::OnePrimaryPerEpoch));
    }

    #[test]
    fn runner_planted_lost_epoch_file_is_caught() {
        assert!(broken_with(Mutation::LoseEpoch, 0..4).contains(&Invariant::OnePrimaryPerEpoch));
    }

    #[test]
    fn runner_planted_digest_divergence_is_caught() {
        assert!(broken_with(Mutation::CorruptDigest, 0..4).contains(&Invariant::DigestAgreement));
    }

    #[test]
    fn runner_planted_cold_start_is_caught() {
        // Seed 1: a node restarts, joins, its primary freezes; with `allow_cold_start` it
        // leads from a cold start beside the frozen holder.
        assert!(broken_with(Mutation::ColdStart, 0..2).contains(&Invariant::StateContinuity));
    }

    #[test]
    fn runner_thawed_node_reading_stale_heartbeats_does_not_cold_start() {
        // Seed 5572: node 1 thaws next to a peer whose buffered heartbeats, from before
        // it took state, said it had none; taken at their word, node 1 led cold beside it.
        let report = run_seed(5572, RunConfig::default());
        assert_eq!(report.violations, vec![], "invariant 8 must hold");
    }

    #[test]
    fn runner_panic_is_caught_and_reported() {
        struct Exploding;
        impl WorkloadFactory for Exploding {
            type Workload = super::super::app::TestWorkload;
            fn make(&self, _options: &Options) -> Self::Workload {
                panic!("planted panic");
            }
        }
        let report = run_seed_with(3, RunConfig::default(), &Exploding);
        assert_eq!(report.failure, Some(FailureKind::Panic));
        assert_eq!(report.panic.as_deref(), Some("planted panic"));
    }

    #[test]
    fn runner_summary_is_independent_of_thread_count() {
        let factory = super::super::app::TestWorkloadFactory;
        let one = run_seeds(100, 6, 1, RunConfig::default(), &factory, |_| {});
        let two = run_seeds(100, 6, 2, RunConfig::default(), &factory, |_| {});
        assert_eq!(one.trace_hash, two.trace_hash);
        assert_eq!(one.to_json(), two.to_json());
    }
}
