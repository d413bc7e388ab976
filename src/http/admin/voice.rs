//! Server mute and deafen of a live session: the member cannot undo them,
//! the SFU stops forwarding, mesh clients stop playing. Only an admin acts
//! on an admin.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::live::{may_act_on_session, reason_or};
use crate::auth::perm;
use crate::auth::session::Auth;
use crate::db::audit::Event;
use crate::error::ApiError;
use crate::http::client_ip::ClientIp;
use crate::ids::SessionId;
use crate::realtime::messages::Moderation;
use crate::realtime::registry::Moderate;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/admin/sessions/{sid}/mute", web::post().to(mute))
        .route("/api/admin/sessions/{sid}/deafen", web::post().to(deafen));
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MuteRequest {
    muted: bool,
    reason: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeafenRequest {
    deafened: bool,
    reason: Option<String>,
}

async fn mute(
    state: web::Data<AppState>,
    auth: Auth,
    ip: ClientIp,
    sid: web::Path<String>,
    body: web::Json<MuteRequest>,
) -> Result<HttpResponse, ApiError> {
    auth.require(perm::VOICE_MUTE)?;
    let MuteRequest { muted, reason } = body.into_inner();
    let default = if muted {
        "muted by a moderator"
    } else {
        "unmuted by a moderator"
    };
    let reason = reason_or(reason, default)?;
    let sid = SessionId(sid.into_inner());
    moderate(&state, &auth, &ip, sid, Moderation::Mute(muted), reason).await
}

async fn deafen(
    state: web::Data<AppState>,
    auth: Auth,
    ip: ClientIp,
    sid: web::Path<String>,
    body: web::Json<DeafenRequest>,
) -> Result<HttpResponse, ApiError> {
    auth.require(perm::VOICE_DEAFEN)?;
    let DeafenRequest { deafened, reason } = body.into_inner();
    let default = if deafened {
        "deafened by a moderator"
    } else {
        "undeafened by a moderator"
    };
    let reason = reason_or(reason, default)?;
    let sid = SessionId(sid.into_inner());
    moderate(&state, &auth, &ip, sid, Moderation::Deafen(deafened), reason).await
}

/// Checks the hierarchy on the session's user (auth::authority: only an
/// admin acts on an admin), applies the action through
/// the registry and audits it with admin, target and reason.
async fn moderate(
    state: &AppState,
    auth: &Auth,
    ip: &ClientIp,
    sid: SessionId,
    action: Moderation,
    reason: String,
) -> Result<HttpResponse, ApiError> {
    may_act_on_session(state, auth, &sid).await?;
    let target = state
        .registry
        .send(Moderate {
            sid,
            action,
            reason: reason.clone(),
        })
        .await
        .map_err(ApiError::internal)?
        .ok_or(ApiError::NotFound)?;
    let (name, on) = match action {
        Moderation::Mute(on) => (if on { "voice_mute" } else { "voice_unmute" }, on),
        Moderation::Deafen(on) => (if on { "voice_deafen" } else { "voice_undeafen" }, on),
    };
    let mut event = Event::new(name)
        .by(auth.user.id, &auth.user.username)
        .ip(&ip.to_string())
        .target(target.user.id)
        .details(json!({"sid": target.sid, "username": target.user.username, "on": on, "reason": reason}));
    if let Some(room) = &target.room {
        event = event.room(room.as_str());
    }
    state.writer.audit(event);
    Ok(HttpResponse::NoContent().finish())
}
