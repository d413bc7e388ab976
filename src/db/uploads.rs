//! The `uploads` table: files posted in rooms, where their bytes are, the
//! token that names them in their URL, and how much each user has stored.

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use super::{now_ms, DbError};
use crate::ids::{RoomCode, UserId};

/// A stored file, as messages and the upload answer show it.
#[derive(Debug, Clone, Serialize)]
pub struct Upload {
    pub id: i64,
    pub url: String,
    pub name: String,
    pub size: i64,
    pub content_type: String,
    /// The room it was posted in: a request must name it.
    #[serde(skip)]
    pub room: RoomCode,
    #[serde(skip)]
    pub stored_as: String,
}

#[derive(Debug, Clone)]
pub struct NewUpload {
    pub room_id: i64,
    pub room: RoomCode,
    pub user_id: UserId,
    pub name: String,
    pub size: i64,
    pub content_type: String,
    pub stored_as: String,
    /// Random, unguessable: with the room code, the file's address.
    pub token: String,
}

/// Where a file is served: its room's code and its token.
fn url_of(room: &RoomCode, token: &str) -> String {
    format!("/files/{room}/{token}")
}

pub fn insert(conn: &Connection, new: &NewUpload) -> Result<Upload, DbError> {
    conn.execute(
        "INSERT INTO uploads (room_id, user_id, name, size, content_type, stored_as, token, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            new.room_id,
            new.user_id,
            new.name,
            new.size,
            new.content_type,
            new.stored_as,
            new.token,
            now_ms()
        ],
    )?;
    Ok(Upload {
        id: conn.last_insert_rowid(),
        url: url_of(&new.room, &new.token),
        name: new.name.clone(),
        size: new.size,
        content_type: new.content_type.clone(),
        room: new.room.clone(),
        stored_as: new.stored_as.clone(),
    })
}

/// The file with this token, whatever its room (the caller compares).
pub fn by_token(conn: &Connection, token: &str) -> Result<Upload, DbError> {
    conn.query_row(
        "SELECT u.id, r.code, u.token, u.name, u.size, u.content_type, u.stored_as
         FROM uploads u JOIN rooms r ON r.id = u.room_id WHERE u.token = ?1",
        [token],
        |r| {
            let room = RoomCode(r.get(1)?);
            let token: String = r.get(2)?;
            Ok(Upload {
                id: r.get(0)?,
                url: url_of(&room, &token),
                name: r.get(3)?,
                size: r.get(4)?,
                content_type: r.get(5)?,
                room,
                stored_as: r.get(6)?,
            })
        },
    )
    .optional()?
    .ok_or(DbError::NotFound)
}

/// Bytes stored for `user`'s files, and for everyone's.
pub fn bytes_used(conn: &Connection, user: UserId) -> Result<(u64, u64), DbError> {
    let by_user: i64 = conn.query_row(
        "SELECT coalesce(sum(size), 0) FROM uploads WHERE user_id = ?1",
        [user],
        |r| r.get(0),
    )?;
    let total: i64 = conn.query_row("SELECT coalesce(sum(size), 0) FROM uploads", [], |r| r.get(0))?;
    Ok((by_user.max(0) as u64, total.max(0) as u64))
}

/// An upload past its retention time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expired {
    pub id: i64,
    pub created_at: i64,
}

/// Up to `limit` of the oldest uploads stored before `before_ms`.
pub fn expired(conn: &Connection, before_ms: i64, limit: u32) -> Result<Vec<Expired>, DbError> {
    let mut stmt =
        conn.prepare_cached("SELECT id, created_at FROM uploads WHERE created_at < ?1 ORDER BY id LIMIT ?2")?;
    let expired = stmt
        .query_map(params![before_ms, limit], |r| {
            Ok(Expired {
                id: r.get(0)?,
                created_at: r.get(1)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(expired)
}

/// Deletes these uploads' rows; answers the stored names of their files,
/// which the caller removes once the deletion is committed.
pub fn delete(conn: &Connection, ids: &[i64]) -> Result<Vec<String>, DbError> {
    let mut stmt = conn.prepare_cached("DELETE FROM uploads WHERE id = ?1 RETURNING stored_as")?;
    let mut files = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(stored_as) = stmt.query_row([id], |r| r.get(0)).optional()? {
            files.push(stored_as);
        }
    }
    Ok(files)
}

/// The stored names of every upload's file.
pub fn stored_names(conn: &Connection) -> Result<Vec<String>, DbError> {
    let mut stmt = conn.prepare("SELECT stored_as FROM uploads ORDER BY id")?;
    let names = stmt.query_map([], |r| r.get(0))?.collect::<Result<Vec<_>, _>>()?;
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{rooms, testing::memory, users};

    fn new(user: UserId, room: &rooms::Room, token: &str, size: i64) -> NewUpload {
        NewUpload {
            room_id: room.id,
            room: room.code.clone(),
            user_id: user,
            name: "a.txt".into(),
            size,
            content_type: "text/plain".into(),
            stored_as: format!("disk-{token}"),
            token: token.into(),
        }
    }

    #[test]
    fn files_are_found_by_token_with_their_room() {
        let conn = memory();
        let ann = users::create_guest(&conn, "ann", "Ann").unwrap();
        let lobby = rooms::get(&conn, "lobby").unwrap();
        let stored = insert(&conn, &new(ann, &lobby, "tok-1", 5)).unwrap();
        assert_eq!(stored.url, "/files/lobby/tok-1");
        let found = by_token(&conn, "tok-1").unwrap();
        assert_eq!(found.room, lobby.code);
        assert_eq!(found.stored_as, "disk-tok-1");
        assert!(matches!(by_token(&conn, "tok-2"), Err(DbError::NotFound)));
    }

    #[test]
    fn usage_adds_up_per_user_and_in_all() {
        let conn = memory();
        let ann = users::create_guest(&conn, "ann", "Ann").unwrap();
        let bob = users::create_guest(&conn, "bob", "Bob").unwrap();
        let lobby = rooms::get(&conn, "lobby").unwrap();
        assert_eq!(bytes_used(&conn, ann).unwrap(), (0, 0));
        insert(&conn, &new(ann, &lobby, "t1", 5)).unwrap();
        insert(&conn, &new(ann, &lobby, "t2", 7)).unwrap();
        insert(&conn, &new(bob, &lobby, "t3", 11)).unwrap();
        assert_eq!(bytes_used(&conn, ann).unwrap(), (12, 23));
        assert_eq!(bytes_used(&conn, bob).unwrap(), (11, 23));
    }

    /// An upload with token `token`, stored as `disk-<token>`.
    fn stored(conn: &Connection, token: &str) -> Upload {
        let user = users::create_guest(conn, &format!("g-{token}"), "G").unwrap();
        let lobby = rooms::get(conn, "lobby").unwrap();
        insert(conn, &new(user, &lobby, token, 1)).unwrap()
    }

    #[test]
    fn expired_uploads_are_listed_oldest_first_and_deleted_with_their_file_names() {
        let conn = memory();
        let old = stored(&conn, "old");
        let older = stored(&conn, "older");
        let recent = stored(&conn, "recent");
        conn.execute("UPDATE uploads SET created_at = 5 WHERE stored_as LIKE 'disk-old%'", [])
            .unwrap();
        let expired = expired(&conn, 10, 10).unwrap();
        assert_eq!(
            expired,
            [
                Expired {
                    id: old.id,
                    created_at: 5
                },
                Expired {
                    id: older.id,
                    created_at: 5
                }
            ]
        );
        assert_eq!(
            delete(&conn, &[old.id, older.id, 999]).unwrap(),
            ["disk-old", "disk-older"]
        );
        assert_eq!(stored_names(&conn).unwrap(), ["disk-recent"]);
        assert_eq!(by_token(&conn, "recent").unwrap().id, recent.id);
    }
}
