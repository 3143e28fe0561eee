//! `twinctl`: the operator console for a twinloop pair.
//!
//! - `status`: both nodes side by side and the pair's health, as an exit code for scripts
//!   (0 healthy, 1 degraded, 2 down);
//! - `watch`: the same, live, in a terminal (also over ssh);
//! - `switchover`: a planned, bumpless switchover, confirmed, then followed to its outcome;
//! - `force-primary`, `rejoin`: the operator's word to one node that waits for it (cold start
//!   held, colder primary);
//! - `events`: the nodes' journals (transitions with their reasons, alarms, notices).
//!
//! It speaks the console protocol of docs/CONSOLE.md to each node; every command, flag,
//! exit code and `--json` schema is documented there ("twinctl").
#![forbid(unsafe_code)]
#![warn(missing_docs)]
// An operator tool on a real clock: timeouts and "how long did it take" are wall time.
#![allow(clippy::disallowed_methods)]

#[macro_use]
mod out;
mod client;
mod events;
mod health;
mod keygen;
mod model;
mod pair;
mod render;
mod status;
mod switchover;
mod targets;
mod watch;

use clap::{Parser, Subcommand, ValueEnum};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Exit codes shared by every command (docs/CONSOLE.md, "Exit codes").
pub mod exit {
    /// Success; `status`: the pair is healthy.
    pub const OK: u8 = 0;
    /// `status`: degraded. `switchover`: refused, aborted, timed out or not confirmed.
    pub const FAILED: u8 = 1;
    /// `status`: down (no primary reachable). Other commands: a node needed could not be
    /// reached or did not speak the protocol.
    pub const DOWN: u8 = 2;
    /// Bad usage or local problem: flags, a configuration or key file, no terminal.
    pub const USAGE: u8 = 3;
}

/// A command that could not do its job: the exit code and one line for stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The process's exit code.
    pub code: u8,
    /// What went wrong, one line.
    pub message: String,
}

impl Failure {
    /// A usage or local error (exit 3).
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure {
            code: exit::USAGE,
            message: message.into(),
        }
    }
}

#[derive(Parser)]
#[command(
    name = "twinctl",
    version,
    about = "Operator console for a twinloop pair: status, live view, planned switchover, event journal",
    after_help = "Nodes: --config FILE (the node's TOML: its console.bind and console.key_file) or --node ADDR, \
                  once per node.\nExit codes: 0 ok/healthy, 1 degraded/refused, 2 down/unreachable, 3 usage. \
                  See docs/CONSOLE.md."
)]
struct Cli {
    /// A node's console address (ip:port or host:port); give it once per node.
    #[arg(long = "node", value_name = "ADDR", global = true)]
    nodes: Vec<String>,
    /// A node's configuration file: twinctl uses its console.bind and console.key_file.
    /// Give it once per node; these come before any --node.
    #[arg(long = "config", value_name = "FILE", global = true)]
    configs: Vec<PathBuf>,
    /// The console key file for `switchover` (default: the primary's console.key_file
    /// from its --config).
    #[arg(long, value_name = "FILE", global = true)]
    key_file: Option<PathBuf>,
    /// Bound on connecting to a node and on each of its responses.
    #[arg(long, value_name = "MS", default_value_t = 1500, global = true,
          value_parser = clap::value_parser!(u64).range(1..=600_000))]
    timeout_ms: u64,
    #[command(subcommand)]
    command: Command,
}

/// Journal event kinds, for `events --kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// Role and sync changes, with their reason.
    Transition,
    /// Alarms (divergence, input lost, …).
    Alarm,
    /// Notices (links up/down, probes, transfers, switchover delays).
    Notice,
    /// The node process's own events (start, stop, hooks, console commands).
    Shell,
}

impl Kind {
    /// The protocol's name for the kind.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Transition => "transition",
            Kind::Alarm => "alarm",
            Kind::Notice => "notice",
            Kind::Shell => "shell",
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Both nodes side by side and the pair's health; exit 0 healthy, 1 degraded, 2 down.
    Status {
        /// One JSON object on stdout instead of the table (schema: docs/CONSOLE.md).
        #[arg(long)]
        json: bool,
        /// An alarm raised within this many seconds makes the pair degraded; 0: any alarm
        /// since the node started.
        #[arg(long, value_name = "S", default_value_t = 600)]
        alarm_window_s: u64,
    },
    /// A live view of the pair, refreshed in place; q or Ctrl-C quits.
    Watch {
        /// How often to ask the nodes and redraw.
        #[arg(long, value_name = "MS", default_value_t = 250,
              value_parser = clap::value_parser!(u64).range(50..=60_000))]
        interval_ms: u64,
        /// As for `status`.
        #[arg(long, value_name = "S", default_value_t = 600)]
        alarm_window_s: u64,
    },
    /// A planned switchover: the primary hands over to its backup. Asks for confirmation
    /// unless --yes, then waits for the outcome.
    Switchover {
        /// Do not ask for confirmation (required when standard input is not a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
        /// How long to wait for the outcome (default: the primary's switchover_timeout_ms
        /// + 2000).
        #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
        wait_ms: Option<u64>,
        /// One JSON object on stdout describing the outcome (schema: docs/CONSOLE.md).
        #[arg(long)]
        json: bool,
        /// The node to take over: its id (1..=255) or the name of a node given; it must
        /// be a backup following in sync, else the primary refuses. Default: the backup.
        #[arg(long, value_name = "NODE")]
        to: Option<String>,
    },
    /// The operator's word to one node that waits for it (alarm cold_start_held or
    /// colder_primary, a refused peer): it leads now, with its state or from a cold start.
    /// Give exactly one node.
    ForcePrimary,
    /// The operator's word to one node that kept its state after colder_primary: it gives
    /// it up and joins the primary. Give exactly one node.
    Rejoin,
    /// The nodes' journals, merged by time: transitions with their reasons, alarms,
    /// notices.
    Events {
        /// Keep following new events (until Ctrl-C).
        #[arg(long, short = 'f')]
        follow: bool,
        /// Show the last N events of each node first; 0: all it still holds.
        #[arg(long, value_name = "N", default_value_t = 20)]
        last: u64,
        /// Only these kinds (repeatable).
        #[arg(long = "kind", value_name = "KIND")]
        kinds: Vec<Kind>,
        /// One JSON object per line (schema: docs/CONSOLE.md).
        #[arg(long)]
        json: bool,
        /// With --follow: how often to ask.
        #[arg(long, value_name = "MS", default_value_t = 200,
              value_parser = clap::value_parser!(u64).range(10..=60_000))]
        interval_ms: u64,
    },
    /// A new random key for console.key_file or node.sync_key_file (64 hex digits).
    Keygen {
        /// Write it to this new file, mode 0600 (never overwritten); default: stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

/// `force-primary` or `rejoin` to the one node given: exit 0 done, 1 refused, 2 unreachable.
fn operator(
    targets: &[targets::Target],
    cmd: &str,
    key_file: Option<PathBuf>,
    timeout: Duration,
) -> Result<u8, Failure> {
    let [target] = targets else {
        return Err(Failure::usage(format!(
            "{cmd} acts on one node: give exactly one --node or --config"
        )));
    };
    let Some(file) = key_file.or_else(|| target.key_file.clone()) else {
        return Err(Failure::usage(format!(
            "{cmd} needs the console key: pass --key-file FILE, or --config FILE with a console.key_file"
        )));
    };
    let key = targets::read_key(&file).map_err(Failure::usage)?;
    let mut client = client::Client::new(target.addr, timeout);
    match client.operator(cmd, &key) {
        Ok(reply) => {
            println!("{}", reply.message);
            Ok(if reply.result == twinloop::io::schema::CommandResult::Refused {
                1
            } else {
                0
            })
        }
        Err(error) => {
            eprintln!("twinctl: {cmd}: {error}");
            Ok(2)
        }
    }
}

fn run(cli: Cli) -> Result<u8, Failure> {
    // Talks to no node.
    let command = match cli.command {
        Command::Keygen { out } => return keygen::run(out.as_deref()),
        command => command,
    };
    let targets = targets::resolve(&cli.configs, &cli.nodes).map_err(Failure::usage)?;
    let timeout = Duration::from_millis(cli.timeout_ms);
    match command {
        Command::Keygen { .. } => Err(Failure::usage("keygen talks to no node")),
        Command::Status { json, alarm_window_s } => {
            let mut pair = pair::Pair::new(targets, timeout);
            pair.use_keys(cli.key_file.as_deref());
            Ok(status::run(&mut pair, json, alarm_window_s.saturating_mul(1000)))
        }
        Command::Watch {
            interval_ms,
            alarm_window_s,
        } => watch::run(
            targets,
            cli.key_file.as_deref(),
            timeout,
            Duration::from_millis(interval_ms),
            alarm_window_s.saturating_mul(1000),
        ),
        Command::ForcePrimary => operator(&targets, "force-primary", cli.key_file, timeout),
        Command::Rejoin => operator(&targets, "rejoin", cli.key_file, timeout),
        Command::Switchover { yes, wait_ms, json, to } => {
            let mut pair = pair::Pair::new(targets, timeout);
            pair.use_keys(cli.key_file.as_deref());
            switchover::run(
                &mut pair,
                &switchover::Options {
                    key_file: cli.key_file,
                    yes,
                    wait_ms,
                    json,
                    to,
                },
            )
        }
        Command::Events {
            follow,
            last,
            kinds,
            json,
            interval_ms,
        } => {
            let mut pair = pair::Pair::new(targets, timeout);
            pair.use_keys(cli.key_file.as_deref());
            events::run(
                &mut pair,
                &events::Options {
                    follow,
                    last,
                    kinds,
                    json,
                    interval: Duration::from_millis(interval_ms),
                },
            )
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap exits 2 on bad usage; 2 means "down" here, so bad usage is 3.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { exit::USAGE } else { exit::OK });
        }
    };
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            // Not `eprintln!`, which panics (exit 101) when stderr is gone: `watch` ends
            // with this line when its terminal went away.
            let _ = writeln!(std::io::stderr(), "twinctl: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn cli_global_flags_after_the_command() {
        let cli = Cli::try_parse_from(["twinctl", "status", "--node", "127.0.0.1:1", "--json"]).unwrap();
        assert_eq!(cli.nodes, ["127.0.0.1:1"]);
        assert!(matches!(cli.command, Command::Status { json: true, .. }));
    }
}
