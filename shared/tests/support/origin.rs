//! Loopback servers that play the remote side of imports: an origin with well-behaved and
//! misbehaving routes, and a trap that only counts the connections it receives.
//!
//! This file is shared by the test crates of `shared/` and `infra/local` (`#[path]` module), so
//! both exercise the fetcher against the same real servers.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path as UrlPath, Query};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

/// An HTTP origin on a loopback port. Routes:
/// - `/photos/{*path}`: a test photo, with its length;
/// - `/redirect/{n}/{*path}`: `n` redirects, then the photo at `path`;
/// - `/to?url=...`: one redirect to any URL;
/// - `/status/{code}`: an empty answer with that status;
/// - `/text`: a small text document (not an image);
/// - `/slow/{ms}`: the headers after `ms` milliseconds;
/// - `/trickle`: headers at once, then one byte a second;
/// - `/huge/{bytes}`: `bytes` bytes streamed without a length; `/declared/{bytes}`: the same
///   with a `Content-Length`, which lets a client refuse before reading.
pub struct Origin {
    pub addr: SocketAddr,
    /// Requests served, every route counted.
    pub hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Origin {
    pub async fn start(photos_dir: PathBuf) -> Origin {
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        let photos_dir = Arc::new(photos_dir);
        let router = Router::new()
            .route(
                "/photos/{*path}",
                get({
                    let dir = photos_dir.clone();
                    move |UrlPath(path): UrlPath<String>| async move { photo(&dir, &path) }
                }),
            )
            .route(
                "/redirect/{n}/{*path}",
                get(|UrlPath((n, path)): UrlPath<(u32, String)>| async move {
                    if n == 0 {
                        Redirect::temporary(&format!("/photos/{path}"))
                    } else {
                        Redirect::to(&format!("/redirect/{}/{path}", n - 1))
                    }
                }),
            )
            .route(
                "/to",
                get(|Query(q): Query<std::collections::HashMap<String, String>>| async move {
                    Redirect::temporary(q.get("url").map(String::as_str).unwrap_or("/"))
                }),
            )
            .route(
                "/status/{code}",
                get(|UrlPath(code): UrlPath<u16>| async move { StatusCode::from_u16(code).unwrap_or(StatusCode::OK) }),
            )
            .route("/text", get(|| async { ([(header::CONTENT_TYPE, "text/plain")], "hello, not an image") }))
            .route(
                "/slow/{ms}",
                get(|UrlPath(ms): UrlPath<u64>| async move {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    "late"
                }),
            )
            .route(
                "/trickle",
                get(|| async {
                    let stream = futures::stream::unfold(0u32, |i| async move {
                        if i > 0 {
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                        (i < 120).then(|| (Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"x")), i + 1))
                    });
                    Body::from_stream(stream)
                }),
            )
            .route(
                "/huge/{bytes}",
                get(|UrlPath(n): UrlPath<usize>| async move {
                    let chunk = bytes::Bytes::from(vec![0xffu8; 64 * 1024]);
                    let stream = futures::stream::iter(
                        (0..n.div_ceil(chunk.len())).map(move |_| Ok::<_, std::io::Error>(chunk.clone())),
                    );
                    Body::from_stream(stream)
                }),
            )
            .route(
                "/declared/{bytes}",
                get(|UrlPath(n): UrlPath<usize>| async move {
                    let stream = futures::stream::iter((0..n).step_by(65536).map(move |start| {
                        Ok::<_, std::io::Error>(bytes::Bytes::from(vec![0u8; 65536.min(n - start)]))
                    }));
                    ([(header::CONTENT_LENGTH, n.to_string())], Body::from_stream(stream)).into_response()
                }),
            )
            .layer(axum::middleware::from_fn(move |req, next: axum::middleware::Next| {
                let counter = counter.clone();
                async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    next.run(req).await
                }
            }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        Origin { addr, hits, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn photo(dir: &Path, path: &str) -> Response {
    if path.contains("..") {
        return StatusCode::BAD_REQUEST.into_response();
    }
    match std::fs::read(dir.join(path)) {
        Ok(bytes) => ([(header::CONTENT_TYPE, "image/jpeg")], bytes).into_response(),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

/// A listening socket that accepts connections, counts them and closes them. A forbidden
/// destination pointed at a trap proves it was refused before connecting when the count stays 0.
pub struct Trap {
    pub addr: SocketAddr,
    pub connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Trap {
    /// Binds `ip` (a loopback or unspecified-reachable address) on a free port.
    pub async fn start(ip: &str) -> Trap {
        let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = connections.clone();
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                drop(socket);
            }
        });
        Trap { addr, connections, task }
    }

    pub fn count(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Trap {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The forbidden destinations every import must refuse, as URLs. `v4` is a trap on 127.0.0.1
/// and `v6` one on `[::1]` (when the machine has IPv6 loopback), so the loopback spellings would
/// land on a listening socket if they were ever connected to. The rest are addresses that must
/// be refused without any connection attempt.
pub fn forbidden_urls(v4_port: u16, v6_port: Option<u16>) -> Vec<String> {
    let p = v4_port;
    let mut urls: Vec<String> = [
        // Loopback, in every IPv4 spelling the URL standard accepts.
        format!("http://127.0.0.1:{p}/a.jpg"),
        format!("http://2130706433:{p}/a.jpg"),
        format!("http://0x7f000001:{p}/a.jpg"),
        format!("http://017700000001:{p}/a.jpg"),
        format!("http://0177.0.0.1:{p}/a.jpg"),
        format!("http://0x7f.1:{p}/a.jpg"),
        format!("http://127.1:{p}/a.jpg"),
        format!("http://127.0.0.1.:{p}/a.jpg"),
        format!("http://127.127.127.127:{p}/a.jpg"),
        // A name that resolves to loopback.
        format!("http://localhost:{p}/a.jpg"),
        // Unspecified: on Linux, connecting to 0.0.0.0 reaches local listeners.
        format!("http://0.0.0.0:{p}/a.jpg"),
        format!("http://0:{p}/a.jpg"),
        // IPv4-mapped and -compatible IPv6 spellings of loopback.
        format!("http://[::ffff:127.0.0.1]:{p}/a.jpg"),
        format!("http://[::ffff:7f00:1]:{p}/a.jpg"),
        format!("http://[0:0:0:0:0:ffff:127.0.0.1]:{p}/a.jpg"),
        format!("http://[::127.0.0.1]:{p}/a.jpg"),
        // NAT64 of loopback.
        format!("http://[64:ff9b::7f00:1]:{p}/a.jpg"),
        // Private, CGNAT, link-local (cloud metadata), multicast, broadcast, documentation.
        "http://10.0.0.1/a.jpg".into(),
        "http://172.16.0.1/a.jpg".into(),
        "http://192.168.1.1/a.jpg".into(),
        "http://100.64.0.1/a.jpg".into(),
        "http://169.254.169.254/latest/meta-data/".into(),
        "http://224.0.0.1/a.jpg".into(),
        "http://255.255.255.255/a.jpg".into(),
        "http://192.0.2.1/a.jpg".into(),
        "http://198.51.100.1/a.jpg".into(),
        "http://203.0.113.1/a.jpg".into(),
        "http://198.18.0.1/a.jpg".into(),
        "http://240.0.0.1/a.jpg".into(),
        // IPv6 special blocks.
        "http://[::]/a.jpg".into(),
        "http://[fe80::1]/a.jpg".into(),
        "http://[fc00::1]/a.jpg".into(),
        "http://[fd00:ec2::254]/a.jpg".into(),
        "http://[ff02::1]/a.jpg".into(),
        "http://[2001:db8::1]/a.jpg".into(),
        "http://[2002:7f00:1::]/a.jpg".into(),
        "https://[::1]/a.jpg".into(),
    ]
    .into();
    if let Some(p6) = v6_port {
        urls.push(format!("http://[::1]:{p6}/a.jpg"));
        urls.push(format!("http://[0:0:0:0:0:0:0:1]:{p6}/a.jpg"));
        urls.push(format!("http://[::]:{p6}/a.jpg"));
    }
    urls
}
