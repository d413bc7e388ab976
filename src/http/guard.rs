//! Middleware every request passes: security headers on every response, and
//! the CSRF and Origin checks on state-changing requests, whatever their path.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method};
use actix_web::middleware::{DefaultHeaders, Next};
use actix_web::{web, Error};

use crate::auth::session::COOKIE;
use crate::auth::tokens::{constant_time_eq, csrf_token};
use crate::error::ApiError;
use crate::state::AppState;

pub const CSRF_HEADER: &str = "x-csrf-token";

/// These create the session, or act by a one-time link that may be opened
/// in any browser (signed in as someone else, or not at all), so there is
/// no token to send; the Origin check still applies to them (login CSRF).
/// Compared with the path as the router reads it (see [`routed_path`]); add
/// an endpoint here to exempt it.
const CSRF_EXEMPT: &[&str] = &[
    "/api/auth/login",
    "/api/auth/register",
    "/api/auth/guest",
    "/api/auth/verify-email",
    "/api/auth/password-reset",
    "/api/auth/password-reset/confirm",
];

/// Security headers for every response. The CSP allows only this origin's
/// scripts, styles and sockets: no inline script or style anywhere.
pub fn security_headers(origin: &str) -> DefaultHeaders {
    let ws_origin = origin.replacen("http", "ws", 1);
    let csp = format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
         media-src 'self' blob:; connect-src 'self' {ws_origin}; font-src 'self'; object-src 'none'; \
         base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    );
    DefaultHeaders::new()
        .add((header::CONTENT_SECURITY_POLICY, csp))
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .add((header::REFERRER_POLICY, "same-origin"))
        .add((header::X_FRAME_OPTIONS, "DENY"))
        .add((
            "Permissions-Policy",
            "microphone=(self), camera=(), geolocation=(), payment=()",
        ))
        .add(("Cross-Origin-Opener-Policy", "same-origin"))
}

/// Refuses a state-changing request from a foreign origin, or one made with
/// a session cookie but without that session's CSRF token.
pub async fn csrf(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    if is_state_changing(req.method()) {
        if let Some(state) = req.app_data::<web::Data<AppState>>() {
            if let Err(refusal) = check(&req, state) {
                return Ok(req.error_response(refusal).map_into_right_body());
            }
        }
    }
    Ok(next.call(req).await?.map_into_left_body())
}

/// The path the router matches: percent-decoded, but for `%2F`, `%25` and
/// `%2B`, which it keeps encoded. The raw `req.path()` would let
/// `/%61pi/auth/login` look unexempt and `/%61pi/me/username` look foreign
/// while the router serves them as the real thing.
fn routed_path(req: &ServiceRequest) -> &str {
    req.match_info().as_str()
}

fn is_state_changing(method: &Method) -> bool {
    matches!(*method, Method::POST | Method::PUT | Method::PATCH | Method::DELETE)
}

fn check(req: &ServiceRequest, state: &AppState) -> Result<(), ApiError> {
    let headers = req.headers();
    match headers.get(header::ORIGIN) {
        Some(origin) if origin.as_bytes() != state.origin.as_bytes() => return Err(ApiError::Csrf),
        Some(_) => {}
        // Browsers that omit Origin still say where a request came from.
        None if headers.get("sec-fetch-site").is_some_and(|v| v == "cross-site") => return Err(ApiError::Csrf),
        None => {}
    }
    let Some(session) = req.cookie(COOKIE) else {
        return Ok(());
    };
    if CSRF_EXEMPT.contains(&routed_path(req)) {
        return Ok(());
    }
    let sent = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
    if constant_time_eq(sent, &csrf_token(state.secret.expose(), session.value())) {
        Ok(())
    } else {
        Err(ApiError::Csrf)
    }
}
