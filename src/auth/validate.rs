//! Rules for what people type: usernames, emails, passwords, names.

use crate::error::ApiError;

pub const PASSWORD_MIN_CHARS: usize = 8;
pub const PASSWORD_MAX_CHARS: usize = 128;
const NAME_MAX_CHARS: usize = 64;
const EMAIL_MAX_BYTES: usize = 254;

/// 3 to 32 characters of `a-z 0-9 _ . -` (either case; uniqueness ignores case).
pub fn username(raw: &str) -> Result<String, ApiError> {
    let name = raw.trim();
    let len = name.chars().count();
    if !(3..=32).contains(&len) {
        return Err(ApiError::bad_request("a username has 3 to 32 characters"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    {
        return Err(ApiError::bad_request(
            "a username may use only letters a-z, digits, and _ . -",
        ));
    }
    Ok(name.to_owned())
}

/// A plausible address (one `@`, a dotted domain, no spaces), normalised.
pub fn email(raw: &str) -> Result<String, ApiError> {
    let email = crate::config::normalise_email(raw);
    let plausible = email.len() <= EMAIL_MAX_BYTES
        && !email
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '"'))
        && matches!(email.split_once('@'), Some((local, domain))
            if !local.is_empty() && !domain.contains('@') && domain.contains('.')
               && !domain.starts_with('.') && !domain.ends_with('.'));
    if !plausible {
        return Err(ApiError::bad_request("that is not a valid email address"));
    }
    Ok(email)
}

pub fn password(raw: &str) -> Result<(), ApiError> {
    let len = raw.chars().count();
    if !(PASSWORD_MIN_CHARS..=PASSWORD_MAX_CHARS).contains(&len) {
        return Err(ApiError::bad_request(format!(
            "a password has {PASSWORD_MIN_CHARS} to {PASSWORD_MAX_CHARS} characters"
        )));
    }
    Ok(())
}

/// A display or room name: 1 to 64 characters, no control characters.
pub fn display_name(raw: &str, what: &str) -> Result<String, ApiError> {
    let name = raw.trim();
    let len = name.chars().count();
    if len == 0 || len > NAME_MAX_CHARS || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!(
            "a {what} has 1 to {NAME_MAX_CHARS} characters and no control characters"
        )));
    }
    Ok(name.to_owned())
}

/// A role or permission name: 1 to 64 characters of `a-z 0-9 _ . -`.
pub fn grant_name(raw: &str) -> Result<String, ApiError> {
    let name = raw.trim().to_ascii_lowercase();
    let valid = (1..=NAME_MAX_CHARS).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !valid {
        return Err(ApiError::bad_request(
            "a role or permission name has 1 to 64 characters of a-z, 0-9, _ . -",
        ));
    }
    Ok(name)
}

/// A guest's username: their name reduced to the username alphabet, with a
/// random suffix that keeps it unique.
pub fn guest_username(name: &str, suffix: &str) -> String {
    let slug: String = name
        .chars()
        .filter_map(|c| match c {
            'a'..='z' | '0'..='9' | '_' | '.' | '-' => Some(c),
            'A'..='Z' => Some(c.to_ascii_lowercase()),
            ' ' => Some('-'),
            _ => None,
        })
        .take(16)
        .collect();
    let slug = slug.trim_matches(['-', '.', '_']);
    if slug.is_empty() {
        format!("guest-{suffix}")
    } else {
        format!("guest-{slug}-{suffix}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert_eq!(username(" Ann_1.x-y ").unwrap(), "Ann_1.x-y");
        for bad in ["ab", &"a".repeat(33), "ann smith", "ann<script>", "élodie", "a'; --"] {
            assert!(username(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn emails() {
        assert_eq!(email(" Ann@Example.ORG ").unwrap(), "ann@example.org");
        for bad in ["", "ann", "ann@", "@x.org", "a@b", "a b@x.org", "a@x.org.", "<a@x.org>"] {
            assert!(email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_count_characters_not_bytes() {
        assert!(password("1234567").is_err());
        assert!(password("12345678").is_ok());
        assert!(password(&"é".repeat(128)).is_ok());
        assert!(password(&"x".repeat(129)).is_err());
    }

    #[test]
    fn guest_usernames_fit_the_username_rules() {
        let name = guest_username("Ünïcode Ñame <b>", "k3x9");
        assert!(username(&name).is_ok(), "{name}");
        assert_eq!(guest_username("!!!", "k3x9"), "guest-k3x9");
        assert!(username(&guest_username(&"long".repeat(40), "abcdef")).is_ok());
    }
}
