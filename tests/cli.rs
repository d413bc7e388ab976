//! The operator command line: `migrate`, `user create/promote/demote` (password on stdin) against a database a server then uses, and `hash-password`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a failed step should fail the test"
)]
mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::Server;

const OPS_PASSWORD: &str = "ops password 123";

/// Runs `switchboard args...` with only DATABASE_PATH and a fast bcrypt cost
/// configured, writing `stdin` to its standard input.
fn run(db: &Path, args: &[&str], stdin: &str) -> Output {
    // Run where no .env file can be picked up: the nearest existing folder.
    let cwd = db.ancestors().skip(1).find(|d| d.is_dir()).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_PATH", db)
        .env("BCRYPT_COST", "4")
        .current_dir(cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut input = child.stdin.take().unwrap();
        // The command may exit before reading; that is its answer.
        let _ = input.write_all(stdin.as_bytes());
    }
    child.wait_with_output().unwrap()
}

#[track_caller]
fn assert_success(what: &str, output: &Output) {
    assert!(
        output.status.success(),
        "{what} failed ({}): stdout {} stderr {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[track_caller]
fn assert_failure(what: &str, output: &Output) {
    assert!(
        !output.status.success(),
        "{what} should fail: stdout {} stderr {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!output.stderr.is_empty(), "{what} failed without saying why");
}

async fn server_on(db: &Path) -> Server {
    Server::start_with(&[("DATABASE_PATH", db.to_str().unwrap())]).await
}

#[tokio::test]
async fn migrate_creates_the_database_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("nested").join("sb.db");
    let output = run(&db, &["migrate"], "");
    assert_success("migrate", &output);
    assert!(db.exists(), "migrate did not create {}", db.display());
    assert_success("migrate again", &run(&db, &["migrate"], ""));
    // A server starts on it.
    let server = server_on(&db).await;
    let (status, _) = server.client().get("/healthz").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn users_created_and_demoted_on_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sb.db");
    assert_success("migrate", &run(&db, &["migrate"], ""));
    let output = run(
        &db,
        &["user", "create", "--username", "ops", "--email", "ops@x.org", "--admin"],
        &format!("{OPS_PASSWORD}\n"),
    );
    assert_success("user create", &output);
    let output = run(
        &db,
        &["user", "create", "--username", "dev", "--email", "dev@x.org"],
        &format!("{OPS_PASSWORD}\n"),
    );
    assert_success("user create (not admin)", &output);

    let server = server_on(&db).await;
    let mut ops = server.login_ok("ops", OPS_PASSWORD).await;
    let me = ops.me().await;
    assert_eq!(me["is_admin"], true, "{me}");
    assert_eq!(me["email"], "ops@x.org");
    let mut dev = server.login_ok("dev@x.org", OPS_PASSWORD).await;
    assert_eq!(dev.me().await["is_admin"], false);
    // The line ending is not part of the password.
    let (_, status, _) = server.login("ops", &format!("{OPS_PASSWORD}\n")).await;
    assert_eq!(status, 401);

    // The audit log shows the command-line registrations.
    let logs = ops.logs(&[("action", "register")]).await;
    assert_eq!(logs["total"], 2, "{logs}");

    // Promote and demote while the server runs.
    assert_success("user promote", &run(&db, &["user", "promote", "dev"], ""));
    let mut dev = server.login_ok("dev", OPS_PASSWORD).await;
    assert_eq!(dev.me().await["is_admin"], true);
    assert_success("user demote", &run(&db, &["user", "demote", "ops"], ""));
    let mut ops = server.login_ok("ops", OPS_PASSWORD).await;
    let me = ops.me().await;
    assert_eq!(me["is_admin"], false, "{me}");
    assert!(!me["roles"].as_array().unwrap().iter().any(|r| r == "admin"), "{me}");
    let (status, _) = ops.get("/api/admin/users").await;
    assert_eq!(status, 403);

    // Unknown users and taken names fail.
    assert_failure("demote nobody", &run(&db, &["user", "demote", "nobody"], ""));
    assert_failure("promote nobody", &run(&db, &["user", "promote", "nobody"], ""));
    let output = run(
        &db,
        &["user", "create", "--username", "OPS", "--email", "other@x.org"],
        &format!("{OPS_PASSWORD}\n"),
    );
    assert_failure("create a taken username", &output);
    let output = run(
        &db,
        &["user", "create", "--username", "<bad>", "--email", "bad@x.org"],
        &format!("{OPS_PASSWORD}\n"),
    );
    assert_failure("create an invalid username", &output);
    let (status, body) = dev.get("/api/admin/users").await;
    assert_eq!(status, 200);
    assert_eq!(body["total"], 2, "{body}");
}

#[tokio::test]
async fn a_short_or_missing_password_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sb.db");
    for stdin in ["short\n", "", "\n", &format!("{}\n", "x".repeat(129))] {
        let output = run(
            &db,
            &["user", "create", "--username", "shorty", "--email", "shorty@x.org"],
            stdin,
        );
        assert_failure(&format!("user create with {stdin:?}"), &output);
        assert_failure(
            &format!("hash-password with {stdin:?}"),
            &run(&db, &["hash-password"], stdin),
        );
    }
    // Nothing was created.
    let server = server_on(&db).await;
    let mut admin = server.admin().await;
    assert_eq!(admin.user_total().await, 1);
}

#[tokio::test]
async fn hash_password_prints_a_bcrypt_hash() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sb.db");
    let output = run(&db, &["hash-password"], "a fine password\n");
    assert_success("hash-password", &output);
    let stdout = String::from_utf8(output.stdout).unwrap();
    let hash = stdout.trim();
    assert!(hash.starts_with("$2b$"), "not a bcrypt hash: {hash:?}");
    assert_eq!(hash.len(), 60, "{hash:?}");
    assert!(!stdout.contains("a fine password"));
    assert!(hash.starts_with("$2b$04$"), "BCRYPT_COST applies: {hash}");
    // Two runs salt differently.
    let again = run(&db, &["hash-password"], "a fine password\n");
    assert_success("hash-password", &again);
    assert_ne!(String::from_utf8(again.stdout).unwrap().trim(), hash);
}
