//! One protomux frame (one secret-stream message) as bytes.
//!
//! JS: protomux 3.12.1 `index.js`. Every frame starts with a `uint` channel id: the *sender's*
//! local id of the channel, or 0 for the control session. Then a `uint` type:
//!
//! - channel `n > 0`: `[n, type, payload...]`, a message of the channel (`Channel.addMessage`
//!   `send`); the payload is the rest of the frame.
//! - control type 1 open: `[0, 1, uint localId, string protocol, uint len + id bytes (0 = no
//!   id), handshake...]` (`Channel.open`); the handshake is the rest of the frame.
//! - control type 2 reject: `[0, 2, uint remoteId]` (`_rejectSession`): the id is the one the
//!   *receiver* chose in its open.
//! - control type 3 close: `[0, 3, uint localId]` (`Channel.close`).
//! - control type 0 batch: `[0, 0, uint channel, entries...]` (`_sendBatch`), each entry a
//!   `buffer` holding `[type, payload...]` of the current channel, or a 0 byte followed by the
//!   `uint` of the channel the next entries belong to. Control frames inside a batch are entries
//!   of channel 0 (their leading 0 dropped).
//! - other control types are ignored by JS; they decode here as [`Frame::UnknownControl`].
//!
//! Decoding follows JS's `_ondata`/`_decode`/`_onbatch` reads, leniencies included: an entry
//! length running past the end of the batch is cut at the end (JS clamps it), bytes after a
//! reject or close are ignored, and an empty frame is [`Frame::Empty`] (JS ignores it).
//! Protocol names are read as UTF-8 with invalid sequences replaced, as JS's string decoder
//! does.

use crate::codec::{Decode, DecodeError, DecodeErrorKind, Encode, Reader, Writer};

/// Batches inside batches deeper than this are refused ([`DecodeErrorKind::Invalid`]). JS
/// never sends a nested batch (its `_sendBatch` writes control frames as channel-0 entries,
/// never another batch) but decodes them recursively without a limit.
pub const MAX_BATCH_DEPTH: usize = 8;

/// A channel open (`Channel.open`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Open {
    /// The sender's local id of the channel (never 0 from JS; 0 is answered with a reject).
    pub local_id: u64,
    /// The protocol name.
    pub protocol: String,
    /// The channel id (`optionalBuffer`: an empty one is `None`, as in JS).
    pub id: Option<Vec<u8>>,
    /// The encoded handshake: every byte after the id.
    pub handshake: Vec<u8>,
}

/// A channel message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The sender's local id of the channel (> 0).
    pub channel: u64,
    /// The message type: its index in the channel's `addMessage` order.
    pub kind: u64,
    /// The encoded message: every byte after the type.
    pub payload: Vec<u8>,
}

/// One decoded frame, or one entry of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// An empty frame (ignored by JS).
    Empty,
    /// A channel message.
    Message(Message),
    /// Control type 1.
    Open(Open),
    /// Control type 2: the receiver's open of `remote_id` was refused.
    Reject {
        /// The id the receiver of this frame chose in its open.
        remote_id: u64,
    },
    /// Control type 3: the sender closed its channel `local_id`.
    Close {
        /// The sender's local id.
        local_id: u64,
    },
    /// Control type 0: frames in order (messages of several channels, control frames).
    Batch(Vec<Frame>),
    /// A control type JS ignores (4 and above).
    UnknownControl {
        /// The type on the wire.
        kind: u64,
    },
}

impl Frame {
    /// The encoding without the leading channel id, as batch entries carry it, and that id.
    fn encode_body(&self, out: &mut Vec<u8>) -> u64 {
        match self {
            Frame::Empty => 0,
            Frame::Message(m) => {
                out.put_uint(m.kind);
                out.put_bytes(&m.payload);
                m.channel
            }
            Frame::Open(o) => {
                out.put_uint(1);
                out.put_uint(o.local_id);
                out.put_string(&o.protocol);
                out.put_buffer(o.id.as_deref().unwrap_or_default());
                out.put_bytes(&o.handshake);
                0
            }
            Frame::Reject { remote_id } => {
                out.put_uint(2);
                out.put_uint(*remote_id);
                0
            }
            Frame::Close { local_id } => {
                out.put_uint(3);
                out.put_uint(*local_id);
                0
            }
            Frame::UnknownControl { kind } => {
                out.put_uint(*kind);
                0
            }
            Frame::Batch(entries) => {
                out.put_uint(0);
                let mut current = None;
                for e in entries.iter().filter(|e| **e != Frame::Empty) {
                    let mut body = Vec::new();
                    let channel = e.encode_body(&mut body);
                    match current {
                        None => out.put_uint(channel),
                        Some(c) if c != channel => {
                            out.push(0);
                            out.put_uint(channel);
                        }
                        Some(_) => {}
                    }
                    current = Some(channel);
                    out.put_buffer(&body);
                }
                if current.is_none() {
                    // JS never sends an empty batch; this one decodes back as empty.
                    out.put_uint(0);
                }
                0
            }
        }
    }

    fn decode_body(channel: u64, r: &mut Reader<'_>, depth: usize) -> Result<Frame, DecodeError> {
        let kind = r.uint()?;
        if channel != 0 {
            return Ok(Frame::Message(Message {
                channel,
                kind,
                payload: r.remaining().to_vec(),
            }));
        }
        match kind {
            0 => decode_batch(r, depth + 1),
            1 => {
                let local_id = r.uint()?;
                let protocol = String::from_utf8_lossy(r.buffer()?).into_owned();
                let id = r.buffer()?;
                Ok(Frame::Open(Open {
                    local_id,
                    protocol,
                    id: (!id.is_empty()).then(|| id.to_vec()),
                    handshake: r.remaining().to_vec(),
                }))
            }
            2 => Ok(Frame::Reject {
                remote_id: r.uint()?,
            }),
            3 => Ok(Frame::Close {
                local_id: r.uint()?,
            }),
            kind => Ok(Frame::UnknownControl { kind }),
        }
    }
}

/// `_onbatch`: entries until the end, each decoded inside its own window.
fn decode_batch(r: &mut Reader<'_>, depth: usize) -> Result<Frame, DecodeError> {
    if depth > MAX_BATCH_DEPTH {
        return Err(r.error_at(
            r.offset(),
            DecodeErrorKind::Invalid("protomux batches nested too deep"),
        ));
    }
    let mut channel = r.uint()?;
    let mut entries = Vec::new();
    while !r.is_empty() {
        let len = r.uint()?;
        if len == 0 {
            channel = r.uint()?;
            continue;
        }
        let start = r.offset();
        let rest = r.remaining();
        // JS clamps an entry that claims more than the batch holds.
        let take = usize::try_from(len).unwrap_or(usize::MAX).min(rest.len());
        let window = r.bytes(take as u64)?;
        let mut inner = Reader::new(window);
        let frame = Frame::decode_body(channel, &mut inner, depth).map_err(|e| DecodeError {
            offset: start + e.offset,
            kind: e.kind,
        })?;
        entries.push(frame);
    }
    Ok(Frame::Batch(entries))
}

impl Encode for Frame {
    fn encode(&self, out: &mut Vec<u8>) {
        if *self == Frame::Empty {
            return;
        }
        let mut body = Vec::new();
        let channel = self.encode_body(&mut body);
        out.put_uint(channel);
        out.put_bytes(&body);
    }
}

impl Decode for Frame {
    /// One whole frame: a message or handshake takes every byte left.
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        if r.is_empty() {
            return Ok(Frame::Empty);
        }
        let channel = r.uint()?;
        Frame::decode_body(channel, r, 0)
    }
}
