//! Test support: a deterministic test application and a two-node [`Pair`] driven by a
//! virtual clock over in-memory links, in the manner of quinn-proto's test `Pair`.
//!
//! Available to this crate's tests and, with the `testing` feature, to other crates.

use crate::app::{restore_postcard, snapshot_postcard, App, AppIdentity, Frame, Outbox, SnapshotError};
use crate::config::{Config, LINKS_MAX};
use crate::digest::{fnv64, Fnv64};
use crate::gateway::{Decision, Gateway};
use crate::node::{Action, Alarm, Boot, Command, CommandReply, Node, Output, Role, Transition};
use crate::rng::Rng;
use crate::time::Instant;
use crate::wire::WireBuf;
use core::time::Duration;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::vec::Vec;

/// A small deterministic control program with accumulated state and optional ballast, so
/// that a wrong takeover or a missed frame shows in its digest and its outputs.
#[derive(Debug, Clone)]
pub struct TestApp {
    state: TestState,
    /// Test hook, not part of the state: at this frame, produce a different output once
    /// (an injected divergence).
    pub diverge_at_frame: Option<u64>,
    /// Test hook: when set, `(frame, digest)` after every step is appended here.
    pub history: Option<Vec<(u64, u64)>>,
    /// Test hook: the identity the node announces to its peer (a misconfiguration is a
    /// different one on one node).
    pub identity: AppIdentity,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct TestState {
    frames_run: u64,
    accumulator: u64,
    ballast_sum: u64,
    ballast: Vec<u8>,
}

impl TestApp {
    /// A test app whose snapshot is at least `ballast_bytes` large.
    pub fn new(ballast_bytes: usize) -> Self {
        TestApp {
            state: TestState {
                frames_run: 0,
                accumulator: 0,
                ballast_sum: 0,
                ballast: std::vec![0; ballast_bytes],
            },
            diverge_at_frame: None,
            history: None,
            identity: AppIdentity {
                name: "twinloop test app",
                version: 1,
                settings_digest: 0,
            },
        }
    }

    /// Same, recording its digest after every frame in `history`.
    pub fn recording(ballast_bytes: usize) -> Self {
        let mut app = Self::new(ballast_bytes);
        app.history = Some(Vec::with_capacity(1 << 16));
        app
    }

    /// Frames run since the initial state (carried over by snapshots).
    pub fn frames_run(&self) -> u64 {
        self.state.frames_run
    }

    /// The deterministic input payload the test I/O source sends for `frame`.
    pub fn payload_for(frame: u64) -> [u8; 16] {
        let mut payload = [0u8; 16];
        payload[..8].copy_from_slice(&frame.to_le_bytes());
        payload[8..].copy_from_slice(&fnv64(&frame.to_le_bytes()).to_le_bytes());
        payload
    }
}

impl App for TestApp {
    fn step(&mut self, frame: Frame<'_>, outbox: &mut Outbox) {
        let s = &mut self.state;
        s.frames_run += 1;
        s.accumulator = s.accumulator.wrapping_mul(31).wrapping_add(fnv64(frame.payload));
        if !s.ballast.is_empty() {
            let i = (frame.number % s.ballast.len() as u64) as usize;
            let old = s.ballast[i];
            let new = old.wrapping_add(frame.payload.first().copied().unwrap_or(1));
            s.ballast[i] = new;
            s.ballast_sum = s.ballast_sum.wrapping_sub(u64::from(old)).wrapping_add(u64::from(new));
        }
        let mut content = [0u8; 16];
        content[..8].copy_from_slice(&frame.number.to_le_bytes());
        content[8..].copy_from_slice(&s.accumulator.to_le_bytes());
        if self.diverge_at_frame == Some(frame.number) {
            content[15] ^= 0xFF;
            self.diverge_at_frame = None;
        }
        let _ = outbox.push(&content);
        if frame.number % 3 == 0 {
            let _ = outbox.push(&content[8..]);
        }
        let digest = self.digest();
        if let Some(history) = &mut self.history {
            history.push((frame.number, digest));
        }
    }

    fn snapshot(&self, buf: &mut [u8]) -> Result<usize, SnapshotError> {
        snapshot_postcard(&self.state, buf)
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<(), SnapshotError> {
        self.state = restore_postcard(bytes)?;
        Ok(())
    }

    fn identity(&self) -> AppIdentity {
        self.identity
    }

    fn digest(&self) -> u64 {
        let mut h = Fnv64::new();
        h.write_u64(self.state.frames_run);
        h.write_u64(self.state.accumulator);
        h.write_u64(self.state.ballast_sum);
        h.write_u64(self.state.ballast.len() as u64);
        h.finish()
    }
}

/// The dedup window of the tests' [`Sink`], in frames: wider than any test's run, so that
/// `duplicate_depth_max` measures how deep copies reach rather than being cut by the window.
pub const SINK_WINDOW_FRAMES: u64 = 1 << 16;

/// The actuator sink of the tests: a [`Gateway`] (docs/PROTOCOL.md, "What a sink must
/// do"; strict fencing, no lease, a window of [`SINK_WINDOW_FRAMES`]) decides, and this
/// keeps the record the tests look at (every accepted output, the counters).
#[derive(Debug, Clone)]
pub struct Sink {
    /// The gateway that decides.
    pub gateway: Gateway,
    /// Accepted outputs by `(frame, index)`: `(epoch, payload)`.
    pub accepted: BTreeMap<(u64, u8), (u64, Vec<u8>)>,
    /// Every output seen on the wire, before dedup.
    pub raw: u64,
    /// Copies dropped as duplicates of an accepted id, conflicting ones included.
    pub duplicates: u64,
    /// Copies with the id of an accepted output but different content (must stay 0).
    pub conflicts: u64,
    /// Outputs rejected for carrying an epoch below the fence.
    pub stale_rejected: u64,
    /// Outputs rejected as older than the dedup window.
    pub too_old: u64,
    /// The gateway's fence: the highest epoch on an output not rejected.
    pub epoch_max: u64,
    /// The highest frame accepted.
    pub frame_max: u64,
    /// The most frames a duplicate lay below `frame_max` when it arrived: the dedup window
    /// a gateway would have needed (docs/PROTOCOL.md, "The dedup window").
    pub duplicate_depth_max: u64,
    /// Levels refused as older than their key's newest ([`Decision::Superseded`]).
    pub superseded: u64,
}

impl Default for Sink {
    fn default() -> Self {
        Sink::around(Gateway::new(SINK_WINDOW_FRAMES, None).expect("a window in range"))
    }
}

impl Sink {
    /// An empty record around `gateway`.
    pub fn around(gateway: Gateway) -> Self {
        Sink {
            gateway,
            accepted: BTreeMap::new(),
            raw: 0,
            duplicates: 0,
            conflicts: 0,
            stale_rejected: 0,
            too_old: 0,
            epoch_max: 0,
            frame_max: 0,
            duplicate_depth_max: 0,
            superseded: 0,
        }
    }

    /// Offers one output that arrived at `now`; returns the gateway's decision.
    pub fn offer(&mut self, now: Instant, output: &Output) -> Decision {
        self.raw += 1;
        let depth = self.gateway.frame_max().saturating_sub(output.frame);
        let decision = self.gateway.offer_output(now, output);
        match decision {
            Decision::Accepted => {
                self.accepted
                    .insert((output.frame, output.index), (output.epoch, output.payload.to_vec()));
            }
            Decision::Duplicate | Decision::Conflict => {
                self.duplicates += 1;
                self.conflicts += u64::from(decision == Decision::Conflict);
                self.duplicate_depth_max = self.duplicate_depth_max.max(depth);
            }
            Decision::Stale => self.stale_rejected += 1,
            Decision::TooOld => self.too_old += 1,
            Decision::Invalid => {}
            Decision::Superseded => self.superseded += 1,
        }
        self.epoch_max = self.gateway.fence();
        self.frame_max = self.gateway.frame_max();
        decision
    }
}

struct Packet {
    to: usize,
    link: u8,
    bytes: WireBuf,
}

/// `(frame, state digest)` after each frame an application ran.
pub type DigestHistory = Vec<(u64, u64)>;

/// An application that records its state digest after each frame it runs, for
/// [`Pair::digest_disagreements`].
pub trait HasHistory {
    /// `(frame, state digest)` after each frame run, when recording.
    fn history(&self) -> Option<&Vec<(u64, u64)>>;
}

impl HasHistory for TestApp {
    fn history(&self) -> Option<&Vec<(u64, u64)>> {
        self.history.as_ref()
    }
}

/// How long a [`Pair`]'s background epoch writes take to become durable by default: the
/// middle of the DST's common range (sim/src/dst/runner/disk.rs draws 0 to 20 ms, and in
/// one write of ten a slow disk's 20 to 500 ms), fixed so that a test's course does not
/// depend on a draw.
pub const DISK_LATER_DELAY_DEFAULT: Duration = Duration::from_millis(10);

/// Background epoch writes one node of a [`Pair`] may have in flight; more is a runaway
/// core (a panic), not a queue that grows. The DST's bound (`DISK_LATER_MAX` there).
pub const DISK_LATER_MAX: usize = 1024;

/// What node `i` of a [`Pair`] is started with: its application comes from the pair's
/// program factory, given this.
#[derive(Debug, Clone, Copy)]
pub struct PairNode {
    /// 0 or 1 (node id 1 or 2).
    pub index: usize,
    /// The ballast a [`TestApp`] carries (`Pair::new`); other programs ignore it.
    pub ballast: usize,
    /// The identity the node's application is to announce ([`Pair::identities`]); a
    /// program that cannot be told which to announce ignores it.
    pub identity: AppIdentity,
}

/// Two nodes on in-memory links with a virtual clock. Frames come from a test I/O source
/// every `cycle`; outputs go to a [`Sink`].
///
/// `Pair` (of the runtime's own [`TestApp`]) is made by [`Pair::new`]; a pair of any
/// program by [`Pair::of`], with a factory for the program and the payload of each frame:
/// the same machinery, for a control engineer's own program (docs/PROGRAM.md).
///
/// Each node has a state file with the DST's durability model (sim/src/dst/runner/disk.rs,
/// fixed delays instead of drawn ones): blocking epoch writes are durable before the
/// node's next action, background ones after [`Pair::disk_later_delay`], in the order
/// asked; [`Pair::crash`] loses those not durable yet, and [`Pair::start`] boots from the
/// file. An output under an epoch the file does not hold (persisted or reserved) panics.
pub struct Pair<A: App = TestApp> {
    /// The virtual clock.
    pub now: Instant,
    /// The two nodes; `None` when crashed.
    pub nodes: [Option<Node<A>>; 2],
    /// Their configurations.
    pub configs: [Config; 2],
    /// One-way latency of every link.
    pub latency: Duration,
    /// The I/O source's cycle.
    pub cycle: Duration,
    /// The next frame the source sends, and when.
    pub frame_next: u64,
    frame_next_at: Instant,
    /// False: the source is stopped.
    pub source_on: bool,
    /// The source session its frames carry (0: none declared); a test restarts the source
    /// by setting a new one and `frame_next` back to 1.
    pub source_session: u16,
    /// Links cut (both directions).
    pub cut: [bool; LINKS_MAX],
    /// A frozen node receives nothing and times out nothing until then.
    pub frozen_until: [Instant; 2],
    /// Frames not delivered to node `i` (I/O loss on that node).
    pub frame_loss: [BTreeMap<u64, ()>; 2],
    /// Frames delivered to node `i` with a corrupted payload.
    pub frame_corrupt: [BTreeMap<u64, ()>; 2],
    /// Sync messages for which this returns true are dropped (sender index, message).
    pub drop_if: Option<fn(usize, &crate::wire::Envelope) -> bool>,
    /// Frames a primary did not run the moment they arrived (a delayed cycle), by node.
    pub late_frames: [u64; 2],
    packets: BTreeMap<(Instant, u64), Packet>,
    packet_seq: u64,
    /// The actuator sink.
    pub sink: Sink,
    /// Every transition, by node.
    pub transitions: Vec<(usize, Transition)>,
    /// Every alarm, by node.
    pub alarms: Vec<(usize, Alarm)>,
    /// Every notice, by node.
    pub notices: Vec<(usize, crate::node::Notice)>,
    /// Every operator write answered, by node.
    pub hmi_done: Vec<(usize, crate::hmi::HmiWrite, crate::node::HmiOutcome)>,
    /// The epoch each node's state file holds durably: what a restart boots from (a test
    /// may set it before a start, as a state file left by an earlier run).
    pub persisted: [u64; 2],
    /// The reservation each node's state file holds durably.
    pub reserved: [u64; 2],
    /// How long a background epoch write (`PersistEpochLater`) takes to become durable:
    /// [`DISK_LATER_DELAY_DEFAULT`], or zero for every write durable at once. Blocking
    /// writes (`PersistEpoch`, `ReserveEpoch`) are durable before the node's next action,
    /// as the shell blocks on them (see [`Pair::crash`] for what a crash loses).
    pub disk_later_delay: Duration,
    /// By node, in the order asked: background epoch writes not durable yet, with when
    /// they will be (at most [`DISK_LATER_MAX`]).
    pub disk_later: [VecDeque<(Instant, u64)>; 2],
    /// By node: background epoch writes a crash lost before they were durable.
    pub epoch_writes_lost: [u64; 2],
    /// By node, in order: `("reserve" | "persist" | "lead", epoch)` for each such action,
    /// and `("emit", epoch)` for the first output of each epoch.
    pub epoch_log: [Vec<(&'static str, u64)>; 2],
    ballast: usize,
    seeds: Rng,
    /// When set, both nodes authenticate every message with this key.
    pub auth: Option<crate::wire::AuthKey>,
    /// By node, when set: the key that node uses instead of `auth` (`Some(None)`: none),
    /// for the misconfigurations of a key on one side only or different keys.
    pub auth_of: [Option<Option<crate::wire::AuthKey>>; 2],
    /// By node: the identity its application announces (the same on both by default).
    pub identities: [AppIdentity; 2],
    /// Sessions handed to started nodes (increasing, as a wall clock would).
    session_next: u64,
    /// Every datagram either node transmitted, when `capture` is on: `(from, link, bytes)`.
    pub captured: Vec<(usize, u8, WireBuf)>,
    /// Capture transmitted datagrams into `captured`.
    pub capture: bool,
    /// Digest histories of crashed incarnations, kept for the digest check.
    pub retired_histories: Vec<Vec<(u64, u64)>>,
    /// Makes the application of a node that starts.
    make_app: Box<dyn Fn(PairNode) -> A>,
    /// The payload the test source sends with frame `n`.
    payload_of: Box<dyn Fn(u64) -> Vec<u8>>,
    /// Takes a crashed node's digest history, when its application keeps one.
    retire: fn(&mut A) -> Option<DigestHistory>,
    /// Outputs lost on the way to the sink: the next `n` copies of id `(frame, index)`.
    pub outputs_lost: BTreeMap<(u64, u8), u32>,
    /// When set, every output copy emitted, `(when, node, frame, index)`, lost or not.
    pub emit_log: Option<Vec<(Instant, usize, u64, u8)>>,
    /// The sink acknowledges the events it accepts or drops as duplicates, at once, to
    /// the node that sent them (sink 0; `outputs.acks`, issue 22).
    pub sink_acks: bool,
    /// Acks lost on the way back: the next `n` acks of id `(frame, index)`.
    pub acks_lost: BTreeMap<(u64, u8), u32>,
}

impl Pair<TestApp> {
    /// A pair of [`TestApp`] nodes (ids 1 and 2) with `config`, nothing started yet.
    pub fn new(seed: u64, config: Config, ballast: usize) -> Self {
        let mut pair = Pair::of(
            seed,
            config,
            |node: PairNode| {
                let mut app = TestApp::recording(node.ballast);
                app.identity = node.identity;
                app
            },
            |frame| TestApp::payload_for(frame).to_vec(),
        );
        pair.ballast = ballast;
        pair.retire = |app: &mut TestApp| app.history.take();
        pair
    }
}

impl<A: App> Pair<A> {
    /// A pair of nodes (ids 1 and 2) with `config`, nothing started yet, each running the
    /// program `make_app` returns, fed by a test source that sends `payload(n)` with frame
    /// `n` every [`Pair::cycle`].
    pub fn of(
        seed: u64,
        config: Config,
        make_app: impl Fn(PairNode) -> A + 'static,
        payload: impl Fn(u64) -> Vec<u8> + 'static,
    ) -> Self {
        let identity = make_app(PairNode {
            index: 0,
            ballast: 0,
            identity: AppIdentity::default(),
        })
        .identity();
        let mut a = config.clone();
        a.node_id = 1;
        let mut b = config;
        b.node_id = 2;
        Pair {
            now: Instant::from_millis(1),
            nodes: [None, None],
            configs: [a, b],
            latency: Duration::from_micros(50),
            cycle: Duration::from_millis(1),
            frame_next: 1,
            frame_next_at: Instant::from_millis(1),
            source_on: true,
            source_session: 0,
            cut: [false; LINKS_MAX],
            frozen_until: [Instant::ZERO; 2],
            frame_loss: [BTreeMap::new(), BTreeMap::new()],
            frame_corrupt: [BTreeMap::new(), BTreeMap::new()],
            drop_if: None,
            late_frames: [0; 2],
            packets: BTreeMap::new(),
            packet_seq: 0,
            sink: Sink::default(),
            transitions: Vec::new(),
            alarms: Vec::new(),
            notices: Vec::new(),
            hmi_done: Vec::new(),
            persisted: [0; 2],
            reserved: [0; 2],
            disk_later_delay: DISK_LATER_DELAY_DEFAULT,
            disk_later: [VecDeque::new(), VecDeque::new()],
            epoch_writes_lost: [0; 2],
            epoch_log: [Vec::new(), Vec::new()],
            ballast: 0,
            seeds: Rng::new(seed),
            retired_histories: Vec::new(),
            auth: None,
            auth_of: [None, None],
            identities: [identity; 2],
            session_next: 1,
            captured: Vec::new(),
            capture: false,
            make_app: Box::new(make_app),
            payload_of: Box::new(payload),
            retire: |_| None,
            outputs_lost: BTreeMap::new(),
            emit_log: None,
            sink_acks: false,
            acks_lost: BTreeMap::new(),
        }
    }

    /// Starts (or restarts) node `i` now, with its persisted epoch.
    pub fn start(&mut self, i: usize) {
        let seed = self.seeds.next_u64();
        self.start_seeded(i, seed);
    }

    fn boot(&mut self, i: usize, boot: Boot) {
        let app = (self.make_app)(PairNode {
            index: i,
            ballast: self.ballast,
            identity: self.identities[i],
        });
        let mut node = Node::new(self.configs[i].clone(), app, boot).expect("valid config");
        let key = self.auth_of[i].clone().unwrap_or_else(|| self.auth.clone());
        if let Some(key) = &key {
            node = node.with_auth(key.clone(), self.session_next);
            self.session_next += 1;
        }
        self.nodes[i] = Some(node);
        self.drain(i);
    }

    /// Injects a raw datagram into node `i` on `link`, as an attacker on the network would.
    pub fn inject(&mut self, i: usize, link: u8, bytes: &[u8]) {
        let now = self.now;
        if let Some(node) = &mut self.nodes[i] {
            node.handle_message(now, link, bytes);
            self.drain(i);
        }
    }

    /// Gives node `i` a frame from outside the test source (a forged, corrupt or
    /// restarted source), now.
    pub fn inject_frame(&mut self, i: usize, number: u64, payload: &[u8]) {
        let now = self.now;
        if let Some(node) = &mut self.nodes[i] {
            node.handle_frame(now, number, payload);
            self.drain(i);
        }
    }

    /// Starts node `i` with a given random seed (to force nonce ties in tests).
    pub fn start_seeded(&mut self, i: usize, seed: u64) {
        let boot = Boot {
            now: self.now,
            seed,
            epoch_persisted: self.persisted[i],
            epoch_reserved: self.reserved[i],
        };
        self.boot(i, boot);
    }

    /// Kills node `i`: it sends nothing more; what it had in flight still arrives. Its
    /// background epoch writes due by now are durable, the others lost (counted in
    /// [`Pair::epoch_writes_lost`]): a restart boots from what was durable.
    pub fn crash(&mut self, i: usize) {
        self.disk_settle(i);
        self.epoch_writes_lost[i] += self.disk_later[i].len() as u64;
        self.disk_later[i].clear();
        if let Some(mut node) = self.nodes[i].take() {
            if let Some(history) = (self.retire)(node.app_mut()) {
                self.retired_histories.push(history);
            }
        }
    }

    /// Freezes node `i` (SIGSTOP) for `duration`.
    pub fn freeze(&mut self, i: usize, duration: Duration) {
        self.frozen_until[i] = self.now + duration;
    }

    /// The node, when running.
    pub fn node(&self, i: usize) -> &Node<A> {
        self.nodes[i].as_ref().expect("node is running")
    }

    /// The index of the only running primary, if exactly one.
    pub fn primary(&self) -> Option<usize> {
        let primaries: Vec<usize> = (0..2)
            .filter(|&i| self.nodes[i].as_ref().is_some_and(|n| n.role() == Role::Primary))
            .collect();
        (primaries.len() == 1).then(|| primaries[0])
    }

    /// Sends an operator command to node `i`.
    pub fn command(&mut self, i: usize, command: Command) -> CommandReply {
        let now = self.now;
        let reply = self.nodes[i]
            .as_mut()
            .expect("node is running")
            .handle_command(now, command);
        self.drain(i);
        reply
    }

    /// Runs the simulation until `now + duration`.
    pub fn run_for(&mut self, duration: Duration) {
        let until = self.now + duration;
        self.run_until(until, |_| false);
    }

    /// Runs until `done` holds (checked after every event) or `limit` passes.
    /// Returns whether `done` held.
    pub fn run_until(&mut self, limit: Instant, mut done: impl FnMut(&Pair<A>) -> bool) -> bool {
        loop {
            if done(self) {
                return true;
            }
            let Some(t) = self.next_event() else {
                return false;
            };
            if t > limit {
                self.now = limit;
                return done(self);
            }
            self.now = self.now.max(t);
            self.step_once();
        }
    }

    fn next_event(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut consider = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        if self.source_on {
            consider(self.frame_next_at);
        }
        if let Some((&(t, _), _)) = self.packets.first_key_value() {
            consider(t);
        }
        for i in 0..2 {
            if let Some(node) = &self.nodes[i] {
                if let Some(t) = node.poll_timeout() {
                    consider(t.max(self.frozen_until[i]));
                }
            }
            // A write becoming durable is an event of its own, so that `run_until` can
            // wait for it (a freeze does not hold the disk up: the write is the kernel's).
            if let Some(&(t, _)) = self.disk_later[i].front() {
                consider(t);
            }
        }
        next
    }

    /// The background epoch writes of node `i` due by now become durable.
    fn disk_settle(&mut self, i: usize) {
        while let Some(&(at, epoch)) = self.disk_later[i].front() {
            if at > self.now {
                break;
            }
            self.disk_later[i].pop_front();
            self.disk_write(i, epoch);
        }
    }

    /// A blocking write waits for every background write asked before it (one writer,
    /// in the order asked, as the shell's state writer).
    fn disk_flush(&mut self, i: usize) {
        while let Some((_, epoch)) = self.disk_later[i].pop_front() {
            self.disk_write(i, epoch);
        }
    }

    fn disk_write(&mut self, i: usize, epoch: u64) {
        // The file never goes backwards (the shell merges what it writes).
        self.persisted[i] = self.persisted[i].max(epoch);
    }

    /// `PersistEpochLater`: durable after [`Pair::disk_later_delay`], not before the
    /// writes asked before it.
    fn persist_later(&mut self, i: usize, epoch: u64) {
        if self.disk_later_delay.is_zero() && self.disk_later[i].is_empty() {
            self.disk_write(i, epoch);
            return;
        }
        assert!(
            self.disk_later[i].len() < DISK_LATER_MAX,
            "node {i} has more than {DISK_LATER_MAX} background epoch writes in flight"
        );
        let after = self.disk_later[i].back().map_or(self.now, |&(at, _)| at);
        let at = (self.now + self.disk_later_delay).max(after);
        self.disk_later[i].push_back((at, epoch));
    }

    fn step_once(&mut self) {
        let now = self.now;
        for i in 0..2 {
            self.disk_settle(i);
        }
        if self.source_on && self.frame_next_at <= now {
            let frame = self.frame_next;
            self.frame_next += 1;
            self.frame_next_at = self.frame_next_at + self.cycle;
            let payload = (self.payload_of)(frame);
            for i in 0..2 {
                if self.frame_loss[i].contains_key(&frame) {
                    continue;
                }
                if self.frozen_until[i] > now {
                    // The socket buffers it; it arrives when the node thaws.
                    self.deliver_frame_later(i, frame, self.frozen_until[i]);
                    continue;
                }
                self.give_frame(i, frame, &payload);
            }
            return;
        }
        if let Some(entry) = self.packets.first_entry() {
            if entry.key().0 <= now {
                let packet = entry.remove();
                self.deliver(packet);
                return;
            }
        }
        for i in 0..2 {
            if self.frozen_until[i] > now {
                continue;
            }
            if let Some(node) = &mut self.nodes[i] {
                if node.poll_timeout().is_some_and(|t| t <= now) {
                    node.handle_timeout(now);
                    self.drain(i);
                }
            }
        }
    }

    fn give_frame(&mut self, i: usize, frame: u64, payload: &[u8]) {
        let now = self.now;
        let mut bytes = payload.to_vec();
        if self.frame_corrupt[i].contains_key(&frame) {
            bytes[0] ^= 0x55;
        }
        if let Some(node) = &mut self.nodes[i] {
            node.handle_source_frame(now, self.source_session, frame, &bytes);
            if node.role() == Role::Primary && node.frame() < frame && node.status().switchover.is_none() {
                self.late_frames[i] += 1;
            }
            self.drain(i);
        }
    }

    fn deliver_frame_later(&mut self, i: usize, frame: u64, at: Instant) {
        // Frames are modelled as packets on a pseudo-link 255 to keep one queue.
        let mut bytes = WireBuf::new();
        let _ = bytes.extend_from_slice(&frame.to_le_bytes());
        self.packet_seq += 1;
        self.packets.insert(
            (at, self.packet_seq),
            Packet {
                to: i,
                link: u8::MAX,
                bytes,
            },
        );
    }

    fn deliver(&mut self, packet: Packet) {
        let now = self.now;
        let i = packet.to;
        if self.frozen_until[i] > now {
            let at = self.frozen_until[i];
            self.packet_seq += 1;
            self.packets.insert((at, self.packet_seq), packet);
            return;
        }
        if self.nodes[i].is_none() {
            return;
        }
        if packet.link == u8::MAX {
            let mut number = [0u8; 8];
            number.copy_from_slice(&packet.bytes[..8]);
            let frame = u64::from_le_bytes(number);
            self.give_frame(i, frame, &(self.payload_of)(frame));
            return;
        }
        if self.cut[usize::from(packet.link)] {
            return;
        }
        if let Some(node) = &mut self.nodes[i] {
            node.handle_message(now, packet.link, &packet.bytes);
        }
        self.drain(i);
    }

    /// Drains node `i`'s actions into the links, the sink and the logs.
    pub fn drain(&mut self, i: usize) {
        let now = self.now;
        let mut acks: Vec<(u64, u8)> = Vec::new();
        while let Some(action) = self.nodes[i].as_mut().and_then(|node| node.poll_action()) {
            match action {
                Action::Transmit { link, bytes, .. } => {
                    if self.capture {
                        self.captured.push((i, link, bytes.clone()));
                    }
                    if self.cut[usize::from(link)] {
                        continue;
                    }
                    if let (Some(filter), Ok(envelope)) = (self.drop_if, crate::wire::decode(&bytes, None)) {
                        if filter(i, &envelope) {
                            continue;
                        }
                    }
                    self.packet_seq += 1;
                    self.packets
                        .insert((now + self.latency, self.packet_seq), Packet { to: 1 - i, link, bytes });
                }
                Action::Emit(output) => {
                    // The DST's invariant 1 (checker/fencing.rs): an output under an epoch
                    // a restart would not start above lets a sink follow an epoch this
                    // node may lead again, or lead below.
                    let durable = self.persisted[i].max(self.reserved[i]);
                    assert!(
                        output.epoch <= durable,
                        "node {i} emitted frame {} under epoch {:#x} before it was durable (state file: persisted {:#x}, reserved {:#x}): the core must persist an epoch with a blocking write (PersistEpoch) or lead a reservation before its outputs",
                        output.frame,
                        output.epoch,
                        self.persisted[i],
                        self.reserved[i]
                    );
                    if !self.epoch_log[i].contains(&("emit", output.epoch)) {
                        self.epoch_log[i].push(("emit", output.epoch));
                    }
                    if let Some(log) = self.emit_log.as_mut() {
                        log.push((now, i, output.frame, output.index));
                    }
                    if let Some(lost) = self.outputs_lost.get_mut(&(output.frame, output.index)) {
                        if *lost > 0 {
                            *lost -= 1;
                            continue;
                        }
                    }
                    let decision = self.sink.offer(now, &output);
                    if self.sink_acks
                        && output.kind == crate::app::OutputKind::Event
                        && matches!(decision, Decision::Accepted | Decision::Duplicate | Decision::Conflict)
                    {
                        let id = (output.frame, output.index);
                        match self.acks_lost.get_mut(&id) {
                            Some(lost) if *lost > 0 => *lost -= 1,
                            _ => acks.push(id),
                        }
                    }
                }
                Action::PersistEpoch(epoch) => {
                    self.epoch_log[i].push(("persist", epoch));
                    self.disk_flush(i);
                    self.disk_write(i, epoch);
                }
                Action::PersistEpochLater(epoch) => {
                    self.epoch_log[i].push(("persist", epoch));
                    self.persist_later(i, epoch);
                }
                Action::ReserveEpoch(epoch) => {
                    self.epoch_log[i].push(("reserve", epoch));
                    self.disk_flush(i);
                    self.reserved[i] = epoch;
                }
                Action::Transition(t) => {
                    if t.role == Role::Primary {
                        self.epoch_log[i].push(("lead", t.epoch));
                    }
                    self.transitions.push((i, t));
                }
                Action::Alarm(a) => self.alarms.push((i, a)),
                Action::Notice(n) => self.notices.push((i, n)),
                Action::HmiWriteDone { write, outcome } => self.hmi_done.push((i, write, outcome)),
                Action::CommitHeld { .. } => {}
            }
        }
        if !acks.is_empty() {
            if let Some(node) = &mut self.nodes[i] {
                for ids in acks.chunks(crate::io_protocol::ACK_IDS_MAX) {
                    node.handle_ack(now, 0, ids);
                }
            }
            self.drain(i);
        }
    }

    /// Every `(frame, digest)` recorded by any incarnation of any node, checked for
    /// agreement: returns the frames where two records disagree, and how many frames
    /// were recorded by more than one node.
    pub fn digest_disagreements(&self) -> (Vec<u64>, u64)
    where
        A: HasHistory,
    {
        let mut by_frame: BTreeMap<u64, (u64, u32)> = BTreeMap::new();
        let mut bad = Vec::new();
        let live = self.nodes.iter().flatten().filter_map(|n| n.app().history());
        for history in self.retired_histories.iter().chain(live) {
            for &(frame, digest) in history {
                let entry = by_frame.entry(frame).or_insert((digest, 0));
                if entry.0 != digest {
                    bad.push(frame);
                }
                entry.1 += 1;
            }
        }
        let shared = by_frame.values().filter(|(_, n)| *n > 1).count() as u64;
        (bad, shared)
    }

    /// The outputs a reference run of the same app produces for `frames`, in order, as
    /// `(frame, index) → payload`, starting from the initial state at `first`.
    pub fn reference_outputs(&self, first: u64, last: u64) -> BTreeMap<(u64, u8), Vec<u8>> {
        let mut app = (self.make_app)(PairNode {
            index: 0,
            ballast: self.ballast,
            identity: self.identities[0],
        });
        let mut outbox = Outbox::new();
        let mut expected = BTreeMap::new();
        for number in first..=last {
            outbox.clear();
            let payload = (self.payload_of)(number);
            app.step(
                Frame {
                    number,
                    payload: &payload,
                },
                &mut outbox,
            );
            for (index, output) in outbox.as_slice().iter().enumerate() {
                expected.insert((number, index as u8), output.to_vec());
            }
        }
        expected
    }
}

/// A port on 127.0.0.1 free for both UDP and TCP, taken from 20000..32000, below the
/// kernel's ephemeral range (`ip_local_port_range`, 32768 and up by default), and held
/// by the returned sockets until they are dropped. Tests that start node processes drop
/// them just before the nodes bind: a port taken with `bind(":0")` and released could be
/// handed by the kernel to any other socket a parallel test opens meanwhile ("Address
/// already in use" in a node's start); one from this range is never handed out that way,
/// and this process's own reservations do not repeat one another.
pub fn reserve_port() -> (std::net::UdpSocket, std::net::TcpListener, u16) {
    use core::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    // Processes start apart (a test binary at a time, but a developer may run two).
    let start = std::process::id().wrapping_mul(2_654_435_761) % SPAN;
    for _ in 0..SPAN {
        let k = NEXT.fetch_add(1, Ordering::Relaxed);
        // 7 is prime to SPAN: every port of the range once before any repeats.
        let port = (LOW + (start + k.wrapping_mul(7)) % SPAN) as u16;
        let Ok(udp) = std::net::UdpSocket::bind(("127.0.0.1", port)) else {
            continue;
        };
        let Ok(tcp) = std::net::TcpListener::bind(("127.0.0.1", port)) else {
            continue;
        };
        return (udp, tcp, port);
    }
    panic!("no free port in 20000..32000 on 127.0.0.1");
}

/// Ports on 127.0.0.1 from [`reserve_port`], held until the pool is released or dropped:
/// the one pool of the tests and the process harness. A test takes every port its nodes
/// need, writes their configuration files, then releases the pool just before it starts
/// them.
#[derive(Debug, Default)]
pub struct PortPool {
    held: Vec<(std::net::UdpSocket, std::net::TcpListener)>,
}

impl PortPool {
    /// An empty pool.
    pub fn new() -> PortPool {
        PortPool::default()
    }

    /// One port, free for UDP and TCP, held by the pool.
    pub fn take(&mut self) -> u16 {
        let (udp, tcp, port) = reserve_port();
        self.held.push((udp, tcp));
        port
    }

    /// The ports of one node with two sync links.
    pub fn node(&mut self) -> NodePorts {
        NodePorts {
            frames: self.take(),
            links: [[self.take(), self.take()], [self.take(), self.take()]],
            console: self.take(),
        }
    }

    /// Frees every port, for the nodes to bind.
    pub fn release(self) {}
}

/// The ports of one test node with two sync links.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodePorts {
    /// `[frames] bind`.
    pub frames: u16,
    /// Per link: control (`bind`), bulk (`bulk_bind`).
    pub links: [[u16; 2]; 2],
    /// `[console] bind`.
    pub console: u16,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_pool_node_ports_distinct_and_held_until_released() {
        let mut pool = PortPool::new();
        let ports = [pool.node(), pool.node()];
        let mut all: Vec<u16> = ports
            .iter()
            .flat_map(|p| {
                [
                    p.frames,
                    p.links[0][0],
                    p.links[0][1],
                    p.links[1][0],
                    p.links[1][1],
                    p.console,
                ]
            })
            .collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 12, "{ports:?}");
        assert!(std::net::UdpSocket::bind(("127.0.0.1", ports[0].frames)).is_err());
        pool.release();
        assert!(std::net::UdpSocket::bind(("127.0.0.1", ports[0].frames)).is_ok());
    }

    fn output(epoch: u64, frame: u64, index: u8, byte: u8) -> Output {
        Output {
            epoch,
            frame,
            index,
            kind: crate::app::OutputKind::Event,
            payload: crate::app::OutputPayload::from_slice(&[byte]).unwrap_or_default(),
        }
    }

    #[test]
    fn sink_duplicate_with_higher_epoch_fences_the_old_primary() {
        let mut sink = Sink::default();
        let now = Instant::ZERO;
        // The old primary (epoch 0x101) delivered frames 10 and 11.
        sink.offer(now, &output(0x101, 10, 0, 1));
        sink.offer(now, &output(0x101, 11, 0, 2));
        // The new primary (0x202) replays frame 11: a copy, dropped, but its epoch counts.
        assert_eq!(sink.offer(now, &output(0x202, 11, 0, 2)), Decision::Duplicate);
        assert_eq!((sink.duplicates, sink.epoch_max), (1, 0x202));
        // The old primary, still running, sends frame 12: rejected as deposed.
        assert_eq!(sink.offer(now, &output(0x101, 12, 0, 3)), Decision::Stale);
        assert_eq!(sink.stale_rejected, 1);
        assert!(!sink.accepted.contains_key(&(12, 0)));
        sink.offer(now, &output(0x202, 12, 0, 3));
        assert_eq!(sink.accepted[&(12, 0)].0, 0x202);
    }

    /// The pair's emit check: an output under an epoch its node's state file does not
    /// hold (here the file lost behind the core's back) is a core bug, caught at once.
    #[test]
    #[should_panic(expected = "before it was durable")]
    fn pair_emit_under_an_epoch_not_durable_panics() {
        let mut p = Pair::new(7, Config::fast(), 0);
        p.start(0);
        p.run_for(Duration::from_millis(20));
        assert!(!p.sink.accepted.is_empty(), "no output yet");
        p.persisted[0] = 0;
        p.run_for(Duration::from_millis(20));
    }

    #[test]
    fn sink_records_what_its_gateway_decides() {
        let mut sink = Sink::around(Gateway::new(4, None).unwrap());
        let now = Instant::ZERO;
        for frame in 1..=10 {
            assert_eq!(sink.offer(now, &output(0x101, frame, 0, 1)), Decision::Accepted);
        }
        assert_eq!(sink.offer(now, &output(0x101, 8, 0, 1)), Decision::Duplicate);
        assert_eq!(sink.offer(now, &output(0x101, 9, 0, 7)), Decision::Conflict);
        assert_eq!(sink.offer(now, &output(0x101, 6, 0, 1)), Decision::TooOld);
        assert_eq!(sink.offer(now, &output(0x101, 11, 16, 1)), Decision::Invalid);
        assert_eq!(
            (
                sink.raw,
                sink.duplicates,
                sink.conflicts,
                sink.too_old,
                sink.duplicate_depth_max
            ),
            (14, 2, 1, 1, 2)
        );
        assert_eq!((sink.accepted.len(), sink.frame_max), (10, 10));
        assert_eq!(sink.gateway.counters().offered, sink.raw);
    }
}
