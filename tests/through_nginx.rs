//! The server behind a real nginx running deploy/nginx-switchboard.conf,
//! over https with a test CA: sign-in, chat between two sockets, an admin
//! kick, a 50 MB upload and download, the client IP the server records
//! (TRUSTED_PROXIES=127.0.0.1) with forged X-Forwarded-For headers ignored,
//! an idle socket kept open past nginx's timeout by the server's pings, and
//! a browser that signs in and chats.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a failed step should fail the test"
)]
mod common;
mod nginx;

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::Duration;

use common::{Event, Server, PASSWORD};
use nginx::{Nginx, Site, Tls};
use reqwest::Method;
use serde_json::json;

/// The address nginx connects from, and the one address trusted.
const PROXY: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// A client on another loopback address: what the server must record.
const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
/// The server's ping interval (src/realtime/session.rs, HEARTBEAT_INTERVAL).
const SERVER_PING: Duration = Duration::from_secs(10);
/// nginx's proxy_read_timeout in the idle test: twice the ping interval,
/// so a loaded machine that pings late still pings in time.
const IDLE_TEST_TIMEOUT_SECS: u32 = 20;
const SHIPPED_TIMEOUT_SECS: u32 = 3600;
const MIB: usize = 1024 * 1024;

/// A server configured as deploy/README.md says, and nginx in front.
struct Stack {
    /// Kept alive (and stopped on drop) with the nginx in front of it.
    server: Server,
    nginx: Nginx,
    tls: Tls,
}

async fn stack(ws_timeout_secs: u32, extra: &[(&str, &str)]) -> Stack {
    let tls = Tls::generate();
    let (http_port, https_port) = nginx::free_ports();
    let public_url = format!("https://{}:{https_port}", nginx::SERVER_NAME);
    let mut env = vec![("PUBLIC_URL", public_url.as_str()), ("TRUSTED_PROXIES", "127.0.0.1")];
    env.extend_from_slice(extra);
    let server = Server::start_with(&env).await;
    let upstream = server.base.trim_start_matches("http://").to_owned();
    let nginx = Nginx::start(&Site {
        upstream: &upstream,
        http_port,
        https_port,
        tls: &tls,
        ws_timeout_secs,
    })
    .await;
    Stack { server, nginx, tls }
}

impl Stack {
    fn client(&self, from: IpAddr, headers: &[(&str, &str)]) -> common::Api {
        nginx::client(&self.nginx, &self.tls, from, headers)
    }

    /// The admin account, made as an operator makes it (`switchboard user
    /// create --admin`, through the fixture), signed in through nginx.
    async fn admin(&self) -> common::Api {
        self.server.admin_account().await;
        let mut admin = self.client(PROXY, &[]);
        let (status, body) = admin
            .post("/api/auth/login", json!({"login": "admin", "password": PASSWORD}))
            .await;
        assert_eq!(status, 200, "admin login through nginx: {body}");
        assert_eq!(body["user"]["is_admin"], true, "{body}");
        admin
    }

    async fn socket(&self, api: &common::Api, from: IpAddr, headers: &[(&str, &str)]) -> common::Ws {
        nginx::socket(api, &self.nginx, &self.tls, from, headers).await
    }
}

async fn register(api: &mut common::Api, username: &str, email: &str) {
    let (status, body) = api
        .post(
            "/api/auth/register",
            json!({"username": username, "email": email, "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 201, "register {username}: {body}");
}

/// The `ip` of the live session `sid`, as the admin console shows it.
async fn live_ip(admin: &mut common::Api, sid: &str) -> String {
    let (status, body) = admin.get("/api/admin/sessions").await;
    assert_eq!(status, 200, "{body}");
    let session = body["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["sid"] == sid)
        .unwrap_or_else(|| panic!("no live session {sid} in {body}"));
    session["ip"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn sign_in_chat_kick_upload_and_client_ips_through_nginx() {
    let stack = stack(SHIPPED_TIMEOUT_SECS, &[]).await;
    let forged_outside = [("X-Forwarded-For", "203.0.113.9")];
    let forged_inside = [("X-Forwarded-For", "203.0.113.7")];

    let mut admin = stack.admin().await;
    // Ann is a client elsewhere that forges X-Forwarded-For; Bob connects
    // from the proxy's own address and forges it too.
    register(&mut stack.client(CLIENT, &forged_outside), "ann", "ann@example.org").await;
    register(&mut stack.client(PROXY, &forged_inside), "bob", "bob@example.org").await;

    // Sign-in over https: the session cookie is Secure and comes back.
    let mut ann = stack.client(CLIENT, &forged_outside);
    let (status, body) = ann
        .post("/api/auth/login", json!({"login": "ann", "password": PASSWORD}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(ann.me().await["username"], "ann");
    let mut bob = stack.client(PROXY, &forged_inside);
    let (status, body) = bob
        .post("/api/auth/login", json!({"login": "bob", "password": PASSWORD}))
        .await;
    assert_eq!(status, 200, "{body}");

    // Chat between two sockets through nginx's WebSocket proxying.
    let mut ann_ws = stack.socket(&ann, CLIENT, &forged_outside).await;
    let mut bob_ws = stack.socket(&bob, PROXY, &forged_inside).await;
    ann_ws.join("lobby").await;
    bob_ws.join("lobby").await;
    ann_ws
        .send(json!({"type": "chat", "text": "hello through nginx", "nonce": "a1"}))
        .await;
    assert_eq!(bob_ws.next_of("message").await["text"], "hello through nginx");
    assert_eq!(ann_ws.next_of("message").await["nonce"], "a1");
    bob_ws.send(json!({"type": "chat", "text": "hello back"})).await;
    assert_eq!(ann_ws.next_of("message").await["text"], "hello back");
    assert_eq!(bob_ws.next_of("message").await["text"], "hello back");

    // The server saw each client's own address, never the forged ones.
    assert_eq!(live_ip(&mut admin, &ann_ws.sid()).await, "127.0.0.2");
    assert_eq!(live_ip(&mut admin, &bob_ws.sid()).await, "127.0.0.1");
    for (user, ip) in [("ann", "127.0.0.2"), ("bob", "127.0.0.1")] {
        let logs = admin.logs(&[("action", "login"), ("user", user)]).await;
        let entries = logs["entries"].as_array().unwrap();
        assert_eq!(entries.len(), 1, "{logs}");
        assert_eq!(entries[0]["ip"], ip, "{user}'s login: {logs}");
    }

    // A 50 MB file (exactly MAX_UPLOAD_MB) goes up through nginx, reaches the
    // room, and comes back down intact; one byte more is the server's 413.
    let big: Vec<u8> = b"0123456789abcdef\n".iter().copied().cycle().take(50 * MIB).collect();
    let (status, answer) = ann.upload_file("lobby", "big.txt", big.clone()).await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["size"], 50 * MIB);
    let posted = bob_ws.next_of("message").await;
    assert_eq!(posted["attachment"]["id"], answer["id"]);
    let url = answer["url"].as_str().unwrap();
    let download = bob.request(Method::GET, url).send().await.unwrap();
    assert_eq!(download.status(), 200);
    let body = download.bytes().await.unwrap();
    assert!(
        body.as_ref() == big.as_slice(),
        "the download differs ({} bytes)",
        body.len()
    );
    let mut too_big = big;
    too_big.push(b'\n');
    let (status, refused) = ann.upload_file("lobby", "too-big.txt", too_big).await;
    common::assert_error(status, &refused, 413, "too_large");

    // An admin kick reaches the socket through nginx, with its close code.
    let (status, body) = admin
        .post(
            &format!("/api/admin/sessions/{}/kick", bob_ws.sid()),
            json!({"reason": "through the proxy"}),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(bob_ws.next_of("kicked").await["reason"], "through the proxy");
    assert_eq!(bob_ws.closed().await, Some(4001));
    assert_eq!(ann_ws.next_of("member_left").await["sid"], bob_ws.sid());

    // /metrics stays off the internet.
    let (status, _) = admin.get("/metrics").await;
    assert_eq!(status, 403);
    assert!(stack.nginx.error_log().lines().all(|l| !l.contains("[emerg]")));
}

/// nginx closes a proxied socket after proxy_read_timeout without a byte from
/// the server. The shipped timeout is an hour; here it is 20 s, so waiting
/// 2.75 times that proves in 55 s what an hour would: nginx restarts that
/// timer on every byte, whatever its length, so a socket stays open exactly
/// when the gap between the server's frames (pings every 10 s) is shorter
/// than the timeout. A control nginx with 5 s, shorter than the ping interval,
/// must close its idle socket, or the test would prove nothing.
#[tokio::test]
async fn an_idle_socket_outlives_the_proxy_timeout_because_the_server_pings() {
    let idle_for = Duration::from_secs(55);
    assert!(Duration::from_secs(IDLE_TEST_TIMEOUT_SECS.into()) > SERVER_PING);
    assert!(idle_for > Duration::from_secs(IDLE_TEST_TIMEOUT_SECS.into()) * 5 / 2);
    let kept = stack(IDLE_TEST_TIMEOUT_SECS, &[]).await;
    let control = stack(5, &[]).await;

    let ((mut kept_ws, kept_outcome, _), (_, control_outcome, control_after)) =
        tokio::join!(idle_socket(&kept, idle_for), idle_socket(&control, idle_for));

    assert!(
        matches!(kept_outcome, Event::Timeout),
        "the socket closed within {idle_for:?} of silence: {}",
        describe(&kept_outcome)
    );
    kept_ws
        .send(json!({"type": "chat", "text": "still here", "nonce": "n"}))
        .await;
    assert_eq!(kept_ws.next_of("message").await["text"], "still here");

    assert!(
        matches!(control_outcome, Event::Closed(_)),
        "the control socket (5 s timeout) stayed open: {}",
        describe(&control_outcome)
    );
    assert!(control_after < Duration::from_secs(45), "{control_after:?}");
}

/// A signed-in socket in the lobby that then hears nothing for up to
/// `idle_for`: the socket, what ended the wait, and when.
async fn idle_socket(stack: &Stack, idle_for: Duration) -> (common::Ws, Event, Duration) {
    let mut api = stack.client(PROXY, &[]);
    register(&mut api, "ann", "ann@example.org").await;
    let mut ws = stack.socket(&api, PROXY, &[]).await;
    ws.join("lobby").await;
    let started = tokio::time::Instant::now();
    let outcome = ws.next_event(idle_for).await;
    (ws, outcome, started.elapsed())
}

fn describe(event: &Event) -> String {
    match event {
        Event::Frame(frame) => format!("frame {frame}"),
        Event::Closed(code) => format!("closed {code:?}"),
        Event::Timeout => "nothing".into(),
    }
}

/// Chromium through nginx over https: sign in on the page and chat
/// (tests/nginx/browser.mjs drives it; Debian's Chromium, playwright-core).
#[tokio::test]
async fn a_browser_signs_in_and_chats_through_nginx() {
    let stack = stack(SHIPPED_TIMEOUT_SECS, &[("LOGIN_RATE_PER_MIN", "0")]).await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/nginx/browser.mjs");
    let output = tokio::process::Command::new("node")
        .arg("--test")
        .arg("--test-reporter=spec")
        .arg(&script)
        .env("SB_NGINX_URL", &stack.nginx.base)
        .env("SB_NGINX_HOST_RULES", format!("MAP {} 127.0.0.1", nginx::SERVER_NAME))
        .kill_on_drop(true)
        .output()
        .await
        .expect("node runs tests/nginx/browser.mjs (tests/setup.sh installs it)");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "browser test through nginx failed:\n{said}");
    assert!(said.contains("pass 1"), "no browser test ran:\n{said}");
}

#[test]
fn the_substitution_changes_only_the_named_lines() {
    let tls = Tls::generate();
    let site = Site {
        upstream: "127.0.0.1:41234",
        http_port: 40080,
        https_port: 40443,
        tls: &tls,
        ws_timeout_secs: 15,
    };
    let shipped = include_str!("../deploy/nginx-switchboard.conf");
    let tested = nginx::site_for_test(shipped, &site);
    let changed: Vec<(&str, &str)> = shipped.lines().zip(tested.lines()).filter(|(a, b)| a != b).collect();
    assert_eq!(shipped.lines().count(), tested.lines().count());
    assert_eq!(changed.len(), 11, "{changed:#?}");
    for (from, to) in &changed {
        let directive = |line: &str| line.split_whitespace().next().unwrap_or("").to_owned();
        assert_eq!(directive(from), directive(to), "{from} -> {to}");
        assert!(
            [
                "server",
                "server_name",
                "listen",
                "ssl_certificate",
                "ssl_certificate_key",
                "proxy_read_timeout",
                "proxy_send_timeout"
            ]
            .contains(&directive(from).as_str()),
            "{from}"
        );
    }
    assert!(tested.contains("server 127.0.0.1:41234;"));
    assert!(tested.contains("listen 127.0.0.1:40443 ssl http2;"));
    assert!(
        tested
            .lines()
            .all(|l| l.trim_start().starts_with('#') || !l.contains("example.org")),
        "every name and path of the real host is replaced"
    );
    // What the test relies on is in the shipped file as it is.
    for kept in [
        "proxy_set_header X-Forwarded-For   $remote_addr;",
        "client_max_body_size 51m;",
        "proxy_pass http://switchboard;",
    ] {
        assert!(shipped.contains(kept), "{kept}");
    }
    assert!(
        !shipped.contains("$proxy_add_x_forwarded_for"),
        "a client could choose its address"
    );
}
