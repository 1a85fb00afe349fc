//! hyperdht message encodings (the `value` of user-command requests and replies, and the
//! plaintext inside Noise and holepunch payloads).
//!
//! JS: hyperdht@6.34.0 `lib/messages.js` (each encoding's `preencode`/`encode`/`decode` gives
//! the field order and flags byte). Fields keep the JS names
//! (snake_case). Numeric enums (`mode`, `firewall`, `error`) stay raw numbers here so that
//! unknown values survive a decode/encode round trip; see [`super::Mode`], [`super::Firewall`] and
//! [`super::ErrorCode`] for the named values.

use std::net::{SocketAddrV4, SocketAddrV6};

use crate::codec::{Decode, DecodeError, Encode, Reader, Writer};

#[cfg(feature = "serde")]
use serde::{Deserialize, Serialize};

macro_rules! wire_struct {
    ($(#[$m:meta])* pub struct $name:ident { $($body:tt)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        #[cfg_attr(feature = "serde", derive(Serialize, Deserialize), serde(deny_unknown_fields))]
        pub struct $name { $($body)* }
    };
}

wire_struct! {
    /// `peer`: a peer record, as stored by ANNOUNCE and returned by LOOKUP / FIND_PEER.
    pub struct Peer {
        /// The peer's Ed25519 public key.
        #[cfg_attr(feature = "serde", serde(with = "crate::serde_hex"))]
        pub public_key: [u8; 32],
        /// Nodes that relay handshakes to the peer (JS keeps at most 3).
        pub relay_addresses: Vec<SocketAddrV4>,
    }
}

/// Smallest encoding of a [`Peer`]: key + empty array.
const PEER_MIN: usize = 33;

impl Encode for Peer {
    fn encode(&self, out: &mut Vec<u8>) {
        out.put_bytes(&self.public_key);
        out.put_ipv4_addr_array(&self.relay_addresses);
    }
}

impl Decode for Peer {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            public_key: r.fixed()?,
            relay_addresses: r.ipv4_addr_array()?,
        })
    }
}

wire_struct! {
    /// `lookupRawReply`: the value of a LOOKUP reply.
    pub struct LookupRawReply {
        /// Peer records announced under the topic.
        pub peers: Vec<Peer>,
        /// The topic's bump counter (a missing trailing value decodes as 0).
        pub bump: u64,
    }
}

impl Encode for LookupRawReply {
    fn encode(&self, out: &mut Vec<u8>) {
        out.put_uint(self.peers.len() as u64);
        for p in &self.peers {
            p.encode(out);
        }
        out.put_uint(self.bump);
    }
}

impl Decode for LookupRawReply {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let peers = r.array(PEER_MIN, Peer::decode)?;
        let bump = if r.is_empty() { 0 } else { r.uint()? };
        Ok(Self { peers, bump })
    }
}

wire_struct! {
    /// `announce`: the value of ANNOUNCE and UNANNOUNCE requests.
    pub struct Announce {
        /// The record to store (flag bit 0).
        pub peer: Option<Peer>,
        /// A refresh token (flag bit 1).
        #[cfg_attr(feature = "serde", serde(with = "crate::serde_hex", default))]
        pub refresh: Option<[u8; 32]>,
        /// The announce signature (flag bit 2).
        #[cfg_attr(feature = "serde", serde(with = "crate::serde_hex", default))]
        pub signature: Option<[u8; 64]>,
        /// Bump counter; written (flag bit 3) only when non-zero.
        pub bump: u64,
    }
}

impl Encode for Announce {
    fn encode(&self, out: &mut Vec<u8>) {
        let flags = u64::from(self.peer.is_some())
            | u64::from(self.refresh.is_some()) << 1
            | u64::from(self.signature.is_some()) << 2
            | u64::from(self.bump != 0) << 3;
        out.put_uint(flags);
        if let Some(p) = &self.peer {
            p.encode(out);
        }
        if let Some(r) = &self.refresh {
            out.put_bytes(r);
        }
        if let Some(s) = &self.signature {
            out.put_bytes(s);
        }
        if self.bump != 0 {
            out.put_uint(self.bump);
        }
    }
}

impl Decode for Announce {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let flags = r.uint()?;
        Ok(Self {
            peer: if flags & 1 != 0 {
                Some(Peer::decode(r)?)
            } else {
                None
            },
            refresh: if flags & 2 != 0 {
                Some(r.fixed()?)
            } else {
                None
            },
            signature: if flags & 4 != 0 {
                Some(r.fixed()?)
            } else {
                None
            },
            bump: if flags & 8 != 0 { r.uint()? } else { 0 },
        })
    }
}

wire_struct! {
    /// `handshake`: the value of PEER_HANDSHAKE requests and replies.
    pub struct Handshake {
        /// [`super::Mode`] as a number.
        pub mode: u64,
        /// The Noise message.
        #[cfg_attr(feature = "serde", serde(with = "crate::serde_hex"))]
        pub noise: Vec<u8>,
        /// The client (towards the server) or server (towards the client) address (flag bit 0).
        pub peer_address: Option<SocketAddrV4>,
        /// The relay the server should answer through (flag bit 1).
        pub relay_address: Option<SocketAddrV4>,
    }
}

impl Encode for Handshake {
    fn encode(&self, out: &mut Vec<u8>) {
        let flags =
            u64::from(self.peer_address.is_some()) | u64::from(self.relay_address.is_some()) << 1;
        out.put_uint(flags);
        out.put_uint(self.mode);
        out.put_buffer(&self.noise);
        if let Some(a) = &self.peer_address {
            out.put_ipv4_addr(a);
        }
        if let Some(a) = &self.relay_address {
            out.put_ipv4_addr(a);
        }
    }
}

impl Decode for Handshake {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let flags = r.uint()?;
        Ok(Self {
            mode: r.uint()?,
            noise: r.buffer()?.to_vec(),
            peer_address: if flags & 1 != 0 {
                Some(r.ipv4_addr()?)
            } else {
                None
            },
            relay_address: if flags & 2 != 0 {
                Some(r.ipv4_addr()?)
            } else {
                None
            },
        })
    }
}

wire_struct! {
    /// `holepunch`: the value of PEER_HOLEPUNCH requests and replies.
    pub struct Holepunch {
        /// [`super::Mode`] as a number.
        pub mode: u64,
        /// The server's holepunch slot id.
        pub id: u64,
        /// The encrypted [`HolepunchPayload`] (nonce || secretbox).
        #[cfg_attr(feature = "serde", serde(with = "crate::serde_hex"))]
        pub payload: Vec<u8>,
        /// The other peer's address as the relay saw it (flag bit 0).
        pub peer_address: Option<SocketAddrV4>,
    }
}

impl Encode for Holepunch {
    fn encode(&self, out: &mut Vec<u8>) {
        out.put_uint(u64::from(self.peer_address.is_some()));
        out.put_uint(self.mode);
        out.put_uint(self.id);
        out.put_buffer(&self.payload);
        if let Some(a) = &self.peer_address {
            out.put_ipv4_addr(a);
        }
    }
}

impl Decode for Holepunch {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let flags = r.uint()?;
        Ok(Self {
            mode: r.uint()?,
            id: r.uint()?,
            payload: r.buffer()?.to_vec(),
            peer_address: if flags & 1 != 0 {
                Some(r.ipv4_addr()?)
            } else {
                None
            },
        })
    }
}

wire_struct! {
    /// `relayInfo`: one holepunch relay as the server sees it.
    pub struct RelayInfo {
        /// The relay node.
        pub relay_address: SocketAddrV4,
        /// The server's address as that relay sees it.
        pub peer_address: SocketAddrV4,
    }
}

wire_struct! {
    /// `holepunchInfo` inside a [`NoisePayload`].
    pub struct HolepunchInfo {
        /// The server's holepunch slot id.
        pub id: u64,
        /// Relays the client may send PEER_HOLEPUNCH through.
        pub relays: Vec<RelayInfo>,
    }
}

wire_struct! {
    /// `udxInfo` inside a [`NoisePayload`].
    pub struct UdxInfo {
        /// UDX version (JS writes 1).
        pub version: u64,
        /// Feature bit 0: the sender can reuse its socket.
        pub reusable_socket: bool,
        /// The sender's local UDX stream id.
        pub id: u64,
        /// The sender's initial sequence number (JS sends 0).
        pub seq: u64,
    }
}

wire_struct! {
    /// `secretStreamInfo` inside a [`NoisePayload`].
    pub struct SecretStreamInfo {
        /// secret-stream version (JS writes 1).
        pub version: u64,
    }
}

wire_struct! {
    /// `relayThroughInfo` inside a [`NoisePayload`] (blind-relay pairing).
    pub struct RelayThroughInfo {
        /// Version (JS writes 1). The flags that follow it on the wire are read and dropped, as
        /// in JS, and written as 0.
        pub version: u64,
        /// The relay server's public key.
        #[cfg_attr(feature = "serde", serde(with = "crate::serde_hex"))]
        pub public_key: [u8; 32],
        /// The pairing token.
        #[cfg_attr(feature = "serde", serde(with = "crate::serde_hex"))]
        pub token: [u8; 32],
    }
}

wire_struct! {
    /// `noisePayload`: the plaintext carried inside both Noise IK handshake messages.
    pub struct NoisePayload {
        /// Payload version; only 1 is understood. For any other version the decoder stops
        /// after this field and every other field is empty, as in JS (VERSION_MISMATCH).
        pub version: u64,
        /// [`super::ErrorCode`] as a number.
        pub error: u64,
        /// [`super::Firewall`] as a number.
        pub firewall: u64,
        /// Holepunch slot and relays (flag bit 0).
        pub holepunch: Option<HolepunchInfo>,
        /// IPv4 addresses (flag bit 1, set only when non-empty).
        pub addresses4: Vec<SocketAddrV4>,
        /// IPv6 addresses (flag bit 2, set only when non-empty; JS never sends them).
        pub addresses6: Vec<SocketAddrV6>,
        /// UDX stream info (flag bit 3).
        pub udx: Option<UdxInfo>,
        /// secret-stream info (flag bit 4).
        pub secret_stream: Option<SecretStreamInfo>,
        /// Blind-relay pairing (flag bit 5).
        pub relay_through: Option<RelayThroughInfo>,
        /// Relay addresses (flag bit 6, set whenever present, even if empty).
        pub relay_addresses: Option<Vec<SocketAddrV4>>,
    }
}

impl Default for NoisePayload {
    /// Version 1, no error, firewall UNKNOWN, every optional block absent.
    fn default() -> Self {
        Self::unknown_version(1)
    }
}

impl NoisePayload {
    /// The payload JS returns for a version it does not understand.
    fn unknown_version(version: u64) -> Self {
        Self {
            version,
            error: 0,
            firewall: 0,
            holepunch: None,
            addresses4: Vec::new(),
            addresses6: Vec::new(),
            udx: None,
            secret_stream: None,
            relay_through: None,
            relay_addresses: None,
        }
    }
}

impl Encode for NoisePayload {
    fn encode(&self, out: &mut Vec<u8>) {
        out.put_uint(self.version);
        if self.version != 1 {
            // Nothing after the version can be read back for other versions.
            return;
        }
        let flags = u64::from(self.holepunch.is_some())
            | u64::from(!self.addresses4.is_empty()) << 1
            | u64::from(!self.addresses6.is_empty()) << 2
            | u64::from(self.udx.is_some()) << 3
            | u64::from(self.secret_stream.is_some()) << 4
            | u64::from(self.relay_through.is_some()) << 5
            | u64::from(self.relay_addresses.is_some()) << 6;
        out.put_uint(flags);
        out.put_uint(self.error);
        out.put_uint(self.firewall);
        if let Some(h) = &self.holepunch {
            out.put_uint(h.id);
            out.put_uint(h.relays.len() as u64);
            for r in &h.relays {
                out.put_ipv4_addr(&r.relay_address);
                out.put_ipv4_addr(&r.peer_address);
            }
        }
        if !self.addresses4.is_empty() {
            out.put_ipv4_addr_array(&self.addresses4);
        }
        if !self.addresses6.is_empty() {
            out.put_ipv6_addr_array(&self.addresses6);
        }
        if let Some(u) = &self.udx {
            out.put_uint(u.version);
            out.put_uint(u64::from(u.reusable_socket));
            out.put_uint(u.id);
            out.put_uint(u.seq);
        }
        if let Some(s) = &self.secret_stream {
            out.put_uint(s.version);
        }
        if let Some(t) = &self.relay_through {
            out.put_uint(t.version);
            out.put_uint(0);
            out.put_bytes(&t.public_key);
            out.put_bytes(&t.token);
        }
        if let Some(a) = &self.relay_addresses {
            out.put_ipv4_addr_array(a);
        }
    }
}

impl Decode for NoisePayload {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let version = r.uint()?;
        if version != 1 {
            return Ok(Self::unknown_version(version));
        }
        let flags = r.uint()?;
        let error = r.uint()?;
        let firewall = r.uint()?;
        let holepunch = if flags & 1 != 0 {
            let id = r.uint()?;
            let relays = r.array(12, |r| {
                Ok(RelayInfo {
                    relay_address: r.ipv4_addr()?,
                    peer_address: r.ipv4_addr()?,
                })
            })?;
            Some(HolepunchInfo { id, relays })
        } else {
            None
        };
        let addresses4 = if flags & 2 != 0 {
            r.ipv4_addr_array()?
        } else {
            Vec::new()
        };
        let addresses6 = if flags & 4 != 0 {
            r.ipv6_addr_array()?
        } else {
            Vec::new()
        };
        let udx = if flags & 8 != 0 {
            let version = r.uint()?;
            let features = r.uint()?;
            Some(UdxInfo {
                version,
                reusable_socket: features & 1 != 0,
                id: r.uint()?,
                seq: r.uint()?,
            })
        } else {
            None
        };
        let secret_stream = if flags & 16 != 0 {
            Some(SecretStreamInfo { version: r.uint()? })
        } else {
            None
        };
        let relay_through = if flags & 32 != 0 {
            let version = r.uint()?;
            let _flags = r.uint()?;
            Some(RelayThroughInfo {
                version,
                public_key: r.fixed()?,
                token: r.fixed()?,
            })
        } else {
            None
        };
        let relay_addresses = if flags & 64 != 0 {
            Some(r.ipv4_addr_array()?)
        } else {
            None
        };
        Ok(Self {
            version,
            error,
            firewall,
            holepunch,
            addresses4,
            addresses6,
            udx,
            secret_stream,
            relay_through,
            relay_addresses,
        })
    }
}

wire_struct! {
    /// `holepunchPayload`: the plaintext inside [`Holepunch::payload`].
    pub struct HolepunchPayload {
        /// [`super::ErrorCode`] as a number.
        pub error: u64,
        /// [`super::Firewall`] as a number.
        pub firewall: u64,
        /// Punch round.
        pub round: u64,
        /// Flag bit 0.
        pub connected: bool,
        /// Flag bit 1.
        pub punching: bool,
        /// The sender's NAT addresses (flag bit 2).
        pub addresses: Option<Vec<SocketAddrV4>>,
        /// The receiver's address as the sender sees it (flag bit 3).
        pub remote_address: Option<SocketAddrV4>,
        /// The sender's address-verification token (flag bit 4).
        #[cfg_attr(feature = "serde", serde(with = "crate::serde_hex", default))]
        pub token: Option<[u8; 32]>,
        /// The receiver's token echoed back (flag bit 5).
        #[cfg_attr(feature = "serde", serde(with = "crate::serde_hex", default))]
        pub remote_token: Option<[u8; 32]>,
    }
}

impl Encode for HolepunchPayload {
    fn encode(&self, out: &mut Vec<u8>) {
        let flags = u64::from(self.connected)
            | u64::from(self.punching) << 1
            | u64::from(self.addresses.is_some()) << 2
            | u64::from(self.remote_address.is_some()) << 3
            | u64::from(self.token.is_some()) << 4
            | u64::from(self.remote_token.is_some()) << 5;
        out.put_uint(flags);
        out.put_uint(self.error);
        out.put_uint(self.firewall);
        out.put_uint(self.round);
        if let Some(a) = &self.addresses {
            out.put_ipv4_addr_array(a);
        }
        if let Some(a) = &self.remote_address {
            out.put_ipv4_addr(a);
        }
        if let Some(t) = &self.token {
            out.put_bytes(t);
        }
        if let Some(t) = &self.remote_token {
            out.put_bytes(t);
        }
    }
}

impl Decode for HolepunchPayload {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let flags = r.uint()?;
        let error = r.uint()?;
        let firewall = r.uint()?;
        let round = r.uint()?;
        Ok(Self {
            error,
            firewall,
            round,
            connected: flags & 1 != 0,
            punching: flags & 2 != 0,
            addresses: if flags & 4 != 0 {
                Some(r.ipv4_addr_array()?)
            } else {
                None
            },
            remote_address: if flags & 8 != 0 {
                Some(r.ipv4_addr()?)
            } else {
                None
            },
            token: if flags & 16 != 0 {
                Some(r.fixed()?)
            } else {
                None
            },
            remote_token: if flags & 32 != 0 {
                Some(r.fixed()?)
            } else {
                None
            },
        })
    }
}

wire_struct! {
    /// `mutableSignable`: what a mutable-record signature covers (hashed).
    pub struct MutableSignable {
        /// Sequence number.
        pub seq: u64,
        /// Record value.
        #[cfg_attr(feature = "serde", serde(with = "crate::serde_hex"))]
        pub value: Vec<u8>,
    }
}

impl Encode for MutableSignable {
    fn encode(&self, out: &mut Vec<u8>) {
        out.put_uint(self.seq);
        out.put_buffer(&self.value);
    }
}

impl Decode for MutableSignable {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            seq: r.uint()?,
            value: r.buffer()?.to_vec(),
        })
    }
}

wire_struct! {
    /// `mutablePutRequest`: the value of MUTABLE_PUT.
    pub struct MutablePutRequest {
        /// The record owner's key (target = H(public_key)).
        #[cfg_attr(feature = "serde", serde(with = "crate::serde_hex"))]
        pub public_key: [u8; 32],
        /// Sequence number.
        pub seq: u64,
        /// Record value.
        #[cfg_attr(feature = "serde", serde(with = "crate::serde_hex"))]
        pub value: Vec<u8>,
        /// Signature over [`crate::crypto::mutable_signable`].
        #[cfg_attr(feature = "serde", serde(with = "crate::serde_hex"))]
        pub signature: [u8; 64],
    }
}

impl Encode for MutablePutRequest {
    fn encode(&self, out: &mut Vec<u8>) {
        out.put_bytes(&self.public_key);
        out.put_uint(self.seq);
        out.put_buffer(&self.value);
        out.put_bytes(&self.signature);
    }
}

impl Decode for MutablePutRequest {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            public_key: r.fixed()?,
            seq: r.uint()?,
            value: r.buffer()?.to_vec(),
            signature: r.fixed()?,
        })
    }
}

wire_struct! {
    /// `mutableGetResponse`: the value of a MUTABLE_GET reply.
    pub struct MutableGetResponse {
        /// Sequence number.
        pub seq: u64,
        /// Record value.
        #[cfg_attr(feature = "serde", serde(with = "crate::serde_hex"))]
        pub value: Vec<u8>,
        /// Signature over [`crate::crypto::mutable_signable`].
        #[cfg_attr(feature = "serde", serde(with = "crate::serde_hex"))]
        pub signature: [u8; 64],
    }
}

impl Encode for MutableGetResponse {
    fn encode(&self, out: &mut Vec<u8>) {
        out.put_uint(self.seq);
        out.put_buffer(&self.value);
        out.put_bytes(&self.signature);
    }
}

impl Decode for MutableGetResponse {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            seq: r.uint()?,
            value: r.buffer()?.to_vec(),
            signature: r.fixed()?,
        })
    }
}

wire_struct! {
    /// `pluginRequest`: the value of PLUGIN requests.
    pub struct PluginRequest {
        /// Plugin name.
        pub plugin: String,
        /// Plugin protocol version.
        pub version: u64,
        /// Plugin-defined command.
        pub command: u64,
        /// Argument (flag bit 0).
        #[cfg_attr(feature = "serde", serde(with = "crate::serde_hex", default))]
        pub value: Option<Vec<u8>>,
    }
}

impl Encode for PluginRequest {
    fn encode(&self, out: &mut Vec<u8>) {
        out.put_string(&self.plugin);
        out.put_uint(self.version);
        out.put_uint(self.command);
        out.put_uint(u64::from(self.value.is_some()));
        if let Some(v) = &self.value {
            out.put_buffer(v);
        }
    }
}

impl Decode for PluginRequest {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let plugin = r.string()?.to_owned();
        let version = r.uint()?;
        let command = r.uint()?;
        let flags = r.uint()?;
        Ok(Self {
            plugin,
            version,
            command,
            value: if flags & 1 != 0 {
                Some(r.buffer()?.to_vec())
            } else {
                None
            },
        })
    }
}
