//! The sync-link decoder, with and without a key: never panics; whatever decodes
//! re-encodes to bytes that decode to the same message. The input is tried as it is and,
//! so that the fuzzer gets past the checksum, as a body framed with a valid version, flags
//! and CRC.
#![no_main]

use libfuzzer_sys::fuzz_target;
use twinloop::digest::crc32c;
use twinloop::wire::{decode, encode, AuthKey, WIRE_VERSION};

fuzz_target!(|data: &[u8]| {
    let key = AuthKey::new([0x5A; 32]);
    let mut framed = Vec::with_capacity(data.len() + 6);
    framed.extend_from_slice(&[WIRE_VERSION, 0]);
    framed.extend_from_slice(data);
    let crc = crc32c(&framed);
    framed.extend_from_slice(&crc.to_le_bytes());
    for bytes in [data, framed.as_slice()] {
        for key in [None, Some(&key)] {
            if let Ok(envelope) = decode(bytes, key) {
                let again = encode(&envelope, key).expect("a decoded message re-encodes");
                assert_eq!(decode(&again, key), Ok(envelope));
            }
        }
    }
});
