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
use super::{ErrorEnvelope, base_url, bearer};
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

/// The query of `GET /v1/memes`. Only its schema is used: [`MemeRequest::parse`] reads the
/// parameters, naming the one at fault.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct MemeQuery {
    /// Latitude: a plain decimal from -90 to 90 (at most 3 integer and 12 fraction digits).
    #[param(pattern = r"^-?[0-9]{1,3}(\.[0-9]{1,12})?$", example = "52.52")]
    lat: String,
    /// Longitude: a plain decimal from -180 to 180 (at most 3 integer and 12 fraction digits).
    #[param(pattern = r"^-?[0-9]{1,3}(\.[0-9]{1,12})?$", example = "13.405")]
    lon: String,
    /// The caption: 1 to 100 characters, no control characters.
    #[param(min_length = 1, max_length = 100, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$", example = "hello")]
    query: String,
    /// `text` (the default) or `image`.
    format: Option<crate::memes::MemeFormat>,
    /// With `format=image`: a hosted image's id to caption instead of a plain background.
    #[param(pattern = r"^[A-Za-z0-9_-]{8}$")]
    image: Option<String>,
}

/// One meme for one token.
#[utoipa::path(
    get, path = "/v1/memes", tag = "memes", operation_id = "getMeme",
    description = "`text` answers `<account>_<lat>_<lon>_<query>`; `image` renders the query as a caption over a \
        plain background or a hosted image and answers its link. The same `Idempotency-Key` within 24 h replays the \
        first answer without a charge; a failure after the charge gives the token back.",
    security(("accountKey" = [])),
    params(MemeQuery,
        ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe: the same key is charged once.",
            pattern = r"^[!-~]{1,255}$", min_length = 1, max_length = 255, example = "meme-0001")),
    responses(
        (status = 200, description = "The meme and the tokens left.", body = crate::memes::MemeBody,
            headers(("Idempotent-Replayed" = bool, description = "Whether this answer replays an earlier request with the same key."))),
        (status = 400, description = "`invalid_utf8` or `duplicate_parameter`.", body = ErrorEnvelope),
        (status = 401, description = "`unauthorized`: no API key, or an unknown one.", body = ErrorEnvelope),
        (status = 402, description = "`tokens_exhausted`.", body = ErrorEnvelope),
        (status = 409, description = "`in_progress`: a request with this key is still being answered.", body = ErrorEnvelope),
        (status = 413, description = "`too_complex` and the like: the background image is over the decode budget.", body = ErrorEnvelope),
        (status = 422, description = "`bad_parameter`, `bad_idempotency_key`, `idempotency_key_reused` or `image_unusable`.", body = ErrorEnvelope),
        (status = 503, description = "`unavailable` (storage failed) or `busy`; retry.", body = ErrorEnvelope),
    )
)]
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
