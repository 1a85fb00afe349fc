//! Live interop of the `noise` crate with `@hyperswarm/secret-stream` 6.9.2 over TCP on
//! 127.0.0.1 (JS peer: `js/secret-stream-peer.js`): XX and the hyperdht IK hand-off, Rust as
//! initiator and as responder, 64 MiB each way with SHA-256 compared, many small messages
//! keeping their boundaries, datagrams both ways (over a UDP side channel, see the JS peer's
//! header), a clean end in both directions, and a flipped bit in either direction.

use std::time::Duration;

use interop_tests::JsProcess;
use noise::io::{SecretStreamIo, stream_error};
use noise::{Config, Handshake, KeyPair, Pattern, Randomness, SecretStream, StreamError};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const T: Duration = Duration::from_secs(120);
const BULK: usize = 64 * 1024 * 1024;
const RUST_SEED: [u8; 32] = [0x61; 32];
const JS_SEED: [u8; 32] = [0x62; 32];
/// hyperdht `NS.PEER_HANDSHAKE`, the IK prologue.
const NS_PEER_HANDSHAKE: &str = "14d6d4b49214ab1033ed204976caa258bae9e1e8543b9ad1fd996a910b0c4e3a";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Byte `i` of a bulk transfer; the JS peer uses the same formula.
fn pattern(offset: usize, buf: &mut [u8]) {
    for (k, b) in buf.iter_mut().enumerate() {
        let i = offset + k;
        *b = ((i * 7 + (i >> 11)) & 255) as u8;
    }
}

/// Waits for the JS event `name`; an unexpected JS `error` event fails the test.
fn wait_event(js: &mut JsProcess, name: &str) -> Value {
    loop {
        let v = js.next_json(T).unwrap();
        if v["event"] == name {
            return v;
        }
        assert_ne!(
            v["event"], "error",
            "JS peer failed while waiting for {name}: {v}"
        );
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Xx,
    Ik,
}

async fn read_frame(tcp: &mut TcpStream) -> Vec<u8> {
    let mut len = [0u8; 3];
    tcp.read_exact(&mut len).await.unwrap();
    let n = len[0] as usize | (len[1] as usize) << 8 | (len[2] as usize) << 16;
    let mut msg = vec![0u8; n];
    tcp.read_exact(&mut msg).await.unwrap();
    msg
}

async fn write_frame(tcp: &mut TcpStream, msg: &[u8]) {
    let n = msg.len();
    tcp.write_all(&[n as u8, (n >> 8) as u8, (n >> 16) as u8])
        .await
        .unwrap();
    tcp.write_all(msg).await.unwrap();
}

/// The hyperdht hand-off: IK over uint24 frames (test-only carrier), then a secret stream
/// started from the finished handshake.
async fn ik(
    mut tcp: TcpStream,
    initiator: bool,
    remote: Option<[u8; 32]>,
) -> SecretStreamIo<TcpStream> {
    let prologue = hex::decode(NS_PEER_HANDSHAKE).unwrap();
    let eph = KeyPair::generate(&mut rand_core::OsRng);
    let mut hs = Handshake::new(
        Pattern::IK,
        initiator.into(),
        KeyPair::from_seed(RUST_SEED),
        eph,
        &prologue,
        remote,
    )
    .unwrap();
    if initiator {
        write_frame(&mut tcp, &hs.write_message(b"rust-ik-initiator").unwrap()).await;
        let reply = read_frame(&mut tcp).await;
        assert_eq!(hs.read_message(&reply).unwrap(), b"js-ik-responder");
    } else {
        let m1 = read_frame(&mut tcp).await;
        assert_eq!(hs.read_message(&m1).unwrap(), b"js-ik-initiator");
        write_frame(&mut tcp, &hs.write_message(b"rust-ik-responder").unwrap()).await;
    }
    SecretStreamIo::from_handshake(tcp, hs.result().unwrap())
}

/// Starts the JS peer and connects a Rust secret stream to it; checks both agree on keys.
fn connect(
    rt: &tokio::runtime::Runtime,
    mode: Mode,
    rust_initiator: bool,
) -> (JsProcess, SecretStreamIo<TcpStream>) {
    let m = if mode == Mode::Xx { "xx" } else { "ik" };
    let seed = hex::encode(JS_SEED);
    let rust_pk = *KeyPair::from_seed(RUST_SEED).public_key();
    let (mut js, mut stream) = if rust_initiator {
        let mut js = JsProcess::spawn("secret-stream-peer.js", &["responder", m, &seed]).unwrap();
        let l = wait_event(&mut js, "listening");
        let port = l["port"].as_u64().unwrap() as u16;
        let js_pk: [u8; 32] = hex::decode(l["publicKey"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        let stream = rt.block_on(async move {
            let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            tcp.set_nodelay(true).unwrap();
            match mode {
                Mode::Xx => SecretStreamIo::new_xx(tcp, true, KeyPair::from_seed(RUST_SEED)),
                Mode::Ik => ik(tcp, true, Some(js_pk)).await,
            }
        });
        (js, stream)
    } else {
        let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let port = listener.local_addr().unwrap().port().to_string();
        let rust_hex = hex::encode(rust_pk);
        let mut js = JsProcess::spawn(
            "secret-stream-peer.js",
            &["initiator", m, &seed, &port, &rust_hex],
        )
        .unwrap();
        wait_event(&mut js, "listening");
        let stream = rt.block_on(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            tcp.set_nodelay(true).unwrap();
            match mode {
                Mode::Xx => SecretStreamIo::new_xx(tcp, false, KeyPair::from_seed(RUST_SEED)),
                Mode::Ik => ik(tcp, false, None).await,
            }
        });
        (js, stream)
    };
    rt.block_on(stream.handshake()).unwrap();
    let c = wait_event(&mut js, "connected");
    assert_eq!(c["remotePublicKey"], hex::encode(rust_pk));
    assert_eq!(
        c["handshakeHash"],
        hex::encode(stream.core().handshake_hash())
    );
    assert_eq!(
        stream.core().remote_public_key(),
        KeyPair::from_seed(JS_SEED).public_key()
    );
    (js, stream)
}

async fn send_bulk<W: AsyncWrite + Unpin>(w: &mut W, total: usize) -> String {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut off = 0;
    while off < total {
        let n = buf.len().min(total - off);
        pattern(off, &mut buf[..n]);
        h.update(&buf[..n]);
        w.write_all(&buf[..n]).await.unwrap();
        off += n;
    }
    w.shutdown().await.unwrap();
    hex::encode(h.finalize())
}

async fn recv_all<R: AsyncRead + Unpin>(r: &mut R) -> (usize, String) {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0;
    loop {
        let n = r.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        total += n;
    }
    (total, hex::encode(h.finalize()))
}

fn bulk_both_ways(mode: Mode, rust_initiator: bool) {
    bulk_both_ways_with(mode, rust_initiator, false);
}

/// `into_split`: when true, the Rust side's reader and writer are the crypto-independent
/// halves of `SecretStreamIo::into_split` instead of `tokio::io::split` of the whole stream.
fn bulk_both_ways_with(mode: Mode, rust_initiator: bool, into_split: bool) {
    let rt = runtime();
    let (mut js, stream) = connect(&rt, mode, rust_initiator);
    let rust = rt.spawn(async move {
        if into_split {
            let (mut r, mut w) = stream.into_split().await.unwrap();
            let sender = tokio::spawn(async move { send_bulk(&mut w, BULK).await });
            let received = recv_all(&mut r).await;
            return (sender.await.unwrap(), received);
        }
        let (mut r, mut w) = tokio::io::split(stream);
        let sender = tokio::spawn(async move { send_bulk(&mut w, BULK).await });
        let received = recv_all(&mut r).await;
        (sender.await.unwrap(), received)
    });
    js.send_json(&json!({"cmd": "bulk", "bytes": BULK, "end": true}))
        .unwrap();
    let js_sent = wait_event(&mut js, "sent");
    let js_end = wait_event(&mut js, "end");
    let (rust_sent_sha, (rust_got, rust_got_sha)) = rt.block_on(rust).unwrap();
    assert_eq!(rust_got, BULK, "Rust received");
    assert_eq!(
        rust_got_sha,
        js_sent["sha256"].as_str().unwrap(),
        "JS -> Rust SHA-256"
    );
    assert_eq!(
        js_end["bytes"].as_u64().unwrap() as usize,
        BULK,
        "JS received"
    );
    assert_eq!(
        js_end["sha256"].as_str().unwrap(),
        rust_sent_sha,
        "Rust -> JS SHA-256"
    );
    // both halves ended: the JS stream closes without an error
    wait_event(&mut js, "close");
    assert!(js.finish(Duration::from_secs(10)));
}

#[test]
fn xx_rust_initiator_js_responder_64mib_each_way_sha256_and_clean_end() {
    bulk_both_ways(Mode::Xx, true);
}

#[test]
fn xx_js_initiator_rust_responder_64mib_each_way_sha256_and_clean_end() {
    bulk_both_ways(Mode::Xx, false);
}

#[test]
fn into_split_halves_64mib_each_way_against_js_in_both_roles() {
    bulk_both_ways_with(Mode::Xx, true, true);
    bulk_both_ways_with(Mode::Ik, false, true);
}

fn sizes() -> Vec<usize> {
    (0..2000).map(|k| 1 + (k * 37) % 300).collect()
}

fn small_messages_both_ways(mode: Mode, rust_initiator: bool) {
    let rt = runtime();
    let (mut js, mut stream) = connect(&rt, mode, rust_initiator);
    let sizes = sizes();
    js.send_json(&json!({"cmd": "messages", "sizes": sizes, "end": true}))
        .unwrap();
    let s2 = sizes.clone();
    let got = rt.block_on(async move {
        for (k, n) in s2.iter().enumerate() {
            stream.send_message(&vec![(k * 3) as u8; *n]).await.unwrap();
        }
        stream.shutdown().await.unwrap();
        let mut got = Vec::new();
        while let Some(m) = stream.recv_message().await.unwrap() {
            got.push(m);
        }
        got
    });
    // JS -> Rust: every message arrives whole, in order, with its content
    assert_eq!(got.len(), sizes.len());
    for (k, (m, n)) in got.iter().zip(&sizes).enumerate() {
        assert_eq!(m, &vec![(k & 255) as u8; *n], "message {k}");
    }
    // Rust -> JS: one 'data' event per message, same sizes
    let end = wait_event(&mut js, "end");
    let js_sizes: Vec<usize> = end["sizes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(js_sizes, sizes);
    let mut h = Sha256::new();
    for (k, n) in sizes.iter().enumerate() {
        h.update(vec![(k * 3) as u8; *n]);
    }
    assert_eq!(end["sha256"].as_str().unwrap(), hex::encode(h.finalize()));
    wait_event(&mut js, "close");
}

#[test]
fn xx_small_messages_keep_boundaries_both_ways() {
    small_messages_both_ways(Mode::Xx, true);
}

#[test]
fn ik_handoff_rust_initiator_small_messages_both_ways() {
    small_messages_both_ways(Mode::Ik, true);
}

#[test]
fn ik_handoff_js_initiator_small_messages_both_ways() {
    small_messages_both_ways(Mode::Ik, false);
}

#[test]
fn datagrams_both_ways_and_corrupt_ones_are_dropped() {
    let rt = runtime();
    let (mut js, mut stream) = connect(&rt, Mode::Ik, true);
    // JS learns our UDP port from the command; we learn its port from its datagrams' source
    let listening_udp = rt
        .block_on(tokio::net::UdpSocket::bind("127.0.0.1:0"))
        .unwrap();
    let rust_port = listening_udp.local_addr().unwrap().port();
    // JS -> Rust
    let js_msgs: Vec<String> = (0..20)
        .map(|k| hex::encode(format!("js datagram {k}")))
        .collect();
    js.send_json(&json!({"cmd": "datagrams", "port": rust_port, "messages": js_msgs}))
        .unwrap();
    let (got, js_addr) = rt.block_on(async {
        let mut got = Vec::new();
        let mut buf = vec![0u8; 2048];
        let mut from = None;
        while got.len() < 20 {
            let (n, a) = tokio::time::timeout(T, listening_udp.recv_from(&mut buf))
                .await
                .unwrap()
                .unwrap();
            from = Some(a);
            let d = stream.core().datagrams().unwrap();
            got.push(hex::encode(d.open(&buf[..n]).expect("JS datagram opens")));
        }
        (got, from.unwrap())
    });
    assert_eq!(got, js_msgs);
    // Rust -> JS, with a corrupted datagram first that JS must drop silently
    let rust_msgs: Vec<Vec<u8>> = (0..20)
        .map(|k| format!("rust datagram {k}").into_bytes())
        .collect();
    rt.block_on(async {
        let d = stream.core().datagrams().unwrap();
        let mut bad = d.seal(b"corrupted").unwrap();
        bad[30] ^= 1;
        listening_udp.send_to(&bad, js_addr).await.unwrap();
        for m in &rust_msgs {
            let sealed = stream.core().datagrams().unwrap().seal(m).unwrap();
            listening_udp.send_to(&sealed, js_addr).await.unwrap();
        }
    });
    for m in &rust_msgs {
        let ev = wait_event(&mut js, "datagram");
        assert_eq!(ev["hex"].as_str().unwrap(), hex::encode(m));
    }
}

/// Runs a Rust XX initiator on the sans-IO core over raw TCP, so the test can tamper with
/// its own frames.
async fn raw_xx_initiator(tcp: &mut TcpStream) -> SecretStream {
    let rand = Randomness::generate(&mut rand_core::OsRng);
    let mut core =
        SecretStream::new_xx(true, KeyPair::from_seed(RUST_SEED), rand, Config::default());
    let mut buf = vec![0u8; 4096];
    loop {
        let out = core.send().take_outgoing();
        tcp.write_all(&out).await.unwrap();
        if core.is_connected() {
            return core;
        }
        let n = tcp.read(&mut buf).await.unwrap();
        assert!(n > 0);
        core.recv().feed(&buf[..n]);
        while core.poll_message().unwrap().is_some() {}
    }
}

#[test]
fn flipped_bit_from_rust_ends_js_stream_with_error_and_no_bad_bytes() {
    let rt = runtime();
    let mut js = JsProcess::spawn(
        "secret-stream-peer.js",
        &["responder", "xx", &hex::encode(JS_SEED)],
    )
    .unwrap();
    let port = wait_event(&mut js, "listening")["port"].as_u64().unwrap() as u16;
    let mut tcp = rt
        .block_on(TcpStream::connect(("127.0.0.1", port)))
        .unwrap();
    let mut core = rt.block_on(raw_xx_initiator(&mut tcp));
    wait_event(&mut js, "connected");
    // two good frames, delivered and read by JS before anything else is sent (a destroyed
    // streamx stream drops what it had buffered but not yet emitted)
    core.write(&[0u8; 10]).unwrap();
    core.write(&[1u8; 10]).unwrap();
    rt.block_on(tcp.write_all(&core.send().take_outgoing()))
        .unwrap();
    let deadline = std::time::Instant::now() + T;
    loop {
        js.send_json(&json!({"cmd": "progress"})).unwrap();
        if wait_event(&mut js, "progress")["bytes"] == 20 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "JS never read the good frames"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    for k in 2..5u8 {
        core.write(&[k; 10]).unwrap();
    }
    let mut wire = core.send().take_outgoing();
    // three frames of 3 + 27 bytes; flip one bit in the first one's ciphertext
    assert_eq!(wire.len(), 3 * 30);
    wire[3 + 5] ^= 0x04;
    rt.block_on(tcp.write_all(&wire)).unwrap();
    let err = wait_event(&mut js, "error");
    assert!(!err["message"].as_str().unwrap().is_empty());
    let sizes: Vec<u64> = err["sizes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(
        sizes,
        vec![10, 10],
        "JS delivered exactly the two good frames: {err}"
    );
    // JS destroyed the connection: the raw stream ends (after JS's own header frame)
    let closed = rt.block_on(async {
        let mut rest = Vec::new();
        tokio::time::timeout(T, tcp.read_to_end(&mut rest))
            .await
            .is_ok()
    });
    assert!(closed, "JS kept the connection open after the bad frame");
}

#[test]
fn flipped_bit_from_js_ends_rust_stream_with_decrypt_error_and_no_bad_bytes() {
    let rt = runtime();
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let mut js = JsProcess::spawn(
        "secret-stream-peer.js",
        &["initiator", "xx", &hex::encode(JS_SEED), &port, ""],
    )
    .unwrap();
    wait_event(&mut js, "listening");
    // JS -> proxy (flips one bit at `flip_at`) -> Rust; Rust -> JS untouched
    // JS initiator wire: msg1 (3 + 32), msg3 (3 + 64), header (3 + 56), then 10-byte messages
    // (3 + 27 each); the flip lands in the third message's ciphertext.
    let flip_at = 35 + 67 + 59 + 2 * 30 + 3 + 5;
    let mut stream = rt.block_on(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let (near, far) = tokio::io::duplex(1 << 20);
        let (mut tr, mut tw) = tcp.into_split();
        let (mut fr, mut fw) = tokio::io::split(far);
        tokio::spawn(async move {
            let mut seen = 0usize;
            let mut buf = vec![0u8; 4096];
            loop {
                let n = match tr.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                if (seen..seen + n).contains(&flip_at) {
                    buf[flip_at - seen] ^= 0x04;
                }
                seen += n;
                if fw.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
            let _ = fw.shutdown().await;
        });
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut fr, &mut tw).await;
        });
        SecretStreamIo::new_xx(near, false, KeyPair::from_seed(RUST_SEED))
    });
    rt.block_on(stream.handshake()).unwrap();
    wait_event(&mut js, "connected");
    js.send_json(&json!({"cmd": "messages", "sizes": [10, 10, 10, 10, 10], "end": true}))
        .unwrap();
    let res = rt.block_on(async {
        let mut got = Vec::new();
        loop {
            match stream.recv_message().await {
                Ok(Some(m)) => got.push(m),
                Ok(None) => return (got, None),
                Err(e) => return (got, Some(e)),
            }
        }
    });
    assert_eq!(
        res.0,
        vec![vec![0u8; 10], vec![1u8; 10]],
        "exactly the two good messages"
    );
    let err = res.1.expect("the stream must fail");
    assert_eq!(stream_error(&err), Some(&StreamError::Decrypt), "{err}");
}

#[test]
fn keepalives_both_ways_are_filtered_and_do_not_disturb_messages() {
    // JS responder with keepAlive 100 ms, Rust initiator with the same; both idle ~1 s.
    let rt = runtime();
    let mut js = JsProcess::spawn(
        "secret-stream-peer.js",
        &["responder", "xx", &hex::encode(JS_SEED), "", "", "100"],
    )
    .unwrap();
    let port = wait_event(&mut js, "listening")["port"].as_u64().unwrap() as u16;
    let mut stream = rt.block_on(async move {
        let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let mut s = SecretStreamIo::new_xx(tcp, true, KeyPair::from_seed(RUST_SEED));
        s.set_keep_alive(Some(Duration::from_millis(100)));
        s.handshake().await.unwrap();
        s
    });
    wait_event(&mut js, "connected");
    // idle while reading (our keepalive timer runs from the read path too)
    let idle = rt.block_on(async {
        tokio::time::timeout(Duration::from_millis(1000), stream.recv_message()).await
    });
    assert!(
        idle.is_err(),
        "only keepalives should have arrived: {idle:?}"
    );
    let keepalives = stream.core().recv_ref().data_frames_read();
    assert!(
        keepalives >= 5,
        "JS sent {keepalives} keepalives in 1 s at 100 ms"
    );
    js.send_json(&json!({"cmd": "messages", "sizes": [5], "end": true}))
        .unwrap();
    let got = rt.block_on(async {
        let mut got = Vec::new();
        while let Some(m) = stream.recv_message().await.unwrap() {
            got.push(m);
        }
        stream.send_message(b"after idle").await.unwrap();
        stream.shutdown().await.unwrap();
        got
    });
    assert_eq!(
        got,
        vec![vec![0u8; 5]],
        "keepalives must not surface as messages"
    );
    let end = wait_event(&mut js, "end");
    // JS filters our keepalives too (keepAlive > 0): only the real message counts
    assert_eq!(end["sizes"], json!([10]), "{end}");
    // ...but they did arrive: secret-stream counts every decrypted frame body (17 bytes each)
    let raw = end["rawBytesRead"].as_u64().unwrap();
    assert!(
        raw >= 5 * 17 + 27,
        "JS read only {raw} frame bytes: our keepalives are missing"
    );
}
