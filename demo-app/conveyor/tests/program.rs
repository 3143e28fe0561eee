//! The conveyor program on its own (steps, snapshots) and through the deterministic
//! simulator: a pair of nodes under drawn faults (loss, partitions, crashes, restarts,
//! switchovers) must give the sink exactly the outputs one conveyor gives, once each.

use twinloop::app::{App, Frame, Outbox};
use twinloop::node_main::{AppSettings, NodeProgram};
use twinloop_conveyor::{Conveyor, ConveyorSettings};
use twinloop_sim::dst::{run_seed_with, Options, RunConfig, Workload, WorkloadFactory};

const START: u8 = 1;
const STOP: u8 = 2;
const GUARD_CLOSED: u8 = 4;
const PART: u8 = 8;

fn step(app: &mut Conveyor, number: u64, bits: u8) -> Vec<Vec<u8>> {
    let mut outbox = Outbox::new();
    app.step(
        Frame {
            number,
            payload: &[bits],
        },
        &mut outbox,
    );
    outbox.as_slice().iter().map(|o| o.to_vec()).collect()
}

const OFF: [u8; 2] = [1, 0];
const ON: [u8; 2] = [1, 1];

#[test]
fn conveyor_start_with_guard_open_stays_stopped() {
    let mut app = Conveyor::from_settings(&ConveyorSettings::default());
    assert_eq!(step(&mut app, 1, START), [OFF], "the interlock holds the motor");
    assert_eq!(step(&mut app, 2, START | GUARD_CLOSED), [ON]);
    assert_eq!(step(&mut app, 3, GUARD_CLOSED), [ON], "it runs on once started");
    assert_eq!(step(&mut app, 4, 0), [OFF], "opening the guard stops it");
}

#[test]
fn conveyor_running_batch_complete_stops_motor() {
    let mut app = Conveyor::from_settings(&ConveyorSettings { batch_parts: 2 });
    assert_eq!(step(&mut app, 1, START | GUARD_CLOSED), [ON]);
    assert_eq!(step(&mut app, 2, GUARD_CLOSED | PART), [ON], "first part");
    assert_eq!(
        step(&mut app, 3, GUARD_CLOSED | PART),
        [ON],
        "the same part, still seen"
    );
    assert_eq!(step(&mut app, 4, GUARD_CLOSED), [ON]);
    assert_eq!(step(&mut app, 5, GUARD_CLOSED | PART), [OFF.to_vec(), vec![2, 1]]);
    assert_eq!(
        step(&mut app, 6, GUARD_CLOSED | STOP | START),
        [OFF],
        "stop wins over start"
    );
}

#[test]
fn conveyor_snapshot_restore_continues_identically() {
    let mut a = Conveyor::from_settings(&ConveyorSettings { batch_parts: 3 });
    step(&mut a, 1, START | GUARD_CLOSED);
    step(&mut a, 2, GUARD_CLOSED | PART);
    let mut buf = [0u8; 64];
    let len = a.snapshot(&mut buf).unwrap();
    let mut b = Conveyor::default();
    b.restore(&buf[..len]).unwrap();
    assert_eq!((b.digest(), &b), (a.digest(), &a));
}

#[test]
fn conveyor_settings_out_of_range_are_named() {
    let e = ConveyorSettings { batch_parts: 0 }
        .validate(&twinloop::Config::default())
        .unwrap_err();
    assert_eq!(e.key, "batch_parts");
}

/// The simulator's input: start, parts every few frames, now and then the guard opened or
/// the stop button, so that every branch runs in every seed.
struct ConveyorWorkload;

impl Workload for ConveyorWorkload {
    type App = Conveyor;

    fn name(&self) -> &'static str {
        "conveyor"
    }

    fn new_app(&self) -> Conveyor {
        Conveyor::from_settings(&ConveyorSettings { batch_parts: 5 })
    }

    fn payload(&self, number: u64, out: &mut Vec<u8>) {
        let phase = number % 120;
        let mut bits = if (100..104).contains(&phase) { 0 } else { GUARD_CLOSED };
        bits |= if phase % 40 < 3 { START } else { 0 };
        bits |= if phase == 70 { STOP } else { 0 };
        bits |= if number % 4 == 0 { PART } else { 0 };
        out.clear();
        out.push(bits);
    }
}

struct ConveyorFactory;

impl WorkloadFactory for ConveyorFactory {
    type Workload = ConveyorWorkload;

    fn make(&self, _options: &Options) -> ConveyorWorkload {
        ConveyorWorkload
    }
}

#[test]
fn conveyor_pair_under_simulated_faults_no_violation() {
    for seed in 1..=20 {
        let report = run_seed_with(seed, RunConfig::default(), &ConveyorFactory);
        assert!(
            report.failure.is_none(),
            "seed {seed}: {:?} {:?} {:?}\n{}",
            report.failure,
            report.panic,
            report.violations.first(),
            report.summary
        );
    }
}

/// The input of frame `n` for the pair tests: the guard closed, the start button pressed
/// for the first frames of every 50, a part passing every 4th frame.
fn conveyor_input(n: u64) -> Vec<u8> {
    let start = if n % 50 < 3 { START } else { 0 };
    let part = if n % 4 == 0 { PART } else { 0 };
    vec![GUARD_CLOSED | start | part]
}

#[test]
fn conveyor_pair_primary_crashes_backup_takes_over_outputs_exactly_once() {
    use std::time::Duration;
    use twinloop::testing::Pair;
    use twinloop::{Config, Role};
    let settings = ConveyorSettings { batch_parts: 3 };
    // Two conveyors on a virtual clock and in-memory links, a frame every millisecond.
    let mut pair = Pair::of(
        7,
        Config::fast(),
        move |_| Conveyor::from_settings(&settings),
        conveyor_input,
    );
    pair.start(0);
    pair.run_for(Duration::from_millis(100));
    pair.start(1);
    pair.run_for(Duration::from_millis(500));
    assert_eq!(pair.primary(), Some(0));
    // The primary dies; the backup takes over, and the plant sees every output once.
    pair.crash(0);
    pair.run_for(Duration::from_millis(500));
    assert_eq!(pair.node(1).role(), Role::Primary);
    let last = pair.node(1).frame();
    let first = pair.sink.accepted.keys().next().expect("outputs").0;
    let expected = pair.reference_outputs(first, last);
    let delivered: Vec<_> = pair.sink.accepted.range((first, 0)..=(last, u8::MAX)).collect();
    assert_eq!(delivered.len(), expected.len(), "nothing lost, nothing extra");
    for ((id, (_, payload)), (want_id, want)) in delivered.into_iter().zip(&expected) {
        assert_eq!((id, payload), (want_id, want));
    }
    assert_eq!(pair.sink.conflicts, 0);
}

#[test]
fn program_md_snippets_are_the_example() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let read = |path: &str| std::fs::read_to_string(root.join(path)).unwrap();
    let doc = read("docs/PROGRAM.md");
    let sources = [
        "demo-app/conveyor/src/lib.rs",
        "demo-app/conveyor/src/main.rs",
        "demo-app/conveyor/tests/program.rs",
    ];
    let code: String = sources.iter().map(|p| read(p)).collect();
    let config = read("configs/conveyor-a.toml");
    let source_py = read("demo-app/conveyor/source.py");
    let mut checked = 0;
    for (fence, source) in [
        ("```rust\n", &code),
        ("```toml\n", &config),
        ("```python\n", &source_py),
    ] {
        for block in doc.split(fence).skip(1) {
            let snippet = &block[..block.find("```").expect("a closed code block")];
            assert!(
                source.contains(snippet),
                "docs/PROGRAM.md has a snippet not in the example:\n{snippet}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 8, "{checked} snippets");
}
