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
use super::{Admin, bearer};
use crate::accounts;
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

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NewAccount {
    name: String,
}

#[instrument(skip_all)]
async fn create(_: Admin, State(app): State<App>, req: Request) -> Result<Response> {
    let new: NewAccount = json_body(req).await?;
    let created = accounts::create(&app, &new.name).await?;
    Ok((StatusCode::CREATED, [(header::CACHE_CONTROL, "no-store")], Json(created)).into_response())
}

#[instrument(skip_all)]
async fn list(_: Admin, State(app): State<App>, Params(params): Params) -> Result<Response> {
    let (limit, cursor) = super::page_params(&params)?;
    let (accounts, next) = accounts::list(&app, limit, cursor).await?;
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(super::page_body("accounts", &accounts, next))).into_response())
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Purchase {
    amount: i64,
}

#[instrument(skip_all, fields(account_id = %id))]
async fn purchase(_: Admin, State(app): State<App>, Path(id): Path<String>, req: Request) -> Result<Response> {
    let key = idempotency_key(req.headers())?
        .ok_or_else(|| Error::unprocessable("idempotency_key_required", "a purchase needs an Idempotency-Key header"))?
        .to_owned();
    let purchase: Purchase = json_body(req).await?;
    let balance = accounts::purchase(&app, &id, purchase.amount, &key).await?;
    Ok(Json(balance).into_response())
}

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
