//! The attacker in the run (issue 21): what it sees (every datagram a node transmits),
//! the delivery of what it injects, and the judgement invariant 13 needs — whether the
//! core *must* reject an injected datagram.
//!
//! The judgement is made at delivery, from the bytes and from what the target accepted
//! before, never from the core's internals:
//! - bytes that do not decode under the target's key (garbage, forgeries under a wrong
//!   MAC, untagged messages on a keyed pair): rejected by the decoder;
//! - a message carrying the target's own id, or on a link it does not have (reflections):
//!   rejected as misaddressed;
//! - on a keyed pair, an exact replay (docs/SYNC-PROTOCOL.md, "Replay protection": a
//!   session is taken from a heartbeat echoing the link's challenge, drawn at the
//!   target's start and again at each session it verifies there) of
//!   - a `(session, seq)` the target's current incarnation already took on that link;
//!   - a datagram sent before the target started (its restart: nothing then can echo
//!     the challenge it drew at start);
//!   - a session it took on that link before the one it took last (left behind: its
//!     datagrams were sent before the last session's handshake drew the challenge now
//!     due);
//!   - the session it took last, below the first number it took there (the handshake's
//!     heartbeat: the window starts above everything sent before it);
//!   - anything but a heartbeat, of a session other than the one it took last.
//!
//!   Any other replay (a first copy of a datagram sent since, lost or not yet arrived)
//!   is delivered, counted as not judged, and checked by nothing but the other
//!   invariants. The rule is the protocol's, not the window's code: it caught a window
//!   that, once an old session's replay had moved it back, took the newest session's
//!   messages again, and a restarted node that took its peer's messages from before.
//!
//! "What the target took" is a model the runner keeps per node and link from every
//! delivery, the attacker's included: a datagram that decodes under the key, from the
//! peer's id, whose delivery did not raise the `replayed` counter, entered the window.

use super::world::{Event, Phase, Sim};
use super::*;
use crate::dst::app::Workload;
use crate::dst::attacker::{Injection, Kind};
use crate::dst::checker::InjectedOutcome;
use crate::dst::clock::Nanos;
use std::collections::BTreeSet;
use twinloop::node::Rejections;
use twinloop::wire::{self, AuthKey};
use twinloop::{Action, Alarm};

/// Sequence numbers remembered per node and link for judging replays; beyond, the
/// oldest are forgotten (their replays are then not judged).
pub const TAKEN_SEQS_MAX: usize = 4096;

/// Sessions remembered per node and link as left behind; beyond, the oldest are
/// forgotten (their replays are then judged by the other rules only).
pub const LEFT_SESSIONS_MAX: usize = 64;

/// What one node's current incarnation took on one link, as far as the replay window
/// goes.
#[derive(Debug, Clone, Default)]
pub(super) struct WindowModel {
    incarnation: u32,
    /// `(session, seq)` taken.
    taken: BTreeSet<(u64, u64)>,
    /// The session of the last datagram taken (`None`: nothing taken yet), and the first
    /// sequence number taken in it.
    last: Option<(u64, u64)>,
    /// Sessions taken before the last one.
    left: BTreeSet<u64>,
}

/// The highest frame number a message's body names (0: none), as the core bounds it.
fn body_frame(body: &wire::Body) -> u64 {
    use twinloop::wire::{Body, CommitKind};
    match body {
        Body::Commit(commit) | Body::FrameData { commit, .. } => match commit.kind {
            CommitKind::Skipped { last } => commit.frame.max(last),
            CommitKind::Ran { .. } => commit.frame,
        },
        Body::Fetch { frame }
        | Body::TransferBegin { frame, .. }
        | Body::SwitchRelease { frame, .. }
        | Body::SwitchTaken { frame, .. } => *frame,
        Body::SourceMap { pair_first, .. } => *pair_first,
        _ => 0,
    }
}

/// Every rejection counter (not the sub-counters `untagged` and `wrong_key`), summed.
fn rejections_total(r: &Rejections) -> u64 {
    r.too_short
        + r.too_long
        + r.unknown_version
        + r.bad_checksum
        + r.malformed
        + r.misaddressed
        + r.stale_epoch
        + r.stale_frame
        + r.unauthenticated
        + r.replayed
        + r.epoch_out_of_range
        + r.frame_out_of_range
        + r.frame_other_session
        + r.refused_peer
}

impl<'a, W: Workload> Sim<'a, W> {
    fn key(&self) -> Option<AuthKey> {
        self.options.auth_key.map(AuthKey::new)
    }

    /// True when the runner keeps the replay-window models: a keyed run with an attacker.
    pub(super) fn tracks_windows(&self) -> bool {
        self.attacker.is_some() && self.options.auth_key.is_some()
    }

    /// The `replayed` counter of node `i`, when the models are kept.
    /// Node `i`'s `replayed` counter when the pair has a key (messages refused as not
    /// fresh: invariant 3 tells what a node could read from what it refused).
    pub(super) fn refused_count(&self, i: usize) -> Option<u64> {
        self.options.auth_key?;
        self.nodes[i].node.as_ref().map(|n| n.status().rejections.replayed)
    }

    pub(super) fn replayed_count(&self, i: usize) -> Option<u64> {
        if !self.tracks_windows() {
            return None;
        }
        self.nodes[i].node.as_ref().map(|n| n.status().rejections.replayed)
    }

    /// A datagram was handled by node `to` on `link`; `replayed_before` is its
    /// `replayed` counter before. Updates the window model.
    pub(super) fn note_delivered(&mut self, to: usize, link: u8, bytes: &[u8], replayed_before: Option<u64>) {
        let (Some(before), Some(after)) = (replayed_before, self.replayed_count(to)) else {
            return;
        };
        if after != before || link >= self.options.config.links {
            return;
        }
        let key = self.key();
        let Ok(envelope) = wire::decode(bytes, key.as_ref()) else {
            return;
        };
        if envelope.header.node_id == to as u8 + 1 {
            return;
        }
        let incarnation = self.nodes[to].incarnation;
        let model = &mut self.windows[to][usize::from(link)];
        if model.incarnation != incarnation {
            *model = WindowModel {
                incarnation,
                ..WindowModel::default()
            };
        }
        let h = envelope.header;
        model.taken.insert((h.session, h.seq));
        if model.taken.len() > TAKEN_SEQS_MAX {
            model.taken.pop_first();
        }
        match model.last {
            Some((session, _)) if session == h.session => {}
            previous => {
                if let Some((session, _)) = previous {
                    model.left.insert(session);
                    if model.left.len() > LEFT_SESSIONS_MAX {
                        model.left.pop_first();
                    }
                }
                model.last = Some((h.session, h.seq));
            }
        }
    }

    /// Node `from` transmitted `bytes` on `link`: the attacker sees it and may inject.
    pub(super) fn attack_observe(&mut self, from: usize, link: u8, bytes: &[u8]) {
        let Some(attacker) = self.attacker.as_mut() else {
            return;
        };
        let mut injections: Vec<Injection> = core::mem::take(&mut self.injections);
        attacker.observe(self.now, from, link, bytes, &mut injections);
        for injection in injections.drain(..) {
            let Injection {
                at,
                to,
                link,
                kind,
                bytes,
                sent_at,
            } = injection;
            self.schedule(
                at,
                Event::Inject {
                    to,
                    link,
                    kind,
                    bytes,
                    sent_at,
                },
            );
        }
        self.injections = injections;
    }

    /// Node `from` transmits `bytes` on `link`: the attacker's tampered chunk the network
    /// carries in their place, when it changes them (`Kind::Tamper`, unkeyed seeds that
    /// draw it). A tampered chunk is a fault like the plan's: none once the faults healed.
    pub(super) fn attack_tamper(&mut self, from: usize, link: u8, bytes: &[u8]) -> Option<Vec<u8>> {
        if self.phase != Phase::Safety {
            return None;
        }
        let tampered = self.attacker.as_mut()?.tamper(bytes)?;
        self.stats.attack_tampered += 1;
        self.say(format_args!(
            "attacker tampers with node {from}'s first transfer chunk on link {link}"
        ));
        Some(tampered)
    }

    /// True when node `to` must reject `bytes` on `link`, a datagram first sent at
    /// `sent_at` (see the module docs).
    fn must_reject(&self, to: usize, link: u8, kind: Kind, bytes: &[u8], sent_at: Nanos) -> bool {
        let key = self.key();
        let Ok(envelope) = wire::decode(bytes, key.as_ref()) else {
            return true;
        };
        let h = envelope.header;
        if link >= self.options.config.links || h.node_id == to as u8 + 1 {
            return true;
        }
        if body_frame(&envelope.body) > twinloop::node::FRAME_MAX {
            return true;
        }
        if key.is_none() || kind != Kind::Replay {
            return false;
        }
        // A keyed node's session is the true time it started, plus 1 (`host.rs`).
        if sent_at < self.sessions[to].saturating_sub(1) {
            return true;
        }
        let model = &self.windows[to][usize::from(link)];
        let (taken, last, left) = if model.incarnation == self.nodes[to].incarnation {
            (
                model.taken.contains(&(h.session, h.seq)),
                model.last,
                model.left.contains(&h.session),
            )
        } else {
            (false, None, false)
        };
        let heartbeat = matches!(envelope.body, wire::Body::Heartbeat { .. });
        taken
            || left
            || match last {
                Some((session, first)) if session == h.session => h.seq < first,
                _ => !heartbeat,
            }
    }

    /// True when `bytes` authenticate under the pair's key and carry node `i`'s current
    /// session.
    fn own_session(&self, i: usize, bytes: &[u8]) -> bool {
        let key = self.key();
        key.is_some() && wire::decode(bytes, key.as_ref()).is_ok_and(|e| e.header.session == self.sessions[i])
    }

    /// The bytes handed to the node: the injected ones, or with a planted bug, what a
    /// core with that bug would have taken them for.
    fn planted(&self, kind: Kind, bytes: Vec<u8>) -> Vec<u8> {
        let Some(key) = self.key() else {
            return bytes;
        };
        let fresh = |envelope: &mut wire::Envelope| envelope.header.seq = envelope.header.seq.wrapping_add(1 << 40);
        match (self.run.mutation, kind) {
            // A replay window that takes repeats: the node sees the copy as new.
            (Mutation::AcceptReplay, Kind::Replay) => match wire::decode(&bytes, Some(&key)) {
                Ok(mut envelope) => {
                    fresh(&mut envelope);
                    wire::encode(&envelope, Some(&key)).map_or(bytes, |b| b.to_vec())
                }
                Err(_) => bytes,
            },
            // A decoder that takes an untagged message on a keyed link.
            (Mutation::AcceptUntagged, Kind::Untagged) => match wire::decode(&bytes, None) {
                Ok(envelope) => wire::encode(&envelope, Some(&key)).map_or(bytes, |b| b.to_vec()),
                Err(_) => bytes,
            },
            _ => bytes,
        }
    }

    /// The attacker's datagram reaches node `to` on `link`.
    pub(super) fn deliver_injection(&mut self, to: usize, link: u8, kind: Kind, bytes: Vec<u8>, sent_at: Nanos) {
        self.trace_u64(0xA77A_0000 + to as u64);
        if self.nodes[to].node.is_none() {
            return;
        }
        if self.nodes[to].frozen_until.is_some() {
            self.defer_if_frozen(
                to,
                Event::Inject {
                    to,
                    link,
                    kind,
                    bytes,
                    sent_at,
                },
            );
            return;
        }
        if kind == Kind::Reflection && !self.own_session(to, &bytes) {
            // Its previous incarnation's message: the node cannot tell it from a second
            // node with its id, which it must refuse (docs/DECISIONS.md, 2026-11-26 — An
            // attacker in the DST). A known limit: not sent.
            self.stats.attack_withheld += 1;
            return;
        }
        let local = self.nodes[to].clock.local(self.now);
        let judged = self.must_reject(to, link, kind, &bytes, sent_at);
        self.stats.attack_delivered += 1;
        if judged {
            self.stats.attack_judged += 1;
        }
        self.say(format_args!(
            "attacker -> node {to} link {link}: {} ({} bytes){}",
            kind.name(),
            bytes.len(),
            if judged { "" } else { ", not judged" }
        ));
        let bytes = self.planted(kind, bytes);
        let carried = if kind == Kind::Replay {
            wire::decode(&bytes, self.key().as_ref()).ok().map(|e| e.header.epoch)
        } else {
            None
        };
        if let Some(epoch) = carried {
            // A node's datagram, arriving late (invariant 19: it may tell of a successor).
            self.checker.on_epoch_delivered(to, epoch);
        }
        let replayed_before = self.replayed_count(to);
        self.note_commit_seen(to, &bytes);
        let Some(n) = self.nodes[to].node.as_mut() else { return };
        let rejected_before = rejections_total(&n.status().rejections);
        let epoch_before = n.epoch();
        n.handle_message(local, link, &bytes);
        let rejected_after = rejections_total(&n.status().rejections);
        // What the window took, the attacker's datagrams included (one not judged, the
        // first copy of a datagram sent since the target started, moves it as the real
        // one would).
        self.note_delivered(to, link, &bytes, replayed_before);
        if rejected_after == rejected_before {
            self.note_probe_traffic(to, &bytes);
        }
        self.attack_effects = judged.then(Vec::new);
        self.drain(to, epoch_before);
        self.checker.on_probe_event_end(to);
        let effects = self.attack_effects.take().unwrap_or_default();
        let epoch_after = self.nodes[to].node.as_ref().map_or(epoch_before, |n| n.epoch());
        if judged {
            let outcome = InjectedOutcome {
                node: to,
                kind: kind.name(),
                rejected: rejected_after > rejected_before,
                epochs: (epoch_before, epoch_after),
                learned: carried.filter(|&e| e > epoch_before),
                effects,
            };
            self.checker.on_injected(self.now, &outcome);
        }
    }

    /// While a judged injection is handled: notes the actions it must not cause.
    pub(super) fn note_attack_effects(&mut self, i: usize, actions: &[Action]) {
        let Some(effects) = self.attack_effects.as_mut() else {
            return;
        };
        for action in actions {
            match action {
                Action::Transition(t) => effects.push(format!(
                    "transition to {:?} epoch {} ({:?})",
                    t.role,
                    twinloop::EpochText(t.epoch),
                    t.reason
                )),
                Action::Emit(o) => effects.push(format!("output ({}, {})", o.frame, o.index)),
                // `FrameRefused`: raised once for a frame beyond reach, the documented
                // answer to one.
                Action::Alarm(
                    Alarm::SyncKeyMismatch { .. } | Alarm::PeerIsSelf { .. } | Alarm::FrameRefused { .. },
                ) => {}
                Action::Alarm(alarm) => effects.push(format!("alarm {alarm:?} on node {i}")),
                _ => {}
            }
        }
    }
}
