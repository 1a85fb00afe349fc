//! Noise handshakes `Noise_IK_Ed25519_ChaChaPoly_BLAKE2b` and `Noise_XX_Ed25519_ChaChaPoly_BLAKE2b`
//! exactly as `noise-handshake` 4.2.0 with `noise-curve-ed` 2.1.0 runs them, on the `snow`
//! state machine with the primitives of module `resolver` (an Ed25519 DH, ChaChaPoly and
//! BLAKE2b as the JS packages define them).
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

use std::sync::{Arc, Mutex};

use zeroize::Zeroize;

use crate::crypto::{DhError, KeyPair};

mod resolver;

/// Noise's maximum message length. snow refuses longer handshake messages; `noise-handshake`
/// (`cipher.js`) refuses payload ciphertexts above it, which only differs for messages within
/// 96 bytes of the limit (the keys before the payload), far above any hyperdht or
/// secret-stream handshake message.
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

impl Pattern {
    /// The protocol name `noise-handshake` starts the hash with (`noise.js` builds it from
    /// the pattern and `noise-curve-ed`'s `ALG`, `initialise` copies it into the digest); snow
    /// starts from `NoiseParams::name`, so the name replaces the one snow parsed.
    fn name(self) -> &'static str {
        match self {
            Pattern::IK => "Noise_IK_Ed25519_ChaChaPoly_BLAKE2b",
            Pattern::XX => "Noise_XX_Ed25519_ChaChaPoly_BLAKE2b",
        }
    }

    /// snow's parameters: it knows no `Ed25519` DH, so the `25519` choice is parsed and
    /// resolved to `resolver`'s Ed25519 DH, and the name is replaced.
    fn params(self) -> Result<snow::params::NoiseParams, HandshakeError> {
        let parsed = match self {
            Pattern::IK => "Noise_IK_25519_ChaChaPoly_BLAKE2b",
            Pattern::XX => "Noise_XX_25519_ChaChaPoly_BLAKE2b",
        };
        let mut params: snow::params::NoiseParams = parsed.parse().map_err(snow_error)?;
        params.name = self.name().to_owned();
        Ok(params)
    }

    /// The shortest valid message of each step: keys (32 bytes, 48 once encrypted) and the
    /// 16-byte payload tag once a key exists (IK: `e es s ss`, `e ee se`; XX: `e`,
    /// `e ee s es`, `s se`).
    fn min_message_len(self, step: usize) -> usize {
        let table: &[usize] = match self {
            Pattern::IK => &[32 + 48 + 16, 32 + 16],
            Pattern::XX => &[32, 32 + 48 + 16, 48 + 16],
        };
        table.get(step).copied().unwrap_or(0)
    }

    fn message_count(self) -> usize {
        match self {
            Pattern::IK => 2,
            Pattern::XX => 3,
        }
    }
}

/// snow's handshake state for these keys and prologue.
fn build(
    pattern: Pattern,
    role: Role,
    resolver: resolver::Resolver,
    static_seed: &[u8; 32],
    prologue: &[u8],
    remote_static: Option<&[u8; 32]>,
) -> Result<snow::HandshakeState, HandshakeError> {
    let mut builder = snow::Builder::with_resolver(pattern.params()?, Box::new(resolver))
        .local_private_key(static_seed)
        .and_then(|b| b.prologue(prologue))
        .map_err(snow_error)?;
    if let Some(rs) = remote_static {
        builder = builder.remote_public_key(rs).map_err(snow_error)?;
    }
    match role {
        Role::Initiator => builder.build_initiator(),
        Role::Responder => builder.build_responder(),
    }
    .map_err(snow_error)
}

fn snow_error(e: snow::Error) -> HandshakeError {
    HandshakeError::Noise {
        reason: e.to_string(),
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
    /// A handshake message exceeds Noise's 65535-byte limit.
    #[error("handshake message of {len} bytes exceeds the Noise maximum of 65535")]
    TooLong {
        /// Message length.
        len: usize,
    },
    /// A received public key was refused (as libsodium refuses it).
    #[error("invalid remote public key: {0}")]
    InvalidPublicKey(#[from] DhError),
    /// Authentication of an encrypted key or payload failed.
    #[error("handshake decryption failed (wrong key or corrupted message)")]
    Decrypt,
    /// The Noise state machine refused a step for another reason.
    #[error("noise state machine error: {reason}")]
    Noise {
        /// snow's description.
        reason: String,
    },
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
/// Not `Clone`: a copy would encrypt under the same handshake key and nonce. The private keys
/// (seeds) and the handshake cipher keys live in `resolver`'s objects, which wipe them on drop;
/// the chaining key and hash stay in snow's symmetric state, which snow 0.10 frees without
/// wiping.
///
/// ```compile_fail
/// use noise::{Handshake, KeyPair, Pattern, Role};
/// let hs = Handshake::new(Pattern::XX, Role::Initiator, KeyPair::from_seed([1; 32]),
///     KeyPair::from_seed([2; 32]), b"", None).unwrap();
/// let copy = hs.clone();
/// ```
pub struct Handshake {
    pattern: Pattern,
    role: Role,
    state: Box<snow::HandshakeState>,
    dh_error: resolver::DhErrorSlot,
    local_public_key: [u8; 32],
    hash: [u8; 64],
    step: usize,
    failed: bool,
    result: Option<HandshakeResult>,
}

impl std::fmt::Debug for Handshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handshake")
            .field("pattern", &self.pattern)
            .field("role", &self.role)
            .field("step", &self.step)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
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
        let remote_static = match (pattern, role) {
            (Pattern::IK, Role::Initiator) => {
                Some(remote_static.ok_or(HandshakeError::MissingRemoteStatic)?)
            }
            _ => None,
        };
        let dh_error: resolver::DhErrorSlot = Arc::new(Mutex::new(None));
        let local_public_key = *static_keypair.public_key();
        let mut seed = *static_keypair.seed();
        let resolver = resolver::Resolver::new(static_keypair, ephemeral, Arc::clone(&dh_error));
        let state = build(
            pattern,
            role,
            resolver,
            &seed,
            prologue,
            remote_static.as_ref(),
        );
        seed.zeroize();
        let state = state?;
        let mut hs = Self {
            pattern,
            role,
            state: Box::new(state),
            dh_error,
            local_public_key,
            hash: [0; 64],
            step: 0,
            failed: false,
            result: None,
        };
        hs.copy_hash();
        Ok(hs)
    }

    /// Whether the next step is ours to send.
    pub fn is_my_turn(&self) -> bool {
        !self.failed && !self.is_finished() && self.state.is_my_turn()
    }

    /// Whether the handshake completed (see [`Handshake::result`]).
    pub fn is_finished(&self) -> bool {
        self.result.is_some()
    }

    /// The split keys, hash and public keys once finished.
    pub fn result(&self) -> Option<&HandshakeResult> {
        self.result.as_ref()
    }

    /// The peer's static public key as soon as it is known: from the start for an IK
    /// initiator, after message 1 for an IK responder, after the message carrying `s` in XX
    /// (`noise-handshake/noise.js`: the `rs` field, which hyperdht's `noise-wrap.js recv` reads
    /// before the handshake is complete).
    pub fn remote_public_key(&self) -> Option<[u8; 32]> {
        let rs = self.state.get_remote_static()?;
        let mut out = [0u8; 32];
        if rs.len() != out.len() {
            return None;
        }
        out.iter_mut().zip(rs).for_each(|(d, s)| *d = *s);
        Some(out)
    }

    /// Our static public key.
    pub fn local_public_key(&self) -> &[u8; 32] {
        &self.local_public_key
    }

    /// The current handshake hash (the final one once finished).
    pub fn hash(&self) -> &[u8; 64] {
        &self.hash
    }

    fn copy_hash(&mut self) {
        let h = self.state.get_handshake_hash();
        self.hash.iter_mut().zip(h).for_each(|(d, s)| *d = *s);
    }

    fn check_turn(&self, sending: bool) -> Result<(), HandshakeError> {
        if self.failed || self.result.is_some() || self.step >= self.pattern.message_count() {
            return Err(HandshakeError::Finished);
        }
        if self.state.is_my_turn() != sending {
            return Err(HandshakeError::WrongTurn {
                expected: if sending { "receive" } else { "send" },
            });
        }
        Ok(())
    }

    /// Writes the next handshake message carrying `payload`.
    pub fn write_message(&mut self, payload: &[u8]) -> Result<Vec<u8>, HandshakeError> {
        self.check_turn(true)?;
        // room for the keys of any IK or XX message (at most 32 + 48) and the payload tag
        let mut out = vec![0u8; payload.len() + 96];
        let r = match self.state.write_message(payload, &mut out) {
            Ok(n) => {
                out.truncate(n);
                Ok(out)
            }
            Err(snow::Error::Input) => Err(HandshakeError::TooLong {
                len: payload.len() + self.pattern.min_message_len(self.step),
            }),
            Err(e) => Err(self.map_error(e)),
        };
        self.after_step(r.is_ok())?;
        r
    }

    /// Reads the peer's next handshake message and returns its payload.
    pub fn read_message(&mut self, message: &[u8]) -> Result<Vec<u8>, HandshakeError> {
        self.check_turn(false)?;
        let needed = self.pattern.min_message_len(self.step);
        let r = if message.len() < needed {
            Err(HandshakeError::TooShort {
                needed,
                got: message.len(),
            })
        } else if message.len() > MAX_CIPHERTEXT_LEN {
            Err(HandshakeError::TooLong { len: message.len() })
        } else {
            let mut payload = vec![0u8; message.len()];
            match self.state.read_message(message, &mut payload) {
                Ok(n) => {
                    payload.truncate(n);
                    Ok(payload)
                }
                Err(e) => Err(self.map_error(e)),
            }
        };
        self.after_step(r.is_ok())?;
        r
    }

    fn map_error(&self, e: snow::Error) -> HandshakeError {
        match e {
            snow::Error::Decrypt => HandshakeError::Decrypt,
            snow::Error::Dh => {
                let cause = self.dh_error.lock().ok().and_then(|mut s| s.take());
                HandshakeError::InvalidPublicKey(cause.unwrap_or(DhError::NotOnCurve))
            }
            snow::Error::Input => HandshakeError::TooShort {
                needed: self.pattern.min_message_len(self.step),
                got: 0,
            },
            e => snow_error(e),
        }
    }

    /// After a step: a failure kills the handshake; a success advances it and, after the
    /// last message, takes the split keys (`noise-handshake/noise.js final`, which calls
    /// `symmetric-state.js split`).
    fn after_step(&mut self, ok: bool) -> Result<(), HandshakeError> {
        if !ok {
            self.failed = true;
            return Ok(());
        }
        self.step += 1;
        self.copy_hash();
        if !self.state.is_handshake_finished() {
            return Ok(());
        }
        let (mut a, mut b) = self.state.dangerously_get_raw_split();
        let (tx, rx) = match self.role {
            Role::Initiator => (a, b),
            Role::Responder => (b, a),
        };
        a.zeroize();
        b.zeroize();
        let mut remote_public_key = [0u8; 32];
        if let Some(rs) = self.state.get_remote_static() {
            remote_public_key
                .iter_mut()
                .zip(rs)
                .for_each(|(d, s)| *d = *s);
        }
        self.result = Some(HandshakeResult {
            is_initiator: self.role.is_initiator(),
            tx,
            rx,
            hash: self.hash,
            local_public_key: self.local_public_key,
            remote_public_key,
        });
        Ok(())
    }
}
