//! The image flow on the AWS family: the real SDK against moto_server for S3 and DynamoDB.
//! The same domain code that the local tests drive runs here over S3Objects and DynamoTable,
//! including a browser-style form POST to the S3 endpoint with a signed policy.

mod support;

use std::sync::Arc;

use imghost::images::{self, VariantsStatus};
use imghost::state::{App, AppInner, Delivery};
use imghost::store::aws::{DynamoTable, S3Objects, provision};
use imghost::uploads::UploadTarget;
use imghost::{secret, workers};

fn photo(name: &str) -> Vec<u8> {
    std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata/photos").join(name))
        .unwrap()
}

async fn aws_app() -> (App, String) {
    let moto = support::moto();
    let (bucket, table) = (support::unique("bucket"), support::unique("table"));
    let s3 = moto.s3();
    let dynamo = moto.dynamodb();
    provision::ensure_bucket(&s3, &bucket).await.unwrap();
    provision::ensure_table(&dynamo, &table).await.unwrap();
    let app = App::new(AppInner {
        table: Arc::new(DynamoTable::new(dynamo, table)),
        objects: Arc::new(S3Objects::new(s3, bucket.clone())),
        delivery: Delivery::Redirect { base: "https://cdn.example".into() },
        public_url: Some("https://img.example".into()),
        admin_digest: None,
        uploads: UploadTarget::S3 {
            bucket: bucket.clone(),
            region: "us-east-1".into(),
            endpoint: Some(moto.endpoint()),
            credentials: moto.credentials_provider(),
        },
    });
    (app, bucket)
}

#[tokio::test]
async fn upload_dedupe_variants_and_delete_on_s3_and_dynamodb() {
    let (app, bucket) = aws_app().await;
    let bytes = photo("orientation/portrait_6.jpg");
    let prepared = images::prepare(&bytes).unwrap();

    // Given an image stored twice,
    let first = images::store(&app, &prepared, &secret::digest_hex("token-1")).await.unwrap();
    let second = images::store(&app, &prepared, &secret::digest_hex("token-2")).await.unwrap();
    // then the second is a duplicate of the first, and a retried store of it changes nothing.
    assert!(!first.duplicate && second.duplicate);
    assert_eq!(first.image.id, second.image.id);
    let again = images::store(&app, &prepared, &secret::digest_hex("token-2")).await.unwrap();
    assert_eq!(again.image.refs, 2);

    // When the worker handles the original's object-created event,
    workers::resize::handle_key(&app, &first.image.original_key()).await.unwrap();
    // then the variants are recorded and stored, oriented.
    let record = images::get_active(&app, &first.image.id).await.unwrap();
    assert_eq!(record.variants, VariantsStatus::Ready);
    let small = record.variant(imghost::media::variants::Size::Small).unwrap();
    assert_eq!((small.width, small.height), (240, 320));
    let key = images::variant_key(&record.id, small.size, small.format);
    assert!(app.objects.exists(&key).await.unwrap());
    // Objects are stored for the CDN to cache for good, with the right type.
    let head = support::moto().s3().head_object().bucket(&bucket).key(&key).send().await.unwrap();
    assert_eq!(head.cache_control(), Some("public, max-age=31536000, immutable"));
    assert_eq!(head.content_type(), Some("image/jpeg"));

    // Deleting both uploads removes the image, its hash and its objects.
    images::delete_upload(&app, &record.id, "token-1").await.unwrap();
    assert!(images::get_active(&app, &record.id).await.is_ok());
    images::delete_upload(&app, &record.id, "token-2").await.unwrap();
    assert!(images::get_active(&app, &record.id).await.is_err());
    assert!(!app.objects.exists(&key).await.unwrap());
    assert!(!app.objects.exists(&record.original_key()).await.unwrap());
    let fresh = images::store(&app, &prepared, &secret::digest_hex("token-3")).await.unwrap();
    assert!(!fresh.duplicate);
    assert_ne!(fresh.image.id, record.id);
}

#[tokio::test]
async fn a_signed_form_posts_to_s3_and_the_worker_ingests_it() {
    let (app, _) = aws_app().await;
    // Given a form signed for the bucket,
    let created = imghost::uploads::create(&app, "https://img.example", None).await.unwrap();
    let form = serde_json::to_value(&created.form).unwrap();
    assert!(form["fields"]["x-amz-signature"].as_str().is_some_and(|s| s.len() == 64));
    // when a client posts a file with it to the S3 endpoint,
    let mut multipart = reqwest::multipart::Form::new();
    for (name, value) in form["fields"].as_object().unwrap() {
        multipart = multipart.text(name.clone(), value.as_str().unwrap().to_owned());
    }
    let bytes = photo("gps/DSCN0021.jpg");
    multipart = multipart.part("file", reqwest::multipart::Part::bytes(bytes).file_name("big.jpg"));
    let resp = reqwest::Client::new().post(form["url"].as_str().unwrap()).multipart(multipart).send().await.unwrap();
    assert!(resp.status().is_success(), "S3 refused the form: {}", resp.text().await.unwrap());
    let incoming = imghost::uploads::incoming_key(&created.upload_id);
    assert!(app.objects.exists(&incoming).await.unwrap());

    // and the worker handles the object-created event (twice, as deliveries may repeat),
    workers::resize::handle_key(&app, &incoming).await.unwrap();
    workers::resize::handle_key(&app, &incoming).await.unwrap();

    // then the upload is done, the image exists with its metadata, and the incoming object is gone.
    let status = imghost::uploads::status(&app, &created.upload_id, "https://img.example").await.unwrap();
    assert_eq!(status["status"], "done", "{status}");
    assert_eq!(status["image"]["camera_model"], "COOLPIX P6000");
    assert!(!app.objects.exists(&incoming).await.unwrap());
    let id = status["image"]["id"].as_str().unwrap();
    // The token handed out with the form deletes it.
    images::delete_upload(&app, id, &created.delete_token).await.unwrap();
    assert!(images::get_active(&app, id).await.is_err());
}

#[tokio::test]
async fn fifty_concurrent_claims_on_a_ten_use_link_take_exactly_ten() {
    let (app, _) = aws_app().await;
    // Given a link with 10 uses on DynamoDB,
    let request = imghost::links::NewLink { expires_in: Some(3600), max_uploads: Some(10), ..Default::default() };
    let created = imghost::links::create(&app, &request).await.unwrap();
    // when 50 claims race,
    let claims = (0..50).map(|_| imghost::links::claim(&app, &created.link, 1));
    let results = futures::future::join_all(claims).await;
    // then exactly 10 succeed and the rest are refused as used up.
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 10);
    assert!(results.iter().filter_map(|r| r.as_ref().err()).all(|e| e.code() == "link_used_up"));
    let link = imghost::links::by_token(&app, &created.token).await.unwrap();
    assert_eq!(link.uploads, 10);
}
