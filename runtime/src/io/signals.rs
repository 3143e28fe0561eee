//! The signals the shell handles on its own event loop: SIGHUP.
//!
//! SIGINT and SIGTERM stop the node (ctrlc's thread, [`super::install_signal_handler`]).
//! SIGHUP, which daemons take as "reload", is **logged and ignored**: nothing the node
//! runs on can be reloaded safely in the middle of a run (a new configuration is applied
//! by restarting the nodes one at a time, which a pair is built for), and a hang-up of
//! the terminal that started a node must not stop a primary.
//!
//! SIGHUP is blocked in the thread that creates the shell, before the shell starts any
//! thread: threads inherit the mask, so no thread takes it, ctrlc's handler included, and
//! it stays pending until the loop reads it from a signalfd. Child processes (the hook)
//! start with an empty mask (the standard library resets it).

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use std::io;
use std::os::fd::AsRawFd;

/// Blocks SIGHUP in the calling thread (and so in every thread it starts afterwards).
/// A program that starts threads of its own before the shell calls this first.
pub fn block_hangup() -> io::Result<()> {
    hangup_set().thread_block().map_err(io::Error::from)
}

fn hangup_set() -> SigSet {
    let mut set = SigSet::empty();
    set.add(Signal::SIGHUP);
    set
}

/// A signalfd for SIGHUP, registered with the loop.
pub struct Signals {
    fd: SignalFd,
}

impl Signals {
    /// Blocks SIGHUP in this thread and registers a signalfd for it under `token`.
    pub fn new(registry: &Registry, token: Token) -> io::Result<Self> {
        block_hangup()?;
        let fd = SignalFd::with_flags(&hangup_set(), SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .map_err(io::Error::from)?;
        registry.register(&mut SourceFd(&fd.as_raw_fd()), token, Interest::READABLE)?;
        Ok(Signals { fd })
    }

    /// The name of one pending signal, or `None` when none is pending.
    pub fn read(&mut self) -> Option<&'static str> {
        match self.fd.read_signal() {
            Ok(Some(info)) if info.ssi_signo == Signal::SIGHUP as u32 => Some("SIGHUP"),
            Ok(Some(_)) => Some("an unexpected signal"),
            Ok(None) | Err(_) => None,
        }
    }
}
