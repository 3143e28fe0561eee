//! Groups of three real processes on loopback (issue 16): each node's shell opens a link
//! to each of its two peers (`[[peers.links]]`), with the test I/O source and the
//! deduplicating sink of the pair tests.
//!
//! - three program nodes: one primary, two backups in sync; SIGKILL to the primary → the
//!   backup of the highest weight leads, the third follows it without a state transfer,
//!   and after dedup at the sink no output id is lost or duplicated (compared with a
//!   reference run);
//! - two program nodes and a witness: the witness votes, so the backup leads with 2 of 3
//!   when the primary dies; the witness never leads.
//!
//! Every wait is a bounded poll of a condition (the console's status, the sink, a
//! process's exit); the bounds are generous for a loaded 2-core machine.
// Real processes on a real clock: the test measures and bounds with wall time.
#![allow(clippy::disallowed_methods)]

mod common;

use common::*;
use std::fs;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::Duration;
use twinloop::io::config::LinkConfig;
use twinloop::node_main::config::PeerTable;

const NODES: usize = 3;
/// Links between each two nodes (as the pair tests: a sync cable and the plant network).
const LINKS: usize = 2;

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Node `i`'s weight: node 1 the heaviest, so node 2 succeeds it (the witness has none).
fn weight(i: usize) -> u8 {
    (NODES - i) as u8
}

struct Group {
    dir: PathBuf,
    nodes: Vec<Node>,
    plant: Plantside,
}

impl Group {
    fn context(&self) -> String {
        let sink = self.plant.sink.lock().unwrap();
        let mut text = format!(
            "frames sent {}, sink accepted {}, duplicates {}\n",
            self.plant.frames_sent(),
            sink.sink.accepted.len(),
            sink.sink.duplicates
        );
        for node in &self.nodes {
            let status = node.status().map(|s| (s.role, s.sync, s.epoch, s.frame));
            text.push_str(&format!("node {}: {status:?}\n", node.id));
        }
        for node in &self.nodes {
            text.push_str(&node.log_tail());
            text.push('\n');
        }
        text
    }

    fn node(&self, id: u8) -> &Node {
        &self.nodes[usize::from(id) - 1]
    }

    /// Writes three nodes' files (the last a witness with `witness`), starts the three
    /// until node 1 leads and the others follow, then the frames, until every program
    /// backup is in sync and node 1 paired.
    fn start(name: &str, witness: bool) -> Group {
        Group::start_with(name, witness, false)
    }

    /// [`Group::start`]; with `witness_binary`, the witness runs `twinloop-witness` (built
    /// beside `twinloop-demo` by a workspace build) instead of the demo binary.
    fn start_with(name: &str, witness: bool, witness_binary: bool) -> Group {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("group-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("console.key"), format!("{KEY}\n")).unwrap();
        fs::set_permissions(
            dir.join("console.key"),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
        let source_socket = UdpSocket::bind("127.0.0.1:0").expect("bind the source socket");
        let source = source_socket.local_addr().unwrap();
        let sink_socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket2::SockRef::from(&sink_socket)
            .set_recv_buffer_size(4 << 20)
            .expect("the sink's receive buffer");
        let sink_port = sink_socket.local_addr().unwrap().port();
        let mut pool = PortPool::new();
        let ports: Vec<NodePorts> = (0..NODES).map(|_| pool.node()).collect();
        // mesh[i][j]: node i's sockets (control, bulk) of its LINKS links to node j.
        let mesh: Vec<Vec<[[u16; 2]; LINKS]>> = (0..NODES)
            .map(|i| {
                (0..NODES)
                    .map(|j| if i == j { [[0; 2]; LINKS] } else { pool.node().links })
                    .collect()
            })
            .collect();
        for i in 0..NODES {
            let file = group_file(i, witness, &ports, &mesh, sink_port, &dir, source);
            let text = file.to_toml().expect("a node file serializes");
            fs::write(dir.join(format!("node-{}.toml", i + 1)), text).unwrap();
        }
        let targets = ports.iter().map(|p| local(p.frames)).collect();
        pool.release();

        let plant = Plantside::start(source_socket, sink_socket, targets);
        let spawn = |i: usize| {
            if witness_binary && i + 1 == NODES {
                return spawn_witness(
                    &dir.join(format!("node-{}.toml", i + 1)),
                    dir.join(format!("node-{}.log", i + 1)),
                    ports[i].console,
                );
            }
            Node::spawn(
                (i + 1) as u8,
                &dir.join(format!("node-{}.toml", i + 1)),
                dir.join(format!("node-{}.log", i + 1)),
                ports[i].console,
            )
        };
        // A group leads from the start only with a majority heard: all three start
        // together, and node 1's start-up priority makes it the one that leads.
        let group = Group {
            nodes: (0..NODES).map(spawn).collect(),
            dir: dir.clone(),
            plant,
        };
        wait_for(
            Duration::from_secs(15),
            "node 1 to lead, nodes 2 and 3 to follow",
            &|| group.context(),
            || {
                group.node(1).role_is(Role::Primary)
                    && group.node(2).role_is(Role::Backup)
                    && group.node(3).role_is(Role::Backup)
            },
        );
        group.plant.paused.store(false, std::sync::atomic::Ordering::SeqCst);
        group.plant.sending.store(true, std::sync::atomic::Ordering::SeqCst);
        wait_for(
            Duration::from_secs(20),
            "the program backups in sync and node 1 paired",
            &|| group.context(),
            || {
                group.node(1).sync_is(Sync::Paired)
                    && group.node(2).sync_is(Sync::InSync)
                    && (witness || group.node(3).sync_is(Sync::InSync))
            },
        );
        group
    }

    /// Waits until the sink has the command of frame `frame`.
    fn await_sink_frame(&self, frame: u64, limit: Duration) {
        wait_for(
            limit,
            &format!("the sink to receive frame {frame}"),
            &|| self.context(),
            || self.plant.has_command_of(frame),
        );
    }

    /// Node `id`'s journal events with this notice or transition name.
    fn events_named(&self, id: u8, name: &str) -> usize {
        let events = self.node(id).events(0).expect("events");
        events.events.iter().filter(|e| e.name == name).count()
    }
}

/// Node `i`'s file: the pair tests' node (fast timings, console key, hook) with its two
/// peers in `[[peers]]`, `LINKS` links to each, and its weight; with `witness`, node 3 is
/// the group's witness (`runtime.witness`: the demo binary then runs no program, the core
/// gives a witness no frame) and every file says so.
fn group_file(
    i: usize,
    witness: bool,
    ports: &[NodePorts],
    mesh: &[Vec<[[u16; 2]; LINKS]>],
    sink: u16,
    dir: &Path,
    source: SocketAddr,
) -> NodeFile {
    let id = (i + 1) as u8;
    let is_witness = |k: usize| witness && k + 1 == NODES;
    let mut file = node_file(id, &ports[i], &ports[i], sink, dir, &RigOptions::default(), source);
    file.links.clear();
    file.runtime.weight = weight(i);
    file.runtime.priority = u8::from(i == 0);
    file.runtime.witness = is_witness(i);
    file.peers = (0..NODES)
        .filter(|&j| j != i)
        .map(|j| PeerTable {
            id: (j + 1) as u8,
            weight: (!is_witness(j)).then(|| weight(j)),
            witness: is_witness(j),
            links: (0..LINKS)
                .map(|l| LinkConfig {
                    bind: local(mesh[i][j][l][0]),
                    bulk_bind: Some(local(mesh[i][j][l][1])),
                    peer: local(mesh[j][i][l][0]),
                    bulk_peer: Some(local(mesh[j][i][l][1])),
                    ..LinkConfig::default()
                })
                .collect(),
        })
        .collect();
    file
}

/// `twinloop-witness` as node 3, its `[app]` table empty.
fn spawn_witness(config: &Path, log: PathBuf, console: u16) -> Node {
    let text = fs::read_to_string(config).unwrap();
    let mut table: toml::Table = text.parse().unwrap();
    table.insert("app".into(), toml::Value::Table(toml::Table::new()));
    fs::write(config, toml::to_string(&table).unwrap()).unwrap();
    let binary = Path::new(env!("CARGO_BIN_EXE_twinloop-demo")).with_file_name("twinloop-witness");
    let stderr = fs::File::create(&log).expect("create the node's log file");
    let child = std::process::Command::new(&binary)
        .arg("--config")
        .arg(config)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|e| panic!("start {} (cargo build --workspace): {e}", binary.display()));
    Node {
        id: 3,
        child: std::cell::RefCell::new(child),
        console: local(console),
        log,
        exit: std::cell::RefCell::new(None),
    }
}

#[test]
fn group_of_three_primary_killed_heaviest_backup_leads_third_follows_without_transfer() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let group = Group::start("three", false);
    let status = group.node(1).status().unwrap();
    assert_eq!(status.group.len(), 2, "node 1 sees both peers: {:?}", status.group);
    assert!(
        status.group.iter().all(|m| m.alive),
        "both peers heard: {:?}",
        status.group
    );
    let transfers_3 = group.events_named(3, "transfer_started");
    assert!(
        transfers_3 >= 1,
        "node 3 joined node 1 by a transfer\n{}",
        group.context()
    );

    let before_kill = group.plant.frames_sent() + 250;
    group.await_sink_frame(before_kill, Duration::from_secs(20));
    let frame_at_kill = group.plant.frames_sent();
    group.node(1).sigkill();
    wait_for(
        Duration::from_secs(10),
        "node 2 (the heaviest backup) to lead",
        &|| group.context(),
        || group.node(2).role_is(Role::Primary),
    );
    let epoch_2 = group.node(2).status().unwrap().epoch;
    wait_for(
        Duration::from_secs(10),
        "node 3 to follow node 2 in sync",
        &|| group.context(),
        || {
            group
                .node(3)
                .status()
                .is_some_and(|s| s.role == Role::Backup && s.sync == Sync::InSync && s.epoch == epoch_2)
        },
    );
    assert_eq!(
        group.events_named(3, "transfer_started"),
        transfers_3,
        "node 3 followed the new primary without a state transfer\n{}",
        group.context()
    );
    assert!(!group.node(3).role_is(Role::Primary));

    group.await_sink_frame(frame_at_kill + 250, Duration::from_secs(20));
    let last = group.plant.stop_sending();
    group.await_sink_frame(last, Duration::from_secs(10));
    let status_2 = group.node(2).status().unwrap();
    assert_eq!(status_2.takeovers, 1);
    assert_eq!(group.node(3).status().unwrap().takeovers, 0);
    let dir = group.dir.clone();
    let nodes = group.nodes;
    drop(nodes);
    let (frames, sink) = group.plant.shutdown();
    assert_exactly_the_reference(&sink.sink, &frames, last);
    assert_eq!(sink.malformed, 0);
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn group_witness_primary_killed_backup_leads_with_the_witness_vote() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let group = Group::start("witness", true);
    assert!(group.node(3).role_is(Role::Backup), "the witness follows, never leads");

    let before_kill = group.plant.frames_sent() + 250;
    group.await_sink_frame(before_kill, Duration::from_secs(20));
    let frame_at_kill = group.plant.frames_sent();
    group.node(1).sigkill();
    wait_for(
        Duration::from_secs(10),
        "node 2 to lead with the witness's vote",
        &|| group.context(),
        || group.node(2).role_is(Role::Primary),
    );
    group.await_sink_frame(frame_at_kill + 250, Duration::from_secs(20));
    let last = group.plant.stop_sending();
    group.await_sink_frame(last, Duration::from_secs(10));
    assert_eq!(group.node(2).status().unwrap().takeovers, 1);
    let witness = group.node(3).status().unwrap();
    assert_eq!((witness.role, witness.takeovers), (Role::Backup, 0));
    let dir = group.dir.clone();
    drop(group.nodes);
    let (frames, sink) = group.plant.shutdown();
    assert_exactly_the_reference(&sink.sink, &frames, last);
    let _ = fs::remove_dir_all(dir);
}

/// The shipped witness binary beside two demo nodes. Ignored: the core refuses to pair
/// with it — its fingerprint names the program `twinloop-witness`, the nodes' names
/// `twinloop-demo`, and `pairing::mismatch_with` compares programs whatever the peer's
/// role, so each side raises `peer_mismatch` (program) and the witness never votes
/// (found here 2026-11-26; the core's fix is g3's: compare only the group's membership
/// with a witness). Run with `cargo build --workspace` first, then `--ignored`.
#[test]
#[ignore = "the core refuses a twinloop-witness peer as another program (pairing::mismatch_with)"]
fn group_witness_binary_pairs_with_program_nodes() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let group = Group::start_with("witness-binary", true, true);
    let status = group.node(1).status().unwrap();
    assert!(
        status.group.iter().all(|m| m.alive),
        "node 1 hears both peers, the witness included: {:?}",
        status.group
    );
    assert_eq!(status.rejections.refused_peer, 0, "{}", group.context());
}
