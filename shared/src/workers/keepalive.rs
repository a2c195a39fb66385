//! Keep-alive workers: the scheduled sweep and the SQS-fed loader (see [`crate::keepalive`]).

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use time::OffsetDateTime;
use tracing::{instrument, warn};

use crate::error::Result;
use crate::keepalive::loader::{self, Transport};
use crate::keepalive::sweep::{self, SweepReport};
use crate::state::App;

/// The scheduled sweep. The schedule runs it with retries off: a failed sweep is simply
/// followed by the next one, and a retry could only repeat claims that already hold.
#[instrument(skip_all)]
pub async fn run_sweep(app: &App) -> Result<SweepReport> {
    sweep::sweep(app, OffsetDateTime::now_utc()).await
}

/// Handles a batch of load messages, one request each at most, concurrently. A message whose
/// handling failed on our side (storage) is reported for redelivery; the claim makes the
/// redelivery safe (a load already started is never started again).
#[instrument(skip_all, fields(records = event.records.len()))]
pub async fn handle_sqs_event(app: &App, transport: &dyn Transport, event: &SqsEvent) -> SqsBatchResponse {
    let now = OffsetDateTime::now_utc();
    let failures = futures::future::join_all(event.records.iter().map(|record| async move {
        let body = record.body.as_deref().unwrap_or_default();
        match loader::handle(app, transport, body, now).await {
            Ok(()) => None,
            Err(e) => {
                warn!(error = %e, "keep-alive load failed on our side; it will be delivered again");
                Some(record.message_id.clone().unwrap_or_default())
            }
        }
    }))
    .await;
    let mut response = SqsBatchResponse::default();
    for id in failures.into_iter().flatten() {
        response.add_failure(id);
    }
    response
}
