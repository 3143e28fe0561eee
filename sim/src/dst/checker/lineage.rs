//! Histories, for the classification of content differences (invariant 2): an epoch's
//! lineage, why two copies may differ (input lost, split brain, cold start, crash
//! window), and what each history decided for a frame.

use super::*;

impl Checker {
    /// The epochs whose history `epoch` carries: itself, the epoch its leader followed
    /// when it became primary, that one's, and so on back to a cold start.
    pub(super) fn lineage(&self, epoch: u64) -> Vec<u64> {
        let mut out = vec![epoch];
        let mut at = epoch;
        // Bounded: each step goes to an epoch that began earlier.
        while out.len() <= self.tenures.len() {
            match self.tenures.get(&at).and_then(|t| t.parent) {
                Some(parent) if !out.contains(&parent) => {
                    out.push(parent);
                    at = parent;
                }
                _ => break,
            }
        }
        out
    }

    /// Why copies of frame `frame`'s output from epochs `a` and `b` may differ. The two
    /// histories share everything up to their nearest common ancestor epoch; what happened
    /// after it, on either side, may part them.
    ///
    /// `Err` says why not, when the histories did decide an earlier frame differently but
    /// with the other decision in hand.
    pub(super) fn explain(&self, (a, b): (u64, u64), frame: u64) -> Result<Explanation, Option<String>> {
        let (la, lb) = (self.lineage(a), self.lineage(b));
        let Some(common) = la.iter().position(|e| lb.contains(e)) else {
            // No common ancestor: they began from different cold starts.
            return Ok(Explanation::ColdStart);
        };
        let common_epoch = la[common];
        let side_a = &la[..common];
        let side_b = &lb[..lb.iter().position(|&e| e == common_epoch).unwrap_or(lb.len())];
        let after_common = |e: &u64| side_a.contains(e) || side_b.contains(e);
        if self.input_lost.iter().any(|(e, f)| after_common(e) && *f < frame) {
            return Ok(Explanation::InputLost);
        }
        let split = self.split_pairs.iter().any(|(&(x, y), &from)| {
            from < frame && ((la.contains(&x) && lb.contains(&y)) || (la.contains(&y) && lb.contains(&x)))
        });
        if split {
            return Ok(Explanation::SplitBrain);
        }
        match self.decided_differently(&la[..=common], &lb, side_a, side_b, frame) {
            Parting::None => Err(None),
            Parting::Unseen => Ok(Explanation::CrashWindow),
            Parting::Seen {
                frame: f,
                earlier,
                later,
                node,
                at,
            } => Err(Some(format!(
                "frame {f} was decided otherwise by epoch {} (commit of frame {}) than by epoch {} (commit of \
                 frame {}), whose leader, node {node}, had the earlier commit delivered at {:.3} ms, before it \
                 committed: not a crash window",
                twinloop::EpochText(later.0),
                later.1,
                twinloop::EpochText(earlier.0),
                earlier.1,
                at as f64 / 1e6
            ))),
        }
    }

    /// What the primary of `epoch` committed for `frame`, if it committed anything.
    pub(super) fn decision(&self, epoch: u64, frame: u64) -> Option<Decision> {
        if let Some(&d) = self.decisions.get(&(epoch, frame)) {
            return Some(match d {
                Decision::Skipped(_) => Decision::Skipped(0),
                ran => ran,
            });
        }
        // A skipped range committed at its first frame covers the frames after it.
        match self.decisions.range((epoch, 0)..(epoch, frame)).next_back() {
            Some((_, Decision::Skipped(last))) if *last >= frame => Some(Decision::Skipped(0)),
            _ => None,
        }
    }

    /// Which commit of the primary of `epoch` decides `frame`: `(epoch, its frame)`.
    fn deciding_commit(&self, epoch: u64, frame: u64) -> Option<(u64, u64)> {
        if self.decisions.contains_key(&(epoch, frame)) {
            return Some((epoch, frame));
        }
        match self.decisions.range((epoch, 0)..(epoch, frame)).next_back() {
            Some((&key, Decision::Skipped(last))) if *last >= frame => Some(key),
            _ => None,
        }
    }

    /// The commit that decides `frame` along a lineage (newest epoch first).
    fn deciding_along(&self, lineage: &[u64], frame: u64) -> Option<(u64, u64)> {
        lineage.iter().find_map(|&e| self.deciding_commit(e, frame))
    }

    /// Two commits deciding `frame` differently, each `(epoch, frame)`: `Parting::Seen` when
    /// the earlier (by epoch) was delivered to the later one's leader incarnation before
    /// the later went out and before that incarnation began to lead the later epoch (after,
    /// it is a lower primary's commit, which a primary does not take), else
    /// `Parting::Unseen` (made without it).
    fn decided_with(&self, frame: u64, x: (u64, u64), y: (u64, u64)) -> Parting {
        let (earlier, later) = if x.0 < y.0 { (x, y) } else { (y, x) };
        let seen = self.tenures.get(&later.0).and_then(|tenure| {
            let (_, decided) = self.decided_at.get(&later).copied()?;
            let &(at, delivered) =
                self.delivered_commits
                    .get(&(tenure.node, tenure.incarnation, earlier.0, earlier.1))?;
            (delivered < decided.min(tenure.began)).then_some((tenure.node, at))
        });
        match seen {
            Some((node, at)) => Parting::Seen {
                frame,
                earlier,
                later,
                node,
                at,
            },
            None => Parting::Unseen,
        }
    }

    /// What a history (a lineage, newest epoch first) decided for `frame`: the newest
    /// decision along it.
    pub(super) fn decision_along(&self, lineage: &[u64], frame: u64) -> Option<Decision> {
        lineage.iter().find_map(|&e| self.decision(e, frame))
    }

    /// Whether the two histories committed, for some frame up to `frame` above the one the
    /// first epoch after their common ancestor started from, different things: one ran a
    /// frame the other skipped, or ran it on another input; and whether the later of the
    /// two decisions was made without the earlier commit (never delivered to its leader
    /// incarnation before it committed) for every such frame.
    pub(super) fn decided_differently(
        &self,
        la: &[u64],
        lb: &[u64],
        side_a: &[u64],
        side_b: &[u64],
        frame: u64,
    ) -> Parting {
        let starts = side_a
            .iter()
            .chain(side_b)
            .filter_map(|e| self.tenures.get(e).map(|t| t.start_frame));
        let Some(from) = starts.min() else {
            return Parting::None;
        };
        let first = (from + 1).max(frame.saturating_sub(DECISIONS_COMPARED_MAX));
        let mut parting = Parting::None;
        for f in first..=frame {
            let (Some(x), Some(y)) = (self.decision_along(la, f), self.decision_along(lb, f)) else {
                continue;
            };
            if x == y {
                continue;
            }
            parting = match (self.deciding_along(la, f), self.deciding_along(lb, f)) {
                (Some(x), Some(y)) => self.decided_with(f, x, y),
                _ => Parting::Unseen,
            };
            if matches!(parting, Parting::Seen { .. }) {
                return parting;
            }
        }
        parting
    }

    /// The node incarnation that leads `epoch`, if any.
    pub fn leader(&self, epoch: u64) -> Option<(usize, u32)> {
        self.tenures.get(&epoch).map(|t| (t.node, t.incarnation))
    }
}

/// Where two histories decided frames differently (the crash window), judged against the
/// commits the network delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Parting {
    /// No frame decided differently.
    None,
    /// Some did, and each later decision was made without the earlier commit: it never
    /// reached the later decider's leader incarnation before it committed.
    Unseen,
    /// Frame `frame` was decided by commit `later` otherwise than by commit `earlier`
    /// (each `(epoch, frame)`), which had been delivered to `later`'s leader `node` at `at`.
    Seen {
        frame: u64,
        earlier: (u64, u64),
        later: (u64, u64),
        node: usize,
        at: Nanos,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Explanation {
    InputLost,
    SplitBrain,
    ColdStart,
    CrashWindow,
}

/// What a primary committed for a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Decision {
    /// Ran it on the input with this digest.
    Ran(u64),
    /// Skipped it (stored with the range's last frame; compared without it).
    Skipped(u64),
}
