//! HTTP: one module per area of routes, composed in [`configure`]; the
//! extractor settings that turn bad input into the contract's 4xx errors;
//! the middleware that every response passes through.

pub mod account;
pub mod admin;
pub mod auth;
pub mod avatars;
pub mod client_ip;
pub mod files;
pub mod guard;
pub mod health;
pub mod limits;
pub mod me;
pub mod me_sessions;
pub mod pages;
pub mod rooms;
pub mod totp;
pub mod upgrade;
pub mod ws;

use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::{web, HttpRequest};

use crate::error::ApiError;

/// JSON bodies are small: the largest legitimate one is a chat-sized text.
const JSON_LIMIT_BYTES: usize = 64 * 1024;

/// The whole route table.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(json_config())
        .app_data(query_config())
        .app_data(path_config());
    auth::configure(cfg);
    account::configure(cfg);
    me::configure(cfg);
    me_sessions::configure(cfg);
    avatars::configure(cfg);
    totp::configure(cfg);
    rooms::configure(cfg);
    files::configure(cfg);
    ws::configure(cfg);
    admin::configure(cfg);
    health::configure(cfg);
    pages::configure(cfg);
}

fn json_config() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(JSON_LIMIT_BYTES)
        .error_handler(|err, _req: &HttpRequest| json_error(err).into())
}

fn json_error(err: JsonPayloadError) -> ApiError {
    match err {
        JsonPayloadError::OverflowKnownLength { .. } | JsonPayloadError::Overflow { .. } => {
            ApiError::TooLarge(format!("a JSON body is at most {} KiB", JSON_LIMIT_BYTES / 1024))
        }
        JsonPayloadError::ContentType => ApiError::UnsupportedType("send the body as application/json".into()),
        JsonPayloadError::Deserialize(e) => ApiError::bad_request(format!("invalid JSON body: {e}")),
        other => ApiError::bad_request(format!("invalid JSON body: {other}")),
    }
}

fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err: QueryPayloadError, _req: &HttpRequest| {
        ApiError::bad_request(format!("invalid query: {err}")).into()
    })
}

fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|err: PathError, _req: &HttpRequest| {
        ApiError::bad_request(format!("invalid path: {err}")).into()
    })
}

/// Anything no route matched.
pub async fn not_found() -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::NotFound)
}
