//! The command line: `serve` (the default), `migrate`, `user ...`,
//! `hash-password` and `backup`. Operator commands talk to the database
//! directly.

use std::io::BufRead;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use serde_json::json;

use crate::auth::{password, validate};
use crate::config::{Config, ConfigError, Settings};
use crate::db::{self, audit::Event, roles, users, DbError};
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
    /// Write a consistent copy of the database and the uploads into DIR
    /// (created if missing; must be empty), also while the server runs.
    Backup {
        /// Where the copy goes: DIR/switchboard.db and DIR/uploads/.
        dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an account; the password is read from standard input.
    Create(CreateUser),
    /// Give a user the admin role.
    Promote { username: String },
    /// Take the admin role from a user.
    Demote { username: String },
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
    }
}

fn create_user(config: &Config, conn: &mut rusqlite::Connection, args: &CreateUser) -> Result<(), CliError> {
    let username = validate::username(&args.username)?;
    let email = validate::email(&args.email)?;
    let secret = read_password()?;
    validate::password(&secret)?;
    let hash = password::hash(&secret, config.bcrypt_cost).map_err(|e| CliError::Input(e.to_string()))?;
    let account = users::NewAccount::with_password(username, email, hash);
    // The operator may go past MAX_USERS; the limit guards self-registration.
    let id = db::immediate(conn, |tx| {
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
    let credentials = users::find_credentials(conn, username)?
        .filter(|c| c.username.eq_ignore_ascii_case(username))
        .ok_or_else(|| CliError::Input(format!("no user named {username:?}")))?;
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
