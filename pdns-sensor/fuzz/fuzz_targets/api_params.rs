#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pdns_sensor::fuzzing::api_params(data));
