//! The `invites` table: invitations to register while REGISTRATION=invite.
//! Only a code's hash is stored; each registration uses one of its uses, in
//! the transaction that creates the account.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;

use super::{now_ms, to_time, DbError};
use crate::ids::UserId;

/// An invitation as the admin API lists it (its code is shown only once,
/// when it is made).
#[derive(Debug, Clone, Serialize)]
pub struct Invite {
    pub id: i64,
    /// Registrations it allows in all.
    pub uses: u32,
    pub uses_left: u32,
    pub created_by: Option<UserId>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, uses, uses_left, created_by, created_at, expires_at";

fn invite_from_row(row: &Row<'_>) -> rusqlite::Result<Invite> {
    Ok(Invite {
        id: row.get(0)?,
        uses: row.get(1)?,
        uses_left: row.get(2)?,
        created_by: row.get(3)?,
        created_at: to_time(row.get(4)?),
        expires_at: to_time(row.get(5)?),
    })
}

pub fn create(
    conn: &Connection,
    code_hash: &[u8],
    uses: u32,
    expires_at: i64,
    created_by: UserId,
) -> Result<Invite, DbError> {
    conn.execute(
        "INSERT INTO invites (code_hash, uses, uses_left, created_by, created_at, expires_at)
         VALUES (?1, ?2, ?2, ?3, ?4, ?5)",
        params![code_hash, uses, created_by, now_ms(), expires_at],
    )?;
    get(conn, conn.last_insert_rowid())
}

pub fn get(conn: &Connection, id: i64) -> Result<Invite, DbError> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM invites WHERE id = ?1"),
        [id],
        invite_from_row,
    )
    .optional()?
    .ok_or(DbError::NotFound)
}

/// Every invitation not yet revoked or swept, newest first.
pub fn list(conn: &Connection) -> Result<Vec<Invite>, DbError> {
    let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM invites ORDER BY id DESC LIMIT 500"))?;
    let rows = stmt.query_map([], invite_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// True when the code names an invitation with a use left, unexpired.
pub fn usable(conn: &Connection, code_hash: &[u8]) -> Result<bool, DbError> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM invites WHERE code_hash = ?1 AND uses_left > 0 AND expires_at > ?2",
            params![code_hash, now_ms()],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

/// Uses one use of the invitation: its id, or `None` when the code is
/// unknown, used up or expired. Call in the transaction that registers.
pub fn use_one(conn: &Connection, code_hash: &[u8]) -> Result<Option<i64>, DbError> {
    Ok(conn
        .query_row(
            "UPDATE invites SET uses_left = uses_left - 1
             WHERE code_hash = ?1 AND uses_left > 0 AND expires_at > ?2 RETURNING id",
            params![code_hash, now_ms()],
            |r| r.get(0),
        )
        .optional()?)
}

pub fn revoke(conn: &Connection, id: i64) -> Result<(), DbError> {
    match conn.execute("DELETE FROM invites WHERE id = ?1", [id])? {
        0 => Err(DbError::NotFound),
        _ => Ok(()),
    }
}

/// Deletes invitations that are used up or have expired.
pub fn purge_spent(conn: &Connection) -> Result<usize, DbError> {
    Ok(conn.execute(
        "DELETE FROM invites WHERE uses_left <= 0 OR expires_at <= ?1",
        [now_ms()],
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::testing::memory;
    use crate::db::users;

    #[test]
    fn an_invite_allows_as_many_registrations_as_it_has_uses() {
        let conn = memory();
        let admin = users::create_guest(&conn, "boss", "B").unwrap();
        let invite = create(&conn, b"code", 2, now_ms() + 60_000, admin).unwrap();
        assert_eq!((invite.uses, invite.uses_left), (2, 2));
        assert!(usable(&conn, b"code").unwrap());
        assert!(!usable(&conn, b"other").unwrap());
        assert_eq!(use_one(&conn, b"code").unwrap(), Some(invite.id));
        assert_eq!(use_one(&conn, b"code").unwrap(), Some(invite.id));
        assert_eq!(use_one(&conn, b"code").unwrap(), None, "used up");
        assert!(!usable(&conn, b"code").unwrap());
        assert_eq!(purge_spent(&conn).unwrap(), 1);
        assert!(list(&conn).unwrap().is_empty());
    }

    #[test]
    fn an_expired_or_revoked_invite_does_nothing() {
        let conn = memory();
        let admin = users::create_guest(&conn, "boss", "B").unwrap();
        create(&conn, b"old", 5, now_ms() - 1, admin).unwrap();
        assert_eq!(use_one(&conn, b"old").unwrap(), None);
        let live = create(&conn, b"live", 5, now_ms() + 60_000, admin).unwrap();
        revoke(&conn, live.id).unwrap();
        assert_eq!(use_one(&conn, b"live").unwrap(), None);
        assert!(matches!(revoke(&conn, live.id), Err(DbError::NotFound)));
    }
}
