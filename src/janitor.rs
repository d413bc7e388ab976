//! A small actor that owns a timer and sweeps what expires: sessions past
//! their idle timeout or lifetime, guest accounts no session leads to,
//! one-time links and invitations that expired or were used up, and rows
//! past their retention time. It sweeps once at start, then every five
//! minutes after the previous sweep ends. Errors are logged; the actor lives on.

use std::path::PathBuf;
use std::time::Duration;

use actix::{Actor, ActorFutureExt, AsyncContext, Context, WrapFuture};

use crate::config::Retention;
use crate::db::sessions::{self, Lifetimes};
use crate::db::Pool;
use crate::db::{account_tokens, invites, users};
use crate::retention;

const SWEEP_EVERY: Duration = Duration::from_secs(300);
/// A guest account lives at least this long (its first session is being made).
const GUEST_GRACE_MS: i64 = 3_600_000;

pub struct Janitor {
    pool: Pool,
    lifetimes: Lifetimes,
    retention: Retention,
    uploads_dir: PathBuf,
}

impl Janitor {
    pub fn new(pool: Pool, lifetimes: Lifetimes, retention: Retention, uploads_dir: PathBuf) -> Self {
        Self {
            pool,
            lifetimes,
            retention,
            uploads_dir,
        }
    }

    /// Sweeps now, then schedules the next sweep once this one is done, so
    /// a long sweep never overlaps the next.
    fn sweep(&mut self, ctx: &mut Context<Self>) {
        let pool = self.pool.clone();
        let lifetimes = self.lifetimes;
        let retention = self.retention;
        let uploads_dir = self.uploads_dir.clone();
        let work = async move {
            sweep_sessions(&pool, lifetimes).await;
            match retention::sweep(&pool, retention, &uploads_dir).await {
                Ok(swept) if swept.is_empty() => {}
                Ok(swept) => tracing::info!(
                    messages = swept.messages,
                    uploads = swept.uploads,
                    audit = swept.audit,
                    "retention: expired rows removed"
                ),
                Err(error) => tracing::error!(%error, "retention sweep failed"),
            }
        };
        ctx.spawn(work.into_actor(self).map(|(), _, ctx| {
            ctx.run_later(SWEEP_EVERY, Self::sweep);
        }));
    }
}

async fn sweep_sessions(pool: &Pool, lifetimes: Lifetimes) {
    let swept = crate::db::run(pool, move |conn| {
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
}

impl Actor for Janitor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.sweep(ctx);
    }
}
