//! The API's OpenAPI 3.1 document, served at `GET /v1/openapi.json` and committed as
//! `docs/openapi.json`.
//!
//! It is generated from the handlers themselves: each handler carries a `#[utoipa::path]` naming
//! its statuses, and every body in it is the Rust type the handler serializes (`ToSchema`), so a
//! field added to an answer appears in the document by construction. What the derive cannot say
//! is added here, once: the security schemes, and the `x-request-id` header every answer
//! carries. Tests check that every route of the merged router is documented and answered, that the
//! committed copy is this document, and that the web pages call nothing it does not describe.

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::Schema;
use utoipa::{OpenApi, PartialSchema, ToSchema};

use super::{ErrorBody, ErrorEnvelope};
use crate::state::App;

/// The document's router: `GET /v1/openapi.json`. In AWS the `web` function serves it (its router
/// merges these routes); the local runner merges it with every other router.
pub fn router(app: App) -> Router {
    super::finish(routes(app))
}

/// The routes alone, for merging with other functions' routes.
pub fn routes(app: App) -> Router {
    Router::new().route("/v1/openapi.json", get(serve)).with_state(app)
}

/// The document as JSON.
#[utoipa::path(
    get, path = "/v1/openapi.json", tag = "meta", operation_id = "getOpenApi",
    responses((status = 200, description = "This document (OpenAPI 3.1).", content_type = "application/json", body = Object)),
)]
async fn serve() -> Response {
    // Built once a process: the document is about 200 KB of JSON, and the route is public.
    static TEXT: std::sync::LazyLock<String> = std::sync::LazyLock::new(json_text);
    ([(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "no-cache")], TEXT.as_str()).into_response()
}

/// The query of every paged admin listing ([`super::page_params`]).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // Only its parameters' schema is used: `page_params` reads the query.
pub struct PageQuery {
    /// Items per page.
    #[param(minimum = 1, maximum = 100, default = 50)]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page, as it was given.
    #[param(max_length = 4096, pattern = "^[A-Za-z0-9_-]*$")]
    cursor: Option<String>,
}

/// Bytes as they are: an image body, a served image.
pub struct Binary;

impl PartialSchema for Binary {
    fn schema() -> RefOr<Schema> {
        schema(json!({"type": "string", "format": "binary"}))
    }
}

impl ToSchema for Binary {}

/// A multipart body of image files: each part named `file` is one (the API reads no other part).
pub struct MultipartImages;

impl PartialSchema for MultipartImages {
    fn schema() -> RefOr<Schema> {
        schema(json!({
            "type": "object",
            "required": ["file"],
            "properties": {
                "file": {
                    "description": "1 to 20 image files (JPEG, PNG, GIF or WebP), 5 MiB per request in all.",
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 20,
                    "items": {"type": "string", "format": "binary"}
                }
            }
        }))
    }
}

impl ToSchema for MultipartImages {}

/// The presigned form as the local runner takes it: the form's `fields`, then the file.
pub struct FormUpload;

impl PartialSchema for FormUpload {
    fn schema() -> RefOr<Schema> {
        schema(json!({
            "description": "The form's other fields are checked against its policy by the bucket; the local \
                runner reads only the file.",
            "type": "object",
            "required": ["file"],
            "properties": {
                "file": {
                    "description": "The one file, at most 50 MiB.",
                    "type": "string",
                    "format": "binary"
                }
            },
            "additionalProperties": true
        }))
    }
}

impl ToSchema for FormUpload {}

/// A schema written as JSON: clearer than the builders for the two multipart bodies. Any mistake
/// in it fails the document's tests.
fn schema(value: Value) -> RefOr<Schema> {
    RefOr::T(serde_json::from_value(value).expect("a valid schema"))
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "imghost",
        description = "A serverless image host: upload images and get short links, variants, metadata; import by \
            URL; invitation links; Imgur keep-alive; prepaid memes. Every error answers the `ErrorEnvelope`.",
        license(name = "MIT", identifier = "MIT"),
    ),
    paths(
        super::upload::upload_images,
        super::upload::create_upload,
        super::upload::upload_status,
        super::upload::receive_local_upload,
        super::images::list_images,
        super::images::get_image,
        super::images::delete_image,
        super::images::serve_image,
        super::imports::create_import,
        super::imports::import_status,
        super::keepalive::create,
        super::keepalive::list,
        super::keepalive::show,
        super::keepalive::remove,
        super::keepalive::load_now,
        super::links::create_link,
        super::links::list_links,
        super::links::link_status,
        super::links::revoke_link,
        super::links::upload_through_link,
        super::links::large_upload_through_link,
        super::accounts::create,
        super::accounts::list,
        super::accounts::purchase,
        super::accounts::balance,
        super::memes::get_meme,
        super::stats::get_stats,
        super::web::upload_page,
        super::web::image_page,
        super::web::oembed,
        super::web::invite_page,
        super::web::imports_page,
        super::web::keepalive_page,
        super::web::memes_page,
        super::web::admin_page,
        super::web::asset,
        super::web::sharex,
        super::metrics::page,
        serve,
    ),
    components(schemas(ErrorEnvelope, ErrorBody, Binary, MultipartImages, FormUpload)),
    tags(
        (name = "images", description = "Direct uploads, metadata, deletion and the images themselves."),
        (name = "uploads", description = "Large files through presigned forms."),
        (name = "imports", description = "Import images by URL."),
        (name = "links", description = "Invitation upload links."),
        (name = "keepalive", description = "Imgur keep-alive."),
        (name = "accounts", description = "Prepaid accounts and their tokens."),
        (name = "memes", description = "Memes paid with tokens."),
        (name = "stats", description = "Service statistics (admin)."),
        (name = "pages", description = "The web pages and their files."),
        (name = "meta", description = "This document, and the local server's metrics."),
    ),
)]
struct ApiDoc;

/// The document, with what the derive cannot express added: the security schemes and the
/// `x-request-id` header on every answer.
pub fn document() -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("the document serializes");
    let components = doc["components"].as_object_mut().expect("components");
    components.insert(
        "securitySchemes".into(),
        json!({
            "adminToken": {
                "type": "http", "scheme": "bearer",
                "description": "The admin token (printed once by the local runner's first start, or \
                    IMGHOST_ADMIN_TOKEN; in AWS the SSM parameter)."
            },
            "accountKey": {
                "type": "http", "scheme": "bearer",
                "description": "An account's API key, from `POST /v1/accounts`."
            },
            "deleteToken": {
                "type": "apiKey", "in": "header", "name": "X-Delete-Token",
                "description": "An upload's delete token, from the upload's answer."
            },
            "manageToken": {
                "type": "apiKey", "in": "header", "name": "X-Manage-Token",
                "description": "A keep-alive entry's manage token, from its creation."
            }
        }),
    );
    components.insert(
        "headers".into(),
        json!({
            "x-request-id": {
                "description": "The request's id, also in error bodies and on the server's log lines of the \
                    request. Every answer of the imghost server has it. In AWS it is API Gateway's request id, on \
                    every answer of a function; images served by CloudFront from the bucket, and API Gateway's own \
                    errors (which carry `apigw-requestid`), do not reach a function. Locally it is the client's \
                    own `x-request-id` when that is 1 to 128 letters, digits or `-_.:=+/`, and a new one \
                    otherwise.",
                "required": false,
                "schema": {"type": "string", "minLength": 1, "maxLength": 128, "pattern": "^[A-Za-z0-9._:=+/-]+$"}
            }
        }),
    );
    for item in doc["paths"].as_object_mut().expect("paths").values_mut() {
        for operation in item.as_object_mut().expect("path item").values_mut() {
            let Some(responses) = operation.get_mut("responses").and_then(Value::as_object_mut) else { continue };
            for response in responses.values_mut() {
                let headers = response.as_object_mut().expect("response").entry("headers").or_insert(json!({}));
                headers["x-request-id"] = json!({"$ref": "#/components/headers/x-request-id"});
            }
        }
    }
    doc
}

/// The document as committed in `docs/openapi.json`: pretty-printed, with a trailing newline.
pub fn json_text() -> String {
    let mut text = serde_json::to_string_pretty(&document()).expect("the document serializes");
    text.push('\n');
    text
}
