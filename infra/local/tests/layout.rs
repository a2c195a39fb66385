//! Where an image's objects live. New images use keys the CDN can name from a URL alone
//! (`originals/<id>`, `variants/<size>/<id>`); images stored before that keep their keys with
//! the format in them, and are served and deleted as before.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{Server, photos_dir};
use imghost::store::{ListObjects, Objects, Table, Update};

const SIZES: [&str; 3] = ["small", "medium", "large"];

async fn upload_photo(server: &Server) -> String {
    upload(server, "orientation/landscape_6.jpg").await
}

async fn upload(server: &Server, photo: &str) -> String {
    let bytes = std::fs::read(photos_dir().join(photo)).unwrap();
    let (status, body) = server.upload_raw(bytes, "image/jpeg").await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    server.wait_for_variants(&id, Duration::from_secs(60)).await;
    id
}

async fn body_of(server: &Server, path: &str) -> (u16, Option<String>, Bytes) {
    let r = reqwest::get(server.url(path)).await.unwrap();
    let status = r.status().as_u16();
    let content_type = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
    (status, content_type, r.bytes().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_images_are_stored_under_keys_named_by_id_and_size_alone() {
    // Given a server,
    let server = Server::start().await;
    // when a photo is uploaded and its variants are made,
    let id = upload_photo(&server).await;
    // then its original and each variant are stored under keys without a format, each with
    // its content type, and they are the bytes `/i/` serves.
    let local = imghost::state::LocalStorage::open(server.data.path()).unwrap();
    let original = local.objects.get(&format!("originals/{id}")).await.unwrap().expect("original stored");
    assert_eq!(original.content_type, "image/jpeg");
    assert_eq!(body_of(&server, &format!("/i/{id}.jpg")).await.2, original.bytes);
    for size in SIZES {
        let variant = local.objects.get(&format!("variants/{size}/{id}")).await.unwrap().expect("variant stored");
        assert_eq!(variant.content_type, "image/jpeg", "{size}");
        assert_eq!(body_of(&server, &format!("/i/{id}?size={size}")).await.2, variant.bytes, "{size}");
    }
    let keys = local.objects.list(None, 1000).await.unwrap();
    assert!(!keys.iter().any(|k| k.contains('.')), "no stored key carries an extension: {keys:?}");
}

/// A stopped server's data directory holding one image stored as images were before the bare
/// layout (objects named with the format, an item without the layout attribute), with its id
/// and its (bare, named) keys, original first.
async fn named_image(server: Server) -> (tempfile::TempDir, String, Vec<(String, String)>) {
    let id = upload_photo(&server).await;
    let data = server.stop_when_idle().await;
    let local = imghost::state::LocalStorage::open(data.path()).unwrap();
    let mut moves = vec![(format!("originals/{id}"), format!("originals/{id}.jpg"))];
    moves.extend(SIZES.map(|s| (format!("variants/{s}/{id}"), format!("variants/{id}/{s}.jpg"))));
    for (bare, named) in &moves {
        let object = local.objects.get(bare).await.unwrap().unwrap();
        local.objects.put(named, object.bytes, &object.content_type).await.unwrap();
        local.objects.delete(bare).await.unwrap();
    }
    // Images of that time had JPEG variants only.
    for size in SIZES {
        for format in ["webp", "avif"] {
            local.objects.delete(&format!("variants/{size}-{format}/{id}")).await.unwrap();
        }
    }
    let app = local.app().build();
    let record = imghost::images::get(&app, &id).await.unwrap().unwrap();
    let jpeg_only: Vec<_> = record.variant_info.iter().filter(|v| v.format == imghost::media::Format::Jpeg).collect();
    let update = Update::new().remove("layout").set("variant_info", serde_json::to_string(&jpeg_only).unwrap());
    local.table.update(&format!("IMG#{id}"), "META", update, None).await.unwrap();
    (data, id, moves)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_stored_under_the_named_layout_are_still_served_and_deleted() {
    // Given an image stored under the named layout,
    let (data, id, moves) = named_image(Server::start().await).await;
    let server = Server::start_in(data, imghost::fetch::Fetcher::public(), Default::default()).await;

    // when it is read through `/i/`,
    let local = imghost::state::LocalStorage::open(server.data.path()).unwrap();
    for (path, key) in [(format!("/i/{id}.jpg"), &moves[0].1)]
        .into_iter()
        .chain(SIZES.iter().zip(&moves[1..]).map(|(s, (_, named))| (format!("/i/{id}?size={s}"), named)))
    {
        // then each answer is the object under its named key,
        let (status, content_type, body) = body_of(&server, &path).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(content_type.as_deref(), Some("image/jpeg"), "{path}");
        assert_eq!(body, local.objects.get(key).await.unwrap().unwrap().bytes, "{path}");
    }

    // and when it is deleted, every one of its objects goes.
    let r = reqwest::Client::new()
        .delete(server.url(&format!("/v1/images/{id}")))
        .bearer_auth(common::ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let left = local.objects.list(None, 1000).await.unwrap();
    assert!(left.is_empty(), "objects left after the delete: {left:?}");
    assert_eq!(body_of(&server, &format!("/i/{id}.jpg")).await.0, 404);
}

/// Runs `imghost relayout <data>` and returns what it printed.
fn relayout(data: &std::path::Path) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_imghost")).arg("relayout").arg(data).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relayout_moves_named_images_to_the_keys_the_cdn_serves_once() {
    // Given a data directory with one image under the named layout and one under the bare,
    let server = Server::start().await;
    upload(&server, "orientation/landscape_1.jpg").await;
    let (data, id, moves) = named_image(server).await;
    let local = imghost::state::LocalStorage::open(data.path()).unwrap();
    let mut before = Vec::new();
    for (_, named) in &moves {
        before.push(local.objects.get(named).await.unwrap().unwrap());
    }
    drop(local);

    // when `imghost relayout` runs on it,
    let printed = relayout(data.path());

    // then it moved the one and left the other,
    // and made the WebP variants it lacked (and queued its AVIF pass),
    assert_eq!(printed.trim(), "moved 1, already in place 1, to run again for 0; variants remade 1");
    // the named image's objects are under bare keys with the same bytes and types, and none is
    // left under a named key,
    let local = imghost::state::LocalStorage::open(data.path()).unwrap();
    for ((bare, _), old) in moves.iter().zip(&before) {
        let now = local.objects.get(bare).await.unwrap().unwrap_or_else(|| panic!("{bare} missing"));
        assert_eq!(
            (now.bytes.clone(), now.content_type.clone()),
            (old.bytes.clone(), old.content_type.clone()),
            "{bare}"
        );
    }
    let keys = local.objects.list(None, 1000).await.unwrap();
    assert!(!keys.iter().any(|k| k.contains('.')), "a named key is left: {keys:?}");
    let app = local.app().build();
    assert_eq!(imghost::images::get(&app, &id).await.unwrap().unwrap().layout, imghost::images::Layout::Bare);
    drop((app, local));
    // and it is served from there.
    let server = Server::start_in(data, imghost::fetch::Fetcher::public(), Default::default()).await;
    let (status, _, body) = body_of(&server, &format!("/i/{id}.jpg")).await;
    assert_eq!((status, body), (200, before[0].bytes.clone()));
    let (status, _, body) = body_of(&server, &format!("/i/{id}?size=small")).await;
    assert_eq!((status, body), (200, before[1].bytes.clone()));
    for size in SIZES {
        let (status, content_type, _) = body_of(&server, &format!("/i/{id}.webp?size={size}")).await;
        assert_eq!((status, content_type.as_deref()), (200, Some("image/webp")), "{size}");
    }
    // The AVIF pass it queued in the data directory is made once the server runs.
    server.wait_for_avif(&id, Duration::from_secs(120)).await;
    let data = server.stop_when_idle().await;

    // When it runs again, it moves and remakes nothing.
    assert_eq!(relayout(data.path()).trim(), "moved 0, already in place 2, to run again for 0; variants remade 0");
}
