//! tokio adapter: a [`SecretStream`] over any `AsyncRead + AsyncWrite` byte stream (TCP, a UDX
//! stream, a duplex pipe) that is itself `AsyncRead + AsyncWrite`.
//!
//! I/O contract: reads return decrypted plaintext (message boundaries are not visible through
//! `AsyncRead`; use [`SecretStreamIo::recv_message`] / [`SecretStreamIo::send_message`] to keep
//! them); each `poll_write` call becomes one frame of at most [`SecretStreamIo::MAX_WRITE_CHUNK`]
//! bytes; `poll_shutdown` flushes and shuts the raw stream's write half (JS `end()`), and a raw
//! EOF between frames is a clean EOF. A bad frame fails the stream with an
//! [`std::io::ErrorKind::InvalidData`] error whose inner error is the [`StreamError`]; no byte
//! of that frame is returned. The handshake (XX) and the header exchange run on first use, or
//! explicitly with [`SecretStreamIo::handshake`]. With [`SecretStreamIo::set_keep_alive`], an
//! empty message goes out after each idle interval, as JS `setKeepAlive` does.
//!
//! `tokio::io::split` of a [`SecretStreamIo`] shares one lock, so its halves take turns; for
//! a reader and a writer that encrypt and decrypt in parallel on a multi-threaded runtime,
//! use [`SecretStreamIo::into_split`] ([`SecretReader`] + [`SecretWriter`]).

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf, ReadHalf, WriteHalf};

use crate::crypto::KeyPair;
use crate::handshake::HandshakeResult;
use crate::secret_stream::{Config, Randomness, RecvHalf, SecretStream, SendHalf, StreamError};

/// A secret stream over a tokio byte stream.
#[derive(Debug)]
pub struct SecretStreamIo<S> {
    io: S,
    core: SecretStream,
    pending: Leftover,
    read_eof: bool,
    keep_alive: Option<(Duration, Pin<Box<tokio::time::Sleep>>)>,
    // The read path flushes only handshake frames and keepalives: a raw stream keeps one write
    // waker, so a reader flushing data frames would steal the wake-up of a writer task.
    read_path_flush: bool,
    // Split halves share one raw stream: while the handshake runs, whichever half reads may
    // take the other's wake-up, so each half parks its waker here and the other wakes it.
    read_waker: Option<Waker>,
    write_waker: Option<Waker>,
    // progress counters: raw bytes written / read, to wake the other half only on progress
    flushed: u64,
    filled: u64,
}

fn to_io(e: StreamError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// The [`StreamError`] inside an I/O error returned by this adapter, if any.
pub fn stream_error(e: &io::Error) -> Option<&StreamError> {
    e.get_ref().and_then(|e| e.downcast_ref::<StreamError>())
}

/// Plaintext received but not yet read: the tail of a message a short `poll_read` could not
/// take, or messages that arrived during the handshake.
#[derive(Debug, Default)]
struct Leftover {
    buf: Vec<u8>,
    off: usize,
}

impl Leftover {
    fn is_empty(&self) -> bool {
        self.off >= self.buf.len()
    }

    fn extend(&mut self, m: &[u8]) {
        self.buf.extend_from_slice(m);
    }

    /// Everything left, as one message.
    fn take(&mut self) -> Option<Vec<u8>> {
        if self.is_empty() {
            return None;
        }
        let v = self.buf.split_off(self.off);
        self.buf.clear();
        self.off = 0;
        Some(v)
    }

    /// Moves as much as fits into `out`; false when there was nothing left.
    fn read_into(&mut self, out: &mut ReadBuf<'_>) -> bool {
        if self.is_empty() {
            return false;
        }
        let src = self.buf.get(self.off..).unwrap_or(&[]);
        let n = src.len().min(out.remaining());
        out.put_slice(src.get(..n).unwrap_or(&[]));
        self.off += n;
        if self.is_empty() {
            self.buf.clear();
            self.off = 0;
        }
        true
    }

    /// Puts as much of message `m` as fits into `out` and keeps the rest.
    fn deliver(&mut self, m: &[u8], out: &mut ReadBuf<'_>) {
        let n = m.len().min(out.remaining());
        out.put_slice(m.get(..n).unwrap_or(&[]));
        if n < m.len() {
            self.buf = m.get(n..).unwrap_or(&[]).to_vec();
            self.off = 0;
        }
    }
}

/// A core with a queue of frames for the raw stream.
trait Outgoing {
    fn queued(&self) -> &[u8];
    fn consume(&mut self, n: usize);
}

impl Outgoing for SecretStream {
    fn queued(&self) -> &[u8] {
        self.send_ref().outgoing()
    }
    fn consume(&mut self, n: usize) {
        self.send().consume_outgoing(n);
    }
}

impl Outgoing for SendHalf {
    fn queued(&self) -> &[u8] {
        self.outgoing()
    }
    fn consume(&mut self, n: usize) {
        self.consume_outgoing(n);
    }
}

/// Raw bytes read per call into a receive buffer.
const READ_CHUNK: usize = 64 * 1024;

/// One read from `io` straight into the receive buffer of `recv`; `Ready(Ok(0))` at the end
/// of the raw stream, which `recv` is told.
fn poll_read_into<R: AsyncRead + Unpin>(
    io: &mut R,
    recv: &mut RecvHalf,
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    let mut rb = ReadBuf::new(recv.input_buffer(READ_CHUNK));
    ready!(Pin::new(io).poll_read(cx, &mut rb))?;
    let n = rb.filled().len();
    if n == 0 {
        recv.feed_eof();
    } else {
        recv.input_filled(n);
    }
    Poll::Ready(Ok(n))
}

/// Writes the core's queued frames to `io`; `flushed` counts the bytes written.
fn poll_flush_queue<W: AsyncWrite + Unpin, C: Outgoing>(
    io: &mut W,
    core: &mut C,
    flushed: &mut u64,
    cx: &mut Context<'_>,
) -> Poll<io::Result<()>> {
    while !core.queued().is_empty() {
        let n = ready!(Pin::new(&mut *io).poll_write(cx, core.queued()))?;
        if n == 0 {
            return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
        }
        core.consume(n);
        *flushed += n as u64;
    }
    Poll::Ready(Ok(()))
}

impl<S: AsyncRead + AsyncWrite + Unpin> SecretStreamIo<S> {
    /// Largest frame one `poll_write` produces.
    pub const MAX_WRITE_CHUNK: usize = 64 * 1024;
    /// Outgoing bytes buffered before `poll_write` waits for the raw stream.
    const HIGH_WATER: usize = 256 * 1024;

    /// Wraps a core in any state.
    pub fn new(io: S, core: SecretStream) -> Self {
        Self {
            io,
            core,
            pending: Leftover::default(),
            read_eof: false,
            keep_alive: None,
            read_path_flush: false,
            read_waker: None,
            write_waker: None,
            flushed: 0,
            filled: 0,
        }
    }

    /// A standalone secret stream with its own XX handshake (what `new NoiseSecretStream(
    /// isInitiator, rawStream, { keyPair })` does), randomness from the OS.
    pub fn new_xx(io: S, is_initiator: bool, keypair: KeyPair) -> Self {
        let rand = Randomness::generate(&mut rand_core::OsRng);
        Self::new(
            io,
            SecretStream::new_xx(is_initiator, keypair, rand, Config::default()),
        )
    }

    /// A secret stream from a finished handshake (what hyperdht does), randomness from the OS.
    pub fn from_handshake(io: S, result: &HandshakeResult) -> Self {
        let rand = Randomness::generate(&mut rand_core::OsRng);
        Self::new(
            io,
            SecretStream::from_handshake(result, rand, Config::default()),
        )
    }

    /// The sans-IO core (keys, remote public key, datagrams).
    pub fn core(&mut self) -> &mut SecretStream {
        &mut self.core
    }

    /// The raw stream.
    pub fn get_ref(&self) -> &S {
        &self.io
    }

    /// Sends an empty message after every `interval` without writes (JS `setKeepAlive(ms)`;
    /// hyperdht uses 5000 ms). Received empty messages are then dropped, as JS does.
    pub fn set_keep_alive(&mut self, interval: Option<Duration>) {
        self.keep_alive = interval.map(|d| (d, Box::pin(tokio::time::sleep(d))));
        if interval.is_some() {
            self.core.recv().set_filter_zero_byte_messages(true);
        }
    }

    /// Runs the handshake until our keys exist and our header is on the wire.
    pub async fn handshake(&mut self) -> io::Result<()> {
        poll_fn(|cx| self.poll_connected(cx)).await?;
        poll_fn(|cx| self.poll_flush_out(cx)).await
    }

    /// Finishes the handshake (sending our header), then splits the stream into a reader and a
    /// writer with no shared crypto state, so a reader task and a writer task encrypt and
    /// decrypt on different threads (through `tokio::io::split` of the raw stream, whose lock
    /// is held only for each raw read or write). Plaintext already received goes to the
    /// reader. The halves fail independently: drop both when either fails. Keepalives are not
    /// timed after the split; send them with [`SecretWriter::send_keep_alive`] if needed
    /// (received empty messages are still dropped when [`SecretStreamIo::set_keep_alive`] was
    /// on).
    pub async fn into_split(
        mut self,
    ) -> io::Result<(SecretReader<ReadHalf<S>>, SecretWriter<WriteHalf<S>>)> {
        self.handshake().await?;
        let pending = std::mem::take(&mut self.pending);
        let (tx, rx) = self.core.into_split().map_err(|core| match core.error() {
            Some(e) => to_io(e.clone()),
            None => io::Error::other("secret stream not connected"),
        })?;
        let (r, w) = tokio::io::split(self.io);
        let mut reader = SecretReader::new(r, rx);
        reader.pending = pending;
        Ok((reader, SecretWriter::new(w, tx)))
    }

    /// Sends one message and flushes it.
    pub async fn send_message(&mut self, msg: &[u8]) -> io::Result<()> {
        self.handshake().await?;
        self.core.write(msg).map_err(to_io)?;
        self.refresh_keep_alive();
        poll_fn(|cx| self.poll_flush_out(cx)).await
    }

    /// Receives the next whole message; `Ok(None)` at a clean end of stream. Plaintext left
    /// over from a partial `AsyncRead` comes out first as one message.
    pub async fn recv_message(&mut self) -> io::Result<Option<Vec<u8>>> {
        if let Some(v) = self.pending.take() {
            return Ok(Some(v));
        }
        poll_fn(|cx| {
            if let Some(m) = ready!(self.poll_next_message(cx))? {
                return Poll::Ready(Ok(Some(m.to_vec())));
            }
            Poll::Ready(Ok(None))
        })
        .await
    }

    fn park_writer<T>(&mut self, cx: &Context<'_>, p: Poll<T>) -> Poll<T> {
        if p.is_pending() {
            self.write_waker = Some(cx.waker().clone());
        }
        p
    }

    /// Wakes the parked write half if the read path moved outgoing bytes or connected.
    fn wake_writer_if(&mut self, flushed_before: u64) {
        if (self.flushed != flushed_before || self.core.is_connected())
            && let Some(w) = self.write_waker.take()
        {
            w.wake();
        }
    }

    /// Wakes the parked read half if the write path consumed raw input.
    fn wake_reader_if(&mut self, filled_before: u64) {
        if (self.filled != filled_before || !self.pending.is_empty())
            && let Some(w) = self.read_waker.take()
        {
            w.wake();
        }
    }

    fn refresh_keep_alive(&mut self) {
        if let Some((d, sleep)) = self.keep_alive.as_mut() {
            sleep.as_mut().reset(tokio::time::Instant::now() + *d);
        }
    }

    fn poll_keep_alive(&mut self, cx: &mut Context<'_>) {
        let Some((d, sleep)) = self.keep_alive.as_mut() else {
            return;
        };
        if sleep.as_mut().poll(cx).is_ready() {
            let next = tokio::time::Instant::now() + *d;
            sleep.as_mut().reset(next);
            // re-register the timer's waker
            let _ = sleep.as_mut().poll(cx);
            if self.core.is_connected() {
                let _ = self.core.send_keep_alive();
                self.read_path_flush = true;
            }
        }
    }

    /// Writes queued outgoing bytes to the raw stream.
    fn poll_flush_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        poll_flush_queue(&mut self.io, &mut self.core, &mut self.flushed, cx)
    }

    /// Reads more raw bytes into the core. Ready(Ok(())) means progress (bytes or EOF).
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.read_eof {
            return Poll::Ready(Ok(()));
        }
        let n = ready!(poll_read_into(&mut self.io, self.core.recv(), cx))?;
        if n == 0 {
            self.read_eof = true;
            self.filled += 1;
        } else {
            self.filled += n as u64;
        }
        Poll::Ready(Ok(()))
    }

    /// The next message from the core, reading (and flushing handshake replies) as needed.
    /// `Ready(Ok(None))` at a clean end.
    fn poll_next_message(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Option<&[u8]>>> {
        let before = self.flushed;
        let r = self.poll_next_inner(cx);
        self.wake_writer_if(before);
        match ready!(r)? {
            // Re-borrow the message poll_message just returned (a borrow cannot leave the loop).
            true => Poll::Ready(Ok(Some(self.core.recv_ref().last_message()))),
            false => Poll::Ready(Ok(None)),
        }
    }

    /// `Ready(Ok(true))` when a message is available through `core.last_message()`,
    /// `Ready(Ok(false))` at a clean end.
    fn poll_next_inner(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        loop {
            self.poll_keep_alive(cx);
            let got = match self.core.poll_message() {
                Err(e) => return Poll::Ready(Err(to_io(e))),
                Ok(m) => m.is_some(),
            };
            // handshake replies, our header and keepalives must go out while we wait for input
            if self.read_path_flush || !self.core.is_established() {
                match self.poll_flush_out(cx) {
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Ready(Ok(())) => self.read_path_flush = false,
                    Poll::Pending => {}
                }
            }
            if got {
                return Poll::Ready(Ok(true));
            }
            if self.core.recv_ref().is_finished() {
                return Poll::Ready(Ok(false));
            }
            ready!(self.poll_fill(cx))?;
        }
    }

    /// Drives the handshake until our keys exist.
    fn poll_connected(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let before = self.filled;
        let r = self.poll_connected_inner(cx);
        self.wake_reader_if(before);
        r
    }

    fn poll_connected_inner(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            if let Some(e) = self.core.error() {
                return Poll::Ready(Err(to_io(e.clone())));
            }
            if self.core.is_connected() {
                return Poll::Ready(Ok(()));
            }
            loop {
                match self.core.poll_message() {
                    Err(e) => return Poll::Ready(Err(to_io(e))),
                    Ok(Some(m)) => self.pending.extend(m),
                    Ok(None) => break,
                }
            }
            if let Poll::Ready(Err(e)) = self.poll_flush_out(cx) {
                return Poll::Ready(Err(e));
            }
            if self.core.is_connected() {
                continue;
            }
            ready!(self.poll_fill(cx))?;
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for SecretStreamIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.pending.read_into(buf) {
                return Poll::Ready(Ok(()));
            }
            let next = match this.poll_next_message(cx) {
                Poll::Pending => {
                    this.read_waker = Some(cx.waker().clone());
                    return Poll::Pending;
                }
                Poll::Ready(r) => r,
            };
            match next? {
                None => return Poll::Ready(Ok(())),
                Some([]) => continue,
                Some(_) => {
                    let m = this.core.recv_ref().last_message();
                    this.pending.deliver(m, buf);
                    return Poll::Ready(Ok(()));
                }
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for SecretStreamIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.poll_connected(cx).is_pending() {
            this.write_waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        if let Some(e) = this.core.error() {
            return Poll::Ready(Err(to_io(e.clone())));
        }
        this.poll_keep_alive(cx);
        if this.core.send_ref().outgoing().len() >= Self::HIGH_WATER {
            let p = this.poll_flush_out(cx);
            ready!(this.park_writer(cx, p))?;
        }
        let n = data.len().min(Self::MAX_WRITE_CHUNK);
        this.core
            .write(data.get(..n).unwrap_or(&[]))
            .map_err(to_io)?;
        this.refresh_keep_alive();
        // start writing now; completion is not required for this call
        if let Poll::Ready(Err(e)) = this.poll_flush_out(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let p = this.poll_flush_out(cx);
        ready!(this.park_writer(cx, p))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.poll_connected(cx).is_pending() {
            this.write_waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        if let Some(e) = this.core.error() {
            return Poll::Ready(Err(to_io(e.clone())));
        }
        let p = this.poll_flush_out(cx);
        ready!(this.park_writer(cx, p))?;
        this.keep_alive = None;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

/// The reading half of a split secret stream ([`SecretStreamIo::into_split`], or
/// [`SecretReader::new`] over any raw read half): `AsyncRead` of the decrypted bytes, or whole
/// messages with [`SecretReader::recv_message`]. Errors as in [`SecretStreamIo`].
#[derive(Debug)]
pub struct SecretReader<R> {
    io: R,
    core: RecvHalf,
    pending: Leftover,
    read_eof: bool,
}

impl<R: AsyncRead + Unpin> SecretReader<R> {
    /// A reader over the raw stream's read half.
    pub fn new(io: R, core: RecvHalf) -> Self {
        Self {
            io,
            core,
            pending: Leftover::default(),
            read_eof: false,
        }
    }

    /// The receive half of the core (remote key, handshake hash, datagrams).
    pub fn core(&mut self) -> &mut RecvHalf {
        &mut self.core
    }

    /// Receives the next whole message; `Ok(None)` at a clean end of stream. Plaintext left
    /// over from a partial `AsyncRead` comes out first as one message.
    pub async fn recv_message(&mut self) -> io::Result<Option<Vec<u8>>> {
        if let Some(v) = self.pending.take() {
            return Ok(Some(v));
        }
        poll_fn(|cx| match ready!(self.poll_next(cx))? {
            true => Poll::Ready(Ok(Some(self.core.last_message().to_vec()))),
            false => Poll::Ready(Ok(None)),
        })
        .await
    }

    /// `Ready(Ok(true))` when a message is available through `core.last_message()`,
    /// `Ready(Ok(false))` at a clean end.
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        loop {
            if self.core.poll_message().map_err(to_io)?.is_some() {
                return Poll::Ready(Ok(true));
            }
            if self.core.is_finished() {
                return Poll::Ready(Ok(false));
            }
            if self.read_eof {
                // the core reported neither a message nor the end: a truncated frame error
                // comes from poll_message above; anything else is an unexpected state
                return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
            }
            if ready!(poll_read_into(&mut self.io, &mut self.core, cx))? == 0 {
                self.read_eof = true;
            }
        }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for SecretReader<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.pending.read_into(buf) {
                return Poll::Ready(Ok(()));
            }
            if !ready!(this.poll_next(cx))? {
                return Poll::Ready(Ok(()));
            }
            let m = this.core.last_message();
            if !m.is_empty() {
                this.pending.deliver(m, buf);
                return Poll::Ready(Ok(()));
            }
        }
    }
}

/// The writing half of a split secret stream ([`SecretStreamIo::into_split`], or
/// [`SecretWriter::new`] over any raw write half): `AsyncWrite` of plaintext, each
/// `poll_write` one frame of at most 64 KiB, or whole messages with
/// [`SecretWriter::send_message`]. `poll_shutdown` flushes and shuts the raw write half.
#[derive(Debug)]
pub struct SecretWriter<W> {
    io: W,
    core: SendHalf,
}

impl<W: AsyncWrite + Unpin> SecretWriter<W> {
    /// Largest frame one `poll_write` produces.
    pub const MAX_WRITE_CHUNK: usize = 64 * 1024;
    /// Outgoing bytes buffered before `poll_write` waits for the raw stream.
    const HIGH_WATER: usize = 256 * 1024;

    /// A writer over the raw stream's write half; bytes the send half holds go out first.
    pub fn new(io: W, core: SendHalf) -> Self {
        Self { io, core }
    }

    /// The send half of the core.
    pub fn core(&mut self) -> &mut SendHalf {
        &mut self.core
    }

    /// Sends one message and flushes it.
    pub async fn send_message(&mut self, msg: &[u8]) -> io::Result<()> {
        self.core.write(msg).map_err(to_io)?;
        poll_fn(|cx| self.poll_flush_out(cx)).await
    }

    /// Sends an empty message (JS keepalive) and flushes it.
    pub async fn send_keep_alive(&mut self) -> io::Result<()> {
        self.send_message(&[]).await
    }

    fn poll_flush_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        poll_flush_queue(&mut self.io, &mut self.core, &mut 0, cx)
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for SecretWriter<W> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.core.outgoing().len() >= Self::HIGH_WATER {
            ready!(this.poll_flush_out(cx))?;
        }
        let n = data.len().min(Self::MAX_WRITE_CHUNK);
        this.core
            .write(data.get(..n).unwrap_or(&[]))
            .map_err(to_io)?;
        // start writing now; completion is not required for this call
        if let Poll::Ready(Err(e)) = this.poll_flush_out(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_flush_out(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_flush_out(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}
