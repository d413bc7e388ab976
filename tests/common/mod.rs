//! The integration-test fixture: the real `switchboard` binary started on an
//! ephemeral port with a temporary data directory, and real HTTP and
//! WebSocket clients that speak to it as a browser would.
#![allow(dead_code, reason = "each test crate uses a different part of the fixture")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a failed fixture step should fail the test"
)]

pub mod smtp;

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use reqwest::cookie::{CookieStore, Jar};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::OnceCell;

pub const ADMIN_EMAIL: &str = "admin@example.org";
pub const PASSWORD: &str = "correct horse battery";

/// Test settings: fast bcrypt, no CAPTCHA, guests on, no limit on
/// registrations (tests register many accounts from 127.0.0.1), the SFU on
/// any free loopback UDP port (many servers run at once). Tests override any
/// key.
const DEFAULTS: &[(&str, &str)] = &[
    ("BCRYPT_COST", "4"),
    ("CAPTCHA", "false"),
    ("ALLOW_GUESTS", "true"),
    ("REGISTER_RATE_PER_MIN", "0"),
    ("ADMIN_EMAIL", ADMIN_EMAIL),
    ("SECRET_KEY", "integration-test-secret-key"),
    ("LOG_FORMAT", "json"),
    ("RUST_LOG", "info"),
    ("SFU_UDP_PORT", "0"),
    ("SFU_PUBLIC_IP", "127.0.0.1"),
];

pub struct Server {
    pub base: String,
    pub dir: TempDir,
    child: Child,
    env: Vec<(String, String)>,
    /// Set once [`Server::admin`] has created the admin account.
    admin_created: OnceCell<()>,
}

impl Server {
    pub async fn start() -> Server {
        Self::start_with(&[]).await
    }

    pub async fn start_with(overrides: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let mut env: Vec<(String, String)> = DEFAULTS.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        env.push(("DATABASE_PATH".into(), dir.path().join("sb.db").display().to_string()));
        for (k, v) in overrides {
            env.retain(|(key, _)| key != k);
            env.push((k.to_string(), v.to_string()));
        }
        let (child, base) = spawn(&env, "127.0.0.1:0").await;
        Server {
            base,
            dir,
            child,
            env,
            admin_created: OnceCell::new(),
        }
    }

    /// Kills the process without warning (SIGKILL) and starts it again on
    /// the same port and data directory.
    pub async fn kill9_and_restart(&mut self) {
        self.child.start_kill().unwrap();
        self.child.wait().await.unwrap();
        let bind = self.base.trim_start_matches("http://").to_owned();
        let (child, base) = spawn(&self.env, &bind).await;
        self.child = child;
        assert_eq!(base, self.base);
    }

    /// [`Server::kill9_and_restart`] with some settings changed from now on.
    pub async fn kill9_and_restart_with(&mut self, overrides: &[(&str, &str)]) {
        for (k, v) in overrides {
            self.env.retain(|(key, _)| key != k);
            self.env.push((k.to_string(), v.to_string()));
        }
        self.kill9_and_restart().await;
    }

    /// Sends SIGTERM and waits for the exit; returns how long it took.
    pub async fn terminate(&mut self) -> Duration {
        let pid = self.child.id().unwrap();
        let started = std::time::Instant::now();
        std::process::Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .unwrap();
        tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .unwrap()
            .unwrap();
        started.elapsed()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn client(&self) -> Api {
        Api::new(&self.base)
    }

    /// A registered, signed-in account (never an admin: a password
    /// registration does not verify its address).
    pub async fn user(&self, username: &str) -> Api {
        self.register(username, &format!("{username}@example.org")).await
    }

    /// The admin `admin` (email ADMIN_EMAIL), signed in on a fresh client.
    /// The account is made the supported way for a password-only install,
    /// `switchboard user create --admin` against this server's database
    /// while it runs, on first use.
    pub async fn admin(&self) -> Api {
        self.admin_account().await;
        let mut api = self.client();
        let mut body = json!({"login": "admin", "password": PASSWORD});
        let (_, config) = api.get("/api/auth/config").await;
        if config["captcha"] == true {
            let (id, answer) = solve_captcha(&mut api).await;
            body["captcha_id"] = json!(id);
            body["captcha_answer"] = json!(answer);
        }
        let (status, body) = api.post("/api/auth/login", body).await;
        assert_eq!(status, StatusCode::OK, "admin login: {body}");
        assert_eq!(body["user"]["is_admin"], true, "{body}");
        api
    }

    /// Makes the admin account (once), as an operator does with `user
    /// create --admin`, without signing in: for a test that signs in some
    /// other way (through a proxy, say).
    pub async fn admin_account(&self) {
        self.admin_created.get_or_init(|| self.create_admin()).await;
    }

    async fn create_admin(&self) {
        let mut child = self
            .command(&[
                "user",
                "create",
                "--username",
                "admin",
                "--email",
                ADMIN_EMAIL,
                "--admin",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(format!("{PASSWORD}\n").as_bytes()).await.unwrap();
        drop(stdin);
        let output = child.wait_with_output().await.unwrap();
        assert!(
            output.status.success(),
            "switchboard user create --admin: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// The `switchboard` binary with `args`, configured like this server.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_switchboard"));
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(std::env::temp_dir())
            .kill_on_drop(true);
        command
    }

    /// The server's SQLite database file.
    pub fn database_path(&self) -> String {
        self.env
            .iter()
            .find(|(k, _)| k == "DATABASE_PATH")
            .map(|(_, v)| v.clone())
            .unwrap()
    }

    pub async fn register(&self, username: &str, email: &str) -> Api {
        let mut api = self.client();
        let (status, body) = api
            .post(
                "/api/auth/register",
                json!({"username": username, "email": email, "password": PASSWORD}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "register {username}: {body}");
        api
    }

    pub async fn guest(&self, name: &str) -> Api {
        let mut api = self.client();
        let (status, body) = api.post("/api/auth/guest", json!({"name": name})).await;
        assert_eq!(status, StatusCode::OK, "guest {name}: {body}");
        api
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

async fn spawn(env: &[(String, String)], bind: &str) -> (Child, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_switchboard"));
    command
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("BIND", bind)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(std::env::temp_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let addr = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Ok(entry) = serde_json::from_str::<Value>(&line) {
                if entry["message"] == "listening" {
                    return entry["addr"].as_str().unwrap().to_owned();
                }
            }
            eprintln!("server: {line}");
        }
        panic!("the server exited before listening");
    })
    .await
    .expect("the server did not start within 30 s");
    // Keep draining the server's log so it never blocks on a full pipe.
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            if std::env::var_os("SB_TEST_LOG").is_some() {
                eprintln!("server: {line}");
            }
        }
    });
    (child, format!("http://{addr}"))
}

/// A browser-like client: a cookie jar, the server's Origin on every
/// request, and the session's CSRF token on state-changing ones.
pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
    pub jar: Arc<Jar>,
    pub csrf: Option<String>,
    /// Sent as X-Forwarded-For (HTTP and WebSocket): the client address the
    /// server sees when it trusts 127.0.0.1 as a proxy (TRUSTED_PROXIES).
    pub forwarded_for: Option<String>,
}

impl Api {
    pub fn new(base: &str) -> Api {
        let jar = Arc::new(Jar::default());
        let http = reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Api {
            base: base.to_owned(),
            http,
            jar,
            csrf: None,
            forwarded_for: None,
        }
    }

    /// The `sb_session` cookie's value, if any.
    pub fn session_cookie(&self) -> Option<String> {
        let url = self.base.parse().unwrap();
        let header = self.jar.cookies(&url)?;
        header
            .to_str()
            .unwrap()
            .split("; ")
            .find_map(|c| c.strip_prefix("sb_session=").map(str::to_owned))
    }

    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .header("Origin", &self.base);
        if let Some(ip) = &self.forwarded_for {
            req = req.header("X-Forwarded-For", ip);
        }
        if method != Method::GET {
            if let Some(token) = &self.csrf {
                req = req.header("X-CSRF-Token", token);
            }
        }
        req
    }

    /// Sends and returns the status and the body as JSON (Null when empty),
    /// remembering any CSRF token the server hands out.
    pub async fn send(&mut self, req: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let response = req.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        let body: Value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if let Some(token) = body.get("csrf_token").and_then(Value::as_str) {
            self.csrf = Some(token.to_owned());
        }
        (status, body)
    }

    pub async fn get(&mut self, path: &str) -> (StatusCode, Value) {
        let req = self.request(Method::GET, path);
        self.send(req).await
    }

    pub async fn post(&mut self, path: &str, body: Value) -> (StatusCode, Value) {
        let req = self.request(Method::POST, path).json(&body);
        self.send(req).await
    }

    pub async fn patch(&mut self, path: &str, body: Value) -> (StatusCode, Value) {
        let req = self.request(Method::PATCH, path).json(&body);
        self.send(req).await
    }

    pub async fn delete(&mut self, path: &str) -> (StatusCode, Value) {
        let req = self.request(Method::DELETE, path);
        self.send(req).await
    }

    pub async fn me(&mut self) -> Value {
        let (status, body) = self.get("/api/me").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["user"].clone()
    }
}

/// Asserts the contract's error shape and code.
#[track_caller]
pub fn assert_error(status: StatusCode, body: &Value, expected_status: u16, code: &str) {
    assert_eq!(status.as_u16(), expected_status, "body: {body}");
    assert_eq!(body["error"]["code"], code, "body: {body}");
    assert!(body["error"]["message"].is_string(), "body: {body}");
}

// ---------------------------------------------------------------------------
// Helpers added for the auth, session, admin, bad-input, CLI and OIDC tests.
// ---------------------------------------------------------------------------

impl Server {
    /// A password login on a fresh client: the client, the status and the body.
    pub async fn login(&self, login: &str, password: &str) -> (Api, StatusCode, Value) {
        let mut api = self.client();
        let (status, body) = api
            .post("/api/auth/login", json!({"login": login, "password": password}))
            .await;
        (api, status, body)
    }

    /// A login that must succeed; the signed-in client.
    pub async fn login_ok(&self, login: &str, password: &str) -> Api {
        let (api, status, body) = self.login(login, password).await;
        assert_eq!(status, StatusCode::OK, "login {login}: {body}");
        api
    }
}

impl Api {
    /// Sends `body` as is, with the given Content-Type (none when `None`).
    pub async fn send_raw(
        &mut self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> (StatusCode, Value) {
        let mut req = self.request(method, path).body(body);
        if let Some(ct) = content_type {
            req = req.header(reqwest::header::CONTENT_TYPE, ct);
        }
        self.send(req).await
    }

    pub async fn post_raw(
        &mut self,
        path: &str,
        content_type: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> (StatusCode, Value) {
        self.send_raw(Method::POST, path, content_type, body).await
    }

    /// GET with a properly encoded query string.
    pub async fn get_query(&mut self, path: &str, query: &[(&str, &str)]) -> (StatusCode, Value) {
        let req = self.request(Method::GET, path).query(query);
        self.send(req).await
    }

    /// The audit log with these filters (must answer 200).
    pub async fn logs(&mut self, query: &[(&str, &str)]) -> Value {
        let (status, body) = self.get_query("/api/admin/logs", query).await;
        assert_eq!(status, StatusCode::OK, "logs {query:?}: {body}");
        body
    }

    /// Total number of users, as the admin API reports it.
    pub async fn user_total(&mut self) -> i64 {
        let (status, body) = self.get("/api/admin/users").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["total"].as_i64().expect("total is an integer")
    }

    /// Finds a user by exact username through the admin API.
    pub async fn find_user(&mut self, username: &str) -> Value {
        let (status, body) = self.get_query("/api/admin/users", &[("q", username)]).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["users"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["username"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(username)))
            .cloned()
            .unwrap_or_else(|| panic!("no user {username} in {body}"))
    }
}

/// Fetches a CAPTCHA and solves it: `(id, answer)`.
pub async fn solve_captcha(api: &mut Api) -> (String, String) {
    let (status, body) = api.get("/api/auth/captcha").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let id = body["id"].as_str().expect("captcha id").to_owned();
    let question = body["question"].as_str().expect("captcha question");
    (id, captcha_answer(question).to_string())
}

/// Solves "What is A + B?" or "What is A - B?".
pub fn captcha_answer(question: &str) -> i64 {
    let inner = question
        .strip_prefix("What is ")
        .and_then(|q| q.strip_suffix('?'))
        .unwrap_or_else(|| panic!("unexpected CAPTCHA question {question:?}"));
    let parts: Vec<&str> = inner.split(' ').collect();
    assert_eq!(parts.len(), 3, "unexpected CAPTCHA question {question:?}");
    let a: i64 = parts[0].parse().unwrap();
    let b: i64 = parts[2].parse().unwrap();
    match parts[1] {
        "+" => a + b,
        "-" => a - b,
        other => panic!("unexpected operator {other:?} in {question:?}"),
    }
}

/// True for an RFC 3339 date-time such as `2026-01-02T03:04:05.678Z`.
pub fn is_rfc3339(text: &str) -> bool {
    let b = text.as_bytes();
    let digits = |r: std::ops::Range<usize>| b.get(r).is_some_and(|s| s.iter().all(u8::is_ascii_digit));
    if b.len() < 20
        || !digits(0..4)
        || b[4] != b'-'
        || !digits(5..7)
        || b[7] != b'-'
        || !digits(8..10)
        || !matches!(b[10], b'T' | b't')
        || !digits(11..13)
        || b[13] != b':'
        || !digits(14..16)
        || b[16] != b':'
        || !digits(17..19)
    {
        return false;
    }
    let mut rest = &text[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return false;
        }
        rest = &frac[n..];
    }
    match rest.as_bytes() {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => [h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit()),
        _ => false,
    }
}

/// Asserts a 4xx in the contract's error shape (any code).
#[track_caller]
pub fn assert_client_error(status: StatusCode, body: &Value) {
    assert!(status.is_client_error(), "expected a 4xx, got {status}: {body}");
    assert!(
        body["error"]["code"].as_str().is_some_and(|c| !c.is_empty()),
        "no error code: {status} {body}"
    );
    assert!(
        body["error"]["message"].is_string(),
        "no error message: {status} {body}"
    );
}

/// A WebSocket client signed in with an `Api`'s session cookie.
pub struct Ws {
    stream: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    /// The `hello` frame.
    pub hello: Value,
}

/// Frames are waited for at most this long. Generous on purpose: a passing
/// test never waits this long (it waits on the frame itself), and a loaded
/// two-core CI machine running many servers at once can be slow to deliver.
pub const FRAME_WAIT: Duration = Duration::from_secs(30);

impl Ws {
    /// Connects as `api`'s user and reads `hello`.
    pub async fn connect(api: &Api) -> Ws {
        Self::try_connect(api, Some(&api.base))
            .await
            .expect("WebSocket upgrade refused")
    }

    /// Connects with the given Origin; `Err(status)` when the upgrade is refused.
    pub async fn try_connect(api: &Api, origin: Option<&str>) -> Result<Ws, u16> {
        let request = Self::upgrade_request(api, origin, &[]);
        Self::handshake(tokio_tungstenite::connect_async(request).await).await
    }

    /// Upgrades a connection opened by the caller (TLS to a proxy, from a
    /// chosen source address) as `api`'s user, with its Origin and `headers`.
    pub async fn connect_over(
        api: &Api,
        stream: tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        headers: &[(&str, &str)],
    ) -> Ws {
        let request = Self::upgrade_request(api, Some(&api.base), headers);
        Self::handshake(tokio_tungstenite::client_async(request, stream).await)
            .await
            .expect("WebSocket upgrade refused")
    }

    fn upgrade_request(
        api: &Api,
        origin: Option<&str>,
        headers: &[(&str, &str)],
    ) -> tokio_tungstenite::tungstenite::handshake::client::Request {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let url = format!("{}/ws", api.base.replacen("http", "ws", 1));
        let mut request = url.into_client_request().unwrap();
        if let Some(cookie) = api.session_cookie() {
            request
                .headers_mut()
                .insert("Cookie", format!("sb_session={cookie}").parse().unwrap());
        }
        if let Some(origin) = origin {
            request.headers_mut().insert("Origin", origin.parse().unwrap());
        }
        if let Some(ip) = &api.forwarded_for {
            request.headers_mut().insert("X-Forwarded-For", ip.parse().unwrap());
        }
        for (name, value) in headers {
            let name = tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes()).unwrap();
            request.headers_mut().insert(name, value.parse().unwrap());
        }
        request
    }

    async fn handshake(
        outcome: Result<
            (
                tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
                tokio_tungstenite::tungstenite::handshake::client::Response,
            ),
            tokio_tungstenite::tungstenite::Error,
        >,
    ) -> Result<Ws, u16> {
        match outcome {
            Ok((stream, _)) => {
                let mut ws = Ws {
                    stream,
                    hello: Value::Null,
                };
                ws.hello = ws.next_of("hello").await;
                Ok(ws)
            }
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
            Err(other) => panic!("WebSocket connect failed: {other}"),
        }
    }

    pub fn sid(&self) -> String {
        self.hello["sid"].as_str().unwrap().to_owned()
    }

    pub async fn send(&mut self, frame: Value) {
        self.send_text(frame.to_string()).await;
    }

    pub async fn send_text(&mut self, text: String) {
        use futures_util::SinkExt;
        use tokio_tungstenite::tungstenite::Message;
        self.stream.send(Message::Text(text.into())).await.unwrap();
    }

    /// The next JSON text frame; panics on close or after FRAME_WAIT.
    pub async fn next(&mut self) -> Value {
        match self.next_event(FRAME_WAIT).await {
            Event::Frame(v) => v,
            Event::Closed(code) => panic!("socket closed ({code:?}) while a frame was expected"),
            Event::Timeout => panic!("no frame within {FRAME_WAIT:?}"),
        }
    }

    /// Skips frames until one of type `ty`.
    pub async fn next_of(&mut self, ty: &str) -> Value {
        let deadline = tokio::time::Instant::now() + FRAME_WAIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_event(left).await {
                Event::Frame(v) if v["type"] == ty => return v,
                Event::Frame(_) => continue,
                Event::Closed(code) => panic!("socket closed ({code:?}) while waiting for {ty}"),
                Event::Timeout => panic!("no {ty} frame within {FRAME_WAIT:?}"),
            }
        }
    }

    /// Joins a room and returns the `joined` frame.
    pub async fn join(&mut self, room: &str) -> Value {
        self.send(json!({"type": "join", "room": room})).await;
        self.next_of("joined").await
    }

    /// Reads until the socket closes: the close code (None for a bare close).
    pub async fn closed(&mut self) -> Option<u16> {
        let deadline = tokio::time::Instant::now() + FRAME_WAIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_event(left).await {
                Event::Frame(_) => continue,
                Event::Closed(code) => return code,
                Event::Timeout => panic!("the socket did not close within {FRAME_WAIT:?}"),
            }
        }
    }

    /// True when nothing arrives within `wait`.
    pub async fn quiet_for(&mut self, wait: Duration) -> bool {
        matches!(self.next_event(wait).await, Event::Timeout)
    }

    pub async fn next_event(&mut self, wait: Duration) -> Event {
        use futures_util::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        // One deadline for the whole wait: the server's pings must not re-arm it.
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Err(_) => return Event::Timeout,
                Ok(None) => return Event::Closed(None),
                Ok(Some(Err(_))) => return Event::Closed(None),
                Ok(Some(Ok(Message::Text(t)))) => return Event::Frame(serde_json::from_str(t.as_str()).unwrap()),
                Ok(Some(Ok(Message::Close(frame)))) => return Event::Closed(frame.map(|f| u16::from(f.code))),
                Ok(Some(Ok(_))) => continue,
            }
        }
    }
}

pub enum Event {
    Frame(Value),
    Closed(Option<u16>),
    Timeout,
}

// ---------------------------------------------------------------------------
// Helpers for the trust-boundary tests: clients at chosen addresses.
// ---------------------------------------------------------------------------

impl Server {
    /// A fresh client that says it comes from `ip` (X-Forwarded-For); the
    /// server must trust 127.0.0.1 (`TRUSTED_PROXIES`) to believe it.
    pub fn client_from(&self, ip: &str) -> Api {
        let mut api = self.client();
        api.forwarded_for = Some(ip.to_owned());
        api
    }

    /// A registered, signed-in account whose requests come from `ip`.
    pub async fn user_from(&self, username: &str, ip: &str) -> Api {
        let mut api = self.client_from(ip);
        let (status, body) = api
            .post(
                "/api/auth/register",
                json!({"username": username, "email": format!("{username}@example.org"), "password": PASSWORD}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "register {username}: {body}");
        api
    }
}

// ---------------------------------------------------------------------------
// Helpers for the transport tests: the server's memory, raw upgrades, and
// the close handshake seen from the client's socket.
// ---------------------------------------------------------------------------

impl Server {
    /// The server's resident memory, from /proc.
    pub fn rss_kb(&self) -> u64 {
        let pid = self.child.id().expect("the server is running");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmRSS in /proc/<pid>/status")
    }
}

/// An HTTP answer read off a raw socket: status, head and body.
pub struct RawAnswer {
    pub status: u16,
    pub head: String,
    pub body: String,
    /// The server closed the connection after answering.
    pub closed: bool,
}

/// Sends `request` (a whole HTTP/1.1 request) on a fresh connection and
/// reads the answer: to the end of the connection, or of the head for 101.
pub async fn raw_request(base: &str, request: &str) -> RawAnswer {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = loop {
        let n = tokio::time::timeout(FRAME_WAIT, stream.read(&mut buf))
            .await
            .expect("an answer within FRAME_WAIT")
            .unwrap_or(0);
        if n == 0 {
            break true;
        }
        bytes.extend_from_slice(&buf[..n]);
        if bytes.starts_with(b"HTTP/1.1 101") && bytes.windows(4).any(|w| w == b"\r\n\r\n") {
            break false;
        }
    };
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    RawAnswer {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
        closed,
    }
}

/// A WebSocket handshake for `path` as `api`'s user with the given Origin.
pub fn handshake_request(api: &Api, path: &str, origin: Option<&str>) -> String {
    let host = api.base.trim_start_matches("http://");
    let mut request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    );
    if let Some(origin) = origin {
        request.push_str(&format!("Origin: {origin}\r\n"));
    }
    if let Some(cookie) = api.session_cookie() {
        request.push_str(&format!("Cookie: sb_session={cookie}\r\n"));
    }
    request.push_str("\r\n");
    request
}

impl Ws {
    /// Closes as a standard client does (close frame, then the server's
    /// reply) and then waits for the server to end the TCP connection:
    /// how long the whole close took, or `None` if the server left the
    /// connection open for FRAME_WAIT.
    pub async fn close_and_await_eof(&mut self) -> Option<Duration> {
        use futures_util::{SinkExt, StreamExt};
        use tokio::io::AsyncReadExt;
        use tokio_tungstenite::tungstenite::Message;
        let started = tokio::time::Instant::now();
        self.stream.send(Message::Close(None)).await.unwrap();
        let deadline = started + FRAME_WAIT;
        // The reply: tungstenite answers it, then reports the stream's end.
        while let Ok(Some(Ok(frame))) = tokio::time::timeout_at(deadline, self.stream.next()).await {
            if matches!(frame, Message::Close(_)) {
                continue;
            }
        }
        let mut byte = [0u8; 1];
        match tokio::time::timeout_at(deadline, self.stream.get_mut().read(&mut byte)).await {
            Ok(Ok(0)) => Some(started.elapsed()),
            _ => None,
        }
    }

    /// The raw TCP socket under the WebSocket (for reads past its end).
    pub fn raw_socket(&mut self) -> &mut tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream> {
        self.stream.get_mut()
    }
}

/// Polls `$cond` (an expression that may `.await`) until it holds, failing
/// the test after FRAME_WAIT: waiting on the state itself, not on a guess
/// at how long it takes.
#[macro_export]
macro_rules! wait_until {
    ($what:expr, $cond:expr) => {{
        let deadline = tokio::time::Instant::now() + $crate::common::FRAME_WAIT;
        loop {
            if $cond {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "not within {:?}: {}",
                $crate::common::FRAME_WAIT,
                $what
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }};
}

// ---------------------------------------------------------------------------
// Helpers added for the backup, retention and nginx tests.
// ---------------------------------------------------------------------------

impl Api {
    /// Posts `bytes` as the file `name` to `room` (the multipart field `file`,
    /// with no declared type: the server goes by the content).
    pub async fn upload_file(&mut self, room: &str, name: &str, bytes: Vec<u8>) -> (StatusCode, Value) {
        use reqwest::multipart::{Form, Part};
        let part = Part::bytes(bytes).file_name(name.to_owned());
        let req = self
            .request(Method::POST, &format!("/api/rooms/{room}/files"))
            .multipart(Form::new().part("file", part));
        self.send(req).await
    }
}

/// The `text` of every message in a `{"messages": [...]}` answer or a
/// `joined.history`, in order.
pub fn texts_of(messages: &Value) -> Vec<String> {
    messages
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap().to_owned())
        .collect()
}
