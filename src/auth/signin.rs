//! The steps every kind of sign-in shares, on one database connection:
//! refusing banned users and addresses, making ADMIN_EMAIL an admin, and the
//! account work of guest and OIDC sign-ins.

use rusqlite::Connection;
use serde_json::json;

use super::oidc::Identity;
use super::tokens::readable_code;
use super::validate;
use crate::config::normalise_email;
use crate::db::{self, audit::Event, bans, roles, users, DbError};
use crate::error::ApiError;
use crate::ids::UserId;
use crate::state::AppState;

/// Random characters after a generated username.
const SUFFIX_LEN: usize = 6;

/// `Banned` when an active ban covers this user or this address.
pub fn refuse_banned(conn: &Connection, user: Option<UserId>, ip: &str) -> Result<(), ApiError> {
    match bans::active_for(conn, user, Some(ip))? {
        Some(ban) => Err(ApiError::Banned { reason: ban.reason }),
        None => Ok(()),
    }
}

/// The account whose email is ADMIN_EMAIL holds the admin role.
pub fn promote_if_admin_email(
    conn: &Connection,
    state: &AppState,
    user: UserId,
    email: Option<&str>,
) -> Result<(), DbError> {
    match (&state.config.admin_email, email) {
        (Some(admin), Some(email)) if *admin == normalise_email(email) => roles::add_role(conn, user, roles::ADMIN),
        _ => Ok(()),
    }
}

/// Creates a guest account named after `display_name`.
pub fn create_guest(conn: &Connection, display_name: &str) -> Result<UserId, DbError> {
    let mut last_error = DbError::Conflict("no free guest name".into());
    for _ in 0..5 {
        let username = validate::guest_username(display_name, &readable_code(SUFFIX_LEN));
        match users::create_guest(conn, &username, display_name) {
            Ok(id) => return Ok(id),
            Err(e @ DbError::Conflict(_)) => last_error = e,
            Err(e) => return Err(e),
        }
    }
    Err(last_error)
}

/// The account for an OIDC identity: found by its subject, else linked by
/// its verified email, else created (it then still needs a username).
pub fn account_for_identity(
    conn: &mut Connection,
    state: &AppState,
    who: &Identity,
    ip: &str,
) -> Result<UserId, ApiError> {
    if let Some(id) = users::find_by_oidc(conn, &who.issuer, &who.subject)? {
        return Ok(id);
    }
    let email = normalise_email(&who.email);
    if let Some(id) = users::find_by_email(conn, &email)? {
        users::link_oidc(conn, id, &who.issuer, &who.subject)?;
        return Ok(id);
    }
    let display_name = who
        .name
        .as_deref()
        .and_then(|n| validate::display_name(n, "name").ok())
        .unwrap_or_else(|| email.split('@').next().unwrap_or("user").to_owned());
    let account = users::NewAccount {
        username: format!("user-{}", readable_code(SUFFIX_LEN + 2)),
        display_name,
        email: email.clone(),
        email_verified: true,
        password_hash: None,
        oidc: Some((who.issuer.clone(), who.subject.clone())),
        needs_username: true,
    };
    let max_users = state.config.max_users;
    match db::immediate(conn, |tx| users::create_account(tx, &account, max_users)) {
        Ok(id) => {
            Event::new("register")
                .by(id, &account.username)
                .ip(ip)
                .details(json!({"method": "oidc", "email": email}))
                .record(conn)?;
            Ok(id)
        }
        Err(DbError::UserLimit) => {
            Event::new("user_limit_blocked")
                .by_name(&email)
                .ip(ip)
                .details(json!({"method": "oidc", "max_users": max_users}))
                .record(conn)?;
            Err(ApiError::UserLimit)
        }
        Err(other) => Err(other.into()),
    }
}
