//! protomux and blind-relay against the pinned JS packages (`fixtures/gen/protomux.js`): single
//! frames both ways, a transcript of two JS muxes replayed by two Rust ones (same frames out,
//! same events), blind-relay's messages, and two JS clients pairing through a JS relay
//! replayed by Rust clients and a Rust relay.

use std::collections::BTreeMap;
use std::path::PathBuf;

use dht::blind_relay::client::RelayClient;
use dht::blind_relay::server::{RelayServer, SessionId};
use dht::blind_relay::{PROTOCOL, Pair, RelayMessage, Unpair};
use dht::codec::{Decode, Encode};
use dht::protomux::{ChannelId, Event, Frame, Message, Mux, Open};
use serde_json::{Value, json};

fn vectors(rel: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/vectors")
        .join(rel);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn list<'a>(doc: &'a Value, key: &str) -> &'a Vec<Value> {
    let c = doc[key].as_array().unwrap_or_else(|| panic!("no {key}"));
    assert!(!c.is_empty(), "empty {key}");
    c
}

fn unhex(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().expect("hex string")).expect("valid hex")
}

fn u(v: &Value) -> u64 {
    v.as_u64().expect("number")
}

/// The JSON form of a frame in the vectors.
fn frame(v: &Value) -> Frame {
    match v["type"].as_str().unwrap() {
        "empty" => Frame::Empty,
        "message" => Frame::Message(Message {
            channel: u(&v["channel"]),
            kind: u(&v["kind"]),
            payload: unhex(&v["payload"]),
        }),
        "open" => Frame::Open(Open {
            local_id: u(&v["local_id"]),
            protocol: v["protocol"].as_str().unwrap().to_owned(),
            id: (!v["id"].is_null()).then(|| unhex(&v["id"])),
            handshake: unhex(&v["handshake"]),
        }),
        "reject" => Frame::Reject {
            remote_id: u(&v["remote_id"]),
        },
        "close" => Frame::Close {
            local_id: u(&v["local_id"]),
        },
        "batch" => Frame::Batch(v["entries"].as_array().unwrap().iter().map(frame).collect()),
        "unknown_control" => Frame::UnknownControl {
            kind: u(&v["kind"]),
        },
        other => panic!("unknown frame type {other}"),
    }
}

#[test]
fn protomux_frames_as_js_writes_and_reads_them() {
    let doc = vectors("protomux/frames.json");
    for case in list(&doc, "cases") {
        let name = case["name"].as_str().unwrap();
        let want = frame(&case["value"]);
        let bytes = unhex(&case["hex"]);
        assert_eq!(Frame::from_bytes(&bytes).unwrap(), want, "{name}: decode");
        assert_eq!(
            hex::encode(want.to_bytes()),
            hex::encode(&bytes),
            "{name}: encode"
        );
    }
    for case in list(&doc, "lenient") {
        let got = Frame::from_bytes(&unhex(&case["hex"]));
        assert_eq!(got, Ok(frame(&case["value"])), "{}", case["name"]);
    }
    for case in list(&doc, "invalid") {
        // JS destroys the stream on each of these; the mux reports an error.
        let mut mux = Mux::default();
        assert!(
            mux.handle_frame(&unhex(&case["hex"])).is_err(),
            "{}",
            case["name"]
        );
    }
}

/// One side of the transcript: a mux and the labels of its channels.
#[derive(Default)]
struct Side {
    mux: Mux,
    labels: BTreeMap<ChannelId, String>,
    by_label: BTreeMap<String, ChannelId>,
    /// Protocols registered with `pair`: a `Pair` event is answered by opening with this
    /// label and handshake (what the JS notify callback does).
    accept: BTreeMap<String, (String, Vec<u8>)>,
}

impl Side {
    fn open(&mut self, label: &str, protocol: &str, id: Option<Vec<u8>>, hs: &[u8]) {
        let ch = self.mux.open(protocol, id.as_deref(), hs).unwrap();
        self.labels.insert(ch, label.to_owned());
        self.by_label.insert(label.to_owned(), ch);
    }

    fn out(&mut self) -> Vec<String> {
        std::iter::from_fn(|| self.mux.poll_transmit())
            .map(hex::encode)
            .collect()
    }

    fn label(&self, ch: ChannelId) -> String {
        self.labels[&ch].clone()
    }

    /// Events as JS reports them (a reject is JS's `onclose(isRemote = true)`).
    fn events(&mut self) -> Vec<Value> {
        let mut out = Vec::new();
        while let Some(e) = self.mux.poll_event() {
            match e {
                Event::Opened { channel, handshake } => out.push(json!({
                    "channel": self.label(channel), "event": "opened",
                    "handshake": hex::encode(handshake)
                })),
                Event::Message {
                    channel,
                    kind,
                    payload,
                } => out.push(json!({
                    "channel": self.label(channel), "event": "message", "kind": kind,
                    "payload": hex::encode(payload)
                })),
                Event::Closed { channel } | Event::Rejected { channel } => {
                    out.push(json!({ "channel": self.label(channel), "event": "closed" }))
                }
                Event::Pair { protocol, id } => {
                    let (label, hs) = self.accept[&protocol].clone();
                    self.open(&label, &protocol, id.clone(), &hs);
                    self.mux.finish_pairing(&protocol, id.as_deref());
                }
            }
        }
        out
    }
}

#[test]
fn protomux_transcript_of_two_js_muxes_replays_byte_for_byte() {
    let doc = vectors("protomux/transcript.json");
    let steps = list(&doc["cases"][0], "steps");
    assert!(steps.len() > 20);
    let mut sides: BTreeMap<&str, Side> =
        BTreeMap::from([("a", Side::default()), ("b", Side::default())]);
    for (i, step) in steps.iter().enumerate() {
        let op = step["op"].as_str().unwrap();
        let side = step["side"].as_str().or(step["to"].as_str()).unwrap();
        let mut events: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
        {
            let s = sides.get_mut(side).unwrap();
            let label = step["channel"].as_str().unwrap_or_default();
            match op {
                "open" => {
                    let id = (!step["id"].is_null()).then(|| unhex(&step["id"]));
                    let hs = unhex(&step["handshake"]);
                    s.open(label, step["protocol"].as_str().unwrap(), id, &hs);
                }
                "send" => {
                    let c = s.by_label[label];
                    s.mux
                        .send(c, u(&step["kind"]), &unhex(&step["payload"]))
                        .unwrap();
                }
                "close" => {
                    let c = s.by_label[label];
                    s.mux.close(c).unwrap();
                }
                "cork" => s.mux.cork(),
                "uncork" => s.mux.uncork(),
                "pair" => {
                    let protocol = step["protocol"].as_str().unwrap();
                    s.mux.pair(protocol, None);
                    let label = format!("{side}:{protocol}");
                    s.accept.insert(protocol.to_owned(), (label, vec![0xbb]));
                }
                "deliver" => {
                    for f in step["frames"].as_array().unwrap() {
                        s.mux.handle_frame(&unhex(f)).unwrap();
                        // answer `Pair` before the next frame, as JS's notify callback does
                        let ev = s.events();
                        events.entry(side).or_default().extend(ev);
                    }
                }
                other => panic!("unknown op {other}"),
            }
        }
        for name in ["a", "b"] {
            let s = sides.get_mut(name).unwrap();
            let ev = s.events();
            events.entry(name).or_default().extend(ev);
            let out = s.out();
            let want_out: Vec<String> = step["out"][name]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_owned())
                .collect();
            assert_eq!(out, want_out, "step {i} ({op}): frames written by {name}");
            assert_eq!(
                Value::Array(events.remove(name).unwrap_or_default()),
                step["events"][name],
                "step {i} ({op}): events on {name}"
            );
        }
    }
    for s in sides.values() {
        assert!(!s.mux.is_paused());
    }
}

#[test]
fn blind_relay_messages_as_js_writes_and_reads_them() {
    let doc = vectors("blind_relay/messages.json");
    let pair = |v: &Value| Pair {
        is_initiator: v["is_initiator"].as_bool().unwrap(),
        token: unhex(&v["token"]).try_into().unwrap(),
        id: u(&v["id"]),
        seq: u(&v["seq"]),
    };
    for case in list(&doc, "cases") {
        let bytes = unhex(&case["hex"]);
        let name = case["name"].as_str().unwrap();
        if case["message"] == "pair" {
            let want = pair(&case["value"]);
            assert_eq!(Pair::from_bytes(&bytes).unwrap(), want, "{name}");
            assert_eq!(want.to_bytes(), bytes, "{name}");
        } else {
            let want = Unpair {
                token: unhex(&case["value"]["token"]).try_into().unwrap(),
            };
            assert_eq!(Unpair::from_bytes(&bytes).unwrap(), want, "{name}");
            assert_eq!(want.to_bytes(), bytes, "{name}");
        }
    }
    for case in list(&doc, "lenient") {
        let got = Pair::from_bytes(&unhex(&case["hex"]));
        assert_eq!(got, Ok(pair(&case["value"])), "{}", case["name"]);
    }
    for case in list(&doc, "invalid") {
        assert!(
            Pair::from_bytes(&unhex(&case["hex"])).is_err(),
            "{}",
            case["name"]
        );
    }
}

/// One pipe end of the blind-relay transcript: a client or a relay session, each on its mux.
struct RelayEnd {
    mux: Mux,
    channel: Option<ChannelId>,
    client: RelayClient,
    session: SessionId,
}

#[test]
fn blind_relay_transcript_of_js_clients_and_relay_replays_byte_for_byte() {
    let doc = vectors("blind_relay/transcript.json");
    let steps = list(&doc["cases"][0], "steps");
    let mut server = RelayServer::new();
    let names = ["client:a", "relay:a", "client:b", "relay:b"];
    let mut ends: BTreeMap<&str, RelayEnd> = names
        .iter()
        .map(|n| {
            let session = if n.starts_with("relay:") {
                server.accept()
            } else {
                0
            };
            (
                *n,
                RelayEnd {
                    mux: Mux::default(),
                    channel: None,
                    client: RelayClient::new(),
                    session,
                },
            )
        })
        .collect();
    let mut next_stream = 100;
    for (i, step) in steps.iter().enumerate() {
        let op = step["op"].as_str().unwrap();
        let mut events = Vec::new();
        let mut created = Vec::new();
        match op {
            "connect" => {
                for n in names {
                    let id = unhex(&step["ids"][&n[n.len() - 1..]]);
                    let e = ends.get_mut(n).unwrap();
                    e.channel = Some(e.mux.open(PROTOCOL, Some(&id), b"").unwrap());
                }
            }
            "pair" | "unpair" => {
                let e = ends
                    .get_mut(format!("client:{}", step["client"].as_str().unwrap()).as_str())
                    .unwrap();
                let token: [u8; 32] = unhex(&step["token"]).try_into().unwrap();
                let (kind, payload) = if op == "pair" {
                    let p = e
                        .client
                        .pair(
                            step["is_initiator"].as_bool().unwrap(),
                            token,
                            u(&step["id"]),
                        )
                        .unwrap();
                    RelayMessage::Pair(p).encode()
                } else {
                    RelayMessage::Unpair(e.client.unpair(token).unwrap()).encode()
                };
                e.mux.send(e.channel.unwrap(), kind, &payload).unwrap();
            }
            "deliver" => {
                let to = step["to"].as_str().unwrap();
                for f in step["frames"].as_array().unwrap() {
                    ends.get_mut(to)
                        .unwrap()
                        .mux
                        .handle_frame(&unhex(f))
                        .unwrap();
                }
                while let Some(ev) = ends.get_mut(to).unwrap().mux.poll_event() {
                    let Event::Message { kind, payload, .. } = ev else {
                        continue; // opened
                    };
                    let msg = RelayMessage::decode(kind, &payload).unwrap().unwrap();
                    let e = ends.get_mut(to).unwrap();
                    match (to.starts_with("relay:"), msg) {
                        (false, RelayMessage::Pair(p)) => {
                            let got = e.client.on_pair(&p).unwrap();
                            events.push(json!({
                                "client": &to[to.len() - 1..], "event": "paired",
                                "is_initiator": got.is_initiator,
                                "token": hex::encode(got.token), "remote_id": got.remote_id
                            }));
                        }
                        (true, RelayMessage::Pair(p)) => {
                            let session = e.session;
                            if let Some(m) = server.on_pair(session, &p).unwrap() {
                                // the relay makes and answers the responder's side first
                                let sides = [(false, m.responder), (true, m.initiator)];
                                let ids: Vec<u64> = sides
                                    .iter()
                                    .map(|_| {
                                        next_stream += 1;
                                        next_stream - 1
                                    })
                                    .collect();
                                created.extend(ids.iter().copied());
                                for ((is_initiator, end), id) in sides.into_iter().zip(ids) {
                                    let name = names
                                        .into_iter()
                                        .find(|n| ends[n].session == end.session)
                                        .unwrap();
                                    let e = ends.get_mut(name).unwrap();
                                    let (kind, payload) =
                                        RelayMessage::Pair(m.answer(is_initiator, id)).encode();
                                    e.mux.send(e.channel.unwrap(), kind, &payload).unwrap();
                                }
                            }
                        }
                        (true, RelayMessage::Unpair(un)) => {
                            let session = e.session;
                            server.on_unpair(session, &un);
                        }
                        (false, RelayMessage::Unpair(_)) => panic!("a relay never sends unpair"),
                    }
                }
            }
            other => panic!("unknown op {other}"),
        }
        for n in names {
            let out: Vec<String> =
                std::iter::from_fn(|| ends.get_mut(n).unwrap().mux.poll_transmit())
                    .map(hex::encode)
                    .collect();
            assert_eq!(
                json!(out),
                step["out"][n],
                "step {i} ({op}): frames written by {n}"
            );
        }
        assert_eq!(json!(events), step["events"], "step {i} ({op}): pairings");
        assert_eq!(
            json!(created),
            step["created"],
            "step {i} ({op}): relay streams"
        );
    }
    assert_eq!(server.pending(), 0);
}
