#![no_main]
// Arbitrary bytes opened as a sealed holepunch payload, and read as a payload that both sides
// seal and open (dht::fuzzing::connect::secure_payload).
libfuzzer_sys::fuzz_target!(|data: &[u8]| dht::fuzzing::run("secure_payload", data));
