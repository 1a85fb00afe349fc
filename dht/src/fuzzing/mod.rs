//! The checks behind the fuzz targets in `fuzz/`, shared with the corpus replay in `cargo test`.
//!
//! Each target feeds arbitrary bytes to a decoder. Decoding must not panic; when it succeeds,
//! the value is encoded, decoded again and compared, and the canonical encoding must be stable.
//! The assertions here are the fuzz oracle, so this module is allowed to panic.

// Opt-out of the crate's no-panic lints: this is the oracle, and failing loudly is its job.
#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::fmt::Debug;

use crate::codec::{Decode, Encode, Reader, Writer};
use crate::hyperdht::messages::*;
use crate::rpc::wire::Message;

pub mod connect;

/// Decode → encode → decode → encode must agree.
pub fn roundtrip<T: Encode + Decode + PartialEq + Debug>(data: &[u8]) {
    if let Ok(v) = T::from_bytes(data) {
        let enc = v.to_bytes();
        let again = match T::from_bytes(&enc) {
            Ok(x) => x,
            Err(e) => panic!("our own encoding of {v:?} does not decode: {e}"),
        };
        assert_eq!(v, again, "value changed in a round trip");
        assert_eq!(again.to_bytes(), enc, "encoding is not stable");
    }
}

/// Primitive codecs driven by the input: each step's first byte picks the codec.
pub fn primitives(data: &[u8]) {
    let mut r = Reader::new(data);
    while let Ok(op) = r.u8() {
        let mut out = Vec::new();
        let check = |out: &Vec<u8>, f: &dyn Fn(&mut Reader<'_>) -> bool| {
            assert!(f(&mut Reader::new(out)), "primitive round trip failed");
        };
        match op % 8 {
            0 => {
                let Ok(n) = r.uint() else { return };
                out.put_uint(n);
                check(&out, &|r| r.uint() == Ok(n) && r.is_empty());
            }
            1 => {
                let Ok(n) = r.int() else { return };
                out.put_int(n);
                check(&out, &|r| r.int() == Ok(n) && r.is_empty());
            }
            2 => {
                let Ok(b) = r.buffer() else { return };
                out.put_buffer(b);
                check(&out, &|r| r.buffer() == Ok(b) && r.is_empty());
            }
            3 => {
                let Ok(s) = r.string() else { return };
                out.put_string(s);
                check(&out, &|r| r.string() == Ok(s) && r.is_empty());
            }
            4 => {
                let Ok(a) = r.ipv4_addr_array() else { return };
                out.put_ipv4_addr_array(&a);
                check(&out, &|r| {
                    r.ipv4_addr_array().as_ref() == Ok(&a) && r.is_empty()
                });
            }
            5 => {
                let Ok(a) = r.ipv6_addr_array() else { return };
                out.put_ipv6_addr_array(&a);
                check(&out, &|r| {
                    r.ipv6_addr_array().as_ref() == Ok(&a) && r.is_empty()
                });
            }
            6 => {
                let Ok(n) = r.u24() else { return };
                out.put_u24(n);
                check(&out, &|r| r.u24() == Ok(n) && r.is_empty());
            }
            _ => {
                let Ok(n) = r.u64() else { return };
                out.put_u64(n);
                check(&out, &|r| r.u64() == Ok(n) && r.is_empty());
            }
        }
    }
}

/// The check a fuzz target runs on one input.
pub type Check = fn(&[u8]);

/// Every fuzz target: (name, check). The names are the file names in `fuzz/fuzz_targets/` and
/// the corpus folders in `fuzz/corpus/`.
pub const TARGETS: &[(&str, Check)] = &[
    ("primitives", primitives),
    ("rpc_message", roundtrip::<Message>),
    ("peer", roundtrip::<Peer>),
    ("lookup_raw_reply", roundtrip::<LookupRawReply>),
    ("announce", roundtrip::<Announce>),
    ("handshake", roundtrip::<Handshake>),
    ("holepunch", roundtrip::<Holepunch>),
    ("noise_payload", roundtrip::<NoisePayload>),
    ("holepunch_payload", roundtrip::<HolepunchPayload>),
    ("mutable_signable", roundtrip::<MutableSignable>),
    ("mutable_put_request", roundtrip::<MutablePutRequest>),
    ("mutable_get_response", roundtrip::<MutableGetResponse>),
    ("plugin_request", roundtrip::<PluginRequest>),
    (
        "hyperdht_address",
        roundtrip::<crate::hyperdht::address::HyperdhtAddress>,
    ),
    ("protomux_frame", roundtrip::<crate::protomux::Frame>),
    ("blind_relay_pair", roundtrip::<crate::blind_relay::Pair>),
    (
        "blind_relay_unpair",
        roundtrip::<crate::blind_relay::Unpair>,
    ),
    ("secure_payload", connect::secure_payload),
    ("noise_wrap", connect::noise_wrap),
    ("protomux_ops", connect::protomux_ops),
    ("blind_relay_ops", connect::blind_relay_ops),
];

/// Runs the check of the target called `name` (used by the one-line fuzz targets).
pub fn run(name: &str, data: &[u8]) {
    match TARGETS.iter().find(|(n, _)| *n == name) {
        Some((_, check)) => check(data),
        None => panic!("no fuzz target called {name}"),
    }
}
