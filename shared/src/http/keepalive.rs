//! The `keepalive` function: Imgur URLs kept alive by scheduled views.

use axum::Json;
use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tracing::instrument;

use super::Params;
use super::{Admin, ErrorEnvelope, is_admin};
use crate::error::{Error, Result};
use crate::keepalive::{self, Created, EntryView, LoadNow};
use crate::state::App;

/// The function's router, as its Lambda runs it.
pub fn router(app: App) -> Router {
    super::finish(routes(app))
}

/// The routes alone, for merging with other functions' routes (the local runner).
pub fn routes(app: App) -> Router {
    Router::new()
        .route("/v1/keepalive", post(create).get(list))
        .route("/v1/keepalive/{id}", get(show).delete(remove))
        .route("/v1/keepalive/{id}/load", post(load_now))
        .with_state(app)
}

/// The body of `POST /v1/keepalive`.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"url": "https://imgur.com/a/AbCdEfG"}))]
pub struct NewEntry {
    /// An Imgur image, album or gallery URL (imgur.com, i.imgur.com, m.imgur.com).
    #[schema(max_length = 256)]
    url: String,
}

/// One page of the admin's listing of keep-alive entries, newest first.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct EntryPage {
    pub entries: Vec<EntryView>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

/// Keeps an Imgur URL alive by viewing it every 30 days (±12 h).
#[utoipa::path(
    post, path = "/v1/keepalive", tag = "keepalive", operation_id = "createKeepalive",
    request_body(content = NewEntry, content_type = "application/json"),
    responses(
        (status = 201, description = "A new entry, with its `manage_token` (shown once).", body = Created),
        (status = 200, description = "The URL is kept already: its entry, without a token.", body = Created),
        (status = 400, description = "`invalid_utf8`.", body = ErrorEnvelope),
        (status = 413, description = "`request_too_large`: a body over 4 KiB.", body = ErrorEnvelope),
        (status = 422, description = "`bad_json` or `not_imgur`.", body = ErrorEnvelope),
        (status = 503, description = "`unavailable`: storage failed; retry.", body = ErrorEnvelope),
    )
)]
#[instrument(skip_all)]
async fn create(State(app): State<App>, req: Request) -> Result<Response> {
    let new: NewEntry =
        super::input::json_body(req.into_body(), 4 * 1024, "the body must be {\"url\": \"...\"}").await?;
    let created = keepalive::create(&app, &new.url).await?;
    let status = if created.manage_token.is_some() { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, [(header::CACHE_CONTROL, "no-store")], Json(created)).into_response())
}

/// An entry's status, schedule and last 10 loads.
#[utoipa::path(
    get, path = "/v1/keepalive/{id}", tag = "keepalive", operation_id = "getKeepalive",
    params(("id" = String, Path, pattern = r"^[A-Za-z0-9_-]{22}$", example = "Xb9kT3v9QzL0aBcDeFgHiJ")),
    responses(
        (status = 200, description = "The entry.", body = EntryView),
        (status = 404, description = "`not_found`: no such entry.", body = ErrorEnvelope),
        (status = 503, description = "`unavailable`: storage failed; retry.", body = ErrorEnvelope),
    )
)]
#[instrument(skip(app))]
async fn show(State(app): State<App>, Path(id): Path<String>) -> Result<Response> {
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(keepalive::view(&app, &id).await?)).into_response())
}

/// Every entry (admin).
#[utoipa::path(
    get, path = "/v1/keepalive", tag = "keepalive", operation_id = "listKeepalive",
    security(("adminToken" = [])),
    params(super::openapi::PageQuery),
    responses(
        (status = 200, description = "One page of entries.", body = EntryPage),
        (status = 400, description = "`invalid_cursor`, `invalid_utf8` or `duplicate_parameter`.", body = ErrorEnvelope),
        (status = 401, description = "`unauthorized`: no admin token.", body = ErrorEnvelope),
        (status = 422, description = "`bad_limit`.", body = ErrorEnvelope),
        (status = 503, description = "`unavailable`: storage failed; retry.", body = ErrorEnvelope),
    )
)]
#[instrument(skip_all)]
async fn list(_: Admin, State(app): State<App>, Params(params): Params) -> Result<Response> {
    let (limit, cursor) = super::page_params(&params)?;
    let (entries, next) = keepalive::list(&app, limit, cursor).await?;
    Ok(Json(EntryPage { entries, next_cursor: super::next_cursor(next) }).into_response())
}

/// Stops keeping an entry alive: with its manage token, or as the admin.
#[utoipa::path(
    delete, path = "/v1/keepalive/{id}", tag = "keepalive", operation_id = "deleteKeepalive",
    security(("manageToken" = []), ("adminToken" = [])),
    params(("id" = String, Path, pattern = r"^[A-Za-z0-9_-]{22}$", example = "Xb9kT3v9QzL0aBcDeFgHiJ")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 401, description = "`unauthorized`: neither a manage token nor the admin token.", body = ErrorEnvelope),
        (status = 403, description = "`forbidden`: the manage token does not match.", body = ErrorEnvelope),
        (status = 404, description = "`not_found`: no such entry.", body = ErrorEnvelope),
        (status = 503, description = "`unavailable`: storage failed; retry.", body = ErrorEnvelope),
    )
)]
#[instrument(skip(app, headers))]
async fn remove(State(app): State<App>, headers: HeaderMap, Path(id): Path<String>) -> Result<StatusCode> {
    if is_admin(&app, &headers).await? {
        keepalive::delete(&app, &id, None).await?;
    } else {
        let token = headers
            .get("x-manage-token")
            .and_then(|v| v.to_str().ok())
            .filter(|t| !t.is_empty())
            .ok_or_else(Error::unauthorized)?;
        keepalive::delete(&app, &id, Some(token)).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Loads the entry now, if it was never loaded or is due.
#[utoipa::path(
    post, path = "/v1/keepalive/{id}/load", tag = "keepalive", operation_id = "loadKeepalive",
    params(("id" = String, Path, pattern = r"^[A-Za-z0-9_-]{22}$", example = "Xb9kT3v9QzL0aBcDeFgHiJ")),
    responses(
        (status = 202, description = "Queued for a load.", body = EntryView),
        (status = 404, description = "`not_found`: no such entry.", body = ErrorEnvelope),
        (status = 409, description = "`finished`: the entry is gone, stopped or in error, and never loaded again.", body = ErrorEnvelope),
        (status = 429, description = "`not_due`: try again after `Retry-After` seconds.", body = ErrorEnvelope,
            headers(("Retry-After" = u64, description = "Seconds until the entry is due."))),
        (status = 503, description = "`unavailable`: storage failed; retry.", body = ErrorEnvelope),
    )
)]
#[instrument(skip(app))]
async fn load_now(State(app): State<App>, Path(id): Path<String>) -> Result<Response> {
    match keepalive::load_now(&app, &id).await? {
        LoadNow::Queued(entry) => Ok((StatusCode::ACCEPTED, Json(entry)).into_response()),
        LoadNow::NotDue(secs) => {
            let body = ErrorEnvelope::new("not_due", format!("the entry is not due; try again in {secs} s"));
            Ok((StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, secs.to_string())], Json(body)).into_response())
        }
    }
}
