//! The AWS family: [`Objects`] on S3, [`Table`] on DynamoDB, [`Queue`] on SQS.
//!
//! Every adapter takes a ready SDK client, so the caller decides the endpoint, region and
//! credentials (the Lambda environment in production, moto in the contract tests).

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete as DDelete, Put as DPut, ReturnValue, TransactWriteItem, Update as DUpdate,
};
use bytes::Bytes;

use super::rules::{validate_query, validate_transaction, visibility_secs};
use super::{
    Cond, Cursor, Delivery, GSI1, GSI1PK, GSI1SK, Index, Item, ItemKey, ListObjects, Object, Objects, PK, Page, Query,
    Queue, SK, ScanTable, SkCond, StoreError, StoreResult, Table, TxOp, Update, Value,
};

/// Describes an SDK error with its whole chain of causes; the top-level `Display` of an SDK
/// error is only "service error", which says nothing in a log.
fn sdk_err<E>(what: &str, e: E) -> StoreError
where
    E: std::error::Error,
{
    StoreError::backend(format!("{what}: {}", aws_sdk_dynamodb::error::DisplayErrorContext(e)))
}

// ---------------------------------------------------------------------------------------------
// S3
// ---------------------------------------------------------------------------------------------

/// Cache-Control stored with every object: keys are never reused for other content.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// Objects in an S3 bucket.
#[derive(Clone, Debug)]
pub struct S3Objects {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl S3Objects {
    pub fn new(client: aws_sdk_s3::Client, bucket: String) -> Self {
        S3Objects { client, bucket }
    }

    /// Objects in `bucket`, with path-style addressing when the SDK configuration names its own
    /// endpoint (S3-compatible stores and moto seldom serve `<bucket>.<host>` names).
    pub fn from_sdk(sdk: &aws_config::SdkConfig, bucket: String) -> Self {
        let conf = aws_sdk_s3::config::Builder::from(sdk).force_path_style(sdk.endpoint_url().is_some()).build();
        S3Objects::new(aws_sdk_s3::Client::from_conf(conf), bucket)
    }
}

#[async_trait]
impl Objects for S3Objects {
    async fn put(&self, key: &str, bytes: Bytes, content_type: &str) -> StoreResult<()> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            // Keys are never reused for other content (see `Objects`), so the CDN and browsers
            // may keep what they fetch for good.
            .cache_control(IMMUTABLE)
            .body(bytes.into())
            .send()
            .await
            .map_err(|e| sdk_err("s3 PutObject", e))?;
        Ok(())
    }

    async fn get(&self, key: &str) -> StoreResult<Option<Object>> {
        let out = match self.client.get_object().bucket(&self.bucket).key(key).send().await {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
            Err(e) => return Err(sdk_err("s3 GetObject", e)),
        };
        let content_type = out.content_type().unwrap_or("application/octet-stream").to_owned();
        let bytes = out.body.collect().await.map_err(|e| sdk_err("s3 GetObject body", e))?.into_bytes();
        Ok(Some(Object { bytes, content_type }))
    }

    async fn exists(&self, key: &str) -> StoreResult<bool> {
        match self.client.head_object().bucket(&self.bucket).key(key).send().await {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(false),
            Err(e) => Err(sdk_err("s3 HeadObject", e)),
        }
    }

    async fn delete(&self, key: &str) -> StoreResult<()> {
        // S3 answers a delete of a missing key with success, which is the port's contract.
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| sdk_err("s3 DeleteObject", e))?;
        Ok(())
    }
}

#[async_trait]
impl ListObjects for S3Objects {
    async fn list(&self, after: Option<&str>, limit: usize) -> StoreResult<Vec<String>> {
        let limit = limit.max(1);
        let mut keys = Vec::new();
        let mut start_after = after.map(str::to_owned);
        // S3 returns at most 1,000 keys per call: read on until the page is full or the bucket
        // is exhausted, so that a short page means the end for both families.
        while keys.len() < limit {
            let want = i32::try_from((limit - keys.len()).min(1000)).unwrap_or(1000);
            let out = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .set_start_after(start_after.clone())
                .max_keys(want)
                .send()
                .await
                .map_err(|e| sdk_err("s3 ListObjectsV2", e))?;
            let before = keys.len();
            keys.extend(out.contents().iter().filter_map(|o| o.key().map(str::to_owned)));
            if keys.len() == before || !out.is_truncated().unwrap_or(false) {
                break;
            }
            start_after = keys.last().cloned();
        }
        Ok(keys)
    }
}

// ---------------------------------------------------------------------------------------------
// DynamoDB
// ---------------------------------------------------------------------------------------------

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
        let res = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_attrs(&item)))
            .set_condition_expression(cond)
            .set_expression_attribute_names(names)
            .set_expression_attribute_values(values)
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => {
                Err(StoreError::ConditionFailed { index: None })
            }
            Err(e) => Err(sdk_err("dynamodb PutItem", e)),
        }
    }

    async fn update(&self, pk: &str, sk: &str, update: Update, cond: Option<Cond>) -> StoreResult<Item> {
        let mut ex = Expr::default();
        let expr = ex.update(&update);
        let cond = cond.as_ref().map(|c| ex.cond(c));
        let (names, values) = ex.into_maps();
        let res = self
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
            .await;
        match res {
            Ok(out) => match out.attributes() {
                Some(attrs) => from_attrs(attrs),
                // An update always leaves an item behind, so ALL_NEW always has one; the key
                // alone is the right answer should a backend omit it for an item with no other
                // attributes.
                None => Ok(Item::new(pk, sk)),
            },
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => {
                Err(StoreError::ConditionFailed { index: None })
            }
            Err(e) => Err(sdk_err("dynamodb UpdateItem", e)),
        }
    }

    async fn delete(&self, pk: &str, sk: &str, cond: Option<Cond>) -> StoreResult<Option<Item>> {
        let mut ex = Expr::default();
        let cond = cond.as_ref().map(|c| ex.cond(c));
        let (names, values) = ex.into_maps();
        let res = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .set_condition_expression(cond)
            .set_expression_attribute_names(names)
            .set_expression_attribute_values(values)
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        match res {
            Ok(out) => match out.attributes() {
                Some(attrs) if !attrs.is_empty() => from_attrs(attrs).map(Some),
                _ => Ok(None),
            },
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => {
                Err(StoreError::ConditionFailed { index: None })
            }
            Err(e) => Err(sdk_err("dynamodb DeleteItem", e)),
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
            let err = match res {
                Ok(_) => return Ok(()),
                Err(e) => e,
            };
            let Some(aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(
                cancelled,
            )) = err.as_service_error()
            else {
                return Err(sdk_err("dynamodb TransactWriteItems", err));
            };
            let reasons = cancelled.cancellation_reasons();
            let code_at = |code: &str| reasons.iter().position(|r| r.code() == Some(code));
            if let Some(i) = code_at("ConditionalCheckFailed") {
                return Err(StoreError::ConditionFailed { index: Some(i) });
            }
            // A conflict with another transaction on the same items leaves nothing written, so
            // trying again shortly is safe and usually succeeds.
            if code_at("TransactionConflict").is_some() && attempt < TRANSACTION_ATTEMPTS {
                let backoff = Duration::from_millis(20 << attempt);
                tracing::debug!(attempt, ?backoff, "transaction conflict; retrying");
                tokio::time::sleep(backoff).await;
                continue;
            }
            return Err(sdk_err("dynamodb TransactWriteItems", err));
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

// ---------------------------------------------------------------------------------------------
// SQS
// ---------------------------------------------------------------------------------------------

/// A queue on SQS.
#[derive(Clone, Debug)]
pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    url: String,
    wait_secs: i32,
}

impl SqsQueue {
    /// The queue at `queue_url`. Receives do not wait for messages (short polling), like the
    /// embedded family's; see [`SqsQueue::with_wait_time`].
    pub fn new(client: aws_sdk_sqs::Client, queue_url: String) -> Self {
        SqsQueue { client, url: queue_url, wait_secs: 0 }
    }

    /// Makes receives long-poll: wait up to `wait` (at most 20 s) for a message to arrive before
    /// returning an empty batch. Short polling on real SQS samples only some servers, so a
    /// consumer that loops on receive should prefer a wait of a few seconds.
    pub fn with_wait_time(mut self, wait: Duration) -> Self {
        self.wait_secs = i32::try_from(wait.as_secs().min(20)).unwrap_or(20);
        self
    }
}

fn secs_i32(d: Duration) -> i32 {
    i32::try_from(visibility_secs(d)).unwrap_or(i32::MAX)
}

#[async_trait]
impl Queue for SqsQueue {
    async fn send_batch(&self, bodies: &[String]) -> StoreResult<()> {
        use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
        // SQS takes ten messages per call; longer batches go in several calls.
        for chunk in bodies.chunks(10) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, body)| SendMessageBatchRequestEntry::builder().id(i.to_string()).message_body(body).build())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| StoreError::backend(format!("sqs batch entry: {e}")))?;
            let out = self
                .client
                .send_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| sdk_err("sqs SendMessageBatch", e))?;
            if let Some(f) = out.failed().first() {
                return Err(StoreError::backend(format!(
                    "sqs SendMessageBatch: {} of {} messages failed, first: {} {}",
                    out.failed().len(),
                    chunk.len(),
                    f.code(),
                    f.message().unwrap_or_default()
                )));
            }
        }
        Ok(())
    }

    async fn receive(&self, max: usize, visibility: Duration) -> StoreResult<Vec<Delivery>> {
        use aws_sdk_sqs::types::MessageSystemAttributeName;
        let max = max.min(10);
        if max == 0 {
            return Ok(Vec::new());
        }
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(i32::try_from(max).unwrap_or(10))
            .visibility_timeout(secs_i32(visibility))
            .wait_time_seconds(self.wait_secs)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|e| sdk_err("sqs ReceiveMessage", e))?;
        let mut deliveries = Vec::new();
        for m in out.messages() {
            let (Some(id), Some(receipt)) = (m.message_id(), m.receipt_handle()) else {
                return Err(StoreError::backend("sqs ReceiveMessage: message without id or receipt handle"));
            };
            let receive_count = m
                .attributes()
                .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                .and_then(|n| n.parse().ok())
                .unwrap_or(1);
            deliveries.push(Delivery {
                message_id: id.to_owned(),
                receipt: receipt.to_owned(),
                body: m.body().unwrap_or_default().to_owned(),
                receive_count,
            });
        }
        Ok(deliveries)
    }

    async fn ack(&self, receipt: &str) -> StoreResult<()> {
        match self.client.delete_message().queue_url(&self.url).receipt_handle(receipt).send().await {
            Ok(_) => Ok(()),
            // The message is gone already (or the receipt was never valid): nothing is left to do.
            Err(e) if e.as_service_error().is_some_and(|s| s.is_receipt_handle_is_invalid()) => {
                tracing::debug!("ack of an invalid receipt handle ignored");
                Ok(())
            }
            Err(e) => Err(sdk_err("sqs DeleteMessage", e)),
        }
    }

    async fn retry_after(&self, receipt: &str, delay: Duration) -> StoreResult<()> {
        let res = self
            .client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .visibility_timeout(secs_i32(delay))
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            // The message was deleted or its visibility already ran out: it will be (or was)
            // delivered again anyway, which is what a retry asks for. The embedded family
            // likewise ignores a receipt that no longer matches.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_receipt_handle_is_invalid() || s.is_message_not_inflight()) =>
            {
                tracing::debug!("retry of a message no longer in flight ignored");
                Ok(())
            }
            Err(e) => Err(sdk_err("sqs ChangeMessageVisibility", e)),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Provisioning
// ---------------------------------------------------------------------------------------------

/// Creates the resources the AWS family expects, for tests against moto and for running locally
/// against AWS-compatible endpoints. In AWS itself the template creates them.
pub mod provision {
    use std::time::Duration;

    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, GlobalSecondaryIndex, IndexStatus, KeySchemaElement, KeyType, Projection,
        ProjectionType, ScalarAttributeType, TableStatus,
    };

    use super::sdk_err;
    use crate::store::{GSI1, GSI1PK, GSI1SK, PK, SK, StoreError, StoreResult};

    /// How long to wait for a new table to become active (real DynamoDB takes seconds).
    const TABLE_READY_TIMEOUT: Duration = Duration::from_secs(120);

    /// Creates the single table (keys `pk`/`sk`, index `gsi1` on `gsi1pk`/`gsi1sk` projecting all
    /// attributes, on-demand billing) unless it exists, and waits until it and its index are active.
    pub async fn ensure_table(client: &aws_sdk_dynamodb::Client, name: &str) -> StoreResult<()> {
        let build = |e: aws_sdk_dynamodb::error::BuildError| StoreError::backend(format!("table definition: {e}"));
        let key = |attr: &str, kind: KeyType| KeySchemaElement::builder().attribute_name(attr).key_type(kind).build();
        let def = |attr: &str| {
            AttributeDefinition::builder().attribute_name(attr).attribute_type(ScalarAttributeType::S).build()
        };
        let gsi = GlobalSecondaryIndex::builder()
            .index_name(GSI1)
            .key_schema(key(GSI1PK, KeyType::Hash).map_err(build)?)
            .key_schema(key(GSI1SK, KeyType::Range).map_err(build)?)
            .projection(Projection::builder().projection_type(ProjectionType::All).build())
            .build()
            .map_err(build)?;
        let res = client
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key(PK, KeyType::Hash).map_err(build)?)
            .key_schema(key(SK, KeyType::Range).map_err(build)?)
            .attribute_definitions(def(PK).map_err(build)?)
            .attribute_definitions(def(SK).map_err(build)?)
            .attribute_definitions(def(GSI1PK).map_err(build)?)
            .attribute_definitions(def(GSI1SK).map_err(build)?)
            .global_secondary_indexes(gsi)
            .send()
            .await;
        match res {
            Ok(_) => tracing::info!(table = name, "created table"),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_in_use_exception()) => {}
            Err(e) => return Err(sdk_err("dynamodb CreateTable", e)),
        }

        let deadline = tokio::time::Instant::now() + TABLE_READY_TIMEOUT;
        loop {
            let out = client
                .describe_table()
                .table_name(name)
                .send()
                .await
                .map_err(|e| sdk_err("dynamodb DescribeTable", e))?;
            let ready = out.table().is_some_and(|t| {
                t.table_status() == Some(&TableStatus::Active)
                    && t.global_secondary_indexes().iter().all(|i| i.index_status() == Some(&IndexStatus::Active))
            });
            if ready {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(StoreError::backend(format!("table {name} did not become active")));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Creates the bucket unless this account already owns it.
    pub async fn ensure_bucket(client: &aws_sdk_s3::Client, name: &str) -> StoreResult<()> {
        use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
        let mut req = client.create_bucket().bucket(name);
        // us-east-1 is the one region where S3 refuses a location constraint.
        if let Some(region) = client.config().region().map(|r| r.as_ref().to_owned())
            && region != "us-east-1"
        {
            let cfg = CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(region.as_str()))
                .build();
            req = req.create_bucket_configuration(cfg);
        }
        match req.send().await {
            Ok(_) => {
                tracing::info!(bucket = name, "created bucket");
                Ok(())
            }
            Err(e) if e.as_service_error().is_some_and(|s| s.is_bucket_already_owned_by_you()) => Ok(()),
            Err(e) => Err(sdk_err("s3 CreateBucket", e)),
        }
    }

    /// Creates the queue unless it exists, and returns its URL.
    pub async fn ensure_queue(client: &aws_sdk_sqs::Client, name: &str) -> StoreResult<String> {
        // CreateQueue is idempotent for an existing queue with the same attributes.
        let out = client.create_queue().queue_name(name).send().await.map_err(|e| sdk_err("sqs CreateQueue", e))?;
        out.queue_url().map(str::to_owned).ok_or_else(|| StoreError::backend("sqs CreateQueue returned no queue URL"))
    }
}
