//! The `rooms` table: the lobby and the rooms people create.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use super::{now_ms, to_time, DbError};
use crate::ids::{RoomCode, UserId};

#[derive(Debug, Clone, Serialize)]
pub struct Room {
    #[serde(skip)]
    pub id: i64,
    pub code: RoomCode,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

pub fn get(conn: &Connection, code: &str) -> Result<Room, DbError> {
    conn.prepare_cached("SELECT id, code, name, created_at FROM rooms WHERE code = ?1")?
        .query_row([code], |r| {
            Ok(Room {
                id: r.get(0)?,
                code: RoomCode(r.get(1)?),
                name: r.get(2)?,
                created_at: to_time(r.get(3)?),
            })
        })
        .optional()?
        .ok_or(DbError::NotFound)
}

/// Creates a room under a fresh code from `new_code` (retried on the
/// vanishingly rare collision).
pub fn create(
    conn: &Connection,
    name: &str,
    created_by: UserId,
    mut new_code: impl FnMut() -> String,
) -> Result<Room, DbError> {
    for _ in 0..5 {
        let code = new_code();
        let inserted = conn.execute(
            "INSERT OR IGNORE INTO rooms (code, name, created_by, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![code, name, created_by, now_ms()],
        )?;
        if inserted == 1 {
            return get(conn, &code);
        }
    }
    Err(DbError::Conflict("could not find a free room code".into()))
}

/// The rooms a user entered most recently, newest first.
pub fn recent_for_user(conn: &Connection, user: UserId, limit: u32) -> Result<Vec<Room>, DbError> {
    let mut stmt = conn.prepare(
        "SELECT r.id, r.code, r.name, r.created_at FROM rooms r
         JOIN (SELECT room, max(id) AS last FROM audit_log
               WHERE user_id = ?1 AND action IN ('room_join', 'room_create') AND room IS NOT NULL
               GROUP BY room) visits ON visits.room = r.code
         ORDER BY visits.last DESC LIMIT ?2",
    )?;
    let rooms = stmt
        .query_map(params![user, limit], |r| {
            Ok(Room {
                id: r.get(0)?,
                code: RoomCode(r.get(1)?),
                name: r.get(2)?,
                created_at: to_time(r.get(3)?),
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rooms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{testing::memory, users};

    #[test]
    fn recent_rooms_are_newest_first_and_distinct() {
        let conn = memory();
        let user = users::create_guest(&conn, "g-1", "G").unwrap();
        let team = create(&conn, "Team", user, crate::auth::tokens::room_code).unwrap();
        for room in ["lobby", team.code.as_str(), "lobby"] {
            crate::db::audit::Event::new("room_join")
                .by(user, "g-1")
                .room(room)
                .record(&conn)
                .unwrap();
        }
        let recent: Vec<String> = recent_for_user(&conn, user, 10)
            .unwrap()
            .into_iter()
            .map(|r| r.code.0)
            .collect();
        assert_eq!(recent, vec!["lobby".to_owned(), team.code.0]);
    }

    #[test]
    fn a_code_collision_is_retried() {
        let conn = memory();
        let owner = users::create_guest(&conn, "g-1", "G").unwrap();
        let mut codes = ["lobby", "lobby", "abcd-efgh-jkmn"].into_iter().map(String::from);
        let room = create(&conn, "Team", owner, || codes.next().unwrap_or_default()).unwrap();
        assert_eq!(room.code.as_str(), "abcd-efgh-jkmn");
        assert_eq!(get(&conn, "lobby").unwrap().name, "Lobby");
    }
}
