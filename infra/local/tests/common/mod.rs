//! A local imghost server on a loopback port, for end-to-end tests over real HTTP.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use imghost_local::front::Limits;
use imghost_local::{Local, Options};
use serde_json::Value;

pub mod files;
#[path = "../../../../shared/tests/support/origin.rs"]
pub mod origin;
pub mod process;

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef0123456789abcdef";

/// Where the shared test photos live, relative to this crate.
pub fn photos_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata/photos")
}

pub struct Server {
    pub base: String,
    pub client: reqwest::Client,
    /// Declared before `data`, so that the server stops before its directory is removed.
    running: imghost_local::Running,
    pub data: tempfile::TempDir,
}

impl Server {
    /// Starts the same server `imghost serve` runs, in-process, on a free loopback port.
    pub async fn start() -> Server {
        Self::start_with(imghost::fetch::Fetcher::public()).await
    }

    /// The same, importing with `fetcher` (tests allow it their own loopback origin).
    pub async fn start_with(fetcher: imghost::fetch::Fetcher) -> Server {
        Self::start_with_options(fetcher, Limits::default()).await
    }

    /// The same, with the front door's `limits` (tests of timeouts and the connection cap use
    /// small ones).
    pub async fn start_with_limits(limits: Limits) -> Server {
        Self::start_with_options(imghost::fetch::Fetcher::public(), limits).await
    }

    async fn start_with_options(fetcher: imghost::fetch::Fetcher, limits: Limits) -> Server {
        Self::start_in(tempfile::tempdir().unwrap(), fetcher, limits).await
    }

    /// A server on an existing data directory (which it keeps, and removes when dropped).
    pub async fn start_in(data: tempfile::TempDir, fetcher: imghost::fetch::Fetcher, limits: Limits) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let opts = Options {
            addr: listener.local_addr().unwrap(),
            data_dir: data.path().to_path_buf(),
            admin_token: Some(ADMIN_TOKEN.into()),
            public_url: Some(base.clone()),
            trust_proxy: false,
            fetcher: fetcher.clone(),
            keepalive_dry_run: true,
            web_dir: None,
            limits: limits.clone(),
        };
        let local = Local::open(&opts).unwrap();
        // The same front door and workers `imghost serve` runs, so that tests see what clients
        // see; it serves until the test drops the server.
        let running = local.spawn(listener, &opts, std::future::pending());
        // What a test stores is then due for the hourly sweep only, never for the one at start.
        running.first_sweep_done().await;
        Server { base, client: reqwest::Client::new(), running, data }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Uploads raw bytes; returns status and JSON body.
    pub async fn upload_raw(&self, bytes: Vec<u8>, content_type: &str) -> (u16, Value) {
        let resp = self
            .client
            .post(self.url("/v1/images"))
            .header("content-type", content_type)
            .body(bytes)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap())
    }

    /// GET with the admin token; returns status and JSON body.
    pub async fn admin_get_json(&self, path: &str) -> (u16, Value) {
        let resp = self.client.get(self.url(path)).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// POST a JSON body with the admin token; returns status and JSON body.
    pub async fn admin_post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        let resp = self.client.post(self.url(path)).bearer_auth(ADMIN_TOKEN).json(body).send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let resp = self.client.get(self.url(path)).send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Posts `bytes` with a handed-out presigned form (`{"form": {"url", "fields"}}`), fields
    /// first and the file last, as S3 requires.
    pub async fn post_form(&self, created: &Value, bytes: Vec<u8>) -> reqwest::Response {
        let form = &created["form"];
        let mut multipart = reqwest::multipart::Form::new();
        for (name, value) in form["fields"].as_object().unwrap() {
            multipart = multipart.text(name.clone(), value.as_str().unwrap().to_owned());
        }
        multipart = multipart.part("file", reqwest::multipart::Part::bytes(bytes).file_name("upload.bin"));
        self.client.post(form["url"].as_str().unwrap()).multipart(multipart).send().await.unwrap()
    }

    /// Polls a presigned upload's status until it is no longer waiting.
    pub async fn wait_until_settled(&self, status_url: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let body: Value = self.client.get(status_url).send().await.unwrap().json().await.unwrap();
            if body["status"] != "waiting" {
                return body;
            }
            assert!(tokio::time::Instant::now() < deadline, "upload never settled: {body}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls the metadata until every variant is ready, or fails after `timeout`.
    pub async fn wait_for_variants(&self, id: &str, timeout: Duration) -> Value {
        self.variants_ready(id, timeout).await.unwrap_or_else(|e| panic!("{e}"))
    }

    /// Polls an image until every size lists an AVIF variant, which the later pass makes after
    /// the others (`workers::avif`); returns its metadata.
    pub async fn wait_for_avif(&self, id: &str, timeout: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let body = self.wait_for_variants(id, timeout).await;
            let has_avif = |size: &str| {
                body["variants"][size]["formats"].as_array().is_some_and(|f| f.iter().any(|f| f["format"] == "avif"))
            };
            if ["small", "medium", "large"].iter().all(|s| has_avif(s)) {
                return body;
            }
            assert!(tokio::time::Instant::now() < deadline, "AVIF variants of {id} not made in {timeout:?}: {body}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls an image until every variant is ready; an error says why not (a failed variant,
    /// the image gone, or the timeout), so that a test can list every failure.
    pub async fn variants_ready(&self, id: &str, timeout: Duration) -> Result<Value, String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let (status, body) = self.get_json(&format!("/v1/images/{id}")).await;
            if status != 200 {
                return Err(format!("GET /v1/images/{id}: {status} {body}"));
            }
            let states: Vec<&str> = ["small", "medium", "large"]
                .iter()
                .map(|s| body["variants"][s]["status"].as_str().unwrap_or("?"))
                .collect();
            if states.iter().all(|s| *s == "ready") {
                return Ok(body);
            }
            if states.contains(&"failed") {
                return Err(format!("a variant of {id} failed: {body}"));
            }
            if tokio::time::Instant::now() > deadline {
                return Err(format!("variants of {id} not ready in {timeout:?}: {body}"));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Server {
    /// Waits until the workers have emptied every queue, then stops the server and hands back
    /// its data directory.
    pub async fn stop_when_idle(mut self) -> tempfile::TempDir {
        self.wait_until_idle().await;
        std::mem::replace(&mut self.data, tempfile::tempdir().unwrap())
    }

    /// Waits until every local queue is empty: the workers have done all the work queued so far
    /// (the AVIF passes, which follow the variants, among it).
    pub async fn wait_until_idle(&self) {
        let local = imghost::state::LocalStorage::open(self.data.path()).unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let waiting = local.object_events.len().unwrap()
                + local.imports.len().unwrap()
                + local.keepalive.len().unwrap()
                + local.avif.len().unwrap();
            if waiting == 0 {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "{waiting} messages still queued");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// A 300x200 animated GIF of `frames` frames, each with the bar in another place, looping for
/// ever, 80 ms a frame.
pub fn animated_gif(frames: u32) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut encoder = image::codecs::gif::GifEncoder::new_with_speed(&mut out, 10);
        encoder.set_repeat(image::codecs::gif::Repeat::Infinite).unwrap();
        for i in 0..frames {
            let canvas = image::RgbaImage::from_fn(300, 200, |x, _| {
                let bar = (x / 30) == i % 10;
                image::Rgba(if bar { [250, 250, 250, 255] } else { [40, 90, 200, 255] })
            });
            let delay = image::Delay::from_numer_denom_ms(80, 1);
            encoder.encode_frame(image::Frame::from_parts(canvas, 0, 0, delay)).unwrap();
        }
    }
    out
}

/// Asserts the body is the JSON error shape with the given status class and returns its code.
pub fn error_code(status: u16, body: &Value) -> String {
    assert!((400..500).contains(&status), "expected a 4xx, got {status}: {body}");
    let code = body["error"]["code"].as_str().unwrap_or_else(|| panic!("no error.code in {body}"));
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "no error.message in {body}");
    code.to_owned()
}
