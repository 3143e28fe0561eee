//! Invariant 14, levels (issue 17, 2026-11-26): an output the program declared a level
//! is judged by its key, not only by its identity. At the sink, per key, an accepted
//! value is never older (by `(frame, index)`) than one accepted before, and a level is
//! refused as superseded only when a newer one of its key was accepted. A node emits
//! each output with the kind its application gave it. At the end, each key's final
//! value at the sink is the newest level of that key the pair committed (a primary the
//! sink follows) in the history the pair ends on (`level_parted`): every one older may be superseded — the takeover's collapse, or the
//! sink's rule — and is then excused from invariant 3 (counted as
//! [`Exceptions::level_superseded`]), but the newest must arrive unless every node that
//! ran its frame crashed. And without delay: when a primary the sink follows commits a
//! frame, the sink holds, for every key, a value at least as new as the newest level that
//! primary committed for an earlier frame — except within a takeover's burst (the frames
//! in hand or inherited when it took over), whose levels go out once it is run. Events
//! keep invariants 2 and 3 as they were: each exactly once.

use super::*;
use twinloop::OutputKind;

impl Checker {
    /// The kinds of what node `node`'s application produced in one step.
    pub(super) fn record_kinds(&mut self, step: &Step) {
        for index in 0..usize::from(step.outputs).min(OUTPUTS_PER_FRAME_MAX) {
            if let OutputKind::Level { key } = step.output_kinds[index] {
                self.level_keys.insert((step.frame, index as u8), key);
            }
        }
        if self.level_keys.len() > PRODUCED_MAX {
            for _ in 0..PRODUCED_MAX / 2 {
                self.level_keys.pop_first();
            }
        }
    }

    /// Node `node` installed a state node `from` transferred at `frame`, and with it that
    /// primary's refresh table (content version 2, `refresh.rs`): the levels `from`'s
    /// application produced up to `frame` are what `node` may re-send from now on, as if
    /// its own application had produced them (invariant 2 checks every copy it emits
    /// against what was produced). At most `PRODUCED_MAX` entries are read. With acks on
    /// (`--acks`), the events too: the transfer carries the primary's unacknowledged ones
    /// (content version 3, `node/acks.rs`; since 2026-11-26, branch g7), which `node`
    /// re-sends when it leads.
    fn inherit_levels(&mut self, node: usize, from: usize, frame: u64) {
        let acks = self.acks;
        let levels: Vec<((u64, usize, u8), u64)> = self
            .produced
            .range(..=(frame, usize::MAX, u8::MAX))
            .filter(|&(&(f, n, i), _)| n == from && (acks || self.level_keys.contains_key(&(f, i))))
            .map(|(&(f, _, i), &hash)| ((f, node, i), hash))
            .collect();
        for (id, hash) in levels {
            self.produced.insert(id, hash);
        }
    }

    /// The level key of identity `id`, as an application produced it (`None`: an event,
    /// or not known).
    pub(super) fn level_key(&self, id: (u64, u8)) -> Option<u16> {
        self.level_keys.get(&id).copied()
    }

    /// At the emit: the kind is the application's, and the sink keeps each key's values
    /// in order.
    pub(super) fn check_sink_levels(&mut self, at: Nanos, node: usize, output: &Output, verdict: Verdict) {
        let id = (output.frame, output.index);
        if matches!(verdict, Verdict::Stale | Verdict::TooOld | Verdict::Conflict) {
            self.levels_unfollowed[node] = true;
        }
        if self.produced.contains_key(&(id.0, node, id.1)) && output.kind.level_key() != self.level_key(id) {
            self.violation(
                Invariant::Levels,
                at,
                format!(
                    "node {node} emitted {id:?} as {:?}, its application produced it as {:?}",
                    output.kind,
                    self.level_key(id)
                ),
            );
        }
        let Some(key) = output.kind.level_key() else {
            if verdict == Verdict::Superseded {
                self.violation(
                    Invariant::Levels,
                    at,
                    format!("the sink refused event {id:?} as a superseded level"),
                );
            }
            return;
        };
        let newest = self.sink_levels.get(&key).copied();
        match verdict {
            Verdict::Accepted => {
                if let Some(newest) = newest.filter(|&n| n >= id) {
                    self.violation(
                        Invariant::Levels,
                        at,
                        format!("the sink accepted level {id:?} of key {key} after the newer {newest:?}: an older value after a newer one"),
                    );
                } else {
                    self.sink_levels.insert(key, id);
                }
            }
            Verdict::Superseded if newest.is_none_or(|n| n <= id) => {
                self.violation(
                    Invariant::Levels,
                    at,
                    format!("the sink refused level {id:?} of key {key} as superseded, its newest being {newest:?}"),
                );
            }
            _ => {}
        }
    }

    /// At a transition of `node`: a takeover begins a burst, up to the highest frame the
    /// node held (received, inherited or run); any other change ends what was pending.
    pub(super) fn track_levels_burst(&mut self, node: usize, t: &Transition) {
        if t.reason == Reason::InSync {
            self.inherit_levels(node, 1 - node, t.frame);
        }
        self.levels_pending[node].clear();
        self.levels_unfollowed[node] = false;
        self.levels_pending_unjudged[node] = false;
        self.burst_end[node] = 0;
        self.collapse[node] = None;
        if t.role == Role::Primary && matches!(t.reason, Reason::TakeoverAfterProbe | Reason::TakeoverNoPrimary) {
            let inherited = self.takeovers[node].as_ref().map_or(0, |tk| tk.inherited_to);
            self.burst_end[node] = self.ring_highest[node].max(inherited).max(t.frame);
            self.collapse[node] = Some(Collapse {
                epoch: t.epoch,
                end: self.burst_end[node],
                keys: BTreeMap::new(),
            });
        }
    }

    /// At the emit, within a takeover's burst: the burst collapses each level key to its
    /// newest value (docs/PROTOCOL.md, "Levels"; `outputs.rs`, `level_hold`), so a new
    /// primary emits at most one value of a key for the frames of its burst. Two are a
    /// burst taken for ended too soon (mutant `outputs.rs:84:41`) or a level sent outside
    /// the collapse (the unsent set's, mutant `outputs.rs:169:33`): the plant is driven
    /// through the burst's intermediate values, which invariant 14's order at the sink
    /// allows.
    pub(super) fn check_burst_collapsed(&mut self, at: Nanos, node: usize, output: &Output) {
        let Some(key) = output.kind.level_key() else {
            return;
        };
        let Some(c) = &mut self.collapse[node] else {
            return;
        };
        if output.epoch != c.epoch || output.frame > c.end {
            return;
        }
        let id = (output.frame, output.index);
        let first = *c.keys.entry(key).or_insert(id);
        if first != id {
            let (epoch, end) = (c.epoch, c.end);
            self.violation(
                Invariant::Levels,
                at,
                format!(
                    "node {node}, primary of epoch {} after a takeover, emitted two values of level key {key} within its burst (frames up to {end}): {first:?}, then {id:?}",
                    twinloop::EpochText(epoch)
                ),
            );
        }
    }

    /// A commit of `node`, primary of `epoch`: past its burst, every level it committed
    /// for an earlier frame is at the sink (or a newer value of its key is), unless the
    /// sink's fence is above its epoch, or the sink did not follow one of its outputs
    /// since (stale, too old, a conflict with another history's: invariants 1–3 judge
    /// those). Then this commit's levels are pending until the next.
    pub(super) fn check_levels_delivered(&mut self, at: Nanos, node: usize, epoch: u64, commit: &Commit) {
        if commit.frame > self.burst_end[node] {
            self.burst_end[node] = 0;
            self.collapse[node] = None;
            let pending = core::mem::take(&mut self.levels_pending[node]);
            let unjudged = core::mem::take(&mut self.levels_pending_unjudged[node]);
            // On a faulty output path the sink may lack it for a while: the refresh's bound
            // judges it instead (`output_path.rs`). With acked outputs (`--acked`) a level
            // leaves once the backups acknowledged its frame, commits later: the final
            // values judge it (`settle_levels`).
            if epoch >= self.sink_fence && !unjudged && !self.path_faulty && !self.acked {
                for (&key, &id) in &pending {
                    let at_sink = self.sink_levels.get(&key).copied();
                    if at_sink.is_none_or(|s| s < id) {
                        self.violation(
                            Invariant::Levels,
                            at,
                            format!(
                                "node {node}, primary of epoch {}, committed frame {} while the sink held {at_sink:?} of level key {key}, older than the {id:?} it committed before",
                                twinloop::EpochText(epoch),
                                commit.frame
                            ),
                        );
                    }
                }
            }
        }
        // The outputs emitted since the last commit are this frame's (or the burst's).
        let unfollowed = core::mem::take(&mut self.levels_unfollowed[node]);
        self.levels_pending_unjudged[node] |= unfollowed;
        let CommitKind::Ran { outputs, .. } = commit.kind else {
            return;
        };
        for index in 0..outputs.min(OUTPUTS_PER_FRAME_MAX as u8) {
            if let Some(key) = self.level_key((commit.frame, index)) {
                let newest = self.levels_pending[node].entry(key).or_insert((commit.frame, index));
                *newest = (*newest).max((commit.frame, index));
            }
        }
    }

    /// Invariant 3's excuse for a level: a newer value of its key reached the sink.
    pub(super) fn level_superseded(&self, id: (u64, u8)) -> bool {
        self.level_key(id)
            .and_then(|key| self.sink_levels.get(&key))
            .is_some_and(|&newest| newest > id)
    }

    /// The history the pair ends on: the lineage of the newest epoch a node leads at the
    /// end (`None`: no primary).
    pub(super) fn final_lineage(&self) -> Option<Vec<u64>> {
        self.primary_now.iter().flatten().max().map(|&e| self.lineage(e))
    }

    /// Whether a level of `frame` committed by the primary of `epoch` lies outside the
    /// history the pair ends on (`lineage`, newest epoch first): `epoch` is not in it and
    /// that history skipped the frame. Its value was never the plant's in the history
    /// that won (a primary that led from an older state of its own, beside a frozen or
    /// partitioned one, and found the frame's input gone), so the sink need not end on
    /// it. One that ran the frame, on any input, still owes its own value.
    pub(super) fn level_parted(&self, lineage: Option<&[u64]>, epoch: u64, frame: u64) -> bool {
        let Some(lineage) = lineage else {
            return false;
        };
        !lineage.contains(&epoch) && matches!(self.decision_along(lineage, frame), Some(Decision::Skipped(_)))
    }

    /// Whether the history the pair ends on (`lineage`, newest epoch first) began from a
    /// cold start after `frame`: its oldest epoch led a fresh application, whose first
    /// decision is above `frame`, and no epoch of it decided `frame`.
    pub(super) fn level_before_cold_start(&self, lineage: Option<&[u64]>, frame: u64) -> bool {
        let Some(&root) = lineage.and_then(|l| l.last()) else {
            return false;
        };
        let cold = self.tenures.get(&root).is_some_and(|t| t.parent.is_none());
        let first = self
            .decisions
            .range((root, 0)..=(root, u64::MAX))
            .next()
            .map(|(&(_, f), _)| f);
        cold && first.is_some_and(|f| f > frame) && lineage.is_some_and(|l| self.decision_along(l, frame).is_none())
    }

    /// At the end: each key's final value at the sink is the newest level of it that a
    /// primary the sink follows committed (`newest`, by key: its id, and whether every
    /// node that ran its frame crashed).
    pub(super) fn check_level_finals(&mut self, at: Nanos, newest: &BTreeMap<u16, ((u64, u8), bool)>) {
        let lineage = self.final_lineage();
        for (&key, &(id, crashed)) in newest {
            let final_id = self.sink_levels.get(&key).copied();
            if final_id.is_some_and(|f| f >= id) || crashed {
                continue;
            }
            if self.level_bound_ns.is_none() && self.lost_by_network(id) {
                // Refresh off: nothing re-sends a level the path lost.
                self.exceptions.level_lost_network += 1;
                continue;
            }
            // Refresh on and the level lost on the path: the leader re-sends it, whether it
            // ran the frame or installed a state transferred after it (the transfer carries
            // the refresh table since 2026-11-26, `refresh.rs`) — unless the history the pair
            // ends on began from a cold start after the level's frame. Such a history never
            // had it: a cold start replaces a state no running node holds (invariant 8), and
            // the levels of that state's history with it (docs/DECISIONS.md 2026-11-26,
            // "Levels across a state transfer"); counted apart.
            if self.level_bound_ns.is_some()
                && self.lost_by_network(id)
                && self.level_before_cold_start(lineage.as_deref(), id.0)
            {
                self.exceptions.level_before_cold_start += 1;
                continue;
            }
            self.violation(
                Invariant::Levels,
                at,
                format!(
                    "level key {key}: the sink's final value is {final_id:?}, the pair's newest committed is {id:?}"
                ),
            );
        }
    }
}
