//! Noise handshakes and `@hyperswarm/secret-stream`, byte-compatible with the JS packages
//! `noise-handshake` 4.2.0, `noise-curve-ed` 2.1.0 and `@hyperswarm/secret-stream` 6.9.2.
//!
//! # I/O contract
//!
//! The core is sans-IO and clock-free: bytes in, bytes out, randomness passed in.
//! - [`Handshake`]: `Noise_IK_Ed25519_ChaChaPoly_BLAKE2b` (hyperdht connect, prologue
//!   `NS_PEER_HANDSHAKE`) and `Noise_XX_Ed25519_ChaChaPoly_BLAKE2b` (standalone secret stream),
//!   as initiator or responder, with payloads, on the `snow` state machine.
//!   [`Handshake::write_message`] makes the next message, [`Handshake::read_message`]
//!   consumes the peer's. The DH is the Edwards-curve operation of `noise-curve-ed` ([`dh`]),
//!   and remote keys libsodium refuses are refused.
//! - [`SecretStream`]: uint24-LE framing, the stream-id header, libsodium secretstream
//!   push/pull ([`sodium_secretstream`]) and the unordered datagrams ([`Datagrams`]), as a
//!   [`SendHalf`] and a [`RecvHalf`]; started from a finished IK
//!   handshake ([`SecretStream::from_handshake`], as hyperdht does) or running its own XX
//!   ([`SecretStream::new_xx`]). Feed received bytes, poll plaintext messages, write
//!   plaintext, drain outgoing bytes. Keepalive timing is [`KeepAlive`], driven by your `now`.
//! - With the `tokio` feature, `io::SecretStreamIo` wraps any `AsyncRead + AsyncWrite` and is
//!   itself `AsyncRead + AsyncWrite`.
//!
//! Remote input never panics; every failure is an error enum naming its cause.

// No panicking shortcuts anywhere in the crate outside tests; the few opt-outs are explicit
// `#[allow]`s with the reason beside them.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod chacha;
pub mod crypto;
pub mod handshake;
mod poly1305;
pub mod secret_stream;
pub mod sodium_secretstream;

#[cfg(feature = "tokio")]
pub mod io;

#[doc(hidden)]
pub mod fuzzing;

pub use crypto::{DhError, KeyPair, NS_INITIATOR, NS_RESPONDER, NS_SEND, dh};
pub use handshake::{Handshake, HandshakeError, HandshakeResult, Pattern, Role};
pub use secret_stream::{
    Config, DatagramError, Datagrams, KeepAlive, MAX_FRAME_LEN, MAX_MESSAGE_LEN, Randomness,
    RecvHalf, SecretStream, SendHalf, StreamError, stream_id,
};
