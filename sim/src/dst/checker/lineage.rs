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
    pub(super) fn explain(&self, (a, b): (u64, u64), frame: u64) -> Option<Explanation> {
        let (la, lb) = (self.lineage(a), self.lineage(b));
        let Some(common) = la.iter().position(|e| lb.contains(e)) else {
            // No common ancestor: they began from different cold starts.
            return Some(Explanation::ColdStart);
        };
        let common_epoch = la[common];
        let side_a = &la[..common];
        let side_b = &lb[..lb.iter().position(|&e| e == common_epoch).unwrap_or(lb.len())];
        let after_common = |e: &u64| side_a.contains(e) || side_b.contains(e);
        if self.input_lost.iter().any(|(e, f)| after_common(e) && *f < frame) {
            return Some(Explanation::InputLost);
        }
        let split = self.split_pairs.iter().any(|(&(x, y), &from)| {
            from < frame && ((la.contains(&x) && lb.contains(&y)) || (la.contains(&y) && lb.contains(&x)))
        });
        if split {
            return Some(Explanation::SplitBrain);
        }
        if self.decided_differently(&la[..=common], &lb, side_a, side_b, frame) {
            return Some(Explanation::CrashWindow);
        }
        None
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

    /// What a history (a lineage, newest epoch first) decided for `frame`: the newest
    /// decision along it.
    pub(super) fn decision_along(&self, lineage: &[u64], frame: u64) -> Option<Decision> {
        lineage.iter().find_map(|&e| self.decision(e, frame))
    }

    /// True when the two histories committed, for some frame up to `frame` above the one
    /// the first epoch after their common ancestor started from, different things: one
    /// ran a frame the other skipped, or ran it on another input.
    pub(super) fn decided_differently(
        &self,
        la: &[u64],
        lb: &[u64],
        side_a: &[u64],
        side_b: &[u64],
        frame: u64,
    ) -> bool {
        let starts = side_a
            .iter()
            .chain(side_b)
            .filter_map(|e| self.tenures.get(e).map(|t| t.start_frame));
        let Some(from) = starts.min() else {
            return false;
        };
        let first = (from + 1).max(frame.saturating_sub(DECISIONS_COMPARED_MAX));
        (first..=frame).any(|f| match (self.decision_along(la, f), self.decision_along(lb, f)) {
            (Some(x), Some(y)) => x != y,
            _ => false,
        })
    }

    /// The node incarnation that leads `epoch`, if any.
    pub fn leader(&self, epoch: u64) -> Option<(usize, u32)> {
        self.tenures.get(&epoch).map(|t| (t.node, t.incarnation))
    }
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
