//! The unordered datagrams of `@hyperswarm/secret-stream/index.js` (`send`, `trySend`,
//! `_setupSecretSend`, `_boxMessage`, `_onmessage`).

use crypto_secretbox::XSalsa20Poly1305;
use crypto_secretbox::aead::{AeadInPlace, KeyInit};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::crypto::{self, NS_INITIATOR, NS_RESPONDER, NS_SEND};

/// The unordered encrypted datagrams of secret-stream (`send()`, `trySend()`, `'message'`):
/// XSalsa20-Poly1305 secretbox under per-direction keys derived from the handshake hash,
/// nonce = 8-byte little-endian counter (random start) padded with 16 zero bytes, datagram =
/// `counter (8) || MAC (16) || ciphertext`.
///
/// Not `Clone`: two copies would seal two datagrams under one nonce. The keys are wiped on
/// drop (`crypto_secretbox` zeroizes its key).
///
/// ```compile_fail
/// let d = noise::Datagrams::new(&[1; 64], true, [0; 8]);
/// let copy = d.clone();
/// ```
pub struct Datagrams {
    send: XSalsa20Poly1305,
    recv: XSalsa20Poly1305,
    counter: [u8; 8],
    initial: [u8; 8],
}

impl std::fmt::Debug for Datagrams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Datagrams").finish_non_exhaustive()
    }
}

impl Drop for Datagrams {
    fn drop(&mut self) {
        self.counter.zeroize();
        self.initial.zeroize();
    }
}

impl ZeroizeOnDrop for Datagrams {}

/// Why a datagram could not be sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DatagramError {
    /// The 64-bit counter came back to its start (JS: "udp send nonce exchausted").
    #[error("datagram nonce counter exhausted")]
    NonceExhausted,
}

/// Bytes a sealed datagram adds: counter (8) and MAC (16).
pub const DATAGRAM_OVERHEAD: usize = 24;

impl Datagrams {
    /// The datagram state for a stream with `handshake_hash`, as `_setupSecretSend` derives it.
    pub fn new(handshake_hash: &[u8; 64], is_initiator: bool, counter_start: [u8; 8]) -> Self {
        let ki = crypto::keyed_hash32(handshake_hash, &[&NS_INITIATOR, &NS_SEND]);
        let kr = crypto::keyed_hash32(handshake_hash, &[&NS_RESPONDER, &NS_SEND]);
        let (mut s, mut r) = if is_initiator { (ki, kr) } else { (kr, ki) };
        let d = Self {
            send: XSalsa20Poly1305::new((&s).into()),
            recv: XSalsa20Poly1305::new((&r).into()),
            counter: counter_start,
            initial: counter_start,
        };
        s.zeroize();
        r.zeroize();
        d
    }

    /// Seals one datagram (JS `_boxMessage`): increments the counter first.
    pub fn seal(&mut self, plaintext: &[u8]) -> Result<Vec<u8>, DatagramError> {
        // sodium_increment: little-endian
        let mut carry = 1u16;
        for b in self.counter.iter_mut() {
            carry += u16::from(*b);
            *b = carry as u8;
            carry >>= 8;
        }
        if self.counter == self.initial {
            return Err(DatagramError::NonceExhausted);
        }
        let mut nonce = [0u8; 24];
        nonce.iter_mut().zip(self.counter).for_each(|(d, s)| *d = s);
        let mut out = Vec::with_capacity(DATAGRAM_OVERHEAD + plaintext.len());
        out.extend_from_slice(&self.counter);
        out.extend_from_slice(&[0u8; 16]);
        out.extend_from_slice(plaintext);
        let (head, body) = out.split_at_mut(DATAGRAM_OVERHEAD);
        // Encryption of an in-memory buffer cannot fail for these lengths.
        if let Ok(tag) = self
            .send
            .encrypt_in_place_detached((&nonce).into(), &[], body)
            && let Some(mac) = head.get_mut(8..)
        {
            mac.copy_from_slice(&tag);
        }
        Ok(out)
    }

    /// Opens a received datagram (JS `_onmessage`); invalid ones give `None` (JS drops them).
    pub fn open(&self, datagram: &[u8]) -> Option<Vec<u8>> {
        if datagram.len() < DATAGRAM_OVERHEAD {
            return None;
        }
        let (head, body) = datagram.split_at(DATAGRAM_OVERHEAD);
        let mut nonce = [0u8; 24];
        nonce
            .iter_mut()
            .zip(head)
            .take(8)
            .for_each(|(d, s)| *d = *s);
        let tag = head.get(8..)?;
        let mut plain = body.to_vec();
        self.recv
            .decrypt_in_place_detached((&nonce).into(), &[], &mut plain, tag.into())
            .ok()?;
        Some(plain)
    }
}
