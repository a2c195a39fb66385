//! Ingest: checking an upload (pure CPU) and storing it with content dedupe.

use bytes::Bytes;
use time::OffsetDateTime;
use tracing::{info, instrument, warn};

use super::purge::{clear_hash, undo_pending_upload};
use super::record::{
    HASH_SK, ImageRecord, LISTING_PARTITION, Layout, META, State, VariantsStatus, hash_pk, image_pk, upload_sk,
};
use crate::clock;
use crate::error::{Error, Refusal, Result};
use crate::media::exif::Metadata;
use crate::media::{self, Format, MediaError};
use crate::metrics;
use crate::secret;
use crate::state::App;
use crate::stats::{self, Change};
use crate::store::{Cond, GSI1PK, GSI1SK, Item, TxOp, Update};

/// An upload checked and prepared, with nothing stored yet. Preparing every file of a request
/// before storing any is what keeps a bad file from leaving the good ones half-written.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub hash: String,
    pub format: Format,
    pub width: u32,
    pub height: u32,
    pub meta: Metadata,
    /// The original with metadata removed: what is stored and served.
    pub stripped: Bytes,
    /// How long checking it took, for the ingest latency metric (checking plus storing; the
    /// files of a request are all checked before any is stored, so a wall clock from the start
    /// would charge each file with the others' work).
    pub checked_in: std::time::Duration,
}

/// Checks an upload and prepares it for storage: [`media::inspect`] (format by magic bytes,
/// header, structure, what browsers and the decoder can show, the limits), EXIF metadata, and
/// the original stripped by its format's keep-list. Refusals: 415 `unsupported_media_type`
/// (not an image format) or `unsupported_image` (a variant of one that cannot be shown), 422
/// `unreadable_image` or `damaged_image`, 413 with the limit's code.
pub fn prepare(bytes: &[u8]) -> Result<Prepared> {
    let started = std::time::Instant::now();
    if media::sniff(bytes).is_none() {
        return Err(Error::client(
            Refusal::UnsupportedMedia,
            "unsupported_media_type",
            "the file is not a JPEG, PNG, GIF or WebP image",
        ));
    }
    let inspected = media::inspect(bytes).map_err(media_error)?;
    let meta = media::exif::read(bytes);
    let stripped = inspected.strip(bytes, meta.effective_orientation());
    let facts = inspected.facts;
    media::verify_decodes(&stripped, &facts).map_err(media_error)?;
    Ok(Prepared {
        hash: secret::sha256_hex(bytes),
        format: facts.format,
        width: facts.width,
        height: facts.height,
        meta,
        stripped: Bytes::from(stripped),
        checked_in: started.elapsed(),
    })
}

/// The status and code of each inspection refusal.
pub fn media_error(e: MediaError) -> Error {
    match e {
        MediaError::Unreadable(_) => Error::unprocessable("unreadable_image", e.to_string()),
        MediaError::Damaged(_) => Error::unprocessable("damaged_image", e.to_string()),
        MediaError::Unsupported(m) => Error::client(Refusal::UnsupportedMedia, "unsupported_image", m),
        MediaError::TooLarge { code, message } => Error::client(Refusal::TooLarge, code, message),
    }
}

/// The result of storing an upload.
#[derive(Debug, Clone)]
pub struct Stored {
    pub image: ImageRecord,
    /// The bytes were already stored; this upload shares the existing image.
    pub duplicate: bool,
    /// This very upload was stored before (a redelivered event or message): nothing changed.
    pub repeated: bool,
}

/// How often ingest re-reads after losing a race before giving up with a 503.
pub(super) const INGEST_ATTEMPTS: usize = 8;

/// Stores a prepared upload: a new image, or one more upload of an image with the same bytes.
/// `token_digest` is the digest of the upload's delete token. Storing the same bytes again with
/// the same digest (a retried delivery) finds the upload already attached and changes nothing.
#[instrument(skip_all, fields(hash = %p.hash))]
pub async fn store(app: &App, p: &Prepared, token_digest: &str) -> Result<Stored> {
    let started = std::time::Instant::now();
    let stored = store_once(app, p, token_digest).await?;
    if stored.repeated {
        // A redelivery is not another upload: the statistics do not count it either.
        return Ok(stored);
    }
    let format = Some(p.format.name());
    metrics::count(&metrics::UPLOADS, format, 1);
    metrics::count(&metrics::UPLOAD_BYTES, format, p.stripped.len() as u64);
    if stored.duplicate {
        metrics::count(&metrics::DUPLICATES, None, 1);
    }
    metrics::observe(&metrics::INGEST_LATENCY, None, (p.checked_in + started.elapsed()).as_secs_f64() * 1000.0);
    Ok(stored)
}

async fn store_once(app: &App, p: &Prepared, token_digest: &str) -> Result<Stored> {
    let table = &app.table;
    for attempt in 0..INGEST_ATTEMPTS {
        if attempt > 0 {
            // Another writer is mid-way through the same bytes; give it a moment.
            tokio::time::sleep(std::time::Duration::from_millis(20 * attempt as u64)).await;
        }
        if let Some(h) = table.get(&hash_pk(&p.hash), HASH_SK).await? {
            let id = h.str("image_id").unwrap_or_default().to_owned();
            match add_upload(app, &id, &p.hash, p, token_digest).await? {
                Some((image, repeated)) => {
                    info!(image_id = %image.id, repeated, "duplicate upload");
                    return Ok(Stored { image, duplicate: true, repeated });
                }
                None => continue,
            }
        }
        let id = secret::new_image_id();
        let record = ImageRecord {
            id: id.clone(),
            hash: p.hash.clone(),
            format: p.format,
            bytes: p.stripped.len() as u64,
            width: p.width,
            height: p.height,
            meta: p.meta.clone(),
            state: State::Pending,
            refs: 1,
            created_at: clock::rfc3339_millis(OffsetDateTime::now_utc()),
            variants: VariantsStatus::Pending,
            variant_info: vec![],
            layout: Layout::Bare,
        };
        let ops = vec![
            TxOp::Put { item: record.to_item(), cond: Some(Cond::NotExists) },
            TxOp::Put {
                item: Item::new(hash_pk(&p.hash), HASH_SK).with("image_id", id.as_str()),
                cond: Some(Cond::NotExists),
            },
            TxOp::Put {
                item: Item::new(image_pk(&id), upload_sk(token_digest)).with("created_at", record.created_at.as_str()),
                cond: Some(Cond::NotExists),
            },
        ];
        match table.transact(ops).await {
            Ok(()) => {}
            // The id was taken (48 random bits rarely collide, but "rarely" is not "never"),
            // or someone else stored the same bytes first: go round again.
            Err(e) if e.is_condition_failed() => continue,
            Err(e) => return Err(e.into()),
        }
        let image = match activate(app, record, p).await {
            Ok(image) => image,
            Err(e) => {
                // The client will not see this upload's token, so take the upload back out:
                // otherwise its count would keep the image alive with no way to delete it.
                warn!(image_id = %id, error = %e, "storing the original failed; undoing the upload");
                match undo_pending_upload(app, &id, token_digest).await {
                    // A concurrent upload of the same bytes stored the original and activated
                    // the image, counting this upload with it: the upload stands.
                    Ok(Some(image)) => return Ok(Stored { image, duplicate: false, repeated: false }),
                    Ok(None) => {}
                    Err(undo) => warn!(image_id = %id, error = %undo, "undoing the upload failed"),
                }
                return Err(e);
            }
        };
        info!(image_id = %image.id, bytes = image.bytes, "new image");
        return Ok(Stored { image, duplicate: false, repeated: false });
    }
    Err(Error::client(Refusal::Unavailable, "busy", "the same image is being changed concurrently; try again"))
}

/// Stores the original object and marks the image active, counting the image and the upload
/// that created it in the same transaction. Idempotent: any uploader of the same bytes may
/// complete a pending image, and only the one whose transaction flips the state counts it.
async fn activate(app: &App, record: ImageRecord, p: &Prepared) -> Result<ImageRecord> {
    app.objects.put(&record.original_key(), p.stripped.clone(), p.format.mime()).await?;
    let pk = image_pk(&record.id);
    let update = Update::new()
        .set("state", State::Active.as_str())
        .set(GSI1PK, LISTING_PARTITION)
        .set(GSI1SK, crate::store::time_sort_key(&record.id));
    let cond = Cond::eq("state", State::Pending.as_str()).and(Cond::eq("hash", record.hash.as_str()));
    let op = TxOp::Update { pk: pk.clone(), sk: META.into(), update, cond: Some(cond) };
    let facts = record.facts();
    match stats::transact_counted(&*app.table, vec![op], Change::ImageAdded(&facts), OffsetDateTime::now_utc()).await {
        Ok(()) => {}
        // Already active (a concurrent uploader finished first) or being deleted: the re-read
        // below tells.
        Err(e) if e.is_condition_failed() => {}
        Err(e) => return Err(e.into()),
    }
    let item = app.table.get(&pk, META).await?.ok_or_else(|| Error::internal("image vanished"))?;
    ImageRecord::from_item(&item)
}

/// Adds one upload to an existing image, and says whether this very upload was there already (a
/// redelivery). Returns `None` when the hash item led to an image that is gone or going, after
/// clearing the stale hash item so the next attempt starts fresh.
async fn add_upload(
    app: &App,
    id: &str,
    hash: &str,
    p: &Prepared,
    token_digest: &str,
) -> Result<Option<(ImageRecord, bool)>> {
    let table = &app.table;
    let Some(item) = table.get(&image_pk(id), META).await? else {
        clear_hash(app, hash, id).await?;
        return Ok(None);
    };
    let mut record = ImageRecord::from_item(&item)?;
    match record.state {
        State::Deleting => {
            clear_hash(app, hash, id).await?;
            return Ok(None);
        }
        State::Pending => record = activate(app, record, p).await?,
        State::Active => {}
    }
    if record.state != State::Active {
        return Ok(None);
    }
    let ops = vec![
        TxOp::Update {
            pk: image_pk(id),
            sk: META.into(),
            update: Update::new().add("refs", 1),
            cond: Some(Cond::eq("state", State::Active.as_str())),
        },
        TxOp::Put {
            item: Item::new(image_pk(id), upload_sk(token_digest))
                .with("created_at", clock::rfc3339_millis(OffsetDateTime::now_utc())),
            cond: Some(Cond::NotExists),
        },
    ];
    match stats::transact_counted(&**table, ops, Change::DuplicateUpload, OffsetDateTime::now_utc()).await {
        Ok(()) => {
            record.refs += 1;
            Ok(Some((record, false)))
        }
        // This very upload may be attached already (a retried delivery): then it is done.
        Err(e) if e.is_condition_failed() => match table.get(&image_pk(id), &upload_sk(token_digest)).await? {
            Some(u) if u.bool("deleted") != Some(true) => Ok(Some((record, true))),
            _ => Ok(None),
        },
        Err(e) => Err(e.into()),
    }
}
