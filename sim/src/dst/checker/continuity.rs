//! Invariant 8, application-state continuity: no cold start replaces the pair's state
//! while a node that holds it is alive.

use super::*;

impl Checker {
    /// Invariant 8: node `node` took a message of its peer's that says the peer holds the
    /// pair's state (its `origin`, not 0) — fresh or stale, as the core counts it
    /// (`pair_had_state`): its incarnation knows the pair had state as surely as one
    /// that followed a primary. Since 2026-11-27 (issue 21): a restarted node that hears
    /// its primary only as stale (`Fault::RestartCut`) never follows it, and a core that
    /// forgot the stale primary's state led a cold start beside it unseen (mutants
    /// `fencing.rs:67:26` and `67:61`).
    pub fn on_heard_state(&mut self, node: usize) {
        if self.running[node] {
            self.knew_state[node] = true;
        }
    }

    /// Invariant 8, at node `node`'s `ColderPrimary` alarm: a node keeps its state for
    /// the operator only when it holds one (`own_origin`, not 0) and the primary that
    /// fenced it goes back to a later cold start (`origin` above it). Fenced by a primary
    /// of its own cold start or an earlier one, it rejoins by itself: an alarm there
    /// leaves the pair without a backup until an operator answers (the simulated
    /// operator answers at once, which hid it).
    ///
    /// Since 2026-11-27 (issue 21) the operator may wait (`Options::rejoin_delay_ms`): a
    /// node that holds the pair's state gives it up for a later cold start's only when
    /// told ([`Checker::on_origin_sent`]).
    pub fn on_colder_primary(&mut self, at: Nanos, node: usize, origin: u64, own_origin: u64) {
        if own_origin == 0 || origin <= own_origin {
            self.violation(
                Invariant::StateContinuity,
                at,
                format!(
                    "node {node} kept its state for the operator (ColderPrimary) against a primary of cold start {}, its own going back to {}: not a later cold start",
                    twinloop::EpochText(origin),
                    twinloop::EpochText(own_origin)
                ),
            );
        }
    }

    /// Invariant 8: the operator said `rejoin` to node `node`.
    pub fn on_rejoin_told(&mut self, node: usize) {
        self.rejoin_told[node] = true;
    }

    /// Invariant 8: node `node` sent a header naming `origin` (the cold start its state
    /// goes back to; 0 = none) and `epoch`. A node that held the state of one cold start
    /// and gives it up (names none, or another) for a primary whose state goes back to
    /// the other node's later cold start (of another term: not a start-up collision)
    /// took a colder state: only the operator's `rejoin` may make it (`ColderPrimary`;
    /// mutants `fencing.rs:246:9`, `247:13`, `255:48`, `election.rs:13:56`).
    /// A cold start that ran no frame (its headers named frame 0 all along) holds nothing
    /// to keep: the program's initial state (DST seeds 2144, 2744, 13906).
    pub fn on_origin_sent(&mut self, at: Nanos, node: usize, origin: u64, epoch: u64, frame: u64) {
        let before = core::mem::replace(&mut self.origin_sent[node], origin);
        if usize::from(Epoch(epoch).node_id()) == node + 1 && origin != 0 && self.epoch_origin.len() < 4096 {
            // Its own epoch (it leads it): the cold start that epoch's state goes back to.
            self.epoch_origin.entry(epoch).or_insert(origin);
        }
        if self.origin_held[node] == Some(origin) {
            self.origin_ran[node] |= frame != 0;
            return;
        }
        if origin == 0 && before == 0 {
            return;
        }
        if let Some(held) = self.origin_held[node] {
            // What it takes: the origin it names, or the one the epoch it now follows was
            // led with (an earlier incarnation's epoch keeps its own: seed 17298).
            let taken = if origin != 0 {
                origin
            } else {
                self.epoch_origin.get(&epoch).copied().unwrap_or(0)
            };
            // Another node's cold start (the epoch names its node). A node that lost its
            // state otherwise (a restore refused after a tampered chunk replaced it,
            // unkeyed: seed 527) and then led a cold start of its own is invariant 8's
            // transition rule's to judge.
            let others = taken != 0 && usize::from(Epoch(taken).node_id()) != node + 1;
            let colder = others && taken > held && Epoch(taken).term() != Epoch(held).term();
            if colder && self.origin_ran[node] && !self.rejoin_told[node] {
                self.violation(
                    Invariant::StateContinuity,
                    at,
                    format!(
                        "node {node} gave its state of cold start {} up for a later cold start's ({}) without the operator's rejoin",
                        twinloop::EpochText(held),
                        twinloop::EpochText(taken)
                    ),
                );
            }
        }
        self.origin_held[node] = (origin != 0).then_some(origin);
        self.origin_ran[node] = frame != 0;
    }

    /// Invariant 8, at every transition of `node`.
    pub(super) fn check_continuity(&mut self, at: Nanos, node: usize, t: &Transition) {
        match (t.role, t.reason) {
            (Role::Backup, reason) => {
                self.knew_state[node] = true;
                if reason == Reason::InSync {
                    // Another state installed: not its own cold start's any more.
                    self.cold_start_of[node] = None;
                    if self.holds_state[node].is_none() {
                        self.holds_state[node] = Some(at);
                    }
                }
            }
            (Role::Primary, Reason::StartedFirst | Reason::WonTiebreak) => {
                let other = 1 - node;
                // Steps of the same event are recorded before its transitions: a state
                // held since this instant is the cold start's own.
                let fresh = self.holds_state[node].is_none_or(|since| since >= at);
                if fresh {
                    self.cold_start_of[node] = Some(t.epoch);
                }
                // The other's state is its own cold start of the same term: the two
                // collided at one start-up, neither hearing the other lead (this node
                // never heard that epoch: it would lead a term above it). The design
                // gives the lower one's few cycles up (`FencedAtStartup`); nothing this
                // node could have known is replaced (seed 4991 of 2000..9999, since the
                // dead inputs of 2026-11-27 made stateless primaries common).
                let collision = self.cold_start_of[other].is_some_and(|e| Epoch(e).term() == Epoch(t.epoch).term());
                if fresh
                    && self.knew_state[node]
                    && self.running[other]
                    && self.holds_state[other].is_some()
                    && !collision
                {
                    self.violation(
                        Invariant::StateContinuity,
                        at,
                        format!(
                            "node {node} led epoch {} from a cold start ({:?}) while node {other}, running, held the pair's state",
                            twinloop::EpochText(t.epoch), t.reason
                        ),
                    );
                }
            }
            _ => {}
        }
    }
}
