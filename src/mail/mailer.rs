//! The Mailer actor owns the outbox's timer: it sends what is due, one mail
//! after another, and sleeps until the next mail is due or a `Wake` says
//! something new was queued. A failed attempt is tried again after an
//! exponentially growing pause; a mail is given up (with a log line) after
//! `MAX_ATTEMPTS`, at once on a permanent (5xx) refusal, and when its link
//! expires first. Rows live in SQLite, so a restart resumes where it was.
//! Errors are logged; the actor lives on.

use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, ActorFutureExt, AsyncContext, Context, Handler, Message, SpawnHandle, WrapFuture};

use super::smtp::SmtpSender;
use super::Body;
use crate::auth::sealed::SealingKey;
use crate::db::outbox::{self, QueuedMail};
use crate::db::{self, now_ms, DbError, Pool};
use crate::metrics::Metrics;

/// The pause after the first failure; it doubles with each further one.
const FIRST_RETRY: Duration = Duration::from_secs(5);
const LONGEST_RETRY: Duration = Duration::from_secs(3600);
/// About a day of retries (5 s doubling to an hour, then hourly).
pub const MAX_ATTEMPTS: u32 = 30;
/// Mails read from the outbox at a time.
const BATCH: u32 = 20;
/// After a database error the mailer tries again this much later.
const AFTER_DB_ERROR: Duration = Duration::from_secs(30);
/// The longest sleep: a clock that jumps is noticed within this.
const LONGEST_SLEEP: Duration = Duration::from_secs(600);

/// Something was queued: send what is due now.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Wake;

pub struct Mailer {
    pool: Pool,
    smtp: Arc<SmtpSender>,
    key: Arc<SealingKey>,
    metrics: Arc<Metrics>,
    /// A round of sending is under way.
    busy: bool,
    /// A `Wake` came during the round: another round follows at once.
    again: bool,
    timer: Option<SpawnHandle>,
}

impl Mailer {
    pub fn new(pool: Pool, smtp: SmtpSender, key: SealingKey, metrics: Arc<Metrics>) -> Self {
        Self {
            pool,
            smtp: Arc::new(smtp),
            key: Arc::new(key),
            metrics,
            busy: false,
            again: false,
            timer: None,
        }
    }

    /// Starts a round of sending unless one is under way.
    fn send_due(&mut self, ctx: &mut Context<Self>) {
        if self.busy {
            self.again = true;
            return;
        }
        self.busy = true;
        if let Some(timer) = self.timer.take() {
            ctx.cancel_future(timer);
        }
        let round = deliver_due(
            self.pool.clone(),
            self.smtp.clone(),
            self.key.clone(),
            self.metrics.clone(),
        );
        ctx.spawn(round.into_actor(self).map(|next, mailer, ctx| {
            mailer.busy = false;
            if std::mem::take(&mut mailer.again) {
                return mailer.send_due(ctx);
            }
            let sleep = match next {
                Ok(None) => return,
                Ok(Some(due_at)) => Duration::from_millis(due_at.saturating_sub(now_ms()).max(0) as u64),
                Err(error) => {
                    tracing::error!(%error, "the mailer cannot read the outbox");
                    AFTER_DB_ERROR
                }
            };
            mailer.timer = Some(ctx.run_later(sleep.min(LONGEST_SLEEP), |mailer, ctx| {
                mailer.timer = None;
                mailer.send_due(ctx);
            }));
        }));
    }
}

impl Actor for Mailer {
    type Context = Context<Self>;

    /// Mail left from before a restart goes out now.
    fn started(&mut self, ctx: &mut Self::Context) {
        self.send_due(ctx);
    }
}

impl Handler<Wake> for Mailer {
    type Result = ();

    fn handle(&mut self, _: Wake, ctx: &mut Context<Self>) {
        self.send_due(ctx);
    }
}

/// Sends every mail that is due, and answers when the next one will be.
async fn deliver_due(
    pool: Pool,
    smtp: Arc<SmtpSender>,
    key: Arc<SealingKey>,
    metrics: Arc<Metrics>,
) -> Result<Option<i64>, DbError> {
    loop {
        let batch = db::run(&pool, |conn| outbox::due(conn, now_ms(), BATCH)).await?;
        if batch.is_empty() {
            break;
        }
        for queued in batch {
            let outcome = attempt(&smtp, &key, &queued).await;
            settle(&pool, &metrics, queued, outcome).await?;
        }
    }
    db::run(&pool, |conn| outbox::next_due_at(conn)).await
}

/// What became of one attempt.
enum Attempt {
    Sent,
    /// Not worth sending any more (its link expired), or unreadable.
    Dropped(&'static str),
    Failed {
        error: String,
        permanent: bool,
    },
}

async fn attempt(smtp: &SmtpSender, key: &SealingKey, queued: &QueuedMail) -> Attempt {
    if queued.discard_at.is_some_and(|at| at <= now_ms()) {
        return Attempt::Dropped("its link expired before it could be sent");
    }
    let Some(body) = Body::open(key, &queued.body) else {
        return Attempt::Dropped("its body does not open: has SECRET_KEY changed?");
    };
    let message_id = format!("sb-{}-{}", queued.id, queued.created_at);
    match smtp.send(&queued.to, &queued.subject, &body, &message_id).await {
        Ok(()) => Attempt::Sent,
        Err(error) => Attempt::Failed {
            permanent: error.is_permanent(),
            error: error.to_string(),
        },
    }
}

/// Records the outcome: the row goes (sent, dropped, given up) or waits for
/// its next attempt.
async fn settle(pool: &Pool, metrics: &Metrics, queued: QueuedMail, outcome: Attempt) -> Result<(), DbError> {
    let (id, kind) = (queued.id, queued.kind.as_str());
    let attempts = queued.attempts + 1;
    let next_attempt = match outcome {
        Attempt::Sent => {
            Metrics::inc(&metrics.mail_sent);
            tracing::info!(mail = id, kind, attempts, "mail sent");
            None
        }
        Attempt::Dropped(why) => {
            Metrics::inc(&metrics.mail_failed);
            tracing::warn!(mail = id, kind, reason = why, "mail dropped");
            None
        }
        Attempt::Failed { error, permanent } if permanent || attempts >= MAX_ATTEMPTS => {
            Metrics::inc(&metrics.mail_failed);
            tracing::error!(mail = id, kind, attempts, %error, "mail given up");
            None
        }
        Attempt::Failed { error, .. } => {
            let pause = retry_pause(attempts);
            tracing::warn!(mail = id, kind, attempts, retry_in_secs = pause.as_secs(), %error, "mail not sent; will retry");
            Some((now_ms() + pause.as_millis() as i64, error))
        }
    };
    db::run(pool, move |conn| match next_attempt {
        None => outbox::remove(conn, id),
        Some((at, error)) => outbox::reschedule(conn, id, attempts, at, &error),
    })
    .await
}

/// The pause after `attempts` failed attempts: 5 s, 10 s, 20 s ... up to an hour.
fn retry_pause(attempts: u32) -> Duration {
    let doublings = attempts.saturating_sub(1).min(16);
    FIRST_RETRY.saturating_mul(1 << doublings).min(LONGEST_RETRY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_exponentially_up_to_an_hour() {
        assert_eq!(retry_pause(1), Duration::from_secs(5));
        assert_eq!(retry_pause(2), Duration::from_secs(10));
        assert_eq!(retry_pause(5), Duration::from_secs(80));
        assert_eq!(retry_pause(20), LONGEST_RETRY);
        assert_eq!(retry_pause(u32::MAX), LONGEST_RETRY);
        let total: Duration = (1..MAX_ATTEMPTS).map(retry_pause).sum();
        assert!(total > Duration::from_secs(20 * 3600), "about a day: {total:?}");
    }
}
