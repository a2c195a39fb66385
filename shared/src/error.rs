//! The domain error type. Every failure a request can meet is one of these; the HTTP layer maps
//! each to a status code and the `{"error": {"code", "message"}}` body, and workers ask
//! [`Error::is_retryable`] whether to try again.

use http::StatusCode;

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A problem with the request that the client can fix. `code` is a stable machine-readable
    /// name; `message` says in words what was wrong.
    #[error("{message}")]
    Client { status: StatusCode, code: &'static str, message: String },
    /// Storage failed. Condition failures that reach here were not expected by the caller.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A bug or an impossible state. Details are logged, never returned.
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn client(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Error::Client { status, code, message: message.into() }
    }
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::client(StatusCode::BAD_REQUEST, code, message)
    }
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::client(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }
    pub fn not_found(what: &str) -> Self {
        Self::client(StatusCode::NOT_FOUND, "not_found", format!("{what} not found"))
    }
    pub fn unauthorized() -> Self {
        Self::client(StatusCode::UNAUTHORIZED, "unauthorized", "missing or invalid credentials")
    }
    pub fn internal(e: impl std::fmt::Display) -> Self {
        Error::Internal(e.to_string())
    }

    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::Client { status, .. } => *status,
            // The backend being down or throttled is worth retrying; say so with 503.
            Error::Store(StoreError::Backend(_)) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Store(StoreError::ConditionFailed { .. }) => StatusCode::CONFLICT,
            Error::Store(StoreError::InvalidCursor(_)) => StatusCode::BAD_REQUEST,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable error code.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Client { code, .. } => code,
            Error::Store(StoreError::Backend(_)) => "unavailable",
            Error::Store(StoreError::ConditionFailed { .. }) => "conflict",
            Error::Store(StoreError::InvalidCursor(_)) => "invalid_cursor",
            Error::Internal(_) => "internal",
        }
    }

    /// The message shown to the client: the full text for client errors, a generic one for
    /// server-side failures whose details belong in the logs.
    pub fn public_message(&self) -> String {
        match self {
            Error::Client { message, .. } => message.clone(),
            Error::Store(StoreError::Backend(_)) => "storage is temporarily unavailable; try again".into(),
            Error::Store(StoreError::ConditionFailed { .. }) => "the resource changed concurrently; try again".into(),
            Error::Store(StoreError::InvalidCursor(_)) => "the cursor is not one this listing returned".into(),
            Error::Internal(_) => "internal error".into(),
        }
    }

    /// Whether a worker should retry the work that failed with this error.
    pub fn is_retryable(&self) -> bool {
        match self {
            // A 503 from the domain ("busy") means a concurrent writer; trying later succeeds.
            Error::Client { status, .. } => *status == StatusCode::SERVICE_UNAVAILABLE,
            Error::Internal(_) | Error::Store(StoreError::InvalidCursor(_)) => false,
            Error::Store(_) => true,
        }
    }
}
