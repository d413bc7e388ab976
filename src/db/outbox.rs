//! The `outbox` table: mail waiting to be sent. A row is written in the same
//! transaction as what caused the mail, so a mail exists exactly when its
//! cause was committed; the mailer sends it and deletes it, or reschedules
//! it after a failure, or drops it when it has failed too often or its link
//! has expired.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{now_ms, DbError};

/// A mail to queue. `body` is sealed already (it may carry a one-time link).
#[derive(Debug, Clone)]
pub struct NewMail<'a> {
    pub kind: &'a str,
    pub to: &'a str,
    pub subject: &'a str,
    pub body: &'a str,
    /// Milliseconds since the epoch after which the mail is not worth sending.
    pub discard_at: Option<i64>,
}

/// A queued mail as the mailer reads it.
#[derive(Debug, Clone)]
pub struct QueuedMail {
    pub id: i64,
    pub kind: String,
    pub to: String,
    pub subject: String,
    pub body: String,
    pub created_at: i64,
    pub attempts: u32,
    pub discard_at: Option<i64>,
}

pub fn enqueue(conn: &Connection, mail: &NewMail<'_>) -> Result<i64, DbError> {
    let now = now_ms();
    conn.prepare_cached(
        "INSERT INTO outbox (kind, to_address, subject, body, created_at, next_attempt_at, discard_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6)",
    )?
    .execute(params![
        mail.kind,
        mail.to,
        mail.subject,
        mail.body,
        now,
        mail.discard_at
    ])?;
    Ok(conn.last_insert_rowid())
}

fn queued_from_row(row: &Row<'_>) -> rusqlite::Result<QueuedMail> {
    Ok(QueuedMail {
        id: row.get(0)?,
        kind: row.get(1)?,
        to: row.get(2)?,
        subject: row.get(3)?,
        body: row.get(4)?,
        created_at: row.get(5)?,
        attempts: row.get(6)?,
        discard_at: row.get(7)?,
    })
}

/// Up to `limit` mails whose next attempt is due at `now`, oldest first.
pub fn due(conn: &Connection, now: i64, limit: u32) -> Result<Vec<QueuedMail>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, kind, to_address, subject, body, created_at, attempts, discard_at FROM outbox
         WHERE next_attempt_at <= ?1 ORDER BY next_attempt_at, id LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![now, limit], queued_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// When the next mail is due, if any is queued.
pub fn next_due_at(conn: &Connection) -> Result<Option<i64>, DbError> {
    Ok(conn
        .query_row("SELECT min(next_attempt_at) FROM outbox", [], |r| r.get(0))
        .optional()?
        .flatten())
}

/// Sent, or given up: the row goes.
pub fn remove(conn: &Connection, id: i64) -> Result<(), DbError> {
    conn.execute("DELETE FROM outbox WHERE id = ?1", [id])?;
    Ok(())
}

/// A failed attempt: counted, with its error, and tried again at `next_at`.
pub fn reschedule(conn: &Connection, id: i64, attempts: u32, next_at: i64, error: &str) -> Result<(), DbError> {
    conn.execute(
        "UPDATE outbox SET attempts = ?2, next_attempt_at = ?3, last_error = ?4 WHERE id = ?1",
        params![id, attempts, next_at, error],
    )?;
    Ok(())
}

/// How many mails wait (for the metrics and the tests).
pub fn count(conn: &Connection) -> Result<i64, DbError> {
    Ok(conn.query_row("SELECT count(*) FROM outbox", [], |r| r.get(0))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::testing::memory;

    fn mail<'a>(to: &'a str) -> NewMail<'a> {
        NewMail {
            kind: "welcome",
            to,
            subject: "Hello",
            body: "sealed",
            discard_at: None,
        }
    }

    #[test]
    fn due_mail_comes_oldest_first_and_a_failure_waits() {
        let conn = memory();
        let first = enqueue(&conn, &mail("a@example.org")).unwrap();
        let second = enqueue(&conn, &mail("b@example.org")).unwrap();
        let now = now_ms();
        let due_now: Vec<i64> = due(&conn, now, 10).unwrap().iter().map(|m| m.id).collect();
        assert_eq!(due_now, vec![first, second]);
        reschedule(&conn, first, 1, now + 60_000, "connection refused").unwrap();
        let due_now: Vec<i64> = due(&conn, now, 10).unwrap().iter().map(|m| m.id).collect();
        assert_eq!(due_now, vec![second]);
        remove(&conn, second).unwrap();
        assert_eq!(next_due_at(&conn).unwrap(), Some(now + 60_000));
        let later = due(&conn, now + 60_000, 10).unwrap();
        assert_eq!((later[0].id, later[0].attempts), (first, 1));
        remove(&conn, first).unwrap();
        assert_eq!(next_due_at(&conn).unwrap(), None);
        assert_eq!(count(&conn).unwrap(), 0);
    }
}
