//! The AdminMonitor actor pushes registry changes to the admin consoles that
//! asked for them (`admin_watch`). It mirrors the registry from its events,
//! so a new watcher's snapshot and the deltas after it never miss a change.

use std::collections::HashMap;

use actix::{Actor, Context, Handler, Message, Recipient};

use super::messages::{Deliver, Kicked};
use super::protocol::{LiveSession, ServerMsg};
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
    pub deliver: Recipient<Deliver>,
    pub kicked: Recipient<Kicked>,
}

struct Watcher {
    deliver: Recipient<Deliver>,
    kicked: Recipient<Kicked>,
}

#[derive(Default)]
pub struct AdminMonitor {
    sessions: HashMap<SessionId, LiveSession>,
    watchers: HashMap<SessionId, Watcher>,
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
            .retain(|sid, watcher| match watcher.deliver.try_send(Deliver(text.clone())) {
                Ok(()) => true,
                Err(actix::dev::SendError::Full(_)) => {
                    tracing::warn!(%sid, "admin watcher cannot keep up: dropped");
                    watcher.kicked.do_send(Kicked {
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
        msg.deliver.do_send(Deliver(ServerMsg::Sessions { sessions }.encode()));
        self.watchers.insert(
            msg.sid,
            Watcher {
                deliver: msg.deliver,
                kicked: msg.kicked,
            },
        );
    }
}
