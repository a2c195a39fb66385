//! The read path as `template.yaml` deploys it: one distribution in front of the API and the
//! bucket, where an image URL reaches only the bucket, never a Lambda, through the CloudFront
//! Function in `cdn/images.js` (tested on its own by `node --test cdn/`), and the keys that
//! function asks for are the keys the Rust code stores images under.
//!
//! The distribution is read through `scripts/template-facts`; the function's routing of a URL
//! through `node cdn/route.mjs`.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use imghost::images::{ImageRecord, Layout, State, VariantsStatus};
use imghost::media::Format;
use imghost::media::variants::{Size, negotiate};
use serde_json::Value;
use support::template_facts as facts;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Where the image function sends each URL (see `cdn/route.mjs`).
fn routes(urls: &[String]) -> Vec<Value> {
    let out = std::process::Command::new("node")
        .arg("cdn/route.mjs")
        .args(urls)
        .current_dir(root())
        .output()
        .expect("node runs cdn/route.mjs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// CloudFront's path pattern match: `*` is any run of characters, `?` any one, case-sensitive.
fn matches(pattern: &str, path: &str) -> bool {
    match pattern.as_bytes().first() {
        None => path.is_empty(),
        Some(b'*') => (0..=path.len()).any(|i| path.is_char_boundary(i) && matches(&pattern[1..], &path[i..])),
        Some(b'?') => path.chars().next().is_some_and(|c| matches(&pattern[1..], &path[c.len_utf8()..])),
        Some(_) => {
            let c = pattern.chars().next().unwrap();
            path.starts_with(c) && matches(&pattern[c.len_utf8()..], &path[c.len_utf8()..])
        }
    }
}

/// The behaviour CloudFront picks for `path`: the first that matches, else the default.
fn behaviour_for<'a>(cdn: &'a Value, path: &str) -> &'a Value {
    let all = cdn["behaviours"].as_array().unwrap();
    all.iter().find(|b| b["pattern"] == "*" || matches(b["pattern"].as_str().unwrap(), path)).unwrap()
}

const ID: &str = "AbCd-f_2";

/// Image URLs of every shape the API hands out or a viewer may type.
fn image_urls() -> Vec<String> {
    let mut urls = vec![format!("/i/{ID}"), format!("/i/{ID}.jpg"), format!("/i/{ID}.png?size=original")];
    urls.extend(Size::ALL.iter().map(|s| format!("/i/{ID}?size={}", s.name())));
    urls.extend(Size::ALL.iter().map(|s| format!("/i/{ID}.jpg?size={}&x=1", s.name())));
    urls.extend(Size::ALL.iter().map(|s| format!("/i/{ID}.webp?size={}", s.name())));
    urls.extend(Size::ALL.iter().map(|s| format!("/i/{ID}.avif?size={}", s.name())));
    urls
}

/// An image stored now, as ingest stores it.
fn new_image() -> ImageRecord {
    ImageRecord {
        id: ID.to_owned(),
        hash: "0".repeat(64),
        format: Format::Jpeg,
        bytes: 1,
        width: 1,
        height: 1,
        meta: Default::default(),
        state: State::Active,
        refs: 1,
        created_at: String::new(),
        variants: VariantsStatus::Ready,
        variant_info: vec![],
        layout: Layout::Bare,
    }
}

#[test]
fn image_urls_reach_only_the_bucket_and_never_a_lambda() {
    // Given the distribution and the HTTP API routes of every function,
    let facts = facts();
    let cdn = &facts["cdn"];
    let origins = cdn["origins"].as_object().unwrap();
    let bucket_domain = origins["originals"]["domain"].as_str().unwrap();
    assert!(bucket_domain.contains(".s3."), "{bucket_domain}");
    let is_bucket = |id: &str| {
        let o = &origins[id];
        o["kind"] == "s3" && o["signed"] == true && o["domain"] == bucket_domain
    };
    for route in routes(&image_urls()) {
        let url = route["url"].as_str().unwrap();
        // when CloudFront picks the behaviour of an image URL,
        let path = url.split('?').next().unwrap();
        let behaviour = behaviour_for(cdn, path);
        // then it is the image behaviour, which targets the bucket, reads only, and runs no
        // Lambda@Edge,
        assert_eq!(behaviour["pattern"], "/i/*", "{url}");
        assert!(is_bucket(behaviour["target"].as_str().unwrap()), "{url}: {behaviour}");
        assert_eq!(behaviour["methods"], serde_json::json!(["GET", "HEAD"]), "{url}");
        assert_eq!(behaviour["lambdas"], 0, "{url}");
        // and every origin its function selects for the URL is the bucket, signed.
        for origin in route["origins"].as_array().into_iter().flatten() {
            assert!(is_bucket(origin.as_str().unwrap()), "{url} selects {origin}");
        }
    }
    // No behaviour anywhere runs a Lambda, and no function has an API route under /i/ (a
    // request that reached API Gateway there would find no integration).
    for b in cdn["behaviours"].as_array().unwrap() {
        assert_eq!(b["lambdas"], 0, "{b}");
    }
    for (name, function) in facts["functions"].as_object().unwrap() {
        for route in function["routes"].as_array().unwrap() {
            assert!(!route[1].as_str().unwrap().starts_with("/i/"), "{name} has the API route {route}");
        }
    }
}

#[test]
fn the_keys_the_edge_asks_for_are_the_keys_the_code_writes() {
    // Given the template's bucket origins and an image stored as ingest stores one now,
    let cdn = &facts()["cdn"];
    let origin_path =
        |id: &str| cdn["origins"][id]["path"].as_str().unwrap_or_else(|| panic!("no origin {id}")).to_owned();
    let image = new_image();
    let routed: BTreeMap<String, Value> =
        routes(&image_urls()).into_iter().map(|r| (r["url"].as_str().unwrap().to_owned(), r)).collect();
    let keys = |url: &str| -> Vec<String> {
        let r = &routed[url];
        let uri = r["uri"].as_str().unwrap_or_else(|| panic!("{url}: {r}"));
        let ids: Vec<String> = match r["origins"].as_array() {
            Some(ids) => ids.iter().map(|i| i.as_str().unwrap().to_owned()).collect(),
            None => vec![cdn["behaviours"][0]["target"].as_str().unwrap().to_owned()],
        };
        ids.iter().map(|id| format!("{}{uri}", origin_path(id)).trim_start_matches('/').to_owned()).collect()
    };
    // when the function routes its original's and its variants' URLs,
    // then the original's reach its original's key,
    for url in [format!("/i/{ID}"), format!("/i/{ID}.jpg"), format!("/i/{ID}.png?size=original")] {
        assert_eq!(keys(&url), vec![image.original_key()], "{url}");
    }
    // and each variant's reach that variant's key, then the original's.
    for size in Size::ALL {
        for url in [format!("/i/{ID}?size={}", size.name()), format!("/i/{ID}.jpg?size={}&x=1", size.name())] {
            assert_eq!(keys(&url), vec![image.variant_key(size, Format::Jpeg), image.original_key()], "{url}");
        }
        for format in [Format::Webp, Format::Avif] {
            let url = format!("/i/{ID}.{}?size={}", format.ext(), size.name());
            assert_eq!(keys(&url), vec![image.variant_key(size, format), image.original_key()], "{url}");
        }
    }
    // The Node tests turn origins into keys with cdn/origins.json: it is the template's table.
    let text = std::fs::read_to_string(root().join("cdn/origins.json")).unwrap();
    let mut table: BTreeMap<String, Value> = serde_json::from_str(&text).unwrap();
    table.remove("_comment");
    let template: BTreeMap<String, Value> = cdn["origins"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, o)| o["kind"] == "s3")
        .map(|(id, o)| (id.clone(), o["path"].clone()))
        .collect();
    assert_eq!(table, template);
}

#[test]
fn the_server_chooses_a_variants_format_as_the_edge_does() {
    // Given the table of extensions and Accept headers the edge's function is tested on,
    let text = std::fs::read_to_string(root().join("cdn/negotiation.json")).unwrap();
    let table: Value = serde_json::from_str(&text).unwrap();
    let cases = table["cases"].as_array().unwrap();
    assert!(cases.len() >= 20, "the table lost its cases");
    for case in cases {
        let ext = case[0].as_str().map(|e| Format::from_ext(e).unwrap_or_else(|| panic!("{case}")));
        // when the server negotiates,
        let got = negotiate(ext, case[1].as_str());
        // then it picks the same format.
        assert_eq!(got.first().map(|f| f.name()), case[2].as_str(), "{case}");
    }
}

#[test]
fn the_functions_in_the_template_are_the_tested_files() {
    // Given the CloudFront Functions of the template and the behaviours that run them,
    let cdn = &facts()["cdn"];
    for (resource, file) in [("ImagePathFunction", "cdn/images.js"), ("ApiHostFunction", "cdn/api.js")] {
        // then each function's code is its file, on the runtime the file is written for.
        let function = &cdn["functions"][resource];
        let file_text = std::fs::read_to_string(root().join(file)).unwrap();
        assert_eq!(function["code"].as_str().map(str::trim_end), Some(file_text.trim_end()), "{resource} vs {file}");
        assert_eq!(function["runtime"], "cloudfront-js-2.0", "{resource}");
    }
    let images = behaviour_for(cdn, "/i/x");
    assert_eq!(
        images["functions"],
        serde_json::json!({"viewer-request": "ImagePathFunction", "viewer-response": "ImagePathFunction"})
    );
    let api = behaviour_for(cdn, "/v1/images");
    assert_eq!(api["functions"], serde_json::json!({"viewer-request": "ApiHostFunction"}));
}

#[test]
fn images_are_cached_by_path_and_size_alone_for_at_most_an_hour() {
    // Given the image behaviour's cache policy,
    let cdn = &facts()["cdn"];
    let policy = &cdn["cache_policies"][behaviour_for(cdn, "/i/x")["cache_policy"].as_str().unwrap()];
    // then no header or cookie splits the cache, the only query parameter in the key is the
    // size the function normalises,
    assert_eq!(policy["headers"], "none");
    assert_eq!(policy["cookies"], "none");
    assert_eq!(policy["query_behavior"], "whitelist");
    assert_eq!(policy["query_strings"], serde_json::json!(["size"]));
    // and an edge keeps an object no longer than browsers keep a variant (cdn/images.js), so an
    // original standing in for a variant not made yet, or a deleted image, goes within that.
    let code = std::fs::read_to_string(root().join("cdn/images.js")).unwrap();
    let max_age: u64 = code
        .split("VARIANT_BROWSER_CACHE = 'public, max-age=")
        .nth(1)
        .unwrap()
        .split('\'')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(policy["max_ttl"].as_u64(), Some(max_age));
}

#[test]
fn everything_else_goes_to_the_api_uncached_with_the_viewers_host() {
    // Given the distribution and the functions' environments,
    let facts = facts();
    let cdn = &facts["cdn"];
    for path in ["/", "/v1/images", "/v/AbCdEf12", "/oembed", "/assets/app.js", "/i", "/img/x"] {
        // then a path outside /i/ goes to API Gateway's own domain,
        let b = behaviour_for(cdn, path);
        let origin = &cdn["origins"][b["target"].as_str().unwrap()];
        assert_eq!(origin["kind"], "custom", "{path}");
        assert!(origin["domain"].as_str().unwrap().contains(".execute-api."), "{path}: {origin}");
        // uncached (managed CachingDisabled), with every viewer header but Host (managed
        // AllViewerExceptHostHeader),
        assert_eq!(b["cache_policy"], "4135ea2d-6df8-44a3-9df3-4b5a84be39ad", "{path}");
        assert_eq!(b["origin_request_policy"], "b689b0a8-53d0-40ab-baf2-68738e2966ac", "{path}");
    }
    // and every function believes the X-Forwarded-Host the distribution sets, so its links name
    // the distribution.
    for (name, function) in facts["functions"].as_object().unwrap() {
        assert_eq!(function["environment"]["IMGHOST_TRUST_PROXY"], "1", "{name}");
    }
}

#[test]
fn the_path_match_is_cloudfronts() {
    let cases = [
        ("/i/*", "/i/AbCdEf12.jpg", true),
        ("/i/*", "/i/", true),
        ("/i/*", "/i", false),
        ("/i/*", "/img/x", false),
        ("/i/*", "/I/x", false),
        ("*.jpg", "/i/x.jpg", true),
        ("/i/????????.jpg", "/i/AbCdEf12.jpg", true),
        ("/i/????????.jpg", "/i/AbCdEf1.jpg", false),
    ];
    for (pattern, path, want) in cases {
        assert_eq!(matches(pattern, path), want, "{pattern} {path}");
    }
}
