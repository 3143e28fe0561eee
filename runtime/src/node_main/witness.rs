//! `twinloop-witness`: the group's witness (issue 16) as a node binary — the core with
//! `runtime.witness = true` and a program that runs nothing. It heartbeats, answers
//! probes and votes (the votes are the core's, issue 16 step 3); it never leads, holds no
//! state and gets no commits, so its cost is the heartbeats of its links (docs/CONFIG.md,
//! "The witness").
//!
//! ```text
//! twinloop-witness --config configs/group/witness.toml
//! ```
//!
//! The binary always runs as a witness: `runtime.witness = true` is applied after the file
//! and every `--set`, so no configuration turns it into a node that could lead with an
//! empty program.

use super::{AppSettings, NodeProgram, SettingsError};
use crate::app::{App, AppIdentity, Frame, Outbox, SnapshotError};
use crate::Config;
use serde::{Deserialize, Serialize};
use std::ffi::OsString;

/// The witness's `[app]` table: it has no settings, and refuses any key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessSettings {}

impl AppSettings for WitnessSettings {
    fn validate(&self, runtime: &Config) -> Result<(), SettingsError> {
        // Forced by `witness_args`; checked again so that no other path runs the empty
        // program as a node that may lead.
        if !runtime.witness {
            return Err(SettingsError::new(
                "witness",
                "twinloop-witness runs only as a witness (runtime.witness = true); a node that leads runs a program",
            ));
        }
        Ok(())
    }
}

/// The program of a witness: no state, no outputs. It never runs a frame (the core gives
/// a witness none); should one come, nothing happens.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Witness;

/// The witness's name in the pairing fingerprint.
pub const WITNESS_NAME: &str = "twinloop-witness";

impl App for Witness {
    fn step(&mut self, _frame: Frame<'_>, _outbox: &mut Outbox) {}

    fn snapshot(&self, _buf: &mut [u8]) -> Result<usize, SnapshotError> {
        Ok(0)
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<(), SnapshotError> {
        if bytes.is_empty() {
            Ok(())
        } else {
            Err(SnapshotError::Malformed)
        }
    }

    fn digest(&self) -> u64 {
        0
    }

    fn identity(&self) -> AppIdentity {
        AppIdentity {
            name: WITNESS_NAME,
            version: 1,
            settings_digest: 0,
        }
    }
}

impl NodeProgram for Witness {
    type Settings = WitnessSettings;
    const NAME: &'static str = WITNESS_NAME;
    const ABOUT: &'static str =
        "The witness of a twinloop group: votes in the succession, runs no program, never leads.";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn from_settings(_settings: &WitnessSettings) -> Self {
        Witness
    }
}

/// The command line with `--set runtime.witness=true` last, so that it wins over the file
/// and every other override.
pub fn witness_args(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut all: Vec<OsString> = args.into_iter().collect();
    all.push("--set".into());
    all.push("runtime.witness=true".into());
    all
}

/// The witness binary's `main`.
pub fn run_witness(args: impl IntoIterator<Item = OsString>) -> std::process::ExitCode {
    super::run_node::<Witness>(witness_args(args))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node_main::config::NodeFile;
    use std::path::Path;

    /// The shipped example is a valid witness's file (its shell opens one link to each
    /// program node); a pair's file run as a witness is refused naming `runtime.witness`.
    #[test]
    fn witness_example_config_loads_pair_file_refused() {
        let configs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
        let forced = [super::super::config::Override::parse("runtime.witness=true").unwrap()];
        let file = NodeFile::<WitnessSettings>::load(&configs.join("group/witness.toml"), &forced).unwrap();
        assert!(file.runtime.witness);
        let names: Vec<String> = file.shell().links.into_iter().map(|l| l.name).collect();
        assert_eq!(names, ["a", "b"]);
        let e = NodeFile::<super::super::AnyAppSettings>::load(&configs.join("node-a.toml"), &forced).unwrap_err();
        assert_eq!(e.key, "runtime.witness", "{e}");
    }

    /// Every node file shipped in configs/ loads (the pair's, the fast profile's, the
    /// conveyor's and the tags' with their program's `[app]` taken as it is; the witness
    /// as `twinloop-witness` loads it), and the group example's three members agree on
    /// the group (one membership digest: they pair) with no socket bound twice. (Before
    /// 2026-11-26 configs/witness.toml named node-a.toml and node-b.toml, pair files with
    /// another membership, and bound 7132 twice: link a's bulk socket and link b.)
    #[test]
    fn shipped_configs_load_group_example_agrees() {
        let configs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
        let forced = [super::super::config::Override::parse("runtime.witness=true").unwrap()];
        let mut loaded = 0;
        for dir in [configs.clone(), configs.join("group")] {
            let mut paths: Vec<_> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect();
            paths.sort();
            for path in paths {
                let text = std::fs::read_to_string(&path).unwrap();
                let table: toml::Table = text.parse().unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                if !table.contains_key("node") {
                    // Not a node's file (the gateway's, the router's): their crates test them.
                    continue;
                }
                let witness = path.file_name().is_some_and(|n| n == "witness.toml");
                let result = if witness {
                    NodeFile::<WitnessSettings>::load(&path, &forced).map(|f| (f.runtime.clone(), f.shell()))
                } else {
                    NodeFile::<super::super::AnyAppSettings>::load(&path, &[]).map(|f| (f.runtime.clone(), f.shell()))
                };
                result.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                loaded += 1;
            }
        }
        assert!(loaded >= 11, "{loaded} node files");
        let group = configs.join("group");
        let a = NodeFile::<super::super::AnyAppSettings>::load(&group.join("node-a.toml"), &[]).unwrap();
        let b = NodeFile::<super::super::AnyAppSettings>::load(&group.join("node-b.toml"), &[]).unwrap();
        let w = NodeFile::<WitnessSettings>::load(&group.join("witness.toml"), &forced).unwrap();
        let digests = [&a, &b].map(|f| f.runtime.group_digest());
        assert_eq!(digests, [w.runtime.group_digest(); 2]);
        assert_eq!(
            [&a, &b].map(|f| (f.runtime.heartbeat_interval_ms, f.runtime.detection_window_ms)),
            [(w.runtime.heartbeat_interval_ms, w.runtime.detection_window_ms); 2]
        );
        let links: Vec<_> = [a.shell(), b.shell(), w.shell()]
            .into_iter()
            .flat_map(|s| s.links)
            .collect();
        let mut binds: Vec<std::net::SocketAddr> = links
            .iter()
            .flat_map(|l| [Some(l.bind), l.bulk_bind_addr()])
            .flatten()
            .collect();
        let count = binds.len();
        binds.sort_unstable();
        binds.dedup();
        assert_eq!(binds.len(), count, "a socket bound twice");
        // Each link's far end is a link of another member that sends back to it.
        for link in &links {
            let far = links.iter().find(|l| l.bind == link.peer);
            assert!(
                far.is_some_and(|far| far.peer == link.bind),
                "{} to {}",
                link.bind,
                link.peer
            );
        }
    }

    /// A link's socket that cannot open is named as the group's file names it, with the
    /// peer it leads to and the key to change; a pair's keeps its `links[k]`. (The old
    /// message said `links[2] control`, a global index the file does not use.)
    #[test]
    fn group_link_socket_error_names_peer_and_key() {
        let configs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
        let a = NodeFile::<super::super::AnyAppSettings>::load(&configs.join("group/node-a.toml"), &[]).unwrap();
        let (what, fix) = a.link_socket_name("links[2] control (127.0.0.1:7121)");
        assert_eq!(what, "peers[1].links[0] (to node 3) control (127.0.0.1:7121)");
        assert_eq!(fix, "; free the port or set another in peers[1].links[0].bind");
        let (what, fix) = a.link_socket_name("links[1] bulk (127.0.0.1:7112)");
        assert_eq!(what, "peers[0].links[1] (to node 2) bulk (127.0.0.1:7112)");
        assert_eq!(fix, "; free the port or set another in peers[0].links[1].bulk_bind");
        assert_eq!(
            a.link_socket_name("frames (127.0.0.1:7301)"),
            ("frames (127.0.0.1:7301)".into(), String::new())
        );
        let pair = NodeFile::<super::super::AnyAppSettings>::load(&configs.join("node-a.toml"), &[]).unwrap();
        let (what, fix) = pair.link_socket_name("links[1] control (127.0.0.1:7111)");
        assert_eq!(what, "links[1] control (127.0.0.1:7111)");
        assert_eq!(fix, "; free the port or set another in links[1].bind");
    }

    /// The flag goes last, after the operator's own `--set`, so nothing turns it off.
    #[test]
    fn witness_args_force_the_flag_last() {
        let args = witness_args(
            [
                "twinloop-witness",
                "--config",
                "w.toml",
                "--set",
                "runtime.witness=false",
            ]
            .map(OsString::from),
        );
        assert_eq!(
            args[args.len() - 2..],
            ["--set", "runtime.witness=true"].map(OsString::from)
        );
    }

    /// The settings refuse a node that is not a witness; the program holds nothing.
    #[test]
    fn witness_settings_refuse_a_leading_node_program_holds_nothing() {
        let node = Config::default();
        assert_eq!(WitnessSettings {}.validate(&node).unwrap_err().key, "witness");
        let mut w = Witness;
        let mut buf = [0u8; 4];
        assert_eq!(w.snapshot(&mut buf), Ok(0));
        assert_eq!(w.restore(&[]), Ok(()));
        assert_eq!(w.restore(&[1]), Err(SnapshotError::Malformed));
        assert_eq!(w.identity().name, WITNESS_NAME);
    }
}
