//! `--check` runs the checks a start runs (issue 13, point 9): for each file a start
//! refuses, a real `twinloop-demo --check` process exits with the code and the one error
//! line a real start of the same configuration gives, and neither waits on a FIFO.
// Real processes on a real clock: each run is bounded with wall time.
#![allow(clippy::disallowed_methods)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs the node with `args`; returns its exit code and stderr, or panics when it has not
/// exited within `limit` (it is killed first).
fn run(config: &Path, check: bool, limit: Duration) -> (i32, String) {
    let dir = config.parent().unwrap();
    let stderr_path = dir.join(if check { "check.err" } else { "start.err" });
    let mut command = Command::new(env!("CARGO_BIN_EXE_twinloop-demo"));
    command.arg("--config").arg(config);
    if check {
        command.arg("--check");
    }
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(&stderr_path).unwrap())
        .spawn()
        .expect("start twinloop-demo");
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "twinloop-demo {}did not exit within {limit:?}: {}",
                if check { "--check " } else { "" },
                fs::read_to_string(&stderr_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let stderr = fs::read_to_string(&stderr_path).unwrap();
    (status.code().expect("exited, not killed"), stderr)
}

/// A directory with a valid configuration (`node.toml`), its console key file
/// `console.key` (private) and state file `node.epoch`; `edit` then breaks one thing.
fn setup(name: &str, edit: impl FnOnce(&Path, &mut String)) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("check-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("console.key"), "a-test-key\n").unwrap();
    fs::set_permissions(dir.join("console.key"), fs::Permissions::from_mode(0o600)).unwrap();
    // Ports nobody listens on: every case is refused before a socket opens.
    let mut text = r#"
[node]
state_file = "node.epoch"

[frames]
bind = "127.0.0.1:1"

[[links]]
bind = "127.0.0.1:2"
peer = "127.0.0.1:4"

[[links]]
bind = "127.0.0.1:6"
peer = "127.0.0.1:8"

[outputs]
sinks = ["127.0.0.1:9"]

[console]
bind = "127.0.0.1:10"
key_file = "console.key"
"#
    .to_string();
    edit(&dir, &mut text);
    fs::write(dir.join("node.toml"), text).unwrap();
    dir.join("node.toml")
}

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().expect("run mkfifo");
    assert!(status.success(), "mkfifo {}", path.display());
}

/// `--check` and a start give the same exit code and the same single line, which names
/// `expected`.
fn assert_check_matches_start(config: &Path, code: i32, expected: &str) {
    let limit = Duration::from_secs(20);
    let (check_code, check_err) = run(config, true, limit);
    let (start_code, start_err) = run(config, false, limit);
    assert_eq!(
        (start_code, start_err.lines().count()),
        (code, 1),
        "a start refuses with exit {code} and one line: {start_err}"
    );
    assert!(
        start_err.contains(expected),
        "the start names {expected:?}: {start_err}"
    );
    assert_eq!(
        (check_code, check_err.as_str()),
        (start_code, start_err.as_str()),
        "--check gives the start's exit code and line"
    );
}

#[test]
fn check_key_file_readable_by_others_is_refused_like_a_start() {
    let config = setup("key-mode", |dir, _| {
        fs::set_permissions(dir.join("console.key"), fs::Permissions::from_mode(0o644)).unwrap();
    });
    assert_check_matches_start(
        &config,
        2,
        "permissions 0644 let group or others read it; run `chmod 600",
    );
}

#[test]
fn check_key_file_empty_is_refused_like_a_start() {
    let config = setup("key-empty", |dir, _| fs::write(dir.join("console.key"), "\n").unwrap());
    assert_check_matches_start(&config, 2, "`console.key_file`");
}

#[test]
fn check_key_file_missing_is_refused_like_a_start() {
    let config = setup("key-missing", |dir, _| {
        fs::remove_file(dir.join("console.key")).unwrap()
    });
    assert_check_matches_start(&config, 2, "No such file or directory");
}

#[test]
fn check_key_file_directory_is_refused_like_a_start() {
    let config = setup("key-dir", |dir, _| {
        fs::remove_file(dir.join("console.key")).unwrap();
        fs::create_dir(dir.join("console.key")).unwrap();
        fs::set_permissions(dir.join("console.key"), fs::Permissions::from_mode(0o700)).unwrap();
    });
    assert_check_matches_start(&config, 2, "is a directory, not a regular file");
}

#[test]
fn check_key_file_fifo_is_refused_like_a_start_without_hanging() {
    let config = setup("key-fifo", |dir, text| {
        mkfifo(&dir.join("sync.key"));
        fs::set_permissions(dir.join("sync.key"), fs::Permissions::from_mode(0o600)).unwrap();
        *text = text.replace("[node]\n", "[node]\nsync_key_file = \"sync.key\"\n");
    });
    assert_check_matches_start(&config, 2, "`node.sync_key_file`");
    let (_, line) = run(&config, true, Duration::from_secs(20));
    assert!(line.contains("is a FIFO, not a regular file"), "{line}");
}

#[test]
fn check_state_file_under_a_regular_file_is_refused_like_a_start() {
    let config = setup("state-not-dir", |dir, text| {
        fs::write(dir.join("plain"), "").unwrap();
        *text = text.replace("state_file = \"node.epoch\"", "state_file = \"plain/node.epoch\"");
    });
    assert_check_matches_start(&config, 1, "Not a directory");
}

#[test]
fn check_state_file_not_writable_is_refused_like_a_start() {
    // A directory nobody may create files in, root included (for whom permission bits
    // would not do): sysfs's top.
    let config = setup("state-unwritable", |_, text| {
        *text = text.replace(
            "state_file = \"node.epoch\"",
            "state_file = \"/sys/twinloop-check-test/node.epoch\"",
        );
    });
    assert_check_matches_start(&config, 1, "cannot write");
}

#[test]
fn check_state_file_fifo_is_refused_like_a_start_without_hanging() {
    let config = setup("state-fifo", |dir, _| mkfifo(&dir.join("node.epoch")));
    assert_check_matches_start(&config, 1, "is a FIFO, not a regular file");
}

#[test]
fn check_valid_configuration_passes_and_writes_no_state_file() {
    let config = setup("valid", |_, _| {});
    let (code, stderr) = run(&config, true, Duration::from_secs(20));
    assert_eq!((code, stderr.as_str()), (0, ""));
    let dir = config.parent().unwrap();
    assert!(
        !dir.join("node.epoch").exists(),
        "--check does not create the state file"
    );
}

#[test]
fn check_example_key_warns_naming_the_file() {
    let config = setup("example-key", |dir, _| {
        fs::write(dir.join("console.key"), "change-me-console-key\n").unwrap();
    });
    let (code, stderr) = run(&config, true, Duration::from_secs(20));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("warning: `console.key_file`")
            && stderr.contains("console.key holds an example key")
            && stderr.contains("twinctl keygen"),
        "{stderr}"
    );
}

#[test]
fn help_lists_the_exit_codes() {
    let out = Command::new(env!("CARGO_BIN_EXE_twinloop-demo"))
        .arg("--help")
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success());
    for line in [
        "Exit codes:",
        "  0  a clean stop",
        "  1  the node could not start",
        "  2  a configuration error",
    ] {
        assert!(text.contains(line), "--help lacks {line:?}:\n{text}");
    }
}

#[test]
fn start_with_example_key_logs_a_warning_naming_the_file() {
    // Free ports for this one start (sockets dropped just before the node binds them):
    // UDP for the frames and links, TCP for the console (p[5]; a free UDP port is not a
    // free TCP port while other tests' console clients churn through TCP's ports).
    let sockets: Vec<std::net::UdpSocket> = (0..5)
        .map(|_| std::net::UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    let console = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut p: Vec<u16> = sockets.iter().map(|s| s.local_addr().unwrap().port()).collect();
    p.push(console.local_addr().unwrap().port());
    let config = setup("example-key-start", |dir, text| {
        fs::write(dir.join("console.key"), "change-me-console-key\n").unwrap();
        *text = text
            .replace("127.0.0.1:1\"", &format!("127.0.0.1:{}\"", p[0]))
            .replace(
                "bind = \"127.0.0.1:2\"",
                &format!("bind = \"127.0.0.1:{}\"\nbulk_bind = \"127.0.0.1:{}\"", p[1], p[2]),
            )
            .replace(
                "bind = \"127.0.0.1:6\"",
                &format!("bind = \"127.0.0.1:{}\"\nbulk_bind = \"127.0.0.1:{}\"", p[3], p[4]),
            )
            .replace("127.0.0.1:10\"", &format!("127.0.0.1:{}\"", p[5]));
    });
    drop((sockets, console));
    let log = config.parent().unwrap().join("start.err");
    let mut child = Command::new(env!("CARGO_BIN_EXE_twinloop-demo"))
        .arg("--config")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let text = loop {
        let text = fs::read_to_string(&log).unwrap_or_default();
        if text.contains("started:") || Instant::now() >= deadline || child.try_wait().unwrap().is_some() {
            break text;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(text.contains("started:"), "the node starts with an example key: {text}");
    let warning = text
        .lines()
        .find(|l| l.contains(" WARN ") && l.contains("example key"))
        .unwrap_or_else(|| panic!("no WARN line about the example key: {text}"));
    assert!(
        warning.contains("`console.key_file`") && warning.contains("console.key") && warning.contains("twinctl keygen"),
        "{warning}"
    );
}

/// Paths on the command line are relative to the caller's working directory; paths in a
/// configuration to the configuration's folder (docs/CONFIG.md). Run from the folder
/// above the configuration's, `--config` names it relatively, and its `console.key` and
/// `node.epoch` are found beside it — not in the working directory, which holds a key
/// readable by others that a start would refuse.
#[test]
fn check_relative_config_from_another_folder_reads_files_beside_the_config() {
    let config = setup("relative-paths", |_, _| {});
    let dir = config.parent().unwrap();
    let above = dir.parent().unwrap();
    let name = dir.file_name().unwrap();
    let decoy = above.join("console.key");
    let _ = fs::write(&decoy, "a-decoy-key\n");
    let _ = fs::set_permissions(&decoy, fs::Permissions::from_mode(0o644));
    let out = Command::new(env!("CARGO_BIN_EXE_twinloop-demo"))
        .current_dir(above)
        .arg("--config")
        .arg(Path::new(name).join("node.toml"))
        .arg("--check")
        .stdin(Stdio::null())
        .output()
        .expect("run twinloop-demo --check");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains("configuration valid"), "{stdout}");
    // The same configuration named from its own folder, and a path that does not exist
    // from here, for contrast: the error names the path as given.
    let out = Command::new(env!("CARGO_BIN_EXE_twinloop-demo"))
        .current_dir(dir)
        .arg("--config")
        .arg(Path::new(name).join("node.toml"))
        .arg("--check")
        .stdin(Stdio::null())
        .output()
        .expect("run twinloop-demo --check");
    assert_ne!(out.status.code(), Some(0));
    let _ = fs::remove_file(&decoy);
}
