//! The object port (bytes under a key, with their content type) and its listing, which
//! `imghost migrate` uses to copy every object to the other family.

use bytes::Bytes;
use imghost::store::{ListObjects, Objects};

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

pub async fn object_ranges_are_read_in_bounded_chunks(o: &dyn Objects) {
    use futures::TryStreamExt;
    // Given an object of 300,000 bytes (several chunks),
    let bytes: Bytes = (0..300_000u32).map(|i| (i % 251) as u8).collect::<Vec<u8>>().into();
    o.put("big", bytes.clone(), "image/png").await.unwrap();
    let total = bytes.len() as u64;

    // when ranges of it are read, whole, inside, across its end, and past it,
    let cases: &[(Option<std::ops::Range<u64>>, std::ops::Range<u64>)] = &[
        (None, 0..total),
        (Some(0..1), 0..1),
        (Some(70_000..200_001), 70_000..200_001),
        (Some(total - 10..total + 500), total - 10..total),
        (Some(total + 5..total + 9), total..total),
    ];
    for (asked, want) in cases {
        let read = o.read("big", asked.clone()).await.unwrap().expect("the object is there");
        // then each answer says the object's size and the range it covers,
        assert_eq!((read.total, &read.range), (total, want), "{asked:?}");
        let chunks: Vec<Bytes> = read.body.try_collect().await.unwrap();
        // and streams exactly those bytes, in chunks no larger than the bound (S3's network
        // chunks are its own; the embedded family's are the port's).
        let got: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
        assert_eq!(got, bytes[want.start as usize..want.end as usize], "{asked:?}");
        assert!(chunks.iter().all(|c| c.len() <= 1 << 20), "{asked:?}");
    }

    // A missing object reads as none.
    assert!(o.read("missing/key", Some(0..1)).await.unwrap().is_none());
}

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

/// Behaviour only the embedded family can be held to.
mod embedded_only {
    use std::sync::Arc;
    use std::time::Duration;

    use aws_lambda_events::event::s3::S3Event;
    use imghost::store::fs::FsObjects;
    use imghost::store::sqlite::SqliteQueue;
    use imghost::store::{Queue, StoreError};

    use super::*;
    use crate::embedded::db;

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
}
