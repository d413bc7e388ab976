//! The server starts on its defaults, answers /healthz, and keeps its data.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a failed step should fail the test"
)]
mod common;

use common::Server;

#[tokio::test]
async fn healthz_answers_when_the_database_does() {
    let server = Server::start().await;
    let (status, body) = server.client().get("/healthz").await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ok");
}

#[tokio::test]
async fn accounts_survive_a_kill_9() {
    let mut server = Server::start().await;
    server.user("ann").await;
    server.kill9_and_restart().await;
    let mut again = server.client();
    let (status, body) = again
        .post(
            "/api/auth/login",
            serde_json::json!({"login": "ann", "password": common::PASSWORD}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}
