//! The table port, one item at a time: get, conditional put, update and delete, the condition
//! language they share, transactions, and writers racing on one item. Reading many items at once
//! is in `query.rs`, since paging and cursors are a subject of their own.

use imghost::store::{Cond, Item, Query, StoreError, Table, TxOp, Update};

use crate::is_condition_failed;

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
        // (what, an item whose keys break DynamoDB's rules)
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
    let after = t.update("upd", "1", Update::new().add("n", -5).set("name", "b").remove("keep"), None).await.unwrap();

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

/// A transaction of one operation of each kind; `fail` makes that operation's condition
/// false.
fn tx_ops(fail: Option<usize>) -> Vec<TxOp> {
    let pick = |i: usize, ok: Cond, bad: Cond| if fail == Some(i) { bad } else { ok };
    vec![
        TxOp::Put { item: Item::new("tx", "new").with("v", 1), cond: Some(pick(0, Cond::NotExists, Cond::Exists)) },
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

/// Behaviour only the embedded family can be held to.
mod embedded_only {
    use imghost::store::sqlite::SqliteTable;

    use super::*;
    use crate::embedded::db;

    /// See `super::ordering_type_mismatch_cases` for why these are embedded-only.
    #[tokio::test]
    async fn ordering_comparisons_across_types_are_false() {
        let dir = tempfile::tempdir().unwrap();
        let table = SqliteTable::new(db(&dir));
        super::check_conditions(&table, super::ordering_type_mismatch_cases()).await;
    }

    #[tokio::test]
    async fn index_keys_must_be_strings() {
        let dir = tempfile::tempdir().unwrap();
        super::index_keys_must_be_strings(&SqliteTable::new(db(&dir))).await;
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
