//! The `keepalive` function: Imgur URLs kept alive by scheduled views.

use axum::Json;
use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tracing::instrument;

use super::Params;
use super::{Admin, is_admin};
use crate::error::{Error, Result};
use crate::keepalive::{self, LoadNow};
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

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NewEntry {
    url: String,
}

#[instrument(skip_all)]
async fn create(State(app): State<App>, req: Request) -> Result<Response> {
    let new: NewEntry =
        super::input::json_body(req.into_body(), 4 * 1024, "the body must be {\"url\": \"...\"}").await?;
    let created = keepalive::create(&app, &new.url).await?;
    let status = if created.manage_token.is_some() { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, [(header::CACHE_CONTROL, "no-store")], Json(created)).into_response())
}

#[instrument(skip(app))]
async fn show(State(app): State<App>, Path(id): Path<String>) -> Result<Response> {
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(keepalive::view(&app, &id).await?)).into_response())
}

#[instrument(skip_all)]
async fn list(_: Admin, State(app): State<App>, Params(params): Params) -> Result<Response> {
    let (limit, cursor) = super::page_params(&params)?;
    let (entries, next) = keepalive::list(&app, limit, cursor).await?;
    Ok(Json(super::page_body("entries", &entries, next)).into_response())
}

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

#[instrument(skip(app))]
async fn load_now(State(app): State<App>, Path(id): Path<String>) -> Result<Response> {
    match keepalive::load_now(&app, &id).await? {
        LoadNow::Queued(entry) => Ok((StatusCode::ACCEPTED, Json(entry)).into_response()),
        LoadNow::NotDue(secs) => {
            let body = super::error_body("not_due", &format!("the entry is not due; try again in {secs} s"));
            Ok((StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, secs.to_string())], Json(body)).into_response())
        }
    }
}
