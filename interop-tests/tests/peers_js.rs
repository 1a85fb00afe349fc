//! The peer driver against the project's JS peer in both seats (JS server × JS client) on a JS
//! testnet: every client test, `announce`, `lookup` and `node`, at small sizes. Each result must
//! be well-formed (the driver's checks: counts add up, one sample per success, bytes acknowledged
//! as sent, echoes matched by id) and correct here: no failed iteration, every byte counted by
//! the server, the server's public key found by a lookup of its topic.

use std::time::Duration;

use interop_tests::Testnet;
use interop_tests::peer_driver::{
    AnnounceVia, ClientResult, ClientTest, DriverError, PeerImpl, Server, Via, percentile,
    random_hex32, run_announce, run_client, run_for_result, run_lookup, run_node,
};

const MAX_SECONDS: u64 = 60;

fn setup() -> (Testnet, PeerImpl, Server) {
    let net = Testnet::start(4).expect("JS testnet");
    let js = PeerImpl::js().expect("JS peer");
    let server = Server::start(
        &js,
        net.bootstrap,
        &random_hex32(),
        None,
        MAX_SECONDS * 2,
        Duration::from_secs(30),
    )
    .expect("JS server announced");
    assert!(server.announced_ms >= 0.0 && server.listening_ms >= 0.0);
    (net, js, server)
}

fn samples_without_errors(r: &ClientResult) -> &[f64] {
    let s = match r {
        ClientResult::ConnectSwarm(s)
        | ClientResult::ConnectDhtCold(s)
        | ClientResult::ConnectDhtWarm(s) => s,
        other => panic!("not a connect result: {other:?}"),
    };
    assert_eq!(s.errors, 0, "failed iterations: {:?}", s.error_messages);
    &s.samples_ms
}

#[test]
fn js_client_connects_to_js_server_by_topic_and_by_key() {
    let (net, js, server) = setup();
    let b = net.bootstrap;

    let r = run_client(
        &js,
        b,
        &server,
        &ClientTest::ConnectSwarm { iterations: 3 },
        60,
    )
    .expect("connect-swarm");
    assert_eq!(samples_without_errors(&r).len(), 3);
    let ClientResult::ConnectSwarm(s) = &r else {
        unreachable!()
    };
    // Each first connection answered its ping.
    assert_eq!(s.first_rtt_ms.len(), 3);

    let warm = ClientTest::ConnectDht {
        iterations: 4,
        fresh: false,
    };
    let r = run_client(&js, b, &server, &warm, 60).expect("connect-dht warm");
    assert!(matches!(r, ClientResult::ConnectDhtWarm(_)));
    assert_eq!(samples_without_errors(&r).len(), 4);

    let cold = ClientTest::ConnectDht {
        iterations: 2,
        fresh: true,
    };
    let r = run_client(&js, b, &server, &cold, 60).expect("connect-dht cold");
    assert!(matches!(r, ClientResult::ConnectDhtCold(_)));
    assert_eq!(samples_without_errors(&r).len(), 2);

    for concurrency in [1, 4] {
        let t = ClientTest::ConnectRate {
            iterations: 12,
            concurrency,
        };
        let ClientResult::ConnectRate(r) = run_client(&js, b, &server, &t, 60).expect("rate")
        else {
            panic!("not a connect-rate result")
        };
        assert_eq!((r.attempted, r.opened, r.errors), (12, 12, 0));
        assert!(r.per_sec > 0.0);
    }

    // 3 + 4 + 2 + 12 + 12 connections reached the server, none sank a byte.
    let exit = server.stop(Duration::from_secs(15)).expect("server exit");
    assert_eq!(exit.why, "SIGTERM");
    assert!(exit.connections >= 33, "{exit:?}");
    assert_eq!(exit.sink_bytes, 0);
}

#[test]
fn js_client_streams_to_and_echoes_with_js_server() {
    let (net, js, server) = setup();
    let b = net.bootstrap;
    // Not a multiple of the write size, so the last write is short.
    let bytes = 3 * 65536 + 1234;
    let mut sunk = 0;
    for via in [Via::Swarm, Via::Dht] {
        let t = ClientTest::Throughput {
            bytes,
            write_size: 65536,
            via,
        };
        let ClientResult::Throughput(r) = run_client(&js, b, &server, &t, 60).expect("throughput")
        else {
            panic!("not a throughput result")
        };
        assert_eq!(r.runs.len(), 1);
        let run = &r.runs[0];
        assert_eq!(run.server.bytes, bytes);
        assert!(run.server.ms.is_some() && run.server.cpu_user_us.is_some());
        sunk += bytes;
    }

    let t = ClientTest::Rtt {
        rounds: 30,
        msg_size: 100,
        warmup: 5,
    };
    let ClientResult::Rtt(r) = run_client(&js, b, &server, &t, 60).expect("rtt") else {
        panic!("not an rtt result")
    };
    assert_eq!(r.samples_ms.len(), 30);
    assert!(percentile(&r.samples_ms, 50.0).is_some());

    let exit = server.stop(Duration::from_secs(15)).expect("server exit");
    // The server counted exactly the payload of both sinks (the echo bytes are not sink bytes).
    assert_eq!(exit.sink_bytes, sunk);
    assert!(exit.connections >= 3);
}

#[test]
fn js_dht_operations_and_memory() {
    let (net, js, server) = setup();
    let b = net.bootstrap;

    let a = run_announce(&js, b, 2, AnnounceVia::Both, 60).expect("announce");
    assert!(a.swarm.is_some() && a.dht.is_some());
    let a = run_announce(&js, b, 1, AnnounceVia::Dht, 60).expect("announce via dht");
    assert!(a.swarm.is_none());

    let l = run_lookup(&js, b, &server.topic, 2, 60).expect("lookup of an announced topic");
    assert_eq!(l.misses, 0, "{l:?}");
    assert!(l.replies.iter().all(|&n| n > 0));
    let l = run_lookup(&js, b, &random_hex32(), 1, 60).expect("lookup of an empty topic");
    assert_eq!(l.misses, 1);

    let m = run_node(&js, b, 200, false, 60).expect("node");
    assert!(m.dht && m.rss_bytes > 1 << 20);
    let m = run_node(&js, b, 0, true, 60).expect("node --no-dht");
    assert!(!m.dht);

    // A fatal problem comes back as the peer's own message.
    let args = [
        "--bootstrap".to_owned(),
        b.to_string(),
        "--test".to_owned(),
        "nope".to_owned(),
    ];
    match run_for_result(&js, "client", &args, 30) {
        Err(DriverError::Peer { message, .. }) => assert!(message.contains("nope"), "{message}"),
        other => panic!("expected the peer's error, got {other:?}"),
    }

    // A server stopped by its deadline: the peer stops by itself at --max-seconds. Its key pair
    // comes from --seed as HyperDHT's keyPair(seed) derives it.
    let seed = random_hex32();
    let short = Server::start(
        &js,
        b,
        &random_hex32(),
        Some(&seed),
        2,
        Duration::from_secs(30),
    )
    .expect("short-lived server");
    let seed: [u8; 32] = hex::decode(&seed).unwrap().try_into().unwrap();
    assert_eq!(
        short.public_key,
        hex::encode(dht::crypto::KeyPair::from_seed(&seed).public_key)
    );
    let mut p = short.process;
    let status = p.wait(Duration::from_secs(30)).expect("exits by itself");
    assert!(status.success());
    assert_eq!(p.exit_line().expect("exit line")["why"], "max-seconds");
    drop(server);
}
