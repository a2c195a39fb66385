//! Queries on the table port: sort-key conditions in both directions, the byte order of keys,
//! pages and the cursors that join them, and the sparse global secondary index `gsi1`. Every
//! listing in the service is one of these queries, so both families must page identically.

use std::collections::BTreeSet;

use imghost::store::{Cursor, Item, Query, SkCond, StoreError, Table, Update};

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
