//! The `images` function: metadata, admin listing, deletion, and the images themselves.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tracing::instrument;

use super::{Admin, BaseUrl, ErrorEnvelope, Params, is_admin};
use crate::error::{Error, Refusal, Result};
use crate::images::{self, ImageView};
use crate::media::Format;
use crate::media::variants::{self, Size};
use crate::state::App;

/// Cache lifetime of content that never changes under its URL.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Cache lifetime of an original served in place of a variant that is not made yet: short, so
/// the variant replaces it soon.
const FALLBACK: &str = "public, max-age=60";

/// The function's router, as its Lambda runs it.
pub fn router(app: App) -> Router {
    super::finish(routes(app))
}

/// The routes alone, for merging with other functions' routes (the local runner).
pub fn routes(app: App) -> Router {
    Router::new()
        .route("/v1/images", get(list_images))
        .route("/v1/images/{id}", get(get_image).delete(delete_image))
        .route("/i/{file}", get(serve_image))
        .with_state(app)
}

/// One page of the admin's listing of images, newest first.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ImagePage {
    pub images: Vec<ImageView>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

/// An image's public metadata.
#[utoipa::path(
    get, path = "/v1/images/{id}", tag = "images", operation_id = "getImage",
    params(("id" = String, Path, description = "The image id.", pattern = r"^[A-Za-z0-9_-]{8}$", example = "Ab3dE-9x")),
    responses(
        (status = 200, description = "The image's public metadata (never GPS).", body = ImageView),
        (status = 404, description = "`not_found`: no such image.", body = ErrorEnvelope),
        (status = 503, description = "`unavailable`: storage failed; retry.", body = ErrorEnvelope),
    )
)]
#[instrument(skip(app, base))]
async fn get_image(State(app): State<App>, BaseUrl(base): BaseUrl, Path(id): Path<String>) -> Result<Response> {
    let record = images::get_active(&app, &id).await?;
    // Variants change from pending to ready, so clients must revalidate.
    Ok(([(header::CACHE_CONTROL, "no-cache")], Json(ImageView::new(&record, &base))).into_response())
}

/// Every image, newest first (admin).
#[utoipa::path(
    get, path = "/v1/images", tag = "images", operation_id = "listImages",
    security(("adminToken" = [])),
    params(super::openapi::PageQuery),
    responses(
        (status = 200, description = "One page of images.", body = ImagePage),
        (status = 400, description = "`invalid_cursor`, `invalid_utf8` or `duplicate_parameter`.", body = ErrorEnvelope),
        (status = 401, description = "`unauthorized`: no admin token.", body = ErrorEnvelope),
        (status = 422, description = "`bad_limit`.", body = ErrorEnvelope),
        (status = 503, description = "`unavailable`: storage failed; retry.", body = ErrorEnvelope),
    )
)]
#[instrument(skip(app, base, params))]
async fn list_images(
    _: Admin,
    State(app): State<App>,
    BaseUrl(base): BaseUrl,
    Params(params): Params,
) -> Result<Json<ImagePage>> {
    let (limit, cursor) = super::page_params(&params)?;
    let (records, next) = images::list(&app, limit, cursor).await?;
    let images = records.iter().map(|r| ImageView::new(r, &base)).collect();
    Ok(Json(ImagePage { images, next_cursor: super::next_cursor(next) }))
}

/// Deletes an upload with its delete token (the image goes with its last upload), or the
/// whole image as the admin.
#[utoipa::path(
    delete, path = "/v1/images/{id}", tag = "images", operation_id = "deleteImage",
    security(("deleteToken" = []), ("adminToken" = [])),
    params(("id" = String, Path, description = "The image id.", pattern = r"^[A-Za-z0-9_-]{8}$", example = "Ab3dE-9x")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 401, description = "`unauthorized`: neither a delete token nor the admin token.", body = ErrorEnvelope),
        (status = 403, description = "`forbidden`: the delete token is not this image's.", body = ErrorEnvelope),
        (status = 404, description = "`not_found`: no such image.", body = ErrorEnvelope),
        (status = 503, description = "`unavailable` (storage failed) or `busy` (changed concurrently); retry.", body = ErrorEnvelope),
    )
)]
#[instrument(skip(app, headers))]
async fn delete_image(State(app): State<App>, headers: HeaderMap, Path(id): Path<String>) -> Result<StatusCode> {
    if is_admin(&app, &headers).await? {
        images::delete_image(&app, &id).await?;
    } else {
        let token = headers
            .get("x-delete-token")
            .and_then(|v| v.to_str().ok())
            .filter(|t| !t.is_empty())
            .ok_or_else(Error::unauthorized)?;
        images::delete_upload(&app, &id, token).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /i/{id}` and `GET /i/{id}.{ext}`, with `?size=small|medium|large`.
#[utoipa::path(
    get, path = "/i/{file}", tag = "images", operation_id = "serveImage",
    description = "The image itself. Without `size`, the original as stored; with it, the variant of that size in the \
        format the extension names or, without one, the best the `Accept` header takes (AVIF, then WebP), falling back \
        to the original while the variant is not made yet. Supports `ETag`/`If-None-Match` and single byte ranges.",
    params(
        ("file" = String, Path, description = "The image id, optionally with an extension naming the variant's format.",
            pattern = r"^[A-Za-z0-9_-]{8}(\.([Jj][Pp][Ee]?[Gg]|[Pp][Nn][Gg]|[Gg][Ii][Ff]|[Ww][Ee][Bb][Pp]|[Aa][Vv][Ii][Ff]))?$",
            example = "Ab3dE-9x.jpg"),
        ("size" = Option<String>, Query, pattern = "^(original|small|medium|large)?$", example = "medium",
            description = "A variant: `small`, `medium` or `large`; `original` or empty means the original."),
        ("Range" = Option<String>, Header, description = "One byte range (`bytes=0-1023`, `bytes=-500`); several ranges get the whole image."),
        ("If-None-Match" = Option<String>, Header, description = "ETags the client holds."),
        ("If-Range" = Option<String>, Header, description = "The range counts only when this is the current ETag."),
    ),
    responses(
        (status = 200, description = "The image.",
            content(
                (super::openapi::Binary = "image/jpeg"), (super::openapi::Binary = "image/png"), (super::openapi::Binary = "image/gif"),
                (super::openapi::Binary = "image/webp"), (super::openapi::Binary = "image/avif"),
            ),
            headers(("ETag" = String), ("Cache-Control" = String), ("Accept-Ranges" = String), ("Content-Length" = u64))),
        (status = 206, description = "The byte range asked for.",
            content(
                (super::openapi::Binary = "image/jpeg"), (super::openapi::Binary = "image/png"), (super::openapi::Binary = "image/gif"),
                (super::openapi::Binary = "image/webp"), (super::openapi::Binary = "image/avif"),
            ),
            headers(("Content-Range" = String), ("ETag" = String), ("Content-Length" = u64))),
        (status = 304, description = "Not modified: `If-None-Match` names the current ETag.", headers(("ETag" = String))),
        (status = 400, description = "`invalid_utf8` or `duplicate_parameter`.", body = ErrorEnvelope),
        (status = 404, description = "`not_found`: no such image, or an unknown extension.", body = ErrorEnvelope),
        (status = 416, description = "`range_not_satisfiable`.", body = ErrorEnvelope, headers(("Content-Range" = String))),
        (status = 422, description = "`bad_size`.", body = ErrorEnvelope),
        (status = 503, description = "`unavailable`: storage failed; retry.", body = ErrorEnvelope),
    )
)]
#[instrument(skip(app, headers, params))]
async fn serve_image(
    State(app): State<App>,
    headers: HeaderMap,
    Path(file): Path<String>,
    Params(params): Params,
) -> Result<Response> {
    let (id, ext) = match file.split_once('.') {
        Some((id, ext)) => (id, Some(Format::from_ext(ext).ok_or_else(|| Error::not_found("image"))?)),
        None => (file.as_str(), None),
    };
    let size = match params.get("size").map(String::as_str) {
        None | Some("") | Some("original") => None,
        Some(s) => Some(
            Size::parse(s).ok_or_else(|| Error::unprocessable("bad_size", "size must be small, medium or large"))?,
        ),
    };
    // A variant's format follows the extension or, without one, the Accept header; the
    // original is served as stored.
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let modern = size.map(|_| variants::negotiate(ext, accept)).unwrap_or_default();
    let opened = images::open(&app, id, size, &modern).await?;
    let cache = match (&opened.variant, size) {
        (None, Some(_)) => FALLBACK,
        _ => IMMUTABLE,
    };
    let format = opened.format();
    let etag = opened.etag();
    let mut common = vec![
        (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        (header::ETAG, HeaderValue::from_str(&etag).map_err(Error::internal)?),
        (header::ACCEPT_RANGES, HeaderValue::from_static("bytes")),
        (header::HeaderName::from_static("x-content-type-options"), HeaderValue::from_static("nosniff")),
    ];
    if size.is_some() {
        // Caches must keep one answer per Accept: a WebP body is not for every browser.
        common.push((header::VARY, HeaderValue::from_static("accept")));
    }
    let common = axum::response::AppendHeaders(common);
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        // If-None-Match uses the weak comparison (RFC 9110 §13.1.2): a `W/` prefix still matches.
        .is_some_and(|v| v.split(',').map(str::trim).any(|t| t == "*" || t.trim_start_matches("W/") == etag))
    {
        return Ok((StatusCode::NOT_MODIFIED, common).into_response());
    }
    // The size recorded at upload is the object's: the range is worked out before reading, so
    // only the bytes asked for are read, one chunk at a time.
    let total = opened.len();
    let content_type = (header::CONTENT_TYPE, HeaderValue::from_static(format.mime()));
    // A Range that does not match the current ETag must be ignored (RFC 9110 If-Range).
    let if_range_ok = headers.get(header::IF_RANGE).and_then(|v| v.to_str().ok()).is_none_or(|v| v == etag);
    let answer = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()).filter(|_| if_range_ok) {
        Some(range) => parse_range(range, total),
        None => RangeAnswer::Whole,
    };
    let (status, range) = match answer {
        RangeAnswer::Whole => (StatusCode::OK, None),
        RangeAnswer::Part(start, end) => (StatusCode::PARTIAL_CONTENT, Some(start..end + 1)),
        RangeAnswer::Unsatisfiable => {
            let content_range = HeaderValue::from_str(&format!("bytes */{total}")).map_err(Error::internal)?;
            let mut resp = Error::client(
                Refusal::RangeNotSatisfiable,
                "range_not_satisfiable",
                "the requested range is outside the image",
            )
            .into_response();
            resp.headers_mut().insert(header::CONTENT_RANGE, content_range);
            return Ok(resp);
        }
    };
    let read = opened.read(&app, range).await?.ok_or_else(|| Error::not_found("image"))?;
    let length = HeaderValue::from(read.range.end - read.range.start);
    let mut resp = (status, common, [content_type, (header::CONTENT_LENGTH, length)]).into_response();
    if status == StatusCode::PARTIAL_CONTENT {
        let (start, end, total) = (read.range.start, read.range.end.saturating_sub(1), read.total);
        let content_range = HeaderValue::from_str(&format!("bytes {start}-{end}/{total}")).map_err(Error::internal)?;
        resp.headers_mut().insert(header::CONTENT_RANGE, content_range);
    }
    *resp.body_mut() = axum::body::Body::from_stream(read.body);
    Ok(resp)
}

#[derive(Debug, PartialEq, Eq)]
enum RangeAnswer {
    /// Serve the whole body (no usable range, or several ranges, which this server does not
    /// combine into multipart responses).
    Whole,
    /// Inclusive byte offsets.
    Part(u64, u64),
    Unsatisfiable,
}

/// Parses a single `bytes=` range against a body of `total` bytes (RFC 9110 §14.1.2).
fn parse_range(header: &str, total: u64) -> RangeAnswer {
    let Some(spec) = header.trim().strip_prefix("bytes=") else { return RangeAnswer::Whole };
    if spec.contains(',') {
        return RangeAnswer::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else { return RangeAnswer::Whole };
    let (a, b) = (a.trim(), b.trim());
    let parsed = match (a.is_empty(), b.is_empty()) {
        // `bytes=-N`: the last N bytes.
        (true, false) => match b.parse::<u64>() {
            Ok(0) => return RangeAnswer::Unsatisfiable,
            Ok(n) => Some((total.saturating_sub(n), total.saturating_sub(1))),
            Err(_) => None,
        },
        (false, true) => a.parse::<u64>().ok().map(|s| (s, total.saturating_sub(1))),
        (false, false) => match (a.parse::<u64>(), b.parse::<u64>()) {
            (Ok(s), Ok(e)) if s <= e => Some((s, e.min(total.saturating_sub(1)))),
            _ => None,
        },
        (true, true) => None,
    };
    match parsed {
        None => RangeAnswer::Whole,
        Some((s, _)) if s >= total => RangeAnswer::Unsatisfiable,
        Some((s, e)) => RangeAnswer::Part(s, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_ranges_follow_rfc_9110() {
        let cases = [
            ("bytes=0-9", RangeAnswer::Part(0, 9)),
            ("bytes=90-", RangeAnswer::Part(90, 99)),
            ("bytes=-10", RangeAnswer::Part(90, 99)),
            ("bytes=-500", RangeAnswer::Part(0, 99)),
            ("bytes=50-500", RangeAnswer::Part(50, 99)),
            ("bytes=100-", RangeAnswer::Unsatisfiable),
            ("bytes=-0", RangeAnswer::Unsatisfiable),
            ("bytes=9-1", RangeAnswer::Whole),
            ("bytes=0-1,5-6", RangeAnswer::Whole),
            ("items=0-1", RangeAnswer::Whole),
            ("bytes=x-y", RangeAnswer::Whole),
        ];
        for (h, want) in cases {
            assert_eq!(parse_range(h, 100), want, "{h}");
        }
    }
}
