//! The `web` function: the pages people use, and `/v1/sharex.sxcu`.
//!
//! Pages are HTML fragments in `shared/web/pages/` wrapped in one layout here, with plain
//! ES-module scripts and one stylesheet from `shared/web/assets/`. Everything is compiled into
//! the binary, so a page never loads anything from another origin and a deployment carries
//! its front end with it. Local mode can serve the files from disk instead
//! ([`Assets::Dir`]), so the front end can be edited without rebuilding.

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tracing::instrument;

use super::{ErrorEnvelope, Params, base_url};
use crate::error::{Error, Refusal, Result};
use crate::images::{self, Preview};
use crate::secret;
use crate::state::{App, UploadTarget};

/// Where the front-end files come from.
#[derive(Debug, Clone)]
pub enum Assets {
    /// The files compiled into the binary (every deployment).
    Embedded,
    /// A folder with the layout of `shared/web/` (front-end development in local mode).
    Dir(PathBuf),
}

/// One page: its place in the navigation, its title, its fragment and its script.
struct Page {
    /// The fragment's file name in `pages/` and the script's in `assets/` (without extension).
    name: &'static str,
    title: &'static str,
    /// The navigation entry this page highlights, if any.
    nav: Option<&'static str>,
}

const PAGES: [Page; 7] = [
    Page { name: "upload", title: "Upload images", nav: Some("/") },
    Page { name: "view", title: "Image", nav: None },
    Page { name: "invite", title: "Upload through an invitation", nav: None },
    Page { name: "imports", title: "Import by URL", nav: Some("/imports") },
    Page { name: "keepalive", title: "Imgur keep-alive", nav: Some("/keepalive") },
    Page { name: "memes", title: "Memes", nav: Some("/memes") },
    Page { name: "admin", title: "Administration", nav: Some("/admin") },
];

const NAV: [(&str, &str); 5] =
    [("/", "Upload"), ("/imports", "Import"), ("/keepalive", "Keep-alive"), ("/memes", "Memes"), ("/admin", "Admin")];

/// The compiled-in files, by their path under `shared/web/`.
macro_rules! embed {
    ($($path:literal),* $(,)?) => {
        &[$(($path, include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/web/", $path)) as &[u8])),*]
    };
}

const EMBEDDED: &[(&str, &[u8])] = embed![
    "pages/upload.html",
    "pages/view.html",
    "pages/invite.html",
    "pages/imports.html",
    "pages/keepalive.html",
    "pages/memes.html",
    "pages/admin.html",
    "assets/app.css",
    "assets/app.js",
    "assets/paged.js",
    "assets/uploader.js",
    "assets/upload.js",
    "assets/view.js",
    "assets/invite.js",
    "assets/imports.js",
    "assets/keepalive.js",
    "assets/memes.js",
    "assets/admin.js",
    "assets/admin-stats.js",
    "assets/admin-links.js",
    "assets/admin-images.js",
    "assets/admin-accounts.js",
    "assets/favicon.svg",
];

impl Assets {
    /// The file at `path` under `shared/web/`, or `None`.
    fn get(&self, path: &str) -> Option<Cow<'static, [u8]>> {
        match self {
            Assets::Embedded => EMBEDDED.iter().find(|(p, _)| *p == path).map(|(_, bytes)| Cow::Borrowed(*bytes)),
            Assets::Dir(dir) => {
                // Only names this module knows are served, so no path reaches outside the folder.
                EMBEDDED.iter().find(|(p, _)| *p == path)?;
                std::fs::read(dir.join(path)).ok().map(Cow::Owned)
            }
        }
    }
}

#[derive(Clone)]
struct WebState {
    app: App,
    assets: Arc<Assets>,
}

/// The function's router, as its Lambda runs it. It also serves the API's OpenAPI document
/// (`GET /v1/openapi.json`, [`super::openapi`]): the document is as public as the pages and,
/// like them, compiled in, so it needs nothing a function of its own would add.
pub fn router(app: App) -> Router {
    super::finish(routes(app.clone(), Assets::Embedded).merge(super::openapi::routes(app)))
}

/// The routes alone, for merging with other functions' routes (the local runner).
pub fn routes(app: App, assets: Assets) -> Router {
    let state = WebState { app, assets: Arc::new(assets) };
    Router::new()
        .route("/", get(upload_page))
        .route("/v/{id}", get(image_page))
        .route("/oembed", get(oembed))
        .route("/u/{token}", get(invite_page))
        .route("/imports", get(imports_page))
        .route("/keepalive", get(keepalive_page))
        .route("/memes", get(memes_page))
        .route("/admin", get(admin_page))
        .route("/assets/{file}", get(asset))
        .route("/v1/sharex.sxcu", get(sharex))
        .with_state(state)
}

/// Upload images: drag and drop, file picker or paste.
#[utoipa::path(
    get, path = "/", tag = "pages", operation_id = "uploadPage",
    responses((status = 200, description = "The page.", content_type = "text/html", body = String)),
)]
async fn upload_page(state: State<WebState>, headers: HeaderMap) -> Result<Response> {
    render(state, headers, 0, Head::default()).await
}

/// An invitation: time and uploads left, then the uploader.
#[utoipa::path(
    get, path = "/u/{token}", tag = "pages", operation_id = "invitePage",
    params(("token" = String, Path, description = "The link's token; the page reads it with `GET /v1/links/{key}`.")),
    responses((status = 200, description = "The page.", content_type = "text/html", body = String)),
)]
async fn invite_page(state: State<WebState>, headers: HeaderMap) -> Result<Response> {
    render(state, headers, 2, Head::default()).await
}

/// Import images by URL.
#[utoipa::path(
    get, path = "/imports", tag = "pages", operation_id = "importsPage",
    responses((status = 200, description = "The page.", content_type = "text/html", body = String)),
)]
async fn imports_page(state: State<WebState>, headers: HeaderMap) -> Result<Response> {
    render(state, headers, 3, Head::default()).await
}

/// Imgur keep-alive.
#[utoipa::path(
    get, path = "/keepalive", tag = "pages", operation_id = "keepalivePage",
    responses((status = 200, description = "The page.", content_type = "text/html", body = String)),
)]
async fn keepalive_page(state: State<WebState>, headers: HeaderMap) -> Result<Response> {
    render(state, headers, 4, Head::default()).await
}

/// Memes, with an API key.
#[utoipa::path(
    get, path = "/memes", tag = "pages", operation_id = "memesPage",
    responses((status = 200, description = "The page.", content_type = "text/html", body = String)),
)]
async fn memes_page(state: State<WebState>, headers: HeaderMap) -> Result<Response> {
    render(state, headers, 5, Head::default()).await
}

/// Administration, with the admin token.
#[utoipa::path(
    get, path = "/admin", tag = "pages", operation_id = "adminPage",
    responses((status = 200, description = "The page.", content_type = "text/html", body = String)),
)]
async fn admin_page(state: State<WebState>, headers: HeaderMap) -> Result<Response> {
    render(state, headers, 6, Head::default()).await
}

/// Escapes text for HTML element content and attribute values.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// What a page adds to the layout's head, and its status.
#[derive(Default)]
struct Head {
    /// Extra elements for `<head>`, already escaped.
    tags: String,
    not_found: bool,
}

/// The image page. It is filled in by its script, but its head carries the link preview (Open
/// Graph and Twitter card tags, and the oEmbed link) rendered here, for the chat apps and
/// social networks that read a shared link's HTML without running it. An id that is not an
/// image answers the same page with 404 and no tags.
#[utoipa::path(
    get, path = "/v/{id}", tag = "pages", operation_id = "imagePage",
    params(("id" = String, Path, description = "The image id.")),
    responses(
        (status = 200, description = "The image page, with its link preview tags.", content_type = "text/html", body = String),
        (status = 404, description = "The same page without tags: no such image.", content_type = "text/html", body = String),
        (status = 503, description = "`unavailable`: storage failed; retry.", body = ErrorEnvelope),
    ),
)]
#[instrument(skip(state, headers))]
async fn image_page(State(state): State<WebState>, headers: HeaderMap, Path(id): Path<String>) -> Result<Response> {
    let head = match images::get_active(&state.app, &id).await {
        Ok(record) => {
            Head { tags: preview_tags(&Preview::new(&record, &base_url(&state.app, &headers))), ..Head::default() }
        }
        Err(e) if e.status() == StatusCode::NOT_FOUND => Head { not_found: true, ..Head::default() },
        Err(e) => return Err(e),
    };
    render(State(state), headers, 1, head).await
}

fn preview_tags(p: &Preview) -> String {
    let base = p.page_url.rsplit_once("/v/").map_or("", |(b, _)| b);
    let oembed = format!("{base}/oembed?format=json&url={}", urlencoding(&p.page_url));
    let meta =
        |attr: &str, name: &str, content: &str| format!("<meta {attr}=\"{name}\" content=\"{}\">\n", escape(content));
    let mut tags = String::new();
    for (name, content) in [
        ("og:type", "website"),
        ("og:site_name", "imghost"),
        ("og:title", &p.title),
        ("og:url", &p.page_url),
        ("og:image", &p.image.url),
        ("og:image:width", &p.image.width.to_string()),
        ("og:image:height", &p.image.height.to_string()),
        ("og:image:type", p.image.mime),
    ] {
        tags.push_str(&meta("property", name, content));
    }
    tags.push_str(&meta("name", "twitter:card", "summary_large_image"));
    tags.push_str(&meta("name", "twitter:title", &p.title));
    tags.push_str(&meta("name", "twitter:image", &p.image.url));
    tags.push_str(&format!(
        "<link rel=\"alternate\" type=\"application/json+oembed\" href=\"{}\" title=\"{}\">\n",
        escape(&oembed),
        escape(&p.title)
    ));
    tags
}

/// Percent-encodes a URL for use as a query parameter's value.
fn urlencoding(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// `GET /oembed?url=&format=json&maxwidth=&maxheight=`: the oEmbed answer for an image page or
/// image link of this site. A URL that is not one of ours, or an image that does not exist,
/// answers 404, as the oEmbed specification asks; a format other than JSON answers 501.
#[utoipa::path(
    get, path = "/oembed", tag = "pages", operation_id = "oembed",
    params(
        ("url" = String, Query, description = "An image page (`/v/{id}`) or image (`/i/{id}[.ext]`) URL of this site.",
            example = "https://img.example/v/Ab3dE-9x"),
        ("format" = Option<String>, Query, description = "Only `json` is offered."),
        ("maxwidth" = Option<u32>, Query, minimum = 1, description = "The largest width the consumer takes."),
        ("maxheight" = Option<u32>, Query, minimum = 1, description = "The largest height the consumer takes."),
    ),
    responses(
        (status = 200, description = "The oEmbed `photo` answer.", body = images::OEmbed),
        (status = 400, description = "`missing_url`, `bad_parameter`, `invalid_utf8` or `duplicate_parameter`.", body = ErrorEnvelope),
        (status = 404, description = "`not_found`: not an image of this site.", body = ErrorEnvelope),
        (status = 501, description = "`unsupported_format`: a format other than `json`.", body = ErrorEnvelope),
        (status = 503, description = "`unavailable`: storage failed; retry.", body = ErrorEnvelope),
    ),
)]
#[instrument(skip_all)]
async fn oembed(State(state): State<WebState>, headers: HeaderMap, Params(params): Params) -> Result<Response> {
    // An empty `format` is no format, as with every other optional parameter here.
    if params.get("format").is_some_and(|f| !f.is_empty() && f != "json") {
        return Err(Error::client(Refusal::NotImplemented, "unsupported_format", "only the json format is offered"));
    }
    let dimension = |name: &str| -> Result<Option<u32>> {
        match params.get(name) {
            None => Ok(None),
            Some(v) => v.parse::<u32>().ok().filter(|n| *n > 0).map(Some).ok_or_else(|| {
                Error::bad_request("bad_parameter", format!("{name} must be a positive whole number of pixels"))
            }),
        }
    };
    let (max_width, max_height) = (dimension("maxwidth")?, dimension("maxheight")?);
    let url = params.get("url").ok_or_else(|| Error::bad_request("missing_url", "give the url of an image page"))?;
    let base = base_url(&state.app, &headers);
    let id = image_id_of(url, &base).ok_or_else(|| Error::not_found("image"))?;
    let record = images::get_active(&state.app, &id).await?;
    let body = images::OEmbed::new(&record, &base, max_width, max_height);
    Ok(([(header::CACHE_CONTROL, "no-cache")], axum::Json(body)).into_response())
}

/// The image id in a URL of this site's image page (`/v/{id}`) or image (`/i/{id}[.ext]`).
fn image_id_of(url: &str, base: &str) -> Option<String> {
    let (url, base) = (url::Url::parse(url).ok()?, url::Url::parse(base).ok()?);
    if url.origin() != base.origin() {
        return None;
    }
    let path = url.path();
    let rest = path.strip_prefix("/v/").or_else(|| path.strip_prefix("/i/"))?;
    let id = rest.split_once('.').map_or(rest, |(id, _)| id);
    secret::is_image_id(id).then(|| id.to_owned())
}

#[instrument(skip(state, headers, head), fields(page = PAGES[index].name))]
async fn render(State(state): State<WebState>, headers: HeaderMap, index: usize, head: Head) -> Result<Response> {
    let page = &PAGES[index];
    let body = state
        .assets
        .get(&format!("pages/{}.html", page.name))
        .ok_or_else(|| Error::internal(format!("page {} is missing", page.name)))?;
    let body = String::from_utf8_lossy(&body);
    let nav: String = NAV
        .iter()
        .map(|(href, label)| {
            let current = if page.nav == Some(*href) { r#" aria-current="page""# } else { "" };
            format!(r#"<a href="{href}"{current}>{label}</a>"#)
        })
        .collect();
    let html = format!(
        r##"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{title} · imghost</title>
<link rel="icon" href="/assets/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/assets/app.css">
<script type="module" src="/assets/{name}.js"></script>
{tags}</head>
<body data-page="{name}">
<a class="skip" href="#main">Skip to content</a>
<header class="site"><a class="brand" href="/">imghost</a><nav aria-label="Main">{nav}</nav></header>
<main id="main" tabindex="-1">
{body}
</main>
</body>
</html>
"##,
        title = escape(page.title),
        name = page.name,
        tags = head.tags,
    );
    let status = if head.not_found { StatusCode::NOT_FOUND } else { StatusCode::OK };
    let mut response =
        (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")], html)
            .into_response();
    secure(response.headers_mut(), &content_security_policy(&state.app, &headers));
    Ok(response)
}

/// Headers every page carries. `no-referrer` matters most: `/u/{token}` has a secret in its
/// path, and no other site may learn it from a Referer header.
fn secure(headers: &mut HeaderMap, csp: &str) {
    if let Ok(v) = HeaderValue::from_str(csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

/// The page's content security policy: scripts, styles, fonts and images only from this origin
/// (in AWS the CDN serves the pages and the images under one domain); uploads also to the
/// bucket presigned forms post to.
fn content_security_policy(app: &App, headers: &HeaderMap) -> String {
    let origin_of = |url: &str| -> Option<String> {
        let parsed = url::Url::parse(url).ok()?;
        Some(parsed.origin().ascii_serialization()).filter(|o| o != "null")
    };
    let own = origin_of(&base_url(app, headers));
    let mut img = vec!["'self'".to_owned(), "data:".to_owned(), "blob:".to_owned()];
    let mut connect = vec!["'self'".to_owned()];
    // The configured public URL may differ from the host the page was asked for.
    img.extend(own.clone());
    connect.extend(own);
    if let UploadTarget::S3 { bucket, region, endpoint, .. } = &app.uploads {
        match endpoint {
            Some(e) => connect.extend(origin_of(e)),
            None => connect.push(format!("https://{bucket}.s3.{region}.amazonaws.com")),
        }
    }
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src {}; connect-src {}; font-src 'self'; \
         form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
        img.join(" "),
        connect.join(" ")
    )
}

/// The front end's scripts, stylesheet and favicon.
#[utoipa::path(
    get, path = "/assets/{file}", tag = "pages", operation_id = "asset",
    params(
        ("file" = String, Path, example = "app.js"),
        ("If-None-Match" = Option<String>, Header, description = "ETags the client holds."),
    ),
    responses(
        (status = 200, description = "The file.", headers(("ETag" = String)),
            content((String = "text/javascript"), (String = "text/css"), (String = "image/svg+xml"))),
        (status = 304, description = "Not modified: `If-None-Match` names the current ETag.", headers(("ETag" = String))),
        (status = 404, description = "`not_found`: no such file.", body = ErrorEnvelope),
    ),
)]
#[instrument(skip(state, headers))]
async fn asset(State(state): State<WebState>, headers: HeaderMap, Path(file): Path<String>) -> Result<Response> {
    let bytes = state.assets.get(&format!("assets/{file}")).ok_or_else(|| Error::not_found("file"))?;
    let content_type = match file.rsplit_once('.').map(|(_, ext)| ext) {
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        _ => "application/octet-stream",
    };
    // Revalidated on every use, so a deployment's new front end is picked up at once; the ETag
    // keeps revalidation to a 304.
    let etag = format!("\"{}\"", &secret::sha256_hex(&bytes)[..16]);
    let common = [
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (header::ETAG, HeaderValue::from_str(&etag).map_err(Error::internal)?),
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
    ];
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim().trim_start_matches("W/") == etag));
    if matches {
        return Ok((StatusCode::NOT_MODIFIED, common).into_response());
    }
    Ok((common, [(header::CONTENT_TYPE, content_type)], bytes.into_owned()).into_response())
}

/// A ShareX custom uploader for this deployment: files go to `POST /v1/images`, the link comes
/// from the answer, and the deletion URL opens the image page with the delete token in the
/// fragment (browsers never send a fragment to the server, so the token is not logged).
#[utoipa::path(
    get, path = "/v1/sharex.sxcu", tag = "pages", operation_id = "sharex",
    responses((status = 200, description = "The ShareX custom uploader, as a download.", body = ShareX,
        headers(("Content-Disposition" = String)))),
)]
#[instrument(skip_all)]
async fn sharex(State(state): State<WebState>, headers: HeaderMap) -> Response {
    let base = base_url(&state.app, &headers);
    let host = url::Url::parse(&base).ok().and_then(|u| u.host_str().map(str::to_owned)).unwrap_or_default();
    let body = ShareX {
        version: "13.7.0",
        name: format!("imghost ({host})"),
        destination_type: "ImageUploader",
        request_method: "POST",
        request_url: format!("{base}/v1/images"),
        body: "MultipartFormData",
        file_form_name: "file",
        url: "{json:link}",
        thumbnail_url: "{json:variants.small.url}",
        deletion_url: format!("{base}/v/{{json:id}}#delete={{json:delete_token}}"),
        error_message: "{json:error.message}",
    };
    let text = serde_json::to_string_pretty(&body).unwrap_or_default();
    let disposition = format!("attachment; filename=\"imghost-{}.sxcu\"", host.replace('"', ""));
    (
        [
            (header::CONTENT_TYPE, "application/json; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CACHE_CONTROL, "no-cache".to_owned()),
        ],
        text,
    )
        .into_response()
}

/// A ShareX custom uploader (`.sxcu`): the fields ShareX reads, in its own names, in
/// alphabetical order as the file has always listed them.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct ShareX {
    body: &'static str,
    #[serde(rename = "DeletionURL")]
    deletion_url: String,
    destination_type: &'static str,
    error_message: &'static str,
    file_form_name: &'static str,
    name: String,
    request_method: &'static str,
    #[serde(rename = "RequestURL")]
    request_url: String,
    #[serde(rename = "ThumbnailURL")]
    thumbnail_url: &'static str,
    #[serde(rename = "URL")]
    url: &'static str,
    #[schema(example = "13.7.0")]
    version: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_and_script_is_embedded() {
        for page in &PAGES {
            assert!(Assets::Embedded.get(&format!("pages/{}.html", page.name)).is_some(), "{}", page.name);
            assert!(Assets::Embedded.get(&format!("assets/{}.js", page.name)).is_some(), "{}", page.name);
        }
    }

    #[test]
    fn every_file_of_the_front_end_is_embedded() {
        // A module imported by a page but left out of EMBEDDED would be a 404 in every
        // deployment, while the files on disk would still be there to look at.
        let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/web"));
        for folder in ["pages", "assets"] {
            for entry in std::fs::read_dir(root.join(folder)).unwrap() {
                let name = format!("{folder}/{}", entry.unwrap().file_name().to_string_lossy());
                assert!(EMBEDDED.iter().any(|(path, _)| *path == name), "{name} is not in EMBEDDED");
            }
        }
    }

    #[test]
    fn a_folder_serves_only_known_names() {
        let dir = Assets::Dir(PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/web")));
        assert!(dir.get("assets/app.js").is_some());
        assert!(dir.get("../Cargo.toml").is_none());
        assert!(dir.get("assets/../../Cargo.toml").is_none());
    }

    #[test]
    fn escape_covers_markup() {
        assert_eq!(escape(r#"<a href="x">&</a>"#), "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;");
    }
}
