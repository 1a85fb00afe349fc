//! The tokio adapter over an in-memory duplex pipe: XX handshake, byte transfer, message
//! boundaries, clean end in both directions, keepalive, and a corrupted frame.
#![cfg(feature = "tokio")]

use noise::io::{SecretStreamIo, stream_error};
use noise::{KeyPair, StreamError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn pair(
    cap: usize,
) -> (
    SecretStreamIo<tokio::io::DuplexStream>,
    SecretStreamIo<tokio::io::DuplexStream>,
) {
    let (a, b) = tokio::io::duplex(cap);
    (
        SecretStreamIo::new_xx(a, true, KeyPair::from_seed([1; 32])),
        SecretStreamIo::new_xx(b, false, KeyPair::from_seed([2; 32])),
    )
}

#[tokio::test]
async fn xx_over_duplex_transfers_bytes_and_ends_cleanly_both_ways() {
    let (mut a, mut b) = pair(4096);
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let d2 = data.clone();
    let writer = tokio::spawn(async move {
        a.write_all(&d2).await.unwrap();
        a.shutdown().await.unwrap();
        let mut back = Vec::new();
        a.read_to_end(&mut back).await.unwrap();
        back
    });
    let mut got = Vec::new();
    b.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, data);
    assert_eq!(
        b.core().remote_public_key(),
        KeyPair::from_seed([1; 32]).public_key()
    );
    b.write_all(b"reply").await.unwrap();
    b.shutdown().await.unwrap();
    assert_eq!(writer.await.unwrap(), b"reply");
}

#[tokio::test]
async fn messages_keep_their_boundaries() {
    let (mut a, mut b) = pair(1 << 16);
    let msgs: Vec<Vec<u8>> = (0..500).map(|i| vec![i as u8; i % 37]).collect();
    let m2 = msgs.clone();
    let t = tokio::spawn(async move {
        for m in &m2 {
            a.send_message(m).await.unwrap();
        }
        a.shutdown().await.unwrap();
    });
    let mut got = Vec::new();
    while let Some(m) = b.recv_message().await.unwrap() {
        got.push(m);
    }
    t.await.unwrap();
    assert_eq!(got, msgs);
}

#[tokio::test(start_paused = true)]
async fn keep_alive_sends_empty_messages_when_idle_and_reader_filters_them() {
    let (mut a, mut b) = pair(1 << 16);
    a.set_keep_alive(Some(std::time::Duration::from_millis(5000)));
    b.set_keep_alive(Some(std::time::Duration::from_millis(5000)));
    let t = tokio::spawn(async move {
        a.handshake().await.unwrap();
        // idle for 3 intervals while polling reads (keepalives go out from the read path)
        let r = tokio::time::timeout(std::time::Duration::from_millis(16_000), a.read_u8()).await;
        assert!(r.is_err(), "nothing but keepalives should arrive");
        // b idled too: its timer sent one empty message per 5 s interval
        assert!(
            a.core().recv_ref().data_frames_read() >= 3,
            "{}",
            a.core().recv_ref().data_frames_read()
        );
        a.send_message(b"after idle").await.unwrap();
        a.shutdown().await.unwrap();
    });
    let m = b.recv_message().await.unwrap().unwrap();
    assert_eq!(m, b"after idle");
    t.await.unwrap();
}

#[tokio::test]
async fn corrupted_frame_fails_reader_with_decrypt_error() {
    // raw pipe so a bit can be flipped on the way
    let (a_raw, mid_a) = tokio::io::duplex(1 << 20);
    let (mid_b, b_raw) = tokio::io::duplex(1 << 20);
    let mut a = SecretStreamIo::new_xx(a_raw, true, KeyPair::from_seed([1; 32]));
    let mut b = SecretStreamIo::new_xx(b_raw, false, KeyPair::from_seed([2; 32]));
    // relay b -> a untouched
    let (mut br, mut bw) = tokio::io::split(mid_b);
    let (mut ar, mut aw) = tokio::io::split(mid_a);
    tokio::spawn(async move { tokio::io::copy(&mut br, &mut aw).await });
    // a -> b: handshake frames (32 + 3, 64 + 3), header (59), "good" (24), then flip a bit in
    // the next frame's ciphertext
    tokio::spawn(async move {
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = ar.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            all.extend_from_slice(&buf[..n]);
            let flip_at = 35 + 67 + 59 + 24 + 5;
            let mut out = buf[..n].to_vec();
            let start = all.len() - n;
            if (start..all.len()).contains(&flip_at) {
                out[flip_at - start] ^= 0x10;
            }
            bw.write_all(&out).await.unwrap();
        }
        bw.shutdown().await.unwrap();
    });
    let writer = tokio::spawn(async move {
        a.send_message(b"good").await.unwrap();
        a.send_message(b"this frame is corrupted").await.unwrap();
        a.send_message(b"never seen").await.unwrap();
        a
    });
    assert_eq!(b.recv_message().await.unwrap().unwrap(), b"good");
    let err = b.recv_message().await.unwrap_err();
    assert_eq!(stream_error(&err), Some(&StreamError::Decrypt), "{err}");
    let _ = writer.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn halves_split_before_the_handshake_both_make_progress() {
    let (a, b) = pair(1024);
    let run = |s: SecretStreamIo<tokio::io::DuplexStream>, tag: u8| async move {
        let (mut r, mut w) = tokio::io::split(s);
        let writer = tokio::spawn(async move {
            w.write_all(&vec![tag; 100_000]).await.unwrap();
            w.shutdown().await.unwrap();
        });
        let mut got = Vec::new();
        r.read_to_end(&mut got).await.unwrap();
        writer.await.unwrap();
        got
    };
    let ta = tokio::spawn(run(a, 1));
    let tb = tokio::spawn(run(b, 2));
    let (ga, gb) = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        (ta.await.unwrap(), tb.await.unwrap())
    })
    .await
    .expect("split halves stalled during the handshake");
    assert_eq!(ga, vec![2; 100_000]);
    assert_eq!(gb, vec![1; 100_000]);
}

/// `into_split` over TCP on a multi-threaded runtime: both sides' readers and writers run as
/// four tasks at once, 8 MiB each way plus whole messages, and both directions end cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn into_split_halves_run_full_duplex_over_tcp() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (c, s) = tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
    let a = SecretStreamIo::new_xx(c.unwrap(), true, KeyPair::from_seed([1; 32]));
    let b = SecretStreamIo::new_xx(s.unwrap().0, false, KeyPair::from_seed([2; 32]));
    let (a, b) = tokio::join!(a.into_split(), b.into_split());
    let ((mut ar, aw), (mut br, bw)) = (a.unwrap(), b.unwrap());
    assert_eq!(ar.core().handshake_hash(), br.core().handshake_hash());
    assert_eq!(
        br.core().remote_public_key(),
        KeyPair::from_seed([1; 32]).public_key()
    );

    const BULK: usize = 8 << 20;
    let data = |side: u8| -> Vec<u8> { (0..BULK).map(|i| (i % 253) as u8 ^ side).collect() };
    let send = |side: u8| {
        move |mut w: noise::io::SecretWriter<_>| async move {
            w.send_message(b"first").await.unwrap();
            w.write_all(&data(side)).await.unwrap();
            w.shutdown().await.unwrap();
        }
    };
    let recv = |side: u8| {
        move |mut r: noise::io::SecretReader<_>| async move {
            assert_eq!(r.recv_message().await.unwrap().unwrap(), b"first");
            let mut got = Vec::new();
            r.read_to_end(&mut got).await.unwrap();
            assert!(got == data(side), "side {side}: {} bytes", got.len());
            assert_eq!(r.recv_message().await.unwrap(), None);
        }
    };
    let tasks = [
        tokio::spawn(send(1)(aw)),
        tokio::spawn(send(2)(bw)),
        tokio::spawn(recv(1)(br)),
        tokio::spawn(recv(2)(ar)),
    ];
    for t in tasks {
        t.await.unwrap();
    }
}
