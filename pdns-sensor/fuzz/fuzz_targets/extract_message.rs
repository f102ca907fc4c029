#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pdns_sensor::fuzzing::extract_message(data));
