//! Invariant 13, an attacker changes nothing (issue 21): a datagram the attacker injected
//! that the core must reject is rejected — counted by one of its `rejections` counters —
//! and handling it changes no role, no epoch and no output, and raises no alarm but the
//! documented ones a stray datagram may raise (`sync_key_mismatch`, `peer_is_self`).
//! One exception, from 2026-11-26: a replayed genuine message carrying an epoch above
//! the target's may teach it that epoch (it was really led or announced): the target
//! writes it down, and a primary below it leads on above it (`EpochRaised`), nothing
//! else (`runtime/src/node/fencing.rs`, `refused_epoch`).
//!
//! Why this and not "the same seed without the attacker ends the same": the attacker's
//! datagrams cost the target work and move its clock reading (every event does), so a
//! run with them may differ from one without them in timing alone, legitimately. What
//! must not differ is the verdict on each datagram, and that is judged datagram by
//! datagram, in the step that delivers it.

use super::*;

/// What handling one injected datagram did, as the runner saw it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InjectedOutcome {
    /// The node it was delivered to.
    pub node: usize,
    /// Its kind (`attacker::Kind::name`).
    pub kind: &'static str,
    /// The node's rejection counters, summed, rose.
    pub rejected: bool,
    /// The node's epoch before and after.
    pub epochs: (u64, u64),
    /// A replay of a genuine message carrying this epoch, above the node's before: the
    /// node may learn it (lead on above it, `EpochRaised`, and nothing else).
    pub learned: Option<u64>,
    /// Transitions, outputs and alarms (other than the documented ones) in the step,
    /// described for a human; empty when there were none.
    pub effects: Vec<String>,
}

impl Checker {
    /// An injected datagram the core must reject was handled with `outcome`.
    pub fn on_injected(&mut self, at: Nanos, outcome: &InjectedOutcome) {
        let o = outcome;
        let mut wrong = Vec::new();
        if !o.rejected {
            wrong.push("taken (no rejection counted)".to_string());
        }
        let raised = o.learned.is_some_and(|e| o.epochs.1 > e);
        if o.epochs.0 != o.epochs.1 && !raised {
            wrong.push(format!(
                "epoch {} -> {}",
                twinloop::EpochText(o.epochs.0),
                twinloop::EpochText(o.epochs.1)
            ));
        }
        wrong.extend(
            o.effects
                .iter()
                .filter(|e| !(raised && e.contains("EpochRaised")))
                .cloned(),
        );
        if !wrong.is_empty() {
            self.violation(
                Invariant::Injected,
                at,
                format!("node {}: injected {}: {}", o.node, o.kind, wrong.join("; ")),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome() -> InjectedOutcome {
        InjectedOutcome {
            node: 1,
            kind: "replay",
            rejected: true,
            epochs: (0x101, 0x101),
            learned: None,
            effects: Vec::new(),
        }
    }

    #[test]
    fn injected_replay_of_a_higher_epoch_may_raise_above_it_only() {
        let mut c = Checker::new();
        let raised = InjectedOutcome {
            epochs: (0x101, 0x301),
            learned: Some(0x202),
            effects: vec!["transition to Primary epoch 769 (3.1) (EpochRaised)".into()],
            ..outcome()
        };
        c.on_injected(5, &raised);
        assert_eq!(c.violation_count(), 0);
        let below = InjectedOutcome {
            epochs: (0x101, 0x202),
            ..raised.clone()
        };
        c.on_injected(6, &below);
        assert_eq!(c.violation_count(), 1, "an epoch not above the one learned");
        let other = InjectedOutcome {
            effects: vec!["output (5, 0)".into()],
            ..raised
        };
        c.on_injected(7, &other);
        assert_eq!(c.violation_count(), 2, "an output is no part of learning an epoch");
    }

    #[test]
    fn injected_rejected_without_effect_passes() {
        let mut c = Checker::new();
        c.on_injected(5, &outcome());
        assert_eq!(c.violation_count(), 0);
    }

    #[test]
    fn injected_taken_or_with_effect_breaks_invariant_13() {
        let broken = [
            InjectedOutcome {
                rejected: false,
                ..outcome()
            },
            InjectedOutcome {
                epochs: (0x101, 0x201),
                ..outcome()
            },
            InjectedOutcome {
                effects: vec!["output (4, 0)".to_string()],
                ..outcome()
            },
        ];
        for o in &broken {
            let mut c = Checker::new();
            c.on_injected(5, o);
            assert_eq!(c.violation_count(), 1, "{o:?}");
            assert_eq!(c.violations()[0].invariant, Invariant::Injected);
            assert_eq!(c.violations()[0].invariant.number(), 13);
            assert!(c.violations()[0].invariant.is_safety());
        }
    }
}
