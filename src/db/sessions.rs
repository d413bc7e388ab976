//! The `sessions` table: server-side login sessions, keyed by the SHA-256 of
//! the cookie token (the token itself is never stored).

use rusqlite::{params, Connection, OptionalExtension};

use super::{now_ms, DbError};
use crate::ids::UserId;

/// Activity is written at most this often, so reads stay reads.
const TOUCH_EVERY_MS: i64 = 60_000;

#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    pub idle_ms: i64,
    pub max_ms: i64,
}

#[derive(Debug, Clone)]
pub struct SessionRow {
    pub id: i64,
    pub user_id: UserId,
}

pub fn create(
    conn: &Connection,
    token_hash: &[u8],
    user: UserId,
    ip: &str,
    user_agent: &str,
    lifetimes: Lifetimes,
) -> Result<i64, DbError> {
    let now = now_ms();
    conn.execute(
        "INSERT INTO sessions (token_hash, user_id, ip, user_agent, created_at, last_seen_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6)",
        params![token_hash, user, ip, user_agent, now, now + lifetimes.max_ms],
    )?;
    Ok(conn.last_insert_rowid())
}

/// The live session for `token_hash`, recording activity. A session past its
/// idle timeout or absolute lifetime is deleted and not returned.
pub fn resume(conn: &Connection, token_hash: &[u8], lifetimes: Lifetimes) -> Result<Option<SessionRow>, DbError> {
    let now = now_ms();
    let found = conn
        .query_row(
            "SELECT id, user_id, last_seen_at, expires_at FROM sessions WHERE token_hash = ?1",
            [token_hash],
            |r| Ok((r.get::<_, i64>(0)?, r.get(1)?, r.get::<_, i64>(2)?, r.get::<_, i64>(3)?)),
        )
        .optional()?;
    let Some((id, user_id, last_seen, expires_at)) = found else {
        return Ok(None);
    };
    if now >= expires_at || now - last_seen >= lifetimes.idle_ms {
        conn.execute("DELETE FROM sessions WHERE id = ?1", [id])?;
        return Ok(None);
    }
    if now - last_seen >= TOUCH_EVERY_MS {
        touch(conn, id)?;
    }
    Ok(Some(SessionRow { id, user_id }))
}

/// Records activity (an open WebSocket counts). False when the session has
/// ended or passed its absolute lifetime.
pub fn touch(conn: &Connection, id: i64) -> Result<bool, DbError> {
    let changed = conn.execute(
        "UPDATE sessions SET last_seen_at = ?2 WHERE id = ?1 AND expires_at > ?2",
        params![id, now_ms()],
    )?;
    Ok(changed == 1)
}

pub fn delete(conn: &Connection, id: i64) -> Result<(), DbError> {
    conn.execute("DELETE FROM sessions WHERE id = ?1", [id])?;
    Ok(())
}

pub fn delete_for_user(conn: &Connection, user: UserId) -> Result<usize, DbError> {
    Ok(conn.execute("DELETE FROM sessions WHERE user_id = ?1", [user])?)
}

/// Ends every session of `user` but `keep`.
pub fn delete_others(conn: &Connection, user: UserId, keep: i64) -> Result<usize, DbError> {
    Ok(conn.execute(
        "DELETE FROM sessions WHERE user_id = ?1 AND id != ?2",
        params![user, keep],
    )?)
}

/// Ends every session created from the scope of `ip` (IPv6: its /64).
pub fn delete_for_ip(conn: &Connection, ip: &str) -> Result<usize, DbError> {
    Ok(conn.execute("DELETE FROM sessions WHERE ip_scope(ip) = ip_scope(?1)", [ip])?)
}

/// The users with a login session created from the scope of `ip`.
pub fn users_in_scope(conn: &Connection, ip: &str) -> Result<Vec<UserId>, DbError> {
    let mut stmt = conn.prepare_cached("SELECT DISTINCT user_id FROM sessions WHERE ip_scope(ip) = ip_scope(?1)")?;
    let rows = stmt.query_map([ip], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Deletes every session past its idle timeout or lifetime.
pub fn purge_expired(conn: &Connection, lifetimes: Lifetimes) -> Result<usize, DbError> {
    let now = now_ms();
    Ok(conn.execute(
        "DELETE FROM sessions WHERE expires_at <= ?1 OR last_seen_at <= ?2",
        params![now, now - lifetimes.idle_ms],
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{testing::memory, users};

    const LIFE: Lifetimes = Lifetimes {
        idle_ms: 60_000,
        max_ms: 3_600_000,
    };

    #[test]
    fn a_session_resumes_until_idle() {
        let conn = memory();
        let user = users::create_guest(&conn, "g-1", "G").unwrap();
        let id = create(&conn, b"hash", user, "127.0.0.1", "ua", LIFE).unwrap();
        assert_eq!(resume(&conn, b"hash", LIFE).unwrap().unwrap().id, id);
        conn.execute("UPDATE sessions SET last_seen_at = last_seen_at - 60000", [])
            .unwrap();
        assert!(resume(&conn, b"hash", LIFE).unwrap().is_none());
        let left: i64 = conn
            .query_row("SELECT count(*) FROM sessions", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 0, "an expired session is deleted");
    }

    #[test]
    fn a_session_ends_at_its_absolute_lifetime() {
        let conn = memory();
        let user = users::create_guest(&conn, "g-1", "G").unwrap();
        create(&conn, b"hash", user, "127.0.0.1", "ua", LIFE).unwrap();
        conn.execute("UPDATE sessions SET expires_at = ?1", [now_ms() - 1])
            .unwrap();
        assert!(resume(&conn, b"hash", LIFE).unwrap().is_none());
    }

    #[test]
    fn deleting_a_user_ends_their_sessions() {
        let conn = memory();
        let user = users::create_guest(&conn, "g-1", "G").unwrap();
        create(&conn, b"hash", user, "127.0.0.1", "ua", LIFE).unwrap();
        users::delete(&conn, user).unwrap();
        assert!(resume(&conn, b"hash", LIFE).unwrap().is_none());
    }
}
