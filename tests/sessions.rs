//! Sessions and CSRF: unauthenticated requests, the X-CSRF-Token and Origin checks, logout, sessions ended by account deletion, security headers on every response, and X-Forwarded-For trusted only from TRUSTED_PROXIES.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a failed step should fail the test"
)]
mod common;

use common::{assert_error, Api, Server, Ws, PASSWORD};
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

/// `GET /api/me/sessions` as `api` sees it.
async fn own_sessions(api: &mut Api) -> Vec<Value> {
    let (status, body) = api.get("/api/me/sessions").await;
    assert_eq!(status, 200, "{body}");
    body["sessions"].as_array().unwrap().clone()
}

/// Reads `ws` until its `kicked` frame, then its close: the reason, the
/// close code and how long it took.
async fn kicked_and_closed(ws: &mut Ws) -> (String, Option<u16>, std::time::Duration) {
    let started = std::time::Instant::now();
    let kicked = ws.next_of("kicked").await;
    let code = ws.closed().await;
    (kicked["reason"].as_str().unwrap().to_owned(), code, started.elapsed())
}

#[tokio::test]
async fn people_list_their_sessions_and_end_one_whose_socket_closes_at_once() {
    let server = Server::start_with(&[("TRUSTED_PROXIES", "127.0.0.1")]).await;
    let mut here = server.user("rey").await;
    let mut phone = server.login_ok("rey", PASSWORD).await;
    phone.forwarded_for = Some("198.51.100.44".into());
    // The phone is used from another address and browser: it is listed as last seen.
    let req = phone
        .request(Method::GET, "/api/me")
        .header("User-Agent", "Mozilla/5.0 (Linux; Android 14) Firefox/131.0");
    let (status, _) = phone.send(req).await;
    assert_eq!(status, 200);

    let listed = own_sessions(&mut here).await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(listed[0]["current"], true, "this one comes first");
    assert_eq!(listed[1]["current"], false);
    let other = listed[1].clone();
    assert_eq!(other["ip"], "198.51.100.44");
    assert_eq!(other["user_agent"], "Mozilla/5.0 (Linux; Android 14) Firefox/131.0");
    assert!(common::is_rfc3339(other["created_at"].as_str().unwrap()));
    assert!(common::is_rfc3339(other["last_seen_at"].as_str().unwrap()));
    let id = other["id"].as_str().unwrap().to_owned();
    for cookie in [here.session_cookie().unwrap(), phone.session_cookie().unwrap()] {
        assert!(
            !id.contains(&cookie) && !cookie.contains(&id),
            "the id is not the token"
        );
    }

    // Another user cannot end it, nor learn it exists; unknown ids are 404 too.
    let mut sid = server.user("sid").await;
    let (status, body) = sid.delete(&format!("/api/me/sessions/{id}")).await;
    assert_error(status, &body, 404, "not_found");
    assert_eq!(own_sessions(&mut sid).await.len(), 1);
    let (status, body) = here.delete("/api/me/sessions/no-such-session").await;
    assert_error(status, &body, 404, "not_found");

    let mut phone_socket = Ws::connect(&phone).await;
    let (status, body) = here.delete(&format!("/api/me/sessions/{id}")).await;
    assert_eq!(status, 204, "{body}");
    let (reason, code, took) = kicked_and_closed(&mut phone_socket).await;
    eprintln!("an ended session's socket closed {took:?} after the DELETE answered");
    assert_eq!(reason, "this session was ended");
    assert_eq!(code, Some(4001));
    let (status, body) = phone.get("/api/me").await;
    assert_error(status, &body, 401, "unauthenticated");
    let (status, body) = here.delete(&format!("/api/me/sessions/{id}")).await;
    assert_error(status, &body, 404, "not_found");
    assert_eq!(own_sessions(&mut here).await.len(), 1);

    let mut admin = server.admin().await;
    let logs = admin.logs(&[("action", "session_end"), ("user", "rey")]).await;
    assert_eq!(logs["total"], 1, "{logs}");
    assert_eq!(logs["entries"][0]["details"]["session"], id.as_str());
}

#[tokio::test]
async fn ending_every_other_session_closes_their_sockets_and_keeps_this_one() {
    let server = Server::start().await;
    let mut here = server.user("tam").await;
    let laptop = server.login_ok("tam", PASSWORD).await;
    let phone = server.login_ok("tam", PASSWORD).await;
    let mut own_socket = Ws::connect(&here).await;
    let mut sockets = [Ws::connect(&laptop).await, Ws::connect(&phone).await];
    let (status, body) = here.post("/api/me/sessions/end-others", json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ended"], 2);
    for socket in &mut sockets {
        let (reason, code, _) = kicked_and_closed(socket).await;
        assert_eq!((reason.as_str(), code), ("this session was ended", Some(4001)));
    }
    assert_eq!(own_sessions(&mut here).await.len(), 1);
    own_socket.send(json!({"type": "ping"})).await;
    own_socket.next_of("pong").await;
    let (status, body) = here.post("/api/me/sessions/end-others", json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ended"], 0);
}

#[tokio::test]
async fn ending_the_current_session_signs_out() {
    let server = Server::start().await;
    let mut here = server.user("una").await;
    let id = own_sessions(&mut here).await[0]["id"].as_str().unwrap().to_owned();
    let response = here
        .request(Method::DELETE, &format!("/api/me/sessions/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let cleared = response
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .any(|c| c.to_str().unwrap().starts_with("sb_session=;"));
    assert!(cleared, "the cookie is cleared");
    let (status, body) = server.client().get("/api/me/sessions").await;
    assert_error(status, &body, 401, "unauthenticated");
}

#[tokio::test]
async fn a_password_change_closes_the_other_sessions_sockets_at_once() {
    let server = Server::start().await;
    let mut here = server.user("val").await;
    let other = server.login_ok("val", PASSWORD).await;
    let mut own_socket = Ws::connect(&here).await;
    let mut other_socket = Ws::connect(&other).await;
    let (status, body) = here
        .post(
            "/api/me/password",
            json!({"current_password": PASSWORD, "new_password": "a brand new passphrase"}),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    // A `kicked` frame: the socket was closed by the change, not found dead
    // by its once-a-minute check (which closes without one).
    let (reason, code, took) = kicked_and_closed(&mut other_socket).await;
    eprintln!("the other session's socket closed {took:?} after the password change answered");
    assert_eq!((reason.as_str(), code), ("your password was changed", Some(4001)));
    own_socket.send(json!({"type": "ping"})).await;
    own_socket.next_of("pong").await;
    assert_eq!(own_sessions(&mut here).await.len(), 1);
}
