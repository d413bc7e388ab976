//! File uploads: stored, recognised by content, posted to the room as a
//! message with an attachment, served only to those who name the file's
//! room and token; refused when too large, of an unaccepted type, sent
//! without a session or CSRF token, by someone not in the room now or
//! without `files.upload`, too often, past a quota or a disk's reserve; and
//! a failed or abandoned upload leaves no bytes behind.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a failed step should fail the test"
)]
mod common;

use common::{assert_error, Api, Server, Ws, FRAME_WAIT};
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

/// A socket of `api` in `room`: uploading to a room needs one.
async fn in_room(api: &Api, room: &str) -> Ws {
    let mut ws = Ws::connect(api).await;
    ws.join(room).await;
    ws
}

#[tokio::test]
async fn an_image_is_stored_broadcast_and_served_inline() {
    let server = Server::start().await;
    let mut ann = server.user("ann").await;
    let _present = in_room(&ann, "lobby").await;
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
    let _present = in_room(&ann, "lobby").await;
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
    let _present = in_room(&ann, "lobby").await;
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
    let _present = in_room(&ann, "lobby").await;
    let (status, body) = upload(&mut ann, "lobby", "big.txt", "text/plain", vec![b'a'; 1024 * 1024 + 1]).await;
    assert_error(status, &body, 413, "too_large");
    let (status, body) = upload(&mut ann, "lobby", "fits.txt", "text/plain", vec![b'a'; 1024 * 1024]).await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn uploads_need_a_session_csrf_a_room_and_a_form() {
    let server = Server::start().await;
    let mut ann = server.user("ann").await;
    let _present = in_room(&ann, "lobby").await;
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

/// The files in DATA_DIR/uploads, complete or partial.
fn stored_files(server: &Server) -> Vec<String> {
    match std::fs::read_dir(server.dir.path().join("uploads")) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Polls until `done` holds, for at most FRAME_WAIT.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + FRAME_WAIT;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {FRAME_WAIT:?}: {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_file_is_served_only_to_those_who_name_its_room() {
    let server = Server::start().await;
    let mut admin = server.admin().await;
    let mut ann = server.user("ann").await;
    let (_, room) = ann.post("/api/rooms", serde_json::json!({"name": "Team"})).await;
    let code = room["code"].as_str().unwrap().to_owned();
    let _present = in_room(&ann, &code).await;
    let (status, body) = upload(&mut ann, &code, "plan.txt", "text/plain", b"the plan".to_vec()).await;
    assert_eq!(status, 201, "{body}");
    let url = body["url"].as_str().unwrap().to_owned();
    let token = url
        .strip_prefix(&format!("/files/{code}/"))
        .unwrap_or_else(|| panic!("{url} names its room"));
    assert!(token.len() >= 22, "at least 128 random bits: {token}");

    let fetch = |api: &Api, path: String| {
        let req = api.request(Method::GET, &path);
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(fetch(&ann, url.clone()).await, 200);
    // Whoever knows the room's code may read the room, so its files too.
    let bob = server.user("bob").await;
    assert_eq!(fetch(&bob, url.clone()).await, 200);
    // A guest who never saw the code gets nothing, however it asks.
    let guest = server.guest("Nosy").await;
    let id = body["id"].as_i64().unwrap();
    for path in [
        format!("/files/lobby/{token}"),
        format!("/files/{id}"),
        format!("/files/{code}"),
        format!("/files/{code}/{}", "A".repeat(token.len())),
        format!("/files/{}/{token}", code.to_uppercase()),
    ] {
        assert_eq!(fetch(&guest, path.clone()).await, 404, "{path}");
        assert_eq!(fetch(&ann, path.clone()).await, 404, "even the uploader: {path}");
    }
    // Admins who may read every room's messages may read every file.
    assert_eq!(fetch(&admin, format!("/files/lobby/{token}")).await, 200);
    let (status, body) = server.client().get(&url).await;
    assert_error(status, &body, 401, "unauthenticated");
    let (_, log) = admin.get_query("/api/admin/messages", &[("room", &code)]).await;
    assert_eq!(log["messages"][0]["attachment"]["url"], url.as_str());
}

#[tokio::test]
async fn only_someone_in_the_room_now_uploads() {
    let server = Server::start().await;
    let mut admin = server.admin().await;
    let mut ann = server.user("ann").await;
    let (status, body) = upload(&mut ann, "lobby", "a.txt", "text/plain", b"hi".to_vec()).await;
    assert_error(status, &body, 403, "forbidden");
    let (_, room) = admin.post("/api/rooms", serde_json::json!({"name": "Elsewhere"})).await;
    let mut socket = in_room(&ann, room["code"].as_str().unwrap()).await;
    let (status, body) = upload(&mut ann, "lobby", "a.txt", "text/plain", b"hi".to_vec()).await;
    assert_error(status, &body, 403, "forbidden");
    socket.join("lobby").await;
    let (status, body) = upload(&mut ann, "lobby", "a.txt", "text/plain", b"hi".to_vec()).await;
    assert_eq!(status, 201, "{body}");

    // Kicked, Ann keeps her login session but not her place in the room.
    let id = ann.me().await["id"].as_i64().unwrap();
    let (status, body) = admin
        .post(
            &format!("/api/admin/users/{id}/kick"),
            serde_json::json!({"reason": "spam"}),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(socket.closed().await, Some(4001));
    let (status, body) = upload(&mut ann, "lobby", "more.txt", "text/plain", b"more".to_vec()).await;
    assert_error(status, &body, 403, "forbidden");
    assert_eq!(stored_files(&server).len(), 1, "only the first file was kept");
}

#[tokio::test]
async fn guests_do_not_upload_unless_their_role_is_given_the_right() {
    let server = Server::start().await;
    let mut admin = server.admin().await;
    let mut guest = server.guest("Visitor").await;
    let _present = in_room(&guest, "lobby").await;
    assert!(!guest.me().await["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p == "files.upload"));
    let (status, body) = upload(&mut guest, "lobby", "a.txt", "text/plain", b"hi".to_vec()).await;
    assert_error(status, &body, 403, "forbidden");

    let (_, roles) = admin.get("/api/admin/roles").await;
    let guest_role = roles["roles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "guest")
        .unwrap()["id"]
        .clone();
    let (status, body) = admin
        .post(
            &format!("/api/admin/roles/{guest_role}/permissions"),
            serde_json::json!({"permission": "files.upload"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = upload(&mut guest, "lobby", "a.txt", "text/plain", b"hi".to_vec()).await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn uploads_are_limited_per_user_per_minute() {
    let server = Server::start_with(&[("UPLOAD_RATE_PER_MIN", "2")]).await;
    let mut ann = server.user("ann").await;
    let _ann_present = in_room(&ann, "lobby").await;
    for n in 0..2 {
        let (status, body) = upload(&mut ann, "lobby", &format!("{n}.txt"), "text/plain", b"hi".to_vec()).await;
        assert_eq!(status, 201, "{body}");
    }
    let req = ann
        .request(Method::POST, "/api/rooms/lobby/files")
        .multipart(Form::new().part("file", Part::bytes(b"hi".to_vec()).file_name("x.txt")));
    let response = req.send().await.unwrap();
    assert_eq!(response.status(), 429);
    let retry_after: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");

    let mut bob = server.user("bob").await;
    let _bob_present = in_room(&bob, "lobby").await;
    let (status, body) = upload(&mut bob, "lobby", "b.txt", "text/plain", b"hi".to_vec()).await;
    assert_eq!(status, 201, "the limit is per user: {body}");
}

#[tokio::test]
async fn quotas_hold_per_user_and_for_the_whole_server() {
    let server = Server::start_with(&[
        ("MAX_UPLOAD_MB", "1"),
        ("UPLOAD_QUOTA_MB", "1"),
        ("UPLOAD_TOTAL_MB", "2"),
    ])
    .await;
    let seven_hundred_kib = || vec![b'a'; 700 * 1024];
    let mut ann = server.user("ann").await;
    let _ann_present = in_room(&ann, "lobby").await;
    let (status, body) = upload(&mut ann, "lobby", "1.txt", "text/plain", seven_hundred_kib()).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = upload(&mut ann, "lobby", "2.txt", "text/plain", seven_hundred_kib()).await;
    assert_error(status, &body, 413, "quota_exceeded");
    assert!(body["error"]["message"].as_str().unwrap().contains("1 MB"), "{body}");

    let mut bob = server.user("bob").await;
    let _bob_present = in_room(&bob, "lobby").await;
    let (status, body) = upload(&mut bob, "lobby", "3.txt", "text/plain", seven_hundred_kib()).await;
    assert_eq!(status, 201, "{body}");
    let mut cat = server.user("cat").await;
    let _cat_present = in_room(&cat, "lobby").await;
    let (status, body) = upload(&mut cat, "lobby", "4.txt", "text/plain", seven_hundred_kib()).await;
    assert_error(status, &body, 413, "quota_exceeded");
    assert!(body["error"]["message"].as_str().unwrap().contains("2 MB"), "{body}");
    // Refused parts are deleted off the request path, maybe after the answer.
    eventually("refused files leave nothing but the two accepted", || {
        stored_files(&server).len() == 2
    })
    .await;
}

#[tokio::test]
async fn a_disk_short_of_space_refuses_uploads_with_507() {
    // A reserve larger than any disk: whatever is free is not enough.
    let server = Server::start_with(&[("UPLOAD_DISK_RESERVE_MB", "1000000000000")]).await;
    let mut ann = server.user("ann").await;
    let _present = in_room(&ann, "lobby").await;
    let (status, body) = upload(&mut ann, "lobby", "a.txt", "text/plain", b"hi".to_vec()).await;
    assert_error(status, &body, 507, "insufficient_storage");
    // The refused part is deleted off the request path, maybe after the answer.
    eventually("the refused file is removed", || stored_files(&server).is_empty()).await;
}

/// Starts an upload of 8 MiB on a raw connection, sends 256 KiB of it, and
/// waits until the server is writing it: the connection, still open.
async fn upload_under_way(server: &Server, ann: &Api) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let host = server.base.trim_start_matches("http://").to_owned();
    let boundary = "AbandonedUploadBoundary";
    let head = format!(
        "POST /api/rooms/lobby/files HTTP/1.1\r\nHost: {host}\r\nOrigin: {base}\r\n\
         Cookie: sb_session={cookie}\r\nX-CSRF-Token: {csrf}\r\n\
         Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {length}\r\n\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.txt\"\r\n\
         Content-Type: text/plain\r\n\r\n",
        base = server.base,
        cookie = ann.session_cookie().unwrap(),
        csrf = ann.csrf.clone().unwrap(),
        length = 8 * 1024 * 1024,
    );
    let mut stream = tokio::net::TcpStream::connect(&host).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&vec![b'a'; 256 * 1024]).await.unwrap();
    eventually("the upload is being written", || {
        stored_files(server).iter().any(|f| f.ends_with(".part"))
    })
    .await;
    stream
}

#[tokio::test]
async fn an_upload_abandoned_midway_leaves_no_file() {
    let server = Server::start().await;
    let ann = server.user("ann").await;
    let _present = in_room(&ann, "lobby").await;
    drop(upload_under_way(&server, &ann).await);
    eventually("the partial file is removed", || stored_files(&server).is_empty()).await;
}

#[tokio::test]
async fn an_upload_cut_off_by_a_crash_leaves_no_file_after_restart() {
    let mut server = Server::start().await;
    let ann = server.user("ann").await;
    let present = in_room(&ann, "lobby").await;
    let stream = upload_under_way(&server, &ann).await;
    server.kill9_and_restart().await;
    drop((stream, present));
    assert!(stored_files(&server).is_empty(), "{:?}", stored_files(&server));
}
