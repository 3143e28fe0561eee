//! Invariant 12, divergence detected: after the fault plan made one node's application
//! diverge for a frame (its outputs or its state) or corrupted its local copy of a
//! frame's payload, either the pair never diverged (the backup's digest and outputs at
//! every frame agree with the primary's: the backup ran the primary's copy of the input,
//! found by the commit's input digest) or the backup raises `OutputDivergence` or
//! `StateDivergence` before it runs a second frame after the injected one (the bound:
//! one frame run), and it is in sync again by a state transfer within the join bound
//! (`runner::join_bound_ns`). A watch ends unjudged when another fault begins or either
//! node crashes or changes role before the alarm.

use super::*;

/// Frames the backup may run after the injected one before the alarm is overdue: a
/// state perturbed after the frame's outputs shows in the next frame's outputs (or, at
/// a state digest frame, in that very commit).
pub const DIVERGENCE_FRAMES_MAX: u32 = 1;

/// What the fault perturbed (the checker's copy of `faults::DivergeKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Perturbed {
    /// A frame's outputs.
    Output,
    /// The state after a frame.
    State,
    /// The node's local copy of a frame's payload.
    FrameCopy,
}

/// One injection, watched.
#[derive(Debug, Clone, Copy)]
pub(super) struct DivergeWatch {
    /// The node perturbed.
    node: usize,
    /// The node that must detect it: the backup.
    backup: usize,
    epoch: u64,
    frame: u64,
    kind: Perturbed,
    /// Frames the backup ran after `frame`.
    steps_after: u32,
    /// The backup's digest or outputs differed from the primary's at a frame from
    /// `frame` on.
    diverged: bool,
    /// The alarm: when, and the frame it names.
    alarm: Option<(Nanos, u64)>,
    /// Ended: judged (caught and in sync again, or absorbed) or cut short.
    over: bool,
    recover_bound_ns: Nanos,
}

impl Checker {
    /// True while an injection is watched: the runner injects one at a time.
    pub fn diverge_active(&self) -> bool {
        self.diverge.is_some_and(|w| !w.over)
    }

    /// Node `node`'s application (or its copy of the frame's payload) was perturbed at
    /// `frame` under `epoch`; `backup` must detect it, and be in sync again within
    /// `recover_bound_ns` of its alarm.
    pub fn on_diverge_fired(
        &mut self,
        node: usize,
        backup: usize,
        epoch: u64,
        frame: u64,
        kind: Perturbed,
        recover_bound_ns: Nanos,
    ) {
        self.divergences_injected += 1;
        self.diverge = Some(DivergeWatch {
            node,
            backup,
            epoch,
            frame,
            kind,
            steps_after: 0,
            diverged: false,
            alarm: None,
            over: false,
            recover_bound_ns,
        });
    }

    /// Another fault began (or a node crashed): the watch ends unjudged.
    pub fn end_diverge_watch(&mut self) {
        if let Some(w) = &mut self.diverge {
            if !w.over && w.alarm.is_none() {
                // Still exempt from invariant 4 from its frame on: it may never be caught.
                self.diverge_exempt.push((w.backup, w.epoch, w.frame, u64::MAX));
            }
            w.over = true;
        }
    }

    /// A step of node `node` under `epoch` that a watched injection explains: its digest
    /// or outputs may differ from the primary's (invariant 4 does not judge it), and the
    /// alarm must come before the backup runs a second frame after the injected one.
    /// Returns true when invariant 4 must not compare the step.
    pub(super) fn diverge_explains(
        &mut self,
        at: Nanos,
        node: usize,
        epoch: u64,
        step: &Step,
        outputs_hash: u64,
    ) -> bool {
        if self
            .diverge_exempt
            .iter()
            .any(|&(n, e, from, to)| n == node && e == epoch && (from..=to).contains(&step.frame))
        {
            return true;
        }
        let Some(w) = &mut self.diverge else { return false };
        if w.over || w.backup != node || w.epoch != epoch || step.frame < w.frame {
            return false;
        }
        if w.alarm.is_some_and(|(_, frame)| step.frame > frame) {
            return false;
        }
        if let Some(&(digest, outputs, _)) = self.digests.get(&(epoch, step.frame)) {
            if digest != step.digest || outputs != outputs_hash {
                w.diverged = true;
            }
        }
        if step.frame > w.frame {
            w.steps_after += 1;
        }
        if w.alarm.is_none() && w.steps_after > DIVERGENCE_FRAMES_MAX {
            let w = *w;
            if w.diverged {
                self.violation(
                    Invariant::DivergenceDetected,
                    at,
                    format!(
                        "{:?} injected on node {} at frame {} (epoch {}): node {} diverged and ran frame {} without a divergence alarm",
                        w.kind,
                        w.node,
                        w.frame,
                        twinloop::EpochText(w.epoch),
                        w.backup,
                        step.frame
                    ),
                );
                self.end_diverge_watch();
                return true;
            }
            // Nothing diverged: the core kept the pair together (a corrupted copy of an
            // input is refused by the commit's input digest).
            self.divergences_absorbed += 1;
            if let Some(w) = &mut self.diverge {
                w.over = true;
            }
            return false;
        }
        true
    }

    /// Node `node` raised `OutputDivergence` or `StateDivergence` for `frame`.
    pub fn on_divergence_alarm(&mut self, at: Nanos, node: usize, frame: u64) {
        let Some(w) = &mut self.diverge else { return };
        if w.over || w.backup != node || w.alarm.is_some() || frame < w.frame {
            return;
        }
        w.alarm = Some((at, frame));
        self.divergences_caught += 1;
        let (backup, epoch, from) = (w.backup, w.epoch, w.frame);
        self.diverge_exempt.push((backup, epoch, from, frame));
    }

    /// A transition: the backup in sync again by a transfer after its alarm ends the
    /// watch (judged against the bound); before the alarm, a change of role or epoch on
    /// either node ends it unjudged.
    pub(super) fn watch_divergence(&mut self, at: Nanos, node: usize, t: &Transition) {
        let Some(w) = self.diverge.filter(|w| !w.over) else {
            return;
        };
        match w.alarm {
            Some((alarm_at, frame)) if node == w.backup => {
                if t.role == Role::Backup && t.sync == SyncState::InSync && t.reason == Reason::InSync {
                    let took_ns = at.saturating_sub(alarm_at);
                    if took_ns > w.recover_bound_ns {
                        self.violation(
                            Invariant::DivergenceDetected,
                            at,
                            format!(
                                "node {} alarmed a divergence at frame {frame} and was in sync again only {:.3} ms later, above the bound of {:.3} ms",
                                w.backup,
                                took_ns as f64 / 1e6,
                                w.recover_bound_ns as f64 / 1e6
                            ),
                        );
                    }
                    self.divergences_recovered += 1;
                    if let Some(w) = &mut self.diverge {
                        w.over = true;
                    }
                } else if t.role != Role::Backup {
                    self.end_diverge_watch();
                }
            }
            Some(_) => {
                if t.role != Role::Primary {
                    self.end_diverge_watch();
                }
            }
            None => {
                if t.epoch != w.epoch || (node == w.backup && t.role != Role::Backup) {
                    self.end_diverge_watch();
                }
            }
        }
    }

    /// The end of the run: a divergence never alarmed is a violation; an alarm not
    /// followed by a resync is one when its bound has passed.
    pub(super) fn finish_divergence(&mut self, at: Nanos) {
        let Some(w) = self.diverge.filter(|w| !w.over) else {
            return;
        };
        match w.alarm {
            None if w.diverged => self.violation(
                Invariant::DivergenceDetected,
                at,
                format!(
                    "{:?} injected on node {} at frame {} (epoch {}): node {} diverged and never raised a divergence alarm",
                    w.kind,
                    w.node,
                    w.frame,
                    twinloop::EpochText(w.epoch),
                    w.backup
                ),
            ),
            Some((alarm_at, frame)) if at.saturating_sub(alarm_at) > w.recover_bound_ns => self.violation(
                Invariant::DivergenceDetected,
                at,
                format!(
                    "node {} alarmed a divergence at frame {frame} and was not in sync again {:.3} ms later (bound {:.3} ms)",
                    w.backup,
                    at.saturating_sub(alarm_at) as f64 / 1e6,
                    w.recover_bound_ns as f64 / 1e6
                ),
            ),
            _ => {}
        }
    }
}
