//! HTTP routers. Each function crate runs one of these with `lambda_http`; the local runner
//! merges them all into one server. Everything here answers errors as
//! `{"error": {"code", "message"}}` ([`ErrorEnvelope`]).

pub mod accounts;
pub mod images;
pub mod imports;
pub mod input;
pub mod keepalive;
pub mod links;
pub mod memes;
pub mod metrics;
pub mod openapi;
pub mod request_id;
pub mod stats;
pub mod upload;
pub mod web;

use axum::Json;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tracing::error;

use crate::error::{Error, Refusal};
use crate::state::App;
use crate::store::StoreError;
pub use input::{Params, next_cursor, page_params};

/// Every error answer: `{"error": {"code", "message", "request_id"}}`. The one type errors are
/// serialized from, so the OpenAPI document's `ErrorEnvelope` is what clients get.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"error": {"code": "not_found", "message": "no such image", "request_id": "3q2-7wEXAMPLEid0X9aBcQ"}}))]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

/// What went wrong: a stable machine-readable code and a message for people.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Stable across releases; clients branch on it.
    #[schema(example = "not_found")]
    pub code: String,
    /// For people; may change.
    pub message: String,
    /// The request's id, as in the `x-request-id` header (see `request_id`): present on every
    /// answer to a request; absent only where no request is being answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl ErrorEnvelope {
    /// The envelope of an error answered to the current request, whose id it carries.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        let request_id = crate::context::request_id();
        ErrorEnvelope { error: ErrorBody { code: code.into(), message: message.into(), request_id } }
    }
}

impl Error {
    /// The HTTP status this error answers with: the one place refusals become status codes.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::Client { refusal, .. } => match refusal {
                Refusal::BadRequest => StatusCode::BAD_REQUEST,
                Refusal::Unauthorized => StatusCode::UNAUTHORIZED,
                Refusal::PaymentRequired => StatusCode::PAYMENT_REQUIRED,
                Refusal::Forbidden => StatusCode::FORBIDDEN,
                Refusal::NotFound => StatusCode::NOT_FOUND,
                Refusal::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
                Refusal::Conflict => StatusCode::CONFLICT,
                Refusal::Gone => StatusCode::GONE,
                Refusal::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
                Refusal::UnsupportedMedia => StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Refusal::RangeNotSatisfiable => StatusCode::RANGE_NOT_SATISFIABLE,
                Refusal::Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
                Refusal::NotImplemented => StatusCode::NOT_IMPLEMENTED,
                Refusal::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            },
            // The backend being down or throttled is worth retrying; say so with 503.
            Error::Store(StoreError::Backend(_)) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Store(StoreError::ConditionFailed { .. }) => StatusCode::CONFLICT,
            Error::Store(StoreError::InvalidCursor(_)) => StatusCode::BAD_REQUEST,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        // 501 is a refusal (a format not offered), not a fault.
        if status.is_server_error() && status != StatusCode::NOT_IMPLEMENTED {
            // The details go to the log, never to the client.
            error!(error = %self, "request failed");
        }
        let body = ErrorEnvelope::new(self.code(), self.public_message());
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            // The rest of the body was never read, so the connection cannot carry another
            // request: say so, or a client reusing it would see its next request fail.
            response.headers_mut().insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
        }
        response
    }
}

/// The JSON 404 for paths no router knows.
pub async fn not_found() -> Error {
    Error::client(Refusal::NotFound, "not_found", "no such endpoint")
}

/// The JSON 405 for a known path with the wrong method.
pub async fn method_not_allowed() -> Error {
    Error::client(Refusal::MethodNotAllowed, "method_not_allowed", "this endpoint does not accept that method")
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
        .layer(axum::middleware::from_fn(request_id::track))
}

async fn json_errors(response: Response) -> Response {
    let status = response.status();
    // JSON is already the error shape; HTML is one of our own pages (an unknown image's page
    // answers 404 as a page). Axum's rejections are plain text.
    let is_ours = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.starts_with("text/html"));
    if !(status.is_client_error() || status.is_server_error()) || is_ours {
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
    let mut out = (status, Json(ErrorEnvelope::new(code, message))).into_response();
    for (name, value) in
        parts.headers.iter().filter(|(n, _)| *n != http::header::CONTENT_TYPE && *n != http::header::CONTENT_LENGTH)
    {
        out.headers_mut().insert(name.clone(), value.clone());
    }
    out
}

/// The base URL links are built on (see [`base_url`]).
pub struct BaseUrl(pub String);

impl FromRequestParts<App> for BaseUrl {
    type Rejection = Error;
    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Error> {
        Ok(BaseUrl(base_url(app, &parts.headers)))
    }
}

/// The base URL links are built on. The configured public URL when there is one (the local
/// runner always has one: `--public-url`, or its own listening address). Otherwise the request's
/// `Host` over HTTPS: in AWS that header is the API's own domain, since API Gateway routes by
/// it. `X-Forwarded-Host` and `X-Forwarded-Proto` count only when the operator trusts a proxy to
/// set them; a client could send them too. A host that is not a plain host name or address
/// (with an optional port) is never put into a link.
pub fn base_url(app: &App, headers: &HeaderMap) -> String {
    if let Some(u) = &app.public_url {
        return u.clone();
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).filter(|v| !v.is_empty());
    let forwarded = |name: &str| if app.trust_proxy { header(name) } else { None };
    let host = forwarded("x-forwarded-host").or_else(|| header("host")).filter(|h| is_plain_host(h));
    let proto = match forwarded("x-forwarded-proto") {
        Some("http") => "http",
        _ => "https",
    };
    format!("{proto}://{}", host.unwrap_or("localhost"))
}

/// A host name, IPv4 address or bracketed IPv6 address, with an optional port: nothing that
/// could change what a link points at (no user info, path, query or spaces).
fn is_plain_host(h: &str) -> bool {
    h.len() <= 255
        && !h.is_empty()
        && h.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

/// The bearer token of the request, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token.trim())
}

/// Whether the request carries the admin token.
pub async fn is_admin(app: &App, headers: &HeaderMap) -> Result<bool, Error> {
    match bearer(headers) {
        Some(token) => app.is_admin_token(token).await,
        None => Ok(false),
    }
}

/// Extractor that admits only the admin; anything else is a 401 revealing nothing more.
pub struct Admin;

impl FromRequestParts<App> for Admin {
    type Rejection = Error;
    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Error> {
        if is_admin(app, &parts.headers).await? { Ok(Admin) } else { Err(Error::unauthorized()) }
    }
}
