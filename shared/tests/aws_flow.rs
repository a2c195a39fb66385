//! The image flow on the AWS family: the real SDK against moto_server for S3 and DynamoDB.
//! The same domain code that the local tests drive runs here over S3Objects and DynamoTable,
//! including a browser-style form POST to the S3 endpoint with a signed policy.

#[path = "support/origin.rs"]
mod origin;
mod support;

use std::sync::Arc;

use imghost::images::{self, VariantsStatus};
use imghost::state::{App, UploadTarget};
use imghost::store::aws::{DynamoTable, S3Objects, SqsQueue, provision};
use imghost::{secret, workers};

fn photos_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata/photos")
}

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
    let imports = provision::ensure_queue(&moto.sqs(), &support::unique("imports")).await.unwrap();
    let app = App::builder(Arc::new(DynamoTable::new(dynamo, table)), Arc::new(S3Objects::new(s3, bucket.clone())))
        .public_url(Some("https://img.example".into()))
        .uploads(UploadTarget::S3 {
            bucket: bucket.clone(),
            region: "us-east-1".into(),
            endpoint: Some(moto.endpoint()),
            credentials: moto.credentials_provider(),
        })
        .imports(Arc::new(SqsQueue::new(moto.sqs(), imports)))
        .build();
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
    assert!(!first.repeated && !second.repeated);
    assert_eq!(first.image.id, second.image.id);
    let again = images::store(&app, &prepared, &secret::digest_hex("token-2")).await.unwrap();
    assert_eq!(again.image.refs, 2);
    // It says it was a repeat, so that the upload metrics do not count it twice; so is the
    // redelivery of the first upload, which made the image.
    assert!(again.repeated);
    assert!(images::store(&app, &prepared, &secret::digest_hex("token-1")).await.unwrap().repeated);

    // When the worker handles the original's object-created event,
    workers::resize::handle_key(&app, &first.image.original_key()).await.unwrap();
    // then the variants are recorded and stored, oriented.
    let record = images::get_active(&app, &first.image.id).await.unwrap();
    assert_eq!(record.variants, VariantsStatus::Ready);
    let small = record.variant(imghost::media::variants::Size::Small).unwrap();
    assert_eq!((small.width, small.height), (240, 320));
    let key = record.variant_key(small.size, small.format);
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
    let status =
        serde_json::to_value(imghost::uploads::status(&app, &created.upload_id, "https://img.example").await.unwrap())
            .unwrap();
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

/// Stores photos, duplicates and deletes in a fixed order, then reads the statistics.
async fn stats_after_a_history(app: &App) -> imghost::stats::Stats {
    let files = [
        "gps/DSCN0010.jpg",
        "gps/DSCN0012.jpg",
        "cameras/Nikon_D70.jpg",
        "cameras/Canon_40D.jpg",
        "no-exif.jpg",
        "orientation/landscape_3.jpg",
        "cameras/nikon-e950.jpg",
    ];
    let mut ids = vec![];
    for (i, f) in files.iter().enumerate() {
        let prepared = images::prepare(&photo(f)).unwrap();
        ids.push(images::store(app, &prepared, &secret::digest_hex(&format!("t{i}"))).await.unwrap().image.id);
    }
    // Two duplicates; one of them is deleted again by its token (its image stays).
    let d70 = images::prepare(&photo("cameras/Nikon_D70.jpg")).unwrap();
    images::store(app, &d70, &secret::digest_hex("dup-1")).await.unwrap();
    images::store(app, &d70, &secret::digest_hex("dup-2")).await.unwrap();
    images::delete_upload(app, &ids[2], "dup-1").await.unwrap();
    // One image goes with its only upload, one is deleted by the admin.
    images::delete_upload(app, &ids[3], "t3").await.unwrap();
    images::delete_image(app, &ids[5]).await.unwrap();
    imghost::stats::read(&*app.table, time::OffsetDateTime::now_utc().date()).await.unwrap()
}

#[tokio::test]
async fn statistics_are_the_same_on_both_storage_families() {
    // Given the same history of uploads, duplicates and deletes on DynamoDB and on SQLite,
    let (aws, _) = aws_app().await;
    let (embedded, _dir) = support::embedded_app().await;
    let on_aws = stats_after_a_history(&aws).await;
    let on_embedded = stats_after_a_history(&embedded).await;

    // then both families answer exactly the same statistics,
    assert_eq!(on_aws, on_embedded);
    // and they are the right ones: 7 stored, 2 deleted; 9 uploads of which 2 duplicates.
    let s = on_aws;
    assert_eq!((s.totals.images, s.totals.uploads, s.totals.duplicates), (5, 9, 2));
    let cameras: Vec<(&str, i64)> = s.top_cameras.iter().map(|c| (c.model.as_str(), c.count)).collect();
    assert_eq!(cameras, [("COOLPIX P6000", 2), ("E950", 1), ("NIKON D70", 1)]);
    assert_eq!(s.cameras_unknown, 1);
    assert_eq!(s.uploads_per_day.iter().map(|d| d.count).sum::<i64>(), 9);
}

/// Stores `no-exif.jpg` while the object store refuses writes, then again once it accepts them,
/// and returns the statistics after each attempt.
async fn store_while_objects_fail(
    app: &App,
    repair: impl std::future::Future<Output = ()>,
) -> (imghost::Result<images::Stored>, imghost::stats::Stats, imghost::stats::Stats) {
    let today = time::OffsetDateTime::now_utc().date();
    let prepared = images::prepare(&photo("no-exif.jpg")).unwrap();
    let failed = images::store(app, &prepared, &secret::digest_hex("first")).await;
    let after_failure = imghost::stats::read(&*app.table, today).await.unwrap();
    repair.await;
    let stored = images::store(app, &prepared, &secret::digest_hex("second")).await.unwrap();
    assert!(!stored.duplicate, "the failed upload left no image behind to be a duplicate of");
    let after_success = imghost::stats::read(&*app.table, today).await.unwrap();
    (failed.map(|_| unreachable!("the store was broken")), after_failure, after_success)
}

#[tokio::test]
async fn an_upload_whose_original_cannot_be_stored_counts_nowhere_on_both_families() {
    // Given an S3 bucket that does not exist yet, and a data directory whose `originals` path is
    // taken by a file (root ignores permissions, so a mode bit would not do),
    let moto = support::moto();
    let (bucket, table) = (support::unique("bucket"), support::unique("table"));
    let dynamo = moto.dynamodb();
    provision::ensure_table(&dynamo, &table).await.unwrap();
    let (aws, _) = aws_app().await;
    let aws =
        App::builder(Arc::new(DynamoTable::new(dynamo, table)), Arc::new(S3Objects::new(moto.s3(), bucket.clone())))
            .uploads(aws.uploads.clone())
            .build();
    let (embedded, dir) = support::embedded_app().await;
    let blocker = dir.path().join("objects/originals");
    std::fs::create_dir_all(blocker.parent().unwrap()).unwrap();
    std::fs::write(&blocker, b"not a directory").unwrap();

    // when an upload fails to store its original, and the same bytes are uploaded again after
    // the store is repaired,
    let s3 = moto.s3();
    let on_aws = store_while_objects_fail(&aws, async { provision::ensure_bucket(&s3, &bucket).await.unwrap() }).await;
    let on_embedded = store_while_objects_fail(&embedded, async { std::fs::remove_file(&blocker).unwrap() }).await;

    for (family, (failed, after_failure, after_success)) in [("aws", on_aws), ("embedded", on_embedded)] {
        // then the failure is a server-side error, nothing was counted for it,
        let err = failed.unwrap_err();
        assert!(err.status().is_server_error(), "{family}: {err}");
        assert_eq!((after_failure.totals.images, after_failure.totals.uploads), (0, 0), "{family}");
        // and the retry is one new image counted once.
        let t = &after_success.totals;
        assert_eq!((t.images, t.uploads, t.duplicates, after_success.cameras_unknown), (1, 1, 0, 1), "{family}");
    }
}

/// An SQS event as Lambda delivers it, for these received messages.
fn sqs_event(deliveries: &[imghost::store::Delivery]) -> aws_lambda_events::event::sqs::SqsEvent {
    let records: Vec<serde_json::Value> = deliveries
        .iter()
        .map(|d| {
            serde_json::json!({
                "messageId": d.message_id,
                "receiptHandle": d.receipt,
                "body": d.body,
                "attributes": {"ApproximateReceiveCount": d.receive_count.to_string()},
                "eventSource": "aws:sqs",
            })
        })
        .collect();
    serde_json::from_value(serde_json::json!({ "Records": records })).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_worker_reports_partial_batches_and_imports_a_redelivered_message_once() {
    // Given an import job on SQS of a good URL and one whose server answers 503,
    let origin = origin::Origin::start(photos_dir()).await;
    let fetcher = imghost::fetch::Fetcher::allowing(vec![origin.addr]);
    let (app, _) = aws_app().await;
    let urls = vec![origin.url("/photos/no-exif.jpg"), origin.url("/status/503")];
    let created = imghost::imports::create(&app, &urls).await.unwrap();
    let queue = app.imports.clone().unwrap();
    let mut received = vec![];
    while received.len() < 2 {
        received.extend(queue.receive(10, std::time::Duration::from_secs(1)).await.unwrap());
    }
    received.sort_by_key(|d| d.body.contains("\"item\":1"));
    let (good, flaky) = (received[0].clone(), received[1].clone());

    // when the worker's SQS handler gets both in one batch,
    let response = workers::import::handle_sqs_event(&app, &fetcher, &sqs_event(&received)).await;

    // then only the 503 is reported as failed, to be tried again,
    let failed: Vec<&str> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
    assert_eq!(failed, [flaky.message_id.as_str()]);
    let job = serde_json::to_value(imghost::imports::view(&app, &created.job_id, "https://img.example").await.unwrap())
        .unwrap();
    assert_eq!(
        (job["items"][0]["status"].as_str(), job["items"][1]["status"].as_str()),
        (Some("done"), Some("queued"))
    );
    assert_eq!(job["items"][1]["error"]["code"], "http_error");
    // and the retry waits for the back-off (10 s), not the one-second visibility it was received
    // with: once Lambda deletes the good message, nothing is visible after that second.
    queue.ack(&good.receipt).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(queue.receive(10, std::time::Duration::from_secs(30)).await.unwrap().is_empty());

    // When the good message is delivered again (SQS is at-least-once),
    let again = workers::import::handle_sqs_event(&app, &fetcher, &sqs_event(std::slice::from_ref(&good))).await;

    // then it succeeds without importing twice: one image, one upload, counted once.
    assert!(again.batch_item_failures.is_empty());
    let id = job["items"][0]["image"]["id"].as_str().unwrap();
    assert_eq!(images::get_active(&app, id).await.unwrap().refs, 1);
    let stats = imghost::stats::read(&*app.table, time::OffsetDateTime::now_utc().date()).await.unwrap();
    assert_eq!((stats.totals.images, stats.totals.uploads), (1, 1));

    // When the 503 is delivered for the fourth time, it fails for good instead of being retried.
    let last = imghost::store::Delivery { receive_count: imghost::imports::MAX_ATTEMPTS, ..flaky };
    let response = workers::import::handle_sqs_event(&app, &fetcher, &sqs_event(&[last])).await;
    assert!(response.batch_item_failures.is_empty());
    let job = serde_json::to_value(imghost::imports::view(&app, &created.job_id, "https://img.example").await.unwrap())
        .unwrap();
    assert_eq!((job["status"].as_str(), job["items"][1]["status"].as_str()), (Some("partial"), Some("failed")));
    assert!(job["finished_at"].is_string());
}

// ---------------------------------------------------------------------------------------------
// Memes paid with tokens, on both families
// ---------------------------------------------------------------------------------------------

/// Sends one request through a router; returns status, headers and JSON body.
async fn call(
    router: &axum::Router,
    req: axum::http::Request<axum::body::Body>,
) -> (u16, axum::http::HeaderMap, serde_json::Value) {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let resp = router.clone().oneshot(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (parts.status.as_u16(), parts.headers, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
}

fn meme_request(api_key: &str, query: &str, idempotency_key: Option<&str>) -> axum::http::Request<axum::body::Body> {
    let mut req = axum::http::Request::get(format!("/v1/memes?lat=52.52&lon=-13.405&query={query}"))
        .header("authorization", format!("Bearer {api_key}"));
    if let Some(k) = idempotency_key {
        req = req.header("idempotency-key", k);
    }
    req.body(axum::body::Body::empty()).unwrap()
}

/// An account holding `tokens` tokens; returns its id and API key.
async fn funded_account(app: &App, tokens: i64) -> (String, String) {
    let created = imghost::accounts::create(app, "meme fan").await.unwrap();
    imghost::accounts::purchase(app, &created.account_id, tokens, "first-purchase").await.unwrap();
    // A retried purchase with the same key adds nothing.
    let again = imghost::accounts::purchase(app, &created.account_id, tokens, "first-purchase").await.unwrap();
    assert_eq!(again.purchased, tokens);
    (created.account_id, created.api_key)
}

async fn a_thousand_requests_against_five_hundred_tokens(app: App) {
    // Given an account holding 500 tokens,
    let (account, key) = funded_account(&app, 500).await;
    let router = imghost::http::memes::router(app.clone());

    // when 1,000 meme requests arrive at once,
    let answers =
        futures::future::join_all((0..1000).map(|i| call(&router, meme_request(&key, &format!("q{i}"), None)))).await;

    // then exactly 500 get a meme and 500 a 402, and the balance is spent to the token.
    let ok = answers.iter().filter(|(s, ..)| *s == 200).count();
    let exhausted = answers.iter().filter(|(s, _, b)| *s == 402 && b["error"]["code"] == "tokens_exhausted").count();
    let others: std::collections::BTreeSet<String> =
        answers.iter().filter(|(s, ..)| *s != 200 && *s != 402).map(|(s, _, b)| format!("{s} {b}")).collect();
    assert_eq!((ok, exhausted), (500, 500), "{others:?}");
    let b = imghost::accounts::balance(&app, &account).await.unwrap();
    assert_eq!((b.purchased, b.used, b.remaining), (500, 500, 0));
    // Every delivered meme is the seed's text format for its own query.
    let (_, _, first) = answers.iter().find(|(s, ..)| *s == 200).unwrap();
    let meme = first["meme"].as_str().unwrap();
    assert!(meme.starts_with(&format!("{account}_52.52_-13.405_q")), "{meme}");
}

async fn replays_charge_once_and_failures_refund(app: App) {
    let (account, key) = funded_account(&app, 10).await;
    let router = imghost::http::memes::router(app.clone());
    let used = || async { imghost::accounts::balance(&app, &account).await.unwrap().used };

    // Given one meme delivered under an idempotency key,
    let (status, headers, first) = call(&router, meme_request(&key, "cats", Some("k-1"))).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(headers["idempotent-replayed"], "false");
    assert_eq!(first["remaining"], 9);
    // when it is replayed, even concurrently,
    let replays =
        futures::future::join_all((0..5).map(|_| call(&router, meme_request(&key, "cats", Some("k-1"))))).await;
    // then every replay gets the first answer, marked as a replay, and nothing more is charged;
    for (status, headers, body) in &replays {
        assert_eq!((*status, body), (200, &first));
        assert_eq!(headers["idempotent-replayed"], "true");
    }
    assert_eq!(used().await, 1);
    // the same key with other parameters is refused.
    let (status, _, body) = call(&router, meme_request(&key, "dogs", Some("k-1"))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("idempotency_key_reused")));

    // Given a renderer that fails,
    struct Broken;
    impl imghost::memes::render::Renderer for Broken {
        fn render(&self, _: &str, _: Option<image::RgbaImage>) -> Result<Vec<u8>, String> {
            Err("the renderer is broken".into())
        }
    }
    let broken = imghost::http::memes::routes_with(app.clone(), Arc::new(Broken));
    let image_req = |k: &str| {
        axum::http::Request::get("/v1/memes?lat=1&lon=2&query=boom&format=image")
            .header("authorization", format!("Bearer {key}"))
            .header("idempotency-key", k)
            .body(axum::body::Body::empty())
            .unwrap()
    };
    // when an image meme fails to render, the request fails and its token is given back,
    let (status, _, body) = call(&broken, image_req("k-2")).await;
    assert!(status >= 500, "{status}: {body}");
    assert_eq!(used().await, 1);
    // and a retry with the same key, once rendering works, is charged once and delivered.
    let (status, _, body) = call(&router, image_req("k-2")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(used().await, 2);
    let link = body["meme"].as_str().unwrap();
    let id = link.rsplit('/').next().unwrap().split('.').next().unwrap();
    let stored = images::get_active(&app, id).await.unwrap();
    assert_eq!(stored.format.name(), "png");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memes_are_counted_exactly_on_both_families() {
    let (aws, _) = aws_app().await;
    let (embedded, _dir) = support::embedded_app().await;
    a_thousand_requests_against_five_hundred_tokens(embedded.clone()).await;
    a_thousand_requests_against_five_hundred_tokens(aws.clone()).await;
    replays_charge_once_and_failures_refund(embedded).await;
    replays_charge_once_and_failures_refund(aws).await;
}

/// Lists every account page by page, `limit` at a time.
async fn all_accounts(app: &App, limit: usize) -> (Vec<imghost::accounts::Listed>, usize) {
    let (mut all, mut pages, mut cursor) = (vec![], 0, None);
    loop {
        let (page, next) = imghost::accounts::list(app, limit, cursor).await.unwrap();
        assert!(page.len() <= limit);
        all.extend(page);
        pages += 1;
        match next {
            Some(next) => cursor = Some(next),
            None => return (all, pages),
        }
    }
}

async fn the_account_list_pages_through_every_account_with_its_balance(app: App) {
    // Given five accounts, the third of which bought and used tokens,
    let mut made = vec![];
    for i in 0..5 {
        made.push(imghost::accounts::create(&app, &format!("account {i}")).await.unwrap().account_id);
    }
    imghost::accounts::purchase(&app, &made[2], 7, "buy-for-list").await.unwrap();
    let router = imghost::http::memes::router(app.clone());
    let api_key = imghost::accounts::create(&app, "meme buyer").await.unwrap();
    imghost::accounts::purchase(&app, &api_key.account_id, 3, "buy-for-list").await.unwrap();
    let (status, _, body) = call(&router, meme_request(&api_key.api_key, "listed", None)).await;
    assert_eq!(status, 200, "{body}");
    made.push(api_key.account_id.clone());

    // when the admin lists them two at a time,
    let (listed, pages) = all_accounts(&app, 2).await;

    // then every account appears exactly once over three pages (and perhaps an empty fourth:
    // like DynamoDB, a full page hands out a cursor without knowing whether more follow),
    let mut ids: Vec<&str> = listed.iter().map(|a| a.account_id.as_str()).collect();
    assert_eq!(listed.len(), 6, "{ids:?}");
    assert!((3..=4).contains(&pages), "{pages} pages");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 6);
    // newest first (creation times never decrease down the list),
    assert!(listed.windows(2).all(|w| w[0].created_at >= w[1].created_at));
    // each with its name and exact balance.
    let find = |id: &str| listed.iter().find(|a| a.account_id == id).unwrap();
    assert_eq!(find(&made[0]).name, "account 0");
    let bought = find(&made[2]);
    assert_eq!((bought.purchased, bought.used, bought.remaining), (7, 0, 7));
    let spender = find(&api_key.account_id);
    assert_eq!((spender.name.as_str(), spender.purchased, spender.used, spender.remaining), ("meme buyer", 3, 1, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_account_list_is_the_same_on_both_families() {
    let (aws, _) = aws_app().await;
    let (embedded, _dir) = support::embedded_app().await;
    the_account_list_pages_through_every_account_with_its_balance(embedded).await;
    the_account_list_pages_through_every_account_with_its_balance(aws).await;
}
