//! The I/O protocol decoder (frames and outputs): never panics; what decodes re-encodes
//! to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use twinloop::io_protocol::{decode, encode_frame, encode_output, Datagram, DATAGRAM_MAX};

fuzz_target!(|data: &[u8]| {
    let mut buf = [0u8; DATAGRAM_MAX];
    match decode(data) {
        Ok(Datagram::Frame(f)) => {
            let n = encode_frame(f.number, f.payload, &mut buf).expect("a decoded frame re-encodes");
            assert_eq!(&buf[..n], data);
        }
        Ok(Datagram::Output(o)) => {
            let n = encode_output(o.node_id, o.epoch, o.frame, o.index, o.payload, &mut buf)
                .expect("a decoded output re-encodes");
            assert_eq!(&buf[..n], data);
        }
        Err(_) => {}
    }
});
