//! End to end through the local server over HTTP: every real photo uploads, its metadata
//! agrees with ExifTool's reading, its variants appear with the right sizes and orientation,
//! duplicates dedupe, deletes delete, and bad files get clear 4xx errors while the server
//! keeps serving.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{Server, error_code, photos_dir};
use serde_json::Value;

#[derive(serde::Deserialize, Debug)]
struct Expected {
    file: String,
    mime: String,
    width: u32,
    height: u32,
    orientation: Option<u16>,
    make: Option<String>,
    model: Option<String>,
    datetime_original: Option<String>,
    gps_lat: Option<f64>,
    gps_lon: Option<f64>,
    libvips_decodes_cleanly: bool,
}

fn oracle() -> Vec<Expected> {
    let text = std::fs::read_to_string(photos_dir().join("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

const VARIANT_TIMEOUT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_photo_uploads_with_metadata_matching_exiftool() {
    // Given a fresh server and the ExifTool reading of every test photo,
    let server = Server::start().await;
    let mut ids = HashMap::new();
    for e in oracle() {
        let bytes = std::fs::read(photos_dir().join(&e.file)).unwrap();
        // when each is uploaded as a raw body,
        let (status, body) = server.upload_raw(bytes, "image/jpeg").await;
        if !e.libvips_decodes_cleanly {
            // then a damaged file is refused with a clear 4xx,
            assert_eq!(error_code(status, &body), "damaged_image", "{}", e.file);
            continue;
        }
        // and every other file is stored with the metadata ExifTool reads.
        assert_eq!(status, 201, "{}: {body}", e.file);
        let f = &e.file;
        assert_eq!(body["mime"], e.mime, "{f}");
        assert_eq!(body["width"], e.width, "{f}");
        assert_eq!(body["height"], e.height, "{f}");
        assert_eq!(body["camera_make"].as_str(), e.make.as_deref(), "{f}");
        assert_eq!(body["camera_model"].as_str(), e.model.as_deref(), "{f}");
        let taken = e.datetime_original.as_ref().map(|d| d.replacen(':', "-", 2).replacen(' ', "T", 1));
        assert_eq!(body["taken_at"].as_str(), taken.as_deref(), "{f}");
        // ExifTool reports orientation 1 only where the file says so; files without EXIF have none.
        assert_eq!(body["orientation"].as_u64().map(|o| o as u16), e.orientation, "{f}");
        // GPS is stored but never public.
        // (Keys are checked, not the text: a random token may spell "gps" by chance.)
        let keys = json_keys(&body);
        assert!(!keys.iter().any(|k| k.contains("gps") || k.contains("lat") || k.contains("lon")), "{f}: {keys:?}");
        for coordinate in [e.gps_lat, e.gps_lon].into_iter().flatten() {
            assert!(!body.to_string().contains(&format!("{:.4}", coordinate.abs())), "{f}: {body}");
        }
        assert_eq!(body["duplicate"], false);
        assert_eq!(body["delete_token"].as_str().map(str::len), Some(43));
        let id = body["id"].as_str().unwrap().to_owned();
        assert!(body["link"].as_str().unwrap().ends_with(&format!("/i/{id}.jpg")));
        ids.insert(e.file.clone(), (id, e));
    }

    // GPS agrees with ExifTool where the stored record is inspected directly.
    let local = imghost::state::LocalStorage::open(server.data.path()).unwrap();
    let app = local.app().build();
    for (file, (id, e)) in &ids {
        let record = imghost::images::get_active(&app, id).await.unwrap();
        for (got, want) in [(record.meta.gps_lat, e.gps_lat), (record.meta.gps_lon, e.gps_lon)] {
            match (got, want) {
                (Some(g), Some(w)) => assert!((g - w).abs() < 1e-6, "{file}: {g} vs {w}"),
                (None, None) => {}
                other => panic!("{file}: GPS {other:?}"),
            }
        }
    }

    // Then every image's variants become ready with the right sizes, upright.
    for (file, (id, e)) in &ids {
        let body = server.wait_for_variants(id, VARIANT_TIMEOUT).await;
        let rotated = e.orientation.unwrap_or(1) >= 5;
        let (dw, dh) = if rotated { (e.height, e.width) } else { (e.width, e.height) };
        for (size, edge) in [("small", 320u32), ("medium", 1024), ("large", 2048)] {
            let v = &body["variants"][size];
            let (w, h) = (v["width"].as_u64().unwrap() as u32, v["height"].as_u64().unwrap() as u32);
            let long = dw.max(dh);
            let want_long = long.min(edge);
            assert_eq!(w.max(h), want_long, "{file} {size}: {w}x{h}");
            // Portrait stays portrait and landscape stays landscape once orientation is applied.
            assert_eq!(w >= h, dw >= dh, "{file} {size}: {w}x{h} for display {dw}x{dh}");
            let bytes = server.client.get(v["url"].as_str().unwrap()).send().await.unwrap().bytes().await.unwrap();
            let img = image::load_from_memory(&bytes).unwrap();
            assert_eq!((img.width(), img.height()), (w, h), "{file} {size}");
        }
    }

    // The eight orientations of one scene all render to the same upright picture.
    for shape in ["landscape", "portrait"] {
        let reference = small_pixels(&server, &ids[&format!("orientation/{shape}_1.jpg")].0).await;
        for n in 2..=8 {
            let file = format!("orientation/{shape}_{n}.jpg");
            let pixels = small_pixels(&server, &ids[&file].0).await;
            assert_eq!((pixels.width(), pixels.height()), (reference.width(), reference.height()), "{file}");
            let diff = mean_abs_diff(&reference, &pixels);
            // Measured: the right orientation differs by 14 to 16 per channel (each sample picture
            // carries its own digit label); every wrong one by 41 or more.
            assert!(diff < 25.0, "{file} differs from {shape}_1 by {diff:.1} per channel: orientation not applied");
        }
    }
}

/// Every object key in a JSON value, at any depth.
fn json_keys(v: &Value) -> Vec<String> {
    match v {
        Value::Object(m) => m.iter().flat_map(|(k, v)| std::iter::once(k.clone()).chain(json_keys(v))).collect(),
        Value::Array(a) => a.iter().flat_map(json_keys).collect(),
        _ => vec![],
    }
}

async fn small_pixels(server: &Server, id: &str) -> image::RgbImage {
    let bytes =
        server.client.get(server.url(&format!("/i/{id}?size=small"))).send().await.unwrap().bytes().await.unwrap();
    image::load_from_memory(&bytes).unwrap().to_rgb8()
}

fn mean_abs_diff(a: &image::RgbImage, b: &image::RgbImage) -> f64 {
    let total: u64 = a.as_raw().iter().zip(b.as_raw()).map(|(x, y)| u64::from(x.abs_diff(*y))).sum();
    total as f64 / a.as_raw().len() as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_share_an_image_and_it_goes_with_its_last_upload() {
    let server = Server::start().await;
    let bytes = std::fs::read(photos_dir().join("gps/DSCN0010.jpg")).unwrap();

    // Given one photo uploaded twice,
    let (s1, first) = server.upload_raw(bytes.clone(), "image/jpeg").await;
    let (s2, second) = server.upload_raw(bytes.clone(), "image/jpeg").await;
    // then the second is a duplicate with the same id and link but its own delete token.
    assert_eq!((s1, s2), (201, 200));
    assert_eq!(second["duplicate"], true);
    assert_eq!(first["id"], second["id"]);
    assert_eq!(first["link"], second["link"]);
    assert_ne!(first["delete_token"], second["delete_token"]);
    let id = first["id"].as_str().unwrap();
    let link = first["link"].as_str().unwrap();

    // The served original has no EXIF make/GPS left, and is available at once.
    let served = server.client.get(link).send().await.unwrap();
    assert_eq!(served.status(), 200);
    assert_eq!(served.headers()["cache-control"], "public, max-age=31536000, immutable");
    let served = served.bytes().await.unwrap();
    let meta = imghost::media::exif::read(&served);
    assert_eq!((meta.camera_make, meta.gps_lat), (None, None));
    assert!(served.len() < bytes.len());

    // When a wrong token deletes, nothing happens.
    let del = |token: &str| {
        server.client.delete(server.url(&format!("/v1/images/{id}"))).header("x-delete-token", token.to_owned()).send()
    };
    let resp = del("not-the-token").await.unwrap();
    assert_eq!(resp.status(), 403);
    // When the first upload is deleted, the image stays for the second.
    let resp = del(first["delete_token"].as_str().unwrap()).await.unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(server.client.get(link).send().await.unwrap().status(), 200);
    // Deleting with the same token again changes nothing: DELETE is idempotent, and the upload
    // is not counted off twice (the image survives until the second token below).
    assert_eq!(del(first["delete_token"].as_str().unwrap()).await.unwrap().status(), 204);
    assert_eq!(server.client.get(link).send().await.unwrap().status(), 200);
    // When the last upload is deleted, the image is gone.
    server.wait_for_variants(id, VARIANT_TIMEOUT).await;
    let resp = del(second["delete_token"].as_str().unwrap()).await.unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(server.client.get(link).send().await.unwrap().status(), 404);
    let (status, _) = server.get_json(&format!("/v1/images/{id}")).await;
    assert_eq!(status, 404);
    let objects = server.data.path().join("objects");
    let leftover: Vec<_> = walk(&objects).into_iter().filter(|p| p.contains(id)).collect();
    assert!(leftover.is_empty(), "objects left behind: {leftover:?}");

    // And the same bytes uploaded again make a new image.
    let (s3, third) = server.upload_raw(bytes, "image/jpeg").await;
    assert_eq!(s3, 201);
    assert_ne!(third["id"], first["id"]);
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = vec![];
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p.display().to_string());
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_uploads_of_the_same_bytes_get_one_image() {
    let server = Server::start().await;
    let bytes = std::fs::read(photos_dir().join("cameras/Canon_40D.jpg")).unwrap();
    // Given 16 clients uploading the same file at once,
    let uploads = (0..16).map(|_| server.upload_raw(bytes.clone(), "image/jpeg"));
    let results = futures::future::join_all(uploads).await;
    // then exactly one created the image and every answer names it.
    let created = results.iter().filter(|(s, _)| *s == 201).count();
    assert_eq!(created, 1, "{results:?}");
    let ids: std::collections::HashSet<_> = results.iter().map(|(_, b)| b["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    let tokens: std::collections::HashSet<_> =
        results.iter().map(|(_, b)| b["delete_token"].as_str().unwrap().to_owned()).collect();
    assert_eq!(tokens.len(), 16);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_clear_4xx_errors_and_the_server_keeps_serving() {
    let server = Server::start().await;
    let good = std::fs::read(photos_dir().join("cameras/Nikon_D70.jpg")).unwrap();
    let corrupted = std::fs::read(photos_dir().join("corrupted.jpg")).unwrap();
    // Cut a larger photo three quarters in: past its header, inside its image data.
    let mut truncated = std::fs::read(photos_dir().join("gps/DSCN0010.jpg")).unwrap();
    truncated.truncate(truncated.len() * 3 / 4);
    let png_header_only = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x10\0\0\0\x10\x08\x02\0\0\0".to_vec();
    let huge = png_header(20_000, 20_000);
    let cases: Vec<(&str, Vec<u8>, &str, u16, &str)> = vec![
        ("corrupted.jpg", corrupted, "image/jpeg", 422, "damaged_image"),
        ("truncated jpeg", truncated, "image/jpeg", 422, "damaged_image"),
        ("text as image", b"hello, I am not an image".to_vec(), "image/png", 415, "unsupported_media_type"),
        ("svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>".to_vec(), "image/svg+xml", 415, "unsupported_media_type"),
        ("png header only", png_header_only, "image/png", 422, "damaged_image"),
        ("400 megapixels", huge, "image/png", 413, "too_many_pixels"),
        ("json body", b"{}".to_vec(), "application/json", 415, "unsupported_content_type"),
        ("empty body", vec![], "image/jpeg", 422, "empty_body"),
        ("over 5 MiB", vec![0xFF; 5 * 1024 * 1024 + 1], "image/jpeg", 413, "request_too_large"),
    ];
    for (name, bytes, ct, want_status, want_code) in cases {
        // When a bad file is uploaded, then it gets the expected status and code,
        let (status, body) = server.upload_raw(bytes, ct).await;
        assert_eq!(status, want_status, "{name}: {body}");
        assert_eq!(error_code(status, &body), want_code, "{name}");
        // and the server still takes good uploads.
        let (status, _) = server.upload_raw(good.clone(), "image/jpeg").await;
        assert!(status == 201 || status == 200, "{name}: server stopped serving");
    }

    // A multipart request with one bad file stores none of its files.
    let form = reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::bytes(std::fs::read(photos_dir().join("cameras/Pentax_K10D.jpg")).unwrap())
                .file_name("a.jpg"),
        )
        .part("file", reqwest::multipart::Part::bytes(b"nope".to_vec()).file_name("b.txt"));
    let resp = server.client.post(server.url("/v1/images")).multipart(form).send().await.unwrap();
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(error_code(status, &body), "unsupported_media_type");
    assert!(body["error"]["message"].as_str().unwrap().contains("b.txt"), "{body}");
    let (status, list) = admin_list(&server).await;
    assert_eq!(status, 200);
    assert!(list["images"].as_array().unwrap().iter().all(|i| i["camera_model"] != "PENTAX K10D"), "{list}");

    // Unknown ids, sizes and routes answer JSON errors too.
    for (path, want) in [
        ("/v1/images/AAAAAAAA", 404),
        ("/v1/images/..%2F..", 404),
        ("/i/AAAAAAAA.jpg", 404),
        ("/i/x.exe", 404),
        ("/nope", 404),
        // Not UTF-8 once decoded: axum's own rejection, reshaped into the JSON error.
        ("/i/%FF", 400),
        ("/v1/images/%FF%FE", 400),
    ] {
        let (status, body) = server.get_json(path).await;
        assert_eq!(status, want, "{path}");
        error_code(status, &body);
    }
}

/// A PNG signature and a valid IHDR chunk for a `w`x`h` RGB image, with no image data: enough
/// for the header check, which must refuse it before anything else.
fn png_header(w: u32, h: u32) -> Vec<u8> {
    let mut chunk = b"IHDR".to_vec();
    chunk.extend_from_slice(&w.to_be_bytes());
    chunk.extend_from_slice(&h.to_be_bytes());
    chunk.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in &chunk {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend_from_slice(&13u32.to_be_bytes());
    png.extend_from_slice(&chunk);
    png.extend_from_slice(&(!crc).to_be_bytes());
    png
}

async fn admin_list(server: &Server) -> (u16, Value) {
    let resp =
        server.client.get(server.url("/v1/images?limit=100")).bearer_auth(common::ADMIN_TOKEN).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_uploads_several_files_and_admin_lists_newest_first() {
    let server = Server::start().await;
    let names = ["cameras/Canon_40D.jpg", "cameras/Sony_HDR-HC3.jpg", "cameras/Kodak_CX7530.jpg"];
    let mut form = reqwest::multipart::Form::new();
    for n in names {
        form = form.part(
            "file",
            reqwest::multipart::Part::bytes(std::fs::read(photos_dir().join(n)).unwrap()).file_name(n.to_owned()),
        );
    }
    // When three files are posted in one multipart request,
    let resp = server.client.post(server.url("/v1/images")).multipart(form).send().await.unwrap();
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.unwrap();
    // then each is an image of the answer, in order.
    let images = body["images"].as_array().unwrap();
    let models: Vec<_> = images.iter().map(|i| i["camera_model"].as_str().unwrap()).collect();
    assert_eq!(models, ["Canon EOS 40D", "HDR-HC3", "KODAK CX7530 ZOOM DIGITAL CAMERA"]);

    // The listing needs the admin token.
    let (status, body) = server.get_json("/v1/images").await;
    assert_eq!(error_code(status, &body), "unauthorized");
    let resp = server.client.get(server.url("/v1/images")).bearer_auth("wrong").send().await.unwrap();
    assert_eq!(resp.status(), 401);
    // Paging through it with limit 2 visits every image once, newest first.
    let mut seen = vec![];
    let mut cursor = String::new();
    loop {
        let url = server.url(&format!("/v1/images?limit=2&cursor={cursor}"));
        let page: Value =
            server.client.get(url).bearer_auth(common::ADMIN_TOKEN).send().await.unwrap().json().await.unwrap();
        seen.extend(page["images"].as_array().unwrap().iter().map(|i| i["camera_model"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = c.to_owned(),
            None => break,
        }
    }
    assert_eq!(seen, ["KODAK CX7530 ZOOM DIGITAL CAMERA", "HDR-HC3", "Canon EOS 40D"]);
    // A cursor that is not one this listing returned is the client's mistake: garbage, a
    // doctored one (valid base64 JSON, wrong keys), or another listing's.
    use base64::Engine;
    let b64 = |json: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json);
    let doctored = b64(r#"{"pk":"IMG#x","sk":"META","gsi1pk":"LINKS","gsi1sk":"1#x"}"#);
    let empty_keys = b64(r#"{"pk":"","sk":"","gsi1pk":"IMAGES","gsi1sk":""}"#);
    let table_cursor = b64(r#"{"pk":"ACCOUNTS","sk":"1#a"}"#);
    let cases: Vec<(String, u16, &str)> = vec![
        ("limit=0".into(), 422, "bad_limit"),
        ("limit=".into(), 422, "bad_limit"),
        ("limit=101".into(), 422, "bad_limit"),
        ("limit=x".into(), 422, "bad_limit"),
        ("cursor=zzz".into(), 400, "invalid_cursor"),
        (format!("cursor={doctored}"), 400, "invalid_cursor"),
        (format!("cursor={empty_keys}"), 400, "invalid_cursor"),
        (format!("cursor={table_cursor}"), 400, "invalid_cursor"),
        ("limit=5&limit=6".into(), 400, "duplicate_parameter"),
        ("limit=%ff".into(), 400, "invalid_utf8"),
    ];
    for (query, status, code) in cases {
        let resp = server
            .client
            .get(server.url(&format!("/v1/images?{query}")))
            .bearer_auth(common::ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), status, "{query}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{query}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn originals_support_etags_and_byte_ranges() {
    let server = Server::start().await;
    let (_, body) = server.upload_raw(std::fs::read(photos_dir().join("no-exif.jpg")).unwrap(), "image/jpeg").await;
    let link = body["link"].as_str().unwrap();
    let full = server.client.get(link).send().await.unwrap();
    let etag = full.headers()["etag"].to_str().unwrap().to_owned();
    let full = full.bytes().await.unwrap();

    let resp = server.client.get(link).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(resp.status(), 304);

    let resp = server.client.get(link).header("range", "bytes=10-19").send().await.unwrap();
    assert_eq!(resp.status(), 206);
    assert_eq!(resp.headers()["content-range"], format!("bytes 10-19/{}", full.len()));
    assert_eq!(resp.bytes().await.unwrap(), full.slice(10..20));

    let resp = server.client.get(link).header("range", format!("bytes={}-", full.len())).send().await.unwrap();
    assert_eq!(resp.status(), 416);

    // A variant that is not ready yet falls back to the original with a short cache life.
    let id = body["id"].as_str().unwrap();
    let resp = server.client.get(server.url(&format!("/i/{id}?size=large"))).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let cache = resp.headers()["cache-control"].to_str().unwrap().to_owned();
    let ready = server.get_json(&format!("/v1/images/{id}")).await.1["variants"]["large"]["status"] == "ready";
    if !ready {
        assert_eq!(cache, "public, max-age=60");
    }
    let resp = server.client.get(server.url(&format!("/i/{id}?size=huge"))).send().await.unwrap();
    assert_eq!(resp.status(), 422);
}
