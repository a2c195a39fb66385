//! Keep-alive workers: the scheduled sweep and the loader (see [`crate::keepalive`]).

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use time::OffsetDateTime;
use tracing::{instrument, warn};

use super::{Outcome, STORAGE_BACKOFF};
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

/// Handles one load message: at most one request. A failure on our side (storage) is retried;
/// the claim makes the redelivery safe (a load already started is never started again).
pub async fn handle(app: &App, transport: &dyn Transport, body: &str, receives: u32) -> Outcome {
    match loader::handle(app, transport, body, OffsetDateTime::now_utc()).await {
        Ok(()) => Outcome::Ack,
        Err(e) => {
            let delay = STORAGE_BACKOFF.after(receives);
            warn!(error = %e, ?delay, "keep-alive load failed on our side; it will be delivered again");
            Outcome::RetryAfter(delay)
        }
    }
}

/// Handles a batch of load messages from SQS, concurrently. A retry waits for the queue's
/// visibility timeout: the loader is not allowed to change visibility, since the sweep's lease,
/// not a quick retry, is what brings a missed load back.
#[instrument(skip_all, fields(records = event.records.len()))]
pub async fn handle_sqs_event(app: &App, transport: &dyn Transport, event: &SqsEvent) -> SqsBatchResponse {
    super::sqs_batch(event, None, |body, receives| async move { handle(app, transport, &body, receives).await }).await
}
