#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| udx::fuzzing::stream_ops(data));
