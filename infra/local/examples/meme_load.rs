//! Load benchmark for text memes through the local server, over real HTTP on loopback.
//!
//! Starts the same server `imghost serve` runs (embedded storage in a temporary directory),
//! creates an account holding `TOKENS` tokens, sends `REQUESTS` meme requests from
//! `CONCURRENCY` concurrent clients, and reports memes per second and whether exactly `TOKENS`
//! requests were served, the rest answered 402, and the balance reads all tokens used.
//!
//! `cargo run --release -p imghost-local --example meme_load [REQUESTS TOKENS CONCURRENCY]`

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use imghost_local::{Local, Options};
use serde_json::{Value, json};

const ADMIN: &str = "bench-admin-token-0123456789abcdef0123456789abcdef";

#[tokio::main]
async fn main() -> Result<(), imghost_local::BoxError> {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let (requests, tokens, concurrency) = match args[..] {
        [r, t, c] => (r, t, c),
        _ => (20_000, 15_000, 64),
    };
    let data = tempfile::tempdir()?;
    let opts = Options {
        addr: "127.0.0.1:0".parse()?,
        data_dir: data.path().to_path_buf(),
        admin_token: Some(ADMIN.into()),
        public_url: None,
        trust_proxy: false,
        fetcher: imghost::fetch::Fetcher::public(),
        keepalive_dry_run: true,
        web_dir: None,
        limits: Default::default(),
    };
    let local = Local::open(&opts)?;
    let listener = tokio::net::TcpListener::bind(opts.addr).await?;
    let base = format!("http://{}", listener.local_addr()?);
    // Kept until the end of the run: dropping it stops the server.
    let _running = local.spawn(listener, &opts, std::future::pending());

    let client = reqwest::Client::builder().pool_max_idle_per_host(concurrency).build()?;
    let created: Value = client
        .post(format!("{base}/v1/accounts"))
        .bearer_auth(ADMIN)
        .json(&json!({"name": "bench"}))
        .send()
        .await?
        .json()
        .await?;
    let (id, key) =
        (created["account_id"].as_str().unwrap().to_owned(), created["api_key"].as_str().unwrap().to_owned());
    client
        .post(format!("{base}/v1/accounts/{id}/tokens"))
        .bearer_auth(ADMIN)
        .header("idempotency-key", "bench")
        .json(&json!({"amount": tokens}))
        .send()
        .await?
        .error_for_status()?;

    let next = Arc::new(AtomicUsize::new(0));
    let (served, exhausted, other) =
        (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, base, key) = (client.clone(), base.clone(), key.clone());
            let (next, served, exhausted, other) = (next.clone(), served.clone(), exhausted.clone(), other.clone());
            tokio::spawn(async move {
                while next.fetch_add(1, Ordering::SeqCst) < requests {
                    let url = format!("{base}/v1/memes?lat=52.52&lon=13.405&query=bench");
                    let status = match client.get(url).bearer_auth(&key).send().await {
                        Ok(r) => r.status().as_u16(),
                        Err(_) => 0,
                    };
                    match status {
                        200 => &served,
                        402 => &exhausted,
                        _ => &other,
                    }
                    .fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    for w in workers {
        w.await?;
    }
    let took = started.elapsed();
    let balance: Value = client.get(format!("{base}/v1/balance")).bearer_auth(&key).send().await?.json().await?;

    let (s, e, o) = (served.load(Ordering::SeqCst), exhausted.load(Ordering::SeqCst), other.load(Ordering::SeqCst));
    let exact = s == tokens.min(requests)
        && e == requests.saturating_sub(tokens)
        && o == 0
        && balance["used"] == json!(tokens.min(requests))
        && balance["purchased"] == json!(tokens);
    println!("requests: {requests}, tokens: {tokens}, concurrent clients: {concurrency}");
    println!(
        "time: {:.2} s, {:.0} requests/s, {:.0} memes/s served",
        took.as_secs_f64(),
        requests as f64 / took.as_secs_f64(),
        s as f64 / took.as_secs_f64()
    );
    println!("served: {s}, 402: {e}, other: {o}; balance: {balance}");
    println!("exact: {}", if exact { "yes" } else { "NO" });
    if !exact {
        std::process::exit(1);
    }
    Ok(())
}
