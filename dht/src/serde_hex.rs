//! serde support for byte fields as lowercase hex strings (the form of the JSON test vectors).

use serde::{Deserialize, Deserializer, Serializer, de::Error};

/// A byte container that round-trips through a hex string.
pub trait HexBytes: Sized {
    /// The bytes to write, or `None` for JSON null.
    fn as_hex_bytes(&self) -> Option<&[u8]>;
    /// Builds the value from decoded bytes (`None` for JSON null).
    fn from_hex_bytes(b: Option<Vec<u8>>) -> Result<Self, String>;
}

impl HexBytes for Vec<u8> {
    fn as_hex_bytes(&self) -> Option<&[u8]> {
        Some(self)
    }
    fn from_hex_bytes(b: Option<Vec<u8>>) -> Result<Self, String> {
        b.ok_or_else(|| "expected a hex string, found null".to_string())
    }
}

impl<const N: usize> HexBytes for [u8; N] {
    fn as_hex_bytes(&self) -> Option<&[u8]> {
        Some(self)
    }
    fn from_hex_bytes(b: Option<Vec<u8>>) -> Result<Self, String> {
        let b = b.ok_or_else(|| "expected a hex string, found null".to_string())?;
        let len = b.len();
        b.try_into()
            .map_err(|_| format!("expected {N} bytes, found {len}"))
    }
}

impl<T: HexBytes> HexBytes for Option<T> {
    fn as_hex_bytes(&self) -> Option<&[u8]> {
        self.as_ref().and_then(T::as_hex_bytes)
    }
    fn from_hex_bytes(b: Option<Vec<u8>>) -> Result<Self, String> {
        match b {
            None => Ok(None),
            Some(b) => T::from_hex_bytes(Some(b)).map(Some),
        }
    }
}

fn to_hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        for nibble in [x >> 4, x & 15] {
            s.extend(char::from_digit(u32::from(nibble), 16));
        }
    }
    s
}

fn from_hex(s: &str) -> Result<Vec<u8>, String> {
    let s = s.as_bytes();
    if !s.len().is_multiple_of(2) {
        return Err("odd-length hex string".into());
    }
    let nib = |c: u8| -> Result<u8, String> {
        match c {
            b'0'..=b'9' => Ok(c - b'0'),
            b'a'..=b'f' => Ok(c - b'a' + 10),
            b'A'..=b'F' => Ok(c - b'A' + 10),
            _ => Err(format!("bad hex digit {:?}", char::from(c))),
        }
    };
    s.chunks(2)
        .map(|p| match p {
            [h, l] => Ok(nib(*h)? << 4 | nib(*l)?),
            _ => Err("odd-length hex string".into()),
        })
        .collect()
}

/// `#[serde(with = "crate::serde_hex")]` serializer.
pub fn serialize<T: HexBytes, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    match v.as_hex_bytes() {
        Some(b) => s.serialize_str(&to_hex(b)),
        None => s.serialize_none(),
    }
}

/// `#[serde(with = "crate::serde_hex")]` deserializer.
pub fn deserialize<'de, T: HexBytes, D: Deserializer<'de>>(d: D) -> Result<T, D::Error> {
    let s: Option<String> = Option::deserialize(d)?;
    let b = s
        .map(|s| from_hex(&s))
        .transpose()
        .map_err(D::Error::custom)?;
    T::from_hex_bytes(b).map_err(D::Error::custom)
}
