//! The storage contract: one set of test bodies, run against both adapter families.
//!
//! Each case takes a port (`&dyn Table`, `&dyn Objects`, `&dyn Queue`, or one of the whole-store
//! readers `&dyn ScanTable` and `&dyn ListObjects`) and knows nothing of the family behind it.
//! The cases live in one module per port; this file is the harness that builds each family's
//! adapters and runs the cases on them. The [`contract!`] macro runs every case twice: in module
//! `sqlite` against the embedded family (SQLite and files) and in module `aws` against the AWS
//! family talking to moto. A behaviour only one family can offer is tested in the
//! `embedded_only` module of its port's file, with a comment saying why.

#[path = "../support/mod.rs"]
mod support;

mod counters;
mod objects;
mod query;
mod queue;
mod scan;
mod table;

use imghost::store::aws::{DynamoTable, S3Objects, SqsQueue, provision};
use imghost::store::fs::FsObjects;
use imghost::store::sqlite::{SqliteDb, SqliteQueue, SqliteTable};
use imghost::store::{ListObjects, Objects, Queue, ScanTable, StoreError, Table};
use tempfile::TempDir;

/// A port under test and whatever must live as long as it (the temporary directory of the
/// embedded family).
struct Fixture<T: ?Sized> {
    port: Box<T>,
    _dir: Option<TempDir>,
}

/// Builds the embedded family's adapters, each on its own temporary directory.
mod embedded {
    use super::*;

    pub async fn table() -> Fixture<dyn Table> {
        let dir = tempfile::tempdir().unwrap();
        let db = SqliteDb::open(&dir.path().join("state.db")).unwrap();
        Fixture { port: Box::new(SqliteTable::new(db)), _dir: Some(dir) }
    }

    pub async fn objects() -> Fixture<dyn Objects> {
        let dir = tempfile::tempdir().unwrap();
        Fixture { port: Box::new(FsObjects::new(dir.path().join("objects"))), _dir: Some(dir) }
    }

    pub async fn queue() -> Fixture<dyn Queue> {
        let dir = tempfile::tempdir().unwrap();
        let db = SqliteDb::open(&dir.path().join("state.db")).unwrap();
        Fixture { port: Box::new(SqliteQueue::new(db, "jobs", 0)), _dir: Some(dir) }
    }

    pub async fn scan() -> Fixture<dyn ScanTable> {
        let dir = tempfile::tempdir().unwrap();
        let db = SqliteDb::open(&dir.path().join("state.db")).unwrap();
        Fixture { port: Box::new(SqliteTable::new(db)), _dir: Some(dir) }
    }

    pub async fn listing() -> Fixture<dyn ListObjects> {
        let dir = tempfile::tempdir().unwrap();
        Fixture { port: Box::new(FsObjects::new(dir.path().join("objects"))), _dir: Some(dir) }
    }

    /// The database in `dir`, for the `embedded_only` tests: they build the concrete adapters
    /// themselves, to reach settings and methods the ports lack or to open one database twice.
    pub fn db(dir: &TempDir) -> SqliteDb {
        SqliteDb::open(&dir.path().join("state.db")).unwrap()
    }
}

/// Builds the AWS family's adapters on fresh resources in the shared moto server.
mod hosted {
    use super::*;
    use support::{moto, unique};

    pub async fn table() -> Fixture<dyn Table> {
        let client = moto().dynamodb();
        let name = unique("table");
        provision::ensure_table(&client, &name).await.unwrap();
        Fixture { port: Box::new(DynamoTable::new(client, name)), _dir: None }
    }

    pub async fn objects() -> Fixture<dyn Objects> {
        let client = moto().s3();
        let name = unique("bucket");
        provision::ensure_bucket(&client, &name).await.unwrap();
        Fixture { port: Box::new(S3Objects::new(client, name)), _dir: None }
    }

    pub async fn queue() -> Fixture<dyn Queue> {
        let client = moto().sqs();
        let url = provision::ensure_queue(&client, &unique("queue")).await.unwrap();
        Fixture { port: Box::new(SqsQueue::new(client, url)), _dir: None }
    }

    pub async fn scan() -> Fixture<dyn ScanTable> {
        let client = moto().dynamodb();
        let name = unique("table");
        provision::ensure_table(&client, &name).await.unwrap();
        Fixture { port: Box::new(DynamoTable::new(client, name)), _dir: None }
    }

    pub async fn listing() -> Fixture<dyn ListObjects> {
        let client = moto().s3();
        let name = unique("bucket");
        provision::ensure_bucket(&client, &name).await.unwrap();
        Fixture { port: Box::new(S3Objects::new(client, name)), _dir: None }
    }
}

/// Generates, for every listed case, one test per family: `sqlite::<case>` and `aws::<case>`.
///
/// Each entry reads `fixture => module::{cases}`: the cases in `module` each take the port that
/// `embedded::fixture` and `hosted::fixture` build. The fixture and the module are named apart
/// because a port's cases may be split by subject (queries and statistics counters are tested in
/// their own modules, on a table). Every case lands in one `sqlite` and one `aws` module, so case
/// names must be unique across the port modules; the compiler refuses a clash.
macro_rules! contract {
    ($($fixture:ident => $module:ident::{$($case:ident),* $(,)?}),* $(,)?) => {
        mod sqlite {
            use super::*;
            $($(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let fixture = embedded::$fixture().await;
                    $module::$case(&*fixture.port).await;
                }
            )*)*
        }
        mod aws {
            use super::*;
            $($(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let fixture = hosted::$fixture().await;
                    $module::$case(&*fixture.port).await;
                }
            )*)*
        }
    };
}

contract! {
    table => table::{
        get_missing,
        put_get_roundtrip_of_every_value_type,
        put_not_exists_succeeds_once,
        update_creates_missing_item,
        update_set_add_remove,
        update_with_nothing_to_change,
        invalid_writes_are_rejected,
        condition_matrix,
        delete_with_condition_returns_old_item,
        transact_all_or_nothing_reports_failing_index,
        transact_rejects_invalid_requests,
        concurrent_capped_counter,
        concurrent_put_not_exists_has_one_winner,
    },
    table => query::{
        query_sort_key_conditions_both_directions,
        query_orders_sort_keys_bytewise,
        query_pagination_reaches_every_item_once,
        gsi1_query_ordering_and_sparse_index,
        gsi1_pagination_with_equal_index_keys,
        cursors_from_another_listing_are_refused,
    },
    objects => objects::{
        object_roundtrip,
        object_overwrite_replaces_bytes_and_type,
        object_missing,
        object_empty,
        object_ranges_are_read_in_bounded_chunks,
    },
    listing => objects::{listing_of_an_empty_store_is_empty, listing_pages_follow_byte_order},
    queue => queue::{
        queue_send_receive_ack,
        queue_visibility_timeout_redelivers,
        queue_retry_after,
        queue_ack_of_unknown_receipt_is_ok,
        queue_batches_longer_than_ten,
    },
    table => counters::{
        counters_start_empty_with_thirty_zero_days,
        counters_follow_adds_duplicates_and_removals,
        counters_window_is_thirty_utc_days_ending_today,
        counters_rank_at_most_ten_cameras_ties_by_name,
        counters_concurrent_changes_of_one_camera_are_exact,
        counters_do_not_move_when_the_guarded_write_fails,
    },
    scan => scan::{scan_of_an_empty_table_ends_at_once, scan_pages_reach_every_item_once},
}

/// Whether `r` failed on a condition: that of the operation at `index` of a transaction, or
/// with `None` that of a single write. Shared by the table and counter cases.
fn is_condition_failed(r: &Result<impl std::fmt::Debug, StoreError>, index: Option<usize>) -> bool {
    matches!(r, Err(StoreError::ConditionFailed { index: i }) if *i == index)
}
