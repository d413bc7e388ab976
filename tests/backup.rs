//! `switchboard backup DIR` against a server under chat load: a new server
//! started on the backup holds every message acknowledged before the backup
//! began and serves every file uploaded before it; the copy passes
//! `PRAGMA integrity_check`. Also: the folder must be new or empty.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a failed step should fail the test"
)]
mod common;

use std::collections::HashSet;
use std::path::Path;
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{texts_of, Api, Server, Ws, PASSWORD};
use reqwest::Method;
use serde_json::{json, Value};

const CHATTERS: usize = 4;

async fn backup(db: &Path, dir: &Path) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("backup")
        .arg(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_PATH", db)
        .current_dir(db.parent().unwrap())
        .output()
        .await
        .unwrap()
}

async fn upload(api: &mut Api, name: &str, bytes: Vec<u8>) -> Value {
    let (status, body) = api.upload_file("lobby", name, bytes).await;
    assert_eq!(status, 201, "{body}");
    body
}

/// Sends chat until `stop`, each message after the previous one came back;
/// every text whose sender saw its own copy goes into `acked`.
async fn chatter(mut ws: Ws, who: usize, stop: Arc<AtomicBool>, acked: Arc<Mutex<Vec<String>>>) {
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        // The full stop keeps one text from being a part of another.
        let text = format!("chatter {who} message {i}.");
        ws.send(json!({"type": "chat", "text": text, "nonce": text})).await;
        loop {
            let message = ws.next_of("message").await;
            if message["nonce"] == text.as_str() {
                break;
            }
        }
        acked.lock().unwrap().push(text);
        i += 1;
    }
}

fn texts(db: &Path) -> HashSet<String> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn.prepare("SELECT text FROM messages").unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[tokio::test]
async fn a_backup_taken_under_chat_load_restores_everything_acknowledged_before_it() {
    let server = Server::start_with(&[("CHAT_RATE_PER_SEC", "1000"), ("CHAT_BURST", "1000")]).await;
    let db = server.dir.path().join("sb.db");
    server.admin().await;
    let mut ann = server.user("ann").await;
    // Uploaders join the room over a socket first.
    let mut ann_ws = Ws::connect(&ann).await;
    ann_ws.join("lobby").await;
    let mut files = Vec::new();
    for (name, bytes) in [
        ("notes.txt", b"first file\n".to_vec()),
        ("report.pdf", b"%PDF-1.7\nnot much of a report\n".to_vec()),
        ("big.txt", "line of text\n".repeat(100_000).into_bytes()),
    ] {
        let answer = upload(&mut ann, name, bytes.clone()).await;
        files.push((answer["url"].as_str().unwrap().to_owned(), bytes));
        ann_ws.next_of("message").await;
    }
    drop(ann_ws);

    // Several copy steps' worth of history, written beside the running server.
    let ann_id = ann.me().await["id"].as_i64().unwrap();
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 40000)
             INSERT INTO messages (room_id, user_id, username, text, ts, ip)
             SELECT 1, ?1, 'ann', 'filler ' || i || ' ' || hex(randomblob(120)), 0, '127.0.0.1' FROM n",
            [ann_id],
        )
        .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let mut chatters = Vec::new();
    for who in 0..CHATTERS {
        let mut ws = Ws::connect(&server.user(&format!("chatter{who}")).await).await;
        ws.join("lobby").await;
        chatters.push(tokio::spawn(chatter(ws, who, stop.clone(), acked.clone())));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while acked.lock().unwrap().len() < 200 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the chat load did not get going"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let before: Vec<String> = acked.lock().unwrap().clone();
    let dir = server.dir.path().join("backups/first");
    let output = backup(&db, &dir).await;
    let during = acked.lock().unwrap().len() - before.len();
    assert!(
        output.status.success(),
        "backup failed: {} {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let summary = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(summary.contains("3 uploaded files"), "{summary}");
    let steps: u32 = summary
        .split(" steps")
        .next()
        .and_then(|head| head.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no step count in {summary:?}"));
    assert!(steps >= 2, "the copy went in several steps: {summary}");
    // A file stored after the backup is not in it. Uploads need the
    // uploader in the room now: ann joins again (her first socket is gone).
    let mut later_ws = Ws::connect(&ann).await;
    later_ws.join("lobby").await;
    upload(&mut ann, "later.txt", b"after the backup\n".to_vec()).await;
    drop(later_ws);
    stop.store(true, Ordering::Relaxed);
    for task in chatters {
        task.await.unwrap();
    }
    // How much chat the copy ran beside depends on the machine's speed; the
    // copy's own unit test (src/db/backup.rs) writes throughout a copy.
    eprintln!("{during} messages were acknowledged while the backup ran");

    let copy = dir.join("switchboard.db");
    {
        let conn = rusqlite::Connection::open(&copy).unwrap();
        let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
        assert_eq!(check, "ok");
    }
    let restored = texts(&copy);
    let lost: Vec<&String> = before.iter().filter(|t| !restored.contains(*t)).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged messages missing, e.g. {:?}",
        lost.len(),
        before.len(),
        lost.first()
    );
    assert_eq!(restored.iter().filter(|t| t.starts_with("filler ")).count(), 40_000);
    let live = texts(&db);
    assert!(restored.is_subset(&live));
    assert!(
        live.len() > restored.len(),
        "the backup is a snapshot, not the end state"
    );
    let stored: Vec<_> = std::fs::read_dir(dir.join("uploads")).unwrap().collect();
    assert_eq!(stored.len(), 3, "exactly the files the copy's rows name");

    // A new server on the backup serves the history and the files.
    let (data_dir, copy_path) = (dir.display().to_string(), copy.display().to_string());
    let restored_server =
        Server::start_with(&[("DATA_DIR", data_dir.as_str()), ("DATABASE_PATH", copy_path.as_str())]).await;
    let mut admin = restored_server.login_ok("admin", PASSWORD).await;
    for text in [before.first().unwrap(), before.last().unwrap()] {
        let (status, body) = admin.get_query("/api/admin/messages", &[("q", text)]).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["total"], 1, "{text}: {body}");
    }
    let mut ann = restored_server.login_ok("ann", PASSWORD).await;
    let mut ws = Ws::connect(&ann).await;
    let joined = ws.join("lobby").await;
    assert!(!joined["history"].as_array().unwrap().is_empty());
    for (url, bytes) in &files {
        let response = ann.request(Method::GET, url).send().await.unwrap();
        assert_eq!(response.status(), 200, "{url}");
        assert_eq!(response.bytes().await.unwrap().as_ref(), bytes.as_slice(), "{url}");
    }
    let (status, body) = ann.get("/api/rooms/lobby/messages?limit=200").await;
    assert_eq!(status, 200, "{body}");
    let page = texts_of(&body["messages"]);
    assert!(!page.is_empty() && page.iter().all(|t| restored.contains(t)));
}

#[tokio::test]
async fn a_backup_needs_a_new_or_empty_folder() {
    let server = Server::start().await;
    let db = server.dir.path().join("sb.db");
    let dir = server.dir.path().join("taken");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("something"), "already here").unwrap();
    let output = backup(&db, &dir).await;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("is not empty"), "{stderr}");
    assert!(!dir.join("switchboard.db").exists());

    let missing = server.dir.path().join("nothing-here.db");
    let output = backup(&missing, &server.dir.path().join("fresh")).await;
    assert!(!output.status.success());
    assert!(!missing.exists(), "a backup never creates the source");
}
