//! The HMI server: Modbus/TCP on every node (issue 18; docs/HMI.md), off unless
//! `[hmi] listen` is set.
//!
//! Reads (functions 3 and 4, the same map) are answered at once from this node's own
//! state: the status block (registers `0..17`, [`StatusBlock`]: role, sync, the frame
//! the values reflect, the epoch, the loop's load as lateness and CPU share) and the
//! program's tags from register 64 ([`crate::hmi`]). A backup's values are one cycle
//! behind its primary's, and its status block says so (role, frame). Writes (functions
//! 6 and 16, exactly one tag's registers) go to the core ([`Node::handle_hmi_write`])
//! and are answered when the core answers ([`Action::HmiWriteDone`]): applied where no
//! takeover loses it, or an exception.
//!
//! Bounds: [`CONNECTIONS_MAX`] connections (more are closed at accept), [`ACCEPTS_PER_TURN`]
//! accepts and [`REQUESTS_PER_TURN`] requests a loop turn over all connections, one
//! request of at most [`ADU_BYTES_MAX`] bytes in hand per connection, one write under
//! way per connection (its next requests wait in the socket), an idle connection closed
//! after [`IDLE_TIMEOUT`]. A request that is not Modbus/TCP closes its connection; one
//! that is but asks for something not served gets a Modbus exception. Nothing panics.

use super::*;
use crate::hmi::{self, HmiTag, HmiWrite, WriteId};
use crate::node::{HmiOutcome, HmiRefusal};
use mio::net::{TcpListener, TcpStream};
use rmodbus::server::{ModbusFrame, Read as MbRead, Write as MbWrite};
use rmodbus::{ErrorKind, ModbusProto};
use std::io::{Read, Write};

/// Connections served at once.
pub const CONNECTIONS_MAX: usize = 8;
/// Connections accepted in one loop turn.
pub const ACCEPTS_PER_TURN: usize = 4;
/// Requests answered in one loop turn, over every connection.
pub const REQUESTS_PER_TURN: usize = 32;
/// The largest Modbus/TCP request: the 7-byte MBAP header and a 253-byte PDU.
pub const ADU_BYTES_MAX: usize = 260;
/// A connection with nothing to say for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Registers one read may ask for (the Modbus limit).
const READ_REGISTERS_MAX: u16 = 125;
/// The listener's token; connection `i` is `TOKEN_HMI + 1 + i`.
pub(super) const TOKEN_HMI: usize = 80;

/// The status block's first word, "TL": a client checks it is talking to a twinloop node.
pub const STATUS_MAGIC: u16 = 0x544C;
/// The status block's layout version.
pub const STATUS_LAYOUT: u16 = 1;
/// The status block's client-id registers (14 high word, 15 low), writable per connection.
const CLIENT_ID_REGISTER: u16 = 14;
/// The status block's register of the loop thread's CPU share, ‰ (0..=1000).
pub const CPU_SHARE_REGISTER: u16 = 16;
/// The status block's words, registers `0..hmi::STATUS_REGISTERS` (docs/HMI.md).
pub type StatusBlock = [u16; hmi::STATUS_REGISTERS as usize];

/// Exception codes (Modbus application protocol, section 7).
const ILLEGAL_FUNCTION: u8 = 0x01;
const ILLEGAL_ADDRESS: u8 = 0x02;
const ILLEGAL_VALUE: u8 = 0x03;
const DEVICE_BUSY: u8 = 0x06;
/// No primary to take the write: not applied.
const PATH_UNAVAILABLE: u8 = 0x0A;
/// Not answered in time: may or may not be applied; a retry with the same transaction
/// id from the same client is applied at most once.
const TARGET_FAILED: u8 = 0x0B;

/// What [`serve`] made of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Served {
    /// Not Modbus/TCP (or not one whole request): close the connection.
    Close,
    /// `response` holds the answer.
    Answer,
    /// A write of tag `tag`: `response` holds its success echo, to send once the core
    /// answers; `transaction` is the request's.
    Write {
        /// The tag's index.
        tag: u16,
        /// The value written.
        value: i64,
        /// The MBAP transaction id.
        transaction: u16,
    },
}

/// The length of the request at the front of `buf`: `Ok(None)` while incomplete,
/// `Err(())` when its header is not Modbus/TCP (protocol id not 0, or a length outside
/// 2..=254).
pub(crate) fn adu_len(buf: &[u8]) -> Result<Option<usize>, ()> {
    if buf.len() < 6 {
        return Ok(None);
    }
    let protocol = u16::from_be_bytes([buf[2], buf[3]]);
    let length = usize::from(u16::from_be_bytes([buf[4], buf[5]]));
    if protocol != 0 || !(2..=ADU_BYTES_MAX - 6).contains(&length) {
        return Err(());
    }
    let total = 6 + length;
    Ok((buf.len() >= total).then_some(total))
}

/// Writes an exception answer to the request `adu` into `response`.
fn exception(adu: &[u8], code: u8, response: &mut Vec<u8>) {
    response.clear();
    let (tid, unit, function) = (
        [adu[0], adu[1]],
        adu.get(6).copied().unwrap_or(0),
        adu.get(7).copied().unwrap_or(0),
    );
    response.extend_from_slice(&[tid[0], tid[1], 0, 0, 0, 3, unit, function | 0x80, code]);
}

/// The word at `register`: the status block, reserved registers (0), or a tag's.
fn word_at(register: u16, status: &StatusBlock, tags: &[HmiTag], value: &dyn Fn(u16) -> Option<i64>) -> Option<u16> {
    if register < hmi::STATUS_REGISTERS {
        return Some(status[usize::from(register)]);
    }
    if register < hmi::TAGS_BASE {
        return Some(0);
    }
    let (index, offset) = hmi::tag_at(tags, register)?;
    let tag = tags[index];
    // A tag the program shows no value for reads as 0.
    let words = tag.ty.encode(value(index as u16).unwrap_or(0));
    Some(words[usize::from(offset)])
}

/// The request `pdu` (function code first) holds every byte its function's write says it
/// has: 4 after the code for a single write (5, 6), and for a bulk write (15, 16) the
/// address, count and byte count, then that many bytes. Other functions: true.
fn write_body_complete(pdu: &[u8]) -> bool {
    match pdu.first() {
        Some(5 | 6) => pdu.len() >= 5,
        Some(15 | 16) => pdu.get(5).is_some_and(|&bytes| pdu.len() >= 6 + usize::from(bytes)),
        _ => true,
    }
}

/// Answers one whole request `adu` (as [`adu_len`] cut it): reads from `status`, `tags`
/// and `value`; a write of the client-id registers sets `client_id`; a tag's write is
/// returned for the core. Never panics, whatever the bytes.
pub(crate) fn serve(
    adu: &[u8],
    status: &StatusBlock,
    tags: &[HmiTag],
    value: &dyn Fn(u16) -> Option<i64>,
    client_id: &mut u32,
    response: &mut Vec<u8>,
) -> Served {
    if adu.len() < 8 || adu_len(adu) != Ok(Some(adu.len())) {
        return Served::Close;
    }
    // Every unit id is this node's (a router maps unit ids to pairs); none is a broadcast.
    let unit = adu[6];
    let transaction = u16::from_be_bytes([adu[0], adu[1]]);
    if adu[7] & 0x80 != 0 {
        // rmodbus 0.13 adds 0x80 to an unknown function code in a u8 (an overflow panic
        // with overflow checks on): such a code is no function, answered here.
        exception(adu, ILLEGAL_FUNCTION, response);
        return Served::Answer;
    }
    if !write_body_complete(&adu[7..]) {
        // rmodbus 0.13 parses a write whose data is cut short and then slices past the
        // frame's end when asked for the write (a panic): such a request is answered here.
        exception(adu, ILLEGAL_VALUE, response);
        return Served::Answer;
    }
    let mut frame = ModbusFrame::new(unit, adu, ModbusProto::TcpUdp, response).with_broadcast_units(&[]);
    if frame.parse().is_err() {
        return Served::Close;
    }
    if !frame.processing_required {
        if frame.response_required && frame.finalize_response().is_ok() {
            return Served::Answer;
        }
        return Served::Close;
    }
    if frame.readonly {
        let result = match frame.get_external_read() {
            Ok(MbRead::Words(read)) => {
                let mut result = Ok(());
                if read.count == 0 || read.count > READ_REGISTERS_MAX {
                    result = Err(ErrorKind::IllegalDataValue);
                } else {
                    for i in 0..read.count {
                        let word = read
                            .address
                            .checked_add(i)
                            .and_then(|register| word_at(register, status, tags, value));
                        let Some(word) = word else {
                            result = Err(ErrorKind::IllegalDataAddress);
                            break;
                        };
                        let at = usize::from(i) * 2;
                        if let Some(slot) = read.buf.get_mut(at..at + 2) {
                            slot.copy_from_slice(&word.to_be_bytes());
                        }
                    }
                }
                result
            }
            Ok(MbRead::Bits(_)) => Err(ErrorKind::IllegalFunction),
            Err(_) => return Served::Close,
        };
        if frame.process_external_read(result).is_err() || frame.finalize_response().is_err() {
            return Served::Close;
        }
        return Served::Answer;
    }
    // A write: decoded here, answered now (exception, client id) or when the core says.
    let (address, words) = match frame.get_external_write() {
        Ok(MbWrite::Words(write)) => {
            let mut words = [0u16; 2];
            let count = usize::from(write.count);
            if count == 0 || count > 2 || write.data.len() != count * 2 {
                // No tag takes more than two registers.
                exception(adu, ILLEGAL_ADDRESS, response);
                return Served::Answer;
            }
            for (i, pair) in write.data.chunks_exact(2).enumerate() {
                words[i] = u16::from_be_bytes([pair[0], pair[1]]);
            }
            (write.address, (words, count))
        }
        Ok(MbWrite::Bits(_)) => {
            exception(adu, ILLEGAL_FUNCTION, response);
            return Served::Answer;
        }
        Err(_) => {
            // rmodbus set the exception (e.g. a coil value other than on/off).
            if frame.error.is_some() && frame.finalize_response().is_ok() {
                return Served::Answer;
            }
            return Served::Close;
        }
    };
    let (words, count) = words;
    let echo = |frame: &mut ModbusFrame<'_, Vec<u8>>| {
        frame.process_external_write(Ok(())).is_ok() && frame.finalize_response().is_ok()
    };
    if address == CLIENT_ID_REGISTER || address == CLIENT_ID_REGISTER + 1 {
        // The client's id for the dedup of its retries: this connection's only.
        let [high, low] = [(*client_id >> 16) as u16, *client_id as u16];
        let (high, low) = match (address, count) {
            (CLIENT_ID_REGISTER, 2) => (words[0], words[1]),
            (CLIENT_ID_REGISTER, 1) => (words[0], low),
            (_, 1) => (high, words[0]),
            _ => {
                exception(adu, ILLEGAL_ADDRESS, response);
                return Served::Answer;
            }
        };
        *client_id = u32::from(high) << 16 | u32::from(low);
        return if echo(&mut frame) {
            Served::Answer
        } else {
            Served::Close
        };
    }
    let Some((index, 0)) = hmi::tag_at(tags, address) else {
        exception(adu, ILLEGAL_ADDRESS, response);
        return Served::Answer;
    };
    let tag = tags[index];
    if usize::from(tag.ty.registers()) != count || !tag.class.writable() {
        exception(adu, ILLEGAL_ADDRESS, response);
        return Served::Answer;
    }
    let Some(value) = tag.ty.decode(&words[..count]) else {
        exception(adu, ILLEGAL_VALUE, response);
        return Served::Answer;
    };
    if !tag.accepts(value) {
        exception(adu, ILLEGAL_VALUE, response);
        return Served::Answer;
    }
    if !echo(&mut frame) {
        return Served::Close;
    }
    Served::Write {
        tag: index as u16,
        value,
        transaction,
    }
}

/// One client connection.
#[derive(Debug)]
struct Conn {
    stream: TcpStream,
    /// The bytes of the request in hand (at most `ADU_BYTES_MAX`).
    request: Vec<u8>,
    /// The answer being written, and how much of it went.
    answer: Vec<u8>,
    written: usize,
    /// A write the core has not answered: the write, its success echo and its request
    /// (for an exception). The connection takes no other request meanwhile.
    pending: Option<(HmiWrite, Vec<u8>, Vec<u8>)>,
    /// The client's id for its writes: set in the status block, else from its address.
    client_id: u32,
    last_active: Instant,
    readable: bool,
}

/// The server: its listener, its connections and its counters.
#[derive(Debug)]
pub(super) struct HmiServer {
    listener: TcpListener,
    conns: [Option<Conn>; CONNECTIONS_MAX],
    accept_ready: bool,
    /// Requests answered (reads, and writes when the core answered).
    pub(super) requests: u64,
    /// Writes acknowledged as applied.
    pub(super) writes_applied: u64,
    /// Requests answered with an exception.
    pub(super) exceptions: u64,
    /// Connections refused at accept (all slots busy) or closed for bad bytes or idleness.
    pub(super) refused: u64,
    /// Connections accepted since start.
    pub(super) accepted: u64,
    /// Writes answered with an exception (bad register or value, no primary, busy, or
    /// not acknowledged in time).
    pub(super) writes_refused: u64,
}

impl HmiServer {
    pub(super) fn new(mut listener: TcpListener, registry: &mio::Registry) -> io::Result<HmiServer> {
        registry.register(&mut listener, Token(TOKEN_HMI), Interest::READABLE)?;
        Ok(HmiServer {
            listener,
            conns: Default::default(),
            accept_ready: false,
            requests: 0,
            writes_applied: 0,
            exceptions: 0,
            refused: 0,
            accepted: 0,
            writes_refused: 0,
        })
    }

    /// The address it listens on.
    pub(super) fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Whether `token` is the server's; marks it ready.
    pub(super) fn ready(&mut self, token: Token) -> bool {
        match token.0.checked_sub(TOKEN_HMI) {
            Some(0) => self.accept_ready = true,
            Some(i) if i <= CONNECTIONS_MAX => {
                if let Some(conn) = &mut self.conns[i - 1] {
                    conn.readable = true;
                }
            }
            _ => return false,
        }
        true
    }

    /// Connections open now.
    pub(super) fn open(&self) -> usize {
        self.conns.iter().flatten().count()
    }

    /// Whether a connection has a request in hand it can take now.
    fn has_work(&self) -> bool {
        self.conns
            .iter()
            .flatten()
            .any(|c| c.pending.is_none() && c.answer.is_empty() && c.readable)
    }
}

/// The client id a connection from `peer` starts with: its IPv4 address (an IPv6 one
/// folded to 32 bits).
fn default_client_id(peer: SocketAddr) -> u32 {
    match peer.ip() {
        std::net::IpAddr::V4(ip) => u32::from(ip),
        std::net::IpAddr::V6(ip) => {
            let o = ip.octets();
            o.chunks_exact(4)
                .fold(0u32, |acc, c| acc ^ u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
        }
    }
}

/// Writes what it can of a connection's answer; `false` when the connection is broken.
fn flush(conn: &mut Conn) -> bool {
    while conn.written < conn.answer.len() {
        match conn.stream.write(&conn.answer[conn.written..]) {
            Ok(0) => return false,
            Ok(n) => conn.written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    conn.answer.clear();
    conn.written = 0;
    true
}

impl<A: App> Shell<A> {
    /// The status block, as of now.
    fn hmi_status(&self) -> StatusBlock {
        let status = self.node.status();
        let mut words: StatusBlock = [0; hmi::STATUS_REGISTERS as usize];
        words[0] = STATUS_MAGIC;
        words[1] = STATUS_LAYOUT;
        words[2] = match status.role {
            Role::Starting => 0,
            Role::Primary => 1,
            Role::Backup => 2,
        };
        words[3] = match status.sync {
            SyncState::Alone => 0,
            SyncState::Paired => 1,
            SyncState::Joining => 2,
            SyncState::InSync => 3,
            SyncState::Lagging => 4,
        };
        for (i, shift) in [48, 32, 16, 0].into_iter().enumerate() {
            words[4 + i] = (status.frame >> shift) as u16;
            words[8 + i] = (status.epoch >> shift) as u16;
        }
        let late_us = self.counters.lateness_recent_max_ns(self.clock.now()) / 1000;
        words[12] = u16::try_from(late_us).unwrap_or(u16::MAX);
        words[13] = self.node.app().hmi_tags().len() as u16;
        words[usize::from(CPU_SHARE_REGISTER)] = self.counters.cpu_share.permille();
        words
    }

    /// The server's share of a loop turn: accepts, reads, answers, time-outs, at most
    /// [`REQUESTS_PER_TURN`] requests. Nothing when it is off.
    pub(super) fn hmi_turn(&mut self) {
        let Some(server) = &mut self.hmi else {
            return;
        };
        let now = self.clock.now();
        if server.accept_ready {
            for _ in 0..ACCEPTS_PER_TURN {
                match server.listener.accept() {
                    Ok((mut stream, peer)) => {
                        let Some(slot) = server.conns.iter().position(Option::is_none) else {
                            server.refused += 1;
                            continue; // dropped: closed
                        };
                        let token = Token(TOKEN_HMI + 1 + slot);
                        let _ = stream.set_nodelay(true);
                        if self
                            .poll
                            .registry()
                            .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
                            .is_err()
                        {
                            server.refused += 1;
                            continue;
                        }
                        server.accepted += 1;
                        server.conns[slot] = Some(Conn {
                            stream,
                            request: Vec::with_capacity(ADU_BYTES_MAX),
                            answer: Vec::with_capacity(ADU_BYTES_MAX),
                            written: 0,
                            pending: None,
                            client_id: default_client_id(peer),
                            last_active: now,
                            readable: true,
                        });
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        server.accept_ready = false;
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        log::debug(format_args!("hmi: accept error: {e}"));
                        break;
                    }
                }
            }
        }
        let mut budget = REQUESTS_PER_TURN;
        // Round after round over the connections, one request each, while the budget
        // lasts: one busy client does not starve the others.
        while budget > 0 && self.hmi.as_ref().is_some_and(HmiServer::has_work) {
            let mut served_any = false;
            for slot in 0..CONNECTIONS_MAX {
                if budget == 0 {
                    break;
                }
                if self.hmi_serve_one(slot, now) {
                    budget -= 1;
                    served_any = true;
                }
            }
            if !served_any {
                break;
            }
        }
        let Some(server) = &mut self.hmi else { return };
        for slot in server.conns.iter_mut() {
            let Some(conn) = slot else { continue };
            let mut close = !flush(conn);
            if conn.pending.is_none() && now.saturating_since(conn.last_active) >= IDLE_TIMEOUT {
                close = true;
            }
            if close {
                server.refused += u64::from(conn.pending.is_none());
                if let Some(mut conn) = slot.take() {
                    let _ = self.poll.registry().deregister(&mut conn.stream);
                }
            }
        }
    }

    /// Reads and answers one request of connection `slot`, if it has one it may take;
    /// whether it did (or closed the connection).
    fn hmi_serve_one(&mut self, slot: usize, now: Instant) -> bool {
        let Some(server) = &mut self.hmi else { return false };
        let Some(conn) = &mut server.conns[slot] else {
            return false;
        };
        if conn.pending.is_some() || !conn.answer.is_empty() || !conn.readable {
            return false;
        }
        // Read only up to the end of one request: the next waits in the socket.
        let mut close = false;
        // Closed for bytes that are not Modbus/TCP (counted), not by the client (not).
        let mut bad = false;
        let whole = loop {
            let want = match adu_len(&conn.request) {
                Err(()) => {
                    close = true;
                    bad = true;
                    break None;
                }
                Ok(Some(len)) => break Some(len),
                Ok(None) if conn.request.len() < 6 => 6 - conn.request.len(),
                Ok(None) => {
                    let length = usize::from(u16::from_be_bytes([conn.request[4], conn.request[5]]));
                    6 + length - conn.request.len()
                }
            };
            let mut buf = [0u8; ADU_BYTES_MAX];
            match conn.stream.read(&mut buf[..want]) {
                Ok(0) => {
                    close = true;
                    break None;
                }
                Ok(n) => conn.request.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    conn.readable = false;
                    break None;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    close = true;
                    break None;
                }
            }
        };
        if close {
            server.refused += u64::from(bad);
            if let Some(mut conn) = server.conns[slot].take() {
                let _ = self.poll.registry().deregister(&mut conn.stream);
            }
            return true;
        }
        let Some(len) = whole else { return false };
        conn.last_active = now;
        let adu: Vec<u8> = conn.request.drain(..len).collect();
        let mut client_id = conn.client_id;
        let mut response = std::mem::take(&mut conn.answer);
        let status = self.hmi_status();
        let app = self.node.app();
        let tags = app.hmi_tags();
        let served = serve(
            &adu,
            &status,
            tags,
            &|tag| app.hmi_read(tag),
            &mut client_id,
            &mut response,
        );
        let Some(server) = &mut self.hmi else { return true };
        let Some(conn) = &mut server.conns[slot] else {
            return true;
        };
        conn.client_id = client_id;
        match served {
            Served::Close => {
                server.refused += 1;
                if let Some(mut conn) = server.conns[slot].take() {
                    let _ = self.poll.registry().deregister(&mut conn.stream);
                }
            }
            Served::Answer => {
                server.requests += 1;
                if response.get(7).is_some_and(|f| f & 0x80 != 0) {
                    server.exceptions += 1;
                    // A write refused before the core saw it (register, count, value).
                    if matches!(adu.get(7), Some(5 | 6 | 15 | 16)) {
                        server.writes_refused += 1;
                    }
                }
                conn.answer = response;
            }
            Served::Write {
                tag,
                value,
                transaction,
            } => {
                let write = HmiWrite {
                    id: WriteId {
                        client: client_id,
                        transaction,
                    },
                    tag,
                    value,
                };
                conn.pending = Some((write, response, adu));
                let result = self.node.handle_hmi_write(self.clock.now(), write);
                if let Err(refusal) = result {
                    let code = match refusal {
                        HmiRefusal::NotWritable => ILLEGAL_ADDRESS,
                        HmiRefusal::OutOfLimits => ILLEGAL_VALUE,
                        HmiRefusal::NoPrimary => PATH_UNAVAILABLE,
                        HmiRefusal::Busy => DEVICE_BUSY,
                    };
                    self.hmi_finish(slot, Some(code));
                }
                // The core may have answered already (a retry of a write held safely).
                if let Err(e) = self.drain() {
                    log::error(format_args!("hmi: {e}"));
                }
            }
        }
        true
    }

    /// Answers connection `slot`'s pending write: its echo (`None`) or an exception.
    fn hmi_finish(&mut self, slot: usize, code: Option<u8>) {
        let Some(server) = &mut self.hmi else { return };
        let Some(conn) = &mut server.conns[slot] else { return };
        let Some((_, echo, adu)) = conn.pending.take() else {
            return;
        };
        server.requests += 1;
        match code {
            None => {
                server.writes_applied += 1;
                conn.answer = echo;
            }
            Some(code) => {
                server.exceptions += 1;
                server.writes_refused += 1;
                let mut response = echo;
                exception(&adu, code, &mut response);
                conn.answer = response;
            }
        }
        conn.written = 0;
        if !flush(conn) {
            if let Some(mut conn) = server.conns[slot].take() {
                let _ = self.poll.registry().deregister(&mut conn.stream);
            }
        }
    }

    /// The core answered a write this node accepted: every connection waiting on it gets
    /// its answer (a client's retry on a second connection waits on the same write).
    pub(super) fn hmi_answer(&mut self, write: HmiWrite, outcome: HmiOutcome) {
        let Some(server) = &self.hmi else { return };
        let waiting: heapless::Vec<usize, CONNECTIONS_MAX> = server
            .conns
            .iter()
            .enumerate()
            .filter(|(_, c)| {
                c.as_ref()
                    .is_some_and(|c| c.pending.as_ref().is_some_and(|p| p.0 == write))
            })
            .map(|(i, _)| i)
            .collect();
        for slot in waiting {
            let code = match outcome {
                HmiOutcome::Applied { .. } => None,
                HmiOutcome::TimedOut => Some(TARGET_FAILED),
            };
            self.hmi_finish(slot, code);
        }
    }

    /// The HMI server's address (useful when configured with port 0).
    pub fn hmi_addr(&self) -> Option<SocketAddr> {
        self.hmi.as_ref().and_then(|h| h.local_addr().ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hmi::{HmiClass, HmiType};
    use proptest::prelude::*;

    const TAGS: [HmiTag; 3] = [
        HmiTag::read("level", HmiClass::Value, HmiType::U32, "um"),
        HmiTag::write("setpoint", HmiClass::Setpoint, HmiType::I16, "mm", -10, 100),
        HmiTag::write("ack", HmiClass::Acknowledge, HmiType::Bool, "", 1, 1),
    ];

    fn status() -> StatusBlock {
        let mut s: StatusBlock = Default::default();
        s[0] = STATUS_MAGIC;
        s[7] = 42;
        s[usize::from(CPU_SHARE_REGISTER)] = 26;
        s
    }

    fn value(tag: u16) -> Option<i64> {
        match tag {
            0 => Some(70_000),
            1 => Some(-5),
            _ => None,
        }
    }

    fn request(tid: u16, pdu: &[u8]) -> Vec<u8> {
        let mut adu = tid.to_be_bytes().to_vec();
        adu.extend_from_slice(&[0, 0]);
        adu.extend_from_slice(&((pdu.len() + 1) as u16).to_be_bytes());
        adu.push(1);
        adu.extend_from_slice(pdu);
        adu
    }

    fn run(adu: &[u8]) -> (Served, Vec<u8>, u32) {
        let mut client = 9;
        let mut response = Vec::new();
        let served = serve(adu, &status(), &TAGS, &value, &mut client, &mut response);
        (served, response, client)
    }

    #[test]
    fn read_status_and_tags_in_one_request() {
        let (served, response, _) = run(&request(5, &[3, 0, 0, 0, 67]));
        assert_eq!(served, Served::Answer);
        assert_eq!(&response[..2], &5u16.to_be_bytes());
        assert_eq!(response[7], 3);
        assert_eq!(response[8], 134);
        let word = |r: usize| u16::from_be_bytes([response[9 + 2 * r], response[10 + 2 * r]]);
        assert_eq!(word(0), STATUS_MAGIC);
        assert_eq!(word(7), 42);
        assert_eq!(word(16), 26, "the CPU share");
        assert_eq!(word(17), 0, "reserved");
        assert_eq!(word(20), 0, "reserved");
        assert_eq!(u32::from(word(64)) << 16 | u32::from(word(65)), 70_000);
        assert_eq!(word(66) as i16, -5);
    }

    #[test]
    fn read_past_the_map_illegal_address() {
        let (served, response, _) = run(&request(6, &[4, 0, 64, 0, 5]));
        assert_eq!(served, Served::Answer);
        assert_eq!(&response[7..], &[0x84, ILLEGAL_ADDRESS]);
    }

    #[test]
    fn write_single_register_of_setpoint_goes_to_the_core() {
        let adu = request(7, &[6, 0, 66, 0xFF, 0xFB]);
        let (served, response, _) = run(&adu);
        assert_eq!(
            served,
            Served::Write {
                tag: 1,
                value: -5,
                transaction: 7
            }
        );
        assert_eq!(response, adu, "the echo of a single write is the request");
    }

    #[test]
    fn write_out_of_limits_or_read_only_or_partial_refused() {
        let (_, response, _) = run(&request(8, &[6, 0, 66, 0, 101]));
        assert_eq!(&response[7..], &[0x86, ILLEGAL_VALUE]);
        let (_, response, _) = run(&request(8, &[16, 0, 64, 0, 2, 4, 0, 0, 0, 1]));
        assert_eq!(&response[7..], &[0x90, ILLEGAL_ADDRESS], "read-only");
        let (_, response, _) = run(&request(8, &[6, 0, 65, 0, 1]));
        assert_eq!(&response[7..], &[0x86, ILLEGAL_ADDRESS], "half a tag");
        let (_, response, _) = run(&request(8, &[5, 0, 67, 0xFF, 0]));
        assert_eq!(&response[7..], &[0x85, ILLEGAL_FUNCTION], "coils are not served");
    }

    #[test]
    fn write_client_id_sets_this_connections_id() {
        let (served, _, client) = run(&request(9, &[16, 0, 14, 0, 2, 4, 0x12, 0x34, 0x56, 0x78]));
        assert_eq!(served, Served::Answer);
        assert_eq!(client, 0x1234_5678);
    }

    #[test]
    fn header_not_modbus_tcp_closes() {
        let mut adu = request(1, &[3, 0, 0, 0, 1]);
        adu[2] = 1;
        assert_eq!(adu_len(&adu), Err(()));
        assert_eq!(run(&adu).0, Served::Close);
        assert_eq!(adu_len(&[0, 1, 0, 0, 0x10, 0]), Err(()), "longer than a request can be");
        assert_eq!(adu_len(&[0, 1, 0, 0, 0, 6, 1]), Ok(None));
    }

    #[test]
    fn serve_bulk_write_cut_short_answered_illegal_value() {
        // Found by serve_arbitrary_pdu_never_panics: rmodbus 0.13 panicked on these.
        for pdu in [&[15u8, 0, 0, 0, 0, 1][..], &[16, 0, 64, 0, 1, 2, 0], &[6, 0, 64, 0]] {
            let (served, response, _) = run(&request(1, pdu));
            assert_eq!(served, Served::Answer, "{pdu:?}");
            assert_eq!(&response[7..], &[pdu[0] | 0x80, ILLEGAL_VALUE], "{pdu:?}");
        }
    }

    proptest! {
        #[test]
        fn serve_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = adu_len(&bytes);
            let (served, response, _) = run(&bytes);
            if served == Served::Answer {
                prop_assert!(response.len() >= 9 && response.len() <= ADU_BYTES_MAX);
            }
        }

        #[test]
        fn serve_arbitrary_pdu_never_panics(tid in any::<u16>(), pdu in proptest::collection::vec(any::<u8>(), 1..253)) {
            let (served, response, _) = run(&request(tid, &pdu));
            if served == Served::Answer {
                prop_assert_eq!(&response[..2], &tid.to_be_bytes());
                prop_assert!(response.len() <= ADU_BYTES_MAX);
            }
        }
    }
}
