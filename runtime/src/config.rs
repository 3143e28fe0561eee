//! The core's configuration. Every key is documented in `docs/CONFIG.md`.
//!
//! Times are whole milliseconds so that a TOML file reads naturally; the defaults follow
//! the seed (100 ms heartbeats counted over a 500 ms window), and [`Config::fast`] is the
//! documented fast profile (1 ms heartbeats for a 1 ms cycle).

use core::time::Duration;
use serde::{Deserialize, Serialize};

/// The most sync links a node may have to one peer.
pub const LINKS_MAX: usize = 4;
/// The most peers a node may have: a group of four nodes (issue 16). A pair has one.
pub const GROUP_PEERS_MAX: usize = 3;
/// The most sync links a node may have over all its peers: the bound of the core's global
/// link index (`0..LINKS_TOTAL_MAX`), by which every per-link array is sized.
pub const LINKS_TOTAL_MAX: usize = LINKS_MAX * GROUP_PEERS_MAX;
/// The largest state-transfer chunk, in bytes.
pub const CHUNK_BYTES_MAX: usize = 1024;

/// Configuration of one node's core.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// This node's id, 1..=255, distinct from the peer's. It is also the low byte of every
    /// epoch this node starts, which makes two nodes' epochs distinct by construction.
    pub node_id: u8,
    /// Number of sync links to the peer (1..=4). Two or more are recommended.
    pub links: u8,
    /// Interval between heartbeats on every link.
    pub heartbeat_interval_ms: u64,
    /// Silence from the primary for this long makes the backup send a confirmation probe.
    pub detection_window_ms: u64,
    /// How long the backup waits for an answer to its probe before taking over.
    pub probe_timeout_ms: u64,
    /// How long a starting node listens for a primary before deciding its role.
    pub startup_wait_ms: u64,
    /// Start-up weight: of two nodes starting together, the higher priority becomes
    /// primary; equal priorities draw random nonces.
    pub priority: u8,
    /// A backup lagging more frames than this asks for a fresh state transfer.
    pub max_lag_frames: u64,
    /// Frames (and commits) kept in the ring buffer, for fetches and takeover replay.
    pub frames_buffered: u64,
    /// Every this many frames the primary ships a full state digest (0 = never).
    pub state_digest_interval_frames: u64,
    /// Largest snapshot of the application state, in bytes (buffers are allocated at start).
    pub state_bytes_max: u64,
    /// Bytes per state-transfer chunk (at most 1024).
    pub transfer_chunk_bytes: u64,
    /// State-transfer chunks in flight before an acknowledgement is needed.
    pub transfer_window_chunks: u64,
    /// The most state-transfer chunks the primary sends per millisecond (0 = as fast as
    /// acknowledgements come): a transfer must not take the CPU its cycles need.
    pub transfer_chunks_per_ms: u64,
    /// A backup following a live primary heartbeats this many times less often (1..=64).
    /// Its signs of life only serve the primary's bookkeeping (paired or alone, link
    /// status), and each one costs the primary a wake-up between its cycles; the primary
    /// judges the backup and the links over as many detection windows. A backup that stops
    /// hearing its primary heartbeats at the full rate again.
    pub backup_heartbeat_factor: u64,
    /// Resend unacknowledged transfer chunks, fetches and join requests after this long.
    pub retry_ms: u64,
    /// A planned switchover not completed within this time is abandoned.
    pub switchover_timeout_ms: u64,
    /// A node's input path counts as silent when its last frame from the I/O source
    /// arrived longer ago than this (1..=3600000): the backup tells its primary whether
    /// its own input is alive by this rule, and the console shows it.
    pub input_silence_ms: u64,
    /// A primary whose input has been silent this long while its in-sync backup's is not
    /// hands over to it in a planned switchover (0 = never; else
    /// `input_silence_ms`..=3600000). When both inputs are silent nothing moves: the
    /// primary raises `input_silent` instead.
    pub input_handover_ms: u64,
    /// A node primary for less than this does not hand over for its input
    /// (0..=86400000): after one input handover the next waits at least this long, so
    /// that flapping inputs do not make the roles ping-pong.
    pub input_handover_hold_ms: u64,
    /// The furthest ahead of the frames in hand (the last run or the highest received) a
    /// frame from the I/O source may be numbered (1..=2^32); one beyond is refused and
    /// counted (`frame_out_of_range`), so that one forged or corrupt frame cannot send the
    /// pair far ahead of its source. The same bound, plus `frames_buffered`, applies to the
    /// frames a primary's commits name. A source whose numbering really jumps further
    /// (an outage of more than this many cycles) must start a new source session.
    pub frame_jump_max: u64,
    /// A node without the application state may lead from a cold start even when it has
    /// heard, in this run, a peer that holds the pair's state and that peer is now silent
    /// (it may only be frozen). Off by default: the node waits for the holder, raises
    /// `cold_start_held`, and an operator's `force-primary` lets it lead.
    pub allow_cold_start: bool,
    /// This node's weight in a group (1..=100): of the live in-sync backups, the one with
    /// the highest weight (then the lowest id) succeeds a lost primary (issue 16). Part of
    /// the group's membership, so every node of a group must agree on it; a pair ignores
    /// it.
    pub weight: u8,
    /// This node is its group's witness (issue 16): it runs no program, never leads and
    /// only votes (`twinloop-witness` sets it). Only in a group (`[[peers]]`), with no other
    /// witness among the peers; its `weight` is not used (0 in the membership).
    pub witness: bool,
    /// The primary re-sends the newest level of each key this often (issue 22), with its
    /// id, so a level lost on the way to a sink heals within one period (0 = off; else
    /// 16..=3600000). Filled from the node file's `[outputs] level_refresh_ms`, not a
    /// `[runtime]` key.
    #[serde(skip)]
    pub level_refresh_ms: u64,
    /// Sinks that acknowledge events (issue 22; 0 = acks off, the default; else
    /// 1..=`ACK_SINKS_MAX`): the primary keeps every event it sent until each of them
    /// acked it, and re-sends it meanwhile. Filled from the node file's `[outputs] acks`
    /// (the number of `outputs.sinks` when on), not a `[runtime]` key.
    #[serde(skip)]
    pub ack_sinks: u8,
    /// The first re-send of an unacknowledged event comes this long after it went out;
    /// each next one twice as long after the previous, up to `event_retry_max_ms`
    /// (1..=60000). The node file's `[outputs] retry_ms`.
    #[serde(skip)]
    pub event_retry_ms: u64,
    /// The longest wait between two re-sends of one event (`event_retry_ms..=3600000`).
    /// The node file's `[outputs] retry_max_ms`.
    #[serde(skip)]
    pub event_retry_max_ms: u64,
    /// A sink that acknowledged nothing for this long while an event waits for its ack
    /// raises `SinkSilent` (`event_retry_max_ms..=3600000`). The node file's `[outputs]
    /// ack_silence_ms`.
    #[serde(skip)]
    pub ack_silence_ms: u64,
    /// When the primary's outputs leave (issue 16): at once (`Immediate`, the default), or
    /// only after every in-sync backup acknowledged the commit of their frame (`Acked`,
    /// VMware FT's output rule). Filled from the node file's `[outputs] release`, not a
    /// `[runtime]` key.
    #[serde(skip)]
    pub outputs_release: OutputsRelease,
    /// The other nodes of a group (issue 16): empty for a pair, whose one peer is reached
    /// over `links`. Filled from the node file's `[[peers]]` tables, not a `[runtime]` key.
    #[serde(skip)]
    pub peers: Vec<GroupPeer>,
}

/// One other node of a group: a `[[peers]]` table of the node file, as the core sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupPeer {
    /// Its node id (1..=255, distinct from every other member's).
    pub id: u8,
    /// Its weight in the succession, `WEIGHT_MIN..=WEIGHT_MAX`; 0 for a witness.
    pub weight: u8,
    /// A witness only votes: it runs no program and never leads.
    pub witness: bool,
    /// Its sync links, 1..=`LINKS_MAX` (its `[[peers.links]]` tables).
    pub links: u8,
}

/// The lowest weight of a node that may lead (a witness has none: 0).
pub const WEIGHT_MIN: u8 = 1;
/// The highest weight.
pub const WEIGHT_MAX: u8 = 100;

impl Default for Config {
    fn default() -> Self {
        Config {
            node_id: 1,
            links: 2,
            heartbeat_interval_ms: 100,
            detection_window_ms: 500,
            probe_timeout_ms: 200,
            startup_wait_ms: 500,
            priority: 0,
            max_lag_frames: 256,
            frames_buffered: 1024,
            state_digest_interval_frames: 100,
            state_bytes_max: 2 * 1024 * 1024,
            transfer_chunk_bytes: CHUNK_BYTES_MAX as u64,
            transfer_window_chunks: 64,
            transfer_chunks_per_ms: 32,
            backup_heartbeat_factor: 1,
            retry_ms: 50,
            switchover_timeout_ms: 1000,
            input_silence_ms: 500,
            input_handover_ms: 1000,
            input_handover_hold_ms: 10_000,
            frame_jump_max: FRAME_JUMP_MAX_DEFAULT,
            allow_cold_start: false,
            weight: WEIGHT_MIN,
            witness: false,
            level_refresh_ms: 0,
            ack_sinks: 0,
            event_retry_ms: 20,
            event_retry_max_ms: 1000,
            ack_silence_ms: 3000,
            outputs_release: OutputsRelease::Immediate,
            peers: Vec::new(),
        }
    }
}

/// When a primary's outputs leave (`[outputs] release`, issue 16; docs/CONFIG.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputsRelease {
    /// As soon as the frame is run (the default): a takeover may send an output again,
    /// which a deduplicating sink drops.
    #[default]
    Immediate,
    /// Only after every in-sync backup acknowledged the commit of the output's frame: a
    /// takeover by an in-sync backup never sends an output twice (`node/release.rs`).
    Acked,
}

/// The most sinks that acknowledge events ([`Config::ack_sinks`]): one bit each in a byte.
pub const ACK_SINKS_MAX: u8 = 8;

/// The shortest [`Config::level_refresh_ms`] other than 0: a period is swept in 16 ticks,
/// each at least a millisecond apart.
pub const LEVEL_REFRESH_MS_MIN: u64 = 16;

/// Default of [`Config::frame_jump_max`]: 1,000,000 frames, 16 minutes at 1 kHz.
pub const FRAME_JUMP_MAX_DEFAULT: u64 = 1_000_000;
/// The highest [`Config::frame_jump_max`]: with frames bounded by `FRAME_MAX` (2^62), a
/// source would need 2^30 refused-then-accepted jumps to exhaust the numbers.
pub const FRAME_JUMP_MAX_LIMIT: u64 = 1 << 32;

/// A configuration value out of range. Names the key, for the one-line error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The offending key.
    pub key: &'static str,
    /// What is wrong with it.
    pub problem: &'static str,
}

impl core::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "invalid configuration key `{}`: {}", self.key, self.problem)
    }
}

impl Config {
    /// The fast profile: 1 ms heartbeats, a 4 ms window and a 2 ms probe, for a 1 ms cycle
    /// on a dedicated link. Failover then takes at most about 8 ms.
    pub fn fast() -> Self {
        Config {
            heartbeat_interval_ms: 1,
            detection_window_ms: 4,
            probe_timeout_ms: 2,
            startup_wait_ms: 20,
            retry_ms: 5,
            switchover_timeout_ms: 200,
            transfer_chunks_per_ms: 16,
            backup_heartbeat_factor: 8,
            input_silence_ms: 20,
            input_handover_ms: 50,
            input_handover_hold_ms: 1000,
            ..Config::default()
        }
    }

    /// Checks every key; the first problem found is returned.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |key, problem| Err(ConfigError { key, problem });
        if self.node_id == 0 {
            return err("node_id", "must be 1..=255");
        }
        if self.links == 0 || usize::from(self.links) > LINKS_MAX {
            return err("links", "must be 1..=4");
        }
        if self.heartbeat_interval_ms == 0 {
            return err("heartbeat_interval_ms", "must be at least 1");
        }
        if self.detection_window_ms < 2 * self.heartbeat_interval_ms {
            return err("detection_window_ms", "must be at least twice heartbeat_interval_ms");
        }
        if self.probe_timeout_ms == 0 {
            return err("probe_timeout_ms", "must be at least 1");
        }
        if self.startup_wait_ms < 2 * self.heartbeat_interval_ms {
            return err("startup_wait_ms", "must be at least twice heartbeat_interval_ms");
        }
        if self.frames_buffered < 16 || self.frames_buffered > 1 << 20 {
            return err("frames_buffered", "must be 16..=1048576");
        }
        if self.max_lag_frames == 0 || self.max_lag_frames >= self.frames_buffered {
            return err("max_lag_frames", "must be 1..frames_buffered");
        }
        if self.state_bytes_max == 0 || self.state_bytes_max > 1 << 30 {
            return err("state_bytes_max", "must be 1..=1073741824");
        }
        if self.transfer_chunk_bytes == 0 || self.transfer_chunk_bytes > CHUNK_BYTES_MAX as u64 {
            return err("transfer_chunk_bytes", "must be 1..=1024");
        }
        if self.transfer_window_chunks == 0 || self.transfer_window_chunks > 1024 {
            return err("transfer_window_chunks", "must be 1..=1024");
        }
        if self.backup_heartbeat_factor == 0 || self.backup_heartbeat_factor > 64 {
            return err("backup_heartbeat_factor", "must be 1..=64");
        }
        if self.transfer_chunks_per_ms > 1_000_000 {
            return err("transfer_chunks_per_ms", "must be 0..=1000000 (0: no limit)");
        }
        if self.retry_ms == 0 {
            return err("retry_ms", "must be at least 1");
        }
        if self.switchover_timeout_ms == 0 {
            return err("switchover_timeout_ms", "must be at least 1");
        }
        if self.input_silence_ms == 0 || self.input_silence_ms > INPUT_MS_MAX {
            return err("input_silence_ms", "must be 1..=3600000");
        }
        if self.input_handover_ms != 0
            && (self.input_handover_ms < self.input_silence_ms || self.input_handover_ms > INPUT_MS_MAX)
        {
            return err("input_handover_ms", "must be 0 (off) or input_silence_ms..=3600000");
        }
        if self.input_handover_hold_ms > 24 * INPUT_MS_MAX {
            return err("input_handover_hold_ms", "must be 0..=86400000");
        }
        if self.frame_jump_max == 0 || self.frame_jump_max > FRAME_JUMP_MAX_LIMIT {
            return err("frame_jump_max", "must be 1..=4294967296");
        }
        if !(WEIGHT_MIN..=WEIGHT_MAX).contains(&self.weight) {
            return err("weight", "must be 1..=100");
        }
        if self.level_refresh_ms != 0 && !(LEVEL_REFRESH_MS_MIN..=INPUT_MS_MAX).contains(&self.level_refresh_ms) {
            return err("outputs.level_refresh_ms", "must be 0 (off) or 16..=3600000");
        }
        if self.ack_sinks > ACK_SINKS_MAX {
            return err("outputs.sinks", "at most 8 sinks with acks on");
        }
        if !(1..=60_000).contains(&self.event_retry_ms) {
            return err("outputs.retry_ms", "must be 1..=60000");
        }
        if !(self.event_retry_ms..=INPUT_MS_MAX).contains(&self.event_retry_max_ms) {
            return err("outputs.retry_max_ms", "must be retry_ms..=3600000");
        }
        if !(self.event_retry_max_ms..=INPUT_MS_MAX).contains(&self.ack_silence_ms) {
            return err("outputs.ack_silence_ms", "must be retry_max_ms..=3600000");
        }
        self.validate_group()
    }

    /// The `[[peers]]` of a group: at most `GROUP_PEERS_MAX`, ids unique and not this
    /// node's, weights in range, at most one witness and it without weight. A valid group
    /// needs two members that may lead; this node may be its witness (`witness`), then
    /// no peer is. Groups run since issue 16, step 3 (votes and succession).
    /// Work: at most 3 × 3 comparisons.
    fn validate_group(&self) -> Result<(), ConfigError> {
        let err = |key, problem| Err(ConfigError { key, problem });
        if self.witness && self.peers.is_empty() {
            return err(
                "witness",
                "a witness is a member of a group: list the other nodes in [[peers]] (a pair has no witness)",
            );
        }
        if self.peers.is_empty() {
            return Ok(());
        }
        if self.peers.len() > GROUP_PEERS_MAX {
            return err("peers", "at most 3 [[peers]] tables: a group has at most four nodes");
        }
        for (i, peer) in self.peers.iter().enumerate() {
            let [id, weight, witness, links] = PEER_KEYS[i];
            if peer.id == 0 {
                return err(id, "must be 1..=255");
            }
            if peer.id == self.node_id {
                return err(
                    id,
                    "must differ from runtime.node_id: give each node of the group its own id",
                );
            }
            if self.peers[..i].iter().any(|p| p.id == peer.id) {
                return err(id, "appears twice: give each node of the group its own id");
            }
            if peer.witness && peer.weight != 0 {
                return err(weight, "a witness never has weight (it never leads): remove the key");
            }
            if !peer.witness && !(WEIGHT_MIN..=WEIGHT_MAX).contains(&peer.weight) {
                return err(weight, "must be 1..=100");
            }
            if peer.witness && (self.witness || self.peers[..i].iter().any(|p| p.witness)) {
                return err(witness, "a group has at most one witness");
            }
            if peer.witness && self.witness {
                return err(witness, "a group has at most one witness, and this node is it");
            }
            if peer.links == 0 || usize::from(peer.links) > LINKS_MAX {
                return err(links, "must be 1..=4 [[peers.links]] tables");
            }
        }
        let leaders = usize::from(!self.witness) + self.peers.iter().filter(|p| !p.witness).count();
        if leaders < 2 {
            return err(
                "peers",
                "a group needs at least two nodes that may lead (a witness only votes): add a [[peers]] table without witness",
            );
        }
        Ok(())
    }

    /// The sync links over every peer, which the shell opens (one socket pair each) and the
    /// core numbers `0..links_total`: `links` for a pair, the sum of the `[[peers]]`'
    /// `links` for a group (at most `LINKS_TOTAL_MAX` once validated; saturates otherwise).
    pub fn links_total(&self) -> u8 {
        if self.peers.is_empty() {
            return self.links;
        }
        self.peers.iter().fold(0u8, |total, p| total.saturating_add(p.links))
    }

    /// What every member of the group must agree on — its members' ids, weights and
    /// witness flags, this node's included, in the order of their ids — as one digest
    /// (FNV-1a) carried in the pairing fingerprint; 0 for a pair, whose fingerprint stays
    /// as it was.
    pub fn group_digest(&self) -> u64 {
        if self.peers.is_empty() {
            return 0;
        }
        let mut members = [(0u8, 0u8, false); GROUP_PEERS_MAX + 1];
        // A witness has no weight in the membership, as its peers list it.
        members[0] = (self.node_id, if self.witness { 0 } else { self.weight }, self.witness);
        let count = 1 + self.peers.len().min(GROUP_PEERS_MAX);
        for (slot, peer) in members[1..count].iter_mut().zip(&self.peers) {
            *slot = (peer.id, peer.weight, peer.witness);
        }
        members[..count].sort_unstable();
        let mut bytes = [0u8; 3 * (GROUP_PEERS_MAX + 1)];
        for (chunk, (id, weight, witness)) in bytes.chunks_exact_mut(3).zip(&members[..count]) {
            chunk.copy_from_slice(&[*id, *weight, u8::from(*witness)]);
        }
        // Never 0: that is a pair's.
        crate::digest::fnv64(&bytes[..3 * count]).max(1)
    }

    pub(crate) fn heartbeat_interval(&self) -> Duration {
        Duration::from_millis(self.heartbeat_interval_ms)
    }
    /// The longest a node leaves a link without a message while it runs: a heartbeat is
    /// due when nothing else went on a link for one interval and a half (the half lets
    /// the next commit of a stream go first when the cycle equals the heartbeat
    /// interval), or one interval when the detection window is under three intervals
    /// and leaves no room for the slack. What the peer's detection window must absorb,
    /// on top of link delay and scheduling.
    pub fn heartbeat_gap_max(&self) -> Duration {
        let interval = self.heartbeat_interval();
        if self.detection_window() >= 3 * interval {
            interval + interval / 2
        } else {
            interval
        }
    }
    /// How long a primary waits before it counts its backup (or a link, as far as the
    /// backup's traffic goes) as gone: `backup_heartbeat_factor` detection windows.
    pub fn backup_silence(&self) -> Duration {
        self.detection_window() * self.backup_heartbeat_factor as u32
    }
    pub(crate) fn detection_window(&self) -> Duration {
        Duration::from_millis(self.detection_window_ms)
    }
    pub(crate) fn probe_timeout(&self) -> Duration {
        Duration::from_millis(self.probe_timeout_ms)
    }
    pub(crate) fn startup_wait(&self) -> Duration {
        Duration::from_millis(self.startup_wait_ms)
    }
    pub(crate) fn retry(&self) -> Duration {
        Duration::from_millis(self.retry_ms)
    }
    pub(crate) fn switchover_timeout(&self) -> Duration {
        Duration::from_millis(self.switchover_timeout_ms)
    }
    pub(crate) fn input_silence(&self) -> Duration {
        Duration::from_millis(self.input_silence_ms)
    }
    /// `None` when input handovers are off.
    pub(crate) fn input_handover(&self) -> Option<Duration> {
        (self.input_handover_ms != 0).then(|| Duration::from_millis(self.input_handover_ms))
    }
    pub(crate) fn input_handover_hold(&self) -> Duration {
        Duration::from_millis(self.input_handover_hold_ms)
    }
}

/// The longest input silence or handover delay, in ms (an hour): bounds what a
/// configuration can set, so that no deadline overflows.
const INPUT_MS_MAX: u64 = 3_600_000;

/// The keys of `[[peers]]` table `i` (`id`, `weight`, `witness`, `links`), for errors.
const PEER_KEYS: [[&str; 4]; GROUP_PEERS_MAX] = [
    ["peers[0].id", "peers[0].weight", "peers[0].witness", "peers[0].links"],
    ["peers[1].id", "peers[1].weight", "peers[1].witness", "peers[1].links"],
    ["peers[2].id", "peers[2].weight", "peers[2].witness", "peers[2].links"],
];

#[cfg(test)]
mod tests {
    use super::*;

    /// The shell opens `links_total` links: a pair's `links`, a group's sum over its
    /// peers (not `links`, which a group does not use).
    #[test]
    fn config_links_total_pair_links_group_sum_of_peers() {
        let pair = Config {
            links: 3,
            ..Config::default()
        };
        assert_eq!(pair.links_total(), 3);
        let peer = |id, links| GroupPeer {
            id,
            weight: 1,
            witness: false,
            links,
        };
        let group = Config {
            links: 2,
            peers: vec![peer(2, 1), peer(3, 4), peer(4, 2)],
            ..Config::default()
        };
        assert_eq!(group.links_total(), 7);
    }

    #[test]
    fn config_defaults_follow_the_seed() {
        let c = Config::default();
        assert_eq!(c.heartbeat_interval_ms, 100);
        assert_eq!(c.detection_window_ms, 500);
        assert!(c.validate().is_ok());
        assert!(Config::fast().validate().is_ok());
    }

    #[test]
    fn config_invalid_names_the_key() {
        let c = Config {
            links: 0,
            ..Config::default()
        };
        assert_eq!(c.validate().unwrap_err().key, "links");
        let c = Config {
            detection_window_ms: 150,
            ..Config::default()
        };
        assert_eq!(c.validate().unwrap_err().key, "detection_window_ms");
    }

    #[test]
    fn config_level_refresh_off_or_in_range() {
        let with = |ms| Config {
            level_refresh_ms: ms,
            ..Config::default()
        };
        for ok in [0, LEVEL_REFRESH_MS_MIN, INPUT_MS_MAX] {
            assert!(with(ok).validate().is_ok(), "{ok}");
        }
        for bad in [1, LEVEL_REFRESH_MS_MIN - 1, INPUT_MS_MAX + 1, u64::MAX] {
            assert_eq!(
                with(bad).validate().unwrap_err().key,
                "outputs.level_refresh_ms",
                "{bad}"
            );
        }
    }

    #[test]
    fn config_ack_keys_are_bounded_and_name_the_key() {
        let key = |c: Config| c.validate().map_err(|e| e.key);
        assert_eq!(key(Config::default()), Ok(()));
        assert_eq!(
            key(Config {
                ack_sinks: 9,
                ..Config::default()
            }),
            Err("outputs.sinks")
        );
        assert_eq!(
            key(Config {
                event_retry_ms: 0,
                ..Config::default()
            }),
            Err("outputs.retry_ms")
        );
        assert_eq!(
            key(Config {
                event_retry_ms: 60_001,
                event_retry_max_ms: 70_000,
                ack_silence_ms: 70_000,
                ..Config::default()
            }),
            Err("outputs.retry_ms")
        );
        assert_eq!(
            key(Config {
                event_retry_max_ms: 19,
                ..Config::default()
            }),
            Err("outputs.retry_max_ms")
        );
        assert_eq!(
            key(Config {
                event_retry_max_ms: u64::MAX,
                ..Config::default()
            }),
            Err("outputs.retry_max_ms")
        );
        assert_eq!(
            key(Config {
                ack_silence_ms: 999,
                ..Config::default()
            }),
            Err("outputs.ack_silence_ms")
        );
        assert_eq!(
            key(Config {
                ack_silence_ms: u64::MAX,
                ..Config::default()
            }),
            Err("outputs.ack_silence_ms")
        );
        assert_eq!(
            key(Config {
                ack_sinks: 8,
                ..Config::default()
            }),
            Ok(())
        );
    }

    #[test]
    fn config_input_keys_are_bounded_and_name_the_key() {
        let bad = |c: Config| c.validate().unwrap_err().key;
        let d = Config::default();
        assert_eq!(
            bad(Config {
                input_silence_ms: 0,
                ..d.clone()
            }),
            "input_silence_ms"
        );
        assert_eq!(
            bad(Config {
                input_silence_ms: INPUT_MS_MAX + 1,
                ..d.clone()
            }),
            "input_silence_ms"
        );
        // A handover sooner than the input counts as silent would hand over a live input.
        assert_eq!(
            bad(Config {
                input_handover_ms: d.input_silence_ms - 1,
                ..d.clone()
            }),
            "input_handover_ms"
        );
        assert_eq!(
            bad(Config {
                input_handover_ms: u64::MAX,
                ..d.clone()
            }),
            "input_handover_ms"
        );
        assert_eq!(
            bad(Config {
                input_handover_hold_ms: u64::MAX,
                ..d.clone()
            }),
            "input_handover_hold_ms"
        );
        assert!(Config {
            input_handover_ms: 0,
            input_handover_hold_ms: 0,
            ..d
        }
        .validate()
        .is_ok());
    }

    fn peer(id: u8, weight: u8, witness: bool) -> GroupPeer {
        GroupPeer {
            id,
            weight,
            witness,
            links: 2,
        }
    }

    /// Node 1 (weight 1) with a backup of weight 5 and a witness.
    fn group() -> Config {
        Config {
            peers: std::vec![peer(2, 5, false), peer(3, 0, true)],
            ..Config::default()
        }
    }

    /// Every rule names the key at fault; a group that passes them all runs (it was
    /// refused before the votes, issue 16 step 3).
    #[test]
    fn config_group_each_rule_names_its_key() {
        assert_eq!(group().validate(), Ok(()));
        let bad = |edit: fn(&mut Config)| {
            let mut c = group();
            edit(&mut c);
            c.validate().unwrap_err().key
        };
        assert_eq!(bad(|c| c.peers.extend([peer(4, 1, false), peer(5, 1, false)])), "peers");
        assert_eq!(bad(|c| c.peers[0].id = 0), "peers[0].id");
        assert_eq!(bad(|c| c.peers[1].id = 1), "peers[1].id");
        assert_eq!(bad(|c| c.peers[1].id = 2), "peers[1].id");
        assert_eq!(bad(|c| c.peers[1].weight = 1), "peers[1].weight");
        assert_eq!(bad(|c| c.peers[0].weight = 0), "peers[0].weight");
        assert_eq!(bad(|c| c.peers[0].weight = WEIGHT_MAX + 1), "peers[0].weight");
        assert_eq!(bad(|c| c.peers.push(peer(4, 0, true))), "peers[2].witness");
        assert_eq!(bad(|c| c.peers[0].links = 0), "peers[0].links");
        assert_eq!(bad(|c| c.peers[1].links = LINKS_MAX as u8 + 1), "peers[1].links");
        assert_eq!(bad(|c| c.weight = 0), "weight");
        assert_eq!(bad(|c| c.weight = WEIGHT_MAX + 1), "weight");
        // Two that may lead at least; this node a witness, no peer is one.
        assert_eq!(bad(|c| c.peers.retain(|p| p.witness)), "peers");
        assert_eq!(bad(|c| c.witness = true), "peers[1].witness");
        let witness = |c: &mut Config| {
            c.witness = true;
            c.peers[1].witness = false;
            c.peers[1].weight = 1;
        };
        let mut c = group();
        witness(&mut c);
        assert_eq!(c.validate(), Ok(()));
        let alone = Config {
            witness: true,
            ..Config::default()
        };
        assert_eq!(alone.validate().unwrap_err().key, "witness");
        // A pair has no [[peers]]: its weight is checked, nothing else changes.
        assert!(Config::default().validate().is_ok());
    }

    /// Every member computes the same digest from its own view; any difference in ids,
    /// weights or the witness changes it; a pair's is 0 (its fingerprint unchanged).
    #[test]
    fn config_group_digest_same_from_every_member() {
        assert_eq!(Config::default().group_digest(), 0);
        let a = group();
        let b = Config {
            node_id: 2,
            weight: 5,
            peers: std::vec![peer(3, 0, true), peer(1, 1, false)],
            ..Config::default()
        };
        assert_ne!(a.group_digest(), 0);
        assert_eq!(a.group_digest(), b.group_digest());
        let mut heavier = a.clone();
        heavier.peers[0].weight = 6;
        let mut no_witness = a.clone();
        no_witness.peers[1].witness = false;
        let mut other_id = a.clone();
        other_id.peers[0].id = 4;
        let mut self_weight = a.clone();
        self_weight.weight = 2;
        for other in [heavier, no_witness, other_id, self_weight] {
            assert_ne!(other.group_digest(), a.group_digest(), "{other:?}");
        }
        // The witness's own view (its `runtime.weight` unused) is its peers'.
        let witness = Config {
            node_id: 3,
            witness: true,
            weight: 9,
            peers: std::vec![peer(1, 1, false), peer(2, 5, false)],
            ..Config::default()
        };
        assert_eq!(witness.group_digest(), group().group_digest());
    }

    /// The witness's own configuration: only in a group, the group's one witness; its
    /// digest, computed from its view (its weight unused), is the one its peers compute.
    #[test]
    fn config_witness_only_in_a_group_its_digest_the_members() {
        let alone = Config {
            witness: true,
            ..Config::default()
        };
        assert_eq!(alone.validate().unwrap_err().key, "witness");
        let mut two_witnesses = group();
        two_witnesses.node_id = 4;
        two_witnesses.witness = true;
        assert_eq!(two_witnesses.validate().unwrap_err().key, "peers[1].witness");
        // Node 3, the witness of `group()`, as it configures itself.
        let witness = Config {
            node_id: 3,
            witness: true,
            weight: 7,
            peers: std::vec![peer(1, 1, false), peer(2, 5, false)],
            ..Config::default()
        };
        assert_eq!(witness.validate(), Ok(()), "a valid group's witness");
        assert_eq!(witness.group_digest(), group().group_digest());
    }

    proptest::proptest! {
        /// Whatever a file sets, validation returns (no panic), and accepts a group
        /// exactly when it keeps every rule.
        #[test]
        fn config_group_arbitrary_peers_pass_exactly_the_valid_groups(
            node_id in 1u8..=255,
            weight in 0u8..=255,
            peers in proptest::collection::vec((0u8..=8, 0u8..=255, proptest::bool::ANY, 0u8..=6), 0..6),
        ) {
            let config = Config {
                node_id,
                weight,
                peers: peers.iter().map(|&(id, weight, witness, links)| GroupPeer { id, weight, witness, links }).collect(),
                ..Config::default()
            };
            let result = config.validate();
            let ids_ok = peers.iter().enumerate().all(|(i, p)| {
                p.0 != 0 && p.0 != node_id && peers[..i].iter().all(|q| q.0 != p.0)
            });
            let weights_ok = (1..=100).contains(&weight)
                && peers.iter().all(|p| if p.2 { p.1 == 0 } else { (1..=100).contains(&p.1) });
            let valid = peers.len() <= GROUP_PEERS_MAX
                && ids_ok
                && weights_ok
                && peers.iter().filter(|p| p.2).count() <= 1
                && peers.iter().all(|p| (1..=4).contains(&p.3))
                && (peers.is_empty() || peers.iter().any(|p| !p.2));
            proptest::prop_assert_eq!(result.is_ok(), valid, "{:?}", result);
        }
    }
}
