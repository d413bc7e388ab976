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
