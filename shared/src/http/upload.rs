//! The `upload` function: `POST /v1/images` for direct uploads, and `POST /v1/uploads` with
//! `GET /v1/uploads/{upload_id}` for large files sent straight to the bucket.

use std::convert::Infallible;

use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tracing::instrument;

use super::{BaseUrl, ErrorEnvelope};
use crate::budget;
use crate::error::{Error, Refusal, Result};
use crate::images::{self, UploadView};
use crate::secret;
use crate::state::App;
use crate::state::UploadTarget;
use crate::uploads::{self, MAX_UPLOAD_BYTES};

/// The largest request body accepted through the API. Larger files use the presigned path.
pub const MAX_API_BODY: usize = 5 * 1024 * 1024;
/// At most this many files in one multipart request.
pub const MAX_FILES: usize = 20;

/// The function's router, as its Lambda runs it.
pub fn router(app: App) -> Router {
    super::finish(routes(app))
}

/// The routes alone, for merging with other functions' routes (the local runner).
pub fn routes(app: App) -> Router {
    Router::new()
        .route("/v1/images", post(upload_images))
        .route("/v1/uploads", post(create_upload))
        .route("/v1/uploads/{upload_id}", get(upload_status).post(receive_local_upload))
        .with_state(app)
}

/// The optional body of `POST /v1/uploads`: the size the client means to send, checked early,
/// and what it calls the file (logged only: the format is always sniffed from the bytes).
#[derive(Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"bytes": 12582912, "filename": "holiday.jpg", "content_type": "image/jpeg"}))]
pub struct CreateUpload {
    /// The file's size, if known: over 50 MiB is refused now rather than by the bucket.
    #[schema(minimum = 1, maximum = 52428800)]
    #[serde(default, deserialize_with = "crate::json::whole_number")]
    bytes: Option<u64>,
    filename: Option<String>,
    content_type: Option<String>,
}

/// What an upload of several files answers: one entry per file, in the request's order.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct UploadedImages {
    pub images: Vec<UploadView>,
}

/// The answer of `POST /v1/images`: one file's view, or every file's for a multipart request of
/// more than one file.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum UploadAnswer {
    One(Box<UploadView>),
    Many(UploadedImages),
}

/// A presigned form for one large file (up to 50 MiB), posted straight to the bucket.
#[utoipa::path(
    post, path = "/v1/uploads", tag = "uploads", operation_id = "createUpload",
    request_body(content = Option<CreateUpload>, content_type = "application/json",
        description = "Optional; an empty body asks for a form with no checks."),
    responses(
        (status = 201, description = "The form, its upload id and the upload's delete token.", body = uploads::Created),
        (status = 400, description = "`invalid_utf8`.", body = ErrorEnvelope),
        (status = 413, description = "`file_too_large` (over 50 MiB) or `request_too_large` (a body over 16 KiB).", body = ErrorEnvelope),
        (status = 422, description = "`bad_json` or `bad_size`.", body = ErrorEnvelope),
        (status = 503, description = "`unavailable`: storage failed; retry.", body = ErrorEnvelope),
    )
)]
#[instrument(skip_all)]
async fn create_upload(State(app): State<App>, BaseUrl(base): BaseUrl, req: Request) -> Result<Response> {
    // The request is a few fields of JSON; anything large is not one.
    let body = axum::body::to_bytes(req.into_body(), 16 * 1024)
        .await
        .map_err(|_| Error::client(Refusal::TooLarge, "request_too_large", "the request body is too large"))?;
    // An empty body, like `null`, asks for a form with no checks.
    let request: CreateUpload = if body.iter().all(u8::is_ascii_whitespace) {
        CreateUpload::default()
    } else {
        super::input::parse_json::<Option<CreateUpload>>(&body, "the body is not valid")?.unwrap_or_default()
    };
    match request.bytes {
        Some(0) => return Err(Error::unprocessable("bad_size", "bytes must be at least 1")),
        Some(n) if n > MAX_UPLOAD_BYTES => {
            return Err(Error::client(
                Refusal::TooLarge,
                "file_too_large",
                format!("presigned uploads take at most {MAX_UPLOAD_BYTES} bytes; {n} was asked for"),
            ));
        }
        _ => {}
    }
    let created = uploads::create(&app, &base, None).await?;
    tracing::info!(upload_id = %created.upload_id, filename = ?request.filename, content_type = ?request.content_type, "upload form created");
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// How a presigned upload stands.
#[utoipa::path(
    get, path = "/v1/uploads/{upload_id}", tag = "uploads", operation_id = "getUpload",
    params(("upload_id" = String, Path, pattern = r"^[A-Za-z0-9_-]{22}$", example = "Xb9kT3v9QzL0aBcDeFgHiJ")),
    responses(
        (status = 200, description = "`waiting`, `expired`, `done` (with the image) or `failed` (with the reason).", body = uploads::UploadStatus),
        (status = 404, description = "`not_found`: no such upload.", body = ErrorEnvelope),
        (status = 503, description = "`unavailable`: storage failed; retry.", body = ErrorEnvelope),
    )
)]
#[instrument(skip(app, base))]
async fn upload_status(State(app): State<App>, BaseUrl(base): BaseUrl, Path(id): Path<String>) -> Result<Response> {
    let status = uploads::status(&app, &id, &base).await?;
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(status)).into_response())
}

/// Local mode's equivalent of the bucket's form endpoint. In AWS the form posts to S3 and this
/// route does not exist.
#[utoipa::path(
    post, path = "/v1/uploads/{upload_id}", tag = "uploads", operation_id = "receiveUpload",
    description = "Local runner only: the stand-in for the bucket's form endpoint that `form.url` names. In AWS \
        the form posts to S3 and this answers 404.",
    params(("upload_id" = String, Path, pattern = r"^[A-Za-z0-9_-]{22}$", example = "Xb9kT3v9QzL0aBcDeFgHiJ")),
    request_body(content = super::openapi::FormUpload, content_type = "multipart/form-data",
        description = "The form's `fields`, then exactly one `file` part."),
    responses(
        (status = 204, description = "Stored; ingest follows (see `GET /v1/uploads/{upload_id}`)."),
        (status = 404, description = "`not_found`: no such upload (or not the local runner).", body = ErrorEnvelope),
        (status = 409, description = "`already_uploaded`.", body = ErrorEnvelope),
        (status = 410, description = "`expired`: the form has expired.", body = ErrorEnvelope),
        (status = 413, description = "`file_too_large`.", body = ErrorEnvelope),
        (status = 422, description = "`bad_multipart`, `no_files`, `one_file` or `too_many_files`.", body = ErrorEnvelope),
        (status = 503, description = "`unavailable`: storage failed; retry.", body = ErrorEnvelope),
    )
)]
#[instrument(skip(app, req))]
async fn receive_local_upload(State(app): State<App>, Path(id): Path<String>, req: Request) -> Result<StatusCode> {
    if !matches!(app.uploads, UploadTarget::Local) {
        return Err(super::not_found().await);
    }
    let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    // Room for the file plus the form's other fields.
    let limit = MAX_UPLOAD_BYTES as usize + 64 * 1024;
    // The body and the multipart parser's copy; the file goes to storage from there.
    let _reservation = budget::reserve(2 * declared_length(&req, limit)).await;
    let body = axum::body::to_bytes(req.into_body(), limit).await.map_err(|_| {
        Error::client(Refusal::TooLarge, "file_too_large", format!("the file must be at most {MAX_UPLOAD_BYTES} bytes"))
    })?;
    let mut files = multipart_files(&content_type, body).await?;
    if files.len() != 1 {
        return Err(Error::unprocessable("one_file", "a presigned upload takes exactly one `file` field"));
    }
    uploads::receive_local(&app, &id, files.remove(0).bytes).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// One file of a request, with a name to use in error messages.
pub(crate) struct Part {
    pub(crate) label: String,
    pub(crate) bytes: Bytes,
}

/// Uploads images: the raw bytes of one, or `multipart/form-data` with 1 to 20 `file` parts.
#[utoipa::path(
    post, path = "/v1/images", tag = "images", operation_id = "uploadImages",
    description = "Every file is checked before any is stored, so one bad file stores nothing. At most 5 MiB per \
        request (`POST /v1/uploads` takes larger files). The format is sniffed from the bytes: JPEG, PNG, GIF or WebP.",
    request_body(
        description = "The image itself, or a multipart form of `file` parts.",
        content(
            (super::openapi::Binary = "image/*"),
            (super::openapi::Binary = "application/octet-stream"),
            (super::openapi::MultipartImages = "multipart/form-data"),
        ),
    ),
    responses(
        (status = 201, description = "Stored (one file: its view; several: `images`, one view each).", body = UploadAnswer),
        (status = 200, description = "Every file's bytes were known already (`duplicate: true`).", body = UploadAnswer),
        (status = 413, description = "`request_too_large` (over 5 MiB), `too_many_pixels`, `too_many_frames`, `too_many_scans` or `too_complex`.", body = ErrorEnvelope),
        (status = 415, description = "`unsupported_content_type`, `unsupported_media_type` (not JPEG, PNG, GIF or WebP) or `unsupported_image`.", body = ErrorEnvelope),
        (status = 422, description = "`empty_body`, `empty_file`, `bad_multipart`, `no_files`, `too_many_files`, `unreadable_image` or `damaged_image`.", body = ErrorEnvelope),
        (status = 503, description = "`unavailable` (storage failed) or `busy`; retry.", body = ErrorEnvelope),
    )
)]
#[instrument(skip_all)]
async fn upload_images(State(app): State<App>, BaseUrl(base): BaseUrl, req: Request) -> Result<Response> {
    let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let _reservation = reserve_for_files(&req).await;
    let body = read_body(req.into_body()).await?;
    let mime = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let (parts, multipart) = if mime == "multipart/form-data" {
        (multipart_files(&content_type, body).await?, true)
    } else if mime.is_empty() || mime.starts_with("image/") || mime == "application/octet-stream" {
        (vec![Part { label: "the body".into(), bytes: body }], false)
    } else {
        return Err(Error::client(
            Refusal::UnsupportedMedia,
            "unsupported_content_type",
            format!("send the image itself (image/*) or multipart/form-data with `file` parts, not {mime}"),
        ));
    };
    if !multipart && parts[0].bytes.is_empty() {
        return Err(Error::unprocessable("empty_body", "the request has no image in its body"));
    }
    let prepared = prepare_all(parts, multipart).await?;
    let mut views = Vec::with_capacity(prepared.len());
    for p in &prepared {
        let token = secret::new_token();
        let stored = images::store(&app, p, &secret::digest_hex(&token)).await?;
        views.push(UploadView::new(&stored, token, &base));
    }
    let status = if views.iter().any(|v| !v.duplicate) { StatusCode::CREATED } else { StatusCode::OK };
    let answer = match views.pop() {
        Some(only) if views.is_empty() => UploadAnswer::One(Box::new(only)),
        last => {
            views.extend(last);
            UploadAnswer::Many(UploadedImages { images: views })
        }
    };
    Ok((status, Json(answer)).into_response())
}

/// Checks every file before any is stored, so one bad file leaves nothing half-written. In a
/// multipart request each error names its file.
pub(crate) async fn prepare_all(parts: Vec<Part>, multipart: bool) -> Result<Vec<images::Prepared>> {
    tokio::task::spawn_blocking(move || {
        parts
            .iter()
            .map(|p| {
                if p.bytes.is_empty() {
                    return Err(Error::unprocessable("empty_file", format!("{} is empty", p.label)));
                }
                images::prepare(&p.bytes).map_err(|e| match e {
                    Error::Client { refusal, code, message } if multipart => {
                        Error::Client { refusal, code, message: format!("{}: {message}", p.label) }
                    }
                    other => other,
                })
            })
            .collect::<Result<Vec<_>>>()
    })
    .await
    .map_err(Error::internal)?
}

/// The body's declared length when it is within `limit`, else `limit`: what a reservation must
/// cover before the body is read.
fn declared_length(req: &Request, limit: usize) -> usize {
    req.headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .map_or(limit, |n| n.min(limit))
}

/// Reserves upload memory for a request carrying files through the API: the body, the
/// multipart parser's copy and the stripped originals (three times the body), held until the
/// files are stored.
pub(crate) fn reserve_for_files(req: &Request) -> impl Future<Output = budget::BodyPermit> + use<> {
    budget::reserve(3 * declared_length(req, MAX_API_BODY))
}

/// Reads the whole body, refusing more than [`MAX_API_BODY`] bytes with a 413.
pub(crate) async fn read_body(body: Body) -> Result<Bytes> {
    axum::body::to_bytes(body, MAX_API_BODY).await.map_err(|_| {
        Error::client(
            Refusal::TooLarge,
            "request_too_large",
            format!(
                "requests through the API are limited to {MAX_API_BODY} bytes; use POST /v1/uploads for larger files"
            ),
        )
    })
}

pub(crate) async fn multipart_files(content_type: &str, body: Bytes) -> Result<Vec<Part>> {
    let bad = |m: String| Error::unprocessable("bad_multipart", m);
    let boundary =
        multer::parse_boundary(content_type).map_err(|e| bad(format!("the multipart boundary is missing: {e}")))?;
    let stream = futures::stream::once(async move { Ok::<_, Infallible>(body) });
    let mut form = multer::Multipart::new(stream, boundary);
    let mut files = Vec::new();
    while let Some(field) = form.next_field().await.map_err(|e| bad(format!("the multipart body is malformed: {e}")))? {
        if field.name() != Some("file") {
            continue;
        }
        let label = match field.file_name() {
            Some(name) => format!("file {} ({name})", files.len() + 1),
            None => format!("file {}", files.len() + 1),
        };
        let bytes = field.bytes().await.map_err(|e| bad(format!("the multipart body is malformed: {e}")))?;
        files.push(Part { label, bytes });
        if files.len() > MAX_FILES {
            return Err(Error::unprocessable("too_many_files", format!("at most {MAX_FILES} files per request")));
        }
    }
    if files.is_empty() {
        return Err(Error::unprocessable("no_files", "the multipart body has no `file` part"));
    }
    Ok(files)
}
