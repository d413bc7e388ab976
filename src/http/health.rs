//! Liveness and metrics for operators and load balancers.

use actix_web::{web, HttpResponse};
use serde_json::json;

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

async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render())
}
