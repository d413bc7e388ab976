//! The profile a person runs themselves: the display name (validated like
//! every name, audited) and the picture (PNG, JPEG, GIF or WebP recognised by
//! content, at most 1 MB and 2048 pixels a side, served at a URL that changes
//! with the picture, cacheable, sandboxed).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a failed step should fail the test"
)]
mod common;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use common::{assert_error, Api, Server, Ws};
use reqwest::multipart::{Form, Part};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// A real 1x1 PNG.
const PNG_1X1: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";
/// A real 1x1 GIF.
const GIF_1X1: &str = "R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7";

fn png() -> Vec<u8> {
    STANDARD.decode(PNG_1X1).unwrap()
}

fn gif() -> Vec<u8> {
    STANDARD.decode(GIF_1X1).unwrap()
}

/// A PNG whose header claims `width` x `height`.
fn png_claiming(width: u32, height: u32) -> Vec<u8> {
    let mut bytes = png();
    bytes[16..20].copy_from_slice(&width.to_be_bytes());
    bytes[20..24].copy_from_slice(&height.to_be_bytes());
    bytes
}

async fn upload_avatar(api: &mut Api, declared: &str, bytes: Vec<u8>) -> (StatusCode, Value) {
    let part = Part::bytes(bytes).file_name("me.png").mime_str(declared).unwrap();
    let req = api
        .request(Method::POST, "/api/me/avatar")
        .multipart(Form::new().part("file", part));
    api.send(req).await
}

#[tokio::test]
async fn the_display_name_changes_validated_and_audited() {
    let server = Server::start().await;
    let mut ann = server.user("ann").await;
    let (status, body) = ann.patch("/api/me", json!({"display_name": "  Ann Lee  "})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["display_name"], "Ann Lee");
    assert_eq!(body["user"]["username"], "ann", "the username stays");
    assert_eq!(ann.me().await["display_name"], "Ann Lee");

    let long = "x".repeat(65);
    for bad in [
        json!({"display_name": ""}),
        json!({"display_name": "   "}),
        json!({"display_name": "\u{202E}nimda"}),
        json!({"display_name": "ad\u{200B}min"}),
        json!({"display_name": "line\nbreak"}),
        json!({"display_name": long}),
        json!({"display_name": 5}),
        json!({"display_name": null}),
        json!({}),
        json!({"username": "other"}),
        json!({"display_name": "Ann", "is_admin": true}),
    ] {
        let (status, body) = ann.patch("/api/me", bad.clone()).await;
        assert_error(status, &body, 400, "bad_request");
    }
    // Markup and quotes are text, kept as typed.
    let (status, body) = ann
        .patch("/api/me", json!({"display_name": "<b>Ann</b> ' OR 1=1 --"}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(ann.me().await["display_name"], "<b>Ann</b> ' OR 1=1 --");

    let mut guest = server.guest("Gus").await;
    let (status, body) = guest.patch("/api/me", json!({"display_name": "Admin"})).await;
    assert_error(status, &body, 403, "forbidden");
    let (status, body) = server.client().patch("/api/me", json!({"display_name": "X"})).await;
    assert_error(status, &body, 401, "unauthenticated");

    let mut admin = server.admin().await;
    let logs = admin.logs(&[("action", "user_update"), ("user", "ann")]).await;
    let renamed = logs["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["details"]["display_name"]["to"] == "Ann Lee")
        .cloned()
        .unwrap_or_else(|| panic!("{logs}"));
    assert_eq!(renamed["details"]["display_name"]["from"], "ann");
    assert_eq!(admin.find_user("ann").await["display_name"], "<b>Ann</b> ' OR 1=1 --");
}

#[tokio::test]
async fn a_picture_is_served_at_a_url_that_changes_with_it() {
    let server = Server::start().await;
    let mut ann = server.user("ann").await;
    assert_eq!(ann.me().await["avatar_url"], Value::Null);
    let (status, body) = upload_avatar(&mut ann, "image/png", png()).await;
    assert_eq!(status, 200, "{body}");
    let first = body["user"]["avatar_url"].as_str().unwrap().to_owned();
    assert!(first.starts_with("/avatars/") && first.len() > 30, "{first}");

    // Another signed-in person sees it, with headers that cache it and keep it inert.
    let mut bob = server.user("bob").await;
    let response = bob.request(Method::GET, &first).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let header = |name: &str| response.headers().get(name).unwrap().to_str().unwrap().to_owned();
    assert_eq!(header("content-type"), "image/png");
    assert_eq!(header("cache-control"), "private, max-age=31536000, immutable");
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert!(header("content-security-policy").starts_with("sandbox"));
    assert_eq!(response.bytes().await.unwrap().to_vec(), png());
    let (status, body) = server.client().get(&first).await;
    assert_error(status, &body, 401, "unauthenticated");

    // A new picture, a new URL; the old one is gone.
    let (status, body) = upload_avatar(&mut ann, "image/png", gif()).await;
    assert_eq!(status, 200, "{body}");
    let second = body["user"]["avatar_url"].as_str().unwrap().to_owned();
    assert_ne!(second, first);
    let response = bob.request(Method::GET, &second).send().await.unwrap();
    assert_eq!(
        response.headers()["content-type"],
        "image/gif",
        "the type is the content's"
    );
    let (status, body) = bob.get(&first).await;
    assert_error(status, &body, 404, "not_found");
    assert_eq!(
        server.admin().await.find_user("ann").await["avatar_url"],
        second.as_str(),
        "the admin console sees it"
    );

    let (status, body) = ann.delete("/api/me/avatar").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["avatar_url"], Value::Null);
    let (status, body) = bob.get(&second).await;
    assert_error(status, &body, 404, "not_found");
    let (status, _) = ann.delete("/api/me/avatar").await;
    assert_eq!(status, 200, "removing nothing is fine");
}

#[tokio::test]
async fn only_small_real_images_become_pictures() {
    let server = Server::start().await;
    let mut ann = server.user("ann").await;
    let svg = b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>".to_vec();
    let (status, body) = upload_avatar(&mut ann, "image/svg+xml", svg).await;
    assert_error(status, &body, 415, "unsupported_type");
    let html = b"<html><script>alert(1)</script></html>".to_vec();
    let (status, body) = upload_avatar(&mut ann, "image/png", html).await;
    assert_error(status, &body, 415, "unsupported_type");
    let (status, body) = upload_avatar(&mut ann, "image/png", b"%PDF-1.7\n".to_vec()).await;
    assert_error(status, &body, 415, "unsupported_type");
    let (status, body) = upload_avatar(&mut ann, "image/png", png_claiming(10_000, 10_000)).await;
    assert_error(status, &body, 400, "bad_request");
    let (status, body) = upload_avatar(&mut ann, "image/png", Vec::new()).await;
    assert_error(status, &body, 400, "bad_request");
    let mut big = png();
    big.resize(1024 * 1024 + 1, 0);
    let (status, body) = upload_avatar(&mut ann, "image/png", big).await;
    assert_error(status, &body, 413, "too_large");
    let wrong_field = Form::new().part("other", Part::bytes(png()).file_name("a.png"));
    let req = ann.request(Method::POST, "/api/me/avatar").multipart(wrong_field);
    let (status, body) = ann.send(req).await;
    assert_error(status, &body, 400, "bad_request");
    let (status, body) = ann.post_raw("/api/me/avatar", Some("application/json"), "{}").await;
    assert_error(status, &body, 415, "unsupported_type");
    assert_eq!(ann.me().await["avatar_url"], Value::Null, "nothing was kept");

    let mut guest = server.guest("Gus").await;
    let (status, body) = upload_avatar(&mut guest, "image/png", png()).await;
    assert_error(status, &body, 403, "forbidden");
}

#[tokio::test]
async fn messages_keep_the_display_name_they_were_sent_with() {
    let server = Server::start().await;
    let mut ann = server.user("ann").await;
    let mut ws = Ws::connect(&ann).await;
    ws.join("lobby").await;
    ws.send(json!({"type": "chat", "text": "before"})).await;
    let before = ws.next_of("message").await;
    assert_eq!(before["display_name"], "ann");
    assert_eq!(before["username"], "ann");

    let (status, body) = ann.patch("/api/me", json!({"display_name": "Ann Lee"})).await;
    assert_eq!(status, 200, "{body}");
    let mut fresh = Ws::connect(&ann).await;
    fresh.join("lobby").await;
    fresh.send(json!({"type": "chat", "text": "after"})).await;
    let after = fresh.next_of("message").await;
    assert_eq!(after["display_name"], "Ann Lee");
    assert_eq!(after["username"], "ann");

    let (status, body) = ann.get("/api/rooms/lobby/messages").await;
    assert_eq!(status, 200, "{body}");
    let names: Vec<(&str, &str)> = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["text"].as_str().unwrap(), m["display_name"].as_str().unwrap()))
        .collect();
    assert_eq!(
        names,
        [("before", "ann"), ("after", "Ann Lee")],
        "history keeps each name"
    );
}

#[tokio::test]
async fn a_new_name_or_picture_reaches_live_sockets_and_their_rooms() {
    let server = Server::start().await;
    let mut admin = server.admin().await;
    let mut watcher = Ws::connect(&admin).await;
    watcher.send(json!({"type": "admin_watch"})).await;
    watcher.next_of("sessions").await;
    let mut ann = server.user("ann").await;
    let bob = server.user("bob").await;
    let mut ann_ws = Ws::connect(&ann).await;
    ann_ws.join("lobby").await;
    let mut bob_ws = Ws::connect(&bob).await;
    bob_ws.join("lobby").await;
    ann_ws.next_of("member_joined").await;

    let (status, body) = ann.patch("/api/me", json!({"display_name": "Ann Lee"})).await;
    assert_eq!(status, 200, "{body}");
    let own = ann_ws.next_of("user").await;
    assert_eq!(own["user"]["display_name"], "Ann Lee");
    let seen = bob_ws.next_of("member_updated").await;
    assert_eq!(seen["member"]["sid"], ann_ws.sid().as_str());
    assert_eq!(seen["member"]["display_name"], "Ann Lee");
    assert_eq!(seen["member"]["username"], "ann");
    assert_eq!(seen["member"]["in_voice"], false);
    assert_eq!(
        ann_ws.next_of("member_updated").await["member"]["display_name"],
        "Ann Lee"
    );
    // The socket itself now speaks under the new name.
    ann_ws.send(json!({"type": "chat", "text": "renamed"})).await;
    assert_eq!(bob_ws.next_of("message").await["display_name"], "Ann Lee");

    let (status, body) = upload_avatar(&mut ann, "image/png", png()).await;
    assert_eq!(status, 200, "{body}");
    let url = body["user"]["avatar_url"].as_str().unwrap().to_owned();
    let seen = bob_ws.next_of("member_updated").await;
    assert_eq!(seen["member"]["avatar_url"], url.as_str());
    // The admin console's live sessions show it too.
    loop {
        let update = watcher.next_of("session_update").await;
        if update["session"]["sid"] == ann_ws.sid().as_str() && update["session"]["avatar_url"] == url.as_str() {
            break;
        }
    }
    let (_, live) = admin.get("/api/admin/sessions").await;
    let listed = live["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["sid"] == ann_ws.sid().as_str())
        .cloned()
        .unwrap();
    assert_eq!(listed["avatar_url"], url.as_str());

    // Someone joining later sees the member as they are now.
    let carl = server.user("carl").await;
    let mut carl_ws = Ws::connect(&carl).await;
    let joined = carl_ws.join("lobby").await;
    let member = joined["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["username"] == "ann")
        .cloned()
        .unwrap();
    assert_eq!(member["display_name"], "Ann Lee");
    assert_eq!(member["avatar_url"], url.as_str());

    let (status, _) = ann.delete("/api/me/avatar").await;
    assert_eq!(status, 200);
    assert_eq!(
        carl_ws.next_of("member_updated").await["member"]["avatar_url"],
        Value::Null
    );
}
