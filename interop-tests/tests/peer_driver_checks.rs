//! The peer driver against fake implementations (small shell scripts): results that break the
//! interface are refused with the reason, a silent peer times out, and dropping a peer kills its
//! whole process group, children included. No network.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use interop_tests::peer_driver::{
    ClientTest, DriverError, PeerImpl, PeerProcess, Server, Via, run_client,
};

const BOOTSTRAP: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9);
const TOPIC: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const KEY: &str = "2222222222222222222222222222222222222222222222222222222222222222";

/// An implementation that runs `script` with the command line as `$@`.
fn fake(script: &str) -> PeerImpl {
    PeerImpl::new(
        "fake",
        "sh",
        vec!["-c".into(), script.into(), "fake".into()],
    )
}

fn serve_script(topic: &str) -> String {
    format!(
        "echo 'not json'; \
         echo '{{\"event\":\"ready\",\"role\":\"server\",\"publicKey\":\"{KEY}\",\"bootstrapMs\":1}}'; \
         echo '{{\"event\":\"listening\",\"publicKey\":\"{KEY}\",\"ms\":1}}'; \
         echo '{{\"event\":\"announced\",\"topic\":\"{topic}\",\"ms\":1}}'; \
         exec sleep 30"
    )
}

fn server() -> Server {
    Server::start(
        &fake(&serve_script(TOPIC)),
        BOOTSTRAP,
        TOPIC,
        None,
        30,
        Duration::from_secs(10),
    )
    .expect("fake server")
}

#[test]
fn a_server_announcing_another_topic_is_refused() {
    let s = Server::start(
        &fake(&serve_script(KEY)),
        BOOTSTRAP,
        TOPIC,
        None,
        30,
        Duration::from_secs(10),
    );
    match s {
        Err(DriverError::Malformed { reason, .. }) => assert!(reason.contains("topic"), "{reason}"),
        other => panic!("expected a malformed announced line, got {other:?}"),
    }
    // A good one passes, with its figures read.
    let s = server();
    assert_eq!(s.public_key, KEY);
    assert_eq!(s.announced_ms, 1.0);
}

#[test]
fn results_that_do_not_add_up_are_refused() {
    let s = server();
    let result = |json: &str| fake(&format!("echo '{json}'; echo '{{\"event\":\"exit\"}}'"));
    let throughput = ClientTest::Throughput {
        bytes: 1000,
        write_size: 100,
        via: Via::Swarm,
    };
    // The server acknowledged fewer bytes than were sent.
    let short_ack = result(
        r#"{"event":"result","test":"throughput","runs":[{"bytes":1000,"writeSize":100,"ms":2,"mbPerSec":0.5,"clientCpuUserUs":1,"clientCpuSysUs":1,"server":{"op":"sink","bytes":999}}]}"#,
    );
    match run_client(&short_ack, BOOTSTRAP, &s, &throughput, 30) {
        Err(DriverError::Malformed { reason, .. }) => assert!(reason.contains("999"), "{reason}"),
        other => panic!("expected a refused result, got {other:?}"),
    }
    // The same result with the right count is accepted.
    let good = result(
        r#"{"event":"result","test":"throughput","runs":[{"bytes":1000,"writeSize":100,"ms":2,"mbPerSec":0.5,"clientCpuUserUs":1,"clientCpuSysUs":1,"server":{"op":"sink","bytes":1000}}]}"#,
    );
    run_client(&good, BOOTSTRAP, &s, &throughput, 30).expect("a consistent result");

    // Samples and errors that do not make up the iterations.
    let swarm = ClientTest::ConnectSwarm { iterations: 3 };
    let missing =
        result(r#"{"event":"result","test":"connect-swarm","samplesMs":[1.0],"errors":1}"#);
    assert!(matches!(
        run_client(&missing, BOOTSTRAP, &s, &swarm, 30),
        Err(DriverError::Malformed { .. })
    ));
    // A warm connect reported as cold.
    let warm = ClientTest::ConnectDht {
        iterations: 1,
        fresh: false,
    };
    let cold =
        result(r#"{"event":"result","test":"connect-dht-cold","samplesMs":[1.0],"errors":0}"#);
    assert!(matches!(
        run_client(&cold, BOOTSTRAP, &s, &warm, 30),
        Err(DriverError::Malformed { .. })
    ));
    // An rtt result with a sample short.
    let rtt = ClientTest::Rtt {
        rounds: 2,
        msg_size: 100,
        warmup: 0,
    };
    let short = result(
        r#"{"event":"result","test":"rtt","samplesMs":[0.1],"rounds":2,"size":100,"warmup":0,"clientCpuUserUs":1,"clientCpuSysUs":1}"#,
    );
    assert!(matches!(
        run_client(&short, BOOTSTRAP, &s, &rtt, 30),
        Err(DriverError::Malformed { .. })
    ));
    // A failing exit status after a good result.
    let failing = fake(
        r#"echo '{"event":"result","test":"connect-swarm","samplesMs":[],"errors":3}'; exit 3"#,
    );
    assert!(matches!(
        run_client(&failing, BOOTSTRAP, &s, &swarm, 30),
        Err(DriverError::ExitStatus { .. })
    ));
}

#[test]
fn a_silent_peer_times_out_and_dropping_it_kills_its_group() {
    // The peer starts a child in its group, reports the child's pid, then says nothing more.
    let silent =
        fake("sleep 60 & echo \"{\\\"event\\\":\\\"child\\\",\\\"pid\\\":$!}\"; exec sleep 60");
    let mut p = PeerProcess::spawn(&silent, "serve", &[], 60).expect("spawn");
    let child = p
        .expect_event("child", Duration::from_secs(10))
        .expect("child pid")["pid"]
        .as_u64()
        .expect("a pid") as u32;
    assert!(std::path::Path::new(&format!("/proc/{child}")).exists());
    match p.next_event("result", Duration::from_millis(300)) {
        Err(DriverError::Timeout { what, .. }) => assert_eq!(what, "result"),
        other => panic!("expected a timeout, got {other:?}"),
    }
    drop(p);
    // The grandchild went with the group (it is reaped by init, so poll until it is gone).
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(format!("/proc/{child}/stat")).is_ok_and(|s| !s.contains(") Z "))
    {
        assert!(Instant::now() < deadline, "pid {child} outlived its group");
        std::thread::sleep(Duration::from_millis(20));
    }
}
