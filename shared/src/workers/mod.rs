//! Background workers: one layer, whatever carries the messages.
//!
//! Each worker takes one message body and how many times it has been received, and answers
//! what becomes of the message: an [`Outcome`]. The Lambda mains map outcomes onto SQS partial
//! batch responses with [`sqs_batch`]; the local runner maps them onto its SQLite queue. Neither
//! decides anything about a message itself, so there is one dispatch and one back-off.

use std::future::Future;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use tracing::warn;

use crate::metrics;
use crate::store::Queue;

pub mod avif;
pub mod import;
pub mod keepalive;
pub mod resize;

/// One variant pass being timed, for the `VariantPasses`, `VariantFailures` and
/// `VariantLatency` metrics.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pass {
    name: &'static str,
    started: std::time::Instant,
}

impl Pass {
    /// The first pass (JPEG or PNG, and WebP) and the later AVIF pass, as the `Pass` dimension
    /// names them.
    pub(crate) const FIRST: &'static str = "first";
    pub(crate) const AVIF: &'static str = "avif";

    pub(crate) fn start(name: &'static str) -> Pass {
        Pass { name, started: std::time::Instant::now() }
    }

    /// Counts the pass as done, with its time.
    pub(crate) fn stored(self) {
        metrics::count(&metrics::VARIANT_PASSES, Some(self.name), 1);
        metrics::observe(&metrics::VARIANT_LATENCY, Some(self.name), metrics::millis_since(self.started));
    }

    /// Counts the pass as failed and hands back `error`, for use in `map_err`.
    pub(crate) fn failed<E>(self, error: E) -> E {
        metrics::count(&metrics::VARIANT_FAILURES, Some(self.name), 1);
        error
    }
}

/// What becomes of a message once its worker has handled it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Done for good (handled, failed for good, or nothing to do): delete the message.
    Ack,
    /// Deliver the message again after this delay.
    RetryAfter(Duration),
}

/// Exponential back-off: the first delay, doubled at each further try, never above the cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub first: Duration,
    pub cap: Duration,
}

impl Backoff {
    pub const fn new(first: Duration, cap: Duration) -> Self {
        Backoff { first, cap }
    }

    /// The delay after the `tries`-th failed try (1 for the first).
    pub fn after(&self, tries: u32) -> Duration {
        // Capping the shift first keeps the multiplication far from overflow.
        let doubled = self.first.saturating_mul(1 << tries.saturating_sub(1).min(16));
        doubled.min(self.cap)
    }
}

/// Back-off after a failure on our side (storage, a task that died): 1 s, 2 s, 4 s, … 60 s.
pub const STORAGE_BACKOFF: Backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));

/// Handles every record of an SQS batch concurrently with `handle(body, receive_count)` and
/// answers a partial batch response: a message to retry is listed as failed, so SQS delivers
/// it again while the others are deleted. Where the function may change the queue's visibility
/// (`queue` is given), the retry's delay is set first, so it waits that long rather than the
/// queue's whole visibility timeout.
pub async fn sqs_batch<F, Fut>(event: &SqsEvent, queue: Option<&dyn Queue>, handle: F) -> SqsBatchResponse
where
    F: Fn(String, u32) -> Fut,
    Fut: Future<Output = Outcome>,
{
    let handle = &handle;
    let retries = futures::future::join_all(event.records.iter().map(|record| async move {
        let body = record.body.clone().unwrap_or_default();
        let receives = record.attributes.get("ApproximateReceiveCount").and_then(|c| c.parse().ok()).unwrap_or(1);
        let Outcome::RetryAfter(delay) = handle(body, receives).await else { return None };
        if let (Some(queue), Some(receipt)) = (queue, record.receipt_handle.as_deref())
            && let Err(e) = queue.retry_after(receipt, delay).await
        {
            // The message comes back after the queue's visibility timeout instead.
            warn!(error = %e, "setting the retry delay failed");
        }
        Some(record.message_id.clone().unwrap_or_default())
    }))
    .await;
    let mut response = SqsBatchResponse::default();
    for id in retries.into_iter().flatten() {
        response.add_failure(id);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_first_delay_up_to_the_cap() {
        let cases: &[(Backoff, &[(u32, u64)])] = &[
            (STORAGE_BACKOFF, &[(0, 1), (1, 1), (2, 2), (3, 4), (6, 32), (7, 60), (40, 60)]),
            (import::BACKOFF, &[(1, 10), (2, 20), (3, 40), (4, 80), (5, 80), (u32::MAX, 80)]),
        ];
        for (backoff, steps) in cases {
            for (tries, secs) in *steps {
                assert_eq!(backoff.after(*tries), Duration::from_secs(*secs), "{backoff:?} after {tries}");
            }
        }
    }
}
