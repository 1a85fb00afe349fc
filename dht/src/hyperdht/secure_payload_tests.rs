use std::net::{Ipv4Addr, SocketAddrV4};

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use super::*;

fn payload() -> HolepunchPayload {
    HolepunchPayload {
        error: 0,
        firewall: 2,
        round: 3,
        connected: false,
        punching: true,
        addresses: Some(vec![SocketAddrV4::new(Ipv4Addr::new(5, 6, 7, 8), 3000)]),
        remote_address: Some(SocketAddrV4::new(Ipv4Addr::new(1, 2, 3, 4), 5000)),
        token: Some([7; 32]),
        remote_token: None,
    }
}

#[test]
fn both_sides_open_what_either_seals() {
    let mut rng = ChaCha20Rng::from_seed([9; 32]);
    let a = SecurePayload::generate(&[1; 32], &mut rng);
    let b = SecurePayload::generate(&[1; 32], &mut rng);
    let sealed = a.encrypt(&payload(), &mut rng);
    assert_eq!(
        sealed.len(),
        NONCE_LEN + TAG_LEN + payload().to_bytes().len()
    );
    assert_eq!(b.decrypt(&sealed), Ok(payload()));
    // a fresh nonce per message
    let again = a.encrypt(&payload(), &mut rng);
    assert_ne!(sealed.get(..NONCE_LEN), again.get(..NONCE_LEN));
    assert_eq!(a.decrypt(&again), Ok(payload()));
}

#[test]
fn another_key_or_any_flipped_bit_is_refused() {
    let a = SecurePayload::new(&[1; 32], &[2; 32]);
    let other = SecurePayload::new(&[3; 32], &[2; 32]);
    let sealed = a.encrypt_with_nonce(&payload(), &[4; NONCE_LEN]);
    assert_eq!(
        other.decrypt(&sealed),
        Err(SecurePayloadError::Authentication)
    );
    for i in 0..sealed.len() {
        let mut x = sealed.clone();
        x[i] ^= 0x80;
        assert_eq!(
            a.decrypt(&x),
            Err(SecurePayloadError::Authentication),
            "byte {i}"
        );
    }
}

#[test]
fn short_inputs_are_refused_before_the_cipher() {
    let a = SecurePayload::new(&[1; 32], &[2; 32]);
    for len in [0, 1, 24, 39, 40] {
        assert_eq!(
            a.decrypt(&vec![0; len]),
            Err(SecurePayloadError::TooShort { len })
        );
    }
}

#[test]
fn tokens_depend_on_host_and_local_secret_only() {
    let a = SecurePayload::new(&[1; 32], &[2; 32]);
    let b = SecurePayload::new(&[9; 32], &[2; 32]);
    let c = SecurePayload::new(&[1; 32], &[3; 32]);
    let h = Ipv4Addr::new(1, 2, 3, 4);
    assert_eq!(
        a.token(h),
        b.token(h),
        "the shared key does not enter the token"
    );
    assert_ne!(a.token(h), c.token(h));
    assert_ne!(a.token(h), a.token(Ipv4Addr::new(1, 2, 3, 5)));
}
