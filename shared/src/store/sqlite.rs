//! The embedded family's [`Table`] and [`Queue`]: one SQLite database file holds the table and
//! every queue, so the local runner keeps all of its durable state in one place.
//!
//! The table reproduces DynamoDB's semantics rather than SQL's: items are stored whole as JSON in
//! DynamoDB's typed attribute form, conditions are evaluated in Rust with [`Cond::eval`] inside a
//! `BEGIN IMMEDIATE` transaction (so the read and the write it guards are atomic, also against
//! other processes sharing the file), and the request validations DynamoDB performs are repeated
//! here so that code which works locally does not fail on AWS with a `ValidationException`.
//!
//! The queue reproduces an SQS standard queue with a redrive policy: visibility timeouts, a fresh
//! receipt per receive (only the newest receipt acts on the message), and dead-lettering of
//! messages received more than `max_receives` times.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params, params_from_iter};

use super::rules::{
    invalid, random_hex, tx_key, validate_item, validate_key, validate_query, validate_transaction, validate_update,
    visibility_secs,
};
use super::{
    Cond, Cursor, Delivery, GSI1PK, GSI1SK, Index, Item, ItemKey, Page, Query, Queue, ScanTable, SkCond, StoreError,
    StoreResult, Table, TxOp, Update, Value,
};

/// DynamoDB's limit on the size of one item.
const MAX_ITEM_BYTES: usize = 400 * 1024;
/// SQS's limit on the size of one message body.
const MAX_MESSAGE_BYTES: usize = 256 * 1024;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS items (
    pk TEXT NOT NULL,
    sk TEXT NOT NULL,
    gsi1pk TEXT NULL,
    gsi1sk TEXT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (pk, sk)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS items_gsi1 ON items (gsi1pk, gsi1sk, pk, sk);

CREATE TABLE IF NOT EXISTS queue_messages (
    id INTEGER PRIMARY KEY,
    queue TEXT NOT NULL,
    message_id TEXT NOT NULL,
    body TEXT NOT NULL,
    visible_at_ms INTEGER NOT NULL,
    receive_count INTEGER NOT NULL,
    receipt TEXT NULL,
    created_at_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS queue_messages_visible ON queue_messages (queue, visible_at_ms, id);
CREATE INDEX IF NOT EXISTS queue_messages_receipt ON queue_messages (queue, receipt);

CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY,
    queue TEXT NOT NULL,
    message_id TEXT NOT NULL,
    body TEXT NOT NULL,
    receive_count INTEGER NOT NULL,
    created_at_ms INTEGER NOT NULL,
    dead_at_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS dead_letters_queue ON dead_letters (queue, id);
";

fn sql_err(e: rusqlite::Error) -> StoreError {
    StoreError::backend(format!("sqlite: {e}"))
}

// ---------------------------------------------------------------------------------------------
// The database
// ---------------------------------------------------------------------------------------------

/// One SQLite database shared by a [`SqliteTable`] and any number of [`SqliteQueue`]s.
///
/// All work goes through one connection behind a mutex, on tokio's blocking pool: SQLite
/// serialises writers anyway, and a single connection keeps `BEGIN IMMEDIATE` from ever waiting
/// on ourselves. Other processes opening the same file are handled by the busy timeout.
#[derive(Clone)]
pub struct SqliteDb {
    conn: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for SqliteDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteDb").finish_non_exhaustive()
    }
}

impl SqliteDb {
    /// Opens (creating if needed) the database file at `path` and its schema.
    pub fn open(path: &Path) -> StoreResult<Self> {
        let conn =
            Connection::open(path).map_err(|e| StoreError::backend(format!("sqlite: open {}: {e}", path.display())))?;
        // WAL lets readers in other processes proceed while we write, and with synchronous=NORMAL
        // a committed transaction survives a crash of the process (only a power loss may drop the
        // last few commits), which is the durability the local runner needs.
        conn.pragma_update(None, "journal_mode", "WAL").map_err(sql_err)?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(sql_err)?;
        Self::init(conn)
    }

    /// Opens a private in-memory database, for tests that need no file.
    pub fn open_in_memory() -> StoreResult<Self> {
        Self::init(Connection::open_in_memory().map_err(sql_err)?)
    }

    fn init(conn: Connection) -> StoreResult<Self> {
        conn.busy_timeout(Duration::from_secs(5)).map_err(sql_err)?;
        conn.execute_batch(SCHEMA).map_err(sql_err)?;
        Ok(SqliteDb { conn: Arc::new(Mutex::new(conn)) })
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while the lock was held cannot leave the database half-written: an open
        // `Transaction` rolls back when it is dropped during unwinding. So a poisoned lock is safe
        // to take over, and doing so keeps one bug from disabling all storage.
        self.conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction on the blocking pool, committing when it
    /// returns `Ok` and rolling back otherwise.
    async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> StoreResult<T> + Send + 'static,
    {
        let db = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = db.lock();
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql_err)?;
            let out = f(&tx)?;
            tx.commit().map_err(sql_err)?;
            Ok(out)
        })
        .await
        .map_err(|e| StoreError::backend(format!("sqlite task failed: {e}")))?
    }

    /// Runs a read-only `f` on the blocking pool.
    async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let db = self.clone();
        tokio::task::spawn_blocking(move || f(&db.lock()))
            .await
            .map_err(|e| StoreError::backend(format!("sqlite task failed: {e}")))?
    }
}

// ---------------------------------------------------------------------------------------------
// Item encoding
// ---------------------------------------------------------------------------------------------

/// Encodes an item's attributes as JSON in DynamoDB's typed form, e.g. `{"n": {"N": "12"}}`.
fn encode_item(item: &Item) -> StoreResult<String> {
    let map: serde_json::Map<String, serde_json::Value> = item
        .0
        .iter()
        .map(|(name, v)| {
            let typed = match v {
                Value::S(s) => serde_json::json!({ "S": s }),
                Value::N(n) => serde_json::json!({ "N": n.to_string() }),
                Value::Bool(b) => serde_json::json!({ "BOOL": b }),
            };
            (name.clone(), typed)
        })
        .collect();
    serde_json::to_string(&map).map_err(StoreError::backend)
}

fn decode_item(body: &str) -> StoreResult<Item> {
    let map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(body).map_err(|e| StoreError::backend(format!("corrupt item body: {e}")))?;
    let mut item = Item::default();
    for (name, typed) in map {
        let bad = || StoreError::backend(format!("corrupt item body: attribute {name:?} is {typed}"));
        let value = if let Some(s) = typed.get("S").and_then(|v| v.as_str()) {
            Value::S(s.to_owned())
        } else if let Some(n) = typed.get("N").and_then(|v| v.as_str()) {
            Value::N(n.parse().map_err(|_| bad())?)
        } else if let Some(b) = typed.get("BOOL").and_then(|v| v.as_bool()) {
            Value::Bool(b)
        } else {
            return Err(bad());
        };
        item.0.insert(name, value);
    }
    Ok(item)
}

/// Applies an update the way DynamoDB does, including its refusal to `ADD` to a non-number.
fn apply_update(pk: &str, sk: &str, update: &Update, current: Option<Item>) -> StoreResult<Item> {
    if let Some(item) = &current {
        for (name, _) in &update.add {
            if item.get(name).is_some_and(|v| v.as_i64().is_none()) {
                return Err(invalid(format!("ADD to attribute {name}, which is not a number")));
            }
        }
    }
    let item = update.apply(pk, sk, current);
    validate_item(&item)?;
    Ok(item)
}

// ---------------------------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------------------------

/// The DynamoDB-shaped single table, stored in the `items` table of a [`SqliteDb`].
#[derive(Clone, Debug)]
pub struct SqliteTable {
    db: SqliteDb,
}

impl SqliteTable {
    pub fn new(db: SqliteDb) -> Self {
        SqliteTable { db }
    }
}

fn read_item(tx: &Connection, pk: &str, sk: &str) -> StoreResult<Option<Item>> {
    let body: Option<String> = tx
        .query_row("SELECT body FROM items WHERE pk = ?1 AND sk = ?2", params![pk, sk], |r| r.get(0))
        .optional()
        .map_err(sql_err)?;
    body.as_deref().map(decode_item).transpose()
}

fn write_item(tx: &Connection, item: &Item) -> StoreResult<()> {
    let body = encode_item(item)?;
    if body.len() > MAX_ITEM_BYTES {
        return Err(invalid(format!("item is larger than {MAX_ITEM_BYTES} bytes")));
    }
    // Like a sparse DynamoDB index, an item is in gsi1 only when it has both index key attributes.
    let (gpk, gsk) = match (item.str(GSI1PK), item.str(GSI1SK)) {
        (Some(p), Some(s)) => (Some(p), Some(s)),
        _ => (None, None),
    };
    tx.execute(
        "INSERT OR REPLACE INTO items (pk, sk, gsi1pk, gsi1sk, body) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![item.pk(), item.sk(), gpk, gsk, body],
    )
    .map_err(sql_err)?;
    Ok(())
}

fn delete_item(tx: &Connection, pk: &str, sk: &str) -> StoreResult<()> {
    tx.execute("DELETE FROM items WHERE pk = ?1 AND sk = ?2", params![pk, sk]).map_err(sql_err)?;
    Ok(())
}

fn check(cond: Option<&Cond>, current: Option<&Item>, index: Option<usize>) -> StoreResult<()> {
    match cond {
        Some(c) if !c.eval(current) => Err(StoreError::ConditionFailed { index }),
        _ => Ok(()),
    }
}

#[async_trait]
impl Table for SqliteTable {
    async fn get(&self, pk: &str, sk: &str) -> StoreResult<Option<Item>> {
        validate_key(pk, sk)?;
        let (pk, sk) = (pk.to_owned(), sk.to_owned());
        self.db.read(move |c| read_item(c, &pk, &sk)).await
    }

    async fn put(&self, item: Item, cond: Option<Cond>) -> StoreResult<()> {
        validate_item(&item)?;
        self.db
            .write(move |tx| {
                let current = read_item(tx, item.pk(), item.sk())?;
                check(cond.as_ref(), current.as_ref(), None)?;
                write_item(tx, &item)
            })
            .await
    }

    async fn update(&self, pk: &str, sk: &str, update: Update, cond: Option<Cond>) -> StoreResult<Item> {
        validate_key(pk, sk)?;
        validate_update(&update)?;
        let (pk, sk) = (pk.to_owned(), sk.to_owned());
        self.db
            .write(move |tx| {
                let current = read_item(tx, &pk, &sk)?;
                check(cond.as_ref(), current.as_ref(), None)?;
                let item = apply_update(&pk, &sk, &update, current)?;
                write_item(tx, &item)?;
                Ok(item)
            })
            .await
    }

    async fn delete(&self, pk: &str, sk: &str, cond: Option<Cond>) -> StoreResult<Option<Item>> {
        validate_key(pk, sk)?;
        let (pk, sk) = (pk.to_owned(), sk.to_owned());
        self.db
            .write(move |tx| {
                let current = read_item(tx, &pk, &sk)?;
                check(cond.as_ref(), current.as_ref(), None)?;
                if current.is_some() {
                    delete_item(tx, &pk, &sk)?;
                }
                Ok(current)
            })
            .await
    }

    async fn query(&self, q: Query) -> StoreResult<Page> {
        validate_query(&q)?;
        self.db.read(move |c| run_query(c, &q)).await
    }

    async fn transact(&self, ops: Vec<TxOp>) -> StoreResult<()> {
        validate_transaction(&ops)?;
        if ops.is_empty() {
            return Ok(());
        }
        self.db
            .write(move |tx| {
                // Conditions are checked against the state before the transaction, as DynamoDB
                // does; since every operation is on a different item, checking each one just
                // before its own write sees exactly that state.
                for (i, op) in ops.iter().enumerate() {
                    let (pk, sk) = tx_key(op);
                    let current = read_item(tx, pk, sk)?;
                    match op {
                        TxOp::Put { item, cond } => {
                            check(cond.as_ref(), current.as_ref(), Some(i))?;
                            write_item(tx, item)?;
                        }
                        TxOp::Update { update, cond, .. } => {
                            check(cond.as_ref(), current.as_ref(), Some(i))?;
                            let item = apply_update(pk, sk, update, current)?;
                            write_item(tx, &item)?;
                        }
                        TxOp::Delete { cond, .. } => {
                            check(cond.as_ref(), current.as_ref(), Some(i))?;
                            delete_item(tx, pk, sk)?;
                        }
                        TxOp::Check { cond, .. } => check(Some(cond), current.as_ref(), Some(i))?,
                    }
                }
                Ok(())
            })
            .await
    }
}

#[async_trait]
impl ScanTable for SqliteTable {
    async fn scan(&self, after: Option<ItemKey>, limit: usize) -> StoreResult<(Vec<Item>, Option<ItemKey>)> {
        let limit = limit.max(1);
        self.db
            .read(move |c| {
                // Key order: the primary key's own index makes each page one range read.
                let (pk, sk) = after.unwrap_or_default();
                let mut stmt = c
                    .prepare_cached("SELECT body FROM items WHERE (pk, sk) > (?1, ?2) ORDER BY pk, sk LIMIT ?3")
                    .map_err(sql_err)?;
                let bodies = stmt
                    .query_map(params![pk, sk, i64::try_from(limit).unwrap_or(i64::MAX)], |r| r.get::<_, String>(0))
                    .map_err(sql_err)?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(sql_err)?;
                let items = bodies.iter().map(|b| decode_item(b)).collect::<StoreResult<Vec<_>>>()?;
                let next = (items.len() == limit)
                    .then(|| items.last().map(|i| (i.pk().to_owned(), i.sk().to_owned())))
                    .flatten();
                Ok((items, next))
            })
            .await
    }
}

/// Runs one page of a query. Sort keys compare byte-wise (SQLite's BINARY collation on UTF-8
/// text), which is DynamoDB's ordering of string keys.
fn run_query(c: &Connection, q: &Query) -> StoreResult<Page> {
    let (pk_col, sk_col) = match q.index {
        Index::Table => ("pk", "sk"),
        Index::Gsi1 => ("gsi1pk", "gsi1sk"),
    };
    let mut sql = format!("SELECT body FROM items WHERE {pk_col} = ?");
    let mut args: Vec<SqlValue> = vec![SqlValue::Text(q.pk.clone())];
    let mut arg = |v: &str| {
        args.push(SqlValue::Text(v.to_owned()));
    };
    match &q.sk {
        None => {}
        Some(SkCond::BeginsWith(p)) => {
            // The lower bound lets SQLite seek in the index; the prefix test makes it exact.
            sql.push_str(&format!(" AND {sk_col} >= ? AND substr({sk_col}, 1, length(?)) = ?"));
            arg(p);
            arg(p);
            arg(p);
        }
        Some(SkCond::Between(lo, hi)) => {
            sql.push_str(&format!(" AND {sk_col} BETWEEN ? AND ?"));
            arg(lo);
            arg(hi);
        }
        Some(SkCond::Lt(v)) => {
            sql.push_str(&format!(" AND {sk_col} < ?"));
            arg(v);
        }
        Some(SkCond::Le(v)) => {
            sql.push_str(&format!(" AND {sk_col} <= ?"));
            arg(v);
        }
        Some(SkCond::Gt(v)) => {
            sql.push_str(&format!(" AND {sk_col} > ?"));
            arg(v);
        }
        Some(SkCond::Ge(v)) => {
            sql.push_str(&format!(" AND {sk_col} >= ?"));
            arg(v);
        }
    }
    let (cmp, dir) = if q.forward { (">", "ASC") } else { ("<", "DESC") };
    // The cursor comparison uses the same tuple as the ORDER BY, so a page starts exactly after
    // the previous page's last item, even when several items share an index sort key.
    match (q.index, &q.start) {
        (_, None) => {}
        (Index::Table, Some(c)) => {
            sql.push_str(&format!(" AND sk {cmp} ?"));
            arg(&c.sk);
        }
        (Index::Gsi1, Some(c)) => {
            sql.push_str(&format!(" AND (gsi1sk, pk, sk) {cmp} (?, ?, ?)"));
            arg(c.gsi1sk.as_deref().unwrap_or_default());
            arg(&c.pk);
            arg(&c.sk);
        }
    }
    match q.index {
        Index::Table => sql.push_str(&format!(" ORDER BY sk {dir}")),
        Index::Gsi1 => sql.push_str(&format!(" ORDER BY gsi1sk {dir}, pk {dir}, sk {dir}")),
    }
    sql.push_str(" LIMIT ?");
    args.push(SqlValue::Integer(i64::try_from(q.limit).unwrap_or(i64::MAX)));

    let mut stmt = c.prepare_cached(&sql).map_err(sql_err)?;
    let bodies = stmt
        .query_map(params_from_iter(args), |r| r.get::<_, String>(0))
        .map_err(sql_err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql_err)?;
    let items = bodies.iter().map(|b| decode_item(b)).collect::<StoreResult<Vec<_>>>()?;
    // Both families report a next page exactly when this one is full, so callers see the same
    // pages from either (DynamoDB itself may or may not send a key after an exactly-full page).
    let next = match items.last() {
        Some(last) if items.len() == q.limit => Some(Cursor::of(last, q.index)),
        _ => None,
    };
    Ok(Page { items, next })
}

// ---------------------------------------------------------------------------------------------
// The queue
// ---------------------------------------------------------------------------------------------

fn now_ms() -> i64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

/// A durable queue in a [`SqliteDb`], with SQS standard-queue semantics and a redrive policy.
#[derive(Clone, Debug)]
pub struct SqliteQueue {
    db: SqliteDb,
    name: String,
    max_receives: u32,
}

impl SqliteQueue {
    /// A queue named `name` in `db`. A message that would be received for the
    /// `max_receives + 1`-th time is moved to the dead letters instead, like SQS's
    /// `maxReceiveCount`; `0` means messages are never dead-lettered.
    pub fn new(db: SqliteDb, name: &str, max_receives: u32) -> Self {
        SqliteQueue { db, name: name.to_owned(), max_receives }
    }

    /// How many of this queue's messages have been dead-lettered.
    pub fn dead_letter_count(&self) -> StoreResult<usize> {
        let n: i64 = self
            .db
            .lock()
            .query_row("SELECT count(*) FROM dead_letters WHERE queue = ?1", params![self.name], |r| r.get(0))
            .map_err(sql_err)?;
        Ok(usize::try_from(n).unwrap_or_default())
    }

    /// How many messages are waiting or in flight.
    pub fn len(&self) -> StoreResult<usize> {
        let n: i64 = self
            .db
            .lock()
            .query_row("SELECT count(*) FROM queue_messages WHERE queue = ?1", params![self.name], |r| r.get(0))
            .map_err(sql_err)?;
        Ok(usize::try_from(n).unwrap_or_default())
    }

    pub fn is_empty(&self) -> StoreResult<bool> {
        Ok(self.len()? == 0)
    }

    /// Makes every in-flight message visible again at once, invalidating its receipt. Only for
    /// a process that owns the data directory exclusively and starts after a crash: the
    /// messages its predecessor had received would otherwise wait out their visibility timeout.
    pub fn release_in_flight(&self) -> StoreResult<usize> {
        let n = self
            .db
            .lock()
            .execute(
                "UPDATE queue_messages SET visible_at_ms = 0, receipt = NULL WHERE queue = ?1 AND receipt IS NOT NULL",
                params![self.name],
            )
            .map_err(sql_err)?;
        Ok(n)
    }

    /// The bodies of this queue's dead letters, oldest first, for inspection.
    pub fn dead_letters(&self) -> StoreResult<Vec<String>> {
        let conn = self.db.lock();
        let mut stmt =
            conn.prepare_cached("SELECT body FROM dead_letters WHERE queue = ?1 ORDER BY id").map_err(sql_err)?;
        let rows = stmt.query_map(params![self.name], |r| r.get(0)).map_err(sql_err)?;
        rows.collect::<Result<Vec<String>, _>>().map_err(sql_err)
    }
}

#[async_trait]
impl Queue for SqliteQueue {
    async fn send_batch(&self, bodies: &[String]) -> StoreResult<()> {
        if bodies.is_empty() {
            return Ok(());
        }
        if let Some(b) = bodies.iter().find(|b| b.len() > MAX_MESSAGE_BYTES) {
            return Err(invalid(format!("message of {} bytes exceeds {MAX_MESSAGE_BYTES}", b.len())));
        }
        let ids = bodies.iter().map(|_| message_id()).collect::<StoreResult<Vec<_>>>()?;
        let (name, bodies) = (self.name.clone(), bodies.to_vec());
        self.db
            .write(move |tx| {
                let now = now_ms();
                let mut stmt = tx
                    .prepare_cached(
                        "INSERT INTO queue_messages
                         (queue, message_id, body, visible_at_ms, receive_count, receipt, created_at_ms)
                         VALUES (?1, ?2, ?3, ?4, 0, NULL, ?4)",
                    )
                    .map_err(sql_err)?;
                for (id, body) in ids.iter().zip(&bodies) {
                    stmt.execute(params![name, id, body, now]).map_err(sql_err)?;
                }
                Ok(())
            })
            .await
    }

    async fn receive(&self, max: usize, visibility: Duration) -> StoreResult<Vec<Delivery>> {
        let max = max.min(10);
        if max == 0 {
            return Ok(Vec::new());
        }
        let hide_ms = i64::try_from(visibility_secs(visibility) * 1000).unwrap_or(i64::MAX);
        let (name, max_receives) = (self.name.clone(), self.max_receives);
        self.db
            .write(move |tx| {
                let now = now_ms();
                let mut out = Vec::new();
                // Dead-lettering removes rows from the candidates, so select again until the
                // batch is full or no visible message is left. Each round starts after the last
                // row already looked at, so that a message delivered with a zero visibility
                // timeout is not delivered twice in one batch.
                let mut after_id = 0i64;
                while out.len() < max {
                    let candidates: Vec<(i64, String, String, u32)> = {
                        let mut stmt = tx
                            .prepare_cached(
                                "SELECT id, message_id, body, receive_count FROM queue_messages
                                 WHERE queue = ?1 AND visible_at_ms <= ?2 AND id > ?4
                                 ORDER BY id LIMIT ?3",
                            )
                            .map_err(sql_err)?;
                        let rows = stmt
                            .query_map(params![name, now, (max - out.len()) as i64, after_id], |r| {
                                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                            })
                            .map_err(sql_err)?;
                        rows.collect::<Result<_, _>>().map_err(sql_err)?
                    };
                    if candidates.is_empty() {
                        break;
                    }
                    for (id, message_id, body, count) in candidates {
                        after_id = id;
                        let receive_count = count.saturating_add(1);
                        if max_receives > 0 && receive_count > max_receives {
                            tracing::warn!(queue = %name, %message_id, receives = count, "moving message to dead letters");
                            tx.execute(
                                "INSERT INTO dead_letters (queue, message_id, body, receive_count, created_at_ms, dead_at_ms)
                                 SELECT queue, message_id, body, receive_count, created_at_ms, ?2
                                 FROM queue_messages WHERE id = ?1",
                                params![id, now],
                            )
                            .map_err(sql_err)?;
                            tx.execute("DELETE FROM queue_messages WHERE id = ?1", params![id]).map_err(sql_err)?;
                            continue;
                        }
                        let receipt = format!("{id}-{}", random_hex(16)?);
                        tx.execute(
                            "UPDATE queue_messages SET receipt = ?2, receive_count = ?3, visible_at_ms = ?4 WHERE id = ?1",
                            params![id, receipt, receive_count, now.saturating_add(hide_ms)],
                        )
                        .map_err(sql_err)?;
                        out.push(Delivery { message_id, receipt, body, receive_count });
                    }
                }
                Ok(out)
            })
            .await
    }

    async fn ack(&self, receipt: &str) -> StoreResult<()> {
        let (name, receipt) = (self.name.clone(), receipt.to_owned());
        // Only the newest receipt matches: each receive overwrites it, so an old receipt (the
        // message was received again since) deletes nothing, as in SQS.
        self.db
            .write(move |tx| {
                tx.execute("DELETE FROM queue_messages WHERE queue = ?1 AND receipt = ?2", params![name, receipt])
                    .map_err(sql_err)?;
                Ok(())
            })
            .await
    }

    async fn retry_after(&self, receipt: &str, delay: Duration) -> StoreResult<()> {
        let (name, receipt) = (self.name.clone(), receipt.to_owned());
        let delay_ms = i64::try_from(visibility_secs(delay) * 1000).unwrap_or(i64::MAX);
        self.db
            .write(move |tx| {
                tx.execute(
                    "UPDATE queue_messages SET visible_at_ms = ?3 WHERE queue = ?1 AND receipt = ?2",
                    params![name, receipt, now_ms().saturating_add(delay_ms)],
                )
                .map_err(sql_err)?;
                Ok(())
            })
            .await
    }
}

/// A message id in the shape of an SQS one (a UUID), so logs look the same on both families.
fn message_id() -> StoreResult<String> {
    let h = random_hex(16)?;
    Ok(format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32]))
}
