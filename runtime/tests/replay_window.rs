//! The copies a takeover sends, against the dedup window docs/PROTOCOL.md asks of a sink:
//! a new primary re-emits only frames whose input it still holds, so no copy lies more
//! than `frames_buffered` frames below the newest frame the sink accepted.

use core::time::Duration;
use twinloop::testing::Pair;
use twinloop::{Config, Role};

/// Cuts every sync link while the primary runs on, until the backup has taken over, and
/// returns the pair a few cycles later.
fn partition_until_takeover(config: Config) -> Pair {
    let mut p = Pair::new(14, config, 0);
    p.start(0);
    p.start(1);
    p.run_for(Duration::from_millis(2000));
    assert_eq!(p.primary(), Some(0));
    assert_eq!(p.node(1).role(), Role::Backup);
    p.cut = [true; 4];
    let took = p.run_until(p.now + Duration::from_millis(5000), |p| {
        p.nodes[1].as_ref().is_some_and(|n| n.role() == Role::Primary)
    });
    assert!(took, "the backup took over");
    p.run_for(Duration::from_millis(20));
    p
}

#[test]
fn partition_takeover_replays_the_frames_of_window_and_probe() {
    // Default timing at a 1 ms cycle: the old primary ran on for window + probe = 700 ms,
    // and the new primary sends all of it again.
    let config = Config::default();
    let frames = config.detection_window_ms + config.probe_timeout_ms;
    let p = partition_until_takeover(config.clone());
    assert_eq!(p.sink.conflicts, 0);
    // TestApp sends one output a frame, two every third frame.
    assert!(
        p.sink.duplicates >= frames * 4 / 3 - 10,
        "{} copies, about {frames} frames' worth expected",
        p.sink.duplicates
    );
    assert!(
        p.sink.duplicate_depth_max >= frames - 5 && p.sink.duplicate_depth_max <= frames + 10,
        "copies reach back {} frames, window + probe is {frames}",
        p.sink.duplicate_depth_max
    );
    assert!(p.sink.duplicate_depth_max < config.frames_buffered);
}

#[test]
fn partition_takeover_replays_no_further_back_than_the_ring() {
    // A ring of 64 frames under a 700-frame detection: the copies are bounded by the ring,
    // so a sink keeping 64 frames of ids drops them all. (Their content differs from the
    // old primary's: the new one had to skip the frames it no longer held, so its state
    // left the old primary's history. Hence `frames_buffered` must cover window + probe,
    // docs/CONFIG.md; this configuration is the bound's test, not a usable one.)
    let config = Config {
        frames_buffered: 64,
        max_lag_frames: 32,
        ..Config::default()
    };
    let p = partition_until_takeover(config);
    assert!(p.sink.duplicates > 0, "the takeover sent copies");
    assert!(
        p.sink.duplicate_depth_max < 64,
        "a copy {} frames below the newest accepted, with a ring of 64",
        p.sink.duplicate_depth_max
    );
}
