//! The local runner: every imghost function on one machine, with embedded storage.
//!
//! It merges the routers the Lambdas run into one HTTP server and runs the workers in-process,
//! fed by the durable SQLite queue that stands in for S3 notifications and SQS. Work queued
//! before a crash is still in the queue after a restart.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use imghost::fetch::Fetcher;
use imghost::keepalive::loader::{DryRun, HttpsTransport, Transport};
use imghost::media::Format;
use imghost::state::{AdminSecret, LocalStorage};
use imghost::store::{Delivery as Received, Queue};
use imghost::workers::{self, Outcome};
use imghost::{App, secret};
use tokio::sync::watch;
use tracing::{info, warn};

pub mod front;
pub mod migrate;

/// Start-up errors of the runner: reported to the operator and the process ends.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Settings of a local server.
#[derive(Debug, Clone)]
pub struct Options {
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    /// The admin token; when `None`, one is generated on first start and only its digest kept.
    pub admin_token: Option<String>,
    /// The base of every link the API hands out. `None` means the server's own listening
    /// address (see [`public_url_for`]), unless `trust_proxy` is set.
    pub public_url: Option<String>,
    /// Believe `Host`, `X-Forwarded-Host` and `X-Forwarded-Proto` for links, because a proxy
    /// the operator trusts sets them (`--trust-proxy`). Ignored when `public_url` is set.
    pub trust_proxy: bool,
    /// Fetches URLs for imports. Always [`Fetcher::public`] outside tests: only code can relax
    /// the public-address rule, so there is deliberately no flag or variable for it.
    pub fetcher: Fetcher,
    /// Keep-alive loads do everything but send the request, and record `dry_run`
    /// (`IMGHOST_KEEPALIVE_DRY_RUN=1`, for demos and tests).
    pub keepalive_dry_run: bool,
    /// Serve the front end from this folder (laid out like `shared/web/`) instead of the copy
    /// compiled in, so pages can be edited without a rebuild (`IMGHOST_WEB_DIR`).
    pub web_dir: Option<PathBuf>,
    /// What the HTTP front door allows: head sizes, timeouts, the connection cap.
    pub limits: front::Limits,
}

/// A running local instance: its state, its router and the handle of its worker.
pub struct Local {
    pub app: App,
    pub storage: LocalStorage,
    /// Set when this start generated a new admin token (to print it once).
    pub generated_admin_token: Option<String>,
    /// Where the pages come from.
    pub web_assets: imghost::http::web::Assets,
}

/// Every route of every function over `app`, whichever storage family it is on: the same
/// routers the Lambdas run.
pub fn router(app: &App, web_assets: imghost::http::web::Assets) -> axum::Router {
    use imghost::http::{
        accounts, finish, images, imports, keepalive, links, memes, metrics, openapi, stats, upload, web,
    };
    finish(
        upload::routes(app.clone())
            .merge(images::routes(app.clone()))
            .merge(imports::routes(app.clone()))
            .merge(keepalive::routes(app.clone()))
            .merge(accounts::routes(app.clone()))
            .merge(memes::routes(app.clone()))
            .merge(links::routes(app.clone()))
            .merge(stats::routes(app.clone()))
            .merge(metrics::routes(app.clone()))
            .merge(web::routes(app.clone(), web_assets))
            .merge(openapi::routes(app.clone())),
    )
}

/// Holds the data directory's lock for as long as it lives: one server per data directory,
/// since a second one would take over the first one's in-flight work at start.
pub struct DataDirLock(#[allow(dead_code)] std::fs::File);

impl DataDirLock {
    pub fn acquire(data_dir: &Path) -> Result<DataDirLock, BoxError> {
        std::fs::create_dir_all(data_dir)?;
        let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(data_dir.join(".lock"))?;
        match file.try_lock() {
            Ok(()) => Ok(DataDirLock(file)),
            Err(std::fs::TryLockError::WouldBlock) => {
                Err(format!("another imghost server is using {}", data_dir.display()).into())
            }
            Err(std::fs::TryLockError::Error(e)) => Err(e.into()),
        }
    }
}

/// Name of the file that keeps the digest of a generated admin token.
const ADMIN_DIGEST_FILE: &str = "admin-token.sha256";

impl Local {
    /// Opens (or creates) the data directory and builds the application state.
    pub fn open(opts: &Options) -> Result<Local, BoxError> {
        // The process keeps its metrics for `GET /metrics`. The registry is the process's, so
        // several instances in one process (tests) share it; the first one installs it.
        imghost::metrics::install(imghost::metrics::Sink::Registry(imghost::metrics::Registry::new()));
        let storage = LocalStorage::open(&opts.data_dir)?;
        let (admin_digest, generated_admin_token) = admin_digest(&opts.data_dir, opts.admin_token.as_deref())?;
        let app = storage
            .app()
            .public_url(opts.public_url.clone())
            .trust_proxy(opts.trust_proxy)
            .admin(AdminSecret::Digest(admin_digest))
            .build();
        let web_assets = match &opts.web_dir {
            Some(dir) => imghost::http::web::Assets::Dir(dir.clone()),
            None => imghost::http::web::Assets::Embedded,
        };
        Ok(Local { app, storage, generated_admin_token, web_assets })
    }

    /// Every route of every function, from the same routers the Lambdas run.
    pub fn router(&self) -> axum::Router {
        router(&self.app, self.web_assets.clone())
    }

    /// Starts everything `imghost serve` runs: the HTTP front door on `listener` until
    /// `shutdown` completes, and the workers over the local queues (object events, AVIF passes,
    /// imports, keep-alive loads, and the keep-alive sweep at start and then every [`SWEEP_EVERY`]).
    pub fn spawn(
        &self,
        listener: tokio::net::TcpListener,
        opts: &Options,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Running {
        let (stop, stop_rx) = watch::channel(false);
        let (swept_tx, swept) = watch::channel(false);
        let app = &self.app;
        let workers = vec![
            tokio::spawn(consume(self.storage.object_events.clone(), OBJECT_EVENTS, stop_rx.clone(), {
                let app = app.clone();
                move |body, receives| {
                    let app = app.clone();
                    async move { workers::resize::handle(&app, &body, receives).await }
                }
            })),
            tokio::spawn(consume(self.storage.avif.clone(), AVIF_PASSES, stop_rx.clone(), {
                let app = app.clone();
                move |body, receives| {
                    let app = app.clone();
                    async move { workers::avif::handle(&app, &body, receives).await }
                }
            })),
            tokio::spawn(consume(self.storage.imports.clone(), IMPORTS, stop_rx.clone(), {
                let (app, fetcher) = (app.clone(), opts.fetcher.clone());
                move |body, receives| {
                    let (app, fetcher) = (app.clone(), fetcher.clone());
                    async move { workers::import::handle(&app, &fetcher, &body, receives).await }
                }
            })),
            tokio::spawn(consume(self.storage.keepalive.clone(), KEEPALIVE_LOADS, stop_rx.clone(), {
                let (app, transport) = (app.clone(), keepalive_transport(opts));
                move |body, receives| {
                    let (app, transport) = (app.clone(), transport.clone());
                    async move { workers::keepalive::handle(&app, &*transport, &body, receives).await }
                }
            })),
            tokio::spawn(run_keepalive_sweep(app.clone(), stop_rx, swept_tx)),
        ];
        let front = tokio::spawn(front::serve(listener, self.router(), opts.limits.clone(), shutdown));
        Running { stop, workers, front, swept }
    }
}

/// A started local instance: its front door and its workers.
pub struct Running {
    stop: watch::Sender<bool>,
    workers: Vec<tokio::task::JoinHandle<()>>,
    front: tokio::task::JoinHandle<std::io::Result<()>>,
    /// Turns true once the keep-alive sweep made at start has finished.
    swept: watch::Receiver<bool>,
}

impl Running {
    /// Waits until the keep-alive sweep made at start has finished, so that what is stored
    /// afterwards waits for the next sweep (tests that time loads depend on it).
    pub async fn first_sweep_done(&self) {
        let mut swept = self.swept.clone();
        let _ = swept.wait_for(|done| *done).await;
    }

    /// Waits until the front door has stopped (its shutdown completed and requests in flight
    /// finished), then stops the workers after their current message.
    pub async fn wait(mut self) -> Result<(), BoxError> {
        let served = (&mut self.front).await;
        let _ = self.stop.send(true);
        for worker in std::mem::take(&mut self.workers) {
            let _ = worker.await;
        }
        served??;
        Ok(())
    }
}

impl Drop for Running {
    /// Dropped without [`Running::wait`] (a test that ends), everything stops at once.
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        self.front.abort();
    }
}

/// Makes glibc's allocator hand every buffer of a mebibyte or more back to the system when it
/// is freed. By default glibc raises that threshold to the size of the largest buffer freed so
/// far (up to 32 MiB), after which image-sized buffers come from per-thread arenas that keep
/// their memory: with the first variant pass and the AVIF pass on two threads, the server's
/// resident memory grew to two arenas' worth of buffers that were no longer in use (753 MiB in
/// `tests/hostile.rs`, whose bound is 512 MiB). Called once, at start. Elsewhere than glibc,
/// nothing to do.
pub fn return_large_buffers_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const THRESHOLD: libc::c_int = 1 << 20;
        // SAFETY: mallopt only sets a parameter of the allocator, under the allocator's own
        // lock; M_MMAP_THRESHOLD takes a size in bytes, and 1 MiB is within its range.
        let set = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, THRESHOLD) };
        if set == 0 {
            warn!("glibc refused the mmap threshold; freed image buffers may stay resident");
        }
    }
}

/// How the local runner consumes one queue.
#[derive(Debug, Clone, Copy)]
pub struct Lane {
    /// Messages received at once.
    pub batch: usize,
    /// Messages handled at once.
    pub concurrency: usize,
    /// How long a received message stays hidden: longer than its handling may take.
    pub visibility: Duration,
}

/// Object events, one at a time: each may decode a large image.
pub const OBJECT_EVENTS: Lane = Lane { batch: 10, concurrency: 1, visibility: Duration::from_secs(30) };
/// Import URLs, ten at a time, which is also the cap on concurrent fetches from this machine.
/// Hidden longer than a fetch may take (10 s to respond, 60 s for the body) plus ingest.
pub const IMPORTS: Lane = Lane { batch: 10, concurrency: 10, visibility: Duration::from_secs(300) };
/// Keep-alive loads, four at a time: the local counterpart of the loader's reserved concurrency
/// in AWS. A load takes at most 10 s per hop.
pub const KEEPALIVE_LOADS: Lane = Lane { batch: 4, concurrency: 4, visibility: Duration::from_secs(120) };
/// AVIF passes, one at a time, so the first pass of new uploads (its own lane) keeps a core.
/// Hidden longer than the slowest photo takes (seconds in a release build).
pub const AVIF_PASSES: Lane = Lane { batch: 1, concurrency: 1, visibility: Duration::from_secs(300) };
/// How often the local sweep runs, as the hourly schedule does in AWS.
pub const SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// Runs the keep-alive sweep at start and then every [`SWEEP_EVERY`] until `stop` turns true,
/// saying on `swept` when the first one is done.
async fn run_keepalive_sweep(app: App, mut stop: watch::Receiver<bool>, swept: watch::Sender<bool>) {
    loop {
        if *stop.borrow() {
            return;
        }
        if let Err(e) = workers::keepalive::run_sweep(&app).await {
            warn!(error = %e, "keep-alive sweep failed; the next one picks up its work");
        }
        swept.send_replace(true);
        tokio::select! {
            _ = tokio::time::sleep(SWEEP_EVERY) => {}
            _ = stop.changed() => {}
        }
    }
}

/// The keep-alive transport for these options: the real one, or a dry run that sends nothing.
pub fn keepalive_transport(opts: &Options) -> Arc<dyn Transport> {
    if opts.keepalive_dry_run { Arc::new(DryRun) } else { Arc::new(HttpsTransport::new()) }
}

/// Receives batches from `queue` and hands each message to its worker (`handle(body,
/// receive_count)`), then deletes it or makes it visible again after the delay the worker
/// asked for, until `stop` turns true. An empty queue is polled every 100 ms; a stop request
/// ends the wait at once, but never a batch in progress.
async fn consume<F, Fut>(queue: Arc<dyn Queue>, lane: Lane, mut stop: watch::Receiver<bool>, handle: F)
where
    F: Fn(String, u32) -> Fut,
    Fut: Future<Output = Outcome>,
{
    let idle = Duration::from_millis(100);
    loop {
        if *stop.borrow() {
            return;
        }
        let batch = match queue.receive(lane.batch, lane.visibility).await {
            Ok(b) => b,
            Err(e) => {
                warn!(error = %e, "queue receive failed");
                Vec::new()
            }
        };
        if batch.is_empty() {
            tokio::select! {
                _ = tokio::time::sleep(idle) => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        futures::stream::iter(batch)
            .for_each_concurrent(lane.concurrency, |message| {
                let (queue, handle) = (&queue, &handle);
                async move {
                    let outcome = handle(message.body.clone(), message.receive_count).await;
                    settle(&**queue, &message, outcome).await;
                }
            })
            .await;
    }
}

/// Deletes a handled message, or makes it visible again after the worker's delay. A failure
/// here only means the message comes back after its visibility timeout, which every worker
/// tolerates.
async fn settle(queue: &dyn Queue, message: &Received, outcome: Outcome) {
    let result = match outcome {
        Outcome::Ack => queue.ack(&message.receipt).await,
        Outcome::RetryAfter(delay) => queue.retry_after(&message.receipt, delay).await,
    };
    if let Err(e) = result {
        warn!(error = %e, "queue bookkeeping failed; the message will be redelivered");
    }
}

/// The admin digest: from the given token, else from the digest file, else a new token whose
/// digest is written (mode 0600) and which is returned so the caller can print it once.
fn admin_digest(data_dir: &Path, token: Option<&str>) -> Result<([u8; 32], Option<String>), BoxError> {
    if let Some(t) = token {
        return Ok((secret::digest(t), None));
    }
    let path = data_dir.join(ADMIN_DIGEST_FILE);
    if let Ok(text) = std::fs::read_to_string(&path) {
        let bytes = hex_decode32(text.trim()).ok_or_else(|| {
            BoxError::from(format!("{} is corrupt; delete it to generate a new admin token", path.display()))
        })?;
        return Ok((bytes, None));
    }
    let token = secret::new_token();
    let digest = secret::digest(&token);
    write_private(&path, &secret::digest_hex(&token))?;
    Ok((digest, Some(token)))
}

fn hex_decode32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
        out[i] = u8::from_str_radix(std::str::from_utf8(chunk).ok()?, 16).ok()?;
    }
    Some(out)
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

/// The public URL links use: the one configured; none when a trusted proxy's headers decide;
/// else the address the server listens on (an unspecified address becomes `localhost`, since
/// `0.0.0.0` is no place a client can go to).
pub fn public_url_for(opts: &Options, addr: SocketAddr) -> Option<String> {
    if let Some(url) = &opts.public_url {
        return Some(url.trim_end_matches('/').to_owned());
    }
    if opts.trust_proxy {
        return None;
    }
    if addr.ip().is_unspecified() {
        warn!(%addr, "listening on every address; links say localhost unless --public-url is given");
        return Some(format!("http://localhost:{}", addr.port()));
    }
    Some(format!("http://{addr}"))
}

/// Serves until Ctrl-C or SIGTERM, then stops the workers after their current message.
pub async fn serve(mut opts: Options) -> Result<(), BoxError> {
    let _lock = DataDirLock::acquire(&opts.data_dir)?;
    let listener = tokio::net::TcpListener::bind(opts.addr).await?;
    let addr = listener.local_addr()?;
    opts.public_url = public_url_for(&opts, addr);
    let local = Local::open(&opts)?;
    // Messages the previous process had received but not finished are this process's now.
    let released = local.storage.object_events.release_in_flight()?
        + local.storage.imports.release_in_flight()?
        + local.storage.keepalive.release_in_flight()?;
    if released > 0 {
        info!(released, "resuming work left in flight by the previous run");
    }
    if let Some(token) = &local.generated_admin_token {
        // Printed once, on the terminal of whoever started the server, never logged.
        println!("Admin token (shown once; only its digest is kept in {}): {token}", opts.data_dir.display());
    }
    info!(%addr, data = %opts.data_dir.display(), "imghost serving");
    println!("imghost listening on http://{addr}");
    local.spawn(listener, &opts, shutdown_signal()).wait().await
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return ctrl_c.await.unwrap_or(()),
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    ctrl_c.await.unwrap_or(());
}

/// `imghost resize`: runs the production variant pipeline on files, one after another on one
/// thread, writing `<stem>-small.<ext>`, `-medium` and `-large` into `out` in each of `formats`:
/// `jpeg` (the classic variant: PNG where there is transparency, GIF for an animation) and
/// `webp`, at the qualities the service uses. An animation is resized frame by frame, as the
/// resize worker does. The benchmark times one format at a time against sharp.
pub fn resize_files(files: &[PathBuf], out: &Path, formats: &[Format]) -> Result<(), BoxError> {
    use imghost::media::{self, animation, decode, exif, variants};
    std::fs::create_dir_all(out)?;
    for file in files {
        let bytes = std::fs::read(file)?;
        if media::sniff(&bytes).is_none() {
            return Err(format!("{}: not a JPEG, PNG, GIF or WebP", file.display()).into());
        }
        let orientation = exif::read(&bytes).effective_orientation();
        let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("image");
        let failed = |e: &dyn std::fmt::Display| BoxError::from(format!("{}: {e}", file.display()));
        let mut written = Vec::new();
        // AVIF encoding takes more memory than the first pass (`media::avif_cost`).
        let cost = |facts: &media::Facts| {
            if formats.contains(&Format::Avif) {
                media::avif_cost(facts, bytes.len() as u64).max(facts.decode_cost)
            } else {
                facts.decode_cost
            }
        };
        let (facts, permit) = decode::reserve_cost(&bytes, u64::MAX, cost).map_err(|e| failed(&e))?;
        if animation::is_animated(&facts) {
            // Animations are GIF and animated WebP, never AVIF (as in the workers).
            let animated: Vec<Format> = formats
                .iter()
                .filter(|&&f| f != Format::Avif)
                .map(|&f| if f == Format::Webp { f } else { Format::Gif })
                .collect();
            for v in animation::make_variants(&bytes, &facts, orientation, &animated, permit).map_err(|e| failed(&e))? {
                std::fs::write(out.join(format!("{stem}-{}.{}", v.size.name(), v.format.ext())), v.bytes)?;
            }
            continue;
        }
        variants::render_reserved(&bytes, facts, permit, orientation, |size, upright| {
            for &format in formats {
                let format = if variants::is_modern(format) { format } else { variants::classic_format(upright) };
                let encoded = variants::encode(upright, format, variants::quality(size, format))?;
                written.push((format!("{stem}-{}.{}", size.name(), format.ext()), encoded));
            }
            Ok(())
        })
        .map_err(|e| failed(&e))?;
        for (name, encoded) in written {
            std::fs::write(out.join(name), encoded)?;
        }
    }
    Ok(())
}
