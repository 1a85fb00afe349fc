//! compact-encoding: the byte format of every dht-rpc and hyperdht message.
//!
//! Mirrors the JS package `compact-encoding` 3.5.2 for the codecs this stack uses:
//! `uint` (1/3/5/9-byte varint), fixed-width little-endian integers, zig-zag `int`, `bool`,
//! `buffer`, `string`, `fixed(n)`, `array(enc)` and IPv4/IPv6 addresses.
//!
//! Contract: [`Reader`] never panics and never allocates more than the input can justify. Every
//! failure is a [`DecodeError`] carrying the byte offset where it happened. Decoders accept what
//! the JS decoders accept — non-minimal varints, unknown flag bits, trailing bytes after a message
//! — and encoders always write the canonical form JS writes.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};

/// compact-encoding's `array` decoder refuses more elements than this (`0x100000`).
pub const MAX_ARRAY_LEN: u64 = 0x10_0000;

/// The largest integer JS decodes as a `uint` (`Number.MAX_SAFE_INTEGER`, 2^53 - 1).
pub const MAX_SAFE_UINT: u64 = (1 << 53) - 1;

/// What went wrong while decoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// The input ended early (JS: "Out of bounds").
    #[error("truncated: {needed} more bytes needed, {available} available")]
    Truncated {
        /// Bytes the field needs.
        needed: u64,
        /// Bytes left in the input.
        available: usize,
    },
    /// A varint above 2^53 - 1 (JS: "Integer is outside of the supported range").
    #[error("integer {0} is above 2^53 - 1")]
    UintOverflow(u64),
    /// An array count above [`MAX_ARRAY_LEN`] (JS: "Array is too big").
    #[error("array of {count} elements is above the limit of {max}")]
    ArrayTooLong {
        /// The count on the wire.
        count: u64,
        /// The limit.
        max: u64,
    },
    /// A string that is not UTF-8.
    #[error("string is not valid UTF-8")]
    InvalidUtf8,
    /// An `ip` address family byte other than 4 or 6.
    #[error("unknown IP family {0}")]
    UnknownIpFamily(u8),
    /// The first byte of a dht-rpc datagram is neither `0x03` (request) nor `0x13` (response).
    #[error("unknown datagram type/version byte {0:#04x}")]
    UnknownType(u8),
    /// A field holds a value that is out of its domain.
    #[error("invalid value: {0}")]
    Invalid(&'static str),
}

/// A decoding failure at a byte offset of the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} (at byte {offset})")]
pub struct DecodeError {
    /// What went wrong.
    pub kind: DecodeErrorKind,
    /// Offset in the input where the failing field starts.
    pub offset: usize,
}

/// A cursor over an input buffer with the compact-encoding primitives.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Starts reading at the beginning of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// The current offset into the input.
    pub fn offset(&self) -> usize {
        self.pos
    }

    /// The bytes not read yet.
    pub fn remaining(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or_default()
    }

    /// Whether every byte was read.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// An error of `kind` at offset `at`.
    pub fn error_at(&self, at: usize, kind: DecodeErrorKind) -> DecodeError {
        DecodeError { kind, offset: at }
    }

    /// Takes the next `n` bytes.
    pub fn bytes(&mut self, n: u64) -> Result<&'a [u8], DecodeError> {
        let available = self.buf.len().saturating_sub(self.pos);
        let truncated = DecodeError {
            kind: DecodeErrorKind::Truncated {
                needed: n,
                available,
            },
            offset: self.pos,
        };
        let Ok(n) = usize::try_from(n) else {
            return Err(truncated);
        };
        if n > available {
            return Err(truncated);
        }
        let out = self.buf.get(self.pos..self.pos + n).ok_or(truncated)?;
        self.pos += n;
        Ok(out)
    }

    /// `fixed(N)`: exactly N raw bytes.
    pub fn fixed<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N as u64)?);
        Ok(out)
    }

    /// `uint8`.
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.fixed::<1>()?[0])
    }

    /// `uint16` (little-endian).
    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.fixed()?))
    }

    /// `uint24` (little-endian).
    pub fn u24(&mut self) -> Result<u32, DecodeError> {
        let [a, b, c] = self.fixed()?;
        Ok(u32::from_le_bytes([a, b, c, 0]))
    }

    /// `uint32` (little-endian).
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.fixed()?))
    }

    /// `uint64` (little-endian); like JS, values above 2^53 - 1 are refused.
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        let at = self.pos;
        let n = u64::from_le_bytes(self.fixed()?);
        if n > MAX_SAFE_UINT {
            return Err(self.error_at(at, DecodeErrorKind::UintOverflow(n)));
        }
        Ok(n)
    }

    /// `uint`: the compact varint. Non-minimal forms are accepted, as in JS.
    pub fn uint(&mut self) -> Result<u64, DecodeError> {
        let at = self.pos;
        let r = match self.u8()? {
            a @ 0..=0xfc => Ok(u64::from(a)),
            0xfd => self.u16().map(u64::from),
            0xfe => self.u32().map(u64::from),
            0xff => self.u64(),
        };
        r.map_err(|e| DecodeError {
            offset: at,
            kind: e.kind,
        })
    }

    /// `int`: zig-zag over `uint`.
    pub fn int(&mut self) -> Result<i64, DecodeError> {
        let n = self.uint()?;
        // n <= 2^53 - 1, so both branches fit in i64.
        let half = (n >> 1) as i64;
        Ok(if n & 1 == 0 { half } else { -half - 1 })
    }

    /// `bool`: true only for the byte 1, as in JS.
    pub fn bool(&mut self) -> Result<bool, DecodeError> {
        Ok(self.u8()? == 1)
    }

    /// `buffer`: `uint` length + bytes.
    pub fn buffer(&mut self) -> Result<&'a [u8], DecodeError> {
        let at = self.pos;
        let len = self.uint()?;
        self.bytes(len).map_err(|e| DecodeError {
            offset: at,
            kind: e.kind,
        })
    }

    /// `string` / `utf8`: `uint` byte length + UTF-8. Invalid UTF-8 is an error.
    pub fn string(&mut self) -> Result<&'a str, DecodeError> {
        let at = self.pos;
        let b = self.buffer()?;
        std::str::from_utf8(b).map_err(|_| self.error_at(at, DecodeErrorKind::InvalidUtf8))
    }

    /// The `uint` count of an `array`, checked against [`MAX_ARRAY_LEN`] and against the bytes
    /// left, given the smallest encoded size of one element (so a forged count cannot make the
    /// caller reserve memory the input cannot fill).
    pub fn array_len(&mut self, min_elem_size: usize) -> Result<usize, DecodeError> {
        let at = self.pos;
        let count = self.uint()?;
        if count > MAX_ARRAY_LEN {
            return Err(self.error_at(
                at,
                DecodeErrorKind::ArrayTooLong {
                    count,
                    max: MAX_ARRAY_LEN,
                },
            ));
        }
        let available = self.buf.len().saturating_sub(self.pos);
        let needed = count.saturating_mul(min_elem_size as u64);
        if needed > available as u64 {
            return Err(self.error_at(self.pos, DecodeErrorKind::Truncated { needed, available }));
        }
        // count <= MAX_ARRAY_LEN, fits usize.
        Ok(count as usize)
    }

    /// `array(enc)` with a decoder for one element.
    pub fn array<T>(
        &mut self,
        min_elem_size: usize,
        mut elem: impl FnMut(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Vec<T>, DecodeError> {
        let n = self.array_len(min_elem_size)?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(elem(self)?);
        }
        Ok(out)
    }

    /// `ipv4Address` (6 bytes: 4 address bytes in dotted order, port as uint16 LE).
    pub fn ipv4_addr(&mut self) -> Result<SocketAddrV4, DecodeError> {
        let [a, b, c, d] = self.fixed()?;
        let port = self.u16()?;
        Ok(SocketAddrV4::new(Ipv4Addr::new(a, b, c, d), port))
    }

    /// `ipv6Address` (18 bytes: 16 address bytes, port as uint16 LE).
    pub fn ipv6_addr(&mut self) -> Result<SocketAddrV6, DecodeError> {
        let ip: [u8; 16] = self.fixed()?;
        let port = self.u16()?;
        Ok(SocketAddrV6::new(Ipv6Addr::from(ip), port, 0, 0))
    }

    /// An array of `ipv4Address`.
    pub fn ipv4_addr_array(&mut self) -> Result<Vec<SocketAddrV4>, DecodeError> {
        self.array(6, Self::ipv4_addr)
    }

    /// An array of `ipv6Address`.
    pub fn ipv6_addr_array(&mut self) -> Result<Vec<SocketAddrV6>, DecodeError> {
        self.array(18, Self::ipv6_addr)
    }
}

/// Writing the compact-encoding primitives onto a byte vector.
pub trait Writer {
    /// `uint`, always in its minimal form.
    fn put_uint(&mut self, n: u64);
    /// `uint16` LE.
    fn put_u16(&mut self, n: u16);
    /// `uint24` LE (the low 24 bits of `n`).
    fn put_u24(&mut self, n: u32);
    /// `uint32` LE.
    fn put_u32(&mut self, n: u32);
    /// `uint64` LE.
    fn put_u64(&mut self, n: u64);
    /// `int` (zig-zag).
    fn put_int(&mut self, n: i64);
    /// `bool`.
    fn put_bool(&mut self, b: bool);
    /// Raw bytes (`fixed(n)` / `raw`).
    fn put_bytes(&mut self, b: &[u8]);
    /// `buffer`: length + bytes.
    fn put_buffer(&mut self, b: &[u8]);
    /// `string`.
    fn put_string(&mut self, s: &str);
    /// `ipv4Address`.
    fn put_ipv4_addr(&mut self, a: &SocketAddrV4);
    /// `ipv6Address`.
    fn put_ipv6_addr(&mut self, a: &SocketAddrV6);
    /// `array(ipv4Address)`.
    fn put_ipv4_addr_array(&mut self, list: &[SocketAddrV4]);
    /// `array(ipv6Address)`.
    fn put_ipv6_addr_array(&mut self, list: &[SocketAddrV6]);
}

impl Writer for Vec<u8> {
    fn put_uint(&mut self, n: u64) {
        if n <= 0xfc {
            self.push(n as u8);
        } else if n <= 0xffff {
            self.push(0xfd);
            self.put_u16(n as u16);
        } else if n <= 0xffff_ffff {
            self.push(0xfe);
            self.put_u32(n as u32);
        } else {
            self.push(0xff);
            self.put_u64(n);
        }
    }
    fn put_u16(&mut self, n: u16) {
        self.extend_from_slice(&n.to_le_bytes());
    }
    fn put_u24(&mut self, n: u32) {
        self.extend_from_slice(&n.to_le_bytes()[..3]);
    }
    fn put_u32(&mut self, n: u32) {
        self.extend_from_slice(&n.to_le_bytes());
    }
    fn put_u64(&mut self, n: u64) {
        self.extend_from_slice(&n.to_le_bytes());
    }
    fn put_int(&mut self, n: i64) {
        let z = if n >= 0 {
            (n as u64) << 1
        } else {
            ((-(n + 1)) as u64) << 1 | 1
        };
        self.put_uint(z);
    }
    fn put_bool(&mut self, b: bool) {
        self.push(u8::from(b));
    }
    fn put_bytes(&mut self, b: &[u8]) {
        self.extend_from_slice(b);
    }
    fn put_buffer(&mut self, b: &[u8]) {
        self.put_uint(b.len() as u64);
        self.extend_from_slice(b);
    }
    fn put_string(&mut self, s: &str) {
        self.put_buffer(s.as_bytes());
    }
    fn put_ipv4_addr(&mut self, a: &SocketAddrV4) {
        self.extend_from_slice(&a.ip().octets());
        self.put_u16(a.port());
    }
    fn put_ipv6_addr(&mut self, a: &SocketAddrV6) {
        self.extend_from_slice(&a.ip().octets());
        self.put_u16(a.port());
    }
    fn put_ipv4_addr_array(&mut self, list: &[SocketAddrV4]) {
        self.put_uint(list.len() as u64);
        for a in list {
            self.put_ipv4_addr(a);
        }
    }
    fn put_ipv6_addr_array(&mut self, list: &[SocketAddrV6]) {
        self.put_uint(list.len() as u64);
        for a in list {
            self.put_ipv6_addr(a);
        }
    }
}

/// A wire type with a compact-encoding form.
pub trait Encode {
    /// Appends the encoding of `self` to `out`.
    fn encode(&self, out: &mut Vec<u8>);

    /// The encoding of `self` as a new vector.
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

/// A wire type that can be read back.
pub trait Decode: Sized {
    /// Reads one value from `r`.
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError>;

    /// Decodes a value from the start of `buf`. Like `c.decode()` in JS, bytes after the value
    /// are ignored.
    fn from_bytes(buf: &[u8]) -> Result<Self, DecodeError> {
        Self::decode(&mut Reader::new(buf))
    }
}

#[cfg(test)]
mod tests;
