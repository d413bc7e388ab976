//! Starting the server: the shared state and the singletons are built once,
//! here, before any worker starts; every worker gets clones of their
//! handles. The HTTP service is assembled from actix-http directly (rather
//! than `HttpServer`) so that WebSocket upgrades take their socket away
//! from the HTTP/1 dispatcher (see `http::upgrade`).

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix::Actor;
use actix_http::HttpService;
use actix_service::map_config;
use actix_web::dev::AppConfig;
use actix_web::middleware::from_fn;
use actix_web::{web, App};
use tracing_actix_web::TracingLogger;

use crate::auth::captcha::CaptchaStore;
use crate::auth::limiter::SlidingWindow;
use crate::auth::oidc::{OidcError, OidcProvider};
use crate::auth::password::PasswordJobs;
use crate::auth::sealed::SealingKey;
use crate::auth::totp;
use crate::config::{Config, ConfigError};
use crate::db::writer::Writer;
use crate::db::{self, DbError};
use crate::http::{self, guard, upgrade};
use crate::janitor::Janitor;
use crate::mail::mailer::Mailer;
use crate::mail::smtp::{self, MailError, SmtpSender};
use crate::mail::{self as outgoing, Postbox};
use crate::media::MediaConfig;
use crate::metrics::Metrics;
use crate::realtime::monitor::AdminMonitor;
use crate::realtime::protocol::VoiceInfo;
use crate::realtime::registry::{SessionRegistry, Shutdown};
use crate::realtime::session::SessionEnv;
use crate::realtime::sfu::Sfu;
use crate::state::AppState;
use crate::systemd::{self, Notifier};

/// Seconds that in-flight requests get to finish after SIGTERM; with the
/// sockets' goodbye and the final flush, the process exits within 10 s.
const SHUTDOWN_GRACE_SECS: u64 = 7;
/// Time for sessions to send their goodbye frames before the server stops.
const GOODBYE_GRACE: Duration = Duration::from_millis(300);
/// actix-web's defaults for HTTP connections: idle keep-alive, time to send
/// a request head, time for the client to close after a final response.
const KEEP_ALIVE: Duration = Duration::from_secs(5);
const REQUEST_HEAD_TIMEOUT: Duration = Duration::from_secs(5);
const CLIENT_DISCONNECT_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("database {path}: {source}")]
    Database { path: String, source: DbError },
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("cannot open the SFU's UDP port {port} (SFU_UDP_PORT): {source}")]
    Sfu { port: u16, source: std::io::Error },
    #[error("OIDC: {0}")]
    Oidc(#[from] OidcError),
    #[error("mail: {0}")]
    Mail(#[from] MailError),
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
}

/// Runs the server until it is stopped by a signal.
pub async fn run(config: Config) -> Result<(), StartError> {
    let secret = config.resolve_secret_key()?;
    let pool = db::open(&config.database_path).map_err(|source| StartError::Database {
        path: config.database_path.display().to_string(),
        source,
    })?;
    match http::files::remove_partial_uploads(&config.data_dir) {
        Ok(0) => {}
        Ok(removed) => tracing::info!(removed, "removed partial uploads cut off by an earlier run"),
        Err(error) => tracing::warn!(%error, "cannot remove partial uploads of an earlier run"),
    }
    let listener = TcpListener::bind(config.bind).map_err(|source| StartError::Bind {
        addr: config.bind,
        source,
    })?;
    let bound = listener.local_addr()?;
    let public = config.public_base(bound);
    let origin = public.origin().ascii_serialization();
    let oidc = config
        .oidc
        .clone()
        .map(|c| OidcProvider::new(c, &public, &secret))
        .transpose()?;

    let database_error = |source| StartError::Database {
        path: config.database_path.display().to_string(),
        source,
    };
    let totp_key = SealingKey::derive(&secret, totp::SEALING_PURPOSE);
    seal_plain_totp_secrets(&pool, &totp_key).map_err(database_error)?;
    let metrics = Arc::new(Metrics::default());
    let writer = Writer::start(pool.clone(), metrics.clone()).map_err(database_error)?;
    let monitor = AdminMonitor::default().start();
    let registry = SessionRegistry::new(monitor, writer.clone(), pool.clone(), metrics.clone()).start();
    let sfu = start_sfu(&config, metrics.clone())?;
    let mail = start_mailer(&config, &public, &secret, &pool, &metrics)?;

    let session_env = Arc::new(SessionEnv {
        pool: pool.clone(),
        writer: writer.clone(),
        registry: registry.clone(),
        metrics: metrics.clone(),
        ice: (&config).into(),
        chat_rate_per_sec: config.chat_rate_per_sec,
        chat_burst: config.chat_burst,
        outbox_bytes: config.ws_outbox_bytes,
        require_verified_email: config.require_verified_email,
        // The registry and the rooms were started on this (the system's)
        // thread: sessions join them there.
        live: actix::System::current().arbiter().clone(),
        sfu,
        voice: VoiceInfo {
            mode: config.voice_mode.as_str(),
            mesh_limit: config.mesh_limit,
        },
    });
    let state = web::Data::new(AppState {
        failed_logins: SlidingWindow::per_minute(config.login_rate_per_min),
        guest_logins: SlidingWindow::per_minute(config.guest_rate_per_min),
        uploads: SlidingWindow::per_minute(config.upload_rate_per_min),
        registrations: SlidingWindow::per_minute(config.register_rate_per_min),
        captchas: SlidingWindow::per_minute(config.captcha_rate_per_min),
        oidc_starts: SlidingWindow::per_minute(config.oidc_rate_per_min),
        password_changes: SlidingWindow::per_minute(config.password_change_rate_per_min),
        mails: SlidingWindow::per_minute(config.mail_rate_per_min),
        mail,
        public_base: public.as_str().trim_end_matches('/').to_owned(),
        password_jobs: PasswordJobs::new(metrics.clone()),
        totp_key,
        captcha: CaptchaStore::default(),
        metrics,
        origin: origin.clone(),
        secret,
        pool: pool.clone(),
        oidc,
        writer: writer.clone(),
        registry: registry.clone(),
        session_env,
        config,
    });
    Janitor::new(
        pool,
        state.lifetimes(),
        state.config.retention,
        state.config.uploads_dir(),
        registry.clone().recipient(),
    )
    .start();

    tracing::info!(addr = %bound, public_url = %public, database = %state.config.database_path.display(), "listening");
    let app_state = state.clone();
    let app = move || {
        App::new()
            .app_data(app_state.clone())
            .wrap(from_fn(guard::csrf))
            .wrap(guard::security_headers(&origin))
            .wrap(TracingLogger::default())
            .configure(http::configure)
            .default_service(web::to(http::not_found))
    };
    let server = actix_server::Server::build()
        .listen("switchboard", listener, move || {
            let for_worker = |app: App<_>| map_config(app, |_| AppConfig::default());
            HttpService::build()
                // Frames leave as soon as they are written: Nagle's algorithm
                // would hold small frames back for the peer's delayed ACK.
                .tcp_nodelay(true)
                .keep_alive(KEEP_ALIVE)
                .client_request_timeout(REQUEST_HEAD_TIMEOUT)
                .client_disconnect_timeout(CLIENT_DISCONNECT_TIMEOUT)
                .upgrade(upgrade::factory(for_worker(app())))
                .finish(for_worker(app()))
                .tcp()
        })?
        .shutdown_timeout(SHUTDOWN_GRACE_SECS)
        .disable_signals()
        .run();
    let notifier = Notifier::from_env().map(Arc::new);
    if let Some(notifier) = &notifier {
        notifier.notify(&format!("READY=1\nSTATUS=listening on {bound}"));
        if let Some(every) = systemd::watchdog_interval() {
            actix_web::rt::spawn(feed_watchdog(notifier.clone(), every, writer.clone()));
        }
    }
    actix_web::rt::spawn(stop_on_signal(server.handle(), registry, notifier));
    server.await?;
    // Everything queued (audit events of the last sessions) is committed.
    writer.flush().await;
    tracing::info!("stopped");
    Ok(())
}

/// The SFU, unless voice is peer-to-peer only.
fn start_sfu(config: &Config, metrics: Arc<Metrics>) -> Result<Option<actix::Addr<Sfu>>, StartError> {
    if !config.voice_mode.has_sfu() {
        return Ok(None);
    }
    let media = MediaConfig {
        port: config.sfu_udp_port,
        public_ip: config.sfu_public_ip,
    };
    let (sfu, handle) = Sfu::start(media, metrics).map_err(|source| StartError::Sfu {
        port: config.sfu_udp_port,
        source,
    })?;
    if config.sfu_public_ip.is_none() {
        tracing::warn!(announced = %handle.announced, "SFU_PUBLIC_IP is not set: announcing a guessed address");
    }
    tracing::info!(addr = %handle.local_addr, announced = %handle.announced, mode = config.voice_mode.as_str(), "SFU listening");
    Ok(Some(sfu))
}

/// The mailer and the postbox that feeds it, when SMTP is configured; says
/// once, at start, when it is not.
fn start_mailer(
    config: &Config,
    public: &url::Url,
    secret: &crate::config::Secret,
    pool: &db::Pool,
    metrics: &Arc<Metrics>,
) -> Result<Option<Postbox>, StartError> {
    let Some(smtp_config) = &config.smtp else {
        tracing::info!("mail is off (SMTP_URL is not set): no verification, reset or welcome mails");
        return Ok(None);
    };
    let from = smtp::sender(config, public)?;
    let sender = SmtpSender::new(smtp_config, from.clone())?;
    let key = || SealingKey::derive(secret, outgoing::SEALING_PURPOSE);
    let mailer = Mailer::new(pool.clone(), sender, key(), metrics.clone()).start();
    tracing::info!(host = %smtp_config.host, port = smtp_config.port, from = %from, "mail is on");
    Ok(Some(Postbox::new(public, &config.instance_name, key(), mailer)))
}

/// Two-factor secrets written before they were sealed at rest are sealed
/// now, after the schema migrations and before any request can read them.
fn seal_plain_totp_secrets(pool: &db::Pool, key: &SealingKey) -> Result<(), DbError> {
    let mut conn = pool.get()?;
    let sealed =
        db::users::seal_plain_totp_secrets(&mut conn, totp::SEALED_PREFIX, |plain| totp::seal_secret(key, plain))?;
    if sealed > 0 {
        tracing::info!(accounts = sealed, "sealed two-factor secrets stored in clear");
    }
    Ok(())
}

/// Tells systemd's watchdog that the server is alive every `every`: after a
/// round trip through the database writer, from the thread the registry and
/// rooms run on, so a wedged or dead writer or event loop stops the pings
/// and systemd restarts the service.
async fn feed_watchdog(notifier: Arc<Notifier>, every: Duration, writer: Writer) {
    loop {
        actix_web::rt::time::sleep(every).await;
        if writer.round_trip().await {
            notifier.notify("WATCHDOG=1");
        } else {
            tracing::error!("the database writer has stopped: not feeding systemd's watchdog");
        }
    }
}

/// On SIGTERM or Ctrl-C: tell every session the server is restarting, then
/// stop accepting and let in-flight requests finish.
async fn stop_on_signal(
    server: actix_web::dev::ServerHandle,
    registry: actix::Addr<SessionRegistry>,
    notifier: Option<Arc<Notifier>>,
) {
    wait_for_signal().await;
    tracing::info!("stopping on signal");
    if let Some(notifier) = notifier {
        notifier.notify("STOPPING=1");
    }
    let told = registry
        .send(Shutdown {
            reason: "the server is restarting; reconnect in a moment".into(),
        })
        .await
        .unwrap_or(0);
    tracing::info!(sessions = told, "sessions told to reconnect");
    actix_web::rt::time::sleep(GOODBYE_GRACE).await;
    server.stop(true).await;
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGTERM; Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
