//! The audit log, filtered and paged.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use serde::Deserialize;
use serde_json::json;

use crate::auth::perm;
use crate::auth::session::Auth;
use crate::db::{self, audit, filter::Filter, filter::DEFAULT_PER_PAGE, filter::MAX_PER_PAGE, messages};
use crate::error::ApiError;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/admin/logs", web::get().to(logs))
        .route("/api/admin/messages", web::get().to(messages_log));
}

/// `?user=&ip=&room=&action=&from=&to=&q=&page=&per_page=`; empty values
/// mean "any". Dates are RFC 3339 times or plain days (`2026-11-21`).
#[derive(Debug, Default, Deserialize)]
pub struct FilterQuery {
    user: Option<String>,
    ip: Option<String>,
    room: Option<String>,
    action: Option<String>,
    from: Option<String>,
    to: Option<String>,
    q: Option<String>,
    page: Option<u32>,
    per_page: Option<u32>,
}

impl FilterQuery {
    pub fn into_filter(self) -> Result<Filter, ApiError> {
        let present = |v: Option<String>| v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
        let per_page = self.per_page.unwrap_or(DEFAULT_PER_PAGE);
        if !(1..=MAX_PER_PAGE).contains(&per_page) {
            return Err(ApiError::bad_request(format!("per_page is 1 to {MAX_PER_PAGE}")));
        }
        Ok(Filter {
            user: present(self.user),
            ip: present(self.ip),
            room: present(self.room),
            action: present(self.action),
            from: present(self.from).map(|t| parse_time(&t, false)).transpose()?,
            to: present(self.to).map(|t| parse_time(&t, true)).transpose()?,
            q: present(self.q),
            page: self.page.unwrap_or(1).max(1),
            per_page,
        })
    }
}

/// Milliseconds since the epoch; a plain day means its first (or, for the
/// end of a range, its last) millisecond.
fn parse_time(text: &str, end_of_day: bool) -> Result<i64, ApiError> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(time.with_timezone(&Utc).timestamp_millis());
    }
    let day = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| ApiError::bad_request(format!("{text:?} is not an RFC 3339 time or a YYYY-MM-DD day")))?;
    let time = if end_of_day {
        NaiveTime::from_hms_milli_opt(23, 59, 59, 999)
    } else {
        Some(NaiveTime::MIN)
    };
    Ok(day
        .and_time(time.unwrap_or(NaiveTime::MIN))
        .and_utc()
        .timestamp_millis())
}

async fn logs(
    state: web::Data<AppState>,
    auth: Auth,
    query: web::Query<FilterQuery>,
) -> Result<HttpResponse, ApiError> {
    auth.require(perm::ADMIN_LOGS)?;
    let filter = query.into_inner().into_filter()?;
    let page = filter.page;
    let (entries, total) = db::run(&state.pool, move |conn| audit::search(conn, &filter)).await?;
    Ok(HttpResponse::Ok().json(json!({"entries": entries, "total": total, "page": page})))
}

/// Every stored chat message with its sender's IP, filtered like the audit log.
async fn messages_log(
    state: web::Data<AppState>,
    auth: Auth,
    query: web::Query<FilterQuery>,
) -> Result<HttpResponse, ApiError> {
    auth.require(perm::ADMIN_MESSAGES)?;
    let filter = query.into_inner().into_filter()?;
    let page = filter.page;
    let (found, total) = db::run(&state.pool, move |conn| messages::search(conn, &filter)).await?;
    Ok(HttpResponse::Ok().json(json!({"messages": found, "total": total, "page": page})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_cover_the_whole_day() {
        let from = parse_time("2026-11-21", false).unwrap();
        let to = parse_time("2026-11-21", true).unwrap();
        assert_eq!(to - from, 86_400_000 - 1);
        assert_eq!(parse_time("2026-11-21T00:00:00Z", false).unwrap(), from);
        assert!(parse_time("yesterday", false).is_err());
    }

    #[test]
    fn empty_values_mean_any_and_per_page_is_bounded() {
        let q = FilterQuery {
            user: Some(" ".into()),
            ..FilterQuery::default()
        };
        assert!(q.into_filter().unwrap().user.is_none());
        let q = FilterQuery {
            per_page: Some(500),
            ..FilterQuery::default()
        };
        assert!(q.into_filter().is_err());
    }
}
