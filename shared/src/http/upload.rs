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
use serde_json::json;
use tracing::instrument;

use super::BaseUrl;
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
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateUpload {
    bytes: Option<u64>,
    filename: Option<String>,
    content_type: Option<String>,
}

#[instrument(skip_all)]
async fn create_upload(State(app): State<App>, BaseUrl(base): BaseUrl, req: Request) -> Result<Response> {
    // The request is a few fields of JSON; anything large is not one.
    let body = axum::body::to_bytes(req.into_body(), 16 * 1024)
        .await
        .map_err(|_| Error::client(Refusal::TooLarge, "request_too_large", "the request body is too large"))?;
    let request: CreateUpload = if body.iter().all(u8::is_ascii_whitespace) {
        CreateUpload::default()
    } else {
        super::input::parse_json(&body, "the body is not valid")?
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

#[instrument(skip(app, base))]
async fn upload_status(State(app): State<App>, BaseUrl(base): BaseUrl, Path(id): Path<String>) -> Result<Response> {
    let status = uploads::status(&app, &id, &base).await?;
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(status)).into_response())
}

/// Local mode's equivalent of the bucket's form endpoint. In AWS the form posts to S3 and this
/// route does not exist.
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
    Ok(if views.len() == 1 {
        (status, Json(views.pop())).into_response()
    } else {
        (status, Json(json!({ "images": views }))).into_response()
    })
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
