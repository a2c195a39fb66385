//! Lambda for Imgur keep-alive entries. All logic is in `imghost::http::keepalive`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    // JSON logs when the function's log format is JSON (set in template.yaml).
    lambda_http::tracing::init_default_subscriber();
    let config = imghost::Config::from_env()?;
    imghost::metrics::install_emf(&config.metrics_namespace);
    let app = imghost::state::from_config(&config).await?;
    imghost_lambda::run_http(imghost::http::keepalive::router(app)).await
}
