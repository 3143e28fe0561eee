//! The console port: newline-delimited JSON over TCP (the protocol is `docs/CONSOLE.md`).
//!
//! This module owns the listener and the connections and frames lines; it parses
//! requests into [`Request`]s and formats responses. What a request does is the shell's
//! business (`super::Shell::console_request`). Every buffer is bounded: a request line
//! longer than [`LINE_BYTES_MAX`] or a client that does not read its responses is
//! disconnected, and connections beyond the configured maximum are refused.

use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};
use serde_json::{Map, Value};
use std::io::{self, Read, Write};
use std::net::SocketAddr;

/// The console protocol version, in every `hello` response.
pub const PROTOCOL_VERSION: u64 = 1;
/// The longest request line, in bytes (without the newline).
pub const LINE_BYTES_MAX: usize = 4096;
/// Responses queued for a client that does not read them, in bytes, before it is dropped.
const PENDING_BYTES_MAX: usize = 4 << 20;
/// The most events one `events` request returns.
pub const EVENTS_LIMIT_MAX: u64 = 1000;

/// A parsed console request.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// Who is this node, which protocol does it speak.
    Hello,
    /// The node's status.
    Status,
    /// Journal events after `since`, at most `limit`.
    Events {
        /// The last sequence number the client has.
        since: u64,
        /// The most events to return.
        limit: u64,
    },
    /// A planned switchover: authenticated by `auth` (a MAC over the connection's
    /// challenge), or by `key` in clear on a loopback console.
    Switchover {
        /// The key the client sent.
        key: Option<String>,
        /// `(seq, mac)`: see [`request_mac`].
        auth: Option<(u64, String)>,
    },
    /// The node's effective configuration.
    Config,
    /// `force-primary` or `rejoin`: the operator's word to a node that waits for it
    /// (`cold_start_held`, `colder_primary`, a refused peer). Authenticated like
    /// `switchover`.
    Operator {
        /// `"force-primary"` or `"rejoin"`.
        cmd: &'static str,
        /// The key the client sent.
        key: Option<String>,
        /// `(seq, mac)`: see [`request_mac`].
        auth: Option<(u64, String)>,
    },
}

impl Request {
    /// The request's `cmd`.
    pub fn cmd(&self) -> &'static str {
        match self {
            Request::Hello => "hello",
            Request::Status => "status",
            Request::Events { .. } => "events",
            Request::Switchover { .. } => "switchover",
            Request::Config => "config",
            Request::Operator { cmd, .. } => cmd,
        }
    }
}

/// An error response's code (see `docs/CONSOLE.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The line is not a JSON object.
    BadJson,
    /// A field is missing or has the wrong type.
    BadRequest,
    /// `cmd` names no command.
    UnknownCmd,
    /// The key is missing or wrong.
    BadKey,
    /// No key file is configured: commands that change state are disabled.
    NoKeyConfigured,
    /// The request line is longer than [`LINE_BYTES_MAX`]; the connection is closed.
    LineTooLong,
    /// Too many connections; this one is closed.
    TooManyConnections,
}

impl ErrorCode {
    /// The code as the response carries it.
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::BadJson => "bad_json",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::UnknownCmd => "unknown_cmd",
            ErrorCode::BadKey => "bad_key",
            ErrorCode::NoKeyConfigured => "no_key_configured",
            ErrorCode::LineTooLong => "line_too_long",
            ErrorCode::TooManyConnections => "too_many_connections",
        }
    }
}

/// A request that could not be parsed: the `id` to echo, the code and a message.
pub type ParseError = (Value, ErrorCode, String);

/// Parses one request line. `id`, when present, is echoed in the response.
pub fn parse(line: &str) -> Result<(Value, Request), ParseError> {
    let value: Value = serde_json::from_str(line).map_err(|e| {
        (
            Value::Null,
            ErrorCode::BadJson,
            format!("the request is not valid JSON: {e}"),
        )
    })?;
    let Value::Object(object) = value else {
        return Err((
            Value::Null,
            ErrorCode::BadJson,
            "the request must be a JSON object".into(),
        ));
    };
    let id = object.get("id").cloned().unwrap_or(Value::Null);
    let bad = |message: String| Err((id.clone(), ErrorCode::BadRequest, message));
    let Some(cmd) = object.get("cmd") else {
        return bad("missing field `cmd`".into());
    };
    let Some(cmd) = cmd.as_str() else {
        return bad("field `cmd` must be a string".into());
    };
    let request = match cmd {
        "hello" => Request::Hello,
        "status" => Request::Status,
        "config" => Request::Config,
        "events" => {
            let since = match object.get("since") {
                None | Some(Value::Null) => 0,
                Some(v) => match v.as_u64() {
                    Some(n) => n,
                    None => return bad("field `since` must be a non-negative integer".into()),
                },
            };
            let limit = match object.get("limit") {
                None | Some(Value::Null) => EVENTS_LIMIT_MAX,
                Some(v) => match v.as_u64() {
                    Some(n) if (1..=EVENTS_LIMIT_MAX).contains(&n) => n,
                    _ => return bad(format!("field `limit` must be an integer 1..={EVENTS_LIMIT_MAX}")),
                },
            };
            Request::Events { since, limit }
        }
        "switchover" | "force-primary" | "rejoin" => {
            let key = match object.get("key") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(_) => return bad("field `key` must be a string".into()),
            };
            let auth = match object.get("auth") {
                None | Some(Value::Null) => None,
                Some(Value::Object(a)) => match (a.get("seq").and_then(Value::as_u64), a.get("mac")) {
                    (Some(seq), Some(Value::String(mac))) => Some((seq, mac.clone())),
                    _ => return bad("field `auth` must be {\"seq\": integer, \"mac\": hex string}".into()),
                },
                Some(_) => return bad("field `auth` must be an object".into()),
            };
            match cmd {
                "force-primary" => Request::Operator {
                    cmd: "force-primary",
                    key,
                    auth,
                },
                "rejoin" => Request::Operator {
                    cmd: "rejoin",
                    key,
                    auth,
                },
                _ => Request::Switchover { key, auth },
            }
        }
        other => {
            return Err((
                id.clone(),
                ErrorCode::UnknownCmd,
                format!(
                "unknown command {other:?} (known: hello, status, events, switchover, force-primary, rejoin, config)"
            ),
            ))
        }
    };
    Ok((id, request))
}

/// A success response line: `{"ok":true,"id":…,"cmd":…, fields…}` and a newline. Keys
/// are written in lexicographic order.
pub fn ok_line(id: &Value, cmd: &str, fields: Map<String, Value>) -> String {
    let mut object = Map::new();
    object.insert("ok".into(), true.into());
    object.insert("id".into(), id.clone());
    object.insert("cmd".into(), cmd.into());
    object.extend(fields);
    line(Value::Object(object))
}

/// An error response line: `{"ok":false,"id":…,"error":{"code":…,"message":…}}`.
pub fn error_line(id: &Value, code: ErrorCode, message: &str) -> String {
    let mut error = Map::new();
    error.insert("code".into(), code.name().into());
    error.insert("message".into(), message.into());
    let mut object = Map::new();
    object.insert("ok".into(), false.into());
    object.insert("id".into(), id.clone());
    object.insert("error".into(), Value::Object(error));
    line(Value::Object(object))
}

fn line(value: Value) -> String {
    // serde_json escapes control characters, so the text holds no raw newline.
    let mut text = value.to_string();
    text.push('\n');
    text
}

/// Bytes of a connection's challenge.
pub const CHALLENGE_BYTES: usize = 16;

/// The MAC a client puts in `auth.mac` (as lowercase hex) for a state-changing command:
/// keyed BLAKE3, with a key derived from the console key, over the connection's challenge
/// (from `hello`), the request's sequence number (little-endian, strictly increasing on
/// the connection) and the command name; the first 16 bytes. The challenge binds it to
/// one connection and the sequence number to one request: a captured request cannot be
/// replayed.
pub fn request_mac(key: &[u8], challenge: &[u8; CHALLENGE_BYTES], seq: u64, cmd: &str) -> [u8; 16] {
    let derived = blake3::derive_key("twinloop console key v1", key);
    let mut hasher = blake3::Hasher::new_keyed(&derived);
    hasher.update(challenge);
    hasher.update(&seq.to_le_bytes());
    hasher.update(cmd.as_bytes());
    let mut mac = [0u8; 16];
    mac.copy_from_slice(&hasher.finalize().as_bytes()[..16]);
    mac
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares the presented key with the configured one in time independent of where
/// they differ, so that response timing does not leak the key.
pub fn key_matches(configured: &[u8], presented: &[u8]) -> bool {
    let mut diff = configured.len() ^ presented.len();
    for (i, &byte) in configured.iter().enumerate() {
        diff |= usize::from(byte ^ presented.get(i).copied().unwrap_or(!byte));
    }
    diff == 0
}

struct Connection {
    stream: TcpStream,
    peer: SocketAddr,
    incoming: Vec<u8>,
    outgoing: Vec<u8>,
    /// Close once `outgoing` is flushed and every line read is answered (after the
    /// client's end of stream or a protocol error).
    closing: bool,
    /// Lines handed to the shell and not yet answered.
    unanswered: usize,
    /// Registered for writable events too.
    wants_write: bool,
    /// This connection's challenge, given in `hello`.
    challenge: [u8; CHALLENGE_BYTES],
    /// The highest `auth.seq` accepted on this connection.
    auth_seq: u64,
}

/// The listener and its connections. Tokens: `base` is the listener, `base + 1 + i` is
/// connection slot `i`.
pub struct Console {
    listener: TcpListener,
    connections: Vec<Option<Connection>>,
    base: usize,
    /// Keys the connections' challenges.
    challenge_key: [u8; 32],
    challenges_issued: u64,
}

/// A complete request line from connection `slot`.
pub struct Line {
    /// The connection slot to answer.
    pub slot: usize,
    /// The client's address, for logs.
    pub peer: SocketAddr,
    /// The line, without its newline; `None` when it was too long or not UTF-8.
    pub text: Option<String>,
}

impl Console {
    /// A console on `listener`, using tokens from `base` up.
    pub fn new(
        mut listener: TcpListener,
        registry: &Registry,
        base: usize,
        connections_max: usize,
    ) -> io::Result<Self> {
        registry.register(&mut listener, Token(base), Interest::READABLE)?;
        let mut connections = Vec::with_capacity(connections_max);
        connections.resize_with(connections_max, || None);
        // Challenges must be unpredictable: a secret drawn from the OS's randomness (the
        // hash map seeds) keys them, and a counter makes each one unique.
        let mut challenge_key = [0u8; 32];
        for chunk in challenge_key.chunks_mut(8) {
            use std::hash::{BuildHasher, Hasher};
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(super::clock::unix_ns());
            chunk.copy_from_slice(&h.finish().to_le_bytes());
        }
        Ok(Console {
            listener,
            connections,
            base,
            challenge_key,
            challenges_issued: 0,
        })
    }

    /// The challenge of the connection in `slot`.
    pub fn challenge(&self, slot: usize) -> Option<[u8; CHALLENGE_BYTES]> {
        self.connections.get(slot)?.as_ref().map(|c| c.challenge)
    }

    /// Accepts `seq` for the connection in `slot` when it is higher than any before.
    pub fn advance_auth_seq(&mut self, slot: usize, seq: u64) -> bool {
        match self.connections.get_mut(slot) {
            Some(Some(conn)) if seq > conn.auth_seq => {
                conn.auth_seq = seq;
                true
            }
            _ => false,
        }
    }

    /// The listener's address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// True when `token` belongs to the console.
    pub fn owns(&self, token: Token) -> bool {
        token.0 >= self.base && token.0 <= self.base + self.connections.len()
    }

    /// Handles readiness of one of the console's tokens; complete request lines are
    /// appended to `lines`.
    pub fn ready(&mut self, token: Token, registry: &Registry, lines: &mut Vec<Line>) {
        if token.0 == self.base {
            self.accept(registry);
            return;
        }
        let slot = token.0 - self.base - 1;
        self.read(slot, lines);
        self.flush(slot, registry);
    }

    fn accept(&mut self, registry: &Registry) {
        loop {
            let (mut stream, peer) = match self.listener.accept() {
                Ok(pair) => pair,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    super::log::warn(format_args!("console: accept failed: {e}"));
                    return;
                }
            };
            let Some(slot) = self.connections.iter().position(Option::is_none) else {
                // Tell the client why, best effort, then close.
                let text = error_line(
                    &Value::Null,
                    ErrorCode::TooManyConnections,
                    "too many console connections",
                );
                let _ = stream.write(text.as_bytes());
                super::log::warn(format_args!("console: refused {peer}: too many connections"));
                continue;
            };
            let token = Token(self.base + 1 + slot);
            if let Err(e) = registry.register(&mut stream, token, Interest::READABLE) {
                super::log::warn(format_args!("console: cannot register {peer}: {e}"));
                continue;
            }
            let _ = stream.set_nodelay(true);
            super::log::debug(format_args!("console: {peer} connected"));
            self.challenges_issued += 1;
            let mut challenge = [0u8; CHALLENGE_BYTES];
            let mut hasher = blake3::Hasher::new_keyed(&self.challenge_key);
            hasher.update(&self.challenges_issued.to_le_bytes());
            challenge.copy_from_slice(&hasher.finalize().as_bytes()[..CHALLENGE_BYTES]);
            self.connections[slot] = Some(Connection {
                stream,
                peer,
                incoming: Vec::new(),
                outgoing: Vec::new(),
                closing: false,
                unanswered: 0,
                wants_write: false,
                challenge,
                auth_seq: 0,
            });
        }
    }

    fn read(&mut self, slot: usize, lines: &mut Vec<Line>) {
        let Some(Some(conn)) = self.connections.get_mut(slot) else {
            return;
        };
        let mut buf = [0u8; 4096];
        loop {
            if conn.closing {
                return;
            }
            match conn.stream.read(&mut buf) {
                Ok(0) => {
                    // The client closed its side: answer what it sent, then close.
                    conn.closing = true;
                    return;
                }
                Ok(n) => {
                    conn.incoming.extend_from_slice(&buf[..n]);
                    while let Some(end) = conn.incoming.iter().position(|&b| b == b'\n') {
                        let raw: Vec<u8> = conn.incoming.drain(..=end).collect();
                        let raw = &raw[..raw.len() - 1];
                        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
                        if raw.iter().all(u8::is_ascii_whitespace) {
                            continue;
                        }
                        conn.unanswered += 1;
                        if raw.len() > LINE_BYTES_MAX {
                            conn.closing = true;
                            lines.push(Line {
                                slot,
                                peer: conn.peer,
                                text: None,
                            });
                            return;
                        }
                        lines.push(Line {
                            slot,
                            peer: conn.peer,
                            text: Some(String::from_utf8_lossy(raw).into_owned()),
                        });
                    }
                    if conn.incoming.len() > LINE_BYTES_MAX {
                        conn.incoming.clear();
                        conn.closing = true;
                        conn.unanswered += 1;
                        lines.push(Line {
                            slot,
                            peer: conn.peer,
                            text: None,
                        });
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    // A reset connection: nobody is left to answer.
                    conn.closing = true;
                    conn.outgoing.clear();
                    conn.unanswered = 0;
                    return;
                }
            }
        }
    }

    /// Queues a response line on connection `slot` and sends what the socket takes.
    pub fn reply(&mut self, slot: usize, text: &str, registry: &Registry) {
        if let Some(Some(conn)) = self.connections.get_mut(slot) {
            conn.unanswered = conn.unanswered.saturating_sub(1);
            if conn.outgoing.len() + text.len() > PENDING_BYTES_MAX {
                super::log::warn(format_args!(
                    "console: {} does not read its responses: closed",
                    conn.peer
                ));
                conn.outgoing.clear();
                conn.closing = true;
            } else {
                conn.outgoing.extend_from_slice(text.as_bytes());
            }
        }
        self.flush(slot, registry);
    }

    /// Marks connection `slot` to be closed once its responses are sent.
    pub fn close_after_flush(&mut self, slot: usize, registry: &Registry) {
        if let Some(Some(conn)) = self.connections.get_mut(slot) {
            conn.closing = true;
        }
        self.flush(slot, registry);
    }

    fn flush(&mut self, slot: usize, registry: &Registry) {
        let Some(Some(conn)) = self.connections.get_mut(slot) else {
            return;
        };
        let mut broken = false;
        while !conn.outgoing.is_empty() {
            match conn.stream.write(&conn.outgoing) {
                Ok(0) => {
                    broken = true;
                    break;
                }
                Ok(n) => {
                    conn.outgoing.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    broken = true;
                    break;
                }
            }
        }
        if broken || (conn.closing && conn.outgoing.is_empty() && conn.unanswered == 0) {
            let _ = registry.deregister(&mut conn.stream);
            super::log::debug(format_args!("console: {} disconnected", conn.peer));
            self.connections[slot] = None;
            return;
        }
        // Ask for writable events only while something waits to be sent.
        let wants_write = !conn.outgoing.is_empty();
        if wants_write != conn.wants_write {
            let interest = if wants_write {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            let token = Token(self.base + 1 + slot);
            if registry.reregister(&mut conn.stream, token, interest).is_ok() {
                conn.wants_write = wants_write;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_parse_known_commands() {
        assert_eq!(parse(r#"{"cmd":"status"}"#).unwrap().1, Request::Status);
        assert_eq!(
            parse(r#"{"cmd":"events","since":5,"id":7}"#).unwrap(),
            (
                Value::from(7),
                Request::Events {
                    since: 5,
                    limit: EVENTS_LIMIT_MAX
                }
            )
        );
        assert_eq!(
            parse(r#"{"cmd":"switchover","key":"k"}"#).unwrap().1,
            Request::Switchover {
                key: Some("k".into()),
                auth: None
            }
        );
        assert_eq!(
            parse(r#"{"cmd":"force-primary","key":"k"}"#).unwrap().1,
            Request::Operator {
                cmd: "force-primary",
                key: Some("k".into()),
                auth: None
            }
        );
        assert_eq!(
            parse(r#"{"cmd":"rejoin","auth":{"seq":1,"mac":"ab"}}"#).unwrap().1,
            Request::Operator {
                cmd: "rejoin",
                key: None,
                auth: Some((1, "ab".into()))
            }
        );
        // Unknown fields are ignored, so newer clients can talk to older nodes.
        assert_eq!(
            parse(r#"{"cmd":"hello","client":"twinctl"}"#).unwrap().1,
            Request::Hello
        );
    }

    #[test]
    fn console_parse_errors_are_typed() {
        assert_eq!(parse("nope").unwrap_err().1, ErrorCode::BadJson);
        assert_eq!(parse("[1]").unwrap_err().1, ErrorCode::BadJson);
        assert_eq!(
            parse(r#"{"id":3}"#).unwrap_err(),
            (Value::from(3), ErrorCode::BadRequest, "missing field `cmd`".into())
        );
        assert_eq!(parse(r#"{"cmd":"reboot"}"#).unwrap_err().1, ErrorCode::UnknownCmd);
        assert_eq!(
            parse(r#"{"cmd":"events","since":-1}"#).unwrap_err().1,
            ErrorCode::BadRequest
        );
        assert_eq!(
            parse(r#"{"cmd":"events","limit":0}"#).unwrap_err().1,
            ErrorCode::BadRequest
        );
        assert_eq!(
            parse(r#"{"cmd":"switchover","key":1}"#).unwrap_err().1,
            ErrorCode::BadRequest
        );
    }

    #[test]
    fn console_lines_are_single_json_lines() {
        let text = error_line(&Value::from("a"), ErrorCode::BadKey, "wrong\nkey");
        // Keys come in lexicographic order (serde_json's map), at every level.
        assert_eq!(
            text,
            "{\"error\":{\"code\":\"bad_key\",\"message\":\"wrong\\nkey\"},\"id\":\"a\",\"ok\":false}\n"
        );
        let mut fields = Map::new();
        fields.insert("x".into(), 1.into());
        assert_eq!(
            ok_line(&Value::Null, "status", fields),
            "{\"cmd\":\"status\",\"id\":null,\"ok\":true,\"x\":1}\n"
        );
    }

    #[test]
    fn console_key_matches_only_equal_keys() {
        assert!(key_matches(b"secret", b"secret"));
        assert!(!key_matches(b"secret", b"secreT"));
        assert!(!key_matches(b"secret", b"secret2"));
        assert!(!key_matches(b"secret", b""));
        assert!(key_matches(b"", b""));
    }
}
