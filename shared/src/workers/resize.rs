//! The object worker. For `incoming/<upload_id>` (a presigned upload) it runs the ingest; for
//! an original, it decodes the image once and stores the
//! small, medium and large variants under `variants/`, a prefix that notifies nobody, so the
//! worker never triggers itself. Deliveries may repeat (S3 and the local queue are both
//! at-least-once); a repeat finds the variants ready and does nothing.

use aws_lambda_events::event::s3::S3Event;
use bytes::Bytes;
use tracing::{info, instrument, warn};

use super::{Outcome, STORAGE_BACKOFF};
use crate::error::{Error, Result};
use crate::images::{ImageRecord, META, State, VariantInfo, VariantsStatus, image_pk, variant_key};
use crate::media::variants;
use crate::state::App;
use crate::store::{Cond, Update};

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
    if let Some(name) = key.strip_prefix("originals/") {
        let id = name.split('.').next().unwrap_or_default();
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
    let Some(item) = app.table.get(&image_pk(id), META).await? else {
        info!("no such image; nothing to do");
        return Ok(());
    };
    let record = ImageRecord::from_item(&item)?;
    if record.state == State::Deleting || record.variants != VariantsStatus::Pending {
        return Ok(());
    }
    let Some(original) = app.objects.get(&record.original_key()).await? else {
        // The event raced a delete; the image is going away.
        return Ok(());
    };
    let orientation = record.meta.effective_orientation();
    let made = tokio::task::spawn_blocking(move || variants::make_variants(&original.bytes, orientation))
        .await
        .map_err(|e| Error::internal(format!("variant task panicked: {e}")))?;
    let pk = image_pk(id);
    let still_here = Cond::Exists.and(Cond::ne("state", "deleting"));
    let made = match made {
        Ok(v) => v,
        Err(e) => {
            // Undecodable pixels will not decode on a retry: record it and stop.
            warn!(error = %e, "variants failed");
            let update = Update::new().set("variants", "failed").set("variants_error", e.to_string());
            return match app.table.update(&pk, META, update, Some(still_here)).await {
                Ok(_) => Ok(()),
                Err(e) if e.is_condition_failed() => Ok(()),
                Err(e) => Err(e.into()),
            };
        }
    };
    let puts = made.iter().map(|v| {
        let key = variant_key(id, v.size, v.format);
        let bytes = Bytes::from(v.bytes.clone());
        async move { app.objects.put(&key, bytes, v.format.mime()).await }
    });
    futures::future::try_join_all(puts).await?;
    let info: Vec<VariantInfo> = made
        .iter()
        .map(|v| VariantInfo {
            size: v.size,
            width: v.width,
            height: v.height,
            format: v.format,
            bytes: v.bytes.len() as u64,
        })
        .collect();
    let json = serde_json::to_string(&info).map_err(Error::internal)?;
    let update = Update::new().set("variants", "ready").set("variant_info", json);
    match app.table.update(&pk, META, update, Some(still_here)).await {
        Ok(_) => {
            info!(sizes = ?info.iter().map(|v| (v.width, v.height)).collect::<Vec<_>>(), "variants ready");
            Ok(())
        }
        Err(e) if e.is_condition_failed() => {
            // Deleted while we worked: take back what we wrote.
            for v in &made {
                app.objects.delete(&variant_key(id, v.size, v.format)).await?;
            }
            Ok(())
        }
        Err(e) => Err(e.into()),
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
