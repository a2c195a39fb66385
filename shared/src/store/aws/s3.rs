//! [`Objects`] on S3.

use async_trait::async_trait;
use bytes::Bytes;

use super::sdk_err;
use crate::store::{ListObjects, Object, ObjectRead, Objects, StoreResult};

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

    async fn read(&self, key: &str, range: Option<std::ops::Range<u64>>) -> StoreResult<Option<ObjectRead>> {
        let mut request = self.client.get_object().bucket(&self.bucket).key(key);
        // An empty range has no HTTP spelling; it is read as the whole object and clamped below.
        if let Some(r) = range.as_ref().filter(|r| r.end > r.start) {
            request = request.range(format!("bytes={}-{}", r.start, r.end - 1));
        }
        let out = match request.send().await {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
            // A range starting past the end: the object exists, and nothing of it is asked for.
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 416) => {
                let head = self.client.head_object().bucket(&self.bucket).key(key).send().await;
                let head = head.map_err(|e| sdk_err("s3 HeadObject", e))?;
                let total = head.content_length().unwrap_or(0).max(0) as u64;
                let body = Box::pin(futures::stream::empty());
                return Ok(Some(ObjectRead { total, range: total..total, body }));
            }
            Err(e) => return Err(sdk_err("s3 GetObject", e)),
        };
        let length = out.content_length().unwrap_or(0).max(0) as u64;
        // `Content-Range: bytes a-b/total` on a ranged answer; the length is the total otherwise.
        let total =
            out.content_range().and_then(|c| c.rsplit_once('/')).and_then(|(_, t)| t.parse().ok()).unwrap_or(length);
        let range = crate::store::clamp_range(range, total);
        // The whole object was sent for an empty range: read none of it.
        let take = if range.is_empty() { 0 } else { length };
        let body = futures::stream::try_unfold((out.body, take), |(mut body, left)| async move {
            if left == 0 {
                return Ok(None);
            }
            match body.try_next().await.map_err(|e| sdk_err("s3 GetObject body", e))? {
                Some(chunk) => {
                    let n = (chunk.len() as u64).min(left);
                    Ok(Some((chunk.slice(..n as usize), (body, left - n))))
                }
                None => Ok(None),
            }
        });
        Ok(Some(ObjectRead { total, range, body: Box::pin(body) }))
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
