//! The configuration loader (`config::load`: TOML text, environment overrides, then
//! `validate`) on arbitrary file contents. See the crate's library for what is checked.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    cryowatch_fuzz::load_and_check(data);
});
