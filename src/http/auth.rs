//! Sign-in routes: configuration, CAPTCHA, register, password login, guest
//! login, logout, and the OIDC redirect pair.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;

use super::client_ip::{ClientIp, UserAgent};
use crate::auth::session::{self, Auth, MaybeAuth, NewSession};
use crate::auth::signin::{account_for_identity, create_guest, promote_if_admin_email, refuse_banned};
use crate::auth::tokens::csrf_token;
use crate::auth::{password, totp, validate};
use crate::db::{self, audit::Event, sessions, users, DbError};
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::realtime::registry::{Kick, Target};
use crate::state::AppState;

/// Holds the OIDC `state` between the redirect out and the one back.
const OIDC_COOKIE: &str = "sb_oidc";
const LOGIN_MAX_BYTES: usize = 254;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/auth/config", web::get().to(auth_config))
        .route("/api/auth/captcha", web::get().to(captcha))
        .route("/api/auth/register", web::post().to(register))
        .route("/api/auth/login", web::post().to(login))
        .route("/api/auth/guest", web::post().to(guest))
        .route("/api/auth/logout", web::post().to(logout))
        .route("/auth/oidc/login", web::get().to(oidc_login))
        .route("/auth/oidc/callback", web::get().to(oidc_callback));
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    username: String,
    email: String,
    password: String,
    #[serde(default)]
    captcha_id: Option<String>,
    #[serde(default)]
    captcha_answer: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    login: String,
    password: String,
    #[serde(default)]
    captcha_id: Option<String>,
    #[serde(default)]
    captcha_answer: Option<String>,
    /// The two-factor code, for accounts that have it on.
    #[serde(default)]
    totp: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuestRequest {
    name: String,
}

async fn auth_config(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "oidc": state.oidc.is_some(),
        "oidc_name": state.oidc.as_ref().map(|o| o.name()).unwrap_or(""),
        "password": true,
        "guests": state.config.allow_guests,
        "captcha": state.config.captcha,
    }))
}

async fn captcha(state: web::Data<AppState>) -> HttpResponse {
    let (id, question) = state.captcha.issue();
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({"id": id, "question": question}))
}

/// The answer to a successful sign-in: the session cookie, the user and the
/// session's CSRF token.
fn signed_in(state: &AppState, status: StatusCode, session: NewSession) -> HttpResponse {
    Metrics::inc(&state.metrics.logins);
    HttpResponse::build(status)
        .cookie(session::cookie(state, &session.token))
        .json(json!({"user": session.user, "csrf_token": csrf_token(state.secret.expose(), &session.token)}))
}

/// Checks the CAPTCHA when it is on; a failure is audited.
async fn solve_captcha(
    state: &web::Data<AppState>,
    id: Option<String>,
    answer: Option<String>,
    ip: ClientIp,
    login: &str,
) -> Result<(), ApiError> {
    if !state.config.captcha
        || state
            .captcha
            .solve(id.as_deref().unwrap_or(""), answer.as_deref().unwrap_or(""))
    {
        return Ok(());
    }
    let event = Event::new("captcha_failed").by_name(login).ip(&ip.to_string());
    db::run(&state.pool, move |conn| event.record(conn)).await?;
    Err(ApiError::CaptchaFailed)
}

/// A failed password login: counted against the client IP and the account,
/// and audited with its reason.
struct Failure<'a> {
    keys: [String; 2],
    login: &'a str,
    ip: ClientIp,
}

impl Failure<'_> {
    async fn record(&self, state: &web::Data<AppState>, reason: &'static str) -> ApiError {
        for key in &self.keys {
            state.failed_logins.record(key);
        }
        Metrics::inc(&state.metrics.login_failures);
        let event = Event::new("login_failed")
            .by_name(self.login)
            .ip(&self.ip.to_string())
            .details(json!({"reason": reason}));
        match db::run(&state.pool, move |conn| event.record(conn)).await {
            Ok(()) => ApiError::InvalidCredentials,
            Err(e) => e.into(),
        }
    }
}

/// `RateLimited` (audited) when `key` has used up its failed logins.
async fn refuse_if_limited(state: &web::Data<AppState>, key: &str, login: &str, ip: ClientIp) -> Result<(), ApiError> {
    let Err(retry_after_secs) = state.failed_logins.check(key) else {
        return Ok(());
    };
    let event = Event::new("rate_limited")
        .by_name(login)
        .ip(&ip.to_string())
        .details(json!({"what": "login", "retry_after": retry_after_secs}));
    db::run(&state.pool, move |conn| event.record(conn)).await?;
    Err(ApiError::RateLimited { retry_after_secs })
}

async fn refuse_banned_ip(state: &web::Data<AppState>, ip: ClientIp) -> Result<(), ApiError> {
    let ip = ip.to_string();
    db::run(&state.pool, move |conn| refuse_banned(conn, None, &ip)).await
}

async fn register(
    state: web::Data<AppState>,
    ip: ClientIp,
    agent: UserAgent,
    body: web::Json<RegisterRequest>,
) -> Result<HttpResponse, ApiError> {
    let request = body.into_inner();
    let username = validate::username(&request.username)?;
    let email = validate::email(&request.email)?;
    validate::password(&request.password)?;
    refuse_banned_ip(&state, ip).await?;
    solve_captcha(&state, request.captcha_id, request.captcha_answer, ip, &username).await?;

    let cost = state.config.bcrypt_cost;
    let hash = web::block(move || password::hash(&request.password, cost))
        .await?
        .map_err(ApiError::internal)?;
    let account = users::NewAccount::with_password(username, email, hash);
    let st = state.clone();
    let ip = ip.to_string();
    let session = db::run(&state.pool, move |conn| -> Result<NewSession, ApiError> {
        let created = db::immediate(conn, |tx| users::create_account(tx, &account, st.config.max_users));
        let id = match created {
            Err(DbError::UserLimit) => {
                Event::new("user_limit_blocked")
                    .by_name(&account.username)
                    .ip(&ip)
                    .details(json!({"email": account.email, "max_users": st.config.max_users}))
                    .record(conn)?;
                return Err(ApiError::UserLimit);
            }
            other => other?,
        };
        promote_if_admin_email(conn, &st, id, Some(&account.email))?;
        Event::new("register")
            .by(id, &account.username)
            .ip(&ip)
            .details(json!({"method": "password", "email": account.email}))
            .record(conn)?;
        Ok(session::start(conn, &st, id, &ip, &agent.0)?)
    })
    .await?;
    Metrics::inc(&state.metrics.registrations);
    Ok(signed_in(&state, StatusCode::CREATED, session))
}

async fn login(
    state: web::Data<AppState>,
    ip: ClientIp,
    agent: UserAgent,
    body: web::Json<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let request = body.into_inner();
    let login = request.login.trim().to_owned();
    if login.is_empty() || login.len() > LOGIN_MAX_BYTES {
        return Err(ApiError::bad_request("login is a username or email address"));
    }
    if request.password.chars().count() > validate::PASSWORD_MAX_CHARS {
        return Err(ApiError::bad_request("a password has at most 128 characters"));
    }
    let ip_key = format!("ip:{ip}");
    refuse_if_limited(&state, &ip_key, &login, ip).await?;
    solve_captcha(&state, request.captcha_id, request.captcha_answer, ip, &login).await?;

    let ip_text = ip.to_string();
    let lookup = login.clone();
    let credentials = db::run(&state.pool, move |conn| -> Result<_, ApiError> {
        refuse_banned(conn, None, &ip_text)?;
        Ok(users::find_credentials(conn, &lookup)?)
    })
    .await?;
    // Failures count against the account, however it was named (username or
    // email); a login that names no account counts against its text.
    let account_key = match &credentials {
        Some(c) => format!("user:{}", c.id),
        None => format!("login:{}", login.to_lowercase()),
    };
    refuse_if_limited(&state, &account_key, &login, ip).await?;
    let password = request.password;
    let cost = state.config.bcrypt_cost;
    let hash = credentials.as_ref().and_then(|c| c.password_hash.clone());
    let verified = web::block(move || match hash {
        Some(hash) => password::verify(&password, &hash),
        None => {
            password::spend_verify_time(&password, cost);
            false
        }
    })
    .await?;
    let failure = Failure {
        keys: [ip_key, account_key],
        login: &login,
        ip,
    };
    let credentials = match credentials {
        Some(c) if verified => c,
        None => return Err(failure.record(&state, "unknown_user").await),
        Some(c) if c.password_hash.is_none() => return Err(failure.record(&state, "no_password").await),
        Some(_) => return Err(failure.record(&state, "bad_password").await),
    };
    let totp_step = match &credentials.totp_secret {
        None => None,
        Some(secret) => {
            let code = request.totp.as_deref().unwrap_or("").trim();
            if code.is_empty() {
                return Err(ApiError::TotpRequired);
            }
            match totp::verify(secret, code, Utc::now().timestamp(), credentials.totp_last_step) {
                Some(step) => Some(step),
                None => return Err(failure.record(&state, "bad_totp").await),
            }
        }
    };
    let st = state.clone();
    let ip = ip.to_string();
    let session = db::run(&state.pool, move |conn| -> Result<NewSession, ApiError> {
        if let Some(step) = totp_step {
            if !users::use_totp_step(conn, credentials.id, step)? {
                return Err(ApiError::InvalidCredentials);
            }
        }
        if let Err(banned) = refuse_banned(conn, Some(credentials.id), &ip) {
            Event::new("login_failed")
                .by(credentials.id, &credentials.username)
                .ip(&ip)
                .details(json!({"reason": "banned"}))
                .record(conn)?;
            return Err(banned);
        }
        promote_if_admin_email(conn, &st, credentials.id, credentials.email.as_deref())?;
        users::record_login(conn, credentials.id)?;
        Event::new("login")
            .by(credentials.id, &credentials.username)
            .ip(&ip)
            .details(json!({"method": "password"}))
            .record(conn)?;
        Ok(session::start(conn, &st, credentials.id, &ip, &agent.0)?)
    })
    .await?;
    Ok(signed_in(&state, StatusCode::OK, session))
}

/// Signs in as a guest. A guest who is signed in already keeps their identity.
async fn guest(
    state: web::Data<AppState>,
    ip: ClientIp,
    agent: UserAgent,
    current: MaybeAuth,
    body: web::Json<GuestRequest>,
) -> Result<HttpResponse, ApiError> {
    if !state.config.allow_guests {
        return Err(ApiError::GuestsDisabled);
    }
    let name = validate::display_name(&body.name, "name")?;
    if let Some(auth) = current.0.filter(|a| a.user.guest) {
        return Ok(HttpResponse::Ok().json(json!({"user": auth.user, "csrf_token": auth.csrf_token})));
    }
    if let Err(retry_after_secs) = state.guest_logins.hit(&format!("ip:{ip}")) {
        let event = Event::new("rate_limited")
            .ip(&ip.to_string())
            .details(json!({"what": "guest", "retry_after": retry_after_secs}));
        db::run(&state.pool, move |conn| event.record(conn)).await?;
        return Err(ApiError::RateLimited { retry_after_secs });
    }
    let st = state.clone();
    let ip = ip.to_string();
    let session = db::run(&state.pool, move |conn| -> Result<NewSession, ApiError> {
        refuse_banned(conn, None, &ip)?;
        let id = create_guest(conn, &name)?;
        let session = session::start(conn, &st, id, &ip, &agent.0)?;
        Event::new("login")
            .by(id, &session.user.username)
            .ip(&ip)
            .details(json!({"method": "guest"}))
            .record(conn)?;
        Ok(session)
    })
    .await?;
    Ok(signed_in(&state, StatusCode::OK, session))
}

/// Ends the session the request was made with (and only that one).
async fn logout(state: web::Data<AppState>, auth: Auth, ip: ClientIp) -> Result<HttpResponse, ApiError> {
    let ip = ip.to_string();
    let session_id = auth.session_id;
    db::run(&state.pool, move |conn| -> Result<(), ApiError> {
        sessions::delete(conn, session_id)?;
        Event::new("logout")
            .by(auth.user.id, &auth.user.username)
            .ip(&ip)
            .record(conn)?;
        Ok(())
    })
    .await?;
    state.registry.do_send(Kick {
        target: Target::Login(session_id),
        reason: "signed out".into(),
    });
    Ok(HttpResponse::NoContent()
        .cookie(session::removal_cookie(&state))
        .finish())
}

fn redirect(to: &str) -> HttpResponse {
    HttpResponse::Found()
        .insert_header((header::LOCATION, to))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

fn oidc_cookie(state: &AppState, value: String) -> Cookie<'static> {
    Cookie::build(OIDC_COOKIE, value)
        .http_only(true)
        .same_site(SameSite::Lax)
        .path("/auth/oidc")
        .secure(state.config.is_https())
        .max_age(actix_web::cookie::time::Duration::minutes(10))
        .finish()
}

async fn oidc_login(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let oidc = state.oidc.as_ref().ok_or(ApiError::NotFound)?;
    match oidc.begin().await {
        Ok((url, oidc_state)) => {
            let mut response = redirect(url.as_str());
            response
                .add_cookie(&oidc_cookie(&state, oidc_state))
                .map_err(ApiError::internal)?;
            Ok(response)
        }
        Err(e) => {
            tracing::warn!(error = %e, "OIDC sign-in could not start");
            Ok(redirect("/login?error=oidc_failed"))
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

async fn oidc_callback(
    req: HttpRequest,
    state: web::Data<AppState>,
    ip: ClientIp,
    agent: UserAgent,
    query: web::Query<CallbackQuery>,
) -> Result<HttpResponse, ApiError> {
    let oidc = state.oidc.as_ref().ok_or(ApiError::NotFound)?;
    let browser_state = req
        .cookie(OIDC_COOKIE)
        .map(|c| c.value().to_owned())
        .unwrap_or_default();
    let outcome = match (&query.error, &query.code, &query.state) {
        (None, Some(code), Some(returned_state)) => oidc.finish(returned_state, &browser_state, code).await,
        (error, ..) => Err(crate::auth::oidc::OidcError::Provider(
            error.clone().unwrap_or_else(|| "missing code or state".into()),
        )),
    };
    let ip_text = ip.to_string();
    let identity = match outcome {
        Ok(identity) => identity,
        Err(e) => {
            tracing::warn!(error = %e, "OIDC sign-in failed");
            let event = Event::new("login_failed")
                .ip(&ip_text)
                .details(json!({"method": "oidc", "reason": e.page_code()}));
            db::run(&state.pool, move |conn| event.record(conn)).await?;
            return Ok(with_oidc_cookie_cleared(
                &state,
                redirect(&format!("/login?error={}", e.page_code())),
            ));
        }
    };
    let st = state.clone();
    let signed = db::run(&state.pool, move |conn| -> Result<NewSession, ApiError> {
        let id = account_for_identity(conn, &st, &identity, &ip_text)?;
        let user = users::get(conn, id)?;
        if let Err(banned) = refuse_banned(conn, Some(id), &ip_text) {
            Event::new("login_failed")
                .by(id, &user.username)
                .ip(&ip_text)
                .details(json!({"method": "oidc", "reason": "banned"}))
                .record(conn)?;
            return Err(banned);
        }
        promote_if_admin_email(conn, &st, id, Some(&identity.email))?;
        users::record_login(conn, id)?;
        Event::new("login")
            .by(id, &user.username)
            .ip(&ip_text)
            .details(json!({"method": "oidc", "issuer": identity.issuer}))
            .record(conn)?;
        Ok(session::start(conn, &st, id, &ip_text, &agent.0)?)
    })
    .await;
    let response = match signed {
        Ok(session) => {
            let next = if session.user.needs_username {
                "/choose-username"
            } else {
                "/"
            };
            Metrics::inc(&state.metrics.logins);
            let mut response = redirect(next);
            response
                .add_cookie(&session::cookie(&state, &session.token))
                .map_err(ApiError::internal)?;
            response
        }
        Err(e @ (ApiError::Banned { .. } | ApiError::UserLimit)) => redirect(&format!("/login?error={}", e.code())),
        Err(other) => return Err(other),
    };
    Ok(with_oidc_cookie_cleared(&state, response))
}

fn with_oidc_cookie_cleared(state: &AppState, mut response: HttpResponse) -> HttpResponse {
    let mut gone = oidc_cookie(state, String::new());
    gone.make_removal();
    // Adding a well-formed cookie cannot fail.
    let _ = response.add_cookie(&gone);
    response
}
