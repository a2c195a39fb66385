//! `GET /metrics`: the local server's metrics in the Prometheus text format, for the admin only
//! (they tell how much is uploaded and what fails). Only the local runner serves it; in AWS the
//! same metrics are CloudWatch's (see [`crate::metrics`]).

use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::Admin;
use crate::metrics;
use crate::state::App;

/// The content type of the Prometheus text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The route, merged into the local runner's router before `finish`.
pub fn routes(app: App) -> Router {
    Router::new().route("/metrics", get(page)).with_state(app)
}

#[utoipa::path(
    get, path = "/metrics", tag = "meta", operation_id = "getMetrics",
    description = "Only the local server serves this page; in AWS the same metrics are in CloudWatch, printed \
        by the functions in the Embedded Metric Format.",
    security(("adminToken" = [])),
    responses(
        (status = 200, description = "Every metric, in the Prometheus text format 0.0.4.",
            content_type = "text/plain; version=0.0.4; charset=utf-8", body = String),
        (status = 401, description = "`unauthorized`: no admin token.", body = super::ErrorEnvelope),
        (status = 503, description = "`unavailable`: storage failed while checking the token; retry.",
            body = super::ErrorEnvelope),
    )
)]
pub(crate) async fn page(_: Admin) -> Response {
    // A process that installed no registry has observed nothing: every series is empty.
    let text = match metrics::registry() {
        Some(registry) => registry.render(),
        None => metrics::Registry::new().render(),
    };
    ([(http::header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response()
}
