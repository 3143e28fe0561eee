//! The library logs through the `log` facade (issue 15): a program that installs a logger
//! of its own receives the shell's lines, with their level and the `twinloop` target, and
//! nothing is written by a logger of the library's.
#![cfg(feature = "io")]

use std::net::SocketAddr;
use std::sync::Mutex;
use twinloop::io::config::{ConsoleConfig, FramesConfig, LinkConfig, OutputsConfig, ShellConfig};
use twinloop::io::Shell;
use twinloop::testing::TestApp;
use twinloop::Config;

/// Every record it is given, as `(level, target, message)`.
struct Capture(Mutex<Vec<(log::Level, String, String)>>);

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        self.0
            .lock()
            .unwrap()
            .push((record.level(), record.target().to_string(), record.args().to_string()));
    }
    fn flush(&self) {}
}

static CAPTURE: Capture = Capture(Mutex::new(Vec::new()));

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

#[test]
fn program_logger_receives_the_shell_start_line() {
    log::set_logger(&CAPTURE).expect("no logger installed yet in this test binary");
    log::set_max_level(log::LevelFilter::Debug);

    let dir = std::env::temp_dir().join(format!("twinloop-log-facade-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (control_udp, control_tcp, control) = twinloop::testing::reserve_port();
    let (bulk_udp, bulk_tcp, bulk) = twinloop::testing::reserve_port();
    let (frames_udp, frames_tcp, frames) = twinloop::testing::reserve_port();
    let shell_config = ShellConfig {
        name: "logged".into(),
        state_file: dir.join("node.epoch"),
        seed: 7,
        frames: FramesConfig {
            bind: local(frames),
            ..FramesConfig::default()
        },
        links: vec![LinkConfig {
            bind: local(control),
            bulk_bind: Some(local(bulk)),
            // Nobody listens there: the node is never run anyway.
            peer: local(9),
            bulk_peer: Some(local(9)),
            ..LinkConfig::default()
        }],
        outputs: OutputsConfig {
            bind: local(0),
            sinks: vec![local(9)],
            ..OutputsConfig::default()
        },
        console: ConsoleConfig {
            bind: local(0),
            ..ConsoleConfig::default()
        },
        ..ShellConfig::default()
    };
    let runtime = Config {
        node_id: 3,
        links: 1,
        ..Config::default()
    };
    drop((control_udp, control_tcp, bulk_udp, bulk_tcp, frames_udp, frames_tcp));
    let shell = Shell::new(shell_config, runtime, TestApp::new(0)).expect("the shell starts");
    drop(shell);
    let _ = std::fs::remove_dir_all(&dir);

    let records = CAPTURE.0.lock().unwrap();
    let started = records
        .iter()
        .find(|(_, _, message)| message.starts_with("started: node 3"))
        .unwrap_or_else(|| panic!("no start line among {records:?}"));
    assert_eq!(started.0, log::Level::Info, "{started:?}");
    assert_eq!(started.1, twinloop::io::log::TARGET, "{started:?}");
    assert!(twinloop::io::log::enabled(twinloop::io::log::Level::Debug));
}
