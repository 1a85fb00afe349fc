//! Deterministic tests of [`HyperDht`] with a scripted peer: datagrams in, datagrams out, no
//! network and no clock but the one the test moves.

#![allow(clippy::disallowed_methods)] // the tests take real time as their origin

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use super::super::messages::{Announce, Handshake, Holepunch, LookupRawReply, Peer};
use super::super::{Command, HyperEvent, Mode, OpError, OpOutcome};
use super::{HyperDht, HyperDhtConfig};
use crate::codec::{Decode, Encode};
use crate::crypto::{KeyPair, hash, node_id, sign_announce};
use crate::rpc::Config;
use crate::rpc::wire::{Message, Request, Response};

const ME: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 49_737);
const CLIENT: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 40_000);
const RELAY: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 3), 41_000);
const OTHER: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 4), 42_000);
const UNIX_MS: u64 = 1_700_000_000_000;

struct Harness {
    dht: HyperDht,
    now: Instant,
}

impl Harness {
    /// A bootstrapper at ME, run until it is a storage node.
    fn storage() -> Self {
        let now = Instant::now();
        let dht = HyperDht::bootstrapper(HyperDhtConfig::default(), ME, now, UNIX_MS, [1; 32]);
        let mut h = Self { dht, now };
        for _ in 0..100 {
            if h.dht.is_storage_node() {
                break;
            }
            h.advance(Duration::from_secs(1));
        }
        assert!(h.dht.is_storage_node());
        h.drain();
        h
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.dht.handle_timeout(self.now);
    }

    fn drain(&mut self) -> Vec<(SocketAddrV4, Message)> {
        let mut out = Vec::new();
        while let Some(t) = self.dht.poll_transmit() {
            out.push((
                t.to,
                Message::from_bytes(&t.payload).expect("we send what we decode"),
            ));
        }
        out
    }

    /// One request from `from`; what the node sent in answer.
    fn ask(
        &mut self,
        from: SocketAddrV4,
        tid: u16,
        command: Command,
        target: [u8; 32],
        token: Option<[u8; 32]>,
        value: Option<Vec<u8>>,
    ) -> Vec<(SocketAddrV4, Message)> {
        let req = Request {
            tid,
            to: ME,
            id: None,
            token,
            internal: false,
            command: command.to_u64(),
            target: Some(target),
            value,
        };
        self.dht.handle_datagram(self.now, from, &req.to_bytes());
        self.drain()
    }

    /// Stores a self-announce of `kp` arriving from RELAY: a forward to RELAY.
    fn self_announce(&mut self, kp: &KeyPair) -> [u8; 32] {
        let target = hash(&kp.public_key);
        let token = self.dht.rpc().token_for(*RELAY.ip());
        let id = self.dht.id().expect("persistent");
        let peer = Peer {
            public_key: kp.public_key,
            relay_addresses: vec![RELAY],
        };
        let ann = Announce {
            signature: Some(sign_announce(kp, &target, &id, &token, &peer, None)),
            peer: Some(peer),
            refresh: None,
            bump: 0,
        };
        let out = self.ask(
            RELAY,
            1,
            Command::Announce,
            target,
            Some(token),
            Some(ann.to_bytes()),
        );
        assert!(matches!(&out[..], [(to, Message::Response(r))] if *to == RELAY && r.error == 0));
        assert_eq!(self.dht.router().len(), 1);
        target
    }
}

fn only(out: Vec<(SocketAddrV4, Message)>) -> (SocketAddrV4, Message) {
    assert_eq!(out.len(), 1, "{out:?}");
    out.into_iter().next().expect("one")
}

#[test]
fn a_client_handshake_without_a_route_is_answered_with_no_value_and_no_token() {
    let mut h = Harness::storage();
    let hs = Handshake {
        mode: Mode::FromClient.to_u64(),
        noise: vec![1, 2, 3],
        peer_address: None,
        relay_address: None,
    };
    let (to, m) = only(h.ask(
        CLIENT,
        9,
        Command::PeerHandshake,
        [5; 32],
        None,
        Some(hs.to_bytes()),
    ));
    let Message::Response(r) = m else {
        panic!("{m:?}")
    };
    assert_eq!(
        (to, r.tid, r.error, r.token, r.value),
        (CLIENT, 9, 0, None, None)
    );
}

#[test]
fn a_self_announce_routes_handshakes_and_holepunches_with_the_tid_kept() {
    let mut h = Harness::storage();
    let kp = KeyPair::from_seed(&[4; 32]);
    let target = h.self_announce(&kp);

    // FROM_CLIENT → the server's relay, as FROM_RELAY with the client's address
    let hs = Handshake {
        mode: Mode::FromClient.to_u64(),
        noise: b"noise".to_vec(),
        peer_address: None,
        relay_address: None,
    };
    let (to, m) = only(h.ask(
        CLIENT,
        77,
        Command::PeerHandshake,
        target,
        None,
        Some(hs.to_bytes()),
    ));
    let Message::Request(r) = m else {
        panic!("{m:?}")
    };
    assert_eq!((to, r.tid, r.target), (RELAY, 77, Some(target)));
    let fwd = Handshake::from_bytes(&r.value.expect("value")).expect("handshake");
    assert_eq!(
        fwd,
        Handshake {
            mode: Mode::FromRelay.to_u64(),
            noise: b"noise".to_vec(),
            peer_address: Some(CLIENT),
            relay_address: None
        }
    );

    // FROM_RELAY (we are the second relay) → the server's relay as FROM_SECOND_RELAY
    let hs = Handshake {
        mode: Mode::FromRelay.to_u64(),
        noise: b"n".to_vec(),
        peer_address: Some(CLIENT),
        relay_address: None,
    };
    let (to, m) = only(h.ask(
        OTHER,
        78,
        Command::PeerHandshake,
        target,
        None,
        Some(hs.to_bytes()),
    ));
    let Message::Request(r) = m else {
        panic!("{m:?}")
    };
    assert_eq!((to, r.tid), (RELAY, 78));
    let fwd = Handshake::from_bytes(&r.value.expect("value")).expect("handshake");
    assert_eq!(
        (fwd.mode, fwd.peer_address, fwd.relay_address),
        (3, Some(CLIENT), Some(OTHER))
    );

    // FROM_SERVER → a REPLY to the client, naming the server's address
    let hs = Handshake {
        mode: Mode::FromServer.to_u64(),
        noise: b"reply".to_vec(),
        peer_address: Some(CLIENT),
        relay_address: None,
    };
    let (to, m) = only(h.ask(
        RELAY,
        77,
        Command::PeerHandshake,
        target,
        None,
        Some(hs.to_bytes()),
    ));
    let Message::Response(r) = m else {
        panic!("{m:?}")
    };
    assert_eq!((to, r.tid, r.token), (CLIENT, 77, None));
    assert!(r.closer_nodes.is_empty());
    let rep = Handshake::from_bytes(&r.value.expect("value")).expect("handshake");
    assert_eq!((rep.mode, rep.peer_address), (4, Some(RELAY)));

    // holepunch: FROM_CLIENT → the relay, FROM_SERVER → the client
    let hp = Holepunch {
        mode: Mode::FromClient.to_u64(),
        id: 3,
        payload: b"p".to_vec(),
        peer_address: None,
    };
    let (to, m) = only(h.ask(
        CLIENT,
        80,
        Command::PeerHolepunch,
        target,
        None,
        Some(hp.to_bytes()),
    ));
    let Message::Request(r) = m else {
        panic!("{m:?}")
    };
    assert_eq!((to, r.tid), (RELAY, 80));
    let fwd = Holepunch::from_bytes(&r.value.expect("value")).expect("holepunch");
    assert_eq!((fwd.mode, fwd.id, fwd.peer_address), (2, 3, Some(CLIENT)));
    let hp = Holepunch {
        mode: Mode::FromServer.to_u64(),
        id: 0,
        payload: b"q".to_vec(),
        peer_address: Some(CLIENT),
    };
    let (to, m) = only(h.ask(
        RELAY,
        80,
        Command::PeerHolepunch,
        target,
        None,
        Some(hp.to_bytes()),
    ));
    let Message::Response(r) = m else {
        panic!("{m:?}")
    };
    assert_eq!((to, r.tid), (CLIENT, 80));
    let rep = Holepunch::from_bytes(&r.value.expect("value")).expect("holepunch");
    assert_eq!(
        (rep.mode, rep.peer_address, rep.payload),
        (4, Some(RELAY), b"q".to_vec())
    );

    // undecodable values and modes for a server are dropped and counted
    assert!(
        h.ask(
            CLIENT,
            81,
            Command::PeerHandshake,
            target,
            None,
            Some(vec![0xff])
        )
        .is_empty()
    );
    let hp = Holepunch {
        mode: Mode::FromRelay.to_u64(),
        ..hp
    };
    assert!(
        h.ask(
            CLIENT,
            82,
            Command::PeerHolepunch,
            target,
            None,
            Some(hp.to_bytes())
        )
        .is_empty()
    );
    assert_eq!(h.dht.router_stats().dropped, 2);
    assert_eq!(
        (h.dht.router_stats().relayed, h.dht.router_stats().replied),
        (3, 2)
    );
}

#[test]
fn the_forward_answers_find_peer_and_joins_lookups() {
    let mut h = Harness::storage();
    let kp = KeyPair::from_seed(&[6; 32]);
    let target = h.self_announce(&kp);
    let (_, m) = only(h.ask(CLIENT, 5, Command::FindPeer, target, None, None));
    let Message::Response(r) = m else {
        panic!("{m:?}")
    };
    let peer = Peer::from_bytes(&r.value.expect("record")).expect("peer");
    assert_eq!(
        (peer.public_key, peer.relay_addresses.clone()),
        (kp.public_key, vec![RELAY])
    );
    let (_, m) = only(h.ask(CLIENT, 6, Command::Lookup, target, None, None));
    let Message::Response(r) = m else {
        panic!("{m:?}")
    };
    let l = LookupRawReply::from_bytes(&r.value.expect("records")).expect("lookup");
    assert_eq!(l.peers, vec![peer]);
    // a local unannounce drops the forward
    let op = h.dht.unannounce(h.now, target, &kp);
    assert!(h.dht.router().is_empty());
    h.dht.cancel(op);
}

#[test]
fn plugin_requests_are_dropped_silently_on_a_storage_node() {
    let mut h = Harness::storage();
    assert!(
        h.ask(CLIENT, 5, Command::Plugin, [1; 32], None, Some(vec![1, 2]))
            .is_empty()
    );
    assert_eq!(h.dht.stats().plugin_dropped, 1);
}

/// A client whose only contact is OTHER, which the test plays: FIND_NODE gets an empty answer,
/// user commands get `answer(command)` as (value, token).
fn scripted_client(
    start: impl FnOnce(&mut HyperDht, Instant) -> super::super::OpId,
    answer: impl Fn(Command, &Request) -> (Option<Vec<u8>>, Option<[u8; 32]>),
) -> (HyperDht, Result<OpOutcome, OpError>, Vec<HyperEvent>) {
    let mut now = Instant::now();
    let config = HyperDhtConfig {
        rpc: Config {
            bootstrap: vec![OTHER],
            ..Config::default()
        },
        ..HyperDhtConfig::default()
    };
    let mut dht = HyperDht::new(config, CLIENT.port(), now, UNIX_MS, [2; 32]);
    let op = start(&mut dht, now);
    let mut events = Vec::new();
    for _ in 0..10_000 {
        while let Some(t) = dht.poll_transmit() {
            let Ok(Message::Request(req)) = Message::from_bytes(&t.payload) else {
                continue;
            };
            if t.to != OTHER {
                continue;
            }
            let (value, token) = match (req.internal, Command::from_u64(req.command)) {
                (false, Some(c)) => answer(c, &req),
                _ => (None, None),
            };
            let res = Response {
                tid: req.tid,
                to: CLIENT,
                id: Some(node_id(&OTHER)),
                token,
                closer_nodes: Vec::new(),
                error: 0,
                value,
            };
            dht.handle_datagram(now, OTHER, &res.to_bytes());
        }
        while let Some(e) = dht.poll_event() {
            match e {
                HyperEvent::Done { op: o, result } if o == op => return (dht, result, events),
                e => events.push(e),
            }
        }
        now += Duration::from_millis(100);
        dht.handle_timeout(now);
    }
    panic!("the operation did not end");
}

#[test]
fn undecodable_lookup_replies_are_dropped_and_counted() {
    let topic = [3; 32];
    let (dht, r, events) = scripted_client(
        |d, now| d.lookup(now, topic),
        |_, _| (Some(vec![0xff, 0xff]), Some([1; 32])),
    );
    assert!(
        matches!(&r, Ok(OpOutcome::Lookup(s)) if s.found == 0),
        "{r:?}"
    );
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, HyperEvent::LookupReply { .. }))
    );
    assert_eq!(dht.stats().bad_replies, 1);
}

#[test]
fn an_announce_to_nodes_without_tokens_fails_as_a_timeout() {
    let kp = KeyPair::from_seed(&[1; 32]);
    let (_, r, _) = scripted_client(
        |d, now| d.announce(now, [3; 32], &kp, &[]),
        |_, _| (None, None),
    );
    assert_eq!(r, Err(OpError::Timeout));
}

#[test]
fn an_announce_commits_a_signature_for_the_node_s_id_and_token() {
    let kp = KeyPair::from_seed(&[1; 32]);
    let topic = [3; 32];
    let token = [9; 32];
    let seen = std::cell::RefCell::new(None);
    let (_, r, _) = scripted_client(
        |d, now| d.announce(now, topic, &kp, &[RELAY, OTHER, CLIENT, ME]),
        |c, req| {
            if c == Command::Announce {
                let ann = Announce::from_bytes(req.value.as_deref().expect("value")).expect("ann");
                *seen.borrow_mut() = Some((ann, req.token));
            }
            (None, Some(token))
        },
    );
    let (ann, sent_token) = seen.into_inner().expect("an ANNOUNCE went out");
    assert_eq!(sent_token, Some(token));
    let peer = ann.peer.expect("peer");
    assert_eq!(
        peer.relay_addresses,
        vec![RELAY, OTHER, CLIENT],
        "relays cut to 3"
    );
    let signable = crate::crypto::announce_signable(
        &crate::crypto::NS.announce,
        &topic,
        &node_id(&OTHER),
        &token,
        &peer,
        None,
    );
    assert!(crate::crypto::verify(
        &kp.public_key,
        &signable,
        &ann.signature.expect("sig")
    ));
    let Ok(OpOutcome::Announce(c)) = r else {
        panic!("{r:?}")
    };
    assert_eq!((c.answered, c.failed, c.closest_nodes), (1, 0, vec![OTHER]));
}

#[test]
fn a_destroyed_node_answers_nothing_and_sets_no_timer() {
    let mut h = Harness::storage();
    assert!(
        !h.ask(CLIENT, 1, Command::Lookup, [1; 32], None, None)
            .is_empty()
    );
    let now = h.now;
    h.dht.destroy(now);
    assert!(
        h.ask(CLIENT, 2, Command::Lookup, [1; 32], None, None)
            .is_empty()
    );
    assert_eq!(h.dht.poll_timeout(), None);
}

/// `router.js onpeerhandshake`, server branch: a handshake for one of our keys is answered by
/// our server in each mode JS handles, the reply goes back the way the request came with the
/// tid kept, and each distinct msg1 yields one connection.
#[test]
fn a_handshake_for_a_local_server_is_answered_in_every_mode() {
    use super::super::connect::ClientHandshake;
    let mut h = Harness::storage();
    let server = KeyPair::from_seed(&[5; 32]);
    let target = h.dht.servers_mut().listen(server.clone(), None).unwrap();
    let msg1 = |seed: u8| {
        let c = ClientHandshake::new(
            &KeyPair::from_seed(&[seed; 32]),
            noise::KeyPair::from_seed([seed.wrapping_add(1); 32]),
            server.public_key,
            u32::from(seed),
            None,
        )
        .unwrap();
        Handshake::from_bytes(c.request_value()).unwrap().noise
    };
    let hs = |mode: Mode, noise: Vec<u8>, peer, relay| {
        Handshake {
            mode: mode.to_u64(),
            noise,
            peer_address: peer,
            relay_address: relay,
        }
        .to_bytes()
    };
    let connections = |h: &mut Harness| {
        let mut n = Vec::new();
        while let Some(e) = h.dht.poll_event() {
            if let HyperEvent::Connection(a) = e {
                n.push(a);
            }
        }
        n
    };

    // FROM_CLIENT straight to us: a REPLY to the client, who is connected to at once
    let out = h.ask(
        CLIENT,
        7,
        Command::PeerHandshake,
        target,
        None,
        Some(hs(Mode::FromClient, msg1(10), None, None)),
    );
    let (to, Message::Response(r)) = only(out) else {
        panic!("not a response")
    };
    assert_eq!((to, r.tid), (CLIENT, 7));
    let v = Handshake::from_bytes(r.value.as_deref().unwrap()).unwrap();
    assert_eq!((v.mode, v.peer_address), (Mode::Reply.to_u64(), None));
    let c = connections(&mut h);
    assert_eq!(c.len(), 1);
    assert!(c[0].connect_now);
    assert_eq!(c[0].client_address, CLIENT);
    assert_eq!(c[0].remote_stream_id, 10);

    // FROM_RELAY: FROM_SERVER back to the relay, same tid, the client's address kept
    let out = h.ask(
        RELAY,
        8,
        Command::PeerHandshake,
        target,
        None,
        Some(hs(Mode::FromRelay, msg1(11), Some(CLIENT), None)),
    );
    let (to, Message::Request(q)) = only(out) else {
        panic!("not a relayed request")
    };
    assert_eq!((to, q.tid), (RELAY, 8));
    let v = Handshake::from_bytes(q.value.as_deref().unwrap()).unwrap();
    assert_eq!(
        (v.mode, v.peer_address),
        (Mode::FromServer.to_u64(), Some(CLIENT))
    );
    let c = connections(&mut h);
    assert_eq!(c.len(), 1);
    assert!(
        !c[0].connect_now,
        "a firewalled client binds on its first packet"
    );

    // FROM_SECOND_RELAY: FROM_SERVER to the first relay it names
    let out = h.ask(
        OTHER,
        9,
        Command::PeerHandshake,
        target,
        None,
        Some(hs(
            Mode::FromSecondRelay,
            msg1(12),
            Some(CLIENT),
            Some(RELAY),
        )),
    );
    let (to, Message::Request(q)) = only(out) else {
        panic!("not a relayed request")
    };
    assert_eq!((to, q.tid), (RELAY, 9));
    assert_eq!(connections(&mut h).len(), 1);

    // the same msg1 again (another relay): the same reply, no second connection
    let out = h.ask(
        OTHER,
        10,
        Command::PeerHandshake,
        target,
        None,
        Some(hs(Mode::FromRelay, msg1(11), Some(CLIENT), None)),
    );
    let (_, Message::Request(again)) = only(out) else {
        panic!("not relayed")
    };
    let first = Handshake::from_bytes(q.value.as_deref().unwrap()).unwrap();
    let again = Handshake::from_bytes(again.value.as_deref().unwrap()).unwrap();
    assert_ne!(first.noise, again.noise, "msg1(11) and msg1(12) differ");
    assert!(connections(&mut h).is_empty());
    assert_eq!(h.dht.servers().stats().deduped, 1);

    // REPLY is not a request a server takes; a holepunch for our key is dropped
    assert!(
        h.ask(
            CLIENT,
            11,
            Command::PeerHandshake,
            target,
            None,
            Some(hs(Mode::Reply, msg1(13), None, None))
        )
        .is_empty()
    );
}
