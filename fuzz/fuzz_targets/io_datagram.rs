//! The I/O protocol decoder (frames and outputs): never panics; what decodes re-encodes
//! to the same bytes. The input is tried as it is and with a valid CRC appended, so that
//! the fuzzer explores the header checks behind the checksum.
#![no_main]

use libfuzzer_sys::fuzz_target;
use twinloop::digest::crc32c;
use twinloop::io_protocol::{decode, encode_output_kind, encode_session_frame, Datagram, DATAGRAM_MAX};

fn check(bytes: &[u8]) {
    let mut buf = [0u8; DATAGRAM_MAX];
    match decode(bytes) {
        Ok(Datagram::Frame(f)) => {
            // The source session (bytes 6..8) is part of what must round-trip.
            let n = encode_session_frame(f.session, f.number, f.payload, &mut buf).expect("a decoded frame re-encodes");
            assert_eq!(&buf[..n], bytes);
        }
        Ok(Datagram::Output(o)) => {
            // An event (kind 2) or a level with its key (kind 3).
            let n = encode_output_kind(o.node_id, o.epoch, o.frame, o.index, o.kind, o.payload, &mut buf)
                .expect("a decoded output re-encodes");
            assert_eq!(&buf[..n], bytes);
        }
        Err(_) => {}
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    let mut framed = data.to_vec();
    let crc = crc32c(&framed);
    framed.extend_from_slice(&crc.to_le_bytes());
    check(&framed);
});
