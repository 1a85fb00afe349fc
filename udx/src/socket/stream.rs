//! [`UdxStream`]: one stream of a [`Socket`](super::Socket), `AsyncRead + AsyncWrite`, plus
//! unreliable messages, remote changes and relaying.

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::{Entry, Inner, MAX_STREAM_MESSAGES, SocketError};
use crate::proto::{Event, Stats, StreamError};

/// One UDX stream of a [`Socket`](super::Socket): `AsyncRead + AsyncWrite`, plus unreliable
/// messages.
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
    pub(super) fn new(inner: Arc<Inner>, id: u32) -> Self {
        UdxStream { inner, id }
    }

    /// Our id.
    pub fn id(&self) -> u32 {
        self.id
    }

    fn with<R>(&self, f: impl FnOnce(&mut Entry) -> R) -> Result<R, SocketError> {
        let mut st = self.inner.lock();
        let e = st.streams.get_mut(&self.id).ok_or(SocketError::Gone)?;
        let r = f(e);
        drop(st);
        self.inner.notify.notify_one();
        Ok(r)
    }

    /// Connects to the peer's stream `remote_id` at `addr` (libudx `udx_stream_connect`).
    /// From now on the stream takes packets only from `addr`.
    pub fn connect(&self, remote_id: u32, addr: SocketAddr) -> Result<(), SocketError> {
        self.with(|e| {
            if e.proto.remote_id().is_some() {
                return Err(SocketError::AlreadyConnected);
            }
            e.proto.connect(remote_id, addr);
            e.firewall = None;
            Ok(())
        })?
    }

    /// [`UdxStream::connect`], but the first packet received may come from another address
    /// and moves the remote there (`proto::Stream::connect_rebinding`): for a peer that
    /// answers from another socket than the one we send to.
    pub fn connect_rebinding(&self, remote_id: u32, addr: SocketAddr) -> Result<(), SocketError> {
        self.with(|e| {
            if e.proto.remote_id().is_some() {
                return Err(SocketError::AlreadyConnected);
            }
            e.proto.connect_rebinding(remote_id, addr);
            e.firewall = None;
            Ok(())
        })?
    }

    /// Waits for the first packet that `firewall` accepts and binds the stream to its source
    /// (hyperdht's server side: the peer's address is known only when its first packet
    /// arrives). `remote_id` is the peer's id from the handshake. The firewall runs on the
    /// driver task without the socket's lock held; rejected packets go to the message
    /// handler.
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
        self.with(|e| e.proto.remote_addr()).ok().flatten()
    }

    /// Moves the stream to another peer id/address (libudx `udx_stream_change_remote`);
    /// resolves once everything sent before the change was acknowledged. Packets from the
    /// old address are accepted until then, from the new one from now on.
    pub async fn change_remote(&self, remote_id: u32, addr: SocketAddr) -> Result<(), SocketError> {
        self.with(|e| {
            if e.proto.remote_addr().is_none() {
                return Err(SocketError::NotConnected);
            }
            e.remote_changed = false;
            e.proto.change_remote(remote_id, addr);
            Ok(())
        })??;
        poll_fn(|cx| {
            let mut st = self.inner.lock();
            let Some(e) = st.streams.get_mut(&self.id) else {
                return Poll::Ready(Err(SocketError::Gone));
            };
            while let Some(ev) = e.proto.poll_event() {
                requeue(e, ev);
            }
            if e.remote_changed {
                return Poll::Ready(Ok(()));
            }
            if let Some(r) = e.proto.closed() {
                return Poll::Ready(Err(r.err().map_or(SocketError::Gone, SocketError::Stream)));
            }
            e.event_waker = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    /// Relays every packet arriving for this stream from its remote to `dest`'s peer,
    /// rewriting the stream id (libudx `udx_stream_relay_to`, used by blind relays).
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

    /// [`UdxStream::closed`], then, after a clean close, the linger: until the stream stopped
    /// answering a retransmitted END of the peer (whose ACK from us may have been lost).
    /// The side that ends first calls it before it exits, so the peer also ends cleanly.
    pub async fn finished(&self) -> Result<(), StreamError> {
        let r = self.closed().await;
        while let Ok(Some(until)) = self.with(|e| e.proto.linger_deadline())
            && until > Instant::now()
        {
            tokio::time::sleep_until(until.into()).await;
        }
        r
    }

    /// The stream's counters, the drops of off-path and implausible packets included.
    pub fn stats(&self) -> Option<Stats> {
        self.with(|e| e.proto.stats()).ok()
    }

    /// Current path MTU of the stream.
    pub fn mtu(&self) -> Option<usize> {
        self.with(|e| e.proto.mtu()).ok()
    }
}

/// Moves one stream event into the entry's queues and wakes whoever waits for it.
pub(super) fn requeue(e: &mut Entry, ev: Event) {
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
