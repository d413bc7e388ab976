//! Liveness and metrics for operators and load balancers.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::db;
use crate::error::ApiError;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/metrics", web::get().to(metrics));
}

/// 200 when the database answers a query.
async fn healthz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    db::run(&state.pool, |conn| -> Result<i64, ApiError> {
        Ok(conn
            .query_row("SELECT 1", [], |r| r.get(0))
            .map_err(db::DbError::from)?)
    })
    .await?;
    Ok(HttpResponse::Ok().json(json!({"status": "ok"})))
}

/// Prometheus text; with METRICS_TOKEN set, only for `Authorization:
/// Bearer <token>` (401 otherwise).
async fn metrics(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if let Some(token) = &state.config.metrics_token {
        let offered = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !bool::from(offered.as_bytes().ct_eq(token.expose().as_bytes())) {
            return Err(ApiError::Unauthenticated);
        }
    }
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render()))
}
