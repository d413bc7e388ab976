//! One-time links for an account's address and password, and what proving
//! an address does. Each step takes the caller's connection, so a link and
//! its mail are stored in the transaction of whatever asked for them.

use chrono::{DateTime, Duration, Utc};
use rusqlite::Connection;

use super::signin::address_verified;
use super::tokens::{random_token, token_hash};
use crate::db::account_tokens::{self, Purpose, TokenRow};
use crate::db::users::{self, Verification};
use crate::db::DbError;
use crate::ids::UserId;
use crate::state::AppState;

/// A verification link works this long (the contract allows 48 h at most).
pub const VERIFY_TTL: Duration = Duration::hours(48);
/// A reset link sent by mail works this long (1 h at most).
pub const RESET_TTL: Duration = Duration::hours(1);
/// A reset link an admin makes to hand over in person: it travels through
/// people, not a mailbox, so it gets a day.
pub const HANDOVER_TTL: Duration = Duration::hours(24);
/// 32 random bytes: 256 bits per link.
const TOKEN_BYTES: usize = 32;
/// Longer tokens are refused without a lookup.
pub const TOKEN_MAX_CHARS: usize = 128;

/// A link's token (shown once, stored hashed) and when it stops working.
pub struct Link {
    pub token: String,
    pub expires: DateTime<Utc>,
}

/// A new link for `user`'s `email`, in place of their earlier ones of this
/// purpose.
pub fn issue(conn: &Connection, purpose: Purpose, user: UserId, email: &str, ttl: Duration) -> Result<Link, DbError> {
    let token = random_token(TOKEN_BYTES);
    let expires = Utc::now() + ttl;
    account_tokens::replace(
        conn,
        purpose,
        &token_hash(&token),
        user,
        email,
        expires.timestamp_millis(),
    )?;
    Ok(Link { token, expires })
}

/// The live link with this token, left in place (`take` uses it).
pub fn peek(conn: &Connection, purpose: Purpose, token: &str) -> Result<Option<TokenRow>, DbError> {
    if token.is_empty() || token.len() > TOKEN_MAX_CHARS {
        return Ok(None);
    }
    account_tokens::find(conn, purpose, &token_hash(token))
}

/// Uses the link with this token: only one caller ever gets it.
pub fn take(conn: &Connection, purpose: Purpose, token: &str) -> Result<Option<TokenRow>, DbError> {
    if token.is_empty() || token.len() > TOKEN_MAX_CHARS {
        return Ok(None);
    }
    account_tokens::take(conn, purpose, &token_hash(token))
}

/// Queues the verification mail for `user`'s current address (when mail is
/// on): a new link in place of any earlier one.
pub fn queue_verification(conn: &Connection, state: &AppState, user: &users::User) -> Result<(), DbError> {
    let (Some(postbox), Some(email)) = (&state.mail, &user.email) else {
        return Ok(());
    };
    let link = issue(conn, Purpose::VerifyEmail, user.id, email, VERIFY_TTL)?;
    let url = postbox.link("/verify-email", &link.token);
    postbox.queue(
        conn,
        &postbox
            .compose()
            .verify_email(email, &user.username, &url, link.expires),
    )
}

/// `email` is proved to be `user`'s (a verification link or a completed
/// reset). False when it is no longer the account's address. When the
/// address was not verified before, ADMIN_EMAIL takes effect (once per
/// verification: a reset of a verified account grants nothing again), and
/// an account proving its first address is welcomed (by mail, when mail is
/// on). Call in a transaction; after the commit wake the mailer and tell
/// the registry (`AuthorityChanged`).
pub fn address_proved(conn: &Connection, state: &AppState, user: UserId, email: &str) -> Result<bool, DbError> {
    match users::verify_email(conn, user, email)? {
        Verification::NotTheAddress => Ok(false),
        Verification::AlreadyVerified => Ok(true),
        Verification::NewlyVerified => {
            address_verified(conn, state.config.admin_email.as_deref(), user, email)?;
            welcome_once(conn, state, user)?;
            Ok(true)
        }
    }
}

/// Queues the welcome mail the first time `user` has a verified address.
pub fn welcome_once(conn: &Connection, state: &AppState, user: UserId) -> Result<(), DbError> {
    if !users::mark_welcomed(conn, user)? {
        return Ok(());
    }
    let Some(postbox) = &state.mail else {
        return Ok(());
    };
    let account = users::get(conn, user)?;
    match &account.email {
        Some(email) => postbox.queue(conn, &postbox.compose().welcome(email, &account.display_name)),
        None => Ok(()),
    }
}
