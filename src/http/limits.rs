//! The answer to a request that a limit refused (src/auth/limiter.rs):
//! `429 rate_limited` with Retry-After, and a `rate_limited` audit entry that
//! says what was limited. Only a key's first refusal in a minute is audited,
//! so a flood of refused requests cannot flood the audit log.

use serde_json::json;

use super::client_ip::ClientIp;
use crate::auth::limiter::{ip_key, Refused};
use crate::db::{self, audit::Event};
use crate::error::ApiError;
use crate::ids::UserId;
use crate::state::AppState;

/// Who was refused, as far as the request says.
pub enum Actor<'a> {
    Unknown,
    /// A login or username as typed.
    Named(&'a str),
    User(UserId, &'a str),
}

/// The limiter key of the client's address (its /64 for IPv6).
pub fn ip(ip: ClientIp) -> String {
    format!("ip:{}", ip_key(ip.0))
}

/// The `RateLimited` error for `refused`, after auditing it.
pub async fn rate_limited(
    state: &AppState,
    refused: Refused,
    what: &'static str,
    ip: ClientIp,
    actor: Actor<'_>,
) -> ApiError {
    let retry_after_secs = refused.retry_after_secs;
    if refused.first {
        let event = Event::new("rate_limited")
            .ip(&ip.to_string())
            .details(json!({"what": what, "retry_after": retry_after_secs}));
        let event = match actor {
            Actor::Unknown => event,
            Actor::Named(name) => event.by_name(name),
            Actor::User(id, name) => event.by(id, name),
        };
        if let Err(e) = db::run(&state.pool, move |conn| event.record(conn)).await {
            return e.into();
        }
    }
    ApiError::RateLimited { retry_after_secs }
}
