//! The AdminMonitor actor owns the admin consoles watching the live sessions
//! (`admin_watch`) and pushes every registry change to them. A watcher's
//! snapshot comes from the registry in the same stream as the changes, so
//! it misses none and sees none twice; the monitor keeps no copy of the
//! sessions.

use std::collections::HashMap;

use actix::{Actor, Context, Handler, Message, Recipient};
use bytestring::ByteString;

use super::messages::{Control, Deliver};
use super::protocol::{error_frame, LiveSession, ProtocolError, ServerMsg};
use crate::ids::SessionId;

/// A change in the registry.
#[derive(Message)]
#[rtype(result = "()")]
pub enum RegistryEvent {
    Update(LiveSession),
    Gone(SessionId),
}

/// From the registry: an admin session starts watching. It is sent
/// `snapshot` (the registry as it stood), then every later change.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Watch {
    pub sid: SessionId,
    pub deliver: Recipient<Deliver>,
    pub control: Recipient<Control>,
    pub snapshot: ByteString,
}

/// A watcher lost `sessions.view`: it is dropped and told `forbidden`
/// before the next change goes out.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Unwatch {
    pub sid: SessionId,
}

struct Watcher {
    deliver: Recipient<Deliver>,
    control: Recipient<Control>,
}

#[derive(Default)]
pub struct AdminMonitor {
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
                    watcher.control.do_send(Control::Kicked {
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
            RegistryEvent::Update(session) => self.broadcast(ServerMsg::SessionUpdate { session: &session }),
            RegistryEvent::Gone(sid) => {
                self.watchers.remove(&sid);
                self.broadcast(ServerMsg::SessionGone { sid: &sid });
            }
        }
    }
}

impl Handler<Watch> for AdminMonitor {
    type Result = ();

    fn handle(&mut self, msg: Watch, _: &mut Context<Self>) {
        msg.deliver.do_send(Deliver(msg.snapshot));
        self.watchers.insert(
            msg.sid,
            Watcher {
                deliver: msg.deliver,
                control: msg.control,
            },
        );
    }
}

impl Handler<Unwatch> for AdminMonitor {
    type Result = ();

    fn handle(&mut self, msg: Unwatch, _: &mut Context<Self>) {
        if let Some(watcher) = self.watchers.remove(&msg.sid) {
            let notice = ProtocolError::new(
                "forbidden",
                "watching sessions needs sessions.view, which you no longer hold",
            );
            watcher.deliver.do_send(Deliver(error_frame(&notice)));
        }
    }
}
