//! A flood of valid ANNOUNCEs, every one under its own topic and key, with a refresh token and a
//! bump (the costliest shape: every announce fills a record, a refresh entry and a bump), keeps
//! the store's heap under `ANNOUNCE_HEAP_PER_ENTRY` per entry the caches can hold: they stop at
//! their sizes (two generations) and drop the older generation when full.
//!
//! Default tier: caches of 8,192 per generation and 17,000 announces (past the point where both
//! generations are full). `#[ignore]`d, at the JS default sizes (65,536, bound
//! `ANNOUNCE_HEAP_BOUND` = 64 MiB): 140,000 and 1,000,000 announces
//! (`cargo nextest run -p dht --test persistent_flood --run-ignored all --no-capture`).

#![allow(clippy::disallowed_methods)] // tests take real time as their origin

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use dht::codec::Encode;
use dht::crypto::{NS, announce_signable};
use dht::hyperdht::messages::{Announce, Peer};
use dht::hyperdht::persistent::{
    ANNOUNCE_HEAP_BOUND, ANNOUNCE_HEAP_PER_ENTRY, Context, DEFAULT_MAX_SIZE, Persistent, Response,
    StoreCommand, StoreConfig, StoreRequest,
};
use ed25519_dalek::{Signer, SigningKey};

#[path = "common/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::live_bytes;

const NODE_ID: [u8; 32] = [7; 32];
const TOKEN: [u8; 32] = [0xbb; 32];
const UNIX_MS: u64 = 1_700_000_000_000;

/// Announce `i`: key from seed i, topic i, three relays, refresh token i, bump i + 1.
fn announce(i: u32) -> ([u8; 32], Vec<u8>) {
    let mut seed = [0u8; 32];
    seed[..4].copy_from_slice(&i.to_le_bytes());
    seed[31] = 1;
    let sk = SigningKey::from_bytes(&seed);
    let mut topic = [0x5a; 32];
    topic[..4].copy_from_slice(&i.to_le_bytes());
    let mut refresh = [0x3c; 32];
    refresh[..4].copy_from_slice(&i.to_le_bytes());
    let peer = Peer {
        public_key: sk.verifying_key().to_bytes(),
        relay_addresses: (0..3)
            .map(|r| SocketAddrV4::new(Ipv4Addr::new(10, 0, (i >> 8) as u8, i as u8), 1000 + r))
            .collect(),
    };
    let signable = announce_signable(
        &NS.announce,
        &topic,
        &NODE_ID,
        &TOKEN,
        &peer,
        Some(&refresh),
    );
    let value = Announce {
        peer: Some(peer),
        refresh: Some(refresh),
        signature: Some(sk.sign(&signable).to_bytes()),
        bump: u64::from(i) + 1,
    }
    .to_bytes();
    (topic, value)
}

fn flood(n: u32, max_size: usize) {
    let t0 = Instant::now();
    let before = live_bytes();
    let config = StoreConfig {
        max_size,
        max_age: None,
    };
    let bound = 2 * max_size * ANNOUNCE_HEAP_PER_ENTRY;
    let mut store = Persistent::new(&config, t0, [1; 32]);
    let mut peak = 0isize;
    for i in 0..n {
        let (topic, value) = announce(i);
        // all within one collection tick: only the size bound drops entries
        let ctx = Context {
            now: t0 + Duration::from_micros(u64::from(i)),
            unix_ms: UNIX_MS,
            node_id: NODE_ID,
        };
        let out = store.handle(
            &ctx,
            &StoreRequest {
                command: StoreCommand::Announce,
                from: SocketAddrV4::new(Ipv4Addr::LOCALHOST, 1),
                target: Some(&topic),
                token: Some(&TOKEN),
                value: Some(&value),
                router_record: None,
            },
        );
        assert!(
            matches!(out.response, Response::Reply { .. }),
            "announce {i}: {out:?}"
        );
        drop(value);
        peak = peak.max(live_bytes() - before);
    }
    let (records, refreshes, bumps, mutables, immutables) = store.sizes();
    let stats = store.stats();
    println!(
        "{n} announces, caches of {max_size}: peak heap {} KiB ({:.1} MiB, {} bytes per entry), \
         bound {} KiB; held: {records} records, {refreshes} refreshes, {bumps} bumps; evicted: \
         {} records, {} refreshes, {} bumps",
        peak / 1024,
        peak as f64 / (1 << 20) as f64,
        peak as usize / (2 * max_size),
        bound / 1024,
        stats.records.evicted,
        stats.refreshes.evicted,
        stats.bumps.evicted,
    );
    assert!(
        peak < bound as isize,
        "peak heap {peak} bytes, bound {bound}"
    );
    assert!(records <= 2 * max_size + 1);
    assert!(refreshes <= 2 * max_size + 1 && bumps <= 2 * max_size + 1);
    assert_eq!((mutables, immutables), (0, 0));
    assert_eq!(stats.dropped_bad_signature, 0);
    assert_eq!(stats.relay_addresses_cut, 0);
    if n as usize > 2 * max_size {
        assert!(
            stats.records.evicted > 0 && stats.refreshes.evicted > 0 && stats.bumps.evicted > 0
        );
        // every record is either held or was evicted
        assert_eq!(records as u64 + stats.records.evicted, u64::from(n));
    }
}

#[test]
fn a_flood_of_17_000_announces_into_caches_of_8192_stays_under_the_heap_bound() {
    flood(17_000, 8192);
}

#[test]
#[ignore = "about 20 s: 140,000 Ed25519 signatures and verifications"]
fn a_flood_of_140_000_announces_stays_under_the_heap_bound() {
    assert_eq!(
        2 * DEFAULT_MAX_SIZE * ANNOUNCE_HEAP_PER_ENTRY,
        ANNOUNCE_HEAP_BOUND
    );
    flood(140_000, DEFAULT_MAX_SIZE);
}

#[test]
#[ignore = "about three minutes: 1,000,000 Ed25519 signatures and verifications"]
fn a_flood_of_1_000_000_announces_stays_under_the_heap_bound() {
    flood(1_000_000, DEFAULT_MAX_SIZE);
}
