//! SIGHUP does not stop a node (issue 13, point 10): daemons take it as "reload", and a
//! node has nothing it can reload safely mid-run, so it logs one line, journals
//! `signal_ignored` and goes on; SIGTERM and SIGINT still stop it cleanly, and the node
//! logs which one came (issue 15: all three are read from one signalfd on the loop).
//! On real processes.
// Real processes on a real clock: the test bounds its waits with wall time.
#![allow(clippy::disallowed_methods)]

mod common;

use common::*;
use std::net::UdpSocket;
use std::process::Command;
use std::time::Duration;

/// Sends `signal` (`HUP`, `TERM`, `INT`) to `node`.
fn kill(node: &Node, signal: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &node.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} {}", node.pid());
}

#[test]
fn node_sighup_is_logged_and_ignored_sigterm_still_stops() {
    let (node, _sink) = start_alone("sigterm");
    kill(&node, "HUP");
    wait_for(
        Duration::from_secs(10),
        "the node to log the SIGHUP",
        &|| format!("exited: {}\n{}", node.exited(), node.log_tail()),
        || node.log_text().contains("SIGHUP received: ignored"),
    );
    assert!(!node.exited(), "SIGHUP stopped the node:\n{}", node.log_tail());
    assert!(node.role_is(Role::Primary), "{}", node.log_tail());
    let events = node.events(0).expect("events answered");
    let names: Vec<&str> = events.events.iter().map(|e| e.name.as_str()).collect();
    assert!(names.contains(&"signal_ignored"), "{names:?}");

    kill(&node, "TERM");
    stops_naming(&node, "SIGTERM");
}

#[test]
fn node_sigint_stops_and_is_named() {
    let (node, _sink) = start_alone("sigint");
    kill(&node, "INT");
    stops_naming(&node, "SIGINT");
}

/// Waits for `node` to exit 0 after `signal`, and checks it logged which signal it was.
fn stops_naming(node: &Node, signal: &str) {
    wait_for(
        Duration::from_secs(10),
        &format!("{signal} to stop the node"),
        &|| node.log_tail(),
        || node.exited(),
    );
    assert!(node.exit_status().success(), "{:?}", node.exit_status());
    assert!(
        node.log_text().contains(&format!("{signal} received: stopping")),
        "the log does not name {signal}:\n{}",
        node.log_tail()
    );
}

/// One node of a pair whose peer never starts, leading alone, and its sink.
fn start_alone(name: &str) -> (Node, UdpSocket) {
    let mut alone = Alone::new(&format!("signals-{name}"));
    let node = alone.start(&[]);
    (node, alone.sink)
}
