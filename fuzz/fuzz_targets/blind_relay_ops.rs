#![no_main]
// blind-relay pairing tables (relay and clients) under arbitrary pair/unpair/close sequences
// (dht::fuzzing::connect::blind_relay_ops).
libfuzzer_sys::fuzz_target!(|data: &[u8]| dht::fuzzing::run("blind_relay_ops", data));
