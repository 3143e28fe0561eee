//! The process harness end to end, small: two real `twinloop-demo` processes through the
//! fault proxy, one fault of each family (a kill with a late join, a planned switchover,
//! a freeze shorter than the window, a cut link), then the analysis against the
//! reference run. A few seconds of wall time; every wait is a bounded poll.
#![allow(clippy::disallowed_methods)]

use std::path::PathBuf;
use twinloop_sim::harness::plant_loop::Operator;
use twinloop_sim::harness::report::analyse;
use twinloop_sim::harness::rig::{Rig, RigConfig, Timing};
use twinloop_sim::harness::schedule::{inject, Expect, Fault, FaultKind};

#[test]
fn harness_pair_survives_one_fault_of_each_family_without_loss() {
    let binary = twinloop_demo::binary::locate().expect("the twinloop-demo binary");
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("harness-pair-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = RigConfig {
        cycle_ms: 5,
        timing: Timing::HARNESS,
        operator: Operator::scripted(5, 2000),
        progress: false,
        ..RigConfig::new(dir.clone(), binary)
    };
    let mut rig = Rig::prepare(config).expect("set-up");
    let health = rig.start_pair().expect("a healthy pair");
    assert_eq!(health.primary, 0, "node 1 starts first and leads");

    let faults = [
        Fault {
            kind: FaultKind::KillPrimary,
            hold_ms: 200,
        },
        Fault {
            kind: FaultKind::Switchover,
            hold_ms: 0,
        },
        Fault {
            kind: FaultKind::FreezePrimaryShort,
            hold_ms: 30,
        },
        Fault {
            kind: FaultKind::CutLink(0),
            hold_ms: 300,
        },
    ];
    let mut records = Vec::new();
    for (k, fault) in faults.into_iter().enumerate() {
        let record = inject(&mut rig, k, fault).unwrap_or_else(|e| panic!("fault #{k}: {e}"));
        assert!(record.error.is_none(), "fault #{k}: {:?}", record.error);
        assert!(record.recovered_ns.is_some(), "fault #{k} recovered");
        records.push(record);
    }
    assert_eq!(records[0].expect, Expect::Takeover);
    let failover = records[0].failover_ms.expect("a failover time");
    assert!(failover > 0.0 && failover < 5000.0, "{failover} ms");
    assert_eq!(
        records[0].primary_after,
        Some(2),
        "node 2 took over; node 1 rejoined as backup"
    );
    assert!(records[1].switchover_ms.is_some(), "the switchover completed");
    assert_eq!(records[1].primary_after, Some(1), "and handed the role back to node 1");

    let last = rig.drain().expect("the last frames reach the sink");
    rig.sleep(rig.config.watch_interval * 4).unwrap();
    let sink = rig.sink_log();
    let mut events: Vec<_> = rig.watchers.iter().flat_map(|w| w.with(|v| v.events.clone())).collect();
    events.sort_by_key(|e| e.at_ns);
    let a = rig
        .plant
        .with_frames(|frames| analyse(frames, &sink, &events, &mut records, last, 5));
    assert!(
        a.outputs_expected > last,
        "every frame has its command, some alarm events"
    );
    assert_eq!(a.outputs_lost, 0, "lost: {:?}", a.lost_examples);
    assert_eq!(a.outputs_duplicated, 0);
    assert_eq!(
        a.content_mismatches + a.outputs_unexpected,
        0,
        "{:?}",
        a.mismatch_examples
    );
    assert_eq!(a.dual_primary_accepted, 0);
    assert_eq!(a.false_takeovers(), 0, "{:?}", a.takeovers);
    assert_eq!(a.takeovers.len(), 1, "exactly the kill caused a takeover");
    assert!(a.switchovers >= 1);
    drop(rig);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A node process that exits during start-up (here: a stand-in that prints an error and
/// exits 2, as `twinloop-demo` does on a bad configuration) ends the start at once with
/// that node's own error line — not a 20 s wait ending in "stuck".
#[test]
fn harness_start_node_exits_during_startup_fails_fast_with_its_error() {
    use std::os::unix::fs::PermissionsExt;
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("harness-exits-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let binary = dir.join("broken-node");
    std::fs::write(
        &binary,
        "#!/bin/sh\necho 'twinloop-demo: config: [frames] bind: address 127.0.0.1:1 in use' >&2\nexit 2\n",
    )
    .unwrap();
    std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = RigConfig {
        progress: false,
        ..RigConfig::new(dir.join("nodes"), binary)
    };
    let mut rig = Rig::prepare(config).expect("set-up");
    let error = rig.start_pair().expect_err("the node cannot start").to_string();
    assert!(error.contains("node 1 exited during start-up"), "{error}");
    assert!(error.contains("exit status: 2"), "{error}");
    assert!(
        error.contains("address 127.0.0.1:1 in use"),
        "the node's own line: {error}"
    );
    assert!(!error.contains("stuck"), "{error}");
    let _ = std::fs::remove_dir_all(&dir);
}
