//! The process harness with a group of three (issue 16), small: three real
//! `twinloop-demo` processes, every pair of them joined by two links through the fault
//! proxy; a kill of the primary, the primary cut from both others, a cut link, then the
//! analysis against the reference run. Every wait is a bounded poll.
#![allow(clippy::disallowed_methods)]

use std::path::PathBuf;
use twinloop_sim::harness::group::GroupShape;
use twinloop_sim::harness::plant_loop::Operator;
use twinloop_sim::harness::report::analyse;
use twinloop_sim::harness::rig::{Rig, RigConfig, Timing};
use twinloop_sim::harness::schedule::{inject, Expect, Fault, FaultKind};

#[test]
fn harness_group_of_three_kill_partition_cut_without_loss() {
    let binary = twinloop_demo::binary::locate().expect("the twinloop-demo binary");
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("harness-group-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = RigConfig {
        cycle_ms: 5,
        timing: Timing::HARNESS,
        operator: Operator::scripted(5, 2000),
        progress: false,
        shape: GroupShape::new(3, false).unwrap(),
        ..RigConfig::new(dir.clone(), binary)
    };
    let mut rig = Rig::prepare(config).expect("set-up");
    assert_eq!(rig.nodes.len(), 3);
    let health = rig.start_pair().expect("a healthy group");
    assert_eq!(health.primary, 0, "node 1 (start-up priority) leads");
    assert_eq!(health.backup(), 1, "node 2 is the heaviest backup");

    let faults = [
        Fault {
            kind: FaultKind::KillPrimary,
            hold_ms: 200,
        },
        Fault {
            kind: FaultKind::Partition,
            hold_ms: 400,
        },
        Fault {
            kind: FaultKind::CutLink(0),
            hold_ms: 300,
        },
    ];
    let mut records = Vec::new();
    for (k, fault) in faults.into_iter().enumerate() {
        let record = inject(&mut rig, k, fault).unwrap_or_else(|e| panic!("fault #{k}: {e}\n{}", rig.context()));
        assert!(record.error.is_none(), "fault #{k}: {:?}", record.error);
        assert!(record.recovered_ns.is_some(), "fault #{k} recovered");
        records.push(record);
    }
    assert_eq!(records[0].expect, Expect::Takeover);
    assert_eq!(
        records[0].primary_after,
        Some(2),
        "node 2, the heaviest backup, took over"
    );
    assert_eq!(records[1].expect, Expect::Takeover);
    assert_eq!(records[1].primary_before, 2);
    assert_ne!(
        records[1].primary_after,
        Some(2),
        "the primary cut from both others lost the role to the majority side"
    );

    let last = rig.drain().expect("the last frames reach the sink");
    rig.sleep(rig.config.watch_interval * 4).unwrap();
    let sink = rig.sink_log();
    let mut events: Vec<_> = rig.watchers.iter().flat_map(|w| w.with(|v| v.events.clone())).collect();
    events.sort_by_key(|e| e.at_ns);
    let a = rig
        .plant
        .with_frames(|frames| analyse(frames, &sink, &events, &mut records, last, 5));
    assert!(a.outputs_expected > last, "every frame has its command");
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
    drop(rig);
    let _ = std::fs::remove_dir_all(&dir);
}
