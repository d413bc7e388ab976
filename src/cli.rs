//! The command line: `serve` (the default), `migrate`, `user ...`,
//! `mail test`, `hash-password` and `backup`. Operator commands talk to the
//! database (or the SMTP server) directly.

use std::io::BufRead;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use serde_json::json;

use crate::auth::{password, validate};
use crate::config::{Config, ConfigError, Settings};
use crate::db::{self, account_tokens, audit::Event, roles, sessions, users, DbError};
use crate::error::ApiError;

#[derive(Debug, Parser)]
#[command(name = "switchboard", version, about = "Self-hosted voice-and-chat intercom")]
pub struct Cli {
    /// A TOML file with configuration keys (environment variables override it).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address and port to listen on (overrides BIND).
    #[arg(long, global = true, value_name = "ADDR")]
    pub bind: Option<String>,
    /// SQLite database file (overrides DATABASE_PATH).
    #[arg(long, global = true, value_name = "FILE")]
    pub database: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve,
    /// Create or upgrade the database schema, then exit.
    Migrate,
    /// Manage accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Read a password on standard input and print its bcrypt hash.
    HashPassword,
    /// Outgoing mail.
    #[command(subcommand)]
    Mail(MailCommand),
    /// Write a consistent copy of the database and the uploads into DIR
    /// (created if missing; must be empty), also while the server runs.
    Backup {
        /// Where the copy goes: DIR/switchboard.db and DIR/uploads/.
        dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum MailCommand {
    /// Send a test mail to ADDRESS now, through SMTP_URL, and report the outcome.
    Test { address: String },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an account; the password is read from standard input.
    Create(CreateUser),
    /// Give a user the admin role.
    Promote { username: String },
    /// Take the admin role from a user.
    Demote { username: String },
    /// Set a user's password (read from standard input) and end their sessions.
    SetPassword { username: String },
    /// Turn a user's two-factor sign-in off (their recovery codes too): for
    /// someone who lost their authenticator and codes, or after SECRET_KEY
    /// changed and the sealed secrets stopped opening.
    #[command(name = "disable-2fa")]
    DisableTwoFactor {
        username: String,
        /// Why, for the audit log.
        #[arg(long, default_value = "turned off by an operator")]
        reason: String,
    },
}

#[derive(Debug, Args)]
pub struct CreateUser {
    #[arg(long)]
    pub username: String,
    #[arg(long)]
    pub email: String,
    /// Make the account an admin.
    #[arg(long)]
    pub admin: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("database: {0}")]
    Db(#[from] DbError),
    #[error("{0}")]
    Input(String),
    #[error("mail: {0}")]
    Mail(#[from] crate::mail::smtp::MailError),
    #[error("backup: {0}")]
    Backup(#[from] crate::backup::BackupError),
}

impl From<ApiError> for CliError {
    fn from(err: ApiError) -> Self {
        Self::Input(err.to_string())
    }
}

impl Cli {
    /// The configuration: defaults, file, environment, then these flags.
    pub fn config(&self) -> Result<Config, ConfigError> {
        let mut settings = Settings::load(self.config.as_deref())?;
        if let Some(bind) = &self.bind {
            settings.set("BIND", bind.clone())?;
        }
        if let Some(database) = &self.database {
            settings.set("DATABASE_PATH", database.display().to_string())?;
        }
        Config::from_settings(&settings)
    }
}

pub fn migrate(config: &Config) -> Result<(), CliError> {
    db::open(&config.database_path)?;
    println!(
        "database {} is at schema version {}",
        config.database_path.display(),
        db::LATEST_VERSION
    );
    Ok(())
}

pub fn user(config: &Config, command: &UserCommand) -> Result<(), CliError> {
    let pool = db::open(&config.database_path)?;
    let mut conn = pool.get().map_err(DbError::from)?;
    match command {
        UserCommand::Create(args) => create_user(config, &mut conn, args),
        UserCommand::Promote { username } => set_admin(&conn, username, true),
        UserCommand::Demote { username } => set_admin(&conn, username, false),
        UserCommand::SetPassword { username } => set_password(config, &mut conn, username),
        UserCommand::DisableTwoFactor { username, reason } => disable_two_factor(&mut conn, username, reason),
    }
}

/// The account named `username` (any case), or an error that says so.
fn named_account(conn: &rusqlite::Connection, username: &str) -> Result<users::Credentials, CliError> {
    users::find_credentials(conn, username)?
        .filter(|c| c.username.eq_ignore_ascii_case(username))
        .ok_or_else(|| CliError::Input(format!("no user named {username:?}")))
}

/// The operator's way back in for a user without mail: a new password, and
/// every session of the account ends (a live socket closes at its next
/// check, within a minute).
fn set_password(config: &Config, conn: &mut rusqlite::Connection, username: &str) -> Result<(), CliError> {
    let account = named_account(conn, username)?;
    if account.is_guest {
        return Err(CliError::Input("guests have no password".into()));
    }
    let secret = read_password()?;
    validate::password(&secret)?;
    let hash = password::hash(&secret, config.bcrypt_cost).map_err(|e| CliError::Input(e.to_string()))?;
    let ended = db::immediate(conn, |tx| -> Result<_, DbError> {
        users::set_password_hash(tx, account.id, &hash)?;
        account_tokens::revoke(tx, account.id, account_tokens::Purpose::PasswordReset)?;
        let ended = sessions::delete_for_user(tx, account.id)?;
        Event::new("password_reset")
            .target(account.id)
            .details(json!({"method": "cli", "username": account.username, "sessions_ended": ended}))
            .record(tx)?;
        Ok(ended)
    })?;
    println!("set the password of {}; {ended} session(s) ended", account.username);
    Ok(())
}

/// The operator's switch-off for a user who lost their authenticator and
/// codes: two-factor sign-in and its recovery codes go.
fn disable_two_factor(conn: &mut rusqlite::Connection, username: &str, reason: &str) -> Result<(), CliError> {
    let credentials = named_account(conn, username)?;
    if credentials.totp_secret.is_none() {
        return Err(CliError::Input(format!(
            "{} does not have two-factor sign-in on",
            credentials.username
        )));
    }
    db::immediate(conn, |tx| -> Result<(), DbError> {
        users::disable_totp(tx, credentials.id)?;
        Event::new("user_update")
            .target(credentials.id)
            .details(json!({"method": "cli", "username": credentials.username, "totp": "disabled", "reason": reason}))
            .record(tx)
    })?;
    println!("two-factor sign-in is off for {}", credentials.username);
    Ok(())
}

/// Sends a test mail directly (not through the outbox) and reports the
/// SMTP server's answer.
pub fn mail(config: &Config, command: &MailCommand) -> Result<(), CliError> {
    let MailCommand::Test { address } = command;
    let address = validate::email(address)?;
    let smtp_config = config
        .smtp
        .as_ref()
        .ok_or_else(|| CliError::Input("SMTP_URL is not set: there is no mail to test".into()))?;
    let public = config.public_base(config.bind);
    let from = crate::mail::smtp::sender(config, &public)?;
    let sender = crate::mail::smtp::SmtpSender::new(smtp_config, from.clone())?;
    let base = public.as_str().trim_end_matches('/');
    let mail = crate::mail::compose::Composer::new(&config.instance_name, base).test(&address);
    actix_web::rt::System::new().block_on(sender.send_now(&mail))?;
    println!(
        "sent a test mail from {from} to {address} through {}:{}",
        smtp_config.host, smtp_config.port
    );
    Ok(())
}

fn create_user(config: &Config, conn: &mut rusqlite::Connection, args: &CreateUser) -> Result<(), CliError> {
    let username = validate::username(&args.username)?;
    let email = validate::email(&args.email)?;
    let secret = read_password()?;
    validate::password(&secret)?;
    let hash = password::hash(&secret, config.bcrypt_cost).map_err(|e| CliError::Input(e.to_string()))?;
    let account = users::NewAccount::with_password(username, email, hash);
    // The operator may go past MAX_USERS; the limit guards self-registration.
    let id = db::immediate(conn, |tx| -> Result<_, db::DbError> {
        let id = users::create_account(tx, &account, u32::MAX)?;
        if args.admin {
            roles::add_role(tx, id, roles::ADMIN)?;
        }
        Event::new("register")
            .by(id, &account.username)
            .details(json!({"method": "cli", "admin": args.admin}))
            .record(tx)?;
        Ok(id)
    })?;
    println!("created user {} (id {id})", account.username);
    Ok(())
}

fn set_admin(conn: &rusqlite::Connection, username: &str, admin: bool) -> Result<(), CliError> {
    let credentials = named_account(conn, username)?;
    if admin {
        roles::add_role(conn, credentials.id, roles::ADMIN)?;
    } else {
        roles::remove_role(conn, credentials.id, roles::ADMIN)?;
    }
    Event::new("user_update")
        .target(credentials.id)
        .details(json!({"method": "cli", "username": credentials.username, "admin": admin}))
        .record(conn)?;
    println!(
        "{} is {} an admin",
        credentials.username,
        if admin { "now" } else { "no longer" }
    );
    Ok(())
}

pub fn hash_password(config: &Config) -> Result<(), CliError> {
    let secret = read_password()?;
    validate::password(&secret)?;
    let hash = password::hash(&secret, config.bcrypt_cost).map_err(|e| CliError::Input(e.to_string()))?;
    println!("{hash}");
    Ok(())
}

pub fn backup(config: &Config, dir: &std::path::Path) -> Result<(), CliError> {
    let report = crate::backup::run(config, dir)?;
    for name in &report.missing {
        eprintln!("switchboard: warning: upload {name} is named in the database but its file is gone");
    }
    println!("{}", crate::backup::summary(&report, dir));
    Ok(())
}

/// One line of standard input, without its line ending.
fn read_password() -> Result<String, CliError> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| CliError::Input(format!("cannot read the password: {e}")))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}
