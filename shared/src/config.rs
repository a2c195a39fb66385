//! Typed configuration, read once at start-up.

use std::path::PathBuf;

/// Where durable state lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    /// SQLite and files under one data directory.
    Local { data_dir: PathBuf },
    /// S3, DynamoDB and SQS, in `region` (`AWS_REGION`, which Lambda sets), at `endpoint`
    /// when given (`AWS_ENDPOINT_URL`: how tests point the functions at moto).
    Aws { bucket: String, table: String, region: Option<String>, endpoint: Option<String> },
}

#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    pub storage: Storage,
    /// Base URL for links, e.g. `https://img.example.com`. When unset, links are built from the
    /// request's `Host` (which API Gateway sets to the API's own domain) over HTTPS, or from
    /// `X-Forwarded-Host`/`-Proto` when `trust_proxy` is set.
    pub public_url: Option<String>,
    /// A trusted proxy in front sets `X-Forwarded-Host` and `X-Forwarded-Proto`
    /// (`IMGHOST_TRUST_PROXY=1`). Off by default: a client can send those headers too.
    pub trust_proxy: bool,
    /// Name of the SSM SecureString parameter holding the admin token (AWS).
    pub admin_token_param: Option<String>,
    /// The admin token itself (local mode only; never set in the template).
    pub admin_token: Option<String>,
    /// URL of the SQS queue of import messages (AWS; locally the queue is in SQLite).
    pub import_queue_url: Option<String>,
    /// URL of the SQS queue of keep-alive loads (AWS).
    pub keepalive_queue_url: Option<String>,
    /// URL of the SQS queue of AVIF passes (AWS).
    pub avif_queue_url: Option<String>,
    /// The CloudWatch namespace of the metrics the Lambda functions print
    /// (`IMGHOST_METRICS_NAMESPACE`, default `imghost`; the template names it after the stack).
    pub metrics_namespace: String,
}

/// Written by hand so that the admin token can never reach a log through `{:?}`.
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("storage", &self.storage)
            .field("public_url", &self.public_url)
            .field("trust_proxy", &self.trust_proxy)
            .field("admin_token_param", &self.admin_token_param)
            .field("admin_token", &self.admin_token.as_ref().map(|_| "<redacted>"))
            .field("import_queue_url", &self.import_queue_url)
            .field("keepalive_queue_url", &self.keepalive_queue_url)
            .field("avif_queue_url", &self.avif_queue_url)
            .field("metrics_namespace", &self.metrics_namespace)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

impl Config {
    /// Reads `IMGHOST_*` variables:
    /// `IMGHOST_STORAGE` (`local`, the default, or `aws`), `IMGHOST_DATA_DIR` (default `./data`),
    /// `IMGHOST_BUCKET`, `IMGHOST_TABLE`, `IMGHOST_PUBLIC_URL`,
    /// `IMGHOST_ADMIN_TOKEN_PARAM`, `IMGHOST_ADMIN_TOKEN`, `IMGHOST_IMPORT_QUEUE_URL`,
    /// `IMGHOST_KEEPALIVE_QUEUE_URL`, `IMGHOST_AVIF_QUEUE_URL`, `IMGHOST_METRICS_NAMESPACE`,
    /// `IMGHOST_TRUST_PROXY`; with AWS storage also `AWS_REGION`
    /// (or `AWS_DEFAULT_REGION`) and `AWS_ENDPOINT_URL`.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Same as [`Config::from_env`] with an explicit source, for tests.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let storage = match get("IMGHOST_STORAGE").as_deref().unwrap_or("local") {
            "local" => Storage::Local { data_dir: get("IMGHOST_DATA_DIR").unwrap_or_else(|| "data".into()).into() },
            "aws" => Storage::Aws {
                bucket: get("IMGHOST_BUCKET")
                    .ok_or_else(|| ConfigError("IMGHOST_BUCKET is required with IMGHOST_STORAGE=aws".into()))?,
                table: get("IMGHOST_TABLE")
                    .ok_or_else(|| ConfigError("IMGHOST_TABLE is required with IMGHOST_STORAGE=aws".into()))?,
                region: get("AWS_REGION").or_else(|| get("AWS_DEFAULT_REGION")),
                endpoint: get("AWS_ENDPOINT_URL"),
            },
            other => return Err(ConfigError(format!("IMGHOST_STORAGE must be local or aws, not {other:?}"))),
        };
        let url = |k: &str| get(k).map(|u| u.trim_end_matches('/').to_owned());
        Ok(Config {
            storage,
            public_url: url("IMGHOST_PUBLIC_URL"),
            trust_proxy: matches!(get("IMGHOST_TRUST_PROXY").as_deref(), Some("1" | "true")),
            admin_token_param: get("IMGHOST_ADMIN_TOKEN_PARAM"),
            admin_token: get("IMGHOST_ADMIN_TOKEN"),
            import_queue_url: get("IMGHOST_IMPORT_QUEUE_URL"),
            keepalive_queue_url: get("IMGHOST_KEEPALIVE_QUEUE_URL"),
            avif_queue_url: get("IMGHOST_AVIF_QUEUE_URL"),
            metrics_namespace: get("IMGHOST_METRICS_NAMESPACE").unwrap_or_else(|| "imghost".to_owned()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_to_local_storage_in_data() {
        let c = Config::from_lookup(|_| None).unwrap();
        assert_eq!(c.storage, Storage::Local { data_dir: "data".into() });
        assert_eq!(c.public_url, None);
    }

    #[test]
    fn aws_storage_needs_bucket_and_table() {
        let env = |k: &str| match k {
            "IMGHOST_STORAGE" => Some("aws".to_owned()),
            "IMGHOST_BUCKET" => Some("b".to_owned()),
            _ => None,
        };
        assert!(Config::from_lookup(env).is_err());
        let env = |k: &str| match k {
            "IMGHOST_STORAGE" => Some("aws".to_owned()),
            "IMGHOST_BUCKET" => Some("b".to_owned()),
            "IMGHOST_TABLE" => Some("t".to_owned()),
            "IMGHOST_PUBLIC_URL" => Some("https://img.example/".to_owned()),
            _ => None,
        };
        let c = Config::from_lookup(env).unwrap();
        assert_eq!(c.storage, Storage::Aws { bucket: "b".into(), table: "t".into(), region: None, endpoint: None });
        assert_eq!(c.public_url.as_deref(), Some("https://img.example"), "a trailing slash is trimmed");
    }

    #[test]
    fn debug_output_never_shows_the_admin_token() {
        let c = Config::from_lookup(|k| (k == "IMGHOST_ADMIN_TOKEN").then(|| "s3cret-token".to_owned())).unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("s3cret-token") && shown.contains("<redacted>"), "{shown}");
    }

    #[test]
    fn unknown_storage_is_an_error() {
        assert!(Config::from_lookup(|k| (k == "IMGHOST_STORAGE").then(|| "redis".to_owned())).is_err());
    }
}
