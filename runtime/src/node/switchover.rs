//! Planned switchover (seed 002's handshake): the primary asks, the backup agrees only
//! when in sync and caught up (otherwise it delays and says why), the primary stops after
//! frame N and releases with N, the backup takes over at N + 1 with epoch + 1, and the old
//! primary follows it without a state transfer.

use super::{Alarm, CommandReply, Epoch, Node, Notice, Reason, RefuseReason, Role, SyncState};
use crate::app::App;
use crate::time::Instant;
use crate::wire::{Body, DelayReason, WireRole, WireSync};

/// Where a planned switchover stands on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Switchover {
    /// None under way.
    Idle,
    /// Primary: asked the backup and waits for its agreement.
    Requesting {
        id: u32,
        deadline: Instant,
        retry_at: Instant,
        delayed: bool,
        /// The backup named to take over (`switchover --to`); 0: any (a pair's one).
        to: u8,
    },
    /// Primary: stopped after `frame`; waits to see the backup lead.
    Released {
        id: u32,
        frame: u64,
        deadline: Instant,
        retry_at: Instant,
        /// The backup released to (as `Requesting`'s): its silence aborts the switchover.
        to: u8,
    },
    /// Backup: agreed (or delayed) and waits for the release.
    Agreeing { id: u32, agreed: bool, deadline: Instant },
    /// Backup: released at `frame`; takes over once it has run it.
    Taking { id: u32, frame: u64, deadline: Instant },
    /// Backup: gave switchover `id` up after a stall (`switchover_after_stall`); its
    /// request and release, still in the socket buffer or repeated, are ignored until the
    /// deadline.
    Abandoned { id: u32, deadline: Instant },
}

impl Switchover {
    pub(super) fn primary_may_run(&self) -> bool {
        !matches!(self, Switchover::Released { .. })
    }

    pub(super) fn deadline(&self) -> Option<Instant> {
        match *self {
            Switchover::Idle => None,
            Switchover::Requesting { deadline, retry_at, .. } | Switchover::Released { deadline, retry_at, .. } => {
                Some(deadline.min(retry_at))
            }
            Switchover::Agreeing { deadline, .. }
            | Switchover::Taking { deadline, .. }
            | Switchover::Abandoned { deadline, .. } => Some(deadline),
        }
    }

    pub(super) fn describe(&self) -> Option<&'static str> {
        match self {
            Switchover::Idle => None,
            Switchover::Requesting { delayed: false, .. } => Some("requesting: waiting for the backup to agree"),
            Switchover::Requesting { delayed: true, .. } => Some("requesting: the backup delays until caught up"),
            Switchover::Released { .. } => Some("released: waiting for the backup to lead"),
            Switchover::Agreeing { agreed: true, .. } => Some("agreed: waiting for the release"),
            Switchover::Agreeing { agreed: false, .. } => Some("delaying: catching up before agreeing"),
            Switchover::Taking { .. } => Some("taking over: running the last released frames"),
            Switchover::Abandoned { .. } => {
                Some("abandoned: this node ran nothing for a detection window after agreeing")
            }
        }
    }
}

impl<A: App> Node<A> {
    pub(super) fn switchover_command(&mut self) -> CommandReply {
        self.switchover_command_to(0)
    }

    /// A switchover to node `to` (`switchover --to`; 0: to the backup, today's command).
    /// A primary checks the target itself; a backup forwards it with the request.
    pub(super) fn switchover_command_to(&mut self, to: u8) -> CommandReply {
        match self.role {
            Role::Starting => CommandReply::Refused(RefuseReason::NotReady),
            Role::Backup => {
                if to != 0 && to != self.config.node_id {
                    // In a pair the other node is the primary, and naming it is no
                    // switchover; in a group another backup may be named.
                    match self.slot_of_node(to) {
                        None => return CommandReply::Refused(RefuseReason::UnknownTarget),
                        Some(slot) if self.peers[slot].status.is_some_and(|p| p.role == WireRole::Primary) => {
                            return CommandReply::Refused(RefuseReason::TargetIsPrimary)
                        }
                        // Another backup of a group: the primary checks it.
                        Some(_) => {}
                    }
                }
                // The primary among the peers, whichever slot leads (a pair's: slot 0).
                let primary = (0..usize::from(self.peer_count)).any(|slot| {
                    self.slot_alive(slot) && self.peers[slot].status.is_some_and(|p| p.role == WireRole::Primary)
                });
                if !primary {
                    return CommandReply::Refused(RefuseReason::NoPrimary);
                }
                let id = self.rng.next_u64() as u32;
                self.send_all(Body::SwitchAsk { id, to });
                CommandReply::Forwarded
            }
            Role::Primary => {
                let id = self.rng.next_u64() as u32;
                self.switchover_start(id, Reason::SwitchoverRequested, to)
            }
        }
    }

    /// The slot of the peer whose id is `id`: its configured id in a group, its heard id
    /// in a pair (whose peer's id is not configured).
    fn slot_of_node(&self, id: u8) -> Option<usize> {
        (0..usize::from(self.peer_count)).find(|&slot| match self.config.peers.get(slot) {
            Some(configured) => configured.id == id,
            None => self.peers[slot].status.is_some_and(|p| p.node_id == id),
        })
    }

    /// Primary: why switchover to node `to` must be refused, if it must. The target must
    /// be a peer (not this node) following in sync now: an operator who names a node
    /// wants that one, and one that is joining or lagging would make the plant wait.
    fn switchover_target_refusal(&self, to: u8) -> Option<RefuseReason> {
        if to == self.config.node_id {
            return Some(RefuseReason::TargetIsPrimary);
        }
        let Some(slot) = self.slot_of_node(to) else {
            return Some(RefuseReason::UnknownTarget);
        };
        if self.config.peers.get(slot).is_some_and(|c| c.witness) {
            return Some(RefuseReason::TargetIsWitness);
        }
        (!self.slot_in_sync(slot)).then_some(RefuseReason::TargetNotInSync)
    }

    /// Primary: begins switchover `id` (the operator's, one the backup forwarded, or an
    /// input handover) to node `to` (0: the backup), announced with `reason`.
    fn switchover_start(&mut self, id: u32, reason: Reason, to: u8) -> CommandReply {
        if self.switchover != Switchover::Idle {
            return CommandReply::Refused(RefuseReason::InProgress);
        }
        // A group's switchover names its target, always: every backup would take a
        // request for "the backup", and two would lead at once (DST `--nodes 3 --witness
        // --seed 859`: an input handover's request agreed by both backups). Without
        // `--to`, the successor by weight among the backups in sync.
        let to = match to {
            0 if self.in_group() => match self.switchover_successor(false) {
                Some(id) => id,
                None => return CommandReply::Refused(self.switchover_no_target()),
            },
            named => named,
        };
        if to != 0 {
            if let Some(refusal) = self.switchover_target_refusal(to) {
                return CommandReply::Refused(refusal);
            }
        } else {
            // A pair's request for its one backup.
            let backup = self
                .the_peer()
                .status
                .filter(|p| self.the_peer_alive() && p.role == WireRole::Backup);
            match backup.map(|p| p.sync) {
                None => return CommandReply::Refused(RefuseReason::NoHealthyBackup),
                Some(WireSync::Joining) => return CommandReply::Refused(RefuseReason::BackupJoining),
                Some(_) => {}
            }
        }
        self.switchover = Switchover::Requesting {
            id,
            deadline: self.now + self.config.switchover_timeout(),
            retry_at: self.now + self.config.retry(),
            delayed: false,
            to,
        };
        self.transition(Role::Primary, self.sync, reason);
        self.send_all(Body::SwitchRequest { id, to });
        CommandReply::Started
    }

    pub(super) fn on_switch_ask(&mut self, link: u8, id: u32, to: u8) {
        if self.role != Role::Primary {
            return;
        }
        // The ask comes on every link: the copies after the first are the same request.
        let same = match self.switchover {
            Switchover::Requesting { id: r, .. } | Switchover::Released { id: r, .. } => r == id,
            _ => false,
        };
        if same {
            return;
        }
        if let CommandReply::Refused(_) = self.switchover_start(id, Reason::SwitchoverRequested, to) {
            self.send(link, super::TrafficClass::Control, Body::SwitchRefuse { id });
        }
    }

    /// Backup: ready when in sync with nothing committed left to run.
    fn caught_up(&self) -> bool {
        self.sync == SyncState::InSync && self.commit_highest <= self.frame_last_run && self.rx.is_none()
    }

    pub(super) fn on_switch_request(&mut self, id: u32, to: u8) {
        // Not this node's to take: another backup of the group was named, or none (a
        // group's primary names one; "the backup" is a pair's word).
        let mine = if to == 0 {
            !self.in_group()
        } else {
            to == self.config.node_id
        };
        if self.role != Role::Backup || !mine {
            return;
        }
        if matches!(self.switchover, Switchover::Taking { id: t, .. } | Switchover::Abandoned { id: t, .. } if t == id)
        {
            return;
        }
        let deadline = self.now + self.config.switchover_timeout();
        if self.caught_up() {
            self.switchover = Switchover::Agreeing {
                id,
                agreed: true,
                deadline,
            };
            // Before agreeing: the old primary runs frames until the agreement arrives,
            // so the disk write holds up no frame.
            self.reserve_epoch();
            self.send_all(Body::SwitchAgree { id });
        } else {
            let (reason, lag_frames) = if self.has_state() {
                (DelayReason::Lagging, self.lag_frames())
            } else {
                (DelayReason::Joining, 0)
            };
            if !matches!(self.switchover, Switchover::Agreeing { id: a, .. } if a == id) {
                self.notice(Notice::SwitchoverDelayed { reason, lag_frames });
            }
            self.switchover = Switchover::Agreeing {
                id,
                agreed: false,
                deadline,
            };
            self.send_all(Body::SwitchDelay { id, reason, lag_frames });
        }
    }

    pub(super) fn on_switch_delay(&mut self, id: u32, reason: DelayReason, lag_frames: u64) {
        if let Switchover::Requesting { id: r, delayed, .. } = &mut self.switchover {
            if *r == id && !*delayed {
                *delayed = true;
                self.notice(Notice::SwitchoverDelayed { reason, lag_frames });
            }
        }
    }

    /// An agreement on `link`: taken only from the backup the request named (a pair's
    /// one peer when it named none).
    pub(super) fn on_switch_agree(&mut self, link: u8, id: u32) {
        let Switchover::Requesting {
            id: r, deadline, to, ..
        } = self.switchover
        else {
            return;
        };
        if r != id || self.role != Role::Primary || self.switchover_slot(to) != Some(self.link_peer(link)) {
            return;
        }
        // Stop here: frames after `frame` are the new primary's.
        let frame = self.frame_last_run;
        self.switchover = Switchover::Released {
            id,
            frame,
            deadline,
            retry_at: self.now + self.config.retry(),
            to,
        };
        self.send_all(Body::SwitchRelease { id, frame });
    }

    pub(super) fn on_switch_release(&mut self, id: u32, frame: u64) {
        if self.role != Role::Backup {
            return;
        }
        if let Switchover::Agreeing { id: a, deadline, .. } = self.switchover {
            if a == id {
                self.switchover = Switchover::Taking { id, frame, deadline };
                // The primary committed every frame up to the released one: those whose
                // commits have not arrived are fetched, not waited for.
                self.commit_highest = self.commit_highest.max(frame);
            }
        }
    }

    /// Backup: agrees once caught up; takes over once it has run the released frame.
    pub(super) fn switchover_backup_progress(&mut self) {
        match self.switchover {
            Switchover::Agreeing {
                id,
                agreed: false,
                deadline,
            } if self.caught_up() => {
                self.switchover = Switchover::Agreeing {
                    id,
                    agreed: true,
                    deadline,
                };
                self.reserve_epoch();
                self.send_all(Body::SwitchAgree { id });
            }
            Switchover::Taking { id, frame, .. }
                if self.has_state() && self.frame_last_run >= frame && self.release_handover_ready(frame) =>
            {
                self.switchover = Switchover::Idle;
                self.switchovers += 1;
                self.become_primary(Reason::SwitchoverCompleted);
                if self.role != Role::Primary {
                    // No epoch left to lead (alarmed in `become_primary`): no word that
                    // we took over; the old primary aborts at its deadline and carries on.
                    return;
                }
                self.switch_taken = Some((id, frame));
                // Our word now, not only with our first commits: with no frame coming,
                // there are none, and the old primary must not wait for one to hand over
                // (heartbeats repeat it until the commits carry it).
                self.send_all(Body::SwitchTaken { id, frame });
                self.emit_unsent();
            }
            Switchover::Taking { .. } if self.fetch_next.is_none() => self.backup_fetch_missing(),
            _ => {}
        }
    }

    /// Old primary, released: the backup now leads in `epoch`. Follow it from the
    /// released frame on; the state is the same, so no transfer is needed.
    pub(super) fn switchover_handed_over(&mut self, epoch: Epoch) {
        let Switchover::Released { frame, .. } = self.switchover else {
            return;
        };
        debug_assert_eq!(frame, self.frame_last_run);
        self.switchover = Switchover::Idle;
        self.switchovers += 1;
        self.follow_epoch(epoch);
        self.tx = None;
        self.commit_highest = self.frame_last_run;
        self.primary_heard_at = self.now;
        // Our own commits above `frame` do not exist; those at or below are history.
        self.transition(Role::Backup, SyncState::InSync, Reason::SwitchoverHandedOver);
        // Say so at once: the new primary counts a following backup (and accepts the next
        // switchover) only when it hears this node as one, and with no frames flowing
        // nothing else would go before the next heartbeat.
        for link in 0..self.links_total() {
            self.send_heartbeat(link);
        }
    }

    pub(super) fn switchover_timeout(&mut self) {
        let now = self.now;
        match self.switchover {
            Switchover::Requesting {
                id,
                deadline,
                retry_at,
                delayed,
                to,
            } => {
                if now >= deadline {
                    self.switchover = Switchover::Idle;
                    self.transition(Role::Primary, self.sync, Reason::SwitchoverAborted);
                } else if now >= retry_at {
                    self.switchover = Switchover::Requesting {
                        id,
                        deadline,
                        retry_at: now + self.config.retry(),
                        delayed,
                        to,
                    };
                    self.send_all(Body::SwitchRequest { id, to });
                }
            }
            Switchover::Released {
                id,
                frame,
                deadline,
                retry_at,
                to,
            } => {
                if now >= deadline && self.epochs.max_seen() > self.epochs.current() {
                    // A successor leads (its messages were held back in `fence`) but its
                    // word that it took over at our release never came: not an abort — we
                    // are deposed, and rejoin as any fenced primary does.
                    let theirs = self.epochs.max_seen();
                    self.demote(theirs);
                    return;
                }
                // The backup released to, silent for the detection window, is not going
                // to lead: do not hold the plant's frames until the deadline.
                let target_alive = self.switchover_slot(to).is_some_and(|slot| self.slot_alive(slot));
                if now >= deadline || !target_alive {
                    self.switchover = Switchover::Idle;
                    if self.epochs.max_seen() > self.epochs.current() {
                        // A successor led above us (its messages were held back in
                        // `fence`) and fell silent before its word came: a sink may follow
                        // its epoch, so carrying on below it would lose every output. Lead
                        // on above it, with the frames held (docs/DST.md, seed 11708).
                        self.lead_above_heard();
                        return;
                    }
                    // The backup never led: carry on as primary with the frames held.
                    self.transition(Role::Primary, self.sync, Reason::SwitchoverAborted);
                } else if now >= retry_at {
                    self.switchover = Switchover::Released {
                        id,
                        frame,
                        deadline,
                        retry_at: now + self.config.retry(),
                        to,
                    };
                    self.send_all(Body::SwitchRelease { id, frame });
                }
            }
            Switchover::Agreeing { deadline, .. }
            | Switchover::Taking { deadline, .. }
            | Switchover::Abandoned { deadline, .. } => {
                if now >= deadline {
                    self.switchover = Switchover::Idle;
                }
            }
            Switchover::Idle => {}
        }
    }
}

impl<A: App> Node<A> {
    /// The node ran nothing for about a detection window (`Node::wake`). A backup that
    /// agreed to a switchover, or was taking over at the release, gives it up: its
    /// primary, hearing nothing from it for a window, aborts a released switchover and
    /// runs on, and a release read from the socket buffer after the stall — or a takeover
    /// completed at it — would lead a history the plant no longer follows (docs/DST.md,
    /// seed 9849). A primary whose backup did stay alive aborts at its deadline.
    pub(super) fn switchover_after_stall(&mut self) {
        if self.role != Role::Backup {
            return;
        }
        if let Switchover::Agreeing { id, .. } | Switchover::Taking { id, .. } = self.switchover {
            // As long as the primary could still send its messages of this switchover.
            let deadline = self.now + self.config.switchover_timeout();
            self.switchover = Switchover::Abandoned { id, deadline };
            self.notice(Notice::SwitchoverAbandoned);
        }
    }

    /// How long this node's input path has been silent: since its last frame, or since it
    /// started when none came yet.
    pub(super) fn input_silent_for(&self) -> core::time::Duration {
        self.now.saturating_since(self.input_heard_at.unwrap_or(self.booted_at))
    }

    /// The silence after which a primary acts on its input: hands over, or raises
    /// `InputSilent` (`input_handover_ms`; `input_silence_ms` with handovers off).
    fn input_limit(&self) -> core::time::Duration {
        self.config.input_handover().unwrap_or(self.config.input_silence())
    }

    /// When the primary next needs to look at its input: when its silence reaches the
    /// limit, or when the hold after it became primary ends. A silence already acted on
    /// is looked at again on each of the backup's heartbeats (see `on_peer_input`).
    pub(super) fn input_deadline(&self) -> Option<Instant> {
        if self.role != Role::Primary || self.switchover != Switchover::Idle {
            return None;
        }
        let silent_at = self.input_heard_at.unwrap_or(self.booted_at) + self.input_limit();
        if self.input_alarm_raised {
            let hold_ends = self.primary_since + self.config.input_handover_hold();
            return (hold_ends > self.now).then_some(hold_ends);
        }
        Some(silent_at)
    }

    /// Primary: acts on an input path silent for the limit. Hands over when its in-sync
    /// backup's input is alive and has frames this node never ran, unless it became
    /// primary less than `input_handover_hold_ms` ago (no ping-pong between two flapping
    /// inputs); otherwise raises `InputSilent` once. Both inputs silent: nothing moves.
    pub(super) fn input_check(&mut self) {
        if self.role != Role::Primary || self.switchover != Switchover::Idle {
            return;
        }
        if self.input_silent_for() < self.input_limit() {
            return;
        }
        if let Some(to) = self
            .input_handover_target()
            .filter(|_| self.config.input_handover().is_some())
        {
            let id = self.rng.next_u64() as u32;
            if self.switchover_start(id, Reason::InputHandover, to) == CommandReply::Started {
                self.input_handovers += 1;
                return;
            }
        }
        if !self.input_alarm_raised {
            self.input_alarm_raised = true;
            // A source that never sent a frame is not started yet, not a failed path.
            if self.input_heard_at.is_some() {
                self.alarm(Alarm::InputSilent);
            }
        }
    }

    /// The backup to hand over to, when one would run frames this node does not get: it
    /// follows in sync, its input is alive by `input_silence_ms`, it has a frame above
    /// the last one run here, and this node has led for the hold time. A pair's: 0 (its
    /// one backup, as before groups); a group's: the id of the successor by weight among
    /// such backups.
    fn input_handover_target(&self) -> Option<u8> {
        if self.now.saturating_since(self.primary_since) < self.config.input_handover_hold() {
            return None;
        }
        if self.in_group() {
            return self.switchover_successor(true);
        }
        (self.the_peer_in_sync() && self.slot_input_ahead(super::peers::THE_PEER)).then_some(0)
    }

    /// The peer of `slot` has input alive by `input_silence_ms`, with a frame above the
    /// last one run here.
    fn slot_input_ahead(&self, slot: usize) -> bool {
        let peer = &self.peers[slot];
        peer.input_heard_at
            .is_some_and(|t| self.now.saturating_since(t) < self.config.input_silence())
            && peer.input_frame > self.frame_last_run
    }

    /// This node is a member of a group (`[[peers]]` configured), not of a pair.
    pub(super) fn in_group(&self) -> bool {
        !self.config.peers.is_empty()
    }

    /// A group's primary: the id of the backup a switchover without `--to` goes to — the
    /// one ranked highest by (weight, lowest id) among the live backups in sync, with
    /// `input_ahead` only those whose input runs ahead of this node's (an input
    /// handover). Work: one pass over at most `GROUP_PEERS_MAX` slots.
    fn switchover_successor(&self, input_ahead: bool) -> Option<u8> {
        (0..usize::from(self.peer_count))
            .filter(|&slot| !self.slot_is_witness(slot) && self.slot_in_sync(slot))
            .filter(|&slot| !input_ahead || self.slot_input_ahead(slot))
            .filter_map(|slot| self.config.peers.get(slot))
            .max_by_key(|member| (member.weight, core::cmp::Reverse(member.id)))
            .map(|member| member.id)
    }

    /// Why a group's switchover without `--to` found no backup: one is joining, or none
    /// is alive and following.
    fn switchover_no_target(&self) -> RefuseReason {
        let joining = (0..usize::from(self.peer_count)).any(|slot| {
            self.slot_alive(slot)
                && self.peers[slot]
                    .status
                    .is_some_and(|p| p.role == WireRole::Backup && p.sync == WireSync::Joining)
        });
        if joining {
            RefuseReason::BackupJoining
        } else {
            RefuseReason::NoHealthyBackup
        }
    }

    /// The slot of a switchover's target `to`: a pair's one peer for 0.
    fn switchover_slot(&self, to: u8) -> Option<usize> {
        if to == 0 {
            Some(super::peers::THE_PEER)
        } else {
            self.slot_of_node(to)
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use crate::node::{Command, CommandReply, Reason, RefuseReason, Role, SyncState};
    use crate::testing::Pair;
    use core::time::Duration;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn await_state(p: &mut Pair, i: usize, role: Role, sync: SyncState, limit: Duration) -> bool {
        let until = p.now + limit;
        p.run_until(until, |p| {
            p.nodes[i]
                .as_ref()
                .is_some_and(|n| n.role() == role && n.status().sync == sync)
        })
    }

    /// Node 0 (id 1) primary, node 1 (id 2) an in-sync backup.
    fn running() -> Pair {
        let mut p = Pair::new(5, Config::fast(), 0);
        p.start(0);
        assert!(await_state(&mut p, 0, Role::Primary, SyncState::Alone, ms(500)));
        p.start(1);
        assert!(await_state(&mut p, 1, Role::Backup, SyncState::InSync, ms(2000)));
        assert!(await_state(&mut p, 0, Role::Primary, SyncState::Paired, ms(100)));
        p
    }

    fn completed_on(p: &Pair, i: usize) -> bool {
        p.transitions
            .iter()
            .any(|(n, t)| *n == i && t.reason == Reason::SwitchoverCompleted)
    }

    /// `--to` naming the in-sync backup: today's switchover, to it.
    #[test]
    fn primary_switchover_to_backup_completes() {
        let mut p = running();
        let backup_id = p.node(1).status().node_id;
        assert_eq!(p.command(0, Command::SwitchoverTo(backup_id)), CommandReply::Started);
        assert!(await_state(&mut p, 1, Role::Primary, SyncState::Paired, ms(100)));
        assert!(completed_on(&p, 1));
        assert_eq!(p.sink.duplicates, 0);
    }

    /// A backup asked to switch over to itself forwards the request with its id; the
    /// primary checks it and hands over.
    #[test]
    fn backup_switchover_to_itself_forwarded_completes() {
        let mut p = running();
        let backup_id = p.node(1).status().node_id;
        assert_eq!(p.command(1, Command::SwitchoverTo(backup_id)), CommandReply::Forwarded);
        assert!(await_state(&mut p, 1, Role::Primary, SyncState::Paired, ms(100)));
        assert!(completed_on(&p, 1));
    }

    /// Naming the primary, or a node that is not in the pair, is refused at once, with the
    /// reason, on either node; nothing starts.
    #[test]
    fn paired_switchover_to_primary_or_unknown_refused() {
        let mut p = running();
        let primary_id = p.node(0).status().node_id;
        for i in [0, 1] {
            assert_eq!(
                p.command(i, Command::SwitchoverTo(primary_id)),
                CommandReply::Refused(RefuseReason::TargetIsPrimary),
                "node {i}"
            );
            assert_eq!(
                p.command(i, Command::SwitchoverTo(99)),
                CommandReply::Refused(RefuseReason::UnknownTarget),
                "node {i}"
            );
        }
        p.run_for(ms(50));
        assert_eq!(p.primary(), Some(0));
        assert!(p.nodes.iter().flatten().all(|n| n.status().switchover.is_none()));
    }

    /// A named backup that is still joining is refused as not in sync (without `--to`,
    /// `backup_joining`); a silent one too (without `--to`, `no_healthy_backup`).
    #[test]
    fn primary_switchover_to_backup_not_in_sync_refused() {
        let mut p = Pair::new(4, Config::fast(), 1 << 20);
        p.start(0);
        p.run_for(ms(100));
        p.start(1);
        p.run_until(p.now + ms(500), |p| {
            p.nodes[0]
                .as_ref()
                .and_then(|n| n.status().peer)
                .is_some_and(|peer| peer.sync == crate::wire::WireSync::Joining)
        });
        let backup_id = p.node(1).status().node_id;
        assert_eq!(
            p.command(0, Command::SwitchoverTo(backup_id)),
            CommandReply::Refused(RefuseReason::TargetNotInSync)
        );
        assert!(await_state(&mut p, 1, Role::Backup, SyncState::InSync, ms(2000)));
        p.crash(1);
        p.run_for(ms(200));
        assert_eq!(
            p.command(0, Command::SwitchoverTo(backup_id)),
            CommandReply::Refused(RefuseReason::TargetNotInSync)
        );
    }

    /// A request naming another node (another backup of a group) is not this backup's to
    /// take: it neither agrees nor delays.
    #[test]
    fn backup_switch_request_to_another_node_ignored() {
        let mut p = running();
        let node = p.nodes[1].as_mut().unwrap();
        node.on_switch_request(7, 42);
        assert_eq!(node.switchover, super::Switchover::Idle);
        let own = node.status().node_id;
        node.on_switch_request(7, own);
        assert!(matches!(node.switchover, super::Switchover::Agreeing { id: 7, .. }));
    }
}
