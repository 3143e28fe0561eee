//! Every twinctl command whose stdout is a pipe closed early (`twinctl status | head -1`)
//! ends quietly with exit code 141 (128 + SIGPIPE, what a shell reports for a tool the
//! signal ended), with no panic message; `println!` panicked with exit 101.
//!
//! The pipe is real and closed deterministically: the test drops the pipe's read end
//! before twinctl can print anything, because twinctl prints only after its node (a
//! listener the test holds) has been dealt with, which the test does after the drop.

use std::io::Read;
use std::net::TcpListener;
use std::process::{Command, Stdio};

const TWINCTL: &str = env!("CARGO_BIN_EXE_twinctl");

/// Runs `twinctl args… --node <a listener>` with stdout a pipe whose reader is gone;
/// returns the exit code and stderr.
fn run_with_closed_stdout(args: &[&str]) -> (Option<i32>, String) {
    let node = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = node.local_addr().unwrap().to_string();
    let mut child = Command::new(TWINCTL)
        .args(args)
        .args(["--node", &addr, "--timeout-ms", "5000"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start twinctl");
    // The reader leaves first...
    drop(child.stdout.take());
    // ...then the node: it accepts and hangs up without a word, so twinctl reports it
    // unreachable, on stdout.
    let (stream, _) = node.accept().expect("twinctl connects");
    drop(stream);
    drop(node);
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    let status = child.wait().unwrap();
    (status.code(), stderr)
}

#[test]
fn twinctl_every_command_into_a_closed_pipe_exits_141_without_panic() {
    for args in [
        &["status"][..],
        &["status", "--json"],
        &["events"],
        &["events", "--json"],
        &["switchover", "--yes", "--json"],
    ] {
        let (code, stderr) = run_with_closed_stdout(args);
        assert!(!stderr.contains("panicked"), "twinctl {args:?} panicked: {stderr}");
        assert_eq!(code, Some(141), "twinctl {args:?}: stderr {stderr}");
    }
}
