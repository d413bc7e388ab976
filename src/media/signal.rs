//! The `data` of `sfu` frames, both ways (documented in docs/protocol.md).
//! The server is always the offerer: a member joins, the server offers one
//! peer connection (its upload and one receive slot per other member), the
//! client answers; when the room needs more slots the server offers again.

use serde::{Deserialize, Serialize};

use crate::ids::SessionId;

/// What a client sends in an `sfu` frame's `data`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientData {
    /// Enter the SFU with the session's current room (needs voice).
    // Struct variants, so that `deny_unknown_fields` holds for them too.
    Join {},
    /// The answer to the server's offer of this `version`.
    Answer { version: u32, sdp: String },
    /// Leave the SFU (leaving voice or the room does it too).
    Leave {},
}

/// What the server sends in an `sfu` frame's `data`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum ServerData {
    /// A session description to answer. `upload` is the mid of the m-line
    /// that carries the member's microphone to the server; `tracks` says
    /// whose voice each receive m-line carries.
    Offer {
        version: u32,
        sdp: String,
        upload: String,
        tracks: Vec<TrackInfo>,
    },
    /// Receive m-lines were given to other speakers; no new description.
    Tracks { tracks: Vec<TrackInfo> },
    /// The server ended this member's SFU connection.
    Closed { reason: String },
}

/// One receive m-line and the session whose voice it carries (none: idle).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrackInfo {
    pub mid: String,
    pub sid: Option<SessionId>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_data_parses_each_action_and_refuses_the_rest() {
        let parse = |text: &str| serde_json::from_str::<ClientData>(text);
        assert_eq!(parse(r#"{"action":"join"}"#).unwrap(), ClientData::Join {});
        assert_eq!(parse(r#"{"action":"leave"}"#).unwrap(), ClientData::Leave {});
        assert_eq!(
            parse(r#"{"action":"answer","version":3,"sdp":"v=0"}"#).unwrap(),
            ClientData::Answer {
                version: 3,
                sdp: "v=0".into()
            }
        );
        for bad in [
            r#"{}"#,
            r#"{"action":"offer","sdp":"v=0"}"#,
            r#"{"action":"answer","sdp":"v=0"}"#,
            r#"{"action":"answer","version":-1,"sdp":"v=0"}"#,
            r#"{"action":"join","room":"x"}"#,
            r#"{"action":"leave","now":true}"#,
            r#"[]"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn server_data_names_its_action() {
        let offer = ServerData::Offer {
            version: 1,
            sdp: "v=0".into(),
            upload: "0".into(),
            tracks: vec![TrackInfo {
                mid: "1".into(),
                sid: Some(SessionId("abc".into())),
            }],
        };
        let json = serde_json::to_value(&offer).unwrap();
        assert_eq!(json["action"], "offer");
        assert_eq!(json["tracks"][0]["sid"], "abc");
        let closed = serde_json::to_value(ServerData::Closed { reason: "x".into() }).unwrap();
        assert_eq!(closed, serde_json::json!({"action": "closed", "reason": "x"}));
    }
}
