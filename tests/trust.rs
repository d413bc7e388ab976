//! Trust boundaries on every request: the CSRF guard reads the path as the
//! router does, IP bans reach sessions that already exist (IPv6 by /64), and
//! voice signalling passes only between two members in voice.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a failed step should fail the test"
)]
mod common;

use common::{assert_error, Server, PASSWORD};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn csrf_is_checked_on_the_decoded_path_and_on_every_path() {
    let server = Server::start().await;
    let mut ann = server.user("ann").await;
    let token = ann.csrf.take();
    // The router decodes these to /api/me/username; so must the guard.
    for path in [
        "/%61pi/me/username",
        "/%61%70%69/me/username",
        "/api/me/%75sername",
        "/api/%6De/username",
        "/%2561pi/me/username",
        "/api%2Fme/username",
        "/not-api/anything",
    ] {
        let req = ann.request(Method::POST, path).json(&json!({"username": "mallory"}));
        let (status, body) = ann.send(req).await;
        assert_error(status, &body, 403, "csrf");
    }
    assert_eq!(ann.me().await["username"], "ann", "no request changed the name");

    // The exemptions hold on the decoded path too: a login sent with a stale
    // cookie and no token is still a login.
    let req = ann
        .request(Method::POST, "/api/auth/%6Cogin")
        .json(&json!({"login": "ann", "password": PASSWORD}));
    let (status, body) = ann.send(req).await;
    assert_eq!(status, 200, "{body}");
    ann.csrf = token;
}
