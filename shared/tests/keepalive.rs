//! Keep-alive sweeps and loads on the embedded family, against a loopback stand-in for Imgur.
//! The loader's transport is the only thing replaced: it sends the request for
//! `https://<imgur host>/<path>` to `http://127.0.0.1:<port>/<imgur host>/<path>` instead. The
//! allow-list check before it is the real one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod support;

use async_trait::async_trait;
use axum::Router;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use imghost::keepalive::loader::{self, Answer, Transport, TransportError};
use imghost::keepalive::{self, sweep};
use imghost::state::App;
use imghost::store::Queue;
use serde_json::Value;
use time::OffsetDateTime;

/// The stand-in: what each Imgur id answers, and how often each path was requested.
struct StandIn {
    port: u16,
    hits: Arc<Mutex<HashMap<String, usize>>>,
    _task: tokio::task::JoinHandle<()>,
}

async fn answer(id: &str) -> Response {
    let redirect = |to: &str| (StatusCode::FOUND, [(header::LOCATION, to.to_owned())]).into_response();
    match id {
        "Slow123" => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            StatusCode::OK.into_response()
        }
        "Gone404" => StatusCode::NOT_FOUND.into_response(),
        "Gone410" => StatusCode::GONE.into_response(),
        "Deny403" => StatusCode::FORBIDDEN.into_response(),
        "Rate429" => StatusCode::TOO_MANY_REQUESTS.into_response(),
        "Fail500" => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        "Remove1" => redirect("https://i.imgur.com/removed.png"),
        "Hop1234" => redirect("/Hop2345"),
        "Hop2345" => redirect("https://i.imgur.com/Okay123.jpg"),
        "Loop123" => redirect("/Loop123"),
        "Away123" => redirect("https://example.net/Okay123"),
        _ => StatusCode::OK.into_response(),
    }
}

impl StandIn {
    async fn start() -> StandIn {
        let hits = Arc::new(Mutex::new(HashMap::new()));
        let counter = hits.clone();
        let router = Router::new().route(
            "/{host}/{*path}",
            axum::routing::get(move |Path((host, path)): Path<(String, String)>| {
                let counter = counter.clone();
                async move {
                    *counter.lock().unwrap().entry(format!("{host}/{path}")).or_insert(0) += 1;
                    answer(path.split('.').next().unwrap_or_default()).await
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        StandIn { port, hits, _task: task }
    }

    fn hits(&self, host_path: &str) -> usize {
        self.hits.lock().unwrap().get(host_path).copied().unwrap_or(0)
    }
}

/// Routes `https://<host>/<path>` to the stand-in; refuses anything else loudly, so a URL that
/// slipped past the allow-list would fail the test rather than leave the machine.
struct LoopbackTransport {
    port: u16,
    client: reqwest::Client,
    calls: AtomicUsize,
}

#[async_trait]
impl Transport for LoopbackTransport {
    async fn get(&self, url: &str) -> Result<Answer, TransportError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let rest = url.strip_prefix("https://").expect("only https reaches the transport");
        let host = rest.split('/').next().unwrap();
        assert!(keepalive::url::IMGUR_HOSTS.contains(&host), "a non-Imgur host reached the transport: {url}");
        let resp = self.client.get(format!("http://127.0.0.1:{}/{rest}", self.port)).send().await.map_err(|e| {
            if e.is_timeout() { TransportError::Timeout } else { TransportError::Connect(e.to_string()) }
        })?;
        let location = resp.headers().get("location").map(|l| l.to_str().unwrap().to_owned());
        Ok(Answer { status: resp.status().as_u16(), location })
    }
}

struct World {
    app: App,
    queue: Arc<dyn Queue>,
    stand_in: StandIn,
    transport: LoopbackTransport,
    _dir: tempfile::TempDir,
}

async fn world() -> World {
    let (app, dir) = support::embedded_app().await;
    let queue = app.keepalive.clone().unwrap();
    let stand_in = StandIn::start().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let transport = LoopbackTransport { port: stand_in.port, client, calls: AtomicUsize::new(0) };
    World { app, queue, stand_in, transport, _dir: dir }
}

impl World {
    async fn add(&self, url: &str) -> String {
        let created = keepalive::create(&self.app, url).await.unwrap();
        created.entry.id.clone().unwrap()
    }

    /// Runs the loader over every queued message, as the worker would; returns how many.
    async fn load_all(&self, now: OffsetDateTime) -> usize {
        let mut n = 0;
        loop {
            let batch = self.queue.receive(10, Duration::from_secs(60)).await.unwrap();
            if batch.is_empty() {
                return n;
            }
            for d in batch {
                loader::handle(&self.app, &self.transport, &d.body, now).await.unwrap();
                self.queue.ack(&d.receipt).await.unwrap();
                n += 1;
            }
        }
    }

    async fn entry(&self, id: &str) -> Value {
        serde_json::to_value(keepalive::view(&self.app, id).await.unwrap()).unwrap()
    }
}

fn at(entry: &Value, field: &str) -> OffsetDateTime {
    OffsetDateTime::parse(entry[field].as_str().unwrap(), &time::format_description::well_known::Rfc3339).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_answer_moves_the_entry_to_its_state() {
    // Given one entry per kind of answer Imgur can give,
    let w = world().await;
    let now = (OffsetDateTime::now_utc() + time::Duration::minutes(1)).replace_nanosecond(0).unwrap();
    let cases: &[(&str, &str, Option<u16>, &str)] = &[
        ("https://imgur.com/Okay123", "waiting", Some(200), "ok"),
        ("https://i.imgur.com/Okay124.jpg", "waiting", Some(200), "ok"),
        ("https://imgur.com/Hop1234", "waiting", Some(200), "ok"),
        ("https://imgur.com/Gone404", "gone", Some(404), "gone"),
        ("https://imgur.com/Gone410", "gone", Some(410), "gone"),
        ("https://imgur.com/Remove1", "gone", Some(302), "gone"),
        ("https://imgur.com/Deny403", "stopped", Some(403), "rejected"),
        ("https://imgur.com/Rate429", "stopped", Some(429), "rejected"),
        ("https://imgur.com/Away123", "stopped", Some(302), "redirect_off_imgur"),
        ("https://imgur.com/Loop123", "stopped", Some(302), "too_many_redirects"),
        ("https://imgur.com/Fail500", "waiting", Some(500), "server_error"),
        ("https://imgur.com/Slow123", "waiting", None, "timeout"),
    ];
    let mut ids = vec![];
    for (url, ..) in cases {
        ids.push(w.add(url).await);
    }

    // when a sweep queues them and the loader loads each,
    let report = sweep::sweep(&w.app, now).await.unwrap();
    assert_eq!((report.examined, report.queued), (cases.len(), cases.len()));
    assert_eq!(w.load_all(now).await, cases.len());

    // then each entry is in the state its answer calls for, with one history record.
    for ((url, status, http_status, outcome), id) in cases.iter().zip(&ids) {
        let e = w.entry(id).await;
        assert_eq!(e["status"], *status, "{url}: {e}");
        let h = &e["history"][0];
        assert_eq!(
            (h["http_status"].as_u64().map(|s| s as u16), h["outcome"].as_str()),
            (*http_status, Some(*outcome)),
            "{url}"
        );
        match (*status, *outcome) {
            // A good load is next due in 30 days, give or take 12 hours.
            ("waiting", "ok") => {
                let gap = at(&e, "next_load_at") - now;
                assert!(
                    gap >= time::Duration::hours(30 * 24 - 12) && gap <= time::Duration::hours(30 * 24 + 12),
                    "{url}: {gap}"
                );
                assert_eq!(e["loads"], 1);
            }
            // A transient failure is tried again in an hour.
            ("waiting", _) => assert_eq!(at(&e, "next_load_at") - now, time::Duration::hours(1), "{url}"),
            _ => assert!(e["next_load_at"].is_null(), "{url}: finished entries have no next load"),
        }
    }
    // The redirect chain was followed within Imgur, and the off-Imgur redirect was not.
    assert_eq!(w.stand_in.hits("i.imgur.com/Okay123.jpg"), 1);
    assert_eq!(w.stand_in.hits("imgur.com/Loop123"), 4, "the first request and three redirects");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_or_gone_entry_is_never_requested_again() {
    // Given entries Imgur rejects or has removed, loaded once,
    let w = world().await;
    let t0 = OffsetDateTime::now_utc() + time::Duration::minutes(1);
    for url in ["https://imgur.com/Deny403", "https://imgur.com/Rate429", "https://imgur.com/Gone404"] {
        w.add(url).await;
    }
    sweep::sweep(&w.app, t0).await.unwrap();
    w.load_all(t0).await;

    // when sweeps run every day for a year,
    for day in 1..=365 {
        let report = sweep::sweep(&w.app, t0 + time::Duration::days(day)).await.unwrap();
        // then none of them is ever read from the due index again, nor requested.
        assert_eq!(report.examined, 0, "day {day}");
    }
    assert_eq!(w.load_all(t0).await, 0);
    for path in ["imgur.com/Deny403", "imgur.com/Rate429", "imgur.com/Gone404"] {
        assert_eq!(w.stand_in.hits(path), 1, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_tried_three_times_then_the_entry_is_an_error() {
    let w = world().await;
    let id = w.add("https://imgur.com/Fail500").await;
    let mut now = OffsetDateTime::now_utc() + time::Duration::minutes(1);
    for attempt in 1..=3 {
        sweep::sweep(&w.app, now).await.unwrap();
        assert_eq!(w.load_all(now).await, 1, "attempt {attempt}");
        now += time::Duration::hours(5);
    }
    let e = w.entry(&id).await;
    assert_eq!(e["status"], "error", "{e}");
    assert_eq!(e["history"].as_array().unwrap().len(), 3);
    // Nothing more, ever.
    assert_eq!(sweep::sweep(&w.app, now + time::Duration::days(60)).await.unwrap().examined, 0);
    assert_eq!(w.stand_in.hits("imgur.com/Fail500"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_delivered_twice_makes_one_request() {
    // Given a queued load,
    let w = world().await;
    let id = w.add("https://imgur.com/Okay123").await;
    let now = OffsetDateTime::now_utc() + time::Duration::minutes(1);
    sweep::sweep(&w.app, now).await.unwrap();
    let batch = w.queue.receive(10, Duration::from_secs(60)).await.unwrap();
    assert_eq!(batch.len(), 1);

    // when the loader gets the same message twice, even at once,
    let body = &batch[0].body;
    let (a, b) = futures::future::join(
        loader::handle(&w.app, &w.transport, body, now),
        loader::handle(&w.app, &w.transport, body, now),
    )
    .await;
    a.unwrap();
    b.unwrap();
    loader::handle(&w.app, &w.transport, body, now).await.unwrap();

    // then exactly one request was made and recorded.
    assert_eq!(w.stand_in.hits("imgur.com/Okay123"), 1);
    assert_eq!(w.entry(&id).await["loads"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_sweeps_queue_each_entry_once_and_a_lapsed_claim_is_taken_again() {
    // Given 40 due entries and 10 not yet due,
    let w = world().await;
    let now = OffsetDateTime::now_utc() + time::Duration::minutes(1);
    for i in 0..50 {
        w.add(&format!("https://imgur.com/Ok{i:05}")).await;
    }
    // (loading 10 of them first makes those due in a month)
    let early = sweep::sweep(&w.app, now).await.unwrap();
    assert_eq!(early.queued, 50);
    let mut loaded = 0;
    while loaded < 10 {
        for d in w.queue.receive(10 - loaded, Duration::from_secs(60)).await.unwrap() {
            loader::handle(&w.app, &w.transport, &d.body, now).await.unwrap();
            w.queue.ack(&d.receipt).await.unwrap();
            loaded += 1;
        }
    }
    // The other 40 claims are dropped, as if their sweep had crashed after claiming.
    while !w.queue.receive(10, Duration::from_secs(3600)).await.unwrap().is_empty() {}

    // when, after their lease, two sweeps run at the same moment,
    let later = now + sweep::LEASE + time::Duration::seconds(1);
    let (a, b) = futures::future::join(sweep::sweep(&w.app, later), sweep::sweep(&w.app, later)).await;
    let (a, b) = (a.unwrap(), b.unwrap());

    // then the 40 lapsed claims are queued again, once each, and the 10 loaded ones are not due.
    assert_eq!(a.queued + b.queued, 40, "{a:?} {b:?}");
    let mut ids = std::collections::HashSet::new();
    loop {
        let batch = w.queue.receive(10, Duration::from_secs(60)).await.unwrap();
        if batch.is_empty() {
            break;
        }
        for d in batch {
            let msg: sweep::LoadMessage = serde_json::from_str(&d.body).unwrap();
            assert!(ids.insert(msg.id), "an entry was queued twice");
        }
    }
    assert_eq!(ids.len(), 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_over_100_000_entries_touches_only_the_1_000_due() {
    // Given 100,000 entries, 1,000 of them due now and the rest spread over the next 30 days,
    let w = world().await;
    let now = OffsetDateTime::now_utc();
    let seeding = std::time::Instant::now();
    for chunk in 0..1000 {
        let ops = (0..100)
            .map(|k| {
                let n = chunk * 100 + k;
                let id = format!("{n:022}");
                let due = if n % 100 == 0 {
                    now - time::Duration::minutes(5)
                } else {
                    now + time::Duration::seconds(60 + (n as i64 * 25) % (30 * 86_400))
                };
                let url = format!("https://imgur.com/{}", &format!("{n:07}")[..7]);
                imghost::store::TxOp::Put { item: keepalive::entry_item(&id, &url, "digest", now, due), cond: None }
            })
            .collect();
        w.app.table.transact(ops).await.unwrap();
    }
    let seeded = seeding.elapsed();

    // when the sweep runs,
    let started = std::time::Instant::now();
    let report = sweep::sweep(&w.app, now).await.unwrap();
    let took = started.elapsed();

    // then it read exactly the due entries from the index and queued each of them once.
    assert_eq!((report.examined, report.queued), (1000, 1000));
    let mut queued = 0;
    loop {
        let batch = w.queue.receive(10, Duration::from_secs(60)).await.unwrap();
        if batch.is_empty() {
            break;
        }
        queued += batch.len();
    }
    assert_eq!(queued, 1000);
    // A second sweep at the same moment finds nothing left to claim.
    assert_eq!(sweep::sweep(&w.app, now).await.unwrap().queued, 0);
    // The figure for docs/benchmarks.md (run with --release --nocapture to reproduce).
    println!("keep-alive sweep: 100,000 entries, 1,000 due: {took:?} (seeding took {seeded:?})");
}
