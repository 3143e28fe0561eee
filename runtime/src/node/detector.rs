//! Failure detection: heartbeats on every link, link health, and the backup's
//! confirmation probe that keeps a busy primary from being deposed.

use super::{Action, Alarm, Node, Notice, PeerStatus, Reason, Role, SyncState, TrafficClass};
use crate::app::App;
use crate::time::Instant;
use crate::wire::{Body, Envelope, Header, WireRole};

impl<A: App> Node<A> {
    /// Every valid message that is the peer's newest on its link (`fresh`) is a sign of
    /// life of the peer and of the link, and tells what the peer is now. One that is not —
    /// a keyed window's late number, once lost or reordered, which an attacker may hold
    /// back as long as it likes — tells only what the peer was: it is counted and its
    /// body handled, but a backup does not wait longer for a silent primary because of it,
    /// nor does a starting node follow the primary it names.
    pub(super) fn note_alive(&mut self, link: u8, envelope: &Envelope, fresh: bool) {
        let now = self.now;
        let h = envelope.header;
        if !fresh {
            self.links[usize::from(link)].received += 1;
            if h.origin != 0 {
                // The pair had state, whenever the peer said so.
                self.pair_had_state = true;
            }
            return;
        }
        self.note_link_heard(link);
        if self.frame_in_reach(h.frame, self.config.frame_jump_max) {
            self.peer_frame_highest = self.peer_frame_highest.max(h.frame);
        }
        let slot = &mut self.peers[self.link_peer(link)];
        slot.session = h.session;
        slot.status = Some(PeerStatus {
            node_id: h.node_id,
            role: h.role,
            epoch: h.epoch,
            sync: h.sync,
            frame: h.frame,
            origin: h.origin,
            last_heard: now,
        });
        if h.origin != 0 {
            // The pair has state: this node does not lead from a cold start while its
            // holder may be alive (see `lead_from_start`).
            self.pair_had_state = true;
            slot.cold_since = None;
        } else if slot.cold_since.is_none() {
            slot.cold_since = Some(now);
        }
        if h.role == WireRole::Primary {
            self.primary_heard_at = now;
            self.cannot_take_over_raised = false;
            if self.probe.take().is_some() {
                self.false_deaths += 1;
                self.notice(Notice::FalseDeath);
            }
            // A group's round asking for votes is its probe: the primary lives.
            if self.vote.take().is_some_and(|round| round.epoch.is_some()) {
                self.false_deaths += 1;
                self.notice(Notice::FalseDeath);
            }
        }
        self.election_on_header(&h);
        self.primary_track_backup();
    }

    /// A message whose body waits (a successor's, before its first commit) still shows
    /// that the peer and the link live; what the peer is does not change yet.
    pub(super) fn note_link_heard(&mut self, link: u8) {
        let now = self.now;
        let status = &mut self.links[usize::from(link)];
        status.last_heard = Some(now);
        status.received += 1;
        if !status.up {
            status.up = true;
            self.notice(Notice::LinkUp(link));
        }
        let slot = self.link_peer(link);
        if let Some(peer) = &mut self.peers[slot].status {
            peer.last_heard = now;
        }
    }

    /// Primary: `Paired` while a backup follows with state, `Alone` otherwise.
    pub(super) fn primary_track_backup(&mut self) {
        if self.role != Role::Primary {
            return;
        }
        // A group's primary is paired while any backup follows with state (a witness
        // holds none); a pair's, while its peer does.
        let following = (0..usize::from(self.peer_count)).any(|slot| self.slot_follows(slot));
        match (self.sync, following) {
            (SyncState::Alone, true) => {
                // A backup holds this node's state now: no longer a start-up's cold start.
                self.cold_rival = None;
                self.transition(Role::Primary, SyncState::Paired, Reason::BackupInSync);
            }
            (SyncState::Paired, false) => self.transition(Role::Primary, SyncState::Alone, Reason::BackupLost),
            _ => {}
        }
    }

    pub(super) fn on_heartbeat(&mut self, link: u8, header: &Header, sent_ns: u64, echo_ns: u64, hold_ns: u64) {
        let index = usize::from(link);
        if header.role == WireRole::Starting && self.role != Role::Starting {
            // A starting peer learns this node's fingerprint (and role) at once, not at the
            // next refresh of a busy link: one heartbeat per heartbeat it sends.
            self.heartbeat_owe(link);
        }
        self.echo[index] = (sent_ns, self.now);
        if echo_ns != 0 {
            let rtt = self.now.as_nanos().saturating_sub(echo_ns).saturating_sub(hold_ns);
            self.links[index].rtt_ns = rtt;
        }
    }

    /// What the peer's heartbeat says about its input path. The age is the peer's to set:
    /// one beyond this node's clock means "long ago", not an overflow.
    pub(super) fn on_peer_input(&mut self, link: u8, input_frame: u64, input_age_ms: u64) {
        let now = self.now;
        let slot = &mut self.peers[self.link_peer(link)];
        slot.input_frame = input_frame;
        // `Instant - Duration` saturates at the origin.
        slot.input_heard_at = (input_age_ms != u64::MAX).then(|| now - core::time::Duration::from_millis(input_age_ms));
        self.input_check();
    }

    pub(super) fn on_probe_ack(&mut self, id: u32, header: &Header) {
        // An answer from a primary was already counted as a false death in `note_alive`.
        if header.role != WireRole::Primary
            && self.role == Role::Backup
            && self.probe.is_some_and(|(p, _)| p == id)
            && !self.group_votes()
        {
            // Alive, but nobody leads: this node does.
            // groups: with three or more voters, only the successor by weight, and only
            // with a majority's votes (pre-vote), not on one peer's answer.
            self.take_over(Reason::TakeoverNoPrimary);
        }
    }

    /// When the backup's silence window ends, or a link is due to be declared down, or
    /// a primary's backup is lost. Each expiry is computed once, below, and checked
    /// against the same value (`detector_timeout`, `slot_alive`).
    pub(super) fn detection_deadline(&self) -> Option<Instant> {
        let links = (0..self.links_total()).filter_map(|link| self.link_expiry(link));
        // Paired until the last backup that said it follows falls silent
        // (`primary_track_backup`); past, that expiry wakes the node at once.
        // A pair's: its peer's, whatever it said last (as before groups).
        let paired = (self.sync == SyncState::Paired)
            .then(|| {
                (0..usize::from(self.peer_count))
                    .filter(|&slot| !self.group_votes() || self.slot_said_follows(slot))
                    .filter_map(|slot| self.slot_expiry(slot))
                    .max()
            })
            .flatten();
        self.primary_silence_expiry()
            .into_iter()
            .chain(links)
            .chain(paired)
            .min()
    }

    /// Backup, no probe out, able to act: when its primary's silence reaches the
    /// detection window and it probes (or, without state, gives up following).
    pub(super) fn primary_silence_expiry(&self) -> Option<Instant> {
        (self.role == Role::Backup
            && self.probe.is_none()
            && self.vote.is_none()
            && !self.cannot_take_over_raised
            && !self.config.witness)
            .then(|| self.primary_heard_at + self.config.detection_window())
    }

    /// When link `link`, up, is declared down: silent for the peer's window.
    pub(super) fn link_expiry(&self, link: u8) -> Option<Instant> {
        let status = &self.links[usize::from(link)];
        status
            .last_heard
            .filter(|_| status.up)
            .map(|heard| heard + self.peer_window())
    }

    pub(super) fn detector_timeout(&mut self) {
        let now = self.now;
        for link in 0..self.links_total() {
            let i = usize::from(link);
            if now >= self.heartbeat_due_on(i) {
                self.send_heartbeat(link);
            }
        }
        for link in 0..self.links_total() {
            if self.link_expiry(link).is_some_and(|t| now >= t) {
                self.links[usize::from(link)].up = false;
                self.notice(Notice::LinkDown(link));
            }
        }
        self.primary_track_backup();
        // Whatever the role now: a round past its deadline is over (no timer left due).
        self.vote_timeout();
        if self.role == Role::Backup {
            if let Some((_, deadline)) = self.probe {
                if now >= deadline {
                    self.probe = None;
                    // groups: the successor asks for votes here (a majority of the voters,
                    // the probe rule with two); a backup that is not the successor waits.
                    self.take_over(Reason::TakeoverAfterProbe);
                }
            } else if self.primary_silence_expiry().is_some_and(|t| now >= t) {
                if self.has_state() && self.group_votes() {
                    // Three voters or more: the successor asks for votes (`succession.rs`).
                    self.vote_start();
                } else if self.has_state() {
                    let id = self.probe_id_next;
                    self.probe_id_next = self.probe_id_next.wrapping_add(1);
                    self.probe = Some((id, now + self.config.probe_timeout()));
                    self.notice(Notice::ProbeSent);
                    self.send_all(Body::Probe { id });
                } else {
                    // No state to take over with: a cold start is the only way on.
                    self.cannot_take_over_raised = true;
                    self.alarm(Alarm::CannotTakeOver);
                    self.rx = None;
                    self.startup_deadline = Some(now + self.config.startup_wait());
                    self.transition(Role::Starting, SyncState::Alone, Reason::PrimaryLostWhileJoining);
                }
            }
        }
    }

    /// When the next heartbeat is due on some link.
    pub(super) fn heartbeat_deadline(&self) -> Option<Instant> {
        let due = (0..usize::from(self.links_total()))
            .map(|i| self.heartbeat_due_on(i))
            .min();
        // A quiet backup wakes when its primary has been silent too long to stay quiet,
        // and heartbeats every interval from then on.
        let quiet_ends = self.backup_quiet().then(|| self.primary_heard_at + self.quiet_limit());
        match (due, quiet_ends) {
            (Some(d), Some(q)) => Some(d.min(q)),
            (d, q) => d.or(q),
        }
    }

    /// How long a backup may not hear its primary and stay quiet: the primary's longest
    /// gap between messages, and an interval.
    fn quiet_limit(&self) -> core::time::Duration {
        self.config.heartbeat_gap_max() + self.config.heartbeat_interval()
    }

    /// When a heartbeat is due on link `i`: after the link's silence, or the refresh; for a
    /// backup following a live primary, no sooner than `backup_heartbeat_factor` intervals
    /// after the last one.
    fn heartbeat_due_on(&self, i: usize) -> Instant {
        // Even a link busy with other messages carries a heartbeat now and then, so that
        // round trips stay measured.
        let refresh = self.heartbeat_last[i] + self.heartbeat_refresh();
        let due = self.heartbeat_due[i].min(refresh);
        if self.backup_quiet() && !self.heartbeat_owed[i] {
            let factor = self.config.backup_heartbeat_factor as u32;
            due.max(self.heartbeat_last[i] + self.config.heartbeat_interval() * factor)
        } else {
            due
        }
    }

    /// The longest a link busy with other messages goes without a heartbeat: 16
    /// intervals, so that round trips stay measured; for a backup with input handovers on,
    /// a quarter of `input_handover_ms` as well. Its heartbeats alone tell its primary that
    /// its input lives, and a primary whose input died hands over on them: a link kept busy
    /// by the backup's other messages (HMI writes it forwards to a primary that runs no
    /// frame, acks) postponed that word by the 16 intervals, 1.6 s at the default 100 ms,
    /// and the handover with it (DST seed 783 with the quiet tail, 2026-11-27).
    fn heartbeat_refresh(&self) -> core::time::Duration {
        let refresh = HEARTBEAT_REFRESH_INTERVALS * self.config.heartbeat_interval();
        match self.config.input_handover() {
            Some(delay) if self.role == Role::Backup => refresh.min(delay / 4),
            _ => refresh,
        }
    }

    /// A backup with state that hears its primary at the primary's usual pace, and no
    /// switchover under way (the primary that released waits on this node's every sign).
    fn backup_quiet(&self) -> bool {
        self.config.backup_heartbeat_factor > 1
            && self.role == Role::Backup
            && self.has_state()
            && matches!(self.switchover, super::switchover::Switchover::Idle)
            && self.now.saturating_since(self.primary_heard_at) < self.quiet_limit()
    }

    /// A control message went on `link`: it is the sign of life for now; a heartbeat is
    /// due only if nothing else follows within [`crate::Config::heartbeat_gap_max`].
    pub(super) fn link_busy(&mut self, link: u8) {
        let i = usize::from(link);
        if !self.heartbeat_owed[i] {
            self.heartbeat_due[i] = self.now + self.config.heartbeat_gap_max();
        }
    }

    /// A heartbeat goes on `link` at this wake-up's timers, whatever else goes first: what
    /// it carries (an echo of the peer's new challenge, this node's role and fingerprint
    /// for a starting peer) no other message carries. A commit sent before the timers ran
    /// (a frame read after the datagram, in the same wake-up) postponed it to the
    /// heartbeat refresh, 16 intervals, past a restarted peer's start-up wait: the peer,
    /// its restart handshake not done, led a cold start beside this primary (chaos, seed
    /// 1, 2026-11-26). At most one heartbeat per heartbeat received.
    pub(super) fn heartbeat_owe(&mut self, link: u8) {
        let i = usize::from(link);
        self.heartbeat_owed[i] = true;
        self.heartbeat_due[i] = self.now;
    }

    pub(super) fn send_heartbeat(&mut self, link: u8) {
        let i = usize::from(link);
        let (echo_ns, received_at) = self.echo[i];
        let hold_ns = if echo_ns == 0 {
            0
        } else {
            self.now.saturating_since(received_at).as_nanos() as u64
        };
        let body = Body::Heartbeat {
            nonce: self.nonce,
            priority: self.config.priority,
            sent_ns: self.now.as_nanos().max(1),
            echo_ns,
            echo_hold_ns: hold_ns,
            // Frames of a session this node cannot place yet are a restart the primary has
            // not seen; a restart maps after every frame in hand (all bounded by FRAME_MAX).
            input_frame: if self.input_unplaced {
                self.frame_last_run
                    .max(self.frame_highest_received)
                    .max(self.commit_highest)
                    + 1
            } else {
                self.frame_highest_received
            },
            input_age_ms: self.input_heard_at.map_or(u64::MAX, |t| {
                u64::try_from(self.now.saturating_since(t).as_millis()).unwrap_or(u64::MAX - 1)
            }),
            fingerprint: self.fingerprint_for(self.link_peer(link)),
            challenge: self.challenge[i],
            challenge_echo: self.peer_challenge[i],
        };
        let bytes = self.encode_for(link, body);
        self.push(Action::Transmit {
            link,
            class: TrafficClass::Control,
            bytes,
        });
        // A new primary that has run no frame since it took over at a release sends no
        // commit to carry its word: the heartbeat carries it, so that the old primary
        // hands over whether or not frames flow.
        if let (super::Role::Primary, Some((id, frame))) = (self.role, self.switch_taken) {
            self.send(link, TrafficClass::Control, Body::SwitchTaken { id, frame });
        }
        self.heartbeat_due[i] = self.now + self.config.heartbeat_interval();
        self.heartbeat_last[i] = self.now;
        self.heartbeat_owed[i] = false;
    }
}

/// A link busy with other messages still carries a heartbeat this often (in intervals).
const HEARTBEAT_REFRESH_INTERVALS: u32 = 16;
