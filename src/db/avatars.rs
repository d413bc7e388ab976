//! The `avatars` table: one picture per user, its bytes in the database
//! (at most 1 MB, so a copy of the database is a copy of the pictures).
//! Each picture has a random token that names it in its URL; a new picture
//! gets a new token, so a URL never changes what it shows.

use rusqlite::{params, Connection, OptionalExtension};

use super::{now_ms, DbError};
use crate::ids::UserId;

/// A picture as stored and served.
#[derive(Debug, Clone)]
pub struct Avatar {
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// Where the picture with `token` is served.
pub fn url(token: &str) -> String {
    format!("/avatars/{token}")
}

/// Puts `avatar` under `token` in place of the user's picture, if any.
pub fn set(conn: &Connection, user: UserId, token: &str, avatar: &Avatar) -> Result<(), DbError> {
    conn.execute(
        "INSERT INTO avatars (user_id, token, content_type, bytes, created_at) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (user_id) DO UPDATE SET token = excluded.token, content_type = excluded.content_type,
             bytes = excluded.bytes, created_at = excluded.created_at",
        params![user, token, avatar.content_type, avatar.bytes, now_ms()],
    )?;
    Ok(())
}

/// Removes the user's picture: true when there was one.
pub fn remove(conn: &Connection, user: UserId) -> Result<bool, DbError> {
    Ok(conn.execute("DELETE FROM avatars WHERE user_id = ?1", [user])? == 1)
}

/// The picture named `token`.
pub fn by_token(conn: &Connection, token: &str) -> Result<Avatar, DbError> {
    conn.query_row(
        "SELECT content_type, bytes FROM avatars WHERE token = ?1",
        [token],
        |r| {
            Ok(Avatar {
                content_type: r.get(0)?,
                bytes: r.get(1)?,
            })
        },
    )
    .optional()?
    .ok_or(DbError::NotFound)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{testing::memory, users};

    #[test]
    fn a_new_picture_gets_a_new_url_and_the_old_one_goes() {
        let conn = memory();
        let ann = users::create_guest(&conn, "ann", "Ann").unwrap();
        assert_eq!(users::get(&conn, ann).unwrap().avatar_url, None);
        let png = Avatar {
            content_type: "image/png".into(),
            bytes: vec![1, 2, 3],
        };
        set(&conn, ann, "first", &png).unwrap();
        assert_eq!(
            users::get(&conn, ann).unwrap().avatar_url.as_deref(),
            Some("/avatars/first")
        );
        set(&conn, ann, "second", &png).unwrap();
        assert_eq!(
            users::get(&conn, ann).unwrap().avatar_url.as_deref(),
            Some("/avatars/second")
        );
        assert!(matches!(by_token(&conn, "first"), Err(DbError::NotFound)));
        assert_eq!(by_token(&conn, "second").unwrap().bytes, vec![1, 2, 3]);
        assert!(remove(&conn, ann).unwrap());
        assert!(!remove(&conn, ann).unwrap());
        assert_eq!(users::get(&conn, ann).unwrap().avatar_url, None);
    }
}
