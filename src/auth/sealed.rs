//! Authenticated encryption under keys derived from SECRET_KEY: what the
//! server hands out or stores but must keep secret and unforgeable (the OIDC
//! sign-in cookie, TOTP secrets at rest). XChaCha20-Poly1305 with a random
//! 24-byte nonce per value; each purpose has its own key, so a value sealed
//! for one purpose never opens as another.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::Rng;

use super::tokens::hmac_sha256;
use crate::config::Secret;

const NONCE_BYTES: usize = 24;
/// Separates these keys from every other use of SECRET_KEY (CSRF tokens).
const KEY_LABEL: &[u8] = b"switchboard sealing key v1:";

pub struct SealingKey {
    cipher: XChaCha20Poly1305,
    purpose: &'static str,
}

impl SealingKey {
    /// The key for `purpose`: HMAC-SHA256 of the label under SECRET_KEY.
    pub fn derive(secret: &Secret, purpose: &'static str) -> Self {
        let key = hmac_sha256(secret.expose().as_bytes(), &[KEY_LABEL, purpose.as_bytes()]);
        Self {
            cipher: XChaCha20Poly1305::new(key.as_slice().into()),
            purpose,
        }
    }

    /// `plaintext` encrypted and authenticated: base64url of nonce and ciphertext.
    #[expect(
        clippy::expect_used,
        reason = "XChaCha20-Poly1305 refuses only messages of 256 GiB or more"
    )]
    pub fn seal(&self, plaintext: &[u8]) -> String {
        let mut nonce = [0u8; NONCE_BYTES];
        rand::rng().fill(&mut nonce);
        let payload = Payload {
            msg: plaintext,
            aad: self.purpose.as_bytes(),
        };
        let sealed = self
            .cipher
            .encrypt(XNonce::from_slice(&nonce), payload)
            .expect("a message of reasonable size");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        URL_SAFE_NO_PAD.encode(out)
    }

    /// The plaintext, or `None` when `sealed` was not made by this key for
    /// this purpose (tampered, truncated, another key).
    pub fn open(&self, sealed: &str) -> Option<Vec<u8>> {
        let bytes = URL_SAFE_NO_PAD.decode(sealed).ok()?;
        if bytes.len() < NONCE_BYTES {
            return None;
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_BYTES);
        let payload = Payload {
            msg: ciphertext,
            aad: self.purpose.as_bytes(),
        };
        self.cipher.decrypt(XNonce::from_slice(nonce), payload).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(secret: &str, purpose: &'static str) -> SealingKey {
        SealingKey::derive(&Secret::new(secret), purpose)
    }

    #[test]
    fn sealed_values_open_with_the_same_key_only() {
        let k = key("s1", "a");
        let sealed = k.seal(b"hello");
        assert_eq!(k.open(&sealed).unwrap(), b"hello");
        assert_ne!(sealed, k.seal(b"hello"), "a fresh nonce each time");
        assert!(!sealed.contains("hello"));
        assert!(key("s2", "a").open(&sealed).is_none(), "another secret");
        assert!(key("s1", "b").open(&sealed).is_none(), "another purpose");
    }

    #[test]
    fn tampered_values_do_not_open() {
        let k = key("s1", "a");
        let sealed = k.seal(b"hello");
        let mut bytes = URL_SAFE_NO_PAD.decode(&sealed).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert!(k.open(&URL_SAFE_NO_PAD.encode(&bytes)).is_none());
        assert!(k.open(&sealed[..sealed.len() - 4]).is_none());
        assert!(k.open("").is_none());
        assert!(k.open("not base64 !").is_none());
    }
}
