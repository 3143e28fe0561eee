//! Logging: the shell logs through the [`log`] facade, one line per event, nothing
//! per cycle.
//!
//! The library owns no logger: a program that embeds the shell routes its lines with any
//! `log` logger (target [`TARGET`]). The node binary ([`crate::node_main`]) installs
//! [`NodeLogger`], the project's format on stderr (`<UTC time> <LEVEL> <node>: <message>`,
//! which operators grep), at the level of `log.level` / `--log-level` (from the
//! configuration, not the environment, so both nodes of a pair log alike). Under systemd,
//! where stderr is the journal, each line also starts with its priority (`<3>` … `<7>`),
//! so `journalctl -p warning` finds the warnings.
//!
//! The functions below ([`warn`] and the others, taking `format_args!`) are the call
//! sites' API; each is one `log` macro call.

use std::io::Write;

/// The `log` target of every line the library writes.
pub const TARGET: &str = "twinloop";

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

    /// The `log` level of the same name.
    pub fn to_log(self) -> ::log::Level {
        match self {
            Level::Error => ::log::Level::Error,
            Level::Warn => ::log::Level::Warn,
            Level::Info => ::log::Level::Info,
            Level::Debug => ::log::Level::Debug,
        }
    }
}

/// True when a line of `level` would be written somewhere (a logger takes it).
pub fn enabled(level: Level) -> bool {
    ::log::log_enabled!(target: TARGET, level.to_log())
}

/// Logs one line at `level`.
pub fn write(level: Level, message: std::fmt::Arguments<'_>) {
    ::log::log!(target: TARGET, level.to_log(), "{message}");
}

/// Logs an error line.
pub fn error(message: std::fmt::Arguments<'_>) {
    ::log::error!(target: TARGET, "{message}");
}

/// Logs a warning line.
pub fn warn(message: std::fmt::Arguments<'_>) {
    ::log::warn!(target: TARGET, "{message}");
}

/// Logs an info line.
pub fn info(message: std::fmt::Arguments<'_>) {
    ::log::info!(target: TARGET, "{message}");
}

/// Logs a debug line.
pub fn debug(message: std::fmt::Arguments<'_>) {
    ::log::debug!(target: TARGET, "{message}");
}

/// The project's logger: one line per record on stderr,
/// `<UTC time> <LEVEL> <node>: <message>`, with the journald priority first when stderr is
/// the journal.
#[derive(Debug)]
pub struct NodeLogger {
    name: String,
    level: ::log::LevelFilter,
    journal: bool,
}

impl NodeLogger {
    /// A logger for the node `name` (empty: `twinloop`) writing lines up to `level`;
    /// journald priorities when this process's stderr is the journal
    /// ([`stderr_is_journal`]).
    pub fn new(name: &str, level: Level) -> NodeLogger {
        NodeLogger {
            name: if name.is_empty() {
                "twinloop".into()
            } else {
                name.into()
            },
            level: level.to_log().to_level_filter(),
            journal: stderr_is_journal(),
        }
    }

    /// Installs this logger as the process's `log` logger and sets the maximum level.
    /// Fails (changing nothing) when the program installed a logger already: its own
    /// routing wins.
    pub fn install(self) -> Result<(), ::log::SetLoggerError> {
        let level = self.level;
        ::log::set_boxed_logger(Box::new(self))?;
        ::log::set_max_level(level);
        Ok(())
    }

    /// One line, newline included.
    fn line(&self, stamp: &str, level: ::log::Level, message: &std::fmt::Arguments<'_>) -> String {
        let (priority, label) = match level {
            ::log::Level::Error => ("<3>", "ERROR"),
            ::log::Level::Warn => ("<4>", "WARN "),
            ::log::Level::Info => ("<6>", "INFO "),
            ::log::Level::Debug => ("<7>", "DEBUG"),
            ::log::Level::Trace => ("<7>", "TRACE"),
        };
        let priority = if self.journal { priority } else { "" };
        format!("{priority}{stamp} {label} {}: {message}\n", self.name)
    }
}

impl ::log::Log for NodeLogger {
    fn enabled(&self, metadata: &::log::Metadata<'_>) -> bool {
        metadata.level() <= self.level
    }

    fn log(&self, record: &::log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let stamp = super::clock::rfc3339_ms(super::clock::unix_ms());
        // One write per line so that concurrent writers (the hook's child) do not
        // interleave within a line; a failed write to stderr has nowhere to be reported.
        let line = self.line(&stamp, record.level(), record.args());
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {
        let _ = std::io::stderr().flush();
    }
}

/// True when stderr is the systemd journal's stream: `JOURNAL_STREAM` (set by systemd
/// for a service whose output goes to the journal) names the device and inode of
/// stderr, as sd_journal's documentation says to check (a child whose stderr was
/// redirected inherits the variable but not the stream).
pub fn stderr_is_journal() -> bool {
    let value = std::env::var("JOURNAL_STREAM").ok();
    journal_matches(value.as_deref(), stderr_dev_ino())
}

/// True when `journal_stream` (`JOURNAL_STREAM`'s value) names `stderr` (its device and
/// inode).
fn journal_matches(journal_stream: Option<&str>, stderr: Option<(u64, u64)>) -> bool {
    match (journal_stream.and_then(parse_journal_stream), stderr) {
        (Some(wanted), Some(actual)) => wanted == actual,
        _ => false,
    }
}

/// `JOURNAL_STREAM`'s `<device>:<inode>`, both decimal.
fn parse_journal_stream(text: &str) -> Option<(u64, u64)> {
    let (dev, ino) = text.split_once(':')?;
    Some((dev.parse().ok()?, ino.parse().ok()?))
}

#[cfg(unix)]
fn stderr_dev_ino() -> Option<(u64, u64)> {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let fd = std::io::stderr().as_fd().try_clone_to_owned().ok()?;
    let metadata = std::fs::File::from(fd).metadata().ok()?;
    Some((metadata.dev(), metadata.ino()))
}

#[cfg(not(unix))]
fn stderr_dev_ino() -> Option<(u64, u64)> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logger(journal: bool) -> NodeLogger {
        NodeLogger {
            name: "node-1".into(),
            level: ::log::LevelFilter::Debug,
            journal,
        }
    }

    #[test]
    fn journal_stderr_lines_carry_their_priority() {
        let stamp = "2026-11-26T05:00:00.000Z";
        let lines: Vec<String> = [
            ::log::Level::Error,
            ::log::Level::Warn,
            ::log::Level::Info,
            ::log::Level::Debug,
        ]
        .into_iter()
        .map(|level| logger(true).line(stamp, level, &format_args!("link up")))
        .collect();
        assert_eq!(
            lines,
            [
                "<3>2026-11-26T05:00:00.000Z ERROR node-1: link up\n",
                "<4>2026-11-26T05:00:00.000Z WARN  node-1: link up\n",
                "<6>2026-11-26T05:00:00.000Z INFO  node-1: link up\n",
                "<7>2026-11-26T05:00:00.000Z DEBUG node-1: link up\n",
            ]
        );
    }

    #[test]
    fn terminal_stderr_lines_have_no_priority() {
        let line = logger(false).line("2026-11-26T05:00:00.000Z", ::log::Level::Warn, &format_args!("x"));
        assert_eq!(line, "2026-11-26T05:00:00.000Z WARN  node-1: x\n");
    }

    #[test]
    fn journal_stream_parsed_or_refused() {
        assert_eq!(parse_journal_stream("8:12345"), Some((8, 12345)));
        for bad in ["", "8", "8:", ":1", "a:1", "1:2:3", "-1:2"] {
            assert_eq!(parse_journal_stream(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn journal_stream_naming_stderr_is_the_journal_another_is_not() {
        assert!(journal_matches(Some("8:12345"), Some((8, 12345))));
        // A child whose stderr was redirected inherits the variable, not the stream.
        assert!(!journal_matches(Some("8:12345"), Some((8, 12346))));
        assert!(!journal_matches(Some("9:12345"), Some((8, 12345))));
        assert!(!journal_matches(None, Some((8, 12345))));
        assert!(!journal_matches(Some("8:12345"), None));
        assert!(!journal_matches(Some("garbage"), Some((8, 12345))));
    }

    #[test]
    fn journal_stream_this_process_stderr_is_readable() {
        // The real check reads stderr's device and inode; under `cargo test` stderr is a
        // pipe or a terminal, which has both.
        let (dev, ino) = stderr_dev_ino().expect("stderr has a device and an inode");
        assert!(journal_matches(Some(&format!("{dev}:{ino}")), stderr_dev_ino()));
    }
}
