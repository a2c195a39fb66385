//! imghost: a serverless image host.
//!
//! This crate holds all the logic; the Lambda crates under `functions/` and the local runner
//! under `infra/local` only wire it to events. See `ARCHITECTURE.md` for the map.

pub mod accounts;
#[cfg(feature = "aws")]
pub mod aws;
pub mod budget;
pub mod clock;
pub mod config;
pub mod context;
pub mod error;
pub mod fetch;
pub mod fuzzing;
pub mod http;
pub mod images;
pub mod imports;
pub mod json;
pub mod keepalive;
pub mod links;
pub mod media;
pub mod memes;
pub mod metrics;
pub mod secret;
pub mod state;
pub mod stats;
pub mod store;
pub mod uploads;
pub mod workers;

pub use config::Config;
pub use error::{Error, Result};
pub use state::App;
