//! The signals the shell handles on its own event loop, read from one signalfd so that
//! the loop knows which one came: SIGINT and SIGTERM stop the node (handing over when
//! primary; see [`super::Shell::run`]), SIGHUP is **logged and ignored**.
//!
//! SIGHUP, which daemons take as "reload", is ignored because nothing the node runs on
//! can be reloaded safely in the middle of a run (a new configuration is applied by
//! restarting the nodes one at a time, which a pair is built for), and a hang-up of the
//! terminal that started a node must not stop a primary.
//!
//! A signalfd only receives a signal that no thread takes otherwise: the signals are
//! blocked in the thread that creates the shell, before the shell (or the program)
//! starts any thread, the state file's writer included. Threads inherit the mask, so no
//! thread takes them and they stay pending until the loop reads them. The shell always
//! blocks SIGHUP itself; SIGINT and SIGTERM are the program's choice: it calls
//! [`block_stop_signals`] before it starts any thread (the node binary does, just before
//! it creates the shell), and a shell created afterwards in that thread reads them and
//! stops on them. Without that, SIGINT and SIGTERM keep their default action (the
//! process ends at once, no handover). Child processes (the hook) start with an empty
//! mask (the standard library resets it).

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use std::io;
use std::os::fd::AsRawFd;

/// Blocks SIGHUP in the calling thread (and so in every thread it starts afterwards).
/// A program that starts threads of its own before the shell calls this first.
pub fn block_hangup() -> io::Result<()> {
    set_of(&[Signal::SIGHUP]).thread_block().map_err(io::Error::from)
}

/// Blocks SIGINT, SIGTERM and SIGHUP in the calling thread (and so in every thread it
/// starts afterwards): a shell created afterwards in this thread stops on SIGINT and
/// SIGTERM. Call it before any thread starts: a thread started earlier would take the
/// signals with their default action.
pub fn block_stop_signals() -> io::Result<()> {
    set_of(&[Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP])
        .thread_block()
        .map_err(io::Error::from)
}

/// True when the calling thread blocks SIGINT and SIGTERM ([`block_stop_signals`]).
pub fn stop_signals_blocked() -> bool {
    SigSet::thread_get_mask().is_ok_and(|mask| mask.contains(Signal::SIGINT) && mask.contains(Signal::SIGTERM))
}

fn set_of(signals: &[Signal]) -> SigSet {
    let mut set = SigSet::empty();
    for &signal in signals {
        set.add(signal);
    }
    set
}

/// A signal read on the loop.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caught {
    /// SIGINT: stop.
    Interrupt,
    /// SIGTERM: stop.
    Terminate,
    /// SIGHUP: logged and ignored.
    Hangup,
}

impl Caught {
    /// `SIGINT`, `SIGTERM` or `SIGHUP`.
    pub fn name(self) -> &'static str {
        match self {
            Caught::Interrupt => "SIGINT",
            Caught::Terminate => "SIGTERM",
            Caught::Hangup => "SIGHUP",
        }
    }

    /// True for the signals that stop the node.
    pub fn stops(self) -> bool {
        matches!(self, Caught::Interrupt | Caught::Terminate)
    }

    fn from_number(number: u32) -> Option<Caught> {
        [Caught::Interrupt, Caught::Terminate, Caught::Hangup]
            .into_iter()
            .find(|c| c.signal() as u32 == number)
    }

    fn signal(self) -> Signal {
        match self {
            Caught::Interrupt => Signal::SIGINT,
            Caught::Terminate => Signal::SIGTERM,
            Caught::Hangup => Signal::SIGHUP,
        }
    }
}

/// A signalfd for SIGHUP, and for SIGINT and SIGTERM when they were blocked
/// ([`block_stop_signals`]), registered with the loop.
pub struct Signals {
    fd: SignalFd,
    stops: bool,
}

impl Signals {
    /// Blocks SIGHUP in this thread and registers a signalfd under `token` for it, and
    /// for SIGINT and SIGTERM if this thread blocks them.
    pub fn new(registry: &Registry, token: Token) -> io::Result<Self> {
        block_hangup()?;
        let stops = stop_signals_blocked();
        let set = if stops {
            set_of(&[Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP])
        } else {
            set_of(&[Signal::SIGHUP])
        };
        let fd = SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC).map_err(io::Error::from)?;
        registry.register(&mut SourceFd(&fd.as_raw_fd()), token, Interest::READABLE)?;
        Ok(Signals { fd, stops })
    }

    /// True when SIGINT and SIGTERM are read here (and so stop the shell).
    pub fn stops(&self) -> bool {
        self.stops
    }

    /// One pending signal, or `None` when none is pending.
    pub fn read(&mut self) -> Option<Caught> {
        // Only the signals of the set reach the fd, each pending once; anything else is
        // skipped, a bounded number of times.
        for _ in 0..32 {
            match self.fd.read_signal() {
                Ok(Some(info)) => {
                    if let Some(caught) = Caught::from_number(info.ssi_signo) {
                        return Some(caught);
                    }
                }
                Ok(None) | Err(_) => return None,
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caught_names_and_numbers_agree() {
        for caught in [Caught::Interrupt, Caught::Terminate, Caught::Hangup] {
            assert_eq!(Caught::from_number(caught.signal() as u32), Some(caught));
            assert_eq!(caught.name(), caught.signal().as_str());
        }
        assert!(Caught::Interrupt.stops() && Caught::Terminate.stops());
        assert!(!Caught::Hangup.stops());
        assert_eq!(Caught::from_number(Signal::SIGUSR1 as u32), None);
    }
}
