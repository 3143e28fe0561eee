//! Two shells paired on loopback, each with a role-change hook: the hook's environment
//! names the peer and its role as last heard (`TWINLOOP_PEERS`, issue 16), so that a
//! group's hooks can tell which node leads. Binds 127.0.0.1 only; every wait is a bounded
//! poll of a condition.
#![cfg(feature = "io")]
// Real sockets on a real clock: waits are bounded with wall time.
#![allow(clippy::disallowed_methods)]

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use twinloop::io::client::Client;
use twinloop::io::config::{ConsoleConfig, FramesConfig, HookConfig, LinkConfig, OutputsConfig, ShellConfig};
use twinloop::io::schema::{Role, Sync};
use twinloop::io::{Exit, Shell, StopHandle};
use twinloop::io_protocol;
use twinloop::testing::TestApp;
use twinloop::Config;

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

struct Running {
    console: SocketAddr,
    frames: SocketAddr,
    hook_log: PathBuf,
    stop: StopHandle,
    thread: std::thread::JoinHandle<Result<Exit, twinloop::io::ShellError>>,
}

/// Node `id` with sync ports `(mine, bulk)` and its peer's `(peer, peer bulk)`.
fn start(dir: &Path, id: u8, mine: (u16, u16), peer: (u16, u16)) -> Running {
    let hook_log = dir.join(format!("hook-{id}.log"));
    let frames = addr(free_udp_port());
    let shell_config = ShellConfig {
        name: format!("node-{id}"),
        state_file: dir.join(format!("state-{id}")).join("node.epoch"),
        seed: u64::from(id),
        frames: FramesConfig {
            bind: frames,
            ..FramesConfig::default()
        },
        links: vec![LinkConfig {
            bind: addr(mine.0),
            bulk_bind: Some(addr(mine.1)),
            peer: addr(peer.0),
            bulk_peer: Some(addr(peer.1)),
            ..LinkConfig::default()
        }],
        outputs: OutputsConfig {
            bind: "127.0.0.1:0".parse().unwrap(),
            // Nobody listens there: outputs are not what this test is about.
            sinks: vec![addr(free_udp_port())],
            ..OutputsConfig::default()
        },
        console: ConsoleConfig {
            bind: "127.0.0.1:0".parse().unwrap(),
            ..ConsoleConfig::default()
        },
        hook: HookConfig {
            command: vec![
                "sh".into(),
                "-c".into(),
                format!(
                    "echo \"$TWINLOOP_ROLE $TWINLOOP_SYNC [$TWINLOOP_PEERS]\" >> {}",
                    hook_log.display()
                ),
            ],
            ..HookConfig::default()
        },
        ..ShellConfig::default()
    };
    let runtime = Config {
        node_id: id,
        links: 1,
        heartbeat_interval_ms: 5,
        detection_window_ms: 100,
        startup_wait_ms: 20,
        // Node 1 leads when both start together.
        priority: if id == 1 { 1 } else { 0 },
        ..Config::default()
    };
    let shell = Shell::new(shell_config, runtime, TestApp::new(0)).expect("the shell starts");
    Running {
        console: shell.console_addr().expect("the console listens"),
        frames,
        hook_log,
        stop: shell.stop_handle(),
        thread: std::thread::spawn(move || shell.run()),
    }
}

#[test]
fn pair_hooks_name_the_peer_and_its_role() {
    let dir = std::env::temp_dir().join(format!("twinloop-io-pair-hooks-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (a, b) = ((free_udp_port(), free_udp_port()), (free_udp_port(), free_udp_port()));
    let nodes = [start(&dir, 1, a, b), start(&dir, 2, b, a)];
    let source = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut consoles: Vec<Client> = nodes
        .iter()
        .map(|n| Client::new(n.console, Duration::from_secs(5)))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut frame = 0u64;
    let paired = loop {
        assert!(Instant::now() < deadline, "the pair did not form within 20 s");
        frame += 1;
        for n in &nodes {
            let datagram = io_protocol::frame_to_vec(frame, &TestApp::payload_for(frame)).unwrap();
            source.send_to(&datagram, n.frames).unwrap();
        }
        std::thread::sleep(Duration::from_millis(10));
        let statuses: Vec<_> = consoles.iter_mut().map(|c| c.status().unwrap()).collect();
        let primary = statuses
            .iter()
            .position(|s| s.role == Role::Primary && s.sync == Sync::Paired);
        let backup = statuses
            .iter()
            .position(|s| s.role == Role::Backup && s.sync == Sync::InSync);
        if let (Some(p), Some(b)) = (primary, backup) {
            // The console's group lists the one peer as heard.
            assert_eq!(statuses[p].group.len(), 1);
            assert_eq!(statuses[p].group[0].node_id, Some(statuses[b].node_id));
            assert_eq!(statuses[p].group[0].role, Some(Role::Backup));
            break (p, b);
        }
    };
    let (p, b) = paired;
    let primary_id = p + 1;
    let backup_id = b + 1;
    // The primary's hook ran on `paired` (it heard its backup in sync): it names the
    // backup; the backup's last hook names the primary.
    let wait_log = |i: usize, wanted: &str| {
        let limit = Instant::now() + Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(&nodes[i].hook_log).unwrap_or_default();
            if text.lines().any(|l| l == wanted) {
                return;
            }
            assert!(
                Instant::now() < limit,
                "node {} hook log lacks {wanted:?}:\n{text}",
                i + 1
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    wait_log(p, &format!("primary paired [{backup_id}=backup]"));
    wait_log(b, &format!("backup in_sync [{primary_id}=primary]"));
    for n in nodes {
        n.stop.stop();
        let _ = n.thread.join();
    }
    let _ = std::fs::remove_dir_all(&dir);
}
