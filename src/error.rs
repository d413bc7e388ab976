//! The API's error type and its one mapping to HTTP. Clients see the
//! contract's stable `code` and a short message; the underlying cause of an
//! internal error goes to the log only.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use crate::db::DbError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("sign in first")]
    Unauthenticated,
    #[error("wrong login or password")]
    InvalidCredentials,
    #[error("a two-factor code is required")]
    TotpRequired,
    #[error("the CAPTCHA answer is wrong or has expired")]
    CaptchaFailed,
    #[error("missing or invalid CSRF token or Origin")]
    Csrf,
    #[error("you do not have permission to do that")]
    Forbidden,
    #[error("banned: {reason}")]
    Banned { reason: String },
    #[error("guest access is disabled")]
    GuestsDisabled,
    #[error("this server has reached its limit of registered users")]
    UserLimit,
    #[error("not found")]
    NotFound,
    /// SMTP_URL is not set: nothing can be mailed.
    #[error("this server does not send mail")]
    MailDisabled,
    /// A one-time link that is wrong, used or expired.
    #[error("this link is not valid: it may have been used already or have expired")]
    InvalidToken,
    #[error("this server signs in through single sign-on only")]
    PasswordLoginDisabled,
    #[error("this server does not take new accounts without an invitation")]
    RegistrationClosed,
    #[error("addresses of that domain may not sign up on this server")]
    EmailDomainNotAllowed,
    /// REQUIRE_VERIFIED_EMAIL: the account's address is not confirmed yet.
    #[error("confirm your email address first: follow the link in the mail we sent")]
    EmailUnverified,
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    TooLarge(String),
    /// The user's files, or everyone's, would pass their quota.
    #[error("{0}")]
    QuotaExceeded(String),
    #[error("{0}")]
    UnsupportedType(String),
    #[error("too many attempts; try again in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    /// The disk that holds files is too full to take this one.
    #[error("the server is short of disk space for files; try again later or ask an administrator")]
    InsufficientStorage,
    /// Too much work queued server-wide (bcrypt slots): not the client's fault.
    #[error("the server is busy; try again in {retry_after_secs} s")]
    Busy { retry_after_secs: u64 },
    /// The cause is logged when the response is built, never sent.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::BadRequest(message.into())
    }

    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Self::Internal(cause.to_string())
    }

    /// The contract's stable error code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad_request",
            Self::Unauthenticated => "unauthenticated",
            Self::InvalidCredentials => "invalid_credentials",
            Self::TotpRequired => "totp_required",
            Self::CaptchaFailed => "captcha_failed",
            Self::Csrf => "csrf",
            Self::Forbidden => "forbidden",
            Self::Banned { .. } => "banned",
            Self::GuestsDisabled => "guests_disabled",
            Self::UserLimit => "user_limit",
            Self::NotFound => "not_found",
            Self::MailDisabled => "mail_disabled",
            Self::InvalidToken => "invalid_token",
            Self::PasswordLoginDisabled => "password_login_disabled",
            Self::RegistrationClosed => "registration_closed",
            Self::EmailDomainNotAllowed => "email_domain_not_allowed",
            Self::EmailUnverified => "email_unverified",
            Self::Conflict(_) => "conflict",
            Self::TooLarge(_) => "too_large",
            Self::QuotaExceeded(_) => "quota_exceeded",
            Self::UnsupportedType(_) => "unsupported_type",
            Self::RateLimited { .. } => "rate_limited",
            Self::InsufficientStorage => "insufficient_storage",
            Self::Busy { .. } => "busy",
            Self::Internal(_) => "internal",
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) | Self::CaptchaFailed | Self::MailDisabled | Self::InvalidToken => {
                StatusCode::BAD_REQUEST
            }
            Self::Unauthenticated | Self::InvalidCredentials | Self::TotpRequired => StatusCode::UNAUTHORIZED,
            Self::Csrf
            | Self::Forbidden
            | Self::Banned { .. }
            | Self::GuestsDisabled
            | Self::UserLimit
            | Self::PasswordLoginDisabled
            | Self::RegistrationClosed
            | Self::EmailDomainNotAllowed
            | Self::EmailUnverified => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::TooLarge(_) | Self::QuotaExceeded(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::InsufficientStorage => StatusCode::INSUFFICIENT_STORAGE,
            Self::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let Self::Internal(cause) = self {
            tracing::error!(%cause, "internal error");
        }
        let mut response = HttpResponse::build(self.status_code());
        if let Self::RateLimited { retry_after_secs } | Self::Busy { retry_after_secs } = self {
            response.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
        }
        response.json(json!({"error": {"code": self.code(), "message": self.to_string()}}))
    }
}

impl From<DbError> for ApiError {
    fn from(err: DbError) -> Self {
        match err {
            DbError::NotFound => Self::NotFound,
            DbError::Conflict(what) => Self::Conflict(what),
            DbError::Invalid(what) => Self::BadRequest(what),
            DbError::UserLimit => Self::UserLimit,
            DbError::Sqlite(_) | DbError::Pool(_) | DbError::Schema(_) | DbError::Blocking(_) => Self::internal(err),
        }
    }
}

impl From<actix_web::error::BlockingError> for ApiError {
    fn from(err: actix_web::error::BlockingError) -> Self {
        Self::internal(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody;

    #[test]
    fn internal_errors_hide_their_cause() {
        let response = ApiError::internal("disk on fire at /secret/path").error_response();
        assert_eq!(response.status(), 500);
        let body = response.into_body().try_into_bytes().unwrap();
        let text = String::from_utf8_lossy(&body);
        assert!(!text.contains("secret"), "{text}");
        assert!(text.contains("\"internal\""));
    }

    #[test]
    fn rate_limited_carries_retry_after() {
        let response = ApiError::RateLimited { retry_after_secs: 42 }.error_response();
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers().get(header::RETRY_AFTER).unwrap(), "42");
    }
}
