//! Outgoing mail. A mail is composed (`compose`), queued in the outbox in the
//! same transaction as what caused it (`Postbox::queue`), and sent later by
//! the `Mailer` actor through SMTP (`smtp`), with retries: no request waits
//! on an SMTP server, and a restart loses nothing.

pub mod compose;
pub mod mailer;
pub mod smtp;

use actix::Addr;
use rusqlite::Connection;
use serde::{Deserialize, Serialize};

use crate::auth::sealed::SealingKey;
use crate::db::{outbox, DbError};
use mailer::{Mailer, Wake};

/// The sealing purpose of mail bodies at rest in the outbox.
pub const SEALING_PURPOSE: &str = "outbox";

/// A mail, composed and ready to queue or send.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// What kind of mail this is, for the logs: `verify_email`, `password_reset`, ...
    pub kind: &'static str,
    pub to: String,
    pub subject: String,
    pub body: Body,
    /// Milliseconds since the epoch after which the mail is worthless (its
    /// link has expired): the mailer drops it instead of sending it late.
    pub discard_at: Option<i64>,
}

/// The two renderings of a mail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Body {
    pub text: String,
    pub html: String,
}

impl Body {
    pub fn seal(&self, key: &SealingKey) -> String {
        // Two strings always serialise.
        key.seal(serde_json::to_string(self).unwrap_or_default().as_bytes())
    }

    pub fn open(key: &SealingKey, sealed: &str) -> Option<Self> {
        serde_json::from_slice(&key.open(sealed)?).ok()
    }
}

/// What the handlers need to send mail: where this server's pages are (for
/// links), the instance's name, the key that seals bodies at rest, and the
/// mailer to wake. Present only when SMTP is configured.
pub struct Postbox {
    /// The public URL without its trailing slash.
    base: String,
    instance: String,
    key: SealingKey,
    mailer: Addr<Mailer>,
}

impl Postbox {
    pub fn new(public_url: &url::Url, instance: &str, key: SealingKey, mailer: Addr<Mailer>) -> Self {
        Self {
            base: public_url.as_str().trim_end_matches('/').to_owned(),
            instance: instance.to_owned(),
            key,
            mailer,
        }
    }

    /// Queues `mail` on `conn`: call inside the transaction of whatever
    /// causes it, then [`wake`](Self::wake) the mailer after the commit.
    pub fn queue(&self, conn: &Connection, mail: &Outgoing) -> Result<(), DbError> {
        let sealed = mail.body.seal(&self.key);
        outbox::enqueue(
            conn,
            &outbox::NewMail {
                kind: mail.kind,
                to: &mail.to,
                subject: &mail.subject,
                body: &sealed,
                discard_at: mail.discard_at,
            },
        )?;
        Ok(())
    }

    /// Tells the mailer that something was queued (after the commit).
    pub fn wake(&self) {
        self.mailer.do_send(Wake);
    }

    /// The address of one of this server's pages, such as `/verify-email`.
    pub fn page(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A page address with a one-time token in its query.
    pub fn link(&self, path: &str, token: &str) -> String {
        // Tokens are base64url: nothing in them needs escaping in a query.
        format!("{}{path}?token={token}", self.base)
    }

    pub fn compose(&self) -> compose::Composer<'_> {
        compose::Composer::new(&self.instance, &self.base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    #[test]
    fn bodies_are_sealed_at_rest() {
        let key = SealingKey::derive(&Secret::new("k"), SEALING_PURPOSE);
        let body = Body {
            text: "the link: https://x.example/verify-email?token=abc".into(),
            html: "<p>the link</p>".into(),
        };
        let sealed = body.seal(&key);
        assert!(!sealed.contains("token=abc"));
        assert_eq!(Body::open(&key, &sealed), Some(body));
        let other = SealingKey::derive(&Secret::new("other"), SEALING_PURPOSE);
        assert_eq!(Body::open(&other, &sealed), None);
    }
}
