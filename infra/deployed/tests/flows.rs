//! Every flow of the service through the deployed shape: each function's real binary as its own
//! process under the Runtime API emulator, with the template's environment and IAM policies,
//! against moto with IAM enforcement on. The harness plays API Gateway, the bucket notification,
//! the SQS event source mapping and the schedule, as AWS would.
//!
//! One stack and one set of processes for the whole file: the flows run one after the other in
//! one test, and the statistics at the end count what they all did.

mod common;

use common::{assert_template_environment, ok, photo};
use imghost_deployed::{HttpRequest, Lambda, Stack, print_timings};
use serde_json::{Value, json};

/// The functions, one process each (two for memes).
struct Functions {
    upload: Lambda,
    images: Lambda,
    resize: Lambda,
    avif: Lambda,
    imports: Lambda,
    import_worker: Lambda,
    keepalive: Lambda,
    sweep: Lambda,
    loader: Lambda,
    accounts: Lambda,
    memes_a: Lambda,
    memes_b: Lambda,
    stats: Lambda,
    links: Lambda,
    web: Lambda,
}

impl Functions {
    /// Starts every function of the template, one at a time so that each init is measured alone.
    async fn start(stack: &Stack) -> Functions {
        let mut started = Vec::new();
        for id in [
            "UploadFunction",
            "ImagesFunction",
            "ResizeFunction",
            "AvifFunction",
            "ImportsFunction",
            "ImportWorkerFunction",
            "KeepaliveFunction",
            "KeepaliveSweepFunction",
            "KeepaliveLoaderFunction",
            "AccountsFunction",
            "MemesFunction",
            "MemesFunction",
            "StatsFunction",
            "LinksFunction",
            "WebFunction",
        ] {
            let lambda = stack.spawn(id).await;
            lambda.ready().await.unwrap_or_else(|e| panic!("{e}"));
            assert_template_environment(&lambda);
            started.push(lambda);
        }
        let covered: std::collections::BTreeSet<&str> = started.iter().map(|l| l.logical_id.as_str()).collect();
        let all: std::collections::BTreeSet<&str> = stack.facts.functions.keys().map(String::as_str).collect();
        assert_eq!(covered, all, "every function of the template runs here");
        let mut it = started.into_iter();
        let mut next = || it.next().expect("a function");
        Functions {
            upload: next(),
            images: next(),
            resize: next(),
            avif: next(),
            imports: next(),
            import_worker: next(),
            keepalive: next(),
            sweep: next(),
            loader: next(),
            accounts: next(),
            memes_a: next(),
            memes_b: next(),
            stats: next(),
            links: next(),
            web: next(),
        }
    }

    fn all(&self) -> Vec<&Lambda> {
        vec![
            &self.upload,
            &self.images,
            &self.resize,
            &self.avif,
            &self.imports,
            &self.import_worker,
            &self.keepalive,
            &self.sweep,
            &self.loader,
            &self.accounts,
            &self.memes_a,
            &self.memes_b,
            &self.stats,
            &self.links,
            &self.web,
        ]
    }
}

/// What the flows stored, for the statistics at the end.
#[derive(Default)]
struct Stored {
    images: Vec<Value>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_flow_runs_through_the_deployed_functions() {
    let started = std::time::Instant::now();
    let stack = Stack::start().await;
    let f = Functions::start(&stack).await;
    let mut stored = Stored::default();

    upload_resize_and_serve(&stack, &f, &mut stored).await;
    presigned_upload_through_the_bucket(&stack, &f, &mut stored).await;
    imports_refuse_a_private_address_and_count_a_redelivery_once(&stack, &f).await;
    keepalive_sweeps_and_loads_without_a_request_to_imgur(&stack, &f).await;
    let account = tokens_are_never_overspent_by_two_processes(&stack, &f).await;
    an_image_meme_is_drawn_over_a_variant_and_hosted(&stack, &f, &account, &mut stored).await;
    pages_and_admin_routes_answer(&stack, &f, &stored).await;
    stats_count_what_the_flows_did(&stack, &f, &stored).await;
    request_ids_and_metrics_reach_the_logs(&stack, &f).await;

    print_timings(&f.all());
    eprintln!("[deployed] flows done in {:.1} s", started.elapsed().as_secs_f64());
}

async fn upload_resize_and_serve(stack: &Stack, f: &Functions, stored: &mut Stored) {
    // Given a real camera photo,
    let bytes = photo("cameras/canon-ixus.jpg");

    // when a client uploads it through the distribution (binary body, base64 in the event,
    // and the viewer's host as X-Forwarded-Host, as cdn/api.js sets it),
    let edge_host = stack.cdn_url.trim_start_matches("https://");
    let request = HttpRequest::post("/v1/images").header("x-forwarded-host", edge_host).body("image/jpeg", bytes);
    let r = ok(f.upload.http(request).await);

    // then it is created with its camera and pending variants, and its original is in the bucket,
    assert_eq!(r.status, 201, "{}", r.text());
    let image = r.json();
    let id = image["id"].as_str().expect("an image id").to_owned();
    assert_eq!((image["format"].as_str(), image["camera_model"].as_str()), (Some("jpeg"), Some("Canon DIGITAL IXUS")));
    assert_eq!(
        image["link"].as_str(),
        Some(format!("{}/i/{id}.jpg", stack.cdn_url).as_str()),
        "links name the distribution's domain: {image}"
    );
    for size in ["small", "medium", "large"] {
        assert_eq!(image["variants"][size]["status"], "pending", "{image}");
        let url = image["variants"][size]["url"].as_str().unwrap_or_default();
        assert!(url.starts_with(&format!("{}/i/{id}?size=", stack.cdn_url)), "{image}");
    }
    let original = format!("originals/{id}");
    assert!(stack.object_exists(&original).await, "{original} is stored");
    assert!(variant_keys(stack, &id).await.is_empty());

    // and until its variants are made, the edge answers a variant's URL with the original.
    let viewed = stack.view(&format!("/i/{id}?size=small")).await;
    assert_eq!((viewed.status, viewed.key.as_deref()), (200, Some(original.as_str())));

    // When S3 notifies resize of the new original,
    let answer = stack.notify(&f.resize, &original, "ObjectCreated:Put").await;

    // then the variants are in the bucket, each size as JPEG and as WebP (which also stands
    // under the AVIF key until the later pass), and images says every variant is ready.
    answer.unwrap_or_else(|e| panic!("{e}"));
    let keys: Vec<String> = ["large", "medium", "small"]
        .into_iter()
        .flat_map(|s| {
            [format!("variants/{s}-avif/{id}"), format!("variants/{s}-webp/{id}"), format!("variants/{s}/{id}")]
        })
        .collect();
    assert_eq!(variant_keys(stack, &id).await, keys, "one object per variant and format");
    let view = ok(f.images.http(HttpRequest::get(&format!("/v1/images/{id}"))).await);
    assert_eq!(view.status, 200, "{}", view.text());
    let view = view.json();
    for size in ["small", "medium", "large"] {
        assert_eq!(view["variants"][size]["status"], "ready", "{view}");
    }
    assert_eq!(view["variants"]["small"]["width"], 320, "{view}");

    // And the distribution serves its link and each variant's URL from the bucket: the
    // original's bytes, then each variant's, with their content type,
    let link = format!("/i/{id}.jpg");
    let viewed = stack.view(&link).await;
    assert_eq!((viewed.status, viewed.key.as_deref()), (200, Some(original.as_str())), "{link}");
    assert_eq!(viewed.content_type.as_deref(), Some("image/jpeg"));
    let stored_original = viewed.body;
    for size in ["small", "medium", "large"] {
        let url = view["variants"][size]["url"].as_str().unwrap().replace(&stack.cdn_url, "");
        let viewed = stack.view(&url).await;
        let key = format!("variants/{size}/{id}");
        assert_eq!((viewed.status, viewed.key.as_deref()), (200, Some(key.as_str())), "{url}");
        assert_eq!(viewed.content_type.as_deref(), Some("image/jpeg"));
        assert!(viewed.body.starts_with(&[0xFF, 0xD8]) && viewed.body.len() < stored_original.len(), "{url}");
        // and the WebP one where the URL asks for it (a browser's Accept does the same at the
        // edge, tested in cdn/).
        let url = format!("/i/{id}.webp?size={size}");
        let viewed = stack.view(&url).await;
        let key = format!("variants/{size}-webp/{id}");
        assert_eq!((viewed.status, viewed.key.as_deref()), (200, Some(key.as_str())), "{url}");
        assert_eq!(viewed.content_type.as_deref(), Some("image/webp"));
        assert!(viewed.body.starts_with(b"RIFF") && &viewed.body[8..12] == b"WEBP", "{url}");
    }
    // while the API has no route there: an image view never reaches a function.
    let r = ok(f.images.http(HttpRequest::get(&link)).await);
    assert_eq!(r.status, 404);

    // Until the AVIF pass has run, an AVIF URL gets the WebP variant from the AVIF key.
    let viewed = stack.view(&format!("/i/{id}.avif?size=small")).await;
    let key = format!("variants/small-avif/{id}");
    assert_eq!((viewed.status, viewed.key.as_deref()), (200, Some(key.as_str())));
    assert_eq!(viewed.content_type.as_deref(), Some("image/webp"));
    // When the resize worker's message on the AVIF queue is delivered to the AVIF function,
    let (queue, source) = stack.sqs_source(&f.avif);
    assert_eq!(f.resize.facts.environment.get("IMGHOST_AVIF_QUEUE_URL"), Some(&queue.url));
    assert_eq!(source.partial_batches, Some(true));
    let polled = stack.poll(&f.avif).await.expect("resize queued the AVIF pass");
    let body: Value = serde_json::from_str(&polled.messages[0].body).expect("a JSON message");
    assert_eq!(body, json!({"image": id}));
    polled.result.as_ref().unwrap_or_else(|e| panic!("{e}"));
    assert!(polled.failed.is_empty(), "{:?}", polled.result);
    // then the AVIF keys hold AVIF, the edge serves it, and images lists it for every size.
    assert_eq!(variant_keys(stack, &id).await, keys, "the AVIF variants replaced the stand-ins");
    for size in ["small", "medium", "large"] {
        let url = format!("/i/{id}.avif?size={size}");
        let viewed = stack.view(&url).await;
        assert_eq!(viewed.status, 200, "{url}");
        assert_eq!(viewed.content_type.as_deref(), Some("image/avif"), "{url}");
        assert_eq!(viewed.body.get(4..12), Some(&b"ftypavif"[..]), "{url}");
    }
    let view = ok(f.images.http(HttpRequest::get(&format!("/v1/images/{id}"))).await).json();
    for size in ["small", "medium", "large"] {
        let formats: Vec<&str> =
            view["variants"][size]["formats"].as_array().unwrap().iter().filter_map(|f| f["format"].as_str()).collect();
        assert_eq!(formats, ["jpeg", "webp", "avif"], "{view}");
    }
    print_view_duration(f, &id).await;
    stored.images.push(view);
}

/// What a view cost in Lambda time when every view ran the images function (one GetItem and a
/// small answer, as `GET /v1/images/{id}` still is): warm invocations as the harness sees them,
/// for `docs/costs.md`. A figure, not a check.
async fn print_view_duration(f: &Functions, id: &str) {
    let mut ms = Vec::new();
    for _ in 0..50 {
        let started = std::time::Instant::now();
        let r = ok(f.images.http(HttpRequest::get(&format!("/v1/images/{id}"))).await);
        ms.push(started.elapsed().as_secs_f64() * 1e3);
        assert_eq!(r.status, 200);
    }
    ms.sort_by(f64::total_cmp);
    eprintln!(
        "[deployed] images GET /v1/images/{{id}}, 50 warm invocations: median {:.1} ms, p90 {:.1} ms, max {:.1} ms",
        ms[25], ms[45], ms[49]
    );
}

/// The keys of the variants of image `id`, sorted.
async fn variant_keys(stack: &Stack, id: &str) -> Vec<String> {
    let mut keys: Vec<String> =
        stack.keys("variants/").await.into_iter().filter(|k| k.ends_with(&format!("/{id}"))).collect();
    keys.sort();
    keys
}

async fn presigned_upload_through_the_bucket(stack: &Stack, f: &Functions, stored: &mut Stored) {
    // Given a form for a large upload, handed out by upload and signed with its credentials,
    let bytes = photo("cameras/nikon-e950.jpg");
    let r = ok(f
        .upload
        .http(HttpRequest::post("/v1/uploads").json(&json!({"bytes": bytes.len(), "filename": "e950.jpg"})))
        .await);
    assert_eq!(r.status, 201, "{}", r.text());
    let created = r.json();
    let upload_id = created["upload_id"].as_str().expect("an upload id").to_owned();
    let form = created["form"].clone();
    assert_eq!(form["url"], format!("{}/{}", stack.endpoint, stack.bucket), "the form posts to the bucket: {form}");
    assert_eq!(form["fields"]["key"], format!("incoming/{upload_id}"));

    // when a form whose key was changed is posted, S3 refuses it (the policy names the key),
    let mut tampered = form.clone();
    tampered["fields"]["key"] = json!("incoming/somewhere-else");
    let (status, text) = stack.post_form(&tampered, bytes.clone(), "image/jpeg").await;
    assert_eq!(status, 403, "{text}");
    assert!(!stack.object_exists("incoming/somewhere-else").await);

    // and when the browser posts the form as given, the file lands under incoming/.
    let (status, text) = stack.post_form(&form, bytes, "image/jpeg").await;
    assert!(matches!(status, 200 | 201 | 204), "moto answered {status}: {text}");
    let incoming = format!("incoming/{upload_id}");
    assert!(stack.object_exists(&incoming).await, "{incoming} is stored");
    let status = ok(f.upload.http(HttpRequest::get(&format!("/v1/uploads/{upload_id}"))).await).json();
    assert_eq!(status["status"], "waiting", "{status}");

    // When S3 notifies resize of the incoming object (a form upload is an ObjectCreated:Post),
    stack.notify(&f.resize, &incoming, "ObjectCreated:Post").await.unwrap_or_else(|e| panic!("{e}"));

    // then the upload is done with its image, and the incoming object is gone.
    let r = ok(f.upload.http(HttpRequest::get(&format!("/v1/uploads/{upload_id}"))).await);
    assert_eq!(r.status, 200, "{}", r.text());
    let status = r.json();
    assert_eq!((status["status"].as_str(), status["duplicate"].as_bool()), (Some("done"), Some(false)), "{status}");
    let id = status["image"]["id"].as_str().expect("the upload's image").to_owned();
    assert_eq!(status["image"]["camera_model"], "E950");
    assert!(!stack.object_exists(&incoming).await, "the ingested object is deleted");

    // And the original the ingest stored notifies resize in turn, which makes its variants.
    let original = format!("originals/{id}");
    assert!(stack.object_exists(&original).await);
    stack.notify(&f.resize, &original, "ObjectCreated:Put").await.unwrap_or_else(|e| panic!("{e}"));
    let view = ok(f.images.http(HttpRequest::get(&format!("/v1/images/{id}"))).await).json();
    for size in ["small", "medium", "large"] {
        assert_eq!(view["variants"][size]["status"], "ready", "{view}");
    }
    stored.images.push(view);
}

async fn imports_refuse_a_private_address_and_count_a_redelivery_once(stack: &Stack, f: &Functions) {
    // Given an import job of one URL the worker must refuse (a loopback address: the binaries
    // fetch public addresses only, so nothing is ever connected to),
    let r =
        ok(f.imports.http(HttpRequest::post("/v1/imports").json(&json!({"urls": ["http://127.0.0.1:9/x.png"]}))).await);
    assert_eq!(r.status, 202, "{}", r.text());
    let job = r.json()["job_id"].as_str().expect("a job id").to_owned();

    // whose message imports sent to the real import queue,
    let (queue, source) = stack.sqs_source(&f.import_worker);
    assert_eq!(f.imports.facts.environment.get("IMGHOST_IMPORT_QUEUE_URL"), Some(&queue.url));
    assert_eq!(source.partial_batches, Some(true));
    let first = stack.receive(queue, 10).await;
    assert_eq!(first.len(), 1, "one message per URL");
    assert_eq!(first[0].receive_count(), 1);
    let body: Value = serde_json::from_str(&first[0].body).expect("a JSON message");
    assert_eq!(body, json!({"job": job, "item": 0}));

    // when the event source mapping hands it to the worker,
    let answer = f.import_worker.invoke(stack.sqs_event(queue, &first)).await.unwrap_or_else(|e| panic!("{e}"));

    // then the worker answers a partial batch response with no failure (the URL failed for good),
    assert_eq!(answer["batchItemFailures"], json!([]), "{answer}");

    // and when the mapping's delete is lost, SQS delivers the message again,
    stack.release(queue, &first).await;
    let again = stack.receive(queue, 10).await;
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].message_id.as_str(), again[0].receive_count()), (first[0].message_id.as_str(), 2));
    let polled = stack.deliver(&f.import_worker, again).await;

    // which is acknowledged without counting the URL twice.
    polled.result.as_ref().unwrap_or_else(|e| panic!("{e}"));
    assert!(polled.failed.is_empty(), "{:?}", polled.result);
    assert_eq!(stack.depth(queue).await, 0, "the mapping deleted the message");
    let r = ok(f.imports.http(HttpRequest::get(&format!("/v1/imports/{job}"))).await);
    assert_eq!(r.status, 200, "{}", r.text());
    let view = r.json();
    assert_eq!(view["status"], "failed", "{view}");
    assert_eq!(view["counts"], json!({"queued": 0, "running": 0, "done": 0, "failed": 1}), "{view}");
    assert_eq!(view["items"][0]["status"], "failed");
    assert_eq!(view["items"][0]["error"]["code"], "forbidden_address", "{view}");
}

async fn keepalive_sweeps_and_loads_without_a_request_to_imgur(stack: &Stack, f: &Functions) {
    // Given an Imgur URL added for keep-alive (which only stores it; its first load is due at once),
    let r = ok(f
        .keepalive
        .http(HttpRequest::post("/v1/keepalive").json(&json!({"url": "https://i.imgur.com/aBcDeF1.jpg"})))
        .await);
    assert_eq!(r.status, 201, "{}", r.text());
    let entry = r.json();
    let id = entry["id"].as_str().expect("an entry id").to_owned();
    assert_eq!((entry["status"].as_str(), entry["loads"].as_i64()), (Some("waiting"), Some(0)), "{entry}");
    let (queue, _) = stack.sqs_source(&f.loader);
    assert_eq!(f.sweep.facts.environment.get("IMGHOST_KEEPALIVE_QUEUE_URL"), Some(&queue.url));

    // when the hourly schedule runs the sweep,
    let event = stack.scheduled_event(&f.sweep);
    let report = f.sweep.invoke(event).await.unwrap_or_else(|e| panic!("{e}"));

    // then it claims the due entry and queues exactly one load for it on the real queue,
    assert_eq!(report, json!({"examined": 1, "queued": 1}));
    let queued = stack.receive(queue, 10).await;
    assert_eq!(queued.len(), 1);
    let message: Value = serde_json::from_str(&queued[0].body).expect("a JSON message");
    assert_eq!(message["id"], id.as_str(), "{message}");
    let view = ok(f.keepalive.http(HttpRequest::get(&format!("/v1/keepalive/{id}"))).await).json();
    assert_eq!(view["status"], "queued", "{view}");

    // and a second sweep within the claim's lease queues nothing.
    let report = f.sweep.invoke(stack.scheduled_event(&f.sweep)).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report["queued"], 0, "{report}");

    // That load would be a request to Imgur, so no loader gets it: the harness takes it away.
    stack
        .sqs
        .delete_message()
        .queue_url(&queue.url)
        .receipt_handle(&queued[0].receipt_handle)
        .send()
        .await
        .expect("delete the sweep's message");

    // When the loader is handed a message for the entry under a claim it does not hold (a
    // stale delivery),
    let stale = json!({"id": id, "claim": imghost::secret::new_id128()}).to_string();
    stack.send(queue, &stale).await;
    let polled = stack.poll(&f.loader).await.expect("the stale message");

    // then it answers a partial batch response without failures, the message is deleted,
    let answer = polled.result.as_ref().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(answer["batchItemFailures"], json!([]), "{answer}");
    assert_eq!(stack.depth(queue).await, 0);

    // and it made no request: the entry has no load, no history, and is still under its claim.
    let view = ok(f.keepalive.http(HttpRequest::get(&format!("/v1/keepalive/{id}"))).await).json();
    assert_eq!(view["status"], "queued", "{view}");
    assert_eq!((view["loads"].as_i64(), view["history"].clone()), (Some(0), json!([])), "{view}");
    assert_eq!(view["last_loaded_at"], Value::Null, "{view}");
}

/// An account: its id and API key.
struct Account {
    id: String,
    api_key: String,
}

async fn tokens_are_never_overspent_by_two_processes(stack: &Stack, f: &Functions) -> Account {
    const N: usize = 4;
    // Given an account with N tokens, made and paid for by the admin (whose token accounts
    // reads from SSM on first use),
    let r = ok(f
        .accounts
        .http(HttpRequest::post("/v1/accounts").bearer(&stack.admin_token).json(&json!({"name": "deployed"})))
        .await);
    assert_eq!(r.status, 201, "{}", r.text());
    let denied = ok(f.accounts.http(HttpRequest::post("/v1/accounts").json(&json!({"name": "deployed"}))).await);
    assert_eq!(denied.status, 401, "no account without the admin token: {}", denied.text());
    let created = r.json();
    let (account, api_key) =
        (created["account_id"].as_str().unwrap().to_owned(), created["api_key"].as_str().unwrap().to_owned());
    let buy = HttpRequest::post(&format!("/v1/accounts/{account}/tokens"))
        .bearer(&stack.admin_token)
        .header("idempotency-key", "deployed-purchase-1")
        .json(&json!({"amount": N}));
    for _ in 0..2 {
        // A retried purchase adds its tokens once.
        let r = ok(f.accounts.http(buy.clone()).await);
        assert_eq!((r.status, r.json()["purchased"].as_u64()), (200, Some(N as u64)), "{}", r.text());
    }

    // when 2N text memes are asked for at once, split between two memes processes (half with
    // idempotency keys, which take the token in a transaction),
    let requests = (0..2 * N).map(|i| {
        let lambda = if i % 2 == 0 { &f.memes_a } else { &f.memes_b };
        let mut req = HttpRequest::get("/v1/memes")
            .bearer(&api_key)
            .query("lat", "52.52")
            .query("lon", "13.405")
            .query("query", &format!("deployed {i}"));
        if (i / 2) % 2 == 0 {
            req = req.header("idempotency-key", &format!("deployed-meme-{i}"));
        }
        lambda.http(req)
    });
    let answers: Vec<_> = futures::future::join_all(requests).await.into_iter().map(ok).collect();

    // then exactly N succeed and N are refused with 402,
    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), N, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 402).count(), N, "{statuses:?}");
    for a in answers.iter().filter(|a| a.status == 402) {
        assert_eq!(a.json()["error"]["code"], "tokens_exhausted", "{}", a.text());
    }

    // and the balance shows N used.
    let r = ok(f.accounts.http(HttpRequest::get("/v1/balance").bearer(&api_key)).await);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), json!({"account_id": account, "purchased": N, "used": N, "remaining": 0}));
    Account { id: account, api_key }
}

async fn an_image_meme_is_drawn_over_a_variant_and_hosted(
    stack: &Stack,
    f: &Functions,
    account: &Account,
    stored: &mut Stored,
) {
    // Given one more token and the first photo, whose variants are ready,
    let buy = HttpRequest::post(&format!("/v1/accounts/{}/tokens", account.id))
        .bearer(&stack.admin_token)
        .header("idempotency-key", "deployed-purchase-2")
        .json(&json!({"amount": 1}));
    let r = ok(f.accounts.http(buy).await);
    assert_eq!(r.status, 200, "{}", r.text());
    let background = stored.images[0]["id"].as_str().expect("the first image").to_owned();

    // when an image meme is asked for over it (memes reads its medium variant),
    let r = ok(f
        .memes_a
        .http(
            HttpRequest::get("/v1/memes")
                .bearer(&account.api_key)
                .query("lat", "48.8566")
                .query("lon", "2.3522")
                .query("query", "deployed caption")
                .query("format", "image")
                .query("image", &background),
        )
        .await);

    // then the meme is a PNG hosted like any image: its original is in the bucket,
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    let link = body["meme"].as_str().expect("a link to the meme");
    let file = link.rsplit('/').next().unwrap_or_default();
    let id = file.strip_suffix(".png").unwrap_or_else(|| panic!("a PNG meme: {link}")).to_owned();
    let original = format!("originals/{id}");
    assert!(stack.object_exists(&original).await, "{original} is stored");

    // and its object-created notification makes its variants, as for an upload.
    stack.notify(&f.resize, &original, "ObjectCreated:Put").await.unwrap_or_else(|e| panic!("{e}"));
    let view = ok(f.images.http(HttpRequest::get(&format!("/v1/images/{id}"))).await).json();
    assert_eq!(view["format"], "png", "{view}");
    for size in ["small", "medium", "large"] {
        assert_eq!(view["variants"][size]["status"], "ready", "{view}");
    }
    let r = ok(f.accounts.http(HttpRequest::get("/v1/balance").bearer(&account.api_key)).await);
    assert_eq!((r.json()["used"].as_u64(), r.json()["remaining"].as_u64()), (Some(5), Some(0)), "{}", r.text());
    stored.images.push(view);
}

async fn pages_and_admin_routes_answer(stack: &Stack, f: &Functions, stored: &Stored) {
    // The web function serves its pages,
    let r = ok(f.web.http(HttpRequest::get("/")).await);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.header("content-type").is_some_and(|c| c.starts_with("text/html")), "{:?}", r.headers);
    let r = ok(f.web.http(HttpRequest::get("/v1/sharex.sxcu")).await);
    assert_eq!(r.status, 200, "{}", r.text());
    // and reads an image's item (with the table read policy, nothing more) for the link preview
    // of its page and for oEmbed.
    let image = &stored.images[0];
    let id = image["id"].as_str().unwrap_or_default();
    let r = ok(f.web.http(HttpRequest::get(&format!("/v/{id}"))).await);
    assert_eq!(r.status, 200, "{}", r.text());
    let large = image["variants"]["large"]["url"].as_str().unwrap_or_default();
    assert!(r.text().contains(&format!("<meta property=\"og:image\" content=\"{large}\">")), "{}", r.text());
    let page = image["page"].as_str().unwrap_or_default();
    let r = ok(f.web.http(HttpRequest::get("/oembed").query("url", page)).await);
    assert_eq!((r.status, r.json()["url"].as_str()), (200, Some(large)), "{}", r.text());

    // and links lists invitation links for the admin only.
    let r = ok(f.links.http(HttpRequest::get("/v1/links").bearer(&stack.admin_token)).await);
    assert_eq!(r.status, 200, "{}", r.text());
    let r = ok(f.links.http(HttpRequest::get("/v1/links")).await);
    assert_eq!(r.status, 401, "{}", r.text());

    // The image listing is the admin's too.
    let r = ok(f.images.http(HttpRequest::get("/v1/images").bearer(&stack.admin_token)).await);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["images"].as_array().map(Vec::len), Some(3), "{}", r.text());
}

async fn stats_count_what_the_flows_did(stack: &Stack, f: &Functions, stored: &Stored) {
    // Given what the flows stored (two photos and an image meme; the import failed, text memes
    // store nothing),
    assert_eq!(stored.images.len(), 3);
    let bytes: i64 = stored.images.iter().map(|i| i["bytes"].as_i64().expect("bytes")).sum();

    // when the admin asks stats (reading only, with its read-only table policy),
    let r = ok(f.stats.http(HttpRequest::get("/v1/stats").bearer(&stack.admin_token)).await);
    assert_eq!(r.status, 200, "{}", r.text());
    let stats = r.json();
    let denied = ok(f.stats.http(HttpRequest::get("/v1/stats")).await);
    assert_eq!(denied.status, 401, "{}", denied.text());

    // then the counts are what the flows did.
    assert_eq!(stats["totals"], json!({"images": 3, "uploads": 3, "bytes": bytes, "duplicates": 0}), "{stats}");
    assert_eq!(stats["most_popular_format"], "jpeg", "{stats}");
    let formats: Vec<(String, i64)> = stats["formats"]
        .as_array()
        .expect("formats")
        .iter()
        .map(|c| (c["format"].as_str().unwrap_or_default().to_owned(), c["count"].as_i64().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect();
    assert_eq!(formats, [("jpeg".to_owned(), 2), ("png".to_owned(), 1)], "{stats}");
    let mut cameras: Vec<(String, i64)> = stats["top_cameras"]
        .as_array()
        .expect("top_cameras")
        .iter()
        .map(|c| (c["model"].as_str().unwrap_or_default().to_owned(), c["count"].as_i64().unwrap_or(0)))
        .collect();
    cameras.sort();
    assert_eq!(cameras, [("Canon DIGITAL IXUS".to_owned(), 1), ("E950".to_owned(), 1)], "{stats}");
    assert_eq!(stats["cameras_unknown"], 1, "the meme has no camera: {stats}");
    let days = stats["uploads_per_day"].as_array().expect("uploads_per_day");
    assert_eq!(days.last().map(|d| d["count"].clone()), Some(json!(3)), "{stats}");
}

/// API Gateway's request id on the answer, in the error body and on every JSON log line of the
/// request, and the CloudWatch Embedded Metric Format lines the function prints. Runs last: its
/// upload would change what the statistics count.
async fn request_ids_and_metrics_reach_the_logs(stack: &Stack, f: &Functions) {
    // Given the upload function with JSON logs, as the template's LoggingConfig sets them (the
    // harness passes no LoggingConfig, so this process is told directly),
    let mut namespace = None;
    let upload = stack
        .spawn_with("UploadFunction", |facts| {
            namespace = facts.environment.get("IMGHOST_METRICS_NAMESPACE").cloned();
            facts.environment.insert("AWS_LAMBDA_LOG_FORMAT".into(), "JSON".into());
        })
        .await;
    // The template names the namespace after the stack.
    let namespace = namespace.expect("the template sets IMGHOST_METRICS_NAMESPACE");
    assert!(namespace.starts_with("imghost/"), "{namespace}");

    // when a photo is uploaded with a client's own id, and a text file is refused,
    let stored = ok(upload
        .http(
            HttpRequest::post("/v1/images")
                .request_id("JVqk0jIvIAMEM3w=")
                .header("x-request-id", "client-chosen")
                .body("image/jpeg", photo("orientation/landscape_3.jpg")),
        )
        .await);
    let refused = ok(upload
        .http(HttpRequest::post("/v1/images").request_id("KWrl1kJwJBNFN4x=").body("image/jpeg", "not an image"))
        .await);

    // then each answer carries API Gateway's id, not the client's,
    assert_eq!(stored.status, 201, "{}", stored.text());
    assert_eq!(stored.header("x-request-id"), Some("JVqk0jIvIAMEM3w="));
    assert_eq!(refused.status, 415, "{}", refused.text());
    assert_eq!(refused.header("x-request-id"), Some("KWrl1kJwJBNFN4x="));
    assert_eq!(refused.json()["error"]["request_id"], "KWrl1kJwJBNFN4x=", "{}", refused.text());

    // every log line of the upload carries the id in its spans (the `request` span, whatever
    // span is innermost), metric lines as a property,
    let lines: Vec<Value> = upload.log_lines().iter().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let of_request = |id: &str| -> Vec<&Value> {
        let in_spans = |l: &Value| l["spans"].as_array().is_some_and(|s| s.iter().any(|s| s["request_id"] == id));
        lines.iter().filter(|l| in_spans(l) || l["request_id"] == id).collect::<Vec<_>>()
    };
    let messages: Vec<&str> =
        of_request("JVqk0jIvIAMEM3w=").iter().filter_map(|l| l["fields"]["message"].as_str()).collect();
    assert!(messages.contains(&"new image") && messages.contains(&"answered"), "{messages:?}\n{}", upload.log_tail());
    let answered = of_request("KWrl1kJwJBNFN4x=");
    assert!(answered.iter().any(|l| l["fields"]["status"] == 415), "{}", upload.log_tail());

    // and the function printed one EMF line per observation, in the stack's namespace, tied to
    // the request by its id.
    let emf = |id: &str, metric: &str| -> Vec<&Value> {
        of_request(id).into_iter().filter(|l| l.get("_aws").is_some() && l.get(metric).is_some()).collect()
    };
    let uploads = emf("JVqk0jIvIAMEM3w=", "Uploads");
    assert_eq!(uploads.len(), 1, "{}", upload.log_tail());
    let directive = &uploads[0]["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(directive["Namespace"], namespace.as_str());
    assert_eq!(directive["Dimensions"], json!([["Format"]]));
    assert_eq!(directive["Metrics"], json!([{"Name": "Uploads", "Unit": "Count"}]));
    assert_eq!((&uploads[0]["Format"], &uploads[0]["Uploads"]), (&json!("jpeg"), &json!(1.0)));
    assert!(uploads[0]["_aws"]["Timestamp"].as_u64().is_some_and(|t| t > 1_700_000_000_000));
    let bytes = emf("JVqk0jIvIAMEM3w=", "UploadBytes");
    assert_eq!(bytes.len(), 1);
    assert_eq!(bytes[0]["UploadBytes"].as_f64(), stored.json()["bytes"].as_f64());
    assert_eq!(emf("JVqk0jIvIAMEM3w=", "IngestLatency").len(), 1);
    let errors = emf("KWrl1kJwJBNFN4x=", "ClientErrors");
    assert_eq!(errors.len(), 1, "{}", upload.log_tail());
    assert_eq!((&errors[0]["Route"], &errors[0]["ClientErrors"]), (&json!("/v1/images"), &json!(1.0)));

    // The workers print theirs too, whatever their log format: the resize and AVIF passes of the
    // flows' still images, each timed.
    for (worker, pass) in [(&f.resize, "first"), (&f.avif, "avif")] {
        let emf: Vec<Value> = worker
            .log_lines()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|l| l.get("_aws").is_some() && l["Pass"] == pass)
            .collect();
        let count = |metric: &str| emf.iter().filter(|l| l.get(metric).is_some()).count();
        assert!(count("VariantPasses") >= 1, "{pass}: {}", worker.log_tail());
        // Each pass prints its two lines one after the other; the kept window of the log may
        // begin between them.
        assert!(count("VariantPasses").abs_diff(count("VariantLatency")) <= 1, "{pass}: {}", worker.log_tail());
        assert_eq!(count("VariantFailures"), 0, "{pass}: {}", worker.log_tail());
        assert_eq!(emf[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"], namespace.as_str());
    }
}
