//! AWS-only helpers that are not storage: the SDK's configuration, and reading the admin token
//! from SSM.

use crate::Error;

/// The SDK configuration from the environment (region, credentials, endpoint), with an HTTPS
/// client on rustls and ring. Chosen rather than the SDK's default client, which brings
/// aws-lc-rs: ring is already linked for reqwest, and one crypto library keeps every Lambda
/// binary about 2 MB smaller.
pub async fn sdk_config() -> aws_config::SdkConfig {
    loader().load().await
}

/// Like [`sdk_config`], with every service at `endpoint` (an S3-compatible store, moto).
pub async fn sdk_config_at(endpoint: &str) -> aws_config::SdkConfig {
    loader().endpoint_url(endpoint).load().await
}

/// The SDK configuration inside Lambda, from what Lambda gives every function: its region and
/// its role's temporary credentials (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
/// `AWS_SESSION_TOKEN`), plus `endpoint` when one is configured (tests, against moto).
///
/// Built by hand rather than with [`sdk_config`]: the SDK's default chain also reads profile
/// files, SSO, STS web identity, ECS and EC2 instance metadata, none of which a Lambda function
/// uses, and linking them costs every function binary about a megabyte. Retries, timeouts and
/// the sleep and time sources take the SDK clients' defaults for the behaviour version.
pub fn lambda_sdk_config(region: Option<String>, endpoint: Option<String>) -> aws_config::SdkConfig {
    use aws_config::environment::EnvironmentVariableCredentialsProvider;
    use aws_credential_types::provider::SharedCredentialsProvider;
    let mut builder = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(region.map(aws_config::Region::new))
        .credentials_provider(SharedCredentialsProvider::new(EnvironmentVariableCredentialsProvider::new()))
        .http_client(https_client());
    builder.set_endpoint_url(endpoint);
    builder.build()
}

fn https_client() -> aws_sdk_s3::config::SharedHttpClient {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::Ring)).build_https()
}

fn loader() -> aws_config::ConfigLoader {
    aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(https_client())
}

/// Reads and decrypts an SSM SecureString parameter. Called once per cold start.
pub async fn read_secure_parameter(sdk: &aws_config::SdkConfig, name: &str) -> Result<String, Error> {
    let ssm = aws_sdk_ssm::Client::new(sdk);
    let out = ssm.get_parameter().name(name).with_decryption(true).send().await.map_err(|e| {
        Error::internal(format!("reading SSM parameter {name}: {}", aws_sdk_ssm::error::DisplayErrorContext(&e)))
    })?;
    out.parameter
        .and_then(|p| p.value)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| Error::internal(format!("SSM parameter {name} is empty")))
}
