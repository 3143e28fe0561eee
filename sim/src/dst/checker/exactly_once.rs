//! Invariant 2, exactly once: the sink accepts each identity once, a node emits what its
//! application produced, once per epoch, and copies of an identity agree in content
//! unless their histories parted (classified at the end, see [`super::lineage`]).

use super::*;

impl Checker {
    /// The sink accepts an identity once and sees no identity a node does not send.
    pub(super) fn check_sink_once(&mut self, at: Nanos, node: usize, output: &Output, verdict: Verdict) {
        let epoch = output.epoch;
        let id = (output.frame, output.index);
        match verdict {
            Verdict::Accepted => {
                if let Some(&first) = self.accepted.get(&id) {
                    self.violation(
                        Invariant::ExactlyOnce,
                        at,
                        format!(
                            "sink accepted {id:?} twice (epochs {first} and {epoch})",
                            first = twinloop::EpochText(first),
                            epoch = twinloop::EpochText(epoch)
                        ),
                    );
                }
                self.accepted.insert(id, epoch);
            }
            Verdict::Invalid => self.violation(
                Invariant::ExactlyOnce,
                at,
                format!("node {node} emitted {id:?}, an id no node sends"),
            ),
            // A duplicate is invariant 3's to judge, a stale copy the fence's; a copy
            // below the window, or (never accepted) a loss that invariant 3 weighs.
            // A level refused as superseded is invariant 14's.
            Verdict::Duplicate | Verdict::Conflict | Verdict::Stale | Verdict::TooOld | Verdict::Superseded => {}
        }
    }

    /// A node emits what its application produced, unchanged; returns the content's hash.
    pub(super) fn check_emit_produced(&mut self, at: Nanos, node: usize, output: &Output) -> u64 {
        let id = (output.frame, output.index);
        let hash = fnv64(&output.payload);
        match self.produced.get(&(id.0, node, id.1)) {
            Some(&produced) if produced == hash => {}
            Some(_) => self.violation(
                Invariant::ExactlyOnce,
                at,
                format!("node {node} emitted {id:?} with content its application did not produce"),
            ),
            None => self.violation(
                Invariant::ExactlyOnce,
                at,
                format!("node {node} emitted {id:?}, which its application never produced"),
            ),
        }
        hash
    }

    /// One copy per epoch, one content per identity: differences are kept to be
    /// classified at the end.
    pub(super) fn check_emit_copies(&mut self, at: Nanos, node: usize, output: &Output, hash: u64) {
        let epoch = output.epoch;
        let id = (output.frame, output.index);
        let mut mismatch_with = Vec::new();
        let mut twice = false;
        match self.copies.get_mut(&id) {
            None => {
                self.copies.insert(
                    id,
                    Copies {
                        first: (epoch, hash),
                        more: Vec::new(),
                    },
                );
            }
            Some(copies) => {
                for &(e, h) in core::iter::once(&copies.first).chain(copies.more.iter()) {
                    if e == epoch {
                        twice = true;
                    }
                    if h != hash {
                        mismatch_with.push(e);
                    }
                }
                // With acks a new primary re-sends an event of its history under its own
                // epoch: a copy with the content of an earlier one was judged against the
                // others when that one came, in the epoch that produced it (`dst --acks`
                // seed 130: a 3.2 event re-sent under 5.2 compared with a split brain's
                // 2.1 copy, as if no split brain lay between 2.1 and 5.2).
                let resent = self.acks
                    && output.kind == twinloop::OutputKind::Event
                    && core::iter::once(&copies.first)
                        .chain(copies.more.iter())
                        .any(|&(e, h)| e != epoch && h == hash);
                if resent {
                    mismatch_with.clear();
                }
                if !twice {
                    copies.more.push((epoch, hash));
                }
            }
        }
        // The level refresh (issue 22) re-sends a key's newest level under the same id: a
        // copy in the same epoch, the same content (a different one is still judged). With
        // acks an event goes out again until acked (invariant 16's to judge).
        let refreshed = self.level_refresh && output.kind.level_key().is_some();
        let resent = self.acks && output.kind == twinloop::OutputKind::Event;
        if twice && !refreshed && !resent {
            self.violation(
                Invariant::ExactlyOnce,
                at,
                format!(
                    "node {node} emitted {id:?} twice under epoch {epoch}",
                    epoch = twinloop::EpochText(epoch)
                ),
            );
        }
        for other in mismatch_with {
            let epochs = (other.min(epoch), other.max(epoch));
            if self.mismatches.len() < MISMATCHES_MAX {
                self.mismatches.push(Mismatch {
                    frame: id.0,
                    index: id.1,
                    epochs,
                    at,
                });
            } else {
                self.violation(
                    Invariant::ExactlyOnce,
                    at,
                    format!(
                        "{id:?} has two contents (epochs {}, {}); too many to classify",
                        twinloop::EpochText(epochs.0),
                        twinloop::EpochText(epochs.1)
                    ),
                );
            }
        }
    }

    /// Classifies every content difference, now that every epoch's story is known.
    pub(super) fn classify_mismatches(&mut self) {
        let mismatches = core::mem::take(&mut self.mismatches);
        let mut counted: BTreeMap<(u64, u8), ()> = BTreeMap::new();
        for m in mismatches {
            let explained = self.explain(m.epochs, m.frame);
            match explained {
                Ok(kind) => {
                    if counted.insert((m.frame, m.index), ()).is_none() {
                        match kind {
                            Explanation::InputLost => self.exceptions.input_lost += 1,
                            Explanation::SplitBrain => self.exceptions.split_brain += 1,
                            Explanation::ColdStart => self.exceptions.cold_start += 1,
                            Explanation::CrashWindow => self.exceptions.crash_window += 1,
                        }
                    }
                }
                Err(why) => self.violation(
                    Invariant::ExactlyOnce,
                    m.at,
                    format!(
                        "output ({}, {}) has two contents: epochs {} and {}, no input lost, split brain or cold start between{}",
                        m.frame,
                        m.index,
                        twinloop::EpochText(m.epochs.0),
                        twinloop::EpochText(m.epochs.1),
                        why.map_or(String::new(), |w| format!("; {w}"))
                    ),
                ),
            }
        }
    }
}
