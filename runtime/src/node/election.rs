//! Start-up role: whoever comes up first is primary; two nodes starting together compare
//! (priority, random nonce) and the higher wins; equal draws are redrawn.

use super::{Alarm, Epoch, Node, Notice, Reason, Role, SyncState};
use crate::app::App;
use crate::wire::{Header, WireRole, WireSync};

impl<A: App> Node<A> {
    /// Any valid message: a starting node that hears a primary becomes its backup.
    pub(super) fn election_on_header(&mut self, header: &Header) {
        // A node that keeps its state for the operator does not follow a primary of
        // another cold start (see `Alarm::ColderPrimary`).
        let keeping = self.keep_state && header.origin != self.origin.0;
        if self.role == Role::Starting && header.role == WireRole::Primary && !keeping {
            if !self.config.witness && self.keeps_state_against(header.origin) {
                // Starting with the pair's state (its own history's primary fell silent
                // while it rejoined, DST seed 1977): a primary of a later cold start is
                // the operator's to choose, as for a fenced primary.
                self.keep_state_for_operator(header.origin);
                return;
            }
            self.startup_deadline = None;
            if self.config.witness {
                // A witness holds no state: it follows the epoch, to vote, and joins nothing.
                self.follow_epoch(super::Epoch(header.epoch));
                self.transition(Role::Backup, SyncState::Alone, Reason::PrimaryFound);
                return;
            }
            self.follow_origin(header.origin);
            self.follow_epoch(super::Epoch(header.epoch));
            self.transition(Role::Backup, SyncState::Joining, Reason::PrimaryFound);
            self.start_join(None);
        }
    }

    /// Following a primary whose state goes back to another cold start than this node's:
    /// this node's state is given up for the primary's, so until its transfer completes
    /// it holds none of the pair's — should the primary fall silent during the join, it
    /// does not lead with what it gave up while the holder may be alive
    /// (`lead_from_start`). A backup of the same origin keeps its own: a resync after a
    /// fence or a divergence still leads with real state.
    pub(super) fn follow_origin(&mut self, origin: u64) {
        if origin != self.origin.0 {
            self.origin = Epoch(0);
        }
    }

    /// A heartbeat on `link`: remember its peer's nonce, and redraw ours on a tie.
    pub(super) fn election_on_peer(&mut self, link: u8, header: &Header, nonce: u64, priority: u8) {
        let slot = &mut self.peers[self.link_peer(link)];
        slot.nonce = nonce;
        slot.priority = priority;
        if self.role == Role::Starting
            && header.role == WireRole::Starting
            && (priority, nonce) == (self.config.priority, self.nonce)
        {
            self.redraw_nonce();
        }
    }

    pub(super) fn redraw_nonce(&mut self) {
        self.nonce = self.rng.next_u64();
        self.notice(Notice::NonceRedrawn);
    }

    pub(super) fn election_timeout(&mut self) {
        if self.role != Role::Starting || self.startup_deadline.is_none_or(|d| self.now < d) {
            return;
        }
        if self.refusal_holds() {
            // A refused peer leads, or would win: one leader, even of two that do not pair.
            self.startup_deadline = Some(self.now + self.config.startup_wait());
            return;
        }
        if self.group_votes() {
            // A group's starting node weighs every live peer (`succession.rs`).
            self.group_election_timeout();
            return;
        }
        let peer = self.the_peer().status.filter(|_| self.the_peer_alive());
        match peer.map(|p| (p.role, p.sync)) {
            Some((WireRole::Primary, _)) if self.keep_state => {
                // Keeping this node's state for the operator, next to a primary of
                // another cold start: not a second leader.
                self.startup_deadline = Some(self.now + self.config.startup_wait());
            }
            Some((WireRole::Starting, _)) => {
                // A node that holds state wins over one that does not: the pair's state
                // is not replaced by a cold one when both start together.
                let holds = |origin: u64| origin != 0;
                let mine = (holds(self.origin.0), self.config.priority, self.nonce);
                let theirs = (
                    peer.is_some_and(|p| holds(p.origin)),
                    self.the_peer().priority,
                    self.the_peer().nonce,
                );
                if mine > theirs {
                    self.lead_from_start(Reason::WonTiebreak);
                } else {
                    if mine == theirs {
                        self.redraw_nonce();
                    }
                    // The winner becomes primary at its deadline; we then join it.
                    self.startup_deadline = Some(self.now + self.config.startup_wait());
                }
            }
            Some((WireRole::Backup, WireSync::InSync | WireSync::Lagging)) => {
                // A backup with state will take over from the primary it lost; join it then.
                self.startup_deadline = Some(self.now + self.config.startup_wait());
            }
            _ => self.lead_from_start(Reason::StartedFirst),
        }
    }

    /// Leads from the start-up role, unless this node has no state while the pair had
    /// state and its holder may be alive: a frozen primary comes back, and a cold start
    /// would have replaced its state (fenced, it would have taken the cold one). The
    /// holder is given up for gone only by an operator (`force-primary`, or
    /// `allow_cold_start`), or when the peer is heard without state itself — for a
    /// start-up wait: a node that thaws reads its socket's backlog first, and a peer's
    /// heartbeats from before it took state must not count as its word now.
    pub(super) fn lead_from_start(&mut self, reason: Reason) {
        if self.cold_start_held() {
            return;
        }
        self.become_primary(reason);
    }

    /// Whether a lead from the start-up role is held (`lead_from_start`): a cold start
    /// while the holder of the state may be alive. Held, the alarm is raised once and
    /// the start-up decision is taken again a start-up wait later.
    pub(super) fn cold_start_held(&mut self) -> bool {
        let wait = self.config.startup_wait();
        // In a group the holder may be any peer heard with state: a cold start needs every
        // one heard cold (`group_peers_cold`).
        let peer_cold = if self.group_votes() {
            self.group_peers_cold(wait)
        } else {
            self.pair_peer_cold(wait)
        };
        // A group whose state file (or whose peers) show an epoch had state: its holder
        // may be cut off, not gone (a pair's node learns it from its peer in this run).
        let had_state = self.pair_had_state || (self.group_votes() && self.epochs.max_seen().0 != 0);
        if self.origin.0 == 0 && had_state && !self.cold_start_allowed && !peer_cold {
            if !self.cold_start_held_raised {
                self.cold_start_held_raised = true;
                self.alarm(Alarm::ColdStartHeld);
            }
            self.startup_deadline = Some(self.now + self.config.startup_wait());
            return true;
        }
        false
    }

    /// The pair's peer is alive and has said it holds no state for `wait`.
    fn pair_peer_cold(&self, wait: core::time::Duration) -> bool {
        self.the_peer()
            .status
            .filter(|_| self.the_peer_alive())
            .is_some_and(|p| p.origin == 0)
            && self
                .the_peer()
                .cold_since
                .is_some_and(|since| self.now.saturating_since(since) >= wait)
    }

    /// Reserves, durably and ahead of time, the epoch a takeover would start (see
    /// [`super::Action::ReserveEpoch`]). Nothing to do while a reservation is still above every
    /// epoch seen.
    pub(super) fn reserve_epoch(&mut self) {
        if self.epochs.reservation_holds() {
            return;
        }
        // None above `EPOCH_MAX`: alarmed once when it would lead (`become_primary`).
        let Some(epoch) = self.epochs.next(self.config.node_id) else {
            return;
        };
        let action = self.epochs.reserve(epoch);
        self.push(action);
    }

    /// Starts a new epoch as primary (start-up, takeover or switchover).
    pub(super) fn become_primary(&mut self, reason: Reason) {
        self.startup_deadline = None;
        self.probe = None;
        let Some((epoch, reserved)) = self.epochs.lead_candidate(self.config.node_id) else {
            // Every epoch above the highest seen is beyond EPOCH_MAX (only a forged or
            // corrupt epoch at the bound gets here, peers and files above it are refused):
            // this node must not lead; an operator resets the pair's state files.
            if !core::mem::replace(&mut self.epoch_exhausted_raised, true) {
                self.alarm(super::Alarm::EpochExhausted {
                    epoch: self.epochs.max_seen().0,
                });
            }
            return;
        };
        self.rx = None;
        self.fetch_next = None;
        self.switch_taken = None;
        // A backup with state inherits its primary's commits, as far as this. A node
        // leading from the start-up role holds at most commits of a primary it was still
        // joining, of a history it never took: none inherited. A primary leading on in a
        // higher epoch (`EpochRaised`) keeps what it inherited: a takeover's burst that
        // waits for its input still decides those frames against the commits it lacks,
        // with `Alarm::CommitLost` (DST seed 897, 2026-11-27: before, they went silent).
        self.inherited_to = match self.role {
            Role::Backup if self.has_state() => self.commit_highest,
            Role::Primary => self.inherited_to,
            _ => 0,
        };
        // A reserved epoch is durable already: no wait for the disk between the decision
        // and the outputs.
        if let Some(action) = self.epochs.lead(epoch, reserved) {
            self.push(action);
        }
        // A pair's cold start from the start-up role beside a peer last heard without
        // state, which may lead cold too before it hears this node (`startup_collision`).
        let cold_start = self.origin.0 == 0 && matches!(reason, Reason::StartedFirst | Reason::WonTiebreak);
        let peer = self.the_peer();
        self.cold_rival = peer
            .status
            .filter(|p| cold_start && p.origin == 0 && !self.group_votes())
            .map(|p| (p.node_id, peer.session, peer.nonce));
        if self.origin.0 == 0 {
            // A cold start: the state this node leads with begins here.
            self.origin = epoch;
        }
        // A node that kept its state for the operator and leads it now waits no more.
        self.keep_state = false;
        self.pair_had_state = true;
        self.cold_start_held_raised = false;
        // Paired when any backup follows in sync (a pair's: its peer).
        let in_sync = (0..usize::from(self.peer_count)).any(|slot| self.slot_in_sync(slot));
        let sync = if in_sync { SyncState::Paired } else { SyncState::Alone };
        self.transition(Role::Primary, sync, reason);
    }
}
