//! Noise handshakes `Noise_IK_Ed25519_ChaChaPoly_BLAKE2b` and `Noise_XX_Ed25519_ChaChaPoly_BLAKE2b`
//! exactly as `noise-handshake` 4.2.0 with `noise-curve-ed` 2.1.0 runs them.
//!
//! I/O contract: [`Handshake::write_message`] turns a payload into the next handshake message,
//! [`Handshake::read_message`] turns a received message into its payload. Nothing is framed here
//! (hyperdht carries IK messages inside its own DHT messages; the standalone secret stream frames
//! XX messages with a uint24 length, see [`crate::SecretStream`]). Randomness comes in as the
//! ephemeral key pair given to [`Handshake::new`].
//!
//! ```
//! use noise::{Handshake, KeyPair, Pattern, Role};
//! let server = KeyPair::from_seed([2; 32]);
//! let mut i = Handshake::new(Pattern::IK, Role::Initiator, KeyPair::from_seed([1; 32]),
//!     KeyPair::from_seed([3; 32]), b"", Some(*server.public_key())).unwrap();
//! let mut r = Handshake::new(Pattern::IK, Role::Responder, server, KeyPair::from_seed([4; 32]), b"", None).unwrap();
//! let m1 = i.write_message(b"hi").unwrap();
//! assert_eq!(r.read_message(&m1).unwrap(), b"hi");
//! let m2 = r.write_message(b"").unwrap();
//! i.read_message(&m2).unwrap();
//! let (a, b) = (i.result().unwrap(), r.result().unwrap());
//! assert_eq!((a.tx, a.rx, a.hash), (b.rx, b.tx, b.hash));
//! ```

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

use chacha20poly1305::ChaCha20Poly1305;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use zeroize::Zeroize;

use crate::crypto::{self, DhError, HASHLEN, KeyPair};

/// Noise's maximum ciphertext length; `noise-handshake` refuses longer payload ciphertexts.
pub const MAX_CIPHERTEXT_LEN: usize = 65535;
/// Public key length of `noise-curve-ed`.
pub const PKLEN: usize = 32;
/// Poly1305 tag length.
pub const TAGLEN: usize = 16;

/// A handshake pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pattern {
    /// `IK`: the initiator knows the responder's static key (hyperdht connect).
    IK,
    /// `XX`: both statics travel encrypted (standalone `@hyperswarm/secret-stream`).
    XX,
}

/// Which side of the handshake this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Sends the first message (hyperdht: the connecting peer).
    Initiator,
    /// Receives the first message (hyperdht: the server).
    Responder,
}

impl Role {
    /// Whether this is [`Role::Initiator`].
    pub fn is_initiator(self) -> bool {
        self == Role::Initiator
    }
}

impl From<bool> for Role {
    /// `true` is the initiator, as JS `new NoiseState(pattern, isInitiator, ...)`.
    fn from(is_initiator: bool) -> Self {
        if is_initiator {
            Role::Initiator
        } else {
            Role::Responder
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    E,
    S,
    EE,
    ES,
    SE,
    SS,
}

impl Pattern {
    fn name(self) -> &'static [u8] {
        match self {
            Pattern::IK => b"Noise_IK_Ed25519_ChaChaPoly_BLAKE2b",
            Pattern::XX => b"Noise_XX_Ed25519_ChaChaPoly_BLAKE2b",
        }
    }

    fn messages(self) -> &'static [&'static [Token]] {
        use Token::*;
        match self {
            Pattern::IK => &[&[E, ES, S, SS], &[E, EE, SE]],
            Pattern::XX => &[&[E], &[E, EE, S, ES], &[S, SE]],
        }
    }
}

/// Why a handshake step failed. After any error the handshake is dead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// An IK initiator was created without the responder's static key.
    #[error("IK initiator needs the responder's static public key")]
    MissingRemoteStatic,
    /// `write_message` was called when a message from the peer was due, or the reverse.
    #[error("not our turn: expected to {expected}")]
    WrongTurn {
        /// What the handshake expected next ("send" or "receive").
        expected: &'static str,
    },
    /// The handshake already finished (or failed) and takes no more messages.
    #[error("handshake is already finished or failed")]
    Finished,
    /// The message ended before a key or tag it must contain.
    #[error("handshake message too short: needed {needed} bytes, got {got}")]
    TooShort {
        /// Bytes needed up to the end of the missing field.
        needed: usize,
        /// Bytes in the message.
        got: usize,
    },
    /// A payload ciphertext exceeds Noise's 65535-byte limit.
    #[error("ciphertext of {len} bytes exceeds the Noise maximum of 65535")]
    TooLong {
        /// Ciphertext length.
        len: usize,
    },
    /// A received public key was refused (as libsodium refuses it).
    #[error("invalid remote public key: {0}")]
    InvalidPublicKey(#[from] DhError),
    /// Authentication of an encrypted key or payload failed.
    #[error("handshake decryption failed (wrong key or corrupted message)")]
    Decrypt,
}

/// What a finished handshake yields: what hyperdht hands to `@hyperswarm/secret-stream`.
#[derive(Clone, PartialEq, Eq)]
pub struct HandshakeResult {
    /// Whether this side was the Noise initiator.
    pub is_initiator: bool,
    /// Sending key (`tx`).
    pub tx: [u8; 32],
    /// Receiving key (`rx`).
    pub rx: [u8; 32],
    /// The handshake hash `h` (64 bytes).
    pub hash: [u8; 64],
    /// Our static public key.
    pub local_public_key: [u8; 32],
    /// The peer's static public key.
    pub remote_public_key: [u8; 32],
}

impl std::fmt::Debug for HandshakeResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandshakeResult")
            .field("is_initiator", &self.is_initiator)
            .field("remote_public_key", &self.remote_public_key)
            .finish_non_exhaustive()
    }
}

impl Drop for HandshakeResult {
    fn drop(&mut self) {
        self.tx.zeroize();
        self.rx.zeroize();
    }
}

/// One side of a Noise IK or XX handshake (sans-IO).
///
/// Not `Clone`: a copy would encrypt under the same handshake key and nonce. Key material is
/// wiped on drop.
///
/// ```compile_fail
/// use noise::{Handshake, KeyPair, Pattern, Role};
/// let hs = Handshake::new(Pattern::XX, Role::Initiator, KeyPair::from_seed([1; 32]),
///     KeyPair::from_seed([2; 32]), b"", None).unwrap();
/// let copy = hs.clone();
/// ```
pub struct Handshake {
    pattern: Pattern,
    initiator: bool,
    s: KeyPair,
    e: KeyPair,
    rs: Option<[u8; 32]>,
    re: Option<[u8; 32]>,
    h: [u8; HASHLEN],
    ck: [u8; HASHLEN],
    k: Option<[u8; 32]>,
    n: u64,
    step: usize,
    failed: bool,
    result: Option<HandshakeResult>,
}

impl std::fmt::Debug for Handshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handshake")
            .field("pattern", &self.pattern)
            .field("initiator", &self.initiator)
            .field("step", &self.step)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl Drop for Handshake {
    fn drop(&mut self) {
        self.ck.zeroize();
        if let Some(k) = self.k.as_mut() {
            k.zeroize();
        }
    }
}

impl Handshake {
    /// Starts a handshake. `ephemeral` is this side's ephemeral key pair (draw it from a CSPRNG
    /// with [`KeyPair::generate`]; fixed ones reproduce JS vectors). `remote_static` is required
    /// for an IK initiator and ignored otherwise. hyperdht uses IK with prologue
    /// `NS.PEER_HANDSHAKE`; secret-stream uses XX with an empty prologue.
    pub fn new(
        pattern: Pattern,
        role: Role,
        static_keypair: KeyPair,
        ephemeral: KeyPair,
        prologue: &[u8],
        remote_static: Option<[u8; 32]>,
    ) -> Result<Self, HandshakeError> {
        let is_initiator = role.is_initiator();
        let mut h = [0u8; HASHLEN];
        let name = pattern.name();
        h.iter_mut().zip(name.iter()).for_each(|(d, s)| *d = *s);
        let mut hs = Self {
            pattern,
            initiator: is_initiator,
            s: static_keypair,
            e: ephemeral,
            rs: None,
            re: None,
            h,
            ck: h,
            k: None,
            n: 0,
            step: 0,
            failed: false,
            result: None,
        };
        hs.mix_hash(prologue);
        if pattern == Pattern::IK {
            // pre-message: the responder's static key
            if is_initiator {
                let rs = remote_static.ok_or(HandshakeError::MissingRemoteStatic)?;
                hs.rs = Some(rs);
                hs.mix_hash(&rs);
            } else {
                let pk = *hs.s.public_key();
                hs.mix_hash(&pk);
            }
        }
        Ok(hs)
    }

    /// Whether the next step is ours to send.
    pub fn is_my_turn(&self) -> bool {
        !self.is_finished() && self.step.is_multiple_of(2) == self.initiator
    }

    /// Whether the handshake completed (see [`Handshake::result`]).
    pub fn is_finished(&self) -> bool {
        self.result.is_some()
    }

    /// The split keys, hash and public keys once finished.
    pub fn result(&self) -> Option<&HandshakeResult> {
        self.result.as_ref()
    }

    /// Our static public key.
    pub fn local_public_key(&self) -> &[u8; 32] {
        self.s.public_key()
    }

    /// The current handshake hash (the final one once finished).
    pub fn hash(&self) -> &[u8; 64] {
        &self.h
    }

    fn check_turn(&self, sending: bool) -> Result<&'static [Token], HandshakeError> {
        if self.failed || self.result.is_some() {
            return Err(HandshakeError::Finished);
        }
        let tokens = self
            .pattern
            .messages()
            .get(self.step)
            .copied()
            .ok_or(HandshakeError::Finished)?;
        if self.is_my_turn() != sending {
            return Err(HandshakeError::WrongTurn {
                expected: if sending { "receive" } else { "send" },
            });
        }
        Ok(tokens)
    }

    /// Writes the next handshake message carrying `payload`.
    pub fn write_message(&mut self, payload: &[u8]) -> Result<Vec<u8>, HandshakeError> {
        let tokens = self.check_turn(true)?;
        let r = self.write_inner(tokens, payload);
        if r.is_err() {
            self.failed = true;
        }
        r
    }

    /// Reads the peer's next handshake message and returns its payload.
    pub fn read_message(&mut self, message: &[u8]) -> Result<Vec<u8>, HandshakeError> {
        let tokens = self.check_turn(false)?;
        let r = self.read_inner(tokens, message);
        if r.is_err() {
            self.failed = true;
        }
        r
    }

    fn write_inner(&mut self, tokens: &[Token], payload: &[u8]) -> Result<Vec<u8>, HandshakeError> {
        let mut out = Vec::with_capacity(PKLEN * 2 + TAGLEN * 2 + payload.len());
        for &t in tokens {
            match t {
                Token::E => {
                    let pk = *self.e.public_key();
                    self.mix_hash(&pk);
                    out.extend_from_slice(&pk);
                }
                Token::S => {
                    let pk = *self.s.public_key();
                    let c = self.encrypt_and_hash(&pk)?;
                    out.extend_from_slice(&c);
                }
                _ => self.mix_dh(t)?,
            }
        }
        let c = self.encrypt_and_hash(payload)?;
        out.extend_from_slice(&c);
        self.advance();
        Ok(out)
    }

    fn read_inner(&mut self, tokens: &[Token], message: &[u8]) -> Result<Vec<u8>, HandshakeError> {
        let mut off = 0usize;
        let take = |off: &mut usize, n: usize| -> Result<&[u8], HandshakeError> {
            let end = *off + n;
            let s = message.get(*off..end).ok_or(HandshakeError::TooShort {
                needed: end,
                got: message.len(),
            })?;
            *off = end;
            Ok(s)
        };
        for &t in tokens {
            match t {
                Token::E => {
                    let mut re = [0u8; 32];
                    re.copy_from_slice(take(&mut off, PKLEN)?);
                    self.mix_hash(&re);
                    self.re = Some(re);
                }
                Token::S => {
                    let len = if self.k.is_some() {
                        PKLEN + TAGLEN
                    } else {
                        PKLEN
                    };
                    let c = take(&mut off, len)?;
                    let p = self.decrypt_and_hash(c)?;
                    let mut rs = [0u8; 32];
                    if p.len() != PKLEN {
                        return Err(HandshakeError::Decrypt);
                    }
                    rs.copy_from_slice(&p);
                    self.rs = Some(rs);
                }
                _ => self.mix_dh(t)?,
            }
        }
        let rest = message.get(off..).unwrap_or(&[]);
        let payload = self.decrypt_and_hash(rest)?;
        self.advance();
        Ok(payload)
    }

    fn advance(&mut self) {
        self.step += 1;
        if self.step < self.pattern.messages().len() {
            return;
        }
        let (mut k1, mut k2) = crypto::hkdf2(&self.ck, &[]);
        let mut a = [0u8; 32];
        let mut b = [0u8; 32];
        a.copy_from_slice(k1.split_at(32).0);
        b.copy_from_slice(k2.split_at(32).0);
        k1.zeroize();
        k2.zeroize();
        let (tx, rx) = if self.initiator { (a, b) } else { (b, a) };
        self.result = Some(HandshakeResult {
            is_initiator: self.initiator,
            tx,
            rx,
            hash: self.h,
            local_public_key: *self.s.public_key(),
            remote_public_key: self.rs.unwrap_or([0u8; 32]),
        });
        a.zeroize();
        b.zeroize();
    }

    fn mix_hash(&mut self, data: &[u8]) {
        self.h = crypto::hash(&[&self.h, data]);
    }

    fn mix_dh(&mut self, t: Token) -> Result<(), HandshakeError> {
        // (local static?, remote static?) as noise-handshake's keyPattern
        let (local_static, remote_static) = match t {
            Token::EE => (false, false),
            Token::ES => (!self.initiator, self.initiator),
            Token::SE => (self.initiator, !self.initiator),
            Token::SS => (true, true),
            Token::E | Token::S => return Ok(()),
        };
        let local = if local_static { &self.s } else { &self.e };
        let remote = if remote_static { self.rs } else { self.re };
        // The token order of IK and XX guarantees the remote key is known here.
        let remote = remote.ok_or(HandshakeError::Finished)?;
        let mut shared = crypto::dh(local, &remote)?;
        let (ck, mut k) = crypto::hkdf2(&self.ck, &shared);
        shared.zeroize();
        self.ck = ck;
        let mut key = [0u8; 32];
        key.copy_from_slice(k.split_at(32).0);
        k.zeroize();
        self.k = Some(key);
        self.n = 0;
        Ok(())
    }

    fn nonce(&self) -> [u8; 12] {
        let mut nonce = [0u8; 12];
        nonce
            .iter_mut()
            .skip(4)
            .zip(self.n.to_le_bytes())
            .for_each(|(d, s)| *d = s);
        nonce
    }

    fn encrypt_and_hash(&mut self, plaintext: &[u8]) -> Result<Vec<u8>, HandshakeError> {
        let c = match &self.k {
            None => plaintext.to_vec(),
            Some(k) => {
                let cipher = ChaCha20Poly1305::new(k.into());
                let nonce = self.nonce();
                let c = cipher
                    .encrypt(
                        (&nonce).into(),
                        Payload {
                            msg: plaintext,
                            aad: &self.h,
                        },
                    )
                    .map_err(|_| HandshakeError::TooLong {
                        len: plaintext.len(),
                    })?;
                if c.len() > MAX_CIPHERTEXT_LEN {
                    return Err(HandshakeError::TooLong { len: c.len() });
                }
                self.n += 1;
                c
            }
        };
        self.mix_hash(&c);
        Ok(c)
    }

    fn decrypt_and_hash(&mut self, ciphertext: &[u8]) -> Result<Vec<u8>, HandshakeError> {
        let p = match &self.k {
            None => ciphertext.to_vec(),
            Some(k) => {
                if ciphertext.len() > MAX_CIPHERTEXT_LEN {
                    return Err(HandshakeError::TooLong {
                        len: ciphertext.len(),
                    });
                }
                if ciphertext.len() < TAGLEN {
                    return Err(HandshakeError::TooShort {
                        needed: TAGLEN,
                        got: ciphertext.len(),
                    });
                }
                let cipher = ChaCha20Poly1305::new(k.into());
                let nonce = self.nonce();
                let p = cipher
                    .decrypt(
                        (&nonce).into(),
                        Payload {
                            msg: ciphertext,
                            aad: &self.h,
                        },
                    )
                    .map_err(|_| HandshakeError::Decrypt)?;
                self.n += 1;
                p
            }
        };
        self.mix_hash(ciphertext);
        Ok(p)
    }
}
