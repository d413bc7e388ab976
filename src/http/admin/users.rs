//! Account management: list and search, promote and demote, assign roles,
//! delete.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use crate::auth::perm;
use crate::auth::session::Auth;
use crate::db::{self, audit::Event, roles, sessions, users, DbError};
use crate::error::ApiError;
use crate::http::client_ip::ClientIp;
use crate::ids::UserId;
use crate::realtime::registry::{Kick, Target};
use crate::state::AppState;

const USERS_PER_PAGE: u32 = 50;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/admin/users", web::get().to(list))
        .route("/api/admin/users/{id}", web::get().to(show))
        .route("/api/admin/users/{id}", web::patch().to(update))
        .route("/api/admin/users/{id}", web::delete().to(delete));
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    page: Option<u32>,
}

async fn list(state: web::Data<AppState>, auth: Auth, query: web::Query<ListQuery>) -> Result<HttpResponse, ApiError> {
    auth.require(perm::ADMIN_USERS)?;
    let ListQuery { q, page } = query.into_inner();
    let page = page.unwrap_or(1).max(1);
    let (found, total) = db::run(&state.pool, move |conn| users::search(conn, &q, page, USERS_PER_PAGE)).await?;
    Ok(HttpResponse::Ok().json(json!({"users": found, "total": total, "page": page})))
}

async fn show(state: web::Data<AppState>, auth: Auth, id: web::Path<i64>) -> Result<HttpResponse, ApiError> {
    auth.require(perm::ADMIN_USERS)?;
    let id = UserId(id.into_inner());
    let user = db::run(&state.pool, move |conn| users::get(conn, id)).await?;
    Ok(HttpResponse::Ok().json(json!({"user": user})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateRequest {
    is_admin: Option<bool>,
    roles: Option<Vec<String>>,
}

/// Promotes, demotes or sets the roles of a user. The last admin cannot be
/// demoted: the server would have nobody left to manage it.
async fn update(
    state: web::Data<AppState>,
    auth: Auth,
    ip: ClientIp,
    id: web::Path<i64>,
    body: web::Json<UpdateRequest>,
) -> Result<HttpResponse, ApiError> {
    auth.require(perm::ADMIN_USERS)?;
    let target = UserId(id.into_inner());
    let request = body.into_inner();
    if request.roles.is_some() {
        auth.require(perm::ADMIN_ROLES)?;
    }
    let ip = ip.to_string();
    let user = db::run(&state.pool, move |conn| -> Result<_, ApiError> {
        Ok(db::immediate(conn, |tx| {
            let before = users::get(tx, target)?;
            if let Some(names) = &request.roles {
                roles::set_roles(tx, target, names)?;
            }
            match request.is_admin {
                Some(true) => roles::add_role(tx, target, roles::ADMIN)?,
                Some(false) => roles::remove_role(tx, target, roles::ADMIN)?,
                None => {}
            }
            let after = users::get(tx, target)?;
            if before.is_admin && !after.is_admin && roles::count_admins(tx)? == 0 {
                return Err(DbError::Conflict("the last admin cannot be demoted".into()));
            }
            Event::new("user_update")
                .by(auth.user.id, &auth.user.username)
                .ip(&ip)
                .target(target)
                .details(json!({
                    "username": after.username,
                    "roles": {"from": before.roles, "to": after.roles},
                }))
                .record(tx)?;
            Ok(after)
        })?)
    })
    .await?;
    Ok(HttpResponse::Ok().json(json!({"user": user})))
}

/// Deletes an account; its sessions end with it. An admin cannot delete
/// their own account this way.
async fn delete(
    state: web::Data<AppState>,
    auth: Auth,
    ip: ClientIp,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    auth.require(perm::ADMIN_USERS)?;
    let target = UserId(id.into_inner());
    if target == auth.user.id {
        return Err(ApiError::Conflict("you cannot delete your own account".into()));
    }
    let ip = ip.to_string();
    db::run(&state.pool, move |conn| -> Result<(), ApiError> {
        Ok(db::immediate(conn, |tx| {
            let user = users::get(tx, target)?;
            sessions::delete_for_user(tx, target)?;
            users::delete(tx, target)?;
            Event::new("user_delete")
                .by(auth.user.id, &auth.user.username)
                .ip(&ip)
                .target(target)
                .details(json!({"username": user.username, "email": user.email}))
                .record(tx)
        })?)
    })
    .await?;
    state.registry.do_send(Kick {
        target: Target::User(target),
        reason: "your account was deleted".into(),
    });
    Ok(HttpResponse::NoContent().finish())
}
