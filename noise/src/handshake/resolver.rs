//! The primitives `snow` runs the handshake with, as `noise-handshake` 4.2.0 and
//! `noise-curve-ed` 2.1.0 define them:
//! - DH `Ed25519` (`noise-curve-ed/index.js dh`): key pairs are libsodium Ed25519 seed key
//!   pairs, the shared secret is the compressed Edwards point `clamp(SHA-512(seed)[..32]) *
//!   remote`, and remote keys libsodium's `crypto_scalarmult_ed25519_noclamp` refuses are
//!   refused ([`crate::crypto::dh`]). Not X25519.
//! - `ChaChaPoly` (`noise-handshake/cipher.js`): IETF ChaCha20-Poly1305, nonce = 4 zero bytes
//!   and the 64-bit counter little-endian, the handshake hash as associated data.
//! - `BLAKE2b` (`noise-handshake/symmetric-state.js`, `hmac.js`, `hkdf.js`): BLAKE2b-512 with a
//!   128-byte HMAC block; snow's HMAC and HKDF over it are the ones `noise-handshake` builds.
//! - Randomness: the only random input of a handshake is this side's ephemeral key, drawn
//!   when snow writes the `e` token. [`FixedRng`] hands snow the seed the caller passed in,
//!   once, so the core stays deterministic and tests can fix ephemerals as JS vectors do.

use std::sync::{Arc, Mutex};

use blake2::Blake2b512;
use blake2::digest::Digest;
use chacha20poly1305::ChaCha20Poly1305;
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use snow::params::{CipherChoice, DHChoice, HashChoice};
use snow::resolvers::CryptoResolver;
use snow::types::{Cipher, Dh, Hash, Random};
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

use crate::crypto::{self, DhError, KeyPair};

/// Where the DH object leaves the reason it refused a remote key, so the handshake can name it
/// (snow only reports that a DH failed).
pub(super) type DhErrorSlot = Arc<Mutex<Option<DhError>>>;

/// Resolves the three primitives above and the ephemeral seed. It answers for the `25519`
/// DH choice, the one snow parses in our protocol names before the name is replaced by
/// `..._Ed25519_...` (see `super::Pattern::params`); it serves no other parameters.
pub(super) struct Resolver {
    ephemeral_seed: [u8; 32],
    /// The static and ephemeral key pairs, so setting their seed does not derive the public
    /// key a second time.
    known: Arc<[KeyPair; 2]>,
    dh_error: DhErrorSlot,
}

impl Resolver {
    pub(super) fn new(static_keypair: KeyPair, ephemeral: KeyPair, dh_error: DhErrorSlot) -> Self {
        Self {
            ephemeral_seed: *ephemeral.seed(),
            known: Arc::new([static_keypair, ephemeral]),
            dh_error,
        }
    }
}

impl Drop for Resolver {
    fn drop(&mut self) {
        self.ephemeral_seed.zeroize();
    }
}

impl CryptoResolver for Resolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        Some(Box::new(FixedRng(Some(self.ephemeral_seed))))
    }

    fn resolve_dh(&self, choice: &DHChoice) -> Option<Box<dyn Dh>> {
        match choice {
            DHChoice::Curve25519 => Some(Box::new(Ed25519 {
                keypair: None,
                known: Arc::clone(&self.known),
                dh_error: Arc::clone(&self.dh_error),
            })),
            _ => None,
        }
    }

    fn resolve_hash(&self, choice: &HashChoice) -> Option<Box<dyn Hash>> {
        match choice {
            HashChoice::Blake2b => Some(Box::new(Blake2b(Blake2b512::new()))),
            _ => None,
        }
    }

    fn resolve_cipher(&self, choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
        match choice {
            CipherChoice::ChaChaPoly => Some(Box::new(ChaChaPoly { key: [0; 32] })),
            _ => None,
        }
    }
}

/// Yields the ephemeral seed once (snow asks for exactly 32 bytes when it writes `e`), then
/// fails: a handshake never needs a second random key.
struct FixedRng(Option<[u8; 32]>);

impl Drop for FixedRng {
    fn drop(&mut self) {
        if let Some(s) = self.0.as_mut() {
            s.zeroize();
        }
    }
}

impl Random for FixedRng {
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), snow::Error> {
        match self.0.take() {
            Some(mut seed) if dest.len() == seed.len() => {
                dest.copy_from_slice(&seed);
                seed.zeroize();
                Ok(())
            }
            _ => Err(snow::Error::Rng),
        }
    }
}

/// `noise-curve-ed`'s DH; the private key snow stores and sets is the 32-byte seed.
struct Ed25519 {
    keypair: Option<KeyPair>,
    known: Arc<[KeyPair; 2]>,
    dh_error: DhErrorSlot,
}

impl Dh for Ed25519 {
    fn name(&self) -> &'static str {
        "Ed25519"
    }

    fn pub_len(&self) -> usize {
        32
    }

    fn priv_len(&self) -> usize {
        32
    }

    fn set(&mut self, privkey: &[u8]) {
        let known = self
            .known
            .iter()
            .find(|k| bool::from(k.seed().as_slice().ct_eq(privkey)));
        self.keypair = Some(match known {
            Some(k) => k.clone(),
            None => {
                let mut seed = [0u8; 32];
                seed.iter_mut().zip(privkey).for_each(|(d, s)| *d = *s);
                let k = KeyPair::from_seed(seed);
                seed.zeroize();
                k
            }
        });
    }

    fn generate(&mut self, rng: &mut dyn Random) -> Result<(), snow::Error> {
        let mut seed = [0u8; 32];
        rng.try_fill_bytes(&mut seed)?;
        self.set(&seed);
        seed.zeroize();
        Ok(())
    }

    fn pubkey(&self) -> &[u8] {
        self.keypair.as_ref().map_or(&[], |k| k.public_key())
    }

    fn privkey(&self) -> &[u8] {
        self.keypair.as_ref().map_or(&[], |k| k.seed())
    }

    /// `pubkey` is snow's key buffer, at least 32 bytes; `out` at least 32.
    fn dh(&self, pubkey: &[u8], out: &mut [u8]) -> Result<(), snow::Error> {
        let local = self.keypair.as_ref().ok_or(snow::Error::Dh)?;
        let mut remote = [0u8; 32];
        remote.copy_from_slice(pubkey.get(..32).ok_or(snow::Error::Dh)?);
        match crypto::dh(local, &remote) {
            Ok(mut shared) => {
                out.get_mut(..32)
                    .ok_or(snow::Error::Dh)?
                    .copy_from_slice(&shared);
                shared.zeroize();
                Ok(())
            }
            Err(e) => {
                if let Ok(mut slot) = self.dh_error.lock() {
                    *slot = Some(e);
                }
                Err(snow::Error::Dh)
            }
        }
    }
}

/// BLAKE2b-512.
struct Blake2b(Blake2b512);

impl Hash for Blake2b {
    fn name(&self) -> &'static str {
        "BLAKE2b"
    }

    fn block_len(&self) -> usize {
        128
    }

    fn hash_len(&self) -> usize {
        64
    }

    fn reset(&mut self) {
        self.0 = Blake2b512::new();
    }

    fn input(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    fn result(&mut self, out: &mut [u8]) {
        let digest = self.0.finalize_reset();
        out.iter_mut().zip(digest).for_each(|(d, s)| *d = s);
    }
}

/// ChaCha20-Poly1305 with Noise's nonce; the key is wiped on drop.
struct ChaChaPoly {
    key: [u8; 32],
}

impl Drop for ChaChaPoly {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

impl ChaChaPoly {
    fn nonce(n: u64) -> [u8; 12] {
        let mut nonce = [0u8; 12];
        nonce
            .iter_mut()
            .skip(4)
            .zip(n.to_le_bytes())
            .for_each(|(d, s)| *d = s);
        nonce
    }
}

impl Cipher for ChaChaPoly {
    fn name(&self) -> &'static str {
        "ChaChaPoly"
    }

    fn set(&mut self, key: &[u8; 32]) {
        self.key = *key;
    }

    /// snow sizes `out` for the ciphertext and tag; 0 (nothing written) otherwise.
    fn encrypt(&self, nonce: u64, authtext: &[u8], plaintext: &[u8], out: &mut [u8]) -> usize {
        let n = plaintext.len();
        let Some(buf) = out.get_mut(..n + 16) else {
            return 0;
        };
        let (body, tag_out) = buf.split_at_mut(n);
        body.copy_from_slice(plaintext);
        let cipher = ChaCha20Poly1305::new((&self.key).into());
        match cipher.encrypt_in_place_detached((&Self::nonce(nonce)).into(), authtext, body) {
            Ok(tag) => {
                tag_out.copy_from_slice(&tag);
                n + 16
            }
            Err(_) => 0,
        }
    }

    fn decrypt(
        &self,
        nonce: u64,
        authtext: &[u8],
        ciphertext: &[u8],
        out: &mut [u8],
    ) -> Result<usize, snow::Error> {
        let n = ciphertext
            .len()
            .checked_sub(16)
            .ok_or(snow::Error::Decrypt)?;
        let (body_in, tag) = ciphertext.split_at(n);
        let body = out.get_mut(..n).ok_or(snow::Error::Decrypt)?;
        body.copy_from_slice(body_in);
        let cipher = ChaCha20Poly1305::new((&self.key).into());
        if cipher
            .decrypt_in_place_detached((&Self::nonce(nonce)).into(), authtext, body, tag.into())
            .is_err()
        {
            body.zeroize();
            return Err(snow::Error::Decrypt);
        }
        Ok(n)
    }
}
