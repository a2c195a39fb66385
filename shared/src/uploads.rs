//! Large uploads that bypass the API: `POST /v1/uploads` hands out a signed form that lets the
//! client put one file of up to 50 MiB straight into the bucket under `incoming/<upload_id>`;
//! the object-created event then runs the same ingest as a direct upload, and
//! `GET /v1/uploads/{upload_id}` reports how it went.
//!
//! The Rust SDK has no presigned POST, so the SigV4 POST policy is signed here. Locally the
//! form points at the local server instead, which accepts the same form.
//!
//! The upload's delete token is made when the form is handed out and shown only then; the
//! ingest attaches its digest to the image, so the token works once the image exists.

use std::time::Duration;

use aws_credential_types::provider::ProvideCredentials;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::json;
use sha2::Sha256;
use time::OffsetDateTime;
use time::macros::format_description;
use tracing::{info, instrument, warn};

use crate::clock;
use crate::error::{Error, Refusal, Result};
use crate::images::{self, ImageView};
use crate::secret;
use crate::state::{App, UploadTarget};
use crate::store::{Cond, Item, Update};

/// The largest file accepted through a presigned upload.
pub const MAX_UPLOAD_BYTES: u64 = 50 * 1024 * 1024;
/// How long a handed-out form stays usable.
pub const FORM_LIFETIME: Duration = Duration::from_secs(15 * 60);
/// How long an upload record is kept after it is made (DynamoDB TTL on `expires_at`).
const RECORD_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

fn upload_pk(id: &str) -> String {
    format!("UPLOAD#{id}")
}
const UPLOAD_SK: &str = "UPLOAD";

/// Object key a presigned upload lands on.
pub fn incoming_key(id: &str) -> String {
    format!("incoming/{id}")
}

/// A form the client posts, with the file as the last field named `file`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = UploadForm)]
pub struct Form {
    /// Where to post the form: the bucket's form endpoint (locally, `/v1/uploads/{upload_id}`).
    pub url: String,
    #[schema(example = "POST")]
    pub method: &'static str,
    /// The form's fields, each sent as it is, before the file.
    #[schema(value_type = std::collections::HashMap<String, String>)]
    pub fields: serde_json::Map<String, serde_json::Value>,
    #[schema(example = "file")]
    pub file_field: &'static str,
}

/// What `POST /v1/uploads` answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = UploadCreated)]
pub struct Created {
    pub upload_id: String,
    pub status_url: String,
    /// Shown once; works once the image exists.
    pub delete_token: String,
    pub form: Form,
    pub max_bytes: u64,
    pub expires_at: String,
}

/// Access key, secret and optional session token used to sign a form.
pub struct SigningCredentials<'a> {
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
    pub session_token: Option<&'a str>,
}

/// The SigV4 signing key: HMAC-SHA256 chained over date, region, service and `aws4_request`.
pub fn signing_key(secret_access_key: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let mut key = hmac(format!("AWS4{secret_access_key}").as_bytes(), date.as_bytes());
    for part in [region, service, "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    key
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// Builds and signs the POST policy for one object key: exactly that key, 1 byte to
/// `max_bytes`, until `expires`.
pub fn sign_post_policy(
    creds: &SigningCredentials<'_>,
    region: &str,
    bucket: &str,
    key: &str,
    max_bytes: u64,
    now: OffsetDateTime,
    expires: OffsetDateTime,
) -> serde_json::Map<String, serde_json::Value> {
    let date = now.format(format_description!("[year][month][day]")).unwrap_or_default();
    let amz_date = now.format(format_description!("[year][month][day]T[hour][minute][second]Z")).unwrap_or_default();
    let expiration =
        expires.format(format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].000Z")).unwrap_or_default();
    let credential = format!("{}/{date}/{region}/s3/aws4_request", creds.access_key_id);
    let mut conditions = vec![
        json!({"bucket": bucket}),
        json!({"key": key}),
        json!(["content-length-range", 1, max_bytes]),
        json!({"x-amz-algorithm": "AWS4-HMAC-SHA256"}),
        json!({"x-amz-credential": credential}),
        json!({"x-amz-date": amz_date}),
    ];
    if let Some(token) = creds.session_token {
        // Lambda's credentials are temporary; S3 needs the token both signed and sent.
        conditions.push(json!({"x-amz-security-token": token}));
    }
    let policy = json!({"expiration": expiration, "conditions": conditions}).to_string();
    let policy_b64 = STANDARD.encode(policy);
    let signature =
        hex::encode(hmac(&signing_key(creds.secret_access_key, &date, region, "s3"), policy_b64.as_bytes()));
    let mut fields = serde_json::Map::new();
    fields.insert("key".into(), key.into());
    fields.insert("x-amz-algorithm".into(), "AWS4-HMAC-SHA256".into());
    fields.insert("x-amz-credential".into(), credential.into());
    fields.insert("x-amz-date".into(), amz_date.into());
    if let Some(token) = creds.session_token {
        fields.insert("x-amz-security-token".into(), token.into());
    }
    fields.insert("policy".into(), policy_b64.into());
    fields.insert("x-amz-signature".into(), signature.into());
    fields
}

/// Hands out a form for one upload and records the upload as waiting. `link_id` names the
/// invitation link whose use was reserved for it, given back if the file fails ingest.
#[instrument(skip(app, base))]
pub async fn create(app: &App, base: &str, link_id: Option<&str>) -> Result<Created> {
    let id = secret::new_id128();
    let token = secret::new_token();
    let now = OffsetDateTime::now_utc();
    let expires = now + FORM_LIFETIME;
    let form = match &app.uploads {
        UploadTarget::Local => Form {
            url: format!("{base}/v1/uploads/{id}"),
            method: "POST",
            fields: [("key".to_owned(), serde_json::Value::from(incoming_key(&id)))].into_iter().collect(),
            file_field: "file",
        },
        UploadTarget::S3 { bucket, region, endpoint, credentials } => {
            let creds = credentials
                .provide_credentials()
                .await
                .map_err(|e| Error::internal(format!("no credentials to sign the upload form: {e}")))?;
            let signing = SigningCredentials {
                access_key_id: creds.access_key_id(),
                secret_access_key: creds.secret_access_key(),
                session_token: creds.session_token(),
            };
            let fields = sign_post_policy(&signing, region, bucket, &incoming_key(&id), MAX_UPLOAD_BYTES, now, expires);
            let url = match endpoint {
                // A custom endpoint (moto, an S3-compatible store) is addressed path-style.
                Some(e) => format!("{}/{bucket}", e.trim_end_matches('/')),
                None => format!("https://{bucket}.s3.{region}.amazonaws.com/"),
            };
            Form { url, method: "POST", fields, file_field: "file" }
        }
    };
    let expires_at = clock::rfc3339(expires);
    let item = Item::new(upload_pk(&id), UPLOAD_SK)
        .with("status", "waiting")
        .with("token_digest", secret::digest_hex(&token))
        .with("form_expires_at", expires_at.as_str())
        .with("created_at", clock::rfc3339(now))
        .with("expires_at", (now + RECORD_LIFETIME).unix_timestamp());
    let item = match link_id {
        Some(l) => item.with("link_id", l),
        None => item,
    };
    app.table.put(item, Some(Cond::NotExists)).await?;
    info!(upload_id = %id, "upload form handed out");
    Ok(Created {
        status_url: format!("{base}/v1/uploads/{id}"),
        upload_id: id,
        delete_token: token,
        form,
        max_bytes: MAX_UPLOAD_BYTES,
        expires_at,
    })
}

/// Whether a string could be an upload id, checked before touching storage.
pub fn is_upload_id(s: &str) -> bool {
    crate::secret::is_id128(s)
}

async fn get_record(app: &App, id: &str) -> Result<Item> {
    if !is_upload_id(id) {
        return Err(Error::not_found("upload"));
    }
    app.table.get(&upload_pk(id), UPLOAD_SK).await?.ok_or_else(|| Error::not_found("upload"))
}

fn form_expired(item: &Item) -> bool {
    let expires = item.str("form_expires_at").and_then(clock::parse_rfc3339);
    expires.is_none_or(|e| e < OffsetDateTime::now_utc())
}

/// How a presigned upload stands, as `GET /v1/uploads/{id}` answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UploadStatus {
    pub upload_id: String,
    /// `waiting`, `expired`, `done` or `failed`.
    #[schema(example = "done")]
    pub status: String,
    /// Whether the file's bytes were already stored (once done).
    pub duplicate: Option<bool>,
    /// The image, once done and while it exists.
    pub image: Option<ImageView>,
    /// Why ingest refused the file (once failed).
    pub error: Option<UploadFailure>,
    /// When the form stops being accepted.
    pub expires_at: Option<String>,
}

/// Why ingest refused a presigned upload's file: an error code and message as the API would
/// have answered them.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UploadFailure {
    pub code: String,
    pub message: String,
}

/// `GET /v1/uploads/{id}`: how the upload stands, with its image once it is in.
pub async fn status(app: &App, id: &str, base: &str) -> Result<UploadStatus> {
    let item = get_record(app, id).await?;
    let mut status = item.str("status").unwrap_or("waiting").to_owned();
    if status == "waiting" && form_expired(&item) {
        status = "expired".into();
    }
    let image = match item.str("image_id") {
        Some(image_id) if status == "done" => match images::get_active(app, image_id).await {
            Ok(record) => Some(ImageView::new(&record, base)),
            // Deleted since: the upload is done, the image is not there any more.
            Err(_) => None,
        },
        _ => None,
    };
    let error = item.str("error_code").map(|code| UploadFailure {
        code: code.to_owned(),
        message: item.str("error_message").unwrap_or_default().to_owned(),
    });
    Ok(UploadStatus {
        upload_id: id.to_owned(),
        status,
        duplicate: item.bool("duplicate"),
        image,
        error,
        expires_at: item.str("form_expires_at").map(str::to_owned),
    })
}

/// Local stand-in for the bucket's POST endpoint: checks the upload is waiting and stores the
/// file under `incoming/`, which notifies the worker exactly as S3 would.
#[instrument(skip(app, bytes), fields(bytes = bytes.len()))]
pub async fn receive_local(app: &App, id: &str, bytes: bytes::Bytes) -> Result<()> {
    let item = get_record(app, id).await?;
    if item.str("status") != Some("waiting") {
        return Err(Error::client(Refusal::Conflict, "already_uploaded", "this upload already has its file"));
    }
    if form_expired(&item) {
        return Err(Error::client(Refusal::Gone, "expired", "this upload form has expired"));
    }
    if bytes.is_empty() || bytes.len() as u64 > MAX_UPLOAD_BYTES {
        return Err(Error::client(
            Refusal::TooLarge,
            "file_too_large",
            format!("the file must be 1 to {MAX_UPLOAD_BYTES} bytes"),
        ));
    }
    app.objects.put(&incoming_key(id), bytes, "application/octet-stream").await?;
    Ok(())
}

/// Worker: ingests the object that arrived under `incoming/<id>`. Safe to run twice: a done or
/// failed upload is left alone, and re-attaching the same delete token is idempotent.
#[instrument(skip(app))]
pub async fn ingest_incoming(app: &App, id: &str) -> Result<()> {
    let key = incoming_key(id);
    let item = match get_record(app, id).await {
        Ok(item) => item,
        Err(Error::Client { .. }) => {
            warn!("object for an unknown upload; deleting it");
            return Ok(app.objects.delete(&key).await?);
        }
        Err(e) => return Err(e),
    };
    if item.str("status") != Some("waiting") {
        return Ok(app.objects.delete(&key).await?);
    }
    // The file and its stripped copy, at most the largest upload each.
    let _reservation = crate::budget::reserve(2 * MAX_UPLOAD_BYTES as usize).await;
    let Some(object) = app.objects.get(&key).await? else { return Ok(()) };
    let prepared = tokio::task::spawn_blocking(move || {
        if object.bytes.len() as u64 > MAX_UPLOAD_BYTES {
            return Err(Error::client(Refusal::TooLarge, "file_too_large", "the file is over 50 MiB"));
        }
        images::prepare(&object.bytes)
    })
    .await
    .map_err(Error::internal)?;
    let waiting = Some(Cond::eq("status", "waiting"));
    let outcome = match prepared {
        Ok(p) => images::store(app, &p, item.str("token_digest").unwrap_or_default()).await,
        Err(e) => Err(e),
    };
    let update = match outcome {
        Ok(stored) => Update::new()
            .set("status", "done")
            .set("image_id", stored.image.id.as_str())
            .set("duplicate", stored.duplicate),
        // Storage trouble or a concurrent writer: the delivery is retried.
        Err(e) if e.is_retryable() => return Err(e),
        // A file that is not an acceptable image never will be, and a bug will not fix itself
        // on a retry: record why and stop, rather than leave the upload waiting forever.
        Err(e) => {
            warn!(error = %e, "upload failed");
            Update::new().set("status", "failed").set("error_code", e.code()).set("error_message", e.public_message())
        }
    };
    let failed = update.set.iter().any(|(name, v)| name == "status" && v.as_str() == Some("failed"));
    match app.table.update(&upload_pk(id), UPLOAD_SK, update, waiting).await {
        // Only the delivery that settled the upload gives a link's reserved use back.
        Ok(_) if failed => {
            if let Some(link_id) = item.str("link_id") {
                crate::links::release(app, link_id, 1).await?;
            }
        }
        Ok(_) => {}
        Err(e) if e.is_condition_failed() => {}
        Err(e) => return Err(e.into()),
    }
    app.objects.delete(&key).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signing_key_matches_the_aws_documentation_example() {
        // The example of "Deriving a signing key for Signature Version 4" in AWS's documentation.
        let key = signing_key("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215", "us-east-1", "iam");
        assert_eq!(hex::encode(key), "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d");
    }

    #[test]
    fn the_policy_pins_key_size_and_expiry_and_is_signed_over_its_base64() {
        let creds = SigningCredentials {
            access_key_id: "AKIAIOSFODNN7EXAMPLE",
            secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            session_token: Some("session"),
        };
        let now = time::macros::datetime!(2026-11-23 10:00:00 UTC);
        let fields = sign_post_policy(&creds, "eu-west-1", "bkt", "incoming/abc", 100, now, now + FORM_LIFETIME);
        assert_eq!(fields["x-amz-credential"], "AKIAIOSFODNN7EXAMPLE/20261123/eu-west-1/s3/aws4_request");
        assert_eq!(fields["x-amz-date"], "20261123T100000Z");
        assert_eq!(fields["x-amz-security-token"], "session");
        let policy: serde_json::Value =
            serde_json::from_slice(&STANDARD.decode(fields["policy"].as_str().unwrap()).unwrap()).unwrap();
        assert_eq!(policy["expiration"], "2026-11-23T10:15:00.000Z");
        let conditions = policy["conditions"].as_array().unwrap();
        assert!(conditions.contains(&json!({"key": "incoming/abc"})));
        assert!(conditions.contains(&json!(["content-length-range", 1, 100])));
        assert!(conditions.contains(&json!({"x-amz-security-token": "session"})));
        let key = signing_key(creds.secret_access_key, "20261123", "eu-west-1", "s3");
        let expected = hex::encode(hmac(&key, fields["policy"].as_str().unwrap().as_bytes()));
        assert_eq!(fields["x-amz-signature"], expected.as_str());
    }
}
