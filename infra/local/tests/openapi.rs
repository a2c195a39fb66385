//! The OpenAPI document against the code: the committed `docs/openapi.json` is the generated
//! one, every route the server has is documented and every documented operation is routed, and
//! the web pages call nothing the document does not describe.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::Server;
use serde_json::Value;

const REGENERATE: &str = "cargo run -p imghost-local -- openapi > docs/openapi.json";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn document() -> Value {
    imghost::http::openapi::document()
}

/// Every (METHOD, path) the document describes.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            out.insert((method.to_uppercase(), path.clone()));
        }
    }
    out
}

#[test]
fn the_committed_document_is_the_generated_one() {
    let committed = std::fs::read_to_string(root().join("docs/openapi.json")).unwrap_or_default();
    let generated = imghost::http::openapi::json_text();
    if committed != generated {
        let line = committed.lines().zip(generated.lines()).position(|(a, b)| a != b).map_or(0, |n| n + 1);
        panic!(
            "docs/openapi.json is not the document the code generates (first difference near line {line}); \
             regenerate it with:\n    {REGENERATE}"
        );
    }
}

#[test]
fn the_document_is_openapi_3_1_with_the_shared_error_envelope() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    for name in ["adminToken", "accountKey", "deleteToken", "manageToken"] {
        assert!(schemes.contains_key(name), "no security scheme {name}");
    }
    // Every error answer (4xx, 5xx) is the one envelope, except the pages' HTML 404.
    for (method, path) in documented(&doc) {
        let operation = &doc["paths"][&path][method.to_lowercase()];
        for (status, response) in operation["responses"].as_object().unwrap() {
            if !status.starts_with('4') && !status.starts_with('5') {
                continue;
            }
            let content = response["content"].as_object().unwrap_or_else(|| panic!("{method} {path} {status}"));
            if content.contains_key("text/html") {
                continue;
            }
            assert_eq!(
                content["application/json"]["schema"]["$ref"], "#/components/schemas/ErrorEnvelope",
                "{method} {path} {status}"
            );
        }
    }
}

/// The (METHOD, path) pairs the source declares with `.route(...)`, in the library's routers
/// and the local runner.
fn declared_routes() -> BTreeSet<(String, String)> {
    let mut files = Vec::new();
    for dir in ["shared/src/http", "infra/local/src"] {
        for entry in std::fs::read_dir(root().join(dir)).unwrap() {
            files.push(entry.unwrap().path());
        }
    }
    let mut routes = BTreeSet::new();
    for file in files.iter().filter(|f| f.extension().is_some_and(|e| e == "rs")) {
        let source = std::fs::read_to_string(file).unwrap();
        for line in source.lines().filter(|l| l.contains(".route(\"")) {
            let rest = line.split(".route(\"").nth(1).unwrap();
            let path = rest.split('"').next().unwrap().to_owned();
            for method in ["get", "post", "put", "patch", "delete"] {
                let called = rest.match_indices(&format!("{method}(")).any(|(i, _)| {
                    i == 0 || !rest.as_bytes()[i - 1].is_ascii_alphanumeric() && rest.as_bytes()[i - 1] != b'_'
                });
                if called {
                    routes.insert((method.to_uppercase(), path.clone()));
                }
            }
        }
    }
    routes
}

/// A concrete path for a documented one: each parameter becomes `x`.
fn concrete(path: &str) -> String {
    path.split('/').map(|s| if s.starts_with('{') { "x" } else { s }).collect::<Vec<_>>().join("/")
}

#[tokio::test]
async fn every_route_is_documented_and_every_documented_operation_is_routed() {
    let doc = document();
    let documented = documented(&doc);
    let declared = declared_routes();
    assert!(declared.len() >= 30, "only {} routes found in the source: is the reading broken?", declared.len());
    let undocumented: Vec<_> = declared.difference(&documented).collect();
    assert!(undocumented.is_empty(), "routes missing from the OpenAPI document: {undocumented:?}");

    // The running server (the merged router behind the front door, as `imghost serve` runs it)
    // answers every documented operation with something other than its fallbacks, and every
    // other method on a documented path with its 405: so nothing is documented that is not
    // routed, and no path has a method the document leaves out.
    let server = Server::start().await;
    let mut problems = Vec::new();
    let paths: BTreeSet<&String> = documented.iter().map(|(_, p)| p).collect();
    for path in paths {
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            let url = server.url(&concrete(path));
            let response = server
                .client
                .request(method.parse().unwrap(), &url)
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            // Every answer, whatever the route and method, carries its request id, and a JSON
            // error body repeats the same id.
            let request_id = response.headers().get("x-request-id").map(|v| v.to_str().unwrap().to_owned());
            let body: Value = response.json().await.unwrap_or(Value::Null);
            match &request_id {
                None => problems.push(format!("{method} {path} answered {status} without x-request-id")),
                // (A page's 404 is HTML, not an error body.)
                Some(id) if status >= 400 && body.is_object() && body["error"]["request_id"] != id.as_str() => {
                    problems.push(format!("{method} {path}: the error body's request_id is not {id}: {body}"))
                }
                Some(_) => {}
            }
            let fallback = (status == 404 && body["error"]["message"] == "no such endpoint")
                || (status == 405 && body["error"]["code"] == "method_not_allowed");
            let is_documented = documented.contains(&(method.to_owned(), path.clone()));
            if is_documented && fallback {
                problems.push(format!("{method} {path} is documented but not routed ({status} {body})"));
            }
            if !is_documented && !fallback {
                problems.push(format!("{method} {path} is routed ({status}) but not documented"));
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

/// The string or template literal at the start of `text`, if there is one.
fn literal(text: &str) -> Option<String> {
    let text = text.trim_start();
    let quote = text.chars().next().filter(|c| matches!(c, '"' | '\'' | '`'))?;
    let rest = &text[1..];
    Some(rest[..rest.find(quote)?].to_owned())
}

/// A path as a page script writes it, with each `${...}` an unknown segment (`{}`) unless it
/// names a constant of the same file, whose literal it is replaced with; without the query.
fn resolve(path: &str, constants: &[(String, String)]) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').map_or(rest.len(), |e| start + e);
        let name = &rest[start + 2..end];
        match constants.iter().find(|(n, _)| n == name) {
            Some((_, value)) => out.push_str(value),
            None => out.push_str("{}"),
        }
        rest = &rest[(end + 1).min(rest.len())..];
    }
    out.push_str(rest);
    out.split('?').next().unwrap().to_owned()
}

/// Whether a script's path is the document's path template.
fn matches(script_path: &str, template: &str) -> bool {
    let (a, b): (Vec<_>, Vec<_>) = (script_path.split('/').collect(), template.split('/').collect());
    a.len() == b.len()
        && a.iter()
            .zip(&b)
            .all(|(s, t)| s == t || t.starts_with('{') && !s.is_empty() && (*s == "{}" || !s.contains('{')))
}

#[test]
fn the_web_pages_call_only_what_the_document_describes() {
    let doc = document();
    let documented = documented(&doc);
    // What the scripts call: `api("METHOD", path)` and the admin's `session.call("METHOD", path)`;
    // the uploader's `directUrl` and `largeUrl` (POSTed); paged listings' `path` (GETs); and any
    // other literal naming an API path or an image (`/v1/...`, `/i/...`), whatever its method.
    let mut calls: Vec<(Option<String>, String, String)> = Vec::new();
    let mut headers = BTreeSet::new();
    let assets = root().join("shared/web/assets");
    for entry in std::fs::read_dir(&assets).unwrap() {
        let file = entry.unwrap().path();
        if file.extension().is_none_or(|e| e != "js") {
            continue;
        }
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let source = std::fs::read_to_string(&file).unwrap();
        let constants: Vec<(String, String)> = source
            .match_indices("const ")
            .filter_map(|(i, _)| {
                let rest = &source[i + 6..];
                let (ident, value) = rest.split_once('=')?;
                let ident = ident.trim();
                let value = literal(value)?;
                (ident.chars().all(|c| c.is_alphanumeric() || c == '_') && value.starts_with('/'))
                    .then(|| (ident.to_owned(), resolve(&value, &[])))
            })
            .collect();
        for (i, _) in source.match_indices('"').chain(source.match_indices('`')) {
            if let Some(text) = literal(&source[i..]) {
                // A prefix the code tests paths against (`"/v1/"`, or `"/v1/..."` in a comment)
                // names no operation.
                let prefix = text.ends_with('/') || text.contains("...");
                if (text.starts_with("/v1/") || text.starts_with("/i/")) && !prefix {
                    calls.push((None, resolve(&text, &constants), name.clone()));
                }
            }
        }
        for call in ["api(", "call("] {
            for (i, _) in source.match_indices(call) {
                let args = &source[i + call.len()..];
                let Some(method) = literal(args) else { continue };
                let Some(after) = args.trim_start().get(method.len() + 2..) else { continue };
                let Some(path) = after.trim_start().strip_prefix(',').and_then(literal) else { continue };
                calls.push((Some(method.to_uppercase()), resolve(&path, &constants), name.clone()));
            }
        }
        for (key, method) in [("directUrl:", "POST"), ("largeUrl:", "POST"), ("path:", "GET")] {
            for (i, _) in source.match_indices(key) {
                if let Some(path) = literal(&source[i + key.len()..]) {
                    calls.push((Some(method.to_owned()), resolve(&path, &constants), name.clone()));
                }
            }
        }
        for (i, _) in source.match_indices("headers: {") {
            if let Some(header) = literal(&source[i + "headers: {".len()..]) {
                headers.insert(header.to_ascii_lowercase());
            }
        }
    }
    let with_method = calls.iter().filter(|(m, _, _)| m.is_some()).count();
    assert!(with_method >= 15, "only {with_method} API calls found in the scripts: is the reading broken?");
    let mut problems = Vec::new();
    for (method, path, file) in &calls {
        let known = documented
            .iter()
            .any(|(m, template)| method.as_ref().is_none_or(|want| want == m) && matches(path, template));
        if !known {
            problems.push(format!("{file}: {} {path} is not in the document", method.as_deref().unwrap_or("*")));
        }
    }
    // Every header a script sends is a documented parameter or security scheme.
    let mut known_headers = BTreeSet::from(["content-type".to_owned(), "authorization".to_owned()]);
    for scheme in doc["components"]["securitySchemes"].as_object().unwrap().values() {
        if scheme["in"] == "header" {
            known_headers.insert(scheme["name"].as_str().unwrap().to_ascii_lowercase());
        }
    }
    for item in doc["paths"].as_object().unwrap().values() {
        for operation in item.as_object().unwrap().values() {
            for p in operation["parameters"].as_array().into_iter().flatten() {
                if p["in"] == "header" {
                    known_headers.insert(p["name"].as_str().unwrap().to_ascii_lowercase());
                }
            }
        }
    }
    assert!(headers.len() >= 3, "only {headers:?} found as headers in the scripts: is the reading broken?");
    for header in headers.difference(&known_headers) {
        problems.push(format!("the scripts send the header {header}, which the document does not describe"));
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[tokio::test]
async fn the_server_serves_the_document() {
    let server = Server::start().await;
    let response = server.client.get(server.url("/v1/openapi.json")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let served: Value = response.json().await.unwrap();
    assert_eq!(served, document());
}

/// What Schemathesis found where the server and its contract disagreed, each fixed in the
/// server: integer fields that JSON Schema lets be written `12.0`, a `null` body the document
/// allows, an empty optional parameter, and length limits counted on what was sent.
#[tokio::test]
async fn requests_the_document_allows_are_accepted() {
    use common::ADMIN_TOKEN;
    use serde_json::json;
    let server = Server::start().await;
    let post = |path: &str, body: &str| {
        server
            .client
            .post(server.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
    };
    // `{"amount": 12.0}` is an integer to JSON Schema (and to JavaScript); 12.5 is not.
    let created: Value = post("/v1/accounts", r#"{"name": "fan"}"#).await.unwrap().json().await.unwrap();
    let id = created["account_id"].as_str().unwrap();
    let buy = |amount: &str, key: &str| {
        server
            .client
            .post(server.url(&format!("/v1/accounts/{id}/tokens")))
            .bearer_auth(ADMIN_TOKEN)
            .header("idempotency-key", key.to_owned())
            .header("content-type", "application/json")
            .body(format!(r#"{{"amount": {amount}}}"#))
            .send()
    };
    let resp = buy("12.0", "a").await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["purchased"], 12);
    let resp = buy("12.5", "b").await.unwrap();
    assert_eq!(resp.status(), 422);
    let resp = post("/v1/links", r#"{"expires_in": 3600.0, "max_uploads": 5.0}"#).await.unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(resp.json::<Value>().await.unwrap()["max_uploads"], 5);
    // POST /v1/uploads takes no body, an empty one or `null` alike.
    let resp = post("/v1/uploads", "null").await.unwrap();
    assert_eq!(resp.status(), 201);
    // An empty `format` is no format: JSON, not 501.
    let resp = server.client.get(server.url("/oembed?url=x&format=")).send().await.unwrap();
    assert_eq!(resp.status(), 404, "an unknown URL, not an unsupported format");
    // Names and labels are limited by what was sent, white space included, as the document says.
    let padded = format!("a{}", " ".repeat(100));
    let resp = post("/v1/accounts", &json!({ "name": padded }).to_string()).await.unwrap();
    assert_eq!(resp.status(), 422);
    let resp = post("/v1/links", &json!({"expires_in": 60, "label": format!("a{}", " ".repeat(200))}).to_string());
    assert_eq!(resp.await.unwrap().status(), 422);
}
