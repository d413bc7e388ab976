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
    "MAX_UPLOAD_MB",
    "WS_MAX_PER_USER",
    "WS_MAX_PER_IP",
    "WS_OUTBOX_KB",
    "LOG_FORMAT",
    "WEB_DIR",
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
    pub bcrypt_cost: u32,
    pub oidc: Option<OidcConfig>,
    pub session_idle: Duration,
    pub session_max: Duration,
    pub trusted_proxies: Vec<IpNet>,
    pub chat_rate_per_sec: u32,
    pub chat_burst: u32,
    pub stun_urls: Vec<String>,
    pub turn: Option<TurnConfig>,
    pub max_upload_bytes: u64,
    /// Open WebSockets allowed per user and per client IP; 0 is no limit.
    pub ws_max_per_user: u32,
    pub ws_max_per_ip: u32,
    /// Bytes that may wait for one WebSocket before it is closed as too slow.
    pub ws_outbox_bytes: usize,
    pub log_format: LogFormat,
    /// Serve the web client from this folder instead of the embedded copy.
    pub web_dir: Option<PathBuf>,
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
        Ok(Config {
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
            bcrypt_cost,
            oidc: oidc_config(s)?,
            session_idle: Duration::from_secs(s.scaled("SESSION_IDLE_MINUTES", 30, 60)?),
            session_max: Duration::from_secs(s.scaled("SESSION_MAX_HOURS", 12, 3600)?),
            trusted_proxies: trusted_proxies(s)?,
            chat_rate_per_sec: s.parse_or("CHAT_RATE_PER_SEC", 5)?.max(1),
            chat_burst: s.parse_or("CHAT_BURST", 20)?.max(1),
            stun_urls: s.list("STUN_URLS"),
            turn: turn_config(s)?,
            max_upload_bytes: s.scaled("MAX_UPLOAD_MB", 50, 1024 * 1024)?,
            ws_max_per_user: s.parse_or("WS_MAX_PER_USER", 20)?,
            ws_max_per_ip: s.parse_or("WS_MAX_PER_IP", 0)?,
            ws_outbox_bytes: outbox_kb * 1024,
            log_format: match s.get("LOG_FORMAT").map(str::to_ascii_lowercase).as_deref() {
                None | Some("text") => LogFormat::Text,
                Some("json") => LogFormat::Json,
                Some(other) => return Err(invalid("LOG_FORMAT", other, "expected text or json")),
            },
            web_dir: s.get("WEB_DIR").map(PathBuf::from),
        })
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
        assert_eq!(c.bind, "127.0.0.1:8080".parse().unwrap());
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
    fn public_base_falls_back_to_the_bound_address() {
        let c = Config::from_settings(&Settings::default()).unwrap();
        assert_eq!(
            c.public_base("0.0.0.0:9000".parse().unwrap()).as_str(),
            "http://127.0.0.1:9000/"
        );
    }
}
