//! Noise handshakes (`Noise_IK_Ed25519_ChaChaPoly_BLAKE2b` for hyperdht connections,
//! `Noise_XX_Ed25519_ChaChaPoly_BLAKE2b` for standalone secret streams) and the
//! `@hyperswarm/secret-stream` framing and encryption, byte-compatible with the JS packages
//! `noise-handshake` 4.2.0, `noise-curve-ed` 2.1.0 and `@hyperswarm/secret-stream` 6.9.2.
//!
//! Contract (planned): the core works on byte slices with no I/O; an optional `tokio` feature
//! adds an `AsyncRead + AsyncWrite` adapter. Nothing is implemented yet; see issue "noise".
