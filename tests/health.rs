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

/// Every sample in a scrape, by name (labels left on), and every `# TYPE`.
fn scrape(
    text: &str,
) -> (
    std::collections::HashMap<String, f64>,
    std::collections::HashMap<String, String>,
) {
    let mut samples = std::collections::HashMap::new();
    let mut types = std::collections::HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            types.insert(name.to_owned(), kind.to_owned());
        } else if !line.starts_with('#') && !line.is_empty() {
            let (name, value) = line.rsplit_once(' ').unwrap();
            samples.insert(name.to_owned(), value.parse().unwrap());
        }
    }
    (samples, types)
}

async fn get_metrics(server: &Server, bearer: Option<&str>) -> (u16, String) {
    let mut req = reqwest::Client::new().get(server.url("/metrics"));
    if let Some(token) = bearer {
        req = req.bearer_auth(token);
    }
    let response = req.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn metrics_need_the_token_and_their_counters_move() {
    use common::Ws;
    use serde_json::json;
    let server = Server::start_with(&[("METRICS_TOKEN", "scrape-secret")]).await;
    assert_eq!(get_metrics(&server, None).await.0, 401, "no token");
    assert_eq!(get_metrics(&server, Some("wrong")).await.0, 401, "a wrong token");
    let (status, before) = get_metrics(&server, Some("scrape-secret")).await;
    assert_eq!(status, 200);
    let (before, types) = scrape(&before);
    let expected = [
        ("switchboard_ws_connections", "gauge"),
        ("switchboard_ws_connections_total", "counter"),
        ("switchboard_chat_messages_total", "counter"),
        ("switchboard_deliveries_total", "counter"),
        ("switchboard_login_failures_total", "counter"),
        ("switchboard_slow_sessions_dropped_total", "counter"),
        ("switchboard_bans_total", "counter"),
        ("switchboard_uploads_total", "counter"),
        ("switchboard_upload_bytes_total", "counter"),
        ("switchboard_writer_queue", "gauge"),
        ("switchboard_writer_commit_seconds", "histogram"),
        ("switchboard_fanout_seconds", "histogram"),
    ];
    for (name, kind) in expected {
        assert_eq!(types.get(name).map(String::as_str), Some(kind), "# TYPE of {name}");
        let sample = if kind == "histogram" {
            format!("{name}_count")
        } else {
            name.to_owned()
        };
        assert!(before.contains_key(&sample), "{sample} has a sample");
    }
    assert!(before.contains_key(r#"switchboard_fanout_seconds_bucket{le="+Inf"}"#));

    let mut admin = server.admin().await;
    let mut ann = server.user("ann").await;
    let mut ws = Ws::connect(&ann).await;
    ws.join("lobby").await;
    ws.send(json!({"type": "chat", "text": "counted"})).await;
    ws.next_of("message").await;
    let (status, body) = ann.upload_file("lobby", "note.txt", b"twelve bytes".to_vec()).await;
    assert_eq!(status, 201, "{body}");
    let (_, failed, _) = server.login("ann", "not the password").await;
    assert!(failed.is_client_error(), "{failed}");
    let target = admin.find_user("ann").await;
    let (status, body) = admin
        .post("/api/admin/bans", json!({"user_id": target["id"], "reason": "counted"}))
        .await;
    assert_eq!(status, 201, "{body}");

    let (after, _) = scrape(&get_metrics(&server, Some("scrape-secret")).await.1);
    let moved = |name: &str| after[name] - before[name];
    assert!(moved("switchboard_ws_connections_total") >= 1.0);
    assert!(moved("switchboard_chat_messages_total") >= 1.0);
    assert!(moved("switchboard_deliveries_total") >= 1.0);
    assert_eq!(moved("switchboard_uploads_total"), 1.0);
    assert_eq!(moved("switchboard_upload_bytes_total"), 12.0);
    assert!(moved("switchboard_login_failures_total") >= 1.0);
    assert_eq!(moved("switchboard_bans_total"), 1.0);
    assert!(
        moved("switchboard_writer_commit_seconds_count") >= 1.0,
        "the chat was committed"
    );
    assert!(moved("switchboard_fanout_seconds_count") >= 1.0, "and fanned out");
    assert!(after["switchboard_writer_commit_seconds_sum"] > 0.0);
    let inf = r#"switchboard_fanout_seconds_bucket{le="+Inf"}"#;
    assert_eq!(after[inf], after["switchboard_fanout_seconds_count"]);
    assert!(after["switchboard_writer_queue"] >= 0.0);
}
