//! The admin token in AWS: read from SSM on the first request that needs it, never at start, so
//! a cold start of a public request makes no SSM call and a function without admin routes never
//! needs the permission.
//!
//! This binary sets the process's AWS environment (as Lambda does) for `state::from_config`, so
//! it holds this one test only.

mod support;

use axum::body::Body;
use http::Request;
use imghost::store::aws::provision;
use tower::ServiceExt;

#[tokio::test]
async fn the_admin_token_is_read_from_ssm_on_first_use_only() {
    // Given a table and bucket on moto, and a parameter name that does not exist yet,
    let moto = support::moto();
    let (bucket, table, param) =
        (support::unique("bucket"), support::unique("table"), support::unique("/imghost/admin"));
    provision::ensure_table(&moto.dynamodb(), &table).await.unwrap();
    provision::ensure_bucket(&moto.s3(), &bucket).await.unwrap();
    // SAFETY: this binary runs this one test, so nothing reads the environment concurrently.
    unsafe {
        for (k, v) in [
            ("AWS_ENDPOINT_URL", moto.endpoint().as_str()),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
        ] {
            std::env::set_var(k, v);
        }
    }
    let config = imghost::Config::from_lookup(|k| match k {
        "IMGHOST_STORAGE" => Some("aws".into()),
        "IMGHOST_BUCKET" => Some(bucket.clone()),
        "IMGHOST_TABLE" => Some(table.clone()),
        "IMGHOST_ADMIN_TOKEN_PARAM" => Some(param.clone()),
        "IMGHOST_PUBLIC_URL" => Some("https://img.example".into()),
        // The region and the endpoint come from the AWS environment set above, as in Lambda.
        k if k.starts_with("AWS_") => std::env::var(k).ok(),
        _ => None,
    })
    .unwrap();

    // when the function starts, it starts: nothing read the missing parameter;
    let app = imghost::state::from_config(&config).await.expect("init makes no SSM call");
    let router = imghost::http::images::router(app);
    let call = |token: Option<&str>| {
        let mut req = Request::get("/v1/images");
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        router.clone().oneshot(req.body(Body::empty()).unwrap())
    };
    // a public request is answered without it;
    let public = router.clone().oneshot(Request::get("/v1/images/AbCdEf12").body(Body::empty()).unwrap()).await;
    assert_eq!(public.unwrap().status(), 404);
    // an admin request while the parameter is missing is the deployment's fault, a 500 (with the
    // cause in the log), never a 401: a broken deployment is not a wrong token;
    assert_eq!(call(Some("the-token")).await.unwrap().status(), 500);
    // and once the parameter exists, the right token is admitted and a wrong one is not.
    let ssm = moto.ssm();
    let put =
        ssm.put_parameter().name(&param).value("the-token").r#type(aws_sdk_ssm::types::ParameterType::SecureString);
    put.send().await.unwrap();
    assert_eq!(call(Some("the-token")).await.unwrap().status(), 200);
    assert_eq!(call(Some("not-the-token")).await.unwrap().status(), 401);
    assert_eq!(call(None).await.unwrap().status(), 401);
    // The token is kept for the life of the process: removing the parameter changes nothing.
    ssm.delete_parameter().name(&param).send().await.unwrap();
    assert_eq!(call(Some("the-token")).await.unwrap().status(), 200);
}
