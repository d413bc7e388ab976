//! The `uploads` table: files posted in rooms, and where their bytes are.

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use super::{now_ms, DbError};
use crate::ids::UserId;

/// A stored file, as messages and the upload answer show it.
#[derive(Debug, Clone, Serialize)]
pub struct Upload {
    pub id: i64,
    pub url: String,
    pub name: String,
    pub size: i64,
    pub content_type: String,
    #[serde(skip)]
    pub stored_as: String,
}

#[derive(Debug, Clone)]
pub struct NewUpload {
    pub room_id: i64,
    pub user_id: UserId,
    pub name: String,
    pub size: i64,
    pub content_type: String,
    pub stored_as: String,
}

fn url_of(id: i64) -> String {
    format!("/files/{id}")
}

pub fn insert(conn: &Connection, new: &NewUpload) -> Result<Upload, DbError> {
    conn.execute(
        "INSERT INTO uploads (room_id, user_id, name, size, content_type, stored_as, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            new.room_id,
            new.user_id,
            new.name,
            new.size,
            new.content_type,
            new.stored_as,
            now_ms()
        ],
    )?;
    let id = conn.last_insert_rowid();
    Ok(Upload {
        id,
        url: url_of(id),
        name: new.name.clone(),
        size: new.size,
        content_type: new.content_type.clone(),
        stored_as: new.stored_as.clone(),
    })
}

pub fn get(conn: &Connection, id: i64) -> Result<Upload, DbError> {
    conn.query_row(
        "SELECT id, name, size, content_type, stored_as FROM uploads WHERE id = ?1",
        [id],
        |r| {
            Ok(Upload {
                id: r.get(0)?,
                url: url_of(r.get(0)?),
                name: r.get(1)?,
                size: r.get(2)?,
                content_type: r.get(3)?,
                stored_as: r.get(4)?,
            })
        },
    )
    .optional()?
    .ok_or(DbError::NotFound)
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

    fn stored(conn: &Connection, stored_as: &str) -> Upload {
        let user = users::create_guest(conn, &format!("g-{stored_as}"), "G").unwrap();
        let lobby = rooms::get(conn, "lobby").unwrap();
        insert(
            conn,
            &NewUpload {
                room_id: lobby.id,
                user_id: user,
                name: "a.txt".into(),
                size: 1,
                content_type: "text/plain".into(),
                stored_as: stored_as.into(),
            },
        )
        .unwrap()
    }

    #[test]
    fn expired_uploads_are_listed_oldest_first_and_deleted_with_their_file_names() {
        let conn = memory();
        let old = stored(&conn, "old");
        let older = stored(&conn, "older");
        let recent = stored(&conn, "recent");
        conn.execute("UPDATE uploads SET created_at = 5 WHERE stored_as LIKE 'old%'", [])
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
        assert_eq!(delete(&conn, &[old.id, older.id, 999]).unwrap(), ["old", "older"]);
        assert_eq!(stored_names(&conn).unwrap(), ["recent"]);
        assert_eq!(get(&conn, recent.id).unwrap().stored_as, "recent");
    }
}
