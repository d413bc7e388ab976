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

/// A display or room name: 1 to 64 characters, none of them a control or
/// invisible formatting character.
pub fn display_name(raw: &str, what: &str) -> Result<String, ApiError> {
    let name = raw.trim();
    let len = name.chars().count();
    if len == 0 || len > NAME_MAX_CHARS || name.chars().any(|c| c.is_control() || is_invisible_format(c)) {
        return Err(ApiError::bad_request(format!(
            "a {what} has 1 to {NAME_MAX_CHARS} characters and no control, direction or invisible characters"
        )));
    }
    Ok(name.to_owned())
}

/// Characters that change how a name is shown without being seen: Unicode's
/// format characters (general category Cf: direction overrides and isolates,
/// zero-width spaces and joiners, the byte-order mark, invisible operators,
/// tags), the line and paragraph separators, and the letters that render as
/// nothing (Hangul fillers, the combining grapheme joiner, Khmer's invisible
/// vowels, Mongolian free variation selectors). With them, "nimda" written
/// right-to-left appears as "admin", and "ad\u{200B}min" looks like "admin".
fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{0600}'..='\u{0605}'
            | '\u{061C}'
            | '\u{06DD}'
            | '\u{070F}'
            | '\u{0890}'..='\u{0891}'
            | '\u{08E2}'
            | '\u{115F}'..='\u{1160}'
            | '\u{17B4}'..='\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{2028}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{110BD}'
            | '\u{110CD}'
            | '\u{13430}'..='\u{1343F}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0001}'
            | '\u{E0020}'..='\u{E007F}'
    )
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
    fn names_refuse_direction_and_invisible_characters() {
        assert_eq!(display_name(" Zoë 🎧 ", "name").unwrap(), "Zoë 🎧");
        assert!(display_name("François Müller-Øster", "name").is_ok());
        assert!(
            display_name("שלום עולם", "name").is_ok(),
            "right-to-left letters are fine"
        );
        for bad in [
            "nimda\u{202E}",
            "\u{202E}nimda",
            "\u{2066}admin\u{2069}",
            "ad\u{200B}min",
            "ad\u{200D}min",
            "admin\u{FEFF}",
            "ad\u{2060}min",
            "ad\u{00AD}min",
            "\u{3164}",
            "a\u{2028}b",
            "tag\u{E0041}",
            "bell\u{7}",
        ] {
            assert!(display_name(bad, "name").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn guest_usernames_fit_the_username_rules() {
        let name = guest_username("Ünïcode Ñame <b>", "k3x9");
        assert!(username(&name).is_ok(), "{name}");
        assert_eq!(guest_username("!!!", "k3x9"), "guest-k3x9");
        assert!(username(&guest_username(&"long".repeat(40), "abcdef")).is_ok());
    }
}
