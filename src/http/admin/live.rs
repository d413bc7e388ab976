//! Live control: the connected sessions, kick, move, and bans that act on
//! live sessions at once. Only an admin acts on an admin (auth::authority).

use std::net::IpAddr;

use actix_web::{web, HttpResponse};
use chrono::DateTime;
use serde::Deserialize;
use serde_json::json;

use crate::auth::session::Auth;
use crate::auth::{authority, perm};
use crate::db::{self, audit::Event, bans, roles, rooms, sessions, users};
use crate::error::ApiError;
use crate::http::client_ip::ClientIp;
use crate::ids::{SessionId, UserId};
use crate::ip_scope;
use crate::metrics::Metrics;
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

/// A reason as given (trimmed, at most 500 characters), or `default`.
pub(super) fn reason_or(reason: Option<String>, default: &str) -> Result<String, ApiError> {
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

/// `Forbidden` when `auth` may not act on `user` (an admin, for a
/// non-admin). Admins may act on anyone, so they skip the lookup.
async fn may_act_on_user(state: &AppState, auth: &Auth, user: UserId) -> Result<(), ApiError> {
    if auth.user.is_admin {
        return Ok(());
    }
    let target_is_admin = db::run(&state.pool, move |conn| roles::any_admin(conn, &[user])).await?;
    authority::may_act_on(&auth.user, target_is_admin)
}

/// The same for the user of a live session; an unknown `sid` passes, and
/// the action itself answers 404.
pub(super) async fn may_act_on_session(state: &AppState, auth: &Auth, sid: &SessionId) -> Result<(), ApiError> {
    if auth.user.is_admin {
        return Ok(());
    }
    let live = state.registry.send(Snapshot).await.map_err(ApiError::internal)?;
    match live.into_iter().find(|s| s.sid == *sid) {
        Some(session) => may_act_on_user(state, auth, session.user.id).await,
        None => Ok(()),
    }
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
    let sid = SessionId(sid.into_inner());
    may_act_on_session(&state, &auth, &sid).await?;
    kick(&state, &auth, &ip, Target::Session(sid), reason).await
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
    let user = UserId(id.into_inner());
    may_act_on_user(&state, &auth, user).await?;
    kick(&state, &auth, &ip, Target::User(user), reason).await
}

async fn move_session(
    state: web::Data<AppState>,
    auth: Auth,
    ip: ClientIp,
    sid: web::Path<String>,
    body: web::Json<MoveRequest>,
) -> Result<HttpResponse, ApiError> {
    auth.require(perm::SESSIONS_MOVE)?;
    let sid = SessionId(sid.into_inner());
    may_act_on_session(&state, &auth, &sid).await?;
    let code = body.into_inner().room;
    let room = db::run(&state.pool, move |conn| rooms::get(conn, &code)).await?;
    let info = RoomInfo {
        code: room.code.clone(),
        name: room.name.clone(),
    };
    let moved = state
        .registry
        .send(Move {
            sid,
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
/// sockets are told `banned` and closed, and sign-in, upgrades and requests
/// are refused. Only an admin bans an admin, by user or by an address where
/// one holds a live socket or a login session; the last admin stays.
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
    if user == Some(auth.user.id)
        || banned_ip
            .as_deref()
            .is_some_and(|b| ip_scope::covers(b, &ip.to_string()))
    {
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
    let live_in_scope = live_users_in_scope(&state, banned_ip.as_deref()).await?;
    let event = actor_event("ban", &auth, &ip);
    let ban = db::run(&state.pool, move |conn| -> Result<_, ApiError> {
        db::immediate(conn, |tx| {
            let actor = users::get(tx, auth.user.id)?;
            authority::require(&actor, perm::BANS_MANAGE)?;
            let mut bans_an_admin = false;
            if let Some(user) = user {
                let target = users::get(tx, user).map_err(|e| match e {
                    db::DbError::NotFound => db::DbError::Invalid("there is no such user".into()),
                    other => other,
                })?;
                authority::may_act_on(&actor, target.is_admin)?;
                bans_an_admin = target.is_admin;
                sessions::delete_for_user(tx, user)?;
            }
            if let Some(ip) = &new_ban.ip {
                let mut holders = sessions::users_in_scope(tx, ip)?;
                holders.extend(&live_in_scope);
                authority::may_ban_address(tx, &actor, &holders)?;
                sessions::delete_for_ip(tx, ip)?;
            }
            let ban = bans::create(tx, &new_ban)?;
            if bans_an_admin {
                authority::keep_an_admin(tx, "the last admin cannot be banned")?;
            }
            let mut event = event
                .details(json!({"ban_id": ban.id, "user_id": ban.user_id, "ip": ban.ip, "reason": ban.reason, "expires_at": ban.expires_at}));
            if let Some(user) = user {
                event = event.target(user);
            }
            event.record(tx)?;
            Ok(ban)
        })
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
    Metrics::inc(&state.metrics.bans);
    Ok(HttpResponse::Created().json(ban))
}

/// The users with a live socket in the scope of `ip` (crate::ip_scope).
async fn live_users_in_scope(state: &AppState, ip: Option<&str>) -> Result<Vec<UserId>, ApiError> {
    let Some(ip) = ip else {
        return Ok(Vec::new());
    };
    let live = state.registry.send(Snapshot).await.map_err(ApiError::internal)?;
    Ok(live
        .into_iter()
        .filter(|s| ip_scope::covers(ip, &s.ip))
        .map(|s| s.user.id)
        .collect())
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
