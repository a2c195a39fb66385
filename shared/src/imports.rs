//! Imports by URL: a job of 1 to 100 URLs, one queue message per URL, and a status per URL.
//!
//! # The job item
//! One item holds the whole job (`IMPORT#<job_id>` / `JOB`): the URLs, each URL's status,
//! result and attempts, and the counts per status. One item, not one per URL, because:
//! - a URL's status and the counts change in one conditional `UpdateItem`, with no transaction
//!   to conflict with the job's other URLs finishing at the same moment;
//! - the status endpoint is one `GetItem`;
//! - creating a job is one conditional put, whatever its size (a transaction would stop at 100
//!   items, and a job of 100 URLs needs 101).
//!
//! 100 URLs of at most 2048 bytes with their results stay well inside DynamoDB's 400 KB item.
//!
//! Per URL `i` the item holds `u<i>` (URL), `s<i>` (status), `t<i>` (digest of the upload's
//! delete token), `a<i>` (attempts), and when settled `img<i>` (image id), `err<i>` (JSON
//! error) and `fin<i>` (finish time).
//!
//! # Delivery
//! A message names a job and an index, nothing else: the URL is read from the job, so a message
//! cannot smuggle in a URL that was never checked. Moving a URL from `queued` to `running`,
//! and from `running` to `done` or `failed`, is conditional on its current status, so a message
//! delivered twice (SQS is at-least-once) imports once: the second delivery finds the URL
//! settled, or, if both run at once, both store the same bytes under the same upload digest,
//! which `images::store` recognises, and only one settles the URL.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;
use tracing::{info, instrument, warn};

use crate::clock;
use crate::error::{Error, Refusal, Result};
use crate::fetch::{self, FetchError, Fetcher};
use crate::images;
use crate::metrics;
use crate::secret;
use crate::state::App;
use crate::store::{Cond, Item, Update};

/// At most this many URLs per job.
pub const MAX_URLS: usize = 100;
/// Tries of one URL before a transient failure becomes final. The SQS redrive policy allows
/// five receives, so the worker settles the URL itself before the message would be dead-lettered.
pub const MAX_ATTEMPTS: u32 = 4;
/// Jobs are kept this long, then expire (the table's TTL).
const KEEP: time::Duration = time::Duration::days(30);
const JOB_SK: &str = "JOB";

fn job_pk(id: &str) -> String {
    format!("IMPORT#{id}")
}

/// The status of one URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ItemStatus {
    Queued,
    Running,
    Done,
    Failed,
}

impl ItemStatus {
    fn as_str(self) -> &'static str {
        match self {
            ItemStatus::Queued => "queued",
            ItemStatus::Running => "running",
            ItemStatus::Done => "done",
            ItemStatus::Failed => "failed",
        }
    }
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => ItemStatus::Queued,
            "running" => ItemStatus::Running,
            "done" => ItemStatus::Done,
            "failed" => ItemStatus::Failed,
            _ => return None,
        })
    }
}

/// The queue message for one URL of a job.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Message {
    pub job: String,
    pub item: usize,
}

/// A new job as the API answers it: the delete token of each URL's future upload is shown here,
/// once, index by index.
#[derive(Debug, Serialize)]
pub struct Created {
    pub job_id: String,
    pub items: usize,
    pub delete_tokens: Vec<String>,
}

/// Checks the request body's URLs: 1 to [`MAX_URLS`] `http`/`https` URLs without credentials.
/// The error names the bad entry. Addresses are not resolved here: that is the fetcher's job,
/// at the moment of connecting, where it cannot be raced.
pub fn validate(urls: &[String]) -> Result<()> {
    if urls.is_empty() || urls.len() > MAX_URLS {
        return Err(Error::unprocessable(
            "bad_urls",
            format!("`urls` must hold 1 to {MAX_URLS} URLs; it holds {}", urls.len()),
        ));
    }
    for (i, u) in urls.iter().enumerate() {
        fetch::check_url(u).map_err(|e| Error::unprocessable("bad_url", format!("urls[{i}]: {e}")))?;
    }
    Ok(())
}

/// Creates a job and queues one message per URL. When queueing fails the job is removed again,
/// so a client that sees an error has no half-made job; messages already sent then find no job
/// and are dropped.
#[instrument(skip_all, fields(urls = urls.len()))]
pub async fn create(app: &App, urls: &[String]) -> Result<Created> {
    validate(urls)?;
    let queue = app
        .imports
        .as_ref()
        .ok_or_else(|| Error::client(Refusal::Unavailable, "imports_unavailable", "imports are not configured here"))?;
    let job_id = secret::new_id128();
    let now = OffsetDateTime::now_utc();
    let mut item = Item::new(job_pk(&job_id), JOB_SK)
        .with("id", job_id.as_str())
        .with("created_at", clock::rfc3339_millis(now))
        .with("total", urls.len() as i64)
        .with("queued", urls.len() as i64)
        .with("running", 0)
        .with("done", 0)
        .with("failed", 0)
        .with("expires_at", (now + KEEP).unix_timestamp());
    let mut tokens = Vec::with_capacity(urls.len());
    for (i, u) in urls.iter().enumerate() {
        let token = secret::new_token();
        item.set(&format!("u{i}"), u.as_str());
        item.set(&format!("s{i}"), ItemStatus::Queued.as_str());
        item.set(&format!("t{i}"), secret::digest_hex(&token));
        item.set(&format!("a{i}"), 0);
        tokens.push(token);
    }
    app.table.put(item, Some(Cond::NotExists)).await?;
    let bodies: Vec<String> = (0..urls.len())
        .map(|i| serde_json::to_string(&Message { job: job_id.clone(), item: i }).unwrap_or_default())
        .collect();
    for chunk in bodies.chunks(10) {
        if let Err(e) = queue.send_batch(chunk).await {
            warn!(job_id = %job_id, error = %e, "queueing an import failed; removing the job");
            if let Err(undo) = app.table.delete(&job_pk(&job_id), JOB_SK, None).await {
                warn!(job_id = %job_id, error = %undo, "removing the job failed");
            }
            return Err(e.into());
        }
    }
    info!(job_id = %job_id, "import job queued");
    Ok(Created { job_id, items: urls.len(), delete_tokens: tokens })
}

/// A job as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = ImportJob)]
pub struct JobView {
    pub job_id: String,
    /// `queued`, `running`, `done`, `failed` or `partial`.
    #[schema(example = "done")]
    pub status: &'static str,
    pub created_at: Option<String>,
    /// When the last URL settled, once every URL has.
    pub finished_at: Option<String>,
    pub counts: Counts,
    pub items: Vec<ItemView>,
}

/// How many of a job's URLs stand where.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = ImportCounts)]
pub struct Counts {
    pub queued: i64,
    pub running: i64,
    pub done: i64,
    pub failed: i64,
}

/// One URL of a job.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = ImportItem)]
pub struct ItemView {
    pub url: Option<String>,
    /// `queued`, `running`, `done` or `failed`.
    pub status: Option<String>,
    pub image: Option<ImportedImage>,
    /// Why the URL failed (or failed last, while it is retried): `{"code", "message"}`.
    #[schema(value_type = Option<crate::uploads::UploadFailure>)]
    pub error: Option<Value>,
}

/// The image a URL became.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ImportedImage {
    pub id: String,
    pub link: String,
}

/// What creating a job answers: the job, where to follow it, and one delete token per URL.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = ImportCreated)]
pub struct CreatedView {
    pub job_id: String,
    pub status_url: String,
    pub items: usize,
    pub delete_tokens: Vec<String>,
}

impl Created {
    pub fn view(&self, base: &str) -> CreatedView {
        CreatedView {
            job_id: self.job_id.clone(),
            status_url: format!("{base}/v1/imports/{}", self.job_id),
            items: self.items,
            delete_tokens: self.delete_tokens.clone(),
        }
    }
}

/// The job's status as the API shows it.
#[instrument(skip(app, base))]
pub async fn view(app: &App, job_id: &str, base: &str) -> Result<JobView> {
    if !secret::is_id128(job_id) {
        return Err(Error::not_found("import job"));
    }
    let item = app.table.get(&job_pk(job_id), JOB_SK).await?.ok_or_else(|| Error::not_found("import job"))?;
    let n = |k: &str| item.num(k).unwrap_or(0);
    let (total, queued, running, done, failed) = (n("total"), n("queued"), n("running"), n("done"), n("failed"));
    let status = if done == total {
        "done"
    } else if failed == total {
        "failed"
    } else if done + failed == total {
        "partial"
    } else if running == 0 && done + failed == 0 {
        "queued"
    } else {
        "running"
    };
    let text = |k: String| item.str(&k).map(str::to_owned);
    let mut items = Vec::with_capacity(total.max(0) as usize);
    let mut finished_at: Option<&str> = None;
    for i in 0..total.max(0) as usize {
        let image = item
            .str(&format!("img{i}"))
            .zip(item.str(&format!("link{i}")))
            .map(|(id, path)| ImportedImage { id: id.to_owned(), link: format!("{base}{path}") });
        let error = item.str(&format!("err{i}")).and_then(|e| serde_json::from_str::<Value>(e).ok());
        if let Some(f) = item.str(&format!("fin{i}")) {
            finished_at = Some(finished_at.map_or(f, |g| g.max(f)));
        }
        items.push(ItemView { url: text(format!("u{i}")), status: text(format!("s{i}")), image, error });
    }
    Ok(JobView {
        job_id: job_id.to_owned(),
        status,
        created_at: text("created_at".to_owned()),
        finished_at: if done + failed == total { finished_at.map(str::to_owned) } else { None },
        counts: Counts { queued, running, done, failed },
        items,
    })
}

// ---------------------------------------------------------------------------------------------
// The worker
// ---------------------------------------------------------------------------------------------

/// What the handler decided about a message; the worker layer turns it into an outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Handled for good (imported, failed for good, or nothing to do): delete the message.
    Finished,
    /// A transient failure of the URL, after this many tries of it: try again later.
    Retry { tries: u32 },
}

/// Handles one queue message: fetch its URL, ingest the bytes, settle the URL. Errors returned
/// are storage failures of our own (retry the message); everything about the URL itself is
/// settled in the job.
#[instrument(skip(app, fetcher, body))]
pub async fn handle(app: &App, fetcher: &Fetcher, body: &str, receive_count: u32) -> Result<Disposition> {
    let Ok(msg) = serde_json::from_str::<Message>(body) else {
        // It will never parse; retrying would only dead-letter it later.
        warn!("dropping an unreadable import message");
        return Ok(Disposition::Finished);
    };
    let pk = job_pk(&msg.job);
    let Some(job) = app.table.get(&pk, JOB_SK).await? else {
        // The job expired or its creation was undone.
        return Ok(Disposition::Finished);
    };
    let i = msg.item;
    let (Some(url), Some(digest)) = (job.str(&format!("u{i}")), job.str(&format!("t{i}"))) else {
        warn!(job = %msg.job, item = i, "import message names no URL of its job");
        return Ok(Disposition::Finished);
    };
    let (url, digest) = (url.to_owned(), digest.to_owned());
    match job.str(&format!("s{i}")).and_then(ItemStatus::parse) {
        Some(ItemStatus::Queued) => {
            if !transition(app, &pk, i, ItemStatus::Queued, ItemStatus::Running, Update::new()).await? {
                // Another delivery of this message moved it first; that one carries on.
                return Ok(Disposition::Finished);
            }
        }
        // A delivery that died mid-way (or is still running elsewhere): carry on; storing is
        // idempotent under the upload's digest.
        Some(ItemStatus::Running) => {}
        _ => return Ok(Disposition::Finished),
    }
    let attempt = job.num(&format!("a{i}")).unwrap_or(0) as u32 + 1;
    let result = import_one(app, fetcher, &url, &digest).await;
    let now = clock::rfc3339_millis(OffsetDateTime::now_utc());
    match result {
        Ok(image) => {
            let image_id = image.id.clone();
            let update = Update::new()
                .set(&format!("img{i}"), image.id.as_str())
                .set(&format!("link{i}"), format!("/i/{}.{}", image.id, image.format.ext()))
                .set(&format!("fin{i}"), now);
            transition(app, &pk, i, ItemStatus::Running, ItemStatus::Done, update).await?;
            info!(job = %msg.job, item = i, image_id, "imported");
            metrics::count(&metrics::IMPORT_OUTCOMES, Some("ok"), 1);
            Ok(Disposition::Finished)
        }
        // A retry needs both counts below the limit: `attempt` counts settled tries, and the
        // receive count also counts deliveries that died without settling anything.
        Err(failure) if failure.transient && attempt < MAX_ATTEMPTS && receive_count < MAX_ATTEMPTS => {
            let update = Update::new().add(&format!("a{i}"), 1).set(&format!("err{i}"), failure.json());
            transition(app, &pk, i, ItemStatus::Running, ItemStatus::Queued, update).await?;
            info!(job = %msg.job, item = i, code = failure.code, attempt, "import failed for now");
            metrics::count(&metrics::IMPORT_OUTCOMES, Some("retrying"), 1);
            Ok(Disposition::Retry { tries: attempt })
        }
        Err(failure) => {
            let update = Update::new()
                .add(&format!("a{i}"), 1)
                .set(&format!("err{i}"), failure.json())
                .set(&format!("fin{i}"), now);
            transition(app, &pk, i, ItemStatus::Running, ItemStatus::Failed, update).await?;
            info!(job = %msg.job, item = i, code = failure.code, "import failed");
            metrics::count(&metrics::IMPORT_OUTCOMES, Some(&failure.code), 1);
            Ok(Disposition::Finished)
        }
    }
}

/// Moves URL `i` from `from` to `to` with `extra` changes, keeping the counts in step. Returns
/// whether it moved (false when the URL was no longer `from`).
async fn transition(app: &App, pk: &str, i: usize, from: ItemStatus, to: ItemStatus, extra: Update) -> Result<bool> {
    let mut update = extra.set(&format!("s{i}"), to.as_str()).add(from.as_str(), -1).add(to.as_str(), 1);
    if to == ItemStatus::Queued || to == ItemStatus::Running {
        // A retry forgets nothing but the finish time it never had.
        update = update.remove(&format!("fin{i}"));
    }
    match app.table.update(pk, JOB_SK, update, Some(Cond::eq(&format!("s{i}"), from.as_str()))).await {
        Ok(_) => Ok(true),
        Err(e) if e.is_condition_failed() => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Why one URL failed.
#[derive(Debug)]
struct Failure {
    code: String,
    message: String,
    transient: bool,
}

impl Failure {
    fn json(&self) -> String {
        json!({"code": self.code, "message": self.message}).to_string()
    }
}

impl From<FetchError> for Failure {
    fn from(e: FetchError) -> Self {
        Failure { code: e.code().into(), message: e.to_string(), transient: e.is_transient() }
    }
}

/// Fetches and ingests one URL.
async fn import_one(
    app: &App,
    fetcher: &Fetcher,
    url: &str,
    digest: &str,
) -> std::result::Result<images::ImageRecord, Failure> {
    // `fetched` holds the body's share of the upload memory budget until the image is stored.
    let fetched = fetcher.fetch(url).await?;
    let bytes = fetched.bytes.clone();
    // Inspection is CPU work (it inflates PNG data): off the async workers.
    let prepared = tokio::task::spawn_blocking(move || images::prepare(&bytes))
        .await
        .map_err(|e| Failure { code: "internal".into(), message: e.to_string(), transient: false })?
        .map_err(|e| Failure { code: e.code().into(), message: e.public_message(), transient: false })?;
    let stored = images::store(app, &prepared, digest).await;
    drop(fetched);
    match stored {
        Ok(stored) => Ok(stored.image),
        Err(e) => Err(Failure { code: e.code().into(), message: e.public_message(), transient: e.is_retryable() }),
    }
}
