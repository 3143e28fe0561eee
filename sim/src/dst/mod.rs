//! Deterministic simulation testing (DST) of a twinloop pair, in the manner of
//! TigerBeetle's VOPR.
//!
//! Two real [`twinloop::Node`]s run in one thread against a virtual clock ([`clock`]),
//! virtual sync links ([`network`]), an I/O source and an actuator sink ([`sink`]), and a
//! fault plan ([`faults`]) and, on some seeds, an attacker on the links ([`attacker`]) — all drawn from one `u64` seed ([`options`]). The checkers
//! ([`checker`]) sit outside the nodes and verify every invariant of DESIGN.md on every
//! run; the [`runner`] drives one seed and combines many. See `docs/DST.md`.

pub mod app;
pub mod attacker;
pub mod checker;
pub mod clock;
pub mod faults;
pub mod group;
pub mod network;
pub mod options;
pub mod runner;
pub mod sink;

pub use app::{TestWorkload, TestWorkloadFactory, Workload, WorkloadFactory};
pub use options::Options;
pub use runner::{run_seed, run_seed_with, run_seeds, FailureKind, Mutation, RunConfig, SeedReport, Summary};
