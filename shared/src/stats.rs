//! Service statistics, kept as counters written in the same transaction as the change they
//! count, so `GET /v1/stats` reads a fixed, small number of items however many images exist.
//!
//! # What is counted
//! - Stored images: `totals.images`, `totals.bytes` (stored originals, after metadata
//!   stripping), per format, per camera model, and `cameras_unknown`. These go up when an image
//!   becomes visible and down when it is deleted.
//! - Accepted uploads: `totals.uploads`, `totals.duplicates` and uploads per UTC day. These count
//!   events: an upload that was accepted stays counted when its image is later deleted.
//!
//! # Items
//!
//! | item            | pk             | sk             | attributes                                   |
//! |-----------------|----------------|----------------|----------------------------------------------|
//! | totals of shard | `STATS#<0..8>` | `TOTALS`       | `images`, `uploads`, `duplicates`, `bytes`, `cameras_unknown`, `fmt_<format>` |
//! | day of shard    | `STATS#<0..8>` | `DAY#<date>`   | `uploads`                                    |
//! | camera model    | `CAM#<model>`  | `CAM`          | `model`, `count`; gsi1 `CAMERAS` / rank key  |
//!
//! # Why shards
//! Every upload changes the totals. DynamoDB cancels a transaction that touches an item another
//! transaction is writing (`TransactionConflict`), so one totals item would serialise all
//! uploads of the service. Each change picks one of [`SHARDS`] shards at random and the reader
//! sums them: conflicts become rare and the read stays bounded (8 gets and 8 short queries).
//!
//! # Why camera counters carry a rank key
//! "Top 10 cameras" must not read every model. Each model's item sits in the secondary index
//! under a sort key made of its count (inverted, zero-padded) and its name, so one query of 10
//! items yields the top ten, ties broken by model name, identically on both storage families.
//! The key is derived from the count, so a change writes the new count and key together under
//! the condition that the count is still what was read; a concurrent change of the same model
//! makes the transaction fail on that operation, and [`transact_counted`] reads again and retries.

use std::time::Duration;

use serde::Serialize;
use time::{Date, OffsetDateTime};
use tracing::debug;

use crate::media::Format;
use crate::store::{Cond, GSI1PK, GSI1SK, Item, Query, SkCond, StoreError, StoreResult, Table, TxOp, Update};

/// Number of counter shards. Changing it is safe only upward (readers sum `0..SHARDS`).
pub const SHARDS: u32 = 8;
/// Days in `uploads_per_day`, ending today.
pub const DAYS: u32 = 30;
/// At most this many models in `top_cameras`.
pub const TOP_CAMERAS: usize = 10;
/// Index partition of the camera ranking.
const CAMERA_INDEX: &str = "CAMERAS";
const CAMERA_SK: &str = "CAM";
const TOTALS: &str = "TOTALS";
/// Longest model label kept, in bytes. EXIF models are short; the cap keeps a hostile file from
/// making an oversized key (DynamoDB limits sort keys to 1024 bytes).
const MODEL_MAX_BYTES: usize = 128;
/// Rank keys hold `RANK_TOP - count`, so an ascending index walk meets the largest count first.
const RANK_TOP: i64 = 999_999_999_999;
/// How often a counted transaction is retried when a concurrent change moved a camera counter.
/// Each failed attempt means another writer of that model succeeded, so this bounds how many
/// concurrent writers of one model are served before one gives up.
const ATTEMPTS: u32 = 64;

fn shard_pk(shard: u32) -> String {
    format!("STATS#{shard}")
}
fn day_sk(date: Date) -> String {
    format!("DAY#{}", iso_date(date))
}
fn camera_pk(model: &str) -> String {
    format!("CAM#{model}")
}
fn rank_key(count: i64, model: &str) -> String {
    format!("{:012}#{model}", RANK_TOP - count)
}
fn format_attr(format: Format) -> String {
    format!("fmt_{}", format.name())
}

/// `YYYY-MM-DD`.
pub fn iso_date(date: Date) -> String {
    format!("{:04}-{:02}-{:02}", date.year(), u8::from(date.month()), date.day())
}

/// The camera label an image is counted under: the EXIF Model field trimmed, as ExifTool shows
/// it. `None` (counted as unknown) when there is no model or it is not a real one: empty after
/// trimming, without a letter or digit, or holding control characters.
pub fn camera_label(model: Option<&str>) -> Option<String> {
    let m = model?.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    if m.is_empty() || !m.chars().any(char::is_alphanumeric) || m.chars().any(char::is_control) {
        return None;
    }
    let mut end = m.len().min(MODEL_MAX_BYTES);
    while !m.is_char_boundary(end) {
        end -= 1;
    }
    Some(m[..end].trim_end().to_owned())
}

/// What one stored image contributes to the counters.
#[derive(Debug, Clone, PartialEq)]
pub struct Facts {
    pub format: Format,
    pub bytes: u64,
    /// From [`camera_label`].
    pub camera: Option<String>,
}

/// A change to count.
#[derive(Debug, Clone)]
pub enum Change<'a> {
    /// An image became visible, with the upload that brought it.
    ImageAdded(&'a Facts),
    /// One more accepted upload of an image already stored.
    DuplicateUpload,
    /// A visible image was deleted.
    ImageRemoved(&'a Facts),
}

/// Runs `ops` in one transaction together with the counter writes for `change` at time `now`.
///
/// A failed condition among `ops` is returned as it is (its index refers to `ops`), so callers
/// handle their own races as before. A failed condition on a camera counter means a concurrent
/// change of the same model: the counter is read again and the whole transaction retried.
pub async fn transact_counted(
    table: &dyn Table,
    ops: Vec<TxOp>,
    change: Change<'_>,
    now: OffsetDateTime,
) -> StoreResult<()> {
    let own = ops.len();
    let shard = random_u32() % SHARDS;
    for attempt in 0..ATTEMPTS {
        let mut all = ops.clone();
        all.extend(counter_ops(table, &change, now, shard).await?);
        match table.transact(all).await {
            Err(StoreError::ConditionFailed { index: Some(i) }) if i >= own => {
                debug!(attempt, "camera counter moved concurrently; retrying");
                // Full jitter on a capped exponential back-off keeps writers of one model from
                // retrying in lockstep.
                let cap = 2u64 << attempt.min(6);
                tokio::time::sleep(Duration::from_millis(1 + random_u32() as u64 % cap)).await;
            }
            other => return other,
        }
    }
    Err(StoreError::Backend("camera counter kept changing concurrently".into()))
}

fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    // A failure of the OS random source only skews the spread (shard 0, no jitter); the counts
    // stay correct.
    let _ = getrandom::fill(&mut b);
    u32::from_le_bytes(b)
}

/// The counter writes for one change, reading the camera counter it moves.
async fn counter_ops(
    table: &dyn Table,
    change: &Change<'_>,
    now: OffsetDateTime,
    shard: u32,
) -> StoreResult<Vec<TxOp>> {
    let pk = shard_pk(shard);
    let totals = |update: Update| TxOp::Update { pk: pk.clone(), sk: TOTALS.into(), update, cond: None };
    let day =
        TxOp::Update { pk: pk.clone(), sk: day_sk(now.date()), update: Update::new().add("uploads", 1), cond: None };
    let image_totals = |u: Update, facts: &Facts, sign: i64| {
        let u = u.add("images", sign).add("bytes", sign * facts.bytes as i64).add(&format_attr(facts.format), sign);
        if facts.camera.is_none() { u.add("cameras_unknown", sign) } else { u }
    };
    let mut ops = Vec::with_capacity(3);
    match change {
        Change::ImageAdded(facts) => {
            ops.push(totals(image_totals(Update::new().add("uploads", 1), facts, 1)));
            ops.push(day);
            if let Some(model) = &facts.camera {
                ops.extend(camera_op(table, model, 1).await?);
            }
        }
        Change::DuplicateUpload => {
            ops.push(totals(Update::new().add("uploads", 1).add("duplicates", 1)));
            ops.push(day);
        }
        Change::ImageRemoved(facts) => {
            ops.push(totals(image_totals(Update::new(), facts, -1)));
            if let Some(model) = &facts.camera {
                ops.extend(camera_op(table, model, -1).await?);
            }
        }
    }
    Ok(ops)
}

/// Moves one model's count by `delta` (±1), guarded by the count just read. A model whose count
/// reaches zero is deleted, so the ranking holds only models with stored images.
async fn camera_op(table: &dyn Table, model: &str, delta: i64) -> StoreResult<Option<TxOp>> {
    let pk = camera_pk(model);
    let current = table.get(&pk, CAMERA_SK).await?;
    let count = current.as_ref().and_then(|i| i.num("count")).unwrap_or(0);
    let new = count + delta;
    let guard = if current.is_some() { Cond::eq("count", count) } else { Cond::NotExists };
    Ok(Some(if new <= 0 {
        if current.is_none() {
            // Nothing to take away: the model was never counted (an image stored before
            // counters existed). Counting below zero would only hide it.
            tracing::warn!(model, "camera counter missing on delete");
            return Ok(None);
        }
        TxOp::Delete { pk, sk: CAMERA_SK.into(), cond: Some(guard) }
    } else {
        let update = Update::new()
            .set("model", model)
            .set("count", new)
            .set(GSI1PK, CAMERA_INDEX)
            .set(GSI1SK, rank_key(new, model));
        TxOp::Update { pk, sk: CAMERA_SK.into(), update, cond: Some(guard) }
    }))
}

// ---------------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FormatCount {
    pub format: &'static str,
    pub count: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CameraCount {
    pub model: String,
    pub count: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DayCount {
    pub date: String,
    pub count: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Totals {
    pub images: i64,
    pub uploads: i64,
    pub bytes: i64,
    pub duplicates: i64,
}

/// The answer of `GET /v1/stats`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Stats {
    /// `null` while no image is stored.
    pub most_popular_format: Option<&'static str>,
    /// Formats with stored images, most first (ties by name).
    pub formats: Vec<FormatCount>,
    pub top_cameras: Vec<CameraCount>,
    pub cameras_unknown: i64,
    /// Exactly [`DAYS`] UTC days ending `today`, oldest first, zero-filled.
    pub uploads_per_day: Vec<DayCount>,
    pub totals: Totals,
}

/// Reads the statistics: every shard's totals and last [`DAYS`] day items, and the first
/// [`TOP_CAMERAS`] entries of the camera ranking. The number of items read does not grow with
/// the number of images.
pub async fn read(table: &dyn Table, today: Date) -> StoreResult<Stats> {
    let first = today - time::Duration::days(i64::from(DAYS) - 1);
    let shards = futures::future::try_join_all((0..SHARDS).map(|s| read_shard(table, s, first, today)));
    let cameras = table.query(Query::gsi1(CAMERA_INDEX).limit(TOP_CAMERAS));
    let (shards, cameras) = futures::future::try_join(shards, cameras).await?;

    let mut totals = Totals::default();
    let mut cameras_unknown = 0;
    let mut formats: Vec<FormatCount> =
        Format::ORIGINALS.iter().map(|f| FormatCount { format: f.name(), count: 0 }).collect();
    let mut days: Vec<DayCount> =
        (0..DAYS).map(|i| DayCount { date: iso_date(first + time::Duration::days(i64::from(i))), count: 0 }).collect();
    for (t, day_items) in &shards {
        if let Some(t) = t {
            let n = |name: &str| t.num(name).unwrap_or(0);
            totals.images += n("images");
            totals.uploads += n("uploads");
            totals.bytes += n("bytes");
            totals.duplicates += n("duplicates");
            cameras_unknown += n("cameras_unknown");
            for (f, fc) in Format::ORIGINALS.iter().zip(formats.iter_mut()) {
                fc.count += n(&format_attr(*f));
            }
        }
        for item in day_items {
            let date = item.sk().trim_start_matches("DAY#");
            if let Some(d) = days.iter_mut().find(|d| d.date == date) {
                d.count += item.num("uploads").unwrap_or(0);
            }
        }
    }
    formats.retain(|f| f.count > 0);
    formats.sort_by(|a, b| b.count.cmp(&a.count).then(a.format.cmp(b.format)));
    let top_cameras = cameras
        .items
        .iter()
        .filter_map(|i| Some(CameraCount { model: i.str("model")?.to_owned(), count: i.num("count")? }))
        .collect();
    Ok(Stats {
        most_popular_format: formats.first().map(|f| f.format),
        formats,
        top_cameras,
        cameras_unknown,
        uploads_per_day: days,
        totals,
    })
}

async fn read_shard(table: &dyn Table, shard: u32, first: Date, last: Date) -> StoreResult<(Option<Item>, Vec<Item>)> {
    let pk = shard_pk(shard);
    let days = Query::table(pk.clone()).sk(SkCond::Between(day_sk(first), day_sk(last))).limit(DAYS as usize);
    let (totals, days) = futures::future::try_join(table.get(&pk, TOTALS), table.query(days)).await?;
    Ok((totals, days.items))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camera_labels_are_trimmed_real_models() {
        let cases: &[(Option<&str>, Option<&str>)] = &[
            (Some("NIKON D70"), Some("NIKON D70")),
            (Some("  Canon EOS 40D \0\0"), Some("Canon EOS 40D")),
            (Some("C960Z,D460Z"), Some("C960Z,D460Z")),
            (Some(""), None),
            (Some("   "), None),
            (Some("\0\0\0"), None),
            (Some("----"), None),
            (Some("bad\u{7}model"), None),
            (None, None),
        ];
        for (input, want) in cases {
            assert_eq!(camera_label(*input).as_deref(), *want, "input {input:?}");
        }
    }

    #[test]
    fn long_models_are_cut_on_a_character_boundary() {
        let long = "é".repeat(100);
        let label = camera_label(Some(&long)).unwrap();
        assert!(label.len() <= MODEL_MAX_BYTES);
        assert!(label.chars().all(|c| c == 'é'));
    }

    #[test]
    fn rank_keys_order_by_count_descending_then_model() {
        let mut keys = [rank_key(1, "B"), rank_key(4, "Z"), rank_key(1, "A"), rank_key(12, "Y")];
        keys.sort();
        let order: Vec<_> = keys.iter().map(|k| k.split('#').nth(1).unwrap()).collect();
        assert_eq!(order, ["Y", "Z", "A", "B"]);
    }
}
