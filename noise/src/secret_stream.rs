//! `@hyperswarm/secret-stream` 6.9.2 as a sans-IO state machine.
//!
//! I/O contract: bytes received from the raw stream go in through [`SecretStream::feed`] (or
//! [`SecretStream::input_buffer`] + [`SecretStream::input_filled`] to avoid a copy) and
//! [`SecretStream::feed_eof`]; plaintext messages come out of [`SecretStream::poll_message`]
//! with their boundaries; [`SecretStream::write`] turns plaintext into frames that wait in
//! [`SecretStream::outgoing`] until the caller has written them to the raw stream and called
//! [`SecretStream::consume_outgoing`]. No clock: keepalive timing lives in [`KeepAlive`], driven
//! by the caller's `now`. No hidden randomness: it comes in as [`Randomness`].
//!
//! Wire format: every frame is `uint24 LE length || body` (body at most 2^24 - 1 bytes). With
//! XX, the first frames in each direction are the handshake messages; then each side sends a
//! 56-byte header frame `streamId(hash, own role) || secretstream header`, and every later frame
//! is one libsodium secretstream message with `TAG_MESSAGE` (plaintext length + 17 bytes).
//! Unordered datagrams (`send()`/`'message'` in JS) are sealed by [`Datagrams`].

use std::time::{Duration, Instant};

use crypto_secretbox::XSalsa20Poly1305;
use crypto_secretbox::aead::{AeadInPlace, KeyInit};
use rand_core::{CryptoRng, RngCore};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::crypto::{self, KeyPair, NS_INITIATOR, NS_RESPONDER, NS_SEND};
use crate::handshake::{Handshake, HandshakeError, HandshakeResult, Pattern};
use crate::secretstream::{ABYTES, HEADERBYTES, Pull, PullError, Push, TAG_MESSAGE};

/// JS `MAX_ATOMIC_WRITE`: the largest frame body, 2^24 - 1 bytes.
pub const MAX_FRAME_LEN: usize = 0xff_ffff;
/// The largest plaintext one [`SecretStream::write`] accepts (`MAX_FRAME_LEN - 17`).
pub const MAX_MESSAGE_LEN: usize = MAX_FRAME_LEN - ABYTES;
/// Body length of the header frame: stream id (32) + secretstream header (24).
pub const IDHEADERBYTES: usize = 32 + HEADERBYTES;
/// hyperdht's `connectionKeepAlive` default, 5000 ms.
pub const HYPERDHT_KEEP_ALIVE: Duration = Duration::from_millis(5000);

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

enum Phase {
    Handshake(Box<Handshake>),
    AwaitHeader,
    Open,
}

/// One side of a secret stream (sans-IO). See the module docs for the contract.
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
    config: Config,
    phase: Phase,
    error: Option<StreamError>,
    header: [u8; HEADERBYTES],
    send_counter: [u8; 8],
    push: Option<Push>,
    pull: Option<Pull>,
    rx_key: [u8; 32],
    hash: [u8; 64],
    local_public_key: [u8; 32],
    remote_public_key: [u8; 32],
    datagrams: Option<Datagrams>,
    // receive buffer: bytes [start, filled) are unprocessed
    buf: Vec<u8>,
    start: usize,
    filled: usize,
    eof: bool,
    last: (usize, usize),
    data_frames_read: u64,
    out: SendQueue,
}

impl std::fmt::Debug for SecretStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretStream")
            .field("is_initiator", &self.is_initiator)
            .field("established", &self.is_established())
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl Drop for SecretStream {
    fn drop(&mut self) {
        self.rx_key.zeroize();
        // the datagram keys derive from the handshake hash
        self.hash.zeroize();
    }
}

impl ZeroizeOnDrop for SecretStream {}

/// Frames waiting for the raw stream: bytes `[sent, end)` of `buf`. The Vec keeps its length
/// past `end`, so frames are encrypted into it without zero-filling it first.
#[derive(Default)]
struct SendQueue {
    buf: Vec<u8>,
    end: usize,
    sent: usize,
}

impl SendQueue {
    /// `n` writable bytes at the end of the queue, now part of it. Their old contents are stale
    /// bytes of earlier frames (the caller overwrites them all), so the buffer is only
    /// zero-filled where it grows.
    fn reserve(&mut self, n: usize) -> &mut [u8] {
        if self.sent == self.end {
            self.sent = 0;
            self.end = 0;
        }
        let at = self.end;
        if self.buf.len() < at + n {
            self.buf.resize(at + n, 0);
        }
        self.end = at + n;
        self.buf.get_mut(at..at + n).unwrap_or(&mut [])
    }

    fn append(&mut self, bytes: &[u8]) {
        self.reserve(bytes.len()).copy_from_slice(bytes);
    }

    fn pending(&self) -> &[u8] {
        self.buf.get(self.sent..self.end).unwrap_or(&[])
    }

    fn consume(&mut self, n: usize) {
        self.sent = (self.sent + n).min(self.end);
        if self.sent == self.end {
            self.end = 0;
            self.sent = 0;
        }
    }

    fn swap(&mut self, spare: Vec<u8>) -> Vec<u8> {
        let mut v = std::mem::replace(&mut self.buf, spare);
        v.truncate(self.end);
        v.drain(..self.sent.min(v.len()));
        self.sent = 0;
        self.end = 0;
        v
    }

    /// Encrypts `data` into a new data frame at the end of the queue.
    fn push_message(&mut self, push: &mut Push, data: &[u8]) -> Result<(), StreamError> {
        if data.len() > MAX_MESSAGE_LEN {
            return Err(StreamError::MessageTooLarge {
                len: data.len(),
                max: MAX_MESSAGE_LEN,
            });
        }
        let body = data.len() + ABYTES;
        let frame = self.reserve(3 + body);
        let (prefix, msg) = frame.split_at_mut(3);
        prefix.copy_from_slice(&u24(body));
        push.push_to(data, msg, TAG_MESSAGE);
        Ok(())
    }
}

impl SecretStream {
    fn empty(is_initiator: bool, config: Config, rand: &Randomness, phase: Phase) -> Self {
        Self {
            is_initiator,
            config,
            phase,
            error: None,
            header: rand.header,
            send_counter: rand.send_counter,
            push: None,
            pull: None,
            rx_key: [0; 32],
            hash: [0; 64],
            local_public_key: [0; 32],
            remote_public_key: [0; 32],
            datagrams: None,
            buf: Vec::new(),
            start: 0,
            filled: 0,
            eof: false,
            last: (0, 0),
            data_frames_read: 0,
            out: SendQueue::default(),
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
    /// b.feed(a.outgoing());
    /// assert_eq!(b.poll_message().unwrap(), Some(&b"hello"[..]));
    /// ```
    pub fn from_handshake(result: &HandshakeResult, rand: Randomness, config: Config) -> Self {
        let mut s = Self::empty(result.is_initiator, config, &rand, Phase::AwaitHeader);
        s.setup(result);
        s
    }

    /// Starts a standalone secret stream that runs its own XX handshake (empty prologue,
    /// empty payloads) with `keypair` as the static key. An initiator queues message 1 at once.
    pub fn new_xx(is_initiator: bool, keypair: KeyPair, rand: Randomness, config: Config) -> Self {
        let eph = KeyPair::from_seed(rand.ephemeral_seed);
        let hs = Handshake::new(Pattern::XX, is_initiator.into(), keypair, eph, &[], None);
        let mut s = match hs {
            Ok(hs) => Self::empty(is_initiator, config, &rand, Phase::Handshake(Box::new(hs))),
            Err(e) => {
                let mut s = Self::empty(is_initiator, config, &rand, Phase::AwaitHeader);
                s.error = Some(e.into());
                return s;
            }
        };
        if is_initiator && let Err(e) = s.handshake_send() {
            s.error = Some(e);
        }
        s
    }

    /// Whether this side is the Noise initiator.
    pub fn is_initiator(&self) -> bool {
        self.is_initiator
    }

    /// Whether our keys exist, our header is queued and writes are accepted.
    pub fn is_connected(&self) -> bool {
        self.push.is_some() && self.error.is_none()
    }

    /// Whether the peer's header arrived too: messages can flow both ways.
    pub fn is_established(&self) -> bool {
        matches!(self.phase, Phase::Open) && self.error.is_none()
    }

    /// The handshake hash (zero until the handshake finished).
    pub fn handshake_hash(&self) -> &[u8; 64] {
        &self.hash
    }

    /// Our static public key (zero until the handshake finished).
    pub fn local_public_key(&self) -> &[u8; 32] {
        &self.local_public_key
    }

    /// The peer's static public key (zero until the handshake finished).
    pub fn remote_public_key(&self) -> &[u8; 32] {
        &self.remote_public_key
    }

    /// The sticky error, if the stream failed.
    pub fn error(&self) -> Option<&StreamError> {
        self.error.as_ref()
    }

    /// The datagram sealer/opener (`send()`/`'message'`), once the handshake finished.
    pub fn datagrams(&mut self) -> Option<&mut Datagrams> {
        self.datagrams.as_mut()
    }

    fn setup(&mut self, result: &HandshakeResult) {
        self.hash = result.hash;
        self.local_public_key = result.local_public_key;
        self.remote_public_key = result.remote_public_key;
        self.rx_key = result.rx;
        let push = Push::new(&result.tx, &self.header);
        self.push = Some(push);
        let id = stream_id(&result.hash, self.is_initiator);
        self.out.append(&u24(IDHEADERBYTES));
        self.out.append(&id);
        self.out.append(&self.header);
        self.datagrams = Some(Datagrams::new(
            &result.hash,
            self.is_initiator,
            self.send_counter,
        ));
        self.phase = Phase::AwaitHeader;
    }

    fn handshake_send(&mut self) -> Result<(), StreamError> {
        let Phase::Handshake(hs) = &mut self.phase else {
            return Ok(());
        };
        let msg = hs.write_message(&[])?;
        self.out.append(&u24(msg.len()));
        self.out.append(&msg);
        self.after_handshake_step();
        Ok(())
    }

    fn after_handshake_step(&mut self) {
        let Phase::Handshake(hs) = &self.phase else {
            return;
        };
        if let Some(result) = hs.result() {
            let result = result.clone();
            self.setup(&result);
        }
    }

    /// Queues one message (JS `write(data)`): a frame of `data.len() + 17` bytes plus prefix.
    pub fn write(&mut self, data: &[u8]) -> Result<(), StreamError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        let push = self.push.as_mut().ok_or(StreamError::NotConnected)?;
        self.out.push_message(push, data)
    }

    /// Queues an empty message, as JS `sendKeepAlive()` does when its timer fires.
    pub fn send_keep_alive(&mut self) -> Result<(), StreamError> {
        self.write(&[])
    }

    /// Bytes waiting to be written to the raw stream.
    pub fn outgoing(&self) -> &[u8] {
        self.out.pending()
    }

    /// Marks `n` bytes of [`SecretStream::outgoing`] as written.
    pub fn consume_outgoing(&mut self, n: usize) {
        self.out.consume(n);
    }

    /// Takes all waiting outgoing bytes.
    pub fn take_outgoing(&mut self) -> Vec<u8> {
        self.out.swap(Vec::new())
    }

    /// Takes all waiting outgoing bytes and keeps `spare` as the send buffer (its contents are
    /// ignored and overwritten; its allocation is reused). With [`SecretStream::feed_vec`] on
    /// the peer, frames move between two streams in one process without a copy.
    pub fn swap_outgoing(&mut self, spare: Vec<u8>) -> Vec<u8> {
        self.out.swap(spare)
    }

    /// Splits a stream whose handshake is done (our keys exist) into a sending and a receiving
    /// half that need no shared state, so a connection's writer and reader can run on different
    /// threads. Waiting outgoing bytes (the header frame, queued messages) move to the send
    /// half; the datagram keys and buffered input stay with the receive half. The halves fail
    /// independently: a bad frame fails the receive half only, so drop both when either fails.
    /// Returns the stream unchanged while the handshake is running or after it failed.
    #[allow(clippy::result_large_err)] // the Ok side is as large: it holds the same state
    pub fn into_split(mut self) -> Result<(SendHalf, RecvHalf), Self> {
        if self.error.is_some() {
            return Err(self);
        }
        let Some(push) = self.push.take() else {
            return Err(self);
        };
        let out = std::mem::take(&mut self.out);
        Ok((SendHalf { push, out }, RecvHalf(self)))
    }

    /// Appends bytes received from the raw stream.
    pub fn feed(&mut self, data: &[u8]) {
        let dst = self.input_buffer(data.len());
        dst.copy_from_slice(data);
        self.input_filled(data.len());
    }

    /// Appends bytes received from the raw stream, handed over as an owned buffer: when no
    /// partial frame is pending, `data` becomes the receive buffer without a copy and the old
    /// buffer is returned for reuse; otherwise `data` is copied in and returned.
    pub fn feed_vec(&mut self, data: Vec<u8>) -> Vec<u8> {
        if self.start != self.filled {
            self.feed(&data);
            return data;
        }
        let n = data.len();
        let old = std::mem::replace(&mut self.buf, data);
        self.start = 0;
        self.filled = n;
        self.last = (0, 0);
        old
    }

    /// A writable slice of at least `want` bytes at the end of the receive buffer; after
    /// writing `n` bytes into it, call [`SecretStream::input_filled`]`(n)`.
    pub fn input_buffer(&mut self, want: usize) -> &mut [u8] {
        if self.start > 0 && (self.start == self.filled || self.start >= self.buf.len() / 2) {
            self.buf.copy_within(self.start..self.filled, 0);
            self.filled -= self.start;
            self.start = 0;
        }
        if self.buf.len() < self.filled + want {
            self.buf.resize(self.filled + want, 0);
        }
        let filled = self.filled;
        self.buf.get_mut(filled..filled + want).unwrap_or(&mut [])
    }

    /// Commits `n` bytes written into [`SecretStream::input_buffer`].
    pub fn input_filled(&mut self, n: usize) {
        self.filled = (self.filled + n).min(self.buf.len());
    }

    /// Notes that the raw stream ended. Unless a frame is cut short, later
    /// [`SecretStream::poll_message`] calls return `Ok(None)` once everything was read.
    pub fn feed_eof(&mut self) {
        self.eof = true;
    }

    /// Whether the raw stream ended and every complete frame was consumed.
    pub fn is_finished(&self) -> bool {
        self.eof && self.start == self.filled
    }

    fn fail(&mut self, e: StreamError) -> StreamError {
        self.error = Some(e.clone());
        self.push = None;
        self.pull = None;
        e
    }

    /// Processes buffered frames and returns the next plaintext message, `Ok(None)` when more
    /// input is needed (or the stream ended cleanly, see [`SecretStream::is_finished`]). A bad
    /// frame fails the stream: no byte of it is returned, and the error is sticky.
    pub fn poll_message(&mut self) -> Result<Option<&[u8]>, StreamError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        loop {
            let avail = self.filled - self.start;
            if avail < 3 {
                return self.check_eof(avail, 3).map(|_| None);
            }
            let mut lenb = [0u8; 4];
            if let Some(p) = self.buf.get(self.start..self.start + 3) {
                lenb.iter_mut().zip(p).for_each(|(d, s)| *d = *s);
            }
            let len = u32::from_le_bytes(lenb) as usize;
            if len > self.config.max_frame_len {
                let max = self.config.max_frame_len;
                return Err(self.fail(StreamError::FrameTooLarge { len, max }));
            }
            if avail < 3 + len {
                return self.check_eof(avail, 3 + len).map(|_| None);
            }
            let body_start = self.start + 3;
            let body_end = body_start + len;
            self.start = body_end;
            match self.process_frame(body_start, body_end) {
                Err(e) => return Err(self.fail(e)),
                Ok(None) => continue,
                Ok(Some((a, b))) => {
                    self.last = (a, b);
                    return Ok(self.buf.get(a..b));
                }
            }
        }
    }

    /// The message the last successful [`SecretStream::poll_message`] returned (valid until
    /// the next call that feeds input).
    pub fn last_message(&self) -> &[u8] {
        self.buf.get(self.last.0..self.last.1).unwrap_or(&[])
    }

    /// Data frames authenticated so far, filtered empty ones (keepalives) included.
    pub fn data_frames_read(&self) -> u64 {
        self.data_frames_read
    }

    /// Drops received empty messages from now on (JS turns this on with keepalive).
    pub fn set_filter_zero_byte_messages(&mut self, on: bool) {
        self.config.filter_zero_byte_messages = on;
    }

    fn check_eof(&mut self, got: usize, expected: usize) -> Result<(), StreamError> {
        if !self.eof {
            return Ok(());
        }
        if got > 0 {
            return Err(self.fail(StreamError::TruncatedFrame { expected, got }));
        }
        if !matches!(self.phase, Phase::Open) {
            return Err(self.fail(StreamError::EndedBeforeEstablished));
        }
        Ok(())
    }

    /// Handles the frame body at `buf[a..b]`; returns the plaintext range of a data frame.
    fn process_frame(&mut self, a: usize, b: usize) -> Result<Option<(usize, usize)>, StreamError> {
        match &mut self.phase {
            Phase::Handshake(hs) => {
                let msg = self.buf.get(a..b).unwrap_or(&[]);
                hs.read_message(msg)?;
                if !hs.is_finished() && hs.is_my_turn() {
                    self.handshake_send()?;
                } else {
                    self.after_handshake_step();
                }
                Ok(None)
            }
            Phase::AwaitHeader => {
                let body = self.buf.get(a..b).unwrap_or(&[]);
                if body.len() != IDHEADERBYTES {
                    return Err(StreamError::InvalidHeaderLength { len: body.len() });
                }
                let (id, header) = body.split_at(32);
                let expected = stream_id(&self.hash, !self.is_initiator);
                if !bool::from(expected.as_slice().ct_eq(id)) {
                    return Err(StreamError::InvalidStreamId);
                }
                let mut h = [0u8; HEADERBYTES];
                h.copy_from_slice(header);
                self.pull = Some(Pull::new(&self.rx_key, &h));
                self.phase = Phase::Open;
                Ok(None)
            }
            Phase::Open => {
                let pull = self.pull.as_mut().ok_or(StreamError::Decrypt)?;
                let body = self.buf.get_mut(a..b).unwrap_or(&mut []);
                pull.pull_in_place(body)?;
                self.data_frames_read += 1;
                let len = b - a - ABYTES;
                if len == 0 && self.config.filter_zero_byte_messages {
                    return Ok(None);
                }
                Ok(Some((a + 1, a + 1 + len)))
            }
        }
    }
}

/// The sending half of a split [`SecretStream`] ([`SecretStream::into_split`]): encrypts
/// messages into frames that wait in [`SendHalf::outgoing`] for the raw stream.
///
/// Not `Clone` (a copy would reuse the key and nonce sequence); the key is wiped on drop.
///
/// ```compile_fail
/// fn copy(half: &noise::SendHalf) -> noise::SendHalf {
///     half.clone()
/// }
/// ```
pub struct SendHalf {
    push: Push,
    out: SendQueue,
}

impl std::fmt::Debug for SendHalf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendHalf")
            .field("outgoing", &self.out.pending().len())
            .finish_non_exhaustive()
    }
}

impl SendHalf {
    /// Queues one message, as [`SecretStream::write`].
    pub fn write(&mut self, data: &[u8]) -> Result<(), StreamError> {
        self.out.push_message(&mut self.push, data)
    }

    /// Queues an empty message (a keepalive).
    pub fn send_keep_alive(&mut self) -> Result<(), StreamError> {
        self.write(&[])
    }

    /// Bytes waiting to be written to the raw stream.
    pub fn outgoing(&self) -> &[u8] {
        self.out.pending()
    }

    /// Marks `n` bytes of [`SendHalf::outgoing`] as written.
    pub fn consume_outgoing(&mut self, n: usize) {
        self.out.consume(n);
    }

    /// Takes all waiting outgoing bytes.
    pub fn take_outgoing(&mut self) -> Vec<u8> {
        self.out.swap(Vec::new())
    }

    /// As [`SecretStream::swap_outgoing`].
    pub fn swap_outgoing(&mut self, spare: Vec<u8>) -> Vec<u8> {
        self.out.swap(spare)
    }
}

/// The receiving half of a split [`SecretStream`] ([`SecretStream::into_split`]): takes the
/// raw stream's bytes, checks the peer's header and returns decrypted messages. It also keeps
/// the datagram keys.
///
/// Not `Clone`, like [`SecretStream`]; keys are wiped on drop.
///
/// ```compile_fail
/// fn copy(half: &noise::RecvHalf) -> noise::RecvHalf {
///     half.clone()
/// }
/// ```
#[derive(Debug)]
pub struct RecvHalf(SecretStream);

impl RecvHalf {
    /// As [`SecretStream::feed`].
    pub fn feed(&mut self, data: &[u8]) {
        self.0.feed(data);
    }

    /// As [`SecretStream::feed_vec`].
    pub fn feed_vec(&mut self, data: Vec<u8>) -> Vec<u8> {
        self.0.feed_vec(data)
    }

    /// As [`SecretStream::input_buffer`].
    pub fn input_buffer(&mut self, want: usize) -> &mut [u8] {
        self.0.input_buffer(want)
    }

    /// As [`SecretStream::input_filled`].
    pub fn input_filled(&mut self, n: usize) {
        self.0.input_filled(n);
    }

    /// As [`SecretStream::feed_eof`].
    pub fn feed_eof(&mut self) {
        self.0.feed_eof();
    }

    /// As [`SecretStream::is_finished`].
    pub fn is_finished(&self) -> bool {
        self.0.is_finished()
    }

    /// As [`SecretStream::poll_message`].
    pub fn poll_message(&mut self) -> Result<Option<&[u8]>, StreamError> {
        self.0.poll_message()
    }

    /// As [`SecretStream::last_message`].
    pub fn last_message(&self) -> &[u8] {
        self.0.last_message()
    }

    /// Whether the peer's header arrived (and the half has not failed).
    pub fn is_established(&self) -> bool {
        self.0.is_established()
    }

    /// The sticky error, if this half failed.
    pub fn error(&self) -> Option<&StreamError> {
        self.0.error()
    }

    /// As [`SecretStream::data_frames_read`].
    pub fn data_frames_read(&self) -> u64 {
        self.0.data_frames_read()
    }

    /// As [`SecretStream::set_filter_zero_byte_messages`].
    pub fn set_filter_zero_byte_messages(&mut self, on: bool) {
        self.0.set_filter_zero_byte_messages(on);
    }

    /// The handshake hash.
    pub fn handshake_hash(&self) -> &[u8; 64] {
        self.0.handshake_hash()
    }

    /// The peer's static public key.
    pub fn remote_public_key(&self) -> &[u8; 32] {
        self.0.remote_public_key()
    }

    /// The datagram sealer/opener.
    pub fn datagrams(&mut self) -> Option<&mut Datagrams> {
        self.0.datagrams()
    }
}

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

impl ZeroizeOnDrop for SendHalf {}
impl ZeroizeOnDrop for RecvHalf {}
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

/// JS keepalive timing (`Timeout.on(ms)` refreshed by every write) without a clock: the caller
/// reports writes and polls with its own `now`; when [`KeepAlive::poll`] says so, call
/// [`SecretStream::send_keep_alive`].
#[derive(Debug, Clone)]
pub struct KeepAlive {
    interval: Duration,
    deadline: Instant,
}

impl KeepAlive {
    /// A timer that fires `interval` after `now` unless a write refreshes it.
    pub fn new(interval: Duration, now: Instant) -> Self {
        Self {
            interval,
            deadline: now + interval,
        }
    }

    /// Restarts the interval (JS refreshes the timer on every write).
    pub fn on_write(&mut self, now: Instant) {
        self.deadline = now + self.interval;
    }

    /// When the timer next fires.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Whether a keepalive is due at `now`; if so the timer re-arms for `now + interval`.
    pub fn poll(&mut self, now: Instant) -> bool {
        if now < self.deadline {
            return false;
        }
        self.deadline = now + self.interval;
        true
    }
}

fn u24(n: usize) -> [u8; 3] {
    let b = (n as u32).to_le_bytes();
    [b[0], b[1], b[2]]
}
