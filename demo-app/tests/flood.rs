//! Hostile input: a running pair (sync links authenticated, frames accepted from the I/O
//! source's address only) is flooded on every port with 100,000 random and mutated
//! datagrams, replays of valid ones and forged switchover requests, and its console with
//! forged commands. Nothing may crash, no role may change, the plant must see exactly the
//! outputs a run without the flood gives, and the rejection counters must account for
//! every datagram sent.
// Real processes on a real clock: the test paces and bounds with wall time.
#![allow(clippy::disallowed_methods)]

mod common;

use common::*;
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;
use twinloop::io::schema::AlarmName;
use twinloop::io_protocol;
use twinloop::wire::{self, AuthKey, Body, Commit, CommitKind, Envelope, Header, WireRole, WireSync};
use twinloop::Rng;

const DATAGRAMS: u64 = 100_000;
/// Datagrams per burst, and bursts per second: 20,000 a second, well within what a node
/// reads, so that the kernel drops none and every datagram is counted by a node.
const BURST: u64 = 100;
const BURST_INTERVAL: Duration = Duration::from_millis(5);

/// What one node was sent, by where it must be counted.
#[derive(Default, Debug)]
struct Sent {
    /// To the frames socket from an address not in `frames.sources`.
    frames_foreign: u64,
    /// To a sync-link socket (control or bulk): random, mutated, replayed or forged.
    link: u64,
}

/// `(sync-link rejections, frames from a foreign source)`. `stale_frame` is left out: it
/// counts the I/O source's own frames that arrive after the node ran them (fetched); so
/// are `untagged` and `wrong_key`, which split `unauthenticated` by kind.
fn counters(status: &Status) -> (u64, u64) {
    // Every counter but those three, by name: one the core adds counts here too.
    let all = serde_json::to_value(status.rejections).expect("rejections serialize");
    let rejections: u64 = all
        .as_object()
        .expect("rejections object")
        .iter()
        .filter(|(reason, _)| !matches!(reason.as_str(), "stale_frame" | "untagged" | "wrong_key"))
        .map(|(_, v)| v.as_u64().unwrap_or(0))
        .sum();
    (rejections, status.io.frames_foreign_source)
}

fn header(node_id: u8, role: WireRole, epoch: u64, session: u64, seq: u64) -> Header {
    Header {
        node_id,
        role,
        epoch,
        sync: WireSync::NotApplicable,
        frame: 1,
        session,
        seq,
        origin: 0,
    }
}

#[test]
fn flood_every_port_no_crash_no_role_change_same_outputs_all_counted() {
    let options = RigOptions {
        sync_key: true,
        restrict_frame_source: true,
        ..RigOptions::default()
    };
    let rig = Rig::start_with("flood", options);
    // Let sequence numbers run well past the replay window before replaying old ones.
    let frame_before = rig.plant.frames_sent();
    rig.await_sink_frame(frame_before + 300, Duration::from_secs(10));

    let status = [rig.a.status().expect("A status"), rig.b().status().expect("B status")];
    let roles: Vec<(Role, u64)> = status.iter().map(|s| (s.role, s.epoch)).collect();
    let sessions = [status[0].boot_id, status[1].boot_id];
    let epoch = status[0].epoch;
    let before = [counters(&status[0]), counters(&status[1])];

    let key = AuthKey::derive(SYNC_KEY.as_bytes());
    let wrong = AuthKey::derive(b"not the key");
    let attacker = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut rng = Rng::new(0xF100D);
    let mut sent = [Sent::default(), Sent::default()];
    let mut kinds = [0u64; 6];

    for n in 0..DATAGRAMS {
        let to = (rng.below(2)) as usize;
        let peer = 1 - to;
        let ports = &rig.ports[to];
        let kind = rng.below(6) as usize;
        kinds[kind] += 1;
        let link_port = ports.links[rng.below(2) as usize][rng.below(2) as usize];
        let (bytes, port, counted_as_frame) = match kind {
            // Random bytes, to any port.
            0 => {
                let len = rng.below(1400) as usize;
                let bytes: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
                if rng.chance(1, 5) {
                    (bytes, ports.frames, true)
                } else {
                    (bytes, link_port, false)
                }
            }
            // A valid, keyed message with a few bits flipped.
            1 => {
                let envelope = Envelope {
                    header: header(peer as u8 + 1, WireRole::Primary, epoch, sessions[peer], n + 1_000_000),
                    body: Body::Heartbeat {
                        nonce: 1,
                        priority: 0,
                        sent_ns: 1,
                        echo_ns: 0,
                        echo_hold_ns: 0,
                        input_frame: 0,
                        input_age_ms: u64::MAX,
                        fingerprint: wire::Fingerprint {
                            program: 0,
                            version: 0,
                            settings: 0,
                            keyed: true,
                        },
                        challenge: 1,
                        challenge_echo: 1,
                    },
                };
                let valid = wire::encode(&envelope, Some(&key)).unwrap().to_vec();
                let mut bytes = valid.clone();
                // Flips at distinct bits: two flips of one bit would give back the valid
                // message, which only the key holder can make.
                while bytes == valid {
                    for _ in 0..=rng.below(3) {
                        let i = rng.below(bytes.len() as u64) as usize;
                        bytes[i] ^= 1 << rng.below(8);
                    }
                }
                (bytes, link_port, false)
            }
            // A replay: correctly keyed, the peer's real session, a sequence number long past.
            2 => {
                let body = if rng.chance(1, 2) {
                    Body::Commit(Commit {
                        frame: 5,
                        kind: CommitKind::Skipped { last: 1_000_000 },
                        state_digest: None,
                        writes: Default::default(),
                    })
                } else {
                    Body::SwitchRelease { id: 1, frame: 5 }
                };
                let envelope = Envelope {
                    header: header(peer as u8 + 1, WireRole::Primary, epoch, sessions[peer], rng.below(32)),
                    body,
                };
                (wire::encode(&envelope, Some(&key)).unwrap().to_vec(), link_port, false)
            }
            // A forged switchover or takeover with a higher epoch: no key, or the wrong one.
            3 => {
                let body = match rng.below(3) {
                    0 => Body::SwitchRequest { id: 7, to: 0 },
                    1 => Body::SwitchAsk { id: 7, to: 0 },
                    _ => Body::SwitchRelease { id: 7, frame: 1 },
                };
                let envelope = Envelope {
                    header: header(peer as u8 + 1, WireRole::Primary, epoch + 256, u64::MAX, n),
                    body,
                };
                let key = if rng.chance(1, 2) { Some(&wrong) } else { None };
                (wire::encode(&envelope, key).unwrap().to_vec(), link_port, false)
            }
            // A well-formed input frame far in the future, from the wrong address.
            4 => {
                let bytes = io_protocol::frame_to_vec(10_000_000 + n, &[0u8; 16]).unwrap();
                (bytes, ports.frames, true)
            }
            // An unknown wire version, otherwise well framed.
            _ => {
                let mut bytes = vec![9u8, 0, 1, 2, 3];
                let crc = twinloop::digest::crc32c(&bytes);
                bytes.extend_from_slice(&crc.to_le_bytes());
                (bytes, link_port, false)
            }
        };
        let target = SocketAddr::from(([127, 0, 0, 1], port));
        attacker.send_to(&bytes, target).expect("loopback send");
        if counted_as_frame {
            sent[to].frames_foreign += 1;
        } else {
            sent[to].link += 1;
        }
        if (n + 1) % BURST == 0 {
            // Pacing: the flood's rate, not a wait for a condition.
            std::thread::sleep(BURST_INTERVAL);
        }
    }

    // Forged and malformed console commands.
    let mut bad_key_replies = 0;
    let mut bad_json_replies = 0;
    for ports in &rig.ports {
        let stream = TcpStream::connect(("127.0.0.1", ports.console)).expect("console");
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut writer = stream.try_clone().unwrap();
        let mut reader = BufReader::new(stream);
        for i in 0..50 {
            let line = if i % 2 == 0 {
                format!("{{\"cmd\":\"switchover\",\"key\":\"guess-{i}\"}}\n")
            } else {
                format!("{{\"cmd\":\"switchover\",\"key\"::{i}\n")
            };
            writer.write_all(line.as_bytes()).unwrap();
            let mut reply = String::new();
            reader.read_line(&mut reply).expect("a reply per request");
            let reply: Value = serde_json::from_str(&reply).expect("replies are JSON");
            assert_eq!(reply["ok"], false, "a forged console command was accepted: {reply}");
            match reply["error"]["code"].as_str() {
                Some("bad_key") => bad_key_replies += 1,
                Some("bad_json") => bad_json_replies += 1,
                other => panic!("unexpected console error {other:?}"),
            }
        }
    }
    assert_eq!((bad_key_replies, bad_json_replies), (50, 50));

    // Every datagram is counted once the nodes have read them all.
    let expected = [
        (before[0].0 + sent[0].link, before[0].1 + sent[0].frames_foreign),
        (before[1].0 + sent[1].link, before[1].1 + sent[1].frames_foreign),
    ];
    let node_counters = |rig: &Rig| {
        [
            rig.a.status().map(|s| counters(&s)),
            rig.b().status().map(|s| counters(&s)),
        ]
    };
    wait_for(
        Duration::from_secs(20),
        "the nodes to count every flood datagram",
        &|| {
            format!(
                "expected {expected:?}, counted {:?}, sent {sent:?}\nA {:?}\nB {:?}",
                node_counters(&rig),
                rig.a.status().map(|s| s.rejections).unwrap_or_default(),
                rig.b().status().map(|s| s.rejections).unwrap_or_default()
            )
        },
        || node_counters(&rig) == [Some(expected[0]), Some(expected[1])],
    );
    println!("flood: {DATAGRAMS} datagrams by kind {kinds:?}, per node {sent:?}; counters {expected:?}");

    // The pair went on as if nothing happened.
    let after = [rig.a.status().unwrap(), rig.b().status().unwrap()];
    for (i, s) in after.iter().enumerate() {
        assert_eq!((s.role, s.epoch), roles[i], "node {} changed role or epoch", i + 1);
        assert_eq!(s.takeovers, 0);
        assert_eq!(s.switchovers, 0);
        // The forged sync messages without a tag and with another key's tag are
        // diagnosed as a key mismatch: one alarm per kind (rate-limited to one a minute),
        // and no other.
        assert!(
            s.alarms <= 2,
            "alarms: {}; events: {:?}",
            s.alarms,
            [&rig.a, rig.b()][i].events(0).map(|p| p
                .events
                .iter()
                .filter(|e| e.kind == twinloop::io::schema::EventKind::Alarm)
                .map(|e| e.name.clone())
                .collect::<Vec<_>>())
        );
        assert_eq!(
            s.last_alarm.as_ref().map(|a| a.name),
            Some(AlarmName::SyncKeyMismatch),
            "alarm: {:?}",
            s.last_alarm
        );
        // Half of the 50 forged lines carried a wrong key; the others were not JSON.
        assert_eq!(s.io.console_bad_key, 25);
    }
    assert_eq!(after[1].sync, Sync::InSync);

    let last = rig.plant.stop_sending();
    rig.await_sink_frame(last, Duration::from_secs(10));
    let (frames, sink) = rig.plant.shutdown();
    assert_exactly_the_reference(&sink.sink, &frames, last);
    assert_eq!(sink.sink.duplicates, 0);
    assert_eq!(sink.sink.stale_rejected, 0);
}

/// Sends frame `number` of `session` to both nodes' frame ports.
fn send_frame(socket: &UdpSocket, rig: &Rig, session: u16, number: u64, payload: &[u8]) {
    let bytes = io_protocol::session_frame_to_vec(session, number, payload).unwrap();
    for ports in &rig.ports {
        socket
            .send_to(&bytes, SocketAddr::from(([127, 0, 0, 1], ports.frames)))
            .expect("loopback send");
    }
}

fn both_status(rig: &Rig) -> [Status; 2] {
    [rig.a.status().expect("A status"), rig.b().status().expect("B status")]
}

/// Issue 13, points 1 and 2, on real processes: frames numbered 2^64 − 1 and the current
/// frame + 10^12 (the old primary skipped towards them at 100 % CPU with its console and
/// SIGTERM dead), then a source that restarts at 1 without a session (dropped as stale
/// while the status said healthy), then in a new session (followed by both nodes).
#[test]
fn frames_far_ahead_and_a_restarted_source_pair_runs_on_and_says_so() {
    let options = RigOptions {
        sync_key: true,
        // The test sends frames from its own socket, as a forged or restarted source would.
        restrict_frame_source: false,
        ..RigOptions::default()
    };
    let rig = Rig::start_with("extreme-frames", options);
    rig.await_sink_frame(rig.plant.frames_sent() + 100, Duration::from_secs(10));
    let source = UdpSocket::bind("127.0.0.1:0").unwrap();
    let payload = rig.plant.frames.lock().unwrap().last().unwrap().1.clone();
    let roles: Vec<(Role, u64)> = both_status(&rig).iter().map(|s| (s.role, s.epoch)).collect();

    // 1. Far ahead, each sent twice, while the plant's source runs.
    let current = rig.a.frame();
    for number in [u64::MAX, current + 1_000_000_000_000] {
        for _ in 0..2 {
            send_frame(&source, &rig, 0, number, &payload);
        }
    }
    rig.await_sink_frame(rig.plant.frames_sent() + 200, Duration::from_secs(10));
    wait_for(
        Duration::from_secs(10),
        "both nodes to count the four refused frames",
        &|| format!("{:?}", both_status(&rig).map(|s| s.rejections)),
        || both_status(&rig).iter().all(|s| s.rejections.frame_out_of_range == 4),
    );
    for (i, s) in both_status(&rig).iter().enumerate() {
        assert_eq!((s.role, s.epoch), roles[i], "node {}", i + 1);
        assert_eq!(s.alarms, 1, "node {}: one alarm, not one per datagram", i + 1);
        assert_eq!(s.last_alarm.as_ref().map(|a| a.name), Some(AlarmName::FrameRefused));
        assert!(s.frame < current + 100_000, "node {} jumped", i + 1);
    }

    // 2. The source restarts at 1 without saying so: stale, and the status says it.
    let last = rig.plant.stop_sending();
    rig.await_sink_frame(last, Duration::from_secs(10));
    let stale_before = both_status(&rig).map(|s| s.rejections.stale_frame);
    for number in 1..=100 {
        send_frame(&source, &rig, 0, number, &payload);
        // The source's cycle: pacing, not a wait for a condition.
        std::thread::sleep(Duration::from_millis(CYCLE_MS));
    }
    // The primary alarms; the backup counts them too, and alarms only for frames more
    // than max_lag_frames older than its last run (nearer ones may be its own late copies
    // of frames it ran with the primary's copy: c505436), which 1..=100 need not be here.
    wait_for(
        Duration::from_secs(10),
        "the primary to alarm frames_stale, both nodes to count the stale frames",
        &|| format!("{:?}", both_status(&rig).map(|s| (s.role, s.alarms, s.last_alarm))),
        || {
            let status = both_status(&rig);
            status.iter().any(|s| {
                s.role == Role::Primary
                    && s.alarms == 2
                    && s.last_alarm.as_ref().map(|a| a.name) == Some(AlarmName::FramesStale)
            }) && status
                .iter()
                .enumerate()
                .all(|(i, s)| s.rejections.stale_frame >= stale_before[i] + 100)
        },
    );
    for s in both_status(&rig).iter().filter(|s| s.role != Role::Primary) {
        // The frame refusals of part 1, and at most this storm: nothing else.
        assert!(s.alarms <= 2, "backup alarms: {:?}", s.last_alarm);
    }
    let sink_top = |rig: &Rig| {
        let state = rig.plant.sink.lock().unwrap();
        state.sink.accepted.keys().next_back().map_or(0, |&(frame, _)| frame)
    };
    let top_before = sink_top(&rig);
    assert!(top_before >= last && top_before < last + 10, "stale frames ran");

    // 3. The source restarts at 1 in a new session: both nodes follow, new outputs flow.
    // A restarting source is silent before it numbers again; a frame of another session
    // while the current one is live is not a restart (a forged datagram must not re-map
    // the pair), so the restart comes once both nodes say their input is silent.
    wait_for(
        Duration::from_secs(10),
        "both nodes' input silent",
        &|| format!("{:?}", both_status(&rig).map(|s| s.input)),
        || {
            both_status(&rig)
                .iter()
                .all(|s| s.input.as_ref().is_some_and(|i| i.silent))
        },
    );
    for number in 1..=400 {
        send_frame(&source, &rig, 0x5EED, number, &payload);
        std::thread::sleep(Duration::from_millis(CYCLE_MS));
    }
    wait_for(
        Duration::from_secs(10),
        "the sink to receive the new session's outputs",
        &|| format!("sink top {} (before {top_before})\n{}", sink_top(&rig), rig.context()),
        || sink_top(&rig) >= top_before + 390,
    );
    for (i, s) in both_status(&rig).iter().enumerate() {
        let source = s.source.unwrap_or_default();
        assert_eq!(source.session, 0x5EED, "node {}: {:?}", i + 1, s.source);
        assert_eq!(source.restarts, 1, "node {}", i + 1);
        assert_eq!((s.role, s.epoch), roles[i], "node {}", i + 1);
        assert_eq!(s.takeovers, 0);
    }
    assert_eq!(both_status(&rig)[1].sync, Sync::InSync);
    let (_, sink) = rig.plant.shutdown();
    assert_eq!(sink.sink.duplicates, 0);
    assert_eq!(sink.sink.conflicts, 0);
    assert_eq!(sink.sink.stale_rejected, 0);
}

/// Issue 13, point 4, on a real process: a state file holding an epoch above the bound
/// (2^64 − 1 wrapped to epoch 0x1 at the next term, and once made a second primary) stops
/// the start with one line naming the file and the fix, and the file is left as it was.
#[test]
fn state_file_epoch_above_the_bound_refuses_the_start_in_one_line() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("huge-epoch-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("node.toml");
    // Free ports: were it to start (the old node did), it would bind nothing in use.
    let mut pool = PortPool::new();
    let (link, frames, console) = (pool.take(), pool.take(), pool.take());
    pool.release();
    let local = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
    let file = NodeFile {
        node: NodeTable {
            // Relative: beside the configuration file.
            state_file: "huge.epoch".into(),
            ..NodeTable::default()
        },
        runtime: twinloop::Config {
            links: 1,
            ..twinloop::Config::default()
        },
        links: vec![twinloop::io::config::LinkConfig {
            bind: local(link),
            peer: local(9),
            ..Default::default()
        }],
        frames: twinloop::io::config::FramesConfig {
            bind: local(frames),
            ..Default::default()
        },
        outputs: twinloop::io::config::OutputsConfig {
            sinks: vec![local(9)],
            ..Default::default()
        },
        console: twinloop::io::config::ConsoleConfig {
            bind: local(console),
            ..Default::default()
        },
        ..NodeFile::default()
    };
    std::fs::write(&config, file.to_toml().unwrap()).unwrap();
    let text = format!("epoch {}\n", u64::MAX);
    std::fs::write(dir.join("huge.epoch"), &text).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_twinloop-demo"))
        .arg("--config")
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run twinloop-demo");
    let mut status = None;
    wait_for(
        Duration::from_secs(10),
        "the node to refuse its start",
        &String::new,
        || {
            status = child.try_wait().unwrap();
            status.is_some()
        },
    );
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.unwrap().code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains("huge.epoch"), "names the file: {stderr}");
    assert!(stderr.contains("peer's state file"), "names the fix: {stderr}");
    assert_eq!(std::fs::read_to_string(dir.join("huge.epoch")).unwrap(), text);
    let _ = std::fs::remove_dir_all(&dir);
}
