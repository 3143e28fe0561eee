//! Invariant 3, nothing lost: every output a primary committed reaches the sink, unless
//! that primary was fenced off or every node that ran the frame crashed. A primary fenced
//! off is excused only when the world shows it could not have known the fence's epoch: no
//! genuine message carrying it was delivered to its incarnation before the commit, and,
//! with no higher primary running (*orphaned*), its disk and earlier incarnations explain
//! why it did not start above it ([`Orphan`]).

use super::*;

impl Checker {
    /// The sink drops as a duplicate only an identity it accepted.
    pub(super) fn check_sink_duplicate(&mut self, at: Nanos, output: &Output, verdict: Verdict) {
        let id = (output.frame, output.index);
        if matches!(verdict, Verdict::Duplicate | Verdict::Conflict) && !self.accepted.contains_key(&id) {
            self.violation(
                Invariant::NothingLost,
                at,
                format!("sink dropped {id:?} as a duplicate but never accepted it"),
            );
        }
    }

    /// A genuine message (sent by a node, not the attacker) carrying `epoch` in its header
    /// was delivered to node `node` at `at`: it decoded under the pair's key, so the node
    /// could read it. What the node then does with it is the node's business; that it
    /// could have known the epoch is a fact of the world.
    pub fn on_delivered(&mut self, at: Nanos, node: usize, epoch: u64) {
        if epoch > self.heard[node].0 {
            self.heard[node] = (epoch, at);
        }
    }

    /// As [`Checker::on_delivered`], for a genuine message node `node` refused as not
    /// fresh (its replay window or restart handshake: counted `replayed`).
    pub fn on_delivered_unverified(&mut self, node: usize, epoch: u64) {
        self.heard_unverified[node] = self.heard_unverified[node].max(epoch);
    }

    /// Node `node`'s current incarnation booted from a disk holding `disk` (the higher
    /// of its persisted and its reserved epoch). Called after [`Checker::on_start`].
    pub fn on_boot(&mut self, node: usize, disk: u64) {
        self.boot_disk[node] = disk;
    }

    /// A crash of node `node` lost its background write of `epoch` (not durable yet).
    pub fn on_write_lost(&mut self, node: usize, epoch: u64) {
        self.write_lost_max[node] = self.write_lost_max[node].max(epoch);
    }

    /// Why node `node`'s current incarnation, which had not heard `fence`, commits below
    /// it with no primary of a higher epoch running (see [`Orphan`]).
    fn orphan(&self, node: usize, fence: u64) -> Orphan {
        let disk = self.boot_disk[node];
        if disk >= fence {
            return Orphan::OnDisk { disk };
        }
        let known = self.known_before[node];
        if known < fence {
            Orphan::NeverHeard
        } else if self.write_lost_max[node] >= fence {
            Orphan::WriteLost
        } else {
            Orphan::Forgotten { known, disk }
        }
    }

    /// Why node `node`'s current incarnation, a primary of `epoch`, commits below the
    /// sink's fence (`None`: it does not).
    fn fenced(&self, node: usize, epoch: u64) -> Option<Fenced> {
        let fence = self.sink_fence;
        if epoch >= fence {
            return None;
        }
        let incarnation = self.incarnation[node];
        // Deposed when a primary of a higher epoch runs on the other node (a split brain);
        // orphaned when none does (the sink follows a primary that is gone). Either is
        // explained only when this incarnation had not heard the fence's epoch.
        let deposed = self
            .primary_now
            .iter()
            .enumerate()
            .any(|(n, e)| n != node && e.is_some_and(|e| e > epoch));
        let (heard, at) = self.heard[node];
        Some(if heard >= fence {
            Fenced::Heard {
                fence,
                incarnation,
                epoch: heard,
                at,
                deposed,
            }
        } else if self.heard_unverified[node] >= fence {
            Fenced::Unverified
        } else if deposed {
            Fenced::Deposed
        } else {
            Fenced::Orphaned {
                fence,
                incarnation,
                why: self.orphan(node, fence),
            }
        })
    }

    /// The outputs a primary of `epoch` committed are required at the sink, unless the
    /// sink already follows a higher epoch: its copies are rejected by design.
    pub(super) fn require_outputs(&mut self, node: usize, epoch: u64, commit: &Commit) {
        let CommitKind::Ran { outputs, .. } = commit.kind else {
            return;
        };
        let fenced = self.fenced(node, epoch);
        for index in 0..outputs {
            let required = Required { epoch, node, fenced };
            match self.required.get_mut(&(commit.frame, index)) {
                Some(r) if r.fenced.is_some() && fenced.is_none() => *r = required,
                Some(_) => {}
                None => {
                    self.required.insert((commit.frame, index), required);
                }
            }
        }
    }

    /// Every required output reached the sink, or is excused; `accepted` is the sink's
    /// final set of identities.
    pub(super) fn settle_required(&mut self, at: Nanos, accepted: &BTreeMap<(u64, u8), crate::dst::sink::Accepted>) {
        let required = core::mem::take(&mut self.required);
        // By level key: the newest committed by a primary the sink follows, and whether
        // every node that ran its frame crashed (invariant 14).
        let mut levels_newest: BTreeMap<u16, ((u64, u8), bool)> = BTreeMap::new();
        let final_lineage = self.final_lineage();
        for (&(frame, index), r) in &required {
            if let (Some(key), None) = (self.level_key((frame, index)), r.fenced) {
                if self.level_parted(final_lineage.as_deref(), r.epoch, frame) {
                    self.exceptions.level_parted += 1;
                } else {
                    let crashed = !accepted.contains_key(&(frame, index))
                        && (self.crashed_all(frame)
                            || self.acked_held_at_end(frame)
                            || self.acked_held_by(r.node, r.epoch, frame));
                    let newest = levels_newest.entry(key).or_insert(((frame, index), crashed));
                    if (frame, index) > newest.0 {
                        *newest = ((frame, index), crashed);
                    }
                }
            }
            if accepted.contains_key(&(frame, index)) {
                continue;
            }
            if self.level_superseded((frame, index)) {
                self.exceptions.level_superseded += 1;
                continue;
            }
            match r.fenced {
                Some(Fenced::Deposed) => {
                    self.exceptions.lost_deposed += 1;
                    continue;
                }
                Some(Fenced::Unverified) => {
                    self.exceptions.lost_unverified += 1;
                    continue;
                }
                Some(Fenced::Heard {
                    fence,
                    incarnation,
                    epoch,
                    at: heard_at,
                    deposed,
                }) => {
                    self.violation(
                        Invariant::NothingLost,
                        at,
                        format!(
                            "output ({frame}, {index}) committed by node {} (incarnation {incarnation}) in epoch {} \
                             was rejected under the sink's fence {} ({}), unexplained: a message carrying epoch {} \
                             was delivered to it at {:.3} ms, before the commit; it should have followed that \
                             epoch or led above it",
                            r.node,
                            twinloop::EpochText(r.epoch),
                            twinloop::EpochText(fence),
                            if deposed { "deposed" } else { "orphaned" },
                            twinloop::EpochText(epoch),
                            heard_at as f64 / 1e6
                        ),
                    );
                    continue;
                }
                Some(Fenced::Orphaned {
                    fence,
                    incarnation,
                    why,
                }) => {
                    let knew = match why {
                        Orphan::NeverHeard => {
                            self.exceptions.lost_orphaned_never_heard += 1;
                            continue;
                        }
                        Orphan::WriteLost => {
                            self.exceptions.lost_orphaned_write_lost += 1;
                            continue;
                        }
                        Orphan::OnDisk { disk } => format!(
                            "its disk held epoch {} when it booted: it should have led above it",
                            twinloop::EpochText(disk)
                        ),
                        Orphan::Forgotten { known, disk } => format!(
                            "an earlier incarnation knew epoch {} but the disk held only {} at its boot, \
                             and no crash lost a write of it: the epoch was never written",
                            twinloop::EpochText(known),
                            twinloop::EpochText(disk)
                        ),
                    };
                    self.violation(
                        Invariant::NothingLost,
                        at,
                        format!(
                            "output ({frame}, {index}) committed by node {} (incarnation {incarnation}) in epoch {} \
                             was rejected under the sink's fence {} with no higher primary running, unexplained: {knew}",
                            r.node,
                            twinloop::EpochText(r.epoch),
                            twinloop::EpochText(fence)
                        ),
                    );
                    continue;
                }
                None => {}
            }
            if self.lost_by_network((frame, index)) {
                // With acks an event is sent again until acked, by its primary and after a
                // takeover by the next (sent or not): the path's losses excuse one only
                // when a primary dropped events from a queue the world had filled
                // (invariant 16), or when it went out too late for the re-sends to work.
                // Only the history the pair ends on owes its events: another (a cold start's
                // rival, a parted primary's) was left with its queue, and a successor that
                // decided the frame otherwise (its input lost: `InputLost`, skipped; or run
                // on another input after a lost commit) has no such event to send.
                let in_final = self.in_final_history(final_lineage.as_deref(), r.epoch, frame);
                if self.acks
                    && in_final
                    && self.level_key((frame, index)).is_none()
                    && !self.event_loss_excused(at, (frame, index))
                {
                    self.violation(
                        Invariant::NothingLost,
                        at,
                        format!(
                            "event ({frame}, {index}) committed by node {} in epoch {} was lost on the output path \
                             and never sent again until the sink had it, though acks are on, its epoch is of the \
                             history the pair ends on, and no primary dropped events from a full queue",
                            r.node,
                            twinloop::EpochText(r.epoch)
                        ),
                    );
                    continue;
                }
                self.exceptions.lost_network += 1;
                continue;
            }
            if self.crashed_all(frame) {
                self.exceptions.lost_crashed += 1;
                continue;
            }
            if self.acked_held_at_end(frame) {
                self.exceptions.acked_held_at_end += 1;
                continue;
            }
            // What a primary held when it stopped leading is its successor's to send when
            // that successor continues its decision of the frame (the commit's held bits
            // leave the outputs unsent): excused only outside that history (since
            // 2026-11-28; before, always — mutant `outputs.rs:128:42` lost them all).
            if self.acked_held_by(r.node, r.epoch, frame)
                && !self.in_final_history(final_lineage.as_deref(), r.epoch, frame)
            {
                self.exceptions.acked_never_released += 1;
                continue;
            }
            if self.acked && self.acked_stale.contains(&(frame, index)) {
                self.exceptions.acked_released_fenced += 1;
                continue;
            }
            self.violation(
                Invariant::NothingLost,
                at,
                format!(
                    "output ({frame}, {index}) committed by node {} in epoch {} never reached the sink",
                    r.node,
                    twinloop::EpochText(r.epoch)
                ),
            );
        }
        self.required = required;
        self.check_level_finals(at, &levels_newest);
    }

    /// Whether the commit of `frame` by the primary of `epoch` is of the history the pair
    /// ends on (`lineage`, newest epoch first): the epoch is in it, and that history
    /// decided the frame as the epoch did (not skipped for a lost input, not run on
    /// another input after a lost commit).
    fn in_final_history(&self, lineage: Option<&[u64]>, epoch: u64, frame: u64) -> bool {
        lineage.is_some_and(|l| l.contains(&epoch) && self.decision_along(l, frame) == self.decision(epoch, frame))
    }

    /// Every node incarnation that ran `frame` crashed (and one did).
    fn crashed_all(&self, frame: u64) -> bool {
        let mut had = self
            .ran_range
            .iter()
            .filter(|(_, &(low, high))| low <= frame && frame <= high)
            .map(|(&who, _)| who)
            .peekable();
        had.peek().is_some() && had.all(|who| self.crashed.contains(&who))
    }
}
