//! A small actor that owns a timer and sweeps what expires: sessions past
//! their idle timeout or lifetime, guest accounts no session leads to,
//! one-time links and invitations that expired or were used up, and rows
//! past their retention time. It sweeps once at start, then every five
//! minutes after the previous sweep ends. When retention deleted messages
//! it tells the live rooms ([`MessagesExpired`]), which reload the history
//! they keep. Errors are logged; the actor lives on.

use std::path::PathBuf;
use std::time::Duration;

use actix::{Actor, ActorFutureExt, AsyncContext, Context, Recipient, WrapFuture};

use crate::config::Retention;
use crate::db::sessions::{self, Lifetimes};
use crate::db::Pool;
use crate::db::{account_tokens, invites, users};
use crate::realtime::registry::MessagesExpired;
use crate::retention;

const SWEEP_EVERY: Duration = Duration::from_secs(300);
/// A guest account lives at least this long (its first session is being made).
const GUEST_GRACE_MS: i64 = 3_600_000;

pub struct Janitor {
    pool: Pool,
    lifetimes: Lifetimes,
    retention: Retention,
    uploads_dir: PathBuf,
    /// Told when retention deleted messages (the registry, which owns the
    /// live rooms).
    rooms: Recipient<MessagesExpired>,
}

impl Janitor {
    pub fn new(
        pool: Pool,
        lifetimes: Lifetimes,
        retention: Retention,
        uploads_dir: PathBuf,
        rooms: Recipient<MessagesExpired>,
    ) -> Self {
        Self {
            pool,
            lifetimes,
            retention,
            uploads_dir,
            rooms,
        }
    }

    /// Sweeps now, then schedules the next sweep once this one is done, so
    /// a long sweep never overlaps the next.
    fn sweep(&mut self, ctx: &mut Context<Self>) {
        let pool = self.pool.clone();
        let lifetimes = self.lifetimes;
        let retention = self.retention;
        let uploads_dir = self.uploads_dir.clone();
        let rooms = self.rooms.clone();
        let work = async move {
            sweep_sessions(&pool, lifetimes).await;
            match retention::sweep(&pool, retention, &uploads_dir).await {
                Ok(swept) if swept.is_empty() => {}
                Ok(swept) => {
                    tracing::info!(
                        messages = swept.messages,
                        uploads = swept.uploads,
                        audit = swept.audit,
                        "retention: expired rows removed"
                    );
                    if swept.messages > 0 {
                        rooms.do_send(MessagesExpired);
                    }
                }
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

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use actix::Addr;
    use serde_json::Value;

    use super::*;
    use crate::db::messages::{self, NewMessage};
    use crate::db::rooms;
    use crate::db::testing::memory_pool;
    use crate::db::writer::Writer;
    use crate::ids::{RoomCode, SessionId, UserId};
    use crate::realtime::monitor::AdminMonitor;
    use crate::realtime::protocol::RoomInfo;
    use crate::realtime::registry::{Connect, EnterRoom, Post, SessionRegistry};
    use crate::realtime::room::{self, Room};
    use crate::realtime::testing::{frames, live, member, until, Probe};

    const DAY_MS: i64 = 86_400_000;

    fn chat(room: &rooms::Room, user: UserId, text: &str) -> NewMessage {
        NewMessage {
            room_id: room.id,
            room: room.code.clone(),
            user_id: user,
            username: "guest-ann".into(),
            display_name: "Ann".into(),
            text: text.into(),
            ip: "10.0.0.1".into(),
            nonce: None,
            attachment: None,
        }
    }

    fn texts(history: &Value) -> Vec<&str> {
        history
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["text"].as_str().unwrap())
            .collect()
    }

    /// Puts a probe into the room as session `sid`: the history its
    /// `joined` frame carries.
    async fn join(registry: &Addr<SessionRegistry>, lobby: &RoomInfo, sid: &str) -> (Addr<Room>, Value) {
        let (probe, log) = Probe::start();
        registry.do_send(Connect {
            session: live(sid, 1, "10.0.0.1"),
            login_session: 1,
            control: probe.clone().recipient(),
        });
        let enter = EnterRoom {
            sid: SessionId(sid.into()),
            room: lobby.clone(),
            room_id: 1,
        };
        let room = registry.send(enter).await.unwrap();
        room.do_send(room::Join {
            member: member(sid, 1),
            deliver: probe.recipient(),
        });
        until("the probe has joined", || !frames(&log, "joined").is_empty()).await;
        let history = frames(&log, "joined")[0]["history"].clone();
        (room, history)
    }

    /// The gap ops left: a room live during a retention pass kept serving
    /// the deleted messages from its cache to every later joiner.
    #[actix::test]
    async fn a_room_live_during_a_retention_pass_stops_serving_what_it_deleted() {
        let pool = memory_pool();
        let conn = pool.get().unwrap();
        let lobby = rooms::get(&conn, RoomCode::LOBBY).unwrap();
        let ann = users::create_guest(&conn, "guest-ann", "Ann").unwrap();
        for text in ["old 1", "old 2", "new 1", "new 2"] {
            messages::insert(&conn, &chat(&lobby, ann, text)).unwrap();
        }
        conn.execute("UPDATE messages SET ts = ts - ?1 WHERE text LIKE 'old%'", [40 * DAY_MS])
            .unwrap();
        let writer = Writer::start(pool.clone(), std::sync::Arc::default()).unwrap();
        let registry = SessionRegistry::new(
            AdminMonitor::default().start(),
            writer,
            pool.clone(),
            Default::default(),
        )
        .start();
        let info = RoomInfo {
            code: lobby.code.clone(),
            name: lobby.name.clone(),
        };
        let (live_room, history) = join(&registry, &info, "first").await;
        assert_eq!(texts(&history), ["old 1", "old 2", "new 1", "new 2"]);

        let uploads = tempfile::tempdir().unwrap();
        let retention = Retention {
            messages: Some(Duration::from_secs(30 * 86_400)),
            ..Retention::default()
        };
        let lifetimes = Lifetimes {
            idle_ms: DAY_MS,
            max_ms: DAY_MS,
        };
        Janitor::new(
            pool.clone(),
            lifetimes,
            retention,
            uploads.path().to_owned(),
            registry.clone().recipient(),
        )
        .start();

        // The sweep and the reload take their time: each later joiner looks
        // until one is served the database's history (or the wait ends).
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut joiner = 0;
        loop {
            joiner += 1;
            let (room, history) = join(&registry, &info, &format!("joiner-{joiner}")).await;
            assert_eq!(room, live_room, "the same live room throughout");
            if texts(&history) == ["new 1", "new 2"] {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the live room still serves deleted messages: {history}"
            );
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
        let left: i64 = conn
            .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 2, "retention deleted the old messages");

        // A message stored after the reload is kept once, after the others.
        registry.do_send(Post {
            room: info.clone(),
            room_id: lobby.id,
            message: chat(&lobby, ann, "after"),
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            joiner += 1;
            let (_, history) = join(&registry, &info, &format!("joiner-{joiner}")).await;
            if texts(&history).len() > 2 {
                assert_eq!(texts(&history), ["new 1", "new 2", "after"]);
                break;
            }
            assert!(Instant::now() < deadline, "the new message never reached the history");
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
