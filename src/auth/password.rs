//! Password hashing. bcrypt reads at most 72 bytes, so a longer password is
//! first reduced to its SHA-256 (base64, 44 bytes): every byte counts and
//! nothing is silently truncated. Call these off the actix workers.

use std::borrow::Cow;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha2::{Digest, Sha256};

/// bcrypt's input limit, counting its terminating NUL.
const BCRYPT_MAX_BYTES: usize = 72;

fn bcrypt_input(password: &str) -> Cow<'_, [u8]> {
    if password.len() < BCRYPT_MAX_BYTES {
        Cow::Borrowed(password.as_bytes())
    } else {
        Cow::Owned(STANDARD.encode(Sha256::digest(password.as_bytes())).into_bytes())
    }
}

pub fn hash(password: &str, cost: u32) -> Result<String, bcrypt::BcryptError> {
    bcrypt::non_truncating_hash(bcrypt_input(password), cost)
}

pub fn verify(password: &str, hash: &str) -> bool {
    bcrypt::non_truncating_verify(bcrypt_input(password), hash).unwrap_or(false)
}

/// Spends the time of one verification (a hash at the same cost takes as
/// long), so that a login for a missing account answers no faster.
pub fn spend_verify_time(password: &str, cost: u32) {
    let _ = hash(password, cost);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_passwords_round_trip() {
        let h = hash("correct horse", 4).unwrap();
        assert!(h.starts_with("$2b$04$"));
        assert!(verify("correct horse", &h));
        assert!(!verify("correct horsf", &h));
    }

    #[test]
    fn long_passwords_are_not_truncated() {
        let base = "x".repeat(100);
        let h = hash(&format!("{base}a"), 4).unwrap();
        assert!(verify(&format!("{base}a"), &h));
        assert!(!verify(&format!("{base}b"), &h), "bytes past 72 must count");
    }

    #[test]
    fn multibyte_passwords_near_the_limit() {
        let pw = "é".repeat(40); // 80 bytes
        let h = hash(&pw, 4).unwrap();
        assert!(verify(&pw, &h));
        assert!(!verify(&"é".repeat(39), &h));
    }
}
