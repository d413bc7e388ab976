//! The signed-in user's own account: who am I, pick a username, change the
//! password, two-factor sign-in.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::auth::open_totp_secret;
use super::client_ip::ClientIp;
use super::limits::{self, rate_limited, Actor};
use crate::auth::limiter::ip_key;
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
struct UsernameRequest {
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
struct PasswordRequest {
    current_password: String,
    new_password: String,
}

/// Changes the password after checking the current one; every other session
/// of the account ends. Wrong current passwords are limited per user and per
/// IP (the attempt counts from before the check until it proves right) and
/// audited as `password_change_failed`.
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
struct CodeRequest {
    code: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DisableRequest {
    /// Required for an account that has a password.
    #[serde(default)]
    password: Option<String>,
    code: String,
}

/// Starts two-factor set-up: a new secret to put in an authenticator app. It
/// is pending until a code from the app proves it (`/api/me/totp/enable`).
/// Stored sealed, like the active secret.
async fn totp_setup(state: web::Data<AppState>, auth: Auth) -> Result<HttpResponse, ApiError> {
    if auth.user.guest {
        return Err(ApiError::Forbidden);
    }
    if auth.user.totp_enabled {
        return Err(ApiError::Conflict("two-factor sign-in is already on".into()));
    }
    let secret = totp::new_secret();
    let url = totp::otpauth_url("Switchboard", &auth.user.username, &secret);
    let pending = totp::seal_secret(&state.totp_key, &secret);
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
    let st = state.clone();
    let user = db::run(&state.pool, move |conn| -> Result<_, ApiError> {
        let stored = users::totp(conn, auth.user.id)?
            .pending
            .ok_or_else(|| ApiError::bad_request("start the set-up first (POST /api/me/totp/setup)"))?;
        let pending = open_totp_secret(&st, &stored)?;
        let step = totp::verify(&pending, &code, chrono::Utc::now().timestamp(), None)
            .ok_or_else(|| ApiError::bad_request("that code does not match: check the app's clock"))?;
        users::enable_totp(conn, auth.user.id, step)?;
        self_update(&auth, &ip, json!({"totp": "enabled"})).record(conn)?;
        Ok(users::get(conn, auth.user.id)?)
    })
    .await?;
    Ok(HttpResponse::Ok().json(json!({"user": user})))
}

/// Turns two-factor sign-in off: the password (for an account that has one)
/// and a current code are needed. Wrong ones count against the failed-login
/// limit like a login's, per IP and per account from that IP, and are
/// audited as `totp_disable_failed`.
async fn totp_disable(
    state: web::Data<AppState>,
    auth: Auth,
    ip: ClientIp,
    body: web::Json<DisableRequest>,
) -> Result<HttpResponse, ApiError> {
    let request = body.into_inner();
    let id = auth.user.id;
    let credentials = db::run(&state.pool, move |conn| users::credentials(conn, id)).await?;
    let stored = credentials
        .totp_secret
        .ok_or_else(|| ApiError::Conflict("two-factor sign-in is not on".into()))?;
    let given_password = request.password.unwrap_or_default();
    if credentials.password_hash.is_some() && given_password.is_empty() {
        return Err(ApiError::bad_request(
            "turning two-factor sign-in off needs your password",
        ));
    }
    let keys = [limits::ip(ip), format!("user:{id}@{}", ip_key(ip.0))];
    let attempt = match state.failed_logins.reserve(&keys) {
        Ok(attempt) => attempt,
        Err(refused) => {
            let actor = Actor::User(id, &auth.user.username);
            return Err(rate_limited(&state, refused, "totp_disable", ip, actor).await);
        }
    };
    let password_right = match credentials.password_hash {
        Some(hash) => {
            state
                .password_jobs
                .run(move || password::verify(&given_password, &hash))
                .await?
        }
        None => true,
    };
    let secret = open_totp_secret(&state, &stored)?;
    let now = chrono::Utc::now().timestamp();
    let code_right = totp::verify(&secret, &request.code, now, credentials.totp_last_step).is_some();
    let ip = ip.to_string();
    let failure = match (password_right, code_right) {
        (true, true) => None,
        (false, _) => Some("bad_password"),
        (true, false) => Some("bad_totp"),
    };
    if let Some(reason) = failure {
        attempt.keep();
        let event = Event::new("totp_disable_failed")
            .by(id, &auth.user.username)
            .ip(&ip)
            .target(id)
            .details(json!({"reason": reason}));
        db::run(&state.pool, move |conn| event.record(conn)).await?;
        return Err(ApiError::InvalidCredentials);
    }
    // Right: the reserved attempt is refunded.
    drop(attempt);
    let user = db::run(&state.pool, move |conn| -> Result<_, ApiError> {
        users::disable_totp(conn, id)?;
        self_update(&auth, &ip, json!({"totp": "disabled"})).record(conn)?;
        Ok(users::get(conn, id)?)
    })
    .await?;
    Ok(HttpResponse::Ok().json(json!({"user": user})))
}
