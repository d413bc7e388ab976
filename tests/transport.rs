//! The WebSocket transport against the real server, on the wire: what the
//! upgrade answers when it refuses, the close handshake and who closes TCP,
//! a client that stops reading, and bytes RFC 6455 forbids.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a failed step should fail the test"
)]
mod common;

use std::time::Duration;

use common::{handshake_request, raw_request, Server, Ws, FRAME_WAIT};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn error_code(body: &str) -> Value {
    let body: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body:?}"));
    assert!(body["error"]["message"].is_string(), "{body}");
    body["error"]["code"].clone()
}

#[tokio::test]
async fn refused_upgrades_answer_the_contract_error_and_close_the_connection() {
    let server = Server::start_with(&[("WS_MAX_PER_USER", "1")]).await;
    let ann = server.user("ann").await;
    let anonymous = server.client();

    for (who, origin, why) in [
        (&ann, Some("http://evil.example"), "foreign Origin"),
        (&ann, None, "no Origin"),
        (&anonymous, Some(server.base.as_str()), "no session"),
    ] {
        let answer = raw_request(&server.base, &handshake_request(who, "/ws", origin)).await;
        assert_eq!(answer.status, 403, "{why}: {}", answer.head);
        assert_eq!(error_code(&answer.body), "forbidden", "{why}");
        assert!(answer.closed, "{why}: the connection ends after a refusal");
        assert!(
            answer.head.to_ascii_lowercase().contains("content-security-policy"),
            "{why}: the App's middleware applies: {}",
            answer.head
        );
    }

    let host = server.base.trim_start_matches("http://");
    let cookie = ann.session_cookie().unwrap();
    let plain = format!(
        "GET /ws HTTP/1.1\r\nHost: {host}\r\nOrigin: {}\r\nCookie: sb_session={cookie}\r\nConnection: close\r\n\r\n",
        server.base
    );
    let answer = raw_request(&server.base, &plain).await;
    assert_eq!(answer.status, 400, "a GET /ws that is no handshake: {}", answer.head);
    assert_eq!(error_code(&answer.body), "bad_request");

    let _held = Ws::connect(&ann).await;
    let answer = raw_request(&server.base, &handshake_request(&ann, "/ws", Some(&server.base))).await;
    assert_eq!(answer.status, 429, "over WS_MAX_PER_USER: {}", answer.head);
    assert_eq!(error_code(&answer.body), "rate_limited");
    assert!(answer.head.to_ascii_lowercase().contains("retry-after"));

    let answer = raw_request(
        &server.base,
        &handshake_request(&ann, "/no-such-page", Some(&server.base)),
    )
    .await;
    assert_eq!(answer.status, 404, "an upgrade elsewhere answers as that path does");
    assert!(answer.closed);
}

#[tokio::test]
async fn an_accepted_upgrade_answers_101_with_the_rfc_accept_key() {
    let server = Server::start().await;
    let ann = server.user("ann").await;
    let answer = raw_request(&server.base, &handshake_request(&ann, "/ws", Some(&server.base))).await;
    assert_eq!(answer.status, 101, "{}", answer.head);
    let head = answer.head.to_ascii_lowercase();
    // RFC 6455 §1.3's sample key and its answer.
    assert!(
        head.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{head}"
    );
    assert!(head.contains("upgrade: websocket"), "{head}");
    assert!(!answer.closed);
}

#[tokio::test]
async fn a_client_close_is_answered_and_the_server_closes_tcp_at_once() {
    let server = Server::start_with(&[("WS_MAX_PER_USER", "0")]).await;
    let ann = server.user("ann").await;
    let mut took = Vec::new();
    for _ in 0..20 {
        let mut ws = Ws::connect(&ann).await;
        let elapsed = ws
            .close_and_await_eof()
            .await
            .expect("after the close handshake the server ends the TCP connection");
        took.push(elapsed);
    }
    took.sort();
    let median = took[took.len() / 2];
    assert!(
        median < Duration::from_millis(100),
        "median close {median:?}; all: {took:?}"
    );
    let mut admin = server.admin().await;
    wait_until!("every closed session leaves the registry", {
        let (_, live) = admin.get("/api/admin/sessions").await;
        live["sessions"].as_array().unwrap().is_empty()
    });
}

#[tokio::test]
async fn after_a_kick_the_server_closes_tcp_first() {
    let server = Server::start().await;
    let mut admin = server.admin().await;
    let mut a = Ws::connect(&server.user("ann").await).await;
    let (status, _) = admin
        .post(&format!("/api/admin/sessions/{}/kick", a.sid()), json!({}))
        .await;
    assert_eq!(status, 204);
    assert_eq!(a.next_of("kicked").await["type"], "kicked");
    assert_eq!(a.closed().await, Some(4001));
    let mut byte = [0u8; 1];
    let eof = tokio::time::timeout(FRAME_WAIT, a.raw_socket().read(&mut byte)).await;
    assert!(matches!(eof, Ok(Ok(0))), "the server closed its side: {eof:?}");
}

#[tokio::test]
async fn a_client_that_stops_reading_is_closed_4008_and_memory_stays_bounded() {
    const MESSAGES: usize = 2_500;
    let server = Server::start_with(&[
        ("WS_OUTBOX_KB", "64"),
        ("CHAT_RATE_PER_SEC", "100000"),
        ("CHAT_BURST", "100000"),
    ])
    .await;
    let mut sleepers = Vec::new();
    for name in ["sleepy", "dozy", "snoozy"] {
        let mut ws = Ws::connect(&server.user(name).await).await;
        ws.join("lobby").await;
        sleepers.push(ws);
    }
    let mut talker = Ws::connect(&server.user("talker").await).await;
    talker.join("lobby").await;
    let rss_before = server.rss_kb();

    // About 10 MB of chat into the room; the sleepers read none of it.
    let text = "z".repeat(4000);
    let sent = tokio::spawn(async move {
        for i in 0..MESSAGES {
            talker
                .send(json!({"type": "chat", "text": text, "nonce": i.to_string()}))
                .await;
            let message = talker.next_of("message").await;
            assert_eq!(message["nonce"], i.to_string());
        }
        talker
    });
    let mut admin = server.admin().await;
    let sids: Vec<String> = sleepers.iter().map(Ws::sid).collect();
    wait_until!("the sleepers leave the registry", {
        let (_, live) = admin.get("/api/admin/sessions").await;
        let live = live["sessions"].as_array().unwrap().clone();
        !live.iter().any(|s| sids.iter().any(|sid| s["sid"] == sid.as_str()))
    });
    let mut talker = tokio::time::timeout(Duration::from_secs(120), sent)
        .await
        .expect("the talker is served while the sleepers are dropped")
        .unwrap();
    let rss_after = server.rss_kb();
    let grown_kb = rss_after.saturating_sub(rss_before);
    // 10 MB went to each sleeper; what the server kept for them is bounded
    // by the 64 KiB budget, so its growth stays far below the volume sent.
    assert!(
        grown_kb < 12 * 1024,
        "RSS grew {grown_kb} KiB ({rss_before} -> {rss_after})"
    );

    for mut sleeper in sleepers {
        assert_eq!(sleeper.closed().await, Some(4008), "closed as too slow");
    }
    talker.send(json!({"type": "ping"})).await;
    assert_eq!(talker.next_of("pong").await["type"], "pong");
}

#[tokio::test]
async fn bytes_rfc_6455_forbids_close_the_socket_1002_and_the_server_stays_healthy() {
    let server = Server::start().await;
    let ann = server.user("ann").await;
    let addr = server.base.trim_start_matches("http://").to_owned();
    for bad in [
        vec![0x81, 0x02, b'h', b'i'],        // an unmasked client frame
        vec![0x83, 0x80, 1, 2, 3, 4],        // a reserved opcode
        vec![0x89 & 0x7F, 0x80, 1, 2, 3, 4], // a fragmented ping
        vec![0xC1, 0x80, 1, 2, 3, 4],        // a reserved bit
        vec![0x88, 0x81, 0, 0, 0, 0, 3],     // a one-byte close payload
    ] {
        let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        stream
            .write_all(handshake_request(&ann, "/ws", Some(&server.base)).as_bytes())
            .await
            .unwrap();
        stream.write_all(&bad).await.unwrap();
        let mut bytes = Vec::new();
        tokio::time::timeout(FRAME_WAIT, stream.read_to_end(&mut bytes))
            .await
            .expect("the server ends the connection")
            .unwrap();
        let close = bytes
            .windows(4)
            .rposition(|w| w[0] == 0x88 && w[2..4] == 1002u16.to_be_bytes())
            .map(|_| ());
        assert!(
            close.is_some(),
            "{bad:?}: no close 1002 in {:?}",
            String::from_utf8_lossy(&bytes)
        );
    }
    let (status, _) = server.client().get("/healthz").await;
    assert_eq!(status, 200);
}
