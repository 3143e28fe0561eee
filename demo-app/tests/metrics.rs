//! The Prometheus endpoint (issue 19) on a real node process: `GET /metrics` answers in
//! the text format, `promtool check metrics` (Prometheus's own checker, installed by
//! .ci/run) finds nothing wrong with it, the figures are the node's (role, epoch as the
//! console says), and the endpoint's bounds hold: idle connections take at most
//! `CONNECTIONS_MAX` slots and for at most `CONNECTION_TIMEOUT`, other paths get 404.
// Real processes on a real clock: the test bounds its waits with wall time.
#![allow(clippy::disallowed_methods)]

mod common;

use common::*;
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use twinloop::io::metrics::{CONNECTIONS_MAX, CONNECTION_TIMEOUT};

/// One request; the whole answer (the node closes the connection after it).
fn get(addr: SocketAddr, path: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: test\r\n\r\n")?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer)
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(program))
        .find(|p| p.is_file())
}

/// A node leading alone with its metrics endpoint on a free port.
fn start(name: &str) -> (Node, SocketAddr, UdpSocket) {
    let mut alone = Alone::new(&format!("metrics-{name}"));
    let metrics = SocketAddr::from(([127, 0, 0, 1], alone.port()));
    alone.file.metrics.bind = Some(metrics);
    let node = alone.start(&[]);
    (node, metrics, alone.sink)
}

#[test]
fn node_metrics_scraped_valid_for_promtool_and_the_nodes_own_figures() {
    let (node, addr, _sink) = start("scrape");
    let answer = get(addr, "/metrics").expect("scrape");
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(head.contains("Content-Type: text/plain; version=0.0.4"), "{head}");
    assert!(body.contains("twinloop_role{role=\"primary\"} 1\n"), "{body}");
    assert!(body.contains("twinloop_role{role=\"backup\"} 0\n"), "{body}");
    let epoch = node.status().expect("status").epoch;
    assert!(
        body.contains(&format!("\ntwinloop_epoch {epoch}\n")),
        "epoch {epoch} not in:\n{body}"
    );
    for histogram in ["twinloop_deadline_lateness_seconds", "twinloop_frame_handling_seconds"] {
        assert!(body.contains(&format!("# TYPE {histogram} histogram\n")), "{body}");
        assert!(body.contains(&format!("{histogram}_bucket{{le=\"+Inf\"}} ")), "{body}");
    }
    // The node had to handle its own deadlines (heartbeats) to lead: lateness observed.
    let count: u64 = body
        .lines()
        .find_map(|l| l.strip_prefix("twinloop_deadline_lateness_seconds_count "))
        .and_then(|v| v.parse().ok())
        .expect("a lateness count");
    assert!(count > 0, "{body}");

    match which("promtool") {
        Some(promtool) => {
            let mut child = Command::new(promtool)
                .args(["check", "metrics"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("run promtool");
            child.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
            let out = child.wait_with_output().unwrap();
            let said = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                out.status.success() && said.trim().is_empty(),
                "promtool check metrics: {:?}\n{said}",
                out.status
            );
        }
        None => {
            assert!(
                std::env::var_os("CI").is_none(),
                "promtool not found: CI must have it (.ci/run installs the prometheus package)"
            );
            eprintln!("promtool not found (apt-get install prometheus): the format was not checked by it");
        }
    }

    // Every metric the shipped Grafana dashboard queries is one the node serves.
    let dashboard = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/grafana/twinloop.json"))
        .expect("read configs/grafana/twinloop.json");
    let dashboard: serde_json::Value = serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    let mut queried = 0;
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("expr");
            for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if let Some(name) = word.strip_prefix("twinloop_") {
                    let name = name.strip_suffix("_bucket").unwrap_or(name);
                    assert!(
                        body.contains(&format!("# TYPE twinloop_{name} ")),
                        "the dashboard's panel `{}` queries twinloop_{name}, which the node does not serve",
                        panel["title"]
                    );
                    queried += 1;
                }
            }
        }
    }
    assert!(queried >= 15, "the dashboard queries {queried} metrics");

    let answer = get(addr, "/").expect("a request for another path");
    assert!(answer.starts_with("HTTP/1.1 404 "), "{answer}");
}

#[test]
fn node_metrics_idle_connections_bounded_in_number_and_time() {
    let (node, addr, _sink) = start("bounds");
    // Fill every slot with a connection that never sends its request.
    let idle: Vec<TcpStream> = (0..CONNECTIONS_MAX)
        .map(|_| TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("connect"))
        .collect();
    // Once the node has taken them (it accepts on its loop), one more is closed unanswered.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut extra = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("connect");
        extra.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = extra.write_all(b"GET /metrics HTTP/1.1\r\n\r\n");
        let mut answer = String::new();
        let _ = extra.read_to_string(&mut answer);
        if answer.is_empty() {
            break;
        }
        // Answered: the node had not yet accepted every idle connection.
        assert!(
            Instant::now() < deadline,
            "a connection beyond {CONNECTIONS_MAX} was still answered"
        );
    }
    // The idle ones are closed after CONNECTION_TIMEOUT; then scrapes are answered again.
    let started = Instant::now();
    wait_for(
        CONNECTION_TIMEOUT * 5,
        "a scrape to be answered once the idle connections timed out",
        &|| node.log_tail(),
        || get(addr, "/metrics").is_ok_and(|a| a.starts_with("HTTP/1.1 200 OK")),
    );
    assert!(
        started.elapsed() + Duration::from_millis(100) >= CONNECTION_TIMEOUT / 2,
        "slots freed before any timeout"
    );
    for mut stream in idle {
        let mut rest = Vec::new();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert_eq!(
            stream.read_to_end(&mut rest).ok(),
            Some(0),
            "an idle connection was answered, not closed"
        );
    }
    assert!(node.role_is(Role::Primary), "{}", node.log_tail());
}
