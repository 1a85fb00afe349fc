//! Errors of a stream.

use thiserror::Error;

/// Why a stream ended without a clean close.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum StreamError {
    /// The peer stopped answering: one packet suffered the maximum number of retransmission
    /// timeouts (libudx `UDX_MAX_RTO_TIMEOUTS` = 6 -> `UV_ETIMEDOUT`), or nothing arrived from
    /// the peer for [`Config::idle_timeout`](crate::Config).
    #[error(
        "stream timed out: the peer stopped answering (retransmissions or the idle limit ran out)"
    )]
    TimedOut,
    /// The peer sent DESTROY (libudx closes with `UV_ECONNRESET`).
    #[error("stream reset by peer (DESTROY)")]
    Reset,
    /// We destroyed the stream.
    #[error("stream destroyed locally")]
    LocallyClosed,
}

/// Why a write or message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum WriteError {
    /// The stream is closed or failed.
    #[error("stream is closed")]
    Closed,
    /// `end()` was already called.
    #[error("stream already ended for writing")]
    Ended,
    /// The message is larger than one packet's payload.
    #[error("message of {len} bytes exceeds the {max}-byte packet payload")]
    TooLarge {
        /// Message length.
        len: usize,
        /// Largest allowed.
        max: usize,
    },
    /// The outgoing message queue is full.
    #[error("message queue full")]
    QueueFull,
}
