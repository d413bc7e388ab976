//! What every handler shares: configuration, the database pool, the
//! in-memory sign-in guards and the live actors. Built once in `server::run`.

use std::sync::Arc;

use actix::Addr;

use crate::auth::captcha::CaptchaStore;
use crate::auth::limiter::SlidingWindow;
use crate::auth::oidc::OidcProvider;
use crate::auth::password::PasswordJobs;
use crate::auth::sealed::SealingKey;
use crate::config::{Config, Secret};
use crate::db::sessions::Lifetimes;
use crate::db::writer::Writer;
use crate::db::Pool;
use crate::error::ApiError;
use crate::mail::Postbox;
use crate::metrics::Metrics;
use crate::realtime::registry::SessionRegistry;
use crate::realtime::session::SessionEnv;

pub struct AppState {
    pub config: Config,
    /// `scheme://host[:port]` of the public URL: what Origin headers must say.
    pub origin: String,
    /// The public URL without its trailing slash: the start of every link
    /// the server hands out (invitations, reset links).
    pub public_base: String,
    pub secret: Secret,
    pub pool: Pool,
    pub captcha: CaptchaStore,
    /// Failed password logins and two-factor codes, keyed by IP and by
    /// account from that IP.
    pub failed_logins: SlidingWindow,
    /// Guest logins, keyed by IP.
    pub guest_logins: SlidingWindow,
    /// File uploads, keyed by user.
    pub uploads: SlidingWindow,
    /// Registration attempts, keyed by IP.
    pub registrations: SlidingWindow,
    /// CAPTCHA challenges issued, keyed by IP.
    pub captchas: SlidingWindow,
    /// OIDC sign-ins started, keyed by IP.
    pub oidc_starts: SlidingWindow,
    /// Wrong current passwords, keyed by user and by IP.
    pub password_changes: SlidingWindow,
    /// Mails that requests ask for, keyed by IP, by user and by address.
    pub mails: SlidingWindow,
    /// Queues mail; `None` when SMTP is not configured.
    pub mail: Option<Postbox>,
    /// Every bcrypt hash and verification runs through here.
    pub password_jobs: PasswordJobs,
    /// Seals two-factor secrets at rest.
    pub totp_key: SealingKey,
    pub oidc: Option<OidcProvider>,
    pub metrics: Arc<Metrics>,
    /// Commits chat messages and audit events from the live path.
    pub writer: Writer,
    pub registry: Addr<SessionRegistry>,
    /// What every WebSocket session is given.
    pub session_env: Arc<SessionEnv>,
}

impl AppState {
    /// The postbox, or `mail_disabled` for an endpoint that needs mail.
    pub fn postbox(&self) -> Result<&Postbox, ApiError> {
        self.mail.as_ref().ok_or(ApiError::MailDisabled)
    }

    /// `password_login_disabled` when PASSWORD_LOGIN is false.
    pub fn require_password_login(&self) -> Result<(), ApiError> {
        if self.config.password_login {
            Ok(())
        } else {
            Err(ApiError::PasswordLoginDisabled)
        }
    }

    /// A page address on this server, such as `/register?invite=...`.
    pub fn page_url(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.public_base)
    }

    pub fn lifetimes(&self) -> Lifetimes {
        Lifetimes {
            idle_ms: self.config.session_idle.as_millis() as i64,
            max_ms: self.config.session_max.as_millis() as i64,
        }
    }
}
