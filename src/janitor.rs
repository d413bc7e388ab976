//! A small actor that owns a timer and sweeps what expires: sessions past
//! their idle timeout or lifetime, guest accounts no session leads to, and
//! one-time links and invitations that expired or were used up. Errors are
//! logged; the actor lives on.

use std::time::Duration;

use actix::{Actor, AsyncContext, Context};

use crate::db::sessions::{self, Lifetimes};
use crate::db::Pool;
use crate::db::{account_tokens, invites, users};

const SWEEP_EVERY: Duration = Duration::from_secs(300);
/// A guest account lives at least this long (its first session is being made).
const GUEST_GRACE_MS: i64 = 3_600_000;

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
                let swept = crate::db::run(&pool, move |conn| {
                    let sessions = sessions::purge_expired(conn, lifetimes)?;
                    let guests = users::purge_abandoned_guests(conn, GUEST_GRACE_MS)?;
                    let links = account_tokens::purge_expired(conn)? + invites::purge_spent(conn)?;
                    Ok::<_, crate::db::DbError>((sessions, guests, links))
                })
                .await;
                match swept {
                    Ok((0, 0, 0)) => {}
                    Ok((sessions, guests, links)) => {
                        tracing::info!(sessions, guests, links, "expired sessions, guests and links removed");
                    }
                    Err(error) => tracing::error!(%error, "sweeping expired sessions failed"),
                }
            });
        });
    }
}
