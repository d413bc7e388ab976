//! The `/ws` contract against the real server: hello, rooms, chat fan-out
//! and history, voice state, the signal relay's room check, admin watch,
//! kick, move and ban, bad frames, persistence across kill -9, and many
//! connections at once.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a failed step should fail the test"
)]
mod common;

use std::time::Duration;

use common::{assert_error, Event, Server, Ws};
use serde_json::{json, Value};

/// Limits raised so tests can send quickly.
const FAST_CHAT: &[(&str, &str)] = &[
    ("CHAT_RATE_PER_SEC", "10000"),
    ("CHAT_BURST", "10000"),
    ("GUEST_RATE_PER_MIN", "0"),
];

async fn create_room(api: &mut common::Api, name: &str) -> String {
    let (status, body) = api.post("/api/rooms", json!({"name": name})).await;
    assert_eq!(status, 201, "{body}");
    body["code"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn hello_names_the_session_and_its_user() {
    let server = Server::start().await;
    let ann = server.user("ann").await;
    let ws = Ws::connect(&ann).await;
    assert_eq!(ws.hello["user"]["username"], "ann");
    assert!(ws.sid().len() >= 12);
    assert_eq!(ws.hello["ice_servers"], json!([]));
    assert_eq!(ws.hello["ice_transport_policy"], "all");
}

#[tokio::test]
async fn ice_servers_carry_time_limited_turn_credentials() {
    let server = Server::start_with(&[
        ("STUN_URLS", "stun:stun.example.org:3478"),
        ("TURN_URLS", "turn:turn.example.org:3478"),
        ("TURN_SECRET", "coturn-shared-secret"),
        ("ICE_TRANSPORT_POLICY", "relay"),
    ])
    .await;
    let ann = server.user("ann").await;
    let ws = Ws::connect(&ann).await;
    let servers = ws.hello["ice_servers"].as_array().unwrap();
    assert_eq!(servers[0]["urls"][0], "stun:stun.example.org:3478");
    let username = servers[1]["username"].as_str().unwrap();
    assert!(
        username.ends_with(&format!(":{}", ws.hello["user"]["id"])),
        "{username}"
    );
    assert!(servers[1]["credential"].as_str().unwrap().len() >= 27);
    assert_eq!(ws.hello["ice_transport_policy"], "relay");
}

#[tokio::test]
async fn upgrades_are_refused_without_origin_session_or_with_a_ban() {
    let server = Server::start().await;
    let mut ann = server.user("ann").await;
    assert_eq!(Ws::try_connect(&ann, None).await.err(), Some(403), "no Origin");
    assert_eq!(
        Ws::try_connect(&ann, Some("http://evil.example")).await.err(),
        Some(403),
        "foreign Origin"
    );
    let anonymous = server.client();
    assert_eq!(
        Ws::try_connect(&anonymous, Some(&server.base)).await.err(),
        Some(403),
        "no session"
    );

    let mut admin = server.admin().await;
    let ann_id = ann.me().await["id"].clone();
    let (status, body) = admin
        .post("/api/admin/bans", json!({"user_id": ann_id, "reason": "spam"}))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        Ws::try_connect(&ann, Some(&server.base)).await.err(),
        Some(403),
        "banned"
    );
}

#[tokio::test]
async fn join_lists_members_and_announces_the_joiner() {
    let server = Server::start().await;
    let (ann, bob) = (server.user("ann").await, server.user("bob").await);
    let mut a = Ws::connect(&ann).await;
    let mut b = Ws::connect(&bob).await;
    let joined = a.join("lobby").await;
    assert_eq!(joined["room"], json!({"code": "lobby", "name": "Lobby"}));
    assert_eq!(joined["members"].as_array().unwrap().len(), 1);
    assert_eq!(joined["members"][0]["sid"], a.sid().as_str());

    let joined = b.join("lobby").await;
    let sids: Vec<&str> = joined["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["sid"].as_str().unwrap())
        .collect();
    assert_eq!(sids, [a.sid(), b.sid()]);
    let announced = a.next_of("member_joined").await;
    assert_eq!(announced["member"]["username"], "bob");
    assert_eq!(announced["member"]["in_voice"], false);
}

#[tokio::test]
async fn joining_an_unknown_room_is_not_found() {
    let server = Server::start().await;
    let mut a = Ws::connect(&server.user("ann").await).await;
    a.send(json!({"type": "join", "room": "no-such-room"})).await;
    let error = a.next_of("error").await;
    assert_eq!(error["code"], "not_found");
}

#[tokio::test]
async fn chat_reaches_everyone_in_the_room_and_only_them() {
    let server = Server::start_with(FAST_CHAT).await;
    let mut sockets = Vec::new();
    for i in 0..20 {
        let mut ws = Ws::connect(&server.guest(&format!("g{i}")).await).await;
        ws.join("lobby").await;
        sockets.push(ws);
    }
    let mut owner = server.user("owner").await;
    let elsewhere = create_room(&mut owner, "Elsewhere").await;
    let mut outsider = Ws::connect(&owner).await;
    outsider.join(&elsewhere).await;

    sockets[0]
        .send(json!({"type": "chat", "text": "héllo <b>&</b> 👋", "nonce": "n-1"}))
        .await;
    for ws in &mut sockets {
        let message = ws.next_of("message").await;
        assert_eq!(message["text"], "héllo <b>&</b> 👋");
        assert_eq!(message["room"], "lobby");
        assert!(
            message["username"].as_str().unwrap().starts_with("guest-g0-"),
            "{message}"
        );
        assert!(message["id"].as_i64().unwrap() > 0);
        assert!(message["ts"].as_str().unwrap().ends_with('Z'));
    }
    // Had the lobby's message leaked, it would be queued for the outsider
    // before anything it asks for now.
    outsider.send(json!({"type": "chat", "text": "marker"})).await;
    let next = outsider.next().await;
    assert_eq!(
        (next["type"].as_str(), next["text"].as_str()),
        (Some("message"), Some("marker")),
        "another room hears nothing: {next}"
    );
}

#[tokio::test]
async fn the_sender_gets_its_nonce_back() {
    let server = Server::start().await;
    let mut a = Ws::connect(&server.user("ann").await).await;
    a.join("lobby").await;
    a.send(json!({"type": "chat", "text": "hi", "nonce": "abc-123"})).await;
    let message = a.next_of("message").await;
    assert_eq!(message["nonce"], "abc-123");
    assert_eq!(message["username"], "ann");
}

#[tokio::test]
async fn history_holds_the_last_200_of_250_and_pages_back() {
    let server = Server::start_with(FAST_CHAT).await;
    let mut ann = server.user("ann").await;
    let mut a = Ws::connect(&ann).await;
    a.join("lobby").await;
    for i in 0..250 {
        a.send(json!({"type": "chat", "text": format!("m{i}")})).await;
    }
    let mut last = Value::Null;
    for _ in 0..250 {
        last = a.next_of("message").await;
    }
    assert_eq!(last["text"], "m249");

    let mut b = Ws::connect(&server.user("bob").await).await;
    let joined = b.join("lobby").await;
    let history = joined["history"].as_array().unwrap();
    assert_eq!(history.len(), 200);
    assert_eq!(history[0]["text"], "m50", "oldest first");
    assert_eq!(history[199]["text"], "m249");

    let oldest_id = history[0]["id"].as_i64().unwrap();
    let (status, body) = ann
        .get(&format!("/api/rooms/lobby/messages?before={oldest_id}&limit=200"))
        .await;
    assert_eq!(status, 200, "{body}");
    let older = body["messages"].as_array().unwrap();
    assert_eq!(older.len(), 50);
    assert_eq!(older[0]["text"], "m0");
    assert_eq!(older[49]["text"], "m49");
    let (_, body) = ann.get("/api/rooms/lobby/messages").await;
    assert_eq!(body["messages"].as_array().unwrap().len(), 50, "limit defaults to 50");
    let (_, body) = ann.get("/api/rooms/lobby/messages?limit=1000").await;
    assert_eq!(
        body["messages"].as_array().unwrap().len(),
        200,
        "limit is capped at 200"
    );
    let (status, body) = ann.get("/api/rooms/nope/messages").await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = server.client().get("/api/rooms/lobby/messages").await;
    assert_error(status, &body, 401, "unauthenticated");
}

#[tokio::test]
async fn switching_rooms_leaves_the_first() {
    let server = Server::start().await;
    let mut ann = server.user("ann").await;
    let other = create_room(&mut ann, "Other").await;
    let mut a = Ws::connect(&ann).await;
    let mut b = Ws::connect(&server.user("bob").await).await;
    a.join("lobby").await;
    b.join("lobby").await;
    a.next_of("member_joined").await;
    let joined = b.join(&other).await;
    assert_eq!(joined["room"]["code"], other.as_str());
    let left = a.next_of("member_left").await;
    assert_eq!(left["sid"], b.sid().as_str());

    b.send(json!({"type": "chat", "text": "in other"})).await;
    assert_eq!(b.next_of("message").await["room"], other.as_str());
    a.send(json!({"type": "chat", "text": "marker"})).await;
    let next = a.next().await;
    assert_eq!(
        next["text"], "marker",
        "the lobby hears nothing from the other room: {next}"
    );

    let (status, body) = ann.get(&format!("/api/rooms/{other}")).await;
    assert_eq!(status, 200);
    assert_eq!(body["online"], 1);
    assert_eq!(body["name"], "Other");
}

#[tokio::test]
async fn leave_announces_member_left() {
    let server = Server::start().await;
    let mut a = Ws::connect(&server.user("ann").await).await;
    let mut b = Ws::connect(&server.user("bob").await).await;
    a.join("lobby").await;
    b.join("lobby").await;
    b.send(json!({"type": "leave"})).await;
    assert_eq!(a.next_of("member_left").await["sid"], b.sid().as_str());
    b.send(json!({"type": "chat", "text": "x"})).await;
    assert_eq!(b.next_of("error").await["code"], "not_in_room");
}

#[tokio::test]
async fn signals_pass_only_within_a_room() {
    let server = Server::start().await;
    let mut ann = server.user("ann").await;
    let other = create_room(&mut ann, "Other").await;
    let mut a = Ws::connect(&ann).await;
    let mut b = Ws::connect(&server.user("bob").await).await;
    let mut c = Ws::connect(&server.user("cat").await).await;
    a.join("lobby").await;
    b.join("lobby").await;
    c.join(&other).await;
    // Signals pass only between members in voice (tests/trust.rs has the rest).
    for ws in [&mut a, &mut b, &mut c] {
        ws.send(json!({"type": "voice", "action": "join"})).await;
        let own = ws.sid();
        while ws.next_of("voice_state").await["sid"] != own.as_str() {}
    }

    let data = json!({"description": {"type": "offer", "sdp": "v=0\r\n"}});
    a.send(json!({"type": "signal", "to": b.sid(), "data": data})).await;
    let signal = b.next_of("signal").await;
    assert_eq!(signal["from"], a.sid().as_str());
    assert_eq!(signal["data"], data, "passed through unchanged");

    a.send(json!({"type": "signal", "to": c.sid(), "data": {"candidate": {}}}))
        .await;
    assert_eq!(a.next_of("error").await["code"], "not_in_room");
    c.send(json!({"type": "ping"})).await;
    assert_eq!(c.next().await["type"], "pong", "nothing crossed rooms");
}

#[tokio::test]
async fn voice_state_goes_to_the_whole_room() {
    let server = Server::start().await;
    let mut a = Ws::connect(&server.user("ann").await).await;
    let mut b = Ws::connect(&server.user("bob").await).await;
    a.join("lobby").await;
    b.join("lobby").await;
    a.send(json!({"type": "voice", "action": "join"})).await;
    for ws in [&mut a, &mut b] {
        let state = ws.next_of("voice_state").await;
        assert_eq!(state["in_voice"], true);
        assert_eq!(state["muted"], false);
    }
    a.send(json!({"type": "mute", "muted": true})).await;
    let state = b.next_of("voice_state").await;
    assert_eq!(
        (state["in_voice"].clone(), state["muted"].clone()),
        (json!(true), json!(true))
    );
    let joined = Ws::connect(&server.user("cat").await).await.join("lobby").await;
    let ann = joined["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["username"] == "ann")
        .unwrap()
        .clone();
    assert_eq!(
        (ann["in_voice"].clone(), ann["muted"].clone()),
        (json!(true), json!(true))
    );
}

#[tokio::test]
async fn ping_gets_pong() {
    let server = Server::start().await;
    let mut a = Ws::connect(&server.user("ann").await).await;
    a.send(json!({"type": "ping"})).await;
    assert_eq!(a.next().await["type"], "pong");
}

#[tokio::test]
async fn bad_frames_get_bad_request_and_keep_the_connection() {
    let server = Server::start().await;
    let mut a = Ws::connect(&server.user("ann").await).await;
    for bad in [
        "{not json",
        r#"{"type":"dance"}"#,
        r#"{"type":"chat"}"#,
        r#"{"type":"join"}"#,
        r#"{"type":"chat","text":42}"#,
        r#"{"type":"join","room":"lobby","sneaky":true}"#,
        r#"[1,2,3]"#,
        "",
    ] {
        a.send_text(bad.to_owned()).await;
        let error = a.next_of("error").await;
        assert_eq!(error["code"], "bad_request", "{bad}");
        assert!(error["message"].is_string());
    }
    a.join("lobby").await;
    a.send(json!({"type": "chat", "text": ""})).await;
    assert_eq!(a.next_of("error").await["code"], "bad_request", "empty text");
    a.send(json!({"type": "chat", "text": "é".repeat(4001)})).await;
    assert_eq!(a.next_of("error").await["code"], "too_large");
    a.send(json!({"type": "chat", "text": "é".repeat(4000)})).await;
    assert_eq!(
        a.next_of("message").await["text"].as_str().unwrap().chars().count(),
        4000
    );
    a.send(json!({"type": "ping"})).await;
    assert_eq!(a.next_of("pong").await["type"], "pong", "still connected");
}

#[tokio::test]
async fn a_one_mebibyte_frame_is_refused_and_the_server_stays_healthy() {
    let server = Server::start().await;
    let mut a = Ws::connect(&server.user("ann").await).await;
    a.send_text(format!(r#"{{"type":"chat","text":"{}"}}"#, "x".repeat(1024 * 1024)))
        .await;
    match a.next_event(common::FRAME_WAIT).await {
        Event::Frame(error) => {
            assert_eq!(error["code"], "too_large");
            assert_eq!(a.closed().await, Some(1009));
        }
        Event::Closed(code) => assert!(matches!(code, Some(1009) | None), "{code:?}"),
        Event::Timeout => panic!("no answer to a 1 MiB frame"),
    }
    let (status, _) = server.client().get("/healthz").await;
    assert_eq!(status, 200);
    let mut b = Ws::connect(&server.user("bob").await).await;
    b.join("lobby").await;
}

#[tokio::test]
async fn a_flood_is_rate_limited_then_closed_1008() {
    let server = Server::start_with(&[("CHAT_RATE_PER_SEC", "5"), ("CHAT_BURST", "5")]).await;
    let mut a = Ws::connect(&server.user("ann").await).await;
    a.join("lobby").await;
    for i in 0..5 {
        a.send(json!({"type": "chat", "text": format!("burst {i}")})).await;
    }
    for _ in 0..5 {
        a.next_of("message").await;
    }
    for i in 0..60 {
        a.send(json!({"type": "chat", "text": format!("flood {i}")})).await;
    }
    let mut delivered = 0;
    let mut limited = 0;
    let close = loop {
        match a.next_event(common::FRAME_WAIT).await {
            Event::Frame(f) if f["type"] == "message" => delivered += 1,
            Event::Frame(f) if f["code"] == "rate_limited" => limited += 1,
            Event::Frame(_) => {}
            Event::Closed(code) => break code,
            Event::Timeout => panic!("a flooding session was not closed"),
        }
    };
    assert_eq!(close, Some(1008));
    assert!(delivered < 10, "{delivered} of the flood delivered");
    assert!(limited >= 1, "rate_limited came before the close");
    let (status, _) = server.client().get("/healthz").await;
    assert_eq!(status, 200);
}

/// How soon a kick lands is measured under load by sb-loadgen's kick
/// probes (docs/benchmarks.md), not by a wall-clock margin here.
#[tokio::test]
async fn a_kick_reaches_its_target_then_closes_4001() {
    let server = Server::start().await;
    let mut admin = server.admin().await;
    let mut a = Ws::connect(&server.user("ann").await).await;
    a.join("lobby").await;
    let (status, body) = admin
        .post(
            &format!("/api/admin/sessions/{}/kick", a.sid()),
            json!({"reason": "be nice"}),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let kicked = a.next_of("kicked").await;
    assert_eq!(kicked["reason"], "be nice");
    assert_eq!(a.closed().await, Some(4001));
    let (status, body) = admin
        .post(&format!("/api/admin/sessions/{}/kick", a.sid()), json!({}))
        .await;
    assert_error(status, &body, 404, "not_found");
}

#[tokio::test]
async fn a_kicked_user_can_reconnect_because_the_login_survives() {
    let server = Server::start().await;
    let mut admin = server.admin().await;
    let ann = server.user("ann").await;
    let mut a1 = Ws::connect(&ann).await;
    let mut a2 = Ws::connect(&ann).await;
    let id = a1.hello["user"]["id"].as_i64().unwrap();
    let (status, _) = admin.post(&format!("/api/admin/users/{id}/kick"), json!({})).await;
    assert_eq!(status, 204);
    assert_eq!(a1.closed().await, Some(4001));
    assert_eq!(a2.closed().await, Some(4001));
    Ws::connect(&ann).await;
}

#[tokio::test]
async fn a_move_sends_moved_then_joined_for_the_new_room() {
    let server = Server::start().await;
    let mut admin = server.admin().await;
    let target_room = create_room(&mut admin, "Quiet room").await;
    let mut a = Ws::connect(&server.user("ann").await).await;
    a.join("lobby").await;
    let (status, body) = admin
        .post(
            &format!("/api/admin/sessions/{}/move", a.sid()),
            json!({"room": target_room}),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let moved = a.next_of("moved").await;
    assert_eq!(moved["room"], json!({"code": target_room, "name": "Quiet room"}));
    let joined = a.next_of("joined").await;
    assert_eq!(joined["room"]["code"], target_room.as_str());
    let (_, sessions) = admin.get("/api/admin/sessions").await;
    let live = sessions["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["sid"] == a.sid().as_str())
        .unwrap()
        .clone();
    assert_eq!(live["room"], target_room.as_str());
}

#[tokio::test]
async fn a_ban_closes_live_sessions_blocks_login_and_lifts() {
    let server = Server::start().await;
    let mut admin = server.admin().await;
    let ann = server.user("ann").await;
    let mut a = Ws::connect(&ann).await;
    let ann_user = a.hello["user"]["id"].as_i64().unwrap();
    let (status, ban) = admin
        .post(
            "/api/admin/bans",
            json!({"user_id": ann_user, "reason": "spam", "expires_at": "2099-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(status, 201, "{ban}");
    assert_eq!(a.next_of("banned").await["reason"], "spam");
    assert_eq!(a.closed().await, Some(4003));
    assert_eq!(ban["user_id"], ann_user);
    assert!(ban["created_by"].is_i64());

    let mut again = server.client();
    let (status, body) = again
        .post("/api/auth/login", json!({"login": "ann", "password": common::PASSWORD}))
        .await;
    assert_error(status, &body, 403, "banned");
    let (_, bans) = admin.get("/api/admin/bans").await;
    assert_eq!(bans["bans"].as_array().unwrap().len(), 1);

    let (status, _) = admin.delete(&format!("/api/admin/bans/{}", ban["id"])).await;
    assert_eq!(status, 204);
    let (status, _) = again
        .post("/api/auth/login", json!({"login": "ann", "password": common::PASSWORD}))
        .await;
    assert_eq!(status, 200, "the lifted ban no longer blocks");
}

#[tokio::test]
async fn moderators_kick_and_move_but_cannot_ban() {
    let server = Server::start().await;
    let mut admin = server.admin().await;
    let mut moderator = server.user("mod").await;
    let mod_id = moderator.me().await["id"].clone();
    let (status, _) = admin
        .patch(&format!("/api/admin/users/{mod_id}"), json!({"roles": ["moderator"]}))
        .await;
    assert_eq!(status, 200);
    let mut a = Ws::connect(&server.user("ann").await).await;
    let (status, body) = moderator
        .post("/api/admin/bans", json!({"ip": "10.1.2.3", "reason": "x"}))
        .await;
    assert_error(status, &body, 403, "forbidden");
    let (status, _) = moderator
        .post(&format!("/api/admin/sessions/{}/kick", a.sid()), json!({}))
        .await;
    assert_eq!(status, 204);
    assert_eq!(a.closed().await, Some(4001));
    let mut user = server.user("plain").await;
    let (status, body) = user.get("/api/admin/sessions").await;
    assert_error(status, &body, 403, "forbidden");
}

#[tokio::test]
async fn admin_watch_sends_a_snapshot_then_changes() {
    let server = Server::start().await;
    let mut admin = server.admin().await;
    let mut watcher = Ws::connect(&admin).await;
    let mut early = Ws::connect(&server.user("ann").await).await;
    // Once the registry lists it, the monitor has heard of it too.
    wait_until!("the registry lists the early session", {
        let (_, live) = admin.get("/api/admin/sessions").await;
        live["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["sid"] == early.sid().as_str())
    });
    watcher.send(json!({"type": "admin_watch"})).await;
    let snapshot = watcher.next_of("sessions").await;
    let sids: Vec<&str> = snapshot["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["sid"].as_str().unwrap())
        .collect();
    assert!(sids.contains(&early.sid().as_str()));
    assert!(sids.contains(&watcher.sid().as_str()));
    let entry = snapshot["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["sid"] == early.sid().as_str())
        .unwrap();
    assert_eq!(entry["user"]["username"], "ann");
    assert_eq!(entry["ip"], "127.0.0.1");
    assert!(entry["connected_at"].is_string() && entry["user_agent"].is_string());

    early.join("lobby").await;
    let update = watcher.next_of("session_update").await;
    assert_eq!(update["session"]["room"], "lobby");
    early.send(json!({"type": "voice", "action": "join"})).await;
    let update = watcher.next_of("session_update").await;
    assert_eq!(update["session"]["in_voice"], true);

    let late = Ws::connect(&server.user("bob").await).await;
    let update = watcher.next_of("session_update").await;
    assert_eq!(update["session"]["sid"], late.sid().as_str());
    drop(late);
    let gone = watcher.next_of("session_gone").await;
    assert!(gone["sid"].is_string());

    let mut plain = Ws::connect(&server.user("carl").await).await;
    plain.send(json!({"type": "admin_watch"})).await;
    assert_eq!(plain.next_of("error").await["code"], "forbidden");
}

#[tokio::test]
async fn delivered_messages_survive_kill_9() {
    let mut server = Server::start().await;
    let mut ann = server.user("ann").await;
    let mut a = Ws::connect(&ann).await;
    a.join("lobby").await;
    for i in 0..20 {
        a.send(json!({"type": "chat", "text": format!("keep {i}")})).await;
    }
    for _ in 0..20 {
        a.next_of("message").await;
    }
    server.kill9_and_restart().await;
    let (status, body) = ann.get("/api/rooms/lobby/messages?limit=200").await;
    assert_eq!(status, 200, "{body}");
    let texts: Vec<&str> = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts.len(), 20);
    assert_eq!(texts[19], "keep 19");
    let mut b = Ws::connect(&ann).await;
    assert_eq!(b.join("lobby").await["history"].as_array().unwrap().len(), 20);
}

#[tokio::test]
async fn five_hundred_connections_are_all_greeted() {
    let server = Server::start_with(&[("GUEST_RATE_PER_MIN", "0"), ("WS_MAX_PER_IP", "0")]).await;
    let mut tasks = Vec::new();
    for i in 0..500 {
        let base = server.base.clone();
        tasks.push(tokio::spawn(async move {
            let mut api = common::Api::new(&base);
            let (status, body) = api.post("/api/auth/guest", json!({"name": format!("load {i}")})).await;
            assert_eq!(status, 200, "{body}");
            let mut ws = Ws::connect(&api).await;
            ws.join("lobby").await;
            ws
        }));
    }
    let mut sockets = Vec::new();
    for task in tasks {
        sockets.push(task.await.unwrap());
    }
    assert_eq!(sockets.len(), 500);
    assert!(sockets.iter().all(|ws| ws.hello["type"] == "hello"));
    let mut admin = server.admin().await;
    let (_, live) = admin.get("/api/admin/sessions").await;
    assert_eq!(live["sessions"].as_array().unwrap().len(), 500);
}

#[tokio::test]
async fn sigterm_tells_sessions_and_exits_within_ten_seconds() {
    let mut server = Server::start().await;
    let mut a = Ws::connect(&server.user("ann").await).await;
    a.join("lobby").await;
    let took = server.terminate().await;
    let goodbye = a.next_of("error").await;
    assert_eq!(goodbye["code"], "server_restarting");
    assert!(took < Duration::from_secs(10), "{took:?}");
}

#[tokio::test]
async fn the_admin_message_log_filters_and_shows_ips() {
    let server = Server::start().await;
    let mut admin = server.admin().await;
    let mut a = Ws::connect(&server.user("ann").await).await;
    a.join("lobby").await;
    for text in ["alpha one", "beta two", "alpha three"] {
        a.send(json!({"type": "chat", "text": text})).await;
        a.next_of("message").await;
    }
    let (status, body) = admin.get("/api/admin/messages?q=alpha&room=lobby&user=ann").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total"], 2);
    assert_eq!(body["messages"][0]["text"], "alpha three", "newest first");
    assert_eq!(body["messages"][0]["ip"], "127.0.0.1");
    let (_, body) = admin.get("/api/admin/messages?per_page=1&page=2").await;
    assert_eq!(body["messages"][0]["text"], "beta two");
    assert_eq!(body["total"], 3);
    let mut plain = server.user("plain").await;
    let (status, body) = plain.get("/api/admin/messages").await;
    assert_error(status, &body, 403, "forbidden");
}

#[tokio::test]
async fn joins_kicks_moves_and_bans_are_audited() {
    let server = Server::start().await;
    let mut admin = server.admin().await;
    let room = create_room(&mut admin, "Audit room").await;
    let mut a = Ws::connect(&server.user("ann").await).await;
    a.join("lobby").await;
    a.send(json!({"type": "voice", "action": "join"})).await;
    a.next_of("voice_state").await;
    let (status, _) = admin
        .post(&format!("/api/admin/sessions/{}/move", a.sid()), json!({"room": room}))
        .await;
    assert_eq!(status, 204);
    a.next_of("joined").await;
    let (status, _) = admin
        .post(&format!("/api/admin/sessions/{}/kick", a.sid()), json!({}))
        .await;
    assert_eq!(status, 204);
    a.closed().await;
    let expected = [
        "room_create",
        "room_join",
        "voice_join",
        "voice_leave",
        "room_leave",
        "move",
        "kick",
    ];
    // The writer thread commits audit events in its own time: wait for them.
    let mut logs: Value;
    wait_until!(format!("{expected:?} in the audit log: {logs}"), {
        logs = admin.get("/api/admin/logs?per_page=200").await.1;
        let actions: Vec<&str> = logs["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap())
            .collect();
        expected.iter().all(|action| actions.contains(action))
    });
    let kick = logs["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "kick")
        .unwrap();
    assert_eq!(kick["username"], "admin");
    assert!(kick["target_user_id"].is_i64());
    let (_, by_room) = admin.get(&format!("/api/admin/logs?room={room}")).await;
    assert!(by_room["total"].as_i64().unwrap() >= 2);
}
