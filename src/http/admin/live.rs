//! Live control: the connected sessions, kick, move, and bans that act on
//! live sessions at once.

use std::net::IpAddr;

use actix_web::{web, HttpResponse};
use chrono::DateTime;
use serde::Deserialize;
use serde_json::json;

use crate::auth::perm;
use crate::auth::session::Auth;
use crate::db::{self, audit::Event, bans, rooms, sessions, users};
use crate::error::ApiError;
use crate::http::client_ip::ClientIp;
use crate::ids::{SessionId, UserId};
use crate::realtime::protocol::RoomInfo;
use crate::realtime::registry::{Kick, Move, Snapshot, Target};
use crate::state::AppState;

const REASON_MAX_CHARS: usize = 500;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/admin/sessions", web::get().to(list_sessions))
        .route("/api/admin/sessions/{sid}/kick", web::post().to(kick_session))
        .route("/api/admin/sessions/{sid}/move", web::post().to(move_session))
        .route("/api/admin/users/{id}/kick", web::post().to(kick_user))
        .route("/api/admin/bans", web::get().to(list_bans))
        .route("/api/admin/bans", web::post().to(create_ban))
        .route("/api/admin/bans/{id}", web::delete().to(lift_ban));
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KickRequest {
    reason: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoveRequest {
    room: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BanRequest {
    user_id: Option<i64>,
    ip: Option<String>,
    reason: String,
    expires_at: Option<String>,
}

fn reason_or(reason: Option<String>, default: &str) -> Result<String, ApiError> {
    let reason = reason.map(|r| r.trim().to_owned()).filter(|r| !r.is_empty());
    let reason = reason.unwrap_or_else(|| default.to_owned());
    if reason.chars().count() > REASON_MAX_CHARS {
        return Err(ApiError::bad_request("a reason has at most 500 characters"));
    }
    Ok(reason)
}

fn actor_event(action: &'static str, auth: &Auth, ip: &ClientIp) -> Event {
    Event::new(action)
        .by(auth.user.id, &auth.user.username)
        .ip(&ip.to_string())
}

async fn list_sessions(state: web::Data<AppState>, auth: Auth) -> Result<HttpResponse, ApiError> {
    auth.require(perm::SESSIONS_VIEW)?;
    let live = state.registry.send(Snapshot).await.map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok().json(json!({"sessions": live})))
}

/// Kicks the targeted sessions, audits each, and answers 404 if none was live.
async fn kick(
    state: &AppState,
    auth: &Auth,
    ip: &ClientIp,
    target: Target,
    reason: String,
) -> Result<HttpResponse, ApiError> {
    let kicked = state
        .registry
        .send(Kick {
            target,
            reason: reason.clone(),
        })
        .await
        .map_err(ApiError::internal)?;
    if kicked.is_empty() {
        return Err(ApiError::NotFound);
    }
    for session in kicked {
        state
            .writer
            .audit(actor_event("kick", auth, ip).target(session.user.id).details(
                json!({"sid": session.sid, "username": session.user.username, "ip": session.ip, "reason": reason}),
            ));
    }
    Ok(HttpResponse::NoContent().finish())
}

async fn kick_session(
    state: web::Data<AppState>,
    auth: Auth,
    ip: ClientIp,
    sid: web::Path<String>,
    body: Option<web::Json<KickRequest>>,
) -> Result<HttpResponse, ApiError> {
    auth.require(perm::SESSIONS_KICK)?;
    let reason = reason_or(body.and_then(|b| b.into_inner().reason), "kicked by a moderator")?;
    kick(&state, &auth, &ip, Target::Session(SessionId(sid.into_inner())), reason).await
}

async fn kick_user(
    state: web::Data<AppState>,
    auth: Auth,
    ip: ClientIp,
    id: web::Path<i64>,
    body: Option<web::Json<KickRequest>>,
) -> Result<HttpResponse, ApiError> {
    auth.require(perm::SESSIONS_KICK)?;
    let reason = reason_or(body.and_then(|b| b.into_inner().reason), "kicked by a moderator")?;
    kick(&state, &auth, &ip, Target::User(UserId(id.into_inner())), reason).await
}

async fn move_session(
    state: web::Data<AppState>,
    auth: Auth,
    ip: ClientIp,
    sid: web::Path<String>,
    body: web::Json<MoveRequest>,
) -> Result<HttpResponse, ApiError> {
    auth.require(perm::SESSIONS_MOVE)?;
    let code = body.into_inner().room;
    let room = db::run(&state.pool, move |conn| rooms::get(conn, &code))
        .await
        .map_err(|e| match e {
            db::DbError::NotFound => ApiError::bad_request("there is no such room"),
            other => other.into(),
        })?;
    let info = RoomInfo {
        code: room.code.clone(),
        name: room.name.clone(),
    };
    let moved = state
        .registry
        .send(Move {
            sid: SessionId(sid.into_inner()),
            room: info,
            room_id: room.id,
        })
        .await
        .map_err(ApiError::internal)?
        .ok_or(ApiError::NotFound)?;
    state.writer.audit(
        actor_event("move", &auth, &ip)
            .target(moved.user.id)
            .room(room.code.as_str())
            .details(json!({"sid": moved.sid, "username": moved.user.username, "from": moved.room, "to": room.code})),
    );
    Ok(HttpResponse::NoContent().finish())
}

async fn list_bans(state: web::Data<AppState>, auth: Auth) -> Result<HttpResponse, ApiError> {
    auth.require(perm::BANS_MANAGE)?;
    let active = db::run(&state.pool, |conn| bans::list_active(conn)).await?;
    Ok(HttpResponse::Ok().json(json!({"bans": active})))
}

/// Bans a user and/or an address: their login sessions end, their live
/// sockets are told `banned` and closed, and sign-in and upgrades are refused.
async fn create_ban(
    state: web::Data<AppState>,
    auth: Auth,
    ip: ClientIp,
    body: web::Json<BanRequest>,
) -> Result<HttpResponse, ApiError> {
    auth.require(perm::BANS_MANAGE)?;
    let request = body.into_inner();
    let banned_ip = match request.ip.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(text) => Some(
            text.parse::<IpAddr>()
                .map_err(|_| ApiError::bad_request("ip is not an IP address"))?
                .to_string(),
        ),
        None => None,
    };
    let user = request.user_id.map(UserId);
    if user.is_none() && banned_ip.is_none() {
        return Err(ApiError::bad_request("a ban needs a user_id, an ip, or both"));
    }
    if user == Some(auth.user.id) || banned_ip.as_deref() == Some(&ip.to_string()) {
        return Err(ApiError::Conflict("you cannot ban yourself".into()));
    }
    let reason = reason_or(Some(request.reason), "")?;
    if reason.is_empty() {
        return Err(ApiError::bad_request("a ban needs a reason"));
    }
    let expires_at = match request.expires_at {
        Some(text) => {
            let when = DateTime::parse_from_rfc3339(&text)
                .map_err(|_| ApiError::bad_request("expires_at is an RFC 3339 time"))?
                .timestamp_millis();
            if when <= db::now_ms() {
                return Err(ApiError::bad_request("expires_at is in the past"));
            }
            Some(when)
        }
        None => None,
    };
    let new_ban = bans::NewBan {
        user_id: user,
        ip: banned_ip.clone(),
        reason: reason.clone(),
        expires_at,
        created_by: auth.user.id,
    };
    let event = actor_event("ban", &auth, &ip);
    let ban = db::run(&state.pool, move |conn| -> Result<_, ApiError> {
        Ok(db::immediate(conn, |tx| {
            if let Some(user) = user {
                users::get(tx, user).map_err(|e| match e {
                    db::DbError::NotFound => db::DbError::Invalid("there is no such user".into()),
                    other => other,
                })?;
                sessions::delete_for_user(tx, user)?;
            }
            if let Some(ip) = &new_ban.ip {
                sessions::delete_for_ip(tx, ip)?;
            }
            let ban = bans::create(tx, &new_ban)?;
            let mut event = event
                .details(json!({"ban_id": ban.id, "user_id": ban.user_id, "ip": ban.ip, "reason": ban.reason, "expires_at": ban.expires_at}));
            if let Some(user) = user {
                event = event.target(user);
            }
            event.record(tx)?;
            Ok(ban)
        })?)
    })
    .await?;
    state
        .registry
        .send(Kick {
            target: Target::Banned { user, ip: banned_ip },
            reason,
        })
        .await
        .map_err(ApiError::internal)?;
    Ok(HttpResponse::Created().json(ban))
}

async fn lift_ban(
    state: web::Data<AppState>,
    auth: Auth,
    ip: ClientIp,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    auth.require(perm::BANS_MANAGE)?;
    let id = id.into_inner();
    let event = actor_event("unban", &auth, &ip);
    db::run(&state.pool, move |conn| -> Result<(), ApiError> {
        let ban = bans::lift(conn, id)?;
        let mut event = event.details(json!({"ban_id": ban.id, "user_id": ban.user_id, "ip": ban.ip}));
        if let Some(user) = ban.user_id {
            event = event.target(user);
        }
        Ok(event.record(conn)?)
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
