//! Every sample event in `events/` goes through the real handler of its function: HTTP events
//! through the same router the Lambda runs (deserialised by `lambda_http` exactly as the
//! runtime does), S3 events through the worker. `sam local invoke` needs Docker, which this
//! project does not assume; this test is its stand-in.

#[path = "../../../shared/tests/support/origin.rs"]
mod origin;

use std::path::{Path, PathBuf};

use http_body_util::BodyExt;
use imghost::store::Queue;
use imghost_local::{Local, Options};
use serde_json::Value;
use tower::ServiceExt;

fn events_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events")
}

/// Reads an event, replacing the placeholder ids it was written with by real ones.
fn event(name: &str, replacements: &[(&str, &str)]) -> String {
    let mut text = std::fs::read_to_string(events_dir().join(name)).unwrap();
    for (from, to) in replacements {
        text = text.replace(from, to);
    }
    text
}

/// Runs an API Gateway event through a router; returns status, content type and body.
async fn invoke(router: &axum::Router, event: &str) -> (u16, String, Vec<u8>) {
    let request = lambda_http::request::from_str(event).expect("the event is a valid API Gateway request");
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let content_type =
        response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    let body = response.into_body().collect().await.unwrap().to_bytes().to_vec();
    (status, content_type, body)
}

#[tokio::test]
async fn every_sample_event_runs_through_its_real_handler() {
    let data = tempfile::tempdir().unwrap();
    let opts = Options {
        addr: "127.0.0.1:0".parse().unwrap(),
        data_dir: data.path().to_path_buf(),
        admin_token: Some("admin".into()),
        public_url: None,
        trust_proxy: false,
        fetcher: imghost::fetch::Fetcher::public(),
        keepalive_dry_run: true,
        web_dir: None,
        limits: Default::default(),
    };
    let local = Local::open(&opts).unwrap();
    let upload = imghost::http::upload::router(local.app.clone());
    let images = imghost::http::images::router(local.app.clone());
    let mut seen = vec![];

    // upload-post-image.json: a base64 PNG body, as API Gateway delivers binary uploads.
    let (status, _, body) = invoke(&upload, &event("upload-post-image.json", &[])).await;
    seen.push("upload-post-image.json");
    let created: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["mime"], "image/png");
    // Links use the API's own host and scheme, from the forwarded headers.
    assert!(created["link"].as_str().unwrap().starts_with("https://r3pmxmplak.execute-api.us-east-1.amazonaws.com/i/"));

    // resize-s3-put.json: the bucket notification for that original.
    let s3_put = event("resize-s3-put.json", &[("originals/AbCdEf12.jpg", &format!("originals/{id}.png"))]);
    let s3_event: aws_lambda_events::event::s3::S3Event = serde_json::from_str(&s3_put).unwrap();
    imghost::workers::resize::handle_s3_event(&local.app, &s3_event).await.unwrap();
    seen.push("resize-s3-put.json");

    // avif-sqs.json: the later pass for that image, queued by the resize worker, through the
    // real SQS handler; afterwards the image is listed with its AVIF variants.
    let queued = local.storage.avif.receive(10, std::time::Duration::from_secs(60)).await.unwrap();
    let message: imghost::workers::avif::AvifMessage = serde_json::from_str(&queued[0].body).unwrap();
    assert_eq!(message.image, id);
    let sqs = event("avif-sqs.json", &[("AbCdEf12", &id)]);
    let sqs: aws_lambda_events::event::sqs::SqsEvent = serde_json::from_str(&sqs).unwrap();
    let response = imghost::workers::avif::handle_sqs_event(&local.app, &sqs).await;
    seen.push("avif-sqs.json");
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    let record = imghost::images::get(&local.app, &id).await.unwrap().unwrap();
    assert_eq!(record.made_variants().filter(|v| v.format == imghost::media::Format::Avif).count(), 3);

    // images-get-metadata.json: the metadata now shows the variants ready.
    let (status, _, body) = invoke(&images, &event("images-get-metadata.json", &[("AbCdEf12", &id)])).await;
    seen.push("images-get-metadata.json");
    let meta: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status, 200, "{meta}");
    assert_eq!(meta["variants"]["small"]["status"], "ready");

    // images-get-image.json: the small variant's bytes.
    let (status, content_type, body) = invoke(&images, &event("images-get-image.json", &[("AbCdEf12", &id)])).await;
    seen.push("images-get-image.json");
    assert_eq!(status, 200);
    assert!(content_type.starts_with("image/"), "{content_type}");
    assert!(image::load_from_memory(&body).is_ok());

    // upload-post-uploads.json: a form for a large upload.
    let (status, _, body) = invoke(&upload, &event("upload-post-uploads.json", &[])).await;
    seen.push("upload-post-uploads.json");
    let form: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status, 201, "{form}");
    let upload_id = form["upload_id"].as_str().unwrap().to_owned();

    // resize-s3-incoming.json: the notification for a file that arrived through that form.
    let photo =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata/photos/no-exif.jpg"));
    imghost::uploads::receive_local(&local.app, &upload_id, photo.unwrap().into()).await.unwrap();
    let incoming = event("resize-s3-incoming.json", &[("q7Xp2Lm9RtVa0cWn4yHs_g", &upload_id)]);
    let s3_event: aws_lambda_events::event::s3::S3Event = serde_json::from_str(&incoming).unwrap();
    imghost::workers::resize::handle_s3_event(&local.app, &s3_event).await.unwrap();
    seen.push("resize-s3-incoming.json");
    let status =
        serde_json::to_value(imghost::uploads::status(&local.app, &upload_id, "http://x").await.unwrap()).unwrap();
    assert_eq!(status["status"], "done", "{status}");

    // links-create.json: an admin creates an invitation link (the event's token is replaced by
    // this test's admin token).
    let links = imghost::http::links::router(local.app.clone());
    let (status, _, body) = invoke(&links, &event("links-create.json", &[("ADMIN-TOKEN", "admin")])).await;
    seen.push("links-create.json");
    let link: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status, 201, "{link}");
    assert_eq!(link["label"], "Wedding guests");
    let token = link["token"].as_str().unwrap().to_owned();

    // links-get-status.json: the upload page's view of that link.
    let (status, _, body) =
        invoke(&links, &event("links-get-status.json", &[("TOKEN-PLACEHOLDER-43-CHARACTERS-LONG-XXXXXXX", &token)]))
            .await;
    seen.push("links-get-status.json");
    let shown: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status, 200, "{shown}");
    assert_eq!((shown["status"].as_str(), shown["remaining"].as_u64()), (Some("active"), Some(25)));

    // stats-get.json: the admin's statistics count what this test stored (two images, one
    // from the base64 upload and one through the presigned form).
    let stats = imghost::http::stats::router(local.app.clone());
    let (status, _, body) = invoke(&stats, &event("stats-get.json", &[("ADMIN-TOKEN", "admin")])).await;
    seen.push("stats-get.json");
    let stats: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status, 200, "{stats}");
    assert_eq!((stats["totals"]["images"].as_i64(), stats["totals"]["uploads"].as_i64()), (Some(2), Some(2)));
    let formats: Vec<&str> =
        stats["formats"].as_array().unwrap().iter().map(|f| f["format"].as_str().unwrap()).collect();
    assert_eq!(formats, ["jpeg", "png"]);

    // imports-post.json: a job of two URLs; the event's host is replaced by a loopback origin
    // that has the first file and answers 404 for the second.
    let origin =
        origin::Origin::start(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata/photos")).await;
    let imports = imghost::http::imports::router(local.app.clone());
    let (status, _, body) =
        invoke(&imports, &event("imports-post.json", &[("https://images.example.net", &origin.url(""))])).await;
    seen.push("imports-post.json");
    let job: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status, 202, "{job}");
    let job_id = job["job_id"].as_str().unwrap().to_owned();

    // import-worker-sqs.json: both messages of that job in one batch, through the real SQS
    // handler. The 404 is final, so nothing is left to retry and the batch has no failures.
    let sqs = event("import-worker-sqs.json", &[("JOB-ID-PLACEHOLDER-22c", &job_id)]);
    let sqs: aws_lambda_events::event::sqs::SqsEvent = serde_json::from_str(&sqs).unwrap();
    let fetcher = imghost::fetch::Fetcher::allowing(vec![origin.addr]);
    let response = imghost::workers::import::handle_sqs_event(&local.app, &fetcher, &sqs).await;
    seen.push("import-worker-sqs.json");
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    let view = serde_json::to_value(imghost::imports::view(&local.app, &job_id, "http://x").await.unwrap()).unwrap();
    assert_eq!(view["status"], "partial", "{view}");
    assert_eq!(view["items"][1]["error"]["code"], "http_error");

    // keepalive-sweep-schedule.json: the hourly schedule's event runs the sweep, which claims
    // the one due entry and queues its load.
    let created = imghost::keepalive::create(&local.app, "https://imgur.com/AbC12xY").await.unwrap();
    let entry_id = created.entry.id.clone().unwrap();
    let schedule: aws_lambda_events::event::eventbridge::EventBridgeEvent<Value> =
        serde_json::from_str(&event("keepalive-sweep-schedule.json", &[])).unwrap();
    assert_eq!(schedule.detail_type, "Scheduled Event");
    let report = imghost::workers::keepalive::run_sweep(&local.app).await.unwrap();
    seen.push("keepalive-sweep-schedule.json");
    assert_eq!(report.queued, 1);
    let queued = local.storage.keepalive.receive(10, std::time::Duration::from_secs(60)).await.unwrap();
    let message: imghost::keepalive::sweep::LoadMessage = serde_json::from_str(&queued[0].body).unwrap();

    // keepalive-loader-sqs.json: that load through the real SQS handler, with the dry-run
    // transport (nothing leaves the machine).
    let sqs = event(
        "keepalive-loader-sqs.json",
        &[("ENTRY-ID-PLACEHOLDER-2", &message.id), ("CLAIM-PLACEHOLDER-22chr", &message.claim)],
    );
    let sqs: aws_lambda_events::event::sqs::SqsEvent = serde_json::from_str(&sqs).unwrap();
    let transport = imghost::keepalive::loader::DryRun;
    let response = imghost::workers::keepalive::handle_sqs_event(&local.app, &transport, &sqs).await;
    seen.push("keepalive-loader-sqs.json");
    assert!(response.batch_item_failures.is_empty());
    let entry = serde_json::to_value(imghost::keepalive::view(&local.app, &entry_id).await.unwrap()).unwrap();
    assert_eq!((entry["loads"].as_i64(), entry["history"][0]["outcome"].as_str()), (Some(1), Some("dry_run")));

    // accounts-create.json: the admin creates a prepaid account, which then buys two tokens.
    let accounts = imghost::http::accounts::router(local.app.clone());
    let (status, _, body) = invoke(&accounts, &event("accounts-create.json", &[("ADMIN-TOKEN", "admin")])).await;
    seen.push("accounts-create.json");
    let account: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status, 201, "{account}");
    let (account_id, api_key) = (account["account_id"].as_str().unwrap(), account["api_key"].as_str().unwrap());
    imghost::accounts::purchase(&local.app, account_id, 2, "buy-1").await.unwrap();

    // accounts-list.json: the admin page's account list shows it with its balance.
    let (status, _, body) = invoke(&accounts, &event("accounts-list.json", &[("ADMIN-TOKEN", "admin")])).await;
    seen.push("accounts-list.json");
    let listed: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["accounts"][0]["account_id"], account_id, "{listed}");
    assert_eq!(
        (listed["accounts"][0]["purchased"].as_i64(), listed["accounts"][0]["remaining"].as_i64()),
        (Some(2), Some(2))
    );

    // memes-get.json: a text meme with an idempotency key, sent twice: charged once.
    let memes = imghost::http::memes::router(local.app.clone());
    let meme_event = event("memes-get.json", &[("API-KEY-PLACEHOLDER", api_key)]);
    let (status, _, body) = invoke(&memes, &meme_event).await;
    seen.push("memes-get.json");
    let meme: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status, 200, "{meme}");
    assert_eq!(meme["meme"], format!("{account_id}_52.52_-13.405_one does not simply"));
    let (_, _, again) = invoke(&memes, &meme_event).await;
    assert_eq!(serde_json::from_slice::<Value>(&again).unwrap(), meme);
    assert_eq!(imghost::accounts::balance(&local.app, account_id).await.unwrap().remaining, 1);

    // The web function's events: an image page, a script and the ShareX file, through the
    // router its Lambda runs (the embedded front end).
    let web = imghost::http::web::router(local.app.clone());
    let (status, content_type, body) = invoke(&web, &event("web-get-image-page.json", &[("AbCdEf12", &id)])).await;
    seen.push("web-get-image-page.json");
    let page = String::from_utf8(body).unwrap();
    assert_eq!((status, content_type.as_str()), (200, "text/html; charset=utf-8"));
    assert!(page.contains(r#"<script type="module" src="/assets/view.js">"#), "{page}");
    let (status, content_type, body) = invoke(&web, &event("web-get-asset.json", &[])).await;
    seen.push("web-get-asset.json");
    assert_eq!((status, content_type.as_str()), (200, "text/javascript; charset=utf-8"));
    assert!(String::from_utf8(body).unwrap().contains("export async function api("));
    let (status, _, body) = invoke(&web, &event("web-get-sharex.json", &[])).await;
    seen.push("web-get-sharex.json");
    let sharex: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status, 200, "{sharex}");
    // The uploader posts to the deployment's own API, as the forwarded headers name it.
    assert_eq!(sharex["RequestURL"], "https://r3pmxmplak.execute-api.us-east-1.amazonaws.com/v1/images");

    // Every event in the directory was exercised.
    let mut all: Vec<_> = std::fs::read_dir(events_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".json"))
        .collect();
    all.sort();
    seen.sort();
    assert_eq!(all, seen);
}
