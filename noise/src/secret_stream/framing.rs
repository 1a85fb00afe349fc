//! The uint24-LE length-prefixed frames of `@hyperswarm/secret-stream/index.js` (`_onrawdata`
//! and `_incoming` parse them; `_write` and `_setupSecretStream` prefix theirs with
//! `writeUint24le`): the queue of outgoing frames and the buffer of received bytes.

use super::StreamError;
use crate::sodium_secretstream::{ABYTES, Push, TAG_MESSAGE};

/// JS `MAX_ATOMIC_WRITE`: the largest frame body, 2^24 - 1 bytes.
pub const MAX_FRAME_LEN: usize = 0xff_ffff;
/// The largest plaintext one write accepts (`MAX_FRAME_LEN - 17`).
pub const MAX_MESSAGE_LEN: usize = MAX_FRAME_LEN - ABYTES;
/// A receive buffer larger than this is released once every byte in it was consumed, so one
/// large frame does not pin its size for the life of the stream; smaller ones are kept for
/// reuse (a stream of messages up to this size allocates nothing per frame).
const RETAIN_MAX: usize = 1 << 20;

pub(super) fn u24(n: usize) -> [u8; 3] {
    let [a, b, c, _] = (n as u32).to_le_bytes();
    [a, b, c]
}

/// Frames waiting for the raw stream: bytes `[sent, end)` of `buf`. The Vec keeps its length
/// past `end`, so frames are encrypted into it without zero-filling it first.
#[derive(Default)]
pub(super) struct SendQueue {
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

    /// Queues `body` as one frame (a handshake message or the header).
    pub(super) fn push_frame(&mut self, body: &[u8]) {
        let frame = self.reserve(3 + body.len());
        let (prefix, rest) = frame.split_at_mut(3);
        prefix.copy_from_slice(&u24(body.len()));
        rest.copy_from_slice(body);
    }

    pub(super) fn pending(&self) -> &[u8] {
        self.buf.get(self.sent..self.end).unwrap_or(&[])
    }

    pub(super) fn consume(&mut self, n: usize) {
        self.sent = (self.sent + n).min(self.end);
        if self.sent == self.end {
            self.end = 0;
            self.sent = 0;
        }
    }

    pub(super) fn swap(&mut self, spare: Vec<u8>) -> Vec<u8> {
        let mut v = std::mem::replace(&mut self.buf, spare);
        v.truncate(self.end);
        v.drain(..self.sent.min(v.len()));
        self.sent = 0;
        self.end = 0;
        v
    }

    /// Encrypts `data` into a new data frame at the end of the queue.
    pub(super) fn push_message(&mut self, push: &mut Push, data: &[u8]) -> Result<(), StreamError> {
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

/// Received raw-stream bytes: `[start, filled)` of `buf` are not yet parsed into frames.
#[derive(Default)]
pub(super) struct RecvBuffer {
    buf: Vec<u8>,
    start: usize,
    filled: usize,
    eof: bool,
    /// The plaintext range of the last message returned.
    last: (usize, usize),
}

impl RecvBuffer {
    pub(super) fn feed(&mut self, data: &[u8]) {
        let dst = self.input_buffer(data.len());
        dst.copy_from_slice(data);
        self.input_filled(data.len());
    }

    pub(super) fn feed_vec(&mut self, data: Vec<u8>) -> Vec<u8> {
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

    pub(super) fn input_buffer(&mut self, want: usize) -> &mut [u8] {
        if self.start == self.filled && self.buf.len() > RETAIN_MAX.max(want) {
            // everything was consumed: let go of the memory a large frame needed
            self.buf = Vec::new();
            self.start = 0;
            self.filled = 0;
            self.last = (0, 0);
        }
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

    pub(super) fn input_filled(&mut self, n: usize) {
        self.filled = (self.filled + n).min(self.buf.len());
    }

    pub(super) fn feed_eof(&mut self) {
        self.eof = true;
    }

    /// Whether the raw stream ended and every complete frame was consumed.
    pub(super) fn is_finished(&self) -> bool {
        self.eof && self.start == self.filled
    }

    /// The next complete frame's body range, consumed; `Ok(None)` while it is incomplete. A
    /// length prefix above `max` is refused before its body is buffered; a frame cut short
    /// by the end of the raw stream is an error.
    pub(super) fn next_frame(&mut self, max: usize) -> Result<Option<(usize, usize)>, StreamError> {
        let avail = self.filled - self.start;
        if avail < 3 {
            return self.incomplete(avail, 3);
        }
        let mut lenb = [0u8; 4];
        if let Some(p) = self.buf.get(self.start..self.start + 3) {
            lenb.iter_mut().zip(p).for_each(|(d, s)| *d = *s);
        }
        let len = u32::from_le_bytes(lenb) as usize;
        if len > max {
            return Err(StreamError::FrameTooLarge { len, max });
        }
        if avail < 3 + len {
            return self.incomplete(avail, 3 + len);
        }
        let body_start = self.start + 3;
        self.start = body_start + len;
        Ok(Some((body_start, body_start + len)))
    }

    fn incomplete(
        &self,
        got: usize,
        expected: usize,
    ) -> Result<Option<(usize, usize)>, StreamError> {
        if self.eof && got > 0 {
            return Err(StreamError::TruncatedFrame { expected, got });
        }
        Ok(None)
    }

    pub(super) fn get(&self, (a, b): (usize, usize)) -> &[u8] {
        self.buf.get(a..b).unwrap_or(&[])
    }

    pub(super) fn get_mut(&mut self, (a, b): (usize, usize)) -> &mut [u8] {
        self.buf.get_mut(a..b).unwrap_or(&mut [])
    }

    /// Records `range` as the last message returned and returns its bytes.
    pub(super) fn set_last(&mut self, range: (usize, usize)) -> &[u8] {
        self.last = range;
        self.get(range)
    }

    pub(super) fn last_message(&self) -> &[u8] {
        self.get(self.last)
    }

    /// Bytes the buffer holds.
    pub(super) fn capacity(&self) -> usize {
        self.buf.len()
    }
}
