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

/// Turns two-factor sign-in on for `api`: the secret and the recovery codes.
async fn turn_on_with_codes(api: &mut Api) -> (String, Vec<String>) {
    let (_, setup) = api.post("/api/me/totp/setup", json!({})).await;
    let secret = setup["secret"].as_str().unwrap().to_owned();
    let (status, body) = api.post("/api/me/totp/enable", json!({"code": code(&secret, 0)})).await;
    assert_eq!(status, 200, "{body}");
    let codes = body["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    (secret, codes)
}

fn login_with(code: &str) -> Value {
    json!({"login": "rae", "password": PASSWORD, "totp": code})
}

#[tokio::test]
async fn recovery_codes_are_shown_once_stored_hashed_and_each_signs_in_once() {
    let server = Server::start().await;
    let mut rae = server.user("rae").await;
    let (_, codes) = turn_on_with_codes(&mut rae).await;
    assert_eq!(codes.len(), 10);
    for code in &codes {
        assert!(
            code.len() == 14 && code.matches('-').count() == 2,
            "xxxx-xxxx-xxxx: {code}"
        );
    }

    // Only hashes are stored: 32 bytes each, no code in clear.
    let conn = rusqlite::Connection::open(server.database_path()).unwrap();
    let stored: Vec<Vec<u8>> = conn
        .prepare("SELECT code_hash FROM recovery_codes")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(stored.len(), 10);
    for hash in &stored {
        assert_eq!(hash.len(), 32);
        let text = String::from_utf8_lossy(hash);
        assert!(codes.iter().all(|c| !text.contains(&c.replace('-', ""))));
    }
    drop(conn);

    // A code works in place of `totp`, typed any which way ...
    let typed = codes[0].replace('-', " ").to_uppercase();
    let mut phone_lost = server.client();
    let (status, body) = phone_lost.post("/api/auth/login", login_with(&typed)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["recovery_codes_left"], 9);
    assert_eq!(phone_lost.me().await["username"], "rae");
    let (status, body) = phone_lost.get("/api/me/totp/recovery-codes").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["remaining"], 9);
    // ... once: used again it is refused like a wrong code.
    let (status, body) = server.client().post("/api/auth/login", login_with(&codes[0])).await;
    assert_error(status, &body, 401, "invalid_credentials");
    let (status, body) = server
        .client()
        .post("/api/auth/login", login_with("2345-6789-abcd"))
        .await;
    assert_error(status, &body, 401, "invalid_credentials");
    // An authenticator code is still told apart from a recovery code.
    let (status, body) = server.client().post("/api/auth/login", login_with(&codes[1])).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["recovery_codes_left"], 8);

    let mut admin = server.admin().await;
    let logins = admin.logs(&[("action", "login"), ("user", "rae")]).await;
    assert!(
        logins["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["details"]["recovery_code"] == true && e["details"]["recovery_codes_left"] == 8),
        "{logins}"
    );
    let failed = admin.logs(&[("action", "login_failed"), ("user", "rae")]).await;
    assert_eq!(failed["total"], 2, "{failed}");
    assert!(failed["entries"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["details"]["reason"] == "bad_recovery_code"));
}

#[tokio::test]
async fn wrong_recovery_codes_count_like_failed_logins() {
    let server = Server::start_with(&[("LOGIN_RATE_PER_MIN", "3"), ("TRUSTED_PROXIES", "127.0.0.1")]).await;
    let mut rae = server.user("rae").await;
    let (_, codes) = turn_on_with_codes(&mut rae).await;
    for wrong in ["2345-6789-abcd", "not a code", "zzzz-zzzz-zzzz"] {
        let mut guesser = server.client_from("203.0.113.30");
        let (status, body) = guesser.post("/api/auth/login", login_with(wrong)).await;
        assert_error(status, &body, 401, "invalid_credentials");
    }
    let mut guesser = server.client_from("203.0.113.30");
    let (status, body) = guesser.post("/api/auth/login", login_with(&codes[1])).await;
    assert_error(status, &body, 429, "rate_limited");
    let mut owner = server.client_from("198.51.100.30");
    let (status, body) = owner.post("/api/auth/login", login_with(&codes[1])).await;
    assert_eq!(status, 200, "from elsewhere the owner signs in: {body}");
}

#[tokio::test]
async fn new_recovery_codes_need_the_password_and_a_code_and_end_the_old() {
    let server = Server::start_with(&[("LOGIN_RATE_PER_MIN", "0")]).await;
    let mut rae = server.user("rae").await;
    let (secret, old) = turn_on_with_codes(&mut rae).await;
    let path = "/api/me/totp/recovery-codes";
    let (status, body) = rae.post(path, json!({"code": code(&secret, 1)})).await;
    assert_error(status, &body, 400, "bad_request");
    let (status, body) = rae
        .post(path, json!({"password": "wrong password", "code": code(&secret, 1)}))
        .await;
    assert_error(status, &body, 401, "invalid_credentials");
    let (status, body) = rae.post(path, json!({"password": PASSWORD, "code": old[0]})).await;
    assert_error(status, &body, 401, "invalid_credentials");

    let (status, body) = rae
        .post(path, json!({"password": PASSWORD, "code": code(&secret, 1)}))
        .await;
    assert_eq!(status, 200, "{body}");
    let fresh: Vec<String> = body["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(fresh.len(), 10);
    assert!(fresh.iter().all(|c| !old.contains(c)));
    // The code that renewed them is used up.
    let (status, _) = rae
        .post(path, json!({"password": PASSWORD, "code": code(&secret, 1)}))
        .await;
    assert_eq!(status, 401);
    let (status, body) = server.client().post("/api/auth/login", login_with(&old[1])).await;
    assert_error(status, &body, 401, "invalid_credentials");
    let (status, body) = server.client().post("/api/auth/login", login_with(&fresh[0])).await;
    assert_eq!(status, 200, "{body}");
    let failed = server.admin().await.logs(&[("action", "recovery_codes_failed")]).await;
    assert_eq!(failed["total"], 3, "{failed}");
}

#[tokio::test]
async fn a_recovery_code_turns_two_factor_off() {
    let server = Server::start().await;
    let mut rae = server.user("rae").await;
    let (_, codes) = turn_on_with_codes(&mut rae).await;
    let (status, body) = rae
        .post("/api/me/totp/disable", json!({"password": PASSWORD, "code": codes[3]}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["totp_enabled"], false);
    let conn = rusqlite::Connection::open(server.database_path()).unwrap();
    let left: i64 = conn
        .query_row("SELECT count(*) FROM recovery_codes", [], |r| r.get(0))
        .unwrap();
    assert_eq!(left, 0, "the codes go with two-factor sign-in");
    let (status, body) = rae.get("/api/me/totp/recovery-codes").await;
    assert_error(status, &body, 409, "conflict");
}

#[tokio::test]
async fn the_qr_code_draws_the_setup_url_and_is_never_cached() {
    let server = Server::start().await;
    let mut rae = server.user("rae").await;
    let (status, body) = rae.get("/api/me/totp/qr").await;
    assert_error(status, &body, 404, "not_found");
    let (_, setup) = rae.post("/api/me/totp/setup", json!({})).await;
    let response = rae
        .request(reqwest::Method::GET, "/api/me/totp/qr")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let header = |name: &str| response.headers().get(name).unwrap().to_str().unwrap().to_owned();
    assert_eq!(header("content-type"), "image/svg+xml");
    assert_eq!(header("cache-control"), "no-store");
    assert!(header("content-security-policy").starts_with("sandbox"));
    let svg = response.text().await.unwrap();
    let expected = totp::qr_svg(setup["otpauth_url"].as_str().unwrap()).unwrap();
    assert_eq!(svg, expected, "the QR code of the otpauth URL set-up answered");
    let (status, body) = server.client().get("/api/me/totp/qr").await;
    assert_error(status, &body, 401, "unauthenticated");
}

#[tokio::test]
async fn admins_turn_two_factor_off_for_others_within_the_hierarchy() {
    let server = Server::start().await;
    let mut admin = server.admin().await;
    let mut rae = server.user("rae").await;
    let rae_id = rae.me().await["id"].as_i64().unwrap();
    let path = format!("/api/admin/users/{rae_id}/totp/disable");
    let (status, body) = admin.post(&path, json!({"reason": "lost her phone"})).await;
    assert_error(status, &body, 409, "conflict");
    turn_on_with_codes(&mut rae).await;
    let (status, body) = rae.post(&path, json!({"reason": "me"})).await;
    assert_error(status, &body, 403, "forbidden");
    let (status, body) = admin.post(&path, json!({"reason": "  "})).await;
    assert_error(status, &body, 400, "bad_request");
    let (status, body) = admin.post(&path, json!({})).await;
    assert_error(status, &body, 400, "bad_request");
    let (status, body) = admin
        .post("/api/admin/users/99999/totp/disable", json!({"reason": "x"}))
        .await;
    assert_error(status, &body, 404, "not_found");

    let (status, body) = admin.post(&path, json!({"reason": "lost her phone"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["totp_enabled"], false);
    let (status, body) = server
        .client()
        .post("/api/auth/login", json!({"login": "rae", "password": PASSWORD}))
        .await;
    assert_eq!(status, 200, "signs in with the password alone: {body}");

    let entries = admin
        .logs(&[("action", "user_update"), ("user", &rae_id.to_string())])
        .await;
    let entry = entries["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["details"]["totp"] == "disabled")
        .cloned()
        .unwrap_or_else(|| panic!("no audit entry: {entries}"));
    assert_eq!(entry["username"], "admin");
    assert_eq!(entry["target_user_id"], rae_id);
    assert_eq!(entry["details"]["reason"], "lost her phone");
}

#[tokio::test]
async fn after_secret_key_changes_recovery_codes_and_the_cli_still_get_people_in() {
    let mut server = Server::start().await;
    let mut rae = server.user("rae").await;
    let (secret, codes) = turn_on_with_codes(&mut rae).await;
    let mut sam = server.user("sam").await;
    let (sam_secret, _) = turn_on_with_codes(&mut sam).await;
    server
        .kill9_and_restart_with(&[("SECRET_KEY", "a different secret key")])
        .await;

    // The sealed secrets no longer open; the recovery codes need no key.
    let (status, body) = server
        .client()
        .post("/api/auth/login", login_with(&code(&secret, 1)))
        .await;
    assert_ne!(status, 200, "{body}");
    let (status, body) = server.client().post("/api/auth/login", login_with(&codes[0])).await;
    assert_eq!(status, 200, "{body}");

    // Sam has no codes at hand: the operator turns two-factor off.
    let sam_login = json!({"login": "sam", "password": PASSWORD, "totp": code(&sam_secret, 1)});
    let (status, _) = server.client().post("/api/auth/login", sam_login).await;
    assert_ne!(status, 200);
    let output = server
        .command(&["user", "disable-2fa", "sam", "--reason", "SECRET_KEY was replaced"])
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let (status, body) = server
        .client()
        .post("/api/auth/login", json!({"login": "sam", "password": PASSWORD}))
        .await;
    assert_eq!(status, 200, "{body}");
    let again = server.command(&["user", "disable-2fa", "sam"]).output().await.unwrap();
    assert!(!again.status.success(), "already off");
    let unknown = server
        .command(&["user", "disable-2fa", "nobody"])
        .output()
        .await
        .unwrap();
    assert!(!unknown.status.success());
    let entries = server
        .admin()
        .await
        .logs(&[("action", "user_update"), ("q", "SECRET_KEY was replaced")])
        .await;
    assert_eq!(entries["total"], 1, "{entries}");
}
