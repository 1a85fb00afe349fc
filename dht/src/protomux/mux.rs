//! The channel table of one protomux stream (JS `Protomux` and `Channel` state).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::frame::{Frame, Message, Open};
use super::{Limits, MAX_BATCH_BYTES, MuxError, PAUSE_BUFFERED_BYTES};
use crate::codec::{Decode, Encode, Writer};

/// What JS counts for one held message or open besides its bytes (`byteSize`).
const HELD_OVERHEAD: usize = 512;

/// A channel opened on this side. Local ids are reused after a close (as in JS); the
/// generation tells a stale handle from the channel now holding its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChannelId {
    local_id: u64,
    generation: u64,
}

impl ChannelId {
    /// The id this side announced in its open (what the peer's frames for it carry back in
    /// closes, and what ours carry in messages).
    pub fn local_id(&self) -> u64 {
        self.local_id
    }
}

/// What the mux reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The peer opened a channel of a protocol registered with [`Mux::pair`] and no local
    /// channel waits for it (JS calls the `pair` notify callback). Accept it with [`Mux::open`]
    /// for the same protocol and id, then call [`Mux::finish_pairing`] either way: remote opens
    /// still unaccepted then are rejected.
    Pair {
        /// The protocol name.
        protocol: String,
        /// The channel id.
        id: Option<Vec<u8>>,
    },
    /// Both sides opened the channel (JS `onopen`), with the peer's handshake bytes.
    Opened {
        /// The channel.
        channel: ChannelId,
        /// The peer's encoded handshake (empty when its channel has none).
        handshake: Vec<u8>,
    },
    /// A message of an opened channel. Types the application did not define are to be
    /// ignored, as JS ignores them.
    Message {
        /// The channel.
        channel: ChannelId,
        /// The message type.
        kind: u64,
        /// The encoded message.
        payload: Vec<u8>,
    },
    /// The peer closed the channel, or the stream ended ([`Mux::shutdown`]) (JS `onclose` with
    /// `isRemote` true).
    Closed {
        /// The channel.
        channel: ChannelId,
    },
    /// The peer refused our open (nobody there speaks the protocol).
    Rejected {
        /// The channel.
        channel: ChannelId,
    },
}

type Key = (String, Option<Vec<u8>>);

#[derive(Debug)]
struct Local {
    key: Key,
    generation: u64,
    /// The peer's id of the channel; 0 until its open arrived.
    remote_id: u64,
}

#[derive(Debug)]
enum Remote {
    /// Opened by the peer, not accepted here yet: its handshake and the messages sent since.
    Pending {
        handshake: Vec<u8>,
        held: Vec<(u64, Vec<u8>)>,
    },
    /// Paired with a local channel.
    Paired { local_id: u64 },
}

/// JS `_infos` entry: per protocol and id.
#[derive(Debug, Default)]
struct Info {
    opened: usize,
    pairing: usize,
    incoming: VecDeque<u64>,
    outgoing: VecDeque<u64>,
}

impl Info {
    fn is_unused(&self) -> bool {
        self.opened == 0 && self.outgoing.is_empty() && self.incoming.is_empty()
    }
}

/// One protomux stream's channels (sans-IO). See the [module docs](super).
///
/// A race kept from JS: a close for a remote channel not accepted yet is ignored (JS
/// `_onclosesession` only closes paired channels), so the application may still accept that
/// dead channel; the closing side frees its id once our open arrives and may reuse it, and our
/// side then refuses the new open of that id ([`MuxError::InvalidOpen`], where JS destroys
/// the stream). Both sides must run the same rules to stay byte-compatible, so the race stays.
#[derive(Debug)]
pub struct Mux {
    limits: Limits,
    local: Vec<Option<Local>>,
    free: Vec<usize>,
    remote: Vec<Option<Remote>>,
    infos: BTreeMap<Key, Info>,
    pairs: BTreeSet<Key>,
    /// Held message bytes as JS counts them (decides [`Mux::is_paused`]).
    buffered: usize,
    /// Held opens (512 + handshake each), which JS does not count.
    held_opens: usize,
    generation: u64,
    corked: usize,
    batch: Vec<u8>,
    batch_channel: u64,
    transmit: VecDeque<Vec<u8>>,
    events: VecDeque<Event>,
}

fn key(protocol: &str, id: Option<&[u8]>) -> Key {
    // JS keys an empty id like no id, and writes it as no id.
    (
        protocol.to_owned(),
        id.filter(|i| !i.is_empty()).map(<[u8]>::to_vec),
    )
}

fn held_size(len: usize) -> usize {
    HELD_OVERHEAD.saturating_add(len)
}

impl Default for Mux {
    fn default() -> Self {
        Self::new(Limits::default())
    }
}

impl Mux {
    /// An empty mux with these bounds.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            local: Vec::new(),
            free: Vec::new(),
            remote: Vec::new(),
            infos: BTreeMap::new(),
            pairs: BTreeSet::new(),
            buffered: 0,
            held_opens: 0,
            generation: 0,
            corked: 0,
            batch: Vec::new(),
            batch_channel: 0,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The next frame to send as one stream message.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmit.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Whether the caller should stop reading the stream until the application accepts
    /// channels (JS pauses its stream above [`PAUSE_BUFFERED_BYTES`] held bytes).
    pub fn is_paused(&self) -> bool {
        self.buffered > PAUSE_BUFFERED_BYTES
    }

    /// `(local slots, remote slots, protocol entries, held bytes)`, for the fuzz oracle's
    /// bound checks.
    #[doc(hidden)]
    pub fn table_sizes(&self) -> (usize, usize, usize, usize) {
        (
            self.local.len(),
            self.remote.len(),
            self.infos.len(),
            self.buffered + self.held_opens,
        )
    }

    /// Whether no local channel is open (JS `isIdle`).
    pub fn is_idle(&self) -> bool {
        self.local.len() == self.free.len()
    }

    /// Whether the peer has opened `channel` too.
    pub fn is_opened(&self, channel: ChannelId) -> bool {
        self.slot(channel).is_some_and(|l| l.remote_id != 0)
    }

    /// Announce `Event::Pair` for remote opens of `protocol` with `id` (`None`: with any id)
    /// instead of rejecting them (JS `pair`).
    pub fn pair(&mut self, protocol: &str, id: Option<&[u8]>) {
        self.pairs.insert(key(protocol, id));
    }

    /// Stop announcing remote opens of `protocol` and `id` (JS `unpair`).
    pub fn unpair(&mut self, protocol: &str, id: Option<&[u8]>) {
        self.pairs.remove(&key(protocol, id));
    }

    fn slot(&self, channel: ChannelId) -> Option<&Local> {
        let i = usize::try_from(channel.local_id.checked_sub(1)?).ok()?;
        self.local
            .get(i)?
            .as_ref()
            .filter(|l| l.generation == channel.generation)
    }

    /// Opens a channel of `protocol` and `id` with an encoded `handshake` (JS `createChannel`
    /// then `channel.open(handshake)`, `unique` as by default). If the peer's open of the same
    /// protocol and id waits (after [`Event::Pair`]) the channel pairs with it at once and
    /// [`Event::Opened`] follows, then the messages held for it.
    pub fn open(
        &mut self,
        protocol: &str,
        id: Option<&[u8]>,
        handshake: &[u8],
    ) -> Result<ChannelId, MuxError> {
        let k = key(protocol, id);
        if self.infos.get(&k).is_some_and(|i| i.opened > 0) {
            return Err(MuxError::AlreadyOpen);
        }
        let index = match self.free.pop() {
            Some(i) => i,
            None if self.local.len() < self.limits.max_local_channels => {
                self.local.push(None);
                self.local.len() - 1
            }
            None => {
                return Err(MuxError::TooManyLocalChannels {
                    max: self.limits.max_local_channels,
                });
            }
        };
        let local_id = index as u64 + 1;
        let info = self.infos.entry(k.clone()).or_default();
        // An incoming open the application accepts (JS `createChannel` with `info.incoming`).
        let mut accepted = None;
        while let Some(remote_id) = info.incoming.pop_front() {
            let slot = remote_id
                .checked_sub(1)
                .and_then(|r| usize::try_from(r).ok())
                .and_then(|r| self.remote.get_mut(r));
            if let Some(slot) = slot
                && let Some(Remote::Pending { .. }) = slot
                && let Some(Remote::Pending { handshake, held }) =
                    slot.replace(Remote::Paired { local_id })
            {
                accepted = Some((remote_id, handshake, held));
                break;
            }
        }
        info.opened += 1;
        let remote_id = accepted.as_ref().map_or(0, |a| a.0);
        if remote_id == 0 {
            info.outgoing.push_back(local_id);
        }
        self.generation += 1;
        let channel = ChannelId {
            local_id,
            generation: self.generation,
        };
        if let Some(slot) = self.local.get_mut(index) {
            *slot = Some(Local {
                key: k.clone(),
                generation: self.generation,
                remote_id,
            });
        }
        let open = Frame::Open(Open {
            local_id,
            protocol: k.0,
            id: k.1,
            handshake: handshake.to_vec(),
        });
        self.write_control(&open);
        if let Some((_, handshake, held)) = accepted {
            self.held_opens = self.held_opens.saturating_sub(held_size(handshake.len()));
            self.events.push_back(Event::Opened { channel, handshake });
            for (kind, payload) in held {
                self.buffered = self.buffered.saturating_sub(held_size(payload.len()));
                self.events.push_back(Event::Message {
                    channel,
                    kind,
                    payload,
                });
            }
        }
        Ok(channel)
    }

    /// After handling [`Event::Pair`]: rejects the remote opens of `protocol` and `id` that no
    /// [`Mux::open`] accepted (JS `_requestSession` once the notify callback returned).
    pub fn finish_pairing(&mut self, protocol: &str, id: Option<&[u8]>) {
        self.finish_pairing_key(&key(protocol, id));
    }

    fn finish_pairing_key(&mut self, k: &Key) {
        let Some(info) = self.infos.get_mut(k) else {
            return;
        };
        info.pairing = info.pairing.saturating_sub(1);
        if info.pairing > 0 {
            return;
        }
        let rejects: Vec<u64> = info.incoming.drain(..).collect();
        for remote_id in rejects {
            self.reject_session(remote_id);
        }
        self.gc(k);
    }

    /// Sends message `kind` with its encoded `payload` on `channel` (JS `message.send`).
    pub fn send(&mut self, channel: ChannelId, kind: u64, payload: &[u8]) -> Result<(), MuxError> {
        if self.slot(channel).is_none() {
            return Err(MuxError::UnknownChannel);
        }
        let m = Frame::Message(Message {
            channel: channel.local_id,
            kind,
            payload: payload.to_vec(),
        });
        if self.corked > 0 {
            let mut body = Vec::with_capacity(payload.len() + 9);
            body.put_uint(kind);
            body.put_bytes(payload);
            self.push_batch(channel.local_id, &body);
        } else {
            self.transmit.push_back(m.to_bytes());
        }
        Ok(())
    }

    /// Closes `channel` (JS `channel.close()`); no event follows for a local close.
    pub fn close(&mut self, channel: ChannelId) -> Result<(), MuxError> {
        if self.slot(channel).is_none() {
            return Err(MuxError::UnknownChannel);
        }
        self.close_local(channel.local_id, false);
        self.write_control(&Frame::Close {
            local_id: channel.local_id,
        });
        Ok(())
    }

    /// Starts collecting sends into one batch frame (JS `cork`; nests).
    pub fn cork(&mut self) {
        self.corked += 1;
    }

    /// Ends one [`Mux::cork`]; the outermost sends the batch (JS `uncork`).
    pub fn uncork(&mut self) {
        self.corked = self.corked.saturating_sub(1);
        if self.corked == 0 {
            self.flush_batch();
        }
    }

    /// The stream ended: every local channel closes (JS `_shutdown`), [`Event::Closed`] each.
    pub fn shutdown(&mut self) {
        for i in 0..self.local.len() {
            self.close_local(i as u64 + 1, true);
        }
    }

    /// Handles one received stream message (JS `_ondata`). An error is a protocol violation:
    /// close the stream.
    pub fn handle_frame(&mut self, bytes: &[u8]) -> Result<(), MuxError> {
        let frame = Frame::from_bytes(bytes)?;
        self.handle(frame)
    }

    fn handle(&mut self, frame: Frame) -> Result<(), MuxError> {
        match frame {
            Frame::Empty | Frame::UnknownControl { .. } => Ok(()),
            Frame::Message(m) => self.on_message(m),
            Frame::Open(o) => self.on_open(o),
            Frame::Reject { remote_id } => self.on_reject(remote_id),
            Frame::Close { local_id } => {
                self.on_close(local_id);
                Ok(())
            }
            Frame::Batch(entries) => {
                // JS corks its replies while it works through a batch of several entries.
                let cork = entries.len() > 1;
                if cork {
                    self.cork();
                }
                let mut r = Ok(());
                for e in entries {
                    r = self.handle(e);
                    if r.is_err() {
                        break;
                    }
                }
                if cork {
                    self.uncork();
                }
                r
            }
        }
    }

    fn remote_slot(&mut self, remote_id: u64) -> Option<&mut Option<Remote>> {
        let i = usize::try_from(remote_id.checked_sub(1)?).ok()?;
        self.remote.get_mut(i)
    }

    fn on_message(&mut self, m: Message) -> Result<(), MuxError> {
        let max = self.limits.max_buffered_bytes;
        let total = self.buffered.saturating_add(self.held_opens);
        let Some(slot) = self.remote_slot(m.channel) else {
            // JS: a message for a channel that is gone "could just be a pipeline message".
            return Ok(());
        };
        match slot {
            None => Ok(()),
            Some(Remote::Pending { held, .. }) => {
                let size = held_size(m.payload.len());
                if total.saturating_add(size) > max {
                    return Err(MuxError::BufferOverflow { max });
                }
                held.push((m.kind, m.payload));
                self.buffered += size;
                Ok(())
            }
            Some(Remote::Paired { local_id }) => {
                let local_id = *local_id;
                if let Some(channel) = self.channel_of(local_id) {
                    self.events.push_back(Event::Message {
                        channel,
                        kind: m.kind,
                        payload: m.payload,
                    });
                }
                Ok(())
            }
        }
    }

    fn channel_of(&self, local_id: u64) -> Option<ChannelId> {
        let i = usize::try_from(local_id.checked_sub(1)?).ok()?;
        let l = self.local.get(i)?.as_ref()?;
        Some(ChannelId {
            local_id,
            generation: l.generation,
        })
    }

    fn on_open(&mut self, o: Open) -> Result<(), MuxError> {
        let remote_id = o.local_id;
        if remote_id == 0 {
            // JS means to reject it, but passes no id to `_rejectSession`; encoding the
            // undefined id throws and the stream is destroyed.
            return Err(MuxError::InvalidOpen { remote_id });
        }
        let max = self.limits.max_remote_channels;
        let rid = usize::try_from(remote_id - 1).unwrap_or(usize::MAX);
        if rid >= max {
            return Err(MuxError::TooManyRemoteChannels { max });
        }
        if self.remote.len() == rid {
            self.remote.push(None);
        }
        if !matches!(self.remote.get(rid), Some(None)) {
            return Err(MuxError::InvalidOpen { remote_id });
        }
        let k: Key = (o.protocol, o.id);
        let info = self.infos.entry(k.clone()).or_default();
        if let Some(local_id) = info.outgoing.pop_front() {
            let Some(channel) = self.channel_of(local_id) else {
                // We closed it before the peer's open came: the id is free now.
                self.free.push((local_id - 1) as usize);
                self.gc(&k);
                return Ok(());
            };
            if let Some(slot) = self.remote.get_mut(rid) {
                *slot = Some(Remote::Paired { local_id });
            }
            if let Some(Some(l)) = self.local.get_mut((local_id - 1) as usize) {
                l.remote_id = remote_id;
            }
            self.events.push_back(Event::Opened {
                channel,
                handshake: o.handshake,
            });
            return Ok(());
        }
        let size = held_size(o.handshake.len());
        let cap = self.limits.max_buffered_bytes;
        if self
            .buffered
            .saturating_add(self.held_opens)
            .saturating_add(size)
            > cap
        {
            self.gc(&k);
            return Err(MuxError::BufferOverflow { max: cap });
        }
        self.held_opens += size;
        info.pairing += 1;
        info.incoming.push_back(remote_id);
        if let Some(slot) = self.remote.get_mut(rid) {
            *slot = Some(Remote::Pending {
                handshake: o.handshake,
                held: Vec::new(),
            });
        }
        let notify = self.pairs.contains(&k) || self.pairs.contains(&(k.0.clone(), None));
        if notify {
            self.events.push_back(Event::Pair {
                protocol: k.0,
                id: k.1,
            });
        } else {
            self.finish_pairing_key(&k);
        }
        Ok(())
    }

    fn on_reject(&mut self, local_id: u64) -> Result<(), MuxError> {
        let found = self
            .infos
            .iter_mut()
            .find_map(|(k, info)| {
                let i = info.outgoing.iter().position(|&l| l == local_id)?;
                info.outgoing.remove(i);
                Some(k.clone())
            })
            .ok_or(MuxError::InvalidReject { local_id })?;
        self.free.push((local_id - 1) as usize);
        if let Some(channel) = self.channel_of(local_id) {
            self.close_local(local_id, false);
            self.events.push_back(Event::Rejected { channel });
        }
        self.gc(&found);
        Ok(())
    }

    fn on_close(&mut self, remote_id: u64) {
        if let Some(Some(Remote::Paired { local_id })) = self.remote_slot(remote_id) {
            let local_id = *local_id;
            self.close_local(local_id, true);
        }
        // JS ignores a close for an id it does not know or has not accepted yet.
    }

    /// JS `Channel._close`: frees the slots and, when the peer's side is known, the id.
    fn close_local(&mut self, local_id: u64, by_remote: bool) {
        let Some(index) = usize::try_from(local_id.wrapping_sub(1)).ok() else {
            return;
        };
        let Some(l) = self.local.get_mut(index).and_then(Option::take) else {
            return;
        };
        if l.remote_id > 0 {
            if let Some(slot) = self.remote_slot(l.remote_id) {
                *slot = None;
            }
            self.free.push(index);
        }
        if let Some(info) = self.infos.get_mut(&l.key) {
            info.opened = info.opened.saturating_sub(1);
        }
        self.gc(&l.key);
        if by_remote {
            self.events.push_back(Event::Closed {
                channel: ChannelId {
                    local_id,
                    generation: l.generation,
                },
            });
        }
    }

    /// JS `_rejectSession`: drops the peer's pending open and tells it.
    fn reject_session(&mut self, remote_id: u64) {
        if let Some(slot) = self.remote_slot(remote_id)
            && let Some(Remote::Pending { handshake, held }) = slot.take()
        {
            self.held_opens = self.held_opens.saturating_sub(held_size(handshake.len()));
            let bytes: usize = held.iter().map(|(_, p)| held_size(p.len())).sum();
            self.buffered = self.buffered.saturating_sub(bytes);
        }
        self.write_control(&Frame::Reject { remote_id });
    }

    fn gc(&mut self, k: &Key) {
        if self.infos.get(k).is_some_and(Info::is_unused) {
            self.infos.remove(k);
        }
    }

    /// JS `_write0`: a control frame, into the batch when corked (without its leading 0).
    fn write_control(&mut self, f: &Frame) {
        let bytes = f.to_bytes();
        if self.corked > 0 {
            self.push_batch(0, bytes.get(1..).unwrap_or_default());
        } else {
            self.transmit.push_back(bytes.to_vec());
        }
    }

    /// JS `_pushBatch`.
    fn push_batch(&mut self, channel: u64, body: &[u8]) {
        if self.batch.len() >= MAX_BATCH_BYTES {
            self.flush_batch();
        }
        if self.batch.is_empty() {
            self.batch.extend_from_slice(&[0, 0]);
            self.batch.put_uint(channel);
        } else if self.batch_channel != channel {
            self.batch.push(0);
            self.batch.put_uint(channel);
        }
        self.batch_channel = channel;
        self.batch.put_buffer(body);
    }

    fn flush_batch(&mut self) {
        if !self.batch.is_empty() {
            self.transmit.push_back(std::mem::take(&mut self.batch));
        }
    }
}
