//! The `stats` function: service statistics for the admin.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use time::OffsetDateTime;
use tracing::instrument;

use super::{Admin, ErrorEnvelope};
use crate::error::Result;
use crate::state::App;
use crate::stats;

/// The function's router, as its Lambda runs it.
pub fn router(app: App) -> Router {
    super::finish(routes(app))
}

/// The routes alone, for merging with other functions' routes (the local runner).
pub fn routes(app: App) -> Router {
    Router::new().route("/v1/stats", get(get_stats)).with_state(app)
}

/// Reads the counters; the number of items read does not depend on how many images exist.
#[utoipa::path(
    get, path = "/v1/stats", tag = "stats", operation_id = "getStats",
    security(("adminToken" = [])),
    responses(
        (status = 200, description = "Formats, top cameras, uploads per day for 30 days, totals.", body = stats::Stats),
        (status = 401, description = "`unauthorized`: no admin token.", body = ErrorEnvelope),
        (status = 503, description = "`unavailable`: storage failed; retry.", body = ErrorEnvelope),
    )
)]
#[instrument(skip_all)]
async fn get_stats(_: Admin, State(app): State<App>) -> Result<Response> {
    let today = OffsetDateTime::now_utc().date();
    let stats = stats::read(&*app.table, today).await?;
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(stats)).into_response())
}
