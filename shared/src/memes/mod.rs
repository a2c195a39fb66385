//! Memes paid with prepaid tokens: one token per delivered meme, counted exactly.
//!
//! # How a request is charged
//! 1. The token is taken by a conditional `ADD used 1` that holds only while `used < purchased`.
//!    With an `Idempotency-Key`, the same transaction writes the key's record (`pending`), so a
//!    key is charged at most once, ever.
//! 2. The meme is made (text, or an image rendered and stored as a hosted image).
//! 3. With a key, the record becomes `done` and keeps the answer; a replay within 24 hours gets
//!    it back without a charge. Without a key, nothing more is written.
//!
//! If step 2 fails, the token is given back (and the key's record removed) in one transaction,
//! so a failed request costs nothing. If the process dies between 1 and 3, the record stays
//! `pending`: a retry with the same key after [`TAKEOVER`] finishes the job under the charge
//! already made, instead of charging again or failing forever.

pub mod render;

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use time::OffsetDateTime;
use tracing::{info, instrument, warn};

use crate::accounts::{self, check_idempotency_key};
use crate::error::{Error, Refusal, Result};
use crate::images;
use crate::media::variants::Size;
use crate::media::{self, decode};
use crate::metrics;
use crate::secret;
use crate::state::App;
use crate::store::{Cond, Item, StoreError, TxOp, Update};
use render::Renderer;

/// How long an idempotency key's answer is kept.
pub const IDEMPOTENCY_WINDOW: time::Duration = time::Duration::hours(24);
/// After this long, a `pending` key whose request died may be taken over by its retry.
pub const TAKEOVER: time::Duration = time::Duration::seconds(60);

/// What the meme is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MemeFormat {
    Text,
    Image,
}

/// A checked meme request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemeRequest {
    pub lat: String,
    pub lon: String,
    pub query: String,
    pub format: MemeFormat,
    pub image: Option<String>,
}

impl MemeRequest {
    /// Checks the query parameters; a 422 names the parameter at fault.
    pub fn parse(params: &HashMap<String, String>) -> Result<Self> {
        let bad = |name: &str, why: &str| Error::unprocessable("bad_parameter", format!("{name}: {why}"));
        if let Some(unknown) = params.keys().find(|k| !["lat", "lon", "query", "format", "image"].contains(&k.as_str()))
        {
            return Err(bad(unknown, "unknown parameter"));
        }
        let coordinate = |name: &str, limit: f64| -> Result<String> {
            let v = params.get(name).ok_or_else(|| bad(name, "required"))?;
            let plain = {
                let digits = v.strip_prefix('-').unwrap_or(v);
                let (int, frac) = digits.split_once('.').unwrap_or((digits, "0"));
                !int.is_empty()
                    && !frac.is_empty()
                    && int.len() <= 3
                    && frac.len() <= 12
                    && int.bytes().all(|b| b.is_ascii_digit())
                    && frac.bytes().all(|b| b.is_ascii_digit())
            };
            let n: f64 = if plain { v.parse().map_err(|_| bad(name, "not a plain decimal"))? } else { f64::NAN };
            if !plain {
                return Err(bad(name, "must be a plain decimal such as 52.52 or -13.405"));
            }
            if !(-limit..=limit).contains(&n) {
                return Err(bad(name, &format!("must lie between -{limit} and {limit}")));
            }
            Ok(v.clone())
        };
        let lat = coordinate("lat", 90.0)?;
        let lon = coordinate("lon", 180.0)?;
        let query = params.get("query").ok_or_else(|| bad("query", "required"))?;
        let chars = query.chars().count();
        if chars == 0 || chars > 100 || query.chars().any(char::is_control) {
            return Err(bad("query", "must be 1 to 100 characters without control characters"));
        }
        let format = match params.get("format").map(String::as_str) {
            None | Some("text") => MemeFormat::Text,
            Some("image") => MemeFormat::Image,
            Some(other) => return Err(bad("format", &format!("{other:?} is not text or image"))),
        };
        let image = params.get("image").cloned();
        if let Some(id) = &image {
            if format != MemeFormat::Image {
                return Err(bad("image", "only with format=image"));
            }
            if !secret::is_image_id(id) {
                return Err(bad("image", "not an image id"));
            }
        }
        Ok(MemeRequest { lat, lon, query: query.clone(), format, image })
    }

    /// What makes two requests "the same" for an idempotency key.
    fn fingerprint(&self) -> String {
        let format = match self.format {
            MemeFormat::Text => "text",
            MemeFormat::Image => "image",
        };
        let image = self.image.as_deref().unwrap_or("");
        secret::sha256_hex(format!("{}\n{}\n{}\n{format}\n{image}", self.lat, self.lon, self.query).as_bytes())
    }
}

/// The answer to a meme request.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub body: MemeBody,
    /// The answer is a replay of an earlier request with the same key.
    pub replayed: bool,
}

/// What `GET /v1/memes` answers, and what an idempotency key's record keeps for its replays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"meme": "Xb9kT3v9QzL0aBcDeFgHiJ_52.52_13.405_hello", "format": "text", "remaining": 41}))]
pub struct MemeBody {
    /// The text meme (`<account>_<lat>_<lon>_<query>`), or the link of the image meme.
    pub meme: String,
    pub format: MemeFormat,
    /// Tokens left on the account after this meme.
    pub remaining: i64,
}

enum Charged {
    /// A token was taken for this request; `remaining` is known when the charge's write returned
    /// the account (the path without a key), saving a read.
    Fresh {
        remaining: Option<i64>,
    },
    /// The key's earlier request died after its charge; this one finishes it.
    TakenOver,
    Replay(MemeBody),
}

fn idem_sk(key: &str) -> String {
    format!("IDEM#{}", secret::digest_hex(key))
}

/// Delivers one meme to `account_id`, charging one token (see the module docs).
#[instrument(skip(app, renderer, key, base))]
pub async fn deliver(
    app: &App,
    renderer: Arc<dyn Renderer>,
    account_id: &str,
    req: &MemeRequest,
    key: Option<&str>,
    base: &str,
) -> Result<Answer> {
    if let Some(k) = key {
        check_idempotency_key(k)?;
    }
    // A background that cannot be used is refused before any token is taken.
    let background = match &req.image {
        Some(id) => Some(background_source(app, id).await?),
        None => None,
    };
    let charged = charge(app, account_id, req, key).await?;
    // Counted where the token is taken, once: a takeover finishes a request charged before, and
    // a meme that then fails is counted again as a refund.
    if matches!(charged, Charged::Fresh { .. }) {
        metrics::count(&metrics::MEMES_CHARGED, None, 1);
    }
    if let Charged::Replay(body) = charged {
        return Ok(Answer { body, replayed: true });
    }
    let made = make(app, renderer, account_id, req, background, base).await;
    let meme = match made {
        Ok(meme) => meme,
        Err(e) => {
            warn!(account_id, error = %e, "making the meme failed; giving the token back");
            if let Err(undo) = refund(app, account_id, key).await {
                warn!(account_id, error = %undo, "refund failed");
            }
            return Err(e);
        }
    };
    let remaining = match charged {
        Charged::Fresh { remaining: Some(n) } => n,
        _ => accounts::remaining(app, account_id).await?,
    };
    let body = MemeBody { meme, format: req.format, remaining };
    if let Some(k) = key {
        let answer = serde_json::to_string(&body).map_err(Error::internal)?;
        let update = Update::new().set("status", "done").set("answer", answer).remove("pending_until");
        let pk = accounts::partition(account_id);
        if let Err(e) = app.table.update(&pk, &idem_sk(k), update, Some(Cond::Exists)).await {
            // The meme was delivered and charged; a replay will take over and answer again.
            warn!(account_id, error = %e, "recording the idempotent answer failed");
        }
    }
    if matches!(charged, Charged::TakenOver) {
        info!(account_id, "finished a request whose first attempt died after its charge");
    }
    Ok(Answer { body, replayed: false })
}

/// Takes one token, writing the key's record in the same transaction when there is a key.
async fn charge(app: &App, account_id: &str, req: &MemeRequest, key: Option<&str>) -> Result<Charged> {
    let exhausted = || {
        metrics::count(&metrics::PAYMENT_REQUIRED, None, 1);
        Error::client(Refusal::PaymentRequired, "tokens_exhausted", "no tokens left; buy more to get memes")
    };
    let Some(key) = key else {
        // No key, no record: one conditional update, with nothing else to conflict with.
        return match accounts::charge(app, account_id).await? {
            Some(remaining) => Ok(Charged::Fresh { remaining: Some(remaining) }),
            None => Err(exhausted()),
        };
    };
    let pk = accounts::partition(account_id);
    let now = OffsetDateTime::now_utc();
    let sk = idem_sk(key);
    let record = Item::new(pk.clone(), sk.clone())
        .with("fingerprint", req.fingerprint())
        .with("status", "pending")
        .with("pending_until", (now + TAKEOVER).unix_timestamp())
        .with("expires_at", (now + IDEMPOTENCY_WINDOW).unix_timestamp());
    // A record past its window is treated as absent even before TTL removes it.
    let fresh_key = Cond::Or(vec![Cond::NotExists, Cond::lt("expires_at", now.unix_timestamp())]);
    // The record goes first, so when both conditions fail the key's story is told, not the balance.
    let ops = vec![TxOp::Put { item: record, cond: Some(fresh_key) }, accounts::charge_op(account_id)];
    match app.table.transact(ops).await {
        Ok(()) => Ok(Charged::Fresh { remaining: None }),
        Err(StoreError::ConditionFailed { index: Some(1) }) => Err(exhausted()),
        Err(e) if e.is_condition_failed() => {
            let existing =
                app.table.get(&pk, &sk).await?.ok_or_else(|| Error::internal("idempotency record vanished"))?;
            if existing.str("fingerprint") != Some(req.fingerprint().as_str()) {
                return Err(Error::unprocessable(
                    "idempotency_key_reused",
                    "this Idempotency-Key was used with other parameters",
                ));
            }
            if existing.str("status") == Some("done") {
                // A record is only ever marked done with its answer, so one that does not read
                // back is a fault of the store, not of the request.
                let body = existing
                    .str("answer")
                    .and_then(|a| serde_json::from_str(a).ok())
                    .ok_or_else(|| Error::internal("an idempotent answer does not read back"))?;
                return Ok(Charged::Replay(body));
            }
            // Pending: still running elsewhere, or died after its charge. Take it over only when
            // its time is up, and only one retry can win that update.
            let until = existing.num("pending_until").unwrap_or(i64::MAX);
            if until > now.unix_timestamp() {
                return Err(Error::client(
                    Refusal::Conflict,
                    "in_progress",
                    "a request with this Idempotency-Key is still being answered; retry shortly",
                ));
            }
            let takeover = Update::new().set("pending_until", (now + TAKEOVER).unix_timestamp());
            let cond = Cond::eq("status", "pending").and(Cond::eq("pending_until", until));
            match app.table.update(&pk, &sk, takeover, Some(cond)).await {
                Ok(_) => Ok(Charged::TakenOver),
                Err(e) if e.is_condition_failed() => Err(Error::client(
                    Refusal::Conflict,
                    "in_progress",
                    "a request with this Idempotency-Key is being answered; retry shortly",
                )),
                Err(e) => Err(e.into()),
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// Gives a token back, and forgets the key so that its retry is charged afresh.
async fn refund(app: &App, account_id: &str, key: Option<&str>) -> Result<()> {
    let mut ops = vec![accounts::refund_op(account_id)];
    if let Some(k) = key {
        let pk = accounts::partition(account_id);
        ops.push(TxOp::Delete { pk, sk: idem_sk(k), cond: Some(Cond::eq("status", "pending")) });
    }
    app.table.transact(ops).await?;
    metrics::count(&metrics::MEME_REFUNDS, None, 1);
    Ok(())
}

/// Makes the meme: its text, or the link of the rendered image, stored as a hosted image (so it
/// gets the same dedupe, variants and CDN as any upload).
async fn make(
    app: &App,
    renderer: Arc<dyn Renderer>,
    account_id: &str,
    req: &MemeRequest,
    background: Option<Background>,
    base: &str,
) -> Result<String> {
    if req.format == MemeFormat::Text {
        return Ok(format!("{account_id}_{}_{}_{}", req.lat, req.lon, req.query));
    }
    let caption = req.query.clone();
    // Decoding and rendering are CPU work: off the async workers.
    let png = tokio::task::spawn_blocking(move || {
        let background = background.map(Background::pixels).transpose()?;
        renderer.render(&caption, background).map_err(|e| Error::internal(format!("rendering failed: {e}")))
    })
    .await
    .map_err(Error::internal)??;
    let prepared = images::prepare(&png)?;
    // Nobody holds a delete token for a meme; the admin can delete it like any image.
    let stored = images::store(app, &prepared, &secret::digest_hex(&secret::new_token())).await?;
    Ok(format!("{base}/i/{}.{}", stored.image.id, stored.image.format.ext()))
}

/// The most memory decoding a meme's background may take: a ready variant (at most 1024 pixels
/// on its long edge) always fits; an original without one fits up to about 8 megapixels.
pub const BACKGROUND_DECODE_LIMIT: u64 = 64 << 20;

/// A hosted image's bytes, checked to be decodable within [`BACKGROUND_DECODE_LIMIT`], with
/// their share of the upload memory budget (held until the meme is drawn).
struct Background {
    bytes: bytes::Bytes,
    orientation: u16,
    _reservation: crate::budget::BodyPermit,
}

impl Background {
    /// Decodes, orients and scales the picture to at most 1024 pixels, in sRGB.
    fn pixels(self) -> Result<image::RgbaImage> {
        let decoded = decode::decode(&self.bytes, BACKGROUND_DECODE_LIMIT).map_err(|e| unusable(&e.to_string()))?;
        let (mut img, colour, _permit) = decoded.into_parts();
        if let Some(o) = image::metadata::Orientation::from_exif(self.orientation as u8) {
            img.apply_orientation(o);
        }
        let mut pixels = img.thumbnail(1024, 1024).to_rgba8();
        // Converted after scaling: the same result to the eye, on a fraction of the pixels.
        if let Some(conversion) = colour.to_srgb(true) {
            conversion.apply(&mut pixels).map_err(|e| unusable(&e.to_string()))?;
        }
        Ok(pixels)
    }
}

fn unusable(why: &str) -> Error {
    Error::unprocessable("image_unusable", format!("image: this image cannot be drawn under a caption ({why})"))
}

/// Chooses the picture under a caption, before any charge: the image's medium variant when it
/// is ready; otherwise its original, if that decodes within [`BACKGROUND_DECODE_LIMIT`]; otherwise
/// a 422 `image_unusable`.
async fn background_source(app: &App, id: &str) -> Result<Background> {
    let opened = images::open(app, id, Some(Size::Medium), &[])
        .await
        .map_err(|_| Error::unprocessable("bad_parameter", "image: no such image"))?;
    if opened.variant.is_none() && opened.record.variants == images::VariantsStatus::Failed {
        return Err(unusable("it has no variants"));
    }
    let orientation = opened.orientation();
    // An original can be large (a presigned upload): its bytes count against the same budget as
    // an upload's while they are held, so concurrent memes cannot pile them up.
    let reservation = crate::budget::reserve(opened.len() as usize).await;
    let bytes = opened.bytes(app).await?.ok_or_else(|| Error::internal("image object missing"))?;
    let checked = bytes.clone();
    let cost = tokio::task::spawn_blocking(move || media::inspect(&checked).map(|i| i.facts.still_cost))
        .await
        .map_err(Error::internal)?
        .map_err(|e| unusable(&e.to_string()))?;
    if cost > BACKGROUND_DECODE_LIMIT {
        return Err(unusable("it is too large to draw on before its variants are made; try again shortly"));
    }
    Ok(Background { bytes, orientation, _reservation: reservation })
}
