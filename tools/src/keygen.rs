//! `keygen`: a new random key for `console.key_file` or `node.sync_key_file`, in the form
//! the node reads (one line of text; docs/CONFIG.md): 32 bytes from the OS's generator as
//! 64 hexadecimal digits. With `--out FILE` the file is created private (0600) and never
//! overwritten; without, the key goes to stdout.

use crate::{exit, Failure};
use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::path::Path;

/// Random bytes in a key: 256 bits.
const KEY_BYTES: usize = 32;

/// A fresh key, as the file's text (with its newline).
pub fn new_key() -> Result<String, Failure> {
    let mut bytes = [0u8; KEY_BYTES];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| Failure::usage(format!("cannot read random bytes from /dev/urandom: {e}")))?;
    let mut text: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    text.push('\n');
    Ok(text)
}

/// Runs `twinctl keygen [--out FILE]`.
pub fn run(out: Option<&Path>) -> Result<u8, Failure> {
    let key = new_key()?;
    let Some(path) = out else {
        let _ = std::io::stdout().write_all(key.as_bytes());
        return Ok(exit::OK);
    };
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::AlreadyExists {
            ": it is never overwritten; remove it first or choose another name"
        } else {
            ""
        };
        Failure::usage(format!("cannot create {}: {e}{hint}", path.display()))
    })?;
    file.write_all(key.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| Failure::usage(format!("cannot write {}: {e}", path.display())))?;
    // Not `eprintln!`, which panics when stderr is gone.
    let _ = writeln!(
        std::io::stderr(),
        "twinctl: wrote a new key to {} (mode 0600); give both nodes the same file",
        path.display()
    );
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn keygen_out_writes_a_private_key_the_node_reads_and_never_overwrites() {
        let dir = std::env::temp_dir().join(format!("twinctl-keygen-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("console.key");
        assert_eq!(run(Some(&path)), Ok(exit::OK));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // The node's own reader accepts it: a regular, private, non-empty file.
        let key = twinloop::io::preflight::read_key_file("console.key_file", &path).unwrap();
        assert_eq!(key.len(), 2 * KEY_BYTES);
        assert!(key.iter().all(u8::is_ascii_hexdigit));
        let again = run(Some(&path)).unwrap_err();
        assert_eq!(again.code, exit::USAGE);
        assert!(again.message.contains("never overwritten"), "{}", again.message);
        assert_eq!(
            twinloop::io::preflight::read_key_file("console.key_file", &path).unwrap(),
            key
        );
        assert_ne!(new_key().unwrap(), new_key().unwrap());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
