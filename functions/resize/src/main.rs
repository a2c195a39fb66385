//! Lambda worker for S3 ObjectCreated events on `originals/`: makes the image variants.
//! All logic is in `imghost::workers::resize`.

use aws_lambda_events::event::s3::S3Event;
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    // JSON logs when the function's log format is JSON (set in template.yaml).
    lambda_runtime::tracing::init_default_subscriber();
    let config = imghost::Config::from_env()?;
    imghost::metrics::install_emf(&config.metrics_namespace);
    let app = imghost::state::from_config(&config).await?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<S3Event>| {
        let app = app.clone();
        // An error makes Lambda retry the asynchronous invocation; only retryable failures
        // are returned as errors by the worker.
        async move {
            imghost::workers::resize::handle_s3_event(&app, &event.payload).await.map_err(lambda_runtime::Error::from)
        }
    }))
    .await
}
