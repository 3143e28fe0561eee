//! The checks a node makes on its files before it opens a socket: the state file and the
//! key files. [`check_files`] is the one function both a start ([`super::Shell::new`]) and
//! `--check` call, so that `--check` passes exactly what a start accepts.
//!
//! No check waits on the file system's other users: key files are opened non-blocking and
//! refused unless regular files (a FIFO would otherwise hold the start until someone
//! wrote to it), and at most [`KEY_FILE_BYTES_MAX`] bytes are read.

use super::config::ShellConfig;
use super::epoch_file::{EpochFile, Stored};
use super::ShellError;
use std::fs::{self, OpenOptions};
use std::io::{self, Read};
use std::path::Path;

/// The largest key file accepted, in bytes: a key is one line of text.
pub const KEY_FILE_BYTES_MAX: u64 = 4096;

/// The keys committed in the repository's `configs/` (`console.key`, `sync.key`) for
/// trying a pair on one host. Anyone has them: a node using one says so at start.
pub const EXAMPLE_KEYS: [&[u8]; 2] = [b"change-me-console-key", b"change-me-sync-link-key"];

/// What a start needs from its files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StartFiles {
    /// What the state file holds (zeros on a first start).
    pub stored: Stored,
    /// The console key, when the console is on and has a key file.
    pub console_key: Option<Vec<u8>>,
    /// The sync-link key, when `node.sync_key_file` is set.
    pub sync_key: Option<Vec<u8>>,
    /// Problems that do not stop a start, one line each (an example key in use).
    pub warnings: Vec<String>,
}

/// Checks and reads every file a start reads, in the order a start needs them: the state
/// file (readable, parses, its directory writable), the console key file, the sync key
/// file. Writes nothing but a probe file beside the state file, removed at once (and the
/// state file's directory, when missing, as a start would).
pub fn check_files(config: &ShellConfig) -> Result<StartFiles, ShellError> {
    let stored = check_state_file(&config.state_file)?;
    let mut warnings = Vec::new();
    let console_key = match (&config.console.key_file, config.console.enabled) {
        (Some(path), true) => Some(read_key_file("console.key_file", path)?),
        _ => None,
    };
    let sync_key = match &config.sync_key_file {
        Some(path) => Some(read_key_file("node.sync_key_file", path)?),
        None => None,
    };
    let keys = [
        ("console.key_file", &config.console.key_file, &console_key),
        ("node.sync_key_file", &config.sync_key_file, &sync_key),
    ];
    for (key, path, bytes) in keys {
        if let (Some(path), Some(bytes)) = (path, bytes) {
            if EXAMPLE_KEYS.contains(&bytes.as_slice()) {
                warnings.push(format!(
                    "`{key}` {} holds an example key committed with twinloop, which anyone has: \
                     make one of your own with `twinctl keygen --out FILE`",
                    path.display()
                ));
            }
        }
    }
    Ok(StartFiles {
        stored,
        console_key,
        sync_key,
        warnings,
    })
}

/// What kind of file a non-regular file is, for the error.
fn kind(meta: &fs::Metadata) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_socket() {
            return "a socket";
        }
        if t.is_char_device() || t.is_block_device() {
            return "a device";
        }
    }
    if meta.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    }
}

/// The state file: a regular file that parses, or none yet; and a directory the node can
/// write its replacement in.
fn check_state_file(path: &Path) -> Result<Stored, ShellError> {
    let state_error = |problem: String| ShellError::StateFile {
        path: path.to_owned(),
        problem,
    };
    match fs::metadata(path) {
        Ok(meta) if !meta.is_file() => {
            return Err(state_error(format!(
                "is {}, not a regular file: name a file (`node.state_file`)",
                kind(&meta)
            )))
        }
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(state_error(format!("cannot read: {e}"))),
        _ => {}
    }
    let stored = EpochFile::new(path)
        .load()
        .map_err(|e| state_error(e.to_string()))?
        .unwrap_or_default();
    probe_writable(path).map_err(|e| state_error(format!("cannot write: {e}")))?;
    Ok(stored)
}

/// Creates and removes a file beside `path`: the state file is replaced by a rename in its
/// directory, so that is what must be writable. Not the state file's own temporary file,
/// which a running node may be writing while `--check` runs.
fn probe_writable(path: &Path) -> io::Result<()> {
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(dir)?;
    }
    let mut probe = path.as_os_str().to_owned();
    probe.push(format!(".check-{}", std::process::id()));
    OpenOptions::new().write(true).create_new(true).open(&probe)?;
    fs::remove_file(&probe)
}

/// Reads a key file: a regular file, private to its owner, holding a key of at most
/// [`KEY_FILE_BYTES_MAX`] bytes (whitespace around it trimmed).
pub fn read_key_file(key: &'static str, path: &Path) -> Result<Vec<u8>, ShellError> {
    let fail = |problem: String| ShellError::KeyFile {
        key,
        path: path.to_owned(),
        problem,
    };
    let mut options = OpenOptions::new();
    options.read(true);
    // Opening a FIFO for reading waits for a writer; non-blocking, it returns at once and
    // the type check below refuses it.
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let mut file = options.open(path).map_err(|e| fail(e.to_string()))?;
    let meta = file.metadata().map_err(|e| fail(e.to_string()))?;
    if !meta.is_file() {
        return Err(fail(format!("is {}, not a regular file", kind(&meta))));
    }
    // Like ssh with a private key: a secret others can read is no secret.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(fail(format!(
                "permissions {mode:04o} let group or others read it; run `chmod 600 {}`",
                path.display()
            )));
        }
    }
    let mut bytes = Vec::new();
    (&mut file)
        .take(KEY_FILE_BYTES_MAX + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(e.to_string()))?;
    if bytes.len() as u64 > KEY_FILE_BYTES_MAX {
        return Err(fail(format!(
            "longer than {KEY_FILE_BYTES_MAX} bytes: a key file holds one key"
        )));
    }
    // `echo secret > file` and an editor's trailing newline give the same key.
    let trimmed = bytes.trim_ascii().to_vec();
    if trimmed.is_empty() {
        return Err(fail("the key is empty".into()));
    }
    Ok(trimmed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("twinloop-preflight-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn key_file_fifo_is_refused_without_waiting() {
        let dir = temp_dir("fifo");
        let path = dir.join("console.key");
        let status = std::process::Command::new("mkfifo").arg(&path).status().unwrap();
        assert!(status.success());
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        // Returns (no writer ever opens the FIFO) with the file type named.
        let error = read_key_file("console.key_file", &path).unwrap_err().to_string();
        assert!(error.contains("is a FIFO, not a regular file"), "{error}");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn key_file_directory_empty_or_oversized_is_refused() {
        let dir = temp_dir("kinds");
        let sub = dir.join("keys");
        fs::create_dir(&sub).unwrap();
        fs::set_permissions(&sub, fs::Permissions::from_mode(0o700)).unwrap();
        let error = read_key_file("console.key_file", &sub).unwrap_err().to_string();
        assert!(error.contains("is a directory, not a regular file"), "{error}");
        let path = dir.join("empty.key");
        fs::write(&path, " \n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let error = read_key_file("console.key_file", &path).unwrap_err().to_string();
        assert!(error.ends_with("the key is empty"), "{error}");
        fs::write(&path, vec![b'k'; KEY_FILE_BYTES_MAX as usize + 1]).unwrap();
        let error = read_key_file("console.key_file", &path).unwrap_err().to_string();
        assert!(error.contains("longer than 4096 bytes"), "{error}");
        fs::write(&path, vec![b'k'; KEY_FILE_BYTES_MAX as usize]).unwrap();
        assert_eq!(read_key_file("console.key_file", &path).unwrap().len(), 4096);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn state_file_fifo_or_unwritable_is_refused_and_probe_leaves_nothing() {
        let dir = temp_dir("state");
        let fifo = dir.join("fifo.epoch");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        let error = check_state_file(&fifo).unwrap_err().to_string();
        assert!(error.contains("is a FIFO, not a regular file"), "{error}");
        fs::write(dir.join("plain"), "").unwrap();
        let error = check_state_file(&dir.join("plain").join("a.epoch"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("Not a directory"), "{error}");
        let error = check_state_file(Path::new("/sys/twinloop-test/a.epoch"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("cannot write"), "{error}");
        let fresh = dir.join("sub").join("a.epoch");
        assert_eq!(check_state_file(&fresh).unwrap(), Stored::default());
        assert!(!fresh.exists(), "a check does not write the state file");
        assert_eq!(
            fs::read_dir(dir.join("sub")).unwrap().count(),
            0,
            "the probe is removed"
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn example_keys_are_the_committed_ones() {
        let configs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
        for name in ["console.key", "sync.key"] {
            let text = fs::read(configs.join(name)).unwrap();
            assert!(
                EXAMPLE_KEYS.contains(&text.trim_ascii()),
                "configs/{name} changed: update EXAMPLE_KEYS so that nodes still warn about it"
            );
        }
    }

    proptest::proptest! {
        /// Any file content gives a trimmed, non-empty key of at most the bound, or one
        /// line naming the file; never a panic.
        #[test]
        fn key_file_arbitrary_bytes_key_or_one_line(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..5000)) {
            let dir = std::env::temp_dir().join(format!("twinloop-preflight-prop-{}", std::process::id()));
            fs::create_dir_all(&dir).unwrap();
            let path = dir.join("k.key");
            fs::write(&path, &bytes).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
            match read_key_file("console.key_file", &path) {
                Ok(key) => {
                    proptest::prop_assert!(!key.is_empty() && key.len() as u64 <= KEY_FILE_BYTES_MAX);
                    proptest::prop_assert_eq!(key.as_slice(), bytes.trim_ascii());
                }
                Err(e) => proptest::prop_assert!(!e.to_string().contains('\n') && e.to_string().contains("k.key")),
            }
        }
    }
}
