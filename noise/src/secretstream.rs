//! libsodium `crypto_secretstream_xchacha20poly1305` push/pull, state machine for state
//! machine: the nonce is XORed with each MAC, the 32-bit counter increments, and the key is
//! rekeyed when the counter wraps to zero or the tag has the REKEY bit (so `TAG_FINAL` rekeys
//! too). Any tag byte is accepted on pull, as libsodium accepts it.
//!
//! I/O contract: byte slices in, byte slices out; the header comes from the caller.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

use crate::poly1305::Poly1305;
use chacha20::ChaCha20;
use chacha20::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};
use poly1305::universal_hash::{KeyInit, UniversalHash};
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

/// Bytes added to each message: 1 encrypted tag byte and a 16-byte MAC.
pub const ABYTES: usize = 17;
/// Header length (`crypto_secretstream_xchacha20poly1305_HEADERBYTES`).
pub const HEADERBYTES: usize = 24;
/// Key length.
pub const KEYBYTES: usize = 32;
/// `TAG_MESSAGE`: the only tag secret-stream sends.
pub const TAG_MESSAGE: u8 = 0;
/// `TAG_PUSH`.
pub const TAG_PUSH: u8 = 1;
/// `TAG_REKEY`: forces a rekey after this message.
pub const TAG_REKEY: u8 = 2;
/// `TAG_FINAL` (= PUSH | REKEY).
pub const TAG_FINAL: u8 = 3;

const MACBYTES: usize = 16;
/// Messages up to this length take the single-keystream-call path.
const SMALL: usize = 1024;
/// Scratch size of that path: 128 + SMALL rounded up to 256 bytes.
const SMALL_KS: usize = 1280;

/// Zeroes the Poly1305 key block and the tag block of the scratch (per-byte volatile writes
/// are slow, so the rest, keystream XORed into data the caller holds anyway, is left).
fn wipe_key_blocks(tmp: &mut [u8; SMALL_KS]) {
    if let Some(head) = tmp.get_mut(..128) {
        head.zeroize();
    }
}

/// Keystream length for a small message: blocks 0 and 1 plus the message, rounded up to
/// whole 4-block groups (the SIMD ChaCha20 backends only run in parallel on full groups;
/// a 3-block call costs more than a 4-block one).
fn ks_len(len: usize) -> usize {
    (128 + len + 255) & !255
}
/// From this ciphertext length on, the SIMD `poly1305` crate beats our scalar one despite its
/// ~2.5 µs per-message setup (measured on the CI machine).
const BULK_MAC_THRESHOLD: usize = 8 * 1024;

/// Why a message failed to open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PullError {
    /// Shorter than the 17 bytes of tag and MAC.
    #[error("secretstream message of {len} bytes is shorter than 17")]
    TooShort {
        /// Message length.
        len: usize,
    },
    /// The MAC does not match: corrupted, reordered or forged.
    #[error("secretstream authentication failed")]
    Auth,
}

/// The 52-byte libsodium state: key, 32-bit counter and 8-byte inonce.
#[derive(Clone)]
struct State {
    k: [u8; 32],
    counter: u32,
    inonce: [u8; 8],
}

impl Drop for State {
    fn drop(&mut self) {
        self.k.zeroize();
    }
}

impl State {
    fn init(key: &[u8; KEYBYTES], header: &[u8; HEADERBYTES]) -> Self {
        let (hnonce, rest) = header.split_at(16);
        let mut hn = [0u8; 16];
        hn.copy_from_slice(hnonce);
        let k = chacha20::hchacha::<chacha20::cipher::consts::U10>(key.into(), &hn.into());
        let mut inonce = [0u8; 8];
        inonce.copy_from_slice(rest);
        Self {
            k: k.into(),
            counter: 1,
            inonce,
        }
    }

    fn nonce(&self) -> [u8; 12] {
        let mut n = [0u8; 12];
        let (a, b) = n.split_at_mut(4);
        a.copy_from_slice(&self.counter.to_le_bytes());
        b.copy_from_slice(&self.inonce);
        n
    }

    fn cipher(&self) -> ChaCha20 {
        ChaCha20::new((&self.k).into(), (&self.nonce()).into())
    }

    /// Poly1305 over `block || c || pad || le64(adlen = 0) || le64(64 + len)`, byte for byte
    /// as libsodium feeds it, including its padding quirk `(0x10 - 64 + mlen) & 0xf`.
    fn mac(poly_key: &[u8; 32], block: &[u8; 64], c: &[u8]) -> [u8; 16] {
        let pad = (0x10usize.wrapping_sub(64).wrapping_add(c.len())) & 0xf;
        let mut sizes = [0u8; 16];
        let (_, total) = sizes.split_at_mut(8);
        total.copy_from_slice(&(64u64 + c.len() as u64).to_le_bytes());
        if c.len() < BULK_MAC_THRESHOLD {
            let mut mac = Poly1305::new(poly_key);
            mac.update(block);
            mac.update(c);
            mac.update([0u8; 16].get(..pad).unwrap_or(&[]));
            mac.update(&sizes);
            return mac.finalize();
        }
        // Large messages: the SIMD `poly1305` crate, whose setup cost is amortised here.
        let mut mac = poly1305::Poly1305::new(poly_key.into());
        mac.update_padded(block);
        let full = c.len() - c.len() % 16;
        let (head, tail) = c.split_at(full);
        mac.update_padded(head);
        // the rest is not block-aligned in general: tail || pad zeros || sizes, unpadded
        let mut last = [0u8; 48];
        let mut n = 0;
        for (d, s) in last.iter_mut().zip(tail) {
            *d = *s;
            n += 1;
        }
        n += pad;
        for (d, s) in last.iter_mut().skip(n).zip(sizes) {
            *d = s;
        }
        n += 16;
        mac.compute_unpadded(last.get(..n).unwrap_or(&last)).into()
    }

    fn update(&mut self, mac: &[u8; 16], tag: u8) {
        for (d, s) in self.inonce.iter_mut().zip(mac) {
            *d ^= s;
        }
        self.counter = self.counter.wrapping_add(1);
        if tag & TAG_REKEY != 0 || self.counter == 0 {
            self.rekey();
        }
    }

    /// `crypto_secretstream_xchacha20poly1305_rekey`.
    fn rekey(&mut self) {
        let mut buf = [0u8; 40];
        let (a, b) = buf.split_at_mut(32);
        a.copy_from_slice(&self.k);
        b.copy_from_slice(&self.inonce);
        self.cipher().apply_keystream(&mut buf);
        let (a, b) = buf.split_at(32);
        self.k.copy_from_slice(a);
        self.inonce.copy_from_slice(b);
        buf.zeroize();
        self.counter = 1;
    }

    fn keys(&self) -> (ChaCha20, [u8; 32]) {
        let mut cipher = self.cipher();
        let mut block0 = [0u8; 64];
        cipher.apply_keystream(&mut block0);
        let mut poly_key = [0u8; 32];
        poly_key.copy_from_slice(block0.split_at(32).0);
        block0.zeroize();
        (cipher, poly_key)
    }
}

/// The sending half (`crypto_secretstream_xchacha20poly1305_init_push` / `_push`).
#[derive(Clone)]
pub struct Push(State);

impl std::fmt::Debug for Push {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Push").finish_non_exhaustive()
    }
}

impl Push {
    /// A push state for `key` with the given 24-byte header (libsodium draws it at random;
    /// draw it from a CSPRNG and send it to the peer).
    pub fn new(key: &[u8; KEYBYTES], header: &[u8; HEADERBYTES]) -> Self {
        Self(State::init(key, header))
    }

    /// Encrypts `buf[ABYTES - 16 ..]`-style in place: `out` must be `plaintext.len() + 17` bytes,
    /// `out[1..1 + len]` holds the plaintext on entry and the whole message on return.
    pub fn push_in_place(&mut self, out: &mut [u8], tag: u8) {
        let len = out.len().saturating_sub(ABYTES);
        if len <= SMALL {
            return self.push_small(out, len, tag);
        }
        let (mut cipher, poly_key) = self.0.keys();
        let mut block = [0u8; 64];
        block[0] = tag;
        cipher.seek(64u32);
        cipher.apply_keystream(&mut block);
        let (first, rest) = match out.split_first_mut() {
            Some(x) => x,
            None => return,
        };
        *first = block[0];
        let (c, mac_out) = rest.split_at_mut(len);
        cipher.seek(128u32);
        cipher.apply_keystream(c);
        let mac = State::mac(&poly_key, &block, c);
        mac_out.copy_from_slice(&mac);
        self.0.update(&mac, tag);
    }

    /// Small messages: one keystream call covers the Poly1305 key block, the tag block and the
    /// message (they are consecutive ChaCha20 blocks 0, 1, 2...), instead of three calls.
    fn push_small(&mut self, out: &mut [u8], len: usize, tag: u8) {
        let mut tmp = [0u8; SMALL_KS];
        let Some(ks) = tmp.get_mut(..ks_len(len)) else {
            return;
        };
        let (head, tail) = ks.split_at_mut(128);
        let data = tail.get_mut(..len).unwrap_or(&mut []);
        let (Some((first, rest)), Some(t)) = (out.split_first_mut(), head.get_mut(64)) else {
            return;
        };
        *t = tag;
        let (plain, mac_out) = rest.split_at_mut(len);
        data.copy_from_slice(plain);
        self.0.cipher().apply_keystream(ks);
        let (head, tail) = ks.split_at(128);
        let c = tail.get(..len).unwrap_or(&[]);
        let (k, b) = head.split_at(64);
        let mut poly_key = [0u8; 32];
        poly_key.copy_from_slice(k.split_at(32).0);
        let mut block = [0u8; 64];
        block.copy_from_slice(b);
        *first = block[0];
        plain.copy_from_slice(c);
        let mac = State::mac(&poly_key, &block, c);
        mac_out.copy_from_slice(&mac);
        self.0.update(&mac, tag);
        wipe_key_blocks(&mut tmp);
        poly_key.zeroize();
    }

    /// Encrypts `plaintext` with `tag` into a new message (`plaintext.len() + 17` bytes).
    pub fn push(&mut self, plaintext: &[u8], tag: u8) -> Vec<u8> {
        let mut out = vec![0u8; plaintext.len() + ABYTES];
        if let Some(dst) = out.get_mut(1..1 + plaintext.len()) {
            dst.copy_from_slice(plaintext);
        }
        self.push_in_place(&mut out, tag);
        out
    }

    #[doc(hidden)]
    /// Test hook: sets the 32-bit counter, as the JS vectors do on the raw libsodium state.
    pub fn set_counter_for_testing(&mut self, counter: u32) {
        self.0.counter = counter;
    }
}

/// The receiving half (`crypto_secretstream_xchacha20poly1305_init_pull` / `_pull`).
#[derive(Clone)]
pub struct Pull(State);

impl std::fmt::Debug for Pull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pull").finish_non_exhaustive()
    }
}

impl Pull {
    /// A pull state for `key` and the peer's header.
    pub fn new(key: &[u8; KEYBYTES], header: &[u8; HEADERBYTES]) -> Self {
        Self(State::init(key, header))
    }

    /// Authenticates and decrypts `msg` in place. On success returns the tag; the plaintext is
    /// `msg[1 .. msg.len() - 16]`. On failure the state is unchanged and `msg` is untouched
    /// (the MAC is checked before anything is decrypted).
    pub fn pull_in_place(&mut self, msg: &mut [u8]) -> Result<u8, PullError> {
        if msg.len() < ABYTES {
            return Err(PullError::TooShort { len: msg.len() });
        }
        let len = msg.len() - ABYTES;
        if len <= SMALL {
            return self.pull_small(msg, len);
        }
        let (mut cipher, poly_key) = self.0.keys();
        let (first, rest) = msg
            .split_first_mut()
            .ok_or(PullError::TooShort { len: 0 })?;
        let mut block = [0u8; 64];
        block[0] = *first;
        cipher.seek(64u32);
        cipher.apply_keystream(&mut block);
        let tag = block[0];
        block[0] = *first;
        let (c, stored) = rest.split_at_mut(len);
        let mac = State::mac(&poly_key, &block, c);
        if !bool::from(mac.as_slice().ct_eq(stored)) {
            return Err(PullError::Auth);
        }
        cipher.seek(128u32);
        cipher.apply_keystream(c);
        self.0.update(&mac, tag);
        Ok(tag)
    }

    /// Small messages: one keystream call for blocks 0, 1, 2...; the plaintext is computed into
    /// a scratch buffer and copied into `msg` only after the MAC verified.
    fn pull_small(&mut self, msg: &mut [u8], len: usize) -> Result<u8, PullError> {
        let mut tmp = [0u8; SMALL_KS];
        let ks = tmp.get_mut(..ks_len(len)).ok_or(PullError::Auth)?;
        let (head, tail) = ks.split_at_mut(128);
        let data = tail.get_mut(..len).unwrap_or(&mut []);
        let (first, rest) = msg
            .split_first_mut()
            .ok_or(PullError::TooShort { len: 0 })?;
        let (c, stored) = rest.split_at_mut(len);
        if let Some(t) = head.get_mut(64) {
            *t = *first;
        }
        data.copy_from_slice(c);
        self.0.cipher().apply_keystream(ks);
        let (head, tail) = ks.split_at(128);
        let plain = tail.get(..len).unwrap_or(&[]);
        let (k, b) = head.split_at(64);
        let mut poly_key = [0u8; 32];
        poly_key.copy_from_slice(k.split_at(32).0);
        let mut block = [0u8; 64];
        block.copy_from_slice(b);
        let tag = block[0];
        block[0] = *first;
        let mac = State::mac(&poly_key, &block, c);
        poly_key.zeroize();
        if !bool::from(mac.as_slice().ct_eq(stored)) {
            wipe_key_blocks(&mut tmp);
            return Err(PullError::Auth);
        }
        c.copy_from_slice(plain);
        self.0.update(&mac, tag);
        wipe_key_blocks(&mut tmp);
        Ok(tag)
    }

    /// Opens `msg` into a new buffer, returning the tag and plaintext.
    pub fn pull(&mut self, msg: &[u8]) -> Result<(u8, Vec<u8>), PullError> {
        let mut buf = msg.to_vec();
        let tag = self.pull_in_place(&mut buf)?;
        buf.truncate(buf.len() - MACBYTES);
        buf.remove(0);
        Ok((tag, buf))
    }

    #[doc(hidden)]
    /// Test hook: sets the 32-bit counter, as the JS vectors do on the raw libsodium state.
    pub fn set_counter_for_testing(&mut self, counter: u32) {
        self.0.counter = counter;
    }
}
