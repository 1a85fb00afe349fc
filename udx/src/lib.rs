//! UDX: reliable, ordered, congestion-controlled streams over UDP, byte-compatible with libudx
//! (the C library behind the npm package `udx-native` 1.21.3).
//!
//! Contract (planned): `proto` is a sans-IO core (packets and time in, packets, timers and
//! events out); `socket` is a thin tokio driver that binds one UDP port and hands every datagram
//! that is not a live stream's packet to a handler the caller installs (the DHT shares that
//! socket). Nothing is implemented yet; see issue "udx".
