//! The two-node Pair over 10,000 cycles with a primary crash in the middle.

use core::time::Duration;
use twinloop::testing::Pair;
use twinloop::{Config, Reason, Role};

#[test]
fn pair_10000_cycles_primary_crash_one_takeover_nothing_lost_nothing_doubled() {
    let mut p = Pair::new(2026, Config::fast(), 1024);
    p.start(0);
    p.start(1);
    let cycle = p.cycle;
    p.run_for(cycle * 5000);
    let primary = p.primary().expect("one primary after 5000 cycles");
    let backup = 1 - primary;
    assert_eq!(p.nodes[backup].as_ref().map(|n| n.role()), Some(Role::Backup));
    p.crash(primary);
    let crashed_at = p.now;
    p.run_for(cycle * 5000);
    assert_eq!(p.primary(), Some(backup), "the backup took over");

    let takeovers: Vec<_> = p
        .transitions
        .iter()
        .filter(|(_, t)| matches!(t.reason, Reason::TakeoverAfterProbe | Reason::TakeoverNoPrimary))
        .collect();
    assert_eq!(takeovers.len(), 1, "exactly one takeover: {takeovers:?}");
    assert_eq!(takeovers[0].0, backup);

    // Every output id of every frame from the first run to the last is at the sink, with
    // the content a reference run of the same program produces.
    let first = p.sink.accepted.keys().next().expect("outputs reached the sink").0;
    let last = p.node(backup).frame();
    assert!(last - first >= 9_000, "ran frames {first}..={last}");
    let expected = p.reference_outputs(first, last);
    let mut missing = 0;
    for (id, payload) in &expected {
        match p.sink.accepted.get(id) {
            Some((_, got)) => assert_eq!(got, payload, "output {id:?} content"),
            None => missing += 1,
        }
    }
    assert_eq!(
        missing,
        0,
        "{missing} of {} outputs never reached the sink",
        expected.len()
    );
    assert_eq!(
        p.sink.accepted.len(),
        expected.len(),
        "outputs the reference never produced"
    );
    assert_eq!(p.sink.conflicts, 0, "an id with two contents");
    assert_eq!(p.sink.stale_rejected, 0);

    // The backup's digest equals the primary's at every frame both ran.
    let (bad, shared) = p.digest_disagreements();
    assert!(bad.is_empty(), "digests differ at frames {bad:?}");
    assert!(shared >= 4_900, "only {shared} frames ran on both nodes");

    // Invariant 6: failover within detection window + probe timeout + 2 cycles.
    let c = &p.configs[backup];
    let bound = Duration::from_millis(c.detection_window_ms + c.probe_timeout_ms) + cycle * 2;
    let took = takeovers[0].1.at - crashed_at;
    assert!(took <= bound, "failover took {took:?}, bound {bound:?}");
}
