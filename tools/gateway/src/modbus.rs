//! One Modbus/TCP client connection: requests built and responses checked by `rmodbus`
//! (sans-IO), the TCP stream framed here by the MBAP header's length, so that requests
//! can be pipelined (several in flight, matched by transaction id).
//!
//! Bounds: a response is at most [`ADU_BYTES_MAX`] bytes (the Modbus/TCP maximum); the
//! receive buffer holds at most [`RX_BYTES_MAX`]; a connection that queues more than
//! [`TX_BYTES_MAX`] unsent bytes (the device stopped reading) is dropped. Every length
//! from the device is checked before use, and nothing here panics on what a device sends
//! (a property test feeds it arbitrary bytes).

use rmodbus::client::ModbusRequest;
use rmodbus::ModbusProto;
use twinloop::image::{Table, TagType, Value, WordOrder};

/// The largest Modbus/TCP ADU: a 7-byte MBAP header and a 253-byte PDU.
pub const ADU_BYTES_MAX: usize = 260;
/// The receive buffer: two whole responses (a wake-up reads at most this much).
pub const RX_BYTES_MAX: usize = 2 * ADU_BYTES_MAX;
/// The most bytes queued for a device that does not read them.
pub const TX_BYTES_MAX: usize = 16 * 1024;

/// What a request in flight was for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Purpose {
    /// The poll of block `block` (its position in the device's block list).
    Poll {
        /// The block.
        block: usize,
    },
    /// A write of `value` to the out tag at position `tag` of the map.
    Write {
        /// The tag.
        tag: usize,
        /// The raw value.
        value: Value,
    },
}

/// One request in flight.
#[derive(Debug)]
pub struct InFlight {
    /// Its request (transaction id, unit, function, address, count).
    pub request: ModbusRequest,
    /// What it was for.
    pub purpose: Purpose,
    /// The cycle it was sent in.
    pub cycle: u64,
    /// When it was sent (ms since the gateway started).
    pub sent_ms: u64,
}

/// What a complete response said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer<'a> {
    /// Read data: the bytes after the byte count (bits packed LSB first, or registers
    /// big-endian), exactly as many as the request asked for.
    Data(&'a [u8]),
    /// A write was done.
    Written,
    /// A Modbus exception, with its code.
    Exception(u8),
}

/// A response that is not one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// The MBAP protocol id is not 0 or its length is out of 2..=254.
    Header,
    /// The response does not match its request (unit, function, length, byte count).
    Mismatch,
}

/// Splits the first complete ADU off the front of `rx`: `Ok(Some(len))` when
/// `rx[..len]` is one, `Ok(None)` when more bytes are needed, `Err` when the header is
/// not Modbus/TCP (the stream cannot be resynchronised: drop the connection).
pub fn next_adu(rx: &[u8]) -> Result<Option<usize>, FrameError> {
    if rx.len() < 7 {
        return Ok(None);
    }
    let protocol = u16::from_be_bytes([rx[2], rx[3]]);
    let length = usize::from(u16::from_be_bytes([rx[4], rx[5]]));
    if protocol != 0 || !(2..=254).contains(&length) {
        return Err(FrameError::Header);
    }
    let total = 6 + length;
    Ok((rx.len() >= total).then_some(total))
}

/// The transaction id of a complete ADU.
pub fn transaction_id(adu: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes([*adu.first()?, *adu.get(1)?]))
}

/// Checks a complete ADU against its request (rmodbus checks the transaction id, the
/// unit and the function and gives the data; the lengths are checked here, since the
/// image reads exactly `count` values).
pub fn answer<'a>(request: &'a ModbusRequest, adu: &'a [u8]) -> Result<Answer<'a>, FrameError> {
    if adu.len() < 9 {
        return Err(FrameError::Mismatch);
    }
    let function = adu[7];
    if function == request.func.byte() | 0x80 {
        if adu.len() != 9 || adu[6] != request.unit_id {
            return Err(FrameError::Mismatch);
        }
        return Ok(Answer::Exception(adu[8]));
    }
    let data = request.parse_slice(adu).map_err(|_| FrameError::Mismatch)?;
    if request.func.is_read() {
        let count = usize::from(request.count);
        let expected = match request.func.byte() {
            1 | 2 => count.div_ceil(8),
            _ => count * 2,
        };
        if usize::from(adu[8]) != expected || data.len() != expected {
            return Err(FrameError::Mismatch);
        }
        Ok(Answer::Data(data))
    } else {
        // Writes echo the address and the value or count: four bytes.
        if data.len() != 4 || data[..2] != request.reg.to_be_bytes() {
            return Err(FrameError::Mismatch);
        }
        Ok(Answer::Written)
    }
}

/// The request that polls `count` of `table` from `start`, into `buf`.
pub fn poll_request(
    unit: u8,
    transaction: u16,
    table: Table,
    start: u16,
    count: u16,
    buf: &mut Vec<u8>,
) -> Option<ModbusRequest> {
    let mut request = ModbusRequest::new(unit, ModbusProto::TcpUdp);
    request.tr_id = transaction;
    let done = match table {
        Table::Coil => request.generate_get_coils(start, count, buf),
        Table::DiscreteInput => request.generate_get_discretes(start, count, buf),
        Table::InputRegister => request.generate_get_inputs(start, count, buf),
        Table::HoldingRegister => request.generate_get_holdings(start, count, buf),
    };
    done.ok().map(|()| request)
}

/// The request that writes `value` to the tag at `address` of `table`, into `buf`:
/// write single coil (5), write single register (6) or write multiple registers (16)
/// for the two registers of a 32-bit value.
pub fn write_request(
    unit: u8,
    transaction: u16,
    table: Table,
    address: u16,
    value: Value,
    order: WordOrder,
    buf: &mut Vec<u8>,
) -> Option<ModbusRequest> {
    let mut request = ModbusRequest::new(unit, ModbusProto::TcpUdp);
    request.tr_id = transaction;
    let done = match (table, value) {
        (Table::Coil, Value::Bool(on)) => request.generate_set_coil(address, u8::from(on), buf),
        (Table::HoldingRegister, value) if value.kind() != TagType::Bool => {
            let (registers, span) = value.to_registers(order)?;
            if span == 1 {
                request.generate_set_holding(address, registers[0], buf)
            } else {
                request.generate_set_holdings_bulk(address, &registers[..span], buf)
            }
        }
        _ => return None,
    };
    done.ok().map(|()| request)
}

/// Reads bit `i` of packed coil data (LSB first).
pub fn bit_at(data: &[u8], i: usize) -> bool {
    data.get(i / 8).is_some_and(|byte| byte >> (i % 8) & 1 != 0)
}

/// Reads register `i` of register data (big-endian).
pub fn register_at(data: &[u8], i: usize) -> u16 {
    match data.get(i * 2..i * 2 + 2) {
        Some(pair) => u16::from_be_bytes([pair[0], pair[1]]),
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn poll_answer_checks_the_byte_count() {
        let mut buf = Vec::new();
        let request = poll_request(1, 7, Table::InputRegister, 0, 2, &mut buf).unwrap();
        assert_eq!(buf, [0, 7, 0, 0, 0, 6, 1, 4, 0, 0, 0, 2]);
        let ok = [0, 7, 0, 0, 0, 7, 1, 4, 4, 0x12, 0x34, 0x56, 0x78];
        assert_eq!(next_adu(&ok), Ok(Some(13)));
        assert_eq!(answer(&request, &ok), Ok(Answer::Data(&[0x12, 0x34, 0x56, 0x78][..])));
        let short = [0, 7, 0, 0, 0, 5, 1, 4, 2, 0x12, 0x34];
        assert_eq!(answer(&request, &short), Err(FrameError::Mismatch));
        let exception = [0, 7, 0, 0, 0, 3, 1, 0x84, 2];
        assert_eq!(answer(&request, &exception), Ok(Answer::Exception(2)));
        let other_unit = [0, 7, 0, 0, 0, 7, 9, 4, 4, 0x12, 0x34, 0x56, 0x78];
        assert_eq!(answer(&request, &other_unit), Err(FrameError::Mismatch));
    }

    #[test]
    fn write_request_of_a_u32_writes_two_registers_in_word_order() {
        let mut buf = Vec::new();
        let request = write_request(
            1,
            3,
            Table::HoldingRegister,
            10,
            Value::U32(0x0001_0002),
            WordOrder::LowFirst,
            &mut buf,
        )
        .unwrap();
        assert_eq!(buf, [0, 3, 0, 0, 0, 11, 1, 16, 0, 10, 0, 2, 4, 0, 2, 0, 1]);
        let echo = [0, 3, 0, 0, 0, 6, 1, 16, 0, 10, 0, 2];
        assert_eq!(answer(&request, &echo), Ok(Answer::Written));
        assert!(write_request(1, 3, Table::Coil, 0, Value::U16(1), WordOrder::HighFirst, &mut buf).is_none());
    }

    #[test]
    fn next_adu_refuses_a_foreign_header() {
        assert_eq!(next_adu(&[0, 1, 0, 0, 0]), Ok(None));
        assert_eq!(next_adu(&[0, 1, 0, 1, 0, 6, 1]), Err(FrameError::Header));
        assert_eq!(next_adu(&[0, 1, 0, 0, 1, 0, 1]), Err(FrameError::Header));
        assert_eq!(next_adu(&[0, 1, 0, 0, 0, 6, 1, 3]), Ok(None));
    }

    proptest! {
        /// Arbitrary bytes from a device: framing and checking never panic, and whatever
        /// is accepted as data has the length the request asked for.
        #[test]
        fn answer_arbitrary_bytes_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..300),
            table in 0usize..4,
            count in 1u16..130,
            fix_header in any::<bool>(),
        ) {
            let mut buf = Vec::new();
            let request = poll_request(1, 5, Table::ALL[table], 0, count, &mut buf).unwrap();
            let mut bytes = bytes;
            if fix_header && bytes.len() >= 8 {
                let len = (bytes.len() - 6) as u16;
                bytes[0..6].copy_from_slice(&[0, 5, 0, 0, (len >> 8) as u8, len as u8]);
                bytes[6] = 1;
                bytes[7] = request.func.byte();
            }
            if let Ok(Some(len)) = next_adu(&bytes) {
                prop_assert!(len <= ADU_BYTES_MAX);
                if let Ok(Answer::Data(data)) = answer(&request, &bytes[..len]) {
                    let expected = if table < 2 { usize::from(count).div_ceil(8) } else { usize::from(count) * 2 };
                    prop_assert_eq!(data.len(), expected);
                }
            }
            let mut write = Vec::new();
            let w = write_request(1, 5, Table::HoldingRegister, 3, Value::I16(-1), WordOrder::HighFirst, &mut write).unwrap();
            let _ = answer(&w, &bytes);
        }
    }
}
