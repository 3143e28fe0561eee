//! `bench rate` end to end, small: one rate (2 kHz, a 500 µs cycle: `app.cycle_us`) for
//! two seconds on real processes. The backup is frozen for 60 ms inside the window, so
//! its loop handles a deadline tens of ms late: the row must show that late wake-up as
//! a missed deadline, read from the node's own counters (before and after in the JSON),
//! and the rate must not pass — a bench that printed zeros would fail here.
#![allow(clippy::disallowed_methods)]

use std::path::PathBuf;
use std::time::Duration;
use twinloop_sim::harness::bench::BenchConfig;
use twinloop_sim::harness::rate::rate_with;
use twinloop_sim::harness::rig::{RigConfig, Timing};

#[test]
fn bench_rate_counts_a_frozen_backups_late_wake_from_the_nodes() {
    let binary = twinloop_demo::binary::locate().expect("the twinloop-demo binary");
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("bench-rate-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = BenchConfig {
        rig: RigConfig {
            // A 100 ms window: the 60 ms freeze is no silence for the primary to act on.
            timing: Timing::HARNESS,
            proxy: false,
            progress: false,
            watch_interval: Duration::from_millis(20),
            ..RigConfig::new(dir.clone(), binary)
        },
        count: 1,
        settle_ms: 0,
        seconds: 2,
    };
    let mut froze = None;
    let result = rate_with(&config, &[2000], |rig| {
        let backup = rig
            .consoles
            .iter()
            .position(|c| c.status().is_ok_and(|s| s.role == twinloop::io::schema::Role::Backup))
            .expect("a backup");
        rig.nodes[backup].freeze()?;
        std::thread::sleep(Duration::from_millis(60));
        rig.nodes[backup].thaw()?;
        froze = Some(backup);
        Ok(())
    })
    .expect("bench rate ran");
    let backup = froze.expect("the window ran the injection");
    let json = &result.json;
    assert_eq!(json["target_hz"], 10_000);
    assert!(json["highest_rate_hz"].is_null(), "{json}");
    assert!(json["realtime"].is_boolean() && json["harness_realtime"].is_boolean());
    let row = &json["rates"][0];
    assert_eq!(row["rate_hz"], 2000);
    assert_eq!(row["cycle_us"], 500);
    assert_eq!(row["started"], true, "{row}");
    assert_eq!(row["passed"], false, "{row}");
    assert_eq!(row["takeovers"], 0, "{row}");
    let nodes = row["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 2);
    let delta = |n: &serde_json::Value, key: &str| {
        n[format!("{key}_after")].as_u64().unwrap() - n[format!("{key}_before")].as_u64().unwrap()
    };
    let missed: u64 = nodes.iter().map(|n| delta(n, "late_wakes")).sum();
    assert_eq!(
        row["missed_deadlines"].as_u64(),
        Some(missed),
        "the sum of the nodes' counts"
    );
    assert!(
        delta(&nodes[backup], "late_wakes") >= 1,
        "the frozen backup's late wake: {row}"
    );
    assert!(nodes[backup]["lateness_max_us"].as_u64().unwrap() >= 10_000, "{row}");
    // The nodes ran the window's frames at 2 kHz: about 4 000 (a loaded host sends fewer).
    let ran = row["frames_run_primary"].as_u64().unwrap();
    let primary = 1 - backup;
    assert_eq!(ran, delta(&nodes[primary], "frame"));
    assert!(ran > 1000 && ran <= row["frames_sent"].as_u64().unwrap() + 2, "{row}");
    let _ = std::fs::remove_dir_all(&dir);
}
