//! What rooms, the registry and the admin monitor (and any later actor, such
//! as the SFU) send to a session, and the [`SessionLink`] they hold it by.
//! They address a session only through these `Recipient`s, so none of them
//! depends on the session's type and the session depends on none of them
//! for its own messages.

use actix::{Message, Recipient};
use bytestring::ByteString;

use super::protocol::RoomInfo;

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

/// A session as the registry holds it: everything that may be sent to it.
/// Rooms and the monitor keep only the recipients they use.
#[derive(Clone)]
pub struct SessionLink {
    pub deliver: Recipient<Deliver>,
    pub kicked: Recipient<Kicked>,
    pub banned: Recipient<Banned>,
    pub move_to: Recipient<MoveTo>,
    pub stopping: Recipient<ServerStopping>,
}
