//! File uploads: stored, recognised by content, posted to the room as a
//! message with an attachment, served to signed-in users only; refused when
//! too large, of an unaccepted type, or sent without a session or CSRF token.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a failed step should fail the test"
)]
mod common;

use common::{assert_error, Api, Server, Ws};
use reqwest::multipart::{Form, Part};
use reqwest::Method;
use serde_json::Value;

/// A 1x1 PNG.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4, 0x89, 0x00, 0x00, 0x00, 0x0d, 0x49,
    0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xff, 0xff, 0x3f, 0x00, 0x05, 0xfe, 0x02, 0xfe, 0xa7, 0x35, 0x81, 0x84,
    0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

async fn upload(api: &mut Api, room: &str, name: &str, declared: &str, bytes: Vec<u8>) -> (reqwest::StatusCode, Value) {
    let part = Part::bytes(bytes)
        .file_name(name.to_owned())
        .mime_str(declared)
        .unwrap();
    let req = api
        .request(Method::POST, &format!("/api/rooms/{room}/files"))
        .multipart(Form::new().part("file", part));
    api.send(req).await
}

#[tokio::test]
async fn an_image_is_stored_broadcast_and_served_inline() {
    let server = Server::start().await;
    let mut ann = server.user("ann").await;
    let mut listener = Ws::connect(&server.user("bob").await).await;
    listener.join("lobby").await;

    let (status, body) = upload(&mut ann, "lobby", "../../holiday <b>.png", "image/png", PNG.to_vec()).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        body["name"], "holiday <b>.png",
        "the path is gone, the text kept as text"
    );
    assert_eq!(body["size"], PNG.len());
    assert_eq!(body["content_type"], "image/png");
    let url = body["url"].as_str().unwrap().to_owned();

    let message = listener.next_of("message").await;
    assert_eq!(message["attachment"]["url"], url.as_str());
    assert_eq!(message["attachment"]["content_type"], "image/png");
    assert_eq!(message["username"], "ann");

    let response = ann.request(Method::GET, &url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "image/png");
    assert!(headers["content-disposition"].to_str().unwrap().starts_with("inline"));
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(headers["content-security-policy"].to_str().unwrap().contains("sandbox"));
    assert_eq!(response.bytes().await.unwrap().as_ref(), PNG);

    let (status, body) = server.client().get(&url).await;
    assert_error(status, &body, 401, "unauthenticated");
    let (_, history) = ann.get("/api/rooms/lobby/messages").await;
    assert_eq!(
        history["messages"][0]["attachment"]["url"],
        url.as_str(),
        "stored with the message"
    );
}

#[tokio::test]
async fn text_is_accepted_and_served_as_a_download() {
    let server = Server::start().await;
    let mut ann = server.user("ann").await;
    let (status, body) = upload(&mut ann, "lobby", "notes.txt", "text/plain", "héllo\nwörld\n".into()).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["content_type"], "text/plain; charset=utf-8");
    let response = ann
        .request(Method::GET, body["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert!(response.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("attachment"));
}

#[tokio::test]
async fn unaccepted_content_is_415_whatever_its_name() {
    let server = Server::start().await;
    let mut ann = server.user("ann").await;
    let elf = b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00binary".to_vec();
    let (status, body) = upload(&mut ann, "lobby", "cute-cat.png", "image/png", elf).await;
    assert_error(status, &body, 415, "unsupported_type");
    let html = b"<html><body><script>alert(1)</script></body></html>".to_vec();
    let (status, body) = upload(&mut ann, "lobby", "page.txt", "text/plain", html).await;
    assert_error(status, &body, 415, "unsupported_type");
    let (status, body) = upload(&mut ann, "lobby", "empty.txt", "text/plain", Vec::new()).await;
    assert_error(status, &body, 400, "bad_request");
}

#[tokio::test]
async fn files_over_the_limit_are_413() {
    let server = Server::start_with(&[("MAX_UPLOAD_MB", "1")]).await;
    let mut ann = server.user("ann").await;
    let (status, body) = upload(&mut ann, "lobby", "big.txt", "text/plain", vec![b'a'; 1024 * 1024 + 1]).await;
    assert_error(status, &body, 413, "too_large");
    let (status, body) = upload(&mut ann, "lobby", "fits.txt", "text/plain", vec![b'a'; 1024 * 1024]).await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn uploads_need_a_session_csrf_a_room_and_a_form() {
    let server = Server::start().await;
    let mut ann = server.user("ann").await;
    let (status, body) = upload(&mut ann, "no-such-room", "a.txt", "text/plain", b"hi".to_vec()).await;
    assert_error(status, &body, 404, "not_found");

    let mut anonymous = server.client();
    let (status, body) = upload(&mut anonymous, "lobby", "a.txt", "text/plain", b"hi".to_vec()).await;
    assert_error(status, &body, 401, "unauthenticated");

    let token = ann.csrf.take();
    let (status, body) = upload(&mut ann, "lobby", "a.txt", "text/plain", b"hi".to_vec()).await;
    assert_error(status, &body, 403, "csrf");
    ann.csrf = token;

    let req = ann.request(Method::POST, "/api/rooms/lobby/files").body("just text");
    let (status, body) = ann.send(req).await;
    assert_error(status, &body, 415, "unsupported_type");
    let wrong_field = Form::new().part("other", Part::bytes(b"hi".to_vec()).file_name("a.txt"));
    let req = ann
        .request(Method::POST, "/api/rooms/lobby/files")
        .multipart(wrong_field);
    let (status, body) = ann.send(req).await;
    assert_error(status, &body, 400, "bad_request");
    let (status, _) = server.client().get("/healthz").await;
    assert_eq!(status, 200);
}
