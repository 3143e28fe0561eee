//! The I/O shell's configuration: addresses, files, the console, the hook and the
//! shutdown policy. Each table is a TOML table of the node's configuration file; every
//! key and its default is in `docs/CONFIG.md`.

use serde::{Deserialize, Serialize};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

/// A shell configuration value out of range. Names the key, for the one-line error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShellConfigError {
    /// The offending key, with its table (`links[1].peer`).
    pub key: String,
    /// What is wrong with it.
    pub problem: String,
}

impl core::fmt::Display for ShellConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "invalid configuration key `{}`: {}", self.key, self.problem)
    }
}

impl std::error::Error for ShellConfigError {}

fn invalid<T>(key: impl Into<String>, problem: impl Into<String>) -> Result<T, ShellConfigError> {
    Err(ShellConfigError {
        key: key.into(),
        problem: problem.into(),
    })
}

/// Everything the shell needs besides the core's [`crate::Config`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShellConfig {
    /// The node's name in logs, the console and the hook's environment.
    pub name: String,
    /// Where the epoch is persisted (a small text file, replaced atomically).
    pub state_file: PathBuf,
    /// Seed of the core's random generator; 0 draws one at start.
    pub seed: u64,
    /// A file whose contents are the pre-shared sync-link key (`None`: no MAC).
    pub sync_key_file: Option<PathBuf>,
    /// Input frames.
    pub frames: FramesConfig,
    /// The sync links, as many as the core's `links`.
    pub links: Vec<LinkConfig>,
    /// Outputs to the actuator sink.
    pub outputs: OutputsConfig,
    /// The operator console.
    pub console: ConsoleConfig,
    /// The role-change hook.
    pub hook: HookConfig,
    /// What a stop request does.
    pub shutdown: ShutdownConfig,
    /// Logging.
    pub log: LogConfig,
    /// The Prometheus metrics endpoint (off unless `metrics.bind` is set).
    pub metrics: MetricsConfig,
    /// The HMI's Modbus/TCP server (off unless `hmi.listen` is set).
    pub hmi: HmiConfig,
}

/// `[frames]`: where input frames arrive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FramesConfig {
    /// The UDP address frames are received on. With a multicast group, bind
    /// `0.0.0.0:<port>` (or the group address) so that both nodes on one host can share it.
    pub bind: SocketAddr,
    /// An IPv4 multicast group to join (`None`: unicast only, one copy per node).
    pub multicast_group: Option<Ipv4Addr>,
    /// The local interface address to join the group on (`0.0.0.0`: the default route's).
    pub multicast_interface: Ipv4Addr,
    /// The socket's receive buffer (`SO_RCVBUF`), in bytes; 0 keeps the OS default.
    pub recv_buffer_bytes: u32,
    /// When not empty, frames are accepted only from these sources: `"ip"` (any port) or
    /// `"ip:port"`. Others are dropped and counted (`frames_foreign_source`).
    pub sources: Vec<String>,
}

impl Default for FramesConfig {
    fn default() -> Self {
        FramesConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 7300)),
            multicast_group: None,
            multicast_interface: Ipv4Addr::UNSPECIFIED,
            recv_buffer_bytes: 1 << 20,
            sources: Vec::new(),
        }
    }
}

/// One allowed frame source: an address, and a port unless any port is allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameSource {
    /// The source's IP address.
    pub ip: std::net::IpAddr,
    /// The source's UDP port; `None`: any.
    pub port: Option<u16>,
}

impl FrameSource {
    /// Parses `"ip"` or `"ip:port"` (`"[v6]:port"` for IPv6).
    pub fn parse(text: &str) -> Option<FrameSource> {
        if let Ok(addr) = text.parse::<SocketAddr>() {
            return Some(FrameSource {
                ip: addr.ip(),
                port: Some(addr.port()),
            });
        }
        text.parse().ok().map(|ip| FrameSource { ip, port: None })
    }

    /// True when a datagram from `from` is allowed by this entry.
    pub fn allows(&self, from: SocketAddr) -> bool {
        self.ip == from.ip() && self.port.is_none_or(|p| p == from.port())
    }
}

impl FramesConfig {
    /// The parsed `sources` (validated by [`ShellConfig::validate`]).
    pub fn parsed_sources(&self) -> Vec<FrameSource> {
        self.sources.iter().filter_map(|s| FrameSource::parse(s)).collect()
    }
}

/// `[[links]]`: one sync link to the peer: two UDP sockets, one per traffic class, so
/// that heartbeats and lockstep messages never queue behind state-transfer chunks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LinkConfig {
    /// A name for logs (e.g. `sync` or `plant`); empty: `link<index>`.
    pub name: String,
    /// The local address of the control socket.
    pub bind: SocketAddr,
    /// The peer's control socket.
    pub peer: SocketAddr,
    /// The local address of the bulk (state-transfer) socket; default: `bind` with the
    /// port plus one.
    pub bulk_bind: Option<SocketAddr>,
    /// The peer's bulk socket; default: `peer` with the port plus one.
    pub bulk_peer: Option<SocketAddr>,
    /// DSCP of control datagrams (46 = expedited forwarding), so that switches that
    /// honour it also put control first; 0 leaves the OS default.
    pub control_dscp: u8,
    /// Receive buffer of each of the two sockets, in bytes; 0 keeps the OS default.
    pub recv_buffer_bytes: u32,
    /// Send buffer of each of the two sockets, in bytes; 0 keeps the OS default.
    pub send_buffer_bytes: u32,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            name: String::new(),
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            peer: SocketAddr::from(([127, 0, 0, 1], 0)),
            bulk_bind: None,
            bulk_peer: None,
            control_dscp: 46,
            recv_buffer_bytes: 1 << 20,
            send_buffer_bytes: 1 << 20,
        }
    }
}

fn port_plus_one(addr: SocketAddr) -> Option<SocketAddr> {
    let port = addr.port().checked_add(1)?;
    Some(SocketAddr::new(addr.ip(), port))
}

impl LinkConfig {
    /// The bulk socket's local address.
    pub fn bulk_bind_addr(&self) -> Option<SocketAddr> {
        self.bulk_bind.or_else(|| port_plus_one(self.bind))
    }

    /// The peer's bulk socket.
    pub fn bulk_peer_addr(&self) -> Option<SocketAddr> {
        self.bulk_peer.or_else(|| port_plus_one(self.peer))
    }
}

/// `[outputs]`: where the primary sends actuator messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutputsConfig {
    /// The local address outputs leave from (`0.0.0.0:0`: any).
    pub bind: SocketAddr,
    /// Every sink or I/O gateway; each output goes to each.
    pub sinks: Vec<SocketAddr>,
    /// The socket's send buffer, in bytes; 0 keeps the OS default.
    pub send_buffer_bytes: u32,
    /// The primary re-sends the newest level of each key this often, same id (0 = off;
    /// else 16..=3600000): the core's [`crate::Config::level_refresh_ms`].
    pub level_refresh_ms: u64,
    /// Every sink acknowledges events (io kind 4): the primary re-sends an event until
    /// each sink acked it (issue 22; off by default): the core's
    /// [`crate::Config::ack_sinks`] is then the number of sinks.
    pub acks: bool,
    /// The first re-send of an unacknowledged event, ms after it went out (1..=60000).
    pub retry_ms: u64,
    /// The longest wait between two re-sends (`retry_ms..=3600000`).
    pub retry_max_ms: u64,
    /// A sink silent this long while events wait raises `sink_silent`
    /// (`retry_max_ms..=3600000`).
    pub ack_silence_ms: u64,
    /// A file holding the secret acks are authenticated with (the sinks hold it too);
    /// none: acks are not authenticated.
    pub ack_key_file: Option<std::path::PathBuf>,
    /// When the primary's outputs leave: `"immediate"` (the default) or `"acked"`, after
    /// every in-sync backup acknowledged the commit of their frame (issue 16): the core's
    /// [`crate::Config::outputs_release`].
    pub release: crate::config::OutputsRelease,
}

impl Default for OutputsConfig {
    fn default() -> Self {
        OutputsConfig {
            bind: SocketAddr::from(([0, 0, 0, 0], 0)),
            sinks: Vec::new(),
            send_buffer_bytes: 1 << 20,
            level_refresh_ms: 0,
            acks: false,
            retry_ms: 20,
            retry_max_ms: 1000,
            ack_silence_ms: 3000,
            ack_key_file: None,
            release: crate::config::OutputsRelease::Immediate,
        }
    }
}

/// The largest `console.journal_bytes_max`: the journal is read whole at start.
pub const JOURNAL_BYTES_MAX: u64 = 64 << 20;

/// `[console]`: the operator console port (newline-delimited JSON over TCP).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsoleConfig {
    /// Serve the console.
    pub enabled: bool,
    /// The TCP address to listen on. Loopback by default: expose it deliberately.
    pub bind: SocketAddr,
    /// A file whose contents (trimmed) are the shared key that commands changing state
    /// require; without one, such commands are refused.
    pub key_file: Option<PathBuf>,
    /// Events kept in the journal (older ones are dropped).
    pub events_max: u32,
    /// Where the journal is kept across restarts (JSON lines, with one rotated file
    /// beside it, `<file>.1`); absent: the state file's path with `.journal` added.
    pub journal_file: Option<PathBuf>,
    /// The most bytes the journal's two files hold together (each half of it); 0: the
    /// journal is kept in memory only, lost at a restart.
    pub journal_bytes_max: u64,
    /// Simultaneous console connections; more are refused. One of them is kept for an
    /// authenticated operator (when at least 2).
    pub connections_max: u32,
    /// Requests one connection may have answered per second (a token bucket with a
    /// burst of [`super::console::REQUEST_BURST`]); beyond, its lines wait in its socket.
    pub requests_per_s: u32,
    /// A connection that sends no complete request for this long is closed.
    pub idle_timeout_ms: u64,
    /// A connection whose responses wait unread for this long is closed.
    pub slow_reader_timeout_ms: u64,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            enabled: true,
            bind: SocketAddr::from(([127, 0, 0, 1], 7400)),
            key_file: None,
            events_max: 1024,
            journal_file: None,
            journal_bytes_max: 1 << 20,
            connections_max: 8,
            requests_per_s: 200,
            idle_timeout_ms: 60_000,
            slow_reader_timeout_ms: 5_000,
        }
    }
}

/// `[hook]`: a command run on every transition (seed: release or bind the service IP).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HookConfig {
    /// The program and its arguments (no shell); empty: no hook.
    pub command: Vec<String>,
    /// A hook still running after this long is killed.
    pub timeout_ms: u64,
    /// Transitions waiting for a hook run; beyond this the oldest waiting one is dropped
    /// (the newest state is what matters to a hook).
    pub queue_max: u32,
}

impl Default for HookConfig {
    fn default() -> Self {
        HookConfig {
            command: Vec::new(),
            timeout_ms: 10_000,
            queue_max: 16,
        }
    }
}

/// `[shutdown]`: what SIGINT or SIGTERM does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShutdownConfig {
    /// A primary with a following backup hands over (planned switchover) before it exits.
    pub switchover: bool,
    /// How long a stopping primary waits for the handover before it exits regardless.
    pub switchover_wait_ms: u64,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        ShutdownConfig {
            switchover: true,
            switchover_wait_ms: 3_000,
        }
    }
}

/// `[metrics]`: a Prometheus text endpoint (docs/OPERATIONS.md, "Metrics"), opt-in.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// The TCP address to serve `GET /metrics` on; absent: no endpoint. Anyone who can
    /// reach it reads the node's figures (no key): bind it where only the scraper can.
    pub bind: Option<SocketAddr>,
}

/// `[hmi]`: the Modbus/TCP server for HMIs and SCADA (docs/HMI.md), opt-in.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HmiConfig {
    /// The TCP address to serve Modbus/TCP on (e.g. `0.0.0.0:502`); absent: no server.
    /// Anyone who can reach it reads the tags and writes the writable ones within their
    /// limits (Modbus has no authentication): bind it on the control network only.
    pub listen: Option<SocketAddr>,
}

/// `[log]`: what goes to stderr.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `error`, `warn`, `info` or `debug`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { level: "info".into() }
    }
}

impl ShellConfig {
    /// Checks the shell's keys against each other and against the core's `links`.
    pub fn validate(&self, core_links: u8) -> Result<(), ShellConfigError> {
        if self.links.len() != usize::from(core_links) {
            return invalid(
                "links",
                format!(
                    "{} [[links]] tables given, but runtime.links is {core_links}",
                    self.links.len()
                ),
            );
        }
        for (i, link) in self.links.iter().enumerate() {
            if link.peer.port() == 0 || link.peer.ip().is_unspecified() {
                return invalid(format!("links[{i}].peer"), "must be a concrete address and port");
            }
            if link.bind.port() == 0 {
                return invalid(format!("links[{i}].bind"), "must have a port (the peer sends to it)");
            }
            if link.bulk_bind_addr().is_none() {
                return invalid(format!("links[{i}].bulk_bind"), "needed when bind's port is 65535");
            }
            match link.bulk_peer_addr() {
                None => return invalid(format!("links[{i}].bulk_peer"), "needed when peer's port is 65535"),
                Some(addr) if addr.port() == 0 || addr.ip().is_unspecified() => {
                    return invalid(format!("links[{i}].bulk_peer"), "must be a concrete address and port")
                }
                Some(_) => {}
            }
            if link.control_dscp > 63 {
                return invalid(format!("links[{i}].control_dscp"), "must be 0..=63");
            }
        }
        if self.outputs.sinks.is_empty() {
            return invalid("outputs.sinks", "must list at least one sink address");
        }
        if let Some((i, _)) = self
            .outputs
            .sinks
            .iter()
            .enumerate()
            .find(|(_, s)| s.port() == 0 || s.ip().is_unspecified())
        {
            return invalid(format!("outputs.sinks[{i}]"), "must be a concrete address and port");
        }
        if self.frames.bind.port() == 0 {
            return invalid("frames.bind", "must have a port (the I/O source sends to it)");
        }
        if let Some((i, _)) = self
            .frames
            .sources
            .iter()
            .enumerate()
            .find(|(_, s)| FrameSource::parse(s).is_none())
        {
            return invalid(format!("frames.sources[{i}]"), "must be \"ip\" or \"ip:port\"");
        }
        if let Some(group) = self.frames.multicast_group {
            if !group.is_multicast() {
                return invalid(
                    "frames.multicast_group",
                    "must be an IPv4 multicast address (224.0.0.0/4)",
                );
            }
            if !self.frames.bind.is_ipv4() {
                return invalid("frames.bind", "must be IPv4 with a multicast group");
            }
        }
        if self.console.enabled && (self.console.events_max == 0 || self.console.events_max > 1 << 20) {
            return invalid("console.events_max", "must be 1..=1048576");
        }
        if self.console.journal_bytes_max != 0 && !(4096..=JOURNAL_BYTES_MAX).contains(&self.console.journal_bytes_max)
        {
            return invalid(
                "console.journal_bytes_max",
                "must be 0 (memory only) or 4096..=67108864",
            );
        }
        if self.console.enabled && (self.console.connections_max == 0 || self.console.connections_max > 256) {
            return invalid("console.connections_max", "must be 1..=256");
        }
        if self.console.enabled && !(1..=100_000).contains(&self.console.requests_per_s) {
            return invalid("console.requests_per_s", "must be 1..=100000");
        }
        if self.console.enabled && !(100..=86_400_000).contains(&self.console.idle_timeout_ms) {
            return invalid("console.idle_timeout_ms", "must be 100..=86400000");
        }
        if self.console.enabled && !(10..=600_000).contains(&self.console.slow_reader_timeout_ms) {
            return invalid("console.slow_reader_timeout_ms", "must be 10..=600000");
        }
        if !self.hook.command.is_empty() && self.hook.command[0].is_empty() {
            return invalid("hook.command", "the program name is empty");
        }
        if self.hook.timeout_ms == 0 {
            return invalid("hook.timeout_ms", "must be at least 1");
        }
        if self.hook.queue_max == 0 || self.hook.queue_max > 1024 {
            return invalid("hook.queue_max", "must be 1..=1024");
        }
        if self.shutdown.switchover_wait_ms == 0 {
            return invalid("shutdown.switchover_wait_ms", "must be at least 1");
        }
        if super::log::Level::parse(&self.log.level).is_none() {
            return invalid("log.level", "must be one of error, warn, info, debug");
        }
        if self.state_file.as_os_str().is_empty() {
            return invalid("node.state_file", "must name a file");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn frame_source_parses_ip_or_ip_port_and_matches() {
        let any_port = FrameSource::parse("127.0.0.2").unwrap();
        let one_port = FrameSource::parse("127.0.0.1:9000").unwrap();
        assert!(any_port.allows("127.0.0.2:1234".parse().unwrap()));
        assert!(!any_port.allows("127.0.0.1:1234".parse().unwrap()));
        assert!(one_port.allows("127.0.0.1:9000".parse().unwrap()));
        assert!(!one_port.allows("127.0.0.1:9001".parse().unwrap()));
        assert!(FrameSource::parse("[::1]:9000").is_some());
        assert!(FrameSource::parse("not an address").is_none());
    }

    use super::*;

    fn valid() -> ShellConfig {
        ShellConfig {
            name: "a".into(),
            state_file: "a.epoch".into(),
            links: vec![
                LinkConfig {
                    bind: "127.0.0.1:7101".parse().unwrap(),
                    peer: "127.0.0.1:7201".parse().unwrap(),
                    ..LinkConfig::default()
                };
                2
            ],
            outputs: OutputsConfig {
                sinks: vec!["127.0.0.1:7500".parse().unwrap()],
                ..OutputsConfig::default()
            },
            ..ShellConfig::default()
        }
    }

    #[test]
    fn shell_config_valid_passes() {
        assert_eq!(valid().validate(2), Ok(()));
    }

    #[test]
    fn shell_config_link_count_must_match_runtime() {
        assert_eq!(valid().validate(3).unwrap_err().key, "links");
    }

    #[test]
    fn shell_config_bulk_defaults_to_port_plus_one() {
        let c = valid();
        assert_eq!(c.links[0].bulk_bind_addr(), Some("127.0.0.1:7102".parse().unwrap()));
        assert_eq!(c.links[0].bulk_peer_addr(), Some("127.0.0.1:7202".parse().unwrap()));
    }

    #[test]
    fn shell_config_bad_keys_are_named() {
        let mut c = valid();
        c.outputs.sinks.clear();
        assert_eq!(c.validate(2).unwrap_err().key, "outputs.sinks");
        let mut c = valid();
        c.links[1].peer = "0.0.0.0:1".parse().unwrap();
        assert_eq!(c.validate(2).unwrap_err().key, "links[1].peer");
        let mut c = valid();
        c.frames.multicast_group = Some(Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(c.validate(2).unwrap_err().key, "frames.multicast_group");
        let mut c = valid();
        c.log.level = "loud".into();
        assert_eq!(c.validate(2).unwrap_err().key, "log.level");
        let mut c = valid();
        c.frames.sources = vec!["127.0.0.1".into(), "nonsense".into()];
        assert_eq!(c.validate(2).unwrap_err().key, "frames.sources[1]");
    }
}
