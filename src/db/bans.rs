//! The `bans` table: user and IP bans with an optional expiry. A ban is
//! active until it expires or is lifted; lifted bans stay for the record.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;

use super::{now_ms, to_time, DbError};
use crate::ids::UserId;

/// The contract's `Ban`.
#[derive(Debug, Clone, Serialize)]
pub struct Ban {
    pub id: i64,
    pub user_id: Option<UserId>,
    pub ip: Option<String>,
    pub reason: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_by: Option<UserId>,
    /// The banned user's name, for people reading the list.
    pub username: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewBan {
    pub user_id: Option<UserId>,
    pub ip: Option<String>,
    pub reason: String,
    pub expires_at: Option<i64>,
    pub created_by: UserId,
}

const COLUMNS: &str = "id, user_id, ip, reason, created_at, expires_at, created_by,
    (SELECT username FROM users WHERE users.id = bans.user_id)";
const ACTIVE: &str = "lifted_at IS NULL AND (expires_at IS NULL OR expires_at > ?1)";

fn ban_from_row(row: &Row<'_>) -> rusqlite::Result<Ban> {
    Ok(Ban {
        id: row.get(0)?,
        user_id: row.get(1)?,
        ip: row.get(2)?,
        reason: row.get(3)?,
        created_at: to_time(row.get(4)?),
        expires_at: row.get::<_, Option<i64>>(5)?.map(to_time),
        created_by: row.get(6)?,
        username: row.get(7)?,
    })
}

/// The active ban that covers this user or this IP, if any. An IP ban
/// covers its address's scope (crate::ip_scope: IPv6 by /64).
pub fn active_for(conn: &Connection, user: Option<UserId>, ip: Option<&str>) -> Result<Option<Ban>, DbError> {
    if user.is_none() && ip.is_none() {
        return Ok(None);
    }
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM bans WHERE {ACTIVE} AND (user_id = ?2 OR ip_scope(ip) = ip_scope(?3)) ORDER BY id DESC LIMIT 1"
        ))?
        .query_row(params![now_ms(), user, ip], ban_from_row)
        .optional()?)
}

pub fn create(conn: &Connection, ban: &NewBan) -> Result<Ban, DbError> {
    conn.execute(
        "INSERT INTO bans (user_id, ip, reason, created_at, expires_at, created_by) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            ban.user_id,
            ban.ip,
            ban.reason,
            now_ms(),
            ban.expires_at,
            ban.created_by
        ],
    )?;
    get(conn, conn.last_insert_rowid())
}

pub fn get(conn: &Connection, id: i64) -> Result<Ban, DbError> {
    conn.query_row(&format!("SELECT {COLUMNS} FROM bans WHERE id = ?1"), [id], ban_from_row)
        .optional()?
        .ok_or(DbError::NotFound)
}

/// Every ban in force, newest first.
pub fn list_active(conn: &Connection) -> Result<Vec<Ban>, DbError> {
    let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM bans WHERE {ACTIVE} ORDER BY id DESC"))?;
    let rows = stmt.query_map([now_ms()], ban_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Lifts an active ban; a ban already lifted or expired is not found.
pub fn lift(conn: &Connection, id: i64) -> Result<Ban, DbError> {
    let changed = conn.execute(
        &format!("UPDATE bans SET lifted_at = ?1 WHERE id = ?2 AND {ACTIVE}"),
        params![now_ms(), id],
    )?;
    if changed == 0 {
        return Err(DbError::NotFound);
    }
    get(conn, id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{testing::memory, users};

    fn ban(user: Option<UserId>, ip: Option<&str>, expires_at: Option<i64>, by: UserId) -> NewBan {
        NewBan {
            user_id: user,
            ip: ip.map(String::from),
            reason: "spam".into(),
            expires_at,
            created_by: by,
        }
    }

    #[test]
    fn bans_cover_users_and_ips_until_lifted() {
        let conn = memory();
        let admin = users::create_guest(&conn, "admin-g", "A").unwrap();
        let target = users::create_guest(&conn, "target-g", "T").unwrap();
        let by_user = create(&conn, &ban(Some(target), None, None, admin)).unwrap();
        create(&conn, &ban(None, Some("10.9.9.9"), None, admin)).unwrap();
        let found = active_for(&conn, Some(target), Some("127.0.0.1")).unwrap().unwrap();
        assert_eq!(found.username.as_deref(), Some("target-g"));
        assert!(active_for(&conn, Some(admin), Some("10.9.9.9")).unwrap().is_some());
        assert!(active_for(&conn, Some(admin), Some("127.0.0.1")).unwrap().is_none());
        lift(&conn, by_user.id).unwrap();
        assert!(active_for(&conn, Some(target), None).unwrap().is_none());
        assert!(matches!(lift(&conn, by_user.id), Err(DbError::NotFound)));
        assert_eq!(list_active(&conn).unwrap().len(), 1);
    }

    #[test]
    fn an_ipv6_ban_covers_its_slash_64() {
        let conn = memory();
        let admin = users::create_guest(&conn, "admin-g", "A").unwrap();
        create(&conn, &ban(None, Some("2001:db8:1:2::99"), None, admin)).unwrap();
        assert!(active_for(&conn, None, Some("2001:db8:1:2::1")).unwrap().is_some());
        assert!(active_for(&conn, None, Some("2001:db8:1:3::99")).unwrap().is_none());
    }

    #[test]
    fn expired_bans_are_not_active() {
        let conn = memory();
        let admin = users::create_guest(&conn, "admin-g", "A").unwrap();
        create(&conn, &ban(None, Some("10.1.1.1"), Some(now_ms() - 1), admin)).unwrap();
        assert!(active_for(&conn, None, Some("10.1.1.1")).unwrap().is_none());
    }
}
