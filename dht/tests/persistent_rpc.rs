//! The store behind an `rpc::Node`, through public API only, the way a HyperDHT layer will
//! compose them: the node registers the store's commands, hands requests out as events, the
//! store answers, and the node sends what `Response::reply_opts` says. Datagrams in and out are
//! the wire format JS speaks, so this is what a JS client would see.

#![allow(clippy::disallowed_methods)] // tests take real time as their origin

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Instant;

use dht::codec::{Decode, Encode};
use dht::crypto::{KeyPair, hash, sign_announce, sign_mutable};
use dht::hyperdht::Command;
use dht::hyperdht::messages::{Announce, LookupRawReply, MutablePutRequest, Peer};
use dht::hyperdht::persistent::{
    Context, Persistent, RouterAction, StoreCommand, StoreConfig, StoreRequest,
};
use dht::rpc::wire::{Message, Request, Response};
use dht::rpc::{Config, Event, Node};

const ME: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 1), 30_000);
const CLIENT: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 2), 40_000);

struct Layer {
    node: Node,
    store: Persistent,
    now: Instant,
}

impl Layer {
    fn new() -> Self {
        let now = Instant::now();
        let mut node = Node::bootstrapper(Config::default(), ME, now, [1; 32]);
        for c in StoreCommand::ALL {
            node.register_command(c.command().to_u64());
        }
        while node.poll_transmit().is_some() {}
        while node.poll_event().is_some() {}
        Self {
            node,
            store: Persistent::new(&StoreConfig::default(), now, [2; 32]),
            now,
        }
    }

    /// One request datagram from the client; the store answers the node's events; returns the
    /// response datagram the node sends back, if any.
    fn ask(
        &mut self,
        command: Command,
        target: [u8; 32],
        token: Option<[u8; 32]>,
        value: Option<Vec<u8>>,
    ) -> Option<Response> {
        let req = Request {
            tid: 7,
            to: ME,
            id: None,
            token,
            internal: false,
            command: command.to_u64(),
            target: Some(target),
            value,
        };
        self.node.handle_datagram(self.now, CLIENT, &req.to_bytes());
        let node_id = self.node.id().expect("a bootstrapper has an id");
        while let Some(ev) = self.node.poll_event() {
            let Event::Request(incoming) = ev else {
                continue;
            };
            let store_req = StoreRequest::from_incoming(&incoming, None).expect("a store command");
            let ctx = Context {
                now: self.now,
                unix_ms: 1_700_000_000_000,
                node_id,
            };
            let out = self.store.handle(&ctx, &store_req);
            assert!(!matches!(out.router, Some(RouterAction::Delete { .. })));
            if let Some(opts) = out.response.reply_opts() {
                self.node.reply(&incoming, opts);
            }
        }
        let mut reply = None;
        while let Some(t) = self.node.poll_transmit() {
            assert_eq!(t.to, CLIENT);
            if let Ok(Message::Response(r)) = Message::from_bytes(&t.payload) {
                reply = Some(r);
            }
        }
        reply
    }
}

#[test]
fn announce_then_lookup_through_the_node() {
    let mut l = Layer::new();
    let node_id = l.node.id().expect("id");
    let token = l.node.token_for(*CLIENT.ip());
    let topic = [0xaa; 32];
    let kp = KeyPair::from_seed(&[1; 32]);
    let peer = Peer {
        public_key: kp.public_key,
        relay_addresses: vec![ME],
    };
    let ann = Announce {
        signature: Some(sign_announce(&kp, &topic, &node_id, &token, &peer, None)),
        peer: Some(peer.clone()),
        refresh: None,
        bump: 0,
    };

    // no token: the store stays silent, the node sends nothing
    assert_eq!(
        l.ask(Command::Announce, topic, None, Some(ann.to_bytes())),
        None
    );
    // a wrong token: the node answers INVALID_TOKEN itself, the store never sees it
    let r = l
        .ask(
            Command::Announce,
            topic,
            Some([9; 32]),
            Some(ann.to_bytes()),
        )
        .expect("error");
    assert_ne!(r.error, 0);
    // the right token: acknowledged without token or closer nodes
    let r = l
        .ask(Command::Announce, topic, Some(token), Some(ann.to_bytes()))
        .expect("ack");
    assert_eq!((r.error, r.token, r.value), (0, None, None));
    assert!(r.closer_nodes.is_empty());

    let r = l
        .ask(Command::Lookup, topic, None, None)
        .expect("lookup reply");
    assert_eq!(
        r.token,
        Some(token),
        "a LOOKUP reply carries a token for the next write"
    );
    let got = LookupRawReply::from_bytes(&r.value.expect("records")).expect("decodes");
    assert_eq!(got.peers, vec![peer]);
}

#[test]
fn mutable_put_with_a_reused_seq_is_error_16_on_the_wire() {
    let mut l = Layer::new();
    let token = l.node.token_for(*CLIENT.ip());
    let kp = KeyPair::from_seed(&[3; 32]);
    let target = hash(&kp.public_key);
    let put = |seq: u64, v: &[u8]| {
        MutablePutRequest {
            public_key: kp.public_key,
            seq,
            value: v.to_vec(),
            signature: sign_mutable(&kp, seq, v),
        }
        .to_bytes()
    };
    let r = l
        .ask(Command::MutablePut, target, Some(token), Some(put(1, b"a")))
        .expect("ok");
    assert_eq!(r.error, 0);
    let r = l
        .ask(Command::MutablePut, target, Some(token), Some(put(1, b"b")))
        .expect("error");
    assert_eq!((r.error, r.token, r.value), (16, None, None));
    let r = l
        .ask(Command::MutablePut, target, Some(token), Some(put(0, b"c")))
        .expect("error");
    assert_eq!(r.error, 17);
}
