#![no_main]
// Raw secret-stream bytes (uint24 frames, header, secretstream messages) and datagrams.
libfuzzer_sys::fuzz_target!(|data: &[u8]| noise::fuzzing::frames(data));
