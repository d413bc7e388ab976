//! Random tokens, their stored hashes, CSRF tokens and room codes.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Room codes avoid look-alike characters (0/o, 1/l/i) so they can be read aloud.
const ROOM_CODE_ALPHABET: &[u8] = b"23456789abcdefghjkmnpqrstuvwxyz";
/// 12 characters of a 31-letter alphabet: 59 bits.
const ROOM_CODE_LEN: usize = 12;

/// `bytes` random bytes from the OS-seeded CSPRNG, base64url without padding.
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill(buf.as_mut_slice());
    URL_SAFE_NO_PAD.encode(buf)
}

/// What the database stores in place of a session token.
pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// The CSRF token of a session: an HMAC of its cookie token under the server
/// key, so it needs no storage and cannot be forged without the key.
pub fn csrf_token(secret: &str, session_token: &str) -> String {
    URL_SAFE_NO_PAD.encode(hmac_sha256(secret.as_bytes(), &[b"csrf:", session_token.as_bytes()]))
}

#[expect(clippy::expect_used, reason = "HMAC accepts keys of any length")]
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// `len` random characters that are easy to read and type.
pub fn readable_code(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ROOM_CODE_ALPHABET[rng.random_range(0..ROOM_CODE_ALPHABET.len())] as char)
        .collect()
}

/// True for a character [`readable_code`] may produce.
pub fn is_readable(byte: u8) -> bool {
    ROOM_CODE_ALPHABET.contains(&byte)
}

/// A fresh room code such as `k7mq-x3tn-9wbe`.
pub fn room_code() -> String {
    let code = readable_code(ROOM_CODE_LEN);
    let groups: Vec<&str> = (0..ROOM_CODE_LEN).step_by(4).map(|i| &code[i..i + 4]).collect();
    groups.join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_carry_at_least_128_bits() {
        let token = random_token(32);
        assert_eq!(URL_SAFE_NO_PAD.decode(&token).unwrap().len(), 32);
        assert_ne!(token, random_token(32));
    }

    #[test]
    fn csrf_depends_on_key_and_session() {
        let a = csrf_token("k1", "s1");
        assert_eq!(a, csrf_token("k1", "s1"));
        assert_ne!(a, csrf_token("k2", "s1"));
        assert_ne!(a, csrf_token("k1", "s2"));
        assert!(constant_time_eq(&a, &csrf_token("k1", "s1")));
    }

    #[test]
    fn room_codes_are_unambiguous_and_long_enough() {
        let code = room_code();
        assert_eq!(code.len(), 14);
        assert!(code
            .chars()
            .all(|c| c == '-' || ROOM_CODE_ALPHABET.contains(&(c as u8))));
        let bits = (ROOM_CODE_ALPHABET.len() as f64).log2() * ROOM_CODE_LEN as f64;
        assert!(bits >= 50.0, "{bits}");
    }
}
