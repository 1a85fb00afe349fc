//! The Noise IK handshake as hyperdht runs it inside PEER_HANDSHAKE: prologue
//! `NS.PEER_HANDSHAKE`, a [`NoisePayload`] in each of the two messages, and what the connection
//! needs once both are through.
//!
//! JS: hyperdht 6.34.0 `lib/noise-wrap.js` (class `NoiseWrap`: `send`, `recv`, `final`) on
//! `noise-handshake` with `noise-curve-ed`, which the `noise` crate's [`noise::Handshake`]
//! reproduces. The client is the initiator and knows the server's public key; the server is the
//! responder and learns the client's key from message 1.
//!
//! Sans-IO: the ephemeral key pair comes in from the caller (draw it with
//! [`noise::KeyPair::generate`]; fixed ones reproduce JS vectors). Nothing here sends or waits.
//!
//! ```
//! use dht::hyperdht::messages::NoisePayload;
//! use dht::hyperdht::noise_wrap::NoiseWrap;
//! use noise::KeyPair;
//!
//! let server = KeyPair::from_seed([2; 32]);
//! let server_pk = *server.public_key();
//! let mut client = NoiseWrap::initiator(KeyPair::from_seed([1; 32]), KeyPair::from_seed([3; 32]), server_pk).unwrap();
//! let mut srv = NoiseWrap::responder(server, KeyPair::from_seed([4; 32])).unwrap();
//! let hello = NoisePayload { firewall: 1, ..NoisePayload::default() };
//! let msg1 = client.send(&hello).unwrap();
//! assert_eq!(srv.recv(&msg1).unwrap(), hello);
//! let msg2 = srv.send(&NoisePayload::default()).unwrap();
//! client.recv(&msg2).unwrap();
//! let (c, s) = (client.finish().unwrap(), srv.finish().unwrap());
//! assert_eq!(c.holepunch_secret, s.holepunch_secret);
//! assert_eq!(c.handshake.tx, s.handshake.rx);
//! ```

use noise::{Handshake, HandshakeError, HandshakeResult, KeyPair, Pattern, Role, stream_id};
use zeroize::Zeroize;

use super::messages::NoisePayload;
use crate::codec::{Decode, DecodeError, Encode};
use crate::crypto::{NS, keyed_hash};

/// The Noise form of a node's key pair (the same Ed25519 seed).
pub fn noise_key_pair(key_pair: &crate::crypto::KeyPair) -> KeyPair {
    let mut seed = key_pair.seed();
    let kp = KeyPair::from_seed(seed);
    seed.zeroize();
    kp
}

/// Why a [`NoiseWrap`] step failed. After an error the handshake is dead (JS throws and drops
/// the attempt).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoiseWrapError {
    /// The Noise layer refused the step (wrong turn, bad key, failed decryption, ...).
    #[error("noise handshake: {0}")]
    Handshake(#[from] HandshakeError),
    /// The decrypted payload is not a `noisePayload`.
    #[error("noise payload does not decode: {0}")]
    Payload(#[from] DecodeError),
    /// `finish` before both messages went through (JS `HANDSHAKE_UNFINISHED`).
    #[error("the handshake is not finished")]
    Unfinished,
    /// An earlier step failed; the handshake takes no more messages.
    #[error("the handshake failed at an earlier step")]
    Failed,
}

/// What a finished handshake hands to the connection (JS `final()`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoiseWrapResult {
    /// Split keys, handshake hash, both public keys and the role, as the secret stream takes them.
    pub handshake: HandshakeResult,
    /// The key of the holepunch payloads: keyed BLAKE2b-256 of `NS.PEER_HOLEPUNCH` under the
    /// 64-byte handshake hash ([`super::secure_payload::SecurePayload`]).
    pub holepunch_secret: [u8; 32],
    /// The secret-stream id the peer will announce (`NoiseSecretStream.id(hash, !isInitiator)`).
    /// JS's `final()` also returns a `streamId` field, which is never set (undefined).
    pub remote_id: [u8; 32],
}

impl Drop for NoiseWrapResult {
    fn drop(&mut self) {
        self.holepunch_secret.zeroize();
    }
}

/// One side of hyperdht's IK handshake (JS `new NoiseWrap(keyPair, remotePublicKey)`).
#[derive(Debug)]
pub struct NoiseWrap {
    handshake: Handshake,
    is_initiator: bool,
    failed: bool,
}

impl NoiseWrap {
    /// The client side, connecting to the server key `remote_public_key`.
    pub fn initiator(
        key_pair: KeyPair,
        ephemeral: KeyPair,
        remote_public_key: [u8; 32],
    ) -> Result<Self, NoiseWrapError> {
        Self::new(key_pair, ephemeral, Some(remote_public_key))
    }

    /// The server side.
    pub fn responder(key_pair: KeyPair, ephemeral: KeyPair) -> Result<Self, NoiseWrapError> {
        Self::new(key_pair, ephemeral, None)
    }

    fn new(
        key_pair: KeyPair,
        ephemeral: KeyPair,
        remote_public_key: Option<[u8; 32]>,
    ) -> Result<Self, NoiseWrapError> {
        let is_initiator = remote_public_key.is_some();
        let handshake = Handshake::new(
            Pattern::IK,
            Role::from(is_initiator),
            key_pair,
            ephemeral,
            &NS.peer_handshake,
            remote_public_key,
        )?;
        Ok(Self {
            handshake,
            is_initiator,
            failed: false,
        })
    }

    /// Whether this is the client side.
    pub fn is_initiator(&self) -> bool {
        self.is_initiator
    }

    /// The next handshake message carrying `payload` (JS `send`).
    pub fn send(&mut self, payload: &NoisePayload) -> Result<Vec<u8>, NoiseWrapError> {
        if self.failed {
            return Err(NoiseWrapError::Failed);
        }
        let r = self.handshake.write_message(&payload.to_bytes());
        self.failed = r.is_err();
        Ok(r?)
    }

    /// Reads the peer's message and decodes its payload (JS `recv`). A payload of another
    /// version decodes with only its version set, for the caller to answer VERSION_MISMATCH.
    /// Any failure, an undecodable payload included, ends the handshake (JS throws and the
    /// caller drops the attempt).
    pub fn recv(&mut self, message: &[u8]) -> Result<NoisePayload, NoiseWrapError> {
        if self.failed {
            return Err(NoiseWrapError::Failed);
        }
        let r = self
            .handshake
            .read_message(message)
            .map_err(NoiseWrapError::from)
            .and_then(|plain| Ok(NoisePayload::from_bytes(&plain)?));
        self.failed = r.is_err();
        r
    }

    /// The peer's static key: the server's from the start on the client, the client's after
    /// message 1 on the server (what the server's firewall callback is given).
    pub fn remote_public_key(&self) -> Option<[u8; 32]> {
        self.handshake.remote_public_key()
    }

    /// Whether both messages went through.
    pub fn is_finished(&self) -> bool {
        self.handshake.is_finished()
    }

    /// The keys and ids of the finished handshake (JS `final`).
    pub fn finish(&self) -> Result<NoiseWrapResult, NoiseWrapError> {
        if self.failed {
            return Err(NoiseWrapError::Failed);
        }
        let result = self.handshake.result().ok_or(NoiseWrapError::Unfinished)?;
        Ok(NoiseWrapResult {
            holepunch_secret: keyed_hash(&result.hash, &NS.peer_holepunch),
            remote_id: stream_id(&result.hash, !result.is_initiator),
            handshake: result.clone(),
        })
    }
}

#[cfg(test)]
#[path = "noise_wrap_tests.rs"]
mod tests;
