//! The application under test, pluggable: a [`Workload`] makes the control program and
//! the input frames the I/O source sends; [`Recorder`] wraps the program so that the
//! checkers, outside the nodes, see the state digest after every step (and the digests
//! of its input and outputs, for invariant 10).

use super::options::Options;
use twinloop::app::OUTPUTS_PER_FRAME_MAX;
use twinloop::digest::fnv64;
use twinloop::testing::TestApp;
use twinloop::{App, Frame, Outbox, SnapshotError};

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
}

/// Makes a workload for a seed's options (e.g. its state size).
pub trait WorkloadFactory {
    /// The workload made.
    type Workload: Workload;

    /// The workload for one seed.
    fn make(&self, options: &Options) -> Self::Workload;
}

/// The runtime's `TestApp`: accumulated state, one or two outputs per frame, ballast.
#[derive(Debug, Clone, Copy)]
pub struct TestWorkload {
    /// Bytes of ballast in the state, so that state transfers take several chunks.
    pub ballast_bytes: usize,
}

impl Workload for TestWorkload {
    type App = TestApp;

    fn name(&self) -> &'static str {
        "test"
    }

    fn new_app(&self) -> TestApp {
        TestApp::new(self.ballast_bytes)
    }

    fn payload(&self, number: u64, out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(&TestApp::payload_for(number));
    }
}

/// Makes a [`TestWorkload`] with the seed's ballast.
#[derive(Debug, Clone, Copy, Default)]
pub struct TestWorkloadFactory;

impl WorkloadFactory for TestWorkloadFactory {
    type Workload = TestWorkload;

    fn make(&self, options: &Options) -> TestWorkload {
        TestWorkload {
            ballast_bytes: options.ballast_bytes,
        }
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
}

impl<A: App> Recorder<A> {
    /// Wraps `inner`.
    pub fn new(inner: A) -> Self {
        Recorder {
            inner,
            steps: Vec::with_capacity(1024),
        }
    }

    /// The steps since the last call, in order; the simulator drains after every event.
    pub fn take_steps(&mut self, into: &mut Vec<Step>) {
        into.append(&mut self.steps);
    }

    /// The wrapped application.
    pub fn inner(&self) -> &A {
        &self.inner
    }
}

impl<A: App> App for Recorder<A> {
    fn step(&mut self, frame: Frame<'_>, outbox: &mut Outbox) {
        self.inner.step(frame, outbox);
        assert!(
            self.steps.len() < STEPS_PER_EVENT_MAX,
            "a node ran {STEPS_PER_EVENT_MAX} frames in one event"
        );
        let mut output_hashes = [0; OUTPUTS_PER_FRAME_MAX];
        for (hash, output) in output_hashes.iter_mut().zip(outbox.as_slice()) {
            *hash = fnv64(output);
        }
        self.steps.push(Step {
            frame: frame.number,
            digest: self.inner.digest(),
            outputs: outbox.len() as u8,
            output_hashes,
            input_digest: fnv64(frame.payload),
            output_digest: outbox.digest(frame.number),
        });
    }

    fn snapshot(&self, buf: &mut [u8]) -> Result<usize, SnapshotError> {
        self.inner.snapshot(buf)
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<(), SnapshotError> {
        self.inner.restore(bytes)
    }

    fn digest(&self) -> u64 {
        self.inner.digest()
    }

    fn identity(&self) -> twinloop::AppIdentity {
        self.inner.identity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorder_records_every_step_and_is_transparent() {
        let w = TestWorkload { ballast_bytes: 10 };
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
        assert_eq!(steps[2].outputs, 2, "frame 3 gives two outputs");
        assert_eq!(recorded.digest(), plain.digest());
        let mut again = Vec::new();
        recorded.take_steps(&mut again);
        assert!(again.is_empty(), "steps are drained");
    }
}
