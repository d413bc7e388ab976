//! A real nginx in front of the real server, running the site file that
//! deploy/ ships: a foreground nginx with its own prefix, pid, temp and log
//! paths in a temporary folder, on free loopback ports, stopped when
//! dropped (a failing test included). Certificates come from a test CA made
//! with openssl; clients trust that CA and nothing else.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a failed fixture step should fail the test"
)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::cookie::Jar;
use tempfile::TempDir;

use crate::common::{Api, Ws};

/// The name the tests reach nginx by; resolved to 127.0.0.1 by each client.
pub const SERVER_NAME: &str = "switchboard.test";
const SHIPPED_SITE: &str = include_str!("../../deploy/nginx-switchboard.conf");

/// A test CA and a certificate it issued for SERVER_NAME.
pub struct Tls {
    _dir: TempDir,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Tls {
    pub fn generate() -> Tls {
        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str| dir.path().join(name);
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        openssl(
            &[
                &["req", "-x509"][..],
                &ec,
                &["-days", "2", "-subj", "/CN=Switchboard test CA"],
                &["-addext", "basicConstraints=critical,CA:TRUE"],
                &["-addext", "keyUsage=critical,keyCertSign,cRLSign"],
            ]
            .concat(),
            &[("-keyout", path("ca.key")), ("-out", path("ca.pem"))],
        );
        openssl(
            &[&["req"][..], &ec, &["-subj", &format!("/CN={SERVER_NAME}")]].concat(),
            &[("-keyout", path("site.key")), ("-out", path("site.csr"))],
        );
        std::fs::write(
            path("site.ext"),
            format!(
                "subjectAltName=DNS:{SERVER_NAME}\nbasicConstraints=CA:FALSE\n\
                 keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n"
            ),
        )
        .unwrap();
        openssl(
            &["x509", "-req", "-days", "2", "-CAcreateserial"],
            &[
                ("-in", path("site.csr")),
                ("-CA", path("ca.pem")),
                ("-CAkey", path("ca.key")),
                ("-extfile", path("site.ext")),
                ("-out", path("site.pem")),
            ],
        );
        Tls {
            ca: path("ca.pem"),
            cert: path("site.pem"),
            key: path("site.key"),
            _dir: dir,
        }
    }

    /// A rustls client configuration that trusts only the test CA.
    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::CertificateDer;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from_pem_file(&self.ca).unwrap()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Arc::new(config)
    }
}

fn openssl(args: &[&str], paths: &[(&str, PathBuf)]) {
    let mut command = Command::new("openssl");
    command.args(args);
    for (flag, path) in paths {
        command.arg(flag).arg(path);
    }
    let output = command.output().expect("openssl is installed (tests/setup.sh)");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// What the test changes in the shipped site, and nothing else.
pub struct Site<'a> {
    /// The server's `host:port`.
    pub upstream: &'a str,
    pub http_port: u16,
    pub https_port: u16,
    pub tls: &'a Tls,
    /// Replaces the /ws location's `proxy_read_timeout` and
    /// `proxy_send_timeout` (seconds), so a test can outwait them.
    pub ws_timeout_secs: u32,
}

impl Site<'_> {
    /// `https://switchboard.test:PORT`: what browsers use, and PUBLIC_URL.
    pub fn public_url(&self) -> String {
        format!("https://{SERVER_NAME}:{}", self.https_port)
    }
}

/// Two free ports on 127.0.0.1 (also free on ::1, where the site listens too).
pub fn free_ports() -> (u16, u16) {
    let free = || loop {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        if TcpListener::bind(("::1", port)).is_ok() {
            return port;
        }
    };
    loop {
        let (http, https) = (free(), free());
        if http != https {
            return (http, https);
        }
    }
}

/// The shipped site with exactly these lines replaced: the upstream
/// address, the server names, the listen addresses (loopback, test ports),
/// the certificate paths and the WebSocket timeouts. Each shipped line must
/// be found as many times as expected, so a change to the site file that
/// this function does not know about fails the test instead of going
/// untested.
pub fn site_for_test(shipped: &str, site: &Site) -> String {
    let (http, https) = (site.http_port, site.https_port);
    let timeout = site.ws_timeout_secs;
    let replacements: Vec<(&str, String, usize)> = vec![
        ("server 127.0.0.1:8080;", format!("server {};", site.upstream), 1),
        (
            "server_name switchboard.example.org;",
            format!("server_name {SERVER_NAME};"),
            2,
        ),
        ("listen 80;", format!("listen 127.0.0.1:{http};"), 1),
        ("listen [::]:80;", format!("listen [::1]:{http};"), 1),
        (
            "listen 443 ssl http2;",
            format!("listen 127.0.0.1:{https} ssl http2;"),
            1,
        ),
        (
            "listen [::]:443 ssl http2;",
            format!("listen [::1]:{https} ssl http2;"),
            1,
        ),
        (
            "ssl_certificate     /etc/letsencrypt/live/switchboard.example.org/fullchain.pem;",
            format!("ssl_certificate     {};", site.tls.cert.display()),
            1,
        ),
        (
            "ssl_certificate_key /etc/letsencrypt/live/switchboard.example.org/privkey.pem;",
            format!("ssl_certificate_key {};", site.tls.key.display()),
            1,
        ),
        (
            "proxy_read_timeout 3600s;",
            format!("proxy_read_timeout {timeout}s;"),
            1,
        ),
        (
            "proxy_send_timeout 3600s;",
            format!("proxy_send_timeout {timeout}s;"),
            1,
        ),
    ];
    let mut seen = vec![0; replacements.len()];
    let lines: Vec<String> = shipped
        .lines()
        .map(|line| {
            let directive = line.trim();
            match replacements.iter().position(|(from, _, _)| *from == directive) {
                Some(i) => {
                    seen[i] += 1;
                    let indent = &line[..line.len() - line.trim_start().len()];
                    format!("{indent}{}", replacements[i].1)
                }
                None => line.to_owned(),
            }
        })
        .collect();
    for ((from, _, expected), found) in replacements.iter().zip(seen) {
        assert_eq!(
            found, *expected,
            "deploy/nginx-switchboard.conf: expected {expected} line(s) `{from}`, found {found}: \
             update site_for_test with the site file"
        );
    }
    lines.join("\n") + "\n"
}

/// The main configuration around the site: everything nginx writes stays
/// in `dir`. One process (master_process off), so it cannot leave workers
/// behind, and none of them needs the rights of another user.
fn main_config(dir: &Path) -> String {
    let d = dir.display();
    format!(
        "master_process off;\n\
         daemon off;\n\
         pid {d}/nginx.pid;\n\
         error_log {d}/error.log warn;\n\
         events {{ worker_connections 512; }}\n\
         http {{\n\
         \x20   access_log {d}/access.log;\n\
         \x20   client_body_temp_path {d}/client_body;\n\
         \x20   proxy_temp_path {d}/proxy;\n\
         \x20   fastcgi_temp_path {d}/fastcgi;\n\
         \x20   uwsgi_temp_path {d}/uwsgi;\n\
         \x20   scgi_temp_path {d}/scgi;\n\
         \x20   include {d}/switchboard.conf;\n\
         }}\n"
    )
}

fn nginx_binary() -> PathBuf {
    std::env::var_os("SB_NGINX")
        .map(PathBuf::from)
        .or_else(|| Some(PathBuf::from("/usr/sbin/nginx")).filter(|p| p.exists()))
        .unwrap_or_else(|| PathBuf::from("nginx"))
}

pub struct Nginx {
    child: Child,
    dir: TempDir,
    /// Where clients connect: 127.0.0.1 and the https port.
    pub https: SocketAddr,
    pub base: String,
}

impl Nginx {
    pub async fn start(site: &Site<'_>) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("switchboard.conf"), site_for_test(SHIPPED_SITE, site)).unwrap();
        let conf = dir.path().join("nginx.conf");
        std::fs::write(&conf, main_config(dir.path())).unwrap();
        let error_log = dir.path().join("error.log");
        let run = |extra: &[&str]| {
            let mut command = Command::new(nginx_binary());
            command
                .arg("-p")
                .arg(dir.path())
                .arg("-c")
                .arg(&conf)
                .arg("-e")
                .arg(&error_log)
                .args(extra);
            command
        };
        let test = run(&["-t", "-q"])
            .output()
            .expect("nginx is installed (tests/setup.sh installs Debian's nginx)");
        assert!(
            test.status.success(),
            "nginx -t refused the site: {}",
            String::from_utf8_lossy(&test.stderr)
        );
        let child = run(&[])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let https = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), site.https_port);
        let mut nginx = Nginx {
            child,
            dir,
            https,
            base: site.public_url(),
        };
        nginx.wait_until_listening().await;
        nginx
    }

    async fn wait_until_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("nginx exited ({status}): {}", self.error_log());
            }
            if tokio::net::TcpStream::connect(self.https).await.is_ok() {
                return;
            }
            assert!(Instant::now() < deadline, "nginx did not listen: {}", self.error_log());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    /// SIGTERM (nginx's fast shutdown), then SIGKILL if it has not gone
    /// within five seconds.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A browser-like client of nginx: it trusts the test CA, reaches
/// SERVER_NAME at 127.0.0.1, connects from `from`, and sends `headers` on
/// every request (a forged X-Forwarded-For, say).
pub fn client(nginx: &Nginx, tls: &Tls, from: IpAddr, headers: &[(&str, &str)]) -> Api {
    let mut defaults = reqwest::header::HeaderMap::new();
    for (name, value) in headers {
        defaults.insert(
            reqwest::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    let jar = Arc::new(Jar::default());
    let http = reqwest::Client::builder()
        .use_preconfigured_tls((*tls.client_config()).clone())
        .resolve(SERVER_NAME, nginx.https)
        .local_address(from)
        .default_headers(defaults)
        .cookie_provider(jar.clone())
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    Api {
        base: nginx.base.clone(),
        http,
        jar,
        csrf: None,
        // Forged headers, when a test wants them, go in `headers` above:
        // through nginx the server must ignore them.
        forwarded_for: None,
    }
}

/// A WebSocket through nginx over TLS as `api`'s user, from `from`.
pub async fn socket(api: &Api, nginx: &Nginx, tls: &Tls, from: IpAddr, headers: &[(&str, &str)]) -> Ws {
    let tcp = tokio::net::TcpSocket::new_v4().unwrap();
    tcp.bind(SocketAddr::new(from, 0)).unwrap();
    let stream = tcp.connect(nginx.https).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let name = rustls::pki_types::ServerName::try_from(SERVER_NAME).unwrap();
    let tls_stream = tokio_rustls::TlsConnector::from(tls.client_config())
        .connect(name, stream)
        .await
        .unwrap();
    Ws::connect_over(api, tokio_tungstenite::MaybeTlsStream::Rustls(tls_stream), headers).await
}
