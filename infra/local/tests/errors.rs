//! Client mistakes answered as such: JSON bodies that are not UTF-8 name their field, and links
//! never follow a request's `Host` or `X-Forwarded-*` headers (without a trusted proxy).

mod common;

use common::{ADMIN_TOKEN, Server, error_code, photos_dir};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_bodies_that_are_not_utf8_are_400_naming_the_field() {
    let server = Server::start().await;
    // Given each endpoint that reads JSON, sent a body with an invalid byte in one field,
    let cases: [(&str, &[u8], &str); 4] = [
        ("/v1/imports", b"{\"urls\": [\"https://example.com/a.png\", \"https://ex\xffample.com/\"]}", "urls[1]:"),
        ("/v1/keepalive", b"{\"url\": \"https://i.imgur.com/AbCdE12\xc3.jpg\"}", "url:"),
        ("/v1/links", b"{\"expires_in\": 3600, \"label\": \"caf\xe9\"}", "label:"),
        ("/v1/accounts", b"{\"name\": \"\xff\xfe\"}", "name:"),
    ];
    for (path, body, prefix) in cases {
        let resp = server
            .client
            .post(server.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let answer: Value = resp.json().await.unwrap();
        // then each answers 400 invalid_utf8 naming the field, and nothing was made.
        assert_eq!((status, error_code(status, &answer).as_str()), (400, "invalid_utf8"), "{path}: {answer}");
        assert!(answer["error"]["message"].as_str().unwrap().starts_with(prefix), "{path}: {answer}");
    }
    let (_, accounts) = server.admin_get_json("/v1/accounts").await;
    assert_eq!(accounts["accounts"].as_array().map(Vec::len), Some(0));
    let (_, links) = server.admin_get_json("/v1/links").await;
    assert_eq!(links["links"].as_array().map(Vec::len), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_are_built_on_the_public_url_whatever_the_request_says() {
    // Given a server whose public URL is its own address,
    let server = Server::start().await;
    let photo = std::fs::read(photos_dir().join("cameras/Canon_40D.jpg")).unwrap();
    // when an upload claims another host in every header a proxy would set,
    let resp = server
        .client
        .post(server.url("/v1/images"))
        .header("content-type", "image/jpeg")
        .header("host", "evil.example")
        .header("x-forwarded-host", "evil.example")
        .header("x-forwarded-proto", "https")
        .body(photo)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.unwrap();
    // then every link it gets back points at the server itself.
    let mut urls = vec![body["link"].as_str().unwrap(), body["page"].as_str().unwrap()];
    for size in ["small", "medium", "large"] {
        urls.push(body["variants"][size]["url"].as_str().unwrap());
    }
    for url in urls {
        assert!(url.starts_with(&format!("{}/", server.base)), "{url}");
    }
    // and the same holds for the metadata a third party reads with a forged header.
    let id = body["id"].as_str().unwrap();
    let resp = server.client.get(server.url(&format!("/v1/images/{id}"))).header("x-forwarded-host", "evil.example");
    let view: Value = resp.send().await.unwrap().json().await.unwrap();
    assert!(view["link"].as_str().unwrap().starts_with(&server.base), "{view}");
}

/// A small baseline JPEG, and the offset of its frame header's marker byte.
fn baseline_jpeg() -> (Vec<u8>, usize) {
    let img = image::RgbImage::from_fn(32, 24, |x, y| image::Rgb([x as u8 * 8, y as u8 * 10, 90]));
    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, 80).encode(img.as_raw(), 32, 24, jpeg_encoder::ColorType::Rgb).unwrap();
    let sof = out.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap() + 1;
    (out, sof)
}

/// A small PNG with its header's bit depth and colour type replaced (checksum fixed).
fn png_with(depth: u8, colour: u8) -> Vec<u8> {
    let img = image::RgbImage::from_pixel(8, 8, image::Rgb([1, 2, 3]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    let mut b = out.into_inner();
    b[24] = depth;
    b[25] = colour;
    let crc = crc32(&b[12..29]);
    b[29..33].copy_from_slice(&crc.to_be_bytes());
    b
}

/// CRC-32 as PNG defines it.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_nothing_can_show_are_refused_at_upload_and_nothing_is_stored() {
    let server = Server::start().await;
    let (jpeg, sof) = baseline_jpeg();
    let process = |marker: u8| {
        let mut b = jpeg.clone();
        b[sof] = marker;
        b
    };
    let twelve_bit = {
        let mut b = jpeg.clone();
        b[sof + 3] = 12;
        b
    };
    // Given files that pass a naive check of their magic bytes but that neither browsers nor
    // the decoders can show,
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("lossless JPEG (SOF3)", process(0xC3), 415, "unsupported_image"),
        ("arithmetic-coded JPEG (SOF9)", process(0xC9), 415, "unsupported_image"),
        ("arithmetic-coded progressive JPEG (SOF10)", process(0xCA), 415, "unsupported_image"),
        ("hierarchical JPEG (SOF5)", process(0xC5), 415, "unsupported_image"),
        ("12-bit JPEG", twelve_bit, 415, "unsupported_image"),
        ("PNG colour type 5", png_with(8, 5), 422, "damaged_image"),
        ("PNG colour type 1", png_with(8, 1), 422, "damaged_image"),
        ("RGB PNG with 4-bit samples", png_with(4, 2), 422, "damaged_image"),
        ("palette PNG with 16-bit samples", png_with(16, 3), 422, "damaged_image"),
        ("grey PNG with 3-bit samples", png_with(3, 0), 422, "damaged_image"),
    ];
    for (name, bytes, status, code) in cases {
        // when each is uploaded,
        let (got, body) = server.upload_raw(bytes, "image/jpeg").await;
        // then it is refused with a JSON 4xx saying why,
        assert_eq!((got, error_code(got, &body).as_str()), (status, code), "{name}: {body}");
        assert!(!body["error"]["message"].as_str().unwrap_or_default().is_empty(), "{name}");
    }
    // and nothing was stored: the admin listing is empty.
    let (_, listing) = server.admin_get_json("/v1/images").await;
    assert_eq!(listing["images"].as_array().map(Vec::len), Some(0), "{listing}");
    // The untouched baseline JPEG is accepted, so the refusals were the edits'.
    let (status, _) = server.upload_raw(jpeg, "image/jpeg").await;
    assert_eq!(status, 201);
}
