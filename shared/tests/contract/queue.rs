//! The queue port: sending in batches, receiving with a visibility timeout, acknowledging, and
//! making a message visible again after a delay.

use std::collections::BTreeSet;
use std::time::Duration;

use imghost::store::{Delivery, Queue};

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

/// Behaviour only the embedded family can be held to.
mod embedded_only {
    use imghost::store::sqlite::SqliteQueue;

    use super::*;
    use crate::embedded::db;

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
}
