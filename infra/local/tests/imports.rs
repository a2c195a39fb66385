//! Imports by URL through the local server, against real HTTP servers on loopback: good jobs,
//! mixed jobs, redirects, slow and oversized answers, and every forbidden destination.

mod common;

use std::time::Duration;

use common::origin::{Origin, Trap, forbidden_urls};
use common::{Server, error_code, photos_dir};
use imghost::fetch::{Fetcher, Limits};
use serde_json::{Value, json};

/// A local server whose importer may reach `origin` (and nothing else that is not public).
async fn server_for(origin: &Origin, limits: Limits) -> Server {
    Server::start_with(Fetcher::allowing(vec![origin.addr]).with_limits(limits)).await
}

async fn submit(server: &Server, urls: &[String]) -> Value {
    let resp = server.client.post(server.url("/v1/imports")).json(&json!({"urls": urls})).send().await.unwrap();
    let status = resp.status().as_u16();
    let location = resp.headers().get("location").map(|l| l.to_str().unwrap().to_owned());
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, 202, "{body}");
    assert_eq!(location.as_deref(), body["status_url"].as_str());
    assert_eq!(body["items"], urls.len());
    body
}

/// Polls a job until `done(job)` holds.
async fn wait_for(server: &Server, job: &Value, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let body: Value =
            server.client.get(job["status_url"].as_str().unwrap()).send().await.unwrap().json().await.unwrap();
        if done(&body) {
            return body;
        }
        assert!(tokio::time::Instant::now() < deadline, "job did not get there: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn settled(job: &Value) -> bool {
    job["finished_at"].is_string()
}

fn codes(job: &Value) -> Vec<Option<&str>> {
    job["items"].as_array().unwrap().iter().map(|i| i["error"]["code"].as_str()).collect()
}

/// Percent-encodes a URL for a query parameter.
fn encode(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_of_good_images_imports_each_once() {
    // Given an origin with photos, one of them behind two redirects,
    let origin = Origin::start(photos_dir()).await;
    let server = server_for(&origin, Limits::default()).await;
    let urls = vec![
        origin.url("/photos/cameras/Canon_40D.jpg"),
        origin.url("/photos/gps/DSCN0010.jpg"),
        origin.url("/redirect/2/orientation/portrait_6.jpg"),
        // The same bytes as the first: imported as a duplicate upload of one image.
        origin.url("/redirect/1/cameras/Canon_40D.jpg"),
    ];

    // when they are imported as one job,
    let job = submit(&server, &urls).await;
    let tokens = job["delete_tokens"].as_array().unwrap().clone();
    assert_eq!(tokens.len(), 4);
    let done = wait_for(&server, &job, settled).await;

    // then every URL is done with an image, the job is done, and timestamps are set,
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["counts"], json!({"queued": 0, "running": 0, "done": 4, "failed": 0}));
    assert!(done["created_at"].as_str().unwrap() <= done["finished_at"].as_str().unwrap());
    let items = done["items"].as_array().unwrap();
    for (item, url) in items.iter().zip(&urls) {
        assert_eq!(item["url"], *url);
        assert_eq!((item["status"].as_str(), &item["error"]), (Some("done"), &Value::Null), "{item}");
    }
    assert_eq!(items[0]["image"]["id"], items[3]["image"]["id"], "same bytes, one image");
    // the links serve the photos' bytes (metadata stripped, so compare the image's metadata),
    for item in items {
        let link = item["image"]["link"].as_str().unwrap();
        let resp = server.client.get(link).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{link}");
        assert_eq!(resp.headers()["content-type"], "image/jpeg");
    }
    let (_, meta) = server.get_json(&format!("/v1/images/{}", items[0]["image"]["id"].as_str().unwrap())).await;
    assert_eq!(meta["camera_model"], "Canon EOS 40D");
    // each import got its own delete token: deleting the first upload keeps the shared image,
    let id0 = items[0]["image"]["id"].as_str().unwrap();
    for (i, want) in [(0, 200), (3, 404)] {
        let token = tokens[i].as_str().unwrap();
        let resp = server.client.delete(server.url(&format!("/v1/images/{id0}"))).header("x-delete-token", token);
        assert_eq!(resp.send().await.unwrap().status(), 204);
        assert_eq!(server.get_json(&format!("/v1/images/{id0}")).await.0, want);
    }
    // and the statistics count four uploads, one of them a duplicate.
    let (status, stats) = server.admin_get_json("/v1/stats").await;
    assert_eq!(status, 200);
    assert_eq!((stats["totals"]["uploads"].as_i64(), stats["totals"]["duplicates"].as_i64()), (Some(4), Some(1)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_job_is_partial_with_a_reason_per_url() {
    // Given good and bad URLs of every kind,
    let origin = Origin::start(photos_dir()).await;
    let server = server_for(&origin, Limits::default()).await;
    let cases: Vec<(String, Option<&str>)> = vec![
        (origin.url("/photos/no-exif.jpg"), None),
        (origin.url("/status/404"), Some("http_error")),
        (origin.url("/status/403"), Some("http_error")),
        (origin.url("/text"), Some("unsupported_media_type")),
        (origin.url("/photos/corrupted.jpg"), Some("damaged_image")),
        (origin.url("/huge/60000000"), Some("too_large")),
        (origin.url("/declared/60000000"), Some("too_large")),
        (origin.url("/redirect/4/no-exif.jpg"), Some("too_many_redirects")),
        (origin.url("/to?url=http%3A%2F%2F10.0.0.1%2Fa.jpg"), Some("forbidden_address")),
    ];
    let urls: Vec<String> = cases.iter().map(|(u, _)| u.clone()).collect();

    // when they are imported as one job,
    let job = submit(&server, &urls).await;
    let done = wait_for(&server, &job, settled).await;

    // then the job is partial, and each URL says what happened to it.
    assert_eq!(done["status"], "partial", "{done}");
    assert_eq!(done["counts"], json!({"queued": 0, "running": 0, "done": 1, "failed": 8}));
    let want: Vec<Option<&str>> = cases.iter().map(|(_, c)| *c).collect();
    assert_eq!(codes(&done), want, "{done}");
    for item in done["items"].as_array().unwrap() {
        let failed = item["status"] == "failed";
        assert_eq!(item["image"].is_null(), failed, "{item}");
        assert_eq!(item["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), failed, "{item}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_server_times_out_and_the_url_waits_for_a_retry() {
    // Given a server that answers after 3 s, and a fetcher that waits 0.5 s,
    let origin = Origin::start(photos_dir()).await;
    let short = Limits { respond: Duration::from_millis(500), ..Limits::default() };
    let server = server_for(&origin, short).await;

    // when it is imported,
    let job = submit(&server, &[origin.url("/slow/3000")]).await;
    let waiting = wait_for(&server, &job, |j| j["items"][0]["error"].is_object()).await;

    // then the timeout is transient: the URL is queued again, with the reason, for a later try.
    assert_eq!(waiting["items"][0]["status"], "queued", "{waiting}");
    assert_eq!(waiting["items"][0]["error"]["code"], "timeout");
    assert_eq!(waiting["status"], "queued");
    assert_eq!(waiting["finished_at"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbidden_destinations_fail_and_never_reach_a_listening_socket() {
    // Given traps listening on IPv4 (and, where the machine has it, IPv6) loopback, every
    // forbidden destination aimed at them, and a redirect to each from an allowed origin,
    let origin = Origin::start(photos_dir()).await;
    let server = server_for(&origin, Limits::default()).await;
    let v4 = Trap::start("127.0.0.1").await;
    let v6 = match tokio::net::TcpListener::bind("[::1]:0").await {
        Ok(probe) => {
            drop(probe);
            Some(Trap::start("::1").await)
        }
        Err(_) => None,
    };
    let direct = forbidden_urls(v4.addr.port(), v6.as_ref().map(|t| t.addr.port()));
    let redirected: Vec<String> = direct.iter().map(|u| origin.url(&format!("/to?url={}", encode(u)))).collect();
    let urls: Vec<String> = direct.iter().chain(&redirected).cloned().collect();
    assert!(urls.len() <= 100, "{} URLs", urls.len());

    // when they are imported,
    let job = submit(&server, &urls).await;
    let done = wait_for(&server, &job, settled).await;

    // then every one failed with the forbidden-address code,
    assert_eq!(done["status"], "failed", "{done}");
    for item in done["items"].as_array().unwrap() {
        assert_eq!(item["error"]["code"], "forbidden_address", "{item}");
    }
    // and no trap ever saw a connection. The origin saw exactly the redirecting requests.
    assert_eq!(v4.count(), 0);
    assert_eq!(v6.as_ref().map_or(0, Trap::count), 0);
    assert_eq!(origin.hits.load(std::sync::atomic::Ordering::SeqCst), redirected.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_jobs_are_refused_naming_the_bad_entry() {
    let server = Server::start().await;
    let many: Vec<String> = (0..101).map(|i| format!("https://example.com/{i}.jpg")).collect();
    let cases: Vec<(Value, &str, &str)> = vec![
        (json!({"urls": []}), "bad_urls", "1 to 100"),
        (json!({"urls": many}), "bad_urls", "holds 101"),
        (json!({"urls": ["https://example.com/a.jpg", "ftp://example.com/b.jpg"]}), "bad_url", "urls[1]"),
        (json!({"urls": ["https://example.com/a.jpg", 3]}), "bad_url", "urls[1]"),
        (
            json!({"urls": ["https://u:p@example.com/a.jpg"]}),
            "bad_url",
            "urls[0]: the URL is not acceptable: credentials",
        ),
        (json!({"urls": ["example.com/a.jpg"]}), "bad_url", "urls[0]"),
        (json!({"urls": "https://example.com/a.jpg"}), "bad_urls", "array"),
        (json!({"links": ["https://example.com/a.jpg"]}), "bad_json", "unknown field"),
    ];
    for (body, code, message) in cases {
        let resp = server.client.post(server.url("/v1/imports")).json(&body).send().await.unwrap();
        let status = resp.status().as_u16();
        let answer: Value = resp.json().await.unwrap();
        assert_eq!(status, 422, "{body}: {answer}");
        assert_eq!(error_code(status, &answer), code, "{body}");
        assert!(answer["error"]["message"].as_str().unwrap().contains(message), "{body}: {answer}");
    }
    // An unknown job is a 404 in the usual shape.
    let (status, body) = server.get_json("/v1/imports/AAAAAAAAAAAAAAAAAAAAAA").await;
    assert_eq!(error_code(status, &body), "not_found");
}
