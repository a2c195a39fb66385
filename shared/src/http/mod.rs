//! HTTP routers. Each function crate runs one of these with `lambda_http`; the local runner
//! merges them all into one server. Everything here answers errors as
//! `{"error": {"code", "message"}}`.

pub mod accounts;
pub mod images;
pub mod imports;
pub mod keepalive;
pub mod links;
pub mod memes;
pub mod stats;
pub mod upload;
pub mod web;

use axum::Json;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tracing::error;

use crate::error::Error;
use crate::state::App;

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            // The details go to the log, never to the client.
            error!(error = %self, "request failed");
        }
        let body = json!({"error": {"code": self.code(), "message": self.public_message()}});
        (status, Json(body)).into_response()
    }
}

/// The JSON 404 for paths no router knows.
pub async fn not_found() -> Error {
    Error::client(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

/// The JSON 405 for a known path with the wrong method.
pub async fn method_not_allowed() -> Error {
    Error::client(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this endpoint does not accept that method")
}

/// Gives a router the JSON fallbacks every router shares, and the safety net that turns any
/// error response that is not JSON yet (axum's own extractor rejections, such as a path that
/// is not UTF-8) into the `{"error": ...}` shape. Applied once to a whole router: axum cannot
/// merge two routers that each have a fallback.
pub fn finish<S: Clone + Send + Sync + 'static>(router: axum::Router<S>) -> axum::Router<S> {
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::map_response(json_errors))
}

async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    // Rejection texts are short and written for people; keep them as the message.
    let text =
        axum::body::to_bytes(body, 4096).await.map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
    let message = if text.trim().is_empty() { status.canonical_reason().unwrap_or("error").to_owned() } else { text };
    let code = match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::PAYLOAD_TOO_LARGE => "request_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "unprocessable",
        s if s.is_server_error() => "internal",
        _ => "error",
    };
    let mut out = (status, Json(json!({"error": {"code": code, "message": message}}))).into_response();
    for (name, value) in
        parts.headers.iter().filter(|(n, _)| *n != http::header::CONTENT_TYPE && *n != http::header::CONTENT_LENGTH)
    {
        out.headers_mut().insert(name.clone(), value.clone());
    }
    out
}

/// The base URL links are built on: the configured public URL, else the request's own origin.
pub struct BaseUrl(pub String);

impl FromRequestParts<App> for BaseUrl {
    type Rejection = Error;
    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Error> {
        Ok(BaseUrl(base_url(app, &parts.headers)))
    }
}

pub fn base_url(app: &App, headers: &HeaderMap) -> String {
    if let Some(u) = &app.public_url {
        return u.clone();
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).filter(|v| !v.is_empty());
    let host = header("x-forwarded-host").or_else(|| header("host")).unwrap_or("localhost");
    // Only two schemes are meaningful; anything else in the header is ignored.
    let proto = match header("x-forwarded-proto") {
        Some("https") => "https",
        _ => "http",
    };
    format!("{proto}://{host}")
}

/// The `limit` (1 to 100, default 50) and `cursor` of a paged admin listing.
pub fn page_params(
    params: &std::collections::HashMap<String, String>,
) -> Result<(usize, Option<crate::store::Cursor>), Error> {
    let limit = match params.get("limit").map(String::as_str) {
        None | Some("") => 50,
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| Error::unprocessable("bad_limit", "limit must be a whole number from 1 to 100"))?,
    };
    let cursor = match params.get("cursor").map(String::as_str) {
        None | Some("") => None,
        Some(c) => Some(
            images::decode_cursor(c)
                .ok_or_else(|| Error::unprocessable("bad_cursor", "the cursor is not one this API returned"))?,
        ),
    };
    Ok((limit, cursor))
}

/// The bearer token of the request, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token.trim())
}

/// Whether the request carries the admin token.
pub fn is_admin(app: &App, headers: &HeaderMap) -> bool {
    bearer(headers).is_some_and(|t| app.is_admin_token(t))
}

/// Extractor that admits only the admin; anything else is a 401 revealing nothing more.
pub struct Admin;

impl FromRequestParts<App> for Admin {
    type Rejection = Error;
    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Error> {
        if is_admin(app, &parts.headers) { Ok(Admin) } else { Err(Error::unauthorized()) }
    }
}
