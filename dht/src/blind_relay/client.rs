//! A peer's side of blind-relay pairing (JS `blind-relay/index.js` `Client` and
//! `BlindRelayRequest`).

use std::collections::BTreeMap;

use super::{Pair, RelayError, Unpair};

/// JS keeps no bound on pending requests; a peer pairs one connection at a time per token, so
/// this is generous.
pub const MAX_REQUESTS: usize = 256;

/// A pairing the relay confirmed (JS emits `pair` and the request yields the id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paired {
    /// Our half.
    pub is_initiator: bool,
    /// The token.
    pub token: [u8; 32],
    /// The relay's UDX stream id for us: connect our stream to it at the relay's address.
    pub remote_id: u64,
}

#[derive(Debug)]
struct Request {
    is_initiator: bool,
}

/// The pair requests of one blind-relay channel (sans-IO): [`RelayClient::pair`] returns the
/// message to send, [`RelayClient::on_pair`] reads the relay's answer.
#[derive(Debug, Default)]
pub struct RelayClient {
    requests: BTreeMap<[u8; 32], Request>,
    destroyed: bool,
}

impl RelayClient {
    /// A client with no requests.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the relay to pair our stream `stream_id` under `token` (JS `pair`, whose request
    /// sends this message when it opens).
    pub fn pair(
        &mut self,
        is_initiator: bool,
        token: [u8; 32],
        stream_id: u64,
    ) -> Result<Pair, RelayError> {
        if self.destroyed {
            return Err(RelayError::ChannelDestroyed);
        }
        if self.requests.contains_key(&token) {
            return Err(RelayError::AlreadyPairing);
        }
        if self.requests.len() >= MAX_REQUESTS {
            return Err(RelayError::TooManyPairings { max: MAX_REQUESTS });
        }
        self.requests.insert(token, Request { is_initiator });
        Ok(Pair {
            is_initiator,
            token,
            id: stream_id,
            seq: 0,
        })
    }

    /// Cancels `token` (JS `unpair`: drops the request if any and tells the relay either way).
    pub fn unpair(&mut self, token: [u8; 32]) -> Result<Unpair, RelayError> {
        if self.destroyed {
            return Err(RelayError::ChannelDestroyed);
        }
        self.requests.remove(&token);
        Ok(Unpair { token })
    }

    /// The relay's answer (JS `_onpair`): completes the request with the same token and half;
    /// anything else is ignored.
    pub fn on_pair(&mut self, msg: &Pair) -> Option<Paired> {
        match self.requests.get(&msg.token) {
            Some(r) if r.is_initiator == msg.is_initiator => {}
            _ => return None,
        }
        self.requests.remove(&msg.token);
        Some(Paired {
            is_initiator: msg.is_initiator,
            token: msg.token,
            remote_id: msg.id,
        })
    }

    /// Whether no request is pending (JS ends the channel then, once asked to end).
    pub fn is_idle(&self) -> bool {
        self.requests.is_empty()
    }

    /// The channel closed or was destroyed (JS `_onclose`/`destroy`): every pending request
    /// fails; their tokens are returned. Later calls fail with `ChannelDestroyed`.
    pub fn destroy(&mut self) -> Vec<[u8; 32]> {
        self.destroyed = true;
        std::mem::take(&mut self.requests).into_keys().collect()
    }
}
