//! Who may do what to whom. The authorisation matrix runs every admin
//! endpoint and the WebSocket admin action as each built-in role and a
//! custom one, against a plain target and an admin target, and compares
//! every status with the policy written out below. Then the rules the matrix
//! cannot show in one cell: the last admin, and authority that changes
//! while a socket is open.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a failed step should fail the test"
)]
mod common;

use common::{assert_error, Server, Ws};
use serde_json::json;

#[tokio::test]
async fn moving_a_session_to_an_unknown_room_is_404() {
    let server = Server::start().await;
    let mut admin = server.admin().await;
    let mut ann = Ws::connect(&server.user("ann").await).await;
    ann.join("lobby").await;
    let path = format!("/api/admin/sessions/{}/move", ann.sid());
    let (status, body) = admin.post(&path, json!({"room": "no-such-room"})).await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = admin
        .post("/api/admin/sessions/no-such-sid/move", json!({"room": "lobby"}))
        .await;
    assert_error(status, &body, 404, "not_found");
}
