//! Rooms: create one, look one up, page back through its messages.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::client_ip::ClientIp;
use crate::auth::session::Auth;
use crate::auth::{perm, tokens, validate};
use crate::db::{self, audit::Event, messages, rooms};
use crate::error::ApiError;
use crate::ids::RoomCode;
use crate::realtime::registry::CountInRoom;
use crate::state::AppState;

const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 200;
const RECENT_ROOMS: u32 = 10;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/rooms", web::post().to(create))
        .route("/api/me/rooms", web::get().to(recent))
        .route("/api/rooms/{code}", web::get().to(show))
        .route("/api/rooms/{code}/messages", web::get().to(messages_page));
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    name: String,
}

async fn create(
    state: web::Data<AppState>,
    auth: Auth,
    ip: ClientIp,
    body: web::Json<CreateRequest>,
) -> Result<HttpResponse, ApiError> {
    auth.require(perm::ROOMS_CREATE)?;
    auth.require_room_access(&state)?;
    let name = validate::display_name(&body.name, "room name")?;
    let ip = ip.to_string();
    let room = db::run(&state.pool, move |conn| -> Result<_, ApiError> {
        let room = rooms::create(conn, &name, auth.user.id, tokens::room_code)?;
        Event::new("room_create")
            .by(auth.user.id, &auth.user.username)
            .ip(&ip)
            .room(room.code.as_str())
            .details(json!({"name": room.name}))
            .record(conn)?;
        Ok(room)
    })
    .await?;
    Ok(HttpResponse::Created().json(room))
}

/// The rooms the signed-in user entered or created most recently.
async fn recent(state: web::Data<AppState>, auth: Auth) -> Result<HttpResponse, ApiError> {
    let user = auth.user.id;
    let found = db::run(&state.pool, move |conn| {
        rooms::recent_for_user(conn, user, RECENT_ROOMS)
    })
    .await?;
    Ok(HttpResponse::Ok().json(json!({"rooms": found})))
}

async fn show(state: web::Data<AppState>, _auth: Auth, code: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let code = code.into_inner();
    let room = db::run(&state.pool, move |conn| rooms::get(conn, &code)).await?;
    let online = state
        .registry
        .send(CountInRoom {
            code: room.code.clone(),
        })
        .await
        .map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok().json(json!({
        "code": room.code,
        "name": room.name,
        "created_at": room.created_at,
        "online": online,
    })))
}

#[derive(Debug, Deserialize)]
pub struct PageQuery {
    before: Option<i64>,
    limit: Option<u32>,
}

/// `?before=ID&limit=N`: up to N (default 50, at most 200) messages older
/// than ID, oldest first.
async fn messages_page(
    state: web::Data<AppState>,
    auth: Auth,
    code: web::Path<String>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    auth.require_room_access(&state)?;
    let code = RoomCode(code.into_inner());
    let limit = query.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
    let before = query.before;
    let found = db::run(&state.pool, move |conn| -> Result<_, ApiError> {
        let room = rooms::get(conn, code.as_str())?;
        Ok(messages::page(conn, room.id, before, limit)?)
    })
    .await?;
    Ok(HttpResponse::Ok().json(json!({"messages": found})))
}
