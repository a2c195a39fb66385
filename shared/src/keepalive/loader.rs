//! The loader: one GET per claimed entry, and the entry's next state from the answer.
//!
//! The HTTP transport is injected ([`Transport`]): production uses [`HttpsTransport`], tests
//! route the Imgur host names to a loopback stand-in. The allow-list check runs before the
//! transport is called, on the stored URL and on every redirect target, so it is the real
//! check in tests too.

use std::time::Duration;

use async_trait::async_trait;

use time::OffsetDateTime;
use tracing::{info, instrument, warn};

use super::sweep::LoadMessage;
use super::url::IMGUR_HOSTS;
use super::{
    ENTRY_SK, HISTORY, LoadRecord, MAX_TRIES, Status, canonical_imgur_url, due_pk, due_sk, entry_pk, rfc3339, shard_of,
};
use crate::error::Result;
use crate::metrics;
use crate::state::App;
use crate::store::{Cond, GSI1PK, GSI1SK, Item, Update};

/// Redirects followed, each only to an Imgur host.
pub const MAX_REDIRECTS: usize = 3;
/// Where Imgur sends requests for removed images.
pub const REMOVED_PLACEHOLDER: &str = "https://i.imgur.com/removed.png";
/// A browser's headers: Imgur counts views from browsers, and a plain client may be refused.
pub const USER_AGENT: &str =
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
pub const ACCEPT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8";

/// One answer of the transport: a status and, for redirects, where to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub location: Option<String>,
}

/// Why no answer came.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    #[error("timed out")]
    Timeout,
    #[error("connection failed: {0}")]
    Connect(String),
}

/// Makes exactly one GET of an `https` Imgur URL, without following redirects.
#[async_trait]
pub trait Transport: Send + Sync {
    async fn get(&self, url: &str) -> std::result::Result<Answer, TransportError>;
    /// A transport that sends nothing reports it here; its loads are recorded as `dry_run`.
    fn dry_run(&self) -> bool {
        false
    }
}

/// The real transport: HTTPS, 10 s limit, browser-like headers, no proxy, no redirects, body
/// read (a view is a whole page load) up to 10 MiB and discarded.
pub struct HttpsTransport {
    client: reqwest::Client,
}

impl Default for HttpsTransport {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpsTransport {
    pub fn new() -> Self {
        let client = reqwest::Client::builder()
            .no_proxy()
            .https_only(true)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .user_agent(USER_AGENT)
            .build()
            .expect("the HTTP client builds");
        HttpsTransport { client }
    }
}

#[async_trait]
impl Transport for HttpsTransport {
    async fn get(&self, url: &str) -> std::result::Result<Answer, TransportError> {
        let mut resp = self
            .client
            .get(url)
            .header(reqwest::header::ACCEPT, ACCEPT)
            .header(reqwest::header::ACCEPT_LANGUAGE, "en-US,en;q=0.9")
            .send()
            .await
            .map_err(
                |e| if e.is_timeout() { TransportError::Timeout } else { TransportError::Connect(e.to_string()) },
            )?;
        let status = resp.status().as_u16();
        let location = resp.headers().get(reqwest::header::LOCATION).and_then(|l| l.to_str().ok()).map(str::to_owned);
        let mut read = 0usize;
        while let Ok(Some(chunk)) = resp.chunk().await {
            read += chunk.len();
            if read > 10 * 1024 * 1024 {
                break;
            }
        }
        Ok(Answer { status, location })
    }
}

/// Sends nothing: every load is recorded as `dry_run` (local demos and tests).
pub struct DryRun;

#[async_trait]
impl Transport for DryRun {
    async fn get(&self, _url: &str) -> std::result::Result<Answer, TransportError> {
        Ok(Answer { status: 200, location: None })
    }
    fn dry_run(&self) -> bool {
        true
    }
}

/// How a load ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    DryRun,
    Gone,
    /// Imgur refused, or tried to send us elsewhere: never ask again.
    Rejected(&'static str),
    /// No answer, or a 5xx: ask again later.
    Transient(&'static str),
}

impl Outcome {
    fn label(&self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::DryRun => "dry_run",
            Outcome::Gone => "gone",
            Outcome::Rejected(l) | Outcome::Transient(l) => l,
        }
    }
}

/// Loads `url` once (following at most [`MAX_REDIRECTS`] redirects within Imgur) and classifies
/// the answer. Returns the last HTTP status seen.
pub async fn load(transport: &dyn Transport, url: &str) -> (Outcome, Option<u16>) {
    let mut current = match canonical_imgur_url(url) {
        Ok(u) => u,
        Err(_) => return (Outcome::Rejected("not_imgur"), None),
    };
    let mut status = None;
    for hop in 0..=MAX_REDIRECTS {
        let answer = match transport.get(&current).await {
            Ok(a) => a,
            Err(TransportError::Timeout) => return (Outcome::Transient("timeout"), status),
            Err(TransportError::Connect(_)) => return (Outcome::Transient("connect_failed"), status),
        };
        status = Some(answer.status);
        match answer.status {
            200..=299 if transport.dry_run() => return (Outcome::DryRun, status),
            200..=299 => return (Outcome::Ok, status),
            301 | 302 | 303 | 307 | 308 => {
                let Some(next) = answer.location.as_deref().and_then(|l| redirect_target(&current, l)) else {
                    return (Outcome::Rejected("redirect_off_imgur"), status);
                };
                if next == REMOVED_PLACEHOLDER {
                    return (Outcome::Gone, status);
                }
                if hop == MAX_REDIRECTS {
                    return (Outcome::Rejected("too_many_redirects"), status);
                }
                current = next;
            }
            404 | 410 => return (Outcome::Gone, status),
            400..=499 => return (Outcome::Rejected("rejected"), status),
            500..=599 => return (Outcome::Transient("server_error"), status),
            _ => return (Outcome::Rejected("unexpected_status"), status),
        }
    }
    (Outcome::Rejected("too_many_redirects"), status)
}

/// Resolves a `Location` against `base` and keeps it only when it stays on an Imgur host over
/// `https` with no port or user-info. Paths are Imgur's business there (pages, placeholders).
fn redirect_target(base: &str, location: &str) -> Option<String> {
    let base = url::Url::parse(base).ok()?;
    let next = base.join(location).ok()?;
    let host = next.host_str()?;
    let ok = next.scheme() == "https"
        && IMGUR_HOSTS.contains(&host)
        && next.port().is_none()
        && next.username().is_empty()
        && next.password().is_none();
    ok.then(|| format!("https://{host}{}", next.path()))
}

/// Handles one load message: re-checks the claim, marks the load started (so a second delivery
/// makes no request), makes the one GET, and records the outcome and the next load.
#[instrument(skip(app, transport, body))]
pub async fn handle(app: &App, transport: &dyn Transport, body: &str, now: OffsetDateTime) -> Result<()> {
    let Ok(msg) = serde_json::from_str::<LoadMessage>(body) else {
        warn!("dropping an unreadable keep-alive message");
        return Ok(());
    };
    let pk = entry_pk(&msg.id);
    let start = Update::new().set("started", now.unix_timestamp());
    let claimed = Cond::eq("claim", msg.claim.as_str())
        .and(Cond::eq("status", Status::Queued.as_str()))
        .and(Cond::AttrNotExists("started".into()));
    let entry = match app.table.update(&pk, ENTRY_SK, start, Some(claimed)).await {
        Ok(item) => item,
        // Already loaded under this claim (a duplicate delivery), claimed anew, or deleted.
        Err(e) if e.is_condition_failed() => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let url = entry.str("url").unwrap_or_default().to_owned();
    let (outcome, http_status) = load(transport, &url).await;
    record(app, &entry, &msg.claim, &outcome, http_status, now).await?;
    info!(entry_id = %msg.id, outcome = outcome.label(), ?http_status, "keep-alive load");
    metrics::count(&metrics::KEEPALIVE_OUTCOMES, Some(outcome.label()), 1);
    Ok(())
}

/// Writes the outcome: history, counters, status and the next load, under the claim.
async fn record(
    app: &App,
    entry: &Item,
    claim: &str,
    outcome: &Outcome,
    http_status: Option<u16>,
    now: OffsetDateTime,
) -> Result<()> {
    let id = entry.str("id").unwrap_or_default();
    let mut history: Vec<LoadRecord> =
        entry.str("history").and_then(|h| serde_json::from_str(h).ok()).unwrap_or_default();
    history.insert(0, LoadRecord { at: rfc3339(now), http_status, outcome: outcome.label().to_owned() });
    history.truncate(HISTORY);
    let tries = entry.num("tries").unwrap_or(0);
    let (status, next, tries) = match outcome {
        Outcome::Ok | Outcome::DryRun => (Status::Waiting, Some(super::next_regular_load(now)), 0),
        Outcome::Gone => (Status::Gone, None, tries),
        Outcome::Rejected(_) => (Status::Stopped, None, tries),
        Outcome::Transient(_) if tries + 1 >= MAX_TRIES => (Status::Error, None, tries + 1),
        // Back-off: one hour, then four.
        Outcome::Transient(_) => {
            (Status::Waiting, Some(now + time::Duration::hours(4i64.pow(tries as u32))), tries + 1)
        }
    };
    let mut update = Update::new()
        .set("status", status.as_str())
        .set("history", serde_json::to_string(&history).unwrap_or_else(|_| "[]".to_owned()))
        .set("tries", tries)
        .remove("claim")
        .remove("started")
        .remove("lease_until");
    if http_status.is_some() || *outcome == Outcome::DryRun {
        update = update.set("last_loaded_at", rfc3339(now)).add("loads", 1);
    }
    update = match next {
        Some(at) => update
            .set("next_epoch", at.unix_timestamp())
            .set(GSI1PK, due_pk(shard_of(id)))
            .set(GSI1SK, due_sk(at.unix_timestamp(), id)),
        // Finished entries leave the due index: no sweep will ever read them again.
        None => update.remove(GSI1PK).remove(GSI1SK),
    };
    let cond = Cond::eq("claim", claim);
    match app.table.update(&entry_pk(id), ENTRY_SK, update, Some(cond)).await {
        Ok(_) => Ok(()),
        // The entry was deleted while loading: nothing to record.
        Err(e) if e.is_condition_failed() => Ok(()),
        Err(e) => Err(e.into()),
    }
}
