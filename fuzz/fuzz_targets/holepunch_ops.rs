#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| dht::hyperdht::holepunch::fuzzing::holepunch_ops(data));
