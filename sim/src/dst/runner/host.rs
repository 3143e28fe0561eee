//! Node hosting: starting a node from what its disk holds, draining its actions into
//! the network, the sink and the checkers, its timer, crashes and thaws, and queries on
//! the nodes the fault plan resolves its targets with.

use super::trace::describe_body;
use super::world::{Event, Phase, Sim};
use super::*;
use crate::dst::app::{Recorder, Workload};
use crate::dst::checker::attribute_steps;
use crate::dst::clock::{Nanos, NANOS_PER_MS};
use crate::dst::faults::Target;
use crate::dst::sink::Verdict;
use twinloop::node::Rejections;
use twinloop::wire::{self, AuthKey, Body, Commit, CommitKind, Envelope, WireRole};
use twinloop::{Action, Alarm, Boot, Node, Notice, Reason, Role, SyncState};

/// A commit delivered to a backup, before it handled it (see [`Sim::commit_offered`]).
pub(super) struct CommitOffered {
    epoch: u64,
    commit: Commit,
    rejections: Rejections,
}

impl<'a, W: Workload> Sim<'a, W> {
    pub(super) fn start(&mut self, i: usize, restart: bool) {
        if self.nodes[i].node.is_some() {
            return;
        }
        let mut config = self.options.node_config(i);
        if self.run.mutation == Mutation::ColdStart {
            config.allow_cold_start = true;
        }
        if self.run.acks {
            // Re-sends well within a run's settling, silence alarms only for a long cut.
            config.ack_sinks = 1;
            config.event_retry_ms = 10;
            config.event_retry_max_ms = 100;
            config.ack_silence_ms = 2000;
        }
        if self.run.mutation == Mutation::RefreshNeverFires {
            config.level_refresh_ms = 0;
        }
        if restart {
            self.last_trouble_at = self.now;
        }
        // A new node counts its unguarded outputs from 0 (invariant 17).
        self.acked_unguarded[i] = 0;
        self.checker.on_acked_start(i);
        // Its queue of events starts empty (invariant 16).
        self.events_dropped_seen[i] = 0;
        self.checker.on_acks_start(i);
        self.primary_since[i] = None;
        // A new node's tenure as primary begins at its own first transition to it.
        self.primary_true_since[i] = None;
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
            self.sessions[i] = self.now + 1;
        }
        let epoch_before = node.epoch();
        sn.node = Some(node);
        let incarnation = sn.incarnation;
        let disk = sn.disk_epoch.max(sn.disk_reserved);
        self.checker.on_start(i, incarnation);
        self.checker.on_boot(i, disk);
        self.checker.forget_restored(i);
        self.source_start(i);
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
    pub(super) fn drain(&mut self, i: usize, epoch_before: u64) {
        let now = self.now;
        self.transitions.clear();
        self.input_lost.clear();
        // Every action first, then the steps they came with: an output is checked against
        // what the application produced, which must be known when the output is.
        if let Some(node) = self.nodes[i].node.as_ref().filter(|_| self.run.acked) {
            // Invariant 26: the frames it ran as primary, before their outputs are judged.
            let epoch = (node.role() == Role::Primary).then(|| node.epoch());
            self.checker
                .on_acked_frame(now, i, node.frame(), node.status().input.frame, epoch);
        }
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
        if let Some(node) = self.nodes[i].node.as_ref() {
            // Frames that arrived in this event may have taken the ring slots of commits
            // a new primary inherited and has not decided yet (seed 9221 of 2000..19999).
            if node.role() == Role::Primary {
                let capacity = node.config().frames_buffered;
                self.checker.on_primary_ring(i, capacity, node.status().input.frame);
            }
        }
        let mut fired = None;
        self.note_attack_effects(i, &actions);
        if self.run.acked {
            // Invariant 17: whether this event released an output without its backups'
            // acks (the node's counter rose).
            let unguarded = self.nodes[i]
                .node
                .as_ref()
                .map_or(0, |node| node.outputs_release_status().unguarded);
            self.emit_unguarded = unguarded != self.acked_unguarded[i];
            self.acked_unguarded[i] = unguarded;
            // What it holds now; what it held and no longer leads for is never released
            // by it (its successor's, or a parted history's).
            let held = self.nodes[i].node.as_ref().and_then(|node| {
                let r = node.outputs_release_status();
                (node.role() == Role::Primary && r.held > 0).then(|| (node.epoch(), r.held_oldest_frame, node.frame()))
            });
            if let Some((epoch, first, last)) = self.acked_held_range[i] {
                let leads_on = self.nodes[i]
                    .node
                    .as_ref()
                    .is_some_and(|node| node.role() == Role::Primary && node.epoch() == epoch);
                if !leads_on {
                    self.checker.on_acked_never_released(i, epoch, first, last);
                }
            }
            self.acked_held_range[i] = held;
        }
        let epoch_after = match self.nodes[i].node.as_mut() {
            Some(node) => {
                node.app_mut().take_steps(&mut self.steps);
                // A transfer's snapshot and the state a backup restored, before the steps:
                // a step on a restored state is judged against the snapshots taken.
                let mut snapshots = Vec::new();
                node.app_mut().take_snapshots(&mut snapshots);
                for hash in snapshots {
                    self.checker.on_snapshot(hash);
                }
                // A state the node refused in the same event (`TransferRejected`: its
                // digest is not the one announced) was not installed, though the
                // application restored it: nothing to judge. Since 2026-11-27 the DST's
                // tampered chunks make such states; the node then holds none of the pair's
                // state and may only lead it from a new cold start.
                let refused = actions
                    .iter()
                    .any(|a| matches!(a, Action::Alarm(Alarm::TransferRejected)));
                if let Some(hash) = node.app_mut().take_restored().filter(|_| !refused) {
                    self.checker.on_restored(i, hash);
                    self.checker.on_source_installed(i);
                }
                fired = self.workload.take_fired(node.app_mut().inner_mut());
                node.epoch()
            }
            None => epoch_before,
        };
        if let Some(frame) = fired {
            // Before the steps are judged: invariant 4 must know of it.
            self.diverge_fired(i, frame, epoch_after);
        }
        // Before the steps: a new primary's map is known when its first frames are judged.
        self.source_observe(i, &actions);
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
            self.apply_action(i, now, action);
        }
        self.actions = actions;
        if self.run.acks {
            // Invariant 16: events dropped from a full queue, judged against the acks the
            // world delivered, after this event's emits are recorded.
            if let Some(node) = self.nodes[i].node.as_ref() {
                let dropped = node.ack_status().events_dropped;
                let seen = core::mem::replace(&mut self.events_dropped_seen[i], dropped);
                if dropped > seen {
                    let epoch = (node.role() == Role::Primary).then(|| node.epoch());
                    self.checker.on_events_dropped(now, i, epoch, dropped - seen);
                }
            }
        }
        for k in 0..self.input_lost.len() {
            let frame = self.input_lost[k];
            self.checker.on_input_lost(epoch_after, frame);
        }
        self.checker.on_event_end(now, i, &self.input_lost);
        if let (Some(p), Some(duration_ns)) = (self.freeze_now.take(), self.freeze_on_join) {
            if self.nodes[p].frozen_until.is_none() && self.phase == Phase::Safety {
                self.freeze_on_join = None;
                self.freeze_during_join(p, duration_ns);
            }
        }
        if core::mem::take(&mut self.rejoin_pending[i]) {
            if self.options.rejoin_delay_ms == 0 {
                self.operator_rejoin(i);
            } else {
                let incarnation = self.nodes[i].incarnation;
                self.schedule(
                    now + self.options.rejoin_delay_ms * NANOS_PER_MS,
                    Event::Rejoin { node: i, incarnation },
                );
            }
        }
        self.reschedule_timer(i);
    }

    /// The body of `bytes` when node `to` is a backup and the datagram is its primary's:
    /// decoded under the pair's key, a primary's header of the node's epoch (the node's
    /// own first filters, judged before it handles the datagram).
    fn body_from_its_primary(&self, to: usize, bytes: &[u8]) -> Option<Body> {
        let node = self.nodes[to].node.as_ref()?;
        if node.role() != Role::Backup {
            return None;
        }
        let key = self.options.auth_key.map(AuthKey::new);
        let envelope = wire::decode(bytes, key.as_ref()).ok()?;
        if envelope.header.role != WireRole::Primary || envelope.header.epoch != node.epoch() {
            return None;
        }
        Some(envelope.body)
    }

    /// The ids of an `Acks` node `to`, a backup, takes from the primary of its epoch
    /// (`--acks`; the node's own filters, for invariant 16).
    pub(super) fn acks_offered(&self, to: usize, bytes: &[u8]) -> Option<Vec<(u64, u8)>> {
        if !self.run.acks {
            return None;
        }
        match self.body_from_its_primary(to, bytes)? {
            Body::Acks { ids } => Some(ids.to_vec()),
            _ => None,
        }
    }

    /// The frame of a `Released` node `to`, a backup, takes from the primary of its
    /// epoch (acked release; invariant 9).
    pub(super) fn released_offered(&self, to: usize, bytes: &[u8]) -> Option<u64> {
        match self.body_from_its_primary(to, bytes)? {
            Body::Released { frame } => Some(frame),
            _ => None,
        }
    }

    /// The commit in `bytes` that node `to`, a backup, keeps for a takeover if it does not
    /// refuse the datagram (judged before it handles it, as its `on_commit` and
    /// `store_commit` do: the primary's message of the node's epoch, with the key, for a
    /// frame it has not run, a fetched payload matching its digest), with the node's
    /// rejection counts before: a count that rises says it refused the datagram.
    pub(super) fn commit_offered(&self, to: usize, bytes: &[u8]) -> Option<CommitOffered> {
        let commit = match self.body_from_its_primary(to, bytes)? {
            Body::Commit(commit) => commit,
            Body::FrameData { commit, payload } => match commit.kind {
                CommitKind::Ran { input_digest, .. } if twinloop::digest::fnv64(&payload) != input_digest => {
                    return None
                }
                _ => commit,
            },
            _ => return None,
        };
        let node = self.nodes[to].node.as_ref()?;
        let status = node.status();
        if commit.frame <= status.frame && matches!(status.sync, SyncState::InSync | SyncState::Lagging) {
            return None;
        }
        Some(CommitOffered {
            epoch: node.epoch(),
            commit,
            rejections: status.rejections,
        })
    }

    /// A datagram a node sent reaches node `to` (the attacker's go through
    /// `deliver_injection`): when it decodes under the pair's key, the node could read the
    /// epoch in its header, and the checker learns it (invariant 3's orphaned losses), and
    /// whether the sender said it held state (invariant 8) and what it says of the node's
    /// probe (invariant 20). `refused`: the node counted it `replayed` (not fresh: a session its handshake had
    /// not verified, or a late copy); it read nothing of it.
    pub(super) fn note_genuine(&mut self, to: usize, bytes: &[u8], refused: bool) {
        let key = self.options.auth_key.map(AuthKey::new);
        if let Ok(envelope) = wire::decode(bytes, key.as_ref()) {
            self.checker.on_epoch_delivered(to, envelope.header.epoch);
            if refused {
                self.checker.on_delivered_unverified(to, envelope.header.epoch);
                return;
            }
            self.checker.on_delivered(self.now, to, envelope.header.epoch);
            if envelope.header.origin != 0 {
                self.checker.on_heard_state(to);
            }
            self.note_probe(to, &envelope);
            if let (Body::Commit(commit) | Body::FrameData { commit, .. }, WireRole::Primary) =
                (&envelope.body, envelope.header.role)
            {
                self.checker
                    .on_commit_delivered(self.now, to, envelope.header.epoch, commit.frame);
            }
        }
    }

    /// Node `to` handled the datagram `bytes` and counted no rejection meanwhile:
    /// invariant 20 learns what it says of the node's probe — a primary's message ends
    /// it; a `ProbeAck` from a peer that does not lead answers it. Read under the pair's
    /// key, from the peer only; before the event's actions reach the checker. For the
    /// attacker's injections (`deliver_injection`); the links' datagrams are read once,
    /// in `note_genuine`.
    pub(super) fn note_probe_traffic(&mut self, to: usize, bytes: &[u8]) {
        let key = self.options.auth_key.map(AuthKey::new);
        if let Ok(envelope) = wire::decode(bytes, key.as_ref()) {
            self.note_probe(to, &envelope);
        }
    }

    /// [`Sim::note_probe_traffic`] of a decoded datagram.
    fn note_probe(&mut self, to: usize, envelope: &Envelope) {
        if envelope.header.node_id == to as u8 + 1 {
            return;
        }
        let primary = envelope.header.role == WireRole::Primary;
        let answer = match envelope.body {
            Body::ProbeAck { id } if !primary => Some(id),
            _ => None,
        };
        self.checker.on_probe_traffic(self.now, to, primary, answer);
    }

    /// A datagram reaches node `to`: the commit it carries, if any, may take a slot of
    /// the node's ring or be inherited (invariant 18). Read without the key and whether
    /// or not the node takes it: the checker's model may count a frame gone that the node
    /// still holds, never the reverse.
    pub(super) fn note_commit_seen(&mut self, to: usize, bytes: &[u8]) {
        if let Ok(envelope) = wire::decode(bytes, None) {
            if let Body::Commit(commit) | Body::FrameData { commit, .. } = &envelope.body {
                self.checker.on_commit_seen(to, commit);
            }
        }
    }

    /// A commit's datagram as the `IgnoreSentMask` mutation delivers it: it reports no
    /// output sent (a core that ignores the sent log).
    pub(super) fn without_sent_mask(&self, bytes: &[u8]) -> Option<Vec<u8>> {
        let key = self.options.auth_key.map(AuthKey::new);
        let mut envelope = wire::decode(bytes, key.as_ref()).ok()?;
        let commit = match &mut envelope.body {
            Body::Commit(commit) | Body::FrameData { commit, .. } => commit,
            _ => return None,
        };
        if let CommitKind::Ran { sent_mask, .. } = &mut commit.kind {
            *sent_mask = 0;
        }
        wire::encode(&envelope, key.as_ref()).ok().map(|b| b.to_vec())
    }

    /// Node `to` handled the datagram `offered` came in: the checker learns the commit it
    /// keeps, unless it refused the datagram.
    pub(super) fn commit_received(&mut self, to: usize, offered: CommitOffered) {
        let Some(node) = self.nodes[to].node.as_ref() else {
            return;
        };
        if node.status().rejections == offered.rejections {
            self.checker.on_commit_held(to, offered.epoch, &offered.commit);
        }
    }

    pub(super) fn reschedule_timer(&mut self, i: usize) {
        let now = self.now;
        let sn = &mut self.nodes[i];
        let want = match (&sn.node, sn.frozen_until) {
            (Some(node), None) => node.poll_timeout().map(|d| sn.clock.true_at(d).max(now)),
            _ => None,
        };
        // Planted: node 0, from its first deadline past the spin's start, asks to be woken
        // at once, again and again (the timer bound stops the run).
        let want = match want {
            Some(_) if self.run.mutation == Mutation::SpinTimer && i == 0 && now >= SPIN_FROM_NS => Some(now),
            want => want,
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

    /// An output node `i` emitted reaches the sink over the output path (issue 22), or is
    /// lost there when an outage began while it was on the way.
    pub(super) fn output_arrive(&mut self, i: usize, output: twinloop::Output) {
        let now = self.now;
        self.trace_u64(7 + i as u64);
        if !self.output_path.arrive() {
            self.checker.on_path_dropped(&output);
            return;
        }
        if self.run.mutation == Mutation::NoFencing {
            self.sink.gateway.clear_fence();
        }
        let (verdict, lapsed) = if self.run.mutation == Mutation::SinkIgnoresLevels {
            let as_event = twinloop::Output {
                kind: twinloop::OutputKind::Event,
                ..output.clone()
            };
            self.sink.offer(now, i, &as_event)
        } else {
            self.sink.offer(now, i, &output)
        };
        if lapsed {
            self.say(format_args!("sink: epoch lease lapsed"));
            self.checker.on_sink_lapse();
        }
        if verdict != Verdict::Accepted {
            self.say(format_args!(
                "node {i}: output ({}, {}) epoch {} arrives -> {verdict:?}",
                output.frame,
                output.index,
                twinloop::EpochText(output.epoch)
            ));
        }
        self.checker.on_sink_offer(now, i, &output, verdict);
        self.sink_ack(now);
    }

    /// The sink's next ack (`--acks`), back to the node it answers: over the ack path
    /// when the plant network is modelled (issue 22: lost, duplicated, delayed, cut with
    /// the outputs' way or not), else after the I/O path's shortest delay.
    fn sink_ack(&mut self, now: Nanos) {
        let Some((to, bytes)) = self.sink.next_ack() else {
            return;
        };
        if self.ack_path.is_perfect() {
            let at = now + self.options.io.delay_us_min * 1000;
            self.schedule(at, Event::Ack { to, bytes, path: false });
            return;
        }
        let mut arrivals = Vec::new();
        self.ack_path.send(now, &mut arrivals);
        for at in arrivals {
            let bytes = bytes.clone();
            self.schedule(at, Event::Ack { to, bytes, path: true });
        }
    }

    pub(super) fn role(&self, i: usize) -> Option<Role> {
        self.nodes[i].node.as_ref().map(|n| n.role())
    }

    pub(super) fn resolve(&self, target: Target) -> Option<usize> {
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
    pub(super) fn follows_with_state(&self, i: usize, p: usize) -> bool {
        let (Some(backup), Some(primary)) = (&self.nodes[i].node, &self.nodes[p].node) else {
            return false;
        };
        let s = backup.status();
        s.role == Role::Backup
            && matches!(s.sync, SyncState::InSync | SyncState::Lagging)
            && s.epoch == primary.epoch()
            && self.nodes[i].frozen_until.is_none()
    }

    pub(super) fn crash(&mut self, i: usize) {
        if self.diverge_armed.is_some_and(|(node, _)| node == i) {
            // Armed in the application that is gone (or for its next frame): no more.
            self.diverge_armed = None;
        }
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
        self.hmi_forget_node(i);
        self.disk_crash(i);
        self.checker.on_crash(self.now, i);
        if let Some((epoch, first, last)) = self.acked_held_range[i].take() {
            self.checker.on_acked_never_released(i, epoch, first, last);
        }
        self.trace_u64(200 + i as u64);
    }

    pub(super) fn thaw(&mut self, i: usize) {
        let sn = &mut self.nodes[i];
        if sn.frozen_until.take().is_none() {
            return;
        }
        self.frozen_count -= 1;
        self.last_trouble_at = self.now;
        self.hmi_thawed(i);
        self.say(format_args!("node {i}: thaws"));
        // What the sockets buffered arrives first, in order; then the overdue timer.
        let buffered = core::mem::take(&mut self.nodes[i].buffered);
        for event in buffered {
            self.schedule(self.now, event);
        }
        self.reschedule_timer(i);
    }

    /// Applies one of node `i`'s actions: a datagram onto the links (commits tapped for
    /// the checker), an output to the sink, an epoch to the disk, a transition, an alarm
    /// or a notice to the checker and the statistics.
    fn apply_action(&mut self, i: usize, now: Nanos, action: Action) {
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
                        self.checker.on_origin_sent(
                            now,
                            i,
                            envelope.header.origin,
                            envelope.header.epoch,
                            envelope.header.frame,
                        );
                        match (envelope.body, envelope.header.role) {
                            (Body::Commit(commit), WireRole::Primary) => {
                                self.checker.on_commit(now, i, envelope.header.epoch, &commit);
                            }
                            (Body::SwitchRelease { .. }, WireRole::Primary) => self.checker.on_release(i),
                            (Body::Probe { id }, _) => self.checker.on_probe_sent(i, id),
                            _ => {}
                        }
                    }
                }
                if self.run.mutation == Mutation::StallJoins && self.phase != Phase::Safety {
                    if let Ok(envelope) = wire::decode(&bytes, None) {
                        if matches!(envelope.body, Body::Chunk { .. }) {
                            return;
                        }
                    }
                }
                self.attack_observe(i, link, &bytes);
                let tampered = self.attack_tamper(i, link, &bytes);
                if self.release_loss > 0 && is_release(&bytes) {
                    // `Fault::ReleaseLoss`: lost on the link (the attacker saw it go).
                    return;
                }
                if self.in_commit_hole(&bytes) {
                    // `Fault::CommitHole`: lost on the link.
                    return;
                }
                let mut deliveries = core::mem::take(&mut self.deliveries);
                let carried = tampered.as_deref().unwrap_or(&bytes);
                self.network.send(now, i, usize::from(link), carried, &mut deliveries);
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
                let window = self.nodes[i]
                    .node
                    .as_ref()
                    .filter(|_| self.options.auth_key.is_none())
                    .map(|node| node.config().detection_window_ms.saturating_mul(NANOS_PER_MS));
                self.checker
                    .check_acked_once(now, i, &output, self.emit_unguarded, window);
                match self.run.mutation {
                    Mutation::DropEmit if output.frame % 97 == 0 => return,
                    Mutation::CorruptEmit if output.frame % 89 == 0 => {
                        if let Some(byte) = output.payload.first_mut() {
                            *byte ^= 0x40;
                        }
                    }
                    _ => {}
                }
                if !self.output_path.is_perfect() {
                    // Over the plant network: the node's side is judged now, the sink's
                    // when (if) a copy arrives.
                    self.trace_u64(output.frame << 8 | u64::from(output.index));
                    self.trace_u64(output.epoch);
                    self.checker.on_emit_sent(now, i, &output);
                    let mut arrivals = core::mem::take(&mut self.path_arrivals);
                    self.output_path.send(now, &mut arrivals);
                    if arrivals.is_empty() {
                        self.checker.on_path_dropped(&output);
                    }
                    for at in arrivals.drain(..) {
                        self.schedule(
                            at,
                            Event::OutputArrive {
                                node: i,
                                output: output.clone(),
                            },
                        );
                    }
                    self.path_arrivals = arrivals;
                    return;
                }
                if self.run.mutation == Mutation::NoFencing {
                    // A sink that forgets its fence before every output.
                    self.sink.gateway.clear_fence();
                }
                let (verdict, lapsed) = if self.run.mutation == Mutation::SinkIgnoresLevels {
                    let as_event = twinloop::Output {
                        kind: twinloop::OutputKind::Event,
                        ..output.clone()
                    };
                    self.sink.offer(now, i, &as_event)
                } else {
                    self.sink.offer(now, i, &output)
                };
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
                self.sink_ack(now);
            }
            Action::PersistEpoch(epoch) => {
                if self.run.mutation == Mutation::LoseEpoch {
                    // A disk that loses what was written: the restarted node starts low.
                    return;
                }
                let own = twinloop::node::Epoch(epoch).node_id() == i as u8 + 1;
                match self.run.mutation {
                    // Heard and never written: the restarted node boots below it.
                    Mutation::ForgetHeardEpoch if !own => {}
                    Mutation::LeadBeforeDurable if own => self.persist_later(i, epoch),
                    _ => self.persist_now(i, epoch),
                }
            }
            Action::PersistEpochLater(epoch) => {
                if self.run.mutation == Mutation::LoseEpoch {
                    return;
                }
                let own = twinloop::node::Epoch(epoch).node_id() == i as u8 + 1;
                if self.run.mutation == Mutation::ForgetHeardEpoch && !own {
                    return;
                }
                self.persist_later(i, epoch);
            }
            Action::ReserveEpoch(epoch) => {
                if self.run.mutation == Mutation::LoseEpoch {
                    return;
                }
                if self.run.mutation == Mutation::LeadBeforeDurable {
                    // Asked for as a reservation, made as a background persist: the node
                    // boots from it all the same once durable.
                    self.persist_later(i, epoch);
                    return;
                }
                self.reserve_now(i, epoch);
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
                if t.role == Role::Primary {
                    if let Some(node) = self.nodes[i].node.as_ref() {
                        let capacity = node.config().frames_buffered;
                        self.checker.on_ring(i, capacity, node.status().input.frame, t.frame);
                    }
                }
                self.check_input_handover_hold(now, i, &t);
                self.note_handover_transition(now, i, &t);
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
                        if self.run.mutation != Mutation::SilentInputLost {
                            self.input_lost.push(frame);
                        }
                    }
                    Alarm::TransferRejected => self.stats.alarms_transfer_rejected += 1,
                    Alarm::CommitLost { frame, last } => {
                        self.stats.alarms_commit_lost += 1;
                        if self.run.mutation != Mutation::SilentCommitLost {
                            self.checker.on_commit_lost(i, frame, last);
                        }
                    }
                    Alarm::OutputDivergence { frame } | Alarm::StateDivergence { frame } => {
                        self.stats.alarms_divergence += 1;
                        if self.run.mutation != Mutation::HideDivergence {
                            self.checker.on_divergence_alarm(now, i, frame);
                        }
                    }
                    Alarm::CannotTakeOver => self.stats.alarms_cannot_take_over += 1,
                    // The simulated operator chooses the state the sink follows: the
                    // node that kept its own takes the primary's (liveness after a
                    // cold start by a node that could not know; see invariant 8).
                    Alarm::ColderPrimary { origin, own_origin } => {
                        self.checker.on_colder_primary(now, i, origin, own_origin);
                        self.rejoin_pending[i] = true;
                    }
                    Alarm::OutputsHeldFull { .. } => {
                        let held = self.nodes[i].node.as_ref().map_or(0, |node| node.status().release.held);
                        self.checker.on_held_full(now, i, held);
                    }
                    Alarm::ColdStartHeld
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
            // The HMI writer's answers (issue 18): see `hmi_answered`.
            Action::HmiWriteDone { write, outcome } => self.hmi_answered(i, write, outcome),
            Action::Notice(notice) => {
                if notice == Notice::FalseDeath {
                    self.stats.false_deaths += 1;
                }
                if let Notice::OutputsUncertain { first, last, .. } = notice {
                    let epoch = self.nodes[i].node.as_ref().map_or(0, |node| node.epoch());
                    self.checker.on_outputs_uncertain(i, epoch, first, last);
                }
                if !matches!(notice, Notice::LinkUp(_) | Notice::LinkDown(_)) {
                    self.say(format_args!("node {i}: {notice:?}"));
                }
            }
            // A lone primary's commit, not transmitted: the checker's record of its
            // decisions is complete only with it.
            Action::CommitHeld { epoch, commit } => self.checker.on_commit(now, i, epoch, &commit),
        }
    }
}

impl<'a, W: Workload> Sim<'a, W> {
    /// `Fault::CommitHole`: whether the datagram carries the commit of the hole's frame
    /// (a primary's first commit names it).
    fn in_commit_hole(&mut self, bytes: &[u8]) -> bool {
        let Some(hole) = self.commit_hole else {
            return false;
        };
        let Ok(envelope) = wire::decode(bytes, None) else {
            return false;
        };
        let frame = match envelope.body {
            Body::Commit(commit) if envelope.header.role == WireRole::Primary => commit.frame,
            Body::FrameData { commit, .. } => commit.frame,
            _ => return false,
        };
        match hole {
            None => {
                self.commit_hole = Some(Some(frame));
                true
            }
            Some(lost) => lost == frame,
        }
    }
}

/// The datagram carries a `SwitchRelease` (read without the key: the header and body are
/// in the clear, the tag only authenticates them).
fn is_release(bytes: &[u8]) -> bool {
    wire::decode(bytes, None).is_ok_and(|envelope| matches!(envelope.body, Body::SwitchRelease { .. }))
}
