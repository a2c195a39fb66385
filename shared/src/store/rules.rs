//! DynamoDB's and SQS's request rules, checked by both storage families before they act, so
//! that a request one family refuses the other refuses too (moto, which stands in for AWS in
//! the tests, enforces only some of them). Also the small helpers both families share.

use std::collections::HashSet;
use std::time::Duration;

use super::{GSI1PK, GSI1SK, Item, PK, Query, SK, SkCond, StoreError, StoreResult, TxOp, Update, Value};

/// DynamoDB's limit on the number of operations in one `TransactWriteItems` call.
pub(crate) const MAX_TRANSACTION_OPS: usize = 100;
/// SQS's limit on a visibility timeout (12 hours).
pub(crate) const MAX_VISIBILITY_SECS: u64 = 43_200;

pub(crate) fn invalid(msg: impl std::fmt::Display) -> StoreError {
    StoreError::backend(format!("invalid request: {msg}"))
}

/// Checks what DynamoDB checks before writing an item: string keys that are not empty, string
/// index keys (when present) that are not empty, and the item size limit.
pub(crate) fn validate_item(item: &Item) -> StoreResult<()> {
    for key in [PK, SK] {
        match item.get(key) {
            Some(Value::S(s)) if !s.is_empty() => {}
            Some(Value::S(_)) => {
                return Err(invalid(format!("key attribute {key} is an empty string")));
            }
            Some(_) => return Err(invalid(format!("key attribute {key} is not a string"))),
            None => return Err(invalid(format!("item has no key attribute {key}"))),
        }
    }
    for key in [GSI1PK, GSI1SK] {
        match item.get(key) {
            None => {}
            Some(Value::S(s)) if !s.is_empty() => {}
            Some(Value::S(_)) => {
                return Err(invalid(format!("index key attribute {key} is an empty string")));
            }
            Some(_) => {
                return Err(invalid(format!("index key attribute {key} is not a string")));
            }
        }
    }
    Ok(())
}

pub(crate) fn validate_key(pk: &str, sk: &str) -> StoreResult<()> {
    if pk.is_empty() || sk.is_empty() {
        return Err(invalid("key attributes cannot be empty strings"));
    }
    Ok(())
}

/// Checks what DynamoDB checks in an update expression: key attributes cannot be changed, and no
/// attribute may appear twice ("two document paths overlap").
pub(crate) fn validate_update(update: &Update) -> StoreResult<()> {
    let names = update.set.iter().map(|(n, _)| n).chain(update.add.iter().map(|(n, _)| n)).chain(update.remove.iter());
    let mut seen = HashSet::new();
    for name in names {
        if name == PK || name == SK {
            return Err(invalid(format!("cannot update attribute {name}: it is part of the key")));
        }
        if !seen.insert(name.as_str()) {
            return Err(invalid(format!("attribute {name} appears more than once in the update")));
        }
    }
    Ok(())
}

/// Checks what DynamoDB checks for a whole transaction: at most 100 operations, each on a
/// different item. The AWS family runs the same check before calling DynamoDB so that both
/// families reject the same requests (moto, the test double, enforces neither rule fully).
pub(crate) fn validate_transaction(ops: &[TxOp]) -> StoreResult<()> {
    if ops.len() > MAX_TRANSACTION_OPS {
        return Err(invalid(format!("a transaction has at most {MAX_TRANSACTION_OPS} operations, not {}", ops.len())));
    }
    let mut keys = HashSet::new();
    for op in ops {
        let key = tx_key(op);
        if !keys.insert(key) {
            return Err(invalid(format!("transaction has more than one operation on item {key:?}")));
        }
        match op {
            TxOp::Put { item, .. } => validate_item(item)?,
            TxOp::Update { pk, sk, update, .. } => {
                validate_key(pk, sk)?;
                validate_update(update)?;
            }
            TxOp::Delete { pk, sk, .. } | TxOp::Check { pk, sk, .. } => validate_key(pk, sk)?,
        }
    }
    Ok(())
}

/// The key an operation of a transaction acts on.
pub(crate) fn tx_key(op: &TxOp) -> (&str, &str) {
    match op {
        TxOp::Put { item, .. } => (item.pk(), item.sk()),
        TxOp::Update { pk, sk, .. } | TxOp::Delete { pk, sk, .. } | TxOp::Check { pk, sk, .. } => (pk, sk),
    }
}

/// Checks what DynamoDB checks in a query: a positive limit, a `BETWEEN` whose bounds are in
/// order, and a start key of the index being queried.
pub(crate) fn validate_query(q: &Query) -> StoreResult<()> {
    if q.limit == 0 {
        return Err(invalid("query limit must be at least 1"));
    }
    if let Some(SkCond::Between(lo, hi)) = &q.sk
        && lo > hi
    {
        return Err(invalid(format!("BETWEEN bounds are out of order: {lo:?} > {hi:?}")));
    }
    if let Some(c) = &q.start {
        c.check(q)?;
    }
    Ok(())
}

/// Rounds a duration up to whole seconds, capped at SQS's maximum visibility timeout: SQS takes
/// visibility timeouts in whole seconds, and both families round the same way.
pub(crate) fn visibility_secs(d: Duration) -> u64 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    secs.min(MAX_VISIBILITY_SECS)
}

/// A random hex string of `bytes` random bytes, for the embedded family's receipts and ids.
#[cfg(feature = "embedded")]
pub(crate) fn random_hex(bytes: usize) -> StoreResult<String> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| StoreError::backend(format!("no randomness: {e}")))?;
    Ok(hex::encode(buf))
}
