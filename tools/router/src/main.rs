//! `twinloop-router --config router.toml`: serves the HMIs of the pairs the file lists
//! (docs/HMI.md, "The router"). `--check` checks the file and exits.
//!
//! Exit codes: 0 stopped by a signal or checked, 2 a bad command line or file (the
//! message names the key and the fix), 1 the listen address cannot be bound.

use clap::Parser;
use std::process::ExitCode;
use twinloop_router::config::RouterFile;
use twinloop_router::route::Router;

#[derive(Parser)]
#[command(
    name = "twinloop-router",
    version,
    about = "One Modbus/TCP endpoint for the HMIs of a fleet of twinloop pairs"
)]
struct Args {
    /// The configuration file (TOML: `[router]` and one `[[pair]]` per pair).
    #[arg(long)]
    config: std::path::PathBuf,
    /// Check the file and exit.
    #[arg(long)]
    check: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let text = match std::fs::read_to_string(&args.config) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("twinloop-router: cannot read {}: {e}", args.config.display());
            return ExitCode::from(2);
        }
    };
    let file = match RouterFile::parse(&text) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("twinloop-router: {}: {e}", args.config.display());
            return ExitCode::from(2);
        }
    };
    if args.check {
        println!("{}: ok, {} pairs", args.config.display(), file.pair.len());
        return ExitCode::SUCCESS;
    }
    let listener = match std::net::TcpListener::bind(file.router.listen) {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "twinloop-router: cannot listen on {} (router.listen): {e}",
                file.router.listen
            );
            return ExitCode::from(1);
        }
    };
    eprintln!(
        "twinloop-router: listening on {} for {} pairs",
        file.router.listen,
        file.pair.len()
    );
    let router = Router::new(file);
    // The router keeps nothing a restart would lose: a signal ends it at once.
    let _ = ctrlc::set_handler(|| std::process::exit(0));
    match router.serve(listener) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("twinloop-router: {e}");
            ExitCode::from(1)
        }
    }
}
