//! Two real `twinloop-demo` processes configured wrongly (docs/SECURITY.md,
//! "Misconfiguration"): each node logs one ERROR naming the difference, they do not pair
//! (no state transfer, no endless resync), and only one of them leads.
//!
//! Every wait is a bounded poll of a condition (the console's status, a log's contents).
// Real processes on a real clock: the test bounds with wall time.
#![allow(clippy::disallowed_methods)]

mod common;

use common::*;
use std::time::Duration;

/// The log's ERROR lines.
fn error_lines(node: &Node) -> Vec<String> {
    node.log_text()
        .lines()
        .filter(|l| l.contains("ERROR"))
        .map(str::to_owned)
        .collect()
}

/// Runs the misconfigured pair until both logged their refusal, then a while longer, and
/// checks the outcome: one ERROR each, naming `what`; node 1 leads alone; node 2 waits
/// in the starting role and never led; no transfer, no divergence.
fn check_refused(rig: &Rig, what: &str) {
    wait_for(
        Duration::from_secs(10),
        "both nodes to refuse the pairing",
        &|| rig.context(),
        || error_lines(&rig.a).len() == 1 && error_lines(rig.b()).len() == 1,
    );
    // Long enough for the 882 transfers of 9 s that different settings used to cause to
    // show; every status on the way must show one primary only.
    let frame = rig.plant.frames_sent();
    for _ in 0..20 {
        assert!(rig.a.role_is(Role::Primary), "{}", rig.context());
        assert!(rig.b().role_is(Role::Starting), "{}", rig.context());
        std::thread::sleep(Duration::from_millis(100));
    }
    rig.await_sink_frame(frame + 100, Duration::from_secs(10));
    for node in [&rig.a, rig.b()] {
        let errors = error_lines(node);
        assert_eq!(errors.len(), 1, "one ERROR line, not one per attempt: {errors:?}");
        assert!(errors[0].contains("pairing_refused"), "{errors:?}");
        assert!(
            errors[0].contains(what),
            "the line names the difference ({what}): {errors:?}"
        );
        let log = node.log_text();
        assert!(!log.contains("transfer_started"), "no state transfer:\n{log}");
        assert!(!log.contains("divergence"), "no divergence alarm:\n{log}");
    }
    let b = rig.b().status().unwrap();
    assert_eq!(b.takeovers, 0);
    // Counted: as from a refused peer, or (same id) as carrying this node's own id.
    let r = &b.rejections;
    assert!(r.refused_peer + r.misaddressed > 0, "{b:?}");
    let b_log = rig.b().log_text();
    assert!(
        !b_log.contains("started_first") && !b_log.contains("won_tiebreak"),
        "node 2 never led:\n{b_log}"
    );
}

#[test]
fn misconfig_same_node_id_one_error_each_one_primary() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rig = Rig::start_with(
        "same-id",
        RigOptions {
            edit_b: Some(|file| file.runtime.node_id = 1),
            ..RigOptions::default()
        },
    );
    check_refused(&rig, "node_id");
}

#[test]
fn misconfig_different_app_settings_one_error_no_transfers() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rig = Rig::start_with(
        "other-app",
        RigOptions {
            edit_b: Some(|file| file.app.setpoint_um = 900_000),
            ..RigOptions::default()
        },
    );
    check_refused(&rig, "[app]");
}
