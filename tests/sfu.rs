//! The SFU through the real server: headless peers (sb-peer, the same
//! webrtc-rs stack as the server) sign in, join a room and voice over
//! `/ws`, negotiate with `sfu` frames and send synthetic Opus on loopback.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a failed step should fail the test"
)]
mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Api, Event, Server, Ws, FRAME_WAIT};
use sb_peer::Peer;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

/// A member of a room in voice, its `/ws` pumped by a task: `sfu` frames go
/// to its peer and the peer's answers go back; every other frame is kept.
struct Member {
    sid: String,
    peer: Arc<Peer>,
    send: mpsc::UnboundedSender<Value>,
    frames: mpsc::UnboundedReceiver<Value>,
    /// Every `sfu` frame's data, in order.
    sfu: Arc<Mutex<Vec<Value>>>,
    /// Dropped with the member: the pump ends and the socket closes.
    _open: oneshot::Sender<()>,
}

impl Member {
    /// A guest that joins `room` and voice; `on_sfu` sends the `sfu` join.
    async fn enter(server: &Server, name: &str, room: &str, tag: u32) -> Member {
        Member::enter_as(&server.guest(name).await, room, tag).await
    }

    /// The same for a signed-in account.
    async fn enter_as(api: &Api, room: &str, tag: u32) -> Member {
        let mut ws = Ws::connect(api).await;
        let sid = ws.sid();
        ws.join(room).await;
        ws.send(json!({"type": "voice", "action": "join"})).await;
        loop {
            let state = ws.next_of("voice_state").await;
            if state["sid"] == sid.as_str() {
                break;
            }
        }
        let (peer, mut answers) = Peer::spawn(tag).await.unwrap();
        let peer = Arc::new(peer);
        let (send, mut outgoing) = mpsc::unbounded_channel::<Value>();
        let (keep, frames) = mpsc::unbounded_channel();
        let sfu = Arc::new(Mutex::new(Vec::new()));
        let to_server = send.clone();
        tokio::spawn(async move {
            while let Some(answer) = answers.recv().await {
                if to_server.send(json!({"type": "sfu", "data": answer})).is_err() {
                    break;
                }
            }
        });
        let (pump_peer, pump_sfu) = (peer.clone(), sfu.clone());
        let (open, mut closed) = oneshot::channel::<()>();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = &mut closed => break,
                    frame = outgoing.recv() => match frame {
                        Some(frame) => ws.send(frame).await,
                        None => break,
                    },
                    event = ws.next_event(Duration::from_secs(3600)) => match event {
                        Event::Frame(frame) if frame["type"] == "sfu" => {
                            pump_sfu.lock().unwrap().push(frame["data"].clone());
                            pump_peer.signal(frame["data"].clone());
                        }
                        Event::Frame(frame) => {
                            let _ = keep.send(frame);
                        }
                        Event::Closed(_) => break,
                        Event::Timeout => {}
                    },
                }
            }
        });
        Member {
            sid,
            peer,
            send,
            frames,
            sfu,
            _open: open,
        }
    }

    fn frame(&self, frame: Value) {
        self.send.send(frame).unwrap();
    }

    fn join_sfu(&self) {
        self.frame(json!({"type": "sfu", "data": {"action": "join"}}));
        self.peer.set_sending(true);
    }

    fn heard(&self, from: &Member) -> u64 {
        self.peer.packets_from(&from.sid)
    }

    /// The next kept (non-`sfu`) frame of type `ty`.
    async fn next_of(&mut self, ty: &str) -> Value {
        let deadline = tokio::time::Instant::now() + FRAME_WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.frames.recv()).await {
                Ok(Some(frame)) if frame["type"] == ty => return frame,
                Ok(Some(_)) => continue,
                _ => panic!("no {ty} frame within {FRAME_WAIT:?}"),
            }
        }
    }

    fn sfu_frames(&self) -> Vec<Value> {
        self.sfu.lock().unwrap().clone()
    }
}

/// A server whose guests are not rate limited (these tests sign in many).
async fn start() -> Server {
    Server::start_with(&[("GUEST_RATE_PER_MIN", "0")]).await
}

/// Polls `done` until it holds; panics after FRAME_WAIT.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + FRAME_WAIT;
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A counter or gauge from /metrics.
async fn metric(server: &Server, name: &str) -> i64 {
    let text = reqwest::get(server.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
        .parse()
        .unwrap()
}

/// Polls /metrics until `name` reads `value`; panics after FRAME_WAIT.
async fn metric_becomes(server: &Server, name: &str, value: i64) {
    let deadline = tokio::time::Instant::now() + FRAME_WAIT;
    loop {
        let now = metric(server, name).await;
        if now == value {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} stayed {now}, not {value}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The UDP port of the candidate in an offer's SDP.
fn candidate_port(offer: &Value) -> u16 {
    let sdp = offer["sdp"].as_str().unwrap();
    let line = sdp
        .lines()
        .find(|l| l.starts_with("a=candidate:"))
        .unwrap_or_else(|| panic!("no candidate in {sdp}"));
    // a=candidate:<foundation> <component> udp <priority> <ip> <port> typ host
    let fields: Vec<&str> = line.split(' ').collect();
    assert_eq!(fields[4], "127.0.0.1", "the announced address: {line}");
    fields[5].parse().unwrap()
}

#[tokio::test]
async fn hello_tells_the_voice_mode_and_p2p_has_no_sfu() {
    let server = Server::start().await;
    let ws = Ws::connect(&server.user("ann").await).await;
    assert_eq!(ws.hello["voice"], json!({"mode": "auto", "mesh_limit": 6}));

    let server = Server::start_with(&[("VOICE_MODE", "sfu"), ("MESH_LIMIT", "4")]).await;
    let ws = Ws::connect(&server.user("ann").await).await;
    assert_eq!(ws.hello["voice"], json!({"mode": "sfu", "mesh_limit": 4}));

    let server = Server::start_with(&[("VOICE_MODE", "p2p")]).await;
    let mut ws = Ws::connect(&server.user("ann").await).await;
    assert_eq!(ws.hello["voice"]["mode"], "p2p");
    ws.join("lobby").await;
    ws.send(json!({"type": "voice", "action": "join"})).await;
    ws.send(json!({"type": "sfu", "data": {"action": "join"}})).await;
    assert_eq!(ws.next_of("error").await["code"], "sfu_unavailable");
}

#[tokio::test]
async fn sfu_frames_need_a_room_voice_and_well_formed_data() {
    let server = Server::start().await;
    let api: Api = server.user("ann").await;
    let mut ws = Ws::connect(&api).await;
    ws.send(json!({"type": "sfu", "data": {"action": "join"}})).await;
    assert_eq!(ws.next_of("error").await["code"], "not_in_room");
    ws.join("lobby").await;
    ws.send(json!({"type": "sfu", "data": {"action": "join"}})).await;
    assert_eq!(ws.next_of("error").await["code"], "not_in_voice");
    ws.send(json!({"type": "voice", "action": "join"})).await;
    for bad in [
        json!({}),
        json!("join"),
        json!({"action": "dance"}),
        json!({"action": "join", "room": "elsewhere"}),
        json!({"action": "answer", "sdp": "v=0"}),
        json!({"action": "answer", "version": "1", "sdp": "v=0"}),
        json!({"action": "offer", "version": 1, "sdp": "v=0"}),
    ] {
        ws.send(json!({"type": "sfu", "data": bad})).await;
        let error = ws.next_of("error").await;
        assert_eq!(error["code"], "bad_request", "{bad}: {error}");
    }
    // An answer from a session that never joined the SFU.
    ws.send(json!({"type": "sfu", "data": {"action": "answer", "version": 1, "sdp": "v=0"}}))
        .await;
    assert_eq!(ws.next_of("error").await["code"], "bad_request");

    // Joined, a garbage answer or one to no offer is refused, and the
    // connection stays up.
    ws.send(json!({"type": "sfu", "data": {"action": "join"}})).await;
    let offer = ws.next_of("sfu").await["data"].clone();
    assert_eq!(offer["action"], "offer");
    assert_eq!(offer["tracks"], json!([]), "alone in the room: no receive slots");
    let version = offer["version"].as_u64().unwrap();
    for (v, sdp) in [(version + 1, "v=0"), (version, "not a session description <script>")] {
        ws.send(json!({"type": "sfu", "data": {"action": "answer", "version": v, "sdp": sdp}}))
            .await;
        assert_eq!(ws.next_of("error").await["code"], "bad_request");
    }
    ws.send(json!({"type": "ping"})).await;
    ws.next_of("pong").await;
}

#[tokio::test]
async fn two_members_hear_each_other_through_one_port() {
    let server = start().await;
    let ann = Member::enter(&server, "ann", "lobby", 1).await;
    let bob = Member::enter(&server, "bob", "lobby", 2).await;
    ann.join_sfu();
    bob.join_sfu();
    until("50 packets each way", || ann.heard(&bob) >= 50 && bob.heard(&ann) >= 50).await;

    for (me, other, tag) in [(&ann, &bob, 2), (&bob, &ann, 1)] {
        let stats = me.peer.stats();
        assert_eq!(stats.from[&other.sid].tags, vec![tag], "whose packets arrived");
        assert!(stats.from[&other.sid].bytes >= 50 * sb_peer::PAYLOAD_LEN as u64);
        assert_eq!(stats.foreign + stats.unattributed, 0);
        assert!(stats.errors.is_empty(), "{:?}", stats.errors);
    }
    // One UDP port for both: every offer names the same candidate.
    let offers: Vec<Value> = [&ann, &bob]
        .iter()
        .flat_map(|m| m.sfu_frames())
        .filter(|d| d["action"] == "offer")
        .collect();
    assert!(offers.len() >= 3, "ann's first offer, its renegotiation, bob's offer");
    let port = candidate_port(&offers[0]);
    assert!(offers.iter().all(|o| candidate_port(o) == port));
    // Each offer says whose voice each receive m-line carries.
    let last_to_bob = bob.sfu_frames().into_iter().rfind(|d| d["action"] == "offer").unwrap();
    assert_eq!(last_to_bob["tracks"][0]["sid"], ann.sid.as_str());

    assert!(metric(&server, "switchboard_sfu_packets_forwarded_total").await >= 100);
    assert_eq!(metric(&server, "switchboard_sfu_members").await, 2);
}

#[tokio::test]
async fn leaving_voice_or_closing_ends_the_media_at_once() {
    let server = start().await;
    let ann = Member::enter(&server, "ann", "lobby", 1).await;
    let bob = Member::enter(&server, "bob", "lobby", 2).await;
    let cat = Member::enter(&server, "cat", "lobby", 3).await;
    for m in [&ann, &bob, &cat] {
        m.join_sfu();
    }
    until("everyone hears everyone", || {
        ann.heard(&bob) >= 20 && bob.heard(&ann) >= 20 && cat.heard(&ann) >= 20 && cat.heard(&bob) >= 20
    })
    .await;

    ann.frame(json!({"type": "voice", "action": "leave"}));
    // Bob is told at once that ann's m-line is idle.
    let ann_sid = ann.sid.clone();
    until("bob told ann's slot is idle", || {
        bob.sfu_frames().iter().any(|d| {
            d["action"] == "tracks"
                && d["tracks"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|t| t["sid"] != ann_sid.as_str())
        })
    })
    .await;
    metric_becomes(&server, "switchboard_sfu_members", 2).await;
    // Cat's voice at bob is the clock: 50 more of it, and none of ann's.
    let (at_leave, cat_then) = (bob.heard(&ann), bob.heard(&cat));
    until("more of cat's voice at bob", || bob.heard(&cat) >= cat_then + 50).await;
    assert_eq!(bob.heard(&ann), at_leave, "ann's voice after she left voice");

    // A closed socket ends the media too.
    drop(cat);
    metric_becomes(&server, "switchboard_sfu_members", 1).await;
}

#[tokio::test]
async fn rooms_are_isolated_on_the_sfu() {
    let server = start().await;
    let mut owner = server.user("owner").await;
    let (status, body) = owner.post("/api/rooms", json!({"name": "Other"})).await;
    assert_eq!(status.as_u16(), 201, "{body}");
    let other = body["code"].as_str().unwrap().to_owned();

    let ann = Member::enter(&server, "ann", "lobby", 1).await;
    let bob = Member::enter(&server, "bob", "lobby", 2).await;
    let cat = Member::enter(&server, "cat", &other, 3).await;
    let dan = Member::enter(&server, "dan", &other, 4).await;
    for m in [&ann, &bob, &cat, &dan] {
        m.join_sfu();
    }
    until("voice in both rooms", || {
        ann.heard(&bob) >= 50 && bob.heard(&ann) >= 50 && cat.heard(&dan) >= 50 && dan.heard(&cat) >= 50
    })
    .await;
    for (m, room_tags) in [(&ann, [1, 2]), (&bob, [1, 2]), (&cat, [3, 4]), (&dan, [3, 4])] {
        let stats = m.peer.stats();
        assert_eq!(stats.from.len(), 1, "one room-mate's voice, nobody else's");
        assert_eq!(stats.foreign + stats.unattributed, 0);
        for received in stats.from.values() {
            assert!(
                received.tags.iter().all(|t| room_tags.contains(t)),
                "{:?}",
                received.tags
            );
        }
    }
}

#[tokio::test]
async fn a_member_who_changes_rooms_leaves_the_sfu() {
    let server = start().await;
    let mut owner = server.user("owner").await;
    let (_, body) = owner.post("/api/rooms", json!({"name": "Other"})).await;
    let other = body["code"].as_str().unwrap().to_owned();
    let mut ann = Member::enter(&server, "ann", "lobby", 1).await;
    let bob = Member::enter(&server, "bob", "lobby", 2).await;
    ann.join_sfu();
    bob.join_sfu();
    until("voice both ways", || ann.heard(&bob) >= 20 && bob.heard(&ann) >= 20).await;
    ann.frame(json!({"type": "join", "room": other}));
    ann.next_of("joined").await;
    metric_becomes(&server, "switchboard_sfu_members", 1).await;
    // An answer in the new room is refused: she must join the SFU again.
    ann.frame(json!({"type": "sfu", "data": {"action": "answer", "version": 9, "sdp": "v=0"}}));
    assert_eq!(ann.next_of("error").await["code"], "bad_request");
}

/// A signed-in account with the moderator role, given by the admin.
async fn moderator(server: &Server, admin: &mut Api, name: &str) -> Api {
    let mut api = server.user(name).await;
    let id = api.me().await["id"].as_i64().unwrap();
    let (status, body) = admin
        .patch(&format!("/api/admin/users/{id}"), json!({"roles": ["moderator"]}))
        .await;
    assert_eq!(status, 200, "{body}");
    api
}

/// The next `voice_state` about `sid`.
async fn voice_state_of(ws: &mut Ws, sid: &str) -> Value {
    loop {
        let state = ws.next_of("voice_state").await;
        if state["sid"] == sid {
            return state;
        }
    }
}

async fn live_session(admin: &mut Api, sid: &str) -> Value {
    let (status, body) = admin.get("/api/admin/sessions").await;
    assert_eq!(status, 200, "{body}");
    body["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["sid"] == sid)
        .cloned()
        .unwrap_or_else(|| panic!("no session {sid} in {body}"))
}

#[tokio::test]
async fn server_mute_is_for_moderators_holds_and_cannot_be_undone_by_the_member() {
    let server = Server::start().await;
    let mut admin = server.admin().await;
    let mut moderator = moderator(&server, &mut admin, "mod").await;
    let mut plain = server.user("plain").await;
    let ann_api = server.user("ann").await;
    let mut ann = Ws::connect(&ann_api).await;
    let ann_sid = ann.sid();
    ann.join("lobby").await;
    ann.send(json!({"type": "voice", "action": "join"})).await;
    let state = voice_state_of(&mut ann, &ann_sid).await;
    assert_eq!(
        (&state["server_muted"], &state["server_deafened"], &state["path"]),
        (&json!(false), &json!(false), &json!("p2p"))
    );
    let mut admin_ws = Ws::connect(&admin).await;
    let admin_sid = admin_ws.sid();
    admin_ws.join("lobby").await;

    let mute = format!("/api/admin/sessions/{ann_sid}/mute");
    let deafen = format!("/api/admin/sessions/{ann_sid}/deafen");
    // Without the permission, with bad bodies, on an unknown session.
    let (status, body) = plain.post(&mute, json!({"muted": true})).await;
    common::assert_error(status, &body, 403, "forbidden");
    let (status, body) = plain.post(&deafen, json!({"deafened": true})).await;
    common::assert_error(status, &body, 403, "forbidden");
    for bad in [
        json!({}),
        json!({"muted": "yes"}),
        json!({"muted": true, "extra": 1}),
        json!({"muted": true, "reason": "x".repeat(501)}),
    ] {
        let (status, body) = moderator.post(&mute, bad.clone()).await;
        common::assert_error(status, &body, 400, "bad_request");
    }
    let (status, body) = moderator
        .post("/api/admin/sessions/nosuchsid/mute", json!({"muted": true}))
        .await;
    common::assert_error(status, &body, 404, "not_found");
    // Only an admin acts on an admin.
    let (status, body) = moderator
        .post(&format!("/api/admin/sessions/{admin_sid}/mute"), json!({"muted": true}))
        .await;
    common::assert_error(status, &body, 403, "forbidden");

    let (status, body) = moderator
        .post(&mute, json!({"muted": true, "reason": "shouting <b>"}))
        .await;
    assert_eq!(status, 204, "{body}");
    let notice = ann.next_of("voice_moderated").await;
    assert_eq!(notice["server_muted"], true);
    assert_eq!(notice["reason"], "shouting <b>");
    let state = voice_state_of(&mut ann, &ann_sid).await;
    assert_eq!((&state["server_muted"], &state["muted"]), (&json!(true), &json!(false)));
    let state = voice_state_of(&mut admin_ws, &ann_sid).await;
    assert_eq!(state["server_muted"], true, "the room sees it");
    assert_eq!(live_session(&mut admin, &ann_sid).await["server_muted"], true);

    // The member cannot undo it; their own mute is separate.
    ann.send(json!({"type": "mute", "muted": false})).await;
    assert_eq!(ann.next_of("error").await["code"], "forbidden");
    ann.send(json!({"type": "mute", "muted": true})).await;
    let state = voice_state_of(&mut ann, &ann_sid).await;
    assert_eq!((&state["server_muted"], &state["muted"]), (&json!(true), &json!(true)));
    // It holds across leaving and joining voice.
    ann.send(json!({"type": "voice", "action": "leave"})).await;
    let state = voice_state_of(&mut ann, &ann_sid).await;
    assert_eq!((&state["server_muted"], &state["path"]), (&json!(true), &Value::Null));
    ann.send(json!({"type": "voice", "action": "join"})).await;
    assert_eq!(voice_state_of(&mut ann, &ann_sid).await["server_muted"], true);
    let joined = admin_ws.join("lobby").await;
    let member = joined["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["sid"] == ann_sid.as_str())
        .unwrap()
        .clone();
    assert_eq!(
        (&member["server_muted"], &member["path"]),
        (&json!(true), &json!("p2p"))
    );

    // Deafen, then lift both: the member may unmute again.
    let (status, _) = moderator.post(&deafen, json!({"deafened": true})).await;
    assert_eq!(status, 204);
    assert_eq!(ann.next_of("voice_moderated").await["server_deafened"], true);
    for (path, body) in [(&mute, json!({"muted": false})), (&deafen, json!({"deafened": false}))] {
        let (status, _) = moderator.post(path, body).await;
        assert_eq!(status, 204);
    }
    let state = loop {
        let state = voice_state_of(&mut ann, &ann_sid).await;
        if state["server_deafened"] == false {
            break state;
        }
    };
    assert_eq!(state["server_muted"], false);
    ann.send(json!({"type": "mute", "muted": false})).await;
    assert_eq!(voice_state_of(&mut ann, &ann_sid).await["muted"], false);

    // Audited with the moderator, the target and the reason.
    let logs = admin.logs(&[("action", "voice_mute")]).await;
    let entry = &logs["entries"][0];
    assert_eq!(entry["username"], "mod", "{logs}");
    assert_eq!(entry["details"]["username"], "ann", "{logs}");
    assert_eq!(entry["details"]["reason"], "shouting <b>", "{logs}");
    for action in ["voice_unmute", "voice_deafen", "voice_undeafen"] {
        assert_eq!(admin.logs(&[("action", action)]).await["total"], 1, "{action}");
    }
}

/// Samples `count` until it has not moved for half a second: the time from
/// `since` to its last change.
async fn settles(since: tokio::time::Instant, count: impl Fn() -> u64) -> Duration {
    let (mut last, mut changed) = (count(), tokio::time::Instant::now());
    let deadline = tokio::time::Instant::now() + FRAME_WAIT;
    while changed.elapsed() < Duration::from_millis(500) {
        assert!(tokio::time::Instant::now() < deadline, "the packets never stopped");
        tokio::time::sleep(Duration::from_millis(2)).await;
        let now = count();
        if now != last {
            (last, changed) = (now, tokio::time::Instant::now());
        }
    }
    changed.saturating_duration_since(since)
}

#[tokio::test]
async fn server_mute_and_deafen_stop_forwarding_on_the_sfu() {
    let server = start().await;
    let mut admin = server.admin().await;
    let mut ann = Member::enter(&server, "ann", "lobby", 1).await;
    let bob = Member::enter(&server, "bob", "lobby", 2).await;
    let cat = Member::enter(&server, "cat", "lobby", 3).await;
    for m in [&ann, &bob, &cat] {
        m.join_sfu();
    }
    let state = loop {
        let state = ann.next_of("voice_state").await;
        if state["sid"] == ann.sid.as_str() && state["path"] == "sfu" {
            break state;
        }
    };
    assert_eq!(state["in_voice"], true);
    assert_eq!(live_session(&mut admin, &ann.sid).await["path"], "sfu");
    until("everyone hears everyone", || {
        bob.heard(&ann) >= 20 && cat.heard(&ann) >= 20 && bob.heard(&cat) >= 20 && cat.heard(&bob) >= 20
    })
    .await;

    let asked = tokio::time::Instant::now();
    let (status, _) = admin
        .post(&format!("/api/admin/sessions/{}/mute", ann.sid), json!({"muted": true}))
        .await;
    assert_eq!(status, 204);
    let stopped = settles(asked, || bob.heard(&ann)).await;
    eprintln!("server mute: ann's packets stopped at bob {stopped:?} after the request");
    let (ann_then, ann_at_cat, cat_then) = (bob.heard(&ann), cat.heard(&ann), bob.heard(&cat));
    until("50 more of cat's voice at bob", || bob.heard(&cat) >= cat_then + 50).await;
    assert_eq!(bob.heard(&ann), ann_then, "a server-muted member is not forwarded");
    assert_eq!(cat.heard(&ann), ann_at_cat, "to anyone");

    // Deafened: bob hears nothing and is not heard.
    let (status, _) = admin
        .post(
            &format!("/api/admin/sessions/{}/deafen", bob.sid),
            json!({"deafened": true}),
        )
        .await;
    assert_eq!(status, 204);
    settles(tokio::time::Instant::now(), || bob.heard(&cat)).await;
    let (bob_hears, cat_hears) = (bob.heard(&cat), cat.heard(&bob));
    settles(tokio::time::Instant::now(), || cat.heard(&bob)).await;
    let cat_hears = cat_hears.max(cat.heard(&bob));
    let ann_hears = ann.heard(&cat);
    until("50 more of cat's voice at ann", || ann.heard(&cat) >= ann_hears + 50).await;
    assert_eq!(bob.heard(&cat), bob_hears, "a deafened member hears nothing");
    assert_eq!(cat.heard(&bob), cat_hears, "and is not heard");

    // Lifted: ann is heard again.
    let cat_heard_ann = cat.heard(&ann);
    let (status, _) = admin
        .post(
            &format!("/api/admin/sessions/{}/mute", ann.sid),
            json!({"muted": false}),
        )
        .await;
    assert_eq!(status, 204);
    until("ann heard again", || cat.heard(&ann) >= cat_heard_ann + 50).await;
}

#[tokio::test]
async fn kick_ban_and_move_end_the_sfu_media_at_once() {
    let server = start().await;
    let mut admin = server.admin().await;
    let (_, body) = admin.post("/api/rooms", json!({"name": "Other"})).await;
    let other = body["code"].as_str().unwrap().to_owned();
    let ann = Member::enter_as(&server.user("ann").await, "lobby", 1).await;
    let bob = Member::enter(&server, "bob", "lobby", 2).await;
    let cat = Member::enter(&server, "cat", "lobby", 3).await;
    let dan = Member::enter(&server, "dan", "lobby", 4).await;
    for m in [&ann, &bob, &cat, &dan] {
        m.join_sfu();
    }
    until("everyone heard at dan", || {
        dan.heard(&ann) >= 20 && dan.heard(&bob) >= 20 && dan.heard(&cat) >= 20
    })
    .await;
    metric_becomes(&server, "switchboard_sfu_members", 4).await;

    let (status, _) = admin
        .post(&format!("/api/admin/sessions/{}/kick", bob.sid), json!({}))
        .await;
    assert_eq!(status, 204);
    metric_becomes(&server, "switchboard_sfu_members", 3).await;
    let (status, _) = admin
        .post(&format!("/api/admin/sessions/{}/move", cat.sid), json!({"room": other}))
        .await;
    assert_eq!(status, 204);
    metric_becomes(&server, "switchboard_sfu_members", 2).await;
    let ann_id = live_session(&mut admin, &ann.sid).await["user"]["id"].clone();
    let (status, body) = admin
        .post("/api/admin/bans", json!({"user_id": ann_id, "reason": "enough"}))
        .await;
    assert_eq!(status, 201, "{body}");
    metric_becomes(&server, "switchboard_sfu_members", 1).await;
    for gone in [&ann, &bob, &cat] {
        let then = dan.heard(gone);
        settles(tokio::time::Instant::now(), || dan.heard(gone)).await;
        assert!(dan.heard(gone) - then < 50, "no stream from {} goes on", gone.sid);
    }
}
