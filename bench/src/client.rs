//! The Switchboard protocol as the load generator speaks it: guest and
//! admin sign-in, room creation, the WebSocket upgrade (optionally from a
//! chosen loopback source address), join, kick.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

pub type Ws = WebSocketStream<TcpStream>;

/// A signed-in HTTP session.
#[derive(Clone)]
pub struct Session {
    pub cookie: String,
    pub csrf: String,
}

#[derive(Clone)]
pub struct Server {
    pub base: String,
    pub addr: SocketAddr,
    pub http: reqwest::Client,
}

impl Server {
    pub fn new(base: &str, pool: usize) -> Result<Server, String> {
        let base = base.trim_end_matches('/').to_owned();
        let authority = base
            .strip_prefix("http://")
            .ok_or("only http:// URLs (loopback) are supported")?;
        let addr = authority
            .parse::<SocketAddr>()
            .map_err(|e| format!("{authority}: {e} (give an IP:port)"))?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .pool_max_idle_per_host(pool)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Server { base, addr, http })
    }

    async fn post(
        &self,
        path: &str,
        session: Option<&Session>,
        body: Value,
    ) -> Result<(Option<String>, Value), String> {
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .header("Origin", &self.base)
            .json(&body);
        if let Some(s) = session {
            req = req
                .header("Cookie", format!("sb_session={}", s.cookie))
                .header("X-CSRF-Token", &s.csrf);
        }
        let response = req.send().await.map_err(|e| format!("POST {path}: {e}"))?;
        let status = response.status();
        let cookie = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| {
                v.split(';')
                    .next()?
                    .trim()
                    .strip_prefix("sb_session=")
                    .map(str::to_owned)
            });
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() {
            return Err(format!("POST {path}: {status} {text}"));
        }
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::Null)
        };
        Ok((cookie, body))
    }

    fn session(cookie: Option<String>, body: &Value) -> Result<Session, String> {
        Ok(Session {
            cookie: cookie.ok_or("no sb_session cookie")?,
            csrf: body["csrf_token"].as_str().ok_or("no csrf_token")?.to_owned(),
        })
    }

    /// `GET path` as `session`: the JSON body of a 2xx answer.
    pub async fn get(&self, path: &str, session: &Session) -> Result<Value, String> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .header("Cookie", format!("sb_session={}", session.cookie))
            .send()
            .await
            .map_err(|e| format!("GET {path}: {e}"))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() {
            return Err(format!("GET {path}: {status} {text}"));
        }
        serde_json::from_str(&text).map_err(|e| format!("GET {path}: {e}"))
    }

    pub async fn guest(&self, name: &str) -> Result<Session, String> {
        let (cookie, body) = self.post("/api/auth/guest", None, json!({"name": name})).await?;
        Self::session(cookie, &body)
    }

    /// Signs in as the admin `email`, which must exist already (bench/run.sh
    /// makes it with `switchboard user create --admin`).
    pub async fn admin(&self, email: &str, password: &str) -> Result<Session, String> {
        let login = json!({"login": email, "password": password});
        let (cookie, body) = self.post("/api/auth/login", None, login).await?;
        if body["user"]["is_admin"] != true {
            return Err(format!(
                "{email} is not an admin: create it with `switchboard user create --admin`"
            ));
        }
        Self::session(cookie, &body)
    }

    pub async fn create_room(&self, owner: &Session, name: &str) -> Result<String, String> {
        let (_, body) = self.post("/api/rooms", Some(owner), json!({"name": name})).await?;
        body["code"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("no room code in {body}"))
    }

    pub async fn kick(&self, admin: &Session, sid: &str) -> Result<(), String> {
        self.post(
            &format!("/api/admin/sessions/{sid}/kick"),
            Some(admin),
            json!({"reason": "bench"}),
        )
        .await
        .map(|_| ())
    }

    /// Opens `/ws` as `session`, from `source` when given; returns the
    /// socket and its `hello` frame.
    pub async fn connect(&self, session: &Session, source: Option<Ipv4Addr>) -> Result<(Ws, Value), String> {
        let socket = TcpSocket::new_v4().map_err(|e| format!("socket: {e}"))?;
        if let Some(ip) = source {
            socket
                .bind(SocketAddr::from((ip, 0)))
                .map_err(|e| format!("bind {ip}: {e}"))?;
        }
        let stream = socket.connect(self.addr).await.map_err(|e| format!("connect: {e}"))?;
        // Frames go out as they are written, as a browser's do.
        stream.set_nodelay(true).map_err(|e| format!("nodelay: {e}"))?;
        let mut request = format!("ws://{}/ws", self.addr)
            .into_client_request()
            .map_err(|e| e.to_string())?;
        let headers = request.headers_mut();
        headers.insert(
            "Cookie",
            format!("sb_session={}", session.cookie).parse().map_err(|_| "cookie")?,
        );
        headers.insert("Origin", self.base.parse().map_err(|_| "origin")?);
        let (mut ws, _) = tokio_tungstenite::client_async(request, stream)
            .await
            .map_err(|e| format!("upgrade: {e}"))?;
        let hello = next_of(&mut ws, "hello").await?;
        Ok((ws, hello))
    }
}

pub async fn send(ws: &mut Ws, frame: &Value) -> Result<(), String> {
    ws.send(Message::Text(frame.to_string().into()))
        .await
        .map_err(|e| format!("send: {e}"))
}

/// Joins `room` and waits for `joined`.
pub async fn join(ws: &mut Ws, room: &str) -> Result<(), String> {
    send(ws, &json!({"type": "join", "room": room})).await?;
    next_of(ws, "joined").await.map(|_| ())
}

/// Reads until a frame of type `ty` (setup only: the caller bounds it).
pub async fn next_of(ws: &mut Ws, ty: &str) -> Result<Value, String> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => {
                let frame: Value = serde_json::from_str(text.as_str()).map_err(|e| e.to_string())?;
                if frame["type"] == ty {
                    return Ok(frame);
                }
                if frame["type"] == "error" {
                    return Err(format!("server error while waiting for {ty}: {frame}"));
                }
            }
            Some(Ok(Message::Close(frame))) => return Err(format!("closed while waiting for {ty}: {frame:?}")),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(format!("read: {e}")),
            None => return Err(format!("eof while waiting for {ty}")),
        }
    }
}
