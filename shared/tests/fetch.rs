//! The import fetcher against real HTTP servers on loopback: redirects, limits, status codes,
//! hostile DNS answers, and the narrowness of the one relaxation tests are given.

#[path = "support/origin.rs"]
mod origin;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use imghost::fetch::{FetchError, Fetcher, Limits};
use origin::{Origin, Trap};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

fn photos() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata/photos")
}

/// A fetcher for `origin` only, with short limits so the slow cases stay quick.
fn fetcher_for(origin: &Origin) -> Fetcher {
    Fetcher::allowing(vec![origin.addr]).with_limits(Limits {
        respond: Duration::from_millis(800),
        idle: Duration::from_millis(800),
        body: Duration::from_secs(5),
        max_bytes: 1024 * 1024,
        max_redirects: 3,
    })
}

#[tokio::test]
async fn fetches_a_photo_through_up_to_three_redirects_and_no_more() {
    // Given an origin serving a photo behind chains of redirects,
    let origin = Origin::start(photos()).await;
    let fetcher = fetcher_for(&origin);
    let expected = std::fs::read(photos().join("no-exif.jpg")).unwrap();
    let cases: &[(&str, Result<(), &str>)] = &[
        ("/photos/no-exif.jpg", Ok(())),
        ("/redirect/0/no-exif.jpg", Ok(())),
        ("/redirect/2/no-exif.jpg", Ok(())),
        ("/redirect/3/no-exif.jpg", Err("too_many_redirects")),
        ("/redirect/9/no-exif.jpg", Err("too_many_redirects")),
    ];
    for (path, want) in cases {
        // when each is fetched,
        let got = fetcher.fetch(&origin.url(path)).await;
        // then chains of at most three redirects give the photo's exact bytes.
        match (got, want) {
            (Ok(f), Ok(())) => {
                assert_eq!(f.bytes.as_ref(), expected.as_slice(), "{path}");
                assert!(f.url.path().ends_with("/photos/no-exif.jpg"), "{path}: {}", f.url);
            }
            (Err(e), Err(code)) => assert_eq!(e.code(), *code, "{path}: {e}"),
            (got, _) => panic!("{path}: {got:?}"),
        }
    }
}

#[tokio::test]
async fn status_codes_are_final_or_transient() {
    let origin = Origin::start(photos()).await;
    let fetcher = fetcher_for(&origin);
    let cases: &[(u16, bool)] = &[(404, false), (403, false), (410, false), (429, true), (500, true), (503, true)];
    for (status, transient) in cases {
        let e = fetcher.fetch(&origin.url(&format!("/status/{status}"))).await.unwrap_err();
        assert!(matches!(e, FetchError::Status(s) if s == *status), "{status}: {e}");
        assert_eq!(e.is_transient(), *transient, "{status}");
    }
}

#[tokio::test]
async fn slow_and_silent_servers_time_out() {
    // Given limits of 0.8 s to respond and 0.8 s of silence,
    let origin = Origin::start(photos()).await;
    let fetcher = fetcher_for(&origin);
    for path in ["/slow/3000", "/trickle"] {
        // when a server answers too late, or stalls mid-body,
        let started = Instant::now();
        let e = fetcher.fetch(&origin.url(path)).await.unwrap_err();
        // then the fetch gives up with a transient timeout, near the limit and not after the
        // server's own pace.
        assert_eq!(e.code(), "timeout", "{path}: {e}");
        assert!(e.is_transient());
        assert!(started.elapsed() < Duration::from_millis(2500), "{path} took {:?}", started.elapsed());
    }
}

#[tokio::test]
async fn bodies_over_the_limit_are_cut_off() {
    // Given a 1 MiB limit,
    let origin = Origin::start(photos()).await;
    let fetcher = fetcher_for(&origin);
    // a streamed body without a length, a declared length over the limit, and a body exactly
    // at the limit,
    let cases: &[(&str, Option<&str>)] =
        &[("/huge/5000000", Some("too_large")), ("/declared/2000000", Some("too_large")), ("/huge/1048576", None)];
    for (path, want) in cases {
        let got = fetcher.fetch(&origin.url(path)).await;
        // then only the one within the limit is read.
        match (got, want) {
            (Ok(f), None) => assert_eq!(f.bytes.len(), 1024 * 1024),
            (Err(e), Some(code)) => {
                assert_eq!(e.code(), *code, "{path}: {e}");
                assert!(!e.is_transient());
            }
            (got, _) => panic!("{path}: {got:?}"),
        }
    }
}

#[tokio::test]
async fn the_relaxation_names_one_socket_and_nothing_else() {
    // Given a fetcher allowed to reach one loopback origin, and a trap on another loopback port,
    let origin = Origin::start(photos()).await;
    let trap = Trap::start("127.0.0.1").await;
    let fetcher = fetcher_for(&origin);
    let to_trap = format!("http://127.0.0.1:{}/a.jpg", trap.addr.port());
    // when it is sent to the trap directly, by a redirect, and by a name for loopback,
    let cases = [
        to_trap.clone(),
        origin.url(&format!("/to?url={to_trap}")),
        format!("http://localhost:{}/a.jpg", origin.addr.port()),
    ];
    for url in &cases {
        let e = fetcher.fetch(url).await.unwrap_err();
        // then each is refused as forbidden, and the trap never sees a connection.
        assert_eq!(e.code(), "forbidden_address", "{url}: {e}");
    }
    assert_eq!(trap.count(), 0);
    // The production fetcher refuses the origin itself.
    let e = Fetcher::public().fetch(&origin.url("/photos/no-exif.jpg")).await.unwrap_err();
    assert_eq!(e.code(), "forbidden_address");
}

/// A DNS server under the attacker's control: answers `names` with fixed addresses.
struct HostileDns(Vec<(&'static str, Vec<SocketAddr>)>);

impl Resolve for HostileDns {
    fn resolve(&self, name: Name) -> Resolving {
        let found = self.0.iter().find(|(n, _)| *n == name.as_str()).map(|(_, a)| a.clone()).unwrap_or_default();
        Box::pin(async move { Ok(Box::new(found.into_iter()) as Addrs) })
    }
}

#[tokio::test]
async fn names_resolving_to_any_non_public_address_are_refused() {
    // Given a trap on loopback and a DNS server that points names at it, alone or mixed with a
    // public address (the rebinding trick: check one answer, connect to another),
    let trap = Trap::start("127.0.0.1").await;
    let loopback = SocketAddr::new("127.0.0.1".parse().unwrap(), 0);
    let public = SocketAddr::new("93.184.215.14".parse().unwrap(), 0);
    let metadata = SocketAddr::new("169.254.169.254".parse().unwrap(), 0);
    let mapped = SocketAddr::new("::ffff:127.0.0.1".parse().unwrap(), 0);
    let dns = HostileDns(vec![
        ("loopback.test", vec![loopback]),
        ("rebind.test", vec![public, loopback]),
        ("metadata.test", vec![metadata]),
        ("mapped.test", vec![mapped]),
    ]);
    let fetcher = Fetcher::public().with_resolver(Arc::new(dns));
    for name in ["loopback.test", "rebind.test", "metadata.test", "mapped.test"] {
        // when a URL with that name is fetched,
        let e = fetcher.fetch(&format!("http://{name}:{}/a.jpg", trap.addr.port())).await.unwrap_err();
        // then it is refused as forbidden before any connection.
        assert_eq!(e.code(), "forbidden_address", "{name}: {e}");
    }
    assert_eq!(trap.count(), 0);
}

#[tokio::test]
async fn urls_are_refused_before_any_connection_when_malformed() {
    let trap = Trap::start("127.0.0.1").await;
    let p = trap.addr.port();
    let cases = [
        format!("ftp://127.0.0.1:{p}/a.jpg"),
        "file:///etc/passwd".to_owned(),
        format!("http://user:secret@127.0.0.1:{p}/a.jpg"),
        format!("http://user@example.com:{p}/a.jpg"),
        "not a url".to_owned(),
    ];
    for url in &cases {
        let e = Fetcher::allowing(vec![trap.addr]).fetch(url).await.unwrap_err();
        assert_eq!(e.code(), "bad_url", "{url}: {e}");
    }
    assert_eq!(trap.count(), 0);
}
