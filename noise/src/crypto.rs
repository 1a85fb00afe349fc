//! Primitives shared by the handshake and the secret stream: Ed25519 key pairs, the
//! Edwards-curve DH of `noise-curve-ed` (`index.js dh`), and keyed BLAKE2b-256
//! (`crypto_generichash` with a key).
//!
//! Pure functions over byte arrays; no I/O, no clock, no hidden randomness.

use blake2::Blake2bMac;
use blake2::digest::{Digest, Mac, consts::U32};
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use rand_core::{CryptoRng, RngCore};
use sha2::Sha512;
use zeroize::Zeroize;

/// Length of a BLAKE2b-512 digest, Noise's HASHLEN for `BLAKE2b`.
pub const HASHLEN: usize = 64;

/// `hypercore-crypto` `namespace('hyperswarm/secret-stream', 3)[0]`: keys the initiator's stream id.
pub const NS_INITIATOR: [u8; 32] =
    hex32("a931a0155b5c09e6d28628236af83c4b8a6af9af60986edeede9dc5d63192bf7");
/// `namespace('hyperswarm/secret-stream', 3)[1]`: keys the responder's stream id.
pub const NS_RESPONDER: [u8; 32] =
    hex32("742c9d833d430af4c48a8705e91631eecf295442bbca18996e597097723b1061");
/// `namespace('hyperswarm/secret-stream', 3)[2]`: appended to the role namespace for `send()` keys.
pub const NS_SEND: [u8; 32] =
    hex32("aab97d097471f56651b0460ffc8aaa7d3342f7377597d60b925a1dac689adcbf");

// Evaluated at compile time on constant literals only.
#[allow(clippy::indexing_slicing)]
const fn hex32(s: &str) -> [u8; 32] {
    const fn nibble(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => 0,
        }
    }
    let b = s.as_bytes();
    let mut out = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        out[i] = (nibble(b[2 * i]) << 4) | nibble(b[2 * i + 1]);
        i += 1;
    }
    out
}

/// An Ed25519 key pair as libsodium's `crypto_sign_seed_keypair` makes it; `noise-curve-ed`
/// uses the same key pairs for Noise statics and ephemerals.
#[derive(Clone)]
pub struct KeyPair {
    seed: [u8; 32],
    public_key: [u8; 32],
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPair")
            .field("public_key", &Hex(&self.public_key))
            .finish_non_exhaustive()
    }
}

struct Hex<'a>(&'a [u8]);
impl std::fmt::Debug for Hex<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl Drop for KeyPair {
    fn drop(&mut self) {
        self.seed.zeroize();
    }
}

impl KeyPair {
    /// The key pair of a 32-byte seed (`crypto_sign_seed_keypair`).
    ///
    /// ```
    /// let kp = noise::KeyPair::from_seed([1; 32]);
    /// assert_eq!(kp.public_key()[0], 0x8a);
    /// ```
    pub fn from_seed(seed: [u8; 32]) -> Self {
        let mut scalar = clamped_scalar(&seed);
        let public_key = EdwardsPoint::mul_base_clamped(scalar).compress().to_bytes();
        scalar.zeroize();
        Self { seed, public_key }
    }

    /// The key pair of a libsodium 64-byte secret key (`seed || public key`), as hyperdht
    /// stores it. Only the seed half is used, as `noise-curve-ed` does.
    pub fn from_secret_key(secret_key: &[u8; 64]) -> Self {
        let mut seed = [0u8; 32];
        seed.copy_from_slice(secret_key.split_at(32).0);
        Self::from_seed(seed)
    }

    /// A fresh random key pair (`crypto_sign_keypair`).
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        Self::from_seed(seed)
    }

    /// The 32-byte seed (the private key `noise-curve-ed` derives its scalar from).
    pub(crate) fn seed(&self) -> &[u8; 32] {
        &self.seed
    }

    /// The 32-byte compressed Edwards public key.
    pub fn public_key(&self) -> &[u8; 32] {
        &self.public_key
    }

    /// The libsodium 64-byte secret key, `seed || public key`.
    pub fn secret_key(&self) -> [u8; 64] {
        let mut out = [0u8; 64];
        let (a, b) = out.split_at_mut(32);
        a.copy_from_slice(&self.seed);
        b.copy_from_slice(&self.public_key);
        out
    }
}

/// `SHA-512(seed)[0..32]` with the Ed25519 clamp: the scalar Ed25519 signing uses.
fn clamped_scalar(seed: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha512::digest(seed);
    let mut s = [0u8; 32];
    s.copy_from_slice(h.split_at(32).0);
    h.as_mut_slice().zeroize();
    s[0] &= 248;
    s[31] &= 127;
    s[31] |= 64;
    s
}

/// Why a remote public key was refused by [`dh`]; libsodium's
/// `crypto_scalarmult_ed25519_noclamp` refuses the same keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DhError {
    /// The encoding's y coordinate is not below the field prime.
    #[error("public key is not a canonical point encoding")]
    NonCanonical,
    /// No curve point has this encoding.
    #[error("public key is not a point on the curve")]
    NotOnCurve,
    /// The point has order 1, 2, 4 or 8.
    #[error("public key is a point of small order")]
    SmallOrder,
    /// The point is not in the prime-order subgroup.
    #[error("public key is not in the prime-order subgroup")]
    NotInSubgroup,
    /// The product is the identity.
    #[error("DH result is the identity point")]
    IdentityResult,
}

/// Checks a remote public key as libsodium does before a scalar multiplication.
pub fn validate_public_key(public_key: &[u8; 32]) -> Result<EdwardsPoint, DhError> {
    if !is_canonical(public_key) {
        return Err(DhError::NonCanonical);
    }
    let point = CompressedEdwardsY(*public_key)
        .decompress()
        .ok_or(DhError::NotOnCurve)?;
    if point.is_small_order() {
        return Err(DhError::SmallOrder);
    }
    // dalek accepts x = 0 with the sign bit set; those points (y = ±1) are small order anyway,
    // and the round trip pins down every other non-canonical form.
    if point.compress().to_bytes() != *public_key {
        return Err(DhError::NonCanonical);
    }
    if !point.is_torsion_free() {
        return Err(DhError::NotInSubgroup);
    }
    Ok(point)
}

/// libsodium `ge25519_is_canonical`: y (without the sign bit) must be below 2^255 - 19.
fn is_canonical(s: &[u8; 32]) -> bool {
    let (first, rest) = match s.split_first() {
        Some(x) => x,
        None => return false,
    };
    let (last, middle) = match rest.split_last() {
        Some(x) => x,
        None => return false,
    };
    let all_ff = middle.iter().all(|&b| b == 0xff);
    !((last & 0x7f) == 0x7f && all_ff && *first >= 0xed)
}

/// The DH of `noise-curve-ed`: the compressed Edwards point `clamp(SHA-512(seed)[..32]) * P`.
/// This is not X25519.
pub fn dh(local: &KeyPair, remote_public_key: &[u8; 32]) -> Result<[u8; 32], DhError> {
    let point = validate_public_key(remote_public_key)?;
    let mut scalar = clamped_scalar(&local.seed);
    let product = point.mul_clamped(scalar);
    scalar.zeroize();
    let out = product.compress().to_bytes();
    if out == CompressedEdwardsY::default().to_bytes() || product == EdwardsPoint::default() {
        return Err(DhError::IdentityResult);
    }
    Ok(out)
}

/// Keyed BLAKE2b-256 (`crypto_generichash(out32, concat(parts), key)`), as `hypercore-crypto`
/// and secret-stream use it. `key` must be at most 64 bytes.
pub(crate) fn keyed_hash32(key: &[u8; HASHLEN], parts: &[&[u8]]) -> [u8; 32] {
    // A 64-byte key is always accepted by BLAKE2b; the fallback is never taken.
    let Ok(mut mac) = <Blake2bMac<U32> as Mac>::new_from_slice(key) else {
        return [0u8; 32];
    };
    for p in parts {
        Mac::update(&mut mac, p);
    }
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_match_hypercore_crypto() {
        // namespace(name, i) = BLAKE2b-256(BLAKE2b-256(name) || byte(i))
        let ns = |i: u8| -> [u8; 32] {
            let mut h = blake2::Blake2b::<U32>::new();
            h.update(b"hyperswarm/secret-stream");
            let name: [u8; 32] = h.finalize().into();
            let mut h = blake2::Blake2b::<U32>::new();
            h.update(name);
            h.update([i]);
            h.finalize().into()
        };
        assert_eq!(ns(0), NS_INITIATOR);
        assert_eq!(ns(1), NS_RESPONDER);
        assert_eq!(ns(2), NS_SEND);
    }

    #[test]
    fn secret_key_round_trips_through_from_secret_key() {
        let kp = KeyPair::from_seed([9; 32]);
        let again = KeyPair::from_secret_key(&kp.secret_key());
        assert_eq!(kp.public_key(), again.public_key());
    }
}
