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
