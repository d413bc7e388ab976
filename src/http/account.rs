//! The account's address and a way back in, by mail: verify an address by
//! its link, send the link again, change the address (verified anew), ask
//! for a password reset and complete it. Links are single use and expire
//! (auth::account_links); mail is queued in the transaction that asks for it and
//! sent by the mailer, so no request waits on SMTP.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::client_ip::ClientIp;
use super::limits::{self, rate_limited, Actor};
use super::me::identity_changed;
use crate::auth::account_links::{self, RESET_TTL};
use crate::auth::session::Auth;
use crate::auth::{password, validate};
use crate::db::account_tokens::Purpose;
use crate::db::users::User;
use crate::db::{self, audit::Event, sessions, users};
use crate::error::ApiError;
use crate::ids::UserId;
use crate::realtime::registry::{Kick, Target};
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/auth/verify-email", web::post().to(verify_email))
        .route("/api/auth/password-reset", web::post().to(request_reset))
        .route("/api/auth/password-reset/confirm", web::post().to(confirm_reset))
        .route("/api/me/email/verify", web::post().to(resend_verification))
        .route("/api/me/email", web::post().to(change_email));
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    token: String,
}

/// Uses a verification link: the address it was sent to is verified, if it
/// is still the account's. No session needed: the link may be opened in
/// any browser.
async fn verify_email(
    state: web::Data<AppState>,
    ip: ClientIp,
    body: web::Json<TokenRequest>,
) -> Result<HttpResponse, ApiError> {
    let token = body.into_inner().token;
    let ip = ip.to_string();
    let st = state.clone();
    let user = db::run(&state.pool, move |conn| -> Result<User, ApiError> {
        db::immediate(conn, |tx| {
            let link = account_links::take(tx, Purpose::VerifyEmail, &token)?.ok_or(ApiError::InvalidToken)?;
            if !account_links::address_proved(tx, &st, link.user_id, &link.email)? {
                return Err(ApiError::InvalidToken);
            }
            let user = users::get(tx, link.user_id)?;
            Event::new("email_verified")
                .by(user.id, &user.username)
                .ip(&ip)
                .target(user.id)
                .details(json!({"email": link.email}))
                .record(tx)?;
            Ok(user)
        })
    })
    .await?;
    after_address_change(&state, &user).await?;
    Ok(HttpResponse::Ok().json(json!({"user": user})))
}

/// After a commit that changed an account's address or its verification:
/// the mailer sends what was queued, and the account's live sockets act on
/// the fresh record (rights from ADMIN_EMAIL, REQUIRE_VERIFIED_EMAIL).
pub(super) async fn after_address_change(state: &AppState, user: &User) -> Result<(), ApiError> {
    if let Some(postbox) = &state.mail {
        postbox.wake();
    }
    identity_changed(state, user).await
}

/// Counts one mail against the client's address and each of `keys`;
/// refused past MAIL_RATE_PER_MIN.
async fn charge_mail(state: &AppState, ip: ClientIp, keys: &[String], actor: Actor<'_>) -> Result<(), ApiError> {
    let mut all = vec![limits::ip(ip)];
    all.extend_from_slice(keys);
    match state.mails.reserve(&all) {
        Ok(reservation) => {
            reservation.keep();
            Ok(())
        }
        Err(refused) => Err(rate_limited(state, refused, "mail", ip, actor).await),
    }
}

/// Sends the verification mail again, with a new link (the old one stops
/// working).
async fn resend_verification(state: web::Data<AppState>, auth: Auth, ip: ClientIp) -> Result<HttpResponse, ApiError> {
    state.postbox()?;
    if auth.user.guest || auth.user.email.is_none() {
        return Err(ApiError::Forbidden);
    }
    if auth.user.email_verified {
        return Err(ApiError::Conflict("your address is verified already".into()));
    }
    let actor = Actor::User(auth.user.id, &auth.user.username);
    charge_mail(&state, ip, &[format!("user:{}", auth.user.id)], actor).await?;
    let st = state.clone();
    db::run(&state.pool, move |conn| -> Result<(), ApiError> {
        let user = users::get(conn, auth.user.id)?;
        if user.email_verified {
            return Err(ApiError::Conflict("your address is verified already".into()));
        }
        db::immediate(conn, |tx| account_links::queue_verification(tx, &st, &user))?;
        Ok(())
    })
    .await?;
    if let Some(postbox) = &state.mail {
        postbox.wake();
    }
    Ok(HttpResponse::Accepted().finish())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    email: String,
}

/// Asks for a reset link. The answer is the same 202 whether or not an
/// account has the address, and comes before any lookup: the lookup, the
/// link and the mail happen after the response, so not even the time taken
/// tells. Limited per client address and per address asked for.
async fn request_reset(
    state: web::Data<AppState>,
    ip: ClientIp,
    body: web::Json<ResetRequest>,
) -> Result<HttpResponse, ApiError> {
    state.require_password_login()?;
    state.postbox()?;
    let email = validate::email(&body.email)?;
    charge_mail(&state, ip, &[format!("address:{email}")], Actor::Named(&email)).await?;
    let ip = ip.to_string();
    actix_web::rt::spawn(async move {
        let st = state.clone();
        let queued = db::run(&state.pool, move |conn| queue_reset(conn, &st, &email, &ip)).await;
        match queued {
            Ok(()) => {
                if let Some(postbox) = &state.mail {
                    postbox.wake();
                }
            }
            Err(error) => tracing::error!(%error, "a password reset could not be queued"),
        }
    });
    Ok(HttpResponse::Accepted().finish())
}

/// The reset link and its mail for the account with `email`, if there is
/// one; audited either way.
fn queue_reset(conn: &mut rusqlite::Connection, state: &AppState, email: &str, ip: &str) -> Result<(), ApiError> {
    let postbox = state.postbox()?;
    db::immediate(conn, |tx| -> Result<(), ApiError> {
        let Some(id) = users::find_by_email(tx, email)? else {
            return Ok(Event::new("password_reset_requested")
                .by_name(email)
                .ip(ip)
                .details(json!({"email": email, "account": false}))
                .record(tx)?);
        };
        let user = users::get(tx, id)?;
        let link = account_links::issue(tx, Purpose::PasswordReset, id, email, RESET_TTL)?;
        let url = postbox.link("/reset-password", &link.token);
        postbox.queue(
            tx,
            &postbox
                .compose()
                .password_reset(email, &user.username, &url, link.expires),
        )?;
        Ok(Event::new("password_reset_requested")
            .by_name(email)
            .ip(ip)
            .target(id)
            .details(json!({"email": email, "account": true}))
            .record(tx)?)
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfirmRequest {
    token: String,
    password: String,
}

/// Sets a new password with a reset link (mailed, or made by an admin).
/// Every session of the account ends, its sockets close, and the address
/// the link went to counts as verified.
async fn confirm_reset(
    state: web::Data<AppState>,
    ip: ClientIp,
    body: web::Json<ConfirmRequest>,
) -> Result<HttpResponse, ApiError> {
    state.require_password_login()?;
    let ConfirmRequest { token, password } = body.into_inner();
    validate::password(&password)?;
    let peeked = token.clone();
    db::run(&state.pool, move |conn| {
        account_links::peek(conn, Purpose::PasswordReset, &peeked)
    })
    .await?
    .ok_or(ApiError::InvalidToken)?;
    let cost = state.config.bcrypt_cost;
    let hash = state
        .password_jobs
        .run(move || password::hash(&password, cost))
        .await?
        .map_err(ApiError::internal)?;
    let ip = ip.to_string();
    let st = state.clone();
    let user = db::run(&state.pool, move |conn| -> Result<User, ApiError> {
        db::immediate(conn, |tx| {
            // Taken now: of two requests with one link, one wins.
            let link = account_links::take(tx, Purpose::PasswordReset, &token)?.ok_or(ApiError::InvalidToken)?;
            users::set_password_hash(tx, link.user_id, &hash)?;
            let ended = sessions::delete_for_user(tx, link.user_id)?;
            let verified = account_links::address_proved(tx, &st, link.user_id, &link.email)?;
            let user = users::get(tx, link.user_id)?;
            Event::new("password_reset")
                .by(user.id, &user.username)
                .ip(&ip)
                .target(user.id)
                .details(json!({"method": "link", "sessions_ended": ended, "email_verified": verified}))
                .record(tx)?;
            Ok(user)
        })
    })
    .await?;
    if let Some(postbox) = &state.mail {
        postbox.wake();
    }
    // Awaited: the sockets are told before the answer.
    let _ = state
        .registry
        .send(Kick {
            target: Target::User(user.id),
            reason: "the password was reset: sign in again".into(),
        })
        .await;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailChangeRequest {
    email: String,
    /// The current password, for an account that has one.
    #[serde(default)]
    password: Option<String>,
}

/// Changes the account's address: the new one is unverified until its link
/// is used, and the old one is told. Needs the current password (for an
/// account that has one), counted like a password change. `PATCH /api/me`
/// with `email` does the same through [`checked_new_email`] and
/// [`put_new_email`].
async fn change_email(
    state: web::Data<AppState>,
    auth: Auth,
    ip: ClientIp,
    body: web::Json<EmailChangeRequest>,
) -> Result<HttpResponse, ApiError> {
    let request = body.into_inner();
    let email = checked_new_email(&state, &auth, ip, &request.email, request.password).await?;
    let ip = ip.to_string();
    let st = state.clone();
    let user = db::run(&state.pool, move |conn| -> Result<User, ApiError> {
        db::immediate(conn, |tx| put_new_email(tx, &st, auth.user.id, &ip, &email))
    })
    .await?;
    after_address_change(&state, &user).await?;
    Ok(HttpResponse::Ok().json(json!({"user": user})))
}

/// `raw` as the account's next address, once a change may go ahead: mail
/// is on, the user is no guest, the address is valid, new and in an allowed
/// domain, `password` is the current one (for an account that has one), and
/// the mail it costs is within MAIL_RATE_PER_MIN.
pub(super) async fn checked_new_email(
    state: &web::Data<AppState>,
    auth: &Auth,
    ip: ClientIp,
    raw: &str,
    password: Option<String>,
) -> Result<String, ApiError> {
    state.postbox()?;
    if auth.user.guest {
        return Err(ApiError::Forbidden);
    }
    let email = validate::email(raw)?;
    if auth.user.email.as_deref() == Some(email.as_str()) {
        return Err(ApiError::bad_request("that is your address already"));
    }
    if !state.config.email_domain_allowed(&email) {
        return Err(ApiError::EmailDomainNotAllowed);
    }
    check_current_password(state, auth, ip, password).await?;
    let actor = Actor::User(auth.user.id, &auth.user.username);
    charge_mail(state, ip, &[format!("user:{}", auth.user.id)], actor).await?;
    Ok(email)
}

/// Gives account `id` the address `email` (from [`checked_new_email`]) in
/// the caller's transaction: unverified, with its verification mail, a
/// notice to the old address, the old address's reset links revoked, and
/// the change audited. Answers the account as it is now; after the commit,
/// call [`after_address_change`].
pub(super) fn put_new_email(
    tx: &rusqlite::Connection,
    state: &AppState,
    id: UserId,
    ip: &str,
    email: &str,
) -> Result<User, ApiError> {
    let before = users::get(tx, id)?;
    users::change_email(tx, id, email)?;
    // Links made for the old address die with it.
    crate::db::account_tokens::revoke(tx, id, Purpose::PasswordReset)?;
    let after = users::get(tx, id)?;
    account_links::queue_verification(tx, state, &after)?;
    if let (Some(postbox), Some(old)) = (&state.mail, &before.email) {
        postbox.queue(tx, &postbox.compose().email_changed(old, &before.username, email))?;
    }
    Event::new("user_update")
        .by(id, &before.username)
        .ip(ip)
        .target(id)
        .details(json!({"email": {"from": before.email, "to": email}}))
        .record(tx)?;
    Ok(after)
}

/// `given` must be the account's current password, when it has one. Wrong
/// ones count per user and per IP (PASSWORD_CHANGE_RATE_PER_MIN) and are
/// audited as `password_check_failed`.
async fn check_current_password(
    state: &web::Data<AppState>,
    auth: &Auth,
    ip: ClientIp,
    given: Option<String>,
) -> Result<(), ApiError> {
    let id = auth.user.id;
    let Some(stored) = db::run(&state.pool, move |conn| users::credentials(conn, id))
        .await?
        .password_hash
    else {
        return Ok(());
    };
    let given = given
        .filter(|p| !p.is_empty())
        .ok_or_else(|| ApiError::bad_request("changing your address needs your password"))?;
    let keys = [limits::ip(ip), format!("user:{id}")];
    let attempt = match state.password_changes.reserve(&keys) {
        Ok(attempt) => attempt,
        Err(refused) => {
            let actor = Actor::User(id, &auth.user.username);
            return Err(rate_limited(state, refused, "password_check", ip, actor).await);
        }
    };
    if state
        .password_jobs
        .run(move || password::verify(&given, &stored))
        .await?
    {
        return Ok(());
    }
    attempt.keep();
    let event = Event::new("password_check_failed")
        .by(id, &auth.user.username)
        .ip(&ip.to_string())
        .target(id)
        .details(json!({"reason": "bad_password", "for": "email_change"}));
    db::run(&state.pool, move |conn| event.record(conn)).await?;
    Err(ApiError::InvalidCredentials)
}
