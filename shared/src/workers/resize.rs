//! The object worker. For `incoming/<upload_id>` (a presigned upload) it runs the ingest; for
//! an original, it decodes the image once and stores the
//! small, medium and large variants under `variants/`, a prefix that notifies nobody, so the
//! worker never triggers itself. A still image's AVIF variants are the later pass of
//! `workers::avif`, queued here once the others are stored. Deliveries may repeat (S3 and the
//! local queue are both at-least-once); a repeat finds the variants ready and at most queues the
//! AVIF pass again, which does nothing once it is done.

use aws_lambda_events::event::s3::S3Event;
use tracing::{info, instrument, warn};

use super::{Outcome, STORAGE_BACKOFF};
use crate::error::{Error, Result};
use crate::images::{self, MadeVariant, State, VariantsStatus};
use crate::media::variants::{self, Size};
use crate::state::App;

/// Handles every record of an S3 event. Records are independent: a failure of one is reported
/// after the others were tried, so a retry redoes only work that is not yet done.
#[instrument(skip_all, fields(records = event.records.len()))]
pub async fn handle_s3_event(app: &App, event: &S3Event) -> Result<()> {
    let mut first_error = None;
    for record in &event.records {
        let Some(raw) = record.s3.object.key.as_deref() else { continue };
        let key = decode_event_key(raw);
        if let Err(e) = handle_key(app, &key).await {
            warn!(key = %key, error = %e, retryable = e.is_retryable(), "object event failed");
            if e.is_retryable() && first_error.is_none() {
                first_error = Some(e);
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Handles one queued object-created message (the local runner's queue carries the S3 event
/// as its body, as S3 would send it).
pub async fn handle(app: &App, body: &str, receives: u32) -> Outcome {
    let event = match serde_json::from_str::<S3Event>(body) {
        Ok(event) => event,
        Err(e) => {
            // A message that cannot parse will never parse: drop it loudly.
            warn!(error = %e, "dropping unreadable object event");
            return Outcome::Ack;
        }
    };
    match handle_s3_event(app, &event).await {
        Ok(()) => Outcome::Ack,
        Err(e) => {
            let delay = STORAGE_BACKOFF.after(receives);
            warn!(error = %e, attempt = receives, ?delay, "object event will be retried");
            Outcome::RetryAfter(delay)
        }
    }
}

/// Dispatches one new object by its prefix.
pub async fn handle_key(app: &App, key: &str) -> Result<()> {
    if key.starts_with("originals/") {
        let Some(id) = images::id_of_original_key(key) else {
            warn!(key, "ignoring an original whose key names no image");
            return Ok(());
        };
        return make_variants(app, id).await;
    }
    if let Some(upload_id) = key.strip_prefix("incoming/") {
        return crate::uploads::ingest_incoming(app, upload_id).await;
    }
    // Other prefixes are not this worker's; acknowledging them keeps a misconfigured
    // notification from retrying forever.
    warn!(key, "ignoring object event outside originals/ and incoming/");
    Ok(())
}

/// S3 event keys are URL-encoded with `+` for spaces.
pub fn decode_event_key(raw: &str) -> String {
    let spaced = raw.replace('+', " ");
    url::form_urlencoded::parse(format!("k={}", spaced.replace('&', "%26").replace('=', "%3D")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or(spaced)
}

/// Makes and records the variants of image `id`, unless they are made already.
#[instrument(skip(app))]
pub async fn make_variants(app: &App, id: &str) -> Result<()> {
    let Some(record) = images::get(app, id).await? else {
        info!("no such image; nothing to do");
        return Ok(());
    };
    if record.lacks_avif() {
        // A repeat of an event whose first pass is done: the AVIF pass may not have been
        // queued (the queue failed after the variants were stored), and queuing it again is
        // harmless, since a pass that finds AVIF made does nothing.
        return super::avif::queue(app, id).await.map(drop);
    }
    if record.state == State::Deleting || record.variants != VariantsStatus::Pending {
        return Ok(());
    }
    make_and_store(app, &record).await
}

/// Brings the variants of image `id` up to what the pipeline makes now, and returns whether
/// there was anything to do:
/// - variants made before WebP existed are made again (the CDN, which picks a WebP or AVIF
///   variant by `Accept` without reading the table, would answer with the original instead);
///   the pipeline is deterministic, so the formats that were there come out the same;
/// - a still image without AVIF variants gets its AVIF pass queued, where `app` has an AVIF
///   queue.
#[instrument(skip(app))]
pub async fn remake_if_outdated(app: &App, id: &str) -> Result<bool> {
    let Some(record) = images::get(app, id).await? else { return Ok(false) };
    if record.state != State::Active || record.variants != VariantsStatus::Ready {
        return Ok(false);
    }
    let first_pass = variants::MODERN_FORMATS.iter().filter(|f| !variants::LATER_FORMATS.contains(f));
    let complete = Size::ALL
        .iter()
        .all(|&size| first_pass.clone().all(|&f| record.made_variants().any(|v| v.size == size && v.format == f)));
    if !complete {
        make_and_store(app, &record).await?;
        return Ok(true);
    }
    if record.lacks_avif() {
        return super::avif::queue(app, id).await;
    }
    Ok(false)
}

/// [`remake_if_outdated`] for every active image (the admin listing, a page at a time); returns
/// how many were remade.
pub async fn remake_outdated_everywhere(app: &App) -> Result<u64> {
    let (mut remade, mut cursor) = (0, None);
    loop {
        let (page, next) = images::list(app, 100, cursor).await?;
        for record in page {
            remade += u64::from(remake_if_outdated(app, &record.id).await?);
        }
        match next {
            Some(c) => cursor = Some(c),
            None => return Ok(remade),
        }
    }
}

async fn make_and_store(app: &App, record: &images::ImageRecord) -> Result<()> {
    let Some(original) = images::read_original(app, record).await? else {
        // The event raced a delete; the image is going away.
        return Ok(());
    };
    let orientation = record.meta.effective_orientation();
    let pass = super::Pass::start(super::Pass::FIRST);
    let made = tokio::task::spawn_blocking(move || variants::make_variants(&original, orientation))
        .await
        .map_err(|e| pass.failed(Error::internal(format!("variant task panicked: {e}"))))?;
    match made {
        Ok(made) => {
            let made: Vec<MadeVariant> = made.into_iter().map(MadeVariant::from).collect();
            let still = !made.iter().any(|v| v.info.format == crate::media::Format::Gif);
            images::store_variants(app, record, &made).await.map_err(|e| pass.failed(e))?;
            pass.stored();
            // The AVIF variants come from a later pass: AV1 takes seconds a photo.
            if still { super::avif::queue(app, &record.id).await.map(drop) } else { Ok(()) }
        }
        // Undecodable pixels will not decode on a retry: record it and stop.
        Err(e) => {
            pass.failed(());
            images::record_variants_failed(app, &record.id, &e.to_string()).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_keys_are_url_decoded_as_s3_encodes_them() {
        let cases = [
            ("originals/AbCdEf12.jpg", "originals/AbCdEf12.jpg"),
            ("incoming/a+b.jpg", "incoming/a b.jpg"),
            ("incoming/a%2Bb%3D.jpg", "incoming/a+b=.jpg"),
        ];
        for (raw, want) in cases {
            assert_eq!(decode_event_key(raw), want);
        }
    }
}
