//! `twinloop-conveyor`: one node of a pair running [`twinloop_conveyor::Conveyor`]; the
//! flags, the configuration file and the exit codes are the runtime's (`--help`).
fn main() -> std::process::ExitCode {
    twinloop::run_node::<twinloop_conveyor::Conveyor>(std::env::args_os())
}
