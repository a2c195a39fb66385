//! Imgur keep-alive: stored Imgur URLs, each viewed once every 30 days so Imgur keeps it.
//!
//! # Rules that make it useless for abuse
//! - Only canonical Imgur URLs are stored ([`url::canonical_imgur_url`]), each URL once, and the
//!   rule is checked again right before every request.
//! - The interval is [`INTERVAL`], a constant; nothing a user or operator sets changes it.
//! - A rejection by Imgur (403, 429, any 4xx but 404/410) stops the entry for good; it is never
//!   requested again. Only network errors and 5xx are retried, at most [`MAX_TRIES`] times.
//!
//! # Items
//!
//! | item     | pk                  | sk      | gsi1pk / gsi1sk                              |
//! |----------|---------------------|---------|----------------------------------------------|
//! | entry    | `KA#<id>`           | `KA`    | `KADUE#<shard>` / `<due epoch, 12 digits>#<id>` while scheduled |
//! | URL      | `KAURL#<sha256>`    | `KAURL` |                                              |
//! | listing  | `KALIST`            | `<ns>#<id>` |                                          |
//!
//! The due index is sparse (only `waiting` and `queued` entries carry it) and its partition key
//! is spread over [`SHARDS`] shards by id, so the hourly sweep reads only due entries, in
//! parallel, without a hot partition.

pub mod loader;
pub mod sweep;
pub mod url;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tracing::{info, instrument};

pub use url::canonical_imgur_url;

use crate::error::{Error, Refusal, Result};
use crate::secret;
use crate::state::App;
use crate::store::{Cond, Cursor, GSI1PK, GSI1SK, Item, Query, TxOp};

/// How often each entry is loaded. A constant on purpose: see the module docs.
pub const INTERVAL: time::Duration = time::Duration::days(30);
/// Loads are spread by up to this much either side of [`INTERVAL`], so entries added together
/// do not stay in lockstep.
pub const JITTER: time::Duration = time::Duration::hours(12);
/// Tries of a load that failed for a network reason or a 5xx, before the entry becomes `error`.
pub const MAX_TRIES: i64 = 3;
/// Shards of the due index.
pub const SHARDS: u32 = 16;
/// Results kept in an entry's history.
pub const HISTORY: usize = 10;

const ENTRY_SK: &str = "KA";
const URL_SK: &str = "KAURL";
const LIST_PK: &str = "KALIST";

fn entry_pk(id: &str) -> String {
    format!("KA#{id}")
}
fn url_pk(url: &str) -> String {
    format!("KAURL#{}", secret::sha256_hex(url.as_bytes()))
}
/// The due-index shard of an entry, fixed by its id.
fn shard_of(id: &str) -> u32 {
    id.bytes().fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b))) % SHARDS
}
fn due_pk(shard: u32) -> String {
    format!("KADUE#{shard}")
}
fn due_sk(epoch: i64, id: &str) -> String {
    format!("{:012}#{id}", epoch.max(0))
}

/// Where an entry stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = KeepaliveStatus)]
pub enum Status {
    /// Scheduled for its next load.
    Waiting,
    /// Claimed by a sweep and handed to the loader.
    Queued,
    /// Imgur says the image is gone (404, 410, the removed-image placeholder).
    Gone,
    /// Imgur rejected a request: never requested again.
    Stopped,
    /// Failed [`MAX_TRIES`] times in a row for network reasons or 5xx.
    Error,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Waiting => "waiting",
            Status::Queued => "queued",
            Status::Gone => "gone",
            Status::Stopped => "stopped",
            Status::Error => "error",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "waiting" => Status::Waiting,
            "queued" => Status::Queued,
            "gone" => Status::Gone,
            "stopped" => Status::Stopped,
            "error" => Status::Error,
            _ => return None,
        })
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    crate::clock::rfc3339_seconds(t)
}

/// `base + INTERVAL`, moved by a random amount within [`JITTER`].
pub fn next_regular_load(base: OffsetDateTime) -> OffsetDateTime {
    let mut b = [0u8; 8];
    // Without randomness the jitter is zero, which is still a valid schedule.
    let _ = getrandom::fill(&mut b);
    let span = JITTER.whole_seconds() * 2 + 1;
    let offset = (u64::from_le_bytes(b) % span as u64) as i64 - JITTER.whole_seconds();
    base + INTERVAL + time::Duration::seconds(offset)
}

/// A new `waiting` entry for `url`, created at `created` and first due at `due`, carrying its
/// due-index key. `create` writes it; benchmarks seed tables with it.
pub fn entry_item(id: &str, url: &str, manage_digest: &str, created: OffsetDateTime, due: OffsetDateTime) -> Item {
    Item::new(entry_pk(id), ENTRY_SK)
        .with("id", id)
        .with("url", url)
        .with("status", Status::Waiting.as_str())
        .with("created_at", rfc3339(created))
        .with("next_epoch", due.unix_timestamp())
        .with("loads", 0)
        .with("tries", 0)
        .with("manage", manage_digest)
        .with("history", "[]")
        .with(GSI1PK, due_pk(shard_of(id)))
        .with(GSI1SK, due_sk(due.unix_timestamp(), id))
}

/// A new entry as the API answers it, with its manage token shown once.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = KeepaliveCreated)]
pub struct Created {
    #[serde(flatten)]
    pub entry: EntryView,
    /// `None` when the URL was already kept: the existing entry is answered without a token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manage_token: Option<String>,
}

/// Stores an Imgur URL for keep-alive. The first load is due at once; the same URL twice
/// gives the existing entry.
#[instrument(skip(app))]
pub async fn create(app: &App, input: &str) -> Result<Created> {
    let url = canonical_imgur_url(input)?;
    if let Some(existing) = app.table.get(&url_pk(&url), URL_SK).await? {
        let id = existing.str("entry_id").unwrap_or_default();
        return Ok(Created { entry: view(app, id).await?, manage_token: None });
    }
    let id = secret::new_id128();
    let token = secret::new_token();
    let now = OffsetDateTime::now_utc();
    let list_sk = crate::store::time_sort_key(&id);
    let entry = entry_item(&id, &url, &secret::digest_hex(&token), now, now).with("list_sk", list_sk.as_str());
    let ops = vec![
        TxOp::Put { item: entry, cond: Some(Cond::NotExists) },
        TxOp::Put { item: Item::new(url_pk(&url), URL_SK).with("entry_id", id.as_str()), cond: Some(Cond::NotExists) },
        TxOp::Put { item: Item::new(LIST_PK, list_sk).with("entry_id", id.as_str()), cond: Some(Cond::NotExists) },
    ];
    match app.table.transact(ops).await {
        Ok(()) => {}
        // The same URL was stored concurrently: answer that entry.
        Err(e) if e.is_condition_failed() => {
            let existing =
                app.table.get(&url_pk(&url), URL_SK).await?.ok_or_else(|| Error::internal("url vanished"))?;
            let id = existing.str("entry_id").unwrap_or_default();
            return Ok(Created { entry: view(app, id).await?, manage_token: None });
        }
        Err(e) => return Err(e.into()),
    }
    info!(entry_id = %id, "keep-alive entry created");
    Ok(Created { entry: view(app, &id).await?, manage_token: Some(token) })
}

async fn get_entry(app: &App, id: &str) -> Result<Item> {
    if !secret::is_id128(id) {
        return Err(Error::not_found("keep-alive entry"));
    }
    app.table.get(&entry_pk(id), ENTRY_SK).await?.ok_or_else(|| Error::not_found("keep-alive entry"))
}

/// The public view of an entry.
pub async fn view(app: &App, id: &str) -> Result<EntryView> {
    Ok(view_of(&get_entry(app, id).await?))
}

/// An entry as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = KeepaliveEntry)]
pub struct EntryView {
    #[schema(example = "kT3v9QzL0aBcDeFgHiJkLm")]
    pub id: Option<String>,
    #[schema(example = "https://imgur.com/a/AbCdEfG")]
    pub url: Option<String>,
    pub status: Option<Status>,
    pub created_at: Option<String>,
    pub last_loaded_at: Option<String>,
    /// When the next load is due, while one is scheduled.
    pub next_load_at: Option<String>,
    pub loads: i64,
    /// The latest loads, newest first, as recorded by the loader.
    pub history: Vec<LoadRecord>,
}

/// One load of an entry, as its history records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LoadRecord {
    /// When the load was made (RFC 3339).
    pub at: String,
    /// Imgur's answer, when one came.
    pub http_status: Option<u16>,
    /// What the load found: `ok`, `gone`, `dry_run`, or why it failed.
    pub outcome: String,
}

fn view_of(item: &Item) -> EntryView {
    let next = item.num("next_epoch").and_then(|e| OffsetDateTime::from_unix_timestamp(e).ok());
    let status = item.str("status").and_then(Status::parse);
    let scheduled = matches!(status, Some(Status::Waiting | Status::Queued));
    let text = |name: &str| item.str(name).map(str::to_owned);
    EntryView {
        id: text("id"),
        url: text("url"),
        status,
        created_at: text("created_at"),
        last_loaded_at: text("last_loaded_at"),
        next_load_at: if scheduled { next.map(rfc3339) } else { None },
        loads: item.num("loads").unwrap_or(0),
        history: item.str("history").and_then(|h| serde_json::from_str(h).ok()).unwrap_or_default(),
    }
}

/// One page of entries, newest first (admin).
pub async fn list(app: &App, limit: usize, cursor: Option<Cursor>) -> Result<(Vec<EntryView>, Option<Cursor>)> {
    let page = app.table.query(Query::table(LIST_PK).backward().limit(limit).start(cursor)).await?;
    let mut out = Vec::with_capacity(page.items.len());
    for l in &page.items {
        let id = l.str("entry_id").unwrap_or_default();
        if let Some(item) = app.table.get(&entry_pk(id), ENTRY_SK).await? {
            out.push(view_of(&item));
        }
    }
    Ok((out, page.next))
}

/// Deletes an entry, with its manage token or as the admin (`token == None` after the caller
/// checked the admin token). A wrong token is a 403 that changes nothing.
#[instrument(skip(app, token))]
pub async fn delete(app: &App, id: &str, token: Option<&str>) -> Result<()> {
    let item = get_entry(app, id).await?;
    if let Some(t) = token {
        let ok = item
            .str("manage")
            .and_then(|d| hex::decode(d).ok())
            .and_then(|d| <[u8; 32]>::try_from(d).ok())
            .is_some_and(|d| secret::matches_digest(t, &d));
        if !ok {
            return Err(Error::client(Refusal::Forbidden, "forbidden", "the manage token does not match"));
        }
    }
    let url = item.str("url").unwrap_or_default();
    let ops = vec![
        TxOp::Delete { pk: entry_pk(id), sk: ENTRY_SK.into(), cond: Some(Cond::Exists) },
        TxOp::Delete { pk: url_pk(url), sk: URL_SK.into(), cond: None },
    ];
    match app.table.transact(ops).await {
        Ok(()) => {}
        Err(e) if e.is_condition_failed() => return Err(Error::not_found("keep-alive entry")),
        Err(e) => return Err(e.into()),
    }
    // The listing item is found through the entry's creation key, kept on the entry.
    if let Some(sk) = item.str("list_sk") {
        app.table.delete(LIST_PK, sk, None).await?;
    }
    info!(entry_id = %id, "keep-alive entry deleted");
    Ok(())
}

/// What `POST /v1/keepalive/{id}/load` did.
#[derive(Debug)]
pub enum LoadNow {
    /// Claimed and queued for the loader.
    Queued(EntryView),
    /// Not due: try again after this many seconds.
    NotDue(u64),
}

/// Queues a load at once, but only when the entry was never loaded or is due: asking early is
/// refused with the time left, so the endpoint cannot make loads more frequent than the
/// schedule. Finished entries (gone, stopped, error) are never loaded again.
#[instrument(skip(app))]
pub async fn load_now(app: &App, id: &str) -> Result<LoadNow> {
    let item = get_entry(app, id).await?;
    let now = OffsetDateTime::now_utc();
    let status = item.str("status").and_then(Status::parse);
    if matches!(status, Some(Status::Gone | Status::Stopped | Status::Error)) {
        return Err(Error::client(
            Refusal::Conflict,
            "finished",
            format!("the entry is {}; it is never loaded again", status.map_or("finished", Status::as_str)),
        ));
    }
    let queue = app.keepalive.as_ref().ok_or_else(|| Error::internal("the keep-alive queue is not configured"))?;
    match sweep::claim(app, id, now).await? {
        Some(claim) => {
            let body = serde_json::to_string(&sweep::LoadMessage { id: id.to_owned(), claim }).unwrap_or_default();
            // If this send fails the claim lapses and the next sweep queues the entry instead.
            queue.send(body).await?;
            Ok(LoadNow::Queued(view(app, id).await?))
        }
        None => {
            // Not due, or already queued: wait for the due time or the claim's lease.
            let item = get_entry(app, id).await?;
            let until = match item.str("status").and_then(Status::parse) {
                Some(Status::Queued) => item.num("lease_until"),
                _ => item.num("next_epoch"),
            };
            Ok(LoadNow::NotDue(until.map_or(60, |u| (u - now.unix_timestamp()).max(1) as u64)))
        }
    }
}
