//! The domain error type. Every failure a request can meet is one of these. The domain says
//! what kind of refusal a client error is ([`Refusal`]); the HTTP layer alone turns it into a
//! status code and the `{"error": {"code", "message"}}` body (`http::status_of`), and workers
//! ask [`Error::is_retryable`] whether to try again.

use crate::store::StoreError;

/// What kind of refusal a client error is, in the domain's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The request is malformed.
    BadRequest,
    /// Missing or wrong credentials.
    Unauthorized,
    /// The account has nothing left to pay with.
    PaymentRequired,
    /// The credentials are fine but do not allow this.
    Forbidden,
    NotFound,
    MethodNotAllowed,
    /// The thing is in a state that does not allow this now.
    Conflict,
    /// The thing existed and is gone for good (an expired or revoked link).
    Gone,
    /// Over a size or complexity limit.
    TooLarge,
    /// Not a kind of content this service takes.
    UnsupportedMedia,
    /// A byte range outside the content.
    RangeNotSatisfiable,
    /// Well-formed, but its content breaks a rule.
    Unprocessable,
    /// A variant of a protocol this service does not offer (oEmbed's XML format).
    NotImplemented,
    /// Not possible right now (a concurrent writer, a capability not configured); worth trying
    /// again later.
    Unavailable,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A problem with the request that the client can fix. `code` is a stable machine-readable
    /// name; `message` says in words what was wrong.
    #[error("{message}")]
    Client { refusal: Refusal, code: &'static str, message: String },
    /// Storage failed. Condition failures that reach here were not expected by the caller.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A bug or an impossible state. Details are logged, never returned.
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn client(refusal: Refusal, code: &'static str, message: impl Into<String>) -> Self {
        Error::Client { refusal, code, message: message.into() }
    }
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::client(Refusal::BadRequest, code, message)
    }
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::client(Refusal::Unprocessable, code, message)
    }
    pub fn not_found(what: &str) -> Self {
        Self::client(Refusal::NotFound, "not_found", format!("{what} not found"))
    }
    pub fn unauthorized() -> Self {
        Self::client(Refusal::Unauthorized, "unauthorized", "missing or invalid credentials")
    }
    pub fn internal(e: impl std::fmt::Display) -> Self {
        Error::Internal(e.to_string())
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
            // "Unavailable" from the domain ("busy") means a concurrent writer; trying later succeeds.
            Error::Client { refusal, .. } => *refusal == Refusal::Unavailable,
            Error::Internal(_) | Error::Store(StoreError::InvalidCursor(_)) => false,
            Error::Store(_) => true,
        }
    }
}
