//! The node's configuration file for the tank program: the runtime's generic
//! [`twinloop::node_main::config::NodeFile`] with the tank's `[app]` table
//! ([`TankParams`]). Every key and its default is in `docs/CONFIG.md`.

use crate::tank::{TankApp, TankParams};
pub use twinloop::node_main::config::{ConfigFileError, NodeTable, Override, Profile, RtConfig};
use twinloop::node_main::{AppSettings, NodeProgram, SettingsError};

/// The tank node's whole configuration file.
pub type NodeFile = twinloop::node_main::config::NodeFile<TankParams>;

impl AppSettings for TankParams {
    fn validate(&self, runtime: &twinloop::Config) -> Result<(), SettingsError> {
        TankParams::validate(self).map_err(|e| SettingsError {
            key: e.key.into(),
            problem: e.problem,
        })?;
        // The snapshot holds the ballast plus a few hundred bytes of the program's own
        // state: without room for it no backup could ever join.
        if u64::from(self.state_ballast_bytes) + 4096 > runtime.state_bytes_max {
            return Err(SettingsError {
                key: "state_ballast_bytes".into(),
                problem: "must be at least 4096 bytes below runtime.state_bytes_max".into(),
            });
        }
        Ok(())
    }
}

impl NodeProgram for TankApp {
    type Settings = TankParams;
    const NAME: &'static str = "twinloop-demo";
    const ABOUT: &'static str = "One node of a twinloop hot-standby pair running the demo tank program.";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn from_settings(settings: &TankParams) -> Self {
        TankApp::new(settings.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};
    use twinloop::Config;

    const MINIMAL: &str = r#"
[node]
state_file = "a.epoch"

[runtime]
node_id = 1

[[links]]
bind = "127.0.0.1:7101"
peer = "127.0.0.1:7201"

[[links]]
bind = "127.0.0.1:7111"
peer = "127.0.0.1:7211"

[outputs]
sinks = ["127.0.0.1:7500"]
"#;

    fn parse(text: &str, overrides: &[Override]) -> Result<NodeFile, ConfigFileError> {
        NodeFile::parse(text, Path::new("/etc/twinloop"), overrides)
    }

    #[test]
    fn config_minimal_takes_defaults() {
        let file = parse(MINIMAL, &[]).unwrap();
        assert_eq!(file.runtime, Config::default());
        assert_eq!(file.links.len(), 2);
        assert_eq!(file.node.state_file, PathBuf::from("/etc/twinloop/a.epoch"));
        assert_eq!(file.app, TankParams::default());
    }

    #[test]
    fn config_fast_profile_fills_unset_runtime_keys() {
        let text = MINIMAL.replace("[node]\n", "[node]\nprofile = \"fast\"\n");
        let text = text.replace("node_id = 1", "node_id = 1\nprobe_timeout_ms = 3");
        let file = parse(&text, &[]).unwrap();
        assert_eq!(file.runtime.heartbeat_interval_ms, 1);
        assert_eq!(
            file.runtime.probe_timeout_ms, 3,
            "a key in the file wins over the profile"
        );
    }

    #[test]
    fn config_overrides_apply_in_order() {
        let file = parse(
            MINIMAL,
            &[
                Override::parse("runtime.node_id=2").unwrap(),
                Override::parse("log.level=debug").unwrap(),
                Override::parse("outputs.sinks=[\"127.0.0.1:9\"]").unwrap(),
            ],
        )
        .unwrap();
        assert_eq!(file.runtime.node_id, 2);
        assert_eq!(file.log.level, "debug");
        assert_eq!(file.outputs.sinks, ["127.0.0.1:9".parse().unwrap()]);
    }

    #[test]
    fn config_unknown_key_is_named() {
        let text = MINIMAL.replace("node_id = 1", "node_id = 1\nheartbeat_ms = 5");
        let e = parse(&text, &[]).unwrap_err();
        assert_eq!(e.key, "runtime.heartbeat_ms");
        assert!(e
            .to_string()
            .starts_with("invalid configuration key `runtime.heartbeat_ms`: unknown key"));
        assert!(!e.to_string().contains('\n'));
        let e = parse(&format!("{MINIMAL}\n[plant]\nx = 1\n"), &[]).unwrap_err();
        assert_eq!(e.key, "plant");
    }

    #[test]
    fn config_wrong_type_is_named() {
        let text = MINIMAL.replace("node_id = 1", "node_id = 1\nheartbeat_interval_ms = \"fast\"");
        let e = parse(&text, &[]).unwrap_err();
        assert_eq!(e.key, "runtime.heartbeat_interval_ms");
        let text = MINIMAL.replace("peer = \"127.0.0.1:7211\"", "peer = \"nowhere\"");
        assert_eq!(parse(&text, &[]).unwrap_err().key, "links[1].peer");
    }

    #[test]
    fn config_out_of_range_is_named() {
        let e = parse(MINIMAL, &[Override::parse("runtime.links=3").unwrap()]).unwrap_err();
        assert_eq!(e.key, "links");
        let e = parse(MINIMAL, &[Override::parse("runtime.detection_window_ms=10").unwrap()]).unwrap_err();
        assert_eq!(e.key, "runtime.detection_window_ms");
        let e = parse(MINIMAL, &[Override::parse("app.cycle_ms=0").unwrap()]).unwrap_err();
        assert_eq!(e.key, "app.cycle_ms");
        let e = parse(MINIMAL, &[Override::parse("rt.sched_fifo_priority=120").unwrap()]).unwrap_err();
        assert_eq!(e.key, "rt.sched_fifo_priority");
        let e = parse(MINIMAL, &[Override::parse("app.state_ballast_bytes=2097152").unwrap()]).unwrap_err();
        assert_eq!(
            e.key, "app.state_ballast_bytes",
            "the ballast must fit runtime.state_bytes_max"
        );
        assert!(parse(MINIMAL, &[Override::parse("app.state_ballast_bytes=1048576").unwrap()]).is_ok());
    }

    /// Issue 20: a cycle below a millisecond is `app.cycle_us`; giving it beside
    /// `app.cycle_ms` is one error naming the fix, whichever source each came from.
    #[test]
    fn config_cycle_us_alone_or_refused_beside_cycle_ms() {
        let file = parse(MINIMAL, &[Override::parse("app.cycle_us=100").unwrap()]).unwrap();
        assert_eq!((file.app.cycle_us, file.app.cycle_ms), (Some(100), None));
        assert_eq!(file.app.cycle_us(), 100);
        assert_eq!(parse(MINIMAL, &[]).unwrap().app.cycle_us(), 10_000, "neither: 10 ms");
        let both = [
            Override::parse("app.cycle_ms=1").unwrap(),
            Override::parse("app.cycle_us=100").unwrap(),
        ];
        let e = parse(MINIMAL, &both).unwrap_err();
        assert_eq!(e.key, "app.cycle_us");
        let text = e.to_string();
        assert!(
            text.contains("cycle_ms is set too") && text.contains("remove the other"),
            "{text}"
        );
        assert!(!text.contains('\n'));
        let in_file = MINIMAL.replace("[outputs]", "[app]\ncycle_ms = 1\n\n[outputs]");
        let e = parse(&in_file, &[Override::parse("app.cycle_us=500").unwrap()]).unwrap_err();
        assert_eq!(e.key, "app.cycle_us", "a file's cycle_ms and an override's cycle_us");
        for bad in ["app.cycle_us=49", "app.cycle_us=0", "app.cycle_us=60000001"] {
            let e = parse(MINIMAL, &[Override::parse(bad).unwrap()]).unwrap_err();
            assert_eq!(e.key, "app.cycle_us", "{bad}");
        }
        for good in ["app.cycle_us=50", "app.cycle_us=60000000", "app.cycle_ms=60000"] {
            assert!(parse(MINIMAL, &[Override::parse(good).unwrap()]).is_ok(), "{good}");
        }
    }

    #[test]
    fn config_round_trips_through_print() {
        let file = parse(MINIMAL, &[]).unwrap();
        let text = file.to_toml().unwrap();
        let again = NodeFile::parse(&text, Path::new("/"), &[]).unwrap();
        assert_eq!(again, file);
    }

    /// configs/demo-tags-{a,b}.toml and configs/gateway-demo.toml: the pair and its gateway
    /// agree on the map (one layout id), which is the demo plant's (`tags::plant_map`).
    #[test]
    fn config_demo_tags_files_share_the_plant_map_with_the_gateway() {
        use crate::tags::{plant_map, TagIo};
        let configs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
        let read = |name: &str| std::fs::read_to_string(configs.join(name)).unwrap();
        let expected = TagIo::new(&plant_map("127.0.0.1:5020", 8)).unwrap().map().layout_id();
        let mut apps = Vec::new();
        for name in ["demo-tags-a.toml", "demo-tags-b.toml"] {
            let file = NodeFile::parse(&read(name), &configs, &[]).unwrap_or_else(|e| panic!("{name}: {e}"));
            AppSettings::validate(&file.app, &file.runtime).unwrap_or_else(|e| panic!("{name}: {e:?}"));
            let io = file.app.tag_io().unwrap().expect("io = \"tags\"");
            assert_eq!(io.map().layout_id(), expected, "{name}");
            apps.push(file.app);
        }
        assert_eq!(apps[0], apps[1], "both nodes run the same [app]");
        let gateway: toml::Table = toml::from_str(&read("gateway-demo.toml")).unwrap();
        let mut map = toml::Table::new();
        map.insert("device".into(), gateway["device"].clone());
        map.insert("tag".into(), gateway["tag"].clone());
        let spec: twinloop::image::TagMapSpec = map.try_into().unwrap();
        assert_eq!(spec, apps[0].tag_map(), "the gateway's tables are the nodes'");
        assert_eq!(TagIo::new(&spec).unwrap().map().layout_id(), expected);
    }

    #[test]
    fn config_tags_round_trip_through_print() {
        let configs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
        let text = std::fs::read_to_string(configs.join("demo-tags-a.toml")).unwrap();
        let file = NodeFile::parse(&text, &configs, &[]).unwrap();
        let again = NodeFile::parse(&file.to_toml().unwrap(), &configs, &[]).unwrap();
        assert_eq!(again, file);
    }

    #[test]
    fn config_bad_toml_is_one_line() {
        let e = parse("[node\nx=", &[]).unwrap_err();
        assert!(e.to_string().starts_with("not valid TOML"));
        assert!(!e.to_string().contains('\n'));
    }
}
