//! Reading a whole table page by page, which `imghost migrate` needs to copy it to the other
//! family. The port is separate from `Table` so that no request path can scan.

use std::collections::BTreeSet;

use imghost::store::{Item, ScanTable};

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
