//! The binary form of a connect target: a public key, optionally followed by the DHT nodes
//! that relay handshakes to it.
//!
//! JS: `hyperdht-address` 1.1.1 (`spec/hyperschema/index.js`, schema `@hyperdht/address`,
//! version 2), which hyperdht 6.34.0 `lib/connect.js` decodes from the key it is given
//! (`HyperDHTAddress.decode`) and whose nodes become the connect call's relay hints.

use std::net::SocketAddrV4;

use crate::codec::{Decode, DecodeError, Encode, Reader, Writer};

#[cfg(feature = "serde")]
use serde::{Deserialize, Serialize};

/// `@hyperdht/address`: `key fixed32`, `flags uint` (bit 0: nodes), `[nodes array(ipv4Address)]`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(Serialize, Deserialize),
    serde(deny_unknown_fields)
)]
pub struct HyperdhtAddress {
    /// The server's public key.
    #[cfg_attr(feature = "serde", serde(with = "crate::serde_hex"))]
    pub key: [u8; 32],
    /// Relay hints (flag bit 0). JS writes the flag for any list it is given, an empty one
    /// included, so `Some(vec![])` and `None` encode differently.
    pub nodes: Option<Vec<SocketAddrV4>>,
}

impl Encode for HyperdhtAddress {
    fn encode(&self, out: &mut Vec<u8>) {
        out.put_bytes(&self.key);
        out.put_uint(u64::from(self.nodes.is_some()));
        if let Some(n) = &self.nodes {
            out.put_ipv4_addr_array(n);
        }
    }
}

impl Decode for HyperdhtAddress {
    /// A bare 32-byte key (no flags byte) decodes with no nodes, as in JS.
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let key = r.fixed()?;
        let flags = if r.is_empty() { 0 } else { r.uint()? };
        let nodes = if flags & 1 != 0 {
            Some(r.ipv4_addr_array()?)
        } else {
            None
        };
        Ok(Self { key, nodes })
    }
}
