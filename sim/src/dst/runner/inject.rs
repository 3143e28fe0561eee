//! Fault injection: the planned faults fire (crash, freeze, partition, link cut, loss
//! bursts, I/O loss), timed faults end, and the checker is told which windows to watch
//! (a clean failover's deadline, a false-death freeze, a restart next to a healthy
//! primary).

use super::world::{Event, FaultEnd, Sim};
use super::*;
use crate::dst::app::Injection;
use crate::dst::app::Workload;
use crate::dst::checker::Perturbed;
use crate::dst::clock::{Nanos, NANOS_PER_MS};
use crate::dst::faults::{DivergeKind, Fault, FreezeKind, Target};
use crate::dst::runner::liveness::join_bound_ns;
use twinloop::{Role, SyncState};

impl<'a, W: Workload> Sim<'a, W> {
    /// The armed `FreezeKind::DuringJoin` fires: the primary `p` freezes as its peer
    /// joins it.
    pub(super) fn freeze_during_join(&mut self, p: usize, duration_ns: Nanos) {
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

    /// Node `node`'s input loses `loss_ppm` of its frames for `duration_ns` (fault
    /// `index`: an `IoLoss`, or the quiet tail's `PrimaryInputDies`).
    /// Some node's input is stalled (`Fault::IoStall`).
    pub(super) fn io_stalled(&self) -> bool {
        self.io_stall_until.iter().any(|&until| until > self.now)
    }

    fn io_loss_begin(&mut self, node: usize, loss_ppm: u32, duration_ns: Nanos, index: usize) {
        self.stats.faults.io_loss += 1;
        let id = self.burst_id_next;
        self.burst_id_next += 1;
        self.watch_handover(node, loss_ppm, duration_ns, index);
        self.io_bursts.insert(id, (node, loss_ppm));
        self.faults_active += 1;
        self.schedule(self.now + duration_ns, Event::FaultEnd(FaultEnd::IoLoss { id }));
    }

    pub(super) fn apply_fault(&mut self, index: usize) {
        let planned = self.plan.faults[index];
        let ms = NANOS_PER_MS;
        self.trace_u64(0xFA17 + index as u64);
        let trouble_before = self.last_trouble_at;
        // The output path is the plant's network, not the pair's: an outage there leaves
        // the pair calm (switchovers and divergences are still watched).
        let pair_fault = !matches!(planned.fault, Fault::OutputOutage { .. });
        if pair_fault && !matches!(planned.fault, Fault::Switchover { .. } | Fault::Diverge { .. }) {
            self.last_trouble_at = self.now;
            self.checker.end_switchover_watches(self.now);
        }
        if pair_fault && !matches!(planned.fault, Fault::Diverge { .. }) {
            self.checker.end_diverge_watch();
        }
        if pair_fault {
            // Anything else that happens to the pair ends the watch unjudged.
            self.handover_watch = None;
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
                    let io_clean = self.io_loss_ppm[q] == 0
                        && self.io_bursts.is_empty()
                        && self.io_gap == [0, 0]
                        && !self.io_stalled();
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
                self.last_crash = Some((self.now, i));
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
                    FreezeKind::Short | FreezeKind::Stall => f.pause_short += 1,
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
            Fault::PrimaryInputDies { duration_ns } => {
                let Some(node) = (0..2).find(|&i| self.role(i) == Some(Role::Primary)) else {
                    self.stats.faults.skipped += 1;
                    return;
                };
                self.say(format_args!(
                    "FAULT the primary's input dies: node {node} for {:.3} ms",
                    duration_ns as f64 / 1e6
                ));
                self.io_loss_begin(node, 1_000_000, duration_ns, index);
            }
            Fault::IoLoss {
                node,
                loss_ppm,
                duration_ns,
            } => {
                self.say(format_args!(
                    "FAULT I/O loss {loss_ppm} ppm to node {node} for {:.3} ms",
                    duration_ns as f64 / 1e6
                ));
                self.io_loss_begin(node, loss_ppm, duration_ns, index);
            }
            Fault::IoGap { target, frames } => {
                let Some(i) = self.resolve(target) else {
                    self.stats.faults.skipped += 1;
                    return;
                };
                self.stats.faults.io_gap += 1;
                self.say(format_args!(
                    "FAULT I/O gap: node {i} ({:?}) loses its next {frames} frames",
                    self.role(i)
                ));
                self.io_gap[i] = self.io_gap[i].max(frames);
            }
            Fault::IoStall { target, duration_ns } => {
                let Some(i) = self.resolve(target) else {
                    self.stats.faults.skipped += 1;
                    return;
                };
                self.stats.faults.io_stall += 1;
                self.say(format_args!(
                    "FAULT I/O stall: node {i} ({:?}) gets the frames of the next {:.3} ms at their end",
                    self.role(i),
                    duration_ns as f64 / 1e6
                ));
                self.io_stall_until[i] = self.io_stall_until[i].max(self.now + duration_ns);
                self.faults_active += 1;
                self.schedule(self.now + duration_ns, Event::FaultEnd(FaultEnd::IoStall));
            }
            Fault::CommitHole { duration_ns } => {
                self.stats.faults.commit_hole += 1;
                self.say(format_args!(
                    "FAULT the primary's next commit lost on every link for {:.3} ms",
                    duration_ns as f64 / 1e6
                ));
                self.commit_hole = Some(None);
                self.faults_active += 1;
                self.schedule(self.now + duration_ns, Event::FaultEnd(FaultEnd::CommitHole));
            }
            Fault::RestartCut { duration_ns } => {
                // The crash it goes with fired at this instant, just before.
                let down = self
                    .last_crash
                    .filter(|&(at, i)| at == self.now && self.nodes[i].node.is_none())
                    .map(|(_, i)| i);
                let Some(i) = down else {
                    self.stats.faults.skipped += 1;
                    return;
                };
                self.say(format_args!(
                    "FAULT armed: node {i}'s datagrams lost for {:.3} ms from its restart",
                    duration_ns as f64 / 1e6
                ));
                self.restart_cut[i] = Some(duration_ns);
            }
            Fault::ReleaseLoss { duration_ns } => {
                self.stats.faults.release_loss += 1;
                self.say(format_args!(
                    "FAULT every SwitchRelease lost on every link for {:.3} ms",
                    duration_ns as f64 / 1e6
                ));
                self.release_loss += 1;
                self.faults_active += 1;
                self.schedule(self.now + duration_ns, Event::FaultEnd(FaultEnd::ReleaseLoss));
            }
            Fault::SourceRestart {
                silence_ns,
                first_number,
                active_ns,
            } => {
                self.stats.faults.source_restart += 1;
                self.say(format_args!(
                    "FAULT the I/O source restarts: silent for {:.3} ms, then session {} from frame {first_number}",
                    silence_ns as f64 / 1e6,
                    self.source_session.wrapping_add(1)
                ));
                self.source_silent = Some((self.now + silence_ns, first_number));
                self.source_active_until = self.source_active_until.max(self.now + active_ns);
                self.faults_active += 1;
                self.schedule(self.now + active_ns, Event::FaultEnd(FaultEnd::SourceRestart));
            }
            Fault::InputsDeadInHold { extra_ns } => self.inputs_dead_in_hold(extra_ns),
            Fault::Switchover { target } => self.operator_switchover(target),
            Fault::Diverge { target, kind } => self.diverge(index, target, kind),
            Fault::OutputOutage { acks, duration_ns } => {
                self.stats.faults.output_outage += 1;
                self.say(format_args!(
                    "FAULT output path cut{} for {:.3} ms",
                    if acks { " both ways" } else { "" },
                    duration_ns as f64 / 1e6
                ));
                self.output_path.set_cut(true);
                if acks {
                    self.ack_path.set_cut(true);
                }
                self.schedule(self.now + duration_ns, Event::FaultEnd(FaultEnd::OutputOutage { acks }));
            }
        }
    }

    /// `Fault::InputsDeadInHold`: both inputs die now, within the input hand-over hold of
    /// the primary of the moment, until `extra_ns` after the hold's end — when the
    /// primary's input alarm can still come within the hold (the last frame on its way
    /// arrives within the I/O delay; the alarm follows one input limit later, on the
    /// primary's clock), and the hold ends within the safety phase. Skipped otherwise.
    fn inputs_dead_in_hold(&mut self, extra_ns: Nanos) {
        let c = &self.options.config;
        let ms = NANOS_PER_MS;
        let hold_ns = c.input_handover_hold_ms * ms;
        // The silence a primary acts on (`input_handover_ms`, or `input_silence_ms` with
        // hand-overs off).
        let limit_ms = if c.input_handover_ms != 0 {
            c.input_handover_ms
        } else {
            c.input_silence_ms
        };
        let young = (0..2).find_map(|p| {
            let sn = &self.nodes[p];
            sn.node.as_ref().filter(|n| n.role() == Role::Primary)?;
            let led_ns = sn
                .clock
                .local(self.now)
                .saturating_since(self.primary_since[p]?)
                .as_nanos() as Nanos;
            let left_ns = hold_ns.checked_sub(led_ns)?;
            let hold_ends_ns = sn.clock.true_duration(left_ns);
            // 1 % of the hold and a cycle spare: the timers' rounding, the frames' jitter.
            let alarm_ns = self.options.io_delay_ns_max()
                + sn.clock.true_duration(limit_ms * ms)
                + hold_ns / 100
                + self.options.cycle_ms * ms;
            (alarm_ns < hold_ends_ns).then_some((p, hold_ends_ns))
        });
        let safety_end_ns = self.options.safety_ms * ms;
        let Some((p, hold_ends_ns)) = young.filter(|&(_, h)| self.now + h + extra_ns < safety_end_ns) else {
            self.stats.faults.skipped += 1;
            return;
        };
        self.stats.faults.inputs_dead_in_hold += 1;
        let duration_ns = hold_ends_ns + extra_ns;
        self.say(format_args!(
            "FAULT both inputs dead for {:.3} ms: within the hold of node {p} (primary), past its end by {:.3} ms",
            duration_ns as f64 / 1e6,
            extra_ns as f64 / 1e6
        ));
        for node in 0..2 {
            let id = self.burst_id_next;
            self.burst_id_next += 1;
            self.io_bursts.insert(id, (node, 1_000_000));
            self.faults_active += 1;
            self.schedule(self.now + duration_ns, Event::FaultEnd(FaultEnd::IoLoss { id }));
        }
    }

    /// A divergence fault: armed on its node only when the pair is calm (one primary
    /// `Paired`, its backup `InSync` in the same epoch, no switchover, nothing frozen, no
    /// fault active, links up, no other fault planned before the alarm is due and the
    /// safety phase not ending before), so that invariant 12 can require the alarm; a
    /// fault that begins before the resync ends the watch unjudged. Skipped otherwise.
    /// It fires at the node's next frame.
    fn diverge(&mut self, index: usize, target: Target, kind: DivergeKind) {
        // Quiet until the alarm is due: the injected frame and the next reach the backup
        // (two cycles, the I/O delay, a commit's link delay, a heartbeat's wait), twice.
        let o = self.options;
        let watch_ns = 2
            * (2 * o.cycle_ms * NANOS_PER_MS
                + o.io_delay_ns_max()
                + o.link_delay_ns_max()
                + o.config.heartbeat_interval_ms * NANOS_PER_MS);
        let calm = self.converged()
            && self.frozen_count == 0
            && self.faults_active == 0
            && self.network.all_up()
            && self.diverge_armed.is_none()
            && !self.checker.diverge_active()
            && !self.plan.any_within(self.now, self.now + watch_ns, Some(index))
            && self.now + watch_ns < self.options.safety_ms * NANOS_PER_MS;
        let Some(i) = self.resolve(target).filter(|_| calm) else {
            self.stats.faults.skipped += 1;
            return;
        };
        let armed = match kind {
            DivergeKind::FrameCopy => true,
            DivergeKind::Output | DivergeKind::State => {
                let injection = if kind == DivergeKind::Output {
                    Injection::Output
                } else {
                    Injection::State
                };
                match self.nodes[i].node.as_mut() {
                    Some(node) => self.workload.arm(node.app_mut().inner_mut(), injection),
                    None => false,
                }
            }
        };
        if !armed {
            self.stats.faults.skipped += 1;
            return;
        }
        self.stats.faults.diverge += 1;
        self.diverge_armed = Some((i, kind));
        self.say(format_args!(
            "FAULT diverge node {i} ({:?}): {kind:?} at its next frame",
            self.role(i)
        ));
    }

    /// The armed divergence perturbed node `i` at `frame` under `epoch`: the checker
    /// watches for the backup's alarm and resync (invariant 12).
    pub(super) fn diverge_fired(&mut self, i: usize, frame: u64, epoch: u64) {
        let Some((node, kind)) = self.diverge_armed.take() else {
            return;
        };
        let backup = match self.role(0) {
            Some(Role::Backup) => 0,
            _ => 1,
        };
        let perturbed = match kind {
            DivergeKind::Output => Perturbed::Output,
            DivergeKind::State => Perturbed::State,
            DivergeKind::FrameCopy => Perturbed::FrameCopy,
        };
        self.say(format_args!(
            "node {i}: {kind:?} perturbed at frame {frame} (node {backup} must detect it)"
        ));
        debug_assert_eq!(node, i);
        self.checker
            .on_diverge_fired(i, backup, epoch, frame, perturbed, join_bound_ns(self.options));
    }

    pub(super) fn set_partition(&mut self, from: Option<usize>, cut: bool) {
        for link in 0..self.network.links() {
            for direction in 0..2 {
                if from.is_none_or(|f| f == direction) {
                    self.network.set_cut(link, direction, cut);
                }
            }
        }
    }

    pub(super) fn end_fault(&mut self, end: FaultEnd) {
        if let FaultEnd::OutputOutage { acks } = end {
            // Not a fault of the pair's (see `apply_fault`).
            self.output_path.set_cut(false);
            if acks {
                self.ack_path.set_cut(false);
            }
            self.say(format_args!("fault ends: {end:?}"));
            return;
        }
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
            FaultEnd::ReleaseLoss => self.release_loss = self.release_loss.saturating_sub(1),
            FaultEnd::CommitHole => self.commit_hole = None,
            FaultEnd::OutputOutage { .. } | FaultEnd::SourceRestart | FaultEnd::IoStall => {}
        }
        self.say(format_args!("fault ends: {end:?}"));
    }

    /// Node `i` restarts next to a healthy primary it can hear, from a calm state: it must
    /// join that primary, not lead. Unless it has seen a higher epoch than that
    /// primary's: the sink fences that primary off, and leading is what gets outputs out.
    /// Node `i` restarts in the safety phase: the cut armed for it (`Fault::RestartCut`)
    /// begins, every datagram it sends lost while its peer's reach it. A fault like an
    /// asymmetric partition: counted active (no restart, failover or switchover watch
    /// judges through it) until it ends or the faults heal.
    pub(super) fn restart_cut_begin(&mut self, i: usize) {
        let Some(duration_ns) = self.restart_cut[i].take() else {
            return;
        };
        self.stats.faults.restart_cut += 1;
        self.last_trouble_at = self.now;
        self.checker.end_switchover_watches(self.now);
        self.checker.end_diverge_watch();
        self.say(format_args!(
            "FAULT partition from node {i} (restarting) for {:.3} ms",
            duration_ns as f64 / 1e6
        ));
        let from = Some(i);
        self.set_partition(from, true);
        self.faults_active += 1;
        self.schedule(self.now + duration_ns, Event::FaultEnd(FaultEnd::Partition { from }));
    }

    pub(super) fn watch_restart(&mut self, i: usize) {
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
        // A stall of the primary (a few cycles, `FreezeKind::Stall`) is no excuse: it is
        // heard well within the start-up wait.
        let quiet = !self.plan.any_but_stalls_within(self.now, self.now + watch_ns)
            && self.now + watch_ns < self.options.safety_ms * ms;
        if calm && quiet && self.nodes[i].disk_epoch <= primary_epoch {
            self.checker.expect_no_lead(i, self.now, self.now + watch_ns);
        }
    }
}
