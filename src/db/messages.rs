//! The `messages` table: chat history per room, with each sender's IP for
//! moderation.

use chrono::{DateTime, Utc};
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection, Row};
use serde::Serialize;
use serde_json::Value;

use super::filter::{contains_pattern, Filter, Where};
use super::{now_ms, to_time, DbError};
use crate::ids::{RoomCode, UserId};

/// The contract's `Message`; `ip` only in the admin message log.
#[derive(Debug, Clone, Serialize)]
pub struct Message {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: i64,
    pub room: RoomCode,
    pub user_id: Option<UserId>,
    pub username: String,
    /// The sender's display name when the message was sent.
    pub display_name: String,
    pub text: String,
    pub ts: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attachment: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewMessage {
    pub room_id: i64,
    pub room: RoomCode,
    pub user_id: UserId,
    pub username: String,
    pub display_name: String,
    pub text: String,
    pub ip: String,
    pub nonce: Option<String>,
    pub attachment: Option<Value>,
}

pub fn insert(conn: &Connection, new: &NewMessage) -> Result<Message, DbError> {
    let ts = now_ms();
    conn.prepare_cached(
        "INSERT INTO messages (room_id, user_id, username, display_name, text, ts, ip, nonce, attachment)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        new.room_id,
        new.user_id,
        new.username,
        new.display_name,
        new.text,
        ts,
        new.ip,
        new.nonce,
        new.attachment.as_ref().map(Value::to_string)
    ])?;
    Ok(Message {
        kind: "message",
        id: conn.last_insert_rowid(),
        room: new.room.clone(),
        user_id: Some(new.user_id),
        username: new.username.clone(),
        display_name: new.display_name.clone(),
        text: new.text.clone(),
        ts: to_time(ts),
        nonce: new.nonce.clone(),
        attachment: new.attachment.clone(),
        ip: None,
    })
}

const COLUMNS: &str =
    "m.id, r.code, m.user_id, m.username, m.text, m.ts, m.nonce, m.attachment, m.ip, coalesce(m.display_name, m.username)";

fn message_from_row(row: &Row<'_>, with_ip: bool) -> rusqlite::Result<Message> {
    let attachment: Option<String> = row.get(7)?;
    Ok(Message {
        kind: "message",
        id: row.get(0)?,
        room: RoomCode(row.get(1)?),
        user_id: row.get(2)?,
        username: row.get(3)?,
        display_name: row.get(9)?,
        text: row.get(4)?,
        ts: to_time(row.get(5)?),
        nonce: row.get(6)?,
        attachment: attachment.and_then(|a| serde_json::from_str(&a).ok()),
        ip: if with_ip { row.get(8)? } else { None },
    })
}

/// Up to `limit` messages of a room older than `before` (or the newest),
/// oldest first.
pub fn page(conn: &Connection, room_id: i64, before: Option<i64>, limit: u32) -> Result<Vec<Message>, DbError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM messages m JOIN rooms r ON r.id = m.room_id
         WHERE m.room_id = ?1 AND m.id < ?2 ORDER BY m.id DESC LIMIT ?3"
    ))?;
    let mut messages = stmt
        .query_map(params![room_id, before.unwrap_or(i64::MAX), limit], |r| {
            message_from_row(r, false)
        })?
        .collect::<Result<Vec<_>, _>>()?;
    messages.reverse();
    Ok(messages)
}

/// The admin message log: filtered, newest first, with sender IPs.
pub fn search(conn: &Connection, filter: &Filter) -> Result<(Vec<Message>, i64), DbError> {
    let mut w = Where::default();
    if let Some(user) = &filter.user {
        match user.parse::<i64>() {
            Ok(id) => w.and("m.user_id = ?", [SqlValue::Integer(id)]),
            Err(_) => w.and("m.username = ? COLLATE NOCASE", [SqlValue::Text(user.clone())]),
        };
    }
    if let Some(ip) = &filter.ip {
        w.and("m.ip = ?", [SqlValue::Text(ip.clone())]);
    }
    if let Some(room) = &filter.room {
        w.and("r.code = ?", [SqlValue::Text(room.clone())]);
    }
    if let Some(from) = filter.from {
        w.and("m.ts >= ?", [SqlValue::Integer(from)]);
    }
    if let Some(to) = filter.to {
        w.and("m.ts <= ?", [SqlValue::Integer(to)]);
    }
    if let Some(q) = &filter.q {
        w.and("m.text LIKE ? ESCAPE '\\'", [SqlValue::Text(contains_pattern(q))]);
    }
    let from = "FROM messages m JOIN rooms r ON r.id = m.room_id";
    let total: i64 = conn.query_row(
        &format!("SELECT count(*) {from} {}", w.sql()),
        params_from_iter(w.params.iter()),
        |r| r.get(0),
    )?;
    let mut values = w.params.clone();
    values.extend([SqlValue::Integer(filter.limit()), SqlValue::Integer(filter.offset())]);
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} {from} {} ORDER BY m.id DESC LIMIT ? OFFSET ?",
        w.sql()
    ))?;
    let messages = stmt
        .query_map(params_from_iter(values.iter()), |r| message_from_row(r, true))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok((messages, total))
}

/// The upload id in a stored attachment, or NULL (malformed JSON included,
/// so one bad row cannot stall retention).
const ATTACHED_UPLOAD: &str = "CASE WHEN json_valid(attachment) THEN json_extract(attachment, '$.id') END";

/// Deletes up to `limit` of the oldest messages sent before `before_ms`:
/// how many went, and the uploads they carried.
pub fn delete_expired(conn: &Connection, before_ms: i64, limit: u32) -> Result<(usize, Vec<i64>), DbError> {
    let mut stmt = conn.prepare_cached(&format!(
        "DELETE FROM messages WHERE id IN (SELECT id FROM messages WHERE ts < ?1 ORDER BY ts LIMIT ?2)
         RETURNING {ATTACHED_UPLOAD}"
    ))?;
    let attached = stmt
        .query_map(params![before_ms, limit], |r| r.get::<_, Option<i64>>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    let deleted = attached.len();
    Ok((deleted, attached.into_iter().flatten().collect()))
}

/// The messages that carry upload `upload_id`. A file's message is stored
/// right after the upload, so only messages sent from a minute before to an
/// hour after `uploaded_ms` are looked at (through the time index).
pub fn carrying_upload(conn: &Connection, upload_id: i64, uploaded_ms: i64) -> Result<Vec<i64>, DbError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT id FROM messages
         WHERE ts BETWEEN ?2 - 60000 AND ?2 + 3600000 AND attachment IS NOT NULL AND {ATTACHED_UPLOAD} = ?1"
    ))?;
    let ids = stmt
        .query_map(params![upload_id, uploaded_ms], |r| r.get(0))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ids)
}

pub fn delete_ids(conn: &Connection, ids: &[i64]) -> Result<usize, DbError> {
    let mut stmt = conn.prepare_cached("DELETE FROM messages WHERE id = ?1")?;
    let mut deleted = 0;
    for id in ids {
        deleted += stmt.execute([id])?;
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{rooms, testing::memory, users};

    fn new(room_id: i64, user: UserId, text: &str, ip: &str) -> NewMessage {
        NewMessage {
            room_id,
            room: RoomCode::lobby(),
            user_id: user,
            username: "ann".into(),
            display_name: "Ann".into(),
            text: text.into(),
            ip: ip.into(),
            nonce: None,
            attachment: None,
        }
    }

    #[test]
    fn pages_go_back_in_time_oldest_first() {
        let conn = memory();
        let user = users::create_guest(&conn, "ann", "Ann").unwrap();
        let lobby = rooms::get(&conn, "lobby").unwrap();
        let ids: Vec<i64> = (0..10)
            .map(|i| {
                insert(&conn, &new(lobby.id, user, &format!("m{i}"), "10.0.0.1"))
                    .unwrap()
                    .id
            })
            .collect();
        let newest = page(&conn, lobby.id, None, 3).unwrap();
        assert_eq!(
            newest.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(),
            ["m7", "m8", "m9"]
        );
        let older = page(&conn, lobby.id, Some(ids[7]), 3).unwrap();
        assert_eq!(
            older.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(),
            ["m4", "m5", "m6"]
        );
        assert!(newest[0].ip.is_none(), "IPs are for admins only");
        assert_eq!(newest[0].display_name, "Ann", "the name at the time is kept");
    }

    #[test]
    fn expiry_takes_the_oldest_first_and_names_their_uploads() {
        let conn = memory();
        let user = users::create_guest(&conn, "ann", "Ann").unwrap();
        let lobby = rooms::get(&conn, "lobby").unwrap();
        let mut with_file = new(lobby.id, user, "photo.png", "10.0.0.1");
        with_file.attachment = Some(serde_json::json!({"id": 7, "url": "/files/7"}));
        let mut broken = new(lobby.id, user, "broken", "10.0.0.1");
        broken.attachment = Some(Value::String("not an object".into()));
        for message in [new(lobby.id, user, "old", "10.0.0.1"), with_file, broken] {
            insert(&conn, &message).unwrap();
        }
        insert(&conn, &new(lobby.id, user, "new", "10.0.0.1")).unwrap();
        conn.execute("UPDATE messages SET ts = 1000 WHERE text != 'new'", [])
            .unwrap();
        conn.execute("UPDATE messages SET ts = 900 WHERE text = 'old'", [])
            .unwrap();

        assert_eq!(delete_expired(&conn, 2000, 1).unwrap(), (1, vec![]), "the oldest first");
        assert_eq!(delete_expired(&conn, 2000, 10).unwrap(), (2, vec![7]));
        assert_eq!(delete_expired(&conn, 2000, 10).unwrap(), (0, vec![]));
        let left = page(&conn, lobby.id, None, 10).unwrap();
        assert_eq!(left.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(), ["new"]);
    }

    #[test]
    fn an_uploads_message_is_found_near_its_time() {
        let conn = memory();
        let user = users::create_guest(&conn, "ann", "Ann").unwrap();
        let lobby = rooms::get(&conn, "lobby").unwrap();
        let mut with_file = new(lobby.id, user, "photo.png", "10.0.0.1");
        with_file.attachment = Some(serde_json::json!({"id": 7, "url": "/files/7"}));
        let id = insert(&conn, &with_file).unwrap().id;
        insert(&conn, &new(lobby.id, user, "{\"id\": 7}", "10.0.0.1")).unwrap();
        let ts: i64 = conn
            .query_row("SELECT ts FROM messages WHERE id = ?1", [id], |r| r.get(0))
            .unwrap();
        assert_eq!(carrying_upload(&conn, 7, ts - 5).unwrap(), vec![id]);
        assert_eq!(carrying_upload(&conn, 8, ts).unwrap(), Vec::<i64>::new());
        assert_eq!(carrying_upload(&conn, 7, ts - 7_200_000).unwrap(), Vec::<i64>::new());
        assert_eq!(delete_ids(&conn, &[id]).unwrap(), 1);
    }

    #[test]
    fn admin_search_filters_and_shows_ips() {
        let conn = memory();
        let user = users::create_guest(&conn, "ann", "Ann").unwrap();
        let lobby = rooms::get(&conn, "lobby").unwrap();
        insert(&conn, &new(lobby.id, user, "hello world", "10.0.0.1")).unwrap();
        insert(&conn, &new(lobby.id, user, "100% sure", "10.0.0.2")).unwrap();
        let f = Filter {
            q: Some("100%".into()),
            page: 1,
            per_page: 50,
            ..Filter::default()
        };
        let (found, total) = search(&conn, &f).unwrap();
        assert_eq!(total, 1);
        assert_eq!(found[0].ip.as_deref(), Some("10.0.0.2"));
        let f = Filter {
            ip: Some("10.0.0.1".into()),
            room: Some("lobby".into()),
            page: 1,
            per_page: 50,
            ..Filter::default()
        };
        assert_eq!(search(&conn, &f).unwrap().1, 1);
    }
}
