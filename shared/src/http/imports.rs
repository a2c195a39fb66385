//! The `imports` function: `POST /v1/imports` queues a job of URLs to import, and
//! `GET /v1/imports/{job_id}` shows each URL's status. The work is done by the `import-worker`.

use axum::Json;
use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;
use tracing::instrument;

use super::{BaseUrl, ErrorEnvelope};
use crate::error::{Error, Refusal, Result};
use crate::imports;
use crate::state::App;

/// 100 URLs of at most 2048 bytes, as JSON, fit well within this.
const MAX_BODY: usize = 256 * 1024;

/// The function's router, as its Lambda runs it.
pub fn router(app: App) -> Router {
    super::finish(routes(app))
}

/// The routes alone, for merging with other functions' routes (the local runner).
pub fn routes(app: App) -> Router {
    Router::new()
        .route("/v1/imports", post(create_import))
        .route("/v1/imports/{job_id}", get(import_status))
        .with_state(app)
}

/// Reads `{"urls": [...]}`, naming the first bad entry when there is one.
fn parse_urls(body: &[u8]) -> Result<Vec<String>> {
    let value: Value = super::input::parse_json(body, "the body is not valid JSON")?;
    let Value::Object(fields) = value else {
        return Err(Error::unprocessable("bad_json", "the body must be an object: {\"urls\": [...]}"));
    };
    if let Some(other) = fields.keys().find(|k| *k != "urls") {
        return Err(Error::unprocessable("bad_json", format!("unknown field {other:?}; only \"urls\" is accepted")));
    }
    let Some(Value::Array(entries)) = fields.get("urls") else {
        return Err(Error::unprocessable("bad_urls", "`urls` must be an array of URLs"));
    };
    entries
        .iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_str()
                .map(str::to_owned)
                .ok_or_else(|| Error::unprocessable("bad_url", format!("urls[{i}]: not a string")))
        })
        .collect()
}

/// The body of `POST /v1/imports`. Only its schema is used: the handler reads the body as JSON
/// by hand so that an error names the entry at fault ([`parse_urls`]).
#[derive(utoipa::ToSchema)]
#[schema(example = json!({"urls": ["https://example.com/photo.jpg", "https://example.org/cat.png"]}))]
#[allow(dead_code)]
pub struct NewImport {
    /// 1 to 100 `http` or `https` URLs without credentials, each at most 2048 bytes.
    #[schema(min_items = 1, max_items = 100, inline)]
    urls: Vec<ImportUrl>,
}

/// One URL to import.
#[derive(utoipa::ToSchema)]
#[schema(max_length = 2048, pattern = "^[Hh][Tt][Tt][Pp][Ss]?://")]
#[allow(dead_code)]
struct ImportUrl(String);

/// Queues a job importing 1 to 100 URLs.
#[utoipa::path(
    post, path = "/v1/imports", tag = "imports", operation_id = "createImport",
    description = "Each URL is fetched in the background (public addresses only, at most 3 redirects, 10 s to \
        respond, 50 MiB) and ingested like an upload.",
    request_body(content = NewImport, content_type = "application/json"),
    responses(
        (status = 202, description = "Queued; follow `status_url` (also in `Location`).", body = imports::CreatedView,
            headers(("Location" = String, description = "The job's status URL."))),
        (status = 400, description = "`invalid_utf8`.", body = ErrorEnvelope),
        (status = 413, description = "`request_too_large`: a body over 256 KiB.", body = ErrorEnvelope),
        (status = 422, description = "`bad_json`, `bad_urls` or `bad_url` (naming the entry).", body = ErrorEnvelope),
        (status = 503, description = "`unavailable` (storage failed) or `imports_unavailable`.", body = ErrorEnvelope),
    )
)]
#[instrument(skip_all)]
async fn create_import(State(app): State<App>, BaseUrl(base): BaseUrl, req: Request) -> Result<Response> {
    let body = axum::body::to_bytes(req.into_body(), MAX_BODY)
        .await
        .map_err(|_| Error::client(Refusal::TooLarge, "request_too_large", "the request body is too large"))?;
    let urls = parse_urls(&body)?;
    let created = imports::create(&app, &urls).await?;
    let body = created.view(&base);
    let headers = [(header::LOCATION, body.status_url.clone()), (header::CACHE_CONTROL, "no-store".to_owned())];
    Ok((StatusCode::ACCEPTED, headers, Json(body)).into_response())
}

/// A job's status and each URL's.
#[utoipa::path(
    get, path = "/v1/imports/{job_id}", tag = "imports", operation_id = "getImport",
    params(("job_id" = String, Path, pattern = r"^[A-Za-z0-9_-]{22}$", example = "Xb9kT3v9QzL0aBcDeFgHiJ")),
    responses(
        (status = 200, description = "The job.", body = imports::JobView),
        (status = 404, description = "`not_found`: no such job.", body = ErrorEnvelope),
        (status = 503, description = "`unavailable`: storage failed; retry.", body = ErrorEnvelope),
    )
)]
#[instrument(skip(app, base))]
async fn import_status(State(app): State<App>, BaseUrl(base): BaseUrl, Path(job_id): Path<String>) -> Result<Response> {
    let view = imports::view(&app, &job_id, &base).await?;
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(view)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_checked_entry_by_entry() {
        let cases: &[(&str, Result<usize, &str>)] = &[
            (r#"{"urls": ["https://a.example/x.jpg", "http://b.example/y.png"]}"#, Ok(2)),
            (r#"{"urls": ["https://a.example/x.jpg", 7]}"#, Err("urls[1]: not a string")),
            (r#"{"urls": "https://a.example/x.jpg"}"#, Err("must be an array")),
            (r#"{"url": ["https://a.example/x.jpg"]}"#, Err("unknown field \"url\"")),
            (r#"["https://a.example/x.jpg"]"#, Err("must be an object")),
            ("{", Err("not valid JSON")),
        ];
        for (body, want) in cases {
            match (parse_urls(body.as_bytes()), want) {
                (Ok(urls), Ok(n)) => assert_eq!(urls.len(), *n, "{body}"),
                (Err(e), Err(w)) => {
                    assert_eq!(e.status(), StatusCode::UNPROCESSABLE_ENTITY, "{body}");
                    assert!(e.public_message().contains(w), "{body}: {}", e.public_message());
                }
                (got, _) => panic!("{body}: {got:?}"),
            }
        }
    }
}
