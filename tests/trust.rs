//! Trust boundaries on every request: the CSRF guard reads the path as the
//! router does, IP bans reach sessions that already exist (IPv6 by /64), and
//! voice signalling passes only between two members in voice.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a failed step should fail the test"
)]
mod common;

use common::{assert_error, Server, Ws, PASSWORD};
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

/// Addresses of the ban test: one IPv6 /64, its neighbour, and IPv4.
const BANNED_NET_HOST: &str = "2001:db8:1:2::abcd";
const BANNED_NET_OTHER_HOST: &str = "2001:db8:1:2::5";
const BANNED_ADDRESS: &str = "2001:db8:1:2::99";
const NEIGHBOUR_NET_HOST: &str = "2001:db8:1:3::5";
const HOME_V4: &str = "198.51.100.7";

#[tokio::test]
async fn ip_bans_reach_existing_sessions_and_cover_an_ipv6_slash_64() {
    let server = Server::start_with(&[("TRUSTED_PROXIES", "127.0.0.1")]).await;
    let mut admin = server.admin().await;
    // Ann signed in at home, and now uses the same session from a network
    // about to be banned; Bob signed in from that network; Carol from the
    // next /64 along.
    let mut ann = server.user_from("ann", HOME_V4).await;
    ann.forwarded_for = Some(BANNED_NET_HOST.into());
    let mut ann_socket = Ws::connect(&ann).await;
    let mut bob = server.user_from("bob", BANNED_NET_OTHER_HOST).await;
    let mut carol = server.user_from("carol", NEIGHBOUR_NET_HOST).await;

    let (status, body) = admin
        .post("/api/admin/bans", json!({"ip": BANNED_ADDRESS, "reason": "abuse"}))
        .await;
    assert_eq!(status, 201, "{body}");

    assert_eq!(ann_socket.next_of("banned").await["reason"], "abuse");
    assert_eq!(
        ann_socket.closed().await,
        Some(4003),
        "a live socket in the /64 is closed"
    );
    let (status, body) = ann.get("/api/me").await;
    assert_error(status, &body, 403, "banned");
    let req = ann.request(Method::POST, "/api/rooms").json(&json!({"name": "Escape"}));
    let (status, body) = ann.send(req).await;
    assert_error(status, &body, 403, "banned");
    assert_eq!(Ws::try_connect(&ann, Some(&server.base)).await.err(), Some(403));

    let (status, body) = bob.get("/api/me").await;
    assert_error(status, &body, 401, "unauthenticated");
    let (_, status, body) = {
        let mut again = server.client_from(BANNED_NET_OTHER_HOST);
        let (status, body) = again
            .post("/api/auth/login", json!({"login": "bob", "password": PASSWORD}))
            .await;
        (again, status, body)
    };
    assert_error(status, &body, 403, "banned");

    ann.forwarded_for = Some(HOME_V4.into());
    assert_eq!(
        ann.me().await["username"],
        "ann",
        "the same session, from elsewhere, works"
    );
    assert_eq!(carol.me().await["username"], "carol", "the next /64 is not banned");
}

#[tokio::test]
async fn an_ipv4_mapped_ban_is_an_ipv4_ban() {
    let server = Server::start_with(&[("TRUSTED_PROXIES", "127.0.0.1")]).await;
    let mut admin = server.admin().await;
    let mut dave = server.user_from("dave", "203.0.113.9").await;
    let mut erin = server.user_from("erin", "::ffff:203.0.113.10").await;
    for ip in ["::ffff:203.0.113.9", "203.0.113.10"] {
        let (status, body) = admin
            .post("/api/admin/bans", json!({"ip": ip, "reason": "abuse"}))
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, body) = dave.get("/api/me").await;
    assert_error(status, &body, 401, "unauthenticated");
    let (status, body) = erin.get("/api/me").await;
    assert_error(status, &body, 401, "unauthenticated");
    let mut again = server.client_from("203.0.113.9");
    let (status, body) = again
        .post("/api/auth/login", json!({"login": "dave", "password": PASSWORD}))
        .await;
    assert_error(status, &body, 403, "banned");
}

/// Long enough that a frame the server meant to send would have arrived.
const SILENCE: std::time::Duration = std::time::Duration::from_secs(2);
/// The largest `signal` data, JSON-encoded.
const MAX_SIGNAL_BYTES: usize = 16 * 1024;

/// `ws` joins voice; it and `others` see it in voice.
async fn in_voice(ws: &mut Ws, others: &mut [&mut Ws]) {
    ws.send(json!({"type": "voice", "action": "join"})).await;
    let sid = ws.sid();
    sees_in_voice(ws, &sid).await;
    for socket in others.iter_mut() {
        sees_in_voice(socket, &sid).await;
    }
}

async fn sees_in_voice(socket: &mut Ws, sid: &str) {
    loop {
        let state = socket.next_of("voice_state").await;
        if state["sid"] == sid && state["in_voice"] == true {
            return;
        }
    }
}

fn offer(sdp: &str) -> serde_json::Value {
    json!({"description": {"type": "offer", "sdp": sdp}})
}

#[tokio::test]
async fn signals_pass_only_between_two_members_in_voice() {
    let server = Server::start().await;
    let mut ann = Ws::connect(&server.user("ann").await).await;
    let mut bob = Ws::connect(&server.user("bob").await).await;
    ann.join("lobby").await;
    bob.join("lobby").await;
    ann.next_of("member_joined").await;
    in_voice(&mut ann, &mut [&mut bob]).await;

    // Bob, not in voice, offers to Ann, who is: refused, and Ann hears nothing.
    bob.send(json!({"type": "signal", "to": ann.sid(), "data": offer("v=0 listen-in")}))
        .await;
    assert_eq!(bob.next_of("error").await["code"], "not_in_voice");
    // And the other way round.
    ann.send(json!({"type": "signal", "to": bob.sid(), "data": offer("v=0 unasked")}))
        .await;
    assert_eq!(ann.next_of("error").await["code"], "not_in_voice");
    assert!(ann.quiet_for(SILENCE).await, "Ann received something");
    assert!(bob.quiet_for(SILENCE).await, "Bob received something");

    // Once both are in voice, signals pass, up to 16 KiB of data.
    in_voice(&mut bob, &mut [&mut ann]).await;
    ann.send(json!({"type": "signal", "to": bob.sid(), "data": offer("v=0 hello")}))
        .await;
    let relayed = bob.next_of("signal").await;
    assert_eq!(relayed["from"], ann.sid().as_str());
    assert_eq!(relayed["data"], offer("v=0 hello"));
    let largest = json!("x".repeat(MAX_SIGNAL_BYTES - 2));
    assert_eq!(largest.to_string().len(), MAX_SIGNAL_BYTES);
    ann.send(json!({"type": "signal", "to": bob.sid(), "data": largest}))
        .await;
    assert_eq!(bob.next_of("signal").await["data"], largest);

    // One byte more is refused, and not relayed.
    let oversize = json!("x".repeat(MAX_SIGNAL_BYTES - 1));
    ann.send(json!({"type": "signal", "to": bob.sid(), "data": oversize}))
        .await;
    assert_eq!(ann.next_of("error").await["code"], "too_large");
    let seventeen_kib = offer(&"a".repeat(17 * 1024));
    ann.send(json!({"type": "signal", "to": bob.sid(), "data": seventeen_kib}))
        .await;
    assert_eq!(ann.next_of("error").await["code"], "too_large");
    assert!(bob.quiet_for(SILENCE).await, "an oversize signal was relayed");

    // Someone in another room is not in Ann's room, voice or not.
    let mut carol = Ws::connect(&server.user("carol").await).await;
    let mut admin = server.admin().await;
    let (_, room) = admin.post("/api/rooms", json!({"name": "Elsewhere"})).await;
    carol.join(room["code"].as_str().unwrap()).await;
    in_voice(&mut carol, &mut []).await;
    carol
        .send(json!({"type": "signal", "to": ann.sid(), "data": offer("v=0")}))
        .await;
    assert_eq!(carol.next_of("error").await["code"], "not_in_room");
}
