//! The WsSession actor owns one WebSocket connection: its user, its room,
//! its voice state and its limits. It is the only module that knows the
//! WebSocket library (actix-web-actors), so moving to actix-ws touches this
//! file alone.

use std::time::{Duration, Instant};

use actix::{Actor, ActorContext, ActorFutureExt, Addr, AsyncContext, Handler, Message, StreamHandler, WrapFuture};
use actix_web::{web, HttpRequest, HttpResponse};
use actix_web_actors::ws::{self, CloseCode, CloseReason};
use bytestring::ByteString;
use chrono::Utc;
use serde_json::{json, Value};

use super::ice;
use super::limits::{Flood, TokenBucket};
use super::monitor::{Unwatch, Watch};
use super::protocol::{
    error_frame, ClientMsg, LiveSession, Member, ProtocolError, RoomInfo, ServerMsg, UserRef, VoiceAction,
    MAX_CHAT_CHARS, MAX_FRAME_BYTES, MAX_NONCE_CHARS, MAX_SIGNAL_BYTES,
};
use super::registry::{Connect, Disconnect, EnterRoom, LeftRoom, VoiceChanged};
use super::room::{self, Room};
use crate::auth::perm;
use crate::auth::session::Auth;
use crate::auth::signin::must_verify_first;
use crate::auth::tokens::random_token;
use crate::db::users::User;
use crate::db::{self, audit::Event, messages::NewMessage, rooms, sessions};
use crate::error::ApiError;
use crate::ids::{RoomCode, SessionId};
use crate::metrics::Metrics;
use crate::state::AppState;

/// How often the server pings.
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(10);
/// A client silent this long is dropped (well within the 60 s promise).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);
/// How often an open socket counts as activity on its login session.
const TOUCH_INTERVAL: Duration = Duration::from_secs(60);
/// Frames queued for this socket beyond this are refused by `try_send`,
/// and the room drops the session as too slow.
const MAILBOX_CAPACITY: usize = 1024;
/// Any frame (signalling included): sustained per second, and burst.
const FRAME_RATE: f64 = 50.0;
const FRAME_BURST: f64 = 200.0;
const ROOM_CODE_MAX_CHARS: usize = 64;

// Close codes: 4001 kicked, 4003 banned (the contract's), 1008 policy,
// 1009 too big, 1012 restarting.
const CLOSE_KICKED: u16 = 4001;
const CLOSE_BANNED: u16 = 4003;

/// A frame to write to this socket (already encoded, often shared).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Deliver(pub ByteString);

/// An admin (or the server) kicks this session: `kicked`, then close 4001.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Kicked {
    pub reason: String,
}

/// A ban covers this session: `banned`, then close 4003.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Banned {
    pub reason: String,
}

/// An admin moves this session: `moved`, then `joined` for the new room.
#[derive(Message)]
#[rtype(result = "()")]
pub struct MoveTo {
    pub room: RoomInfo,
    pub room_id: i64,
}

/// The server is stopping: an `error` frame with the reason, then close 1012.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ServerStopping {
    pub reason: String,
}

/// The user's authority, name or picture changed: the session acts on the
/// fresh record from now on, tells the client with a `user` frame, and its
/// room the others (`member_updated`) when the name or picture changed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Reauthorized {
    pub user: User,
}

struct InRoom {
    info: RoomInfo,
    addr: Addr<Room>,
}

pub struct WsSession {
    sid: SessionId,
    auth: Auth,
    ip: String,
    user_agent: String,
    state: web::Data<AppState>,
    room: Option<InRoom>,
    in_voice: bool,
    muted: bool,
    last_heard: Instant,
    frames: TokenBucket,
    chats: TokenBucket,
    flood: Flood,
}

/// Upgrades the request to a WebSocket served by a new session actor. The
/// caller has authenticated the request and checked Origin and bans.
pub fn serve(
    req: &HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    auth: Auth,
    ip: String,
    user_agent: String,
) -> Result<HttpResponse, actix_web::Error> {
    let chat_rate = f64::from(state.config.chat_rate_per_sec);
    let chat_burst = f64::from(state.config.chat_burst);
    let session = WsSession {
        sid: SessionId(random_token(12)),
        auth,
        ip,
        user_agent,
        state,
        room: None,
        in_voice: false,
        muted: false,
        last_heard: Instant::now(),
        frames: TokenBucket::new(FRAME_RATE, FRAME_BURST),
        chats: TokenBucket::new(chat_rate, chat_burst),
        flood: Flood::default(),
    };
    // A request that is not a WebSocket handshake gets the contract's error body.
    ws::WsResponseBuilder::new(session, req, payload)
        .frame_size(MAX_FRAME_BYTES)
        .start()
        .map_err(|e| ApiError::bad_request(format!("not a WebSocket handshake: {e}")).into())
}

type Ctx = ws::WebsocketContext<WsSession>;

/// The length of `data` as JSON, counted without building the text.
fn encoded_len(data: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing a Value to a counter cannot fail; were it to, count it as too big.
    match serde_json::to_writer(&mut count, data) {
        Ok(()) => count.0,
        Err(_) => usize::MAX,
    }
}

impl WsSession {
    fn send(&self, ctx: &mut Ctx, frame: ServerMsg<'_>) {
        ctx.text(frame.encode());
    }

    fn refuse(&self, ctx: &mut Ctx, error: ProtocolError) {
        ctx.text(error_frame(&error));
    }

    fn close(&self, ctx: &mut Ctx, code: CloseCode, description: &str) {
        ctx.close(Some(CloseReason {
            code,
            description: Some(description.to_owned()),
        }));
        ctx.stop();
    }

    fn audit(&self, action: &'static str, room: Option<&RoomCode>, details: Value) {
        let mut event = Event::new(action)
            .by(self.auth.user.id, &self.auth.user.username)
            .ip(&self.ip)
            .details(details);
        if let Some(room) = room {
            event = event.room(room.as_str());
        }
        self.state.writer.audit(event);
    }

    fn member(&self) -> Member {
        Member {
            sid: self.sid.clone(),
            user_id: self.auth.user.id,
            username: self.auth.user.username.clone(),
            display_name: self.auth.user.display_name.clone(),
            guest: self.auth.user.guest,
            in_voice: self.in_voice,
            muted: self.muted,
            avatar_url: self.auth.user.avatar_url.clone(),
        }
    }

    fn live(&self) -> LiveSession {
        LiveSession {
            sid: self.sid.clone(),
            user: UserRef {
                id: self.auth.user.id,
                username: self.auth.user.username.clone(),
            },
            ip: self.ip.clone(),
            room: self.room.as_ref().map(|r| r.info.code.clone()),
            in_voice: self.in_voice,
            muted: self.muted,
            connected_at: Utc::now(),
            user_agent: self.user_agent.clone(),
            avatar_url: self.auth.user.avatar_url.clone(),
        }
    }

    fn hello(&self, ctx: &mut Ctx) {
        let ice_servers = ice::servers(&self.state.config, self.auth.user.id);
        self.send(
            ctx,
            ServerMsg::Hello {
                sid: &self.sid,
                user: &self.auth.user,
                ice_servers: &ice_servers,
                ice_transport_policy: self.state.config.ice_transport_policy,
            },
        );
    }

    fn heartbeat(&self, ctx: &mut Ctx) {
        ctx.run_interval(HEARTBEAT_INTERVAL, |session, ctx| {
            if session.last_heard.elapsed() > CLIENT_TIMEOUT {
                tracing::info!(sid = %session.sid, "client stopped answering: dropped");
                ctx.stop();
            } else {
                ctx.ping(b"");
            }
        });
    }

    /// An open socket keeps its login session alive; a login session that
    /// ended (logout, expiry, deletion) closes the socket.
    fn keep_login_alive(&self, ctx: &mut Ctx) {
        ctx.run_interval(TOUCH_INTERVAL, |session, ctx| {
            let (pool, id) = (session.state.pool.clone(), session.auth.session_id);
            let touch = async move { db::run(&pool, move |conn| sessions::touch(conn, id)).await };
            ctx.spawn(touch.into_actor(session).map(|alive, session, ctx| match alive {
                Ok(true) => {}
                Ok(false) => session.close(ctx, CloseCode::Other(CLOSE_KICKED), "signed out"),
                Err(error) => tracing::warn!(%error, "cannot record socket activity"),
            }));
        });
    }

    /// Chat frames count against the chat limit (CHAT_RATE_PER_SEC,
    /// CHAT_BURST); every other frame, malformed ones included, against the
    /// general frame limit.
    fn on_text(&mut self, text: &str, ctx: &mut Ctx) {
        let parsed = ClientMsg::parse(text);
        let allowed = match &parsed {
            Ok(ClientMsg::Chat { .. }) => self.chats.take(),
            _ => self.frames.take(),
        };
        if !allowed {
            return self.flooding(ctx);
        }
        match parsed {
            Ok(msg) => self.dispatch(msg, ctx),
            Err(error) => self.refuse(ctx, error),
        }
    }

    /// Answers `rate_limited`; a session that keeps on is closed (1008).
    fn flooding(&mut self, ctx: &mut Ctx) {
        if self.flood.strike() {
            tracing::warn!(sid = %self.sid, ip = %self.ip, "flooding: closed");
            self.close(ctx, CloseCode::Policy, "flooding");
        } else {
            self.refuse(ctx, ProtocolError::new("rate_limited", "slow down"));
        }
    }

    fn dispatch(&mut self, msg: ClientMsg, ctx: &mut Ctx) {
        match msg {
            ClientMsg::Join { room } => self.join(room, ctx),
            ClientMsg::Leave => self.leave(),
            ClientMsg::Chat { text, nonce } => self.chat(text, nonce, ctx),
            ClientMsg::Voice { action } => self.set_voice(action == VoiceAction::Join, self.muted, ctx),
            ClientMsg::Mute { muted } => self.set_voice(self.in_voice, muted, ctx),
            ClientMsg::Signal { to, data } => self.relay(to, data, ctx),
            ClientMsg::Sfu { .. } => self.refuse(
                ctx,
                ProtocolError::new("sfu_unavailable", "this server has no SFU: use peer-to-peer voice"),
            ),
            ClientMsg::AdminWatch => self.watch(ctx),
            ClientMsg::Ping => self.send(ctx, ServerMsg::Pong),
        }
    }

    fn join(&mut self, code: String, ctx: &mut Ctx) {
        if code.is_empty() || code.chars().count() > ROOM_CODE_MAX_CHARS {
            return self.refuse(
                ctx,
                ProtocolError::new("bad_request", "a room code has 1 to 64 characters"),
            );
        }
        if must_verify_first(&self.state.config, &self.auth.user) {
            return self.refuse(
                ctx,
                ProtocolError::new("email_unverified", "confirm your email address first, then join"),
            );
        }
        let pool = self.state.pool.clone();
        let lookup = async move { db::run(&pool, move |conn| rooms::get(conn, &code)).await };
        // Waiting holds later frames back, so a chat sent right after a join
        // lands in the new room.
        ctx.wait(lookup.into_actor(self).map(|found, session, ctx| match found {
            Ok(room) => session.enter(
                RoomInfo {
                    code: room.code,
                    name: room.name,
                },
                room.id,
                ctx,
            ),
            Err(db::DbError::NotFound) => session.refuse(ctx, ProtocolError::new("not_found", "there is no such room")),
            Err(error) => {
                tracing::error!(%error, "room lookup failed");
                session.refuse(ctx, ProtocolError::new("internal", "the room could not be opened"));
            }
        }));
    }

    fn enter(&mut self, info: RoomInfo, room_id: i64, ctx: &mut Ctx) {
        self.leave_room();
        let enter = self.state.registry.send(EnterRoom {
            sid: self.sid.clone(),
            room: info.clone(),
            room_id,
        });
        ctx.wait(enter.into_actor(self).map(move |entered, session, ctx| match entered {
            Ok(addr) => {
                addr.do_send(room::Join {
                    member: session.member(),
                    addr: ctx.address(),
                });
                session.audit("room_join", Some(&info.code), json!({"sid": session.sid}));
                session.room = Some(InRoom { info, addr });
            }
            Err(error) => {
                tracing::error!(%error, "the registry did not answer");
                session.refuse(ctx, ProtocolError::new("internal", "the room could not be opened"));
            }
        }));
    }

    /// Leaves the current room (and its voice), telling the room.
    fn leave_room(&mut self) {
        let Some(room) = self.room.take() else {
            return;
        };
        if self.in_voice {
            self.audit("voice_leave", Some(&room.info.code), json!({"sid": self.sid}));
        }
        self.in_voice = false;
        self.muted = false;
        room.addr.do_send(room::Leave { sid: self.sid.clone() });
        self.audit("room_leave", Some(&room.info.code), json!({"sid": self.sid}));
    }

    fn leave(&mut self) {
        if self.room.is_some() {
            self.leave_room();
            self.state.registry.do_send(LeftRoom { sid: self.sid.clone() });
        }
    }

    fn chat(&mut self, text: String, nonce: Option<String>, ctx: &mut Ctx) {
        if text.is_empty() {
            return self.refuse(ctx, ProtocolError::new("bad_request", "a message needs text"));
        }
        if text.chars().count() > MAX_CHAT_CHARS {
            return self.refuse(
                ctx,
                ProtocolError::new("too_large", "a message has at most 4000 characters"),
            );
        }
        if nonce.as_ref().is_some_and(|n| n.chars().count() > MAX_NONCE_CHARS) {
            return self.refuse(
                ctx,
                ProtocolError::new("bad_request", "a nonce has at most 128 characters"),
            );
        }
        let Some(room) = &self.room else {
            return self.refuse(ctx, ProtocolError::new("not_in_room", "join a room first"));
        };
        room.addr.do_send(room::Chat {
            sid: self.sid.clone(),
            message: NewMessage {
                room_id: 0,
                room: room.info.code.clone(),
                user_id: self.auth.user.id,
                username: self.auth.user.username.clone(),
                display_name: self.auth.user.display_name.clone(),
                text,
                ip: self.ip.clone(),
                nonce,
                attachment: None,
            },
        });
        Metrics::inc(&self.state.metrics.chat_messages);
    }

    fn set_voice(&mut self, in_voice: bool, muted: bool, ctx: &mut Ctx) {
        let Some(room) = &self.room else {
            return self.refuse(ctx, ProtocolError::new("not_in_room", "join a room first"));
        };
        let code = room.info.code.clone();
        if in_voice != self.in_voice {
            let action = if in_voice { "voice_join" } else { "voice_leave" };
            self.audit(action, Some(&code), json!({"sid": self.sid}));
        }
        self.in_voice = in_voice;
        self.muted = muted;
        room.addr.do_send(room::Voice {
            sid: self.sid.clone(),
            in_voice,
            muted,
        });
        self.state.registry.do_send(VoiceChanged {
            sid: self.sid.clone(),
            in_voice,
            muted,
        });
    }

    fn relay(&mut self, to: SessionId, data: Value, ctx: &mut Ctx) {
        if encoded_len(&data) > MAX_SIGNAL_BYTES {
            return self.refuse(ctx, ProtocolError::new("too_large", "signal data is at most 16 KiB"));
        }
        match &self.room {
            Some(room) => room.addr.do_send(room::Relay {
                from: self.sid.clone(),
                to,
                data,
            }),
            None => self.refuse(ctx, ProtocolError::new("not_in_room", "join a room first")),
        }
    }

    fn watch(&mut self, ctx: &mut Ctx) {
        if self.auth.require(perm::SESSIONS_VIEW).is_err() {
            return self.refuse(
                ctx,
                ProtocolError::new("forbidden", "watching sessions needs sessions.view"),
            );
        }
        self.state.monitor.do_send(Watch {
            sid: self.sid.clone(),
            addr: ctx.address(),
        });
    }
}

impl Actor for WsSession {
    type Context = Ctx;

    fn started(&mut self, ctx: &mut Ctx) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
        self.heartbeat(ctx);
        self.keep_login_alive(ctx);
        self.state.registry.do_send(Connect {
            session: self.live(),
            login_session: self.auth.session_id,
            addr: ctx.address(),
        });
        self.state
            .metrics
            .ws_connections
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Metrics::inc(&self.state.metrics.ws_connections_total);
        self.hello(ctx);
    }

    fn stopping(&mut self, _: &mut Ctx) -> actix::Running {
        self.leave_room();
        self.state.registry.do_send(Disconnect { sid: self.sid.clone() });
        self.state
            .metrics
            .ws_connections
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        actix::Running::Stop
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for WsSession {
    fn handle(&mut self, item: Result<ws::Message, ws::ProtocolError>, ctx: &mut Ctx) {
        self.last_heard = Instant::now();
        match item {
            Ok(ws::Message::Text(text)) => self.on_text(&text, ctx),
            Ok(ws::Message::Ping(payload)) => ctx.pong(&payload),
            Ok(ws::Message::Pong(_)) => {}
            Ok(ws::Message::Binary(_) | ws::Message::Continuation(_)) => {
                self.refuse(
                    ctx,
                    ProtocolError::new("bad_request", "frames are single JSON text frames"),
                );
            }
            Ok(ws::Message::Close(reason)) => {
                ctx.close(reason);
                ctx.stop();
            }
            Ok(ws::Message::Nop) => {}
            Err(ws::ProtocolError::Overflow) => {
                self.refuse(ctx, ProtocolError::new("too_large", "a frame is at most 64 KiB"));
                self.close(ctx, CloseCode::Size, "frame too large");
            }
            Err(error) => {
                tracing::info!(sid = %self.sid, %error, "WebSocket protocol error");
                ctx.stop();
            }
        }
    }
}

impl Handler<Deliver> for WsSession {
    type Result = ();

    fn handle(&mut self, msg: Deliver, ctx: &mut Ctx) {
        ctx.text(msg.0);
    }
}

impl Handler<Kicked> for WsSession {
    type Result = ();

    fn handle(&mut self, msg: Kicked, ctx: &mut Ctx) {
        self.send(ctx, ServerMsg::Kicked { reason: &msg.reason });
        self.close(ctx, CloseCode::Other(CLOSE_KICKED), "kicked");
    }
}

impl Handler<Banned> for WsSession {
    type Result = ();

    fn handle(&mut self, msg: Banned, ctx: &mut Ctx) {
        self.send(ctx, ServerMsg::Banned { reason: &msg.reason });
        self.close(ctx, CloseCode::Other(CLOSE_BANNED), "banned");
    }
}

impl Handler<MoveTo> for WsSession {
    type Result = ();

    fn handle(&mut self, msg: MoveTo, ctx: &mut Ctx) {
        self.send(ctx, ServerMsg::Moved { room: &msg.room });
        self.enter(msg.room, msg.room_id, ctx);
    }
}

impl Handler<ServerStopping> for WsSession {
    type Result = ();

    fn handle(&mut self, msg: ServerStopping, ctx: &mut Ctx) {
        self.refuse(ctx, ProtocolError::new("server_restarting", msg.reason));
        self.close(ctx, CloseCode::Restart, "server restarting");
    }
}

impl Handler<Reauthorized> for WsSession {
    type Result = ();

    /// The registry has already dropped this session from the monitor if it
    /// lost `sessions.view`; this second `Unwatch` comes after any `Watch`
    /// this session sent before it knew, so that one cannot linger either.
    fn handle(&mut self, msg: Reauthorized, ctx: &mut Ctx) {
        let renamed = msg.user.username != self.auth.user.username
            || msg.user.display_name != self.auth.user.display_name
            || msg.user.avatar_url != self.auth.user.avatar_url;
        self.auth.user = msg.user;
        self.send(ctx, ServerMsg::User { user: &self.auth.user });
        if let Some(room) = self.room.as_ref().filter(|_| renamed) {
            room.addr.do_send(room::MemberUpdated { member: self.member() });
        }
        if !self.auth.user.can(perm::SESSIONS_VIEW) {
            self.state.monitor.do_send(Unwatch { sid: self.sid.clone() });
        }
    }
}
