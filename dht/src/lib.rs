//! dht-rpc and HyperDHT for Rust, byte-compatible with the JS packages `dht-rpc` 6.27.0 and
//! `hyperdht` 6.34.0.
