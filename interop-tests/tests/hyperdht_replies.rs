//! For the same stored state, a Rust storage node answers every hyperdht command as a live JS
//! storage node (hyperdht 6.34.0 `lib/persistent.js`) does: one raw request script is sent, as
//! datagrams, to a persistent node of a JS testnet and to a Rust storage node on the same
//! network, and the answers are compared — FIND_PEER, MUTABLE_GET and IMMUTABLE_GET values byte
//! for byte, LOOKUP as the same set of records and the same bump, error codes and silences the
//! same, token present or absent the same.
//!
//! Only what depends on the node differs between the two scripts: announce and unannounce
//! signatures cover the storage node's id and the token it handed out, so each node gets its
//! own signature over the same record.
//!
//! A silence is told apart from a slow answer without waiting: after each request the client
//! sends a LOOKUP probe, and both nodes answer their requests one at a time in arrival order
//! (JS's handlers are synchronous; the Rust `HyperDht` answers inside `handle_datagram`), so
//! when the probe's answer arrives an answer to the request would have come first.

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::time::Duration;

use dht::codec::{Decode, Encode, Writer};
use dht::crypto::{KeyPair, hash, sign_announce, sign_mutable, sign_unannounce};
use dht::hyperdht::Command;
use dht::hyperdht::messages::{self, LookupRawReply, MutablePutRequest, Peer};
use dht::rpc::wire::{Message, Request};
use interop_tests::Testnet;
use interop_tests::records;

/// What a node did with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    /// No reply (the probe that followed was answered).
    Silent,
    /// A reply: error code, value, whether it carried a token.
    Reply {
        error: u64,
        value: Option<Vec<u8>>,
        token: bool,
    },
}

struct Client {
    sock: UdpSocket,
    tid: u16,
}

impl Client {
    fn new() -> Self {
        let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        // a guard against a node that answers nothing at all, not a silence detector
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        Self { sock, tid: 1 }
    }

    fn send(&mut self, to: SocketAddrV4, req: Request) -> u16 {
        self.tid = self.tid.wrapping_add(1);
        let req = Request {
            tid: self.tid,
            ..req
        };
        self.sock.send_to(&req.to_bytes(), to).expect("send");
        self.tid
    }

    /// Sends `command` to `to`, then a LOOKUP probe; returns the answer to the command, the
    /// responder's id (from the probe's reply) and the token the command's reply carried.
    fn ask(
        &mut self,
        to: SocketAddrV4,
        command: Command,
        target: Option<[u8; 32]>,
        token: Option<[u8; 32]>,
        value: Option<Vec<u8>>,
    ) -> (Answer, Option<[u8; 32]>, Option<[u8; 32]>) {
        let base = Request {
            tid: 0,
            to,
            id: None,
            token,
            internal: false,
            command: command.to_u64(),
            target,
            value,
        };
        let tid = self.send(to, base.clone());
        let probe = self.send(
            to,
            Request {
                command: Command::Lookup.to_u64(),
                target: Some(hash(b"probe")),
                value: None,
                token: None,
                ..base
            },
        );
        let mut answer = Answer::Silent;
        let mut handed_token = None;
        let mut buf = [0u8; 2048];
        loop {
            let (n, from) = self
                .sock
                .recv_from(&mut buf)
                .expect("an answer to the probe");
            assert_eq!(from, std::net::SocketAddr::V4(to));
            let Ok(Message::Response(r)) = Message::from_bytes(&buf[..n]) else {
                continue;
            };
            if r.tid == tid {
                handed_token = r.token;
                answer = Answer::Reply {
                    error: r.error,
                    value: r.value,
                    token: r.token.is_some(),
                };
            } else if r.tid == probe {
                return (answer, r.id, handed_token);
            }
        }
    }
}

/// The peer record of key `i` with `relays` relay addresses (ports 20000 + i*10 + r).
fn peer(kp: &KeyPair, i: u16, relays: u16) -> Peer {
    Peer {
        public_key: kp.public_key,
        relay_addresses: (0..relays)
            .map(|r| SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 20_000 + i * 10 + r))
            .collect(),
    }
}

fn kp(i: u8) -> KeyPair {
    KeyPair::from_seed(&[i; 32])
}

fn announce_value(
    kp: &KeyPair,
    topic: &[u8; 32],
    id: &[u8; 32],
    token: &[u8; 32],
    peer: &Peer,
    tamper: bool,
    bump: u64,
) -> Vec<u8> {
    let mut sig = sign_announce(kp, topic, id, token, peer, None);
    if tamper {
        sig[5] ^= 1;
    }
    messages::Announce {
        peer: Some(peer.clone()),
        refresh: None,
        signature: Some(sig),
        bump,
    }
    .to_bytes()
}

fn mutable_put(kp: &KeyPair, seq: u64, value: &[u8], tamper: bool) -> Vec<u8> {
    let mut signature = sign_mutable(kp, seq, value);
    if tamper {
        signature[9] ^= 1;
    }
    MutablePutRequest {
        public_key: kp.public_key,
        seq,
        value: value.to_vec(),
        signature,
    }
    .to_bytes()
}

fn uint(n: u64) -> Vec<u8> {
    let mut v = Vec::new();
    v.put_uint(n);
    v
}

/// A named write: target, token, value.
type Put = (&'static str, [u8; 32], Option<[u8; 32]>, Vec<u8>);

/// One step of the script and what the node answered.
type Transcript = Vec<(&'static str, Answer)>;

/// Runs the whole request script against the storage node at `to` and records every answer.
/// LOOKUP values are normalised to their record set (sorted) and bump, as JS picks up to 20
/// records at random.
fn run_script(c: &mut Client, to: SocketAddrV4) -> Transcript {
    use Command::*;
    let topic = hash(b"hyperdht replies topic");
    let mut t: Transcript = Vec::new();

    // the node's id and a token for our IP, from a LOOKUP of an empty topic; a node answers
    // hyperdht commands once it is persistent and has made its store (JS does that on its
    // `persistent` event), so poll until it does
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let (a, id, token) = loop {
        let (a, id, token) = c.ask(to, Lookup, Some(topic), None, None);
        if token.is_some() || std::time::Instant::now() > deadline {
            break (a, id, token);
        }
        std::thread::sleep(Duration::from_millis(100)); // poll interval
    };
    t.push(("lookup empty topic", a.clone()));
    let id = id.expect("a persistent node sends its id");
    let token = token.unwrap_or_else(|| panic!("{to}: no LOOKUP reply with a token ({a:?})"));

    let keys: Vec<KeyPair> = (1..=3).map(kp).collect();
    let peers: Vec<Peer> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| peer(k, i as u16, 1 + i as u16))
        .collect();

    // announces: without token, with a bad token, tampered, malformed, without target, good
    let v0 = announce_value(&keys[0], &topic, &id, &token, &peers[0], false, 0);
    t.push((
        "announce without token",
        c.ask(to, Announce, Some(topic), None, Some(v0.clone())).0,
    ));
    t.push((
        "announce with a wrong token",
        c.ask(to, Announce, Some(topic), Some([7; 32]), Some(v0.clone()))
            .0,
    ));
    let bad = announce_value(&keys[0], &topic, &id, &token, &peers[0], true, 0);
    t.push((
        "announce with a tampered signature",
        c.ask(to, Announce, Some(topic), Some(token), Some(bad)).0,
    ));
    t.push((
        "announce with a malformed value",
        c.ask(to, Announce, Some(topic), Some(token), Some(vec![0xff; 3]))
            .0,
    ));
    t.push((
        "announce without value",
        c.ask(to, Announce, Some(topic), Some(token), None).0,
    ));
    t.push((
        "lookup without target",
        c.ask(to, Lookup, None, None, None).0,
    ));
    for (i, (k, p)) in keys.iter().zip(&peers).enumerate() {
        // key 2 bumps the topic (any bump up to the node's clock + 60 s is kept)
        let v = announce_value(k, &topic, &id, &token, p, false, [0, 1_234, 0][i]);
        let (a, _, _) = c.ask(to, Announce, Some(topic), Some(token), Some(v));
        t.push((["announce key 1", "announce key 2", "announce key 3"][i], a));
    }
    // a record with 5 relays: stored with the first 3
    let k4 = kp(4);
    let p4 = peer(&k4, 4, 5);
    let v4 = announce_value(&k4, &topic, &id, &token, &p4, false, 0);
    t.push((
        "announce with 5 relays",
        c.ask(to, Announce, Some(topic), Some(token), Some(v4)).0,
    ));
    let (a, _, _) = c.ask(to, Lookup, Some(topic), None, None);
    t.push(("lookup 4 records", normalise_lookup(a)));

    // unannounce key 2: tampered (silent), then signed
    let mut gone = peers[1].clone();
    gone.relay_addresses.clear();
    let mut sig = sign_unannounce(&keys[1], &topic, &id, &token, &gone, None);
    let un = |sig: [u8; 64]| {
        messages::Announce {
            peer: Some(gone.clone()),
            refresh: None,
            signature: Some(sig),
            bump: 0,
        }
        .to_bytes()
    };
    let good_un = un(sig);
    sig[0] ^= 1;
    t.push((
        "unannounce tampered",
        c.ask(to, Unannounce, Some(topic), Some(token), Some(un(sig)))
            .0,
    ));
    t.push((
        "unannounce key 2",
        c.ask(to, Unannounce, Some(topic), Some(token), Some(good_un))
            .0,
    ));
    let (a, _, _) = c.ask(to, Lookup, Some(topic), None, None);
    t.push(("lookup after unannounce", normalise_lookup(a)));

    // announce-self: the router record answers FIND_PEER
    let k5 = kp(5);
    let self_target = hash(&k5.public_key);
    let p5 = peer(&k5, 5, 2);
    let v5 = announce_value(&k5, &self_target, &id, &token, &p5, false, 0);
    t.push((
        "find_peer before announce-self",
        c.ask(to, FindPeer, Some(self_target), None, None).0,
    ));
    t.push((
        "announce-self",
        c.ask(to, Announce, Some(self_target), Some(token), Some(v5))
            .0,
    ));
    t.push((
        "find_peer after announce-self",
        c.ask(to, FindPeer, Some(self_target), None, None).0,
    ));
    let (a, _, _) = c.ask(to, Lookup, Some(self_target), None, None);
    t.push(("lookup of the self-announced key", normalise_lookup(a)));

    // mutable values
    let km = kp(6);
    let mt = hash(&km.public_key);
    let puts: [Put; 7] = [
        (
            "mutable_put without token",
            mt,
            None,
            mutable_put(&km, 1, b"one", false),
        ),
        (
            "mutable_put tampered",
            mt,
            Some(token),
            mutable_put(&km, 1, b"one", true),
        ),
        (
            "mutable_put wrong target",
            topic,
            Some(token),
            mutable_put(&km, 1, b"one", false),
        ),
        (
            "mutable_put seq 1",
            mt,
            Some(token),
            mutable_put(&km, 1, b"one", false),
        ),
        (
            "mutable_put seq 1 again",
            mt,
            Some(token),
            mutable_put(&km, 1, b"one", false),
        ),
        (
            "mutable_put seq 1 other value",
            mt,
            Some(token),
            mutable_put(&km, 1, b"two", false),
        ),
        (
            "mutable_put seq 0",
            mt,
            Some(token),
            mutable_put(&km, 0, b"zero", false),
        ),
    ];
    for (name, target, tok, v) in puts {
        t.push((name, c.ask(to, MutablePut, Some(target), tok, Some(v)).0));
    }
    for (name, seq) in [
        ("mutable_get seq 0", 0),
        ("mutable_get seq 1", 1),
        ("mutable_get seq 2", 2),
    ] {
        t.push((
            name,
            c.ask(to, MutableGet, Some(mt), None, Some(uint(seq))).0,
        ));
    }
    t.push((
        "mutable_put seq 5",
        c.ask(
            to,
            MutablePut,
            Some(mt),
            Some(token),
            Some(mutable_put(&km, 5, b"five", false)),
        )
        .0,
    ));
    t.push((
        "mutable_get after seq 5",
        c.ask(to, MutableGet, Some(mt), None, Some(uint(0))).0,
    ));
    t.push((
        "mutable_get of an unknown key",
        c.ask(to, MutableGet, Some(hash(b"nobody")), None, Some(uint(0)))
            .0,
    ));
    t.push((
        "mutable_get without value",
        c.ask(to, MutableGet, Some(mt), None, None).0,
    ));

    // immutable values
    let value = b"an immutable value".to_vec();
    let it = hash(&value);
    t.push((
        "immutable_put wrong target",
        c.ask(
            to,
            ImmutablePut,
            Some(topic),
            Some(token),
            Some(value.clone()),
        )
        .0,
    ));
    t.push((
        "immutable_put without token",
        c.ask(to, ImmutablePut, Some(it), None, Some(value.clone()))
            .0,
    ));
    t.push((
        "immutable_put",
        c.ask(to, ImmutablePut, Some(it), Some(token), Some(value.clone()))
            .0,
    ));
    t.push((
        "immutable_get",
        c.ask(to, ImmutableGet, Some(it), None, None).0,
    ));
    t.push((
        "immutable_get of an unknown hash",
        c.ask(to, ImmutableGet, Some(hash(b"unknown")), None, None)
            .0,
    ));
    t
}

/// A LOOKUP reply's records sorted, so two random picks of the same set compare equal.
fn normalise_lookup(a: Answer) -> Answer {
    match a {
        Answer::Reply {
            error,
            value: Some(v),
            token,
        } => {
            let mut l = LookupRawReply::from_bytes(&v).expect("a LOOKUP value decodes");
            l.peers.sort_by_key(|p| p.to_bytes());
            Answer::Reply {
                error,
                value: Some(l.to_bytes()),
                token,
            }
        }
        other => other,
    }
}

#[test]
fn rust_storage_node_answers_as_a_js_storage_node() {
    let net = Testnet::start(3).expect("JS testnet");
    // the testnet's second node is persistent and stores records
    let js = net.nodes[1];
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let rust = rt
        .block_on(records::storage_node(&[net.bootstrap], 0))
        .expect("Rust storage node");
    let store = |rt: &tokio::runtime::Runtime| {
        rt.block_on(rust.stats())
            .expect("stats")
            .store
            .expect("a storage node")
    };
    let mut c = Client::new();
    let js_t = run_script(&mut c, js);
    let rust_t = run_script(&mut c, rust.local_addr());

    let mut silences = 0;
    let mut errors = 0;
    for ((name, j), (_, r)) in js_t.iter().zip(&rust_t) {
        println!("{name}: JS {j:?}");
        assert_eq!(
            r,
            j,
            "{name}: Rust answered differently from JS (Rust store: {:?})",
            store(&rt)
        );
        match j {
            Answer::Silent => silences += 1,
            Answer::Reply { error, .. } if *error != 0 => errors += 1,
            Answer::Reply { .. } => {}
        }
    }
    assert_eq!(js_t.len(), rust_t.len());
    // the compared LOOKUP carries all four records and key 2's bump
    let lookup = js_t
        .iter()
        .find(|(n, _)| *n == "lookup 4 records")
        .and_then(|(_, a)| match a {
            Answer::Reply { value: Some(v), .. } => LookupRawReply::from_bytes(v).ok(),
            _ => None,
        })
        .expect("a LOOKUP value");
    assert_eq!((lookup.peers.len(), lookup.bump), (4, 1_234));
    println!(
        "{} requests, same answers from JS and Rust: {silences} silences, {errors} errors",
        js_t.len()
    );
    // the script exercises every kind of answer: values, errors 16 and 17, INVALID_TOKEN
    // and silences
    assert!(
        silences >= 8 && errors >= 3,
        "{silences} silences, {errors} errors"
    );
    let s = store(&rt);
    assert!(s.dropped_bad_signature >= 3, "{s:?}");
    rt.block_on(rust.destroy());
}
