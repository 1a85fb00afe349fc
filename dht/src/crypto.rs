//! Hashes, node ids, namespaces, key pairs and the signatures HyperDHT puts on the wire.
//!
//! JS: `dht-rpc@6.27.0 lib/peer.js` (`id`), `hypercore-crypto@3.7.0` (`namespace`, `keyPair`,
//! `discoveryKey`), `hyperdht@6.34.0 lib/constants.js` (`NS`), `lib/crypto.js`,
//! `lib/persistent.js` (`annSignable`, `signMutable`, `verifyMutable`). libsodium's
//! `crypto_generichash` is BLAKE2b; keyed, it is BLAKE2b's own keyed mode (not HMAC).

use std::net::SocketAddrV4;
use std::sync::LazyLock;

use blake2::digest::consts::U32;
use blake2::digest::{Digest, Mac};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use crate::codec::{Encode, Writer};
use crate::hyperdht::messages::{MutableSignable, Peer};

type Blake2b256 = blake2::Blake2b<U32>;
type Blake2bMac256 = blake2::Blake2bMac<U32>;

/// BLAKE2b-256 of `data` (`crypto_generichash(out32, data)`; `HyperDHT.hash`).
pub fn hash(data: &[u8]) -> [u8; 32] {
    Blake2b256::digest(data).into()
}

/// BLAKE2b-256 of the concatenation of `parts` (`crypto_generichash_batch`).
pub fn hash_batch(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Blake2b256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// Keyed BLAKE2b-256 (`crypto_generichash(out32, data, key)`), for keys of 1 to 64 bytes as
/// libsodium takes them (this stack uses 32-byte keys and the 64-byte handshake hash).
pub fn keyed_hash<const N: usize>(key: &[u8; N], data: &[u8]) -> [u8; 32] {
    const { assert!(N >= 1 && N <= 64, "BLAKE2b keys are 1 to 64 bytes") };
    let Ok(mut mac) = Blake2bMac256::new_from_slice(key) else {
        // Unreachable: the length is checked at compile time above.
        return hash_batch(&[key, data]);
    };
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// The dht-rpc node id of a persistent node: BLAKE2b-256 of its 6-byte `ipv4Address`.
pub fn node_id(addr: &SocketAddrV4) -> [u8; 32] {
    let mut buf = Vec::with_capacity(6);
    buf.put_ipv4_addr(addr);
    hash(&buf)
}

/// `hypercore-crypto` `namespace(name, ids)`: `ns = H(name)`, then `H(ns || id)` for each id.
pub fn namespace(name: &str, ids: &[u8]) -> Vec<[u8; 32]> {
    let ns = hash(name.as_bytes());
    ids.iter().map(|id| hash_batch(&[&ns, &[*id]])).collect()
}

/// `hypercore-crypto` `discoveryKey(publicKey)`: BLAKE2b-256 of `"hypercore"` keyed with the key.
pub fn discovery_key(public_key: &[u8; 32]) -> [u8; 32] {
    keyed_hash(public_key, b"hypercore")
}

/// hyperdht's namespaces (`lib/constants.js` `NS`), from `namespace("hyperswarm/dht", …)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespaces {
    /// Signatures of ANNOUNCE values (command 4).
    pub announce: [u8; 32],
    /// Signatures of UNANNOUNCE values (command 5).
    pub unannounce: [u8; 32],
    /// Signatures of mutable records (command 6).
    pub mutable_put: [u8; 32],
    /// The Noise prologue of PEER_HANDSHAKE (command 0).
    pub peer_handshake: [u8; 32],
    /// Key derivation for holepunch payloads (command 1).
    pub peer_holepunch: [u8; 32],
    /// PLUGIN (command 10).
    pub plugin: [u8; 32],
}

/// hyperdht's namespaces, computed once.
pub static NS: LazyLock<Namespaces> = LazyLock::new(|| {
    let v = namespace("hyperswarm/dht", &[4, 5, 6, 0, 1, 10]);
    let get = |i: usize| v.get(i).copied().unwrap_or_default();
    Namespaces {
        announce: get(0),
        unannounce: get(1),
        mutable_put: get(2),
        peer_handshake: get(3),
        peer_holepunch: get(4),
        plugin: get(5),
    }
});

/// An Ed25519 key pair in libsodium's layout.
#[derive(Clone)]
pub struct KeyPair {
    /// The 32-byte public key.
    pub public_key: [u8; 32],
    /// libsodium's 64-byte secret key: seed || public key.
    pub secret_key: [u8; 64],
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPair")
            .field("public_key", &self.public_key)
            .finish_non_exhaustive()
    }
}

impl KeyPair {
    /// `crypto_sign_seed_keypair(seed)` (`HyperDHT.keyPair(seed)`).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        let sk = SigningKey::from_bytes(seed);
        let public_key = sk.verifying_key().to_bytes();
        let mut secret_key = [0u8; 64];
        secret_key[..32].copy_from_slice(seed);
        secret_key[32..].copy_from_slice(&public_key);
        Self {
            public_key,
            secret_key,
        }
    }

    /// The 32-byte seed.
    pub fn seed(&self) -> [u8; 32] {
        let mut s = [0u8; 32];
        s.copy_from_slice(&self.secret_key[..32]);
        s
    }

    /// A detached Ed25519 signature (`crypto_sign_detached`; deterministic).
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        SigningKey::from_bytes(&self.seed()).sign(msg).to_bytes()
    }
}

/// Ed25519 verification as libsodium's `crypto_sign_verify_detached` does it: small-order keys
/// and `R` values and non-canonical encodings are refused.
pub fn verify(public_key: &[u8; 32], msg: &[u8], signature: &[u8; 64]) -> bool {
    let Ok(vk) = VerifyingKey::from_bytes(public_key) else {
        return false;
    };
    vk.verify_strict(msg, &Signature::from_bytes(signature))
        .is_ok()
}

/// The 64 bytes an announce or unannounce signature covers (`annSignable`):
/// `ns || H(target || node_id || token || encode(peer) || refresh)`.
pub fn announce_signable(
    ns: &[u8; 32],
    target: &[u8; 32],
    node_id: &[u8; 32],
    token: &[u8; 32],
    peer: &Peer,
    refresh: Option<&[u8; 32]>,
) -> [u8; 64] {
    let peer_bytes = peer.to_bytes();
    let h = hash_batch(&[
        target,
        node_id,
        token,
        &peer_bytes,
        refresh.map(|r| &r[..]).unwrap_or_default(),
    ]);
    let mut out = [0u8; 64];
    out[..32].copy_from_slice(ns);
    out[32..].copy_from_slice(&h);
    out
}

/// Signs an ANNOUNCE for the storage node `node_id` that handed out `token`.
pub fn sign_announce(
    kp: &KeyPair,
    target: &[u8; 32],
    node_id: &[u8; 32],
    token: &[u8; 32],
    peer: &Peer,
    refresh: Option<&[u8; 32]>,
) -> [u8; 64] {
    let ns = &NS.announce;
    kp.sign(&announce_signable(
        ns, target, node_id, token, peer, refresh,
    ))
}

/// Signs an UNANNOUNCE for the storage node `node_id` that handed out `token`.
pub fn sign_unannounce(
    kp: &KeyPair,
    target: &[u8; 32],
    node_id: &[u8; 32],
    token: &[u8; 32],
    peer: &Peer,
    refresh: Option<&[u8; 32]>,
) -> [u8; 64] {
    let ns = &NS.unannounce;
    kp.sign(&announce_signable(
        ns, target, node_id, token, peer, refresh,
    ))
}

/// The 64 bytes a mutable-record signature covers: `NS.MUTABLE_PUT || H(encode({seq, value}))`.
pub fn mutable_signable(seq: u64, value: &[u8]) -> [u8; 64] {
    let enc = MutableSignable {
        seq,
        value: value.to_vec(),
    }
    .to_bytes();
    let mut out = [0u8; 64];
    out[..32].copy_from_slice(&NS.mutable_put);
    out[32..].copy_from_slice(&hash(&enc));
    out
}

/// Signs a mutable record (`signMutable`).
pub fn sign_mutable(kp: &KeyPair, seq: u64, value: &[u8]) -> [u8; 64] {
    kp.sign(&mutable_signable(seq, value))
}

/// Checks a mutable record's signature (`verifyMutable`).
pub fn verify_mutable(public_key: &[u8; 32], seq: u64, value: &[u8], signature: &[u8; 64]) -> bool {
    verify(public_key, &mutable_signable(seq, value), signature)
}
