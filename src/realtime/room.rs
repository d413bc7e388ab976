//! The Room actor owns one live room: its members with their voice state,
//! and the last 200 messages, each encoded once. Frames are encoded once and
//! the same bytes go to every member; a joiner's `joined` frame is put
//! together from encodings kept for each member and for the history, so a
//! crowd joining at once costs the room little. Chat is stored through the
//! writer thread and fanned out only after its commit. Started by the
//! registry on first entry; it tells whoever started it when it has been
//! empty for a while ([`RoomIdle`]) and when a member cannot keep up
//! ([`SlowMember`]), and stops when told to. After retention deleted
//! messages it reloads its history from the database ([`ReloadHistory`]).
//! It knows members only by the recipient of their frames.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, ActorFutureExt, AsyncContext, Context, Handler, Message, Recipient, SpawnHandle, WrapFuture};
use bytestring::ByteString;
use serde_json::Value;

use super::messages::Deliver;
use super::protocol::{encode, error_frame, Member, ProtocolError, RoomInfo, ServerMsg, VoiceStatus};
use crate::db::messages::{self, NewMessage};
use crate::db::writer::Writer;
use crate::db::{self, DbError, Pool};
use crate::ids::{RoomCode, SessionId};
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
    pub deliver: Recipient<Deliver>,
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
    pub voice: VoiceStatus,
}

/// Signalling data for one other member, passed through unchanged.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Relay {
    pub from: SessionId,
    pub to: SessionId,
    pub data: Value,
}

/// From the room to whoever started it: it has been empty for its grace
/// period and may be stopped.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RoomIdle {
    pub code: RoomCode,
}

/// From the room to whoever started it: this member's mailbox is full; it
/// has been dropped from the room and should be disconnected.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SlowMember {
    pub sid: SessionId,
}

/// Messages were deleted (retention): the kept history is reloaded from the
/// database before anything else is handled.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ReloadHistory;

/// The registry agreed the room is idle: stop.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Stop;

struct Seat {
    member: Member,
    /// The member's JSON, for `joined` frames.
    encoded: ByteString,
    deliver: Recipient<Deliver>,
}

impl Seat {
    fn new(member: Member, deliver: Recipient<Deliver>) -> Self {
        Self {
            encoded: encode(&member),
            member,
            deliver,
        }
    }
}

pub struct Room {
    info: RoomInfo,
    id: i64,
    /// Members by join order: member lists and fan-out follow it.
    seats: BTreeMap<u64, Seat>,
    seat_of: HashMap<SessionId, u64>,
    next_seq: u64,
    /// The last messages, oldest first: each one's id and encoding.
    history: VecDeque<(i64, ByteString)>,
    /// `history` as one JSON array, built when a joiner first needs it.
    history_json: Option<String>,
    idle: Recipient<RoomIdle>,
    slow: Recipient<SlowMember>,
    writer: Writer,
    pool: Pool,
    metrics: Arc<Metrics>,
    idle_timer: Option<SpawnHandle>,
}

impl Room {
    pub fn new(
        info: RoomInfo,
        id: i64,
        idle: Recipient<RoomIdle>,
        slow: Recipient<SlowMember>,
        writer: Writer,
        pool: Pool,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            info,
            id,
            seats: BTreeMap::new(),
            seat_of: HashMap::new(),
            next_seq: 0,
            history: VecDeque::with_capacity(HISTORY_ON_JOIN),
            history_json: None,
            idle,
            slow,
            writer,
            pool,
            metrics,
            idle_timer: None,
        }
    }

    /// Sends `text` to every member but `except`, in join order. A member
    /// whose mailbox is full is dropped from the room and reported to the
    /// registry, which disconnects it; one whose mailbox is closed is
    /// forgotten.
    fn broadcast(&mut self, text: &ByteString, except: Option<&SessionId>) {
        let started = std::time::Instant::now();
        let mut gone = Vec::new();
        let mut delivered = 0u64;
        for seat in self.seats.values() {
            let sid = &seat.member.sid;
            if except == Some(sid) {
                continue;
            }
            match seat.deliver.try_send(Deliver(text.clone())) {
                Ok(()) => delivered += 1,
                Err(actix::dev::SendError::Full(_)) => {
                    tracing::warn!(%sid, room = %self.info.code, "session cannot keep up: dropped");
                    self.slow.do_send(SlowMember { sid: sid.clone() });
                    Metrics::inc(&self.metrics.slow_sessions_dropped);
                    gone.push(sid.clone());
                }
                Err(actix::dev::SendError::Closed(_)) => gone.push(sid.clone()),
            }
        }
        self.metrics
            .deliveries
            .fetch_add(delivered, std::sync::atomic::Ordering::Relaxed);
        self.metrics.fanout.observe(started.elapsed());
        for sid in gone {
            self.remove(&sid);
        }
    }

    fn seat(&self, sid: &SessionId) -> Option<&Seat> {
        self.seat_of.get(sid).and_then(|seq| self.seats.get(seq))
    }

    fn seat_mut(&mut self, sid: &SessionId) -> Option<&mut Seat> {
        self.seat_of.get(sid).and_then(|seq| self.seats.get_mut(seq))
    }

    fn send_to(&self, sid: &SessionId, text: ByteString) {
        if let Some(seat) = self.seat(sid) {
            let _ = seat.deliver.try_send(Deliver(text));
        }
    }

    fn refuse_relay(&self, from: &SessionId, code: &'static str, message: &str) {
        self.send_to(from, error_frame(&ProtocolError::new(code, message)));
    }

    fn remove(&mut self, sid: &SessionId) {
        let Some(seq) = self.seat_of.remove(sid) else {
            return;
        };
        self.seats.remove(&seq);
        let frame = ServerMsg::MemberLeft { sid }.encode();
        self.broadcast(&frame, None);
    }

    /// `{"type":"joined","room","members","history"}`, put together from
    /// the encodings the room keeps rather than serialised afresh.
    fn joined_frame(&mut self) -> ByteString {
        let history = &self.history;
        let history = self
            .history_json
            .get_or_insert_with(|| json_array(history.iter().map(|(_, text)| text)));
        let room = encode(&self.info);
        let members: usize = self.seats.values().map(|s| s.encoded.len() + 1).sum();
        let mut frame = String::with_capacity(48 + room.len() + members + history.len());
        frame.push_str(r#"{"type":"joined","room":"#);
        frame.push_str(&room);
        frame.push_str(r#","members":"#);
        frame.push_str(&json_array(self.seats.values().map(|s| &s.encoded)));
        frame.push_str(r#","history":"#);
        frame.push_str(history);
        frame.push('}');
        ByteString::from(frame)
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

    /// Keeps a stored message. One the history already holds is not kept
    /// twice: a reload may have read it before its `Stored` came.
    fn remember(&mut self, id: i64, text: ByteString) {
        let mut newer_or_same = self.history.iter().rev().take_while(|(kept, _)| *kept >= id);
        if newer_or_same.any(|(kept, _)| *kept == id) {
            return;
        }
        if self.history.len() == HISTORY_ON_JOIN {
            self.history.pop_front();
        }
        self.history.push_back((id, text));
        self.history_json = None;
    }

    /// Replaces the kept history with the room's last messages in the
    /// database. Waits, so no join is answered from the old history.
    fn load_history(&mut self, ctx: &mut Context<Self>) {
        let (pool, id) = (self.pool.clone(), self.id);
        let load = async move {
            db::run(&pool, move |conn| {
                messages::page(conn, id, None, HISTORY_ON_JOIN as u32)
            })
            .await
        };
        ctx.wait(load.into_actor(self).map(|loaded, room, _| match loaded {
            Ok(recent) => {
                room.history = recent.iter().map(|m| (m.id, encode(m))).collect();
                room.history_json = None;
            }
            Err(error) => tracing::error!(%error, room = %room.info.code, "cannot load the room's history"),
        }));
    }

    fn schedule_idle_check(&mut self, ctx: &mut Context<Self>) {
        if self.seats.is_empty() && self.idle_timer.is_none() {
            self.idle_timer = Some(ctx.run_later(IDLE_GRACE, |room, _| {
                room.idle_timer = None;
                if room.seats.is_empty() {
                    room.idle.do_send(RoomIdle {
                        code: room.info.code.clone(),
                    });
                }
            }));
        }
    }
}

/// `[a,b,...]` from already-encoded JSON values.
fn json_array<'a>(items: impl IntoIterator<Item = &'a ByteString>) -> String {
    let mut array = String::from("[");
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            array.push(',');
        }
        array.push_str(item);
    }
    array.push(']');
    array
}

impl Actor for Room {
    type Context = Context<Self>;

    /// Loads the recent history before handling any join.
    fn started(&mut self, ctx: &mut Context<Self>) {
        self.load_history(ctx);
        self.schedule_idle_check(ctx);
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
        self.seat_of.insert(sid.clone(), self.next_seq);
        self.seats.insert(self.next_seq, Seat::new(msg.member, msg.deliver));
        let joined = self.joined_frame();
        self.send_to(&sid, joined);
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
        let Some(seat) = self.seat_mut(&msg.member.sid) else {
            return;
        };
        seat.member.username = msg.member.username;
        seat.member.display_name = msg.member.display_name;
        seat.member.avatar_url = msg.member.avatar_url;
        seat.encoded = encode(&seat.member);
        let frame = ServerMsg::MemberUpdated { member: &seat.member }.encode();
        self.broadcast(&frame, None);
    }
}

impl Handler<Chat> for Room {
    type Result = ();

    fn handle(&mut self, msg: Chat, ctx: &mut Context<Self>) {
        if !self.seat_of.contains_key(&msg.sid) {
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
                self.remember(message.id, text.clone());
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
        let Some(seat) = self.seat_mut(&msg.sid) else {
            return;
        };
        seat.member.voice = msg.voice;
        seat.encoded = encode(&seat.member);
        let frame = ServerMsg::VoiceState {
            sid: &msg.sid,
            voice: msg.voice,
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
        let (Some(from), Some(to)) = (self.seat(&msg.from), self.seat(&msg.to)) else {
            return self.refuse_relay(&msg.from, "not_in_room", "that session is not in your room");
        };
        if msg.from == msg.to {
            return self.refuse_relay(&msg.from, "not_in_room", "that session is not in your room");
        }
        if !(from.member.voice.in_voice && to.member.voice.in_voice) {
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
        let _ = to.deliver.try_send(Deliver(frame));
    }
}

impl Handler<ReloadHistory> for Room {
    type Result = ();

    fn handle(&mut self, _: ReloadHistory, ctx: &mut Context<Self>) {
        self.load_history(ctx);
    }
}

impl Handler<Stop> for Room {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        actix::ActorContext::stop(ctx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::testing::memory_pool;
    use crate::db::{rooms, users};
    use crate::ids::UserId;
    use crate::realtime::testing::{frames, member, until, Got, Log, Probe};
    use actix::Addr;

    struct Lobby {
        room: Addr<Room>,
        owner: Log,
        user: UserId,
    }

    fn lobby() -> Lobby {
        let pool = memory_pool();
        let conn = pool.get().unwrap();
        let lobby = rooms::get(&conn, RoomCode::LOBBY).unwrap();
        let user = users::create_guest(&conn, "guest-talker", "Talker").unwrap();
        let (owner, log) = Probe::start();
        let writer = Writer::start(pool.clone(), Arc::default()).unwrap();
        let info = RoomInfo {
            code: lobby.code,
            name: lobby.name,
        };
        let room = Room::new(
            info,
            lobby.id,
            owner.clone().recipient(),
            owner.recipient(),
            writer,
            pool.clone(),
            Default::default(),
        )
        .start();
        Lobby { room, owner: log, user }
    }

    fn join(room: &Addr<Room>, sid: &str, probe: &Addr<Probe>) {
        room.do_send(Join {
            member: member(sid, 1),
            deliver: probe.clone().recipient(),
        });
    }

    fn post(lobby: &Lobby, text: &str) {
        lobby.room.do_send(Post {
            message: NewMessage {
                room_id: 0,
                room: RoomCode::lobby(),
                user_id: lobby.user,
                username: "guest-talker".into(),
                display_name: "Talker".into(),
                text: text.into(),
                ip: "127.0.0.1".into(),
                nonce: None,
                attachment: None,
            },
        });
    }

    fn types(log: &Log) -> Vec<String> {
        log.borrow()
            .iter()
            .map(|got| match got {
                Got::Frame(frame) => frame["type"].as_str().unwrap().to_owned(),
                other => format!("{other:?}"),
            })
            .collect()
    }

    fn sids(frame: &serde_json::Value) -> Vec<&str> {
        frame["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["sid"].as_str().unwrap())
            .collect()
    }

    #[actix::test]
    async fn every_member_gets_the_room_s_frames_in_the_order_they_happened() {
        let lobby = lobby();
        let (a, a_log) = Probe::start();
        let (b, b_log) = Probe::start();
        join(&lobby.room, "a", &a);
        join(&lobby.room, "b", &b);
        for text in ["one", "two", "three"] {
            post(&lobby, text);
        }
        until("both hear three messages", || {
            frames(&a_log, "message").len() == 3 && frames(&b_log, "message").len() == 3
        })
        .await;
        assert_eq!(
            types(&a_log),
            ["joined", "member_joined", "message", "message", "message"]
        );
        assert_eq!(types(&b_log), ["joined", "message", "message", "message"]);
        assert_eq!(sids(&frames(&b_log, "joined")[0]), ["a", "b"], "in the order they came");
        for log in [&a_log, &b_log] {
            let texts: Vec<_> = frames(log, "message").iter().map(|m| m["text"].clone()).collect();
            assert_eq!(texts, ["one", "two", "three"]);
            let ids: Vec<i64> = frames(log, "message")
                .iter()
                .map(|m| m["id"].as_i64().unwrap())
                .collect();
            assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
        }
        let (c, c_log) = Probe::start();
        join(&lobby.room, "c", &c);
        until("c has joined", || !frames(&c_log, "joined").is_empty()).await;
        let history = frames(&c_log, "joined")[0]["history"].clone();
        let texts: Vec<_> = history.as_array().unwrap().iter().map(|m| m["text"].clone()).collect();
        assert_eq!(texts, ["one", "two", "three"], "history oldest first");
    }

    #[actix::test]
    async fn a_member_whose_mailbox_is_full_is_reported_and_announced_gone() {
        let lobby = lobby();
        let (a, a_log) = Probe::start();
        join(&lobby.room, "a", &a);
        let sleeper = Probe::asleep(1);
        join(&lobby.room, "sleeper", &sleeper);
        for text in ["one", "two"] {
            post(&lobby, text);
        }
        until("a hears both", || frames(&a_log, "message").len() == 2).await;
        assert_eq!(
            *lobby.owner.borrow(),
            [Got::Slow("sleeper".into())],
            "the registry is told, and disconnects it"
        );
        let left = frames(&a_log, "member_left");
        assert_eq!(left.len(), 1);
        assert_eq!(left[0]["sid"], "sleeper");
        let (c, c_log) = Probe::start();
        join(&lobby.room, "c", &c);
        until("c has joined", || !frames(&c_log, "joined").is_empty()).await;
        assert_eq!(sids(&frames(&c_log, "joined")[0]), ["a", "c"]);
    }

    #[actix::test]
    async fn a_member_that_is_gone_is_forgotten_without_a_kick() {
        let lobby = lobby();
        let (a, a_log) = Probe::start();
        let (gone, gone_log) = Probe::start();
        join(&lobby.room, "a", &a);
        join(&lobby.room, "gone", &gone);
        until("gone has joined", || !frames(&gone_log, "joined").is_empty()).await;
        gone.do_send(crate::realtime::messages::Control::ServerStopping { reason: "bye".into() });
        until("gone has stopped", || !gone.connected()).await;
        post(&lobby, "after");
        until("a hears the message", || !frames(&a_log, "message").is_empty()).await;
        let left = frames(&a_log, "member_left");
        assert_eq!(left.len(), 1, "{:?}", types(&a_log));
        assert_eq!(left[0]["sid"], "gone");
        assert!(!gone_log.borrow().iter().any(|g| matches!(g, Got::Kicked(_))));
        assert!(lobby.owner.borrow().is_empty(), "nothing to report");
    }

    #[actix::test]
    async fn an_empty_room_asks_its_owner_to_stop_after_its_grace() {
        tokio::time::pause();
        let lobby = lobby();
        let (a, a_log) = Probe::start();
        join(&lobby.room, "a", &a);
        until("a has joined", || !frames(&a_log, "joined").is_empty()).await;
        tokio::time::sleep(IDLE_GRACE * 2).await;
        assert!(lobby.owner.borrow().is_empty(), "an occupied room stays");

        lobby.room.do_send(Leave {
            sid: SessionId("a".into()),
        });
        tokio::time::sleep(IDLE_GRACE - Duration::from_secs(1)).await;
        assert!(lobby.owner.borrow().is_empty(), "not before the grace");
        join(&lobby.room, "a", &a);
        lobby.room.do_send(Leave {
            sid: SessionId("a".into()),
        });
        tokio::time::sleep(IDLE_GRACE + Duration::from_secs(1)).await;
        assert_eq!(*lobby.owner.borrow(), [Got::Idle("lobby".into())]);

        lobby.room.do_send(Stop);
        until("the room stops", || !lobby.room.connected()).await;
    }
}
