//! The tokio driver on real 127.0.0.1 sockets: Rust <-> Rust streams as AsyncRead/AsyncWrite,
//! first-packet binding through a firewall, the non-UDX datagram handler, relaying, changing
//! the remote, and socket close.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use udx::StreamError;
use udx::socket::{Socket, UdxStream};

const T: Duration = Duration::from_secs(30);

fn bind() -> Socket {
    Socket::bind("127.0.0.1:0".parse().unwrap()).unwrap()
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed ^ (i >> 11) as u8)
        .collect()
}

async fn exchange(a: &mut UdxStream, b: &mut UdxStream, data: &[u8]) {
    let ((), r2) = tokio::join!(
        async {
            a.write_all(data).await.unwrap();
        },
        async {
            let mut got = vec![0u8; data.len()];
            b.read_exact(&mut got).await.unwrap();
            got
        }
    );
    assert_eq!(r2, data);
}

#[tokio::test]
async fn loopback_transfer_end_and_clean_close() {
    let (sa, sb) = (bind(), bind());
    let mut a = sa.create_stream(1).unwrap();
    let mut b = sb.create_stream(2).unwrap();
    a.connect(2, sb.local_addr()).unwrap();
    b.connect(1, sa.local_addr()).unwrap();
    let data = pattern(8 << 20, 1);
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        b.read_to_end(&mut got).await.unwrap();
        b.write_all(b"bye").await.unwrap();
        b.shutdown().await.unwrap();
        assert_eq!(b.closed().await, Ok(()));
        got
    });
    a.write_all(&data).await.unwrap();
    tokio::time::timeout(T, a.shutdown())
        .await
        .unwrap()
        .unwrap();
    let mut tail = Vec::new();
    tokio::time::timeout(T, a.read_to_end(&mut tail))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(tail, b"bye");
    assert_eq!(tokio::time::timeout(T, a.closed()).await.unwrap(), Ok(()));
    assert_eq!(
        tokio::time::timeout(T, reader).await.unwrap().unwrap(),
        data
    );
}

#[tokio::test]
async fn first_packet_binds_through_firewall_and_rejected_packets_reach_handler() {
    let (server, client) = (bind(), bind());
    let mut raw = server.datagram_channel(8);
    // A stream whose firewall rejects everything: the packet goes to the handler.
    let closed = server.create_stream(5).unwrap();
    closed.connect_on_first_packet(6, |_| false).unwrap();
    let c0 = client.create_stream(6).unwrap();
    c0.connect(5, server.local_addr()).unwrap();
    c0.send_message(b"knock").unwrap();
    let (d, from) = tokio::time::timeout(T, raw.recv()).await.unwrap().unwrap();
    assert_eq!(from, client.local_addr());
    assert_eq!(d[0], 0xff);
    assert_eq!(closed.remote_addr(), None);

    // A stream that accepts: it binds to the first packet's source and answers there.
    let (tx, rx) = std::sync::mpsc::channel::<SocketAddr>();
    let mut s = server.create_stream(7).unwrap();
    s.connect_on_first_packet(8, move |from| {
        let _ = tx.send(from);
        true
    })
    .unwrap();
    let mut c = client.create_stream(8).unwrap();
    c.connect(7, server.local_addr()).unwrap();
    c.write_all(b"hello server").await.unwrap();
    let mut buf = [0u8; 12];
    tokio::time::timeout(T, s.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf, b"hello server");
    assert_eq!(rx.recv().unwrap(), client.local_addr());
    assert_eq!(s.remote_addr(), Some(client.local_addr()));
    s.write_all(b"hi").await.unwrap();
    let mut buf = [0u8; 2];
    tokio::time::timeout(T, c.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf, b"hi");
    // non-UDX datagrams from anywhere reach the handler; raw sends work
    client
        .send_to(b"\x03dht", server.local_addr())
        .await
        .unwrap();
    let (d, _) = tokio::time::timeout(T, raw.recv()).await.unwrap().unwrap();
    assert_eq!(d, b"\x03dht");
}

#[tokio::test]
async fn relay_then_change_remote_to_direct_path() {
    let (sa, sb, sr) = (bind(), bind(), bind());
    let mut a = sa.create_stream(1).unwrap();
    let mut b = sb.create_stream(2).unwrap();
    let r1 = sr.create_stream(11).unwrap();
    let r2 = sr.create_stream(12).unwrap();
    // A talks to the relay's stream 11, B to 12; the relay rewrites ids and forwards.
    a.connect(11, sr.local_addr()).unwrap();
    b.connect(12, sr.local_addr()).unwrap();
    r1.connect(1, sa.local_addr()).unwrap();
    r2.connect(2, sb.local_addr()).unwrap();
    r1.relay_to(&r2).unwrap();
    r2.relay_to(&r1).unwrap();
    let first = pattern(1 << 20, 2);
    tokio::time::timeout(T, exchange(&mut a, &mut b, &first))
        .await
        .unwrap();
    tokio::time::timeout(T, exchange(&mut b, &mut a, b"reply via relay"))
        .await
        .unwrap();
    // Move both ends to the direct path (ids stay those of the real peers).
    let (ra, rb) = tokio::join!(
        a.change_remote(2, sb.local_addr()),
        b.change_remote(1, sa.local_addr())
    );
    ra.unwrap();
    rb.unwrap();
    drop((r1, r2));
    sr.close();
    let second = pattern(1 << 20, 3);
    tokio::time::timeout(T, exchange(&mut a, &mut b, &second))
        .await
        .unwrap();
    assert_eq!(a.remote_addr(), Some(sb.local_addr()));
}

#[tokio::test]
async fn socket_close_fails_live_streams() {
    let (sa, sb) = (bind(), bind());
    let mut a = sa.create_stream(1).unwrap();
    a.connect(2, sb.local_addr()).unwrap();
    sa.close();
    let err = a.write_all(b"x").await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotConnected);
    assert_eq!(a.closed().await, Err(StreamError::LocallyClosed));
    assert!(sa.create_stream(3).is_err());
}

#[tokio::test]
async fn duplicate_ids_are_refused() {
    let s = bind();
    let _a = s.create_stream(9).unwrap();
    assert!(s.id_in_use(9));
    assert!(matches!(
        s.create_stream(9),
        Err(udx::socket::SocketError::IdInUse(9))
    ));
}

#[tokio::test]
async fn ipv6_loopback_transfer() {
    // A host without IPv6 fails here, as in loopback_hostile; UDX_SKIP_IPV6=1 is the explicit,
    // printed way out.
    let sa = match Socket::bind("[::1]:0".parse().unwrap()) {
        Ok(s) => s,
        Err(e) if std::env::var_os("UDX_SKIP_IPV6").is_some() => {
            eprintln!("SKIPPED (UDX_SKIP_IPV6 set): no IPv6 loopback: {e}");
            return;
        }
        Err(e) => panic!("no IPv6 loopback ({e}); set UDX_SKIP_IPV6=1 to skip"),
    };
    let sb = Socket::bind("[::1]:0".parse().unwrap()).unwrap();
    let mut a = sa.create_stream(1).unwrap();
    let mut b = sb.create_stream(2).unwrap();
    a.connect(2, sb.local_addr()).unwrap();
    b.connect(1, sa.local_addr()).unwrap();
    let data = pattern(1 << 20, 9);
    tokio::time::timeout(T, exchange(&mut a, &mut b, &data))
        .await
        .unwrap();
    assert!(a.mtu().unwrap() <= 1500);
}

#[tokio::test]
async fn low_ttl_probe_is_sent_and_streams_keep_working() {
    let (sa, sb) = (bind(), bind());
    let mut raw = sb.datagram_channel(4);
    sa.try_send_to_with_ttl(&[0], sb.local_addr(), 5).unwrap();
    let (d, from) = tokio::time::timeout(T, raw.recv()).await.unwrap().unwrap();
    assert_eq!((d, from), (vec![0], sa.local_addr()));
    sa.try_send_to(&[0x03, 1], sb.local_addr()).unwrap();
    let (d, _) = tokio::time::timeout(T, raw.recv()).await.unwrap().unwrap();
    assert_eq!(d, vec![0x03, 1]);
    let mut a = sa.create_stream(1).unwrap();
    let mut b = sb.create_stream(2).unwrap();
    a.connect(2, sb.local_addr()).unwrap();
    b.connect(1, sa.local_addr()).unwrap();
    tokio::time::timeout(T, exchange(&mut a, &mut b, b"after the probe"))
        .await
        .unwrap();
}
