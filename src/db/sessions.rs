//! The `sessions` table: server-side login sessions, keyed by the SHA-256 of
//! the cookie token (the token itself is never stored).

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};

use super::{now_ms, to_time, DbError};
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

/// Where a request with a session comes from: remembered as the session's
/// last address and browser.
#[derive(Debug, Clone, Copy)]
pub struct Seen<'a> {
    pub ip: &'a str,
    pub user_agent: &'a str,
}

/// A new session; its public id is 128 random bits from SQLite's CSPRNG
/// (it names the session to its owner and grants nothing by itself).
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
        "INSERT INTO sessions (token_hash, public_id, user_id, ip, user_agent, last_ip, last_user_agent,
                               created_at, last_seen_at, expires_at)
         VALUES (?1, lower(hex(randomblob(16))), ?2, ?3, ?4, ?3, ?4, ?5, ?5, ?6)",
        params![token_hash, user, ip, user_agent, now, now + lifetimes.max_ms],
    )?;
    Ok(conn.last_insert_rowid())
}

/// The live session for `token_hash`, recording activity and, when they
/// changed, the address and browser it is used from. A session past its
/// idle timeout or absolute lifetime is deleted and not returned.
pub fn resume(
    conn: &Connection,
    token_hash: &[u8],
    lifetimes: Lifetimes,
    seen: Seen<'_>,
) -> Result<Option<SessionRow>, DbError> {
    let now = now_ms();
    let found = conn
        .query_row(
            "SELECT id, user_id, last_seen_at, expires_at, last_ip = ?2 AND last_user_agent = ?3
             FROM sessions WHERE token_hash = ?1",
            params![token_hash, seen.ip, seen.user_agent],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, bool>(4)?,
                ))
            },
        )
        .optional()?;
    let Some((id, user_id, last_seen, expires_at, same_place)) = found else {
        return Ok(None);
    };
    if now >= expires_at || now - last_seen >= lifetimes.idle_ms {
        conn.execute("DELETE FROM sessions WHERE id = ?1", [id])?;
        return Ok(None);
    }
    if !same_place {
        conn.execute(
            "UPDATE sessions SET last_seen_at = ?2, last_ip = ?3, last_user_agent = ?4 WHERE id = ?1",
            params![id, now, seen.ip, seen.user_agent],
        )?;
    } else if now - last_seen >= TOUCH_EVERY_MS {
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

/// Ends every session of `user` but `keep`: the ids of those ended, whose
/// sockets the caller closes.
pub fn delete_others(conn: &Connection, user: UserId, keep: i64) -> Result<Vec<i64>, DbError> {
    let mut stmt = conn.prepare_cached("DELETE FROM sessions WHERE user_id = ?1 AND id != ?2 RETURNING id")?;
    let ended = stmt.query_map(params![user, keep], |r| r.get(0))?;
    Ok(ended.collect::<Result<_, _>>()?)
}

/// Ends the session of `user` whose public id is `public_id`: its id, or
/// `None` when `user` has no such session (another user's is no such).
pub fn delete_public(conn: &Connection, user: UserId, public_id: &str) -> Result<Option<i64>, DbError> {
    Ok(conn
        .query_row(
            "DELETE FROM sessions WHERE user_id = ?1 AND public_id = ?2 RETURNING id",
            params![user, public_id],
            |r| r.get(0),
        )
        .optional()?)
}

/// A login session as its owner sees it.
#[derive(Debug, Clone)]
pub struct OwnSession {
    pub id: i64,
    pub public_id: String,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub last_ip: String,
    pub last_user_agent: String,
}

/// The live sessions of `user`, most recently used first.
pub fn of_user(conn: &Connection, user: UserId, lifetimes: Lifetimes) -> Result<Vec<OwnSession>, DbError> {
    let now = now_ms();
    let mut stmt = conn.prepare_cached(
        "SELECT id, public_id, created_at, last_seen_at, last_ip, last_user_agent FROM sessions
         WHERE user_id = ?1 AND expires_at > ?2 AND last_seen_at > ?3
         ORDER BY last_seen_at DESC, id DESC",
    )?;
    let rows = stmt.query_map(params![user, now, now - lifetimes.idle_ms], |r| {
        Ok(OwnSession {
            id: r.get(0)?,
            public_id: r.get(1)?,
            created_at: to_time(r.get(2)?),
            last_seen_at: to_time(r.get(3)?),
            last_ip: r.get(4)?,
            last_user_agent: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
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
    const HERE: Seen<'static> = Seen {
        ip: "127.0.0.1",
        user_agent: "ua",
    };

    #[test]
    fn the_owner_lists_and_ends_a_session_by_its_public_id() {
        let conn = memory();
        let ann = users::create_guest(&conn, "ann", "A").unwrap();
        let bob = users::create_guest(&conn, "bob", "B").unwrap();
        let first = create(&conn, b"h1", ann, "127.0.0.1", "ua", LIFE).unwrap();
        let second = create(&conn, b"h2", ann, "127.0.0.1", "ua", LIFE).unwrap();
        create(&conn, b"h3", bob, "127.0.0.1", "ua", LIFE).unwrap();
        let listed = of_user(&conn, ann, LIFE).unwrap();
        assert_eq!(listed.len(), 2);
        let public = listed.iter().find(|s| s.id == first).unwrap().public_id.clone();
        assert_eq!(public.len(), 32, "128 bits in hex");
        assert_ne!(public, listed.iter().find(|s| s.id == second).unwrap().public_id);
        assert_eq!(delete_public(&conn, bob, &public).unwrap(), None, "not bob's");
        assert_eq!(delete_public(&conn, ann, &public).unwrap(), Some(first));
        assert_eq!(delete_public(&conn, ann, &public).unwrap(), None, "gone");
        assert_eq!(delete_others(&conn, ann, 0).unwrap(), vec![second]);
        assert_eq!(of_user(&conn, bob, LIFE).unwrap().len(), 1);
    }

    #[test]
    fn a_session_remembers_where_it_was_last_used() {
        let conn = memory();
        let ann = users::create_guest(&conn, "ann", "A").unwrap();
        create(&conn, b"hash", ann, "127.0.0.1", "ua", LIFE).unwrap();
        let moved = Seen {
            ip: "198.51.100.7",
            user_agent: "Firefox",
        };
        resume(&conn, b"hash", LIFE, moved).unwrap().unwrap();
        let listed = of_user(&conn, ann, LIFE).unwrap();
        assert_eq!(listed[0].last_ip, "198.51.100.7");
        assert_eq!(listed[0].last_user_agent, "Firefox");
        let created_at: String = conn.query_row("SELECT ip FROM sessions", [], |r| r.get(0)).unwrap();
        assert_eq!(created_at, "127.0.0.1", "bans still see where it was made");
    }

    #[test]
    fn a_session_resumes_until_idle() {
        let conn = memory();
        let user = users::create_guest(&conn, "g-1", "G").unwrap();
        let id = create(&conn, b"hash", user, "127.0.0.1", "ua", LIFE).unwrap();
        assert_eq!(resume(&conn, b"hash", LIFE, HERE).unwrap().unwrap().id, id);
        conn.execute("UPDATE sessions SET last_seen_at = last_seen_at - 60000", [])
            .unwrap();
        assert!(resume(&conn, b"hash", LIFE, HERE).unwrap().is_none());
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
        assert!(resume(&conn, b"hash", LIFE, HERE).unwrap().is_none());
    }

    #[test]
    fn deleting_a_user_ends_their_sessions() {
        let conn = memory();
        let user = users::create_guest(&conn, "g-1", "G").unwrap();
        create(&conn, b"hash", user, "127.0.0.1", "ua", LIFE).unwrap();
        users::delete(&conn, user).unwrap();
        assert!(resume(&conn, b"hash", LIFE, HERE).unwrap().is_none());
    }
}
