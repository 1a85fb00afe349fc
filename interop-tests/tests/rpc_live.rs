//! Live dht-rpc against a JS testnet: a plain Rust UDP socket sends requests encoded by
//! `dht::rpc::wire` and decodes the JS nodes' replies with the same codec.

use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::time::Duration;

use dht::codec::{Decode, Encode};
use dht::crypto::node_id;
use dht::rpc::wire::{InternalCommand, Message, Request, Response, errors};
use interop_tests::Testnet;

struct Client {
    sock: UdpSocket,
    addr: SocketAddrV4,
    tid: u16,
}

impl Client {
    fn new() -> Self {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let SocketAddr::V4(addr) = sock.local_addr().unwrap() else {
            unreachable!()
        };
        Self {
            sock,
            addr,
            tid: 0x4000,
        }
    }

    /// Sends `req` (with a fresh tid) up to 4 times, 500 ms apart, as dht-rpc retries, and
    /// returns the response whose tid matches, with its source address.
    fn request(&mut self, to: SocketAddrV4, mut req: Request) -> (Response, SocketAddrV4) {
        self.tid = self.tid.wrapping_add(1);
        req.tid = self.tid;
        req.to = to;
        let bytes = req.to_bytes();
        let mut buf = [0u8; 2048];
        for _ in 0..4 {
            self.sock.send_to(&bytes, to).unwrap();
            let deadline = std::time::Instant::now() + Duration::from_millis(500);
            while std::time::Instant::now() < deadline {
                let Ok((n, SocketAddr::V4(from))) = self.sock.recv_from(&mut buf) else {
                    break;
                };
                match Message::from_bytes(&buf[..n]) {
                    Ok(Message::Response(res)) if res.tid == self.tid => return (res, from),
                    Ok(_) => continue,
                    Err(e) => panic!("JS sent a datagram our codec cannot decode: {e}"),
                }
            }
        }
        panic!("no response from {to} to command {}", req.command);
    }
}

fn internal(command: InternalCommand, target: Option<[u8; 32]>, value: Option<Vec<u8>>) -> Request {
    Request {
        tid: 0,
        to: "0.0.0.0:0".parse().unwrap(),
        id: None,
        token: None,
        internal: true,
        command: command.to_u64(),
        target,
        value,
    }
}

#[test]
fn ping_and_find_node_against_js_testnet() {
    let net = Testnet::start(5).expect("JS testnet");
    let mut client = Client::new();
    let known: Vec<(SocketAddrV4, [u8; 32])> = net.nodes.iter().map(|a| (*a, node_id(a))).collect();

    // PING every node. Persistent nodes include their id, which must be H(their address).
    let mut with_id = 0;
    for (i, node) in net.nodes.iter().enumerate() {
        let (res, from) = client.request(*node, internal(InternalCommand::Ping, None, None));
        assert_eq!(from, *node, "reply from another address");
        assert_eq!(res.to, client.addr, "reflexive address is not our socket's");
        assert_eq!(res.error, 0);
        assert!(res.closer_nodes.is_empty() && res.value.is_none() && res.token.is_none());
        if let Some(id) = res.id {
            assert_eq!(
                id,
                node_id(node),
                "node {node} sent an id that is not H(addr)"
            );
            assert_eq!(net.ids[i].as_deref(), Some(hex::encode(id).as_str()));
            with_id += 1;
        }
    }
    // The first node of a hyperdht testnet (hyperdht/testnet.js createTestnet) starts with no
    // bootstrap peers, so nobody confirms its address and it stays ephemeral (it sends no id);
    // the others are persistent.
    assert_eq!(
        with_id,
        net.nodes.len() - 1,
        "persistent nodes answering with an id"
    );

    // FIND_NODE for a few targets: closer nodes are testnet members whose ids we can derive.
    for seed in 0u8..4 {
        let target = dht::crypto::hash(&[seed]);
        let asked = net.nodes[1 + usize::from(seed) % (net.nodes.len() - 1)];
        let (res, _) = client.request(
            asked,
            internal(InternalCommand::FindNode, Some(target), None),
        );
        assert_eq!(res.to, client.addr);
        assert_eq!(res.error, 0);
        assert!(res.token.is_none() && res.value.is_none());
        assert!(
            !res.closer_nodes.is_empty(),
            "FIND_NODE returned no closer nodes"
        );
        for n in &res.closer_nodes {
            let entry = known.iter().find(|(a, _)| a == n);
            assert!(entry.is_some(), "closer node {n} is not a testnet node");
            assert_eq!(entry.unwrap().1, node_id(n));
        }
        // Every persistent node other than the one asked is in its table (5-node testnet).
        assert!(res.closer_nodes.len() >= net.nodes.len() - 2);
    }
}

#[test]
fn js_answers_unknown_commands_as_the_codec_expects() {
    let net = Testnet::start(4).expect("JS testnet");
    let mut client = Client::new();
    let target = dht::crypto::hash(b"some target");

    // An internal command dht-rpc does not know: UNKNOWN_COMMAND with closer nodes.
    let mut req = internal(InternalCommand::Ping, Some(target), None);
    req.command = 99;
    let (res, _) = client.request(net.nodes[1], req);
    assert_eq!(res.error, errors::UNKNOWN_COMMAND);
    assert!(!res.closer_nodes.is_empty());

    // A hyperdht storage command (LOOKUP) at the ephemeral first node: UNKNOWN_COMMAND + closer
    // nodes, at a persistent node: a token and no error.
    let mut lookup = internal(InternalCommand::Ping, Some(target), None);
    lookup.internal = false;
    lookup.command = dht::hyperdht::Command::Lookup.to_u64();
    let (res, _) = client.request(net.bootstrap, lookup.clone());
    assert_eq!(res.error, errors::UNKNOWN_COMMAND);
    assert!(res.id.is_none());
    let (res, _) = client.request(net.nodes[2], lookup);
    assert_eq!(res.error, 0);
    assert!(res.token.is_some(), "persistent node handed out no token");
    assert!(res.id.is_some());
}
