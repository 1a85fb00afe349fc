//! The driver task: receive (recvmmsg + GRO through quinn-udp), demultiplex to streams, run
//! firewalls and the message handler outside the lock, run timers, send (GSO batches), and
//! forget streams once they are finished and done lingering.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::stream::requeue;
use super::{Inner, MAX_LINGERING, RECV_BATCH, State};
use crate::proto::packet::{self, flags, peek_stream_id};
use crate::proto::stream::MAX_DATAGRAM;

/// Streams get a chance to send (ACKs) after this many received datagrams.
const FLUSH_EVERY: usize = 32;
/// Most segments packed into one GSO send (64 KiB / 1,472-byte datagrams).
const MAX_GSO_SEGMENTS: usize = 40;
const GSO_BUFFER: usize = 65_000;

/// A datagram batch that could not be sent because the kernel buffer was full.
struct Blocked {
    data: Vec<u8>,
    to: SocketAddr,
    segment: usize,
}

/// What one wakeup leaves for after the lock is released.
#[derive(Default)]
struct Deferred {
    /// Datagrams for the message handler.
    foreign: Vec<(Vec<u8>, SocketAddr)>,
    /// Packets for unconnected streams with a firewall: (stream id, datagram, source).
    firewall: Vec<(u32, Vec<u8>, SocketAddr)>,
}

impl Deferred {
    fn push_foreign(&mut self, st: &mut State, data: &[u8], from: SocketAddr) {
        if self.foreign.len() < RECV_BATCH {
            self.foreign.push((data.to_vec(), from));
        } else {
            st.dropped_messages += 1;
        }
    }
}

pub(super) async fn drive(inner: Arc<Inner>) {
    let gro = inner.qstate.gro_segments().max(1);
    let buf_len = (gro * 1500).clamp(MAX_DATAGRAM, 65_536);
    let mut bufs: Vec<Vec<u8>> = (0..quinn_udp::BATCH_SIZE)
        .map(|_| vec![0u8; buf_len])
        .collect();
    let mut meta = vec![quinn_udp::RecvMeta::default(); quinn_udp::BATCH_SIZE];
    let mut out = vec![0u8; GSO_BUFFER];
    let mut relay_buf = vec![0u8; MAX_DATAGRAM];
    let mut deferred = Deferred::default();
    let mut blocked: Option<Blocked> = None;
    loop {
        if let Some(b) = blocked.take() {
            // Kernel send buffer was full: wait for room, then carry on.
            loop {
                match send_batch(&inner, &b.data, b.to, b.segment) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        if inner.udp.writable().await.is_err() {
                            break;
                        }
                    }
                    _ => break,
                }
            }
        }
        let deadline = {
            let st = inner.lock();
            // Every handle is gone once `handles` is 0; what is left finishes or lingers.
            if st.closed || st.handles == 0 && st.streams.is_empty() {
                return;
            }
            st.streams
                .values()
                .filter_map(|e| e.proto.poll_timeout())
                .min()
        };
        let sleep = async {
            match deadline {
                Some(d) => {
                    let now = Instant::now();
                    if d > now {
                        tokio::time::sleep(d - now).await;
                    }
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            r = inner.udp.readable() => { if r.is_err() { tokio::time::sleep(Duration::from_millis(1)).await; } }
            _ = inner.notify.notified() => {}
            _ = sleep => {}
        }
        let mut received = 0;
        let mut st = inner.lock();
        'recv: loop {
            let res = {
                let mut slices: Vec<io::IoSliceMut<'_>> =
                    bufs.iter_mut().map(|b| io::IoSliceMut::new(b)).collect();
                inner.udp.try_io(tokio::io::Interest::READABLE, || {
                    inner
                        .qstate
                        .recv((&inner.udp).into(), &mut slices, &mut meta)
                })
            };
            match res {
                Ok(n) => {
                    let now = Instant::now();
                    for (m, b) in meta.iter().zip(bufs.iter()).take(n) {
                        let data = b.get(..m.len).unwrap_or(&[]);
                        let stride = m.stride.max(1);
                        for seg in data.chunks(stride) {
                            route(
                                &inner,
                                &mut st,
                                now,
                                seg,
                                m.addr,
                                &mut deferred,
                                &mut relay_buf,
                            );
                            received += 1;
                            if received % FLUSH_EVERY == 0 {
                                flush(&inner, &mut st, &mut out, &mut blocked);
                            }
                        }
                    }
                    if blocked.is_some() {
                        break 'recv;
                    }
                    if received >= RECV_BATCH {
                        inner.notify.notify_one(); // come back for more after flushing
                        break 'recv;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    // ICMP errors (connection refused) surface here on Linux; ignore.
                    received += 1;
                    if received >= RECV_BATCH {
                        break;
                    }
                }
            }
        }
        // timers
        let now = Instant::now();
        for e in st.streams.values_mut() {
            if e.proto.poll_timeout().is_some_and(|t| t <= now) {
                e.proto.handle_timeout(now);
            }
        }
        flush(&inner, &mut st, &mut out, &mut blocked);
        cleanup(&mut st, Instant::now());
        drop(st);
        if !deferred.firewall.is_empty() {
            run_firewalls(&inner, &mut deferred, &mut relay_buf);
            // Accepted packets may want an ACK: come back to flush.
            inner.notify.notify_one();
        }
        if !deferred.foreign.is_empty() {
            let mut h = inner.handler.lock().unwrap_or_else(|e| e.into_inner());
            for (d, from) in deferred.foreign.drain(..) {
                if let Some(h) = h.as_mut() {
                    h(&d, from);
                }
            }
        }
    }
}

/// Hands events to waiters, frees what finished streams without handles hold, forgets streams
/// that are finished and done lingering, and keeps at most [`MAX_LINGERING`] lingering.
pub(super) fn cleanup(st: &mut State, now: Instant) {
    let mut lingering = 0usize;
    st.streams.retain(|_, e| {
        while let Some(ev) = e.proto.poll_event() {
            requeue(e, ev);
        }
        if e.handles == 0 && e.proto.closed().is_some() && e.proto.readable_bytes() > 0 {
            e.proto.discard_unread();
        }
        let keep = e.handles != 0 || !e.proto.is_drained(now);
        if keep && e.lingers() {
            lingering += 1;
        }
        keep
    });
    if lingering > MAX_LINGERING {
        st.evict_lingering(lingering - MAX_LINGERING);
    }
}

fn send_batch(inner: &Inner, data: &[u8], to: SocketAddr, segment: usize) -> io::Result<()> {
    let t = quinn_udp::Transmit {
        destination: to,
        ecn: None,
        contents: data,
        segment_size: (data.len() > segment).then_some(segment),
        src_ip: None,
    };
    inner.udp.try_io(tokio::io::Interest::WRITABLE, || {
        let _g = inner.send_guard();
        inner.qstate.try_send((&inner.udp).into(), &t)
    })
}

/// Routes one received datagram: to its stream, to the firewall queue, or to the handler.
fn route(
    inner: &Inner,
    st: &mut State,
    now: Instant,
    data: &[u8],
    from: SocketAddr,
    deferred: &mut Deferred,
    relay_buf: &mut [u8],
) {
    let from = match from {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::from((v4, v6.port())),
            None => from,
        },
        v4 => v4,
    };
    let Some(id) = peek_stream_id(data) else {
        deferred.push_foreign(st, data, from);
        return;
    };
    let Some(e) = st.streams.get_mut(&id) else {
        deferred.push_foreign(st, data, from);
        return;
    };
    if e.proto.remote_addr().is_some() {
        deliver(inner, st, now, id, data, from, relay_buf);
    } else if e.firewall.is_some() && deferred.firewall.len() < RECV_BATCH {
        deferred.firewall.push((id, data.to_vec(), from));
    } else {
        deferred.push_foreign(st, data, from);
    }
}

/// Hands a packet to connected stream `id` (which checks its source), or relays it.
fn deliver(
    inner: &Inner,
    st: &mut State,
    now: Instant,
    id: u32,
    data: &[u8],
    from: SocketAddr,
    relay_buf: &mut [u8],
) {
    let Some(e) = st.streams.get_mut(&id) else {
        return;
    };
    let Some(dest) = e.relay_to else {
        e.proto.handle_datagram(now, from, data);
        return;
    };
    // A relay cannot judge seq/ack (they belong to the two ends) but does check the source.
    if !e.proto.accepts_source(from) {
        return;
    }
    if packet::Header::decode(data).is_ok_and(|h| h.flags & flags::DESTROY != 0) {
        e.proto.destroy(now);
    }
    if let Some(d) = st.streams.get(&dest)
        && let (Some(rid), Some(addr)) = (d.proto.remote_id(), d.proto.remote_addr())
        && let Some(buf) = relay_buf.get_mut(..data.len())
    {
        buf.copy_from_slice(data);
        if let Some(idb) = buf.get_mut(4..8) {
            idb.copy_from_slice(&rid.to_le_bytes());
        }
        let _ = inner.try_send(buf, addr);
    }
}

/// Asks the firewalls about the queued packets without holding the lock (a firewall may
/// call into the socket), then connects and feeds the streams that accepted.
fn run_firewalls(inner: &Inner, deferred: &mut Deferred, relay_buf: &mut [u8]) {
    let pending = std::mem::take(&mut deferred.firewall);
    for (id, data, from) in pending {
        let mut fw = {
            let mut st = inner.lock();
            let Some(e) = st.streams.get_mut(&id) else {
                deferred.push_foreign(&mut st, &data, from);
                continue;
            };
            if e.proto.remote_addr().is_some() {
                // An earlier packet of this batch connected it.
                deliver(inner, &mut st, Instant::now(), id, &data, from, relay_buf);
                continue;
            }
            let Some(fw) = e.firewall.take() else {
                deferred.push_foreign(&mut st, &data, from);
                continue;
            };
            fw
        };
        let accept = fw(from);
        let mut st = inner.lock();
        let mut spent = Some(fw);
        let connected = st.streams.get_mut(&id).map(|e| {
            // Accepted: connect to the source. Or connected meanwhile (from inside the
            // firewall, say): then the stream's source check decides.
            (accept && e.proto.accept_pending_remote(from)) || e.proto.remote_addr().is_some()
        });
        match connected {
            Some(true) => deliver(inner, &mut st, Instant::now(), id, &data, from, relay_buf),
            Some(false) => {
                if let Some(e) = st.streams.get_mut(&id)
                    && e.firewall.is_none()
                {
                    e.firewall = spent.take();
                }
                deferred.push_foreign(&mut st, &data, from);
            }
            None => deferred.push_foreign(&mut st, &data, from),
        }
        drop(st);
        // A user closure is dropped without the lock too.
        drop(spent);
    }
}

/// Sends what the streams have, packing consecutive equal-size datagrams to one peer into one
/// GSO send. On a full kernel buffer the batch is kept in `blocked` and `true` is returned: the
/// driver waits until the socket is writable and sends it.
fn flush(inner: &Inner, st: &mut State, out: &mut [u8], blocked: &mut Option<Blocked>) -> bool {
    if blocked.is_some() {
        return true;
    }
    let now = Instant::now();
    let max_seg = inner.qstate.max_gso_segments().clamp(1, MAX_GSO_SEGMENTS);
    for e in st.streams.values_mut() {
        let Some(addr) = e.proto.remote_addr() else {
            continue;
        };
        if !e.proto.wants_transmit() && e.proto.poll_timeout().is_none_or(|t| t > now) {
            continue;
        }
        let (mut len, mut seg, mut count) = (0usize, 0usize, 0usize);
        loop {
            if count > 0 && (count >= max_seg || len + MAX_DATAGRAM > out.len()) {
                if let Some(b) = try_batch(inner, out.get(..len).unwrap_or(&[]), addr, seg) {
                    *blocked = Some(b);
                    return true;
                }
                (len, count) = (0, 0);
            }
            let Some(slot) = out.get_mut(len..len + MAX_DATAGRAM) else {
                break;
            };
            let Some(n) = e.proto.poll_transmit(now, slot) else {
                break;
            };
            if count == 0 {
                (seg, len, count) = (n, n, 1);
            } else if n == seg {
                len += n;
                count += 1;
            } else if n < seg {
                // a shorter datagram may end a GSO batch
                len += n;
                if let Some(b) = try_batch(inner, out.get(..len).unwrap_or(&[]), addr, seg) {
                    *blocked = Some(b);
                    return true;
                }
                (len, count) = (0, 0);
            } else {
                if let Some(b) = try_batch(inner, out.get(..len).unwrap_or(&[]), addr, seg) {
                    // The new, larger datagram cannot join the blocked batch; it counts as
                    // lost and loss recovery resends it.
                    *blocked = Some(b);
                    return true;
                }
                out.copy_within(len..len + n, 0);
                (seg, len, count) = (n, n, 1);
            }
        }
        if count > 0
            && let Some(b) = try_batch(inner, out.get(..len).unwrap_or(&[]), addr, seg)
        {
            *blocked = Some(b);
            return true;
        }
    }
    false
}

fn try_batch(inner: &Inner, data: &[u8], to: SocketAddr, segment: usize) -> Option<Blocked> {
    match send_batch(inner, data, to, segment) {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Some(Blocked {
            data: data.to_vec(),
            to,
            segment,
        }),
        _ => None, // other errors: the datagrams count as lost; loss recovery resends them
    }
}
