//! The node binary's machinery, for any control program: the configuration file with
//! `--set` overrides, `--check` and `--print-config`, the `[rt]` settings, signals and
//! logging. A program's `main` is one line:
//!
//! ```ignore
//! fn main() -> std::process::ExitCode {
//!     twinloop::run_node::<MyProgram>(std::env::args_os())
//! }
//! ```
//!
//! where `MyProgram` implements [`App`] and [`NodeProgram`] (its `[app]` settings type
//! and a constructor). `docs/PROGRAM.md` walks through a whole example.
//!
//! ```text
//! twinloop-demo --config configs/node-a.toml
//! twinloop-demo --config configs/node-b.toml --set runtime.priority=1 --log-level debug
//! ```
//!
//! Exit codes: 0 after a clean stop (SIGINT/SIGTERM; a primary hands over first), 1 when
//! the node could not start or had to stop (a socket, the state file), 2 for a
//! configuration error (one line on stderr naming the key).

pub mod config;
#[allow(unsafe_code)]
pub mod rt;
pub mod witness;

use crate::io::{self, log, Exit, Shell};
use crate::{App, Config};
use clap::{CommandFactory, FromArgMatches, Parser};
use config::{NodeFile, Override};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

/// A problem with one key of the `[app]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsError {
    /// The key within `[app]` (`cycle_ms`); reported as `app.cycle_ms`.
    pub key: String,
    /// What is wrong, in words an operator can act on.
    pub problem: String,
}

impl SettingsError {
    /// The problem `problem` with `key` (within `[app]`).
    pub fn new(key: impl Into<String>, problem: impl Into<String>) -> Self {
        SettingsError {
            key: key.into(),
            problem: problem.into(),
        }
    }
}

/// A program's `[app]` table: deserialized from the node's configuration file (every
/// key optional: missing keys take [`Default`]), printed back by `--print-config`, and
/// checked before anything opens.
pub trait AppSettings: Serialize + DeserializeOwned + Default + Clone + PartialEq + core::fmt::Debug {
    /// Checks the settings, against each other and against the core's configuration (for
    /// example that the program's state fits `runtime.state_bytes_max`). The default
    /// accepts everything.
    fn validate(&self, runtime: &Config) -> Result<(), SettingsError> {
        let _ = runtime;
        Ok(())
    }
}

/// A control program that runs as a node binary: [`run_node`] builds it from its settings.
pub trait NodeProgram: App + Sized {
    /// Its `[app]` table.
    type Settings: AppSettings;
    /// The binary's name, at the start of every error line and in `--help`.
    const NAME: &'static str;
    /// One line for `--help`.
    const ABOUT: &'static str;
    /// Its version for `--version` (usually `env!("CARGO_PKG_VERSION")`).
    const VERSION: &'static str;

    /// The program at a node's start, from validated settings.
    fn from_settings(settings: &Self::Settings) -> Self;
}

/// Any `[app]` table, kept as TOML and not checked: for tools that read a node's
/// configuration file (the console address, the key file) without knowing its program.
#[derive(Debug, Clone, PartialEq, Default, Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct AnyAppSettings(pub toml::Table);

impl AppSettings for AnyAppSettings {}

/// The exit codes, for `--help` (docs/CONFIG.md, "Rules").
const EXIT_CODES: &str = "Exit codes:
  0  a clean stop (SIGINT or SIGTERM; a primary hands over first), or --check,
     --print-config, --help or --version done
  1  the node could not start or had to stop: a port in use, the state file (unreadable,
     not an epoch file, not writable), a real-time setting refused, the epoch not persisted
  2  a configuration error: one line on stderr naming the key (a value, a key file),
     or a bad command line";

/// One node of a twinloop hot-standby pair.
#[derive(Debug, Parser)]
#[command(long_about = None, after_help = EXIT_CODES)]
struct Cli {
    /// The node's configuration file (TOML; every key is in docs/CONFIG.md).
    #[arg(short, long, value_name = "FILE")]
    config: PathBuf,
    /// Overrides `runtime.node_id`.
    #[arg(long, value_name = "ID")]
    node_id: Option<u8>,
    /// Overrides `node.name`.
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// Overrides `node.profile`: `default` or `fast`.
    #[arg(long, value_name = "PROFILE")]
    profile: Option<String>,
    /// Overrides `node.state_file` (relative to the current directory).
    #[arg(long, value_name = "FILE")]
    state_file: Option<PathBuf>,
    /// Overrides `frames.bind`.
    #[arg(long, value_name = "ADDR")]
    frames: Option<String>,
    /// Overrides `outputs.sinks` (repeat for several sinks).
    #[arg(long, value_name = "ADDR")]
    sink: Vec<String>,
    /// Overrides `console.bind`.
    #[arg(long, value_name = "ADDR")]
    console: Option<String>,
    /// Overrides `console.key_file` (relative to the current directory).
    #[arg(long, value_name = "FILE")]
    console_key_file: Option<PathBuf>,
    /// Overrides `log.level`: error, warn, info or debug.
    #[arg(long, value_name = "LEVEL")]
    log_level: Option<String>,
    /// Overrides any key: `--set runtime.heartbeat_interval_ms=10`, `--set 'outputs.sinks=["127.0.0.1:7500"]'`.
    /// Applied in order, after the file and before the named flags.
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = Override::parse)]
    overrides: Vec<Override>,
    /// Check the configuration and every file a start reads (key files, the state file),
    /// try the [rt] settings, open no socket, and exit: 0 when a start would go ahead,
    /// otherwise the exit code and the one error line a start would give.
    #[arg(long)]
    check: bool,
    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    print_config: bool,
}

fn absolute(path: &PathBuf) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| path.clone())
        .display()
        .to_string()
}

impl Cli {
    /// The named flags as overrides, after the `--set` ones.
    fn overrides(&self) -> Vec<Override> {
        let mut all = self.overrides.clone();
        if let Some(id) = self.node_id {
            all.push(Override {
                key: "runtime.node_id".into(),
                value: toml::Value::Integer(i64::from(id)),
            });
        }
        if let Some(name) = &self.name {
            all.push(Override::string("node.name", name));
        }
        if let Some(profile) = &self.profile {
            all.push(Override::string("node.profile", profile));
        }
        if let Some(path) = &self.state_file {
            all.push(Override::string("node.state_file", &absolute(path)));
        }
        if let Some(addr) = &self.frames {
            all.push(Override::string("frames.bind", addr));
        }
        if !self.sink.is_empty() {
            all.push(Override {
                key: "outputs.sinks".into(),
                value: toml::Value::Array(self.sink.iter().map(|s| toml::Value::String(s.clone())).collect()),
            });
        }
        if let Some(addr) = &self.console {
            all.push(Override::string("console.bind", addr));
        }
        if let Some(path) = &self.console_key_file {
            all.push(Override::string("console.key_file", &absolute(path)));
        }
        if let Some(level) = &self.log_level {
            all.push(Override::string("log.level", level));
        }
        all
    }
}

/// Runs one node of `P` with the command line `args` (the program name first, as
/// `std::env::args_os()` gives it) and returns the process's exit code.
pub fn run_node<P: NodeProgram>(args: impl IntoIterator<Item = impl Into<OsString> + Clone>) -> ExitCode {
    let command = Cli::command()
        .name(P::NAME)
        .bin_name(P::NAME)
        .about(P::ABOUT)
        .version(P::VERSION);
    let cli = match command
        .try_get_matches_from(args)
        .and_then(|matches| Cli::from_arg_matches(&matches))
    {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let name = P::NAME;
    let file = match NodeFile::<P::Settings>::load(&cli.config, &cli.overrides()) {
        Ok(file) => file,
        Err(e) => {
            eprintln!("{name}: {}: {e}", cli.config.display());
            return ExitCode::from(2);
        }
    };
    // The project's line format on stderr, at the configured level: every line from here
    // on (`--check`'s real-time lines included) goes through it. A program that installed
    // a `log` logger of its own keeps it.
    let node_name = if file.node.name.is_empty() {
        format!("node-{}", file.runtime.node_id)
    } else {
        file.node.name.clone()
    };
    let level = log::Level::parse(&file.log.level).unwrap_or(log::Level::Info);
    let _ = log::NodeLogger::new(&node_name, level).install();
    if cli.print_config {
        return match file.to_toml() {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{name}: {e}");
                ExitCode::from(2)
            }
        };
    }
    if cli.check {
        // The checks a start makes before it opens a socket, by the same functions, with
        // the same exit code and line; then the `[rt]` settings, tried on this process.
        let files = match io::preflight::check_files(&file.shell()) {
            Ok(files) => files,
            Err(e) => {
                eprintln!("{name}: {e}");
                return ExitCode::from(if e.is_config() { 2 } else { 1 });
            }
        };
        for warning in &files.warnings {
            eprintln!("{name}: warning: {warning}");
        }
        if let Err(code) = apply_rt(&file.rt) {
            return code;
        }
        println!("{}: configuration valid", cli.config.display());
        return ExitCode::SUCCESS;
    }

    // Before any thread starts (the program's, the state file's writer): SIGINT and
    // SIGTERM wait, blocked in every thread, for the loop's signalfd, which tells them apart.
    if let Err(e) = io::stop_on_signals() {
        log::error(format_args!("{e}"));
        return ExitCode::from(1);
    }
    let app = P::from_settings(&file.app);
    let shell = match Shell::new(file.shell(), file.runtime.clone(), app) {
        Ok(shell) => shell,
        Err(mut e) => {
            // A link's socket named as the file names it, with its peer and the key to fix.
            let mut fix = String::new();
            if let io::ShellError::Socket(socket) = &mut e {
                (socket.what, fix) = file.link_socket_name(&socket.what);
            }
            eprintln!("{name}: {e}{fix}");
            return ExitCode::from(if e.is_config() { 2 } else { 1 });
        }
    };
    // After the shell allocated its buffers (mlockall locks them too) and started its
    // state-file writer (which stays on the normal scheduler: the priority is this
    // thread's), before the loop.
    if let Err(code) = apply_rt(&file.rt) {
        return code;
    }
    match shell.run() {
        Ok(Exit::SwitchoverRefused(_) | Exit::SwitchoverAborted | Exit::SwitchoverTimedOut) => {
            // Stopped without a handover (the log says why): still a clean stop.
            ExitCode::SUCCESS
        }
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            log::error(format_args!("{e}"));
            ExitCode::from(1)
        }
    }
}

/// Applies the `[rt]` settings to the calling thread (and the process), logging each;
/// `Err` with the exit code when one failed and `rt.best_effort` is off.
fn apply_rt(settings: &config::RtConfig) -> Result<(), ExitCode> {
    let (applied, failed) = rt::apply(settings);
    for line in applied {
        log::info(format_args!("real-time: {line}"));
    }
    if !failed.is_empty() {
        for e in &failed {
            log::error(format_args!("real-time: {e}"));
        }
        if !settings.best_effort {
            log::error(format_args!(
                "not starting: set rt.best_effort = true to run without them"
            ));
            return Err(ExitCode::from(1));
        }
    }
    Ok(())
}
