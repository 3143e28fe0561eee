//! Pairing safety: two nodes pair only when they run the same program, version and
//! settings, with a sync key on both sides or neither, under distinct node ids. Every
//! heartbeat carries the sender's [`Fingerprint`]; a mismatch raises one alarm naming what
//! differs, and the peer's messages are dropped from then on except for what keeps the
//! pair safe: its epoch (this node never leads an epoch the refused peer led, which keeps
//! two nodes with the same id apart at the sink) and its role (a node does not lead next
//! to a refused primary, and of two refused primaries the lower epoch steps aside).
//!
//! Datagrams that are sync messages but fail authentication are diagnosed too: counted as
//! "no key on the peer" or "another key", with an alarm at the first one per reason
//! (then at most once a minute), since the two sides cannot read each other at all.
//!
//! The operator's commands for a node that waits also live here: `force-primary` and
//! `rejoin` (see `docs/CONSOLE.md`).

use super::{Alarm, CommandReply, Epoch, Node, Reason, RefuseReason, Role, SyncState};
use crate::app::{App, AppIdentity};
use crate::digest::fnv64;
use crate::time::Instant;
use crate::wire::{self, Body, Envelope, Fingerprint, Header, WireRole};
use core::time::Duration;

/// `SyncKeyMismatch` is raised again for the same reason at most this often: one
/// line for a misconfiguration, not one per datagram.
const KEY_ALARM_INTERVAL: Duration = Duration::from_secs(60);

/// What differs between two nodes that must not pair.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mismatch {
    /// The peer has this node's `node_id`.
    SameNodeId,
    /// The peer runs another program (`AppIdentity::name`).
    Program,
    /// The peer runs another version of the program.
    Version,
    /// The peer's program settings (the demo's `[app]` section) differ.
    Settings,
    /// The peer authenticates the sync link with a key and this node has none.
    KeyOnPeerOnly,
    /// This node is in a group and the peer's settings digest differs: its group's
    /// members (ids, weights, witness flags) or its program settings differ (the
    /// fingerprint folds both into one digest, so that a pair's stays as it was).
    GroupOrSettings,
    /// On a link between the group's witness and another member: the two disagree on
    /// what a witness and a program node must share — the group's members, its
    /// `heartbeat_interval_ms` or `detection_window_ms` — or one of them takes the link's
    /// peer for a witness and the other does not.
    WitnessGroup,
}

impl Mismatch {
    /// The alarm's one-line message: what differs and what to do about it.
    pub fn message(self) -> &'static str {
        match self {
            Mismatch::SameNodeId => "the peer has this node's node_id: give each node its own node_id",
            Mismatch::Program => "the peer runs another program: run the same program on both nodes",
            Mismatch::Version => "the peer runs another version of the program: run the same version on both nodes",
            Mismatch::Settings => {
                "the peer's application settings ([app]) or its [outputs] level_refresh_ms differ from this node's: configure the same [app] section and level_refresh_ms on both nodes"
            }
            Mismatch::KeyOnPeerOnly => {
                "the peer authenticates the sync link and this node has no sync key: configure the same sync key file on both nodes"
            }
            Mismatch::GroupOrSettings => {
                "the peer's group ([[peers]] ids, weights, witness; runtime.weight) or its application settings ([app]) differ from this node's: configure the same group and [app] section on every node"
            }
            Mismatch::WitnessGroup => {
                "the witness and this node disagree on the group ([[peers]] ids, weights, witness; runtime.weight) or on heartbeat_interval_ms or detection_window_ms: configure the same group and timings on every node, the witness included"
            }
        }
    }
}

/// The peer this node refuses to pair with, as last heard.
#[derive(Debug, Clone, Copy)]
pub(super) struct Refusal {
    mismatch: Mismatch,
    heard_at: Instant,
    role: WireRole,
    /// Its start-up tiebreak, from its last heartbeat.
    priority: u8,
    nonce: u64,
}

/// The fingerprint a node with `identity` announces; `group` is its group's membership
/// digest (`Config::group_digest`, 0 for a pair). A group's digest is folded into the
/// settings digest, so that a pair's fingerprint, and every byte of its heartbeats, stays
/// as it was (issue 16; a group's heartbeat may carry it apart once the wire changes for
/// votes).
pub(super) fn fingerprint(identity: &AppIdentity, keyed: bool, group: u64) -> Fingerprint {
    let settings = if group == 0 {
        identity.settings_digest
    } else {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&identity.settings_digest.to_le_bytes());
        bytes[8..].copy_from_slice(&group.to_le_bytes());
        fnv64(&bytes)
    };
    Fingerprint {
        program: fnv64(identity.name.as_bytes()),
        version: identity.version,
        settings,
        keyed,
    }
}

/// `fingerprint` with the node's output settings folded into its settings digest: two
/// nodes refreshing levels at different periods (`level_refresh_ms`, issue 22) would make
/// the plant see each level at a rate that depends on which one leads, and a new primary
/// without the refresh would leave the levels the old one refreshed unrepaired. With the
/// refresh off (0) the fingerprint is `fingerprint`'s unchanged, so a pair without it
/// announces every byte as before.
pub(super) fn with_outputs(mut fingerprint: Fingerprint, level_refresh_ms: u64) -> Fingerprint {
    if level_refresh_ms != 0 {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&fingerprint.settings.to_le_bytes());
        bytes[8..].copy_from_slice(&level_refresh_ms.to_le_bytes());
        fingerprint.settings = fnv64(&bytes);
    }
    fingerprint
}

/// What a witness shares with each member of its group, as the fingerprint both sides of a
/// witness's link announce in place of the program's (issue 16, 2026-11-26): a witness
/// runs no program and holds no state, so the program's name, version and settings are
/// none of its business; the group's membership (`group`, `Config::group_digest`) and the
/// timings its votes depend on are. A witness grants a vote after `detection_window_ms`
/// without a primary, and judges a member alive by the heartbeats of
/// `heartbeat_interval_ms`: the same on both sides, or a candidate asks before the witness
/// would grant, or counts a witness dead that heartbeats more slowly. `program` marks the
/// link as a witness's (no program hashes to it but one named `twinloop-witness`, whose
/// node is a witness); `version` is this fingerprint's layout, 1.
pub(super) fn witness_fingerprint(
    group: u64,
    heartbeat_interval_ms: u64,
    detection_window_ms: u64,
    keyed: bool,
) -> Fingerprint {
    let mut bytes = [0u8; 24];
    bytes[..8].copy_from_slice(&group.to_le_bytes());
    bytes[8..16].copy_from_slice(&heartbeat_interval_ms.to_le_bytes());
    bytes[16..].copy_from_slice(&detection_window_ms.to_le_bytes());
    Fingerprint {
        program: witness_program(),
        version: 1,
        settings: fnv64(&bytes),
        keyed,
    }
}

/// The name hashed into a witness link's `program` (the witness binary's name).
pub const WITNESS_PROGRAM: &str = "twinloop-witness";

/// `program` of a witness link's fingerprint: FNV-1a of [`WITNESS_PROGRAM`].
fn witness_program() -> u64 {
    fnv64(WITNESS_PROGRAM.as_bytes())
}

impl<A: App> Node<A> {
    /// The fingerprint this node announces to the peer of `slot`, and expects from it:
    /// the witness's (`witness_fingerprint`) on a link of which either end is the group's
    /// witness, else the program's. Work: one FNV-1a over 24 bytes on a witness's link.
    pub(super) fn fingerprint_for(&self, slot: usize) -> Fingerprint {
        if !self.config.witness && !self.slot_is_witness(slot) {
            return self.fingerprint;
        }
        witness_fingerprint(
            self.config.group_digest(),
            self.config.heartbeat_interval_ms,
            self.config.detection_window_ms,
            self.fingerprint.keyed,
        )
    }

    fn mismatch_with(&self, slot: usize, theirs: &Fingerprint) -> Option<Mismatch> {
        let mine = &self.fingerprint_for(slot);
        let witness_link = self.config.witness || self.slot_is_witness(slot) || theirs.program == witness_program();
        if witness_link
            && (theirs.program != mine.program || theirs.version != mine.version || theirs.settings != mine.settings)
        {
            // Either side taking the other for a witness, or not (the peer announces a
            // witness's fingerprint on a link this node gives a program node), is a
            // membership difference too: one name for all of it.
            Some(Mismatch::WitnessGroup)
        } else if theirs.program != mine.program {
            Some(Mismatch::Program)
        } else if theirs.version != mine.version {
            Some(Mismatch::Version)
        } else if theirs.settings != mine.settings && !self.config.peers.is_empty() {
            Some(Mismatch::GroupOrSettings)
        } else if theirs.settings != mine.settings {
            Some(Mismatch::Settings)
        } else if theirs.keyed != mine.keyed {
            // Only the side without a key can read the other (the keyed side rejects the
            // untagged messages, see `pairing_unauthenticated`).
            Some(Mismatch::KeyOnPeerOnly)
        } else {
            None
        }
    }

    /// Every valid message from the peer on `link`: a heartbeat's fingerprint decides
    /// whether this node pairs with it. Returns false when the message must be dropped
    /// (refused peer).
    pub(super) fn pairing_check(&mut self, link: u8, envelope: &Envelope) -> bool {
        let slot = self.link_peer(link);
        let header = &envelope.header;
        if !self.epoch_in_range(header.epoch) {
            return false;
        }
        let mut tiebreak = None;
        if let Body::Heartbeat {
            fingerprint,
            nonce,
            priority,
            ..
        } = &envelope.body
        {
            tiebreak = Some((*priority, *nonce));
            match self.mismatch_with(slot, fingerprint) {
                Some(mismatch) => self.refuse(slot, mismatch),
                // Matching again (the peer was restarted with the right settings): pair.
                None => self.peers[slot].refusal = None,
            }
        }
        if self.peers[slot].refusal.is_none() {
            return true;
        }
        self.rejections.refused_peer += 1;
        self.refused_heard(slot, header, tiebreak);
        false
    }

    /// A message with this node's own id: its own (the peer address points back here) or
    /// another node's with the same id, which must never lead the same epoch as this one.
    pub(super) fn pairing_own_id(&mut self, link: u8, envelope: &Envelope) {
        let header = &envelope.header;
        if !self.epoch_in_range(header.epoch) {
            return;
        }
        let slot = self.link_peer(link);
        // With a key, a message of this node's own session is its own (it authenticated,
        // and another node with this id would have its own session): a looped link, or
        // someone on the link sending it back. Taken for a second node with this id, an
        // old one (sent as primary, or before a new tiebreak nonce) made a node refuse to
        // pair and step down (found by the DST's attacker, 2026-11-26). Without a key every
        // session is 0 and a twin cannot be told apart this way.
        if self.auth.is_some() && header.session == self.session {
            if !self.self_alarm_raised {
                self.self_alarm_raised = true;
                self.alarm(Alarm::PeerIsSelf { link });
            }
            return;
        }
        match envelope.body {
            Body::Heartbeat { nonce, .. } if nonce == self.nonce => {
                if !self.self_alarm_raised {
                    self.self_alarm_raised = true;
                    self.alarm(Alarm::PeerIsSelf { link });
                }
            }
            Body::Heartbeat { nonce, priority, .. } => {
                if header.role == WireRole::Starting && self.role != Role::Starting {
                    // It learns of this node at once (see `on_heartbeat`).
                    self.heartbeat_owe(link);
                }
                self.refuse(slot, Mismatch::SameNodeId);
                self.refused_heard(slot, header, Some((priority, nonce)));
            }
            // A primary with this node's id that is not this node.
            _ if self.peers[slot]
                .refusal
                .is_some_and(|r| r.mismatch == Mismatch::SameNodeId)
                || (header.role == WireRole::Primary && self.role != Role::Primary) =>
            {
                self.refuse(slot, Mismatch::SameNodeId);
                self.refused_heard(slot, header, None);
            }
            // Before its first heartbeat tells which: at least never start its epoch.
            _ => self.note_refused_epoch(Epoch(header.epoch)),
        }
    }

    /// Refuses the peer of `slot` for `mismatch`.
    fn refuse(&mut self, slot: usize, mismatch: Mismatch) {
        if self.peers[slot].refusal.is_some_and(|r| r.mismatch == mismatch) {
            return;
        }
        self.peers[slot].refusal = Some(Refusal {
            mismatch,
            heard_at: self.now,
            role: WireRole::Starting,
            priority: 0,
            nonce: 0,
        });
        // What this node knew of the peer was about a node it does not pair with.
        self.peers[slot].status = None;
        self.alarm(Alarm::PairingRefused { mismatch });
    }

    fn note_refused_epoch(&mut self, theirs: Epoch) {
        if let Some(action) = self.epochs.heard(theirs) {
            self.push(action);
        }
    }

    /// A message from the refused peer: this node stops following it, and of two
    /// primaries the one with the lower epoch (or, in one epoch, the lower nonce: two
    /// nodes with the same id) steps aside.
    fn refused_heard(&mut self, slot: usize, header: &Header, tiebreak: Option<(u8, u64)>) {
        let now = self.now;
        let Some(refusal) = &mut self.peers[slot].refusal else {
            return;
        };
        refusal.heard_at = now;
        refusal.role = header.role;
        if let Some((priority, nonce)) = tiebreak {
            refusal.priority = priority;
            refusal.nonce = nonce;
        }
        let their_nonce = refusal.nonce;
        let theirs = Epoch(header.epoch);
        self.note_refused_epoch(theirs);
        // groups: a backup steps aside for a refused peer whoever leads; in a group only
        // a refused primary (or candidate) should make it.
        match self.role {
            Role::Backup => self.step_aside(),
            Role::Primary
                if header.role == WireRole::Primary
                    && (theirs > self.epochs.current()
                        || (theirs == self.epochs.current() && their_nonce > self.nonce)) =>
            {
                self.step_aside()
            }
            _ => {}
        }
    }

    /// Stops following or leading and waits as a starting node (see `refusal_holds`).
    fn step_aside(&mut self) {
        self.rx = None;
        self.tx = None;
        self.probe = None;
        self.fetch_next = None;
        self.switchover = super::Switchover::Idle;
        self.startup_deadline = Some(self.now + self.config.startup_wait());
        self.transition(Role::Starting, SyncState::Alone, Reason::PairingRefused);
    }

    /// At a starting node's deadline: true while a refused peer that leads (or would win
    /// the start-up tiebreak) is heard, so that this node does not lead next to it. Work:
    /// one look per peer slot in use.
    pub(super) fn refusal_holds(&mut self) -> bool {
        for slot in 0..usize::from(self.peer_count) {
            if self.slot_refusal_holds(slot) {
                return true;
            }
        }
        false
    }

    fn slot_refusal_holds(&mut self, slot: usize) -> bool {
        let Some(refusal) = self.peers[slot].refusal else {
            return false;
        };
        if self.now.saturating_since(refusal.heard_at) >= self.config.detection_window() {
            return false;
        }
        match refusal.role {
            WireRole::Primary => true,
            WireRole::Starting => {
                let (mine, theirs) = ((self.config.priority, self.nonce), (refusal.priority, refusal.nonce));
                if mine == theirs {
                    self.nonce = self.rng.next_u64();
                }
                mine <= theirs
            }
            WireRole::Backup => false,
        }
    }

    /// A datagram that failed authentication on `link`: when it is a sync message all the
    /// same (framing, checksum and body valid), the peer at the configured address has no
    /// key or another key. Work: one more decode of at most one datagram.
    pub(super) fn pairing_unauthenticated(&mut self, link: u8, bytes: &[u8]) {
        if link >= self.links_total() {
            return;
        }
        let Ok(envelope) = wire::decode(bytes, None) else {
            return;
        };
        let peer_keyed = wire::is_tagged(bytes);
        if peer_keyed {
            self.rejections.wrong_key += 1;
        } else {
            self.rejections.untagged += 1;
        }
        let now = self.now;
        // One alarm per reason, whichever link: one misconfiguration, one line.
        let slot = &mut self.key_alarm_at[usize::from(peer_keyed)];
        if slot.is_some_and(|at| now.saturating_since(at) < KEY_ALARM_INTERVAL) {
            return;
        }
        *slot = Some(now);
        self.alarm(Alarm::SyncKeyMismatch {
            link,
            peer_keyed,
            peer_node_id: envelope.header.node_id,
        });
    }

    /// `force-primary`: a node that waits leads now. Its state, if it has one, is what it
    /// leads with; otherwise it starts cold, on the operator's word.
    pub(super) fn force_primary_command(&mut self) -> CommandReply {
        // A witness never leads, whatever an operator says.
        if self.role != Role::Starting || self.config.witness {
            return CommandReply::Refused(RefuseReason::NotWaiting);
        }
        self.cold_start_allowed = true;
        self.keep_state = false;
        self.become_primary(Reason::ForcedByOperator);
        CommandReply::Started
    }

    /// `rejoin`: a node that keeps its state after `colder_primary` gives it up and joins
    /// the primary at its next message. Given up at once: should the primary fall silent
    /// first, this node waits for it like any node without the pair's state
    /// (`cold_start_held`), it does not lead with the state the operator discarded.
    pub(super) fn rejoin_command(&mut self) -> CommandReply {
        // Only a node that still waits: one that led its state since (the other side
        // fell silent and joined it later) answers for the pair's state now, and a late
        // `rejoin` decided on the old alarm must not take it (DST seed 32, 2026-11-27).
        if !self.keep_state || self.role != Role::Starting {
            return CommandReply::Refused(RefuseReason::NotWaiting);
        }
        self.keep_state = false;
        self.origin = super::Epoch(0);
        CommandReply::Started
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::testing::Pair;
    use crate::{Alarm, Role, SyncState};
    use core::time::Duration;

    /// Mutant `pairing.rs:157:5` (`witness_program` → 1, run of 37f1692): a witness
    /// link's `program` is a wire value (docs/SYNC-PROTOCOL.md, "Configuration fingerprint"): FNV-1a
    /// of "twinloop-witness". The node and the witness binary share the function, so one
    /// build agrees with itself whatever it returns; a witness of another build would be
    /// refused. The documented value, computed here apart from `fnv64`.
    #[test]
    fn witness_program_is_the_documented_fnv_of_the_name() {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in WITNESS_PROGRAM.as_bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        assert_eq!(h, 0x45e4_91e4_e54f_1327);
        assert_eq!(witness_program(), h);
    }

    #[test]
    fn fingerprint_refresh_off_unchanged_on_folds_its_period() {
        let identity = AppIdentity::default();
        let plain = fingerprint(&identity, false, 0);
        assert_eq!(
            with_outputs(plain, 0),
            plain,
            "a pair without the refresh announces what it did"
        );
        let a = with_outputs(plain, 200);
        let b = with_outputs(plain, 300);
        assert_ne!(a.settings, plain.settings);
        assert_ne!(a.settings, b.settings);
        assert_eq!(
            (a.program, a.version, a.keyed),
            (plain.program, plain.version, plain.keyed)
        );
    }

    /// Node 0 leads alone with `refresh_ms[0]`; node 1 starts with `refresh_ms[1]`.
    fn pair_with_refresh(refresh_ms: [u64; 2]) -> Pair {
        let mut p = Pair::new(7, Config::default(), 0);
        for (config, ms) in p.configs.iter_mut().zip(refresh_ms) {
            config.level_refresh_ms = ms;
        }
        p.start(0);
        p.run_for(Duration::from_millis(2000));
        p.start(1);
        p.run_for(Duration::from_millis(3000));
        p
    }

    #[test]
    fn pairing_level_refresh_differs_refused_both_sides() {
        let p = pair_with_refresh([0, 200]);
        let refused = Alarm::PairingRefused {
            mismatch: Mismatch::Settings,
        };
        for i in 0..2 {
            assert!(
                p.alarms.iter().any(|&(n, a)| n == i && a == refused),
                "node {i} refuses a peer with another level_refresh_ms: {:?}",
                p.alarms
            );
        }
        let backup = p.nodes[1].as_ref().unwrap().status();
        assert_ne!(backup.sync, SyncState::InSync, "no pairing, no transfer");
    }

    // ---- a witness and a program node (issue 16) -------------------------------------

    use crate::config::GroupPeer;
    use crate::node::{Action, Boot};
    use crate::testing::TestApp;

    /// Node `id` of a group with `peers` (id, weight, witness), one link each (slot i on
    /// link i), weight 1, running a program named `program`; `witness`: it is the
    /// group's witness.
    fn member(id: u8, witness: bool, peers: &[(u8, u8, bool)], program: &'static str) -> Node<TestApp> {
        let config = Config {
            node_id: id,
            weight: 1,
            witness,
            peers: peers
                .iter()
                .map(|&(id, weight, witness)| GroupPeer {
                    id,
                    weight,
                    witness,
                    links: 1,
                })
                .collect(),
            ..Config::fast()
        };
        let mut app = TestApp::new(0);
        app.identity = AppIdentity {
            name: program,
            version: if witness { 1 } else { 7 },
            settings_digest: if witness { 0 } else { 0xAB },
        };
        let boot = Boot {
            now: Instant::from_millis(1),
            seed: u64::from(id),
            epoch_persisted: 0,
            epoch_reserved: 0,
        };
        Node::new(config, app, boot).expect("a valid group")
    }

    /// Runs program node 1 (its link 1 to node 3) and witness 3 (its link 0 to node 1)
    /// for `ms`, a millisecond apart, node 2 absent; returns each one's alarms.
    fn witness_with_node(node: &mut Node<TestApp>, witness: &mut Node<TestApp>, ms: u64) -> [Vec<Alarm>; 2] {
        let mut alarms = [Vec::new(), Vec::new()];
        let mut now = node.now;
        for _ in 0..ms {
            now = now + Duration::from_millis(1);
            let mut mail: [Vec<crate::wire::WireBuf>; 2] = [Vec::new(), Vec::new()];
            for (i, (n, link)) in [(&mut *node, 1u8), (&mut *witness, 0u8)].into_iter().enumerate() {
                n.handle_timeout(now);
                while let Some(action) = n.poll_action() {
                    match action {
                        Action::Transmit { link: l, bytes, .. } if l == link => mail[1 - i].push(bytes),
                        Action::Alarm(a) => alarms[i].push(a),
                        _ => {}
                    }
                }
            }
            for bytes in &mail[0] {
                node.handle_message(now, 1, bytes);
            }
            for bytes in &mail[1] {
                witness.handle_message(now, 0, bytes);
            }
        }
        alarms
    }

    fn refused(alarms: &[Alarm]) -> Vec<Mismatch> {
        alarms
            .iter()
            .filter_map(|a| match a {
                Alarm::PairingRefused { mismatch } => Some(*mismatch),
                _ => None,
            })
            .collect()
    }

    /// A witness running another program (the `twinloop-witness` binary beside the
    /// plant's) pairs with a program node both ways: the node leads with the witness's
    /// vote (2 of 3) and the witness follows it. The old code compared the programs and
    /// refused on both sides.
    #[test]
    fn starting_witness_of_another_program_heard_pairs_both_ways() {
        let mut node = member(1, false, &[(2, 1, false), (3, 0, true)], "the plant");
        let mut witness = member(3, true, &[(1, 1, false), (2, 1, false)], WITNESS_PROGRAM);
        let alarms = witness_with_node(&mut node, &mut witness, 300);
        assert_eq!(refused(&alarms[0]), [], "the node refuses nothing: {:?}", alarms[0]);
        assert_eq!(refused(&alarms[1]), [], "the witness refuses nothing: {:?}", alarms[1]);
        assert_eq!(node.role(), Role::Primary, "it leads with the witness's vote");
        assert_eq!((witness.role(), witness.epoch()), (Role::Backup, node.epoch()));
        assert!(node.peers[1].refusal.is_none() && witness.peers[0].refusal.is_none());
        // What goes on the witness's link is the witness fingerprint, not the program's.
        assert_eq!(node.fingerprint_for(1), witness.fingerprint_for(0));
        assert_ne!(node.fingerprint_for(0), node.fingerprint_for(1));
    }

    /// A witness of another membership (it takes node 4 for the group's third member) is
    /// refused by the program node, and refuses it, naming the witness's group; neither
    /// follows the other.
    #[test]
    fn starting_witness_of_another_group_heard_refused_both_ways() {
        let mut node = member(1, false, &[(2, 1, false), (3, 0, true)], "the plant");
        let mut witness = member(3, true, &[(1, 1, false), (4, 1, false)], WITNESS_PROGRAM);
        let alarms = witness_with_node(&mut node, &mut witness, 300);
        assert_eq!(refused(&alarms[0]), [Mismatch::WitnessGroup], "{:?}", alarms[0]);
        assert_eq!(refused(&alarms[1]), [Mismatch::WitnessGroup], "{:?}", alarms[1]);
        assert_ne!(witness.role(), Role::Backup, "the witness follows no refused node");
        assert_ne!(node.role(), Role::Primary, "no majority without the witness");
    }

    /// On a witness's link, any field of the witness fingerprint that differs is a
    /// difference of the group's (`WitnessGroup`), the program's name or the version
    /// alone included: a witness of another fingerprint version, or a peer that announces
    /// the witness's settings under another name, is not "another program" or "another
    /// version" of the plant's program, which the operator would look for on the program
    /// nodes. (Mutant `pairing.rs:180:48` `||` → `&&`: either difference alone was named
    /// `Program` or `Version`, the alarm pointing at the wrong nodes. Schemata run of
    /// 64df4f8, 2026-11-27.)
    #[test]
    fn starting_witness_link_name_or_version_alone_differs_named_witness_group() {
        let node = member(1, false, &[(2, 1, false), (3, 0, true)], "the plant");
        let expected = node.fingerprint_for(1);
        let other_version = Fingerprint {
            version: expected.version + 1,
            ..expected
        };
        let other_name = Fingerprint {
            program: expected.program ^ 1,
            ..expected
        };
        assert_eq!(node.mismatch_with(1, &expected), None);
        assert_eq!(node.mismatch_with(1, &other_version), Some(Mismatch::WitnessGroup));
        assert_eq!(node.mismatch_with(1, &other_name), Some(Mismatch::WitnessGroup));
    }

    /// A witness whose detection window differs from the node's (it would grant votes on
    /// its own clock, not the candidate's) is refused both ways; so is a node that takes
    /// the witness for a program node (it hears a witness's fingerprint).
    #[test]
    fn starting_witness_other_timings_or_unlisted_refused() {
        let mut node = member(1, false, &[(2, 1, false), (3, 0, true)], "the plant");
        let mut witness = member(3, true, &[(1, 1, false), (2, 1, false)], WITNESS_PROGRAM);
        witness.config.detection_window_ms = 8;
        let alarms = witness_with_node(&mut node, &mut witness, 300);
        assert_eq!(refused(&alarms[0]), [Mismatch::WitnessGroup], "{:?}", alarms[0]);
        assert_eq!(refused(&alarms[1]), [Mismatch::WitnessGroup], "{:?}", alarms[1]);

        let mut node = member(1, false, &[(2, 1, false), (3, 1, false)], "the plant");
        let mut witness = member(3, true, &[(1, 1, false), (2, 1, false)], WITNESS_PROGRAM);
        let alarms = witness_with_node(&mut node, &mut witness, 300);
        assert_eq!(refused(&alarms[0]), [Mismatch::WitnessGroup], "{:?}", alarms[0]);
        assert_eq!(refused(&alarms[1]), [Mismatch::WitnessGroup], "{:?}", alarms[1]);
    }

    /// A witness with a sync key beside a node without: the key still must match (the
    /// node without one reads the witness's tagged messages and names the key).
    #[test]
    fn starting_witness_keyed_node_unkeyed_refused_for_the_key() {
        let mut node = member(1, false, &[(2, 1, false), (3, 0, true)], "the plant");
        let witness = member(3, true, &[(1, 1, false), (2, 1, false)], WITNESS_PROGRAM);
        let mut witness = witness.with_auth(crate::wire::AuthKey::new([7; 32]), 9);
        let alarms = witness_with_node(&mut node, &mut witness, 300);
        assert_eq!(refused(&alarms[0]), [Mismatch::KeyOnPeerOnly], "{:?}", alarms[0]);
        assert_ne!(witness.role(), Role::Backup);
    }

    #[test]
    fn pairing_level_refresh_same_pairs() {
        let p = pair_with_refresh([200, 200]);
        assert!(p.alarms.iter().all(|(_, a)| !matches!(a, Alarm::PairingRefused { .. })));
        let backup = p.nodes[1].as_ref().unwrap().status();
        assert_eq!((backup.role, backup.sync), (Role::Backup, SyncState::InSync));
    }
}
