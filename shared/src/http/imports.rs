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

use super::BaseUrl;
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
