#![no_main]
// Two protomux muxes driven by the input, with hostile frames injected; bounds and mutual
// acceptance are checked (dht::fuzzing::connect::protomux_ops).
libfuzzer_sys::fuzz_target!(|data: &[u8]| dht::fuzzing::run("protomux_ops", data));
