//! Invitations to register (REGISTRATION=invite): make one (its code is
//! shown once, in the answer), list them, revoke one. Guarded by
//! `admin.users`, like making an account.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use serde_json::json;

use crate::auth::session::Auth;
use crate::auth::tokens::{random_token, token_hash};
use crate::auth::{authority, perm};
use crate::db::{self, audit::Event, invites, users};
use crate::error::ApiError;
use crate::http::client_ip::ClientIp;
use crate::state::AppState;

/// An invitation without `expires_at` works a week.
const DEFAULT_LIFETIME: Duration = Duration::days(7);
const LONGEST_LIFETIME: Duration = Duration::days(365);
const MOST_USES: u32 = 1000;
/// 16 random bytes: 128 bits per code.
const CODE_BYTES: usize = 16;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/admin/invites", web::get().to(list))
        .route("/api/admin/invites", web::post().to(create))
        .route("/api/admin/invites/{id}", web::delete().to(revoke));
}

async fn list(state: web::Data<AppState>, auth: Auth) -> Result<HttpResponse, ApiError> {
    auth.require(perm::ADMIN_USERS)?;
    let found = db::run(&state.pool, |conn| invites::list(conn)).await?;
    Ok(HttpResponse::Ok().json(json!({"invites": found})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    /// Registrations it allows: 1 (the default) to 1000.
    uses: Option<u32>,
    expires_at: Option<DateTime<Utc>>,
}

async fn create(
    state: web::Data<AppState>,
    auth: Auth,
    ip: ClientIp,
    body: web::Json<CreateRequest>,
) -> Result<HttpResponse, ApiError> {
    auth.require(perm::ADMIN_USERS)?;
    let request = body.into_inner();
    let uses = request.uses.unwrap_or(1);
    if !(1..=MOST_USES).contains(&uses) {
        return Err(ApiError::bad_request(format!("uses is 1 to {MOST_USES}")));
    }
    let now = Utc::now();
    let expires_at = request.expires_at.unwrap_or(now + DEFAULT_LIFETIME);
    if expires_at <= now || expires_at > now + LONGEST_LIFETIME {
        return Err(ApiError::bad_request(
            "expires_at is a time in the future, at most a year ahead",
        ));
    }
    let code = random_token(CODE_BYTES);
    let hash = token_hash(&code);
    let ip = ip.to_string();
    let invite = db::run(&state.pool, move |conn| -> Result<_, ApiError> {
        db::immediate(conn, |tx| {
            let actor = users::get(tx, auth.user.id)?;
            authority::require(&actor, perm::ADMIN_USERS)?;
            let invite = invites::create(tx, &hash, uses, expires_at.timestamp_millis(), auth.user.id)?;
            Event::new("invite_create")
                .by(auth.user.id, &auth.user.username)
                .ip(&ip)
                .details(json!({"invite": invite.id, "uses": uses, "expires_at": invite.expires_at}))
                .record(tx)?;
            Ok(invite)
        })
    })
    .await?;
    let url = state.page_url(&format!("/register?invite={code}"));
    Ok(HttpResponse::Created().json(json!({
        "id": invite.id,
        "code": code,
        "url": url,
        "uses": invite.uses_left,
        "expires_at": invite.expires_at,
    })))
}

async fn revoke(
    state: web::Data<AppState>,
    auth: Auth,
    ip: ClientIp,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    auth.require(perm::ADMIN_USERS)?;
    let id = id.into_inner();
    let ip = ip.to_string();
    db::run(&state.pool, move |conn| -> Result<(), ApiError> {
        db::immediate(conn, |tx| {
            invites::revoke(tx, id)?;
            Ok(Event::new("invite_revoke")
                .by(auth.user.id, &auth.user.username)
                .ip(&ip)
                .details(json!({"invite": id}))
                .record(tx)?)
        })
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
