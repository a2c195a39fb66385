//! [`Queue`] on SQS.

use std::time::Duration;

use async_trait::async_trait;

use super::sdk_err;
use crate::store::rules::visibility_secs;
use crate::store::{Delivery, Queue, StoreError, StoreResult};

/// A queue on SQS.
#[derive(Clone, Debug)]
pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    url: String,
    wait_secs: i32,
}

impl SqsQueue {
    /// The queue at `queue_url`. Receives do not wait for messages (short polling), like the
    /// embedded family's; see [`SqsQueue::with_wait_time`].
    pub fn new(client: aws_sdk_sqs::Client, queue_url: String) -> Self {
        SqsQueue { client, url: queue_url, wait_secs: 0 }
    }

    /// The queue at `queue_url`, with a client of the SDK configuration `sdk` (a tool's own,
    /// where the Lambdas build theirs in `state::from_config`).
    pub fn from_sdk(sdk: &aws_config::SdkConfig, queue_url: String) -> Self {
        SqsQueue::new(aws_sdk_sqs::Client::new(sdk), queue_url)
    }

    /// Makes receives long-poll: wait up to `wait` (at most 20 s) for a message to arrive before
    /// returning an empty batch. Short polling on real SQS samples only some servers, so a
    /// consumer that loops on receive should prefer a wait of a few seconds.
    pub fn with_wait_time(mut self, wait: Duration) -> Self {
        self.wait_secs = i32::try_from(wait.as_secs().min(20)).unwrap_or(20);
        self
    }
}

fn secs_i32(d: Duration) -> i32 {
    i32::try_from(visibility_secs(d)).unwrap_or(i32::MAX)
}

#[async_trait]
impl Queue for SqsQueue {
    async fn send_batch(&self, bodies: &[String]) -> StoreResult<()> {
        use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
        // SQS takes ten messages per call; longer batches go in several calls.
        for chunk in bodies.chunks(10) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, body)| SendMessageBatchRequestEntry::builder().id(i.to_string()).message_body(body).build())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| StoreError::backend(format!("sqs batch entry: {e}")))?;
            let out = self
                .client
                .send_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| sdk_err("sqs SendMessageBatch", e))?;
            if let Some(f) = out.failed().first() {
                return Err(StoreError::backend(format!(
                    "sqs SendMessageBatch: {} of {} messages failed, first: {} {}",
                    out.failed().len(),
                    chunk.len(),
                    f.code(),
                    f.message().unwrap_or_default()
                )));
            }
        }
        Ok(())
    }

    async fn receive(&self, max: usize, visibility: Duration) -> StoreResult<Vec<Delivery>> {
        use aws_sdk_sqs::types::MessageSystemAttributeName;
        let max = max.min(10);
        if max == 0 {
            return Ok(Vec::new());
        }
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(i32::try_from(max).unwrap_or(10))
            .visibility_timeout(secs_i32(visibility))
            .wait_time_seconds(self.wait_secs)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|e| sdk_err("sqs ReceiveMessage", e))?;
        let mut deliveries = Vec::new();
        for m in out.messages() {
            let (Some(id), Some(receipt)) = (m.message_id(), m.receipt_handle()) else {
                return Err(StoreError::backend("sqs ReceiveMessage: message without id or receipt handle"));
            };
            let receive_count = m
                .attributes()
                .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                .and_then(|n| n.parse().ok())
                .unwrap_or(1);
            deliveries.push(Delivery {
                message_id: id.to_owned(),
                receipt: receipt.to_owned(),
                body: m.body().unwrap_or_default().to_owned(),
                receive_count,
            });
        }
        Ok(deliveries)
    }

    async fn ack(&self, receipt: &str) -> StoreResult<()> {
        match self.client.delete_message().queue_url(&self.url).receipt_handle(receipt).send().await {
            Ok(_) => Ok(()),
            // The message is gone already (or the receipt was never valid): nothing is left to do.
            Err(e) if e.as_service_error().is_some_and(|s| s.is_receipt_handle_is_invalid()) => {
                tracing::debug!("ack of an invalid receipt handle ignored");
                Ok(())
            }
            Err(e) => Err(sdk_err("sqs DeleteMessage", e)),
        }
    }

    async fn retry_after(&self, receipt: &str, delay: Duration) -> StoreResult<()> {
        let res = self
            .client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .visibility_timeout(secs_i32(delay))
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            // The message was deleted or its visibility already ran out: it will be (or was)
            // delivered again anyway, which is what a retry asks for. The embedded family
            // likewise ignores a receipt that no longer matches.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_receipt_handle_is_invalid() || s.is_message_not_inflight()) =>
            {
                tracing::debug!("retry of a message no longer in flight ignored");
                Ok(())
            }
            Err(e) => Err(sdk_err("sqs ChangeMessageVisibility", e)),
        }
    }
}
