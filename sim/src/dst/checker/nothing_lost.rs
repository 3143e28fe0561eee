//! Invariant 3, nothing lost: every output a primary committed reaches the sink, unless
//! that primary was fenced off or every node that ran the frame crashed.

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

    /// The outputs a primary of `epoch` committed are required at the sink, unless the
    /// sink already follows a higher epoch.
    pub(super) fn require_outputs(&mut self, node: usize, epoch: u64, commit: &Commit) {
        let CommitKind::Ran { outputs, .. } = commit.kind else {
            return;
        };
        // The sink follows a higher epoch than this primary's: its copies are rejected by
        // design. Deposed when a primary of a higher epoch runs on the other node (a split
        // brain); orphaned when none does (the sink follows a primary that is gone).
        let newer_primary_running = self
            .primary_now
            .iter()
            .enumerate()
            .any(|(n, e)| n != node && e.is_some_and(|e| e > epoch));
        let fenced = (epoch < self.sink_fence).then_some(if newer_primary_running {
            Fenced::Deposed
        } else {
            Fenced::Orphaned
        });
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
        for (&(frame, index), r) in &required {
            if accepted.contains_key(&(frame, index)) {
                continue;
            }
            match r.fenced {
                Some(Fenced::Deposed) => {
                    self.exceptions.lost_deposed += 1;
                    continue;
                }
                Some(Fenced::Orphaned) => {
                    self.exceptions.lost_orphaned += 1;
                    continue;
                }
                None => {}
            }
            let had: Vec<(usize, u32)> = self
                .ran_range
                .iter()
                .filter(|(_, &(low, high))| low <= frame && frame <= high)
                .map(|(&who, _)| who)
                .collect();
            if !had.is_empty() && had.iter().all(|who| self.crashed.contains(who)) {
                self.exceptions.lost_crashed += 1;
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
    }
}
