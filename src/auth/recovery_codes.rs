//! Two-factor recovery codes: ten single-use codes handed out once, when
//! two-factor sign-in is turned on (or the codes are renewed), each good for
//! one sign-in in place of an authenticator code.
//!
//! A code is 12 characters of the room-code alphabet (about 59 random bits),
//! shown as `xxxx-xxxx-xxxx`. The database keeps only SHA-256 of the user id
//! and the normalised code. A fast hash is enough here, unlike for
//! passwords: a code is not chosen by a person but drawn from the CSPRNG, so
//! someone holding a copy of the database must still try about 2^58 hashes
//! per code, and the user id in the hash stops one computation from serving
//! every account. A fast, unkeyed hash also lets a sign-in look a code up by
//! its hash (one indexed read, not ten bcrypt checks), and keeps the codes
//! working when SECRET_KEY changes, which is when the sealed authenticator
//! secret stops opening and the codes are the way back in.

use sha2::{Digest, Sha256};

use super::tokens::{is_readable, readable_code};
use crate::ids::UserId;

/// How many codes a set holds.
pub const CODES_PER_SET: usize = 10;
const CODE_CHARS: usize = 12;
const GROUP_CHARS: usize = 4;

/// A fresh set of codes, formatted to be read and typed.
pub fn new_set() -> Vec<String> {
    (0..CODES_PER_SET)
        .map(|_| format_code(&readable_code(CODE_CHARS)))
        .collect()
}

fn format_code(raw: &str) -> String {
    let groups: Vec<&str> = (0..raw.len())
        .step_by(GROUP_CHARS)
        .map(|i| &raw[i..i + GROUP_CHARS])
        .collect();
    groups.join("-")
}

/// True when `given` is meant as an authenticator code (six digits) rather
/// than a recovery code: the login's `totp` field takes either.
pub fn is_authenticator_code(given: &str) -> bool {
    let given = given.trim();
    given.len() == 6 && given.bytes().all(|b| b.is_ascii_digit())
}

/// A code as typed reduced to its characters: case, spaces and dashes do not
/// matter. `None` when it cannot be a recovery code at all.
pub fn normalise(given: &str) -> Option<String> {
    let code: String = given
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let readable = code.len() == CODE_CHARS && code.bytes().all(is_readable);
    readable.then_some(code)
}

/// What the database stores for `code` of `user`: SHA-256 over both.
pub fn hash(user: UserId, normalised: &str) -> Vec<u8> {
    let mut digest = Sha256::new();
    digest.update(b"switchboard recovery code v1:");
    digest.update(user.0.to_be_bytes());
    digest.update(normalised.as_bytes());
    digest.finalize().to_vec()
}

/// The stored form of every code of a set.
pub fn hashes(user: UserId, codes: &[String]) -> Vec<Vec<u8>> {
    codes
        .iter()
        .filter_map(|code| normalise(code))
        .map(|code| hash(user, &code))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_is_ten_distinct_readable_codes() {
        let set = new_set();
        assert_eq!(set.len(), CODES_PER_SET);
        let mut unique = set.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), CODES_PER_SET);
        for code in &set {
            assert_eq!(code.len(), 14, "{code}");
            assert_eq!(code.matches('-').count(), 2, "{code}");
            assert!(normalise(code).is_some(), "{code}");
        }
    }

    #[test]
    fn codes_match_whatever_their_case_spaces_and_dashes() {
        let user = UserId(7);
        let code = "k7mq-x3tn-9wbe";
        let stored = hash(user, &normalise(code).unwrap());
        for typed in ["k7mqx3tn9wbe", "K7MQ-X3TN-9WBE", " k7mq x3tn 9wbe ", "k7mq-x3tn9wbe"] {
            assert_eq!(hash(user, &normalise(typed).unwrap()), stored, "{typed}");
        }
        assert_ne!(hash(UserId(8), &normalise(code).unwrap()), stored, "bound to the user");
        assert_eq!(hashes(user, &[code.to_owned()]), vec![stored]);
    }

    #[test]
    fn other_text_is_no_recovery_code() {
        for bad in [
            "",
            "123456",
            "k7mq-x3tn-9wb",
            "k7mq-x3tn-9wbee",
            "k7mq-x3tn-9wb0",
            "k7mq-x3tn-9wbé",
        ] {
            assert_eq!(normalise(bad), None, "{bad}");
        }
        assert!(is_authenticator_code(" 123456 "));
        assert!(!is_authenticator_code("k7mq-x3tn-9wbe"));
        assert!(!is_authenticator_code("12345"));
    }
}
