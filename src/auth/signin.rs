//! The steps every kind of sign-in shares, on one database connection:
//! refusing banned users and addresses, making ADMIN_EMAIL an admin when its
//! address is verified, who may create an account (REGISTRATION, invites),
//! and the account work of guest and OIDC sign-ins.

use rusqlite::Connection;
use serde_json::json;

use super::account_links::welcome_once;
use super::oidc::Identity;
use super::tokens::{readable_code, token_hash};
use super::validate;
use crate::config::{normalise_email, Registration};
use crate::db::{self, audit::Event, bans, invites, roles, users, DbError};
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

/// Call once, when an account's `email` becomes verified: at the creation of
/// an account whose provider vouches for the address, or at the address's
/// first verification. The account whose address is ADMIN_EMAIL becomes an
/// admin then, and only then: no sign-in grants it again, so a demotion
/// lasts, and an address nobody has proved never makes an admin.
pub fn address_verified(
    conn: &Connection,
    admin_email: Option<&str>,
    user: UserId,
    email: &str,
) -> Result<(), DbError> {
    if admin_email != Some(normalise_email(email).as_str()) {
        return Ok(());
    }
    roles::add_role(conn, user, roles::ADMIN)?;
    Event::new("user_update")
        .target(user)
        .details(json!({"admin": true, "reason": "ADMIN_EMAIL verified", "email": normalise_email(email)}))
        .record(conn)
}

/// `registration_closed` unless a new account may be made now: always with
/// `open`, never with `closed`, and with `invite` only when `invite` names
/// an invitation with a use left. Asks, and uses nothing: a registration
/// asks before it spends a bcrypt hash, and [`admit`] decides.
pub fn may_register(conn: &Connection, registration: Registration, invite: Option<&str>) -> Result<(), ApiError> {
    let allowed = match registration {
        Registration::Open => true,
        Registration::Closed => false,
        Registration::Invite => match invite {
            Some(code) => invites::usable(conn, &token_hash(code))?,
            None => false,
        },
    };
    if allowed {
        Ok(())
    } else {
        Err(ApiError::RegistrationClosed)
    }
}

/// Admits one new account, in the transaction that creates it: with
/// `invite`, uses one use of the invitation and answers its id.
pub fn admit(conn: &Connection, registration: Registration, invite: Option<&str>) -> Result<Option<i64>, ApiError> {
    match registration {
        Registration::Open => Ok(None),
        Registration::Closed => Err(ApiError::RegistrationClosed),
        Registration::Invite => {
            let code = invite.ok_or(ApiError::RegistrationClosed)?;
            match invites::use_one(conn, &token_hash(code))? {
                Some(id) => Ok(Some(id)),
                None => Err(ApiError::RegistrationClosed),
            }
        }
    }
}

/// True while REQUIRE_VERIFIED_EMAIL keeps `user` out of rooms: a
/// registered account whose address is not verified yet (guests have none).
pub fn must_verify_first(require_verified_email: bool, user: &users::User) -> bool {
    require_verified_email && !user.guest && !user.email_verified
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

/// The account for an OIDC identity (whose email the provider has
/// verified): found by its subject, else linked by its email, else created
/// (it then still needs a username).
pub fn account_for_identity(
    conn: &mut Connection,
    state: &AppState,
    who: &Identity,
    ip: &str,
) -> Result<UserId, ApiError> {
    if !state.config.email_domain_allowed(&who.email) {
        return Err(ApiError::EmailDomainNotAllowed);
    }
    if let Some(id) = users::find_by_oidc(conn, &who.issuer, &who.subject)? {
        return Ok(id);
    }
    let email = normalise_email(&who.email);
    let admin_email = state.config.admin_email.as_deref();
    if let Some(id) = users::find_by_email(conn, &email)? {
        let linked = db::immediate(conn, |tx| {
            if users::link_oidc(tx, id, &who.issuer, &who.subject)? {
                address_verified(tx, admin_email, id, &email)?;
                welcome_once(tx, state, id)?;
            }
            Ok::<_, DbError>(id)
        })?;
        return Ok(linked);
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
    let created = db::immediate(conn, |tx| -> Result<_, ApiError> {
        let invite = admit(tx, state.config.registration, who.invite.as_deref())?;
        let id = users::create_account(tx, &account, max_users)?;
        address_verified(tx, admin_email, id, &account.email)?;
        welcome_once(tx, state, id)?;
        Ok((id, invite))
    });
    match created {
        Ok((id, invite)) => {
            Event::new("register")
                .by(id, &account.username)
                .ip(ip)
                .details(json!({"method": "oidc", "email": email, "invite": invite}))
                .record(conn)?;
            Ok(id)
        }
        Err(ApiError::UserLimit) => {
            Event::new("user_limit_blocked")
                .by_name(&email)
                .ip(ip)
                .details(json!({"method": "oidc", "max_users": max_users}))
                .record(conn)?;
            Err(ApiError::UserLimit)
        }
        Err(other) => Err(other),
    }
}
