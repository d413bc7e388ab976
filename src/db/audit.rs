//! The `audit_log` table: every significant event, written beside the action
//! it records, and read back through the admin log's filters.

use chrono::{DateTime, Utc};
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, Row};
use serde::Serialize;
use serde_json::json;

use super::filter::{contains_pattern, Filter, Where};
use super::{now_ms, to_time, DbError};
use crate::ids::UserId;

/// An event to record. Build with [`Event::new`] and the setters.
#[derive(Debug, Clone)]
pub struct Event {
    action: &'static str,
    user_id: Option<UserId>,
    username: Option<String>,
    ip: Option<String>,
    room: Option<String>,
    target_user_id: Option<UserId>,
    details: serde_json::Value,
}

impl Event {
    pub fn new(action: &'static str) -> Self {
        Self {
            action,
            user_id: None,
            username: None,
            ip: None,
            room: None,
            target_user_id: None,
            details: json!({}),
        }
    }

    /// The actor.
    pub fn by(mut self, user: UserId, username: &str) -> Self {
        self.user_id = Some(user);
        self.username = Some(username.to_owned());
        self
    }

    /// An actor known only by the name they typed (a failed login).
    pub fn by_name(mut self, username: &str) -> Self {
        self.username = Some(username.to_owned());
        self
    }

    pub fn ip(mut self, ip: &str) -> Self {
        self.ip = Some(ip.to_owned());
        self
    }

    pub fn room(mut self, room: &str) -> Self {
        self.room = Some(room.to_owned());
        self
    }

    pub fn target(mut self, user: UserId) -> Self {
        self.target_user_id = Some(user);
        self
    }

    pub fn details(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }

    pub fn record(&self, conn: &Connection) -> Result<(), DbError> {
        conn.prepare_cached(
            "INSERT INTO audit_log (ts, user_id, username, ip, action, room, target_user_id, details)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            now_ms(),
            self.user_id,
            self.username,
            self.ip,
            self.action,
            self.room,
            self.target_user_id,
            self.details.to_string()
        ])?;
        Ok(())
    }
}

/// The contract's `LogEntry`, plus the moderation target.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub id: i64,
    pub ts: DateTime<Utc>,
    pub user_id: Option<UserId>,
    pub username: Option<String>,
    pub ip: Option<String>,
    pub action: String,
    pub room: Option<String>,
    pub target_user_id: Option<UserId>,
    pub details: serde_json::Value,
}

fn entry_from_row(row: &Row<'_>) -> rusqlite::Result<Entry> {
    let details: String = row.get(8)?;
    Ok(Entry {
        id: row.get(0)?,
        ts: to_time(row.get(1)?),
        user_id: row.get(2)?,
        username: row.get(3)?,
        ip: row.get(4)?,
        action: row.get(5)?,
        room: row.get(6)?,
        target_user_id: row.get(7)?,
        details: serde_json::from_str(&details).unwrap_or(serde_json::Value::Null),
    })
}

fn where_clause(filter: &Filter) -> Where {
    let mut w = Where::default();
    if let Some(user) = &filter.user {
        match user.parse::<i64>() {
            Ok(id) => w.and(
                "(user_id = ? OR target_user_id = ?)",
                [Value::Integer(id), Value::Integer(id)],
            ),
            Err(_) => w.and("username = ? COLLATE NOCASE", [Value::Text(user.clone())]),
        };
    }
    if let Some(ip) = &filter.ip {
        w.and("ip = ?", [Value::Text(ip.clone())]);
    }
    if let Some(room) = &filter.room {
        w.and("room = ?", [Value::Text(room.clone())]);
    }
    if let Some(action) = &filter.action {
        w.and("action = ?", [Value::Text(action.clone())]);
    }
    if let Some(from) = filter.from {
        w.and("ts >= ?", [Value::Integer(from)]);
    }
    if let Some(to) = filter.to {
        w.and("ts <= ?", [Value::Integer(to)]);
    }
    if let Some(q) = &filter.q {
        let pattern = Value::Text(contains_pattern(q));
        w.and(
            "(details LIKE ? ESCAPE '\\' OR username LIKE ? ESCAPE '\\' OR action LIKE ? ESCAPE '\\')",
            [pattern.clone(), pattern.clone(), pattern],
        );
    }
    w
}

/// A page of entries, newest first, and how many match in all.
pub fn search(conn: &Connection, filter: &Filter) -> Result<(Vec<Entry>, i64), DbError> {
    let w = where_clause(filter);
    let total: i64 = conn.query_row(
        &format!("SELECT count(*) FROM audit_log {}", w.sql()),
        params_from_iter(w.params.iter()),
        |r| r.get(0),
    )?;
    let mut values = w.params.clone();
    values.extend([Value::Integer(filter.limit()), Value::Integer(filter.offset())]);
    let mut stmt = conn.prepare(&format!(
        "SELECT id, ts, user_id, username, ip, action, room, target_user_id, details
         FROM audit_log {} ORDER BY id DESC LIMIT ? OFFSET ?",
        w.sql()
    ))?;
    let entries = stmt
        .query_map(params_from_iter(values.iter()), entry_from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok((entries, total))
}

/// Deletes up to `limit` of the oldest entries recorded before `before_ms`.
pub fn delete_expired(conn: &Connection, before_ms: i64, limit: u32) -> Result<usize, DbError> {
    Ok(conn
        .prepare_cached(
            "DELETE FROM audit_log WHERE id IN (SELECT id FROM audit_log WHERE ts < ?1 ORDER BY ts LIMIT ?2)",
        )?
        .execute(params![before_ms, limit])?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::testing::memory;

    fn filter() -> Filter {
        Filter {
            page: 1,
            per_page: 50,
            ..Filter::default()
        }
    }

    #[test]
    fn filters_combine() {
        let conn = memory();
        let ann = crate::db::users::create_guest(&conn, "ann", "Ann").unwrap();
        Event::new("login").by(ann, "ann").ip("10.0.0.1").record(&conn).unwrap();
        Event::new("login_failed")
            .by_name("bob")
            .ip("10.0.0.2")
            .details(json!({"reason": "bad_password"}))
            .record(&conn)
            .unwrap();
        Event::new("room_join")
            .by(ann, "ann")
            .ip("10.0.0.1")
            .room("lobby")
            .record(&conn)
            .unwrap();

        let (all, total) = search(&conn, &filter()).unwrap();
        assert_eq!((all.len(), total), (3, 3));
        assert_eq!(all[0].action, "room_join", "newest first");

        let by_ip = Filter {
            ip: Some("10.0.0.1".into()),
            ..filter()
        };
        assert_eq!(search(&conn, &by_ip).unwrap().1, 2);
        let by_action = Filter {
            action: Some("login".into()),
            user: Some(ann.to_string()),
            ..filter()
        };
        assert_eq!(search(&conn, &by_action).unwrap().1, 1);
        let by_text = Filter {
            q: Some("bad_pass".into()),
            ..filter()
        };
        let (found, _) = search(&conn, &by_text).unwrap();
        assert_eq!(found[0].details["reason"], "bad_password");
        let by_name = Filter {
            user: Some("BOB".into()),
            ..filter()
        };
        assert_eq!(search(&conn, &by_name).unwrap().1, 1);
        let future = Filter {
            from: Some(now_ms() + 60_000),
            ..filter()
        };
        assert_eq!(search(&conn, &future).unwrap().1, 0);
    }

    #[test]
    fn expired_entries_go_in_batches_and_recent_ones_stay() {
        let conn = memory();
        for _ in 0..3 {
            Event::new("login").record(&conn).unwrap();
        }
        Event::new("logout").record(&conn).unwrap();
        conn.execute("UPDATE audit_log SET ts = 1 WHERE action = 'login'", [])
            .unwrap();
        assert_eq!(delete_expired(&conn, 2, 2).unwrap(), 2);
        assert_eq!(delete_expired(&conn, 2, 2).unwrap(), 1);
        assert_eq!(delete_expired(&conn, 2, 2).unwrap(), 0);
        let (left, _) = search(&conn, &filter()).unwrap();
        assert_eq!(left.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(), ["logout"]);
    }

    #[test]
    fn sql_metacharacters_are_data() {
        let conn = memory();
        Event::new("login")
            .by_name("x'; DROP TABLE users; --")
            .record(&conn)
            .unwrap();
        let f = Filter {
            user: Some("x'; DROP TABLE users; --".into()),
            ..filter()
        };
        assert_eq!(search(&conn, &f).unwrap().1, 1);
        let users: i64 = conn.query_row("SELECT count(*) FROM users", [], |r| r.get(0)).unwrap();
        assert_eq!(users, 0);
    }
}
