//! The sans-IO protocol core: packets and time in, packets, timers and events out.
//! Nothing in here reads a clock, draws randomness or touches a socket.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod congestion;
pub mod error;
pub mod mtu;
pub mod packet;
mod range_set;
pub mod rtt;
pub mod stream;

pub use error::{StreamError, WriteError};
pub use packet::{DecodeError, Header, Packet, SackBlock};
pub use stream::{Config, Event, Stats, Stream};

#[cfg(test)]
mod packet_tests;
#[cfg(test)]
mod range_set_tests;
