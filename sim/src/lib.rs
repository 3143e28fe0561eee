//! The twinloop simulator harness.
//!
//! - [`dst`]: deterministic simulation testing — real nodes, virtual time and network,
//!   thousands of seeded fault schedules, invariant checkers outside the nodes.
//! - [`harness`]: the process harness — real node processes on loopback, a plant model,
//!   a fault proxy, process faults, a report, and benchmarks (`docs/BENCHMARKS.md`).
//!
//! The binary (`twinloop-sim`) exposes it as subcommands; see `docs/DST.md`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod dst;
pub mod harness;
