//! The signed-in user's own login sessions: list them (where and with which
//! browser each was last used), end one, or end every other. An ended
//! session's sockets close at once.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::client_ip::ClientIp;
use crate::auth::session::{self, Auth};
use crate::db::{self, audit::Event, sessions};
use crate::error::ApiError;
use crate::realtime::registry::{Kick, Target};
use crate::state::AppState;

/// The `kicked` reason an ended session's sockets are sent before they close.
pub const ENDED: &str = "this session was ended";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/me/sessions", web::get().to(list))
        .route("/api/me/sessions/end-others", web::post().to(end_others))
        .route("/api/me/sessions/{id}", web::delete().to(end_one));
}

/// Closes the sockets opened with these (ended) login sessions: each gets
/// `kicked` with `reason`, then close 4001.
pub fn close_sockets(state: &AppState, ended: &[i64], reason: &str) {
    for login in ended {
        state.registry.do_send(Kick {
            target: Target::Login(*login),
            reason: reason.to_owned(),
        });
    }
}

/// The user's live sessions, this one first, then the most recently used.
async fn list(state: web::Data<AppState>, auth: Auth) -> Result<HttpResponse, ApiError> {
    let (user, lifetimes) = (auth.user.id, state.lifetimes());
    let mut own = db::run(&state.pool, move |conn| sessions::of_user(conn, user, lifetimes)).await?;
    own.sort_by_key(|s| s.id != auth.session_id);
    let listed: Vec<_> = own
        .into_iter()
        .map(|s| {
            json!({
                "id": s.public_id,
                "created_at": s.created_at,
                "last_seen_at": s.last_seen_at,
                "ip": s.last_ip,
                "user_agent": s.last_user_agent,
                "current": s.id == auth.session_id,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({"sessions": listed})))
}

#[derive(Debug, Deserialize)]
struct SessionPath {
    id: String,
}

/// Ends one of the user's sessions; `404` for an unknown id or someone
/// else's. Ending the current one is signing out (its cookie is cleared).
async fn end_one(
    state: web::Data<AppState>,
    auth: Auth,
    ip: ClientIp,
    path: web::Path<SessionPath>,
) -> Result<HttpResponse, ApiError> {
    let public_id = path.into_inner().id;
    let (user, event) = (auth.user.id, ended_event(&auth, ip));
    let ended = db::run(&state.pool, move |conn| -> Result<_, ApiError> {
        let ended = sessions::delete_public(conn, user, &public_id)?.ok_or(ApiError::NotFound)?;
        event.details(json!({"session": public_id, "ended": 1})).record(conn)?;
        Ok(ended)
    })
    .await?;
    close_sockets(&state, &[ended], ENDED);
    let mut answer = HttpResponse::NoContent();
    if ended == auth.session_id {
        answer.cookie(session::removal_cookie(&state));
    }
    Ok(answer.finish())
}

/// Ends every session of the user but this one: `{"ended": n}`.
async fn end_others(state: web::Data<AppState>, auth: Auth, ip: ClientIp) -> Result<HttpResponse, ApiError> {
    let (user, keep, event) = (auth.user.id, auth.session_id, ended_event(&auth, ip));
    let ended = db::run(&state.pool, move |conn| -> Result<_, ApiError> {
        let ended = sessions::delete_others(conn, user, keep)?;
        event
            .details(json!({"others": true, "ended": ended.len()}))
            .record(conn)?;
        Ok(ended)
    })
    .await?;
    close_sockets(&state, &ended, ENDED);
    Ok(HttpResponse::Ok().json(json!({"ended": ended.len()})))
}

fn ended_event(auth: &Auth, ip: ClientIp) -> Event {
    Event::new("session_end")
        .by(auth.user.id, &auth.user.username)
        .ip(&ip.to_string())
        .target(auth.user.id)
}
