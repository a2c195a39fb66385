//! The storage contract: one set of test bodies, run against both adapter families.
//!
//! Each case in [`cases`] takes a port (`&dyn Table`, `&dyn Objects` or `&dyn Queue`) and knows
//! nothing of the family behind it. The [`contract!`] macro runs every case twice: in module
//! `sqlite` against the embedded family (SQLite and files) and in module `aws` against the AWS
//! family talking to moto. A behaviour only one family can offer is tested in [`embedded_only`],
//! with a comment saying why.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use imghost::store::aws::{DynamoTable, S3Objects, SqsQueue, provision};
use imghost::store::fs::FsObjects;
use imghost::store::sqlite::{SqliteDb, SqliteQueue, SqliteTable};
use imghost::store::{
    Cond, Cursor, Delivery, Item, ListObjects, Objects, Query, Queue, ScanTable, SkCond, StoreError, Table, TxOp,
    Update,
};
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

    /// The statistics counters live in the table.
    pub async fn counters() -> Fixture<dyn Table> {
        table().await
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

    pub async fn counters() -> Fixture<dyn Table> {
        table().await
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

/// Generates, for every listed case of every port, one test per family:
/// `sqlite::<case>` and `aws::<case>`.
macro_rules! contract {
    ($($port:ident => [$($case:ident),* $(,)?]),* $(,)?) => {
        mod sqlite {
            use super::*;
            $($(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let fixture = embedded::$port().await;
                    cases::$port::$case(&*fixture.port).await;
                }
            )*)*
        }
        mod aws {
            use super::*;
            $($(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let fixture = hosted::$port().await;
                    cases::$port::$case(&*fixture.port).await;
                }
            )*)*
        }
    };
}

contract! {
    table => [
        get_missing,
        put_get_roundtrip_of_every_value_type,
        put_not_exists_succeeds_once,
        update_creates_missing_item,
        update_set_add_remove,
        update_with_nothing_to_change,
        invalid_writes_are_rejected,
        condition_matrix,
        delete_with_condition_returns_old_item,
        query_sort_key_conditions_both_directions,
        query_orders_sort_keys_bytewise,
        query_pagination_reaches_every_item_once,
        gsi1_query_ordering_and_sparse_index,
        gsi1_pagination_with_equal_index_keys,
        cursors_from_another_listing_are_refused,
        transact_all_or_nothing_reports_failing_index,
        transact_rejects_invalid_requests,
        concurrent_capped_counter,
        concurrent_put_not_exists_has_one_winner,
    ],
    objects => [
        object_roundtrip,
        object_overwrite_replaces_bytes_and_type,
        object_missing,
        object_empty,
    ],
    queue => [
        queue_send_receive_ack,
        queue_visibility_timeout_redelivers,
        queue_retry_after,
        queue_ack_of_unknown_receipt_is_ok,
        queue_batches_longer_than_ten,
    ],
    counters => [
        counters_start_empty_with_thirty_zero_days,
        counters_follow_adds_duplicates_and_removals,
        counters_window_is_thirty_utc_days_ending_today,
        counters_rank_at_most_ten_cameras_ties_by_name,
        counters_concurrent_changes_of_one_camera_are_exact,
        counters_do_not_move_when_the_guarded_write_fails,
    ],
    scan => [scan_of_an_empty_table_ends_at_once, scan_pages_reach_every_item_once],
    listing => [listing_of_an_empty_store_is_empty, listing_pages_follow_byte_order],
}

fn is_condition_failed(r: &Result<impl std::fmt::Debug, StoreError>, index: Option<usize>) -> bool {
    matches!(r, Err(StoreError::ConditionFailed { index: i }) if *i == index)
}

mod cases {
    pub(crate) use super::counter_cases as counters;

    /// Reading a whole store, for `imghost migrate`.
    pub mod scan {
        use super::super::*;

        pub async fn scan_of_an_empty_table_ends_at_once(t: &dyn ScanTable) {
            // Given an empty table, when scanning it, then there is nothing and nowhere to go on.
            let (items, next) = t.scan(None, 10).await.unwrap();
            assert!(items.is_empty());
            assert_eq!(next, None);
        }

        pub async fn scan_pages_reach_every_item_once(t: &dyn ScanTable) {
            // Given 23 items over five partitions, some in the index.
            let mut written = BTreeSet::new();
            for n in 0..23 {
                let (pk, sk) = (format!("part#{}", n % 5), format!("item#{n:02}"));
                let mut item = Item::new(pk.clone(), sk.clone()).with("n", n);
                if n % 3 == 0 {
                    item = item.with("gsi1pk", "all").with("gsi1sk", sk.clone());
                }
                t.put(item, None).await.unwrap();
                written.insert((pk, sk));
            }

            // When scanning in pages of 4 until the end.
            let (mut seen, mut pages, mut after) = (Vec::new(), 0, None);
            loop {
                let (items, next) = t.scan(after, 4).await.unwrap();
                assert!(items.len() <= 4, "a page holds at most the limit");
                pages += 1;
                for item in items {
                    assert_eq!(item.num("n").map(|n| n % 5), item.pk()[5..].parse().ok(), "whole items come back");
                    seen.push((item.pk().to_owned(), item.sk().to_owned()));
                }
                after = next;
                if after.is_none() {
                    break;
                }
                assert!(pages < 50, "the scan must end");
            }

            // Then every item came back exactly once.
            let unique: BTreeSet<_> = seen.iter().cloned().collect();
            assert_eq!(seen.len(), unique.len(), "no item twice");
            assert_eq!(unique, written);
            assert!(pages >= 6, "23 items in pages of 4 take at least six pages, not {pages}");
        }
    }

    /// Listing objects, for `imghost migrate`.
    pub mod listing {
        use super::super::*;

        pub async fn listing_of_an_empty_store_is_empty(o: &dyn ListObjects) {
            assert!(o.list(None, 10).await.unwrap().is_empty());
        }

        pub async fn listing_pages_follow_byte_order(o: &dyn ListObjects) {
            // Given keys where folder and file order differ (`a-b` sorts before `a/b` in bytes).
            let keys = ["b", "a/b", "a-b", "a/c/d", "originals/x.jpg", "variants/x/small.webp", "ü", "a/c/e"];
            for k in keys {
                o.put(k, Bytes::from_static(b"x"), "image/jpeg").await.unwrap();
            }
            let mut expected: Vec<&str> = keys.to_vec();
            expected.sort();

            // When listing in pages of 3 from the start.
            let mut seen = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let page = o.list(after.as_deref(), 3).await.unwrap();
                seen.extend(page.iter().cloned());
                if page.len() < 3 {
                    break;
                }
                after = page.last().cloned();
            }

            // Then every key comes once, in S3's byte order, and a listing from the middle
            // starts right after the key given.
            assert_eq!(seen, expected);
            assert_eq!(o.list(Some("a/c/d"), 2).await.unwrap(), vec!["a/c/e", "b"]);
            assert_eq!(o.list(Some("a/"), 1).await.unwrap(), vec!["a/b"]);
        }
    }

    pub mod table {
        use super::super::*;

        pub async fn get_missing(t: &dyn Table) {
            // Given an empty table, when reading a key, then there is nothing.
            assert_eq!(t.get("nobody", "nothing").await.unwrap(), None);
        }

        pub async fn put_get_roundtrip_of_every_value_type(t: &dyn Table) {
            // Given an item holding every value type, with extreme numbers and non-ASCII text.
            let item = Item::new("roundtrip", "item#1")
                .with("text", "plain")
                .with("unicode", "żółć 🐈 <&> \"quoted\" 'single'")
                .with("zero", 0)
                .with("negative", -42)
                .with("max", i64::MAX)
                .with("min", i64::MIN)
                .with("yes", true)
                .with("no", false)
                .with("gsi1pk", "index")
                .with("gsi1sk", "2024");

            // When it is written and read back.
            t.put(item.clone(), None).await.unwrap();
            let got = t.get("roundtrip", "item#1").await.unwrap();

            // Then it comes back exactly, and a neighbouring key is still empty.
            assert_eq!(got, Some(item));
            assert_eq!(t.get("roundtrip", "item#2").await.unwrap(), None);
        }

        pub async fn put_not_exists_succeeds_once(t: &dyn Table) {
            let first = Item::new("once", "1").with("v", 1);
            // Given a first conditional create that succeeds.
            t.put(first.clone(), Some(Cond::NotExists)).await.unwrap();

            // When a second create of the same key follows.
            let second = t.put(first.clone().with("v", 2), Some(Cond::NotExists)).await;

            // Then it fails on its condition and the first item is intact.
            assert!(is_condition_failed(&second, None), "{second:?}");
            assert_eq!(t.get("once", "1").await.unwrap(), Some(first));
        }

        pub async fn update_creates_missing_item(t: &dyn Table) {
            // Given no item, when it is updated.
            let got = t.update("fresh", "1", Update::new().set("name", "x").add("n", 5), None).await.unwrap();

            // Then the update created it, and returned it as stored.
            let expected = Item::new("fresh", "1").with("name", "x").with("n", 5);
            assert_eq!(got, expected);
            assert_eq!(t.get("fresh", "1").await.unwrap(), Some(expected));
        }

        pub async fn update_with_nothing_to_change(t: &dyn Table) {
            // An empty update of a missing item creates it with its key alone, as DynamoDB's
            // UpdateItem without an update expression does...
            let got = t.update("empty", "1", Update::new(), None).await.unwrap();
            assert_eq!(got, Item::new("empty", "1"));
            assert_eq!(t.get("empty", "1").await.unwrap(), Some(got));

            // ...and leaves an existing one as it is, still honouring its condition.
            t.put(Item::new("empty", "2").with("v", 1), None).await.unwrap();
            let got = t.update("empty", "2", Update::new(), Some(Cond::eq("v", 1))).await.unwrap();
            assert_eq!(got, Item::new("empty", "2").with("v", 1));
            let res = t.update("empty", "2", Update::new(), Some(Cond::eq("v", 2))).await;
            assert!(is_condition_failed(&res, None), "{res:?}");

            // The same holds inside a transaction.
            let op = |sk: &str| TxOp::Update { pk: "empty".into(), sk: sk.into(), update: Update::new(), cond: None };
            t.transact(vec![op("2"), op("3")]).await.unwrap();
            assert_eq!(t.get("empty", "2").await.unwrap(), Some(Item::new("empty", "2").with("v", 1)));
            assert_eq!(t.get("empty", "3").await.unwrap(), Some(Item::new("empty", "3")));
        }

        pub async fn invalid_writes_are_rejected(t: &dyn Table) {
            t.put(Item::new("inv", "1").with("s", "text").with("n", 1), None).await.unwrap();
            let before = t.get("inv", "1").await.unwrap();
            let updates: Vec<(&str, Update)> = vec![
                ("set the partition key", Update::new().set("pk", "other")),
                ("remove the sort key", Update::new().remove("sk")),
                ("set and remove one attribute", Update::new().set("n", 2).remove("n")),
                ("add to a string", Update::new().add("s", 1)),
            ];
            for (what, update) in updates {
                // When an update breaks DynamoDB's rules, it is refused as a backend error (not a
                // failed condition) and the item is left alone.
                let res = t.update("inv", "1", update, None).await;
                assert!(matches!(res, Err(StoreError::Backend(_))), "{what}: {res:?}");
                assert_eq!(t.get("inv", "1").await.unwrap(), before, "{what}");
            }
            let items: Vec<(&str, Item)> = vec![
                ("empty sort key", Item::new("inv", "")),
                ("empty index key", Item::new("inv", "3").with("gsi1pk", "")),
            ];
            for (what, item) in items {
                let res = t.put(item, None).await;
                assert!(matches!(res, Err(StoreError::Backend(_))), "{what}: {res:?}");
            }
            assert_eq!(t.query(Query::table("inv")).await.unwrap().items.len(), 1);
        }

        /// DynamoDB refuses an index key of the wrong type ("Type mismatch for Index Key"); moto
        /// stores it anyway, so this case runs against the embedded family only, in
        /// `embedded_only`.
        pub async fn index_keys_must_be_strings(t: &dyn Table) {
            let res = t.put(Item::new("inv", "2").with("gsi1sk", 3), None).await;
            assert!(matches!(res, Err(StoreError::Backend(_))), "put: {res:?}");
            t.put(Item::new("inv", "1"), None).await.unwrap();
            let res = t.update("inv", "1", Update::new().set("gsi1pk", 5), None).await;
            assert!(matches!(res, Err(StoreError::Backend(_))), "update: {res:?}");
            assert_eq!(t.get("inv", "1").await.unwrap(), Some(Item::new("inv", "1")));
        }

        pub async fn update_set_add_remove(t: &dyn Table) {
            // Given an item without a counter.
            t.put(Item::new("upd", "1").with("name", "a").with("keep", true), None).await.unwrap();

            // When adding to the missing counter, it starts from zero.
            let after_add = t.update("upd", "1", Update::new().add("n", 3), None).await.unwrap();
            assert_eq!(after_add.num("n"), Some(3));

            // When adding a negative amount, setting and removing in one update.
            let after =
                t.update("upd", "1", Update::new().add("n", -5).set("name", "b").remove("keep"), None).await.unwrap();

            // Then every clause applied, and the stored item is what was returned.
            assert_eq!(after, Item::new("upd", "1").with("name", "b").with("n", -2));
            assert_eq!(t.get("upd", "1").await.unwrap(), Some(after));
        }

        /// The item conditions are evaluated against in [`condition_matrix`].
        fn base(pk: &str, sk: &str) -> Item {
            Item::new(pk, sk).with("s", "b").with("n", 5).with("f", true).with("lo", 1).with("hi", 2)
        }

        pub async fn condition_matrix(t: &dyn Table) {
            use Cond::*;
            let s = |v: &str| v.to_owned();
            // (what, whether the item exists, condition, whether it holds)
            let cases: Vec<(&str, bool, Cond, bool)> = vec![
                ("exists on missing item", false, Exists, false),
                ("exists on item", true, Exists, true),
                ("not exists on missing item", false, NotExists, true),
                ("not exists on item", true, NotExists, false),
                ("attr exists", true, AttrExists(s("n")), true),
                ("attr exists, missing attr", true, AttrExists(s("zz")), false),
                ("attr exists, missing item", false, AttrExists(s("n")), false),
                ("attr not exists, missing attr", true, AttrNotExists(s("zz")), true),
                ("attr not exists, present attr", true, AttrNotExists(s("n")), false),
                ("attr not exists, missing item", false, AttrNotExists(s("n")), true),
                ("eq number", true, Cond::eq("n", 5), true),
                ("eq number, other value", true, Cond::eq("n", 6), false),
                ("eq string", true, Cond::eq("s", "b"), true),
                ("eq bool", true, Cond::eq("f", true), true),
                ("eq bool, other value", true, Cond::eq("f", false), false),
                ("eq, type mismatch", true, Cond::eq("n", "5"), false),
                ("eq, missing attr", true, Cond::eq("zz", 5), false),
                ("eq, missing item", false, Cond::eq("n", 5), false),
                ("ne, equal", true, Cond::ne("n", 5), false),
                ("ne, different", true, Cond::ne("n", 6), true),
                ("ne, missing attr", true, Cond::ne("zz", 1), true),
                ("ne, missing item", false, Cond::ne("n", 5), true),
                ("ne, type mismatch", true, Cond::ne("n", "5"), true),
                ("lt number", true, Cond::lt("n", 6), true),
                ("lt number, equal", true, Cond::lt("n", 5), false),
                ("lt number, negative bound", true, Cond::lt("n", -1), false),
                ("le number, equal", true, Cond::le("n", 5), true),
                ("le number, below", true, Cond::le("n", 4), false),
                ("gt number", true, Cond::gt("n", 4), true),
                ("gt number, equal", true, Cond::gt("n", 5), false),
                ("ge number, equal", true, Cond::ge("n", 5), true),
                ("ge number, above", true, Cond::ge("n", 6), false),
                ("lt string", true, Cond::lt("s", "c"), true),
                ("lt string, longer", true, Cond::lt("s", "ba"), true),
                ("lt string, uppercase sorts first", true, Cond::lt("s", "B"), false),
                ("gt string, uppercase sorts first", true, Cond::gt("s", "B"), true),
                ("lt, missing attr", true, Cond::lt("zz", 1), false),
                ("ge, missing attr", true, Cond::ge("zz", 1), false),
                ("lt, missing item", false, Cond::lt("n", 10), false),
                ("attr lt, true", true, AttrLt(s("lo"), s("hi")), true),
                ("attr lt, false", true, AttrLt(s("hi"), s("lo")), false),
                ("attr lt, equal", true, AttrLt(s("lo"), s("lo")), false),
                ("attr lt, missing right", true, AttrLt(s("lo"), s("zz")), false),
                ("attr lt, missing left", true, AttrLt(s("zz"), s("hi")), false),
                ("attr lt, missing item", false, AttrLt(s("lo"), s("hi")), false),
                ("and, both hold", true, Exists.and(Cond::eq("n", 5)), true),
                ("and, one fails", true, Exists.and(Cond::eq("n", 6)), false),
                ("and of three", true, Cond::eq("s", "b").and(Cond::lt("n", 6)).and(Cond::eq("f", true)), true),
                ("or, one holds", true, Or(vec![Cond::eq("n", 6), Cond::eq("s", "b")]), true),
                ("or, none holds", true, Or(vec![Cond::eq("n", 6), Cond::eq("s", "c")]), false),
                ("or on missing item", false, Or(vec![NotExists, Cond::eq("n", 5)]), true),
                (
                    "nested: or of ands",
                    true,
                    Or(vec![Exists.and(Cond::eq("n", 6)), AttrExists(s("f")).and(AttrLt(s("lo"), s("n")))]),
                    true,
                ),
                ("and inside not-exists create", false, NotExists.and(Cond::ne("n", 5)), true),
                ("empty and is true", true, And(vec![]), true),
                ("empty or is false", true, Or(vec![]), false),
            ];
            check_conditions(t, cases).await;
        }

        /// Ordering comparisons between values of different types, which DynamoDB evaluates to
        /// false. moto answers them with an internal server error (it compares a Python number
        /// with a string), so they run against the embedded family only, in `embedded_only`.
        pub fn ordering_type_mismatch_cases() -> Vec<(&'static str, bool, Cond, bool)> {
            vec![
                ("lt, type mismatch", true, Cond::lt("n", "9"), false),
                ("ge, type mismatch", true, Cond::ge("n", "0"), false),
                ("gt, type mismatch", true, Cond::gt("s", 1), false),
                ("le, type mismatch", true, Cond::le("f", 1), false),
                ("attr lt, type mismatch", true, Cond::AttrLt("lo".into(), "s".into()), false),
            ]
        }

        /// Runs (what, whether the item exists, condition, whether it holds) cases: given the
        /// item (or none), a conditional update and a conditional put each write exactly when
        /// the condition holds.
        pub async fn check_conditions(t: &dyn Table, cases: Vec<(&str, bool, Cond, bool)>) {
            for (i, (what, exists, cond, holds)) in cases.into_iter().enumerate() {
                let pk = format!("cond#{i}");
                // The reference evaluator agrees with the expectation...
                let initial = exists.then(|| base(&pk, "u"));
                assert_eq!(cond.eval(initial.as_ref()), holds, "Cond::eval: {what}");

                // ...and so does a conditional update: given the initial state, when updating,
                // then the write happens exactly when the condition holds.
                if let Some(item) = &initial {
                    t.put(item.clone(), None).await.unwrap();
                }
                let res = t.update(&pk, "u", Update::new().set("touched", true), Some(cond.clone())).await;
                let after = t.get(&pk, "u").await.unwrap();
                if holds {
                    assert!(res.is_ok(), "update, {what}: {res:?}");
                    assert_eq!(after.as_ref().and_then(|i| i.bool("touched")), Some(true), "update, {what}");
                } else {
                    assert!(is_condition_failed(&res, None), "update, {what}: {res:?}");
                    assert_eq!(after, initial, "update, {what}: the item must be unchanged");
                }

                // ...and a conditional put.
                let initial = exists.then(|| base(&pk, "p"));
                if let Some(item) = &initial {
                    t.put(item.clone(), None).await.unwrap();
                }
                let replacement = Item::new(&pk, "p").with("touched", true);
                let res = t.put(replacement.clone(), Some(cond)).await;
                let after = t.get(&pk, "p").await.unwrap();
                if holds {
                    assert!(res.is_ok(), "put, {what}: {res:?}");
                    assert_eq!(after, Some(replacement), "put, {what}");
                } else {
                    assert!(is_condition_failed(&res, None), "put, {what}: {res:?}");
                    assert_eq!(after, initial, "put, {what}: the item must be unchanged");
                }
            }
        }

        pub async fn delete_with_condition_returns_old_item(t: &dyn Table) {
            let item = Item::new("del", "1").with("v", 1);
            t.put(item.clone(), None).await.unwrap();

            // When the condition fails, nothing is deleted.
            let res = t.delete("del", "1", Some(Cond::eq("v", 2))).await;
            assert!(is_condition_failed(&res, None), "{res:?}");
            assert_eq!(t.get("del", "1").await.unwrap(), Some(item.clone()));

            // When it holds, the item is deleted and returned.
            let old = t.delete("del", "1", Some(Cond::eq("v", 1))).await.unwrap();
            assert_eq!(old, Some(item));
            assert_eq!(t.get("del", "1").await.unwrap(), None);

            // Deleting a missing item is not an error and returns nothing...
            assert_eq!(t.delete("del", "1", None).await.unwrap(), None);
            // ...unless the condition requires the item.
            let res = t.delete("del", "1", Some(Cond::Exists)).await;
            assert!(is_condition_failed(&res, None), "{res:?}");
        }

        /// Writes items with the given sort keys into partition `pk`.
        async fn seed(t: &dyn Table, pk: &str, sks: &[&str]) {
            for sk in sks {
                t.put(Item::new(pk, *sk).with("v", 1), None).await.unwrap();
            }
        }

        fn sks(items: &[Item]) -> Vec<String> {
            items.iter().map(|i| i.sk().to_owned()).collect()
        }

        pub async fn query_sort_key_conditions_both_directions(t: &dyn Table) {
            // Given a partition, and neighbours that must never show up in its queries.
            seed(t, "Q", &["a#01", "a#02", "a#10", "b#01", "b#02", "c"]).await;
            seed(t, "Q2", &["a#01", "b#01"]).await;
            seed(t, "q", &["a#01"]).await;

            let s = |v: &str| v.to_owned();
            let cases: Vec<(Option<SkCond>, Vec<&str>)> = vec![
                (None, vec!["a#01", "a#02", "a#10", "b#01", "b#02", "c"]),
                (Some(SkCond::BeginsWith(s("a#"))), vec!["a#01", "a#02", "a#10"]),
                (Some(SkCond::BeginsWith(s("b"))), vec!["b#01", "b#02"]),
                (Some(SkCond::BeginsWith(s("a#1"))), vec!["a#10"]),
                (Some(SkCond::BeginsWith(s("zz"))), vec![]),
                (Some(SkCond::Between(s("a#02"), s("b#01"))), vec!["a#02", "a#10", "b#01"]),
                (Some(SkCond::Between(s("a#03"), s("a#09"))), vec![]),
                (Some(SkCond::Lt(s("b"))), vec!["a#01", "a#02", "a#10"]),
                (Some(SkCond::Le(s("b#01"))), vec!["a#01", "a#02", "a#10", "b#01"]),
                (Some(SkCond::Gt(s("b#01"))), vec!["b#02", "c"]),
                (Some(SkCond::Ge(s("b#01"))), vec!["b#01", "b#02", "c"]),
            ];
            for (cond, expected) in cases {
                for forward in [true, false] {
                    // When querying with the condition in one direction.
                    let mut q = Query::table("Q");
                    q.sk = cond.clone();
                    q.forward = forward;
                    let page = t.query(q).await.unwrap();

                    // Then exactly the matching items come back, in sort-key order.
                    let mut want: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
                    if !forward {
                        want.reverse();
                    }
                    assert_eq!(sks(&page.items), want, "{cond:?}, forward: {forward}");
                    assert!(page.items.iter().all(|i| i.pk() == "Q"));
                    assert_eq!(page.next, None, "a short page has no next page");
                }
            }
        }

        pub async fn query_orders_sort_keys_bytewise(t: &dyn Table) {
            // Given sort keys whose byte order differs from a case-insensitive or locale order.
            seed(t, "order", &["a", "B", "b", "Z", "é", "~", "aa", "a-", "a0"]).await;

            // When querying the partition.
            let page = t.query(Query::table("order")).await.unwrap();

            // Then they come in UTF-8 byte order, as DynamoDB orders string keys.
            assert_eq!(sks(&page.items), ["B", "Z", "a", "a-", "a0", "aa", "b", "~", "é"]);
        }

        /// Reads every page of `q`, checking the paging rules on the way.
        async fn all_pages(t: &dyn Table, q: Query) -> Vec<Vec<Item>> {
            let mut pages = Vec::new();
            let mut start: Option<Cursor> = None;
            loop {
                let page = t.query(q.clone().start(start.take())).await.unwrap();
                // A page has a next page exactly when it is full.
                assert_eq!(page.next.is_some(), page.items.len() == q.limit, "page {}", pages.len());
                assert!(page.items.len() <= q.limit);
                let next = page.next.clone();
                if let (Some(c), Some(last)) = (&next, page.items.last()) {
                    assert_eq!(*c, Cursor::of(last, q.index), "the cursor is the last item's key");
                }
                pages.push(page.items);
                match next {
                    Some(c) => start = Some(c),
                    None => return pages,
                }
                assert!(pages.len() < 100, "pagination does not end");
            }
        }

        pub async fn cursors_from_another_listing_are_refused(t: &dyn Table) {
            // Given two partitions of the table and one of the index, each with a next page,
            seed(t, "left", &["a", "b", "c"]).await;
            seed(t, "right", &["a", "b", "c"]).await;
            for i in 0..3 {
                let item = Item::new("idx", format!("i{i}")).with("gsi1pk", "LIST").with("gsi1sk", format!("k{i}"));
                t.put(item, None).await.unwrap();
            }
            let left = t.query(Query::table("left").limit(1)).await.unwrap().next.unwrap();
            let listed = t.query(Query::gsi1("LIST").limit(1)).await.unwrap().next.unwrap();
            let doctored = |f: fn(&mut Cursor)| {
                let mut c = left.clone();
                f(&mut c);
                c
            };
            // when a query starts from a cursor that is not its own (another partition's, the
            // index's on the table, the table's on the index, or one with empty or huge keys),
            let cases: Vec<(Query, Cursor)> = vec![
                (Query::table("right"), left.clone()),
                (Query::table("left"), listed.clone()),
                (Query::gsi1("LIST"), left.clone()),
                (Query::gsi1("OTHER"), listed.clone()),
                (Query::table("left"), doctored(|c| c.sk = String::new())),
                (Query::table("left"), doctored(|c| c.sk = "x".repeat(2000))),
                (Query::table("left"), doctored(|c| c.gsi1pk = Some("LIST".into()))),
            ];
            for (q, cursor) in cases {
                // then both families refuse it the same way, before asking the backend.
                let got = t.query(q.clone().limit(1).start(Some(cursor.clone()))).await;
                assert!(matches!(got, Err(StoreError::InvalidCursor(_))), "{q:?} from {cursor:?}: {got:?}");
            }
            // And a query's own cursor still works.
            let page = t.query(Query::table("left").limit(1).start(Some(left))).await.unwrap();
            assert_eq!(sks(&page.items), ["b"]);
            let page = t.query(Query::gsi1("LIST").limit(1).start(Some(listed))).await.unwrap();
            assert_eq!(page.items[0].sk(), "i1");
        }

        pub async fn query_pagination_reaches_every_item_once(t: &dyn Table) {
            // Given 25 items in a partition.
            let all: Vec<String> = (0..25).map(|i| format!("p{i:03}")).collect();
            let refs: Vec<&str> = all.iter().map(String::as_str).collect();
            seed(t, "pages", &refs).await;

            // (limit, sort-key condition, expected page sizes when walking forward)
            let cases: Vec<(usize, Option<SkCond>, Vec<usize>)> = vec![
                (7, None, vec![7, 7, 7, 4]),
                (5, None, vec![5, 5, 5, 5, 5, 0]),
                (1, None, [vec![1; 25], vec![0]].concat()),
                (25, None, vec![25, 0]),
                (26, None, vec![25]),
                (100, None, vec![25]),
                (4, Some(SkCond::Between("p003".into(), "p012".into())), vec![4, 4, 2]),
                (3, Some(SkCond::BeginsWith("p01".into())), vec![3, 3, 3, 1]),
            ];
            for (limit, cond, sizes) in cases {
                for forward in [true, false] {
                    // When walking the partition page by page.
                    let mut q = Query::table("pages").limit(limit);
                    q.sk = cond.clone();
                    q.forward = forward;
                    let pages = all_pages(t, q).await;

                    // Then the pages have the expected sizes and hold every matching item once,
                    // in order.
                    let got_sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
                    assert_eq!(got_sizes, sizes, "limit {limit}, {cond:?}, forward: {forward}");
                    let got: Vec<String> = pages.iter().flat_map(|p| sks(p)).collect();
                    let mut want: Vec<String> = all
                        .iter()
                        .filter(|sk| match &cond {
                            None => true,
                            Some(SkCond::Between(lo, hi)) => *sk >= lo && *sk <= hi,
                            Some(SkCond::BeginsWith(p)) => sk.starts_with(p.as_str()),
                            Some(other) => unreachable!("{other:?}"),
                        })
                        .cloned()
                        .collect();
                    if !forward {
                        want.reverse();
                    }
                    assert_eq!(got, want, "limit {limit}, {cond:?}, forward: {forward}");
                }
            }
        }

        fn indexed(pk: &str, sk: &str, gsi1pk: &str, gsi1sk: &str) -> Item {
            Item::new(pk, sk).with("gsi1pk", gsi1pk).with("gsi1sk", gsi1sk)
        }

        fn keys(items: &[Item]) -> Vec<(String, String)> {
            items.iter().map(|i| (i.pk().to_owned(), i.sk().to_owned())).collect()
        }

        fn key(pk: &str, sk: &str) -> (String, String) {
            (pk.to_owned(), sk.to_owned())
        }

        pub async fn gsi1_query_ordering_and_sparse_index(t: &dyn Table) {
            // Given items of several table partitions in index partition "G", one in another index
            // partition, and items without the index attributes (or with only one of them).
            for item in [
                indexed("u1", "photo#1", "G", "2024-01-03"),
                indexed("u2", "photo#1", "G", "2024-01-01"),
                indexed("u1", "photo#2", "G", "2024-01-02"),
                indexed("u3", "photo#9", "H", "2024-01-01"),
                Item::new("u4", "photo#1").with("v", 1),
                Item::new("u5", "photo#1").with("gsi1pk", "G"),
                Item::new("u6", "photo#1").with("gsi1sk", "2024-01-01"),
            ] {
                t.put(item, None).await.unwrap();
            }
            let expected = vec![key("u2", "photo#1"), key("u1", "photo#2"), key("u1", "photo#1")];

            // When querying the index, then only the indexed items of "G" come, by index sort key.
            let page = t.query(Query::gsi1("G")).await.unwrap();
            assert_eq!(keys(&page.items), expected);
            assert_eq!(page.items[0], indexed("u2", "photo#1", "G", "2024-01-01"), "all attributes projected");
            let page = t.query(Query::gsi1("G").backward()).await.unwrap();
            assert_eq!(keys(&page.items), expected.iter().rev().cloned().collect::<Vec<_>>());

            // Sort-key conditions apply to the index sort key.
            let page = t.query(Query::gsi1("G").sk(SkCond::Gt("2024-01-01".into()))).await.unwrap();
            assert_eq!(keys(&page.items), expected[1..]);
            let page = t.query(Query::gsi1("G").sk(SkCond::BeginsWith("2024-01-0".into()))).await.unwrap();
            assert_eq!(keys(&page.items), expected);

            // Paging one item at a time reaches each once, in order.
            let pages = all_pages(t, Query::gsi1("G").limit(1)).await;
            let walked: Vec<_> = pages.iter().flat_map(|p| keys(p)).collect();
            assert_eq!(walked, expected);

            // When an item loses its index attributes, it leaves the index.
            t.update("u1", "photo#2", Update::new().remove("gsi1pk").remove("gsi1sk"), None).await.unwrap();
            let page = t.query(Query::gsi1("G")).await.unwrap();
            assert_eq!(keys(&page.items), [key("u2", "photo#1"), key("u1", "photo#1")]);
        }

        pub async fn gsi1_pagination_with_equal_index_keys(t: &dyn Table) {
            // Given several items that share one index sort key, between two that do not.
            let mut all = BTreeSet::new();
            for (pk, gsk) in [("a", "1"), ("b", "2"), ("c", "2"), ("d", "2"), ("e", "2"), ("f", "3")] {
                t.put(indexed(pk, "x", "E", gsk), None).await.unwrap();
                all.insert(key(pk, "x"));
            }
            for (limit, forward) in [(1, true), (2, true), (4, true), (1, false), (3, false)] {
                // When paging through the index partition.
                let q = Query { forward, ..Query::gsi1("E").limit(limit) };
                let pages = all_pages(t, q).await;

                // Then every item comes exactly once, and the index sort key never goes back.
                let walked: Vec<Item> = pages.into_iter().flatten().collect();
                let got: Vec<_> = keys(&walked);
                assert_eq!(got.len(), all.len(), "limit {limit}, forward {forward}: {got:?}");
                assert_eq!(got.iter().cloned().collect::<BTreeSet<_>>(), all, "limit {limit}");
                let gsks: Vec<&str> = walked.iter().map(|i| i.str("gsi1sk").unwrap()).collect();
                let mut sorted = gsks.clone();
                sorted.sort();
                if !forward {
                    sorted.reverse();
                }
                assert_eq!(gsks, sorted, "limit {limit}, forward {forward}");
            }
        }

        /// A transaction of one operation of each kind; `fail` makes that operation's condition
        /// false.
        fn tx_ops(fail: Option<usize>) -> Vec<TxOp> {
            let pick = |i: usize, ok: Cond, bad: Cond| if fail == Some(i) { bad } else { ok };
            vec![
                TxOp::Put {
                    item: Item::new("tx", "new").with("v", 1),
                    cond: Some(pick(0, Cond::NotExists, Cond::Exists)),
                },
                TxOp::Update {
                    pk: "tx".into(),
                    sk: "a".into(),
                    update: Update::new().add("v", 1),
                    cond: Some(pick(1, Cond::eq("v", 1), Cond::eq("v", 99))),
                },
                TxOp::Delete { pk: "tx".into(), sk: "c".into(), cond: Some(pick(2, Cond::Exists, Cond::eq("v", 99))) },
                TxOp::Check { pk: "tx".into(), sk: "b".into(), cond: pick(3, Cond::eq("v", 1), Cond::eq("v", 2)) },
            ]
        }

        pub async fn transact_all_or_nothing_reports_failing_index(t: &dyn Table) {
            // Given the items the transaction works on.
            let before = [Item::new("tx", "a").with("v", 1), Item::new("tx", "b").with("v", 1), Item::new("tx", "c")];
            for item in &before {
                t.put(item.clone(), None).await.unwrap();
            }
            let state = || async { t.query(Query::table("tx")).await.unwrap().items };
            let initial = state().await;

            for fail in 0..4 {
                // When one operation's condition fails.
                let res = t.transact(tx_ops(Some(fail))).await;

                // Then the transaction names it, and nothing at all was written.
                assert!(is_condition_failed(&res, Some(fail)), "failing op {fail}: {res:?}");
                assert_eq!(state().await, initial, "failing op {fail}");
            }

            // When every condition holds, every operation applies.
            t.transact(tx_ops(None)).await.unwrap();
            assert_eq!(t.get("tx", "new").await.unwrap(), Some(Item::new("tx", "new").with("v", 1)));
            assert_eq!(t.get("tx", "a").await.unwrap().and_then(|i| i.num("v")), Some(2));
            assert_eq!(t.get("tx", "b").await.unwrap(), Some(before[1].clone()));
            assert_eq!(t.get("tx", "c").await.unwrap(), None);

            // And the same transaction again fails on its first operation (the item now exists).
            let res = t.transact(tx_ops(None)).await;
            assert!(is_condition_failed(&res, Some(0)), "{res:?}");
        }

        pub async fn transact_rejects_invalid_requests(t: &dyn Table) {
            let put = |sk: String| TxOp::Put { item: Item::new("txv", sk), cond: None };
            let cases: Vec<(&str, Vec<TxOp>)> = vec![
                ("101 operations", (0..101).map(|i| put(format!("{i:03}"))).collect()),
                ("two operations on one item", vec![put("same".into()), put("same".into())]),
                (
                    "a put and a check of one item",
                    vec![put("k".into()), TxOp::Check { pk: "txv".into(), sk: "k".into(), cond: Cond::NotExists }],
                ),
            ];
            for (what, ops) in cases {
                // When the request breaks DynamoDB's rules, it is refused as a backend error
                // (not a failed condition), and nothing is written.
                let res = t.transact(ops).await;
                assert!(matches!(res, Err(StoreError::Backend(_))), "{what}: {res:?}");
                assert!(t.query(Query::table("txv")).await.unwrap().items.is_empty(), "{what}");
            }

            // The limit itself is allowed, and an empty transaction does nothing.
            t.transact((0..100).map(|i| put(format!("{i:03}"))).collect()).await.unwrap();
            assert_eq!(t.query(Query::table("txv").limit(1000)).await.unwrap().items.len(), 100);
            t.transact(Vec::new()).await.unwrap();
        }

        pub async fn concurrent_capped_counter(t: &dyn Table) {
            // Given a counter at zero.
            t.put(Item::new("counter", "1").with("n", 0), None).await.unwrap();

            // When 50 writers race to increment it while it is below 10.
            let results = futures::future::join_all(
                (0..50).map(|_| t.update("counter", "1", Update::new().add("n", 1), Some(Cond::lt("n", 10)))),
            )
            .await;

            // Then exactly 10 succeed, the rest fail on the condition, and the counter is 10.
            let won = results.iter().filter(|r| r.is_ok()).count();
            let lost = results.iter().filter(|r| is_condition_failed(r, None)).count();
            assert_eq!((won, lost), (10, 40), "{results:?}");
            let mut seen: Vec<i64> = results.iter().filter_map(|r| r.as_ref().ok()?.num("n")).collect();
            seen.sort();
            assert_eq!(seen, (1..=10).collect::<Vec<_>>(), "each winner saw its own increment");
            assert_eq!(t.get("counter", "1").await.unwrap().and_then(|i| i.num("n")), Some(10));
        }

        pub async fn concurrent_put_not_exists_has_one_winner(t: &dyn Table) {
            // When 20 writers race to create the same item.
            let results = futures::future::join_all(
                (0..20i64).map(|w| t.put(Item::new("race", "1").with("writer", w), Some(Cond::NotExists))),
            )
            .await;

            // Then exactly one wins, and the item is the winner's.
            let winners: Vec<i64> = (0..20).filter(|w| results[*w as usize].is_ok()).collect();
            assert_eq!(winners.len(), 1, "{results:?}");
            assert_eq!(results.iter().filter(|r| is_condition_failed(r, None)).count(), 19);
            let item = t.get("race", "1").await.unwrap().unwrap();
            assert_eq!(item.num("writer"), Some(winners[0]));
        }
    }

    pub mod objects {
        use super::super::*;

        pub async fn object_roundtrip(o: &dyn Objects) {
            let key = "photos/2024/a photo ü+%.jpg";
            let bytes: Bytes = (0..=255u8).cycle().take(70_000).collect::<Vec<u8>>().into();

            // Given a stored object.
            o.put(key, bytes.clone(), "image/jpeg").await.unwrap();

            // Then it reads back whole, with its content type, and exists.
            let got = o.get(key).await.unwrap().unwrap();
            assert_eq!(got.bytes, bytes);
            assert_eq!(got.content_type, "image/jpeg");
            assert!(o.exists(key).await.unwrap());
            // Its "folder" is not an object.
            assert!(!o.exists("photos/2024").await.unwrap());
            assert!(o.get("photos/2024").await.unwrap().is_none());

            // When deleted, it is gone.
            o.delete(key).await.unwrap();
            assert!(o.get(key).await.unwrap().is_none());
            assert!(!o.exists(key).await.unwrap());
        }

        pub async fn object_overwrite_replaces_bytes_and_type(o: &dyn Objects) {
            // Given an object, when another is put under its key.
            o.put("doc", Bytes::from_static(b"first version"), "text/plain").await.unwrap();
            o.put("doc", Bytes::from_static(b"{}"), "application/json").await.unwrap();

            // Then only the new one is there.
            let got = o.get("doc").await.unwrap().unwrap();
            assert_eq!(got.bytes, Bytes::from_static(b"{}"));
            assert_eq!(got.content_type, "application/json");
        }

        pub async fn object_missing(o: &dyn Objects) {
            // A missing object reads as none, does not exist, and deleting it is fine.
            assert!(o.get("missing/key").await.unwrap().is_none());
            assert!(!o.exists("missing/key").await.unwrap());
            o.delete("missing/key").await.unwrap();
        }

        pub async fn object_empty(o: &dyn Objects) {
            // An empty object is an object.
            o.put("empty", Bytes::new(), "application/octet-stream").await.unwrap();
            assert!(o.exists("empty").await.unwrap());
            assert_eq!(o.get("empty").await.unwrap().unwrap().bytes.len(), 0);
        }
    }

    pub mod queue {
        use super::super::*;

        /// Receives until `n` messages have come (queues may return fewer than asked per call).
        pub async fn receive_n(q: &dyn Queue, n: usize, visibility: Duration) -> Vec<Delivery> {
            let mut got = Vec::new();
            for _ in 0..20 {
                if got.len() >= n {
                    break;
                }
                got.extend(q.receive((n - got.len()).min(10), visibility).await.unwrap());
            }
            assert_eq!(got.len(), n, "received {got:?}");
            got
        }

        pub async fn queue_send_receive_ack(q: &dyn Queue) {
            // Given three sent messages.
            let bodies: Vec<String> = (0..3).map(|i| format!("{{\"job\":{i}}}")).collect();
            q.send_batch(&bodies).await.unwrap();

            // When received, each comes once, for the first time.
            let got = receive_n(q, 3, Duration::from_secs(1)).await;
            let got_bodies: BTreeSet<String> = got.iter().map(|d| d.body.clone()).collect();
            assert_eq!(got_bodies, bodies.iter().cloned().collect());
            assert!(got.iter().all(|d| d.receive_count == 1), "{got:?}");
            let ids: BTreeSet<&str> = got.iter().map(|d| d.message_id.as_str()).collect();
            assert_eq!(ids.len(), 3);

            // When acknowledged, they never come back, even after their visibility timeout.
            for d in &got {
                q.ack(&d.receipt).await.unwrap();
            }
            // Acknowledging twice is harmless.
            q.ack(&got[0].receipt).await.unwrap();
            tokio::time::sleep(Duration::from_millis(1500)).await;
            assert!(q.receive(10, Duration::from_secs(1)).await.unwrap().is_empty());
        }

        pub async fn queue_visibility_timeout_redelivers(q: &dyn Queue) {
            // Given a received message.
            q.send_batch(&["hello".to_owned()]).await.unwrap();
            let first = receive_n(q, 1, Duration::from_secs(2)).await.remove(0);
            assert_eq!(first.receive_count, 1);

            // Then it is hidden during its visibility timeout...
            assert!(q.receive(10, Duration::from_secs(2)).await.unwrap().is_empty());

            // ...and comes again once it has passed, counted as a second receive.
            tokio::time::sleep(Duration::from_millis(2500)).await;
            let second = receive_n(q, 1, Duration::from_secs(30)).await.remove(0);
            assert_eq!(second.message_id, first.message_id);
            assert_eq!(second.body, "hello");
            assert_eq!(second.receive_count, 2);
            assert_ne!(second.receipt, first.receipt, "each receive has its own receipt");
            q.ack(&second.receipt).await.unwrap();
        }

        pub async fn queue_retry_after(q: &dyn Queue) {
            // Given a message received with a long visibility timeout.
            q.send_batch(&["work".to_owned()]).await.unwrap();
            let first = receive_n(q, 1, Duration::from_secs(60)).await.remove(0);

            // When it is retried at once, it is visible again straight away.
            q.retry_after(&first.receipt, Duration::ZERO).await.unwrap();
            let second = receive_n(q, 1, Duration::from_secs(60)).await.remove(0);
            assert_eq!((second.message_id.as_str(), second.receive_count), (first.message_id.as_str(), 2));

            // When it is retried after a delay, it stays hidden for that delay, then comes again.
            q.retry_after(&second.receipt, Duration::from_secs(2)).await.unwrap();
            assert!(q.receive(10, Duration::from_secs(60)).await.unwrap().is_empty());
            tokio::time::sleep(Duration::from_millis(2500)).await;
            let third = receive_n(q, 1, Duration::from_secs(60)).await.remove(0);
            assert_eq!((third.message_id.as_str(), third.receive_count), (first.message_id.as_str(), 3));
            q.ack(&third.receipt).await.unwrap();
        }

        pub async fn queue_ack_of_unknown_receipt_is_ok(q: &dyn Queue) {
            // Acknowledging or retrying with a receipt the queue never gave out changes nothing
            // and is not an error: the message it named is gone, as far as the caller can tell.
            q.ack("no-such-receipt").await.unwrap();
            q.retry_after("no-such-receipt", Duration::ZERO).await.unwrap();
        }

        pub async fn queue_batches_longer_than_ten(q: &dyn Queue) {
            // Given 23 messages sent in one call.
            let bodies: Vec<String> = (0..23).map(|i| format!("m{i}")).collect();
            q.send_batch(&bodies).await.unwrap();

            // Then all of them arrive, at most ten per receive.
            let got = receive_n(q, 23, Duration::from_secs(30)).await;
            let got_bodies: BTreeSet<String> = got.iter().map(|d| d.body.clone()).collect();
            assert_eq!(got_bodies, bodies.into_iter().collect());
        }
    }
}

/// The statistics counters (`imghost::stats`), which are built from table operations: conditional
/// transactions, `ADD`, and the ranking index. Both families must count identically.
mod counter_cases {
    use super::*;
    use imghost::media::Format;
    use imghost::stats::{self, Change, Facts, Stats};
    use time::macros::datetime;
    use time::{Duration as Days, OffsetDateTime};

    const NOW: OffsetDateTime = datetime!(2026-11-23 12:00 UTC);

    fn jpeg(camera: Option<&str>, bytes: u64) -> Facts {
        Facts { format: Format::Jpeg, bytes, camera: camera.map(str::to_owned) }
    }

    async fn count(t: &dyn Table, change: Change<'_>, at: OffsetDateTime) {
        stats::transact_counted(t, vec![], change, at).await.unwrap();
    }

    async fn read(t: &dyn Table) -> Stats {
        stats::read(t, NOW.date()).await.unwrap()
    }

    fn cameras(s: &Stats) -> Vec<(&str, i64)> {
        s.top_cameras.iter().map(|c| (c.model.as_str(), c.count)).collect()
    }

    pub async fn counters_start_empty_with_thirty_zero_days(t: &dyn Table) {
        // Given no counters at all, when reading.
        let s = read(t).await;

        // Then everything is zero and the days are still listed.
        assert_eq!(s.most_popular_format, None);
        assert!(s.formats.is_empty() && s.top_cameras.is_empty());
        assert_eq!((s.cameras_unknown, s.totals.clone()), (0, Default::default()));
        assert_eq!(s.uploads_per_day.len(), 30);
        assert!(s.uploads_per_day.iter().all(|d| d.count == 0));
        assert_eq!(s.uploads_per_day.first().unwrap().date, "2026-10-25");
        assert_eq!(s.uploads_per_day.last().unwrap().date, "2026-11-23");
    }

    pub async fn counters_follow_adds_duplicates_and_removals(t: &dyn Table) {
        // Given three JPEGs (two from one camera, one unknown), a PNG and two duplicate uploads.
        let d70 = jpeg(Some("NIKON D70"), 1000);
        let unknown = jpeg(None, 10);
        let png = Facts { format: Format::Png, bytes: 500, camera: Some("Pixel 7".into()) };
        for f in [&d70, &d70, &unknown, &png] {
            count(t, Change::ImageAdded(f), NOW).await;
        }
        count(t, Change::DuplicateUpload, NOW).await;
        count(t, Change::DuplicateUpload, NOW).await;

        // Then the totals, formats and cameras say so.
        let s = read(t).await;
        assert_eq!(s.most_popular_format, Some("jpeg"));
        let formats: Vec<_> = s.formats.iter().map(|f| (f.format, f.count)).collect();
        assert_eq!(formats, [("jpeg", 3), ("png", 1)]);
        assert_eq!(cameras(&s), [("NIKON D70", 2), ("Pixel 7", 1)]);
        assert_eq!(s.cameras_unknown, 1);
        let t0 = &s.totals;
        assert_eq!((t0.images, t0.uploads, t0.bytes, t0.duplicates), (4, 6, 2510, 2));
        assert_eq!(s.uploads_per_day.last().unwrap().count, 6);

        // When one D70 image, the unknown one and the PNG are removed.
        for f in [&d70, &unknown, &png] {
            count(t, Change::ImageRemoved(f), NOW).await;
        }

        // Then stored-image counters go down, a model at zero leaves the ranking, and accepted
        // uploads (events that happened) stay counted.
        let s = read(t).await;
        let formats: Vec<_> = s.formats.iter().map(|f| (f.format, f.count)).collect();
        assert_eq!(formats, [("jpeg", 1)]);
        assert_eq!(cameras(&s), [("NIKON D70", 1)]);
        assert_eq!(s.cameras_unknown, 0);
        let t1 = &s.totals;
        assert_eq!((t1.images, t1.uploads, t1.bytes, t1.duplicates), (1, 6, 1000, 2));
        assert_eq!(s.uploads_per_day.last().unwrap().count, 6);
    }

    pub async fn counters_window_is_thirty_utc_days_ending_today(t: &dyn Table) {
        // Given uploads on days 0 (today), 1, 29 and 30 days ago, and one tomorrow.
        let cases: &[(i64, usize)] = &[(0, 3), (1, 1), (29, 2), (30, 5), (-1, 4)];
        for &(days_ago, n) in cases {
            for _ in 0..n {
                count(t, Change::DuplicateUpload, NOW - Days::days(days_ago)).await;
            }
        }
        // And one a second before today's UTC midnight, which belongs to yesterday.
        count(t, Change::DuplicateUpload, datetime!(2026-11-22 23:59:59 UTC)).await;

        // When reading for today.
        let s = read(t).await;

        // Then exactly the 30 days ending today are listed, oldest first, zero-filled.
        let days = &s.uploads_per_day;
        assert_eq!(days.len(), 30);
        let expect = |date: &str| days.iter().find(|d| d.date == date).map(|d| d.count);
        assert_eq!(expect("2026-11-23"), Some(3));
        assert_eq!(expect("2026-11-22"), Some(2));
        assert_eq!(expect("2026-10-25"), Some(2));
        assert_eq!(expect("2026-10-24"), None, "30 days ago is outside the window");
        assert_eq!(expect("2026-11-24"), None, "tomorrow is outside the window");
        assert_eq!(days.iter().map(|d| d.count).sum::<i64>(), 7);
        assert!(days.windows(2).all(|w| w[0].date < w[1].date));
        // Uploads outside the window still count in the totals.
        assert_eq!(s.totals.uploads, 16);
    }

    pub async fn counters_rank_at_most_ten_cameras_ties_by_name(t: &dyn Table) {
        // Given 13 models: "M00" with 3 images, "M12" with 2, and eleven with 1 each.
        let mut counts: Vec<(String, usize)> = (0..13).map(|i| (format!("M{i:02}"), 1)).collect();
        counts[0].1 = 3;
        counts[12].1 = 2;
        for (model, n) in &counts {
            for _ in 0..*n {
                count(t, Change::ImageAdded(&jpeg(Some(model), 1)), NOW).await;
            }
        }

        // When reading.
        let s = read(t).await;

        // Then the ten largest, most first, ties by model name.
        let want: Vec<(String, i64)> = ["M00", "M12", "M01", "M02", "M03", "M04", "M05", "M06", "M07", "M08"]
            .iter()
            .zip([3, 2, 1, 1, 1, 1, 1, 1, 1, 1])
            .map(|(m, c)| (m.to_string(), c))
            .collect();
        let got: Vec<(String, i64)> = cameras(&s).into_iter().map(|(m, c)| (m.to_owned(), c)).collect();
        assert_eq!(got, want);

        // When M00 loses all three images, then the next model moves up into the ten.
        for _ in 0..3 {
            count(t, Change::ImageRemoved(&jpeg(Some("M00"), 1)), NOW).await;
        }
        let s = read(t).await;
        let names: Vec<&str> = s.top_cameras.iter().map(|c| c.model.as_str()).collect();
        assert_eq!(names, ["M12", "M01", "M02", "M03", "M04", "M05", "M06", "M07", "M08", "M09"]);
    }

    pub async fn counters_concurrent_changes_of_one_camera_are_exact(t: &dyn Table) {
        // Given 20 images of one model and 5 of another added concurrently, and 4 of the first
        // removed while the adds run (their counters race on one item each).
        let a = jpeg(Some("Canon EOS 40D"), 7);
        let b = jpeg(Some("E950"), 3);
        count(t, Change::ImageAdded(&a), NOW).await;
        let adds = (0..19).map(|_| &a).chain((0..5).map(|_| &b)).map(|f| count(t, Change::ImageAdded(f), NOW));
        let removes = (0..4).map(|_| count(t, Change::ImageRemoved(&a), NOW));
        futures::future::join(futures::future::join_all(adds), futures::future::join_all(removes)).await;

        // Then every change counted exactly once.
        let s = read(t).await;
        assert_eq!(cameras(&s), [("Canon EOS 40D", 16), ("E950", 5)]);
        assert_eq!((s.totals.images, s.totals.bytes, s.totals.uploads), (21, 16 * 7 + 5 * 3, 25));
    }

    pub async fn counters_do_not_move_when_the_guarded_write_fails(t: &dyn Table) {
        // Given a write guarded by a condition that does not hold.
        let guarded = TxOp::Check { pk: "nothing".into(), sk: "here".into(), cond: Cond::Exists };
        let facts = jpeg(Some("NIKON D70"), 100);

        // When it is counted as an added image.
        let r = stats::transact_counted(t, vec![guarded], Change::ImageAdded(&facts), NOW).await;

        // Then its own failure is reported (index 0), and no counter moved.
        assert!(is_condition_failed(&r, Some(0)), "{r:?}");
        let s = read(t).await;
        assert_eq!((s.totals.images, s.totals.uploads), (0, 0));
        assert!(s.top_cameras.is_empty());
    }
}

/// Behaviour only the embedded family can be held to.
mod embedded_only {
    use super::*;
    use aws_lambda_events::event::s3::S3Event;

    fn db(dir: &TempDir) -> SqliteDb {
        SqliteDb::open(&dir.path().join("state.db")).unwrap()
    }

    /// SQS documents that only the newest receipt handle deletes a message. moto does not model
    /// this: it keeps every receipt a message ever had and deletes with any of them, so this case
    /// cannot run against the AWS family in tests.
    #[tokio::test]
    async fn stale_receipt_does_not_delete_a_redelivered_message() {
        let dir = tempfile::tempdir().unwrap();
        let q = SqliteQueue::new(db(&dir), "jobs", 0);
        q.send_batch(&["m".to_owned()]).await.unwrap();

        // Given a message received twice: its first receipt is stale.
        let first = q.receive(1, Duration::ZERO).await.unwrap().remove(0);
        let second = q.receive(1, Duration::from_secs(60)).await.unwrap().remove(0);
        assert_eq!(second.receive_count, 2);

        // When the stale receipt is used, nothing happens to the message.
        q.ack(&first.receipt).await.unwrap();
        q.retry_after(&first.receipt, Duration::ZERO).await.unwrap();
        assert!(q.receive(1, Duration::from_secs(60)).await.unwrap().is_empty(), "still hidden");

        // Then the current receipt still works on it.
        q.retry_after(&second.receipt, Duration::ZERO).await.unwrap();
        let third = q.receive(1, Duration::from_secs(60)).await.unwrap().remove(0);
        assert_eq!((third.message_id, third.receive_count), (first.message_id, 3));
    }

    /// See `cases::table::ordering_type_mismatch_cases` for why these are embedded-only.
    #[tokio::test]
    async fn ordering_comparisons_across_types_are_false() {
        let dir = tempfile::tempdir().unwrap();
        let table = SqliteTable::new(db(&dir));
        cases::table::check_conditions(&table, cases::table::ordering_type_mismatch_cases()).await;
    }

    #[tokio::test]
    async fn index_keys_must_be_strings() {
        let dir = tempfile::tempdir().unwrap();
        cases::table::index_keys_must_be_strings(&SqliteTable::new(db(&dir))).await;
    }

    /// The local queue is durable: it is what the local runner restarts from.
    #[tokio::test]
    async fn sqlite_queue_survives_reopening_the_database() {
        let dir = tempfile::tempdir().unwrap();
        {
            let q = SqliteQueue::new(db(&dir), "jobs", 0);
            q.send_batch(&["one".to_owned(), "two".to_owned()]).await.unwrap();
            let got = q.receive(1, Duration::from_secs(60)).await.unwrap();
            assert_eq!(got[0].body, "one", "the embedded queue delivers oldest first");
        }

        // When the database is opened again, the unreceived message is there, the received one
        // is still hidden, and a queue of another name sees neither.
        let db = db(&dir);
        let q = SqliteQueue::new(db.clone(), "jobs", 0);
        let got = q.receive(10, Duration::from_secs(60)).await.unwrap();
        assert_eq!(got.iter().map(|d| d.body.as_str()).collect::<Vec<_>>(), ["two"]);
        let other = SqliteQueue::new(db, "other", 0);
        assert!(other.receive(10, Duration::ZERO).await.unwrap().is_empty());
    }

    /// Like an SQS redrive policy with `maxReceiveCount` 2.
    #[tokio::test]
    async fn max_receives_moves_a_message_to_dead_letters() {
        let dir = tempfile::tempdir().unwrap();
        let q = SqliteQueue::new(db(&dir), "jobs", 2);
        q.send_batch(&["poison".to_owned(), "fine".to_owned()]).await.unwrap();
        let fine = q.receive(10, Duration::ZERO).await.unwrap();
        assert_eq!(fine.len(), 2);
        q.ack(&fine[1].receipt).await.unwrap();

        // Given a message received as often as allowed.
        let second = q.receive(10, Duration::ZERO).await.unwrap();
        assert_eq!(second.iter().map(|d| d.receive_count).collect::<Vec<_>>(), [2]);

        // When it would be received once more, it is dead-lettered instead.
        assert!(q.receive(10, Duration::ZERO).await.unwrap().is_empty());
        assert_eq!(q.dead_letter_count().unwrap(), 1);
        assert_eq!(q.dead_letters().unwrap(), ["poison"]);
        assert!(q.receive(10, Duration::ZERO).await.unwrap().is_empty());
    }

    /// The local stand-in for the bucket notification that starts the resize function.
    #[tokio::test]
    async fn fs_put_notifies_with_an_s3_event() {
        let dir = tempfile::tempdir().unwrap();
        let queue = Arc::new(SqliteQueue::new(db(&dir), "resize", 0));
        let objects = FsObjects::new(dir.path().join("objects")).notify(vec!["originals/".to_owned()], queue.clone());

        // When objects are put inside and outside the notified prefix.
        objects.put("originals/my photo.jpg", Bytes::from_static(b"12345"), "image/jpeg").await.unwrap();
        objects.put("thumbs/small.jpg", Bytes::from_static(b"1"), "image/jpeg").await.unwrap();

        // Then one S3 event arrives, for the notified object.
        let got = queue.receive(10, Duration::from_secs(60)).await.unwrap();
        assert_eq!(got.len(), 1, "{got:?}");
        let event: S3Event = serde_json::from_str(&got[0].body).unwrap();
        let record = &event.records[0];
        assert_eq!(record.event_name.as_deref(), Some("ObjectCreated:Put"));
        let encoded = record.s3.object.key.as_deref().unwrap();
        assert_eq!(encoded, "originals/my+photo.jpg", "keys are form-encoded, as S3 does");
        let decoded: String =
            url::form_urlencoded::parse(format!("k={encoded}").as_bytes()).map(|(_, v)| v.into_owned()).collect();
        assert_eq!(decoded, "originals/my photo.jpg");
        assert_eq!(record.s3.object.size, Some(5));
        assert!(objects.exists(&decoded).await.unwrap(), "the event comes after the object");
    }

    /// Keys are paths under the root, so those that could leave it are refused.
    #[tokio::test]
    async fn fs_refuses_keys_that_leave_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let objects = FsObjects::new(dir.path().join("objects"));
        for key in ["../escape", "a/../../b", "/etc/passwd", "a//b", "a\\b", ""] {
            let res = objects.put(key, Bytes::from_static(b"x"), "text/plain").await;
            assert!(matches!(res, Err(StoreError::Backend(_))), "{key:?}: {res:?}");
        }
        assert!(!dir.path().join("escape").exists());
    }

    /// Two processes (here two connections) on one database file see one table.
    #[tokio::test]
    async fn sqlite_table_is_shared_by_connections_to_one_file() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (SqliteTable::new(db(&dir)), SqliteTable::new(db(&dir)));
        a.put(Item::new("p", "s").with("n", 0), None).await.unwrap();
        let both = futures::future::join_all((0..20).map(|i| {
            let t: &dyn Table = if i % 2 == 0 { &a } else { &b };
            t.update("p", "s", Update::new().add("n", 1), Some(Cond::lt("n", 15)))
        }))
        .await;
        assert_eq!(both.iter().filter(|r| r.is_ok()).count(), 15);
        assert_eq!(b.get("p", "s").await.unwrap().unwrap().num("n"), Some(15));
    }
}
