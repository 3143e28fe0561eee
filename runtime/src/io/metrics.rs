//! The Prometheus endpoint: `GET /metrics` over HTTP/1.x on `metrics.bind` (opt-in),
//! answered from the event loop in the text exposition format 0.0.4 (docs/OPERATIONS.md,
//! "Metrics", names every metric).
//!
//! Bounded like every input from outside the node: at most [`CONNECTIONS_MAX`] open
//! connections (more are closed at once, counted), [`ACCEPTS_PER_TURN`] accepts and one
//! read of at most [`REQUEST_BYTES_MAX`] per connection per readiness event, one
//! request per connection (`Connection: close`), and a connection that has not
//! completed its request, or whose reader leaves the answer unread, for
//! [`CONNECTION_TIMEOUT`] is closed. Building an answer (about 10 KiB) takes
//! microseconds and allocates; it is done only when a scrape asks, never per cycle. A
//! connection costs the loop nothing until its socket is ready.
//!
//! The text format is written here rather than through a client library: the node's
//! figures are a snapshot of counters it already keeps (the console's `status`), which
//! the official Rust client would need copied into its own registry at each scrape.
//! `promtool check metrics` validates the output in the tests.

use super::*;
use mio::net::{TcpListener, TcpStream};
use std::fmt::Write as _;
use std::io::{Read, Write};

/// Simultaneous connections; more are closed as they are accepted.
pub const CONNECTIONS_MAX: usize = 4;
/// New connections accepted per loop turn.
pub const ACCEPTS_PER_TURN: usize = 4;
/// The longest request head taken; longer ones are answered 431 and closed.
pub const REQUEST_BYTES_MAX: usize = 2048;
/// A connection idle (request incomplete, or answer unread) this long is closed.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(2);

/// The listener's token; connection `i` is `TOKEN_METRICS + 1 + i`.
pub(super) const TOKEN_METRICS: usize = 60;

/// Upper bounds of the lateness histogram's buckets, in ns (a deadline of the core
/// handled this long after it fell due).
const LATENESS_BOUNDS_NS: [u64; 12] = [
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    100_000_000,
];
/// Upper bounds of the frame-handling histogram's buckets, in ns (from a frame read off
/// its socket to the last action it caused carried out: the outputs sent, the commit on
/// the links).
const FRAME_BOUNDS_NS: [u64; 12] = [
    5_000, 10_000, 20_000, 50_000, 100_000, 200_000, 500_000, 1_000_000, 2_000_000, 5_000_000, 10_000_000, 50_000_000,
];

/// A histogram with fixed buckets: constant work and no allocation per observation.
#[derive(Debug, Clone)]
pub(super) struct Histogram {
    bounds_ns: &'static [u64; 12],
    /// Per bucket, observations at or below its bound and above the previous one; the
    /// last slot is above every bound.
    counts: [u64; 13],
    sum_ns: u64,
    count: u64,
}

impl Histogram {
    fn new(bounds_ns: &'static [u64; 12]) -> Histogram {
        Histogram {
            bounds_ns,
            counts: [0; 13],
            sum_ns: 0,
            count: 0,
        }
    }

    pub(super) fn lateness() -> Histogram {
        Histogram::new(&LATENESS_BOUNDS_NS)
    }

    pub(super) fn frame_handling() -> Histogram {
        Histogram::new(&FRAME_BOUNDS_NS)
    }

    pub(super) fn observe(&mut self, value: Duration) {
        let ns = u64::try_from(value.as_nanos()).unwrap_or(u64::MAX);
        let slot = self
            .bounds_ns
            .iter()
            .position(|&b| ns <= b)
            .unwrap_or(self.bounds_ns.len());
        self.counts[slot] = self.counts[slot].saturating_add(1);
        self.sum_ns = self.sum_ns.saturating_add(ns);
        self.count = self.count.saturating_add(1);
    }

    /// The histogram's lines (`_bucket` cumulative, `_sum` and `_count`, in seconds).
    fn render(&self, out: &mut String, name: &str, help: &str) {
        header(out, name, "histogram", help);
        let mut cumulative = 0u64;
        for (bound, count) in self.bounds_ns.iter().zip(self.counts) {
            cumulative = cumulative.saturating_add(count);
            let _ = writeln!(out, "{name}_bucket{{le=\"{}\"}} {cumulative}", seconds(*bound));
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum {}", seconds(self.sum_ns));
        let _ = writeln!(out, "{name}_count {}", self.count);
    }
}

/// `ns` in seconds, as Prometheus writes a float.
fn seconds(ns: u64) -> String {
    let s = ns / 1_000_000_000;
    let frac = ns % 1_000_000_000;
    if frac == 0 {
        format!("{s}")
    } else {
        format!("{s}.{}", format!("{frac:09}").trim_end_matches('0'))
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn one(out: &mut String, name: &str, kind: &str, help: &str, value: u64) {
    header(out, name, kind, help);
    let _ = writeln!(out, "{name} {value}");
}

/// A label value, escaped as the text format says.
fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// One scrape connection.
#[derive(Debug)]
struct Conn {
    stream: TcpStream,
    request: Vec<u8>,
    answer: Vec<u8>,
    written: usize,
    since: Instant,
    /// Its socket announced readiness since it was last served.
    ready: bool,
}

/// The endpoint: its listener, its connections and its counters.
#[derive(Debug)]
pub(super) struct MetricsServer {
    listener: TcpListener,
    conns: [Option<Conn>; CONNECTIONS_MAX],
    accept_ready: bool,
    /// Scrapes answered 200.
    pub(super) scrapes: u64,
    /// Connections closed at accept (all slots busy), timed out, or answered with an error.
    pub(super) refused: u64,
}

impl MetricsServer {
    pub(super) fn new(mut listener: TcpListener, registry: &mio::Registry) -> io::Result<MetricsServer> {
        registry.register(&mut listener, Token(TOKEN_METRICS), Interest::READABLE)?;
        Ok(MetricsServer {
            listener,
            conns: Default::default(),
            accept_ready: false,
            scrapes: 0,
            refused: 0,
        })
    }

    /// Whether `token` is the endpoint's; marks it ready.
    pub(super) fn ready(&mut self, token: Token) -> bool {
        match token.0.checked_sub(TOKEN_METRICS) {
            Some(0) => self.accept_ready = true,
            Some(i) if i <= CONNECTIONS_MAX => {
                if let Some(conn) = &mut self.conns[i - 1] {
                    conn.ready = true;
                }
            }
            _ => return false,
        }
        true
    }

    /// The earliest a connection times out (`None`: no connection open).
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.conns.iter().flatten().map(|c| c.since + CONNECTION_TIMEOUT).min()
    }

    /// Whether a connection holds a complete request to answer.
    fn wants_answer(&self) -> bool {
        self.conns
            .iter()
            .flatten()
            .any(|c| c.answer.is_empty() && head_complete(&c.request))
    }
}

/// The request head is complete (an empty line ends it).
fn head_complete(request: &[u8]) -> bool {
    request.windows(4).any(|w| w == b"\r\n\r\n") || request.windows(2).any(|w| w == b"\n\n")
}

/// The answer to one request head: status line, headers and body.
fn answer_to(request: &[u8], body: impl FnOnce() -> String) -> (bool, Vec<u8>) {
    let line = request.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.trim_end().split(' ');
    let (method, target, version) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    );
    let path = target.split('?').next().unwrap_or("");
    let (ok, status, content_type, text) = if !version.starts_with("HTTP/1.") {
        (
            false,
            "400 Bad Request",
            "text/plain; charset=utf-8",
            "an HTTP/1.x request line was expected\n".to_string(),
        )
    } else if method != "GET" && method != "HEAD" {
        (
            false,
            "405 Method Not Allowed",
            "text/plain; charset=utf-8",
            "only GET /metrics is served\n".to_string(),
        )
    } else if path != "/metrics" {
        (
            false,
            "404 Not Found",
            "text/plain; charset=utf-8",
            "the metrics are at /metrics\n".to_string(),
        )
    } else {
        (true, "200 OK", "text/plain; version=0.0.4; charset=utf-8", body())
    };
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        text.len()
    )
    .into_bytes();
    if method != "HEAD" {
        out.extend_from_slice(text.as_bytes());
    }
    (ok, out)
}

impl<A: App> Shell<A> {
    /// The endpoint's share of a loop turn: accepts, reads of the connections whose
    /// sockets were announced, answers, writes, time-outs. Nothing when it is off.
    pub(super) fn metrics_turn(&mut self) {
        let Some(server) = &mut self.metrics else {
            return;
        };
        let now = self.clock.now();
        if server.accept_ready {
            for _ in 0..ACCEPTS_PER_TURN {
                match server.listener.accept() {
                    Ok((mut stream, _)) => {
                        let Some(slot) = server.conns.iter().position(Option::is_none) else {
                            server.refused += 1;
                            continue; // dropped: closed
                        };
                        let token = Token(TOKEN_METRICS + 1 + slot);
                        if self
                            .poll
                            .registry()
                            .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
                            .is_err()
                        {
                            server.refused += 1;
                            continue;
                        }
                        server.conns[slot] = Some(Conn {
                            stream,
                            request: Vec::with_capacity(256),
                            answer: Vec::new(),
                            written: 0,
                            since: now,
                            ready: true,
                        });
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        server.accept_ready = false;
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        log::debug(format_args!("metrics: accept error: {e}"));
                        break;
                    }
                }
            }
        }
        for slot in server.conns.iter_mut() {
            let Some(conn) = slot else { continue };
            let mut close = now.saturating_since(conn.since) >= CONNECTION_TIMEOUT;
            if close {
                server.refused += 1;
            } else if conn.ready && conn.answer.is_empty() {
                conn.ready = false;
                let mut buf = [0u8; 512];
                // Bounded: at most REQUEST_BYTES_MAX in all, in 512-byte reads.
                while conn.request.len() < REQUEST_BYTES_MAX && !head_complete(&conn.request) {
                    match conn.stream.read(&mut buf) {
                        Ok(0) => {
                            close = true;
                            break;
                        }
                        Ok(n) => {
                            let take = n.min(REQUEST_BYTES_MAX - conn.request.len());
                            conn.request.extend_from_slice(&buf[..take]);
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(_) => {
                            close = true;
                            break;
                        }
                    }
                }
                if !close && !head_complete(&conn.request) && conn.request.len() >= REQUEST_BYTES_MAX {
                    conn.answer = b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec();
                    server.refused += 1;
                }
            }
            if close {
                if let Some(mut conn) = slot.take() {
                    let _ = self.poll.registry().deregister(&mut conn.stream);
                }
            }
        }
        if server.wants_answer() {
            let body = self.metrics_text();
            let Some(server) = &mut self.metrics else { return };
            for conn in server.conns.iter_mut().flatten() {
                if conn.answer.is_empty() && head_complete(&conn.request) {
                    let (ok, answer) = answer_to(&conn.request, || body.clone());
                    if ok {
                        server.scrapes += 1;
                    } else {
                        server.refused += 1;
                    }
                    conn.answer = answer;
                    conn.ready = true;
                }
            }
        }
        let Some(server) = &mut self.metrics else { return };
        for slot in server.conns.iter_mut() {
            let Some(conn) = slot else { continue };
            if conn.answer.is_empty() || !conn.ready {
                continue;
            }
            conn.ready = false;
            let mut done = false;
            loop {
                match conn.stream.write(&conn.answer[conn.written..]) {
                    Ok(0) => {
                        done = true;
                        break;
                    }
                    Ok(n) => {
                        conn.written += n;
                        if conn.written >= conn.answer.len() {
                            done = true;
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        done = true;
                        break;
                    }
                }
            }
            if done {
                if let Some(mut conn) = slot.take() {
                    let _ = conn.stream.flush();
                    let _ = self.poll.registry().deregister(&mut conn.stream);
                }
            }
        }
    }

    /// Every metric, in the text format.
    pub(super) fn metrics_text(&self) -> String {
        let status = self.status();
        let mut out = String::with_capacity(16 * 1024);
        let name = label(&status.name);
        header(
            &mut out,
            "twinloop_node_info",
            "gauge",
            "The node: its name and id (value 1).",
        );
        let _ = writeln!(
            out,
            "twinloop_node_info{{name=\"{name}\",node_id=\"{}\"}} 1",
            status.node_id
        );
        header(
            &mut out,
            "twinloop_role",
            "gauge",
            "1 for the node's role, 0 for the others.",
        );
        for role in [Role::Starting, Role::Primary, Role::Backup] {
            let value = u8::from(names::role(role) == names::role(self.node.role()));
            let _ = writeln!(out, "twinloop_role{{role=\"{}\"}} {value}", names::role(role));
        }
        header(
            &mut out,
            "twinloop_sync_state",
            "gauge",
            "1 for how the node stands with its peer, 0 for the others.",
        );
        let sync = self.node.status().sync;
        for state in [
            SyncState::Alone,
            SyncState::Paired,
            SyncState::Joining,
            SyncState::InSync,
            SyncState::Lagging,
        ] {
            let value = u8::from(state == sync);
            let _ = writeln!(out, "twinloop_sync_state{{state=\"{}\"}} {value}", names::sync(state));
        }
        one(
            &mut out,
            "twinloop_epoch",
            "gauge",
            "The epoch the node leads or follows (0: none yet).",
            status.epoch,
        );
        one(
            &mut out,
            "twinloop_frame",
            "gauge",
            "The last frame the node ran.",
            status.frame,
        );
        one(
            &mut out,
            "twinloop_lag_frames",
            "gauge",
            "Backup: frames committed by the primary and not yet run here.",
            status.lag_frames,
        );
        one(
            &mut out,
            "twinloop_unsent_outputs",
            "gauge",
            "Backup: outputs produced here that the primary has not reported sent.",
            status.unsent_outputs,
        );
        // Acknowledged events (issue 22): only with `[outputs] acks`.
        if let Some(acks) = &status.acks {
            one(
                &mut out,
                "twinloop_events_unacked",
                "gauge",
                "Events waiting for every sink's ack (at most 256).",
                acks.pending,
            );
            one(
                &mut out,
                "twinloop_events_resent_total",
                "counter",
                "Events re-sent for want of an ack.",
                acks.resent,
            );
            one(
                &mut out,
                "twinloop_events_dropped_total",
                "counter",
                "Events dropped unacknowledged from the full queue.",
                acks.dropped,
            );
        }
        // Acked outputs (issue 16): only with `[outputs] release = "acked"`.
        if let Some(release) = status.outputs_release.as_ref().filter(|r| r.mode == "acked") {
            one(
                &mut out,
                "twinloop_outputs_held",
                "gauge",
                "Primary: outputs held for the backups' acks (at most 1024).",
                release.held,
            );
            one(
                &mut out,
                "twinloop_outputs_unguarded_total",
                "counter",
                "Outputs released without every in-sync backup's ack.",
                release.unguarded,
            );
            one(
                &mut out,
                "twinloop_outputs_uncertain_total",
                "counter",
                "Outputs sent at takeovers that the old primary may have released.",
                release.uncertain,
            );
        }
        one(
            &mut out,
            "twinloop_takeovers_total",
            "counter",
            "Unplanned takeovers by this node.",
            status.takeovers,
        );
        one(
            &mut out,
            "twinloop_switchovers_total",
            "counter",
            "Planned switchovers this node took part in.",
            status.switchovers,
        );
        one(
            &mut out,
            "twinloop_false_deaths_total",
            "counter",
            "Probes answered by a primary believed dead (a takeover spared).",
            status.false_deaths,
        );
        one(
            &mut out,
            "twinloop_alarms_total",
            "counter",
            "Alarms raised since the node started.",
            status.alarms,
        );
        header(
            &mut out,
            "twinloop_rejected_messages_total",
            "counter",
            "Datagrams and stale frames the core dropped, by reason.",
        );
        if let Ok(serde_json::Value::Object(reasons)) = serde_json::to_value(status.rejections) {
            for (reason, count) in reasons {
                let _ = writeln!(
                    out,
                    "twinloop_rejected_messages_total{{reason=\"{}\"}} {}",
                    label(&reason),
                    count.as_u64().unwrap_or(0)
                );
            }
        }
        let io = &status.io;
        one(
            &mut out,
            "twinloop_frames_received_total",
            "counter",
            "Datagrams received on the frames socket.",
            io.frames_received,
        );
        header(
            &mut out,
            "twinloop_frames_rejected_total",
            "counter",
            "Frames datagrams the I/O protocol decoder rejected, by reason.",
        );
        let _ = writeln!(
            out,
            "twinloop_frames_rejected_total{{reason=\"foreign_source\"}} {}",
            io.frames_foreign_source
        );
        for (reason, count) in &io.frames_rejected_by {
            let _ = writeln!(
                out,
                "twinloop_frames_rejected_total{{reason=\"{}\"}} {count}",
                label(reason)
            );
        }
        one(
            &mut out,
            "twinloop_outputs_sent_total",
            "counter",
            "Output datagrams sent to the sinks.",
            io.outputs_sent,
        );
        one(
            &mut out,
            "twinloop_output_send_errors_total",
            "counter",
            "Output datagrams that could not be sent.",
            io.output_send_errors,
        );
        one(
            &mut out,
            "twinloop_epochs_persisted_total",
            "counter",
            "Epoch writes to the state file.",
            io.epochs_persisted,
        );
        one(
            &mut out,
            "twinloop_late_wakeups_total",
            "counter",
            "Deadlines of the core handled more than 1 ms after they fell due (missed cycles on a 1 ms cycle).",
            io.loop_late_wakes,
        );
        self.lateness.render(
            &mut out,
            "twinloop_deadline_lateness_seconds",
            "How long after it fell due each deadline of the core was handled.",
        );
        self.frame_handling.render(
            &mut out,
            "twinloop_frame_handling_seconds",
            "From a frame read off its socket to the last action it caused carried out (outputs sent, commit on the links).",
        );
        header(
            &mut out,
            "twinloop_transfer_bytes_total",
            "counter",
            "State-transfer bytes (the bulk sockets), by direction.",
        );
        let _ = writeln!(
            out,
            "twinloop_transfer_bytes_total{{direction=\"sent\"}} {}",
            self.counters.bulk_bytes_sent
        );
        let _ = writeln!(
            out,
            "twinloop_transfer_bytes_total{{direction=\"received\"}} {}",
            self.counters.bulk_bytes_received
        );
        header(
            &mut out,
            "twinloop_link_up",
            "gauge",
            "1 when the peer was heard on the link within the detection window.",
        );
        for link in &status.links {
            let _ = writeln!(
                out,
                "twinloop_link_up{{link=\"{}\"}} {}",
                label(&link.name),
                u8::from(link.up)
            );
        }
        header(
            &mut out,
            "twinloop_link_rtt_seconds",
            "gauge",
            "The link's last measured round trip.",
        );
        for link in &status.links {
            let _ = writeln!(
                out,
                "twinloop_link_rtt_seconds{{link=\"{}\"}} {}",
                label(&link.name),
                seconds(link.rtt_ns)
            );
        }
        header(
            &mut out,
            "twinloop_link_datagrams_total",
            "counter",
            "Datagrams on each sync link, by direction and class.",
        );
        for link in &status.links {
            let l = label(&link.name);
            for (direction, class, count) in [
                ("sent", "control", link.sent_control),
                ("sent", "bulk", link.sent_bulk),
                ("received", "control", link.received_control),
                ("received", "bulk", link.received_bulk),
            ] {
                let _ = writeln!(
                    out,
                    "twinloop_link_datagrams_total{{link=\"{l}\",direction=\"{direction}\",class=\"{class}\"}} {count}"
                );
            }
        }
        header(
            &mut out,
            "twinloop_hook_runs_total",
            "counter",
            "Role-hook runs, by outcome.",
        );
        for (outcome, count) in [
            ("succeeded", self.counters.hook_runs[0]),
            ("failed", self.counters.hook_runs[1]),
            ("spawn_failed", self.counters.hook_runs[2]),
            ("timed_out", self.counters.hook_runs[3]),
            ("dropped", self.counters.hook_runs[4]),
        ] {
            let _ = writeln!(out, "twinloop_hook_runs_total{{outcome=\"{outcome}\"}} {count}");
        }
        one(
            &mut out,
            "twinloop_console_connections_total",
            "counter",
            "Console connections accepted.",
            io.console_connections,
        );
        one(
            &mut out,
            "twinloop_console_requests_total",
            "counter",
            "Console requests answered.",
            io.console_requests,
        );
        one(
            &mut out,
            "twinloop_console_refused_total",
            "counter",
            "Console connections refused (all slots busy, or barred).",
            io.console_refused,
        );
        if self.hmi.is_some() {
            // The HMI server's (docs/HMI.md), only when it is on.
            one(
                &mut out,
                "twinloop_hmi_connections",
                "gauge",
                "HMI (Modbus/TCP) connections open now.",
                io.hmi_connections,
            );
            one(
                &mut out,
                "twinloop_hmi_connections_total",
                "counter",
                "HMI connections accepted.",
                io.hmi_accepted,
            );
            one(
                &mut out,
                "twinloop_hmi_refused_total",
                "counter",
                "HMI connections refused (all slots busy) or closed for bad bytes or idleness.",
                io.hmi_refused,
            );
            one(
                &mut out,
                "twinloop_hmi_requests_total",
                "counter",
                "HMI requests answered.",
                io.hmi_requests,
            );
            one(
                &mut out,
                "twinloop_hmi_exceptions_total",
                "counter",
                "HMI requests answered with a Modbus exception.",
                io.hmi_exceptions,
            );
            header(
                &mut out,
                "twinloop_hmi_writes_total",
                "counter",
                "HMI writes answered, by outcome: acknowledged as applied, or refused with an exception.",
            );
            let _ = writeln!(
                out,
                "twinloop_hmi_writes_total{{outcome=\"acked\"}} {}",
                io.hmi_writes_acked
            );
            let _ = writeln!(
                out,
                "twinloop_hmi_writes_total{{outcome=\"refused\"}} {}",
                io.hmi_writes_refused
            );
        }
        if let Some(server) = &self.metrics {
            one(
                &mut out,
                "twinloop_metrics_scrapes_total",
                "counter",
                "Scrapes of this endpoint answered.",
                server.scrapes,
            );
        }
        one(
            &mut out,
            "twinloop_journal_lines_lost_total",
            "counter",
            "Journal events not written to the journal file (its queue full, or a write error); they stay in memory.",
            self.journal_file.as_ref().map_or(0, journal::JournalFile::lost),
        );
        one(
            &mut out,
            "twinloop_uptime_seconds",
            "gauge",
            "Since the node's shell started.",
            status.uptime_ms / 1000,
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_cumulative_sum_in_seconds() {
        let mut h = Histogram::lateness();
        h.observe(Duration::from_micros(5));
        h.observe(Duration::from_micros(30));
        h.observe(Duration::from_secs(1));
        let mut out = String::new();
        h.render(&mut out, "x_seconds", "help");
        assert!(out.contains("x_seconds_bucket{le=\"0.00001\"} 1\n"), "{out}");
        assert!(out.contains("x_seconds_bucket{le=\"0.00005\"} 2\n"), "{out}");
        assert!(out.contains("x_seconds_bucket{le=\"0.1\"} 2\n"), "{out}");
        assert!(out.contains("x_seconds_bucket{le=\"+Inf\"} 3\n"), "{out}");
        assert!(out.contains("x_seconds_sum 1.000035\n"), "{out}");
        assert!(out.contains("x_seconds_count 3\n"), "{out}");
    }

    #[test]
    fn answer_to_routes_and_bounds() {
        let (ok, a) = answer_to(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", || "m 1\n".into());
        let a = String::from_utf8(a).unwrap();
        assert!(
            ok && a.starts_with("HTTP/1.1 200 OK\r\n") && a.ends_with("\r\n\r\nm 1\n"),
            "{a}"
        );
        assert!(a.contains("Content-Length: 4\r\n"), "{a}");
        let (ok, a) = answer_to(b"HEAD /metrics?x=1 HTTP/1.0\r\n\r\n", || "m 1\n".into());
        assert!(ok && String::from_utf8(a).unwrap().ends_with("\r\n\r\n"));
        let (ok, a) = answer_to(b"GET / HTTP/1.1\r\n\r\n", || unreachable!());
        assert!(!ok && a.starts_with(b"HTTP/1.1 404 "));
        let (ok, a) = answer_to(b"POST /metrics HTTP/1.1\r\n\r\n", || unreachable!());
        assert!(!ok && a.starts_with(b"HTTP/1.1 405 "));
        let (ok, a) = answer_to(b"\xff\xfe garbage\r\n\r\n", || unreachable!());
        assert!(!ok && a.starts_with(b"HTTP/1.1 400 "));
    }

    #[test]
    fn seconds_formats_like_a_float() {
        assert_eq!(seconds(0), "0");
        assert_eq!(seconds(1_500_000_000), "1.5");
        assert_eq!(seconds(10_000), "0.00001");
    }

    proptest::proptest! {
        #[test]
        fn answer_to_arbitrary_bytes_no_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let (_, a) = answer_to(&bytes, || "m 1\n".into());
            proptest::prop_assert!(a.starts_with(b"HTTP/1.1 "));
        }
    }
}
