//! The request a task is answering, for code far below the handler that wants to name it: the
//! error body (`http::ErrorEnvelope`) and the metric lines (`metrics`). It is a foundation, so that
//! those can ask without depending on the HTTP layer that sets it (`http::request_id`).

use std::future::Future;

tokio::task_local! {
    static REQUEST_ID: String;
}

/// Runs `work` as the answering of request `id`.
pub async fn with_request_id<F: Future>(id: String, work: F) -> F::Output {
    REQUEST_ID.scope(id, work).await
}

/// The id of the request being answered on this task, if any.
pub fn request_id() -> Option<String> {
    REQUEST_ID.try_with(|id| id.clone()).ok()
}
