//! Storage ports: the only way the library touches durable state.
//!
//! Three small capability traits, each with two real adapter families:
//!
//! | port       | embedded family (local default)        | AWS family        |
//! |------------|----------------------------------------|-------------------|
//! | [`Objects`]| files under `<data>/objects` ([`fs`])   | S3 ([`aws`])      |
//! | [`Table`]  | SQLite ([`sqlite`])                     | DynamoDB ([`aws`])|
//! | [`Queue`]  | SQLite ([`sqlite`])                     | SQS ([`aws`])     |
//!
//! The table port is deliberately shaped like DynamoDB's single-table model (partition key `pk`,
//! sort key `sk`, one global secondary index `gsi1pk`/`gsi1sk`) and offers only the operations the
//! AWS family can do without a Scan: get, conditional put/update/delete, query on a key, and
//! conditional transactions. The embedded family implements the same semantics exactly, including
//! DynamoDB's rules for conditions on missing items and `ADD` on missing attributes, so code that
//! is correct on one family is correct on the other. `tests/contract/` holds them to that.

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "embedded")]
pub mod fs;
#[cfg(any(feature = "aws", feature = "embedded"))]
mod rules;
#[cfg(feature = "embedded")]
pub mod sqlite;

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

/// An error from a storage adapter.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A condition on a write did not hold. For a transaction, `index` names the first operation
    /// whose condition failed (DynamoDB's cancellation reasons), so callers can tell which one.
    #[error("condition failed (operation {index:?})")]
    ConditionFailed { index: Option<usize> },
    /// The backend failed for a reason unrelated to the request's data: I/O, network, throttling.
    #[error("storage backend error: {0}")]
    Backend(String),
    /// A query's start cursor does not belong to that query (another listing's, or doctored).
    /// Both families refuse it the same way, before asking the backend.
    #[error("invalid cursor: {0}")]
    InvalidCursor(String),
}

impl StoreError {
    pub fn backend(e: impl std::fmt::Display) -> Self {
        StoreError::Backend(e.to_string())
    }

    pub fn is_condition_failed(&self) -> bool {
        matches!(self, StoreError::ConditionFailed { .. })
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

// ---------------------------------------------------------------------------------------------
// Objects
// ---------------------------------------------------------------------------------------------

/// A stored object.
#[derive(Debug, Clone)]
pub struct Object {
    pub bytes: Bytes,
    pub content_type: String,
}

/// The most bytes one chunk of a streamed read holds: what a slow client can keep in memory.
/// (The embedded family reads a range of up to 256 KiB in one piece, which serves most variants
/// with one trip to the disk; longer ranges stream in chunks of this size.)
pub const READ_CHUNK: usize = 64 * 1024;

/// A part of an object being read: the chunks of the range asked for, at most 256 KiB each for
/// the embedded family (S3's network chunks are of the same order), read only as the consumer
/// asks for them. It carries no content type: a reader serves what it stored and knows its
/// type (`get` returns it for the others), and the embedded family would pay a second file
/// read per request for it.
pub struct ObjectRead {
    /// The length of the whole object.
    pub total: u64,
    /// The byte range being read, end exclusive, clamped to the object.
    pub range: std::ops::Range<u64>,
    pub body: futures::stream::BoxStream<'static, StoreResult<Bytes>>,
}

impl std::fmt::Debug for ObjectRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ObjectRead {{ total: {}, range: {:?} }}", self.total, self.range)
    }
}

/// Clamps an asked range to an object of `total` bytes (the whole object when none is asked).
pub fn clamp_range(range: Option<std::ops::Range<u64>>, total: u64) -> std::ops::Range<u64> {
    let r = range.unwrap_or(0..total);
    let end = r.end.min(total);
    r.start.min(end)..end
}

/// Blob storage addressed by key, like an S3 bucket.
///
/// imghost never writes different content under a key it wrote before (keys carry random
/// ids), so adapters may mark objects as cacheable forever.
#[async_trait]
pub trait Objects: Send + Sync {
    /// Stores `bytes` under `key`, replacing any previous object atomically: a reader sees either
    /// the old object or the whole new one, never a part.
    async fn put(&self, key: &str, bytes: Bytes, content_type: &str) -> StoreResult<()>;
    /// Returns the object, or `None` when there is none under `key`.
    async fn get(&self, key: &str) -> StoreResult<Option<Object>>;
    /// Reads `range` of the object (end exclusive; the whole object when `None`), streamed in
    /// chunks, so that serving a large object holds one chunk at a time; `None` when there is
    /// no object under `key`.
    async fn read(&self, key: &str, range: Option<std::ops::Range<u64>>) -> StoreResult<Option<ObjectRead>>;
    /// Whether an object exists under `key`.
    async fn exists(&self, key: &str) -> StoreResult<bool>;
    /// Removes the object; removing a missing object is not an error (as in S3).
    async fn delete(&self, key: &str) -> StoreResult<()>;
}

// ---------------------------------------------------------------------------------------------
// Table
// ---------------------------------------------------------------------------------------------

/// An attribute value. The subset of DynamoDB's types the product needs.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    S(String),
    N(i64),
    Bool(bool),
}

impl Value {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::S(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::N(n) => Some(*n),
            _ => None,
        }
    }
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::S(s.to_owned())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::S(s)
    }
}
impl From<i64> for Value {
    fn from(n: i64) -> Self {
        Value::N(n)
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

/// Attribute names every item and index uses.
pub const PK: &str = "pk";
pub const SK: &str = "sk";
pub const GSI1PK: &str = "gsi1pk";
pub const GSI1SK: &str = "gsi1sk";
/// Name of the one global secondary index, in DynamoDB and in the template.
pub const GSI1: &str = "gsi1";

/// A sort key that orders items by when it was made, newest last, ties broken by `id`. Uses
/// nanoseconds: writes made one after another in the same millisecond (several files of one
/// request) must still list in the order they were made.
pub fn time_sort_key(id: &str) -> String {
    let nanos = time::OffsetDateTime::now_utc().unix_timestamp_nanos().max(0);
    format!("{nanos:020}#{id}")
}

/// An item: attribute name to value. Always holds `pk` and `sk`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Item(pub BTreeMap<String, Value>);

impl Item {
    pub fn new(pk: impl Into<String>, sk: impl Into<String>) -> Self {
        let mut m = BTreeMap::new();
        m.insert(PK.to_owned(), Value::S(pk.into()));
        m.insert(SK.to_owned(), Value::S(sk.into()));
        Item(m)
    }
    pub fn with(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.0.insert(name.to_owned(), value.into());
        self
    }
    pub fn set(&mut self, name: &str, value: impl Into<Value>) {
        self.0.insert(name.to_owned(), value.into());
    }
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }
    pub fn str(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(Value::as_str)
    }
    pub fn num(&self, name: &str) -> Option<i64> {
        self.0.get(name).and_then(Value::as_i64)
    }
    pub fn bool(&self, name: &str) -> Option<bool> {
        self.0.get(name).and_then(Value::as_bool)
    }
    pub fn pk(&self) -> &str {
        self.str(PK).unwrap_or_default()
    }
    pub fn sk(&self) -> &str {
        self.str(SK).unwrap_or_default()
    }
}

/// A condition on the current state of one item, evaluated atomically with the write it guards.
///
/// Semantics follow DynamoDB condition expressions: when the item does not exist every attribute
/// is missing, `Exists`/`NotExists` test for the item (its `pk`), a comparison involving a missing
/// attribute or values of different types is false, and `Ne` on a missing attribute is true.
#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    /// The item exists (`attribute_exists(pk)`).
    Exists,
    /// The item does not exist (`attribute_not_exists(pk)`).
    NotExists,
    /// `attribute_exists(name)`.
    AttrExists(String),
    /// `attribute_not_exists(name)`.
    AttrNotExists(String),
    Eq(String, Value),
    Ne(String, Value),
    Lt(String, Value),
    Le(String, Value),
    Gt(String, Value),
    Ge(String, Value),
    /// `a < b` between two attributes of the item, e.g. `used < purchased`.
    AttrLt(String, String),
    And(Vec<Cond>),
    Or(Vec<Cond>),
}

impl Cond {
    pub fn eq(name: &str, v: impl Into<Value>) -> Self {
        Cond::Eq(name.to_owned(), v.into())
    }
    pub fn ne(name: &str, v: impl Into<Value>) -> Self {
        Cond::Ne(name.to_owned(), v.into())
    }
    pub fn lt(name: &str, v: impl Into<Value>) -> Self {
        Cond::Lt(name.to_owned(), v.into())
    }
    pub fn le(name: &str, v: impl Into<Value>) -> Self {
        Cond::Le(name.to_owned(), v.into())
    }
    pub fn gt(name: &str, v: impl Into<Value>) -> Self {
        Cond::Gt(name.to_owned(), v.into())
    }
    pub fn ge(name: &str, v: impl Into<Value>) -> Self {
        Cond::Ge(name.to_owned(), v.into())
    }
    pub fn and(self, other: Cond) -> Self {
        match self {
            Cond::And(mut v) => {
                v.push(other);
                Cond::And(v)
            }
            c => Cond::And(vec![c, other]),
        }
    }

    /// Evaluates the condition against the item's current state (`None` when it does not exist).
    /// The embedded family uses this directly; the AWS family compiles the same tree into a
    /// condition expression, and the contract suite checks that both agree.
    pub fn eval(&self, item: Option<&Item>) -> bool {
        use std::cmp::Ordering;
        let attr = |n: &str| item.and_then(|i| i.get(n));
        let cmp = |n: &str, v: &Value| -> Option<Ordering> {
            match (attr(n)?, v) {
                (Value::S(a), Value::S(b)) => Some(a.cmp(b)),
                (Value::N(a), Value::N(b)) => Some(a.cmp(b)),
                (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
                _ => None,
            }
        };
        match self {
            Cond::Exists => item.is_some(),
            Cond::NotExists => item.is_none(),
            Cond::AttrExists(n) => attr(n).is_some(),
            Cond::AttrNotExists(n) => attr(n).is_none(),
            Cond::Eq(n, v) => cmp(n, v) == Some(Ordering::Equal),
            // DynamoDB: `a <> v` is true when `a` is missing or of another type.
            Cond::Ne(n, v) => cmp(n, v) != Some(Ordering::Equal),
            Cond::Lt(n, v) => cmp(n, v) == Some(Ordering::Less),
            Cond::Le(n, v) => matches!(cmp(n, v), Some(Ordering::Less | Ordering::Equal)),
            Cond::Gt(n, v) => cmp(n, v) == Some(Ordering::Greater),
            Cond::Ge(n, v) => matches!(cmp(n, v), Some(Ordering::Greater | Ordering::Equal)),
            Cond::AttrLt(a, b) => match attr(b) {
                Some(bv) => cmp(a, bv) == Some(Ordering::Less),
                None => false,
            },
            Cond::And(cs) => cs.iter().all(|c| c.eval(item)),
            Cond::Or(cs) => cs.iter().any(|c| c.eval(item)),
        }
    }
}

/// An update of one item: `SET` values, `ADD` to numbers, `REMOVE` attributes. Like DynamoDB's
/// `UpdateItem`, it creates the item when it does not exist (unless a condition forbids it), and
/// `ADD` treats a missing number as zero, which is what makes it an atomic counter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Update {
    pub set: Vec<(String, Value)>,
    pub add: Vec<(String, i64)>,
    pub remove: Vec<String>,
}

impl Update {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn set(mut self, name: &str, v: impl Into<Value>) -> Self {
        self.set.push((name.to_owned(), v.into()));
        self
    }
    pub fn add(mut self, name: &str, n: i64) -> Self {
        self.add.push((name.to_owned(), n));
        self
    }
    pub fn remove(mut self, name: &str) -> Self {
        self.remove.push(name.to_owned());
        self
    }

    /// Applies the update to an item in memory (the embedded family's implementation).
    pub fn apply(&self, pk: &str, sk: &str, current: Option<Item>) -> Item {
        let mut item = current.unwrap_or_else(|| Item::new(pk, sk));
        for (n, v) in &self.set {
            item.0.insert(n.clone(), v.clone());
        }
        for (n, d) in &self.add {
            let cur = item.num(n).unwrap_or(0);
            item.0.insert(n.clone(), Value::N(cur + d));
        }
        for n in &self.remove {
            item.0.remove(n);
        }
        item
    }
}

/// Which key a query walks: the table's own (`pk`/`sk`) or the secondary index (`gsi1pk`/`gsi1sk`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Index {
    Table,
    Gsi1,
}

/// A condition on the sort key of a query.
#[derive(Debug, Clone, PartialEq)]
pub enum SkCond {
    BeginsWith(String),
    /// Inclusive on both ends, as DynamoDB's `BETWEEN`.
    Between(String, String),
    Lt(String),
    Le(String),
    Gt(String),
    Ge(String),
}

/// A query on one partition.
#[derive(Debug, Clone)]
pub struct Query {
    pub index: Index,
    pub pk: String,
    pub sk: Option<SkCond>,
    /// `true` walks the sort key ascending, `false` descending.
    pub forward: bool,
    pub limit: usize,
    /// Where the previous page ended (its [`Page::next`]).
    pub start: Option<Cursor>,
}

impl Query {
    pub fn table(pk: impl Into<String>) -> Self {
        Query { index: Index::Table, pk: pk.into(), sk: None, forward: true, limit: 100, start: None }
    }
    pub fn gsi1(pk: impl Into<String>) -> Self {
        Query { index: Index::Gsi1, ..Query::table(pk) }
    }
    pub fn sk(mut self, c: SkCond) -> Self {
        self.sk = Some(c);
        self
    }
    pub fn backward(mut self) -> Self {
        self.forward = false;
        self
    }
    pub fn limit(mut self, n: usize) -> Self {
        self.limit = n;
        self
    }
    pub fn start(mut self, c: Option<Cursor>) -> Self {
        self.start = c;
        self
    }
}

/// The key of the last item of a page: the table key, plus the index key for index queries.
/// Both families produce the same cursor for the same item, so cursors are portable; a cursor is
/// only valid for a query over the same partition of the same index ([`Cursor::check`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Cursor {
    pub pk: String,
    pub sk: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gsi1pk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gsi1sk: Option<String>,
}

impl Cursor {
    /// Checks that this cursor can start `q`: the same partition of the same index, and every key
    /// a non-empty string of at most 1,024 bytes (DynamoDB's sort key limit). What a client sends
    /// back as a cursor is untrusted, and DynamoDB would refuse a mismatched one as a malformed
    /// request, so both families refuse it here alike.
    pub fn check(&self, q: &Query) -> StoreResult<()> {
        let bad = |why: &str| Err(StoreError::InvalidCursor(why.to_owned()));
        let key_ok = |k: &str| !k.is_empty() && k.len() <= 1024;
        if !key_ok(&self.pk) || !key_ok(&self.sk) {
            return bad("a key is empty or too long");
        }
        match (q.index, &self.gsi1pk, &self.gsi1sk) {
            (Index::Table, None, None) if self.pk == q.pk => Ok(()),
            (Index::Gsi1, Some(gpk), Some(gsk)) if *gpk == q.pk && key_ok(gsk) => Ok(()),
            _ => bad("it belongs to another listing"),
        }
    }

    pub fn of(item: &Item, index: Index) -> Self {
        let idx = index == Index::Gsi1;
        Cursor {
            pk: item.pk().to_owned(),
            sk: item.sk().to_owned(),
            gsi1pk: idx.then(|| item.str(GSI1PK).unwrap_or_default().to_owned()),
            gsi1sk: idx.then(|| item.str(GSI1SK).unwrap_or_default().to_owned()),
        }
    }
}

/// One page of query results.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub items: Vec<Item>,
    /// Present when more items may follow; pass it as [`Query::start`] to continue.
    pub next: Option<Cursor>,
}

/// One write in a transaction.
#[derive(Debug, Clone)]
pub enum TxOp {
    Put {
        item: Item,
        cond: Option<Cond>,
    },
    Update {
        pk: String,
        sk: String,
        update: Update,
        cond: Option<Cond>,
    },
    Delete {
        pk: String,
        sk: String,
        cond: Option<Cond>,
    },
    /// Writes nothing; fails the transaction unless the condition holds.
    Check {
        pk: String,
        sk: String,
        cond: Cond,
    },
}

/// A key-value table with conditional writes, atomic counters, key queries and transactions.
#[async_trait]
pub trait Table: Send + Sync {
    async fn get(&self, pk: &str, sk: &str) -> StoreResult<Option<Item>>;
    /// Writes the whole item, replacing any previous one, if `cond` holds.
    async fn put(&self, item: Item, cond: Option<Cond>) -> StoreResult<()>;
    /// Applies `update` if `cond` holds and returns the item as it is afterwards.
    async fn update(&self, pk: &str, sk: &str, update: Update, cond: Option<Cond>) -> StoreResult<Item>;
    /// Deletes the item if `cond` holds and returns what was deleted.
    async fn delete(&self, pk: &str, sk: &str, cond: Option<Cond>) -> StoreResult<Option<Item>>;
    /// Reads one page of a partition, in sort-key order.
    async fn query(&self, q: Query) -> StoreResult<Page>;
    /// Applies every operation or none. At most 100 operations, each on a different item.
    async fn transact(&self, ops: Vec<TxOp>) -> StoreResult<()>;
}

/// The key of an item: its partition and sort key.
pub type ItemKey = (String, String);

/// A [`Table`] that can also be read whole, page by page, to copy it to the other family
/// (`imghost migrate`). Kept out of `Table`: request paths hold a plain `Table`, so none of them
/// can Scan, which DynamoDB bills by the size of the whole table.
#[async_trait]
pub trait ScanTable: Table {
    /// Up to `limit` items that come after `after` in the family's own order (the families'
    /// orders differ), and the key to go on from: `None` once the table is exhausted. An item
    /// present for the whole scan is returned exactly once.
    async fn scan(&self, after: Option<ItemKey>, limit: usize) -> StoreResult<(Vec<Item>, Option<ItemKey>)>;
}

/// [`Objects`] that can also be listed, to copy them to the other family (`imghost migrate`).
#[async_trait]
pub trait ListObjects: Objects {
    /// Up to `limit` keys greater than `after`, in byte order as S3 lists them; fewer only when
    /// no more keys follow.
    async fn list(&self, after: Option<&str>, limit: usize) -> StoreResult<Vec<String>>;
}

// ---------------------------------------------------------------------------------------------
// Queue
// ---------------------------------------------------------------------------------------------

/// A message received from a queue. It stays invisible to other receivers until its visibility
/// timeout passes; [`Queue::ack`] removes it for good.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub message_id: String,
    pub receipt: String,
    pub body: String,
    /// How many times this message has been received, this time included.
    pub receive_count: u32,
}

/// A durable at-least-once queue, like SQS standard queues.
#[async_trait]
pub trait Queue: Send + Sync {
    /// Sends up to 10 messages at once.
    async fn send_batch(&self, bodies: &[String]) -> StoreResult<()>;
    /// Receives up to `max` visible messages (at most 10) and hides them for `visibility`.
    async fn receive(&self, max: usize, visibility: Duration) -> StoreResult<Vec<Delivery>>;
    /// Deletes a received message.
    async fn ack(&self, receipt: &str) -> StoreResult<()>;
    /// Makes a received message visible again after `delay` (for back-off).
    async fn retry_after(&self, receipt: &str, delay: Duration) -> StoreResult<()>;
}

impl dyn Queue {
    pub async fn send(&self, body: String) -> StoreResult<()> {
        self.send_batch(std::slice::from_ref(&body)).await
    }
}
