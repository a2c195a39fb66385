//! The import worker: one SQS message per URL of an import job (see [`crate::imports`]).

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use tracing::{instrument, warn};

use crate::fetch::Fetcher;
use crate::imports::{self, Disposition};
use crate::state::App;

/// Handles a batch from SQS, its messages concurrently (each mostly waits on a remote server).
///
/// Answers a partial batch response: a message that needs another try is listed as failed, so
/// SQS delivers it again while the others are deleted. Before listing it, its visibility is set
/// to the back-off delay through `app.imports`, so the retry waits that long rather than the
/// queue's whole visibility timeout.
#[instrument(skip_all, fields(records = event.records.len()))]
pub async fn handle_sqs_event(app: &App, fetcher: &Fetcher, event: &SqsEvent) -> SqsBatchResponse {
    let outcomes = futures::future::join_all(event.records.iter().map(|record| async move {
        let body = record.body.as_deref().unwrap_or_default();
        let receives = record.attributes.get("ApproximateReceiveCount").and_then(|c| c.parse().ok()).unwrap_or(1);
        let retry = match imports::handle(app, fetcher, body, receives).await {
            Ok(Disposition::Finished) => None,
            Ok(Disposition::RetryAfter(delay)) => Some(delay),
            Err(e) => {
                warn!(error = %e, "import message failed; it will be delivered again");
                Some(imports::backoff(receives))
            }
        };
        if let (Some(delay), Some(queue), Some(receipt)) = (retry, &app.imports, record.receipt_handle.as_deref())
            && let Err(e) = queue.retry_after(receipt, delay).await
        {
            // The message comes back after the queue's visibility timeout instead.
            warn!(error = %e, "setting the retry delay failed");
        }
        retry.map(|_| record.message_id.clone().unwrap_or_default())
    }))
    .await;
    let mut response = SqsBatchResponse::default();
    for id in outcomes.into_iter().flatten() {
        response.add_failure(id);
    }
    response
}
