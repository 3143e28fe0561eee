//! `twinloop-witness`: the witness of a twinloop group (issue 16): it votes in the
//! succession, runs no program and never leads. The node machinery is the runtime's
//! ([`twinloop::node_main`]); `runtime.witness = true` is forced. Exit codes are in
//! `--help`.
//!
//! ```text
//! twinloop-witness --config configs/group/witness.toml
//! ```

use std::process::ExitCode;

fn main() -> ExitCode {
    twinloop::node_main::witness::run_witness(std::env::args_os())
}
