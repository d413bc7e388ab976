//! The signed-in user's own account: who am I, the display name (and the
//! address, by the change-email steps of `account.rs`), pick a username,
//! change the password. Two-factor sign-in is in `totp.rs`, the
//! picture in `avatars.rs`, the sessions in `me_sessions.rs`.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::account::{after_address_change, checked_new_email, put_new_email};
use super::client_ip::ClientIp;
use super::limits::{self, rate_limited, Actor};
use super::me_sessions::close_sockets;
use crate::auth::session::Auth;
use crate::auth::{password, validate};
use crate::db::users::User;
use crate::db::{self, audit::Event, sessions, users};
use crate::error::ApiError;
use crate::realtime::registry::AuthorityChanged;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/me", web::get().to(me))
        .route("/api/me", web::patch().to(update_profile))
        .route("/api/me/username", web::post().to(choose_username))
        .route("/api/me/password", web::post().to(change_password));
}

async fn me(auth: Auth) -> HttpResponse {
    HttpResponse::Ok().json(json!({"user": auth.user, "csrf_token": auth.csrf_token}))
}

/// The audit event of a user changing their own account.
pub(super) fn self_update(auth: &Auth, ip: &str, details: serde_json::Value) -> Event {
    Event::new("user_update")
        .by(auth.user.id, &auth.user.username)
        .ip(ip)
        .target(auth.user.id)
        .details(details)
}

/// The parts of the profile that `PATCH /api/me` changes; each field that
/// is present is changed by its own function, in one transaction.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileUpdate {
    #[serde(default)]
    display_name: Option<String>,
    /// A new address: the same change as `POST /api/me/email`.
    #[serde(default)]
    email: Option<String>,
    /// The current password, which a new `email` needs (for an account
    /// that has one).
    #[serde(default)]
    password: Option<String>,
}

/// Changes the fields of the profile that the body names; answers the user
/// as it is now. Guests keep the name they chose. Every field is checked
/// (a new address: as `POST /api/me/email` checks it) before anything
/// changes.
async fn update_profile(
    state: web::Data<AppState>,
    auth: Auth,
    ip: ClientIp,
    body: web::Json<ProfileUpdate>,
) -> Result<HttpResponse, ApiError> {
    if auth.user.guest {
        return Err(ApiError::Forbidden);
    }
    let update = body.into_inner();
    let display_name = update
        .display_name
        .map(|raw| validate::display_name(&raw, "display name"))
        .transpose()?;
    if update.password.is_some() && update.email.is_none() {
        return Err(ApiError::bad_request("password is only needed with a new email"));
    }
    let email = match &update.email {
        Some(raw) => Some(checked_new_email(&state, &auth, ip, raw, update.password).await?),
        None => None,
    };
    if display_name.is_none() && email.is_none() {
        return Err(ApiError::bad_request("nothing to change: send display_name or email"));
    }
    let ip = ip.to_string();
    let st = state.clone();
    let new_address = email.is_some();
    let user = db::run(&state.pool, move |conn| -> Result<_, ApiError> {
        db::immediate(conn, |tx| -> Result<_, ApiError> {
            if let Some(name) = &display_name {
                set_display_name(tx, &auth, &ip, name)?;
            }
            if let Some(email) = &email {
                put_new_email(tx, &st, auth.user.id, &ip, email)?;
            }
            Ok(users::get(tx, auth.user.id)?)
        })
    })
    .await?;
    if new_address {
        after_address_change(&state, &user).await?;
    } else {
        identity_changed(&state, &user).await?;
    }
    Ok(HttpResponse::Ok().json(json!({"user": user})))
}

/// Puts a committed change of the user's name or picture in force on their
/// live sockets before the request answers: each gets a `user` frame, and
/// the others in its room a `member_updated` (the registry's path for
/// changes of authority).
pub(super) async fn identity_changed(state: &AppState, user: &User) -> Result<(), ApiError> {
    state
        .registry
        .send(AuthorityChanged {
            users: vec![user.clone()],
        })
        .await
        .map_err(ApiError::internal)
}

/// A new display name (validated), audited with the old one.
fn set_display_name(conn: &rusqlite::Connection, auth: &Auth, ip: &str, name: &str) -> Result<(), ApiError> {
    let before = users::get(conn, auth.user.id)?.display_name;
    users::set_display_name(conn, auth.user.id, name)?;
    Ok(self_update(auth, ip, json!({"display_name": {"from": before, "to": name}})).record(conn)?)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsernameRequest {
    username: String,
}

/// Sets the username: required after a first OIDC sign-in, allowed later.
/// Guests keep their generated name.
async fn choose_username(
    state: web::Data<AppState>,
    auth: Auth,
    ip: ClientIp,
    body: web::Json<UsernameRequest>,
) -> Result<HttpResponse, ApiError> {
    if auth.user.guest {
        return Err(ApiError::Forbidden);
    }
    let username = validate::username(&body.username)?;
    let ip = ip.to_string();
    let user = db::run(&state.pool, move |conn| -> Result<_, ApiError> {
        users::set_username(conn, auth.user.id, &username)?;
        Event::new("user_update")
            .by(auth.user.id, &username)
            .ip(&ip)
            .target(auth.user.id)
            .details(json!({"username": {"from": auth.user.username, "to": username}}))
            .record(conn)?;
        Ok(users::get(conn, auth.user.id)?)
    })
    .await?;
    identity_changed(&state, &user).await?;
    Ok(HttpResponse::Ok().json(json!({"user": user})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordRequest {
    current_password: String,
    new_password: String,
}

/// Changes the password after checking the current one; every other session
/// of the account ends, and their sockets close. Wrong current passwords
/// are limited per user and per IP (the attempt counts from before the
/// check until it proves right) and audited as `password_change_failed`.
async fn change_password(
    state: web::Data<AppState>,
    auth: Auth,
    ip: ClientIp,
    body: web::Json<PasswordRequest>,
) -> Result<HttpResponse, ApiError> {
    state.require_password_login()?;
    validate::password(&body.new_password)?;
    let id = auth.user.id;
    let stored = db::run(&state.pool, move |conn| users::credentials(conn, id))
        .await?
        .password_hash
        .ok_or(ApiError::Forbidden)?;
    let keys = [limits::ip(ip), format!("user:{id}")];
    let attempt = match state.password_changes.reserve(&keys) {
        Ok(attempt) => attempt,
        Err(refused) => {
            let actor = Actor::User(id, &auth.user.username);
            return Err(rate_limited(&state, refused, "password_change", ip, actor).await);
        }
    };
    let request = body.into_inner();
    let cost = state.config.bcrypt_cost;
    let current = request.current_password;
    if !state
        .password_jobs
        .run(move || password::verify(&current, &stored))
        .await?
    {
        attempt.keep();
        let event = Event::new("password_change_failed")
            .by(id, &auth.user.username)
            .ip(&ip.to_string())
            .target(id)
            .details(json!({"reason": "bad_password"}));
        db::run(&state.pool, move |conn| event.record(conn)).await?;
        return Err(ApiError::InvalidCredentials);
    }
    drop(attempt);
    let new_password = request.new_password;
    let new_hash = state
        .password_jobs
        .run(move || password::hash(&new_password, cost))
        .await?
        .map_err(ApiError::internal)?;
    let ip = ip.to_string();
    let ended = db::run(&state.pool, move |conn| -> Result<_, ApiError> {
        Ok(db::immediate(conn, |tx| {
            users::set_password_hash(tx, auth.user.id, &new_hash)?;
            let ended = sessions::delete_others(tx, auth.user.id, auth.session_id)?;
            self_update(&auth, &ip, json!({"password": "changed"})).record(tx)?;
            Ok::<_, db::DbError>(ended)
        })?)
    })
    .await?;
    close_sockets(&state, &ended, "your password was changed");
    Ok(HttpResponse::NoContent().finish())
}
