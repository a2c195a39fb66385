//! Test support: one moto server (the AWS test double) per test binary, and SDK clients for it.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How long moto may take to start answering (it imports every service's code on start).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);

/// A running `moto_server` on a loopback port.
pub struct Moto {
    port: u16,
    child: Child,
}

/// The moto server shared by every test of this binary, started on first use. Tests keep out
/// of each other's way by naming their tables, buckets and queues with [`unique`].
pub fn moto() -> &'static Moto {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    MOTO.get_or_init(start_moto)
}

/// The Python interpreter that runs `moto_server`: its shebang line when it is a Python script,
/// else (a pyenv shim, say) `python3` from PATH, which is the interpreter pip installed it for.
fn python_with_moto(moto_server: &std::path::Path) -> PathBuf {
    let shebang = std::fs::read(moto_server).ok().and_then(|bytes| {
        let line = bytes.split(|b| *b == b'\n').next()?.strip_prefix(b"#!")?.to_vec();
        let line = String::from_utf8(line).ok()?;
        let interpreter = line.split_whitespace().next()?.to_owned();
        interpreter.contains("python").then(|| PathBuf::from(interpreter))
    });
    shebang.or_else(|| find_on_path("python3")).unwrap_or_else(|| PathBuf::from("python3"))
}

/// Starts a new moto server. It is stopped when the `Moto` is dropped, and in any case when this
/// process ends: a static is never dropped, so a small shell guard watches this process and
/// stops moto once it is gone, whatever way the test binary exits.
pub fn start_moto() -> Moto {
    start_moto_with(&[])
}

/// [`start_moto`] with extra environment variables for moto, such as
/// `INITIAL_NO_AUTH_ACTION_COUNT`, which makes moto enforce IAM policies after that many
/// requests (see `POST /moto-api/reset-auth` to change the count while it runs).
pub fn start_moto_with(env: &[(&str, &str)]) -> Moto {
    let bin = find_on_path("moto_server").unwrap_or_else(|| {
        panic!(
            "moto_server is not on PATH. The AWS half of the contract suite needs it: run the \
             project's test script, which installs it with `pip install 'moto[server]'`."
        )
    });
    let port = free_port();
    // moto's server is started from its own WSGI application, as `moto_server` does, but
    // serving one request at a time: `moto_server` always runs threaded, and moto's DynamoDB
    // then evaluates two conditional writes to one item concurrently, which DynamoDB never
    // does (each item's writes are serialised). Serial serving restores exactly that guarantee,
    // so concurrency tests judge our code, not a race inside the test double. The listen backlog
    // is raised from werkzeug's 128 so that a thousand clients connecting at once queue up, as
    // they would at DynamoDB, instead of being refused.
    let launcher = "import sys\n\
        import werkzeug.serving\n\
        from werkzeug.serving import run_simple\n\
        werkzeug.serving.BaseWSGIServer.request_queue_size = 4096\n\
        from moto.server import DomainDispatcherApplication, create_backend_app\n\
        run_simple(sys.argv[1], int(sys.argv[2]), DomainDispatcherApplication(create_backend_app), threaded=False)\n";
    // `$PPID` is this test process. The guard polls it once a second and, when it has exited
    // (or moto died on its own), stops moto; a TERM sent to the guard (see `Drop`) does the same.
    let guard = r#"
        "$1" -c "$3" 127.0.0.1 "$2" &
        pid=$!
        trap 'kill $pid 2>/dev/null; exit 0' TERM INT HUP
        while kill -0 "$PPID" 2>/dev/null && kill -0 "$pid" 2>/dev/null; do sleep 1; done
        kill $pid 2>/dev/null
        wait $pid
    "#;
    let child = Command::new("sh")
        .arg("-c")
        .arg(guard)
        .arg("moto-guard")
        .arg(python_with_moto(&bin))
        .arg(port.to_string())
        .arg(launcher)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("could not start {}: {e}", bin.display()));
    let mut moto = Moto { port, child };
    moto.wait_until_ready();
    moto
}

impl Moto {
    /// The static test credentials moto accepts, as the SDK's provider type.
    pub fn credentials_provider(&self) -> aws_credential_types::provider::SharedCredentialsProvider {
        aws_credential_types::provider::SharedCredentialsProvider::new(aws_credential_types::Credentials::new(
            "testing", "testing", None, None, "moto",
        ))
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        use aws_sdk_dynamodb::config::{Credentials, Region};
        let conf = aws_sdk_dynamodb::Config::builder()
            .behavior_version_latest()
            .region(Region::new("us-east-1"))
            .endpoint_url(self.endpoint())
            .credentials_provider(Credentials::new("testing", "testing", None, None, "moto"))
            .build();
        aws_sdk_dynamodb::Client::from_conf(conf)
    }

    pub fn s3(&self) -> aws_sdk_s3::Client {
        use aws_sdk_s3::config::{Credentials, Region};
        let conf = aws_sdk_s3::Config::builder()
            .behavior_version_latest()
            .region(Region::new("us-east-1"))
            .endpoint_url(self.endpoint())
            .credentials_provider(Credentials::new("testing", "testing", None, None, "moto"))
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }

    pub fn sqs(&self) -> aws_sdk_sqs::Client {
        use aws_sdk_sqs::config::{Credentials, Region};
        let conf = aws_sdk_sqs::Config::builder()
            .behavior_version_latest()
            .region(Region::new("us-east-1"))
            .endpoint_url(self.endpoint())
            .credentials_provider(Credentials::new("testing", "testing", None, None, "moto"))
            .build();
        aws_sdk_sqs::Client::from_conf(conf)
    }

    pub fn ssm(&self) -> aws_sdk_ssm::Client {
        use aws_sdk_ssm::config::{Credentials, Region};
        let conf = aws_sdk_ssm::Config::builder()
            .behavior_version_latest()
            .region(Region::new("us-east-1"))
            .endpoint_url(self.endpoint())
            .credentials_provider(Credentials::new("testing", "testing", None, None, "moto"))
            .build();
        aws_sdk_ssm::Client::from_conf(conf)
    }

    /// Polls until moto answers an HTTP request, or panics after [`STARTUP_TIMEOUT`] or as soon
    /// as moto has exited (the guard exits with it), e.g. when `moto_server` is on PATH but the
    /// Python package behind it is missing.
    fn wait_until_ready(&mut self) {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        while Instant::now() < deadline {
            if answers_http(addr) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "moto_server exited at startup ({status}): run the project's test script, \
                     which installs it with `pip install 'moto[server]'`"
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("moto_server did not answer on {addr} within {STARTUP_TIMEOUT:?}");
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        // A TERM lets the guard's trap stop moto itself; killing the guard outright would orphan
        // moto until the guard's watch noticed nothing (it would not: the guard would be dead).
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
    }
}

fn answers_http(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let req = "GET /moto-api/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 5];
    s.read_exact(&mut head).is_ok() && &head == b"HTTP/"
}

fn free_port() -> u16 {
    // Binding port 0 makes the kernel pick a free port; it stays free after the listener is
    // dropped long enough for moto to take it in practice.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("local address").port()
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join(name)).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .find(|p| p.is_file())
}

/// A name no other test of this process uses, valid for a table, a bucket and a queue alike
/// (lowercase letters, digits and dashes).
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The embedded family's app on a temporary directory, built by the same `from_config` a
/// function running in local mode uses.
pub async fn embedded_app() -> (imghost::App, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_string_lossy().into_owned();
    let config = imghost::Config::from_lookup(|k| (k == "IMGHOST_DATA_DIR").then(|| path.clone())).unwrap();
    (imghost::state::from_config(&config).await.unwrap(), dir)
}

/// The workspace root: the folder above this crate that holds `template.yaml`.
pub fn workspace_root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.ancestors().find(|d| d.join("template.yaml").is_file()).expect("template.yaml above the crate").to_owned()
}

/// Everything `scripts/template-facts` reads from `template.yaml`, intrinsics resolved with
/// its defaults.
pub fn template_facts() -> serde_json::Value {
    let out = Command::new("python3")
        .arg("scripts/template-facts")
        .current_dir(workspace_root())
        .output()
        .expect("python3 runs scripts/template-facts");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("template-facts prints JSON")
}
