//! The ICE servers a client is given in `hello`: STUN URLs as configured,
//! and TURN with either static credentials or, for a TURN server with a
//! shared secret (coturn's `use-auth-secret`), time-limited ones in the
//! coturn REST form: username `expiry:user`, credential
//! base64(HMAC-SHA1(secret, username)).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha1::Sha1;

use crate::config::{Config, IceTransportPolicy, TurnAuth, TurnConfig};
use crate::ids::UserId;

/// The STUN and TURN settings, as sessions need them.
#[derive(Debug, Clone)]
pub struct IceConfig {
    pub stun_urls: Vec<String>,
    pub turn: Option<TurnConfig>,
    /// ICE_TRANSPORT_POLICY, told to the client in `hello`.
    pub transport_policy: IceTransportPolicy,
}

impl From<&Config> for IceConfig {
    fn from(config: &Config) -> Self {
        Self {
            stun_urls: config.stun_urls.clone(),
            turn: config.turn.clone(),
            transport_policy: config.ice_transport_policy,
        }
    }
}

pub fn servers(config: &IceConfig, user: UserId) -> Vec<Value> {
    let mut servers = Vec::new();
    if !config.stun_urls.is_empty() {
        servers.push(json!({"urls": config.stun_urls}));
    }
    if let Some(turn) = &config.turn {
        servers.push(match &turn.auth {
            TurnAuth::SharedSecret { secret, ttl } => {
                let expiry = chrono::Utc::now().timestamp() + ttl.as_secs() as i64;
                let username = format!("{expiry}:{user}");
                json!({"urls": turn.urls, "username": username, "credential": rest_credential(secret.expose(), &username)})
            }
            TurnAuth::Static { username, credential } => {
                json!({"urls": turn.urls, "username": username, "credential": credential.expose()})
            }
            TurnAuth::None => json!({"urls": turn.urls}),
        });
    }
    servers
}

#[expect(clippy::expect_used, reason = "HMAC accepts keys of any length")]
fn rest_credential(secret: &str, username: &str) -> String {
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(username.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    fn config(pairs: &[(&str, &str)]) -> IceConfig {
        let mut s = Settings::default();
        for (k, v) in pairs {
            s.set(k, *v).unwrap();
        }
        IceConfig::from(&Config::from_settings(&s).unwrap())
    }

    #[test]
    fn nothing_configured_means_no_servers() {
        assert!(servers(&config(&[]), UserId(1)).is_empty());
    }

    #[test]
    fn shared_secret_gives_coturn_rest_credentials() {
        let c = config(&[
            ("STUN_URLS", "stun:stun.example.org:3478"),
            ("TURN_URLS", "turn:turn.example.org:3478?transport=udp"),
            ("TURN_SECRET", "s3cret"),
        ]);
        let list = servers(&c, UserId(42));
        assert_eq!(list[0]["urls"][0], "stun:stun.example.org:3478");
        let username = list[1]["username"].as_str().unwrap();
        let (expiry, user) = username.split_once(':').unwrap();
        assert_eq!(user, "42");
        assert!(expiry.parse::<i64>().unwrap() > chrono::Utc::now().timestamp());
        assert_eq!(list[1]["credential"], rest_credential("s3cret", username));
        // The value coturn computes for this pair (RFC 2104 HMAC-SHA1).
        assert_eq!(
            rest_credential("key", "The quick brown fox jumps over the lazy dog"),
            "3nybhbi3iqa8ino29wqQcBydtNk="
        );
    }
}
