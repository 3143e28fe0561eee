//! The console client: one node's console over newline-delimited JSON on TCP
//! (docs/CONSOLE.md), with `hello`, the challenge/MAC authentication and typed
//! requests and responses (the schema's, [`super::schema`]). twinctl, the sim harness
//! and the tests all talk to nodes through it.
//!
//! The connection is kept between requests (a live view asks four times a second; a
//! node accepts only `console.connections_max` connections) and opened again after any
//! failure. Every wait is bounded by the client's timeout, so an unreachable or silent
//! node is an error after at most that long, never a hang; a response line is bounded
//! by [`RESPONSE_BYTES_MAX`].

use super::console::{hex, request_mac, CHALLENGE_BYTES, PROTOCOL_VERSION};
use super::schema::{
    AuthProof, AuthReply, CommandReply, ConfigReply, ErrorCode, ErrorReply, EventsPage, Hello, Proof, Reply, Request,
    RequestLine, Status, StatusReply,
};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

/// The longest response line accepted. An `events` page of 1000 events is well under a
/// megabyte; a larger line is not a console talking.
pub const RESPONSE_BYTES_MAX: u64 = 16 << 20;

/// Why a request failed, without the node's address (see [`ClientError`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// The TCP connection could not be opened.
    Connect(String),
    /// No complete response within the timeout.
    Timeout,
    /// The connection broke or the node closed it before answering.
    Closed(String),
    /// The response line is not a JSON object.
    BadJson(String),
    /// The response is JSON but not what the protocol says (wrong version, missing field).
    Protocol(String),
    /// The node refused the connection, saying why in one line (every console slot in
    /// use: `too_many_connections`, docs/CONSOLE.md).
    Busy(String),
    /// The node answered with an error response (`ok: false`).
    Node {
        /// The stable error code, e.g. `bad_key`.
        code: String,
        /// The node's message for people.
        message: String,
    },
}

/// A failed request to the node at `addr`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientError {
    /// The node's console address.
    pub addr: SocketAddr,
    /// What went wrong.
    pub kind: ErrorKind,
}

impl ClientError {
    /// The error code when the node itself refused the request.
    pub fn node_code(&self) -> Option<&str> {
        match &self.kind {
            ErrorKind::Node { code, .. } => Some(code),
            _ => None,
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let addr = self.addr;
        match &self.kind {
            ErrorKind::Connect(why) => write!(f, "cannot connect to {addr}: {why}"),
            ErrorKind::Timeout => write!(f, "{addr} did not answer in time"),
            ErrorKind::Closed(why) => write!(f, "{addr} closed the connection: {why}"),
            ErrorKind::BadJson(why) => write!(f, "{addr} sent a response that is not a JSON object: {why}"),
            ErrorKind::Protocol(why) => write!(f, "{addr}: unexpected response: {why}"),
            ErrorKind::Busy(why) => write!(f, "{addr} refused the connection: {why}"),
            ErrorKind::Node { code, message } => write!(f, "{addr} refused the request: {code}: {message}"),
        }
    }
}

impl std::error::Error for ClientError {}

/// One io error as a short phrase (without "(os error N)").
fn io_phrase(error: &io::Error) -> String {
    match error.kind() {
        io::ErrorKind::ConnectionRefused => {
            "connection refused (is the node running, is the address its console.bind?)".into()
        }
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => "timed out".into(),
        io::ErrorKind::ConnectionReset => "connection reset".into(),
        io::ErrorKind::BrokenPipe => "connection broken".into(),
        _ => {
            let text = error.to_string();
            match text.find(" (os error") {
                Some(at) => text[..at].to_string(),
                None => text,
            }
        }
    }
}

/// A console client for the node at one address.
pub struct Client {
    addr: SocketAddr,
    timeout: Duration,
    connection: Option<BufReader<TcpStream>>,
    hello: Option<Hello>,
    id_next: u64,
    /// The last `auth.seq` used on this connection (they must increase).
    auth_seq: u64,
    /// The console key: with it, each connection authenticates (`auth`) right after
    /// `hello`, so that it may use the slot a node keeps for an operator.
    key: Option<String>,
    /// The local address connections are opened from (`None`: the system's choice).
    source: Option<IpAddr>,
    /// The open connection proved the key (`auth` answered `authenticated`).
    authenticated: bool,
}

impl Client {
    /// A client for `addr`; no connection is opened yet. `timeout` bounds the connect
    /// and each response.
    pub fn new(addr: SocketAddr, timeout: Duration) -> Client {
        Client {
            addr,
            timeout,
            connection: None,
            hello: None,
            id_next: 1,
            auth_seq: 0,
            key: None,
            source: None,
            authenticated: false,
        }
    }

    /// Open connections from `source` (any port) from now on: a test that must appear to
    /// the node as another host on loopback (127.0.0.2) uses it.
    pub fn set_source(&mut self, source: Option<IpAddr>) {
        self.source = source;
    }

    /// Authenticate every connection with `key` from now on.
    pub fn set_key(&mut self, key: Option<String>) {
        self.key = key;
    }

    /// The node's console address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The open connection has proved the console key (with [`Client::set_key`]): it
    /// may hold the slot a node keeps for an operator.
    pub fn is_authenticated(&self) -> bool {
        self.connection.is_some() && self.authenticated
    }

    /// Opens the connection now if none is open (`hello`, and `auth` with a key).
    pub fn ensure_connected(&mut self) -> Result<(), ClientError> {
        if self.connection.is_none() {
            self.connect()?;
        }
        Ok(())
    }

    /// The node's `hello`, once a connection has been opened.
    pub fn hello(&self) -> Option<&Hello> {
        self.hello.as_ref()
    }

    fn error(&self, kind: ErrorKind) -> ClientError {
        ClientError { addr: self.addr, kind }
    }

    /// Opens a connection and checks that the node speaks our protocol version.
    fn connect(&mut self) -> Result<(), ClientError> {
        self.connection = None;
        self.auth_seq = 0;
        self.authenticated = false;
        let stream = self.open().map_err(|e| self.error(ErrorKind::Connect(io_phrase(&e))))?;
        let setup = stream
            .set_read_timeout(Some(self.timeout))
            .and_then(|()| stream.set_write_timeout(Some(self.timeout)))
            .and_then(|()| stream.set_nodelay(true));
        setup.map_err(|e| self.error(ErrorKind::Connect(io_phrase(&e))))?;
        self.connection = Some(BufReader::new(stream));
        let hello: Hello = self.exchange(&Request::Hello)?;
        if hello.protocol != PROTOCOL_VERSION {
            self.connection = None;
            return Err(self.error(ErrorKind::Protocol(format!(
                "the node speaks console protocol {}, this client speaks {PROTOCOL_VERSION}",
                hello.protocol
            ))));
        }
        let challenge = hello.challenge.as_deref().and_then(parse_challenge);
        self.hello = Some(hello);
        if let (Some(key), Some(challenge)) = (self.key.clone(), challenge) {
            self.auth_seq += 1;
            let mac = request_mac(key.as_bytes(), &challenge, self.auth_seq, "auth");
            let request = Request::Auth {
                auth: AuthProof {
                    seq: self.auth_seq,
                    mac: hex(&mac),
                },
            };
            match self.exchange::<AuthReply>(&request) {
                Ok(reply) => self.authenticated = reply.authenticated,
                // A node older than `auth`, or a key the node does not take: the
                // connection still serves reads, without the kept slot (a switchover on
                // it is refused with the reason).
                Err(e) if e.node_code().is_some() => {}
                Err(e) => {
                    self.connection = None;
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Opens the TCP connection, from the source address when one is set.
    fn open(&self) -> io::Result<TcpStream> {
        let Some(source) = self.source else {
            return TcpStream::connect_timeout(&self.addr, self.timeout);
        };
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(self.addr),
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )?;
        socket.bind(&SocketAddr::new(source, 0).into())?;
        socket.connect_timeout(&self.addr.into(), self.timeout)?;
        Ok(socket.into())
    }

    /// Sends one request on the open connection and reads its response into `T` (the
    /// command's fields); any failure drops the connection.
    fn exchange<T: DeserializeOwned>(&mut self, request: &Request) -> Result<T, ClientError> {
        let object = self.exchange_object(request)?;
        let cmd = request.cmd();
        serde_json::from_value::<Reply<T>>(Value::Object(object))
            .map(|reply| reply.body)
            .map_err(|e| self.error(ErrorKind::Protocol(format!("bad `{cmd}` response: {e}"))))
    }

    /// [`Self::exchange`] up to the checks every response passes: a JSON object with our
    /// `id` and `ok: true`, or the node's error as [`ErrorKind::Node`].
    fn exchange_object(&mut self, request: &Request) -> Result<Map<String, Value>, ClientError> {
        let id = self.id_next;
        self.id_next += 1;
        let line = RequestLine {
            id: id.into(),
            request: request.clone(),
        };
        let result = self.exchange_on_connection(&line);
        if result.is_err() {
            self.connection = None;
        }
        let response = result?;
        let Value::Object(object) = response else {
            return Err(self.error(ErrorKind::BadJson("not an object".into())));
        };
        if let Some(why) = refusal(&object) {
            self.connection = None;
            return Err(self.error(ErrorKind::Busy(why)));
        }
        if object.get("id") != Some(&Value::from(id)) {
            return Err(self.error(ErrorKind::Protocol(format!(
                "response id {} does not match request id {id}",
                object.get("id").unwrap_or(&Value::Null)
            ))));
        }
        match object.get("ok") {
            Some(Value::Bool(true)) => Ok(object),
            Some(Value::Bool(false)) => {
                // A code this version does not know is shown as the node sent it.
                let sent_code = object
                    .get("error")
                    .and_then(|e| e.get("code"))
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .to_string();
                let (code, message) = match serde_json::from_value::<ErrorReply>(Value::Object(object)) {
                    Ok(reply) if reply.error.code == ErrorCode::Unknown => (sent_code, reply.error.message),
                    Ok(reply) => (reply.error.code.name().to_string(), reply.error.message),
                    Err(e) => (sent_code, format!("an error response not of the protocol: {e}")),
                };
                Err(self.error(ErrorKind::Node { code, message }))
            }
            _ => Err(self.error(ErrorKind::Protocol("no boolean `ok` field".into()))),
        }
    }

    fn exchange_on_connection(&mut self, request: &RequestLine) -> Result<Value, ClientError> {
        let addr = self.addr;
        let err = |kind| ClientError { addr, kind };
        let Some(reader) = self.connection.as_mut() else {
            return Err(err(ErrorKind::Closed("not connected".into())));
        };
        let mut line = serde_json::to_string(request).unwrap_or_default();
        line.push('\n');
        if let Err(e) = reader.get_mut().write_all(line.as_bytes()) {
            return Err(match e.kind() {
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => err(ErrorKind::Timeout),
                // A node that refused the connection wrote why before closing it: that
                // line may be waiting even though our request could not be sent.
                _ => match read_refusal(reader) {
                    Some(why) => err(ErrorKind::Busy(why)),
                    None => err(ErrorKind::Closed(io_phrase(&e))),
                },
            });
        }
        let mut bytes = Vec::new();
        let read = reader.by_ref().take(RESPONSE_BYTES_MAX).read_until(b'\n', &mut bytes);
        match read {
            Ok(0) => return Err(err(ErrorKind::Closed("no response".into()))),
            Ok(_) if bytes.last() != Some(&b'\n') => {
                let why = if bytes.len() as u64 >= RESPONSE_BYTES_MAX {
                    format!("a response line longer than {RESPONSE_BYTES_MAX} bytes")
                } else {
                    "the response line was cut off".into()
                };
                return Err(err(ErrorKind::Closed(why)));
            }
            Ok(_) => {}
            Err(e) if matches!(e.kind(), io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock) => {
                return Err(err(ErrorKind::Timeout))
            }
            Err(e) => return Err(err(ErrorKind::Closed(io_phrase(&e)))),
        }
        let text = String::from_utf8_lossy(&bytes);
        serde_json::from_str(text.trim_end()).map_err(|e| {
            let mut shown: String = text.trim_end().chars().take(60).collect();
            if shown.len() < text.trim_end().len() {
                shown.push('…');
            }
            err(ErrorKind::BadJson(format!("{e} (got {shown:?})")))
        })
    }

    /// One request; opens the connection first if needed. With `retry`, a request on a
    /// kept connection that broke (the node restarted) is sent once more on a new one;
    /// requests that change state are never sent twice.
    fn request<T: DeserializeOwned>(&mut self, request: &Request, retry: bool) -> Result<T, ClientError> {
        let object = self.request_object(request, retry)?;
        let cmd = request.cmd();
        serde_json::from_value::<Reply<T>>(Value::Object(object))
            .map(|reply| reply.body)
            .map_err(|e| self.error(ErrorKind::Protocol(format!("bad `{cmd}` response: {e}"))))
    }

    /// [`Self::request`], the response as the node sent it.
    fn request_object(&mut self, request: &Request, retry: bool) -> Result<Map<String, Value>, ClientError> {
        let reused = self.connection.is_some();
        if !reused {
            self.connect()?;
        }
        match self.exchange_object(request) {
            Err(ClientError {
                kind: ErrorKind::Closed(_),
                ..
            }) if reused && retry => {
                self.connect()?;
                self.exchange_object(request)
            }
            other => other,
        }
    }

    /// `status`.
    pub fn status(&mut self) -> Result<Status, ClientError> {
        Ok(self.request::<StatusReply>(&Request::Status, true)?.status)
    }

    /// `status`: the typed status and the object exactly as the node sent it (which may
    /// have fields this client does not know).
    pub fn status_with_raw(&mut self) -> Result<(Status, Value), ClientError> {
        let mut object = self.request_object(&Request::Status, true)?;
        let raw = object.remove("status").unwrap_or(Value::Null);
        let status = serde_json::from_value(raw.clone())
            .map_err(|e| self.error(ErrorKind::Protocol(format!("bad `status` response: {e}"))))?;
        Ok((status, raw))
    }

    /// `events` after `since`, at most `limit` (1..=1000).
    pub fn events(&mut self, since: u64, limit: u64) -> Result<EventsPage, ClientError> {
        let request = Request::Events {
            since: Some(since),
            limit: Some(limit),
        };
        self.request(&request, true)
    }

    /// The sequence number of the newest event (0 = none), from `status`. (Asking
    /// `events` with a huge `since` would also say it, but crashed nodes built before
    /// that overflow was fixed.)
    pub fn events_newest_seq(&mut self) -> Result<u64, ClientError> {
        Ok(self.status()?.events_last_seq)
    }

    /// `config`: the node's effective configuration.
    pub fn config(&mut self) -> Result<ConfigReply, ClientError> {
        self.request(&Request::Config, true)
    }

    /// `switchover`, proving `key`. A refusal by the core is a reply (`result:
    /// refused`); a wrong key is an error (`bad_key`).
    ///
    /// The key itself is not sent: the request carries a MAC over the connection's
    /// challenge and a fresh sequence number, which a node accepts on any address and
    /// which is useless to anyone who captures it. Only a node without challenges (older
    /// than that part of the protocol) gets the key in clear, as it expects. A new
    /// connection is opened, so that a request that changes state is never sent twice.
    pub fn switchover(&mut self, key: &str) -> Result<CommandReply, ClientError> {
        self.operator("switchover", key)
    }
}

/// The reason in a node's unsolicited refusal line (`id` null, `too_many_connections`).
fn refusal(object: &Map<String, Value>) -> Option<String> {
    let error = object.get("error")?;
    let unsolicited = object.get("ok") == Some(&Value::Bool(false)) && object.get("id").is_none_or(Value::is_null);
    if !unsolicited || error.get("code").and_then(Value::as_str) != Some("too_many_connections") {
        return None;
    }
    Some(
        error
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("console busy: every console slot is in use")
            .to_string(),
    )
}

/// A refusal line already received on a connection whose request could not be sent.
fn read_refusal(reader: &mut BufReader<TcpStream>) -> Option<String> {
    let mut bytes = Vec::new();
    reader.by_ref().take(64 << 10).read_until(b'\n', &mut bytes).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(object) => refusal(&object),
        _ => None,
    }
}

impl Client {
    /// An operator's command that changes state (`switchover`, `force-primary`,
    /// `rejoin`), proving `key` as [`Client::switchover`] describes (the MAC covers
    /// `cmd`). A refusal by the core is a reply (`result: refused`).
    pub fn operator(&mut self, cmd: &str, key: &str) -> Result<CommandReply, ClientError> {
        self.operator_to(cmd, key, None)
    }

    /// [`Client::operator`] with a target: `switchover` to node `to` (`switchover --to`;
    /// the MAC covers it, see [`super::console::mac_subject`]).
    pub fn operator_to(&mut self, cmd: &str, key: &str, to: Option<u8>) -> Result<CommandReply, ClientError> {
        let command: fn(Proof) -> Request = match cmd {
            "switchover" => Request::Switchover,
            "force-primary" => Request::ForcePrimary,
            "rejoin" => Request::Rejoin,
            other => {
                return Err(self.error(ErrorKind::Protocol(format!(
                    "{other:?} is not an operator's command (switchover, force-primary, rejoin)"
                ))))
            }
        };
        self.connect()?;
        let challenge = self
            .hello
            .as_ref()
            .and_then(|h| h.challenge.as_deref())
            .map(parse_challenge);
        let proof = match challenge {
            Some(Some(challenge)) => {
                self.auth_seq += 1;
                let subject = super::console::mac_subject(cmd, to);
                let mac = request_mac(key.as_bytes(), &challenge, self.auth_seq, &subject);
                Proof {
                    key: None,
                    auth: Some(AuthProof {
                        seq: self.auth_seq,
                        mac: hex(&mac),
                    }),
                    to: to.map(u64::from),
                }
            }
            Some(None) => {
                return Err(self.error(ErrorKind::Protocol("the `hello` challenge is not 32 hex digits".into())))
            }
            None => Proof {
                key: Some(key.to_string()),
                auth: None,
                to: to.map(u64::from),
            },
        };
        self.request(&command(proof), false)
    }
}

/// The challenge's bytes from its hex form.
fn parse_challenge(text: &str) -> Option<[u8; CHALLENGE_BYTES]> {
    if text.len() != 2 * CHALLENGE_BYTES || !text.is_ascii() {
        return None;
    }
    let mut bytes = [0u8; CHALLENGE_BYTES];
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::net::TcpListener;

    /// A fake node that answers `hello` properly and then each request with `reply`.
    fn fake_node(reply: &'static str) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut writer = stream;
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 {
                let request: Value = serde_json::from_str(&line).unwrap();
                let id = request["id"].clone();
                let text = if request["cmd"] == "hello" {
                    json!({"ok": true, "id": id, "cmd": "hello", "protocol": 1, "node_id": 1, "name": "fake"})
                        .to_string()
                } else {
                    reply.replace("$ID", &id.to_string())
                };
                writer.write_all(format!("{text}\n").as_bytes()).unwrap();
                line.clear();
            }
        });
        addr
    }

    #[test]
    fn client_source_address_is_the_one_set() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = std::thread::spawn(move || {
            let (stream, peer) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let request: Value = serde_json::from_str(&line).unwrap();
            let hello =
                json!({"ok": true, "id": request["id"], "cmd": "hello", "protocol": 1, "node_id": 1, "name": "fake"});
            (&stream).write_all(format!("{hello}\n").as_bytes()).unwrap();
            (peer.ip(), request)
        });
        let mut client = Client::new(addr, Duration::from_secs(2));
        client.set_source(Some([127, 0, 0, 2].into()));
        client.ensure_connected().unwrap();
        let (ip, request) = seen.join().unwrap();
        assert_eq!(ip, IpAddr::from([127, 0, 0, 2]));
        assert_eq!(request, json!({"cmd": "hello", "id": 1}));
        assert!(!client.is_authenticated());
    }

    #[test]
    fn client_challenge_round_trips_hex() {
        let bytes: [u8; CHALLENGE_BYTES] = core::array::from_fn(|i| (i * 17) as u8);
        assert_eq!(parse_challenge(&hex(&bytes)), Some(bytes));
        assert_eq!(parse_challenge("abc"), None);
        assert_eq!(parse_challenge(&"zz".repeat(CHALLENGE_BYTES)), None);
    }

    #[test]
    fn client_not_json_is_bad_json() {
        let mut client = Client::new(fake_node("<html>oops</html>"), Duration::from_secs(2));
        let error = client.status().unwrap_err();
        assert!(matches!(error.kind, ErrorKind::BadJson(_)), "{error}");
        assert!(error.to_string().contains("not a JSON object"), "{error}");
    }

    #[test]
    fn client_node_error_keeps_code() {
        let mut client = Client::new(
            fake_node(r#"{"ok":false,"id":$ID,"error":{"code":"bad_key","message":"wrong or missing key"}}"#),
            Duration::from_secs(2),
        );
        let error = client.switchover("nope").unwrap_err();
        assert_eq!(error.node_code(), Some("bad_key"));
        assert_eq!(client.hello().map(|h| h.name.as_str()), Some("fake"));
    }

    #[test]
    fn client_status_without_role_is_protocol_error() {
        let mut client = Client::new(
            fake_node(r#"{"ok":true,"id":$ID,"cmd":"status","status":{"node_id":1}}"#),
            Duration::from_secs(2),
        );
        let error = client.status().unwrap_err();
        assert!(matches!(error.kind, ErrorKind::Protocol(_)), "{error}");
    }

    #[test]
    fn client_refused_connection_is_connect_error() {
        // A port just released: nothing listens there.
        let addr = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let error = Client::new(addr, Duration::from_secs(1)).status().unwrap_err();
        assert!(matches!(error.kind, ErrorKind::Connect(_)), "{error}");
        assert!(error.to_string().starts_with("cannot connect to 127.0.0.1:"), "{error}");
    }

    #[test]
    fn client_silent_node_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        // Accepts (the kernel does) but never answers.
        let mut client = Client::new(addr, Duration::from_millis(200));
        let error = client.status().unwrap_err();
        assert_eq!(error.kind, ErrorKind::Timeout, "{error}");
        drop(listener);
    }
}
