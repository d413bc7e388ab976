//! What each mail says, in plain text and in simple HTML. The instance's
//! name is in every subject. Everything put into the HTML is escaped.

use chrono::{DateTime, Utc};

use super::{Body, Outgoing};

/// Writes mails for one instance (its name, its public address).
pub struct Composer<'a> {
    instance: &'a str,
    base: &'a str,
}

impl<'a> Composer<'a> {
    pub fn new(instance: &'a str, base: &'a str) -> Self {
        Self { instance, base }
    }

    fn subject(&self, what: &str) -> String {
        format!("{what} · {}", self.instance)
    }

    /// A mail of paragraphs, and at most one button-like link.
    fn mail(
        &self,
        kind: &'static str,
        to: &str,
        what: &str,
        paragraphs: &[String],
        link: Option<(&str, &str)>,
    ) -> Outgoing {
        let mut text = String::from("Hello,\n\n");
        let mut html = String::from(
            "<!doctype html><html><body style=\"font-family: sans-serif; line-height: 1.5\"><p>Hello,</p>",
        );
        for paragraph in paragraphs {
            text.push_str(paragraph);
            text.push_str("\n\n");
            html.push_str(&format!("<p>{}</p>", escape_html(paragraph)));
        }
        if let Some((label, url)) = link {
            text.push_str(&format!("{label}:\n{url}\n\n"));
            html.push_str(&format!(
                "<p><a href=\"{url}\">{label}</a></p><p style=\"font-size: smaller\">Or copy this address into your browser: {url_text}</p>",
                url = escape_html(url),
                label = escape_html(label),
                url_text = escape_html(url),
            ));
        }
        let signature = format!("— {} ({})", self.instance, self.base);
        text.push_str(&signature);
        text.push('\n');
        html.push_str(&format!("<p>{}</p></body></html>", escape_html(&signature)));
        Outgoing {
            kind,
            to: to.to_owned(),
            subject: self.subject(what),
            body: Body { text, html },
            discard_at: None,
        }
    }

    /// The link that proves `to` belongs to `username`.
    pub fn verify_email(&self, to: &str, username: &str, link: &str, expires: DateTime<Utc>) -> Outgoing {
        let mut mail = self.mail(
            "verify_email",
            to,
            "Confirm your email address",
            &[
                format!(
                    "please confirm that {to} is the address of {username} on {}.",
                    self.instance
                ),
                format!("The link works once, until {}.", expires.format("%Y-%m-%d %H:%M UTC")),
                "If you did not ask for this, ignore this mail: nothing changes.".to_owned(),
            ],
            Some(("Confirm the address", link)),
        );
        mail.discard_at = Some(expires.timestamp_millis());
        mail
    }

    pub fn password_reset(&self, to: &str, username: &str, link: &str, expires: DateTime<Utc>) -> Outgoing {
        let mut mail = self.mail(
            "password_reset",
            to,
            "Reset your password",
            &[
                format!(
                    "someone asked to reset the password of {username} on {}.",
                    self.instance
                ),
                format!(
                    "The link works once, until {}. Setting a new password signs the account out everywhere.",
                    expires.format("%Y-%m-%d %H:%M UTC")
                ),
                "If it was not you, ignore this mail: your password stays as it is.".to_owned(),
            ],
            Some(("Choose a new password", link)),
        );
        mail.discard_at = Some(expires.timestamp_millis());
        mail
    }

    pub fn welcome(&self, to: &str, username: &str) -> Outgoing {
        let home = format!("{}/", self.base);
        let open = format!("Open {}", self.instance);
        self.mail(
            "welcome",
            to,
            &format!("Welcome to {}", self.instance),
            &[
                format!("welcome, {username}: your address is confirmed and your account is ready."),
                "Join the lobby or a room someone shared with you, talk by voice and chat.".to_owned(),
            ],
            Some((&open, &home)),
        )
    }

    /// The notice to the old address after the account's address changed.
    pub fn email_changed(&self, old: &str, username: &str, new: &str) -> Outgoing {
        self.mail(
            "email_changed",
            old,
            "Your email address was changed",
            &[
                format!(
                    "the address of {username} on {} was changed from {old} to {new}.",
                    self.instance
                ),
                "If you did not do this, sign in and change it back, change your password, \
                 or ask the server's administrator for help."
                    .to_owned(),
            ],
            None,
        )
    }

    /// `switchboard mail test`.
    pub fn test(&self, to: &str) -> Outgoing {
        self.mail(
            "test",
            to,
            "Test mail",
            &[format!(
                "this is a test mail from {}: its mail settings work.",
                self.instance
            )],
            None,
        )
    }
}

pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_subject_names_the_instance_and_the_html_is_escaped() {
        let composer = Composer::new("Acme <Intercom>", "https://talk.example");
        let expires = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let link = "https://talk.example/verify-email?token=abc&x=\"y\"";
        let mail = composer.verify_email("ann@example.org", "ann", link, expires);
        assert_eq!(mail.subject, "Confirm your email address · Acme <Intercom>");
        assert!(mail.body.text.contains(link), "{}", mail.body.text);
        assert!(mail.body.html.contains("Acme &lt;Intercom&gt;"), "{}", mail.body.html);
        assert!(!mail.body.html.contains("<Intercom>"));
        assert!(mail.body.html.contains("token=abc&amp;x=&quot;y&quot;"));
        assert_eq!(mail.discard_at, Some(1_800_000_000_000));
        assert_eq!(mail.kind, "verify_email");
    }
}
