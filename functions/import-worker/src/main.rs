//! Lambda worker for the import queue: each SQS message is one URL of an import job. All logic
//! is in `imghost::workers::import`.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    // JSON logs when the function's log format is JSON (set in template.yaml).
    lambda_runtime::tracing::init_default_subscriber();
    let config = imghost::Config::from_env()?;
    imghost::metrics::install_emf(&config.metrics_namespace);
    let app = imghost::state::from_config(&config).await?;
    // Public addresses only: there is no setting that relaxes this.
    let fetcher = imghost::fetch::Fetcher::public();
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let (app, fetcher) = (app.clone(), fetcher.clone());
        // Never an error: failures are reported per message in the partial batch response.
        async move {
            Ok::<SqsBatchResponse, lambda_runtime::Error>(
                imghost::workers::import::handle_sqs_event(&app, &fetcher, &event.payload).await,
            )
        }
    }))
    .await
}
