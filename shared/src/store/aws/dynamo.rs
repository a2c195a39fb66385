//! [`Table`] on DynamoDB: the port's items, conditions and updates compiled to DynamoDB's
//! attribute values and expressions.
//!
//! [`Table`]: crate::store::Table

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete as DDelete, Put as DPut, ReturnValue, TransactWriteItem, Update as DUpdate,
};

use super::sdk_err;
use crate::store::rules::{validate_query, validate_transaction};
use crate::store::{
    Cond, Cursor, GSI1, GSI1PK, GSI1SK, Index, Item, ItemKey, PK, Page, Query, SK, ScanTable, SkCond, StoreError,
    StoreResult, Table, TxOp, Update, Value,
};

/// The single table on DynamoDB.
#[derive(Clone, Debug)]
pub struct DynamoTable {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoTable {
    pub fn new(client: aws_sdk_dynamodb::Client, table_name: String) -> Self {
        DynamoTable { client, table: table_name }
    }

    pub fn from_sdk(sdk: &aws_config::SdkConfig, table_name: String) -> Self {
        DynamoTable::new(aws_sdk_dynamodb::Client::new(sdk), table_name)
    }
}

type AttrMap = HashMap<String, AttributeValue>;

fn to_attr(v: &Value) -> AttributeValue {
    match v {
        Value::S(s) => AttributeValue::S(s.clone()),
        Value::N(n) => AttributeValue::N(n.to_string()),
        Value::Bool(b) => AttributeValue::Bool(*b),
    }
}

fn from_attr(name: &str, a: &AttributeValue) -> StoreResult<Value> {
    match a {
        AttributeValue::S(s) => Ok(Value::S(s.clone())),
        AttributeValue::N(n) => n
            .parse()
            .map(Value::N)
            .map_err(|_| StoreError::backend(format!("attribute {name} holds {n}, which is not an i64"))),
        AttributeValue::Bool(b) => Ok(Value::Bool(*b)),
        other => Err(StoreError::backend(format!("attribute {name} has an unsupported type: {other:?}"))),
    }
}

fn to_attrs(item: &Item) -> AttrMap {
    item.0.iter().map(|(k, v)| (k.clone(), to_attr(v))).collect()
}

fn from_attrs(attrs: &AttrMap) -> StoreResult<Item> {
    let mut item = Item::default();
    for (k, v) in attrs {
        item.0.insert(k.clone(), from_attr(k, v)?);
    }
    Ok(item)
}

fn key(pk: &str, sk: &str) -> AttrMap {
    HashMap::from([
        (PK.to_owned(), AttributeValue::S(pk.to_owned())),
        (SK.to_owned(), AttributeValue::S(sk.to_owned())),
    ])
}

/// Collects the placeholders of one request's expressions: attribute names become `#n0`, `#n1`…
/// (so reserved words and odd characters never matter) and values become `:v0`, `:v1`….
#[derive(Default)]
struct Expr {
    names: HashMap<String, String>,
    values: AttrMap,
    by_name: HashMap<String, String>,
}

impl Expr {
    fn name(&mut self, n: &str) -> String {
        if let Some(p) = self.by_name.get(n) {
            return p.clone();
        }
        let p = format!("#n{}", self.by_name.len());
        self.names.insert(p.clone(), n.to_owned());
        self.by_name.insert(n.to_owned(), p.clone());
        p
    }

    fn value(&mut self, v: AttributeValue) -> String {
        let p = format!(":v{}", self.values.len());
        self.values.insert(p.clone(), v);
        p
    }

    /// Compiles a [`Cond`] into a condition expression with the meaning of [`Cond::eval`].
    /// DynamoDB's own rules give that meaning directly: a comparison with a missing attribute
    /// or a value of another type is false, and `<>` with a missing attribute is true.
    fn cond(&mut self, c: &Cond) -> String {
        let mut cmp = |n: &str, op: &str, v: &Value| {
            let n = self.name(n);
            let v = self.value(to_attr(v));
            format!("{n} {op} {v}")
        };
        match c {
            Cond::Exists => format!("attribute_exists({})", self.name(PK)),
            Cond::NotExists => format!("attribute_not_exists({})", self.name(PK)),
            Cond::AttrExists(n) => format!("attribute_exists({})", self.name(n)),
            Cond::AttrNotExists(n) => format!("attribute_not_exists({})", self.name(n)),
            Cond::Eq(n, v) => cmp(n, "=", v),
            Cond::Ne(n, v) => cmp(n, "<>", v),
            Cond::Lt(n, v) => cmp(n, "<", v),
            Cond::Le(n, v) => cmp(n, "<=", v),
            Cond::Gt(n, v) => cmp(n, ">", v),
            Cond::Ge(n, v) => cmp(n, ">=", v),
            Cond::AttrLt(a, b) => format!("{} < {}", self.name(a), self.name(b)),
            Cond::And(cs) => self.join(cs, " AND ", true),
            Cond::Or(cs) => self.join(cs, " OR ", false),
        }
    }

    fn join(&mut self, cs: &[Cond], op: &str, empty: bool) -> String {
        if cs.is_empty() {
            // DynamoDB has no literal true or false, so an empty AND (true) and an empty OR
            // (false) are spelt as a tautology and a contradiction on the item's key.
            let pk = self.name(PK);
            return if empty {
                format!("(attribute_exists({pk}) OR attribute_not_exists({pk}))")
            } else {
                format!("(attribute_exists({pk}) AND attribute_not_exists({pk}))")
            };
        }
        let parts: Vec<String> = cs.iter().map(|c| self.cond(c)).collect();
        format!("({})", parts.join(op))
    }

    /// Compiles an [`Update`] into an update expression.
    fn update(&mut self, u: &Update) -> String {
        let mut clauses = Vec::new();
        if !u.set.is_empty() {
            let sets: Vec<String> =
                u.set.iter().map(|(n, v)| format!("{} = {}", self.name(n), self.value(to_attr(v)))).collect();
            clauses.push(format!("SET {}", sets.join(", ")));
        }
        if !u.add.is_empty() {
            let adds: Vec<String> = u
                .add
                .iter()
                .map(|(n, d)| format!("{} {}", self.name(n), self.value(AttributeValue::N(d.to_string()))))
                .collect();
            clauses.push(format!("ADD {}", adds.join(", ")));
        }
        if !u.remove.is_empty() {
            let removes: Vec<String> = u.remove.iter().map(|n| self.name(n)).collect();
            clauses.push(format!("REMOVE {}", removes.join(", ")));
        }
        if clauses.is_empty() {
            // An update that changes nothing must still create a missing item, as the port
            // promises. DynamoDB's answer to an UpdateItem without an update expression is not
            // something moto reproduces, and a transaction's Update requires an expression, so
            // the no-op is spelt as the removal of an attribute no item has.
            clauses.push(format!("REMOVE {}", self.name(NOOP_ATTR)));
        }
        clauses.join(" ")
    }

    /// The placeholder maps, as the SDK wants them: absent rather than empty, because DynamoDB
    /// rejects empty `ExpressionAttributeNames`/`Values`.
    fn into_maps(self) -> (Option<HashMap<String, String>>, Option<AttrMap>) {
        let names = (!self.names.is_empty()).then_some(self.names);
        let values = (!self.values.is_empty()).then_some(self.values);
        (names, values)
    }
}

/// An attribute name no item has, removed by an update that changes nothing (see
/// [`Expr::update`]).
const NOOP_ATTR: &str = "imghost:noop";

/// How many times a transaction cancelled by a conflict with another transaction is tried.
const TRANSACTION_ATTEMPTS: u32 = 5;

/// What a failed conditional write means to the port.
#[derive(Debug, PartialEq, Eq)]
enum WriteFailure {
    /// A condition did not hold: [`StoreError::ConditionFailed`], with, for a transaction, the
    /// index of the first operation whose condition failed.
    Condition(Option<usize>),
    /// A transaction was cancelled by a conflict with another transaction on the same items.
    /// Nothing was written, so trying again is safe.
    Conflict,
    /// Anything else (throttling, validation, the network), reported as a backend error.
    Other,
}

/// The service error of a DynamoDB write that takes conditions, read for what the port tells
/// apart. One implementation per operation, because each has its own error type.
trait ConditionalWrite {
    fn failure(&self) -> WriteFailure;
}

/// PutItem, UpdateItem and DeleteItem have one condition each, so a failed one has no index.
macro_rules! single_item_writes {
    ($($error:ty),+) => {$(
        impl ConditionalWrite for $error {
            fn failure(&self) -> WriteFailure {
                if self.is_conditional_check_failed_exception() {
                    WriteFailure::Condition(None)
                } else {
                    WriteFailure::Other
                }
            }
        }
    )+};
}
single_item_writes!(PutItemError, UpdateItemError, DeleteItemError);

impl ConditionalWrite for TransactWriteItemsError {
    /// A cancelled transaction carries one reason per operation, in the request's order, so the
    /// position of the first `ConditionalCheckFailed` is the index of the failed condition. A
    /// false condition wins over a conflict elsewhere in the same transaction: trying again
    /// could not make it hold.
    fn failure(&self) -> WriteFailure {
        let TransactWriteItemsError::TransactionCanceledException(cancelled) = self else {
            return WriteFailure::Other;
        };
        let reasons = cancelled.cancellation_reasons();
        let code_at = |code: &str| reasons.iter().position(|r| r.code() == Some(code));
        if let Some(i) = code_at("ConditionalCheckFailed") {
            WriteFailure::Condition(Some(i))
        } else if code_at("TransactionConflict").is_some() {
            WriteFailure::Conflict
        } else {
            WriteFailure::Other
        }
    }
}

/// What the SDK error of a conditional write means; an error that is not the service's own
/// (a timeout, a dropped connection) is [`WriteFailure::Other`].
fn write_failure<E: ConditionalWrite, R>(e: &SdkError<E, R>) -> WriteFailure {
    e.as_service_error().map_or(WriteFailure::Other, ConditionalWrite::failure)
}

/// The port's error for the SDK error of the conditional write `what`: a failed condition is
/// [`StoreError::ConditionFailed`] (with the transaction index where there is one), anything
/// else a backend error with the SDK's whole chain of causes. A transaction conflict reaches
/// this only once [`Table::transact`] has stopped retrying, and is a backend error too.
fn write_err<E, R>(what: &str, e: SdkError<E, R>) -> StoreError
where
    E: ConditionalWrite,
    SdkError<E, R>: std::error::Error,
{
    match write_failure(&e) {
        WriteFailure::Condition(index) => StoreError::ConditionFailed { index },
        WriteFailure::Conflict | WriteFailure::Other => sdk_err(what, e),
    }
}

impl DynamoTable {
    fn tx_item(&self, op: &TxOp) -> StoreResult<TransactWriteItem> {
        let build_err = |e: aws_sdk_dynamodb::error::BuildError| StoreError::backend(format!("transaction item: {e}"));
        let mut ex = Expr::default();
        let item = match op {
            TxOp::Put { item, cond } => {
                let cond = cond.as_ref().map(|c| ex.cond(c));
                let (names, values) = ex.into_maps();
                let put = DPut::builder()
                    .table_name(&self.table)
                    .set_item(Some(to_attrs(item)))
                    .set_condition_expression(cond)
                    .set_expression_attribute_names(names)
                    .set_expression_attribute_values(values)
                    .build()
                    .map_err(build_err)?;
                TransactWriteItem::builder().put(put).build()
            }
            TxOp::Update { pk, sk, update, cond } => {
                let expr = ex.update(update);
                let cond = cond.as_ref().map(|c| ex.cond(c));
                let (names, values) = ex.into_maps();
                let upd = DUpdate::builder()
                    .table_name(&self.table)
                    .set_key(Some(key(pk, sk)))
                    .update_expression(expr)
                    .set_condition_expression(cond)
                    .set_expression_attribute_names(names)
                    .set_expression_attribute_values(values)
                    .build()
                    .map_err(build_err)?;
                TransactWriteItem::builder().update(upd).build()
            }
            TxOp::Delete { pk, sk, cond } => {
                let cond = cond.as_ref().map(|c| ex.cond(c));
                let (names, values) = ex.into_maps();
                let del = DDelete::builder()
                    .table_name(&self.table)
                    .set_key(Some(key(pk, sk)))
                    .set_condition_expression(cond)
                    .set_expression_attribute_names(names)
                    .set_expression_attribute_values(values)
                    .build()
                    .map_err(build_err)?;
                TransactWriteItem::builder().delete(del).build()
            }
            TxOp::Check { pk, sk, cond } => {
                let cond = ex.cond(cond);
                let (names, values) = ex.into_maps();
                let check = ConditionCheck::builder()
                    .table_name(&self.table)
                    .set_key(Some(key(pk, sk)))
                    .condition_expression(cond)
                    .set_expression_attribute_names(names)
                    .set_expression_attribute_values(values)
                    .build()
                    .map_err(build_err)?;
                TransactWriteItem::builder().condition_check(check).build()
            }
        };
        Ok(item)
    }

    fn start_key(&self, index: Index, c: &Cursor) -> AttrMap {
        let mut k = key(&c.pk, &c.sk);
        if index == Index::Gsi1 {
            for (name, v) in [(GSI1PK, &c.gsi1pk), (GSI1SK, &c.gsi1sk)] {
                if let Some(v) = v {
                    k.insert(name.to_owned(), AttributeValue::S(v.clone()));
                }
            }
        }
        k
    }
}

#[async_trait]
impl Table for DynamoTable {
    async fn get(&self, pk: &str, sk: &str) -> StoreResult<Option<Item>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_err("dynamodb GetItem", e))?;
        out.item().map(from_attrs).transpose()
    }

    async fn put(&self, item: Item, cond: Option<Cond>) -> StoreResult<()> {
        let mut ex = Expr::default();
        let cond = cond.as_ref().map(|c| ex.cond(c));
        let (names, values) = ex.into_maps();
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_attrs(&item)))
            .set_condition_expression(cond)
            .set_expression_attribute_names(names)
            .set_expression_attribute_values(values)
            .send()
            .await
            .map_err(|e| write_err("dynamodb PutItem", e))?;
        Ok(())
    }

    async fn update(&self, pk: &str, sk: &str, update: Update, cond: Option<Cond>) -> StoreResult<Item> {
        let mut ex = Expr::default();
        let expr = ex.update(&update);
        let cond = cond.as_ref().map(|c| ex.cond(c));
        let (names, values) = ex.into_maps();
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .update_expression(expr)
            .set_condition_expression(cond)
            .set_expression_attribute_names(names)
            .set_expression_attribute_values(values)
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| write_err("dynamodb UpdateItem", e))?;
        match out.attributes() {
            Some(attrs) => from_attrs(attrs),
            // An update always leaves an item behind, so ALL_NEW always has one; the key alone
            // is the right answer should a backend omit it for an item with no other attributes.
            None => Ok(Item::new(pk, sk)),
        }
    }

    async fn delete(&self, pk: &str, sk: &str, cond: Option<Cond>) -> StoreResult<Option<Item>> {
        let mut ex = Expr::default();
        let cond = cond.as_ref().map(|c| ex.cond(c));
        let (names, values) = ex.into_maps();
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .set_condition_expression(cond)
            .set_expression_attribute_names(names)
            .set_expression_attribute_values(values)
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| write_err("dynamodb DeleteItem", e))?;
        match out.attributes() {
            Some(attrs) if !attrs.is_empty() => from_attrs(attrs).map(Some),
            _ => Ok(None),
        }
    }

    async fn query(&self, q: Query) -> StoreResult<Page> {
        validate_query(&q)?;
        let (pk_attr, sk_attr) = match q.index {
            Index::Table => (PK, SK),
            Index::Gsi1 => (GSI1PK, GSI1SK),
        };
        let mut ex = Expr::default();
        let mut key_cond = format!("{} = {}", ex.name(pk_attr), ex.value(AttributeValue::S(q.pk.clone())));
        if let Some(sk) = &q.sk {
            let n = ex.name(sk_attr);
            let mut v = |s: &str| ex.value(AttributeValue::S(s.to_owned()));
            let c = match sk {
                SkCond::BeginsWith(p) => format!("begins_with({n}, {})", v(p)),
                SkCond::Between(lo, hi) => format!("{n} BETWEEN {} AND {}", v(lo), v(hi)),
                SkCond::Lt(s) => format!("{n} < {}", v(s)),
                SkCond::Le(s) => format!("{n} <= {}", v(s)),
                SkCond::Gt(s) => format!("{n} > {}", v(s)),
                SkCond::Ge(s) => format!("{n} >= {}", v(s)),
            };
            key_cond = format!("{key_cond} AND {c}");
        }
        let (names, values) = ex.into_maps();

        let mut items = Vec::new();
        let mut start = q.start.as_ref().map(|c| self.start_key(q.index, c));
        // DynamoDB also ends a page early when it has read 1 MB; such a page comes with a
        // LastEvaluatedKey, and reading on from it until the page is full keeps the rule both
        // families follow: a page is short only when the partition is exhausted.
        loop {
            let want = i32::try_from(q.limit - items.len()).unwrap_or(i32::MAX);
            let mut req = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression(&key_cond)
                .set_expression_attribute_names(names.clone())
                .set_expression_attribute_values(values.clone())
                .scan_index_forward(q.forward)
                .limit(want)
                .set_exclusive_start_key(start.take());
            req = match q.index {
                // Global secondary indexes only support eventually consistent reads.
                Index::Table => req.consistent_read(true),
                Index::Gsi1 => req.index_name(GSI1),
            };
            let out = req.send().await.map_err(|e| sdk_err("dynamodb Query", e))?;
            for attrs in out.items() {
                items.push(from_attrs(attrs)?);
            }
            match out.last_evaluated_key {
                Some(k) if items.len() < q.limit && !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        items.truncate(q.limit);
        let next = match items.last() {
            Some(last) if items.len() == q.limit => Some(Cursor::of(last, q.index)),
            _ => None,
        };
        Ok(Page { items, next })
    }

    async fn transact(&self, ops: Vec<TxOp>) -> StoreResult<()> {
        validate_transaction(&ops)?;
        if ops.is_empty() {
            return Ok(());
        }
        let items = ops.iter().map(|op| self.tx_item(op)).collect::<StoreResult<Vec<_>>>()?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let res = self.client.transact_write_items().set_transact_items(Some(items.clone())).send().await;
            let Err(err) = res else {
                return Ok(());
            };
            // A conflict with another transaction on the same items leaves nothing written, so
            // trying again shortly is safe and usually succeeds. A transaction with a failed
            // condition never counts as a conflict, whatever its other reasons.
            if write_failure(&err) == WriteFailure::Conflict && attempt < TRANSACTION_ATTEMPTS {
                let backoff = Duration::from_millis(20 << attempt);
                tracing::debug!(attempt, ?backoff, "transaction conflict; retrying");
                tokio::time::sleep(backoff).await;
                continue;
            }
            return Err(write_err("dynamodb TransactWriteItems", err));
        }
    }
}

#[async_trait]
impl ScanTable for DynamoTable {
    async fn scan(&self, after: Option<ItemKey>, limit: usize) -> StoreResult<(Vec<Item>, Option<ItemKey>)> {
        let out = self
            .client
            .scan()
            .table_name(&self.table)
            .limit(i32::try_from(limit.max(1)).unwrap_or(i32::MAX))
            .set_exclusive_start_key(after.map(|(pk, sk)| key(&pk, &sk)))
            // A copy must not miss a write that finished before it started.
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_err("dynamodb Scan", e))?;
        let items = out.items().iter().map(from_attrs).collect::<StoreResult<Vec<_>>>()?;
        // DynamoDB may end a page early (1 MB read); its last evaluated key says where to go on.
        let next = match out.last_evaluated_key() {
            Some(k) => {
                let part = |name: &str| {
                    k.get(name)
                        .and_then(|v| v.as_s().ok())
                        .cloned()
                        .ok_or_else(|| StoreError::backend(format!("dynamodb Scan: last evaluated key has no {name}")))
                };
                Some((part(PK)?, part(SK)?))
            }
            None => None,
        };
        Ok((items, next))
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::types::CancellationReason;
    use aws_sdk_dynamodb::types::error::{ConditionalCheckFailedException, TransactionCanceledException};

    use super::*;

    /// A transaction cancelled with these reason codes, one per operation in order.
    fn cancelled(codes: &[&str]) -> TransactWriteItemsError {
        let reasons = codes.iter().map(|c| CancellationReason::builder().code(*c).build()).collect();
        TransactWriteItemsError::TransactionCanceledException(
            TransactionCanceledException::builder().set_cancellation_reasons(Some(reasons)).build(),
        )
    }

    #[test]
    fn a_failed_condition_is_reported_with_its_operation_index() {
        assert_eq!(cancelled(&["None", "ConditionalCheckFailed"]).failure(), WriteFailure::Condition(Some(1)));
        // A false condition wins over a conflict elsewhere: trying again could not make it hold.
        let both = cancelled(&["TransactionConflict", "None", "ConditionalCheckFailed"]);
        assert_eq!(both.failure(), WriteFailure::Condition(Some(2)));
    }

    #[test]
    fn a_conflict_alone_is_retried_and_other_reasons_are_not() {
        assert_eq!(cancelled(&["None", "TransactionConflict"]).failure(), WriteFailure::Conflict);
        assert_eq!(cancelled(&["ThrottlingError", "None"]).failure(), WriteFailure::Other);
    }

    #[test]
    fn a_single_item_write_fails_its_condition_without_an_index() {
        let e = PutItemError::ConditionalCheckFailedException(ConditionalCheckFailedException::builder().build());
        assert_eq!(e.failure(), WriteFailure::Condition(None));
    }
}
