//! Roles and permissions: list, create, delete, assign. Nobody but an admin
//! grants, revokes or deletes more than they hold (auth::authority),
//! checked against the actor as the transaction reads it.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use rusqlite::Connection;

use crate::auth::session::Auth;
use crate::auth::{authority, perm, validate};
use crate::db::users::{self, User};
use crate::db::{self, audit::Event, roles, DbError};
use crate::error::ApiError;
use crate::http::client_ip::ClientIp;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/admin/roles", web::get().to(list_roles))
        .route("/api/admin/roles", web::post().to(create_role))
        .route("/api/admin/roles/{id}", web::delete().to(delete_role))
        .route("/api/admin/roles/{id}/permissions", web::post().to(grant))
        .route("/api/admin/roles/{id}/permissions/{name}", web::delete().to(revoke))
        .route("/api/admin/permissions", web::get().to(list_permissions))
        .route("/api/admin/permissions", web::post().to(create_permission));
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NameRequest {
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantRequest {
    permission: String,
}

/// Records an admin action on roles, made by `auth` from `ip`.
fn audit(auth: &Auth, ip: &ClientIp, action: &'static str, details: serde_json::Value) -> Event {
    Event::new(action)
        .by(auth.user.id, &auth.user.username)
        .ip(&ip.to_string())
        .details(details)
}

/// The actor as the transaction reads it, still holding `admin.roles`: a
/// demotion committed meanwhile is not overtaken by a request already past
/// the extractor.
fn fresh_actor(conn: &Connection, auth: &Auth) -> Result<User, ApiError> {
    let actor = users::get(conn, auth.user.id)?;
    authority::require(&actor, perm::ADMIN_ROLES)?;
    Ok(actor)
}

/// The users who hold role `id`, as they are after a committed change.
fn holders_now(conn: &Connection, id: i64) -> Result<Vec<User>, DbError> {
    users::get_each(conn, &roles::holders(conn, id)?)
}

async fn list_roles(state: web::Data<AppState>, auth: Auth) -> Result<HttpResponse, ApiError> {
    auth.require(perm::ADMIN_ROLES)?;
    let all = db::run(&state.pool, |conn| roles::list_roles(conn)).await?;
    Ok(HttpResponse::Ok().json(json!({"roles": all})))
}

async fn create_role(
    state: web::Data<AppState>,
    auth: Auth,
    ip: ClientIp,
    body: web::Json<NameRequest>,
) -> Result<HttpResponse, ApiError> {
    auth.require(perm::ADMIN_ROLES)?;
    let name = validate::grant_name(&body.name)?;
    let role = db::run(&state.pool, move |conn| -> Result<_, ApiError> {
        let role = roles::create_role(conn, &name)?;
        audit(
            &auth,
            &ip,
            "role_create",
            json!({"role": role.name, "role_id": role.id}),
        )
        .record(conn)?;
        Ok(role)
    })
    .await?;
    Ok(HttpResponse::Created().json(role))
}

async fn delete_role(
    state: web::Data<AppState>,
    auth: Auth,
    ip: ClientIp,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    auth.require(perm::ADMIN_ROLES)?;
    let id = id.into_inner();
    let affected = db::run(&state.pool, move |conn| -> Result<_, ApiError> {
        let holders = db::immediate(conn, |tx| {
            let actor = fresh_actor(tx, &auth)?;
            authority::may_hand_out(&actor, &roles::get_role(tx, id)?)?;
            let holders = roles::holders(tx, id)?;
            let role = roles::delete_role(tx, id)?;
            audit(
                &auth,
                &ip,
                "role_delete",
                json!({"role": role.name, "role_id": role.id}),
            )
            .record(tx)?;
            Ok::<_, ApiError>(holders)
        })?;
        Ok(users::get_each(conn, &holders)?)
    })
    .await?;
    super::authority_changed(&state, affected).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn grant(
    state: web::Data<AppState>,
    auth: Auth,
    ip: ClientIp,
    id: web::Path<i64>,
    body: web::Json<GrantRequest>,
) -> Result<HttpResponse, ApiError> {
    auth.require(perm::ADMIN_ROLES)?;
    let id = id.into_inner();
    let permission = validate::grant_name(&body.permission)?;
    let (role, affected) = db::run(&state.pool, move |conn| -> Result<_, ApiError> {
        let role = db::immediate(conn, |tx| {
            authority::may_grant(&fresh_actor(tx, &auth)?, &permission)?;
            let role = roles::grant(tx, id, &permission)?;
            audit(
                &auth,
                &ip,
                "permission_assign",
                json!({"role": role.name, "permission": permission}),
            )
            .record(tx)?;
            Ok::<_, ApiError>(role)
        })?;
        Ok((role, holders_now(conn, id)?))
    })
    .await?;
    super::authority_changed(&state, affected).await?;
    Ok(HttpResponse::Ok().json(role))
}

async fn revoke(
    state: web::Data<AppState>,
    auth: Auth,
    ip: ClientIp,
    path: web::Path<(i64, String)>,
) -> Result<HttpResponse, ApiError> {
    auth.require(perm::ADMIN_ROLES)?;
    let (id, permission) = path.into_inner();
    let (role, affected) = db::run(&state.pool, move |conn| -> Result<_, ApiError> {
        let role = db::immediate(conn, |tx| {
            authority::may_grant(&fresh_actor(tx, &auth)?, &permission)?;
            let role = roles::revoke(tx, id, &permission)?;
            audit(
                &auth,
                &ip,
                "permission_revoke",
                json!({"role": role.name, "permission": permission}),
            )
            .record(tx)?;
            Ok::<_, ApiError>(role)
        })?;
        Ok((role, holders_now(conn, id)?))
    })
    .await?;
    super::authority_changed(&state, affected).await?;
    Ok(HttpResponse::Ok().json(role))
}

async fn list_permissions(state: web::Data<AppState>, auth: Auth) -> Result<HttpResponse, ApiError> {
    auth.require(perm::ADMIN_ROLES)?;
    let all = db::run(&state.pool, |conn| roles::list_permissions(conn)).await?;
    Ok(HttpResponse::Ok().json(json!({"permissions": all})))
}

async fn create_permission(
    state: web::Data<AppState>,
    auth: Auth,
    ip: ClientIp,
    body: web::Json<NameRequest>,
) -> Result<HttpResponse, ApiError> {
    auth.require(perm::ADMIN_ROLES)?;
    let name = validate::grant_name(&body.name)?;
    let permission = db::run(&state.pool, move |conn| -> Result<_, ApiError> {
        let permission = roles::create_permission(conn, &name)?;
        audit(&auth, &ip, "permission_create", json!({"permission": permission.name})).record(conn)?;
        Ok(permission)
    })
    .await?;
    Ok(HttpResponse::Created().json(permission))
}
