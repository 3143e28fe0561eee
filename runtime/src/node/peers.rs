//! Peer slots: what this node knows of each other node, one slot per peer (a pair uses
//! slot 0; a group of four, issue 16, up to `GROUP_PEERS_MAX`).
//!
//! Links have one global index (`0..links_total`, at most `LINKS_TOTAL_MAX`), and every
//! per-link array in [`Node`] is indexed by it; each slot owns a run of consecutive
//! indexes, its links. A message arriving on link `l` is from the peer of slot
//! [`Node::link_peer`]`(l)`, and what it says goes into that slot.
//!
//! Code that means "the pair's other node" — a choice a group must make among its peers
//! (which backup, which primary, any or all of them) — goes through [`Node::the_peer`]
//! and the `the_peer_*` helpers, which a pair resolves to slot 0. Each such call site
//! carries a `// groups:` comment saying what issue 16's votes and succession must decide
//! there.
//!
//! Work: per-peer loops run over at most `GROUP_PEERS_MAX` (3) slots, per-link loops over
//! at most `LINKS_TOTAL_MAX` (12) links; a group does at most three times a pair's
//! per-peer work per wake-up.

use super::pairing::Refusal;
use super::{Node, PeerStatus};
use crate::app::App;
use crate::config::{Config, GROUP_PEERS_MAX, LINKS_MAX, LINKS_TOTAL_MAX};
use crate::time::Instant;
use crate::wire::{WireRole, WireSync};

/// The slot of the pair's other node.
pub(super) const THE_PEER: usize = 0;

/// What this node knows of one peer.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct PeerSlot {
    /// What the peer last said about itself (`None`: not heard, or refused).
    pub(super) status: Option<PeerStatus>,
    /// Its start-up tiebreak, from its last heartbeat.
    pub(super) nonce: u64,
    pub(super) priority: u8,
    /// Its highest frame from the I/O source, as its last heartbeat told.
    pub(super) input_frame: u64,
    /// When its last frame arrived, on this node's clock (`None`: none or unknown).
    pub(super) input_heard_at: Option<Instant>,
    /// Since when every message from it said it holds no state.
    pub(super) cold_since: Option<Instant>,
    /// Its session, from its last fresh message (0: not heard).
    pub(super) session: u64,
    /// This node refuses to pair with it, while it is heard (see `pairing`).
    pub(super) refusal: Option<Refusal>,
    /// A group's member: when it last asked for votes, and the last frame it said it can
    /// decide (its `VoteRequest`'s `commit_highest`; see `succession::Node::successor`).
    pub(super) asked: Option<(Instant, u64)>,
    /// A group's member that refused this node's vote round: when, and the last frame it
    /// holds a commit of (its `Vote`'s `commit_highest`; see
    /// `succession::Node::vote_outrun`).
    pub(super) outran: Option<(Instant, u64)>,
    /// Its links: global indexes `link_first..link_first + link_count`.
    pub(super) link_first: u8,
    pub(super) link_count: u8,
}

impl PeerSlot {
    /// Its links' global indexes.
    pub(super) fn links(&self) -> core::ops::Range<u8> {
        self.link_first..self.link_first + self.link_count
    }
}

/// The slots a configuration describes, and the slot of each global link index: a pair is
/// one slot owning links `0..links`; a group's `[[peers]]` take slots in their order, each
/// owning the next run of its `links`. Every link index at or above the total maps to
/// slot 0 but is never used (`handle_message` drops a message on it as misaddressed).
pub(super) fn slots_for(config: &Config) -> ([PeerSlot; GROUP_PEERS_MAX], [u8; LINKS_TOTAL_MAX], u8) {
    let mut peers = [PeerSlot::default(); GROUP_PEERS_MAX];
    let mut link_peer = [THE_PEER as u8; LINKS_TOTAL_MAX];
    if config.peers.is_empty() {
        // Validated: 1..=LINKS_MAX, so within LINKS_TOTAL_MAX.
        peers[THE_PEER].link_count = config.links;
        return (peers, link_peer, 1);
    }
    // Validated: at most GROUP_PEERS_MAX peers of 1..=LINKS_MAX links each; the bounds
    // below hold whatever a caller passes.
    let mut first = 0u8;
    let mut count = 0u8;
    for (slot, (peer, state)) in config.peers.iter().zip(peers.iter_mut()).enumerate() {
        let links = peer.links.min(LINKS_MAX as u8);
        state.link_first = first;
        state.link_count = links;
        for l in first..first + links {
            link_peer[usize::from(l)] = slot as u8;
        }
        first += links;
        count += 1;
    }
    (peers, link_peer, count)
}

impl<A: App> Node<A> {
    /// The slot of the peer at the other end of link `link` (a global index below
    /// `links_total`).
    pub(super) fn link_peer(&self, link: u8) -> usize {
        usize::from(self.link_peer[usize::from(link)])
    }

    /// The number of links over every peer: global link indexes are `0..links_total`.
    pub(super) fn links_total(&self) -> u8 {
        self.peers[..usize::from(self.peer_count)]
            .iter()
            .map(|slot| slot.link_count)
            .sum()
    }

    /// The pair's other node (slot 0). A group must decide, at each caller, which of its
    /// peers is meant — the primary, a given backup, any or every one (`// groups:`).
    pub(super) fn the_peer(&self) -> &PeerSlot {
        &self.peers[THE_PEER]
    }

    /// When the peer of `slot`, heard last at its `last_heard`, counts as gone (see
    /// `peer_window`).
    pub(super) fn slot_expiry(&self, slot: usize) -> Option<Instant> {
        self.peers[slot].status.map(|p| p.last_heard + self.peer_window())
    }

    /// The peer of `slot` was heard within its window.
    pub(super) fn slot_alive(&self, slot: usize) -> bool {
        self.slot_expiry(slot).is_some_and(|t| self.now < t)
    }

    /// Some peer was heard within its window: what this node sends to all may reach
    /// someone (at most `GROUP_PEERS_MAX` slots).
    pub(super) fn any_peer_alive(&self) -> bool {
        (0..usize::from(self.peer_count)).any(|slot| self.slot_alive(slot))
    }

    /// The peer of `slot` is a live backup following with state that has run everything
    /// committed.
    pub(super) fn slot_in_sync(&self, slot: usize) -> bool {
        self.slot_alive(slot)
            && self.peers[slot]
                .status
                .is_some_and(|p| p.role == WireRole::Backup && p.sync == WireSync::InSync)
    }

    /// The peer of `slot` is a live backup following with state, in sync or lagging.
    pub(super) fn slot_follows(&self, slot: usize) -> bool {
        self.slot_alive(slot) && self.slot_said_follows(slot)
    }

    /// The peer of `slot` last said it is a backup following with state.
    pub(super) fn slot_said_follows(&self, slot: usize) -> bool {
        self.peers[slot]
            .status
            .is_some_and(|p| p.role == WireRole::Backup && matches!(p.sync, WireSync::InSync | WireSync::Lagging))
    }

    /// The pair's other node was heard within its window.
    pub(super) fn the_peer_alive(&self) -> bool {
        self.slot_alive(THE_PEER)
    }

    /// The pair's other node is a backup following in sync.
    pub(super) fn the_peer_in_sync(&self) -> bool {
        self.slot_in_sync(THE_PEER)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::{Alarm, LinkStatus, Mismatch, Role, SyncState, ACTIONS_PER_FRAME_MAX};
    use crate::testing::Pair;
    use core::time::Duration;

    fn running_pair(links: u8) -> Pair {
        let config = Config {
            links,
            ..Config::fast()
        };
        let mut p = Pair::new(7, config, 0);
        let limit = Duration::from_millis(2000);
        let await_state = |p: &mut Pair, i: usize, role: Role, sync: SyncState| {
            let until = p.now + limit;
            p.run_until(until, |p| {
                p.nodes[i]
                    .as_ref()
                    .is_some_and(|n| n.role() == role && n.status().sync == sync)
            })
        };
        p.start(0);
        assert!(await_state(&mut p, 0, Role::Primary, SyncState::Alone));
        p.start(1);
        assert!(await_state(&mut p, 1, Role::Backup, SyncState::InSync));
        assert!(await_state(&mut p, 0, Role::Primary, SyncState::Paired));
        p
    }

    /// A pair's configuration is one slot owning links `0..links`, every global index
    /// mapped to it: the layout the pair had before slots.
    #[test]
    fn pair_config_one_slot_owns_every_link() {
        for links in 1..=LINKS_MAX as u8 {
            let config = Config {
                links,
                ..Config::fast()
            };
            let (peers, link_peer, count) = slots_for(&config);
            assert_eq!(count, 1);
            assert_eq!(peers[THE_PEER].links(), 0..links);
            assert!(peers[1..].iter().all(|slot| slot.link_count == 0));
            assert!(link_peer.iter().all(|&slot| usize::from(slot) == THE_PEER));
        }
    }

    /// What each node hears on any of its three links lands in slot 0, every link of the
    /// slot is up and no other index is touched; a pair reserves a pair's room per frame.
    #[test]
    fn paired_messages_on_every_link_fill_the_peer_slot() {
        let p = running_pair(3);
        for (i, other, role) in [(0, 2, WireRole::Backup), (1, 1, WireRole::Primary)] {
            let node = p.node(i);
            assert_eq!(node.links_total(), 3);
            assert_eq!(node.actions_per_frame(), ACTIONS_PER_FRAME_MAX);
            let slot = node.the_peer();
            assert_eq!(slot.status.map(|s| (s.node_id, s.role)), Some((other, role)));
            assert!(slot.input_frame > 0, "node {i}: the peer's input, from its heartbeats");
            assert!(slot.links().all(|l| node.links[usize::from(l)].up), "node {i}");
            assert!(node.links[3..].iter().all(|l| *l == LinkStatus::default()), "node {i}");
            assert!(node.the_peer_alive() && node.peers[1..].iter().all(|s| s.status.is_none()));
        }
        assert!(!p.node(1).the_peer_in_sync() && p.node(0).the_peer_in_sync());
    }

    /// A group's peers take slots in order, each owning the next run of links, and every
    /// link maps back to its slot; links beyond a peer's bound are not taken.
    #[test]
    fn group_config_slots_own_consecutive_links() {
        let peer = |id, links| crate::config::GroupPeer {
            id,
            weight: 1,
            witness: false,
            links,
        };
        let config = Config {
            peers: std::vec![peer(2, 2), peer(3, 1), peer(4, 200)],
            ..Config::fast()
        };
        let (peers, link_peer, count) = slots_for(&config);
        assert_eq!(count, 3);
        assert_eq!(peers.map(|s| s.links()), [0..2, 2..3, 3..7]);
        assert_eq!(link_peer[..7], [0, 0, 1, 2, 2, 2, 2]);
    }

    /// A frame's room in the action queue covers the most one frame queues: its outputs,
    /// a commit, a source mapping and a `SwitchTaken` on every link of every peer, and a
    /// few more. Here for groups of three and four voters with every peer on `LINKS_MAX`
    /// links, up to `ACTIONS_PER_GROUP_FRAME_MAX` (a pair: `paired_messages_on_every_…`).
    /// (Mutants `node/mod.rs:1426:68` and `1426:72`, `*` → `/` in `actions_per_frame`: a
    /// group reserved a pair's room and at most one action more, while its frames may
    /// queue up to 24 more with three voters, 36 with four; `1426:31`, `+` → `-`: less than
    /// a pair's. Schemata run of 64df4f8, 2026-11-27.)
    #[test]
    fn group_node_reserves_the_most_a_frame_queues_on_every_link() {
        use crate::node::{Boot, Node, ACTIONS_PER_GROUP_FRAME_MAX};
        for peers in 2..=crate::config::GROUP_PEERS_MAX {
            let config = Config {
                peers: (0..peers)
                    .map(|i| crate::config::GroupPeer {
                        id: i as u8 + 2,
                        weight: 1,
                        witness: false,
                        links: LINKS_MAX as u8,
                    })
                    .collect(),
                ..Config::fast()
            };
            let boot = Boot {
                now: crate::time::Instant::from_millis(1),
                seed: 1,
                epoch_persisted: 0,
                epoch_reserved: 0,
            };
            let node = Node::new(config, crate::testing::TestApp::new(0), boot).expect("a valid group");
            let links = usize::from(node.links_total());
            assert_eq!(links, peers * LINKS_MAX);
            let most = crate::app::OUTPUTS_PER_FRAME_MAX + 3 * links + 4;
            let room = node.actions_per_frame();
            assert!(
                (most..=ACTIONS_PER_GROUP_FRAME_MAX).contains(&room),
                "{peers} peers: room for {room}, a frame queues up to {most}"
            );
        }
    }

    /// Makes node `i` of a running pair a member of a group, as far as its fingerprint
    /// goes: itself (weight 1) and `peers` (a group config cannot start yet).
    fn join_group(p: &mut Pair, i: usize, peers: &[(u8, u8, bool)]) {
        let identity = p.identities[i];
        let node = p.nodes[i].as_mut().unwrap();
        node.config.peers = peers
            .iter()
            .map(|&(id, weight, witness)| crate::config::GroupPeer {
                id,
                weight,
                witness,
                links: 1,
            })
            .collect();
        node.fingerprint = super::super::pairing::fingerprint(&identity, false, node.config.group_digest());
    }

    fn refusals(p: &Pair) -> std::vec::Vec<(usize, Mismatch)> {
        p.alarms
            .iter()
            .filter_map(|(i, a)| match a {
                Alarm::PairingRefused { mismatch } => Some((*i, *mismatch)),
                _ => None,
            })
            .collect()
    }

    /// A pair's fingerprint is what it was before groups (its heartbeats unchanged); a
    /// group's folds in its members.
    #[test]
    fn pair_fingerprint_unchanged_group_folds_its_members() {
        let identity = crate::app::AppIdentity {
            settings_digest: 0x1234,
            ..Default::default()
        };
        let pair = super::super::pairing::fingerprint(&identity, true, 0);
        assert_eq!(pair.settings, 0x1234);
        let a = super::super::pairing::fingerprint(&identity, true, 7);
        let b = super::super::pairing::fingerprint(&identity, true, 8);
        assert!(a.settings != pair.settings && a.settings != b.settings);
        assert_eq!(
            (a.program, a.version, a.keyed),
            (pair.program, pair.version, pair.keyed)
        );
    }

    /// Two nodes whose member lists differ refuse each other, naming the group; the same
    /// members seen from each side pair on.
    #[test]
    fn paired_group_members_differ_refused_same_members_pair() {
        let mut p = running_pair(2);
        // Node 1 and node 2 with a witness 3, each from its own view: the same group.
        join_group(&mut p, 0, &[(2, 1, false), (3, 0, true)]);
        join_group(&mut p, 1, &[(1, 1, false), (3, 0, true)]);
        // Heartbeats on the way still carry the pair's fingerprint: refused, then taken
        // again at the next one.
        p.run_for(Duration::from_millis(1));
        p.alarms.clear();
        p.run_for(Duration::from_millis(100));
        assert_eq!(refusals(&p), []);
        assert_eq!(p.node(0).status().sync, SyncState::Paired);
        assert_eq!(p.node(1).status().sync, SyncState::InSync);
        assert!(p.nodes.iter().flatten().all(|n| n.peers[THE_PEER].refusal.is_none()));
        // Node 2 thinks the witness is node 4.
        join_group(&mut p, 1, &[(1, 1, false), (4, 0, true)]);
        p.run_for(Duration::from_millis(100));
        let found = refusals(&p);
        for i in [0, 1] {
            assert!(found.contains(&(i, Mismatch::GroupOrSettings)), "node {i}: {found:?}");
        }
    }

    /// The per-link arrays are sized for a group, but a message on a link index beyond the
    /// pair's links is still dropped as misaddressed, not taken for any peer's.
    #[test]
    fn paired_message_beyond_the_links_misaddressed() {
        let mut p = running_pair(2);
        p.capture = true;
        let until = p.now + Duration::from_millis(50);
        assert!(p.run_until(until, |p| p.captured.iter().any(|(from, _, _)| *from == 1)));
        let bytes = p.captured.iter().find(|(from, _, _)| *from == 1).unwrap().2.clone();
        let before = p.node(0).status().rejections.misaddressed;
        for link in [2, LINKS_MAX as u8, (LINKS_TOTAL_MAX - 1) as u8, u8::MAX] {
            p.inject(0, link, &bytes);
        }
        assert_eq!(p.node(0).status().rejections.misaddressed, before + 4);
        assert!(p.node(0).links[2..].iter().all(|l| *l == LinkStatus::default()));
    }
}
