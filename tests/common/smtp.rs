//! A real SMTP server for the mail tests (tests/smtp/server.mjs): started on a
//! loopback port, each mail it receives read back as JSON.

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::Notify;

/// How long a test waits for a mail. Generous: a mail that comes waits for
/// nothing, and a retry after a failure is due 5 s later.
pub const MAIL_WAIT: Duration = Duration::from_secs(60);

pub struct MailServer {
    pub port: u16,
    mails: Arc<Mutex<Vec<Value>>>,
    arrived: Arc<Notify>,
    child: Child,
}

/// A loopback port that nothing listens on (for an SMTP server that is down).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// `smtp://127.0.0.1:PORT`, plain.
pub fn smtp_url(port: u16) -> String {
    format!("smtp://127.0.0.1:{port}")
}

impl MailServer {
    /// On a free port.
    pub async fn start() -> MailServer {
        Self::start_with(0, &[]).await
    }

    /// On `port` (0: a free one), with extra settings (SMTP_USER, SMTP_REJECT...).
    pub async fn start_with(port: u16, env: &[(&str, &str)]) -> MailServer {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/smtp/server.mjs");
        let mut child = Command::new("node")
            .arg(&script)
            .env("SMTP_PORT", port.to_string())
            .env("SMTP_EXIT_ON_STDIN_EOF", "1")
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs tests/smtp/server.mjs (npm ci --prefix tests first)");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("the SMTP server did not start within 30 s")
            .unwrap()
            .expect("the SMTP server exited before listening");
        let listening: Value = serde_json::from_str(&first).unwrap();
        assert_eq!(listening["event"], "listening", "{first}");
        let port = listening["port"].as_u64().unwrap() as u16;
        let mails = Arc::new(Mutex::new(Vec::new()));
        let arrived = Arc::new(Notify::new());
        let (store, notify) = (mails.clone(), arrived.clone());
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let event: Value = serde_json::from_str(&line).unwrap();
                if event["event"] == "mail" {
                    store.lock().unwrap().push(event);
                    notify.notify_waiters();
                }
            }
        });
        MailServer {
            port,
            mails,
            arrived,
            child,
        }
    }

    pub fn url(&self) -> String {
        smtp_url(self.port)
    }

    /// Every mail received so far, oldest first.
    pub fn mails(&self) -> Vec<Value> {
        self.mails.lock().unwrap().clone()
    }

    /// The mails received so far for `address`.
    pub fn mails_to(&self, address: &str) -> Vec<Value> {
        self.mails()
            .into_iter()
            .filter(|m| m["envelope_to"].as_array().unwrap().iter().any(|to| to == address))
            .collect()
    }

    /// Waits (at most MAIL_WAIT) for the `n`th mail (1-based) to `address`
    /// whose subject contains `subject`.
    pub async fn nth_mail(&self, n: usize, address: &str, subject: &str) -> Value {
        let deadline = tokio::time::Instant::now() + MAIL_WAIT;
        loop {
            let arrived = self.arrived.notified();
            let matching: Vec<Value> = self
                .mails_to(address)
                .into_iter()
                .filter(|m| m["subject"].as_str().unwrap_or("").contains(subject))
                .collect();
            if let Some(mail) = matching.get(n - 1) {
                return mail.clone();
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                panic!(
                    "no mail {n} to {address} about {subject:?} within {MAIL_WAIT:?}; received: {:#?}",
                    self.mails()
                );
            }
        }
    }

    /// Waits for the first mail to `address` whose subject contains `subject`.
    pub async fn mail(&self, address: &str, subject: &str) -> Value {
        self.nth_mail(1, address, subject).await
    }

    /// Stops the server (the port is free again afterwards).
    pub async fn stop(mut self) {
        self.child.start_kill().unwrap();
        self.child.wait().await.unwrap();
    }
}

/// The first address in the mail's text that starts with `base` + `path`
/// (such as `/verify-email?token=`), checked to appear in the HTML too.
pub fn link(mail: &Value, base: &str, path: &str) -> String {
    let start = format!("{base}{path}");
    let text = mail["text"].as_str().unwrap();
    let at = text
        .find(&start)
        .unwrap_or_else(|| panic!("no link {start} in the mail: {text}"));
    let url: String = text[at..].chars().take_while(|c| !c.is_whitespace()).collect();
    let html = mail["html"].as_str().unwrap();
    assert!(
        html.contains(&format!("href=\"{url}\"")),
        "the HTML has the same link: {html}"
    );
    url
}

/// The `token` of a link such as `.../verify-email?token=T`.
pub fn token_of(url: &str) -> String {
    url.split_once("token=").unwrap().1.to_owned()
}
