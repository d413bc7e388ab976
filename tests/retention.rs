//! Retention: with MESSAGE_RETENTION_DAYS, UPLOAD_RETENTION_DAYS and
//! AUDIT_RETENTION_DAYS set, the janitor deletes what is older (an upload's
//! file and its message together) and keeps everything newer. Rows are aged
//! by rewriting their timestamps in the database while the server is down,
//! so the test takes seconds, not days.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a failed step should fail the test"
)]
mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{texts_of, Api, Server, Ws, PASSWORD};
use reqwest::Method;
use serde_json::{json, Value};

const DAY_MS: i64 = 86_400_000;

async fn upload(api: &mut Api, name: &str, text: &str) -> Value {
    let (status, body) = api.upload_file("lobby", name, text.as_bytes().to_vec()).await;
    assert_eq!(status, 201, "{body}");
    body
}

/// Sends `text` and waits for the server's copy (so it is stored).
async fn chat(ws: &mut Ws, text: &str) {
    ws.send(json!({"type": "chat", "text": text, "nonce": text})).await;
    loop {
        let message = ws.next_of("message").await;
        if message["nonce"] == text {
            return;
        }
    }
}

fn open(db: &Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    conn
}

fn count(conn: &rusqlite::Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

fn stored_as(conn: &rusqlite::Connection, id: i64) -> String {
    conn.query_row("SELECT stored_as FROM uploads WHERE id = ?1", [id], |r| r.get(0))
        .unwrap()
}

/// Moves rows back in time: `sql` is an UPDATE with `?1` for milliseconds.
fn age(conn: &rusqlite::Connection, sql: &str, days: i64) -> usize {
    let changed = conn.execute(sql, [days * DAY_MS]).unwrap();
    assert!(changed > 0, "nothing aged by {sql}");
    changed
}

#[tokio::test]
async fn old_messages_uploads_and_audit_entries_go_and_recent_ones_stay() {
    let mut first = Server::start_with(&[("CHAT_RATE_PER_SEC", "100"), ("CHAT_BURST", "100")]).await;
    first.admin().await;
    let mut ann = first.user("ann").await;
    let mut ws = Ws::connect(&ann).await;
    ws.join("lobby").await;
    for i in 0..5 {
        chat(&mut ws, &format!("old {i}")).await;
        chat(&mut ws, &format!("new {i}")).await;
    }
    let expired_file = upload(&mut ann, "expired.txt", "an old file\n").await;
    let aged_message_file = upload(&mut ann, "aged-message.txt", "a recent file in an old message\n").await;
    let kept_file = upload(&mut ann, "kept.txt", "a recent file\n").await;
    for _ in 0..3 {
        ws.next_of("message").await;
    }
    drop(ws);
    first.terminate().await;

    let db: PathBuf = first.dir.path().join("sb.db");
    let uploads = first.dir.path().join("uploads");
    let (expired_id, aged_id, kept_id) = (
        expired_file["id"].as_i64().unwrap(),
        aged_message_file["id"].as_i64().unwrap(),
        kept_file["id"].as_i64().unwrap(),
    );
    let conn = open(&db);
    let files: Vec<String> = [expired_id, aged_id, kept_id]
        .iter()
        .map(|id| stored_as(&conn, *id))
        .collect();
    for file in &files {
        assert!(uploads.join(file).is_file(), "{file} was stored");
    }
    // Past the 30-day message window: five chat messages, and the message
    // that carries a recent upload.
    age(&conn, "UPDATE messages SET ts = ts - ?1 WHERE text LIKE 'old %'", 40);
    age(
        &conn,
        "UPDATE messages SET ts = ts - ?1 WHERE text = 'aged-message.txt'",
        40,
    );
    // Past the 7-day upload window, inside the message window: the upload
    // and its message, as they would have aged together.
    age(
        &conn,
        &format!("UPDATE uploads SET created_at = created_at - ?1 WHERE id = {expired_id}"),
        10,
    );
    age(&conn, "UPDATE messages SET ts = ts - ?1 WHERE text = 'expired.txt'", 10);
    // Past the 7-day audit window: the registrations.
    let registrations = age(&conn, "UPDATE audit_log SET ts = ts - ?1 WHERE action = 'register'", 10);
    assert_eq!(registrations, 2);
    let uploads_audited = count(&conn, "SELECT count(*) FROM audit_log WHERE action = 'upload'");
    drop(conn);

    let db_path = db.display().to_string();
    let second = Server::start_with(&[
        ("DATABASE_PATH", db_path.as_str()),
        ("MESSAGE_RETENTION_DAYS", "30"),
        ("UPLOAD_RETENTION_DAYS", "7"),
        ("AUDIT_RETENTION_DAYS", "7"),
    ])
    .await;
    // The janitor sweeps at start: wait for the last of its three steps.
    let conn = open(&db);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while count(&conn, "SELECT count(*) FROM audit_log WHERE action = 'register'") > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the audit entries were not swept"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let texts: Vec<String> = {
        let mut stmt = conn.prepare("SELECT text FROM messages ORDER BY id").unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    assert_eq!(
        texts,
        ["new 0", "new 1", "new 2", "new 3", "new 4", "kept.txt"],
        "old chat went, and both files' messages with them"
    );
    let left: Vec<i64> = {
        let mut stmt = conn.prepare("SELECT id FROM uploads ORDER BY id").unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    assert_eq!(left, [kept_id], "the expired upload and the one in an old message went");
    assert!(
        !uploads.join(&files[0]).exists(),
        "the expired upload's file is removed"
    );
    assert!(!uploads.join(&files[1]).exists(), "the old message's file is removed");
    assert!(uploads.join(&files[2]).is_file(), "the recent file stays");
    assert_eq!(
        count(&conn, "SELECT count(*) FROM audit_log WHERE action = 'upload'"),
        uploads_audited,
        "recent audit entries stay"
    );

    // What people see agrees: history, the files, and a joiner's history.
    let mut ann = second.login_ok("ann", PASSWORD).await;
    let (status, body) = ann.get("/api/rooms/lobby/messages?limit=200").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(texts_of(&body["messages"]), texts);
    let (status, _) = ann.get(expired_file["url"].as_str().unwrap()).await;
    assert_eq!(status, 404);
    let kept = ann
        .request(Method::GET, kept_file["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(kept.status(), 200);
    assert_eq!(kept.text().await.unwrap(), "a recent file\n");
    let mut ws = Ws::connect(&ann).await;
    let joined = ws.join("lobby").await;
    assert_eq!(texts_of(&joined["history"]), texts);
}

#[tokio::test]
async fn unset_windows_keep_rows_forever() {
    let mut first = Server::start_with(&[("CHAT_RATE_PER_SEC", "100"), ("CHAT_BURST", "100")]).await;
    let mut ann = first.user("ann").await;
    let mut ws = Ws::connect(&ann).await;
    ws.join("lobby").await;
    chat(&mut ws, "ancient").await;
    upload(&mut ann, "ancient.txt", "kept forever\n").await;
    ws.next_of("message").await;
    drop(ws);
    first.terminate().await;

    let db = first.dir.path().join("sb.db");
    let conn = open(&db);
    age(&conn, "UPDATE messages SET ts = ts - ?1", 3650);
    age(&conn, "UPDATE uploads SET created_at = created_at - ?1", 3650);
    age(&conn, "UPDATE audit_log SET ts = ts - ?1", 3650);
    drop(conn);

    // Only the audit window is set. The sweep handles audit entries last,
    // so once they are gone the message and upload steps have run too.
    let db_path = db.display().to_string();
    let _second = Server::start_with(&[("DATABASE_PATH", db_path.as_str()), ("AUDIT_RETENTION_DAYS", "1")]).await;
    let conn = open(&db);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while count(
        &conn,
        "SELECT count(*) FROM audit_log WHERE ts < strftime('%s', 'now') * 1000 - 86400000",
    ) > 0
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the audit entries were not swept"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        count(&conn, "SELECT count(*) FROM messages"),
        2,
        "ten-year-old messages stay"
    );
    assert_eq!(
        count(&conn, "SELECT count(*) FROM uploads"),
        1,
        "a ten-year-old upload stays"
    );
    let stored = stored_as(&conn, 1);
    assert!(first.dir.path().join("uploads").join(stored).is_file());
}
