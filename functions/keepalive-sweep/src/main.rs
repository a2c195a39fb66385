//! Lambda for the hourly keep-alive sweep, invoked by an EventBridge schedule. All logic is in
//! `imghost::workers::keepalive`.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    // JSON logs when the function's log format is JSON (set in template.yaml).
    lambda_runtime::tracing::init_default_subscriber();
    let config = imghost::Config::from_env()?;
    imghost::metrics::install_emf(&config.metrics_namespace);
    let app = imghost::state::from_config(&config).await?;
    lambda_runtime::run(service_fn(|_: LambdaEvent<EventBridgeEvent<serde_json::Value>>| {
        let app = app.clone();
        async move { imghost::workers::keepalive::run_sweep(&app).await.map_err(lambda_runtime::Error::from) }
    }))
    .await
}
