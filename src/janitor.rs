//! A small actor that owns a timer and sweeps what expires: sessions past
//! their idle timeout or lifetime. Errors are logged; the actor lives on.

use std::time::Duration;

use actix::{Actor, AsyncContext, Context};

use crate::db::sessions::{self, Lifetimes};
use crate::db::Pool;

const SWEEP_EVERY: Duration = Duration::from_secs(300);

pub struct Janitor {
    pool: Pool,
    lifetimes: Lifetimes,
}

impl Janitor {
    pub fn new(pool: Pool, lifetimes: Lifetimes) -> Self {
        Self { pool, lifetimes }
    }
}

impl Actor for Janitor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(SWEEP_EVERY, |janitor, _| {
            let pool = janitor.pool.clone();
            let lifetimes = janitor.lifetimes;
            actix::spawn(async move {
                let swept = crate::db::run(&pool, move |conn| sessions::purge_expired(conn, lifetimes)).await;
                match swept {
                    Ok(0) => {}
                    Ok(count) => tracing::info!(count, "expired sessions removed"),
                    Err(error) => tracing::error!(%error, "sweeping expired sessions failed"),
                }
            });
        });
    }
}
