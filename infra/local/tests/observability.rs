//! What an operator sees of the local server: request ids on answers, error bodies and log
//! lines, and the counts on `GET /metrics` after a known sequence of requests. The server is
//! the real binary in a process of its own, so that its metrics and its log are this test's
//! alone.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::photos_dir;
use common::process::Process;
use serde_json::{Value, json};

const ADMIN_TOKEN: &str = "observability-admin-token-0123456789abcdef";

struct Answer {
    status: u16,
    request_id: String,
    body: Value,
}

async fn answer(resp: reqwest::RequestBuilder) -> Answer {
    let resp = resp.send().await.unwrap();
    let status = resp.status().as_u16();
    let request_id = resp.headers().get("x-request-id").map(|v| v.to_str().unwrap().to_owned());
    let body = resp.json().await.unwrap_or(Value::Null);
    Answer { status, request_id: request_id.unwrap_or_else(|| panic!("no x-request-id on a {status}: {body}")), body }
}

fn photo(name: &str) -> Vec<u8> {
    std::fs::read(photos_dir().join("orientation").join(name)).unwrap()
}

/// The samples of a Prometheus text page, by series (`name{labels}`).
fn samples(page: &str) -> BTreeMap<String, f64> {
    page.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            (series.to_owned(), value.parse().unwrap())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_and_metrics_follow_a_known_sequence() {
    // Given the server, logging at info,
    let server = Process::start_logging(ADMIN_TOKEN, "info");
    let client = reqwest::Client::new();
    let url = |path: &str| server.url(path);
    let upload = |bytes: Vec<u8>, content_type: &str, id: Option<&str>| {
        let mut req = client.post(url("/v1/images")).header("content-type", content_type).body(bytes);
        if let Some(id) = id {
            req = req.header("x-request-id", id);
        }
        answer(req)
    };
    let jpeg = photo("landscape_1.jpg");
    let png = common::files::encode_with_image(
        image::load_from_memory(&photo("landscape_2.jpg")).unwrap().thumbnail(300, 300),
        image::ImageFormat::Png,
    );

    // When a JPEG is uploaded with a client's id, the answer carries that id.
    let first = upload(jpeg.clone(), "image/jpeg", Some("client-trace-42")).await;
    assert_eq!(first.status, 201, "{}", first.body);
    assert_eq!(first.request_id, "client-trace-42");
    // An id that is not a plain token is replaced with a generated one.
    let again = upload(jpeg.clone(), "image/jpeg", Some("not a \"plain\" id")).await;
    assert_eq!((again.status, &again.body["duplicate"]), (200, &json!(true)), "{}", again.body);
    assert_ne!(again.request_id, "not a \"plain\" id");
    assert_eq!(again.request_id.len(), 22, "{}", again.request_id);
    let second = upload(png, "image/png", None).await;
    assert_eq!(second.status, 201, "{}", second.body);
    assert_ne!(second.request_id, again.request_id);

    // Error answers carry the id in the header and in the body, each its own.
    let missing = answer(client.get(url("/v1/images/AAAAAAAA"))).await;
    let unauthorized = answer(client.get(url("/metrics"))).await;
    assert_eq!(missing.status, 404, "{}", missing.body);
    assert_eq!(unauthorized.status, 401, "{}", unauthorized.body);
    for error in [&missing, &unauthorized] {
        assert_eq!(error.body["error"]["request_id"], error.request_id.as_str(), "{}", error.body);
    }
    assert_ne!(missing.request_id, unauthorized.request_id);

    // A request head the front door refuses before any router sees it has an id too.
    let mut raw = std::net::TcpStream::connect(server.base.trim_start_matches("http://")).unwrap();
    raw.write_all(b"GET /v1/images HTTP/1.1\r\nHost: x\r\nbad header\r\n\r\n").unwrap();
    let mut refused = String::new();
    raw.read_to_string(&mut refused).unwrap();
    let (head, body) = refused.split_once("\r\n\r\n").unwrap();
    let front_id = head
        .lines()
        .find_map(|l| l.strip_prefix("x-request-id: "))
        .unwrap_or_else(|| panic!("no request id in {refused}"))
        .to_owned();
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    assert_eq!(serde_json::from_str::<Value>(body).unwrap()["error"]["request_id"], front_id.as_str());

    // An upload through an invitation link, and memes: one paid, one refused for want of tokens.
    let link = answer(client.post(url("/v1/links")).bearer_auth(ADMIN_TOKEN).json(&json!({"expires_in": 600}))).await;
    assert_eq!(link.status, 201, "{}", link.body);
    let form = reqwest::multipart::Form::new()
        .part("file", reqwest::multipart::Part::bytes(photo("portrait_1.jpg")).file_name("p.jpg"));
    let through_link = answer(client.post(link.body["upload_url"].as_str().unwrap()).multipart(form)).await;
    assert_eq!(through_link.status, 201, "{}", through_link.body);
    let account = answer(client.post(url("/v1/accounts")).bearer_auth(ADMIN_TOKEN).json(&json!({"name": "ops"}))).await;
    let account_id = account.body["account_id"].as_str().unwrap();
    let key = account.body["api_key"].as_str().unwrap();
    let bought = client
        .post(url(&format!("/v1/accounts/{account_id}/tokens")))
        .bearer_auth(ADMIN_TOKEN)
        .header("idempotency-key", "purchase-1")
        .json(&json!({"amount": 1}));
    let bought = answer(bought).await;
    assert_eq!(bought.body["purchased"], 1, "{}", bought.body);
    let meme = || answer(client.get(url("/v1/memes?lat=1&lon=2&query=cat")).bearer_auth(key));
    let paid = meme().await;
    assert_eq!(paid.status, 200, "{}", paid.body);
    let refused_meme = meme().await;
    assert_eq!(refused_meme.status, 402, "{}", refused_meme.body);

    // Then every log line of the upload's request carries its id: the ingest's own line, and the
    // line that answers it.
    let log = server.log();
    let lines_of = |id: &str| log.lines().filter(|l| l.contains(id)).collect::<Vec<_>>();
    let upload_lines = lines_of("client-trace-42");
    assert!(upload_lines.iter().any(|l| l.contains("new image")), "{upload_lines:#?}\n{}", server.log_tail());
    assert!(upload_lines.iter().any(|l| l.contains("answered") && l.contains("status=201")), "{upload_lines:#?}");
    for id in [&missing.request_id, &unauthorized.request_id, &front_id] {
        assert!(!lines_of(id).is_empty(), "no log line with {id}:\n{}", server.log_tail());
    }

    // And /metrics, once the first variant pass of the three new images is done, counts exactly
    // what happened.
    let deadline = Instant::now() + Duration::from_secs(120);
    let metrics = loop {
        let resp = client.get(url("/metrics")).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "text/plain; version=0.0.4; charset=utf-8");
        let metrics = samples(&resp.text().await.unwrap());
        if metrics.get("imghost_variant_passes_total{pass=\"first\"}") == Some(&3.0) || Instant::now() > deadline {
            break metrics;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let stored_bytes = |answers: &[&Value]| answers.iter().map(|b| b["bytes"].as_f64().unwrap()).sum::<f64>();
    let link_image = &through_link.body["images"][0];
    let expected: &[(&str, f64)] = &[
        ("imghost_uploads_total{format=\"jpeg\"}", 3.0),
        ("imghost_uploads_total{format=\"png\"}", 1.0),
        ("imghost_upload_bytes_total{format=\"jpeg\"}", stored_bytes(&[&first.body, &again.body, link_image])),
        ("imghost_duplicates_total", 1.0),
        ("imghost_ingest_latency_milliseconds_count", 4.0),
        ("imghost_ingest_latency_milliseconds_bucket{le=\"+Inf\"}", 4.0),
        ("imghost_variant_passes_total{pass=\"first\"}", 3.0),
        ("imghost_link_uses_total", 1.0),
        ("imghost_memes_charged_total", 1.0),
        ("imghost_payment_required_total", 1.0),
        ("imghost_meme_refunds_total", 0.0),
        ("imghost_client_errors_total{route=\"/v1/images/{id}\"}", 1.0),
        ("imghost_client_errors_total{route=\"/metrics\"}", 1.0),
        ("imghost_client_errors_total{route=\"/v1/memes\"}", 1.0),
    ];
    for (series, want) in expected {
        assert_eq!(metrics.get(*series), Some(want), "{series} in {metrics:#?}");
    }
    // Nothing failed on the server's side, and no variant pass failed.
    assert!(!metrics.keys().any(|k| k.starts_with("imghost_server_errors_total")), "{metrics:#?}");
    assert!(!metrics.keys().any(|k| k.starts_with("imghost_variant_failures_total")), "{metrics:#?}");
}
