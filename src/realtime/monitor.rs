//! The AdminMonitor actor pushes registry changes to the admin consoles that
//! asked for them (`admin_watch`). It mirrors the registry from its events,
//! so a new watcher's snapshot and the deltas after it never miss a change.

use std::collections::HashMap;

use actix::{Actor, Addr, Context, Handler, Message};

use super::protocol::{error_frame, LiveSession, ProtocolError, ServerMsg};
use super::session::{Deliver, WsSession};
use crate::ids::SessionId;

/// A change in the registry.
#[derive(Message)]
#[rtype(result = "()")]
pub enum RegistryEvent {
    Update(LiveSession),
    Gone(SessionId),
}

/// An admin session starts watching: it gets a snapshot, then every change.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Watch {
    pub sid: SessionId,
    pub addr: Addr<WsSession>,
}

/// A watcher lost `sessions.view`: it is dropped and told `forbidden`
/// before the next change goes out.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Unwatch {
    pub sid: SessionId,
}

#[derive(Default)]
pub struct AdminMonitor {
    sessions: HashMap<SessionId, LiveSession>,
    watchers: HashMap<SessionId, Addr<WsSession>>,
}

impl AdminMonitor {
    /// Sends one frame to every watcher; watchers that are gone or cannot
    /// keep up are dropped.
    fn broadcast(&mut self, frame: ServerMsg<'_>) {
        if self.watchers.is_empty() {
            return;
        }
        let text = frame.encode();
        self.watchers
            .retain(|sid, addr| match addr.try_send(Deliver(text.clone())) {
                Ok(()) => true,
                Err(actix::dev::SendError::Full(_)) => {
                    tracing::warn!(%sid, "admin watcher cannot keep up: dropped");
                    addr.do_send(super::session::Kicked {
                        reason: "too slow to follow the live sessions".into(),
                    });
                    false
                }
                Err(actix::dev::SendError::Closed(_)) => false,
            });
    }
}

impl Actor for AdminMonitor {
    type Context = Context<Self>;
}

impl Handler<RegistryEvent> for AdminMonitor {
    type Result = ();

    fn handle(&mut self, event: RegistryEvent, _: &mut Context<Self>) {
        match event {
            RegistryEvent::Update(session) => {
                self.broadcast(ServerMsg::SessionUpdate { session: &session });
                self.sessions.insert(session.sid.clone(), session);
            }
            RegistryEvent::Gone(sid) => {
                self.watchers.remove(&sid);
                if self.sessions.remove(&sid).is_some() {
                    self.broadcast(ServerMsg::SessionGone { sid: &sid });
                }
            }
        }
    }
}

impl Handler<Watch> for AdminMonitor {
    type Result = ();

    fn handle(&mut self, msg: Watch, _: &mut Context<Self>) {
        let mut sessions: Vec<&LiveSession> = self.sessions.values().collect();
        sessions.sort_by_key(|s| s.connected_at);
        msg.addr.do_send(Deliver(ServerMsg::Sessions { sessions }.encode()));
        self.watchers.insert(msg.sid, msg.addr);
    }
}

impl Handler<Unwatch> for AdminMonitor {
    type Result = ();

    fn handle(&mut self, msg: Unwatch, _: &mut Context<Self>) {
        if let Some(addr) = self.watchers.remove(&msg.sid) {
            let notice = ProtocolError::new(
                "forbidden",
                "watching sessions needs sessions.view, which you no longer hold",
            );
            addr.do_send(Deliver(error_frame(&notice)));
        }
    }
}
