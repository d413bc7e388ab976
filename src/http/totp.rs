//! The signed-in user's two-factor sign-in: set-up (with a QR code of the
//! `otpauth://` URL, drawn by the server), turning it on (which hands out
//! ten recovery codes, once), turning it off, and a new set of recovery
//! codes in place of the old.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::auth::open_totp_secret;
use super::client_ip::ClientIp;
use super::limits::{self, rate_limited, Actor};
use super::me::self_update;
use crate::auth::limiter::ip_key;
use crate::auth::session::Auth;
use crate::auth::{password, recovery_codes, totp};
use crate::db::{self, audit::Event, users};
use crate::error::ApiError;
use crate::state::AppState;

/// The name authenticator apps show beside the account.
const ISSUER: &str = "Switchboard";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/me/totp/setup", web::post().to(setup))
        .route("/api/me/totp/qr", web::get().to(qr))
        .route("/api/me/totp/enable", web::post().to(enable))
        .route("/api/me/totp/disable", web::post().to(disable))
        .route("/api/me/totp/recovery-codes", web::get().to(recovery_status))
        .route("/api/me/totp/recovery-codes", web::post().to(renew_recovery_codes));
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeRequest {
    code: String,
}

/// The password (for an account that has one) and a code: what a change to
/// two-factor sign-in asks of the person making it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfirmRequest {
    #[serde(default)]
    password: Option<String>,
    code: String,
}

/// An answer that carries a secret: never stored by a cache.
fn secret_answer(body: serde_json::Value) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(body)
}

/// Starts set-up: a new secret to put in an authenticator app. It is
/// pending until a code from the app proves it (`enable`), and stored
/// sealed, like the active secret.
async fn setup(state: web::Data<AppState>, auth: Auth) -> Result<HttpResponse, ApiError> {
    if auth.user.guest {
        return Err(ApiError::Forbidden);
    }
    if auth.user.totp_enabled {
        return Err(ApiError::Conflict("two-factor sign-in is already on".into()));
    }
    let secret = totp::new_secret();
    let url = totp::otpauth_url(ISSUER, &auth.user.username, &secret);
    let pending = totp::seal_secret(&state.totp_key, &secret);
    db::run(&state.pool, move |conn| {
        users::set_totp_pending(conn, auth.user.id, &pending)
    })
    .await?;
    Ok(secret_answer(json!({"secret": secret, "otpauth_url": url})))
}

/// The pending secret's `otpauth://` URL as a QR code (SVG), for the app to
/// scan. It holds the secret: `no-store`, and sandboxed like every image.
async fn qr(state: web::Data<AppState>, auth: Auth) -> Result<HttpResponse, ApiError> {
    let id = auth.user.id;
    let stored = db::run(&state.pool, move |conn| users::totp(conn, id))
        .await?
        .pending
        .ok_or(ApiError::NotFound)?;
    let secret = open_totp_secret(&state, &stored)?;
    let svg = totp::qr_svg(&totp::otpauth_url(ISSUER, &auth.user.username, &secret)).map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok()
        .content_type("image/svg+xml")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("sandbox; default-src 'none'"),
        ))
        .body(svg))
}

/// Turns two-factor sign-in on with a first code from the app, and hands
/// out the recovery codes: the only time they are shown.
async fn enable(
    state: web::Data<AppState>,
    auth: Auth,
    ip: ClientIp,
    body: web::Json<CodeRequest>,
) -> Result<HttpResponse, ApiError> {
    let code = body.into_inner().code;
    let ip = ip.to_string();
    let st = state.clone();
    let codes = recovery_codes::new_set();
    let hashes = recovery_codes::hashes(auth.user.id, &codes);
    let user = db::run(&state.pool, move |conn| -> Result<_, ApiError> {
        let stored = users::totp(conn, auth.user.id)?
            .pending
            .ok_or_else(|| ApiError::bad_request("start the set-up first (POST /api/me/totp/setup)"))?;
        let pending = open_totp_secret(&st, &stored)?;
        let step = totp::verify(&pending, &code, chrono::Utc::now().timestamp(), None)
            .ok_or_else(|| ApiError::bad_request("that code does not match: check the app's clock"))?;
        db::immediate(conn, |tx| -> Result<_, ApiError> {
            users::enable_totp(tx, auth.user.id, step)?;
            db::recovery_codes::replace(tx, auth.user.id, &hashes)?;
            self_update(&auth, &ip, json!({"totp": "enabled"})).record(tx)?;
            Ok(users::get(tx, auth.user.id)?)
        })
    })
    .await?;
    Ok(secret_answer(json!({"user": user, "recovery_codes": codes})))
}

/// Turns two-factor sign-in off: the password (for an account that has one)
/// and a current code, or an unused recovery code (someone who lost the
/// app must be able to start again).
async fn disable(
    state: web::Data<AppState>,
    auth: Auth,
    ip: ClientIp,
    body: web::Json<ConfirmRequest>,
) -> Result<HttpResponse, ApiError> {
    let check = Check {
        limited_as: "totp_disable",
        failure: "totp_disable_failed",
        recovery_code_accepted: true,
    };
    confirm_holder(&state, &auth, ip, body.into_inner(), check).await?;
    let id = auth.user.id;
    let ip = ip.to_string();
    let user = db::run(&state.pool, move |conn| -> Result<_, ApiError> {
        db::immediate(conn, |tx| -> Result<_, ApiError> {
            users::disable_totp(tx, id)?;
            self_update(&auth, &ip, json!({"totp": "disabled"})).record(tx)?;
            Ok(users::get(tx, id)?)
        })
    })
    .await?;
    Ok(HttpResponse::Ok().json(json!({"user": user})))
}

/// How many unused recovery codes the user has left.
async fn recovery_status(state: web::Data<AppState>, auth: Auth) -> Result<HttpResponse, ApiError> {
    if !auth.user.totp_enabled {
        return Err(ApiError::Conflict("two-factor sign-in is not on".into()));
    }
    let id = auth.user.id;
    let remaining = db::run(&state.pool, move |conn| db::recovery_codes::remaining(conn, id)).await?;
    Ok(HttpResponse::Ok().json(json!({"remaining": remaining})))
}

/// A new set of recovery codes; the old ones stop working. Needs the
/// password (for an account that has one) and a current code from the app.
async fn renew_recovery_codes(
    state: web::Data<AppState>,
    auth: Auth,
    ip: ClientIp,
    body: web::Json<ConfirmRequest>,
) -> Result<HttpResponse, ApiError> {
    let check = Check {
        limited_as: "recovery_codes",
        failure: "recovery_codes_failed",
        recovery_code_accepted: false,
    };
    confirm_holder(&state, &auth, ip, body.into_inner(), check).await?;
    let id = auth.user.id;
    let codes = recovery_codes::new_set();
    let hashes = recovery_codes::hashes(id, &codes);
    let ip = ip.to_string();
    db::run(&state.pool, move |conn| -> Result<(), ApiError> {
        db::immediate(conn, |tx| -> Result<(), ApiError> {
            db::recovery_codes::replace(tx, id, &hashes)?;
            Ok(self_update(&auth, &ip, json!({"recovery_codes": "renewed"})).record(tx)?)
        })
    })
    .await?;
    Ok(secret_answer(json!({"recovery_codes": codes})))
}

/// How [`confirm_holder`] counts and records a refusal.
struct Check {
    /// `details.what` of a `rate_limited` refusal.
    limited_as: &'static str,
    /// The audit action of a wrong password or code.
    failure: &'static str,
    recovery_code_accepted: bool,
}

/// Proof that the account holder is here, for a change to two-factor
/// sign-in: the password (for an account that has one) and a current,
/// unused authenticator code, or where `check` allows, an unused recovery
/// code, which this uses up. Wrong ones count against the failed-login
/// limit like a login's (per IP, and per account from that IP; the attempt
/// counts from before the check until it proves right) and are audited
/// with their reason.
async fn confirm_holder(
    state: &web::Data<AppState>,
    auth: &Auth,
    ip: ClientIp,
    given: ConfirmRequest,
    check: Check,
) -> Result<(), ApiError> {
    let id = auth.user.id;
    let credentials = db::run(&state.pool, move |conn| users::credentials(conn, id)).await?;
    let stored = credentials
        .totp_secret
        .ok_or_else(|| ApiError::Conflict("two-factor sign-in is not on".into()))?;
    let given_password = given.password.unwrap_or_default();
    if credentials.password_hash.is_some() && given_password.is_empty() {
        return Err(ApiError::bad_request("this needs your password as well as a code"));
    }
    let keys = [limits::ip(ip), format!("user:{id}@{}", ip_key(ip.0))];
    let attempt = match state.failed_logins.reserve(&keys) {
        Ok(attempt) => attempt,
        Err(refused) => {
            let actor = Actor::User(id, &auth.user.username);
            return Err(rate_limited(state, refused, check.limited_as, ip, actor).await);
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
    let failure = if !password_right {
        Some("bad_password")
    } else if recovery_codes::is_authenticator_code(&given.code) {
        let secret = open_totp_secret(state, &stored)?;
        let now = chrono::Utc::now().timestamp();
        match totp::verify(&secret, &given.code, now, credentials.totp_last_step) {
            Some(step) if db::run(&state.pool, move |conn| users::use_totp_step(conn, id, step)).await? => None,
            _ => Some("bad_totp"),
        }
    } else if !check.recovery_code_accepted {
        Some("bad_totp")
    } else {
        match recovery_codes::normalise(&given.code) {
            Some(code) => {
                let hash = recovery_codes::hash(id, &code);
                let used = db::run(&state.pool, move |conn| db::recovery_codes::consume(conn, id, &hash)).await?;
                (!used).then_some("bad_recovery_code")
            }
            None => Some("bad_recovery_code"),
        }
    };
    let Some(reason) = failure else {
        // Right: the reserved attempt is refunded.
        drop(attempt);
        return Ok(());
    };
    attempt.keep();
    let event = Event::new(check.failure)
        .by(id, &auth.user.username)
        .ip(&ip.to_string())
        .target(id)
        .details(json!({"reason": reason}));
    db::run(&state.pool, move |conn| event.record(conn)).await?;
    Err(ApiError::InvalidCredentials)
}
