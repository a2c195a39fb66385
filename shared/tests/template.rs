//! The template and the code agree: every HTTP route in `template.yaml` is answered by its
//! function's router and every router route has a template route; every variable a function
//! needs is set for it; and every AWS call a function's code makes is allowed by its policy,
//! with nothing allowed that no code path calls.
//!
//! What the template gives each function comes from `scripts/template-facts` (the same reading
//! the deployed-shape suite uses); what the code needs is listed once, in [`NEEDS`] below, next
//! to the code paths that need it.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use axum::body::Body;
use http::Request;
use serde_json::Value;
use tower::ServiceExt;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The facts of every function, keyed by binary name.
fn facts() -> BTreeMap<String, Value> {
    let all = support::template_facts();
    all["functions"]
        .as_object()
        .unwrap()
        .values()
        .map(|f| (f["binary"].as_str().unwrap().to_owned(), f.clone()))
        .collect()
}

/// The HTTP router module a function's `main.rs` runs, if it runs one.
fn router_module(binary: &str) -> Option<String> {
    let main = std::fs::read_to_string(root().join(format!("functions/{binary}/src/main.rs"))).unwrap();
    let at = main.find("imghost::http::")?;
    let rest = &main[at + "imghost::http::".len()..];
    Some(rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect())
}

/// Router modules whose routes another module's router merges into its own, as the `web`
/// function's router serves the OpenAPI document.
const MERGED: [(&str, &str); 1] = [("web", "openapi")];

/// The (method, path) pairs a router module declares, read from its `.route(...)` calls, with
/// those of the modules it merges.
fn declared_routes(module: &str) -> BTreeSet<(String, String)> {
    let mut source = std::fs::read_to_string(root().join(format!("shared/src/http/{module}.rs"))).unwrap();
    for (_, merged) in MERGED.iter().filter(|(m, _)| *m == module) {
        source += &std::fs::read_to_string(root().join(format!("shared/src/http/{merged}.rs"))).unwrap();
    }
    let mut routes = BTreeSet::new();
    for line in source.lines().filter(|l| l.contains(".route(\"")) {
        let path = line.split(".route(\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
        let methods = line.split(".route(\"").nth(1).unwrap();
        for method in ["get", "post", "put", "patch", "delete"] {
            let called = methods.match_indices(&format!("{method}(")).any(|(i, _)| {
                i == 0 || !methods.as_bytes()[i - 1].is_ascii_alphanumeric() && methods.as_bytes()[i - 1] != b'_'
            });
            if called {
                routes.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    routes
}

/// Routes a router has on purpose without a template route, and why.
const LOCAL_ONLY_ROUTES: [(&str, &str, &str); 2] = [
    (
        "POST",
        "/v1/uploads/{upload_id}",
        "the local stand-in for the bucket's form endpoint; in AWS the form posts to S3 and this answers 404",
    ),
    (
        "GET",
        "/i/{file}",
        "in AWS the distribution serves images from the bucket (cdn/images.js, checked by tests/cdn.rs)",
    ),
];

async fn router_for(module: &str, app: imghost::App) -> axum::Router {
    use imghost::http;
    match module {
        "accounts" => http::accounts::router(app),
        "images" => http::images::router(app),
        "imports" => http::imports::router(app),
        "keepalive" => http::keepalive::router(app),
        "links" => http::links::router(app),
        "memes" => http::memes::router(app),
        "stats" => http::stats::router(app),
        "upload" => http::upload::router(app),
        "web" => http::web::router(app),
        other => panic!("no router module {other}"),
    }
}

/// What is wrong between the template's routes and the routers: a route on one side only, or a
/// template route the router does not answer.
async fn route_problems(facts: &BTreeMap<String, Value>, app: &imghost::App) -> (Vec<String>, usize) {
    let (mut problems, mut checked) = (Vec::new(), 0);
    for (binary, function) in facts {
        let template: BTreeSet<(String, String)> = function["routes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r[0].as_str().unwrap().to_owned(), r[1].as_str().unwrap().to_owned()))
            .collect();
        let Some(module) = router_module(binary) else {
            if !template.is_empty() {
                problems.push(format!("{binary} has HTTP routes but runs no router"));
            }
            continue;
        };
        let declared = declared_routes(&module);
        let local_only: BTreeSet<_> = LOCAL_ONLY_ROUTES
            .iter()
            .filter(|(m, p, _)| declared.contains(&(m.to_string(), p.to_string())))
            .map(|(m, p, _)| (m.to_string(), p.to_string()))
            .collect();
        let expected: BTreeSet<_> = declared.difference(&local_only).cloned().collect();
        for (method, path) in expected.difference(&template) {
            problems
                .push(format!("{binary}: http::{module} answers {method} {path}, which the template does not route"));
        }
        for (method, path) in template.difference(&expected) {
            problems
                .push(format!("{binary}: the template routes {method} {path}, which http::{module} does not declare"));
        }
        // Whatever the router answers a template route, it is not the fallback for an unknown
        // path or method.
        let router = router_for(&module, app.clone()).await;
        for (method, path) in &template {
            let concrete = path.replace(['{', '}'], "");
            let request = Request::builder().method(method.as_str()).uri(&concrete).body(Body::empty()).unwrap();
            let response = router.clone().oneshot(request).await.unwrap();
            let status = response.status().as_u16();
            let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
            let text = String::from_utf8_lossy(&body);
            if (status == 404 && text.contains("no such endpoint")) || status == 405 {
                problems.push(format!("{binary}: {method} {path} is not routed ({status} {text})"));
            }
            checked += 1;
        }
    }
    (problems, checked)
}

#[tokio::test]
async fn every_template_route_is_answered_and_every_router_route_is_in_the_template() {
    // Given the routes each router module declares and those the template gives its function,
    let (app, _dir) = support::embedded_app().await;
    let (problems, checked) = route_problems(&facts(), &app).await;
    // then they are the same (but for the routes that exist only locally), and the router
    // answers every template route.
    assert!(problems.is_empty(), "template routes and routers disagree:\n  {}", problems.join("\n  "));
    assert!(checked > 30, "only {checked} routes checked");
}

/// What the code of each function needs from the template, by binary name: the variables it
/// reads beyond the storage settings every function has, and the AWS calls its code paths make,
/// each as `(action, resource)` where the resource is `table` (the table and its index),
/// `object:<prefix>` (objects under a prefix of the bucket), `bucket`, `queue:<Resource>`, or
/// `admin-token` (the SSM parameter and the KMS key that decrypts it).
struct Needs {
    binary: &'static str,
    variables: &'static [&'static str],
    calls: &'static [(&'static str, &'static str)],
}

const TABLE_WRITES: [(&str, &str); 6] = [
    ("dynamodb:GetItem", "table"),
    ("dynamodb:PutItem", "table"),
    ("dynamodb:UpdateItem", "table"),
    ("dynamodb:DeleteItem", "table"),
    ("dynamodb:ConditionCheckItem", "table"),
    ("dynamodb:Query", "table"),
];
const ADMIN: [(&str, &str); 2] = [("ssm:GetParameter", "admin-token"), ("kms:Decrypt", "admin-token")];

/// Undoing an upload whose original could not be stored removes the image with its objects
/// (`images::purge`): every function that ingests may need it.
const UNDO: [(&str, &str); 2] = [("s3:DeleteObject", "object:originals/"), ("s3:DeleteObject", "object:variants/")];
/// Functions that ingest uploads (and so may undo one).
const INGESTERS: [&str; 5] = ["upload", "links", "resize", "import-worker", "memes"];

const NEEDS: &[Needs] = &[
    // Direct uploads store originals (ingest); presigned forms are signed with the function's own
    // credentials, so its role must be allowed to put what the browser posts under incoming/.
    Needs {
        binary: "upload",
        variables: &[],
        calls: &[("s3:PutObject", "object:originals/"), ("s3:PutObject", "object:incoming/")],
    },
    // The same for uploads through invitation links; link administration reads the admin token.
    Needs {
        binary: "links",
        variables: &["IMGHOST_ADMIN_TOKEN_PARAM"],
        calls: &[("s3:PutObject", "object:originals/"), ("s3:PutObject", "object:incoming/")],
    },
    // Deleting an image removes its original and variants; the distribution serves `/i/`.
    Needs {
        binary: "images",
        variables: &["IMGHOST_ADMIN_TOKEN_PARAM"],
        calls: &[("s3:DeleteObject", "object:originals/"), ("s3:DeleteObject", "object:variants/")],
    },
    // Ingest of incoming/ (read, then delete), originals read for variants and written by ingest,
    // variants written; listing tells a missing incoming object (a retried event) from a denied
    // one.
    Needs {
        binary: "resize",
        variables: &["IMGHOST_AVIF_QUEUE_URL"],
        calls: &[
            ("s3:GetObject", "object:incoming/"),
            ("s3:DeleteObject", "object:incoming/"),
            ("s3:GetObject", "object:originals/"),
            ("s3:PutObject", "object:originals/"),
            ("s3:PutObject", "object:variants/"),
            ("s3:ListBucket", "bucket"),
            ("sqs:SendMessage", "queue:AvifQueue"),
        ],
    },
    // The later AVIF pass: originals read, variants written (and taken back for an image
    // deleted meanwhile), back-off by the message's visibility.
    Needs {
        binary: "avif",
        variables: &["IMGHOST_AVIF_QUEUE_URL"],
        calls: &[
            ("s3:GetObject", "object:originals/"),
            ("s3:PutObject", "object:variants/"),
            ("s3:DeleteObject", "object:variants/"),
            ("s3:ListBucket", "bucket"),
            ("sqs:ChangeMessageVisibility", "queue:AvifQueue"),
        ],
    },
    // A job's messages go to the import queue.
    Needs {
        binary: "imports",
        variables: &["IMGHOST_IMPORT_QUEUE_URL"],
        calls: &[("sqs:SendMessage", "queue:ImportQueue")],
    },
    // Fetched images are stored as originals; a transient failure backs off by changing the
    // message's visibility.
    Needs {
        binary: "import-worker",
        variables: &["IMGHOST_IMPORT_QUEUE_URL"],
        calls: &[("s3:PutObject", "object:originals/"), ("sqs:ChangeMessageVisibility", "queue:ImportQueue")],
    },
    // "Load now" queues a load; the entry listing is the admin's.
    Needs {
        binary: "keepalive",
        variables: &["IMGHOST_ADMIN_TOKEN_PARAM", "IMGHOST_KEEPALIVE_QUEUE_URL"],
        calls: &[("sqs:SendMessage", "queue:KeepaliveQueue")],
    },
    Needs {
        binary: "keepalive-sweep",
        variables: &["IMGHOST_KEEPALIVE_QUEUE_URL"],
        calls: &[("sqs:SendMessage", "queue:KeepaliveQueue")],
    },
    Needs { binary: "keepalive-loader", variables: &[], calls: &[] },
    Needs { binary: "accounts", variables: &["IMGHOST_ADMIN_TOKEN_PARAM"], calls: &[] },
    // A background is a variant or an original; the meme is stored as an original.
    Needs {
        binary: "memes",
        variables: &[],
        calls: &[
            ("s3:GetObject", "object:variants/"),
            ("s3:GetObject", "object:originals/"),
            ("s3:PutObject", "object:originals/"),
        ],
    },
    Needs { binary: "stats", variables: &["IMGHOST_ADMIN_TOKEN_PARAM"], calls: &[] },
    Needs { binary: "web", variables: &[], calls: &[] },
];

/// Functions whose code reads the table without writing it (web reads an image's item for the
/// link preview of its page).
const TABLE_READERS: [&str; 2] = ["stats", "web"];
/// Functions that never touch storage at all.
const NO_STORAGE: [&str; 0] = [];

/// Every `(action, resource)` a function's code needs, the table and admin token included.
fn needed_calls(needs: &Needs) -> BTreeSet<(String, String)> {
    let mut calls: BTreeSet<(String, String)> =
        needs.calls.iter().map(|(a, r)| (a.to_string(), r.to_string())).collect();
    if TABLE_READERS.contains(&needs.binary) {
        calls.extend([("dynamodb:GetItem", "table"), ("dynamodb:Query", "table")].map(|(a, r)| (a.into(), r.into())));
    } else if !NO_STORAGE.contains(&needs.binary) {
        calls.extend(TABLE_WRITES.map(|(a, r)| (a.to_owned(), r.to_owned())));
    }
    if needs.variables.contains(&"IMGHOST_ADMIN_TOKEN_PARAM") {
        calls.extend(ADMIN.map(|(a, r)| (a.to_owned(), r.to_owned())));
    }
    if INGESTERS.contains(&needs.binary) {
        calls.extend(UNDO.map(|(a, r)| (a.to_owned(), r.to_owned())));
    }
    calls
}

/// Names a statement's resource the way [`Needs`] does, from the placeholders the facts give
/// (`<Table.Arn>`, `<ImportQueue.QueueName>`) and the default stack's bucket.
fn classify(resource: &str) -> String {
    let bucket = "arn:aws:s3:::imghost-images-123456789012";
    if resource.starts_with("<Table.Arn>") {
        "table".into()
    } else if resource == bucket {
        "bucket".into()
    } else if let Some(key) = resource.strip_prefix(&format!("{bucket}/")) {
        format!("object:{}", key.trim_end_matches('*'))
    } else if resource.contains(":parameter/") || (resource == "*") {
        "admin-token".into()
    } else if let Some(queue) = resource.split(':').next_back().and_then(|q| q.strip_prefix('<')) {
        format!("queue:{}", queue.split('.').next().unwrap())
    } else {
        resource.to_owned()
    }
}

/// The `(action, resource)` pairs a function's template statements allow, with SQS's
/// `SendMessage*` (from SAM's policy template) standing for the one action the code calls.
fn allowed_calls(function: &Value) -> BTreeSet<(String, String)> {
    let mut allowed = BTreeSet::new();
    for statement in function["statements"].as_array().unwrap() {
        assert_eq!(statement["Effect"], "Allow");
        for action in statement["Action"].as_array().unwrap() {
            let action = action.as_str().unwrap().trim_end_matches('*');
            for resource in statement["Resource"].as_array().unwrap() {
                allowed.insert((action.to_owned(), classify(resource.as_str().unwrap())));
            }
        }
    }
    // A policy on the table covers its index; the needs name both as `table`.
    allowed
}

/// What is wrong between the code's needs and the template's policies.
fn permission_problems(facts: &BTreeMap<String, Value>) -> Vec<String> {
    let listed: BTreeSet<&str> = NEEDS.iter().map(|n| n.binary).collect();
    let mut problems: Vec<String> =
        facts.keys().filter(|b| !listed.contains(b.as_str())).map(|b| format!("{b} is not listed in NEEDS")).collect();
    for needs in NEEDS {
        let Some(function) = facts.get(needs.binary) else {
            problems.push(format!("{} is listed in NEEDS but not in the template", needs.binary));
            continue;
        };
        let (needed, allowed) = (needed_calls(needs), allowed_calls(function));
        for missing in needed.difference(&allowed) {
            problems.push(format!("{}: needs {missing:?}, which its policy does not allow", needs.binary));
        }
        for extra in allowed.difference(&needed) {
            problems.push(format!("{}: is allowed {extra:?}, which no code path calls", needs.binary));
        }
    }
    problems
}

#[test]
fn every_function_is_allowed_exactly_the_calls_its_code_makes() {
    let problems = permission_problems(&facts());
    assert!(problems.is_empty(), "template policies and code disagree:\n  {}", problems.join("\n  "));
}

/// What is wrong between the variables the code reads and those the template sets.
fn variable_problems(facts: &BTreeMap<String, Value>) -> Vec<String> {
    // Every function of the AWS family has its storage.
    let storage = ["IMGHOST_STORAGE", "IMGHOST_TABLE", "IMGHOST_BUCKET"];
    let mut problems = Vec::new();
    for needs in NEEDS {
        let env = facts[needs.binary]["environment"].as_object().unwrap();
        for variable in storage.iter().chain(needs.variables) {
            if env.get(*variable).and_then(Value::as_str).is_none_or(str::is_empty) {
                problems.push(format!("{} needs {variable}", needs.binary));
            }
        }
        // The admin token's parameter goes to the functions with admin routes only.
        if env.contains_key("IMGHOST_ADMIN_TOKEN_PARAM") && !needs.variables.contains(&"IMGHOST_ADMIN_TOKEN_PARAM") {
            problems.push(format!("{} is told where the admin token is without an admin route", needs.binary));
        }
    }
    // And every variable the configuration reads is one the template sets somewhere, or one
    // documented as local-only.
    let config = std::fs::read_to_string(root().join("shared/src/config.rs")).unwrap();
    let read: BTreeSet<&str> = config.split('"').filter(|s| s.starts_with("IMGHOST_") && !s.contains(' ')).collect();
    let local_only = ["IMGHOST_DATA_DIR", "IMGHOST_ADMIN_TOKEN"];
    let set: BTreeSet<String> =
        facts.values().flat_map(|f| f["environment"].as_object().unwrap().keys().cloned()).collect();
    for variable in read {
        if !set.contains(variable) && !local_only.contains(&variable) {
            problems.push(format!("the code reads {variable}, which the template never sets"));
        }
    }
    problems
}

#[test]
fn every_variable_a_function_needs_is_set_for_it() {
    let problems = variable_problems(&facts());
    assert!(problems.is_empty(), "template variables and code disagree:\n  {}", problems.join("\n  "));
}

#[tokio::test]
async fn the_checks_fail_when_the_template_loses_a_route_a_variable_or_a_permission() {
    let (app, _dir) = support::embedded_app().await;
    let facts = facts();
    // Given the template's facts with one route, one variable or one allowed action taken away,
    let without = |binary: &str, edit: &dyn Fn(&mut Value)| {
        let mut f = facts.clone();
        edit(f.get_mut(binary).unwrap());
        f
    };
    let no_route = without("images", &|f| {
        f["routes"].as_array_mut().unwrap().retain(|r| r[1] != "/v1/images/{id}" || r[0] != "DELETE")
    });
    let no_variable =
        without("imports", &|f| drop(f["environment"].as_object_mut().unwrap().remove("IMGHOST_IMPORT_QUEUE_URL")));
    let no_permission = without("resize", &|f| {
        for s in f["statements"].as_array_mut().unwrap() {
            s["Action"].as_array_mut().unwrap().retain(|a| a != "s3:PutObject");
        }
    });
    let extra_permission = without("stats", &|f| {
        f["statements"].as_array_mut().unwrap().push(serde_json::json!({
            "Effect": "Allow", "Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::imghost-images-123456789012/originals/*"]
        }))
    });
    // then each check names what was lost (or gained).
    let (routes, _) = route_problems(&no_route, &app).await;
    assert!(routes.iter().any(|p| p.contains("DELETE /v1/images/{id}")), "{routes:?}");
    let variables = variable_problems(&no_variable);
    assert!(variables.iter().any(|p| p.contains("imports needs IMGHOST_IMPORT_QUEUE_URL")), "{variables:?}");
    let missing = permission_problems(&no_permission);
    assert!(missing.iter().any(|p| p.contains("resize: needs (\"s3:PutObject\"")), "{missing:?}");
    let extra = permission_problems(&extra_permission);
    assert!(extra.iter().any(|p| p.contains("stats: is allowed (\"s3:GetObject\"")), "{extra:?}");
}
