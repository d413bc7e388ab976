//! SQLite access: the connection pool, its per-connection settings, the
//! schema and its migrations. Queries live beside their tables in the
//! submodules; every call runs off the actix workers through [`run`].

pub mod audit;
pub mod backup;
pub mod bans;
pub mod filter;
pub mod messages;
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
fn configure_connection(conn: &mut Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
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
pub fn immediate<T>(
    conn: &mut Connection,
    f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, DbError>,
) -> Result<T, DbError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let value = f(&tx)?;
    tx.commit()?;
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
