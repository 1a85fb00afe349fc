#![no_main]
// Decode arbitrary bytes; whatever decodes must re-encode and decode to the same value.
libfuzzer_sys::fuzz_target!(|data: &[u8]| dht::fuzzing::run("blind_relay_unpair", data));
