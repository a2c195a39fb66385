//! Link previews: what a chat app or social network sees when it reads a shared image page
//! without running its scripts (Open Graph and Twitter card tags), and the oEmbed endpoint.

mod common;

use std::time::Duration;

use common::{Server, photos_dir};
use serde_json::Value;

/// The `content` of the first `<meta {attr}="{name}" ...>` in `html`, unescaped.
fn meta(html: &str, attr: &str, name: &str) -> Option<String> {
    let start = format!("<meta {attr}=\"{name}\" content=\"");
    let at = html.find(&start)? + start.len();
    let value = &html[at..at + html[at..].find('"')?];
    Some(value.replace("&quot;", "\"").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&"))
}

/// The `href` of the page's oEmbed discovery link.
fn oembed_link(html: &str) -> Option<String> {
    let start = "<link rel=\"alternate\" type=\"application/json+oembed\" href=\"";
    let at = html.find(start)? + start.len();
    Some(html[at..at + html[at..].find('"')?].replace("&amp;", "&"))
}

async fn page(server: &Server, path: &str) -> (u16, String) {
    let resp = server.client.get(server.url(path)).send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_image_page_carries_its_preview_without_scripts() {
    // Given a photo uploaded and its variants made,
    let server = Server::start().await;
    let bytes = std::fs::read(photos_dir().join("large/canon-sx60-3mp.jpg")).unwrap();
    let (status, created) = server.upload_raw(bytes, "image/jpeg").await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let image = server.wait_for_variants(&id, Duration::from_secs(60)).await;
    let large = &image["variants"]["large"];

    // when its page is fetched as a link-preview robot does, reading the HTML only,
    let (status, html) = page(&server, &format!("/v/{id}")).await;

    // then the head names the large variant with its real size and type,
    assert_eq!(status, 200);
    let og = |name: &str| meta(&html, "property", name);
    assert_eq!(og("og:image"), large["url"].as_str().map(str::to_owned), "{html}");
    assert_eq!(og("og:image:width"), Some(large["width"].to_string()));
    assert_eq!(og("og:image:height"), Some(large["height"].to_string()));
    assert_eq!(og("og:image:type").as_deref(), Some("image/jpeg"));
    assert_eq!(og("og:url"), Some(server.url(&format!("/v/{id}"))));
    assert!(og("og:title").is_some_and(|t| t.contains("JPEG")), "{html}");
    assert_eq!(meta(&html, "name", "twitter:card").as_deref(), Some("summary_large_image"));
    assert_eq!(meta(&html, "name", "twitter:image"), og("og:image"));

    // and the picture it names is what it claims to be.
    let picture = server.client.get(og("og:image").unwrap()).send().await.unwrap();
    assert_eq!(picture.status(), 200);
    let facts = imghost::media::inspect(&picture.bytes().await.unwrap()).unwrap().facts;
    assert_eq!(
        (facts.width.to_string(), facts.height.to_string()),
        (og("og:image:width").unwrap(), og("og:image:height").unwrap())
    );

    // When the page's oEmbed link is followed,
    let href = oembed_link(&html).expect("an oEmbed discovery link");
    let oembed: Value = server.client.get(&href).send().await.unwrap().json().await.unwrap();
    // then it describes the same photo, with the small variant as its thumbnail,
    assert_eq!((oembed["type"].as_str(), oembed["version"].as_str()), (Some("photo"), Some("1.0")));
    assert_eq!(
        (&oembed["url"], &oembed["width"], &oembed["height"]),
        (&large["url"], &large["width"], &large["height"])
    );
    assert_eq!(oembed["thumbnail_url"], image["variants"]["small"]["url"]);
    // and a consumer's size limit picks the largest picture that fits.
    let small = &image["variants"]["small"];
    let medium = &image["variants"]["medium"];
    let cases = [
        (format!("maxwidth={}", small["width"]), small),
        (format!("maxwidth={}", medium["width"]), medium),
        (format!("maxheight={}", medium["height"].as_u64().unwrap() + 1), medium),
        ("maxwidth=1".to_owned(), small),
    ];
    for (limit, want) in cases {
        let fitted: Value = server.client.get(format!("{href}&{limit}")).send().await.unwrap().json().await.unwrap();
        assert_eq!(fitted["url"], want["url"], "{limit}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_and_oembed_of_images_that_are_not_there_answer_404_without_a_preview() {
    // Given an image that was deleted, and ids that never were,
    let server = Server::start().await;
    let bytes = std::fs::read(photos_dir().join("cameras/Nikon_D70.jpg")).unwrap();
    let (_, created) = server.upload_raw(bytes, "image/jpeg").await;
    let id = created["id"].as_str().unwrap().to_owned();
    let token = created["delete_token"].as_str().unwrap().to_owned();
    let deleted = server.client.delete(server.url(&format!("/v1/images/{id}"))).header("x-delete-token", token);
    assert_eq!(deleted.send().await.unwrap().status(), 204);

    // when their pages are fetched,
    for path in [format!("/v/{id}"), "/v/AbCdEf12".to_owned(), "/v/not-an-id".to_owned()] {
        let (status, html) = page(&server, &path).await;
        // then each is a 404 page (the page, whose script says what is wrong) with no preview.
        assert_eq!(status, 404, "{path}");
        assert!(html.starts_with("<!doctype html>") && html.contains("/assets/view.js"), "{path}: {html}");
        assert!(!html.contains("og:") && !html.contains("twitter:") && !html.contains("oembed"), "{path}: {html}");
    }

    // And oEmbed answers each request it cannot serve with the JSON error of its kind.
    let ours = |path: &str| urlencode(&server.url(path));
    let cases = [
        (format!("url={}", ours(&format!("/v/{id}"))), 404),
        (format!("url={}", ours("/i/AbCdEf12.jpg")), 404),
        (format!("url={}", urlencode("https://elsewhere.example/v/AbCdEf12")), 404),
        (format!("url={}", ours("/admin")), 404),
        (format!("url={}&format=xml", ours("/v/AbCdEf12")), 501),
        (format!("url={}&maxwidth=0", ours("/v/AbCdEf12")), 400),
        ("format=json".to_owned(), 400),
    ];
    for (query, want) in cases {
        let resp = server.client.get(server.url(&format!("/oembed?{query}"))).send().await.unwrap();
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        assert_eq!(status, want, "{query}: {body}");
        assert!(body["error"]["code"].is_string(), "{query}: {body}");
    }
}

fn urlencode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}
