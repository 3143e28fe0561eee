//! The node's configuration file (TOML) and its command-line overrides.
//!
//! ```toml
//! [node]      # name, state_file, seed, sync_key_file, profile
//! [runtime]   # twinloop::Config: the core's keys, names unchanged
//! [frames]    # twinloop::io::config::FramesConfig
//! [[links]]   # one table per sync link
//! [[peers]]   # a group's other nodes (issue 16), each with its [[peers.links]]
//! [outputs] [console] [hook] [shutdown] [log] [metrics]
//! [rt]        # real-time settings (Linux)
//! [app]       # the program's own settings (`NodeProgram::Settings`)
//! ```
//!
//! Every key and its default is in `docs/CONFIG.md`. Loading goes: parse the file,
//! apply `--set table.key=value` overrides (and the named flags, which are shorthands for
//! them), start the `[runtime]` table from the chosen profile's values, then deserialize
//! table by table, so that every error names its key: an unknown key, a value of the wrong
//! type or out of range is one line, `invalid configuration key `runtime.links`: …`.

use super::AppSettings;
use crate::config::{GroupPeer, WEIGHT_MIN};
use crate::io::config::{
    ConsoleConfig, FramesConfig, HmiConfig, HookConfig, LinkConfig, LogConfig, MetricsConfig, OutputsConfig,
    ShellConfig, ShutdownConfig,
};
use crate::Config;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A configuration problem, as one line naming the key when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigFileError {
    /// The key (`runtime.heartbeat_interval_ms`), empty for a file-level problem.
    pub key: String,
    /// What is wrong.
    pub problem: String,
}

impl core::fmt::Display for ConfigFileError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}", self.problem)
        } else {
            write!(f, "invalid configuration key `{}`: {}", self.key, self.problem)
        }
    }
}

impl std::error::Error for ConfigFileError {}

fn error(key: impl Into<String>, problem: impl Into<String>) -> ConfigFileError {
    ConfigFileError {
        key: key.into(),
        problem: one_line(&problem.into()),
    }
}

/// Joins a multi-line message (toml's errors quote the source) into one line.
fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The `[runtime]` profile: which values the keys not given take.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    /// The seed's timing: 100 ms heartbeats, a 500 ms window ([`Config::default`]).
    #[default]
    Default,
    /// 1 ms heartbeats, a 4 ms window, for a 1 ms cycle ([`Config::fast`]).
    Fast,
}

/// `[node]`: who this node is and where it keeps its state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct NodeTable {
    /// The name in logs and the console; empty: `node-<node_id>`.
    pub name: String,
    /// The file the epoch is persisted in (required).
    pub state_file: PathBuf,
    /// Seed of the core's random generator; 0 draws one at start.
    pub seed: u64,
    /// A file holding the pre-shared sync-link key (both nodes the same); none: no MAC.
    pub sync_key_file: Option<PathBuf>,
    /// The profile the `[runtime]` keys start from.
    pub profile: Profile,
}

/// `[[peers]]`: one other node of a group (issue 16). A pair gives none: its one peer is
/// reached over `[[links]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct PeerTable {
    /// Its node id, 1..=255 (required), distinct from every other member's.
    pub id: u8,
    /// Its weight in the succession, 1..=100; none: 1. A witness has none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<u8>,
    /// It only votes: runs no program, never leads.
    pub witness: bool,
    /// `[[peers.links]]`: the sync links to it, 1..=4, keys as in `[[links]]`.
    pub links: Vec<LinkConfig>,
}

impl PeerTable {
    /// The core's view of it.
    pub fn group_peer(&self) -> GroupPeer {
        GroupPeer {
            id: self.id,
            weight: self.weight.unwrap_or(if self.witness { 0 } else { WEIGHT_MIN }),
            witness: self.witness,
            links: u8::try_from(self.links.len()).unwrap_or(u8::MAX),
        }
    }
}

/// `[rt]`: optional real-time settings for Linux IPCs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct RtConfig {
    /// CPUs to pin the process to (`sched_setaffinity`); empty: no pinning.
    pub cpu_affinity: Vec<usize>,
    /// `SCHED_FIFO` priority 1..=99; 0: the normal scheduler.
    pub sched_fifo_priority: u8,
    /// Lock all current and future memory (`mlockall`), so that no page fault stalls a cycle.
    pub mlockall: bool,
    /// When a setting is not permitted: warn and go on (true) or refuse to start (false).
    pub best_effort: bool,
}

/// The whole file, after overrides and the profile; `S` is the program's `[app]` table.
///
/// Written back with `toml::to_string` (or [`NodeFile::to_toml`]), it loads as itself:
/// tests and the harness write their nodes' files from this type, not from templates.
/// [`Default`] is every table's default, which is not a valid file (`node.state_file` is
/// required; the links and sinks are the deployment's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct NodeFile<S> {
    /// `[node]`.
    pub node: NodeTable,
    /// `[runtime]`.
    pub runtime: Config,
    /// `[frames]`.
    pub frames: FramesConfig,
    /// `[[links]]` (a pair's; written only when there are some: a group's file has
    /// none, and `links = []` beside `[[peers]]` would be refused when read back).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<LinkConfig>,
    /// `[[peers]]`: a group's other nodes (empty: a pair).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<PeerTable>,
    /// `[outputs]`.
    pub outputs: OutputsConfig,
    /// `[console]`.
    pub console: ConsoleConfig,
    /// `[hook]`.
    pub hook: HookConfig,
    /// `[shutdown]`.
    pub shutdown: ShutdownConfig,
    /// `[log]`.
    pub log: LogConfig,
    /// `[metrics]`.
    pub metrics: MetricsConfig,
    /// `[hmi]`.
    pub hmi: HmiConfig,
    /// `[rt]`.
    pub rt: RtConfig,
    /// `[app]`.
    pub app: S,
}

const TABLES: [&str; 14] = [
    "node", "runtime", "frames", "links", "peers", "outputs", "console", "hook", "shutdown", "log", "metrics", "rt",
    "app", "hmi",
];

/// An array of tables (`[[name]]`), each deserialized on its own so that an error names
/// its index.
fn tables<T: serde::de::DeserializeOwned>(name: &str, value: Option<toml::Value>) -> Result<Vec<T>, ConfigFileError> {
    match value {
        None => Ok(Vec::new()),
        Some(toml::Value::Array(items)) => {
            let mut parsed = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                parsed.push(table(&format!("{name}[{i}]"), Some(item))?);
            }
            Ok(parsed)
        }
        Some(other) => Err(error(
            name,
            format!("must be an array of tables ([[{name}]]), not {}", other.type_str()),
        )),
    }
}

/// `[[peers]]`, each with its `[[peers.links]]` (errors name `peers[i].links[j].key`).
fn peer_tables(value: Option<toml::Value>) -> Result<Vec<PeerTable>, ConfigFileError> {
    let items = match value {
        None => return Ok(Vec::new()),
        Some(toml::Value::Array(items)) => items,
        Some(other) => {
            return Err(error(
                "peers",
                format!("must be an array of tables ([[peers]]), not {}", other.type_str()),
            ))
        }
    };
    let mut peers = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let name = format!("peers[{i}]");
        let mut item = match item {
            toml::Value::Table(t) => t,
            other => return Err(error(name, format!("must be a table, not {}", other.type_str()))),
        };
        let links = tables(&format!("{name}.links"), item.remove("links"))?;
        let mut peer: PeerTable = table(&name, Some(toml::Value::Table(item)))?;
        peer.links = links;
        peers.push(peer);
    }
    Ok(peers)
}

/// Deserializes one table; on error, finds the key at fault by trying each key alone.
fn table<T: serde::de::DeserializeOwned>(name: &str, value: Option<toml::Value>) -> Result<T, ConfigFileError> {
    let table = match value {
        None => toml::Table::new(),
        Some(toml::Value::Table(t)) => t,
        Some(other) => return Err(error(name, format!("must be a table, not {}", other.type_str()))),
    };
    match table.clone().try_into::<T>() {
        Ok(parsed) => Ok(parsed),
        Err(whole) => {
            let message = one_line(whole.message());
            if let Some(unknown) = message
                .strip_prefix("unknown field `")
                .and_then(|rest| rest.split('`').next())
            {
                let expected = message.split_once(", expected ").map_or("", |(_, e)| e);
                return Err(error(
                    format!("{name}.{unknown}"),
                    format!("unknown key (expected {expected})"),
                ));
            }
            for (key, value) in table {
                let mut alone = toml::Table::new();
                alone.insert(key.clone(), value);
                if let Err(e) = alone.try_into::<T>() {
                    return Err(error(format!("{name}.{key}"), one_line(e.message())));
                }
            }
            Err(error(name, message))
        }
    }
}

/// Sets `path` (`table.key`, or `key` at the top) to `value` in `root`.
fn set(root: &mut toml::Table, path: &str, value: toml::Value) -> Result<(), ConfigFileError> {
    let mut parts: Vec<&str> = path.split('.').collect();
    let Some(last) = parts.pop().filter(|k| !k.is_empty()) else {
        return Err(error(path, "an override needs a key"));
    };
    let mut table = root;
    for part in parts {
        let entry = table
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let toml::Value::Table(inner) = entry else {
            return Err(error(path, format!("`{part}` is not a table")));
        };
        table = inner;
    }
    table.insert(last.to_string(), value);
    Ok(())
}

/// Parses the value of a `--set key=value`: a TOML value (`5`, `true`, `"x"`, `[1, 2]`),
/// or else a bare string.
fn override_value(text: &str) -> toml::Value {
    let document = format!("v = {text}");
    match document.parse::<toml::Table>() {
        Ok(mut table) => table.remove("v").unwrap_or_else(|| toml::Value::String(text.into())),
        Err(_) => toml::Value::String(text.into()),
    }
}

/// One `--set` override: `key` (dotted path) and its raw value.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    /// The dotted key, e.g. `runtime.heartbeat_interval_ms`.
    pub key: String,
    /// The value, as TOML.
    pub value: toml::Value,
}

impl Override {
    /// Parses `key=value`.
    pub fn parse(text: &str) -> Result<Override, String> {
        let (key, value) = text
            .split_once('=')
            .ok_or_else(|| format!("`{text}` is not KEY=VALUE"))?;
        Ok(Override {
            key: key.trim().to_string(),
            value: override_value(value.trim()),
        })
    }

    /// An override with a string value.
    pub fn string(key: &str, value: &str) -> Override {
        Override {
            key: key.into(),
            value: toml::Value::String(value.into()),
        }
    }
}

/// Makes a relative path relative to `base` (the configuration file's directory).
fn resolve(base: &Path, path: &mut PathBuf) {
    if !path.as_os_str().is_empty() && path.is_relative() {
        *path = base.join(&*path);
    }
}

impl<S: AppSettings> NodeFile<S> {
    /// Loads `path` with `overrides` applied in order.
    pub fn load(path: &Path, overrides: &[Override]) -> Result<NodeFile<S>, ConfigFileError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| error("", format!("cannot read {}: {e}", path.display())))?;
        let base = path.parent().unwrap_or(Path::new("."));
        // Absolute, so that `--print-config` output works from any directory.
        let base = std::path::absolute(base).unwrap_or_else(|_| base.to_path_buf());
        Self::parse(&text, &base, overrides)
    }

    /// Parses the text of a configuration file; relative paths in it are taken relative
    /// to `base`.
    pub fn parse(text: &str, base: &Path, overrides: &[Override]) -> Result<NodeFile<S>, ConfigFileError> {
        let mut root: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| error("", format!("not valid TOML: {}", one_line(&e.to_string()))))?;
        for o in overrides {
            set(&mut root, &o.key, o.value.clone())?;
        }
        if let Some(unknown) = root.keys().find(|k| !TABLES.contains(&k.as_str())) {
            return Err(error(
                unknown.as_str(),
                format!("unknown table (expected one of {})", TABLES.join(", ")),
            ));
        }
        let mut node: NodeTable = table("node", root.remove("node"))?;

        // The profile gives the [runtime] keys the file does not set.
        let base_runtime = match node.profile {
            Profile::Default => Config::default(),
            Profile::Fast => Config::fast(),
        };
        let mut runtime_table = toml::Table::try_from(&base_runtime).map_err(|e| error("runtime", e.to_string()))?;
        match root.remove("runtime") {
            None => {}
            Some(toml::Value::Table(given)) => runtime_table.extend(given),
            Some(other) => return Err(error("runtime", format!("must be a table, not {}", other.type_str()))),
        }
        let mut runtime: Config = table("runtime", Some(toml::Value::Table(runtime_table)))?;
        let peers = peer_tables(root.remove("peers"))?;
        if !peers.is_empty() && root.get("links").is_some() {
            return Err(error(
                "links",
                "a group gives each peer's links in its [[peers.links]]: remove the [[links]] tables",
            ));
        }
        runtime.peers = peers.iter().map(PeerTable::group_peer).collect();
        let outputs: OutputsConfig = table("outputs", root.remove("outputs"))?;
        runtime.level_refresh_ms = outputs.level_refresh_ms;
        // Acks: one bit per sink, so more than 8 sinks with acks on is refused by the
        // core's check (`outputs.sinks`); the count saturates rather than wraps.
        runtime.ack_sinks = if outputs.acks {
            u8::try_from(outputs.sinks.len()).unwrap_or(u8::MAX)
        } else {
            0
        };
        runtime.event_retry_ms = outputs.retry_ms;
        runtime.event_retry_max_ms = outputs.retry_max_ms;
        runtime.ack_silence_ms = outputs.ack_silence_ms;
        runtime.outputs_release = outputs.release;
        runtime.validate().map_err(|e| {
            // The group's keys are the file's `[[peers]]`, not `[runtime]` keys; the level
            // refresh is an `[outputs]` key.
            if e.key.starts_with("peers") || e.key.starts_with("outputs") {
                error(e.key, e.problem)
            } else {
                error(format!("runtime.{}", e.key), e.problem)
            }
        })?;
        let links = match root.remove("links") {
            None => Vec::new(),
            Some(toml::Value::Array(items)) => {
                let mut links = Vec::with_capacity(items.len());
                for (i, item) in items.into_iter().enumerate() {
                    links.push(table(&format!("links[{i}]"), Some(item))?);
                }
                links
            }
            Some(other) => {
                return Err(error(
                    "links",
                    format!("must be an array of tables ([[links]]), not {}", other.type_str()),
                ))
            }
        };
        let mut file: NodeFile<S> = NodeFile {
            runtime,
            frames: table("frames", root.remove("frames"))?,
            links,
            peers,
            outputs,
            console: table("console", root.remove("console"))?,
            hook: table("hook", root.remove("hook"))?,
            shutdown: table("shutdown", root.remove("shutdown"))?,
            log: table("log", root.remove("log"))?,
            metrics: table("metrics", root.remove("metrics"))?,
            hmi: table("hmi", root.remove("hmi"))?,
            rt: table("rt", root.remove("rt"))?,
            app: table("app", root.remove("app"))?,
            node: {
                resolve(base, &mut node.state_file);
                if let Some(p) = &mut node.sync_key_file {
                    resolve(base, p);
                }
                node
            },
        };
        if let Some(p) = &mut file.console.key_file {
            resolve(base, p);
        }
        if let Some(p) = &mut file.console.journal_file {
            resolve(base, p);
        }
        if let Some(p) = &mut file.outputs.ack_key_file {
            resolve(base, p);
        }
        file.app
            .validate(&file.runtime)
            .map_err(|e| error(format!("app.{}", e.key), e.problem))?;
        if file.rt.sched_fifo_priority > 99 {
            return Err(error("rt.sched_fifo_priority", "must be 0..=99"));
        }
        file.shell()
            .validate(file.runtime.links_total())
            .map_err(|e| error(file.link_key(&e.key), e.problem))?;
        Ok(file)
    }

    /// The I/O shell's part.
    pub fn shell(&self) -> ShellConfig {
        ShellConfig {
            name: self.node.name.clone(),
            state_file: self.node.state_file.clone(),
            seed: self.node.seed,
            sync_key_file: self.node.sync_key_file.clone(),
            frames: self.frames.clone(),
            links: self.shell_links(),
            outputs: self.outputs.clone(),
            console: self.console.clone(),
            hook: self.hook.clone(),
            shutdown: self.shutdown.clone(),
            log: self.log.clone(),
            metrics: self.metrics.clone(),
            hmi: self.hmi.clone(),
        }
    }

    /// The sync links the shell opens, in the core's global link order: a pair's
    /// `[[links]]`; a group's `[[peers.links]]`, peer after peer, as the core numbers them
    /// (`peers::slots_for`: peer i owns the next run of its links). A group's link without
    /// a `name` is named `peer<id>.link<j>`, so that the console and the log tell the
    /// peers' links apart.
    pub fn shell_links(&self) -> Vec<LinkConfig> {
        if self.peers.is_empty() {
            return self.links.clone();
        }
        self.peers
            .iter()
            .flat_map(|peer| {
                peer.links.iter().enumerate().map(move |(j, link)| LinkConfig {
                    name: if link.name.is_empty() {
                        format!("peer{}.link{j}", peer.id)
                    } else {
                        link.name.clone()
                    },
                    ..link.clone()
                })
            })
            .collect()
    }

    /// The socket a shell error names (`links[4] control (127.0.0.1:7121)`) as the file
    /// names it, with the peer it leads to, and the fix: for a group
    /// `peers[1].links[0] (to node 3) control (127.0.0.1:7121)` and `; free the port or
    /// set peers[1].links[0].bind` (`.bulk_bind` for the bulk socket); a pair's `links[k]`
    /// keeps its name and gets the fix. Any other socket: unchanged, no fix.
    pub fn link_socket_name(&self, what: &str) -> (String, String) {
        let unchanged = || (what.to_string(), String::new());
        let Some(rest) = what.strip_prefix("links[") else {
            return unchanged();
        };
        let Some((index, tail)) = rest.split_once(']') else {
            return unchanged();
        };
        let Ok(index) = index.parse::<usize>() else {
            return unchanged();
        };
        let key = if tail.trim_start().starts_with("bulk") {
            "bulk_bind"
        } else {
            "bind"
        };
        let link = self.link_key(&format!("links[{index}]"));
        let peer = self
            .peers
            .iter()
            .scan(0, |first, peer| {
                let range = *first..*first + peer.links.len();
                *first = range.end;
                Some((range, peer.id))
            })
            .find(|(range, _)| range.contains(&index))
            .map(|(_, id)| format!(" (to node {id})"))
            .unwrap_or_default();
        (
            format!("{link}{peer}{tail}"),
            format!("; free the port or set another in {link}.{key}"),
        )
    }

    /// A shell key naming a link by its global index (`links[4].peer`) as the file names
    /// it: unchanged for a pair, `peers[i].links[j].peer` for a group.
    fn link_key(&self, key: &str) -> String {
        if self.peers.is_empty() {
            return key.to_string();
        }
        let Some((index, rest)) = key
            .strip_prefix("links[")
            .and_then(|r| r.split_once(']'))
            .and_then(|(i, rest)| Some((i.parse::<usize>().ok()?, rest)))
        else {
            return key.to_string();
        };
        let mut first = 0;
        for (i, peer) in self.peers.iter().enumerate() {
            if index < first + peer.links.len() {
                return format!("peers[{i}].links[{}]{rest}", index - first);
            }
            first += peer.links.len();
        }
        key.to_string()
    }

    /// The effective configuration as TOML (for `--print-config`, and for the tests and
    /// the harness that write node files), its tables in the order of the type:
    /// `[node]`, `[runtime]`, `[frames]`, `[[links]]`, … `[app]`.
    pub fn to_toml(&self) -> Result<String, ConfigFileError> {
        toml::to_string(self).map_err(|e| error("", e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node_main::AnyAppSettings;

    const MINIMAL: &str = r#"
[node]
state_file = "a.epoch"

[[links]]
bind = "127.0.0.1:7101"
peer = "127.0.0.1:7201"

[[links]]
bind = "127.0.0.1:7111"
peer = "127.0.0.1:7211"

[outputs]
sinks = ["127.0.0.1:7500"]

[console]
bind = "127.0.0.1:7409"

[app]
belt_speed_mm_s = 250
zones = ["infeed", "outfeed"]
"#;

    #[test]
    fn any_app_unknown_app_keys_are_kept_not_refused() {
        let file = NodeFile::<AnyAppSettings>::parse(MINIMAL, Path::new("/etc/twinloop"), &[]).unwrap();
        assert_eq!(file.console.bind, "127.0.0.1:7409".parse().unwrap());
        assert_eq!(file.app.0["belt_speed_mm_s"].as_integer(), Some(250));
        let again = NodeFile::<AnyAppSettings>::parse(&file.to_toml().unwrap(), Path::new("/"), &[]).unwrap();
        assert_eq!(again, file);
    }

    #[test]
    fn any_app_serialized_from_its_type_loads_as_itself() {
        let file = NodeFile::<AnyAppSettings>::parse(MINIMAL, Path::new("/etc/twinloop"), &[]).unwrap();
        let text = toml::to_string(&file).unwrap();
        let again = NodeFile::<AnyAppSettings>::parse(&text, Path::new("/"), &[]).unwrap();
        assert_eq!(again, file, "{text}");
    }

    #[test]
    fn any_app_other_tables_are_still_checked() {
        let text = MINIMAL.replace("[console]", "[console]\nport = 1");
        let e = NodeFile::<AnyAppSettings>::parse(&text, Path::new("/"), &[]).unwrap_err();
        assert_eq!(e.key, "console.port");
    }

    /// MINIMAL as node 1 of a group: no `[[links]]`, a backup of weight 5 and a witness.
    fn group_text() -> String {
        let pair_links = "[[links]]\nbind = \"127.0.0.1:7101\"\npeer = \"127.0.0.1:7201\"\n\n[[links]]\nbind = \"127.0.0.1:7111\"\npeer = \"127.0.0.1:7211\"\n";
        assert!(MINIMAL.contains(pair_links));
        MINIMAL.replace(
            pair_links,
            r#"[runtime]
weight = 3

[[peers]]
id = 2
weight = 5

[[peers.links]]
bind = "127.0.0.1:7101"
peer = "127.0.0.1:7201"

[[peers]]
id = 3
witness = true

[[peers.links]]
bind = "127.0.0.1:7102"
peer = "127.0.0.1:7302"
"#,
        )
    }

    fn parse_error(text: &str) -> ConfigFileError {
        NodeFile::<AnyAppSettings>::parse(text, Path::new("/"), &[]).unwrap_err()
    }

    /// A valid group loads (the shell opens every peer's links since issue 16 step 5),
    /// its links in the core's global order; each rule on `[[peers]]` names its key.
    #[test]
    fn any_app_group_peers_checked_then_loaded() {
        let file = NodeFile::<AnyAppSettings>::parse(&group_text(), Path::new("/"), &[]).unwrap();
        assert_eq!(file.runtime.links_total(), 2);
        let links = file.shell().links;
        let names: Vec<&str> = links.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["peer2.link0", "peer3.link0"]);
        assert_eq!(links[1].peer, "127.0.0.1:7302".parse().unwrap());
        let again = NodeFile::<AnyAppSettings>::parse(&file.to_toml().unwrap(), Path::new("/"), &[]).unwrap();
        assert_eq!(again, file);
        let cases = [
            ("weight = 5", "weight = 0", "peers[0].weight"),
            ("witness = true", "witness = true\nweight = 2", "peers[1].weight"),
            ("id = 3", "id = 2", "peers[1].id"),
            ("id = 3", "id = 1", "peers[1].id"),
            ("weight = 3", "weight = 101", "runtime.weight"),
            (
                "peer = \"127.0.0.1:7302\"",
                "peer = \"nowhere\"",
                "peers[1].links[0].peer",
            ),
            ("id = 2", "id = 2\nvotes = 1", "peers[0].votes"),
            // The shell's checks of a link name it as the file does, not by global index.
            (
                "peer = \"127.0.0.1:7302\"",
                "peer = \"0.0.0.0:7302\"",
                "peers[1].links[0].peer",
            ),
            (
                "bind = \"127.0.0.1:7101\"",
                "bind = \"127.0.0.1:0\"",
                "peers[0].links[0].bind",
            ),
        ];
        for (from, to, key) in cases {
            assert_eq!(parse_error(&group_text().replacen(from, to, 1)).key, key, "{to}");
        }
        let no_links = group_text().replace(
            "[[peers.links]]\nbind = \"127.0.0.1:7102\"\npeer = \"127.0.0.1:7302\"\n",
            "",
        );
        assert_eq!(parse_error(&no_links).key, "peers[1].links");
        let two_witnesses = format!("{}\n[[peers]]\nid = 4\nwitness = true\n[[peers.links]]\nbind = \"127.0.0.1:7103\"\npeer = \"127.0.0.1:7403\"\n", group_text());
        assert_eq!(parse_error(&two_witnesses).key, "peers[2].witness");
        let with_pair_links = format!(
            "{}\n[[links]]\nbind = \"127.0.0.1:7109\"\npeer = \"127.0.0.1:7209\"\n",
            group_text()
        );
        assert_eq!(parse_error(&with_pair_links).key, "links");
    }

    /// A pair's file prints no `[[peers]]` and loads as before.
    /// Issue 22: `[outputs] acks` and its timings reach the core (one ack sink per
    /// sink), checked with their ranges under their own names; off by default.
    #[test]
    fn any_app_acks_reach_the_core_out_of_range_named() {
        let on = MINIMAL.replace(
            "[outputs]\n",
            "[outputs]\nacks = true\nretry_ms = 30\nretry_max_ms = 500\nack_silence_ms = 2000\n",
        );
        let file = NodeFile::<AnyAppSettings>::parse(&on, Path::new("/"), &[]).unwrap();
        let r = &file.runtime;
        assert_eq!(usize::from(r.ack_sinks), file.outputs.sinks.len());
        assert_eq!(
            (r.event_retry_ms, r.event_retry_max_ms, r.ack_silence_ms),
            (30, 500, 2000)
        );
        let off = NodeFile::<AnyAppSettings>::parse(MINIMAL, Path::new("/"), &[]).unwrap();
        assert_eq!(off.runtime.ack_sinks, 0, "off by default");
        let e = parse_error(&on.replace("retry_max_ms = 500", "retry_max_ms = 10"));
        assert_eq!(e.key, "outputs.retry_max_ms");
        let e = parse_error(&on.replace("ack_silence_ms = 2000", "ack_silence_ms = 100"));
        assert_eq!(e.key, "outputs.ack_silence_ms");
    }

    /// Issue 22: a relative `outputs.ack_key_file` is the configuration file's
    /// directory's, as the other key files are (it was taken from the working directory).
    #[test]
    fn any_app_relative_ack_key_file_resolves_against_the_config_directory() {
        let text = MINIMAL.replace(
            "[outputs]\n",
            "[outputs]\nacks = true\nack_key_file = \"keys/ack.key\"\n",
        );
        let file = NodeFile::<AnyAppSettings>::parse(&text, Path::new("/etc/twinloop"), &[]).unwrap();
        assert_eq!(
            file.outputs.ack_key_file.as_deref(),
            Some(Path::new("/etc/twinloop/keys/ack.key"))
        );
        let text = MINIMAL.replace("[outputs]\n", "[outputs]\nack_key_file = \"/srv/ack.key\"\n");
        let file = NodeFile::<AnyAppSettings>::parse(&text, Path::new("/etc/twinloop"), &[]).unwrap();
        assert_eq!(file.outputs.ack_key_file.as_deref(), Some(Path::new("/srv/ack.key")));
    }

    /// Issue 16: `[outputs] release` reaches the core, immediate by default; another word
    /// is one error naming the key and the two words it takes.
    #[test]
    fn any_app_outputs_release_reaches_the_core_unknown_word_named() {
        use crate::config::OutputsRelease;
        let on = MINIMAL.replace("[outputs]\n", "[outputs]\nrelease = \"acked\"\n");
        let file = NodeFile::<AnyAppSettings>::parse(&on, Path::new("/"), &[]).unwrap();
        assert_eq!(
            (file.outputs.release, file.runtime.outputs_release),
            (OutputsRelease::Acked, OutputsRelease::Acked)
        );
        let again = NodeFile::<AnyAppSettings>::parse(&file.to_toml().unwrap(), Path::new("/"), &[]).unwrap();
        assert_eq!(again, file);
        let off = NodeFile::<AnyAppSettings>::parse(MINIMAL, Path::new("/"), &[]).unwrap();
        assert_eq!(
            off.runtime.outputs_release,
            OutputsRelease::Immediate,
            "immediate by default"
        );
        let e = parse_error(&MINIMAL.replace("[outputs]\n", "[outputs]\nrelease = \"later\"\n"));
        assert!(e.key.starts_with("outputs"), "{e}");
        assert!(e.problem.contains("immediate") && e.problem.contains("acked"), "{e}");
    }

    /// Issue 22: `[outputs] level_refresh_ms` reaches the core, checked with its range
    /// under its own name.
    #[test]
    fn any_app_level_refresh_reaches_the_core_out_of_range_named() {
        let on = MINIMAL.replace("[outputs]\n", "[outputs]\nlevel_refresh_ms = 200\n");
        let file = NodeFile::<AnyAppSettings>::parse(&on, Path::new("/"), &[]).unwrap();
        assert_eq!(
            (file.outputs.level_refresh_ms, file.runtime.level_refresh_ms),
            (200, 200)
        );
        let again = NodeFile::<AnyAppSettings>::parse(&file.to_toml().unwrap(), Path::new("/"), &[]).unwrap();
        assert_eq!(again, file);
        let off = NodeFile::<AnyAppSettings>::parse(MINIMAL, Path::new("/"), &[]).unwrap();
        assert_eq!(off.runtime.level_refresh_ms, 0, "off by default");
        let e = parse_error(&MINIMAL.replace("[outputs]\n", "[outputs]\nlevel_refresh_ms = 15\n"));
        assert_eq!(e.key, "outputs.level_refresh_ms");
        assert!(e.problem.contains("16..=3600000"), "{e}");
    }

    #[test]
    fn any_app_pair_has_no_peers_table() {
        let file = NodeFile::<AnyAppSettings>::parse(MINIMAL, Path::new("/"), &[]).unwrap();
        assert!(file.peers.is_empty() && file.runtime.peers.is_empty());
        assert!(!file.to_toml().unwrap().contains("peers"));
    }

    proptest::proptest! {
        /// Arbitrary text (and a first line taken as an override) gives a configuration or
        /// one line naming the problem, never a panic.
        #[test]
        fn any_app_arbitrary_text_never_panics(text in "(?s).{0,400}", mutate in proptest::bool::ANY) {
            let text = if mutate { format!("{MINIMAL}\n{text}") } else { text };
            let overrides: Vec<Override> = text.lines().next().and_then(|l| Override::parse(l).ok()).into_iter().collect();
            match NodeFile::<AnyAppSettings>::parse(&text, Path::new("/"), &overrides) {
                Ok(file) => { let _ = file.to_toml(); }
                Err(e) => proptest::prop_assert!(!e.to_string().contains('\n'), "{e}"),
            }
        }
    }
}
