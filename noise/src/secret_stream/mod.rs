//! `@hyperswarm/secret-stream` 6.9.2 as a sans-IO state machine.
//!
//! I/O contract: a [`SecretStream`] is a [`SendHalf`] and a [`RecvHalf`] (plus the XX
//! handshake while it runs). Bytes received from the raw stream go into the receive half
//! through [`RecvHalf::feed`] (or [`RecvHalf::input_buffer`] + [`RecvHalf::input_filled`] to
//! avoid a copy) and [`RecvHalf::feed_eof`]; plaintext messages come out of
//! [`SecretStream::poll_message`] with their boundaries; [`SecretStream::write`] turns
//! plaintext into frames that wait in [`SendHalf::outgoing`] until the caller has written them
//! to the raw stream and called [`SendHalf::consume_outgoing`]. [`SecretStream::recv`] and
//! [`SecretStream::send`] reach the halves; [`SecretStream::into_split`] separates them once
//! the handshake is done. No clock: keepalive timing lives in [`KeepAlive`], driven by the
//! caller's `now`. No hidden randomness: it comes in as [`Randomness`].
//!
//! Modules: `framing` (uint24 frames, the send queue and receive buffer), `send`, `recv`,
//! `datagrams`, `keepalive`.
//!
//! Wire format: every frame is `uint24 LE length || body` (body at most 2^24 - 1 bytes). With
//! XX, the first frames in each direction are the handshake messages; then each side sends a
//! 56-byte header frame `streamId(hash, own role) || secretstream header`, and every later frame
//! is one libsodium secretstream message with `TAG_MESSAGE` (plaintext length + 17 bytes).
//! Unordered datagrams (`send()`/`'message'` in JS) are sealed by [`Datagrams`].

use rand_core::{CryptoRng, RngCore};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::crypto::{self, KeyPair, NS_INITIATOR, NS_RESPONDER};
use crate::handshake::{Handshake, HandshakeError, HandshakeResult, Pattern};
use crate::sodium_secretstream::{HEADERBYTES, PullError};

mod datagrams;
mod framing;
mod keepalive;
mod recv;
mod send;

pub use datagrams::{DATAGRAM_OVERHEAD, DatagramError, Datagrams};
pub use framing::{MAX_FRAME_LEN, MAX_MESSAGE_LEN};
pub use keepalive::{HYPERDHT_KEEP_ALIVE, KeepAlive};
pub use recv::RecvHalf;
pub use send::SendHalf;

/// Body length of the header frame: stream id (32) + secretstream header (24).
pub const IDHEADERBYTES: usize = 32 + HEADERBYTES;

/// `NoiseSecretStream.id(handshakeHash, isInitiator)`: keyed BLAKE2b-256 of the role namespace.
pub fn stream_id(handshake_hash: &[u8; 64], is_initiator: bool) -> [u8; 32] {
    let ns = if is_initiator {
        NS_INITIATOR
    } else {
        NS_RESPONDER
    };
    crypto::keyed_hash32(handshake_hash, &[&ns])
}

/// Why a secret stream ended. The first error is sticky: every later call returns it again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// The XX handshake failed (JS: "Noise handshake failed").
    #[error("noise handshake failed: {0}")]
    Handshake(#[from] HandshakeError),
    /// The first frame after the handshake is not 56 bytes (JS: "Invalid header message received").
    #[error("invalid header message: {len} bytes instead of 56")]
    InvalidHeaderLength {
        /// Body length received.
        len: usize,
    },
    /// The header frame carries the wrong stream id (JS: "Invalid header received").
    #[error("invalid header: stream id does not match the handshake")]
    InvalidStreamId,
    /// A data frame shorter than 17 bytes (JS: "Invalid message received").
    #[error("invalid message: {len} bytes is shorter than 17")]
    MessageTooShort {
        /// Body length received.
        len: usize,
    },
    /// A data frame failed authentication: corrupted, truncated, reordered or forged.
    #[error("decryption failed: frame corrupted or forged")]
    Decrypt,
    /// A length prefix above the configured cap.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    FrameTooLarge {
        /// Announced body length.
        len: usize,
        /// Configured cap.
        max: usize,
    },
    /// The raw stream ended inside a frame.
    #[error("raw stream ended inside a frame ({got} of {expected} bytes)")]
    TruncatedFrame {
        /// Bytes of the frame (prefix included) that were expected.
        expected: usize,
        /// Bytes that arrived.
        got: usize,
    },
    /// The raw stream ended before the handshake and header exchange completed.
    #[error("raw stream ended before the secret stream was established")]
    EndedBeforeEstablished,
    /// A write larger than one frame can carry (JS: "Message is too large for an atomic write").
    #[error("message of {len} bytes is too large for an atomic write (max {max})")]
    MessageTooLarge {
        /// Plaintext length.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// A write before our keys exist (XX handshake still running).
    #[error("secret stream not connected yet")]
    NotConnected,
}

impl From<PullError> for StreamError {
    fn from(e: PullError) -> Self {
        match e {
            PullError::TooShort { len } => StreamError::MessageTooShort { len },
            PullError::Auth => StreamError::Decrypt,
        }
    }
}

/// Limits and options, with JS defaults.
#[derive(Debug, Clone)]
pub struct Config {
    /// Largest accepted frame body. Default [`MAX_FRAME_LEN`] (the uint24 maximum, as JS).
    pub max_frame_len: usize,
    /// Drop received empty messages (JS `filterZeroByteMessages`, implied by `keepAlive > 0`).
    /// Default `false`, as JS without keepalive.
    pub filter_zero_byte_messages: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_frame_len: MAX_FRAME_LEN,
            filter_zero_byte_messages: false,
        }
    }
}

/// The random inputs of one secret stream, drawn up front so the core stays deterministic.
#[derive(Clone)]
pub struct Randomness {
    /// Seed of the XX ephemeral key pair (unused when starting from a finished handshake).
    pub ephemeral_seed: [u8; 32],
    /// The secretstream header (`init_push` draws it).
    pub header: [u8; HEADERBYTES],
    /// Start of the datagram nonce counter (`randombytes_buf` in `_setupSecretSend`).
    pub send_counter: [u8; 8],
}

impl std::fmt::Debug for Randomness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Randomness").finish_non_exhaustive()
    }
}

impl Randomness {
    /// Draws everything from `rng`.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        let mut r = Self {
            ephemeral_seed: [0; 32],
            header: [0; HEADERBYTES],
            send_counter: [0; 8],
        };
        rng.fill_bytes(&mut r.ephemeral_seed);
        rng.fill_bytes(&mut r.header);
        rng.fill_bytes(&mut r.send_counter);
        r
    }
}

impl Drop for Randomness {
    fn drop(&mut self) {
        self.ephemeral_seed.zeroize();
    }
}

/// One side of a secret stream (sans-IO): a [`SendHalf`] and a [`RecvHalf`], plus the XX
/// handshake while it runs. See the module docs for the contract.
///
/// Not `Clone`: a copy would encrypt with the same key and nonce sequence. Keys are wiped on
/// drop.
///
/// ```compile_fail
/// use noise::{Config, KeyPair, Randomness, SecretStream};
/// let rand = Randomness { ephemeral_seed: [1; 32], header: [2; 24], send_counter: [3; 8] };
/// let s = SecretStream::new_xx(true, KeyPair::from_seed([4; 32]), rand, Config::default());
/// let copy = s.clone();
/// ```
pub struct SecretStream {
    is_initiator: bool,
    /// The running XX handshake (`None` once finished, or when started from a finished one).
    handshake: Option<Box<Handshake>>,
    /// Our secretstream header and datagram counter start, used when the keys exist.
    header: [u8; HEADERBYTES],
    send_counter: [u8; 8],
    local_public_key: [u8; 32],
    tx: SendHalf,
    rx: RecvHalf,
}

impl ZeroizeOnDrop for SecretStream {}

impl std::fmt::Debug for SecretStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretStream")
            .field("is_initiator", &self.is_initiator)
            .field("established", &self.is_established())
            .field("error", &self.error())
            .finish_non_exhaustive()
    }
}

impl SecretStream {
    fn empty(
        is_initiator: bool,
        config: Config,
        rand: &Randomness,
        handshake: Option<Box<Handshake>>,
    ) -> Self {
        Self {
            is_initiator,
            rx: RecvHalf::new(is_initiator, config, handshake.is_some()),
            handshake,
            header: rand.header,
            send_counter: rand.send_counter,
            local_public_key: [0; 32],
            tx: SendHalf::default(),
        }
    }

    /// Starts from a finished handshake, as hyperdht does (`handshake: {tx, rx, hash, ...}`):
    /// the header frame is queued at once.
    ///
    /// ```
    /// use noise::*;
    /// use rand_core::SeedableRng;
    /// let server = KeyPair::from_seed([2; 32]);
    /// let mut i = Handshake::new(Pattern::IK, Role::Initiator, KeyPair::from_seed([1; 32]),
    ///     KeyPair::from_seed([3; 32]), b"", Some(*server.public_key())).unwrap();
    /// let mut r = Handshake::new(Pattern::IK, Role::Responder, server, KeyPair::from_seed([4; 32]), b"", None).unwrap();
    /// let m1 = i.write_message(b"").unwrap();
    /// r.read_message(&m1).unwrap();
    /// let m2 = r.write_message(b"").unwrap();
    /// i.read_message(&m2).unwrap();
    /// // use a CSPRNG such as rand_core::OsRng; a seeded one keeps the example deterministic
    /// let mut rng = rand_chacha::ChaCha20Rng::from_seed([0; 32]);
    /// let mut a = SecretStream::from_handshake(i.result().unwrap(), Randomness::generate(&mut rng), Config::default());
    /// let mut b = SecretStream::from_handshake(r.result().unwrap(), Randomness::generate(&mut rng), Config::default());
    /// a.write(b"hello").unwrap();
    /// b.recv().feed(a.send_ref().outgoing());
    /// assert_eq!(b.poll_message().unwrap(), Some(&b"hello"[..]));
    /// ```
    pub fn from_handshake(result: &HandshakeResult, rand: Randomness, config: Config) -> Self {
        let mut s = Self::empty(result.is_initiator, config, &rand, None);
        s.start(result);
        s
    }

    /// Starts a standalone secret stream that runs its own XX handshake (empty prologue,
    /// empty payloads) with `keypair` as the static key. An initiator queues message 1 at once.
    pub fn new_xx(is_initiator: bool, keypair: KeyPair, rand: Randomness, config: Config) -> Self {
        let eph = KeyPair::from_seed(rand.ephemeral_seed);
        let hs = Handshake::new(Pattern::XX, is_initiator.into(), keypair, eph, &[], None);
        match hs {
            Ok(hs) => {
                let mut s = Self::empty(is_initiator, config, &rand, Some(Box::new(hs)));
                if is_initiator && let Err(e) = s.handshake_send() {
                    s.fail(e);
                }
                s
            }
            Err(e) => {
                let mut s = Self::empty(is_initiator, config, &rand, None);
                s.fail(e.into());
                s
            }
        }
    }

    /// Whether this side is the Noise initiator.
    pub fn is_initiator(&self) -> bool {
        self.is_initiator
    }

    /// Whether our keys exist, our header is queued and writes are accepted.
    pub fn is_connected(&self) -> bool {
        self.tx.is_connected() && self.rx.error().is_none()
    }

    /// Whether the peer's header arrived too: messages can flow both ways.
    pub fn is_established(&self) -> bool {
        self.rx.is_established()
    }

    /// The handshake hash (zero until the handshake finished).
    pub fn handshake_hash(&self) -> &[u8; 64] {
        self.rx.handshake_hash()
    }

    /// Our static public key (zero until the handshake finished).
    pub fn local_public_key(&self) -> &[u8; 32] {
        &self.local_public_key
    }

    /// The peer's static public key (zero until the handshake finished).
    pub fn remote_public_key(&self) -> &[u8; 32] {
        self.rx.remote_public_key()
    }

    /// The sticky error, if the stream failed.
    pub fn error(&self) -> Option<&StreamError> {
        self.rx.error()
    }

    /// The datagram sealer/opener (`send()`/`'message'`), once the handshake finished.
    pub fn datagrams(&mut self) -> Option<&mut Datagrams> {
        self.rx.datagrams()
    }

    /// The receiving half, for the calls that take input ([`RecvHalf::feed`],
    /// [`RecvHalf::feed_vec`], [`RecvHalf::input_buffer`], [`RecvHalf::feed_eof`], ...).
    /// Messages come from [`SecretStream::poll_message`], which also runs the handshake.
    pub fn recv(&mut self) -> &mut RecvHalf {
        &mut self.rx
    }

    /// The receiving half, read-only ([`RecvHalf::is_finished`], [`RecvHalf::last_message`],
    /// ...).
    pub fn recv_ref(&self) -> &RecvHalf {
        &self.rx
    }

    /// The sending half, for the calls that take outgoing bytes
    /// ([`SendHalf::consume_outgoing`], [`SendHalf::take_outgoing`],
    /// [`SendHalf::swap_outgoing`]). Write with [`SecretStream::write`], which refuses once
    /// the stream failed.
    pub fn send(&mut self) -> &mut SendHalf {
        &mut self.tx
    }

    /// The sending half, read-only ([`SendHalf::outgoing`]).
    pub fn send_ref(&self) -> &SendHalf {
        &self.tx
    }

    /// The handshake finished: both halves take their keys, the header frame is queued
    /// (`_setupSecretStream`).
    fn start(&mut self, result: &HandshakeResult) {
        self.local_public_key = result.local_public_key;
        let id = stream_id(&result.hash, self.is_initiator);
        self.tx.start(&result.tx, &self.header, &id);
        self.rx.start(result, self.send_counter);
        self.send_counter.zeroize();
    }

    fn fail(&mut self, e: StreamError) -> StreamError {
        self.tx.stop();
        self.handshake = None;
        self.rx.fail(e)
    }

    /// Writes our next handshake message, and starts the halves if that was the last one.
    fn handshake_send(&mut self) -> Result<(), StreamError> {
        let Some(hs) = self.handshake.as_mut() else {
            return Ok(());
        };
        let msg = hs.write_message(&[])?;
        self.tx.queue_handshake_message(&msg);
        self.after_handshake_step();
        Ok(())
    }

    fn after_handshake_step(&mut self) {
        let Some(hs) = self.handshake.take_if(|hs| hs.is_finished()) else {
            return;
        };
        if let Some(result) = hs.result() {
            self.start(result);
        }
    }

    /// A received handshake frame: read it, answer if it is our turn.
    fn on_handshake_frame(&mut self, range: (usize, usize)) -> Result<(), StreamError> {
        let Some(hs) = self.handshake.as_mut() else {
            return Err(StreamError::NotConnected);
        };
        hs.read_message(self.rx.frame(range))?;
        if !hs.is_finished() && hs.is_my_turn() {
            self.handshake_send()
        } else {
            self.after_handshake_step();
            Ok(())
        }
    }

    /// Queues one message (JS `write(data)`): a frame of `data.len() + 17` bytes plus prefix.
    pub fn write(&mut self, data: &[u8]) -> Result<(), StreamError> {
        if let Some(e) = self.rx.error() {
            return Err(e.clone());
        }
        self.tx.write(data)
    }

    /// Queues an empty message, as JS `sendKeepAlive()` does when its timer fires.
    pub fn send_keep_alive(&mut self) -> Result<(), StreamError> {
        self.write(&[])
    }

    /// Processes buffered frames (running the handshake while it lasts) and returns the next
    /// plaintext message, `Ok(None)` when more input is needed (or the stream ended cleanly,
    /// see [`RecvHalf::is_finished`]). A bad frame fails the stream: no byte of it is returned,
    /// and the error is sticky.
    pub fn poll_message(&mut self) -> Result<Option<&[u8]>, StreamError> {
        loop {
            let frame = match self.rx.poll_frame() {
                Ok(f) => f,
                Err(e) => return Err(self.fail(e)),
            };
            match frame {
                recv::Frame::Message(range) => return Ok(Some(self.rx.message(range))),
                recv::Frame::Pending => return Ok(None),
                recv::Frame::Handshake(range) => {
                    if let Err(e) = self.on_handshake_frame(range) {
                        return Err(self.fail(e));
                    }
                }
            }
        }
    }

    /// Splits a stream whose handshake is done (our keys exist) into its sending and
    /// receiving halves, which need no shared state, so a connection's writer and reader can
    /// run on different threads. Waiting outgoing bytes (the header frame, queued messages)
    /// stay with the send half; the datagram keys and buffered input with the receive half.
    /// The halves fail independently: a bad frame fails the receive half only, so drop both
    /// when either fails. Returns the stream unchanged while the handshake is running or after
    /// it failed.
    #[allow(clippy::result_large_err)] // the Ok side is as large: it holds the same state
    pub fn into_split(self) -> Result<(SendHalf, RecvHalf), Self> {
        if self.rx.error().is_some() || !self.tx.is_connected() {
            return Err(self);
        }
        Ok((self.tx, self.rx))
    }
}
