//! The import worker: one message per URL of an import job (see [`crate::imports`]).

use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use tracing::{info, instrument, warn};

use super::{Backoff, Outcome};
use crate::fetch::Fetcher;
use crate::imports::{self, Disposition};
use crate::state::App;

/// Between tries of one URL: 10 s, 20 s, 40 s, then 80 s, which gives a struggling origin room.
/// A failure on our side waits as long, counted by receives.
pub const BACKOFF: Backoff = Backoff::new(Duration::from_secs(10), Duration::from_secs(80));

/// Handles one message: fetch its URL, ingest the bytes, settle the URL in its job.
pub async fn handle(app: &App, fetcher: &Fetcher, body: &str, receives: u32) -> Outcome {
    match imports::handle(app, fetcher, body, receives).await {
        Ok(Disposition::Finished) => Outcome::Ack,
        Ok(Disposition::Retry { tries }) => {
            let delay = BACKOFF.after(tries);
            info!(tries, ?delay, "import will be retried");
            Outcome::RetryAfter(delay)
        }
        Err(e) => {
            let delay = BACKOFF.after(receives);
            warn!(error = %e, ?delay, "import message failed; it will be delivered again");
            Outcome::RetryAfter(delay)
        }
    }
}

/// Handles a batch from SQS, its messages concurrently (each mostly waits on a remote server).
#[instrument(skip_all, fields(records = event.records.len()))]
pub async fn handle_sqs_event(app: &App, fetcher: &Fetcher, event: &SqsEvent) -> SqsBatchResponse {
    super::sqs_batch(event, app.imports.as_deref(), |body, receives| async move {
        handle(app, fetcher, &body, receives).await
    })
    .await
}
