#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| dht::hyperdht::node_fuzzing::hyperdht_node(data));
