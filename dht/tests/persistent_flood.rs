//! A flood of valid ANNOUNCEs, every one under its own topic and key, with a refresh token and a
//! bump (the costliest shape: every announce fills a record, a refresh entry and a bump), keeps
//! the store's heap under `ANNOUNCE_HEAP_PER_ENTRY` per entry the caches can hold: they stop at
//! their sizes (two generations) and drop the older generation when full.
//!
//! The same flood also goes through a whole `HyperDht` node's datagram path (request datagrams
//! with the node's own tokens, signed for its id; reply datagrams checked), with tampered
//! signatures mixed in and stale or forged tokens after it: those are dropped, counted and
//! never stored.
//!
//! Default tier: caches of 8,192 per generation and 17,000 announces (past the point where both
//! generations are full), into the store and into a node. `#[ignore]`d, at the JS default sizes
//! (65,536, bound `ANNOUNCE_HEAP_BOUND` = 64 MiB): 140,000 and 1,000,000 announces into the
//! store, 1,000,000 announce datagrams into a node
//! (`cargo nextest run -p dht --test persistent_flood --run-ignored all --no-capture`).

#![allow(clippy::disallowed_methods)] // tests take real time as their origin

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use dht::codec::Decode;
use dht::codec::Encode;
use dht::crypto::{NS, announce_signable};
use dht::hyperdht::messages::{Announce, LookupRawReply, Peer};
use dht::hyperdht::persistent::{
    ANNOUNCE_HEAP_BOUND, ANNOUNCE_HEAP_PER_ENTRY, Context, DEFAULT_MAX_SIZE, Persistent, Response,
    StoreCommand, StoreConfig, StoreRequest,
};
use dht::hyperdht::{Command, HyperDht, HyperDhtConfig};
use dht::rpc::wire::errors::INVALID_TOKEN;
use dht::rpc::wire::{Message, Request};
use ed25519_dalek::{Signer, SigningKey};

#[path = "common/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::live_bytes;

const NODE_ID: [u8; 32] = [7; 32];
const TOKEN: [u8; 32] = [0xbb; 32];
const UNIX_MS: u64 = 1_700_000_000_000;

/// Announce `i` signed for the store of `NODE_ID` and `TOKEN`.
fn announce(i: u32) -> ([u8; 32], Vec<u8>) {
    announce_for(i, &NODE_ID, &TOKEN, false)
}

/// Announce `i` for the storage node `node_id` that handed out `token`: key from seed i,
/// topic i, three relays, refresh token i, bump i + 1; `tamper` flips a signature bit.
fn announce_for(i: u32, node_id: &[u8; 32], token: &[u8; 32], tamper: bool) -> ([u8; 32], Vec<u8>) {
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
    let signable = announce_signable(&NS.announce, &topic, node_id, token, &peer, Some(&refresh));
    let mut signature = sk.sign(&signable).to_bytes();
    if tamper {
        signature[17] ^= 1;
    }
    let value = Announce {
        peer: Some(peer),
        refresh: Some(refresh),
        signature: Some(signature),
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

/// The same flood through a whole `HyperDht` node's datagram path (a bootstrapper: persistent
/// at once): request datagrams in, reply datagrams out, with the node's own id and tokens.
/// Every 100th announce carries a tampered signature (silence, counted as a bad signature,
/// nothing stored). Then the clock moves 16 s, two token rotations: announces with the old
/// token, and with a forged one, are refused with INVALID_TOKEN before the store sees them.
/// The node's live heap growth stays under the caches' bound.
fn datagram_flood(n: u32, max_size: usize) {
    let t0 = Instant::now();
    let me = SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 1), 49_737);
    let client = SocketAddrV4::new(Ipv4Addr::new(10, 9, 8, 7), 5_000);
    let config = HyperDhtConfig {
        store: StoreConfig {
            max_size,
            max_age: None,
        },
        ..HyperDhtConfig::default()
    };
    let mut node = HyperDht::bootstrapper(config, me, t0, UNIX_MS, [3; 32]);
    while node.poll_transmit().is_some() {}
    while node.poll_event().is_some() {}
    let node_id = node.id().expect("a bootstrapper has an id");
    let token = node.rpc().token_for(*client.ip());
    let bound = 2 * max_size * ANNOUNCE_HEAP_PER_ENTRY;
    let before = live_bytes();
    let mut peak = 0isize;
    let mut now = t0;
    // sends one request datagram, returns the error code of the reply (None: silence)
    let ask = |node: &mut HyperDht,
               now: Instant,
               tid: u16,
               cmd: Command,
               topic: [u8; 32],
               token: Option<[u8; 32]>,
               value: Option<Vec<u8>>| {
        let req = Request {
            tid,
            to: me,
            id: None,
            token,
            internal: false,
            command: cmd.to_u64(),
            target: Some(topic),
            value,
        };
        node.handle_datagram(now, client, &req.to_bytes());
        let mut answer = None;
        while let Some(t) = node.poll_transmit() {
            if let Ok(Message::Response(r)) = Message::from_bytes(&t.payload)
                && r.tid == tid
            {
                answer = Some(r);
            }
        }
        while node.poll_event().is_some() {}
        answer
    };
    let (mut acked, mut silent) = (0u32, 0u32);
    for i in 0..n {
        let tamper = i % 100 == 99;
        let (topic, value) = announce_for(i, &node_id, &token, tamper);
        now = t0 + Duration::from_micros(u64::from(i));
        match ask(
            &mut node,
            now,
            i as u16,
            Command::Announce,
            topic,
            Some(token),
            Some(value),
        ) {
            Some(r) if r.error == 0 => acked += 1,
            None => silent += 1,
            Some(r) => panic!("announce {i}: error {}", r.error),
        }
        peak = peak.max(live_bytes() - before);
    }
    let stats = node.store_stats().expect("a storage node");
    let (records, refreshes, bumps, _, _) = node.store_sizes().expect("sizes");
    assert_eq!(
        silent,
        n / 100,
        "exactly the tampered announces went unanswered"
    );
    assert_eq!(stats.dropped_bad_signature, u64::from(n / 100));
    assert_eq!(acked + silent, n);

    // two token rotations later, the flood's token is stale
    for _ in 0..22 {
        now += Duration::from_millis(750);
        node.handle_timeout(now);
    }
    while node.poll_transmit().is_some() {}
    while node.poll_event().is_some() {}
    let fresh = node.rpc().token_for(*client.ip());
    assert_ne!(fresh, token, "the token rotated");
    let mut refused = 0;
    for (k, bad_token) in [(0u32, token), (1, [0x77; 32])] {
        for j in 0..500 {
            let i = n + k * 500 + j;
            let (topic, value) = announce_for(i, &node_id, &bad_token, false);
            let r = ask(
                &mut node,
                now,
                j as u16,
                Command::Announce,
                topic,
                Some(bad_token),
                Some(value),
            );
            if r.is_some_and(|r| r.error == INVALID_TOKEN) {
                refused += 1;
            }
            let r = ask(&mut node, now, j as u16, Command::Lookup, topic, None, None)
                .expect("a LOOKUP reply");
            // nothing stored: an empty topic's LOOKUP reply has no value (`onlookup`)
            let held = r.value.map_or(0, |v| {
                LookupRawReply::from_bytes(&v).expect("decodes").peers.len()
            });
            assert_eq!(held, 0, "announce {i} with a bad token was stored");
        }
    }
    assert_eq!(refused, 1000);
    assert_eq!(
        node.store_stats().expect("stats").requests,
        stats.requests + 1000,
        "only the LOOKUPs reached the store"
    );
    let (records_after, _, _, _, _) = node.store_sizes().expect("sizes");
    assert_eq!(records_after, records);

    println!(
        "{n} announce datagrams into a HyperDht node, caches of {max_size}: {acked} acknowledged, \
         {silent} tampered dropped (bad signatures counted: {}); 1000 with a stale or forged \
         token refused with INVALID_TOKEN, none stored; peak heap growth {} KiB ({:.1} MiB), \
         bound {} KiB; held: {records} records, {refreshes} refreshes, {bumps} bumps; {:.1?}",
        stats.dropped_bad_signature,
        peak / 1024,
        peak as f64 / (1 << 20) as f64,
        bound / 1024,
        t0.elapsed(),
    );
    assert!(
        peak < bound as isize,
        "peak heap growth {peak} bytes, bound {bound}"
    );
    assert!(records <= 2 * max_size + 1);
    if n as usize > 2 * max_size {
        assert!(stats.records.evicted > 0);
    }
}

#[test]
fn a_flood_of_17_000_announce_datagrams_into_a_node_stays_under_the_heap_bound() {
    datagram_flood(17_000, 8192);
}

#[test]
#[ignore = "about three minutes: 1,000,000 signed announce datagrams"]
fn a_flood_of_1_000_000_announce_datagrams_into_a_node_stays_under_the_heap_bound() {
    datagram_flood(1_000_000, DEFAULT_MAX_SIZE);
}
