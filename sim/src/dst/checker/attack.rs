//! Invariant 13, an attacker changes nothing (issue 21): a datagram the attacker injected
//! that the core must reject is rejected — counted by one of its `rejections` counters —
//! and handling it changes no role, no epoch and no output, and raises no alarm but the
//! documented ones a stray datagram may raise (`sync_key_mismatch`, `peer_is_self`).
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
        if o.epochs.0 != o.epochs.1 {
            wrong.push(format!(
                "epoch {} -> {}",
                twinloop::EpochText(o.epochs.0),
                twinloop::EpochText(o.epochs.1)
            ));
        }
        wrong.extend(o.effects.iter().cloned());
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
            effects: Vec::new(),
        }
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
