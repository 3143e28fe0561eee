//! # twinloop-demo — a tank control program on the twinloop runtime
//!
//! - [`tank`]: the control program ([`tank::TankApp`], an [`twinloop::App`]): level PI
//!   control with anti-windup, pump interlocks, latched alarms and a totalizer.
//! - [`layout`]: its input and output payload layouts (documented in `docs/PROTOCOL.md`).
//! - [`tags`]: the program on tags (`[app] io = "tags"`): its inputs from the input process
//!   image of a Modbus gateway, its command and alarm words as out tags.
//! - [`plant`]: a model of the tank process, to close the loop in simulations.
//! - [`node_config`]: the node's TOML configuration file with the tank's `[app]` table, and
//!   the program's [`twinloop::NodeProgram`] implementation.
//!
//! The `twinloop-demo` binary runs the program as one node of a pair.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod binary;
pub mod layout;
pub mod node_config;
pub mod plant;
pub mod tags;
pub mod tank;

pub use tank::{TankApp, TankParams};
