//! The Modbus/TCP bytes the router looks at: the MBAP framing of a stream, what an HMI's
//! request asks for (enough to route it), exceptions and echoes it answers itself, and
//! the nodes' status block. Requests to the nodes are built by rmodbus (sans-IO); the
//! few fields read here are read with checked indexing, and nothing here panics on any
//! bytes (property tests below).

use rmodbus::client::ModbusRequest;

/// The largest Modbus/TCP ADU: the 7-byte MBAP header and a 253-byte PDU.
pub const ADU_BYTES_MAX: usize = 260;
/// The status block's registers (docs/HMI.md): 0..=16. A node from before register 16
/// (the CPU share, 2026-11-26) answers it as a reserved register, 0: read as idle.
pub const STATUS_REGISTERS: u16 = 17;
/// The status block's words.
pub type StatusBlock = [u16; STATUS_REGISTERS as usize];
/// The status block's first word, "TL".
pub const STATUS_MAGIC: u16 = 0x544C;
/// The status block layout the router reads.
pub const STATUS_LAYOUT: u16 = 1;
/// The client-id registers (14 high word, 15 low).
pub const CLIENT_ID_REGISTER: u16 = 14;
/// The register of the node loop's CPU share, ‰.
pub const CPU_SHARE_REGISTER: u16 = 16;

/// Exception codes (Modbus application protocol, section 7).
pub const ILLEGAL_ADDRESS: u8 = 0x02;
/// A node has too many writes waiting: not applied.
pub const DEVICE_BUSY: u8 = 0x06;
/// No pair for the unit id, or no primary took the write: not applied.
pub const PATH_UNAVAILABLE: u8 = 0x0A;
/// No answer in time: a write's outcome is unknown (a retry with the same client id and
/// transaction id is applied at most once).
pub const TARGET_FAILED: u8 = 0x0B;

/// A stream whose MBAP header is not Modbus/TCP: it cannot be resynchronised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotModbus;

/// The length of the ADU at the front of `buf`: `Ok(None)` while incomplete, an error
/// when the header is not Modbus/TCP (protocol id not 0, length outside 2..=254).
pub fn adu_len(buf: &[u8]) -> Result<Option<usize>, NotModbus> {
    if buf.len() < 6 {
        return Ok(None);
    }
    let protocol = u16::from_be_bytes([buf[2], buf[3]]);
    let length = usize::from(u16::from_be_bytes([buf[4], buf[5]]));
    if protocol != 0 || !(2..=ADU_BYTES_MAX - 6).contains(&length) {
        return Err(NotModbus);
    }
    let total = 6 + length;
    Ok((buf.len() >= total).then_some(total))
}

/// What an HMI's request asks for, as far as routing needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    /// A read of holding (3) or input (4) registers.
    Read {
        /// The first register.
        address: u16,
        /// How many.
        count: u16,
    },
    /// A write of the client-id registers: the connection's new id, answered by the
    /// router (it is the HMI's id, passed to the nodes with its writes).
    ClientId(u32),
    /// A write of anything else (functions 5, 6, 15, 16): to the primary.
    Write,
    /// Any other function: passed to a node like a read (it answers an exception).
    Other,
}

/// One whole request (as [`adu_len`] cut it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// The MBAP transaction id.
    pub transaction: u16,
    /// The unit id: the pair.
    pub unit: u8,
    /// The function code.
    pub function: u8,
    /// What it asks for.
    pub ask: Ask,
}

fn word(adu: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*adu.get(at)?, *adu.get(at + 1)?]))
}

/// Reads a whole request `adu`; `None` when it is not one (the connection is closed).
/// `client_id` is the connection's id, the base of a write of one of its two registers.
pub fn classify(adu: &[u8], client_id: u32) -> Option<Request> {
    if adu.len() < 8 || adu_len(adu) != Ok(Some(adu.len())) {
        return None;
    }
    let (transaction, unit, function) = (word(adu, 0)?, adu[6], adu[7]);
    // A request of a known function too short for its fields is still a request: passed
    // on as `Other`, the node answers it (an exception), as for any function it does not
    // serve — not dropped with the connection.
    let fields = || -> Option<Ask> {
        Some(match function {
            3 | 4 => Ask::Read {
                address: word(adu, 8)?,
                count: word(adu, 10)?,
            },
            6 => {
                let (address, value) = (word(adu, 8)?, word(adu, 10)?);
                match address {
                    CLIENT_ID_REGISTER => Ask::ClientId(u32::from(value) << 16 | (client_id & 0xFFFF)),
                    15 => Ask::ClientId((client_id & 0xFFFF_0000) | u32::from(value)),
                    _ => Ask::Write,
                }
            }
            16 => {
                let (address, count) = (word(adu, 8)?, word(adu, 10)?);
                let bytes = usize::from(*adu.get(12)?);
                let data_ok = bytes == usize::from(count) * 2 && adu.len() == 13 + bytes;
                match (address, count) {
                    (CLIENT_ID_REGISTER, 2) if data_ok => {
                        Ask::ClientId(u32::from(word(adu, 13)?) << 16 | u32::from(word(adu, 15)?))
                    }
                    (CLIENT_ID_REGISTER, 1) if data_ok => {
                        Ask::ClientId(u32::from(word(adu, 13)?) << 16 | (client_id & 0xFFFF))
                    }
                    (15, 1) if data_ok => Ask::ClientId((client_id & 0xFFFF_0000) | u32::from(word(adu, 13)?)),
                    _ => Ask::Write,
                }
            }
            5 | 15 => Ask::Write,
            _ => Ask::Other,
        })
    };
    let ask = fields().unwrap_or(Ask::Other);
    Some(Request {
        transaction,
        unit,
        function,
        ask,
    })
}

/// The exception answer `code` to `request`.
pub fn exception(request: &Request, code: u8) -> Vec<u8> {
    let t = request.transaction.to_be_bytes();
    vec![t[0], t[1], 0, 0, 0, 3, request.unit, request.function | 0x80, code]
}

/// The success answer to a write of the client-id registers: the request itself for
/// function 6, its address and count for 16.
pub fn client_id_echo(adu: &[u8]) -> Vec<u8> {
    if adu.get(7) == Some(&16) && adu.len() >= 12 {
        let mut echo = adu[..12].to_vec();
        echo[4] = 0;
        echo[5] = 6;
        echo
    } else {
        adu.to_vec()
    }
}

/// The first register and the count a request `adu` addresses, for the functions that
/// address registers (3, 4, 16: the count field; 6: one) or coils (15: its count of
/// coils; 5: one; a node answers coils with exception 01); `None` for any other.
pub fn span(adu: &[u8]) -> Option<(u16, u16)> {
    match adu.get(7)? {
        3 | 4 | 15 | 16 => Some((word(adu, 8)?, word(adu, 10)?)),
        5 | 6 => Some((word(adu, 8)?, 1)),
        _ => None,
    }
}

/// Sets the first-register field (bytes 8..10) of a request `adu` that [`span`] reads;
/// any other is left as it is.
pub fn set_address(adu: &mut [u8], address: u16) {
    if span(adu).is_some() {
        if let Some(field) = adu.get_mut(8..10) {
            field.copy_from_slice(&address.to_be_bytes());
        }
    }
}

/// Sets the first-register field (bytes 8..10) of the success answer to a write of
/// `function` (5, 6, 15, 16: the echo of the request's address); a read's answer (its
/// bytes 8.. are data) and an exception are left as they are.
pub fn set_echo_address(answer: &mut [u8], function: u8, address: u16) {
    if matches!(function, 5 | 6 | 15 | 16) && answer.get(7) == Some(&function) {
        if let Some(field) = answer.get_mut(8..10) {
            field.copy_from_slice(&address.to_be_bytes());
        }
    }
}

/// Whether `response` is an exception; its code.
pub fn exception_code(response: &[u8]) -> Option<u8> {
    match (response.get(7), response.get(8)) {
        (Some(f), Some(code)) if f & 0x80 != 0 => Some(*code),
        _ => None,
    }
}

/// In the answer `response` to a read of `count` registers from `address`, puts the
/// HMI's `client_id` in registers 14 and 15 (a node would show the router's).
pub fn patch_client_id(response: &mut [u8], address: u16, count: u16, client_id: u32) {
    if exception_code(response).is_some() || response.get(8).map(|&n| usize::from(n)) != Some(usize::from(count) * 2) {
        return;
    }
    for (register, value) in [
        (CLIENT_ID_REGISTER, (client_id >> 16) as u16),
        (CLIENT_ID_REGISTER + 1, client_id as u16),
    ] {
        let Some(offset) = register.checked_sub(address).filter(|&o| o < count) else {
            continue;
        };
        let at = 9 + usize::from(offset) * 2;
        if let Some(slot) = response.get_mut(at..at + 2) {
            slot.copy_from_slice(&value.to_be_bytes());
        }
    }
}

/// A node's status block, as the router uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Status {
    /// 0 starting, 1 primary, 2 backup.
    pub role: u16,
    /// 0 alone, 1 paired, 2 joining, 3 in sync, 4 lagging.
    pub sync: u16,
    /// The last frame run.
    pub frame: u64,
    /// The epoch (term << 8 | primary's node id).
    pub epoch: u64,
    /// The loop's largest recent lateness, µs (register 12).
    pub load_us: u16,
    /// The loop thread's CPU share over the last second, ‰ (register 16; a node may say
    /// more than 1000, which ranks it as it says).
    pub cpu_permille: u16,
}

impl Status {
    /// A primary with an in-sync backup, or an in-sync backup: its values are the pair's.
    pub fn in_sync(&self) -> bool {
        matches!((self.role, self.sync), (1, 1) | (2, 3))
    }

    /// A primary, paired or alone.
    pub fn primary(&self) -> bool {
        self.role == 1
    }
}

/// Why a status answer was not used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusError {
    /// Not an answer to the status read (framing, transaction id, function, length).
    Malformed,
    /// A Modbus exception.
    Exception(u8),
    /// Not a twinloop node's block, or a layout this router does not know.
    NotTwinloop {
        /// Register 0.
        magic: u16,
        /// Register 1.
        layout: u16,
    },
}

/// The status read request (function 3, registers 0..17) with transaction id `tid`.
pub fn status_request(tid: u16) -> Vec<u8> {
    let mut request = ModbusRequest::new_tcp_udp(1, tid);
    let mut buf = Vec::with_capacity(12);
    // Fixed, valid arguments: rmodbus does not fail on them.
    let _ = request.generate_get_holdings(0, STATUS_REGISTERS, &mut buf);
    buf
}

/// The write of `client_id` to registers 14..15 (function 16) with transaction id `tid`.
pub fn client_id_request(tid: u16, client_id: u32) -> Vec<u8> {
    let mut request = ModbusRequest::new_tcp_udp(1, tid);
    let mut buf = Vec::with_capacity(17);
    let _ = request.generate_set_holdings_bulk(
        CLIENT_ID_REGISTER,
        &[(client_id >> 16) as u16, client_id as u16],
        &mut buf,
    );
    buf
}

/// Reads the answer `response` to [`status_request`]`(tid)`.
pub fn parse_status(response: &[u8], tid: u16) -> Result<Status, StatusError> {
    if adu_len(response) != Ok(Some(response.len())) || word(response, 0) != Some(tid) {
        return Err(StatusError::Malformed);
    }
    if let Some(code) = exception_code(response) {
        return Err(StatusError::Exception(code));
    }
    let n = usize::from(STATUS_REGISTERS);
    if response.get(7) != Some(&3)
        || response.get(8).map(|&b| usize::from(b)) != Some(n * 2)
        || response.len() != 9 + n * 2
    {
        return Err(StatusError::Malformed);
    }
    let mut words: StatusBlock = Default::default();
    for (i, w) in words.iter_mut().enumerate() {
        *w = word(response, 9 + i * 2).ok_or(StatusError::Malformed)?;
    }
    if words[0] != STATUS_MAGIC || words[1] != STATUS_LAYOUT {
        return Err(StatusError::NotTwinloop {
            magic: words[0],
            layout: words[1],
        });
    }
    let u64_at = |i: usize| words[i..i + 4].iter().fold(0u64, |acc, &w| acc << 16 | u64::from(w));
    Ok(Status {
        role: words[2],
        sync: words[3],
        frame: u64_at(4),
        epoch: u64_at(8),
        load_us: words[12],
        cpu_permille: words[usize::from(CPU_SHARE_REGISTER)],
    })
}

/// Whether `response` answers the write [`client_id_request`]`(tid, _)`.
pub fn client_id_written(response: &[u8], tid: u16) -> bool {
    adu_len(response) == Ok(Some(response.len()))
        && word(response, 0) == Some(tid)
        && response.get(7) == Some(&16)
        && word(response, 8) == Some(CLIENT_ID_REGISTER)
        && word(response, 10) == Some(2)
}

/// The transaction id of an ADU (the caller checked its length with [`adu_len`]).
pub fn transaction_of(adu: &[u8]) -> Option<u16> {
    word(adu, 0)
}

/// Whether a request of function `function` was answered by `response` (the same
/// function, or its exception): a node that answers something else is out of step.
pub fn answers(response: &[u8], function: u8) -> bool {
    response.get(7).is_some_and(|&f| f & 0x7F == function & 0x7F)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn span_and_set_address_of_reads_writes_and_echoes() {
        let mut read = vec![0, 1, 0, 0, 0, 6, 1, 3, 0x03, 0xE8, 0, 4];
        assert_eq!(span(&read), Some((1000, 4)));
        set_address(&mut read, 0);
        assert_eq!(read, [0, 1, 0, 0, 0, 6, 1, 3, 0, 0, 0, 4]);
        let mut write = vec![0, 2, 0, 0, 0, 6, 1, 6, 0x04, 0x2C, 0, 1];
        assert_eq!(span(&write), Some((1068, 1)));
        set_address(&mut write, 68);
        assert_eq!(span(&write), Some((68, 1)));
        // A 16's echo carries the address too; a read's answer and an exception do not.
        let mut echo = vec![0, 3, 0, 0, 0, 6, 1, 16, 0, 14, 0, 2];
        set_echo_address(&mut echo, 16, 1014);
        assert_eq!(&echo[8..10], &[0x03, 0xF6]);
        let mut answer = vec![0, 1, 0, 0, 0, 7, 1, 3, 4, 0, 1, 0, 2];
        set_echo_address(&mut answer, 3, 1000);
        assert_eq!(answer, [0, 1, 0, 0, 0, 7, 1, 3, 4, 0, 1, 0, 2]);
        let mut exception = vec![0, 2, 0, 0, 0, 3, 1, 0x86, 2];
        set_echo_address(&mut exception, 6, 1000);
        assert_eq!(exception, [0, 2, 0, 0, 0, 3, 1, 0x86, 2]);
        let mut other = vec![0, 1, 0, 0, 0, 4, 1, 7, 9, 9];
        assert_eq!(span(&other), None);
        set_address(&mut other, 5);
        assert_eq!(other, [0, 1, 0, 0, 0, 4, 1, 7, 9, 9]);
    }

    fn adu(tid: u16, unit: u8, pdu: &[u8]) -> Vec<u8> {
        let mut v = tid.to_be_bytes().to_vec();
        v.extend_from_slice(&[0, 0]);
        v.extend_from_slice(&((pdu.len() + 1) as u16).to_be_bytes());
        v.push(unit);
        v.extend_from_slice(pdu);
        v
    }

    #[test]
    fn classify_read_write_and_client_id() {
        let read = adu(7, 2, &[3, 0, 0, 0, 20]);
        assert_eq!(
            classify(&read, 0),
            Some(Request {
                transaction: 7,
                unit: 2,
                function: 3,
                ask: Ask::Read { address: 0, count: 20 }
            })
        );
        let write = adu(8, 1, &[6, 0, 73, 0, 1]);
        assert_eq!(classify(&write, 0).unwrap().ask, Ask::Write);
        let both = adu(9, 1, &[16, 0, 14, 0, 2, 4, 0xAB, 0xCD, 0x12, 0x34]);
        assert_eq!(classify(&both, 0).unwrap().ask, Ask::ClientId(0xABCD_1234));
        let low = adu(9, 1, &[6, 0, 15, 0x55, 0x66]);
        assert_eq!(classify(&low, 0xABCD_1234).unwrap().ask, Ask::ClientId(0xABCD_5566));
        let high = adu(9, 1, &[16, 0, 14, 0, 1, 2, 0x77, 0x88]);
        assert_eq!(classify(&high, 0xABCD_1234).unwrap().ask, Ask::ClientId(0x7788_1234));
        // A byte count that disagrees is no client-id write (the node answers it).
        let bad = adu(9, 1, &[16, 0, 14, 0, 2, 3, 0xAB, 0xCD, 0x12, 0x34]);
        assert_eq!(classify(&bad, 0).unwrap().ask, Ask::Write);
        assert_eq!(classify(&adu(1, 1, &[43, 14, 1]), 0).unwrap().ask, Ask::Other);
        // Proptest's case of CI at 8e095c5: a write of several registers with no fields.
        assert_eq!(classify(&adu(0, 0, &[16]), 0).unwrap().ask, Ask::Other);
        assert_eq!(classify(&adu(7, 1, &[3, 0]), 0).unwrap().ask, Ask::Other);
        assert_eq!(classify(&read[..11], 0), None);
    }

    #[test]
    fn client_id_echo_is_the_modbus_answer() {
        let one = adu(3, 1, &[6, 0, 15, 0x55, 0x66]);
        assert_eq!(client_id_echo(&one), one);
        let two = adu(3, 1, &[16, 0, 14, 0, 2, 4, 1, 2, 3, 4]);
        assert_eq!(client_id_echo(&two), adu(3, 1, &[16, 0, 14, 0, 2]));
    }

    #[test]
    fn patch_client_id_overwrites_only_its_registers() {
        // A read of 13..17: registers 14 and 15 are at offsets 1 and 2.
        let mut response = adu(1, 1, &[3, 8, 0, 9, 0, 9, 0, 9, 0, 9]);
        patch_client_id(&mut response, 13, 4, 0x1122_3344);
        assert_eq!(response, adu(1, 1, &[3, 8, 0, 9, 0x11, 0x22, 0x33, 0x44, 0, 9]));
        // A read that stops at 14 gets only the high word.
        let mut response = adu(1, 1, &[3, 2, 0, 9]);
        patch_client_id(&mut response, 14, 1, 0x1122_3344);
        assert_eq!(response, adu(1, 1, &[3, 2, 0x11, 0x22]));
        let mut exception = adu(1, 1, &[0x83, 2]);
        patch_client_id(&mut exception, 0, 16, 5);
        assert_eq!(exception, adu(1, 1, &[0x83, 2]));
    }

    fn status_answer(tid: u16, words: StatusBlock) -> Vec<u8> {
        let mut pdu = vec![3, 2 * STATUS_REGISTERS as u8];
        for w in words {
            pdu.extend_from_slice(&w.to_be_bytes());
        }
        adu(tid, 1, &pdu)
    }

    #[test]
    fn parse_status_reads_the_block() {
        let mut words: StatusBlock = Default::default();
        words[..4].copy_from_slice(&[STATUS_MAGIC, 1, 2, 3]);
        words[7] = 500;
        words[11] = 0x0102;
        words[12] = 340;
        words[16] = 26;
        let status = parse_status(&status_answer(9, words), 9).unwrap();
        assert_eq!(
            status,
            Status {
                role: 2,
                sync: 3,
                frame: 500,
                epoch: 0x0102,
                load_us: 340,
                cpu_permille: 26
            }
        );
        assert!(status.in_sync() && !status.primary());
        assert_eq!(parse_status(&status_answer(8, words), 9), Err(StatusError::Malformed));
        words[0] = 1;
        assert_eq!(
            parse_status(&status_answer(9, words), 9),
            Err(StatusError::NotTwinloop { magic: 1, layout: 1 })
        );
        assert_eq!(parse_status(&adu(9, 1, &[0x83, 4]), 9), Err(StatusError::Exception(4)));
    }

    #[test]
    fn status_block_layout_is_the_nodes() {
        // The router reads what a node of this workspace serves (it is built apart from
        // the node's code, so that it reads nodes of other versions: the same numbers).
        use twinloop::io::hmi_server as node;
        assert_eq!(STATUS_REGISTERS, twinloop::hmi::STATUS_REGISTERS);
        assert_eq!((STATUS_MAGIC, STATUS_LAYOUT), (node::STATUS_MAGIC, node::STATUS_LAYOUT));
        assert_eq!(CPU_SHARE_REGISTER, node::CPU_SHARE_REGISTER);
    }

    #[test]
    fn requests_built_by_rmodbus_are_what_a_node_reads() {
        assert_eq!(status_request(5), adu(5, 1, &[3, 0, 0, 0, 17]));
        assert_eq!(
            client_id_request(6, 0xAABB_CCDD),
            adu(6, 1, &[16, 0, 14, 0, 2, 4, 0xAA, 0xBB, 0xCC, 0xDD])
        );
        assert!(client_id_written(&adu(6, 1, &[16, 0, 14, 0, 2]), 6));
        assert!(!client_id_written(&adu(7, 1, &[16, 0, 14, 0, 2]), 6));
    }

    proptest! {
        /// Whatever an HMI or a node sends: an answer or `None`/an error, never a panic.
        #[test]
        fn decoders_never_panic_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300), id in any::<u32>(), tid in any::<u16>()) {
            let _ = adu_len(&bytes);
            if let Some(request) = classify(&bytes, id) {
                let _ = exception(&request, TARGET_FAILED);
                if let Ask::Read { address, count } = request.ask {
                    let mut copy = bytes.clone();
                    patch_client_id(&mut copy, address, count, id);
                }
            }
            let _ = client_id_echo(&bytes);
            let _ = exception_code(&bytes);
            let _ = parse_status(&bytes, tid);
            let _ = client_id_written(&bytes, tid);
            let _ = answers(&bytes, 3);
            let mut copy = bytes.clone();
            patch_client_id(&mut copy, tid, id as u16, id);
            let _ = span(&bytes);
            let mut copy = bytes.clone();
            set_address(&mut copy, tid);
            prop_assert_eq!(copy.len(), bytes.len());
            let mut copy = bytes.clone();
            set_echo_address(&mut copy, id as u8, tid);
            prop_assert_eq!(copy.len(), bytes.len());
        }

        /// Any whole MBAP frame with an arbitrary PDU is classified (never `None`) and
        /// its transaction id and unit are kept.
        #[test]
        fn classify_takes_every_whole_frame(tid in any::<u16>(), unit in any::<u8>(), pdu in proptest::collection::vec(any::<u8>(), 1..253)) {
            let request = classify(&adu(tid, unit, &pdu), 0).unwrap();
            prop_assert_eq!((request.transaction, request.unit, request.function), (tid, unit, pdu[0]));
        }
    }
}
