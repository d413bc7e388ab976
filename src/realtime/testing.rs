//! Test doubles for the actor tests: a [`Probe`] that stands in for a
//! session (or a room's owner) and records what it is sent, and the few
//! records and waits those tests share.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use actix::{Actor, ActorContext, Addr, AsyncContext, Context, Handler, WrapFuture};
use chrono::Utc;
use serde_json::Value;

use super::messages::{Control, Deliver, Moderation};
use super::protocol::{LiveSession, Member, UserRef};
use super::room::{RoomIdle, SlowMember};
use crate::ids::{SessionId, UserId};

/// What a probe was sent, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Got {
    Frame(Value),
    Kicked(String),
    Banned(String),
    Moved(String),
    Moderated(Moderation, String),
    Stopping(String),
    /// Reauthorized, with the fresh record's username.
    Reauthorized(String),
    Idle(String),
    Slow(String),
}

pub type Log = Rc<RefCell<Vec<Got>>>;

pub struct Probe {
    log: Log,
    /// A sleeping probe never handles its mailbox: it fills up.
    asleep: bool,
    capacity: usize,
}

impl Probe {
    /// An attentive probe and the log of what it gets.
    pub fn start() -> (Addr<Probe>, Log) {
        Self::start_with(false, 1024)
    }

    /// A probe that never reads its mailbox of `capacity` messages.
    pub fn asleep(capacity: usize) -> Addr<Probe> {
        Self::start_with(true, capacity).0
    }

    fn start_with(asleep: bool, capacity: usize) -> (Addr<Probe>, Log) {
        let log = Log::default();
        let probe = Probe {
            log: log.clone(),
            asleep,
            capacity,
        };
        (probe.start(), log)
    }

    fn record(&self, got: Got) {
        self.log.borrow_mut().push(got);
    }
}

impl Actor for Probe {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(self.capacity);
        if self.asleep {
            ctx.wait(std::future::pending::<()>().into_actor(self));
        }
    }
}

impl Handler<Deliver> for Probe {
    type Result = ();

    fn handle(&mut self, msg: Deliver, _: &mut Context<Self>) {
        self.record(Got::Frame(serde_json::from_str(&msg.0).unwrap()));
    }
}

impl Handler<Control> for Probe {
    type Result = ();

    fn handle(&mut self, msg: Control, ctx: &mut Context<Self>) {
        match msg {
            Control::Kicked { reason } => self.record(Got::Kicked(reason)),
            Control::Banned { reason } => self.record(Got::Banned(reason)),
            Control::MoveTo { room, .. } => self.record(Got::Moved(room.code.0)),
            Control::Moderate { action, reason } => self.record(Got::Moderated(action, reason)),
            Control::Reauthorized { user } => self.record(Got::Reauthorized(user.username)),
            Control::ServerStopping { reason } => {
                self.record(Got::Stopping(reason));
                ctx.stop();
            }
        }
    }
}

impl Handler<RoomIdle> for Probe {
    type Result = ();

    fn handle(&mut self, msg: RoomIdle, _: &mut Context<Self>) {
        self.record(Got::Idle(msg.code.0));
    }
}

impl Handler<SlowMember> for Probe {
    type Result = ();

    fn handle(&mut self, msg: SlowMember, _: &mut Context<Self>) {
        self.record(Got::Slow(msg.sid.0));
    }
}

pub fn member(sid: &str, user: i64) -> Member {
    Member {
        sid: SessionId(sid.into()),
        user_id: UserId(user),
        username: format!("user{user}"),
        display_name: format!("User {user}"),
        guest: false,
        voice: Default::default(),
        avatar_url: None,
    }
}

pub fn live(sid: &str, user: i64, ip: &str) -> LiveSession {
    LiveSession {
        sid: SessionId(sid.into()),
        user: UserRef {
            id: UserId(user),
            username: format!("user{user}"),
        },
        ip: ip.into(),
        room: None,
        voice: Default::default(),
        connected_at: Utc::now(),
        user_agent: String::new(),
        avatar_url: None,
    }
}

/// The frames of a given type in a log.
pub fn frames(log: &Log, ty: &str) -> Vec<Value> {
    log.borrow()
        .iter()
        .filter_map(|got| match got {
            Got::Frame(frame) if frame["type"] == ty => Some(frame.clone()),
            _ => None,
        })
        .collect()
}

/// Lets the actors run until `done` holds; fails the test after 10 s.
pub async fn until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..2_000 {
        if done() {
            return;
        }
        actix_web::rt::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("not within 10 s: {what}");
}

/// A text frame as a browser sends it (masked).
pub fn client_text(text: &str) -> Vec<u8> {
    let mask = [0x12, 0x34, 0x56, 0x78];
    let mut frame = vec![0x81];
    match text.len() {
        n @ 0..=125 => frame.push(0x80 | n as u8),
        n => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    frame.extend_from_slice(&mask);
    let mut payload = text.as_bytes().to_vec();
    super::frame::unmask(&mut payload, mask);
    frame.extend_from_slice(&payload);
    frame
}
