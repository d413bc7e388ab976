//! `GET /ws`: the WebSocket upgrade, refused with 403 unless the Origin is
//! ours, the session is live, and no ban covers the user or the address.
//! Accepted, it answers 101 and hands the socket to a new session actor
//! (see [`super::upgrade`]).

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use super::client_ip::{ClientIp, UserAgent};
use super::upgrade;
use crate::auth::session::{Auth, COOKIE};
use crate::error::ApiError;
use crate::realtime::registry::CountFor;
use crate::realtime::session;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/ws", web::get().to(open));
}

async fn open(
    req: HttpRequest,
    state: web::Data<AppState>,
    ip: ClientIp,
    agent: UserAgent,
) -> Result<HttpResponse, ApiError> {
    let origin_ok = req
        .headers()
        .get(header::ORIGIN)
        .is_some_and(|origin| origin.as_bytes() == state.origin.as_bytes());
    if !origin_ok {
        return Err(ApiError::Forbidden);
    }
    let token = req
        .cookie(COOKIE)
        .map(|c| c.value().to_owned())
        .ok_or(ApiError::Forbidden)?;
    let ip = ip.to_string();
    let auth = Auth::resume(&state, token, ip.clone(), agent.0.clone())
        .await?
        .ok_or(ApiError::Forbidden)?;
    within_connection_limits(&state, &auth, &ip).await?;
    let env = state.session_env.clone();
    upgrade::accept(&req, move |stream, early| {
        session::start(stream, early, env, auth, ip, agent.0);
    })
}

async fn within_connection_limits(state: &AppState, auth: &Auth, ip: &str) -> Result<(), ApiError> {
    let limits = &state.config;
    if limits.ws_max_per_user == 0 && limits.ws_max_per_ip == 0 {
        return Ok(());
    }
    let (per_user, per_ip) = state
        .registry
        .send(CountFor {
            user: auth.user.id,
            ip: ip.to_owned(),
        })
        .await
        .map_err(ApiError::internal)?;
    let over = |count: usize, limit: u32| limit != 0 && count >= limit as usize;
    if over(per_user, limits.ws_max_per_user) || over(per_ip, limits.ws_max_per_ip) {
        return Err(ApiError::RateLimited { retry_after_secs: 10 });
    }
    Ok(())
}
