//! The sending side of a secret stream (`@hyperswarm/secret-stream/index.js` `_write`,
//! `_setupSecretStream`'s header frame, `_onhandshakert` writing handshake messages,
//! `sendKeepAlive`).

use zeroize::ZeroizeOnDrop;

use super::framing::SendQueue;
use super::{IDHEADERBYTES, StreamError};
use crate::sodium_secretstream::{HEADERBYTES, Push};

/// The sending half of a [`super::SecretStream`]: encrypts messages into frames that wait in
/// [`SendHalf::outgoing`] for the raw stream. A [`super::SecretStream`] is built from one and a
/// [`super::RecvHalf`]; [`super::SecretStream::into_split`] hands it out on its own.
///
/// Not `Clone` (a copy would reuse the key and nonce sequence); the key is wiped on drop.
///
/// ```compile_fail
/// fn copy(half: &noise::SendHalf) -> noise::SendHalf {
///     half.clone()
/// }
/// ```
#[derive(Default)]
pub struct SendHalf {
    /// Our secretstream state, once the handshake gave us a key.
    push: Option<Push>,
    out: SendQueue,
}

impl ZeroizeOnDrop for SendHalf {}

impl std::fmt::Debug for SendHalf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendHalf")
            .field("connected", &self.push.is_some())
            .field("outgoing", &self.out.pending().len())
            .finish_non_exhaustive()
    }
}

impl SendHalf {
    /// Takes the sending key and queues the header frame `stream id || secretstream header`.
    pub(super) fn start(
        &mut self,
        tx_key: &[u8; 32],
        header: &[u8; HEADERBYTES],
        stream_id: &[u8; 32],
    ) {
        self.push = Some(Push::new(tx_key, header));
        let mut body = [0u8; IDHEADERBYTES];
        let (id, h) = body.split_at_mut(32);
        id.copy_from_slice(stream_id);
        h.copy_from_slice(header);
        self.out.push_frame(&body);
    }

    /// Queues a handshake message as one frame.
    pub(super) fn queue_handshake_message(&mut self, msg: &[u8]) {
        self.out.push_frame(msg);
    }

    /// Whether our key exists.
    pub(super) fn is_connected(&self) -> bool {
        self.push.is_some()
    }

    /// Drops the key (the stream failed).
    pub(super) fn stop(&mut self) {
        self.push = None;
    }

    /// Queues one message (JS `write(data)`): a frame of `data.len() + 17` bytes plus prefix.
    pub fn write(&mut self, data: &[u8]) -> Result<(), StreamError> {
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

    /// Marks `n` bytes of [`SendHalf::outgoing`] as written.
    pub fn consume_outgoing(&mut self, n: usize) {
        self.out.consume(n);
    }

    /// Takes all waiting outgoing bytes.
    pub fn take_outgoing(&mut self) -> Vec<u8> {
        self.out.swap(Vec::new())
    }

    /// Takes all waiting outgoing bytes and keeps `spare` as the send buffer (its contents are
    /// ignored and overwritten; its allocation is reused). With `feed_vec` on the peer, frames
    /// move between two streams in one process without a copy.
    pub fn swap_outgoing(&mut self, spare: Vec<u8>) -> Vec<u8> {
        self.out.swap(spare)
    }
}
