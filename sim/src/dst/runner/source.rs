//! What the world sees of the I/O source's sessions, for invariants 22 and 23
//! (`checker/source.rs`): each node's map and restart count from its status after each
//! event, the `SourceMap` messages delivered to it and those it sends, its commits and
//! its `SourceRestarted` notices.

use super::world::Sim;
use crate::dst::app::Workload;
use crate::dst::checker::SourceEvent;
use twinloop::node::{SourceMap, FRAME_MAX};
use twinloop::wire::{self, AuthKey, Body, WireRole};
use twinloop::{Action, Notice, Role};

/// A node's source mapping as its status told after its last event.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct SourceSeen {
    /// Its map.
    pub(super) source: Option<SourceMap>,
    /// Its restarts followed.
    pub(super) restarts: u64,
    /// The highest frame it had run or taken from the source.
    pub(super) in_hand: u64,
    /// It was primary.
    pub(super) primary: bool,
}

/// A `SourceMap` a node must take if handling it counts no rejection and changes
/// neither its role nor its epoch.
pub(super) struct MapOffered {
    map: SourceMap,
    role: Role,
    epoch: u64,
    rejections: twinloop::node::Rejections,
}

impl<'a, W: Workload> Sim<'a, W> {
    /// Node `to` starts: it holds no map and has followed no restart.
    pub(super) fn source_start(&mut self, to: usize) {
        self.source_seen[to] = SourceSeen::default();
        self.checker.on_source_start(to);
    }

    /// The map in `bytes`, a datagram a node sent that reaches node `to`, when the node
    /// must take it (docs/PROTOCOL.md, "Source sessions"): a primary's, valid, to a
    /// backup of the primary's epoch or to a starting node.
    pub(super) fn source_map_offered(&self, to: usize, bytes: &[u8]) -> Option<MapOffered> {
        let node = self.nodes[to].node.as_ref()?;
        let key = self.options.auth_key.map(AuthKey::new);
        let envelope = wire::decode(bytes, key.as_ref()).ok()?;
        let Body::SourceMap {
            session,
            source_first,
            pair_first,
        } = envelope.body
        else {
            return None;
        };
        let taken = match node.role() {
            Role::Primary => false,
            Role::Backup => envelope.header.epoch == node.epoch(),
            Role::Starting => true,
        };
        let valid = source_first != 0 && pair_first != 0 && pair_first <= FRAME_MAX;
        (taken && valid && envelope.header.role == WireRole::Primary).then(|| MapOffered {
            map: SourceMap {
                session,
                source_first,
                pair_first,
            },
            role: node.role(),
            epoch: node.epoch(),
            rejections: node.status().rejections,
        })
    }

    /// Node `to` handled the datagram `offered` came in: it must hold the map after, when
    /// it read it as such (no rejection counted, not refused as a replay, its role and
    /// epoch as before).
    pub(super) fn source_map_handled(&mut self, to: usize, offered: Option<MapOffered>, refused: bool) {
        let Some(offered) = offered else { return };
        let Some(node) = self.nodes[to].node.as_ref() else {
            return;
        };
        if !refused
            && node.role() == offered.role
            && node.epoch() == offered.epoch
            && node.status().rejections == offered.rejections
        {
            self.source_map_taken = Some(offered.map);
        }
    }

    /// Invariants 22 and 23 on node `i`'s event, from its actions (before they are
    /// applied) and its status after.
    pub(super) fn source_observe(&mut self, i: usize, actions: &[Action]) {
        let map_taken = self.source_map_taken.take();
        let Some(node) = self.nodes[i].node.as_ref() else {
            return;
        };
        let seen = self.source_seen[i];
        let status = node.status();
        let primary_after = node.role() == Role::Primary;
        let mut event = SourceEvent {
            node: i,
            primary_before: seen.primary,
            primary_after,
            source_before: seen.source,
            restarts_before: seen.restarts,
            in_hand_before: seen.in_hand,
            source_after: status.source,
            restarts_after: status.source_restarts,
            map_taken,
            ..SourceEvent::default()
        };
        for action in actions {
            match action {
                Action::Notice(Notice::SourceRestarted {
                    session,
                    source_first,
                    pair_first,
                }) => event.notices.push(SourceMap {
                    session: *session,
                    source_first: *source_first,
                    pair_first: *pair_first,
                }),
                Action::CommitHeld { commit, .. } => event.committed.push(commit.frame),
                Action::Transmit { link: 0, bytes, .. } => match wire::decode(bytes, None).map(|e| e.body) {
                    Ok(Body::Commit(commit)) => event.committed.push(commit.frame),
                    Ok(Body::SourceMap { .. }) => event.announced += 1,
                    Ok(Body::TransferBegin { frame, .. }) => event.transfers.push((event.committed.len(), frame)),
                    _ => {}
                },
                _ => {}
            }
        }
        self.source_seen[i] = SourceSeen {
            source: status.source,
            restarts: status.source_restarts,
            in_hand: status.frame.max(status.input.frame),
            primary: primary_after,
        };
        self.checker.on_source_event(self.now, &event);
    }
}
