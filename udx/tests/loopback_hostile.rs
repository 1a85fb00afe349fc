//! The tokio driver under hostile or re-entrant use on real loopback sockets: a holepunch
//! probe's low TTL never leaks onto a concurrent normal send, a firewall may call back into
//! the socket, a stream whose peer vanished ends with `TimedOut`, a finished stream lingers
//! after its handle is gone, and `udxcat` moves 256 MiB intact while `udxcat spray` attacks
//! the receiver from another port.

// recvmsg hands its control bytes back as `MaybeUninit`: one unsafe read, in `hop_limits`.
#![allow(unsafe_code)]
#![allow(clippy::disallowed_methods)] // tests time themselves against deadlines

use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use udx::socket::Socket;
use udx::{Config, StreamError};

const T: Duration = Duration::from_secs(30);

fn bind() -> Socket {
    Socket::bind("127.0.0.1:0".parse().unwrap()).unwrap()
}

/// A `[::1]` address, or a failure that says why (set UDX_SKIP_IPV6=1 on hosts without IPv6).
fn ipv6_or_skip() -> Option<SocketAddr> {
    let addr: SocketAddr = "[::1]:0".parse().unwrap();
    match std::net::UdpSocket::bind(addr) {
        Ok(_) => Some(addr),
        Err(e) if std::env::var_os("UDX_SKIP_IPV6").is_some() => {
            eprintln!("SKIPPED (UDX_SKIP_IPV6 set): no IPv6 loopback: {e}");
            None
        }
        Err(e) => panic!("no IPv6 loopback ({e}); set UDX_SKIP_IPV6=1 to skip"),
    }
}

/// Receives datagrams on `sock` until `stop` and `idle` passes without one; returns the hop
/// limit each arrived with (IPV6_HOPLIMIT control message, Linux layout).
fn hop_limits(sock: &socket2::Socket, stop: &AtomicBool) -> Vec<i32> {
    const IPPROTO_IPV6: i32 = 41;
    const IPV6_HOPLIMIT: i32 = 52;
    let mut out = Vec::new();
    let mut payload = [MaybeUninit::<u8>::new(0); 64];
    loop {
        let mut control = [MaybeUninit::<u8>::new(0); 64];
        let mut bufs = [socket2::MaybeUninitSlice::new(&mut payload)];
        let mut msg = socket2::MsgHdrMut::new()
            .with_buffers(&mut bufs)
            .with_control(&mut control);
        match sock.recvmsg(&mut msg, 0) {
            Ok(_) => {
                let len = msg.control_len();
                // SAFETY: every control byte was initialised to 0 above; recvmsg only
                // overwrites bytes, so all of them are initialised.
                let bytes: Vec<u8> = control[..len]
                    .iter()
                    .map(|b| unsafe { b.assume_init() })
                    .collect();
                // struct cmsghdr { size_t len; int level; int type; } then the data, 8-aligned
                let mut at = 0;
                while at + 16 <= bytes.len() {
                    let clen = u64::from_ne_bytes(bytes[at..at + 8].try_into().unwrap()) as usize;
                    let level = i32::from_ne_bytes(bytes[at + 8..at + 12].try_into().unwrap());
                    let ty = i32::from_ne_bytes(bytes[at + 12..at + 16].try_into().unwrap());
                    if level == IPPROTO_IPV6 && ty == IPV6_HOPLIMIT && at + 20 <= bytes.len() {
                        out.push(i32::from_ne_bytes(
                            bytes[at + 16..at + 20].try_into().unwrap(),
                        ));
                    }
                    if clen == 0 {
                        break;
                    }
                    at += clen.div_ceil(8) * 8;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if stop.load(Ordering::Acquire) {
                    return out;
                }
            }
            Err(e) => panic!("recvmsg: {e}"),
        }
    }
}

fn hop_limit_receiver(addr: SocketAddr) -> socket2::Socket {
    let s = socket2::Socket::new(socket2::Domain::IPV6, socket2::Type::DGRAM, None).unwrap();
    s.set_recv_hoplimit_v6(true).unwrap();
    let _ = s.set_recv_buffer_size(8 << 20);
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    s.bind(&addr.into()).unwrap();
    s
}

/// Two threads share one socket: one sends holepunch probes with hop limit 3, the other
/// normal datagrams. Every normal datagram must arrive with 64 and every probe with 3. Before
/// the send lock, a normal send between the probe's TTL change and its restore left with 3.
#[test]
fn low_ttl_probes_never_leak_onto_concurrent_sends() {
    let Some(v6) = ipv6_or_skip() else { return };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _g = rt.enter();
    let socket = Socket::bind(v6).unwrap();
    let probes_rx = hop_limit_receiver(v6);
    let normal_rx = hop_limit_receiver(v6);
    let probes_to = probes_rx.local_addr().unwrap().as_socket().unwrap();
    let normal_to = normal_rx.local_addr().unwrap().as_socket().unwrap();
    let stop = AtomicBool::new(false);
    const N: usize = 20_000;
    let (probes, normal) = std::thread::scope(|s| {
        let p = s.spawn(|| hop_limits(&probes_rx, &stop));
        let n = s.spawn(|| hop_limits(&normal_rx, &stop));
        let sender = |probe: bool| {
            let mut sent = 0;
            while sent < N {
                let r = if probe {
                    socket.try_send_to_with_ttl(b"p", probes_to, 3)
                } else {
                    socket.try_send_to(b"n", normal_to)
                };
                match r {
                    Ok(()) => sent += 1,
                    Err(_) => std::thread::yield_now(), // buffer full: retry
                }
            }
        };
        std::thread::scope(|s2| {
            s2.spawn(|| sender(true));
            s2.spawn(|| sender(false));
        });
        stop.store(true, Ordering::Release);
        (p.join().unwrap(), n.join().unwrap())
    });
    let leaked = normal.iter().filter(|&&h| h != 64).count();
    eprintln!(
        "probes received {} (hop limit 3: {}), normal received {} (leaked low TTL: {leaked})",
        probes.len(),
        probes.iter().filter(|&&h| h == 3).count(),
        normal.len()
    );
    assert!(
        normal.len() > N / 2 && probes.len() > N / 2,
        "most datagrams arrive"
    );
    assert!(probes.iter().all(|&h| h == 3), "probes carry their TTL");
    assert_eq!(leaked, 0, "normal datagrams left with a probe's TTL");
}

/// The firewall runs without the socket's lock: it may create streams, count them, send raw
/// datagrams and look ids up. Before, the first of these deadlocked the driver.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firewall_may_call_back_into_the_socket() {
    let (server, client) = (bind(), bind());
    let calls = Arc::new(Mutex::new(Vec::new()));
    let s = server.create_stream(7).unwrap();
    {
        let server2 = server.clone();
        let calls = calls.clone();
        s.connect_on_first_packet(8, move |from| {
            let extra = server2.create_stream(99).map(|st| st.id());
            let count = server2.stream_count();
            let sent = server2.try_send_to(b"\x03fw", from).is_ok();
            let used = server2.id_in_use(7);
            calls.lock().unwrap().push((extra.ok(), count, sent, used));
            true
        })
        .unwrap();
    }
    let mut raw = client.datagram_channel(4);
    let mut c = client.create_stream(8).unwrap();
    c.connect(7, server.local_addr()).unwrap();
    c.write_all(b"hello").await.unwrap();
    let mut s = s;
    let mut buf = [0u8; 5];
    tokio::time::timeout(T, s.read_exact(&mut buf))
        .await
        .expect("no deadlock: the first packet passed the firewall")
        .unwrap();
    assert_eq!(&buf, b"hello");
    let (d, _) = tokio::time::timeout(T, raw.recv()).await.unwrap().unwrap();
    assert_eq!(d, b"\x03fw");
    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls.first(), Some(&(Some(99), 2, true, true)));
    assert_eq!(s.remote_addr(), Some(client.local_addr()));
}

/// A peer that vanishes mid-transfer (its process freezes: its runtime stops running, so no
/// DESTROY, no ACK): the reader, with nothing in flight, ends with TimedOut after its idle
/// limit instead of waiting forever.
#[test]
fn reader_of_a_vanished_peer_times_out() {
    let rt_a = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let rt_b = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let sa = rt_a.block_on(async { bind() });
    let sb = rt_b.block_on(async { bind() });
    let cfg = Config {
        idle_timeout: Some(Duration::from_millis(500)),
        ..Config::default()
    };
    let mut a = sa.create_stream(1).unwrap();
    let mut b = sb.create_stream_with(2, cfg).unwrap();
    a.connect(2, sb.local_addr()).unwrap();
    b.connect(1, sa.local_addr()).unwrap();
    let reader = rt_b.spawn(async move {
        let mut got = vec![0u8; 100_000];
        b.read_exact(&mut got).await.unwrap();
        b
    });
    let mut b = rt_a.block_on(async {
        a.write_all(&[5u8; 100_000]).await.unwrap();
        // Keep A's driver running until B has everything (and acknowledged it).
        tokio::time::timeout(T, reader).await.unwrap().unwrap()
    });
    // From here on nothing runs A's driver: the writer is gone without a word.
    let started = Instant::now();
    let err = rt_b.block_on(async {
        let mut buf = [0u8; 16];
        tokio::time::timeout(T, b.read(&mut buf))
            .await
            .expect("the idle limit ends the read")
            .unwrap_err()
    });
    eprintln!("read failed after {:?}: {err}", started.elapsed());
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    assert_eq!(rt_b.block_on(b.closed()), Err(StreamError::TimedOut));
    drop((a, sa));
}

/// After a clean close the side that ended first lingers, handle dropped or not, and is
/// forgotten once the linger is over; `finished` resolves then.
#[tokio::test]
async fn finished_stream_lingers_then_goes() {
    let (sa, sb) = (bind(), bind());
    let mut a = sa.create_stream(1).unwrap();
    let mut b = sb.create_stream(2).unwrap();
    a.connect(2, sb.local_addr()).unwrap();
    b.connect(1, sa.local_addr()).unwrap();
    a.shutdown().await.unwrap();
    let mut rest = Vec::new();
    b.read_to_end(&mut rest).await.unwrap();
    b.shutdown().await.unwrap();
    assert_eq!(tokio::time::timeout(T, a.closed()).await.unwrap(), Ok(()));
    let linger_start = Instant::now();
    drop(a);
    assert_eq!(sa.stream_count(), 1, "A lingers without its handle");
    // A new stream with A's id is refused while A lingers.
    assert!(sa.id_in_use(1));
    // Wait (with a deadline) until the driver forgot it: >= 13 x RTO (1 s floor) later.
    let deadline = Instant::now() + Duration::from_secs(60);
    while sa.stream_count() != 0 {
        assert!(Instant::now() < deadline, "linger never ended");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(linger_start.elapsed() >= Duration::from_secs(13));
}

fn udxcat() -> Command {
    Command::new(env!("CARGO_BIN_EXE_udxcat"))
}

fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The last JSON line of `stderr` that has key `key`.
fn json_line(stderr: &str, key: &str) -> serde_like::Obj {
    let line = stderr
        .lines()
        .rev()
        .find(|l| l.contains(&format!("\"{key}\"")))
        .unwrap_or_else(|| panic!("no {key} line in {stderr}"));
    serde_like::parse(line)
}

/// Enough JSON for udxcat's flat `{"k":v}` / `{"k":{"k":v}}` lines.
mod serde_like {
    pub(crate) type Obj = Vec<(String, String)>;
    pub(crate) fn parse(line: &str) -> Obj {
        line.replace(['{', '}'], "")
            .split(',')
            .filter_map(|kv| {
                let mut it = kv.rsplitn(2, ':');
                let v = it.next()?.trim().trim_matches('"').to_string();
                let k = it
                    .next()?
                    .rsplit(':')
                    .next()?
                    .trim()
                    .trim_matches('"')
                    .to_string();
                Some((k, v))
            })
            .collect()
    }
    pub(crate) fn get<'a>(o: &'a Obj, k: &str) -> &'a str {
        o.iter()
            .find(|(kk, _)| kk == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no {k} in {o:?}"))
    }
}

/// `udxcat send` -> `udxcat recv` on loopback while `udxcat spray` sends garbage, headers of
/// every type, forged DESTROY/END/ACK/DATA with the receiver's real id and replays of the
/// sender's first packets from another port: the transfer completes, SHA-256 equal, both
/// exit 0, and the receiver's counters account for the sprayed packets it dropped.
fn udxcat_transfer_under_spray(bytes: u64) {
    let (rp, sp, ap) = (free_port(), free_port(), free_port());
    let recv = udxcat()
        .args([
            "recv",
            "--sink",
            "--bind",
            &format!("127.0.0.1:{rp}"),
            "--id",
            "2",
        ])
        .args(["--peer", &format!("127.0.0.1:{sp}"), "--peer-id", "1"])
        .env("UDXCAT_STATS", "1")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let spray = udxcat()
        .args(["spray", "--bind", &format!("127.0.0.1:{ap}")])
        .args(["--peer", &format!("127.0.0.1:{rp}"), "--peer-id", "2"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let send = udxcat()
        .args(["send", "--bind", &format!("127.0.0.1:{sp}"), "--id", "1"])
        .args(["--peer", &format!("127.0.0.1:{rp}"), "--peer-id", "2"])
        .args(["--bytes", &bytes.to_string()])
        .env("UDXCAT_STATS", "1")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let send = send.wait_with_output().unwrap();
    let recv = recv.wait_with_output().unwrap();
    let mut spray = spray;
    let _ = spray.kill();
    let spray = spray.wait_with_output().unwrap();
    let (se, re, ae) = (
        String::from_utf8_lossy(&send.stderr).to_string(),
        String::from_utf8_lossy(&recv.stderr).to_string(),
        String::from_utf8_lossy(&spray.stderr).to_string(),
    );
    eprintln!("send: {se}\nrecv: {re}\nspray: {ae}");
    assert!(send.status.success(), "sender failed: {se}");
    assert!(recv.status.success(), "receiver failed: {re}");
    let (s, r) = (json_line(&se, "sha256"), json_line(&re, "sha256"));
    assert_eq!(serde_like::get(&r, "bytes"), bytes.to_string());
    assert_eq!(serde_like::get(&s, "sha256"), serde_like::get(&r, "sha256"));
    let stats = json_line(&re, "stats");
    let dropped: u64 = serde_like::get(&stats, "dropped_off_path").parse().unwrap();
    let malformed: u64 = serde_like::get(&stats, "malformed").parse().unwrap();
    let bad: u64 = serde_like::get(&stats, "dropped_bad_seq")
        .parse::<u64>()
        .unwrap()
        + serde_like::get(&stats, "dropped_bad_ack")
            .parse::<u64>()
            .unwrap();
    eprintln!(
        "receiver dropped {dropped} off-path and {malformed} malformed datagrams, \
         {bad} implausible ones from its peer"
    );
    assert!(dropped > 0, "the spray reached the receiver's stream");
    assert_eq!(bad, 0, "legitimate traffic is never judged implausible");
}

#[test]
fn udxcat_256mib_intact_while_spray_attacks_the_receiver() {
    udxcat_transfer_under_spray(256 << 20);
}
