//! The signed-in user's own account: who am I, pick a username, change the
//! password.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::client_ip::ClientIp;
use crate::auth::session::Auth;
use crate::auth::{password, totp, validate};
use crate::db::{self, audit::Event, sessions, users};
use crate::error::ApiError;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/me", web::get().to(me))
        .route("/api/me/username", web::post().to(choose_username))
        .route("/api/me/password", web::post().to(change_password))
        .route("/api/me/totp/setup", web::post().to(totp_setup))
        .route("/api/me/totp/enable", web::post().to(totp_enable))
        .route("/api/me/totp/disable", web::post().to(totp_disable));
}

async fn me(auth: Auth) -> HttpResponse {
    HttpResponse::Ok().json(json!({"user": auth.user, "csrf_token": auth.csrf_token}))
}

/// The audit event of a user changing their own account.
fn self_update(auth: &Auth, ip: &str, details: serde_json::Value) -> Event {
    Event::new("user_update")
        .by(auth.user.id, &auth.user.username)
        .ip(ip)
        .target(auth.user.id)
        .details(details)
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
    Ok(HttpResponse::Ok().json(json!({"user": user})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordRequest {
    current_password: String,
    new_password: String,
}

/// Changes the password after checking the current one; every other session
/// of the account ends.
async fn change_password(
    state: web::Data<AppState>,
    auth: Auth,
    ip: ClientIp,
    body: web::Json<PasswordRequest>,
) -> Result<HttpResponse, ApiError> {
    validate::password(&body.new_password)?;
    let login = auth.user.username.clone();
    let stored = db::run(&state.pool, move |conn| users::find_credentials(conn, &login))
        .await?
        .and_then(|c| c.password_hash)
        .ok_or(ApiError::Forbidden)?;
    let request = body.into_inner();
    let cost = state.config.bcrypt_cost;
    let new_hash = web::block(move || {
        password::verify(&request.current_password, &stored).then(|| password::hash(&request.new_password, cost))
    })
    .await?
    .ok_or(ApiError::InvalidCredentials)?
    .map_err(ApiError::internal)?;
    let ip = ip.to_string();
    db::run(&state.pool, move |conn| -> Result<(), ApiError> {
        Ok(db::immediate(conn, |tx| {
            users::set_password_hash(tx, auth.user.id, &new_hash)?;
            sessions::delete_others(tx, auth.user.id, auth.session_id)?;
            self_update(&auth, &ip, json!({"password": "changed"})).record(tx)
        })?)
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeRequest {
    code: String,
}

/// Starts two-factor set-up: a new secret to put in an authenticator app. It
/// is pending until a code from the app proves it (`/api/me/totp/enable`).
async fn totp_setup(state: web::Data<AppState>, auth: Auth) -> Result<HttpResponse, ApiError> {
    if auth.user.guest {
        return Err(ApiError::Forbidden);
    }
    if auth.user.totp_enabled {
        return Err(ApiError::Conflict("two-factor sign-in is already on".into()));
    }
    let secret = totp::new_secret();
    let url = totp::otpauth_url("Switchboard", &auth.user.username, &secret);
    let pending = secret.clone();
    db::run(&state.pool, move |conn| {
        users::set_totp_pending(conn, auth.user.id, &pending)
    })
    .await?;
    Ok(HttpResponse::Ok().json(json!({"secret": secret, "otpauth_url": url})))
}

/// Turns two-factor sign-in on with a first code from the app.
async fn totp_enable(
    state: web::Data<AppState>,
    auth: Auth,
    ip: ClientIp,
    body: web::Json<CodeRequest>,
) -> Result<HttpResponse, ApiError> {
    let code = body.into_inner().code;
    let ip = ip.to_string();
    let user = db::run(&state.pool, move |conn| -> Result<_, ApiError> {
        let state = users::totp(conn, auth.user.id)?;
        let pending = state
            .pending
            .ok_or_else(|| ApiError::bad_request("start the set-up first (POST /api/me/totp/setup)"))?;
        let step = totp::verify(&pending, &code, chrono::Utc::now().timestamp(), None)
            .ok_or_else(|| ApiError::bad_request("that code does not match: check the app's clock"))?;
        users::enable_totp(conn, auth.user.id, step)?;
        self_update(&auth, &ip, json!({"totp": "enabled"})).record(conn)?;
        Ok(users::get(conn, auth.user.id)?)
    })
    .await?;
    Ok(HttpResponse::Ok().json(json!({"user": user})))
}

/// Turns two-factor sign-in off; a current code is needed.
async fn totp_disable(
    state: web::Data<AppState>,
    auth: Auth,
    ip: ClientIp,
    body: web::Json<CodeRequest>,
) -> Result<HttpResponse, ApiError> {
    let code = body.into_inner().code;
    let ip = ip.to_string();
    let user = db::run(&state.pool, move |conn| -> Result<_, ApiError> {
        let state = users::totp(conn, auth.user.id)?;
        let secret = state
            .secret
            .ok_or_else(|| ApiError::Conflict("two-factor sign-in is not on".into()))?;
        totp::verify(&secret, &code, chrono::Utc::now().timestamp(), state.last_step)
            .ok_or(ApiError::InvalidCredentials)?;
        users::disable_totp(conn, auth.user.id)?;
        self_update(&auth, &ip, json!({"totp": "disabled"})).record(conn)?;
        Ok(users::get(conn, auth.user.id)?)
    })
    .await?;
    Ok(HttpResponse::Ok().json(json!({"user": user})))
}
