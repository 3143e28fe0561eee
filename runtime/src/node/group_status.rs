//! [`Status::group`]: what the console shows of each peer, one entry per slot in use (a
//! pair: one; a group of four, issue 16: three), filled from the slots and the
//! configuration's `[[peers]]`.
//!
//! Work: one pass over at most `GROUP_PEERS_MAX` slots, no allocation; taken on request
//! only (the console, logs).

use super::{GroupMember, Node};
use crate::app::App;
use crate::config::GROUP_PEERS_MAX;

impl<A: App> Node<A> {
    /// One entry per slot in use, in slot order (the order of `[[peers]]`).
    pub(super) fn group_status(&self) -> heapless::Vec<GroupMember, GROUP_PEERS_MAX> {
        let mut group = heapless::Vec::new();
        for (slot, peer) in self.peers[..usize::from(self.peer_count)].iter().enumerate() {
            let configured = self.config.peers.get(slot);
            let member = GroupMember {
                // A pair's peer has no configured id: the one it says.
                node_id: configured.map(|c| c.id).or(peer.status.map(|p| p.node_id)),
                weight: configured.map_or(0, |c| c.weight),
                witness: configured.is_some_and(|c| c.witness),
                heard: peer.status,
                alive: self.slot_alive(slot),
                input_frame: peer.input_frame,
                link_count: peer.link_count,
            };
            // At most GROUP_PEERS_MAX slots are in use: the push cannot fail.
            let _ = group.push(member);
        }
        group
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, GroupPeer};
    use crate::node::{peers, Role, SyncState};
    use crate::testing::Pair;
    use crate::wire::{WireRole, WireSync};
    use core::time::Duration;

    fn running_pair() -> Pair {
        let mut p = Pair::new(11, Config::fast(), 0);
        p.start(0);
        p.start(1);
        let until = p.now + Duration::from_millis(2000);
        assert!(p.run_until(until, |p| {
            p.nodes.iter().flatten().any(|n| n.status().sync == SyncState::InSync)
                && p.nodes.iter().flatten().any(|n| n.status().sync == SyncState::Paired)
        }));
        p
    }

    /// A pair shows one member, its peer as heard: id, role and sync from its messages,
    /// no weight (none configured), alive, the same as `Status::peer`.
    #[test]
    fn paired_status_group_one_member_as_heard() {
        let p = running_pair();
        for i in [0, 1] {
            let status = p.node(i).status();
            assert_eq!(status.group.len(), 1);
            let member = status.group[0];
            let other = p.node(1 - i).status();
            assert_eq!(member.node_id, Some(other.node_id));
            assert_eq!(member.heard, status.peer);
            let expected = match other.role {
                Role::Primary => (WireRole::Primary, WireSync::NotApplicable),
                _ => (WireRole::Backup, WireSync::InSync),
            };
            assert_eq!(member.heard.map(|h| (h.role, h.sync)), Some(expected));
            assert!(member.alive && !member.witness && member.weight == 0);
            assert_eq!(member.link_count, Config::fast().links);
        }
    }

    /// A pair's peer that went silent stays in the list with what it last said, no longer
    /// alive.
    #[test]
    fn paired_peer_crashed_status_group_member_not_alive() {
        let mut p = running_pair();
        let backup = (0..2).find(|&i| p.node(i).role() == Role::Backup).unwrap();
        p.crash(backup);
        p.run_for(Duration::from_millis(500));
        let status = p.node(1 - backup).status();
        let member = status.group[0];
        assert!(!member.alive);
        assert_eq!(member.heard.map(|h| h.role), Some(WireRole::Backup));
    }

    /// A group's members are listed in `[[peers]]` order with their configured id, weight
    /// and witness flag, before any of them is heard (a group cannot start yet: the
    /// slots are laid out by hand, as `Node::new` will).
    #[test]
    fn starting_group_status_lists_configured_members() {
        let mut p = running_pair();
        let node = p.nodes[0].as_mut().unwrap();
        node.config.peers = std::vec![
            GroupPeer {
                id: 3,
                weight: 7,
                witness: false,
                links: 2
            },
            GroupPeer {
                id: 4,
                weight: 0,
                witness: true,
                links: 1
            },
            GroupPeer {
                id: 9,
                weight: 1,
                witness: false,
                links: 1
            },
        ];
        let (slots, link_peer, count) = peers::slots_for(&node.config);
        (node.peers, node.link_peer, node.peer_count) = (slots, link_peer, count);
        let group = node.status().group;
        let seen: std::vec::Vec<_> = group
            .iter()
            .map(|m| (m.node_id, m.weight, m.witness, m.link_count, m.heard.is_some(), m.alive))
            .collect();
        assert_eq!(
            seen,
            [
                (Some(3), 7, false, 2, false, false),
                (Some(4), 0, true, 1, false, false),
                (Some(9), 1, false, 1, false, false),
            ]
        );
    }

    /// A group's node shows every link it has, each peer's, not the first peer's only:
    /// three peers with 1, 2 and 1 links make four links in its status, up as heard.
    /// (The old code showed `link_count` 1 and the first `LINKS_MAX` indexes: `twinctl
    /// status` of a group of four showed 4 of its 12 link ends.)
    #[test]
    fn starting_group_status_shows_every_peers_links() {
        let mut p = running_pair();
        let node = p.nodes[0].as_mut().unwrap();
        node.config.peers = std::vec![
            GroupPeer {
                id: 3,
                weight: 1,
                witness: false,
                links: 1
            },
            GroupPeer {
                id: 4,
                weight: 1,
                witness: false,
                links: 2
            },
            GroupPeer {
                id: 9,
                weight: 1,
                witness: false,
                links: 1
            },
        ];
        let (slots, link_peer, count) = peers::slots_for(&node.config);
        (node.peers, node.link_peer, node.peer_count) = (slots, link_peer, count);
        node.links[3].up = true;
        node.links[3].received = 7;
        let status = node.status();
        assert_eq!(status.link_count, 4);
        assert!(status.links.len() >= 4);
        assert!(status.links[3].up);
        assert_eq!(status.links[3].received, 7);
        let per_peer: std::vec::Vec<u8> = status.group.iter().map(|m| m.link_count).collect();
        assert_eq!(per_peer, [1, 2, 1]);
    }
}
