//! The sync-link decoder, with and without a key: never panics; whatever decodes
//! re-encodes to bytes that decode to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use twinloop::wire::{decode, encode, AuthKey};

fuzz_target!(|data: &[u8]| {
    let key = AuthKey::new([0x5A; 32]);
    for key in [None, Some(&key)] {
        if let Ok(envelope) = decode(data, key) {
            let bytes = encode(&envelope, key).expect("a decoded message re-encodes");
            assert_eq!(decode(&bytes, key), Ok(envelope));
        }
    }
});
