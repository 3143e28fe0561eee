//! The plant side for trying a pair by hand: the tank model, an I/O source that sends one
//! frame per cycle to both nodes, and an actuator sink — the library's reference gateway
//! (`twinloop::Gateway`: dedup over 65 536 frames or the nodes' `frames_buffered`,
//! epoch fence, epoch lease; docs/PROTOCOL.md, "What a sink must do") — whose accepted commands drive the
//! model (a closed loop). Prints one line a second.
//!
//! ```text
//! cargo run -p twinloop-demo -- --config configs/node-a.toml &
//! cargo run -p twinloop-demo -- --config configs/node-b.toml &
//! cargo run -p twinloop-demo --example plant -- --config configs/node-a.toml --config configs/node-b.toml
//! ```
//!
//! With `--config`, the frame addresses, the sink address and the cycle are read from the
//! node configurations (`[frames] bind`, `[outputs] sinks`, `[app] cycle_ms`), and the
//! gateway's window and lease from their `[runtime] frames_buffered` and
//! `detection_window_ms`; without, the defaults below match `configs/node-a.toml` and
//! `configs/node-b.toml` (and the nodes' defaults, 1024 frames and a 5 s lease). Either
//! way the plant prints the addresses it uses before the first frame.
// A plant on a real clock: the cycle is paced with wall time.
#![allow(clippy::disallowed_methods)]

use clap::Parser;
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use twinloop::io_protocol;
use twinloop::{Decision, Gateway};
use twinloop_demo::layout::{flag, OutputMessage};
use twinloop_demo::plant::{Plant, PlantParams};

/// Tank plant, I/O source and actuator sink for a twinloop-demo pair.
#[derive(Debug, Parser)]
struct Args {
    /// A node's configuration file, once per node: frames go to each one's `[frames] bind`,
    /// outputs are read on its `[outputs] sinks` address, the cycle is its `[app] cycle_ms`
    /// or `cycle_us`.
    #[arg(long)]
    config: Vec<PathBuf>,
    /// Where to send frames (each node's `frames.bind`); default from `--config`, else
    /// 127.0.0.1:7301,127.0.0.1:7302.
    #[arg(long, value_delimiter = ',')]
    frames: Vec<SocketAddr>,
    /// Where to receive outputs (`outputs.sinks` of the nodes); default from `--config`,
    /// else 127.0.0.1:7500.
    #[arg(long)]
    sink: Option<SocketAddr>,
    /// The cycle, in milliseconds (the nodes' `app.cycle_ms`); default from `--config`,
    /// else 10.
    #[arg(long, conflicts_with = "cycle_us", value_parser = clap::value_parser!(u64).range(1..=60_000))]
    cycle_ms: Option<u64>,
    /// The cycle, in microseconds (the nodes' `app.cycle_us`, 50..=60000000): below a
    /// millisecond, e.g. 100 for 10 kHz.
    #[arg(long, value_parser = clap::value_parser!(u64).range(50..=60_000_000))]
    cycle_us: Option<u64>,
    /// Stop after this many frames (0: run until interrupted).
    #[arg(long, default_value_t = 0)]
    frames_max: u64,
    /// Consumers' outflow, in ml/s.
    #[arg(long, default_value_t = 1500)]
    demand_ml_per_s: u32,
}

/// The actuator sink: the gateway decides, the last accepted command is shown.
struct Sink {
    gateway: Gateway,
    command: Option<twinloop_demo::layout::ActuatorCommand>,
}

/// What the plant needs from the node configurations.
#[derive(Debug, Default)]
struct FromConfigs {
    frames: Vec<SocketAddr>,
    sink: Option<SocketAddr>,
    /// `[app] cycle_us`, or 1000 × `cycle_ms`.
    cycle_us: Option<u64>,
    /// The largest `[runtime] frames_buffered`: the gateway's dedup window.
    frames_buffered: Option<u64>,
    /// The largest `[runtime] detection_window_ms`: the lease is 10 times it, at least 5 s.
    detection_window_ms: Option<u64>,
}

/// Reads `[frames] bind`, the first of `[outputs] sinks`, `[app] cycle_ms` or `cycle_us` and
/// `[runtime] frames_buffered` and `detection_window_ms` from each node configuration; the
/// nodes must agree on the sink and the cycle (of the others, the largest is kept).
fn read_configs(paths: &[PathBuf]) -> Result<FromConfigs, String> {
    let mut found = FromConfigs::default();
    for path in paths {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let table: toml::Table = text.parse().map_err(|e| format!("{}: {e}", path.display()))?;
        let get = |section: &str, key: &str| table.get(section).and_then(|s| s.get(key)).cloned();
        let addr = |v: &toml::Value, what: &str| -> Result<SocketAddr, String> {
            v.as_str()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| format!("{}: {what} is not an address like \"127.0.0.1:7301\"", path.display()))
        };
        let frames = get("frames", "bind").ok_or_else(|| format!("{}: no [frames] bind", path.display()))?;
        found.frames.push(addr(&frames, "[frames] bind")?);
        if let Some(first) = get("outputs", "sinks").and_then(|v| v.as_array().and_then(|a| a.first().cloned())) {
            let sink = addr(&first, "[outputs] sinks")?;
            if found.sink.is_some_and(|s| s != sink) {
                return Err(format!(
                    "{}: [outputs] sinks differs from the other node's",
                    path.display()
                ));
            }
            found.sink = Some(sink);
        }
        for (key, found) in [
            ("frames_buffered", &mut found.frames_buffered),
            ("detection_window_ms", &mut found.detection_window_ms),
        ] {
            if let Some(value) = get("runtime", key).and_then(|v| v.as_integer()) {
                let value =
                    u64::try_from(value).map_err(|_| format!("{}: [runtime] {key} is negative", path.display()))?;
                *found = Some(found.map_or(value, |f| f.max(value)));
            }
        }
        for (key, us_per_unit) in [("cycle_ms", 1000), ("cycle_us", 1)] {
            let Some(cycle) = get("app", key).and_then(|v| v.as_integer()) else {
                continue;
            };
            let cycle_us = u64::try_from(cycle)
                .ok()
                .and_then(|c| c.checked_mul(us_per_unit))
                .ok_or_else(|| format!("{}: [app] {key} is out of range", path.display()))?;
            if found.cycle_us.is_some_and(|c| c != cycle_us) {
                return Err(format!(
                    "{}: [app] {key} differs from the other node's cycle",
                    path.display()
                ));
            }
            found.cycle_us = Some(cycle_us);
        }
    }
    Ok(found)
}

fn main() -> std::io::Result<()> {
    let mut args = Args::parse();
    let from_configs = match read_configs(&args.config) {
        Ok(found) => found,
        Err(e) => {
            eprintln!("plant: {e}");
            std::process::exit(2);
        }
    };
    if args.frames.is_empty() {
        args.frames = if from_configs.frames.is_empty() {
            vec![
                "127.0.0.1:7301".parse().expect("an address"),
                "127.0.0.1:7302".parse().expect("an address"),
            ]
        } else {
            from_configs.frames
        };
    }
    let sink_addr = args
        .sink
        .or(from_configs.sink)
        .unwrap_or_else(|| "127.0.0.1:7500".parse().expect("an address"));
    // The parser bounds both options: no overflow.
    let cycle_us = args
        .cycle_us
        .or(args.cycle_ms.map(|ms| ms * 1000))
        .or(from_configs.cycle_us)
        .unwrap_or(10_000)
        .max(1);
    println!(
        "plant: frames to {}, outputs read on {sink_addr}, cycle {cycle_us} µs",
        args.frames
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" and ")
    );
    let plant = Arc::new(Mutex::new(Plant::new(PlantParams {
        demand_ml_per_s: args.demand_ml_per_s,
        ..PlantParams::default()
    })));
    // The gateway's settings come from the nodes' (PROTOCOL.md: nothing on the wire
    // carries them): a window of at least their ring — 65 536 frames, minutes of a plant's
    // cycles, since a node that fell behind may take over with outputs further back than
    // its ring (PROTOCOL.md, "The dedup window") — a lease of max(10 × window, 5 s).
    let window_frames = from_configs.frames_buffered.unwrap_or(1024).max(1 << 16);
    let lease = Duration::from_millis(
        from_configs
            .detection_window_ms
            .unwrap_or(500)
            .saturating_mul(10)
            .max(5000),
    );
    let gateway = match Gateway::new(window_frames, Some(lease)) {
        Ok(gateway) => gateway,
        Err(e) => {
            eprintln!("plant: {e}");
            std::process::exit(2);
        }
    };
    let sink = Arc::new(Mutex::new(Sink { gateway, command: None }));
    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));

    let receiver = UdpSocket::bind(sink_addr)?;
    receiver.set_read_timeout(Some(Duration::from_millis(100)))?;
    {
        let (plant, sink, stop) = (plant.clone(), sink.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                let Ok((len, _)) = receiver.recv_from(&mut buf) else {
                    continue;
                };
                let Ok(output) = io_protocol::decode_output(&buf[..len]) else {
                    continue;
                };
                let now =
                    twinloop::Instant::from_nanos(u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX));
                let mut sink = sink.lock().unwrap();
                let decision = sink.gateway.offer_kind(
                    now,
                    output.epoch,
                    output.frame,
                    output.index,
                    output.kind,
                    output.payload,
                );
                if decision == Decision::Accepted {
                    if let Ok(OutputMessage::Command(command)) = OutputMessage::decode(output.payload) {
                        sink.command = Some(command);
                        plant.lock().unwrap().apply(&command);
                    }
                }
            }
        });
    }

    let source = UdpSocket::bind("0.0.0.0:0")?;
    let cycle = Duration::from_micros(cycle_us);
    let mut next_at = Instant::now();
    let mut report_at = Instant::now() + Duration::from_secs(1);
    let mut number = 0u64;
    // A new source session at every start (docs/PROTOCOL.md, "Source sessions"): a plant
    // restarted against a running pair numbers from 1 again, and the pair follows it
    // instead of dropping its frames as stale. Any value but the last run's will do.
    let session = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |t| (t.subsec_nanos() as u16).max(1));
    while args.frames_max == 0 || number < args.frames_max {
        let now = Instant::now();
        if now < next_at {
            std::thread::sleep(next_at - now);
        }
        next_at += cycle;
        number += 1;
        let payload = {
            let mut plant = plant.lock().unwrap();
            plant.advance_us(cycle_us);
            plant.inputs().encode()
        };
        let datagram = io_protocol::session_frame_to_vec(session, number, &payload).expect("a valid frame");
        for target in &args.frames {
            let _ = source.send_to(&datagram, target);
        }
        if Instant::now() >= report_at {
            report_at += Duration::from_secs(1);
            let (level, supply) = {
                let plant = plant.lock().unwrap();
                (plant.level_um(), plant.supply_ml())
            };
            let (command, counters, fence) = {
                let sink = sink.lock().unwrap();
                (sink.command, sink.gateway.counters(), sink.gateway.fence())
            };
            println!(
                "frame {number:>7}  level {:>7.1} mm  supply {:>6} l  pump {:>5}  alarms {:#06x}  \
                 sink: {} accepted, {} duplicates, {} stale, epoch {}",
                f64::from(level) / 1000.0,
                supply / 1000,
                command.map_or("-".into(), |c| if c.has(flag::PUMP_RUN) {
                    format!("{:.1}%", f64::from(c.pump_speed_permille) / 10.0)
                } else {
                    "off".into()
                }),
                command.map_or(0, |c| c.alarms_latched),
                counters.accepted,
                counters.duplicates + counters.conflicts,
                counters.stale,
                twinloop::EpochText(fence),
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    Ok(())
}
