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
