//! The tokio driver: one UDP socket, many UDX streams, and everything else handed to the caller.
//!
//! I/O contract: [`Socket::bind`] binds one UDP port and spawns one driver task on the current
//! tokio runtime. The task reads datagrams, routes each UDX packet whose destination id names a
//! live stream of this socket to that stream's [`proto::Stream`](crate::proto::Stream), and
//! hands every other datagram (dht-rpc, holepunch probes, packets for unknown ids, packets a
//! stream's firewall rejected) to the handler installed with [`Socket::set_message_handler`]
//! (dropped when none is installed). It sends what the streams produce, runs their timers, and
//! wakes their readers and writers. Streams ([`UdxStream`]) are `AsyncRead + AsyncWrite`.
//!
//! Shutdown: [`Socket::close`] stops the driver; live streams fail with
//! [`StreamError::LocallyClosed`]. The driver also stops when the last `Socket` and
//! `UdxStream` handle is dropped. Dropping a `UdxStream` that has not ended destroys it
//! (DESTROY is sent); one that has ended keeps finishing in the background.
//!
//! Bounds: streams per socket <= [`MAX_STREAMS`]; queued incoming messages per stream <=
//! [`MAX_STREAM_MESSAGES`] (more are dropped); datagrams read per wakeup <= 256. The driver
//! scans every stream once per wakeup, which is fine for the tens of streams a DHT node holds.

// The driver is the edge: it reads the clock and hands `now` to the core.
#![allow(clippy::disallowed_methods)]

use std::collections::{HashMap, VecDeque};
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use thiserror::Error;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::UdpSocket;
use tokio::sync::Notify;

use crate::proto::packet::{self, flags, peek_stream_id};
use crate::proto::stream::MAX_DATAGRAM;
use crate::proto::{Config, Event, Stream, StreamError, WriteError};

/// Most streams one socket holds (libudx's stream ring grows without bound; we cap it).
pub const MAX_STREAMS: usize = 65_536;
/// Most unread incoming MESSAGE datagrams kept per stream.
pub const MAX_STREAM_MESSAGES: usize = 256;
const RECV_BATCH: usize = 512;
const FLUSH_EVERY: usize = 32;
/// Most segments packed into one GSO send (64 KiB / 1,472-byte datagrams).
const MAX_GSO_SEGMENTS: usize = 40;
const GSO_BUFFER: usize = 65_000;
/// Socket buffer sizes requested (the kernel may clamp them; libudx asks for 1 MiB receive).
const SOCKET_BUFFER: usize = 4 * 1024 * 1024;
/// IP TTL of every datagram except [`Socket::try_send_to_with_ttl`] probes (libudx: 64).
const DEFAULT_TTL: u32 = 64;

/// Errors of socket and stream operations.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SocketError {
    /// The socket was closed.
    #[error("socket closed")]
    Closed,
    /// A stream with this local id already exists.
    #[error("stream id {0} already in use")]
    IdInUse(u32),
    /// [`MAX_STREAMS`] reached.
    #[error("too many streams")]
    TooManyStreams,
    /// The stream is already connected.
    #[error("stream already connected")]
    AlreadyConnected,
    /// The stream is not connected.
    #[error("stream not connected")]
    NotConnected,
    /// The stream ended or failed.
    #[error("stream closed: {0:?}")]
    Stream(Option<StreamError>),
    /// A write was refused.
    #[error(transparent)]
    Write(#[from] WriteError),
    /// An OS error.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Decides whether an unconnected stream accepts a packet from this source; `true` accepts
/// and binds the stream to that address (hyperdht's firewall callback, protocol-map.md 6.3).
pub type Firewall = Box<dyn FnMut(SocketAddr) -> bool + Send>;
/// Receives every datagram that is not a live stream's packet, with its source.
pub type MessageHandler = Box<dyn FnMut(&[u8], SocketAddr) + Send>;

struct Entry {
    proto: Stream,
    remote: Option<SocketAddr>,
    firewall: Option<Firewall>,
    relay_to: Option<u32>,
    messages: VecDeque<Vec<u8>>,
    read_waker: Option<Waker>,
    write_waker: Option<Waker>,
    event_waker: Option<Waker>,
    remote_changed: bool,
    handles: usize,
}

impl Entry {
    fn wake_all(&mut self) {
        for w in [
            self.read_waker.take(),
            self.write_waker.take(),
            self.event_waker.take(),
        ]
        .into_iter()
        .flatten()
        {
            w.wake();
        }
    }
}

#[derive(Default)]
struct State {
    streams: HashMap<u32, Entry>,
    closed: bool,
    handles: usize,
    dropped_messages: u64,
}

struct Inner {
    udp: UdpSocket,
    qstate: quinn_udp::UdpSocketState,
    state: Mutex<State>,
    handler: Mutex<Option<MessageHandler>>,
    notify: Notify,
    local: SocketAddr,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A UDP socket carrying UDX streams and, through the message handler, everything else.
pub struct Socket {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket")
            .field("local", &self.inner.local)
            .finish()
    }
}

impl Clone for Socket {
    fn clone(&self) -> Self {
        self.inner.lock().handles += 1;
        Socket {
            inner: self.inner.clone(),
        }
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        let mut st = self.inner.lock();
        st.handles = st.handles.saturating_sub(1);
        drop(st);
        self.inner.notify.notify_one();
    }
}

fn udp_socket(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let domain = socket2::Domain::for_address(addr);
    let s = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    let _ = s.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = s.set_send_buffer_size(SOCKET_BUFFER);
    if addr.is_ipv4() {
        let _ = s.set_ttl_v4(DEFAULT_TTL);
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    Ok(s.into())
}

impl Socket {
    /// Binds `addr` and starts the driver task on the current tokio runtime.
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), udx::socket::SocketError> {
    /// let socket = udx::socket::Socket::bind("127.0.0.1:0".parse().unwrap())?;
    /// socket.set_message_handler(|data, from| println!("{} bytes from {from}", data.len()));
    /// let stream = socket.create_stream(1)?;
    /// stream.connect(2, "127.0.0.1:4000".parse().unwrap())?;
    /// # Ok(()) }
    /// ```
    pub fn bind(addr: SocketAddr) -> Result<Socket, SocketError> {
        let std_sock = udp_socket(addr)?;
        let qstate = quinn_udp::UdpSocketState::new((&std_sock).into())?;
        let udp = UdpSocket::from_std(std_sock)?;
        let local = udp.local_addr()?;
        let inner = Arc::new(Inner {
            udp,
            qstate,
            state: Mutex::new(State {
                handles: 1,
                ..State::default()
            }),
            handler: Mutex::new(None),
            notify: Notify::new(),
            local,
        });
        tokio::spawn(drive(Arc::downgrade(&inner), inner.clone()));
        Ok(Socket { inner })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local
    }

    /// Installs the handler for every datagram that is not a live stream's packet. It runs on
    /// the driver task: keep it short and non-blocking (e.g. `try_send` into a channel).
    pub fn set_message_handler<F>(&self, handler: F)
    where
        F: FnMut(&[u8], SocketAddr) + Send + 'static,
    {
        *self.inner.handler.lock().unwrap_or_else(|e| e.into_inner()) = Some(Box::new(handler));
    }

    /// Installs a handler that forwards non-stream datagrams into a bounded channel of
    /// `capacity` (datagrams beyond it are dropped) and returns its receiver.
    pub fn datagram_channel(
        &self,
        capacity: usize,
    ) -> tokio::sync::mpsc::Receiver<(Vec<u8>, SocketAddr)> {
        let (tx, rx) = tokio::sync::mpsc::channel(capacity.max(1));
        self.set_message_handler(move |d, from| {
            let _ = tx.try_send((d.to_vec(), from));
        });
        rx
    }

    /// Sends a raw datagram from this socket (dht-rpc, holepunch probes).
    pub async fn send_to(&self, data: &[u8], to: SocketAddr) -> Result<(), SocketError> {
        if self.inner.lock().closed {
            return Err(SocketError::Closed);
        }
        self.inner.udp.send_to(data, to).await?;
        Ok(())
    }

    /// Sends a raw datagram now if the socket buffer has room.
    pub fn try_send_to(&self, data: &[u8], to: SocketAddr) -> Result<(), SocketError> {
        socket2::SockRef::from(&self.inner.udp).send_to(data, &to.into())?;
        Ok(())
    }

    /// Sends a raw datagram with a one-off IP TTL (hyperdht sends low-TTL holepunch probes;
    /// libudx `udx_socket_send_ttl`), then restores TTL 64. Holds the driver's lock so no
    /// stream packet leaves with the probe's TTL. Fails with `WouldBlock` when the kernel
    /// buffer is full.
    pub fn try_send_to_with_ttl(
        &self,
        data: &[u8],
        to: SocketAddr,
        ttl: u32,
    ) -> Result<(), SocketError> {
        let st = self.inner.lock();
        if st.closed {
            return Err(SocketError::Closed);
        }
        // Straight to the (non-blocking) socket: tokio's readiness cache would report
        // WouldBlock before the driver ever polled for writability.
        let sock = socket2::SockRef::from(&self.inner.udp);
        self.inner.udp.set_ttl(ttl)?;
        let res = sock.send_to(data, &to.into());
        let restore = self.inner.udp.set_ttl(DEFAULT_TTL);
        drop(st);
        res?;
        restore?;
        Ok(())
    }

    /// Creates a stream with local id `local_id` and the default [`Config`].
    pub fn create_stream(&self, local_id: u32) -> Result<UdxStream, SocketError> {
        self.create_stream_with(local_id, Config::default())
    }

    /// Whether `local_id` is free (hyperdht picks random ids and retries).
    pub fn id_in_use(&self, local_id: u32) -> bool {
        self.inner.lock().streams.contains_key(&local_id)
    }

    /// Creates a stream with a custom configuration.
    pub fn create_stream_with(&self, local_id: u32, cfg: Config) -> Result<UdxStream, SocketError> {
        let mut st = self.inner.lock();
        if st.closed {
            return Err(SocketError::Closed);
        }
        if st.streams.contains_key(&local_id) {
            return Err(SocketError::IdInUse(local_id));
        }
        if st.streams.len() >= MAX_STREAMS {
            return Err(SocketError::TooManyStreams);
        }
        st.streams.insert(
            local_id,
            Entry {
                proto: Stream::new(local_id, cfg),
                remote: None,
                firewall: None,
                relay_to: None,
                messages: VecDeque::new(),
                read_waker: None,
                write_waker: None,
                event_waker: None,
                remote_changed: false,
                handles: 1,
            },
        );
        st.handles += 1;
        Ok(UdxStream {
            inner: self.inner.clone(),
            id: local_id,
        })
    }

    /// Number of streams in the table (including finished ones still lingering).
    pub fn stream_count(&self) -> usize {
        self.inner.lock().streams.len()
    }

    /// Stops the driver; live streams fail with [`StreamError::LocallyClosed`].
    pub fn close(&self) {
        let mut st = self.inner.lock();
        st.closed = true;
        let now = Instant::now();
        for e in st.streams.values_mut() {
            e.proto.destroy(now);
            e.wake_all();
        }
        drop(st);
        self.inner.notify.notify_one();
    }
}

/// One UDX stream of a [`Socket`]: `AsyncRead + AsyncWrite`, plus unreliable messages.
pub struct UdxStream {
    inner: Arc<Inner>,
    id: u32,
}

impl std::fmt::Debug for UdxStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdxStream").field("id", &self.id).finish()
    }
}

impl Drop for UdxStream {
    fn drop(&mut self) {
        let mut st = self.inner.lock();
        st.handles = st.handles.saturating_sub(1);
        if let Some(e) = st.streams.get_mut(&self.id) {
            e.handles = e.handles.saturating_sub(1);
            if e.handles == 0 && e.proto.closed().is_none() && !e.proto.is_ending() {
                e.proto.destroy(Instant::now());
            }
        }
        drop(st);
        self.inner.notify.notify_one();
    }
}

impl UdxStream {
    /// Our id.
    pub fn id(&self) -> u32 {
        self.id
    }

    fn with<R>(&self, f: impl FnOnce(&mut Entry) -> R) -> Result<R, SocketError> {
        let mut st = self.inner.lock();
        let e = st
            .streams
            .get_mut(&self.id)
            .ok_or(SocketError::Stream(None))?;
        let r = f(e);
        drop(st);
        self.inner.notify.notify_one();
        Ok(r)
    }

    /// Connects to the peer's stream `remote_id` at `addr` (libudx `udx_stream_connect`).
    pub fn connect(&self, remote_id: u32, addr: SocketAddr) -> Result<(), SocketError> {
        self.with(|e| {
            if e.proto.remote_id().is_some() {
                return Err(SocketError::AlreadyConnected);
            }
            e.proto.connect(remote_id);
            e.proto.set_ipv6(addr.is_ipv6());
            e.remote = Some(addr);
            Ok(())
        })?
    }

    /// Waits for the first packet that `firewall` accepts and binds the stream to its source
    /// (hyperdht's server side: the peer's address is known only when its first packet
    /// arrives). `remote_id` is the peer's id from the handshake.
    pub fn connect_on_first_packet(
        &self,
        remote_id: u32,
        firewall: impl FnMut(SocketAddr) -> bool + Send + 'static,
    ) -> Result<(), SocketError> {
        self.with(|e| {
            if e.proto.remote_id().is_some() {
                return Err(SocketError::AlreadyConnected);
            }
            e.firewall = Some(Box::new(firewall));
            e.proto.set_pending_remote(remote_id);
            Ok(())
        })?
    }

    /// The peer's address, once connected.
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.with(|e| e.remote).ok().flatten()
    }

    /// Moves the stream to another peer id/address (libudx `udx_stream_change_remote`); resolves
    /// once everything sent before the change was acknowledged.
    pub async fn change_remote(&self, remote_id: u32, addr: SocketAddr) -> Result<(), SocketError> {
        self.with(|e| {
            if e.remote.is_none() {
                return Err(SocketError::NotConnected);
            }
            e.remote_changed = false;
            e.proto.change_remote(remote_id);
            e.proto.set_ipv6(addr.is_ipv6());
            e.remote = Some(addr);
            Ok(())
        })??;
        poll_fn(|cx| {
            let mut st = self.inner.lock();
            let Some(e) = st.streams.get_mut(&self.id) else {
                return Poll::Ready(Err(SocketError::Stream(None)));
            };
            while let Some(ev) = e.proto.poll_event() {
                requeue(e, ev);
            }
            if e.remote_changed {
                return Poll::Ready(Ok(()));
            }
            if let Some(r) = e.proto.closed() {
                return Poll::Ready(Err(SocketError::Stream(r.err())));
            }
            e.event_waker = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    /// Relays every packet arriving for this stream to `dest`'s peer, rewriting the stream id
    /// (libudx `udx_stream_relay_to`, used by blind relays).
    pub fn relay_to(&self, dest: &UdxStream) -> Result<(), SocketError> {
        let d = dest.id;
        self.with(|e| e.relay_to = Some(d))
    }

    /// Queues an unreliable datagram on the stream (MESSAGE).
    pub fn send_message(&self, data: &[u8]) -> Result<(), SocketError> {
        self.with(|e| e.proto.send_message(data))??;
        Ok(())
    }

    /// Next incoming unreliable datagram; `None` once the stream is finished.
    pub async fn recv_message(&self) -> Option<Vec<u8>> {
        poll_fn(|cx| {
            let mut st = self.inner.lock();
            let Some(e) = st.streams.get_mut(&self.id) else {
                return Poll::Ready(None);
            };
            if let Some(m) = e.messages.pop_front() {
                return Poll::Ready(Some(m));
            }
            if e.proto.closed().is_some() {
                return Poll::Ready(None);
            }
            e.event_waker = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    /// Destroys the stream (sends DESTROY).
    pub fn destroy(&self) {
        let _ = self.with(|e| {
            e.proto.destroy(Instant::now());
            e.wake_all();
        });
    }

    /// Waits until the stream is finished: `Ok` after a clean close in both directions.
    pub async fn closed(&self) -> Result<(), StreamError> {
        poll_fn(|cx| {
            let mut st = self.inner.lock();
            let Some(e) = st.streams.get_mut(&self.id) else {
                return Poll::Ready(Err(StreamError::LocallyClosed));
            };
            if let Some(r) = e.proto.closed() {
                return Poll::Ready(r);
            }
            e.event_waker = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    /// The stream's counters.
    pub fn stats(&self) -> Option<crate::proto::Stats> {
        self.with(|e| e.proto.stats()).ok()
    }

    /// Current path MTU of the stream.
    pub fn mtu(&self) -> Option<usize> {
        self.with(|e| e.proto.mtu()).ok()
    }
}

fn requeue(e: &mut Entry, ev: Event) {
    match ev {
        Event::Message(m) => {
            if e.messages.len() < MAX_STREAM_MESSAGES {
                e.messages.push_back(m);
            }
            if let Some(w) = e.event_waker.take() {
                w.wake();
            }
        }
        Event::RemoteChanged => {
            e.remote_changed = true;
            if let Some(w) = e.event_waker.take() {
                w.wake();
            }
        }
        Event::Readable => {
            if let Some(w) = e.read_waker.take() {
                w.wake();
            }
        }
        Event::Writable => {
            if let Some(w) = e.write_waker.take() {
                w.wake();
            }
        }
        Event::Closed(_) => e.wake_all(),
    }
}

fn io_err(r: Option<StreamError>) -> io::Error {
    match r {
        Some(StreamError::TimedOut) => {
            io::Error::new(io::ErrorKind::TimedOut, StreamError::TimedOut)
        }
        Some(StreamError::Reset) => {
            io::Error::new(io::ErrorKind::ConnectionReset, StreamError::Reset)
        }
        Some(e) => io::Error::new(io::ErrorKind::NotConnected, e),
        None => io::Error::new(io::ErrorKind::NotConnected, "stream is gone"),
    }
}

impl AsyncRead for UdxStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut st = self.inner.lock();
        let Some(e) = st.streams.get_mut(&self.id) else {
            return Poll::Ready(Err(io_err(None)));
        };
        let out = buf.initialize_unfilled();
        match e.proto.read(out) {
            Ok(0) if !out.is_empty() => {
                if e.proto.is_eof() || e.proto.closed() == Some(Ok(())) {
                    return Poll::Ready(Ok(()));
                }
                e.read_waker = Some(cx.waker().clone());
                Poll::Pending
            }
            Ok(n) => {
                buf.advance(n);
                let wake = e.proto.wants_transmit();
                drop(st);
                if wake {
                    self.inner.notify.notify_one();
                }
                Poll::Ready(Ok(()))
            }
            Err(err) => Poll::Ready(Err(io_err(Some(err)))),
        }
    }
}

impl AsyncWrite for UdxStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut st = self.inner.lock();
        let Some(e) = st.streams.get_mut(&self.id) else {
            return Poll::Ready(Err(io_err(None)));
        };
        if let Some(r) = e.proto.closed() {
            return Poll::Ready(Err(io_err(r.err())));
        }
        match e.proto.write(data) {
            Ok(0) if !data.is_empty() => {
                e.write_waker = Some(cx.waker().clone());
                Poll::Pending
            }
            Ok(n) => {
                drop(st);
                self.inner.notify.notify_one();
                Poll::Ready(Ok(n))
            }
            Err(_) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "stream ended for writing",
            ))),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Sends END after all written data and completes once the peer acknowledged it (so every
    /// byte written has arrived).
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut st = self.inner.lock();
        let Some(e) = st.streams.get_mut(&self.id) else {
            return Poll::Ready(Err(io_err(None)));
        };
        if e.proto.is_end_acked() {
            return Poll::Ready(Ok(()));
        }
        if let Some(r) = e.proto.closed() {
            return Poll::Ready(match r {
                Ok(()) => Ok(()),
                Err(err) => Err(io_err(Some(err))),
            });
        }
        if !e.proto.is_ending() {
            let _ = e.proto.end();
        }
        e.write_waker = Some(cx.waker().clone());
        drop(st);
        self.inner.notify.notify_one();
        Poll::Pending
    }
}

// ---------------------------------------------------------------------------- driver

/// A datagram batch that could not be sent because the kernel buffer was full.
struct Blocked {
    data: Vec<u8>,
    to: SocketAddr,
    segment: usize,
}

async fn drive(weak: Weak<Inner>, strong: Arc<Inner>) {
    // The task holds only a weak reference while idle, so dropping every handle ends it.
    drop(strong);
    let gro = {
        let Some(inner) = weak.upgrade() else { return };
        inner.qstate.gro_segments().max(1)
    };
    let buf_len = (gro * 1500).clamp(MAX_DATAGRAM, 65_536);
    let mut bufs: Vec<Vec<u8>> = (0..quinn_udp::BATCH_SIZE)
        .map(|_| vec![0u8; buf_len])
        .collect();
    let mut meta = vec![quinn_udp::RecvMeta::default(); quinn_udp::BATCH_SIZE];
    let mut out = vec![0u8; GSO_BUFFER];
    let mut relay_buf = vec![0u8; MAX_DATAGRAM];
    let mut foreign: Vec<(Vec<u8>, SocketAddr)> = Vec::new();
    let mut blocked: Option<Blocked> = None;
    loop {
        let Some(inner) = weak.upgrade() else { return };
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
            if st.closed
                || st.handles == 0 && st.streams.values().all(|e| e.proto.closed().is_some())
            {
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
        // receive (recvmmsg + GRO through quinn-udp)
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
                                &mut foreign,
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
        // events and cleanup
        let now = Instant::now();
        st.streams.retain(|_, e| {
            while let Some(ev) = e.proto.poll_event() {
                requeue(e, ev);
            }
            e.handles != 0 || !e.proto.is_drained(now)
        });
        drop(st);
        if !foreign.is_empty() {
            let mut h = inner.handler.lock().unwrap_or_else(|e| e.into_inner());
            for (d, from) in foreign.drain(..) {
                if let Some(h) = h.as_mut() {
                    h(&d, from);
                }
            }
        }
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
        inner.qstate.try_send((&inner.udp).into(), &t)
    })
}

fn route(
    inner: &Inner,
    st: &mut State,
    now: Instant,
    data: &[u8],
    from: SocketAddr,
    foreign: &mut Vec<(Vec<u8>, SocketAddr)>,
    out: &mut [u8],
) {
    let from = match from {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::from((v4, v6.port())),
            None => from,
        },
        v4 => v4,
    };
    let Some(id) = peek_stream_id(data) else {
        push_foreign(st, foreign, data, from);
        return;
    };
    let relay = match st.streams.get_mut(&id) {
        None => {
            push_foreign(st, foreign, data, from);
            return;
        }
        Some(e) => {
            if e.remote.is_none() {
                let accept = match e.firewall.as_mut() {
                    Some(fw) => fw(from),
                    None => false,
                };
                if !accept || !e.proto.accept_pending_remote() {
                    push_foreign(st, foreign, data, from);
                    return;
                }
                e.proto.set_ipv6(from.is_ipv6());
                e.remote = Some(from);
                e.firewall = None;
            }
            match e.relay_to {
                Some(dest) => {
                    if packet::Header::decode(data).is_ok_and(|h| h.flags & flags::DESTROY != 0) {
                        e.proto.destroy(now);
                    }
                    Some(dest)
                }
                None => {
                    e.proto.handle_datagram(now, data);
                    None
                }
            }
        }
    };
    if let Some(dest) = relay
        && let Some(d) = st.streams.get(&dest)
        && let (Some(rid), Some(addr)) = (d.proto.remote_id(), d.remote)
        && let Some(buf) = out.get_mut(..data.len())
    {
        buf.copy_from_slice(data);
        if let Some(idb) = buf.get_mut(4..8) {
            idb.copy_from_slice(&rid.to_le_bytes());
        }
        let _ = inner.udp.try_send_to(buf, addr);
    }
}

fn push_foreign(
    st: &mut State,
    foreign: &mut Vec<(Vec<u8>, SocketAddr)>,
    data: &[u8],
    from: SocketAddr,
) {
    if foreign.len() < RECV_BATCH {
        foreign.push((data.to_vec(), from));
    } else {
        st.dropped_messages += 1;
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
        let Some(addr) = e.remote else { continue };
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
