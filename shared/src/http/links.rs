//! The `links` function: invitation upload links (admin), and uploads through them.

use axum::Json;
use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use time::OffsetDateTime;
use tracing::instrument;

use super::Params;
use super::upload::UploadedImages;
use super::upload::{multipart_files, prepare_all, read_body, reserve_for_files};
use super::{Admin, BaseUrl, ErrorEnvelope};
use crate::error::{Error, Refusal, Result};
use crate::images::{self, UploadView};
use crate::links::{self, CreatedView, LinkView, NewLink};
use crate::state::App;
use crate::{http, secret};

/// At most this many files in one upload through a link.
pub const MAX_FILES_PER_REQUEST: usize = 20;

/// The function's router, as its Lambda runs it.
pub fn router(app: App) -> Router {
    super::finish(routes(app))
}

/// The routes alone, for merging with other functions' routes (the local runner).
pub fn routes(app: App) -> Router {
    Router::new()
        .route("/v1/links", post(create_link).get(list_links))
        // `key` is a link id for the admin's DELETE and a link token for the public GET.
        .route("/v1/links/{key}", get(link_status).delete(revoke_link))
        .route("/v1/links/{key}/images", post(upload_through_link))
        .route("/v1/links/{key}/uploads", post(large_upload_through_link))
        .with_state(app)
}

/// One page of the admin's listing of links, newest first.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct LinkPage {
    pub links: Vec<LinkView>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

/// Creates an invitation link (admin); its token is shown once.
#[utoipa::path(
    post, path = "/v1/links", tag = "links", operation_id = "createLink",
    security(("adminToken" = [])),
    request_body(content = NewLink, content_type = "application/json"),
    responses(
        (status = 201, description = "The link, with its token and addresses (shown once).", body = CreatedView),
        (status = 400, description = "`invalid_utf8`.", body = ErrorEnvelope),
        (status = 401, description = "`unauthorized`: no admin token.", body = ErrorEnvelope),
        (status = 413, description = "`request_too_large`: a body over 16 KiB.", body = ErrorEnvelope),
        (status = 422, description = "`bad_json`, `ambiguous_expiry`, `missing_expiry`, `bad_expires_at`, `expiry_in_past`, `expiry_too_far`, `bad_max_uploads` or `bad_label`.", body = ErrorEnvelope),
        (status = 503, description = "`unavailable`: storage failed; retry.", body = ErrorEnvelope),
    )
)]
#[instrument(skip_all)]
async fn create_link(_: Admin, State(app): State<App>, BaseUrl(base): BaseUrl, req: Request) -> Result<Response> {
    let new: NewLink =
        http::input::json_body(req.into_body(), 16 * 1024, "the body is not a valid link request").await?;
    let created = links::create(&app, &new).await?;
    let view = created.view(OffsetDateTime::now_utc(), &base);
    Ok((StatusCode::CREATED, [(header::CACHE_CONTROL, "no-store")], Json(view)).into_response())
}

/// Every link with its use (admin).
#[utoipa::path(
    get, path = "/v1/links", tag = "links", operation_id = "listLinks",
    security(("adminToken" = [])),
    params(super::openapi::PageQuery),
    responses(
        (status = 200, description = "One page of links.", body = LinkPage),
        (status = 400, description = "`invalid_cursor`, `invalid_utf8` or `duplicate_parameter`.", body = ErrorEnvelope),
        (status = 401, description = "`unauthorized`: no admin token.", body = ErrorEnvelope),
        (status = 422, description = "`bad_limit`.", body = ErrorEnvelope),
        (status = 503, description = "`unavailable`: storage failed; retry.", body = ErrorEnvelope),
    )
)]
#[instrument(skip_all)]
async fn list_links(_: Admin, State(app): State<App>, Params(params): Params) -> Result<Response> {
    let (limit, cursor) = http::page_params(&params)?;
    let (found, next) = links::list(&app, limit, cursor).await?;
    let now = OffsetDateTime::now_utc();
    let links = found.iter().map(|l| l.view(now)).collect();
    Ok(Json(LinkPage { links, next_cursor: http::next_cursor(next) }).into_response())
}

/// Revokes a link (admin).
#[utoipa::path(
    delete, path = "/v1/links/{key}", tag = "links", operation_id = "revokeLink",
    security(("adminToken" = [])),
    params(("key" = String, Path, description = "The link's id.", pattern = r"^[A-Za-z0-9_-]{22}$", example = "Xb9kT3v9QzL0aBcDeFgHiJ")),
    responses(
        (status = 204, description = "Revoked."),
        (status = 401, description = "`unauthorized`: no admin token.", body = ErrorEnvelope),
        (status = 404, description = "`not_found`: no such link.", body = ErrorEnvelope),
        (status = 503, description = "`unavailable`: storage failed; retry.", body = ErrorEnvelope),
    )
)]
#[instrument(skip_all)]
async fn revoke_link(_: Admin, State(app): State<App>, Path(id): Path<String>) -> Result<StatusCode> {
    links::revoke(&app, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What the upload page shows: time and uploads left, or why the link no longer works.
#[utoipa::path(
    get, path = "/v1/links/{key}", tag = "links", operation_id = "getLink",
    params(("key" = String, Path, description = "The link's token (from its creation).", pattern = r"^[A-Za-z0-9_-]{43}$",
        example = "q1w2e3r4t5y6u7i8o9p0a1s2d3f4g5h6j7k8l9z0x1c")),
    responses(
        (status = 200, description = "The link's status, expiry and uploads left.", body = LinkView),
        (status = 404, description = "`not_found`: no such link.", body = ErrorEnvelope),
        (status = 503, description = "`unavailable`: storage failed; retry.", body = ErrorEnvelope),
    )
)]
#[instrument(skip_all)]
async fn link_status(State(app): State<App>, Path(token): Path<String>) -> Result<Response> {
    let link = links::by_token(&app, &token).await?;
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(link.view(OffsetDateTime::now_utc()))).into_response())
}

/// A presigned form for one large file, gated by the link: one use is reserved now and given
/// back if the file fails ingest. (A form that is never used keeps its use.)
#[utoipa::path(
    post, path = "/v1/links/{key}/uploads", tag = "links", operation_id = "createUploadThroughLink",
    params(("key" = String, Path, description = "The link's token (from its creation).", pattern = r"^[A-Za-z0-9_-]{43}$",
        example = "q1w2e3r4t5y6u7i8o9p0a1s2d3f4g5h6j7k8l9z0x1c")),
    responses(
        (status = 201, description = "A presigned form, as `POST /v1/uploads` answers.", body = crate::uploads::Created),
        (status = 404, description = "`not_found`: no such link.", body = ErrorEnvelope),
        (status = 409, description = "`link_used_up`.", body = ErrorEnvelope),
        (status = 410, description = "`link_expired` or `link_revoked`.", body = ErrorEnvelope),
        (status = 503, description = "`unavailable`: storage failed; retry.", body = ErrorEnvelope),
    )
)]
#[instrument(skip_all)]
async fn large_upload_through_link(
    State(app): State<App>,
    BaseUrl(base): BaseUrl,
    Path(token): Path<String>,
) -> Result<Response> {
    let link = links::by_token(&app, &token).await?;
    links::claim(&app, &link, 1).await?;
    match crate::uploads::create(&app, &base, Some(&link.id)).await {
        Ok(created) => Ok((StatusCode::CREATED, [(header::CACHE_CONTROL, "no-store")], Json(created)).into_response()),
        Err(e) => {
            if let Err(undo) = links::release(&app, &link.id, 1).await {
                tracing::warn!(error = %undo, "giving back a link use failed");
            }
            Err(e)
        }
    }
}

/// Uploads 1 to 20 files through a link; each takes one of its uses.
#[utoipa::path(
    post, path = "/v1/links/{key}/images", tag = "links", operation_id = "uploadThroughLink",
    params(("key" = String, Path, description = "The link's token (from its creation).", pattern = r"^[A-Za-z0-9_-]{43}$",
        example = "q1w2e3r4t5y6u7i8o9p0a1s2d3f4g5h6j7k8l9z0x1c")),
    request_body(content = super::openapi::MultipartImages, content_type = "multipart/form-data"),
    responses(
        (status = 201, description = "Every file stored, one view each.", body = UploadedImages),
        (status = 404, description = "`not_found`: no such link.", body = ErrorEnvelope),
        (status = 409, description = "`link_used_up`: fewer uses left than files sent.", body = ErrorEnvelope),
        (status = 410, description = "`link_expired` or `link_revoked`.", body = ErrorEnvelope),
        (status = 413, description = "`request_too_large` (over 5 MiB), `too_many_pixels`, `too_many_frames`, `too_many_scans` or `too_complex`.", body = ErrorEnvelope),
        (status = 415, description = "`unsupported_content_type` (not multipart), `unsupported_media_type` or `unsupported_image`.", body = ErrorEnvelope),
        (status = 422, description = "`bad_multipart`, `no_files`, `too_many_files`, `empty_file`, `unreadable_image` or `damaged_image`.", body = ErrorEnvelope),
        (status = 503, description = "`unavailable` (storage failed) or `busy`; retry.", body = ErrorEnvelope),
    )
)]
#[instrument(skip_all)]
async fn upload_through_link(
    State(app): State<App>,
    BaseUrl(base): BaseUrl,
    Path(token): Path<String>,
    req: Request,
) -> Result<Response> {
    let link = links::by_token(&app, &token).await?;
    let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    if !content_type.to_ascii_lowercase().starts_with("multipart/form-data") {
        return Err(Error::client(
            Refusal::UnsupportedMedia,
            "unsupported_content_type",
            "uploads through a link are multipart/form-data with 1 to 20 `file` parts",
        ));
    }
    let _reservation = reserve_for_files(&req).await;
    let body = read_body(req.into_body()).await?;
    let parts = multipart_files(&content_type, body).await?;
    if parts.len() > MAX_FILES_PER_REQUEST {
        return Err(Error::unprocessable(
            "too_many_files",
            format!("at most {MAX_FILES_PER_REQUEST} files per request"),
        ));
    }
    let prepared = prepare_all(parts, true).await?;
    // Every file is an acceptable image; only now are the link's uses taken, all at once.
    let n = prepared.len() as i64;
    links::claim(&app, &link, n).await?;
    let mut views = Vec::with_capacity(prepared.len());
    for (i, p) in prepared.iter().enumerate() {
        let token = secret::new_token();
        match images::store(&app, p, &secret::digest_hex(&token)).await {
            Ok(stored) => views.push(UploadView::new(&stored, token, &base)),
            Err(e) => {
                // Give back the uses of the files that were not stored.
                if let Err(undo) = links::release(&app, &link.id, n - i as i64).await {
                    tracing::warn!(error = %undo, "giving back link uses failed");
                }
                return Err(e);
            }
        }
    }
    Ok((StatusCode::CREATED, Json(UploadedImages { images: views })).into_response())
}
