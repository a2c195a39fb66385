//! The `imghost` binary itself: the generated admin token, and queued work surviving a kill.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::photos_dir;
use serde_json::Value;

/// A free loopback port (bound, read and released; the server binds it right after).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A server process, killed and reaped when dropped, also when a test fails midway.
struct Running(Child);

impl Running {
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts `imghost serve` and returns it with its stdout lines up to the listening line.
fn start(data: &std::path::Path, port: u16) -> (Running, Vec<String>) {
    let child = Command::new(env!("CARGO_BIN_EXE_imghost"))
        .args(["serve", "--addr", &format!("127.0.0.1:{port}"), "--data"])
        .arg(data)
        .env_remove("IMGHOST_ADMIN_TOKEN")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut running = Running(child);
    let mut lines = vec![];
    let mut out = BufReader::new(running.0.stdout.take().unwrap());
    loop {
        let mut line = String::new();
        assert!(out.read_line(&mut line).unwrap() > 0, "server exited early; printed {lines:?}");
        let done = line.contains("listening on");
        lines.push(line.trim().to_owned());
        if done {
            return (running, lines);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_work_survives_a_kill_and_the_admin_token_is_generated_once() {
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();

    // Given a first start without IMGHOST_ADMIN_TOKEN, a token is printed once and only its
    // digest is kept, readable by the owner alone.
    let (mut server, printed) = start(data.path(), port);
    let token_line = printed.iter().find(|l| l.starts_with("Admin token")).expect("no admin token printed");
    let token = token_line.rsplit(' ').next().unwrap().to_owned();
    assert_eq!(token.len(), 43);
    let digest_file = data.path().join("admin-token.sha256");
    let kept = std::fs::read_to_string(&digest_file).unwrap();
    assert!(!kept.contains(&token));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&digest_file).unwrap().permissions().mode() & 0o777, 0o600);

    // When large photos are uploaded and the server is killed the moment they are accepted,
    let mut ids = vec![];
    for name in ["large/olympus-e-p3-12mp.jpg", "large/jolla-8mp.jpg", "large/canon-sx60-3mp.jpg"] {
        let bytes = std::fs::read(photos_dir().join(name)).unwrap();
        let resp = client.post(format!("{base}/v1/images")).body(bytes).send().await.unwrap();
        assert_eq!(resp.status(), 201);
        let body: Value = resp.json().await.unwrap();
        ids.push(body["id"].as_str().unwrap().to_owned());
    }
    server.kill();
    let pending = imghost::state::LocalStorage::open(data.path()).unwrap().object_events.len().unwrap();

    // then a restart prints no new token, the old one still works,
    let (mut server, printed) = start(data.path(), port);
    assert!(printed.iter().all(|l| !l.starts_with("Admin token")), "{printed:?}");
    let resp = client.get(format!("{base}/v1/images")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    // and every image that was uploaded gets its variants, however far the first run got
    // (it had {pending} object events left).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    for id in &ids {
        loop {
            let meta: Value = client.get(format!("{base}/v1/images/{id}")).send().await.unwrap().json().await.unwrap();
            if meta["variants"]["large"]["status"] == "ready" {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "{id} never got variants ({pending} events were pending)");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // A second server on the same data directory is refused while this one runs.
    let second = Command::new(env!("CARGO_BIN_EXE_imghost"))
        .args(["serve", "--addr", "127.0.0.1:0", "--data"])
        .arg(data.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(!second.status.success());
    assert!(String::from_utf8_lossy(&second.stderr).contains("another imghost server"));
    server.kill();
    eprintln!("{pending} object events were pending when the first server was killed");
}
