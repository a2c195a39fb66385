//! One Lambda execution environment: the function's real binary as a child process, and the
//! Lambda Runtime API it polls, served on a loopback port by this process.
//!
//! As in Lambda, an environment runs one invocation at a time: [`Lambda::invoke`] queues the
//! event, the runtime's long-polling `GET .../invocation/next` takes it, and its
//! `POST .../invocation/{id}/response` (or `/error`) answers the call. A process that reports
//! `POST .../init/error`, or exits before asking for its first event, failed its init; one
//! that exits later died. Either way every invocation after that fails with the process's
//! output attached.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{RwLock, mpsc, oneshot, watch};

use crate::events::{self, ApiContext, HttpRequest, HttpResponse, PAYLOAD_LIMIT};
use crate::facts::FunctionFacts;

/// How long Lambda lets a function's init phase run (on-demand functions).
pub const INIT_LIMIT: Duration = Duration::from_secs(10);
/// Lines of the process's output kept for error messages.
const LOG_LINES: usize = 200;
/// Lines of it shown in an error.
const LOG_SHOWN: usize = 40;

/// Why an invocation did not produce a response.
#[derive(Debug)]
pub enum InvokeError {
    /// The init phase failed: the runtime reported `init/error`, or the process exited (or
    /// overran [`INIT_LIMIT`]) before asking for its first event.
    Init { function: String, reason: String, log: String },
    /// The process exited after its init.
    Died { function: String, status: String, log: String },
    /// The handler reported an error (`invocation/{id}/error`).
    Function { function: String, error_type: String, message: String, log: String },
    /// No answer within the function's timeout; the environment was stopped.
    Timeout { function: String, after: Duration, log: String },
    /// The event or the answer is over Lambda's 6 MB payload limit.
    PayloadTooLarge { function: String, what: &'static str, bytes: usize },
    /// The answer is not what the caller (API Gateway) can read.
    BadResponse { function: String, problem: String },
}

impl std::fmt::Display for InvokeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InvokeError::Init { function, reason, log } => {
                write!(f, "{function}: init failed: {reason}\n--- process output (tail) ---\n{log}")
            }
            InvokeError::Died { function, status, log } => {
                write!(f, "{function}: the process died ({status})\n--- process output (tail) ---\n{log}")
            }
            InvokeError::Function { function, error_type, message, log } => {
                write!(f, "{function}: {error_type}: {message}\n--- process output (tail) ---\n{log}")
            }
            InvokeError::Timeout { function, after, log } => {
                write!(f, "{function}: timed out after {after:?}\n--- process output (tail) ---\n{log}")
            }
            InvokeError::PayloadTooLarge { function, what, bytes } => {
                write!(f, "{function}: the {what} is {bytes} bytes, over Lambda's {PAYLOAD_LIMIT}")
            }
            InvokeError::BadResponse { function, problem } => write!(f, "{function}: unreadable answer: {problem}"),
        }
    }
}

impl std::error::Error for InvokeError {}

/// The start-up figures of one environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timings {
    /// From spawning the process to its first `GET .../invocation/next`.
    pub init: Option<Duration>,
    /// The first invocation, from the runtime taking the event to its answer.
    pub first_invocation: Option<Duration>,
}

/// What the environment needs besides the facts.
pub struct Launch {
    pub logical_id: String,
    pub function_name: String,
    pub arn: String,
    pub binary: PathBuf,
    pub facts: FunctionFacts,
    /// The whole environment of the process (it starts from an empty one).
    pub env: BTreeMap<String, String>,
    pub api: ApiContext,
    /// Held for reading during each invocation, so that the harness's windows without IAM
    /// enforcement (which take it for writing) never overlap a function's requests.
    pub gate: Arc<RwLock<()>>,
}

/// A running environment. Dropping it stops the process.
pub struct Lambda {
    pub logical_id: String,
    pub function_name: String,
    pub arn: String,
    pub facts: FunctionFacts,
    api: ApiContext,
    pid: Option<u32>,
    shared: Arc<Shared>,
    one_at_a_time: tokio::sync::Mutex<()>,
    gate: Arc<RwLock<()>>,
    server: tokio::task::JoinHandle<()>,
    _stop: oneshot::Sender<()>,
}

struct Pending {
    id: String,
    body: Bytes,
    deadline_ms: u128,
    trace: String,
}

enum Reply {
    Response(Bytes),
    Error(Bytes),
}

struct Inflight {
    reply: oneshot::Sender<(Reply, Duration)>,
    picked_at: Option<Instant>,
}

#[derive(Clone, Debug)]
enum Death {
    InitError(String),
    Exited(String),
    Stopped(String),
}

struct Shared {
    name: String,
    arn: String,
    spawned_at: Instant,
    queue_tx: mpsc::UnboundedSender<Pending>,
    queue_rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<Pending>>,
    inflight: Mutex<HashMap<String, Inflight>>,
    first_next: OnceLock<Instant>,
    first_invocation: OnceLock<Duration>,
    dead: watch::Sender<Option<Death>>,
    log: Mutex<VecDeque<String>>,
    /// How many of the process's output streams are still open: a process that died may still
    /// have lines in the pipes, and its last lines (why it died) are the ones a test reads.
    streams_open: watch::Sender<usize>,
}

impl Shared {
    fn log_tail(&self) -> String {
        let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        let skip = log.len().saturating_sub(LOG_SHOWN);
        log.iter().skip(skip).cloned().collect::<Vec<_>>().join("\n")
    }

    /// Waits until the output of a process that ended has been read to its end (for at most
    /// two seconds, in case a child of the process holds the pipes open).
    async fn output_drained(&self) {
        let mut open = self.streams_open.subscribe();
        let _ = tokio::time::timeout(Duration::from_secs(2), open.wait_for(|n| *n == 0)).await;
    }

    fn push_log(&self, line: String) {
        if std::env::var_os("IMGHOST_DEPLOYED_ECHO").is_some() {
            eprintln!("[{}] {line}", self.name);
        }
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        if log.len() == LOG_LINES {
            log.pop_front();
        }
        log.push_back(line);
    }
}

impl Lambda {
    /// Starts the Runtime API on a loopback port and the function's binary against it.
    pub async fn start(launch: Launch) -> Lambda {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
        let addr = listener.local_addr().expect("the Runtime API's address");
        let mut env = launch.env.clone();
        env.insert("AWS_LAMBDA_RUNTIME_API".into(), addr.to_string());
        let (queue_tx, queue_rx) = mpsc::unbounded_channel();
        let mut command = tokio::process::Command::new(&launch.binary);
        command
            .env_clear()
            .envs(&env)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        // A function may call AWS during its init too: no window without enforcement may overlap
        // it (the guard is let go when init ends).
        let init_guard = launch.gate.clone().read_owned().await;
        // The spawn is the start of the init phase.
        let spawned_at = Instant::now();
        let mut child = command.spawn().unwrap_or_else(|e| panic!("could not start {}: {e}", launch.binary.display()));
        let pid = child.id();
        let shared = Arc::new(Shared {
            name: launch.logical_id.clone(),
            arn: launch.arn.clone(),
            spawned_at,
            queue_tx,
            queue_rx: tokio::sync::Mutex::new(queue_rx),
            inflight: Mutex::new(HashMap::new()),
            first_next: OnceLock::new(),
            first_invocation: OnceLock::new(),
            dead: watch::channel(None).0,
            log: Mutex::new(VecDeque::new()),
            streams_open: watch::channel(2).0,
        });
        let server = tokio::spawn(serve(listener, shared.clone()));
        if let Some(out) = child.stdout.take() {
            tokio::spawn(read_lines(out, shared.clone()));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(read_lines(err, shared.clone()));
        }
        let initialising = shared.clone();
        tokio::spawn(async move {
            let mut dead = initialising.dead.subscribe();
            let deadline = tokio::time::Instant::from_std(initialising.spawned_at + INIT_LIMIT);
            while initialising.first_next.get().is_none() && dead.borrow().is_none() {
                tokio::select! {
                    _ = dead.changed() => {}
                    _ = tokio::time::sleep(Duration::from_millis(5)) => {}
                    _ = tokio::time::sleep_until(deadline) => break,
                }
            }
            drop(init_guard);
        });
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let watcher = shared.clone();
        tokio::spawn(async move {
            let status = tokio::select! {
                status = child.wait() => status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string()),
                _ = stop_rx => {
                    let _ = child.start_kill();
                    let _ = child.wait().await;
                    watcher.dead.send_if_modified(|d| {
                        d.get_or_insert(Death::Stopped("stopped by the harness".into()));
                        true
                    });
                    return;
                }
            };
            watcher.dead.send_if_modified(|d| {
                match d {
                    // An init error is the cause; the exit is its consequence.
                    Some(Death::InitError(_)) => false,
                    _ => {
                        *d = Some(Death::Exited(status));
                        true
                    }
                }
            });
        });
        Lambda {
            logical_id: launch.logical_id,
            function_name: launch.function_name,
            arn: launch.arn,
            facts: launch.facts,
            api: launch.api,
            pid,
            shared,
            one_at_a_time: tokio::sync::Mutex::new(()),
            gate: launch.gate,
            server,
            _stop: stop_tx,
        }
    }

    /// The environment's start-up figures so far.
    pub fn timings(&self) -> Timings {
        Timings {
            init: self.shared.first_next.get().map(|t| t.duration_since(self.shared.spawned_at)),
            first_invocation: self.shared.first_invocation.get().copied(),
        }
    }

    /// The process's environment as the kernel holds it (`/proc/<pid>/environ`; Linux only),
    /// to check that it is exactly what the harness means to give.
    pub fn environ(&self) -> Option<BTreeMap<String, String>> {
        let raw = std::fs::read(format!("/proc/{}/environ", self.pid?)).ok()?;
        Some(
            raw.split(|b| *b == 0)
                .filter(|kv| !kv.is_empty())
                .filter_map(|kv| {
                    let kv = String::from_utf8_lossy(kv);
                    kv.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned()))
                })
                .collect(),
        )
    }

    /// The lines the process wrote (stdout and stderr), the last 200 of them.
    pub fn log_lines(&self) -> Vec<String> {
        self.shared.log.lock().unwrap_or_else(|e| e.into_inner()).iter().cloned().collect()
    }

    /// The last lines the process wrote (stdout and stderr).
    pub fn log_tail(&self) -> String {
        self.shared.log_tail()
    }

    /// Waits until the runtime asks for its first event (the end of the init phase) and returns
    /// how long init took, or the init failure.
    pub async fn ready(&self) -> Result<Duration, InvokeError> {
        let mut dead = self.shared.dead.subscribe();
        let deadline = tokio::time::Instant::from_std(self.shared.spawned_at + INIT_LIMIT);
        loop {
            if let Some(t) = self.shared.first_next.get() {
                return Ok(t.duration_since(self.shared.spawned_at));
            }
            if let Some(d) = dead.borrow().clone() {
                return Err(self.death(d).await);
            }
            tokio::select! {
                _ = dead.changed() => {}
                _ = tokio::time::sleep(Duration::from_millis(5)) => {}
                _ = tokio::time::sleep_until(deadline) => {
                    if self.shared.first_next.get().is_none() {
                        // Lambda gives up on this environment: so does every later invocation.
                        let reason = format!("no request for an event within Lambda's {INIT_LIMIT:?} init limit");
                        self.shared.dead.send_if_modified(|d| {
                            let fresh = d.is_none();
                            d.get_or_insert(Death::InitError(reason.clone()));
                            fresh
                        });
                        return Err(InvokeError::Init { function: self.logical_id.clone(), reason, log: self.log_tail() });
                    }
                }
            }
        }
    }

    async fn death(&self, d: Death) -> InvokeError {
        if matches!(d, Death::InitError(_) | Death::Exited(_)) {
            self.shared.output_drained().await;
        }
        let function = self.logical_id.clone();
        let log = self.log_tail();
        match d {
            Death::InitError(body) => InvokeError::Init { function, reason: format!("init/error: {body}"), log },
            Death::Exited(status) if self.shared.first_next.get().is_none() => InvokeError::Init {
                function,
                reason: format!("Runtime.ExitError: the process exited during init ({status})"),
                log,
            },
            Death::Exited(status) | Death::Stopped(status) => InvokeError::Died { function, status, log },
        }
    }

    /// Invokes the function with `event` (synchronously, `RequestResponse`) and returns its
    /// answer.
    pub async fn invoke(&self, event: Value) -> Result<Value, InvokeError> {
        let _one = self.one_at_a_time.lock().await;
        let body = Bytes::from(serde_json::to_vec(&event).expect("events serialise"));
        if body.len() > PAYLOAD_LIMIT {
            return Err(InvokeError::PayloadTooLarge {
                function: self.logical_id.clone(),
                what: "request",
                bytes: body.len(),
            });
        }
        // Init first, with its own limit, as Lambda runs it before the first invocation.
        self.ready().await?;
        let _enforced = self.gate.read().await;
        let mut dead = self.shared.dead.subscribe();
        if let Some(d) = dead.borrow().clone() {
            return Err(self.death(d).await);
        }
        let id = events::uuid();
        let (tx, mut rx) = oneshot::channel();
        self.shared
            .inflight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone(), Inflight { reply: tx, picked_at: None });
        let timeout = Duration::from_secs(self.facts.timeout);
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis();
        let trace = format!(
            "Root=1-{:08x}-{};Parent={};Sampled=1",
            now_ms / 1000,
            events::random_hex(12),
            events::random_hex(8)
        );
        let pending = Pending { id: id.clone(), body, deadline_ms: now_ms + timeout.as_millis(), trace };
        if self.shared.queue_tx.send(pending).is_err() {
            return Err(self.death(Death::Stopped("the Runtime API is gone".into())).await);
        }
        let started = tokio::time::Instant::now();
        let reply = loop {
            tokio::select! {
                reply = &mut rx => break reply.ok(),
                _ = dead.changed() => {
                    if let Some(d) = dead.borrow().clone() {
                        self.shared.inflight.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
                        return Err(self.death(d).await);
                    }
                }
                _ = tokio::time::sleep_until(started + timeout) => {
                    self.shared.inflight.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
                    // Lambda stops an environment whose invocation timed out.
                    self.shared.dead.send_replace(Some(Death::Stopped(format!("timed out after {timeout:?}"))));
                    return Err(InvokeError::Timeout { function: self.logical_id.clone(), after: timeout, log: self.log_tail() });
                }
            }
        };
        let Some((reply, took)) = reply else {
            return Err(self.death(Death::Stopped("the Runtime API dropped the invocation".into())).await);
        };
        if self.shared.first_invocation.set(took).is_ok() {
            let init = self.timings().init.unwrap_or_default();
            eprintln!(
                "[deployed] {} ({}): init {:.1} ms, first invocation {:.1} ms",
                self.logical_id,
                self.facts.binary,
                init.as_secs_f64() * 1e3,
                took.as_secs_f64() * 1e3
            );
        }
        match reply {
            Reply::Response(bytes) => {
                if bytes.len() > PAYLOAD_LIMIT {
                    return Err(InvokeError::PayloadTooLarge {
                        function: self.logical_id.clone(),
                        what: "response",
                        bytes: bytes.len(),
                    });
                }
                serde_json::from_slice(&bytes).map_err(|e| InvokeError::BadResponse {
                    function: self.logical_id.clone(),
                    problem: format!("{e}: {}", String::from_utf8_lossy(&bytes)),
                })
            }
            Reply::Error(bytes) => {
                let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                Err(InvokeError::Function {
                    function: self.logical_id.clone(),
                    error_type: v["errorType"].as_str().unwrap_or("Unhandled").to_owned(),
                    message: v["errorMessage"]
                        .as_str()
                        .map_or_else(|| String::from_utf8_lossy(&bytes).into_owned(), str::to_owned),
                    log: self.log_tail(),
                })
            }
        }
    }

    /// Sends `req` through API Gateway (HTTP API, payload 2.0) to this function: the route is
    /// looked up among the function's template routes, and a request no route matches gets
    /// API Gateway's own 404 without an invocation.
    pub async fn http(&self, req: HttpRequest) -> Result<HttpResponse, InvokeError> {
        let Some((template, params)) = events::route(&self.facts.routes, &req.method, &req.path) else {
            return Ok(HttpResponse {
                status: 404,
                headers: [("content-type".to_owned(), "application/json".to_owned())].into(),
                cookies: Vec::new(),
                body: br#"{"message":"Not Found"}"#.to_vec(),
            });
        };
        let event = events::api_gateway_v2(&self.api, template, &params, &req);
        let answer = self.invoke(event).await?;
        events::read_api_gateway_v2(&answer)
            .map_err(|problem| InvokeError::BadResponse { function: self.logical_id.clone(), problem })
    }
}

impl Drop for Lambda {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn read_lines<R: tokio::io::AsyncRead + Unpin>(stream: R, shared: Arc<Shared>) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        shared.push_log(line);
    }
    shared.streams_open.send_modify(|n| *n = n.saturating_sub(1));
}

async fn serve(listener: tokio::net::TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| handle(shared.clone(), req));
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

fn reply(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_owned())))
        .expect("a response")
}

/// The Runtime API (2018-06-01).
async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let Some(route) = path.strip_prefix("/2018-06-01/runtime/") else {
        return Ok(reply(StatusCode::NOT_FOUND, r#"{"errorType":"NotFound","errorMessage":"no such path"}"#));
    };
    if method == Method::GET && route == "invocation/next" {
        shared.first_next.get_or_init(Instant::now);
        // Long-poll: answer when there is an event.
        let next = shared.queue_rx.lock().await.recv().await;
        let Some(p) = next else {
            return Ok(reply(StatusCode::INTERNAL_SERVER_ERROR, r#"{"errorType":"ServiceException"}"#));
        };
        if let Some(i) = shared.inflight.lock().unwrap_or_else(|e| e.into_inner()).get_mut(&p.id) {
            i.picked_at = Some(Instant::now());
        }
        let response = Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "application/json")
            .header("Lambda-Runtime-Aws-Request-Id", &p.id)
            .header("Lambda-Runtime-Deadline-Ms", p.deadline_ms.to_string())
            .header("Lambda-Runtime-Invoked-Function-Arn", &shared.arn)
            .header("Lambda-Runtime-Trace-Id", &p.trace)
            .body(Full::new(p.body))
            .expect("a response");
        return Ok(response);
    }
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Ok(reply(StatusCode::BAD_REQUEST, r#"{"errorType":"InvalidRequest"}"#)),
    };
    if method == Method::POST && route == "init/error" {
        shared.dead.send_replace(Some(Death::InitError(String::from_utf8_lossy(&body).into_owned())));
        return Ok(reply(StatusCode::ACCEPTED, r#"{"status":"OK"}"#));
    }
    if method == Method::POST
        && let Some((id, kind)) = route.strip_prefix("invocation/").and_then(|r| r.split_once('/'))
        && (kind == "response" || kind == "error")
    {
        let Some(inflight) = shared.inflight.lock().unwrap_or_else(|e| e.into_inner()).remove(id) else {
            return Ok(reply(
                StatusCode::BAD_REQUEST,
                r#"{"errorType":"InvalidRequestID","errorMessage":"Invalid request ID"}"#,
            ));
        };
        let took = inflight.picked_at.map(|t| t.elapsed()).unwrap_or_default();
        let answer = if kind == "response" { Reply::Response(body) } else { Reply::Error(body) };
        let _ = inflight.reply.send((answer, took));
        return Ok(reply(StatusCode::ACCEPTED, r#"{"status":"OK"}"#));
    }
    Ok(reply(StatusCode::NOT_FOUND, r#"{"errorType":"NotFound","errorMessage":"no such path"}"#))
}
