#![no_main]
// A received Noise IK/XX handshake message, at every step where one can arrive.
libfuzzer_sys::fuzz_target!(|data: &[u8]| noise::fuzzing::handshake_message(data));
