//! Byte-exact checks against the vectors in `fixtures/vectors/noise/`, generated from the pinned
//! JS packages by `fixtures/gen/noise.js`. No Node needed.

use noise::sodium_secretstream::{Pull, Push};
use noise::{
    Config, Datagrams, Handshake, KeyPair, Pattern, Randomness, Role, SecretStream, StreamError,
    dh, stream_id,
};
use serde_json::Value;

/// The secretstream vectors below run on whichever backends the CPU dispatches to; on a
/// CPU or build without the SIMD fast paths they check only the RustCrypto path. With
/// `NOISE_SIMD_REQUIRED=1` that is a failure, not a silent pass.
#[test]
fn vectors_exercise_the_simd_fast_paths_when_required() {
    use noise::fuzzing::{FastPath, fast_path_available, simd_absent};
    for path in [FastPath::ChaCha20, FastPath::Poly1305] {
        if !fast_path_available(path) {
            simd_absent(path);
        }
    }
}

fn load(name: &str) -> Value {
    let path = format!(
        "{}/../fixtures/vectors/noise/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let v: Value = serde_json::from_str(&text).unwrap();
    assert!(v["js"]["noise-handshake"].is_string());
    v
}

fn h(v: &Value) -> Vec<u8> {
    hex::decode(
        v.as_str()
            .unwrap_or_else(|| panic!("not a hex string: {v}")),
    )
    .unwrap()
}

fn a32(v: &Value) -> [u8; 32] {
    h(v).try_into().unwrap()
}

fn a64(v: &Value) -> [u8; 64] {
    h(v).try_into().unwrap()
}

fn cases(name: &str) -> Vec<Value> {
    let v = load(name);
    let c = v["cases"].as_array().unwrap().clone();
    assert!(!c.is_empty());
    c
}

#[test]
fn handshakes_match_js_byte_for_byte() {
    for c in cases("handshake") {
        let name = c["name"].as_str().unwrap();
        let pattern = match c["pattern"].as_str().unwrap() {
            "IK" => Pattern::IK,
            _ => Pattern::XX,
        };
        let si = KeyPair::from_seed(a32(&c["initiator_seed"]));
        let sr = KeyPair::from_seed(a32(&c["responder_seed"]));
        assert_eq!(si.public_key(), &a32(&c["initiator_public_key"]), "{name}");
        assert_eq!(sr.public_key(), &a32(&c["responder_public_key"]), "{name}");
        let prologue = h(&c["prologue"]);
        let rs = (pattern == Pattern::IK).then(|| *sr.public_key());
        let mut i = Handshake::new(
            pattern,
            Role::Initiator,
            si,
            KeyPair::from_seed(a32(&c["initiator_ephemeral_seed"])),
            &prologue,
            rs,
        )
        .unwrap();
        let mut r = Handshake::new(
            pattern,
            Role::Responder,
            sr,
            KeyPair::from_seed(a32(&c["responder_ephemeral_seed"])),
            &prologue,
            None,
        )
        .unwrap();
        let messages = c["messages"].as_array().unwrap();
        let payloads = c["payloads"].as_array().unwrap();
        for (k, (m, p)) in messages.iter().zip(payloads).enumerate() {
            let (from, to) = if k % 2 == 0 {
                (&mut i, &mut r)
            } else {
                (&mut r, &mut i)
            };
            let msg = from.write_message(&h(p)).unwrap();
            assert_eq!(hex::encode(&msg), m.as_str().unwrap(), "{name} message {k}");
            assert_eq!(to.read_message(&msg).unwrap(), h(p), "{name} payload {k}");
        }
        let ri = i.result().expect("initiator finished");
        let rr = r.result().expect("responder finished");
        assert_eq!(ri.hash, a64(&c["handshake_hash"]), "{name}");
        assert_eq!(rr.hash, a64(&c["responder_handshake_hash"]), "{name}");
        assert_eq!(ri.tx, a32(&c["initiator_tx"]), "{name}");
        assert_eq!(ri.rx, a32(&c["initiator_rx"]), "{name}");
        assert_eq!(rr.tx, a32(&c["responder_tx"]), "{name}");
        assert_eq!(rr.rx, a32(&c["responder_rx"]), "{name}");
        assert_eq!(ri.remote_public_key, a32(&c["initiator_remote_static"]));
        assert_eq!(rr.remote_public_key, a32(&c["responder_remote_static"]));
        assert_eq!(
            stream_id(&ri.hash, true),
            a32(&c["stream_id_initiator"]),
            "{name}"
        );
        assert_eq!(
            stream_id(&ri.hash, false),
            a32(&c["stream_id_responder"]),
            "{name}"
        );
    }
}

#[test]
fn ik_known_answer_from_fixed_keys() {
    let c = &cases("handshake")[0];
    assert_eq!(c["name"], "ik_hyperdht_seeds_01_02_03_04");
    assert!(
        c["messages"][0]
            .as_str()
            .unwrap()
            .starts_with("ed4928c628d1c2c6")
    );
    assert!(
        c["messages"][0]
            .as_str()
            .unwrap()
            .ends_with("6b685fd01b43a6342a82e4420632")
    );
    assert_eq!(
        c["messages"][1].as_str().unwrap(),
        "ca93ac1705187071d67b83c7ff0efe8108e8ec4530575d7726879333dbdabe7cf6c2821870b51f7d0cbad0064e7b66c59c8191352286af5432d75b4ddb1fb3d1"
    );
    assert_eq!(
        c["handshake_hash"].as_str().unwrap(),
        "b509ccab0a3553608d3e050cf96c3a7acfcf86a5b597cf5f60ccf79c094cb7da5bcdee95361649cdd79ad8af980cec040275d48bc943f840c727d0a77c29a89f"
    );
    assert_eq!(
        c["initiator_tx"].as_str().unwrap(),
        "cc00d99bd3a15a6779df38fd42fd25a84d73264023e7c1da95cf3bcbdce9c210"
    );
    assert_eq!(
        c["initiator_rx"].as_str().unwrap(),
        "78dd48ecef5d11fd953197694a8ee2d9f8d86d49d56d856e3dd7c8e78047826b"
    );
    assert_eq!(
        c["stream_id_initiator"].as_str().unwrap(),
        "4e72ca14a80ed4eebd77c5888da98f295d923f2a14eca277f2dc4e0e2dbc1641"
    );
    assert_eq!(
        c["stream_id_responder"].as_str().unwrap(),
        "9fe58cb0cd66c406fe570944ca6138b95f44e00811b95b56274366aa2666409c"
    );
}

#[test]
fn dh_accepts_and_rejects_public_keys_as_libsodium() {
    let all = cases("dh");
    let mut rejected = 0;
    for c in &all {
        let name = c["name"].as_str().unwrap();
        let local = KeyPair::from_seed(a32(&c["local_seed"]));
        let res = dh(&local, &a32(&c["remote_public_key"]));
        if c["ok"].as_bool().unwrap() {
            assert_eq!(res.unwrap(), a32(&c["output"]), "{name}");
        } else {
            assert!(
                res.is_err(),
                "{name}: JS rejects this key, Rust accepted it"
            );
            rejected += 1;
        }
    }
    assert!(rejected >= 14, "vectors should carry the rejected keys");
}

#[test]
fn handshake_with_small_order_ephemeral_is_refused() {
    // Replace message 1's ephemeral with each small-order point: the responder must refuse.
    let c = &cases("handshake")[0];
    let msg1 = h(&c["messages"][0]);
    for d in cases("dh")
        .iter()
        .filter(|d| d["name"].as_str().unwrap().starts_with("small_order"))
    {
        let mut m = msg1.clone();
        m[..32].copy_from_slice(&h(&d["remote_public_key"]));
        let mut r = Handshake::new(
            Pattern::IK,
            Role::Responder,
            KeyPair::from_seed([2; 32]),
            KeyPair::from_seed([4; 32]),
            &h(&c["prologue"]),
            None,
        )
        .unwrap();
        let err = r.read_message(&m).unwrap_err();
        assert!(
            matches!(
                err,
                noise::HandshakeError::InvalidPublicKey(
                    noise::DhError::SmallOrder | noise::DhError::NonCanonical
                )
            ),
            "{err:?}"
        );
    }
}

#[test]
fn secretstream_push_and_pull_match_libsodium_including_rekey() {
    for c in cases("secretstream") {
        let name = c["name"].as_str().unwrap();
        let key = a32(&c["key"]);
        let header: [u8; 24] = h(&c["header"]).try_into().unwrap();
        let counter = c["counter_start"].as_u64().unwrap() as u32;
        let mut push = Push::new(&key, &header);
        let mut pull = Pull::new(&key, &header);
        push.set_counter_for_testing(counter);
        pull.set_counter_for_testing(counter);
        for (k, m) in c["messages"].as_array().unwrap().iter().enumerate() {
            let tag = m["tag"].as_u64().unwrap() as u8;
            let plain = h(&m["plaintext"]);
            let ct = push.push(&plain, tag);
            assert_eq!(
                hex::encode(&ct),
                m["ciphertext"].as_str().unwrap(),
                "{name} #{k}"
            );
            let (t, p) = pull.pull(&ct).unwrap();
            assert_eq!((t, p), (tag, plain), "{name} #{k}");
        }
    }
}

fn frames(wire: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = wire;
    while rest.len() >= 3 {
        let len = rest[0] as usize | (rest[1] as usize) << 8 | (rest[2] as usize) << 16;
        out.push(&rest[3..3 + len]);
        rest = &rest[3 + len..];
    }
    assert!(rest.is_empty());
    out
}

fn drain(s: &mut SecretStream) -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    while let Some(m) = s.poll_message().unwrap() {
        v.push(m.to_vec());
    }
    v
}

#[test]
fn secret_stream_from_ik_matches_js_wire_both_directions() {
    let c = &cases("secret_stream")[0];
    assert_eq!(c["name"], "from_ik_hyperdht_seeds");
    let hash = a64(&c["handshake_hash"]);
    let iw = h(&c["initiator_wire"]);
    let rw = h(&c["responder_wire"]);
    let header_of = |wire: &[u8]| -> [u8; 24] { frames(wire)[0][32..].try_into().unwrap() };
    let counter_i: [u8; 8] = h(&c["initiator_counter_start"]).try_into().unwrap();
    let counter_r: [u8; 8] = h(&c["responder_counter_start"]).try_into().unwrap();
    let result = |init: bool| noise::HandshakeResult {
        is_initiator: init,
        tx: if init {
            a32(&c["initiator_tx"])
        } else {
            a32(&c["initiator_rx"])
        },
        rx: if init {
            a32(&c["initiator_rx"])
        } else {
            a32(&c["initiator_tx"])
        },
        hash,
        local_public_key: a32(&c[if init {
            "initiator_public_key"
        } else {
            "responder_public_key"
        }]),
        remote_public_key: a32(&c[if init {
            "responder_public_key"
        } else {
            "initiator_public_key"
        }]),
    };
    let rand = |header, counter| Randomness {
        ephemeral_seed: [0; 32],
        header,
        send_counter: counter,
    };
    let mut i = SecretStream::from_handshake(
        &result(true),
        rand(header_of(&iw), counter_i),
        Config::default(),
    );
    let mut r = SecretStream::from_handshake(
        &result(false),
        rand(header_of(&rw), counter_r),
        Config::default(),
    );
    // Rust writes exactly the JS wire
    for w in c["initiator_writes"].as_array().unwrap() {
        i.write(&h(w)).unwrap();
    }
    for w in c["responder_writes"].as_array().unwrap() {
        r.write(&h(w)).unwrap();
    }
    assert_eq!(hex::encode(i.send_ref().outgoing()), hex::encode(&iw));
    assert_eq!(hex::encode(r.send_ref().outgoing()), hex::encode(&rw));
    assert!(
        iw.starts_with(
            &hex::decode("3800004e72ca14a80ed4eebd77c5888da98f295d923f2a14eca277f2dc4e0e2dbc1641")
                .unwrap()
        )
    );
    // Rust reads the JS wire, one byte at a time for the initiator's side
    for b in &rw {
        i.recv().feed(std::slice::from_ref(b));
    }
    let got: Vec<Vec<u8>> = drain(&mut i);
    let want: Vec<Vec<u8>> = c["responder_writes"]
        .as_array()
        .unwrap()
        .iter()
        .map(h)
        .collect();
    assert_eq!(got, want);
    r.recv().feed(&iw);
    let got = drain(&mut r);
    let want: Vec<Vec<u8>> = c["initiator_writes"]
        .as_array()
        .unwrap()
        .iter()
        .map(h)
        .collect();
    assert_eq!(got, want);
    assert!(i.is_established() && r.is_established());

    // datagrams: Rust seals what JS sealed, and opens JS's
    let mut di = Datagrams::new(&hash, true, counter_i);
    let dr = Datagrams::new(&hash, false, counter_r);
    for (p, d) in c["initiator_datagram_plaintexts"]
        .as_array()
        .unwrap()
        .iter()
        .zip(c["initiator_datagrams"].as_array().unwrap())
    {
        assert_eq!(hex::encode(di.seal(&h(p)).unwrap()), d.as_str().unwrap());
        assert_eq!(dr.open(&h(d)).unwrap(), h(p));
        assert!(di.open(&h(d)).is_none(), "own direction key must not open");
    }
    let mut dr = Datagrams::new(&hash, false, counter_r);
    let di = Datagrams::new(&hash, true, counter_i);
    for (p, d) in c["responder_datagram_plaintexts"]
        .as_array()
        .unwrap()
        .iter()
        .zip(c["responder_datagrams"].as_array().unwrap())
    {
        assert_eq!(hex::encode(dr.seal(&h(p)).unwrap()), d.as_str().unwrap());
        assert_eq!(di.open(&h(d)).unwrap(), h(p));
    }
}

#[test]
fn secret_stream_xx_matches_js_wire_both_directions() {
    let c = &cases("secret_stream")[1];
    assert_eq!(c["name"], "xx_seeds_51_52");
    let iw = h(&c["initiator_wire"]);
    let rw = h(&c["responder_wire"]);
    let fi = frames(&iw);
    let fr = frames(&rw);
    // initiator: msg1, msg3, header, data...; responder: msg2, header, data...
    let rand = |eph: &Value, header: &[u8]| Randomness {
        ephemeral_seed: a32(eph),
        header: header.try_into().unwrap(),
        send_counter: [0; 8],
    };
    let mut i = SecretStream::new_xx(
        true,
        KeyPair::from_seed(a32(&c["initiator_seed"])),
        rand(&c["initiator_ephemeral_seed"], &fi[2][32..]),
        Config::default(),
    );
    let mut r = SecretStream::new_xx(
        false,
        KeyPair::from_seed(a32(&c["responder_seed"])),
        rand(&c["responder_ephemeral_seed"], &fr[1][32..]),
        Config::default(),
    );
    let mut wire_i = i.send().take_outgoing();
    // drive the handshake through the Rust pair, collecting each side's wire
    let mut wire_r = Vec::new();
    r.recv().feed(&wire_i);
    assert!(drain(&mut r).is_empty());
    wire_r.extend(r.send().take_outgoing());
    i.recv().feed(&wire_r);
    assert!(drain(&mut i).is_empty());
    let more_i = i.send().take_outgoing();
    wire_i.extend(&more_i);
    r.recv().feed(&more_i);
    assert!(drain(&mut r).is_empty());
    wire_r.extend(r.send().take_outgoing());
    assert!(i.is_connected() && r.is_connected());
    assert_eq!(r.remote_public_key(), &a32(&c["initiator_public_key"]));
    assert_eq!(i.remote_public_key(), &a32(&c["responder_public_key"]));
    assert_eq!(i.handshake_hash(), &a64(&c["handshake_hash"]));
    for w in c["initiator_writes"].as_array().unwrap() {
        i.write(&h(w)).unwrap();
    }
    for w in c["responder_writes"].as_array().unwrap() {
        r.write(&h(w)).unwrap();
    }
    wire_i.extend(i.send().take_outgoing());
    wire_r.extend(r.send().take_outgoing());
    assert_eq!(hex::encode(&wire_i), hex::encode(&iw));
    assert_eq!(hex::encode(&wire_r), hex::encode(&rw));

    // and a fresh Rust responder reads the whole JS initiator wire in one go
    let mut r2 = SecretStream::new_xx(
        false,
        KeyPair::from_seed(a32(&c["responder_seed"])),
        rand(&c["responder_ephemeral_seed"], &fr[1][32..]),
        Config::default(),
    );
    r2.recv().feed(&iw);
    let got = drain(&mut r2);
    let want: Vec<Vec<u8>> = c["initiator_writes"]
        .as_array()
        .unwrap()
        .iter()
        .map(h)
        .collect();
    assert_eq!(got, want);
}

#[test]
fn every_single_bit_flip_in_a_js_frame_fails_without_leaking_plaintext() {
    let c = &cases("secret_stream")[0];
    let result = noise::HandshakeResult {
        is_initiator: false,
        tx: a32(&c["initiator_rx"]),
        rx: a32(&c["initiator_tx"]),
        hash: a64(&c["handshake_hash"]),
        local_public_key: a32(&c["responder_public_key"]),
        remote_public_key: a32(&c["initiator_public_key"]),
    };
    let iw = h(&c["initiator_wire"]);
    let writes: Vec<Vec<u8>> = c["initiator_writes"]
        .as_array()
        .unwrap()
        .iter()
        .map(h)
        .collect();
    // header frame (59 bytes) + "hello" frame (25) + empty frame (20) + "x" frame (21)
    let prefix = 59 + 25 + 20 + 21;
    for bit in 0..prefix * 8 {
        let mut wire = iw[..prefix].to_vec();
        wire[bit / 8] ^= 1 << (bit % 8);
        let rand = Randomness {
            ephemeral_seed: [0; 32],
            header: [9; 24],
            send_counter: [0; 8],
        };
        let mut r = SecretStream::from_handshake(&result, rand, Config::default());
        r.recv().feed(&wire);
        r.recv().feed_eof();
        let mut got = Vec::new();
        let err = loop {
            match r.poll_message() {
                Ok(Some(m)) => got.push(m.to_vec()),
                Ok(None) => panic!("bit {bit}: stream ended cleanly after a flipped bit"),
                Err(e) => break e,
            }
        };
        // everything delivered is an unmodified prefix of what JS wrote
        assert!(
            got.len() <= 3 && got[..] == writes[..got.len()],
            "bit {bit}: {got:?}"
        );
        assert!(
            matches!(
                err,
                StreamError::Decrypt
                    | StreamError::InvalidStreamId
                    | StreamError::InvalidHeaderLength { .. }
                    | StreamError::MessageTooShort { .. }
                    | StreamError::TruncatedFrame { .. }
            ),
            "bit {bit}: {err:?}"
        );
        assert_eq!(r.poll_message().unwrap_err(), err, "sticky");
    }
}
