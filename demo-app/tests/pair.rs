//! Two real `twinloop-demo` processes on loopback, with a test I/O source (closing the
//! loop through the plant model) and a deduplicating actuator sink:
//!
//! - SIGKILL to the primary: the backup takes over, and after dedup at the sink no output
//!   id is lost or duplicated — compared with a reference run of the same program on the
//!   same frames, in-process;
//! - SIGTERM to the primary: it hands over (planned switchover) and exits; every frame has
//!   its outputs at the sink and none arrives twice.
//!
//! Every wait is a bounded poll of a condition (the console's status, the sink's
//! contents, a process's exit); the bounds are generous for a loaded 2-core machine.
// Real processes on a real clock: the test measures and bounds with wall time.
#![allow(clippy::disallowed_methods)]

mod common;

use common::*;
use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};
use twinloop::io::schema::{EventKind, ReasonName};

#[test]
fn pair_primary_killed_backup_takes_over_without_loss_or_duplicate() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rig = Rig::start("kill");

    // The console: events, and a refused switchover with a wrong key.
    let events = rig.a.events(0).expect("events");
    assert!(
        events
            .events
            .iter()
            .any(|e| e.kind == EventKind::Transition && e.name == "started_first"),
        "the journal records why node 1 leads: {events:?}"
    );
    let refused = rig.a.request(r#"{"cmd":"switchover","key":"wrong","id":1}"#).unwrap();
    assert_eq!(refused["ok"], false);
    assert_eq!(refused["error"]["code"], "bad_key");
    assert_eq!(refused["id"], 1);
    assert!(rig.a.role_is(Role::Primary));

    // Run a while in lockstep.
    let before_kill = rig.plant.frames_sent() + 250;
    rig.await_sink_frame(before_kill, Duration::from_secs(20));
    let a_epoch = rig.a.status().unwrap().epoch;
    // The backup has its takeover epoch on disk before it needs it.
    let reserved = reserved_epoch(&rig.dir.join("node-2.epoch"));
    assert!(
        reserved > a_epoch,
        "node 2 reserved {reserved:#x}, not above {a_epoch:#x}"
    );

    let killed_at = Instant::now();
    let frame_at_kill = rig.plant.frames_sent();
    rig.a.sigkill();
    wait_for(
        Duration::from_secs(10),
        "node 2 to take over",
        &|| rig.context(),
        || rig.b().role_is(Role::Primary),
    );
    let seen_primary_after = killed_at.elapsed();

    // Run a while under the new primary, then stop the frames and let it finish them.
    rig.await_sink_frame(frame_at_kill + 250, Duration::from_secs(20));
    let last = rig.plant.stop_sending();
    rig.await_sink_frame(last, Duration::from_secs(10));
    wait_for(
        Duration::from_secs(10),
        "node 2 to run the last frame",
        &|| rig.context(),
        || rig.b().frame() == last,
    );

    let status = rig.b().status().unwrap();
    assert_eq!(status.takeovers, 1);
    assert_eq!(
        status.last_transition.map(|t| t.reason),
        Some(ReasonName::TakeoverAfterProbe)
    );
    assert!(status.epoch > a_epoch, "a takeover starts a higher epoch");
    assert_eq!(status.epoch_node, 2, "node 2 started the new epoch");
    assert_eq!(status.epoch, reserved, "node 2 led its reservation");

    rig.b().sigterm();
    wait_for(Duration::from_secs(10), "node 2 to stop", &|| rig.context(), || {
        rig.b().exited()
    });
    assert!(
        rig.b().exit_status().success(),
        "node 2 exits 0 on SIGTERM: {}",
        rig.b().log_tail()
    );
    let hooks = fs::read_to_string(rig.dir.join("node-2.hooks")).unwrap_or_default();
    assert!(
        hooks.lines().any(|l| l.starts_with("primary takeover_after_probe")),
        "the role-change hook ran with the takeover's role and reason:\n{hooks}"
    );

    let (frames, sink) = rig.plant.shutdown();
    let first_b = sink
        .arrivals
        .iter()
        .find(|(at, node, _, _)| *node == 2 && *at > killed_at)
        .map(|(at, ..)| at.duration_since(killed_at));
    eprintln!(
        "takeover: node 2 reported primary within {seen_primary_after:?} of SIGKILL; its first output \
         reached the sink {first_b:?} after it; {} outputs accepted, {} duplicates dropped, {} frames",
        sink.sink.accepted.len(),
        sink.sink.duplicates,
        last
    );
    assert!(first_b.is_some(), "node 2 emitted after the kill");
    assert_eq!(sink.malformed, 0);
    assert_eq!(sink.sink.stale_rejected, 0, "a dead primary sends nothing stale");
    assert_exactly_the_reference(&sink.sink, &frames, last);
    // Kept on failure, for the logs.
    let _ = fs::remove_dir_all(&rig.dir);
}

#[test]
fn pair_primary_sigterm_hands_over_without_missed_frame() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rig = Rig::start("term");
    let before = rig.plant.frames_sent() + 250;
    rig.await_sink_frame(before, Duration::from_secs(20));

    let term_at = Instant::now();
    rig.a.sigterm();
    wait_for(
        Duration::from_secs(15),
        "node 1 to hand over and exit",
        &|| rig.context(),
        || rig.a.exited(),
    );
    let exited_after = term_at.elapsed();
    assert!(rig.a.exit_status().success(), "node 1 exits 0 after handing over");
    let log = rig.a.log_text();
    assert!(
        log.contains("handed over in a planned switchover") && log.contains("stopped (HandedOver)"),
        "node 1 handed over before it exited:\n{}",
        rig.a.log_tail()
    );
    wait_for(Duration::from_secs(5), "node 2 to lead", &|| rig.context(), || {
        rig.b().role_is(Role::Primary)
    });
    let status = rig.b().status().unwrap();
    assert_eq!(status.switchovers, 1);
    assert_eq!(status.takeovers, 0, "a planned handover, not a takeover");

    let after = rig.plant.frames_sent() + 250;
    rig.await_sink_frame(after, Duration::from_secs(20));
    let last = rig.plant.stop_sending();
    rig.await_sink_frame(last, Duration::from_secs(10));
    wait_for(
        Duration::from_secs(10),
        "node 2 to run the last frame",
        &|| rig.context(),
        || rig.b().frame() == last,
    );
    rig.b().sigterm();
    wait_for(Duration::from_secs(10), "node 2 to stop", &|| rig.context(), || {
        rig.b().exited()
    });
    assert!(rig.b().exit_status().success());

    let (frames, sink) = rig.plant.shutdown();
    eprintln!(
        "handover: node 1 exited {exited_after:?} after SIGTERM; {} outputs accepted, {} duplicates, {} frames",
        sink.sink.accepted.len(),
        sink.sink.duplicates,
        last
    );
    assert_eq!(sink.sink.duplicates, 0, "a planned switchover sends nothing twice");
    assert_eq!(sink.sink.stale_rejected, 0);
    assert_eq!(sink.malformed, 0);
    assert_exactly_the_reference(&sink.sink, &frames, last);
    let _ = fs::remove_dir_all(&rig.dir);
}

#[test]
fn pair_frames_to_the_backup_only_primary_hands_over_once() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rig = Rig::start("input-handover");
    rig.await_sink_frame(rig.plant.frames_sent() + 250, Duration::from_secs(20));
    // Past the hold after node 1 became primary (input_handover_hold_ms, 10 s by
    // default): the frames node 2 receives until the handover then fit its ring
    // (frames_buffered), and no frame is lost to the wait.
    let config = rig.a.client().config().expect("config");
    let hold_ms = config.runtime.input_handover_hold_ms;
    wait_for(
        Duration::from_millis(hold_ms + 20_000),
        "node 1 to lead for the hold",
        &|| rig.context(),
        || rig.a.status().unwrap().last_transition.map_or(0, |t| t.ago_ms) > hold_ms,
    );

    // The source's path to node 1 dies; node 2 still gets every frame.
    let cut_after = rig.plant.frames_sent();
    rig.plant.targets_on.store(0b10, std::sync::atomic::Ordering::SeqCst);
    // After input_handover_ms (1 s).
    wait_for(
        Duration::from_secs(20),
        "node 2 to lead after node 1's input died",
        &|| rig.context(),
        || rig.b().role_is(Role::Primary),
    );
    let b = rig.b().status().unwrap();
    assert_eq!(b.switchovers, 1, "a planned handover: {b:?}");
    assert_eq!(b.takeovers, 0);

    // The new primary runs the frames node 1 never got, and there is no handover back.
    rig.await_sink_frame(rig.plant.frames_sent() + 500, Duration::from_secs(20));
    let a = rig.a.status().unwrap();
    let b = rig.b().status().unwrap();
    assert_eq!(a.role, Role::Backup, "{a:?}");
    let handovers = |s: &Status| s.input.as_ref().map_or(0, |i| i.handovers);
    assert_eq!(handovers(&a), 1, "one input handover: {a:?}");
    assert_eq!(handovers(&b), 0, "none back: {b:?}");
    assert_eq!(b.switchovers, 1);
    assert!(b.frame > cut_after + 500, "{b:?}");
    let log = rig.a.log_text();
    assert!(
        log.contains("handing over") && log.contains("handed over in a planned switchover"),
        "node 1 logged why it handed over:
{}",
        rig.a.log_tail()
    );

    let last = rig.plant.stop_sending();
    rig.await_sink_frame(last, Duration::from_secs(10));
    let (frames, sink) = rig.plant.shutdown();
    assert_eq!(sink.sink.duplicates, 0, "a planned handover sends nothing twice");
    assert_eq!(sink.sink.stale_rejected, 0);
    // Every frame's outputs exactly once: those node 1 never got, node 2 ran.
    assert_exactly_the_reference(&sink.sink, &frames, last);
    let _ = fs::remove_dir_all(&rig.dir);
}

#[test]
fn pair_primary_sigterm_frames_paused_hands_over_and_last_hook_says_stopped() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rig = Rig::start("term-paused");
    rig.await_sink_frame(rig.plant.frames_sent() + 250, Duration::from_secs(20));
    let last = rig.plant.stop_sending();
    rig.await_sink_frame(last, Duration::from_secs(10));

    // No frame comes while node 1 stops: the release is at the last frame it ran.
    rig.a.sigterm();
    wait_for(
        Duration::from_secs(15),
        "node 1 to hand over and exit",
        &|| rig.context(),
        || rig.a.exited(),
    );
    assert!(rig.a.exit_status().success(), "{}", rig.a.log_tail());
    wait_for(Duration::from_secs(5), "node 2 to lead", &|| rig.context(), || {
        rig.b().role_is(Role::Primary)
    });
    let log = rig.a.log_text();
    assert!(
        log.contains("stopped (HandedOver)"),
        "node 1 handed over before it exited:
{}",
        rig.a.log_tail()
    );
    assert!(
        !log.contains("did not complete in time") && !log.contains("SwitchoverAborted"),
        "a completed switchover is not logged as aborted:
{}",
        rig.a.log_tail()
    );
    let hooks = fs::read_to_string(rig.dir.join("node-1.hooks")).unwrap_or_default();
    let last_hook = hooks.lines().last().unwrap_or_default();
    assert!(
        last_hook.starts_with("stopped stopped:handed_over"),
        "node 1's last hook run says role=stopped:
{hooks}"
    );
    assert_eq!(rig.b().status().unwrap().frame, last);

    // Node 2 stops alone (no backup to hand over to): its last hook says stopped too.
    wait_for(
        Duration::from_secs(10),
        "node 2 to count no backup",
        &|| rig.context(),
        || rig.b().sync_is(Sync::Alone),
    );
    rig.b().sigterm();
    wait_for(Duration::from_secs(10), "node 2 to stop", &|| rig.context(), || {
        rig.b().exited()
    });
    let hooks = fs::read_to_string(rig.dir.join("node-2.hooks")).unwrap_or_default();
    assert!(
        hooks
            .lines()
            .last()
            .unwrap_or_default()
            .starts_with("stopped stopped:stopped"),
        "{hooks}"
    );
    let (frames, sink) = rig.plant.shutdown();
    assert_eq!(sink.sink.duplicates, 0);
    assert_exactly_the_reference(&sink.sink, &frames, last);
    let _ = fs::remove_dir_all(&rig.dir);
}

#[test]
fn node_config_error_is_one_line_naming_the_key_and_exit_code_2() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("config-error-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let config = dir.join("bad.toml");
    fs::write(
        &config,
        "[node]\nstate_file = \"x.epoch\"\n[runtime]\nnode_id = 1\nheartbeat_ms = 5\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_twinloop-demo"))
        .arg("--config")
        .arg(&config)
        .output()
        .expect("run twinloop-demo");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains("`runtime.heartbeat_ms`"), "names the key: {stderr}");

    // A valid key with a value out of range, given on the command line.
    fs::write(&config, "[node]\nstate_file = \"x.epoch\"\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_twinloop-demo"))
        .arg("--config")
        .arg(&config)
        .args(["--set", "runtime.links=0"])
        .output()
        .expect("run twinloop-demo");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("`runtime.links`"), "names the key: {stderr}");
    let _ = fs::remove_dir_all(&dir);
}

/// The `reserved <n>` line of a node's state file (0 without one).
fn reserved_epoch(path: &std::path::Path) -> u64 {
    let text = fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("reserved "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}
