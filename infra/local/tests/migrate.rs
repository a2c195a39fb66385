//! `imghost migrate` both ways, against moto: a data directory holding every kind of item goes
//! to AWS (with a kill in the middle and a resume), then back to a new data directory; each
//! time the server on the copy answers what the original server answered.

mod common;
#[path = "../../../shared/tests/support/mod.rs"]
mod support;

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::origin::Origin;
use common::{ADMIN_TOKEN, Server, photos_dir};
use imghost::fetch::Fetcher;
use imghost::store::aws::{DynamoTable, S3Objects, provision};
use imghost::store::{ListObjects, Objects, ScanTable};
use imghost_local::front::Limits;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const VARIANT_TIMEOUT: Duration = Duration::from_secs(120);

/// What a client sees of a deployment: every answer the test compares, keyed by request.
struct Seen {
    image_ids: Vec<String>,
    job_url: String,
    keepalive_id: String,
    account_key: String,
}

/// Gives a fresh local server one of everything: hosted images with variants, an upload
/// through a link, an import job, a keep-alive entry, an account with a purchase and a charge.
async fn populate(server: &Server, origin: &Origin) -> Seen {
    let mut image_ids = Vec::new();
    for name in ["no-exif.jpg", "cameras/Canon_40D.jpg", "cameras/Nikon_D70.jpg"] {
        let bytes = std::fs::read(photos_dir().join(name)).unwrap();
        let (status, body) = server.upload_raw(bytes, "image/jpeg").await;
        assert_eq!(status, 201, "{name}: {body}");
        image_ids.push(body["id"].as_str().unwrap().to_owned());
    }

    let (status, link) = server.admin_post_json("/v1/links", &json!({"expires_in": 3600, "max_uploads": 3})).await;
    assert_eq!(status, 201, "{link}");
    let bytes = std::fs::read(photos_dir().join("cameras/Kodak_CX7530.jpg")).unwrap();
    let form =
        reqwest::multipart::Form::new().part("file", reqwest::multipart::Part::bytes(bytes).file_name("kodak.jpg"));
    let resp = server.client.post(link["upload_url"].as_str().unwrap()).multipart(form).send().await.unwrap();
    let linked: Value = resp.json().await.unwrap();
    image_ids.push(linked["images"][0]["id"].as_str().unwrap_or_else(|| panic!("{linked}")).to_owned());

    let resp = server
        .client
        .post(server.url("/v1/imports"))
        .json(&json!({"urls": [origin.url("/photos/cameras/Panasonic_DMC-FZ30.jpg")]}))
        .send()
        .await
        .unwrap();
    let job: Value = resp.json().await.unwrap();
    let job_url = job["status_url"].as_str().unwrap_or_else(|| panic!("{job}")).to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let imported = loop {
        let body: Value = server.client.get(&job_url).send().await.unwrap().json().await.unwrap();
        if body["finished_at"].is_string() {
            break body;
        }
        assert!(tokio::time::Instant::now() < deadline, "import never finished: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    image_ids.push(imported["items"][0]["image"]["id"].as_str().unwrap_or_else(|| panic!("{imported}")).to_owned());

    let resp = server.client.post(server.url("/v1/keepalive")).json(&json!({"url": "https://i.imgur.com/AbC12xY.jpg"}));
    let entry: Value = resp.send().await.unwrap().json().await.unwrap();
    let keepalive_id = entry["id"].as_str().unwrap_or_else(|| panic!("{entry}")).to_owned();

    let (status, account) = server.admin_post_json("/v1/accounts", &json!({"name": "fan"})).await;
    assert_eq!(status, 201, "{account}");
    let account_id = account["account_id"].as_str().unwrap();
    let resp = server
        .client
        .post(server.url(&format!("/v1/accounts/{account_id}/tokens")))
        .bearer_auth(ADMIN_TOKEN)
        .header("idempotency-key", "purchase-1")
        .json(&json!({"amount": 5}));
    let bought = resp.send().await.unwrap();
    assert!(bought.status().is_success(), "{}", bought.text().await.unwrap());
    let account_key = account["api_key"].as_str().unwrap().to_owned();
    let resp = server.client.get(server.url("/v1/memes?lat=1&lon=2&query=x")).bearer_auth(&account_key);
    assert_eq!(resp.send().await.unwrap().status(), 200);

    for id in &image_ids {
        server.wait_for_variants(id, VARIANT_TIMEOUT).await;
    }
    // And the AVIF passes that follow the variants, so that what is read now is what is copied.
    server.wait_until_idle().await;
    Seen { image_ids, job_url: job_url.replace(&server.base, ""), keepalive_id, account_key }
}

/// Everything a client reads back, with the server's own address taken out of links and the
/// bytes of each original and variant as digests.
async fn answers(base: &str, seen: &Seen) -> Value {
    let client = reqwest::Client::new();
    let get = |path: String, bearer: Option<&str>| {
        let mut req = client.get(format!("{base}{path}"));
        if let Some(b) = bearer {
            req = req.bearer_auth(b);
        }
        async move {
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap();
            let body: Value = serde_json::from_str(&text.replace(base, "BASE")).unwrap_or(Value::String(text));
            json!({"status": status, "body": body})
        }
    };
    let digest = |url: String| {
        let client = client.clone();
        async move {
            let resp = client.get(url).send().await.unwrap();
            let status = resp.status().as_u16();
            format!("{status} {}", hex::encode(Sha256::digest(resp.bytes().await.unwrap())))
        }
    };
    let mut out = serde_json::Map::new();
    for id in &seen.image_ids {
        out.insert(format!("image {id}"), get(format!("/v1/images/{id}"), None).await);
        for size in ["", "?size=small", "?size=medium", "?size=large"] {
            out.insert(format!("bytes {id}{size}"), json!(digest(format!("{base}/i/{id}.jpg{size}")).await));
        }
    }
    out.insert("stats".into(), get("/v1/stats".into(), Some(ADMIN_TOKEN)).await);
    out.insert("balance".into(), get("/v1/balance".into(), Some(&seen.account_key)).await);
    out.insert("links".into(), get("/v1/links".into(), Some(ADMIN_TOKEN)).await);
    out.insert("images".into(), get("/v1/images".into(), Some(ADMIN_TOKEN)).await);
    out.insert("job".into(), get(seen.job_url.clone(), None).await);
    let mut entry = get(format!("/v1/keepalive/{}", seen.keepalive_id), None).await;
    let mut list = get("/v1/keepalive".into(), Some(ADMIN_TOKEN)).await;
    // A local server sweeps due keep-alive entries when it starts, and the copied entry is due:
    // its schedule moves on by itself. What the entry is (its id, URL and creation) must not.
    for e in std::iter::once(&mut entry["body"]).chain(list["body"]["entries"].as_array_mut().unwrap()) {
        for field in ["status", "loads", "history", "last_loaded_at", "next_load_at"] {
            e[field] = json!("SCHEDULE");
        }
    }
    out.insert("keepalive".into(), entry);
    out.insert("keepalive list".into(), list);
    Value::Object(out)
}

/// Serves the routers the Lambdas run over the AWS family on moto, as the local runner serves
/// them over the embedded one.
async fn aws_server(bucket: &str, table: &str) -> (String, tokio::task::JoinHandle<()>) {
    let moto = support::moto();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = imghost::App::builder(
        std::sync::Arc::new(DynamoTable::new(moto.dynamodb(), table.to_owned())),
        std::sync::Arc::new(S3Objects::new(moto.s3(), bucket.to_owned())),
    )
    .public_url(Some(base.clone()))
    .admin(imghost::state::AdminSecret::from_token(Some(ADMIN_TOKEN)))
    .build();
    let router = imghost_local::router(&app, imghost::http::web::Assets::Embedded);
    let server = tokio::spawn(async move {
        imghost_local::front::serve(listener, router, Limits::default(), std::future::pending()).await.unwrap();
    });
    (base, server)
}

/// `imghost migrate ...` with moto's test credentials.
fn migrate(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_imghost"));
    cmd.arg("migrate")
        .args(args)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_PROFILE")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn succeeded(out: Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "migrate failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

/// The figures of one line of the report, e.g. `objects: 20 in the source, 20 copied, ...`.
fn tally(report: &str, what: &str) -> Vec<u64> {
    let line = report.lines().find(|l| l.starts_with(&format!("{what}:"))).unwrap_or_else(|| panic!("{report}"));
    line.split(|c: char| !c.is_ascii_digit()).filter(|s| !s.is_empty()).map(|n| n.parse().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_directory_moves_to_aws_and_back_and_answers_the_same() {
    // Given a local deployment holding one of everything, and what its server answers.
    let origin = Origin::start(photos_dir()).await;
    let server = Server::start_with(Fetcher::allowing(vec![origin.addr])).await;
    let seen = populate(&server, &origin).await;
    let before = answers(&server.base, &seen).await;
    let data_dir = server.data.path().to_str().unwrap().to_owned();
    // The server stops once its queues are empty (its directory stays until the test ends).
    let data_guard = server.stop_when_idle().await;

    // And an empty bucket and table in moto.
    let moto = support::moto();
    let (bucket, table) = (support::unique("migrate"), support::unique("migrate"));
    provision::ensure_bucket(&moto.s3(), &bucket).await.unwrap();
    provision::ensure_table(&moto.dynamodb(), &table).await.unwrap();
    let endpoint = moto.endpoint();
    let to_aws = ["--from", &data_dir, "--to", "aws", "--bucket", &bucket, "--table", &table, "--endpoint", &endpoint];
    let objects_in_bucket =
        || async { S3Objects::new(moto.s3(), bucket.clone()).list(None, 10_000).await.unwrap().len() };

    // When a first run, slowed to 20 writes a second, is killed once some objects are across.
    let mut first = migrate(&[&to_aws[..], &["--rate", "20"]].concat()).spawn().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while objects_in_bucket().await < 5 {
        assert!(first.try_wait().unwrap().is_none(), "the paced run ended before it could be killed");
        assert!(tokio::time::Instant::now() < deadline, "nothing was copied");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.kill().unwrap();
    first.wait().unwrap();
    let partial = objects_in_bucket().await;

    // Then a second run resumes: it copies only the rest, and its count check passes.
    let report = succeeded(migrate(&to_aws).output().unwrap());
    let objects = tally(&report, "objects");
    let (source, copied, present) = (objects[0], objects[1], objects[2]);
    assert!(partial > 0 && partial < source as usize, "the kill left {partial} of {source} objects");
    assert_eq!((copied + present, present as usize), (source, partial), "{report}");
    assert!(report.contains("count check passed"), "{report}");
    let items = tally(&report, "items");
    assert!(items[0] >= 20, "every kind of item is there: {report}");

    // And a third run finds nothing new to copy.
    let report = succeeded(migrate(&to_aws).output().unwrap());
    assert_eq!(tally(&report, "objects")[1], 0, "{report}");
    assert_eq!(tally(&report, "items")[1], 0, "{report}");

    // And the AWS family, serving the same routers, answers exactly what the local server did.
    let (base, aws) = aws_server(&bucket, &table).await;
    let on_aws = answers(&base, &seen).await;
    aws.abort();
    assert_eq!(on_aws, before);

    // When AWS is copied back into a new data directory.
    let back = tempfile::tempdir().unwrap();
    let back_str = back.path().to_str().unwrap().to_owned();
    let from_aws =
        ["--from", "aws", "--to", &back_str, "--bucket", &bucket, "--table", &table, "--endpoint", &endpoint];
    let report = succeeded(migrate(&from_aws).output().unwrap());
    assert_eq!(tally(&report, "items")[0], items[0], "{report}");

    // Then a local server on it answers the same again.
    let server = Server::start_in(back, Fetcher::public(), Limits::default()).await;
    let on_local = answers(&server.base, &seen).await;
    assert_eq!(on_local, before);
    drop(data_guard);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_holding_other_data_is_refused_unless_merging() {
    // Given a data directory with one image, and a bucket that already holds an object.
    let server = Server::start().await;
    let bytes = std::fs::read(photos_dir().join("no-exif.jpg")).unwrap();
    let (status, body) = server.upload_raw(bytes, "image/jpeg").await;
    assert_eq!(status, 201, "{body}");
    server.wait_for_variants(body["id"].as_str().unwrap(), VARIANT_TIMEOUT).await;
    let data_dir = server.data.path().to_str().unwrap().to_owned();
    let _data = server.stop_when_idle().await;
    let moto = support::moto();
    let (bucket, table) = (support::unique("merge"), support::unique("merge"));
    provision::ensure_bucket(&moto.s3(), &bucket).await.unwrap();
    provision::ensure_table(&moto.dynamodb(), &table).await.unwrap();
    let theirs = S3Objects::new(moto.s3(), bucket.clone());
    Objects::put(&theirs, "theirs/file.txt", bytes::Bytes::from_static(b"x"), "text/plain").await.unwrap();
    let endpoint = moto.endpoint();
    let args = ["--from", &data_dir, "--to", "aws", "--bucket", &bucket, "--table", &table, "--endpoint", &endpoint];

    // When migrating without --merge, then it is refused and nothing is written.
    let out = migrate(&args).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--merge"), "{}", String::from_utf8_lossy(&out.stderr));
    let dynamo = DynamoTable::new(moto.dynamodb(), table.clone());
    assert!(dynamo.scan(None, 10).await.unwrap().0.is_empty());
    assert_eq!(theirs.list(None, 10).await.unwrap(), vec!["theirs/file.txt"]);

    // When merging, then everything is copied beside what was there, which stays.
    let report = succeeded(migrate(&[&args[..], &["--merge"]].concat()).output().unwrap());
    let objects = tally(&report, "objects");
    assert_eq!((objects[1], objects[5]), (objects[0], objects[0] + 1), "{report}");
    assert!(theirs.exists("theirs/file.txt").await.unwrap());

    // When copying back into a folder that holds other files, then that is refused too.
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(folder.path().join("notes.txt"), b"mine").unwrap();
    let folder_str = folder.path().to_str().unwrap();
    let back = ["--from", "aws", "--to", folder_str, "--bucket", &bucket, "--table", &table, "--endpoint", &endpoint];
    let out = migrate(&back).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("holds other files"));
    assert_eq!(std::fs::read_dir(folder.path()).unwrap().count(), 1, "nothing was written beside the file");
}
