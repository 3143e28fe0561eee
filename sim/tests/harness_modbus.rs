//! `twinloop-sim run --io modbus`, briefly: the tank behind the harness's Modbus/TCP
//! device, the real `twinloop-gateway` process and a pair of `twinloop-tag-tank` nodes; one
//! kill of the primary; the report's figures. A dozen seconds of wall time; every wait is
//! a bounded poll.
#![allow(clippy::disallowed_methods)]

use std::path::PathBuf;
use std::time::Duration;
use twinloop_sim::harness::modbus::{run, ModbusConfig};

#[test]
fn modbus_run_kill_of_the_primary_reaches_the_device_once_and_the_report_says_so() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("harness-modbus-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = ModbusConfig {
        progress: false,
        ..ModbusConfig::new(dir.join("nodes"))
    };
    let (report, samples) = run(config, Duration::from_secs(12), 1).expect("the run is carried out");
    let summary = report.summary();
    assert_eq!(report.exit_code(), 0, "{summary}");
    // Frames flowed, carrying the device's values.
    assert!(report.frames >= 500, "{summary}");
    assert!(samples.len() >= 100, "the device sampled its level: {}", samples.len());
    // The kill: a new primary whose writes reached the device; the old one rejoined.
    assert_eq!(report.kills.len(), 1);
    let kill = &report.kills[0];
    assert!(kill.error.is_none(), "{:?}", kill.error);
    assert!(kill.epoch_after.is_some_and(|e| e > kill.epoch_before), "{kill:?}");
    assert!(kill.first_write_ns.is_some_and(|w| w > kill.kill_ns), "{kill:?}");
    assert!(kill.recovered_ns.is_some(), "{kill:?}");
    assert_eq!(report.node_starts, [2, 1], "node 1 killed and restarted once");
    // Every valve change once, in order, at the device; the echo never goes back.
    assert!(report.inflow.accepted >= 2, "{summary}");
    assert_eq!(
        (report.inflow.lost, report.inflow.duplicated, report.inflow.out_of_order),
        (0, 0, 0),
        "{summary}"
    );
    // A valve change superseded within one write's round trip (a bad-quality frame closes
    // the valve for a cycle) is the gateway's level rule, not a loss: written ≤ accepted.
    assert!(
        report.inflow.written + report.inflow.collapsed == report.inflow.accepted,
        "{summary}"
    );
    assert_eq!((report.echo.duplicated, report.echo.out_of_order), (0, 0), "{summary}");
    assert!(report.inflow.final_ok && report.echo.final_ok, "{summary}");
    // The report as written: the same top-level figures as the default run's.
    report.write(&dir, &samples).expect("the report is written");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    for key in [
        "frames",
        "outputs_lost",
        "outputs_duplicated",
        "failover_ms",
        "faults",
        "timing",
    ] {
        assert!(json.get(key).is_some(), "report.json has {key}: {json}");
    }
    assert_eq!(json["outputs_lost"], 0);
    assert_eq!(json["outputs_duplicated"], 0);
    assert!(std::fs::read_to_string(dir.join("plot.svg"))
        .unwrap()
        .starts_with("<svg"));
    let _ = std::fs::remove_dir_all(&dir);
}
