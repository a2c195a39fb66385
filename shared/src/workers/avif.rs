//! The AVIF worker: the later variant pass. AV1 encoding takes seconds a photo where the JPEG
//! and WebP variants take about half a second (`docs/benchmarks.md`), so the resize worker
//! stores those first, serves them, and queues one message per still image on the AVIF queue;
//! this worker makes the image's AVIF variants and adds them to its record.
//!
//! Animations get none: their variants are GIF and animated WebP, and an AVIF request for one
//! is answered with the animated WebP (`images::store_variants` and `ImageRecord::variant_in`).
//! Deliveries may repeat; a repeat finds the AVIF variants made and does nothing.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use serde::{Deserialize, Serialize};
use tracing::{info, instrument, warn};

use super::{Outcome, STORAGE_BACKOFF};
use crate::error::{Error, Result};
use crate::images::{self, MadeVariant};
use crate::media::variants;
use crate::state::App;

/// What the AVIF queue carries: the image whose AVIF variants are to be made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AvifMessage {
    pub image: String,
}

/// Queues the AVIF pass of image `id`, where an AVIF queue is wired (locally always; in AWS for
/// the resize worker), and says whether it did. Without one, the image keeps its first-pass
/// variants.
pub async fn queue(app: &App, id: &str) -> Result<bool> {
    let Some(queue) = app.avif.as_ref() else { return Ok(false) };
    let body = serde_json::to_string(&AvifMessage { image: id.to_owned() }).map_err(Error::internal)?;
    queue.send(body).await?;
    Ok(true)
}

/// Handles one message of the AVIF queue.
pub async fn handle(app: &App, body: &str, receives: u32) -> Outcome {
    let message = match serde_json::from_str::<AvifMessage>(body) {
        Ok(message) => message,
        Err(e) => {
            // A message that cannot parse will never parse: drop it loudly.
            warn!(error = %e, "dropping unreadable AVIF message");
            return Outcome::Ack;
        }
    };
    match make_avif(app, &message.image).await {
        Ok(()) => Outcome::Ack,
        Err(e) if e.is_retryable() => {
            let delay = STORAGE_BACKOFF.after(receives);
            warn!(error = %e, attempt = receives, ?delay, "AVIF pass will be retried");
            Outcome::RetryAfter(delay)
        }
        Err(e) => {
            warn!(error = %e, "AVIF pass failed for good; the image keeps its other variants");
            Outcome::Ack
        }
    }
}

/// Handles a batch from SQS (the template gives one message a batch: each is seconds of CPU).
#[instrument(skip_all, fields(records = event.records.len()))]
pub async fn handle_sqs_event(app: &App, event: &SqsEvent) -> SqsBatchResponse {
    super::sqs_batch(event, app.avif.as_deref(), |body, receives| async move { handle(app, &body, receives).await })
        .await
}

/// Makes and records the AVIF variants of image `id`, unless it has them, is an animation, or
/// is not an active image with its first variants made.
#[instrument(skip(app))]
pub async fn make_avif(app: &App, id: &str) -> Result<()> {
    let Some(record) = images::get(app, id).await? else {
        info!("no such image; nothing to do");
        return Ok(());
    };
    if !record.lacks_avif() {
        return Ok(());
    }
    let Some(original) = images::read_original(app, &record).await? else {
        // The message raced a delete; the image is going away.
        return Ok(());
    };
    let orientation = record.meta.effective_orientation();
    let pass = super::Pass::start(super::Pass::AVIF);
    let made = tokio::task::spawn_blocking(move || variants::make_avif(&original, orientation))
        .await
        .map_err(|e| pass.failed(Error::internal(format!("AVIF task panicked: {e}"))))?;
    match made {
        Ok(made) => {
            let made: Vec<MadeVariant> = made.into_iter().map(MadeVariant::from).collect();
            images::add_variants(app, &record, &made).await.map_err(|e| pass.failed(e))?;
            pass.stored();
            Ok(())
        }
        // Pixels that did not decode or encode will not on a retry either; the JPEG and WebP
        // variants go on being served.
        Err(e) => {
            pass.failed(());
            warn!(error = %e, "AVIF variants cannot be made");
            Ok(())
        }
    }
}
