//! A node whose console slots are all in use answers a new connection with one line,
//! `{"error":{"code":"too_many_connections","message":"console busy: …"},"id":null,"ok":false}`,
//! and closes it. twinctl names that cause: `switchover` no longer says "no primary
//! reachable" and `status` shows the node's own words (issue 13, point 5).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};

const TWINCTL: &str = env!("CARGO_BIN_EXE_twinctl");
const REFUSAL: &str = "{\"error\":{\"code\":\"too_many_connections\",\"message\":\"console busy: all 8 slots in use (one kept for an operator who authenticates with the console key); close idle clients, retry, or raise console.connections_max\"},\"id\":null,\"ok\":false}\n";

/// A node that refuses every connection as a busy one does; returns its address.
fn busy_node() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.write_all(REFUSAL.as_bytes());
            let _ = stream.shutdown(std::net::Shutdown::Write);
            // Read what the client sends until it closes, as the node does once, so
            // that closing does not reset the connection.
            let mut sink = Vec::new();
            let _ = stream.read_to_end(&mut sink);
        }
    });
    addr
}

fn twinctl(args: &[&str]) -> (Option<i32>, String, String) {
    let output = Command::new(TWINCTL)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run twinctl");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn twinctl_switchover_names_a_busy_console_not_no_primary() {
    let node = busy_node();
    let (code, stdout, stderr) = twinctl(&["switchover", "--yes", "--node", &node, "--timeout-ms", "5000"]);
    assert_eq!(code, Some(2), "{stdout}{stderr}");
    assert!(!stderr.contains("no primary reachable"), "{stderr}");
    assert!(
        stderr.contains("cannot tell which node is primary") && stderr.contains("console busy: all 8 slots in use"),
        "{stderr}"
    );
}

#[test]
fn twinctl_status_shows_the_nodes_refusal() {
    let node = busy_node();
    let (code, stdout, stderr) = twinctl(&["status", "--json", "--node", &node, "--timeout-ms", "5000"]);
    assert_eq!(code, Some(2), "{stdout}{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let error = json["nodes"][0]["error"].as_str().unwrap();
    assert!(
        error.contains("refused the connection: console busy: all 8 slots in use"),
        "{error}"
    );
}
