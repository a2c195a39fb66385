//! Service statistics through the local server: after uploading every test photo (directly and
//! through an invitation link) the counters agree with ExifTool's reading in `expected.json`,
//! and deletes take stored images back out of them.

mod common;

use std::collections::{BTreeMap, HashSet};

use common::{ADMIN_TOKEN, Server, error_code, photos_dir};
use serde_json::{Value, json};
use time::OffsetDateTime;

#[derive(serde::Deserialize, Debug, Clone)]
struct Expected {
    file: String,
    model: Option<String>,
    libvips_decodes_cleanly: bool,
}

fn oracle() -> Vec<Expected> {
    let text = std::fs::read_to_string(photos_dir().join("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

async fn stats(server: &Server) -> Value {
    let resp = server.client.get(server.url("/v1/stats")).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    resp.json().await.unwrap()
}

/// What `top_cameras` must say for these stored photos, computed from the oracle alone: models
/// counted per image, most first, ties by model name, at most ten.
fn expected_top_cameras(stored: &[Expected]) -> Vec<Value> {
    let mut counts: BTreeMap<&str, i64> = BTreeMap::new();
    for e in stored {
        if let Some(m) = &e.model {
            *counts.entry(m.as_str()).or_default() += 1;
        }
    }
    let mut ranked: Vec<(&str, i64)> = counts.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    ranked.into_iter().take(10).map(|(model, count)| json!({"model": model, "count": count})).collect()
}

fn utc_today() -> String {
    let d = OffsetDateTime::now_utc().date();
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// Checks the day series: 30 consecutive UTC days ending today, and `today_count` uploads on
/// the last day. A test that straddles UTC midnight sees its uploads split over two days, so
/// then only the sum over the window is checked.
fn check_days(s: &Value, uploads: i64, today_before: &str) {
    let days = s["uploads_per_day"].as_array().unwrap();
    assert_eq!(days.len(), 30);
    let dates: Vec<&str> = days.iter().map(|d| d["date"].as_str().unwrap()).collect();
    assert!(dates.windows(2).all(|w| w[0] < w[1]), "{dates:?}");
    let today = utc_today();
    assert_eq!(*dates.last().unwrap(), today);
    assert_eq!(days.iter().map(|d| d["count"].as_i64().unwrap()).sum::<i64>(), uploads);
    if today == today_before {
        assert_eq!(days.last().unwrap()["count"], uploads);
        assert!(days[..29].iter().all(|d| d["count"] == 0));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_follow_every_photo_and_deletes() {
    // Given a fresh server, whose statistics are all zero,
    let server = Server::start().await;
    let today_before = utc_today();
    let s = stats(&server).await;
    assert_eq!(s["most_popular_format"], Value::Null);
    assert_eq!(s["totals"], json!({"images": 0, "uploads": 0, "bytes": 0, "duplicates": 0}));
    check_days(&s, 0, &today_before);

    // when every test photo is uploaded: the `cameras/` folder through an invitation link in
    // one request, the rest directly,
    let photos = oracle();
    let link: Value = server
        .client
        .post(server.url("/v1/links"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"expires_in": 3600}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (via_link, direct): (Vec<_>, Vec<_>) = photos.iter().partition(|e| e.file.starts_with("cameras/"));
    let mut form = reqwest::multipart::Form::new();
    for e in &via_link {
        let bytes = std::fs::read(photos_dir().join(&e.file)).unwrap();
        form = form.part("file", reqwest::multipart::Part::bytes(bytes).file_name(e.file.clone()));
    }
    let resp = server.client.post(link["upload_url"].as_str().unwrap()).multipart(form).send().await.unwrap();
    assert_eq!(resp.status(), 201);
    let linked: Value = resp.json().await.unwrap();
    let mut uploaded: Vec<(Expected, Value)> =
        via_link.iter().cloned().cloned().zip(linked["images"].as_array().unwrap().iter().cloned()).collect();
    for e in direct {
        let bytes = std::fs::read(photos_dir().join(&e.file)).unwrap();
        let (status, body) = server.upload_raw(bytes, "image/jpeg").await;
        if e.libvips_decodes_cleanly {
            assert_eq!(status, 201, "{}: {body}", e.file);
            uploaded.push((e.clone(), body));
        } else {
            // (the damaged file is refused and counts nowhere)
            assert_eq!(error_code(status, &body), "damaged_image");
        }
    }
    // and three of them are uploaded a second time,
    let mut dup_tokens = vec![];
    for e in ["gps/DSCN0010.jpg", "no-exif.jpg", "cameras/Nikon_D70.jpg"] {
        let (status, body) = server.upload_raw(std::fs::read(photos_dir().join(e)).unwrap(), "image/jpeg").await;
        assert_eq!((status, body["duplicate"].as_bool()), (200, Some(true)), "{e}: {body}");
        dup_tokens.push((body["id"].as_str().unwrap().to_owned(), body["delete_token"].as_str().unwrap().to_owned()));
    }

    // then the statistics agree with the oracle.
    let distinct: HashSet<Vec<u8>> =
        uploaded.iter().map(|(e, _)| std::fs::read(photos_dir().join(&e.file)).unwrap()).collect();
    assert_eq!(distinct.len(), uploaded.len(), "the test photos are all different files");
    let stored: Vec<Expected> = uploaded.iter().map(|(e, _)| e.clone()).collect();
    let n = stored.len() as i64;
    let bytes: i64 = uploaded.iter().map(|(_, b)| b["bytes"].as_i64().unwrap()).sum();
    let s = stats(&server).await;
    assert_eq!(s["most_popular_format"], "jpeg");
    assert_eq!(s["formats"], json!([{"format": "jpeg", "count": n}]));
    assert_eq!(s["top_cameras"], json!(expected_top_cameras(&stored)));
    assert_eq!(s["top_cameras"][0], json!({"model": "COOLPIX P6000", "count": 4}));
    assert_eq!(s["cameras_unknown"], stored.iter().filter(|e| e.model.is_none()).count() as i64);
    assert_eq!(s["totals"], json!({"images": n, "uploads": n + 3, "bytes": bytes, "duplicates": 3}));
    check_days(&s, n + 3, &today_before);

    // When one duplicate upload is deleted by its token, its image stays (another upload holds
    // it), so the stored-image counters do not move.
    let (id, token) = &dup_tokens[0];
    let resp = server.client.delete(server.url(&format!("/v1/images/{id}"))).header("x-delete-token", token).send();
    assert_eq!(resp.await.unwrap().status(), 204);
    assert_eq!(stats(&server).await["totals"]["images"], n);

    // When all four COOLPIX P6000 photos and `no-exif.jpg` are deleted by the admin,
    let gone: Vec<&(Expected, Value)> =
        uploaded.iter().filter(|(e, _)| e.file.starts_with("gps/") || e.file == "no-exif.jpg").collect();
    assert_eq!(gone.len(), 5);
    for (_, body) in &gone {
        let url = server.url(&format!("/v1/images/{}", body["id"].as_str().unwrap()));
        let resp = server.client.delete(url).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
        assert_eq!(resp.status(), 204);
    }

    // then they leave the stored-image counters: the next models move up into the top ten,
    // while accepted uploads stay counted.
    let left: Vec<Expected> = stored.iter().filter(|e| !gone.iter().any(|(g, _)| g.file == e.file)).cloned().collect();
    let left_bytes = bytes - gone.iter().map(|(_, b)| b["bytes"].as_i64().unwrap()).sum::<i64>();
    let s = stats(&server).await;
    assert_eq!(s["formats"], json!([{"format": "jpeg", "count": n - 5}]));
    assert_eq!(s["top_cameras"], json!(expected_top_cameras(&left)));
    assert!(s["top_cameras"].as_array().unwrap().iter().all(|c| c["model"] != "COOLPIX P6000"));
    assert_eq!(s["cameras_unknown"], left.iter().filter(|e| e.model.is_none()).count() as i64);
    assert_eq!(s["totals"], json!({"images": n - 5, "uploads": n + 3, "bytes": left_bytes, "duplicates": 3}));
    check_days(&s, n + 3, &today_before);

    // And when everything else is deleted too, nothing is stored and no camera is ranked.
    for (e, body) in &uploaded {
        if gone.iter().any(|(g, _)| g.file == e.file) {
            continue;
        }
        let url = server.url(&format!("/v1/images/{}", body["id"].as_str().unwrap()));
        assert_eq!(server.client.delete(url).bearer_auth(ADMIN_TOKEN).send().await.unwrap().status(), 204);
    }
    let s = stats(&server).await;
    assert_eq!((&s["formats"], &s["top_cameras"], &s["cameras_unknown"]), (&json!([]), &json!([]), &json!(0)));
    assert_eq!(s["most_popular_format"], Value::Null);
    assert_eq!(s["totals"], json!({"images": 0, "uploads": n + 3, "bytes": 0, "duplicates": 3}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_are_admin_only() {
    // Given a server, when stats are asked for without the admin token or with a wrong one,
    let server = Server::start().await;
    let cases: [(Option<&str>, u16); 3] = [(None, 401), (Some("wrong"), 401), (Some(ADMIN_TOKEN), 200)];
    for (token, want) in cases {
        let mut req = server.client.get(server.url("/v1/stats"));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap();
        // then only the admin gets an answer, and the others learn nothing but "unauthorized".
        assert_eq!(status, want, "{token:?}: {body}");
        if want == 401 {
            assert_eq!(error_code(status, &body), "unauthorized");
            assert!(body.get("totals").is_none());
        }
    }
}
