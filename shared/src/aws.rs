//! AWS-only helpers that are not storage: reading the admin token from SSM.

use crate::Error;

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
