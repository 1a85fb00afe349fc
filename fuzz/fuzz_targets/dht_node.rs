#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| dht::rpc::fuzzing::dht_node(data));
