//! The event journal survives a restart, like a PLC's diagnostic buffer (issue 19): a
//! node stopped and started again serves the events of its previous run (its start and
//! its stop among them) before those of the new one, numbered on without a gap, so
//! `twinctl events` after a reboot shows what happened before it. On a real process.
// Real processes on a real clock: the test bounds its waits with wall time.
#![allow(clippy::disallowed_methods)]

mod common;

use common::*;
use std::path::PathBuf;
use std::time::Duration;

#[test]
fn node_restarted_serves_the_previous_runs_events_numbered_on() {
    let mut alone = Alone::new("journal-restart");
    let journal = PathBuf::from(format!("{}.journal", alone.file.node.state_file.display()));
    let config = alone.write();
    let (dir, console) = (alone.dir.clone(), alone.ports.console);

    let run = |log: &str| {
        let node = Node::spawn(1, &config, dir.join(log), console);
        wait_for(
            Duration::from_secs(15),
            "the node to lead alone",
            &|| node.log_tail(),
            || node.role_is(Role::Primary),
        );
        node
    };
    let first = run("run-1.log");
    let first_events = first.events(0).expect("events").events;
    first.sigterm();
    wait_for(
        Duration::from_secs(10),
        "the first run to stop",
        &|| first.log_tail(),
        || first.exited(),
    );
    assert!(first.exit_status().success());
    assert!(journal.is_file(), "no journal file at {}", journal.display());

    let second = run("run-2.log");
    let events = second.events(0).expect("events").events;
    let names: Vec<&str> = events.iter().map(|e| e.name.as_str()).collect();
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "numbered on without a gap: {seqs:?}"
    );
    // The first run's events come back as they were served then, then its stop, then
    // the second run's start.
    assert_eq!(
        &events[..first_events.len()],
        &first_events[..],
        "the first run's events changed"
    );
    let stopped = names
        .iter()
        .position(|n| *n == "stopped")
        .expect("the first run's stop is in the journal");
    assert!(stopped >= first_events.len(), "{names:?}");
    let restarted = names
        .iter()
        .rposition(|n| *n == "started")
        .expect("the second run's start");
    assert!(
        restarted > stopped,
        "the second run's start after the first run's stop: {names:?}"
    );
    assert_eq!(names.iter().filter(|n| **n == "started").count(), 2, "{names:?}");
}
