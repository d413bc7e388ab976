//! Login sessions: the `sb_session` cookie, the request extractor that turns
//! it into a signed-in user (refused when a ban covers the user or the
//! address the request comes from), and the CSRF token bound to it.

use std::future::Future;
use std::pin::Pin;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};
use rusqlite::Connection;

use super::signin::refuse_banned;
use super::tokens::{csrf_token, random_token, token_hash};
use crate::db::{self, sessions, users, users::User, DbError};
use crate::error::ApiError;
use crate::http::client_ip::{client_ip, user_agent};
use crate::ids::UserId;
use crate::state::AppState;

pub const COOKIE: &str = "sb_session";
/// 32 bytes: 256 random bits per session token.
const TOKEN_BYTES: usize = 32;

/// A request made with a live session.
#[derive(Debug, Clone)]
pub struct Auth {
    pub session_id: i64,
    pub user: User,
    pub csrf_token: String,
}

impl Auth {
    /// `Forbidden` unless the user holds `permission` (admins hold all).
    pub fn require(&self, permission: &str) -> Result<(), ApiError> {
        if self.user.can(permission) {
            Ok(())
        } else {
            Err(ApiError::Forbidden)
        }
    }

    /// `email_unverified` while REQUIRE_VERIFIED_EMAIL keeps this user out
    /// of rooms.
    pub fn require_room_access(&self, state: &AppState) -> Result<(), ApiError> {
        if super::signin::must_verify_first(state.config.require_verified_email, &self.user) {
            Err(ApiError::EmailUnverified)
        } else {
            Ok(())
        }
    }

    /// The live session behind `token`, if there is one, used from `ip`
    /// with `user_agent` (remembered as where it was last seen): `Banned`
    /// when an active ban covers its user or that address, so a ban made
    /// after sign-in holds on the very next request.
    pub async fn resume(
        state: &AppState,
        token: String,
        ip: String,
        user_agent: String,
    ) -> Result<Option<Auth>, ApiError> {
        let lifetimes = state.lifetimes();
        let csrf_token = csrf_token(state.secret.expose(), &token);
        let found = db::run(&state.pool, move |conn| -> Result<_, ApiError> {
            let seen = sessions::Seen {
                ip: &ip,
                user_agent: &user_agent,
            };
            let Some(session) = sessions::resume(conn, &token_hash(&token), lifetimes, seen)? else {
                return Ok(None);
            };
            refuse_banned(conn, Some(session.user_id), &ip)?;
            let user = users::get(conn, session.user_id)?;
            Ok(Some((session.id, user)))
        })
        .await?;
        Ok(found.map(|(session_id, user)| Auth {
            session_id,
            user,
            csrf_token,
        }))
    }
}

impl FromRequest for Auth {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let token = req.cookie(COOKIE).map(|c| c.value().to_owned());
        let ip = state.as_ref().and_then(|state| client_ip(req, state));
        let agent = user_agent(req);
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::internal("AppState is not registered"))?;
            let token = token.ok_or(ApiError::Unauthenticated)?;
            let ip = ip.ok_or_else(|| ApiError::internal("no peer address"))?;
            Auth::resume(&state, token, ip.to_string(), agent)
                .await?
                .ok_or(ApiError::Unauthenticated)
        })
    }
}

/// A request that may or may not carry a live session.
#[derive(Debug, Clone)]
pub struct MaybeAuth(pub Option<Auth>);

impl FromRequest for MaybeAuth {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let auth = Auth::from_request(req, payload);
        Box::pin(async move {
            match auth.await {
                Ok(auth) => Ok(MaybeAuth(Some(auth))),
                Err(ApiError::Unauthenticated) => Ok(MaybeAuth(None)),
                Err(other) => Err(other),
            }
        })
    }
}

/// A session just created: the cookie token (shown once, stored hashed).
#[derive(Debug)]
pub struct NewSession {
    pub token: String,
    pub user: User,
}

/// Starts a session for `user`, always under a fresh token.
pub fn start(
    conn: &Connection,
    state: &AppState,
    user: UserId,
    ip: &str,
    user_agent: &str,
) -> Result<NewSession, DbError> {
    let token = random_token(TOKEN_BYTES);
    sessions::create(conn, &token_hash(&token), user, ip, user_agent, state.lifetimes())?;
    Ok(NewSession {
        token,
        user: users::get(conn, user)?,
    })
}

pub fn cookie(state: &AppState, token: &str) -> Cookie<'static> {
    Cookie::build(COOKIE, token.to_owned())
        .http_only(true)
        .same_site(SameSite::Lax)
        .path("/")
        .secure(state.config.is_https())
        .max_age(actix_web::cookie::time::Duration::seconds(
            state.config.session_max.as_secs() as i64,
        ))
        .finish()
}

pub fn removal_cookie(state: &AppState) -> Cookie<'static> {
    let mut c = cookie(state, "");
    c.make_removal();
    c
}
