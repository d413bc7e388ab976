//! The WsSession actor owns one WebSocket connection: its socket, its user,
//! its room, its voice state and its limits. Once the upgrade is answered
//! the connection is the session's alone: it reads the socket when it is
//! readable and writes the frames of each turn in one go (see [`Socket`]);
//! nothing of actix-http stays with it. Peers reach it only through
//! recipients of [`Deliver`] and [`Control`].

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use actix::dev::ArbiterHandle;
use actix::{
    Actor, ActorContext, ActorFuture, ActorFutureExt, ActorState, Addr, AsyncContext, Context, Handler, WrapFuture,
};
use bytestring::ByteString;
use chrono::Utc;
use serde_json::{json, Value};
use tokio::net::TcpStream;

use super::frame::{close, OpCode};
use super::ice::{self, IceConfig};
use super::limits::{Flood, TokenBucket};
use super::messages::{Control, Deliver, Moderation};
use super::protocol::{
    error_frame, ClientMsg, LiveSession, Member, ProtocolError, RoomInfo, ServerMsg, UserRef, VoiceAction, VoiceInfo,
    VoicePath, VoiceStatus, MAX_CHAT_CHARS, MAX_NONCE_CHARS, MAX_SIGNAL_BYTES,
};
use super::registry::{Connect, Disconnect, EnterRoom, LeftRoom, SessionRegistry, Unwatch, VoiceChanged, Watch};
use super::room::{self, Room};
use super::sfu::{self, Sfu};
use super::socket::{Ending, Incoming, Read, Socket};
use crate::auth::perm;
use crate::auth::session::Auth;
use crate::auth::signin::must_verify_first;
use crate::auth::tokens::random_token;
use crate::db::users::User;
use crate::db::writer::Writer;
use crate::db::{self, audit::Event, messages::NewMessage, rooms, sessions, Pool};
use crate::ids::{RoomCode, SessionId};
use crate::metrics::Metrics;

/// How often the server pings.
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(10);
/// A client silent this long is dropped (well within the 60 s promise).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);
/// Every this many heartbeats (a minute) an open socket counts as activity
/// on its login session.
const TOUCH_EVERY: u32 = 6;
/// A socket that has taken no bytes for this long while frames wait for it
/// is closed (4008), at the next heartbeat.
pub const OUTBOX_STALL: Duration = Duration::from_secs(10);
/// Frames queued for this actor beyond this are refused by `try_send`, and
/// the room drops the session as too slow. The actor drains its mailbox
/// into the outbox every turn, so only an overloaded thread fills it.
const MAILBOX_CAPACITY: usize = 1024;
/// Any frame (signalling included): sustained per second, and burst.
const FRAME_RATE: f64 = 50.0;
const FRAME_BURST: f64 = 200.0;
const ROOM_CODE_MAX_CHARS: usize = 64;

/// What a session uses of the server: built once in `server::run` and
/// shared by every session.
pub struct SessionEnv {
    pub pool: Pool,
    pub writer: Writer,
    pub registry: Addr<SessionRegistry>,
    pub metrics: Arc<Metrics>,
    pub ice: IceConfig,
    /// CHAT_RATE_PER_SEC and CHAT_BURST.
    pub chat_rate_per_sec: u32,
    pub chat_burst: u32,
    /// WS_OUTBOX_KB, in bytes: what may wait for one socket.
    pub outbox_bytes: usize,
    /// REQUIRE_VERIFIED_EMAIL: unverified accounts may not join rooms.
    pub require_verified_email: bool,
    /// The thread where the registry and the rooms run: sessions run there
    /// too, so a room's fan-out never crosses threads.
    pub live: ArbiterHandle,
    /// The SFU's control plane; none with VOICE_MODE=p2p.
    pub sfu: Option<Addr<Sfu>>,
    /// VOICE_MODE and MESH_LIMIT, as `hello` tells them.
    pub voice: VoiceInfo,
}

struct InRoom {
    info: RoomInfo,
    addr: Addr<Room>,
}

pub struct WsSession {
    sid: SessionId,
    user: User,
    /// The login session (cookie) this socket was opened with.
    login_session: i64,
    ip: String,
    user_agent: String,
    env: Arc<SessionEnv>,
    socket: Socket,
    /// How the connection ends, once the session has decided.
    ending: Option<Ending>,
    room: Option<InRoom>,
    in_voice: bool,
    muted: bool,
    /// A moderator's mute and deafen: they hold for this connection, across
    /// voice and rooms, until lifted.
    server_muted: bool,
    server_deafened: bool,
    /// Whether this session's voice goes through the SFU (it sent `sfu`
    /// join and has not left since).
    on_sfu: bool,
    last_heard: Instant,
    heartbeats: u32,
    frames: TokenBucket,
    chats: TokenBucket,
    flood: Flood,
}

/// Starts a session for an upgraded connection on the live thread; `early`
/// holds any bytes that came in behind the upgrade request. The caller has
/// authenticated the request and checked Origin, bans and limits.
pub fn start(stream: TcpStream, early: &[u8], env: Arc<SessionEnv>, auth: Auth, ip: String, user_agent: String) {
    let stream = match stream.into_std() {
        Ok(stream) => stream,
        Err(error) => return tracing::warn!(%error, "cannot hand an upgraded socket over"),
    };
    let early = early.to_vec();
    let live = env.live.clone();
    let adopt = move || match TcpStream::from_std(stream) {
        Ok(stream) => {
            // What the session keeps is copied here, on the live thread: left
            // where the request was served, a few long-lived bytes per socket
            // would pin the HTTP threads' allocator pages, which otherwise
            // only ever hold short-lived request data.
            let auth = Auth {
                session_id: auth.session_id,
                user: auth.user.clone(),
                csrf_token: String::new(),
            };
            let (ip, user_agent) = (ip.as_str().to_owned(), user_agent.as_str().to_owned());
            WsSession::new(stream, &early, env, auth, ip, user_agent).start();
        }
        Err(error) => tracing::warn!(%error, "cannot adopt an upgraded socket"),
    };
    if !live.spawn_fn(adopt) {
        tracing::warn!("the live thread has stopped: upgraded socket dropped");
    }
}

impl WsSession {
    fn new(stream: TcpStream, early: &[u8], env: Arc<SessionEnv>, auth: Auth, ip: String, user_agent: String) -> Self {
        let chat_rate = f64::from(env.chat_rate_per_sec);
        let chat_burst = f64::from(env.chat_burst);
        let socket = Socket::new(stream, early, env.outbox_bytes);
        WsSession {
            sid: SessionId(random_token(12)),
            user: auth.user,
            login_session: auth.session_id,
            ip,
            user_agent,
            env,
            socket,
            ending: None,
            room: None,
            in_voice: false,
            muted: false,
            server_muted: false,
            server_deafened: false,
            on_sfu: false,
            last_heard: Instant::now(),
            heartbeats: 0,
            frames: TokenBucket::new(FRAME_RATE, FRAME_BURST),
            chats: TokenBucket::new(chat_rate, chat_burst),
            flood: Flood::default(),
        }
    }
}

type Ctx = Context<WsSession>;

/// The socket's side of the actor, for its whole life: polled on every turn,
/// after the mailbox, it writes what the turn's messages queued (in one
/// write), reads what the client sent, and writes the answers.
struct Pump;

impl ActorFuture<WsSession> for Pump {
    type Output = ();

    fn poll(self: Pin<&mut Self>, session: &mut WsSession, ctx: &mut Ctx, task: &mut TaskContext<'_>) -> Poll<()> {
        session.pump(ctx, task);
        Poll::Pending
    }
}

/// Writes frames queued after the pump has run in this turn (the heartbeat's
/// ping).
struct FlushTurn;

impl ActorFuture<WsSession> for FlushTurn {
    type Output = ();

    fn poll(self: Pin<&mut Self>, session: &mut WsSession, ctx: &mut Ctx, task: &mut TaskContext<'_>) -> Poll<()> {
        if session.socket.flush(task).is_err() {
            session.end(ctx, Ending::Drop);
        }
        Poll::Ready(())
    }
}

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
    fn send(&mut self, ctx: &mut Ctx, frame: ServerMsg<'_>) {
        self.queue(ctx, frame.encode());
    }

    fn refuse(&mut self, ctx: &mut Ctx, error: ProtocolError) {
        self.queue(ctx, error_frame(&error));
    }

    /// Queues a frame; the pump writes the turn's frames together. A socket
    /// over its budget is closed as too slow.
    fn queue(&mut self, ctx: &mut Ctx, text: ByteString) {
        let queued = self.socket.send_text(text);
        self.after_queue(ctx, queued);
    }

    fn control(&mut self, ctx: &mut Ctx, opcode: OpCode, payload: Vec<u8>) {
        let queued = self.socket.send_control(opcode, payload);
        self.after_queue(ctx, queued);
    }

    fn after_queue(&mut self, ctx: &mut Ctx, queued: Result<(), super::socket::OverBudget>) {
        if queued.is_err() {
            self.too_slow(ctx);
        }
    }

    fn too_slow(&mut self, ctx: &mut Ctx) {
        tracing::warn!(sid = %self.sid, ip = %self.ip, waiting = self.socket.outstanding(), "socket too slow: closed");
        Metrics::inc(&self.env.metrics.slow_sessions_dropped);
        self.close(ctx, close::TOO_SLOW, "too slow");
    }

    fn close(&mut self, ctx: &mut Ctx, code: u16, reason: &str) {
        self.end(
            ctx,
            Ending::Close {
                code,
                reason: reason.to_owned(),
            },
        );
    }

    /// Stops the actor; the first decision on how the connection ends holds.
    fn end(&mut self, ctx: &mut Ctx, ending: Ending) {
        self.ending.get_or_insert(ending);
        ctx.stop();
    }

    /// Writes what is queued, then handles what the client sent, as far as
    /// the socket has it and the session is not waiting on something (a join
    /// holds later frames back), then writes the answers.
    fn pump(&mut self, ctx: &mut Ctx, task: &mut TaskContext<'_>) {
        if self.socket.flush(task).is_err() {
            return self.end(ctx, Ending::Drop);
        }
        let mut read = 0;
        while ctx.state() == ActorState::Running && !ctx.waiting() {
            match self.socket.read(task, &mut read) {
                Read::Frame(incoming) => self.on_frame(incoming, ctx),
                Read::Pending | Read::Yield => break,
                Read::Gone => self.end(ctx, Ending::Drop),
                Read::Refused { code, reason } => {
                    tracing::info!(sid = %self.sid, code, reason, "WebSocket protocol error");
                    if code == close::TOO_BIG {
                        self.refuse(ctx, ProtocolError::new("too_large", "a frame is at most 64 KiB"));
                    }
                    self.close(ctx, code, reason);
                }
            }
        }
        if read > 0 {
            self.last_heard = Instant::now();
            if ctx.state() == ActorState::Running && self.socket.flush(task).is_err() {
                self.end(ctx, Ending::Drop);
            }
        }
    }

    fn on_frame(&mut self, incoming: Incoming, ctx: &mut Ctx) {
        match incoming {
            Incoming::Text(text) => self.on_text(&text, ctx),
            Incoming::Ping(payload) => self.control(ctx, OpCode::Pong, payload),
            Incoming::Pong => {}
            Incoming::Unsupported => self.refuse(
                ctx,
                ProtocolError::new("bad_request", "frames are single JSON text frames"),
            ),
            Incoming::Close(code) => self.end(
                ctx,
                Ending::Reply {
                    code: code.unwrap_or(close::NORMAL),
                },
            ),
        }
    }

    fn audit(&self, action: &'static str, room: Option<&RoomCode>, details: Value) {
        let mut event = Event::new(action)
            .by(self.user.id, &self.user.username)
            .ip(&self.ip)
            .details(details);
        if let Some(room) = room {
            event = event.room(room.as_str());
        }
        self.env.writer.audit(event);
    }

    fn member(&self) -> Member {
        Member {
            sid: self.sid.clone(),
            user_id: self.user.id,
            username: self.user.username.clone(),
            display_name: self.user.display_name.clone(),
            guest: self.user.guest,
            avatar_url: self.user.avatar_url.clone(),
            voice: self.voice_status(),
        }
    }

    fn voice_status(&self) -> VoiceStatus {
        let path = match (self.in_voice, self.on_sfu) {
            (false, _) => None,
            (true, false) => Some(VoicePath::P2p),
            (true, true) => Some(VoicePath::Sfu),
        };
        VoiceStatus {
            in_voice: self.in_voice,
            muted: self.muted,
            server_muted: self.server_muted,
            server_deafened: self.server_deafened,
            path,
        }
    }

    fn live(&self) -> LiveSession {
        LiveSession {
            sid: self.sid.clone(),
            user: UserRef {
                id: self.user.id,
                username: self.user.username.clone(),
            },
            ip: self.ip.clone(),
            room: self.room.as_ref().map(|r| r.info.code.clone()),
            voice: self.voice_status(),
            connected_at: Utc::now(),
            user_agent: self.user_agent.clone(),
            avatar_url: self.user.avatar_url.clone(),
        }
    }

    fn hello(&mut self, ctx: &mut Ctx) {
        let ice_servers = ice::servers(&self.env.ice, self.user.id);
        let hello = ServerMsg::Hello {
            sid: &self.sid,
            user: &self.user,
            ice_servers: &ice_servers,
            voice: self.env.voice,
            ice_transport_policy: self.env.ice.transport_policy,
        }
        .encode();
        self.queue(ctx, hello);
    }

    /// Pings the client; drops it when it has been silent too long, closes it
    /// when its socket has stopped taking bytes, and once a minute refreshes
    /// its login session.
    fn heartbeat(&self, ctx: &mut Ctx) {
        ctx.run_interval(HEARTBEAT_INTERVAL, |session, ctx| {
            if session.last_heard.elapsed() > CLIENT_TIMEOUT {
                tracing::info!(sid = %session.sid, "client stopped answering: dropped");
                return session.end(ctx, Ending::Drop);
            }
            if session
                .socket
                .stalled_for()
                .is_some_and(|stalled| stalled > OUTBOX_STALL)
            {
                return session.too_slow(ctx);
            }
            session.control(ctx, OpCode::Ping, Vec::new());
            ctx.spawn(FlushTurn);
            session.heartbeats += 1;
            if session.heartbeats % TOUCH_EVERY == 0 {
                session.keep_login_alive(ctx);
            }
        });
    }

    /// An open socket keeps its login session alive; a login session that
    /// ended (logout, expiry, deletion) closes the socket.
    fn keep_login_alive(&self, ctx: &mut Ctx) {
        let (pool, id) = (self.env.pool.clone(), self.login_session);
        let touch = async move { db::run(&pool, move |conn| sessions::touch(conn, id)).await };
        ctx.spawn(touch.into_actor(self).map(|alive, session, ctx| match alive {
            Ok(true) => {}
            Ok(false) => session.close(ctx, close::KICKED, "signed out"),
            Err(error) => tracing::warn!(%error, "cannot record socket activity"),
        }));
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
            self.close(ctx, close::POLICY, "flooding");
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
            ClientMsg::Mute { muted: false } if self.server_muted || self.server_deafened => self.refuse(
                ctx,
                ProtocolError::new(
                    "forbidden",
                    "a moderator has muted you: only a moderator can unmute you",
                ),
            ),
            ClientMsg::Mute { muted } => self.set_voice(self.in_voice, muted, ctx),
            ClientMsg::Signal { to, data } => self.relay(to, data, ctx),
            ClientMsg::Sfu { data } => self.pass_to_sfu(data, ctx),
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
        if must_verify_first(self.env.require_verified_email, &self.user) {
            return self.refuse(
                ctx,
                ProtocolError::new("email_unverified", "confirm your email address first, then join"),
            );
        }
        let pool = self.env.pool.clone();
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
        let enter = self.env.registry.send(EnterRoom {
            sid: self.sid.clone(),
            room: info.clone(),
            room_id,
        });
        ctx.wait(enter.into_actor(self).map(move |entered, session, ctx| match entered {
            Ok(addr) => {
                addr.do_send(room::Join {
                    member: session.member(),
                    deliver: ctx.address().recipient(),
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
        self.leave_sfu();
        room.addr.do_send(room::Leave { sid: self.sid.clone() });
        self.audit("room_leave", Some(&room.info.code), json!({"sid": self.sid}));
    }

    fn leave(&mut self) {
        if self.room.is_some() {
            self.leave_room();
            self.env.registry.do_send(LeftRoom { sid: self.sid.clone() });
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
                user_id: self.user.id,
                username: self.user.username.clone(),
                display_name: self.user.display_name.clone(),
                text,
                ip: self.ip.clone(),
                nonce,
                attachment: None,
            },
        });
        Metrics::inc(&self.env.metrics.chat_messages);
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
        if !in_voice {
            self.leave_sfu();
        }
        self.announce_voice();
    }

    /// Tells the room (`voice_state`) and the registry this session's voice.
    fn announce_voice(&self) {
        let voice = self.voice_status();
        if let Some(room) = &self.room {
            room.addr.do_send(room::Voice {
                sid: self.sid.clone(),
                voice,
            });
        }
        self.env.registry.do_send(VoiceChanged {
            sid: self.sid.clone(),
            voice,
        });
    }

    /// A moderator's mute or deafen (or its lifting): the member is told why,
    /// the SFU stops (or resumes) forwarding, and the room sees the state.
    fn moderate(&mut self, action: Moderation, reason: String, ctx: &mut Ctx) {
        match action {
            Moderation::Mute(on) => self.server_muted = on,
            Moderation::Deafen(on) => self.server_deafened = on,
        }
        self.send(
            ctx,
            ServerMsg::VoiceModerated {
                server_muted: self.server_muted,
                server_deafened: self.server_deafened,
                reason: &reason,
            },
        );
        if let Some(sfu) = &self.env.sfu {
            sfu.do_send(sfu::Moderate {
                sid: self.sid.clone(),
                muted: self.server_muted,
                deafened: self.server_deafened,
            });
        }
        self.announce_voice();
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

    /// Passes an `sfu` frame to the SFU, with the room and voice state it needs.
    fn pass_to_sfu(&mut self, data: Value, ctx: &mut Ctx) {
        let Some(sfu) = self.env.sfu.clone() else {
            return self.refuse(
                ctx,
                ProtocolError::new("sfu_unavailable", "this server has no SFU: use peer-to-peer voice"),
            );
        };
        let Some(room) = &self.room else {
            return self.refuse(ctx, ProtocolError::new("not_in_room", "join a room first"));
        };
        let action = data.get("action").and_then(Value::as_str).map(str::to_owned);
        sfu.do_send(sfu::Signal {
            sid: self.sid.clone(),
            room: room.info.code.clone(),
            in_voice: self.in_voice,
            server_muted: self.server_muted,
            server_deafened: self.server_deafened,
            data,
            reply: ctx.address().recipient(),
        });
        // The member list shows who is on which path.
        let on_sfu = match action.as_deref() {
            Some("join") => self.in_voice,
            Some("leave") => false,
            _ => self.on_sfu,
        };
        if on_sfu != self.on_sfu {
            self.on_sfu = on_sfu;
            self.announce_voice();
        }
    }

    /// Ends this session's media on the SFU, if it has any there.
    fn leave_sfu(&mut self) {
        self.on_sfu = false;
        if let Some(sfu) = &self.env.sfu {
            sfu.do_send(sfu::Leave { sid: self.sid.clone() });
        }
    }

    fn watch(&mut self, ctx: &mut Ctx) {
        if !self.user.can(perm::SESSIONS_VIEW) {
            return self.refuse(
                ctx,
                ProtocolError::new("forbidden", "watching sessions needs sessions.view"),
            );
        }
        self.env.registry.do_send(Watch {
            sid: self.sid.clone(),
            deliver: ctx.address().recipient(),
        });
    }
}

impl WsSession {
    /// Acts on the fresh record from now on. The registry has already
    /// dropped this session from the monitor if it lost `sessions.view`;
    /// this second `Unwatch` goes the way of this session's `Watch`, after
    /// any it sent before it knew, so that one cannot linger either.
    fn reauthorized(&mut self, user: User, ctx: &mut Ctx) {
        let renamed = user.username != self.user.username
            || user.display_name != self.user.display_name
            || user.avatar_url != self.user.avatar_url;
        self.user = user;
        let frame = ServerMsg::User { user: &self.user }.encode();
        self.queue(ctx, frame);
        if let Some(room) = self.room.as_ref().filter(|_| renamed) {
            room.addr.do_send(room::MemberUpdated { member: self.member() });
        }
        if !self.user.can(perm::SESSIONS_VIEW) {
            self.env.registry.do_send(Unwatch { sid: self.sid.clone() });
        }
    }
}

impl Actor for WsSession {
    type Context = Ctx;

    fn started(&mut self, ctx: &mut Ctx) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
        ctx.spawn(Pump);
        self.heartbeat(ctx);
        self.env.registry.do_send(Connect {
            session: self.live(),
            login_session: self.login_session,
            control: ctx.address().recipient(),
        });
        self.env
            .metrics
            .ws_connections
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Metrics::inc(&self.env.metrics.ws_connections_total);
        self.hello(ctx);
    }

    /// Leaves the room and the registry at once; the socket finishes
    /// closing on its own.
    fn stopping(&mut self, _: &mut Ctx) -> actix::Running {
        self.leave_room();
        self.env.registry.do_send(Disconnect { sid: self.sid.clone() });
        self.env
            .metrics
            .ws_connections
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        self.socket.close(self.ending.take().unwrap_or(Ending::Drop));
        actix::Running::Stop
    }
}

impl Handler<Deliver> for WsSession {
    type Result = ();

    fn handle(&mut self, msg: Deliver, ctx: &mut Ctx) {
        self.queue(ctx, msg.0);
    }
}

impl Handler<Control> for WsSession {
    type Result = ();

    fn handle(&mut self, msg: Control, ctx: &mut Ctx) {
        match msg {
            Control::Kicked { reason } => {
                self.send(ctx, ServerMsg::Kicked { reason: &reason });
                self.close(ctx, close::KICKED, "kicked");
            }
            Control::Banned { reason } => {
                self.send(ctx, ServerMsg::Banned { reason: &reason });
                self.close(ctx, close::BANNED, "banned");
            }
            Control::MoveTo { room, room_id } => {
                self.send(ctx, ServerMsg::Moved { room: &room });
                self.enter(room, room_id, ctx);
            }
            Control::Moderate { action, reason } => self.moderate(action, reason, ctx),
            Control::Reauthorized { user } => self.reauthorized(user, ctx),
            Control::ServerStopping { reason } => {
                self.refuse(ctx, ProtocolError::new("server_restarting", reason));
                self.close(ctx, close::RESTARTING, "server restarting");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::testing::memory_pool;
    use crate::db::users::{self, User};
    use crate::ids::UserId;
    use crate::realtime::registry::{Post, Snapshot};
    use crate::realtime::testing::{client_text, frames, live, member, until, Probe};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn auth(id: UserId) -> Auth {
        Auth {
            session_id: 1,
            user: User {
                id,
                username: "reader".into(),
                display_name: "Reader".into(),
                email: None,
                is_admin: false,
                roles: Vec::new(),
                permissions: Vec::new(),
                guest: true,
                totp_enabled: false,
                created_at: Utc::now(),
                needs_username: false,
                email_verified: false,
                avatar_url: None,
            },
            csrf_token: String::new(),
        }
    }

    async fn live_sessions(registry: &Addr<SessionRegistry>) -> Vec<LiveSession> {
        registry.send(Snapshot).await.unwrap()
    }

    #[actix::test]
    async fn a_socket_that_takes_nothing_is_closed_4008_and_its_session_leaves_room_and_registry() {
        let pool = memory_pool();
        let user = users::create_guest(&pool.get().unwrap(), "guest-reader", "Reader").unwrap();
        let writer = Writer::start(pool.clone(), Arc::default()).unwrap();
        let monitor = crate::realtime::monitor::AdminMonitor::default().start();
        let registry = SessionRegistry::new(monitor, writer.clone(), pool.clone(), Default::default()).start();
        let env = Arc::new(SessionEnv {
            pool,
            writer,
            registry: registry.clone(),
            metrics: Default::default(),
            ice: IceConfig {
                stun_urls: Vec::new(),
                turn: None,
                transport_policy: crate::config::IceTransportPolicy::All,
            },
            chat_rate_per_sec: 5,
            chat_burst: 5,
            outbox_bytes: 16 * 1024,
            require_verified_email: false,
            live: actix::Arbiter::current(),
            sfu: None,
            voice: VoiceInfo {
                mode: "p2p",
                mesh_limit: 6,
            },
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = tokio::net::TcpSocket::new_v4().unwrap();
        client.set_recv_buffer_size(4096).unwrap();
        let mut client = client.connect(listener.local_addr().unwrap()).await.unwrap();
        let (server_side, _) = listener.accept().await.unwrap();
        start(server_side, &[], env, auth(user), "127.0.0.1".into(), String::new());
        client
            .write_all(&client_text(r#"{"type":"join","room":"lobby"}"#))
            .await
            .unwrap();

        let (probe, probe_log) = Probe::start();
        registry.do_send(Connect {
            session: live("probe", 9, "127.0.0.2"),
            login_session: 9,
            control: probe.clone().recipient(),
        });
        let lobby = RoomInfo {
            code: RoomCode::lobby(),
            name: "Lobby".into(),
        };
        let enter = EnterRoom {
            sid: SessionId("probe".into()),
            room: lobby.clone(),
            room_id: 1,
        };
        let room = registry.send(enter).await.unwrap();
        room.do_send(room::Join {
            member: member("probe", 9),
            deliver: probe.clone().recipient(),
        });
        let reader_sid = loop {
            let sessions = live_sessions(&registry).await;
            let reader = sessions.iter().find(|s| s.sid.0 != "probe" && s.room.is_some());
            if let Some(reader) = reader {
                break reader.sid.clone();
            }
            actix_web::rt::time::sleep(Duration::from_millis(5)).await;
        };

        // Far more than the kernel's buffers and the 16 KiB budget hold.
        for i in 0..100 {
            registry.do_send(Post {
                room: lobby.clone(),
                room_id: 1,
                message: NewMessage {
                    room_id: 0,
                    room: RoomCode::lobby(),
                    user_id: user,
                    username: "guest-reader".into(),
                    display_name: "Reader".into(),
                    text: format!("{i} {}", "w".repeat(4000)),
                    ip: "127.0.0.1".into(),
                    nonce: None,
                    attachment: None,
                },
            });
        }
        until("the reader is announced gone", || {
            frames(&probe_log, "member_left")
                .iter()
                .any(|f| f["sid"] == reader_sid.0.as_str())
        })
        .await;
        assert_eq!(frames(&probe_log, "message").len(), 100, "the others are served");
        loop {
            let sessions = live_sessions(&registry).await;
            if sessions.iter().all(|s| s.sid != reader_sid) {
                break;
            }
            actix_web::rt::time::sleep(Duration::from_millis(5)).await;
        }

        let mut bytes = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), client.read_to_end(&mut bytes))
            .await
            .expect("the server ends the connection")
            .unwrap();
        let close = [0x88, 10, 0x0F, 0xA8];
        assert!(
            bytes.ends_with(&[&close[..], b"too slow"].concat()),
            "the stream ends with close 4008: {:?}",
            &bytes[bytes.len().saturating_sub(16)..]
        );
    }
}
