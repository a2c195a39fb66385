//! Presigned (large) uploads through the local server: the form, the file posted to it, the
//! worker's ingest, and the status endpoint.

mod common;

use std::time::Duration;

use common::{Server, error_code, photos_dir};
use serde_json::Value;

async fn create(server: &Server, body: Value) -> (u16, Value) {
    let resp = server.client.post(server.url("/v1/uploads")).json(&body).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

/// A PNG of noise larger than the API's 5 MiB limit (noise does not compress).
fn big_png() -> Vec<u8> {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let img = image::RgbImage::from_fn(1600, 1400, |_, _| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        image::Rgb([state as u8, (state >> 8) as u8, (state >> 16) as u8])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_over_the_api_limit_uploads_through_the_form() {
    let server = Server::start().await;
    let bytes = big_png();
    assert!(bytes.len() > 5 * 1024 * 1024, "test file is only {} bytes", bytes.len());

    // Given a handed-out form,
    let (status, created) = create(&server, serde_json::json!({"bytes": bytes.len()})).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["max_bytes"], 50 * 1024 * 1024);
    let status_url = created["status_url"].as_str().unwrap().to_owned();
    let (_, waiting) = server.get_json(&status_url.replace(&server.base, "")).await;
    assert_eq!(waiting["status"], "waiting");

    // when the file is posted to it,
    let resp = server.post_form(&created, bytes.clone()).await;
    assert_eq!(resp.status(), 204);

    // then the worker ingests it and the status names the image,
    let done = server.wait_until_settled(&status_url).await;
    assert_eq!(done["status"], "done", "{done}");
    let image = &done["image"];
    assert_eq!((image["width"].as_u64(), image["height"].as_u64()), (Some(1600), Some(1400)));
    let served = server.client.get(image["link"].as_str().unwrap()).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(served.len(), bytes.len());
    let id = image["id"].as_str().unwrap();
    server.wait_for_variants(id, Duration::from_secs(60)).await;

    // the form cannot be used twice,
    let resp = server.post_form(&created, bytes).await;
    assert_eq!(resp.status(), 409);

    // and the delete token handed out with the form deletes the image.
    let resp = server
        .client
        .delete(server.url(&format!("/v1/images/{id}")))
        .header("x-delete-token", created["delete_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let (status, _) = server.get_json(&format!("/v1/images/{id}")).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_file_through_the_form_fails_with_a_reason_and_bad_requests_are_refused() {
    let server = Server::start().await;

    // A file that is not an image is received, then fails ingest with the ingest's own code.
    let (_, created) = create(&server, serde_json::json!({})).await;
    assert_eq!(server.post_form(&created, b"plain text, not an image".to_vec()).await.status(), 204);
    let settled = server.wait_until_settled(created["status_url"].as_str().unwrap()).await;
    assert_eq!(settled["status"], "failed");
    assert_eq!(settled["error"]["code"], "unsupported_media_type");
    assert!(settled["image"].is_null());

    // A duplicate of a direct upload is done, pointing at the same image.
    let photo = std::fs::read(photos_dir().join("cameras/Canon_40D.jpg")).unwrap();
    let (_, direct) = server.upload_raw(photo.clone(), "image/jpeg").await;
    let (_, created) = create(&server, serde_json::json!({})).await;
    server.post_form(&created, photo).await;
    let settled = server.wait_until_settled(created["status_url"].as_str().unwrap()).await;
    assert_eq!(settled["status"], "done");
    assert_eq!(settled["duplicate"], true);
    assert_eq!(settled["image"]["id"], direct["id"]);

    // Asking for too much, or in a wrong shape, is refused before any form is made.
    for (body, want_status, want_code) in [
        (serde_json::json!({"bytes": 50 * 1024 * 1024 + 1}), 413, "file_too_large"),
        (serde_json::json!({"bytes": 0}), 422, "bad_size"),
        (serde_json::json!({"size": 1}), 422, "bad_json"),
        (serde_json::json!([1, 2]), 422, "bad_json"),
    ] {
        let (status, resp) = create(&server, body.clone()).await;
        assert_eq!(status, want_status, "{body}: {resp}");
        assert_eq!(error_code(status, &resp), want_code, "{body}");
    }
    // Unknown uploads are 404 for both reading and posting.
    for path in ["/v1/uploads/AAAAAAAAAAAAAAAAAAAAAA", "/v1/uploads/../../etc"] {
        let (status, body) = server.get_json(path).await;
        assert_eq!(status, 404, "{path}");
        error_code(status, &body);
    }
}
