//! blind-relay: two peers that cannot reach each other ask a relay node to forward UDX packets
//! between them, sans-IO.
//!
//! JS: blind-relay 1.6.1 (`index.js`: `Server`, `BlindRelaySession`, `Client`, the messages at
//! its end). Both peers open a protomux channel `"blind-relay"` ([`PROTOCOL`]) over a hyperdht
//! connection to the relay and send [`Pair`] (message type 0) with a shared 32-byte token and
//! their own UDX stream id; once both halves of a token arrived the relay creates one UDX stream
//! per side, relays them to each other, and answers each side with a [`Pair`] carrying the
//! relay's stream id for it. [`Unpair`] (type 1) cancels. hyperdht `lib/connect.js` and
//! `lib/server.js` (`relayConnection`) pair with the token they exchanged in
//! [`crate::hyperdht::messages::RelayThroughInfo`].
//!
//! - [`Pair`], [`Unpair`]: the messages (`m.pair`, `m.unpair`).
//! - [`client::RelayClient`]: a peer's pair requests (JS `Client`).
//! - [`server::RelayServer`]: the relay's pairing table across sessions (JS `Server` and
//!   `BlindRelaySession`); creating and relaying the UDX streams is the caller's I/O.

pub mod client;
pub mod server;

use crate::codec::{Decode, DecodeError, Encode, Reader, Writer};

#[cfg(feature = "serde")]
use serde::{Deserialize, Serialize};

/// The protomux protocol name of the channel.
pub const PROTOCOL: &str = "blind-relay";
/// Message type of [`Pair`] (its index in the channel's messages).
pub const MESSAGE_PAIR: u64 = 0;
/// Message type of [`Unpair`].
pub const MESSAGE_UNPAIR: u64 = 1;

/// `compact-encoding-bitfield(7)` as JS reads it: a byte up to 0xfc is the bits themselves;
/// 0xfd, 0xfe and 0xff announce 2, 4 or 8 bytes whose first byte holds the bits.
fn read_flags(r: &mut Reader<'_>) -> Result<u8, DecodeError> {
    let width = match r.u8()? {
        b @ 0..=0xfc => return Ok(b),
        0xfd => 2,
        0xfe => 4,
        0xff => 8,
    };
    let bytes = r.bytes(width)?;
    Ok(bytes.first().copied().unwrap_or(0))
}

/// `pair`: flags (bit 0: is initiator), token, the sender's UDX stream id, its sequence start.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(Serialize, Deserialize),
    serde(deny_unknown_fields)
)]
pub struct Pair {
    /// Which half of the pairing: the connecting peer's (`true`) or the server's.
    pub is_initiator: bool,
    /// The pairing token both peers share.
    #[cfg_attr(feature = "serde", serde(with = "crate::serde_hex"))]
    pub token: [u8; 32],
    /// The sender's UDX stream id (from the relay: its stream for the receiver).
    pub id: u64,
    /// Sequence start (JS writes 0).
    pub seq: u64,
}

impl Encode for Pair {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(u8::from(self.is_initiator));
        out.put_bytes(&self.token);
        out.put_uint(self.id);
        out.put_uint(self.seq);
    }
}

impl Decode for Pair {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let flags = read_flags(r)?;
        Ok(Self {
            is_initiator: flags & 1 != 0,
            token: r.fixed()?,
            id: r.uint()?,
            seq: r.uint()?,
        })
    }
}

/// `unpair`: flags (none defined, written as 0) and the token.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(Serialize, Deserialize),
    serde(deny_unknown_fields)
)]
pub struct Unpair {
    /// The pairing to cancel.
    #[cfg_attr(feature = "serde", serde(with = "crate::serde_hex"))]
    pub token: [u8; 32],
}

impl Encode for Unpair {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(0);
        out.put_bytes(&self.token);
    }
}

impl Decode for Unpair {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        read_flags(r)?;
        Ok(Self { token: r.fixed()? })
    }
}

/// A blind-relay channel message by its protomux type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayMessage {
    /// Type 0.
    Pair(Pair),
    /// Type 1.
    Unpair(Unpair),
}

impl RelayMessage {
    /// Decodes the payload of a channel message of type `kind`; `Ok(None)` for types
    /// blind-relay does not define (JS ignores them).
    pub fn decode(kind: u64, payload: &[u8]) -> Result<Option<Self>, DecodeError> {
        Ok(match kind {
            MESSAGE_PAIR => Some(Self::Pair(Pair::from_bytes(payload)?)),
            MESSAGE_UNPAIR => Some(Self::Unpair(Unpair::from_bytes(payload)?)),
            _ => None,
        })
    }

    /// The protomux type and payload.
    pub fn encode(&self) -> (u64, Vec<u8>) {
        match self {
            Self::Pair(p) => (MESSAGE_PAIR, p.to_bytes()),
            Self::Unpair(u) => (MESSAGE_UNPAIR, u.to_bytes()),
        }
    }
}

/// Why a pairing call was refused (the JS error codes where JS has one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    /// JS `ALREADY_PAIRING`: a request with this token is pending.
    #[error("ALREADY_PAIRING: a pairing with this token is already pending")]
    AlreadyPairing,
    /// JS `CHANNEL_DESTROYED`: the client was destroyed.
    #[error("CHANNEL_DESTROYED: the relay channel was destroyed")]
    ChannelDestroyed,
    /// More pending pairings than the bound allows (JS: unbounded).
    #[error("too many pending blind-relay pairings (limit {max})")]
    TooManyPairings {
        /// The limit.
        max: usize,
    },
    /// An unknown session id was given to the server.
    #[error("no such blind-relay session")]
    UnknownSession,
}

#[cfg(test)]
mod tests;
