//! protomux: many protocol channels over one message stream, sans-IO.
//!
//! JS: protomux 3.12.1 `index.js` (classes `Protomux` and `Channel`). Each protomux frame is one
//! message of the underlying stream (for hyperdht and hyperswarm: one secret-stream message).
//! [`frame`] is the byte format; [`Mux`] is the channel table: local and remote ids, the
//! pairing of a local channel with the remote's open of the same protocol and id, messages
//! buffered for channels the application has not accepted yet, rejects, closes and corked
//! batches.
//!
//! Why it lives in `dht`: hyperdht's `relay_through` fallback needs it (blind-relay runs as a
//! protomux channel over a hyperdht connection, [`crate::blind_relay`]), and hyperswarm's users
//! will multiplex their protocols with it; `swarm` already depends on `dht`, and the frames are
//! compact-encoding, whose codec ([`crate::codec`]) lives here. A crate of its own would need a
//! second copy of that codec or a dependency cycle.
//!
//! I/O contract: feed each received stream message to [`Mux::handle_frame`]; send what
//! [`Mux::poll_transmit`] returns as one stream message each; read [`Mux::poll_event`]. An
//! error from `handle_frame` is where JS destroys the stream: the caller should close it.
//! Drain both queues after every call: they grow only by what that call's input produced.
//! Nothing here reads a clock or draws randomness.
//!
//! Bounds (JS has none for the first three): local channels, remote channels (each remote open
//! takes a slot until closed or rejected) and bytes held for channels not yet accepted are
//! capped by [`Limits`]; at [`PAUSE_BUFFERED_BYTES`] held bytes [`Mux::is_paused`] asks the
//! caller to stop reading, as JS pauses its stream.

pub mod frame;
mod mux;

pub use frame::{Frame, MAX_BATCH_DEPTH, Message, Open};
pub use mux::{ChannelId, Event, Mux};

use crate::codec::DecodeError;

/// JS `MAX_BUFFERED`: held bytes above which the stream is paused. Each held message counts
/// its length plus 512 (`byteSize`).
pub const PAUSE_BUFFERED_BYTES: usize = 32768;

/// JS `MAX_BATCH`: a corked batch is sent once it reaches this size and a new one started.
pub const MAX_BATCH_BYTES: usize = 8 * 1024 * 1024;

/// The bounds of one [`Mux`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Channels this side may have open at once (JS: unbounded).
    pub max_local_channels: usize,
    /// Remote channel ids the peer may hold open or pending at once (JS: unbounded, and
    /// `MAX_BACKLOG` is `Infinity`).
    pub max_remote_channels: usize,
    /// Bytes (counted as JS counts them, 512 + length each) held for channels the application
    /// has not accepted yet, opens included; beyond it the peer is in error (JS: pauses the
    /// stream at [`PAUSE_BUFFERED_BYTES`] and never errs).
    pub max_buffered_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_local_channels: 16384,
            max_remote_channels: 16384,
            max_buffered_bytes: 4 * 1024 * 1024,
        }
    }
}

/// Why the mux refused a frame or a call. A frame error means the peer broke the protocol (JS
/// destroys the stream there).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MuxError {
    /// The frame does not decode.
    #[error("protomux frame does not decode: {0}")]
    Decode(#[from] DecodeError),
    /// An open for a remote id that is in use or skips ahead (JS "Invalid open message").
    #[error("protomux open for remote channel {remote_id} is invalid (in use or out of order)")]
    InvalidOpen {
        /// The id the peer chose.
        remote_id: u64,
    },
    /// A reject for a channel we are not opening (JS "Invalid reject message").
    #[error("protomux reject for channel {local_id}, which is not waiting for the peer")]
    InvalidReject {
        /// The id named in the reject.
        local_id: u64,
    },
    /// The peer holds more remote channels than [`Limits::max_remote_channels`].
    #[error("peer opened more than {max} protomux channels")]
    TooManyRemoteChannels {
        /// The limit.
        max: usize,
    },
    /// The peer sent more for unaccepted channels than [`Limits::max_buffered_bytes`].
    #[error("peer buffered more than {max} bytes on protomux channels not yet accepted")]
    BufferOverflow {
        /// The limit.
        max: usize,
    },
    /// This side already has [`Limits::max_local_channels`] channels.
    #[error("no free protomux channel: {max} are open")]
    TooManyLocalChannels {
        /// The limit.
        max: usize,
    },
    /// A unique channel of this protocol and id is already open (JS `createChannel` returns
    /// null).
    #[error("a protomux channel for this protocol and id is already open")]
    AlreadyOpen,
    /// The channel is closed or was never opened here.
    #[error("no such protomux channel (closed or never opened)")]
    UnknownChannel,
}

#[cfg(test)]
mod tests;
