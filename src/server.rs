//! Starting the server: the shared state and the singletons are built once,
//! here, before `HttpServer::new`; every worker gets clones of their handles.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix::Actor;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use tracing_actix_web::TracingLogger;

use crate::auth::captcha::CaptchaStore;
use crate::auth::limiter::SlidingWindow;
use crate::auth::oidc::{OidcError, OidcProvider};
use crate::config::{Config, ConfigError};
use crate::db::writer::Writer;
use crate::db::{self, DbError};
use crate::http::{self, guard};
use crate::janitor::Janitor;
use crate::metrics::Metrics;
use crate::realtime::monitor::AdminMonitor;
use crate::realtime::registry::{SessionRegistry, Shutdown};
use crate::state::AppState;
use crate::systemd::{self, Notifier};

/// Seconds that in-flight requests get to finish after SIGTERM; with the
/// sockets' goodbye and the final flush, the process exits within 10 s.
const SHUTDOWN_GRACE_SECS: u64 = 7;
/// Time for sessions to send their goodbye frames before the server stops.
const GOODBYE_GRACE: Duration = Duration::from_millis(300);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("database {path}: {source}")]
    Database { path: String, source: DbError },
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("OIDC: {0}")]
    Oidc(#[from] OidcError),
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
    let listener = TcpListener::bind(config.bind).map_err(|source| StartError::Bind {
        addr: config.bind,
        source,
    })?;
    let bound = listener.local_addr()?;
    let public = config.public_base(bound);
    let origin = public.origin().ascii_serialization();
    let oidc = config.oidc.clone().map(|c| OidcProvider::new(c, &public)).transpose()?;

    let database_error = |source| StartError::Database {
        path: config.database_path.display().to_string(),
        source,
    };
    let writer = Writer::start(pool.clone()).map_err(database_error)?;
    let metrics = Arc::new(Metrics::default());
    let monitor = AdminMonitor::default().start();
    let registry = SessionRegistry::new(monitor.clone(), writer.clone(), pool.clone(), metrics.clone()).start();

    let state = web::Data::new(AppState {
        failed_logins: SlidingWindow::per_minute(config.login_rate_per_min),
        guest_logins: SlidingWindow::per_minute(config.guest_rate_per_min),
        captcha: CaptchaStore::default(),
        metrics,
        origin: origin.clone(),
        secret,
        pool: pool.clone(),
        oidc,
        writer: writer.clone(),
        registry: registry.clone(),
        monitor,
        config,
    });
    Janitor::new(
        pool,
        state.lifetimes(),
        state.config.retention,
        state.config.uploads_dir(),
    )
    .start();

    tracing::info!(addr = %bound, public_url = %public, database = %state.config.database_path.display(), "listening");
    let app_state = state.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(app_state.clone())
            .wrap(from_fn(guard::csrf))
            .wrap(guard::security_headers(&origin))
            .wrap(TracingLogger::default())
            .configure(http::configure)
            .default_service(web::to(http::not_found))
    })
    // Frames leave as soon as they are written: Nagle's algorithm would hold
    // small frames back for the peer's delayed ACK (tens of milliseconds).
    .tcp_nodelay(true)
    .listen(listener)?
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
