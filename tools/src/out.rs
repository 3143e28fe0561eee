//! Printing that survives a closed stdout or stderr.
//!
//! `println!` panics (exit 101) when its stream is gone: `twinctl status | head -1`
//! closes the pipe after one line. [`line`] and the macros over it instead end the
//! process quietly with [`EXIT_BROKEN_PIPE`] when stdout is a pipe nobody reads any
//! more, as a tool killed by SIGPIPE would (its reader has what it wanted); a message for
//! a closed stderr is dropped.

use std::fmt;
use std::io::{self, Write};

/// The exit code after stdout's reader went away: 128 + SIGPIPE, what a shell reports
/// for a process the signal ended (docs/CONSOLE.md, "Exit codes").
pub const EXIT_BROKEN_PIPE: u8 = 141;

/// Writes `args` and a newline to stdout (or none when `newline` is false).
pub fn line(args: fmt::Arguments<'_>, newline: bool) {
    let mut out = io::stdout().lock();
    let result = out
        .write_fmt(args)
        .and_then(|()| if newline { out.write_all(b"\n") } else { Ok(()) })
        .and_then(|()| out.flush());
    if let Err(e) = result {
        if e.kind() == io::ErrorKind::BrokenPipe {
            std::process::exit(i32::from(EXIT_BROKEN_PIPE));
        }
        // Another failure (a full disk): nothing better to do than go on, like the
        // exit code says what happened.
    }
}

/// Writes `args` (and a newline) to stderr; a closed stderr is ignored.
pub fn err(args: fmt::Arguments<'_>, newline: bool) {
    let mut err = io::stderr().lock();
    let _ = err
        .write_fmt(args)
        .and_then(|()| if newline { err.write_all(b"\n") } else { Ok(()) });
}

/// `println!` that exits quietly with [`EXIT_BROKEN_PIPE`] on a closed pipe.
macro_rules! outln {
    ($($arg:tt)*) => { $crate::out::line(format_args!($($arg)*), true) };
}

/// `eprintln!` that ignores a closed stderr.
macro_rules! errln {
    ($($arg:tt)*) => { $crate::out::err(format_args!($($arg)*), true) };
}

/// `eprint!` that ignores a closed stderr.
macro_rules! err {
    ($($arg:tt)*) => { $crate::out::err(format_args!($($arg)*), false) };
}
