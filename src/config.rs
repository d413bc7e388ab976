//! The one configuration struct, loaded in layers: built-in defaults, then an
//! optional TOML file, then the environment (a `.env` file included), then
//! the command line. Every key is documented in the README.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;
use url::Url;

/// The unit of the `*_MB` keys.
const MB: u64 = 1024 * 1024;

/// Google's issuer: the default OIDC provider.
const GOOGLE_ISSUER: &str = "https://accounts.google.com";

/// Every key the server understands. A TOML file may set any of them (in
/// upper or lower case); the environment is read for exactly these names.
const KEYS: &[&str] = &[
    "BIND",
    "PUBLIC_URL",
    "DATA_DIR",
    "DATABASE_PATH",
    "SECRET_KEY",
    "ADMIN_EMAIL",
    "MAX_USERS",
    "ALLOW_GUESTS",
    "CAPTCHA",
    "LOGIN_RATE_PER_MIN",
    "GUEST_RATE_PER_MIN",
    "REGISTER_RATE_PER_MIN",
    "CAPTCHA_RATE_PER_MIN",
    "OIDC_RATE_PER_MIN",
    "PASSWORD_CHANGE_RATE_PER_MIN",
    "BCRYPT_COST",
    "OIDC_ISSUER",
    "OIDC_NAME",
    "OIDC_CLIENT_ID",
    "OIDC_CLIENT_SECRET",
    "GOOGLE_CLIENT_ID",
    "GOOGLE_CLIENT_SECRET",
    "SESSION_IDLE_MINUTES",
    "SESSION_MAX_HOURS",
    "TRUSTED_PROXIES",
    "CHAT_RATE_PER_SEC",
    "CHAT_BURST",
    "STUN_URLS",
    "TURN_URLS",
    "TURN_SECRET",
    "TURN_USERNAME",
    "TURN_CREDENTIAL",
    "TURN_TTL_SECONDS",
    "VOICE_MODE",
    "SFU_UDP_PORT",
    "SFU_PUBLIC_IP",
    "MESH_LIMIT",
    "ICE_TRANSPORT_POLICY",
    "MAX_UPLOAD_MB",
    "UPLOAD_RATE_PER_MIN",
    "UPLOAD_QUOTA_MB",
    "UPLOAD_TOTAL_MB",
    "UPLOAD_DISK_RESERVE_MB",
    "WS_MAX_PER_USER",
    "WS_MAX_PER_IP",
    "WS_OUTBOX_KB",
    "LOG_FORMAT",
    "WEB_DIR",
    "METRICS_TOKEN",
    "INSTANCE_NAME",
    "SMTP_URL",
    "MAIL_FROM",
    "MAIL_RATE_PER_MIN",
    "REQUIRE_VERIFIED_EMAIL",
    "PASSWORD_LOGIN",
    "REGISTRATION",
    "ALLOWED_EMAIL_DOMAINS",
    "MESSAGE_RETENTION_DAYS",
    "UPLOAD_RETENTION_DAYS",
    "AUDIT_RETENTION_DAYS",
];

/// A value that must never reach a log line or a response.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct OidcConfig {
    /// Exactly as configured: OIDC compares issuers as strings, so a
    /// trailing slash added by URL normalisation would fail discovery.
    pub issuer: String,
    /// The provider's name on the sign-in button.
    pub name: String,
    pub client_id: String,
    pub client_secret: Secret,
}

#[derive(Debug, Clone)]
pub struct TurnConfig {
    pub urls: Vec<String>,
    pub auth: TurnAuth,
}

#[derive(Debug, Clone)]
pub enum TurnAuth {
    /// coturn's `use-auth-secret`: time-limited credentials derived per user.
    SharedSecret {
        secret: Secret,
        ttl: Duration,
    },
    Static {
        username: String,
        credential: Secret,
    },
    None,
}

/// How clients carry voice (`VOICE_MODE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoiceMode {
    /// Peer-to-peer first; the SFU runs for members the mesh cannot carry.
    Auto,
    /// Peer-to-peer only: no SFU starts.
    P2p,
    /// Every member's voice goes through the SFU.
    Sfu,
}

impl VoiceMode {
    pub fn as_str(self) -> &'static str {
        match self {
            VoiceMode::Auto => "auto",
            VoiceMode::P2p => "p2p",
            VoiceMode::Sfu => "sfu",
        }
    }

    /// Whether this mode starts the SFU.
    pub fn has_sfu(self) -> bool {
        self != VoiceMode::P2p
    }
}

/// Which ICE candidates browsers may use: `RTCConfiguration.iceTransportPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IceTransportPolicy {
    /// Direct paths when they work, TURN when they do not.
    All,
    /// TURN only: every call goes through the relay, so members never learn
    /// each other's IP addresses.
    Relay,
}

/// How the mailer reaches its SMTP server (`SMTP_URL`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    /// User name and password for SMTP AUTH.
    pub credentials: Option<(String, Secret)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// `smtp://host[:port]`: no TLS (a relay on the same host or network).
    None,
    /// `smtp://host[:port]?tls=starttls`: STARTTLS, required.
    StartTls,
    /// `smtps://host[:port]`: TLS from the first byte.
    Implicit,
}

/// Who may create an account (`REGISTRATION`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    Open,
    /// Only with an invite an admin made.
    Invite,
    /// Only admins (and the command line) create accounts.
    Closed,
}

impl Registration {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Invite => "invite",
            Self::Closed => "closed",
        }
    }
}

/// How long stored rows are kept before the janitor deletes them; `None`
/// keeps them forever.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    pub messages: Option<Duration>,
    pub uploads: Option<Duration>,
    pub audit: Option<Duration>,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub bind: SocketAddr,
    /// Where browsers reach the server; `None` means "http://" + the bound address.
    pub public_url: Option<Url>,
    pub data_dir: PathBuf,
    pub database_path: PathBuf,
    /// As configured; `resolve_secret_key` supplies the stored one otherwise.
    pub secret_key: Option<Secret>,
    pub admin_email: Option<String>,
    pub max_users: u32,
    pub allow_guests: bool,
    pub captcha: bool,
    pub login_rate_per_min: u32,
    pub guest_rate_per_min: u32,
    /// Per client IP per minute, each 0 for no limit: registration attempts,
    /// CAPTCHA challenges issued, OIDC sign-ins started.
    pub register_rate_per_min: u32,
    pub captcha_rate_per_min: u32,
    pub oidc_rate_per_min: u32,
    /// Wrong current passwords per minute, per user and per client IP.
    pub password_change_rate_per_min: u32,
    pub bcrypt_cost: u32,
    pub oidc: Option<OidcConfig>,
    pub session_idle: Duration,
    pub session_max: Duration,
    pub trusted_proxies: Vec<IpNet>,
    pub chat_rate_per_sec: u32,
    pub chat_burst: u32,
    pub stun_urls: Vec<String>,
    pub turn: Option<TurnConfig>,
    pub voice_mode: VoiceMode,
    /// The SFU's one UDP port; 0 takes any free port (tests).
    pub sfu_udp_port: u16,
    /// The address announced to browsers in the SFU's ICE candidate.
    pub sfu_public_ip: Option<IpAddr>,
    /// Members in voice above which a room's voice moves to the SFU (auto mode).
    pub mesh_limit: u32,
    pub ice_transport_policy: IceTransportPolicy,
    pub max_upload_bytes: u64,
    /// Uploads per user per sliding minute; 0 is no limit.
    pub upload_rate_per_min: u32,
    /// Bytes of files one user may store, and all users together; 0 is no limit.
    pub upload_quota_bytes: u64,
    pub upload_total_bytes: u64,
    /// Free space on the uploads' disk that uploads never use.
    pub upload_disk_reserve_bytes: u64,
    /// Open WebSockets allowed per user and per client IP; 0 is no limit.
    pub ws_max_per_user: u32,
    pub ws_max_per_ip: u32,
    /// Bytes that may wait for one WebSocket before it is closed as too slow.
    pub ws_outbox_bytes: usize,
    pub log_format: LogFormat,
    /// Serve the web client from this folder instead of the embedded copy.
    pub web_dir: Option<PathBuf>,
    /// When set, `/metrics` answers only `Authorization: Bearer <token>`.
    pub metrics_token: Option<Secret>,
    /// The instance's name, in mail subjects and the default sender.
    pub instance_name: String,
    /// `None`: no mail at all.
    pub smtp: Option<SmtpConfig>,
    /// The From header as configured; `None` for the default made from the
    /// public URL's host (see `mail::sender`).
    pub mail_from: Option<String>,
    /// Mails one client may cause per minute: counted per IP, per account
    /// and per address; 0 is no limit.
    pub mail_rate_per_min: u32,
    /// Unverified password accounts stay out of rooms.
    pub require_verified_email: bool,
    /// False: sign-in by OIDC only.
    pub password_login: bool,
    pub registration: Registration,
    /// Lower case; empty allows every domain.
    pub allowed_email_domains: Vec<String>,
    pub retention: Retention,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path} is not valid TOML: {source}")]
    Toml {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("unknown configuration key {0:?} (see the README for the list)")]
    UnknownKey(String),
    #[error("configuration key {key} has an invalid value {value:?}: {reason}")]
    Invalid {
        key: &'static str,
        value: String,
        reason: String,
    },
    #[error("{0}")]
    Missing(String),
    #[error("cannot use the data directory {path}: {source}")]
    DataDir { path: PathBuf, source: std::io::Error },
}

/// Raw `KEY -> value` settings, merged from every layer before parsing.
#[derive(Debug, Default)]
pub struct Settings(BTreeMap<&'static str, String>);

impl Settings {
    /// Defaults, then the TOML file, then the environment.
    pub fn load(config_file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut settings = Settings::default();
        if let Some(path) = config_file {
            settings.merge_toml(path)?;
        }
        settings.merge_env(|key| std::env::var(key).ok());
        Ok(settings)
    }

    pub fn set(&mut self, key: &str, value: impl Into<String>) -> Result<(), ConfigError> {
        let key = known_key(key)?;
        self.0.insert(key, value.into());
        Ok(())
    }

    fn merge_toml(&mut self, path: &Path) -> Result<(), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        self.merge_toml_text(&text, path)
    }

    /// The settings in a TOML file's text; `path` names the file in errors.
    pub fn merge_toml_text(&mut self, text: &str, path: &Path) -> Result<(), ConfigError> {
        let table: toml::Table = toml::from_str(text).map_err(|source| ConfigError::Toml {
            path: path.to_owned(),
            source: Box::new(source),
        })?;
        for (key, value) in table {
            let value = match value {
                toml::Value::String(s) => s,
                toml::Value::Array(items) => items
                    .iter()
                    .map(|item| match item {
                        toml::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(","),
                other => other.to_string(),
            };
            self.set(&key, value)?;
        }
        Ok(())
    }

    fn merge_env(&mut self, lookup: impl Fn(&str) -> Option<String>) {
        for key in KEYS {
            if let Some(value) = lookup(key) {
                self.0.insert(key, value);
            }
        }
    }

    fn get(&self, key: &'static str) -> Option<&str> {
        self.0.get(key).map(|s| s.trim()).filter(|s| !s.is_empty())
    }

    fn parse_or<T>(&self, key: &'static str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        match self.get(key) {
            None => Ok(default),
            Some(raw) => raw.parse().map_err(|e: T::Err| invalid(key, raw, e)),
        }
    }

    /// A count of `unit`s, as the count times `unit`: refused when the
    /// product does not fit (it would wrap to a tiny limit).
    fn scaled(&self, key: &'static str, default: u64, unit: u64) -> Result<u64, ConfigError> {
        let count = self.parse_or(key, default)?;
        count
            .checked_mul(unit)
            .ok_or_else(|| invalid(key, &count.to_string(), "too large"))
    }

    fn flag(&self, key: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.get(key).map(str::to_ascii_lowercase).as_deref() {
            None => Ok(default),
            Some("1" | "true" | "yes" | "on") => Ok(true),
            Some("0" | "false" | "no" | "off") => Ok(false),
            Some(other) => Err(invalid(key, other, "expected true or false")),
        }
    }

    fn list(&self, key: &'static str) -> Vec<String> {
        self.get(key)
            .map(|raw| {
                raw.split([',', ' '])
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn known_key(key: &str) -> Result<&'static str, ConfigError> {
    let upper = key.to_ascii_uppercase();
    KEYS.iter()
        .find(|k| **k == upper)
        .copied()
        .ok_or_else(|| ConfigError::UnknownKey(key.to_owned()))
}

fn invalid(key: &'static str, value: &str, reason: impl fmt::Display) -> ConfigError {
    ConfigError::Invalid {
        key,
        value: value.to_owned(),
        reason: reason.to_string(),
    }
}

impl Config {
    pub fn from_settings(s: &Settings) -> Result<Self, ConfigError> {
        let data_dir: Option<PathBuf> = s.get("DATA_DIR").map(PathBuf::from);
        let database_path = match (s.get("DATABASE_PATH"), &data_dir) {
            (Some(path), _) => PathBuf::from(path),
            (None, Some(dir)) => dir.join("switchboard.db"),
            (None, None) => PathBuf::from("data/switchboard.db"),
        };
        // Without DATA_DIR, files that belong beside the database live there.
        let data_dir = data_dir.unwrap_or_else(|| {
            database_path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("."))
        });
        let bcrypt_cost = s.parse_or("BCRYPT_COST", 12u32)?;
        if !(4..=31).contains(&bcrypt_cost) {
            return Err(invalid("BCRYPT_COST", &bcrypt_cost.to_string(), "must be 4 to 31"));
        }
        let outbox_kb = s.parse_or("WS_OUTBOX_KB", 512usize)?;
        if !(16..=1 << 20).contains(&outbox_kb) {
            return Err(invalid("WS_OUTBOX_KB", &outbox_kb.to_string(), "must be 16 to 1048576"));
        }
        let public_url = match s.get("PUBLIC_URL") {
            None => None,
            Some(raw) => Some(parse_public_url(raw)?),
        };
        let turn = turn_config(s)?;
        let ice_transport_policy = ice_transport_policy(s, turn.is_some())?;
        Config {
            bind: s.parse_or("BIND", SocketAddr::from(([127, 0, 0, 1], 8080)))?,
            public_url,
            data_dir,
            database_path,
            secret_key: s.get("SECRET_KEY").map(Secret::new),
            admin_email: s.get("ADMIN_EMAIL").map(normalise_email),
            max_users: s.parse_or("MAX_USERS", 50)?,
            allow_guests: s.flag("ALLOW_GUESTS", false)?,
            captcha: s.flag("CAPTCHA", true)?,
            login_rate_per_min: s.parse_or("LOGIN_RATE_PER_MIN", 5)?,
            guest_rate_per_min: s.parse_or("GUEST_RATE_PER_MIN", 10)?,
            register_rate_per_min: s.parse_or("REGISTER_RATE_PER_MIN", 10)?,
            captcha_rate_per_min: s.parse_or("CAPTCHA_RATE_PER_MIN", 60)?,
            oidc_rate_per_min: s.parse_or("OIDC_RATE_PER_MIN", 20)?,
            password_change_rate_per_min: s.parse_or("PASSWORD_CHANGE_RATE_PER_MIN", 5)?,
            bcrypt_cost,
            oidc: oidc_config(s)?,
            session_idle: Duration::from_secs(s.scaled("SESSION_IDLE_MINUTES", 30, 60)?),
            session_max: Duration::from_secs(s.scaled("SESSION_MAX_HOURS", 12, 3600)?),
            trusted_proxies: trusted_proxies(s)?,
            chat_rate_per_sec: s.parse_or("CHAT_RATE_PER_SEC", 5)?.max(1),
            chat_burst: s.parse_or("CHAT_BURST", 20)?.max(1),
            stun_urls: s.list("STUN_URLS"),
            turn,
            ice_transport_policy,
            voice_mode: voice_mode(s)?,
            sfu_udp_port: s.parse_or("SFU_UDP_PORT", 7882)?,
            sfu_public_ip: s
                .get("SFU_PUBLIC_IP")
                .map(|raw| raw.parse().map_err(|e| invalid("SFU_PUBLIC_IP", raw, e)))
                .transpose()?,
            mesh_limit: s.parse_or("MESH_LIMIT", 6u32)?.max(2),
            max_upload_bytes: s.scaled("MAX_UPLOAD_MB", 50, MB)?,
            upload_rate_per_min: s.parse_or("UPLOAD_RATE_PER_MIN", 10)?,
            upload_quota_bytes: s.parse_or("UPLOAD_QUOTA_MB", 500u64)?.saturating_mul(MB),
            upload_total_bytes: s.parse_or("UPLOAD_TOTAL_MB", 10_240u64)?.saturating_mul(MB),
            upload_disk_reserve_bytes: s.parse_or("UPLOAD_DISK_RESERVE_MB", 100u64)?.saturating_mul(MB),
            ws_max_per_user: s.parse_or("WS_MAX_PER_USER", 20)?,
            ws_max_per_ip: s.parse_or("WS_MAX_PER_IP", 0)?,
            ws_outbox_bytes: outbox_kb * 1024,
            log_format: match s.get("LOG_FORMAT").map(str::to_ascii_lowercase).as_deref() {
                None | Some("text") => LogFormat::Text,
                Some("json") => LogFormat::Json,
                Some(other) => return Err(invalid("LOG_FORMAT", other, "expected text or json")),
            },
            web_dir: s.get("WEB_DIR").map(PathBuf::from),
            metrics_token: s.get("METRICS_TOKEN").map(Secret::new),
            instance_name: instance_name(s)?,
            smtp: s.get("SMTP_URL").map(parse_smtp_url).transpose()?,
            mail_from: s.get("MAIL_FROM").map(str::to_owned),
            mail_rate_per_min: s.parse_or("MAIL_RATE_PER_MIN", 3)?,
            require_verified_email: s.flag("REQUIRE_VERIFIED_EMAIL", false)?,
            password_login: s.flag("PASSWORD_LOGIN", true)?,
            registration: match s.get("REGISTRATION").map(str::to_ascii_lowercase).as_deref() {
                None | Some("open") => Registration::Open,
                Some("invite") => Registration::Invite,
                Some("closed") => Registration::Closed,
                Some(other) => return Err(invalid("REGISTRATION", other, "expected open, invite or closed")),
            },
            allowed_email_domains: s
                .list("ALLOWED_EMAIL_DOMAINS")
                .iter()
                .map(|d| d.trim_start_matches('@').to_ascii_lowercase())
                .collect(),
            retention: Retention {
                messages: retention_days(s, "MESSAGE_RETENTION_DAYS")?,
                uploads: retention_days(s, "UPLOAD_RETENTION_DAYS")?,
                audit: retention_days(s, "AUDIT_RETENTION_DAYS")?,
            },
        }
        .checked()
    }

    /// Refuses combinations that would leave people unable to sign in.
    fn checked(self) -> Result<Self, ConfigError> {
        if !self.password_login && self.oidc.is_none() {
            return Err(ConfigError::Missing(
                "PASSWORD_LOGIN is false but OIDC is not configured: set OIDC_CLIENT_ID and \
                 OIDC_CLIENT_SECRET, or leave password sign-in on"
                    .into(),
            ));
        }
        if self.require_verified_email && self.password_login && self.smtp.is_none() {
            return Err(ConfigError::Missing(
                "REQUIRE_VERIFIED_EMAIL needs mail to verify addresses: set SMTP_URL \
                 (or turn PASSWORD_LOGIN off, so every account comes verified from OIDC)"
                    .into(),
            ));
        }
        Ok(self)
    }

    /// True when `email`'s domain may register or sign in (ALLOWED_EMAIL_DOMAINS).
    pub fn email_domain_allowed(&self, email: &str) -> bool {
        if self.allowed_email_domains.is_empty() {
            return true;
        }
        let domain = email.rsplit_once('@').map(|(_, d)| d.to_ascii_lowercase());
        domain.is_some_and(|d| self.allowed_email_domains.contains(&d))
    }

    /// The public origin (`scheme://host[:port]`) that browsers use, for the
    /// Origin checks and the CSP. `bound` is the address actually listened on.
    #[expect(
        clippy::expect_used,
        reason = "an http URL built from an IP address and port always parses"
    )]
    pub fn public_base(&self, bound: SocketAddr) -> Url {
        self.public_url.clone().unwrap_or_else(|| {
            let host = match bound.ip() {
                IpAddr::V4(ip) if ip.is_unspecified() => "127.0.0.1".to_owned(),
                IpAddr::V6(ip) if ip.is_unspecified() => "[::1]".to_owned(),
                IpAddr::V6(ip) => format!("[{ip}]"),
                IpAddr::V4(ip) => ip.to_string(),
            };
            Url::parse(&format!("http://{host}:{}/", bound.port())).expect("valid URL")
        })
    }

    /// Loads SECRET_KEY from the data directory, or creates and stores one
    /// there, so that sessions survive a restart even with no configuration.
    pub fn resolve_secret_key(&self) -> Result<Secret, ConfigError> {
        if let Some(key) = &self.secret_key {
            return Ok(key.clone());
        }
        let path = self.data_dir.join("secret_key");
        let data_dir_error = |source| ConfigError::DataDir {
            path: self.data_dir.clone(),
            source,
        };
        let key = match std::fs::read_to_string(&path) {
            Ok(existing) if !existing.trim().is_empty() => existing.trim().to_owned(),
            _ => {
                let fresh = crate::auth::tokens::random_token(32);
                write_private_file(&path, &fresh).map_err(data_dir_error)?;
                tracing::warn!(
                    path = %path.display(),
                    "SECRET_KEY is not set: generated one and stored it in the data directory"
                );
                fresh
            }
        };
        Ok(Secret::new(key))
    }

    /// Where uploaded files are stored (`DATA_DIR/uploads`).
    pub fn uploads_dir(&self) -> PathBuf {
        self.data_dir.join("uploads")
    }

    pub fn is_https(&self) -> bool {
        self.public_url.as_ref().is_some_and(|u| u.scheme() == "https")
    }

    pub fn is_trusted_proxy(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }
}

fn parse_public_url(raw: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(raw).map_err(|e| invalid("PUBLIC_URL", raw, e))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(invalid("PUBLIC_URL", raw, "expected an http or https URL"));
    }
    Ok(url)
}

/// The longest INSTANCE_NAME: it goes in every mail subject.
const INSTANCE_NAME_MAX_CHARS: usize = 64;

fn instance_name(s: &Settings) -> Result<String, ConfigError> {
    let name = s.get("INSTANCE_NAME").unwrap_or("Switchboard");
    if name.chars().count() > INSTANCE_NAME_MAX_CHARS || name.chars().any(char::is_control) {
        return Err(invalid(
            "INSTANCE_NAME",
            name,
            "at most 64 characters, no control characters",
        ));
    }
    Ok(name.to_owned())
}

/// `smtp://[user:pass@]host[:port]` (no TLS; port 25), the same with
/// `?tls=starttls` (STARTTLS required; port 587), or
/// `smtps://[user:pass@]host[:port]` (TLS from the start; port 465). The
/// user name and password are percent-decoded. An invalid URL is reported
/// without its password.
fn parse_smtp_url(raw: &str) -> Result<SmtpConfig, ConfigError> {
    let refuse = |reason: &str| invalid("SMTP_URL", &redact_password(raw), reason);
    let url = Url::parse(raw).map_err(|e| refuse(&e.to_string()))?;
    let host = match url.host() {
        Some(url::Host::Domain(name)) if !name.is_empty() => name.to_owned(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        _ => return Err(refuse("the URL names no host")),
    };
    let tls_param = url
        .query_pairs()
        .find(|(k, _)| k == "tls")
        .map(|(_, v)| v.to_ascii_lowercase());
    if let Some((key, _)) = url.query_pairs().find(|(k, _)| k != "tls") {
        return Err(refuse(&format!("unknown parameter {key:?} (only tls)")));
    }
    let (tls, default_port) = match (url.scheme(), tls_param.as_deref()) {
        ("smtp", None | Some("none")) => (SmtpTls::None, 25),
        ("smtp", Some("starttls" | "required")) => (SmtpTls::StartTls, 587),
        ("smtps", None | Some("implicit")) => (SmtpTls::Implicit, 465),
        ("smtp" | "smtps", Some(_)) => return Err(refuse("tls is starttls (with smtp://) or absent")),
        _ => return Err(refuse("expected an smtp:// or smtps:// URL")),
    };
    let decode = |part: &str| {
        percent_decode(part).ok_or_else(|| refuse("the user name or password is not valid percent-encoded UTF-8"))
    };
    let credentials = match (url.username(), url.password()) {
        ("", None) => None,
        (user, password) => Some((decode(user)?, Secret::new(decode(password.unwrap_or(""))?))),
    };
    Ok(SmtpConfig {
        host,
        port: url.port().unwrap_or(default_port),
        tls,
        credentials,
    })
}

fn percent_decode(part: &str) -> Option<String> {
    let bytes = part.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `raw` with the password of its userinfo (if any) replaced, for messages.
fn redact_password(raw: &str) -> String {
    match Url::parse(raw) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("***"));
            url.to_string()
        }
        Ok(url) => url.to_string(),
        // Unparsable: whatever sits between "://" and the last "@" may be a secret.
        Err(_) => match (raw.find("://"), raw.rfind('@')) {
            (Some(start), Some(at)) if at > start => format!("{}***{}", &raw[..start + 3], &raw[at..]),
            _ => raw.to_owned(),
        },
    }
}

fn oidc_config(s: &Settings) -> Result<Option<OidcConfig>, ConfigError> {
    let client_id = s.get("OIDC_CLIENT_ID").or(s.get("GOOGLE_CLIENT_ID"));
    let client_secret = s.get("OIDC_CLIENT_SECRET").or(s.get("GOOGLE_CLIENT_SECRET"));
    let Some(client_id) = client_id else {
        return Ok(None);
    };
    let Some(client_secret) = client_secret else {
        return Err(ConfigError::Missing(
            "OIDC_CLIENT_ID is set but OIDC_CLIENT_SECRET is not: set both, or neither".into(),
        ));
    };
    let raw_issuer = s.get("OIDC_ISSUER").unwrap_or(GOOGLE_ISSUER);
    Url::parse(raw_issuer).map_err(|e| invalid("OIDC_ISSUER", raw_issuer, e))?;
    let issuer = raw_issuer.to_owned();
    let default_name = if raw_issuer == GOOGLE_ISSUER {
        "Google"
    } else {
        "single sign-on"
    };
    Ok(Some(OidcConfig {
        issuer,
        name: s.get("OIDC_NAME").unwrap_or(default_name).to_owned(),
        client_id: client_id.to_owned(),
        client_secret: Secret::new(client_secret),
    }))
}

fn turn_config(s: &Settings) -> Result<Option<TurnConfig>, ConfigError> {
    let urls = s.list("TURN_URLS");
    if urls.is_empty() {
        return Ok(None);
    }
    let auth = if let Some(secret) = s.get("TURN_SECRET") {
        TurnAuth::SharedSecret {
            secret: Secret::new(secret),
            ttl: Duration::from_secs(s.parse_or("TURN_TTL_SECONDS", 86_400u64)?),
        }
    } else if let (Some(username), Some(credential)) = (s.get("TURN_USERNAME"), s.get("TURN_CREDENTIAL")) {
        TurnAuth::Static {
            username: username.to_owned(),
            credential: Secret::new(credential),
        }
    } else {
        TurnAuth::None
    };
    Ok(Some(TurnConfig { urls, auth }))
}

fn voice_mode(s: &Settings) -> Result<VoiceMode, ConfigError> {
    match s.get("VOICE_MODE").map(str::to_ascii_lowercase).as_deref() {
        None | Some("auto") => Ok(VoiceMode::Auto),
        Some("p2p") => Ok(VoiceMode::P2p),
        Some("sfu") => Ok(VoiceMode::Sfu),
        Some(other) => Err(invalid("VOICE_MODE", other, "expected auto, p2p or sfu")),
    }
}

fn ice_transport_policy(s: &Settings, has_turn: bool) -> Result<IceTransportPolicy, ConfigError> {
    let Some(raw) = s.get("ICE_TRANSPORT_POLICY") else {
        return Ok(IceTransportPolicy::All);
    };
    match raw.to_ascii_lowercase().as_str() {
        "all" => Ok(IceTransportPolicy::All),
        "relay" if has_turn => Ok(IceTransportPolicy::Relay),
        // Without a TURN server a relay-only browser has no candidate at all.
        "relay" => Err(invalid(
            "ICE_TRANSPORT_POLICY",
            raw,
            "needs TURN_URLS: with relay, browsers use nothing but TURN",
        )),
        _ => Err(invalid("ICE_TRANSPORT_POLICY", raw, "expected all or relay")),
    }
}

/// A number of days; 0 or unset is forever.
fn retention_days(s: &Settings, key: &'static str) -> Result<Option<Duration>, ConfigError> {
    let days: u32 = s.parse_or(key, 0)?;
    Ok((days > 0).then(|| Duration::from_secs(u64::from(days) * 86_400)))
}

fn trusted_proxies(s: &Settings) -> Result<Vec<IpNet>, ConfigError> {
    s.list("TRUSTED_PROXIES")
        .iter()
        .map(|entry| {
            entry
                .parse::<IpNet>()
                .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                .map_err(|e| invalid("TRUSTED_PROXIES", entry, e))
        })
        .collect()
}

pub fn normalise_email(raw: &str) -> String {
    raw.trim().to_lowercase()
}

fn write_private_file(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Settings {
        let mut s = Settings::default();
        for (k, v) in pairs {
            s.set(k, *v).unwrap();
        }
        s
    }

    #[test]
    fn defaults_need_no_configuration() {
        let c = Config::from_settings(&Settings::default()).unwrap();
        assert_eq!(c.bind, "127.0.0.1:8080".parse::<SocketAddr>().unwrap());
        assert_eq!(c.database_path, PathBuf::from("data/switchboard.db"));
        assert_eq!(c.data_dir, PathBuf::from("data"));
        assert_eq!(c.max_users, 50);
        assert!(!c.allow_guests);
        assert!(c.captcha);
        assert_eq!(c.login_rate_per_min, 5);
        assert_eq!(c.bcrypt_cost, 12);
        assert!(c.oidc.is_none());
        assert_eq!(c.session_idle, Duration::from_secs(1800));
        assert_eq!(c.session_max, Duration::from_secs(12 * 3600));
        assert_eq!(c.upload_rate_per_min, 10);
        assert_eq!(c.upload_quota_bytes, 500 * MB);
        assert_eq!(c.upload_total_bytes, 10_240 * MB);
        assert_eq!(c.upload_disk_reserve_bytes, 100 * MB);
        assert_eq!(c.instance_name, "Switchboard");
        assert!(c.smtp.is_none() && c.mail_from.is_none());
        assert_eq!(c.mail_rate_per_min, 3);
        assert!(c.password_login && !c.require_verified_email);
        assert_eq!(c.registration, Registration::Open);
        assert!(c.allowed_email_domains.is_empty());
    }

    #[test]
    fn unknown_keys_are_errors() {
        let mut s = Settings::default();
        assert!(matches!(s.set("NOPE", "1"), Err(ConfigError::UnknownKey(_))));
        assert!(s.set("max_users", "3").is_ok(), "lower-case keys are accepted");
    }

    #[test]
    fn toml_file_layers_under_environment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sb.toml");
        std::fs::write(
            &path,
            "max_users = 7\nallow_guests = true\nstun_urls = [\"stun:a\", \"stun:b\"]\n",
        )
        .unwrap();
        let mut s = Settings::default();
        s.merge_toml(&path).unwrap();
        s.merge_env(|k| (k == "MAX_USERS").then(|| "9".to_owned()));
        let c = Config::from_settings(&s).unwrap();
        assert_eq!(c.max_users, 9);
        assert!(c.allow_guests);
        assert_eq!(c.stun_urls, vec!["stun:a", "stun:b"]);
    }

    #[test]
    fn sizes_and_durations_that_overflow_are_errors() {
        let huge = u64::MAX.to_string();
        for key in ["MAX_UPLOAD_MB", "SESSION_IDLE_MINUTES", "SESSION_MAX_HOURS"] {
            let error = Config::from_settings(&settings(&[(key, huge.as_str())])).unwrap_err();
            assert!(
                matches!(error, ConfigError::Invalid { key: k, .. } if k == key),
                "{key}: {error}"
            );
        }
        let c = Config::from_settings(&settings(&[("MAX_UPLOAD_MB", "2"), ("SESSION_IDLE_MINUTES", "3")])).unwrap();
        assert_eq!(c.max_upload_bytes, 2 * 1024 * 1024);
        assert_eq!(c.session_idle, Duration::from_secs(180));
    }

    #[test]
    fn toml_unknown_key_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sb.toml");
        std::fs::write(&path, "bogus = 1\n").unwrap();
        assert!(matches!(
            Settings::default().merge_toml(&path),
            Err(ConfigError::UnknownKey(_))
        ));
    }

    #[test]
    fn oidc_needs_both_id_and_secret_and_defaults_to_google() {
        assert!(Config::from_settings(&settings(&[("GOOGLE_CLIENT_ID", "x")])).is_err());
        let c = Config::from_settings(&settings(&[("GOOGLE_CLIENT_ID", "x"), ("GOOGLE_CLIENT_SECRET", "y")])).unwrap();
        let oidc = c.oidc.unwrap();
        assert_eq!(oidc.issuer, "https://accounts.google.com");
        assert_eq!(oidc.name, "Google");
        assert_eq!(format!("{:?}", oidc.client_secret), "Secret(***)");
    }

    #[test]
    fn database_path_sets_the_data_dir() {
        let c = Config::from_settings(&settings(&[("DATABASE_PATH", "/tmp/x/sb.db")])).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
    }

    #[test]
    fn bad_values_name_the_key() {
        let err = Config::from_settings(&settings(&[("MAX_USERS", "lots")])).unwrap_err();
        assert!(err.to_string().contains("MAX_USERS"));
        assert!(Config::from_settings(&settings(&[("BCRYPT_COST", "2")])).is_err());
    }

    #[test]
    fn trusted_proxies_accept_addresses_and_networks() {
        let c = Config::from_settings(&settings(&[("TRUSTED_PROXIES", "127.0.0.1, 10.0.0.0/8")])).unwrap();
        assert!(c.is_trusted_proxy("10.1.2.3".parse().unwrap()));
        assert!(c.is_trusted_proxy("127.0.0.1".parse().unwrap()));
        assert!(!c.is_trusted_proxy("127.0.0.2".parse().unwrap()));
    }

    #[test]
    fn voice_keys_have_defaults_and_refuse_nonsense() {
        let c = Config::from_settings(&Settings::default()).unwrap();
        assert_eq!(c.voice_mode, VoiceMode::Auto);
        assert_eq!(c.sfu_udp_port, 7882);
        assert_eq!(c.sfu_public_ip, None);
        assert_eq!(c.mesh_limit, 6);
        let c = Config::from_settings(&settings(&[
            ("VOICE_MODE", "SFU"),
            ("SFU_UDP_PORT", "0"),
            ("SFU_PUBLIC_IP", "203.0.113.7"),
            ("MESH_LIMIT", "10"),
        ]))
        .unwrap();
        assert_eq!(c.voice_mode, VoiceMode::Sfu);
        assert_eq!(c.sfu_udp_port, 0);
        assert_eq!(c.sfu_public_ip, Some("203.0.113.7".parse().unwrap()));
        assert_eq!(c.mesh_limit, 10);
        for (key, bad) in [
            ("VOICE_MODE", "mesh"),
            ("SFU_UDP_PORT", "70000"),
            ("SFU_PUBLIC_IP", "sfu.example.org"),
            ("MESH_LIMIT", "-1"),
        ] {
            let err = Config::from_settings(&settings(&[(key, bad)])).unwrap_err();
            assert!(err.to_string().contains(key), "{key}={bad}: {err}");
        }
    }

    #[test]
    fn smtp_urls_choose_tls_and_default_ports() {
        let plain = parse_smtp_url("smtp://127.0.0.1:2525").unwrap();
        assert_eq!(
            (plain.host.as_str(), plain.port, plain.tls),
            ("127.0.0.1", 2525, SmtpTls::None)
        );
        assert!(plain.credentials.is_none());
        let starttls = parse_smtp_url("smtp://mail.example.org?tls=starttls").unwrap();
        assert_eq!((starttls.port, starttls.tls), (587, SmtpTls::StartTls));
        let implicit = parse_smtp_url("smtps://me%40example.org:p%3Ass@mail.example.org").unwrap();
        assert_eq!((implicit.port, implicit.tls), (465, SmtpTls::Implicit));
        let (user, password) = implicit.credentials.unwrap();
        assert_eq!((user.as_str(), password.expose()), ("me@example.org", "p:ss"));
        assert_eq!(parse_smtp_url("smtp://[::1]").unwrap().host, "::1");
    }

    #[test]
    fn a_bad_smtp_url_is_reported_without_its_password() {
        for raw in [
            "http://user:hunter2@mail.example.org",
            "smtps://user:hunter2@mail.example.org?tls=starttls",
            "smtp://user:hunter2@mail.example.org?bogus=1",
            "smtp://user:hunter2@",
        ] {
            let err = parse_smtp_url(raw).unwrap_err().to_string();
            assert!(err.contains("SMTP_URL"), "{err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
        let c = Config::from_settings(&settings(&[("SMTP_URL", "smtp://u:hunter2@h")])).unwrap();
        assert!(!format!("{c:?}").contains("hunter2"), "Debug hides the password");
    }

    #[test]
    fn password_login_off_needs_oidc() {
        let err = Config::from_settings(&settings(&[("PASSWORD_LOGIN", "false")])).unwrap_err();
        assert!(err.to_string().contains("OIDC"), "{err}");
        let c = Config::from_settings(&settings(&[
            ("PASSWORD_LOGIN", "false"),
            ("OIDC_CLIENT_ID", "x"),
            ("OIDC_CLIENT_SECRET", "y"),
        ]))
        .unwrap();
        assert!(!c.password_login);
    }

    #[test]
    fn required_verification_needs_mail() {
        assert!(Config::from_settings(&settings(&[("REQUIRE_VERIFIED_EMAIL", "true")])).is_err());
        let c = Config::from_settings(&settings(&[
            ("REQUIRE_VERIFIED_EMAIL", "true"),
            ("SMTP_URL", "smtp://127.0.0.1:2525"),
        ]))
        .unwrap();
        assert!(c.require_verified_email);
    }

    #[test]
    fn registration_and_allowed_domains() {
        let c = Config::from_settings(&Settings::default()).unwrap();
        assert_eq!(c.registration, Registration::Open);
        assert!(c.email_domain_allowed("anyone@anywhere.example"));
        let c = Config::from_settings(&settings(&[
            ("REGISTRATION", "Invite"),
            ("ALLOWED_EMAIL_DOMAINS", "example.org, @Corp.Example"),
        ]))
        .unwrap();
        assert_eq!(c.registration, Registration::Invite);
        assert!(c.email_domain_allowed("a@EXAMPLE.org"));
        assert!(c.email_domain_allowed("b@corp.example"));
        assert!(!c.email_domain_allowed("c@sub.example.org"), "exact domains only");
        assert!(!c.email_domain_allowed("d@example.org.evil.example"));
        assert!(Config::from_settings(&settings(&[("REGISTRATION", "sometimes")])).is_err());
    }

    #[test]
    fn retention_is_forever_unless_a_number_of_days_is_set() {
        let c = Config::from_settings(&Settings::default()).unwrap();
        assert_eq!(c.retention, Retention::default());
        let c = Config::from_settings(&settings(&[
            ("MESSAGE_RETENTION_DAYS", "30"),
            ("UPLOAD_RETENTION_DAYS", "0"),
            ("AUDIT_RETENTION_DAYS", "365"),
        ]))
        .unwrap();
        assert_eq!(c.retention.messages, Some(Duration::from_secs(30 * 86_400)));
        assert_eq!(c.retention.uploads, None);
        assert_eq!(c.retention.audit, Some(Duration::from_secs(365 * 86_400)));
        let err = Config::from_settings(&settings(&[("AUDIT_RETENTION_DAYS", "-1")])).unwrap_err();
        assert!(err.to_string().contains("AUDIT_RETENTION_DAYS"), "{err}");
    }

    #[test]
    fn public_base_falls_back_to_the_bound_address() {
        let c = Config::from_settings(&Settings::default()).unwrap();
        assert_eq!(
            c.public_base("0.0.0.0:9000".parse().unwrap()).as_str(),
            "http://127.0.0.1:9000/"
        );
    }

    #[test]
    fn ice_transport_policy_relay_needs_turn() {
        let c = Config::from_settings(&Settings::default()).unwrap();
        assert_eq!(c.ice_transport_policy, IceTransportPolicy::All);
        let relay = [
            ("TURN_URLS", "turn:turn.example.org:3478"),
            ("ICE_TRANSPORT_POLICY", "Relay"),
        ];
        let c = Config::from_settings(&settings(&relay)).unwrap();
        assert_eq!(c.ice_transport_policy, IceTransportPolicy::Relay);
        let err = Config::from_settings(&settings(&[("ICE_TRANSPORT_POLICY", "relay")])).unwrap_err();
        assert!(err.to_string().contains("TURN_URLS"), "{err}");
        let err = Config::from_settings(&settings(&[("ICE_TRANSPORT_POLICY", "direct")])).unwrap_err();
        assert!(err.to_string().contains("ICE_TRANSPORT_POLICY"), "{err}");
    }
}
