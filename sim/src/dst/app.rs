//! The application under test, pluggable: a [`Workload`] makes the control program and
//! the input frames the I/O source sends; [`Recorder`] wraps the program so that the
//! checkers, outside the nodes, see the state digest after every step (and the digests
//! of its input and outputs, for invariant 10).

use super::options::{Options, StateSize};
use std::collections::BTreeMap;
use twinloop::app::{OutputKind, OUTPUTS_PER_FRAME_MAX, OUTPUT_PAYLOAD_MAX};
use twinloop::digest::fnv64;
use twinloop::testing::TestApp;
use twinloop::{App, Frame, Outbox, SnapshotError};

/// A non-determinism the fault plan injects into one node's application for one frame
/// (the divergence detection must catch it; invariant 12).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Injection {
    /// The next frame's outputs differ from what the program computes (its state does not).
    Output,
    /// After the next frame (its outputs as computed), the state differs: a state digest
    /// at that frame shows it, and so do the outputs of every frame after.
    State,
}

/// A control program and its inputs. Implement it for another application (the demo
/// tank, a plant model) and pass it to [`super::runner::run_seed_with`].
pub trait Workload {
    /// The control program.
    type App: App;

    /// A name for the options line.
    fn name(&self) -> &'static str;

    /// A fresh program, as at a node's first start or after a restart (state lost).
    fn new_app(&self) -> Self::App;

    /// Writes the input payload of frame `number` into `out` (cleared first). Must be
    /// deterministic in `number`: every node receives the same bytes.
    fn payload(&self, number: u64, out: &mut Vec<u8>);

    /// Arms `injection` in `app` for the next frame it runs; false when this program
    /// cannot be perturbed (the plan's divergence faults are then skipped).
    fn arm(&self, _app: &mut Self::App, _injection: Injection) -> bool {
        false
    }

    /// The frame an armed injection perturbed, once (then `None` until the next).
    fn take_fired(&self, _app: &mut Self::App) -> Option<u64> {
        None
    }
}

/// Makes a workload for a seed's options (e.g. its state size).
pub trait WorkloadFactory {
    /// The workload made.
    type Workload: Workload;

    /// The workload for one seed.
    fn make(&self, options: &Options) -> Self::Workload;
}

/// Bytes of an [`EdgeApp`] snapshot that are not ballast: the `TestApp` state's
/// integers (three varints of at most 10 bytes, the ballast's length in at most 3) and
/// the trailer (the salt, 1 byte, and the inner length, 4).
pub const EDGE_OVERHEAD_BYTES: usize = 40;

/// Level keys an [`EdgeApp`] writes (see [`EdgeApp::push_levels`]).
pub const EDGE_LEVEL_KEYS: u16 = 4;

/// The runtime's `TestApp` (accumulated state, one or two event outputs per frame,
/// ballast), with levels of four keys after them (docs/DST.md, "Levels"), in
/// a snapshot of an exact size: the DST draws that size at, around and between multiples
/// of the transfer chunk, fixed or growing frame by frame (`docs/DST.md`, "State sizes").
///
/// Snapshot layout: the `TestApp` snapshot (postcard, `n` bytes), zero padding, the salt
/// (1 byte), `n` (u32 little-endian); in all exactly [`StateSize::bytes_after`] of the
/// frames run. The salt is state: 0 unless an [`Injection::State`] perturbed it, and when
/// not 0 it is in the digest and XORed into the last byte of every output.
#[derive(Debug, Clone)]
pub struct EdgeApp {
    inner: TestApp,
    size: StateSize,
    salt: u8,
    /// Test hook, not state: an injection for the next frame.
    armed: Option<Injection>,
    /// Test hook, not state: the frame an injection perturbed, not yet taken.
    fired: Option<u64>,
}

/// What an [`Injection::State`] XORs into the salt: each one flips the node's state
/// relative to a peer that agreed with it.
const SALT_FLIP: u8 = 0x5A;

impl EdgeApp {
    /// A fresh program whose snapshot has the sizes `size` gives.
    pub fn new(size: StateSize) -> Self {
        EdgeApp {
            inner: TestApp::new(size.ballast_bytes()),
            size,
            salt: 0,
            armed: None,
            fired: None,
        }
    }

    /// The snapshot's size now, in bytes.
    pub fn snapshot_bytes(&self) -> usize {
        self.size.bytes_after(self.inner.frames_run())
    }

    /// The levels of frame `number`, after its events, each a value of the state (the
    /// first event's accumulator) and the frame: key 0 every frame but every fourth (a
    /// value refreshed each cycle, and frames with events only); key 1 twice in every
    /// fifth frame (two values of one key in a frame: the second supersedes the first);
    /// key 2 every seventh frame (a value a takeover's burst seldom holds twice); key 3
    /// once every 1,000 frames, from frame 11 (a long-unchanged value: lost on the output
    /// path, only the refresh heals it, issue 22).
    fn push_levels(number: u64, outbox: &mut Outbox) {
        let Some(first) = outbox.as_slice().first() else {
            return;
        };
        let mut value = [0u8; 10];
        let n = first.len().min(8);
        value[..n].copy_from_slice(&first[first.len() - n..]);
        value[8] = number as u8;
        let mut push = |key: u16, salt: u8| {
            value[9] = salt;
            let _ = outbox.push_level(key, &value);
        };
        if number % 4 != 0 {
            push(0, 0);
        }
        if number % 5 == 0 {
            push(1, 1);
            push(1, 2);
        }
        if number % 7 == 0 {
            push(2, 3);
        }
        if number % 1000 == 11 {
            push(3, 4);
        }
    }
}

impl App for EdgeApp {
    fn step(&mut self, frame: Frame<'_>, outbox: &mut Outbox) {
        let armed = self.armed.take();
        if armed == Some(Injection::Output) {
            self.inner.diverge_at_frame = Some(frame.number);
        }
        self.inner.step(frame, outbox);
        Self::push_levels(frame.number, outbox);
        if self.salt != 0 {
            // The salt is in every output: a state that differs shows at the next frame.
            let mut outputs = [([0u8; OUTPUT_PAYLOAD_MAX], 0usize, OutputKind::Event); OUTPUTS_PER_FRAME_MAX];
            let n = outbox.len().min(OUTPUTS_PER_FRAME_MAX);
            for (i, (copy, output)) in outputs.iter_mut().zip(outbox.as_slice()).enumerate() {
                copy.0[..output.len()].copy_from_slice(output);
                copy.1 = output.len();
                copy.2 = outbox.kind(i);
            }
            outbox.clear();
            for (bytes, len, kind) in &mut outputs[..n] {
                if let Some(last) = bytes[..*len].last_mut() {
                    *last ^= self.salt;
                }
                let _ = outbox.push_kind(*kind, &bytes[..*len]);
            }
        }
        if armed == Some(Injection::State) {
            self.salt ^= SALT_FLIP;
        }
        if armed.is_some() {
            self.fired = Some(frame.number);
        }
    }

    fn snapshot(&self, buf: &mut [u8]) -> Result<usize, SnapshotError> {
        let total = self.snapshot_bytes();
        if buf.len() < total {
            return Err(SnapshotError::TooLarge);
        }
        let n = self.inner.snapshot(&mut buf[..total])?;
        if n + 5 > total {
            // The drawn size leaves no room for the state: a simulator bug, said plainly.
            return Err(SnapshotError::TooLarge);
        }
        buf[n..total - 5].fill(0);
        buf[total - 5] = self.salt;
        buf[total - 4..total].copy_from_slice(&(n as u32).to_le_bytes());
        Ok(total)
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<(), SnapshotError> {
        let total = bytes.len();
        let trailer = total.checked_sub(5).ok_or(SnapshotError::Malformed)?;
        let mut n = [0u8; 4];
        n.copy_from_slice(&bytes[total - 4..]);
        let n = u32::from_le_bytes(n) as usize;
        if n > trailer {
            return Err(SnapshotError::Malformed);
        }
        let mut inner = self.inner.clone();
        inner.restore(&bytes[..n])?;
        // A snapshot of the wrong size for its frame count: torn or from another draw.
        if self.size.bytes_after(inner.frames_run()) != total {
            return Err(SnapshotError::Malformed);
        }
        self.inner = inner;
        self.salt = bytes[trailer];
        Ok(())
    }

    fn digest(&self) -> u64 {
        match self.salt {
            0 => self.inner.digest(),
            salt => self.inner.digest() ^ fnv64(&[salt]),
        }
    }

    fn identity(&self) -> twinloop::AppIdentity {
        self.inner.identity()
    }
}

/// The runtime's `TestApp` in an [`EdgeApp`] of the seed's state size.
#[derive(Debug, Clone, Copy)]
pub struct TestWorkload {
    /// The snapshot's size: fixed or growing.
    pub state: StateSize,
}

impl Workload for TestWorkload {
    type App = EdgeApp;

    fn name(&self) -> &'static str {
        "test"
    }

    fn new_app(&self) -> EdgeApp {
        EdgeApp::new(self.state)
    }

    fn payload(&self, number: u64, out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(&TestApp::payload_for(number));
    }

    fn arm(&self, app: &mut EdgeApp, injection: Injection) -> bool {
        app.armed = Some(injection);
        true
    }

    fn take_fired(&self, app: &mut EdgeApp) -> Option<u64> {
        app.fired.take()
    }
}

/// Makes a [`TestWorkload`] with the seed's state size.
#[derive(Debug, Clone, Copy, Default)]
pub struct TestWorkloadFactory;

impl WorkloadFactory for TestWorkloadFactory {
    type Workload = TestWorkload;

    fn make(&self, options: &Options) -> TestWorkload {
        TestWorkload { state: options.state }
    }
}

/// One step as the recorder saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// The frame run.
    pub frame: u64,
    /// The application's state digest after it.
    pub digest: u64,
    /// Outputs it produced.
    pub outputs: u8,
    /// FNV-1a of each output's payload, in order (the first `outputs` are set).
    pub output_hashes: [u64; OUTPUTS_PER_FRAME_MAX],
    /// Each output's kind, in order (the first `outputs` are set; events beyond).
    pub output_kinds: [OutputKind; OUTPUTS_PER_FRAME_MAX],
    /// FNV-1a of the input payload the step ran on (what a commit calls `input_digest`).
    pub input_digest: u64,
    /// The outbox's digest after the step (`Outbox::digest`, a commit's `output_digest`).
    pub output_digest: u64,
}

impl Step {
    /// A step with these outputs' hashes (input and output digests 0).
    pub fn new(frame: u64, digest: u64, output_hashes: &[u64]) -> Self {
        let mut hashes = [0; OUTPUTS_PER_FRAME_MAX];
        let n = output_hashes.len().min(OUTPUTS_PER_FRAME_MAX);
        hashes[..n].copy_from_slice(&output_hashes[..n]);
        Step {
            frame,
            digest,
            outputs: n as u8,
            output_hashes: hashes,
            output_kinds: [OutputKind::Event; OUTPUTS_PER_FRAME_MAX],
            input_digest: 0,
            output_digest: 0,
        }
    }

    /// The hashes of the outputs produced.
    pub fn output_hashes(&self) -> &[u64] {
        &self.output_hashes[..usize::from(self.outputs)]
    }
}

/// Steps one simulator event may run before the recorder calls it a runaway node.
pub const STEPS_PER_EVENT_MAX: usize = 1 << 20;

/// Wraps an application and records `(frame, digest)` after every step, for the digest
/// checker. The record is not part of the state (snapshots carry only the inner state).
#[derive(Debug)]
pub struct Recorder<A> {
    inner: A,
    steps: Vec<Step>,
    /// FNV-1a of every snapshot the application gave (a state transfer's), not yet taken.
    snapshots: core::cell::RefCell<Vec<u64>>,
    /// FNV-1a of the bytes of the last snapshot restored, not yet taken.
    restored_hash: Option<u64>,
    /// The HMI writer's writes given since the last step (issue 18): applied before it.
    hmi_pending: Vec<i64>,
    /// The current history's writes (the writer's values are unique per write): value to
    /// the frames it was applied at. Cleared by a restore (a new history).
    pub hmi_history: BTreeMap<i64, Vec<u64>>,
    /// The first frame stepped in the current history (`None`: none yet).
    pub hmi_history_from: Option<u64>,
    /// The last frame stepped.
    pub hmi_frame_last: u64,
    /// This application was ever restored from a snapshot (else its history began cold).
    pub restored: bool,
    /// A write applied twice within one history: `(value, first frame, second frame)`.
    pub hmi_twice: Option<(i64, u64, u64)>,
}

/// The DST's one HMI tag: a setpoint of any 32-bit value, written by the HMI writer.
pub const DST_HMI_TAGS: [twinloop::hmi::HmiTag; 1] = [twinloop::hmi::HmiTag::write(
    "dst_setpoint",
    twinloop::hmi::HmiClass::Setpoint,
    twinloop::hmi::HmiType::U32,
    "",
    0,
    u32::MAX as i64,
)];

impl<A: App> Recorder<A> {
    /// Wraps `inner`.
    pub fn new(inner: A) -> Self {
        Recorder {
            inner,
            steps: Vec::with_capacity(1024),
            snapshots: core::cell::RefCell::new(Vec::new()),
            restored_hash: None,
            hmi_pending: Vec::new(),
            hmi_history: BTreeMap::new(),
            hmi_history_from: None,
            hmi_frame_last: 0,
            restored: false,
            hmi_twice: None,
        }
    }

    /// The hashes of the snapshots taken since the last call (a primary's, for a state
    /// transfer), in order.
    pub fn take_snapshots(&mut self, into: &mut Vec<u64>) {
        into.append(self.snapshots.get_mut());
    }

    /// The hash of the bytes of the last snapshot restored since the last call (a
    /// backup's, at the end of a state transfer; the core may still refuse it).
    pub fn take_restored(&mut self) -> Option<u64> {
        self.restored_hash.take()
    }

    /// The steps since the last call, in order; the simulator drains after every event.
    pub fn take_steps(&mut self, into: &mut Vec<Step>) {
        into.append(&mut self.steps);
    }

    /// The wrapped application.
    pub fn inner(&self) -> &A {
        &self.inner
    }

    /// The wrapped application, to arm an injection in it.
    pub fn inner_mut(&mut self) -> &mut A {
        &mut self.inner
    }
}

impl<A: App> App for Recorder<A> {
    fn step(&mut self, frame: Frame<'_>, outbox: &mut Outbox) {
        self.hmi_history_from.get_or_insert(frame.number);
        self.hmi_frame_last = frame.number;
        for value in self.hmi_pending.drain(..) {
            let frames = self.hmi_history.entry(value).or_default();
            if let Some(&first) = frames.first() {
                self.hmi_twice.get_or_insert((value, first, frame.number));
            }
            frames.push(frame.number);
        }
        self.inner.step(frame, outbox);
        assert!(
            self.steps.len() < STEPS_PER_EVENT_MAX,
            "a node ran {STEPS_PER_EVENT_MAX} frames in one event"
        );
        let mut output_hashes = [0; OUTPUTS_PER_FRAME_MAX];
        for (hash, output) in output_hashes.iter_mut().zip(outbox.as_slice()) {
            *hash = fnv64(output);
        }
        let mut output_kinds = [OutputKind::Event; OUTPUTS_PER_FRAME_MAX];
        for (kind, &k) in output_kinds.iter_mut().zip(outbox.kinds()) {
            *kind = k;
        }
        self.steps.push(Step {
            frame: frame.number,
            digest: self.inner.digest(),
            outputs: outbox.len() as u8,
            output_hashes,
            output_kinds,
            input_digest: fnv64(frame.payload),
            output_digest: outbox.digest(frame.number),
        });
    }

    fn snapshot(&self, buf: &mut [u8]) -> Result<usize, SnapshotError> {
        let n = self.inner.snapshot(buf)?;
        // One hash of the state a transfer sends, not per frame: snapshots are rare.
        self.snapshots.borrow_mut().push(fnv64(&buf[..n]));
        Ok(n)
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<(), SnapshotError> {
        self.inner.restore(bytes)?;
        self.restored_hash = Some(fnv64(bytes));
        // A new history: what this node applied before is not the pair's.
        self.hmi_history.clear();
        self.hmi_history_from = None;
        self.hmi_pending.clear();
        self.restored = true;
        Ok(())
    }

    fn digest(&self) -> u64 {
        self.inner.digest()
    }

    fn identity(&self) -> twinloop::AppIdentity {
        self.inner.identity()
    }

    fn hmi_tags(&self) -> &[twinloop::hmi::HmiTag] {
        &DST_HMI_TAGS
    }

    fn hmi_write(&mut self, _tag: u16, value: i64) {
        self.hmi_pending.push(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dst::options::StateShape;
    use proptest::prelude::*;

    fn run(app: &mut EdgeApp, frames: core::ops::RangeInclusive<u64>) -> Vec<Vec<u8>> {
        let mut outputs = Vec::new();
        let mut outbox = Outbox::new();
        for number in frames {
            outbox.clear();
            let payload = TestApp::payload_for(number);
            app.step(
                Frame {
                    number,
                    payload: &payload,
                },
                &mut outbox,
            );
            outputs.extend(outbox.as_slice().iter().map(|o| o.to_vec()));
        }
        outputs
    }

    fn growing(base_bytes: usize, per_frame: usize, max: usize) -> StateSize {
        StateSize {
            shape: StateShape::Growing,
            base_bytes,
            grow_bytes_per_frame: per_frame,
            grow_max_bytes: max,
        }
    }

    #[test]
    fn edge_app_snapshot_is_exactly_the_drawn_size_fixed_and_growing() {
        let mut buf = vec![0u8; 1 << 16];
        for bytes in [40, 63, 64, 65, 1023, 1024, 1025, 16 * 1024] {
            let mut app = EdgeApp::new(StateSize::fixed(bytes));
            run(&mut app, 1..=30);
            assert_eq!(app.snapshot(&mut buf), Ok(bytes), "fixed {bytes}");
        }
        let mut app = EdgeApp::new(growing(255, 7, 512));
        assert_eq!(app.snapshot(&mut buf), Ok(255));
        run(&mut app, 1..=10);
        assert_eq!(app.snapshot(&mut buf), Ok(255 + 70));
        run(&mut app, 11..=200);
        assert_eq!(app.snapshot(&mut buf), Ok(255 + 512), "growth stops at its maximum");
    }

    #[test]
    fn edge_app_restore_takes_the_state_and_refuses_a_wrong_size() {
        let size = growing(100, 3, 300);
        let mut buf = vec![0u8; 1 << 12];
        let mut primary = EdgeApp::new(size);
        run(&mut primary, 1..=20);
        let n = primary.snapshot(&mut buf).unwrap_or(0);
        let mut backup = EdgeApp::new(size);
        assert_eq!(backup.restore(&buf[..n]), Ok(()));
        assert_eq!(backup.digest(), primary.digest());
        assert_eq!(run(&mut backup, 21..=30), run(&mut primary, 21..=30));
        assert_eq!(backup.restore(&buf[..n - 1]), Err(SnapshotError::Malformed));
        assert_eq!(backup.restore(&[]), Err(SnapshotError::Malformed));
        assert_eq!(backup.digest(), primary.digest(), "a refused snapshot changes nothing");
    }

    #[test]
    fn edge_app_injected_output_differs_for_one_frame() {
        let w = TestWorkload {
            state: StateSize::fixed(100),
        };
        let (mut a, mut b) = (w.new_app(), w.new_app());
        assert!(w.arm(&mut b, Injection::Output));
        let (oa, ob) = (run(&mut a, 1..=1), run(&mut b, 1..=1));
        assert_ne!(oa, ob);
        assert_eq!(a.digest(), b.digest(), "the state is the same");
        assert_eq!(w.take_fired(&mut b), Some(1));
        assert_eq!(w.take_fired(&mut b), None);
        assert_eq!(run(&mut a, 2..=5), run(&mut b, 2..=5));
    }

    #[test]
    fn edge_app_injected_state_shows_in_the_digest_then_in_every_output() {
        let w = TestWorkload {
            state: StateSize::fixed(100),
        };
        let (mut a, mut b) = (w.new_app(), w.new_app());
        assert!(w.arm(&mut b, Injection::State));
        assert_eq!(
            run(&mut a, 1..=1),
            run(&mut b, 1..=1),
            "the frame's outputs as computed"
        );
        assert_ne!(a.digest(), b.digest());
        assert_eq!(w.take_fired(&mut b), Some(1));
        for frame in 2..=4 {
            assert_ne!(run(&mut a, frame..=frame), run(&mut b, frame..=frame), "frame {frame}");
        }
        // A transfer from the other node heals it.
        let mut buf = vec![0u8; 1 << 12];
        let n = a.snapshot(&mut buf).unwrap_or(0);
        assert_eq!(b.restore(&buf[..n]), Ok(()));
        assert_eq!(a.digest(), b.digest());
        assert_eq!(run(&mut a, 5..=6), run(&mut b, 5..=6));
    }

    proptest! {
        #[test]
        fn edge_app_restore_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let mut app = EdgeApp::new(growing(64, 1, 256));
            let before = app.digest();
            if app.restore(&bytes).is_err() {
                prop_assert_eq!(app.digest(), before);
            }
        }
    }

    #[test]
    fn recorder_records_every_step_and_is_transparent() {
        let w = TestWorkload {
            state: StateSize::fixed(100),
        };
        let mut plain = w.new_app();
        let mut recorded = Recorder::new(w.new_app());
        let mut payload = Vec::new();
        let mut outbox = Outbox::new();
        for number in 1..=6 {
            w.payload(number, &mut payload);
            for app in [&mut plain as &mut dyn App, &mut recorded as &mut dyn App] {
                outbox.clear();
                app.step(
                    Frame {
                        number,
                        payload: &payload,
                    },
                    &mut outbox,
                );
            }
        }
        let mut steps = Vec::new();
        recorded.take_steps(&mut steps);
        assert_eq!(steps.len(), 6);
        assert_eq!(steps.last().map(|s| s.digest), Some(plain.digest()));
        assert_eq!(steps[2].outputs, 3, "frame 3 gives two events and a level");
        assert_eq!(
            &steps[4].output_kinds[..4],
            &[
                OutputKind::Event,
                OutputKind::Level { key: 0 },
                OutputKind::Level { key: 1 },
                OutputKind::Level { key: 1 }
            ],
            "frame 5: an event, then key 0's level and two of key 1"
        );
        assert_eq!(recorded.digest(), plain.digest());
        let mut again = Vec::new();
        recorded.take_steps(&mut again);
        assert!(again.is_empty(), "steps are drained");
    }
}
