#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| dht::hyperdht::fuzzing::persistent_ops(data));
