//! The admin API. Every route checks its own permission first.

mod live;
mod logs;
mod roles;
mod users;
mod voice;

use actix_web::web;

pub fn configure(cfg: &mut web::ServiceConfig) {
    live::configure(cfg);
    users::configure(cfg);
    roles::configure(cfg);
    logs::configure(cfg);
    voice::configure(cfg);
}
