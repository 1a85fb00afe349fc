//! The linger bound of the stream table, on the table itself (no sockets).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::driver::cleanup;
use super::{Entry, MAX_LINGERING, State};
use crate::proto::stream::MAX_DATAGRAM;
use crate::proto::{Config, Stream};

/// A stream with local id `id` that closed cleanly at `now` (END both ways, in memory).
fn cleanly_closed(id: u32, now: Instant) -> Stream {
    let (pa, pb): (SocketAddr, SocketAddr) =
        ("10.0.0.1:1".parse().unwrap(), "10.0.0.2:2".parse().unwrap());
    let mut a = Stream::new(id, Config::default());
    let mut b = Stream::new(0, Config::default());
    a.connect(0, pb);
    b.connect(id, pa);
    a.end().unwrap();
    b.end().unwrap();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    for _ in 0..16 {
        while let Some(n) = a.poll_transmit(now, &mut buf) {
            b.handle_datagram(now, pa, &buf[..n]);
        }
        while let Some(n) = b.poll_transmit(now, &mut buf) {
            a.handle_datagram(now, pb, &buf[..n]);
        }
    }
    assert_eq!(a.closed(), Some(Ok(())));
    a
}

#[test]
fn at_most_max_lingering_streams_linger_and_the_oldest_go_first() {
    let start = Instant::now();
    let mut st = State::default();
    let extra = 3;
    for i in 0..(MAX_LINGERING + extra) as u32 {
        // stream i closed i ms after start, so its linger ends i ms later than stream 0's
        let mut e = Entry::new(cleanly_closed(
            i + 1,
            start + Duration::from_millis(u64::from(i)),
        ));
        e.handles = 0;
        st.streams.insert(i + 1, e);
    }
    // one live stream with a handle is never evicted
    st.streams.insert(
        u32::MAX,
        Entry::new(Stream::new(u32::MAX, Config::default())),
    );
    cleanup(&mut st, start);
    assert_eq!(st.streams.len(), MAX_LINGERING + 1);
    for id in 1..=extra as u32 {
        assert!(
            !st.streams.contains_key(&id),
            "stream {id} lingered longest-ago"
        );
    }
    assert!(st.streams.contains_key(&(extra as u32 + 1)));
    assert!(st.streams.contains_key(&u32::MAX));
    // once the linger is over, all of them go
    cleanup(&mut st, start + Duration::from_secs(3600));
    assert_eq!(st.streams.len(), 1);
}
