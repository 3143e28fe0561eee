//! The simulated operator: the switchover command the fault plan issues, the watch on a
//! switchover asked for in a calm state, and `rejoin` said to a node that raised
//! `ColderPrimary`.

use super::world::Sim;
use crate::dst::app::Workload;
use crate::dst::clock::Nanos;
use crate::dst::clock::NANOS_PER_MS;
use crate::dst::faults::Target;
use twinloop::{Command, CommandReply, Reason, Role, SyncState, Transition};

impl<'a, W: Workload> Sim<'a, W> {
    /// A switchover just asked for: from a calm state (one primary, a backup in sync with
    /// it, links all up, clean I/O), it must complete cleanly — unless another
    /// fault comes first (the watch ends there).
    pub(super) fn watch_switchover(&mut self) {
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
        let calm = in_sync
            && self.network.all_up()
            && self.now >= self.source_active_until
            && self.io_loss_ppm == [0, 0]
            && self.io_bursts.is_empty()
            && self.io_gap == [0, 0]
            && !self.io_stalled();
        if calm && self.now + watch_ns < self.options.safety_ms * ms {
            self.checker.expect_clean_switchover(self.now, self.now + watch_ns);
        }
    }

    /// Invariant 7, at each transition of node `i`: a primary hands over for its input
    /// (`InputHandover`) only once it has led for `input_handover_hold_ms` on its own clock
    /// (no ping-pong between two flapping inputs).
    pub(super) fn check_input_handover_hold(&mut self, now: Nanos, i: usize, t: &Transition) {
        if t.role != Role::Primary {
            self.primary_since[i] = None;
            return;
        }
        let since = *self.primary_since[i].get_or_insert(t.at);
        if t.reason == Reason::InputHandover {
            let hold = core::time::Duration::from_millis(self.options.config.input_handover_hold_ms);
            self.checker
                .on_input_handover(now, i, t.at.saturating_since(since), hold);
        }
    }

    /// The simulated operator says `rejoin` to node `i`, which raised `ColderPrimary`: the
    /// node that kept its own state takes the primary's.
    pub(super) fn operator_rejoin(&mut self, i: usize) {
        let sn = &mut self.nodes[i];
        if let Some(n) = sn.node.as_mut() {
            self.checker.on_rejoin_told(i);
            let local = sn.clock.local(self.now);
            let epoch_before = n.epoch();
            let reply = n.handle_command(local, Command::Rejoin);
            self.say(format_args!("OPERATOR rejoin to node {i}: {reply:?}"));
            self.drain(i, epoch_before);
        }
    }

    /// The fault plan's operator asks the node `target` resolves to for a switchover
    /// (forwarded to the primary when it is the backup); a frozen node's console does
    /// not answer.
    pub(super) fn operator_switchover(&mut self, target: Target) {
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
        let during = self.faults_active > 0 || self.frozen_count > 0 || self.nodes.iter().any(|n| n.node.is_none());
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
