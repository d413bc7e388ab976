//! Two-factor sign-in: set-up, enable with a first code, `totp_required`
//! at login, wrong and replayed codes refused, disable with the password and
//! a code, failures limited like logins, secrets sealed at rest (and sealed
//! at start-up when an older database holds them in clear).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a failed step should fail the test"
)]
mod common;

use common::{assert_error, Api, Server, PASSWORD};
use serde_json::{json, Value};
use switchboard::auth::totp;

fn code(secret: &str, offset_steps: i64) -> String {
    totp::current_code(secret, chrono::Utc::now().timestamp() + offset_steps * 30).unwrap()
}

#[tokio::test]
async fn two_factor_is_set_up_required_at_login_and_turned_off() {
    // Many wrong codes below; the limit they count against is tested apart.
    let server = Server::start_with(&[("LOGIN_RATE_PER_MIN", "0")]).await;
    let mut ann = server.user("ann").await;
    let (status, setup) = ann.post("/api/me/totp/setup", json!({})).await;
    assert_eq!(status, 200, "{setup}");
    let secret = setup["secret"].as_str().unwrap().to_owned();
    assert!(setup["otpauth_url"]
        .as_str()
        .unwrap()
        .starts_with("otpauth://totp/Switchboard%3Aann?secret="));

    let (status, body) = ann.post("/api/me/totp/enable", json!({"code": "000000x"})).await;
    assert_error(status, &body, 400, "bad_request");
    let (status, body) = ann.post("/api/me/totp/enable", json!({"code": code(&secret, 0)})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["totp_enabled"], true);

    let mut again = server.client();
    let login = json!({"login": "ann", "password": PASSWORD});
    let (status, body) = again.post("/api/auth/login", login.clone()).await;
    assert_error(status, &body, 401, "totp_required");
    assert!(again.session_cookie().is_none(), "no session before the second factor");

    let (status, body) = again
        .post(
            "/api/auth/login",
            json!({"login": "ann", "password": PASSWORD, "totp": "123456"}),
        )
        .await;
    assert_error(status, &body, 401, "invalid_credentials");

    // The enabling code's step is used up; the next step's code works once.
    let next = code(&secret, 1);
    let with_code = json!({"login": "ann", "password": PASSWORD, "totp": next});
    let (status, body) = again.post("/api/auth/login", with_code.clone()).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = server.client().post("/api/auth/login", with_code).await;
    assert_error(status, &body, 401, "invalid_credentials");

    let (status, body) = again
        .post("/api/me/totp/disable", json!({"password": PASSWORD, "code": "000000"}))
        .await;
    assert_error(status, &body, 401, "invalid_credentials");
    let (status, body) = again
        .post(
            "/api/me/totp/disable",
            json!({"password": PASSWORD, "code": code(&secret, -1)}),
        )
        .await;
    assert_error(status, &body, 401, "invalid_credentials");
    let (status, _) = ann.post("/api/me/totp/setup", json!({})).await;
    assert_eq!(status, 409, "already on");
    let wrong_password_and_code = json!({"login": "ann", "password": "wrong password", "totp": code(&secret, 1)});
    let (status, _) = server.client().post("/api/auth/login", wrong_password_and_code).await;
    assert_eq!(status, 401);

    let (_, logs) = server.admin().await.get("/api/admin/logs?action=user_update").await;
    assert!(logs["entries"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["details"]["totp"] == "enabled"));
}

#[tokio::test]
async fn guests_cannot_set_up_two_factor() {
    let server = Server::start().await;
    let mut guest = server.guest("Gus").await;
    let (status, body) = guest.post("/api/me/totp/setup", json!({})).await;
    assert_error(status, &body, 403, "forbidden");
}

/// Sets up and turns on two-factor sign-in for `api`; the secret.
async fn turn_on(api: &mut Api) -> String {
    let (_, setup) = api.post("/api/me/totp/setup", json!({})).await;
    let secret = setup["secret"].as_str().unwrap().to_owned();
    let (status, body) = api.post("/api/me/totp/enable", json!({"code": code(&secret, 0)})).await;
    assert_eq!(status, 200, "{body}");
    secret
}

#[tokio::test]
async fn turning_two_factor_off_needs_the_password_and_a_current_code() {
    let server = Server::start().await;
    let mut ann = server.user("ann").await;
    let secret = turn_on(&mut ann).await;
    // A stolen session alone is not enough: a code without the password.
    let (status, body) = ann
        .post("/api/me/totp/disable", json!({"code": code(&secret, 1)}))
        .await;
    assert_error(status, &body, 400, "bad_request");
    let (status, body) = ann
        .post(
            "/api/me/totp/disable",
            json!({"password": "wrong password", "code": code(&secret, 1)}),
        )
        .await;
    assert_error(status, &body, 401, "invalid_credentials");
    assert_eq!(ann.me().await["totp_enabled"], true);
    let (status, body) = ann
        .post(
            "/api/me/totp/disable",
            json!({"password": PASSWORD, "code": code(&secret, 1)}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["totp_enabled"], false);
    let (status, body) = server
        .client()
        .post("/api/auth/login", json!({"login": "ann", "password": PASSWORD}))
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn two_factor_failures_count_like_failed_logins() {
    let server = Server::start_with(&[("LOGIN_RATE_PER_MIN", "3"), ("TRUSTED_PROXIES", "127.0.0.1")]).await;
    let mut boz = server.user("boz").await;
    let secret = turn_on(&mut boz).await;
    let disable_from = |api: &Api, ip: &str, body: Value| {
        api.request(reqwest::Method::POST, "/api/me/totp/disable")
            .header("X-Forwarded-For", ip)
            .json(&body)
            .send()
    };
    for wrong in [
        json!({"password": PASSWORD, "code": "000000"}),
        json!({"password": "wrong password", "code": code(&secret, 1)}),
        json!({"password": PASSWORD, "code": "123456"}),
    ] {
        let response = disable_from(&boz, "203.0.113.20", wrong).await.unwrap();
        assert_eq!(response.status(), 401);
    }
    // Now even the right password and code are refused from there ...
    let right = json!({"password": PASSWORD, "code": code(&secret, 1)});
    let response = disable_from(&boz, "203.0.113.20", right.clone()).await.unwrap();
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key(reqwest::header::RETRY_AFTER));
    // ... and so is a password login: it is the same limit.
    let login = server
        .client()
        .request(reqwest::Method::POST, "/api/auth/login")
        .header("X-Forwarded-For", "203.0.113.20")
        .json(&json!({"login": "boz", "password": PASSWORD, "totp": code(&secret, 1)}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 429);
    // From elsewhere the owner still can.
    let response = disable_from(&boz, "198.51.100.20", right).await.unwrap();
    assert_eq!(response.status(), 200);

    let mut admin = server.admin().await;
    let failed = admin.logs(&[("action", "totp_disable_failed")]).await;
    assert_eq!(failed["total"], 3, "{failed}");
    let reasons: Vec<&str> = failed["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["details"]["reason"].as_str().unwrap())
        .collect();
    assert!(
        reasons.contains(&"bad_password") && reasons.contains(&"bad_totp"),
        "{reasons:?}"
    );
}

/// The stored `(totp_secret, totp_pending)` of `username`.
fn stored_secrets(server: &Server, username: &str) -> (Option<String>, Option<String>) {
    let conn = rusqlite::Connection::open(server.database_path()).unwrap();
    conn.query_row(
        "SELECT totp_secret, totp_pending FROM users WHERE username = ?1",
        [username],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .unwrap()
}

#[tokio::test]
async fn two_factor_secrets_are_sealed_at_rest() {
    let server = Server::start().await;
    let mut cyd = server.user("cyd").await;
    let (_, setup) = cyd.post("/api/me/totp/setup", json!({})).await;
    let secret = setup["secret"].as_str().unwrap().to_owned();
    let (_, pending) = stored_secrets(&server, "cyd");
    let pending = pending.expect("a pending secret");
    assert!(pending.starts_with("enc1:") && !pending.contains(&secret), "{pending}");
    let (status, _) = cyd.post("/api/me/totp/enable", json!({"code": code(&secret, 0)})).await;
    assert_eq!(status, 200);
    let (active, pending) = stored_secrets(&server, "cyd");
    let active = active.expect("an active secret");
    assert!(active.starts_with("enc1:") && !active.contains(&secret), "{active}");
    assert_eq!(pending, None);
}

#[tokio::test]
async fn secrets_stored_in_clear_are_sealed_at_start_up() {
    let mut server = Server::start().await;
    server.user("dee").await;
    server.user("eve").await;
    // As a database from before sealing holds them.
    let secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
    let conn = rusqlite::Connection::open(server.database_path()).unwrap();
    conn.execute(
        "UPDATE users SET totp_secret = ?1, totp_last_step = 0 WHERE username = 'dee'",
        [secret],
    )
    .unwrap();
    conn.execute("UPDATE users SET totp_pending = ?1 WHERE username = 'eve'", [secret])
        .unwrap();
    drop(conn);

    server.kill9_and_restart().await;
    let (active, _) = stored_secrets(&server, "dee");
    let active = active.unwrap();
    assert!(active.starts_with("enc1:") && !active.contains(secret), "{active}");
    let (_, pending) = stored_secrets(&server, "eve");
    assert!(pending.unwrap().starts_with("enc1:"));

    let (status, body) = server
        .client()
        .post(
            "/api/auth/login",
            json!({"login": "dee", "password": PASSWORD, "totp": code(secret, 0)}),
        )
        .await;
    assert_eq!(status, 200, "the sealed secret still signs in: {body}");
    // A second start finds nothing left to seal and changes nothing.
    server.kill9_and_restart().await;
    assert_eq!(stored_secrets(&server, "dee").0.unwrap(), active);
}
