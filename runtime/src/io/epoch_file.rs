//! The persisted epoch: a one-line text file (`epoch <decimal>\n`), replaced atomically.
//!
//! [`crate::Action::PersistEpoch`] must be durable before any output carrying that epoch
//! leaves, or a node that restarts could start below an epoch the sink has accepted and
//! have every output rejected. The shell handles actions in order on one thread, so
//! storing synchronously here (write a temporary file, fsync it, rename it over the old
//! one, fsync the directory) is what makes the ordering hold. A failure to persist is
//! fatal: the node stops rather than emit under an epoch it could forget.

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

    /// The persisted epoch; `Ok(None)` when the file does not exist (a first start).
    /// A file that exists but does not parse is an error, never a silent 0: starting
    /// below a persisted epoch is what this file exists to prevent.
    pub fn load(&self) -> Result<Option<u64>, EpochFileError> {
        let text = match fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(EpochFileError::Read(e)),
        };
        let trimmed = text.trim();
        trimmed
            .strip_prefix("epoch ")
            .and_then(|n| n.trim().parse::<u64>().ok())
            .map(Some)
            .ok_or_else(|| EpochFileError::Corrupt(trimmed.chars().take(40).collect()))
    }

    /// Stores `epoch` durably. Creates the file's directory if needed.
    pub fn store(&self, epoch: u64) -> io::Result<()> {
        if let Some(dir) = self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(dir)?;
        }
        {
            let mut file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&self.temp)?;
            file.write_all(format!("epoch {epoch}\n").as_bytes())?;
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
        file.store(0x201).unwrap();
        assert_eq!(file.load().unwrap(), Some(0x201));
        file.store(0x302).unwrap();
        assert_eq!(file.load().unwrap(), Some(0x302));
        assert_eq!(fs::read_to_string(file.path()).unwrap(), "epoch 770\n");
    }

    #[test]
    fn epoch_file_corrupt_is_an_error() {
        let file = EpochFile::new(&temp_path("corrupt"));
        fs::write(file.path(), "hello").unwrap();
        assert!(matches!(file.load(), Err(EpochFileError::Corrupt(_))));
    }
}
