//! The Wireshark dissector (`tools/wireshark/twinloop.lua`) on a real pair's capture: two
//! `twinloop-demo` processes through the harness (keyed sync links, the plant, the sink),
//! a kill of the primary (a takeover, then a late join with a state transfer), a switchover
//! asked of the backup and a spell of loss on the links, captured on `lo` by tcpdump; then
//! tshark with the dissector must dissect every datagram of the pair's ports as twinloop,
//! with the message the node's own decoder reads, no expert info, every CRC and MAC valid;
//! a corrupted copy of the capture must show the corruption.
//!
//! Needs tshark and tcpdump (and the right to capture, as root does). Without them the test
//! says so and passes, except in CI (`CI=true`), where `.ci/run` installs both and their
//! absence fails it.
#![allow(clippy::disallowed_methods)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use twinloop::io_protocol::{self, Datagram};
use twinloop::wire::{self, AuthKey};

use twinloop_demo::node_config::NodeFile;
use twinloop_sim::harness::plant_loop::Operator;
use twinloop_sim::harness::rig::{Rig, RigConfig, Timing};
use twinloop_sim::harness::schedule::{inject, Fault, FaultKind};

/// The message types a run with a kill, a late join, a switchover and 520 frames must show
/// (the source mapping is repeated every 256 frames).
const REQUIRED_SYNC_TYPES: [&str; 13] = [
    "Heartbeat",
    "Probe",
    "Commit",
    "JoinRequest",
    "TransferBegin",
    "Chunk",
    "ChunkAck",
    "SwitchAsk",
    "SwitchRequest",
    "SwitchAgree",
    "SwitchRelease",
    "SwitchTaken",
    "SourceMap",
];

fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// tshark and tcpdump, or `None` after saying why the test is skipped (outside CI only).
fn tools() -> Option<(PathBuf, PathBuf)> {
    let (tshark, tcpdump) = (find_tool("tshark"), find_tool("tcpdump"));
    if let (Some(t), Some(d)) = (&tshark, &tcpdump) {
        return Some((t.clone(), d.clone()));
    }
    let missing: Vec<&str> = [("tshark", &tshark), ("tcpdump", &tcpdump)]
        .iter()
        .filter(|(_, p)| p.is_none())
        .map(|(n, _)| *n)
        .collect();
    let message = format!(
        "the Wireshark dissector test needs {} (Debian: `apt-get install tshark tcpdump`)",
        missing.join(" and ")
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{message}: in CI (CI=true) .ci/run installs them, so this is a failure");
    }
    // Straight to stderr, not eprintln!: the test harness captures a passing test's
    // prints, and a skip must be seen.
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED wireshark_dissector_*: {message}");
    None
}

/// The pair's ports, read back from the configurations the rig wrote.
#[derive(Debug, Default)]
struct Ports {
    frames: BTreeSet<u16>,
    sinks: BTreeSet<u16>,
    sync: BTreeSet<u16>,
}

impl Ports {
    fn read(dir: &Path) -> Ports {
        let mut ports = Ports::default();
        for id in 1..=2 {
            let file = NodeFile::load(&dir.join(format!("node-{id}.toml")), &[]).expect("the rig's node file");
            ports.frames.insert(file.frames.bind.port());
            ports.sinks.extend(file.outputs.sinks.iter().map(|s| s.port()));
            for link in &file.links {
                ports.sync.insert(link.bind.port());
                ports.sync.extend(link.bulk_bind.map(|b| b.port()));
            }
        }
        ports
    }

    fn io(&self) -> BTreeSet<u16> {
        self.frames.union(&self.sinks).copied().collect()
    }

    fn filter(&self) -> String {
        let all: Vec<String> = self.io().union(&self.sync).map(|p| format!("port {p}")).collect();
        format!("udp and ({})", all.join(" or "))
    }
}

fn range(ports: &BTreeSet<u16>) -> String {
    ports.iter().map(u16::to_string).collect::<Vec<_>>().join(",")
}

/// tcpdump on `lo`, writing `pcap`, once it says it listens.
fn start_capture(tcpdump: &Path, pcap: &Path, filter: &str) -> (Child, std::thread::JoinHandle<String>) {
    let mut child = Command::new(tcpdump)
        // --immediate-mode: each packet as it comes, so that none is left in the kernel's ring
        // when SIGINT stops the capture; -B: a 32 MiB ring, so that a busy machine drops none.
        .args([
            "-i",
            "lo",
            "-n",
            "--immediate-mode",
            "-B",
            "32768",
            "-U",
            "-s",
            "0",
            "-Z",
            "root",
            "-w",
        ])
        .arg(pcap)
        .arg(filter)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tcpdump starts");
    let stderr = child.stderr.take().expect("tcpdump's stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut said = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains("listening on") => break,
            Ok(line) => said.push(line),
            Err(_) => {
                let _ = child.kill();
                panic!("tcpdump did not start capturing on lo within 20 s (it needs root or CAP_NET_RAW): {said:?}");
            }
        }
    }
    // tcpdump's last words (its packet counts) are kept for the report.
    let last = std::thread::spawn(move || rx.iter().collect::<Vec<String>>().join("; "));
    (child, last)
}

/// SIGINT (tcpdump flushes and exits), bounded; returns what tcpdump said at its exit.
fn stop_capture((mut child, said): (Child, std::thread::JoinHandle<String>)) -> String {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            assert!(status.success() || status.code().is_none(), "tcpdump: {status}");
            return said.join().unwrap_or_default();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("tcpdump did not stop within 10 s of SIGINT");
}

/// One UDP datagram of the capture: its ports and where its payload is in the file.
#[derive(Debug, Clone, Copy)]
struct Udp {
    src: u16,
    dst: u16,
    at: usize,
    len: usize,
}

/// The UDP/IPv4 datagrams of a classic pcap file (tcpdump's `-w`), in order.
fn parse_pcap(bytes: &[u8]) -> Vec<Udp> {
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    assert!(
        matches!(u32_at(0), 0xa1b2_c3d4 | 0xa1b2_3c4d),
        "a little-endian pcap file"
    );
    let link = match u32_at(20) {
        1 => 14,   // Ethernet (lo on Linux)
        113 => 16, // Linux cooked
        276 => 20, // Linux cooked v2
        0 => 4,    // BSD loopback
        other => panic!("unexpected link type {other}"),
    };
    let mut packets = Vec::new();
    let mut at = 24;
    while at + 16 <= bytes.len() {
        let incl = u32_at(at + 8) as usize;
        let data = at + 16;
        assert!(data + incl <= bytes.len(), "a whole record");
        let ip = data + link;
        let ihl = usize::from(bytes[ip] & 0x0F) * 4;
        assert_eq!(bytes[ip] >> 4, 4, "IPv4 on loopback");
        assert_eq!(bytes[ip + 9], 17, "UDP (the capture filter says udp)");
        let udp = ip + ihl;
        let port = |o: usize| u16::from_be_bytes([bytes[udp + o], bytes[udp + o + 1]]);
        let len = usize::from(port(4)) - 8;
        assert!(udp + 8 + len <= data + incl, "the whole datagram was captured (-s 0)");
        packets.push(Udp {
            src: port(0),
            dst: port(2),
            at: udp + 8,
            len,
        });
        at = data + incl;
    }
    packets
}

const FIELDS: [&str; 21] = [
    "frame.number",
    "frame.protocols",
    "_ws.col.Info",
    "twinloop_io.kind",
    "twinloop_io.frame",
    "twinloop_io.session",
    "twinloop_io.node_id",
    "twinloop_io.index",
    "twinloop_io.epoch",
    "twinloop_io.payload_len",
    "twinloop_io.crc.status",
    "twinloop_sync.type",
    "twinloop_sync.header.node_id",
    "twinloop_sync.header.epoch",
    "twinloop_sync.header.frame",
    "twinloop_sync.header.seq",
    "twinloop_sync.crc.status",
    "twinloop_sync.mac.status",
    "twinloop_sync.heartbeat.fingerprint.keyed",
    "_ws.expert.message",
    "_ws.malformed",
];

/// One row of tshark's fields, by field name.
type Row = BTreeMap<&'static str, String>;

/// tshark with the dissector and `prefs` on `pcap`: one row per packet.
fn tshark(tshark: &Path, pcap: &Path, prefs: &[String]) -> Vec<Row> {
    let lua = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/wireshark/twinloop.lua");
    let mut command = Command::new(tshark);
    command.arg("-n").arg("-r").arg(pcap);
    command.arg("-X").arg(format!("lua_script:{}", lua.display()));
    for pref in prefs {
        command.arg("-o").arg(pref);
    }
    command.args([
        "-T",
        "fields",
        "-E",
        "separator=/t",
        "-E",
        "occurrence=a",
        "-E",
        "aggregator=|",
    ]);
    for field in FIELDS {
        command.arg("-e").arg(field);
    }
    let started = Instant::now();
    let out = command.output().expect("tshark runs");
    eprintln!("wireshark: tshark on {} took {:?}", pcap.display(), started.elapsed());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "tshark: {}\n{stderr}", out.status);
    let noise = |l: &&str| !l.trim().is_empty() && !l.contains("Running as user \"root\"");
    let complaints: Vec<&str> = stderr.lines().filter(noise).collect();
    assert!(complaints.is_empty(), "tshark said: {complaints:?}");
    String::from_utf8(out.stdout)
        .expect("UTF-8")
        .lines()
        .map(|line| {
            let values: Vec<&str> = line.split('\t').collect();
            assert_eq!(values.len(), FIELDS.len(), "{line}");
            FIELDS.iter().zip(values).map(|(f, v)| (*f, v.to_string())).collect()
        })
        .collect()
}

fn hex_or_dec(text: &str) -> u64 {
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).unwrap_or_else(|_| panic!("{text}")),
        None => text.parse().unwrap_or_else(|_| panic!("{text}")),
    }
}

/// The variant's name, as the dissector's Info column starts with it.
fn body_name(body: &wire::Body) -> String {
    let debug = format!("{body:?}");
    debug.split([' ', '(', '{']).next().unwrap_or_default().to_string()
}

#[test]
fn wireshark_dissector_reads_every_datagram_of_a_real_pair_and_flags_corruption() {
    let Some((tshark_bin, tcpdump_bin)) = tools() else {
        return;
    };
    let binary = twinloop_demo::binary::locate().expect("the twinloop-demo binary");
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("wireshark-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = RigConfig {
        cycle_ms: 5,
        timing: Timing::HARNESS,
        operator: Operator::scripted(5, 2000),
        progress: false,
        ..RigConfig::new(dir.join("pair"), binary)
    };
    let mut rig = Rig::prepare(config).expect("set-up");
    let ports = Ports::read(&rig.config.dir);
    let key_text = std::fs::read_to_string(rig.config.dir.join("sync.key")).expect("the rig's sync key");
    let key_text = key_text.trim().to_string();
    let pcap = dir.join("pair.pcap");
    let started = Instant::now();
    let capture = start_capture(&tcpdump_bin, &pcap, &ports.filter());

    rig.start_pair().expect("a healthy pair");
    let faults = [
        // A takeover after probes, then the killed node's late join: a state transfer.
        Fault {
            kind: FaultKind::KillPrimary,
            hold_ms: 200,
        },
        // Asked of the backup: SwitchAsk, then request, agree, release, taken.
        Fault {
            kind: FaultKind::SwitchoverViaBackup,
            hold_ms: 0,
        },
        // Lost commits: the backup fetches frames.
        Fault {
            kind: FaultKind::Drop { ppm: 200_000 },
            hold_ms: 300,
        },
    ];
    for (k, fault) in faults.into_iter().enumerate() {
        let record = inject(&mut rig, k, fault).unwrap_or_else(|e| panic!("fault #{k}: {e}"));
        assert!(record.error.is_none(), "fault #{k}: {:?}", record.error);
    }
    // Past frame 512: the primary repeats its source mapping every 256 frames.
    rig.wait(Duration::from_secs(30), "frame 520", |rig| {
        rig.plant.frames_sent() >= 520
    })
    .expect("frames flow");
    rig.drain().expect("the last frames reach the sink");
    drop(rig);
    let said = stop_capture(capture);
    eprintln!(
        "wireshark: run and capture took {:?}; tcpdump: {said}",
        started.elapsed()
    );

    let bytes = std::fs::read(&pcap).expect("the capture");
    let packets = parse_pcap(&bytes);
    assert!(
        packets.len() > 1000,
        "a capture of the run: {} datagrams",
        packets.len()
    );
    let key = AuthKey::derive(key_text.as_bytes());
    let base_prefs = vec![
        format!("twinloop_io.ports:{}", range(&ports.io())),
        format!("twinloop_sync.ports:{}", range(&ports.sync)),
    ];

    // 1. Port registration and the key: every datagram dissected as the node reads it.
    let mut prefs = base_prefs.clone();
    prefs.push(format!("twinloop_sync.key:{key_text}"));
    let rows = tshark(&tshark_bin, &pcap, &prefs);
    assert_eq!(rows.len(), packets.len(), "one row per captured datagram");
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for (row, udp) in rows.iter().zip(&packets) {
        let payload = &bytes[udp.at..udp.at + udp.len];
        let what = format!("packet {} ({} -> {}): {row:?}", row["frame.number"], udp.src, udp.dst);
        assert!(row["_ws.expert.message"].is_empty(), "expert info on {what}");
        assert!(row["_ws.malformed"].is_empty(), "malformed: {what}");
        if ports.sync.contains(&udp.src) || ports.sync.contains(&udp.dst) {
            assert!(row["frame.protocols"].ends_with(":twinloop_sync"), "{what}");
            let envelope = wire::decode(payload, Some(&key)).unwrap_or_else(|e| panic!("the node rejects {what}: {e}"));
            let name = body_name(&envelope.body);
            assert!(row["_ws.col.Info"].starts_with(&format!("{name} ")), "{name}: {what}");
            assert_eq!(
                row["twinloop_sync.header.node_id"],
                envelope.header.node_id.to_string(),
                "{what}"
            );
            assert_eq!(
                hex_or_dec(&row["twinloop_sync.header.epoch"]),
                envelope.header.epoch,
                "{what}"
            );
            assert_eq!(
                hex_or_dec(&row["twinloop_sync.header.frame"]),
                envelope.header.frame,
                "{what}"
            );
            assert_eq!(
                hex_or_dec(&row["twinloop_sync.header.seq"]),
                envelope.header.seq,
                "{what}"
            );
            assert_eq!(row["twinloop_sync.crc.status"], "1", "CRC valid: {what}");
            assert_eq!(row["twinloop_sync.mac.status"], "1", "MAC valid: {what}");
            if name == "Heartbeat" {
                assert_eq!(row["twinloop_sync.heartbeat.fingerprint.keyed"], "1", "{what}");
            }
            *counts.entry(name).or_default() += 1;
        } else {
            assert!(row["frame.protocols"].ends_with(":twinloop_io"), "{what}");
            assert_eq!(row["twinloop_io.crc.status"], "1", "CRC valid: {what}");
            match io_protocol::decode(payload).unwrap_or_else(|e| panic!("the reference decoder rejects {what}: {e:?}"))
            {
                Datagram::Frame(frame) => {
                    assert!(ports.frames.contains(&udp.dst), "{what}");
                    assert_eq!(row["twinloop_io.kind"], "1", "{what}");
                    assert_eq!(hex_or_dec(&row["twinloop_io.frame"]), frame.number, "{what}");
                    assert_eq!(
                        hex_or_dec(&row["twinloop_io.session"]),
                        u64::from(frame.session),
                        "{what}"
                    );
                    assert_eq!(
                        hex_or_dec(&row["twinloop_io.payload_len"]),
                        frame.payload.len() as u64,
                        "{what}"
                    );
                    *counts.entry("I/O frame".into()).or_default() += 1;
                }
                Datagram::Output(output) => {
                    assert!(ports.sinks.contains(&udp.dst), "{what}");
                    assert_eq!(row["twinloop_io.kind"], "2", "{what}");
                    assert_eq!(hex_or_dec(&row["twinloop_io.frame"]), output.frame, "{what}");
                    assert_eq!(hex_or_dec(&row["twinloop_io.epoch"]), output.epoch, "{what}");
                    assert_eq!(row["twinloop_io.index"], output.index.to_string(), "{what}");
                    assert_eq!(row["twinloop_io.node_id"], output.node_id.to_string(), "{what}");
                    assert_eq!(
                        hex_or_dec(&row["twinloop_io.payload_len"]),
                        output.payload.len() as u64,
                        "{what}"
                    );
                    *counts.entry("I/O output".into()).or_default() += 1;
                }
            }
        }
    }
    eprintln!("wireshark: {} datagrams dissected, {counts:?}", rows.len());
    for required in REQUIRED_SYNC_TYPES.iter().chain(&["I/O frame", "I/O output"]) {
        assert!(counts.contains_key(*required), "no {required} in the run: {counts:?}");
    }

    // 2. Heuristics alone (no ports, tried first), no key: the same protocols; tags present
    //    but not verified.
    let prefs = vec![
        "twinloop_io.ports:".to_string(),
        "twinloop_sync.ports:".to_string(),
        "udp.try_heuristic_first:TRUE".to_string(),
    ];
    let heuristic = tshark(&tshark_bin, &pcap, &prefs);
    assert_eq!(heuristic.len(), rows.len());
    for (h, row) in heuristic.iter().zip(&rows) {
        assert_eq!(h["frame.protocols"], row["frame.protocols"], "heuristic: {h:?}");
        assert_eq!(
            h["_ws.col.Info"].split(" [MAC").next(),
            row["_ws.col.Info"].split(" [MAC").next()
        );
        assert!(h["_ws.expert.message"].is_empty(), "{h:?}");
        if row["frame.protocols"].ends_with(":twinloop_sync") {
            assert_eq!(h["twinloop_sync.mac.status"], "2", "not verified without a key: {h:?}");
        }
    }

    // 3. A wrong key: every tag invalid.
    let mut prefs = base_prefs.clone();
    prefs.push("twinloop_sync.key:not-the-pair's-key".into());
    let wrong = tshark(&tshark_bin, &pcap, &prefs);
    for row in wrong
        .iter()
        .filter(|r| r["frame.protocols"].ends_with(":twinloop_sync"))
    {
        assert_eq!(row["twinloop_sync.mac.status"], "0", "{row:?}");
        assert_eq!(row["twinloop_sync.crc.status"], "1", "{row:?}");
        assert!(row["_ws.expert.message"].contains("MAC tag wrong"), "{row:?}");
    }

    // 4. Corruption: a frame's payload byte flipped (its CRC fails); a sync datagram's CRC
    //    flipped (CRC invalid, MAC still valid); a sync datagram's header byte flipped and
    //    its CRC recomputed (CRC valid, MAC invalid: only the key can tell).
    let mut corrupt = bytes.clone();
    let is_sync = |u: &Udp| ports.sync.contains(&u.src) || ports.sync.contains(&u.dst);
    let frame_at = packets
        .iter()
        .position(|u| ports.frames.contains(&u.dst))
        .expect("a frame");
    let crc_at = packets.iter().position(is_sync).expect("a sync datagram");
    let mac_at = packets.iter().skip(crc_at + 1).position(is_sync).expect("another") + crc_at + 1;
    let p = packets[frame_at];
    corrupt[p.at + 16] ^= 0x40;
    let p = packets[crc_at];
    corrupt[p.at + p.len - 1] ^= 0x01;
    let p = packets[mac_at];
    corrupt[p.at + 3] ^= 0x01; // the header's role varint: Primary <-> Starting, Backup <-> 3
    let crc = twinloop::digest::crc32c(&corrupt[p.at..p.at + p.len - 4]);
    corrupt[p.at + p.len - 4..p.at + p.len].copy_from_slice(&crc.to_le_bytes());
    assert!(matches!(
        wire::decode(&corrupt[p.at..p.at + p.len], Some(&key)),
        Err(wire::DecodeError::Unauthenticated)
    ));
    let corrupt_pcap = dir.join("corrupt.pcap");
    std::fs::write(&corrupt_pcap, &corrupt).unwrap();
    let mut prefs = base_prefs.clone();
    prefs.push(format!("twinloop_sync.key:{key_text}"));
    let bad = tshark(&tshark_bin, &corrupt_pcap, &prefs);
    let frame = &bad[frame_at];
    assert!(frame["frame.protocols"].ends_with(":twinloop_io"), "{frame:?}");
    assert_eq!(frame["twinloop_io.crc.status"], "0", "{frame:?}");
    assert!(frame["_ws.expert.message"].contains("CRC-32C mismatch"), "{frame:?}");
    let crc_row = &bad[crc_at];
    assert_eq!(crc_row["twinloop_sync.crc.status"], "0", "{crc_row:?}");
    assert_eq!(crc_row["twinloop_sync.mac.status"], "1", "{crc_row:?}");
    assert!(
        crc_row["_ws.expert.message"].contains("CRC-32C mismatch"),
        "{crc_row:?}"
    );
    let mac_row = &bad[mac_at];
    assert_eq!(mac_row["twinloop_sync.crc.status"], "1", "{mac_row:?}");
    assert_eq!(mac_row["twinloop_sync.mac.status"], "0", "{mac_row:?}");
    assert!(mac_row["_ws.expert.message"].contains("MAC tag wrong"), "{mac_row:?}");
    for (k, row) in bad.iter().enumerate() {
        if ![frame_at, crc_at, mac_at].contains(&k) {
            assert!(
                row["_ws.expert.message"].is_empty(),
                "only the three are flagged: {row:?}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A classic pcap file of UDP/IPv4 datagrams on loopback, `(src port, dst port, payload)`.
fn write_pcap(path: &Path, datagrams: &[(u16, u16, Vec<u8>)]) {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes()); // Ethernet
    for (k, (src, dst, payload)) in datagrams.iter().enumerate() {
        let udp_len = 8 + payload.len();
        let ip_len = 20 + udp_len;
        let record = 14 + ip_len;
        out.extend_from_slice(&(k as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(record as u32).to_le_bytes());
        out.extend_from_slice(&(record as u32).to_le_bytes());
        out.extend_from_slice(&[0; 12]);
        out.extend_from_slice(&[0x08, 0x00]);
        out.extend_from_slice(&[0x45, 0, (ip_len >> 8) as u8, ip_len as u8, 0, 0, 0x40, 0, 64, 17, 0, 0]);
        out.extend_from_slice(&[127, 0, 0, 1, 127, 0, 0, 1]);
        out.extend_from_slice(&src.to_be_bytes());
        out.extend_from_slice(&dst.to_be_bytes());
        out.extend_from_slice(&(udp_len as u16).to_be_bytes());
        out.extend_from_slice(&[0, 0]); // no UDP checksum
        out.extend_from_slice(payload);
    }
    std::fs::write(path, out).expect("write the pcap");
}

/// tshark with the dissector on `pcap`, the fields `fields` of every packet (first
/// occurrence each, the expert messages all).
fn tshark_fields(tshark: &Path, pcap: &Path, prefs: &[String], fields: &[String]) -> Vec<BTreeMap<String, String>> {
    let lua = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/wireshark/twinloop.lua");
    let mut command = Command::new(tshark);
    command.arg("-n").arg("-r").arg(pcap);
    command.arg("-X").arg(format!("lua_script:{}", lua.display()));
    for pref in prefs {
        command.arg("-o").arg(pref);
    }
    command.args([
        "-T",
        "fields",
        "-E",
        "separator=/t",
        "-E",
        "occurrence=a",
        "-E",
        "aggregator=|",
    ]);
    for field in fields {
        command.arg("-e").arg(field);
    }
    let out = command.output().expect("tshark runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "tshark: {}\n{stderr}", out.status);
    let complaints: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.contains("Running as user \"root\""))
        .collect();
    assert!(complaints.is_empty(), "tshark said: {complaints:?}");
    String::from_utf8(out.stdout)
        .expect("UTF-8")
        .lines()
        .map(|line| {
            let values: Vec<&str> = line.split('\t').collect();
            assert_eq!(values.len(), fields.len(), "{line}");
            fields
                .iter()
                .cloned()
                .zip(values.into_iter().map(String::from))
                .collect()
        })
        .collect()
}

/// One message of every body type (and both commit kinds), with field values that take
/// several varint bytes, and what the dissector must show for each field.
fn every_message() -> Vec<(wire::Body, Vec<(&'static str, String)>)> {
    use wire::{Body, Commit, CommitKind, DelayReason, Fingerprint};
    let n = |v: u64| v.to_string();
    let hmi_write = twinloop::hmi::HmiWrite {
        id: twinloop::hmi::WriteId {
            client: 0xC0A8_0001,
            transaction: 65_535,
        },
        tag: 300,
        value: -70_000,
    };
    let ran = Commit {
        frame: 1_000_001,
        kind: CommitKind::Ran {
            input_digest: 0xDEAD_BEEF_0123_4567,
            outputs: 13,
            sent_mask: 0x1FFF,
            output_digest: u64::MAX,
        },
        state_digest: Some(0x0102_0304_0506_0708),
        writes: {
            let mut writes = twinloop::hmi::HmiWrites::EMPTY;
            writes.push(hmi_write);
            writes
        },
    };
    let skipped = Commit {
        frame: 77,
        kind: CommitKind::Skipped { last: 300 },
        state_digest: None,
        writes: Default::default(),
    };
    let ran_fields = |p: &'static str| -> Vec<(&'static str, String)> {
        let f = |s: &'static str| -> &'static str { Box::leak(format!("{p}.{s}").into_boxed_str()) };
        vec![
            (f("frame"), n(1_000_001)),
            (f("kind"), n(0)),
            (f("kind.ran.input_digest"), n(0xDEAD_BEEF_0123_4567)),
            (f("kind.ran.outputs"), n(13)),
            (f("kind.ran.sent_mask"), n(0x1FFF)),
            (f("kind.ran.output_digest"), n(u64::MAX)),
            (f("state_digest.value"), n(0x0102_0304_0506_0708)),
            (f("writes.len"), n(1)),
            (f("writes.client"), n(0xC0A8_0001)),
            (f("writes.transaction"), n(65_535)),
            (f("writes.tag"), n(300)),
            (f("writes.value"), "-70000".to_string()),
        ]
    };
    let chunk: Vec<u8> = (0..1024u32).map(|i| (i % 251) as u8).collect();
    vec![
        (
            Body::Heartbeat {
                nonce: 0x0123_4567_89AB_CDEF,
                priority: 200,
                sent_ns: 1_764_000_000_000_000_000,
                echo_ns: 1_763_999_999_000_000_000,
                echo_hold_ns: 12_345,
                input_frame: 4_000_000,
                input_age_ms: u64::MAX,
                fingerprint: Fingerprint {
                    program: 0xCBF2_9CE4_8422_2325,
                    version: 70_000,
                    settings: 0x1234,
                    keyed: true,
                },
                challenge: 0xFEDC_BA98_7654_3210,
                challenge_echo: 7,
            },
            vec![
                ("heartbeat.nonce", n(0x0123_4567_89AB_CDEF)),
                ("heartbeat.priority", n(200)),
                ("heartbeat.sent_ns", n(1_764_000_000_000_000_000)),
                ("heartbeat.echo_ns", n(1_763_999_999_000_000_000)),
                ("heartbeat.echo_hold_ns", n(12_345)),
                ("heartbeat.input_frame", n(4_000_000)),
                ("heartbeat.input_age_ms", n(u64::MAX)),
                ("heartbeat.fingerprint.program", n(0xCBF2_9CE4_8422_2325)),
                ("heartbeat.fingerprint.version", n(70_000)),
                ("heartbeat.fingerprint.settings", n(0x1234)),
                ("heartbeat.fingerprint.keyed", n(1)),
                ("heartbeat.challenge", n(0xFEDC_BA98_7654_3210)),
                ("heartbeat.challenge_echo", n(7)),
            ],
        ),
        (Body::Probe { id: u32::MAX }, vec![("probe.id", n(u64::from(u32::MAX)))]),
        (Body::ProbeAck { id: 300 }, vec![("probeack.id", n(300))]),
        (Body::Commit(ran), ran_fields("commit.commit")),
        (
            Body::Commit(skipped),
            vec![
                ("commit.commit.frame", n(77)),
                ("commit.commit.kind", n(1)),
                ("commit.commit.kind.skipped.last", n(300)),
            ],
        ),
        (Body::Fetch { frame: 1 << 62 }, vec![("fetch.frame", n(1 << 62))]),
        (
            Body::FrameData {
                commit: ran,
                payload: b"tank input".iter().copied().collect(),
            },
            [
                ran_fields("framedata.commit"),
                vec![
                    ("framedata.payload.len", n(10)),
                    ("framedata.payload", "74616e6b20696e707574".into()),
                ],
            ]
            .concat(),
        ),
        (Body::JoinRequest { id: 9 }, vec![("joinrequest.id", n(9))]),
        (
            Body::TransferBegin {
                id: 9,
                frame: 123_456,
                total_bytes: 70_000,
                chunk_bytes: 1024,
                state_digest: 0xFEED_FACE_CAFE_BEEF,
            },
            vec![
                ("transferbegin.id", n(9)),
                ("transferbegin.frame", n(123_456)),
                ("transferbegin.total_bytes", n(70_000)),
                ("transferbegin.chunk_bytes", n(1024)),
                ("transferbegin.state_digest", n(0xFEED_FACE_CAFE_BEEF)),
            ],
        ),
        (
            Body::Chunk {
                id: 9,
                index: 68,
                bytes: chunk.iter().copied().collect(),
            },
            vec![
                ("chunk.id", n(9)),
                ("chunk.index", n(68)),
                ("chunk.bytes.len", n(1024)),
                ("chunk.bytes", chunk.iter().map(|b| format!("{b:02x}")).collect()),
            ],
        ),
        (
            Body::ChunkAck { id: 9, next: 69 },
            vec![("chunkack.id", n(9)), ("chunkack.next", n(69))],
        ),
        (
            Body::SwitchAsk { id: 5, to: 3 },
            vec![("switchask.id", n(5)), ("switchask.to", n(3))],
        ),
        (
            Body::SwitchRequest { id: 5, to: 3 },
            vec![("switchrequest.id", n(5)), ("switchrequest.to", n(3))],
        ),
        (Body::SwitchAgree { id: 5 }, vec![("switchagree.id", n(5))]),
        (
            Body::SwitchDelay {
                id: 5,
                reason: DelayReason::Lagging,
                lag_frames: 40_000,
            },
            vec![
                ("switchdelay.id", n(5)),
                ("switchdelay.reason", n(1)),
                ("switchdelay.lag_frames", n(40_000)),
            ],
        ),
        (Body::SwitchRefuse { id: 6 }, vec![("switchrefuse.id", n(6))]),
        (
            Body::SwitchRelease { id: 5, frame: 99_999 },
            vec![("switchrelease.id", n(5)), ("switchrelease.frame", n(99_999))],
        ),
        (
            Body::SwitchTaken { id: 5, frame: 99_999 },
            vec![("switchtaken.id", n(5)), ("switchtaken.frame", n(99_999))],
        ),
        (
            Body::SourceMap {
                session: 0xBEEF,
                source_first: 1,
                pair_first: 5_000_000,
            },
            vec![
                ("sourcemap.session", n(0xBEEF)),
                ("sourcemap.source_first", n(1)),
                ("sourcemap.pair_first", n(5_000_000)),
            ],
        ),
        (
            Body::HmiWrite(hmi_write),
            vec![
                ("hmiwrite.client", n(0xC0A8_0001)),
                ("hmiwrite.transaction", n(65_535)),
                ("hmiwrite.tag", n(300)),
                ("hmiwrite.value", "-70000".to_string()),
            ],
        ),
        (
            Body::VoteRequest {
                epoch: 0x302,
                commit_highest: 77_777,
            },
            vec![
                ("voterequest.epoch", n(0x302)),
                ("voterequest.commit_highest", n(77_777)),
            ],
        ),
        (
            Body::Vote {
                epoch: 0x302,
                granted: true,
                commit_highest: 66_666,
                bar: 0x402,
            },
            vec![
                ("vote.epoch", n(0x302)),
                ("vote.granted", n(1)),
                ("vote.commit_highest", n(66_666)),
                ("vote.bar", n(0x402)),
            ],
        ),
        (
            Body::Acks {
                ids: (&[(1_000_001u64, 0u8), (77, 15)][..]).try_into().unwrap(),
            },
            vec![
                ("acks.ids.len", n(2)),
                ("acks.ids.frame", "1000001|77".to_string()),
                ("acks.ids.index", "0|15".to_string()),
            ],
        ),
        (
            Body::CommitAck { frame: 1_000_000 },
            vec![("commitack.frame", n(1_000_000))],
        ),
        (
            Body::Released { frame: u64::MAX },
            vec![("released.frame", n(u64::MAX))],
        ),
    ]
}

/// Every message type, encoded by the node's own encoder with and without a key, on the
/// default ports: each field the dissector shows is the value encoded, the header's too.
/// Then a few thousand corrupted datagrams (bytes flipped, cut, added, CRC recomputed or
/// not), sync and I/O: the dissector calls a datagram bad (an expert error) exactly when
/// the node's decoder rejects it, and never fails itself.
#[test]
fn wireshark_dissector_shows_every_field_of_every_type_and_rejects_what_the_node_rejects() {
    let Some((tshark_bin, _)) = tools() else {
        return;
    };
    use wire::{Envelope, Header, WireRole, WireSync};
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("wireshark-types-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let key_text = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
    let key = AuthKey::derive(key_text.as_bytes());
    let header = Header {
        node_id: 2,
        role: WireRole::Backup,
        epoch: (70_000 << 8) | 1,
        sync: WireSync::Lagging,
        frame: 1_000_000,
        session: 1_764_000_000_123_456_789,
        seq: 300,
        origin: (3 << 8) | 2,
    };
    let header_fields = [
        ("header.node_id", 2u64),
        ("header.role", 2),
        ("header.epoch", (70_000 << 8) | 1),
        ("header.sync", 2),
        ("header.frame", 1_000_000),
        ("header.session", 1_764_000_000_123_456_789),
        ("header.seq", 300),
        ("header.origin", (3 << 8) | 2),
    ];
    let messages = every_message();
    let mut datagrams = Vec::new();
    for keyed in [true, false] {
        for (body, _) in &messages {
            let envelope = Envelope {
                header,
                body: body.clone(),
            };
            let bytes = wire::encode(&envelope, keyed.then_some(&key)).expect("encodes");
            datagrams.push((7101, 7201, bytes.to_vec()));
        }
    }
    let mut fields: Vec<String> = [
        "_ws.col.Info",
        "_ws.expert.message",
        "twinloop_sync.crc.status",
        "twinloop_sync.mac.status",
    ]
    .map(String::from)
    .to_vec();
    fields.extend(header_fields.iter().map(|(f, _)| format!("twinloop_sync.{f}")));
    for (_, expected) in &messages {
        fields.extend(expected.iter().map(|(f, _)| format!("twinloop_sync.{f}")));
    }
    fields.sort();
    fields.dedup();
    let pcap = dir.join("types.pcap");
    write_pcap(&pcap, &datagrams);
    // With the key set, then without: tags valid, then present but not verified; an
    // untagged message is right without a key and flagged with one (the node rejects it).
    for with_key in [true, false] {
        let prefs = if with_key {
            vec![format!("twinloop_sync.key:{key_text}")]
        } else {
            Vec::new()
        };
        let rows = tshark_fields(&tshark_bin, &pcap, &prefs, &fields);
        assert_eq!(rows.len(), datagrams.len());
        for (k, row) in rows.iter().enumerate() {
            let (body, expected) = &messages[k % messages.len()];
            let keyed = k < messages.len();
            let what = format!("{} (keyed {keyed}, key set {with_key}): {row:?}", body_name(body));
            assert!(
                row["_ws.col.Info"].starts_with(&format!("{} ", body_name(body))),
                "{what}"
            );
            assert_eq!(row["twinloop_sync.crc.status"], "1", "{what}");
            let (mac, expert) = match (keyed, with_key) {
                (true, true) => ("1", ""),
                (true, false) => ("2", ""),
                (false, false) => ("3", ""),
                (false, true) => ("3", "No MAC tag, but a key is set in the preferences"),
            };
            assert_eq!(row["twinloop_sync.mac.status"], mac, "{what}");
            assert_eq!(row["_ws.expert.message"], expert, "{what}");
            for (field, value) in &header_fields {
                let shown = &row[&format!("twinloop_sync.{field}")];
                assert_eq!(hex_or_dec(shown), *value, "{field}: {what}");
            }
            for (field, value) in expected {
                let shown = &row[&format!("twinloop_sync.{field}")];
                if value.len() > 20 || field.ends_with("payload") || value.starts_with('-') || value.contains('|') {
                    assert_eq!(shown, value, "{field}: {what}");
                } else {
                    let value: u64 = value.parse().unwrap();
                    assert_eq!(hex_or_dec(shown), value, "{field}: {what}");
                }
            }
        }
    }

    // The I/O protocol's examples of docs/PROTOCOL.md (a frame of session 0x5EED with the
    // tank input, the tank command, an alarm event), on the default ports, field by field.
    let tank_input = [
        1, 0, 0x31, 0, 0xe0, 0x93, 4, 0, 0x2c, 1, 0, 0, 0, 0, 0, 0, 0x96, 0, 0, 0,
    ];
    let tank_command = [
        1, 9, 0x6c, 2, 0, 0, 0, 0, 0x40, 0x42, 0x0f, 0, 0xe0, 0x93, 4, 0, 0x39, 0x30, 0, 0, 0, 0, 0, 0,
    ];
    let tank_alarm = [2, 1, 1, 0, 0x40, 0x77, 0x1b, 0];
    let mut buf = [0u8; 600];
    let mut io_examples = Vec::new();
    let len = io_protocol::encode_session_frame(0x5EED, 1, &tank_input, &mut buf).unwrap();
    assert_eq!(&buf[len - 4..len], &[0x78, 0x7d, 0x55, 0x53], "the docs' CRC");
    io_examples.push((40000, 7301, buf[..len].to_vec()));
    let len = io_protocol::encode_output(1, 0x101, 42, 0, &tank_command, &mut buf).unwrap();
    io_examples.push((40001, 7500, buf[..len].to_vec()));
    let len = io_protocol::encode_output(2, 0x201, 43, 1, &tank_alarm, &mut buf).unwrap();
    io_examples.push((40002, 7500, buf[..len].to_vec()));
    // The level output example of docs/PROTOCOL.md (kind 3, key 7).
    let level = twinloop::OutputKind::Level { key: 7 };
    let tag_write = [0x01, 0xe6, 0x0c, 0x9d, 0x96, 0x07, 0x00, 0x01];
    let len = io_protocol::encode_output_kind(2, 0x202, 43, 1, level, &tag_write, &mut buf).unwrap();
    assert_eq!(&buf[len - 4..len], &[0xea, 0x95, 0x29, 0xde], "the docs' CRC");
    io_examples.push((40003, 7500, buf[..len].to_vec()));
    let io_expected: [&[(&str, &str)]; 4] = [
        &[
            ("magic", "TL"),
            ("version", "1"),
            ("kind", "1"),
            ("payload_len", "20"),
            ("session", "0x5eed"),
            ("frame", "1"),
            ("crc", "0x53557d78"),
            ("crc.status", "1"),
            ("tank.layout", "1"),
            ("tank.digital", "0x0031"),
            ("tank.digital.pump_running", "1"),
            ("tank.digital.suction_low", "0"),
            ("tank.digital.auto", "1"),
            ("tank.digital.estop_ok", "1"),
            ("tank.level_um", "300000"),
            ("tank.pump_flow_ml_per_s", "300"),
            ("tank.setpoint_um", "0"),
            ("tank.demand_flow_ml_per_s", "150"),
        ],
        &[
            ("kind", "2"),
            ("payload_len", "24"),
            ("node_id", "1"),
            ("index", "0"),
            ("epoch", "0x0000000000000101"),
            ("epoch.term", "1"),
            ("epoch.node", "1"),
            ("frame", "42"),
            ("crc.status", "1"),
            ("tank.output_kind", "1"),
            ("tank.flags", "0x09"),
            ("tank.flags.pump_run", "1"),
            ("tank.flags.horn", "0"),
            ("tank.flags.auto", "1"),
            ("tank.pump_speed_permille", "620"),
            ("tank.alarms_latched", "0x0000"),
            ("tank.setpoint_um", "1000000"),
            ("tank.level_um", "300000"),
            ("tank.totalizer_ml", "12345"),
        ],
        &[
            ("node_id", "2"),
            ("index", "1"),
            ("epoch.term", "2"),
            ("frame", "43"),
            ("crc.status", "1"),
            ("tank.output_kind", "2"),
            ("tank.alarm", "1"),
            ("tank.event", "1"),
            ("tank.level_um", "1800000"),
        ],
        &[
            ("kind", "3"),
            ("payload_len", "8"),
            ("node_id", "2"),
            ("index", "1"),
            ("epoch.term", "2"),
            ("frame", "43"),
            ("key", "7"),
            ("crc.status", "1"),
        ],
    ];
    let pcap = dir.join("io.pcap");
    write_pcap(&pcap, &io_examples);
    let mut fields: Vec<String> = vec!["_ws.expert.message".into(), "frame.protocols".into()];
    for expected in io_expected {
        fields.extend(expected.iter().map(|(f, _)| format!("twinloop_io.{f}")));
    }
    fields.sort();
    fields.dedup();
    let rows = tshark_fields(&tshark_bin, &pcap, &[], &fields);
    assert_eq!(rows.len(), io_expected.len());
    for (row, expected) in rows.iter().zip(io_expected) {
        assert!(row["frame.protocols"].ends_with(":twinloop_io"), "{row:?}");
        assert!(row["_ws.expert.message"].is_empty(), "{row:?}");
        for (field, value) in expected {
            // Each field occurs once in these datagrams.
            let shown = row[&format!("twinloop_io.{field}")]
                .split('|')
                .next()
                .unwrap_or_default()
                .to_string();
            assert_eq!(shown, *value, "twinloop_io.{field}: {row:?}");
        }
    }

    // Acks (kind 4, sink → node, issue 22): docs/PROTOCOL.md's example (untagged), the same
    // ids tagged with the ack key, a wrong tag, and one of 32 ids, from the sink's port.
    let ack_text = "ack secret of the plant gateway";
    let ack_key = io_protocol::AckKey::derive(ack_text.as_bytes());
    let mut acks = Vec::new();
    let len = io_protocol::encode_ack(0x5EED, 7, &[(42, 0), (43, 1)], None, &mut buf).unwrap();
    assert_eq!(&buf[len - 4..len], &[0x51, 0x2f, 0x91, 0xf5], "the docs' CRC");
    acks.push((7500, 40010, buf[..len].to_vec()));
    let len = io_protocol::encode_ack(0x5EED, 8, &[(42, 0), (43, 1)], Some(&ack_key), &mut buf).unwrap();
    acks.push((7500, 40010, buf[..len].to_vec()));
    let other = io_protocol::AckKey::derive(b"a guess");
    let len = io_protocol::encode_ack(0x5EED, 9, &[(42, 0), (43, 1)], Some(&other), &mut buf).unwrap();
    acks.push((7500, 40010, buf[..len].to_vec()));
    let many: Vec<(u64, u8)> = (0..32).map(|i| (1_000_000_000_000 + i, (i % 16) as u8)).collect();
    let len = io_protocol::encode_ack(u64::MAX - 1, u64::MAX, &many, Some(&ack_key), &mut buf).unwrap();
    assert_eq!(len, io_protocol::ACK_DATAGRAM_MAX);
    acks.push((7500, 40010, buf[..len].to_vec()));
    let pcap = dir.join("acks.pcap");
    write_pcap(&pcap, &acks);
    let ack_fields: Vec<String> = [
        "_ws.col.Info",
        "_ws.expert.message",
        "frame.protocols",
        "twinloop_io.kind",
        "twinloop_io.ack.count",
        "twinloop_io.ack.flags",
        "twinloop_io.ack.flags.tagged",
        "twinloop_io.ack.reserved",
        "twinloop_io.ack.session",
        "twinloop_io.ack.seq",
        "twinloop_io.frame",
        "twinloop_io.index",
        "twinloop_io.ack.tag.status",
        "twinloop_io.crc.status",
    ]
    .map(String::from)
    .to_vec();
    let ids_42_43 = ("42|43", "0|1");
    let many_frames = many.iter().map(|(f, _)| f.to_string()).collect::<Vec<_>>().join("|");
    let many_indices = many.iter().map(|(_, i)| i.to_string()).collect::<Vec<_>>().join("|");
    for with_key in [true, false] {
        let prefs = if with_key {
            vec![format!("twinloop_io.ack_key:{ack_text}")]
        } else {
            Vec::new()
        };
        let rows = tshark_fields(&tshark_bin, &pcap, &prefs, &ack_fields);
        assert_eq!(rows.len(), acks.len());
        // (flags, seq, frames, indices, tag status, expert) per datagram.
        let expected: [(&str, &str, &str, &str, &str, &str); 4] = [
            (
                "0x00",
                "7",
                ids_42_43.0,
                ids_42_43.1,
                "3",
                if with_key {
                    "No ack tag, but a key is set in the preferences"
                } else {
                    ""
                },
            ),
            (
                "0x01",
                "8",
                ids_42_43.0,
                ids_42_43.1,
                if with_key { "1" } else { "2" },
                "",
            ),
            (
                "0x01",
                "9",
                ids_42_43.0,
                ids_42_43.1,
                if with_key { "0" } else { "2" },
                if with_key {
                    "Ack tag wrong for the key in the preferences"
                } else {
                    ""
                },
            ),
            (
                "0x01",
                "18446744073709551615",
                &many_frames,
                &many_indices,
                if with_key { "1" } else { "2" },
                "",
            ),
        ];
        for (k, (row, (flags, seq, frames, indices, tag, expert))) in rows.iter().zip(expected).enumerate() {
            let what = format!("ack {k} (key set {with_key}): {row:?}");
            assert!(row["frame.protocols"].ends_with(":twinloop_io"), "{what}");
            assert!(row["_ws.col.Info"].starts_with("Ack session 0x"), "{what}");
            assert_eq!(row["twinloop_io.kind"], "4", "{what}");
            assert_eq!(row["twinloop_io.ack.flags"], flags, "{what}");
            assert_eq!(
                row["twinloop_io.ack.flags.tagged"],
                if flags == "0x01" { "1" } else { "0" },
                "{what}"
            );
            assert_eq!(row["twinloop_io.ack.reserved"], "0", "{what}");
            assert_eq!(row["twinloop_io.ack.seq"], seq, "{what}");
            assert_eq!(row["twinloop_io.frame"], frames, "{what}");
            assert_eq!(row["twinloop_io.index"], indices, "{what}");
            assert_eq!(
                row["twinloop_io.ack.count"],
                (frames.split('|').count()).to_string(),
                "{what}"
            );
            assert_eq!(row["twinloop_io.ack.tag.status"], tag, "{what}");
            assert_eq!(row["twinloop_io.crc.status"], "1", "{what}");
            assert_eq!(row["_ws.expert.message"], expert, "{what}");
            let session = if k == 3 { u64::MAX - 1 } else { 0x5EED };
            assert_eq!(hex_or_dec(&row["twinloop_io.ack.session"]), session, "{what}");
        }
    }

    // Corruptions, sync and I/O, judged against the node's decoders.
    let mut io = Vec::new();
    let mut buf = [0u8; 600];
    let len = io_protocol::encode_session_frame(
        0x5EED,
        42,
        &[
            1, 0, 0x31, 0, 0xe0, 0x93, 4, 0, 0x2c, 1, 0, 0, 0, 0, 0, 0, 0x96, 0, 0, 0,
        ],
        &mut buf,
    )
    .unwrap();
    io.push(buf[..len].to_vec());
    let len = io_protocol::encode_output(1, 0x101, 42, 0, &[1; 24], &mut buf).unwrap();
    io.push(buf[..len].to_vec());
    let len = io_protocol::encode_output(2, 0x201, 43, 3, &[2, 1, 1, 0, 0x40, 0x77, 0x1b, 0], &mut buf).unwrap();
    io.push(buf[..len].to_vec());
    // Acks, tagged (the ack key is set below) and untagged.
    io.extend(acks.iter().take(2).map(|(_, _, bytes)| bytes.clone()));
    let mut rng = twinloop::Rng::new(0x5EED_F00D);
    let mut cases = Vec::new();
    for _ in 0..3000 {
        let sync = rng.chance(2, 3);
        let mut bytes = if sync {
            datagrams[rng.below(datagrams.len() as u64) as usize].2.clone()
        } else {
            io[rng.below(io.len() as u64) as usize].clone()
        };
        match rng.below(4) {
            0 => {
                for _ in 0..=rng.below(3) {
                    let at = rng.below(bytes.len() as u64) as usize;
                    bytes[at] ^= 1 << rng.below(8);
                }
            }
            1 => bytes.truncate(rng.below(bytes.len() as u64 + 1) as usize),
            2 => bytes.extend((0..=rng.below(8)).map(|_| rng.next_u64() as u8)),
            _ => {
                let at = rng.below(bytes.len() as u64) as usize;
                bytes[at] = rng.next_u64() as u8;
            }
        }
        // Half the time the CRC is made right again, so the decoders behind it are tried.
        if bytes.len() >= 6 && rng.chance(1, 2) {
            let n = bytes.len();
            let crc = twinloop::digest::crc32c(&bytes[..n - 4]);
            bytes[n - 4..].copy_from_slice(&crc.to_le_bytes());
        }
        let accepted = if sync {
            wire::decode(&bytes, Some(&key)).is_ok()
        } else if bytes.get(3) == Some(&io_protocol::KIND_ACK) {
            io_protocol::decode_ack(&bytes, Some(&ack_key)).is_ok()
        } else {
            io_protocol::decode(&bytes).is_ok()
        };
        let ports = if sync { (7101, 7201) } else { (40000, 7301) };
        cases.push((ports.0, ports.1, bytes, accepted));
    }
    let pcap = dir.join("corrupt.pcap");
    let datagrams: Vec<(u16, u16, Vec<u8>)> = cases.iter().map(|(s, d, b, _)| (*s, *d, b.clone())).collect();
    write_pcap(&pcap, &datagrams);
    let fields = ["frame.protocols", "_ws.expert.message", "_ws.expert.severity"].map(String::from);
    let prefs = [
        format!("twinloop_sync.key:{key_text}"),
        format!("twinloop_io.ack_key:{ack_text}"),
    ];
    let rows = tshark_fields(&tshark_bin, &pcap, &prefs, &fields);
    assert_eq!(rows.len(), cases.len());
    let mut accepted_count = 0;
    for (row, (_, dst, bytes, accepted)) in rows.iter().zip(&cases) {
        let what = format!("{} bytes {:02x?}: {row:?}", bytes.len(), bytes);
        let proto = if *dst == 7301 { ":twinloop_io" } else { ":twinloop_sync" };
        if bytes.is_empty() {
            // An empty UDP datagram reaches no dissector.
            assert!(!accepted, "{what}");
            continue;
        }
        assert!(row["frame.protocols"].ends_with(proto), "{what}");
        assert!(!row["_ws.expert.message"].contains("Lua Error"), "{what}");
        // Expert severity "error" is 0x00800000; the I/O dissector's index warning is not one.
        let flagged = row["_ws.expert.severity"].split('|').any(|s| s == "8388608");
        assert_eq!(
            flagged,
            !accepted,
            "the node {} it: {what}",
            if *accepted { "accepts" } else { "rejects" }
        );
        accepted_count += usize::from(*accepted);
    }
    // Each boundary of the decoders, on both sides, without a key: varints at their
    // longest (last byte at its limit and one above), bools and option tags, enum and
    // variant indices, byte vectors at their bound and one above, bytes left over, a
    // truncated body, flags and versions, I/O lengths and frame 0. The node's decoder is
    // the oracle; the cases are built so that it accepts one side and rejects the other.
    let boundaries = boundary_cases();
    let pcap = dir.join("boundaries.pcap");
    let datagrams: Vec<(u16, u16, Vec<u8>)> = boundaries
        .iter()
        .map(|(sync, bytes)| {
            if *sync {
                (7101, 7201, bytes.clone())
            } else {
                (40000, 7301, bytes.clone())
            }
        })
        .collect();
    write_pcap(&pcap, &datagrams);
    let rows = tshark_fields(&tshark_bin, &pcap, &[], &fields);
    assert_eq!(rows.len(), boundaries.len());
    let mut boundary_accepted = 0;
    for (row, (sync, bytes)) in rows.iter().zip(&boundaries) {
        let accepted = if *sync {
            wire::decode(bytes, None).is_ok()
        } else {
            io_protocol::decode(bytes).is_ok()
        };
        let what = format!("{} bytes {:02x?}: {row:?}", bytes.len(), bytes);
        assert!(!row["_ws.expert.message"].contains("Lua Error"), "{what}");
        let flagged = row["_ws.expert.severity"].split('|').any(|s| s == "8388608");
        assert_eq!(
            flagged,
            !accepted,
            "the node {} it: {what}",
            if accepted { "accepts" } else { "rejects" }
        );
        boundary_accepted += usize::from(accepted);
    }
    assert!(
        boundary_accepted * 4 > boundaries.len() && boundary_accepted * 4 < boundaries.len() * 3,
        "both sides of the boundaries: {boundary_accepted} of {}",
        boundaries.len()
    );
    eprintln!(
        "wireshark: {} messages ({} body types, both commit kinds) x2 shown field by field; {} corrupted datagrams judged as the node judges them ({} of them accepted); {} boundary cases likewise ({} accepted)",
        messages.len(),
        messages.iter().map(|(body, _)| body_name(body)).collect::<std::collections::BTreeSet<_>>().len(),
        cases.len(),
        accepted_count,
        boundaries.len(),
        boundary_accepted
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn varint(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (v & 0x7F) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// A sync datagram without a tag around `body` (header and body bytes), CRC appended.
fn sync_datagram(version: u8, flags: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![version, flags];
    out.extend_from_slice(body);
    let crc = twinloop::digest::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// `(sync, datagram)` pairs on both sides of every decoder boundary (see the caller).
fn boundary_cases() -> Vec<(bool, Vec<u8>)> {
    let header = |role: u8, sync: u8| -> Vec<u8> {
        let mut h = vec![1, role];
        h.extend(varint(0x101));
        h.push(sync);
        h.extend(varint(1000));
        h.extend(varint(7));
        h.extend(varint(42));
        h.extend(varint(0x101));
        h
    };
    let with = |parts: &[&[u8]]| -> Vec<u8> { parts.concat() };
    let h = header(1, 3);
    let ran = |tag: &[u8]| -> Vec<u8> { with(&[&varint(5), &[0], &[0], &[0], &[0], &[0], tag]) };
    let mut bodies: Vec<Vec<u8>> = Vec::new();
    // Varints at their longest: u64 (10 bytes, last <= 1), u32 (5, <= 15), u16 (3, <= 3).
    for last in [0x01, 0x02, 0x7f] {
        bodies.push(with(&[&h, &[4], &[0xff; 9], &[last]]));
    }
    for last in [0x0f, 0x10] {
        bodies.push(with(&[&h, &[1], &[0xff; 4], &[last]]));
    }
    for last in [0x03, 0x04] {
        bodies.push(with(&[&h, &[17], &[0xff, 0xff, last], &[1], &[1]]));
    }
    // A varint longer than its type allows, and one cut by the body's end.
    bodies.push(with(&[&h, &[4], &[0x80; 10], &[0]]));
    bodies.push(with(&[&h, &[4], &[0x80, 0x80]]));
    // bool (Fingerprint.keyed) 0, 1, 2, then the challenge and its echo.
    for keyed in [0, 1, 2] {
        bodies.push(with(&[&h, &[0], &[1, 0, 0, 0, 0, 0, 0, 0, 0, 0], &[keyed], &[0, 0]]));
    }
    // Option (Commit.state_digest) None, Some, tag 2; commit kinds 0, 1, 2.
    bodies.push(with(&[&h, &[3], &ran(&[0])]));
    bodies.push(with(&[&h, &[3], &ran(&[1, 9])]));
    bodies.push(with(&[&h, &[3], &ran(&[2, 9])]));
    bodies.push(with(&[&h, &[3], &varint(5), &[1], &varint(9), &[0]]));
    bodies.push(with(&[&h, &[3], &varint(5), &[2], &varint(9), &[0]]));
    // Enums: role 2 and 3, sync 3 and 4, delay reason 1 and 2; body variants 17 and 18.
    for (role, sync) in [(2, 3), (3, 3), (1, 4)] {
        bodies.push(with(&[&header(role, sync), &[1], &[5]]));
    }
    for reason in [1, 2] {
        bodies.push(with(&[&h, &[13], &[5], &[reason], &[0]]));
    }
    bodies.push(with(&[&h, &[17], &[1], &[1], &[1]]));
    bodies.push(with(&[&h, &[18], &[1], &[1], &[1]]));
    // The last body variant (23 Released) and one past it.
    bodies.push(with(&[&h, &[23], &[1]]));
    bodies.push(with(&[&h, &[24], &[1]]));
    // Byte vectors at their bound and one above: FrameData.payload 512, Chunk.bytes 1024;
    // a length as a huge varint.
    for n in [512usize, 513] {
        bodies.push(with(&[&h, &[5], &ran(&[0]), &varint(n as u64), &vec![7; n]]));
    }
    for n in [1024usize, 1025] {
        bodies.push(with(&[&h, &[8], &[1], &[0], &varint(n as u64), &vec![7; n]]));
    }
    bodies.push(with(&[&h, &[8], &[1], &[0], &[0xff; 9], &[0x01]]));
    bodies.push(with(&[&h, &[8], &[1], &[0], &varint(3), &[7, 7]]));
    // Bytes left over after a whole message; the header alone; nothing.
    bodies.push(with(&[&h, &[1], &[5]]));
    bodies.push(with(&[&h, &[1], &[5], &[0]]));
    bodies.push(h.clone());
    let v = wire::WIRE_VERSION;
    let mut cases: Vec<(bool, Vec<u8>)> = bodies.iter().map(|b| (true, sync_datagram(v, 0, b))).collect();
    cases.push((true, sync_datagram(v, 0, &[])));
    // Flags and versions, CRC right: flags 2, a tag flag on a datagram too short for one,
    // the version before (3: no switchover target, HMI writes or votes) and the one after.
    let probe = with(&[&h, &[1], &[5]]);
    cases.push((true, sync_datagram(v, 2, &probe)));
    cases.push((true, sync_datagram(v, 1, &[1, 1])));
    cases.push((true, sync_datagram(v - 1, 0, &probe)));
    cases.push((true, sync_datagram(v + 1, 0, &probe)));
    // Lengths: 1200 bytes and 1201 (a Chunk padded to them; 1200 is still malformed as
    // the chunk cannot hold the rest, so a valid 1,0xx-byte datagram stands beside it).
    let mut long = sync_datagram(v, 0, &with(&[&h, &[8], &[1], &[0], &varint(1024), &[7; 1024]]));
    long.resize(1200, 0);
    cases.push((true, long.clone()));
    long.push(0);
    cases.push((true, long));

    // I/O: the docs' frame, then each check around it, the CRC made right each time.
    let crc_fixed = |mut d: Vec<u8>| -> Vec<u8> {
        if d.len() >= 4 {
            let n = d.len();
            let crc = twinloop::digest::crc32c(&d[..n - 4]);
            d[n - 4..].copy_from_slice(&crc.to_le_bytes());
        }
        d
    };
    let mut buf = [0u8; 600];
    let n = io_protocol::encode_session_frame(0x5EED, 42, &[1; 20], &mut buf).unwrap();
    let frame = buf[..n].to_vec();
    let n = io_protocol::encode_output(1, 0x101, 42, 15, &[1; 8], &mut buf).unwrap();
    let output = buf[..n].to_vec();
    let edit = |d: &[u8], at: usize, byte: u8| -> Vec<u8> {
        let mut d = d.to_vec();
        d[at] = byte;
        crc_fixed(d)
    };
    cases.push((false, frame.clone()));
    cases.push((false, output.clone()));
    cases.push((false, edit(&output, 7, 16))); // index 16: accepted (a warning)
    cases.push((false, edit(&frame, 2, 2))); // version 2
    cases.push((false, edit(&frame, 3, 3))); // kind 3
    cases.push((false, edit(&frame, 0, b'X'))); // magic
    cases.push((false, edit(&frame, 4, 21))); // payload_len one above the length
    cases.push((false, edit(&frame, 8, 0))); // frame 0 (42 was its only non-zero byte)
    cases.push((false, edit(&output, 16, 0))); // output of frame 0
    let mut big = vec![0x54, 0x4c, 1, 1, 0, 2, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0];
    big.extend(vec![0; 512 + 4]);
    cases.push((false, crc_fixed(big.clone()))); // payload_len 512: the largest frame
    big[4..6].copy_from_slice(&513u16.to_le_bytes());
    big.insert(20, 0);
    cases.push((false, crc_fixed(big))); // 513: too long
    let mut out65 = vec![
        0x54, 0x4c, 1, 2, 65, 0, 1, 0, 1, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0,
    ];
    out65.extend(vec![0; 65 + 4]);
    cases.push((false, crc_fixed(out65)));
    cases.push((false, frame[..7].to_vec())); // shorter than 8
    cases.push((false, crc_fixed(frame[..19].to_vec()))); // shorter than a frame's header + CRC
    cases
}
