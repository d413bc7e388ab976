//! The `/ws` wire protocol: what clients send ([`ClientMsg`]), what the
//! server sends ([`ServerMsg`]) and the records inside them. Parsed and
//! encoded here and nowhere else.

use actix_web::web::Bytes;
use bytestring::ByteString;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::IceTransportPolicy;
use crate::db::users::User;
use crate::ids::{RoomCode, SessionId, UserId};

/// Frames from clients are at most this long.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;
/// Chat text, in Unicode characters.
pub const MAX_CHAT_CHARS: usize = 4000;
/// A client's nonce is echoed back, so it is kept short.
pub const MAX_NONCE_CHARS: usize = 128;
/// A `signal`'s data, JSON-encoded: an SDP offer with its candidates fits
/// with room to spare.
pub const MAX_SIGNAL_BYTES: usize = 16 * 1024;

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMsg {
    Join {
        room: String,
    },
    Leave,
    Chat {
        text: String,
        #[serde(default)]
        nonce: Option<String>,
    },
    Voice {
        action: VoiceAction,
    },
    Mute {
        muted: bool,
    },
    Signal {
        to: SessionId,
        data: Value,
    },
    Sfu {
        data: Value,
    },
    AdminWatch,
    Ping,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VoiceAction {
    Join,
    Leave,
}

impl ClientMsg {
    pub fn parse(text: &str) -> Result<Self, ProtocolError> {
        serde_json::from_str(text).map_err(|e| ProtocolError::new("bad_request", format!("invalid frame: {e}")))
    }
}

/// An `error` frame's code and message.
#[derive(Debug, Clone)]
pub struct ProtocolError {
    pub code: &'static str,
    pub message: String,
}

impl ProtocolError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// A room member, as the room shows it to everyone in it.
#[derive(Debug, Clone, Serialize)]
pub struct Member {
    pub sid: SessionId,
    pub user_id: UserId,
    pub username: String,
    pub display_name: String,
    pub guest: bool,
    pub avatar_url: Option<String>,
    #[serde(flatten)]
    pub voice: VoiceStatus,
}

/// Where a member's voice travels: straight to the others, or through the SFU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VoicePath {
    P2p,
    Sfu,
}

/// A session's voice, as its room and the admin console see it. `muted` is
/// the member's own choice; `server_muted` and `server_deafened` are a
/// moderator's, which the member cannot undo.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct VoiceStatus {
    pub in_voice: bool,
    pub muted: bool,
    pub server_muted: bool,
    pub server_deafened: bool,
    /// None when not in voice.
    pub path: Option<VoicePath>,
}

impl VoiceStatus {
    /// Out of voice (left it, or changed rooms): a moderator's mute and
    /// deafen hold for the connection until lifted.
    pub fn out_of_voice(self) -> Self {
        Self {
            server_muted: self.server_muted,
            server_deafened: self.server_deafened,
            ..Self::default()
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RoomInfo {
    pub code: RoomCode,
    pub name: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct UserRef {
    pub id: UserId,
    pub username: String,
}

/// One live WebSocket session, as the admin console shows it.
#[derive(Debug, Clone, Serialize)]
pub struct LiveSession {
    pub sid: SessionId,
    pub user: UserRef,
    pub ip: String,
    pub room: Option<RoomCode>,
    #[serde(flatten)]
    pub voice: VoiceStatus,
    pub connected_at: DateTime<Utc>,
    pub user_agent: String,
    pub avatar_url: Option<String>,
}

/// How this server carries voice, as `hello` tells the client.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct VoiceInfo {
    /// `auto`, `p2p` or `sfu` (VOICE_MODE).
    pub mode: &'static str,
    /// Members in voice above which a room uses the SFU (MESH_LIMIT).
    pub mesh_limit: u32,
}

/// Every server frame but `joined`, which the room puts together from the
/// encodings it keeps (`room::Room::joined_frame`).
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg<'a> {
    Hello {
        sid: &'a SessionId,
        user: &'a User,
        ice_servers: &'a [Value],
        voice: VoiceInfo,
        ice_transport_policy: IceTransportPolicy,
    },
    MemberJoined {
        member: &'a Member,
    },
    MemberLeft {
        sid: &'a SessionId,
    },
    /// A member's name or picture changed: their entry as it is now.
    MemberUpdated {
        member: &'a Member,
    },
    VoiceState {
        sid: &'a SessionId,
        #[serde(flatten)]
        voice: VoiceStatus,
    },
    /// To the member a moderator muted or deafened (or lifted it), with why.
    VoiceModerated {
        server_muted: bool,
        server_deafened: bool,
        reason: &'a str,
    },
    Signal {
        from: &'a SessionId,
        data: &'a Value,
    },
    Sfu {
        data: &'a Value,
    },
    Sessions {
        sessions: Vec<&'a LiveSession>,
    },
    SessionUpdate {
        session: &'a LiveSession,
    },
    SessionGone {
        sid: &'a SessionId,
    },
    Pong,
    Kicked {
        reason: &'a str,
    },
    Banned {
        reason: &'a str,
    },
    Moved {
        room: &'a RoomInfo,
    },
    /// The user's roles, permissions, admin flag, name or picture changed:
    /// the fresh record.
    User {
        user: &'a User,
    },
    Error {
        code: &'a str,
        message: &'a str,
    },
}

impl ServerMsg<'_> {
    /// The frame's text, ready to share between recipients.
    pub fn encode(&self) -> ByteString {
        encode(self)
    }
}

/// Encodes any serialisable frame. Serialising these types cannot fail (no
/// maps with non-string keys, no failing `Serialize` impls); were it to, the
/// client gets an `error` frame rather than nothing.
pub fn encode(frame: &impl Serialize) -> ByteString {
    match serde_json::to_vec(frame) {
        // Exactly sized: rooms keep many encodings (members, history).
        Ok(mut bytes) => ByteString::try_from(Bytes::from({
            bytes.shrink_to_fit();
            bytes
        }))
        .unwrap_or_else(|_| ByteString::from_static(r#"{"type":"error","code":"internal","message":"encoding"}"#)),
        Err(_) => ByteString::from_static(r#"{"type":"error","code":"internal","message":"encoding"}"#),
    }
}

pub fn error_frame(error: &ProtocolError) -> ByteString {
    ServerMsg::Error {
        code: error.code,
        message: &error.message,
    }
    .encode()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_client_frame() {
        assert!(matches!(
            ClientMsg::parse(r#"{"type":"join","room":"lobby"}"#),
            Ok(ClientMsg::Join { .. })
        ));
        assert!(matches!(ClientMsg::parse(r#"{"type":"leave"}"#), Ok(ClientMsg::Leave)));
        assert!(matches!(
            ClientMsg::parse(r#"{"type":"chat","text":"hi","nonce":"n1"}"#),
            Ok(ClientMsg::Chat { nonce: Some(_), .. })
        ));
        assert!(matches!(
            ClientMsg::parse(r#"{"type":"voice","action":"join"}"#),
            Ok(ClientMsg::Voice {
                action: VoiceAction::Join
            })
        ));
        assert!(matches!(
            ClientMsg::parse(r#"{"type":"mute","muted":true}"#),
            Ok(ClientMsg::Mute { muted: true })
        ));
        assert!(matches!(
            ClientMsg::parse(r#"{"type":"signal","to":"s1","data":{"candidate":{}}}"#),
            Ok(ClientMsg::Signal { .. })
        ));
        assert!(matches!(
            ClientMsg::parse(r#"{"type":"admin_watch"}"#),
            Ok(ClientMsg::AdminWatch)
        ));
        assert!(matches!(ClientMsg::parse(r#"{"type":"ping"}"#), Ok(ClientMsg::Ping)));
    }

    #[test]
    fn bad_frames_are_bad_requests() {
        for bad in [
            "not json",
            r#"{"type":"dance"}"#,
            r#"{"type":"chat"}"#,
            r#"{"type":"chat","text":5}"#,
            r#"{"type":"join","room":"lobby","extra":1}"#,
            r#"{"room":"lobby"}"#,
            r#"[]"#,
        ] {
            let err = ClientMsg::parse(bad).unwrap_err();
            assert_eq!(err.code, "bad_request", "{bad}");
        }
    }

    #[test]
    fn frames_encode_with_their_type() {
        let text = ServerMsg::Pong.encode();
        assert_eq!(&*text, r#"{"type":"pong"}"#);
        let err = error_frame(&ProtocolError::new("not_in_room", "x"));
        let v: Value = serde_json::from_str(&err).unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["code"], "not_in_room");
    }
}
