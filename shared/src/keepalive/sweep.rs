//! The hourly sweep: find due entries through the sharded due index, claim each with a lease,
//! and queue one load message per claim.
//!
//! A claim is a conditional update: it succeeds only on an entry that is `waiting` and due, or
//! `queued` with an expired lease (its sweep or loader died). It moves the entry's due-index key
//! to the lease's end, so the entry reappears to a later sweep only if nobody finished it. Two
//! overlapping sweeps therefore queue an entry once: the second one's condition fails.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tracing::{info, instrument, warn};

use super::{ENTRY_SK, SHARDS, Status, due_pk, due_sk, entry_pk};
use crate::error::Result;
use crate::secret;
use crate::state::App;
use crate::store::{Cond, GSI1SK, Query, SkCond, Update};

/// How long a claim holds. Longer than a load can take between queue and record (the loader's
/// timeout and the queue's redeliveries), so a live claim is never taken over.
pub const LEASE: time::Duration = time::Duration::minutes(30);
/// Due entries read per index query.
const PAGE: usize = 100;

/// The load message: an entry and the claim it was sent under.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LoadMessage {
    pub id: String,
    pub claim: String,
}

/// What one sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    /// Due-index entries read: only entries due at `now` are ever read.
    pub examined: usize,
    /// Entries this sweep claimed and queued.
    pub queued: usize,
}

/// Claims every entry due at `now` and queues it for the loader.
#[instrument(skip(app))]
pub async fn sweep(app: &App, now: OffsetDateTime) -> Result<SweepReport> {
    let reports = futures::future::try_join_all((0..SHARDS).map(|s| sweep_shard(app, s, now))).await?;
    let total = reports.iter().fold(SweepReport::default(), |a, r| SweepReport {
        examined: a.examined + r.examined,
        queued: a.queued + r.queued,
    });
    info!(examined = total.examined, queued = total.queued, "keep-alive sweep done");
    Ok(total)
}

async fn sweep_shard(app: &App, shard: u32, now: OffsetDateTime) -> Result<SweepReport> {
    let Some(queue) = app.keepalive.as_ref() else {
        return Err(crate::Error::internal("the keep-alive queue is not configured"));
    };
    let mut report = SweepReport::default();
    let mut start = None;
    // Everything at or before this second; `~` sorts after every id character.
    let upto = format!("{:012}#~", now.unix_timestamp());
    loop {
        let q = Query::gsi1(due_pk(shard)).sk(SkCond::Le(upto.clone())).limit(PAGE).start(start);
        let page = app.table.query(q).await?;
        report.examined += page.items.len();
        let mut bodies = Vec::new();
        for item in &page.items {
            let Some(id) = item.str("id") else { continue };
            if let Some(claim) = claim(app, id, now).await? {
                bodies.push(serde_json::to_string(&LoadMessage { id: id.to_owned(), claim }).unwrap_or_default());
            }
        }
        for chunk in bodies.chunks(10) {
            // Unsent claims lapse with their lease and a later sweep takes them again.
            if let Err(e) = queue.send_batch(chunk).await {
                warn!(error = %e, "queueing keep-alive loads failed; their claims will lapse");
            } else {
                report.queued += chunk.len();
            }
        }
        match page.next {
            Some(c) => start = Some(c),
            None => return Ok(report),
        }
    }
}

/// Claims one entry for a load at `now`; returns the claim, or `None` when it is not claimable
/// (not due, claimed by a live lease, finished, or gone).
pub async fn claim(app: &App, id: &str, now: OffsetDateTime) -> Result<Option<String>> {
    let t = now.unix_timestamp();
    let claim = secret::new_id128();
    let lease_end = (now + LEASE).unix_timestamp();
    let update = Update::new()
        .set("status", Status::Queued.as_str())
        .set("claim", claim.as_str())
        .set("lease_until", lease_end)
        .set(GSI1SK, due_sk(lease_end, id))
        .remove("started");
    let due = Cond::eq("status", Status::Waiting.as_str()).and(Cond::le("next_epoch", t));
    let lapsed = Cond::eq("status", Status::Queued.as_str()).and(Cond::le("lease_until", t));
    match app.table.update(&entry_pk(id), ENTRY_SK, update, Some(Cond::Or(vec![due, lapsed]))).await {
        Ok(_) => Ok(Some(claim)),
        Err(e) if e.is_condition_failed() => Ok(None),
        Err(e) => Err(e.into()),
    }
}
