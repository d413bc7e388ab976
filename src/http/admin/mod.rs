//! The admin API. Every route checks its own permission first.

pub mod invites;
pub mod live;
pub mod logs;
pub mod roles;
pub mod users;
pub mod voice;

use actix_web::web;

use crate::db::users::User;
use crate::error::ApiError;
use crate::realtime::registry::AuthorityChanged;
use crate::state::AppState;

/// Puts a committed change of these users' roles, permissions or admin flag
/// in force on their live sockets before the request answers.
async fn authority_changed(state: &AppState, users: Vec<User>) -> Result<(), ApiError> {
    if users.is_empty() {
        return Ok(());
    }
    state
        .registry
        .send(AuthorityChanged { users })
        .await
        .map_err(ApiError::internal)
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    live::configure(cfg);
    users::configure(cfg);
    invites::configure(cfg);
    roles::configure(cfg);
    logs::configure(cfg);
    voice::configure(cfg);
}
