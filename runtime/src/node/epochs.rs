//! The node's epoch bookkeeping in one place: the epoch it leads or follows, the highest
//! it has seen, its reservation and the floor reservations leave, and what it has asked
//! the shell to store. [`Epochs`]'s methods are the only way to change them, and they
//! assert the invariants the fencing rests on (cheap, always on, as TigerBeetle does):
//!
//! - the epochs this node leads strictly increase (two terms of one node never share an
//!   epoch, and a sink that saw the first never takes the second as stale);
//! - the floor covers every reservation (a restart starts above any epoch it may lead);
//! - the current epoch never exceeds the highest seen (what the node leads or follows
//!   has been through the fencing rules);
//! - the persisted epoch never decreases (the shell's file only goes up; a write that
//!   would lower it is a bookkeeping bug, not a value to store).
//!
//! # Durable decisions
//!
//! Every write to the state file is decided here, in the core, and carried by an action;
//! the shell (and the simulators, which boot nodes from what the actions wrote) only
//! carries it out:
//!
//! | decision | when | action |
//! | --- | --- | --- |
//! | an epoch heard above every one seen | [`Epochs::heard`]: from a peer in `fence`, or a refused peer | [`Action::PersistEpoch`] (before any output) |
//! | a new epoch led that was not reserved | [`Epochs::lead`] | [`Action::PersistEpoch`] (before its outputs) |
//! | the epoch a takeover would start | [`Epochs::reserve`]: a backup with state | [`Action::ReserveEpoch`] |
//! | a reserved epoch, once led | [`Epochs::led_durably`]: after its first outputs | [`Action::PersistEpochLater`] |
//! | the epoch followed, above the one stored | [`Epochs::follow`]: a backup's primary, the successor of a switchover or a fence | [`Action::PersistEpochLater`] |
//!
//! The last one was the shell's own decision until 2026-11-26 (`persist_followed_epoch`
//! in `io/mod.rs`, after every batch of actions). It rarely writes: an epoch followed
//! has been heard first, and hearing it wrote it already; it keeps the rule that a node
//! restarting alone starts above every epoch a sink may have accepted, whatever the path.

use super::{Action, Epoch};

/// The epoch bookkeeping of one node; see the module documentation.
#[derive(Debug, Clone)]
pub(super) struct Epochs {
    /// The epoch this node leads (primary) or follows (backup); 0 before any.
    current: Epoch,
    /// The highest epoch seen anywhere, including the persisted one.
    max_seen: Epoch,
    /// An epoch reserved durably ([`Action::ReserveEpoch`]) and not led yet.
    reserved: Option<Epoch>,
    /// The highest epoch reserved, in this run or before a restart: the next epoch this
    /// node starts is above it.
    floor: Epoch,
    /// The floor the state file held at start-up: reservations (and a group's votes)
    /// of an earlier run, which may have been led with the write that records it lost.
    floor_at_boot: Epoch,
    /// Leading a reserved epoch not yet persisted as one led: persisted once the first
    /// outputs are out (see [`Epochs::led_durably`]).
    persist_pending: bool,
    /// The highest epoch this node asked to persist ([`Action::PersistEpoch`] or
    /// [`Action::PersistEpochLater`]), or persisted before this run.
    persisted: Epoch,
    /// The last epoch this node led in this run (0: none).
    led_last: Epoch,
}

impl Epochs {
    /// At start-up, from the state file: the highest epoch persisted and the highest
    /// reserved (both bounded by the shell's reader; see `EPOCH_MAX`).
    pub fn new(persisted: u64, reserved: u64) -> Self {
        Epochs {
            current: Epoch(0),
            // A reservation may have been led, and the background write that records a
            // led epoch lost in a crash: a sink may follow it. Counted as seen, so that a
            // primary below it is not followed (it raises its epoch when it hears ours
            // announced: `Reason::EpochRaised`).
            max_seen: Epoch(persisted.max(reserved)),
            reserved: None,
            floor: Epoch(reserved),
            floor_at_boot: Epoch(reserved),
            persist_pending: false,
            persisted: Epoch(persisted),
            led_last: Epoch(0),
        }
    }

    /// A witness's state file: its reservations are the votes it gave (`Epochs::vote`),
    /// never an epoch it led, so they are not epochs seen — counted as such, its
    /// announcement made a candidate's own grant moot (DST `--nodes 2 --witness --seed
    /// 70`). The floor stays: it grants nothing at or below it again.
    pub fn votes_only(mut self, witness: bool) -> Self {
        if witness {
            self.max_seen = self.persisted;
        }
        self
    }

    /// The epoch this node leads or follows.
    pub fn current(&self) -> Epoch {
        self.current
    }

    /// The highest epoch seen anywhere.
    pub fn max_seen(&self) -> Epoch {
        self.max_seen
    }

    /// What a starting node announces in its heartbeats: the highest epoch it knows,
    /// its reservation included (it may have led it, and the background write that
    /// records a led epoch may have been lost in a crash).
    pub fn announced(&self) -> Epoch {
        self.current.max(self.max_seen).max(self.floor)
    }

    /// What a group's starting member announces: the highest epoch it may have led —
    /// every epoch seen (one it led in this run is among them) and what its state file
    /// reserved before this run. Not the reservations and votes of this run that it never
    /// led: a peer counts an announced epoch as seen, rejects a primary below it as stale
    /// and refuses votes at or below it, so announced they made a member reject the
    /// group's live primary for good (DST `--nodes 4 --seed 3002`: a backup cut off with a
    /// starting member that announced its vote rounds) and made every grant moot, each
    /// granted epoch echoed back by a second starting voter (`--nodes 4 --seed 2721`).
    /// A pair's starting node announces its floor as before (`announced`).
    pub fn may_have_led(&self) -> Epoch {
        self.current.max(self.max_seen).max(self.floor_at_boot)
    }

    /// The epoch this node would start now: above every epoch seen or reserved; `None`
    /// when that is above [`super::EPOCH_MAX`].
    pub fn next(&self, node_id: u8) -> Option<Epoch> {
        self.max_seen.max(self.floor).next(node_id)
    }

    /// Whether a reservation is still above every epoch seen (a takeover would lead it).
    pub fn reservation_holds(&self) -> bool {
        self.reserved.is_some_and(|r| r > self.max_seen)
    }

    /// An epoch heard from a peer (already checked against `EPOCH_MAX`): a restart must
    /// start above every epoch a sink may have accepted, including the ones this node
    /// only heard of, so one above every epoch seen is persisted before the next action.
    #[must_use]
    pub fn heard(&mut self, theirs: Epoch) -> Option<Action> {
        assert!(
            theirs.0 <= super::EPOCH_MAX,
            "epochs: heard {theirs:?} above EPOCH_MAX (callers drop it: `epoch_in_range`)"
        );
        if theirs <= self.max_seen {
            return None;
        }
        self.max_seen = theirs;
        Some(self.persist(theirs, Action::PersistEpoch(theirs.0)))
    }

    /// Follows `theirs` (a primary's epoch, heard first): persisted without waiting when
    /// it is above what this node stored, so that it restarts above it even alone.
    #[must_use]
    pub fn follow(&mut self, theirs: Epoch) -> Option<Action> {
        assert!(
            theirs <= self.max_seen,
            "epochs: following {theirs:?} above the highest seen {:?}",
            self.max_seen
        );
        self.current = theirs;
        (theirs > self.persisted).then(|| self.persist(theirs, Action::PersistEpochLater(theirs.0)))
    }

    /// Reserves `epoch` (from [`Epochs::next`]) as the one a takeover would lead.
    #[must_use]
    pub fn reserve(&mut self, epoch: Epoch) -> Action {
        assert!(
            epoch > self.floor && epoch > self.max_seen,
            "epochs: reserving {epoch:?} at or below the floor {:?} or the highest seen {:?}",
            self.floor,
            self.max_seen
        );
        self.reserved = Some(epoch);
        self.floor = epoch;
        self.check();
        Action::ReserveEpoch(epoch.0)
    }

    /// A group's candidate refused by a voter whose bar is `bar` (it granted or asked
    /// for that epoch): reserves the next epoch above it and every epoch seen or
    /// reserved, the one the next round asks for. `None` when that is above
    /// [`super::EPOCH_MAX`] (the node then stands no more: an operator's matter).
    #[must_use]
    pub fn reserve_above(&mut self, bar: Epoch, node_id: u8) -> Option<Action> {
        let epoch = self.max_seen.max(self.floor).max(bar).next(node_id)?;
        Some(self.reserve(epoch))
    }

    /// A vote granted for `epoch`, a group's candidate's (issue 16): the floor rises to
    /// it, so that after a restart this node grants nothing at or below it again and
    /// starts above it; a reservation below it is dropped (the next one goes above).
    /// Returns the write that makes the grant durable before it leaves
    /// ([`Action::ReserveEpoch`]: stored before the next action), or `None` when the
    /// floor covers it already.
    #[must_use]
    pub fn vote(&mut self, epoch: Epoch) -> Option<Action> {
        if epoch <= self.floor {
            return None;
        }
        if self.reserved.is_some_and(|r| r < epoch) {
            self.reserved = None;
        }
        self.floor = epoch;
        self.check();
        Some(Action::ReserveEpoch(epoch.0))
    }

    /// The epoch a new term would lead: the reservation while it is above every epoch
    /// seen (`true`: durable already), else the next one; `None` when every epoch above
    /// the highest seen is beyond `EPOCH_MAX`.
    pub fn lead_candidate(&self, node_id: u8) -> Option<(Epoch, bool)> {
        match self.reserved.filter(|&r| r > self.max_seen) {
            Some(reserved) => Some((reserved, true)),
            None => self.next(node_id).map(|e| (e, false)),
        }
    }

    /// Leads `epoch` (from [`Epochs::lead_candidate`]). A reserved epoch is durable
    /// already: no wait for the disk between the decision and the outputs, and it is
    /// recorded as led later ([`Epochs::led_durably`]); any other is persisted first.
    #[must_use]
    pub fn lead(&mut self, epoch: Epoch, reserved: bool) -> Option<Action> {
        assert!(
            epoch > self.led_last,
            "epochs: leading {epoch:?}, not above the last led {:?}",
            self.led_last
        );
        assert!(
            epoch > self.max_seen,
            "epochs: leading {epoch:?}, not above the highest seen {:?}",
            self.max_seen
        );
        assert!(
            !reserved || self.reserved == Some(epoch),
            "epochs: leading {epoch:?} as reserved, but the reservation is {:?}",
            self.reserved
        );
        self.reserved = None;
        self.current = epoch;
        self.max_seen = epoch;
        self.led_last = epoch;
        let action = if reserved {
            self.persist_pending = true;
            None
        } else {
            Some(self.persist(epoch, Action::PersistEpoch(epoch.0)))
        };
        self.check();
        action
    }

    /// After the first outputs of a reserved epoch (each `advance`): records that the
    /// epoch was led, so that after a restart this node rejects primaries below it (the
    /// sink does). Until the write is done a restart would not know it; the loop does not
    /// wait for it. Dropped when the node no longer leads it (`leading` false): the
    /// reservation covers a restart.
    #[must_use]
    pub fn led_durably(&mut self, leading: bool) -> Option<Action> {
        if !core::mem::take(&mut self.persist_pending) || !leading {
            return None;
        }
        let epoch = self.current;
        Some(self.persist(epoch, Action::PersistEpochLater(epoch.0)))
    }

    /// Whether the epoch led is on disk, as led or as a reservation: a primary emits
    /// nothing before (the sink would take its outputs, then a restart lead below them).
    pub fn current_durable(&self) -> bool {
        self.current <= self.persisted || self.current <= self.floor
    }

    /// Whether the current epoch is the last one this node led: a primary's always is (a
    /// primary that follows another epoch has stepped down first).
    pub fn current_is_led(&self) -> bool {
        self.current == self.led_last
    }

    /// Records a write of `epoch` carried by `action`.
    fn persist(&mut self, epoch: Epoch, action: Action) -> Action {
        assert!(
            epoch >= self.persisted,
            "epochs: persisting {epoch:?} below the persisted {:?}",
            self.persisted
        );
        self.persisted = epoch;
        self.check();
        action
    }

    /// The invariants that hold between any two calls.
    fn check(&self) {
        assert!(
            self.reserved.is_none_or(|r| r <= self.floor),
            "epochs: reservation {:?} above the floor {:?}",
            self.reserved,
            self.floor
        );
        assert!(
            self.current <= self.max_seen,
            "epochs: current {:?} above the highest seen {:?}",
            self.current,
            self.max_seen
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODE: u8 = 1;

    #[test]
    fn epochs_lead_reserve_follow_no_panic() {
        let mut e = Epochs::new(0, 0);
        let (first, reserved) = e.lead_candidate(NODE).unwrap();
        assert!(!reserved);
        assert_eq!(e.lead(first, false), Some(Action::PersistEpoch(first.0)));
        assert!(e.current_durable());
        // Deposed by a peer: heard (persisted at once), then followed (nothing more).
        let theirs = Epoch(first.0 + 0x100 + 1);
        assert_eq!(e.heard(theirs), Some(Action::PersistEpoch(theirs.0)));
        assert_eq!(e.heard(theirs), None);
        assert_eq!(e.follow(theirs), None, "written twice");
        // Reserve, then lead the reservation: durable without a write, recorded later.
        let r = e.next(NODE).unwrap();
        assert_eq!(e.reserve(r), Action::ReserveEpoch(r.0));
        assert!(e.reservation_holds());
        assert_eq!(e.lead_candidate(NODE), Some((r, true)));
        assert_eq!(e.lead(r, true), None);
        assert!(e.current_durable());
        assert_eq!(e.led_durably(true), Some(Action::PersistEpochLater(r.0)));
        assert_eq!(e.led_durably(true), None);
    }

    #[test]
    fn epochs_current_is_led_until_it_follows() {
        let mut e = Epochs::new(0, 0);
        let _ = e.lead(Epoch(0x101), false);
        assert!(e.current_is_led());
        let _ = e.heard(Epoch(0x202));
        assert!(e.current_is_led(), "hearing is not following");
        let _ = e.follow(Epoch(0x202));
        assert!(!e.current_is_led());
    }

    #[test]
    fn epochs_follow_above_persisted_persists_later() {
        // Seen above what is stored: only a led reservation gets there (its record is
        // dropped when deposed before its outputs); following it writes it.
        let mut e = Epochs::new(0x101, 0);
        let r = e.next(NODE).unwrap();
        let _ = e.reserve(r);
        assert_eq!(e.lead(r, true), None);
        assert_eq!(e.led_durably(false), None);
        assert_eq!(e.follow(r), Some(Action::PersistEpochLater(r.0)));
        assert_eq!(e.follow(r), None);
    }

    #[test]
    fn epochs_next_above_floor_and_seen() {
        let e = Epochs::new(0x201, 0x302);
        assert_eq!(e.next(NODE), Some(Epoch(0x401)));
        assert_eq!(Epochs::new(super::super::EPOCH_MAX, 0).lead_candidate(NODE), None);
    }

    proptest::proptest! {
        /// Any sequence of the calls the node makes, in the order it makes them, with
        /// any epochs a peer may send (up to the bound): no assertion fires, and every
        /// write is at or above the one before.
        #[test]
        fn epochs_node_call_sequences_never_panic(
            // Epochs of every magnitude: a shift of a value up to the bound.
            steps in proptest::collection::vec(
                (0u8..5, 0u64..=super::super::EPOCH_MAX, 0u32..48, proptest::bool::ANY),
                1..64,
            ),
            persisted in 0u64..=super::super::EPOCH_MAX,
            reserved in 0u64..=super::super::EPOCH_MAX,
            boot_shift in 0u32..48,
        ) {
            let (persisted, reserved) = (persisted >> boot_shift, reserved >> boot_shift);
            let mut e = Epochs::new(persisted, reserved);
            let mut written = persisted;
            for (op, epoch, shift, flag) in steps {
                let epoch = epoch >> shift;
                let action = match op {
                    // `fence`: heard, then followed when a primary's.
                    0 => {
                        let heard = e.heard(Epoch(epoch));
                        let followed = if flag { e.follow(Epoch(epoch.min(e.max_seen().0))) } else { None };
                        heard.or(followed)
                    }
                    // `reserve_epoch`, as a backup with state calls it.
                    1 => match e.next(NODE) {
                        Some(next) if !e.reservation_holds() => Some(e.reserve(next)),
                        _ => None,
                    },
                    // `become_primary`, then the `advance` that ends the same event.
                    2 => match e.lead_candidate(NODE) {
                        Some((epoch, reserved)) => {
                            let lead = e.lead(epoch, reserved);
                            proptest::prop_assert!(e.current_durable() || reserved);
                            lead.or(e.led_durably(flag))
                        }
                        None => None,
                    },
                    // `switchover_timeout`: deposed by the highest seen.
                    3 => e.follow(e.max_seen()),
                    _ => e.led_durably(flag),
                };
                if let Some(Action::PersistEpoch(w) | Action::PersistEpochLater(w)) = action {
                    proptest::prop_assert!(w >= written, "write {w:#x} below {written:#x}");
                    written = w;
                }
            }
        }
    }

    #[test]
    #[should_panic(expected = "not above the last led")]
    fn epochs_lead_twice_the_same_panics() {
        let mut e = Epochs::new(0, 0);
        let _ = e.lead(Epoch(0x201), false);
        // A second term of this node in an epoch it led already (or below).
        let _ = e.lead(Epoch(0x101), false);
    }

    #[test]
    #[should_panic(expected = "above EPOCH_MAX")]
    fn epochs_heard_above_the_bound_panics() {
        let mut e = Epochs::new(0, 0);
        let _ = e.heard(Epoch(super::super::EPOCH_MAX + 1));
    }

    #[test]
    #[should_panic(expected = "at or below the floor")]
    fn epochs_reserve_below_floor_panics() {
        let mut e = Epochs::new(0, 0x302);
        let _ = e.reserve(Epoch(0x201));
    }

    #[test]
    #[should_panic(expected = "above the highest seen")]
    fn epochs_follow_unheard_panics() {
        let mut e = Epochs::new(0x101, 0);
        // `fence` hears every epoch before anything follows it.
        let _ = e.follow(Epoch(0x202));
    }

    #[test]
    #[should_panic(expected = "below the persisted")]
    fn epochs_led_durably_after_higher_heard_panics() {
        let mut e = Epochs::new(0, 0);
        let r = e.next(NODE).unwrap();
        let _ = e.reserve(r);
        let _ = e.lead(r, true);
        // The record of a led reservation is due in the same `advance`; one deferred past
        // a higher epoch heard would lower the file.
        let _ = e.heard(Epoch(r.0 + 0x100 + 1));
        let _ = e.led_durably(true);
    }

    #[test]
    #[should_panic(expected = "as reserved")]
    fn epochs_lead_unreserved_as_reserved_panics() {
        let mut e = Epochs::new(0, 0);
        let _ = e.lead(Epoch(0x101), true);
    }

    /// Mutant `epochs.rs:152:43 → 192:43` at a851fc6 (`>` → `>=` in `lead_candidate`,
    /// shard 19): a reservation heard back from a peer (a starting node announces its
    /// floor; a peer that heard this node's announce it back when it starts in turn) was
    /// still offered as the epoch to lead, though seen: `lead` then trips its assertion
    /// that a led epoch is above every one seen, and the node stops. Once seen, the
    /// reservation is spent: the candidate is the next epoch above it, to be persisted.
    #[test]
    fn epochs_reservation_heard_back_not_the_candidate() {
        let mut e = Epochs::new(0, 0);
        let r = e.next(NODE).unwrap();
        let _ = e.reserve(r);
        assert_eq!(e.lead_candidate(NODE), Some((r, true)));
        assert_eq!(e.heard(r), Some(Action::PersistEpoch(r.0)));
        assert!(!e.reservation_holds());
        let (epoch, reserved) = e.lead_candidate(NODE).unwrap();
        assert!(!reserved && epoch > r, "{epoch:?} reserved {reserved}");
        assert_eq!(e.lead(epoch, reserved), Some(Action::PersistEpoch(epoch.0)));
    }
}
