//! Start-up role: whoever comes up first is primary; two nodes starting together compare
//! (priority, random nonce) and the higher wins; equal draws are redrawn.

use super::{Action, Epoch, Node, Notice, Reason, Role, SyncState};
use crate::app::App;
use crate::wire::{Header, WireRole, WireSync};

impl<A: App> Node<A> {
    /// Any valid message: a starting node that hears a primary becomes its backup.
    pub(super) fn election_on_header(&mut self, header: &Header) {
        if self.role == Role::Starting && header.role == WireRole::Primary {
            self.startup_deadline = None;
            self.epoch = super::Epoch(header.epoch);
            self.transition(Role::Backup, SyncState::Joining, Reason::PrimaryFound);
            self.start_join(None);
        }
    }

    /// A heartbeat: remember the peer's nonce, and redraw ours on a tie.
    pub(super) fn election_on_peer(&mut self, header: &Header, nonce: u64, priority: u8) {
        self.peer_nonce = nonce;
        self.peer_priority = priority;
        if self.role == Role::Starting
            && header.role == WireRole::Starting
            && (priority, nonce) == (self.config.priority, self.nonce)
        {
            self.redraw_nonce();
        }
    }

    fn redraw_nonce(&mut self) {
        self.nonce = self.rng.next_u64();
        self.notice(Notice::NonceRedrawn);
    }

    pub(super) fn election_timeout(&mut self) {
        if self.role != Role::Starting || self.startup_deadline.is_none_or(|d| self.now < d) {
            return;
        }
        let peer = self.peer.filter(|_| self.peer_alive());
        match peer.map(|p| (p.role, p.sync)) {
            Some((WireRole::Starting, _)) => {
                let mine = (self.config.priority, self.nonce);
                let theirs = (self.peer_priority, self.peer_nonce);
                if mine > theirs {
                    self.become_primary(Reason::WonTiebreak);
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
            _ => self.become_primary(Reason::StartedFirst),
        }
    }

    /// The epoch this node would start now: above every epoch seen or reserved; `None`
    /// when that is above [`super::fencing::EPOCH_MAX`] (alarmed once: see `become_primary`).
    fn epoch_next(&self) -> Option<Epoch> {
        self.epoch_max_seen.max(self.epoch_floor).next(self.config.node_id)
    }

    /// Reserves, durably and ahead of time, the epoch a takeover would start (see
    /// [`Action::ReserveEpoch`]). Nothing to do while a reservation is still above every
    /// epoch seen.
    pub(super) fn reserve_epoch(&mut self) {
        if self.epoch_reserved.is_some_and(|r| r > self.epoch_max_seen) {
            return;
        }
        let Some(epoch) = self.epoch_next() else {
            return;
        };
        self.epoch_reserved = Some(epoch);
        self.epoch_floor = epoch;
        self.push(Action::ReserveEpoch(epoch.0));
    }

    /// Starts a new epoch as primary (start-up, takeover or switchover).
    pub(super) fn become_primary(&mut self, reason: Reason) {
        self.startup_deadline = None;
        self.probe = None;
        let reserved = self.epoch_reserved.filter(|&r| r > self.epoch_max_seen);
        let Some(epoch) = reserved.or_else(|| self.epoch_next()) else {
            // Every epoch above the highest seen is beyond EPOCH_MAX (only a forged or
            // corrupt epoch at the bound gets here, peers and files above it are refused):
            // this node must not lead; an operator resets the pair's state files.
            if !core::mem::replace(&mut self.epoch_exhausted_raised, true) {
                self.alarm(super::Alarm::EpochExhausted {
                    epoch: self.epoch_max_seen.0,
                });
            }
            return;
        };
        self.rx = None;
        self.fetch_next = None;
        self.switch_taken = None;
        self.epoch_reserved = None;
        if reserved.is_some() {
            // Durable already: no wait for the disk between the decision and the outputs.
            self.epoch_persist_pending = true;
        } else {
            self.push(Action::PersistEpoch(epoch.0));
        }
        self.epoch = epoch;
        self.epoch_max_seen = self.epoch;
        let sync = if self.peer_in_sync() {
            SyncState::Paired
        } else {
            SyncState::Alone
        };
        self.transition(Role::Primary, sync, reason);
    }
}
