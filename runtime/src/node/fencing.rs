//! Epochs and fencing: a node that sees a higher epoch than its own demotes at once.

use super::{Node, ResyncCause, Role};
use crate::app::App;
use crate::wire::{Body, Envelope, WireRole};

/// A primary's term. The high 56 bits count terms; the low 8 bits are the node id of the
/// primary that started it, so two nodes can never start the same epoch, even when both
/// take over at once during a partition. Epochs compare as plain integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Epoch(pub u64);

/// The highest epoch a node accepts from a peer or its state file, and the highest it
/// starts itself: term 2^40 − 1 (a takeover a second for 34,000 years). Anything above is
/// forged or corrupt: accepting it would leave too few terms above it (at the top of the
/// u64 range the next term wrapped to epoch 0x1, which every sink rejects).
pub const EPOCH_MAX: u64 = (1 << 48) - 1;

impl Epoch {
    /// The epoch a node with `node_id` starts when the highest it has seen is `self`, or
    /// `None` when that would be above [`EPOCH_MAX`]: only reachable from an epoch at the
    /// bound itself, which a node refuses to start above rather than wrap.
    pub fn next(self, node_id: u8) -> Option<Epoch> {
        let term = (self.0 >> 8).checked_add(1)?;
        let epoch = term.checked_mul(256)? | u64::from(node_id);
        (epoch <= EPOCH_MAX).then_some(Epoch(epoch))
    }

    /// The term counter, without the node id.
    pub fn term(self) -> u64 {
        self.0 >> 8
    }

    /// The node that started this epoch.
    pub fn node_id(self) -> u8 {
        (self.0 & 0xFF) as u8
    }
}

/// An epoch as people read it, the same in every tool (the node's log, twinctl, the
/// simulators): the number in decimal — the value the JSON carries — then `term.node`:
/// `514 (2.2)` is term 2, started by node 2; `0 (none)` before any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochText(pub u64);

impl core::fmt::Display for EpochText {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if self.0 == 0 {
            return write!(f, "0 (none)");
        }
        let e = Epoch(self.0);
        write!(f, "{} ({}.{})", self.0, e.term(), e.node_id())
    }
}

impl<A: App> Node<A> {
    /// Applies the epoch rules to a valid message. Returns false when the message must be
    /// ignored (it comes from a deposed primary, or from a successor not yet confirmed).
    pub(super) fn fence(&mut self, link: u8, envelope: &Envelope) -> bool {
        let header = &envelope.header;
        if !self.epoch_in_range(header.epoch) {
            return false;
        }
        let theirs = Epoch(header.epoch);
        if header.role == WireRole::Primary && theirs < self.epochs.max_seen() {
            self.rejections.stale_epoch += 1;
            if self.role == Role::Starting && header.origin != 0 {
                // A primary with state below the epoch this node announces (a reservation
                // it may have led): not followed, but alive with the pair's state — this
                // node does not lead a cold start next to it; it waits for it to lead
                // above the announced epoch (`Reason::EpochRaised`). Nor is that peer cold
                // any longer, whatever it said before it led (a restart without state):
                // `pair_peer_cold` judged by its last fresh word let this node lead a
                // second cold start beside it (DST seeds 4973 and 9660 of 2000..9999,
                // 2026-11-27).
                self.pair_had_state = true;
                let slot = self.link_peer(link);
                self.peers[slot].cold_since = None;
            }
            return false;
        }
        // A restart must start above every epoch the sink may have accepted, including
        // the ones this node only heard of. Not this node's own vote round's epoch,
        // announced back by a starting voter that granted it (its floor): no one else can
        // have led an epoch carrying this node's id, and counted as seen it made the
        // grant moot — the round asked again above it, granted, moot again, for ever
        // (DST `--nodes 3 --seed 0`, invariant 5).
        let own_round = header.role == WireRole::Starting && self.vote.is_some_and(|r| r.epoch == Some(theirs));
        if !own_round {
            if let Some(action) = self.epochs.heard(theirs) {
                self.push(action);
            }
        }
        if theirs > self.epochs.current()
            && header.role == WireRole::Starting
            && self.role == Role::Primary
            // A starting witness announces the epochs it voted for, which it never led.
            && !self.slot_is_witness(self.link_peer(link))
            && self.switchover.primary_may_run()
        {
            // A starting peer announces an epoch above ours: its reservation, which it may
            // have led (a sink may follow it) with the background write recording that
            // lost in a crash. It rejects our heartbeats as stale until we lead above it.
            // A switchover still asking is given up: a starting node cannot take over.
            if self.group_votes() {
                // groups: the epoch may have been led with a majority's votes while this
                // primary was cut off, and its outputs gone past this one's state: leading
                // above it would decide those frames anew (DST `--nodes 3 --seed 1172`).
                // Demoted with its state kept; the group elects (`succession.rs`).
                self.demote(theirs);
                return true;
            }
            self.lead_above_heard();
            return true;
        }
        if theirs <= self.epochs.current() || header.role == WireRole::Starting {
            return true;
        }
        match self.role {
            Role::Primary => match (self.switchover, header.role) {
                (super::Switchover::Released { id, frame, .. }, WireRole::Primary) => match envelope.body {
                    // It says it took over at our release: from the state we released; we
                    // follow without a transfer.
                    Body::SwitchTaken { id: taken, frame: at } if (taken, at) == (id, frame) => {
                        self.switchover_handed_over(theirs)
                    }
                    // A commit at or below our release: it took over some other way (after
                    // a probe, the release lost), with a history of its own. Rejoin with a
                    // transfer.
                    Body::Commit(commit) if commit.frame <= frame => self.fenced_by(theirs, header),
                    // Not yet telling — a commit above our release proves nothing by
                    // itself (a successor that took over after a probe below it, its
                    // earlier commits lost, looks the same): wait for its word, which goes
                    // with its first commits, still not running frames. Without it by our
                    // deadline we give up the switchover and are fenced like any deposed
                    // primary. The successor is alive though (with a slow cycle its first
                    // commit may be several detection windows away): the switchover must
                    // not be abandoned for a silence that is not one.
                    _ => {
                        self.note_link_heard(link);
                        return false;
                    }
                },
                _ => self.fenced_by(theirs, header),
            },
            Role::Backup if header.role == WireRole::Primary => {
                // groups: a backup that hears a successor of the same origin follows it
                // without a transfer when it holds no commit the successor lacks.
                let had_state = self.has_state();
                let following = self.epochs.current().0 != 0;
                self.follow_epoch(theirs);
                // A node whose state goes back to a cold start keeps it against a later
                // one's primary, joining or not: a rejoin of its own history keeps its
                // state (DST seed 1536: a thawed primary fenced first by its successor's
                // epoch, then by the restarted successor's cold start).
                if self.keeps_state_against(header.origin) {
                    self.keep_state_for_operator(header.origin);
                } else if following && self.group_follows_without_transfer(header.origin) {
                    // A group's successor, elected by votes, of this node's cold start:
                    // followed as it is (`vote_check_commit` rejoins on a differing commit).
                } else if following && (had_state || self.rx.is_some()) {
                    // A primary we did not follow before: its history may differ from ours.
                    self.follow_origin(header.origin);
                    self.start_join(Some(ResyncCause::Fenced));
                }
            }
            Role::Backup | Role::Starting => {}
        }
        true
    }

    /// Whether a peer's `epoch` is at most [`EPOCH_MAX`]. One above is forged or corrupt:
    /// its message is dropped before it can touch the epoch rules (or the state file),
    /// counted each time, alarmed once. Checked by every path that hears an epoch:
    /// `fence`, and before it the refused peer's and the same id's (`pairing`).
    /// A message authenticated under the pair's key but refused as not fresh (a session
    /// the restart handshake has not verified, or a late copy) is read for its epoch
    /// alone: whoever sent it led or announced that epoch, so a sink may follow it. The
    /// node writes it down as heard, and a primary below it leads on above it
    /// (`Reason::EpochRaised`), as when a starting peer announces it: in an asymmetric
    /// partition, where the handshake cannot complete, a primary that hears its peer
    /// lead a higher epoch would otherwise run on below the sink's fence, every output
    /// lost (docs/DST.md, "Orphaned losses"). Nothing else of the message is taken; a
    /// replay can raise an epoch only to one really led, once.
    pub(super) fn refused_epoch(&mut self, envelope: &Envelope) {
        let header = &envelope.header;
        if header.epoch > EPOCH_MAX {
            return;
        }
        let theirs = Epoch(header.epoch);
        if theirs <= self.epochs.max_seen() {
            return;
        }
        if let Some(action) = self.epochs.heard(theirs) {
            self.push(action);
        }
        if self.role == Role::Primary && theirs > self.epochs.current() && self.switchover.primary_may_run() {
            self.lead_above_heard();
        }
    }

    /// A primary that learned of an epoch above its own (a starting peer's announcement, a
    /// refused authentic message, a successor gone silent before its word) leads on above
    /// every epoch it has seen (`Reason::EpochRaised`), its state and frames kept; any
    /// switchover is over.
    pub(super) fn lead_above_heard(&mut self) {
        self.switchover = super::Switchover::Idle;
        self.become_primary(super::Reason::EpochRaised);
    }

    pub(super) fn epoch_in_range(&mut self, epoch: u64) -> bool {
        if epoch <= EPOCH_MAX {
            return true;
        }
        self.rejections.epoch_out_of_range += 1;
        if !core::mem::replace(&mut self.epoch_refused_raised, true) {
            self.alarm(super::Alarm::EpochRefused { epoch });
        }
        false
    }

    /// Follows the epoch `theirs` (heard first, in `fence`): a node that restarts alone
    /// must start above every epoch a sink may have accepted, so one above what this node
    /// stored is persisted too, without waiting (see `Epochs::follow`).
    pub(super) fn follow_epoch(&mut self, theirs: Epoch) {
        if let Some(action) = self.epochs.follow(theirs) {
            self.push(action);
        }
    }

    /// The state of a primary of `origin` goes back to a later cold start than this
    /// node's (one made while this node was frozen or cut off, by a node that did not
    /// know or was told to): following it would replace this node's state with a colder
    /// one. A state of an earlier cold start is followed as usual (this node's is the
    /// colder one; an operator's `force-primary` of the older one fences it that way).
    /// A cold start that ran no frame holds nothing to keep — the program's initial state,
    /// which a join gives as well (DST seeds 2144, 2744 and 13906 of 2000..19999: a node
    /// whose input was dead kept that for the operator, then led it again beside the
    /// pair's state when the other fell silent).
    pub(super) fn keeps_state_against(&self, origin: u64) -> bool {
        self.origin.0 != 0 && self.frame_last_run != 0 && origin > self.origin.0
    }

    /// The primary of `header` led cold at the same start-up as this node: this node led
    /// a cold start from the start-up role while that very incarnation of its peer (its
    /// session, and the start-up nonce of its latest heartbeat) was last heard without
    /// state, has had no backup follow it since, and the two cold starts are of one term
    /// — neither had heard the other's epoch when it led.
    /// Each decided alone because the other fell silent between its decision and its first
    /// heartbeat (a host stall at boot): two states a few cycles old, neither warmer, and
    /// no operator needed to choose. A cold start of a later term, or by a restarted peer,
    /// is one made knowing the pair had led (or forgetting it): this node keeps its state.
    fn startup_collision(&self, header: &crate::wire::Header) -> bool {
        self.cold_rival == Some((header.node_id, header.session, self.the_peer().nonce))
            && Epoch(header.origin).term() == self.origin.term()
    }

    /// A primary fenced by `theirs`: it rejoins as backup, unless the new primary's state
    /// goes back to another, later cold start.
    fn fenced_by(&mut self, theirs: Epoch, header: &crate::wire::Header) {
        let origin = header.origin;
        let collision = self.startup_collision(header);
        if self.keeps_state_against(origin) && !collision {
            self.follow_epoch(theirs);
            self.switchover = super::Switchover::Idle;
            self.tx = None;
            self.keep_state_for_operator(origin);
        } else {
            // Two cold starts of one term have distinct origins (an epoch names its node).
            let reason = if collision {
                super::Reason::FencedAtStartup
            } else {
                super::Reason::FencedByEpoch
            };
            self.follow_origin(origin);
            self.demote_because(theirs, reason);
        }
    }

    /// Stops (emitting or following) without giving the state up: the operator chooses
    /// between this node's state (`force-primary`) and the primary's (`rejoin`).
    pub(super) fn keep_state_for_operator(&mut self, origin: u64) {
        self.keep_state = true;
        self.rx = None;
        self.probe = None;
        self.fetch_next = None;
        self.startup_deadline = Some(self.now + self.config.startup_wait());
        self.alarm(super::Alarm::ColderPrimary {
            origin,
            own_origin: self.origin.0,
        });
        self.transition(Role::Starting, super::SyncState::Alone, super::Reason::KeepingState);
    }

    /// A primary that saw a higher epoch: stop emitting now, rejoin as backup.
    pub(super) fn demote(&mut self, theirs: Epoch) {
        self.demote_because(theirs, super::Reason::FencedByEpoch);
    }

    fn demote_because(&mut self, theirs: Epoch, reason: super::Reason) {
        self.follow_epoch(theirs);
        self.switchover = super::Switchover::Idle;
        self.tx = None;
        self.cold_rival = None;
        self.transition(Role::Backup, super::SyncState::Joining, reason);
        self.start_join(None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_text_is_decimal_then_term_dot_node() {
        assert_eq!(EpochText(514).to_string(), "514 (2.2)");
        assert_eq!(EpochText(0x101).to_string(), "257 (1.1)");
        assert_eq!(EpochText(0).to_string(), "0 (none)");
    }

    #[test]
    fn epoch_next_is_higher_and_names_the_node() {
        let e = Epoch(0).next(7).unwrap();
        assert_eq!(e.term(), 1);
        assert_eq!(e.node_id(), 7);
        let f = e.next(3).unwrap();
        assert!(f > e);
        assert_eq!(f.term(), 2);
        // Two nodes taking over from the same epoch never collide.
        assert_ne!(e.next(1), e.next(2));
    }

    #[test]
    fn epoch_next_at_the_bound_is_none_never_a_wrap() {
        // The old arithmetic wrapped the top term to epoch 0x1 (or overflowed).
        assert_eq!(Epoch(u64::MAX).next(1), None);
        assert_eq!(Epoch(EPOCH_MAX).next(1), None);
        assert_eq!(Epoch(EPOCH_MAX - 255).next(2), None);
        let last = Epoch(EPOCH_MAX - 511).next(9).unwrap();
        assert!(last.0 <= EPOCH_MAX && last.term() == EPOCH_MAX >> 8);
    }

    proptest::proptest! {
        #[test]
        fn epoch_next_is_above_or_none(epoch in proptest::num::u64::ANY, node in 1u8..) {
            match Epoch(epoch).next(node) {
                Some(next) => {
                    proptest::prop_assert!(next > Epoch(epoch) && next.0 <= EPOCH_MAX);
                    proptest::prop_assert_eq!(next.node_id(), node);
                }
                None => proptest::prop_assert!(epoch > EPOCH_MAX - 256),
            }
        }
    }
}
