//! dht-rpc and HyperDHT for Rust, byte-compatible with the JS packages `dht-rpc` 6.27.0 and
//! `hyperdht` 6.34.0.
//!
//! Layout:
//! - [`codec`]: compact-encoding primitives ([`codec::Reader`], [`codec::Writer`]) and the
//!   [`codec::Encode`] / [`codec::Decode`] traits every wire type implements.
//! - [`rpc::wire`]: dht-rpc request/response datagrams.
//! - [`rpc::Node`]: the sans-IO dht-rpc node (routing table, tokens, queries, handlers,
//!   bootstrap, ephemeral → persistent); `runtime` (feature `tokio`) drives it over the `udx`
//!   socket, and the `hyperdht` binary (feature `cli`) is a drop-in for JS's.
//! - [`hyperdht::messages`]: hyperdht message values.
//! - [`hyperdht::HyperDht`]: the sans-IO HyperDHT node (storage node, router, client
//!   operations) on top of an `rpc::Node`; `runtime::HyperDhtNode` (feature `tokio`) is its
//!   handle.
//! - [`crypto`]: node ids, namespaces, key pairs, announce and mutable signatures.
//! - [`protomux`]: protocol channels over one connection (JS `protomux`), and
//!   [`blind_relay`]: the blind-relay protocol on top of it (JS `blind-relay`), which
//!   hyperdht's `relay_through` uses. They live here rather than in a crate of their own
//!   because their frames are compact-encoding ([`codec`]) and `dht` is their first user;
//!   `swarm` reaches them through its dependency on `dht`.
//!
//! Contract: decoders take untrusted bytes, never panic, and return a [`codec::DecodeError`]
//! with the offset of the failing field. Nothing in this crate does I/O except `runtime`
//! (feature `tokio`); the cores take time as an argument and randomness from an injected seed.

// Remote input never panics: no unwrap/expect/panic!/slice indexing anywhere in the library
// (codec, rpc, hyperdht, crypto, runtime) outside tests. Opt-outs, each commented where it is:
// the fuzz oracles (`fuzzing`, `rpc::fuzzing`, `hyperdht::fuzzing`,
// `hyperdht::holepunch::fuzzing`). The `hyperdht` binary, its own crate root, denies the same
// lints.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod blind_relay;
pub mod codec;
pub mod crypto;
#[doc(hidden)]
pub mod fuzzing;
pub mod hyperdht;
pub mod protomux;
pub mod rpc;
#[cfg(feature = "tokio")]
pub mod runtime;
#[cfg(feature = "serde")]
pub mod serde_hex;
