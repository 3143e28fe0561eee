//! The world of one run: the nodes' hosts, the sync links, the I/O source, the sink, the
//! checker, and the one event queue ordered by `(true time, sequence)` that drives them.
//! [`Sim::run`] pops events in order and [`Sim::handle`] routes each to its handler.

use super::*;
use crate::dst::app::{Recorder, Step, Workload};
use crate::dst::checker::{Checker, Invariant};
use crate::dst::clock::{Clock, Nanos, NANOS_PER_MS, NANOS_PER_US};
use crate::dst::faults::{DivergeKind, FaultPlan};
use crate::dst::network::{Delivery, Network};
use crate::dst::options::Options;
use crate::dst::sink::Sink;
use std::collections::{BTreeMap, VecDeque};
use twinloop::digest::Fnv64;
use twinloop::{Action, Node, Rng, Transition};

#[derive(Debug)]
pub(super) enum Event {
    /// The I/O source sends the next frame.
    SourceTick,
    /// A frame reaches a node: number `number` of source session `session`, the
    /// source's `sent`-th frame of the run (its payload's key: after a restart the pair's
    /// frame for a source number is the primary's to decide, not the world's).
    Frame {
        node: usize,
        sent: u64,
        session: u16,
        number: u64,
    },
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
    /// The operator, who waited `Options::rejoin_delay_ms`, says `rejoin` to node `node`
    /// (the incarnation that raised `ColderPrimary`).
    Rejoin { node: usize, incarnation: u32 },
    /// A node's background epoch writes due by now become durable.
    Durable { node: usize },
    /// The safety phase ends: heal everything.
    Heal,
    /// A clean failover's deadline.
    FailoverDeadline,
    /// The liveness bound.
    LivenessDeadline,
    /// The end of the run.
    End,
    /// An ack datagram from the sink reaches a node's outputs socket (`--acks`).
    /// `path`: still on the ack path (its arrival not yet judged; false once a frozen
    /// node's socket buffered it).
    Ack { to: usize, bytes: Vec<u8>, path: bool },
    /// An output a node emitted reaches the sink over the output path (issue 22).
    OutputArrive { node: usize, output: twinloop::Output },
    /// A datagram the attacker injected reaches a node (`attack.rs`).
    Inject {
        to: usize,
        link: u8,
        kind: crate::dst::attacker::Kind,
        bytes: Vec<u8>,
        /// When the datagram it copies was sent.
        sent_at: Nanos,
    },
}

#[derive(Debug, Clone, Copy)]
pub(super) enum FaultEnd {
    Partition { from: Option<usize> },
    LinkCut { link: usize },
    LossBurst { id: u64 },
    IoLoss { id: u64 },
    ReleaseLoss,
    OutputOutage { acks: bool },
    SourceRestart,
    IoStall,
    CommitHole,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    Safety,
    Liveness { heal_at: Nanos },
    Settling { accepted_at_convergence: usize },
    Done,
}

pub(super) struct SimNode<A: twinloop::App> {
    pub(super) node: Option<Node<Recorder<A>>>,
    pub(super) incarnation: u32,
    pub(super) clock: Clock,
    pub(super) frozen_until: Option<Nanos>,
    pub(super) buffered: VecDeque<Event>,
    pub(super) timer: Option<(Nanos, u64)>,
    /// The epoch on "disk": survives crashes.
    pub(super) disk_epoch: u64,
    /// The epoch reserved on "disk".
    pub(super) disk_reserved: u64,
    /// Background epoch writes (`PersistEpochLater`) not durable yet, in the order asked:
    /// `(true time it becomes durable, epoch)`, the times non-decreasing (one writer, one
    /// write after another). A crash loses them.
    pub(super) disk_later: VecDeque<(Nanos, u64)>,
    pub(super) seeds: Rng,
}

pub(super) struct Sim<'a, W: Workload> {
    pub(super) options: &'a Options,
    pub(super) workload: &'a W,
    pub(super) run: RunConfig,
    pub(super) now: Nanos,
    pub(super) queue: BTreeMap<(Nanos, u64), Event>,
    pub(super) seq: u64,
    pub(super) nodes: [SimNode<W::App>; 2],
    pub(super) network: Network,
    pub(super) io_rng: Rng,
    pub(super) io_loss_ppm: [u32; 2],
    pub(super) io_bursts: BTreeMap<u64, (usize, u32)>,
    /// The last crash the plan fired: when, and which node (`Fault::RestartCut` finds
    /// its node by it).
    pub(super) last_crash: Option<(Nanos, usize)>,
    /// By node: a cut armed for its restart, and how long it lasts (`Fault::RestartCut`).
    pub(super) restart_cut: [Option<Nanos>; 2],
    /// By node: frames its input still loses in a row (`Fault::IoGap`).
    pub(super) io_gap: [u64; 2],
    /// By node: until when its input is stalled (`Fault::IoStall`; 0: not).
    pub(super) io_stall_until: [Nanos; 2],
    /// `Fault::CommitHole` under way: the frame whose commit is lost (`None` until the
    /// primary's next commit names it).
    pub(super) commit_hole: Option<Option<u64>>,
    /// `Fault::ReleaseLoss` faults active now (they nest): every `SwitchRelease` sent
    /// meanwhile is lost on every link.
    pub(super) release_loss: u32,
    /// By node: the true instant of its last timer event and how many timer events in a
    /// row it had there (the timer bound, [`TIMER_FIRES_PER_INSTANT_MAX`]).
    pub(super) timer_fires: [(Nanos, u64); 2],
    /// The run stopped before its end (an event budget, a livelock, a node's timer
    /// spinning, an empty queue): the verdicts that need the run's end are not given.
    pub(super) stuck: bool,
    pub(super) burst_id_next: u64,
    /// The source's next frame in the run's sending order: its payload's key.
    pub(super) frame_next: u64,
    /// The source's session now (`Fault::SourceRestart` starts the next one).
    pub(super) source_session: u16,
    /// The number the source gives its next frame within its session.
    pub(super) source_number: u64,
    /// A restart under way: the source sends nothing until then, and numbers from the
    /// second field in the next session after.
    pub(super) source_silent: Option<(Nanos, u64)>,
    /// Until when the last restart of the source counts as active (a switchover asked
    /// for before is not asked for with clean I/O).
    pub(super) source_active_until: Nanos,
    /// By node: its source mapping, restarts followed and frames in hand (the highest run
    /// or taken from the source) after its last event, for invariants 22 and 23.
    pub(super) source_seen: [super::source::SourceSeen; 2],
    /// A source map delivered to a node in this event that it must hold after it
    /// (invariant 22; set by the datagram's arrival, taken by the drain).
    pub(super) source_map_taken: Option<twinloop::node::SourceMap>,
    pub(super) sink: Sink,
    pub(super) checker: Checker,
    pub(super) plan: FaultPlan,
    pub(super) phase: Phase,
    pub(super) trace: Fnv64,
    pub(super) stats: RunStats,
    /// Timed faults active now (for "switchover during faults").
    pub(super) faults_active: u32,
    /// The last time a fault began or ended (switchovers aside).
    pub(super) last_trouble_at: Nanos,
    pub(super) frozen_count: u32,
    pub(super) events_at_instant: u64,
    pub(super) instant: Nanos,
    // Scratch buffers, kept to avoid allocating per event.
    pub(super) deliveries: Vec<Delivery>,
    pub(super) steps: Vec<Step>,
    pub(super) attributed: Vec<(u64, Step)>,
    pub(super) transitions: Vec<Transition>,
    pub(super) input_lost: Vec<u64>,
    pub(super) payload: Vec<u8>,
    pub(super) actions: Vec<Action>,
    /// By node: raised `ColderPrimary`; the simulated operator says `rejoin`.
    pub(super) rejoin_pending: [bool; 2],
    /// By node: when it became primary, on its own clock (the `at` of its transition),
    /// for the input handover's hold; `None` while it is not primary.
    pub(super) primary_since: [Option<twinloop::time::Instant>; 2],
    /// An armed `FreezeKind::DuringJoin`: its duration.
    pub(super) freeze_on_join: Option<Nanos>,
    /// The node to freeze now that its peer joins it.
    pub(super) freeze_now: Option<usize>,
    /// Draws how long each background epoch write takes to become durable.
    pub(super) disk_rng: Rng,
    /// An armed divergence fault: the node and what it perturbs at its next frame.
    pub(super) diverge_armed: Option<(usize, DivergeKind)>,
    /// By node: when it became primary, in true time (`None` while it is not).
    pub(super) primary_true_since: [Option<Nanos>; 2],
    /// Invariant 24's watch: the primary whose input died in a calm pair, and the true
    /// time by which it must have handed over (`runner/handover.rs`).
    pub(super) handover_watch: Option<(usize, Nanos)>,
    /// The attacker on the links, when the seed draws one.
    pub(super) attacker: Option<crate::dst::attacker::Attacker>,
    /// By node, by link: what its replay window took (`attack.rs`).
    pub(super) windows: [Vec<super::attack::WindowModel>; 2],
    pub(super) injections: Vec<crate::dst::attacker::Injection>,
    /// While a judged injection is handled: the effects it must not have.
    pub(super) attack_effects: Option<Vec<String>>,
    /// By node: the session its current incarnation authenticates with (keyed runs).
    pub(super) sessions: [u64; 2],
    /// The plant network from the nodes to the sink (issue 22).
    pub(super) output_path: crate::dst::network::OutputPath,
    /// The plant network from the sink back to the nodes, for acknowledgements: the same
    /// fault model (cut with the output path by an outage that says `acks`).
    pub(super) ack_path: crate::dst::network::OutputPath,
    /// Scratch: arrival times the output path drew.
    pub(super) path_arrivals: Vec<Nanos>,
    /// The HMI writer (`hmi.rs`).
    pub(super) hmi: super::hmi::HmiWriter,
    /// `--acked`: by node, its release status's `unguarded` count after its last event.
    pub(super) acked_unguarded: [u64; 2],
    /// By node: its `events_dropped` after its last event (invariant 16).
    pub(super) events_dropped_seen: [u64; 2],
    /// `--acked`: the node whose actions are applied released an output unguarded in
    /// this event (invariant 17).
    pub(super) emit_unguarded: bool,
    /// `--acked`: by node, a primary's held outputs after its last event: `(epoch, first
    /// frame held, last frame run)`.
    pub(super) acked_held_range: [Option<(u64, u64, u64)>; 2],
}

impl<'a, W: Workload> Sim<'a, W> {
    pub(super) fn new(options: &'a Options, workload: &'a W, run: RunConfig) -> Self {
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
            disk_later: VecDeque::new(),
            seeds: rng.fork(),
        };
        let nodes = [make(0, &mut rng), make(1, &mut rng)];
        // Forked after every other concern: their draws stay what they were.
        let disk_rng = rng.fork();
        // Forked after the disk's: a seed without an attacker keeps every draw.
        let attacker = options.attacker.map(|params| {
            crate::dst::attacker::Attacker::new(params, options.auth_key.is_some(), options.links.len(), rng.fork())
        });
        let windows = core::array::from_fn(|_| vec![super::attack::WindowModel::default(); options.links.len()]);
        // Forked last: a seed with a perfect output path draws nothing from them.
        let output_path = crate::dst::network::OutputPath::new(options.output_path, rng.fork());
        let ack_path = crate::dst::network::OutputPath::new(options.ack_path, rng.fork());
        let mut checker = Checker::new();
        checker.on_output_path(
            !options.output_path.is_perfect(),
            super::liveness::level_heal_bound_ns(options),
        );
        // Forked last: every other draw stays what it was.
        let hmi = super::hmi::HmiWriter::new(rng.fork());
        // Forked after the HMI writer's: the attacker's tampering with chunks (unkeyed
        // seeds that draw it), so that every other draw stays what it was.
        let tamper_rng = rng.fork();
        let attacker = attacker.map(|attacker| attacker.with_tamper(tamper_rng));
        // Forked after the tampering's: whether the HMI writer is busy (every other draw
        // stays what it was).
        let hmi = hmi.busy(rng.fork());
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
            io_gap: [0, 0],
            io_stall_until: [0, 0],
            commit_hole: None,
            last_crash: None,
            restart_cut: [None; 2],
            release_loss: 0,
            timer_fires: [(0, 0); 2],
            stuck: false,
            burst_id_next: 1,
            frame_next: 1,
            source_session: 0,
            source_number: 1,
            source_silent: None,
            source_active_until: 0,
            source_seen: Default::default(),
            source_map_taken: None,
            // A window longer than any run (as the harness's gateway keeps): with exactly
            // the nodes' ring (`frames_buffered`), seeds 8972 and 11693 of 2000..11999
            // rejected committed outputs as too old after a takeover by a node whose input
            // had fallen behind — lost at the sink, not by the nodes. PROTOCOL.md, "The
            // dedup window", says so; the checker judges the nodes here.
            sink: Sink::new(
                run.sink_window_frames
                    .unwrap_or(SINK_WINDOW_FRAMES)
                    .max(options.config.frames_buffered),
                options.sink_lease_ms.map(|ms| ms * NANOS_PER_MS),
            )
            .expect("frames_buffered is within a gateway's window"),
            checker,
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
            primary_since: [None; 2],
            freeze_on_join: None,
            freeze_now: None,
            disk_rng,
            diverge_armed: None,
            primary_true_since: [None; 2],
            handover_watch: None,
            attacker,
            windows,
            injections: Vec::new(),
            attack_effects: None,
            sessions: [0; 2],
            output_path,
            ack_path,
            path_arrivals: Vec::with_capacity(2),
            hmi,
            acked_unguarded: [0; 2],
            events_dropped_seen: [0; 2],
            emit_unguarded: false,
            acked_held_range: [None; 2],
        };
        sim.sink.acks = run.acks;
        sim.checker.acks = run.acks;
        sim.checker.acked = run.acked;
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

    pub(super) fn schedule(&mut self, at: Nanos, event: Event) -> (Nanos, u64) {
        self.seq += 1;
        let key = (at.max(self.now), self.seq);
        self.queue.insert(key, event);
        key
    }

    pub(super) fn run(&mut self) {
        while self.phase != Phase::Done {
            let Some(((at, _), event)) = self.queue.pop_first() else {
                self.checker
                    .violation(Invariant::Liveness, self.now, "the event queue ran dry".to_string());
                self.stuck = true;
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
                self.stuck = true;
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
                    self.stuck = true;
                    break;
                }
            } else {
                self.instant = at;
                self.events_at_instant = 0;
            }
            if let Event::Timer { node } = event {
                if self.timer_spins(node) {
                    self.stuck = true;
                    break;
                }
            }
            self.trace_u64(at);
            self.handle(event);
            self.check_converged();
            self.checker.check_level_staleness(self.now);
            self.check_handover_watch();
        }
        self.finish();
    }

    pub(super) fn handle(&mut self, event: Event) {
        match event {
            Event::SourceTick => self.source_tick(),
            Event::Frame {
                node,
                sent,
                session,
                number,
            } => {
                self.trace_u64(1 + node as u64);
                if self.defer_if_frozen(
                    node,
                    Event::Frame {
                        node,
                        sent,
                        session,
                        number,
                    },
                ) {
                    return;
                }
                let sn = &mut self.nodes[node];
                let Some(n) = sn.node.as_mut() else { return };
                let local = sn.clock.local(self.now);
                let epoch_before = n.epoch();
                self.workload.payload(sent, &mut self.payload);
                if self.diverge_armed == Some((node, DivergeKind::FrameCopy)) {
                    // The node's copy only: after the I/O datagram's checksum passed.
                    if let Some(byte) = self.payload.first_mut() {
                        *byte ^= 0x80;
                    }
                }
                let rejections_before = n.status().rejections;
                n.handle_source_frame(local, session, number, &self.payload);
                // Taken into the ring when no rejection was counted (invariant 18), under
                // the pair's frame the node's source mapping gives it.
                let status = n.status();
                let pair = status
                    .source
                    .filter(|m| m.session == session)
                    .and_then(|m| m.pair_frame(number));
                if status.rejections == rejections_before {
                    if let Some(pair) = pair {
                        self.checker.on_frame_held(node, n.config().frames_buffered, pair);
                    }
                }
                if self.diverge_armed == Some((node, DivergeKind::FrameCopy)) {
                    self.diverge_fired(node, pair.unwrap_or(number), epoch_before);
                }
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
                let refused_before = self.refused_count(to);
                let offered = self.commit_offered(to, &bytes);
                let acks_offered = self.acks_offered(to, &bytes);
                let released_offered = self.released_offered(to, &bytes);
                let mutated = match &offered {
                    Some(_) if self.run.mutation == Mutation::IgnoreSentMask => self.without_sent_mask(&bytes),
                    _ => None,
                };
                let replayed_before = self.replayed_count(to);
                let map_offered = self.source_map_offered(to, &bytes);
                self.note_commit_seen(to, &bytes);
                let sn = &mut self.nodes[to];
                let Some(n) = sn.node.as_mut() else { return };
                let local = sn.clock.local(self.now);
                let epoch_before = n.epoch();
                n.handle_message(local, link, mutated.as_deref().unwrap_or(&bytes));
                let refused = refused_before.is_some_and(|before| self.refused_count(to) != Some(before));
                if self.run.acked && !refused {
                    if let Ok(envelope) = twinloop::wire::decode(&bytes, None) {
                        self.checker.on_acked_heard(self.now, to, &envelope.header);
                    }
                }
                self.note_genuine(to, &bytes, refused);
                self.source_map_handled(to, map_offered, refused);
                if let Some(offered) = offered {
                    self.commit_received(to, offered);
                }
                if let Some(ids) = acks_offered.filter(|_| !refused && self.replayed_count(to) == replayed_before) {
                    self.checker.on_acks_held(to, &ids);
                }
                if let Some(frame) = released_offered.filter(|_| !refused && self.replayed_count(to) == replayed_before)
                {
                    let node_frame = self.nodes[to].node.as_ref().map_or(0, |n| n.frame());
                    self.checker.on_released_heard(to, frame, node_frame);
                }
                self.note_delivered(to, link, &bytes, replayed_before);
                self.drain(to, epoch_before);
                self.checker.on_probe_event_end(to);
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
                    // Before the watch: a restart behind a cut is not a calm one.
                    self.restart_cut_begin(node);
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
            Event::Rejoin { node, incarnation } => {
                if self.nodes[node].incarnation == incarnation
                    && !self.defer_if_frozen(node, Event::Rejoin { node, incarnation })
                {
                    self.operator_rejoin(node);
                }
            }
            Event::Durable { node } => self.disk_settle(node),
            Event::Heal => self.heal(),
            Event::FailoverDeadline => self.checker.check_failover_deadlines(self.now),
            Event::LivenessDeadline => self.liveness_deadline(),
            Event::End => self.settle_end(),
            Event::Ack { to, bytes, path } => {
                if path && !self.ack_path.arrive() {
                    return;
                }
                if self.nodes[to].node.is_none()
                    || self.defer_if_frozen(
                        to,
                        Event::Ack {
                            to,
                            bytes: bytes.clone(),
                            path: false,
                        },
                    )
                {
                    return;
                }
                let sn = &mut self.nodes[to];
                let Some(n) = sn.node.as_mut() else { return };
                let local = sn.clock.local(self.now);
                let epoch_before = n.epoch();
                // What the world delivered, whatever the node makes of it (invariant 16).
                if let Ok(ack) = twinloop::io_protocol::decode_ack(&bytes, None) {
                    self.checker
                        .on_ack_delivered(self.now, to, ack.session, ack.seq, &ack.ids);
                }
                n.handle_ack_datagram(local, 0, &bytes);
                self.drain(to, epoch_before);
            }
            Event::Inject {
                to,
                link,
                kind,
                bytes,
                sent_at,
            } => self.deliver_injection(to, link, kind, bytes, sent_at),
            Event::OutputArrive { node, output } => self.output_arrive(node, output),
        }
    }

    /// The timer bound: node `node`'s timer fires now. Counts its timer events in a row at
    /// this true instant (any other instant starts the count again: a fast clock maps
    /// two or three local instants to one true nanosecond, so a few in a row are
    /// legitimate); past [`TIMER_FIRES_PER_INSTANT_MAX`] the node asks to be woken at an
    /// instant that has come, again and again — a real node would spin its CPU there —
    /// and the run stops with a liveness violation naming the node, the instant and the
    /// deadline it asks for (true: the run is over).
    pub(super) fn timer_spins(&mut self, node: usize) -> bool {
        let now = self.now;
        let fires = &mut self.timer_fires[node];
        if fires.0 == now {
            fires.1 += 1;
        } else {
            *fires = (now, 1);
        }
        if fires.1 <= TIMER_FIRES_PER_INSTANT_MAX {
            return false;
        }
        let sn = &self.nodes[node];
        let local = sn.clock.local(now);
        let asks = match sn.node.as_ref().and_then(|n| n.poll_timeout()) {
            Some(deadline) => format!(
                "it asks to be woken at {} ns on its clock (true {:.6} ms), its clock reading {} ns",
                deadline.as_nanos(),
                sn.clock.true_at(deadline) as f64 / 1e6,
                local.as_nanos()
            ),
            None => "it asks for no deadline now".to_string(),
        };
        let role = sn.node.as_ref().map(|n| (n.role(), n.status().sync));
        self.checker.violation(
            Invariant::Liveness,
            now,
            format!(
                "node {node} ({role:?})'s timer fired more than {TIMER_FIRES_PER_INSTANT_MAX} times in a row at {:.6} ms: a busy loop; {asks}",
                now as f64 / 1e6
            ),
        );
        true
    }

    /// A frozen node's sockets buffer what arrives; returns whether it was buffered.
    pub(super) fn defer_if_frozen(&mut self, node: usize, event: Event) -> bool {
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

    pub(super) fn source_tick(&mut self) {
        self.hmi_tick();
        let next = self.now + self.options.cycle_ms * NANOS_PER_MS;
        if let Some((until, first_number)) = self.source_silent {
            if self.now < until {
                // Restarting: nothing sent.
                self.schedule(next, Event::SourceTick);
                return;
            }
            self.source_silent = None;
            self.source_session = self.source_session.wrapping_add(1);
            self.source_number = first_number;
        }
        let sent = self.frame_next;
        self.frame_next += 1;
        let (session, number) = (self.source_session, self.source_number);
        self.source_number += 1;
        self.stats.frames += 1;
        self.workload.payload(sent, &mut self.payload);
        self.checker
            .on_source_sent(sent, session, twinloop::digest::fnv64(&self.payload));
        let io = self.options.io;
        for node in 0..2 {
            if self.io_gap[node] > 0 {
                self.io_gap[node] -= 1;
                continue;
            }
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
                // A stalled input delivers at the stall's end.
                self.schedule(
                    self.now.max(self.io_stall_until[node]) + delay_us * NANOS_PER_US,
                    Event::Frame {
                        node,
                        sent,
                        session,
                        number,
                    },
                );
            }
        }
        // After the frames (as always: their order at one instant stays).
        self.schedule(next, Event::SourceTick);
    }
}
