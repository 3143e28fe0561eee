//! `twinloop-sim run --io modbus`, briefly: the demo's tank behind the harness's
//! Modbus/TCP device, the real `twinloop-gateway` process and a pair of `twinloop-demo`
//! nodes on tags; one kill of the primary; the report's reference comparison and the
//! device's account. A dozen seconds of wall time; every wait is a bounded poll.
#![allow(clippy::disallowed_methods)]

use std::path::PathBuf;
use std::time::Duration;
use twinloop_sim::harness::modbus::{run, ModbusConfig};

#[test]
fn modbus_run_kill_of_the_primary_matches_the_reference_and_reaches_the_device_once() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("harness-modbus-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = ModbusConfig {
        progress: false,
        ..ModbusConfig::new(dir.join("nodes"))
    };
    let (report, samples) = run(config, Duration::from_secs(12), 1).expect("the run is carried out");
    let summary = report.summary();
    assert_eq!(report.exit_code(), 0, "{summary}");
    assert_eq!(report.program, "twinloop-demo, io = tags");
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
    // The reference run: the demo in-process on every recorded image, output by output
    // against what the listener's reference gateway accepted.
    let reference = report
        .reference
        .as_ref()
        .expect("the demo's report has a reference run");
    let a = &reference.analysis;
    assert_eq!(reference.frames_missing, 0, "{summary}");
    assert!(reference.frames >= 500, "{summary}");
    assert!(a.outputs_expected >= 50 && a.outputs_delivered >= 50, "{summary}");
    assert_eq!(
        (
            a.outputs_lost,
            a.outputs_duplicated,
            a.content_mismatches,
            a.outputs_unexpected
        ),
        (0, 0, 0, 0),
        "{summary}"
    );
    // The device: every out tag written in order, never twice, its final value right.
    for name in [
        "pump_run",
        "pump_speed_permille",
        "horn",
        "alarms_latched",
        "alarms_unacked",
    ] {
        let account = report
            .tag(name)
            .unwrap_or_else(|| panic!("no account of {name}: {summary}"));
        assert_eq!((account.duplicated, account.out_of_order), (0, 0), "{name}: {summary}");
        assert!(account.final_ok, "{name}: {summary}");
        assert!(
            account.written + account.collapsed + account.lost == account.accepted,
            "{name}: {summary}"
        );
    }
    assert!(report.tag("pump_run").unwrap().accepted >= 1, "{summary}");
    assert!(report.tag("pump_speed_permille").unwrap().accepted >= 2, "{summary}");
    assert!(
        report.tag("alarms_latched").unwrap().accepted >= 2,
        "the low-level alarm raised and cleared: {summary}"
    );
    // The report as written: the same top-level figures as the default run's.
    report.write(&dir, &samples).expect("the report is written");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    for key in [
        "frames",
        "outputs_expected",
        "outputs_delivered",
        "outputs_lost",
        "outputs_duplicated",
        "content_mismatches",
        "failover_ms",
        "faults",
        "timing",
        "device",
    ] {
        assert!(json.get(key).is_some(), "report.json has {key}: {json}");
    }
    assert_eq!(json["outputs_lost"], 0);
    assert_eq!(json["outputs_duplicated"], 0);
    assert_eq!(json["content_mismatches"], 0);
    assert!(std::fs::read_to_string(dir.join("plot.svg"))
        .unwrap()
        .starts_with("<svg"));
    let _ = std::fs::remove_dir_all(&dir);
}
