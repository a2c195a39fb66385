//! `imghost`: the local runner's command line.
//!
//! - `imghost serve [--addr 127.0.0.1:3000] [--data ./data] [--web-dir shared/web]` serves every
//!   route of every function, the web pages among them, and runs the workers in-process.
//! - `imghost resize FILE... --out DIR` runs the production variant pipeline on files.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
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
        /// Base URL for links when the server sits behind a proxy.
        #[arg(long, env = "IMGHOST_PUBLIC_URL")]
        public_url: Option<String>,
        /// Serve the front end from this folder (laid out like `shared/web`) instead of the
        /// copy compiled in, so pages can be edited and reloaded without a rebuild.
        #[arg(long, env = "IMGHOST_WEB_DIR")]
        web_dir: Option<PathBuf>,
    },
    /// Make the small, medium and large variants of each file into DIR.
    Resize {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[arg(long)]
        out: PathBuf,
    },
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Serve { addr, data, public_url, web_dir } => {
            // The admin token is read here, once; it is never passed on the command line,
            // where other users of the machine could read it.
            let admin_token = std::env::var("IMGHOST_ADMIN_TOKEN").ok().filter(|t| !t.is_empty());
            let fetcher = imghost::fetch::Fetcher::public();
            let keepalive_dry_run = std::env::var("IMGHOST_KEEPALIVE_DRY_RUN").is_ok_and(|v| v == "1");
            let opts = Options { addr, data_dir: data, admin_token, public_url, fetcher, keepalive_dry_run, web_dir };
            imghost_local::serve(opts).await
        }
        Command::Resize { files, out } => imghost_local::resize_files(&files, &out),
    }
}
