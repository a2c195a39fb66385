//! Lambda worker for the AVIF queue: each SQS message names one still image whose AVIF
//! variants are to be made, the later pass after `resize`. All logic is in
//! `imghost::workers::avif`.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    // JSON logs when the function's log format is JSON (set in template.yaml).
    lambda_runtime::tracing::init_default_subscriber();
    let config = imghost::Config::from_env()?;
    imghost::metrics::install_emf(&config.metrics_namespace);
    let app = imghost::state::from_config(&config).await?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let app = app.clone();
        // Never an error: failures are reported per message in the partial batch response.
        async move {
            Ok::<SqsBatchResponse, lambda_runtime::Error>(
                imghost::workers::avif::handle_sqs_event(&app, &event.payload).await,
            )
        }
    }))
    .await
}
