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

/// Why the state file could not be read.
#[derive(Debug)]
pub enum EpochFileError {
    /// The file exists but could not be read.
    Read(io::Error),
    /// The file does not hold `epoch <decimal>`.
    Corrupt(String),
}

impl core::fmt::Display for EpochFileError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            EpochFileError::Read(e) => write!(f, "cannot read: {e}"),
            EpochFileError::Corrupt(text) => {
                write!(f, "not an epoch file (expected `epoch <number>`, found {text:?})")
            }
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
        parse(&text)
            .map(Some)
            .ok_or_else(|| EpochFileError::Corrupt(text.trim().chars().take(40).collect()))
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
}
