//! The SessionRegistry actor owns who is connected where: every live
//! WebSocket session (user, IP, user agent, room, voice state) and the
//! directory of live room actors. Admin control (kick, move, ban, changes
//! of authority) acts through it, and the admin monitor hears every change
//! from it. Sessions are held by the recipient of their [`Control`]; rooms,
//! which it starts, by address.

use std::collections::HashMap;
use std::sync::Arc;

use actix::{Actor, Addr, AsyncContext, Context, Handler, Message, MessageResult, Recipient};

use super::messages::{Control, Deliver, Moderation};
use super::monitor::{self, AdminMonitor, RegistryEvent};
use super::protocol::{LiveSession, RoomInfo, ServerMsg, VoiceStatus};
use super::room::{self, Room, RoomIdle, SlowMember};
use crate::auth::perm;
use crate::db::users::User;
use crate::db::writer::Writer;
use crate::db::Pool;
use crate::ids::{RoomCode, SessionId, UserId};
use crate::ip_scope;
use crate::metrics::Metrics;

/// A session connected; it is live until [`Disconnect`].
#[derive(Message)]
#[rtype(result = "()")]
pub struct Connect {
    pub session: LiveSession,
    pub login_session: i64,
    pub control: Recipient<Control>,
}

/// A message from outside the room (an uploaded file) for its room actor,
/// which is started if needed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Post {
    pub room: RoomInfo,
    pub room_id: i64,
    pub message: crate::db::messages::NewMessage,
}

/// A session's socket closed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Disconnect {
    pub sid: SessionId,
}

/// A session enters a room: answers the room's actor (started if needed).
#[derive(Message)]
#[rtype(result = "Addr<Room>")]
pub struct EnterRoom {
    pub sid: SessionId,
    pub room: RoomInfo,
    pub room_id: i64,
}

/// A session is in no room any more.
#[derive(Message)]
#[rtype(result = "()")]
pub struct LeftRoom {
    pub sid: SessionId,
}

/// A session's voice state changed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct VoiceChanged {
    pub sid: SessionId,
    pub voice: VoiceStatus,
}

/// A session with `sessions.view` starts watching: the monitor sends it the
/// sessions as they are now, then every change.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Watch {
    pub sid: SessionId,
    pub deliver: Recipient<Deliver>,
}

/// A watching session lost `sessions.view`: the monitor drops it. Sent by
/// the session itself, so it follows any `Watch` that session sent.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Unwatch {
    pub sid: SessionId,
}

/// Every live session, for the admin API.
#[derive(Message)]
#[rtype(result = "Vec<LiveSession>")]
pub struct Snapshot;

/// How many sessions are in a room.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct CountInRoom {
    pub code: RoomCode,
}

/// True when `user` has a live socket in room `code` now: the test for
/// posting to a room from outside the socket (an upload).
#[derive(Message)]
#[rtype(result = "bool")]
pub struct InRoom {
    pub user: UserId,
    pub code: RoomCode,
}

/// How many sessions a user, and an IP, hold now.
#[derive(Message)]
#[rtype(result = "(usize, usize)")]
pub struct CountFor {
    pub user: UserId,
    pub ip: String,
}

/// Which live sessions an admin action targets.
#[derive(Debug, Clone)]
pub enum Target {
    Session(SessionId),
    User(UserId),
    /// Every socket opened with one login session (logout ends them).
    Login(i64),
    /// Every session of a user, and every session from an address's ban
    /// scope (crate::ip_scope: IPv6 by /64).
    Banned {
        user: Option<UserId>,
        ip: Option<String>,
    },
}

/// Kicks (or, for a ban, bans) the targeted sessions: answers how many.
#[derive(Message)]
#[rtype(result = "Vec<LiveSession>")]
pub struct Kick {
    pub target: Target,
    pub reason: String,
}

/// Moves one session to another room: answers the session, if it is live.
#[derive(Message)]
#[rtype(result = "Option<LiveSession>")]
pub struct Move {
    pub sid: SessionId,
    pub room: RoomInfo,
    pub room_id: i64,
}

/// A moderator mutes or deafens one session (or lifts it): answers the
/// session as it was, if it is live. The session applies it and reports
/// its new voice state like any other change.
#[derive(Message)]
#[rtype(result = "Option<LiveSession>")]
pub struct Moderate {
    pub sid: SessionId,
    pub action: Moderation,
    pub reason: String,
}

/// The server is stopping: every session is told and closed.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct Shutdown {
    pub reason: String,
}

/// These users' roles, permissions, admin flag, name or picture changed
/// (committed): their sockets act on the fresh records at once, and their
/// admin watchers that lost `sessions.view` are dropped before the next
/// change goes out. Send it and await it, so the change is in force when
/// the request answers.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AuthorityChanged {
    pub users: Vec<User>,
}

/// Retention deleted messages: every live room reloads the history it
/// keeps, so joiners are not sent what is gone.
#[derive(Message)]
#[rtype(result = "()")]
pub struct MessagesExpired;

struct Entry {
    live: LiveSession,
    login_session: i64,
    control: Recipient<Control>,
}

pub struct SessionRegistry {
    sessions: HashMap<SessionId, Entry>,
    rooms: HashMap<RoomCode, Addr<Room>>,
    monitor: Addr<AdminMonitor>,
    writer: Writer,
    pool: Pool,
    metrics: Arc<Metrics>,
}

impl SessionRegistry {
    pub fn new(monitor: Addr<AdminMonitor>, writer: Writer, pool: Pool, metrics: Arc<Metrics>) -> Self {
        Self {
            sessions: HashMap::new(),
            rooms: HashMap::new(),
            monitor,
            writer,
            pool,
            metrics,
        }
    }

    fn publish(&self, sid: &SessionId) {
        if let Some(entry) = self.sessions.get(sid) {
            self.monitor.do_send(RegistryEvent::Update(entry.live.clone()));
        }
    }

    /// The live actor of a room, started if it is not running.
    fn room(&mut self, info: RoomInfo, room_id: i64, ctx: &mut Context<Self>) -> Addr<Room> {
        let (writer, pool, metrics) = (&self.writer, &self.pool, &self.metrics);
        self.rooms
            .entry(info.code.clone())
            .or_insert_with(|| {
                Room::new(
                    info,
                    room_id,
                    ctx.address().recipient(),
                    ctx.address().recipient(),
                    writer.clone(),
                    pool.clone(),
                    metrics.clone(),
                )
                .start()
            })
            .clone()
    }

    /// Takes `user`'s name and picture into their live sessions, telling
    /// the watchers of each one that changed.
    fn rename(&mut self, user: &User) {
        let mut changed = Vec::new();
        for entry in self.sessions.values_mut().filter(|e| e.live.user.id == user.id) {
            if entry.live.user.username != user.username || entry.live.avatar_url != user.avatar_url {
                entry.live.user.username = user.username.clone();
                entry.live.avatar_url = user.avatar_url.clone();
                changed.push(entry.live.sid.clone());
            }
        }
        for sid in &changed {
            self.publish(sid);
        }
    }

    fn matches(entry: &Entry, target: &Target) -> bool {
        match target {
            Target::Session(sid) => entry.live.sid == *sid,
            Target::User(user) => entry.live.user.id == *user,
            Target::Login(login) => entry.login_session == *login,
            Target::Banned { user, ip } => {
                user.is_some_and(|u| u == entry.live.user.id)
                    || ip.as_deref().is_some_and(|ip| ip_scope::covers(ip, &entry.live.ip))
            }
        }
    }
}

impl Actor for SessionRegistry {
    type Context = Context<Self>;
}

impl Handler<Connect> for SessionRegistry {
    type Result = ();

    fn handle(&mut self, msg: Connect, _: &mut Context<Self>) {
        let sid = msg.session.sid.clone();
        self.sessions.insert(
            sid.clone(),
            Entry {
                live: msg.session,
                login_session: msg.login_session,
                control: msg.control,
            },
        );
        self.publish(&sid);
    }
}

impl Handler<Disconnect> for SessionRegistry {
    type Result = ();

    fn handle(&mut self, msg: Disconnect, _: &mut Context<Self>) {
        if self.sessions.remove(&msg.sid).is_some() {
            self.monitor.do_send(RegistryEvent::Gone(msg.sid));
        }
    }
}

impl Handler<EnterRoom> for SessionRegistry {
    type Result = MessageResult<EnterRoom>;

    fn handle(&mut self, msg: EnterRoom, ctx: &mut Context<Self>) -> Self::Result {
        let code = msg.room.code.clone();
        let room = self.room(msg.room, msg.room_id, ctx);
        if let Some(entry) = self.sessions.get_mut(&msg.sid) {
            entry.live.room = Some(code);
            entry.live.voice = entry.live.voice.out_of_voice();
        }
        self.publish(&msg.sid);
        MessageResult(room)
    }
}

impl Handler<Post> for SessionRegistry {
    type Result = ();

    fn handle(&mut self, msg: Post, ctx: &mut Context<Self>) {
        self.room(msg.room, msg.room_id, ctx)
            .do_send(room::Post { message: msg.message });
    }
}

impl Handler<LeftRoom> for SessionRegistry {
    type Result = ();

    fn handle(&mut self, msg: LeftRoom, _: &mut Context<Self>) {
        if let Some(entry) = self.sessions.get_mut(&msg.sid) {
            entry.live.room = None;
            entry.live.voice = entry.live.voice.out_of_voice();
        }
        self.publish(&msg.sid);
    }
}

impl Handler<VoiceChanged> for SessionRegistry {
    type Result = ();

    fn handle(&mut self, msg: VoiceChanged, _: &mut Context<Self>) {
        if let Some(entry) = self.sessions.get_mut(&msg.sid) {
            entry.live.voice = msg.voice;
        }
        self.publish(&msg.sid);
    }
}

impl Handler<RoomIdle> for SessionRegistry {
    type Result = ();

    /// Stops a room only if no session has entered it since it went idle;
    /// entering goes through this actor, so the check cannot race a join.
    fn handle(&mut self, msg: RoomIdle, _: &mut Context<Self>) {
        let occupied = self.sessions.values().any(|e| e.live.room.as_ref() == Some(&msg.code));
        if !occupied {
            if let Some(room) = self.rooms.remove(&msg.code) {
                room.do_send(room::Stop);
            }
        }
    }
}

impl Handler<SlowMember> for SessionRegistry {
    type Result = ();

    fn handle(&mut self, msg: SlowMember, _: &mut Context<Self>) {
        if let Some(entry) = self.sessions.get(&msg.sid) {
            entry.control.do_send(Control::Kicked {
                reason: "your connection could not keep up".into(),
            });
        }
    }
}

impl Handler<Watch> for SessionRegistry {
    type Result = ();

    /// The snapshot goes to the monitor in the same stream as the changes.
    fn handle(&mut self, msg: Watch, _: &mut Context<Self>) {
        let Some(watcher) = self.sessions.get(&msg.sid) else {
            return;
        };
        let mut sessions: Vec<&LiveSession> = self.sessions.values().map(|e| &e.live).collect();
        sessions.sort_by_key(|s| s.connected_at);
        self.monitor.do_send(monitor::Watch {
            snapshot: ServerMsg::Sessions { sessions }.encode(),
            control: watcher.control.clone(),
            sid: msg.sid,
            deliver: msg.deliver,
        });
    }
}

impl Handler<Unwatch> for SessionRegistry {
    type Result = ();

    /// Behind any `Watch` the session sent before it, on the way to the
    /// monitor.
    fn handle(&mut self, msg: Unwatch, _: &mut Context<Self>) {
        self.monitor.do_send(monitor::Unwatch { sid: msg.sid });
    }
}

impl Handler<Snapshot> for SessionRegistry {
    type Result = MessageResult<Snapshot>;

    fn handle(&mut self, _: Snapshot, _: &mut Context<Self>) -> Self::Result {
        let mut all: Vec<LiveSession> = self.sessions.values().map(|e| e.live.clone()).collect();
        all.sort_by_key(|s| s.connected_at);
        MessageResult(all)
    }
}

impl Handler<CountInRoom> for SessionRegistry {
    type Result = usize;

    fn handle(&mut self, msg: CountInRoom, _: &mut Context<Self>) -> usize {
        self.sessions
            .values()
            .filter(|e| e.live.room.as_ref() == Some(&msg.code))
            .count()
    }
}

impl Handler<InRoom> for SessionRegistry {
    type Result = bool;

    fn handle(&mut self, msg: InRoom, _: &mut Context<Self>) -> bool {
        self.sessions
            .values()
            .any(|e| e.live.user.id == msg.user && e.live.room.as_ref() == Some(&msg.code))
    }
}

impl Handler<CountFor> for SessionRegistry {
    type Result = MessageResult<CountFor>;

    fn handle(&mut self, msg: CountFor, _: &mut Context<Self>) -> Self::Result {
        let per_user = self.sessions.values().filter(|e| e.live.user.id == msg.user).count();
        let per_ip = self.sessions.values().filter(|e| e.live.ip == msg.ip).count();
        MessageResult((per_user, per_ip))
    }
}

impl Handler<Kick> for SessionRegistry {
    type Result = MessageResult<Kick>;

    fn handle(&mut self, msg: Kick, _: &mut Context<Self>) -> Self::Result {
        let banned = matches!(msg.target, Target::Banned { .. });
        let mut hit = Vec::new();
        for entry in self.sessions.values().filter(|e| Self::matches(e, &msg.target)) {
            let reason = msg.reason.clone();
            entry.control.do_send(if banned {
                Control::Banned { reason }
            } else {
                Control::Kicked { reason }
            });
            hit.push(entry.live.clone());
        }
        MessageResult(hit)
    }
}

impl Handler<Move> for SessionRegistry {
    type Result = Option<LiveSession>;

    fn handle(&mut self, msg: Move, _: &mut Context<Self>) -> Self::Result {
        let entry = self.sessions.get(&msg.sid)?;
        entry.control.do_send(Control::MoveTo {
            room: msg.room,
            room_id: msg.room_id,
        });
        Some(entry.live.clone())
    }
}

impl Handler<Moderate> for SessionRegistry {
    type Result = Option<LiveSession>;

    fn handle(&mut self, msg: Moderate, _: &mut Context<Self>) -> Self::Result {
        let entry = self.sessions.get(&msg.sid)?;
        entry.control.do_send(Control::Moderate {
            action: msg.action,
            reason: msg.reason,
        });
        Some(entry.live.clone())
    }
}

impl Handler<Shutdown> for SessionRegistry {
    type Result = usize;

    fn handle(&mut self, msg: Shutdown, _: &mut Context<Self>) -> usize {
        for entry in self.sessions.values() {
            entry.control.do_send(Control::ServerStopping {
                reason: msg.reason.clone(),
            });
        }
        self.sessions.len()
    }
}

impl Handler<AuthorityChanged> for SessionRegistry {
    type Result = ();

    fn handle(&mut self, msg: AuthorityChanged, _: &mut Context<Self>) {
        for user in msg.users {
            let may_watch = user.can(perm::SESSIONS_VIEW);
            for entry in self.sessions.values().filter(|e| e.live.user.id == user.id) {
                if !may_watch {
                    // Ahead of any later event in the monitor's mailbox.
                    self.monitor.do_send(monitor::Unwatch {
                        sid: entry.live.sid.clone(),
                    });
                }
                entry.control.do_send(Control::Reauthorized { user: user.clone() });
            }
            self.rename(&user);
        }
    }
}

impl Handler<MessagesExpired> for SessionRegistry {
    type Result = ();

    fn handle(&mut self, _: MessagesExpired, _: &mut Context<Self>) {
        for room in self.rooms.values() {
            room.do_send(room::ReloadHistory);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::testing::memory_pool;
    use crate::realtime::testing::{frames, live, until, Got, Log, Probe};

    fn registry() -> Addr<SessionRegistry> {
        let pool = memory_pool();
        let writer = Writer::start(pool.clone(), Arc::default()).unwrap();
        SessionRegistry::new(AdminMonitor::default().start(), writer, pool, Default::default()).start()
    }

    /// Connects a probe as session `sid` of `user` from `ip`, opened with
    /// login session `login`.
    fn connect(registry: &Addr<SessionRegistry>, sid: &str, user: i64, ip: &str, login: i64) -> Log {
        let (probe, log) = Probe::start();
        registry.do_send(Connect {
            session: live(sid, user, ip),
            login_session: login,
            control: probe.recipient(),
        });
        log
    }

    fn sids(hit: &[LiveSession]) -> Vec<&str> {
        let mut sids: Vec<&str> = hit.iter().map(|s| s.sid.0.as_str()).collect();
        sids.sort();
        sids
    }

    async fn kick(registry: &Addr<SessionRegistry>, target: Target) -> Vec<String> {
        let hit = registry
            .send(Kick {
                target,
                reason: "why".into(),
            })
            .await
            .unwrap();
        sids(&hit).into_iter().map(str::to_owned).collect()
    }

    fn lobby() -> RoomInfo {
        RoomInfo {
            code: RoomCode::lobby(),
            name: "Lobby".into(),
        }
    }

    #[actix::test]
    async fn kicks_bans_moves_mutes_and_shutdown_reach_exactly_their_targets() {
        let registry = registry();
        let s1 = connect(&registry, "s1", 1, "10.0.0.1", 100);
        let s2 = connect(&registry, "s2", 1, "10.0.0.2", 101);
        let s3 = connect(&registry, "s3", 2, "10.0.0.1", 102);

        assert_eq!(kick(&registry, Target::Session(SessionId("s3".into()))).await, ["s3"]);
        assert_eq!(kick(&registry, Target::User(UserId(1))).await, ["s1", "s2"]);
        assert_eq!(kick(&registry, Target::Login(101)).await, ["s2"]);
        let by_ip = Target::Banned {
            user: None,
            ip: Some("10.0.0.1".into()),
        };
        assert_eq!(kick(&registry, by_ip).await, ["s1", "s3"]);
        assert!(kick(&registry, Target::Session(SessionId("nobody".into())))
            .await
            .is_empty());

        let moved = registry
            .send(Move {
                sid: SessionId("s2".into()),
                room: lobby(),
                room_id: 1,
            })
            .await
            .unwrap();
        assert_eq!(moved.map(|s| s.sid.0), Some("s2".to_owned()));
        let nobody = Move {
            sid: SessionId("nobody".into()),
            room: lobby(),
            room_id: 1,
        };
        assert!(registry.send(nobody).await.unwrap().is_none());
        let moderate = |sid: &str| Moderate {
            sid: SessionId(sid.into()),
            action: Moderation::Mute(true),
            reason: "why".into(),
        };
        let muted = registry.send(moderate("s3")).await.unwrap();
        assert_eq!(muted.map(|s| s.sid.0), Some("s3".to_owned()));
        assert!(registry.send(moderate("nobody")).await.unwrap().is_none());
        let told = registry
            .send(Shutdown {
                reason: "restart".into(),
            })
            .await
            .unwrap();
        assert_eq!(told, 3);

        until("every probe heard its last word", || {
            [&s1, &s2, &s3]
                .iter()
                .all(|log| log.borrow().last() == Some(&Got::Stopping("restart".into())))
        })
        .await;
        let why = || "why".to_owned();
        assert_eq!(
            *s1.borrow(),
            [Got::Kicked(why()), Got::Banned(why()), Got::Stopping("restart".into())]
        );
        assert_eq!(
            *s2.borrow(),
            [
                Got::Kicked(why()),
                Got::Kicked(why()),
                Got::Moved("lobby".into()),
                Got::Stopping("restart".into())
            ]
        );
        assert_eq!(
            *s3.borrow(),
            [
                Got::Kicked(why()),
                Got::Banned(why()),
                Got::Moderated(Moderation::Mute(true), why()),
                Got::Stopping("restart".into())
            ]
        );
    }

    #[actix::test]
    async fn a_room_is_stopped_only_when_nobody_is_in_it() {
        let registry = registry();
        let _s1 = connect(&registry, "s1", 1, "10.0.0.1", 100);
        let enter = |sid: &str| EnterRoom {
            sid: SessionId(sid.into()),
            room: lobby(),
            room_id: 1,
        };
        let first = registry.send(enter("s1")).await.unwrap();
        assert_eq!(registry.send(enter("s1")).await.unwrap(), first, "one actor per room");

        registry.do_send(RoomIdle {
            code: RoomCode::lobby(),
        });
        assert_eq!(
            registry.send(enter("s1")).await.unwrap(),
            first,
            "an idle report for an occupied room is ignored"
        );
        assert!(first.connected());

        registry.do_send(Disconnect {
            sid: SessionId("s1".into()),
        });
        registry.do_send(RoomIdle {
            code: RoomCode::lobby(),
        });
        until("the idle room stops", || !first.connected()).await;
        let count = registry
            .send(CountInRoom {
                code: RoomCode::lobby(),
            })
            .await
            .unwrap();
        assert_eq!(count, 0);
        let _s2 = connect(&registry, "s2", 1, "10.0.0.1", 100);
        let second = registry.send(enter("s2")).await.unwrap();
        assert_ne!(second, first, "a new actor for the next visitor");
        assert!(second.connected());
    }

    #[actix::test]
    async fn a_slow_member_reported_by_its_room_is_kicked() {
        let registry = registry();
        let s1 = connect(&registry, "s1", 1, "10.0.0.1", 100);
        registry.do_send(SlowMember {
            sid: SessionId("s1".into()),
        });
        registry.do_send(SlowMember {
            sid: SessionId("nobody".into()),
        });
        until("s1 is kicked", || !s1.borrow().is_empty()).await;
        assert_eq!(*s1.borrow(), [Got::Kicked("your connection could not keep up".into())]);
    }

    #[actix::test]
    async fn a_watcher_gets_the_sessions_then_every_change_in_order() {
        let registry = registry();
        let _s1 = connect(&registry, "s1", 1, "10.0.0.1", 100);
        let (watcher, log) = Probe::start();
        registry.do_send(Connect {
            session: live("admin", 7, "10.0.0.7"),
            login_session: 107,
            control: watcher.clone().recipient(),
        });
        registry.do_send(Watch {
            sid: SessionId("admin".into()),
            deliver: watcher.clone().recipient(),
        });
        let _s2 = connect(&registry, "s2", 2, "10.0.0.2", 102);
        registry.do_send(Disconnect {
            sid: SessionId("s1".into()),
        });
        until("the watcher hears s1 go", || !frames(&log, "session_gone").is_empty()).await;
        let kinds: Vec<String> = log
            .borrow()
            .iter()
            .map(|got| match got {
                Got::Frame(frame) => frame["type"].as_str().unwrap().to_owned(),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(kinds, ["sessions", "session_update", "session_gone"]);
        let snapshot = &frames(&log, "sessions")[0]["sessions"];
        let sids: Vec<&str> = snapshot
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["sid"].as_str().unwrap())
            .collect();
        assert_eq!(sids, ["s1", "admin"]);
        assert_eq!(frames(&log, "session_update")[0]["session"]["sid"], "s2");
        assert_eq!(frames(&log, "session_gone")[0]["sid"], "s1");
    }
}
