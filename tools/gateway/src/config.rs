//! The gateway's configuration file: a `[gateway]` table and the tag map (`[[device]]`,
//! `[[tag]]`, docs/GATEWAY.md). Every number is checked against a documented bound here,
//! at start, with one error naming the key and the fix.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::Path;
use twinloop::gateway::WINDOW_FRAMES_MAX;
use twinloop::image::{DeviceSpec, TagMap, TagMapSpec, TagSpec};

/// The most node addresses (a group has at most four nodes).
pub const NODES_MAX: usize = 4;
/// The longest cycle, lease, silence, stall and back-off, in ms.
pub const MS_MAX: u64 = 3_600_000;

/// The `[gateway]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewaySettings {
    /// One poll, one frame per cycle (1..=60000).
    pub cycle_ms: u64,
    /// Each node's `[frames] bind` (1..=4 addresses).
    pub nodes: Vec<SocketAddr>,
    /// Where the nodes' outputs arrive (their `[outputs] sinks`).
    pub outputs_bind: SocketAddr,
    /// The dedup window (1..=1048576; at least the nodes' `runtime.frames_buffered`).
    pub window_frames: u64,
    /// The epoch lease (0: the fence never lapses; 1..=3600000).
    pub lease_ms: u64,
    /// No output accepted for this long: the lost-control alarm and the safe state
    /// (1..=3600000).
    pub outputs_silence_ms: u64,
    /// The first reconnect delay after a connection fails (1..=60000).
    pub reconnect_min_ms: u64,
    /// The longest reconnect delay: each failure doubles it up to this
    /// (reconnect_min_ms..=60000).
    pub reconnect_max_ms: u64,
    /// An answer outstanding this long (or a connect pending this long) ends the
    /// connection (1..=3600000, at least every device's `timeout_ms`).
    pub device_stall_ms: u64,
    /// `error`, `warn`, `info` or `debug`.
    pub log_level: String,
    /// Acknowledge every event applied (or dropped as a duplicate) to the node it came
    /// from (io kind 4; the nodes' `[outputs] acks`; issue 22). Off by default.
    pub acks: bool,
    /// A file holding the secret acks are tagged with (the nodes' `outputs.ack_key_file`
    /// holds the same); none: untagged acks.
    pub ack_key_file: Option<std::path::PathBuf>,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        GatewaySettings {
            cycle_ms: 10,
            nodes: Vec::new(),
            outputs_bind: SocketAddr::from(([127, 0, 0, 1], 7500)),
            window_frames: 1024,
            lease_ms: 5000,
            outputs_silence_ms: 1000,
            reconnect_min_ms: 100,
            reconnect_max_ms: 2000,
            device_stall_ms: 2000,
            log_level: "info".into(),
            acks: false,
            ack_key_file: None,
        }
    }
}

/// The whole file.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayFile {
    /// The gateway's own settings.
    #[serde(default)]
    pub gateway: GatewaySettings,
    /// The devices of the tag map.
    #[serde(default)]
    pub device: Vec<DeviceSpec>,
    /// The tags of the tag map.
    #[serde(default)]
    pub tag: Vec<TagSpec>,
}

/// A checked configuration.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The `[gateway]` table.
    pub settings: GatewaySettings,
    /// The tag map.
    pub map: TagMap,
    /// The log level.
    pub level: twinloop::io::log::Level,
}

fn range(key: &str, value: u64, low: u64, high: u64) -> Result<(), String> {
    if value < low || value > high {
        return Err(format!("gateway.{key} = {value} is out of range: use {low}..={high}"));
    }
    Ok(())
}

impl GatewayFile {
    /// Parses a file's text.
    pub fn parse(text: &str) -> Result<GatewayFile, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// Reads and parses a file. A relative `ack_key_file` is the file's directory's, as
    /// the nodes resolve their key files (`outputs.ack_key_file` among them): the gateway
    /// and its nodes may then share one configuration directory whatever the working
    /// directory of each (a service manager's is `/`).
    pub fn read(path: &Path) -> Result<GatewayFile, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut file = GatewayFile::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        file.resolve(path.parent().unwrap_or(Path::new("")));
        Ok(file)
    }

    /// Makes a relative `ack_key_file` relative to `base` (the configuration file's
    /// directory); an absolute one stays.
    pub fn resolve(&mut self, base: &Path) {
        if let Some(key) = &mut self.gateway.ack_key_file {
            if key.is_relative() {
                *key = base.join(&*key);
            }
        }
    }

    /// The tag map part.
    pub fn map_spec(&self) -> TagMapSpec {
        TagMapSpec {
            device: self.device.clone(),
            tag: self.tag.clone(),
        }
    }

    /// Checks every key; the first mistake is the error.
    pub fn check(&self) -> Result<Checked, String> {
        let g = &self.gateway;
        range("cycle_ms", g.cycle_ms, 1, 60_000)?;
        if g.nodes.is_empty() || g.nodes.len() > NODES_MAX {
            return Err(format!(
                "gateway.nodes has {} addresses: list 1..={NODES_MAX}, each node's [frames] bind",
                g.nodes.len()
            ));
        }
        range("window_frames", g.window_frames, 1, WINDOW_FRAMES_MAX)?;
        range("lease_ms", g.lease_ms, 0, MS_MAX)?;
        range("outputs_silence_ms", g.outputs_silence_ms, 1, MS_MAX)?;
        range("reconnect_min_ms", g.reconnect_min_ms, 1, 60_000)?;
        range("reconnect_max_ms", g.reconnect_max_ms, g.reconnect_min_ms, 60_000)?;
        range("device_stall_ms", g.device_stall_ms, 1, MS_MAX)?;
        let level = twinloop::io::log::Level::parse(&g.log_level)
            .ok_or_else(|| format!("gateway.log_level = {:?}: use error, warn, info or debug", g.log_level))?;
        let map = TagMap::new(&self.map_spec()).map_err(|e| e.to_string())?;
        for d in map.devices() {
            if d.timeout_ms > g.cycle_ms {
                return Err(format!(
                    "device {:?}: timeout_ms {} is longer than gateway.cycle_ms {}: a frame leaves every cycle, so lower the timeout or lengthen the cycle",
                    d.name, d.timeout_ms, g.cycle_ms
                ));
            }
            if d.timeout_ms > g.device_stall_ms {
                return Err(format!(
                    "device {:?}: timeout_ms {} is longer than gateway.device_stall_ms {}: raise device_stall_ms",
                    d.name, d.timeout_ms, g.device_stall_ms
                ));
            }
        }
        Ok(Checked {
            settings: g.clone(),
            map,
            level,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TANK: &str = include_str!("../../../configs/gateway-tank.toml");

    /// A relative `gateway.ack_key_file` is the configuration file's directory's, as the
    /// nodes' key files are; an absolute one stays. Before, it was the working
    /// directory's: the path stayed `keys/ack.key` and the gateway read another file, or
    /// none.
    #[test]
    fn config_relative_ack_key_file_resolves_against_the_config_directory() {
        let dir = std::env::temp_dir().join(format!("twinloop-gateway-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("gateway.toml");
        let with_key = |key: &str| {
            TANK.replace(
                "[gateway]\n",
                &format!("[gateway]\nacks = true\nack_key_file = {key:?}\n"),
            )
        };
        std::fs::write(&path, with_key("keys/ack.key")).unwrap();
        let file = GatewayFile::read(&path).unwrap();
        assert_eq!(file.gateway.ack_key_file, Some(dir.join("keys/ack.key")));
        std::fs::write(&path, with_key("/srv/ack.key")).unwrap();
        let file = GatewayFile::read(&path).unwrap();
        assert_eq!(file.gateway.ack_key_file.as_deref(), Some(Path::new("/srv/ack.key")));
        // A file named with no directory resolves against the working directory's "".
        let mut file = GatewayFile::parse(&with_key("ack.key")).unwrap();
        file.resolve(Path::new(""));
        assert_eq!(file.gateway.ack_key_file.as_deref(), Some(Path::new("ack.key")));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The gateway reads its ack key as the nodes read theirs: a trailing newline is not
    /// part of the secret (read raw before, the gateway's key differed from the nodes' and
    /// every ack was refused), and a key file others can read is refused with the fix.
    #[test]
    fn config_ack_key_file_read_as_the_nodes_read_theirs() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("twinloop-gateway-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ack.key");
        std::fs::write(&path, "0f1e2d3c secret\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let key = crate::run::read_ack_key(&path).unwrap();
        assert_eq!(key, twinloop::io_protocol::AckKey::derive(b"0f1e2d3c secret"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = crate::run::read_ack_key(&path).unwrap_err();
        assert!(e.contains("gateway.ack_key_file") && e.contains("chmod 600"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn config_example_file_checks() {
        let file = GatewayFile::parse(TANK).unwrap();
        let checked = file.check().unwrap();
        assert_eq!(checked.settings.nodes.len(), 2);
        assert!(checked.map.handle("level_um").is_ok());
    }

    /// docs/GATEWAY.md's example image is what the example file's map encodes.
    #[test]
    fn config_example_image_matches_the_doc() {
        struct Level;
        impl twinloop::image::PolledValues for Level {
            fn bit(&self, _: usize, _: twinloop::image::Table, _: u16) -> bool {
                false
            }
            fn register(&self, _: usize, _: twinloop::image::Table, address: u16) -> u16 {
                [(1_000_000u32 >> 16) as u16, 1_000_000u32 as u16][usize::from(address % 2)]
            }
        }
        let map = GatewayFile::parse(TANK).unwrap().check().unwrap().map;
        let mut buf = [0u8; 64];
        let len = map
            .encode_image(&[twinloop::image::Quality::Ok], &Level, &mut buf)
            .unwrap();
        let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ");
        let b = &buf[..len];
        let text = format!(
            "`{} | {} | {} | {} | {} | {}`",
            hex(&b[..1]),
            hex(&b[1..5]),
            hex(&b[5..6]),
            hex(&b[6..7]),
            hex(&b[7..11]),
            hex(&b[11..])
        );
        let doc = include_str!("../../../docs/GATEWAY.md").replace("\n", " ");
        assert!(doc.contains(&text), "docs/GATEWAY.md should show {text}");
    }

    proptest::proptest! {
        /// Arbitrary text as a configuration file: an error or a checked configuration,
        /// never a panic; and the example with one byte changed likewise.
        #[test]
        fn config_arbitrary_text_never_panics(text in ".{0,400}", at in 0usize..4000, byte in 0u8..128) {
            if let Ok(file) = GatewayFile::parse(&text) {
                let _ = file.check();
            }
            let mut bytes = TANK.as_bytes().to_vec();
            let at = at % bytes.len();
            bytes[at] = byte;
            if let Ok(file) = GatewayFile::parse(&String::from_utf8_lossy(&bytes)) {
                let _ = file.check();
            }
        }
    }

    #[test]
    fn config_each_bad_key_is_named() {
        let bad = |edit: &dyn Fn(&mut GatewayFile)| {
            let mut file = GatewayFile::parse(TANK).unwrap();
            edit(&mut file);
            file.check().unwrap_err()
        };
        assert!(bad(&|f| f.gateway.cycle_ms = 0).contains("gateway.cycle_ms = 0"));
        assert!(bad(&|f| f.gateway.nodes.clear()).contains("gateway.nodes"));
        assert!(bad(&|f| f.gateway.window_frames = 0).contains("window_frames"));
        assert!(bad(&|f| f.gateway.reconnect_max_ms = 1).contains("reconnect_max_ms"));
        assert!(bad(&|f| f.gateway.log_level = "loud".into()).contains("log_level"));
        assert!(bad(&|f| f.device[0].timeout_ms = 50_000).contains("longer than gateway.cycle_ms"));
        assert!(bad(&|f| f.tag[0].device = "nope".into()).contains("does not define"));
        let unknown = GatewayFile::parse("[gateway]\ncycle = 5\n").unwrap_err();
        assert!(unknown.contains("cycle"), "{unknown}");
    }
}
