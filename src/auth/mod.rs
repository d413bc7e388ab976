//! Sign-in: passwords, CAPTCHA, rate limits, sessions and CSRF, OIDC.

pub mod account_links;
pub mod authority;
pub mod captcha;
pub mod limiter;
pub mod oidc;
pub mod password;
pub mod recovery_codes;
pub mod sealed;
pub mod session;
pub mod signin;
pub mod tokens;
pub mod totp;
pub mod validate;

/// The built-in permission names that guard endpoints and socket messages.
pub mod perm {
    pub const ADMIN_USERS: &str = "admin.users";
    pub const ADMIN_ROLES: &str = "admin.roles";
    pub const ADMIN_LOGS: &str = "admin.logs";
    pub const ADMIN_MESSAGES: &str = "admin.messages";
    pub const SESSIONS_VIEW: &str = "sessions.view";
    pub const SESSIONS_KICK: &str = "sessions.kick";
    pub const SESSIONS_MOVE: &str = "sessions.move";
    pub const BANS_MANAGE: &str = "bans.manage";
    pub const ROOMS_CREATE: &str = "rooms.create";
    pub const VOICE_MUTE: &str = "voice.mute";
    pub const VOICE_DEAFEN: &str = "voice.deafen";
    pub const FILES_UPLOAD: &str = "files.upload";
}
