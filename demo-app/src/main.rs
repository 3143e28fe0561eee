//! `twinloop-demo`: one node of a twinloop pair running the tank program.
//!
//! ```text
//! twinloop-demo --config configs/node-a.toml
//! twinloop-demo --config configs/node-b.toml --set runtime.priority=1 --log-level debug
//! ```
//!
//! Everything but the program is the runtime's node machinery
//! ([`twinloop::node_main`]): the configuration file and its overrides, `--check`,
//! `--print-config`, `[rt]`, signals and logging. Exit codes are in `--help`.

use std::process::ExitCode;
use twinloop_demo::TankApp;

fn main() -> ExitCode {
    twinloop::run_node::<TankApp>(std::env::args_os())
}
