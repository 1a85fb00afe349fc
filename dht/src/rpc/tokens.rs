//! Round-trip tokens (`dht-rpc/lib/io.js` `token`, `_drain`).
//!
//! Contract: no I/O, no clock; the secrets come from the caller's RNG and [`Tokens::drain`] is
//! called by the node every 750 ms (`_drain`). Every [`ROTATE_EVERY`] drains (7.5 s) the secrets
//! swap places and the new second secret becomes `H(old first secret)`, so a token lives
//! 7.5-15 s. Tokens are `BLAKE2b-256(key = secret, data = ip string)`, bound to the IP only.

use std::net::Ipv4Addr;

use crate::crypto::{hash, keyed_hash};

/// Drains between secret rotations (`_rotateSecrets = 10`).
pub const ROTATE_EVERY: u32 = 10;

/// The two token secrets.
#[derive(Clone)]
pub struct Tokens {
    secrets: [[u8; 32]; 2],
    rotate_in: u32,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("rotate_in", &self.rotate_in)
            .finish_non_exhaustive()
    }
}

impl Tokens {
    /// Tokens from two random secrets.
    pub fn new(secret0: [u8; 32], secret1: [u8; 32]) -> Self {
        Self {
            secrets: [secret0, secret1],
            rotate_in: ROTATE_EVERY,
        }
    }

    fn token_with(&self, ip: Ipv4Addr, i: usize) -> [u8; 32] {
        let key = if i == 0 {
            &self.secrets[0]
        } else {
            &self.secrets[1]
        };
        keyed_hash(key, ip.to_string().as_bytes())
    }

    /// The token handed out in replies to `ip` (`token(addr, 1)`).
    pub fn token(&self, ip: Ipv4Addr) -> [u8; 32] {
        self.token_with(ip, 1)
    }

    /// Whether `token` is one of the two tokens currently valid for `ip`.
    pub fn is_valid(&self, ip: Ipv4Addr, token: &[u8; 32]) -> bool {
        ct_eq(&self.token_with(ip, 1), token) || ct_eq(&self.token_with(ip, 0), token)
    }

    /// One 750 ms drain; rotates the secrets every [`ROTATE_EVERY`] calls.
    pub fn drain(&mut self) {
        self.rotate_in -= 1;
        if self.rotate_in == 0 {
            self.rotate_in = ROTATE_EVERY;
            self.secrets.swap(0, 1);
            self.secrets[1] = hash(&self.secrets[1]);
        }
    }
}

fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_lives_between_one_and_two_rotations() {
        let ip = Ipv4Addr::new(127, 0, 0, 1);
        let mut t = Tokens::new([1; 32], [2; 32]);
        let tok = t.token(ip);
        assert!(t.is_valid(ip, &tok));
        assert!(!t.is_valid(Ipv4Addr::new(127, 0, 0, 2), &tok));
        for _ in 0..ROTATE_EVERY {
            t.drain();
        }
        assert!(t.is_valid(ip, &tok), "still valid after one rotation");
        for _ in 0..ROTATE_EVERY {
            t.drain();
        }
        assert!(!t.is_valid(ip, &tok), "expired after two rotations");
    }

    #[test]
    fn token_is_keyed_hash_of_ip_string() {
        let t = Tokens::new([1; 32], [2; 32]);
        assert_eq!(
            t.token(Ipv4Addr::LOCALHOST),
            keyed_hash(&[2; 32], b"127.0.0.1")
        );
    }
}
