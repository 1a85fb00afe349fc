#![allow(clippy::disallowed_methods)] // the tests take real time as their origin

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Instant;

use super::*;
use crate::hyperdht::connect::{ClientHandshake, Path};
use crate::rpc::Reply;

fn kp(n: u8) -> KeyPair {
    KeyPair::from_seed(&[n; 32])
}

fn addr(last: u8, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, last), port)
}

fn msg1(client: u8, server: &KeyPair, stream: u32) -> (ClientHandshake, Vec<u8>) {
    let c = ClientHandshake::new(
        &kp(client),
        noise::KeyPair::from_seed([client.wrapping_add(100); 32]),
        server.public_key,
        stream,
        None,
    )
    .unwrap();
    let hs = crate::hyperdht::messages::Handshake::from_bytes(c.request_value()).unwrap();
    (c, hs.noise)
}

fn reply_from(
    relay: SocketAddrV4,
    to: SocketAddrV4,
    noise: Vec<u8>,
    server_at: SocketAddrV4,
) -> Reply {
    use crate::codec::Encode;
    let v = crate::hyperdht::messages::Handshake {
        mode: crate::hyperdht::Mode::Reply.to_u64(),
        noise,
        peer_address: Some(server_at),
        relay_address: None,
    };
    Reply {
        from: relay,
        from_id: None,
        to,
        token: None,
        closer_nodes: Vec::new(),
        error: 0,
        value: Some(v.to_bytes()),
        rtt: std::time::Duration::ZERO,
    }
}

use crate::codec::Decode;

#[test]
fn relayed_handshake_is_accepted_and_both_ends_share_keys() {
    let now = Instant::now();
    let server = kp(1);
    let mut servers = Servers::default();
    let target = servers.listen(server.clone(), None).unwrap();
    let (mut client, noise) = msg1(2, &server, 77);
    let client_at = addr(2, 4000);
    let out = servers.on_handshake(
        now,
        &target,
        &noise,
        Some(client_at),
        addr(9, 1),
        &LocalInfo::default(),
        noise::KeyPair::from_seed([50; 32]),
        5,
    );
    let HandshakeOutcome::Reply {
        noise: msg2,
        accepted: Some(acc),
    } = out
    else {
        panic!("not accepted: {out:?}");
    };
    assert_eq!(acc.remote_stream_id, 77);
    assert_eq!(acc.local_stream_id, 5);
    assert_eq!(acc.client_address, client_at);
    assert!(
        !acc.connect_now,
        "a firewalled client binds on its first packet"
    );
    let server_at = addr(1, 5000);
    let c = client
        .on_reply(
            addr(9, 1),
            &reply_from(addr(9, 1), client_at, msg2, server_at),
        )
        .unwrap();
    assert_eq!(c.remote_stream_id, 5);
    // relayed, no holepunch offered: straight to where the relay saw the server
    assert_eq!(c.path, Path::Direct(server_at));
    assert_eq!(c.handshake.handshake.tx, acc.handshake.handshake.rx);
    assert_eq!(
        c.handshake.remote_id,
        noise::stream_id(&acc.handshake.handshake.hash, false)
    );
    assert_eq!(acc.handshake.handshake.remote_public_key, kp(2).public_key);
}

#[test]
fn the_same_msg1_through_two_relays_gets_one_connection_and_the_same_reply() {
    let now = Instant::now();
    let server = kp(1);
    let mut servers = Servers::default();
    let target = servers.listen(server.clone(), None).unwrap();
    let (_c, noise) = msg1(2, &server, 1);
    let mut run = |relay| {
        servers.on_handshake(
            now,
            &target,
            &noise,
            Some(addr(2, 1)),
            relay,
            &LocalInfo::default(),
            noise::KeyPair::from_seed([51; 32]),
            9,
        )
    };
    let a = run(addr(8, 1));
    let b = run(addr(7, 1));
    let (
        HandshakeOutcome::Reply {
            noise: r1,
            accepted: Some(_),
        },
        HandshakeOutcome::Reply {
            noise: r2,
            accepted: None,
        },
    ) = (a, b)
    else {
        panic!("dedup failed");
    };
    assert_eq!(r1, r2);
    assert_eq!(servers.stats().deduped, 1);
    assert_eq!(servers.stats().accepted, 1);
    // after the clear-wait the entry is gone
    servers.advance(now + HANDSHAKE_CLEAR_WAIT);
    assert_eq!(servers.pending(), 0);
}

#[test]
fn firewall_sees_key_payload_and_relay_reported_address_and_refuses_silently() {
    let now = Instant::now();
    let server = kp(1);
    let mut servers = Servers::default();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let refused = kp(3).public_key;
    let target = servers
        .listen(
            server.clone(),
            Some(Box::new(move |key, payload, from| {
                s2.lock()
                    .unwrap()
                    .push((*key, payload.udx.as_ref().map(|u| u.id), from));
                *key == refused
            })),
        )
        .unwrap();
    let (_a, ok) = msg1(2, &server, 11);
    let (_b, bad) = msg1(3, &server, 12);
    let go = |s: &mut Servers, n: &[u8], who| {
        s.on_handshake(
            now,
            &target,
            n,
            Some(addr(who, 7)),
            addr(9, 9),
            &LocalInfo::default(),
            noise::KeyPair::from_seed([52; 32]),
            1,
        )
    };
    assert!(matches!(
        go(&mut servers, &ok, 2),
        HandshakeOutcome::Reply {
            accepted: Some(_),
            ..
        }
    ));
    assert!(matches!(go(&mut servers, &bad, 3), HandshakeOutcome::Drop));
    // a repeat of the refused msg1 stays refused without asking the firewall again
    assert!(matches!(go(&mut servers, &bad, 3), HandshakeOutcome::Drop));
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0], (kp(2).public_key, Some(11), addr(2, 7)));
    assert_eq!(seen[1].0, refused);
    assert_eq!(servers.stats().firewalled, 1);
}

#[test]
fn a_flood_of_garbage_from_one_source_is_capped_and_others_still_get_in() {
    let now = Instant::now();
    let server = kp(1);
    let mut servers = Servers::default();
    let target = servers.listen(server.clone(), None).unwrap();
    for i in 0..10_000u32 {
        let mut garbage = vec![0u8; 96];
        garbage[..4].copy_from_slice(&i.to_le_bytes());
        let out = servers.on_handshake(
            now,
            &target,
            &garbage,
            Some(addr(66, 1)),
            addr(9, 9),
            &LocalInfo::default(),
            noise::KeyPair::from_seed([53; 32]),
            1,
        );
        assert!(matches!(out, HandshakeOutcome::Drop));
    }
    assert!(servers.pending() <= MAX_PENDING_PER_SOURCE);
    let (_c, noise) = msg1(2, &server, 1);
    let out = servers.on_handshake(
        now,
        &target,
        &noise,
        Some(addr(2, 1)),
        addr(9, 9),
        &LocalInfo::default(),
        noise::KeyPair::from_seed([54; 32]),
        1,
    );
    assert!(matches!(
        out,
        HandshakeOutcome::Reply {
            accepted: Some(_),
            ..
        }
    ));
}

#[test]
fn listening_twice_on_one_key_fails_and_close_frees_it() {
    let mut servers = Servers::default();
    servers.listen(kp(1), None).unwrap();
    assert_eq!(
        servers.listen(kp(1), None),
        Err(ServerError::KeyPairAlreadyUsed)
    );
    assert!(servers.close(&kp(1).public_key));
    assert!(servers.listen(kp(1), None).is_ok());
}
