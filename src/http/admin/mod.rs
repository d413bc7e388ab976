//! The admin API. Every route checks its own permission first.

mod logs;
mod roles;
mod users;

use actix_web::web;

pub fn configure(cfg: &mut web::ServiceConfig) {
    users::configure(cfg);
    roles::configure(cfg);
    logs::configure(cfg);
}
