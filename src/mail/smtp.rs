//! The way out: lettre's async SMTP transport (Tokio, rustls) built from
//! SMTP_URL, and the From header (MAIL_FROM, or the instance's name at
//! `noreply@` the public host). The SMTP password never reaches a log line:
//! errors carry lettre's description, which holds no credentials.

use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::{Body, Outgoing};
use crate::config::{Config, SmtpConfig, SmtpTls};

/// One SMTP conversation (connect, TLS, AUTH, the message) may take this long.
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("MAIL_FROM {0:?} is not a mailbox such as \"Name <address@example.org>\"")]
    From(String),
    #[error("cannot set up SMTP TLS for {host}: {reason}")]
    Tls { host: String, reason: String },
    #[error("the mail cannot be built: {0}")]
    Build(String),
    /// The server or the network refused; `permanent` for a 5xx answer,
    /// which no retry will change.
    #[error("SMTP: {message}")]
    Smtp { message: String, permanent: bool },
}

impl MailError {
    pub fn is_permanent(&self) -> bool {
        match self {
            Self::Smtp { permanent, .. } => *permanent,
            Self::From(_) | Self::Tls { .. } | Self::Build(_) => true,
        }
    }
}

/// The From mailbox: MAIL_FROM, or `INSTANCE_NAME <noreply@host>` with the
/// host of the public URL.
pub fn sender(config: &Config, public: &url::Url) -> Result<Mailbox, MailError> {
    if let Some(configured) = &config.mail_from {
        return configured.parse().map_err(|_| MailError::From(configured.clone()));
    }
    let host = public.host_str().unwrap_or("localhost").trim_matches(['[', ']']);
    let address = Address::new("noreply", host)
        .or_else(|_| Address::new("noreply", "localhost"))
        .map_err(|e| MailError::From(e.to_string()))?;
    Ok(Mailbox::new(Some(config.instance_name.clone()), address))
}

/// Sends composed mails through one SMTP server.
#[derive(Clone)]
pub struct SmtpSender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// The host part of Message-IDs.
    domain: String,
}

impl SmtpSender {
    pub fn new(config: &SmtpConfig, from: Mailbox) -> Result<Self, MailError> {
        let tls = |host: &str| {
            TlsParameters::new(host.to_owned()).map_err(|e| MailError::Tls {
                host: host.to_owned(),
                reason: e.to_string(),
            })
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(config.host.clone())
            .port(config.port)
            .timeout(Some(SMTP_TIMEOUT))
            .tls(match config.tls {
                SmtpTls::None => Tls::None,
                SmtpTls::StartTls => Tls::Required(tls(&config.host)?),
                SmtpTls::Implicit => Tls::Wrapper(tls(&config.host)?),
            });
        if let Some((user, password)) = &config.credentials {
            builder = builder.credentials(Credentials::new(user.clone(), password.expose().to_owned()));
        }
        let domain = from.email.domain().to_owned();
        Ok(Self {
            transport: builder.build(),
            from,
            domain,
        })
    }

    /// Sends a composed mail now (`switchboard mail test`).
    pub async fn send_now(&self, mail: &Outgoing) -> Result<(), MailError> {
        let id = crate::auth::tokens::random_token(12);
        self.send(&mail.to, &mail.subject, &mail.body, &id).await
    }

    /// Sends a mail now. `message_id` (without angle brackets and domain)
    /// stays the same across retries of one queued mail, so a receiver can
    /// tell a repeat from a new mail.
    pub async fn send(&self, to: &str, subject: &str, body: &Body, message_id: &str) -> Result<(), MailError> {
        let to: Mailbox = to
            .parse()
            .map_err(|e: lettre::address::AddressError| MailError::Build(format!("recipient: {e}")))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .message_id(Some(format!("<{message_id}@{}>", self.domain)))
            .multipart(MultiPart::alternative_plain_html(body.text.clone(), body.html.clone()))
            .map_err(|e| MailError::Build(e.to_string()))?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| MailError::Smtp {
                permanent: e.is_permanent(),
                message: error_chain(&e),
            })
    }
}

/// An error and its causes, for the log and the command line.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    fn config(pairs: &[(&str, &str)]) -> Config {
        let mut s = Settings::default();
        for (k, v) in pairs {
            s.set(k, *v).unwrap();
        }
        Config::from_settings(&s).unwrap()
    }

    #[test]
    fn the_default_sender_is_the_instance_at_the_public_host() {
        let public = url::Url::parse("https://talk.example.org/").unwrap();
        let from = sender(&config(&[]), &public).unwrap();
        assert_eq!(from.to_string(), "Switchboard <noreply@talk.example.org>");
        let from = sender(&config(&[("INSTANCE_NAME", "Acme")]), &public).unwrap();
        assert_eq!(from.to_string(), "Acme <noreply@talk.example.org>");
        let local = url::Url::parse("http://127.0.0.1:8080/").unwrap();
        assert_eq!(
            sender(&config(&[]), &local).unwrap().email.to_string(),
            "noreply@127.0.0.1"
        );
    }

    #[test]
    fn mail_from_is_checked() {
        let public = url::Url::parse("https://talk.example.org/").unwrap();
        let from = sender(&config(&[("MAIL_FROM", "Ops <ops@example.org>")]), &public).unwrap();
        assert_eq!(from.email.to_string(), "ops@example.org");
        assert!(sender(&config(&[("MAIL_FROM", "not a mailbox")]), &public).is_err());
    }
}
