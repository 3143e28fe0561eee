//! The router's configuration file (TOML; docs/HMI.md, "The router", key by key).

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

/// Pairs one router serves.
pub const PAIRS_MAX: usize = 64;
/// Nodes one pair lists (a pair has two; a group, issue 16, up to four).
pub const NODES_PER_PAIR_MAX: usize = 4;
/// The fewest registers a pair's window holds: the status block and the reserved
/// registers (docs/HMI.md, "Register map"), so that every pair's status is readable.
pub const WINDOW_REGISTERS_MIN: u32 = 64;

/// The whole file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterFile {
    /// `[router]`.
    pub router: RouterTable,
    /// `[[pair]]`, one per pair.
    #[serde(default)]
    pub pair: Vec<PairTable>,
}

/// `[router]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RouterTable {
    /// Where HMIs connect (Modbus/TCP).
    pub listen: SocketAddr,
    /// How often each node's status block is read (10..=10000 ms).
    pub poll_ms: u64,
    /// One exchange with a node: connect, send, answer (10..=60000 ms), but a write's
    /// answer (`write_timeout_ms`).
    pub request_timeout_ms: u64,
    /// How long a node may take to answer a write (10..=60000 ms). Above the nodes' own
    /// write timeout (four `runtime.detection_window_ms`: 2000 ms by default) so that a
    /// node's 0B comes first.
    pub write_timeout_ms: u64,
    /// How long a request is retried over failures and takeovers before the HMI gets an
    /// exception (the larger timeout..=600000 ms).
    pub request_deadline_ms: u64,
    /// HMI connections served at once (1..=1024); more are closed at accept.
    pub clients_max: usize,
    /// Connections to each node for requests (1..=8), besides one for the status poll.
    /// A node serves 8 (runtime/src/io/hmi_server.rs, `CONNECTIONS_MAX`).
    pub connections_per_node: usize,
    /// An HMI connection silent this long is closed (1000..=3600000 ms).
    pub idle_timeout_ms: u64,
}

impl Default for RouterTable {
    fn default() -> Self {
        RouterTable {
            listen: SocketAddr::from(([0, 0, 0, 0], 502)),
            poll_ms: 100,
            request_timeout_ms: 1000,
            write_timeout_ms: 2500,
            request_deadline_ms: 5000,
            clients_max: 64,
            connections_per_node: 2,
            idle_timeout_ms: 60_000,
        }
    }
}

/// `[[pair]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PairTable {
    /// The Modbus unit id the HMI addresses this pair by (1..=247).
    pub unit: u8,
    /// A name for the log.
    #[serde(default)]
    pub name: String,
    /// Each node's `[hmi] listen` address, as the router reaches it.
    pub nodes: Vec<SocketAddr>,
    /// The first register of this pair's window on its unit id (the "tag prefix": several
    /// pairs on one unit id, each at its own base). The window runs to the next pair's
    /// base on the unit, or to the last register; a request inside it goes to this pair
    /// at its address less `base`.
    #[serde(default)]
    pub base: u16,
}

/// A configuration the router refuses, naming the key and the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The key.
    pub key: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

impl std::error::Error for ConfigError {}

fn error(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.into(),
        message: message.into(),
    }
}

fn within(key: &str, value: u64, range: std::ops::RangeInclusive<u64>) -> Result<(), ConfigError> {
    if range.contains(&value) {
        Ok(())
    } else {
        Err(error(
            key,
            format!("{value} is outside {}..={}", range.start(), range.end()),
        ))
    }
}

impl RouterFile {
    /// Parses and checks a file's text.
    pub fn parse(text: &str) -> Result<RouterFile, ConfigError> {
        let file: RouterFile = toml::from_str(text).map_err(|e| error("file", e.to_string()))?;
        file.validate()?;
        Ok(file)
    }

    /// Checks every bound (the router trusts the file after this).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let r = &self.router;
        within("router.poll_ms", r.poll_ms, 10..=10_000)?;
        within("router.request_timeout_ms", r.request_timeout_ms, 10..=60_000)?;
        within("router.write_timeout_ms", r.write_timeout_ms, 10..=60_000)?;
        within(
            "router.request_deadline_ms",
            r.request_deadline_ms,
            r.request_timeout_ms.max(r.write_timeout_ms)..=600_000,
        )?;
        within("router.clients_max", r.clients_max as u64, 1..=1024)?;
        within("router.connections_per_node", r.connections_per_node as u64, 1..=8)?;
        within("router.idle_timeout_ms", r.idle_timeout_ms, 1000..=3_600_000)?;
        if self.pair.is_empty() {
            return Err(error("pair", "no [[pair]]: add one per pair (unit, nodes)"));
        }
        if self.pair.len() > PAIRS_MAX {
            return Err(error(
                "pair",
                format!("{} pairs, at most {PAIRS_MAX}: run a second router", self.pair.len()),
            ));
        }
        let mut windows = BTreeSet::new();
        for (i, pair) in self.pair.iter().enumerate() {
            let key = |k: &str| format!("pair[{i}].{k}");
            if !(1..=247).contains(&pair.unit) {
                return Err(error(
                    key("unit"),
                    format!("{} is outside 1..=247 (0 is broadcast)", pair.unit),
                ));
            }
            if !windows.insert((pair.unit, pair.base)) {
                return Err(error(
                    key("unit"),
                    format!(
                        "unit {} base {} is already another pair's: give this pair another unit id, or each \
                         pair on the unit its own `base`",
                        pair.unit, pair.base
                    ),
                ));
            }
            if pair.nodes.is_empty() || pair.nodes.len() > NODES_PER_PAIR_MAX {
                return Err(error(
                    key("nodes"),
                    format!(
                        "{} nodes: list 1..={NODES_PER_PAIR_MAX} `[hmi] listen` addresses",
                        pair.nodes.len()
                    ),
                ));
            }
            let distinct: BTreeSet<_> = pair.nodes.iter().collect();
            if distinct.len() != pair.nodes.len() {
                return Err(error(key("nodes"), "an address is listed twice"));
            }
        }
        // Each window, to the next base on its unit or the end of the register space,
        // holds at least the status block and the reserved registers.
        for (&(unit, base), next) in windows.iter().zip(windows.iter().skip(1).map(Some).chain([None])) {
            let end = match next {
                Some(&(u, b)) if u == unit => u32::from(b),
                _ => 0x1_0000,
            };
            if end - u32::from(base) < WINDOW_REGISTERS_MIN {
                let i = self
                    .pair
                    .iter()
                    .position(|p| (p.unit, p.base) == (unit, base))
                    .unwrap_or(0);
                return Err(error(
                    format!("pair[{i}].base"),
                    format!(
                        "unit {unit} base {base} leaves {} registers before {}: a pair's window holds at least \
                         {WINDOW_REGISTERS_MIN} (its status block and reserved registers); space the bases \
                         by the pair's tags' registers plus 64",
                        end - u32::from(base),
                        if end == 0x1_0000 {
                            "the end of the register space".to_string()
                        } else {
                            format!("base {end}")
                        }
                    ),
                ));
            }
        }
        Ok(())
    }

    /// `poll_ms` as a duration.
    pub fn poll(&self) -> Duration {
        Duration::from_millis(self.router.poll_ms)
    }

    /// `request_timeout_ms` as a duration.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.router.request_timeout_ms)
    }

    /// `write_timeout_ms` as a duration.
    pub fn write_timeout(&self) -> Duration {
        Duration::from_millis(self.router.write_timeout_ms)
    }

    /// `request_deadline_ms` as a duration.
    pub fn request_deadline(&self) -> Duration {
        Duration::from_millis(self.router.request_deadline_ms)
    }

    /// A status older than this is not used: two polls missed and one timing out.
    pub fn stale(&self) -> Duration {
        self.poll() * 2 + self.request_timeout()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[router]
listen = "127.0.0.1:1502"
[[pair]]
unit = 1
nodes = ["10.0.0.1:502", "10.0.0.2:502"]
[[pair]]
unit = 2
name = "line 2"
nodes = ["10.0.1.1:502", "10.0.1.2:502"]
"#;

    #[test]
    fn parse_good_file_takes_defaults() {
        let file = RouterFile::parse(GOOD).unwrap();
        assert_eq!(file.router.poll_ms, 100);
        assert_eq!(file.pair.len(), 2);
        assert_eq!(file.pair[1].name, "line 2");
    }

    #[test]
    fn parse_example_file_is_the_defaults() {
        let file = RouterFile::parse(include_str!("../../../configs/router.toml")).unwrap();
        let listen = file.router.listen;
        assert_eq!(
            file.router,
            RouterTable {
                listen,
                ..RouterTable::default()
            }
        );
        assert_eq!(file.pair.len(), 2);
    }

    #[test]
    fn parse_refuses_with_the_key() {
        let dup = GOOD.replace("unit = 2", "unit = 1");
        assert_eq!(RouterFile::parse(&dup).unwrap_err().key, "pair[1].unit");
        let zero = GOOD.replace("unit = 2", "unit = 0");
        assert_eq!(RouterFile::parse(&zero).unwrap_err().key, "pair[1].unit");
        let none = GOOD.replace(r#"nodes = ["10.0.1.1:502", "10.0.1.2:502"]"#, "nodes = []");
        assert_eq!(RouterFile::parse(&none).unwrap_err().key, "pair[1].nodes");
        let twice = GOOD.replace("10.0.1.2:502", "10.0.1.1:502");
        assert_eq!(RouterFile::parse(&twice).unwrap_err().key, "pair[1].nodes");
        let fast = GOOD.replace("[router]\n", "[router]\npoll_ms = 1\n");
        assert_eq!(RouterFile::parse(&fast).unwrap_err().key, "router.poll_ms");
        let short = GOOD.replace("[router]\n", "[router]\nrequest_deadline_ms = 50\n");
        assert_eq!(RouterFile::parse(&short).unwrap_err().key, "router.request_deadline_ms");
        let typo = GOOD.replace("[router]\n", "[router]\npol_ms = 100\n");
        let e = RouterFile::parse(&typo).unwrap_err();
        assert!(e.key == "file" && e.message.contains("pol_ms"), "{e}");
        assert_eq!(RouterFile::parse("[router]\n").unwrap_err().key, "pair");
    }

    #[test]
    fn parse_bases_share_a_unit_with_windows_of_64_or_more() {
        // Two pairs on unit 1, at 0 and 1000: accepted.
        let shared = GOOD.replace("unit = 2", "unit = 1\nbase = 1000");
        let file = RouterFile::parse(&shared).unwrap();
        assert_eq!((file.pair[1].unit, file.pair[1].base), (1, 1000));
        // The same base twice on a unit.
        let same = GOOD.replace("unit = 2", "unit = 1\nbase = 0");
        assert_eq!(RouterFile::parse(&same).unwrap_err().key, "pair[1].unit");
        // A window of 63 registers (0..63 before the next base), and one at the end.
        let narrow = GOOD.replace("unit = 2", "unit = 1\nbase = 63");
        let e = RouterFile::parse(&narrow).unwrap_err();
        assert!(e.key == "pair[0].base" && e.message.contains("63 registers"), "{e}");
        assert!(RouterFile::parse(&GOOD.replace("unit = 2", "unit = 1\nbase = 64")).is_ok());
        let end = GOOD.replace("unit = 2", "unit = 2\nbase = 65473");
        assert_eq!(RouterFile::parse(&end).unwrap_err().key, "pair[1].base");
        assert!(RouterFile::parse(&GOOD.replace("unit = 2", "unit = 2\nbase = 65472")).is_ok());
        // Bases are per unit: the same base on two units is fine (the default, 0).
        assert!(RouterFile::parse(GOOD).is_ok());
    }
}
