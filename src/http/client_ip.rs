//! Who is asking: the client IP (from the socket, or from X-Forwarded-For
//! only when the socket's peer is a trusted proxy) and the user agent.

use std::future::{ready, Ready};
use std::net::IpAddr;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};

use crate::error::ApiError;
use crate::state::AppState;

/// Longer user agents are cut: they are stored and shown, not parsed.
const USER_AGENT_MAX_CHARS: usize = 256;

#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

impl std::fmt::Display for ClientIp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

pub fn client_ip(req: &HttpRequest, state: &AppState) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    if !state.config.is_trusted_proxy(peer) {
        return Some(peer);
    }
    // Walk the chain from the nearest hop; the first untrusted hop is the client.
    let forwarded: Vec<IpAddr> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|hop| hop.trim().parse().ok())
        .collect();
    Some(
        forwarded
            .iter()
            .rev()
            .find(|ip| !state.config.is_trusted_proxy(**ip))
            .or(forwarded.first())
            .copied()
            .unwrap_or(peer),
    )
}

impl FromRequest for ClientIp {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let ip = req
            .app_data::<web::Data<AppState>>()
            .and_then(|state| client_ip(req, state))
            .map(ClientIp)
            .ok_or_else(|| ApiError::internal("no peer address"));
        ready(ip)
    }
}

#[derive(Debug, Clone)]
pub struct UserAgent(pub String);

/// The request's User-Agent as stored: cut to 256 characters, empty when
/// missing or not text.
pub fn user_agent(req: &HttpRequest) -> String {
    req.headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .chars()
        .take(USER_AGENT_MAX_CHARS)
        .collect()
}

impl FromRequest for UserAgent {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(UserAgent(user_agent(req))))
    }
}
