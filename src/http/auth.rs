//! Sign-in routes: configuration, CAPTCHA, register, password login, guest
//! login, logout, and the OIDC redirect pair.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use rusqlite::Connection;
use serde::Deserialize;
use serde_json::{json, Value};

use super::client_ip::{ClientIp, UserAgent};
use super::limits::{self, rate_limited, Actor};
use crate::auth::limiter::{ip_key, Reservation};
use crate::auth::session::{self, Auth, MaybeAuth, NewSession};
use crate::auth::signin::{account_for_identity, admit, create_guest, may_register, refuse_banned};
use crate::auth::tokens::csrf_token;
use crate::auth::{account_links, password, recovery_codes, totp, validate};
use crate::db::{self, audit::Event, sessions, users, DbError};
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::realtime::registry::{Kick, Target};
use crate::state::AppState;

/// Holds the sealed OIDC sign-in between the redirect out and the one back.
const OIDC_COOKIE: &str = "sb_oidc";
const LOGIN_MAX_BYTES: usize = 254;
/// Longer invitation codes are not looked up (real ones are 22 characters).
const INVITE_MAX_CHARS: usize = 64;

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
    /// The invitation code, when REGISTRATION=invite.
    #[serde(default)]
    invite: Option<String>,
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
        "password": state.config.password_login,
        "guests": state.config.allow_guests,
        "captcha": state.config.captcha,
        "mail": state.mail.is_some(),
        "registration": state.config.registration.as_str(),
    }))
}

/// A new challenge. Limited per IP; while the store is full of live
/// challenges, refused (not audited: the store filled up is the event).
async fn captcha(state: web::Data<AppState>, ip: ClientIp) -> Result<HttpResponse, ApiError> {
    if let Err(refused) = state.captchas.hit(&limits::ip(ip)) {
        return Err(rate_limited(&state, refused, "captcha", ip, Actor::Unknown).await);
    }
    let (id, question) = state
        .captcha
        .issue()
        .map_err(|retry_after_secs| ApiError::RateLimited { retry_after_secs })?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({"id": id, "question": question})))
}

/// The answer to a successful sign-in: the session cookie, the user and the
/// session's CSRF token.
fn signed_in(state: &AppState, status: StatusCode, session: NewSession) -> HttpResponse {
    signed_in_saying(state, status, session, json!({}))
}

/// [`signed_in`], with the fields of `more` in the answer as well.
fn signed_in_saying(state: &AppState, status: StatusCode, session: NewSession, mut more: Value) -> HttpResponse {
    Metrics::inc(&state.metrics.logins);
    more["user"] = json!(session.user);
    more["csrf_token"] = json!(csrf_token(state.secret.expose(), &session.token));
    HttpResponse::build(status)
        .cookie(session::cookie(state, &session.token))
        .json(more)
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

/// A failed password login: the attempt reserved against the client IP and
/// the account stays counted, and it is audited with its reason.
struct Failure<'a> {
    attempt: Reservation<'a>,
    login: &'a str,
    ip: ClientIp,
}

impl Failure<'_> {
    async fn record(self, state: &web::Data<AppState>, reason: &'static str) -> ApiError {
        self.attempt.keep();
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

async fn refuse_banned_ip(state: &web::Data<AppState>, ip: ClientIp) -> Result<(), ApiError> {
    let ip = ip.to_string();
    db::run(&state.pool, move |conn| refuse_banned(conn, None, &ip)).await
}

/// A registration the database refused, audited when it is the user limit.
struct Refusal<'a> {
    username: &'a str,
    email: &'a str,
    max_users: u32,
    ip: &'a str,
}

fn account_refused(conn: &Connection, err: DbError, refusal: Refusal<'_>) -> ApiError {
    if !matches!(err, DbError::UserLimit) {
        return err.into();
    }
    let event = Event::new("user_limit_blocked")
        .by_name(refusal.username)
        .ip(refusal.ip)
        .details(json!({"email": refusal.email, "max_users": refusal.max_users}));
    match event.record(conn) {
        Ok(()) => ApiError::UserLimit,
        Err(e) => e.into(),
    }
}

async fn register(
    state: web::Data<AppState>,
    ip: ClientIp,
    agent: UserAgent,
    body: web::Json<RegisterRequest>,
) -> Result<HttpResponse, ApiError> {
    state.require_password_login()?;
    let request = body.into_inner();
    let username = validate::username(&request.username)?;
    let email = validate::email(&request.email)?;
    validate::password(&request.password)?;
    if !state.config.email_domain_allowed(&email) {
        return Err(ApiError::EmailDomainNotAllowed);
    }
    if let Err(refused) = state.registrations.hit(&limits::ip(ip)) {
        return Err(rate_limited(&state, refused, "register", ip, Actor::Named(&username)).await);
    }
    refuse_banned_ip(&state, ip).await?;
    let (registration, invite) = (state.config.registration, request.invite);
    let code = invite.clone();
    db::run(&state.pool, move |conn| {
        may_register(conn, registration, code.as_deref())
    })
    .await?;
    solve_captcha(&state, request.captcha_id, request.captcha_answer, ip, &username).await?;

    // The cheap refusals come before the costly hash, and again in the
    // transaction that creates the account.
    let max_users = state.config.max_users;
    let ip = ip.to_string();
    let (name, address, from) = (username.clone(), email.clone(), ip.clone());
    db::run(&state.pool, move |conn| {
        users::check_new_account(conn, &name, &address, max_users).map_err(|e| {
            let refusal = Refusal {
                username: &name,
                email: &address,
                max_users,
                ip: &from,
            };
            account_refused(conn, e, refusal)
        })
    })
    .await?;
    let cost = state.config.bcrypt_cost;
    let secret = request.password;
    let hash = state
        .password_jobs
        .run(move || password::hash(&secret, cost))
        .await?
        .map_err(ApiError::internal)?;
    let account = users::NewAccount::with_password(username, email, hash);
    let st = state.clone();
    let session = db::run(&state.pool, move |conn| -> Result<NewSession, ApiError> {
        let created = db::immediate(conn, |tx| -> Result<_, ApiError> {
            let invite = admit(tx, registration, invite.as_deref())?;
            let id = users::create_account(tx, &account, max_users)?;
            account_links::queue_verification(tx, &st, &users::get(tx, id)?)?;
            Ok((id, invite))
        });
        let (id, invite) = match created {
            Ok(created) => created,
            Err(ApiError::UserLimit) => {
                let refusal = Refusal {
                    username: &account.username,
                    email: &account.email,
                    max_users,
                    ip: &ip,
                };
                return Err(account_refused(conn, DbError::UserLimit, refusal));
            }
            Err(other) => return Err(other),
        };
        Event::new("register")
            .by(id, &account.username)
            .ip(&ip)
            .details(json!({"method": "password", "email": account.email, "invite": invite}))
            .record(conn)?;
        Ok(session::start(conn, &st, id, &ip, &agent.0)?)
    })
    .await?;
    Metrics::inc(&state.metrics.registrations);
    if let Some(postbox) = &state.mail {
        postbox.wake();
    }
    Ok(signed_in(&state, StatusCode::CREATED, session))
}

async fn login(
    state: web::Data<AppState>,
    ip: ClientIp,
    agent: UserAgent,
    body: web::Json<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    state.require_password_login()?;
    let request = body.into_inner();
    let login = request.login.trim().to_owned();
    if login.is_empty() || login.len() > LOGIN_MAX_BYTES {
        return Err(ApiError::bad_request("login is a username or email address"));
    }
    if request.password.chars().count() > validate::PASSWORD_MAX_CHARS {
        return Err(ApiError::bad_request("a password has at most 128 characters"));
    }
    let ip_limit_key = limits::ip(ip);
    // A quick refusal before the CAPTCHA; the reservation below decides.
    if let Err(refused) = state.failed_logins.check(&ip_limit_key) {
        return Err(rate_limited(&state, refused, "login", ip, Actor::Named(&login)).await);
    }
    solve_captcha(&state, request.captcha_id, request.captcha_answer, ip, &login).await?;

    let ip_text = ip.to_string();
    let lookup = login.clone();
    let credentials = db::run(&state.pool, move |conn| -> Result<_, ApiError> {
        refuse_banned(conn, None, &ip_text)?;
        Ok(users::find_credentials(conn, &lookup)?)
    })
    .await?;
    // Failures count against the account, however it was named (username or
    // email), from this address only: a stranger's guesses elsewhere cannot
    // lock its owner out. A login that names no account counts against its
    // text. The attempt counts from now until it proves right, so parallel
    // guesses cannot all pass the limit before the first is recorded.
    let account_key = match &credentials {
        Some(c) => format!("user:{}@{}", c.id, ip_key(ip.0)),
        None => format!("login:{}@{}", login.to_lowercase(), ip_key(ip.0)),
    };
    let attempt = match state.failed_logins.reserve(&[ip_limit_key, account_key]) {
        Ok(attempt) => attempt,
        Err(refused) => return Err(rate_limited(&state, refused, "login", ip, Actor::Named(&login)).await),
    };
    let password = request.password;
    let cost = state.config.bcrypt_cost;
    let hash = credentials.as_ref().and_then(|c| c.password_hash.clone());
    let verified = state
        .password_jobs
        .run(move || match hash {
            Some(hash) => password::verify(&password, &hash),
            None => {
                password::spend_verify_time(&password, cost);
                false
            }
        })
        .await?;
    let failure = Failure {
        attempt,
        login: &login,
        ip,
    };
    let credentials = match credentials {
        Some(c) if verified => c,
        None => return Err(failure.record(&state, "unknown_user").await),
        Some(c) if c.password_hash.is_none() => return Err(failure.record(&state, "no_password").await),
        Some(_) => return Err(failure.record(&state, "bad_password").await),
    };
    let second_factor = match &credentials.totp_secret {
        None => SecondFactor::NotAsked,
        Some(stored) => {
            let code = request.totp.as_deref().unwrap_or("").trim();
            if code.is_empty() {
                return Err(ApiError::TotpRequired);
            }
            match second_factor(&state, &credentials, stored, code).await? {
                Some(proof) => proof,
                None => {
                    let reason = if recovery_codes::is_authenticator_code(code) {
                        "bad_totp"
                    } else {
                        "bad_recovery_code"
                    };
                    return Err(failure.record(&state, reason).await);
                }
            }
        }
    };
    // Right: the reserved attempt is refunded when `failure` goes.
    drop(failure);
    let st = state.clone();
    let ip = ip.to_string();
    let session = db::run(&state.pool, move |conn| -> Result<NewSession, ApiError> {
        if let SecondFactor::Authenticator(step) = second_factor {
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
        users::record_login(conn, credentials.id)?;
        let mut details = json!({"method": "password"});
        if let SecondFactor::RecoveryCode { left } = second_factor {
            details["recovery_code"] = json!(true);
            details["recovery_codes_left"] = json!(left);
        }
        Event::new("login")
            .by(credentials.id, &credentials.username)
            .ip(&ip)
            .details(details)
            .record(conn)?;
        Ok(session::start(conn, &st, credentials.id, &ip, &agent.0)?)
    })
    .await?;
    // After a recovery code, the client says how many are left.
    let more = match second_factor {
        SecondFactor::RecoveryCode { left } => json!({"recovery_codes_left": left}),
        SecondFactor::NotAsked | SecondFactor::Authenticator(_) => json!({}),
    };
    Ok(signed_in_saying(&state, StatusCode::OK, session, more))
}

/// What proved the second factor of a password login.
#[derive(Debug, Clone, Copy)]
enum SecondFactor {
    /// The account has two-factor sign-in off.
    NotAsked,
    /// An authenticator code of this time step (recorded with the session,
    /// so the code works once).
    Authenticator(i64),
    /// A recovery code, used up already; `left` unused ones remain.
    RecoveryCode { left: i64 },
}

/// Checks `code` (an authenticator code, or anything else as a recovery
/// code) for an account with two-factor sign-in on: `None` when it is wrong
/// or used. A recovery code is used up here; it needs no sealed secret, so
/// it works even when SECRET_KEY has changed.
async fn second_factor(
    state: &AppState,
    credentials: &users::Credentials,
    stored: &str,
    code: &str,
) -> Result<Option<SecondFactor>, ApiError> {
    if recovery_codes::is_authenticator_code(code) {
        let secret = open_totp_secret(state, stored)?;
        let step = totp::verify(&secret, code, Utc::now().timestamp(), credentials.totp_last_step);
        return Ok(step.map(SecondFactor::Authenticator));
    }
    let Some(code) = recovery_codes::normalise(code) else {
        return Ok(None);
    };
    let (id, hash) = (credentials.id, recovery_codes::hash(credentials.id, &code));
    db::run(&state.pool, move |conn| -> Result<_, ApiError> {
        if !db::recovery_codes::consume(conn, id, &hash)? {
            return Ok(None);
        }
        let left = db::recovery_codes::remaining(conn, id)?;
        Ok(Some(SecondFactor::RecoveryCode { left }))
    })
    .await
}

/// A stored two-factor secret in clear. It fails only when SECRET_KEY has
/// changed since the secret was sealed (or the row was altered).
pub fn open_totp_secret(state: &AppState, stored: &str) -> Result<String, ApiError> {
    totp::open_secret(&state.totp_key, stored)
        .ok_or_else(|| ApiError::internal("a two-factor secret does not open: has SECRET_KEY changed?"))
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
    if let Err(refused) = state.guest_logins.hit(&limits::ip(ip)) {
        return Err(rate_limited(&state, refused, "guest", ip, Actor::Named(&name)).await);
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

#[derive(Debug, Deserialize)]
pub struct OidcLoginQuery {
    /// An invitation, for a first sign-in while REGISTRATION=invite.
    invite: Option<String>,
}

/// Starts an OIDC sign-in: no session needed, so it is limited per IP.
async fn oidc_login(
    state: web::Data<AppState>,
    ip: ClientIp,
    query: web::Query<OidcLoginQuery>,
) -> Result<HttpResponse, ApiError> {
    let oidc = state.oidc.as_ref().ok_or(ApiError::NotFound)?;
    if let Err(refused) = state.oidc_starts.hit(&format!("start:{}", limits::ip(ip))) {
        return Err(rate_limited(&state, refused, "oidc", ip, Actor::Unknown).await);
    }
    let invite = query.into_inner().invite.filter(|code| code.len() <= INVITE_MAX_CHARS);
    match oidc.begin(invite).await {
        Ok((url, sealed)) => {
            let mut response = redirect(url.as_str());
            response
                .add_cookie(&oidc_cookie(&state, sealed))
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
    // Each callback with a code costs a request to the provider.
    if let Err(refused) = state.oidc_starts.hit(&format!("callback:{}", limits::ip(ip))) {
        let error = rate_limited(&state, refused, "oidc_callback", ip, Actor::Unknown).await;
        return Ok(with_oidc_cookie_cleared(
            &state,
            redirect(&format!("/login?error={}", error.code())),
        ));
    }
    let sealed = req
        .cookie(OIDC_COOKIE)
        .map(|c| c.value().to_owned())
        .unwrap_or_default();
    let outcome = match (&query.error, &query.code, &query.state) {
        (None, Some(code), Some(returned_state)) => oidc.finish(returned_state, &sealed, code).await,
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
        let id = match account_for_identity(conn, &st, &identity, &ip_text) {
            Ok(id) => id,
            Err(refused @ (ApiError::RegistrationClosed | ApiError::EmailDomainNotAllowed)) => {
                Event::new("login_failed")
                    .by_name(&identity.email)
                    .ip(&ip_text)
                    .details(json!({"method": "oidc", "reason": refused.code()}))
                    .record(conn)?;
                return Err(refused);
            }
            Err(other) => return Err(other),
        };
        let user = users::get(conn, id)?;
        if let Err(banned) = refuse_banned(conn, Some(id), &ip_text) {
            Event::new("login_failed")
                .by(id, &user.username)
                .ip(&ip_text)
                .details(json!({"method": "oidc", "reason": "banned"}))
                .record(conn)?;
            return Err(banned);
        }
        users::record_login(conn, id)?;
        Event::new("login")
            .by(id, &user.username)
            .ip(&ip_text)
            .details(json!({"method": "oidc", "issuer": identity.issuer}))
            .record(conn)?;
        Ok(session::start(conn, &st, id, &ip_text, &agent.0)?)
    })
    .await;
    if let Some(postbox) = &state.mail {
        postbox.wake(); // a first sign-in queues the welcome mail
    }
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
        Err(
            e @ (ApiError::Banned { .. }
            | ApiError::UserLimit
            | ApiError::RegistrationClosed
            | ApiError::EmailDomainNotAllowed),
        ) => redirect(&format!("/login?error={}", e.code())),
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
