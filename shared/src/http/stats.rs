//! The `stats` function: service statistics for the admin.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use time::OffsetDateTime;
use tracing::instrument;

use super::Admin;
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
#[instrument(skip_all)]
async fn get_stats(_: Admin, State(app): State<App>) -> Result<Response> {
    let today = OffsetDateTime::now_utc().date();
    let stats = stats::read(&*app.table, today).await?;
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(stats)).into_response())
}
