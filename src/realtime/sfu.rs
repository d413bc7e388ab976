//! The Sfu actor owns the SFU's control plane: which sessions are on the
//! SFU, as which member, in which room, and where their `sfu` frames go.
//! Voice never passes through it: the media loop (`src/media`) forwards
//! packets on its own thread and is driven through a `MediaHandle`; what
//! the loop reports comes back here as `FromMedia` and goes on to the
//! session. Started once in `server::run` unless VOICE_MODE is `p2p`.

use std::collections::HashMap;
use std::sync::Arc;

use actix::{Actor, Addr, AsyncContext, Context, Handler, Message, Recipient};
use serde_json::Value;

use super::messages::Deliver;
use super::protocol::{error_frame, ProtocolError, ServerMsg};
use crate::ids::{RoomCode, SessionId};
use crate::media::signal::{ClientData, ServerData};
use crate::media::{self, MediaConfig, MediaEvent, MediaHandle, MemberId};
use crate::metrics::Metrics;

/// An `sfu` frame from a session; `room` is the session's current room.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Signal {
    pub sid: SessionId,
    pub room: RoomCode,
    pub in_voice: bool,
    /// A moderator's mute and deafen, applied from the first packet.
    pub server_muted: bool,
    pub server_deafened: bool,
    pub data: Value,
    pub reply: Recipient<Deliver>,
}

/// The session left voice or its room, or closed: its media ends now.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Leave {
    pub sid: SessionId,
}

/// A moderator muted or deafened the session (or lifted it): its packets
/// are dropped, and a deafened member is sent nothing.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Moderate {
    pub sid: SessionId,
    pub muted: bool,
    pub deafened: bool,
}

/// News from the media loop.
#[derive(Message)]
#[rtype(result = "()")]
struct FromMedia(MediaEvent);

struct Seat {
    member: MemberId,
    room: RoomCode,
    reply: Recipient<Deliver>,
}

pub struct Sfu {
    media: MediaHandle,
    seats: HashMap<SessionId, Seat>,
    sids: HashMap<MemberId, SessionId>,
    next_member: u64,
}

impl Sfu {
    /// Binds the SFU's UDP port, starts the media loop and this actor.
    pub fn start(config: MediaConfig, metrics: Arc<Metrics>) -> std::io::Result<(Addr<Sfu>, MediaHandle)> {
        let context = Context::<Sfu>::new();
        // Weak, so the loop does not keep the actor (and itself) alive.
        let actor = context.address().downgrade();
        let media = media::start(config, metrics, move |event| {
            if let Some(actor) = actor.upgrade() {
                actor.do_send(FromMedia(event));
            }
        })?;
        let sfu = Sfu {
            media: media.clone(),
            seats: HashMap::new(),
            sids: HashMap::new(),
            next_member: 0,
        };
        Ok((context.run(sfu), media))
    }

    fn join(&mut self, sid: SessionId, room: RoomCode, reply: Recipient<Deliver>) {
        self.leave(&sid);
        self.next_member += 1;
        let member = MemberId(self.next_member);
        if self.media.join(member, sid.clone(), room.clone()).is_err() {
            let busy = ProtocolError::new("internal", "voice through the server is not available right now");
            let _ = reply.try_send(Deliver(error_frame(&busy)));
            return;
        }
        self.sids.insert(member, sid.clone());
        self.seats.insert(sid, Seat { member, room, reply });
    }

    fn leave(&mut self, sid: &SessionId) {
        if let Some(seat) = self.seats.remove(sid) {
            self.sids.remove(&seat.member);
            // A loop that takes no more requests has dropped every member.
            let _ = self.media.leave(seat.member);
        }
    }

    /// Applies a moderator's mute and deafen to the session's member, if it
    /// is on the SFU; a fresh member starts with neither. A loop too busy to
    /// take the change fails closed: the member's media ends.
    fn moderate(&mut self, sid: &SessionId, muted: bool, deafened: bool) {
        let Some(seat) = self.seats.get(sid) else {
            return;
        };
        let applied =
            self.media.set_muted(seat.member, muted).is_ok() && self.media.set_deafened(seat.member, deafened).is_ok();
        if !applied {
            tracing::warn!(%sid, "SFU: a moderator's mute could not be applied: media ended");
            self.leave(sid);
        }
    }

    fn seat_of(&self, member: MemberId) -> Option<(&SessionId, &Seat)> {
        let sid = self.sids.get(&member)?;
        Some((sid, self.seats.get(sid)?))
    }

    fn send(&mut self, member: MemberId, data: &ServerData) {
        let Some((sid, seat)) = self.seat_of(member) else {
            return;
        };
        let data = serde_json::to_value(data).unwrap_or(Value::Null);
        let frame = ServerMsg::Sfu { data: &data }.encode();
        if let Err(error) = seat.reply.try_send(Deliver(frame)) {
            tracing::warn!(%sid, %error, "SFU: a session did not take its signalling");
        }
    }
}

fn refuse(reply: &Recipient<Deliver>, code: &'static str, message: impl Into<String>) {
    let _ = reply.try_send(Deliver(error_frame(&ProtocolError::new(code, message))));
}

impl Actor for Sfu {
    type Context = Context<Self>;
}

impl Handler<Signal> for Sfu {
    type Result = ();

    fn handle(&mut self, msg: Signal, _: &mut Context<Self>) {
        let request = match serde_json::from_value::<ClientData>(msg.data) {
            Ok(request) => request,
            Err(error) => return refuse(&msg.reply, "bad_request", format!("invalid sfu data: {error}")),
        };
        match request {
            ClientData::Join {} if !msg.in_voice => refuse(&msg.reply, "not_in_voice", "join voice first"),
            ClientData::Join {} => {
                let sid = msg.sid.clone();
                self.join(msg.sid, msg.room, msg.reply);
                self.moderate(&sid, msg.server_muted, msg.server_deafened);
            }
            ClientData::Answer { version, sdp } => match self.seats.get(&msg.sid) {
                Some(seat) if seat.room == msg.room => {
                    if self.media.answer(seat.member, version, sdp).is_err() {
                        refuse(
                            &msg.reply,
                            "internal",
                            "voice through the server is not available right now",
                        );
                    }
                }
                _ => refuse(&msg.reply, "bad_request", "not on the SFU: send join first"),
            },
            ClientData::Leave {} => self.leave(&msg.sid),
        }
    }
}

impl Handler<Leave> for Sfu {
    type Result = ();

    fn handle(&mut self, msg: Leave, _: &mut Context<Self>) {
        self.leave(&msg.sid);
    }
}

impl Handler<Moderate> for Sfu {
    type Result = ();

    fn handle(&mut self, msg: Moderate, _: &mut Context<Self>) {
        self.moderate(&msg.sid, msg.muted, msg.deafened);
    }
}

impl Handler<FromMedia> for Sfu {
    type Result = ();

    fn handle(&mut self, FromMedia(event): FromMedia, _: &mut Context<Self>) {
        match event {
            MediaEvent::Signal { member, data } => self.send(member, &data),
            MediaEvent::Refused { member, message } => {
                if let Some((_, seat)) = self.seat_of(member) {
                    refuse(&seat.reply, "bad_request", message);
                }
            }
            MediaEvent::Ended { member, reason } => {
                self.send(member, &ServerData::Closed { reason });
                if let Some(sid) = self.sids.remove(&member) {
                    self.seats.remove(&sid);
                }
            }
        }
    }
}
