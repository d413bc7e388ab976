//! Who may create an account: REGISTRATION=invite (admins' invitations,
//! single or several uses, expiring, revocable), REGISTRATION=closed (only
//! admins create accounts, handing over a link to choose a password), and
//! ALLOWED_EMAIL_DOMAINS. OIDC's side of these is in tests/oidc.rs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a failed step should fail the test"
)]
mod common;

use common::{assert_error, Api, Server, PASSWORD};
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn register(server: &Server, username: &str, invite: Option<&str>) -> (StatusCode, Value) {
    let mut body = json!({"username": username, "email": format!("{username}@example.org"), "password": PASSWORD});
    if let Some(code) = invite {
        body["invite"] = json!(code);
    }
    server.client().post("/api/auth/register", body).await
}

async fn invite(admin: &mut Api, body: Value) -> Value {
    let (status, invite) = admin.post("/api/admin/invites", body).await;
    assert_eq!(status, StatusCode::CREATED, "{invite}");
    invite
}

#[tokio::test]
async fn with_invite_registration_only_invitations_register() {
    let server = Server::start_with(&[("REGISTRATION", "invite")]).await;
    let (_, config) = server.client().get("/api/auth/config").await;
    assert_eq!(config["registration"], "invite");
    let (status, body) = register(&server, "anna", None).await;
    assert_error(status, &body, 403, "registration_closed");
    let (status, body) = register(&server, "anna", Some("made-up-code")).await;
    assert_error(status, &body, 403, "registration_closed");

    let mut admin = server.admin().await;
    let twice = invite(&mut admin, json!({"uses": 2})).await;
    assert_eq!(twice["uses"], 2);
    let code = twice["code"].as_str().unwrap();
    assert!(code.len() >= 22, "128 bits: {code}");
    assert_eq!(
        twice["url"].as_str().unwrap(),
        format!("{}/register?invite={code}", server.base)
    );
    assert!(common::is_rfc3339(twice["expires_at"].as_str().unwrap()));

    assert_eq!(register(&server, "anna", Some(code)).await.0, StatusCode::CREATED);
    assert_eq!(register(&server, "bert", Some(code)).await.0, StatusCode::CREATED);
    let (status, body) = register(&server, "carl", Some(code)).await;
    assert_error(status, &body, 403, "registration_closed");

    // A revoked invitation admits nobody; the list shows what is left.
    let once = invite(&mut admin, json!({})).await;
    assert_eq!(once["uses"], 1, "one use by default");
    let (_, list) = admin.get("/api/admin/invites").await;
    let listed: Vec<&Value> = list["invites"].as_array().unwrap().iter().collect();
    assert_eq!(listed.len(), 2, "{list}");
    assert_eq!(listed[1]["uses_left"], 0);
    assert!(listed.iter().all(|i| i.get("code").is_none()), "codes are shown once");
    let (status, _) = admin.delete(&format!("/api/admin/invites/{}", once["id"])).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = register(&server, "carl", once["code"].as_str()).await;
    assert_error(status, &body, 403, "registration_closed");
    let (status, body) = admin.delete(&format!("/api/admin/invites/{}", once["id"])).await;
    assert_error(status, &body, 404, "not_found");

    let logs = admin.logs(&[("action", "invite_create")]).await;
    assert_eq!(logs["total"], 2, "{logs}");
}

#[tokio::test]
async fn invitations_are_for_admins_and_their_bounds_hold() {
    let server = Server::start_with(&[("REGISTRATION", "invite")]).await;
    let mut admin = server.admin().await;
    for bad in [
        json!({"uses": 0}),
        json!({"uses": 1001}),
        json!({"uses": -1}),
        json!({"expires_at": "2001-01-01T00:00:00Z"}),
        json!({"expires_at": "2999-01-01T00:00:00Z"}),
        json!({"expires_at": "tomorrow"}),
        json!({"uses": 1, "extra": true}),
    ] {
        let (status, body) = admin.post("/api/admin/invites", bad.clone()).await;
        assert_error(status, &body, 400, "bad_request");
    }
    let soon = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let made = invite(&mut admin, json!({"uses": 3, "expires_at": soon})).await;
    assert_eq!(made["uses"], 3);

    let code = made["code"].as_str().unwrap();
    assert_eq!(register(&server, "dana", Some(code)).await.0, StatusCode::CREATED);
    let mut dana = server.login_ok("dana", PASSWORD).await;
    let (status, body) = dana.post("/api/admin/invites", json!({})).await;
    assert_error(status, &body, 403, "forbidden");
    let (status, body) = dana.get("/api/admin/invites").await;
    assert_error(status, &body, 403, "forbidden");
    let (status, body) = dana.delete(&format!("/api/admin/invites/{}", made["id"])).await;
    assert_error(status, &body, 403, "forbidden");
}

#[tokio::test]
async fn closed_registration_leaves_account_making_to_admins() {
    let server = Server::start_with(&[("REGISTRATION", "closed")]).await;
    let (status, body) = register(&server, "emil", None).await;
    assert_error(status, &body, 403, "registration_closed");
    let mut admin = server.admin().await;
    let code = invite(&mut admin, json!({})).await["code"].as_str().unwrap().to_owned();
    let (status, body) = register(&server, "emil", Some(&code)).await;
    assert_error(status, &body, 403, "registration_closed");

    // An admin makes the account and hands over a link to choose a password.
    let (status, body) = admin
        .post(
            "/api/admin/users",
            json!({"username": "emil", "email": "Emil@Example.org"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["user"]["email"], "emil@example.org");
    assert_eq!(body["user"]["email_verified"], false);
    let url = body["reset_url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("{}/reset-password?token=", server.base)),
        "{url}"
    );
    let (_, status, _) = server.login("emil", PASSWORD).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "no password yet");
    let token = url.split_once("token=").unwrap().1;
    let (status, body) = server
        .client()
        .post(
            "/api/auth/password-reset/confirm",
            json!({"token": token, "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let mut emil = server.login_ok("emil", PASSWORD).await;
    assert_eq!(emil.me().await["email_verified"], true, "the link proved the address");

    // Taken names, bad input and non-admins are refused.
    let (status, body) = admin
        .post(
            "/api/admin/users",
            json!({"username": "emil", "email": "other@example.org"}),
        )
        .await;
    assert_error(status, &body, 409, "conflict");
    let (status, body) = admin
        .post("/api/admin/users", json!({"username": "x", "email": "x@example.org"}))
        .await;
    assert_error(status, &body, 400, "bad_request");
    let (status, body) = emil
        .post(
            "/api/admin/users",
            json!({"username": "fern", "email": "fern@example.org"}),
        )
        .await;
    assert_error(status, &body, 403, "forbidden");
}

#[tokio::test]
async fn allowed_email_domains_hold_for_registration() {
    let server = Server::start_with(&[("ALLOWED_EMAIL_DOMAINS", "example.org, corp.example")]).await;
    let mut api = server.client();
    let (status, body) = api
        .post(
            "/api/auth/register",
            json!({"username": "gail", "email": "gail@elsewhere.example", "password": PASSWORD}),
        )
        .await;
    assert_error(status, &body, 403, "email_domain_not_allowed");
    let (status, body) = api
        .post(
            "/api/auth/register",
            json!({"username": "gail", "email": "gail@sub.example.org", "password": PASSWORD}),
        )
        .await;
    assert_error(status, &body, 403, "email_domain_not_allowed");
    let (status, body) = api
        .post(
            "/api/auth/register",
            json!({"username": "gail", "email": "Gail@Corp.Example", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}
