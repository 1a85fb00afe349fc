//! Encryption of holepunch payloads and the address tokens inside them.
//!
//! JS: hyperdht 6.34.0 `lib/secure-payload.js` (class `HolepunchPayload`). Both peers hold the
//! same 32-byte key, the `holepunch_secret` of the Noise handshake
//! ([`super::noise_wrap::NoiseWrapResult::holepunch_secret`]). A sealed payload is
//! `nonce (24 random bytes) || Poly1305 tag (16) || XSalsa20 ciphertext` of a
//! [`HolepunchPayload`], i.e. libsodium's `crypto_secretbox_easy` behind its nonce. Each side
//! also draws a random 32-byte local secret; `token(host)` is the keyed BLAKE2b-256 of the
//! host's text form under it, which the peer echoes back to prove it received our message at
//! that address.
//!
//! Sans-IO: randomness (the local secret, each nonce) comes in from the caller's RNG.

use std::net::Ipv4Addr;

use crypto_secretbox::XSalsa20Poly1305;
use crypto_secretbox::aead::{AeadInPlace, KeyInit};
use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroize;

use super::messages::HolepunchPayload;
use crate::codec::{Decode, DecodeError, Encode};
use crate::crypto::keyed_hash;

/// Nonce length of XSalsa20 (`crypto_secretbox_NONCEBYTES`).
pub const NONCE_LEN: usize = 24;
/// Poly1305 tag length (`crypto_secretbox_MACBYTES`).
pub const TAG_LEN: usize = 16;

/// Why a sealed holepunch payload was refused. JS's `decrypt` returns `null` in every case.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecurePayloadError {
    /// Not longer than nonce + tag: JS refuses an empty plaintext too.
    #[error("sealed holepunch payload of {len} bytes is too short (more than 40 needed)")]
    TooShort {
        /// The length received.
        len: usize,
    },
    /// The tag did not verify under the shared key.
    #[error("holepunch payload failed authentication")]
    Authentication,
    /// The plaintext is not a holepunch payload.
    #[error("holepunch payload plaintext does not decode: {0}")]
    Payload(#[from] DecodeError),
}

/// One side's holepunch payload sealer (JS `new HolepunchPayload(holepunchSecret)`).
///
/// Not `Clone`; the keys are wiped on drop.
pub struct SecurePayload {
    cipher: XSalsa20Poly1305,
    local_secret: [u8; 32],
}

impl std::fmt::Debug for SecurePayload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecurePayload").finish_non_exhaustive()
    }
}

impl Drop for SecurePayload {
    fn drop(&mut self) {
        self.local_secret.zeroize();
    }
}

impl SecurePayload {
    /// A sealer for `holepunch_secret` with a local secret drawn from `rng` (JS draws it with
    /// `randombytes_buf` in the constructor).
    pub fn generate<R: RngCore + CryptoRng>(holepunch_secret: &[u8; 32], rng: &mut R) -> Self {
        let mut local_secret = [0u8; 32];
        rng.fill_bytes(&mut local_secret);
        let s = Self::new(holepunch_secret, &local_secret);
        local_secret.zeroize();
        s
    }

    /// A sealer with a given local secret (fixed ones reproduce JS vectors).
    pub fn new(holepunch_secret: &[u8; 32], local_secret: &[u8; 32]) -> Self {
        Self {
            cipher: XSalsa20Poly1305::new(holepunch_secret.into()),
            local_secret: *local_secret,
        }
    }

    /// Seals `payload` under a nonce drawn from `rng` (JS `encrypt`).
    pub fn encrypt<R: RngCore + CryptoRng>(
        &self,
        payload: &HolepunchPayload,
        rng: &mut R,
    ) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        self.encrypt_with_nonce(payload, &nonce)
    }

    /// Seals `payload` under `nonce`. A nonce must never repeat under one key: use
    /// [`SecurePayload::encrypt`] outside tests.
    pub fn encrypt_with_nonce(
        &self,
        payload: &HolepunchPayload,
        nonce: &[u8; NONCE_LEN],
    ) -> Vec<u8> {
        let mut plain = payload.to_bytes();
        let mut out = Vec::with_capacity(NONCE_LEN + TAG_LEN + plain.len());
        out.extend_from_slice(nonce);
        match self
            .cipher
            .encrypt_in_place_detached(nonce.into(), &[], &mut plain)
        {
            Ok(tag) => out.extend_from_slice(&tag),
            // XSalsa20 refuses only plaintexts beyond its 2^70-byte keystream.
            Err(_) => out.extend_from_slice(&[0; TAG_LEN]),
        }
        out.extend_from_slice(&plain);
        out
    }

    /// Opens a sealed payload (JS `decrypt`). Bytes after the payload inside the plaintext are
    /// ignored, as in JS.
    pub fn decrypt(&self, sealed: &[u8]) -> Result<HolepunchPayload, SecurePayloadError> {
        let too_short = SecurePayloadError::TooShort { len: sealed.len() };
        if sealed.len() <= NONCE_LEN + TAG_LEN {
            return Err(too_short);
        }
        let (nonce, rest) = sealed.split_at(NONCE_LEN);
        let (tag, body) = rest.split_at(TAG_LEN);
        let mut plain = body.to_vec();
        self.cipher
            .decrypt_in_place_detached(nonce.into(), &[], &mut plain, tag.into())
            .map_err(|_| SecurePayloadError::Authentication)?;
        Ok(HolepunchPayload::from_bytes(&plain)?)
    }

    /// The token for `host` (JS `token(addr)`: keyed BLAKE2b-256 of the dotted-decimal host
    /// string under the local secret; the port does not enter it).
    pub fn token(&self, host: Ipv4Addr) -> [u8; 32] {
        keyed_hash(&self.local_secret, host.to_string().as_bytes())
    }
}

#[cfg(test)]
#[path = "secure_payload_tests.rs"]
mod tests;
