//! What every HTTP Lambda function does around its router, in the one crate besides the
//! functions themselves that knows the Lambda runtime (`imghost` must not).
//!
//! API Gateway gives each request an id, which it writes in its own logs and hands to the
//! function in the event's request context. [`run_http`] copies it into the `x-request-id`
//! header before the router runs, replacing any the client sent, so that the router's request
//! id (`imghost::http::request_id`) is API Gateway's: one id in every log that request touches.

use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};
use tower::ServiceExt;

/// Serves `router` as the function's handler, with API Gateway's request id as the request id.
pub async fn run_http(router: axum::Router) -> Result<(), lambda_http::Error> {
    lambda_http::run(tower::service_fn(move |request: Request| router.clone().oneshot(with_gateway_id(request)))).await
}

/// The request with API Gateway's request id in `x-request-id`. Without one (an event that did
/// not come through API Gateway) the client's header is removed too, and the router makes an id.
pub fn with_gateway_id(mut request: Request) -> Request {
    // The functions are built for HTTP APIs (payload version 2.0) only.
    let id = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.request_id.clone(),
        _ => None,
    };
    let header = imghost::http::request_id::HEADER;
    match id.filter(|id| imghost::http::request_id::is_valid(id)).and_then(|id| id.parse().ok()) {
        Some(value) => request.headers_mut().insert(header, value),
        None => request.headers_mut().remove(header),
    };
    request
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    /// An HTTP API event for `GET /v1/ping` with `request_id` in its context and `header` sent by
    /// the client.
    fn event(request_id: Option<&str>, header: Option<&str>) -> Request {
        let mut event = serde_json::json!({
            "version": "2.0", "routeKey": "GET /v1/ping", "rawPath": "/v1/ping", "rawQueryString": "",
            "headers": {}, "isBase64Encoded": false,
            "requestContext": {"accountId": "123456789012", "apiId": "api", "domainName": "api.example",
                "domainPrefix": "api", "http": {"method": "GET", "path": "/v1/ping", "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1", "userAgent": "test"}, "routeKey": "GET /v1/ping", "stage": "$default",
                "time": "03/Dec/2026:10:00:00 +0000", "timeEpoch": 0}
        });
        if let Some(id) = request_id {
            event["requestContext"]["requestId"] = id.into();
        }
        if let Some(h) = header {
            event["headers"]["x-request-id"] = h.into();
        }
        lambda_http::request::from_str(&event.to_string()).unwrap()
    }

    async fn answered_id(request: Request) -> (String, String) {
        let router = imghost::http::finish(axum::Router::new());
        let response = router.oneshot(with_gateway_id(request)).await.unwrap();
        let header = response.headers()["x-request-id"].to_str().unwrap().to_owned();
        let body: serde_json::Value =
            serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
        (header, body["error"]["request_id"].as_str().unwrap().to_owned())
    }

    #[tokio::test]
    async fn api_gateway_id_replaces_the_clients() {
        // Given an event from API Gateway whose client also sent an id of its own,
        let request = event(Some("JVqk0jIvIAMEM3w="), Some("client-chosen"));
        // when the router answers it (a 404: no routes),
        let (header, body) = answered_id(request).await;
        // then the answer and its error body carry API Gateway's id.
        assert_eq!(header, "JVqk0jIvIAMEM3w=");
        assert_eq!(body, header);
    }

    #[tokio::test]
    async fn without_a_gateway_id_the_router_makes_one() {
        // Given an event without a request id and a client header,
        let (header, body) = answered_id(event(None, Some("client-chosen"))).await;
        // then the client's id is not taken, and a new one is answered in both places.
        assert_ne!(header, "client-chosen");
        assert!(imghost::http::request_id::is_valid(&header));
        assert_eq!(body, header);
    }
}
