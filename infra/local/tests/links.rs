//! Invitation upload links through the local server: creation rules, use counting under
//! concurrency, revocation and expiry.

mod common;

use std::time::Duration;

use common::{ADMIN_TOKEN, Server, error_code, photos_dir};
use serde_json::{Value, json};

async fn create_link(server: &Server, body: Value) -> (u16, Value) {
    let resp = server.client.post(server.url("/v1/links")).bearer_auth(ADMIN_TOKEN).json(&body).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

/// Uploads the named photos through a link's upload URL in one multipart request.
async fn upload_via(server: &Server, upload_url: &str, names: &[&str]) -> (u16, Value) {
    let mut form = reqwest::multipart::Form::new();
    for n in names {
        let bytes = std::fs::read(photos_dir().join(n)).unwrap();
        form = form.part("file", reqwest::multipart::Part::bytes(bytes).file_name(n.to_string()));
    }
    let resp = server.client.post(upload_url).multipart(form).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_creation_is_validated_and_admin_only() {
    let server = Server::start().await;
    let soon = (time::OffsetDateTime::now_utc() + time::Duration::days(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let cases = [
        (json!({"expires_in": 3600}), 201, ""),
        (json!({"expires_at": soon, "max_uploads": 5, "label": "party"}), 201, ""),
        (json!({"expires_at": "2001-01-01T00:00:00Z"}), 422, "expiry_in_past"),
        (json!({"expires_in": -1}), 422, "expiry_in_past"),
        (json!({"expires_at": "next week"}), 422, "bad_expires_at"),
        (json!({"expires_at": soon, "expires_in": 60}), 422, "ambiguous_expiry"),
        (json!({}), 422, "missing_expiry"),
        (json!({"expires_in": 31 * 86_400}), 422, "expiry_too_far"),
        (json!({"expires_in": 60, "max_uploads": 0}), 422, "bad_max_uploads"),
        (json!({"expires_in": 60, "max_uploads": 10_001}), 422, "bad_max_uploads"),
        (json!({"expires_in": 60, "max_upload": 5}), 422, "bad_json"),
        (json!({"expires_in": "soon"}), 422, "bad_json"),
    ];
    for (body, want_status, want_code) in cases {
        let (status, resp) = create_link(&server, body.clone()).await;
        assert_eq!(status, want_status, "{body}: {resp}");
        if want_status == 201 {
            let token = resp["token"].as_str().unwrap();
            assert_eq!(token.len(), 43);
            assert!(resp["url"].as_str().unwrap().ends_with(&format!("/u/{token}")));
            assert!(resp["upload_url"].as_str().unwrap().ends_with(&format!("/v1/links/{token}/images")));
            assert_eq!(resp["uploads"], 0);
        } else {
            assert_eq!(error_code(status, &resp), want_code, "{body}");
            // The message says which rule was broken, in words.
            assert!(resp["error"]["message"].as_str().unwrap().len() > 10);
        }
    }
    // Without the admin token nothing is revealed.
    for auth in [None, Some("wrong")] {
        let mut req = server.client.post(server.url("/v1/links")).json(&json!({"expires_in": 60}));
        if let Some(a) = auth {
            req = req.bearer_auth(a);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 401);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthorized");
        let resp = server.client.get(server.url("/v1/links")).send().await.unwrap();
        assert_eq!(resp.status(), 401);
    }
    // The listing shows both links, newest first, without their tokens.
    let list: Value =
        server.client.get(server.url("/v1/links")).bearer_auth(ADMIN_TOKEN).send().await.unwrap().json().await.unwrap();
    let links = list["links"].as_array().unwrap();
    assert_eq!(links.len(), 2);
    assert_eq!(links[0]["label"], "party");
    assert!(links.iter().all(|l| l.get("token").is_none() && l["status"] == "active"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uses_are_counted_and_revoked_or_expired_links_stop_accepting() {
    let server = Server::start().await;
    let (_, link) = create_link(&server, json!({"expires_in": 3600, "max_uploads": 3})).await;
    let upload_url = link["upload_url"].as_str().unwrap();

    // Two files in one request take two uses.
    let (status, body) = upload_via(&server, upload_url, &["cameras/Canon_40D.jpg", "cameras/Nikon_D70.jpg"]).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["images"].as_array().unwrap().len(), 2);
    assert_eq!(body["images"][1]["camera_model"], "NIKON D70");
    // A bad file takes none.
    let resp = server
        .client
        .post(upload_url)
        .multipart(reqwest::multipart::Form::new().part("file", reqwest::multipart::Part::bytes(b"no".to_vec())))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 415);
    // Two more do not fit in the one use left; one does.
    let (status, body) =
        upload_via(&server, upload_url, &["cameras/Sony_HDR-HC3.jpg", "cameras/Pentax_K10D.jpg"]).await;
    assert_eq!((status, error_code(status, &body).as_str()), (409, "link_used_up"));
    let (status, _) = upload_via(&server, upload_url, &["cameras/Sony_HDR-HC3.jpg"]).await;
    assert_eq!(status, 201);
    let (status, body) = upload_via(&server, upload_url, &["cameras/Pentax_K10D.jpg"]).await;
    assert_eq!((status, error_code(status, &body).as_str()), (409, "link_used_up"));
    let token = link["token"].as_str().unwrap();
    let (_, shown) = server.get_json(&format!("/v1/links/{token}")).await;
    assert_eq!((shown["status"].as_str(), shown["remaining"].as_u64()), (Some("used_up"), Some(0)));

    // A revoked link answers 410.
    let (_, link) = create_link(&server, json!({"expires_in": 3600})).await;
    let resp = server
        .client
        .delete(server.url(&format!("/v1/links/{}", link["id"].as_str().unwrap())))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let (status, body) = upload_via(&server, link["upload_url"].as_str().unwrap(), &["no-exif.jpg"]).await;
    assert_eq!((status, error_code(status, &body).as_str()), (410, "link_revoked"));
    let resp = server
        .client
        .delete(server.url("/v1/links/AAAAAAAAAAAAAAAAAAAAAA"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);

    // A link that expires during the test stops accepting.
    let (_, link) = create_link(&server, json!({"expires_in": 2})).await;
    let url = link["upload_url"].as_str().unwrap();
    assert_eq!(upload_via(&server, url, &["gps/DSCN0010.jpg"]).await.0, 201);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (status, body) = upload_via(&server, url, &["gps/DSCN0012.jpg"]).await;
    assert_eq!((status, error_code(status, &body).as_str()), (410, "link_expired"));

    // An unknown token is 404.
    let fake = "A".repeat(43);
    let (status, body) = upload_via(&server, &server.url(&format!("/v1/links/{fake}/images")), &["no-exif.jpg"]).await;
    assert_eq!((status, error_code(status, &body).as_str()), (404, "not_found"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_uploads_against_ten_uses_accept_exactly_ten() {
    let server = Server::start().await;
    let (_, link) = create_link(&server, json!({"expires_in": 3600, "max_uploads": 10})).await;
    let url = link["upload_url"].as_str().unwrap().to_owned();
    // Given 50 clients uploading at once through a link with 10 uses,
    let uploads = (0..50).map(|i| {
        let name = ["cameras/Canon_40D.jpg", "cameras/Nikon_D70.jpg", "cameras/Sony_HDR-HC3.jpg"][i % 3];
        let (server, url) = (&server, url.clone());
        async move { upload_via(server, &url, &[name]).await.0 }
    });
    let statuses = futures::future::join_all(uploads).await;
    // then exactly 10 are accepted and the other 40 refused as used up,
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 10, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 409).count(), 40, "{statuses:?}");
    // and the link counts exactly 10.
    let token = link["token"].as_str().unwrap();
    let (_, shown) = server.get_json(&format!("/v1/links/{token}")).await;
    assert_eq!(shown["uploads"], 10);
}

async fn link_uses(server: &Server, token: &str) -> i64 {
    server.get_json(&format!("/v1/links/{token}")).await.1["uploads"].as_i64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_files_go_through_the_links_presigned_path_and_count_against_it() {
    let server = Server::start().await;
    let (_, link) = create_link(&server, json!({"expires_in": 3600, "max_uploads": 2})).await;
    let token = link["token"].as_str().unwrap();
    let form_url = server.url(&format!("/v1/links/{token}/uploads"));

    // Given a form from the link, a large photo posted with it is ingested and takes one use.
    let created: Value = server.client.post(&form_url).send().await.unwrap().json().await.unwrap();
    assert_eq!(link_uses(&server, token).await, 1);
    let photo = std::fs::read(photos_dir().join("large/olympus-e-p3-12mp.jpg")).unwrap();
    assert_eq!(server.post_form(&created, photo).await.status(), 204);
    let done = server.wait_until_settled(created["status_url"].as_str().unwrap()).await;
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["image"]["camera_model"], "E-P3");

    // A file that fails ingest gives its use back.
    let created: Value = server.client.post(&form_url).send().await.unwrap().json().await.unwrap();
    assert_eq!(link_uses(&server, token).await, 2);
    assert_eq!(server.post_form(&created, b"not an image".to_vec()).await.status(), 204);
    let failed = server.wait_until_settled(created["status_url"].as_str().unwrap()).await;
    assert_eq!(failed["status"], "failed");
    assert_eq!(link_uses(&server, token).await, 1);

    // The link's last use can be taken by a form, after which forms are refused like uploads.
    let resp = server.client.post(&form_url).send().await.unwrap();
    assert_eq!(resp.status(), 201);
    let resp = server.client.post(&form_url).send().await.unwrap();
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    assert_eq!((status, error_code(status, &body).as_str()), (409, "link_used_up"));
}
