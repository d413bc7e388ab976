//! SQLite access: the connection pool, its per-connection settings, the
//! schema and its migrations. Queries live beside their tables in the
//! submodules; every call runs off the actix workers through [`run`].

pub mod account_tokens;
pub mod audit;
pub mod avatars;
pub mod backup;
pub mod bans;
pub mod filter;
pub mod invites;
pub mod messages;
pub mod outbox;
pub mod recovery_codes;
pub mod roles;
pub mod rooms;
pub mod sessions;
pub mod uploads;
pub mod users;
pub mod writer;

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::Connection;

pub type Pool = r2d2::Pool<SqliteConnectionManager>;

/// The baseline schema of a fresh database, at [`LATEST_VERSION`].
const SCHEMA: &str = include_str!("../../schema.sql");

/// Numbered migrations: entry `i` brings a database from version `i + 1` to
/// `i + 2`. A change to the schema updates `schema.sql` and adds one here.
const MIGRATIONS: &[&str] = &[
    // 1 -> 2: two-factor set-up and replay protection.
    "ALTER TABLE users ADD COLUMN totp_pending TEXT;
     ALTER TABLE users ADD COLUMN totp_last_step INTEGER;",
    // 2 -> 3: files posted in rooms.
    "CREATE TABLE uploads (
         id            INTEGER PRIMARY KEY,
         room_id       INTEGER NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
         user_id       INTEGER REFERENCES users (id) ON DELETE SET NULL,
         name          TEXT    NOT NULL,
         size          INTEGER NOT NULL,
         content_type  TEXT    NOT NULL,
         stored_as     TEXT    NOT NULL UNIQUE,
         created_at    INTEGER NOT NULL
     );",
    // 3 -> 4: files are served at /files/<room code>/<random token> instead of
    // their sequential id (existing files get tokens, and the messages that
    // carry them the new url); the built-in permission files.upload, for the
    // user and moderator roles.
    "CREATE TABLE uploads_next (
         id            INTEGER PRIMARY KEY,
         room_id       INTEGER NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
         user_id       INTEGER REFERENCES users (id) ON DELETE SET NULL,
         name          TEXT    NOT NULL,
         size          INTEGER NOT NULL,
         content_type  TEXT    NOT NULL,
         stored_as     TEXT    NOT NULL UNIQUE,
         token         TEXT    NOT NULL UNIQUE,
         created_at    INTEGER NOT NULL
     );
     INSERT INTO uploads_next (id, room_id, user_id, name, size, content_type, stored_as, token, created_at)
         SELECT id, room_id, user_id, name, size, content_type, stored_as, lower(hex(randomblob(16))), created_at
         FROM uploads;
     DROP TABLE uploads;
     ALTER TABLE uploads_next RENAME TO uploads;
     CREATE INDEX uploads_by_user ON uploads (user_id);
     UPDATE messages SET attachment = json_set(attachment, '$.url',
         (SELECT '/files/' || r.code || '/' || u.token FROM uploads u JOIN rooms r ON r.id = u.room_id
          WHERE u.id = json_extract(messages.attachment, '$.id')))
     WHERE attachment IS NOT NULL
       AND EXISTS (SELECT 1 FROM uploads u WHERE u.id = json_extract(messages.attachment, '$.id'));
     INSERT OR IGNORE INTO permissions (name, builtin) VALUES ('files.upload', 1);
     UPDATE permissions SET builtin = 1 WHERE name = 'files.upload';
     INSERT OR IGNORE INTO role_permissions (role_id, permission_id)
         SELECT r.id, p.id FROM roles r, permissions p
         WHERE r.name IN ('moderator', 'user') AND p.name = 'files.upload';",
    // 4 -> 5: mail (the outbox), one-time links, invitations, and when an
    // account was welcomed (accounts verified already count as welcomed).
    "ALTER TABLE users ADD COLUMN welcomed_at INTEGER;
     UPDATE users SET welcomed_at = created_at WHERE email_verified = 1;
     CREATE TABLE outbox (
         id               INTEGER PRIMARY KEY,
         kind             TEXT    NOT NULL,
         to_address       TEXT    NOT NULL,
         subject          TEXT    NOT NULL,
         body             TEXT    NOT NULL,
         created_at       INTEGER NOT NULL,
         attempts         INTEGER NOT NULL DEFAULT 0,
         next_attempt_at  INTEGER NOT NULL,
         discard_at       INTEGER,
         last_error       TEXT
     );
     CREATE INDEX outbox_due ON outbox (next_attempt_at);
     CREATE TABLE account_tokens (
         id          INTEGER PRIMARY KEY,
         purpose     TEXT    NOT NULL,
         token_hash  BLOB    NOT NULL UNIQUE,
         user_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
         email       TEXT    NOT NULL,
         created_at  INTEGER NOT NULL,
         expires_at  INTEGER NOT NULL
     );
     CREATE INDEX account_tokens_by_user ON account_tokens (user_id, purpose);
     CREATE TABLE invites (
         id          INTEGER PRIMARY KEY,
         code_hash   BLOB    NOT NULL UNIQUE,
         uses        INTEGER NOT NULL,
         uses_left   INTEGER NOT NULL,
         created_by  INTEGER REFERENCES users (id) ON DELETE SET NULL,
         created_at  INTEGER NOT NULL,
         expires_at  INTEGER NOT NULL
     );",
    // 5 -> 6: two-factor recovery codes, stored hashed.
    "CREATE TABLE recovery_codes (
         user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
         code_hash  BLOB    NOT NULL,
         PRIMARY KEY (user_id, code_hash)
     ) WITHOUT ROWID;",
    // 6 -> 7: login sessions get a random public id (their owner lists and
    // ends them by it) and remember the address and browser last seen.
    "CREATE TABLE sessions_next (
         id               INTEGER PRIMARY KEY,
         token_hash       BLOB    NOT NULL UNIQUE,
         public_id        TEXT    NOT NULL UNIQUE,
         user_id          INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
         ip               TEXT    NOT NULL,
         user_agent       TEXT    NOT NULL DEFAULT '',
         last_ip          TEXT    NOT NULL,
         last_user_agent  TEXT    NOT NULL DEFAULT '',
         created_at       INTEGER NOT NULL,
         last_seen_at     INTEGER NOT NULL,
         expires_at       INTEGER NOT NULL
     );
     INSERT INTO sessions_next (id, token_hash, public_id, user_id, ip, user_agent, last_ip, last_user_agent,
                                created_at, last_seen_at, expires_at)
         SELECT id, token_hash, lower(hex(randomblob(16))), user_id, ip, user_agent, ip, user_agent,
                created_at, last_seen_at, expires_at
         FROM sessions;
     DROP TABLE sessions;
     ALTER TABLE sessions_next RENAME TO sessions;
     CREATE INDEX sessions_by_user ON sessions (user_id);",
    // 7 -> 8: profile pictures.
    "CREATE TABLE avatars (
         user_id       INTEGER PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
         token         TEXT    NOT NULL UNIQUE,
         content_type  TEXT    NOT NULL,
         bytes         BLOB    NOT NULL,
         created_at    INTEGER NOT NULL
     );",
    // 8 -> 9: a message keeps its sender's display name at the time, as it
    // keeps the username; older messages take the username.
    "ALTER TABLE messages ADD COLUMN display_name TEXT;
     UPDATE messages SET display_name = username;",
    // 9 -> 10: server mute and deafen, for the moderator role.
    "INSERT INTO permissions (name, builtin) VALUES ('voice.mute', 1), ('voice.deafen', 1);
     INSERT INTO role_permissions (role_id, permission_id)
         SELECT r.id, p.id FROM roles r, permissions p
         WHERE r.name = 'moderator' AND p.name IN ('voice.mute', 'voice.deafen');",
];

pub const LATEST_VERSION: u32 = 1 + MIGRATIONS.len() as u32;

const POOL_SIZE: u32 = 8;
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error("the user limit is reached")]
    UserLimit,
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("connection pool: {0}")]
    Pool(#[from] r2d2::Error),
    #[error("schema: {0}")]
    Schema(String),
    #[error("blocking pool: {0}")]
    Blocking(String),
}

impl DbError {
    /// Maps a UNIQUE violation to `Conflict(what)`, anything else to itself.
    pub fn conflict_on_unique(err: rusqlite::Error, what: &str) -> Self {
        match err.sqlite_error_code() {
            Some(rusqlite::ErrorCode::ConstraintViolation) => Self::Conflict(what.to_owned()),
            _ => Self::Sqlite(err),
        }
    }
}

/// Opens (creating if needed) the database at `path`, brings its schema up
/// to date and returns a pool whose connections all carry the same settings.
pub fn open(path: &Path) -> Result<Pool, DbError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| DbError::Schema(format!("cannot create {}: {e}", dir.display())))?;
    }
    let manager = SqliteConnectionManager::file(path).with_init(configure_connection);
    let pool = r2d2::Pool::builder().max_size(POOL_SIZE).build(manager)?;
    let mut conn = pool.get()?;
    // WAL persists in the file: set once, it holds for every later connection.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    migrate(&mut conn)?;
    Ok(pool)
}

/// Every pooled connection: foreign keys enforced, a busy timeout instead of
/// "database is locked", and WAL's safe-on-crash `synchronous=NORMAL`.
/// No connection checkpoints on commit: the writer's checkpoint thread does
/// (db::writer), so no request or delivery waits on a checkpoint's fsync.
/// `ip_scope()` lets queries match addresses as bans do (crate::ip_scope).
fn configure_connection(conn: &mut Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    crate::ip_scope::register(conn)?;
    conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 0;")
}

/// Applies the schema to an empty database, or the pending migrations to an
/// older one. Refuses a database written by a newer binary.
pub fn migrate(conn: &mut Connection) -> Result<u32, DbError> {
    let version: u32 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if version > LATEST_VERSION {
        return Err(DbError::Schema(format!(
            "the database is at schema version {version}, newer than this binary's {LATEST_VERSION}: \
             upgrade switchboard"
        )));
    }
    if version == 0 {
        let tables: i64 = conn.query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table'", [], |r| {
            r.get(0)
        })?;
        if tables > 0 {
            return Err(DbError::Schema(
                "the database has tables but no switchboard schema version".into(),
            ));
        }
        let tx = conn.transaction()?;
        tx.execute_batch(SCHEMA)?;
        tx.pragma_update(None, "user_version", LATEST_VERSION)?;
        tx.commit()?;
        tracing::info!(version = LATEST_VERSION, "created the database schema");
        return Ok(LATEST_VERSION);
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(version as usize - 1) {
        let to = index as u32 + 2;
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", to)?;
        tx.commit()?;
        tracing::info!(version = to, "migrated the database schema");
    }
    Ok(LATEST_VERSION)
}

/// Runs `f` with a pooled connection on the blocking thread pool, so SQLite
/// (and whatever else `f` does, such as bcrypt) never stalls an actix worker.
pub async fn run<T, E, F>(pool: &Pool, f: F) -> Result<T, E>
where
    F: FnOnce(&mut Connection) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: From<DbError> + Send + 'static,
{
    let pool = pool.clone();
    let outcome = actix_web::web::block(move || {
        let mut conn = pool.get().map_err(DbError::from)?;
        f(&mut conn)
    })
    .await;
    outcome.unwrap_or_else(|e| Err(E::from(DbError::Blocking(e.to_string()))))
}

pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// The stored milliseconds as a time; out-of-range values read as the epoch.
pub fn to_time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// Runs `f` in an IMMEDIATE transaction: the write lock is taken up front,
/// so a check-then-insert (such as the user limit) cannot race another writer.
/// `f` may refuse with any error that a `DbError` converts into (such as an
/// `ApiError` from an authority check); a refusal rolls everything back.
pub fn immediate<T, E: From<DbError>>(
    conn: &mut Connection,
    f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, E>,
) -> Result<T, E> {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(DbError::from)?;
    let value = f(&tx)?;
    tx.commit().map_err(DbError::from)?;
    Ok(value)
}

#[cfg(test)]
pub mod testing {
    use super::*;

    /// A migrated in-memory database with the production settings.
    pub fn memory() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        configure_connection(&mut conn).unwrap();
        migrate(&mut conn).unwrap();
        conn
    }

    /// A pool over one migrated in-memory database that its connections
    /// share (for actor tests: the writer thread and `db::run` readers see
    /// the same data). Readers skip shared-cache table locks, so they never
    /// fail on the writer's open transaction.
    pub fn memory_pool() -> Pool {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "file:switchboard-test-{}-{}?mode=memory&cache=shared",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE
            | rusqlite::OpenFlags::SQLITE_OPEN_CREATE
            | rusqlite::OpenFlags::SQLITE_OPEN_URI;
        let manager = SqliteConnectionManager::file(name).with_flags(flags).with_init(|conn| {
            configure_connection(conn)?;
            conn.execute_batch("PRAGMA read_uncommitted = ON;")
        });
        // Idle connections are kept: the database lives while one is open.
        let pool = r2d2::Pool::builder()
            .max_size(4)
            .min_idle(Some(4))
            .build(manager)
            .unwrap();
        migrate(&mut pool.get().unwrap()).unwrap();
        pool
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_database_is_at_the_latest_version_with_its_lobby() {
        let conn = testing::memory();
        let version: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        assert_eq!(version, LATEST_VERSION);
        let lobby: String = conn
            .query_row("SELECT name FROM rooms WHERE code = 'lobby'", [], |r| r.get(0))
            .unwrap();
        assert_eq!(lobby, "Lobby");
    }

    #[test]
    fn migrate_is_idempotent() {
        let mut conn = testing::memory();
        assert_eq!(migrate(&mut conn).unwrap(), LATEST_VERSION);
    }

    /// Every table's columns and every index, as SQLite reports them.
    fn shape(conn: &Connection) -> Vec<String> {
        let mut stmt = conn
            .prepare(
                "SELECT type, name, tbl_name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name",
            )
            .unwrap();
        let objects: Vec<(String, String, String)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let mut shape = Vec::new();
        for (kind, name, table) in objects {
            shape.push(format!("{kind} {name} on {table}"));
            if kind == "table" {
                let mut cols = conn
                    .prepare(&format!(
                        "SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_info('{name}')"
                    ))
                    .unwrap();
                let columns = cols
                    .query_map([], |r| {
                        Ok(format!(
                            "  {} {} notnull={} default={:?} pk={}",
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, i64>(2)?,
                            r.get::<_, Option<String>>(3)?,
                            r.get::<_, i64>(4)?
                        ))
                    })
                    .unwrap()
                    .collect::<Result<Vec<_>, _>>()
                    .unwrap();
                shape.extend(columns);
            }
        }
        shape
    }

    #[test]
    fn a_fresh_schema_equals_a_fully_migrated_first_version() {
        let fresh = testing::memory();
        let mut old = Connection::open_in_memory().unwrap();
        old.execute_batch(include_str!("schema_history/v1.sql")).unwrap();
        old.pragma_update(None, "user_version", 1).unwrap();
        assert_eq!(migrate(&mut old).unwrap(), LATEST_VERSION);
        assert_eq!(shape(&old), shape(&fresh));
    }

    #[test]
    fn migrations_keep_rows() {
        let mut old = Connection::open_in_memory().unwrap();
        old.execute_batch(include_str!("schema_history/v1.sql")).unwrap();
        old.pragma_update(None, "user_version", 1).unwrap();
        old.execute(
            "INSERT INTO users (username, display_name, created_at) VALUES ('kept', 'Kept', 1)",
            [],
        )
        .unwrap();
        migrate(&mut old).unwrap();
        let name: String = old.query_row("SELECT username FROM users", [], |r| r.get(0)).unwrap();
        assert_eq!(name, "kept");
    }

    #[test]
    fn files_get_tokens_and_their_messages_the_new_url() {
        let mut old = Connection::open_in_memory().unwrap();
        configure_connection(&mut old).unwrap();
        old.execute_batch(include_str!("schema_history/v1.sql")).unwrap();
        old.execute_batch(MIGRATIONS[0]).unwrap();
        old.execute_batch(MIGRATIONS[1]).unwrap();
        old.pragma_update(None, "user_version", 3).unwrap();
        old.execute_batch(
            "INSERT INTO rooms (code, name, created_at) VALUES ('k7mq-x3tn-9wbe', 'Team', 1);
             INSERT INTO uploads (id, room_id, name, size, content_type, stored_as, created_at)
                 VALUES (7, 2, 'a.png', 3, 'image/png', 'disk-name', 1);
             INSERT INTO messages (room_id, username, text, ts, ip, attachment)
                 VALUES (2, 'ann', 'a.png', 1, '::1', '{\"id\":7,\"url\":\"/files/7\",\"name\":\"a.png\"}');",
        )
        .unwrap();
        migrate(&mut old).unwrap();
        let token: String = old
            .query_row("SELECT token FROM uploads WHERE id = 7", [], |r| r.get(0))
            .unwrap();
        assert_eq!(token.len(), 32, "128 random bits, in hex");
        let url: String = old
            .query_row("SELECT json_extract(attachment, '$.url') FROM messages", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(url, format!("/files/k7mq-x3tn-9wbe/{token}"));
        let user_may_upload: bool = old
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM role_permissions rp JOIN roles r ON r.id = rp.role_id
                 JOIN permissions p ON p.id = rp.permission_id WHERE r.name = 'user' AND p.name = 'files.upload')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(user_may_upload);
    }

    #[test]
    fn messages_from_before_display_names_show_the_username() {
        let mut old = Connection::open_in_memory().unwrap();
        configure_connection(&mut old).unwrap();
        old.execute_batch(include_str!("schema_history/v1.sql")).unwrap();
        old.pragma_update(None, "user_version", 1).unwrap();
        old.execute(
            "INSERT INTO messages (room_id, username, text, ts, ip) VALUES (1, 'ann', 'hi', 1, '::1')",
            [],
        )
        .unwrap();
        migrate(&mut old).unwrap();
        let shown = messages::page(&old, 1, None, 10).unwrap();
        assert_eq!(shown[0].display_name, "ann");
    }

    #[test]
    fn refuses_a_newer_database() {
        let mut conn = testing::memory();
        conn.pragma_update(None, "user_version", LATEST_VERSION + 1).unwrap();
        let err = migrate(&mut conn).unwrap_err();
        assert!(err.to_string().contains("newer"), "{err}");
    }

    #[test]
    fn refuses_a_foreign_database() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE other (x)").unwrap();
        assert!(migrate(&mut conn).is_err());
    }

    #[test]
    fn open_sets_wal_and_foreign_keys() {
        let dir = tempfile::tempdir().unwrap();
        let pool = open(&dir.path().join("nested/sb.db")).unwrap();
        let conn = pool.get().unwrap();
        let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
        let fk: i64 = conn.pragma_query_value(None, "foreign_keys", |r| r.get(0)).unwrap();
        assert_eq!(fk, 1);
    }
}
