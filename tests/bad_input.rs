//! Bad input on every write endpoint (register, login, guest, username, admin PATCH, roles and permissions): malformed JSON, wrong content types, missing, mistyped, unknown and over-long fields, unicode, SQL and HTML metacharacters, oversized bodies, bad paths and queries. Each is a clear 4xx in the contract's shape, never a 500, and nothing stored is corrupted.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a failed step should fail the test"
)]
mod common;

use common::{assert_client_error, assert_error, Api, Server, PASSWORD};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const SQL: &str = "x'; DROP TABLE users; --";
const HTML: &str = "<img src=x onerror=alert(1)>";

/// A server with an admin (`admin`), a user (`ann`) and limits off, so that
/// many bad requests do not trip them.
async fn setup() -> (Server, Api, Api) {
    let server = Server::start_with(&[("LOGIN_RATE_PER_MIN", "0"), ("GUEST_RATE_PER_MIN", "0")]).await;
    let admin = server.admin().await;
    let ann = server.user("ann").await;
    (server, admin, ann)
}

/// Every write endpoint, as `(method, path)`, for a user with id `target`
/// and a custom role `role`.
fn endpoints(target: i64, role: i64) -> Vec<(Method, String)> {
    vec![
        (Method::POST, "/api/auth/register".into()),
        (Method::POST, "/api/auth/login".into()),
        (Method::POST, "/api/auth/guest".into()),
        (Method::POST, "/api/me/username".into()),
        (Method::PATCH, "/api/me".into()),
        (Method::POST, "/api/me/totp/recovery-codes".into()),
        (Method::POST, format!("/api/admin/users/{target}/totp/disable")),
        (Method::PATCH, format!("/api/admin/users/{target}")),
        (Method::POST, "/api/admin/roles".into()),
        (Method::POST, "/api/admin/permissions".into()),
        (Method::POST, format!("/api/admin/roles/{role}/permissions")),
    ]
}

/// Sends a raw body and asserts a 4xx in the contract's shape.
async fn send_bad(
    api: &mut Api,
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> (StatusCode, Value) {
    let (status, reply) = api.send_raw(method.clone(), path, content_type, body).await;
    assert_ne!(status, 500, "{method} {path}: {reply}");
    assert_client_error(status, &reply);
    (status, reply)
}

/// Sends JSON and asserts `400 bad_request`.
async fn expect_bad_request(api: &mut Api, method: Method, path: &str, body: Value) {
    let req = api.request(method.clone(), path).json(&body);
    let (status, reply) = api.send(req).await;
    assert_ne!(status, 500, "{method} {path} {body}: {reply}");
    assert_eq!(status, 400, "{method} {path} {body}: {reply}");
    assert_error(status, &reply, 400, "bad_request");
}

/// The checks that nothing was stored or broken.
async fn assert_intact(server: &Server, admin: &mut Api, users: i64) {
    assert_eq!(admin.user_total().await, users, "the number of users changed");
    let mut ann = server.login_ok("ann", PASSWORD).await;
    let me = ann.me().await;
    assert_eq!(me["username"], "ann");
    assert_eq!(me["email"], "ann@example.org");
    assert_eq!(me["roles"], json!(["user"]));
    let mut again = server.login_ok("admin", PASSWORD).await;
    assert_eq!(again.me().await["is_admin"], true);
    let (status, roles) = admin.get("/api/admin/roles").await;
    assert_eq!(status, 200);
    let names: Vec<&str> = roles["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    for builtin in ["admin", "moderator", "user", "guest"] {
        assert!(names.contains(&builtin), "{names:?}");
    }
}

async fn ids(admin: &mut Api, ann: &mut Api) -> (i64, i64) {
    let target = ann.me().await["id"].as_i64().unwrap();
    let (status, role) = admin.post("/api/admin/roles", json!({"name": "custom"})).await;
    assert_eq!(status, 201, "{role}");
    (target, role["id"].as_i64().unwrap())
}

#[tokio::test]
async fn malformed_json_is_bad_request_everywhere() {
    let (server, mut admin, mut ann) = setup().await;
    let (target, role) = ids(&mut admin, &mut ann).await;
    let users = admin.user_total().await;
    let deep = "[".repeat(10_000);
    let bodies: Vec<Vec<u8>> = vec![
        b"{".to_vec(),
        b"{\"username\": ".to_vec(),
        b"not json at all".to_vec(),
        b"{'single': 'quotes'}".to_vec(),
        b"{\"name\": \"x\",}".to_vec(),
        b"{\"name\": \"x\"} trailing".to_vec(),
        b"[]".to_vec(),
        b"null".to_vec(),
        b"\"just a string\"".to_vec(),
        b"42".to_vec(),
        b"".to_vec(),
        b"{\"name\": \"\xff\xfe\"}".to_vec(),
        b"\xef\xbb\xbf{\"name\": \"bom\"}".to_vec(),
        deep.into_bytes(),
    ];
    for (method, path) in endpoints(target, role) {
        for body in &bodies {
            // The admin holds a session valid for every endpoint.
            let (status, reply) = send_bad(
                &mut admin,
                method.clone(),
                &path,
                Some("application/json"),
                body.clone(),
            )
            .await;
            assert_error(status, &reply, 400, "bad_request");
        }
    }
    assert_intact(&server, &mut admin, users).await;
}

#[tokio::test]
async fn other_content_types_are_refused() {
    let (server, mut admin, mut ann) = setup().await;
    let (target, role) = ids(&mut admin, &mut ann).await;
    let users = admin.user_total().await;
    let valid = json!({"name": "valid-name"}).to_string();
    for (method, path) in endpoints(target, role) {
        for content_type in [
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            Some("multipart/form-data; boundary=x"),
            Some("text/html"),
            Some("application/xml"),
            None,
        ] {
            let (status, reply) = send_bad(&mut admin, method.clone(), &path, content_type, valid.clone()).await;
            let expected = if status == 415 {
                "unsupported_type"
            } else {
                "bad_request"
            };
            assert_error(status, &reply, status.as_u16(), expected);
            assert!(
                status == 415 || status == 400,
                "{method} {path} as {content_type:?}: {status}"
            );
        }
    }
    // The JSON type with a charset is still JSON.
    let mut guest = server.client();
    let (status, body) = guest
        .post_raw(
            "/api/auth/guest",
            Some("application/json; charset=utf-8"),
            json!({"name": "Charset"}).to_string(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_intact(&server, &mut admin, users + 1).await;
}

#[tokio::test]
async fn missing_fields_are_bad_request() {
    let (server, mut admin, mut ann) = setup().await;
    let (target, role) = ids(&mut admin, &mut ann).await;
    let users = admin.user_total().await;
    let cases: Vec<(Method, String, Value)> = vec![
        (Method::POST, "/api/auth/register".into(), json!({})),
        (
            Method::POST,
            "/api/auth/register".into(),
            json!({"username": "newbie", "email": "n@example.org"}),
        ),
        (
            Method::POST,
            "/api/auth/register".into(),
            json!({"username": "newbie", "password": PASSWORD}),
        ),
        (
            Method::POST,
            "/api/auth/register".into(),
            json!({"email": "n@example.org", "password": PASSWORD}),
        ),
        (Method::POST, "/api/auth/login".into(), json!({})),
        (Method::POST, "/api/auth/login".into(), json!({"login": "ann"})),
        (Method::POST, "/api/auth/login".into(), json!({"password": PASSWORD})),
        (Method::POST, "/api/auth/guest".into(), json!({})),
        (Method::POST, "/api/me/username".into(), json!({})),
        (Method::POST, "/api/admin/roles".into(), json!({})),
        (Method::POST, "/api/admin/permissions".into(), json!({})),
        (Method::POST, format!("/api/admin/roles/{role}/permissions"), json!({})),
    ];
    for (method, path, body) in cases {
        expect_bad_request(&mut admin, method, &path, body).await;
    }
    // Empty values are missing values too.
    let empties: Vec<(Method, String, Value)> = vec![
        (
            Method::POST,
            "/api/auth/register".into(),
            json!({"username": "", "email": "", "password": ""}),
        ),
        (
            Method::POST,
            "/api/auth/login".into(),
            json!({"login": "", "password": PASSWORD}),
        ),
        (
            Method::POST,
            "/api/auth/login".into(),
            json!({"login": "   ", "password": PASSWORD}),
        ),
        (Method::POST, "/api/auth/guest".into(), json!({"name": ""})),
        (Method::POST, "/api/auth/guest".into(), json!({"name": "   "})),
        (Method::POST, "/api/me/username".into(), json!({"username": ""})),
        (Method::POST, "/api/admin/roles".into(), json!({"name": ""})),
        (Method::POST, "/api/admin/permissions".into(), json!({"name": " "})),
        (
            Method::POST,
            format!("/api/admin/roles/{role}/permissions"),
            json!({"permission": ""}),
        ),
    ];
    for (method, path, body) in empties {
        expect_bad_request(&mut admin, method, &path, body).await;
    }
    let _ = target;
    assert_intact(&server, &mut admin, users).await;
}

#[tokio::test]
async fn wrong_types_are_bad_request() {
    let (server, mut admin, mut ann) = setup().await;
    let (target, role) = ids(&mut admin, &mut ann).await;
    let users = admin.user_total().await;
    let user = format!("/api/admin/users/{target}");
    let grant = format!("/api/admin/roles/{role}/permissions");
    let cases: Vec<(&str, Value)> = vec![
        (
            "/api/auth/register",
            json!({"username": 12345, "email": "n@example.org", "password": PASSWORD}),
        ),
        (
            "/api/auth/register",
            json!({"username": "newbie", "email": true, "password": PASSWORD}),
        ),
        (
            "/api/auth/register",
            json!({"username": "newbie", "email": "n@example.org", "password": ["x"]}),
        ),
        (
            "/api/auth/register",
            json!({"username": null, "email": "n@example.org", "password": PASSWORD}),
        ),
        (
            "/api/auth/register",
            json!({"username": "newbie", "email": "n@example.org", "password": 12345678}),
        ),
        (
            "/api/auth/register",
            json!({"username": "newbie", "email": "n@example.org", "password": PASSWORD, "captcha_answer": 7}),
        ),
        ("/api/auth/login", json!({"login": 42, "password": PASSWORD})),
        ("/api/auth/login", json!({"login": "ann", "password": {"$ne": null}})),
        ("/api/auth/login", json!({"login": ["ann"], "password": PASSWORD})),
        ("/api/auth/guest", json!({"name": 7})),
        ("/api/auth/guest", json!({"name": null})),
        ("/api/auth/guest", json!({"name": {"first": "Zoë"}})),
        ("/api/me/username", json!({"username": false})),
        ("/api/admin/roles", json!({"name": 5})),
        ("/api/admin/roles", json!({"name": ["mods"]})),
        ("/api/admin/permissions", json!({"name": 1.5})),
        (&grant, json!({"permission": ["sessions.kick"]})),
        (&grant, json!({"permission": 3})),
    ];
    for (path, body) in cases {
        expect_bad_request(&mut admin, Method::POST, path, body).await;
    }
    for body in [
        json!({"is_admin": "yes"}),
        json!({"is_admin": 1}),
        json!({"roles": "admin"}),
        json!({"roles": [1, 2]}),
        json!({"roles": [["admin"]]}),
        json!({"roles": {"admin": true}}),
        json!([{"is_admin": true}]),
    ] {
        expect_bad_request(&mut admin, Method::PATCH, &user, body).await;
    }
    assert_intact(&server, &mut admin, users).await;
}

#[tokio::test]
async fn unknown_fields_are_bad_request() {
    let (server, mut admin, mut ann) = setup().await;
    let (target, role) = ids(&mut admin, &mut ann).await;
    let users = admin.user_total().await;
    // Mass assignment would make these admins: they must be refused whole.
    let cases: Vec<(Method, String, Value)> = vec![
        (
            Method::POST,
            "/api/auth/register".into(),
            json!({"username": "sneak", "email": "sneak@example.org", "password": PASSWORD, "is_admin": true}),
        ),
        (
            Method::POST,
            "/api/auth/register".into(),
            json!({"username": "sneak", "email": "sneak@example.org", "password": PASSWORD, "roles": ["admin"]}),
        ),
        (
            Method::POST,
            "/api/auth/login".into(),
            json!({"login": "ann", "password": PASSWORD, "remember": true}),
        ),
        (
            Method::POST,
            "/api/auth/guest".into(),
            json!({"name": "Sneak", "is_admin": true}),
        ),
        (
            Method::POST,
            "/api/me/username".into(),
            json!({"username": "admin2", "is_admin": true}),
        ),
        (
            Method::PATCH,
            format!("/api/admin/users/{target}"),
            json!({"is_admin": true, "email": "x@example.org"}),
        ),
        (
            Method::PATCH,
            format!("/api/admin/users/{target}"),
            json!({"superuser": true}),
        ),
        (
            Method::POST,
            "/api/admin/roles".into(),
            json!({"name": "extra", "builtin": true}),
        ),
        (
            Method::POST,
            "/api/admin/permissions".into(),
            json!({"name": "extra.perm", "builtin": true}),
        ),
        (
            Method::POST,
            format!("/api/admin/roles/{role}/permissions"),
            json!({"permission": "sessions.kick", "role": 1}),
        ),
    ];
    for (method, path, body) in cases {
        expect_bad_request(&mut admin, method, &path, body).await;
    }
    let (_, status, _) = server.login("sneak", PASSWORD).await;
    assert_eq!(status, 401, "the refused registration must not exist");
    let me = ann.me().await;
    assert_eq!(me["is_admin"], false);
    assert_eq!(me["email"], "ann@example.org");
    assert_eq!(admin.me().await["username"], "admin");
    let (_, roles) = admin.get("/api/admin/roles").await;
    let custom = roles["roles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == role)
        .cloned()
        .unwrap();
    assert_eq!(custom["permissions"], json!([]), "{custom}");
    assert!(!roles["roles"].as_array().unwrap().iter().any(|r| r["name"] == "extra"));
    assert_intact(&server, &mut admin, users).await;
}

#[tokio::test]
async fn over_long_fields_are_bad_request() {
    let (server, mut admin, mut ann) = setup().await;
    let (target, role) = ids(&mut admin, &mut ann).await;
    let users = admin.user_total().await;
    let long = |n: usize| "a".repeat(n);
    let long_email = format!("{}@example.org", "a".repeat(250));
    let cases: Vec<(Method, String, Value)> = vec![
        (
            Method::POST,
            "/api/auth/register".into(),
            json!({"username": long(33), "email": "n1@example.org", "password": PASSWORD}),
        ),
        (
            Method::POST,
            "/api/auth/register".into(),
            json!({"username": long(10_000), "email": "n2@example.org", "password": PASSWORD}),
        ),
        (
            Method::POST,
            "/api/auth/register".into(),
            json!({"username": "newbie", "email": long_email, "password": PASSWORD}),
        ),
        (
            Method::POST,
            "/api/auth/register".into(),
            json!({"username": "newbie", "email": "n3@example.org", "password": long(129)}),
        ),
        (
            Method::POST,
            "/api/auth/register".into(),
            json!({"username": "newbie", "email": "n4@example.org", "password": long(50_000)}),
        ),
        (
            Method::POST,
            "/api/auth/login".into(),
            json!({"login": long(300), "password": PASSWORD}),
        ),
        (
            Method::POST,
            "/api/auth/login".into(),
            json!({"login": "ann", "password": long(129)}),
        ),
        (
            Method::POST,
            "/api/auth/login".into(),
            json!({"login": "ann", "password": long(50_000)}),
        ),
        (Method::POST, "/api/auth/guest".into(), json!({"name": long(65)})),
        (Method::POST, "/api/auth/guest".into(), json!({"name": "🎉".repeat(65)})),
        (Method::POST, "/api/auth/guest".into(), json!({"name": long(50_000)})),
        (Method::POST, "/api/me/username".into(), json!({"username": long(33)})),
        (Method::POST, "/api/admin/roles".into(), json!({"name": long(65)})),
        (Method::POST, "/api/admin/permissions".into(), json!({"name": long(65)})),
        (
            Method::POST,
            format!("/api/admin/roles/{role}/permissions"),
            json!({"permission": long(65)}),
        ),
        (
            Method::PATCH,
            format!("/api/admin/users/{target}"),
            json!({"roles": [long(10_000)]}),
        ),
    ];
    for (method, path, body) in cases {
        expect_bad_request(&mut admin, method, &path, body).await;
    }
    // The limits themselves are fine.
    let mut guest = server.client();
    let (status, body) = guest.post("/api/auth/guest", json!({"name": "🎉".repeat(64)})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["display_name"], "🎉".repeat(64));
    let (status, body) = admin.post("/api/admin/roles", json!({"name": long(64)})).await;
    assert_eq!(status, 201, "{body}");
    assert_intact(&server, &mut admin, users + 1).await;
}

#[tokio::test]
async fn unicode_in_names_is_refused_or_kept_exactly() {
    let (server, mut admin, _ann) = setup().await;
    let users = admin.user_total().await;
    // Usernames are ASCII: lookalikes, emoji, direction marks, NUL and
    // other control characters are refused.
    for (i, username) in [
        "😀😀😀",
        "\u{202E}nimda",
        "ad\u{200B}min",
        "аdmin", // Cyrillic а
        "ａｄｍｉｎ",
        "ann\u{0000}",
        "\u{0000}\u{0000}\u{0000}",
        "ann\u{0007}x",
        "ann\nx",
        "日本語のユーザー",
    ]
    .iter()
    .enumerate()
    {
        let mut api = server.client();
        let (status, body) = api
            .post(
                "/api/auth/register",
                json!({"username": username, "email": format!("uni{i}@example.org"), "password": PASSWORD}),
            )
            .await;
        assert_error(status, &body, 400, "bad_request");
        let (status, body) = admin.post("/api/me/username", json!({"username": username})).await;
        assert_error(status, &body, 400, "bad_request");
    }
    for email in [
        "ann\u{0000}@example.org",
        "ann\u{0007}@example.org",
        "ann@exa\nmple.org",
    ] {
        let mut api = server.client();
        let (status, body) = api
            .post(
                "/api/auth/register",
                json!({"username": "unimail", "email": email, "password": PASSWORD}),
            )
            .await;
        assert_error(status, &body, 400, "bad_request");
    }
    // A direction override in an email is either refused or kept exactly.
    let mut registered = 0;
    let mut api = server.client();
    let rtl_email = "a\u{202E}b@example.org";
    let (status, body) = api
        .post(
            "/api/auth/register",
            json!({"username": "rtlmail", "email": rtl_email, "password": PASSWORD}),
        )
        .await;
    if status == 201 {
        registered += 1;
        assert_eq!(body["user"]["email"], rtl_email);
    } else {
        assert_error(status, &body, 400, "bad_request");
    }
    // Guest names are display names: NUL and control characters are refused.
    for name in ["\u{0000}", "Zoë\u{0000}", "a\u{0008}b", "line\nbreak", "tab\tname"] {
        let mut api = server.client();
        let (status, body) = api.post("/api/auth/guest", json!({"name": name})).await;
        assert_error(status, &body, 400, "bad_request");
        assert!(api.session_cookie().is_none());
    }
    // Letters from any script, emoji and combining marks are kept exactly.
    let mut accepted = 0;
    for name in ["Zoë 🎉", "日本語", "مرحبا", "Ζωή", "e\u{0301}"] {
        let mut api = server.client();
        let (status, body) = api.post("/api/auth/guest", json!({"name": name})).await;
        assert_eq!(status, 200, "{name:?}: {body}");
        assert_eq!(body["user"]["display_name"], name);
        assert_eq!(api.me().await["display_name"], name);
        accepted += 1;
    }
    // A bare direction override is either refused or kept exactly.
    let mut api = server.client();
    let rtl = "\u{202E}evil";
    let (status, body) = api.post("/api/auth/guest", json!({"name": rtl})).await;
    if status == 200 {
        assert_eq!(body["user"]["display_name"], rtl);
        accepted += 1;
    } else {
        assert_error(status, &body, 400, "bad_request");
    }
    // Unicode passwords work, and every character counts.
    let mut api = server.client();
    let password = "пароль🔑密码";
    let (status, body) = api
        .post(
            "/api/auth/register",
            json!({"username": "unipass", "email": "unipass@example.org", "password": password}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    server.login_ok("unipass", password).await;
    let (_, status, body) = server.login("unipass", "пароль🔑密").await;
    assert_error(status, &body, 401, "invalid_credentials");
    // A NUL inside a password is either refused or significant.
    let mut api = server.client();
    let (status, body) = api
        .post(
            "/api/auth/register",
            json!({"username": "nulpass", "email": "nulpass@example.org", "password": "pass\u{0000}word1"}),
        )
        .await;
    registered += 1;
    if status == 201 {
        registered += 1;
        server.login_ok("nulpass", "pass\u{0000}word1").await;
        for wrong in ["pass", "password1", "pass\u{0000}"] {
            let (_, status, body) = server.login("nulpass", wrong).await;
            assert_error(status, &body, 401, "invalid_credentials");
        }
    } else {
        assert_error(status, &body, 400, "bad_request");
    }
    assert_intact(&server, &mut admin, users + accepted + registered).await;
}

#[tokio::test]
async fn sql_and_html_metacharacters_are_data() {
    let (server, mut admin, mut ann) = setup().await;
    let (target, role) = ids(&mut admin, &mut ann).await;
    let users = admin.user_total().await;

    // Not valid usernames, emails, role or permission names.
    for (i, username) in [SQL, HTML, "admin'--", "a\"b\"c", "x;y;z", "50%_off"]
        .iter()
        .enumerate()
    {
        let mut api = server.client();
        let (status, body) = api
            .post(
                "/api/auth/register",
                json!({"username": username, "email": format!("meta{i}@example.org"), "password": PASSWORD}),
            )
            .await;
        assert_error(status, &body, 400, "bad_request");
        let (status, body) = admin.post("/api/me/username", json!({"username": username})).await;
        assert_error(status, &body, 400, "bad_request");
    }
    for email in [
        format!("{HTML}@example.org"),
        format!("{SQL}@example.org"),
        "\"a\"@example.org".into(),
    ] {
        let mut api = server.client();
        let (status, body) = api
            .post(
                "/api/auth/register",
                json!({"username": "metamail", "email": email, "password": PASSWORD}),
            )
            .await;
        assert_error(status, &body, 400, "bad_request");
    }
    for name in [SQL, HTML, "role' OR '1'='1"] {
        expect_bad_request(&mut admin, Method::POST, "/api/admin/roles", json!({"name": name})).await;
        expect_bad_request(
            &mut admin,
            Method::POST,
            "/api/admin/permissions",
            json!({"name": name}),
        )
        .await;
        expect_bad_request(
            &mut admin,
            Method::POST,
            &format!("/api/admin/roles/{role}/permissions"),
            json!({"permission": name}),
        )
        .await;
        expect_bad_request(
            &mut admin,
            Method::PATCH,
            &format!("/api/admin/users/{target}"),
            json!({"roles": [name]}),
        )
        .await;
    }

    // An apostrophe is legal in an email address, and is stored as typed.
    let mut obrien = server.client();
    let (status, body) = obrien
        .post(
            "/api/auth/register",
            json!({"username": "obrien", "email": "o'brien;--@example.org", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["user"]["email"], "o'brien;--@example.org");
    let mut again = server.login_ok("O'Brien;--@example.org", PASSWORD).await;
    assert_eq!(again.me().await["username"], "obrien");

    // Injection attempts through the login are just wrong credentials.
    for (login, password) in [
        ("' OR '1'='1", "' OR '1'='1"),
        ("admin'--", "anything!"),
        ("admin' OR 1=1 --", PASSWORD),
        (SQL, PASSWORD),
        ("%", PASSWORD),
        ("_nn", PASSWORD),
        (HTML, HTML),
        ("ann", "' OR '1'='1"),
    ] {
        let (api, status, body) = server.login(login, password).await;
        assert_error(status, &body, 401, "invalid_credentials");
        assert!(api.session_cookie().is_none());
    }

    // Guest names may hold any of it, and keep it exactly.
    for name in [
        SQL,
        HTML,
        "Robert'); DROP TABLE students;--",
        "\"quoted\" & <b>bold</b>",
    ] {
        let mut guest = server.client();
        let (status, body) = guest.post("/api/auth/guest", json!({"name": name})).await;
        assert_eq!(status, 200, "{name}: {body}");
        assert_eq!(body["user"]["display_name"], name);
        let username = body["user"]["username"].as_str().unwrap();
        assert!(
            username.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)),
            "guest username {username:?} carries metacharacters"
        );
        assert_eq!(guest.me().await["display_name"], name);
    }

    // Searches treat it as text.
    for q in [SQL, HTML, "%", "_", "\\", "' OR '1'='1"] {
        let (status, body) = admin.get_query("/api/admin/users", &[("q", q)]).await;
        assert_eq!(status, 200, "q={q}: {body}");
        let found = body["users"].as_array().unwrap();
        assert_eq!(body["total"].as_i64().unwrap(), found.len() as i64);
        let needle = q.to_lowercase();
        for u in found {
            let fields = [&u["username"], &u["display_name"], &u["email"]];
            assert!(
                fields
                    .iter()
                    .any(|f| f.as_str().is_some_and(|f| f.to_lowercase().contains(&needle))),
                "q={q} matched a user without it: {u}"
            );
        }
    }
    let (_, body) = admin.get_query("/api/admin/users", &[("q", "%")]).await;
    assert_eq!(body["total"], 0, "{body}");
    for filter in ["user", "ip", "action", "q", "room"] {
        let logs = admin.logs(&[(filter, SQL)]).await;
        assert!(logs["entries"].is_array(), "{logs}");
    }
    let logs = admin.logs(&[("user", SQL)]).await;
    assert_eq!(logs["total"], 1, "the failed login under that name: {logs}");

    // Four guests and O'Brien were added; nothing else changed.
    assert_intact(&server, &mut admin, users + 5).await;
    let (_, body) = admin.get_query("/api/admin/users", &[("q", "o'brien")]).await;
    assert_eq!(body["users"][0]["email"], "o'brien;--@example.org");
}

#[tokio::test]
async fn bodies_over_64_kib_are_too_large() {
    let (server, mut admin, mut ann) = setup().await;
    let (target, role) = ids(&mut admin, &mut ann).await;
    let users = admin.user_total().await;
    let pad = "a".repeat(70 * 1024);
    for (method, path) in endpoints(target, role) {
        let body = json!({"name": pad, "username": pad, "login": pad, "password": pad}).to_string();
        let (status, reply) = send_bad(&mut admin, method.clone(), &path, Some("application/json"), body).await;
        assert_error(status, &reply, 413, "too_large");
    }
    // Just over the limit, with otherwise valid content.
    let name = "b".repeat(64 * 1024);
    let body = json!({"name": name}).to_string();
    assert!(body.len() > 64 * 1024);
    let mut guest = server.client();
    let (status, reply) = send_bad(
        &mut guest,
        Method::POST,
        "/api/auth/guest",
        Some("application/json"),
        body,
    )
    .await;
    assert_error(status, &reply, 413, "too_large");
    assert!(guest.session_cookie().is_none());
    // Under the limit the usual rules answer.
    let body = json!({"name": "c".repeat(60 * 1024)}).to_string();
    let (status, reply) = send_bad(
        &mut guest,
        Method::POST,
        "/api/auth/guest",
        Some("application/json"),
        body,
    )
    .await;
    assert_error(status, &reply, 400, "bad_request");
    assert_intact(&server, &mut admin, users).await;
}

#[tokio::test]
async fn bad_paths_and_queries_are_client_errors() {
    let (server, mut admin, mut ann) = setup().await;
    let (target, _) = ids(&mut admin, &mut ann).await;
    let users = admin.user_total().await;
    for path in [
        "/api/admin/users/abc",
        "/api/admin/users/99999999999999999999",
        "/api/admin/users/1.5",
        "/api/admin/users/%27%20OR%201%3D1",
    ] {
        let (status, body) = admin.patch(path, json!({"is_admin": true})).await;
        assert_error(status, &body, 400, "bad_request");
        let (status, body) = admin.delete(path).await;
        assert_error(status, &body, 400, "bad_request");
    }
    for path in ["/api/admin/roles/abc", "/api/admin/roles/1%3B%20DROP"] {
        let (status, body) = admin.delete(path).await;
        assert_error(status, &body, 400, "bad_request");
    }
    for id in ["0", "-1", "999999"] {
        let (status, body) = admin
            .patch(&format!("/api/admin/users/{id}"), json!({"is_admin": true}))
            .await;
        assert_error(status, &body, 404, "not_found");
    }
    for (path, query) in [
        ("/api/admin/users", ("page", "abc")),
        ("/api/admin/users", ("page", "-1")),
        ("/api/admin/users", ("page", "99999999999999999999")),
        ("/api/admin/logs", ("page", "abc")),
        ("/api/admin/logs", ("per_page", "1e3")),
        ("/api/admin/logs", ("to", "not a date")),
    ] {
        let (status, body) = admin.get_query(path, &[query]).await;
        assert_error(status, &body, 400, "bad_request");
    }
    // Unknown API paths.
    let (status, body) = admin.get("/api/no/such/thing").await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = admin.post("/api/no/such/thing", json!({})).await;
    assert_error(status, &body, 404, "not_found");
    let _ = target;
    assert_intact(&server, &mut admin, users).await;
}

#[tokio::test]
async fn wrong_methods_answer_in_the_contract_shape() {
    let (server, mut admin, _ann) = setup().await;
    for (method, path) in [
        (Method::GET, "/api/auth/register"),
        (Method::GET, "/api/auth/login"),
        (Method::PUT, "/api/auth/login"),
        (Method::DELETE, "/api/auth/guest"),
        (Method::GET, "/api/auth/logout"),
        (Method::POST, "/api/me"),
        (Method::POST, "/api/admin/logs"),
        (Method::PUT, "/api/admin/users/1"),
    ] {
        let (status, body) = admin.send_raw(method.clone(), path, None, Vec::new()).await;
        assert_ne!(status, 500, "{method} {path}");
        assert!(status.is_client_error(), "{method} {path}: {status}");
        assert_client_error(status, &body);
    }
    let users = admin.user_total().await;
    assert_intact(&server, &mut admin, users).await;
}

#[tokio::test]
async fn garbage_cookies_and_headers_are_not_server_errors() {
    let server = Server::start_with(&[("TRUSTED_PROXIES", "127.0.0.1")]).await;
    let mut admin = server.admin().await;
    server.user("ann").await;
    let users = admin.user_total().await;
    let http = reqwest::Client::new();
    for cookie in [
        "sb_session=".to_owned(),
        "sb_session=%%%%".into(),
        format!("sb_session={}", "A".repeat(8000)),
        format!("sb_session={SQL}"),
        "sb_session=\"quoted\"".into(),
    ] {
        let response = http
            .get(server.url("/api/me"))
            .header("Cookie", cookie.clone())
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert_error(status, &body, 401, "unauthenticated");
    }
    for forwarded in ["not-an-ip", "", "999.1.1.1", "203.0.113.1, garbage", SQL] {
        let response = server
            .client()
            .request(Method::POST, "/api/auth/login")
            .header("X-Forwarded-For", forwarded)
            .json(&json!({"login": "ann", "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "X-Forwarded-For {forwarded:?}");
    }
    let logs = admin.logs(&[("action", "login"), ("user", "ann")]).await;
    for entry in logs["entries"].as_array().unwrap() {
        let ip = entry["ip"].as_str().unwrap();
        assert!(
            ip.parse::<std::net::IpAddr>().is_ok(),
            "a stored ip {ip:?} is not an address"
        );
    }
    assert_eq!(admin.user_total().await, users);
}
