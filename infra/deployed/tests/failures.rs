//! A function deployed without a permission or a variable the template gives it fails here as it
//! would in AWS: moto enforces each function's IAM policy, and each process gets exactly its
//! environment. One stack for the file.

mod common;

use common::{ok, photo};
use imghost_deployed::{HttpRequest, InvokeError, Stack};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_permission_or_variable_fails_the_function() {
    let stack = Stack::start().await;
    resize_without_its_variants_statement_fails_and_makes_nothing(&stack).await;
    a_form_signed_without_the_incoming_permission_is_refused(&stack).await;
    upload_without_its_table_fails_its_init(&stack).await;
}

async fn resize_without_its_variants_statement_fails_and_makes_nothing(stack: &Stack) {
    // Given resize deployed without the one statement that lets it put objects under variants/,
    let limited = stack
        .spawn_with("ResizeFunction", |f| {
            let before = f.statements.len();
            f.statements.retain(|s| {
                !(s.action.iter().any(|a| a == "s3:PutObject") && s.resource.iter().any(|r| r.ends_with("/variants/*")))
            });
            assert_eq!(f.statements.len(), before - 1, "exactly one statement lets resize write variants");
        })
        .await;
    let upload = stack.spawn("UploadFunction").await;
    let images = stack.spawn("ImagesFunction").await;
    let r =
        ok(upload.http(HttpRequest::post("/v1/images").body("image/jpeg", photo("cameras/olympus-c960.jpg"))).await);
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json()["id"].as_str().expect("an image id").to_owned();
    let original = format!("originals/{id}");

    // when S3 notifies it of a new original,
    let failed = stack.notify(&limited, &original, "ObjectCreated:Put").await;

    // then the invocation fails (an error response, so Lambda retries the event) on S3's refusal,
    match &failed {
        Err(InvokeError::Function { message, .. }) => {
            assert!(message.contains("AccessDenied"), "the error names S3's refusal: {message}")
        }
        other => panic!("resize without its variants statement must fail, got {other:?}"),
    }
    // and no variant is stored or ready.
    assert!(stack.keys("variants/").await.iter().all(|k| !k.ends_with(&format!("/{id}"))));
    let view = ok(images.http(HttpRequest::get(&format!("/v1/images/{id}"))).await).json();
    for size in ["small", "medium", "large"] {
        assert_eq!(view["variants"][size]["status"], "pending", "{view}");
    }

    // The same event into resize as the template deploys it succeeds: the statement was the cause.
    let resize = stack.spawn("ResizeFunction").await;
    stack.notify(&resize, &original, "ObjectCreated:Put").await.unwrap_or_else(|e| panic!("{e}"));
    let view = ok(images.http(HttpRequest::get(&format!("/v1/images/{id}"))).await).json();
    for size in ["small", "medium", "large"] {
        assert_eq!(view["variants"][size]["status"], "ready", "{view}");
    }
}

async fn a_form_signed_without_the_incoming_permission_is_refused(stack: &Stack) {
    // Given upload deployed without its permission to put objects under incoming/ (the form it
    // hands out is signed with its own credentials),
    let limited = stack
        .spawn_with("UploadFunction", |f| {
            let mut removed = 0;
            for s in &mut f.statements {
                let before = s.resource.len();
                s.resource.retain(|r| !r.ends_with("/incoming/*"));
                removed += before - s.resource.len();
            }
            assert_eq!(removed, 1, "one resource lets upload's signer put under incoming/");
        })
        .await;
    let r = ok(limited.http(HttpRequest::post("/v1/uploads").json(&json!({}))).await);
    assert_eq!(r.status, 201, "signing a form needs no permission: {}", r.text());
    let created = r.json();

    // when the browser posts the form,
    let (status, body) = stack.post_form(&created["form"], photo("cameras/olympus-c960.jpg"), "image/jpeg").await;

    // then S3 refuses it, and nothing lands under incoming/.
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("AccessDenied"), "{body}");
    let key = format!("incoming/{}", created["upload_id"].as_str().unwrap_or_default());
    assert!(!stack.object_exists(&key).await);
}

async fn upload_without_its_table_fails_its_init(stack: &Stack) {
    // Given upload deployed without IMGHOST_TABLE,
    let broken = stack
        .spawn_with("UploadFunction", |f| {
            assert!(f.environment.remove("IMGHOST_TABLE").is_some(), "the template gives upload IMGHOST_TABLE");
        })
        .await;

    // when Lambda runs its init,
    let init = broken.ready().await;

    // then the init fails, and the process's output says why,
    match &init {
        Err(InvokeError::Init { reason, log, .. }) => {
            assert!(reason.contains("during init"), "{reason}");
            assert!(log.contains("IMGHOST_TABLE is required"), "{log}");
        }
        other => panic!("upload without IMGHOST_TABLE must fail its init, got {other:?}"),
    }

    // and every request to it fails with that init error (API Gateway would answer 500).
    let r = broken.http(HttpRequest::post("/v1/images").body("image/jpeg", photo("cameras/olympus-c960.jpg"))).await;
    assert!(matches!(r, Err(InvokeError::Init { .. })), "{r:?}");
}
