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
}

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
        }
    }
}

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
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
