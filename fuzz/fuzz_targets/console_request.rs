//! The console request parser: any line, valid UTF-8 or not, gives a request or a typed
//! error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(line) = std::str::from_utf8(data) {
        let _ = twinloop::io::console::parse(line);
    }
});
