//! Starting the server: the shared state and the singletons are built once,
//! here, before `HttpServer::new`; every worker gets clones of their handles.

use std::net::{SocketAddr, TcpListener};

use actix::Actor;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use tracing_actix_web::TracingLogger;

use crate::auth::captcha::CaptchaStore;
use crate::auth::limiter::SlidingWindow;
use crate::auth::oidc::{OidcError, OidcProvider};
use crate::config::{Config, ConfigError};
use crate::db::{self, DbError};
use crate::http::{self, guard};
use crate::janitor::Janitor;
use crate::metrics::Metrics;
use crate::state::AppState;

/// Seconds that in-flight requests get to finish after SIGTERM.
const SHUTDOWN_GRACE_SECS: u64 = 8;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("database {path}: {source}")]
    Database { path: String, source: DbError },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
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
    let oidc = config
        .oidc
        .clone()
        .map(|c| OidcProvider::new(c, &public))
        .transpose()?;

    let state = web::Data::new(AppState {
        failed_logins: SlidingWindow::per_minute(config.login_rate_per_min),
        guest_logins: SlidingWindow::per_minute(config.guest_rate_per_min),
        captcha: CaptchaStore::default(),
        metrics: Metrics::default(),
        origin: origin.clone(),
        secret,
        pool: pool.clone(),
        oidc,
        config,
    });
    Janitor::new(pool, state.lifetimes()).start();

    tracing::info!(addr = %bound, public_url = %public, database = %state.config.database_path.display(), "listening");
    let app_state = state.clone();
    HttpServer::new(move || {
        App::new()
            .app_data(app_state.clone())
            .wrap(from_fn(guard::csrf))
            .wrap(guard::security_headers(&origin))
            .wrap(TracingLogger::default())
            .configure(http::configure)
            .default_service(web::to(http::not_found))
    })
    .listen(listener)?
    .shutdown_timeout(SHUTDOWN_GRACE_SECS)
    .run()
    .await?;
    tracing::info!("stopped");
    Ok(())
}
