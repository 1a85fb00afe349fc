//! The UDX packet: a 20-byte little-endian header, optional SACK blocks, optional padding
//! (the "data offset") and a payload.
//!
//! Mirrors libudx `include/udx.h` (`UDX_HEADER_*`, `UDX_MAGIC_BYTE`, `UDX_VERSION`) and
//! `src/udx.c` `process_packet` / `udx_write_header` / `send_ack`.
//! Decoding never panics and never allocates; it borrows from the datagram.

use thiserror::Error;

/// Size of the fixed header (`UDX_HEADER_SIZE`).
pub const HEADER_SIZE: usize = 20;
/// First byte of every UDX packet (`UDX_MAGIC_BYTE`).
pub const MAGIC: u8 = 0xFF;
/// Second byte of every UDX packet (`UDX_VERSION`).
pub const VERSION: u8 = 1;
/// Maximum number of SACK blocks a receiver sends (`UDX_MAX_SACKS`).
pub const MAX_SACKS: usize = 50;
/// How far past `ack` a libudx receiver scans for out-of-order packets when building SACKs
/// (`src/udx.c send_ack` loop bound). Ours reads its blocks off a range set instead and buffers
/// nothing past [`MAX_OOO_DISTANCE`](super::stream::MAX_OOO_DISTANCE).
pub const SACK_SCAN_LIMIT: u32 = 65_536;

/// Type flags of the header's third byte.
pub mod flags {
    /// `UDX_HEADER_DATA`: the packet carries stream data and consumes one sequence number.
    pub const DATA: u8 = 0x01;
    /// `UDX_HEADER_END`: last packet of a direction; consumes one sequence number.
    pub const END: u8 = 0x02;
    /// `UDX_HEADER_SACK`: SACK blocks follow the header.
    pub const SACK: u8 = 0x04;
    /// `UDX_HEADER_MESSAGE`: unreliable datagram payload.
    pub const MESSAGE: u8 = 0x08;
    /// `UDX_HEADER_DESTROY`: the sender destroyed the stream; consumes one sequence number.
    pub const DESTROY: u8 = 0x10;
    /// `UDX_HEADER_HEARTBEAT`: probe, answered with an ACK.
    pub const HEARTBEAT: u8 = 0x20;
    /// DATA or END.
    pub const DATA_OR_END: u8 = DATA | END;
}

/// Why a datagram is not a UDX packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Shorter than [`HEADER_SIZE`].
    #[error("datagram of {len} bytes is shorter than the 20-byte UDX header")]
    TooShort {
        /// Datagram length.
        len: usize,
    },
    /// Wrong magic byte or version.
    #[error("not a UDX v1 packet (magic {magic:#04x}, version {version})")]
    BadMagic {
        /// Byte 0.
        magic: u8,
        /// Byte 1.
        version: u8,
    },
    /// The data offset points past the end of the datagram (libudx drops such packets).
    #[error("data offset {offset} exceeds the {available} bytes after the header")]
    BadDataOffset {
        /// The data offset byte.
        offset: u8,
        /// Bytes after the header.
        available: usize,
    },
}

/// The fixed 20-byte header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Header {
    /// Type flags, see [`flags`].
    pub flags: u8,
    /// Bytes between the header and the payload (SACK area or MTU-probe padding).
    pub data_offset: u8,
    /// Destination stream id: the receiver's local id.
    pub stream_id: u32,
    /// Sender's free receive buffer in bytes.
    pub rwnd: u32,
    /// Sequence number (packets, not bytes).
    pub seq: u32,
    /// Next sequence number the sender expects from the receiver (cumulative ack).
    pub ack: u32,
}

impl Header {
    /// Writes the header into the first 20 bytes of `out`. Returns `None` if `out` is shorter.
    pub fn encode(&self, out: &mut [u8]) -> Option<()> {
        out.get_mut(..HEADER_SIZE)?
            .copy_from_slice(&self.to_bytes());
        Some(())
    }

    /// The header's 20 bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_SIZE] {
        let [a0, a1, a2, a3] = self.stream_id.to_le_bytes();
        let [b0, b1, b2, b3] = self.rwnd.to_le_bytes();
        let [c0, c1, c2, c3] = self.seq.to_le_bytes();
        let [d0, d1, d2, d3] = self.ack.to_le_bytes();
        [
            MAGIC,
            VERSION,
            self.flags,
            self.data_offset,
            a0,
            a1,
            a2,
            a3,
            b0,
            b1,
            b2,
            b3,
            c0,
            c1,
            c2,
            c3,
            d0,
            d1,
            d2,
            d3,
        ]
    }

    /// Reads a header; checks length, magic and version only.
    pub fn decode(buf: &[u8]) -> Result<Header, DecodeError> {
        let h: [u8; HEADER_SIZE] = buf
            .get(..HEADER_SIZE)
            .and_then(|s| s.try_into().ok())
            .ok_or(DecodeError::TooShort { len: buf.len() })?;
        let [
            magic,
            version,
            flags,
            data_offset,
            a0,
            a1,
            a2,
            a3,
            b0,
            b1,
            b2,
            b3,
            c0,
            c1,
            c2,
            c3,
            d0,
            d1,
            d2,
            d3,
        ] = h;
        if magic != MAGIC || version != VERSION {
            return Err(DecodeError::BadMagic { magic, version });
        }
        Ok(Header {
            flags,
            data_offset,
            stream_id: u32::from_le_bytes([a0, a1, a2, a3]),
            rwnd: u32::from_le_bytes([b0, b1, b2, b3]),
            seq: u32::from_le_bytes([c0, c1, c2, c3]),
            ack: u32::from_le_bytes([d0, d1, d2, d3]),
        })
    }
}

/// Returns the destination stream id if `buf` looks like a UDX packet (length, magic, version);
/// the socket uses this to demultiplex.
pub fn peek_stream_id(buf: &[u8]) -> Option<u32> {
    match buf {
        [MAGIC, VERSION, _, _, a, b, c, d, ..] if buf.len() >= HEADER_SIZE => {
            Some(u32::from_le_bytes([*a, *b, *c, *d]))
        }
        _ => None,
    }
}

/// One SACK block: sequence numbers `start..end` (end exclusive) were received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SackBlock {
    /// First received sequence number.
    pub start: u32,
    /// One past the last received sequence number.
    pub end: u32,
}

/// A decoded packet borrowing from the datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<'a> {
    /// The header.
    pub header: Header,
    /// Raw SACK area (a multiple of 8 bytes); iterate with [`Packet::sacks`].
    sack_area: &'a [u8],
    /// Payload after the data offset (DATA, END-with-data, MESSAGE).
    pub payload: &'a [u8],
}

impl<'a> Packet<'a> {
    /// Decodes a datagram the way libudx `process_packet` does: the SACK block count is
    /// `(len - 20) / 8`, or `data_offset / 8` when the data offset is non-zero and smaller than
    /// the rest; the payload starts `data_offset` bytes after the header.
    pub fn decode(buf: &'a [u8]) -> Result<Packet<'a>, DecodeError> {
        let header = Header::decode(buf)?;
        let rest = buf.get(HEADER_SIZE..).unwrap_or(&[]);
        let doff = usize::from(header.data_offset);
        let sack_area = if header.flags & flags::SACK != 0 {
            let area = if doff > 0 && doff < rest.len() {
                doff
            } else {
                rest.len()
            };
            let n = area / 8;
            rest.get(..n * 8).unwrap_or(&[])
        } else {
            &[]
        };
        let payload = rest.get(doff..).ok_or(DecodeError::BadDataOffset {
            offset: header.data_offset,
            available: rest.len(),
        })?;
        Ok(Packet {
            header,
            sack_area,
            payload,
        })
    }

    /// Number of SACK blocks.
    pub fn sack_count(&self) -> usize {
        self.sack_area.len() / 8
    }

    /// The SACK blocks, in wire order.
    pub fn sacks(&self) -> impl Iterator<Item = SackBlock> + 'a {
        self.sack_area.chunks_exact(8).map(|c| {
            let mut s = [0u8; 4];
            let mut e = [0u8; 4];
            s.copy_from_slice(c.get(..4).unwrap_or(&[0; 4]));
            e.copy_from_slice(c.get(4..8).unwrap_or(&[0; 4]));
            SackBlock {
                start: u32::from_le_bytes(s),
                end: u32::from_le_bytes(e),
            }
        })
    }
}

/// Encodes a packet: header, then SACK blocks (setting [`flags::SACK`] when there are any),
/// `padding` zero bytes (recorded in the data offset; only for packets without SACKs), then
/// `payload`. Returns the encoded length, or `None` if `out` is too small or padding > 255.
pub fn encode(
    out: &mut [u8],
    mut header: Header,
    sacks: &[SackBlock],
    padding: usize,
    payload: &[u8],
) -> Option<usize> {
    let sack_len = sacks.len() * 8;
    if !sacks.is_empty() {
        header.flags |= flags::SACK;
        // The receiver takes the whole rest as SACK area unless a data offset bounds it.
        header.data_offset = if payload.is_empty() && padding == 0 {
            0
        } else {
            u8::try_from(sack_len + padding).ok()?
        };
    } else {
        header.data_offset = u8::try_from(padding).ok()?;
    }
    let total = HEADER_SIZE + sack_len + padding + payload.len();
    let buf = out.get_mut(..total)?;
    header.encode(buf)?;
    let mut pos = HEADER_SIZE;
    for b in sacks {
        buf.get_mut(pos..pos + 4)?
            .copy_from_slice(&b.start.to_le_bytes());
        buf.get_mut(pos + 4..pos + 8)?
            .copy_from_slice(&b.end.to_le_bytes());
        pos += 8;
    }
    buf.get_mut(pos..pos + padding)?.fill(0);
    pos += padding;
    buf.get_mut(pos..)?.copy_from_slice(payload);
    Some(total)
}

/// `a - b` as a signed distance in 32-bit sequence space (libudx `seq_diff`).
#[inline]
pub fn seq_diff(a: u32, b: u32) -> i32 {
    a.wrapping_sub(b) as i32
}

/// `a < b` in 32-bit sequence space.
#[inline]
pub fn seq_lt(a: u32, b: u32) -> bool {
    seq_diff(a, b) < 0
}
