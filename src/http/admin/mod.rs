//! The admin API. Every route checks its own permission first.

pub mod live;
pub mod logs;
pub mod roles;
pub mod users;

use actix_web::web;

pub fn configure(cfg: &mut web::ServiceConfig) {
    live::configure(cfg);
    users::configure(cfg);
    roles::configure(cfg);
    logs::configure(cfg);
}
