//! libsodium `crypto_secretstream_xchacha20poly1305` push/pull, state machine for state
//! machine: the nonce is XORed with each MAC, the 32-bit counter increments, and the key is
//! rekeyed when the counter wraps to zero or the tag has the REKEY bit (so `TAG_FINAL` rekeys
//! too). Any tag byte is accepted on pull, as libsodium accepts it.
//!
//! I/O contract: byte slices in, byte slices out; the header comes from the caller.

use crate::chacha::{xor_keystream, xor_keystream_from};
use crate::poly1305::Poly1305;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

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
/// Large messages are encrypted (or authenticated and decrypted) in chunks of this many bytes,
/// each one run through ChaCha20 and Poly1305 while it is in the L1 cache, instead of two
/// passes over the whole message. A multiple of 64 (whole ChaCha20 blocks) and of 16.
const CHUNK: usize = 16 * 1024;

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

/// The 52-byte libsodium state: key, 32-bit counter and 8-byte inonce. Not `Clone`: two
/// copies would encrypt two messages under one key and nonce. Wiped on drop.
struct State {
    k: [u8; 32],
    counter: u32,
    inonce: [u8; 8],
}

impl Drop for State {
    fn drop(&mut self) {
        self.k.zeroize();
        self.inonce.zeroize();
        self.counter.zeroize();
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

    /// XORs this message's keystream from block `counter` on into `data`.
    fn xor(&self, counter: u32, data: &mut [u8]) {
        xor_keystream(&self.k, &self.nonce(), counter, data);
    }

    /// Poly1305 over `block || c || pad || le64(adlen = 0) || le64(64 + len)`, byte for byte
    /// as libsodium feeds it, including its padding quirk `(0x10 - 64 + mlen) & 0xf`.
    fn mac(poly_key: &[u8; 32], block: &[u8; 64], c: &[u8]) -> [u8; 16] {
        let mut mac = Poly1305::new(poly_key);
        mac.update(block);
        mac.update(c);
        Self::mac_finish(mac, c.len())
    }

    /// The padding and length block after the ciphertext, then the tag.
    fn mac_finish(mut mac: Poly1305, len: usize) -> [u8; 16] {
        let pad = (0x10usize.wrapping_sub(64).wrapping_add(len)) & 0xf;
        let mut sizes = [0u8; 16];
        let (_, total) = sizes.split_at_mut(8);
        total.copy_from_slice(&(64u64 + len as u64).to_le_bytes());
        mac.update([0u8; 16].get(..pad).unwrap_or(&[]));
        mac.update(&sizes);
        mac.finalize()
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
        self.xor(0, &mut buf);
        let (a, b) = buf.split_at(32);
        self.k.copy_from_slice(a);
        self.inonce.copy_from_slice(b);
        buf.zeroize();
        self.counter = 1;
    }

    /// The Poly1305 key (block 0) and the tag block (block 1, XORed into `block`).
    fn keys(&self, block: &mut [u8; 64]) -> [u8; 32] {
        let mut ks = [0u8; 128];
        if let Some(b) = ks.get_mut(64..) {
            b.copy_from_slice(block);
        }
        self.xor(0, &mut ks);
        let (k, b) = ks.split_at(64);
        block.copy_from_slice(b);
        let mut poly_key = [0u8; 32];
        poly_key.copy_from_slice(k.split_at(32).0);
        ks.zeroize();
        poly_key
    }
}

/// The sending half (`crypto_secretstream_xchacha20poly1305_init_push` / `_push`).
///
/// Not `Clone` (two copies would reuse keystream and Poly1305 keys); the key and nonce are
/// wiped on drop.
///
/// ```compile_fail
/// let push = noise::sodium_secretstream::Push::new(&[1; 32], &[2; 24]);
/// let copy = push.clone();
/// ```
pub struct Push(State);

impl ZeroizeOnDrop for Push {}

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
            return self.push_small(None, out, len, tag);
        }
        self.push_large(None, out, len, tag);
    }

    /// Encrypts `plaintext` with `tag` into `out`, which must be exactly `plaintext.len() + 17`
    /// bytes (otherwise nothing happens and `false` is returned). Same bytes as
    /// [`Push::push`], without an intermediate copy of the plaintext.
    pub fn push_to(&mut self, plaintext: &[u8], out: &mut [u8], tag: u8) -> bool {
        let len = plaintext.len();
        if out.len() != len + ABYTES {
            return false;
        }
        if len <= SMALL {
            self.push_small(Some(plaintext), out, len, tag);
        } else {
            self.push_large(Some(plaintext), out, len, tag);
        }
        true
    }

    /// Messages above `SMALL`: chunk by chunk, encrypt the plaintext (from `src`, or in place)
    /// and absorb the ciphertext into Poly1305 while it is in cache.
    fn push_large(&mut self, src: Option<&[u8]>, out: &mut [u8], len: usize, tag: u8) {
        let mut block = [0u8; 64];
        block[0] = tag;
        let mut poly_key = self.0.keys(&mut block);
        let (first, rest) = match out.split_first_mut() {
            Some(x) => x,
            None => return,
        };
        *first = block[0];
        let (c, mac_out) = rest.split_at_mut(len);
        let mut poly = Poly1305::new(&poly_key);
        poly_key.zeroize();
        poly.update(&block);
        let mut counter = 2u32;
        let mut src = src.map(|s| s.chunks(CHUNK));
        for chunk in c.chunks_mut(CHUNK) {
            match src.as_mut().and_then(|s| s.next()) {
                Some(plain) => {
                    xor_keystream_from(&self.0.k, &self.0.nonce(), counter, plain, chunk)
                }
                None => self.0.xor(counter, chunk),
            }
            poly.update(chunk);
            counter = counter.wrapping_add((CHUNK / 64) as u32);
        }
        let mac = State::mac_finish(poly, len);
        mac_out.copy_from_slice(&mac);
        self.0.update(&mac, tag);
    }

    /// Small messages: one keystream call covers the Poly1305 key block, the tag block and the
    /// message (they are consecutive ChaCha20 blocks 0, 1, 2...), instead of three calls.
    fn push_small(&mut self, src: Option<&[u8]>, out: &mut [u8], len: usize, tag: u8) {
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
        data.copy_from_slice(src.unwrap_or(plain));
        self.0.xor(0, ks);
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
        self.push_to(plaintext, &mut out, tag);
        out
    }

    #[doc(hidden)]
    /// Test hook: sets the 32-bit counter, as the JS vectors do on the raw libsodium state.
    pub fn set_counter_for_testing(&mut self, counter: u32) {
        self.0.counter = counter;
    }
}

/// The receiving half (`crypto_secretstream_xchacha20poly1305_init_pull` / `_pull`).
///
/// Not `Clone`, like [`Push`]; the key and nonce are wiped on drop.
///
/// ```compile_fail
/// let pull = noise::sodium_secretstream::Pull::new(&[1; 32], &[2; 24]);
/// let copy = pull.clone();
/// ```
pub struct Pull(State);

impl ZeroizeOnDrop for Pull {}

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
    /// `msg[1 .. msg.len() - 16]`. On failure the state is unchanged and no plaintext is left
    /// in `msg`: messages up to 1 KiB are untouched (the MAC is checked before anything is
    /// decrypted), longer ones are decrypted while authenticated and their body is zeroed.
    pub fn pull_in_place(&mut self, msg: &mut [u8]) -> Result<u8, PullError> {
        if msg.len() < ABYTES {
            return Err(PullError::TooShort { len: msg.len() });
        }
        let len = msg.len() - ABYTES;
        if len <= SMALL {
            return self.pull_small(msg, len);
        }
        let (first, rest) = msg
            .split_first_mut()
            .ok_or(PullError::TooShort { len: 0 })?;
        let mut block = [0u8; 64];
        block[0] = *first;
        let mut poly_key = self.0.keys(&mut block);
        let tag = block[0];
        block[0] = *first;
        let (c, stored) = rest.split_at_mut(len);
        let mut poly = Poly1305::new(&poly_key);
        poly_key.zeroize();
        poly.update(&block);
        // Authenticate and decrypt chunk by chunk; if the MAC then fails, the plaintext is
        // wiped before returning, so no byte of a forged message survives.
        let mut counter = 2u32;
        for chunk in c.chunks_mut(CHUNK) {
            poly.update(chunk);
            self.0.xor(counter, chunk);
            counter = counter.wrapping_add((CHUNK / 64) as u32);
        }
        let mac = State::mac_finish(poly, len);
        if !bool::from(mac.as_slice().ct_eq(stored)) {
            c.zeroize();
            return Err(PullError::Auth);
        }
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
        self.0.xor(0, ks);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|j| (j as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    #[test]
    fn round_trips_across_the_small_and_chunk_boundaries() {
        let key = [7u8; 32];
        let header = [9u8; 24];
        let mut push = Push::new(&key, &header);
        let mut pull = Pull::new(&key, &header);
        let sizes = [
            0, 1, 63, 64, 1023, 1024, 1025, 1152, 16383, 16384, 16385, 32768, 32769, 100_003,
        ];
        for (k, &n) in sizes.iter().enumerate() {
            let plain = pattern(n, k as u8);
            let tag = if k % 5 == 4 { TAG_REKEY } else { TAG_MESSAGE };
            let msg = push.push(&plain, tag);
            assert_eq!(msg.len(), n + ABYTES);
            assert_eq!(pull.pull(&msg), Ok((tag, plain)), "size {n}");
        }
    }

    #[test]
    fn a_forged_message_leaves_no_plaintext_and_the_state_unchanged() {
        let key = [3u8; 32];
        let header = [4u8; 24];
        for n in [100usize, 1024, 1025, 20_000, 70_000] {
            let mut push = Push::new(&key, &header);
            let mut pull = Pull::new(&key, &header);
            let plain = pattern(n, 1);
            let msg = push.push(&plain, TAG_MESSAGE);
            for at in [0, 1, n / 2, n + 1, n + 16] {
                let mut bad = msg.clone();
                bad[at] ^= 0x40;
                assert_eq!(
                    pull.pull_in_place(&mut bad),
                    Err(PullError::Auth),
                    "{n} {at}"
                );
                // no plaintext byte is left behind: the body is either the (modified)
                // ciphertext or zeroed
                let body = &bad[1..1 + n];
                let mut orig = msg[1..1 + n].to_vec();
                if (1..1 + n).contains(&at) {
                    orig[at - 1] ^= 0x40;
                }
                assert!(
                    body == &orig[..] || body.iter().all(|&b| b == 0),
                    "{n} {at}"
                );
            }
            // the failed pulls changed nothing: the genuine message still opens
            assert_eq!(pull.pull(&msg), Ok((TAG_MESSAGE, plain)));
            let next = push.push(b"next", TAG_MESSAGE);
            assert_eq!(pull.pull(&next), Ok((TAG_MESSAGE, b"next".to_vec())));
        }
    }
}
