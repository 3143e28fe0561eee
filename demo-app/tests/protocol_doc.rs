//! docs/PROTOCOL.md read by the code it documents: the tank program's worked trace is
//! recomputed by the program, and the Python gateway of the document is run (when
//! `python3` is installed) against the Rust decoder and the document's examples.
// A test process spawns python3 and reads the document from disk.
#![allow(clippy::disallowed_methods)]

use core::time::Duration;
use std::io::Write;
use std::process::{Command, Stdio};
use twinloop::app::{App, Frame, Outbox};
use twinloop::io_protocol::{self, DecodeError};
use twinloop::Gateway;
use twinloop_demo::layout::{AlarmEventKind, OutputMessage, TankInputs};
use twinloop_demo::{TankApp, TankParams};

const DOC: &str = include_str!("../../docs/PROTOCOL.md");

/// The body of the first fenced block opened by `fence` (e.g. "```python").
fn block(fence: &str) -> &'static str {
    let start = DOC
        .find(fence)
        .unwrap_or_else(|| panic!("no `{fence}` block in PROTOCOL.md"))
        + fence.len();
    let body = &DOC[start..];
    let body = &body[body.find('\n').expect("fence line ends") + 1..];
    &body[..body.find("\n```").expect("block is closed")]
}

fn hex_example(name: &str) -> Vec<u8> {
    io_protocol::parse_hex(block(&format!("```hex example={name}"))).expect("valid hex")
}

fn number(token: &str) -> u64 {
    match token.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => token.parse(),
    }
    .unwrap_or_else(|_| panic!("not a number: {token}"))
}

#[test]
fn protocol_doc_tank_trace_is_what_the_program_computes() {
    let mut app = TankApp::new(TankParams::default());
    let mut lines = 0;
    for line in block("```text example=tank-trace").lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        lines += 1;
        let parts: Vec<&str> = line.split('|').collect();
        assert_eq!(parts.len(), 3, "three parts in `{line}`");
        let inputs: Vec<&str> = parts[0].split_whitespace().collect();
        let frame = number(inputs[0]);
        let payload = if inputs[1] == "bad" {
            b"garbage".to_vec()
        } else {
            TankInputs {
                digital: number(inputs[1]) as u16,
                level_um: number(inputs[2]) as u32,
                pump_flow_ml_per_s: number(inputs[3]) as u32,
                setpoint_um: number(inputs[4]) as u32,
                demand_flow_ml_per_s: 0,
            }
            .encode()
            .to_vec()
        };
        let mut outbox = Outbox::new();
        app.step(
            Frame {
                number: frame,
                payload: &payload,
            },
            &mut outbox,
        );
        let outputs = outbox.as_slice();
        let Ok(OutputMessage::Command(c)) = OutputMessage::decode(&outputs[0]) else {
            panic!("frame {frame}: output 0 is not a command");
        };
        let got: Vec<u64> = [
            u64::from(c.flags),
            u64::from(c.pump_speed_permille),
            u64::from(c.alarms_latched),
            u64::from(c.alarms_unacked),
            u64::from(c.setpoint_um),
            u64::from(c.level_um),
            c.totalizer_ml,
        ]
        .to_vec();
        let want: Vec<u64> = parts[1].split_whitespace().map(number).collect();
        assert_eq!(
            got, want,
            "frame {frame}: flags speed latched unacked setpoint level totalizer"
        );
        let events: Vec<String> = outputs[1..]
            .iter()
            .map(|o| match OutputMessage::decode(o) {
                Ok(OutputMessage::AlarmEvent(e)) => {
                    let kind = match e.kind {
                        AlarmEventKind::Raised => "raised",
                        AlarmEventKind::Acknowledged => "acknowledged",
                        AlarmEventKind::Cleared => "cleared",
                    };
                    format!("{kind}:{}", e.alarm)
                }
                other => panic!("frame {frame}: not an alarm event: {other:?}"),
            })
            .collect();
        let want: Vec<String> = parts[2].split_whitespace().map(String::from).collect();
        assert_eq!(events, want, "frame {frame}: events in order");
    }
    assert!(lines >= 8, "the trace has {lines} lines");
}

/// The counter name the document's table gives each error.
fn counter(e: DecodeError) -> &'static str {
    match e {
        DecodeError::TooShort => "too_short",
        DecodeError::TooLong => "too_long",
        DecodeError::BadMagic => "bad_magic",
        DecodeError::UnknownVersion(_) => "unknown_version",
        DecodeError::UnknownKind(_) => "unknown_kind",
        DecodeError::WrongKind(_) => "wrong_kind",
        DecodeError::PayloadTooLong(_) => "payload_too_long",
        DecodeError::LengthMismatch => "length_mismatch",
        DecodeError::BadChecksum => "bad_checksum",
        DecodeError::ReservedNotZero => "reserved_not_zero",
        DecodeError::FrameZero => "frame_zero",
        // #[non_exhaustive]: an error added later needs its row in the table, and here.
        other => panic!("{other:?} has no counter name in docs/PROTOCOL.md's table"),
    }
}

/// Rewrites the CRC of a datagram (its last 4 bytes) after a change.
fn seal(mut d: Vec<u8>) -> Vec<u8> {
    let n = d.len() - 4;
    let crc = twinloop::digest::crc32c(&d[..n]);
    d[n..].copy_from_slice(&crc.to_le_bytes());
    d
}

/// Datagrams that exercise every row of the check table, valid ones with odd fields
/// among them.
fn vectors() -> Vec<Vec<u8>> {
    let output = hex_example("output");
    let level = hex_example("level");
    let frame = hex_example("frame");
    let mut all = vec![output.clone(), level.clone(), frame.clone()];
    for example in [&output, &level] {
        for len in 0..example.len() {
            all.push(example[..len].to_vec());
        }
        for i in 0..example.len() {
            for bit in 0..8 {
                let mut d = example.clone();
                d[i] ^= 1 << bit;
                all.push(d.clone());
                if i < example.len() - 4 {
                    all.push(seal(d));
                }
            }
        }
    }
    for i in 0..16 {
        let mut d = frame.clone();
        d[i] ^= 0x81;
        all.push(seal(d));
    }
    let mut buf = [0u8; io_protocol::OUTPUT_DATAGRAM_MAX];
    for (node_id, index, frame_no, len) in [(0u8, 200u8, 1u64, 0usize), (255, 15, u64::MAX, 64), (1, 0, 0, 3)] {
        let payload = vec![0xA5; len];
        // Frame 0 cannot be encoded: write frame 1, then zero it and reseal.
        let n = io_protocol::encode_output(node_id, 7, frame_no.max(1), index, &payload, &mut buf).unwrap();
        let mut d = buf[..n].to_vec();
        d[16..24].copy_from_slice(&frame_no.to_le_bytes());
        all.push(seal(d));
    }
    for (key, len) in [(0u16, 0usize), (u16::MAX, 64)] {
        let kind = twinloop::OutputKind::Level { key };
        let n = io_protocol::encode_output_kind(3, 9, 5, 2, kind, &vec![0x3C; len], &mut buf).unwrap();
        all.push(buf[..n].to_vec());
    }
    let mut big = io_protocol::frame_to_vec(9, &[1; 512]).unwrap();
    all.push(big.clone());
    big.push(0);
    all.push(big.clone());
    let mut long_output = output.clone();
    long_output.extend_from_slice(&[0; 64]);
    long_output[4..6].copy_from_slice(&88u16.to_le_bytes());
    all.push(seal(long_output));
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for _ in 0..300 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = (x % 100) as usize;
        let mut d: Vec<u8> = (0..len).map(|i| (x >> (i % 8 * 8)) as u8 ^ i as u8).collect();
        if len >= 8 && x % 3 != 0 {
            d[..4].copy_from_slice(&[b'T', b'L', 1, 2]);
            d[4..6].copy_from_slice(&((len as u16).wrapping_sub(28)).to_le_bytes());
            d = seal(d);
        }
        all.push(d);
    }
    all
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn protocol_doc_python_gateway_agrees_with_the_decoder() {
    let driver = r#"
import sys
for line in sys.stdin:
    cmd, *args = line.split()
    if cmd == "parse":
        d = bytes.fromhex(args[0]) if args else b""
        ok, err = parse_output(d)
        if ok is None:
            print("err", err)
        else:
            epoch, frame, index, node_id, key, payload = ok
            print("ok", epoch, frame, index, node_id, "event" if key is None else key, payload.hex())
    elif cmd == "frame":
        print(frame_datagram(int(args[0]), bytes.fromhex(args[1]), int(args[2])).hex())
    elif cmd == "sink":
        s = Sink(window_frames=4, lease_s=5.0)
        offers = [(0, 0x101, 10, 0), (0, 0x101, 10, 0), (0, 0x101, 11, 0), (0, 0x202, 11, 0),
                  (0, 0x101, 12, 0), (0, 0x202, 12, 0), (0, 0x202, 8, 0), (0, 0x202, 9, 1),
                  (3, 0x101, 13, 0), (9, 0x101, 13, 0)]
        print(" ".join(s.offer(t, e, f, i, b"") for (t, e, f, i) in offers))
    elif cmd == "new":
        g = Sink(window_frames=int(args[0]), lease_s=None if args[1] == "none" else int(args[1]))
    elif cmd == "offer":
        t, e, f, i = (int(a) for a in args[:4])
        key = None if args[4] == "event" else int(args[4])
        print(g.offer(t, e, f, i, bytes.fromhex(args[5]) if len(args) > 5 else b"", key))
    elif cmd == "acks":
        ids = []
        while True:
            batch = g.take_acks()
            if not batch:
                break
            ids += batch
        print("acks", " ".join(f"{f}:{i}" for f, i in ids))
    elif cmd == "ackdgram":
        print(ack_datagram(0x5EED, 7, [(42, 0), (43, 1)]).hex())
    sys.stdout.flush()
"#;
    let script = format!("{}\n{driver}", block("```python"));
    let vectors = vectors();
    let mut input = String::new();
    let mut expected = Vec::new();
    for d in &vectors {
        input.push_str(&format!("parse {}\n", hex(d)));
        expected.push(match io_protocol::decode_output(d) {
            Ok(o) => format!(
                "ok {} {} {} {} {} {}",
                o.epoch,
                o.frame,
                o.index,
                o.node_id,
                o.kind.level_key().map_or("event".into(), |k| k.to_string()),
                hex(o.payload)
            ),
            Err(e) => format!("err {}", counter(e)),
        });
    }
    // The document's frame example, and the same frame in a source session (bytes 6..8).
    let frame = hex_example("frame");
    let payload = io_protocol::decode_frame(&frame).unwrap().payload;
    // The session is explicit: the sketch's default is a random one, new at every start.
    input.push_str(&format!("frame 42 {} 0\n", hex(payload)));
    expected.push(hex(&frame));
    let session_frame = hex_example("session-frame");
    input.push_str(&format!("frame 1 {} {}\n", hex(payload), 0x5EED));
    expected.push(hex(&session_frame));
    input.push_str("sink\n");
    // Window 4, lease 5 s: copies of a higher epoch fence the old one; frame 8 is below
    // the window of frame 12; after 9 s without an acceptance the fence lapses.
    expected.push("accepted duplicate accepted duplicate stale accepted too_old accepted stale accepted".into());
    // The same gateway in Rust, on arbitrary offers: the document's rule is the library's,
    // decision for decision (times in whole seconds, so Python's floats are exact).
    for (window, lease_s) in [(8u64, Some(5u64)), (3, Some(0)), (16, None)] {
        input.push_str(&format!(
            "new {window} {}\n",
            lease_s.map_or("none".into(), |l| l.to_string())
        ));
        let mut gateway = Gateway::new(window, lease_s.map(Duration::from_secs)).unwrap();
        // What the gateway acks, in order (issue 22): the same ids as the sketch's.
        let mut acked: Vec<String> = Vec::new();
        let mut ack_buf = [0u8; io_protocol::ACK_DATAGRAM_MAX];
        let (mut x, mut t, mut base) = (0x2545_F491_4F6C_DD1Du64 ^ window, 0u64, 1u64);
        for _ in 0..400 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            t += x % 4 + if x >> 44 & 15 == 0 { 10 } else { 0 };
            base += u64::from(x >> 8 & 3 == 0);
            let epoch = [0x101, 0x202, 0x302, 0x403][(x >> 12 & 3) as usize];
            let frame = if x >> 48 & 15 == 0 {
                base.saturating_sub(window + x % 5)
            } else {
                (base + (x >> 16) % 10).saturating_sub(6)
            };
            let index = if x >> 20 & 15 == 0 {
                16 + (x >> 24) as u8 % 2
            } else {
                (x >> 24) as u8 % 3
            };
            let payload: &[u8] = if x >> 40 & 7 == 0 { &[1] } else { &[] };
            // Half the offers levels of three keys.
            let kind = match x >> 52 & 7 {
                0..=3 => twinloop::OutputKind::Event,
                k => twinloop::OutputKind::Level { key: (k - 4) as u16 },
            };
            let key = kind.level_key().map_or("event".into(), |k| k.to_string());
            input.push_str(&format!("offer {t} {epoch} {frame} {index} {key} {}\n", hex(payload)));
            let now = twinloop::Instant::from_millis(t * 1000);
            expected.push(
                gateway
                    .offer_from(now, 0, epoch, frame, index, kind, payload)
                    .name()
                    .into(),
            );
            while let Some((_, n)) = gateway.encode_ack(None, &mut ack_buf) {
                let ack = io_protocol::decode_ack(&ack_buf[..n], None).unwrap();
                acked.extend(ack.ids.iter().map(|(f, i)| format!("{f}:{i}")));
            }
        }
        input.push_str("acks\n");
        expected.push(format!("acks {}", acked.join(" ")));
        // Every decision and a lapse came up.
        let c = gateway.counters();
        assert!(
            c.accepted * c.duplicates * c.conflicts * c.stale * c.too_old * c.invalid * c.superseded > 0,
            "{c:?}"
        );
        assert!(lease_s.is_none() || c.lapses > 0, "{c:?}");
    }

    // The sketch's ack is the document's example, byte for byte.
    input.push_str("ackdgram\n");
    expected.push(hex(&hex_example("ack")));

    let child = Command::new("python3")
        .arg("-c")
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn();
    let Ok(mut child) = child else {
        eprintln!("python3 not found: the document's Python gateway was not run");
        return;
    };
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the Python gateway failed");
    let out = String::from_utf8(out.stdout).unwrap();
    let got: Vec<&str> = out.lines().collect();
    assert_eq!(got.len(), expected.len());
    for (i, (g, w)) in got.iter().zip(&expected).enumerate() {
        let what = vectors.get(i).map(|d| hex(d)).unwrap_or_default();
        assert_eq!(g, w, "line {i} ({what})");
    }
}
