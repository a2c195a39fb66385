//! Serving a large original to many clients at once: the real `imghost` binary, measured. Each
//! response streams only the bytes asked for, one bounded chunk at a time, so neither range
//! requests nor clients that stop reading make the server hold the object.

mod common;

use std::time::{Duration, Instant};

use common::files::{png_file, png_ihdr, zlib_stored};
use common::process::Process;
use futures::future::join_all;
use serde_json::Value;

const ADMIN_TOKEN: &str = "delivery-admin-token-6b1f0c2d3e4a5b6c7d8e9f0a1b2c3d4e";
const MIB: u64 = 1 << 20;
/// The most resident memory serving may add to a server at rest.
const PEAK_LIMIT: u64 = 256 * MIB;
/// Clients at once, of each kind.
const CLIENTS: usize = 100;

/// A valid PNG of about 40 MiB: 3,750 × 3,750 RGB, stored without compression.
fn large_png() -> Vec<u8> {
    let side = 3750usize;
    let mut rows = Vec::with_capacity(side * (side * 3 + 1));
    for y in 0..side {
        rows.push(0); // Filter type None.
        rows.extend((0..side * 3).map(|x| ((x * 7 + y * 13) % 251) as u8));
    }
    png_file(&png_ihdr(side as u32, side as u32, 8, 2, false), &[], &zlib_stored(&rows))
}

/// Stores `bytes` through a presigned upload (the API takes at most 5 MiB directly) and waits
/// until the image and its variants are ready; returns the image's link.
async fn upload_large(server: &Process, client: &reqwest::Client, bytes: Vec<u8>) -> String {
    let created: Value = client.post(server.url("/v1/uploads")).send().await.unwrap().json().await.unwrap();
    let mut form = reqwest::multipart::Form::new();
    for (name, value) in created["form"]["fields"].as_object().unwrap() {
        form = form.text(name.clone(), value.as_str().unwrap().to_owned());
    }
    form = form.part("file", reqwest::multipart::Part::bytes(bytes).file_name("large.png"));
    let posted = client.post(created["form"]["url"].as_str().unwrap()).multipart(form).send().await.unwrap();
    assert!(posted.status().is_success(), "{}", posted.text().await.unwrap_or_default());
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let status: Value =
            client.get(created["status_url"].as_str().unwrap()).send().await.unwrap().json().await.unwrap();
        let ready = ["small", "medium", "large"].iter().all(|s| status["image"]["variants"][s]["status"] == "ready");
        if status["status"] == "done" && ready {
            return status["image"]["link"].as_str().unwrap().to_owned();
        }
        assert!(status["status"] != "failed" && Instant::now() < deadline, "{status}\n{}", server.log_tail());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_clients_of_a_large_original_hold_one_chunk_each() {
    // Given a server holding a 40 MiB original, at rest (its variants made),
    let server = Process::start(ADMIN_TOKEN);
    let client = reqwest::Client::new();
    let bytes = large_png();
    let size = bytes.len() as u64;
    assert!(size >= 40 * MIB, "{size}");
    let link = upload_large(&server, &client, bytes).await;
    server.reset_peak();
    let at_rest = server.memory().unwrap().rss;

    // when a hundred clients ask for its first byte,
    let ranged = join_all((0..CLIENTS).map(|_| {
        let (client, link) = (client.clone(), link.clone());
        async move {
            let resp = client.get(&link).header("range", "bytes=0-0").send().await.unwrap();
            let status = resp.status().as_u16();
            let range = resp.headers().get("content-range").and_then(|v| v.to_str().ok()).map(str::to_owned);
            (status, range, resp.bytes().await.unwrap().len())
        }
    }))
    .await;
    // and a hundred more ask for all of it and stop reading after the headers,
    let stalled = join_all((0..CLIENTS).map(|_| {
        let link = link.clone();
        async move {
            // One connection each: a pooled connection would queue the requests instead.
            let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
            let resp = client.get(&link).send().await.unwrap();
            (resp.status().as_u16(), resp.content_length(), resp)
        }
    }))
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let memory = server.memory().unwrap();

    // then every range request got its one byte,
    let want = Some(format!("bytes 0-0/{size}"));
    assert!(ranged.iter().all(|(s, r, n)| (*s, r, *n) == (206, &want, 1)), "{:?}", &ranged[..3]);
    // every stalled client its headers for the whole object,
    assert!(stalled.iter().all(|(s, len, _)| (*s, *len) == (200, Some(size))));
    // and the server's memory rose by far less than one copy of the object per client.
    let added = memory.hwm.saturating_sub(at_rest);
    println!(
        "{CLIENTS} range and {CLIENTS} stalled clients of a {} MiB original: at rest {} MiB, peak {} MiB (+{} MiB)",
        size / MIB,
        at_rest / MIB,
        memory.hwm / MIB,
        added / MIB
    );
    assert!(memory.hwm < PEAK_LIMIT, "peak {} MiB (at rest {} MiB)", memory.hwm / MIB, at_rest / MIB);
    drop(stalled);

    // And the server goes on serving the whole object to a client that reads it.
    let whole = client.get(&link).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(whole.len() as u64, size);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_image_is_not_served_from_the_caches() {
    // Given an image served (its record and its small variants then cached) with its variants made,
    let server = common::Server::start().await;
    let bytes = std::fs::read(common::photos_dir().join("cameras/Canon_40D.jpg")).unwrap();
    let (_, created) = server.upload_raw(bytes, "image/jpeg").await;
    let id = created["id"].as_str().unwrap().to_owned();
    server.wait_for_variants(&id, Duration::from_secs(60)).await;
    let paths = [format!("/i/{id}.jpg"), format!("/i/{id}?size=small"), format!("/i/{id}?size=large")];
    let mut etags = Vec::new();
    for path in &paths {
        for _ in 0..2 {
            let resp = server.client.get(server.url(path)).send().await.unwrap();
            assert_eq!(resp.status(), 200, "{path}");
            etags.push(resp.headers()["etag"].to_str().unwrap().to_owned());
        }
    }

    // when it is deleted with its token,
    let token = created["delete_token"].as_str().unwrap();
    let resp = server.client.delete(server.url(&format!("/v1/images/{id}"))).header("x-delete-token", token);
    assert_eq!(resp.send().await.unwrap().status(), 204);

    // then none of its addresses answers any more, not even a revalidation with its old tag.
    for (path, etag) in paths.iter().zip(etags.iter().step_by(2)) {
        let resp = server.client.get(server.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 404, "{path}");
        let resp = server.client.get(server.url(path)).header("if-none-match", etag).send().await.unwrap();
        assert_eq!(resp.status(), 404, "{path} revalidated");
    }
}
