//! `twinloop-gateway`: a Modbus/TCP I/O gateway for a twinloop pair (docs/GATEWAY.md).
//! It polls the field devices of its tag map once per cycle, sends the input process
//! image as the numbered frame to every node, and writes the outputs the nodes send —
//! through the library's reference gateway rule (dedup, epoch fence, lease) — to the
//! devices.
use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

mod config;
mod modbus;
mod run;

/// A Modbus/TCP I/O gateway for a twinloop pair (docs/GATEWAY.md).
#[derive(Debug, Parser)]
#[command(
    name = "twinloop-gateway",
    version,
    about,
    after_help = "Exit codes:\n  0  stopped by SIGINT or SIGTERM, or --check passed\n  1  could not start (a socket) or the event loop failed\n  2  a configuration error: one line on stderr naming the key and the fix"
)]
struct Cli {
    /// The configuration file (a [gateway] table and the tag map).
    #[arg(long)]
    config: PathBuf,
    /// The status line as one JSON object per line (on stdout, once a second).
    #[arg(long)]
    json: bool,
    /// Check the configuration and exit.
    #[arg(long)]
    check: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let checked = match config::GatewayFile::read(&cli.config).and_then(|f| f.check()) {
        Ok(checked) => checked,
        Err(e) => {
            eprintln!("twinloop-gateway: {e}");
            return ExitCode::from(2);
        }
    };
    if cli.check {
        println!(
            "{}: ok ({} devices, {} tags, image {} bytes, layout {:#010x})",
            cli.config.display(),
            checked.map.devices().len(),
            checked.map.tags().len(),
            checked.map.image_len(),
            checked.map.layout_id()
        );
        return ExitCode::SUCCESS;
    }
    let _ = twinloop::io::log::NodeLogger::new("gateway", checked.level).install();
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        if let Err(e) = ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst)) {
            eprintln!("twinloop-gateway: cannot handle signals: {e}");
            return ExitCode::from(1);
        }
    }
    let mut runner = match run::Runner::new(checked, cli.json) {
        Ok(runner) => runner,
        Err(e) => {
            eprintln!("twinloop-gateway: {e}");
            return ExitCode::from(1);
        }
    };
    match runner.run(&stop) {
        Ok(()) => {
            twinloop::io::log::info(format_args!("gateway: stopped"));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("twinloop-gateway: {e}");
            ExitCode::from(1)
        }
    }
}
