//! Time-based one-time passwords (RFC 6238: HMAC-SHA1, 30-second steps,
//! 6 digits), the kind authenticator apps make. Secrets travel as base32 and
//! are stored sealed under a key derived from SECRET_KEY.

use hmac::{Hmac, Mac};
use rand::Rng;
use sha1::Sha1;

use super::sealed::SealingKey;

/// The sealing key's purpose label for secrets at rest.
pub const SEALING_PURPOSE: &str = "totp-secret";
/// Marks a stored secret as sealed (version 1 of the format).
pub const SEALED_PREFIX: &str = "enc1:";

const STEP_SECONDS: i64 = 30;
const DIGITS: u32 = 6;
/// Codes from one step before or after now are accepted (clock drift).
const SKEW_STEPS: i64 = 1;
const SECRET_BYTES: usize = 20;
/// The QR code's drawn size, at least, in SVG pixels.
const QR_MIN_PIXELS: u32 = 240;
const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// A fresh secret, base32-encoded.
pub fn new_secret() -> String {
    let mut bytes = [0u8; SECRET_BYTES];
    rand::rng().fill(&mut bytes);
    base32_encode(&bytes)
}

/// The `otpauth://` URL that authenticator apps import.
pub fn otpauth_url(issuer: &str, account: &str, secret: &str) -> String {
    let label = url::form_urlencoded::byte_serialize(format!("{issuer}:{account}").as_bytes()).collect::<String>();
    let issuer = url::form_urlencoded::byte_serialize(issuer.as_bytes()).collect::<String>();
    format!(
        "otpauth://totp/{label}?secret={secret}&issuer={issuer}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}"
    )
}

/// `url` as a QR code, drawn as SVG (dark modules on white, with the quiet
/// zone scanners need), for an authenticator app to scan off the screen.
pub fn qr_svg(url: &str) -> Result<String, qrcode::types::QrError> {
    let code = qrcode::QrCode::new(url.as_bytes())?;
    Ok(code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(QR_MIN_PIXELS, QR_MIN_PIXELS)
        .build())
}

/// The time step `code` proves, if it matches one within the allowed skew
/// and comes after `last_step` (so no code works twice).
pub fn verify(secret: &str, code: &str, unix_seconds: i64, last_step: Option<i64>) -> Option<i64> {
    let code = code.trim();
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let key = base32_decode(secret)?;
    let now = unix_seconds.div_euclid(STEP_SECONDS);
    (now - SKEW_STEPS..=now + SKEW_STEPS)
        .filter(|step| last_step.is_none_or(|last| *step > last))
        .find(|step| format!("{:0width$}", code_at(&key, *step as u64), width = DIGITS as usize) == code)
}

/// The code for one time step (RFC 4226 dynamic truncation).
#[expect(clippy::expect_used, reason = "HMAC accepts keys of any length")]
pub fn code_at(key: &[u8], step: u64) -> u32 {
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(key).expect("any key length");
    mac.update(&step.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = (digest[19] & 0x0f) as usize;
    let value = u32::from_be_bytes([
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]);
    value % 10u32.pow(DIGITS)
}

/// The code for the current time: for tests and tools.
pub fn current_code(secret: &str, unix_seconds: i64) -> Option<String> {
    let key = base32_decode(secret)?;
    let step = unix_seconds.div_euclid(STEP_SECONDS) as u64;
    Some(format!("{:0width$}", code_at(&key, step), width = DIGITS as usize))
}

/// A secret as the database stores it.
pub fn seal_secret(key: &SealingKey, secret: &str) -> String {
    format!("{SEALED_PREFIX}{}", key.seal(secret.as_bytes()))
}

/// A stored secret in clear; `None` when it was not sealed with this key
/// (SECRET_KEY changed) or was altered.
pub fn open_secret(key: &SealingKey, stored: &str) -> Option<String> {
    let sealed = stored.strip_prefix(SEALED_PREFIX)?;
    String::from_utf8(key.open(sealed)?).ok()
}

fn base32_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for byte in bytes {
        buffer = (buffer << 8) | u32::from(*byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(BASE32[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(BASE32[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in text.trim_end_matches('=').bytes() {
        let value = BASE32.iter().position(|b| *b == c.to_ascii_uppercase())? as u32;
        buffer = (buffer << 5) | value;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1 key "12345678901234567890" (last 6 of the 8 digits).
    #[test]
    fn rfc_6238_vectors() {
        let key = b"12345678901234567890";
        for (time, expected) in [
            (59u64, 287_082),
            (1_111_111_109, 81_804),
            (1_234_567_890, 5_924),
            (2_000_000_000, 279_037),
        ] {
            assert_eq!(code_at(key, time / 30), expected, "t={time}");
        }
    }

    #[test]
    fn base32_round_trips() {
        assert_eq!(
            base32_encode(b"12345678901234567890"),
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
        );
        let secret = new_secret();
        assert_eq!(base32_decode(&secret).unwrap().len(), SECRET_BYTES);
        assert!(base32_decode("not base32!").is_none());
    }

    #[test]
    fn a_code_works_once_and_within_the_skew() {
        let secret = base32_encode(b"12345678901234567890");
        let now = 1_111_111_109;
        let code = current_code(&secret, now).unwrap();
        let step = verify(&secret, &code, now, None).unwrap();
        assert_eq!(verify(&secret, &code, now, Some(step)), None, "no replay");
        assert!(verify(&secret, &code, now + 30, None).is_some(), "one step of drift");
        assert!(verify(&secret, &code, now + 120, None).is_none());
        assert!(verify(&secret, "12345", now, None).is_none());
        assert!(verify(&secret, "abcdef", now, None).is_none());
    }

    #[test]
    fn stored_secrets_are_sealed() {
        let key = SealingKey::derive(&crate::config::Secret::new("k"), SEALING_PURPOSE);
        let secret = new_secret();
        let stored = seal_secret(&key, &secret);
        assert!(stored.starts_with(SEALED_PREFIX));
        assert!(!stored.contains(&secret));
        assert_eq!(open_secret(&key, &stored).unwrap(), secret);
        assert!(
            open_secret(&key, &secret).is_none(),
            "a plain secret is not taken as sealed"
        );
        let other = SealingKey::derive(&crate::config::Secret::new("other"), SEALING_PURPOSE);
        assert!(open_secret(&other, &stored).is_none());
    }

    #[test]
    fn the_qr_code_is_an_svg_image() {
        let svg = qr_svg(&otpauth_url("Switchboard", "ann", &new_secret())).unwrap();
        assert!(svg.starts_with("<?xml"), "{svg}");
        assert!(svg.contains("<svg") && svg.ends_with("</svg>"));
        assert!(!svg.contains("script"));
    }

    #[test]
    fn the_otpauth_url_names_issuer_and_account() {
        let url = otpauth_url("Switchboard", "ann", "ABC");
        assert!(url.starts_with("otpauth://totp/Switchboard%3Aann?secret=ABC&issuer=Switchboard"));
    }
}
