//! The Room actor owns one live room: its members with their voice state,
//! and the last 200 messages, each encoded once. Chat is stored through the
//! writer thread and fanned out only after its commit. Started by the
//! registry on first entry; stops when the registry agrees it is idle.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, ActorFutureExt, Addr, AsyncContext, Context, Handler, Message, SpawnHandle, WrapFuture};
use bytestring::ByteString;
use serde_json::value::RawValue;
use serde_json::Value;

use super::protocol::{encode, error_frame, Member, ProtocolError, RoomInfo, ServerMsg};
use super::registry::{RoomIdle, SessionRegistry};
use super::session::{Deliver, Kicked, WsSession};
use crate::db::messages::{self, NewMessage};
use crate::db::writer::Writer;
use crate::db::{self, DbError, Pool};
use crate::ids::SessionId;
use crate::metrics::Metrics;

/// Messages a joiner receives, and that the room keeps encoded.
pub const HISTORY_ON_JOIN: usize = 200;
/// How long an empty room waits before asking to stop.
const IDLE_GRACE: Duration = Duration::from_secs(30);

/// A session enters; it is sent `joined`, the others `member_joined`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Join {
    pub member: Member,
    pub addr: Addr<WsSession>,
}

/// A session leaves; the others are sent `member_left`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Leave {
    pub sid: SessionId,
}

/// A member's name or picture changed; everyone is sent `member_updated`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct MemberUpdated {
    pub member: Member,
}

/// A chat message to store, then deliver to everyone in the room.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Chat {
    pub sid: SessionId,
    pub message: NewMessage,
}

/// A message posted from outside the room (a file from the upload API):
/// stored, then delivered to everyone in the room.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Post {
    pub message: NewMessage,
}

/// The writer committed (or failed to commit) a message; `sid` is its
/// sender when the sender is in the room.
#[derive(Message)]
#[rtype(result = "()")]
struct Stored {
    sid: Option<SessionId>,
    outcome: Result<messages::Message, DbError>,
}

/// A member's voice state changed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Voice {
    pub sid: SessionId,
    pub in_voice: bool,
    pub muted: bool,
}

/// Signalling data for one other member, passed through unchanged.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Relay {
    pub from: SessionId,
    pub to: SessionId,
    pub data: Value,
}

/// The registry agreed the room is idle: stop.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Stop;

struct Seat {
    member: Member,
    addr: Addr<WsSession>,
    /// Join order, so member lists read in the order people arrived.
    seq: u64,
}

pub struct Room {
    info: RoomInfo,
    id: i64,
    members: HashMap<SessionId, Seat>,
    next_seq: u64,
    history: VecDeque<ByteString>,
    registry: Addr<SessionRegistry>,
    writer: Writer,
    pool: Pool,
    metrics: Arc<Metrics>,
    idle_timer: Option<SpawnHandle>,
}

impl Room {
    pub fn new(
        info: RoomInfo,
        id: i64,
        registry: Addr<SessionRegistry>,
        writer: Writer,
        pool: Pool,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            info,
            id,
            members: HashMap::new(),
            next_seq: 0,
            history: VecDeque::with_capacity(HISTORY_ON_JOIN),
            registry,
            writer,
            pool,
            metrics,
            idle_timer: None,
        }
    }

    /// Sends `text` to every member but `except`. A member whose mailbox is
    /// full is dropped from the room and disconnected; one whose mailbox is
    /// closed is forgotten.
    fn broadcast(&mut self, text: &ByteString, except: Option<&SessionId>) {
        let mut gone = Vec::new();
        let mut delivered = 0u64;
        for (sid, seat) in &self.members {
            if except == Some(sid) {
                continue;
            }
            match seat.addr.try_send(Deliver(text.clone())) {
                Ok(()) => delivered += 1,
                Err(actix::dev::SendError::Full(_)) => {
                    tracing::warn!(%sid, room = %self.info.code, "session cannot keep up: dropped");
                    seat.addr.do_send(Kicked {
                        reason: "your connection could not keep up".into(),
                    });
                    gone.push(sid.clone());
                }
                Err(actix::dev::SendError::Closed(_)) => gone.push(sid.clone()),
            }
        }
        self.metrics
            .deliveries
            .fetch_add(delivered, std::sync::atomic::Ordering::Relaxed);
        for sid in gone {
            self.remove(&sid);
        }
    }

    fn send_to(&self, sid: &SessionId, text: ByteString) {
        if let Some(seat) = self.members.get(sid) {
            let _ = seat.addr.try_send(Deliver(text));
        }
    }

    fn refuse_relay(&self, from: &SessionId, code: &'static str, message: &str) {
        self.send_to(from, error_frame(&ProtocolError::new(code, message)));
    }

    fn remove(&mut self, sid: &SessionId) {
        if self.members.remove(sid).is_some() {
            let frame = ServerMsg::MemberLeft { sid }.encode();
            self.broadcast(&frame, None);
        }
    }

    fn joined_frame(&self) -> ByteString {
        let mut seats: Vec<&Seat> = self.members.values().collect();
        seats.sort_by_key(|s| s.seq);
        let history: Vec<&RawValue> = self
            .history
            .iter()
            .filter_map(|text| serde_json::from_str(text).ok())
            .collect();
        ServerMsg::Joined {
            room: &self.info,
            members: seats.into_iter().map(|s| &s.member).collect(),
            history,
        }
        .encode()
    }

    /// Hands a message to the writer; `Stored` comes back after its commit.
    fn store(
        &self,
        mut message: NewMessage,
        sid: Option<SessionId>,
        ctx: &mut Context<Self>,
    ) -> Result<(), crate::db::writer::Busy> {
        let room = ctx.address();
        message.room_id = self.id;
        self.writer
            .store_message(message, move |outcome| room.do_send(Stored { sid, outcome }))
    }

    fn remember(&mut self, text: ByteString) {
        if self.history.len() == HISTORY_ON_JOIN {
            self.history.pop_front();
        }
        self.history.push_back(text);
    }

    fn schedule_idle_check(&mut self, ctx: &mut Context<Self>) {
        if self.members.is_empty() && self.idle_timer.is_none() {
            self.idle_timer = Some(ctx.run_later(IDLE_GRACE, |room, _| {
                room.idle_timer = None;
                if room.members.is_empty() {
                    room.registry.do_send(RoomIdle {
                        code: room.info.code.clone(),
                    });
                }
            }));
        }
    }
}

impl Actor for Room {
    type Context = Context<Self>;

    /// Loads the recent history before handling any join.
    fn started(&mut self, ctx: &mut Context<Self>) {
        let (pool, id) = (self.pool.clone(), self.id);
        let load = async move {
            db::run(&pool, move |conn| {
                messages::page(conn, id, None, HISTORY_ON_JOIN as u32)
            })
            .await
        };
        ctx.wait(load.into_actor(self).map(|loaded, room, ctx| {
            match loaded {
                Ok(recent) => room.history.extend(recent.iter().map(encode)),
                Err(error) => tracing::error!(%error, room = %room.info.code, "cannot load the room's history"),
            }
            room.schedule_idle_check(ctx);
        }));
    }
}

impl Handler<Join> for Room {
    type Result = ();

    fn handle(&mut self, msg: Join, ctx: &mut Context<Self>) {
        if let Some(timer) = self.idle_timer.take() {
            ctx.cancel_future(timer);
        }
        let sid = msg.member.sid.clone();
        let announce = ServerMsg::MemberJoined { member: &msg.member }.encode();
        self.broadcast(&announce, Some(&sid));
        self.next_seq += 1;
        self.members.insert(
            sid.clone(),
            Seat {
                member: msg.member,
                addr: msg.addr,
                seq: self.next_seq,
            },
        );
        self.send_to(&sid, self.joined_frame());
    }
}

impl Handler<Leave> for Room {
    type Result = ();

    fn handle(&mut self, msg: Leave, ctx: &mut Context<Self>) {
        self.remove(&msg.sid);
        self.schedule_idle_check(ctx);
    }
}

impl Handler<MemberUpdated> for Room {
    type Result = ();

    /// Takes the member's new name and picture; the voice state stays the
    /// room's own.
    fn handle(&mut self, msg: MemberUpdated, _: &mut Context<Self>) {
        let Some(seat) = self.members.get_mut(&msg.member.sid) else {
            return;
        };
        seat.member.username = msg.member.username;
        seat.member.display_name = msg.member.display_name;
        seat.member.avatar_url = msg.member.avatar_url;
        let frame = ServerMsg::MemberUpdated { member: &seat.member }.encode();
        self.broadcast(&frame, None);
    }
}

impl Handler<Chat> for Room {
    type Result = ();

    fn handle(&mut self, msg: Chat, ctx: &mut Context<Self>) {
        if !self.members.contains_key(&msg.sid) {
            return;
        }
        if self.store(msg.message, Some(msg.sid.clone()), ctx).is_err() {
            let busy = ProtocolError::new("rate_limited", "the server is busy: try again in a moment");
            self.send_to(&msg.sid, error_frame(&busy));
        }
    }
}

impl Handler<Post> for Room {
    type Result = ();

    fn handle(&mut self, msg: Post, ctx: &mut Context<Self>) {
        if self.store(msg.message, None, ctx).is_err() {
            tracing::error!(room = %self.info.code, "writer saturated: a posted message was dropped");
        }
    }
}

impl Handler<Stored> for Room {
    type Result = ();

    fn handle(&mut self, msg: Stored, _: &mut Context<Self>) {
        match msg.outcome {
            Ok(message) => {
                let text = encode(&message);
                self.remember(text.clone());
                self.broadcast(&text, None);
            }
            Err(error) => {
                tracing::error!(%error, room = %self.info.code, "a chat message was not stored");
                if let Some(sid) = &msg.sid {
                    let failed = ProtocolError::new("internal", "your message could not be stored");
                    self.send_to(sid, error_frame(&failed));
                }
            }
        }
    }
}

impl Handler<Voice> for Room {
    type Result = ();

    fn handle(&mut self, msg: Voice, _: &mut Context<Self>) {
        let Some(seat) = self.members.get_mut(&msg.sid) else {
            return;
        };
        seat.member.in_voice = msg.in_voice;
        seat.member.muted = msg.muted;
        let frame = ServerMsg::VoiceState {
            sid: &msg.sid,
            in_voice: msg.in_voice,
            muted: msg.muted,
        }
        .encode();
        self.broadcast(&frame, None);
    }
}

impl Handler<Relay> for Room {
    type Result = ();

    /// Passes signalling only between two members of this room who are both
    /// in voice: a member who never joined voice cannot open a connection
    /// to someone's microphone, nor be called without having joined.
    fn handle(&mut self, msg: Relay, _: &mut Context<Self>) {
        let (Some(from), Some(to)) = (self.members.get(&msg.from), self.members.get(&msg.to)) else {
            return self.refuse_relay(&msg.from, "not_in_room", "that session is not in your room");
        };
        if msg.from == msg.to {
            return self.refuse_relay(&msg.from, "not_in_room", "that session is not in your room");
        }
        if !(from.member.in_voice && to.member.in_voice) {
            return self.refuse_relay(
                &msg.from,
                "not_in_voice",
                "signals pass only between two members in voice",
            );
        }
        let frame = ServerMsg::Signal {
            from: &msg.from,
            data: &msg.data,
        }
        .encode();
        let _ = to.addr.try_send(Deliver(frame));
    }
}

impl Handler<Stop> for Room {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        actix::ActorContext::stop(ctx);
    }
}
