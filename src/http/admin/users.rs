//! Account management: list and search, create, promote and demote, assign
//! roles, hand over a reset link, delete. Every change passes the privilege
//! hierarchy (auth::authority), checked against the actor as the
//! transaction reads it.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use rusqlite::Connection;

use crate::auth::account_links::{self, HANDOVER_TTL};
use crate::auth::session::Auth;
use crate::auth::{authority, perm, validate};
use crate::db::account_tokens::Purpose;
use crate::db::roles::{self, Role};
use crate::db::users::User;
use crate::db::{self, audit::Event, sessions, users, DbError};
use crate::error::ApiError;
use crate::http::client_ip::ClientIp;
use crate::ids::UserId;
use crate::realtime::registry::{Kick, Target};
use crate::state::AppState;

const USERS_PER_PAGE: u32 = 50;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/admin/users", web::get().to(list))
        .route("/api/admin/users", web::post().to(create))
        .route("/api/admin/users/{id}", web::get().to(show))
        .route("/api/admin/users/{id}/reset-link", web::post().to(reset_link))
        .route("/api/admin/users/{id}", web::patch().to(update))
        .route("/api/admin/users/{id}", web::delete().to(delete))
        .route("/api/admin/users/{id}/totp/disable", web::post().to(disable_totp));
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
pub struct CreateRequest {
    username: String,
    email: String,
}

/// Creates an account (the way in while REGISTRATION is `closed`). It has
/// no password yet: the answer carries a one-time link for its owner to
/// choose one (valid a day), or, with PASSWORD_LOGIN=false, none (they sign
/// in through OIDC with that address). MAX_USERS holds.
async fn create(
    state: web::Data<AppState>,
    auth: Auth,
    ip: ClientIp,
    body: web::Json<CreateRequest>,
) -> Result<HttpResponse, ApiError> {
    auth.require(perm::ADMIN_USERS)?;
    let request = body.into_inner();
    let username = validate::username(&request.username)?;
    let email = validate::email(&request.email)?;
    let ip = ip.to_string();
    let (max_users, with_link) = (state.config.max_users, state.config.password_login);
    let (user, link) = db::run(&state.pool, move |conn| -> Result<_, ApiError> {
        db::immediate(conn, |tx| {
            let actor = users::get(tx, auth.user.id)?;
            authority::require(&actor, perm::ADMIN_USERS)?;
            let account = users::NewAccount {
                display_name: username.clone(),
                username,
                email,
                email_verified: false,
                password_hash: None,
                oidc: None,
                needs_username: false,
            };
            let id = users::create_account(tx, &account, max_users)?;
            let link = if with_link {
                Some(account_links::issue(
                    tx,
                    Purpose::PasswordReset,
                    id,
                    &account.email,
                    HANDOVER_TTL,
                )?)
            } else {
                None
            };
            Event::new("register")
                .by(auth.user.id, &auth.user.username)
                .ip(&ip)
                .target(id)
                .details(json!({"method": "admin", "username": account.username, "email": account.email}))
                .record(tx)?;
            Ok((users::get(tx, id)?, link))
        })
    })
    .await?;
    let (url, expires_at) = link
        .map(|l| {
            (
                Some(state.page_url(&format!("/reset-password?token={}", l.token))),
                Some(l.expires),
            )
        })
        .unwrap_or_default();
    Ok(HttpResponse::Created().json(json!({"user": user, "reset_url": url, "expires_at": expires_at})))
}

/// A one-time reset link for an admin to hand over (no mail needed): valid
/// a day, it replaces the user's earlier reset links. Only an admin makes
/// one for an admin.
async fn reset_link(
    state: web::Data<AppState>,
    auth: Auth,
    ip: ClientIp,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    auth.require(perm::ADMIN_USERS)?;
    state.require_password_login()?;
    let target = UserId(id.into_inner());
    let ip = ip.to_string();
    let link = db::run(&state.pool, move |conn| -> Result<_, ApiError> {
        db::immediate(conn, |tx| {
            let actor = users::get(tx, auth.user.id)?;
            authority::require(&actor, perm::ADMIN_USERS)?;
            let user = users::get(tx, target)?;
            authority::may_act_on(&actor, user.is_admin)?;
            let email = match (&user.email, user.guest) {
                (Some(email), false) => email.clone(),
                _ => return Err(ApiError::Conflict("a guest has no password to reset".into())),
            };
            let link = account_links::issue(tx, Purpose::PasswordReset, target, &email, HANDOVER_TTL)?;
            Event::new("password_reset_link")
                .by(auth.user.id, &auth.user.username)
                .ip(&ip)
                .target(target)
                .details(json!({"username": user.username, "expires_at": link.expires}))
                .record(tx)?;
            Ok(link)
        })
    })
    .await?;
    let url = state.page_url(&format!("/reset-password?token={}", link.token));
    Ok(HttpResponse::Ok().json(json!({"url": url, "expires_at": link.expires})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateRequest {
    is_admin: Option<bool>,
    roles: Option<Vec<String>>,
}

/// Promotes, demotes or sets the roles of a user. `roles` replaces the
/// user's roles, then `is_admin` adds or removes `admin`; each role that
/// comes or goes must be one the actor may hand out, the target must be one
/// the actor may act on, and the last admin cannot be demoted.
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
        db::immediate(conn, |tx| {
            let actor = users::get(tx, auth.user.id)?;
            authority::require(&actor, perm::ADMIN_USERS)?;
            if request.roles.is_some() {
                authority::require(&actor, perm::ADMIN_ROLES)?;
            }
            let before = users::get(tx, target)?;
            authority::may_act_on(&actor, before.is_admin)?;
            let wanted = wanted_roles(tx, &before, &request)?;
            for changed in changed_roles(tx, &before.roles, &wanted)? {
                authority::may_hand_out(&actor, &changed)?;
            }
            let names: Vec<String> = wanted.iter().map(|r| r.name.clone()).collect();
            roles::set_roles(tx, target, &names)?;
            let after = users::get(tx, target)?;
            if before.is_admin && !after.is_admin {
                authority::keep_an_admin(tx, "the last admin cannot be demoted")?;
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
        })
    })
    .await?;
    super::authority_changed(&state, vec![user.clone()]).await?;
    Ok(HttpResponse::Ok().json(json!({"user": user})))
}

/// The roles `request` asks for: `roles` (each must exist) in place of the
/// current ones, then the admin role added or removed for `is_admin`.
fn wanted_roles(conn: &Connection, before: &User, request: &UpdateRequest) -> Result<Vec<Role>, DbError> {
    let names = request.roles.as_ref().unwrap_or(&before.roles);
    let mut wanted = names
        .iter()
        .map(|name| roles::role_named(conn, name))
        .collect::<Result<Vec<_>, _>>()?;
    match request.is_admin {
        Some(true) if !wanted.iter().any(|r| r.name == roles::ADMIN) => {
            wanted.push(roles::role_named(conn, roles::ADMIN)?);
        }
        Some(false) => wanted.retain(|r| r.name != roles::ADMIN),
        _ => {}
    }
    Ok(wanted)
}

/// The roles given (in `wanted`, not held now) and taken (held now, not in
/// `wanted`): each is a hand-out the actor must be entitled to.
fn changed_roles(conn: &Connection, current: &[String], wanted: &[Role]) -> Result<Vec<Role>, DbError> {
    let given = wanted.iter().filter(|r| !current.contains(&r.name)).cloned();
    let taken = current
        .iter()
        .filter(|name| !wanted.iter().any(|r| &r.name == *name))
        .map(|name| roles::role_named(conn, name));
    let mut changed: Vec<Role> = given.collect();
    for role in taken {
        changed.push(role?);
    }
    Ok(changed)
}

/// Deletes an account; its sessions end with it. An admin cannot delete
/// their own account this way, only an admin deletes an admin, and the last
/// admin stays.
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
        db::immediate(conn, |tx| {
            let actor = users::get(tx, auth.user.id)?;
            authority::require(&actor, perm::ADMIN_USERS)?;
            let user = users::get(tx, target)?;
            authority::may_act_on(&actor, user.is_admin)?;
            sessions::delete_for_user(tx, target)?;
            users::delete(tx, target)?;
            if user.is_admin {
                authority::keep_an_admin(tx, "the last admin cannot be deleted")?;
            }
            Ok(Event::new("user_delete")
                .by(auth.user.id, &auth.user.username)
                .ip(&ip)
                .target(target)
                .details(json!({"username": user.username, "email": user.email}))
                .record(tx)?)
        })
    })
    .await?;
    state.registry.do_send(Kick {
        target: Target::User(target),
        reason: "your account was deleted".into(),
    });
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisableTotpRequest {
    reason: String,
}

/// Turns a user's two-factor sign-in off, recovery codes and all: for
/// someone who lost both their authenticator and their codes, or whose
/// sealed secret no longer opens (SECRET_KEY changed). Only an admin does
/// this for an admin; the reason is audited with the admin and the target.
async fn disable_totp(
    state: web::Data<AppState>,
    auth: Auth,
    ip: ClientIp,
    id: web::Path<i64>,
    body: web::Json<DisableTotpRequest>,
) -> Result<HttpResponse, ApiError> {
    auth.require(perm::ADMIN_USERS)?;
    let target = UserId(id.into_inner());
    let reason = super::live::reason_or(Some(body.into_inner().reason), "")?;
    if reason.is_empty() {
        return Err(ApiError::bad_request("say why two-factor sign-in is turned off"));
    }
    let ip = ip.to_string();
    let user = db::run(&state.pool, move |conn| -> Result<_, ApiError> {
        db::immediate(conn, |tx| {
            let actor = users::get(tx, auth.user.id)?;
            authority::require(&actor, perm::ADMIN_USERS)?;
            let before = users::get(tx, target)?;
            authority::may_act_on(&actor, before.is_admin)?;
            if !before.totp_enabled {
                return Err(ApiError::Conflict("two-factor sign-in is not on for this user".into()));
            }
            users::disable_totp(tx, target)?;
            Event::new("user_update")
                .by(auth.user.id, &auth.user.username)
                .ip(&ip)
                .target(target)
                .details(json!({"username": before.username, "totp": "disabled", "reason": reason}))
                .record(tx)?;
            Ok(users::get(tx, target)?)
        })
    })
    .await?;
    Ok(HttpResponse::Ok().json(json!({"user": user})))
}
