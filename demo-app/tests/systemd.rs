//! The node as a systemd `Type=notify` service (issue 19), on a real process: the test
//! plays systemd's side of `NOTIFY_SOCKET` (a Unix datagram socket it binds, as systemd
//! does) and sets `WATCHDOG_USEC`, then checks what sd_notify(3) says systemd reads:
//! `READY=1` only once the node has a role, `WATCHDOG=1` repeated from the running loop,
//! `STATUS=` with role, sync, epoch and frame, `STOPPING=1` on SIGTERM. The unit file
//! shipped in configs/systemd/ passes `systemd-analyze verify`.
// Real processes on a real clock: the test bounds its waits with wall time.
#![allow(clippy::disallowed_methods)]

mod common;

use common::*;
use std::fs;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A test-local directory.
fn dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("systemd-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// The notifications received until `done` holds for them, or `limit` passes (then
/// panics with what came).
fn receive_until(
    socket: &UnixDatagram,
    limit: Duration,
    what: &str,
    got: &mut Vec<String>,
    done: impl Fn(&[String]) -> bool,
) {
    let deadline = Instant::now() + limit;
    socket.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let mut buf = [0u8; 4096];
    while !done(got) {
        assert!(
            Instant::now() < deadline,
            "waited {limit:?} for {what}; received: {got:#?}"
        );
        if let Ok(n) = socket.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
}

/// The value of `KEY=` in one notification.
fn field<'a>(message: &'a str, key: &str) -> Option<&'a str> {
    message
        .lines()
        .find_map(|l| l.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
}

#[test]
fn node_under_systemd_ready_with_a_role_watchdog_from_the_loop_stopping_on_sigterm() {
    let mut alone = Alone::new("systemd-notify");
    let socket_path = alone.dir.join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("bind the notify socket");
    // 200 ms: the node pings every 100 ms.
    let node = alone.start(&[
        ("NOTIFY_SOCKET", socket_path.to_str().unwrap()),
        ("WATCHDOG_USEC", "200000"),
    ]);

    // Alone (its peer never starts), the node listens for startup_wait_ms, then leads.
    let mut got = Vec::new();
    receive_until(&socket, Duration::from_secs(15), "READY=1", &mut got, |g| {
        g.iter().any(|m| field(m, "READY") == Some("1"))
    });
    let ready = got.iter().position(|m| field(m, "READY") == Some("1")).unwrap();
    let status = field(&got[ready], "STATUS").expect("READY comes with a STATUS");
    assert!(
        status.starts_with("primary "),
        "READY before the node had a role: {got:#?}"
    );
    for before in &got[..ready] {
        let status = field(before, "STATUS").unwrap_or("");
        assert!(
            status.starts_with("starting "),
            "a status before READY that is not `starting`: {got:#?}"
        );
    }
    let console = node.status().expect("the console answers");
    assert!(
        status.contains(&format!("epoch {} ", console.epoch)),
        "STATUS `{status}` does not give the epoch the console gives ({})",
        console.epoch
    );

    // The loop keeps pinging: five more pings after READY.
    receive_until(
        &socket,
        Duration::from_secs(10),
        "5 watchdog pings after READY",
        &mut got,
        |g| {
            g[ready + 1..]
                .iter()
                .filter(|m| field(m, "WATCHDOG") == Some("1"))
                .count()
                >= 5
        },
    );
    assert_eq!(
        got.iter().filter(|m| field(m, "READY").is_some()).count(),
        1,
        "READY sent more than once: {got:#?}"
    );

    node.sigterm();
    receive_until(&socket, Duration::from_secs(10), "STOPPING=1", &mut got, |g| {
        g.iter().any(|m| field(m, "STOPPING") == Some("1"))
    });
    wait_for(Duration::from_secs(10), "the node to stop", &|| node.log_tail(), || {
        node.exited()
    });
    assert!(
        node.exit_status().success(),
        "{:?}\n{}",
        node.exit_status(),
        node.log_tail()
    );
    let stopping = got.iter().position(|m| field(m, "STOPPING") == Some("1")).unwrap();
    assert!(
        got[stopping + 1..].iter().all(|m| field(m, "WATCHDOG").is_none()),
        "pings after STOPPING: {got:#?}"
    );
}

#[test]
fn node_watchdog_pid_of_another_process_no_pings_still_ready() {
    // sd_notify(3): WATCHDOG_USEC is for the process WATCHDOG_PID names when it is set.
    let mut alone = Alone::new("systemd-watchdog-pid");
    let socket_path = alone.dir.join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("bind the notify socket");
    let node = alone.start(&[
        ("NOTIFY_SOCKET", socket_path.to_str().unwrap()),
        ("WATCHDOG_USEC", "200000"),
        ("WATCHDOG_PID", "1"),
    ]);
    let mut got = Vec::new();
    receive_until(&socket, Duration::from_secs(15), "READY=1", &mut got, |g| {
        g.iter().any(|m| field(m, "READY") == Some("1"))
    });
    // Pings would have come every 100 ms; the node runs on for a while (its console
    // answers ten times, each a loop turn that would have pinged when due).
    let until = Instant::now() + Duration::from_millis(500);
    while Instant::now() < until {
        assert!(
            node.status().is_some(),
            "the node stopped answering: {}",
            node.log_tail()
        );
    }
    socket.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 4096];
    while let Ok(n) = socket.recv(&mut buf) {
        got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert!(
        got.iter().all(|m| field(m, "WATCHDOG").is_none()),
        "pinged for another pid's watchdog: {got:#?}"
    );
}

/// `systemd-analyze verify` on the shipped units (the node's, the gateway's and the
/// router's), with
/// their ExecStart pointed at a binary that exists here (verify checks that the program
/// exists). Any line about them fails.
#[test]
fn unit_files_pass_systemd_analyze_verify() {
    let Some(analyze) = which("systemd-analyze") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "systemd-analyze not found: CI must have it (.ci/run installs systemd)"
        );
        eprintln!("skipped: systemd-analyze not found (install systemd)");
        return;
    };
    let dir = dir("verify");
    let units = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/systemd");
    for (file, binary, instance) in [
        ("twinloop@.service", "/usr/bin/twinloop-demo", "twinloop@node-a.service"),
        (
            "twinloop-gateway@.service",
            "/usr/bin/twinloop-gateway",
            "twinloop-gateway@gateway-tank.service",
        ),
        (
            "twinloop-router@.service",
            "/usr/bin/twinloop-router",
            "twinloop-router@router.service",
        ),
    ] {
        let unit = fs::read_to_string(units.join(file)).unwrap_or_else(|e| panic!("read configs/systemd/{file}: {e}"));
        assert!(
            unit.contains(&format!("ExecStart={binary} ")),
            "{file}'s ExecStart changed: update this test"
        );
        // The node's binary stands in for each: verify only checks that it exists.
        let unit = unit.replace(binary, env!("CARGO_BIN_EXE_twinloop-demo"));
        fs::write(dir.join(file), unit).unwrap();
        let out = Command::new(&analyze)
            .arg("verify")
            .arg(instance)
            .current_dir(&dir)
            .env("SYSTEMD_LOG_COLOR", "0")
            .output()
            .expect("run systemd-analyze");
        let stderr = String::from_utf8_lossy(&out.stderr);
        // Lines about units this one does not own (the host's own units) are not ours.
        let ours: Vec<&str> = stderr.lines().filter(|l| l.contains("twinloop")).collect();
        assert!(
            out.status.success() && ours.is_empty(),
            "systemd-analyze verify {file}: {:?}\n{stderr}",
            out.status
        );
    }
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(program))
        .find(|p| p.is_file())
}
