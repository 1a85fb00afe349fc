//! The store answers a fixed sequence of requests as JS's `lib/persistent.js` does
//! (`fixtures/vectors/hyperdht/persistent.json`, from `fixtures/gen/persistent.js`, which drives
//! the real JS class on a virtual clock): the same reply bytes, token and closer-nodes flags,
//! error codes and silences, the same router writes, and for LOOKUP the same set of records
//! and bump (JS draws records at random).

#![allow(clippy::disallowed_methods)] // tests take real time as their origin

use std::collections::BTreeSet;
use std::net::SocketAddrV4;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use dht::codec::{Decode, Encode};
use dht::hyperdht::cache::Xache;
use dht::hyperdht::messages::LookupRawReply;
use dht::hyperdht::persistent::{
    Context, Persistent, Response, RouterAction, StoreCommand, StoreConfig, StoreRequest,
};
use serde_json::Value;

fn doc() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/vectors/hyperdht/persistent.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).expect("json")
}

fn opt_hex(v: &Value) -> Option<Vec<u8>> {
    v.as_str().map(|s| hex::decode(s).expect("hex"))
}

fn arr32(v: &Value) -> Option<[u8; 32]> {
    opt_hex(v).map(|b| b.try_into().expect("32 bytes"))
}

fn command(name: &str) -> StoreCommand {
    match name {
        "FIND_PEER" => StoreCommand::FindPeer,
        "LOOKUP" => StoreCommand::Lookup,
        "ANNOUNCE" => StoreCommand::Announce,
        "UNANNOUNCE" => StoreCommand::Unannounce,
        "MUTABLE_PUT" => StoreCommand::MutablePut,
        "MUTABLE_GET" => StoreCommand::MutableGet,
        "IMMUTABLE_PUT" => StoreCommand::ImmutablePut,
        "IMMUTABLE_GET" => StoreCommand::ImmutableGet,
        other => panic!("unknown command {other}"),
    }
}

/// JS's router writes as the store's actions.
fn router_writes(v: &Value) -> Option<RouterAction> {
    let list = v.as_array().expect("router list");
    assert!(list.len() <= 1, "one write per request at most");
    let w = list.first()?;
    if let Some(set) = w.get("set") {
        return Some(RouterAction::Set {
            target: arr32(&set["target"]).expect("target"),
            relay: set["relay"].as_str().expect("relay").parse().expect("addr"),
            record: opt_hex(&set["record"]).expect("record"),
        });
    }
    Some(RouterAction::Delete {
        target: arr32(&w["delete"]).expect("target"),
    })
}

#[test]
fn the_store_answers_every_request_as_js_does() {
    let doc = doc();
    let node_id = arr32(&doc["node_id"]).expect("node id");
    let start_unix = doc["start_unix_ms"].as_u64().expect("start");
    let max_age = Duration::from_millis(doc["max_age_ms"].as_u64().expect("age"));
    let t0 = Instant::now();
    let mut store = Persistent::new(&StoreConfig::default(), t0, [42; 32]);
    // The router's forward table as `lib/router.js` keeps it (xache, maxSize/maxAge defaults).
    let mut forwards: Xache<[u8; 32], Vec<u8>> = Xache::new(
        doc["max_size"].as_u64().expect("size") as usize,
        max_age,
        t0,
    );
    let cases = doc["cases"].as_array().expect("cases");
    let (mut lookups, mut values, mut silences, mut errors) = (0, 0, 0, 0);
    for case in cases {
        let name = case["name"].as_str().expect("name");
        let at = case["at"].as_u64().expect("at");
        let ctx = Context {
            now: t0 + Duration::from_millis(at),
            unix_ms: start_unix + at,
            node_id,
        };
        forwards.advance(ctx.now);
        let cmd = command(case["command"].as_str().expect("command"));
        let target = arr32(&case["target"]);
        let token = arr32(&case["token"]);
        let value = opt_hex(&case["value"]);
        let from: SocketAddrV4 = case["from"].as_str().expect("from").parse().expect("addr");
        let fwd = match (cmd.reads_router(), &target) {
            (true, Some(t)) => forwards.get(t).cloned(),
            _ => None,
        };
        let req = StoreRequest {
            command: cmd,
            from,
            target: target.as_ref(),
            token: token.as_ref(),
            value: value.as_deref(),
            router_record: fwd.as_deref(),
        };
        let out = store.handle(&ctx, &req);

        assert_eq!(
            out.router,
            router_writes(&case["router"]),
            "{name}: router write"
        );
        match &out.router {
            Some(RouterAction::Set { target, record, .. }) => forwards.set(*target, record.clone()),
            Some(RouterAction::Delete { target }) => {
                forwards.delete(target);
            }
            None => {}
        }

        if case.get("silent").is_some() || case.get("throws").is_some() {
            assert!(
                matches!(out.response, Response::Silent(_)),
                "{name}: {:?}",
                out.response
            );
            silences += 1;
            continue;
        }
        if let Some(code) = case.get("error") {
            let Response::Error(got) = out.response else {
                panic!("{name}: expected error {code}, got {:?}", out.response);
            };
            assert_eq!(got.to_u64(), code.as_u64().expect("code"), "{name}");
            errors += 1;
            continue;
        }
        let want = &case["reply"];
        let Response::Reply {
            value: got,
            token,
            closer_nodes,
        } = &out.response
        else {
            panic!("{name}: expected a reply, got {:?}", out.response);
        };
        assert_eq!(
            *token,
            want["token"].as_bool().expect("token"),
            "{name}: token"
        );
        assert_eq!(
            *closer_nodes,
            want["closer_nodes"].as_bool().expect("closer"),
            "{name}: closer nodes"
        );
        if cmd == StoreCommand::Lookup && want["value"].is_object() {
            let w = &want["value"];
            let bytes = got.as_ref().unwrap_or_else(|| panic!("{name}: no value"));
            let reply = LookupRawReply::from_bytes(bytes).expect("lookup reply decodes");
            assert_eq!(reply.to_bytes(), *bytes, "{name}: canonical encoding");
            let count = w["count"].as_u64().expect("count") as usize;
            assert_eq!(reply.peers.len(), count, "{name}: record count");
            assert_eq!(
                reply.bump,
                w["bump"].as_u64().expect("bump"),
                "{name}: bump"
            );
            let pool: BTreeSet<String> = w["records"]
                .as_array()
                .expect("records")
                .iter()
                .map(|r| r.as_str().expect("hex").to_owned())
                .collect();
            let mine: BTreeSet<String> = reply
                .peers
                .iter()
                .map(|p| hex::encode(p.to_bytes()))
                .collect();
            assert_eq!(mine.len(), count, "{name}: distinct records");
            assert!(mine.is_subset(&pool), "{name}: records JS does not hold");
            if count == pool.len() {
                assert_eq!(mine, pool, "{name}: record set");
            }
            lookups += 1;
        } else {
            assert_eq!(*got, opt_hex(&want["value"]), "{name}: reply value");
            values += 1;
        }
    }
    assert_eq!(lookups + values + silences + errors, cases.len());
    assert!(
        lookups >= 7 && values >= 40 && silences >= 20 && errors == 2,
        "{lookups} {values} {silences} {errors}"
    );
}
