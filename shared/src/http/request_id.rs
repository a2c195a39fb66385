//! Request ids: one id per request, on its answer, in its error body and on the log lines of its
//! task (work moved to a blocking thread logs without it), so that a user's report
//! (`"request_id": "..."`) leads to the log lines of that request.
//!
//! The id is the `x-request-id` the request arrives with when it is a valid one, or a new one.
//! In AWS the Lambda functions set that header from API Gateway's own request id before the
//! router runs (a client's header is replaced there), so the id also matches API Gateway's
//! access logs. Locally a client's valid id is kept, so a caller can follow its own ids through.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use http::{HeaderName, HeaderValue};
use tracing::{Instrument, info, info_span};

use crate::{context, metrics};

/// The header that carries the id, both ways.
pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The longest id taken from a client.
pub const MAX_LEN: usize = 128;

/// Whether a client's id may be used: 1 to 128 characters from a keep-list (letters, digits
/// and `-_.:=+/`, which covers UUIDs, ULIDs and API Gateway's base64 ids). Anything else, such
/// as spaces, quotes or control characters, could forge or break a log line, and is replaced.
pub fn is_valid(id: &str) -> bool {
    (1..=MAX_LEN).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'=' | b'+' | b'/'))
}

/// A new id: 128 random bits, 22 characters of URL-safe base64.
pub fn generate() -> String {
    crate::secret::new_id128()
}

/// The middleware every router runs (see `http::finish`): settles the request's id, runs the
/// request inside a span that carries it, puts it on the answer, counts 4xx and 5xx answers by
/// route (501, a format not offered, with the 4xx), and logs one line per request.
pub async fn track(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(&HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_valid(v))
        .map(str::to_owned)
        .unwrap_or_else(generate);
    let value = HeaderValue::from_str(&id).expect("a valid id is a valid header value");
    request.headers_mut().insert(HEADER, value.clone());
    let route = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
    let route = route.as_deref().unwrap_or(metrics::UNMATCHED).to_owned();
    let method = request.method().clone();
    let span = info_span!("request", request_id = %id, %method, route = %route);
    let started = Instant::now();
    let answer = async move {
        let mut response = next.run(request).await;
        let status = response.status();
        response.headers_mut().insert(HEADER, value);
        // 501 is the answer to a format a client asked for and is not offered (oEmbed): the
        // client's doing, not a fault.
        if status.is_client_error() || status == http::StatusCode::NOT_IMPLEMENTED {
            metrics::count(&metrics::CLIENT_ERRORS, Some(&route), 1);
        } else if status.is_server_error() {
            metrics::count(&metrics::SERVER_ERRORS, Some(&route), 1);
        }
        info!(status = status.as_u16(), ms = started.elapsed().as_millis() as u64, "answered");
        response
    };
    // The span and the id cover the counting and the last line too, so that every line the
    // request causes, metric lines included, carries the id.
    context::with_request_id(id, answer).instrument(span).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_ids_follow_the_keep_list() {
        // Given ids a client might send, then only the plain ones are kept.
        let long = "a".repeat(MAX_LEN);
        let too_long = "a".repeat(MAX_LEN + 1);
        let cases: &[(&str, bool)] = &[
            ("3f6c1e2a-9b1d-4c55-8a0e-2f1f0e9d7c11", true),
            ("JVqk0jIvIAMEM3w=", true),
            ("01J9ZQ4X7A/trace:1+2_3.4", true),
            (&long, true),
            ("", false),
            (&too_long, false),
            ("has space", false),
            ("quote\"", false),
            ("new\nline", false),
            ("é", false),
            ("{\"json\":1}", false),
        ];
        for (id, valid) in cases {
            assert_eq!(is_valid(id), *valid, "{id:?}");
        }
    }

    #[test]
    fn generated_ids_are_valid_and_distinct() {
        let (a, b) = (generate(), generate());
        assert!(is_valid(&a) && is_valid(&b));
        assert_ne!(a, b);
    }
}
