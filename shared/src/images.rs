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

use bytes::Bytes;
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tracing::{info, instrument, warn};

use crate::error::{Error, Result};
use crate::media::exif::Metadata;
use crate::media::variants::Size;
use crate::media::{self, Format, MediaError};
use crate::secret;
use crate::state::App;
use crate::stats::{self, Change, Facts};
use crate::store::{Cond, GSI1PK, GSI1SK, Item, Query, TxOp, Update};

/// The partition of the admin listing index.
pub const LISTING_PARTITION: &str = "IMAGES";

pub fn image_pk(id: &str) -> String {
    format!("IMG#{id}")
}
pub const META: &str = "META";
fn upload_sk(token_digest: &str) -> String {
    format!("UPL#{token_digest}")
}
fn hash_pk(hash: &str) -> String {
    format!("HASH#{hash}")
}
const HASH_SK: &str = "HASH";

/// Object key of a stored original.
pub fn original_key(id: &str, format: Format) -> String {
    format!("originals/{id}.{}", format.ext())
}
/// Object key of a variant.
pub fn variant_key(id: &str, size: Size, format: Format) -> String {
    format!("variants/{id}/{}.{}", size.name(), format.ext())
}

/// Lifecycle of an image item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Items written, original object not yet confirmed stored.
    Pending,
    Active,
    /// Its last upload was deleted; the hash no longer leads here.
    Deleting,
}

impl State {
    fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Active => "active",
            State::Deleting => "deleting",
        }
    }
    fn parse(s: &str) -> Option<State> {
        match s {
            "pending" => Some(State::Pending),
            "active" => Some(State::Active),
            "deleting" => Some(State::Deleting),
            _ => None,
        }
    }
}

/// Where an image's variants stand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VariantsStatus {
    Pending,
    Ready,
    /// The pixels could not be decoded; the original is still served.
    Failed,
}

/// A made variant, as recorded on the image item.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct VariantInfo {
    pub size: Size,
    pub width: u32,
    pub height: u32,
    pub format: Format,
    pub bytes: u64,
}

/// An image as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageRecord {
    pub id: String,
    pub hash: String,
    pub format: Format,
    /// Size of the stored (metadata-stripped) original.
    pub bytes: u64,
    /// Stored dimensions, before orientation, as ExifTool reports them.
    pub width: u32,
    pub height: u32,
    pub meta: Metadata,
    pub state: State,
    pub refs: i64,
    pub created_at: String,
    pub variants: VariantsStatus,
    pub variant_info: Vec<VariantInfo>,
}

impl ImageRecord {
    fn to_item(&self) -> Item {
        let mut item = Item::new(image_pk(&self.id), META)
            .with("id", self.id.as_str())
            .with("hash", self.hash.as_str())
            .with("format", self.format.name())
            .with("bytes", self.bytes as i64)
            .with("width", i64::from(self.width))
            .with("height", i64::from(self.height))
            .with("state", self.state.as_str())
            .with("refs", self.refs)
            .with("created_at", self.created_at.as_str())
            .with("variants", "pending");
        let m = &self.meta;
        if let Some(o) = m.orientation {
            item.set("orientation", i64::from(o));
        }
        for (name, v) in [("camera_make", &m.camera_make), ("camera_model", &m.camera_model), ("taken_at", &m.taken_at)]
        {
            if let Some(v) = v {
                item.set(name, v.as_str());
            }
        }
        // Coordinates are kept as text so both storage families round-trip them exactly.
        if let (Some(lat), Some(lon)) = (m.gps_lat, m.gps_lon) {
            item.set("gps_lat", lat.to_string());
            item.set("gps_lon", lon.to_string());
        }
        item
    }

    pub fn from_item(item: &Item) -> Result<Self> {
        let bad = |what: &str| Error::internal(format!("image item {} lacks {what}", item.pk()));
        let s = |name: &str| item.str(name).map(str::to_owned);
        let variants = match item.str("variants") {
            Some("ready") => VariantsStatus::Ready,
            Some("failed") => VariantsStatus::Failed,
            _ => VariantsStatus::Pending,
        };
        let variant_info = item.str("variant_info").and_then(|j| serde_json::from_str(j).ok()).unwrap_or_default();
        Ok(ImageRecord {
            id: s("id").ok_or_else(|| bad("id"))?,
            hash: s("hash").ok_or_else(|| bad("hash"))?,
            format: item.str("format").and_then(Format::from_name).ok_or_else(|| bad("format"))?,
            bytes: item.num("bytes").unwrap_or(0).max(0) as u64,
            width: item.num("width").unwrap_or(0) as u32,
            height: item.num("height").unwrap_or(0) as u32,
            meta: Metadata {
                orientation: item.num("orientation").map(|o| o as u16),
                camera_make: s("camera_make"),
                camera_model: s("camera_model"),
                taken_at: s("taken_at"),
                gps_lat: item.str("gps_lat").and_then(|v| v.parse().ok()),
                gps_lon: item.str("gps_lon").and_then(|v| v.parse().ok()),
            },
            state: item.str("state").and_then(State::parse).ok_or_else(|| bad("state"))?,
            refs: item.num("refs").unwrap_or(0),
            created_at: s("created_at").unwrap_or_default(),
            variants,
            variant_info,
        })
    }

    /// Dimensions as displayed, after the EXIF orientation.
    pub fn display_dimensions(&self) -> (u32, u32) {
        if self.meta.effective_orientation() >= 5 { (self.height, self.width) } else { (self.width, self.height) }
    }

    pub fn original_key(&self) -> String {
        original_key(&self.id, self.format)
    }

    /// What this image contributes to the service statistics.
    pub fn facts(&self) -> Facts {
        Facts { format: self.format, bytes: self.bytes, camera: stats::camera_label(self.meta.camera_model.as_deref()) }
    }

    /// The stored variant of `size`, if the variants are ready.
    pub fn variant(&self, size: Size) -> Option<&VariantInfo> {
        if self.variants != VariantsStatus::Ready {
            return None;
        }
        self.variant_info.iter().find(|v| v.size == size)
    }

    /// Strong validator for HTTP caching: content never changes under one key.
    pub fn etag(&self, size: Option<Size>) -> String {
        let which = size.map_or("original", Size::name);
        format!("\"{}-{which}\"", &self.hash[..16.min(self.hash.len())])
    }
}

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
}

/// Checks an upload and prepares it for storage: [`media::inspect`] (format by magic bytes,
/// header, structure, what browsers and the decoder can show, the limits), EXIF metadata, and
/// the original stripped by its format's keep-list. Refusals: 415 `unsupported_media_type`
/// (not an image format) or `unsupported_image` (a variant of one that cannot be shown), 422
/// `unreadable_image` or `damaged_image`, 413 with the limit's code.
pub fn prepare(bytes: &[u8]) -> Result<Prepared> {
    use http::StatusCode;
    if media::sniff(bytes).is_none() {
        return Err(Error::client(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
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
    })
}

/// The status and code of each inspection refusal.
pub fn media_error(e: MediaError) -> Error {
    use http::StatusCode;
    match e {
        MediaError::Unreadable(_) => Error::unprocessable("unreadable_image", e.to_string()),
        MediaError::Damaged(_) => Error::unprocessable("damaged_image", e.to_string()),
        MediaError::Unsupported(m) => Error::client(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_image", m),
        MediaError::TooLarge { code, message } => Error::client(StatusCode::PAYLOAD_TOO_LARGE, code, message),
    }
}

/// The result of storing an upload.
#[derive(Debug, Clone)]
pub struct Stored {
    pub image: ImageRecord,
    /// The bytes were already stored; this upload shares the existing image.
    pub duplicate: bool,
}

fn now_rfc3339() -> String {
    let now = OffsetDateTime::now_utc();
    let now = now.replace_nanosecond(now.millisecond() as u32 * 1_000_000).unwrap_or(now);
    now.format(&Rfc3339).unwrap_or_default()
}

/// How often ingest re-reads after losing a race before giving up with a 503.
const INGEST_ATTEMPTS: usize = 8;

/// Stores a prepared upload: a new image, or one more upload of an image with the same bytes.
/// `token_digest` is the digest of the upload's delete token. Storing the same bytes again with
/// the same digest (a retried delivery) finds the upload already attached and changes nothing.
#[instrument(skip_all, fields(hash = %p.hash))]
pub async fn store(app: &App, p: &Prepared, token_digest: &str) -> Result<Stored> {
    let table = &app.table;
    for attempt in 0..INGEST_ATTEMPTS {
        if attempt > 0 {
            // Another writer is mid-way through the same bytes; give it a moment.
            tokio::time::sleep(std::time::Duration::from_millis(20 * attempt as u64)).await;
        }
        if let Some(h) = table.get(&hash_pk(&p.hash), HASH_SK).await? {
            let id = h.str("image_id").unwrap_or_default().to_owned();
            match add_upload(app, &id, &p.hash, p, token_digest).await? {
                Some(image) => {
                    info!(image_id = %image.id, "duplicate upload");
                    return Ok(Stored { image, duplicate: true });
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
            created_at: now_rfc3339(),
            variants: VariantsStatus::Pending,
            variant_info: vec![],
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
                    Ok(Some(image)) => return Ok(Stored { image, duplicate: false }),
                    Ok(None) => {}
                    Err(undo) => warn!(image_id = %id, error = %undo, "undoing the upload failed"),
                }
                return Err(e);
            }
        };
        info!(image_id = %image.id, bytes = image.bytes, "new image");
        return Ok(Stored { image, duplicate: false });
    }
    Err(Error::client(
        http::StatusCode::SERVICE_UNAVAILABLE,
        "busy",
        "the same image is being changed concurrently; try again",
    ))
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

/// The writes that take one upload off an image: its item becomes a tombstone (`deleted`) and
/// the image's count drops, if the image meets `image_cond` and still has uploads.
fn detach_upload(id: &str, token_digest: &str, image_cond: Cond) -> Vec<TxOp> {
    vec![
        TxOp::Update {
            pk: image_pk(id),
            sk: upload_sk(token_digest),
            update: Update::new().set("deleted", true),
            cond: Some(Cond::Exists.and(Cond::AttrNotExists("deleted".into()))),
        },
        TxOp::Update {
            pk: image_pk(id),
            sk: META.into(),
            update: Update::new().add("refs", -1),
            cond: Some(image_cond.and(Cond::gt("refs", 0))),
        },
    ]
}

/// Takes back the upload that created a still-pending image whose original could not be
/// stored, and removes the image when nothing else holds it. Returns the image instead when a
/// concurrent uploader of the same bytes activated it meanwhile: the original is stored then,
/// and that activation counted this upload, so the upload stands. The `pending` condition makes
/// the two outcomes exclusive.
async fn undo_pending_upload(app: &App, id: &str, token_digest: &str) -> Result<Option<ImageRecord>> {
    let ops = detach_upload(id, token_digest, Cond::eq("state", State::Pending.as_str()));
    let undone = match app.table.transact(ops).await {
        Ok(()) => true,
        Err(e) if e.is_condition_failed() => false,
        Err(e) => return Err(e.into()),
    };
    let Some(item) = app.table.get(&image_pk(id), META).await? else { return Ok(None) };
    let record = ImageRecord::from_item(&item)?;
    if !undone {
        return Ok((record.state == State::Active).then_some(record));
    }
    if record.refs <= 0 {
        purge(app, &record, Some(Cond::le("refs", 0))).await?;
    }
    Ok(None)
}

/// Adds one upload to an existing image. Returns `None` when the hash item led to an image
/// that is gone or going, after clearing the stale hash item so the next attempt starts fresh.
async fn add_upload(app: &App, id: &str, hash: &str, p: &Prepared, token_digest: &str) -> Result<Option<ImageRecord>> {
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
            item: Item::new(image_pk(id), upload_sk(token_digest)).with("created_at", now_rfc3339()),
            cond: Some(Cond::NotExists),
        },
    ];
    match stats::transact_counted(&**table, ops, Change::DuplicateUpload, OffsetDateTime::now_utc()).await {
        Ok(()) => {
            record.refs += 1;
            Ok(Some(record))
        }
        // This very upload may be attached already (a retried delivery): then it is done.
        Err(e) if e.is_condition_failed() => match table.get(&image_pk(id), &upload_sk(token_digest)).await? {
            Some(u) if u.bool("deleted") != Some(true) => Ok(Some(record)),
            _ => Ok(None),
        },
        Err(e) => Err(e.into()),
    }
}

async fn clear_hash(app: &App, hash: &str, id: &str) -> Result<()> {
    match app.table.delete(&hash_pk(hash), HASH_SK, Some(Cond::eq("image_id", id))).await {
        Ok(_) => Ok(()),
        Err(e) if e.is_condition_failed() => Ok(()),
        Err(e) => Err(e.into()),
    }
}

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

/// Deletes one upload by its delete token; the image goes with its last upload.
#[instrument(skip(app, token))]
pub async fn delete_upload(app: &App, id: &str, token: &str) -> Result<()> {
    if !secret::is_image_id(id) {
        return Err(Error::not_found("image"));
    }
    match remove_upload(app, id, &secret::digest_hex(token)).await? {
        Removal::Done => Ok(()),
        Removal::NoSuchImage => Err(Error::not_found("image")),
        Removal::WrongToken => {
            Err(Error::client(http::StatusCode::FORBIDDEN, "forbidden", "the delete token does not match this image"))
        }
    }
}

enum Removal {
    Done,
    NoSuchImage,
    WrongToken,
}

/// Takes one upload off an image and purges the image when it was the last.
///
/// The upload item is not deleted but marked `deleted` in the same transaction that lowers the
/// count: if anything fails after that (the purge, the network), the same token finds its
/// tombstone and finishes the job, instead of meeting a 403 with the image still up. The purge
/// removes the tombstones with the image.
async fn remove_upload(app: &App, id: &str, token_digest: &str) -> Result<Removal> {
    let ops = detach_upload(id, token_digest, Cond::Exists);
    match app.table.transact(ops).await {
        Ok(()) => {}
        Err(e) if e.is_condition_failed() => {
            // Either a retry of a delete that got this far before (resume it), a wrong token,
            // or no image at all. Which one is told apart without revealing anything about tokens.
            let upload = app.table.get(&image_pk(id), &upload_sk(token_digest)).await?;
            let meta = app.table.get(&image_pk(id), META).await?;
            match (upload.and_then(|u| u.bool("deleted")), meta) {
                (Some(true), Some(_)) => {}
                (Some(true), None) => return Ok(Removal::Done),
                (_, None) => return Ok(Removal::NoSuchImage),
                (_, Some(_)) => return Ok(Removal::WrongToken),
            }
        }
        Err(e) => return Err(e.into()),
    }
    let Some(item) = app.table.get(&image_pk(id), META).await? else { return Ok(Removal::Done) };
    let record = ImageRecord::from_item(&item)?;
    if record.refs <= 0 {
        purge(app, &record, Some(Cond::le("refs", 0))).await?;
    }
    Ok(Removal::Done)
}

/// Deletes an image with all its uploads (admin).
#[instrument(skip(app))]
pub async fn delete_image(app: &App, id: &str) -> Result<()> {
    if !secret::is_image_id(id) {
        return Err(Error::not_found("image"));
    }
    let item = app.table.get(&image_pk(id), META).await?.ok_or_else(|| Error::not_found("image"))?;
    purge(app, &ImageRecord::from_item(&item)?, None).await
}

/// Removes an image: marks it deleting (so no new upload can join it), detaches its hash,
/// removes its objects, then its items. Every step after the mark is idempotent, so a crash
/// midway is finished by any later delete.
///
/// The mark is conditional on the state the caller saw, and a visible image's counters are
/// lowered in the same transaction: the image is uncounted exactly once, by whoever marks it,
/// and a resumed purge (state already `deleting`) does not uncount it again.
async fn purge(app: &App, record: &ImageRecord, guard: Option<Cond>) -> Result<()> {
    let pk = image_pk(&record.id);
    let mut current = record.clone();
    let mut marked = false;
    for _ in 0..INGEST_ATTEMPTS {
        if current.state == State::Deleting {
            marked = true;
            break;
        }
        let mark = Update::new().set("state", State::Deleting.as_str()).remove(GSI1PK).remove(GSI1SK);
        let mut cond = Cond::Exists.and(Cond::eq("state", current.state.as_str()));
        if let Some(g) = &guard {
            cond = cond.and(g.clone());
        }
        let op = TxOp::Update { pk: pk.clone(), sk: META.into(), update: mark, cond: Some(cond) };
        let result = if current.state == State::Active {
            let facts = current.facts();
            stats::transact_counted(&*app.table, vec![op], Change::ImageRemoved(&facts), OffsetDateTime::now_utc())
                .await
        } else {
            // A pending image was never counted.
            app.table.transact(vec![op]).await
        };
        match result {
            Ok(()) => {
                marked = true;
                break;
            }
            Err(e) if e.is_condition_failed() => {
                // Gone already, a new upload joined after refs reached zero (the image lives
                // on), or the state moved under us (a pending image was activated): look again.
                let Some(item) = app.table.get(&pk, META).await? else { return Ok(()) };
                if guard.as_ref().is_some_and(|g| !g.eval(Some(&item))) {
                    return Ok(());
                }
                current = ImageRecord::from_item(&item)?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    if !marked {
        return Err(Error::client(
            http::StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "the image is being changed concurrently; try again",
        ));
    }
    clear_hash(app, &record.hash, &record.id).await?;
    app.objects.delete(&record.original_key()).await?;
    // Every key a variant can have, so variants made after the record was read go too.
    for size in Size::ALL {
        for f in [Format::Jpeg, Format::Png] {
            app.objects.delete(&variant_key(&record.id, size, f)).await?;
        }
    }
    let mut start = None;
    loop {
        let page = app.table.query(Query::table(pk.clone()).limit(100).start(start)).await?;
        for item in &page.items {
            if item.sk() != META {
                app.table.delete(&pk, item.sk(), None).await?;
            }
        }
        match page.next {
            Some(c) => start = Some(c),
            None => break,
        }
    }
    app.table.delete(&pk, META, None).await?;
    info!(image_id = %record.id, "image deleted");
    Ok(())
}

/// One page of the admin listing, newest first.
pub async fn list(
    app: &App,
    limit: usize,
    cursor: Option<crate::store::Cursor>,
) -> Result<(Vec<ImageRecord>, Option<crate::store::Cursor>)> {
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

// ---------------------------------------------------------------------------------------------
// Public views
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Serialize)]
pub struct VariantView {
    pub status: VariantsStatus,
    pub url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
}

/// The public metadata of an image. GPS is deliberately absent.
#[derive(Debug, Serialize)]
pub struct ImageView {
    pub id: String,
    pub link: String,
    pub page: String,
    pub mime: &'static str,
    pub format: &'static str,
    pub width: u32,
    pub height: u32,
    pub display_width: u32,
    pub display_height: u32,
    pub orientation: Option<u16>,
    pub bytes: u64,
    pub camera_make: Option<String>,
    pub camera_model: Option<String>,
    pub taken_at: Option<String>,
    pub created_at: String,
    pub variants: std::collections::BTreeMap<&'static str, VariantView>,
}

impl ImageView {
    pub fn new(r: &ImageRecord, base: &str) -> Self {
        let (dw, dh) = r.display_dimensions();
        let variants = Size::ALL
            .into_iter()
            .map(|size| {
                let made = r.variant(size);
                let status = match (made, r.variants) {
                    (Some(_), _) => VariantsStatus::Ready,
                    (None, VariantsStatus::Failed) => VariantsStatus::Failed,
                    _ => VariantsStatus::Pending,
                };
                let view = VariantView {
                    status,
                    url: format!("{base}/i/{}?size={}", r.id, size.name()),
                    width: made.map(|v| v.width),
                    height: made.map(|v| v.height),
                };
                (size.name(), view)
            })
            .collect();
        ImageView {
            id: r.id.clone(),
            link: format!("{base}/i/{}.{}", r.id, r.format.ext()),
            page: format!("{base}/v/{}", r.id),
            mime: r.format.mime(),
            format: r.format.name(),
            width: r.width,
            height: r.height,
            display_width: dw,
            display_height: dh,
            orientation: r.meta.orientation,
            bytes: r.bytes,
            camera_make: r.meta.camera_make.clone(),
            camera_model: r.meta.camera_model.clone(),
            taken_at: r.meta.taken_at.clone(),
            created_at: r.created_at.clone(),
            variants,
        }
    }
}

/// What an upload answers: the public view plus this upload's token.
#[derive(Debug, Serialize)]
pub struct UploadView {
    #[serde(flatten)]
    pub image: ImageView,
    pub duplicate: bool,
    pub delete_token: String,
}

impl UploadView {
    pub fn new(stored: &Stored, delete_token: String, base: &str) -> Self {
        UploadView { image: ImageView::new(&stored.image, base), duplicate: stored.duplicate, delete_token }
    }
}
