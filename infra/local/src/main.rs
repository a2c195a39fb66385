//! `imghost`: the local runner's command line.
//!
//! - `imghost serve [--addr 127.0.0.1:3000] [--data ./data] [--web-dir shared/web]` serves every
//!   route of every function, the web pages among them, and runs the workers in-process. Its
//!   HTTP front door's timeouts and connection cap have flags too (`imghost serve --help`).
//! - `imghost openapi` prints the API's OpenAPI document (`docs/openapi.json` is its output).
//! - `imghost resize FILE... --out DIR [--formats jpeg,webp,avif]` runs the production variant
//!   pipeline on files.
//! - `imghost migrate --from DIR --to aws --bucket B --table T [--endpoint URL]` copies a data
//!   directory into AWS, and `--from aws ... --to DIR` copies AWS into a data directory
//!   (see `imghost_local::migrate`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use imghost_local::front::Limits;
use imghost_local::{BoxError, Options};

#[derive(Parser)]
#[command(name = "imghost", version, about = "imghost on one machine")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API and run the workers with embedded storage.
    Serve {
        #[arg(long, default_value = "127.0.0.1:3000")]
        addr: SocketAddr,
        #[arg(long, default_value = "data")]
        data: PathBuf,
        /// Base URL of every link the API hands out (default: http://<the listening address>).
        #[arg(long, env = "IMGHOST_PUBLIC_URL")]
        public_url: Option<String>,
        /// Build links from Host, X-Forwarded-Host and X-Forwarded-Proto, because a proxy you
        /// trust sets them. Without it those headers are ignored (a client can send them).
        #[arg(long, env = "IMGHOST_TRUST_PROXY")]
        trust_proxy: bool,
        /// Serve the front end from this folder (laid out like `shared/web`) instead of the
        /// copy compiled in, so pages can be edited and reloaded without a rebuild.
        #[arg(long, env = "IMGHOST_WEB_DIR")]
        web_dir: Option<PathBuf>,
        #[command(flatten)]
        front: FrontFlags,
    },
    /// Copy every object and item from one storage family to the other: a data directory into
    /// AWS (`--from DIR --to aws`) or AWS into a data directory (`--from aws --to DIR`).
    /// Idempotent and resumable; ends with a count check.
    Migrate {
        /// A data directory, or `aws`.
        #[arg(long)]
        from: String,
        /// A data directory, or `aws`.
        #[arg(long)]
        to: String,
        /// The bucket of the AWS side.
        #[arg(long, required_if_eq_any([("from", "aws"), ("to", "aws")]))]
        bucket: Option<String>,
        /// The table of the AWS side.
        #[arg(long, required_if_eq_any([("from", "aws"), ("to", "aws")]))]
        table: Option<String>,
        /// The AWS side's endpoint, for S3- and DynamoDB-compatible services (default: AWS,
        /// from the usual AWS environment).
        #[arg(long)]
        endpoint: Option<String>,
        /// Copy into a target that already holds other data (nothing in it is overwritten).
        #[arg(long)]
        merge: bool,
        /// Copy although the source data directory's queues still hold work not yet done.
        #[arg(long)]
        ignore_pending: bool,
        /// At most this many writes per second to the target.
        #[arg(long)]
        rate: Option<u32>,
    },
    /// Bring stored images up to what the CDN serves: move images stored before keys were named
    /// by id and size alone (`originals/<id>.<ext>`) to `originals/<id>` and
    /// `variants/<size>/<id>`, then remake the variants of images made before WebP variants
    /// existed and queue the AVIF pass of still images without AVIF variants. Idempotent and
    /// resumable; images whose variants are still being made are counted as "later".
    Relayout {
        /// A data directory, or `aws`.
        place: String,
        /// The bucket, for `aws`.
        #[arg(long, required_if_eq("place", "aws"))]
        bucket: Option<String>,
        /// The table, for `aws`.
        #[arg(long, required_if_eq("place", "aws"))]
        table: Option<String>,
        /// An S3- and DynamoDB-compatible endpoint, for `aws` (default: AWS).
        #[arg(long)]
        endpoint: Option<String>,
        /// The URL of the stack's AVIF queue (its `AvifQueue`), for `aws`: still images without
        /// AVIF variants get their AVIF pass queued there. A data directory has its own queue.
        #[arg(long)]
        avif_queue: Option<String>,
    },
    /// Print the API's OpenAPI 3.1 document, as committed in `docs/openapi.json`:
    /// `cargo run -p imghost-local -- openapi > docs/openapi.json`.
    Openapi,
    /// Make the small, medium and large variants of each file into DIR.
    Resize {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[arg(long)]
        out: PathBuf,
        /// The formats to write, comma-separated: `jpeg` (the classic variant: PNG where there
        /// is transparency), `webp` and `avif` (the later pass; never for an animation).
        #[arg(long, value_delimiter = ',', default_value = "jpeg,webp", value_parser = parse_variant_format)]
        formats: Vec<imghost::media::Format>,
    },
}

fn parse_variant_format(name: &str) -> Result<imghost::media::Format, String> {
    use imghost::media::Format;
    match Format::from_name(name) {
        Some(f @ (Format::Jpeg | Format::Webp | Format::Avif)) => Ok(f),
        _ => Err(format!("{name}: the variant formats are jpeg, webp and avif")),
    }
}

/// The front door's timeouts and connection cap; the defaults are [`Limits::default`]'s.
#[derive(clap::Args)]
struct FrontFlags {
    /// Seconds a request head may take to arrive once it has begun (and the first one after
    /// connecting); a late head gets 408.
    #[arg(long, env = "IMGHOST_HEADER_TIMEOUT_SECS", default_value_t = Limits::default().header_timeout.as_secs())]
    header_timeout_secs: u64,
    /// Seconds a keep-alive connection may sit idle between requests before it is closed.
    #[arg(long, env = "IMGHOST_IDLE_TIMEOUT_SECS", default_value_t = Limits::default().idle_timeout.as_secs())]
    idle_timeout_secs: u64,
    /// Seconds a request body may take to arrive in full before the connection is closed.
    #[arg(long, env = "IMGHOST_BODY_TIMEOUT_SECS", default_value_t = Limits::default().body_timeout.as_secs())]
    body_timeout_secs: u64,
    /// Seconds a response write may make no progress (a client that does not read) before the
    /// connection is closed.
    #[arg(long, env = "IMGHOST_WRITE_TIMEOUT_SECS", default_value_t = Limits::default().write_timeout.as_secs())]
    write_timeout_secs: u64,
    /// Seconds requests in flight may take to finish after Ctrl-C or SIGTERM.
    #[arg(long, env = "IMGHOST_SHUTDOWN_GRACE_SECS", default_value_t = Limits::default().shutdown_grace.as_secs())]
    shutdown_grace_secs: u64,
    /// Most connections served at once; more wait in the kernel's backlog until one closes.
    #[arg(long, env = "IMGHOST_MAX_CONNECTIONS", default_value_t = Limits::default().max_connections)]
    max_connections: usize,
}

impl FrontFlags {
    fn limits(&self) -> Limits {
        Limits {
            header_timeout: Duration::from_secs(self.header_timeout_secs),
            idle_timeout: Duration::from_secs(self.idle_timeout_secs),
            body_timeout: Duration::from_secs(self.body_timeout_secs),
            write_timeout: Duration::from_secs(self.write_timeout_secs),
            shutdown_grace: Duration::from_secs(self.shutdown_grace_secs),
            max_connections: self.max_connections,
            ..Limits::default()
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        // Colours only on a terminal: escape codes in a log file break every search through it.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    imghost_local::return_large_buffers_to_the_system();
    match Cli::parse().command {
        Command::Serve { addr, data, public_url, trust_proxy, web_dir, front } => {
            // The admin token is read here, once; it is never passed on the command line,
            // where other users of the machine could read it.
            let admin_token = std::env::var("IMGHOST_ADMIN_TOKEN").ok().filter(|t| !t.is_empty());
            let fetcher = imghost::fetch::Fetcher::public();
            let keepalive_dry_run = std::env::var("IMGHOST_KEEPALIVE_DRY_RUN").is_ok_and(|v| v == "1");
            let limits = front.limits();
            let opts = Options {
                addr,
                data_dir: data,
                admin_token,
                public_url,
                trust_proxy,
                fetcher,
                keepalive_dry_run,
                web_dir,
                limits,
            };
            imghost_local::serve(opts).await
        }
        Command::Openapi => {
            print!("{}", imghost::http::openapi::json_text());
            Ok(())
        }
        Command::Resize { files, out, formats } => imghost_local::resize_files(&files, &out, &formats),
        Command::Relayout { place, bucket, table, endpoint, avif_queue } => {
            use imghost_local::migrate::{Place, Stores};
            let place = match place.as_str() {
                "aws" => Place::Aws {
                    bucket: bucket.unwrap_or_default(),
                    table: table.unwrap_or_default(),
                    endpoint: endpoint.clone(),
                },
                dir => Place::Local { data_dir: PathBuf::from(dir) },
            };
            let stores = Stores::open(&place, false).await?;
            // The AVIF passes go where the workers take them: the data directory's queue, which
            // the server consumes when it starts, or the stack's.
            let avif: Option<std::sync::Arc<dyn imghost::store::Queue>> = match (&place, avif_queue) {
                (Place::Local { data_dir }, _) => Some(imghost::state::LocalStorage::open(data_dir)?.avif),
                (Place::Aws { .. }, Some(url)) => {
                    let sdk = match &endpoint {
                        Some(at) => imghost::aws::sdk_config_at(at).await,
                        None => imghost::aws::sdk_config().await,
                    };
                    Some(std::sync::Arc::new(imghost::store::aws::SqsQueue::from_sdk(&sdk, url)))
                }
                (Place::Aws { .. }, None) => None,
            };
            let mut app = imghost::App::builder(stores.table.clone(), stores.objects.clone());
            if let Some(queue) = avif {
                app = app.avif(queue);
            }
            let app = app.build();
            let report = imghost::images::adopt_bare_layout_everywhere(&app).await?;
            // Then every image gets each variant format the CDN may ask for (AVIF by a queued
            // pass).
            let remade = imghost::workers::resize::remake_outdated_everywhere(&app).await?;
            println!(
                "moved {}, already in place {}, to run again for {}; variants remade {remade}",
                report.moved, report.already_bare, report.later
            );
            Ok(())
        }
        Command::Migrate { from, to, bucket, table, endpoint, merge, ignore_pending, rate } => {
            use imghost_local::migrate::{self, Place, Stores};
            if (from == "aws") == (to == "aws") {
                return Err("one side must be `aws` and the other a data directory".into());
            }
            let place = |side: &str| match side {
                "aws" => Place::Aws {
                    bucket: bucket.clone().unwrap_or_default(),
                    table: table.clone().unwrap_or_default(),
                    endpoint: endpoint.clone(),
                },
                dir => Place::Local { data_dir: PathBuf::from(dir) },
            };
            let source = Stores::open(&place(&from), false).await?;
            let target = Stores::open(&place(&to), true).await?;
            let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
            let settings = migrate::Settings { merge, ignore_pending, rate, progress };
            let report = migrate::run(&source, &target, &settings).await?;
            print!("{report}");
            println!("count check passed");
            Ok(())
        }
    }
}
