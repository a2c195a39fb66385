//! The template and the code agree: every HTTP route in `template.yaml` is answered by its
//! function's router and every router route has a template route; every variable a function
//! needs is set for it; and every AWS call a function's code makes is allowed by its policy,
//! with nothing allowed that no code path calls.
//!
//! What the template gives each function comes from `scripts/template-facts` (the same reading
//! the deployed-shape suite uses); what the code needs is listed once, in [`NEEDS`] below, next
//! to the code paths that need it.
//!
//! The template's monitoring is read from the template itself: every dead-letter queue and every
//! function has its alarms, every alarm notifies through the `HasAlarmTopic` condition, the
//! alarms and the dashboard read only metrics the code writes (`imghost::metrics::ALL`), and the
//! dashboard's body is JSON that shows every function and dead-letter queue.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use axum::body::Body;
use http::Request;
use serde_json::{Value, json};
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
    // Every function of the AWS family has its storage, and the namespace its metrics go to
    // (Globals gives it to all).
    let every_function = ["IMGHOST_STORAGE", "IMGHOST_TABLE", "IMGHOST_BUCKET", "IMGHOST_METRICS_NAMESPACE"];
    let mut problems = Vec::new();
    for needs in NEEDS {
        let env = facts[needs.binary]["environment"].as_object().unwrap();
        for variable in every_function.iter().chain(needs.variables) {
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
    let no_namespace =
        without("web", &|f| drop(f["environment"].as_object_mut().unwrap().remove("IMGHOST_METRICS_NAMESPACE")));
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
    let namespace = variable_problems(&no_namespace);
    assert!(namespace.iter().any(|p| p.contains("web needs IMGHOST_METRICS_NAMESPACE")), "{namespace:?}");
    let missing = permission_problems(&no_permission);
    assert!(missing.iter().any(|p| p.contains("resize: needs (\"s3:PutObject\"")), "{missing:?}");
    let extra = permission_problems(&extra_permission);
    assert!(extra.iter().any(|p| p.contains("stats: is allowed (\"s3:GetObject\"")), "{extra:?}");
}

// -------------------------------------------------------------------------------------------------
// Monitoring: alarms and the dashboard
// -------------------------------------------------------------------------------------------------

/// Reads `template.yaml` as JSON, CloudFormation's short tags in their long form: `!Ref X` as
/// `{"Ref": "X"}`, `!GetAtt X.Y` as `{"Fn::GetAtt": ["X", "Y"]}`, `!Sub s` as `{"Fn::Sub": s}`,
/// and so on. PyYAML comes with cfn-lint, as for `scripts/template-facts`.
const TEMPLATE_AS_JSON: &str = r#"
import json, sys, yaml

class Loader(yaml.SafeLoader):
    pass

def construct(loader, tag, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if tag == "Ref":
        return {"Ref": value}
    if tag == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {"Fn::" + tag: value}

Loader.add_multi_constructor("!", construct)
json.dump(yaml.load(open("template.yaml"), Loader=Loader), sys.stdout, default=str)
"#;

fn template() -> Value {
    let out = Command::new("python3")
        .args(["-c", TEMPLATE_AS_JSON])
        .current_dir(root())
        .output()
        .expect("python3 reads template.yaml");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("the template reads as JSON")
}

/// The values of the `Pass` dimension: the first variant pass and the AVIF one
/// (`workers::Pass::FIRST` and `AVIF`, private to the crate).
const PASSES: [&str; 2] = ["first", "avif"];

/// The dead-letter queues every template has today; [`dead_letter_queues`] must find at least
/// these, so a change to how the template names them cannot empty the check.
const KNOWN_DEAD_LETTER_QUEUES: [&str; 4] =
    ["AvifDeadLetterQueue", "ImportDeadLetterQueue", "KeepaliveDeadLetterQueue", "ResizeFailureQueue"];

/// The keys under which a resource names where its failures go: an SQS redrive policy's target,
/// a Lambda destination on failure (in `EventInvokeConfig` or an event source's
/// `DestinationConfig`), a function's or a schedule's dead-letter queue.
const DEAD_LETTER_KEYS: [&str; 4] = ["deadLetterTargetArn", "OnFailure", "DeadLetterQueue", "DeadLetterConfig"];

/// `(logical id, Properties)` of every resource of one of `kinds`.
fn resources<'a>(template: &'a Value, kinds: &'a [&str]) -> impl Iterator<Item = (&'a str, &'a Value)> + 'a {
    template["Resources"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, r)| kinds.iter().any(|k| r["Type"] == *k))
        .map(|(name, r)| (name.as_str(), &r["Properties"]))
}

fn alarms(template: &Value) -> impl Iterator<Item = (&str, &Value)> {
    resources(template, &["AWS::CloudWatch::Alarm"])
}

/// The value of a metric's dimension, from `Dimensions: [{Name, Value}]`.
fn dimension<'a>(metric: &'a Value, name: &str) -> Option<&'a Value> {
    metric["Dimensions"].as_array()?.iter().find(|d| d["Name"] == name).map(|d| &d["Value"])
}

/// The names `${Name}` and `${Name.Attribute}` of a `!Sub` string refer to.
fn sub_names(text: &str) -> Vec<String> {
    text.split("${").skip(1).filter_map(|s| s.split_once('}')).map(|(name, _)| name.to_owned()).collect()
}

/// The resources a value names, by `!GetAtt`, `!Ref` or `!Sub`, anywhere under one of
/// [`DEAD_LETTER_KEYS`].
fn collect_dead_letter_targets(value: &Value, under: bool, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match key.as_str() {
                    "Fn::GetAtt" if under => out.extend(v[0].as_str().map(str::to_owned)),
                    "Ref" if under => out.extend(v.as_str().map(str::to_owned)),
                    "Fn::Sub" if under => {
                        let text = v.as_str().or_else(|| v[0].as_str()).unwrap_or_default();
                        out.extend(sub_names(text).iter().map(|n| n.split('.').next().unwrap().to_owned()));
                    }
                    _ => collect_dead_letter_targets(v, under || DEAD_LETTER_KEYS.contains(&key.as_str()), out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_dead_letter_targets(v, under, out)),
        _ => {}
    }
}

/// Every SQS queue of the template that receives another resource's failures.
fn dead_letter_queues(template: &Value) -> BTreeSet<String> {
    let mut targets = BTreeSet::new();
    for resource in template["Resources"].as_object().unwrap().values() {
        collect_dead_letter_targets(&resource["Properties"], false, &mut targets);
    }
    let queues: BTreeSet<&str> = resources(template, &["AWS::SQS::Queue"]).map(|(name, _)| name).collect();
    targets.retain(|name| queues.contains(name.as_str()));
    targets
}

/// Dead-letter queues without an alarm that fires on their first visible message.
fn dead_letter_problems(template: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    for queue in dead_letter_queues(template) {
        let name = json!({"Fn::GetAtt": [queue, "QueueName"]});
        let alarmed = alarms(template).any(|(_, p)| {
            let fires_on_one = match (p["ComparisonOperator"].as_str(), p["Threshold"].as_f64()) {
                (Some("GreaterThanThreshold"), Some(t)) => t < 1.0,
                (Some("GreaterThanOrEqualToThreshold"), Some(t)) => t <= 1.0,
                _ => false,
            };
            p["Namespace"] == "AWS/SQS"
                && p["MetricName"] == "ApproximateNumberOfMessagesVisible"
                && dimension(p, "QueueName") == Some(&name)
                && fires_on_one
        });
        if !alarmed {
            problems.push(format!("dead-letter queue {queue} has no alarm on its first visible message"));
        }
    }
    problems
}

#[test]
fn every_dead_letter_queue_has_an_alarm_on_its_depth() {
    // Given the queues the template sends failures to (redrive targets and Lambda failure
    // destinations, found by following every reference),
    let template = template();
    let queues = dead_letter_queues(&template);
    assert!(!queues.is_empty(), "no dead-letter queue found: the search is broken");
    for known in KNOWN_DEAD_LETTER_QUEUES {
        assert!(queues.contains(known), "{known} was not found among the dead-letter queues {queues:?}");
    }
    // then each has an alarm on ApproximateNumberOfMessagesVisible that fires on one message.
    let problems = dead_letter_problems(&template);
    assert!(problems.is_empty(), "dead-letter queues without alarms:\n  {}", problems.join("\n  "));
}

/// Functions without an Errors or a Throttles alarm (AWS/Lambda, Sum, by FunctionName).
fn function_alarm_problems(template: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    for (function, _) in resources(template, &["AWS::Serverless::Function", "AWS::Lambda::Function"]) {
        for metric in ["Errors", "Throttles"] {
            let alarmed = alarms(template).any(|(_, p)| {
                p["Namespace"] == "AWS/Lambda"
                    && p["MetricName"] == metric
                    && p["Statistic"] == "Sum"
                    && dimension(p, "FunctionName") == Some(&json!({"Ref": function}))
            });
            if !alarmed {
                problems.push(format!("{function} has no {metric} alarm"));
            }
        }
    }
    problems
}

#[test]
fn every_function_has_an_errors_and_a_throttles_alarm() {
    // Given every function of the template,
    let template = template();
    assert!(resources(&template, &["AWS::Serverless::Function"]).count() > 10);
    // then each has an alarm on its Lambda Errors and one on its Throttles.
    let problems = function_alarm_problems(&template);
    assert!(problems.is_empty(), "functions without alarms:\n  {}", problems.join("\n  "));
}

/// Alarms that notify anything but the `AlarmTopicArn` parameter, when `HasAlarmTopic` holds.
fn alarm_action_problems(template: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let parameter = &template["Parameters"]["AlarmTopicArn"];
    if parameter["Type"] != "String" || parameter["Default"] != "" {
        problems.push(format!("AlarmTopicArn must be a String parameter that defaults to empty, not {parameter}"));
    }
    let topic = json!({"Ref": "AlarmTopicArn"});
    let condition = &template["Conditions"]["HasAlarmTopic"];
    if ![json!({"Fn::Not": [{"Fn::Equals": [topic, ""]}]}), json!({"Fn::Not": [{"Fn::Equals": ["", topic]}]})]
        .contains(condition)
    {
        problems.push(format!("HasAlarmTopic must hold exactly when AlarmTopicArn is not empty, not {condition}"));
    }
    let actions = json!({"Fn::If": ["HasAlarmTopic", [topic], {"Ref": "AWS::NoValue"}]});
    let mut count = 0;
    for (alarm, p) in resources(template, &["AWS::CloudWatch::Alarm", "AWS::CloudWatch::CompositeAlarm"]) {
        count += 1;
        for key in ["AlarmActions", "OKActions"] {
            if p[key] != actions {
                problems.push(format!("{alarm}: {key} is {}, not !If [HasAlarmTopic, ...]", p[key]));
            }
        }
        if p.get("InsufficientDataActions").is_some_and(|a| *a != actions) {
            problems.push(format!("{alarm}: InsufficientDataActions do not go through HasAlarmTopic"));
        }
    }
    if count == 0 {
        problems.push("the template has no alarms".into());
    }
    problems
}

#[test]
fn every_alarm_notifies_the_alarm_topic_through_its_condition() {
    // Given every alarm of the template,
    let template = template();
    // then each notifies AlarmTopicArn on ALARM and on OK when the parameter is given, and
    // nothing when it is left empty.
    let problems = alarm_action_problems(&template);
    assert!(problems.is_empty(), "alarm actions:\n  {}", problems.join("\n  "));
}

/// A metric as `(namespace, name, [(dimension, value)])`.
type Series = (Value, String, Vec<(String, String)>);

/// The metrics an alarm reads: its own, or each of its `Metrics`' `MetricStat`.
fn alarm_series(p: &Value) -> Vec<Series> {
    let one = |m: &Value| -> Series {
        let dims = m["Dimensions"].as_array().map(Vec::as_slice).unwrap_or_default();
        let dims = dims.iter().map(|d| (d["Name"].as_str().unwrap().to_owned(), d["Value"].to_string())).collect();
        (m["Namespace"].clone(), m["MetricName"].as_str().unwrap_or_default().to_owned(), dims)
    };
    let mut series: Vec<Series> = p["Metrics"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m.get("MetricStat"))
        .map(|s| one(&s["Metric"]))
        .collect();
    if p.get("MetricName").is_some() {
        series.push(one(p));
    }
    series
}

/// `${Name}` in a `!Sub` string replaced by `<Name>`, as `scripts/template-facts` resolves what it
/// is not told.
fn substituted(text: &str) -> String {
    let mut out = text.to_owned();
    for name in sub_names(text) {
        out = out.replace(&format!("${{{name}}}"), &format!("<{name}>"));
    }
    out
}

/// The namespace of the code's own metrics, as Globals gives it to the functions (resolved the
/// way [`substituted`] resolves the dashboard's body).
fn metrics_namespace(template: &Value) -> String {
    let namespace = &template["Globals"]["Function"]["Environment"]["Variables"]["IMGHOST_METRICS_NAMESPACE"];
    substituted(namespace["Fn::Sub"].as_str().or(namespace.as_str()).expect("Globals set IMGHOST_METRICS_NAMESPACE"))
}

/// What is wrong with one series in the code's namespace: a metric the code does not write, or
/// dimensions it does not give it.
fn own_series_problem(whose: &str, name: &str, dimensions: &BTreeMap<String, Option<String>>) -> Option<String> {
    let Some(metric) = imghost::metrics::ALL.iter().find(|m| m.name == name) else {
        return Some(format!("{whose} reads {name}, which the code does not write"));
    };
    let names: BTreeSet<&str> = dimensions.keys().map(String::as_str).collect();
    let expected: Vec<&str> = metric.dimension.into_iter().collect();
    if names != expected.iter().copied().collect() {
        return Some(format!("{whose} reads {name} by {names:?}; the code writes it by {expected:?}"));
    }
    match dimensions.get("Pass") {
        Some(Some(pass)) if !PASSES.contains(&pass.trim_matches('"')) => {
            Some(format!("{whose} reads {name} for pass {pass}, which is not one of {PASSES:?}"))
        }
        _ => None,
    }
}

/// Problems with the variant failure alarm and with every alarm series in the code's namespace.
fn own_metric_problems(template: &Value) -> Vec<String> {
    let namespace = json!(metrics_namespace(template));
    let mut problems = Vec::new();
    for (alarm, p) in alarms(template) {
        for (ns, name, dims) in alarm_series(p) {
            let resolved = ns.get("Fn::Sub").and_then(Value::as_str).map(substituted).map(Value::from);
            if resolved.as_ref().unwrap_or(&ns) != &namespace {
                continue;
            }
            let dims = dims.into_iter().map(|(k, v)| (k, Some(v))).collect();
            problems.extend(own_series_problem(alarm, &name, &dims));
        }
    }
    // The variant failure alarm: failures over failures and passes, of both passes.
    let alarm = &template["Resources"]["VariantFailureRateAlarm"]["Properties"];
    let mut read = BTreeSet::new();
    for (ns, name, dims) in alarm_series(alarm) {
        let resolved = ns.get("Fn::Sub").and_then(Value::as_str).map(substituted);
        if resolved.as_deref() != namespace.as_str() {
            problems.push(format!("VariantFailureRateAlarm reads {name} in {ns}, not in IMGHOST_METRICS_NAMESPACE"));
        }
        let pass = dims.iter().find(|(k, _)| k == "Pass").map(|(_, v)| v.trim_matches('"').to_owned());
        read.insert((name, pass.unwrap_or_default()));
    }
    let expected: BTreeSet<(String, String)> = ["VariantFailures", "VariantPasses"]
        .iter()
        .flat_map(|m| PASSES.map(|pass| (m.to_string(), pass.to_owned())))
        .collect();
    if read != expected {
        problems.push(format!("VariantFailureRateAlarm reads {read:?}, not {expected:?}"));
    }
    let returned: Vec<&Value> =
        alarm["Metrics"].as_array().into_iter().flatten().filter(|m| m["ReturnData"] == true).collect();
    if returned.len() != 1 || !returned[0]["Expression"].as_str().is_some_and(|e| e.contains("100 *")) {
        problems.push("VariantFailureRateAlarm must return one percentage expression".into());
    }
    let settings = (&alarm["Threshold"], &alarm["ComparisonOperator"], &alarm["EvaluationPeriods"]);
    if settings != (&json!(5), &json!("GreaterThanThreshold"), &json!(3))
        || alarm["DatapointsToAlarm"] != 3
        || alarm["TreatMissingData"] != "notBreaching"
    {
        problems.push(format!("VariantFailureRateAlarm must alarm above 5 % in 3 of 3 periods, not {settings:?}"));
    }
    problems
}

#[test]
fn the_alarms_read_only_metrics_the_code_writes() {
    // Given the code's metrics and the alarms that read metrics in its namespace (the variant
    // failure rate among them),
    let template = template();
    // then every metric they read is one the code writes, with the dimensions it writes, and the
    // variant failure rate is over both passes' failures and passes.
    let mut problems = own_metric_problems(&template);
    problems.extend(dashboard_problems(&template).into_iter().filter(|p| p.contains("the code")));
    assert!(problems.is_empty(), "alarms and the code's metrics disagree:\n  {}", problems.join("\n  "));
}

/// The dashboard's body, substituted and parsed, or what is wrong with it.
fn dashboard_body(template: &Value) -> Result<Value, String> {
    let dashboards: Vec<_> = resources(template, &["AWS::CloudWatch::Dashboard"]).collect();
    let [(name, p)] = dashboards.as_slice() else {
        return Err(format!("the template has {} dashboards, not one", dashboards.len()));
    };
    let body = &p["DashboardBody"];
    let (text, variables) = match (body.as_str(), &body["Fn::Sub"]) {
        (Some(text), _) => (text, json!({})),
        (None, Value::String(text)) => (text.as_str(), json!({})),
        (None, Value::Array(form)) => (form[0].as_str().unwrap_or_default(), form[1].clone()),
        _ => return Err(format!("{name}: DashboardBody is neither a string nor a !Sub")),
    };
    // Every name the body substitutes exists: a resource, a parameter, a pseudo parameter or a
    // variable of the !Sub.
    for reference in sub_names(text) {
        let base = reference.split('.').next().unwrap();
        let known = template["Resources"].get(base).is_some()
            || template["Parameters"].get(base).is_some()
            || base.starts_with("AWS::")
            || variables.get(&reference).is_some();
        if !known {
            return Err(format!("{name}: the body substitutes ${{{reference}}}, which the template does not have"));
        }
    }
    serde_json::from_str(&substituted(text)).map_err(|e| format!("{name}: the body is not JSON once substituted: {e}"))
}

/// Problems with the dashboard: its body is not JSON, has no widgets, misses a function or a
/// dead-letter queue, or draws a metric of the code's namespace that the code does not write.
fn dashboard_problems(template: &Value) -> Vec<String> {
    let body = match dashboard_body(template) {
        Ok(body) => body,
        Err(problem) => return vec![problem],
    };
    let mut problems = Vec::new();
    let widgets = body["widgets"].as_array().map(Vec::as_slice).unwrap_or_default();
    if widgets.is_empty() {
        problems.push("the dashboard has no widgets".into());
    }
    let namespace = metrics_namespace(template);
    // Every series of every graph, as (namespace, metric, dimensions), a "." repeating the row
    // above; searches give their schema's dimensions without values.
    let mut series: Vec<(String, String, BTreeMap<String, Option<String>>)> = Vec::new();
    for widget in widgets {
        if widget["type"].as_str().is_none() || !widget["properties"].is_object() {
            problems.push(format!("a widget without a type or properties: {widget}"));
        }
        let mut above: Vec<String> = Vec::new();
        for row in widget["properties"]["metrics"].as_array().into_iter().flatten() {
            if let Some(items) = row.as_array() {
                let mut fields: Vec<String> = items.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect();
                for (i, field) in fields.iter_mut().enumerate() {
                    if field == "." {
                        *field = above.get(i).cloned().unwrap_or_default();
                    }
                }
                above = fields.clone();
                let dims = fields[2..].chunks(2).map(|d| (d[0].clone(), d.get(1).cloned())).collect();
                series.push((fields[0].clone(), fields[1].clone(), dims));
            }
            for item in row.as_array().map(Vec::as_slice).unwrap_or(std::slice::from_ref(row)) {
                let Some(search) = item["expression"].as_str().filter(|e| e.contains("SEARCH(")) else { continue };
                let schema = search.split_once('{').and_then(|(_, s)| s.split_once('}')).map(|(s, _)| s);
                let metric = search.split_once("MetricName=\"").and_then(|(_, s)| s.split_once('"')).map(|(m, _)| m);
                let (Some(schema), Some(metric)) = (schema, metric) else {
                    problems.push(format!("a search without a schema or a metric name: {search}"));
                    continue;
                };
                let mut parts = schema.split(',').map(|s| s.trim().trim_matches('"').to_owned());
                let ns = parts.next().unwrap_or_default();
                series.push((ns, metric.to_owned(), parts.map(|d| (d, None)).collect()));
            }
        }
    }
    for (ns, name, dims) in &series {
        if *ns == namespace {
            problems.extend(own_series_problem("the dashboard", name, dims));
        }
    }
    let shows = |ns: &str, metric: &str, dimension: &str, value: String| {
        series.iter().any(|(n, m, d)| n == ns && m == metric && d.get(dimension) == Some(&Some(value.clone())))
    };
    for (function, _) in resources(template, &["AWS::Serverless::Function", "AWS::Lambda::Function"]) {
        for metric in ["Errors", "Throttles", "Duration"] {
            if !shows("AWS/Lambda", metric, "FunctionName", format!("<{function}>")) {
                problems.push(format!("the dashboard has no {metric} series for {function}"));
            }
        }
    }
    for queue in dead_letter_queues(template) {
        if !shows("AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", format!("<{queue}.QueueName>")) {
            problems.push(format!("the dashboard does not show the depth of {queue}"));
        }
    }
    problems
}

#[test]
fn the_dashboard_body_is_json_that_shows_every_function_and_dead_letter_queue() {
    // Given the dashboard's body with every ${...} replaced by a placeholder,
    let template = template();
    let body = dashboard_body(&template).unwrap_or_else(|problem| panic!("{problem}"));
    // then it is JSON with widgets, and they draw every function's errors, throttles and
    // duration and every dead-letter queue's depth.
    assert!(body["widgets"].as_array().is_some_and(|w| w.len() > 10), "{body}");
    let problems = dashboard_problems(&template);
    assert!(problems.is_empty(), "dashboard:\n  {}", problems.join("\n  "));
}

#[test]
fn the_monitoring_checks_fail_when_the_template_loses_an_alarm_or_a_series() {
    let template = template();
    let edited = |edit: &dyn Fn(&mut Value)| {
        let mut t = template.clone();
        edit(&mut t);
        t
    };
    let remove = |name: &'static str| move |t: &mut Value| drop(t["Resources"].as_object_mut().unwrap().remove(name));
    // Given the template with one alarm taken away, a new dead-letter queue without one, an alarm
    // notifying its topic unconditionally, a misspelt metric, or a dashboard that lost a function
    // or its JSON,
    let no_dead_letter_alarm = edited(&remove("ResizeFailureQueueAlarm"));
    let new_dead_letter_queue = edited(&|t| {
        let resources = t["Resources"].as_object_mut().unwrap();
        resources.insert("ExtraDeadLetterQueue".into(), json!({"Type": "AWS::SQS::Queue", "Properties": {}}));
        resources.insert(
            "ExtraQueue".into(),
            json!({"Type": "AWS::SQS::Queue", "Properties": {"RedrivePolicy": {
                "deadLetterTargetArn": {"Fn::GetAtt": ["ExtraDeadLetterQueue", "Arn"]}, "maxReceiveCount": 5}}}),
        );
    });
    let no_throttles_alarm = edited(&remove("WebFunctionThrottlesAlarm"));
    let unconditional = edited(&|t| {
        t["Resources"]["UploadFunctionErrorsAlarm"]["Properties"]["AlarmActions"] = json!([{"Ref": "AlarmTopicArn"}])
    });
    let misspelt = edited(&|t| {
        t["Resources"]["VariantFailureRateAlarm"]["Properties"]["Metrics"][0]["MetricStat"]["Metric"]["MetricName"] =
            json!("VariantFailure")
    });
    fn dashboard(t: &mut Value) -> &mut Value {
        let name = resources(t, &["AWS::CloudWatch::Dashboard"]).next().unwrap().0.to_owned();
        &mut t["Resources"][name]["Properties"]["DashboardBody"]["Fn::Sub"]
    }
    let no_loader = edited(&|t| {
        let body = dashboard(t);
        *body = json!(body.as_str().unwrap().replace("${KeepaliveLoaderFunction}", "loader"))
    });
    let unknown_series = edited(&|t| {
        let body = dashboard(t);
        let text = body.as_str().unwrap().replace(r#""Duplicates""#, r#""Duplicate""#);
        *body = json!(text.replace(r#"MetricName=\"Uploads\""#, r#"MetricName=\"Upload\""#))
    });
    let not_json = edited(&|t| {
        let body = dashboard(t);
        *body = json!(body.as_str().unwrap().trim_end().trim_end_matches('}'))
    });
    // then each check names what was lost.
    let lost = dead_letter_problems(&no_dead_letter_alarm);
    assert!(lost.iter().any(|p| p.contains("ResizeFailureQueue")), "{lost:?}");
    assert!(dead_letter_queues(&new_dead_letter_queue).contains("ExtraDeadLetterQueue"));
    let new = dead_letter_problems(&new_dead_letter_queue);
    assert!(new.iter().any(|p| p.contains("ExtraDeadLetterQueue")) && new.len() == 1, "{new:?}");
    let throttles = function_alarm_problems(&no_throttles_alarm);
    assert_eq!(throttles, ["WebFunction has no Throttles alarm"]);
    let actions = alarm_action_problems(&unconditional);
    assert!(actions.iter().any(|p| p.contains("UploadFunctionErrorsAlarm: AlarmActions")), "{actions:?}");
    let metrics = own_metric_problems(&misspelt);
    assert!(metrics.iter().any(|p| p.contains("reads VariantFailure, which the code does not write")), "{metrics:?}");
    let loader = dashboard_problems(&no_loader);
    assert!(loader.iter().any(|p| p.contains("no Errors series for KeepaliveLoaderFunction")), "{loader:?}");
    let unknown = dashboard_problems(&unknown_series);
    for metric in ["Duplicate", "Upload"] {
        let problem = format!("the dashboard reads {metric}, which the code does not write");
        assert!(unknown.contains(&problem), "{unknown:?}");
    }
    let json = dashboard_problems(&not_json);
    assert!(json.iter().any(|p| p.contains("not JSON")), "{json:?}");
}
