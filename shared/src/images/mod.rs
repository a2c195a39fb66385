//! The image domain: ingest with content dedupe, per-upload delete tokens, deletion when the
//! last upload goes, and the public view of an image.
//!
//! # Items (single-table design; see ARCHITECTURE.md for every access pattern)
//!
//! | item              | pk              | sk            | notes                                   |
//! |-------------------|-----------------|---------------|-----------------------------------------|
//! | image             | `IMG#<id>`      | `META`        | metadata, `state`, `refs`, variants     |
//! | upload of image   | `IMG#<id>`      | `UPL#<digest>`| one per upload; digest of delete token  |
//! | content hash      | `HASH#<sha256>` | `HASH`        | maps bytes to their image id            |
//!
//! Active images carry `gsi1pk = IMAGES`, `gsi1sk = <activation time in ns>#<id>` for the admin
//! listing.
//!
//! # Why ingest is ordered as it is
//! The image, hash and upload items are written in one conditional transaction *before* the
//! original object, with `state = pending`; the object is then stored under a key derived from
//! the image id, and `state` becomes `active`. A crash between those steps leaves a pending
//! image that the next upload of the same bytes completes (the bytes are the same, so writing
//! the object again is harmless). Two concurrent uploads of the same bytes race on the hash
//! item's `attribute_not_exists` condition; the loser takes the duplicate path.
//!
//! # Layout
//! This module alone reads and writes the image, upload and hash items and the image objects;
//! everything else calls it. `record.rs` maps the item and names the keys, `ingest.rs` checks
//! and stores uploads, `purge.rs` deletes, `view.rs` is the public JSON, `relayout.rs` moves
//! images stored under the older key layout, and this file holds the reads, serving and the
//! variants' record.

mod ingest;
mod purge;
mod record;
mod relayout;
mod view;

use bytes::Bytes;
use tracing::{info, warn};

pub use ingest::{Prepared, Stored, media_error, prepare, store};
pub use purge::{delete_image, delete_upload};
pub use record::{ImageRecord, Layout, State, VariantInfo, VariantsStatus, id_of_original_key};
pub use relayout::{Relayout, RelayoutReport, adopt_bare_layout, adopt_bare_layout_everywhere};
pub use view::{ImageView, OEmbed, Preview, Rendition, UploadView, VariantView, renditions};

use crate::error::{Error, Result};
use crate::media::Format;
use crate::media::variants::Size;
use crate::secret;
use crate::state::App;
use crate::store::{Cond, Cursor, ObjectRead, Query, Update};
use record::{LISTING_PARTITION, META, image_pk};

/// Reads an image that is visible to the public (active).
pub async fn get_active(app: &App, id: &str) -> Result<ImageRecord> {
    if !secret::is_image_id(id) {
        return Err(Error::not_found("image"));
    }
    let item = app.table.get(&image_pk(id), META).await?.ok_or_else(|| Error::not_found("image"))?;
    let record = ImageRecord::from_item(&item)?;
    if record.state != State::Active {
        return Err(Error::not_found("image"));
    }
    Ok(record)
}

/// Reads an image whatever its state, or `None` when there is no such image (the variant
/// worker's read: it must see a pending image too).
pub async fn get(app: &App, id: &str) -> Result<Option<ImageRecord>> {
    match app.table.get(&image_pk(id), META).await? {
        Some(item) => Ok(Some(ImageRecord::from_item(&item)?)),
        None => Ok(None),
    }
}

/// One page of the admin listing, newest first.
pub async fn list(app: &App, limit: usize, cursor: Option<Cursor>) -> Result<(Vec<ImageRecord>, Option<Cursor>)> {
    let page = app.table.query(Query::gsi1(LISTING_PARTITION).backward().limit(limit).start(cursor)).await?;
    let mut out = Vec::with_capacity(page.items.len());
    for item in &page.items {
        match ImageRecord::from_item(item) {
            Ok(r) => out.push(r),
            Err(e) => warn!(error = %e, "skipping unreadable image item"),
        }
    }
    Ok((out, page.next))
}

/// What `/i/{id}` serves for a requested size: the variant when it is made, else the original
/// (asked for, or standing in for a variant not made yet).
#[derive(Debug, Clone)]
pub struct Opened {
    /// Shared with the process's record cache, where there is one: a request copies nothing.
    pub record: std::sync::Arc<ImageRecord>,
    /// The variant served, if any.
    pub variant: Option<VariantInfo>,
    key: String,
}

impl Opened {
    pub fn format(&self) -> Format {
        self.variant.as_ref().map_or(self.record.format, |v| v.format)
    }

    /// The stored size of what is served.
    pub fn len(&self) -> u64 {
        self.variant.as_ref().map_or(self.record.bytes, |v| v.bytes)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The EXIF orientation still to apply to the pixels: variants are stored upright.
    pub fn orientation(&self) -> u16 {
        if self.variant.is_some() { 1 } else { self.record.meta.effective_orientation() }
    }

    /// Strong validator for HTTP caching: content never changes under one key.
    pub fn etag(&self) -> String {
        self.record.etag(self.variant.as_ref())
    }

    /// Streams `range` of the bytes (end exclusive; all when `None`) from the object store, one
    /// bounded chunk at a time; `None` when the object is gone (a delete raced the caller).
    /// Where the process keeps objects in memory, a small one is read whole once and then
    /// served from there.
    pub async fn read(&self, app: &App, range: Option<std::ops::Range<u64>>) -> Result<Option<ObjectRead>> {
        let Some(cache) = app.object_cache.as_ref().filter(|_| self.len() <= CACHED_OBJECT_MAX) else {
            return Ok(app.objects.read(&self.key, range).await?);
        };
        let bytes = match cache.get(&self.key) {
            Some(bytes) => bytes,
            None => {
                let Some(read) = app.objects.read(&self.key, None).await? else { return Ok(None) };
                let chunks: Vec<Bytes> = futures::TryStreamExt::try_collect(read.body).await?;
                let bytes = Bytes::from(chunks.concat());
                cache.put(&self.key, bytes.clone());
                bytes
            }
        };
        let total = bytes.len() as u64;
        let range = crate::store::clamp_range(range, total);
        let part = bytes.slice(range.start as usize..range.end as usize);
        let body = futures::stream::iter((!part.is_empty()).then_some(Ok(part)));
        Ok(Some(ObjectRead { total, range, body: Box::pin(body) }))
    }

    /// The bytes, read from the object store; `None` when the object is gone (a delete raced
    /// the caller).
    pub async fn bytes(&self, app: &App) -> Result<Option<Bytes>> {
        Ok(app.objects.get(&self.key).await?.map(|o| o.bytes))
    }
}

/// Opens an active image for serving at `size` (`None` for the original), in the first of the
/// `modern` formats the request takes that the variant is made in (see
/// [`crate::media::variants::negotiate`]), else the classic one. Where the process
/// keeps records in memory, an image whose variants are settled (the later AVIF pass
/// included) is read from there: nothing about it changes until it is deleted, which drops it
/// ([`forget`]).
pub async fn open(app: &App, id: &str, size: Option<Size>, modern: &[Format]) -> Result<Opened> {
    let cache = app.records.as_ref();
    let record = match cache.and_then(|c| c.get::<ImageRecord>(&cache_key(id))) {
        Some(record) => record,
        None => {
            let record = std::sync::Arc::new(get_active(app, id).await?);
            // A record whose later variants are still to come changes once more.
            if let Some(c) = cache.filter(|_| record.variants != VariantsStatus::Pending && !record.lacks_avif()) {
                c.put(&cache_key(id), record.clone());
            }
            record
        }
    };
    let variant = size.and_then(|s| record.variant_in(s, modern)).cloned();
    let key = match &variant {
        Some(v) => record.variant_key(v.size, v.format),
        None => record.original_key(),
    };
    Ok(Opened { record, variant, key })
}

fn cache_key(id: &str) -> String {
    format!("image:{id}")
}

/// The largest object kept in the process's object cache: every small and medium variant of a
/// photo, few originals.
const CACHED_OBJECT_MAX: u64 = 256 * 1024;

/// Drops an image from the process's caches (it is being deleted, or its objects are moving).
fn forget(app: &App, record: &ImageRecord) {
    if let Some(c) = &app.records {
        c.remove(&cache_key(&record.id));
    }
    if let Some(c) = &app.object_cache {
        c.remove(&record.original_key());
        for key in record.possible_variant_keys() {
            c.remove(&key);
        }
    }
}

/// The stored original of an image, or `None` when it is gone (a delete raced the caller).
pub async fn read_original(app: &App, record: &ImageRecord) -> Result<Option<Bytes>> {
    Ok(app.objects.get(&record.original_key()).await?.map(|o| o.bytes))
}

/// A variant made from the original, ready to store.
#[derive(Debug, Clone)]
pub struct MadeVariant {
    pub info: VariantInfo,
    pub bytes: Bytes,
}

impl From<crate::media::variants::Variant> for MadeVariant {
    fn from(v: crate::media::variants::Variant) -> Self {
        let info = VariantInfo {
            size: v.size,
            width: v.width,
            height: v.height,
            format: v.format,
            bytes: v.bytes.len() as u64,
        };
        MadeVariant { info, bytes: Bytes::from(v.bytes) }
    }
}

/// Stores the variants of `image` and records them on its item, unless the image is being
/// deleted meanwhile: then what was written is taken back, since the purge may have passed.
///
/// A size made in WebP but not (yet) in AVIF also gets its WebP bytes under its AVIF key. The
/// CDN picks a key from the URL and `Accept` alone, and an origin group fails over only once
/// (to the original); with this, a browser that takes AVIF gets the WebP variant until the
/// later pass has made the AVIF one, and an animation's animated WebP for good. Every browser
/// that decodes AVIF decodes WebP, and the object keeps WebP's content type. The record lists
/// only the formats really made, so the local server reads no such stand-in.
pub async fn store_variants(app: &App, image: &ImageRecord, made: &[MadeVariant]) -> Result<()> {
    let id = image.id.as_str();
    let mut objects: Vec<(String, &MadeVariant)> =
        made.iter().map(|v| (image.variant_key(v.info.size, v.info.format), v)).collect();
    if image.layout == Layout::Bare {
        for v in made.iter().filter(|v| v.info.format == Format::Webp) {
            if !made.iter().any(|a| a.info.size == v.info.size && a.info.format == Format::Avif) {
                objects.push((image.variant_key(v.info.size, Format::Avif), v));
            }
        }
    }
    put_all(app, &objects).await?;
    let info: Vec<&VariantInfo> = made.iter().map(|v| &v.info).collect();
    let json = serde_json::to_string(&info).map_err(Error::internal)?;
    let update = Update::new().set("variants", "ready").set("variant_info", json);
    match app.table.update(&image_pk(id), META, update, Some(still_here())).await {
        Ok(_) => {
            info!(sizes = ?info.iter().map(|v| (v.width, v.height)).collect::<Vec<_>>(), "variants ready");
            Ok(())
        }
        Err(e) if e.is_condition_failed() => take_back(app, &objects).await,
        Err(e) => Err(e.into()),
    }
}

/// Stores variants made by a later pass ([`crate::media::variants::LATER_FORMATS`]) beside the
/// ones `image` lists, and records them. The record must not have changed since `image` was
/// read: if it is being deleted, what was written is taken back; if it changed otherwise, the
/// caller is told to try again (a retryable error) with a fresh read.
pub async fn add_variants(app: &App, image: &ImageRecord, made: &[MadeVariant]) -> Result<()> {
    let objects: Vec<(String, &MadeVariant)> =
        made.iter().map(|v| (image.variant_key(v.info.size, v.info.format), v)).collect();
    put_all(app, &objects).await?;
    let before = serde_json::to_string(&image.variant_info).map_err(Error::internal)?;
    let mut info: Vec<&VariantInfo> = image
        .variant_info
        .iter()
        .filter(|v| !made.iter().any(|m| m.info.size == v.size && m.info.format == v.format))
        .collect();
    info.extend(made.iter().map(|v| &v.info));
    let after = serde_json::to_string(&info).map_err(Error::internal)?;
    let unchanged = still_here().and(Cond::eq("variants", "ready")).and(Cond::eq("variant_info", before));
    let update = Update::new().set("variant_info", after);
    match app.table.update(&image_pk(&image.id), META, update, Some(unchanged)).await {
        Ok(_) => {
            forget(app, image);
            info!(formats = ?made.iter().map(|v| v.info.format.name()).collect::<Vec<_>>(), "later variants ready");
            Ok(())
        }
        Err(e) if e.is_condition_failed() => match get(app, &image.id).await? {
            Some(now) if now.state != State::Deleting => Err(Error::client(
                crate::error::Refusal::Unavailable,
                "busy",
                "the image's variants changed while more were made",
            )),
            _ => take_back(app, &objects).await,
        },
        Err(e) => Err(e.into()),
    }
}

async fn put_all(app: &App, objects: &[(String, &MadeVariant)]) -> Result<()> {
    let puts = objects.iter().map(|(key, v)| app.objects.put(key, v.bytes.clone(), v.info.format.mime()));
    futures::future::try_join_all(puts).await?;
    Ok(())
}

/// Deletes what was written for an image deleted meanwhile: its purge may have passed already.
async fn take_back(app: &App, objects: &[(String, &MadeVariant)]) -> Result<()> {
    for (key, _) in objects {
        app.objects.delete(key).await?;
    }
    Ok(())
}

/// Records that the variants of image `id` cannot be made (its pixels do not decode); the
/// original goes on being served.
pub async fn record_variants_failed(app: &App, id: &str, reason: &str) -> Result<()> {
    warn!(image_id = id, reason, "variants failed");
    let update = Update::new().set("variants", "failed").set("variants_error", reason);
    match app.table.update(&image_pk(id), META, update, Some(still_here())).await {
        Ok(_) => Ok(()),
        Err(e) if e.is_condition_failed() => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The image still exists and is not being deleted.
fn still_here() -> Cond {
    Cond::Exists.and(Cond::ne("state", State::Deleting.as_str()))
}
