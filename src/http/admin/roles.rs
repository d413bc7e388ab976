//! Roles and permissions: list, create, delete, assign.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use crate::auth::session::Auth;
use crate::auth::{perm, validate};
use crate::db::{self, audit::Event, roles};
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
    db::run(&state.pool, move |conn| -> Result<(), ApiError> {
        let role = roles::delete_role(conn, id)?;
        audit(
            &auth,
            &ip,
            "role_delete",
            json!({"role": role.name, "role_id": role.id}),
        )
        .record(conn)?;
        Ok(())
    })
    .await?;
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
    let role = db::run(&state.pool, move |conn| -> Result<_, ApiError> {
        let role = roles::grant(conn, id, &permission)?;
        audit(
            &auth,
            &ip,
            "permission_assign",
            json!({"role": role.name, "permission": permission}),
        )
        .record(conn)?;
        Ok(role)
    })
    .await?;
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
    let role = db::run(&state.pool, move |conn| -> Result<_, ApiError> {
        let role = roles::revoke(conn, id, &permission)?;
        audit(
            &auth,
            &ip,
            "permission_revoke",
            json!({"role": role.name, "permission": permission}),
        )
        .record(conn)?;
        Ok(role)
    })
    .await?;
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
