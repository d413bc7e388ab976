//! Two-factor sign-in: set-up, enable with a first code, `totp_required`
//! at login, wrong and replayed codes refused, disable.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a failed step should fail the test"
)]
mod common;

use common::{assert_error, Server, PASSWORD};
use serde_json::json;
use switchboard::auth::totp;

fn code(secret: &str, offset_steps: i64) -> String {
    totp::current_code(secret, chrono::Utc::now().timestamp() + offset_steps * 30).unwrap()
}

#[tokio::test]
async fn two_factor_is_set_up_required_at_login_and_turned_off() {
    let server = Server::start().await;
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

    let (status, body) = again.post("/api/me/totp/disable", json!({"code": "000000"})).await;
    assert_error(status, &body, 401, "invalid_credentials");
    let (status, body) = again
        .post("/api/me/totp/disable", json!({"code": code(&secret, -1)}))
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

#[tokio::test]
async fn turning_two_factor_off_needs_a_current_code() {
    let server = Server::start().await;
    let mut ann = server.user("ann").await;
    let (_, setup) = ann.post("/api/me/totp/setup", json!({})).await;
    let secret = setup["secret"].as_str().unwrap().to_owned();
    let (status, _) = ann.post("/api/me/totp/enable", json!({"code": code(&secret, 0)})).await;
    assert_eq!(status, 200);
    let (status, body) = ann
        .post("/api/me/totp/disable", json!({"code": code(&secret, 1)}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["totp_enabled"], false);
    let (status, body) = server
        .client()
        .post("/api/auth/login", json!({"login": "ann", "password": PASSWORD}))
        .await;
    assert_eq!(status, 200, "{body}");
}
