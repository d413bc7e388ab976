//! Sessions and CSRF: unauthenticated requests, the X-CSRF-Token and Origin checks, logout, sessions ended by account deletion, security headers on every response, and X-Forwarded-For trusted only from TRUSTED_PROXIES.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a failed step should fail the test"
)]
mod common;

use common::{assert_error, Api, Server, PASSWORD};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// A request made with nothing but this session cookie.
async fn with_cookie(server: &Server, cookie: &str, path: &str) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .get(server.url(path))
        .header("Cookie", format!("sb_session={cookie}"))
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn no_session_is_unauthenticated() {
    let server = Server::start().await;
    let mut api = server.client();
    let (status, body) = api.get("/api/me").await;
    assert_error(status, &body, 401, "unauthenticated");
    let (status, body) = with_cookie(&server, "not-a-real-session-token", "/api/me").await;
    assert_error(status, &body, 401, "unauthenticated");
    let (status, body) = api.post("/api/auth/logout", json!({})).await;
    assert_error(status, &body, 401, "unauthenticated");
    let (status, body) = api.post("/api/me/username", json!({"username": "x12"})).await;
    assert_error(status, &body, 401, "unauthenticated");
}

#[tokio::test]
async fn state_changing_requests_need_the_sessions_csrf_token() {
    let server = Server::start().await;
    let mut api = server.user("mia").await;
    let token = api.csrf.clone().unwrap();

    // No token.
    api.csrf = None;
    let (status, body) = api.post("/api/me/username", json!({"username": "mia2"})).await;
    assert_error(status, &body, 403, "csrf");
    let (status, body) = api.post("/api/auth/logout", json!({})).await;
    assert_error(status, &body, 403, "csrf");
    // A wrong token.
    api.csrf = Some(format!("{token}x"));
    let (status, body) = api.post("/api/me/username", json!({"username": "mia2"})).await;
    assert_error(status, &body, 403, "csrf");
    api.csrf = Some(String::new());
    let (status, body) = api.post("/api/auth/logout", json!({})).await;
    assert_error(status, &body, 403, "csrf");
    // Another session's token.
    let other = server.login_ok("mia", PASSWORD).await;
    api.csrf = other.csrf.clone();
    let (status, body) = api.post("/api/auth/logout", json!({})).await;
    assert_error(status, &body, 403, "csrf");
    // Nothing happened: the session lives and the username is unchanged.
    assert_eq!(api.me().await["username"], "mia");

    // The right token works.
    api.csrf = Some(token);
    let (status, body) = api.post("/api/me/username", json!({"username": "mia2"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["username"], "mia2");
}

#[tokio::test]
async fn a_foreign_origin_is_refused_even_for_login() {
    let server = Server::start().await;
    server.user("ned").await;
    let http = reqwest::Client::new();
    for path in ["/api/auth/login", "/api/auth/register", "/api/auth/guest"] {
        let response = http
            .post(server.url(path))
            .header("Origin", "https://evil.example")
            .json(&json!({"login": "ned", "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        let status = response.status();
        assert!(
            response.headers().get(reqwest::header::SET_COOKIE).is_none(),
            "{path} set a cookie for a foreign origin"
        );
        let body: Value = response.json().await.unwrap();
        assert_error(status, &body, 403, "csrf");
    }
    // A cross-site request without an Origin header is refused as well.
    let response = http
        .post(server.url("/api/auth/login"))
        .header("Sec-Fetch-Site", "cross-site")
        .json(&json!({"login": "ned", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_error(status, &body, 403, "csrf");
    // A foreign Origin with the right token is still refused.
    let mut api = server.login_ok("ned", PASSWORD).await;
    let req = api
        .http
        .post(server.url("/api/auth/logout"))
        .header("Origin", "http://evil.example")
        .header("X-CSRF-Token", api.csrf.clone().unwrap());
    let (status, body) = api.send(req).await;
    assert_error(status, &body, 403, "csrf");
    assert_eq!(api.me().await["username"], "ned");
}

#[tokio::test]
async fn logout_ends_only_its_own_session() {
    let server = Server::start().await;
    let mut first = server.user("ola").await;
    let mut second = server.login_ok("ola", PASSWORD).await;
    let first_cookie = first.session_cookie().unwrap();

    let response = first.request(Method::POST, "/api/auth/logout").send().await.unwrap();
    assert_eq!(response.status(), 204);
    let cleared = response
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .any(|c| c.to_str().unwrap().starts_with("sb_session="));
    assert!(cleared, "logout should clear the cookie");

    // The old token is dead on the server, not just forgotten by the browser.
    let (status, body) = with_cookie(&server, &first_cookie, "/api/me").await;
    assert_error(status, &body, 401, "unauthenticated");
    let (status, body) = first.get("/api/me").await;
    assert_error(status, &body, 401, "unauthenticated");
    // The other session of the same user lives on.
    assert_eq!(second.me().await["username"], "ola");

    let mut audit = server.admin().await;
    let logs = audit.logs(&[("action", "logout"), ("user", "ola")]).await;
    assert_eq!(logs["total"], 1, "{logs}");
}

#[tokio::test]
async fn deleting_a_user_ends_their_sessions_and_their_login() {
    let server = Server::start().await;
    let mut admin = server.admin().await;
    let mut victim = server.user("pia").await;
    let mut victim2 = server.login_ok("pia", PASSWORD).await;
    let id = victim.me().await["id"].as_i64().unwrap();

    let (status, body) = admin.delete(&format!("/api/admin/users/{id}")).await;
    assert_eq!(status, 204, "{body}");
    let (status, body) = victim.get("/api/me").await;
    assert_error(status, &body, 401, "unauthenticated");
    let (status, body) = victim2.get("/api/me").await;
    assert_error(status, &body, 401, "unauthenticated");
    let (_, status, body) = server.login("pia", PASSWORD).await;
    assert_error(status, &body, 401, "invalid_credentials");
    // Gone, so a second delete is not found.
    let (status, body) = admin.delete(&format!("/api/admin/users/{id}")).await;
    assert_error(status, &body, 404, "not_found");
}

#[track_caller]
fn assert_security_headers(what: &str, response: &reqwest::Response) {
    let headers = response.headers();
    let csp = headers
        .get("content-security-policy")
        .unwrap_or_else(|| panic!("{what}: no Content-Security-Policy"))
        .to_str()
        .unwrap();
    assert!(!csp.contains("unsafe-inline"), "{what}: {csp}");
    assert!(!csp.contains("unsafe-eval"), "{what}: {csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
    assert!(csp.contains("default-src 'self'"), "{what}: {csp}");
    assert_eq!(
        headers.get("x-content-type-options").map(|v| v.to_str().unwrap()),
        Some("nosniff"),
        "{what}"
    );
    assert!(
        headers.get("referrer-policy").is_some_and(|v| !v.is_empty()),
        "{what}: no Referrer-Policy"
    );
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let server = Server::start().await;
    let api = server.client();
    let checks: Vec<(&str, reqwest::RequestBuilder, u16)> = vec![
        ("API JSON", api.request(Method::GET, "/api/auth/config"), 200),
        ("login page", api.request(Method::GET, "/login"), 200),
        ("home page", api.request(Method::GET, "/"), 200),
        ("404", api.request(Method::GET, "/no/such/page"), 404),
        ("401", api.request(Method::GET, "/api/me"), 401),
        (
            "400",
            api.request(Method::POST, "/api/auth/login")
                .header("Content-Type", "application/json")
                .body("{"),
            400,
        ),
        (
            "403 csrf",
            api.http
                .post(server.url("/api/auth/login"))
                .header("Origin", "http://evil.example")
                .json(&json!({"login": "x", "password": "y"})),
            403,
        ),
    ];
    for (what, req, expected) in checks {
        let response = req.send().await.unwrap();
        assert_eq!(response.status().as_u16(), expected, "{what}");
        assert_security_headers(what, &response);
        if what.contains("page") {
            let ct = response.headers()["content-type"].to_str().unwrap().to_owned();
            assert!(ct.starts_with("text/html"), "{what}: {ct}");
        }
    }
}

async fn last_login_ip(admin: &mut Api, username: &str) -> Value {
    let logs = admin
        .logs(&[("action", "login"), ("user", username), ("per_page", "1")])
        .await;
    assert_eq!(logs["entries"].as_array().unwrap().len(), 1, "{logs}");
    logs["entries"][0]["ip"].clone()
}

async fn login_via_proxy(server: &Server, forwarded: &str, login: &str) {
    let response = server
        .client()
        .request(Method::POST, "/api/auth/login")
        .header("X-Forwarded-For", forwarded)
        .json(&json!({"login": login, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn x_forwarded_for_is_ignored_without_trusted_proxies() {
    let server = Server::start().await;
    let mut admin = server.admin().await;
    server.user("quin").await;
    login_via_proxy(&server, "203.0.113.7", "quin").await;
    assert_eq!(last_login_ip(&mut admin, "quin").await, "127.0.0.1");
    let logs = admin.logs(&[("ip", "203.0.113.7")]).await;
    assert_eq!(logs["total"], 0, "{logs}");
}

#[tokio::test]
async fn x_forwarded_for_is_used_from_a_trusted_proxy() {
    let server = Server::start_with(&[("TRUSTED_PROXIES", "127.0.0.1")]).await;
    let mut admin = server.admin().await;
    server.user("rex").await;
    login_via_proxy(&server, "203.0.113.7", "rex").await;
    assert_eq!(last_login_ip(&mut admin, "rex").await, "203.0.113.7");
    let logs = admin.logs(&[("ip", "203.0.113.7")]).await;
    assert_eq!(logs["total"], 1, "{logs}");
    assert_eq!(logs["entries"][0]["action"], "login");
    assert_eq!(logs["entries"][0]["username"], "rex");
    // A chain through the trusted proxy: the client is the last untrusted hop.
    login_via_proxy(&server, "198.51.100.9, 127.0.0.1", "rex").await;
    assert_eq!(last_login_ip(&mut admin, "rex").await, "198.51.100.9");
}
