//! A small logger: one line per event on stderr, nothing per cycle.
//!
//! Hand-written rather than `log` + `env_logger`: the shell logs a few dozen kinds of
//! events, all from one thread, and operators grep them; a fixed format
//! (`<UTC time> <LEVEL> <node>: <message>`) with no dependency and no global
//! registration is all it needs. The level comes from the configuration, not the
//! environment, so both nodes of a pair log alike.

use std::io::Write;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;

/// How important a line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// The node cannot go on, or an operator must act.
    Error = 1,
    /// Something is wrong but the node copes (a link down, a hook failed).
    Warn = 2,
    /// Role changes, links, probes, transfers, start and stop.
    Info = 3,
    /// Detail for debugging the shell.
    Debug = 4,
}

impl Level {
    /// Parses `error`, `warn`, `info` or `debug`.
    pub fn parse(text: &str) -> Option<Level> {
        match text {
            "error" => Some(Level::Error),
            "warn" => Some(Level::Warn),
            "info" => Some(Level::Info),
            "debug" => Some(Level::Debug),
            _ => None,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Level::Error => "ERROR",
            Level::Warn => "WARN ",
            Level::Info => "INFO ",
            Level::Debug => "DEBUG",
        }
    }
}

static LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);
static NAME: OnceLock<String> = OnceLock::new();

/// Sets the level and the node name shown on every line. The name is set once; later
/// calls change only the level.
pub fn init(name: &str, level: Level) {
    LEVEL.store(level as u8, Ordering::Relaxed);
    let _ = NAME.set(if name.is_empty() {
        "twinloop".into()
    } else {
        name.into()
    });
}

/// True when lines of `level` are written.
pub fn enabled(level: Level) -> bool {
    level as u8 <= LEVEL.load(Ordering::Relaxed)
}

/// Writes one line at `level`.
pub fn write(level: Level, message: std::fmt::Arguments<'_>) {
    if !enabled(level) {
        return;
    }
    let name = NAME.get().map(String::as_str).unwrap_or("twinloop");
    let stamp = super::clock::rfc3339_ms(super::clock::unix_ms());
    // One write per line so that concurrent writers (the hook's child) do not interleave
    // within a line; a failed write to stderr has nowhere to be reported.
    let line = format!("{stamp} {} {name}: {message}\n", level.label());
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// Writes an error line.
pub fn error(message: std::fmt::Arguments<'_>) {
    write(Level::Error, message);
}

/// Writes a warning line.
pub fn warn(message: std::fmt::Arguments<'_>) {
    write(Level::Warn, message);
}

/// Writes an info line.
pub fn info(message: std::fmt::Arguments<'_>) {
    write(Level::Info, message);
}

/// Writes a debug line.
pub fn debug(message: std::fmt::Arguments<'_>) {
    write(Level::Debug, message);
}
