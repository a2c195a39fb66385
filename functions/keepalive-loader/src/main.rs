//! Lambda for keep-alive loads, fed by SQS. All logic is in `imghost::workers::keepalive`.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use imghost::keepalive::loader::HttpsTransport;
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    // JSON logs when the function's log format is JSON (set in template.yaml).
    lambda_runtime::tracing::init_default_subscriber();
    let config = imghost::Config::from_env()?;
    imghost::metrics::install_emf(&config.metrics_namespace);
    let app = imghost::state::from_config(&config).await?;
    // The real transport, always: the dry run exists only in local mode.
    let transport = std::sync::Arc::new(HttpsTransport::new());
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let (app, transport) = (app.clone(), transport.clone());
        // Never an error: failures are reported per message in the partial batch response.
        async move {
            Ok::<SqsBatchResponse, lambda_runtime::Error>(
                imghost::workers::keepalive::handle_sqs_event(&app, &*transport, &event.payload).await,
            )
        }
    }))
    .await
}
