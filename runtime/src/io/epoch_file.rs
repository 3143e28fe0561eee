//! The persisted epoch: a text file (`epoch <decimal>\n`, then `reserved <decimal>\n` once
//! the node has reserved an epoch), replaced atomically.
//!
//! [`crate::Action::PersistEpoch`] must be durable before any output carrying that epoch
//! leaves, or a node that restarts could start below an epoch the sink has accepted and
//! have every output rejected. The shell handles actions in order on one thread, so
//! storing synchronously here (write a temporary file, fsync it, rename it over the old
//! one, fsync the directory) is what makes the ordering hold. A failure to persist is
//! fatal: the node stops rather than emit under an epoch it could forget.
//!
//! [`crate::Action::ReserveEpoch`] stores the epoch a backup will lead if it takes over,
//! ahead of time, so that the takeover itself does not wait for the disk. A reservation is
//! only a floor for the node's own next epoch after a restart, never an epoch it has
//! seen: a restarted node does not reject a healthy primary below it.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

/// Why the state file could not be read.
#[non_exhaustive]
#[derive(Debug)]
pub enum EpochFileError {
    /// The file exists but could not be read.
    Read(io::Error),
    /// The file does not hold `epoch <decimal>`.
    Corrupt(String),
    /// A number in the file is above [`crate::EPOCH_MAX`]: forged or corrupt. Starting
    /// with it would leave no epoch to take over with (it wrapped once).
    OutOfRange {
        /// `epoch` or `reserved`.
        key: &'static str,
        /// The number found.
        value: u64,
    },
}

impl core::fmt::Display for EpochFileError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            EpochFileError::Read(e) => write!(f, "cannot read: {e}"),
            EpochFileError::Corrupt(text) => {
                write!(f, "not an epoch file (expected `epoch <number>`, found {text:?})")
            }
            EpochFileError::OutOfRange { key, value } => write!(
                f,
                "`{key} {value}` is above the highest valid epoch {} (a corrupt or forged file): with both nodes stopped, replace it with the peer's state file, or delete it once the sink has accepted nothing for its lease",
                crate::EPOCH_MAX
            ),
        }
    }
}

impl std::error::Error for EpochFileError {}

/// What the file holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stored {
    /// The highest epoch the node led or followed.
    pub epoch: u64,
    /// The highest epoch the node reserved to lead (0: none).
    pub reserved: u64,
}

impl Stored {
    /// Field by field the higher of the two: what the file holds after `self` and then
    /// `other` were asked for. The file never goes backwards: a restart must start above
    /// every epoch it ever recorded, whatever order the writes were asked in.
    pub fn merge(self, other: Stored) -> Stored {
        Stored {
            epoch: self.epoch.max(other.epoch),
            reserved: self.reserved.max(other.reserved),
        }
    }
}

/// The state file of one node.
#[derive(Debug, Clone)]
pub struct EpochFile {
    path: PathBuf,
    temp: PathBuf,
}

impl EpochFile {
    /// The state file at `path` (its temporary twin is `path` + `.tmp`).
    pub fn new(path: &Path) -> Self {
        let mut temp = path.as_os_str().to_owned();
        temp.push(".tmp");
        EpochFile {
            path: path.to_owned(),
            temp: PathBuf::from(temp),
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The persisted epochs; `Ok(None)` when the file does not exist (a first start).
    /// A file that exists but does not parse is an error, never a silent 0: starting
    /// below a persisted epoch is what this file exists to prevent.
    pub fn load(&self) -> Result<Option<Stored>, EpochFileError> {
        let text = match fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(EpochFileError::Read(e)),
        };
        let stored = parse(&text).ok_or_else(|| EpochFileError::Corrupt(text.trim().chars().take(40).collect()))?;
        for (key, value) in [("epoch", stored.epoch), ("reserved", stored.reserved)] {
            if value > crate::EPOCH_MAX {
                return Err(EpochFileError::OutOfRange { key, value });
            }
        }
        Ok(Some(stored))
    }

    /// Stores `stored` durably. Creates the file's directory if needed.
    pub fn store(&self, stored: Stored) -> io::Result<()> {
        if let Some(dir) = self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(dir)?;
        }
        {
            let mut file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&self.temp)?;
            file.write_all(render(stored).as_bytes())?;
            file.sync_all()?;
        }
        fs::rename(&self.temp, &self.path)?;
        // The rename is durable only once the directory entry is.
        let dir = match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        File::open(dir)?.sync_all()
    }
}

/// Writes the state file on a thread of its own, one write after another in the order
/// asked: [`StateWriter::store`] returns once its write is durable, [`StateWriter::store_later`]
/// at once (for writes no output waits for, which must not hold up the loop for a disk's
/// fsync). The thread keeps the scheduling of the thread that starts it: create the shell
/// before raising the loop's priority (twinloop-demo applies `[rt]` after `Shell::new`),
/// so that a disk write never competes with the loop at its real-time priority.
pub struct StateWriter {
    path: PathBuf,
    requests: Option<mpsc::Sender<(Stored, bool)>>,
    replies: mpsc::Receiver<io::Result<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl StateWriter {
    /// Starts the writer thread for `file`.
    pub fn start(file: EpochFile) -> io::Result<StateWriter> {
        let path = file.path().to_owned();
        let (requests, queue) = mpsc::channel::<(Stored, bool)>();
        let (reply, replies) = mpsc::channel();
        // What the file holds: every write is merged into it, so that it never decreases.
        let mut written = file.load().ok().flatten().unwrap_or_default();
        let thread = std::thread::Builder::new().name("state-file".into()).spawn(move || {
            for (stored, wait) in queue {
                let stored = written.merge(stored);
                let result = file.store(stored);
                if result.is_ok() {
                    written = stored;
                }
                if wait {
                    let _ = reply.send(result);
                } else if let Err(e) = result {
                    super::log::error(format_args!(
                        "cannot persist epoch {} to {}: {e}",
                        stored.epoch,
                        file.path().display()
                    ));
                }
            }
        })?;
        Ok(StateWriter {
            path,
            requests: Some(requests),
            replies,
            thread: Some(thread),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stores `stored` durably, after every write asked before it.
    pub fn store(&self, stored: Stored) -> io::Result<()> {
        let gone = || io::Error::other("the state file's writer thread is gone");
        let requests = self.requests.as_ref().ok_or_else(gone)?;
        requests.send((stored, true)).map_err(|_| gone())?;
        self.replies.recv().map_err(|_| gone())?
    }

    /// Asks for `stored` to be written, after every write asked before it; a failure is
    /// logged.
    pub fn store_later(&self, stored: Stored) {
        if let Some(requests) = &self.requests {
            let _ = requests.send((stored, false));
        }
    }
}

impl Drop for StateWriter {
    /// Waits for the writes asked so far.
    fn drop(&mut self) {
        self.requests = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn render(stored: Stored) -> String {
    match stored.reserved {
        0 => format!("epoch {}\n", stored.epoch),
        reserved => format!("epoch {}\nreserved {reserved}\n", stored.epoch),
    }
}

/// `epoch <n>` and an optional `reserved <n>` line; nothing else.
fn parse(text: &str) -> Option<Stored> {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let number = |line: Option<&str>, key: &str| line?.strip_prefix(key)?.trim().parse::<u64>().ok();
    let epoch = number(lines.next(), "epoch ")?;
    let reserved = match lines.next() {
        None => 0,
        line => number(line, "reserved ")?,
    };
    lines.next().is_none().then_some(Stored { epoch, reserved })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_path(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("twinloop-epoch-test-{}-{name}", std::process::id()));
        let _ = fs::create_dir_all(&dir);
        dir.join("node.epoch")
    }

    #[test]
    fn epoch_file_missing_is_a_first_start() {
        let file = EpochFile::new(&temp_path("missing"));
        let _ = fs::remove_file(file.path());
        assert_eq!(file.load().unwrap(), None);
    }

    #[test]
    fn epoch_file_store_then_load() {
        let file = EpochFile::new(&temp_path("store"));
        let stored = |epoch, reserved| Stored { epoch, reserved };
        file.store(stored(0x201, 0)).unwrap();
        assert_eq!(file.load().unwrap(), Some(stored(0x201, 0)));
        file.store(stored(0x302, 0)).unwrap();
        assert_eq!(file.load().unwrap(), Some(stored(0x302, 0)));
        assert_eq!(fs::read_to_string(file.path()).unwrap(), "epoch 770\n");
        file.store(stored(0x302, 0x401)).unwrap();
        assert_eq!(file.load().unwrap(), Some(stored(0x302, 0x401)));
        assert_eq!(fs::read_to_string(file.path()).unwrap(), "epoch 770\nreserved 1025\n");
    }

    #[test]
    fn epoch_file_corrupt_is_an_error() {
        let file = EpochFile::new(&temp_path("corrupt"));
        for text in [
            "hello",
            "epoch 5\nreserved x\n",
            "epoch 5\nextra 1\n",
            "epoch 5\nreserved 6\nepoch 7\n",
        ] {
            fs::write(file.path(), text).unwrap();
            assert!(matches!(file.load(), Err(EpochFileError::Corrupt(_))), "{text:?}");
        }
    }

    #[test]
    fn epoch_file_above_the_bound_refuses_to_start() {
        let file = EpochFile::new(&temp_path("huge"));
        for (text, key) in [
            (format!("epoch {}\n", u64::MAX), "epoch"),
            (format!("epoch {}\n", crate::EPOCH_MAX + 1), "epoch"),
            (format!("epoch 5\nreserved {}\n", u64::MAX - 254), "reserved"),
        ] {
            fs::write(file.path(), &text).unwrap();
            match file.load() {
                Err(e @ EpochFileError::OutOfRange { key: k, .. }) => {
                    assert_eq!(k, key);
                    // One line naming the fix.
                    let line = e.to_string();
                    assert!(!line.contains('\n') && line.contains("peer's state file"), "{line}");
                }
                other => panic!("{text:?} loaded as {other:?}"),
            }
        }
        fs::write(file.path(), format!("epoch {}\n", crate::EPOCH_MAX)).unwrap();
        assert_eq!(file.load().unwrap().unwrap().epoch, crate::EPOCH_MAX);
    }

    #[test]
    fn state_writer_writes_in_order_and_finishes_on_drop() {
        let file = EpochFile::new(&temp_path("writer"));
        let writer = StateWriter::start(file.clone()).unwrap();
        writer
            .store(Stored {
                epoch: 0x101,
                reserved: 0,
            })
            .unwrap();
        assert_eq!(
            file.load().unwrap(),
            Some(Stored {
                epoch: 0x101,
                reserved: 0
            })
        );
        for term in 2..50u64 {
            writer.store_later(Stored {
                epoch: term << 8 | 1,
                reserved: 0,
            });
        }
        let last = Stored {
            epoch: 50 << 8 | 1,
            reserved: 0x3301,
        };
        writer.store_later(last);
        drop(writer);
        assert_eq!(file.load().unwrap(), Some(last));
    }

    proptest::proptest! {
        #[test]
        fn epoch_file_parse_arbitrary_text_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let _ = parse(&String::from_utf8_lossy(&bytes));
        }

        #[test]
        fn epoch_file_text_round_trips(epoch in proptest::num::u64::ANY, reserved in proptest::num::u64::ANY) {
            let stored = Stored { epoch, reserved };
            proptest::prop_assert_eq!(parse(&render(stored)), Some(stored));
        }
    }

    proptest::proptest! {
        // Writes are fsynced: a few short sequences are enough to catch a decrease.
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]

        #[test]
        fn state_writer_file_never_decreases(
            writes in proptest::collection::vec((0u64..1000, 0u64..1000, proptest::bool::ANY), 1..8),
        ) {
            let path = temp_path("monotonic");
            let _ = fs::remove_file(&path);
            let file = EpochFile::new(&path);
            let writer = StateWriter::start(file.clone()).unwrap();
            let mut highest = Stored::default();
            for (epoch, reserved, wait) in writes {
                let stored = Stored { epoch, reserved };
                highest = highest.merge(stored);
                if wait {
                    writer.store(stored).unwrap();
                    let now = file.load().unwrap().unwrap();
                    proptest::prop_assert_eq!(now, highest);
                } else {
                    writer.store_later(stored);
                }
            }
            drop(writer);
            proptest::prop_assert_eq!(file.load().unwrap(), Some(highest));
        }
    }
}
