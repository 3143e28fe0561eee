//! Finding the `twinloop-demo` binary from another crate's test or tool (the simulator
//! harness, `twinctl`'s tests), which cargo does not build for them.
//!
//! Looks beside the running executable (and one level up, for test binaries in `deps/`);
//! when absent and running under cargo (`CARGO` set), builds it with the same profile.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The binary's file name.
pub const NAME: &str = "twinloop-demo";

/// Why the binary could not be found or built.
#[derive(Debug)]
pub struct LocateError(pub String);

impl std::fmt::Display for LocateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LocateError {}

/// The path of a `twinloop-demo` binary of the same build profile, building it if needed.
pub fn locate() -> Result<PathBuf, LocateError> {
    if let Ok(path) = std::env::var("TWINLOOP_DEMO_BIN") {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe().map_err(|e| LocateError(format!("cannot find the running executable: {e}")))?;
    let dir = exe
        .parent()
        .ok_or_else(|| LocateError("the running executable has no directory".into()))?;
    // `target/<profile>/` for binaries, `target/<profile>/deps/` for tests.
    let profile_dir = if dir.ends_with("deps") {
        dir.parent().unwrap_or(dir)
    } else {
        dir
    };
    let candidate = profile_dir.join(NAME);
    if candidate.is_file() && !stale(&candidate) {
        return Ok(candidate);
    }
    let Ok(cargo) = std::env::var("CARGO") else {
        return Err(LocateError(format!(
            "{} not found; build it with `cargo build --release -p twinloop-demo` or set TWINLOOP_DEMO_BIN",
            candidate.display()
        )));
    };
    let release = profile_dir.file_name().is_some_and(|n| n == "release");
    let target_dir = profile_dir.parent().map(Path::to_path_buf);
    let mut build = Command::new(cargo);
    build.args(["build", "--quiet", "-p", "twinloop-demo", "--bin", NAME]);
    if release {
        build.arg("--release");
    }
    if let Some(target_dir) = target_dir {
        build.arg("--target-dir").arg(target_dir);
    }
    let status = build
        .status()
        .map_err(|e| LocateError(format!("cannot run cargo to build {NAME}: {e}")))?;
    if !status.success() || !candidate.is_file() {
        return Err(LocateError(format!("building {NAME} failed ({status})")));
    }
    Ok(candidate)
}

/// The witness binary's file name (the runtime's `twinloop-witness`, issue 16).
pub const WITNESS: &str = "twinloop-witness";

/// The path of the `twinloop-witness` binary beside `demo` (a `twinloop-demo` of
/// [`locate`]: the same target directory and profile), building it there with cargo if it
/// is absent or older than the running executable. `TWINLOOP_WITNESS_BIN` overrides it.
pub fn locate_witness(demo: &Path) -> Result<PathBuf, LocateError> {
    if let Ok(path) = std::env::var("TWINLOOP_WITNESS_BIN") {
        return Ok(PathBuf::from(path));
    }
    let candidate = demo.with_file_name(WITNESS);
    if candidate.is_file() && !stale(&candidate) {
        return Ok(candidate);
    }
    let Ok(cargo) = std::env::var("CARGO") else {
        return Err(LocateError(format!(
            "{} not found; build it with `cargo build --release -p twinloop --features io --bin {WITNESS}` or set TWINLOOP_WITNESS_BIN",
            candidate.display()
        )));
    };
    let profile_dir = candidate.parent().unwrap_or(Path::new("."));
    let mut build = Command::new(cargo);
    build.args([
        "build",
        "--quiet",
        "-p",
        "twinloop",
        "--features",
        "io",
        "--bin",
        WITNESS,
    ]);
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        build.arg("--release");
    }
    if let Some(target_dir) = profile_dir.parent() {
        build.arg("--target-dir").arg(target_dir);
    }
    let status = build
        .status()
        .map_err(|e| LocateError(format!("cannot run cargo to build {WITNESS}: {e}")))?;
    if !status.success() || !candidate.is_file() {
        return Err(LocateError(format!("building {WITNESS} failed ({status})")));
    }
    Ok(candidate)
}

/// True when the binary is older than the running executable: a rebuild of the workspace
/// may have changed the node, so rebuild it too rather than test an old one.
fn stale(candidate: &Path) -> bool {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    match (
        modified(candidate),
        std::env::current_exe().ok().and_then(|e| modified(&e)),
    ) {
        (Some(bin), Some(exe)) => bin < exe && std::env::var("CARGO").is_ok(),
        _ => false,
    }
}
