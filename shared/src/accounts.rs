//! Prepaid accounts: an API key, tokens purchased and tokens used.
//!
//! # Items
//!
//! | item                 | pk            | sk                      | notes                              |
//! |----------------------|---------------|-------------------------|------------------------------------|
//! | account              | `ACCT#<id>`   | `ACCT`                  | `name`, `purchased`, `used`        |
//! | API key index        | `APIKEY#<sha256 of key>` | `APIKEY`     | `account_id`                       |
//! | directory entry      | `ACCOUNTS`    | `<created epoch, 12 digits>#<id>` | `account_id`, `name` |
//! | purchase             | `ACCT#<id>`   | `BUY#<sha256 of idempotency key>` | `amount`, the answer     |
//! | meme idempotency     | `ACCT#<id>`   | `IDEM#<sha256 of idempotency key>` | see [`crate::memes`]     |
//!
//! `purchased` and `used` only ever change by `ADD` in conditional writes, so the balance is
//! exact under any concurrency: a token is taken only while `used < purchased`.
//!
//! The admin listing reads the directory entries, not an index over the account items: every
//! meme writes its account item, and an index on it would repeat each of those writes into one
//! shared index partition. The entries never change after the account is made.

use serde::Serialize;
use time::OffsetDateTime;
use tracing::{info, instrument};

use crate::error::{Error, Result};
use crate::secret;
use crate::state::App;
use crate::store::{Cond, Cursor, Item, Query, TxOp, Update};

const ACCOUNT_SK: &str = "ACCT";
const KEY_SK: &str = "APIKEY";
const DIRECTORY_PK: &str = "ACCOUNTS";
/// Largest single purchase.
pub const MAX_PURCHASE: i64 = 1_000_000;

fn account_pk(id: &str) -> String {
    format!("ACCT#{id}")
}

/// The partition of account `id`, where other modules may keep records of their own about the
/// account (memes keep their idempotency records there, so that a charge and its record can be
/// written in one transaction). The account item itself is this module's alone.
pub(crate) fn partition(id: &str) -> String {
    account_pk(id)
}

/// Taking one token: `used` goes up by one while it stays within `purchased`. It is the only
/// way tokens are spent, alone ([`charge`]) or in a caller's transaction ([`charge_op`]).
fn take_one() -> (Update, Cond) {
    (Update::new().add("used", 1), Cond::Exists.and(Cond::AttrLt("used".into(), "purchased".into())))
}

/// The write that takes one token, for a caller's transaction.
pub(crate) fn charge_op(id: &str) -> TxOp {
    let (update, cond) = take_one();
    TxOp::Update { pk: account_pk(id), sk: ACCOUNT_SK.into(), update, cond: Some(cond) }
}

/// The write that gives one token back.
pub(crate) fn refund_op(id: &str) -> TxOp {
    TxOp::Update {
        pk: account_pk(id),
        sk: ACCOUNT_SK.into(),
        update: Update::new().add("used", -1),
        cond: Some(Cond::gt("used", 0)),
    }
}

/// Takes one token from account `id`: the tokens left afterwards, or `None` when none was left
/// to take (or there is no such account).
pub(crate) async fn charge(app: &App, id: &str) -> Result<Option<i64>> {
    let (update, cond) = take_one();
    match app.table.update(&account_pk(id), ACCOUNT_SK, update, Some(cond)).await {
        Ok(account) => Ok(Some(remaining_of(&account))),
        Err(e) if e.is_condition_failed() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The tokens account `id` has left (none when there is no such account).
pub(crate) async fn remaining(app: &App, id: &str) -> Result<i64> {
    Ok(app.table.get(&account_pk(id), ACCOUNT_SK).await?.map_or(0, |a| remaining_of(&a)))
}

fn remaining_of(account: &Item) -> i64 {
    account.num("purchased").unwrap_or(0) - account.num("used").unwrap_or(0)
}
fn key_pk(api_key: &str) -> String {
    format!("APIKEY#{}", secret::digest_hex(api_key))
}

/// A new account, with its API key shown once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = AccountCreated)]
pub struct Created {
    #[schema(example = "Xb9kT3v9QzL0aBcDeFgHiJ")]
    pub account_id: String,
    /// Shown once: the account's bearer token for `/v1/balance` and `/v1/memes`.
    #[schema(example = "k3y_q1w2e3r4t5y6u7i8o9p0a1s2d3f4g5h6j7k8l9z")]
    pub api_key: String,
}

/// Creates an account (admin).
#[instrument(skip(app))]
pub async fn create(app: &App, name: &str) -> Result<Created> {
    // The limit counts what was sent, white space around the name included (as the API's
    // contract states it); the name kept is trimmed.
    let sent = name.chars().count();
    let name = name.trim();
    if name.is_empty() || sent > 100 || name.chars().any(char::is_control) {
        return Err(Error::unprocessable("bad_name", "name must be 1 to 100 characters without control characters"));
    }
    let id = secret::new_id128();
    let api_key = secret::new_token();
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let ops = vec![
        TxOp::Put {
            item: Item::new(account_pk(&id), ACCOUNT_SK)
                .with("id", id.as_str())
                .with("name", name)
                .with("created_epoch", now)
                .with("purchased", 0)
                .with("used", 0),
            cond: Some(Cond::NotExists),
        },
        TxOp::Put {
            item: Item::new(key_pk(&api_key), KEY_SK).with("account_id", id.as_str()),
            cond: Some(Cond::NotExists),
        },
        TxOp::Put {
            item: Item::new(DIRECTORY_PK, format!("{now:012}#{id}")).with("account_id", id.as_str()).with("name", name),
            cond: None,
        },
    ];
    app.table.transact(ops).await?;
    info!(account_id = %id, "account created");
    Ok(Created { account_id: id, api_key })
}

/// The account an API key belongs to. The key is looked up by its digest, so the lookup itself
/// compares digests, never the key; an unknown key is a 401 like a missing one.
pub async fn authenticate(app: &App, api_key: Option<&str>) -> Result<String> {
    let key = api_key.filter(|k| !k.is_empty() && k.len() <= 128).ok_or_else(Error::unauthorized)?;
    let item = app.table.get(&key_pk(key), KEY_SK).await?.ok_or_else(Error::unauthorized)?;
    item.str("account_id").map(str::to_owned).ok_or_else(Error::unauthorized)
}

/// An account's tokens.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Balance {
    pub account_id: String,
    pub purchased: i64,
    pub used: i64,
    pub remaining: i64,
}

pub async fn balance(app: &App, account_id: &str) -> Result<Balance> {
    let item = app.table.get(&account_pk(account_id), ACCOUNT_SK).await?.ok_or_else(|| Error::not_found("account"))?;
    let (purchased, used) = (item.num("purchased").unwrap_or(0), item.num("used").unwrap_or(0));
    Ok(Balance { account_id: account_id.to_owned(), purchased, used, remaining: purchased - used })
}

/// One account as the admin listing shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = AccountListed)]
pub struct Listed {
    pub account_id: String,
    pub name: String,
    pub created_at: String,
    pub purchased: i64,
    pub used: i64,
    pub remaining: i64,
}

/// A page of accounts, newest first (admin). Reads `limit` directory entries and then each
/// listed account's item for its balance.
#[instrument(skip(app))]
pub async fn list(app: &App, limit: usize, cursor: Option<Cursor>) -> Result<(Vec<Listed>, Option<Cursor>)> {
    let page = app.table.query(Query::table(DIRECTORY_PK).backward().limit(limit).start(cursor)).await?;
    let reads = page.items.iter().filter_map(|entry| entry.str("account_id")).map(|id| async move {
        let item = app.table.get(&account_pk(id), ACCOUNT_SK).await?;
        Ok::<_, Error>(item.map(|item| {
            let (purchased, used) = (item.num("purchased").unwrap_or(0), item.num("used").unwrap_or(0));
            let created_at = item
                .num("created_epoch")
                .and_then(|e| OffsetDateTime::from_unix_timestamp(e).ok())
                .map(crate::clock::rfc3339)
                .unwrap_or_default();
            Listed {
                account_id: id.to_owned(),
                name: item.str("name").unwrap_or_default().to_owned(),
                created_at,
                purchased,
                used,
                remaining: purchased - used,
            }
        }))
    });
    let accounts = futures::future::try_join_all(reads).await?.into_iter().flatten().collect();
    Ok((accounts, page.next))
}

/// Records a purchase of `amount` tokens under an idempotency key (admin). The purchase record
/// and the `ADD` to `purchased` are one transaction: a retry with the same key finds the record
/// and adds nothing; the same key with another amount is a 422.
#[instrument(skip(app, idempotency_key))]
pub async fn purchase(app: &App, account_id: &str, amount: i64, idempotency_key: &str) -> Result<Balance> {
    if !(1..=MAX_PURCHASE).contains(&amount) {
        return Err(Error::unprocessable(
            "bad_amount",
            format!("amount must be a whole number from 1 to {MAX_PURCHASE}"),
        ));
    }
    check_idempotency_key(idempotency_key)?;
    if !secret::is_id128(account_id) {
        return Err(Error::not_found("account"));
    }
    let pk = account_pk(account_id);
    let record_sk = format!("BUY#{}", secret::digest_hex(idempotency_key));
    let ops = vec![
        TxOp::Update {
            pk: pk.clone(),
            sk: ACCOUNT_SK.into(),
            update: Update::new().add("purchased", amount),
            cond: Some(Cond::Exists),
        },
        TxOp::Put {
            item: Item::new(pk.clone(), record_sk.clone())
                .with("amount", amount)
                .with("at_epoch", OffsetDateTime::now_utc().unix_timestamp()),
            cond: Some(Cond::NotExists),
        },
    ];
    match app.table.transact(ops).await {
        Ok(()) => info!(account_id, amount, "tokens purchased"),
        Err(crate::store::StoreError::ConditionFailed { index: Some(0) }) => return Err(Error::not_found("account")),
        Err(e) if e.is_condition_failed() => {
            let first =
                app.table.get(&pk, &record_sk).await?.ok_or_else(|| Error::internal("purchase record vanished"))?;
            if first.num("amount") != Some(amount) {
                return Err(Error::unprocessable(
                    "idempotency_key_reused",
                    "this Idempotency-Key was used for a purchase of another amount",
                ));
            }
        }
        Err(e) => return Err(e.into()),
    }
    balance(app, account_id).await
}

/// An idempotency key: 1 to 255 visible ASCII characters.
pub fn check_idempotency_key(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::unprocessable(
            "bad_idempotency_key",
            "Idempotency-Key must be 1 to 255 visible ASCII characters",
        ));
    }
    Ok(())
}
