//! What rooms, the registry and the admin monitor (and any later actor, such
//! as the SFU) send to a session. They hold a session only by recipients of
//! these two messages, its frames ([`Deliver`]) and its control
//! ([`Control`]), so none of them depends on the session's type, and a
//! session costs each holder one recipient.

use actix::Message;
use bytestring::ByteString;

use super::protocol::RoomInfo;
use crate::db::users::User;

/// A frame to write to this socket (already encoded, often shared).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Deliver(pub ByteString);

/// What the registry, the source of truth for admin control, tells a
/// session; one message type, so that it holds one recipient per session.
#[derive(Message)]
#[rtype(result = "()")]
pub enum Control {
    /// An admin (or the server) kicks this session: `kicked`, then close 4001.
    Kicked { reason: String },
    /// A ban covers this session: `banned`, then close 4003.
    Banned { reason: String },
    /// An admin moves this session: `moved`, then `joined` for the new room.
    MoveTo { room: RoomInfo, room_id: i64 },
    /// A moderator mutes or deafens this session, or lifts it: the member
    /// is told (`server_voice`) and the room sees the new voice state.
    Moderate { action: Moderation, reason: String },
    /// The user's authority, name or picture changed: the session acts on
    /// the fresh record from now on, tells the client with a `user` frame,
    /// and its room the others (`member_updated`) when the name or picture
    /// changed.
    Reauthorized { user: User },
    /// The server is stopping: an `error` frame with the reason, then close 1012.
    ServerStopping { reason: String },
}

/// What a moderator does to a session's voice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moderation {
    Mute(bool),
    Deafen(bool),
}
