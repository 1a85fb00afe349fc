#![no_main]
// The hand-written SIMD ChaCha20 / Poly1305 against the portable code, on arbitrary inputs.
libfuzzer_sys::fuzz_target!(|data: &[u8]| noise::fuzzing::simd(data));
