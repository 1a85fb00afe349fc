//! The receiving side of a secret stream (`@hyperswarm/secret-stream/index.js` `_onrawdata`:
//! the peer's header frame, then one secretstream message per frame, `_incoming`).

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::framing::RecvBuffer;
use super::{Config, Datagrams, IDHEADERBYTES, StreamError, stream_id};
use crate::handshake::{HandshakeResult, MAX_CIPHERTEXT_LEN};
use crate::sodium_secretstream::{ABYTES, HEADERBYTES, Pull};

/// Where the receiving side is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Frames are Noise handshake messages, handed to the owner of the handshake.
    Handshake,
    /// The next frame is the peer's 56-byte header.
    AwaitHeader,
    /// Frames are secretstream messages.
    Open,
}

/// What [`RecvHalf::poll_frame`] found.
pub(super) enum Frame {
    /// A decrypted message: its plaintext range in the buffer.
    Message((usize, usize)),
    /// A handshake message for the owner of the handshake: its range in the buffer.
    Handshake((usize, usize)),
    /// More input is needed (or the stream ended cleanly).
    Pending,
}

/// The receiving half of a [`super::SecretStream`]: takes the raw stream's bytes, checks the
/// peer's header and returns decrypted messages. It also keeps the datagram keys. A
/// [`super::SecretStream`] is built from one and a [`super::SendHalf`];
/// [`super::SecretStream::into_split`] hands it out on its own.
///
/// Not `Clone`, like [`super::SecretStream`]; keys are wiped on drop.
///
/// ```compile_fail
/// fn copy(half: &noise::RecvHalf) -> noise::RecvHalf {
///     half.clone()
/// }
/// ```
pub struct RecvHalf {
    is_initiator: bool,
    config: Config,
    phase: Phase,
    error: Option<StreamError>,
    /// The receiving key, kept from the handshake until the peer's header arrives.
    rx_key: [u8; 32],
    pull: Option<Pull>,
    hash: [u8; 64],
    remote_public_key: [u8; 32],
    datagrams: Option<Datagrams>,
    input: RecvBuffer,
    data_frames_read: u64,
}

impl Drop for RecvHalf {
    fn drop(&mut self) {
        self.rx_key.zeroize();
        // the datagram keys derive from the handshake hash
        self.hash.zeroize();
    }
}

impl ZeroizeOnDrop for RecvHalf {}

impl std::fmt::Debug for RecvHalf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvHalf")
            .field("is_initiator", &self.is_initiator)
            .field("phase", &self.phase)
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl RecvHalf {
    /// A receiving side that expects handshake frames first (`in_handshake`) or the peer's
    /// header at once.
    pub(super) fn new(is_initiator: bool, config: Config, in_handshake: bool) -> Self {
        Self {
            is_initiator,
            config,
            phase: if in_handshake {
                Phase::Handshake
            } else {
                Phase::AwaitHeader
            },
            error: None,
            rx_key: [0; 32],
            pull: None,
            hash: [0; 64],
            remote_public_key: [0; 32],
            datagrams: None,
            input: RecvBuffer::default(),
            data_frames_read: 0,
        }
    }

    /// Takes the handshake's receiving key and hash; the peer's header frame is next.
    pub(super) fn start(&mut self, result: &HandshakeResult, send_counter: [u8; 8]) {
        self.hash = result.hash;
        self.remote_public_key = result.remote_public_key;
        self.rx_key = result.rx;
        self.datagrams = Some(Datagrams::new(
            &result.hash,
            self.is_initiator,
            send_counter,
        ));
        self.phase = Phase::AwaitHeader;
    }

    /// Fails the half: the error becomes sticky and the keys are dropped.
    pub(super) fn fail(&mut self, e: StreamError) -> StreamError {
        self.error = Some(e.clone());
        self.pull = None;
        self.rx_key.zeroize();
        e
    }

    /// The bytes of a frame [`RecvHalf::poll_frame`] returned.
    pub(super) fn frame(&self, range: (usize, usize)) -> &[u8] {
        self.input.get(range)
    }

    /// Records and returns the message [`RecvHalf::poll_frame`] returned.
    pub(super) fn message(&mut self, range: (usize, usize)) -> &[u8] {
        self.input.set_last(range)
    }

    /// Bytes the receive buffer holds (for tests of its memory use).
    #[doc(hidden)]
    pub fn buffer_capacity(&self) -> usize {
        self.input.capacity()
    }

    /// The largest frame body accepted now: during the handshake a Noise message (at most
    /// 65535 bytes; the XX messages are under 200), then exactly the 56-byte header, then the
    /// configured cap. So a peer cannot make us buffer megabytes before it authenticated.
    fn max_frame_len(&self) -> usize {
        match self.phase {
            Phase::Handshake => MAX_CIPHERTEXT_LEN.min(self.config.max_frame_len),
            Phase::AwaitHeader => IDHEADERBYTES,
            Phase::Open => self.config.max_frame_len,
        }
    }

    /// Processes buffered frames up to the next message or handshake frame. Errors are sticky
    /// and fail the half.
    pub(super) fn poll_frame(&mut self) -> Result<Frame, StreamError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        match self.poll_frame_inner() {
            Ok(f) => Ok(f),
            Err(e) => Err(self.fail(e)),
        }
    }

    fn poll_frame_inner(&mut self) -> Result<Frame, StreamError> {
        loop {
            let max = self.max_frame_len();
            let range = match self.input.next_frame(max) {
                Err(StreamError::FrameTooLarge { len, .. }) if self.phase == Phase::AwaitHeader => {
                    return Err(StreamError::InvalidHeaderLength { len });
                }
                Err(e) => return Err(e),
                Ok(Some(range)) => range,
                Ok(None) => {
                    if self.input.is_finished() && self.phase != Phase::Open {
                        return Err(StreamError::EndedBeforeEstablished);
                    }
                    return Ok(Frame::Pending);
                }
            };
            match self.phase {
                Phase::Handshake => return Ok(Frame::Handshake(range)),
                Phase::AwaitHeader => self.read_header(range)?,
                Phase::Open => {
                    if let Some(m) = self.open_message(range)? {
                        return Ok(Frame::Message(m));
                    }
                }
            }
        }
    }

    /// The peer's header frame (`_onrawdata` before `_setupSecretStream` finished): its
    /// stream id must match the handshake, its secretstream header starts our pull state.
    fn read_header(&mut self, range: (usize, usize)) -> Result<(), StreamError> {
        let body = self.input.get(range);
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
        self.rx_key.zeroize();
        self.phase = Phase::Open;
        Ok(())
    }

    /// A data frame: decrypted in place; its plaintext range, or `None` for a filtered
    /// empty message (a keepalive).
    fn open_message(
        &mut self,
        range: (usize, usize),
    ) -> Result<Option<(usize, usize)>, StreamError> {
        let pull = self.pull.as_mut().ok_or(StreamError::Decrypt)?;
        pull.pull_in_place(self.input.get_mut(range))?;
        self.data_frames_read += 1;
        let (a, b) = range;
        let len = b - a - ABYTES;
        if len == 0 && self.config.filter_zero_byte_messages {
            return Ok(None);
        }
        Ok(Some((a + 1, a + 1 + len)))
    }

    /// Returns the next plaintext message, `Ok(None)` when more input is needed (or the stream
    /// ended cleanly, see [`RecvHalf::is_finished`]). A bad frame fails the half: no byte of
    /// it is returned, and the error is sticky. While the XX handshake runs, only
    /// [`super::SecretStream::poll_message`] can make progress; this returns
    /// [`StreamError::NotConnected`] then and consumes nothing.
    pub fn poll_message(&mut self) -> Result<Option<&[u8]>, StreamError> {
        if self.phase == Phase::Handshake {
            // only the owning SecretStream runs the handshake; nothing is consumed
            return Err(StreamError::NotConnected);
        }
        match self.poll_frame()? {
            Frame::Message(range) => Ok(Some(self.message(range))),
            Frame::Pending => Ok(None),
            // a split half is past the handshake; nothing else can hand it one
            Frame::Handshake(_) => Err(self.fail(StreamError::NotConnected)),
        }
    }

    /// Appends bytes received from the raw stream.
    pub fn feed(&mut self, data: &[u8]) {
        self.input.feed(data);
    }

    /// Appends bytes received from the raw stream, handed over as an owned buffer: when no
    /// partial frame is pending, `data` becomes the receive buffer without a copy and the old
    /// buffer is returned for reuse; otherwise `data` is copied in and returned.
    pub fn feed_vec(&mut self, data: Vec<u8>) -> Vec<u8> {
        self.input.feed_vec(data)
    }

    /// A writable slice of at least `want` bytes at the end of the receive buffer; after
    /// writing `n` bytes into it, call `input_filled(n)`. Once every received byte was
    /// consumed, a buffer that grew past 1 MiB for a large frame is released here.
    pub fn input_buffer(&mut self, want: usize) -> &mut [u8] {
        self.input.input_buffer(want)
    }

    /// Commits `n` bytes written into the slice from `input_buffer`.
    pub fn input_filled(&mut self, n: usize) {
        self.input.input_filled(n);
    }

    /// Notes that the raw stream ended. Unless a frame is cut short, later `poll_message`
    /// calls return `Ok(None)` once everything was read.
    pub fn feed_eof(&mut self) {
        self.input.feed_eof();
    }

    /// Whether the raw stream ended and every complete frame was consumed.
    pub fn is_finished(&self) -> bool {
        self.input.is_finished()
    }

    /// The message the last successful `poll_message` returned (valid until the next call
    /// that feeds input).
    pub fn last_message(&self) -> &[u8] {
        self.input.last_message()
    }

    /// Whether the peer's header arrived (and the half has not failed).
    pub fn is_established(&self) -> bool {
        self.phase == Phase::Open && self.error.is_none()
    }

    /// The sticky error, if this half failed.
    pub fn error(&self) -> Option<&StreamError> {
        self.error.as_ref()
    }

    /// Data frames authenticated so far, filtered empty ones (keepalives) included.
    pub fn data_frames_read(&self) -> u64 {
        self.data_frames_read
    }

    /// Drops received empty messages from now on (JS turns this on with keepalive).
    pub fn set_filter_zero_byte_messages(&mut self, on: bool) {
        self.config.filter_zero_byte_messages = on;
    }

    /// The handshake hash (zero until the handshake finished).
    pub fn handshake_hash(&self) -> &[u8; 64] {
        &self.hash
    }

    /// The peer's static public key (zero until the handshake finished).
    pub fn remote_public_key(&self) -> &[u8; 32] {
        &self.remote_public_key
    }

    /// The datagram sealer/opener (`send()`/`'message'`), once the handshake finished.
    pub fn datagrams(&mut self) -> Option<&mut Datagrams> {
        self.datagrams.as_mut()
    }
}
