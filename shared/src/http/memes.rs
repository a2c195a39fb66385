//! The `memes` function: `GET /v1/memes`, one prepaid token per delivered meme.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tracing::instrument;

use super::Params;
use super::accounts::idempotency_key;
use super::{base_url, bearer};
use crate::accounts;
use crate::error::Result;
use crate::memes::render::{Captioner, Renderer};
use crate::memes::{self, MemeRequest};
use crate::state::App;

#[derive(Clone)]
struct MemeState {
    app: App,
    renderer: Arc<dyn Renderer>,
}

/// The function's router, as its Lambda runs it.
pub fn router(app: App) -> Router {
    super::finish(routes(app))
}

/// The routes alone, for merging with other functions' routes (the local runner).
pub fn routes(app: App) -> Router {
    routes_with(app, Arc::new(Captioner))
}

/// The routes with another renderer (tests inject failures with it).
pub fn routes_with(app: App, renderer: Arc<dyn Renderer>) -> Router {
    Router::new().route("/v1/memes", get(get_meme)).with_state(MemeState { app, renderer })
}

#[instrument(skip_all)]
async fn get_meme(State(state): State<MemeState>, headers: HeaderMap, Params(params): Params) -> Result<Response> {
    // Who pays comes first: an unknown key learns nothing about the parameters.
    let account_id = accounts::authenticate(&state.app, bearer(&headers)).await?;
    let request = MemeRequest::parse(&params)?;
    let key = idempotency_key(&headers)?;
    let base = base_url(&state.app, &headers);
    let answer = memes::deliver(&state.app, state.renderer.clone(), &account_id, &request, key, &base).await?;
    let replayed = if answer.replayed { "true" } else { "false" };
    Ok((
        [(header::CACHE_CONTROL, "no-store"), (header::HeaderName::from_static("idempotent-replayed"), replayed)],
        Json(answer.body),
    )
        .into_response())
}
