//! UDX: reliable, ordered, congestion-controlled streams over UDP, byte-compatible with libudx
//! (the C library behind the npm package `udx-native` 1.21.3).
//!
//! I/O contract: [`proto`] is a sans-IO core. A [`proto::Stream`] takes datagrams and `now`
//! in (`handle_datagram`, `handle_timeout`) and hands datagrams, its next deadline and events
//! out (`poll_transmit`, `poll_timeout`, `poll_event`); it never reads a clock, draws
//! randomness or touches a socket. `socket` (feature `tokio`) is the driver: it binds one UDP
//! port, routes UDX packets to live streams and hands every other datagram to a handler the
//! caller installs (the DHT shares that socket).

pub mod proto;

#[cfg(feature = "tokio")]
pub mod socket;

#[doc(hidden)]
pub mod fuzzing;

pub use proto::{Config, Event, StreamError, WriteError};
