//! The connect/listen pieces against vectors the pinned JS packages generated
//! (`fixtures/gen/connect.js`): the binary connect target (`hyperdht-address`), hyperdht's IK
//! handshake on both sides (`lib/noise-wrap.js`) and the sealed holepunch payloads
//! (`lib/secure-payload.js`).

use std::net::Ipv4Addr;
use std::path::PathBuf;

use dht::codec::{Decode, Encode};
use dht::hyperdht::address::HyperdhtAddress;
use dht::hyperdht::messages::{HolepunchPayload, NoisePayload};
use dht::hyperdht::noise_wrap::{NoiseWrap, NoiseWrapResult};
use dht::hyperdht::secure_payload::{NONCE_LEN, SecurePayload, SecurePayloadError};
use noise::KeyPair;
use serde_json::Value;

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

fn arr32(v: &Value) -> [u8; 32] {
    unhex(v).try_into().expect("32 bytes")
}

#[test]
fn hyperdht_address_as_js_writes_and_reads_it() {
    let doc = vectors("hyperdht/hyperdht_address.json");
    for case in list(&doc, "cases") {
        let bytes = unhex(&case["hex"]);
        let want: HyperdhtAddress = serde_json::from_value(case["value"].clone()).unwrap();
        assert_eq!(
            HyperdhtAddress::from_bytes(&bytes).unwrap(),
            want,
            "{}",
            case["name"]
        );
        assert_eq!(want.to_bytes(), bytes, "{}", case["name"]);
    }
    for case in list(&doc, "lenient") {
        let want: HyperdhtAddress = serde_json::from_value(case["value"].clone()).unwrap();
        assert_eq!(
            HyperdhtAddress::from_bytes(&unhex(&case["hex"])).unwrap(),
            want
        );
    }
}

fn check_side(got: &NoiseWrapResult, want: &Value, name: &str) {
    assert_eq!(
        got.handshake.is_initiator,
        want["is_initiator"].as_bool().unwrap(),
        "{name}"
    );
    let fields: [(&str, &[u8]); 7] = [
        ("public_key", &got.handshake.local_public_key),
        ("remote_public_key", &got.handshake.remote_public_key),
        ("remote_id", &got.remote_id),
        ("holepunch_secret", &got.holepunch_secret),
        ("hash", &got.handshake.hash),
        ("tx", &got.handshake.tx),
        ("rx", &got.handshake.rx),
    ];
    for (k, v) in fields {
        assert_eq!(hex::encode(v), want[k].as_str().unwrap(), "{name}: {k}");
    }
}

#[test]
fn noise_wrap_reproduces_js_on_both_sides() {
    let doc = vectors("hyperdht/noise_wrap.json");
    let cases = list(&doc, "cases");
    assert_eq!(cases.len(), 3);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let kp = |k: &str| KeyPair::from_seed(arr32(&case[k]));
        let p1: NoisePayload = serde_json::from_value(case["payload1"]["value"].clone()).unwrap();
        let p2: NoisePayload = serde_json::from_value(case["payload2"]["value"].clone()).unwrap();
        assert_eq!(
            hex::encode(p1.to_bytes()),
            case["payload1"]["hex"].as_str().unwrap()
        );
        assert_eq!(
            hex::encode(p2.to_bytes()),
            case["payload2"]["hex"].as_str().unwrap()
        );

        let server_pk = *kp("server_seed").public_key();
        let mut client =
            NoiseWrap::initiator(kp("client_seed"), kp("client_ephemeral_seed"), server_pk)
                .unwrap();
        let mut server =
            NoiseWrap::responder(kp("server_seed"), kp("server_ephemeral_seed")).unwrap();

        let msg1 = client.send(&p1).unwrap();
        assert_eq!(
            hex::encode(&msg1),
            case["msg1"].as_str().unwrap(),
            "{name}: msg1"
        );
        assert_eq!(
            server.recv(&msg1).unwrap(),
            p1,
            "{name}: server reads payload 1"
        );
        assert_eq!(
            server.remote_public_key().map(hex::encode).as_deref(),
            case["server_sees_client_key"].as_str(),
            "{name}: the key the firewall callback sees"
        );
        let msg2 = server.send(&p2).unwrap();
        assert_eq!(
            hex::encode(&msg2),
            case["msg2"].as_str().unwrap(),
            "{name}: msg2"
        );
        assert_eq!(
            client.recv(&msg2).unwrap(),
            p2,
            "{name}: client reads payload 2"
        );

        check_side(&client.finish().unwrap(), &case["client"], name);
        check_side(&server.finish().unwrap(), &case["server"], name);
    }
}

#[test]
fn secure_payload_seals_opens_and_refuses_as_js() {
    let doc = vectors("hyperdht/secure_payload.json");
    let sp = SecurePayload::new(
        &arr32(&doc["holepunch_secret"]),
        &arr32(&doc["local_secret"]),
    );
    for case in list(&doc, "cases") {
        let name = case["name"].as_str().unwrap();
        let want: HolepunchPayload = serde_json::from_value(case["value"].clone()).unwrap();
        let nonce: [u8; NONCE_LEN] = unhex(&case["nonce"]).try_into().unwrap();
        assert_eq!(
            hex::encode(want.to_bytes()),
            case["plaintext"].as_str().unwrap(),
            "{name}"
        );
        let sealed = sp.encrypt_with_nonce(&want, &nonce);
        assert_eq!(
            hex::encode(&sealed),
            case["hex"].as_str().unwrap(),
            "{name}: seal"
        );
        assert_eq!(sp.decrypt(&unhex(&case["hex"])), Ok(want), "{name}: open");
    }
    for case in list(&doc, "invalid") {
        let got = sp.decrypt(&unhex(&case["hex"]));
        let ok = match case["why"].as_str().unwrap() {
            "too_short" => matches!(got, Err(SecurePayloadError::TooShort { .. })),
            "authentication" => got == Err(SecurePayloadError::Authentication),
            "payload" => matches!(got, Err(SecurePayloadError::Payload(_))),
            other => panic!("unknown reason {other}"),
        };
        assert!(ok, "{}: got {got:?}", case["name"]);
    }
    for case in list(&doc, "lenient") {
        let want: HolepunchPayload = serde_json::from_value(case["value"].clone()).unwrap();
        assert_eq!(
            sp.decrypt(&unhex(&case["hex"])),
            Ok(want),
            "{}",
            case["name"]
        );
    }
    for t in list(&doc, "tokens") {
        let host: Ipv4Addr = t["host"].as_str().unwrap().parse().unwrap();
        assert_eq!(
            hex::encode(sp.token(host)),
            t["token"].as_str().unwrap(),
            "{host}"
        );
    }
}
