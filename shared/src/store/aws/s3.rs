//! [`Objects`] on S3.

use async_trait::async_trait;
use bytes::Bytes;

use super::sdk_err;
use crate::store::{ListObjects, Object, Objects, StoreResult};

/// Cache-Control stored with every object: keys are never reused for other content.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// Objects in an S3 bucket.
#[derive(Clone, Debug)]
pub struct S3Objects {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl S3Objects {
    pub fn new(client: aws_sdk_s3::Client, bucket: String) -> Self {
        S3Objects { client, bucket }
    }

    /// Objects in `bucket`, with path-style addressing when the SDK configuration names its own
    /// endpoint (S3-compatible stores and moto seldom serve `<bucket>.<host>` names).
    pub fn from_sdk(sdk: &aws_config::SdkConfig, bucket: String) -> Self {
        let conf = aws_sdk_s3::config::Builder::from(sdk).force_path_style(sdk.endpoint_url().is_some()).build();
        S3Objects::new(aws_sdk_s3::Client::from_conf(conf), bucket)
    }
}

#[async_trait]
impl Objects for S3Objects {
    async fn put(&self, key: &str, bytes: Bytes, content_type: &str) -> StoreResult<()> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            // Keys are never reused for other content (see `Objects`), so the CDN and browsers
            // may keep what they fetch for good.
            .cache_control(IMMUTABLE)
            .body(bytes.into())
            .send()
            .await
            .map_err(|e| sdk_err("s3 PutObject", e))?;
        Ok(())
    }

    async fn get(&self, key: &str) -> StoreResult<Option<Object>> {
        let out = match self.client.get_object().bucket(&self.bucket).key(key).send().await {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
            Err(e) => return Err(sdk_err("s3 GetObject", e)),
        };
        let content_type = out.content_type().unwrap_or("application/octet-stream").to_owned();
        let bytes = out.body.collect().await.map_err(|e| sdk_err("s3 GetObject body", e))?.into_bytes();
        Ok(Some(Object { bytes, content_type }))
    }

    async fn exists(&self, key: &str) -> StoreResult<bool> {
        match self.client.head_object().bucket(&self.bucket).key(key).send().await {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(false),
            Err(e) => Err(sdk_err("s3 HeadObject", e)),
        }
    }

    async fn delete(&self, key: &str) -> StoreResult<()> {
        // S3 answers a delete of a missing key with success, which is the port's contract.
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| sdk_err("s3 DeleteObject", e))?;
        Ok(())
    }
}

#[async_trait]
impl ListObjects for S3Objects {
    async fn list(&self, after: Option<&str>, limit: usize) -> StoreResult<Vec<String>> {
        let limit = limit.max(1);
        let mut keys = Vec::new();
        let mut start_after = after.map(str::to_owned);
        // S3 returns at most 1,000 keys per call: read on until the page is full or the bucket
        // is exhausted, so that a short page means the end for both families.
        while keys.len() < limit {
            let want = i32::try_from((limit - keys.len()).min(1000)).unwrap_or(1000);
            let out = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .set_start_after(start_after.clone())
                .max_keys(want)
                .send()
                .await
                .map_err(|e| sdk_err("s3 ListObjectsV2", e))?;
            let before = keys.len();
            keys.extend(out.contents().iter().filter_map(|o| o.key().map(str::to_owned)));
            if keys.len() == before || !out.is_truncated().unwrap_or(false) {
                break;
            }
            start_after = keys.last().cloned();
        }
        Ok(keys)
    }
}
