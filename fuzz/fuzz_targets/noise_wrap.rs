#![no_main]
// Arbitrary Noise messages and payloads through hyperdht's IK handshake on both sides
// (dht::fuzzing::connect::noise_wrap).
libfuzzer_sys::fuzz_target!(|data: &[u8]| dht::fuzzing::run("noise_wrap", data));
