//! The node configuration parser (TOML, validation, overrides): arbitrary text gives a
//! configuration or one error naming a key, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use twinloop_demo::node_config::{NodeFile, Override};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // The first line doubles as a `--set key=value` override.
    let overrides: Vec<Override> = text.lines().next().and_then(|l| Override::parse(l).ok()).into_iter().collect();
    if let Ok(file) = NodeFile::parse(text, std::path::Path::new("/nonexistent"), &overrides) {
        let _ = file.to_toml();
    }
});
