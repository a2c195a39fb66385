//! The `accounts` function: prepaid accounts and their listing (admin) and the balance (the
//! account's key).

use axum::Json;
use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tracing::instrument;

use super::Params;
use super::{Admin, ErrorEnvelope, bearer};
use crate::accounts::{self, Balance, Listed};
use crate::error::{Error, Result};
use crate::state::App;

/// The function's router, as its Lambda runs it.
pub fn router(app: App) -> Router {
    super::finish(routes(app))
}

/// The routes alone, for merging with other functions' routes (the local runner).
pub fn routes(app: App) -> Router {
    Router::new()
        .route("/v1/accounts", post(create).get(list))
        .route("/v1/accounts/{id}/tokens", post(purchase))
        .route("/v1/balance", get(balance))
        .with_state(app)
}

async fn json_body<T: serde::de::DeserializeOwned>(req: Request) -> Result<T> {
    super::input::json_body(req.into_body(), 4 * 1024, "the body is not valid").await
}

/// The body of `POST /v1/accounts`.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Acme Memes Ltd"}))]
pub struct NewAccount {
    /// 1 to 100 characters, no control characters (white space around it is trimmed).
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^\s*[^\s\u0000-\u001f\u007f-\u009f]([^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f])?\s*$"
    )]
    name: String,
}

/// One page of the admin's listing of accounts, newest first.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct AccountPage {
    pub accounts: Vec<Listed>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

/// Creates an account (admin); its API key is shown once.
#[utoipa::path(
    post, path = "/v1/accounts", tag = "accounts", operation_id = "createAccount",
    security(("adminToken" = [])),
    request_body(content = NewAccount, content_type = "application/json"),
    responses(
        (status = 201, description = "The account id and its API key (shown once).", body = accounts::Created),
        (status = 400, description = "`invalid_utf8`.", body = ErrorEnvelope),
        (status = 401, description = "`unauthorized`: no admin token.", body = ErrorEnvelope),
        (status = 413, description = "`request_too_large`: a body over 4 KiB.", body = ErrorEnvelope),
        (status = 422, description = "`bad_json` or `bad_name`.", body = ErrorEnvelope),
        (status = 503, description = "`unavailable`: storage failed; retry.", body = ErrorEnvelope),
    )
)]
#[instrument(skip_all)]
async fn create(_: Admin, State(app): State<App>, req: Request) -> Result<Response> {
    let new: NewAccount = json_body(req).await?;
    let created = accounts::create(&app, &new.name).await?;
    Ok((StatusCode::CREATED, [(header::CACHE_CONTROL, "no-store")], Json(created)).into_response())
}

/// Every account with its balance (admin).
#[utoipa::path(
    get, path = "/v1/accounts", tag = "accounts", operation_id = "listAccounts",
    security(("adminToken" = [])),
    params(super::openapi::PageQuery),
    responses(
        (status = 200, description = "One page of accounts.", body = AccountPage),
        (status = 400, description = "`invalid_cursor`, `invalid_utf8` or `duplicate_parameter`.", body = ErrorEnvelope),
        (status = 401, description = "`unauthorized`: no admin token.", body = ErrorEnvelope),
        (status = 422, description = "`bad_limit`.", body = ErrorEnvelope),
        (status = 503, description = "`unavailable`: storage failed; retry.", body = ErrorEnvelope),
    )
)]
#[instrument(skip_all)]
async fn list(_: Admin, State(app): State<App>, Params(params): Params) -> Result<Response> {
    let (limit, cursor) = super::page_params(&params)?;
    let (accounts, next) = accounts::list(&app, limit, cursor).await?;
    let page = AccountPage { accounts, next_cursor: super::next_cursor(next) };
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(page)).into_response())
}

/// The body of `POST /v1/accounts/{id}/tokens`.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"amount": 100}))]
pub struct Purchase {
    /// Tokens to add: 1 to 1,000,000.
    #[schema(value_type = i64, minimum = 1, maximum = 1000000)]
    #[serde(deserialize_with = "crate::json::whole_number")]
    amount: Option<i64>,
}

/// Buys tokens for an account (admin); a retry with the same `Idempotency-Key` adds them once.
#[utoipa::path(
    post, path = "/v1/accounts/{id}/tokens", tag = "accounts", operation_id = "buyTokens",
    security(("adminToken" = [])),
    params(("id" = String, Path, description = "The account id.", pattern = r"^[A-Za-z0-9_-]{22}$", example = "Xb9kT3v9QzL0aBcDeFgHiJ"), ("Idempotency-Key" = String, Header, description = "Makes a retry safe: the same key is applied once.",
            pattern = r"^[!-~]{1,255}$", min_length = 1, max_length = 255, example = "purchase-2026-12-03-0001")),
    request_body(content = Purchase, content_type = "application/json"),
    responses(
        (status = 200, description = "The account's balance after the purchase.", body = Balance),
        (status = 400, description = "`invalid_utf8`.", body = ErrorEnvelope),
        (status = 401, description = "`unauthorized`: no admin token.", body = ErrorEnvelope),
        (status = 404, description = "`not_found`: no such account.", body = ErrorEnvelope),
        (status = 413, description = "`request_too_large`: a body over 4 KiB.", body = ErrorEnvelope),
        (status = 422, description = "`idempotency_key_required`, `bad_idempotency_key`, `idempotency_key_reused`, `bad_json` or `bad_amount`.", body = ErrorEnvelope),
        (status = 503, description = "`unavailable`: storage failed; retry.", body = ErrorEnvelope),
    )
)]
#[instrument(skip_all, fields(account_id = %id))]
async fn purchase(_: Admin, State(app): State<App>, Path(id): Path<String>, req: Request) -> Result<Response> {
    let key = idempotency_key(req.headers())?
        .ok_or_else(|| Error::unprocessable("idempotency_key_required", "a purchase needs an Idempotency-Key header"))?
        .to_owned();
    let purchase: Purchase = json_body(req).await?;
    let amount =
        purchase.amount.ok_or_else(|| Error::unprocessable("bad_json", "the body is not valid: amount is null"))?;
    let balance = accounts::purchase(&app, &id, amount, &key).await?;
    Ok(Json(balance).into_response())
}

/// The account's tokens, for its own API key.
#[utoipa::path(
    get, path = "/v1/balance", tag = "accounts", operation_id = "getBalance",
    security(("accountKey" = [])),
    responses(
        (status = 200, description = "Purchased, used and remaining tokens.", body = Balance),
        (status = 401, description = "`unauthorized`: no API key, or an unknown one.", body = ErrorEnvelope),
        (status = 404, description = "`not_found`: the key's account is gone.", body = ErrorEnvelope),
        (status = 503, description = "`unavailable`: storage failed; retry.", body = ErrorEnvelope),
    )
)]
#[instrument(skip_all)]
async fn balance(State(app): State<App>, headers: HeaderMap) -> Result<Response> {
    let account_id = accounts::authenticate(&app, bearer(&headers)).await?;
    let balance = accounts::balance(&app, &account_id).await?;
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(balance)).into_response())
}

/// The `Idempotency-Key` header, if present; a header that is not text is a 422.
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<&str>> {
    match headers.get("idempotency-key") {
        None => Ok(None),
        Some(v) => v.to_str().map(Some).map_err(|_| {
            Error::unprocessable("bad_idempotency_key", "Idempotency-Key must be visible ASCII characters")
        }),
    }
}
