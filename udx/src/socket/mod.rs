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
//! Source addresses: a connected stream takes packets only from its remote address — the one
//! given to [`UdxStream::connect`], the source of the first packet its firewall accepted
//! ([`UdxStream::connect_on_first_packet`]), or the one given to [`UdxStream::change_remote`]
//! (the previous address stays accepted until the change completed). A stream that relays
//! ([`UdxStream::relay_to`]) takes packets only from its own remote and forwards them to the
//! destination stream's remote. Packets for a live stream from any other source are dropped
//! and counted in the stream's [`Stats::dropped_off_path`](crate::proto::Stats). libudx
//! (`process_packet`) differs: once a stream is connected it accepts a packet for its id from
//! any source, so an off-path sender who guesses the id can reset or corrupt it.
//!
//! Sending: every datagram leaves under one send lock, so the one-off TTL of
//! [`Socket::try_send_to_with_ttl`] can never leak onto another datagram. Firewall callbacks
//! and the message handler run on the driver task without the socket's lock held, so they may
//! call back into the socket.
//!
//! Shutdown: [`Socket::close`] stops the driver; live streams fail with
//! [`StreamError::LocallyClosed`](crate::StreamError). The driver also stops when the last
//! `Socket` and `UdxStream` handle is dropped and no stream is still finishing or lingering.
//! Dropping a `UdxStream` that has not ended destroys it (DESTROY is sent); one that has ended
//! keeps finishing in the background.
//!
//! Linger (TCP's TIME_WAIT): a stream that closed cleanly stays in the table for
//! [`Config::linger`](crate::Config) (at least 13 x RTO) to acknowledge a retransmitted END
//! whose ACK was lost; its id stays taken meanwhile. At most [`MAX_LINGERING`] streams whose
//! handles are gone linger at once; beyond that the one whose linger ends first is dropped,
//! and [`Socket::create_stream`] at [`MAX_STREAMS`] drops one the same way to make room. A
//! process that ends its streams first and then exits waits for [`UdxStream::finished`].
//!
//! Bounds: streams per socket <= [`MAX_STREAMS`]; lingering streams without handles <=
//! [`MAX_LINGERING`]; queued incoming messages per stream <= [`MAX_STREAM_MESSAGES`] (more are
//! dropped); datagrams read per wakeup <= [`RECV_BATCH`]; non-stream datagrams queued for the
//! handler per wakeup <= [`RECV_BATCH`] (more are dropped and counted). The driver scans every
//! stream once per wakeup, which is fine for the tens of streams a DHT node holds.

// The driver is the edge: it reads the clock and hands `now` to the core.
#![allow(clippy::disallowed_methods)]
// Remote input reaches the demultiplexer: no panics outside tests.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod driver;
mod stream;

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;
use std::time::Instant;

use thiserror::Error;
use tokio::net::UdpSocket;
use tokio::sync::Notify;

use crate::proto::{Config, Stream, StreamError, WriteError};

pub use stream::UdxStream;

/// Most streams one socket holds (libudx's stream ring grows without bound; we cap it).
pub const MAX_STREAMS: usize = 65_536;
/// Most cleanly closed streams without handles that linger at once (libudx forgets a stream
/// as soon as it closes; Linux bounds TIME_WAIT sockets with `tcp_max_tw_buckets`).
pub const MAX_LINGERING: usize = 4_096;
/// Most unread incoming MESSAGE datagrams kept per stream.
pub const MAX_STREAM_MESSAGES: usize = 256;
/// Most datagrams read per driver wakeup before it sends and runs timers.
pub const RECV_BATCH: usize = 512;
/// Socket buffer sizes requested (the kernel may clamp them; libudx asks for 1 MiB receive).
const SOCKET_BUFFER: usize = 4 * 1024 * 1024;
/// IP TTL of every datagram except [`Socket::try_send_to_with_ttl`] probes (libudx
/// `UDX_DEFAULT_TTL`).
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
    /// The stream failed.
    #[error("stream closed: {0}")]
    Stream(StreamError),
    /// The stream is gone from the socket.
    #[error("stream is gone")]
    Gone,
    /// A write was refused.
    #[error(transparent)]
    Write(#[from] WriteError),
    /// An OS error.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Decides whether an unconnected stream accepts a packet from this source; `true` accepts
/// and binds the stream to that address (hyperdht's firewall callback). It runs on the driver
/// task without the socket's lock, so it may call into the socket.
pub type Firewall = Box<dyn FnMut(SocketAddr) -> bool + Send>;
/// Receives every datagram that is not a live stream's packet, with its source.
pub type MessageHandler = Box<dyn FnMut(&[u8], SocketAddr) + Send>;

struct Entry {
    proto: Stream,
    /// Taken out of the table while it runs (without the lock).
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
    fn new(proto: Stream) -> Self {
        Entry {
            proto,
            firewall: None,
            relay_to: None,
            messages: VecDeque::new(),
            read_waker: None,
            write_waker: None,
            event_waker: None,
            remote_changed: false,
            handles: 1,
        }
    }

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

    /// Lingering in the background: closed cleanly, no handle left.
    fn lingers(&self) -> bool {
        self.handles == 0 && self.proto.linger_deadline().is_some()
    }
}

#[derive(Default)]
struct State {
    streams: HashMap<u32, Entry>,
    closed: bool,
    handles: usize,
    dropped_messages: u64,
}

impl State {
    /// Drops the `n` lingering streams whose linger ends first.
    fn evict_lingering(&mut self, n: usize) {
        for _ in 0..n {
            let oldest = self
                .streams
                .iter()
                .filter(|(_, e)| e.lingers())
                .min_by_key(|(_, e)| e.proto.linger_deadline())
                .map(|(id, _)| *id);
            match oldest {
                Some(id) => {
                    self.streams.remove(&id);
                }
                None => return,
            }
        }
    }
}

struct Inner {
    udp: UdpSocket,
    qstate: quinn_udp::UdpSocketState,
    state: Mutex<State>,
    handler: Mutex<Option<MessageHandler>>,
    /// Held around every send and around a TTL change with its send. Always taken last:
    /// nothing takes `state` while holding it.
    send_lock: Mutex<()>,
    /// [`Socket::close`] was called (mirrors `State::closed` for the raw send paths, which
    /// should not wait for the driver's lock).
    closed: AtomicBool,
    notify: Notify,
    local: SocketAddr,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn send_guard(&self) -> MutexGuard<'_, ()> {
        self.send_lock.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends one datagram now (non-blocking), under the send lock.
    fn try_send(&self, data: &[u8], to: SocketAddr) -> io::Result<()> {
        let _g = self.send_guard();
        socket2::SockRef::from(&self.udp).send_to(data, &to.into())?;
        Ok(())
    }

    fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        let sock = socket2::SockRef::from(&self.udp);
        if self.local.is_ipv4() {
            sock.set_ttl_v4(ttl)
        } else {
            // libuv's `uv_udp_set_ttl` sets the hop limit on IPv6 sockets; IP_TTL also covers
            // v4-mapped destinations of a dual-stack socket.
            let _ = sock.set_ttl_v4(ttl);
            sock.set_unicast_hops_v6(ttl)
        }
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
    } else {
        let _ = s.set_unicast_hops_v6(DEFAULT_TTL);
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
            send_lock: Mutex::new(()),
            closed: AtomicBool::new(false),
            notify: Notify::new(),
            local,
        });
        tokio::spawn(driver::drive(inner.clone()));
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

    fn check_open(&self) -> Result<(), SocketError> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(SocketError::Closed);
        }
        Ok(())
    }

    /// Sends a raw datagram from this socket (dht-rpc, holepunch probes), waiting for room
    /// in the kernel buffer.
    pub async fn send_to(&self, data: &[u8], to: SocketAddr) -> Result<(), SocketError> {
        self.check_open()?;
        let inner = &self.inner;
        inner
            .udp
            .async_io(tokio::io::Interest::WRITABLE, || inner.try_send(data, to))
            .await?;
        Ok(())
    }

    /// Sends a raw datagram now if the socket buffer has room (`WouldBlock` otherwise).
    pub fn try_send_to(&self, data: &[u8], to: SocketAddr) -> Result<(), SocketError> {
        self.check_open()?;
        // Straight to the (non-blocking) socket: tokio's readiness cache would report
        // WouldBlock before the driver ever polled for writability.
        self.inner.try_send(data, to)?;
        Ok(())
    }

    /// Sends a raw datagram with a one-off IP TTL (IPv6: hop limit) and restores TTL 64
    /// (hyperdht's low-TTL holepunch probes; libudx `udx_socket_send_ttl`). The change, the
    /// send and the restore happen under the send lock every other datagram of this socket
    /// takes, so nothing else leaves with the probe's TTL. Fails with `WouldBlock` when the
    /// kernel buffer is full.
    pub fn try_send_to_with_ttl(
        &self,
        data: &[u8],
        to: SocketAddr,
        ttl: u32,
    ) -> Result<(), SocketError> {
        self.check_open()?;
        let inner = &self.inner;
        let _g = inner.send_guard();
        inner.set_ttl(ttl)?;
        let res = socket2::SockRef::from(&inner.udp).send_to(data, &to.into());
        let restore = inner.set_ttl(DEFAULT_TTL);
        drop(_g);
        res?;
        restore?;
        Ok(())
    }

    /// Creates a stream with local id `local_id` and the default [`Config`].
    pub fn create_stream(&self, local_id: u32) -> Result<UdxStream, SocketError> {
        self.create_stream_with(local_id, Config::default())
    }

    /// Whether `local_id` is taken, by a live or a lingering stream (hyperdht picks random ids
    /// and retries).
    pub fn id_in_use(&self, local_id: u32) -> bool {
        self.inner.lock().streams.contains_key(&local_id)
    }

    /// Creates a stream with a custom configuration. At [`MAX_STREAMS`] a lingering stream is
    /// dropped to make room if there is one.
    pub fn create_stream_with(&self, local_id: u32, cfg: Config) -> Result<UdxStream, SocketError> {
        let mut st = self.inner.lock();
        if st.closed {
            return Err(SocketError::Closed);
        }
        if st.streams.contains_key(&local_id) {
            return Err(SocketError::IdInUse(local_id));
        }
        if st.streams.len() >= MAX_STREAMS {
            let excess = st.streams.len() + 1 - MAX_STREAMS;
            st.evict_lingering(excess);
        }
        if st.streams.len() >= MAX_STREAMS {
            return Err(SocketError::TooManyStreams);
        }
        st.streams
            .insert(local_id, Entry::new(Stream::new(local_id, cfg)));
        st.handles += 1;
        Ok(UdxStream::new(self.inner.clone(), local_id))
    }

    /// Number of streams in the table (including finished ones still lingering).
    pub fn stream_count(&self) -> usize {
        self.inner.lock().streams.len()
    }

    /// Non-stream datagrams dropped because more than [`RECV_BATCH`] waited for the handler
    /// in one wakeup.
    pub fn dropped_datagrams(&self) -> u64 {
        self.inner.lock().dropped_messages
    }

    /// Stops the driver; live streams fail with
    /// [`StreamError::LocallyClosed`](crate::StreamError).
    pub fn close(&self) {
        let mut st = self.inner.lock();
        st.closed = true;
        self.inner.closed.store(true, Ordering::Release);
        let now = Instant::now();
        for e in st.streams.values_mut() {
            e.proto.destroy(now);
            e.wake_all();
        }
        drop(st);
        self.inner.notify.notify_one();
    }
}

#[cfg(test)]
mod tests;
