//! The gateway against scripted Modbus/TCP devices written here: one that answers every
//! request with an exception, one that never answers, and one that serves values and
//! answers pipelined requests in reverse order. The test is a node (it receives the
//! frames) and a primary (it sends output datagrams).
// Real processes on a real clock: every wait is bounded with wall time.
#![allow(clippy::disallowed_methods)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use twinloop::image::{Quality, TagMap, TagMapSpec, Value};
use twinloop::io_protocol;

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Every request: exception 2 (illegal data address).
    Exception,
    /// Reads requests, never answers.
    Mute,
    /// Registers hold 0x1000 + address, coils are on at odd addresses; the requests of
    /// one read are answered in reverse order.
    Serve,
    /// As `Serve`, each answer 30 ms late.
    Slow,
}

/// A scripted device on `listener`; writes (function, address, first value) go to `writes`.
fn device(listener: TcpListener, mode: Mode, writes: Arc<Mutex<Vec<(u8, u16, u16)>>>, connects: Arc<Mutex<u32>>) {
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            *connects.lock().unwrap() += 1;
            let writes = writes.clone();
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                loop {
                    let n = match stream.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    buf.extend_from_slice(&chunk[..n]);
                    let mut answers = Vec::new();
                    while buf.len() >= 6 {
                        let len = 6 + usize::from(u16::from_be_bytes([buf[4], buf[5]]));
                        if buf.len() < len {
                            break;
                        }
                        let request: Vec<u8> = buf.drain(..len).collect();
                        answers.push(answer(&request, mode, &writes));
                    }
                    if mode == Mode::Mute {
                        continue;
                    }
                    if mode == Mode::Slow {
                        // The device's pace, not a wait for a condition.
                        std::thread::sleep(Duration::from_millis(30));
                    }
                    for a in answers.iter().rev() {
                        if stream.write_all(a).is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
}

fn answer(request: &[u8], mode: Mode, writes: &Mutex<Vec<(u8, u16, u16)>>) -> Vec<u8> {
    let (tr, unit, fc) = ([request[0], request[1]], request[6], request[7]);
    let address = u16::from_be_bytes([request[8], request[9]]);
    let word = u16::from_be_bytes([request[10], request[11]]);
    let mut pdu = vec![unit];
    if mode == Mode::Exception {
        pdu.extend_from_slice(&[fc | 0x80, 2]);
    } else {
        match fc {
            1 | 2 => {
                let mut bytes = vec![0u8; usize::from(word).div_ceil(8)];
                for i in 0..word {
                    if (address + i) % 2 == 1 {
                        bytes[usize::from(i / 8)] |= 1 << (i % 8);
                    }
                }
                pdu.extend_from_slice(&[fc, bytes.len() as u8]);
                pdu.extend_from_slice(&bytes);
            }
            3 | 4 => {
                pdu.extend_from_slice(&[fc, (word * 2) as u8]);
                for i in 0..word {
                    pdu.extend_from_slice(&(0x1000 + address + i).to_be_bytes());
                }
            }
            5 | 6 | 16 => {
                let value = if fc == 16 {
                    u16::from_be_bytes([request[13], request[14]])
                } else {
                    word
                };
                writes.lock().unwrap().push((fc, address, value));
                pdu.extend_from_slice(&request[7..12]);
            }
            _ => pdu.extend_from_slice(&[fc | 0x80, 1]),
        }
    }
    let mut adu = tr.to_vec();
    adu.extend_from_slice(&[0, 0]);
    adu.extend_from_slice(&(pdu.len() as u16).to_be_bytes());
    adu.extend_from_slice(&pdu);
    adu
}

const MAP: &str = r#"
[[device]]
name = "exc"
address = "ADDR0"
timeout_ms = 20
input_registers = [{ start = 0, count = 2 }]

[[device]]
name = "mute"
address = "ADDR1"
timeout_ms = 20
input_registers = [{ start = 0, count = 2 }]

[[device]]
name = "fast"
address = "ADDR2"
timeout_ms = 20
pipeline_depth = 4
coils = [{ start = 0, count = 8 }]
input_registers = [{ start = 0, count = 4 }]
holding_registers = [{ start = 10, count = 2 }]

[[tag]]
name = "exc_value"
device = "exc"
table = "input_register"
address = 0
type = "u16"
direction = "in"

[[tag]]
name = "mute_value"
device = "mute"
table = "input_register"
address = 0
type = "u16"
direction = "in"

[[tag]]
name = "fast_bit"
device = "fast"
table = "coil"
address = 3
type = "bool"
direction = "in"

[[tag]]
name = "fast_u32"
device = "fast"
table = "input_register"
address = 0
type = "u32"
direction = "in"

[[tag]]
name = "fast_hr"
device = "fast"
table = "holding_register"
address = 10
type = "i16"
scale = 0.5
direction = "in"

[[tag]]
name = "fast_out"
device = "fast"
table = "holding_register"
address = 20
type = "u16"
direction = "out"

[[tag]]
name = "fast_count"
device = "fast"
table = "holding_register"
address = 21
type = "u16"
direction = "out"
kind = "event"
"#;

#[test]
fn gateway_devices_exception_timeout_pipelined_and_outputs_through_the_reference_gateway() {
    let listeners: Vec<TcpListener> = (0..3).map(|_| TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    let mut map_text = MAP.to_string();
    for (i, l) in listeners.iter().enumerate() {
        map_text = map_text.replace(&format!("ADDR{i}"), &l.local_addr().unwrap().to_string());
    }
    let writes = Arc::new(Mutex::new(Vec::new()));
    let connects: Vec<Arc<Mutex<u32>>> = (0..3).map(|_| Arc::new(Mutex::new(0))).collect();
    for (i, (l, mode)) in listeners
        .into_iter()
        .zip([Mode::Exception, Mode::Mute, Mode::Serve])
        .enumerate()
    {
        device(l, mode, writes.clone(), connects[i].clone());
    }
    let frames = UdpSocket::bind("127.0.0.1:0").unwrap();
    frames.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let outputs_port = {
        let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let config = format!(
        "[gateway]\ncycle_ms = 20\nnodes = [\"{}\"]\noutputs_bind = \"127.0.0.1:{outputs_port}\"\ndevice_stall_ms = 300\nreconnect_min_ms = 50\nreconnect_max_ms = 100\noutputs_silence_ms = 60000\n{map_text}",
        frames.local_addr().unwrap()
    );
    let dir =
        std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("gateway-devices-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("gateway.toml");
    std::fs::write(&path, &config).unwrap();
    let spec: TagMapSpec = toml::from_str(&map_text).unwrap();
    let map = TagMap::new(&spec).unwrap();
    let log = std::fs::File::create(dir.join("gateway.log")).unwrap();
    let _gateway = Killed(
        Command::new(env!("CARGO_BIN_EXE_twinloop-gateway"))
            .arg("--config")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let logs = || std::fs::read_to_string(dir.join("gateway.log")).unwrap_or_default();

    // Frames: wait for one where every device has settled into its expected quality.
    let handle = |name| map.handle(name).unwrap();
    let mut buf = [0u8; io_protocol::DATAGRAM_MAX];
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = None;
    while Instant::now() < deadline {
        let Ok((len, _)) = frames.recv_from(&mut buf) else {
            continue;
        };
        let frame = io_protocol::decode_frame(&buf[..len]).unwrap();
        let image = map.image(frame.payload);
        let q: Vec<Quality> = (0..3).map(|d| image.quality(d).unwrap()).collect();
        if q == [Quality::Exception(2), Quality::Timeout, Quality::Ok] {
            seen = Some((
                image.tag(handle("exc_value")),
                image.tag(handle("mute_value")),
                image.tag(handle("fast_bit")).unwrap().raw,
                image.tag(handle("fast_u32")).unwrap().raw,
                image.tag(handle("fast_hr")).unwrap(),
            ));
            break;
        }
    }
    let (exc, mute, bit, u32_value, hr) =
        seen.unwrap_or_else(|| panic!("no frame with exception, timeout, ok\n{}", logs()));
    assert_eq!(exc, Err(twinloop::image::Bad::Quality(Quality::Exception(2))));
    assert_eq!(mute, Err(twinloop::image::Bad::Quality(Quality::Timeout)));
    assert_eq!(bit, Value::Bool(true), "coil 3 is on");
    assert_eq!(u32_value, Value::U32(0x1000_1001), "high word first");
    assert_eq!(hr.raw, Value::I16(0x100A));
    assert_eq!(hr.value, f64::from(0x100A) * 0.5);

    // The mute device's answers stay outstanding: after device_stall_ms the gateway drops
    // the connection and connects again.
    let deadline = Instant::now() + Duration::from_secs(10);
    while *connects[1].lock().unwrap() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        *connects[1].lock().unwrap() >= 2,
        "the mute device was reconnected\n{}",
        logs()
    );

    // Outputs, as a primary sends them: a write, its copy, a deposed primary's, a new one.
    let out = UdpSocket::bind("127.0.0.1:0").unwrap();
    let send = |epoch: u64, frame: u64, value: u16| {
        let mut payload = [0u8; 16];
        let len = map
            .encode_write(handle("fast_out"), Value::U16(value), &mut payload)
            .unwrap();
        let mut datagram = [0u8; io_protocol::OUTPUT_DATAGRAM_MAX];
        let n = io_protocol::encode_output(1, epoch, frame, 0, &payload[..len], &mut datagram).unwrap();
        out.send_to(&datagram[..n], ("127.0.0.1", outputs_port)).unwrap();
    };
    send(5, 10, 77);
    send(5, 10, 77);
    send(4, 11, 88);
    send(5, 12, 99);
    let fast_writes = || {
        writes
            .lock()
            .unwrap()
            .iter()
            .filter(|w| w.1 == 20)
            .map(|w| (w.0, w.2))
            .collect::<Vec<_>>()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while fast_writes().len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    // A little longer, for a write that should not come.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        fast_writes(),
        [(6, 77), (6, 99)],
        "each accepted write once; no copy, no deposed primary's\n{}",
        logs()
    );

    // An event tag (issue 17): every accepted write reaches the device, in order, once —
    // none collapses into the next while one is in flight, as a level's would.
    let send_count = |frame: u64, value: u16| {
        let mut payload = [0u8; 16];
        let len = map
            .encode_write(handle("fast_count"), Value::U16(value), &mut payload)
            .unwrap();
        let mut datagram = [0u8; io_protocol::OUTPUT_DATAGRAM_MAX];
        let n = io_protocol::encode_output(1, 5, frame, 0, &payload[..len], &mut datagram).unwrap();
        out.send_to(&datagram[..n], ("127.0.0.1", outputs_port)).unwrap();
    };
    for (frame, value) in [(13, 1), (14, 2), (14, 2), (15, 3), (16, 4)] {
        send_count(frame, value);
    }
    let count_writes = || {
        writes
            .lock()
            .unwrap()
            .iter()
            .filter(|w| w.1 == 21)
            .map(|w| w.2)
            .collect::<Vec<_>>()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while count_writes().len() < 4 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        count_writes(),
        [1, 2, 3, 4],
        "every event write once, in order\n{}",
        logs()
    );
    let text = logs();
    assert_eq!(
        text.matches("device exc: exception 2").count(),
        1,
        "logged once\n{text}"
    );
    assert!(
        text.contains("device mute: no answer within timeout_ms 20 ms"),
        "{text}"
    );
}

/// A stream of garbage from a device ends its connection without harming the others.
#[test]
fn gateway_device_garbage_drops_only_its_connection() {
    let garbage = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr: SocketAddr = garbage.local_addr().unwrap();
    let connects = Arc::new(Mutex::new(0u32));
    {
        let connects = connects.clone();
        std::thread::spawn(move || {
            for stream in garbage.incoming() {
                let Ok(mut stream) = stream else { return };
                *connects.lock().unwrap() += 1;
                std::thread::spawn(move || {
                    let mut chunk = [0u8; 512];
                    while let Ok(n) = stream.read(&mut chunk) {
                        if n == 0 {
                            return;
                        }
                        // A header with protocol id 7: not Modbus/TCP.
                        let _ = stream.write_all(&[0, 1, 0, 7, 0, 3, 1, 4, 0]);
                    }
                });
            }
        });
    }
    let frames = UdpSocket::bind("127.0.0.1:0").unwrap();
    frames.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let config = format!(
        "[gateway]\ncycle_ms = 20\nnodes = [\"{}\"]\noutputs_bind = \"127.0.0.1:0\"\nreconnect_min_ms = 20\nreconnect_max_ms = 40\n\n[[device]]\nname = \"bad\"\naddress = \"{addr}\"\ntimeout_ms = 20\ninput_registers = [{{ start = 0, count = 1 }}]\n\n[[tag]]\nname = \"v\"\ndevice = \"bad\"\ntable = \"input_register\"\naddress = 0\ntype = \"u16\"\ndirection = \"in\"\n",
        frames.local_addr().unwrap()
    );
    let dir =
        std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("gateway-garbage-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("gateway.toml"), &config).unwrap();
    let log = std::fs::File::create(dir.join("gateway.log")).unwrap();
    let gateway = Killed(
        Command::new(env!("CARGO_BIN_EXE_twinloop-gateway"))
            .arg("--config")
            .arg(dir.join("gateway.toml"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while *connects.lock().unwrap() < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let text = std::fs::read_to_string(dir.join("gateway.log")).unwrap_or_default();
    assert!(
        *connects.lock().unwrap() >= 3,
        "reconnects after each bad stream\n{text}"
    );
    // Frames keep coming, with the device disconnected or timed out, never ok.
    let mut buf = [0u8; io_protocol::DATAGRAM_MAX];
    let (len, _) = frames.recv_from(&mut buf).expect("frames keep coming");
    let frame = io_protocol::decode_frame(&buf[..len]).unwrap();
    assert_ne!(frame.payload[6], 0, "quality not ok");
    assert_eq!(
        text.matches("connection lost").count(),
        1,
        "one episode, one line\n{text}"
    );
    drop(gateway);
    let _ = TcpStream::connect(addr);
}

/// A device that answers after 30 ms, with a 20 ms cycle: every frame says timeout, its
/// late answers are dropped and counted, no new polls pile up behind the outstanding one,
/// and the connection stays (the answers do come, within device_stall_ms).
#[test]
fn gateway_device_slower_than_the_cycle_is_timeout_and_its_late_answers_dropped() {
    let slow = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = slow.local_addr().unwrap();
    let writes = Arc::new(Mutex::new(Vec::new()));
    let connects = Arc::new(Mutex::new(0u32));
    device(slow, Mode::Slow, writes, connects.clone());
    let frames = UdpSocket::bind("127.0.0.1:0").unwrap();
    frames.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let config = format!(
        "[gateway]\ncycle_ms = 20\nnodes = [\"{}\"]\noutputs_bind = \"127.0.0.1:0\"\n\n[[device]]\nname = \"slow\"\naddress = \"{addr}\"\ntimeout_ms = 15\ninput_registers = [{{ start = 0, count = 1 }}]\n\n[[tag]]\nname = \"v\"\ndevice = \"slow\"\ntable = \"input_register\"\naddress = 0\ntype = \"u16\"\ndirection = \"in\"\n",
        frames.local_addr().unwrap()
    );
    let dir =
        std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("gateway-slow-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("gateway.toml"), &config).unwrap();
    let status = std::fs::File::create(dir.join("status.jsonl")).unwrap();
    let _gateway = Killed(
        Command::new(env!("CARGO_BIN_EXE_twinloop-gateway"))
            .arg("--config")
            .arg(dir.join("gateway.toml"))
            .arg("--json")
            .stdin(Stdio::null())
            .stdout(status)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // 40 frames after the connection: each one a timeout.
    let mut buf = [0u8; io_protocol::DATAGRAM_MAX];
    let mut timeouts = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    while timeouts < 40 && Instant::now() < deadline {
        let Ok((len, _)) = frames.recv_from(&mut buf) else {
            continue;
        };
        let frame = io_protocol::decode_frame(&buf[..len]).unwrap();
        match Quality::from_byte(frame.payload[6]) {
            Quality::Disconnected => assert_eq!(timeouts, 0, "disconnected only before the connection"),
            Quality::Timeout => timeouts += 1,
            other => panic!("frame {}: quality {other:?}, not timeout", frame.number),
        }
    }
    assert_eq!(timeouts, 40);
    // The status line a second later counts the late answers; one connection throughout.
    let deadline = Instant::now() + Duration::from_secs(10);
    let device = loop {
        let text = std::fs::read_to_string(dir.join("status.jsonl")).unwrap_or_default();
        let last = text
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok());
        if let Some(device) = last.map(|j| j["devices"][0].clone()) {
            if device["late_answers"].as_u64() >= Some(10) || Instant::now() >= deadline {
                break device;
            }
        }
        assert!(Instant::now() < deadline, "no status line within 10 s");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(device["late_answers"].as_u64() >= Some(10), "{device}");
    assert_eq!(device["cycles_ok"], 0, "{device}");
    assert_eq!(device["connects"], 1, "{device}");
    assert_eq!(*connects.lock().unwrap(), 1);
}

/// The gateway as a systemd `Type=notify` service (issue 19;
/// configs/systemd/twinloop-gateway@.service): the test plays systemd's side of
/// `NOTIFY_SOCKET`. READY comes once frames flow, with a STATUS naming the devices;
/// WATCHDOG repeats from the loop; STOPPING on SIGTERM.
#[test]
fn gateway_under_systemd_ready_once_frames_flow_watchdog_stopping() {
    use std::os::unix::net::UnixDatagram;
    let serve = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = serve.local_addr().unwrap();
    device(
        serve,
        Mode::Serve,
        Arc::new(Mutex::new(Vec::new())),
        Arc::new(Mutex::new(0u32)),
    );
    let frames = UdpSocket::bind("127.0.0.1:0").unwrap();
    let config = format!(
        "[gateway]\ncycle_ms = 10\nnodes = [\"{}\"]\noutputs_bind = \"127.0.0.1:0\"\n\n[[device]]\nname = \"d\"\naddress = \"{addr}\"\ntimeout_ms = 5\ninput_registers = [{{ start = 0, count = 1 }}]\n\n[[tag]]\nname = \"v\"\ndevice = \"d\"\ntable = \"input_register\"\naddress = 0\ntype = \"u16\"\ndirection = \"in\"\n",
        frames.local_addr().unwrap()
    );
    let dir =
        std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("gateway-notify-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("gateway.toml"), &config).unwrap();
    let socket = UnixDatagram::bind(dir.join("notify.sock")).unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let mut gateway = Killed(
        Command::new(env!("CARGO_BIN_EXE_twinloop-gateway"))
            .arg("--config")
            .arg(dir.join("gateway.toml"))
            .env("NOTIFY_SOCKET", dir.join("notify.sock"))
            .env("WATCHDOG_USEC", "100000")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut got: Vec<String> = Vec::new();
    let mut buf = [0u8; 4096];
    let mut receive_until = |got: &mut Vec<String>, what: &str, done: &dyn Fn(&[String]) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done(got) {
            assert!(Instant::now() < deadline, "no {what} within 10 s: {got:#?}");
            if let Ok(n) = socket.recv(&mut buf) {
                got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
    };
    let has = |m: &str, line: &str| m.lines().any(|l| l == line);
    receive_until(&mut got, "READY=1", &|g| g.iter().any(|m| has(m, "READY=1")));
    let ready = got.iter().find(|m| has(m, "READY=1")).unwrap();
    assert!(ready.contains("STATUS=cycle 10 ms, "), "{ready}");
    assert!(ready.contains(" of 1 devices answering, "), "{ready}");
    receive_until(&mut got, "5 pings", &|g| {
        g.iter().filter(|m| has(m, "WATCHDOG=1")).count() >= 5
    });
    let pid = gateway.0.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    receive_until(&mut got, "STOPPING=1", &|g| g.iter().any(|m| has(m, "STOPPING=1")));
    let status = gateway.0.wait().unwrap();
    assert!(status.success(), "{status:?}");
}
