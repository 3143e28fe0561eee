//! The process harness end to end, small: two real `twinloop-demo` processes through the
//! fault proxy, one fault of each family (a kill with a late join, a planned switchover,
//! a freeze shorter than the window, a cut link), then the analysis against the
//! reference run. A few seconds of wall time; every wait is a bounded poll.
#![allow(clippy::disallowed_methods)]

use std::path::PathBuf;
use std::time::Duration;
use twinloop_sim::harness::plant_loop::Operator;
use twinloop_sim::harness::proxy::LinkFault;
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

/// Both nodes of a pair started at once (`timing`, the fault proxy when `proxy`), until
/// each has heard the other (the keyed links' restart handshake done): the rig and its
/// directory, to remove at the end.
fn started_together_hearing_each_other(name: &str, timing: Timing, proxy: bool) -> (Rig, PathBuf) {
    let binary = twinloop_demo::binary::locate().expect("the twinloop-demo binary");
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = RigConfig {
        cycle_ms: 5,
        timing,
        proxy,
        progress: false,
        ..RigConfig::new(dir.clone(), binary)
    };
    let mut rig = Rig::prepare(config).expect("set-up");
    rig.nodes[0].spawn().expect("node 1 starts");
    rig.nodes[1].spawn().expect("node 2 starts");
    let hears = |rig: &Rig, i: usize| rig.nodes[i].log_tail(50).contains("link 0 (sync) up");
    rig.wait_starting(1, Duration::from_secs(20), "the nodes to hear each other", |rig| {
        hears(rig, 0) && hears(rig, 1)
    })
    .expect("the nodes hear each other");
    (rig, dir)
}

fn is_primary(rig: &Rig, i: usize) -> bool {
    rig.status(i)
        .is_some_and(|s| s.role == twinloop::io::schema::Role::Primary)
}

/// Two real nodes start together and hear each other; then node 1's datagrams stop
/// reaching node 2 (cut in the proxy, one way), as when node 1's host stalls between its
/// decision to lead and its first heartbeat. Node 1 wins the draw over the starting node
/// 2 and leads; node 2, hearing nothing more of node 1, leads a cold start too. The cut
/// heals: the pair must pair up on its own — node 1 follows the higher epoch with a
/// transfer (`fenced_at_startup`) — not wait for the operator (`colder_primary`), as it
/// did in the CI run of 537fe21 (the conveyor pair on a loaded host).
#[test]
fn harness_pair_two_cold_starts_at_one_startup_pair_without_the_operator() {
    // A start-up wait long enough for both nodes to be up and heard well before node 1
    // decides, whatever the host's load.
    let timing = Timing {
        startup_ms: 1500,
        ..Timing::HARNESS
    };
    let (mut rig, dir) = started_together_hearing_each_other("harness-collision", timing, true);
    {
        let proxy = rig.proxy.as_ref().expect("the proxy");
        for link in 0..proxy.links() {
            proxy.set(link, 1, LinkFault::CUT);
        }
    }
    let node_1 = rig.nodes[0].log_tail(50);
    assert!(
        !node_1.contains("role primary"),
        "node 1 decided before the cut: {node_1}"
    );
    rig.wait_starting(1, Duration::from_secs(20), "node 2 to lead", |rig| is_primary(rig, 1))
        .expect("node 2 leads");
    rig.proxy.as_ref().expect("the proxy").heal();
    rig.plant.set_sending(true).expect("frames");
    let health = rig
        .await_healthy(Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e}"));
    let logs = format!("{}\n---\n{}", rig.nodes[0].log_tail(400), rig.nodes[1].log_tail(400));
    assert_eq!(health.primary, 1, "node 2, of the higher epoch, leads: {logs}");
    assert!(logs.contains("won the start-up tiebreak"), "{logs}");
    assert!(logs.contains("led cold at the same start-up"), "{logs}");
    assert!(!logs.contains("colder_primary"), "{logs}");
    drop(rig);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Two real nodes start together and hear each other; then node 1 (the higher start-up
/// priority) is frozen (SIGSTOP) past node 2's start-up wait. Node 2, hearing nobody,
/// leads; node 1's sockets meanwhile queue hundreds of node 2's datagrams per link (a
/// heartbeat a millisecond: its starting ones first, then its primary ones). Thawed late,
/// node 1 must read that backlog before it judges its own start-up deadline: it follows
/// node 2 (`primary_found`). Reading only a turn's worth (64 a socket, before
/// 2026-11-27), it judged by node 2's oldest heartbeats — starting, lower priority — and
/// led beside it (`won_tiebreak`).
#[test]
fn harness_pair_node_thawed_after_its_start_up_deadline_reads_its_whole_backlog_first() {
    let timing = Timing {
        name: "backlog",
        heartbeat_ms: 1,
        startup_ms: 1000,
        ..Timing::HARNESS
    };
    let (mut rig, dir) = started_together_hearing_each_other("harness-backlog", timing, false);
    rig.nodes[0].freeze().expect("SIGSTOP node 1");
    let node_1 = rig.nodes[0].log_tail(50);
    assert!(!node_1.contains("role "), "node 1 decided before the freeze: {node_1}");
    rig.wait_starting(1, Duration::from_secs(20), "node 2 to lead", |rig| is_primary(rig, 1))
        .expect("node 2 leads");
    // Past node 1's own start-up deadline, with a backlog of node 2's primary heartbeats.
    rig.sleep(Duration::from_millis(1200)).expect("the freeze lasts");
    rig.nodes[0].thaw().expect("SIGCONT node 1");
    rig.plant.set_sending(true).expect("frames");
    let health = rig
        .await_healthy(Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e}"));
    let log = rig.nodes[0].log_tail(400);
    assert_eq!(health.primary, 1, "node 2 leads: {log}");
    assert!(log.contains("found a primary at start-up"), "{log}");
    assert!(!log.contains("won the start-up tiebreak"), "{log}");
    drop(rig);
    let _ = std::fs::remove_dir_all(&dir);
}
