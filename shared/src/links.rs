//! Invitation upload links: an admin makes a link with an expiry and a number of uploads; anyone
//! holding its token may upload that many images until it expires or is revoked.
//!
//! # Items
//!
//! | item        | pk                   | sk          | notes                                      |
//! |-------------|----------------------|-------------|--------------------------------------------|
//! | link        | `LINK#<id>`          | `LINK`      | `uploads` counter, `max_uploads`, expiry   |
//! | token index | `LINKTOKEN#<digest>` | `LINKTOKEN` | SHA-256 of the token → link id             |
//!
//! Links carry `gsi1pk = LINKS`, `gsi1sk = <creation time in ns>#<id>` for the admin listing.
//!
//! The use counter is claimed with one conditional update (`uploads <= max_uploads - n`, not
//! revoked, not expired) before any file is stored, so concurrent uploads can never take more
//! than the link allows; uses whose files then fail to store are given back.

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};
use tracing::{info, instrument};

use crate::clock;
use crate::error::{Error, Refusal, Result};
use crate::metrics;
use crate::secret;
use crate::state::App;
use crate::store::{Cond, Cursor, GSI1PK, GSI1SK, Item, Query, TxOp, Update};

pub const DEFAULT_MAX_UPLOADS: i64 = 100;
pub const MAX_MAX_UPLOADS: i64 = 10_000;
/// The furthest a link's expiry may lie ahead.
pub const MAX_LIFETIME: Duration = Duration::days(30);
const LISTING_PARTITION: &str = "LINKS";

fn link_pk(id: &str) -> String {
    format!("LINK#{id}")
}
const LINK_SK: &str = "LINK";
fn token_pk(digest: &str) -> String {
    format!("LINKTOKEN#{digest}")
}
const TOKEN_SK: &str = "LINKTOKEN";

/// The body of `POST /v1/links`: `expires_at` or `expires_in` (exactly one), at most 30 days
/// ahead. Unknown fields are refused so that a typo is not ignored.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"expires_in": 86400, "max_uploads": 20, "label": "Wedding guests"}))]
pub struct NewLink {
    /// When the link stops working (RFC 3339, in the next 30 days).
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
    /// Seconds from now until the link stops working.
    #[schema(minimum = 1, maximum = 2592000)]
    #[serde(default, deserialize_with = "crate::json::whole_number")]
    pub expires_in: Option<i64>,
    /// How many files may be uploaded through the link (default 100).
    #[schema(minimum = 1, maximum = 10000)]
    #[serde(default, deserialize_with = "crate::json::whole_number")]
    pub max_uploads: Option<i64>,
    /// For the admin's listing: at most 200 characters, no control characters.
    #[schema(
        max_length = 200,
        pattern = r"^\s*([^\s\u0000-\u001f\u007f-\u009f]([^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f])?)?\s*$"
    )]
    pub label: Option<String>,
}

/// A link as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Link {
    pub id: String,
    pub label: Option<String>,
    pub max_uploads: i64,
    pub uploads: i64,
    pub expires_at: OffsetDateTime,
    pub revoked: bool,
    pub created_at: String,
}

/// Where a link stands, as the listing and the upload page show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LinkStatus {
    Active,
    Expired,
    Revoked,
    UsedUp,
}

impl Link {
    fn from_item(item: &Item) -> Result<Link> {
        let bad = |what: &str| Error::internal(format!("link item {} lacks {what}", item.pk()));
        Ok(Link {
            id: item.str("id").ok_or_else(|| bad("id"))?.to_owned(),
            label: item.str("label").map(str::to_owned),
            max_uploads: item.num("max_uploads").ok_or_else(|| bad("max_uploads"))?,
            uploads: item.num("uploads").unwrap_or(0),
            expires_at: item
                .num("expires_epoch")
                .and_then(|e| OffsetDateTime::from_unix_timestamp(e).ok())
                .ok_or_else(|| bad("expires_epoch"))?,
            revoked: item.bool("revoked").unwrap_or(false),
            created_at: item.str("created_at").unwrap_or_default().to_owned(),
        })
    }

    pub fn status(&self, now: OffsetDateTime) -> LinkStatus {
        if self.revoked {
            LinkStatus::Revoked
        } else if self.expires_at <= now {
            LinkStatus::Expired
        } else if self.uploads >= self.max_uploads {
            LinkStatus::UsedUp
        } else {
            LinkStatus::Active
        }
    }

    pub fn view(&self, now: OffsetDateTime) -> LinkView {
        LinkView {
            id: self.id.clone(),
            label: self.label.clone(),
            status: self.status(now),
            expires_at: clock::rfc3339(self.expires_at),
            max_uploads: self.max_uploads,
            uploads: self.uploads,
            remaining: (self.max_uploads - self.uploads).max(0),
            created_at: self.created_at.clone(),
        }
    }
}

/// A link as the admin sees it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LinkView {
    pub id: String,
    pub label: Option<String>,
    pub status: LinkStatus,
    pub expires_at: String,
    pub max_uploads: i64,
    pub uploads: i64,
    pub remaining: i64,
    pub created_at: String,
}

/// A link just created: its view, and the token with the addresses built on it, shown once.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = LinkCreated)]
pub struct CreatedView {
    #[serde(flatten)]
    pub link: LinkView,
    pub token: String,
    /// The upload page.
    pub url: String,
    /// The upload endpoint.
    pub upload_url: String,
}

impl Created {
    pub fn view(&self, now: OffsetDateTime, base: &str) -> CreatedView {
        CreatedView {
            link: self.link.view(now),
            token: self.token.clone(),
            url: format!("{base}/u/{}", self.token),
            upload_url: format!("{base}/v1/links/{}/images", self.token),
        }
    }
}

/// Checks a request for a new link against `now`. Every refusal says which rule it broke.
pub fn validate(req: &NewLink, now: OffsetDateTime) -> Result<(OffsetDateTime, i64, Option<String>)> {
    let invalid = |code, msg: String| Error::unprocessable(code, msg);
    let expires = match (&req.expires_at, req.expires_in) {
        (Some(_), Some(_)) => {
            return Err(invalid("ambiguous_expiry", "give expires_at or expires_in, not both".into()));
        }
        (None, None) => {
            return Err(invalid("missing_expiry", "give expires_at (RFC 3339) or expires_in (seconds)".into()));
        }
        (Some(at), None) => clock::parse_rfc3339(at)
            .ok_or_else(|| invalid("bad_expires_at", format!("expires_at {at:?} is not an RFC 3339 date-time")))?,
        (None, Some(secs)) => {
            if secs <= 0 {
                return Err(invalid(
                    "expiry_in_past",
                    format!("expires_in must be a positive number of seconds, not {secs}"),
                ));
            }
            now + Duration::seconds(secs.min(MAX_LIFETIME.whole_seconds() + 1))
        }
    };
    if expires <= now {
        return Err(invalid("expiry_in_past", format!("the expiry {} is not in the future", clock::rfc3339(expires))));
    }
    if expires > now + MAX_LIFETIME {
        return Err(invalid("expiry_too_far", "a link may expire at most 30 days from now".into()));
    }
    let max = req.max_uploads.unwrap_or(DEFAULT_MAX_UPLOADS);
    if !(1..=MAX_MAX_UPLOADS).contains(&max) {
        return Err(invalid("bad_max_uploads", format!("max_uploads must be from 1 to {MAX_MAX_UPLOADS}, not {max}")));
    }
    // The limit counts what was sent, as the API's contract states it; the label kept is trimmed.
    let sent = req.label.as_ref().map_or(0, |l| l.chars().count());
    let label = req.label.as_ref().map(|l| l.trim().to_owned()).filter(|l| !l.is_empty());
    if sent > 200 || label.as_ref().is_some_and(|l| l.chars().any(char::is_control)) {
        return Err(invalid("bad_label", "label must be at most 200 characters, without control characters".into()));
    }
    Ok((expires, max, label))
}

/// A new link with its token, shown once.
pub struct Created {
    pub link: Link,
    pub token: String,
}

#[instrument(skip_all)]
pub async fn create(app: &App, req: &NewLink) -> Result<Created> {
    let now = OffsetDateTime::now_utc();
    let (expires_at, max_uploads, label) = validate(req, now)?;
    let token = secret::new_token();
    let digest = secret::digest_hex(&token);
    let id = secret::new_id128();
    let created_at = clock::rfc3339(now);
    let mut item = Item::new(link_pk(&id), LINK_SK)
        .with("id", id.as_str())
        .with("max_uploads", max_uploads)
        .with("uploads", 0i64)
        .with("expires_epoch", expires_at.unix_timestamp())
        .with("created_at", created_at.as_str())
        .with(GSI1PK, LISTING_PARTITION)
        .with(GSI1SK, crate::store::time_sort_key(&id));
    if let Some(l) = &label {
        item.set("label", l.as_str());
    }
    app.table
        .transact(vec![
            TxOp::Put { item, cond: Some(Cond::NotExists) },
            TxOp::Put {
                item: Item::new(token_pk(&digest), TOKEN_SK).with("link_id", id.as_str()),
                cond: Some(Cond::NotExists),
            },
        ])
        .await?;
    info!(link_id = %id, max_uploads, "link created");
    let link = Link { id, label, max_uploads, uploads: 0, expires_at, revoked: false, created_at };
    Ok(Created { link, token })
}

/// One page of links, newest first.
pub async fn list(app: &App, limit: usize, cursor: Option<Cursor>) -> Result<(Vec<Link>, Option<Cursor>)> {
    let page = app.table.query(Query::gsi1(LISTING_PARTITION).backward().limit(limit).start(cursor)).await?;
    let links = page.items.iter().map(Link::from_item).collect::<Result<Vec<_>>>()?;
    Ok((links, page.next))
}

/// Revokes a link; uploads through it stop at once.
pub async fn revoke(app: &App, id: &str) -> Result<()> {
    if !crate::secret::is_id128(id) {
        return Err(Error::not_found("link"));
    }
    match app.table.update(&link_pk(id), LINK_SK, Update::new().set("revoked", true), Some(Cond::Exists)).await {
        Ok(_) => Ok(()),
        Err(e) if e.is_condition_failed() => Err(Error::not_found("link")),
        Err(e) => Err(e.into()),
    }
}

/// Finds the link a token opens. Unknown tokens are 404.
pub async fn by_token(app: &App, token: &str) -> Result<Link> {
    if token.len() != 43 {
        return Err(Error::not_found("link"));
    }
    let index = app.table.get(&token_pk(&secret::digest_hex(token)), TOKEN_SK).await?;
    let id = index.as_ref().and_then(|i| i.str("link_id")).ok_or_else(|| Error::not_found("link"))?;
    let item = app.table.get(&link_pk(id), LINK_SK).await?.ok_or_else(|| Error::not_found("link"))?;
    Link::from_item(&item)
}

fn refusal(link: &Link, now: OffsetDateTime, wanted: i64) -> Error {
    match link.status(now) {
        LinkStatus::Revoked => Error::client(Refusal::Gone, "link_revoked", "this upload link has been revoked"),
        LinkStatus::Expired => Error::client(Refusal::Gone, "link_expired", "this upload link has expired"),
        _ => Error::client(
            Refusal::Conflict,
            "link_used_up",
            format!(
                "this upload link has {} uploads left; {wanted} were sent",
                (link.max_uploads - link.uploads).max(0)
            ),
        ),
    }
}

/// Claims `n` uses of a link atomically, or refuses: 410 when revoked or expired, 409 when
/// fewer than `n` uses are left.
#[instrument(skip(app, link), fields(link_id = %link.id))]
pub async fn claim(app: &App, link: &Link, n: i64) -> Result<()> {
    let now = OffsetDateTime::now_utc();
    let cond = Cond::Exists
        .and(Cond::ne("revoked", true))
        .and(Cond::gt("expires_epoch", now.unix_timestamp()))
        // `max_uploads` never changes, so the bound is computed here, not in the condition.
        .and(Cond::le("uploads", link.max_uploads - n));
    match app.table.update(&link_pk(&link.id), LINK_SK, Update::new().add("uploads", n), Some(cond)).await {
        Ok(_) => {
            metrics::count(&metrics::LINK_USES, None, n as u64);
            Ok(())
        }
        Err(e) if e.is_condition_failed() => {
            let item = app.table.get(&link_pk(&link.id), LINK_SK).await?.ok_or_else(|| Error::not_found("link"))?;
            Err(refusal(&Link::from_item(&item)?, now, n))
        }
        Err(e) => Err(e.into()),
    }
}

/// Gives back uses claimed for files that were then not stored. A link deleted meanwhile has
/// nothing to give back to.
pub async fn release(app: &App, link_id: &str, n: i64) -> Result<()> {
    if n > 0 {
        match app.table.update(&link_pk(link_id), LINK_SK, Update::new().add("uploads", -n), Some(Cond::Exists)).await {
            Ok(_) => {}
            Err(e) if e.is_condition_failed() => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_requests_are_validated_with_a_reason() {
        let now = time::macros::datetime!(2026-11-23 12:00:00 UTC);
        let req = |at: Option<&str>, secs: Option<i64>, max: Option<i64>| NewLink {
            expires_at: at.map(str::to_owned),
            expires_in: secs,
            max_uploads: max,
            label: None,
        };
        let cases: Vec<(NewLink, Result<i64, &str>)> = vec![
            (req(None, Some(3600), None), Ok(DEFAULT_MAX_UPLOADS)),
            (req(Some("2026-12-01T00:00:00Z"), None, Some(10)), Ok(10)),
            (req(Some("2026-12-01T00:00:00+02:00"), None, Some(10_000)), Ok(10_000)),
            (req(Some("2026-11-23T11:59:59Z"), None, None), Err("expiry_in_past")),
            (req(None, Some(0), None), Err("expiry_in_past")),
            (req(None, Some(-5), None), Err("expiry_in_past")),
            (req(Some("tomorrow"), None, None), Err("bad_expires_at")),
            (req(Some("2026-12-01T00:00:00Z"), Some(60), None), Err("ambiguous_expiry")),
            (req(None, None, None), Err("missing_expiry")),
            (req(Some("2026-12-24T00:00:00Z"), None, None), Err("expiry_too_far")),
            (req(None, Some(31 * 86_400), None), Err("expiry_too_far")),
            (req(None, Some(i64::MAX), None), Err("expiry_too_far")),
            (req(None, Some(60), Some(0)), Err("bad_max_uploads")),
            (req(None, Some(60), Some(10_001)), Err("bad_max_uploads")),
        ];
        for (r, want) in cases {
            let got = validate(&r, now).map(|(_, max, _)| max).map_err(|e| e.code());
            assert_eq!(got, want, "{r:?}");
        }
    }
}
