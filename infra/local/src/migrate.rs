//! `imghost migrate`: copies everything one deployment holds into the other storage family,
//! from a data directory to AWS (growing out of one machine) or from AWS to a data directory
//! (a backup, or leaving AWS).
//!
//! What is copied is exactly what the two stores hold: every object (originals and variants)
//! and every table item (image records, counters, links, import jobs, keep-alive entries,
//! accounts, purchases, meme charges), unchanged, so that the target answers as the source did.
//! Objects go first and items after, so a record in the target never points at an object the
//! target lacks; in AWS, an original copied before its record is ignored by the resize worker
//! ("no such image") and one copied after finds its variants ready.
//!
//! Not copied: objects under `incoming/` (presigned uploads not yet ingested, which only the AWS
//! family has and which a target would never ingest) and the local admin token (AWS keeps its
//! own in SSM).
//!
//! A run is idempotent and resumable: an object already in the target is not fetched again, and
//! an item is written only where the target has none (`NotExists`), so a second run writes
//! nothing and a killed run continues where it was. An item the target holds with other
//! content is a conflict: reported, never overwritten. A marker item in the target records which
//! source it is a copy of; the target must be empty, or marked as a copy of the same source,
//! unless `--merge` is given.
//!
//! Memory: one page of keys (1,000) or items (100) at a time, and at most [`IN_FLIGHT`] objects
//! held at once, so the ceiling is `IN_FLIGHT` times the largest object.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use imghost::state::LocalStorage;
use imghost::store::aws::{DynamoTable, S3Objects};
use imghost::store::fs::FsObjects;
use imghost::store::sqlite::{SqliteDb, SqliteTable};
use imghost::store::{Cond, Item, ListObjects, ScanTable, StoreError};
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::Mutex;

use crate::{BoxError, DataDirLock};

/// Partition of the marker items that say which source a target copies.
pub const MARKER_PK: &str = "migration";
/// Objects copied at once.
pub const IN_FLIGHT: usize = 8;
/// Keys per page of an object listing.
const KEYS_PER_PAGE: usize = 1000;
/// Items per page of a table scan.
const ITEMS_PER_PAGE: usize = 100;
/// Object prefixes that are not copied (see the module documentation).
const SKIPPED_PREFIXES: [&str; 1] = ["incoming/"];

/// One side of a migration.
#[derive(Debug, Clone)]
pub enum Place {
    /// A data directory of the embedded family.
    Local { data_dir: PathBuf },
    /// A bucket and table of the AWS family; `endpoint` for S3-compatible stores and moto.
    Aws { bucket: String, table: String, endpoint: Option<String> },
}

impl Place {
    /// A stable name for the place, kept in the target's marker.
    fn describe(&self) -> Result<String, BoxError> {
        Ok(match self {
            Place::Local { data_dir } => {
                let dir = data_dir.canonicalize().map_err(|e| format!("{}: {e}", data_dir.display()))?;
                format!("local:{}", dir.display())
            }
            Place::Aws { bucket, table, endpoint } => {
                format!("aws:{}/{bucket}/{table}", endpoint.as_deref().unwrap_or("aws"))
            }
        })
    }
}

/// The stores of one side, opened for copying.
pub struct Stores {
    pub table: Arc<dyn ScanTable>,
    pub objects: Arc<dyn ListObjects>,
    name: String,
    /// Messages still waiting in a data directory's queues (work the server has not done).
    pending: usize,
    /// Keeps a local server off the data directory while the copy runs.
    _lock: Option<DataDirLock>,
}

impl Stores {
    /// Opens a side. A data directory is locked for the run (no server may use it meanwhile);
    /// a target directory is created. Its objects notify nobody: the copied variants are ready.
    pub async fn open(place: &Place, create: bool) -> Result<Stores, BoxError> {
        match place {
            Place::Local { data_dir } => {
                let is_data_dir = LocalStorage::db_path(data_dir).is_file();
                if !create && !is_data_dir {
                    return Err(format!("{} is not an imghost data directory", data_dir.display()).into());
                }
                // A target is a new folder, an empty one, or a data directory: never a folder
                // of other files that the copy would be mixed into.
                let holds_other_files = std::fs::read_dir(data_dir).is_ok_and(|mut entries| entries.next().is_some());
                if create && !is_data_dir && holds_other_files {
                    return Err(format!(
                        "{} holds other files and is not an imghost data directory",
                        data_dir.display()
                    )
                    .into());
                }
                let lock = DataDirLock::acquire(data_dir)?;
                let pending = if create {
                    0
                } else {
                    let local = LocalStorage::open(data_dir)?;
                    local.object_events.len()? + local.imports.len()? + local.keepalive.len()? + local.avif.len()?
                };
                let db = SqliteDb::open(&LocalStorage::db_path(data_dir))?;
                Ok(Stores {
                    table: Arc::new(SqliteTable::new(db)),
                    objects: Arc::new(FsObjects::new(LocalStorage::objects_dir(data_dir))),
                    name: place.describe()?,
                    pending,
                    _lock: Some(lock),
                })
            }
            Place::Aws { bucket, table, endpoint } => {
                let sdk = match endpoint {
                    Some(url) => imghost::aws::sdk_config_at(url).await,
                    None => imghost::aws::sdk_config().await,
                };
                Ok(Stores {
                    table: Arc::new(DynamoTable::from_sdk(&sdk, table.clone())),
                    objects: Arc::new(S3Objects::from_sdk(&sdk, bucket.clone())),
                    name: place.describe()?,
                    pending: 0,
                    _lock: None,
                })
            }
        }
    }
}

/// How a run behaves.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Copy into a target that holds other data (never overwriting it).
    pub merge: bool,
    /// Copy although the source's queues still hold work (which is then not carried over).
    pub ignore_pending: bool,
    /// At most this many writes per second to the target (its capacity, or a test's pace).
    pub rate: Option<u32>,
    /// Draw progress bars (on a terminal).
    pub progress: bool,
}

/// What happened to one kind of thing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// In the source (skipped ones excluded).
    pub source: u64,
    /// Written to the target by this run.
    pub copied: u64,
    /// Already in the target, the same.
    pub present: u64,
    /// In the target with other content: left alone.
    pub conflicts: u64,
    /// Left out on purpose (see the module documentation).
    pub skipped: u64,
    /// In the target once the run is over (markers and skipped prefixes excluded).
    pub target: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub objects: Tally,
    pub items: Tally,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (what, t) in [("objects", &self.objects), ("items", &self.items)] {
            writeln!(
                f,
                "{what}: {} in the source, {} copied, {} already there, {} conflicts, {} skipped; {} in the target",
                t.source, t.copied, t.present, t.conflicts, t.skipped, t.target
            )?;
        }
        Ok(())
    }
}

/// Paces writes to at most `rate` per second, shared by every copy in flight.
struct Pace {
    next: Mutex<tokio::time::Instant>,
    period: Duration,
}

impl Pace {
    fn new(rate: Option<u32>) -> Option<Pace> {
        rate.filter(|r| *r > 0).map(|r| Pace {
            next: Mutex::new(tokio::time::Instant::now()),
            period: Duration::from_secs_f64(1.0 / f64::from(r)),
        })
    }

    async fn wait(pace: &Option<Pace>) {
        let Some(p) = pace else { return };
        let at = {
            let mut next = p.next.lock().await;
            let at = (*next).max(tokio::time::Instant::now());
            *next = at + p.period;
            at
        };
        tokio::time::sleep_until(at).await;
    }
}

/// Copies everything from `from` to `to` and checks the counts; see the module documentation.
pub async fn run(from: &Stores, to: &Stores, settings: &Settings) -> Result<Report, BoxError> {
    if from.name == to.name {
        return Err("the source and the target are the same place".into());
    }
    if from.pending > 0 && !settings.ignore_pending {
        return Err(format!(
            "{} messages are still waiting in the source's queues (variants, imports or keep-alive loads \
             not yet done); start the server on it until they are done, or pass --ignore-pending",
            from.pending
        )
        .into());
    }
    let resuming = to.table.get(MARKER_PK, &from.name).await?.is_some();
    if !settings.merge && !resuming && !is_empty(to).await? {
        return Err("the target holds data that is not a copy of this source; pass --merge to copy \
                    into it anyway (nothing in it is overwritten)"
            .into());
    }
    let marker = Item::new(MARKER_PK, from.name.clone()).with("started_at", now_rfc3339()).with("state", "copying");
    to.table.put(marker.clone(), None).await?;

    let pace = Pace::new(settings.rate);
    let mut report = Report::default();
    report.objects.source = count_objects(&*from.objects, &mut report.objects.skipped).await?;
    report.items.source = count_items(&*from.table).await?;

    copy_objects(from, to, &pace, bar(settings, report.objects.source, "objects"), &mut report.objects).await?;
    copy_items(from, to, &pace, bar(settings, report.items.source, "items"), &mut report.items).await?;

    let mut skipped_in_target = 0;
    report.objects.target = count_objects(&*to.objects, &mut skipped_in_target).await?;
    report.items.target = count_items(&*to.table).await?;
    check_counts(&report, settings.merge)?;
    to.table.put(marker.with("state", "done").with("finished_at", now_rfc3339()), None).await?;
    Ok(report)
}

/// The final check: every source thing is in the target, and without `--merge` nothing else is.
fn check_counts(report: &Report, merge: bool) -> Result<(), BoxError> {
    for (what, t) in [("objects", &report.objects), ("items", &report.items)] {
        let accounted = t.copied + t.present + t.conflicts;
        if accounted != t.source {
            return Err(format!(
                "{what}: {} counted in the source but {accounted} handled (the source changed during the copy?)",
                t.source
            )
            .into());
        }
        if t.conflicts > 0 {
            return Err(format!("{what}: {} differ between source and target and were left alone", t.conflicts).into());
        }
        let fits = if merge { t.target >= t.source } else { t.target == t.source };
        if !fits {
            return Err(format!(
                "{what}: {} in the source but {} in the target{}",
                t.source,
                t.target,
                if merge { "" } else { " (did the source lose some since an earlier run?)" }
            )
            .into());
        }
    }
    Ok(())
}

fn bar(settings: &Settings, total: u64, what: &str) -> ProgressBar {
    if !settings.progress {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    let style = ProgressStyle::with_template("{prefix:>8} [{bar:40}] {pos}/{len} {per_sec} eta {eta}")
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_prefix(what.to_owned());
    bar
}

fn is_skipped(key: &str) -> bool {
    SKIPPED_PREFIXES.iter().any(|p| key.starts_with(p))
}

/// Whether a target holds no object and no item other than markers of migrations.
async fn is_empty(to: &Stores) -> Result<bool, BoxError> {
    if !to.objects.list(None, 1).await?.is_empty() {
        return Ok(false);
    }
    let mut after = None;
    loop {
        let (items, next) = to.table.scan(after, ITEMS_PER_PAGE).await?;
        if items.iter().any(|i| i.pk() != MARKER_PK) {
            return Ok(false);
        }
        match next {
            Some(k) => after = Some(k),
            None => return Ok(true),
        }
    }
}

async fn count_objects(objects: &dyn ListObjects, skipped: &mut u64) -> Result<u64, StoreError> {
    let (mut n, mut after) = (0, None::<String>);
    loop {
        let page = objects.list(after.as_deref(), KEYS_PER_PAGE).await?;
        for key in &page {
            if is_skipped(key) {
                *skipped += 1;
            } else {
                n += 1;
            }
        }
        if page.len() < KEYS_PER_PAGE {
            return Ok(n);
        }
        after = page.last().cloned();
    }
}

async fn count_items(table: &dyn ScanTable) -> Result<u64, StoreError> {
    let (mut n, mut after) = (0, None);
    loop {
        let (items, next) = table.scan(after, ITEMS_PER_PAGE).await?;
        n += items.iter().filter(|i| i.pk() != MARKER_PK).count() as u64;
        match next {
            Some(k) => after = Some(k),
            None => return Ok(n),
        }
    }
}

#[derive(Clone, Copy)]
enum Outcome {
    Copied,
    Present,
    Conflict,
}

impl Tally {
    fn add(&mut self, o: Outcome) {
        match o {
            Outcome::Copied => self.copied += 1,
            Outcome::Present => self.present += 1,
            Outcome::Conflict => self.conflicts += 1,
        }
    }
}

async fn copy_objects(
    from: &Stores,
    to: &Stores,
    pace: &Option<Pace>,
    bar: ProgressBar,
    tally: &mut Tally,
) -> Result<(), BoxError> {
    let mut after = None::<String>;
    loop {
        let page = from.objects.list(after.as_deref(), KEYS_PER_PAGE).await?;
        let outcomes: Vec<Outcome> = futures::stream::iter(page.iter().filter(|k| !is_skipped(k)))
            .map(|key| async move {
                // Keys are never reused for other content, so an object present under the key
                // is this object.
                if to.objects.exists(key).await? {
                    return Ok::<_, BoxError>(Outcome::Present);
                }
                let Some(object) = from.objects.get(key).await? else {
                    // Deleted since it was listed: nothing to copy.
                    return Ok(Outcome::Present);
                };
                Pace::wait(pace).await;
                to.objects.put(key, object.bytes, &object.content_type).await?;
                Ok(Outcome::Copied)
            })
            .buffer_unordered(IN_FLIGHT)
            .inspect_ok(|_| bar.inc(1))
            .try_collect()
            .await?;
        outcomes.into_iter().for_each(|o| tally.add(o));
        if page.len() < KEYS_PER_PAGE {
            break;
        }
        after = page.last().cloned();
    }
    bar.finish();
    Ok(())
}

async fn copy_items(
    from: &Stores,
    to: &Stores,
    pace: &Option<Pace>,
    bar: ProgressBar,
    tally: &mut Tally,
) -> Result<(), BoxError> {
    let mut after = None;
    loop {
        let (items, next) = from.table.scan(after, ITEMS_PER_PAGE).await?;
        let outcomes: Vec<Outcome> = futures::stream::iter(items.into_iter().filter(|i| i.pk() != MARKER_PK))
            .map(|item| async move {
                Pace::wait(pace).await;
                match to.table.put(item.clone(), Some(Cond::NotExists)).await {
                    Ok(()) => Ok::<_, BoxError>(Outcome::Copied),
                    Err(e) if e.is_condition_failed() => {
                        let there = to.table.get(item.pk(), item.sk()).await?;
                        if there.as_ref() == Some(&item) {
                            Ok(Outcome::Present)
                        } else {
                            tracing::warn!(
                                pk = item.pk(),
                                sk = item.sk(),
                                "the target holds this item with other content"
                            );
                            Ok(Outcome::Conflict)
                        }
                    }
                    Err(e) => Err(e.into()),
                }
            })
            .buffer_unordered(IN_FLIGHT)
            .inspect_ok(|_| bar.inc(1))
            .try_collect()
            .await?;
        outcomes.into_iter().for_each(|o| tally.add(o));
        match next {
            Some(k) => after = Some(k),
            None => break,
        }
    }
    bar.finish();
    Ok(())
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}
